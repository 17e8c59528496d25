//! The per-statement context a scan needs: the snapshot to read at and the transaction whose
//! own writes it must see. It travels to table providers as a DataFusion config extension.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::storage::TableId;
use crate::txn::{OwnWrites, Snapshot, WriteSet};

#[derive(Debug)]
pub struct StatementContext {
    pub snapshot: Arc<Snapshot>,
    pub writes: Option<Arc<Mutex<WriteSet>>>,
}

impl StatementContext {
    pub fn own_writes(&self, table: TableId) -> Option<OwnWrites> {
        self.writes.as_ref()?.lock().own_writes(table)
    }
}
