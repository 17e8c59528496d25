//! The per-statement context a scan needs: the snapshot to read at and the transaction whose
//! own writes it must see, and the instant that decides which partitions have expired. It travels to table providers as a DataFusion config extension.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::interrupt::Interrupt;
use crate::storage::TableId;
use crate::txn::{OwnWrites, Snapshot, WriteSet};

#[derive(Debug)]
pub struct StatementContext {
    pub snapshot: Arc<Snapshot>,
    pub writes: Option<Arc<Mutex<WriteSet>>>,
    /// The transaction the statement runs in (`txid_current()`).
    pub txn_id: crate::txn::locks::TxnId,
    /// The server's clock when the statement started: partitions expired at this instant are
    /// invisible to the whole statement, and it is what NOW() returns.
    pub now: chrono::DateTime<chrono::Utc>,
    /// The connection's interrupt: scans stop between batches when it is raised.
    pub interrupt: Arc<Interrupt>,
    /// The session running the statement, for the catalog relations that describe it.
    pub session: Option<Arc<crate::session::view::SessionView>>,
}

datafusion::common::extensions_options! {
    /// What scalar functions may read about the statement: they see the configuration
    /// options, not the session config that carries [`StatementContext`].
    pub struct StatementOptions {
        /// The transaction the statement runs in.
        pub txn_id: u64, default = 0
        /// The `xmin` of catalog rows (`TxnManager::catalog_xid`).
        pub catalog_xid: u64, default = 0
    }
}

impl datafusion::common::config::ConfigExtension for StatementOptions {
    const PREFIX: &'static str = "kura_statement";
}

impl StatementContext {
    pub fn now_millis(&self) -> i64 {
        self.now.timestamp_millis()
    }

    pub fn own_writes(&self, table: TableId) -> Option<OwnWrites> {
        self.writes.as_ref()?.lock().own_writes(table)
    }
}
