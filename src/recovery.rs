//! Opening a data directory: take its lock, load the newest valid checkpoint, replay the log
//! after it, cut off a torn tail, and start the log for new commits. Nothing is served before
//! this finishes.
//!
//! Invariants: one server per data directory (an exclusive lock on `<data>/kura.lock`, released
//! by the OS when the process dies, however it dies); replay applies records in LSN order
//! without gaps, starting right after the loaded checkpoint; damage is repaired only in the
//! newest segment (a torn tail); damage in an older segment stops the start with a message that
//! points to `kura check --repair`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint::file::{read_partition_pieces, verify_partition_file};
use crate::checkpoint::manifest::{Manifest, list_manifests};
use crate::checkpoint::{CheckpointOptions, Checkpointer, DATA_DIR};
use crate::config::{Config, StoreCompressionMode};
use crate::error::{KuraError, Result, sqlstate};
use crate::query::{DatabaseOptions, Engine};
use crate::replication::hub::HubSettings;
use crate::replication::{NodeState, ReplicationHub, Role};
use crate::storage::PartitionKey;
use crate::storage::chunk::{Serial, slice_bytes};
use crate::storage::partition::Persisted;
use crate::storage::residency::{Residency, TableSource};
use crate::storage::swap::SwapDir;
use crate::wal::record::LogRecord;
use crate::wal::record::Lsn;
use crate::wal::segment::{Damage, Scanned, io_error, list_segments, scan_segment};
use crate::wal::{LogOptions, RecordBody, TxnLog, dir_entries};

pub const LOCK_FILE: &str = "kura.lock";
pub const LOG_DIR: &str = "txnlog";
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// Where row data swapped out of memory goes (scratch, emptied at every start).
pub const SWAP_DIR: &str = "swap";

/// The exclusive lock on a data directory; held for the life of the server.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock> {
        let path = data_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                };
                return Err(KuraError::new(
                    sqlstate::OBJECT_IN_USE,
                    format!(
                        "data directory {} is in use by another Kura server{who}",
                        data_dir.display()
                    ),
                )
                .with_hint("stop that server first, or start this one with another --data-dir"));
            }
            Err(TryLockError::Error(e)) => return Err(io_error(&path, e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&path, e))?;
        Ok(DataDirLock { _file: file })
    }
}

/// A recovered, running storage engine.
#[derive(Debug)]
pub struct Recovered {
    pub engine: Arc<Engine>,
    pub checkpointer: Arc<Checkpointer>,
    pub lock: DataDirLock,
    pub report: RecoveryReport,
}

#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub checkpoint_lsn: Option<Lsn>,
    pub records_replayed: u64,
    pub last_lsn: Lsn,
    pub truncated: Option<(PathBuf, u64)>,
    pub duration: Duration,
}

/// Opens `config.system.data_dir`: lock, load, replay, and start the log.
pub fn open(config: &Config, target_partitions: usize) -> Result<Recovered> {
    let data_dir = &config.system.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|e| io_error(data_dir, e))?;
    let lock = DataDirLock::acquire(data_dir)?;
    let started = Instant::now();
    tracing::info!(data_dir = %data_dir.display(), "recovery begin");
    if data_dir
        .join(crate::backup::restore::RESTORE_MARKER)
        .exists()
    {
        return Err(KuraError::new(
            crate::error::sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "{} holds an interrupted restore: run `kura restore` again before starting",
                data_dir.display()
            ),
        ));
    }
    crate::replication::incoming::install_pending(data_dir)?;
    let db = Engine::new(DatabaseOptions::from_config(config, target_partitions));
    let node_state = NodeState::load(data_dir)?;
    let role = if config.cluster.is_standby() {
        Role::Standby {
            primary: config.cluster.standby_of.clone(),
        }
    } else {
        ReplicationHub::restart_role(&node_state)
    };
    let hub = ReplicationHub::new(
        data_dir.clone(),
        HubSettings::from_config(config),
        db.txns.clone(),
        node_state,
        role,
    );
    db.attach_replication(hub.clone());
    db.txns.attach_standby_acks(hub)?;
    let store = &config.data_store;
    let swap = SwapDir::open(
        &data_dir.join(SWAP_DIR),
        store.store_compression_mode == StoreCompressionMode::CompressionZstd,
    )?;
    let residency = Arc::new(Residency::new(
        store.store_memory_limit.get() as usize,
        swap,
    ));
    let source: Arc<dyn TableSource> = db.clone();
    residency.attach(Arc::downgrade(&source));
    db.txns.attach_residency(residency)?;
    let checkpoint_dir = data_dir.join(CHECKPOINT_DIR);
    remove_temporaries(&checkpoint_dir)?;
    remove_temporaries(&checkpoint_dir.join(DATA_DIR))?;
    let checkpoint_lsn = load_newest_checkpoint(&db, &checkpoint_dir)?;
    match checkpoint_lsn {
        Some(lsn) => tracing::info!(checkpoint_lsn = lsn, "checkpoint loaded"),
        None => tracing::info!("no checkpoint; replaying the whole log"),
    }
    let log_dir = data_dir.join(LOG_DIR);
    let mut report = replay_log(&db, &log_dir)?;
    report.checkpoint_lsn = checkpoint_lsn;
    let log = TxnLog::open(
        LogOptions {
            dir: log_dir,
            segment_size: store.log_segment_size.get(),
            compress: store.log_compression_mode == StoreCompressionMode::CompressionZstd,
            sync_interval: (store.log_write_mode > 0)
                .then(|| Duration::from_secs(u64::from(store.log_write_mode))),
        },
        db.txns.next_lsn(),
    )?;
    db.txns.attach_log(log)?;
    let checkpointer = Arc::new(Checkpointer::new(
        CheckpointOptions {
            dir: checkpoint_dir,
            compress: store.store_compression_mode == StoreCompressionMode::CompressionZstd,
            retention: config.checkpoint.retention_count as usize,
        },
        checkpoint_lsn,
    ));
    db.attach_checkpointer(checkpointer.clone());
    report.duration = started.elapsed();
    tracing::info!(
        checkpoint_lsn = report.checkpoint_lsn.unwrap_or(0),
        records_replayed = report.records_replayed,
        last_lsn = report.last_lsn,
        ms = report.duration.as_millis() as u64,
        "recovery complete"
    );
    Ok(Recovered {
        engine: db,
        checkpointer,
        lock,
        report,
    })
}

/// Removes the `.tmp` files a checkpoint interrupted by a crash left behind (no checkpoint
/// runs while recovery holds the directory lock).
fn remove_temporaries(dir: &Path) -> Result<()> {
    for (name, path) in dir_entries(dir)? {
        if name.ends_with(".tmp") {
            std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        }
    }
    Ok(())
}

/// A verified data file of one partition of a checkpoint, not yet installed.
struct LoadedPartition {
    table: u64,
    partition: PartitionKey,
    path: PathBuf,
    persisted: Persisted,
    next_serial: Serial,
}

/// Loads the newest checkpoint whose manifest and files are all intact into `db`; older
/// ones are tried when a newer one is damaged.
fn load_newest_checkpoint(db: &Engine, dir: &Path) -> Result<Option<Lsn>> {
    for (lsn, path) in list_manifests(dir)? {
        match read_checkpoint(dir, &path) {
            Ok((manifest, partitions)) => {
                install(db, &manifest, partitions)?;
                return Ok(Some(lsn));
            }
            Err(e) => tracing::warn!(
                checkpoint_lsn = lsn,
                "skipping damaged checkpoint, trying an older one: {e}"
            ),
        }
    }
    Ok(None)
}

fn read_checkpoint(dir: &Path, path: &Path) -> Result<(Manifest, Vec<LoadedPartition>)> {
    let manifest = Manifest::read(path)?;
    let mut partitions = Vec::with_capacity(manifest.partitions.len());
    for entry in &manifest.partitions {
        let path = dir.join(DATA_DIR).join(&entry.file);
        verify_partition_file(&path)?;
        partitions.push(LoadedPartition {
            table: entry.table,
            partition: entry.partition,
            path,
            persisted: Persisted {
                file: entry.file.clone(),
                lsn: manifest.lsn,
                rows: entry.rows,
                bytes: entry.bytes,
            },
            next_serial: entry.next_serial,
        });
    }
    Ok((manifest, partitions))
}

fn install(db: &Engine, manifest: &Manifest, partitions: Vec<LoadedPartition>) -> Result<()> {
    let security = &manifest.security;
    for stored in &security.databases {
        if db.database(&stored.name).is_none() {
            db.install_database(stored);
        }
    }
    for user in &security.users {
        db.directory.put_user(user)?;
    }
    for grant in &security.grants {
        db.directory
            .set_grant(&grant.user, &grant.database, Some(grant.privilege));
    }
    for stored in &manifest.tables {
        let database = db.existing_database(&stored.database)?;
        let def = stored.to_def()?;
        let defaults = database.plan_defaults(&def.columns)?;
        database.catalog.create_table(def, defaults)?;
    }
    for view in &manifest.views {
        db.existing_database(&view.database)?
            .catalog
            .create_view(view.to_def(), false)?;
    }
    db.reserve_table_ids(manifest.next_table_id);
    for loaded in partitions {
        let table = db.table_by_id(loaded.table).ok_or_else(|| {
            KuraError::internal(format!(
                "checkpoint {} has data for unknown table {}",
                manifest.lsn, loaded.table
            ))
        })?;
        let def = table.def();
        table.add_partitions(&[loaded.partition], 0)?;
        let partition = table.partition_by_key(&loaded.partition).ok_or_else(|| {
            KuraError::internal(format!(
                "checkpoint {} has no data partition {:?} of table \"{}\"",
                manifest.lsn, loaded.partition, def.name
            ))
        })?;
        let mut pieces = 0;
        read_partition_pieces(&loaded.path, |batch, serials| {
            partition.restore(&def, &batch, &serials, manifest.lsn, loaded.next_serial)?;
            if let Some(residency) = db.txns.residency() {
                residency.note_growth(slice_bytes(&batch));
            }
            pieces += 1;
            Ok(())
        })?;
        if pieces == 0 {
            partition.restore(
                &def,
                &datafusion::arrow::record_batch::RecordBatch::new_empty(def.schema().clone()),
                &[],
                manifest.lsn,
                loaded.next_serial,
            )?;
        }
        partition.set_persisted(loaded.persisted);
    }
    db.txns.restore_position(manifest.lsn);
    Ok(())
}

/// Replays every log record after the loaded checkpoint and cuts off a torn tail.
fn replay_log(db: &Engine, dir: &Path) -> Result<RecoveryReport> {
    let segments = list_segments(dir)?;
    let mut report = RecoveryReport {
        last_lsn: db.txns.next_lsn() - 1,
        ..RecoveryReport::default()
    };
    let start = db.txns.next_lsn();
    // Segments whose successor starts at or before `start` hold nothing to replay.
    let first_needed = segments
        .iter()
        .rposition(|(first, _)| *first <= start)
        .unwrap_or(0);
    let needed = &segments[first_needed.min(segments.len())..];
    if let Some((first, path)) = needed.first()
        && *first > start
    {
        return Err(KuraError::new(
            sqlstate::IO_ERROR,
            format!(
                "the transaction log starts at LSN {first} ({}) but recovery needs LSN {start}",
                path.display()
            ),
        )
        .with_hint("a log segment is missing; restore the data directory from a backup"));
    }
    for (i, (first, path)) in needed.iter().enumerate() {
        let expected = db.txns.next_lsn();
        if *first > expected {
            return Err(KuraError::new(
                sqlstate::IO_ERROR,
                format!(
                    "log segment {} starts at LSN {first}, but the previous one ends before LSN {expected}",
                    path.display()
                ),
            ));
        }
        let scan = scan_segment(path, *first, |scanned| {
            let lsn = scanned.lsn();
            if lsn < db.txns.next_lsn() {
                return Ok(());
            }
            let tables = |id| db.table_by_id(id);
            let complete = match scanned {
                Scanned::Record(LogRecord {
                    body: RecordBody::Commit(changes),
                    ..
                }) => {
                    db.txns.replay_changes(lsn, &changes, tables)?;
                    db.txns.replayed(lsn);
                    true
                }
                Scanned::Record(LogRecord {
                    body: RecordBody::Catalog(change),
                    ..
                }) => {
                    db.txns
                        .replay_catalog(lsn, || db.apply_catalog_change(&change, lsn))?;
                    true
                }
                Scanned::CommitPart { changes, last, .. } => {
                    db.txns.replay_changes(lsn, &changes, tables)?;
                    if last {
                        db.txns.replayed(lsn);
                    }
                    last
                }
            };
            report.records_replayed += u64::from(complete);
            Ok(())
        })?;
        if let Some((damage, at_lsn)) = &scan.damage {
            let newest = i + 1 == needed.len();
            if !newest {
                return Err(KuraError::new(
                    sqlstate::IO_ERROR,
                    format!(
                        "log segment {} is damaged at byte offset {} (LSN {at_lsn}): {damage}; newer segments exist",
                        path.display(),
                        scan.valid_len
                    ),
                )
                .with_hint(format!(
                    "run `kura check --data-dir {} --repair` to cut the log at the damage",
                    dir.parent().unwrap_or(dir).display()
                )));
            }
            truncate_tail(path, &scan.valid_len, damage, *at_lsn)?;
            report.truncated = Some((path.clone(), scan.valid_len));
        }
    }
    report.last_lsn = db.txns.next_lsn() - 1;
    Ok(report)
}

/// Cuts a damaged newest segment back to its last whole record.
pub fn truncate_tail(path: &Path, valid_len: &u64, damage: &Damage, at_lsn: Lsn) -> Result<()> {
    tracing::warn!(
        segment = %path.display(),
        offset = valid_len,
        lsn = at_lsn,
        "transaction log ends in a damaged record ({damage}); truncating it"
    );
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    file.set_len(*valid_len)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))
}
