//! Checkpoints and recovery driven through the library (sessions on a recovered database), so
//! checkpoint statistics and files can be inspected directly:
//! - a checkpoint rewrites only the data partitions changed since the file that holds them;
//! - only `retentionCount` checkpoints stay, with exactly the data files they name, and log
//!   segments older than the oldest kept checkpoint are removed;
//! - row versions keep their identity (serials) through garbage collection, checkpoints and
//!   log replay, so deletes logged after a checkpoint of compacted chunks replay exactly.

use std::path::Path;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::ParamValues;
use futures::StreamExt;
use kura::config::Config;
use kura::gc::collect_garbage;
use kura::recovery::{self, Recovered};
use kura::session::{Session, SessionLimits};
use kura::sql::{Outcome, parse_sql};

fn open(dir: &Path) -> Recovered {
    let mut config = Config::default();
    config.system.data_dir = dir.to_path_buf();
    config.data_store.log_write_mode = 0;
    recovery::open(&config, 2).expect("recovery succeeds")
}

fn session(recovered: &Recovered) -> Session {
    Session::new(
        recovered.engine.clone(),
        SessionLimits {
            synchronous_commit: true,
            ..SessionLimits::from_config(&kura::config::Config::default())
        },
    )
}

async fn run(session: &mut Session, sql: &str) {
    let statement = parse_sql(sql).expect("parses").remove(0);
    session
        .execute(&statement, &ParamValues::List(vec![]))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn value(session: &mut Session, sql: &str) -> i64 {
    let statement = parse_sql(sql).expect("parses").remove(0);
    let outcome = session
        .execute(&statement, &ParamValues::List(vec![]))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let Outcome::Rows { mut stream, .. } = outcome else {
        panic!("{sql} returned no rows");
    };
    let batch = stream.next().await.expect("a batch").expect("no error");
    batch.column(0).as_primitive::<Int64Type>().value(0)
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| {
                    e.expect("dir entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_changed_partitions_are_rewritten_and_old_checkpoints_go() {
    let dir = tempfile::tempdir().expect("temp dir");
    let recovered = open(dir.path());
    let db = recovered.engine.clone();
    let mut s = session(&recovered);
    run(&mut s, "CREATE TABLE a (id bigint PRIMARY KEY, n bigint)").await;
    run(&mut s, "CREATE TABLE b (id bigint PRIMARY KEY, n bigint)").await;
    run(
        &mut s,
        "INSERT INTO a SELECT v, 0 FROM generate_series(1, 5000) AS s(v)",
    )
    .await;
    run(
        &mut s,
        "INSERT INTO b SELECT v, 0 FROM generate_series(1, 5000) AS s(v)",
    )
    .await;

    let first = db.checkpoint().await.expect("checkpoint");
    assert_eq!((first.partitions_written, first.partitions_reused), (2, 0));
    assert_eq!(first.rows_written, 10_000);

    run(&mut s, "UPDATE a SET n = 1 WHERE id <= 10").await;
    let second = db.checkpoint().await.expect("checkpoint");
    assert_eq!(
        (second.partitions_written, second.partitions_reused),
        (1, 1)
    );
    assert_eq!(second.rows_written, 5000);
    assert!(second.lsn > first.lsn);

    let idle = db.checkpoint().await.expect("checkpoint");
    assert_eq!(idle.lsn, second.lsn, "nothing changed, nothing to write");
    assert_eq!(idle.partitions_written, 0);

    run(&mut s, "DELETE FROM b WHERE id > 4000").await;
    let third = db.checkpoint().await.expect("checkpoint");
    assert_eq!((third.partitions_written, third.partitions_reused), (1, 1));
    assert_eq!(third.checkpoints_removed, 1, "retentionCount is 2");

    // Kept: the second checkpoint (a@2, b@1) and the third (a@2, b@3); b@1 is still named by
    // the second, a@1 by nobody.
    let checkpoint_dir = dir.path().join("checkpoint");
    let manifests: Vec<String> = files(&checkpoint_dir)
        .into_iter()
        .filter(|n| n.starts_with("manifest-"))
        .collect();
    assert_eq!(
        manifests,
        vec![
            format!("manifest-{:020}", second.lsn),
            format!("manifest-{:020}", third.lsn)
        ]
    );
    let data = files(&checkpoint_dir.join("data"));
    assert_eq!(data.len(), 3, "data files: {data:?}");
    assert!(!data.contains(&format!("t1_p0_{:020}.kpart", first.lsn)));
    // No log segment older than the second checkpoint remains.
    for name in files(&dir.path().join("txnlog")) {
        let first_lsn: u64 = name.trim_end_matches(".wal").parse().expect("segment name");
        assert!(
            first_lsn > second.lsn,
            "segment {name} should have been removed"
        );
    }
    drop(s);
    drop(recovered);
    drop(db);

    let reopened = open(dir.path());
    assert_eq!(reopened.report.checkpoint_lsn, Some(third.lsn));
    let mut s = session(&reopened);
    assert_eq!(value(&mut s, "SELECT sum(n) FROM a").await, 10);
    assert_eq!(value(&mut s, "SELECT count(*) FROM b").await, 4000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_after_a_checkpoint_of_compacted_chunks_replay_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let recovered = open(dir.path());
    let db = recovered.engine.clone();
    let mut s = session(&recovered);
    run(&mut s, "CREATE TABLE t (id bigint PRIMARY KEY, n bigint)").await;
    run(
        &mut s,
        "INSERT INTO t SELECT v, 0 FROM generate_series(1, 40000) AS s(v)",
    )
    .await;
    // Dead versions everywhere, then compaction rewrites chunks (serials become lists).
    run(&mut s, "UPDATE t SET n = n + 1 WHERE id % 3 = 0").await;
    run(&mut s, "DELETE FROM t WHERE id % 7 = 0").await;
    let stats = collect_garbage(&db).expect("gc");
    assert!(
        stats.chunks_rewritten > 0,
        "compaction must have rewritten chunks"
    );
    db.checkpoint().await.expect("checkpoint");
    // Logged after the checkpoint: deletes and updates of rows loaded from it.
    run(&mut s, "DELETE FROM t WHERE id % 5 = 0").await;
    run(&mut s, "UPDATE t SET n = n + 10 WHERE id % 11 = 0").await;
    run(&mut s, "INSERT INTO t VALUES (100000, 5)").await;
    let count = value(&mut s, "SELECT count(*) FROM t").await;
    let sum = value(&mut s, "SELECT sum(n) FROM t").await;
    let ids = value(&mut s, "SELECT sum(id) FROM t").await;
    drop(s);
    drop(recovered);
    drop(db);

    // Dropping without a shutdown is a crash: the log after the checkpoint is replayed.
    let reopened = open(dir.path());
    assert!(reopened.report.records_replayed >= 3);
    let mut s = session(&reopened);
    assert_eq!(value(&mut s, "SELECT count(*) FROM t").await, count);
    assert_eq!(value(&mut s, "SELECT sum(n) FROM t").await, sum);
    assert_eq!(value(&mut s, "SELECT sum(id) FROM t").await, ids);
    // The primary-key index was rebuilt: a duplicate is still refused.
    let statement = parse_sql("INSERT INTO t VALUES (1, 0)")
        .expect("parses")
        .remove(0);
    let Err(error) = s.execute(&statement, &ParamValues::List(vec![])).await else {
        panic!("a duplicate key must be refused");
    };
    assert_eq!(error.code, "23505");
}
