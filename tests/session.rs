//! Session commands and interrupting work, through a real PostgreSQL client: SET / SHOW /
//! RESET (and their transactional behaviour), SHOW ALL, DISCARD ALL, PREPARE / EXECUTE /
//! DEALLOCATE, set_config / current_setting; CancelRequest, pg_cancel_backend,
//! pg_terminate_backend, statement_timeout, idle_in_transaction_session_timeout.
//!
//! Cancels are re-sent until the statement ends, because a cancel that arrives before the
//! statement starts is dropped (as in PostgreSQL); no test depends on timing otherwise.

mod common;

use std::time::Duration;

use common::{TestServer, exec, sqlstate, text_rows as rows, within};
use tokio_postgres::{Client, NoTls};

async fn one(client: &Client, sql: &str) -> String {
    let all = rows(client, sql).await;
    assert_eq!(all.len(), 1, "{sql}: {all:?}");
    all.into_iter().next().unwrap_or_default()
}

async fn error_code(client: &Client, sql: &str) -> String {
    let e = within(sql, client.batch_execute(sql)).await.expect_err(sql);
    sqlstate(&e).unwrap_or("none").to_string()
}

#[tokio::test]
async fn set_show_reset_follow_postgres() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(&c, "SET statement_timeout = '2s'").await;
    assert_eq!(one(&c, "SHOW statement_timeout").await, "2s");
    exec(&c, "RESET statement_timeout").await;
    assert_eq!(one(&c, "SHOW statement_timeout").await, "0");
    exec(
        &c,
        "SET application_name TO 'tool'; SET extra_float_digits = 3",
    )
    .await;
    exec(&c, "RESET ALL").await;
    assert_eq!(one(&c, "SHOW extra_float_digits").await, "1");
    exec(&c, "SET search_path TO public").await;
    assert_eq!(one(&c, "SHOW search_path").await, "public");
    exec(&c, "SET search_path TO DEFAULT").await;
    assert_eq!(one(&c, "SHOW search_path").await, "\"$user\", public");

    assert_eq!(error_code(&c, "SET no_such_setting = 1").await, "42704");
    assert_eq!(error_code(&c, "SHOW no_such_setting").await, "42704");
    assert_eq!(error_code(&c, "RESET no_such_setting").await, "42704");
    assert_eq!(error_code(&c, "SET server_version = '1'").await, "55P02");
    assert_eq!(error_code(&c, "SET extra_float_digits = 9").await, "22023");
    assert_eq!(error_code(&c, "SET lock_timeout = 'soon'").await, "22023");
    exec(&c, "SET myapp.tenant = 'acme'").await;
    assert_eq!(one(&c, "SHOW myapp.tenant").await, "acme");

    let all = c.simple_query("SHOW ALL").await.unwrap();
    let first = all
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.len()),
            _ => None,
        })
        .unwrap();
    assert_eq!(first, 3, "SHOW ALL has name, setting, description");
    let names: Vec<String> = rows(&c, "SHOW ALL")
        .await
        .into_iter()
        .map(|r| r.split('|').next().unwrap_or_default().to_string())
        .collect();
    // PostgreSQL's own capitalisation, as in pg_settings.
    for expected in [
        "DateStyle",
        "TimeZone",
        "client_encoding",
        "idle_in_transaction_session_timeout",
        "myapp.tenant",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "SHOW ALL lacks {expected}"
        );
    }
}

#[tokio::test]
async fn settings_follow_the_transaction() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(&c, "BEGIN; SET extra_float_digits = 2; ROLLBACK").await;
    assert_eq!(
        one(&c, "SHOW extra_float_digits").await,
        "1",
        "rollback undoes SET"
    );
    exec(&c, "BEGIN; SET extra_float_digits = 2; COMMIT").await;
    assert_eq!(
        one(&c, "SHOW extra_float_digits").await,
        "2",
        "commit keeps SET"
    );
    exec(&c, "BEGIN; SET LOCAL lock_timeout = '5s'").await;
    assert_eq!(one(&c, "SHOW lock_timeout").await, "5s");
    exec(&c, "COMMIT").await;
    assert_eq!(
        one(&c, "SHOW lock_timeout").await,
        "0",
        "SET LOCAL ends with the block"
    );
    exec(
        &c,
        "BEGIN; SAVEPOINT a; SET extra_float_digits = 0; ROLLBACK TO SAVEPOINT a",
    )
    .await;
    assert_eq!(one(&c, "SHOW extra_float_digits").await, "2");
    exec(&c, "COMMIT").await;
    exec(
        &c,
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    )
    .await;
    assert_eq!(
        one(&c, "SHOW default_transaction_isolation").await,
        "repeatable read"
    );
    exec(&c, "BEGIN").await;
    assert_eq!(
        one(&c, "SHOW TRANSACTION ISOLATION LEVEL").await,
        "repeatable read"
    );
    exec(&c, "ROLLBACK").await;
}

#[tokio::test]
async fn set_config_and_current_setting() {
    let server = TestServer::start();
    let c = server.connect().await;
    assert_eq!(
        one(
            &c,
            "SELECT set_config('application_name', 'reports', false)"
        )
        .await,
        "reports"
    );
    assert_eq!(one(&c, "SHOW application_name").await, "reports");
    assert_eq!(
        one(&c, "SELECT current_setting('application_name')").await,
        "reports"
    );
    assert_eq!(
        one(&c, "SELECT current_setting('no.such', true) IS NULL").await,
        "t"
    );
    assert_eq!(
        error_code(&c, "SELECT current_setting('no_such')").await,
        "42704"
    );
    exec(&c, "BEGIN").await;
    one(&c, "SELECT set_config('statement_timeout', '7s', true)").await;
    assert_eq!(one(&c, "SHOW statement_timeout").await, "7s");
    exec(&c, "COMMIT").await;
    assert_eq!(one(&c, "SHOW statement_timeout").await, "0");
    // Through the extended protocol, with the column named as PostgreSQL names it.
    let row = c
        .query_one("SELECT current_setting('DateStyle'), current_user", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "ISO, MDY");
    assert_eq!(row.columns()[0].name(), "current_setting");
    assert_eq!(row.get::<_, String>(1), "admin");
    assert_eq!(row.columns()[1].name(), "current_user");
}

#[tokio::test]
async fn prepared_statements_and_discard_all() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(&c, "PREPARE plus(int) AS SELECT $1 + 1").await;
    assert_eq!(one(&c, "EXECUTE plus(41)").await, "42");
    assert_eq!(error_code(&c, "PREPARE plus AS SELECT 1").await, "42P05");
    exec(&c, "DEALLOCATE plus").await;
    assert_eq!(error_code(&c, "EXECUTE plus(1)").await, "26000");
    assert_eq!(error_code(&c, "DEALLOCATE plus").await, "26000");

    let statement = c.prepare("SELECT 1").await.unwrap();
    c.query(&statement, &[]).await.unwrap();
    exec(&c, "SET extra_float_digits = 3").await;
    exec(&c, "BEGIN").await;
    assert_eq!(error_code(&c, "DISCARD ALL").await, "25001");
    exec(&c, "ROLLBACK").await;
    exec(&c, "DISCARD ALL").await;
    assert_eq!(one(&c, "SHOW extra_float_digits").await, "1");
    let e = c.query(&statement, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("26000"), "{e:?}");
    exec(&c, "DEALLOCATE ALL").await;
}

/// Runs `sql` on its own connection, firing `interrupt` until it ends; returns the SQLSTATE.
async fn interrupted<F, Fut>(server: &TestServer, sql: &'static str, interrupt: F) -> String
where
    F: Fn(tokio_postgres::CancelToken, i32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let victim = server.connect().await;
    let pid: i32 = victim
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let token = victim.cancel_token();
    let running = tokio::spawn(async move { victim.batch_execute(sql).await });
    let outcome = within(sql, async {
        loop {
            if running.is_finished() {
                break running.await.unwrap();
            }
            interrupt(token.clone(), pid).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let e = outcome.expect_err("the statement was interrupted");
    sqlstate(&e).unwrap_or("none").to_string()
}

#[tokio::test]
async fn cancel_request_stops_a_running_query() {
    let server = TestServer::start();
    let sleep = interrupted(&server, "SELECT pg_sleep(60)", |token, _| async move {
        let _ = token.cancel_query(NoTls).await;
    })
    .await;
    assert_eq!(sleep, "57014");
    let compute = interrupted(
        &server,
        "SELECT count(*) FROM generate_series(1, 2000000000) a",
        |token, _| async move {
            let _ = token.cancel_query(NoTls).await;
        },
    )
    .await;
    assert_eq!(compute, "57014");
}

#[tokio::test]
async fn pg_cancel_backend_stops_another_session() {
    let server = TestServer::start();
    let admin = server.connect().await;
    let admin = std::sync::Arc::new(admin);
    let code = interrupted(&server, "SELECT pg_sleep(60)", |_, pid| {
        let admin = admin.clone();
        async move {
            let _ = admin
                .query_one("SELECT pg_cancel_backend($1)", &[&pid])
                .await;
        }
    })
    .await;
    assert_eq!(code, "57014");
    assert_eq!(
        one(&admin, "SELECT pg_cancel_backend(999999)").await,
        "f",
        "no such backend"
    );
}

#[tokio::test]
async fn statement_timeout_cancels_scans_and_lock_waits() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(&c, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)").await;
    exec(&c, "INSERT INTO t VALUES (1, 1)").await;
    exec(&c, "SET statement_timeout = 100").await;
    assert_eq!(error_code(&c, "SELECT pg_sleep(30)").await, "57014");
    assert_eq!(
        error_code(
            &c,
            "SELECT count(*) FROM t, generate_series(1, 2000000000) g"
        )
        .await,
        "57014"
    );
    assert_eq!(
        one(&c, "SELECT v FROM t").await,
        "1",
        "the next statement runs"
    );

    let holder = server.connect().await;
    exec(&holder, "BEGIN; UPDATE t SET v = 2 WHERE id = 1").await;
    assert_eq!(
        error_code(&c, "UPDATE t SET v = 3 WHERE id = 1").await,
        "57014",
        "a lock wait ends with the timeout"
    );
    exec(&holder, "COMMIT").await;
    assert_eq!(one(&c, "SELECT v FROM t").await, "2");
}

#[tokio::test]
async fn pg_terminate_backend_closes_an_idle_connection() {
    let server = TestServer::start();
    let victim = server.connect().await;
    let pid: i32 = victim
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let admin = server.connect().await;
    let ok: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(ok);
    within("the victim's connection closes", async {
        while !victim.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(victim.simple_query("SELECT 1").await.is_err());
}

#[tokio::test]
async fn idle_in_transaction_timeout_ends_the_transaction_and_its_locks() {
    let server = TestServer::start();
    let setup = server.connect().await;
    exec(&setup, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)").await;
    exec(&setup, "INSERT INTO t VALUES (1, 1)").await;
    let idle = server.connect().await;
    exec(
        &idle,
        "SET idle_in_transaction_session_timeout = 200; BEGIN; UPDATE t SET v = 2 WHERE id = 1",
    )
    .await;
    // Waits for the row lock until the idle transaction is ended by the timeout.
    exec(&setup, "UPDATE t SET v = 3 WHERE id = 1").await;
    assert_eq!(one(&setup, "SELECT v FROM t").await, "3");
    within("the idle connection closes", async {
        while !idle.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
