//! Continuous log archiving (GridDB's automatic log backup, `--mode auto`): after an `auto`
//! set's full backup, every log record is copied into `<set>/archive/` as soon as the log
//! makes it durable, so a restore reaches the last commit.
//!
//! The archive is a sequence of segment images named after their first LSN: the one being
//! written is plain (`<lsn>.wal`, fsynced after every copy), the others sealed — compressed
//! (`<lsn>.wal.zst`) and listed with their digests in `archive_index.json`. Which set is
//! archived is kept in `<data>/backup_archive.json`, so archiving resumes after a restart.
//!
//! Invariants: the archive holds the frames `first..next` without gaps; the log hold is at
//! `next`, so the records not archived yet are never removed by a checkpoint; a sealed file
//! is listed in the index before its plain image is removed, and a plain image already
//! covered by the index is removed when the archive is reopened.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::files::write_compressed;
use super::info::{BackupInfo, FileEntry};
use super::names::{Level, Mode};
use super::set::STORED_SUFFIX;
use crate::checkpoint::manifest::write_atomically;
use crate::error::{KuraError, Result, sqlstate};
use crate::query::Engine;
use crate::wal::frames::segment_frames;
use crate::wal::holds::LogHold;
use crate::wal::segment::{
    SEGMENT_HEADER_LEN, header_bytes, io_error, list_segments, segment_name,
};
use crate::wal::tail::LogTail;
use crate::wal::{Lsn, TxnLog, sync_dir};

pub const ARCHIVE_DIR: &str = "archive";
pub const INDEX_FILE: &str = "archive_index.json";
/// In the data directory: the set being archived into.
pub const STATE_FILE: &str = "backup_archive.json";

/// The sealed files of an archive.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArchiveIndex {
    pub segments: Vec<FileEntry>,
}

impl ArchiveIndex {
    pub fn load(dir: &Path) -> Result<ArchiveIndex> {
        let path = dir.join(INDEX_FILE);
        if !path.exists() {
            return Ok(ArchiveIndex::default());
        }
        let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| super::info::damaged(&path, &e.to_string()))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| KuraError::internal(format!("cannot encode the archive index: {e}")))?;
        write_atomically(&dir.join(INDEX_FILE), &bytes)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ArchiveState {
    set: String,
}

/// Stops archiving at the next start (after `auto_stop`).
pub fn forget(data_dir: &Path) -> Result<()> {
    let path = data_dir.join(STATE_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => sync_dir(data_dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(&path, e)),
    }
}

/// What `kura stat` and the views show of the archiver.
#[derive(Debug, Clone)]
pub struct ArchiveStatus {
    pub set: String,
    /// The next LSN to archive: everything before it is in the archive.
    pub next_lsn: Lsn,
    pub sealed_files: usize,
    pub error: Option<String>,
    /// When records were last archived (this run).
    pub last_archived: Option<chrono::DateTime<chrono::Utc>>,
    /// Copies that failed (this run).
    pub failures: u64,
    pub last_failure: Option<chrono::DateTime<chrono::Utc>>,
}

/// The archive being written.
#[derive(Debug)]
struct ArchiveWriter {
    dir: PathBuf,
    log_dir: PathBuf,
    segment_size: u64,
    next: Lsn,
    active: Option<Active>,
    index: ArchiveIndex,
    tail: Option<LogTail>,
    stopped: bool,
}

#[derive(Debug)]
struct Active {
    first: Lsn,
    path: PathBuf,
    file: File,
    len: u64,
}

impl ArchiveWriter {
    /// Opens the archive in `dir`, continuing after what it holds (`start` when empty).
    fn open(dir: PathBuf, log_dir: PathBuf, segment_size: u64, start: Lsn) -> Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let index = ArchiveIndex::load(&dir)?;
        let sealed_next = index
            .segments
            .last()
            .and_then(|s| s.lsns)
            .map(|(_, last)| last + 1);
        let mut next = sealed_next.unwrap_or(start);
        let mut active = None;
        for (first, path) in list_segments(&dir)? {
            if sealed_next.is_some_and(|n| first < n) {
                // Sealed and listed before a stop could remove the plain image.
                std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
                continue;
            }
            if first != next || active.is_some() {
                return Err(KuraError::new(
                    sqlstate::DATA_CORRUPTED,
                    format!(
                        "archive {} has a file starting at LSN {first} where LSN {next} was expected",
                        dir.display()
                    ),
                ));
            }
            let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
            let frames =
                segment_frames(&bytes, first).map_err(|why| super::info::damaged(&path, &why))?;
            let mut valid = SEGMENT_HEADER_LEN as usize;
            let mut last = None;
            for frame in frames {
                if frame.lsn != last.map_or(first, |l: Lsn| l + 1) {
                    break;
                }
                last = Some(frame.lsn);
                valid += frame.bytes.len();
            }
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            // A torn tail from a crash is cut; the log still holds those records.
            file.set_len(valid as u64).map_err(|e| io_error(&path, e))?;
            file.sync_all().map_err(|e| io_error(&path, e))?;
            next = last.map_or(first, |l| l + 1);
            let mut file = file;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))
                .map_err(|e| io_error(&path, e))?;
            active = Some(Active {
                first,
                path,
                file,
                len: valid as u64,
            });
        }
        Ok(ArchiveWriter {
            dir,
            log_dir,
            segment_size,
            next,
            active,
            index,
            tail: None,
            stopped: false,
        })
    }

    /// Archives the frames from `next` through `through` (which the log has made durable).
    fn copy_through(&mut self, through: Lsn) -> Result<()> {
        if self.stopped || self.next > through {
            return Ok(());
        }
        let mut tail = match self.tail.take() {
            Some(tail) => tail,
            None => LogTail::open(&self.log_dir, self.next)?.ok_or_else(|| {
                KuraError::new(
                    sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!(
                        "the transaction log no longer holds LSN {}: the archive has a gap; \
                         take a new auto backup",
                        self.next
                    ),
                )
            })?,
        };
        let mut frames = Vec::new();
        while tail.next_lsn() <= through {
            frames.clear();
            tail.read(through, 4 << 20, &mut frames)?;
            self.append(&frames)?;
            self.next = tail.next_lsn();
        }
        self.tail = Some(tail);
        if let Some(active) = &self.active {
            active
                .file
                .sync_data()
                .map_err(|e| io_error(&active.path, e))?;
            if active.len >= self.segment_size {
                self.seal()?;
            }
        }
        Ok(())
    }

    fn append(&mut self, frames: &[u8]) -> Result<()> {
        if self.active.is_none() {
            let path = self.dir.join(segment_name(self.next));
            let mut file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            let header = header_bytes(self.next);
            file.write_all(&header).map_err(|e| io_error(&path, e))?;
            sync_dir(&self.dir)?;
            self.active = Some(Active {
                first: self.next,
                path,
                file,
                len: header.len() as u64,
            });
        }
        if let Some(active) = &mut self.active {
            active
                .file
                .write_all(frames)
                .map_err(|e| io_error(&active.path, e))?;
            active.len += frames.len() as u64;
        }
        Ok(())
    }

    /// Compresses the plain image into a sealed file and lists it.
    fn seal(&mut self) -> Result<()> {
        let Some(active) = self.active.take() else {
            return Ok(());
        };
        let image = File::open(&active.path).map_err(|e| io_error(&active.path, e))?;
        let name = format!("{}{STORED_SUFFIX}", segment_name(active.first));
        let mut entry = write_compressed(&self.dir, &name, image, &AtomicU64::new(0))?;
        entry.lsns = Some((active.first, self.next - 1));
        self.index.segments.push(entry);
        self.index.save(&self.dir)?;
        std::fs::remove_file(&active.path).map_err(|e| io_error(&active.path, e))?;
        sync_dir(&self.dir)
    }
}

/// The archiver of one `auto` set.
#[derive(Debug)]
pub struct Archiver {
    set: String,
    writer: Mutex<ArchiveWriter>,
    hold: LogHold,
    log: Arc<TxnLog>,
    error: Mutex<Option<String>>,
    record: Mutex<CopyRecord>,
    stop: watch::Sender<bool>,
}

/// When copies succeeded and failed.
#[derive(Debug, Default)]
struct CopyRecord {
    last_archived: Option<chrono::DateTime<chrono::Utc>>,
    failures: u64,
    last_failure: Option<chrono::DateTime<chrono::Utc>>,
}

impl Archiver {
    /// Starts archiving into the `auto` set whose full backup `info` just completed.
    pub fn start(
        engine: &Arc<Engine>,
        backup_dir: &Path,
        data_dir: &Path,
        info: &BackupInfo,
    ) -> Result<Arc<Archiver>> {
        let state = serde_json::to_vec(&ArchiveState {
            set: info.set.clone(),
        })
        .map_err(|e| KuraError::internal(format!("cannot encode the archive state: {e}")))?;
        let archiver = Archiver::open(engine, backup_dir, &info.set, info.end_lsn + 1)?;
        write_atomically(&data_dir.join(STATE_FILE), &state)?;
        tracing::info!(set = %info.set, from = info.end_lsn + 1, "log archiving begins");
        Ok(archiver)
    }

    /// The archiver a previous run left running, if any.
    pub fn resume(
        engine: &Arc<Engine>,
        backup_dir: &Path,
        data_dir: &Path,
    ) -> Result<Option<Arc<Archiver>>> {
        let path = data_dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
        let state: ArchiveState = serde_json::from_slice(&bytes)
            .map_err(|e| KuraError::internal(format!("{}: {e}", path.display())))?;
        super::names::check_set_name(&state.set)?;
        let base_dir = backup_dir
            .join(&state.set)
            .join(Level::BASE.data_name(&state.set));
        let base = BackupInfo::load(&base_dir)?;
        if base.mode != Mode::Auto {
            return Err(KuraError::internal(format!(
                "{} names backup {}, which is not an auto backup",
                path.display(),
                state.set
            )));
        }
        let archiver = Archiver::open(engine, backup_dir, &state.set, base.end_lsn + 1)?;
        tracing::info!(set = %state.set, next = archiver.writer.lock().next, "log archiving resumes");
        Ok(Some(archiver))
    }

    fn open(engine: &Arc<Engine>, backup_dir: &Path, set: &str, start: Lsn) -> Result<Arc<Self>> {
        let log = engine
            .txns
            .log()
            .cloned()
            .ok_or_else(|| KuraError::unsupported("archiving needs a transaction log"))?;
        let checkpointer = engine
            .checkpointer()
            .ok_or_else(|| KuraError::unsupported("archiving needs a data directory"))?;
        let writer = ArchiveWriter::open(
            backup_dir.join(set).join(ARCHIVE_DIR),
            log.options().dir.clone(),
            log.options().segment_size,
            start,
        )?;
        let hold = checkpointer.log_holds().hold(writer.next);
        Ok(Arc::new(Archiver {
            set: set.to_string(),
            writer: Mutex::new(writer),
            hold,
            log,
            error: Mutex::new(None),
            record: Mutex::new(CopyRecord::default()),
            stop: watch::Sender::new(false),
        }))
    }

    pub fn set(&self) -> &str {
        &self.set
    }

    pub fn status(&self) -> ArchiveStatus {
        let writer = self.writer.lock();
        let record = self.record.lock();
        ArchiveStatus {
            set: self.set.clone(),
            next_lsn: writer.next,
            sealed_files: writer.index.segments.len(),
            error: self.error.lock().clone(),
            last_archived: record.last_archived,
            failures: record.failures,
            last_failure: record.last_failure,
        }
    }

    /// Copies what is durable into the archive as the log makes it durable, until stopped.
    pub async fn run(self: Arc<Self>) {
        let mut durable = self.log.subscribe_durable();
        let mut stop = self.stop.subscribe();
        loop {
            if *stop.borrow() {
                return;
            }
            let through = durable.borrow().lsn;
            self.copy_through(through).await;
            tokio::select! {
                changed = durable.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = stop.changed() => {}
            }
        }
    }

    async fn copy_through(self: &Arc<Self>, through: Lsn) {
        let me = self.clone();
        let copied = tokio::task::spawn_blocking(move || {
            let mut writer = me.writer.lock();
            let before = writer.next;
            let result = writer.copy_through(through);
            me.hold.advance(writer.next);
            result.map(|()| writer.next > before)
        })
        .await;
        let now = chrono::Utc::now();
        let error = match copied {
            Ok(Ok(progressed)) => {
                if progressed {
                    self.record.lock().last_archived = Some(now);
                }
                None
            }
            Ok(Err(e)) => Some(e.message),
            Err(e) => Some(format!("archiver task failed: {e}")),
        };
        if error.is_some() {
            let mut record = self.record.lock();
            record.failures += 1;
            record.last_failure = Some(now);
        }
        if let Some(why) = &error
            && self.error.lock().as_deref() != Some(why)
        {
            tracing::error!(set = %self.set, "log archiving failed: {why}");
        }
        *self.error.lock() = error;
    }

    /// Archives everything written so far (at shutdown, once appends are refused).
    pub async fn flush(self: &Arc<Self>) {
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || log.sync_now()).await {
            Ok(Ok(durable)) => self.copy_through(durable).await,
            Ok(Err(e)) => {
                tracing::error!(set = %self.set, "cannot archive the log's end: {}", e.message)
            }
            Err(e) => tracing::error!(set = %self.set, "cannot archive the log's end: {e}"),
        }
    }

    /// Stops archiving: copies what is durable, seals the plain image.
    pub async fn stop(self: &Arc<Self>) {
        self.stop.send_replace(true);
        let through = self.log.durable_lsn();
        self.copy_through(through).await;
        let me = self.clone();
        let sealed = tokio::task::spawn_blocking(move || {
            let mut writer = me.writer.lock();
            writer.stopped = true;
            writer.seal()
        })
        .await;
        if let Ok(Err(e)) = sealed {
            tracing::error!(set = %self.set, "cannot seal the archive: {}", e.message);
        }
        tracing::info!(set = %self.set, "log archiving stopped");
    }
}
