//! The information file of one backup data directory (`backup_info.json`) and its digest
//! (`backup_info_digest.json`, SHA-256 of the information file), as GridDB writes
//! gs_backup_info.json and gs_backup_info_digest.json.
//!
//! The information file lists every file of the backup with its size and SHA-256, so the
//! digest of the information file covers everything in the backup.
//!
//! Invariants: both files are replaced atomically (the information file first, then its
//! digest), and a reader trusts an information file only when the digest matches it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::sha256_hex;
use super::names::{Level, Mode};
use crate::checkpoint::manifest::write_atomically;
use crate::error::{KuraError, Result, sqlstate};
use crate::wal::Lsn;
use crate::wal::segment::io_error;

pub const INFO_FILE: &str = "backup_info.json";
pub const DIGEST_FILE: &str = "backup_info_digest.json";
const INFO_FORMAT_VERSION: u32 = 1;

/// GridDB's status letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// In progress.
    P,
    /// Complete.
    #[serde(rename = "OK")]
    Ok,
    /// Failed or interrupted: not usable.
    #[serde(rename = "NG")]
    Ng,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::P => "P",
            Status::Ok => "OK",
            Status::Ng => "NG",
        }
    }
}

/// One file of a backup, as stored (zstd-compressed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the backup data directory, `/`-separated.
    pub path: String,
    /// Size as stored.
    pub bytes: u64,
    /// Size once decompressed.
    pub raw_bytes: u64,
    /// SHA-256 of the stored bytes, hex.
    pub sha256: String,
    /// For log files: the LSNs of the first and last frame they hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsns: Option<(Lsn, Lsn)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupInfo {
    pub format_version: u32,
    /// The set's name (the directory under the backup path).
    pub set: String,
    /// This backup's directory name inside the set (`NAME_lv0`, `NAME_lv1_NNN_MMM`).
    pub data: String,
    pub mode: Mode,
    pub status: Status,
    /// Why the backup failed (status NG).
    #[serde(default)]
    pub error: Option<String>,
    /// RFC 3339, server clock.
    pub start_time: String,
    pub end_time: Option<String>,
    /// The checkpoint the backup copied: every commit up to this LSN.
    pub checkpoint_lsn: Lsn,
    /// When that checkpoint was taken (RFC 3339).
    pub checkpoint_time: String,
    /// The backup holds the log up to this LSN: restoring it without more log reaches here.
    pub end_lsn: Lsn,
    /// The backup data directory that partition files this one did not copy are found in
    /// (through its own `previous`, and so on): the baseline for `since`, the set's previous
    /// backup for `incremental`.
    #[serde(default)]
    pub previous: Option<String>,
    pub server_version: String,
    /// The data directory of the server that took the backup: a server starting marks only
    /// its own backups left in progress as failed.
    #[serde(default)]
    pub node: String,
    pub files: Vec<FileEntry>,
}

impl BackupInfo {
    pub fn new(set: &str, level: Level, mode: Mode, start_time: String) -> BackupInfo {
        BackupInfo {
            format_version: INFO_FORMAT_VERSION,
            set: set.to_string(),
            data: level.data_name(set),
            mode,
            status: Status::P,
            error: None,
            start_time,
            end_time: None,
            checkpoint_lsn: 0,
            checkpoint_time: String::new(),
            end_lsn: 0,
            previous: None,
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            node: String::new(),
            files: Vec::new(),
        }
    }

    pub fn level(&self) -> Option<Level> {
        Level::from_data_name(&self.set, &self.data)
    }

    /// Stored bytes of all files.
    pub fn stored_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Writes the information file and then its digest into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let body = serde_json::to_vec_pretty(self)
            .map_err(|e| KuraError::internal(format!("cannot encode backup info: {e}")))?;
        write_atomically(&dir.join(INFO_FILE), &body)?;
        let digest = Digest {
            algorithm: "SHA-256".into(),
            file: INFO_FILE.into(),
            digest: sha256_hex(&body),
        };
        let digest = serde_json::to_vec_pretty(&digest)
            .map_err(|e| KuraError::internal(format!("cannot encode backup digest: {e}")))?;
        write_atomically(&dir.join(DIGEST_FILE), &digest)
    }

    /// Reads the information file in `dir`, refusing it unless its digest matches.
    pub fn load(dir: &Path) -> Result<BackupInfo> {
        let path = dir.join(INFO_FILE);
        let body = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
        let digest_path = dir.join(DIGEST_FILE);
        let digest = std::fs::read(&digest_path).map_err(|e| io_error(&digest_path, e))?;
        let digest: Digest =
            serde_json::from_slice(&digest).map_err(|e| damaged(&digest_path, &e.to_string()))?;
        if digest.digest != sha256_hex(&body) {
            return Err(damaged(
                &path,
                "its digest does not match (the file was altered or damaged)",
            ));
        }
        serde_json::from_slice(&body).map_err(|e| damaged(&path, &e.to_string()))
    }

    /// The path of a listed file.
    pub fn file_path(dir: &Path, entry: &FileEntry) -> PathBuf {
        entry
            .path
            .split('/')
            .fold(dir.to_path_buf(), |p, c| p.join(c))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Digest {
    algorithm: String,
    file: String,
    digest: String,
}

/// A time as the information file writes it, in microseconds since the Unix epoch.
pub fn rfc3339_micros(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

pub fn damaged(path: &Path, why: &str) -> KuraError {
    KuraError::new(
        sqlstate::DATA_CORRUPTED,
        format!("backup file {} is damaged: {why}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_altered_info_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut info = BackupInfo::new("s", Level::BASE, Mode::Full, "t0".into());
        info.files.push(FileEntry {
            path: "checkpoint/data/a.kpart.zst".into(),
            bytes: 10,
            raw_bytes: 20,
            sha256: "00".into(),
            lsns: None,
        });
        info.save(dir.path()).unwrap();
        assert_eq!(BackupInfo::load(dir.path()).unwrap(), info);
        let path = dir.path().join(INFO_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"bytes\": 10", "\"bytes\": 11")).unwrap();
        let err = BackupInfo::load(dir.path()).unwrap_err();
        assert_eq!(err.code, sqlstate::DATA_CORRUPTED);
        assert!(err.message.contains("digest"), "{}", err.message);
    }
}
