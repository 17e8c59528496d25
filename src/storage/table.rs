//! A table: its current definition and its data partitions.
//!
//! Invariants:
//! - The definition is replaced atomically by DDL; a dropped table keeps working for readers
//!   that already hold it, but commits that write to it fail.
//! - The set of data partitions is replaced as a whole (copy on write) when partitions appear
//!   or are removed, only by the commit pipeline, catalog changes and recovery, which are
//!   serialised by the commit lock; readers take the current set with one `Arc` clone.
//! - Every partition has a *slot*, the number row ids carry. A removed partition's slot is
//!   reused only once nothing can still hold a row id in it: no other `Arc` of the partition
//!   exists (transactions pin the partitions whose rows they changed) and no snapshot older
//!   than the removal is registered (statements resolve row ids they read while their
//!   snapshot is registered).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::Expr;
use parking_lot::{Mutex, RwLock};

use super::chunk::{PRIVATE_PARTITION, Ts};
use super::partition::Partition;
use super::partitioning::PartitionKey;
use super::schema::{TableDef, TableId};
use crate::error::{KuraError, Result, sqlstate};

/// The default expressions of a table's columns, planned once when the definition changes.
pub type ColumnDefaults = Vec<(String, Expr)>;

/// Sizes every table of a database shares.
#[derive(Debug, Clone, Copy)]
pub struct TableLimits {
    pub chunk_rows: usize,
    /// `/sql/tablePartitioningMaxAssignNum`: most data partitions one table may have.
    pub max_partitions: usize,
}

/// The data partitions of a table at one moment, by key and by slot.
#[derive(Debug, Default, Clone)]
pub struct PartitionSet {
    by_key: BTreeMap<PartitionKey, Arc<Partition>>,
    by_slot: Vec<Option<Arc<Partition>>>,
}

impl PartitionSet {
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Every partition, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Partition>> {
        self.by_key.values()
    }

    pub fn get(&self, key: &PartitionKey) -> Option<&Arc<Partition>> {
        self.by_key.get(key)
    }

    pub fn by_slot(&self, slot: u16) -> Option<&Arc<Partition>> {
        self.by_slot.get(slot as usize).and_then(|p| p.as_ref())
    }

    /// The partitions whose interval lies in `intervals`, in key order.
    pub fn in_intervals(
        &self,
        intervals: RangeInclusive<i64>,
    ) -> impl Iterator<Item = &Arc<Partition>> {
        let (lo, hi) = intervals.into_inner();
        let range = (lo <= hi).then_some(
            PartitionKey {
                interval: lo,
                bucket: 0,
            }..=PartitionKey {
                interval: hi,
                bucket: u32::MAX,
            },
        );
        range
            .into_iter()
            .flat_map(move |range| self.by_key.range(range).map(|(_, p)| p))
    }
}

/// A removed partition whose slot waits until nothing can refer to it. Only a weak
/// reference is kept, so the partition's rows are freed as soon as its last reader lets go.
#[derive(Debug)]
struct Retired {
    slot: u16,
    partition: Weak<Partition>,
    removed_at: Ts,
}

#[derive(Debug)]
pub struct Table {
    def: RwLock<Arc<TableDef>>,
    defaults: RwLock<Arc<ColumnDefaults>>,
    partitions: RwLock<Arc<PartitionSet>>,
    retired: Mutex<Vec<Retired>>,
    limits: TableLimits,
    dropped: AtomicBool,
}

impl Table {
    pub fn new(def: TableDef, defaults: ColumnDefaults, limits: TableLimits) -> Table {
        let keys = def.partitioning().initial_keys();
        let table = Table {
            def: RwLock::new(Arc::new(def)),
            defaults: RwLock::new(Arc::new(defaults)),
            partitions: RwLock::new(Arc::new(PartitionSet::default())),
            retired: Mutex::new(Vec::new()),
            limits,
            dropped: AtomicBool::new(false),
        };
        // A new table has no removed partitions, so this cannot run out of slots.
        let _ = table.add_partitions(&keys, 0);
        table
    }

    pub fn id(&self) -> TableId {
        self.def.read().id
    }

    pub fn def(&self) -> Arc<TableDef> {
        self.def.read().clone()
    }

    pub fn set_def(&self, def: TableDef) {
        *self.def.write() = Arc::new(def);
    }

    pub fn defaults(&self) -> Arc<ColumnDefaults> {
        self.defaults.read().clone()
    }

    pub fn set_defaults(&self, defaults: ColumnDefaults) {
        *self.defaults.write() = Arc::new(defaults);
    }

    pub fn limits(&self) -> TableLimits {
        self.limits
    }

    /// The current data partitions.
    pub fn partitions(&self) -> Arc<PartitionSet> {
        self.partitions.read().clone()
    }

    /// The partition row ids with slot `slot` refer to, if it still exists.
    /// Bytes the table's row data occupies in memory, over its data partitions.
    pub fn data_bytes(&self) -> usize {
        self.partitions().iter().map(|p| p.data_bytes()).sum()
    }

    /// Bytes the entries of the indexes `wanted` selects occupy, over the data partitions.
    pub fn index_bytes(&self, wanted: impl Fn(u32) -> bool) -> usize {
        self.partitions()
            .iter()
            .map(|p| p.index_bytes(&wanted))
            .sum()
    }

    pub fn partition(&self, slot: u16) -> Option<Arc<Partition>> {
        self.partitions.read().by_slot(slot).cloned()
    }

    pub fn partition_by_key(&self, key: &PartitionKey) -> Option<Arc<Partition>> {
        self.partitions.read().get(key).cloned()
    }

    /// Splits rows by the data partition they belong to.
    pub fn route(&self, batch: RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>> {
        self.def().partitioning().route(batch)
    }

    /// Creates the partitions among `keys` that do not exist yet. `horizon` is the oldest
    /// registered snapshot: slots of partitions removed before it may be reused.
    pub fn add_partitions(&self, keys: &[PartitionKey], horizon: Ts) -> Result<()> {
        let mut current = self.partitions.write();
        if keys.iter().all(|k| current.by_key.contains_key(k)) {
            return Ok(());
        }
        let def = self.def();
        let mut next = PartitionSet::clone(&current);
        let mut retired = self.retired.lock();
        for key in keys {
            if next.by_key.contains_key(key) {
                continue;
            }
            let slot = free_slot(&mut next, &mut retired, horizon).ok_or_else(|| {
                KuraError::new(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "table \"{}\" cannot get another data partition now: too many were removed recently",
                        def.name
                    ),
                )
            })?;
            let partition = Arc::new(Partition::new(
                slot,
                *key,
                self.limits.chunk_rows,
                &def.indexes,
            ));
            next.by_slot[slot as usize] = Some(partition.clone());
            next.by_key.insert(*key, partition);
        }
        *current = Arc::new(next);
        Ok(())
    }

    /// Removes the partitions `remove` selects, as of commit `ts`; returns their keys.
    pub fn remove_partitions(
        &self,
        ts: Ts,
        mut remove: impl FnMut(&PartitionKey) -> bool,
    ) -> Vec<PartitionKey> {
        let mut current = self.partitions.write();
        let doomed: Vec<PartitionKey> = current
            .by_key
            .keys()
            .filter(|k| remove(k))
            .copied()
            .collect();
        if doomed.is_empty() {
            return doomed;
        }
        let mut next = PartitionSet::clone(&current);
        let mut retired = self.retired.lock();
        for key in &doomed {
            if let Some(partition) = next.by_key.remove(key) {
                next.by_slot[partition.slot() as usize] = None;
                retired.push(Retired {
                    slot: partition.slot(),
                    partition: Arc::downgrade(&partition),
                    removed_at: ts,
                });
            }
        }
        *current = Arc::new(next);
        doomed
    }

    pub fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
    }

    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}

/// A slot for a new partition: a retired one nothing refers to any more, else a fresh one.
fn free_slot(set: &mut PartitionSet, retired: &mut Vec<Retired>, horizon: Ts) -> Option<u16> {
    if let Some(at) = retired
        .iter()
        .position(|r| r.removed_at < horizon && r.partition.strong_count() == 0)
    {
        let slot = retired.swap_remove(at).slot;
        if set.by_slot[slot as usize].is_none() {
            return Some(slot);
        }
    }
    if set.by_slot.len() < PRIVATE_PARTITION as usize {
        set.by_slot.push(None);
        return Some((set.by_slot.len() - 1) as u16);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::partitioning::{IntervalSpec, Partitioning};
    use crate::storage::schema::{ColumnDef, Placement};
    use crate::types::SqlType;
    use datafusion::common::ScalarValue;

    fn interval_table() -> Table {
        let def = TableDef::new(
            1,
            "t".into(),
            vec![ColumnDef {
                name: "k".into(),
                ty: SqlType::Integer,
                nullable: false,
                default: None,
                missing: ScalarValue::Int32(None),
            }],
            Vec::new(),
            Vec::new(),
        )
        .with_placement(Placement {
            partitioning: Partitioning::Interval(
                IntervalSpec::new(0, &SqlType::Integer, 10, None, None).unwrap(),
            ),
            ..Placement::default()
        });
        Table::new(
            def,
            Vec::new(),
            TableLimits {
                chunk_rows: 1024,
                max_partitions: 100,
            },
        )
    }

    fn key(interval: i64) -> PartitionKey {
        PartitionKey {
            interval,
            bucket: 0,
        }
    }

    #[test]
    fn interval_tables_start_empty_and_grow_on_demand() {
        let table = interval_table();
        assert!(table.partitions().is_empty());
        table.add_partitions(&[key(3), key(-1), key(3)], 0).unwrap();
        let set = table.partitions();
        assert_eq!(set.len(), 2);
        let intervals: Vec<i64> = set.iter().map(|p| p.key().interval).collect();
        assert_eq!(intervals, vec![-1, 3]);
        assert_eq!(set.in_intervals(0..=5).count(), 1);
        let (high, low) = (5, 0);
        assert_eq!(set.in_intervals(high..=low).count(), 0);
    }

    #[test]
    fn removed_slots_wait_for_readers_and_old_snapshots() {
        let table = interval_table();
        table.add_partitions(&[key(1), key(2)], 0).unwrap();
        let held = table.partition_by_key(&key(1)).unwrap();
        let slot = held.slot();
        assert_eq!(
            table.remove_partitions(10, |k| k.interval == 1),
            vec![key(1)]
        );
        assert!(table.partition(slot).is_none());
        // Still referenced: a new partition gets a fresh slot.
        table.add_partitions(&[key(5)], 100).unwrap();
        assert_ne!(table.partition_by_key(&key(5)).unwrap().slot(), slot);
        drop(held);
        // Unreferenced, but a snapshot from before the removal may still hold row ids.
        table.add_partitions(&[key(6)], 10).unwrap();
        assert_ne!(table.partition_by_key(&key(6)).unwrap().slot(), slot);
        // Both conditions met: the slot is reused.
        table.add_partitions(&[key(7)], 11).unwrap();
        assert_eq!(table.partition_by_key(&key(7)).unwrap().slot(), slot);
    }
}
