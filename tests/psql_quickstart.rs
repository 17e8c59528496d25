//! Runs `sql/quickstart.sql` and `sql/timeseries_demo.sql` through the real `psql` client
//! against a fresh Kura server, twice each (the scripts must be rerunnable), and checks psql's
//! exit status and a few output fragments.
//!
//! `psql` is required: set `PSQL=/path/to/psql` or put it on PATH (Debian: postgresql-client).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::TestServer;

/// Upper bound for one psql run; the server is killed (and psql with it) if it is exceeded.
const PSQL_TIMEOUT: Duration = Duration::from_secs(120);

/// Locate psql: `$PSQL`, then PATH, then the usual Debian locations.
fn find_psql() -> PathBuf {
    if let Some(path) = std::env::var_os("PSQL") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "PSQL={} is not a file", path.display());
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut candidates: Vec<PathBuf> = on_path.into_iter().map(|dir| dir.join("psql")).collect();
    candidates.push(PathBuf::from("/usr/bin/psql"));
    if let Ok(versions) = std::fs::read_dir("/usr/lib/postgresql") {
        candidates.extend(
            versions
                .flatten()
                .map(|v| v.path().join("bin").join("psql")),
        );
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "psql is not installed, but this test needs the real psql client. Install it \
             (Debian/Ubuntu: `apt-get install postgresql-client`) or set PSQL=/path/to/psql."
            )
        })
}

/// Run psql on the script and wait for it, at most `PSQL_TIMEOUT`.
fn run_psql(psql: &Path, port: u16, script: &Path) -> Output {
    let child = Command::new(psql)
        .args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args(["-p", &port.to_string(), "-U", "admin", "-d", "public", "-f"])
        .arg(script)
        .env("PGCONNECT_TIMEOUT", "30")
        .env("PGPASSWORD", common::ADMIN_PASSWORD)
        .env_remove("PGSERVICE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", psql.display()));
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(PSQL_TIMEOUT) {
        Ok(output) => output.expect("wait for psql"),
        Err(_) => panic!("psql did not finish within {PSQL_TIMEOUT:?}"),
    }
}

/// psql's output of a run that must have succeeded and printed every fragment of `expected`.
fn successful_output(output: &Output, run: usize, expected: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "psql run {run} failed with {}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}",
        output.status
    );
    for fragment in expected {
        assert!(
            stdout.contains(fragment),
            "psql run {run}: output lacks {fragment:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
        );
    }
    stdout
}

fn check_run(output: &Output, run: usize) -> String {
    let expected = [
        // Command tags.
        "CREATE TABLE",
        "INSERT 0 7",
        "COMMIT",
        "ROLLBACK",
        "CREATE VIEW",
        // The GROUP BY query: average temperature per sensor.
        "greenhouse",
        "22.5",
        "(3 rows)",
        // The rolled-back DELETE is undone: 6 rows remain after the committed one.
        "rows_after_rollback",
        // The view joined with sensors: hourly averages of active sensors only.
        "2024-05-01 08:00:00",
        "21.50",
        "23.50",
        "(4 rows)",
        // INSERT OR REPLACE overwrote row 2.
        "pump-b",
        "4.75",
    ];
    let stdout = successful_output(output, run, &expected);
    assert!(
        !stdout.contains("4.25"),
        "psql run {run}: the replaced row is still visible\n--- stdout:\n{stdout}"
    );
    assert!(
        !stdout.contains("30.50"),
        "psql run {run}: the retired sensor's readings survived\n--- stdout:\n{stdout}"
    );
    stdout
}

#[test]
fn quickstart_runs_under_psql() {
    let psql = find_psql();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sql")
        .join("quickstart.sql");
    assert!(script.is_file(), "{} is missing", script.display());

    let server = TestServer::start();
    let first = check_run(&run_psql(&psql, server.port, &script), 1);
    // The script starts with DROP ... IF EXISTS, so a second run must give the same output.
    let second = check_run(&run_psql(&psql, server.port, &script), 2);
    assert_eq!(
        first, second,
        "the quickstart is not rerunnable with the same output"
    );
}

#[test]
fn timeseries_demo_runs_under_psql() {
    let psql = find_psql();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sql")
        .join("timeseries_demo.sql");
    assert!(script.is_file(), "{} is missing", script.display());
    let server = TestServer::start();
    // The demo's data is relative to now(), so only stable fragments are checked.
    let expected = [
        "CREATE TABLE",
        // "#tables" describes the interval-hash table with its retention.
        "INTERVAL",
        "HASH",
        // Pruning shows in EXPLAIN.
        "data_partitions=",
        // Three hours of one device (12 readings an hour) are deleted to make a gap.
        "DELETE 36",
        // The expired reading is accepted and not stored.
        "INSERT 0 0",
        "ALTER TABLE",
    ];
    for run in 1..=2 {
        successful_output(&run_psql(&psql, server.port, &script), run, &expected);
    }
}
