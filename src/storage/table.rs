//! A table: its current definition and its data partitions.
//!
//! Invariants: the definition is replaced atomically by DDL; a dropped table keeps working for
//! readers that already hold it, but commits that write to it fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::Expr;
use parking_lot::RwLock;

use super::partition::Partition;
use super::schema::{TableDef, TableId};

/// The default expressions of a table's columns, planned once when the definition changes.
pub type ColumnDefaults = Vec<(String, Expr)>;

#[derive(Debug)]
pub struct Table {
    def: RwLock<Arc<TableDef>>,
    defaults: RwLock<Arc<ColumnDefaults>>,
    partitions: Vec<Arc<Partition>>,
    dropped: AtomicBool,
}

impl Table {
    pub fn new(def: TableDef, defaults: ColumnDefaults, chunk_rows: usize) -> Table {
        let partition = Arc::new(Partition::new(0, chunk_rows, &def.indexes));
        Table {
            def: RwLock::new(Arc::new(def)),
            defaults: RwLock::new(Arc::new(defaults)),
            partitions: vec![partition],
            dropped: AtomicBool::new(false),
        }
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

    pub fn partitions(&self) -> &[Arc<Partition>] {
        &self.partitions
    }

    pub fn partition(&self, number: u16) -> Option<&Arc<Partition>> {
        self.partitions.get(number as usize)
    }

    /// Splits rows by the data partition they belong to.
    pub fn route(&self, batch: RecordBatch) -> Vec<(u16, RecordBatch)> {
        vec![(0, batch)]
    }

    pub fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
    }

    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}
