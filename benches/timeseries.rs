//! Time-series workload of a Kura server (issue 4): ingest into an interval-hash partitioned
//! table, a time-range aggregate with partition pruning against an unpartitioned table, and
//! the resident memory before and after a mass expiry.
//!
//! `cargo bench --bench timeseries` (a `harness = false` bench) spawns `kura serve --test-clock`
//! on a throw-away data directory and runs three parts in order (later parts use the data of
//! the first):
//!
//! | part (`KURA_BENCH_PARTS` name) | what is measured |
//! |---|---|
//! | `ingest` (always runs) | `KURA_BENCH_ROWS` rows into `ts_ih` with multi-row `INSERT`s of `KURA_BENCH_BATCH_ROWS` rows over `KURA_BENCH_CLIENTS` connections: rows/s and statement latencies. `COPY` does not exist in Kura yet, so multi-row `INSERT` is the fastest load path |
//! | `query` | loads `ts_flat` (same columns and key, no partitioning) with the same rows, then times `SELECT device, avg(value), count(*) ... GROUP BY device` over one hour (1% of the 100 intervals), over an hour with no rows (the statement's fixed cost) and over the whole table on both tables: median, min and max of `KURA_BENCH_RUNS` runs after one warm-up, the speed-up ratio, and `data_partitions=read/total` parsed from `EXPLAIN` (proof of pruning) |
//! | `expiry` | drops `ts_flat`, reads the server's `VmRSS`, moves the server clock past the expiry of every partition (`SET kura.test_clock = '2100-02-01 00:00:00'`), polls `"#table_partitions"` until the reaper has released all of `ts_ih`'s partitions, and reads `VmRSS` again: at once, `KURA_BENCH_SETTLE` seconds later, and once it stops falling (under 1% change in a second, at most 60 s) |
//!
//! Tables: `ts_ih (ts TIMESTAMP NOT NULL, device STRING NOT NULL, value DOUBLE, PRIMARY KEY
//! (ts, device))` with `expiration_type='PARTITION', expiration_time=1, expiration_time_unit=
//! 'DAY'`, `PARTITION BY RANGE (ts) EVERY (1, HOUR) SUBPARTITION BY HASH (device)
//! SUBPARTITIONS 4`, and `ts_flat` with the same columns and key. Row `i` is device
//! `dev-{i % 100}` at `2100-01-01 00:00:00 + (i / 100) * step` with value `(i % 1000) * 0.25`,
//! where `step` spreads the rows over 100 hours (3.6 s for 10 million rows): 100 hourly
//! intervals, 400 data partitions. The data lies in the future, so nothing expires before the
//! bench moves the clock.
//!
//! The server gets a configuration file (`--config`): by default `{"dataStore":
//! {"logWriteMode": 1}, "checkpoint": {"checkpointInterval": "3600s"}}` (DELAYED_SYNC, the
//! default, and no periodic checkpoint during the measurement); `KURA_BENCH_CONFIG` names
//! another JSON file to use instead.
//!
//! Results are checked, never timings: every INSERT must report all its rows, `count(*)` and the
//! sum of `"#table_partitions".num_rows` must equal the rows inserted, both tables must hold the
//! same rows, every aggregate must return the per-device counts and averages the generator
//! implies, `count(*)` must be 0 right after the clock moved and after the release. A failed
//! check prints `FAILED` and the bench exits non-zero. Every loop is bounded by a count or a
//! deadline and every statement by `KURA_BENCH_TIMEOUT`.
//!
//! Settings (environment variables; defaults in brackets, quick-mode defaults after `/`):
//!
//! - `KURA_BENCH_ROWS`: rows to ingest [10000000 / 50000]
//! - `KURA_BENCH_CLIENTS`: parallel connections for the ingest [4]
//! - `KURA_BENCH_BATCH_ROWS`: rows per multi-row INSERT [1000]
//! - `KURA_BENCH_RUNS`: timed runs per query, after one warm-up [5]
//! - `KURA_BENCH_FLAT_LOAD`: how `ts_flat` is loaded: `select` (`INSERT INTO ts_flat SELECT *
//!   FROM ts_ih WHERE ts ...` in 10 chunks of 10 hours) or `insert` (the same multi-row INSERTs
//!   as `ts_ih`, which also gives the ingest rate of an unpartitioned table) [select]
//! - `KURA_BENCH_PARTS`: comma-separated subset of `ingest,query,expiry` [all]
//! - `KURA_BENCH_CONFIG`: JSON configuration file for the server [built in, see above]
//! - `KURA_BENCH_EXPIRY_TIMEOUT`: how long the reaper may take to release everything,
//!   seconds [300]
//! - `KURA_BENCH_SETTLE`: seconds to wait before the second memory reading after a drop or a
//!   release [2]
//! - `KURA_BENCH_TIMEOUT`: time limit of one statement, seconds [600]
//! - `KURA_BENCH_READY_TIMEOUT`: time the start may take until `listening on`, seconds [600]
//! - `KURA_BENCH_BIN`: the `kura` binary [built binary of this package, else
//!   `target/release/kura`, else `target/debug/kura`]
//! - `KURA_BENCH_DIR`: where the run directory (data, config, server logs) is made [system
//!   temp dir]
//! - `KURA_BENCH_USER` / `KURA_BENCH_PASSWORD` / `KURA_BENCH_DBNAME`: login [`kura` / none /
//!   `public`]
//! - `KURA_BENCH_KEEP`: `1` keeps the run directory (it is always kept after a failure) [0]
//!
//! Positional arguments (`cargo bench --bench timeseries -- expiry`) also select parts.
//! Without the `--bench` flag that `cargo bench` passes (e.g. under `cargo test --benches`) the
//! run is a quick smoke run with 50 000 rows.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};

mod support;
use support::report::{Table, median, megabytes, per_sec, quantile};
use support::server::{
    KuraServer, RunDir, ServerSettings, abbreviate, connect, exec, log_tail, proc_status_bytes,
    query_i64, query_rows,
};
use support::{BoxError, Context, Result, env_parse, env_var, group_digits, timed};

/// Distinct `device` values.
const DEVICES: i64 = 100;
/// Hours the rows are spread over (one interval each).
const HOURS: i64 = 100;
const HOUR_MS: i64 = 3_600_000;
/// Hash buckets per interval.
const SUBPARTITIONS: i64 = 4;
/// 2100-01-01 00:00:00 UTC in milliseconds, the timestamp of row 0.
const BASE_MS: i64 = 4_102_444_800_000;
/// A clock value after the expiry of every interval of the data (the last one, ending at
/// 2100-01-05 04:00, expires a day later).
const EXPIRY_CLOCK: &str = "2100-02-01 00:00:00";
/// Chunks of `INSERT INTO ts_flat SELECT ...` (10 hours each).
const FLAT_CHUNKS: i64 = 10;
/// How often `"#table_partitions"` is polled while waiting for the reaper.
const POLL: Duration = Duration::from_millis(50);
const PARTITIONED: &str = "ts_ih";
const FLAT: &str = "ts_flat";
const COLUMNS: &str =
    "ts TIMESTAMP NOT NULL, device STRING NOT NULL, value DOUBLE, PRIMARY KEY (ts, device)";
const PARTITIONING: &str = "WITH (expiration_type='PARTITION', expiration_time=1, \
     expiration_time_unit='DAY') PARTITION BY RANGE (ts) EVERY (1, HOUR) \
     SUBPARTITION BY HASH (device) SUBPARTITIONS 4";
/// The server configuration unless `KURA_BENCH_CONFIG` names another: DELAYED_SYNC (the
/// default) and no periodic checkpoint while the bench runs.
const DEFAULT_SERVER_CONFIG: &str =
    r#"{"dataStore": {"logWriteMode": 1}, "checkpoint": {"checkpointInterval": "3600s"}}"#;

// ---------------------------------------------------------------------------------------------
// Configuration

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlatLoad {
    Select,
    Insert,
}

#[derive(Debug)]
struct Config {
    quick: bool,
    server: ServerSettings,
    rows: i64,
    clients: usize,
    batch_rows: i64,
    runs: usize,
    flat_load: FlatLoad,
    query: bool,
    expiry: bool,
    /// Where the server configuration came from, and its text.
    server_config: (String, String),
    expiry_timeout: Duration,
    settle: Duration,
}

impl Config {
    fn load() -> Result<Self> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = !args.iter().any(|a| a == "--bench");

        let rows: i64 = env_parse("KURA_BENCH_ROWS", if quick { 50_000 } else { 10_000_000 })?;
        let clients: usize = env_parse("KURA_BENCH_CLIENTS", 4)?;
        let batch_rows: i64 = env_parse("KURA_BENCH_BATCH_ROWS", 1000)?;
        let runs: usize = env_parse("KURA_BENCH_RUNS", 5)?;
        if rows < 1 || clients < 1 || batch_rows < 1 || runs < 1 {
            return Err(
                "KURA_BENCH_ROWS, _CLIENTS, _BATCH_ROWS and _RUNS must be at least 1".into(),
            );
        }
        let flat_load = match env_var("KURA_BENCH_FLAT_LOAD").as_deref().map(str::trim) {
            None | Some("select") => FlatLoad::Select,
            Some("insert") => FlatLoad::Insert,
            Some(other) => {
                return Err(format!(
                    "KURA_BENCH_FLAT_LOAD={other:?}: expected `select` or `insert`"
                )
                .into());
            }
        };

        let mut names: Vec<String> = args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .cloned()
            .collect();
        if let Some(list) = env_var("KURA_BENCH_PARTS") {
            names.extend(list.split(',').map(|s| s.trim().to_owned()));
        }
        names.retain(|n| !n.is_empty());
        if let Some(bad) = names
            .iter()
            .find(|n| !["ingest", "query", "expiry"].contains(&n.as_str()))
        {
            return Err(format!("unknown part {bad:?} (expected ingest, query or expiry)").into());
        }
        let selected = |part: &str| names.is_empty() || names.iter().any(|n| n == part);

        let server_config = match env_var("KURA_BENCH_CONFIG") {
            None => ("built in".to_owned(), DEFAULT_SERVER_CONFIG.to_owned()),
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .context(format!("KURA_BENCH_CONFIG={path:?}"))?;
                (path, text)
            }
        };

        Ok(Self {
            quick,
            server: ServerSettings::from_env("kura", "")?,
            rows,
            clients,
            batch_rows,
            runs,
            flat_load,
            query: selected("query"),
            expiry: selected("expiry"),
            server_config,
            expiry_timeout: Duration::from_secs(env_parse("KURA_BENCH_EXPIRY_TIMEOUT", 300)?),
            settle: Duration::from_secs(env_parse("KURA_BENCH_SETTLE", 2)?),
        })
    }

    fn timeout(&self) -> Duration {
        self.server.timeout
    }
}

// ---------------------------------------------------------------------------------------------
// The generated rows

/// Where row `i` lies: device `i % 100` at `BASE_MS + (i / 100) * step_ms`.
#[derive(Clone, Copy, Debug)]
struct Layout {
    rows: i64,
    step_ms: i64,
}

impl Layout {
    fn new(rows: i64) -> Self {
        let stamps = (rows + DEVICES - 1) / DEVICES;
        Self {
            rows,
            step_ms: (HOURS * HOUR_MS / stamps.max(1)).max(1),
        }
    }

    fn stamps(&self) -> i64 {
        (self.rows + DEVICES - 1) / DEVICES
    }

    fn ts_ms(&self, i: i64) -> i64 {
        BASE_MS + (i / DEVICES) * self.step_ms
    }

    fn value(i: i64) -> f64 {
        (i % 1000) as f64 * 0.25
    }

    /// How many hourly intervals hold data.
    fn intervals(&self) -> i64 {
        if self.step_ms <= HOUR_MS {
            (self.ts_ms(self.rows - 1) - BASE_MS) / HOUR_MS + 1
        } else {
            self.stamps()
        }
    }

    /// The start of the hour holding the middle row: the hour the range query reads.
    fn query_hour_ms(&self) -> i64 {
        let ts = self.ts_ms(self.rows / 2);
        BASE_MS + (ts - BASE_MS) / HOUR_MS * HOUR_MS
    }

    /// Per device, `(count, sum of value)` of the rows with `lo_ms <= ts < hi_ms`.
    fn expected(&self, lo_ms: i64, hi_ms: i64) -> Vec<(i64, f64)> {
        let mut groups = vec![(0i64, 0.0f64); DEVICES as usize];
        let first = if lo_ms <= BASE_MS {
            0
        } else {
            (lo_ms - BASE_MS + self.step_ms - 1) / self.step_ms
        };
        for k in first..self.stamps() {
            let ts = BASE_MS + k * self.step_ms;
            if ts >= hi_ms {
                break;
            }
            for d in 0..DEVICES {
                let i = k * DEVICES + d;
                if i >= self.rows {
                    break;
                }
                let group = &mut groups[d as usize];
                group.0 += 1;
                group.1 += Self::value(i);
            }
        }
        groups
    }
}

fn ts_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("bench timestamps are in range")
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
}

/// `INSERT INTO table (ts, device, value) VALUES (...), ...` for rows `rows`.
fn insert_sql(table: &str, layout: &Layout, rows: std::ops::Range<i64>) -> String {
    let mut sql = String::with_capacity(60 * (rows.end - rows.start).max(0) as usize + 64);
    let _ = write!(sql, "INSERT INTO {table} (ts, device, value) VALUES ");
    for (k, i) in rows.enumerate() {
        let _ = write!(
            sql,
            "{}(TIMESTAMP '{}', 'dev-{:03}', {:.2})",
            if k == 0 { "" } else { ", " },
            ts_text(layout.ts_ms(i)),
            i % DEVICES,
            Layout::value(i)
        );
    }
    sql
}

// ---------------------------------------------------------------------------------------------
// Client helpers

/// Runs one statement and returns the row count of its command tag (`INSERT 0 n` gives `n`).
async fn exec_count(client: &Client, sql: &str, timeout: Duration) -> Result<u64> {
    let messages = timed(timeout, &abbreviate(sql), client.simple_query(sql)).await?;
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .ok_or_else(|| format!("{}: no command tag", abbreviate(sql)).into())
}

/// Checks a `device, avg(value), count(*)` result against the generator; returns the rows
/// counted.
fn check_groups(result: &[Vec<String>], expected: &[(i64, f64)]) -> Result<i64> {
    let want_groups = expected.iter().filter(|(count, _)| *count > 0).count();
    if result.len() != want_groups {
        return Err(format!("{} groups returned, expected {want_groups}", result.len()).into());
    }
    let mut total = 0;
    for row in result {
        let [device, avg, count] = row.as_slice() else {
            return Err(format!("expected 3 columns, got {row:?}").into());
        };
        let d = device
            .strip_prefix("dev-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&d| d < expected.len())
            .ok_or_else(|| format!("unexpected device {device:?}"))?;
        let (want_count, want_sum) = expected[d];
        let count: i64 = count.parse().context(format!("count {count:?}"))?;
        let avg: f64 = avg.parse().context(format!("avg {avg:?}"))?;
        let want_avg = want_sum / want_count.max(1) as f64;
        if count != want_count || (avg - want_avg).abs() > 1e-9 * want_avg.abs().max(1.0) {
            return Err(format!(
                "{device}: count {count}, avg {avg}; expected count {want_count}, avg {want_avg}"
            )
            .into());
        }
        total += count;
    }
    Ok(total)
}

/// `(access, read, total)` from the `KuraScanExec` line of `table` in an `EXPLAIN` result.
fn scan_of_plan(plan: &[Vec<String>], table: &str) -> Result<(String, u64, u64)> {
    let needle = format!("KuraScanExec: table={table},");
    let line = plan
        .iter()
        .flatten()
        .flat_map(|cell| cell.lines())
        .find(|l| l.contains(&needle))
        .ok_or_else(|| format!("no `{needle}` in the EXPLAIN output"))?;
    let after = |key: &str| -> Result<&str> {
        let start = line
            .find(key)
            .ok_or_else(|| format!("no `{key}` in {line:?}"))?
            + key.len();
        Ok(&line[start..])
    };
    let access = after("access=")?;
    let access = access.split(", data_partitions=").next().unwrap_or(access);
    let counts = after("data_partitions=")?;
    let counts: String = counts
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '/')
        .collect();
    let (read, total) = counts
        .split_once('/')
        .ok_or_else(|| format!("cannot read data_partitions in {line:?}"))?;
    Ok((
        access.trim().to_owned(),
        read.parse()
            .context(format!("data_partitions in {line:?}"))?,
        total
            .parse()
            .context(format!("data_partitions in {line:?}"))?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Part 1: ingest

struct LoadStats {
    secs: f64,
    statements: usize,
    /// Seconds per statement.
    latencies: Vec<f64>,
}

/// Loads all rows into `table` with multi-row INSERTs over `cfg.clients` connections (opened
/// before the clock starts); checks that every INSERT reports all its rows.
async fn load_inserts(
    cfg: &Config,
    conninfo: &str,
    table: &str,
    layout: Layout,
) -> Result<LoadStats> {
    let mut clients = Vec::with_capacity(cfg.clients);
    for _ in 0..cfg.clients {
        clients.push(connect(conninfo, cfg.timeout()).await?);
    }
    let next = Arc::new(AtomicI64::new(0));
    let abort = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(cfg.clients);
    for client in clients {
        let (next, abort) = (Arc::clone(&next), Arc::clone(&abort));
        let (table, timeout, batch, total) =
            (table.to_owned(), cfg.timeout(), cfg.batch_rows, cfg.rows);
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            // Bounded: each pass takes a new batch, and there are total / batch of them.
            while !abort.load(Ordering::Relaxed) {
                let lo = next.fetch_add(batch, Ordering::Relaxed);
                if lo >= total {
                    break;
                }
                let hi = (lo + batch).min(total);
                let sql = insert_sql(&table, &layout, lo..hi);
                let sent = Instant::now();
                let outcome = exec_count(&client, &sql, timeout).await.and_then(|n| {
                    if n == (hi - lo) as u64 {
                        Ok(())
                    } else {
                        Err(format!("INSERT of rows {lo}..{hi} reported {n} rows").into())
                    }
                });
                if let Err(e) = outcome {
                    abort.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                latencies.push(sent.elapsed().as_secs_f64());
            }
            Ok::<_, BoxError>(latencies)
        }));
    }
    let joined = support::join_all(handles).await;
    let secs = start.elapsed().as_secs_f64();
    let latencies: Vec<f64> = joined?.into_iter().flatten().collect();
    Ok(LoadStats {
        secs,
        statements: latencies.len(),
        latencies,
    })
}

/// Loads `ts_flat` from `ts_ih` with `INSERT ... SELECT` in hour ranges.
async fn load_flat_select(cfg: &Config, client: &Client, layout: Layout) -> Result<LoadStats> {
    let mut latencies = Vec::new();
    let mut copied = 0;
    let start = Instant::now();
    let hours = HOURS / FLAT_CHUNKS;
    for chunk in 0..FLAT_CHUNKS {
        let lo = BASE_MS + chunk * hours * HOUR_MS;
        // The last chunk has no upper bound, so no row can be missed.
        let upper = if chunk + 1 == FLAT_CHUNKS {
            String::new()
        } else {
            format!(" AND ts < TIMESTAMP '{}'", ts_text(lo + hours * HOUR_MS))
        };
        let sql = format!(
            "INSERT INTO {FLAT} (ts, device, value) SELECT ts, device, value FROM {PARTITIONED} \
             WHERE ts >= TIMESTAMP '{}'{upper}",
            ts_text(lo)
        );
        let sent = Instant::now();
        copied += exec_count(client, &sql, cfg.timeout()).await?;
        latencies.push(sent.elapsed().as_secs_f64());
    }
    let secs = start.elapsed().as_secs_f64();
    if copied != layout.rows as u64 {
        return Err(format!(
            "INSERT ... SELECT copied {copied} rows, expected {}",
            layout.rows
        )
        .into());
    }
    Ok(LoadStats {
        secs,
        statements: latencies.len(),
        latencies,
    })
}

fn load_cells(rows: i64, clients: usize, stats: &LoadStats) -> Vec<String> {
    let ms = |q: f64| format!("{:.1}", quantile(&stats.latencies, q) * 1e3);
    vec![
        group_digits(rows as u64),
        group_digits(stats.statements as u64),
        clients.to_string(),
        format!("{:.2}", stats.secs),
        per_sec(rows as f64, stats.secs),
        ms(0.5),
        ms(0.99),
        ms(1.0),
    ]
}

/// After the load of `ts_ih`: `count(*)` and `"#table_partitions"` against the generator.
async fn check_partitioned(cfg: &Config, client: &Client, layout: Layout) -> Result<String> {
    let count = query_i64(
        client,
        &format!("SELECT count(*) FROM {PARTITIONED}"),
        cfg.timeout(),
    )
    .await?;
    let partitions = query_rows(
        client,
        &format!(
            "SELECT partition_boundary_value, num_rows FROM \"#table_partitions\" \
             WHERE table_name = '{PARTITIONED}'"
        ),
        cfg.timeout(),
    )
    .await?;
    let mut intervals: Vec<&str> = partitions.iter().map(|r| r[0].as_str()).collect();
    intervals.sort_unstable();
    intervals.dedup();
    let mut num_rows = 0i64;
    for row in &partitions {
        num_rows += row[1]
            .parse::<i64>()
            .context(format!("num_rows {:?}", row[1]))?;
    }
    let want_intervals = layout.intervals() as usize;
    if count != layout.rows
        || num_rows != layout.rows
        || intervals.len() != want_intervals
        || partitions.len() > want_intervals * SUBPARTITIONS as usize
    {
        return Err(format!(
            "{PARTITIONED}: count(*) {count}, sum(num_rows) {num_rows} in {} data partitions of \
             {} intervals; expected {} rows in {want_intervals} intervals (at most {} partitions)",
            partitions.len(),
            intervals.len(),
            layout.rows,
            want_intervals * SUBPARTITIONS as usize
        )
        .into());
    }
    Ok(format!(
        "{PARTITIONED}: count(*) = sum(\"#table_partitions\".num_rows) = {} rows inserted, \
         {} data partitions in {} hourly intervals",
        group_digits(count as u64),
        partitions.len(),
        intervals.len()
    ))
}

// ---------------------------------------------------------------------------------------------
// Part 2: queries

struct QueryStats {
    access: String,
    read: u64,
    total: u64,
    rows: i64,
    groups: usize,
    /// Seconds per timed run.
    times: Vec<f64>,
}

/// `EXPLAIN`, one warm-up run, then `cfg.runs` timed runs, every result checked.
async fn time_query(
    cfg: &Config,
    client: &Client,
    table: &str,
    sql: &str,
    expected: &[(i64, f64)],
) -> Result<QueryStats> {
    let plan = query_rows(client, &format!("EXPLAIN {sql}"), cfg.timeout()).await?;
    let (access, read, total) = scan_of_plan(&plan, table)?;
    let warm = query_rows(client, sql, cfg.timeout()).await?;
    let rows = check_groups(&warm, expected).context("warm-up run")?;
    let mut times = Vec::with_capacity(cfg.runs);
    for run in 0..cfg.runs {
        let start = Instant::now();
        let result = query_rows(client, sql, cfg.timeout()).await?;
        times.push(start.elapsed().as_secs_f64());
        check_groups(&result, expected).context(format!("run {}", run + 1))?;
    }
    Ok(QueryStats {
        access,
        read,
        total,
        rows,
        groups: warm.len(),
        times,
    })
}

fn query_cells(stats: &QueryStats) -> Vec<String> {
    let min = stats.times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = stats.times.iter().copied().fold(0.0, f64::max);
    vec![
        format!("{}/{}", stats.read, stats.total),
        stats.access.clone(),
        group_digits(stats.rows as u64),
        stats.groups.to_string(),
        format!("{:.4}", median(&stats.times)),
        format!("{min:.4}"),
        format!("{max:.4}"),
    ]
}

/// ` WHERE ts >= lo AND ts < hi` (milliseconds since the epoch).
fn range_filter(lo: i64, hi: i64) -> String {
    format!(
        " WHERE ts >= TIMESTAMP '{}' AND ts < TIMESTAMP '{}'",
        ts_text(lo),
        ts_text(hi)
    )
}

/// What [`compare_query`] found: failed rows, and the median seconds on `ts_ih` if it ran.
struct Compared {
    failures: usize,
    partitioned_median: Option<f64>,
}

/// Times one aggregate on both tables.
async fn compare_query(
    cfg: &Config,
    client: &Client,
    label: &str,
    filter: &str,
    expected: &[(i64, f64)],
) -> Compared {
    let mut table = Table::with_widths(
        &[
            label,
            "data_partitions",
            "access",
            "rows",
            "groups",
            "median s",
            "min s",
            "max s",
        ],
        &[24, 15, 30],
    );
    let mut medians = Vec::new();
    for name in [PARTITIONED, FLAT] {
        let sql = format!(
            "SELECT device, avg(value), count(*) FROM {name}{filter} GROUP BY device ORDER BY device"
        );
        let outcome = time_query(cfg, client, name, &sql, expected).await;
        if let Ok(stats) = &outcome {
            medians.push((name, stats.read, stats.total, median(&stats.times)));
        }
        table.row(name, outcome.map(|stats| query_cells(&stats)));
    }
    let partitioned_median = medians
        .iter()
        .find(|(name, ..)| *name == PARTITIONED)
        .map(|m| m.3);
    if let [(_, read, total, partitioned), (_, _, _, flat)] = medians[..] {
        println!(
            "  speed-up {FLAT} / {PARTITIONED} (medians): {:.2}x; {PARTITIONED} read {read} of \
             {total} data partitions",
            flat / partitioned.max(1e-9)
        );
        if !filter.is_empty() && read >= total && total > 1 {
            println!("  WARNING: no partition pruning in the plan of {PARTITIONED}");
        }
    }
    println!();
    Compared {
        failures: table.failures,
        partitioned_median,
    }
}

// ---------------------------------------------------------------------------------------------
// Part 3: memory and expiry

/// `VmRSS` and `VmHWM` of the server at named moments.
struct Memory {
    pid: u32,
    readings: Vec<(String, Option<u64>, Option<u64>, String)>,
}

impl Memory {
    fn read(&mut self, moment: &str, note: String) {
        self.readings.push((
            moment.to_owned(),
            proc_status_bytes(self.pid, "VmRSS"),
            proc_status_bytes(self.pid, "VmHWM"),
            note,
        ));
    }

    /// Waits until `VmRSS` stops falling (less than 1% change over one second, at most 60 s
    /// after `since`); returns the time since `since`.
    async fn settle(&self, since: Instant) -> Duration {
        let rss = || proc_status_bytes(self.pid, "VmRSS").unwrap_or(0);
        let mut last = rss();
        while since.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = rss();
            if now.abs_diff(last) * 100 <= last {
                break;
            }
            last = now;
        }
        since.elapsed()
    }

    fn print(&self) {
        let mut table =
            Table::with_widths(&["server memory", "VmRSS MB", "VmHWM MB", "note"], &[24]);
        let mb = |b: Option<u64>| b.map_or_else(|| "n/a".to_owned(), megabytes);
        for (moment, rss, hwm, note) in &self.readings {
            table.row(moment, Ok(vec![mb(*rss), mb(*hwm), note.clone()]));
        }
        println!();
    }
}

/// Moves the clock past every expiry and waits until the reaper released all partitions of
/// `ts_ih`; returns a description of what was seen.
async fn expire_all(cfg: &Config, client: &Client, partitions_before: i64) -> Result<String> {
    let count_partitions =
        format!("SELECT count(*) FROM \"#table_partitions\" WHERE table_name = '{PARTITIONED}'");
    let count_rows = format!("SELECT count(*) FROM {PARTITIONED}");
    let start = Instant::now();
    exec(
        client,
        &format!("SET kura.test_clock = '{EXPIRY_CLOCK}'"),
        cfg.timeout(),
    )
    .await?;
    let visible = query_i64(client, &count_rows, cfg.timeout()).await?;
    if visible != 0 {
        return Err(format!(
            "count(*) of {PARTITIONED} is {visible} right after the clock moved past every \
             expiry, expected 0"
        )
        .into());
    }
    // Bounded by the deadline; each pass is one metatable query and a short sleep.
    let deadline = start + cfg.expiry_timeout;
    let mut seen = vec![partitions_before];
    let mut first_release = None;
    loop {
        let left = query_i64(client, &count_partitions, cfg.timeout()).await?;
        if left != *seen.last().unwrap_or(&-1) {
            seen.push(left);
            first_release.get_or_insert_with(|| start.elapsed());
        }
        if left == 0 {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{left} partitions of {PARTITIONED} still there {:?} after the clock moved",
                cfg.expiry_timeout
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
    let all = start.elapsed();
    let rows_after = query_i64(client, &count_rows, cfg.timeout()).await?;
    if rows_after != 0 {
        return Err(format!("count(*) of {PARTITIONED} is {rows_after} after the release").into());
    }
    Ok(format!(
        "SET kura.test_clock = '{EXPIRY_CLOCK}': count(*) 0 at once; first partitions released \
         after {:.2} s, all after {:.2} s (partitions left as polled every {} ms: {})",
        first_release.unwrap_or(all).as_secs_f64(),
        all.as_secs_f64(),
        POLL.as_millis(),
        seen.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" -> ")
    ))
}

// ---------------------------------------------------------------------------------------------
// The run

/// Prints `what: ok (detail)` or `what: FAILED: error`; returns the failures (0 or 1).
fn report_check(what: &str, outcome: Result<String>) -> usize {
    match outcome {
        Ok(detail) => {
            println!("check {what}: ok ({detail})");
            0
        }
        Err(e) => {
            println!("check {what}: FAILED: {e}");
            1
        }
    }
}

/// Runs the parts against the started server; returns the number of failures.
async fn run(cfg: &Config, server: &KuraServer) -> Result<usize> {
    let layout = Layout::new(cfg.rows);
    let client = connect(&server.conninfo, cfg.timeout()).await?;
    let mut memory = Memory {
        pid: server.pid(),
        readings: Vec::new(),
    };
    memory.read("server started", String::new());
    let mut failures = 0;

    // Part 1: ingest.
    exec(
        &client,
        &format!("CREATE TABLE {PARTITIONED} ({COLUMNS}) {PARTITIONING}"),
        cfg.timeout(),
    )
    .await?;
    println!(
        "ingest: multi-row INSERT ({} rows per statement) over {} connections \
         (COPY does not exist in Kura yet)",
        cfg.batch_rows, cfg.clients
    );
    let mut table = Table::with_widths(
        &[
            "load",
            "rows",
            "statements",
            "clients",
            "seconds",
            "rows/s",
            "stmt p50 ms",
            "stmt p99 ms",
            "stmt max ms",
        ],
        &[27],
    );
    let stats = load_inserts(cfg, &server.conninfo, PARTITIONED, layout).await;
    let loaded = stats.is_ok();
    table.row(
        &format!("{PARTITIONED} (interval-hash)"),
        stats.map(|s| load_cells(cfg.rows, cfg.clients, &s)),
    );
    if !loaded {
        return Ok(failures + table.failures);
    }
    let check = check_partitioned(cfg, &client, layout).await;
    let partitions: i64 = query_i64(
        &client,
        &format!("SELECT count(*) FROM \"#table_partitions\" WHERE table_name = '{PARTITIONED}'"),
        cfg.timeout(),
    )
    .await?;
    memory.read(
        &format!("{PARTITIONED} loaded"),
        format!(
            "{} rows, {partitions} partitions",
            group_digits(cfg.rows as u64)
        ),
    );
    if cfg.query {
        exec(
            &client,
            &format!("CREATE TABLE {FLAT} ({COLUMNS})"),
            cfg.timeout(),
        )
        .await?;
        let (label, stats) = match cfg.flat_load {
            FlatLoad::Select => (
                format!("{FLAT} (INSERT ... SELECT)"),
                load_flat_select(cfg, &client, layout).await,
            ),
            FlatLoad::Insert => (
                format!("{FLAT} (unpartitioned)"),
                load_inserts(cfg, &server.conninfo, FLAT, layout).await,
            ),
        };
        let clients = match cfg.flat_load {
            FlatLoad::Select => 1,
            FlatLoad::Insert => cfg.clients,
        };
        let loaded = stats.is_ok();
        table.row(&label, stats.map(|s| load_cells(cfg.rows, clients, &s)));
        if !loaded {
            return Ok(failures + table.failures);
        }
        memory.read(&format!("{FLAT} loaded too"), String::new());
    }
    failures += table.failures;
    println!();
    failures += report_check("ingest", check);
    if cfg.query {
        let flat = query_i64(
            &client,
            &format!("SELECT count(*) FROM {FLAT}"),
            cfg.timeout(),
        )
        .await
        .and_then(|n| {
            if n == cfg.rows {
                Ok(format!("{FLAT}: count(*) = {}", group_digits(n as u64)))
            } else {
                Err(format!("{FLAT}: count(*) {n}, expected {}", cfg.rows).into())
            }
        });
        failures += report_check("ingest", flat);
    }
    println!();

    // Part 2: queries.
    if cfg.query {
        let lo = layout.query_hour_ms();
        let hi = lo + HOUR_MS;
        println!(
            "query: SELECT device, avg(value), count(*) ... GROUP BY device ORDER BY device; \
             median/min/max of {} runs after one warm-up; data_partitions=read/total from EXPLAIN",
            cfg.runs
        );
        println!(
            "1-hour range: ts >= '{}' AND ts < '{}' (1 of {} intervals; expected data_partitions \
             up to {SUBPARTITIONS}/{partitions})",
            ts_text(lo),
            ts_text(hi),
            layout.intervals(),
        );
        let filter = range_filter(lo, hi);
        let range = compare_query(
            cfg,
            &client,
            "1-hour range aggregate",
            &filter,
            &layout.expected(lo, hi),
        )
        .await;
        // An hour long after the data: no partition to read, so its time is what the statement
        // costs whatever it reads (parsing, planning, execution set-up, the round trip).
        let (empty_lo, empty_hi) = (BASE_MS + 1000 * HOUR_MS, BASE_MS + 1001 * HOUR_MS);
        let empty = compare_query(
            cfg,
            &client,
            "empty range (floor)",
            &range_filter(empty_lo, empty_hi),
            &layout.expected(empty_lo, empty_hi),
        )
        .await;
        let full = compare_query(
            cfg,
            &client,
            "full-table aggregate",
            "",
            &layout.expected(i64::MIN, i64::MAX),
        )
        .await;
        if let (Some(range_s), Some(empty_s), Some(full_s)) = (
            range.partitioned_median,
            empty.partitioned_median,
            full.partitioned_median,
        ) {
            println!(
                "{PARTITIONED}: the 1-hour range costs {:.1}% of the full-table aggregate; \
                 above the empty-range floor of {:.1} ms it costs {:.1}%",
                100.0 * range_s / full_s,
                1000.0 * empty_s,
                100.0 * (range_s - empty_s) / (full_s - empty_s),
            );
            println!();
        }
        failures += range.failures + empty.failures + full.failures;
        memory.read("queries done", String::new());
    }

    // Part 3: memory and expiry.
    if cfg.expiry {
        if cfg.query {
            exec(&client, &format!("DROP TABLE {FLAT}"), cfg.timeout()).await?;
            memory.read(&format!("{FLAT} dropped"), String::new());
            tokio::time::sleep(cfg.settle).await;
            memory.read(
                &format!("{FLAT} dropped, +{}s", cfg.settle.as_secs()),
                format!("before expiry: only {PARTITIONED} in memory"),
            );
        }
        println!(
            "expiry: the reaper releases up to /dataStore/batchScanNum partitions per 1 s pass"
        );
        let outcome = expire_all(cfg, &client, partitions).await;
        let released = outcome.is_ok();
        failures += report_check("expiry", outcome);
        println!();
        if released {
            let released_at = Instant::now();
            memory.read("all partitions released", String::new());
            tokio::time::sleep(cfg.settle).await;
            memory.read(
                &format!("released, +{}s", cfg.settle.as_secs()),
                String::new(),
            );
            let waited = memory.settle(released_at).await;
            memory.read(
                "released, settled",
                format!("{:.1} s after the release", waited.as_secs_f64()),
            );
        }
    }
    memory.print();
    Ok(failures)
}

/// Counts `WARN` and `ERROR` lines of the server's stderr log.
fn log_levels(path: &std::path::Path) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let count = |level: &str| text.lines().filter(|l| l.contains(level)).count();
    (count(" WARN"), count(" ERROR"))
}

fn main() -> ExitCode {
    let cfg = match Config::load() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("timeseries bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let layout = Layout::new(cfg.rows);
    support::report::print_heading(
        "Kura time-series benchmark",
        cfg.quick,
        &cfg.server.binary,
        "",
    );
    println!(
        "config:   rows={} clients={} batch_rows={} runs={} flat_load={:?} parts=ingest{}{}",
        cfg.rows,
        cfg.clients,
        cfg.batch_rows,
        cfg.runs,
        cfg.flat_load,
        if cfg.query { ",query" } else { "" },
        if cfg.expiry { ",expiry" } else { "" },
    );
    println!(
        "data:     {DEVICES} devices, one row per device every {} ms from {} UTC, {} hourly \
         intervals x {SUBPARTITIONS} hash buckets",
        layout.step_ms,
        ts_text(BASE_MS),
        layout.intervals()
    );
    println!(
        "server:   --config ({}): {}",
        cfg.server_config.0,
        cfg.server_config
            .1
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();

    let mut dir = match RunDir::new(&cfg.server, "tsbench", &cfg.server_config.1) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("timeseries bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let extra: &[&str] = if cfg.expiry { &["--test-clock"] } else { &[] };
    let mut server = match KuraServer::start(&cfg.server, &dir.data(), &dir.config(), extra) {
        Ok(server) => server,
        Err(e) => {
            dir.keep();
            eprintln!(
                "timeseries bench: {e}\n(run directory kept: {})",
                dir.root().display()
            );
            return ExitCode::FAILURE;
        }
    };
    let rt = match support::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("timeseries bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(run(&cfg, &server));
    drop(rt);
    let failures = match outcome {
        Ok(n) => n,
        Err(e) => {
            println!("FAILED: {e}");
            1
        }
    };
    let (warns, errors) = log_levels(&dir.stderr_log());
    println!("server log: {warns} WARN and {errors} ERROR lines in kura.stderr.log");
    if let Some(status) = server.exited() {
        println!(
            "FAILED: the server exited ({status})\n{}",
            log_tail(&dir.stderr_log(), 20)
        );
        dir.keep();
        eprintln!(
            "timeseries bench: run directory kept: {}",
            dir.root().display()
        );
        return ExitCode::FAILURE;
    }
    drop(server);
    if failures > 0 {
        dir.keep();
        eprintln!(
            "timeseries bench: {failures} check(s) failed; run directory kept: {}",
            dir.root().display()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
