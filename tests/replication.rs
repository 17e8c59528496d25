//! Replication across processes on 127.0.0.1: a standby follows its primary, serves reads,
//! refuses writes, reports its state, feeds a standby of its own, and can be promoted; the
//! deposed primary comes back fenced.

mod common;

use common::replicas::{
    event_log_mentions, eventually, kura_client, standby_of, streaming_standbys, write_applied,
};
use common::{ADMIN_PASSWORD, TestServer, connect_to, exec, fails, text_rows, within};

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

    // Where things stand: the primary's view of its standby, the standby's of its primary.
    let applied = text_rows(
        &p,
        "SELECT state, sent_lsn = replay_lsn, replay_lag_bytes, sync_state FROM pg_stat_replication",
    )
    .await;
    assert_eq!(applied, ["streaming|t|0|async"]);
    let receiver = text_rows(
        &s,
        "SELECT status, sender_port, replay_lsn = latest_end_lsn FROM pg_stat_wal_receiver",
    )
    .await;
    assert_eq!(receiver, [format!("streaming|{}|t", primary.port)]);
    assert!(
        text_rows(&p, "SELECT * FROM pg_stat_wal_receiver")
            .await
            .is_empty()
    );
    assert_eq!(text_rows(&s, "SHOW transaction_read_only").await, ["on"]);
    assert_eq!(text_rows(&p, "SHOW transaction_read_only").await, ["off"]);
    assert_eq!(text_rows(&s, "SHOW in_hot_standby").await, ["on"]);
    fails(&s, "SELECT kura_fence()", "55000").await;
    fails(&s, "SELECT pg_current_wal_lsn()", "55000").await;
    assert_eq!(
        text_rows(
            &s,
            "SELECT pg_last_wal_replay_lsn() = pg_last_wal_receive_lsn()"
        )
        .await,
        ["t"]
    );
    assert_eq!(
        text_rows(&p, "SELECT pg_last_wal_replay_lsn() IS NULL").await,
        ["t"]
    );

    // A driver's multi-host string finds the primary whichever host comes first.
    let hosts = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=admin password={ADMIN_PASSWORD} \
         dbname=public target_session_attrs=read-write",
        standby.port, primary.port
    );
    let found = connect_to(&hosts).await;
    assert_eq!(text_rows(&found, "SELECT pg_is_in_recovery()").await, ["f"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_feeds_a_standby_of_its_own() {
    let dir = common::temp_dir();
    let primary = TestServer::start_in(&dir.path().join("primary"), &[]);
    let p = primary.connect().await;
    exec(&p, "CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
    let middle = standby_of(&primary, &dir.path().join("middle"));
    let leaf = standby_of(&middle, &dir.path().join("leaf"));
    let m = middle.connect().await;
    let l = leaf.connect().await;
    streaming_standbys(&m, 1).await;
    write_applied(&p, "INSERT INTO t VALUES (1), (2)").await;
    eventually(&l, "SELECT count(*) FROM t", |rows| rows == ["2"]).await;
    fails(&l, "INSERT INTO t VALUES (3)", "25006").await;
    assert_eq!(
        text_rows(&l, "SELECT sender_port FROM pg_stat_wal_receiver").await,
        [middle.port.to_string()]
    );
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
    // `kura promote` asks the standby, as `SELECT pg_promote()` would.
    let said = kura_client(&["promote", "-p", &standby.port.to_string()]);
    assert!(said.contains("is a primary now, in epoch 1"), "{said}");
    assert_eq!(text_rows(&s, "SELECT pg_is_in_recovery()").await, ["f"]);
    exec(&s, "INSERT INTO t VALUES (2)").await;
    assert_eq!(
        text_rows(&s, "SELECT id FROM t ORDER BY id").await,
        ["1", "2"]
    );
    fails(&s, "SELECT pg_promote()", "55000").await;
    assert_eq!(text_rows(&s, "SHOW in_hot_standby").await, ["off"]);

    // The old primary had a standby: it restarts fenced and refuses writes.
    let old = TestServer::start_in(&primary_dir, &[]);
    let o = old.connect().await;
    assert_eq!(text_rows(&o, "SELECT id FROM t").await, ["1"]);
    let refused = fails(&o, "INSERT INTO t VALUES (3)", "25006").await;
    assert!(refused.contains("read-only"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switchover_swaps_the_roles_without_losing_a_commit() {
    let dir = common::temp_dir();
    let primary_dir = dir.path().join("a");
    let mut old_primary = TestServer::start_in(&primary_dir, &[]);
    let a = old_primary.connect().await;
    exec(&a, "CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
    let standby = standby_of(&old_primary, &dir.path().join("b"));
    streaming_standbys(&a, 1).await;
    for id in 1..=50 {
        exec(&a, &format!("INSERT INTO t VALUES ({id})")).await;
    }

    let said = kura_client(&[
        "switchover",
        "--primary",
        &format!("127.0.0.1:{}", old_primary.port),
        "--standby",
        &format!("127.0.0.1:{}", standby.port),
    ]);
    assert!(said.contains("switchover complete"), "{said}");

    let b = standby.connect().await;
    assert_eq!(text_rows(&b, "SELECT count(*) FROM t").await, ["50"]);
    exec(&b, "INSERT INTO t VALUES (51)").await;
    fails(&a, "INSERT INTO t VALUES (52)", "25006").await;

    // The old primary, restarted as a standby of the new one, streams on from its own log.
    old_primary.terminate();
    let upstream = format!("127.0.0.1:{}", standby.port);
    let mut command = TestServer::command(&primary_dir, &["--standby-of", &upstream]);
    command.env("KURA_REPLICATION_PASSWORD", ADMIN_PASSWORD);
    let follower = TestServer::start_command(&mut command, &primary_dir);
    streaming_standbys(&b, 1).await;
    write_applied(&b, "INSERT INTO t VALUES (53)").await;
    let f = follower.connect().await;
    assert_eq!(
        text_rows(&f, "SELECT count(*), max(id) FROM t").await,
        ["52|53"]
    );
    assert_eq!(text_rows(&f, "SELECT pg_is_in_recovery()").await, ["t"]);
    assert!(!event_log_mentions(&primary_dir, "checkpoint copy"));
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_on_the_primary_releases_the_same_partitions_on_the_standby() {
    let dir = common::temp_dir();
    let primary = TestServer::start_in(&dir.path().join("primary"), &["--test-clock"]);
    let p = primary.connect().await;
    let standby = standby_of(&primary, &dir.path().join("standby"));
    let s = standby.connect().await;
    exec(
        &p,
        "CREATE TABLE ex (ts TIMESTAMP PRIMARY KEY, v INTEGER) USING TIMESERIES \
         WITH (expiration_type='PARTITION', expiration_time=2, expiration_time_unit='DAY') \
         PARTITION BY RANGE (ts) EVERY (1, DAY)",
    )
    .await;
    write_applied(
        &p,
        "INSERT INTO ex VALUES ('2100-01-01 01:00:00', 1), ('2100-01-02 01:00:00', 2), \
         ('2100-01-03 01:00:00', 3)",
    )
    .await;
    let partitions = "SELECT partition_boundary_value FROM \"#table_partitions\" \
                      WHERE table_name = 'ex' ORDER BY partition_seq";
    assert_eq!(text_rows(&s, partitions).await.len(), 3);

    // Day 1 expires on the primary's clock; its reaper releases it, and the release is
    // replicated (the standby's own clock is far from 2100).
    exec(&p, "SET kura.test_clock = '2100-01-04 00:00:01'").await;
    let left = eventually(&p, partitions, |rows| rows.len() == 2).await;
    eventually(&s, partitions, |rows| rows == left.as_slice()).await;
    assert_eq!(
        text_rows(&s, "SELECT v FROM ex ORDER BY ts").await,
        ["2", "3"]
    );
}
