//! Copying a range of the live transaction log into a backup: frames byte for byte as they
//! lie in the segments, in files that are segment images (header, then frames), compressed.
//!
//! Invariant: the files written hold exactly the frames `from..=through`, in order, each file
//! named after its first frame's LSN.

use std::path::Path;
use std::sync::atomic::AtomicU64;

use super::files::write_compressed;
use super::info::FileEntry;
use super::set::{LOG_PREFIX, STORED_SUFFIX};
use crate::error::{KuraError, Result, sqlstate};
use crate::wal::Lsn;
use crate::wal::segment::{header_bytes, segment_name};
use crate::wal::tail::LogTail;

/// Raw bytes per backup log file.
const FILE_BUDGET: usize = 64 << 20;

/// Copies the frames `from..=through` of the log in `log_dir` into `out/txnlog/`.
pub fn copy_log(
    log_dir: &Path,
    from: Lsn,
    through: Lsn,
    out: &Path,
    progress: &AtomicU64,
) -> Result<Vec<FileEntry>> {
    let mut files = Vec::new();
    if from > through {
        return Ok(files);
    }
    let mut tail = LogTail::open(log_dir, from)?.ok_or_else(|| {
        KuraError::new(
            sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the transaction log no longer holds LSN {from}"),
        )
    })?;
    while tail.next_lsn() <= through {
        let first = tail.next_lsn();
        let mut image = header_bytes(first).to_vec();
        while tail.next_lsn() <= through && image.len() < FILE_BUDGET {
            tail.read(through, 8 << 20, &mut image)?;
        }
        let name = format!("{LOG_PREFIX}{}{STORED_SUFFIX}", segment_name(first));
        let mut entry = write_compressed(out, &name, &image[..], progress)?;
        entry.lsns = Some((first, tail.next_lsn() - 1));
        files.push(entry);
    }
    Ok(files)
}
