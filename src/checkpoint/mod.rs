//! Checkpoints: a consistent image of every data partition and of the catalog as of one LSN,
//! written to `<data>/checkpoint/` without blocking writers.
//!
//! A checkpoint pauses commits only long enough to take an MVCC snapshot at the last applied
//! commit, capture the catalog and start a new log segment; it then reads that snapshot while
//! commits continue. Partitions unchanged since the file that holds them are not rewritten.
//! The manifest is written last; older checkpoints beyond `/checkpoint/retentionCount` and
//! the log segments only they needed are removed afterwards, except those a standby still
//! needs (`/sync/keepLogInterval`) or a backup or the log archiver has not copied yet.
//!
//! Invariants: a manifest exists only when every file it names is complete and fsynced; no
//! file a retained manifest names is removed; log segments are removed only when every
//! retained checkpoint is newer than all their records and no connected or recently seen
//! standby still has to receive them.

pub mod file;
pub mod manifest;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::Result;
use crate::query::Engine;
use crate::storage::partition::Persisted;
use crate::storage::stored::{StoredTable, StoredView};
use crate::wal::StoredDatabase;
use crate::wal::holds::LogHolds;
use crate::wal::record::{FORMAT_VERSION, Lsn};
use crate::wal::segment::io_error;
use crate::wal::{dir_entries, sync_dir};
use manifest::{Manifest, PartitionEntry, SecurityImage, list_manifests, temporary_name};

pub const DATA_DIR: &str = "data";

#[derive(Debug, Clone)]
pub struct CheckpointOptions {
    /// `<data>/checkpoint`.
    pub dir: PathBuf,
    pub compress: bool,
    /// Completed checkpoints kept, newest first.
    pub retention: usize,
}

/// Checkpoints since the server started (for `kura stat`).
#[derive(Debug, Clone, Default)]
pub struct CheckpointHistory {
    pub completed: u64,
    pub failed: u64,
    pub total_duration: Duration,
    pub bytes_written: u64,
    pub last: Option<CheckpointStats>,
    pub last_end: Option<chrono::DateTime<chrono::Utc>>,
}

/// What one checkpoint did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    pub lsn: Lsn,
    pub partitions_written: usize,
    pub partitions_reused: usize,
    pub rows_written: u64,
    pub bytes_written: u64,
    pub segments_removed: usize,
    pub checkpoints_removed: usize,
    pub duration: Duration,
}

#[derive(Debug)]
pub struct Checkpointer {
    options: CheckpointOptions,
    /// Held for the whole of a checkpoint, so two never run at once.
    running: Mutex<Option<Lsn>>,
    /// Backups and the log archiver still copying the log.
    log_holds: LogHolds,
    history: Mutex<CheckpointHistory>,
}

impl Checkpointer {
    /// `last` is the LSN of the newest checkpoint already on disk (the one recovery loaded).
    pub fn new(options: CheckpointOptions, last: Option<Lsn>) -> Checkpointer {
        Checkpointer {
            options,
            running: Mutex::new(last),
            log_holds: LogHolds::default(),
            history: Mutex::new(CheckpointHistory::default()),
        }
    }

    pub fn history(&self) -> CheckpointHistory {
        self.history.lock().clone()
    }

    /// Who keeps log segments from removal besides standbys.
    pub fn log_holds(&self) -> &LogHolds {
        &self.log_holds
    }

    pub fn options(&self) -> &CheckpointOptions {
        &self.options
    }

    /// Takes a checkpoint of every database now (blocking: run it off the async runtime).
    pub fn run(&self, engine: &Engine) -> Result<CheckpointStats> {
        let outcome = self.checkpoint(engine);
        let mut history = self.history.lock();
        match &outcome {
            Ok(stats) => {
                history.completed += 1;
                history.total_duration += stats.duration;
                history.bytes_written += stats.bytes_written;
                history.last = Some(stats.clone());
                history.last_end = Some(chrono::Utc::now());
            }
            Err(_) => history.failed += 1,
        }
        outcome
    }

    fn checkpoint(&self, engine: &Engine) -> Result<CheckpointStats> {
        let mut last = self.running.lock();
        let started = Instant::now();
        let log = engine.txns.log().cloned();
        let (snapshot, captured) = engine.txns.consistent_snapshot(|applied| {
            // The checkpoint holds the commits made up to now, by the clock commits use.
            let taken_at = engine.txns.clock.now();
            let mut tables = Vec::new();
            let mut views = Vec::new();
            let mut databases = Vec::new();
            for db in engine.databases() {
                for t in db.catalog.tables() {
                    let partitions = t.partitions();
                    let serials: Vec<_> = partitions.iter().map(|p| p.next_serial()).collect();
                    tables.push((db.name.clone(), partitions, t.def(), serials));
                }
                views.extend(
                    db.catalog
                        .views()
                        .iter()
                        .map(|v| StoredView::from_def(v, &db.name)),
                );
                databases.push(StoredDatabase {
                    name: db.name.clone(),
                    id: db.id,
                });
            }
            let security = SecurityImage {
                databases,
                users: engine.directory.stored_users(),
                grants: engine.directory.grants(),
            };
            let next_table_id = engine.next_table_id();
            let rotated = match &log {
                Some(log) if *last != Some(applied) => log.rotate(applied + 1),
                _ => Ok(()),
            };
            (tables, views, security, next_table_id, rotated, taken_at)
        });
        let (tables, views, security, next_table_id, rotated, taken_at) = captured;
        rotated?;
        let lsn = snapshot.ts();
        let mut stats = CheckpointStats {
            lsn,
            ..CheckpointStats::default()
        };
        if *last == Some(lsn) {
            stats.duration = started.elapsed();
            return Ok(stats);
        }
        if let Some(log) = &log {
            log.sync_now()?;
        }
        let data_dir = self.options.dir.join(DATA_DIR);
        std::fs::create_dir_all(&data_dir).map_err(|e| io_error(&data_dir, e))?;
        let mut entries = Vec::new();
        let mut stored_tables = Vec::with_capacity(tables.len());
        for (database, partitions, def, next_serials) in &tables {
            stored_tables.push(StoredTable::from_def(def, database)?);
            for (partition, next_serial) in partitions.iter().zip(next_serials) {
                let persisted = match partition.unchanged_file() {
                    Some(persisted) if data_dir.join(&persisted.file).exists() => {
                        stats.partitions_reused += 1;
                        persisted
                    }
                    _ => {
                        let key = partition.key();
                        let file = format!(
                            "t{}_i{}_b{}_{lsn:020}.kpart",
                            def.id, key.interval, key.bucket
                        );
                        let path = data_dir.join(&file);
                        let tmp = temporary_name(&path);
                        let written = file::write_partition_file(
                            &tmp,
                            def.schema(),
                            partition.visible_rows(def.clone(), lsn),
                            self.options.compress,
                        )?;
                        std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
                        stats.partitions_written += 1;
                        stats.rows_written += written.rows;
                        stats.bytes_written += written.bytes;
                        Persisted {
                            file,
                            lsn,
                            rows: written.rows,
                            bytes: written.bytes,
                        }
                    }
                };
                entries.push((
                    partition.clone(),
                    PartitionEntry {
                        table: def.id,
                        partition: partition.key(),
                        file: persisted.file.clone(),
                        rows: persisted.rows,
                        bytes: persisted.bytes,
                        next_serial: *next_serial,
                    },
                    persisted,
                ));
            }
        }
        sync_dir(&data_dir)?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            lsn,
            created: taken_at.to_rfc3339(),
            next_table_id,
            tables: stored_tables,
            views,
            security,
            partitions: entries.iter().map(|(_, e, _)| e.clone()).collect(),
        };
        manifest.write(&self.options.dir)?;
        drop(snapshot);
        for (partition, _, persisted) in entries {
            partition.set_persisted(persisted);
        }
        *last = Some(lsn);
        let (checkpoints_removed, oldest_kept) = self.remove_old_checkpoints()?;
        stats.checkpoints_removed = checkpoints_removed;
        if let (Some(log), Some(oldest)) = (&log, oldest_kept) {
            // Standbys that are connected or were seen within keepLogInterval resume from
            // the log, so the segments they still need stay too.
            // So do backups and the log archiver, from the first record they have not copied.
            let standbys_need = engine.replication().and_then(|hub| hub.log_needed_from());
            let needed = [standbys_need, self.log_holds.oldest()];
            let removable = needed
                .into_iter()
                .flatten()
                .fold(oldest, |removable, next| {
                    removable.min(next.saturating_sub(1))
                });
            stats.segments_removed = log.remove_segments_through(removable)?;
        }
        stats.duration = started.elapsed();
        tracing::info!(
            lsn,
            written = stats.partitions_written,
            reused = stats.partitions_reused,
            rows = stats.rows_written,
            bytes = stats.bytes_written,
            removed_segments = stats.segments_removed,
            ms = stats.duration.as_millis() as u64,
            "checkpoint complete"
        );
        Ok(stats)
    }

    /// Keeps the newest `retention` manifests and the data files they name; returns how many
    /// checkpoints were removed and the LSN of the oldest one kept.
    fn remove_old_checkpoints(&self) -> Result<(usize, Option<Lsn>)> {
        let dir = &self.options.dir;
        let manifests = list_manifests(dir)?;
        let keep = self.options.retention.max(1).min(manifests.len());
        let (kept, old) = manifests.split_at(keep);
        let mut referenced = HashSet::new();
        for (_, path) in kept {
            match Manifest::read(path) {
                Ok(manifest) => referenced.extend(manifest.partitions.into_iter().map(|p| p.file)),
                Err(e) => {
                    tracing::warn!("keeping every checkpoint file: {e}");
                    return Ok((0, None));
                }
            }
        }
        for (_, path) in old {
            std::fs::remove_file(path).map_err(|e| io_error(path, e))?;
        }
        remove_unreferenced(&dir.join(DATA_DIR), &referenced)?;
        sync_dir(dir)?;
        Ok((old.len(), kept.last().map(|(lsn, _)| *lsn)))
    }

    /// Takes a checkpoint every `interval` until the runtime stops.
    pub async fn run_periodically(self: Arc<Self>, engine: Arc<Engine>, interval: Duration) {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let checkpointer = self.clone();
            let engine = engine.clone();
            match tokio::task::spawn_blocking(move || checkpointer.run(&engine)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!("checkpoint failed: {e}"),
                Err(e) => tracing::error!("checkpoint task failed: {e}"),
            }
        }
    }
}

fn remove_unreferenced(data_dir: &Path, referenced: &HashSet<String>) -> Result<()> {
    for (name, path) in dir_entries(data_dir)? {
        let ours = name.ends_with(".kpart") || name.ends_with(".kpart.tmp");
        if ours && !referenced.contains(&name) {
            std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        }
    }
    sync_dir(data_dir)
}
