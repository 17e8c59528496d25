//! A data partition: an ordered list of column chunks, the last of which takes appends, and the
//! tree indexes over its row versions.
//!
//! Invariants:
//! - Readers take a [`PartitionSnapshot`] (two `Arc` clones under a short read lock) and never
//!   block writers for longer than that.
//! - Appends and index maintenance happen under the write lock, called only from the commit
//!   pipeline, so index entries and chunk contents change together.
//! - A chunk that a transaction has pinned is never compacted away, so the `end` stamps that
//!   transaction will write land in the chunk readers see.
//! - Serials are handed out in commit order: every append names the serial of its first row,
//!   which is never below `next_serial`, so replaying the log reproduces them exactly.
//! - `last_changed` is at least the stamp of every append and `end` stamp written, so a
//!   checkpoint can tell that a partition is unchanged since an earlier one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use parking_lot::{Mutex, RwLock};

use super::chunk::{Chunk, RowId, Serial, TS_LIVE, Ts};
use super::index::{IndexKey, KeyIndex, KeyRange};
use super::partitioning::PartitionKey;
use super::schema::{IndexDef, TableDef};
use crate::error::{KuraError, Result};

/// Rows in the first chunk of a partition; later chunks double up to the configured maximum.
const FIRST_CHUNK_ROWS: usize = 1024;

/// Largest chunk a partition creates: row offsets are 16-bit.
pub const MAX_CHUNK_ROWS: usize = 65_536;

#[derive(Debug, Clone)]
pub struct PartitionSnapshot {
    pub sealed: Arc<Vec<Arc<Chunk>>>,
    pub open: Arc<Chunk>,
}

impl PartitionSnapshot {
    pub fn chunks(&self) -> impl Iterator<Item = &Arc<Chunk>> {
        self.sealed.iter().chain(std::iter::once(&self.open))
    }

    pub fn chunk(&self, id: u32) -> Option<&Arc<Chunk>> {
        if self.open.id() == id {
            return Some(&self.open);
        }
        self.sealed
            .binary_search_by_key(&id, |c| c.id())
            .ok()
            .map(|i| &self.sealed[i])
    }

    pub fn row_count(&self) -> usize {
        self.chunks().map(|c| c.len()).sum()
    }
}

#[derive(Debug)]
struct Inner {
    sealed: Arc<Vec<Arc<Chunk>>>,
    open: Arc<Chunk>,
    next_chunk_id: u32,
    next_serial: Serial,
    indexes: HashMap<u32, KeyIndex>,
}

/// Statistics of one garbage-collection pass over a partition.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompactionStats {
    pub chunks_rewritten: usize,
    pub versions_removed: usize,
}

#[derive(Debug)]
pub struct Partition {
    /// The number row ids carry (see `Table` for when slots are reused).
    slot: u16,
    key: PartitionKey,
    max_chunk_rows: usize,
    inner: RwLock<Inner>,
    pins: Mutex<HashMap<u32, usize>>,
    last_changed: AtomicU64,
    persisted: Mutex<Option<Persisted>>,
}

/// The checkpoint data file holding this partition's rows as of `lsn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    pub file: String,
    pub lsn: Ts,
    pub rows: u64,
    pub bytes: u64,
}

impl Partition {
    pub fn new(
        slot: u16,
        key: PartitionKey,
        max_chunk_rows: usize,
        indexes: &[IndexDef],
    ) -> Partition {
        let max_chunk_rows = max_chunk_rows.clamp(FIRST_CHUNK_ROWS, MAX_CHUNK_ROWS);
        Partition {
            slot,
            key,
            max_chunk_rows,
            inner: RwLock::new(Inner {
                sealed: Arc::new(Vec::new()),
                open: Arc::new(Chunk::new(1, FIRST_CHUNK_ROWS, 0)),
                next_chunk_id: 2,
                next_serial: 0,
                indexes: indexes
                    .iter()
                    .map(|i| (i.id, KeyIndex::default()))
                    .collect(),
            }),
            pins: Mutex::new(HashMap::new()),
            last_changed: AtomicU64::new(0),
            persisted: Mutex::new(None),
        }
    }

    /// The checkpoint file that still holds this partition's current rows, if any: one was
    /// written or loaded and no commit changed the partition after its LSN.
    pub fn unchanged_file(&self) -> Option<Persisted> {
        self.persisted
            .lock()
            .clone()
            .filter(|p| self.last_changed() <= p.lsn)
    }

    /// Records that `persisted` holds this partition's rows as of its LSN.
    pub fn set_persisted(&self, persisted: Persisted) {
        *self.persisted.lock() = Some(persisted);
    }

    pub fn slot(&self) -> u16 {
        self.slot
    }

    pub fn key(&self) -> PartitionKey {
        self.key
    }

    /// The serial the next appended row gets.
    pub fn next_serial(&self) -> Serial {
        self.inner.read().next_serial
    }

    /// The newest commit stamp that changed this partition (0 if none since it was loaded).
    pub fn last_changed(&self) -> Ts {
        self.last_changed.load(Ordering::Acquire)
    }

    fn touch(&self, ts: Ts) {
        self.last_changed.fetch_max(ts, Ordering::AcqRel);
    }

    pub fn snapshot(&self) -> PartitionSnapshot {
        let inner = self.inner.read();
        PartitionSnapshot {
            sealed: inner.sealed.clone(),
            open: inner.open.clone(),
        }
    }

    /// Bytes of row data (with version stamps), in memory or swapped out.
    pub fn data_bytes(&self) -> usize {
        let (memory, swapped) = self.residency();
        memory + swapped as usize
    }

    /// Bytes of row data (with version stamps) in memory, and bytes of row data in swap files.
    pub fn residency(&self) -> (usize, u64) {
        self.snapshot()
            .chunks()
            .fold((0, 0), |(memory, swapped), c| {
                (memory + c.memory_bytes(), swapped + c.swapped_bytes())
            })
    }

    /// Bytes of the entries of the indexes `wanted` selects by index id.
    pub fn index_bytes(&self, wanted: impl Fn(u32) -> bool) -> usize {
        let inner = self.inner.read();
        inner
            .indexes
            .iter()
            .filter(|(id, _)| wanted(**id))
            .map(|(_, index)| index.memory_bytes())
            .sum()
    }

    /// Row versions matching `range` in index `index_id`, with the snapshot they refer to.
    pub fn lookup(&self, index_id: u32, range: &KeyRange) -> (PartitionSnapshot, Vec<RowId>) {
        self.lookup_with(index_id, |index, rows| index.lookup(range, rows))
    }

    /// Row versions whose key in index `index_id` is `key`, with the snapshot they refer to.
    pub fn lookup_key(&self, index_id: u32, key: &IndexKey) -> (PartitionSnapshot, Vec<RowId>) {
        self.lookup_with(index_id, |index, rows| index.lookup_prefix(&key.0, rows))
    }

    fn lookup_with(
        &self,
        index_id: u32,
        find: impl FnOnce(&KeyIndex, &mut Vec<RowId>),
    ) -> (PartitionSnapshot, Vec<RowId>) {
        let inner = self.inner.read();
        let mut rows = Vec::new();
        if let Some(index) = inner.indexes.get(&index_id) {
            find(index, &mut rows);
        }
        let snapshot = PartitionSnapshot {
            sealed: inner.sealed.clone(),
            open: inner.open.clone(),
        };
        (snapshot, rows)
    }

    /// Appends committed rows at stamp `ts` with serials from `first_serial` on, and indexes
    /// them. Called by the commit pipeline and by log replay.
    pub fn append(
        &self,
        def: &TableDef,
        batch: &RecordBatch,
        ts: Ts,
        first_serial: Serial,
    ) -> Result<()> {
        let batch = def.widen(batch)?;
        let mut inner = self.inner.write();
        if first_serial < inner.next_serial {
            return Err(KuraError::internal(format!(
                "append with serial {first_serial} below the partition's next serial {}",
                inner.next_serial
            )));
        }
        self.touch(ts);
        let mut done = 0;
        while done < batch.num_rows() {
            let serial = first_serial + done as u64;
            if inner.open.remaining() == 0 || inner.open.next_serial() != Some(serial) {
                self.seal_open(&mut inner, serial);
            }
            let open = inner.open.clone();
            let n = open.remaining().min(batch.num_rows() - done);
            let slice = batch.slice(done, n);
            let first = open.len();
            let widened = if open
                .segments()?
                .first()
                .is_some_and(|s| s.schema() != batch.schema())
            {
                open.map_segments(|s| def.widen(s))?
            } else {
                (*open).clone()
            };
            let next = widened.append(slice.clone(), ts)?;
            add_index_entries(&mut inner, def, &slice, self.slot, next.id(), first)?;
            inner.open = Arc::new(next);
            done += n;
        }
        inner.next_serial = first_serial + batch.num_rows() as u64;
        Ok(())
    }

    /// Replaces the open chunk by an empty one starting at `first_serial`, sealing it if it
    /// holds rows.
    fn seal_open(&self, inner: &mut Inner, first_serial: Serial) {
        let capacity = if inner.open.is_empty() {
            inner.open.capacity()
        } else {
            (inner.open.capacity() * 2).min(self.max_chunk_rows)
        };
        let id = inner.next_chunk_id;
        inner.next_chunk_id += 1;
        let fresh = Arc::new(Chunk::new(id, capacity, first_serial));
        let full = std::mem::replace(&mut inner.open, fresh);
        if !full.is_empty() {
            // Compaction may have sealed chunks with newer ids than this one: keep id order,
            // which `PartitionSnapshot::chunk` searches by.
            let sealed = Arc::make_mut(&mut inner.sealed);
            let at = sealed.partition_point(|c| c.id() < full.id());
            sealed.insert(at, full);
        }
    }

    /// Loads rows read from a checkpoint as sealed chunks stamped `ts`, indexes them, and sets
    /// the serial the next append gets. Called only while recovering, before any reader.
    pub fn restore(
        &self,
        def: &TableDef,
        batch: &RecordBatch,
        serials: &[Serial],
        ts: Ts,
        next_serial: Serial,
    ) -> Result<()> {
        let batch = def.widen(batch)?;
        let mut inner = self.inner.write();
        let mut done = 0;
        while done < batch.num_rows() {
            let n = (batch.num_rows() - done).min(self.max_chunk_rows);
            let rows = batch.slice(done, n);
            let id = inner.next_chunk_id;
            inner.next_chunk_id += 1;
            let stamps = vec![ts; n];
            let ends = vec![TS_LIVE; n];
            let chunk = Chunk::from_rows(
                id,
                rows.clone(),
                &stamps,
                &ends,
                serials[done..done + n].to_vec(),
            );
            add_index_entries(&mut inner, def, &rows, self.slot, id, 0)?;
            Arc::make_mut(&mut inner.sealed).push(Arc::new(chunk));
            done += n;
        }
        let open_capacity = inner.open.capacity();
        let id = inner.next_chunk_id;
        inner.next_chunk_id += 1;
        inner.open = Arc::new(Chunk::new(id, open_capacity, next_serial));
        inner.next_serial = inner.next_serial.max(next_serial);
        Ok(())
    }

    /// The rows visible at `ts`, one batch per chunk in the definition's shape, with their
    /// serials, produced lazily from a snapshot (writers are not blocked, and only one chunk
    /// is copied at a time).
    pub fn visible_rows(
        &self,
        def: Arc<TableDef>,
        ts: Ts,
    ) -> impl Iterator<Item = Result<(RecordBatch, Vec<Serial>)>> + use<> {
        let snapshot = self.snapshot();
        let chunks: Vec<Arc<Chunk>> = snapshot
            .chunks()
            .filter(|c| !c.is_empty())
            .cloned()
            .collect();
        chunks.into_iter().filter_map(move |chunk| {
            let visible = chunk.visibility(0, chunk.len(), ts, |_| false);
            if visible.true_count() == 0 {
                return None;
            }
            let serials: Vec<Serial> = (0..chunk.len())
                .filter(|o| visible.value(*o))
                .map(|o| chunk.serial(o))
                .collect();
            let batch = chunk_batch(&chunk, &def).and_then(|batch| {
                if visible.true_count() == chunk.len() {
                    Ok(batch)
                } else {
                    Ok(datafusion::arrow::compute::filter_record_batch(
                        &batch, &visible,
                    )?)
                }
            });
            Some(batch.map(|b| (b, serials)))
        })
    }

    /// How many row versions are visible at `ts`.
    pub fn visible_count(&self, ts: Ts) -> usize {
        self.snapshot()
            .chunks()
            .map(|c| {
                if c.all_visible(ts) {
                    c.len()
                } else {
                    c.visibility(0, c.len(), ts, |_| false).true_count()
                }
            })
            .sum()
    }

    /// The row ids of the versions with the given serials, in the same order.
    pub fn resolve_serials(&self, serials: &[Serial]) -> Result<Vec<RowId>> {
        let snapshot = self.snapshot();
        let mut ranges: Vec<(Serial, Serial, &Arc<Chunk>)> = snapshot
            .chunks()
            .filter_map(|c| c.serial_range().map(|(lo, hi)| (lo, hi, c)))
            .collect();
        ranges.sort_by_key(|(lo, _, _)| *lo);
        serials
            .iter()
            .map(|serial| {
                let at = ranges.partition_point(|(lo, _, _)| lo <= serial);
                ranges[..at]
                    .iter()
                    .rev()
                    .find_map(|(_, hi, chunk)| {
                        if hi < serial {
                            return None;
                        }
                        chunk
                            .offset_of(*serial)
                            .map(|o| RowId::new(self.slot, chunk.id(), o as u16))
                    })
                    .ok_or_else(|| {
                        KuraError::internal(format!(
                            "row version with serial {serial} not found in data partition {}",
                            self.slot
                        ))
                    })
            })
            .collect()
    }

    /// Pins the chunk holding `row` so compaction leaves it alone; false if it is gone.
    pub fn pin(&self, row: RowId) -> bool {
        let inner = self.inner.read();
        let snapshot = PartitionSnapshot {
            sealed: inner.sealed.clone(),
            open: inner.open.clone(),
        };
        if snapshot.chunk(row.chunk()).is_none() {
            return false;
        }
        *self.pins.lock().entry(row.chunk()).or_insert(0) += 1;
        true
    }

    pub fn unpin(&self, row: RowId) {
        let mut pins = self.pins.lock();
        if let Some(count) = pins.get_mut(&row.chunk()) {
            *count -= 1;
            if *count == 0 {
                pins.remove(&row.chunk());
            }
        }
    }

    /// The `(begin, end)` stamps of a row version, if its chunk still exists.
    pub fn stamps(&self, row: RowId) -> Option<(Ts, Ts)> {
        let snapshot = self.snapshot();
        let chunk = snapshot.chunk(row.chunk())?;
        (row.offset() < chunk.len()).then(|| (chunk.begin(row.offset()), chunk.end(row.offset())))
    }

    /// The serial of a row version, if its chunk still exists.
    pub fn serial(&self, row: RowId) -> Option<Serial> {
        let snapshot = self.snapshot();
        let chunk = snapshot.chunk(row.chunk())?;
        (row.offset() < chunk.len()).then(|| chunk.serial(row.offset()))
    }

    /// Marks a pinned row version deleted at `ts`. Called by the commit pipeline.
    pub fn set_end(&self, row: RowId, ts: Ts) -> Result<()> {
        let snapshot = self.snapshot();
        let chunk = snapshot
            .chunk(row.chunk())
            .ok_or_else(|| KuraError::internal(format!("row {row:?} vanished while pinned")))?;
        chunk.set_end(row.offset(), ts);
        self.touch(ts);
        Ok(())
    }

    /// The row versions `rows` (all in this partition) as a batch, in the given order.
    pub fn fetch(&self, def: &TableDef, rows: &[RowId]) -> Result<RecordBatch> {
        let snapshot = self.snapshot();
        fetch_rows(&snapshot, def, rows)
    }

    /// Builds the entries of a new index from every stored row version.
    pub fn build_index(&self, index: &IndexDef, def: &TableDef) -> Result<()> {
        let mut inner = self.inner.write();
        let mut tree = KeyIndex::default();
        let chunks: Vec<Arc<Chunk>> = inner
            .sealed
            .iter()
            .cloned()
            .chain(std::iter::once(inner.open.clone()))
            .collect();
        for chunk in chunks {
            let rows = chunk_batch(&chunk, def)?;
            tree.insert_batch(&rows, &index.columns, |row| {
                RowId::new(self.slot, chunk.id(), row as u16)
            })?;
        }
        inner.indexes.insert(index.id, tree);
        Ok(())
    }

    pub fn drop_index(&self, index_id: u32) {
        self.inner.write().indexes.remove(&index_id);
    }

    /// Rewrites sealed chunks that hold versions no snapshot at or after `horizon` can see.
    pub fn compact(&self, def: &TableDef, horizon: Ts) -> Result<CompactionStats> {
        let mut stats = CompactionStats::default();
        let candidates: Vec<Arc<Chunk>> = {
            let inner = self.inner.read();
            inner
                .sealed
                .iter()
                .filter(|c| {
                    c.min_end() <= horizon && dead_versions(c, horizon) * 4 >= c.len().max(1)
                })
                .cloned()
                .collect()
        };
        if candidates.is_empty() {
            return Ok(stats);
        }
        let mut inner = self.inner.write();
        let pins = self.pins.lock();
        for old in candidates {
            if pins.contains_key(&old.id()) {
                continue;
            }
            let Ok(pos) = inner.sealed.binary_search_by_key(&old.id(), |c| c.id()) else {
                continue;
            };
            let old = inner.sealed[pos].clone();
            let survivors: Vec<usize> = (0..old.len()).filter(|o| old.end(*o) > horizon).collect();
            let old_batch = chunk_batch(&old, def)?;
            for tree in inner.indexes.values_mut() {
                tree.retire_chunk(old.id(), old.len());
            }
            stats.versions_removed += old.len() - survivors.len();
            stats.chunks_rewritten += 1;
            let sealed = Arc::make_mut(&mut inner.sealed);
            if survivors.is_empty() {
                sealed.remove(pos);
                continue;
            }
            let indices = UInt32Array::from_iter_values(survivors.iter().map(|o| *o as u32));
            let kept = take_record_batch(&old_batch, &indices)?;
            let begins: Vec<Ts> = survivors.iter().map(|o| old.begin(*o)).collect();
            let ends: Vec<Ts> = survivors.iter().map(|o| old.end(*o)).collect();
            let serials: Vec<Serial> = survivors.iter().map(|o| old.serial(*o)).collect();
            let id = inner.next_chunk_id;
            inner.next_chunk_id += 1;
            let fresh = Chunk::from_rows(id, kept.clone(), &begins, &ends, serials);
            let sealed = Arc::make_mut(&mut inner.sealed);
            sealed.remove(pos);
            sealed.push(Arc::new(fresh));
            add_index_entries(&mut inner, def, &kept, self.slot, id, 0)?;
        }
        Ok(stats)
    }

    /// Sealed chunks whose row data is in memory, for the store's memory limit to choose from.
    pub fn resident_sealed(&self) -> Vec<Arc<Chunk>> {
        let inner = self.inner.read();
        inner
            .sealed
            .iter()
            .filter(|c| !c.is_swapped() && !c.is_empty())
            .cloned()
            .collect()
    }

    /// Puts `swapped` (the same chunk with its rows in a swap file) in place of `old`, unless
    /// `old` was rewritten or removed meanwhile; returns whether it did.
    pub fn replace_with_swapped(&self, old: &Arc<Chunk>, swapped: Chunk) -> bool {
        let mut inner = self.inner.write();
        let Ok(pos) = inner.sealed.binary_search_by_key(&old.id(), |c| c.id()) else {
            return false;
        };
        if !Arc::ptr_eq(&inner.sealed[pos], old) {
            return false;
        }
        Arc::make_mut(&mut inner.sealed)[pos] = Arc::new(swapped);
        true
    }

    /// Row versions currently stored (live and dead), for statistics and tests.
    pub fn stored_versions(&self) -> usize {
        self.snapshot().row_count()
    }
}

fn dead_versions(chunk: &Chunk, horizon: Ts) -> usize {
    (0..chunk.len())
        .filter(|o| {
            let end = chunk.end(*o);
            end != TS_LIVE && end <= horizon
        })
        .count()
}

/// Indexes the rows of `batch`, which sit in chunk `chunk` from offset `first` on.
fn add_index_entries(
    inner: &mut Inner,
    def: &TableDef,
    batch: &RecordBatch,
    partition: u16,
    chunk: u32,
    first: usize,
) -> Result<()> {
    for index in &def.indexes {
        if let Some(tree) = inner.indexes.get_mut(&index.id) {
            tree.insert_batch(batch, &index.columns, |row| {
                RowId::new(partition, chunk, (first + row) as u16)
            })?;
        }
    }
    Ok(())
}

/// All rows of a chunk as one batch in the current definition's shape.
pub fn chunk_batch(chunk: &Chunk, def: &TableDef) -> Result<RecordBatch> {
    def.widen_concat(&chunk.segments()?)
}

/// The values of `columns` in row `row` of `batch` (for messages naming a key).
pub fn key_values(batch: &RecordBatch, columns: &[usize], row: usize) -> Result<Vec<ScalarValue>> {
    columns
        .iter()
        .map(|c| Ok(ScalarValue::try_from_array(batch.column(*c), row)?))
        .collect()
}

/// Gathers row versions from a snapshot into one batch, in the order given.
pub fn fetch_rows(
    snapshot: &PartitionSnapshot,
    def: &TableDef,
    rows: &[RowId],
) -> Result<RecordBatch> {
    let mut pieces = Vec::with_capacity(rows.len());
    for row in rows {
        let chunk = snapshot
            .chunk(row.chunk())
            .ok_or_else(KuraError::serialization_failure)?;
        let (segment, pos) = chunk
            .locate(row.offset())?
            .ok_or_else(|| KuraError::internal(format!("row {row:?} out of range")))?;
        pieces.push(def.widen(&segment.slice(pos, 1))?);
    }
    Ok(concat_batches(def.schema(), &pieces)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::schema::long_key_table as def;
    use datafusion::arrow::array::Int64Array;

    fn rows(def: &TableDef, values: std::ops::Range<i64>) -> RecordBatch {
        RecordBatch::try_new(
            def.schema().clone(),
            vec![Arc::new(Int64Array::from_iter_values(values))],
        )
        .unwrap()
    }

    /// The key column of the first of `rows`.
    fn first_key(p: &Partition, def: &TableDef, rows: &[RowId]) -> i64 {
        let batch = p.fetch(def, rows).unwrap();
        let keys = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        keys.value(0)
    }

    #[test]
    fn append_spills_into_new_chunks_and_indexes_rows() {
        let def = def();
        let p = Partition::new(0, PartitionKey::SINGLE, 2048, &def.indexes);
        p.append(&def, &rows(&def, 0..5000), 1, 0).unwrap();
        let snap = p.snapshot();
        assert_eq!(snap.row_count(), 5000);
        assert!(snap.sealed.len() >= 2);
        let (_, found) = p.lookup(1, &KeyRange::Prefix(vec![ScalarValue::Int64(Some(4321))]));
        assert_eq!(found.len(), 1);
        assert_eq!(first_key(&p, &def, &found), 4321);
    }

    #[test]
    fn compaction_drops_dead_versions_and_reindexes() {
        let def = def();
        let p = Partition::new(0, PartitionKey::SINGLE, 1024, &def.indexes);
        p.append(&def, &rows(&def, 0..3000), 1, 0).unwrap();
        let (_, all) = p.lookup(
            1,
            &KeyRange::Range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
        );
        for r in all.iter().filter(|r| r.0 % 2 == 0) {
            p.set_end(*r, 2).unwrap();
        }
        let stats = p.compact(&def, 2).unwrap();
        assert!(stats.versions_removed > 0);
        let (_, after) = p.lookup(
            1,
            &KeyRange::Range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
        );
        assert_eq!(after.len(), 3000 - stats.versions_removed);
        let (snap, one) = p.lookup(1, &KeyRange::Prefix(vec![ScalarValue::Int64(Some(1))]));
        assert_eq!(one.len(), 1);
        assert!(snap.chunk(one[0].chunk()).is_some());
        // Serials survive compaction: the row with key 2999 still has serial 2999.
        let found = p.resolve_serials(&[2999]).unwrap();
        assert_eq!(first_key(&p, &def, &found), 2999);
        // The open chunk, older than the rewritten ones, is found by id once it is sealed.
        let open_id = p.snapshot().open.id();
        p.append(&def, &rows(&def, 3000..6000), 3, 3000).unwrap();
        let snap = p.snapshot();
        assert!(snap.sealed.windows(2).all(|w| w[0].id() < w[1].id()));
        assert!(snap.chunk(open_id).is_some());
        let (snap, one) = p.lookup(1, &KeyRange::Prefix(vec![ScalarValue::Int64(Some(2999))]));
        assert!(snap.chunk(one[0].chunk()).is_some());
    }

    #[test]
    fn restore_and_visible_rows_round_trip_serials() {
        let def = def();
        let p = Partition::new(0, PartitionKey::SINGLE, 1024, &def.indexes);
        p.append(&def, &rows(&def, 0..10), 1, 0).unwrap();
        p.append(&def, &rows(&def, 10..20), 2, 10).unwrap();
        let gone = p.resolve_serials(&[3, 15]).unwrap();
        for row in gone {
            p.set_end(row, 3).unwrap();
        }
        let saved: Vec<_> = p
            .visible_rows(Arc::new(def.clone()), 3)
            .collect::<Result<_>>()
            .unwrap();
        let copy = Partition::new(0, PartitionKey::SINGLE, 1024, &def.indexes);
        for (batch, serials) in &saved {
            copy.restore(&def, batch, serials, 3, p.next_serial())
                .unwrap();
        }
        assert_eq!(copy.stored_versions(), 18);
        assert!(copy.resolve_serials(&[3]).is_err());
        assert_eq!(copy.resolve_serials(&[19]).unwrap().len(), 1);
        assert_eq!(copy.next_serial(), 20);
        copy.append(&def, &rows(&def, 20..21), 4, 20).unwrap();
        assert_eq!(copy.resolve_serials(&[20]).unwrap().len(), 1);
    }
}
