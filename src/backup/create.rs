//! Taking one backup while the server runs: a fresh checkpoint (commits pause only for its
//! snapshot), its manifest and the partition files the set does not already hold, then the
//! log from the checkpoint to the last record written when the files are done.
//!
//! Invariants: the log from the checkpoint on is held from before the checkpoint is taken
//! until it is copied; partition files are opened before they are copied, so a checkpoint
//! that retires them meanwhile cannot cut a copy short; the information file says P until
//! everything is written and fsynced.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::files::write_compressed;
use super::info::{BackupInfo, Status};
use super::logcopy::copy_log;
use super::names::{Level, Mode};
use super::set::{
    DATA_PREFIX, MANIFEST_PREFIX, STORED_SUFFIX, chain, list_data, stored_partition_files,
};
use super::{Phase, Progress};
use crate::checkpoint::DATA_DIR;
use crate::checkpoint::manifest::{Manifest, list_manifests};
use crate::error::{KuraError, Result, sqlstate};
use crate::query::Engine;
use crate::wal::holds::LogHold;
use crate::wal::segment::io_error;

/// A backup that did not complete: the error, and its information file as saved (NG).
#[derive(Debug)]
pub struct Failure {
    pub info: Option<Box<BackupInfo>>,
    pub error: KuraError,
}

impl From<KuraError> for Failure {
    fn from(error: KuraError) -> Failure {
        Failure { info: None, error }
    }
}

/// Takes the backup `progress` describes into `backup_dir` (blocking). The hold returned
/// keeps the log after the backup's end until the caller drops it (an `auto` backup's
/// archiver takes its own hold first, so no record is lost between the two).
pub fn take_backup(
    engine: &Arc<Engine>,
    backup_dir: &Path,
    progress: &Progress,
) -> std::result::Result<(BackupInfo, LogHold), Failure> {
    let set_dir = backup_dir.join(&progress.set);
    let (level, previous) = place(&set_dir, &progress.set, progress.mode)?;
    let mut info = BackupInfo::new(&progress.set, level, progress.mode, now_text(engine));
    info.previous = previous;
    *progress.data.lock() = info.data.clone();
    let data_dir = set_dir.join(&info.data);
    std::fs::create_dir_all(&data_dir).map_err(|e| io_error(&data_dir, e))?;
    info.save(&data_dir)?;
    tracing::info!(backup = %info.data, mode = %info.mode, "backup begin");
    match copy_everything(engine, &set_dir, &data_dir, &mut info, progress) {
        Ok(hold) => {
            info.status = Status::Ok;
            info.end_time = Some(now_text(engine));
            info.save(&data_dir)?;
            tracing::info!(
                backup = %info.data,
                checkpoint_lsn = info.checkpoint_lsn,
                end_lsn = info.end_lsn,
                files = info.files.len(),
                bytes = info.stored_bytes(),
                "backup complete"
            );
            Ok((info, hold))
        }
        Err(error) => {
            tracing::error!(backup = %info.data, "backup failed: {}", error.message);
            info.status = Status::Ng;
            info.error = Some(error.message.clone());
            info.end_time = Some(now_text(engine));
            if let Err(e) = info.save(&data_dir) {
                tracing::error!(backup = %info.data, "cannot mark the backup NG: {}", e.message);
            }
            Err(Failure {
                info: Some(Box::new(info)),
                error,
            })
        }
    }
}

/// The new backup's level in its set, and the backup it builds on.
fn place(set_dir: &Path, set: &str, mode: Mode) -> Result<(Level, Option<String>)> {
    if mode.starts_set() {
        if set_dir.exists() {
            return Err(KuraError::new(
                sqlstate::DUPLICATE_OBJECT,
                format!("backup {set} already exists; choose another name"),
            ));
        }
        std::fs::create_dir_all(set_dir).map_err(|e| io_error(set_dir, e))?;
        return Ok((Level::BASE, None));
    }
    let entries = if set_dir.is_dir() {
        list_data(set_dir, set)?
    } else {
        Vec::new()
    };
    let base = entries
        .first()
        .filter(|e| e.level == Level::BASE)
        .ok_or_else(|| {
            KuraError::new(
                sqlstate::UNDEFINED_OBJECT,
                format!("backup {set} does not exist: take a baseline first (mode baseline)"),
            )
        })?;
    let base_info = base
        .info
        .as_ref()
        .map_err(|why| KuraError::new(sqlstate::DATA_CORRUPTED, why.clone()))?;
    if base_info.mode != Mode::Baseline || base_info.status != Status::Ok {
        return Err(KuraError::new(
            sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "backup {set} has no usable baseline (its level-0 backup is {} with status {}); \
                 {mode} backups build on a baseline taken with mode baseline",
                base_info.mode,
                base_info.status.as_str()
            ),
        ));
    }
    let newest = entries.last().map_or(Level::BASE, |e| e.level);
    let previous = if mode == Mode::Since {
        base_info.data.clone()
    } else {
        entries
            .iter()
            .rev()
            .find_map(|e| e.info.as_ref().ok().filter(|i| i.status == Status::Ok))
            .map_or_else(|| base_info.data.clone(), |i| i.data.clone())
    };
    Ok((Level::next(newest, mode), Some(previous)))
}

fn copy_everything(
    engine: &Arc<Engine>,
    set_dir: &Path,
    data_dir: &Path,
    info: &mut BackupInfo,
    progress: &Progress,
) -> Result<LogHold> {
    let checkpointer = engine.checkpointer().ok_or_else(|| {
        KuraError::unsupported("backups need a server started on a data directory")
    })?;
    // Everything stays until the checkpoint to copy is known; then from it on.
    let hold = checkpointer.log_holds().hold(0);
    progress.set_phase(Phase::Checkpoint);
    checkpointer.run(engine)?;
    let OpenCheckpoint {
        manifest,
        bytes: manifest_bytes,
        files,
    } = open_newest_checkpoint(&checkpointer.options().dir)?;
    hold.advance(manifest.lsn + 1);
    info.checkpoint_lsn = manifest.lsn;
    info.checkpoint_time = manifest.created.clone();

    let held_before: HashSet<String> = match &info.previous {
        Some(previous) => {
            let entries = list_data(set_dir, &info.set)?;
            stored_partition_files(&chain(&entries, previous)?)
                .into_keys()
                .collect()
        }
        None => HashSet::new(),
    };
    let to_copy: Vec<(String, File)> = files
        .into_iter()
        .filter(|(name, _)| !held_before.contains(name))
        .collect();
    let mut total = manifest_bytes.len() as u64;
    for (name, file) in &to_copy {
        total += file
            .metadata()
            .map_err(|e| io_error(Path::new(name), e))?
            .len();
    }
    progress.total.store(total, Ordering::Relaxed);
    progress.set_phase(Phase::DataFiles);
    let manifest_path = format!("{MANIFEST_PREFIX}{:020}{STORED_SUFFIX}", manifest.lsn);
    info.files.push(write_compressed(
        data_dir,
        &manifest_path,
        &manifest_bytes[..],
        &progress.done,
    )?);
    for (name, file) in to_copy {
        let path = format!("{DATA_PREFIX}{name}{STORED_SUFFIX}");
        info.files
            .push(write_compressed(data_dir, &path, file, &progress.done)?);
    }

    progress.set_phase(Phase::Log);
    let (log_dir, end) = match engine.txns.log() {
        Some(log) => (log.options().dir.clone(), log.sync_now()?),
        None => return Err(KuraError::unsupported("backups need a transaction log")),
    };
    let end = end.max(manifest.lsn);
    let log_bytes = estimate_log_bytes(&log_dir, manifest.lsn + 1);
    progress.total.fetch_add(log_bytes, Ordering::Relaxed);
    let log_files = copy_log(&log_dir, manifest.lsn + 1, end, data_dir, &progress.done)?;
    info.files.extend(log_files);
    info.end_lsn = end;
    hold.advance(end + 1);
    Ok(hold)
}

/// A checkpoint with its files open.
struct OpenCheckpoint {
    manifest: Manifest,
    /// The manifest file's bytes.
    bytes: Vec<u8>,
    /// Partition files by name, each once.
    files: Vec<(String, File)>,
}

/// The newest checkpoint, its partition files opened. A checkpoint finishing meanwhile may
/// retire a file between listing and opening: then the newer checkpoint is read instead.
fn open_newest_checkpoint(dir: &Path) -> Result<OpenCheckpoint> {
    let mut last_error = None;
    for _ in 0..8 {
        let (_, path) = list_manifests(dir)?
            .into_iter()
            .next()
            .ok_or_else(|| KuraError::internal("no checkpoint to back up"))?;
        let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
        let manifest = Manifest::parse(&bytes, &path)?;
        let mut seen = HashSet::new();
        let mut files = Vec::new();
        let opened = manifest
            .partitions
            .iter()
            .filter(|p| seen.insert(p.file.clone()))
            .try_for_each(|p| {
                let path = dir.join(DATA_DIR).join(&p.file);
                let file = File::open(&path).map_err(|e| io_error(&path, e))?;
                files.push((p.file.clone(), file));
                Ok::<_, KuraError>(())
            });
        match opened {
            Ok(()) => {
                return Ok(OpenCheckpoint {
                    manifest,
                    bytes,
                    files,
                });
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| KuraError::internal("no checkpoint to back up")))
}

/// Bytes of the log segments from the one holding `from` on (for the progress total).
fn estimate_log_bytes(log_dir: &Path, from: u64) -> u64 {
    let Ok(segments) = crate::wal::segment::list_segments(log_dir) else {
        return 0;
    };
    let start = segments
        .iter()
        .rposition(|(first, _)| *first <= from)
        .unwrap_or(0);
    segments[start..]
        .iter()
        .filter_map(|(_, path)| std::fs::metadata(path).ok())
        .map(|m| m.len())
        .sum()
}

/// The server clock's time as the information file records it.
fn now_text(engine: &Engine) -> String {
    engine
        .txns
        .clock
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
