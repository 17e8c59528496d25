//! The server's statistics (GridDB's gs_stat): one list of figures, gathered on demand from
//! the engine, the log, the checkpointer, the backups, replication and the process, and shown
//! three ways — `kura stat` (JSON by section), the `kura_stat` relation (one row per figure)
//! and the Prometheus endpoint (`/metrics`, the numeric figures under their metric names).
//! docs/OPERATIONS.md says what each figure means.
//!
//! Invariant: every figure is measured when asked for, never estimated or fixed; a figure the
//! server cannot measure here is left out rather than shown as zero.

pub mod command;
pub mod counters;
pub mod http;
pub mod prometheus;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use counters::{COUNTERS, get};

use crate::query::Engine;
use crate::session::backends::Backends;

/// What the server adds to the engine's figures: its connections and when it started.
#[derive(Debug)]
pub struct ServerInfo {
    pub started: chrono::DateTime<chrono::Utc>,
    /// The address clients connect to.
    pub address: String,
    /// TCP connections open (logged in or not).
    pub connections: Arc<AtomicUsize>,
    pub backends: Arc<Backends>,
    pub recovery: Duration,
    pub records_replayed: u64,
    pub data_dir: std::path::PathBuf,
}

/// A figure's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    pub fn as_text(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Text(t) => t.clone(),
        }
    }
}

/// Prometheus's metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One figure.
#[derive(Debug, Clone)]
pub struct Figure {
    /// gs_stat's section (`performance`, `checkpoint`, ...).
    pub section: &'static str,
    /// gs_stat's camelCase name.
    pub name: &'static str,
    /// The Prometheus metric, for numeric figures.
    pub metric: Option<(&'static str, Kind)>,
    pub help: &'static str,
    pub value: Value,
}

fn int(value: impl TryInto<i64>) -> Value {
    Value::Int(value.try_into().unwrap_or(i64::MAX))
}

struct Figures(Vec<Figure>);

impl Figures {
    fn text(
        &mut self,
        section: &'static str,
        name: &'static str,
        help: &'static str,
        value: impl Into<String>,
    ) {
        self.0.push(Figure {
            section,
            name,
            metric: None,
            help,
            value: Value::Text(value.into()),
        });
    }

    fn number(
        &mut self,
        section: &'static str,
        name: &'static str,
        metric: (&'static str, Kind),
        help: &'static str,
        value: Value,
    ) {
        self.0.push(Figure {
            section,
            name,
            metric: Some(metric),
            help,
            value,
        });
    }
}

use Kind::{Counter, Gauge};

/// Every figure, measured now.
pub fn collect(engine: &Engine) -> Vec<Figure> {
    let mut f = Figures(Vec::new());
    let info = engine.server_info();
    let now = engine.txns.clock.now();
    cluster(&mut f, engine, info.as_deref(), now);
    performance(&mut f, engine, info.as_deref(), now);
    log_and_checkpoints(&mut f, engine);
    backups(&mut f, engine);
    f.0
}

fn cluster(
    f: &mut Figures,
    engine: &Engine,
    info: Option<&ServerInfo>,
    now: chrono::DateTime<chrono::Utc>,
) {
    let failed = engine.txns.log().and_then(|log| log.failed());
    f.text(
        "cluster",
        "nodeStatus",
        "ACTIVE, or ABNORMAL after a log write failed (the server then refuses writes)",
        if failed.is_some() {
            "ABNORMAL"
        } else {
            "ACTIVE"
        },
    );
    if let Some(hub) = engine.replication() {
        let role = hub.role();
        f.text(
            "cluster",
            "nodeRole",
            "primary, standby or fenced",
            role.name(),
        );
        f.number(
            "cluster",
            "isPrimary",
            ("kura_primary", Gauge),
            "1 on a primary that takes writes, else 0",
            int(i64::from(role.name() == "primary")),
        );
        f.number(
            "cluster",
            "epoch",
            ("kura_replication_epoch", Gauge),
            "the replication epoch (a new one at each promotion)",
            int(hub.current_epoch().epoch),
        );
        f.number(
            "cluster",
            "standbyCount",
            ("kura_replication_standbys", Gauge),
            "standbys connected to this server",
            int(hub
                .standbys()
                .iter()
                .filter(|s| s.state != "disconnected")
                .count()),
        );
    }
    f.text(
        "cluster",
        "version",
        "the server's version",
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(info) = info {
        f.text(
            "cluster",
            "address",
            "where clients connect",
            info.address.clone(),
        );
        f.text(
            "cluster",
            "startupTime",
            "when the server started",
            info.started.to_rfc3339(),
        );
        let uptime = (now - info.started).to_std().unwrap_or_default();
        f.number(
            "cluster",
            "uptime",
            ("kura_uptime_seconds", Gauge),
            "seconds since the server started",
            Value::Float(uptime.as_secs_f64()),
        );
    }
}

fn performance(
    f: &mut Figures,
    engine: &Engine,
    info: Option<&ServerInfo>,
    now: chrono::DateTime<chrono::Utc>,
) {
    const P: &str = "performance";
    f.number(
        P,
        "currentTime",
        ("kura_current_time_milliseconds", Gauge),
        "the server clock, milliseconds since the Unix epoch",
        int(now.timestamp_millis()),
    );
    if let Some(info) = info {
        let sessions = info.backends.activities();
        f.number(
            P,
            "numConnection",
            ("kura_connections", Gauge),
            "client connections open, logged in or not",
            int(info.connections.load(Ordering::Relaxed)),
        );
        f.number(
            P,
            "numSession",
            ("kura_sessions", Gauge),
            "logged-in sessions",
            int(sessions.len()),
        );
        f.number(
            P,
            "numTxn",
            ("kura_transactions_active", Gauge),
            "sessions running a statement or inside a transaction block",
            int(sessions.iter().filter(|s| s.state != "idle").count()),
        );
        f.number(
            P,
            "recoveryTime",
            ("kura_recovery_seconds", Gauge),
            "how long the last start's recovery took",
            Value::Float(info.recovery.as_secs_f64()),
        );
        f.number(
            P,
            "recoveryRecords",
            ("kura_recovery_records", Gauge),
            "log records the last start replayed",
            int(info.records_replayed),
        );
        f.number(
            P,
            "dataFileSize",
            ("kura_data_file_bytes", Gauge),
            "bytes of checkpoint files (data and manifests)",
            int(dir_bytes(
                &info.data_dir.join(crate::recovery::CHECKPOINT_DIR),
            )),
        );
        f.number(
            P,
            "logFileSize",
            ("kura_log_file_bytes", Gauge),
            "bytes of transaction log segments",
            int(dir_bytes(&info.data_dir.join(crate::recovery::LOG_DIR))),
        );
    }
    if let Some(memory) = process_memory() {
        f.number(
            P,
            "processMemory",
            ("kura_process_resident_bytes", Gauge),
            "resident memory of the server process",
            int(memory.resident),
        );
        f.number(
            P,
            "peakProcessMemory",
            ("kura_process_peak_resident_bytes", Gauge),
            "highest resident memory since the process started",
            int(memory.peak),
        );
    }
    let (resident, swapped) = store_usage(engine);
    f.number(
        P,
        "storeMemory",
        ("kura_store_memory_bytes", Gauge),
        "row data and version stamps held in memory",
        int(resident),
    );
    f.number(
        P,
        "storeSwapped",
        ("kura_store_swapped_bytes", Gauge),
        "row data swapped out to files",
        int(swapped),
    );
    f.number(
        P,
        "storeTotalUse",
        ("kura_store_total_bytes", Gauge),
        "row data in memory and in swap files",
        int(resident as u64 + swapped),
    );
    if let Some(residency) = engine.txns.residency() {
        f.number(
            P,
            "storeMemoryLimit",
            ("kura_store_memory_limit_bytes", Gauge),
            "/dataStore/storeMemoryLimit",
            int(residency.limit()),
        );
        let swap = residency.swap_stats();
        f.number(
            P,
            "swapRead",
            ("kura_swap_reads_total", Counter),
            "reads of swapped-out chunks",
            int(swap.reads),
        );
        f.number(
            P,
            "swapReadSize",
            ("kura_swap_read_bytes_total", Counter),
            "bytes read from swap files",
            int(swap.read_bytes),
        );
        f.number(
            P,
            "swapReadTime",
            ("kura_swap_read_milliseconds_total", Counter),
            "milliseconds spent reading swap files",
            int(swap.read_millis),
        );
        f.number(
            P,
            "swapWrite",
            ("kura_swap_writes_total", Counter),
            "chunks swapped out",
            int(swap.writes),
        );
        f.number(
            P,
            "swapWriteSize",
            ("kura_swap_write_bytes_total", Counter),
            "bytes written to swap files",
            int(swap.write_bytes),
        );
        f.number(
            P,
            "swapWriteTime",
            ("kura_swap_write_milliseconds_total", Counter),
            "milliseconds spent writing swap files",
            int(swap.write_millis),
        );
    }
    f.number(
        P,
        "totalCommit",
        ("kura_commits_total", Counter),
        "transactions committed with changes",
        int(engine.txns.commit_count()),
    );
    f.number(
        P,
        "totalReadOperation",
        ("kura_read_operations_total", Counter),
        "queries run",
        int(get(&COUNTERS.read_operations)),
    );
    f.number(
        P,
        "totalWriteOperation",
        ("kura_write_operations_total", Counter),
        "INSERT, UPDATE and DELETE statements run",
        int(get(&COUNTERS.write_operations)),
    );
    f.number(
        P,
        "totalRowRead",
        ("kura_rows_read_total", Counter),
        "rows returned by table scans",
        int(get(&COUNTERS.rows_read)),
    );
    f.number(
        P,
        "totalRowWrite",
        ("kura_rows_written_total", Counter),
        "row versions written by commits (inserted and deleted)",
        int(get(&COUNTERS.rows_written)),
    );
    f.number(
        P,
        "totalLockConflictCount",
        ("kura_lock_conflicts_total", Counter),
        "row-lock requests that had to wait for another transaction",
        int(get(&COUNTERS.lock_conflicts)),
    );
}

fn log_and_checkpoints(f: &mut Figures, engine: &Engine) {
    if let Some(log) = engine.txns.log() {
        f.number(
            "log",
            "writtenLsn",
            ("kura_log_written_lsn", Gauge),
            "the last log record written",
            int(log.written_lsn()),
        );
        f.number(
            "log",
            "durableLsn",
            ("kura_log_durable_lsn", Gauge),
            "the last log record made durable",
            int(log.durable_lsn()),
        );
        f.number(
            "log",
            "fsyncCount",
            ("kura_log_fsyncs_total", Counter),
            "fsyncs of the transaction log",
            int(log.fsync_count()),
        );
    }
    let Some(checkpointer) = engine.checkpointer() else {
        return;
    };
    const C: &str = "checkpoint";
    let history = checkpointer.history();
    f.number(
        C,
        "normalCheckpointOperation",
        ("kura_checkpoints_total", Counter),
        "checkpoints completed since the server started",
        int(history.completed),
    );
    f.number(
        C,
        "checkpointFailures",
        ("kura_checkpoint_failures_total", Counter),
        "checkpoints that failed",
        int(history.failed),
    );
    f.number(
        C,
        "checkpointWriteTime",
        ("kura_checkpoint_seconds_total", Counter),
        "seconds spent in checkpoints",
        Value::Float(history.total_duration.as_secs_f64()),
    );
    f.number(
        C,
        "checkpointWriteSize",
        ("kura_checkpoint_written_bytes_total", Counter),
        "bytes of data files checkpoints wrote",
        int(history.bytes_written),
    );
    if let Some(last) = &history.last {
        f.number(
            C,
            "lastLsn",
            ("kura_checkpoint_lsn", Gauge),
            "the LSN of the last checkpoint",
            int(last.lsn),
        );
        f.number(
            C,
            "lastDuration",
            ("kura_checkpoint_last_seconds", Gauge),
            "how long the last checkpoint took",
            Value::Float(last.duration.as_secs_f64()),
        );
    }
    if let Some(end) = history.last_end {
        f.text(
            C,
            "endTime",
            "when the last checkpoint ended",
            end.to_rfc3339(),
        );
    }
}

fn backups(f: &mut Figures, engine: &Engine) {
    let Some(backups) = engine.backups() else {
        return;
    };
    const B: &str = "backup";
    let status = backups.status();
    let state = match &status.running {
        Some(running) => format!("Processing({})", running.mode),
        None => "-".into(),
    };
    f.text(
        B,
        "backupStatus",
        "Processing(mode) while a backup runs, else -",
        state,
    );
    if let Some(mode) = status
        .running
        .as_ref()
        .map(|r| r.mode)
        .or(status.last.as_ref().map(|l| l.mode))
    {
        f.text(
            B,
            "mode",
            "GridDB's name of the running or last backup's operation",
            mode.operation(),
        );
    }
    f.number(
        B,
        "backupOperation",
        ("kura_backups_total", Counter),
        "backups completed since the server started",
        int(status.completed),
    );
    f.number(
        B,
        "backupFailures",
        ("kura_backup_failures_total", Counter),
        "backups that failed",
        int(status.failed),
    );
    if let Some(running) = &status.running {
        f.number(
            B,
            "backupTotal",
            ("kura_backup_total_bytes", Gauge),
            "bytes the running backup reads",
            int(running.total),
        );
        f.number(
            B,
            "backupDone",
            ("kura_backup_done_bytes", Gauge),
            "bytes the running backup has read",
            int(running.done),
        );
    }
    if let Some(last) = &status.last {
        f.text(
            B,
            "lastBackup",
            "the last backup this server finished",
            last.data.clone(),
        );
        f.text(B, "lastBackupStatus", "OK or NG", last.status.as_str());
        f.text(
            B,
            "lastBackupEndTime",
            "when it ended",
            last.end_time.clone().unwrap_or_default(),
        );
    }
    f.number(
        B,
        "duplicateLog",
        ("kura_archiving", Gauge),
        "1 while the log is archived into an auto backup",
        int(i64::from(status.archive.is_some())),
    );
    if let Some(archive) = &status.archive {
        f.text(
            B,
            "archiveSet",
            "the backup the log is archived into",
            archive.set.clone(),
        );
        f.number(
            B,
            "archivedLsn",
            ("kura_archived_lsn", Gauge),
            "the last log record archived",
            int(archive.next_lsn.saturating_sub(1)),
        );
        f.number(
            B,
            "archiveFailures",
            ("kura_archive_failures_total", Counter),
            "archive copies that failed",
            int(archive.failures),
        );
        if let Some(error) = &archive.error {
            f.text(
                B,
                "archiveError",
                "why the last archive copy failed",
                error.clone(),
            );
        }
    }
    if let Some(error) = status.archive_error {
        f.text(
            B,
            "archiveError",
            "why archiving could not resume at start",
            error,
        );
    }
}

/// Row data in memory and swapped out, over every table of every database.
fn store_usage(engine: &Engine) -> (usize, u64) {
    engine
        .databases()
        .iter()
        .map(|db| database_store_usage(db))
        .fold((0, 0), |(r, s), (dr, ds)| (r + dr, s + ds))
}

/// The bytes of one database's row data held in memory and swapped out to files.
pub fn database_store_usage(db: &crate::query::Database) -> (usize, u64) {
    let mut resident = 0;
    let mut swapped = 0;
    for table in db.catalog.tables() {
        for partition in table.partitions().iter() {
            let (memory, out) = partition.residency();
            resident += memory;
            swapped += out;
        }
    }
    (resident, swapped)
}

/// Bytes of the files under `dir`, recursively.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

struct ProcessMemory {
    resident: u64,
    peak: u64,
}

/// VmRSS and VmHWM from /proc/self/status (Linux).
fn process_memory() -> Option<ProcessMemory> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some(ProcessMemory {
        resident: field("VmRSS:")?,
        peak: field("VmHWM:")?,
    })
}
