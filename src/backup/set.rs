//! Reading a backup directory: its sets, the backups in a set, the chain of backups a
//! partition file is found through, and backups a stopped server left in progress.
//!
//! Invariants: only directories whose names follow the naming rule are read as backups;
//! an unreadable or altered information file is reported, never trusted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::info::{BackupInfo, FileEntry, Status};
use super::names::{Level, Mode, check_set_name};
use crate::error::{KuraError, Result, sqlstate};
use crate::wal::dir_entries;

/// Partition data files are stored as `checkpoint/data/<file>.zst`.
pub const DATA_PREFIX: &str = "checkpoint/data/";
pub const MANIFEST_PREFIX: &str = "checkpoint/manifest-";
pub const LOG_PREFIX: &str = "txnlog/";
pub const STORED_SUFFIX: &str = ".zst";

/// One backup directory of a set.
#[derive(Debug)]
pub struct DataEntry {
    pub level: Level,
    pub dir: PathBuf,
    /// The information file, or why it cannot be trusted.
    pub info: std::result::Result<BackupInfo, String>,
}

impl DataEntry {
    pub fn name(&self, set: &str) -> String {
        self.level.data_name(set)
    }
}

/// The backups of the set in `set_dir`, oldest level first.
pub fn list_data(set_dir: &Path, set: &str) -> Result<Vec<DataEntry>> {
    let mut out = Vec::new();
    for (name, path) in dir_entries(set_dir)? {
        let Some(level) = Level::from_data_name(set, &name) else {
            continue;
        };
        if !path.is_dir() {
            continue;
        }
        let info = BackupInfo::load(&path).map_err(|e| e.message);
        out.push(DataEntry {
            level,
            dir: path,
            info,
        });
    }
    out.sort_by_key(|d| d.level);
    Ok(out)
}

/// A set as `kura backup list` shows it.
#[derive(Debug)]
pub struct SetSummary {
    pub name: String,
    /// The mode of its level-0 backup.
    pub mode: Option<Mode>,
    pub data: Vec<DataEntry>,
}

impl SetSummary {
    /// Start of the first backup, end of the last one.
    pub fn times(&self) -> (Option<String>, Option<String>) {
        let infos: Vec<&BackupInfo> = self
            .data
            .iter()
            .filter_map(|d| d.info.as_ref().ok())
            .collect();
        (
            infos.first().map(|i| i.start_time.clone()),
            infos.last().and_then(|i| i.end_time.clone()),
        )
    }

    /// OK, NG or P for a set of one backup; `--` for an incremental set (GridDB).
    pub fn status(&self) -> &'static str {
        if self.data.len() > 1 || self.mode == Some(Mode::Baseline) {
            return "--";
        }
        match self.data.first().map(|d| &d.info) {
            Some(Ok(info)) => info.status.as_str(),
            _ => "NG",
        }
    }
}

/// Every set under the backup path, newest first.
pub fn list_sets(backup_dir: &Path) -> Result<Vec<SetSummary>> {
    if !backup_dir.exists() {
        return Ok(Vec::new());
    }
    let mut sets = Vec::new();
    for (name, path) in dir_entries(backup_dir)? {
        if check_set_name(&name).is_err() || !path.is_dir() {
            continue;
        }
        let data = list_data(&path, &name)?;
        if data.is_empty() {
            continue;
        }
        let mode = data
            .first()
            .and_then(|d| d.info.as_ref().ok())
            .filter(|_| data[0].level == Level::BASE)
            .map(|i| i.mode);
        sets.push(SetSummary { name, mode, data });
    }
    sets.sort_by(|a, b| b.times().0.cmp(&a.times().0).then(b.name.cmp(&a.name)));
    Ok(sets)
}

/// The set named `set`, which must exist.
pub fn open_set(backup_dir: &Path, set: &str) -> Result<(PathBuf, Vec<DataEntry>)> {
    check_set_name(set)?;
    let set_dir = backup_dir.join(set);
    let data = if set_dir.is_dir() {
        list_data(&set_dir, set)?
    } else {
        Vec::new()
    };
    if data.is_empty() {
        return Err(KuraError::new(
            sqlstate::UNDEFINED_OBJECT,
            format!("backup {set} does not exist in {}", backup_dir.display()),
        ));
    }
    Ok((set_dir, data))
}

/// The backups a partition file of `data` may be found in: `data` itself, then its
/// `previous`, and so on.
pub fn chain<'a>(entries: &'a [DataEntry], data: &str) -> Result<Vec<(&'a Path, &'a BackupInfo)>> {
    let mut out = Vec::new();
    let mut next = Some(data.to_string());
    while let Some(name) = next {
        let entry = entries
            .iter()
            .find(|e| e.info.as_ref().is_ok_and(|i| i.data == name))
            .and_then(|e| e.info.as_ref().ok().map(|i| (e.dir.as_path(), i)))
            .ok_or_else(|| {
                KuraError::new(
                    sqlstate::DATA_CORRUPTED,
                    format!("backup {name}, which {data} builds on, is missing or damaged"),
                )
            })?;
        if out.len() > entries.len() {
            return Err(KuraError::internal("backup chain loops"));
        }
        next = entry.1.previous.clone();
        out.push(entry);
    }
    Ok(out)
}

/// Partition data files (by checkpoint file name) stored in the backups of `chain`, with
/// where they are; the first backup of the chain that holds a file wins.
pub fn stored_partition_files(
    chain: &[(&Path, &BackupInfo)],
) -> HashMap<String, (PathBuf, FileEntry)> {
    let mut out = HashMap::new();
    for (dir, info) in chain {
        for entry in &info.files {
            if let Some(name) = partition_file_name(&entry.path) {
                out.entry(name.to_string())
                    .or_insert_with(|| (BackupInfo::file_path(dir, entry), entry.clone()));
            }
        }
    }
    out
}

/// The checkpoint file name a stored partition file holds.
pub fn partition_file_name(stored: &str) -> Option<&str> {
    stored
        .strip_prefix(DATA_PREFIX)?
        .strip_suffix(STORED_SUFFIX)
}

/// Marks backups that a previous run of the server on data directory `node` left in
/// progress (P) as failed (NG); other servers' backups are theirs to finish.
pub fn mark_interrupted(backup_dir: &Path, node: &str) -> Result<()> {
    for set in list_sets(backup_dir)? {
        for data in set.data {
            if let Ok(mut info) = data.info
                && info.status == Status::P
                && info.node == node
            {
                tracing::warn!(backup = %info.data, "marking a backup interrupted by a stop as NG");
                info.status = Status::Ng;
                info.error = Some("interrupted: the server stopped during the backup".into());
                info.save(&data.dir)?;
            }
        }
    }
    Ok(())
}
