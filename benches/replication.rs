//! Replication costs of a Kura server: commit throughput and latency with 0, 1 and 2 standbys
//! in each replication mode, and how far standbys fall behind under a sustained write load.
//!
//! `cargo bench --bench replication` (a `harness = false` bench) spawns a primary and its
//! standbys (`kura serve --standby-of 127.0.0.1:PORT`), each on its own throw-away data
//! directory, all on this machine, and measures two things:
//!
//! | part (`KURA_BENCH_PARTS` name) | what is measured |
//! |---|---|
//! | `commit` | for every number of standbys in `KURA_BENCH_STANDBYS` and every mode in `KURA_BENCH_MODES` (`/transaction/replicationMode` ASYNC, SEMISYNC, SYNC; `/cluster/replicationNum` 2, so a SEMISYNC or SYNC commit waits for one standby; with 2 standbys also replicationNum 3, both): single-row autocommit `INSERT`s with a prepared statement for `KURA_BENCH_SECONDS` with each client count of `KURA_BENCH_CLIENTS` (each client on its own connection); the latency of every commit is recorded: commits/s, p50, p99 and maximum latency. SEMISYNC and SYNC with no standby are not run (every commit would wait for `replicationTimeoutInterval`) |
//! | `lag` | for every number of standbys in `KURA_BENCH_LAG_STANDBYS`, ASYNC: `KURA_BENCH_LAG_CLIENTS` clients insert as above for `KURA_BENCH_SECONDS` while a sampler queries the primary's `pg_stat_replication` every `KURA_BENCH_SAMPLE_MS`: `replay_lag_bytes`, `extract(epoch FROM replay_lag)` and `pg_current_wal_lsn() - replay_lsn` (log records), the worst standby of each sample; p50, p99 and maximum over the samples, and how long after the load stopped every standby had replayed the primary's last record |
//!
//! Every configuration gets a fresh primary and fresh standbys; the primary's configuration is
//! `{"dataStore": {"logWriteMode": L}, "transaction": {"replicationMode": MODE,
//! "replicationTimeoutInterval": "Ts"}, "cluster": {"replicationNum": N}}` (the standbys get the
//! same file). The table, `replbench (id bigint PRIMARY KEY, v double precision)`, is created
//! only once every standby is streaming (in SEMISYNC and SYNC even DDL waits for standbys).
//!
//! Results are checked, never timings: every INSERT must report one row; after each run the
//! primary must hold exactly the acknowledged rows, and after one more INSERT with
//! `synchronous_commit = remote_apply` every standby must hold the primary's count (polled up to
//! `KURA_BENCH_CATCH_UP`: with replicationNum 2 that commit waits for one standby only). A
//! failure prints `FAILED`, keeps the run directories (with each server's `kura.stderr.log`)
//! and makes the bench exit non-zero. Every loop is bounded by a deadline or a count, every
//! statement by `KURA_BENCH_TIMEOUT`, every start by `KURA_BENCH_READY_TIMEOUT`; a commit
//! the standbys do not confirm fails after `replicationTimeoutInterval`.
//!
//! Settings (environment variables; defaults in brackets, quick-mode defaults after `/`):
//!
//! - `KURA_BENCH_PARTS`: comma-separated subset of `commit,lag` [both]
//! - `KURA_BENCH_SECONDS`: duration of each load, seconds (fractions allowed) [10 / 0.5]
//! - `KURA_BENCH_CLIENTS`: comma-separated client counts of `commit` [1,16]
//! - `KURA_BENCH_STANDBYS`: comma-separated standby counts of `commit` (0 to 2) [0,1,2]
//! - `KURA_BENCH_MODES`: comma-separated modes of `commit` [ASYNC,SEMISYNC,SYNC]
//! - `KURA_BENCH_LAG_STANDBYS`: comma-separated standby counts of `lag` (1 or 2) [1,2]
//! - `KURA_BENCH_LAG_CLIENTS`: clients of `lag` [16]
//! - `KURA_BENCH_SAMPLE_MS`: interval of the `lag` sampler, milliseconds [100]
//! - `KURA_BENCH_LOG_WRITE_MODE`: `/dataStore/logWriteMode` of every server: 0 = fsync before
//!   a commit is acknowledged, N = fsync every N seconds [0]
//! - `KURA_BENCH_REPLICATION_TIMEOUT`: `/transaction/replicationTimeoutInterval`, seconds [60]
//! - `KURA_BENCH_CATCH_UP`: how long standbys may take to start streaming or to catch up,
//!   seconds [60]
//! - `KURA_BENCH_TIMEOUT`: time limit of one statement, seconds [600]
//! - `KURA_BENCH_READY_TIMEOUT`: time a start may take until `listening on`, seconds [600]
//! - `KURA_BENCH_BIN`: the `kura` binary [built binary of this package, else
//!   `target/release/kura`, else `target/debug/kura`]
//! - `KURA_BENCH_DIR`: where the run directories (data, config, server logs) are made [system
//!   temp dir]
//! - `KURA_BENCH_PASSWORD`: the password of `admin` on every server (set with
//!   `KURA_ADMIN_PASSWORD` at first start; standbys log in to the primary with it through
//!   `KURA_REPLICATION_PASSWORD`) [admin]
//! - `KURA_BENCH_USER` / `KURA_BENCH_DBNAME`: login of the bench's clients [`admin` / `public`]
//! - `KURA_BENCH_KEEP`: `1` keeps the run directories (they are always kept after a failure) [0]
//!
//! Positional arguments (`cargo bench --bench replication -- lag`) also select parts. Without
//! the `--bench` flag that `cargo bench` passes (e.g. under `cargo test --benches`) the run is a
//! quick smoke run of 0.5 s per load.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

mod support;
use support::report::{Table, per_sec, quantile};
use support::server::{KuraServer, RunDir, ServerSettings, connect, exec, query_i64, query_rows};
use support::{BoxError, Context, Result, env_parse, env_var, group_digits, timed};

const TABLE: &str = "replbench";
const COLUMNS: &str = "id bigint PRIMARY KEY, v double precision";
const INSERT: &str = "INSERT INTO replbench (id, v) VALUES ($1, $2)";
/// How often a condition a standby reaches in its own time is polled.
const POLL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------------
// Configuration

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Commit,
    Lag,
}

impl Part {
    const ALL: [Part; 2] = [Self::Commit, Self::Lag];

    fn name(self) -> &'static str {
        match self {
            Self::Commit => "commit",
            Self::Lag => "lag",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Async,
    Semisync,
    Sync,
}

impl Mode {
    const ALL: [Mode; 3] = [Self::Async, Self::Semisync, Self::Sync];

    fn name(self) -> &'static str {
        match self {
            Self::Async => "ASYNC",
            Self::Semisync => "SEMISYNC",
            Self::Sync => "SYNC",
        }
    }
}

/// One primary with its standbys.
#[derive(Clone, Copy, Debug)]
struct Setup {
    standbys: usize,
    mode: Mode,
    /// `/cluster/replicationNum`: SEMISYNC and SYNC commits wait for `replication_num - 1`
    /// standbys.
    replication_num: u32,
}

impl Setup {
    fn label(&self) -> String {
        let standbys = match self.standbys {
            1 => "1 standby".to_owned(),
            n => format!("{n} standbys"),
        };
        match (self.standbys, self.mode) {
            (2, Mode::Semisync | Mode::Sync) => format!(
                "{standbys}, {}, waits for {}",
                self.mode.name(),
                self.replication_num - 1
            ),
            _ => format!("{standbys}, {}", self.mode.name()),
        }
    }

    fn dir_label(&self) -> String {
        format!(
            "replbench-{}s-{}-n{}",
            self.standbys,
            self.mode.name().to_lowercase(),
            self.replication_num
        )
    }
}

#[derive(Debug)]
struct Config {
    quick: bool,
    server: ServerSettings,
    parts: Vec<Part>,
    duration: Duration,
    clients: Vec<usize>,
    standbys: Vec<usize>,
    modes: Vec<Mode>,
    lag_standbys: Vec<usize>,
    lag_clients: usize,
    sample: Duration,
    log_write_mode: u32,
    replication_timeout_secs: u64,
    catch_up: Duration,
}

fn parse_list<T: std::str::FromStr>(name: &str, default: Vec<T>) -> Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    match env_var(name) {
        None => Ok(default),
        Some(list) => list
            .split(',')
            .map(|n| n.trim().parse::<T>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .context(format!("{name}={list:?}")),
    }
}

impl Config {
    fn load() -> Result<Self> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = !args.iter().any(|a| a == "--bench");

        let seconds: f64 = env_parse("KURA_BENCH_SECONDS", if quick { 0.5 } else { 10.0 })?;
        if !(seconds > 0.0 && seconds <= 3600.0) {
            return Err(format!("KURA_BENCH_SECONDS={seconds}: expected 0 < s <= 3600").into());
        }
        let clients: Vec<usize> = parse_list("KURA_BENCH_CLIENTS", vec![1, 16])?;
        let standbys: Vec<usize> = parse_list("KURA_BENCH_STANDBYS", vec![0, 1, 2])?;
        let lag_standbys: Vec<usize> = parse_list("KURA_BENCH_LAG_STANDBYS", vec![1, 2])?;
        let lag_clients: usize = env_parse("KURA_BENCH_LAG_CLIENTS", 16)?;
        let sample_ms: u64 = env_parse("KURA_BENCH_SAMPLE_MS", 100)?;
        if clients.iter().any(|&n| n < 1) || lag_clients < 1 || sample_ms < 1 {
            return Err(
                "KURA_BENCH_CLIENTS, _LAG_CLIENTS and _SAMPLE_MS must be at least 1".into(),
            );
        }
        if standbys.iter().any(|&n| n > 2) || lag_standbys.iter().any(|&n| !(1..=2).contains(&n)) {
            return Err(
                "KURA_BENCH_STANDBYS must be 0, 1 or 2; KURA_BENCH_LAG_STANDBYS 1 or 2".into(),
            );
        }
        let modes = match env_var("KURA_BENCH_MODES") {
            None => Mode::ALL.to_vec(),
            Some(list) => list
                .split(',')
                .map(|m| {
                    let m = m.trim();
                    Mode::ALL
                        .into_iter()
                        .find(|mode| mode.name().eq_ignore_ascii_case(m))
                        .ok_or_else(|| {
                            format!("KURA_BENCH_MODES: {m:?} is not ASYNC, SEMISYNC or SYNC")
                        })
                })
                .collect::<std::result::Result<Vec<_>, _>>()?,
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
        for name in &names {
            if !Part::ALL.iter().any(|p| p.name() == name) {
                return Err(format!("unknown part {name:?} (expected commit or lag)").into());
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
            duration: Duration::from_secs_f64(seconds),
            clients,
            standbys,
            modes,
            lag_standbys,
            lag_clients,
            sample: Duration::from_millis(sample_ms),
            log_write_mode: env_parse("KURA_BENCH_LOG_WRITE_MODE", 0)?,
            replication_timeout_secs: env_parse("KURA_BENCH_REPLICATION_TIMEOUT", 60)?,
            catch_up: Duration::from_secs(env_parse("KURA_BENCH_CATCH_UP", 60)?),
        })
    }

    fn server_config(&self, setup: &Setup) -> String {
        format!(
            r#"{{"dataStore": {{"logWriteMode": {}}}, "transaction": {{"replicationMode": "{}", "replicationTimeoutInterval": "{}s"}}, "cluster": {{"replicationNum": {}}}}}"#,
            self.log_write_mode,
            setup.mode.name(),
            self.replication_timeout_secs,
            setup.replication_num
        )
    }
}

// ---------------------------------------------------------------------------------------------
// A primary and its standbys

struct Cluster {
    primary: KuraServer,
    standbys: Vec<KuraServer>,
    dirs: Vec<RunDir>,
}

impl Cluster {
    /// Keeps every run directory (after a failure) and names them.
    fn keep(&mut self) -> String {
        for dir in &mut self.dirs {
            dir.keep();
        }
        self.dirs
            .iter()
            .map(|d| d.root().display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks that no server has exited.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.primary.exited() {
            return Err(format!("the primary exited ({status})").into());
        }
        for (k, standby) in self.standbys.iter_mut().enumerate() {
            if let Some(status) = standby.exited() {
                return Err(format!("standby {} exited ({status})", k + 1).into());
            }
        }
        Ok(())
    }
}

/// Starts a primary and `setup.standbys` standbys of it, waits until every standby is
/// streaming and creates the table. On failure the run directories are kept.
fn start_cluster(cfg: &Config, rt: &Runtime, setup: &Setup) -> Result<Cluster> {
    let config = cfg.server_config(setup);
    let password = cfg.server.password.as_str();
    let primary_dir = RunDir::new(
        &cfg.server,
        &format!("{}-primary", setup.dir_label()),
        &config,
    )?;
    let mut dirs = Vec::new();
    let primary = KuraServer::start_with_env(
        &cfg.server,
        &primary_dir.data(),
        &primary_dir.config(),
        &[],
        &[("KURA_ADMIN_PASSWORD", password)],
    );
    dirs.push(primary_dir);
    let keep_on_error = |dirs: &mut Vec<RunDir>, e: BoxError| -> BoxError {
        for dir in dirs.iter_mut() {
            dir.keep();
        }
        let names: Vec<String> = dirs
            .iter()
            .map(|d| d.root().display().to_string())
            .collect();
        format!("{e} (run directories kept: {})", names.join(", ")).into()
    };
    let primary = match primary {
        Ok(primary) => primary,
        Err(e) => return Err(keep_on_error(&mut dirs, e)),
    };
    let upstream = format!("{}:{}", primary.host, primary.port);
    let mut standbys = Vec::new();
    for k in 1..=setup.standbys {
        let dir = RunDir::new(
            &cfg.server,
            &format!("{}-standby{k}", setup.dir_label()),
            &config,
        )?;
        let standby = KuraServer::start_with_env(
            &cfg.server,
            &dir.data(),
            &dir.config(),
            &["--standby-of", &upstream],
            &[
                ("KURA_ADMIN_PASSWORD", password),
                ("KURA_REPLICATION_PASSWORD", password),
            ],
        );
        dirs.push(dir);
        match standby {
            Ok(standby) => standbys.push(standby),
            Err(e) => return Err(keep_on_error(&mut dirs, e)),
        }
    }
    let mut cluster = Cluster {
        primary,
        standbys,
        dirs,
    };
    let ready = rt.block_on(async {
        let client = connect(&cluster.primary.conninfo, cfg.server.timeout).await?;
        wait_streaming(cfg, &client, setup.standbys).await?;
        exec(
            &client,
            &format!("CREATE TABLE {TABLE} ({COLUMNS})"),
            cfg.server.timeout,
        )
        .await
    });
    match ready {
        Ok(()) => Ok(cluster),
        Err(e) => {
            let dirs = cluster.keep();
            Err(format!("{e} (run directories kept: {dirs})").into())
        }
    }
}

/// Waits (at most `KURA_BENCH_CATCH_UP`) until the primary lists `count` streaming standbys.
async fn wait_streaming(cfg: &Config, primary: &Client, count: usize) -> Result<()> {
    let sql = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'";
    let deadline = Instant::now() + cfg.catch_up;
    loop {
        let streaming = query_i64(primary, sql, cfg.server.timeout).await?;
        if streaming == count as i64 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{streaming} standby(s) streaming after {:?}, expected {count}",
                cfg.catch_up
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Load and checks

/// What one load did.
struct Load {
    commits: u64,
    elapsed: Duration,
    /// When the last client finished.
    ended: Instant,
    /// Latency of every acknowledged commit, milliseconds.
    latencies_ms: Vec<f64>,
}

/// `clients` connections, each with the INSERT prepared.
async fn prepare_clients(
    cfg: &Config,
    conninfo: &str,
    clients: usize,
) -> Result<Vec<(Client, Statement)>> {
    let mut prepared = Vec::new();
    for _ in 0..clients {
        let client = connect(conninfo, cfg.server.timeout).await?;
        let stmt = timed(
            cfg.server.timeout,
            INSERT,
            client.prepare_typed(INSERT, &[Type::INT8, Type::FLOAT8]),
        )
        .await?;
        prepared.push((client, stmt));
    }
    Ok(prepared)
}

/// Every prepared client inserts single rows (autocommit) for `cfg.duration`; ids come from
/// `next_id`.
async fn insert_load(
    cfg: &Config,
    prepared: Vec<(Client, Statement)>,
    next_id: &Arc<AtomicI64>,
) -> Result<Load> {
    let timeout = cfg.server.timeout;
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let mut handles = Vec::new();
    for (client, stmt) in prepared {
        let next_id = Arc::clone(next_id);
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let v = id as f64 * 0.5;
                let sent = Instant::now();
                let n = timed(
                    timeout,
                    "single-row INSERT",
                    client.execute(&stmt, &[&id, &v]),
                )
                .await?;
                latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                if n != 1 {
                    return Err(format!("single-row INSERT of id {id} reported {n} rows").into());
                }
            }
            Ok::<_, BoxError>(latencies)
        }));
    }
    let joined = support::join_all(handles).await;
    let ended = Instant::now();
    let latencies_ms: Vec<f64> = joined?.into_iter().flatten().collect();
    Ok(Load {
        commits: latencies_ms.len() as u64,
        elapsed: ended - start,
        ended,
        latencies_ms,
    })
}

/// Checks that the primary holds `expected` rows; then, if there are standbys, commits one
/// more row with `synchronous_commit = remote_apply` (`marker` is its id) and waits until every
/// standby holds as many rows as the primary. Returns the primary's new row count.
async fn check_counts(
    cfg: &Config,
    primary: &Client,
    standbys: &[Client],
    expected: i64,
    marker: i64,
) -> Result<i64> {
    let count_sql = format!("SELECT count(*) FROM {TABLE}");
    let stored = query_i64(primary, &count_sql, cfg.server.timeout).await?;
    if stored != expected {
        return Err(format!(
            "{expected} INSERTs acknowledged in all, but the primary holds {stored} rows"
        )
        .into());
    }
    if standbys.is_empty() {
        return Ok(stored);
    }
    exec(
        primary,
        &format!(
            "SET synchronous_commit = remote_apply; \
             INSERT INTO {TABLE} (id, v) VALUES ({marker}, 0); \
             RESET synchronous_commit"
        ),
        cfg.server.timeout,
    )
    .await?;
    let expected = expected + 1;
    let deadline = Instant::now() + cfg.catch_up;
    for (k, standby) in standbys.iter().enumerate() {
        loop {
            let held = query_i64(standby, &count_sql, cfg.server.timeout).await?;
            if held == expected {
                break;
            }
            if held > expected || Instant::now() >= deadline {
                return Err(format!(
                    "the primary holds {expected} rows after a remote_apply INSERT, but \
                     standby {} holds {held}{}",
                    k + 1,
                    if held > expected {
                        String::new()
                    } else {
                        format!(" after {:?}", cfg.catch_up)
                    }
                )
                .into());
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(expected)
}

async fn connect_all(cfg: &Config, cluster: &Cluster) -> Result<(Client, Vec<Client>)> {
    let primary = connect(&cluster.primary.conninfo, cfg.server.timeout).await?;
    let mut standbys = Vec::new();
    for standby in &cluster.standbys {
        standbys.push(connect(&standby.conninfo, cfg.server.timeout).await?);
    }
    Ok((primary, standbys))
}

fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

// ---------------------------------------------------------------------------------------------
// Parts

/// One row per client count for one setup; the rows share one primary and its standbys.
fn commit_setup(cfg: &Config, rt: &Runtime, setup: &Setup, table: &mut Table) {
    let label = setup.label();
    let mut cluster = match start_cluster(cfg, rt, setup) {
        Ok(cluster) => cluster,
        Err(e) => {
            table.row(&label, Err(e));
            return;
        }
    };
    let next_id = Arc::new(AtomicI64::new(1));
    let clients = match rt.block_on(connect_all(cfg, &cluster)) {
        Ok(clients) => clients,
        Err(e) => {
            let dirs = cluster.keep();
            table.row(
                &label,
                Err(format!("{e} (run directories kept: {dirs})").into()),
            );
            return;
        }
    };
    let mut rows: i64 = 0;
    for (k, &n) in cfg.clients.iter().enumerate() {
        let outcome = rt.block_on(async {
            let prepared = prepare_clients(cfg, &cluster.primary.conninfo, n).await?;
            let load = insert_load(cfg, prepared, &next_id).await?;
            rows = check_counts(
                cfg,
                &clients.0,
                &clients.1,
                rows + load.commits as i64,
                -(k as i64) - 1,
            )
            .await?;
            let secs = load.elapsed.as_secs_f64();
            Ok::<_, BoxError>(vec![
                n.to_string(),
                group_digits(load.commits),
                per_sec(load.commits as f64, secs),
                ms(quantile(&load.latencies_ms, 0.5)),
                ms(quantile(&load.latencies_ms, 0.99)),
                ms(quantile(&load.latencies_ms, 1.0)),
            ])
        });
        let outcome = outcome.and_then(|cells| cluster.check_alive().map(|()| cells));
        let failed = outcome.is_err();
        let outcome = outcome.map_err(|e| -> BoxError {
            let dirs = cluster.keep();
            format!("{e} (run directories kept: {dirs})").into()
        });
        table.row(&label, outcome);
        if failed {
            return;
        }
    }
}

fn commit_part(cfg: &Config, rt: &Runtime) -> usize {
    println!(
        "commit: single-row autocommit INSERT (prepared), {:?} per client count, each client on \
         its own connection; latency = send to acknowledgement, per commit",
        cfg.duration
    );
    let mut table = Table::with_widths(
        &[
            "standbys, mode",
            "clients",
            "commits",
            "commits/s",
            "p50 ms",
            "p99 ms",
            "max ms",
        ],
        &[34],
    );
    for &standbys in &cfg.standbys {
        for &mode in &cfg.modes {
            if standbys == 0 && mode != Mode::Async {
                let setup = Setup {
                    standbys,
                    mode,
                    replication_num: 2,
                };
                println!("{}: n/a (commits wait for a standby)", setup.label());
                continue;
            }
            let quorums: &[u32] = if standbys == 2 && mode != Mode::Async {
                &[2, 3]
            } else {
                &[2]
            };
            for &replication_num in quorums {
                let setup = Setup {
                    standbys,
                    mode,
                    replication_num,
                };
                commit_setup(cfg, rt, &setup, &mut table);
            }
        }
    }
    println!();
    table.failures
}

/// One sample of `pg_stat_replication`: the worst standby's lag.
#[derive(Clone, Copy, Default)]
struct LagSample {
    bytes: f64,
    seconds: f64,
    records: f64,
}

const LAG_SQL: &str = "SELECT replay_lag_bytes, extract(epoch FROM replay_lag), \
                       pg_current_wal_lsn() - replay_lsn FROM pg_stat_replication";

/// Samples [`LAG_SQL`] every `cfg.sample` until `stop` is set.
async fn sample_lag(
    cfg: &Config,
    client: &Client,
    standbys: usize,
    stop: &AtomicBool,
) -> Result<Vec<LagSample>> {
    let mut samples = Vec::new();
    let mut interval = tokio::time::interval(cfg.sample);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if stop.load(Ordering::Acquire) {
            return Ok(samples);
        }
        let rows = query_rows(client, LAG_SQL, cfg.server.timeout).await?;
        if rows.len() != standbys {
            return Err(format!(
                "pg_stat_replication lists {} standbys during the load, expected {standbys}",
                rows.len()
            )
            .into());
        }
        let mut sample = LagSample::default();
        for row in &rows {
            let value = |i: usize| -> Result<f64> {
                let text = row.get(i).map_or("NULL", String::as_str);
                text.parse::<f64>()
                    .context(format!("{LAG_SQL}: column {i} is {text:?}"))
            };
            sample.bytes = sample.bytes.max(value(0)?);
            sample.seconds = sample.seconds.max(value(1)?);
            sample.records = sample.records.max(value(2)?);
        }
        samples.push(sample);
    }
}

/// Time from `start` until every standby has replayed the primary's last record.
async fn wait_replayed(
    cfg: &Config,
    primary: &Client,
    standbys: usize,
    start: Instant,
) -> Result<Duration> {
    let sql = "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn >= pg_current_wal_lsn()";
    loop {
        let caught_up = query_i64(primary, sql, cfg.server.timeout).await?;
        if caught_up == standbys as i64 {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= cfg.catch_up {
            return Err(format!(
                "{caught_up} of {standbys} standbys replayed the primary's last record within {:?}",
                cfg.catch_up
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn lag_run(cfg: &Config, cluster: &Cluster, standbys: usize) -> Result<Vec<String>> {
    let (primary, standby_clients) = connect_all(cfg, cluster).await?;
    let sampler_client = connect(&cluster.primary.conninfo, cfg.server.timeout).await?;
    let next_id = Arc::new(AtomicI64::new(1));
    let stop = AtomicBool::new(false);
    let prepared = prepare_clients(cfg, &cluster.primary.conninfo, cfg.lag_clients).await?;
    // The catch-up is timed at once (the sampler may still be sleeping until its next tick).
    let load = async {
        let load = insert_load(cfg, prepared, &next_id).await;
        stop.store(true, Ordering::Release);
        let load = load?;
        let caught_up = wait_replayed(cfg, &primary, standbys, load.ended).await?;
        Ok::<_, BoxError>((load, caught_up))
    };
    let (load, samples) = tokio::join!(load, sample_lag(cfg, &sampler_client, standbys, &stop));
    let (load, caught_up) = load?;
    let samples = samples?;
    check_counts(cfg, &primary, &standby_clients, load.commits as i64, -1).await?;

    let column = |f: fn(&LagSample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
    let bytes = column(|s| s.bytes);
    let seconds = column(|s| s.seconds);
    let records = column(|s| s.records);
    let three = |values: &[f64], fmt: &dyn Fn(f64) -> String| {
        format!(
            "{} / {} / {}",
            fmt(quantile(values, 0.5)),
            fmt(quantile(values, 0.99)),
            fmt(quantile(values, 1.0))
        )
    };
    let whole = |v: f64| group_digits(v.round() as u64);
    let secs3 = |v: f64| format!("{v:.3}");
    Ok(vec![
        cfg.lag_clients.to_string(),
        per_sec(load.commits as f64, load.elapsed.as_secs_f64()),
        samples.len().to_string(),
        three(&bytes, &whole),
        three(&seconds, &secs3),
        three(&records, &whole),
        format!("{:.3}", caught_up.as_secs_f64()),
    ])
}

fn lag_part(cfg: &Config, rt: &Runtime) -> usize {
    println!(
        "lag: ASYNC, {} clients insert single rows for {:?}; pg_stat_replication sampled every \
         {:?} (worst standby per sample); p50 / p99 / max over the samples; caught up = from the \
         end of the load until every standby has replayed the primary's last record",
        cfg.lag_clients, cfg.duration, cfg.sample
    );
    let mut table = Table::with_widths(
        &[
            "standbys, mode",
            "clients",
            "commits/s",
            "samples",
            "replay_lag_bytes",
            "replay_lag s",
            "records behind",
            "caught up s",
        ],
        &[34, 0, 0, 0, 24, 22, 16],
    );
    for &standbys in &cfg.lag_standbys {
        let setup = Setup {
            standbys,
            mode: Mode::Async,
            replication_num: 2,
        };
        let label = setup.label();
        let mut cluster = match start_cluster(cfg, rt, &setup) {
            Ok(cluster) => cluster,
            Err(e) => {
                table.row(&label, Err(e));
                continue;
            }
        };
        let outcome = rt
            .block_on(lag_run(cfg, &cluster, standbys))
            .and_then(|cells| cluster.check_alive().map(|()| cells))
            .map_err(|e| -> BoxError {
                let dirs = cluster.keep();
                format!("{e} (run directories kept: {dirs})").into()
            });
        table.row(&label, outcome);
    }
    println!();
    table.failures
}

fn main() -> ExitCode {
    let cfg = match Config::load() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("replication bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match support::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("replication bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    support::report::print_heading(
        "Kura replication benchmark",
        cfg.quick,
        &cfg.server.binary,
        " (the primary, its standbys and the clients share them)",
    );
    println!(
        "config:   logWriteMode={} ({}) on every server, replicationTimeoutInterval={}s, \
         replicationNum=2 unless stated (SEMISYNC/SYNC commits wait for replicationNum-1 \
         standbys)",
        cfg.log_write_mode,
        if cfg.log_write_mode == 0 {
            "fsync before each commit is acknowledged"
        } else {
            "fsync every N seconds"
        },
        cfg.replication_timeout_secs
    );
    println!();

    let mut failures = 0;
    for part in &cfg.parts {
        failures += match part {
            Part::Commit => commit_part(&cfg, &rt),
            Part::Lag => lag_part(&cfg, &rt),
        };
    }
    drop(rt);
    if failures > 0 {
        eprintln!("replication bench: {failures} run(s) failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
