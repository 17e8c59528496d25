//! Durability costs of a Kura server: restart time against log size, checkpoint time and size.
//!
//! `cargo bench --bench durability` (a `harness = false` bench) spawns the `kura` binary on
//! throw-away data directories and measures two things:
//!
//! | part (`KURA_BENCH_PARTS` name) | what is measured |
//! |---|---|
//! | `restart` | for each of `KURA_BENCH_RESTART_ROWS` row counts: load the rows with 1000-row `INSERT`s while no checkpoint runs (`checkpointInterval` 3600s), `SIGKILL` the server, then time a new `kura serve` on the same data directory until it prints `listening on` (the whole log is replayed); reports the log size, seconds per GB of log and rows replayed per second |
//! | `checkpoint` | for `storeCompressionMode` `NO_COMPRESSION` and `COMPRESSION_ZSTD`: load `KURA_BENCH_CHECKPOINT_ROWS` rows, time the SQL `CHECKPOINT`, measure `<data>/checkpoint/data/`, then `SIGKILL` and time the restart from that checkpoint |
//!
//! Every table is `durbench (id bigint PRIMARY KEY, device integer, ts timestamp, value double
//! precision)`, row `i` being `(i, i % 100, 2024-01-01 + i s, i * 0.5)`. Row counts are checked
//! after every load and after every restart (`count(*)`, `min(id)`, `max(id)`), so a server that
//! loses or invents rows shows up as `FAILED` and the bench exits non-zero; timings are only
//! printed, never asserted. Every loop is bounded by a count, every statement by
//! `KURA_BENCH_TIMEOUT`, every start by `KURA_BENCH_READY_TIMEOUT`.
//!
//! Settings (environment variables; defaults in brackets, quick-mode defaults after `/`):
//!
//! - `KURA_BENCH_BIN`: path of the `kura` binary [built binary of this package, else
//!   `target/release/kura`, else `target/debug/kura`]
//! - `KURA_BENCH_DIR`: directory under which the data directories are made [system temp dir]
//! - `KURA_BENCH_USER` / `KURA_BENCH_PASSWORD` / `KURA_BENCH_DBNAME`: login [`admin` /
//!   `admin` / `public`]
//! - `KURA_BENCH_PARTS`: comma-separated subset of `restart,checkpoint` [both]
//! - `KURA_BENCH_RESTART_ROWS`: comma-separated row counts for `restart`
//!   [1000000,4000000 / 20000]
//! - `KURA_BENCH_CHECKPOINT_ROWS`: rows for `checkpoint` [10000000 / 100000]
//! - `KURA_BENCH_LOAD`: how `checkpoint` loads its rows: `series` (`INSERT ... SELECT ... FROM
//!   generate_series(...)` in chunks) or `insert` (1000-row INSERTs) [series]
//! - `KURA_BENCH_LOAD_CLIENTS`: parallel connections for 1000-row INSERT loads [4]
//! - `KURA_BENCH_SERIES_CHUNK`: rows per `generate_series` statement [1000000]
//! - `KURA_BENCH_TIMEOUT`: time limit of one statement, seconds [600]
//! - `KURA_BENCH_READY_TIMEOUT`: time a start may take until `listening on`, seconds [600]
//! - `KURA_BENCH_KEEP`: `1` keeps the data directories [0]
//!
//! Positional arguments (`cargo bench --bench durability -- restart`) also select parts.
//! Without the `--bench` flag that `cargo bench` passes (e.g. under `cargo test --benches`) the
//! run is a quick smoke run with small row counts.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

mod support;
use support::{
    BoxError, Context, Result, env_parse, env_var, find_kura_binary, group_digits, parse_listening,
    timed,
};

/// Rows per multi-row INSERT statement.
const BATCH_ROWS: i64 = 1000;
/// Distinct `device` values.
const DEVICES: i64 = 100;
/// 2024-01-01 00:00:00 UTC, the timestamp of row 0.
const BASE_EPOCH: i64 = 1_704_067_200;
const TABLE: &str = "durbench";
const COLUMNS: &str = "id bigint PRIMARY KEY, device integer, ts timestamp, value double precision";
/// Decimal units, as printed: 1 MB = 10^6 bytes, 1 GB = 10^9 bytes.
const MB: f64 = 1e6;
const GB: f64 = 1e9;

// ---------------------------------------------------------------------------------------------
// Configuration

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Restart,
    Checkpoint,
}

impl Part {
    const ALL: [Part; 2] = [Self::Restart, Self::Checkpoint];

    fn name(self) -> &'static str {
        match self {
            Self::Restart => "restart",
            Self::Checkpoint => "checkpoint",
        }
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
    binary: PathBuf,
    base_dir: Option<PathBuf>,
    user: String,
    password: String,
    dbname: String,
    parts: Vec<Part>,
    restart_rows: Vec<i64>,
    checkpoint_rows: i64,
    load: LoadMode,
    load_clients: usize,
    series_chunk: i64,
    timeout: Duration,
    ready_timeout: Duration,
    keep: bool,
}

impl Config {
    fn load() -> Result<Self> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = !args.iter().any(|a| a == "--bench");

        let restart_rows = match env_var("KURA_BENCH_RESTART_ROWS") {
            None if quick => vec![20_000],
            None => vec![1_000_000, 4_000_000],
            Some(list) => list
                .split(',')
                .map(|n| n.trim().parse::<i64>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .context(format!("KURA_BENCH_RESTART_ROWS={list:?}"))?,
        };
        let checkpoint_rows: i64 = env_parse(
            "KURA_BENCH_CHECKPOINT_ROWS",
            if quick { 100_000 } else { 10_000_000 },
        )?;
        let load = match env_var("KURA_BENCH_LOAD").as_deref().map(str::trim) {
            None | Some("series") => LoadMode::Series,
            Some("insert") => LoadMode::Insert,
            Some(other) => {
                return Err(
                    format!("KURA_BENCH_LOAD={other:?}: expected `series` or `insert`").into(),
                );
            }
        };
        let load_clients: usize = env_parse("KURA_BENCH_LOAD_CLIENTS", 4)?;
        let series_chunk: i64 = env_parse("KURA_BENCH_SERIES_CHUNK", 1_000_000)?;
        let timeout = Duration::from_secs(env_parse("KURA_BENCH_TIMEOUT", 600)?);
        let ready_timeout = Duration::from_secs(env_parse("KURA_BENCH_READY_TIMEOUT", 600)?);
        if restart_rows.iter().any(|&n| n < 1)
            || checkpoint_rows < 1
            || load_clients < 1
            || series_chunk < 1
        {
            return Err(
                "KURA_BENCH_RESTART_ROWS, _CHECKPOINT_ROWS, _LOAD_CLIENTS and \
                        _SERIES_CHUNK must be at least 1"
                    .into(),
            );
        }

        let mut names: Vec<String> = args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .cloned()
            .collect();
        if let Some(list) = env_var("KURA_BENCH_PARTS") {
            names.extend(list.split(',').map(|s| s.trim().to_owned()));
        }
        names.retain(|n| !n.is_empty());
        for name in &names {
            if !Part::ALL.iter().any(|p| p.name() == name) {
                return Err(
                    format!("unknown part {name:?} (expected restart or checkpoint)").into(),
                );
            }
        }
        let parts = Part::ALL
            .into_iter()
            .filter(|p| names.is_empty() || names.iter().any(|n| n == p.name()))
            .collect();

        Ok(Self {
            quick,
            binary: find_kura_binary()?,
            base_dir: env_var("KURA_BENCH_DIR").map(PathBuf::from),
            user: env_var("KURA_BENCH_USER").unwrap_or_else(|| "admin".into()),
            password: env_var("KURA_BENCH_PASSWORD").unwrap_or_else(|| "admin".into()),
            dbname: env_var("KURA_BENCH_DBNAME").unwrap_or_else(|| "public".into()),
            parts,
            restart_rows,
            checkpoint_rows,
            load,
            load_clients,
            series_chunk,
            timeout,
            ready_timeout,
            keep: env_var("KURA_BENCH_KEEP").is_some_and(|v| v.trim() == "1"),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The server process

/// A `kura serve` child process; killed with SIGKILL (and reaped) when dropped.
struct KuraServer {
    child: Child,
    conninfo: String,
    /// From just before the process was spawned until its `listening on` line was read.
    ready_after: Duration,
}

impl Drop for KuraServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of a text file, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    format!("last lines of {}:\n{}", path.display(), tail.join("\n"))
}

impl KuraServer {
    /// Runs `kura serve --listen 127.0.0.1:0 --data-dir DATA --config CONFIG` and waits for
    /// `listening on`. The server's stdout and stderr are appended to files next to `data`.
    fn start(cfg: &Config, data: &Path, config_file: &Path) -> Result<Self> {
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
        let mut child = Command::new(&cfg.binary)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(config_file)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .context(format!("starting {}", cfg.binary.display()))?;
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
            ready_after: Duration::ZERO,
        };
        match rx.recv_timeout(cfg.ready_timeout) {
            Ok(((host, port), at)) => {
                server.ready_after = at.duration_since(started);
                server.conninfo = format!(
                    "host={host} port={port} user={} password={} dbname={}",
                    cfg.user, cfg.password, cfg.dbname
                );
                Ok(server)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "kura printed no `listening on` line within {:?}\n{}",
                cfg.ready_timeout,
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

    /// SIGKILL: no shutdown checkpoint, no final fsync.
    fn kill(mut self) -> Result<()> {
        self.child.kill().context("killing the server")?;
        self.child.wait().context("reaping the server")?;
        Ok(())
    }
}

/// Total size of the regular files under `dir` (0 if it does not exist).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_size(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `key=value` fields of the last event-log line (in `<data>/log/`) that contains `event`.
fn last_event(data: &Path, event: &str) -> Option<Vec<(String, String)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("log"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("kura-event.log"))
        })
        .collect();
    files.sort();
    let mut found = None;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if let Some(line) = text.lines().rev().find(|l| l.contains(event)) {
            found = Some(line.to_owned());
        }
    }
    let line = found?;
    Some(
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A per-run directory holding `data/`, the config file and the server logs.
struct RunDir {
    root: PathBuf,
    keep: bool,
}

impl RunDir {
    fn new(cfg: &Config, name: &str, config_json: &str) -> Result<Self> {
        let prefix = format!("kura-durbench-{name}-");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        let temp = match &cfg.base_dir {
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
            keep: cfg.keep,
        })
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn config(&self) -> PathBuf {
        self.root.join("kura.json")
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
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
    // The bench kills servers on purpose; a broken connection shows up in the next query.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn exec(cfg: &Config, client: &Client, sql: &str) -> Result<()> {
    let what: String = sql.chars().take(100).collect();
    timed(cfg.timeout, &what, client.batch_execute(sql)).await
}

/// `(count(*), min(id), max(id))` of the bench table.
async fn table_stats(cfg: &Config, client: &Client) -> Result<(i64, i64, i64)> {
    let sql = format!("SELECT count(*), min(id), max(id) FROM {TABLE}");
    let messages = timed(cfg.timeout, &sql, client.simple_query(&sql)).await?;
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .ok_or_else(|| format!("{sql}: returned no row"))?;
    let get = |i: usize| -> Result<i64> {
        let text = row.get(i).unwrap_or("NULL");
        text.parse()
            .context(format!("{sql}: column {i} is {text:?}"))
    };
    Ok((get(0)?, get(1)?, get(2)?))
}

/// Checks that the table holds exactly rows `1..=rows`.
async fn check_rows(cfg: &Config, client: &Client, rows: i64, when: &str) -> Result<()> {
    let (count, min, max) = table_stats(cfg, client).await?;
    if (count, min, max) != (rows, 1, rows) {
        return Err(format!(
            "{when}: {TABLE} holds count={count} min(id)={min} max(id)={max}, \
             expected {rows} rows with ids 1..={rows}"
        )
        .into());
    }
    Ok(())
}

/// `INSERT INTO durbench VALUES (...), ...` for ids `ids`.
fn insert_sql(ids: std::ops::Range<i64>) -> String {
    let mut sql = String::with_capacity(70 * (ids.end - ids.start).max(0) as usize + 64);
    let _ = write!(sql, "INSERT INTO {TABLE} (id, device, ts, value) VALUES ");
    for (k, i) in ids.enumerate() {
        let ts = chrono::DateTime::from_timestamp(BASE_EPOCH + i, 0)
            .expect("bench timestamps are in range")
            .naive_utc();
        let _ = write!(
            sql,
            "{}({i}, {}, TIMESTAMP '{}', {:.1})",
            if k == 0 { "" } else { ", " },
            i % DEVICES,
            ts.format("%Y-%m-%d %H:%M:%S"),
            i as f64 * 0.5
        );
    }
    sql
}

/// Loads rows `1..=total` with 1000-row INSERTs over `cfg.load_clients` connections.
async fn load_inserts(cfg: &Config, conninfo: &str, total: i64) -> Result<()> {
    let next = Arc::new(AtomicI64::new(1));
    let mut handles = Vec::new();
    for _ in 0..cfg.load_clients {
        let client = connect(cfg, conninfo).await?;
        let next = Arc::clone(&next);
        let timeout = cfg.timeout;
        handles.push(tokio::spawn(async move {
            loop {
                let start = next.fetch_add(BATCH_ROWS, Ordering::Relaxed);
                if start > total {
                    return Ok::<(), BoxError>(());
                }
                let end = (start + BATCH_ROWS).min(total + 1);
                let sql = insert_sql(start..end);
                timed(timeout, "1000-row INSERT", client.batch_execute(&sql)).await?;
            }
        }));
    }
    let mut first_error = None;
    for handle in handles {
        let outcome = match handle.await {
            Ok(outcome) => outcome,
            Err(e) => Err(format!("load task failed: {e}").into()),
        };
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Loads rows `1..=total` with `INSERT ... SELECT ... FROM generate_series(lo, hi)` in chunks.
async fn load_series(cfg: &Config, client: &Client, total: i64) -> Result<()> {
    let mut lo = 1;
    while lo <= total {
        let hi = (lo + cfg.series_chunk - 1).min(total);
        let sql = format!(
            "INSERT INTO {TABLE} (id, device, ts, value) \
             SELECT v, CAST(v % {DEVICES} AS integer), \
             CAST(to_timestamp({BASE_EPOCH} + v) AS timestamp), \
             CAST(v * 0.5 AS double precision) \
             FROM generate_series({lo}, {hi}) AS s(v)"
        );
        exec(cfg, client, &sql).await?;
        lo = hi + 1;
    }
    Ok(())
}

/// Creates the table and loads rows `1..=rows`; returns the load time.
async fn create_and_load(cfg: &Config, conninfo: &str, rows: i64, mode: LoadMode) -> Result<f64> {
    let client = connect(cfg, conninfo).await?;
    exec(cfg, &client, &format!("CREATE TABLE {TABLE} ({COLUMNS})")).await?;
    let start = Instant::now();
    match mode {
        LoadMode::Insert => load_inserts(cfg, conninfo, rows).await?,
        LoadMode::Series => load_series(cfg, &client, rows).await?,
    }
    let secs = start.elapsed().as_secs_f64();
    check_rows(cfg, &client, rows, "after the load").await?;
    Ok(secs)
}

/// Connects to a restarted server and checks that every row came back.
async fn check_after_restart(cfg: &Config, conninfo: &str, rows: i64) -> Result<()> {
    let client = connect(cfg, conninfo).await?;
    check_rows(cfg, &client, rows, "after the restart").await
}

// ---------------------------------------------------------------------------------------------
// Formatting

fn per_sec(count: f64, secs: f64) -> String {
    group_digits((count / secs.max(1e-9)).round() as u64)
}

/// A table printed row by row; a failed row counts as a failure.
struct Table {
    widths: Vec<usize>,
    failures: usize,
}

impl Table {
    fn new(headers: &[&str]) -> Self {
        // The first column holds the row labels, up to 20 characters.
        let widths: Vec<usize> = headers
            .iter()
            .enumerate()
            .map(|(k, h)| h.len().max(if k == 0 { 20 } else { 9 }))
            .collect();
        let table = Self {
            widths,
            failures: 0,
        };
        table.print(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>());
        println!(
            "{}",
            table
                .widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("-+-")
        );
        table
    }

    fn print(&self, cells: &[String]) {
        let line = cells
            .iter()
            .zip(&self.widths)
            .enumerate()
            .map(|(k, (cell, w))| {
                if k == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join(" | ");
        println!("{}", line.trim_end());
        let _ = std::io::stdout().flush();
    }

    fn row(&mut self, label: &str, outcome: Result<Vec<String>>) {
        match outcome {
            Ok(mut cells) => {
                cells.insert(0, label.to_owned());
                self.print(&cells);
            }
            Err(e) => {
                self.failures += 1;
                println!("{label}: FAILED: {e}");
                let _ = std::io::stdout().flush();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parts

/// Loads `rows` rows into the log only, kills the server, and times the replaying restart.
fn restart_run(cfg: &Config, rt: &Runtime, rows: i64) -> Result<Vec<String>> {
    let dir = RunDir::new(
        cfg,
        &format!("restart-{rows}"),
        r#"{"checkpoint": {"checkpointInterval": "3600s"}}"#,
    )?;
    let data = dir.data();
    let server = KuraServer::start(cfg, &data, &dir.config())?;
    let load_secs = rt.block_on(create_and_load(
        cfg,
        &server.conninfo,
        rows,
        LoadMode::Insert,
    ))?;
    server.kill()?;

    let log_bytes = dir_size(&data.join("txnlog"));
    let checkpoint_bytes = dir_size(&data.join("checkpoint").join("data"));
    if checkpoint_bytes > 0 {
        return Err(format!(
            "a checkpoint ({checkpoint_bytes} bytes) was written during the load; \
             the restart would not replay the whole log"
        )
        .into());
    }

    let server = KuraServer::start(cfg, &data, &dir.config())?;
    let restart = server.ready_after.as_secs_f64();
    rt.block_on(check_after_restart(cfg, &server.conninfo, rows))?;
    server.kill()?;

    let recovery = last_event(&data, "recovery complete").unwrap_or_default();
    let replayed = field(&recovery, "records_replayed").unwrap_or("?");
    let replay_ms = field(&recovery, "ms").unwrap_or("?");
    Ok(vec![
        group_digits(rows as u64),
        per_sec(rows as f64, load_secs),
        format!("{:.1}", log_bytes as f64 / MB),
        format!("{restart:.2}"),
        format!("{replay_ms} / {replayed}"),
        format!("{:.1}", restart / (log_bytes as f64 / GB)),
        per_sec(rows as f64, restart),
    ])
}

fn restart_part(cfg: &Config, rt: &Runtime) -> usize {
    println!(
        "restart: load with 1000-row INSERTs over {} connections, no checkpoint, SIGKILL, \
         time `kura serve` until `listening on` (whole log replayed)",
        cfg.load_clients
    );
    let mut table = Table::new(&[
        "run",
        "rows",
        "load rows/s",
        "log MB",
        "restart s",
        "replay ms / records",
        "s per GB log",
        "rows/s replayed",
    ]);
    for &rows in &cfg.restart_rows {
        let outcome = restart_run(cfg, rt, rows);
        table.row("whole log replayed", outcome);
    }
    println!();
    table.failures
}

/// Loads `rows` rows, times `CHECKPOINT`, measures it, kills the server and times the restart.
fn checkpoint_run(cfg: &Config, rt: &Runtime, mode: &str) -> Result<Vec<String>> {
    let rows = cfg.checkpoint_rows;
    let dir = RunDir::new(
        cfg,
        &format!("checkpoint-{}", mode.to_lowercase()),
        &format!(
            r#"{{"checkpoint": {{"checkpointInterval": "3600s"}}, "dataStore": {{"storeCompressionMode": "{mode}"}}}}"#
        ),
    )?;
    let data = dir.data();
    let server = KuraServer::start(cfg, &data, &dir.config())?;
    let (load_secs, log_before, checkpoint_secs) = rt.block_on(async {
        let load_secs = create_and_load(cfg, &server.conninfo, rows, cfg.load).await?;
        let log_before = dir_size(&data.join("txnlog"));
        let client = connect(cfg, &server.conninfo).await?;
        let start = Instant::now();
        exec(cfg, &client, "CHECKPOINT").await?;
        let checkpoint_secs = start.elapsed().as_secs_f64();
        Ok::<_, BoxError>((load_secs, log_before, checkpoint_secs))
    })?;
    let checkpoint_bytes = dir_size(&data.join("checkpoint").join("data"));
    let log_after = dir_size(&data.join("txnlog"));
    server.kill()?;

    let server = KuraServer::start(cfg, &data, &dir.config())?;
    let restart = server.ready_after.as_secs_f64();
    rt.block_on(check_after_restart(cfg, &server.conninfo, rows))?;
    server.kill()?;

    let recovery = last_event(&data, "recovery complete").unwrap_or_default();
    let replayed = field(&recovery, "records_replayed").unwrap_or("?");
    let replay_ms = field(&recovery, "ms").unwrap_or("?");
    Ok(vec![
        group_digits(rows as u64),
        per_sec(rows as f64, load_secs),
        format!("{:.1}", log_before as f64 / MB),
        format!("{checkpoint_secs:.2}"),
        format!("{:.1}", checkpoint_bytes as f64 / MB),
        format!("{:.1}", checkpoint_bytes as f64 / rows as f64),
        format!("{:.1}", log_after as f64 / MB),
        format!("{restart:.2}"),
        format!("{replay_ms} / {replayed}"),
    ])
}

fn checkpoint_part(cfg: &Config, rt: &Runtime) -> usize {
    println!(
        "checkpoint: load ({}), time SQL CHECKPOINT, size of <data>/checkpoint/data/, SIGKILL, \
         time `kura serve` until `listening on` (loads the checkpoint)",
        match cfg.load {
            LoadMode::Series => format!(
                "INSERT ... SELECT FROM generate_series, {} rows per statement",
                group_digits(cfg.series_chunk as u64)
            ),
            LoadMode::Insert => format!("1000-row INSERTs over {} connections", cfg.load_clients),
        }
    );
    let mut table = Table::new(&[
        "storeCompressionMode",
        "rows",
        "load rows/s",
        "log MB",
        "CHECKPOINT s",
        "data MB",
        "bytes/row",
        "log after MB",
        "restart s",
        "replay ms / records",
    ]);
    for mode in ["NO_COMPRESSION", "COMPRESSION_ZSTD"] {
        let outcome = checkpoint_run(cfg, rt, mode);
        table.row(mode, outcome);
    }
    println!();
    table.failures
}

fn main() -> ExitCode {
    let cfg = match Config::load() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("durability bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("durability bench: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Kura durability benchmark{}",
        if cfg.quick {
            " (quick smoke run: no --bench flag)"
        } else {
            ""
        }
    );
    println!("binary:   {}", cfg.binary.display());
    println!(
        "machine:  {} CPUs, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z")
    );
    println!(
        "config:   restart_rows={} checkpoint_rows={} load_clients={} series_chunk={} \
         (1 MB = 10^6 bytes, 1 GB = 10^9 bytes; restart s = spawn until `listening on`; \
         replay ms = the server's own `recovery complete` time)",
        cfg.restart_rows
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(","),
        cfg.checkpoint_rows,
        cfg.load_clients,
        cfg.series_chunk
    );
    println!();

    let mut failures = 0;
    for part in &cfg.parts {
        failures += match part {
            Part::Restart => restart_part(&cfg, &rt),
            Part::Checkpoint => checkpoint_part(&cfg, &rt),
        };
    }
    drop(rt);
    if failures > 0 {
        eprintln!("durability bench: {failures} run(s) failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
