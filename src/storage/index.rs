//! Indexes of a data partition: from key bytes (`key_codec`) to row versions.
//!
//! An index is a small ordered set of recent entries plus sorted runs: flat arrays of key bytes
//! and row ids, about 22 bytes per entry for a `(integer, timestamp)` key where a tree of
//! per-entry allocations costs several times that. Recent entries move into a new run when
//! there are [`RECENT_LIMIT`] of them, and runs of similar size are merged, so a lookup visits
//! the set and a logarithmic number of runs. A batch of many rows becomes a run at once.
//!
//! Invariants: an index holds one entry per row version of its partition (live or dead), until
//! the version's chunk is retired by compaction; readers must check visibility of every row an
//! index returns. Every key comes from this index's codec. Entries of retired chunks are never
//! returned and are dropped when runs are rewritten.

use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;

use super::chunk::RowId;
pub use super::key_codec::IndexKey;
use super::key_codec::{KeyCodec, NULL_BYTE};
use crate::error::Result;

/// Entries kept in the ordered set before they become a run.
const RECENT_LIMIT: usize = 2048;

/// A run is merged into the one before it while that one is at most this many times larger.
const MERGE_RATIO: usize = 4;

/// Which rows of an index a lookup asks for.
#[derive(Debug, Clone)]
pub enum KeyRange {
    /// Keys whose leading columns equal these values.
    Prefix(Vec<ScalarValue>),
    /// Keys whose first column lies between the bounds (never NULL).
    Range(Bound<ScalarValue>, Bound<ScalarValue>),
}

/// One index of one data partition.
#[derive(Debug, Default)]
pub struct KeyIndex {
    /// Made from the first rows indexed (the index is empty until then).
    codec: Option<Arc<KeyCodec>>,
    recent: BTreeSet<(Box<[u8]>, RowId)>,
    /// Sorted runs, oldest and largest first.
    runs: Vec<Run>,
    /// Chunks whose entries in `runs` are dead.
    retired: HashSet<u32>,
    retired_entries: usize,
}

impl KeyIndex {
    /// Indexes rows `0..n` of `batch` over `columns`; row `i` is the version `row_id(i)`.
    pub fn insert_batch(
        &mut self,
        batch: &RecordBatch,
        columns: &[usize],
        row_id: impl Fn(usize) -> RowId,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let codec = match &self.codec {
            Some(codec) => codec.clone(),
            None => self
                .codec
                .insert(Arc::new(KeyCodec::for_columns(batch, columns)?))
                .clone(),
        };
        let keys = codec.encode_rows(batch, columns)?;
        if batch.num_rows() < RECENT_LIMIT {
            for i in 0..batch.num_rows() {
                self.recent.insert((keys.row(i).data().into(), row_id(i)));
            }
            if self.recent.len() >= RECENT_LIMIT {
                let recent = std::mem::take(&mut self.recent);
                self.add_run(Run::from_sorted(
                    recent.iter().map(|(k, r)| (k.as_ref(), *r)),
                ));
            }
            return Ok(());
        }
        let mut order: Vec<usize> = (0..batch.num_rows()).collect();
        order.sort_unstable_by(|a, b| keys.row(*a).cmp(&keys.row(*b)));
        self.add_run(Run::from_sorted(
            order.iter().map(|i| (keys.row(*i).data(), row_id(*i))),
        ));
        Ok(())
    }

    /// Forgets the entries of chunk `chunk`, which held `entries` row versions.
    pub fn retire_chunk(&mut self, chunk: u32, entries: usize) {
        let before = self.recent.len();
        self.recent.retain(|(_, row)| row.chunk() != chunk);
        let in_runs = entries.saturating_sub(before - self.recent.len());
        if in_runs == 0 {
            return;
        }
        self.retired.insert(chunk);
        self.retired_entries += in_runs;
        if self.retired_entries * 4 >= self.run_entries() {
            let runs = std::mem::take(&mut self.runs);
            let empty = Run::from_sorted(std::iter::empty());
            let merged = runs
                .iter()
                .fold(empty, |all, run| Run::merge(&all, run, &self.retired));
            if merged.len() > 0 {
                self.runs.push(merged);
            }
            self.retired.clear();
            self.retired_entries = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.recent.len() + self.run_entries() - self.retired_entries
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn run_entries(&self) -> usize {
        self.runs.iter().map(Run::len).sum()
    }

    /// Bytes the index occupies in memory (the ordered set's nodes estimated).
    pub fn memory_bytes(&self) -> usize {
        let recent: usize = self
            .recent
            .iter()
            .map(|(k, _)| k.len().next_multiple_of(16) + 2 * size_of::<(Box<[u8]>, RowId)>())
            .sum();
        recent + self.runs.iter().map(Run::memory_bytes).sum::<usize>()
    }

    /// Row versions whose key matches `range`, in no particular order.
    pub fn lookup(&self, range: &KeyRange, out: &mut Vec<RowId>) {
        let Some(codec) = &self.codec else { return };
        match range {
            KeyRange::Prefix(values) => {
                if let Some(prefix) = codec.encode_prefix(values) {
                    self.lookup_prefix(&prefix, out);
                }
            }
            KeyRange::Range(lower, upper) => {
                self.scan(&edge(codec, lower), &edge(codec, upper), out);
            }
        }
    }

    /// Row versions whose key starts with the bytes `prefix` (a whole key included).
    pub fn lookup_prefix(&self, prefix: &[u8], out: &mut Vec<RowId>) {
        let at = Edge::AtPrefix(prefix.to_vec());
        self.scan(&at, &at, out);
    }

    fn scan(&self, lower: &Edge, upper: &Edge, out: &mut Vec<RowId>) {
        let matches = |key: &[u8]| lower.admits_from_below(key) && upper.admits_from_above(key);
        let start: Box<[u8]> = match lower {
            Edge::AtPrefix(p) | Edge::AfterPrefix(p) => p.as_slice().into(),
            Edge::Open => Box::default(),
        };
        for run in &self.runs {
            let mut i = run.lower_bound(&start);
            while i < run.len() {
                let key = run.key(i);
                if !upper.admits_from_above(key) {
                    break;
                }
                let row = run.rows[i];
                if matches(key) && !self.retired.contains(&row.chunk()) {
                    out.push(row);
                }
                i += 1;
            }
        }
        for (key, row) in self.recent.range((start, RowId(0))..) {
            if !upper.admits_from_above(key) {
                break;
            }
            if matches(key) {
                out.push(*row);
            }
        }
    }

    /// Appends `run` and merges runs of similar size.
    fn add_run(&mut self, run: Run) {
        self.runs.push(run);
        while let [.., older, newer] = self.runs.as_slice() {
            if older.len() > newer.len() * MERGE_RATIO || !Run::mergeable(older, newer) {
                break;
            }
            let newer = self.runs.pop().expect("two runs");
            let older = self.runs.pop().expect("two runs");
            let dropped = self.retired_in(&older) + self.retired_in(&newer);
            self.runs.push(Run::merge(&older, &newer, &self.retired));
            self.retired_entries -= dropped;
        }
        if self.retired_entries == 0 {
            self.retired.clear();
        }
    }

    fn retired_in(&self, run: &Run) -> usize {
        if self.retired.is_empty() {
            return 0;
        }
        run.rows
            .iter()
            .filter(|r| self.retired.contains(&r.chunk()))
            .count()
    }
}

/// One side of a lookup's key interval, as key bytes.
enum Edge {
    Open,
    /// Keys starting with these bytes are inside.
    AtPrefix(Vec<u8>),
    /// Keys starting with these bytes are outside.
    AfterPrefix(Vec<u8>),
}

impl Edge {
    /// As a lower edge: `key` is not below it. NULL first columns are never inside a range.
    fn admits_from_below(&self, key: &[u8]) -> bool {
        match self {
            Edge::Open => key.first() != Some(&NULL_BYTE),
            Edge::AtPrefix(p) => key >= p.as_slice(),
            Edge::AfterPrefix(p) => key > p.as_slice() && !key.starts_with(p),
        }
    }

    /// As an upper edge: `key` is not above it.
    fn admits_from_above(&self, key: &[u8]) -> bool {
        match self {
            Edge::Open => true,
            Edge::AtPrefix(p) => key <= p.as_slice() || key.starts_with(p),
            Edge::AfterPrefix(p) => key < p.as_slice(),
        }
    }
}

/// A range bound on the first column; an unrepresentable bound value is treated as absent
/// (the rows found are then a superset, which every caller filters again).
fn edge(codec: &KeyCodec, bound: &Bound<ScalarValue>) -> Edge {
    let encoded = |v: &ScalarValue| codec.encode_prefix(std::slice::from_ref(v));
    match bound {
        Bound::Included(v) => encoded(v).map_or(Edge::Open, Edge::AtPrefix),
        Bound::Excluded(v) => encoded(v).map_or(Edge::Open, Edge::AfterPrefix),
        Bound::Unbounded => Edge::Open,
    }
}

/// Entries sorted by key and row id, in flat arrays.
#[derive(Debug)]
struct Run {
    keys: Vec<u8>,
    /// Where each key starts in `keys` (with the end as last element); empty when every key
    /// has `width` bytes.
    offsets: Vec<u32>,
    width: usize,
    rows: Vec<RowId>,
}

impl Run {
    fn from_sorted<'a>(entries: impl Iterator<Item = (&'a [u8], RowId)>) -> Run {
        let mut keys = Vec::new();
        let mut offsets = vec![0u32];
        let mut rows = Vec::new();
        for (key, row) in entries {
            keys.extend_from_slice(key);
            offsets.push(keys.len() as u32);
            rows.push(row);
        }
        Run::seal(keys, offsets, rows)
    }

    /// Drops the offsets when every key has the same width.
    fn seal(mut keys: Vec<u8>, mut offsets: Vec<u32>, mut rows: Vec<RowId>) -> Run {
        let width = offsets.get(1).copied().unwrap_or(0) as usize;
        let uniform = offsets.windows(2).all(|w| (w[1] - w[0]) as usize == width);
        if uniform {
            offsets = Vec::new();
        } else {
            offsets.shrink_to_fit();
        }
        keys.shrink_to_fit();
        rows.shrink_to_fit();
        Run {
            keys,
            offsets,
            width,
            rows,
        }
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn key(&self, i: usize) -> &[u8] {
        if self.offsets.is_empty() {
            &self.keys[i * self.width..(i + 1) * self.width]
        } else {
            &self.keys[self.offsets[i] as usize..self.offsets[i + 1] as usize]
        }
    }

    /// The first position whose key is not below `key`.
    fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = (low + high) / 2;
            if self.key(mid) < key {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    fn memory_bytes(&self) -> usize {
        self.keys.capacity() + self.offsets.capacity() * 4 + self.rows.capacity() * 8
    }

    /// Two runs fit in one while their key bytes stay addressable by 32-bit offsets.
    fn mergeable(a: &Run, b: &Run) -> bool {
        a.keys.len() + b.keys.len() < u32::MAX as usize
    }

    /// Both runs' entries in order, without those of `retired` chunks.
    fn merge(a: &Run, b: &Run, retired: &HashSet<u32>) -> Run {
        let mut keys = Vec::with_capacity(a.keys.len() + b.keys.len());
        let mut offsets = Vec::with_capacity(a.len() + b.len() + 1);
        offsets.push(0u32);
        let mut rows = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let take_a =
                j == b.len() || (i < a.len() && (a.key(i), a.rows[i]) <= (b.key(j), b.rows[j]));
            let (run, k) = if take_a { (a, &mut i) } else { (b, &mut j) };
            let row = run.rows[*k];
            if !retired.contains(&row.chunk()) {
                keys.extend_from_slice(run.key(*k));
                offsets.push(keys.len() as u32);
                rows.push(row);
            }
            *k += 1;
        }
        Run::seal(keys, offsets, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn longs(values: impl IntoIterator<Item = Option<i64>>) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("k", DataType::Int64, true)]);
        let array = Int64Array::from_iter(values);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(array)]).unwrap()
    }

    fn found(index: &KeyIndex, range: KeyRange) -> Vec<u64> {
        let mut out = Vec::new();
        index.lookup(&range, &mut out);
        let mut ids: Vec<u64> = out.iter().map(|r| r.0).collect();
        ids.sort_unstable();
        ids
    }

    /// Raw row ids of chunk 1 at these offsets.
    fn chunk1(offsets: &[u16]) -> Vec<u64> {
        offsets.iter().map(|o| RowId::new(0, 1, *o).0).collect()
    }

    fn long(v: i64) -> ScalarValue {
        ScalarValue::Int64(Some(v))
    }

    /// Keys 0..n in batches of `batch` rows; row id = chunk 1, offset = key.
    fn filled(n: i64, batch: i64) -> KeyIndex {
        let mut index = KeyIndex::default();
        let mut start = 0;
        while start < n {
            let end = (start + batch).min(n);
            let rows = longs((start..end).map(Some));
            index
                .insert_batch(&rows, &[0], |i| {
                    RowId::new(0, 1, (start as usize + i) as u16)
                })
                .unwrap();
            start = end;
        }
        index
    }

    #[test]
    fn prefix_and_range_lookups_across_recent_entries_and_runs() {
        for batch in [1, 7, 3000, 20_000] {
            let mut index = filled(20_000, batch);
            index
                .insert_batch(&longs([None]), &[0], |_| RowId::new(0, 2, 0))
                .unwrap();
            assert_eq!(index.len(), 20_001);
            assert!(index.runs.len() <= 8, "{} runs", index.runs.len());
            assert_eq!(
                found(&index, KeyRange::Prefix(vec![long(4321)])),
                chunk1(&[4321])
            );
            assert_eq!(found(&index, KeyRange::Prefix(vec![long(-1)])), chunk1(&[]));
            let range = KeyRange::Range(Bound::Excluded(long(2)), Bound::Included(long(5)));
            assert_eq!(found(&index, range), chunk1(&[3, 4, 5]));
            let below = KeyRange::Range(Bound::Unbounded, Bound::Excluded(long(2)));
            assert_eq!(found(&index, below), chunk1(&[0, 1]), "NULL is in no range");
            let above = KeyRange::Range(Bound::Included(long(19_998)), Bound::Unbounded);
            assert_eq!(found(&index, above), chunk1(&[19_998, 19_999]));
            let null = KeyRange::Prefix(vec![ScalarValue::Int64(None)]);
            assert_eq!(found(&index, null), vec![RowId::new(0, 2, 0).0]);
        }
    }

    #[test]
    fn retired_chunks_vanish_from_lookups_and_runs() {
        let mut index = filled(3000, 3000);
        let rows = longs((0..10).map(Some));
        index
            .insert_batch(&rows, &[0], |i| RowId::new(0, 2, i as u16))
            .unwrap();
        assert_eq!(found(&index, KeyRange::Prefix(vec![long(5)])).len(), 2);
        index.retire_chunk(2, 10);
        assert_eq!(found(&index, KeyRange::Prefix(vec![long(5)])), chunk1(&[5]));
        index.retire_chunk(1, 3000);
        assert!(index.is_empty());
        assert!(index.runs.is_empty() && index.retired.is_empty());
        assert_eq!(found(&index, KeyRange::Prefix(vec![long(5)])), chunk1(&[]));
    }

    #[test]
    fn variable_width_keys_and_multi_column_prefixes() {
        let schema = Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("k", DataType::Int64, true),
        ]);
        let words: Vec<String> = (0..5000).map(|i| "w".repeat(i % 40)).collect();
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter_values(&words)),
                Arc::new(Int64Array::from_iter_values(0..5000)),
            ],
        )
        .unwrap();
        let mut index = KeyIndex::default();
        index
            .insert_batch(&batch, &[0, 1], |i| RowId(i as u64))
            .unwrap();
        assert!(!index.runs[0].offsets.is_empty());
        let www = ScalarValue::from("www");
        assert_eq!(
            found(&index, KeyRange::Prefix(vec![www.clone()])).len(),
            125
        );
        let one = KeyRange::Prefix(vec![www, long(43)]);
        assert_eq!(found(&index, one), vec![43]);
        let short = KeyRange::Range(Bound::Unbounded, Bound::Excluded(ScalarValue::from("ww")));
        assert_eq!(found(&index, short).len(), 250);
    }
}
