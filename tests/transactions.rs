//! Transactions seen from several concurrent clients: visibility (no dirty reads, own writes),
//! READ COMMITTED and REPEATABLE READ snapshots, write-write conflicts (waiting, 40001),
//! lock timeouts, deadlocks, unique-key races, savepoints, and correctness while the
//! background garbage collector runs.
//!
//! Synchronisation is on statement completion only. Where a test asserts that a statement
//! *blocks*, it checks that the statement has not completed after a grace period; that check
//! can only pass spuriously on a very slow machine, never fail spuriously.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{TestServer, affected, exec, sqlstate, text_rows as rows, within};
use tokio::sync::Barrier;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

/// How long a statement that should wait for a lock must stay pending.
const STILL_BLOCKED: Duration = Duration::from_millis(300);

async fn scalar_i64(client: &Client, sql: &str) -> i64 {
    within(sql, client.query_one(sql, &[]))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// Runs `sql` on `client` in a task, so the test can observe whether it blocks.
fn spawn_exec(
    client: &Arc<Client>,
    sql: &'static str,
) -> JoinHandle<Result<u64, tokio_postgres::Error>> {
    let client = client.clone();
    tokio::spawn(async move { client.execute(sql, &[]).await })
}

/// Asserts that the task is still running after [`STILL_BLOCKED`].
async fn assert_blocked<T: std::fmt::Debug>(task: &mut JoinHandle<T>, what: &str) {
    if let Ok(done) = tokio::time::timeout(STILL_BLOCKED, task).await {
        panic!("{what} should wait for the other transaction, but finished: {done:?}");
    }
}

async fn finish<T>(task: JoinHandle<T>, what: &str) -> T {
    within(what, task).await.expect("task panicked")
}

// ------------------------------------------------------------------ visibility

#[tokio::test]
async fn autocommit_and_commit_visibility() {
    let server = TestServer::start();
    let a = server.connect().await;
    let b = server.connect().await;
    exec(&a, "CREATE TABLE vis (k int PRIMARY KEY, v text)").await;

    // Autocommit: visible to others as soon as the statement returns.
    assert_eq!(affected(&a, "INSERT INTO vis VALUES (1, 'a')").await, 1);
    assert_eq!(rows(&b, "SELECT k, v FROM vis").await, ["1|a"]);

    // Inside a block nothing is visible to others before COMMIT.
    exec(&a, "BEGIN").await;
    assert_eq!(affected(&a, "INSERT INTO vis VALUES (2, 'b')").await, 1);
    assert_eq!(affected(&a, "UPDATE vis SET v = 'a2' WHERE k = 1").await, 1);
    assert_eq!(affected(&a, "INSERT INTO vis VALUES (3, 'c')").await, 1);
    assert_eq!(affected(&a, "DELETE FROM vis WHERE k = 3").await, 1);
    assert_eq!(
        rows(&b, "SELECT k, v FROM vis ORDER BY k").await,
        ["1|a"],
        "no dirty reads"
    );
    assert_eq!(scalar_i64(&b, "SELECT count(*) FROM vis").await, 1);
    assert_eq!(
        rows(&a, "SELECT k, v FROM vis ORDER BY k").await,
        ["1|a2", "2|b"],
        "a transaction sees its own writes"
    );
    exec(&a, "COMMIT").await;
    assert_eq!(
        rows(&b, "SELECT k, v FROM vis ORDER BY k").await,
        ["1|a2", "2|b"]
    );

    // An uncommitted DELETE is invisible to others too.
    exec(&a, "BEGIN; DELETE FROM vis WHERE k = 1").await;
    assert_eq!(rows(&b, "SELECT k FROM vis ORDER BY k").await, ["1", "2"]);
    assert_eq!(rows(&a, "SELECT k FROM vis ORDER BY k").await, ["2"]);
    exec(&a, "COMMIT").await;
    assert_eq!(rows(&b, "SELECT k FROM vis ORDER BY k").await, ["2"]);
}

#[tokio::test]
async fn rollback_discards_everything() {
    let server = TestServer::start();
    let a = server.connect().await;
    let b = server.connect().await;
    exec(
        &a,
        "CREATE TABLE rb (k int PRIMARY KEY, v int); INSERT INTO rb VALUES (1, 10), (2, 20)",
    )
    .await;
    exec(&a, "BEGIN").await;
    assert_eq!(affected(&a, "INSERT INTO rb VALUES (3, 30)").await, 1);
    assert_eq!(affected(&a, "UPDATE rb SET v = v + 1").await, 3);
    assert_eq!(affected(&a, "DELETE FROM rb WHERE k = 1").await, 1);
    assert_eq!(
        rows(&a, "SELECT k, v FROM rb ORDER BY k").await,
        ["2|21", "3|31"]
    );
    exec(&a, "ROLLBACK").await;
    for client in [&a, &b] {
        assert_eq!(
            rows(client, "SELECT k, v FROM rb ORDER BY k").await,
            ["1|10", "2|20"]
        );
    }
    // The rolled-back insert left no trace: the key is free again.
    assert_eq!(affected(&b, "INSERT INTO rb VALUES (3, 33)").await, 1);
    assert_eq!(
        rows(&a, "SELECT k, v FROM rb ORDER BY k").await,
        ["1|10", "2|20", "3|33"]
    );
}

#[tokio::test]
async fn transaction_sees_its_own_writes() {
    let server = TestServer::start();
    let a = server.connect().await;
    exec(&a, "CREATE TABLE own (k int PRIMARY KEY, v text)").await;
    exec(&a, "INSERT INTO own VALUES (1, 'one'), (2, 'two')").await;
    exec(&a, "BEGIN").await;
    exec(&a, "INSERT INTO own VALUES (3, 'three')").await;
    assert_eq!(
        rows(&a, "SELECT k, v FROM own ORDER BY k").await,
        ["1|one", "2|two", "3|three"]
    );
    // Update a committed row and a row inserted by this transaction.
    assert_eq!(
        affected(&a, "UPDATE own SET v = v || '!' WHERE k IN (1, 3)").await,
        2
    );
    assert_eq!(
        rows(&a, "SELECT k, v FROM own ORDER BY k").await,
        ["1|one!", "2|two", "3|three!"]
    );
    // Update the same row twice.
    assert_eq!(
        affected(&a, "UPDATE own SET v = v || '?' WHERE k = 1").await,
        1
    );
    assert_eq!(rows(&a, "SELECT v FROM own WHERE k = 1").await, ["one!?"]);
    // Delete a committed row and a row inserted by this transaction.
    assert_eq!(affected(&a, "DELETE FROM own WHERE k IN (2, 3)").await, 2);
    assert_eq!(
        rows(&a, "SELECT k, v FROM own ORDER BY k").await,
        ["1|one!?"]
    );
    // A deleted key can be inserted again in the same transaction.
    exec(
        &a,
        "INSERT INTO own VALUES (2, 'two again'), (3, 'three again')",
    )
    .await;
    assert_eq!(
        rows(&a, "SELECT k, v FROM own ORDER BY k").await,
        ["1|one!?", "2|two again", "3|three again"]
    );
    // Aggregates and filters see the same state.
    assert_eq!(
        scalar_i64(&a, "SELECT count(*) FROM own WHERE k > 1").await,
        2
    );
    // The extended protocol sees the same writes.
    let v: String = within(
        "extended",
        a.query_one("SELECT v FROM own WHERE k = $1", &[&2i32]),
    )
    .await
    .unwrap()
    .get(0);
    assert_eq!(v, "two again");
    exec(&a, "COMMIT").await;
    let b = server.connect().await;
    assert_eq!(
        rows(&b, "SELECT k, v FROM own ORDER BY k").await,
        ["1|one!?", "2|two again", "3|three again"]
    );
}

// ------------------------------------------------------------------ isolation levels

#[tokio::test]
async fn read_committed_sees_rows_committed_between_statements() {
    let server = TestServer::start();
    let a = server.connect().await;
    let b = server.connect().await;
    exec(
        &a,
        "CREATE TABLE rc (k int PRIMARY KEY, v int); INSERT INTO rc VALUES (1, 1)",
    )
    .await;
    exec(&a, "BEGIN").await;
    assert_eq!(
        rows(&a, "SHOW transaction_isolation").await,
        ["read committed"]
    );
    assert_eq!(rows(&a, "SELECT k, v FROM rc ORDER BY k").await, ["1|1"]);
    exec(
        &b,
        "INSERT INTO rc VALUES (2, 2); UPDATE rc SET v = 10 WHERE k = 1",
    )
    .await;
    assert_eq!(
        rows(&a, "SELECT k, v FROM rc ORDER BY k").await,
        ["1|10", "2|2"],
        "each READ COMMITTED statement takes a new snapshot"
    );
    // Uncommitted changes of B stay invisible.
    exec(&b, "BEGIN; DELETE FROM rc WHERE k = 2").await;
    assert_eq!(
        rows(&a, "SELECT k, v FROM rc ORDER BY k").await,
        ["1|10", "2|2"]
    );
    exec(&b, "COMMIT").await;
    assert_eq!(rows(&a, "SELECT k, v FROM rc ORDER BY k").await, ["1|10"]);
    exec(&a, "COMMIT").await;
}

#[tokio::test]
async fn repeatable_read_keeps_its_snapshot() {
    let server = TestServer::start();
    let a = server.connect().await;
    let b = server.connect().await;
    exec(
        &a,
        "CREATE TABLE rr (k int PRIMARY KEY, v int); INSERT INTO rr VALUES (1, 1), (2, 2)",
    )
    .await;
    exec(&a, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    assert_eq!(
        rows(&a, "SHOW transaction_isolation").await,
        ["repeatable read"]
    );
    // The snapshot is taken by the first statement.
    assert_eq!(
        rows(&a, "SELECT k, v FROM rr ORDER BY k").await,
        ["1|1", "2|2"]
    );
    exec(
        &b,
        "INSERT INTO rr VALUES (3, 3); UPDATE rr SET v = 10 WHERE k = 1; DELETE FROM rr WHERE k = 2",
    )
    .await;
    assert_eq!(
        rows(&b, "SELECT k, v FROM rr ORDER BY k").await,
        ["1|10", "3|3"]
    );
    assert_eq!(
        rows(&a, "SELECT k, v FROM rr ORDER BY k").await,
        ["1|1", "2|2"],
        "REPEATABLE READ does not see later commits"
    );
    assert_eq!(scalar_i64(&a, "SELECT sum(v) FROM rr").await, 3);
    // Its own writes are visible on top of the snapshot.
    exec(&a, "INSERT INTO rr VALUES (4, 4)").await;
    assert_eq!(
        rows(&a, "SELECT k, v FROM rr ORDER BY k").await,
        ["1|1", "2|2", "4|4"]
    );
    exec(&a, "COMMIT").await;
    assert_eq!(
        rows(&a, "SELECT k, v FROM rr ORDER BY k").await,
        ["1|10", "3|3", "4|4"]
    );

    // SET TRANSACTION right after BEGIN works the same way.
    exec(&a, "BEGIN; SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await;
    assert_eq!(scalar_i64(&a, "SELECT count(*) FROM rr").await, 3);
    exec(&b, "INSERT INTO rr VALUES (5, 5)").await;
    assert_eq!(scalar_i64(&a, "SELECT count(*) FROM rr").await, 3);
    exec(&a, "COMMIT").await;
    assert_eq!(scalar_i64(&a, "SELECT count(*) FROM rr").await, 4);

    // A session default applies to the following transactions.
    exec(
        &a,
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    )
    .await;
    exec(&a, "BEGIN").await;
    assert_eq!(
        rows(&a, "SHOW transaction_isolation").await,
        ["repeatable read"]
    );
    assert_eq!(scalar_i64(&a, "SELECT count(*) FROM rr").await, 4);
    exec(&b, "DELETE FROM rr WHERE k = 5").await;
    assert_eq!(scalar_i64(&a, "SELECT count(*) FROM rr").await, 4);
    exec(&a, "COMMIT").await;
    assert_eq!(scalar_i64(&a, "SELECT count(*) FROM rr").await, 3);
}

// ------------------------------------------------------------------ write-write conflicts

async fn counter_table(server: &TestServer) -> (Arc<Client>, Arc<Client>) {
    let a = Arc::new(server.connect().await);
    let b = Arc::new(server.connect().await);
    exec(
        &a,
        "CREATE TABLE counter (id int PRIMARY KEY, n bigint); INSERT INTO counter VALUES (1, 0), (2, 0)",
    )
    .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_update_waits_and_applies_on_top() {
    let server = TestServer::start();
    let (a, b) = counter_table(&server).await;
    exec(&a, "BEGIN").await;
    assert_eq!(
        affected(&a, "UPDATE counter SET n = n + 1 WHERE id = 1").await,
        1
    );
    exec(&b, "BEGIN").await;
    let mut second = spawn_exec(&b, "UPDATE counter SET n = n + 1 WHERE id = 1");
    assert_blocked(&mut second, "B's UPDATE of a row A has updated").await;
    // Other rows are not locked, and readers are not blocked.
    let c = server.connect().await;
    assert_eq!(
        affected(&c, "UPDATE counter SET n = n + 5 WHERE id = 2").await,
        1
    );
    assert_eq!(
        rows(&c, "SELECT id, n FROM counter ORDER BY id").await,
        ["1|0", "2|5"]
    );
    exec(&a, "COMMIT").await;
    let n = finish(second, "B's UPDATE after A's COMMIT")
        .await
        .expect("under READ COMMITTED the waiting UPDATE proceeds");
    assert_eq!(n, 1);
    assert_eq!(
        rows(&b, "SELECT n FROM counter WHERE id = 1").await,
        ["2"],
        "B applied its increment on top of A's committed value"
    );
    exec(&b, "COMMIT").await;
    assert_eq!(
        rows(&c, "SELECT id, n FROM counter ORDER BY id").await,
        ["1|2", "2|5"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_update_rechecks_where_after_waiting() {
    let server = TestServer::start();
    let (a, b) = counter_table(&server).await;
    exec(&a, "BEGIN").await;
    assert_eq!(
        affected(&a, "UPDATE counter SET n = n + 1 WHERE id = 1").await,
        1
    );
    // B only wants to update the row while n is still 0.
    let mut second = spawn_exec(&b, "UPDATE counter SET n = 100 WHERE id = 1 AND n = 0");
    assert_blocked(&mut second, "B's conditional UPDATE").await;
    exec(&a, "COMMIT").await;
    let n = finish(second, "B's UPDATE").await.expect("no error");
    assert_eq!(
        n, 0,
        "after A's commit the row no longer matches n = 0, so B updates nothing"
    );
    assert_eq!(rows(&a, "SELECT n FROM counter WHERE id = 1").await, ["1"]);

    // Same with DELETE: the row A deleted is gone for B's waiting DELETE.
    exec(&a, "BEGIN; DELETE FROM counter WHERE id = 2").await;
    let mut second = spawn_exec(&b, "DELETE FROM counter WHERE id = 2");
    assert_blocked(&mut second, "B's DELETE of a row A deleted").await;
    exec(&a, "COMMIT").await;
    assert_eq!(finish(second, "B's DELETE").await.expect("no error"), 0);
    assert_eq!(rows(&b, "SELECT id FROM counter").await, ["1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeatable_read_update_conflict_fails_with_40001() {
    let server = TestServer::start();
    let (a, b) = counter_table(&server).await;
    exec(&b, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    // B's snapshot is taken here, before A's change.
    assert_eq!(rows(&b, "SELECT n FROM counter WHERE id = 1").await, ["0"]);
    exec(&a, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    assert_eq!(
        affected(&a, "UPDATE counter SET n = n + 1 WHERE id = 1").await,
        1
    );
    let mut second = spawn_exec(&b, "UPDATE counter SET n = n + 1 WHERE id = 1");
    assert_blocked(&mut second, "B's UPDATE of a row A has updated").await;
    exec(&a, "COMMIT").await;
    let e = finish(second, "B's UPDATE")
        .await
        .expect_err("the row changed after B's snapshot");
    assert_eq!(sqlstate(&e), Some("40001"), "{e:?}");
    // B's transaction is now failed.
    let e = within("after", b.batch_execute("SELECT 1"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P02"));
    exec(&b, "ROLLBACK").await;
    assert_eq!(rows(&b, "SELECT n FROM counter WHERE id = 1").await, ["1"]);

    // Retrying the whole transaction works.
    exec(&b, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    assert_eq!(
        affected(&b, "UPDATE counter SET n = n + 1 WHERE id = 1").await,
        1
    );
    exec(&b, "COMMIT").await;
    assert_eq!(rows(&a, "SELECT n FROM counter WHERE id = 1").await, ["2"]);

    // If the first writer rolls back instead, the waiting REPEATABLE READ update proceeds.
    exec(&b, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    assert_eq!(rows(&b, "SELECT n FROM counter WHERE id = 1").await, ["2"]);
    exec(&a, "BEGIN; UPDATE counter SET n = 50 WHERE id = 1").await;
    let mut second = spawn_exec(&b, "UPDATE counter SET n = n + 1 WHERE id = 1");
    assert_blocked(&mut second, "B's UPDATE").await;
    exec(&a, "ROLLBACK").await;
    assert_eq!(
        finish(second, "B's UPDATE")
            .await
            .expect("A rolled back: no conflict"),
        1
    );
    exec(&b, "COMMIT").await;
    assert_eq!(rows(&a, "SELECT n FROM counter WHERE id = 1").await, ["3"]);

    // A row changed and committed after the snapshot, with no wait at all, also conflicts.
    exec(&b, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    assert_eq!(rows(&b, "SELECT n FROM counter WHERE id = 1").await, ["3"]);
    exec(&a, "UPDATE counter SET n = n + 1 WHERE id = 1").await;
    let e = within(
        "stale delete",
        b.execute("DELETE FROM counter WHERE id = 1", &[]),
    )
    .await
    .expect_err("the row changed after B's snapshot");
    assert_eq!(sqlstate(&e), Some("40001"), "{e:?}");
    exec(&b, "ROLLBACK").await;
    assert_eq!(rows(&a, "SELECT n FROM counter WHERE id = 1").await, ["4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_autocommit_increments_are_not_lost() {
    const TASKS: usize = 8;
    const ROUNDS: usize = 50;
    let server = TestServer::start();
    let (a, _) = counter_table(&server).await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let client = server.connect().await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            for round in 0..ROUNDS {
                match client
                    .execute("UPDATE counter SET n = n + 1 WHERE id = 1", &[])
                    .await
                {
                    Ok(1) => {}
                    other => return Err(format!("task {t} round {round}: {other:?}")),
                }
            }
            Ok(())
        }));
    }
    let mut errors = Vec::new();
    for task in tasks {
        if let Err(e) = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("increments finish within 60s")
            .expect("task panicked")
        {
            errors.push(e);
        }
    }
    assert!(
        errors.is_empty(),
        "{} failed increments:\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert_eq!(
        rows(&a, "SELECT n FROM counter WHERE id = 1").await,
        [(TASKS * ROUNDS).to_string()]
    );
}

// ------------------------------------------------------------------ locks

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_timeout_fails_with_55p03() {
    let server = TestServer::start();
    let (a, b) = counter_table(&server).await;
    exec(&a, "BEGIN; UPDATE counter SET n = 1 WHERE id = 1").await;
    exec(&b, "SET lock_timeout = '200ms'").await;
    assert_eq!(rows(&b, "SHOW lock_timeout").await, ["200ms"]);

    // Autocommit statement.
    let started = Instant::now();
    let e = within(
        "locked update",
        b.execute("UPDATE counter SET n = 2 WHERE id = 1", &[]),
    )
    .await
    .expect_err("the row is locked by A");
    let waited = started.elapsed();
    assert_eq!(sqlstate(&e), Some("55P03"), "{e:?}");
    assert!(
        waited >= Duration::from_millis(150),
        "gave up after {waited:?}, before lock_timeout"
    );
    // Reading the locked row does not wait.
    assert_eq!(rows(&b, "SELECT n FROM counter WHERE id = 1").await, ["0"]);

    // Inside a block, the timeout fails the block.
    exec(&b, "BEGIN").await;
    let e = within(
        "locked delete",
        b.execute("DELETE FROM counter WHERE id = 1", &[]),
    )
    .await
    .expect_err("the row is locked by A");
    assert_eq!(sqlstate(&e), Some("55P03"), "{e:?}");
    let e = within("after", b.batch_execute("SELECT 1"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P02"));
    exec(&b, "ROLLBACK").await;

    // Once A commits, the row is free.
    exec(&a, "COMMIT").await;
    assert_eq!(
        affected(&b, "UPDATE counter SET n = n + 1 WHERE id = 1").await,
        1
    );
    assert_eq!(rows(&a, "SELECT n FROM counter WHERE id = 1").await, ["2"]);

    // SET lock_timeout TO DEFAULT (0: wait for the holder) makes B wait again.
    exec(&b, "SET lock_timeout TO DEFAULT").await;
    exec(&a, "BEGIN; UPDATE counter SET n = 10 WHERE id = 1").await;
    let mut waiting = spawn_exec(&b, "UPDATE counter SET n = n + 1 WHERE id = 1");
    assert_blocked(&mut waiting, "B's UPDATE without lock_timeout").await;
    exec(&a, "COMMIT").await;
    assert_eq!(finish(waiting, "B's UPDATE").await.unwrap(), 1);
    assert_eq!(rows(&a, "SELECT n FROM counter WHERE id = 1").await, ["11"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlock_is_detected_and_one_transaction_proceeds() {
    let server = TestServer::start();
    let (a, b) = counter_table(&server).await;
    exec(&a, "BEGIN; UPDATE counter SET n = n + 1 WHERE id = 1").await;
    exec(&b, "BEGIN; UPDATE counter SET n = n + 10 WHERE id = 2").await;
    // Each now wants the row the other holds.
    let mut a_task = spawn_exec(&a, "UPDATE counter SET n = n + 1 WHERE id = 2");
    let mut b_task = spawn_exec(&b, "UPDATE counter SET n = n + 10 WHERE id = 1");
    // The first to finish must be the deadlock victim; the other waits for it to end.
    let (victim, victim_result, victim_client, survivor_client, survivor_task) =
        within("deadlock detection", async {
            tokio::select! {
                r = &mut a_task => ("A", r.expect("task panicked"), &a, &b, b_task),
                r = &mut b_task => ("B", r.expect("task panicked"), &b, &a, a_task),
            }
        })
        .await;
    let e = victim_result.expect_err("the first statement to return is the deadlock victim");
    assert_eq!(sqlstate(&e), Some("40P01"), "victim {victim}: {e:?}");
    let e = within("after", victim_client.batch_execute("SELECT 1"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P02"), "the victim's block has failed");
    exec(victim_client, "ROLLBACK").await;
    assert_eq!(
        finish(survivor_task, "survivor's UPDATE")
            .await
            .expect("the other transaction proceeds"),
        1
    );
    exec(survivor_client, "COMMIT").await;
    let want = if victim == "A" {
        ["1|10", "2|10"]
    } else {
        ["1|1", "2|1"]
    };
    assert_eq!(
        rows(&a, "SELECT id, n FROM counter ORDER BY id").await,
        want,
        "only the survivor's updates remain (victim {victim})"
    );
}

// ------------------------------------------------------------------ unique keys

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_violation_race_in_autocommit() {
    const TASKS: usize = 8;
    const KEYS: i32 = 10;
    let server = TestServer::start();
    let setup = server.connect().await;
    exec(&setup, "CREATE TABLE uq (k int PRIMARY KEY, who int)").await;
    let mut clients = Vec::new();
    for _ in 0..TASKS {
        clients.push(Arc::new(server.connect().await));
    }
    for key in 0..KEYS {
        let barrier = Arc::new(Barrier::new(TASKS));
        let tasks: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(who, client)| {
                let client = client.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    client
                        .execute("INSERT INTO uq VALUES ($1, $2)", &[&key, &(who as i32)])
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (who, task) in tasks.into_iter().enumerate() {
            match finish(task, "insert").await {
                Ok(1) => winners.push(who),
                Err(e) if sqlstate(&e) == Some("23505") => {}
                other => panic!("key {key}, task {who}: {other:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "key {key}: exactly one insert wins: {winners:?}"
        );
        assert_eq!(
            rows(&setup, &format!("SELECT who FROM uq WHERE k = {key}")).await,
            [winners[0].to_string()]
        );
    }
    assert_eq!(
        scalar_i64(&setup, "SELECT count(*) FROM uq").await,
        KEYS as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_violation_between_open_transactions() {
    let server = TestServer::start();
    let a = Arc::new(server.connect().await);
    let b = Arc::new(server.connect().await);
    exec(&a, "CREATE TABLE uq2 (k int PRIMARY KEY, who text)").await;
    exec(&a, "BEGIN; INSERT INTO uq2 VALUES (1, 'a')").await;
    exec(&b, "BEGIN").await;
    // B's insert may wait for A (as in PostgreSQL) or succeed provisionally.
    let second = spawn_exec(&b, "INSERT INTO uq2 VALUES (1, 'b')");
    exec(&a, "COMMIT").await;
    match finish(second, "B's INSERT").await {
        Err(e) => {
            assert_eq!(sqlstate(&e), Some("23505"), "{e:?}");
            exec(&b, "ROLLBACK").await;
        }
        Ok(n) => {
            assert_eq!(n, 1);
            let e = within("B's COMMIT", b.batch_execute("COMMIT"))
                .await
                .expect_err("A committed the key first");
            assert_eq!(sqlstate(&e), Some("23505"), "{e:?}");
        }
    }
    assert_eq!(rows(&a, "SELECT k, who FROM uq2").await, ["1|a"]);
    // B's session is usable and idle afterwards.
    assert_eq!(affected(&b, "INSERT INTO uq2 VALUES (2, 'b')").await, 1);
    assert_eq!(
        rows(&a, "SELECT k, who FROM uq2 ORDER BY k").await,
        ["1|a", "2|b"]
    );

    // If A rolls back instead, B's insert of the same key succeeds.
    exec(&a, "BEGIN; INSERT INTO uq2 VALUES (3, 'a')").await;
    exec(&b, "BEGIN").await;
    let second = spawn_exec(&b, "INSERT INTO uq2 VALUES (3, 'b')");
    exec(&a, "ROLLBACK").await;
    assert_eq!(finish(second, "B's INSERT").await.expect("key is free"), 1);
    exec(&b, "COMMIT").await;
    assert_eq!(rows(&a, "SELECT who FROM uq2 WHERE k = 3").await, ["b"]);
}

// ------------------------------------------------------------------ savepoints

#[tokio::test]
async fn savepoints_roll_back_part_of_a_transaction() {
    let server = TestServer::start();
    let a = server.connect().await;
    let b = server.connect().await;
    exec(
        &a,
        "CREATE TABLE sv (k int PRIMARY KEY, v text); INSERT INTO sv VALUES (0, 'zero')",
    )
    .await;
    exec(&a, "BEGIN").await;
    exec(&a, "INSERT INTO sv VALUES (1, 'kept')").await;
    exec(&a, "SAVEPOINT a").await;
    exec(&a, "INSERT INTO sv VALUES (2, 'undone')").await;
    exec(&a, "UPDATE sv SET v = 'undone' WHERE k = 0").await;
    exec(&a, "DELETE FROM sv WHERE k = 1").await;
    assert_eq!(
        rows(&a, "SELECT k, v FROM sv ORDER BY k").await,
        ["0|undone", "2|undone"]
    );
    exec(&a, "ROLLBACK TO SAVEPOINT a").await;
    assert_eq!(
        rows(&a, "SELECT k, v FROM sv ORDER BY k").await,
        ["0|zero", "1|kept"],
        "everything after the savepoint is undone"
    );
    // The savepoint still exists after ROLLBACK TO and can be used again.
    exec(&a, "INSERT INTO sv VALUES (3, 'undone too')").await;
    exec(&a, "ROLLBACK TO a").await;
    exec(&a, "RELEASE SAVEPOINT a").await;
    // Nested savepoints: rolling back to the outer one undoes the inner one too.
    exec(&a, "SAVEPOINT outer_sp").await;
    exec(&a, "INSERT INTO sv VALUES (4, 'undone')").await;
    exec(&a, "SAVEPOINT inner_sp").await;
    exec(&a, "INSERT INTO sv VALUES (5, 'undone')").await;
    exec(&a, "ROLLBACK TO SAVEPOINT outer_sp").await;
    let e = within(
        "inner gone",
        a.batch_execute("ROLLBACK TO SAVEPOINT inner_sp"),
    )
    .await
    .expect_err("inner_sp was discarded with the rollback to outer_sp");
    assert_eq!(sqlstate(&e), Some("3B001"));
    // The error failed the block; ROLLBACK TO an existing savepoint recovers it.
    exec(&a, "ROLLBACK TO SAVEPOINT outer_sp").await;
    // A released savepoint keeps its changes.
    exec(&a, "SAVEPOINT c").await;
    exec(&a, "INSERT INTO sv VALUES (6, 'released')").await;
    exec(&a, "RELEASE c").await;
    assert_eq!(
        rows(&a, "SELECT k FROM sv ORDER BY k").await,
        ["0", "1", "6"]
    );
    let e = within("released", a.batch_execute("ROLLBACK TO c"))
        .await
        .expect_err("c was released");
    assert_eq!(sqlstate(&e), Some("3B001"));
    // Rolling back to outer_sp (set before c) undoes the released savepoint's insert too.
    exec(&a, "ROLLBACK TO outer_sp").await;
    exec(&a, "INSERT INTO sv VALUES (7, 'after')").await;
    // Nothing is visible to others yet.
    assert_eq!(rows(&b, "SELECT k FROM sv ORDER BY k").await, ["0"]);
    exec(&a, "COMMIT").await;
    assert_eq!(
        rows(&b, "SELECT k, v FROM sv ORDER BY k").await,
        ["0|zero", "1|kept", "7|after"]
    );
    // The keys undone by ROLLBACK TO are free (their locks were not leaked).
    exec(&a, "SET lock_timeout = '2s'").await;
    assert_eq!(
        affected(
            &a,
            "INSERT INTO sv VALUES (2, 'b'), (3, 'b'), (4, 'b'), (5, 'b'), (6, 'b')"
        )
        .await,
        5
    );
}

// ------------------------------------------------------------------ garbage collection

/// The number of whole update rounds a `count(*), sum(v)` result corresponds to, if any.
fn whole_rounds(count: i64, sum: i64, base: i64, rows: i64) -> Option<i64> {
    if count != rows || (sum - base) % rows != 0 {
        return None;
    }
    Some((sum - base) / rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_stay_correct_while_gc_runs() {
    const ROWS: i64 = 1000;
    const ROUNDS: i64 = 50;
    // The reader keeps going at least this long so that several GC cycles (1s) overlap it.
    const MIN_READ_TIME: Duration = Duration::from_millis(2500);
    let server = TestServer::start();
    let writer = server.connect().await;
    exec(
        &writer,
        "CREATE TABLE g (id int PRIMARY KEY, v bigint); \
         INSERT INTO g SELECT CAST(value AS int) AS id, value AS v FROM generate_series(1, 1000) AS s(value)",
    )
    .await;
    let base: i64 = (1..=ROWS).sum();
    assert_eq!(
        rows(&writer, "SELECT count(*), sum(v) FROM g").await,
        [format!("{ROWS}|{base}")]
    );

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let client = server.connect().await;
        let done = done.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut last = 0i64;
            let mut reads = 0u64;
            // Bounded: ends when the writer is done and MIN_READ_TIME has passed.
            for _ in 0..1_000_000 {
                let finished = done.load(Ordering::Acquire);
                let row = client
                    .query_one("SELECT count(*), sum(v) FROM g", &[])
                    .await
                    .map_err(|e| format!("read {reads}: {e:?}"))?;
                let (count, sum): (i64, i64) = (row.get(0), row.get(1));
                let round = whole_rounds(count, sum, base, ROWS).ok_or_else(|| {
                    format!("read {reads}: count {count}, sum {sum}: not a whole round")
                })?;
                if !(last..=ROUNDS).contains(&round) {
                    return Err(format!("read {reads}: round {round} after round {last}"));
                }
                last = round;
                reads += 1;
                if finished && started.elapsed() >= MIN_READ_TIME {
                    return Ok((reads, last));
                }
            }
            Err("reader did not finish within its iteration bound".to_string())
        })
    };

    for round in 1..=ROUNDS {
        let n = within(
            "update round",
            writer.execute("UPDATE g SET v = v + 1", &[]),
        )
        .await
        .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(n, ROWS as u64, "round {round}");
    }
    done.store(true, Ordering::Release);
    let (reads, last) = within("reader", reader)
        .await
        .expect("reader panicked")
        .unwrap_or_else(|e| panic!("reader saw an inconsistent state: {e}"));
    assert!(reads > 0);
    assert_eq!(last, ROUNDS, "the reader's last read saw every round");

    assert_eq!(
        rows(
            &writer,
            "SELECT count(*), sum(v), min(v - id), max(v - id) FROM g"
        )
        .await,
        [format!("{ROWS}|{}|{ROUNDS}|{ROUNDS}", base + ROWS * ROUNDS)]
    );
    assert_eq!(
        scalar_i64(&writer, "SELECT count(*) FROM g WHERE v <> id + 50").await,
        0
    );
    // The primary-key index still finds every row exactly once.
    for id in [1i32, 500, 1000] {
        let found = within(
            "lookup",
            writer.query("SELECT v FROM g WHERE id = $1", &[&id]),
        )
        .await
        .unwrap();
        assert_eq!(found.len(), 1, "id {id}");
        assert_eq!(found[0].get::<_, i64>(0), id as i64 + ROUNDS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_versions_an_open_snapshot_can_see() {
    const ROWS: i64 = 1000;
    // Long enough for at least two GC cycles (gcInterval is 1s).
    const WRITE_TIME: Duration = Duration::from_millis(2500);
    let server = TestServer::start();
    let writer = server.connect().await;
    let reader = server.connect().await;
    exec(
        &writer,
        "CREATE TABLE gs (id int PRIMARY KEY, v bigint); \
         INSERT INTO gs SELECT CAST(value AS int), 0 FROM generate_series(1, 1000) AS s(value)",
    )
    .await;
    exec(&reader, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    assert_eq!(
        rows(&reader, "SELECT count(*), sum(v) FROM gs").await,
        [format!("{ROWS}|0")]
    );
    let started = Instant::now();
    let mut rounds = 0i64;
    // Bounded: at most 1000 rounds; at least WRITE_TIME and 5 rounds.
    while rounds < 1000 && (started.elapsed() < WRITE_TIME || rounds < 5) {
        let n = within("update", writer.execute("UPDATE gs SET v = v + 1", &[]))
            .await
            .unwrap();
        assert_eq!(n, ROWS as u64);
        rounds += 1;
        // Every 10 rounds, replace the last 100 rows by new versions inserted at the same
        // value, so deleted rows are collected as well.
        if rounds % 10 == 0 {
            exec(
                &writer,
                &format!(
                    "DELETE FROM gs WHERE id > 900; \
                     INSERT INTO gs SELECT CAST(value AS int), {rounds} \
                     FROM generate_series(901, 1000) AS s(value)"
                ),
            )
            .await;
        }
    }
    assert!(rounds < 1000, "writer ran into its round bound");
    // The old snapshot still sees exactly the original rows.
    assert_eq!(
        rows(&reader, "SELECT count(*), sum(v), min(v), max(v) FROM gs").await,
        [format!("{ROWS}|0|0|0")],
        "after {rounds} rounds of updates and GC cycles"
    );
    assert_eq!(
        rows(&reader, "SELECT v FROM gs WHERE id = 950").await,
        ["0"]
    );
    exec(&reader, "COMMIT").await;
    assert_eq!(
        rows(&reader, "SELECT count(*), sum(v), min(v), max(v) FROM gs").await,
        [format!("{ROWS}|{}|{rounds}|{rounds}", ROWS * rounds)]
    );
}

// ------------------------------------------------------------------ transaction timeout

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_time_limit_is_rolled_back_and_frees_its_locks() {
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conf/short-transactions.json"
    );
    let server = TestServer::start_with_args(&["--config", config]);
    let a = Arc::new(server.connect().await);
    let b = Arc::new(server.connect().await);
    exec(
        &a,
        "CREATE TABLE counter (id int PRIMARY KEY, n bigint); INSERT INTO counter VALUES (1, 0)",
    )
    .await;
    // A takes the row lock and then sits idle past the 1 s limit.
    exec(&a, "BEGIN; UPDATE counter SET n = 100 WHERE id = 1").await;
    // B waits for the lock; when A's time is up B proceeds without A's change.
    let updated = within(
        "B's update after A expires",
        b.execute("UPDATE counter SET n = n + 1 WHERE id = 1", &[]),
    )
    .await
    .expect("B proceeds once A has expired");
    assert_eq!(updated, 1);
    let e = within("A commits too late", a.batch_execute("COMMIT"))
        .await
        .expect_err("A's transaction was rolled back");
    assert_eq!(sqlstate(&e), Some("57014"), "{e:?}");
    assert_eq!(rows(&b, "SELECT n FROM counter WHERE id = 1").await, ["1"]);
}

#[tokio::test]
async fn pg_locks_shows_who_holds_and_who_waits_for_a_row() {
    let server = TestServer::start();
    let holder = server.connect().await;
    let waiter = Arc::new(server.connect().await);
    let observer = server.connect().await;
    exec(
        &holder,
        "CREATE TABLE locked (id INTEGER PRIMARY KEY, v INTEGER)",
    )
    .await;
    exec(&holder, "INSERT INTO locked VALUES (1, 0)").await;
    let holder_pid = scalar_i64(&holder, "SELECT pg_backend_pid()::bigint").await;
    let waiter_pid = scalar_i64(&waiter, "SELECT pg_backend_pid()::bigint").await;
    exec(&holder, "BEGIN").await;
    exec(&holder, "UPDATE locked SET v = 1 WHERE id = 1").await;
    let xid = scalar_i64(&holder, "SELECT txid_current()").await;
    let blocked = {
        let waiter = waiter.clone();
        tokio::spawn(async move {
            waiter
                .simple_query("UPDATE locked SET v = 2 WHERE id = 1")
                .await
        })
    };
    let query = "SELECT pid::bigint, transactionid, mode, granted::text FROM pg_locks \
                 WHERE locktype = 'transactionid' ORDER BY granted DESC";
    let seen = within("the waiter shows in pg_locks", async {
        loop {
            let rows = within(query, observer.query(query, &[])).await.unwrap();
            if rows.len() == 2 {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let view: Vec<(i64, i64, String, String)> = seen
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        view,
        [
            (holder_pid, xid, "ExclusiveLock".into(), "true".into()),
            (waiter_pid, xid, "ShareLock".into(), "false".into()),
        ]
    );
    // DataGrip's query for the oldest transaction holding a lock.
    let oldest = scalar_i64(
        &observer,
        "select L.transactionid::varchar::bigint as transaction_id \
         from pg_catalog.pg_locks L where L.transactionid is not null \
         order by pg_catalog.age(L.transactionid) desc limit 1",
    )
    .await;
    assert_eq!(oldest, xid);
    exec(&holder, "COMMIT").await;
    within("the waiter proceeds", blocked)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rows(&observer, "SELECT count(*) FROM pg_locks").await,
        ["0"]
    );
}
