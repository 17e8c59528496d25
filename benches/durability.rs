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
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use tokio::runtime::Runtime;
use tokio_postgres::{Client, SimpleQueryMessage};

mod support;
use support::report::{Table, per_sec};
use support::server::{KuraServer, RunDir, ServerSettings, connect, exec};
use support::{BoxError, Context, Result, env_parse, env_var, group_digits, timed};

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
    server: ServerSettings,
    parts: Vec<Part>,
    restart_rows: Vec<i64>,
    checkpoint_rows: i64,
    load: LoadMode,
    load_clients: usize,
    series_chunk: i64,
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
            server: ServerSettings::from_env("admin", "admin")?,
            parts,
            restart_rows,
            checkpoint_rows,
            load,
            load_clients,
            series_chunk,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The data directory and the event log

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
            p.file_name().is_some_and(|n| {
                let name = n.to_string_lossy();
                name.starts_with("kura-") && name.ends_with(".log")
            })
        })
        .collect();
    // Oldest first: names sort wrongly from the tenth file of a day on.
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
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

// ---------------------------------------------------------------------------------------------
// Client helpers

/// `(count(*), min(id), max(id))` of the bench table.
async fn table_stats(cfg: &Config, client: &Client) -> Result<(i64, i64, i64)> {
    let sql = format!("SELECT count(*), min(id), max(id) FROM {TABLE}");
    let messages = timed(cfg.server.timeout, &sql, client.simple_query(&sql)).await?;
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
        let client = connect(conninfo, cfg.server.timeout).await?;
        let next = Arc::clone(&next);
        let timeout = cfg.server.timeout;
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
    support::join_all(handles).await.map(|_| ())
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
        exec(client, &sql, cfg.server.timeout).await?;
        lo = hi + 1;
    }
    Ok(())
}

/// Creates the table and loads rows `1..=rows`; returns the load time.
async fn create_and_load(cfg: &Config, conninfo: &str, rows: i64, mode: LoadMode) -> Result<f64> {
    let client = connect(conninfo, cfg.server.timeout).await?;
    exec(
        &client,
        &format!("CREATE TABLE {TABLE} ({COLUMNS})"),
        cfg.server.timeout,
    )
    .await?;
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
    let client = connect(conninfo, cfg.server.timeout).await?;
    check_rows(cfg, &client, rows, "after the restart").await
}

// ---------------------------------------------------------------------------------------------
// Parts

/// Loads `rows` rows into the log only, kills the server, and times the replaying restart.
fn restart_run(cfg: &Config, rt: &Runtime, rows: i64) -> Result<Vec<String>> {
    let dir = RunDir::new(
        &cfg.server,
        &format!("durbench-restart-{rows}"),
        r#"{"checkpoint": {"checkpointInterval": "3600s"}}"#,
    )?;
    let data = dir.data();
    let server = KuraServer::start(&cfg.server, &data, &dir.config(), &[])?;
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

    let server = KuraServer::start(&cfg.server, &data, &dir.config(), &[])?;
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
        &cfg.server,
        &format!("durbench-checkpoint-{}", mode.to_lowercase()),
        &format!(
            r#"{{"checkpoint": {{"checkpointInterval": "3600s"}}, "dataStore": {{"storeCompressionMode": "{mode}"}}}}"#
        ),
    )?;
    let data = dir.data();
    let server = KuraServer::start(&cfg.server, &data, &dir.config(), &[])?;
    let (load_secs, log_before, checkpoint_secs) = rt.block_on(async {
        let load_secs = create_and_load(cfg, &server.conninfo, rows, cfg.load).await?;
        let log_before = dir_size(&data.join("txnlog"));
        let client = connect(&server.conninfo, cfg.server.timeout).await?;
        let start = Instant::now();
        exec(&client, "CHECKPOINT", cfg.server.timeout).await?;
        let checkpoint_secs = start.elapsed().as_secs_f64();
        Ok::<_, BoxError>((load_secs, log_before, checkpoint_secs))
    })?;
    let checkpoint_bytes = dir_size(&data.join("checkpoint").join("data"));
    let log_after = dir_size(&data.join("txnlog"));
    server.kill()?;

    let server = KuraServer::start(&cfg.server, &data, &dir.config(), &[])?;
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
    let rt = match support::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("durability bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    support::report::print_heading(
        "Kura durability benchmark",
        cfg.quick,
        &cfg.server.binary,
        "",
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
