//! Column chunks: the unit of storage inside a data partition.
//!
//! A chunk holds up to `capacity` row versions as Arrow record batches ("segments", one per
//! applied commit until they are merged) plus two stamps per row: `begin` (the commit timestamp
//! that created the version) and `end` (the commit timestamp that deleted it, or
//! [`TS_LIVE`]). A snapshot at `S` sees a row when `begin <= S < end`.
//!
//! Invariants:
//! - Column data and `begin` stamps never change once a row is published; appending creates a
//!   new `Chunk` value that shares the same [`Stamps`], so row positions are stable.
//! - `end` stamps are the only mutable state; they are written once, by the commit that
//!   deletes the version, while that transaction holds the row's lock.
//! - A [`RowId`] names one row version for as long as its chunk exists.
//! - Every row version also has a *serial*: a number unique within its data partition, assigned
//!   in commit order and kept across compaction, checkpoints and log replay. The transaction log
//!   names deleted versions by serial, because row ids change when chunks are rewritten.
//!   Within a chunk serials increase with the offset.
//! - A sealed chunk's column data may be swapped out to a file (`storage::swap`); its stamps
//!   and serials stay in memory, so visibility and deletes never read the file.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{ArrayRef, BooleanArray, BooleanBufferBuilder, UInt64Array};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::record_batch::RecordBatch;

use super::swap::SwappedRows;
use crate::error::{KuraError, Result};

/// A commit timestamp. Timestamps increase with every commit.
pub type Ts = u64;

/// The `end` stamp of a version that no commit has deleted.
pub const TS_LIVE: Ts = u64::MAX;

/// Segments kept separate before an open chunk merges them into one batch.
const MAX_SEGMENTS: usize = 16;

/// Ticks once per chunk read: chunks read longest ago are swapped out first.
static READ_CLOCK: AtomicU64 = AtomicU64::new(1);

/// Bytes of the buffers `batch` covers: a slice counts only its part of shared buffers.
pub fn slice_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// Identifies one row version: data partition, chunk and offset in the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowId(pub u64);

/// Row ids with this partition number name rows a transaction inserted but has not committed.
pub const PRIVATE_PARTITION: u64 = 0xFFFF;

impl RowId {
    pub fn new(partition: u16, chunk: u32, offset: u16) -> RowId {
        RowId(((partition as u64) << 48) | ((chunk as u64) << 16) | offset as u64)
    }

    /// A row in a transaction's private insert buffer.
    pub fn private(position: u64) -> RowId {
        RowId((PRIVATE_PARTITION << 48) | (position & 0xFFFF_FFFF_FFFF))
    }

    pub fn partition(self) -> u16 {
        (self.0 >> 48) as u16
    }

    pub fn chunk(self) -> u32 {
        (self.0 >> 16) as u32
    }

    pub fn offset(self) -> usize {
        (self.0 & 0xFFFF) as usize
    }

    pub fn is_private(self) -> bool {
        self.0 >> 48 == PRIVATE_PARTITION
    }

    pub fn private_position(self) -> usize {
        (self.0 & 0xFFFF_FFFF_FFFF) as usize
    }
}

/// Version stamps of every row slot of a chunk, shared by all `Chunk` values of that chunk.
#[derive(Debug)]
pub struct Stamps {
    begin: Box<[AtomicU64]>,
    end: Box<[AtomicU64]>,
    /// Smallest `end` stamp in the chunk: when it is above a snapshot, no row is deleted for it.
    min_end: AtomicU64,
    /// [`READ_CLOCK`] at the chunk's last read.
    read_at: AtomicU64,
}

impl Stamps {
    fn new(capacity: usize) -> Stamps {
        let slots = || (0..capacity).map(|_| AtomicU64::new(TS_LIVE)).collect();
        Stamps {
            begin: slots(),
            end: slots(),
            min_end: AtomicU64::new(TS_LIVE),
            read_at: AtomicU64::new(READ_CLOCK.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

/// A serial number of a row version, unique within its data partition.
pub type Serial = u64;

/// The serials of a chunk's rows.
#[derive(Debug, Clone)]
pub enum Serials {
    /// Row `offset` has serial `first + offset` (chunks filled by appends).
    Contiguous { first: Serial },
    /// One serial per row, increasing (chunks rebuilt by compaction or loaded from disk).
    Listed(Arc<[Serial]>),
}

/// An immutable view of a chunk's rows `0..len` plus its shared stamps.
#[derive(Debug, Clone)]
pub struct Chunk {
    id: u32,
    capacity: usize,
    stamps: Arc<Stamps>,
    serials: Serials,
    segments: Vec<RecordBatch>,
    /// Row offset at which each segment starts.
    starts: Vec<usize>,
    /// Where the rows are when they are not in `segments` (then empty).
    swapped: Option<Arc<SwappedRows>>,
    len: usize,
    max_begin: Ts,
}

impl Chunk {
    /// An empty chunk whose first row will have serial `first_serial`.
    pub fn new(id: u32, capacity: usize, first_serial: Serial) -> Chunk {
        Chunk {
            id,
            capacity,
            stamps: Arc::new(Stamps::new(capacity)),
            serials: Serials::Contiguous {
                first: first_serial,
            },
            segments: Vec::new(),
            starts: Vec::new(),
            swapped: None,
            len: 0,
            max_begin: 0,
        }
    }

    /// A sealed chunk of the given rows with their stamps and (increasing) serials.
    pub fn from_rows(
        id: u32,
        batch: RecordBatch,
        begins: &[Ts],
        ends: &[Ts],
        serials: Vec<Serial>,
    ) -> Chunk {
        let len = batch.num_rows();
        let contiguous = serials
            .first()
            .is_some_and(|first| serials.last() == Some(&(first + len as u64 - 1)));
        let mut chunk = Chunk::new(id, len.max(1), serials.first().copied().unwrap_or(0));
        if !contiguous {
            chunk.serials = Serials::Listed(serials.into());
        }
        for (i, (b, e)) in begins.iter().zip(ends).enumerate() {
            chunk.stamps.begin[i].store(*b, Ordering::Relaxed);
            chunk.stamps.end[i].store(*e, Ordering::Relaxed);
        }
        let min_end = ends.iter().copied().min().unwrap_or(TS_LIVE);
        chunk.stamps.min_end.store(min_end, Ordering::Relaxed);
        Chunk {
            segments: vec![batch],
            starts: vec![0],
            len,
            max_begin: begins.iter().copied().max().unwrap_or(0),
            ..chunk
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn remaining(&self) -> usize {
        self.capacity - self.len
    }

    /// Bytes the chunk's row data and version stamps occupy in memory.
    pub fn memory_bytes(&self) -> usize {
        let stamps = self.capacity * 2 * std::mem::size_of::<AtomicU64>();
        self.resident_bytes() + stamps
    }

    /// Bytes of row data held in memory (none once swapped out); a slice counts only the part
    /// of its buffers it covers.
    pub fn resident_bytes(&self) -> usize {
        self.segments.iter().map(slice_bytes).sum()
    }

    /// Bytes of row data in this chunk's swap file (0 while the rows are in memory).
    pub fn swapped_bytes(&self) -> u64 {
        self.swapped.as_ref().map_or(0, |s| s.file_bytes())
    }

    pub fn is_swapped(&self) -> bool {
        self.swapped.is_some()
    }

    /// This chunk with its row data in `rows` instead of memory; stamps and serials are shared.
    pub fn swapped_out(&self, rows: Arc<SwappedRows>) -> Chunk {
        Chunk {
            segments: Vec::new(),
            starts: Vec::new(),
            swapped: Some(rows),
            ..self.clone()
        }
    }

    /// The read-clock value of the chunk's last read: smaller means colder.
    pub fn last_read(&self) -> u64 {
        self.stamps.read_at.load(Ordering::Relaxed)
    }

    fn note_read(&self) {
        let now = READ_CLOCK.fetch_add(1, Ordering::Relaxed);
        self.stamps.read_at.store(now, Ordering::Relaxed);
    }

    /// The rows as batches in row order, read from the swap file when swapped out.
    pub fn segments(&self) -> Result<Cow<'_, [RecordBatch]>> {
        self.note_read();
        match &self.swapped {
            None => Ok(Cow::Borrowed(&self.segments)),
            Some(rows) => Ok(Cow::Owned(rows.read_all()?)),
        }
    }

    /// The batches holding any of `offsets` (ascending), each with the offset of its first
    /// row: every segment when the rows are in memory, only the blocks needed when swapped.
    pub fn segments_holding(&self, offsets: &[usize]) -> Result<Vec<(usize, RecordBatch)>> {
        self.note_read();
        match &self.swapped {
            None => Ok(self
                .starts
                .iter()
                .copied()
                .zip(self.segments.iter().cloned())
                .collect()),
            Some(rows) => rows.read_holding(offsets),
        }
    }

    /// The rows as held in memory (the open chunk is never swapped out).
    fn resident_segments(&self) -> Result<&[RecordBatch]> {
        if self.swapped.is_some() {
            return Err(KuraError::internal(format!(
                "chunk {} is swapped out and cannot change",
                self.id
            )));
        }
        Ok(&self.segments)
    }

    /// The serial of the row at `offset`.
    pub fn serial(&self, offset: usize) -> Serial {
        match &self.serials {
            Serials::Contiguous { first } => first + offset as u64,
            Serials::Listed(list) => list[offset],
        }
    }

    /// The serial the next appended row must have for this chunk to stay contiguous, if it is.
    pub fn next_serial(&self) -> Option<Serial> {
        match &self.serials {
            Serials::Contiguous { first } => Some(first + self.len as u64),
            Serials::Listed(_) => None,
        }
    }

    /// The offset of the row with serial `serial`, if this chunk holds it.
    pub fn offset_of(&self, serial: Serial) -> Option<usize> {
        match &self.serials {
            Serials::Contiguous { first } => {
                let offset = serial.checked_sub(*first)? as usize;
                (offset < self.len).then_some(offset)
            }
            Serials::Listed(list) => list[..self.len].binary_search(&serial).ok(),
        }
    }

    /// Smallest and largest serial held, if any row is.
    pub fn serial_range(&self) -> Option<(Serial, Serial)> {
        (self.len > 0).then(|| (self.serial(0), self.serial(self.len - 1)))
    }

    pub fn begin(&self, offset: usize) -> Ts {
        self.stamps.begin[offset].load(Ordering::Acquire)
    }

    pub fn end(&self, offset: usize) -> Ts {
        self.stamps.end[offset].load(Ordering::Acquire)
    }

    /// Marks the row version at `offset` deleted by the commit at `ts`.
    pub fn set_end(&self, offset: usize, ts: Ts) {
        self.stamps.end[offset].store(ts, Ordering::Release);
        self.stamps.min_end.fetch_min(ts, Ordering::AcqRel);
    }

    /// The smallest `end` stamp of any row: no version ended before it.
    pub fn min_end(&self) -> Ts {
        self.stamps.min_end.load(Ordering::Acquire)
    }

    /// True when every row of this view is visible at `snapshot` (the common case).
    pub fn all_visible(&self, snapshot: Ts) -> bool {
        self.max_begin <= snapshot && self.stamps.min_end.load(Ordering::Acquire) > snapshot
    }

    /// Returns a new view with `batch` appended at stamp `ts`. The caller guarantees
    /// `batch.num_rows() <= self.remaining()` and serialises appends to one chunk.
    pub fn append(&self, batch: RecordBatch, ts: Ts) -> Result<Chunk> {
        self.resident_segments()?;
        let n = batch.num_rows();
        for slot in self.len..self.len + n {
            self.stamps.begin[slot].store(ts, Ordering::Relaxed);
            self.stamps.end[slot].store(TS_LIVE, Ordering::Relaxed);
        }
        let mut next = self.clone();
        next.starts.push(self.len);
        next.segments.push(batch);
        next.len += n;
        next.max_begin = next.max_begin.max(ts);
        if next.segments.len() > MAX_SEGMENTS || next.len == next.capacity {
            next.merge_segments()?;
        }
        Ok(next)
    }

    /// Brings every segment to `width` columns (after ALTER TABLE ADD COLUMN) and merges them.
    pub fn merge_segments(&mut self) -> Result<()> {
        if self.segments.len() <= 1 {
            return Ok(());
        }
        let schema = self.segments[self.segments.len() - 1].schema();
        let merged = concat_batches(&schema, &self.segments)?;
        self.segments = vec![merged];
        self.starts = vec![0];
        Ok(())
    }

    /// Replaces every segment by `f(segment)`; used to widen segments to a new schema.
    pub fn map_segments(
        &self,
        mut f: impl FnMut(&RecordBatch) -> Result<RecordBatch>,
    ) -> Result<Chunk> {
        let mut next = self.clone();
        next.segments = self
            .resident_segments()?
            .iter()
            .map(&mut f)
            .collect::<Result<_>>()?;
        Ok(next)
    }

    /// A batch holding the row at `offset` and the row's position inside it.
    pub fn locate(&self, offset: usize) -> Result<Option<(RecordBatch, usize)>> {
        if offset >= self.len {
            return Ok(None);
        }
        self.note_read();
        if let Some(rows) = &self.swapped {
            return rows.read_row(offset);
        }
        let seg = self.starts.partition_point(|s| *s <= offset) - 1;
        Ok(Some((
            self.segments[seg].clone(),
            offset - self.starts[seg],
        )))
    }

    /// Visibility of rows `start..start+len` at `snapshot`, minus rows in `hidden`.
    pub fn visibility(
        &self,
        start: usize,
        len: usize,
        snapshot: Ts,
        hidden: impl Fn(usize) -> bool,
    ) -> BooleanArray {
        let mut bits = BooleanBufferBuilder::new(len);
        for offset in start..start + len {
            let visible = self.begin(offset) <= snapshot && self.end(offset) > snapshot;
            bits.append(visible && !hidden(offset));
        }
        BooleanArray::new(bits.finish(), None)
    }

    /// Row ids for rows `start..start+len` of this chunk in `partition`.
    pub fn row_ids(&self, partition: u16, start: usize, len: usize) -> ArrayRef {
        let base = RowId::new(partition, self.id, 0).0;
        Arc::new(UInt64Array::from_iter_values(
            (start..start + len).map(|o| base + o as u64),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    #[test]
    fn snapshot_sees_rows_between_begin_and_end() {
        let c = Chunk::new(1, 8, 0).append(batch(&[1, 2]), 5).unwrap();
        let c = c.append(batch(&[3]), 7).unwrap();
        c.set_end(0, 9);
        let seen = |s| c.visibility(0, c.len(), s, |_| false).true_count();
        assert_eq!(seen(4), 0);
        assert_eq!(seen(5), 2);
        assert_eq!(seen(7), 3);
        assert_eq!(seen(9), 2);
        assert!(!c.all_visible(9));
        assert!(c.all_visible(8));
    }

    #[test]
    fn row_ids_round_trip() {
        let r = RowId::new(3, 77, 12);
        assert_eq!((r.partition(), r.chunk(), r.offset()), (3, 77, 12));
        let p = RowId::private(42);
        assert!(p.is_private());
        assert_eq!(p.private_position(), 42);
    }

    #[test]
    fn serials_are_found_in_contiguous_and_listed_chunks() {
        let c = Chunk::new(1, 8, 100).append(batch(&[1, 2, 3]), 1).unwrap();
        assert_eq!(c.offset_of(101), Some(1));
        assert_eq!(c.offset_of(103), None);
        assert_eq!(c.next_serial(), Some(103));
        let listed = Chunk::from_rows(2, batch(&[7, 8]), &[1, 1], &[TS_LIVE, TS_LIVE], vec![5, 9]);
        assert_eq!(listed.offset_of(9), Some(1));
        assert_eq!(listed.offset_of(6), None);
        assert_eq!(listed.serial_range(), Some((5, 9)));
    }

    #[test]
    fn locate_finds_segment() {
        let c = Chunk::new(1, 8, 0).append(batch(&[1, 2]), 1).unwrap();
        let c = c.append(batch(&[3, 4]), 2).unwrap();
        let (seg, pos) = c.locate(3).unwrap().unwrap();
        assert_eq!(seg.num_rows(), 2);
        assert_eq!(pos, 1);
        assert!(c.locate(4).unwrap().is_none());
    }
}
