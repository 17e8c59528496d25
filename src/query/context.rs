//! The per-statement context a scan needs: the snapshot to read at and the transaction whose
//! own writes it must see, and the instant that decides which partitions have expired. It travels to table providers as a DataFusion config extension.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::storage::TableId;
use crate::txn::{OwnWrites, Snapshot, WriteSet};

#[derive(Debug)]
pub struct StatementContext {
    pub snapshot: Arc<Snapshot>,
    pub writes: Option<Arc<Mutex<WriteSet>>>,
    /// The server's clock when the statement started, in milliseconds since the epoch:
    /// partitions expired at this instant are invisible to the whole statement.
    pub now_millis: i64,
}

impl StatementContext {
    pub fn own_writes(&self, table: TableId) -> Option<OwnWrites> {
        self.writes.as_ref()?.lock().own_writes(table)
    }
}
