//! Log segment files: naming, the segment header, and scanning a segment's records.
//!
//! A segment is named after the LSN of its first record (`00000000000000000042.wal`, 20
//! digits so names sort by LSN) and starts with a 32-byte header: magic `KURALOG\0`, format
//! version (u32), reserved (u32), first LSN (u64), CRC32C of the preceding 24 bytes (u32),
//! reserved (u32). Frames follow back to back (see [`super::record`]).
//!
//! Invariants: a scan reports exactly where the valid records end and why; it never reads
//! past the file's length and never trusts a length field it has not bounded by the file size.
//! A commit spanning several frames reaches the visitor only once its last frame has been
//! read and checked, one frame at a time (the frames are read again then), so a scan holds
//! one frame's rows in memory whatever the size of the commit.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::{
    Decoded, FRAME_HEADER_LEN, FrameHeader, LOG_FORMAT_VERSION, LogRecord, Lsn, MAX_PAYLOAD_LEN,
    OLDEST_LOG_FORMAT_VERSION, PartitionChange, RecordBody,
};
use crate::error::{KuraError, Result};

pub const SEGMENT_HEADER_LEN: u64 = 32;
const MAGIC: &[u8; 8] = b"KURALOG\0";
const SUFFIX: &str = ".wal";

pub fn segment_name(first_lsn: Lsn) -> String {
    format!("{first_lsn:020}{SUFFIX}")
}

/// The segments in `dir`, ordered by first LSN. Files that are not segments are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<(Lsn, PathBuf)>> {
    super::lsn_named_files(dir, "", SUFFIX)
}

pub fn header_bytes(first_lsn: Lsn) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&LOG_FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&header[..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Why a scan stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The segment header is missing, short or wrong.
    BadHeader(String),
    /// The last frame is incomplete (a write cut short).
    Torn,
    /// A complete frame fails its checksum or cannot be decoded.
    Corrupt(String),
    /// A frame carries an LSN other than the next one.
    Discontinuity { found: Lsn },
    /// The segment ends inside a commit spanning several frames (its last one was never
    /// written, so the commit was never acknowledged).
    IncompleteCommit,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::BadHeader(why) => write!(f, "bad segment header: {why}"),
            Damage::Torn => f.write_str("incomplete record (torn write)"),
            Damage::Corrupt(why) => write!(f, "corrupt record: {why}"),
            Damage::Discontinuity { found } => write!(f, "unexpected LSN {found}"),
            Damage::IncompleteCommit => f.write_str("a commit's last frame is missing"),
        }
    }
}

/// What a scan hands its visitor, in log order.
#[derive(Debug)]
pub enum Scanned {
    /// A record in one frame.
    Record(LogRecord),
    /// The changes of one frame of a commit spanning several. Every part carries the commit's
    /// LSN (its last frame's); `last` marks the final part.
    CommitPart {
        lsn: Lsn,
        changes: Vec<PartitionChange>,
        last: bool,
    },
}

impl Scanned {
    /// The LSN of the record, or of the commit the part belongs to.
    pub fn lsn(&self) -> Lsn {
        match self {
            Scanned::Record(record) => record.lsn,
            Scanned::CommitPart { lsn, .. } => *lsn,
        }
    }
}

/// The result of scanning one segment.
#[derive(Debug, Clone)]
pub struct SegmentScan {
    pub path: PathBuf,
    pub first_lsn: Lsn,
    pub file_len: u64,
    /// Bytes from the start of the file up to the end of the last valid record.
    pub valid_len: u64,
    pub records: u64,
    /// LSN of the last valid record, if any.
    pub last_lsn: Option<Lsn>,
    /// Set when the scan stopped early: what is wrong and the LSN expected there.
    pub damage: Option<(Damage, Lsn)>,
}

impl SegmentScan {
    pub fn next_lsn(&self) -> Lsn {
        self.last_lsn.map_or(self.first_lsn, |l| l + 1)
    }
}

/// Reads the records of the segment at `path` (named for `first_lsn`) in order, handing each
/// valid one to `visit`, and stops at the first damaged byte.
pub fn scan_segment(
    path: &Path,
    first_lsn: Lsn,
    mut visit: impl FnMut(Scanned) -> Result<()>,
) -> Result<SegmentScan> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let file_len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut scan = SegmentScan {
        path: path.to_path_buf(),
        first_lsn,
        file_len,
        valid_len: 0,
        records: 0,
        last_lsn: None,
        damage: None,
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    if let Err(why) = read_exact_or_eof(&mut reader, &mut header, path)?
        .then_some(())
        .ok_or("the file is shorter than a segment header".to_string())
        .and_then(|()| check_header(&header, first_lsn))
    {
        scan.damage = Some((Damage::BadHeader(why), first_lsn));
        return Ok(scan);
    }
    scan.valid_len = SEGMENT_HEADER_LEN;
    let mut expected = first_lsn;
    let mut payload = Vec::new();
    let mut pending: Option<PendingCommit> = None;
    loop {
        if scan.valid_len == file_len {
            if pending.is_some() {
                return Ok(stopped(scan, Damage::IncompleteCommit, expected, pending));
            }
            return Ok(scan);
        }
        let mut frame = [0u8; FRAME_HEADER_LEN];
        if !read_exact_or_eof(&mut reader, &mut frame, path)? {
            return Ok(stopped(scan, Damage::Torn, expected, pending));
        }
        let header = FrameHeader::parse(&frame);
        let remaining = file_len - scan.valid_len - FRAME_HEADER_LEN as u64;
        if header.payload_len > MAX_PAYLOAD_LEN {
            let why = format!("length {} is impossible", header.payload_len);
            return Ok(stopped(scan, Damage::Corrupt(why), expected, pending));
        }
        if header.payload_len as u64 > remaining {
            return Ok(stopped(scan, Damage::Torn, expected, pending));
        }
        payload.resize(header.payload_len, 0);
        reader
            .read_exact(&mut payload)
            .map_err(|e| io_error(path, e))?;
        let decoded = match LogRecord::decode(&header, &payload) {
            Ok(decoded) => decoded,
            Err(e) => return Ok(stopped(scan, Damage::Corrupt(e.message), expected, pending)),
        };
        if header.lsn != expected {
            let damage = Damage::Discontinuity { found: header.lsn };
            return Ok(stopped(scan, damage, expected, pending));
        }
        let frame_end = scan.valid_len + (FRAME_HEADER_LEN + header.payload_len) as u64;
        match (decoded, pending.take()) {
            (Decoded::CommitPart(lsn, _), None) => {
                pending = Some(PendingCommit {
                    start: scan.valid_len,
                    first_lsn: lsn,
                    parts: 1,
                });
            }
            (Decoded::CommitPart(..), Some(mut part)) => {
                part.parts += 1;
                pending = Some(part);
            }
            (Decoded::Record(record), None) => visit(Scanned::Record(record))?,
            (
                Decoded::Record(LogRecord {
                    lsn,
                    body: RecordBody::Commit(changes),
                }),
                Some(part),
            ) => {
                revisit_parts(path, &part, lsn, &mut visit)?;
                visit(Scanned::CommitPart {
                    lsn,
                    changes,
                    last: true,
                })?;
            }
            (Decoded::Record(_), Some(part)) => {
                let why = "a catalog change inside a commit spanning several frames".to_string();
                return Ok(stopped(scan, Damage::Corrupt(why), expected, Some(part)));
            }
        }
        scan.valid_len = frame_end;
        if pending.is_none() {
            scan.records += 1;
            scan.last_lsn = Some(expected);
        }
        expected += 1;
    }
}

/// The first frames of a commit whose last frame has not been read yet.
struct PendingCommit {
    /// Where its first frame starts.
    start: u64,
    first_lsn: Lsn,
    /// How many frames (all but the last) there are.
    parts: u64,
}

/// Reads the checked parts of a commit again and hands them to `visit` as parts of commit
/// `lsn`.
fn revisit_parts(
    path: &Path,
    part: &PendingCommit,
    lsn: Lsn,
    visit: &mut impl FnMut(Scanned) -> Result<()>,
) -> Result<()> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    file.seek(SeekFrom::Start(part.start))
        .map_err(|e| io_error(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut payload = Vec::new();
    for _ in 0..part.parts {
        let mut frame = [0u8; FRAME_HEADER_LEN];
        reader
            .read_exact(&mut frame)
            .map_err(|e| io_error(path, e))?;
        let header = FrameHeader::parse(&frame);
        payload.resize(header.payload_len.min(MAX_PAYLOAD_LEN), 0);
        reader
            .read_exact(&mut payload)
            .map_err(|e| io_error(path, e))?;
        let Decoded::CommitPart(_, changes) = LogRecord::decode(&header, &payload)? else {
            return Err(KuraError::internal(format!(
                "{}: a commit part changed while it was read",
                path.display()
            )));
        };
        visit(Scanned::CommitPart {
            lsn,
            changes,
            last: false,
        })?;
    }
    Ok(())
}

/// `scan` stopped by `damage` where LSN `expected` was due; inside a commit spanning several
/// frames, the valid part ends before the commit's first frame.
fn stopped(
    mut scan: SegmentScan,
    damage: Damage,
    expected: Lsn,
    pending: Option<PendingCommit>,
) -> SegmentScan {
    match pending {
        Some(part) => {
            scan.valid_len = part.start;
            scan.damage = Some((damage, part.first_lsn));
        }
        None => scan.damage = Some((damage, expected)),
    }
    scan
}

pub fn check_header(
    header: &[u8; SEGMENT_HEADER_LEN as usize],
    first_lsn: Lsn,
) -> std::result::Result<(), String> {
    if &header[..8] != MAGIC {
        return Err("not a Kura log segment".into());
    }
    let crc = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
    if crc != crc32c::crc32c(&header[..24]) {
        return Err("header checksum mismatch".into());
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if !(OLDEST_LOG_FORMAT_VERSION..=LOG_FORMAT_VERSION).contains(&version) {
        return Err(format!(
            "format version {version} (this build reads versions \
             {OLDEST_LOG_FORMAT_VERSION} to {LOG_FORMAT_VERSION})"
        ));
    }
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&header[16..24]);
    let lsn = u64::from_le_bytes(lsn);
    if lsn != first_lsn {
        return Err(format!(
            "header says first LSN {lsn}, file name says {first_lsn}"
        ));
    }
    Ok(())
}

/// Fills `buf`; false if the file ended first.
fn read_exact_or_eof(reader: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io_error(path, e)),
    }
}

pub fn io_error(path: &Path, e: std::io::Error) -> KuraError {
    KuraError::io(format!("{}: {e}", path.display()), &e)
}
