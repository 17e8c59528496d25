//! End-to-end load generator over the PostgreSQL wire protocol.
//!
//! `cargo bench --bench wire` (a `harness = false` bench) starts the `kura` binary on an
//! ephemeral port with a throw-away data directory, or talks to the server named by
//! `KURA_BENCH_URL` (a libpq-style connection string, e.g.
//! `host=127.0.0.1 port=5544 user=postgres dbname=postgres`) so that the same numbers can be
//! taken from PostgreSQL on the same machine. It prints a header naming the target and one table
//! row per workload:
//!
//! | workload | what is measured |
//! |---|---|
//! | `insert` | single-row autocommit `INSERT` (prepared), ops/s, 1, 16 and 64 clients |
//! | `bulk`   | 1000-row multi-row `INSERT ... VALUES`, rows/s, 1 client |
//! | `point`  | primary-key point `SELECT` (prepared), ops/s, 1 and 16 clients |
//! | `agg`    | load `KURA_BENCH_ROWS` rows, then `GROUP BY device` aggregate, best of N, seconds |
//! | `copy_text`   | `COPY wirebench_copy FROM STDIN` (text) of `KURA_BENCH_COPY_ROWS` rows, rows/s |
//! | `copy_binary` | the same with `FORMAT binary` (`BinaryCopyInWriter`), rows/s |
//! | `copy_out`    | `COPY wirebench_copy TO STDOUT` (text) of those rows, rows/s |
//!
//! Only plain PostgreSQL SQL is used (no SERIAL; `COPY` only in the `copy_*` workloads), tables
//! are named `wirebench_*` and dropped before use (and after, unless `KURA_BENCH_KEEP=1`). Every
//! loop ends by time or by count, and every statement has a time limit. Correctness is checked
//! cheaply (row counts after inserts and copies, one row per point lookup, group totals, the
//! extremes of the copied columns, lines and fields of the copied-out text) so a fast but wrong
//! server does not pass unnoticed; timings are only printed, never asserted. COPY data is
//! generated and consumed in chunks of `COPY_CHUNK_ROWS` rows, so the client's memory does not
//! grow with the row count; for a spawned Kura server the `copy_*` lines also show the server's
//! resident size before, at its peak during (`VmHWM`, reset through `/proc/PID/clear_refs`) and
//! after the COPY.
//!
//! Settings (environment variables; defaults in brackets, quick-mode defaults after `/`):
//!
//! - `KURA_BENCH_URL`: connection string of an already running server [spawn Kura]
//! - `KURA_BENCH_BIN`: path of the `kura` binary to spawn [built binary of this package]
//! - `KURA_BENCH_SERVE_ARGS`: extra arguments for `kura serve`, split on whitespace, e.g.
//!   `--config benches/conf/sync.json` (SYNC) or `benches/conf/delayed.json` [none]
//! - `KURA_BENCH_DATA_DIR`: data directory for the spawned server, kept afterwards [temp dir]
//! - `KURA_BENCH_USER` / `KURA_BENCH_PASSWORD` / `KURA_BENCH_DBNAME`: login for the spawned
//!   server [`admin` / `admin` / `public`]
//! - `KURA_BENCH_SECONDS`: duration of each throughput run [5 / 1]
//! - `KURA_BENCH_CLIENTS`: comma-separated client counts of the `insert` and `point` workloads,
//!   each client on its own connection [insert: 1,16,64; point: 1,16]
//! - `KURA_BENCH_ROWS`: rows loaded for the aggregate [10000000 / 100000]
//! - `KURA_BENCH_POINT_ROWS`: rows preloaded for point selects [100000 / 10000]
//! - `KURA_BENCH_LOAD`: `insert` (1000-row multi-row INSERTs) or `series`
//!   (`INSERT INTO ... SELECT ... FROM generate_series(...)`) [insert]
//! - `KURA_BENCH_LOAD_CLIENTS`: parallel connections for the `insert` load [4]
//! - `KURA_BENCH_SERIES_CHUNK`: rows per `generate_series` statement [1000000]
//! - `KURA_BENCH_AGG_REPEAT`: aggregate runs, the best is reported [3]
//! - `KURA_BENCH_COPY_ROWS`: rows of the `copy_*` workloads [10000000 / 100000]
//! - `KURA_BENCH_TIMEOUT`: time limit of one statement, seconds [600]
//! - `KURA_BENCH_WORKLOADS`: comma-separated subset of
//!   `insert,bulk,point,agg,copy_text,copy_binary,copy_out` [all]
//! - `KURA_BENCH_KEEP`: `1` keeps the `wirebench_*` tables at the end [0]
//!
//! Positional arguments (`cargo bench --bench wire -- point agg`) also select workloads. Without
//! the `--bench` flag that `cargo bench` passes (e.g. under `cargo test --benches`) the run is a
//! quick smoke run with small defaults.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use futures::{SinkExt as _, StreamExt as _};
use tokio::task::JoinHandle;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

mod support;
use support::{
    Context, Result, env_parse, env_var, find_kura_binary, group_digits, parse_listening, timed,
};

/// How long the spawned server may take to print its `listening on` line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Rows per multi-row INSERT statement.
const BATCH_ROWS: i64 = 1000;
/// Distinct `device` values in every generated table.
const DEVICES: i64 = 100;
/// Default client counts of the insert workload (`KURA_BENCH_CLIENTS` overrides them).
const INSERT_CLIENTS: [usize; 3] = [1, 16, 64];
/// Default client counts of the point-select workload (`KURA_BENCH_CLIENTS` overrides them).
const POINT_CLIENTS: [usize; 2] = [1, 16];

const WIDE_COLUMNS: &str =
    "id bigint PRIMARY KEY, device integer, ts timestamp, value double precision, note text";
const BIG_TABLE: &str = "wirebench_big";
const COPY_TABLE: &str = "wirebench_copy";
const TS_COLUMNS: &str = "device integer, ts timestamp, value double precision";
/// Rows generated (COPY FROM) into one `Bytes` message or between two awaits of the binary
/// writer's flushes; bounds the client's memory whatever `KURA_BENCH_COPY_ROWS` is.
const COPY_CHUNK_ROWS: i64 = 10_000;
const ALL_TABLES: [&str; 5] = [
    "wirebench_insert",
    "wirebench_bulk",
    "wirebench_point",
    BIG_TABLE,
    COPY_TABLE,
];

// ---------------------------------------------------------------------------------------------
// Configuration

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Insert,
    Bulk,
    Point,
    Agg,
    CopyText,
    CopyBinary,
    CopyOut,
}

impl Workload {
    const ALL: [Workload; 7] = [
        Self::Insert,
        Self::Bulk,
        Self::Point,
        Self::Agg,
        Self::CopyText,
        Self::CopyBinary,
        Self::CopyOut,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Bulk => "bulk",
            Self::Point => "point",
            Self::Agg => "agg",
            Self::CopyText => "copy_text",
            Self::CopyBinary => "copy_binary",
            Self::CopyOut => "copy_out",
        }
    }

    fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == name)
            .ok_or_else(|| {
                let names = Self::ALL.map(Self::name).join(", ");
                format!("unknown workload {name:?} (expected one of {names})").into()
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoadMode {
    Insert,
    Series,
}

#[derive(Debug)]
struct Config {
    quick: bool,
    url: Option<String>,
    seconds: f64,
    /// `KURA_BENCH_CLIENTS`: client counts for the insert and point workloads.
    clients: Option<Vec<usize>>,
    rows: i64,
    point_rows: i64,
    load: LoadMode,
    load_clients: usize,
    series_chunk: i64,
    agg_repeat: usize,
    copy_rows: i64,
    timeout: Duration,
    workloads: Vec<Workload>,
    keep: bool,
}

impl Config {
    fn load() -> Result<Self> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = !args.iter().any(|a| a == "--bench");
        let seconds: f64 = env_parse("KURA_BENCH_SECONDS", if quick { 1.0 } else { 5.0 })?;
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(format!("KURA_BENCH_SECONDS must be positive, got {seconds}").into());
        }
        let clients = match env_var("KURA_BENCH_CLIENTS") {
            None => None,
            Some(list) => {
                let counts = list
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .context(format!("KURA_BENCH_CLIENTS={list:?}"))?;
                if counts.is_empty() || counts.contains(&0) {
                    return Err(format!(
                        "KURA_BENCH_CLIENTS={list:?}: expected client counts of at least 1"
                    )
                    .into());
                }
                Some(counts)
            }
        };
        let rows: i64 = env_parse("KURA_BENCH_ROWS", if quick { 100_000 } else { 10_000_000 })?;
        let point_rows: i64 = env_parse(
            "KURA_BENCH_POINT_ROWS",
            if quick { 10_000 } else { 100_000 },
        )?;
        let load = match env_var("KURA_BENCH_LOAD").as_deref().map(str::trim) {
            None | Some("insert") => LoadMode::Insert,
            Some("series") => LoadMode::Series,
            Some(other) => {
                return Err(
                    format!("KURA_BENCH_LOAD={other:?}: expected `insert` or `series`").into(),
                );
            }
        };
        let load_clients: usize = env_parse("KURA_BENCH_LOAD_CLIENTS", 4)?;
        let series_chunk: i64 = env_parse("KURA_BENCH_SERIES_CHUNK", 1_000_000)?;
        let agg_repeat: usize = env_parse("KURA_BENCH_AGG_REPEAT", 3)?;
        let copy_rows: i64 = env_parse(
            "KURA_BENCH_COPY_ROWS",
            if quick { 100_000 } else { 10_000_000 },
        )?;
        let timeout = Duration::from_secs(env_parse("KURA_BENCH_TIMEOUT", 600)?);
        if rows < 1
            || point_rows < 1
            || load_clients < 1
            || series_chunk < 1
            || agg_repeat < 1
            || copy_rows < 1
        {
            return Err(
                "KURA_BENCH_ROWS, _POINT_ROWS, _LOAD_CLIENTS, _SERIES_CHUNK, _AGG_REPEAT and \
                        _COPY_ROWS must be at least 1"
                    .into(),
            );
        }

        let mut names: Vec<String> = args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .cloned()
            .collect();
        if let Some(list) = env_var("KURA_BENCH_WORKLOADS") {
            names.extend(list.split(',').map(|s| s.trim().to_owned()));
        }
        names.retain(|n| !n.is_empty());
        let workloads = if names.is_empty() {
            Workload::ALL.to_vec()
        } else {
            let chosen = names
                .iter()
                .map(|n| Workload::parse(n))
                .collect::<Result<Vec<_>>>()?;
            Workload::ALL
                .into_iter()
                .filter(|w| chosen.contains(w))
                .collect()
        };

        Ok(Self {
            quick,
            url: env_var("KURA_BENCH_URL"),
            seconds,
            clients,
            rows,
            point_rows,
            load,
            load_clients,
            series_chunk,
            agg_repeat,
            copy_rows,
            timeout,
            workloads,
            keep: env_var("KURA_BENCH_KEEP").is_some_and(|v| v.trim() == "1"),
        })
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    /// Client counts of a workload: `KURA_BENCH_CLIENTS`, else the workload's defaults.
    fn client_counts(&self, defaults: &[usize]) -> Vec<usize> {
        self.clients.clone().unwrap_or_else(|| defaults.to_vec())
    }
}

// ---------------------------------------------------------------------------------------------
// Target: a spawned Kura server or an external one

/// A `kura serve` child process; killed (and reaped) when dropped.
struct KuraServer {
    child: Child,
    binary: PathBuf,
    data_dir: PathBuf,
    log_dir: PathBuf,
    // Declared last so the directory is removed after the child is gone.
    temp: Option<tempfile::TempDir>,
}

impl Drop for KuraServer {
    fn drop(&mut self) {
        // The process may already be gone; either way it must not outlive the bench.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    if tail.is_empty() {
        format!("({} is empty)", path.display())
    } else {
        format!("last lines of {}:\n{}", path.display(), tail.join("\n"))
    }
}

impl KuraServer {
    /// Starts `kura serve --listen 127.0.0.1:0 --data-dir DIR` and waits for its
    /// `listening on HOST:PORT` line.
    fn start() -> Result<(Self, String, u16)> {
        let binary = find_kura_binary()?;
        let temp = tempfile::Builder::new()
            .prefix("kura-wirebench-")
            .tempdir()
            .context("creating a temporary directory")?;
        let (data_dir, temp) = match env_var("KURA_BENCH_DATA_DIR") {
            Some(dir) => (PathBuf::from(dir), Some(temp)),
            None => (temp.path().join("data"), Some(temp)),
        };
        let log_dir = temp
            .as_ref()
            .map(|t| t.path().to_path_buf())
            .expect("temporary directory was just created");
        std::fs::create_dir_all(&data_dir)
            .context(format!("creating data directory {}", data_dir.display()))?;
        let stdout_log = log_dir.join("kura.stdout.log");
        let stderr_log = log_dir.join("kura.stderr.log");
        let stderr = File::create(&stderr_log).context("creating the server's stderr log")?;

        let mut cmd = Command::new(&binary);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir);
        if let Some(extra) = env_var("KURA_BENCH_SERVE_ARGS") {
            cmd.args(extra.split_whitespace());
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .context(format!("starting {}", binary.display()))?;
        let stdout = child
            .stdout
            .take()
            .expect("stdout was configured as a pipe");
        let mut server = Self {
            child,
            binary,
            data_dir,
            log_dir,
            temp,
        };

        // A thread reads stdout to the end (so the server never blocks on a full pipe), copies
        // it to a log file, and reports the first `listening on` address.
        let (tx, rx) = mpsc::channel();
        let mut copy = File::create(&stdout_log).context("creating the server's stdout log")?;
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(copy, "{line}");
                if let Some(addr) = parse_listening(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
            }
        });

        let failure = match rx.recv_timeout(READY_TIMEOUT) {
            Ok((host, port)) => return Ok((server, host, port)),
            Err(mpsc::RecvTimeoutError::Timeout) => format!(
                "{} printed no `listening on` line within {READY_TIMEOUT:?}",
                server.binary.display()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = server
                    .child
                    .wait()
                    .map_or_else(|e| e.to_string(), |s| s.to_string());
                format!(
                    "{} exited ({status}) before printing `listening on`",
                    server.binary.display()
                )
            }
        };
        // Keep the logs (and data) of a server that did not start, for a look afterwards.
        if let Some(temp) = server.temp.take() {
            let _ = temp.keep();
        }
        Err(format!("{failure}\n{}", log_tail(&stderr_log)).into())
    }
}

enum Target {
    External {
        conninfo: String,
    },
    Spawned {
        server: KuraServer,
        conninfo: String,
    },
}

impl Target {
    fn start(cfg: &Config) -> Result<Self> {
        if let Some(url) = &cfg.url {
            return Ok(Self::External {
                conninfo: url.clone(),
            });
        }
        let (server, host, port) = KuraServer::start()?;
        let user = env_var("KURA_BENCH_USER").unwrap_or_else(|| "admin".into());
        let password = env_var("KURA_BENCH_PASSWORD").unwrap_or_else(|| "admin".into());
        let dbname = env_var("KURA_BENCH_DBNAME").unwrap_or_else(|| "public".into());
        let conninfo =
            format!("host={host} port={port} user={user} password={password} dbname={dbname}");
        Ok(Self::Spawned { server, conninfo })
    }

    fn conninfo(&self) -> &str {
        match self {
            Self::External { conninfo } | Self::Spawned { conninfo, .. } => conninfo,
        }
    }

    /// Process id of the spawned server (none for an external one).
    fn server_pid(&self) -> Option<u32> {
        match self {
            Self::External { .. } => None,
            Self::Spawned { server, .. } => Some(server.child.id()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::External { conninfo } => format!("external server (KURA_BENCH_URL={conninfo})"),
            Self::Spawned { server, conninfo } => format!(
                "kura spawned from {} (data dir {}, logs in {}; {})",
                server.binary.display(),
                server.data_dir.display(),
                server.log_dir.display(),
                hide_password(conninfo)
            ),
        }
    }
}

fn hide_password(conninfo: &str) -> String {
    conninfo
        .split_whitespace()
        .filter(|kv| !kv.starts_with("password="))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// Client helpers

async fn connect(cfg: &Config, conninfo: &str) -> Result<Client> {
    let (client, connection) = timed(
        cfg.timeout,
        "connecting",
        tokio_postgres::connect(conninfo, NoTls),
    )
    .await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("wire bench: connection closed with an error: {e}");
        }
    });
    Ok(client)
}

async fn connect_many(cfg: &Config, conninfo: &str, n: usize) -> Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(connect(cfg, conninfo).await?);
    }
    Ok(clients)
}

async fn exec(cfg: &Config, client: &Client, sql: &str) -> Result<()> {
    timed(cfg.timeout, &abbreviate(sql), client.batch_execute(sql)).await
}

/// First column of the first row of a simple query, as text.
async fn scalar_text(cfg: &Config, client: &Client, sql: &str) -> Result<String> {
    let messages = timed(cfg.timeout, sql, client.simple_query(sql)).await?;
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("NULL").to_owned()),
            _ => None,
        })
        .ok_or_else(|| format!("{sql}: returned no row").into())
}

async fn count_rows(cfg: &Config, client: &Client, table: &str) -> Result<i64> {
    let sql = format!("SELECT count(*) FROM {table}");
    let text = scalar_text(cfg, client, &sql).await?;
    text.parse()
        .context(format!("{sql}: not a number: {text:?}"))
}

async fn recreate(cfg: &Config, client: &Client, table: &str, columns: &str) -> Result<()> {
    exec(cfg, client, &format!("DROP TABLE IF EXISTS {table}")).await?;
    exec(cfg, client, &format!("CREATE TABLE {table} ({columns})")).await
}

fn abbreviate(sql: &str) -> String {
    const MAX: usize = 120;
    match sql.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &sql[..cut]),
        None => sql.to_owned(),
    }
}

/// Waits for every worker and adds up what they counted.
async fn join_counts(handles: Vec<JoinHandle<Result<u64>>>) -> Result<u64> {
    Ok(support::join_all(handles).await?.into_iter().sum())
}

// ---------------------------------------------------------------------------------------------
// Generated data: row `i` has device `i % 100`, ts `2024-01-01 + i s`, value `i * 0.5`

fn base_ts() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("2024-01-01 00:00:00 is a valid timestamp")
}

fn ts_of(base: NaiveDateTime, i: i64) -> NaiveDateTime {
    base + TimeDelta::seconds(i)
}

fn value_of(i: i64) -> f64 {
    i as f64 * 0.5
}

/// `INSERT INTO table (id, device, ts, value, note) VALUES (...), ...` for ids `ids`.
fn wide_insert_sql(table: &str, ids: std::ops::Range<i64>) -> String {
    let base = base_ts();
    let mut sql = String::with_capacity(90 * (ids.end - ids.start).max(0) as usize + 64);
    let _ = write!(
        sql,
        "INSERT INTO {table} (id, device, ts, value, note) VALUES "
    );
    for (k, i) in ids.enumerate() {
        let sep = if k == 0 { "" } else { ", " };
        let _ = write!(
            sql,
            "{sep}({i}, {}, TIMESTAMP '{}', {:.1}, 'note-{}')",
            i % DEVICES,
            ts_of(base, i).format("%Y-%m-%d %H:%M:%S"),
            value_of(i),
            i % 1000
        );
    }
    sql
}

/// `INSERT INTO wirebench_big (device, ts, value) VALUES (...), ...` for rows `rows`.
fn big_insert_sql(rows: std::ops::Range<i64>) -> String {
    let base = base_ts();
    let mut sql = String::with_capacity(60 * (rows.end - rows.start).max(0) as usize + 64);
    let _ = write!(sql, "INSERT INTO {BIG_TABLE} (device, ts, value) VALUES ");
    for (k, i) in rows.enumerate() {
        let sep = if k == 0 { "" } else { ", " };
        let _ = write!(
            sql,
            "{sep}({}, TIMESTAMP '{}', {:.1})",
            i % DEVICES,
            ts_of(base, i).format("%Y-%m-%d %H:%M:%S"),
            value_of(i)
        );
    }
    sql
}

/// Loads rows `1..=total` with 1000-row statements built by `make_sql`, over `clients`
/// connections that take batches from a shared counter.
async fn parallel_load(
    cfg: &Config,
    conninfo: &str,
    clients: usize,
    total: i64,
    make_sql: fn(std::ops::Range<i64>) -> String,
) -> Result<()> {
    let next = Arc::new(AtomicI64::new(1));
    let timeout = cfg.timeout;
    let mut handles = Vec::new();
    for client in connect_many(cfg, conninfo, clients).await? {
        let next = Arc::clone(&next);
        handles.push(tokio::spawn(async move {
            let mut batches = 0u64;
            loop {
                let start = next.fetch_add(BATCH_ROWS, Ordering::Relaxed);
                if start > total {
                    return Ok(batches);
                }
                let end = (start + BATCH_ROWS).min(total + 1);
                let sql = make_sql(start..end);
                timed(timeout, "multi-row INSERT", client.batch_execute(&sql)).await?;
                batches += 1;
            }
        }));
    }
    join_counts(handles).await.map(drop)
}

// ---------------------------------------------------------------------------------------------
// Workloads

/// One line of the result table.
struct Row {
    workload: String,
    clients: usize,
    result: String,
}

fn rate(count: u64, unit: &str, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{} {unit}/s ({} in {:.2} s)",
        group_digits((count as f64 / secs).round() as u64),
        group_digits(count),
        secs
    )
}

/// Single-row autocommit INSERT with a prepared statement.
async fn insert_workload(cfg: &Config, conninfo: &str, clients: usize) -> Result<String> {
    let table = "wirebench_insert";
    let admin = connect(cfg, conninfo).await?;
    recreate(cfg, &admin, table, WIDE_COLUMNS).await?;
    let sql =
        format!("INSERT INTO {table} (id, device, ts, value, note) VALUES ($1, $2, $3, $4, $5)");
    let types = [
        Type::INT8,
        Type::INT4,
        Type::TIMESTAMP,
        Type::FLOAT8,
        Type::TEXT,
    ];
    let mut prepared = Vec::new();
    for client in connect_many(cfg, conninfo, clients).await? {
        let stmt = timed(cfg.timeout, &sql, client.prepare_typed(&sql, &types)).await?;
        prepared.push((client, stmt));
    }

    let next = Arc::new(AtomicI64::new(1));
    let timeout = cfg.timeout;
    let start = Instant::now();
    let deadline = start + cfg.duration();
    let mut handles = Vec::new();
    for (client, stmt) in prepared {
        let next = Arc::clone(&next);
        handles.push(tokio::spawn(async move {
            let base = base_ts();
            let mut done = 0u64;
            while Instant::now() < deadline {
                let id = next.fetch_add(1, Ordering::Relaxed);
                let device = (id % DEVICES) as i32;
                let ts = ts_of(base, id);
                let value = value_of(id);
                let note = format!("note-{}", id % 1000);
                let n = timed(
                    timeout,
                    "single-row INSERT",
                    client.execute(&stmt, &[&id, &device, &ts, &value, &note]),
                )
                .await?;
                if n != 1 {
                    return Err(format!("single-row INSERT of id {id} reported {n} rows").into());
                }
                done += 1;
            }
            Ok(done)
        }));
    }
    let done = join_counts(handles).await?;
    let elapsed = start.elapsed();

    let stored = count_rows(cfg, &admin, table).await?;
    if stored != done as i64 {
        return Err(format!("{done} INSERTs acknowledged but {table} holds {stored} rows").into());
    }
    Ok(rate(done, "ops", elapsed))
}

/// 1000-row multi-row INSERTs from one client.
async fn bulk_workload(cfg: &Config, conninfo: &str) -> Result<String> {
    let table = "wirebench_bulk";
    let client = connect(cfg, conninfo).await?;
    recreate(cfg, &client, table, WIDE_COLUMNS).await?;
    let start = Instant::now();
    let deadline = start + cfg.duration();
    let mut next = 1i64;
    while Instant::now() < deadline {
        let sql = wide_insert_sql(table, next..next + BATCH_ROWS);
        timed(cfg.timeout, "1000-row INSERT", client.batch_execute(&sql)).await?;
        next += BATCH_ROWS;
    }
    let elapsed = start.elapsed();
    let done = (next - 1) as u64;
    let stored = count_rows(cfg, &client, table).await?;
    if stored != done as i64 {
        return Err(format!("{done} rows inserted but {table} holds {stored} rows").into());
    }
    Ok(rate(done, "rows", elapsed))
}

/// Creates and fills the point-select table once (shared by the 1- and 16-client runs).
async fn point_setup(cfg: &Config, conninfo: &str) -> Result<()> {
    let table = "wirebench_point";
    let client = connect(cfg, conninfo).await?;
    recreate(cfg, &client, table, WIDE_COLUMNS).await?;
    parallel_load(cfg, conninfo, cfg.load_clients, cfg.point_rows, |ids| {
        wide_insert_sql("wirebench_point", ids)
    })
    .await?;
    let stored = count_rows(cfg, &client, table).await?;
    if stored != cfg.point_rows {
        return Err(format!("loaded {} rows but {table} holds {stored}", cfg.point_rows).into());
    }
    Ok(())
}

/// Small, fast pseudo-random generator (xorshift64*) so the bench needs no `rand` crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Primary-key point SELECT with a prepared statement, random keys.
async fn point_workload(cfg: &Config, conninfo: &str, clients: usize) -> Result<String> {
    let sql = "SELECT id, device, ts, value, note FROM wirebench_point WHERE id = $1";
    let mut prepared = Vec::new();
    for client in connect_many(cfg, conninfo, clients).await? {
        let stmt = timed(cfg.timeout, sql, client.prepare_typed(sql, &[Type::INT8])).await?;
        prepared.push((client, stmt));
    }
    let keys = cfg.point_rows as u64;
    let timeout = cfg.timeout;
    let start = Instant::now();
    let deadline = start + cfg.duration();
    let mut handles = Vec::new();
    for (k, (client, stmt)) in prepared.into_iter().enumerate() {
        handles.push(tokio::spawn(async move {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((k as u64 + 1) << 32));
            let mut done = 0u64;
            while Instant::now() < deadline {
                let id = 1 + (rng.next() % keys) as i64;
                let rows = timed(timeout, "point SELECT", client.query(&stmt, &[&id])).await?;
                if rows.len() != 1 {
                    return Err(
                        format!("point SELECT of id {id} returned {} rows", rows.len()).into(),
                    );
                }
                done += 1;
            }
            Ok(done)
        }));
    }
    let done = join_counts(handles).await?;
    Ok(rate(done, "ops", start.elapsed()))
}

/// Loads the aggregate table; returns the load rate.
async fn agg_load(cfg: &Config, conninfo: &str) -> Result<(usize, String)> {
    let client = connect(cfg, conninfo).await?;
    recreate(cfg, &client, BIG_TABLE, TS_COLUMNS).await?;
    let start = Instant::now();
    let clients = match cfg.load {
        LoadMode::Insert => {
            parallel_load(cfg, conninfo, cfg.load_clients, cfg.rows, big_insert_sql).await?;
            cfg.load_clients
        }
        LoadMode::Series => {
            let epoch = base_ts().and_utc().timestamp();
            let mut lo = 1;
            while lo <= cfg.rows {
                let hi = (lo + cfg.series_chunk - 1).min(cfg.rows);
                let sql = format!(
                    "INSERT INTO {BIG_TABLE} (device, ts, value) \
                     SELECT CAST(v % {DEVICES} AS integer), \
                     CAST(to_timestamp({epoch} + v) AS timestamp), \
                     CAST(v * 0.5 AS double precision) \
                     FROM generate_series({lo}, {hi}) AS s(v)"
                );
                exec(cfg, &client, &sql).await?;
                lo = hi + 1;
            }
            1
        }
    };
    let elapsed = start.elapsed();
    let stored = count_rows(cfg, &client, BIG_TABLE).await?;
    if stored != cfg.rows {
        return Err(format!("loaded {} rows but {BIG_TABLE} holds {stored}", cfg.rows).into());
    }
    Ok((clients, rate(cfg.rows as u64, "rows", elapsed)))
}

/// The GROUP BY aggregate, best of `agg_repeat` runs; checks the group totals.
async fn agg_query(cfg: &Config, conninfo: &str) -> Result<String> {
    let client = connect(cfg, conninfo).await?;
    let sql =
        format!("SELECT device, count(*), avg(value), max(value) FROM {BIG_TABLE} GROUP BY device");
    let mut times = Vec::with_capacity(cfg.agg_repeat);
    for _ in 0..cfg.agg_repeat {
        let start = Instant::now();
        let messages = timed(cfg.timeout, &sql, client.simple_query(&sql)).await?;
        times.push(start.elapsed());
        let mut groups = 0i64;
        let mut total = 0i64;
        for message in &messages {
            if let SimpleQueryMessage::Row(row) = message {
                groups += 1;
                let count = row.get(1).unwrap_or("NULL");
                total += count
                    .parse::<i64>()
                    .context(format!("GROUP BY returned count {count:?}"))?;
            }
        }
        let want_groups = cfg.rows.min(DEVICES);
        if groups != want_groups || total != cfg.rows {
            return Err(format!(
                "GROUP BY returned {groups} groups totalling {total} rows, \
                 expected {want_groups} groups totalling {}",
                cfg.rows
            )
            .into());
        }
    }
    let best = times.iter().min().copied().unwrap_or_default();
    let all = times
        .iter()
        .map(|t| format!("{:.3}", t.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!("{:.3} s (runs: {all})", best.as_secs_f64()))
}

// ---------------------------------------------------------------------------------------------
// COPY workloads: rows `1..=copy_rows` of the generated time series, in `COPY_TABLE`

/// Appends the decimal digits of `n`.
fn push_u64(buf: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

fn push_2digits(buf: &mut BytesMut, n: i64) {
    buf.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
}

/// COPY text rows for `rows`, without any per-row allocation or `chrono` formatting: the date
/// part of `ts` is formatted once per day (`base_ts()` is a midnight), the rest by hand. The
/// text is exactly what PostgreSQL itself writes for these values.
struct TextRows {
    base: NaiveDateTime,
    day: i64,
    date: String,
}

impl TextRows {
    fn new() -> Self {
        Self {
            base: base_ts(),
            day: -1,
            date: String::new(),
        }
    }

    fn chunk(&mut self, rows: std::ops::Range<i64>) -> Bytes {
        let mut buf = BytesMut::with_capacity(40 * (rows.end - rows.start).max(0) as usize);
        for i in rows {
            push_u64(&mut buf, (i % DEVICES) as u64);
            buf.extend_from_slice(b"\t");
            let (day, second) = (i.div_euclid(86_400), i.rem_euclid(86_400));
            if day != self.day {
                self.day = day;
                self.date = (self.base + TimeDelta::days(day))
                    .format("%Y-%m-%d ")
                    .to_string();
            }
            buf.extend_from_slice(self.date.as_bytes());
            push_2digits(&mut buf, second / 3600);
            buf.extend_from_slice(b":");
            push_2digits(&mut buf, second / 60 % 60);
            buf.extend_from_slice(b":");
            push_2digits(&mut buf, second % 60);
            buf.extend_from_slice(b"\t");
            // value_of(i) = i * 0.5
            push_u64(&mut buf, (i / 2) as u64);
            if i % 2 == 1 {
                buf.extend_from_slice(b".5");
            }
            buf.extend_from_slice(b"\n");
        }
        buf.freeze()
    }
}

/// Row ranges of `COPY_CHUNK_ROWS` rows covering `1..=total`.
fn copy_chunks(total: i64) -> impl Iterator<Item = std::ops::Range<i64>> {
    (0..(total + COPY_CHUNK_ROWS - 1) / COPY_CHUNK_ROWS).map(move |k| {
        let lo = 1 + k * COPY_CHUNK_ROWS;
        lo..(lo + COPY_CHUNK_ROWS).min(total + 1)
    })
}

/// Checks that `COPY_TABLE` holds exactly rows `1..=rows`, through its count and the extremes
/// of every column (which catch mangled timestamps or numbers as well as lost rows).
async fn check_copy_table(cfg: &Config, client: &Client, rows: i64) -> Result<()> {
    let stored = count_rows(cfg, client, COPY_TABLE).await?;
    if stored != rows {
        return Err(format!("copied {rows} rows but {COPY_TABLE} holds {stored}").into());
    }
    let sql = format!(
        "SELECT min(device), max(device), min(ts), max(ts), min(value), max(value) \
         FROM {COPY_TABLE}"
    );
    let row = timed(cfg.timeout, &sql, client.query_one(&sql, &[])).await?;
    let got: (i32, i32, NaiveDateTime, NaiveDateTime, f64, f64) = (
        row.try_get(0).context(&sql)?,
        row.try_get(1).context(&sql)?,
        row.try_get(2).context(&sql)?,
        row.try_get(3).context(&sql)?,
        row.try_get(4).context(&sql)?,
        row.try_get(5).context(&sql)?,
    );
    let base = base_ts();
    let devices = if rows >= DEVICES {
        (0, (DEVICES - 1) as i32)
    } else {
        (1, rows as i32)
    };
    let want = (
        devices.0,
        devices.1,
        ts_of(base, 1),
        ts_of(base, rows),
        value_of(1),
        value_of(rows),
    );
    if got != want {
        return Err(format!(
            "{COPY_TABLE} holds (min, max) device, ts, value {got:?}, expected {want:?}"
        )
        .into());
    }
    Ok(())
}

/// `COPY wirebench_copy FROM STDIN` in text format, the data generated chunk by chunk while
/// it is sent.
async fn copy_text_workload(cfg: &Config, conninfo: &str) -> Result<String> {
    let client = connect(cfg, conninfo).await?;
    recreate(cfg, &client, COPY_TABLE, TS_COLUMNS).await?;
    let sql = format!("COPY {COPY_TABLE} (device, ts, value) FROM STDIN");
    let rows = cfg.copy_rows;
    let start = Instant::now();
    let reported = timed(cfg.timeout, &sql, async {
        let sink = client.copy_in::<_, Bytes>(&sql).await?;
        let mut sink = std::pin::pin!(sink);
        let mut text = TextRows::new();
        // Lazy: each chunk is generated only when the sink asks for more.
        let mut chunks = futures::stream::iter(copy_chunks(rows))
            .map(|range| Ok::<_, tokio_postgres::Error>(text.chunk(range)));
        sink.as_mut().send_all(&mut chunks).await?;
        sink.as_mut().finish().await
    })
    .await?;
    let elapsed = start.elapsed();
    if reported != rows as u64 {
        return Err(format!("COPY of {rows} rows reported {reported} rows").into());
    }
    check_copy_table(cfg, &client, rows).await?;
    Ok(rate(rows as u64, "rows", elapsed))
}

/// `COPY wirebench_copy FROM STDIN (FORMAT binary)` through `BinaryCopyInWriter`; returns the
/// rate.
async fn copy_binary_load(cfg: &Config, conninfo: &str) -> Result<String> {
    let client = connect(cfg, conninfo).await?;
    recreate(cfg, &client, COPY_TABLE, TS_COLUMNS).await?;
    let sql = format!("COPY {COPY_TABLE} (device, ts, value) FROM STDIN (FORMAT binary)");
    let rows = cfg.copy_rows;
    let start = Instant::now();
    let reported = timed(cfg.timeout, &sql, async {
        let sink = client.copy_in::<_, Bytes>(&sql).await?;
        let writer = BinaryCopyInWriter::new(sink, &[Type::INT4, Type::TIMESTAMP, Type::FLOAT8]);
        let mut writer = std::pin::pin!(writer);
        let base = base_ts();
        for i in 1..=rows {
            let device = (i % DEVICES) as i32;
            let ts = ts_of(base, i);
            let value = value_of(i);
            writer.as_mut().write(&[&device, &ts, &value]).await?;
        }
        writer.as_mut().finish().await
    })
    .await?;
    let elapsed = start.elapsed();
    if reported != rows as u64 {
        return Err(format!("binary COPY of {rows} rows reported {reported} rows").into());
    }
    check_copy_table(cfg, &client, rows).await?;
    Ok(rate(rows as u64, "rows", elapsed))
}

/// `COPY wirebench_copy TO STDOUT` in text format; counts lines and fields of what arrives.
/// Expects `COPY_TABLE` to hold rows `1..=copy_rows`.
async fn copy_out_workload(cfg: &Config, conninfo: &str) -> Result<String> {
    let client = connect(cfg, conninfo).await?;
    let sql = format!("COPY {COPY_TABLE} (device, ts, value) TO STDOUT");
    let start = Instant::now();
    let (lines, tabs, bytes, last) = timed(cfg.timeout, &sql, async {
        let stream = client.copy_out(&sql).await?;
        let mut stream = std::pin::pin!(stream);
        let (mut lines, mut tabs, mut bytes, mut last) = (0u64, 0u64, 0u64, b'\n');
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            for &b in chunk.iter() {
                lines += u64::from(b == b'\n');
                tabs += u64::from(b == b'\t');
            }
            bytes += chunk.len() as u64;
            last = chunk.last().copied().unwrap_or(last);
        }
        Ok::<_, tokio_postgres::Error>((lines, tabs, bytes, last))
    })
    .await?;
    let elapsed = start.elapsed();
    let rows = cfg.copy_rows as u64;
    if lines != rows || tabs != 2 * rows || last != b'\n' {
        return Err(format!(
            "COPY TO STDOUT sent {lines} lines with {tabs} tabs ({bytes} bytes), \
             expected {rows} lines of 3 fields"
        )
        .into());
    }
    Ok(format!(
        "{}, {:.1} MB/s",
        rate(rows, "rows", elapsed),
        bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
    ))
}

/// Resident size of the spawned server around one workload, from `/proc/PID/status`: `VmRSS`
/// before, `VmHWM` (peak) during, `VmRSS` after. The peak is reset first by writing `5` to
/// `/proc/PID/clear_refs`; where that fails the peak covers the server's whole life.
struct MemProbe {
    pid: u32,
    before_kb: Option<u64>,
    reset: bool,
}

fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

impl MemProbe {
    fn start(pid: Option<u32>) -> Option<Self> {
        let pid = pid?;
        let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        Some(Self {
            pid,
            before_kb: proc_status_kb(pid, "VmRSS"),
            reset,
        })
    }

    fn finish(&self) -> String {
        let mb = |kb: Option<u64>| kb.map_or_else(|| "?".to_owned(), |kb| group_digits(kb / 1024));
        format!(
            "; server RSS {} MiB before, peak {} MiB{}, {} MiB after",
            mb(self.before_kb),
            // The kernel's peak lags a little behind; it is never below where it started.
            mb(proc_status_kb(self.pid, "VmHWM").max(self.before_kb)),
            if self.reset { "" } else { " (since start)" },
            mb(proc_status_kb(self.pid, "VmRSS")),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Driver

struct Report {
    failures: usize,
}

impl Report {
    const WIDTH: usize = 46;

    fn header() {
        println!(
            "{:<w$} | {:>7} | ops/s, rows/s or seconds",
            "workload",
            "clients",
            w = Self::WIDTH
        );
        println!(
            "{}-+-{}-+-{}",
            "-".repeat(Self::WIDTH),
            "-".repeat(7),
            "-".repeat(40)
        );
    }

    fn line(&mut self, workload: &str, clients: usize, outcome: Result<String>) {
        let row = match outcome {
            Ok(result) => Row {
                workload: workload.to_owned(),
                clients,
                result,
            },
            Err(e) => {
                self.failures += 1;
                Row {
                    workload: workload.to_owned(),
                    clients,
                    result: format!("FAILED: {e}"),
                }
            }
        };
        println!(
            "{:<w$} | {:>7} | {}",
            row.workload,
            row.clients,
            row.result,
            w = Self::WIDTH
        );
        let _ = std::io::stdout().flush();
    }
}

async fn server_setting(cfg: &Config, client: &Client, name: &str) -> String {
    scalar_text(cfg, client, &format!("SHOW {name}"))
        .await
        .unwrap_or_else(|_| "n/a".into())
}

async fn run(cfg: &Config, target: &Target) -> Result<usize> {
    let conninfo = target.conninfo();
    let pid = target.server_pid();
    let probe = connect(cfg, conninfo).await?;
    let version = scalar_text(cfg, &probe, "SELECT version()")
        .await
        .unwrap_or_else(|e| format!("n/a ({e})"));
    let fsync = server_setting(cfg, &probe, "fsync").await;
    let sync_commit = server_setting(cfg, &probe, "synchronous_commit").await;
    drop(probe);

    println!(
        "Kura wire benchmark{}",
        if cfg.quick {
            " (quick smoke run: no --bench flag)"
        } else {
            ""
        }
    );
    println!("target:   {}", target.describe());
    println!("server:   {version}");
    println!("settings: fsync={fsync} synchronous_commit={sync_commit}");
    println!(
        "client:   {} CPUs, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z")
    );
    println!(
        "config:   seconds={} clients={} rows={} point_rows={} load={} load_clients={} \
         agg_repeat={} copy_rows={} workloads={}",
        cfg.seconds,
        cfg.clients.as_ref().map_or_else(
            || "default".to_owned(),
            |c| c.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
        ),
        cfg.rows,
        cfg.point_rows,
        match cfg.load {
            LoadMode::Insert => "insert",
            LoadMode::Series => "series",
        },
        cfg.load_clients,
        cfg.agg_repeat,
        cfg.copy_rows,
        cfg.workloads
            .iter()
            .map(|w| w.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    println!();
    Report::header();

    let mut report = Report { failures: 0 };
    // Whether `COPY_TABLE` holds the `copy_rows` rows `copy_out` reads (a COPY FROM succeeded).
    let mut copy_loaded = false;
    for workload in &cfg.workloads {
        match workload {
            Workload::Insert => {
                for clients in cfg.client_counts(&INSERT_CLIENTS) {
                    let outcome = insert_workload(cfg, conninfo, clients).await;
                    report.line("insert: single-row autocommit, prepared", clients, outcome);
                }
            }
            Workload::Bulk => {
                let outcome = bulk_workload(cfg, conninfo).await;
                report.line("bulk insert: 1000-row multi-row INSERT", 1, outcome);
            }
            Workload::Point => match point_setup(cfg, conninfo).await {
                Ok(()) => {
                    for clients in cfg.client_counts(&POINT_CLIENTS) {
                        let outcome = point_workload(cfg, conninfo, clients).await;
                        report.line("point select: by primary key, prepared", clients, outcome);
                    }
                }
                Err(e) => report.line(
                    &format!("point select: load {} rows", cfg.point_rows),
                    cfg.load_clients,
                    Err(e),
                ),
            },
            Workload::Agg => {
                let load_name = format!(
                    "agg: load {} rows ({})",
                    cfg.rows,
                    match cfg.load {
                        LoadMode::Insert => "1000-row INSERTs",
                        LoadMode::Series => "generate_series",
                    }
                );
                match agg_load(cfg, conninfo).await {
                    Ok((clients, result)) => {
                        report.line(&load_name, clients, Ok(result));
                        let outcome = agg_query(cfg, conninfo).await;
                        let name = format!("agg: GROUP BY device, best of {}", cfg.agg_repeat);
                        report.line(&name, 1, outcome);
                    }
                    Err(e) => report.line(&load_name, cfg.load_clients, Err(e)),
                }
            }
            Workload::CopyText => {
                let mem = MemProbe::start(pid);
                let outcome = copy_text_workload(cfg, conninfo).await;
                copy_loaded = outcome.is_ok();
                let outcome = outcome.map(|r| r + &mem.map(|m| m.finish()).unwrap_or_default());
                let name = format!("copy from stdin: text, {} rows", cfg.copy_rows);
                report.line(&name, 1, outcome);
            }
            Workload::CopyBinary => {
                let mem = MemProbe::start(pid);
                let outcome = copy_binary_load(cfg, conninfo).await;
                copy_loaded = outcome.is_ok();
                let outcome = outcome.map(|r| r + &mem.map(|m| m.finish()).unwrap_or_default());
                let name = format!("copy from stdin: binary, {} rows", cfg.copy_rows);
                report.line(&name, 1, outcome);
            }
            Workload::CopyOut => {
                if !copy_loaded {
                    // Run on its own: load the table first (not timed), as `point` does.
                    if let Err(e) = copy_binary_load(cfg, conninfo).await {
                        let name = format!("copy to stdout: load {} rows (binary)", cfg.copy_rows);
                        report.line(&name, 1, Err(e));
                        continue;
                    }
                    copy_loaded = true;
                }
                let mem = MemProbe::start(pid);
                let outcome = copy_out_workload(cfg, conninfo).await;
                let outcome = outcome.map(|r| r + &mem.map(|m| m.finish()).unwrap_or_default());
                let name = format!("copy to stdout: text, {} rows", cfg.copy_rows);
                report.line(&name, 1, outcome);
            }
        }
    }

    if !cfg.keep {
        let client = connect(cfg, conninfo).await?;
        for table in ALL_TABLES {
            exec(cfg, &client, &format!("DROP TABLE IF EXISTS {table}")).await?;
        }
    }
    Ok(report.failures)
}

fn main() -> ExitCode {
    let cfg = match Config::load() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("wire bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let target = match Target::start(&cfg) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("wire bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wire bench: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(&cfg, &target) => outcome,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    // Close every connection before the server goes away, then stop the server.
    drop(runtime);
    drop(target);
    match outcome {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("wire bench: {failures} workload(s) failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("wire bench: {e}");
            ExitCode::FAILURE
        }
    }
}
