//! Checkpoint manifests: which LSN a checkpoint is consistent at, the catalog at that LSN,
//! and the data file of every data partition.
//!
//! A manifest file (`manifest-<lsn, 20 digits>`) is one header line,
//! `KURA-CHECKPOINT <format version> <crc32c of the body, hex> <body length>`, and a JSON body.
//!
//! Invariants: a manifest is written to a temporary name, fsynced, renamed and its directory
//! fsynced, only after every data file it names is on disk; a manifest is trusted only if its
//! header, length and checksum match.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{KuraError, Result};
use crate::security::{StoredGrant, StoredUser};
use crate::storage::chunk::Serial;
use crate::storage::stored::{StoredTable, StoredView};
use crate::storage::{PartitionKey, TableId};
use crate::wal::StoredDatabase;
use crate::wal::record::{FORMAT_VERSION, Lsn};
use crate::wal::segment::io_error;
use crate::wal::sync_dir;

const PREFIX: &str = "manifest-";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionEntry {
    pub table: TableId,
    pub partition: PartitionKey,
    /// File name inside the checkpoint's `data/` directory.
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    /// The serial the partition's next appended row gets.
    pub next_serial: Serial,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// Every commit up to and including this LSN is in the checkpoint, none after it.
    pub lsn: Lsn,
    /// Wall-clock time the checkpoint was taken (RFC 3339).
    pub created: String,
    pub next_table_id: TableId,
    pub tables: Vec<StoredTable>,
    pub views: Vec<StoredView>,
    /// Databases, general users and grants; checkpoints written before they existed have
    /// none, which means only `public`.
    #[serde(default)]
    pub security: SecurityImage,
    pub partitions: Vec<PartitionEntry>,
}

/// The logged security catalog at the checkpoint's LSN.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityImage {
    pub databases: Vec<StoredDatabase>,
    pub users: Vec<StoredUser>,
    pub grants: Vec<StoredGrant>,
}

pub fn manifest_name(lsn: Lsn) -> String {
    format!("{PREFIX}{lsn:020}")
}

/// The manifests in `dir`, newest (highest LSN) first.
pub fn list_manifests(dir: &Path) -> Result<Vec<(Lsn, PathBuf)>> {
    let mut out = crate::wal::lsn_named_files(dir, PREFIX, "")?;
    out.reverse();
    Ok(out)
}

impl Manifest {
    /// Writes the manifest into `dir` atomically.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let body = serde_json::to_vec_pretty(self)
            .map_err(|e| KuraError::internal(format!("cannot encode manifest: {e}")))?;
        let mut bytes = format!(
            "KURA-CHECKPOINT {FORMAT_VERSION} {:08x} {}\n",
            crc32c::crc32c(&body),
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&body);
        let path = dir.join(manifest_name(self.lsn));
        write_atomically(&path, &bytes)?;
        Ok(path)
    }

    /// Reads and verifies a manifest.
    pub fn read(path: &Path) -> Result<Manifest> {
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        Manifest::parse(&bytes, path)
    }

    /// Verifies and parses a manifest's bytes (`path` names them in errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Manifest> {
        let bad = |why: &str| {
            KuraError::new(
                crate::error::sqlstate::IO_ERROR,
                format!("checkpoint manifest {} is damaged: {why}", path.display()),
            )
        };
        let newline = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| bad("no header line"))?;
        let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| bad("bad header"))?;
        let fields: Vec<&str> = header.split(' ').collect();
        let [magic, version, crc, len] = fields[..] else {
            return Err(bad("bad header"));
        };
        if magic != "KURA-CHECKPOINT" {
            return Err(bad("not a Kura checkpoint manifest"));
        }
        if version != FORMAT_VERSION.to_string() {
            return Err(bad(&format!("format version {version}")));
        }
        let body = &bytes[newline + 1..];
        if len.parse::<usize>().ok() != Some(body.len()) {
            return Err(bad("length mismatch (truncated file)"));
        }
        if u32::from_str_radix(crc, 16).ok() != Some(crc32c::crc32c(body)) {
            return Err(bad("checksum mismatch"));
        }
        serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))
    }
}

/// Writes `bytes` to `path` via a temporary file: write, fsync, rename, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary_name(path);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .map_err(|e| io_error(&tmp, e))?;
    publish(&tmp, path)
}

/// Renames a complete, fsynced temporary file to its final name and fsyncs the directory.
pub fn publish(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|e| io_error(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

pub fn temporary_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}
