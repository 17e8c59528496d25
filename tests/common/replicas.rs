//! Helpers for replication tests: primaries with a replication configuration, standbys of
//! them, and waiting for a condition a standby reaches in its own time.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use super::{ADMIN_PASSWORD, CALL_TIMEOUT, TestServer, exec, rows_as_text, text_rows};

/// How long a standby may take to reach a state the test waits for.
pub const CATCH_UP: Duration = Duration::from_secs(60);

/// Writes a configuration file under `dir` and returns its path: `json` holds the sections
/// that differ from the defaults.
pub fn config_file(dir: &Path, name: &str, json: &str) -> String {
    std::fs::create_dir_all(dir).expect("create the configuration directory");
    let path = dir.join(name);
    std::fs::write(&path, json).expect("write the configuration");
    path.to_str().expect("a UTF-8 path").to_string()
}

/// Starts a standby of the server on `port` in `data_dir`, with extra `kura serve` arguments.
pub fn standby_of_port(port: u16, data_dir: &Path, extra: &[&str]) -> TestServer {
    let upstream = format!("127.0.0.1:{port}");
    let mut args = vec!["--standby-of", upstream.as_str()];
    args.extend_from_slice(extra);
    let mut command = TestServer::command(data_dir, &args);
    command.env("KURA_REPLICATION_PASSWORD", ADMIN_PASSWORD);
    TestServer::start_command(&mut command, data_dir)
}

pub fn standby_of(primary: &TestServer, data_dir: &Path) -> TestServer {
    standby_of_port(primary.port, data_dir, &[])
}

/// Runs `sql` on the primary and returns once every standby a commit waits for has applied
/// it (`remote_apply`).
pub async fn write_applied(primary: &tokio_postgres::Client, sql: &str) {
    exec(primary, "SET synchronous_commit = remote_apply").await;
    exec(primary, sql).await;
    exec(primary, "RESET synchronous_commit").await;
}

/// Polls `query` on `client` until its rows (text, `|`-joined) satisfy `done`; panics with
/// the last rows after [`CATCH_UP`].
pub async fn eventually(
    client: &tokio_postgres::Client,
    query: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    loop {
        let rows = text_rows(client, query).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{query}` still returns {rows:?} after {CATCH_UP:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`eventually`] on a server that may restart meanwhile (a standby re-executing itself after
/// a checkpoint copy): each poll connects afresh, and failures are retried.
pub async fn eventually_on(port: u16, query: &str, done: impl Fn(&[String]) -> bool) {
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    let mut last = String::new();
    loop {
        if let Ok(client) = tokio::time::timeout(CALL_TIMEOUT, connect_eventually(port)).await {
            match client.simple_query(query).await {
                Ok(messages) => {
                    let rows = rows_as_text(messages);
                    if done(&rows) {
                        return;
                    }
                    last = format!("{rows:?}");
                }
                Err(e) => last = e.to_string(),
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{query}` on port {port} still gives {last} after {CATCH_UP:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the primary lists `count` standbys streaming to it.
pub async fn streaming_standbys(primary: &tokio_postgres::Client, count: usize) {
    let expected = count.to_string();
    eventually(
        primary,
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
        |rows| rows == [expected.as_str()],
    )
    .await;
}

/// Connects to a server that may be restarting (a standby re-executing itself after a
/// checkpoint copy), retrying until it answers.
pub async fn connect_eventually(port: u16) -> tokio_postgres::Client {
    let conn =
        format!("host=127.0.0.1 port={port} user=admin password={ADMIN_PASSWORD} dbname=public");
    let deadline = tokio::time::Instant::now() + CATCH_UP + CALL_TIMEOUT;
    loop {
        match tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                if client.simple_query("SELECT 1").await.is_ok() {
                    return client;
                }
            }
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "port {port} did not answer: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the server's event log mentions `needle`.
pub fn event_log_mentions(data_dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(data_dir.join("log"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| std::fs::read_to_string(entry.path()).is_ok_and(|text| text.contains(needle)))
}

/// Runs `kura ARGS` as an administrator (PGPASSWORD), whatever its outcome.
pub fn kura_run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(args)
        .env("PGPASSWORD", ADMIN_PASSWORD)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the kura command")
}

/// What a `kura` command printed, stdout then stderr.
pub fn printed(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `kura ARGS` as an administrator (PGPASSWORD) and returns what it printed; panics
/// when it fails.
pub fn kura_client(args: &[&str]) -> String {
    let out = kura_run(args);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "kura {args:?}: {said} {out:?}");
    said
}
