//! Transactions: timestamps, snapshots, row locks and the commit pipeline.
//!
//! Commit pipeline (one commit at a time under `commit_lock`):
//! validate → assign the commit timestamp → (log append: the durability layer hooks in here)
//! → apply to storage (append rows, set `end` stamps) → publish (advance `visible`) →
//! release locks. A snapshot is the `visible` timestamp at the time it is taken, so readers
//! never see a half-applied commit.
//!
//! Invariants: `visible` only grows; every snapshot in use is registered in `snapshots` so
//! garbage collection never removes a version some reader can still see.

pub mod locks;
pub mod writes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

pub use locks::{LockKey, LockManager, TxnHandle, TxnId};
pub use writes::{OwnWrites, WriteSet};

use datafusion::arrow::record_batch::RecordBatch;
use std::collections::BTreeSet;

use crate::error::{KuraError, Result, sqlstate};
use crate::storage::index::KeyRange;
use crate::storage::partition::index_key;
use crate::storage::schema::duplicate_key;
use crate::storage::{RowId, TS_LIVE, Table, TableDef, Ts};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    RepeatableRead,
}

impl Isolation {
    pub fn name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read committed",
            Isolation::RepeatableRead => "repeatable read",
        }
    }
}

/// A registered snapshot; unregisters itself when dropped.
#[derive(Debug)]
pub struct Snapshot {
    ts: Ts,
    manager: Arc<TxnManager>,
}

impl Snapshot {
    pub fn ts(&self) -> Ts {
        self.ts
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let mut snapshots = self.manager.snapshots.lock();
        if let Some(count) = snapshots.get_mut(&self.ts) {
            *count -= 1;
            if *count == 0 {
                snapshots.remove(&self.ts);
            }
        }
    }
}

#[derive(Debug)]
pub struct TxnManager {
    next_txn: AtomicU64,
    visible: AtomicU64,
    commit_lock: Mutex<()>,
    snapshots: Mutex<BTreeMap<Ts, usize>>,
    pub locks: LockManager,
    commits: AtomicU64,
}

/// One transaction: its writes (shared with the scans of its statements), its snapshot under
/// REPEATABLE READ, and the handle other transactions wait on.
#[derive(Debug)]
pub struct Transaction {
    pub handle: Arc<TxnHandle>,
    pub isolation: Isolation,
    pub writes: Arc<Mutex<WriteSet>>,
    pub snapshot: Option<Arc<Snapshot>>,
}

impl Transaction {
    pub fn id(&self) -> TxnId {
        self.handle.id
    }
}

impl TxnManager {
    pub fn new() -> Arc<TxnManager> {
        Arc::new(TxnManager {
            next_txn: AtomicU64::new(1),
            visible: AtomicU64::new(1),
            commit_lock: Mutex::new(()),
            snapshots: Mutex::new(BTreeMap::new()),
            locks: LockManager::default(),
            commits: AtomicU64::new(0),
        })
    }

    /// Starts a transaction that may stay open for at most `timeout`.
    pub fn begin(&self, isolation: Isolation, timeout: Duration) -> Transaction {
        let id = self.next_txn.fetch_add(1, Ordering::Relaxed);
        Transaction {
            handle: TxnHandle::new(id, timeout),
            isolation,
            writes: Arc::new(Mutex::new(WriteSet::default())),
            snapshot: None,
        }
    }

    /// Takes and registers a snapshot of everything committed so far.
    pub fn snapshot(self: &Arc<Self>) -> Arc<Snapshot> {
        let mut snapshots = self.snapshots.lock();
        let ts = self.visible.load(Ordering::Acquire);
        *snapshots.entry(ts).or_insert(0) += 1;
        Arc::new(Snapshot {
            ts,
            manager: self.clone(),
        })
    }

    pub fn visible(&self) -> Ts {
        self.visible.load(Ordering::Acquire)
    }

    /// The newest timestamp no registered snapshot is older than: versions that ended at or
    /// before it are invisible to every present and future reader.
    pub fn gc_horizon(&self) -> Ts {
        let snapshots = self.snapshots.lock();
        let visible = self.visible.load(Ordering::Acquire);
        snapshots
            .keys()
            .next()
            .copied()
            .unwrap_or(visible)
            .min(visible)
    }

    pub fn active_snapshots(&self) -> usize {
        self.snapshots.lock().values().sum()
    }

    pub fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Makes the transaction's writes durable and visible, then releases its locks.
    pub fn commit(&self, txn: &Transaction) -> Result<Ts> {
        let result = self.apply(txn);
        self.finish(txn);
        result
    }

    /// Discards the transaction's writes and releases its locks.
    pub fn rollback(&self, txn: &Transaction) {
        self.finish(txn);
    }

    fn finish(&self, txn: &Transaction) {
        let mut writes = txn.writes.lock();
        writes.unpin_all();
        self.locks.release_all(&txn.handle, writes.locks());
    }

    fn apply(&self, txn: &Transaction) -> Result<Ts> {
        let writes = txn.writes.lock();
        if writes.is_empty() {
            return Ok(self.visible());
        }
        // Validate and prepare everything that can fail before the first change to storage.
        let mut prepared = Vec::new();
        for table_writes in writes.tables() {
            let table = &table_writes.table;
            if table.is_dropped() {
                return Err(KuraError::new(
                    sqlstate::UNDEFINED_TABLE,
                    format!(
                        "relation \"{}\" was dropped by another transaction",
                        table.def().name
                    ),
                ));
            }
            let def = table.def();
            let mut routed = Vec::new();
            for batch in table_writes.surviving_inserts()? {
                routed.extend(table.route(batch));
            }
            prepared.push((table.clone(), def, routed, table_writes.deleted().clone()));
        }
        let _serial = self.commit_lock.lock();
        if txn.handle.is_aborted() {
            return Err(timed_out());
        }
        for (table, def, routed, deleted) in &prepared {
            check_unique(table, def, routed, deleted)?;
        }
        let ts = self.visible.load(Ordering::Acquire) + 1;
        for (table, def, routed, deleted) in &prepared {
            for row in deleted {
                if let Some(partition) = table.partition(row.partition()) {
                    partition.set_end(*row, ts)?;
                }
            }
            for (number, batch) in routed {
                if let Some(partition) = table.partition(*number) {
                    partition.append(def, batch, ts)?;
                }
            }
        }
        self.visible.store(ts, Ordering::Release);
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(ts)
    }

    /// Runs `f` with commits paused, for DDL that must not interleave with applying commits.
    pub fn with_commits_paused<T>(&self, f: impl FnOnce() -> T) -> T {
        let _serial = self.commit_lock.lock();
        f()
    }

    /// Waits for a lock on `key` for `txn`, recording it for release at the end.
    pub async fn lock(
        &self,
        txn: &Transaction,
        key: LockKey,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if self.locks.acquire(&key, &txn.handle, timeout).await? {
            txn.writes.lock().record_lock(key);
        }
        Ok(())
    }
}

/// The error of a transaction rolled back for outliving `/transaction/transactionTimeoutLimit`.
pub fn timed_out() -> KuraError {
    KuraError::new(
        sqlstate::QUERY_CANCELED,
        "transaction exceeded transactionTimeoutLimit and was rolled back",
    )
}

/// Fails the commit when an inserted primary key already has a live committed version: the
/// statement-time check can miss a key a concurrent transaction committed in between.
fn check_unique(
    table: &Table,
    def: &TableDef,
    routed: &[(u16, RecordBatch)],
    deleted: &BTreeSet<RowId>,
) -> Result<()> {
    let Some(pk) = def.primary_index() else {
        return Ok(());
    };
    for (_, batch) in routed {
        for row in 0..batch.num_rows() {
            let key = index_key(batch, &pk.columns, row)?;
            for partition in table.partitions() {
                let (snapshot, rows) = partition.lookup(pk.id, &KeyRange::Prefix(key.0.clone()));
                let taken = rows.iter().any(|r| {
                    !deleted.contains(r)
                        && snapshot
                            .chunk(r.chunk())
                            .is_some_and(|c| r.offset() < c.len() && c.end(r.offset()) == TS_LIVE)
                });
                if taken {
                    return Err(duplicate_key(def, &key));
                }
            }
        }
    }
    Ok(())
}
