//! Tree indexes of a data partition: ordered maps from key values to row versions.
//!
//! Invariants: an index holds one entry per row version of its partition (live or dead, until
//! compaction removes the dead version); readers must check visibility of every row an index
//! returns. Keys of one index always have the Arrow types of the indexed columns.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;

use datafusion::common::ScalarValue;

use super::chunk::RowId;

/// A key of an index: the values of the indexed columns, in index order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexKey(pub Vec<ScalarValue>);

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IndexKey {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(&other.0) {
            match compare_values(a, b) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

/// Total order on values of one column type: NULL first, then by value.
pub fn compare_values(a: &ScalarValue, b: &ScalarValue) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// Which rows of the leading index column a lookup asks for.
#[derive(Debug, Clone)]
pub enum KeyRange {
    /// Keys whose leading columns equal these values.
    Prefix(Vec<ScalarValue>),
    /// Keys whose first column lies between the bounds.
    Range(Bound<ScalarValue>, Bound<ScalarValue>),
}

/// One tree index of one data partition.
#[derive(Debug, Clone, Default)]
pub struct TreeIndex {
    entries: BTreeSet<(IndexKey, RowId)>,
}

impl TreeIndex {
    pub fn insert(&mut self, key: IndexKey, row: RowId) {
        self.entries.insert((key, row));
    }

    pub fn remove(&mut self, key: IndexKey, row: RowId) {
        self.entries.remove(&(key, row));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes the entries occupy in memory (keys with their heap parts, and row ids); the
    /// tree's own node overhead is not counted.
    pub fn memory_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|(key, _)| {
                std::mem::size_of::<(IndexKey, RowId)>()
                    + key.0.iter().map(ScalarValue::size).sum::<usize>()
            })
            .sum()
    }

    /// Row versions whose key matches `range`, in key order.
    pub fn lookup(&self, range: &KeyRange, out: &mut Vec<RowId>) {
        match range {
            KeyRange::Prefix(values) => {
                let start = (IndexKey(values.clone()), RowId(0));
                let n = values.len();
                out.extend(
                    self.entries
                        .range(start..)
                        .take_while(|(k, _)| prefix_equal(&k.0, values, n))
                        .map(|(_, r)| *r),
                );
            }
            KeyRange::Range(lower, upper) => {
                let start = match lower {
                    Bound::Included(v) | Bound::Excluded(v) => {
                        Bound::Included((IndexKey(vec![v.clone()]), RowId(0)))
                    }
                    Bound::Unbounded => Bound::Unbounded,
                };
                let rows = self
                    .entries
                    .range((start, Bound::Unbounded))
                    .skip_while(|(k, _)| match lower {
                        Bound::Excluded(v) => compare_values(&k.0[0], v) == Ordering::Equal,
                        _ => false,
                    })
                    .take_while(|(k, _)| match upper {
                        Bound::Included(v) => compare_values(&k.0[0], v) != Ordering::Greater,
                        Bound::Excluded(v) => compare_values(&k.0[0], v) == Ordering::Less,
                        Bound::Unbounded => true,
                    })
                    // NULL keys never satisfy a comparison.
                    .filter(|(k, _)| !k.0[0].is_null())
                    .map(|(_, r)| *r);
                out.extend(rows);
            }
        }
    }
}

fn prefix_equal(key: &[ScalarValue], prefix: &[ScalarValue], n: usize) -> bool {
    key.len() >= n
        && key[..n]
            .iter()
            .zip(prefix)
            .all(|(a, b)| compare_values(a, b) == Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: i64) -> IndexKey {
        IndexKey(vec![ScalarValue::Int64(Some(v))])
    }

    #[test]
    fn prefix_and_range_lookups() {
        let mut idx = TreeIndex::default();
        for i in 0..10 {
            idx.insert(key(i), RowId(i as u64));
        }
        idx.insert(IndexKey(vec![ScalarValue::Int64(None)]), RowId(99));
        let mut out = Vec::new();
        idx.lookup(
            &KeyRange::Prefix(vec![ScalarValue::Int64(Some(4))]),
            &mut out,
        );
        assert_eq!(out, vec![RowId(4)]);
        out.clear();
        idx.lookup(
            &KeyRange::Range(
                Bound::Excluded(ScalarValue::Int64(Some(2))),
                Bound::Included(ScalarValue::Int64(Some(5))),
            ),
            &mut out,
        );
        assert_eq!(out, vec![RowId(3), RowId(4), RowId(5)]);
        out.clear();
        idx.lookup(
            &KeyRange::Range(
                Bound::Unbounded,
                Bound::Excluded(ScalarValue::Int64(Some(2))),
            ),
            &mut out,
        );
        assert_eq!(out, vec![RowId(0), RowId(1)]);
    }
}
