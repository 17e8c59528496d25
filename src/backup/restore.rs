//! Restore (GridDB's gs_restore), offline: a backup set's checkpoint and log written into an
//! empty data directory, up to a chosen LSN or time (point-in-time recovery). The server
//! then starts on it as after any stop: it loads the checkpoint and replays the log.
//!
//! The plan picks the newest complete backup whose checkpoint is not after the target,
//! finds each partition file it needs along its chain (incremental backups hold only what
//! changed), and walks the set's log — each backup's copy and the archive — from the
//! checkpoint on, until the target: a commit later than the target time, or past the target
//! LSN. `--test` stops after the plan, which reads and checks every file it would use.
//!
//! Invariants: every file used is checked against its digest before its content is used;
//! only whole commits are written to the log (the parts of a commit cut by the target are
//! dropped with it); a data directory that already holds a database is never written to (the
//! archiving and replication state a directory may keep is removed: the restored database
//! starts a history of its own);
//! an interrupted restore leaves a marker that the server refuses to start on and that lets
//! the restore be run again.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::files::{check_stored, open_decompressed, read_decompressed};
use super::info::{BackupInfo, FileEntry, Status, damaged, rfc3339_micros};
use super::set::{DataEntry, LOG_PREFIX, MANIFEST_PREFIX, chain, open_set, stored_partition_files};
use crate::checkpoint::DATA_DIR;
use crate::checkpoint::manifest::{
    Manifest, list_manifests, manifest_name, publish, temporary_name, write_atomically,
};
use crate::error::{KuraError, Result, sqlstate};
use crate::recovery::{CHECKPOINT_DIR, DataDirLock, LOG_DIR};
use crate::wal::frames::{Frame, WalkEnd, segment_frames};
use crate::wal::record::FrameKind;
use crate::wal::segment::{header_bytes, io_error, list_segments, segment_name};
use crate::wal::{Lsn, sync_dir};

/// In a data directory while a restore writes it.
pub const RESTORE_MARKER: &str = "restore_in_progress";

/// Log segments the restore writes start anew past this size (at a record boundary).
const SEGMENT_BYTES: u64 = 64 << 20;

/// How far to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Everything the set holds.
    Latest,
    /// Every record up to and including this LSN.
    Lsn(Lsn),
    /// Every commit and catalog change made at or before this time (µs since the Unix
    /// epoch, server clock).
    Time(i64),
}

/// A file of log in a backup set.
#[derive(Debug, Clone)]
pub struct LogSource {
    pub first: Lsn,
    pub path: PathBuf,
    /// `None` for the archive's plain image being written.
    pub entry: Option<FileEntry>,
}

impl LogSource {
    /// The segment image, checked against its digest.
    pub fn image(&self) -> Result<Vec<u8>> {
        match &self.entry {
            Some(entry) => {
                check_stored(&self.path, entry)?;
                read_decompressed(&self.path)
            }
            None => std::fs::read(&self.path).map_err(|e| io_error(&self.path, e)),
        }
    }

    fn last(&self) -> Option<Lsn> {
        self.entry
            .as_ref()
            .and_then(|e| e.lsns)
            .map(|(_, last)| last)
    }
}

/// The log files one backup holds.
pub fn backup_log_sources(dir: &Path, info: &BackupInfo) -> Vec<LogSource> {
    info.files
        .iter()
        .filter(|f| f.path.starts_with(LOG_PREFIX))
        .filter_map(|f| {
            Some(LogSource {
                first: f.lsns?.0,
                path: BackupInfo::file_path(dir, f),
                entry: Some(f.clone()),
            })
        })
        .collect()
}

/// The files of an `auto` set's archive: sealed ones, then the one being written.
pub fn archive_sources(set_dir: &Path) -> Result<Vec<LogSource>> {
    let archive = set_dir.join(super::archive::ARCHIVE_DIR);
    if !archive.is_dir() {
        return Ok(Vec::new());
    }
    let mut sources: Vec<LogSource> = super::archive::ArchiveIndex::load(&archive)?
        .segments
        .into_iter()
        .filter_map(|f| {
            Some(LogSource {
                first: f.lsns?.0,
                path: archive.join(&f.path),
                entry: Some(f),
            })
        })
        .collect();
    for (first, path) in list_segments(&archive)? {
        sources.push(LogSource {
            first,
            path,
            entry: None,
        });
    }
    Ok(sources)
}

/// The log files of the set's complete backups and of its archive, by first LSN.
pub fn log_sources(set_dir: &Path, entries: &[DataEntry]) -> Result<Vec<LogSource>> {
    let mut sources: Vec<LogSource> = entries
        .iter()
        .filter_map(|e| Some((&e.dir, e.info.as_ref().ok()?)))
        .filter(|(_, info)| info.status == Status::Ok)
        .flat_map(|(dir, info)| backup_log_sources(dir, info))
        .collect();
    sources.extend(archive_sources(set_dir)?);
    sources.sort_by_key(|s| (s.first, s.entry.is_none()));
    Ok(sources)
}

/// Why a walk of the log ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The next record is past the target.
    Target,
    /// The set holds no more log.
    EndOfLog,
    /// The set's log misses this LSN (no file holds it, but later ones exist).
    Gap(Lsn),
}

/// How far a walk got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The last record taken.
    pub lsn: Lsn,
    /// The time of the last commit taken that records one.
    pub time: Option<i64>,
    pub stop: Stop,
    pub records: u64,
}

/// Walks the records after `after` in `sources` up to `target`, handing each frame of every
/// whole record taken to `emit` (with whether it ends a record).
pub fn walk_log(
    sources: &[LogSource],
    after: Lsn,
    target: Target,
    mut emit: impl FnMut(&Frame, bool) -> Result<()>,
) -> Result<Reach> {
    let mut next = after + 1;
    let mut reach = Reach {
        lsn: after,
        time: None,
        stop: Stop::EndOfLog,
        records: 0,
    };
    let mut pending: Vec<(Lsn, Vec<u8>)> = Vec::new();
    for source in sources {
        if source.last().is_some_and(|last| last < next) {
            continue;
        }
        if source.first > next {
            reach.stop = Stop::Gap(next);
            return Ok(reach);
        }
        let image = source.image()?;
        let mut frames =
            segment_frames(&image, source.first).map_err(|why| damaged(&source.path, &why))?;
        for frame in frames.by_ref() {
            if frame.lsn < next {
                continue;
            }
            if frame.lsn != next {
                let why = format!("LSN {} follows LSN {}", frame.lsn, next - 1);
                return Err(damaged(&source.path, &why));
            }
            if let Target::Lsn(n) = target
                && frame.lsn > n
            {
                reach.stop = Stop::Target;
                return Ok(reach);
            }
            match frame.kind {
                FrameKind::CommitPart => pending.push((frame.lsn, frame.bytes.to_vec())),
                FrameKind::Commit { time } => {
                    if let (Target::Time(t), Some(committed)) = (target, time)
                        && committed > t
                    {
                        reach.stop = Stop::Target;
                        return Ok(reach);
                    }
                    for (lsn, bytes) in pending.drain(..) {
                        let part = Frame {
                            lsn,
                            kind: FrameKind::CommitPart,
                            bytes: &bytes,
                        };
                        emit(&part, false)?;
                    }
                    emit(&frame, true)?;
                    reach.lsn = frame.lsn;
                    reach.time = time.or(reach.time);
                    reach.records += 1;
                }
                FrameKind::Catalog { time } => {
                    if let (Target::Time(t), Some(changed)) = (target, time)
                        && changed > t
                    {
                        reach.stop = Stop::Target;
                        return Ok(reach);
                    }
                    if !pending.is_empty() {
                        let why = format!("a catalog change inside a commit at LSN {}", frame.lsn);
                        return Err(damaged(&source.path, &why));
                    }
                    emit(&frame, true)?;
                    reach.lsn = frame.lsn;
                    reach.records += 1;
                }
            }
            next += 1;
        }
        match frames.end() {
            Some(WalkEnd::Complete) | None => {}
            // The archive's open image may end in a frame being written when the server
            // stopped; what follows it was never archived.
            Some(WalkEnd::Torn) if source.entry.is_none() => break,
            Some(WalkEnd::Torn) => return Err(damaged(&source.path, "it ends inside a record")),
            Some(WalkEnd::Corrupt(why)) => return Err(damaged(&source.path, why)),
        }
    }
    Ok(reach)
}

/// What a restore will use and reach.
#[derive(Debug)]
pub struct RestorePlan {
    pub set: String,
    /// The backups used, the one restored last (the chain runs back to the baseline).
    pub used: Vec<BackupInfo>,
    pub manifest: Manifest,
    manifest_bytes: Vec<u8>,
    partitions: Vec<(String, PathBuf)>,
    log: Vec<LogSource>,
    pub partition_files: usize,
    pub partition_bytes: u64,
    pub log_files: usize,
    pub target: Target,
    pub reach: Reach,
}

impl RestorePlan {
    /// Whether the restore stops short of a target time because the set's log ends before
    /// it (it restores everything there is; commits after the log's end are not known).
    pub fn short_of_target(&self) -> bool {
        matches!(self.target, Target::Time(_)) && self.reach.stop != Stop::Target
    }
}

/// Plans the restore of `set` to `target`, reading and checking every file it would use.
pub fn plan(backup_dir: &Path, set: &str, target: Target) -> Result<RestorePlan> {
    let (set_dir, entries) = open_set(backup_dir, set)?;
    let usable = |info: &BackupInfo| match target {
        Target::Latest => true,
        Target::Lsn(n) => info.checkpoint_lsn <= n,
        Target::Time(t) => rfc3339_micros(&info.checkpoint_time).is_some_and(|c| c <= t),
    };
    let chosen = entries
        .iter()
        .rev()
        .filter_map(|e| e.info.as_ref().ok())
        .find(|info| info.status == Status::Ok && usable(info))
        .ok_or_else(|| {
            KuraError::new(
                sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "backup {set} has no complete backup taken before the target; \
                     `kura backup list {set}` shows what it holds"
                ),
            )
        })?;
    let links = chain(&entries, &chosen.data)?;
    if let Some((_, broken)) = links.iter().find(|(_, i)| i.status != Status::Ok) {
        return Err(KuraError::new(
            sqlstate::DATA_CORRUPTED,
            format!(
                "backup {} that {} builds on is not complete",
                broken.data, chosen.data
            ),
        ));
    }
    let chosen_dir = links[0].0;
    let manifest_entry = chosen
        .files
        .iter()
        .find(|f| f.path.starts_with(MANIFEST_PREFIX))
        .ok_or_else(|| damaged(chosen_dir, "it lists no checkpoint manifest"))?;
    let manifest_path = BackupInfo::file_path(chosen_dir, manifest_entry);
    check_stored(&manifest_path, manifest_entry)?;
    let manifest_bytes = read_decompressed(&manifest_path)?;
    let manifest = Manifest::parse(&manifest_bytes, &manifest_path)?;
    if manifest.lsn != chosen.checkpoint_lsn {
        return Err(damaged(
            &manifest_path,
            "its LSN is not the backup's checkpoint LSN",
        ));
    }
    let stored = stored_partition_files(&links);
    let mut partitions = Vec::new();
    let mut partition_bytes = 0;
    for file in &manifest.partitions {
        if partitions.iter().any(|(name, _)| name == &file.file) {
            continue;
        }
        let (path, entry) = stored.get(&file.file).ok_or_else(|| {
            damaged(
                chosen_dir,
                &format!(
                    "partition file {} is in none of the backups it builds on",
                    file.file
                ),
            )
        })?;
        check_stored(path, entry)?;
        partition_bytes += entry.raw_bytes;
        partitions.push((file.file.clone(), path.clone()));
    }
    let log = log_sources(&set_dir, &entries)?;
    let mut used_log = std::collections::BTreeSet::new();
    let reach = walk_log(&log, manifest.lsn, target, |frame, _| {
        used_log.insert(frame.lsn);
        Ok(())
    })?;
    if let Target::Lsn(n) = target
        && reach.stop != Stop::Target
        && reach.lsn < n
    {
        return Err(KuraError::new(
            sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "backup {set} holds the log up to LSN {}, before the target LSN {n}",
                reach.lsn
            ),
        ));
    }
    let log_files = log
        .iter()
        .filter(|s| {
            used_log
                .range(s.first..=s.last().unwrap_or(Lsn::MAX))
                .next()
                .is_some()
        })
        .count();
    let mut used: Vec<BackupInfo> = links.iter().map(|(_, i)| (*i).clone()).collect();
    used.reverse();
    Ok(RestorePlan {
        set: set.to_string(),
        used,
        manifest,
        manifest_bytes,
        partition_files: partitions.len(),
        partitions,
        partition_bytes,
        log,
        log_files,
        target,
        reach,
    })
}

/// What a restore wrote.
#[derive(Debug)]
pub struct Restored {
    pub checkpoint_lsn: Lsn,
    pub reach: Reach,
}

/// Writes the planned restore into `data_dir`, which must not hold a database.
pub fn apply(plan: &RestorePlan, data_dir: &Path) -> Result<Restored> {
    std::fs::create_dir_all(data_dir).map_err(|e| io_error(data_dir, e))?;
    let _lock = DataDirLock::acquire(data_dir)?;
    let marker = data_dir.join(RESTORE_MARKER);
    let checkpoint_dir = data_dir.join(CHECKPOINT_DIR);
    let log_dir = data_dir.join(LOG_DIR);
    if marker.exists() {
        remove_dir(&checkpoint_dir)?;
        remove_dir(&log_dir)?;
    } else if holds_database(data_dir)? {
        return Err(KuraError::new(
            sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "data directory {} already holds a database; restore into an empty one \
                 (move its checkpoint/ and txnlog/ away first)",
                data_dir.display()
            ),
        ));
    }
    File::create(&marker)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error(&marker, e))?;
    sync_dir(data_dir)?;
    // The restored database starts a history of its own: it archives into no set and
    // follows no earlier epochs until it is told to.
    for stale in [
        data_dir.join(super::archive::STATE_FILE),
        crate::replication::epoch::NodeState::path(data_dir),
    ] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {
                tracing::info!(file = %stale.display(), "removed the replaced database's state")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&stale, e)),
        }
    }
    remove_dir(&data_dir.join(crate::replication::incoming::INCOMING_DIR))?;

    let files_dir = checkpoint_dir.join(DATA_DIR);
    std::fs::create_dir_all(&files_dir).map_err(|e| io_error(&files_dir, e))?;
    for (name, source) in &plan.partitions {
        let target = files_dir.join(name);
        let tmp = temporary_name(&target);
        let mut reader = open_decompressed(source)?;
        let mut file = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
        std::io::copy(&mut reader, &mut file)
            .map_err(|e| damaged(source, &format!("cannot decompress: {e}")))?;
        file.sync_all().map_err(|e| io_error(&tmp, e))?;
        publish(&tmp, &target)?;
    }
    std::fs::create_dir_all(&log_dir).map_err(|e| io_error(&log_dir, e))?;
    let mut writer = SegmentWriter {
        dir: log_dir.clone(),
        open: None,
    };
    let reach = walk_log(&plan.log, plan.manifest.lsn, plan.target, |frame, ends| {
        writer.write(frame, ends)
    })?;
    writer.close()?;
    sync_dir(&log_dir)?;
    write_atomically(
        &checkpoint_dir.join(manifest_name(plan.manifest.lsn)),
        &plan.manifest_bytes,
    )?;
    std::fs::remove_file(&marker).map_err(|e| io_error(&marker, e))?;
    sync_dir(data_dir)?;
    Ok(Restored {
        checkpoint_lsn: plan.manifest.lsn,
        reach,
    })
}

/// Whether `data_dir` holds a checkpoint or a log.
fn holds_database(data_dir: &Path) -> Result<bool> {
    let checkpoint = data_dir.join(CHECKPOINT_DIR);
    let log = data_dir.join(LOG_DIR);
    Ok(
        (checkpoint.is_dir() && !list_manifests(&checkpoint)?.is_empty())
            || (log.is_dir() && !list_segments(&log)?.is_empty()),
    )
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(dir, e)),
    }
}

/// Log segments written frame by frame, a new one begun at a record boundary past
/// [`SEGMENT_BYTES`].
struct SegmentWriter {
    dir: PathBuf,
    open: Option<(PathBuf, File, u64)>,
}

impl SegmentWriter {
    fn write(&mut self, frame: &Frame, ends_record: bool) -> Result<()> {
        if self.open.is_none() {
            let path = self.dir.join(segment_name(frame.lsn));
            let mut file = File::create(&path).map_err(|e| io_error(&path, e))?;
            let header = header_bytes(frame.lsn);
            file.write_all(&header).map_err(|e| io_error(&path, e))?;
            self.open = Some((path, file, header.len() as u64));
        }
        if let Some((path, file, len)) = &mut self.open {
            file.write_all(frame.bytes).map_err(|e| io_error(path, e))?;
            *len += frame.bytes.len() as u64;
            if ends_record && *len >= SEGMENT_BYTES {
                self.close()?;
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some((path, file, _)) = self.open.take() {
            file.sync_all().map_err(|e| io_error(&path, e))?;
        }
        Ok(())
    }
}
