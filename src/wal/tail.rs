//! Reading the log from a given LSN on while it is being written: the frames a replication
//! sender ships to a standby, byte for byte as they lie in the segments.
//!
//! Invariants: only frames at or below an LSN the caller knows to be written are read, so
//! every frame read is whole; frames come out in LSN order without gaps; reads are positional
//! (no buffer outlives a call), so bytes of an append that failed and was cut back are never
//! returned; the reader leaves a segment for the one named after the next LSN only when the
//! current one has no more bytes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::record::{FRAME_HEADER_LEN, FrameHeader, Lsn, MAX_PAYLOAD_LEN};
use super::segment::{SEGMENT_HEADER_LEN, io_error, list_segments, segment_name};
use crate::error::{KuraError, Result};

/// A reader positioned at one LSN of the log.
#[derive(Debug)]
pub struct LogTail {
    dir: PathBuf,
    next: Lsn,
    file: File,
    path: PathBuf,
    offset: u64,
}

impl LogTail {
    /// A reader whose first frame will be `next`, or `None` when the log no longer holds it
    /// (its segment was removed after a checkpoint). `next` must not be past the log's end
    /// plus one.
    pub fn open(dir: &Path, next: Lsn) -> Result<Option<LogTail>> {
        let segments = list_segments(dir)?;
        let Some((first, path)) = segments.iter().rev().find(|(first, _)| *first <= next) else {
            return Ok(None);
        };
        let file = File::open(path).map_err(|e| io_error(path, e))?;
        let mut tail = LogTail {
            dir: dir.to_path_buf(),
            next: *first,
            file,
            path: path.clone(),
            offset: SEGMENT_HEADER_LEN,
        };
        while tail.next < next {
            match tail.header()? {
                Some(header) => tail.offset += (FRAME_HEADER_LEN + header.payload_len) as u64,
                None => {
                    return Err(KuraError::internal(format!(
                        "log segment {} ends at LSN {} before LSN {next}",
                        path.display(),
                        tail.next
                    )));
                }
            }
            tail.next += 1;
        }
        Ok(Some(tail))
    }

    /// The LSN of the next frame to be read.
    pub fn next_lsn(&self) -> Lsn {
        self.next
    }

    /// Appends the frames from the next LSN through `through` (which the caller knows to be
    /// written) to `out`, stopping early once this call has added `budget` bytes (always at
    /// least one frame); returns how many frames.
    pub fn read(&mut self, through: Lsn, budget: usize, out: &mut Vec<u8>) -> Result<u64> {
        let mut count = 0;
        let start = out.len();
        while self.next <= through && (count == 0 || out.len() - start < budget) {
            let header = match self.header()? {
                Some(header) => header,
                None => {
                    self.enter_next_segment()?;
                    continue;
                }
            };
            let len = FRAME_HEADER_LEN + header.payload_len;
            let start = out.len();
            out.resize(start + len, 0);
            self.file
                .read_exact_at(&mut out[start..], self.offset)
                .map_err(|e| io_error(&self.path, e))?;
            self.offset += len as u64;
            self.next += 1;
            count += 1;
        }
        Ok(count)
    }

    /// The header of the frame at the reader's offset, checked to carry the next LSN; `None`
    /// at the end of the segment.
    fn header(&self) -> Result<Option<FrameHeader>> {
        let mut bytes = [0u8; FRAME_HEADER_LEN];
        let len = self
            .file
            .metadata()
            .map_err(|e| io_error(&self.path, e))?
            .len();
        if self.offset >= len {
            return Ok(None);
        }
        self.file
            .read_exact_at(&mut bytes, self.offset)
            .map_err(|e| io_error(&self.path, e))?;
        let header = FrameHeader::parse(&bytes);
        if header.lsn != self.next || header.payload_len > MAX_PAYLOAD_LEN {
            return Err(KuraError::internal(format!(
                "log segment {} holds LSN {} at offset {} where LSN {} was expected",
                self.path.display(),
                header.lsn,
                self.offset,
                self.next
            )));
        }
        Ok(Some(header))
    }

    fn enter_next_segment(&mut self) -> Result<()> {
        let path = self.dir.join(segment_name(self.next));
        self.file = File::open(&path).map_err(|e| io_error(&path, e))?;
        self.path = path;
        self.offset = SEGMENT_HEADER_LEN;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::TxnLog;
    use crate::wal::tests::{frame, options};

    fn lsns_of(bytes: &[u8]) -> Vec<Lsn> {
        let mut lsns = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let header: [u8; FRAME_HEADER_LEN] =
                bytes[at..at + FRAME_HEADER_LEN].try_into().unwrap();
            let header = FrameHeader::parse(&header);
            lsns.push(header.lsn);
            at += FRAME_HEADER_LEN + header.payload_len;
        }
        lsns
    }

    #[test]
    fn frames_are_read_from_any_lsn_across_segments_as_they_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = TxnLog::open(options(dir.path(), 150), 1).unwrap();
        for lsn in 1..=5 {
            log.append(lsn, &frame(lsn)).unwrap();
        }
        assert!(list_segments(dir.path()).unwrap().len() > 1);
        let mut tail = LogTail::open(dir.path(), 3).unwrap().unwrap();
        let mut out = Vec::new();
        assert_eq!(
            tail.read(log.written_lsn(), usize::MAX, &mut out).unwrap(),
            3
        );
        assert_eq!(lsns_of(&out), vec![3, 4, 5]);
        // Nothing new yet; then the log grows (and rotates) under the reader.
        out.clear();
        assert_eq!(
            tail.read(log.written_lsn(), usize::MAX, &mut out).unwrap(),
            0
        );
        for lsn in 6..=9 {
            log.append(lsn, &frame(lsn)).unwrap();
        }
        assert_eq!(tail.read(7, usize::MAX, &mut out).unwrap(), 2);
        assert_eq!(tail.read(9, 1, &mut out).unwrap(), 1, "the budget stops it");
        assert_eq!(lsns_of(&out), vec![6, 7, 8]);
        assert_eq!(tail.next_lsn(), 9);
        log.close().unwrap();
    }

    #[test]
    fn a_removed_lsn_is_reported_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let log = TxnLog::open(options(dir.path(), 1 << 20), 10).unwrap();
        log.append(10, &frame(10)).unwrap();
        assert!(LogTail::open(dir.path(), 9).unwrap().is_none());
        assert!(LogTail::open(dir.path(), 10).unwrap().is_some());
        assert!(LogTail::open(dir.path(), 11).unwrap().is_some());
        log.close().unwrap();
    }
}
