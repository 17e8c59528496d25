//! Shared helpers for integration tests: start a real `kura` server on an ephemeral port and
//! talk to it over the PostgreSQL wire protocol.
//!
//! Synchronisation is on the server's readiness line (`listening on 127.0.0.1:PORT` on stdout),
//! never on sleeps. After readiness, background threads keep draining the child's stdout and
//! stderr (echoing them through `eprintln!`, which the test harness captures and shows on
//! failure) so the child can never block on a full pipe.

pub mod proxy;
pub mod replicas;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long `TestServer::start` waits for the readiness line.
#[allow(dead_code)]
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The marker the server prints on stdout once it accepts connections.
const READY_MARKER: &str = "listening on 127.0.0.1:";

/// The default administrator's password in every test server (set through
/// `KURA_ADMIN_PASSWORD` before its first start).
#[allow(dead_code)]
pub const ADMIN_PASSWORD: &str = "kura-test-secret";

/// A `kura serve` child process, with its own temporary data directory (removed when it is
/// dropped) or on a directory the test owns ([`TestServer::start_in`]).
/// Dropping it kills the server.
#[allow(dead_code)]
pub struct TestServer {
    /// The TCP port the server actually bound (parsed from the readiness line).
    pub port: u16,
    /// What the server printed on stdout before it was ready.
    pub startup_lines: Vec<String>,
    child: Child,
    data_dir: std::path::PathBuf,
    _tempdir: Option<tempfile::TempDir>,
}

/// Lines read from the child's stdout, forwarded from the reader thread.
enum Line {
    Text(String),
    Eof,
}

#[allow(dead_code)]
impl TestServer {
    /// Start `kura serve --listen 127.0.0.1:0 --data-dir <tempdir>` and wait (at most
    /// [`READY_TIMEOUT`]) until it reports the port it listens on. Panics with the server's
    /// output so far if it exits early or never becomes ready.
    pub fn start() -> TestServer {
        Self::start_with_args(&[])
    }

    /// Starts a server with extra `kura serve` arguments (e.g. `--config FILE`).
    pub fn start_with_args(extra: &[&str]) -> TestServer {
        let tempdir = temp_dir();
        let data_dir = tempdir.path().join("data");
        let mut server = Self::start_in(&data_dir, extra);
        server._tempdir = Some(tempdir);
        server
    }

    /// Starts a server on `data_dir`, which outlives it (for restart and crash tests).
    pub fn start_in(data_dir: &std::path::Path, extra: &[&str]) -> TestServer {
        let mut command = Self::command(data_dir, extra);
        Self::start_command(&mut command, data_dir)
    }

    /// The `kura serve` command line for `data_dir` on an ephemeral port.
    pub fn command(data_dir: &std::path::Path, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kura"));
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("KURA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Spawns `command` (from [`TestServer::command`], possibly adjusted) and waits for
    /// readiness.
    pub fn start_command(command: &mut Command, data_dir: &std::path::Path) -> TestServer {
        let mut child = command.spawn().expect("spawn the kura binary");

        let stdout = child.stdout.take().expect("child stdout is piped");
        let stderr = child.stderr.take().expect("child stderr is piped");
        drain_to_test_output(stderr, "kura stderr");

        // The reader thread forwards every stdout line until EOF; once readiness is seen we
        // stop listening but the thread keeps reading, so the pipe never fills up.
        let (tx, rx) = mpsc::channel::<Line>();
        thread::Builder::new()
            .name("kura-stdout".into())
            .spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                            eprintln!("[kura stdout] {line}");
                            // The receiver is gone after readiness: keep draining regardless.
                            let _ = tx.send(Line::Text(line));
                        }
                    }
                }
                let _ = tx.send(Line::Eof);
            })
            .expect("spawn stdout reader thread");

        let deadline = Instant::now() + READY_TIMEOUT;
        let mut seen = Vec::new();
        let port = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kura did not print `{READY_MARKER}PORT` within {READY_TIMEOUT:?}; stdout so far:\n{}",
                    seen.join("\n")
                );
            }
            match rx.recv_timeout(remaining) {
                Ok(Line::Text(line)) => {
                    if let Some(port) = parse_port(&line) {
                        break port;
                    }
                    seen.push(line);
                }
                Ok(Line::Eof) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait();
                    panic!(
                        "kura exited before becoming ready ({status:?}); stdout:\n{}",
                        seen.join("\n")
                    );
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        };

        TestServer {
            port,
            startup_lines: seen,
            child,
            data_dir: data_dir.to_path_buf(),
            _tempdir: None,
        }
    }

    /// Kills the server with SIGKILL (no chance to clean up) and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for the server to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for kura") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "kura did not exit within {READY_TIMEOUT:?} of SIGTERM"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// libpq-style connection string for this server: the default administrator on `public`.
    pub fn conn_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=admin password={ADMIN_PASSWORD} dbname=public",
            self.port
        )
    }

    /// Connection string for `user` with `password` on `database`.
    pub fn conn_string_as(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user='{user}' password='{password}' dbname='{database}'",
            self.port
        )
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.data_dir.clone()
    }

    /// Open a new client connection; the connection task runs on the current tokio runtime.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect_to(&self.conn_string()).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !thread::panicking() {
            assert_no_password_in_logs(&self.data_dir);
        }
    }
}

/// Every test server's event and audit logs are searched for the administrators' password,
/// which every test logs in with: no log may ever hold it.
fn assert_no_password_in_logs(data_dir: &std::path::Path) {
    for dir in ["log", "audit"] {
        let Ok(entries) = std::fs::read_dir(data_dir.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let text = std::fs::read(entry.path()).unwrap_or_default();
            let found = text
                .windows(ADMIN_PASSWORD.len())
                .any(|w| w == ADMIN_PASSWORD.as_bytes());
            assert!(!found, "{} holds a password", entry.path().display());
        }
    }
}

/// A fresh temporary directory for a test's data directories.
#[allow(dead_code)]
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kura-test-")
        .tempdir()
        .expect("create temporary data directory")
}

/// Connect to any libpq-style connection string and spawn the connection task.
#[allow(dead_code)]
pub async fn connect_to(conn_string: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(conn_string, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to `{conn_string}`: {e}"));
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    client
}

/// Extract PORT from a line containing `listening on 127.0.0.1:PORT`.
fn parse_port(line: &str) -> Option<u16> {
    let rest = &line[line.find(READY_MARKER)? + READY_MARKER.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Echo a child's output stream into the test's captured output until EOF.
fn drain_to_test_output(stream: impl Read + Send + 'static, label: &'static str) {
    thread::Builder::new()
        .name(label.into())
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => eprintln!("[{label}] {}", String::from_utf8_lossy(&buf).trim_end()),
                }
            }
        })
        .expect("spawn output drain thread");
}

/// Upper bound for any single client call a test expects to finish.
#[allow(dead_code)]
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Awaits `fut`, failing the test if it takes longer than [`CALL_TIMEOUT`].
#[allow(dead_code)]
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(CALL_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("`{what}` did not finish within {CALL_TIMEOUT:?}"))
}

/// Runs statements that must succeed (simple protocol).
#[allow(dead_code)]
pub async fn exec(client: &tokio_postgres::Client, sql: &str) {
    within(sql, client.batch_execute(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

/// Runs one statement with the simple protocol and returns its affected/selected row count.
#[allow(dead_code)]
pub async fn affected(client: &tokio_postgres::Client, sql: &str) -> u64 {
    let messages = within(sql, client.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no CommandComplete"))
}

/// Rows of a query (or of every query of a batch) in text form, each row's columns joined
/// with `|` (NULL as `NULL`).
#[allow(dead_code)]
pub async fn text_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    rows_as_text(
        within(sql, client.simple_query(sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}")),
    )
}

/// The rows of simple-query messages as [`text_rows`] gives them.
#[allow(dead_code)]
pub fn rows_as_text(messages: Vec<tokio_postgres::SimpleQueryMessage>) -> Vec<String> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

/// The SQLSTATE of a failed call.
#[allow(dead_code)]
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// Runs `sql`, which must fail with SQLSTATE `code`; returns the error's message.
#[allow(dead_code)]
pub async fn fails(client: &tokio_postgres::Client, sql: &str, code: &str) -> String {
    let e = client
        .simple_query(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("{sql} should fail"));
    assert_eq!(sqlstate(&e), Some(code), "{sql}: {e:?}");
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::parse_port;

    #[test]
    fn parses_readiness_line() {
        assert_eq!(parse_port("kura listening on 127.0.0.1:54321"), Some(54321));
        assert_eq!(
            parse_port("2024-01-01T00:00:00Z INFO listening on 127.0.0.1:5433 (pgwire)"),
            Some(5433)
        );
        assert_eq!(parse_port("starting"), None);
    }
}
