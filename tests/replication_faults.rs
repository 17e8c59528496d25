//! Replication when things go wrong: a standby that stops answering under SEMISYNC (the
//! commit fails with 40003, or the primary degrades to ASYNC, never hangs), a replication
//! connection cut in the middle, a standby killed mid-stream that resumes from its own log,
//! and a standby the primary's log has moved past, which gets a checkpoint copy.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::proxy::Proxy;
use common::replicas::{
    config_file, connect_eventually, event_log_mentions, eventually, eventually_on, standby_of,
    standby_of_port, streaming_standbys, write_applied,
};
use common::{TestServer, exec, fails, text_rows};

/// A SEMISYNC primary (3 s timeout, `action` when it passes) with one standby that reaches it
/// through a proxy, streaming, and table `t (id)`.
struct SemisyncPair {
    _dir: tempfile::TempDir,
    _primary: TestServer,
    _standby: TestServer,
    proxy: Proxy,
    p: tokio_postgres::Client,
    s: tokio_postgres::Client,
}

async fn semisync_pair(action: &str) -> SemisyncPair {
    let dir = common::temp_dir();
    let config = config_file(
        dir.path(),
        "semisync.json",
        &format!(
            r#"{{"transaction": {{"replicationMode": "SEMISYNC",
                                  "replicationTimeoutInterval": "3s",
                                  "replicationTimeoutAction": "{action}"}}}}"#
        ),
    );
    let primary = TestServer::start_in(&dir.path().join("primary"), &["--config", &config]);
    let proxy = Proxy::start(primary.port).await;
    let standby = standby_of_port(proxy.port, &dir.path().join("standby"), &[]);
    let p = primary.connect().await;
    let s = standby.connect().await;
    streaming_standbys(&p, 1).await;
    exec(&p, "CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
    SemisyncPair {
        _dir: dir,
        _primary: primary,
        _standby: standby,
        proxy,
        p,
        s,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_standby_fails_semisync_commits_after_the_timeout() {
    let SemisyncPair { proxy, p, s, .. } = &semisync_pair("FAIL").await;
    exec(p, "INSERT INTO t VALUES (1)").await;

    proxy.freeze();
    let why = fails(p, "INSERT INTO t VALUES (2)", "40003").await;
    assert!(why.contains("did not confirm"), "{why}");
    // The commit is durable here; only its fate on a failover is unknown.
    assert_eq!(
        text_rows(p, "SELECT id FROM t ORDER BY id").await,
        ["1", "2"]
    );
    proxy.thaw();
    eventually(s, "SELECT count(*) FROM t", |rows| rows == ["2"]).await;
    exec(p, "INSERT INTO t VALUES (3)").await;

    // A cut connection: the standby reconnects and resumes where it was.
    proxy.cut();
    eventually(
        p,
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'disconnected'",
        |rows| rows == ["1"],
    )
    .await;
    streaming_standbys(p, 1).await;
    exec(p, "INSERT INTO t VALUES (4)").await;
    eventually(s, "SELECT count(*) FROM t", |rows| rows == ["4"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_standby_degrades_semisync_to_async_until_it_catches_up() {
    let SemisyncPair { proxy, p, s, .. } = &semisync_pair("DEGRADE").await;
    let sync_state = "SELECT sync_state FROM pg_stat_replication";
    assert_eq!(text_rows(p, sync_state).await, ["quorum"]);

    proxy.freeze();
    // The first commit waits out the timeout and succeeds; the primary no longer waits.
    exec(p, "INSERT INTO t VALUES (1)").await;
    assert_eq!(text_rows(p, sync_state).await, ["async"]);
    exec(p, "INSERT INTO t VALUES (2)").await;
    proxy.thaw();
    eventually(p, sync_state, |rows| rows == ["quorum"]).await;
    write_applied(p, "INSERT INTO t VALUES (3)").await;
    assert_eq!(text_rows(s, "SELECT count(*) FROM t").await, ["3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_killed_mid_stream_resumes_from_its_own_log() {
    let dir = common::temp_dir();
    let primary = TestServer::start_in(&dir.path().join("primary"), &[]);
    let p = primary.connect().await;
    exec(&p, "CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
    let standby_dir = dir.path().join("standby");
    let mut standby = standby_of(&primary, &standby_dir);
    streaming_standbys(&p, 1).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let client = primary.connect().await;
        tokio::spawn(async move {
            let mut id = 0;
            while !stop.load(Ordering::Acquire) {
                id += 1;
                exec(&client, &format!("INSERT INTO t VALUES ({id})")).await;
            }
            id
        })
    };
    eventually(&p, "SELECT count(*) >= 200 FROM t", |rows| rows == ["t"]).await;
    standby.kill();
    eventually(&p, "SELECT count(*) >= 400 FROM t", |rows| rows == ["t"]).await;
    let standby = standby_of(&primary, &standby_dir);
    let s = standby.connect().await;
    streaming_standbys(&p, 1).await;
    stop.store(true, Ordering::Release);
    let written = writer.await.expect("the writer");
    write_applied(&p, "INSERT INTO t VALUES (0)").await;
    let expected = format!("{}|{}", written + 1, written * (written + 1) / 2);
    assert_eq!(
        text_rows(&s, "SELECT count(*), sum(id) FROM t").await,
        [expected]
    );
    assert!(!event_log_mentions(&standby_dir, "checkpoint copy"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_the_log_has_moved_past_gets_a_checkpoint_copy() {
    let dir = common::temp_dir();
    // Small segments, one checkpoint kept and no log kept for absent standbys: a checkpoint
    // removes what the standby would need.
    let config = config_file(
        dir.path(),
        "primary.json",
        r#"{"dataStore": {"logSegmentSize": "1MB"}, "checkpoint": {"retentionCount": 1},
            "sync": {"keepLogInterval": "0s"}}"#,
    );
    let primary = TestServer::start_in(&dir.path().join("primary"), &["--config", &config]);
    let p = primary.connect().await;
    exec(&p, "CREATE TABLE t (id INTEGER PRIMARY KEY, pad TEXT)").await;
    let standby_dir = dir.path().join("standby");
    let mut standby = standby_of(&primary, &standby_dir);
    write_applied(&p, "INSERT INTO t VALUES (0, 'first')").await;
    standby.kill();
    eventually(&p, "SELECT state FROM pg_stat_replication", |rows| {
        rows == ["disconnected"]
    })
    .await;

    for batch in 0..4 {
        exec(
            &p,
            &format!(
                "INSERT INTO t SELECT {batch} * 1000 + g, repeat('x', 1000) \
                 FROM generate_series(1, 1000) AS g"
            ),
        )
        .await;
    }
    exec(&p, "CHECKPOINT").await;
    exec(&p, "INSERT INTO t VALUES (-1, 'after the checkpoint')").await;

    let standby = standby_of(&primary, &standby_dir);
    // It installs the copy and re-executes itself on the same port.
    eventually_on(standby.port, "SELECT count(*) FROM t", |rows| {
        rows == ["4002"]
    })
    .await;
    assert!(event_log_mentions(&standby_dir, "checkpoint copy received"));
    write_applied(&p, "INSERT INTO t VALUES (-2, 'streamed')").await;
    let s = connect_eventually(standby.port).await;
    assert_eq!(
        text_rows(&s, "SELECT pad FROM t WHERE id < 0 ORDER BY id").await,
        ["streamed", "after the checkpoint"]
    );
}
