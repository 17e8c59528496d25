//! Failover under load, per replication mode: a primary with two standbys takes concurrent
//! writes, is killed with SIGKILL, and the most advanced standby is promoted with `kura
//! promote`. SYNC and SEMISYNC must not lose a commit they acknowledged; ASYNC may lose only
//! the newest ones, and the test reports how many. The other standby and the old primary are
//! then re-attached to the new primary.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::replicas::{
    config_file, connect_eventually, eventually, kura_client, standby_of_port, streaming_standbys,
    write_applied,
};
use common::{ADMIN_PASSWORD, TestServer, connect_to, exec, fails, text_rows};
use parking_lot::Mutex;

const WRITERS: i64 = 4;
/// How long before the kill an ASYNC commit may have been acknowledged and still be lost:
/// the standbys receive a commit as soon as it is written, so only the last moments count.
const ASYNC_LOSS_WINDOW: Duration = Duration::from_secs(5);

/// What the writers saw: each acknowledged id with when it was acknowledged, and every id
/// they tried.
#[derive(Default)]
struct Outcomes {
    acknowledged: Vec<(i64, Instant)>,
    attempted: BTreeSet<i64>,
}

async fn write_until_stopped(
    port: u16,
    writer: i64,
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Outcomes>>,
) {
    let client = connect_to(&format!(
        "host=127.0.0.1 port={port} user=admin password={ADMIN_PASSWORD} dbname=public"
    ))
    .await;
    let insert = client
        .prepare("INSERT INTO t VALUES ($1, $2)")
        .await
        .expect("prepare the insert");
    let mut n = 0i64;
    while !stop.load(Ordering::Acquire) {
        let id = writer * 1_000_000 + n;
        n += 1;
        outcomes.lock().attempted.insert(id);
        match client
            .execute(&insert, &[&(id as i32), &(writer as i32)])
            .await
        {
            Ok(_) => outcomes.lock().acknowledged.push((id, Instant::now())),
            // The primary is gone: this commit's outcome is unknown; it is only attempted.
            Err(_) => return,
        }
    }
}

async fn ids(client: &tokio_postgres::Client) -> BTreeSet<i64> {
    text_rows(client, "SELECT id FROM t")
        .await
        .iter()
        .map(|id| id.parse().expect("an id"))
        .collect()
}

/// The standby that has received the most of the log.
async fn most_advanced(standbys: &[(TestServer, tokio_postgres::Client)]) -> usize {
    let mut best = (0, -1i64);
    for (i, (_, client)) in standbys.iter().enumerate() {
        let received: i64 = text_rows(client, "SELECT received_lsn FROM pg_stat_wal_receiver")
            .await[0]
            .parse()
            .expect("an LSN");
        if received > best.1 {
            best = (i, received);
        }
    }
    best.0
}

fn promote(port: u16) {
    let said = kura_client(&["promote", "-p", &port.to_string()]);
    assert!(said.contains("is a primary now"), "{said}");
}

async fn fail_over(mode: &str) {
    let dir = common::temp_dir();
    // Generous timeouts: a slow machine must not turn a wait into a failed commit.
    let config = config_file(
        dir.path(),
        "primary.json",
        &format!(
            r#"{{"transaction": {{"replicationMode": "{mode}", "replicationTimeoutInterval": "60s"}},
                "cluster": {{"replicationNum": 2}}}}"#
        ),
    );
    let primary_dir = dir.path().join("primary");
    let mut primary = TestServer::start_in(&primary_dir, &["--config", &config]);
    let p = primary.connect().await;
    let mut standbys = Vec::new();
    for name in ["s1", "s2"] {
        let standby = standby_of_port(primary.port, &dir.path().join(name), &[]);
        let client = standby.connect().await;
        standbys.push((standby, client));
    }
    streaming_standbys(&p, 2).await;
    // Under SEMISYNC and SYNC even DDL waits for a standby, so the table comes after them.
    exec(
        &p,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER)",
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(write_until_stopped(
                primary.port,
                w,
                stop.clone(),
                outcomes.clone(),
            ))
        })
        .collect();
    // Kill the primary in the middle of the load, once a good number of commits are in.
    let started = Instant::now();
    while outcomes.lock().acknowledged.len() < 300 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    primary.kill();
    let killed_at = Instant::now();
    stop.store(true, Ordering::Release);
    for writer in writers {
        writer.await.expect("a writer task");
    }

    let chosen = most_advanced(&standbys).await;
    let (mut other_standby, _) = standbys.remove(1 - chosen);
    let (new_primary, n) = standbys.remove(0);
    let n = &n;
    promote(new_primary.port);
    let survived = ids(n).await;
    let Outcomes {
        acknowledged,
        attempted,
    } = std::mem::take(&mut *outcomes.lock());
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|(id, _)| !survived.contains(id))
        .collect();
    eprintln!(
        "{mode}: {} commits acknowledged, {} survived the failover, {} acknowledged and lost",
        acknowledged.len(),
        survived.len(),
        lost.len()
    );
    assert!(acknowledged.len() >= 300, "too few commits");
    assert!(survived.is_subset(&attempted), "rows no writer wrote");
    if mode == "ASYNC" {
        for (id, at) in &lost {
            assert!(
                killed_at.duration_since(*at) < ASYNC_LOSS_WINDOW,
                "id {id}, acknowledged {:?} before the kill, was lost",
                killed_at.duration_since(*at)
            );
        }
    } else {
        assert!(
            lost.is_empty(),
            "{mode} lost acknowledged commits: {lost:?}"
        );
    }

    // The new primary takes writes; the other standby follows it (after a checkpoint copy if
    // it had received more than the promoted one).
    exec(n, "INSERT INTO t VALUES (-1, -1)").await;
    let other_dir = other_standby.data_dir();
    other_standby.kill();
    let follower = standby_of_port(new_primary.port, &other_dir, &[]);
    let f = connect_eventually(follower.port).await;
    write_applied(n, "INSERT INTO t VALUES (-2, -2)").await;
    let expected = ids(n).await;
    eventually(&f, "SELECT count(*) FROM t", |rows| {
        rows == [expected.len().to_string()]
    })
    .await;
    assert_eq!(ids(&f).await, expected);

    // The old primary comes back fenced: it had standbys, one of which took over.
    let old = TestServer::start_in(&primary_dir, &["--config", &config]);
    let o = old.connect().await;
    fails(&o, "INSERT INTO t VALUES (-3, -3)", "25006").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_failover_loses_no_acknowledged_commit() {
    fail_over("SYNC").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn semisync_failover_loses_no_acknowledged_commit() {
    fail_over("SEMISYNC").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn async_failover_loses_only_the_newest_commits() {
    fail_over("ASYNC").await;
}
