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

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use parking_lot::{Mutex, RwLock};

use super::chunk::{Chunk, RowId, TS_LIVE, Ts};
use super::index::{IndexKey, KeyRange, TreeIndex};
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
    indexes: HashMap<u32, TreeIndex>,
}

/// Statistics of one garbage-collection pass over a partition.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompactionStats {
    pub chunks_rewritten: usize,
    pub versions_removed: usize,
}

#[derive(Debug)]
pub struct Partition {
    number: u16,
    max_chunk_rows: usize,
    inner: RwLock<Inner>,
    pins: Mutex<HashMap<u32, usize>>,
}

impl Partition {
    pub fn new(number: u16, max_chunk_rows: usize, indexes: &[IndexDef]) -> Partition {
        let max_chunk_rows = max_chunk_rows.clamp(FIRST_CHUNK_ROWS, MAX_CHUNK_ROWS);
        Partition {
            number,
            max_chunk_rows,
            inner: RwLock::new(Inner {
                sealed: Arc::new(Vec::new()),
                open: Arc::new(Chunk::new(1, FIRST_CHUNK_ROWS)),
                next_chunk_id: 2,
                indexes: indexes
                    .iter()
                    .map(|i| (i.id, TreeIndex::default()))
                    .collect(),
            }),
            pins: Mutex::new(HashMap::new()),
        }
    }

    pub fn number(&self) -> u16 {
        self.number
    }

    pub fn snapshot(&self) -> PartitionSnapshot {
        let inner = self.inner.read();
        PartitionSnapshot {
            sealed: inner.sealed.clone(),
            open: inner.open.clone(),
        }
    }

    /// Row versions matching `range` in index `index_id`, with the snapshot they refer to.
    pub fn lookup(&self, index_id: u32, range: &KeyRange) -> (PartitionSnapshot, Vec<RowId>) {
        let inner = self.inner.read();
        let mut rows = Vec::new();
        if let Some(index) = inner.indexes.get(&index_id) {
            index.lookup(range, &mut rows);
        }
        let snapshot = PartitionSnapshot {
            sealed: inner.sealed.clone(),
            open: inner.open.clone(),
        };
        (snapshot, rows)
    }

    /// Appends committed rows at stamp `ts` and indexes them. Called by the commit pipeline.
    pub fn append(&self, def: &TableDef, batch: &RecordBatch, ts: Ts) -> Result<()> {
        let batch = def.widen(batch)?;
        let mut inner = self.inner.write();
        let mut done = 0;
        while done < batch.num_rows() {
            if inner.open.remaining() == 0 {
                self.seal_open(&mut inner);
            }
            let open = inner.open.clone();
            let n = open.remaining().min(batch.num_rows() - done);
            let slice = batch.slice(done, n);
            let first = open.len();
            let widened = if open
                .segments()
                .first()
                .is_some_and(|s| s.schema() != batch.schema())
            {
                open.map_segments(|s| def.widen(s))?
            } else {
                (*open).clone()
            };
            let next = widened.append(slice.clone(), ts)?;
            for index in &def.indexes {
                if let Some(tree) = inner.indexes.get_mut(&index.id) {
                    for row in 0..n {
                        let key = index_key(&slice, &index.columns, row)?;
                        tree.insert(
                            key,
                            RowId::new(self.number, next.id(), (first + row) as u16),
                        );
                    }
                }
            }
            inner.open = Arc::new(next);
            done += n;
        }
        Ok(())
    }

    fn seal_open(&self, inner: &mut Inner) {
        let capacity = (inner.open.capacity() * 2).min(self.max_chunk_rows);
        let id = inner.next_chunk_id;
        inner.next_chunk_id += 1;
        let full = std::mem::replace(&mut inner.open, Arc::new(Chunk::new(id, capacity)));
        if !full.is_empty() {
            Arc::make_mut(&mut inner.sealed).push(full);
        }
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

    /// Marks a pinned row version deleted at `ts`. Called by the commit pipeline.
    pub fn set_end(&self, row: RowId, ts: Ts) -> Result<()> {
        let snapshot = self.snapshot();
        let chunk = snapshot
            .chunk(row.chunk())
            .ok_or_else(|| KuraError::internal(format!("row {row:?} vanished while pinned")))?;
        chunk.set_end(row.offset(), ts);
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
        let mut tree = TreeIndex::default();
        let chunks: Vec<Arc<Chunk>> = inner
            .sealed
            .iter()
            .cloned()
            .chain(std::iter::once(inner.open.clone()))
            .collect();
        for chunk in chunks {
            let mut offset = 0;
            for segment in chunk.segments() {
                let segment = def.widen(segment)?;
                for row in 0..segment.num_rows() {
                    let key = index_key(&segment, &index.columns, row)?;
                    tree.insert(
                        key,
                        RowId::new(self.number, chunk.id(), (offset + row) as u16),
                    );
                }
                offset += segment.num_rows();
            }
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
            let all_rows: Vec<usize> = (0..old.len()).collect();
            let old_batch = chunk_batch(&old, def)?;
            remove_index_entries(
                &mut inner,
                def,
                &old_batch,
                &all_rows,
                self.number,
                old.id(),
            )?;
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
            let id = inner.next_chunk_id;
            inner.next_chunk_id += 1;
            let fresh = Chunk::from_rows(id, kept.clone(), &begins, &ends);
            let sealed = Arc::make_mut(&mut inner.sealed);
            sealed.remove(pos);
            sealed.push(Arc::new(fresh));
            for index in &def.indexes {
                if let Some(tree) = inner.indexes.get_mut(&index.id) {
                    for row in 0..kept.num_rows() {
                        let key = index_key(&kept, &index.columns, row)?;
                        tree.insert(key, RowId::new(self.number, id, row as u16));
                    }
                }
            }
        }
        Ok(stats)
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

fn remove_index_entries(
    inner: &mut Inner,
    def: &TableDef,
    batch: &RecordBatch,
    rows: &[usize],
    partition: u16,
    chunk: u32,
) -> Result<()> {
    for index in &def.indexes {
        if let Some(tree) = inner.indexes.get_mut(&index.id) {
            for row in rows {
                let key = index_key(batch, &index.columns, *row)?;
                tree.remove(key, RowId::new(partition, chunk, *row as u16));
            }
        }
    }
    Ok(())
}

/// All rows of a chunk as one batch in the current definition's shape.
pub fn chunk_batch(chunk: &Chunk, def: &TableDef) -> Result<RecordBatch> {
    let segments = chunk
        .segments()
        .iter()
        .map(|s| def.widen(s))
        .collect::<Result<Vec<_>>>()?;
    Ok(concat_batches(def.schema(), &segments)?)
}

/// The key of `row` in an index over `columns`.
pub fn index_key(batch: &RecordBatch, columns: &[usize], row: usize) -> Result<IndexKey> {
    columns
        .iter()
        .map(|c| Ok(ScalarValue::try_from_array(batch.column(*c), row)?))
        .collect::<Result<Vec<_>>>()
        .map(IndexKey)
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
            .locate(row.offset())
            .ok_or_else(|| KuraError::internal(format!("row {row:?} out of range")))?;
        pieces.push(def.widen(&segment.slice(pos, 1))?);
    }
    Ok(concat_batches(def.schema(), &pieces)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::schema::ColumnDef;
    use crate::types::SqlType;
    use datafusion::arrow::array::Int64Array;

    fn def() -> TableDef {
        TableDef::new(
            1,
            "t".into(),
            vec![ColumnDef {
                name: "k".into(),
                ty: SqlType::Long,
                nullable: false,
                default: None,
                missing: ScalarValue::Int64(None),
            }],
            vec![0],
            vec![IndexDef {
                id: 1,
                name: "t_pkey".into(),
                columns: vec![0],
                unique: true,
                primary: true,
            }],
        )
    }

    fn rows(def: &TableDef, values: std::ops::Range<i64>) -> RecordBatch {
        RecordBatch::try_new(
            def.schema().clone(),
            vec![Arc::new(Int64Array::from_iter_values(values))],
        )
        .unwrap()
    }

    #[test]
    fn append_spills_into_new_chunks_and_indexes_rows() {
        let def = def();
        let p = Partition::new(0, 2048, &def.indexes);
        p.append(&def, &rows(&def, 0..5000), 1).unwrap();
        let snap = p.snapshot();
        assert_eq!(snap.row_count(), 5000);
        assert!(snap.sealed.len() >= 2);
        let (_, found) = p.lookup(1, &KeyRange::Prefix(vec![ScalarValue::Int64(Some(4321))]));
        assert_eq!(found.len(), 1);
        let batch = p.fetch(&def, &found).unwrap();
        let col = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(col.value(0), 4321);
    }

    #[test]
    fn compaction_drops_dead_versions_and_reindexes() {
        let def = def();
        let p = Partition::new(0, 1024, &def.indexes);
        p.append(&def, &rows(&def, 0..3000), 1).unwrap();
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
    }
}
