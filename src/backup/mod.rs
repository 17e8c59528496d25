//! Online backups, their verification and restore (docs/OPERATIONS.md): GridDB's gs_backup,
//! gs_backuplist and gs_restore, built in.
//!
//! A backup set lives in `<backupPath>/<NAME>/`. Each backup taken into it is a directory
//! (`NAME_lv0`, `NAME_lv1_NNN_MMM`, see [`names`]) holding a fresh checkpoint's manifest and
//! the partition files it needs that earlier backups of the set do not already hold, the log
//! from the checkpoint to the backup's end, and an information file with every file's digest
//! ([`info`]). An `auto` set also receives every log record as it becomes durable
//! (`archive/`, [`archive`]), so a restore reaches the last commit, or any earlier one.
//!
//! This module owns the server side: one backup at a time, its progress (shown by
//! `pg_stat_progress_basebackup` and `kura backup status`), the archiver's life. Listing,
//! verifying and restoring read the backup directory directly and work with the server
//! stopped ([`set`], [`verify`], [`restore`]).
//!
//! Invariants: a backup holds the log from its checkpoint on until it has copied it, and
//! the archiver from the first record it has not archived, so checkpoints never remove what
//! they still need; a backup's information file says P until every file is written and
//! fsynced, then OK, or NG with the reason.

pub mod archive;
pub mod command;
pub mod create;
pub mod files;
pub mod info;
pub mod logcopy;
pub mod names;
pub mod restore;
pub mod set;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{KuraError, Result, sqlstate};
use crate::query::Engine;
use archive::Archiver;
use info::BackupInfo;
use names::Mode;

/// Where a running backup is (PostgreSQL's pg_stat_progress_basebackup phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Initializing = 0,
    Checkpoint = 1,
    DataFiles = 2,
    Log = 3,
}

impl Phase {
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Initializing => "initializing",
            Phase::Checkpoint => "waiting for checkpoint to finish",
            Phase::DataFiles => "streaming database files",
            Phase::Log => "transferring wal files",
        }
    }

    fn from_u8(value: u8) -> Phase {
        match value {
            1 => Phase::Checkpoint,
            2 => Phase::DataFiles,
            3 => Phase::Log,
            _ => Phase::Initializing,
        }
    }
}

/// The running backup's progress.
#[derive(Debug)]
pub struct Progress {
    pub set: String,
    pub data: Mutex<String>,
    pub mode: Mode,
    /// The backend that asked for it.
    pub pid: i32,
    /// The data directory of the server taking it.
    pub node: String,
    pub started: chrono::DateTime<chrono::Utc>,
    phase: AtomicU8,
    /// Bytes to read (0 until known).
    pub total: AtomicU64,
    /// Bytes read so far.
    pub done: AtomicU64,
}

impl Progress {
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }
}

/// A snapshot of the server's backup state, for `kura stat` and the views.
#[derive(Debug, Clone, Default)]
pub struct BackupStatus {
    /// Backups finished (OK) since the server started (GridDB's backupOperation).
    pub completed: u64,
    pub failed: u64,
    pub running: Option<RunningBackup>,
    /// The newest backup this server finished, OK or NG.
    pub last: Option<BackupInfo>,
    /// The set whose log is being archived, and how far.
    pub archive: Option<archive::ArchiveStatus>,
    /// Why archiving could not resume at start.
    pub archive_error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunningBackup {
    pub set: String,
    pub data: String,
    pub mode: Mode,
    pub pid: i32,
    pub phase: Phase,
    pub started: chrono::DateTime<chrono::Utc>,
    pub total: u64,
    pub done: u64,
}

/// The server's backups.
#[derive(Debug)]
pub struct BackupManager {
    /// `/dataStore/backupPath`, resolved.
    pub dir: PathBuf,
    data_dir: PathBuf,
    running: Mutex<Option<Arc<Progress>>>,
    last: Mutex<Option<BackupInfo>>,
    completed: AtomicU64,
    failed: AtomicU64,
    archiver: Mutex<Option<Arc<Archiver>>>,
    /// Why archiving into the set named in the data directory could not resume.
    archive_error: Mutex<Option<String>>,
}

impl BackupManager {
    pub fn new(dir: PathBuf, data_dir: PathBuf) -> Arc<BackupManager> {
        Arc::new(BackupManager {
            dir,
            data_dir,
            running: Mutex::new(None),
            last: Mutex::new(None),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            archiver: Mutex::new(None),
            archive_error: Mutex::new(None),
        })
    }

    /// At start: marks backups left in progress by a previous run NG, and resumes archiving
    /// into the set that was being archived (its log hold taken before any checkpoint).
    pub fn recover(self: &Arc<Self>, engine: &Arc<Engine>) -> Result<()> {
        set::mark_interrupted(&self.dir, &self.node())?;
        match Archiver::resume(engine, &self.dir, &self.data_dir) {
            Ok(archiver) => *self.archiver.lock() = archiver,
            // The server runs on: the archive is the backup disk's problem, shown by
            // `kura stat` and pg_stat_archiver until an auto backup starts a new one.
            Err(e) => {
                let why = format!("log archiving cannot resume: {}", e.message);
                tracing::error!("{why}");
                *self.archive_error.lock() = Some(why);
            }
        }
        Ok(())
    }

    /// This server's data directory as backups record it.
    fn node(&self) -> String {
        std::path::absolute(&self.data_dir)
            .unwrap_or_else(|_| self.data_dir.clone())
            .display()
            .to_string()
    }

    /// Runs the archiver, if there is one, until the server stops.
    pub fn start_archiving(&self) {
        if let Some(archiver) = self.archiver.lock().clone() {
            tokio::spawn(archiver.run());
        }
    }

    /// Copies the log up to its end into the archive (at shutdown, after the last append).
    pub async fn flush_archive(&self) {
        let archiver = self.archiver.lock().clone();
        if let Some(archiver) = archiver {
            archiver.flush().await;
        }
    }

    /// Takes a backup of kind `mode` into set `set` (or, for `auto_stop`, stops archiving
    /// into it); `pid` is the asking backend's.
    pub async fn backup(
        self: &Arc<Self>,
        engine: &Arc<Engine>,
        set: &str,
        mode: Mode,
        pid: i32,
    ) -> Result<BackupInfo> {
        names::check_set_name(set)?;
        if mode == Mode::AutoStop {
            return self.stop_archiving(set).await;
        }
        let progress = Arc::new(Progress {
            set: set.to_string(),
            data: Mutex::new(String::new()),
            mode,
            pid,
            node: self.node(),
            started: engine.txns.clock.now(),
            phase: AtomicU8::new(Phase::Initializing as u8),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
        });
        {
            let mut running = self.running.lock();
            if let Some(other) = running.as_ref() {
                return Err(KuraError::new(
                    sqlstate::OBJECT_IN_USE,
                    format!(
                        "backup {} is in progress; one backup runs at a time",
                        other.set
                    ),
                ));
            }
            *running = Some(progress.clone());
        }
        let job = {
            let engine = engine.clone();
            let dir = self.dir.clone();
            let progress = progress.clone();
            tokio::task::spawn_blocking(move || create::take_backup(&engine, &dir, &progress))
        };
        let outcome = job.await.unwrap_or_else(|e| {
            Err(create::Failure::from(KuraError::internal(format!(
                "backup task failed: {e}"
            ))))
        });
        *self.running.lock() = None;
        let (info, result) = match outcome {
            Ok((info, hold)) => (Some(info.clone()), Ok((info, hold))),
            Err(failure) => (failure.info.map(|info| *info), Err(failure.error)),
        };
        match &result {
            Ok(_) => self.completed.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
        if let Some(info) = info {
            *self.last.lock() = Some(info);
        }
        let (info, backup_hold) = result?;
        if mode == Mode::Auto {
            // The new archiver holds the log from the backup's end before the backup lets go;
            // the previous one stops only once the new one runs.
            let archiver = Archiver::start(engine, &self.dir, &self.data_dir, &info)?;
            drop(backup_hold);
            let previous = self.archiver.lock().replace(archiver.clone());
            *self.archive_error.lock() = None;
            tokio::spawn(archiver.run());
            if let Some(previous) = previous {
                previous.stop().await;
            }
        }
        Ok(info)
    }

    async fn stop_archiving(&self, set: &str) -> Result<BackupInfo> {
        let archiver = {
            let mut current = self.archiver.lock();
            match current.as_ref() {
                Some(archiver) if archiver.set() == set => current.take(),
                _ => None,
            }
        };
        let Some(archiver) = archiver else {
            return Err(KuraError::new(
                sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("the log is not being archived into backup {set}"),
            ));
        };
        archiver.stop().await;
        archive::forget(&self.data_dir)?;
        let base = self.dir.join(set).join(names::Level::BASE.data_name(set));
        BackupInfo::load(&base)
    }

    pub fn status(&self) -> BackupStatus {
        let running = self.running.lock().as_ref().map(|p| RunningBackup {
            set: p.set.clone(),
            data: p.data.lock().clone(),
            mode: p.mode,
            pid: p.pid,
            phase: p.phase(),
            started: p.started,
            total: p.total.load(Ordering::Relaxed),
            done: p.done.load(Ordering::Relaxed),
        });
        BackupStatus {
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            running,
            last: self.last.lock().clone(),
            archive: self.archiver.lock().as_ref().map(|a| a.status()),
            archive_error: self.archive_error.lock().clone(),
        }
    }
}
