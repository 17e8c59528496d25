//! Garbage collection under an update-heavy load: with a constant number of rows, the row
//! versions a table stores stay bounded however many updates run, and every update stays
//! visible. Drives the library directly (a session per "client") so the stored-version count
//! can be read without a wire-level statistics view.

use datafusion::common::ParamValues;
use kura::gc::collect_garbage;
use kura::query::{Database, DatabaseOptions, Engine};
use kura::session::{Session, SessionLimits};
use kura::sql::{Outcome, parse_sql};

fn limits() -> SessionLimits {
    SessionLimits::from_config(&kura::config::Config::default())
}

async fn run(session: &mut Session, sql: &str) -> Outcome {
    let statement = parse_sql(sql).expect("parses").remove(0);
    session
        .execute(&statement, &ParamValues::List(vec![]))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn single_value(session: &mut Session, sql: &str) -> i64 {
    let Outcome::Rows { mut stream, .. } = run(session, sql).await else {
        panic!("{sql} returned no rows");
    };
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    use futures::StreamExt;
    let batch = stream.next().await.expect("one batch").expect("no error");
    batch.column(0).as_primitive::<Int64Type>().value(0)
}

fn small_chunks() -> DatabaseOptions {
    let mut options = DatabaseOptions::default();
    options.limits.chunk_rows = 1024;
    options.target_partitions = 2;
    options
}

fn stored_versions(db: &Database, table: &str) -> usize {
    let table = db.catalog.table(table).expect("table exists");
    table.partitions().iter().map(|p| p.stored_versions()).sum()
}

#[tokio::test]
async fn versions_stay_bounded_under_updates() {
    let engine = Engine::new(small_chunks());
    let db = engine.public();
    let mut session = Session::new(engine.clone(), limits());
    run(
        &mut session,
        "CREATE TABLE counters (id bigint PRIMARY KEY, n bigint NOT NULL)",
    )
    .await;
    run(
        &mut session,
        "INSERT INTO counters SELECT v, 0 FROM generate_series(1, 2000) AS s(v)",
    )
    .await;
    let mut peak = 0;
    for round in 1..=40 {
        run(&mut session, "UPDATE counters SET n = n + 1").await;
        collect_garbage(&engine).expect("gc runs");
        peak = peak.max(stored_versions(&db, "counters"));
        assert_eq!(
            single_value(&mut session, "SELECT count(*) FROM counters").await,
            2000
        );
        assert_eq!(
            single_value(&mut session, "SELECT sum(n) FROM counters").await,
            2000 * round
        );
    }
    // 40 rounds wrote 82 000 versions; without collection all of them would stay. Live rows
    // plus the versions of chunks not yet worth compacting must stay within a small multiple.
    assert!(peak <= 2000 * 4, "stored versions peaked at {peak}");
}

#[tokio::test]
async fn an_open_snapshot_keeps_the_versions_it_can_see() {
    let engine = Engine::new(small_chunks());
    let db = engine.public();
    let mut writer = Session::new(engine.clone(), limits());
    let mut reader = Session::new(engine.clone(), limits());
    run(
        &mut writer,
        "CREATE TABLE t (id bigint PRIMARY KEY, n bigint)",
    )
    .await;
    run(
        &mut writer,
        "INSERT INTO t SELECT v, 0 FROM generate_series(1, 3000) AS s(v)",
    )
    .await;
    run(&mut reader, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    assert_eq!(single_value(&mut reader, "SELECT sum(n) FROM t").await, 0);
    for _ in 0..5 {
        run(&mut writer, "UPDATE t SET n = n + 1").await;
        collect_garbage(&engine).expect("gc runs");
    }
    // The repeatable-read snapshot still sees the original versions after collection.
    assert_eq!(single_value(&mut reader, "SELECT sum(n) FROM t").await, 0);
    assert_eq!(
        single_value(&mut reader, "SELECT count(*) FROM t").await,
        3000
    );
    run(&mut reader, "COMMIT").await;
    assert_eq!(
        single_value(&mut reader, "SELECT sum(n) FROM t").await,
        5 * 3000
    );
    collect_garbage(&engine).expect("gc runs");
    let stored = stored_versions(&db, "t");
    assert!(
        stored < 3000 * 2,
        "{stored} versions stored for 3000 live rows"
    );
}
