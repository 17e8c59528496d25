//! SQL golden files: runs every `tests/sql/*.slt` file over the PostgreSQL wire protocol with the
//! `sqllogictest` crate, one fresh `kura` server per file.
//!
//! Conventions of the `.slt` files:
//! - Values are the text the server sends in the simple query protocol (what psql prints):
//!   NULL is `NULL`, an empty string is `(empty)`, booleans are `t` / `f`.
//! - Column type letters after `query` (`I`, `T`, `R`, ...) are documentation only: the simple
//!   query protocol does not report column types, so any letters are accepted.
//! - Records can be limited to an engine with `onlyif kura` / `skipif kura` (or `postgres`):
//!   GridDB-only syntax is `onlyif kura`, and its PostgreSQL equivalent (used to check the
//!   expected results on a real PostgreSQL) is `skipif kura`.
//! - `statement error <regex>` matches the error text, which this harness renders as
//!   `ERROR: <message> (SQLSTATE <code>)` followed by any DETAIL; `statement error (23505)`
//!   matches the SQLSTATE exactly.
//!
//! Environment variables:
//! - `KURA_SLT_FILTER=substr`: run only the files whose name contains `substr`.
//! - `KURA_SLT_URL="host=127.0.0.1 port=5544 user=postgres dbname=postgres"`: instead of
//!   spawning `kura`, run against an existing server (libpq key=value form; the user needs
//!   CREATEDB). For each file the harness (re)creates a database `slt_<file stem>` on that
//!   server and runs the file inside it, with TimeZone=UTC. This is how the expected results
//!   were generated and checked on a real PostgreSQL 15. The engine name used by `onlyif` /
//!   `skipif` is then `KURA_SLT_ENGINE` (default `postgres`).
//! - `KURA_SLT_OVERRIDE=1` (only together with `KURA_SLT_URL`): rewrite the files in place with
//!   the results the server returned. Use it against PostgreSQL only, and review the diff:
//!   sqllogictest's rewriter does not understand `error (SQLSTATE)` expectations and replaces
//!   them with the full message, so put those lines back before committing.
//!
//! Example, against a scratch PostgreSQL 15 on port 5544 (trust authentication):
//! `KURA_SLT_URL="host=127.0.0.1 port=5544 user=postgres dbname=postgres" cargo test --test slt`

mod common;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Record, Runner};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use common::TestServer;

/// At most this many failures are listed per file (the rest are counted).
const MAX_REPORTED_PER_FILE: usize = 40;

/// One client connection, as seen by the sqllogictest runner.
struct PgWire {
    client: Client,
    engine: String,
}

/// A server error rendered the way `.slt` files match on it.
#[derive(Debug)]
struct SltError {
    text: String,
    sqlstate: Option<String>,
}

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for SltError {}

impl From<tokio_postgres::Error> for SltError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => {
                let mut text = format!(
                    "{}: {} (SQLSTATE {})",
                    db.severity(),
                    db.message(),
                    db.code().code()
                );
                if let Some(detail) = db.detail() {
                    text.push_str("\nDETAIL: ");
                    text.push_str(detail);
                }
                SltError {
                    text,
                    sqlstate: Some(db.code().code().to_string()),
                }
            }
            None => SltError {
                text: format!("client error: {e}"),
                sqlstate: None,
            },
        }
    }
}

impl PgWire {
    async fn connect(conn_string: &str, engine: &str) -> Result<PgWire, SltError> {
        let (client, connection) = tokio_postgres::connect(conn_string, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("slt connection error: {e}");
            }
        });
        Ok(PgWire {
            client,
            engine: engine.to_string(),
        })
    }
}

#[async_trait]
impl AsyncDB for PgWire {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let messages = self.client.simple_query(sql).await?;
        // With several statements in one record, the last one that returned rows wins.
        let mut result: Option<(usize, Vec<Vec<String>>)> = None;
        let mut current: Option<(usize, Vec<Vec<String>>)> = None;
        let mut count = 0;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(columns) => {
                    current = Some((columns.len(), Vec::new()));
                }
                SimpleQueryMessage::Row(row) => {
                    let values = (0..row.len()).map(|i| format_value(row.get(i))).collect();
                    match current.as_mut() {
                        Some((_, rows)) => rows.push(values),
                        None => current = Some((row.len(), vec![values])),
                    }
                }
                SimpleQueryMessage::CommandComplete(n) => {
                    count = n;
                    if let Some(done) = current.take() {
                        result = Some(done);
                    }
                }
                _ => {}
            }
        }
        if let Some(done) = current.take() {
            result = Some(done);
        }
        Ok(match result {
            Some((width, rows)) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; width],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        &self.engine
    }

    fn error_sql_state(err: &SltError) -> Option<String> {
        err.sqlstate.clone()
    }
}

/// Text of one value as psql shows it, with sqllogictest's conventions for NULL and ''.
fn format_value(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_string(),
        Some("") => "(empty)".to_string(),
        Some(text) => text.to_string(),
    }
}

/// Every `.slt` file under `tests/sql`, sorted, filtered by `KURA_SLT_FILTER`.
fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("sql");
    let filter = std::env::var("KURA_SLT_FILTER").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "slt"))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(&filter))
        })
        .collect();
    files.sort();
    files
}

/// Prepare where one file runs: a fresh kura server (returned, so that it lives until the file
/// is done), or a fresh database on the external server named by `KURA_SLT_URL` (`None`).
/// Also returns the connection string to use.
async fn prepare_target(file: &Path) -> (Option<TestServer>, String) {
    let Ok(url) = std::env::var("KURA_SLT_URL") else {
        let server = TestServer::start();
        let conn = server.conn_string();
        return (Some(server), conn);
    };
    let stem = file
        .file_stem()
        .expect("file stem")
        .to_string_lossy()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    let db = format!("slt_{stem}");
    let admin = common::connect_to(&url).await;
    admin
        .simple_query(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap_or_else(|e| panic!("drop database {db}: {e}"));
    admin
        .simple_query(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap_or_else(|e| panic!("create database {db}: {e}"));
    // Later `dbname=` wins in libpq-style strings; force UTC so timestamptz output is stable.
    (None, format!("{url} dbname={db} options='-c TimeZone=UTC'"))
}

/// Run one file; return its failures as display strings (empty when it passed).
async fn run_file(file: &Path, engine: &str) -> Vec<String> {
    let (server, conn_string) = prepare_target(file).await;
    let make_conn = {
        let conn_string = conn_string.clone();
        let engine = engine.to_string();
        move || {
            let conn_string = conn_string.clone();
            let engine = engine.clone();
            async move { PgWire::connect(&conn_string, &engine).await }
        }
    };
    let mut runner = Runner::new(make_conn);

    if std::env::var("KURA_SLT_OVERRIDE").is_ok_and(|v| v == "1") {
        assert!(
            server.is_none(),
            "KURA_SLT_OVERRIDE=1 needs KURA_SLT_URL pointing at PostgreSQL"
        );
        runner
            .update_test_file(
                file,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .unwrap_or_else(|e| panic!("override {}: {e}", file.display()));
        return Vec::new();
    }

    let records = match sqllogictest::parse_file::<DefaultColumnType>(file) {
        Ok(records) => records,
        Err(e) => return vec![format!("parse error: {e}")],
    };
    let mut failures = Vec::new();
    for record in records {
        if let Record::Halt { .. } = record {
            break;
        }
        if let Err(e) = runner.run_async(record).await {
            failures.push(e.display(false).to_string());
        }
    }
    runner.shutdown_async().await;
    drop(server);
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found under tests/sql");
    let engine = if std::env::var("KURA_SLT_URL").is_ok() {
        std::env::var("KURA_SLT_ENGINE").unwrap_or_else(|_| "postgres".to_string())
    } else {
        "kura".to_string()
    };

    let mut report = String::new();
    let mut failed_files = 0;
    let mut failed_records = 0;
    for file in &files {
        let name = file.file_name().expect("file name").to_string_lossy();
        let failures = run_file(file, &engine).await;
        eprintln!("{name}: {} failure(s)", failures.len());
        if failures.is_empty() {
            continue;
        }
        failed_files += 1;
        failed_records += failures.len();
        report.push_str(&format!("\n===== {name}: {} failure(s)\n", failures.len()));
        for failure in failures.iter().take(MAX_REPORTED_PER_FILE) {
            report.push_str(failure);
            report.push_str("\n\n");
        }
        if failures.len() > MAX_REPORTED_PER_FILE {
            report.push_str(&format!(
                "... and {} more in {name}\n",
                failures.len() - MAX_REPORTED_PER_FILE
            ));
        }
    }
    assert!(
        failed_files == 0,
        "{failed_records} record(s) failed in {failed_files} of {} file(s):\n{report}",
        files.len()
    );
}
