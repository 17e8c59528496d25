//! Spawning `kura serve` for a bench: login and time-limit settings, throw-away run
//! directories, the server process (readiness, log tail, kill on drop) and small client helpers.
//!
//! Used by `durability`, `timeseries` and `replication`; `wire` has its own spawner (it can also
//! bench a server it did not start).

use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls, SimpleQueryMessage, SimpleQueryRow};

use super::{Context, Result, env_parse, env_var, find_kura_binary, parse_listening, timed};

/// What every spawning bench reads from the environment:
///
/// - `KURA_BENCH_BIN`: the `kura` binary (see [`find_kura_binary`])
/// - `KURA_BENCH_DIR`: where run directories are made [system temp dir]
/// - `KURA_BENCH_USER` / `KURA_BENCH_PASSWORD` / `KURA_BENCH_DBNAME`: login [per bench /
///   per bench / `public`]
/// - `KURA_BENCH_TIMEOUT`: time limit of one statement, seconds [600]
/// - `KURA_BENCH_READY_TIMEOUT`: time a start may take until `listening on`, seconds [600]
/// - `KURA_BENCH_KEEP`: `1` keeps the run directories [0]
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub binary: PathBuf,
    pub base_dir: Option<PathBuf>,
    pub user: String,
    pub password: String,
    pub dbname: String,
    /// Time limit of one statement (and of connecting).
    pub timeout: Duration,
    /// Time a start may take until the server prints `listening on`.
    pub ready_timeout: Duration,
    /// Keep run directories after the bench.
    pub keep: bool,
}

impl ServerSettings {
    /// Reads the settings; `default_user` / `default_password` apply when `KURA_BENCH_USER` /
    /// `KURA_BENCH_PASSWORD` are unset or empty (an empty password is not sent at all).
    pub fn from_env(default_user: &str, default_password: &str) -> Result<Self> {
        Ok(Self {
            binary: find_kura_binary()?,
            base_dir: env_var("KURA_BENCH_DIR").map(PathBuf::from),
            user: env_var("KURA_BENCH_USER").unwrap_or_else(|| default_user.into()),
            password: env_var("KURA_BENCH_PASSWORD").unwrap_or_else(|| default_password.into()),
            dbname: env_var("KURA_BENCH_DBNAME").unwrap_or_else(|| "public".into()),
            timeout: Duration::from_secs(env_parse("KURA_BENCH_TIMEOUT", 600)?),
            ready_timeout: Duration::from_secs(env_parse("KURA_BENCH_READY_TIMEOUT", 600)?),
            keep: env_var("KURA_BENCH_KEEP").is_some_and(|v| v.trim() == "1"),
        })
    }

    /// A libpq-style connection string for `host:port` with this login (values quoted, so an
    /// empty or odd password cannot swallow the next keyword).
    pub fn conninfo(&self, host: &str, port: u16) -> String {
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut info = format!(
            "host={} port={port} user={} dbname={}",
            quote(host),
            quote(&self.user),
            quote(&self.dbname)
        );
        if !self.password.is_empty() {
            info.push_str(&format!(" password={}", quote(&self.password)));
        }
        info
    }
}

/// The last `lines` lines of a text file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    format!("last lines of {}:\n{}", path.display(), tail.join("\n"))
}

/// A per-run directory holding `data/`, the configuration file `kura.json` and the server
/// logs; removed when dropped unless `KURA_BENCH_KEEP=1` or [`RunDir::keep`] was called.
pub struct RunDir {
    root: PathBuf,
    keep: bool,
}

impl RunDir {
    /// Makes `kura-<label>-XXXXXX` under `KURA_BENCH_DIR` (else the system temp dir) and writes
    /// `config_json` to `kura.json` in it.
    pub fn new(settings: &ServerSettings, label: &str, config_json: &str) -> Result<Self> {
        let prefix = format!("kura-{label}-");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        let temp = match &settings.base_dir {
            Some(base) => {
                std::fs::create_dir_all(base).context(format!("creating {}", base.display()))?;
                builder.tempdir_in(base)
            }
            None => builder.tempdir(),
        }
        .context("creating a temporary directory")?;
        let root = temp.keep();
        std::fs::write(root.join("kura.json"), config_json).context("writing kura.json")?;
        Ok(Self {
            root,
            keep: settings.keep,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("kura.json")
    }

    /// Where the server's stderr goes (see [`KuraServer::start`]).
    pub fn stderr_log(&self) -> PathBuf {
        self.root.join("kura.stderr.log")
    }

    /// Keeps the directory after the bench (e.g. after a failure, for its logs).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// A `kura serve` child process; killed with SIGKILL (and reaped) when dropped.
pub struct KuraServer {
    child: Child,
    pub conninfo: String,
    /// The address from the `listening on` line.
    pub host: String,
    pub port: u16,
    /// From just before the process was spawned until its `listening on` line was read.
    pub ready_after: Duration,
}

impl Drop for KuraServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl KuraServer {
    /// Runs `kura serve --listen 127.0.0.1:0 --data-dir DATA --config CONFIG EXTRA...` and
    /// waits for `listening on`. The server's stdout and stderr are appended to
    /// `kura.stdout.log` / `kura.stderr.log` next to `data`.
    pub fn start(
        settings: &ServerSettings,
        data: &Path,
        config_file: &Path,
        extra_args: &[&str],
    ) -> Result<Self> {
        Self::start_with_env(settings, data, config_file, extra_args, &[])
    }

    /// [`KuraServer::start`] with extra environment variables for the server process (e.g.
    /// `KURA_ADMIN_PASSWORD`).
    pub fn start_with_env(
        settings: &ServerSettings,
        data: &Path,
        config_file: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let run_dir = data.parent().unwrap_or(data);
        let stderr_log = run_dir.join("kura.stderr.log");
        let stdout_log = run_dir.join("kura.stdout.log");
        let open_log = |path: &Path| {
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .context(format!("opening {}", path.display()))
        };
        let stderr = open_log(&stderr_log)?;
        let mut copy = open_log(&stdout_log)?;

        let started = Instant::now();
        let mut child = Command::new(&settings.binary)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(config_file)
            .args(extra_args)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .context(format!("starting {}", settings.binary.display()))?;
        let stdout = child
            .stdout
            .take()
            .expect("stdout was configured as a pipe");
        // Reads stdout to the end (so the server never blocks on a full pipe) and reports the
        // first `listening on` address with the moment it was read.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(copy, "{line}");
                if let Some(addr) = parse_listening(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send((addr, Instant::now()));
                }
            }
        });

        let mut server = Self {
            child,
            conninfo: String::new(),
            host: String::new(),
            port: 0,
            ready_after: Duration::ZERO,
        };
        match rx.recv_timeout(settings.ready_timeout) {
            Ok(((host, port), at)) => {
                server.ready_after = at.duration_since(started);
                server.conninfo = settings.conninfo(&host, port);
                server.host = host;
                server.port = port;
                Ok(server)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "kura printed no `listening on` line within {:?}\n{}",
                settings.ready_timeout,
                log_tail(&stderr_log, 20)
            )
            .into()),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = server
                    .child
                    .wait()
                    .map_or_else(|e| e.to_string(), |s| s.to_string());
                Err(format!(
                    "kura exited ({status}) before printing `listening on`\n{}",
                    log_tail(&stderr_log, 20)
                )
                .into())
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    /// SIGKILL: no shutdown checkpoint, no final fsync.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill().context("killing the server")?;
        self.child.wait().context("reaping the server")?;
        Ok(())
    }
}

/// A `kB` field (`VmRSS`, `VmHWM`, ...) of `/proc/<pid>/status`, in bytes; `None` where there is
/// no `/proc` (not Linux) or the process is gone.
pub fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => Some(value * 1024),
        None => Some(value),
        Some(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Client helpers; every call is bounded by a time limit.

/// Connects with a time limit; the connection task runs in the background.
pub async fn connect(conninfo: &str, timeout: Duration) -> Result<Client> {
    let (client, connection) = timed(
        timeout,
        "connecting",
        tokio_postgres::connect(conninfo, NoTls),
    )
    .await?;
    // Benches kill servers on purpose; a broken connection shows up in the next query.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The first 100 characters of a statement, to name it in errors.
pub fn abbreviate(sql: &str) -> String {
    let mut short: String = sql.chars().take(100).collect();
    if short.len() < sql.len() {
        short.push_str("...");
    }
    short
}

/// Runs statements (simple query protocol) with a time limit, discarding results.
pub async fn exec(client: &Client, sql: &str, timeout: Duration) -> Result<()> {
    timed(timeout, &abbreviate(sql), client.batch_execute(sql)).await
}

/// Runs one query (simple query protocol) with a time limit; returns its rows as text.
pub async fn query_rows(client: &Client, sql: &str, timeout: Duration) -> Result<Vec<Vec<String>>> {
    let messages = timed(timeout, &abbreviate(sql), client.simple_query(sql)).await?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row_texts(row)),
            _ => None,
        })
        .collect())
}

/// The columns of a text row; NULL becomes `NULL`.
pub fn row_texts(row: &SimpleQueryRow) -> Vec<String> {
    (0..row.len())
        .map(|i| row.get(i).unwrap_or("NULL").to_owned())
        .collect()
}

/// Runs a query that returns one integer (e.g. `count(*)`).
pub async fn query_i64(client: &Client, sql: &str, timeout: Duration) -> Result<i64> {
    let rows = query_rows(client, sql, timeout).await?;
    let text = rows
        .first()
        .and_then(|r| r.first())
        .ok_or_else(|| format!("{}: returned no value", abbreviate(sql)))?;
    text.parse()
        .context(format!("{}: value {text:?}", abbreviate(sql)))
}
