//! Log records and their byte format (log format version [`LOG_FORMAT_VERSION`], documented
//! in docs/STORAGE_FORMAT.md).
//!
//! A record frame is a 17-byte header — payload length (u32), CRC32C (u32) over everything
//! after it, LSN (u64), flags (u8; bit 0 = payload compressed with zstd) — and the payload.
//! The payload is a body kind byte followed by the body: a committed transaction's changes per
//! data partition (rows inserted as an Arrow IPC stream, versions deleted by serial), or one
//! catalog change as JSON. All integers are little-endian. A commit with more than
//! [`COMMIT_FRAME_BUDGET`] bytes of rows continues over frames with consecutive LSNs (parts,
//! then the commit's own frame), which the segment scan joins.
//!
//! Invariants: decoding never panics and never allocates more than the frame says it holds;
//! a frame decodes only if its checksum matches, so a torn or overwritten record is detected.

use std::io::Cursor;

use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{KuraError, Result};
use crate::security::{Privilege, StoredUser};
use crate::storage::chunk::Serial;
use crate::storage::stored::{StoredTable, StoredView};
use crate::storage::{PartitionKey, TableId};

/// Log sequence number: the commit timestamp of the transaction or DDL the record holds.
pub type Lsn = u64;

/// Version of the checkpoint format written by this build.
pub const FORMAT_VERSION: u32 = 2;

/// Version of the log format written by this build: 3 adds commits spanning several frames,
/// 4 the time of commits (kind 4) and catalog changes (kind 5).
pub const LOG_FORMAT_VERSION: u32 = 4;

/// The oldest log format this build reads (its records are a subset of version 4's).
pub const OLDEST_LOG_FORMAT_VERSION: u32 = 2;

pub const FRAME_HEADER_LEN: usize = 17;

/// Largest payload a frame may declare; anything larger is treated as corruption.
pub const MAX_PAYLOAD_LEN: usize = 1 << 30;

/// Payloads at least this long are compressed when log compression is on.
const COMPRESS_MIN_LEN: usize = 256;

const FLAG_ZSTD: u8 = 1;
const KIND_COMMIT: u8 = 1;
const KIND_CATALOG: u8 = 2;
/// Changes of a commit too large for one frame, continued in the frames with the next LSNs
/// up to the commit's own `KIND_COMMIT` frame (format version 3).
const KIND_COMMIT_PART: u8 = 3;
/// A commit's last (or only) frame with the server clock's time of the commit, in
/// microseconds since the Unix epoch, before the changes (format version 4): what
/// point-in-time restore compares its target with.
const KIND_TIMED_COMMIT: u8 = 4;
/// A catalog change with the server clock's time of the change (µs since the Unix epoch)
/// before its JSON (format version 4).
const KIND_TIMED_CATALOG: u8 = 5;

/// Uncompressed bytes of encoded rows a commit puts in one frame before it continues in
/// another (far below [`MAX_PAYLOAD_LEN`], so that no commit meets that limit).
pub const COMMIT_FRAME_BUDGET: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct LogRecord {
    pub lsn: Lsn,
    pub body: RecordBody,
}

#[derive(Debug, Clone)]
pub enum RecordBody {
    Commit(Vec<PartitionChange>),
    Catalog(CatalogChange),
}

/// What one committed transaction did to one data partition.
#[derive(Debug, Clone)]
pub struct PartitionChange {
    pub table: TableId,
    pub partition: PartitionKey,
    /// Serials of the committed versions this transaction deleted.
    pub deleted: Vec<Serial>,
    /// Serial of the first inserted row; the others follow in order.
    pub first_serial: Serial,
    /// Inserted rows, all in the table definition's shape at commit time.
    pub inserted: Vec<RecordBatch>,
}

impl PartitionChange {
    pub fn inserted_rows(&self) -> usize {
        self.inserted.iter().map(|b| b.num_rows()).sum()
    }
}

/// A change to the catalog. A table definition is logged whole after every change to it, so
/// replay only needs "put" and "drop".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogChange {
    PutTable(Box<StoredTable>),
    DropTable {
        id: TableId,
        name: String,
    },
    PutView(StoredView),
    DropView {
        #[serde(default = "crate::storage::stored::public_database")]
        database: String,
        name: String,
    },
    /// Expired data partitions released by the background reaper.
    ReleasePartitions {
        table: TableId,
        partitions: Vec<PartitionKey>,
    },
    /// CREATE DATABASE.
    PutDatabase(StoredDatabase),
    /// DROP DATABASE (of an empty database).
    DropDatabase {
        name: String,
    },
    /// CREATE USER, or a user's new password: the whole entry.
    PutUser(StoredUser),
    DropUser {
        name: String,
    },
    /// GRANT (`privilege` set) or REVOKE (`None`) on one database.
    SetGrant {
        user: String,
        database: String,
        privilege: Option<Privilege>,
    },
    /// A promotion: epoch `epoch` begins with this record.
    NewEpoch {
        epoch: u64,
    },
}

/// A database as logged: its name and the number behind its oid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDatabase {
    pub name: String,
    pub id: u32,
}

fn corrupt(what: impl Into<String>) -> KuraError {
    KuraError::internal(format!("corrupt log record: {}", what.into()))
}

impl LogRecord {
    /// The record as a complete frame.
    pub fn encode(&self, compress: bool) -> Result<Vec<u8>> {
        match &self.body {
            RecordBody::Commit(changes) => {
                let ipc = changes
                    .iter()
                    .map(|c| encode_batches(&c.inserted))
                    .collect::<Result<Vec<_>>>()?;
                encode_commit(self.lsn, changes, &ipc, compress, CommitFrame::Last(None))
            }
            RecordBody::Catalog(change) => encode_catalog(self.lsn, change, compress, None),
        }
    }

    /// Decodes a frame whose header has been checked by [`FrameHeader::parse`] and whose
    /// payload is `payload`.
    pub fn decode(header: &FrameHeader, payload: &[u8]) -> Result<Decoded> {
        if header.checksum(payload) != header.crc {
            return Err(corrupt("checksum mismatch"));
        }
        let unpacked;
        let payload = if header.flags & FLAG_ZSTD != 0 {
            unpacked = zstd::stream::decode_all(payload)
                .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
            &unpacked[..]
        } else {
            payload
        };
        let mut reader = Reader(payload);
        let kind = reader.u8()?;
        if kind == KIND_TIMED_COMMIT || kind == KIND_TIMED_CATALOG {
            reader.u64()?;
        }
        let body = match kind {
            KIND_COMMIT | KIND_COMMIT_PART | KIND_TIMED_COMMIT => {
                let count = reader.u32()? as usize;
                let mut changes = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    changes.push(decode_change(&mut reader)?);
                }
                if kind == KIND_COMMIT_PART {
                    return Ok(Decoded::CommitPart(header.lsn, changes));
                }
                RecordBody::Commit(changes)
            }
            KIND_CATALOG | KIND_TIMED_CATALOG => RecordBody::Catalog(
                serde_json::from_slice(reader.0).map_err(|e| corrupt(e.to_string()))?,
            ),
            other => return Err(corrupt(format!("unknown record kind {other}"))),
        };
        Ok(Decoded::Record(LogRecord {
            lsn: header.lsn,
            body,
        }))
    }
}

/// One decoded frame: a whole record, or a part of a commit that later frames complete (the
/// segment scan joins them, so readers of records never see parts).
#[derive(Debug)]
pub enum Decoded {
    Record(LogRecord),
    CommitPart(Lsn, Vec<PartitionChange>),
}

/// Which frame of a commit is being encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitFrame {
    /// One that the frames with the next LSNs continue.
    Part,
    /// The commit's last (or only) frame, with the commit's time in microseconds since the
    /// Unix epoch when it is known.
    Last(Option<i64>),
}

/// A commit frame, with the inserted rows of each change already encoded by
/// [`encode_batches`] (so the expensive part can run outside the commit lock).
pub fn encode_commit(
    lsn: Lsn,
    changes: &[PartitionChange],
    ipc: &[impl AsRef<[u8]>],
    compress: bool,
    role: CommitFrame,
) -> Result<Vec<u8>> {
    if ipc.len() != changes.len() {
        return Err(KuraError::internal("encoded rows do not match the changes"));
    }
    let mut payload = match role {
        CommitFrame::Part => vec![KIND_COMMIT_PART],
        CommitFrame::Last(None) => vec![KIND_COMMIT],
        CommitFrame::Last(Some(micros)) => {
            let mut payload = vec![KIND_TIMED_COMMIT];
            payload.extend_from_slice(&micros.to_le_bytes());
            payload
        }
    };
    put_u32(&mut payload, len_u32(changes.len())?);
    for (change, ipc) in changes.iter().zip(ipc) {
        encode_change(&mut payload, change, ipc.as_ref())?;
    }
    frame(lsn, payload, compress)
}

/// A catalog record frame, with the change's time in microseconds since the Unix epoch when
/// it is known.
pub fn encode_catalog(
    lsn: Lsn,
    change: &CatalogChange,
    compress: bool,
    time: Option<i64>,
) -> Result<Vec<u8>> {
    let mut payload = match time {
        None => vec![KIND_CATALOG],
        Some(micros) => {
            let mut payload = vec![KIND_TIMED_CATALOG];
            payload.extend_from_slice(&micros.to_le_bytes());
            payload
        }
    };
    serde_json::to_writer(&mut payload, change)
        .map_err(|e| KuraError::internal(format!("cannot encode DDL record: {e}")))?;
    frame(lsn, payload, compress)
}

fn frame(lsn: Lsn, mut payload: Vec<u8>, compress: bool) -> Result<Vec<u8>> {
    let mut flags = 0;
    if compress && payload.len() >= COMPRESS_MIN_LEN {
        let packed = zstd::bulk::compress(&payload, 1)
            .map_err(|e| KuraError::internal(format!("cannot compress log record: {e}")))?;
        if packed.len() < payload.len() {
            payload = packed;
            flags |= FLAG_ZSTD;
        }
    }
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(KuraError::new(
            crate::error::sqlstate::PROGRAM_LIMIT_EXCEEDED,
            "transaction too large: its log record exceeds 1 GB",
        ));
    }
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    put_u32(&mut frame, len_u32(payload.len())?);
    put_u32(&mut frame, 0);
    frame.extend_from_slice(&lsn.to_le_bytes());
    frame.push(flags);
    frame.extend_from_slice(&payload);
    let crc = crc32c::crc32c(&frame[8..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(frame)
}

/// The fixed header of a frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameHeader {
    pub payload_len: usize,
    pub crc: u32,
    pub lsn: Lsn,
    pub flags: u8,
}

impl FrameHeader {
    pub fn parse(bytes: &[u8; FRAME_HEADER_LEN]) -> FrameHeader {
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let mut lsn = [0u8; 8];
        lsn.copy_from_slice(&bytes[8..16]);
        FrameHeader {
            payload_len: u32_at(0) as usize,
            crc: u32_at(4),
            lsn: u64::from_le_bytes(lsn),
            flags: bytes[16],
        }
    }

    fn checksum(&self, payload: &[u8]) -> u32 {
        let mut head = [0u8; 9];
        head[..8].copy_from_slice(&self.lsn.to_le_bytes());
        head[8] = self.flags;
        crc32c::crc32c_append(crc32c::crc32c(&head), payload)
    }

    /// What kind of frame this is, from its payload, without decoding its changes: checks
    /// the checksum and unpacks only the first bytes of a compressed payload.
    pub fn peek(&self, payload: &[u8]) -> Result<FrameKind> {
        if self.checksum(payload) != self.crc {
            return Err(corrupt("checksum mismatch"));
        }
        let mut head = [0u8; 9];
        let head = if self.flags & FLAG_ZSTD != 0 {
            let mut decoder = zstd::stream::read::Decoder::new(payload)
                .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
            let mut filled = 0;
            while filled < head.len() {
                match std::io::Read::read(&mut decoder, &mut head[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => return Err(corrupt(format!("cannot decompress: {e}"))),
                }
            }
            &head[..filled]
        } else {
            &payload[..payload.len().min(head.len())]
        };
        let mut reader = Reader(head);
        Ok(match reader.u8()? {
            KIND_COMMIT => FrameKind::Commit { time: None },
            KIND_TIMED_COMMIT => FrameKind::Commit {
                time: Some(reader.u64()? as i64),
            },
            KIND_COMMIT_PART => FrameKind::CommitPart,
            KIND_CATALOG => FrameKind::Catalog { time: None },
            KIND_TIMED_CATALOG => FrameKind::Catalog {
                time: Some(reader.u64()? as i64),
            },
            other => return Err(corrupt(format!("unknown record kind {other}"))),
        })
    }
}

/// A frame's kind as [`FrameHeader::peek`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A commit's last (or only) frame, with the commit's time (µs since the Unix epoch)
    /// when the log records it (format version 4).
    Commit { time: Option<i64> },
    /// A frame of a commit that later frames continue.
    CommitPart,
    /// A catalog change, with its time when the log records it (format version 4).
    Catalog { time: Option<i64> },
}

fn encode_change(out: &mut Vec<u8>, change: &PartitionChange, ipc: &[u8]) -> Result<()> {
    out.extend_from_slice(&change.table.to_le_bytes());
    out.extend_from_slice(&change.partition.interval.to_le_bytes());
    out.extend_from_slice(&change.partition.bucket.to_le_bytes());
    out.extend_from_slice(&change.first_serial.to_le_bytes());
    put_u32(out, len_u32(change.deleted.len())?);
    for serial in &change.deleted {
        out.extend_from_slice(&serial.to_le_bytes());
    }
    put_u32(out, len_u32(ipc.len())?);
    out.extend_from_slice(ipc);
    Ok(())
}

fn decode_change(reader: &mut Reader) -> Result<PartitionChange> {
    let table = reader.u64()?;
    let partition = PartitionKey {
        interval: reader.u64()? as i64,
        bucket: reader.u32()?,
    };
    let first_serial = reader.u64()?;
    let deleted_count = reader.u32()? as usize;
    if deleted_count > reader.0.len() / 8 {
        return Err(corrupt("deleted count exceeds the record"));
    }
    let mut deleted = Vec::with_capacity(deleted_count);
    for _ in 0..deleted_count {
        deleted.push(reader.u64()?);
    }
    let ipc_len = reader.u32()? as usize;
    let inserted = decode_batches(reader.take(ipc_len)?)?;
    Ok(PartitionChange {
        table,
        partition,
        deleted,
        first_serial,
        inserted,
    })
}

/// Batches of one schema as an Arrow IPC stream; no bytes for no batches.
pub fn encode_batches(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &first.schema())?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(out)
}

pub fn decode_batches(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let reader = StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| corrupt(format!("bad Arrow IPC stream: {e}")))?;
    reader
        .map(|batch| batch.map_err(|e| corrupt(format!("bad Arrow IPC batch: {e}"))))
        .collect()
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn len_u32(len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| KuraError::internal("log record part exceeds 4 GB"))
}

/// A bounds-checked little-endian reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.0.len() {
            return Err(corrupt("record ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("row {i}")),
                )),
            ],
        )
        .unwrap()
    }

    fn commit(lsn: Lsn) -> LogRecord {
        LogRecord {
            lsn,
            body: RecordBody::Commit(vec![PartitionChange {
                table: 7,
                partition: PartitionKey {
                    interval: -3,
                    bucket: 5,
                },
                deleted: vec![1, 5, 9],
                first_serial: 100,
                inserted: vec![batch(50), batch(3)],
            }]),
        }
    }

    fn decode_frame(frame: &[u8]) -> Result<LogRecord> {
        let header = FrameHeader::parse(frame[..FRAME_HEADER_LEN].try_into().unwrap());
        assert_eq!(header.payload_len, frame.len() - FRAME_HEADER_LEN);
        match LogRecord::decode(&header, &frame[FRAME_HEADER_LEN..])? {
            Decoded::Record(record) => Ok(record),
            Decoded::CommitPart(..) => panic!("a commit part"),
        }
    }

    #[test]
    fn commit_records_round_trip_with_and_without_compression() {
        for compress in [false, true] {
            let frame = commit(42).encode(compress).unwrap();
            let record = decode_frame(&frame).unwrap();
            assert_eq!(record.lsn, 42);
            let RecordBody::Commit(changes) = record.body else {
                panic!("not a commit")
            };
            assert_eq!(changes[0].deleted, vec![1, 5, 9]);
            assert_eq!(changes[0].first_serial, 100);
            assert_eq!(changes[0].inserted_rows(), 53);
            assert_eq!(changes[0].inserted[0], batch(50));
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let frame = commit(3).encode(false).unwrap();
        for i in 4..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x40;
            assert!(
                decode_frame(&bad).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn catalog_records_round_trip() {
        let record = LogRecord {
            lsn: 9,
            body: RecordBody::Catalog(CatalogChange::DropView {
                database: "public".into(),
                name: "v".into(),
            }),
        };
        let decoded = decode_frame(&record.encode(true).unwrap()).unwrap();
        let RecordBody::Catalog(change) = decoded.body else {
            panic!("not a catalog record")
        };
        assert_eq!(
            change,
            CatalogChange::DropView {
                database: "public".into(),
                name: "v".into()
            }
        );
    }
}
