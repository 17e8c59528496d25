//! A checkpoint copy received from the primary: written to `<data>/incoming/`, marked
//! complete, and installed in place of the standby's own checkpoints and log when the server
//! next starts (the standby restarts itself right after receiving one).
//!
//! Invariants: only file names a checkpoint can have are written (`manifest-<LSN>` and
//! `data/<name>.kpart`, nothing with a path separator elsewhere); a copy is installed only
//! once every file has arrived whole, been fsynced and the `COMPLETE` marker written; an
//! incomplete copy is deleted at start, a complete one is installed at start (so a crash at
//! any point leaves either the old state or the new one).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::epoch::NodeState;
use super::protocol::CopyHeader;
use crate::checkpoint::DATA_DIR;
use crate::error::{KuraError, Result, sqlstate};
use crate::recovery::{CHECKPOINT_DIR, LOG_DIR};
use crate::wal::segment::io_error;
use crate::wal::sync_dir;

pub const INCOMING_DIR: &str = "incoming";
const COMPLETE: &str = "COMPLETE";

/// A copy being received.
#[derive(Debug)]
pub struct IncomingCopy {
    dir: PathBuf,
    header: CopyHeader,
    open: Option<(String, File)>,
}

impl IncomingCopy {
    pub fn begin(data_dir: &Path, header: CopyHeader) -> Result<IncomingCopy> {
        let dir = data_dir.join(INCOMING_DIR);
        remove_dir(&dir)?;
        std::fs::create_dir_all(dir.join(DATA_DIR)).map_err(|e| io_error(&dir, e))?;
        for (name, _) in &header.files {
            check_name(name)?;
        }
        Ok(IncomingCopy {
            dir,
            header,
            open: None,
        })
    }

    /// Appends a piece of file `name`.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        if !self.header.files.iter().any(|(listed, _)| listed == name) {
            return Err(bad(format!("file {name} is not in the copy's list")));
        }
        if self.open.as_ref().map(|(open, _)| open.as_str()) != Some(name) {
            self.finish_file()?;
            let path = self.dir.join(name);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            self.open = Some((name.to_string(), file));
        }
        if let Some((_, file)) = &mut self.open {
            file.write_all(bytes)
                .map_err(|e| io_error(&self.dir.join(name), e))?;
        }
        Ok(())
    }

    fn finish_file(&mut self) -> Result<()> {
        if let Some((name, file)) = self.open.take() {
            file.sync_all()
                .map_err(|e| io_error(&self.dir.join(name), e))?;
        }
        Ok(())
    }

    /// Checks that every file arrived whole and marks the copy complete.
    pub fn complete(mut self) -> Result<u64> {
        self.finish_file()?;
        for (name, len) in &self.header.files {
            let path = self.dir.join(name);
            let found = std::fs::metadata(&path)
                .map_err(|e| io_error(&path, e))?
                .len();
            if found != *len {
                return Err(bad(format!("{name} arrived with {found} of {len} bytes")));
            }
        }
        self.header.state.save(&self.dir)?;
        sync_dir(&self.dir.join(DATA_DIR))?;
        let marker = self.dir.join(COMPLETE);
        File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error(&marker, e))?;
        sync_dir(&self.dir)?;
        Ok(self.header.lsn)
    }
}

/// At start: installs a complete copy (replacing the checkpoints, the log and the epoch
/// history), or deletes an incomplete one. Returns the installed copy's LSN.
pub fn install_pending(data_dir: &Path) -> Result<Option<u64>> {
    let dir = data_dir.join(INCOMING_DIR);
    if !dir.exists() {
        return Ok(None);
    }
    if !dir.join(COMPLETE).exists() {
        tracing::warn!("removing an incomplete checkpoint copy from the primary");
        remove_dir(&dir)?;
        return Ok(None);
    }
    let state = NodeState::load(&dir)?;
    let checkpoint = data_dir.join(CHECKPOINT_DIR);
    remove_dir(&checkpoint)?;
    remove_dir(&data_dir.join(LOG_DIR))?;
    std::fs::remove_file(dir.join(COMPLETE)).map_err(|e| io_error(&dir, e))?;
    std::fs::remove_file(NodeState::path(&dir)).map_err(|e| io_error(&dir, e))?;
    std::fs::rename(&dir, &checkpoint).map_err(|e| io_error(&checkpoint, e))?;
    state.save(data_dir)?;
    sync_dir(data_dir)?;
    let lsn = crate::checkpoint::manifest::list_manifests(&checkpoint)?
        .first()
        .map(|(lsn, _)| *lsn);
    tracing::info!(
        lsn = lsn.unwrap_or(0),
        "installed the checkpoint copy received from the primary"
    );
    Ok(lsn)
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(dir, e)),
    }
}

fn check_name(name: &str) -> Result<()> {
    let manifest = name.starts_with("manifest-") && !name.contains('/');
    let data = name.strip_prefix("data/").is_some_and(|file| {
        file.ends_with(".kpart") && !file.contains('/') && !file.contains("..")
    });
    if manifest || data {
        Ok(())
    } else {
        Err(bad(format!("refusing to write file {name:?}")))
    }
}

fn bad(message: String) -> KuraError {
    KuraError::new(
        sqlstate::PROTOCOL_VIOLATION,
        format!("checkpoint copy: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(files: &[(&str, u64)]) -> CopyHeader {
        CopyHeader {
            lsn: 7,
            files: files.iter().map(|(n, l)| (n.to_string(), *l)).collect(),
            state: NodeState::default(),
        }
    }

    #[test]
    fn a_complete_copy_replaces_checkpoints_and_log_at_start() {
        let data = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(data.path().join(LOG_DIR)).unwrap();
        std::fs::write(data.path().join(LOG_DIR).join("old.wal"), b"old").unwrap();
        let files = [("manifest-00000000000000000007", 3), ("data/t1.kpart", 4)];
        let mut copy = IncomingCopy::begin(data.path(), header(&files)).unwrap();
        copy.write("manifest-00000000000000000007", b"abc").unwrap();
        copy.write("data/t1.kpart", b"de").unwrap();
        copy.write("data/t1.kpart", b"fg").unwrap();
        assert_eq!(copy.complete().unwrap(), 7);
        assert_eq!(install_pending(data.path()).unwrap(), Some(7));
        let checkpoint = data.path().join(CHECKPOINT_DIR);
        assert_eq!(
            std::fs::read(checkpoint.join("data/t1.kpart")).unwrap(),
            b"defg"
        );
        assert!(!data.path().join(LOG_DIR).exists());
        assert!(!data.path().join(INCOMING_DIR).exists());
    }

    #[test]
    fn short_or_foreign_files_are_refused_and_incomplete_copies_dropped() {
        let data = tempfile::tempdir().unwrap();
        assert!(IncomingCopy::begin(data.path(), header(&[("../etc/passwd", 1)])).is_err());
        assert!(IncomingCopy::begin(data.path(), header(&[("data/../x.kpart", 1)])).is_err());
        let mut copy = IncomingCopy::begin(data.path(), header(&[("data/a.kpart", 5)])).unwrap();
        assert!(copy.write("data/b.kpart", b"x").is_err());
        copy.write("data/a.kpart", b"abc").unwrap();
        assert!(copy.complete().is_err());
        assert_eq!(install_pending(data.path()).unwrap(), None);
        assert!(!data.path().join(INCOMING_DIR).exists());
    }
}
