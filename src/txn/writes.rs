//! A transaction's private writes: rows it inserted, committed row versions it deleted, and an
//! undo log for statement and savepoint rollback.
//!
//! Invariants: nothing here is visible to other transactions; private rows are addressed by
//! their position in insertion order and never move; every change is recorded in the undo log
//! so `rollback_to(mark)` restores exactly the state at `mark`.
//!
//! Inserted rows beyond a sixteenth of `/dataStore/storeMemoryLimit` are spilled to swap files
//! (`storage::swap`), so a large COPY holds about that much of its rows in memory until it
//! commits; the commit reads them back piece by piece.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::record_batch::RecordBatch;

use super::locks::LockKey;
use crate::error::{KuraError, Result};
use crate::storage::chunk::slice_bytes;
use crate::storage::index::IndexKey;
use crate::storage::partition::Partition;
use crate::storage::residency::Residency;
use crate::storage::swap::SwappedRows;
use crate::storage::{RowId, Table, TableDef, TableId};

/// Rows a transaction wrote, in memory or spilled to a swap file.
#[derive(Debug, Clone)]
pub enum RowsPiece {
    Memory(RecordBatch),
    Swapped {
        rows: Arc<SwappedRows>,
        num_rows: usize,
        /// Bytes the rows took in memory.
        bytes: usize,
    },
}

impl RowsPiece {
    pub fn num_rows(&self) -> usize {
        match self {
            RowsPiece::Memory(batch) => batch.num_rows(),
            RowsPiece::Swapped { num_rows, .. } => *num_rows,
        }
    }

    /// Bytes the rows take (or took) in memory.
    pub fn bytes(&self) -> usize {
        match self {
            RowsPiece::Memory(batch) => slice_bytes(batch),
            RowsPiece::Swapped { bytes, .. } => *bytes,
        }
    }

    fn memory_bytes(&self) -> usize {
        match self {
            RowsPiece::Memory(batch) => slice_bytes(batch),
            RowsPiece::Swapped { .. } => 0,
        }
    }

    /// The rows as one batch in `def`'s current shape, read back when spilled.
    pub fn load(&self, def: &TableDef) -> Result<RecordBatch> {
        match self {
            RowsPiece::Memory(batch) => def.widen(batch),
            RowsPiece::Swapped { rows, .. } => def.widen_concat(&rows.read_all()?),
        }
    }

    /// A one-row batch of the row at `offset`.
    fn row(&self, offset: usize) -> Result<RecordBatch> {
        match self {
            RowsPiece::Memory(batch) => Ok(batch.slice(offset, 1)),
            RowsPiece::Swapped { rows, .. } => {
                let (block, at) = rows.read_row(offset)?.ok_or_else(|| {
                    KuraError::internal(format!("spilled row {offset} is missing"))
                })?;
                Ok(block.slice(at, 1))
            }
        }
    }
}

#[derive(Debug)]
pub struct TableWrites {
    pub table: Arc<Table>,
    inserts: Vec<RowsPiece>,
    starts: Vec<usize>,
    total: usize,
    private_deleted: HashSet<usize>,
    deleted: BTreeSet<RowId>,
    private_keys: HashMap<IndexKey, usize>,
}

/// What a scan needs of a transaction's writes to one table.
#[derive(Debug, Clone, Default)]
pub struct OwnWrites {
    /// Inserted rows; the first row of each piece has the position that follows the last of
    /// the piece before.
    pub inserts: Vec<RowsPiece>,
    pub private_deleted: HashSet<usize>,
    pub deleted: BTreeSet<RowId>,
}

#[derive(Debug)]
enum Undo {
    Insert { table: TableId },
    DeleteBase { table: TableId, row: RowId },
    DeletePrivate { table: TableId, position: usize },
    Lock,
    Pin,
}

#[derive(Debug, Default)]
pub struct WriteSet {
    tables: BTreeMap<TableId, TableWrites>,
    undo: Vec<Undo>,
    locks: Vec<LockKey>,
    pins: Vec<(Arc<Partition>, RowId)>,
    /// Where inserted rows are spilled once they take more memory than its limit allows.
    spill: Option<Arc<Residency>>,
    /// Bytes of inserted rows held in memory.
    memory_bytes: usize,
}

impl TableWrites {
    fn new(table: Arc<Table>) -> TableWrites {
        TableWrites {
            table,
            inserts: Vec::new(),
            starts: Vec::new(),
            total: 0,
            private_deleted: HashSet::new(),
            deleted: BTreeSet::new(),
            private_keys: HashMap::new(),
        }
    }

    /// The unique key (see `TableDef::unique_key`) of a private row.
    fn pk_key(&self, position: usize) -> Result<Option<IndexKey>> {
        let def = self.table.def();
        if def.primary_key.is_empty() {
            return Ok(None);
        }
        let one = def.widen(&self.private_row(position)?)?;
        let placed = def.partitioning().keys(&one)?[0];
        Ok(Some(def.unique_key(
            def.primary_codec()?.key(&one, &def.primary_key, 0)?,
            placed,
        )))
    }

    /// The private row at `position` as a one-row batch.
    fn private_row(&self, position: usize) -> Result<RecordBatch> {
        let i = self.starts.partition_point(|s| *s <= position) - 1;
        self.inserts[i].row(position - self.starts[i])
    }

    /// Rows inserted and not deleted again, one piece per insert, ready to commit. A spilled
    /// piece stays spilled unless some of its rows were deleted again.
    pub fn surviving_inserts(&self) -> Result<Vec<RowsPiece>> {
        let def = self.table.def();
        let mut out = Vec::with_capacity(self.inserts.len());
        for (piece, start) in self.inserts.iter().zip(&self.starts) {
            let n = piece.num_rows();
            let untouched = !(*start..start + n).any(|p| self.private_deleted.contains(&p));
            if untouched {
                if n > 0 {
                    out.push(piece.clone());
                }
                continue;
            }
            let batch = piece.load(&def)?;
            let keep: BooleanArray = (0..n)
                .map(|r| Some(!self.private_deleted.contains(&(start + r))))
                .collect();
            let kept = filter_record_batch(&batch, &keep)?;
            if kept.num_rows() > 0 {
                out.push(RowsPiece::Memory(kept));
            }
        }
        Ok(out)
    }

    pub fn deleted(&self) -> &BTreeSet<RowId> {
        &self.deleted
    }
}

impl WriteSet {
    /// An empty write set that spills inserted rows through `spill` when there is one.
    pub fn new(spill: Option<Arc<Residency>>) -> WriteSet {
        WriteSet {
            spill,
            ..WriteSet::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tables
            .values()
            .all(|t| t.total == 0 && t.deleted.is_empty())
    }

    pub fn tables(&self) -> impl Iterator<Item = &TableWrites> {
        self.tables.values()
    }

    /// A position in the undo log to roll back to.
    pub fn mark(&self) -> usize {
        self.undo.len()
    }

    fn entry(&mut self, table: &Arc<Table>) -> &mut TableWrites {
        self.tables
            .entry(table.id())
            .or_insert_with(|| TableWrites::new(table.clone()))
    }

    /// Adds private rows; `keys` are their primary-key values when the table has one.
    pub fn insert(
        &mut self,
        table: &Arc<Table>,
        batch: RecordBatch,
        keys: Vec<IndexKey>,
    ) -> Result<()> {
        let id = table.id();
        self.memory_bytes += slice_bytes(&batch);
        let writes = self.entry(table);
        let first = writes.total;
        for (i, key) in keys.into_iter().enumerate() {
            writes.private_keys.insert(key, first + i);
        }
        writes.starts.push(first);
        writes.total += batch.num_rows();
        writes.inserts.push(RowsPiece::Memory(batch));
        self.undo.push(Undo::Insert { table: id });
        self.spill_if_over()
    }

    /// Moves every inserted piece held in memory to swap files once they take more than a
    /// sixteenth of the store's memory limit.
    fn spill_if_over(&mut self) -> Result<()> {
        let Some(residency) = &self.spill else {
            return Ok(());
        };
        if self.memory_bytes <= residency.growth_step() {
            return Ok(());
        }
        for writes in self.tables.values_mut() {
            for piece in &mut writes.inserts {
                let RowsPiece::Memory(batch) = piece else {
                    continue;
                };
                let bytes = slice_bytes(batch);
                let rows = residency.swap().write(std::slice::from_ref(batch))?;
                *piece = RowsPiece::Swapped {
                    rows,
                    num_rows: batch.num_rows(),
                    bytes,
                };
                self.memory_bytes = self.memory_bytes.saturating_sub(bytes);
            }
        }
        Ok(())
    }

    pub fn delete_base(&mut self, table: &Arc<Table>, row: RowId) -> bool {
        let id = table.id();
        if !self.entry(table).deleted.insert(row) {
            return false;
        }
        self.undo.push(Undo::DeleteBase { table: id, row });
        true
    }

    pub fn delete_private(&mut self, table: &Arc<Table>, position: usize) -> Result<bool> {
        let id = table.id();
        let writes = self.entry(table);
        if !writes.private_deleted.insert(position) {
            return Ok(false);
        }
        if let Some(key) = writes.pk_key(position)? {
            writes.private_keys.remove(&key);
        }
        self.undo.push(Undo::DeletePrivate {
            table: id,
            position,
        });
        Ok(true)
    }

    /// Position of this transaction's live private row with primary key `key`.
    pub fn private_key(&self, table: TableId, key: &IndexKey) -> Option<usize> {
        self.tables.get(&table)?.private_keys.get(key).copied()
    }

    /// Whether this transaction deleted the committed row version `row`.
    pub fn deleted_base(&self, table: TableId, row: RowId) -> bool {
        self.tables
            .get(&table)
            .is_some_and(|t| t.deleted.contains(&row))
    }

    /// A private row as a one-row batch.
    pub fn private_row(&self, table: TableId, position: usize) -> Result<Option<RecordBatch>> {
        let Some(writes) = self.tables.get(&table) else {
            return Ok(None);
        };
        if position >= writes.total {
            return Ok(None);
        }
        writes.private_row(position).map(Some)
    }

    pub fn own_writes(&self, table: TableId) -> Option<OwnWrites> {
        let t = self.tables.get(&table)?;
        Some(OwnWrites {
            inserts: t.inserts.clone(),
            private_deleted: t.private_deleted.clone(),
            deleted: t.deleted.clone(),
        })
    }

    pub fn record_lock(&mut self, key: LockKey) {
        self.locks.push(key);
        self.undo.push(Undo::Lock);
    }

    pub fn record_pin(&mut self, partition: Arc<Partition>, row: RowId) {
        self.pins.push((partition, row));
        self.undo.push(Undo::Pin);
    }

    pub fn locks(&self) -> &[LockKey] {
        &self.locks
    }

    /// Drops every pin; called when the transaction ends.
    pub fn unpin_all(&mut self) {
        for (partition, row) in self.pins.drain(..) {
            partition.unpin(row);
        }
    }

    /// Undoes every change made after `mark`. Locks stay held until the transaction ends, as
    /// in PostgreSQL; pins stay too, because the locks may still refer to pinned rows.
    pub fn rollback_to(&mut self, mark: usize) -> Result<()> {
        while self.undo.len() > mark {
            let Some(entry) = self.undo.pop() else { break };
            match entry {
                Undo::Insert { table } => {
                    if let Some(w) = self.tables.get_mut(&table) {
                        let (Some(piece), Some(start)) = (w.inserts.pop(), w.starts.pop()) else {
                            continue;
                        };
                        self.memory_bytes = self.memory_bytes.saturating_sub(piece.memory_bytes());
                        let end = start + piece.num_rows();
                        w.private_keys.retain(|_, p| *p < start || *p >= end);
                        w.private_deleted.retain(|p| *p < start || *p >= end);
                        w.total = start;
                    }
                }
                Undo::DeleteBase { table, row } => {
                    if let Some(w) = self.tables.get_mut(&table) {
                        w.deleted.remove(&row);
                    }
                }
                Undo::DeletePrivate { table, position } => {
                    if let Some(w) = self.tables.get_mut(&table) {
                        w.private_deleted.remove(&position);
                        if let Some(key) = w.pk_key(position)? {
                            w.private_keys.insert(key, position);
                        }
                    }
                }
                Undo::Lock | Undo::Pin => {}
            }
        }
        Ok(())
    }
}
