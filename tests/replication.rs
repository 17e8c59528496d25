//! Replication across processes on 127.0.0.1: a standby follows its primary, serves reads,
//! refuses writes, and can be promoted; the deposed primary comes back fenced.

mod common;

use common::{ADMIN_PASSWORD, TestServer, exec, fails, text_rows, within};

/// Starts a standby of `primary` on a data directory of its own.
fn standby_of(primary: &TestServer, data_dir: &std::path::Path) -> TestServer {
    let upstream = format!("127.0.0.1:{}", primary.port);
    let mut command = TestServer::command(data_dir, &["--standby-of", &upstream]);
    command.env("KURA_REPLICATION_PASSWORD", ADMIN_PASSWORD);
    TestServer::start_command(&mut command, data_dir)
}

/// Runs `sql` on the primary and returns once the standby has applied it: `remote_apply`
/// makes the commit wait for that.
async fn write_applied(primary: &tokio_postgres::Client, sql: &str) {
    exec(primary, "SET synchronous_commit = remote_apply").await;
    exec(primary, sql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_follows_serves_reads_and_refuses_writes() {
    let dir = common::temp_dir();
    let primary = TestServer::start_in(&dir.path().join("primary"), &[]);
    let p = primary.connect().await;
    exec(&p, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)").await;
    exec(&p, "INSERT INTO t VALUES (1, 'one'), (2, 'two')").await;

    let standby = standby_of(&primary, &dir.path().join("standby"));
    let s = standby.connect().await;
    // Written before the standby existed: it catches up from the log, and the next commit
    // waits until the standby has applied it.
    within(
        "a commit applied on the standby",
        write_applied(&p, "INSERT INTO t VALUES (3, 'three')"),
    )
    .await;
    assert_eq!(
        text_rows(&s, "SELECT id, v FROM t ORDER BY id").await,
        ["1|one", "2|two", "3|three"]
    );
    // DDL waits for standbys as `/transaction/replicationMode` says (ASYNC here); the
    // commit after it is applied after it.
    exec(&p, "CREATE TABLE u (k INTEGER)").await;
    within(
        "DDL applied on the standby",
        write_applied(&p, "INSERT INTO u VALUES (7)"),
    )
    .await;
    assert_eq!(text_rows(&s, "SELECT k FROM u").await, ["7"]);

    assert_eq!(text_rows(&s, "SELECT pg_is_in_recovery()").await, ["t"]);
    assert_eq!(text_rows(&p, "SELECT pg_is_in_recovery()").await, ["f"]);
    for write in [
        "INSERT INTO t VALUES (9, 'nine')",
        "UPDATE t SET v = 'x'",
        "DELETE FROM t",
        "CREATE TABLE w (a INTEGER)",
        "DROP TABLE t",
    ] {
        fails(&s, write, "25006").await;
    }
    // Refused inside a block as well, and the block is usable for reads afterwards.
    exec(&s, "BEGIN").await;
    fails(&s, "INSERT INTO t VALUES (9, 'nine')", "25006").await;
    exec(&s, "ROLLBACK").await;
    assert_eq!(text_rows(&s, "SELECT count(*) FROM t").await, ["3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promoted_standby_takes_writes_and_the_old_primary_comes_back_fenced() {
    let dir = common::temp_dir();
    let primary_dir = dir.path().join("primary");
    let mut primary = TestServer::start_in(&primary_dir, &[]);
    let p = primary.connect().await;
    exec(&p, "CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
    let standby = standby_of(&primary, &dir.path().join("standby"));
    let s = standby.connect().await;
    within(
        "a commit applied on the standby",
        write_applied(&p, "INSERT INTO t VALUES (1)"),
    )
    .await;

    primary.kill();
    assert_eq!(text_rows(&s, "SELECT pg_promote()").await, ["t"]);
    assert_eq!(text_rows(&s, "SELECT pg_is_in_recovery()").await, ["f"]);
    exec(&s, "INSERT INTO t VALUES (2)").await;
    assert_eq!(
        text_rows(&s, "SELECT id FROM t ORDER BY id").await,
        ["1", "2"]
    );
    fails(&s, "SELECT pg_promote()", "55000").await;

    // The old primary had a standby: it restarts fenced and refuses writes.
    let old = TestServer::start_in(&primary_dir, &[]);
    let o = old.connect().await;
    assert_eq!(text_rows(&o, "SELECT id FROM t").await, ["1"]);
    let refused = fails(&o, "INSERT INTO t VALUES (3)", "25006").await;
    assert!(refused.contains("read-only"), "{refused}");
}
