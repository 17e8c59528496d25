//! Transactions: timestamps, snapshots, row locks and the commit pipeline.
//!
//! Commit pipeline: prepare (group rows by data partition, encode them for the log) → under
//! `commit_lock`: validate → assign the commit timestamp, which is also the record's LSN →
//! append the record to the transaction log → apply to storage (append rows, set `end`
//! stamps) → release `commit_lock` → wait for the group fsync if the commit asks for it →
//! publish (advance `visible`) → release row locks → acknowledge. DDL takes the same path
//! with a catalog record. A snapshot is the `visible` timestamp at the time it is taken, so
//! readers never see a half-applied commit, and under SYNC never one that is not durable
//! unless a later asynchronous commit published it (see docs/DURABILITY.md).
//!
//! Invariants: timestamps are handed out without gaps, in log order, and a timestamp is
//! consumed only once its record is in the log; nothing is applied to storage before it is
//! logged; `visible` only grows and never passes the last applied commit; every snapshot in
//! use is registered in `snapshots` so garbage collection never removes a version some
//! reader can still see.

pub mod locks;
pub mod writes;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

pub use locks::{LockKey, LockManager, TransactionLock, TxnHandle, TxnId};
pub use writes::{OwnWrites, WriteSet};

use datafusion::arrow::record_batch::RecordBatch;

use crate::clock::Clock;
use crate::error::{KuraError, Result, sqlstate};
use crate::storage::chunk::slice_bytes;
use crate::storage::index::KeyRange;
use crate::storage::partition::Partition;
use crate::storage::partition::index_key;
use crate::storage::residency::Residency;
use crate::storage::schema::duplicate_key;
use crate::storage::{PartitionKey, RowId, TS_LIVE, Table, TableDef, TableId, Ts};
use crate::wal::record::{COMMIT_FRAME_BUDGET, encode_batches, encode_catalog, encode_commit};
use crate::wal::{CatalogChange, Lsn, PartitionChange, TxnLog};

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
    /// A transaction id taken after the last catalog change became visible: the `xmin` of
    /// every catalog row (see [`TxnManager::catalog_xid`]).
    catalog_xid: AtomicU64,
    visible: AtomicU64,
    /// Serialises commits and DDL; holds the last commit timestamp (= LSN) handed out.
    commit_lock: Mutex<Ts>,
    snapshots: Mutex<BTreeMap<Ts, usize>>,
    pub locks: LockManager,
    commits: AtomicU64,
    log: OnceLock<Arc<TxnLog>>,
    /// The store's memory limit, told of every append (absent for engines without a data
    /// directory).
    residency: OnceLock<Arc<Residency>>,
    /// The server's wall clock: commits use it to drop rows of expired partitions.
    pub clock: Arc<Clock>,
}

/// Consecutive items grouped into runs of at most [`COMMIT_FRAME_BUDGET`] bytes (an item
/// larger than that alone); one empty run when there are no items.
fn budget_runs(sizes: impl IntoIterator<Item = usize>) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut end = 0;
    let mut bytes = 0;
    for size in sizes {
        if end > start && bytes + size > COMMIT_FRAME_BUDGET {
            runs.push(start..end);
            start = end;
            bytes = 0;
        }
        bytes += size;
        end += 1;
    }
    runs.push(start..end);
    runs
}

/// The inserted batches of a change in runs of about [`COMMIT_FRAME_BUDGET`] bytes, encoded
/// for the log when there is one.
fn encode_pieces(inserted: &[RecordBatch], logged: bool) -> Result<Vec<EncodedPiece>> {
    budget_runs(inserted.iter().map(RecordBatch::get_array_memory_size))
        .into_iter()
        .map(|run| {
            Ok(EncodedPiece {
                batches: run.len(),
                ipc: if logged {
                    encode_batches(&inserted[run])?
                } else {
                    Vec::new()
                },
            })
        })
        .collect()
}

/// The first transaction id of this process: the microseconds since the Unix epoch, so that
/// ids keep growing across restarts (the log does not record them) as long as fewer than a
/// million transactions a second begin on average and the clock is not set back.
fn first_transaction_id() -> TxnId {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    u64::try_from(micros).unwrap_or(u64::MAX / 2).max(1)
}

/// What a commit waits for before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitWait {
    /// The log record is on stable storage (fsynced); survives power loss.
    Flush,
    /// The log record is in the operating system; survives a crash of the server process.
    Written,
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

/// A commit's changes to one data partition, prepared before the commit lock is taken.
struct PreparedChange {
    table: Arc<Table>,
    def: Arc<TableDef>,
    partition: PartitionKey,
    /// The partition the deleted rows were read from (it may be removed before the commit).
    existing: Option<Arc<Partition>>,
    inserted: Vec<RecordBatch>,
    /// The inserted rows in pieces of about [`COMMIT_FRAME_BUDGET`] bytes, each logged as a
    /// change of its own (at least one piece).
    encoded: Vec<EncodedPiece>,
    deleted: Vec<RowId>,
}

/// Consecutive inserted batches of a change, encoded for the log (empty without one).
struct EncodedPiece {
    batches: usize,
    ipc: Vec<u8>,
}

impl TxnManager {
    /// A manager with nothing committed and no log (recovery attaches one).
    pub fn new() -> Arc<TxnManager> {
        TxnManager::with_clock(Arc::new(Clock::new(false)))
    }

    pub fn with_clock(clock: Arc<Clock>) -> Arc<TxnManager> {
        let first_txn = first_transaction_id();
        Arc::new(TxnManager {
            next_txn: AtomicU64::new(first_txn + 1),
            catalog_xid: AtomicU64::new(first_txn),
            visible: AtomicU64::new(1),
            commit_lock: Mutex::new(1),
            snapshots: Mutex::new(BTreeMap::new()),
            locks: LockManager::default(),
            commits: AtomicU64::new(0),
            log: OnceLock::new(),
            residency: OnceLock::new(),
            clock,
        })
    }

    /// Sets the last commit timestamp after loading a checkpoint (before any activity).
    pub fn restore_position(&self, ts: Ts) {
        let mut last = self.commit_lock.lock();
        *last = ts;
        self.visible.store(ts, Ordering::Release);
    }

    /// From now on every commit and DDL is appended to `log`; fails if one is attached.
    pub fn attach_log(&self, log: Arc<TxnLog>) -> Result<()> {
        self.log
            .set(log)
            .map_err(|_| KuraError::internal("a transaction log is already attached"))
    }

    /// Puts every later append under the store's memory limit.
    pub fn attach_residency(&self, residency: Arc<Residency>) -> Result<()> {
        self.residency
            .set(residency)
            .map_err(|_| KuraError::internal("a store memory limit is already attached"))
    }

    pub fn residency(&self) -> Option<&Arc<Residency>> {
        self.residency.get()
    }

    pub fn log(&self) -> Option<&Arc<TxnLog>> {
        self.log.get()
    }

    /// The timestamp the next commit will get (= the LSN of the next log record).
    pub fn next_lsn(&self) -> Lsn {
        *self.commit_lock.lock() + 1
    }

    /// The transaction id standing for the catalog's last change: every catalog row reports
    /// it as its `xmin`. It is taken after the change became visible, so a transaction that
    /// began before it (a lower id, `age(xmin) <= age(txid)` false) may not have seen the
    /// change, and one that began after it (a higher id) has. Tools such as DataGrip re-read
    /// the objects whose `xmin` is not older than the transaction of their last reading; with
    /// one number for the whole catalog they re-read all of it after any change.
    pub fn catalog_xid(&self) -> TxnId {
        self.catalog_xid.load(Ordering::Acquire)
    }

    fn note_catalog_change(&self) {
        let id = self.next_txn.fetch_add(1, Ordering::Relaxed);
        self.catalog_xid.fetch_max(id, Ordering::AcqRel);
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
        let ts = self.visible.load(Ordering::Acquire);
        self.snapshot_at(ts)
    }

    fn snapshot_at(self: &Arc<Self>, ts: Ts) -> Arc<Snapshot> {
        let mut snapshots = self.snapshots.lock();
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

    /// Makes the transaction's writes durable (as `wait` asks) and visible, then releases its
    /// locks. Once the changes are logged, the rest runs to completion even if the caller
    /// goes away, so locks are always released.
    pub async fn commit(self: &Arc<Self>, txn: &Transaction, wait: CommitWait) -> Result<Ts> {
        let ts = match self.apply(txn) {
            Ok(Some(ts)) => ts,
            Ok(None) => {
                self.finish(txn);
                return Ok(self.visible());
            }
            Err(e) => {
                self.finish(txn);
                return Err(e);
            }
        };
        if wait == CommitWait::Written || self.log.get().is_none() {
            // Nothing to wait for: publish at once.
            self.make_visible(ts);
            self.finish(txn);
            return Ok(ts);
        }
        // The wait runs in its own task, so a caller that goes away mid-wait still publishes
        // and releases the locks.
        let manager = self.clone();
        let (handle, writes) = (txn.handle.clone(), txn.writes.clone());
        let published = tokio::spawn(async move {
            let result = manager.publish(ts, wait).await;
            let mut writes = writes.lock();
            writes.unpin_all();
            manager.locks.release_all(&handle, writes.locks());
            result
        });
        published
            .await
            .map_err(|e| KuraError::internal(format!("commit task failed: {e}")))??;
        Ok(ts)
    }

    /// Waits for the log as `wait` asks, then makes commit `ts` (and all before it) visible.
    async fn publish(&self, ts: Ts, wait: CommitWait) -> Result<()> {
        if wait == CommitWait::Flush
            && let Some(log) = self.log.get()
        {
            log.wait_durable(ts).await?;
        }
        self.make_visible(ts);
        Ok(())
    }

    /// Publishes commit `ts` and all before it; `fetch_max`, so commits that finish waiting
    /// out of order never hide each other.
    fn make_visible(&self, ts: Ts) {
        self.visible.fetch_max(ts, Ordering::AcqRel);
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

    /// Validates, logs and applies the transaction's writes under the commit lock; returns
    /// the commit timestamp, or `None` when there was nothing to write.
    fn apply(&self, txn: &Transaction) -> Result<Option<Ts>> {
        let mut prepared = {
            let writes = txn.writes.lock();
            if writes.is_empty() {
                return Ok(None);
            }
            self.prepare(&writes)?
        };
        let mut last = self.commit_lock.lock();
        if txn.handle.is_aborted() {
            return Err(timed_out());
        }
        let now = self.clock.now_millis();
        let mut new_partitions: BTreeMap<TableId, (Arc<Table>, Vec<PartitionKey>)> =
            BTreeMap::new();
        for change in &mut prepared {
            if change.table.is_dropped() {
                return Err(dropped_meanwhile(&change.def));
            }
            let current = change.table.partition_by_key(&change.partition);
            if change.def.placement.expired(change.partition.interval, now) {
                // GridDB: a row that is already expired is accepted and not stored.
                change.inserted.clear();
                change.encoded = encode_pieces(&[], false)?;
            }
            let same = match (&current, &change.existing) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            };
            if !same {
                // The partition was removed after the rows were read: they are gone with it.
                change.deleted.clear();
            }
            match &current {
                Some(partition) => {
                    check_unique(partition, &change.def, &change.inserted, &change.deleted)?
                }
                None if !change.inserted.is_empty() => {
                    check_new_partition(&change.def, change.partition)?;
                    new_partitions
                        .entry(change.def.id)
                        .or_insert_with(|| (change.table.clone(), Vec::new()))
                        .1
                        .push(change.partition);
                }
                None => {}
            }
        }
        prepared.retain(|c| !c.inserted.is_empty() || !c.deleted.is_empty());
        if prepared.is_empty() {
            return Ok(None);
        }
        let horizon = self.gc_horizon();
        for (table, keys) in new_partitions.values() {
            let limits = table.limits();
            if table.partitions().len() + keys.len() > limits.max_partitions {
                return Err(too_many_partitions(&table.def(), limits.max_partitions));
            }
            table.add_partitions(keys, horizon)?;
        }
        // One logged change per encoded piece: a large change continues in further changes
        // of the same partition with the serials that follow.
        let mut changes = Vec::with_capacity(prepared.len());
        // Per logged change: the prepared change it comes from, its encoded rows, and whether
        // it is that change's first (which ends the deleted versions).
        let mut pieces: Vec<(&PreparedChange, &[u8], bool)> = Vec::with_capacity(prepared.len());
        for change in &prepared {
            let partition = partition_of(&change.table, change.partition)?;
            let mut deleted = change
                .deleted
                .iter()
                .map(|row| {
                    partition.serial(*row).ok_or_else(|| {
                        KuraError::internal(format!("row {row:?} vanished while pinned"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let mut serial = partition.next_serial();
            let mut batches = change.inserted.as_slice();
            for (i, piece) in change.encoded.iter().enumerate() {
                let (inserted, rest) = batches.split_at(piece.batches.min(batches.len()));
                batches = rest;
                changes.push(PartitionChange {
                    table: change.table.id(),
                    partition: change.partition,
                    deleted: std::mem::take(&mut deleted),
                    first_serial: serial,
                    inserted: inserted.to_vec(),
                });
                pieces.push((change, piece.ipc.as_slice(), i == 0));
                serial += inserted.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            }
        }
        let frames = budget_runs(pieces.iter().map(|p| p.1.len()));
        let ts = *last + frames.len() as u64;
        if let Some(log) = self.log.get() {
            let first = *last + 1;
            let compress = log.compress();
            let encoded = frames.iter().enumerate().map(|(i, run)| {
                let ipc: Vec<&[u8]> = pieces[run.clone()].iter().map(|p| p.1).collect();
                let last = i + 1 == frames.len();
                encode_commit(
                    first + i as u64,
                    &changes[run.clone()],
                    &ipc,
                    compress,
                    last,
                )
            });
            log.append_frames(first, encoded)?;
        }
        for (change, (owner, _, first)) in changes.iter().zip(&pieces) {
            let ended: &[RowId] = if *first { &owner.deleted } else { &[] };
            apply_change(
                &owner.table,
                &owner.def,
                change,
                ended,
                ts,
                self.residency.get(),
            )?;
        }
        *last = ts;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(Some(ts))
    }

    /// Groups the write set by data partition and encodes inserted rows for the log.
    fn prepare(&self, writes: &WriteSet) -> Result<Vec<PreparedChange>> {
        let mut prepared = Vec::new();
        for table_writes in writes.tables() {
            let table = &table_writes.table;
            let def = table.def();
            if table.is_dropped() {
                return Err(dropped_meanwhile(&def));
            }
            let mut by_partition: BTreeMap<PartitionKey, (Vec<RecordBatch>, Vec<RowId>)> =
                BTreeMap::new();
            for batch in table_writes.surviving_inserts()? {
                for (key, rows) in table.route(batch)? {
                    by_partition.entry(key).or_default().0.push(rows);
                }
            }
            let partitions = table.partitions();
            for row in table_writes.deleted() {
                // Rows of a partition removed since they were read are gone already.
                if let Some(partition) = partitions.by_slot(row.partition()) {
                    by_partition
                        .entry(partition.key())
                        .or_default()
                        .1
                        .push(*row);
                }
            }
            for (partition, (inserted, deleted)) in by_partition {
                let existing = partitions.get(&partition).cloned();
                let encoded = encode_pieces(&inserted, self.log.get().is_some())?;
                prepared.push(PreparedChange {
                    table: table.clone(),
                    def: def.clone(),
                    partition,
                    existing,
                    inserted,
                    encoded,
                    deleted,
                });
            }
        }
        Ok(prepared)
    }

    /// Changes the catalog as one logged step: `prepare` validates under the commit lock and
    /// returns the change to log; once it is logged, `apply` makes it. DDL is durable (as
    /// `wait` asks) when this returns.
    pub async fn change_catalog<T>(
        &self,
        wait: CommitWait,
        prepare: impl FnOnce() -> Result<CatalogChange>,
        apply: impl FnOnce(&CatalogChange, Ts) -> Result<T>,
    ) -> Result<T> {
        let (ts, out) = {
            let mut last = self.commit_lock.lock();
            let change = prepare()?;
            let ts = *last + 1;
            if let Some(log) = self.log.get() {
                log.append(ts, &encode_catalog(ts, &change, log.compress())?)?;
            }
            let out = match apply(&change, ts) {
                Ok(out) => out,
                Err(e) => {
                    if let Some(log) = self.log.get() {
                        log.poison(format!(
                            "a logged catalog change could not be applied: {}",
                            e.message
                        ));
                    }
                    return Err(e);
                }
            };
            *last = ts;
            (ts, out)
        };
        let published = self.publish(ts, wait).await;
        self.note_catalog_change();
        published?;
        Ok(out)
    }

    /// Replays one logged record at its LSN during recovery (no other activity runs).
    pub fn replay_commit(
        &self,
        lsn: Lsn,
        changes: &[PartitionChange],
        table_by_id: impl Fn(TableId) -> Option<Arc<Table>>,
    ) -> Result<()> {
        let mut last = self.commit_lock.lock();
        for change in changes {
            let table = table_by_id(change.table).ok_or_else(|| {
                KuraError::internal(format!(
                    "log record {lsn} changes table {} which does not exist",
                    change.table
                ))
            })?;
            let def = table.def();
            table.add_partitions(&[change.partition], 0)?;
            let partition = partition_of(&table, change.partition)?;
            let ended = partition.resolve_serials(&change.deleted)?;
            apply_change(&table, &def, change, &ended, lsn, self.residency.get())?;
        }
        self.advance_to(&mut last, lsn);
        Ok(())
    }

    /// Records that catalog change `lsn` has been replayed.
    pub fn replay_catalog(&self, lsn: Lsn) {
        let mut last = self.commit_lock.lock();
        self.advance_to(&mut last, lsn);
        self.note_catalog_change();
    }

    fn advance_to(&self, last: &mut Ts, lsn: Lsn) {
        *last = lsn;
        self.visible.fetch_max(lsn, Ordering::AcqRel);
    }

    /// Runs `f` with commits and DDL paused; it sees the last timestamp handed out, and all
    /// commits up to it are applied (though maybe not yet visible).
    pub fn with_commits_paused<T>(&self, f: impl FnOnce(Ts) -> T) -> T {
        let last = self.commit_lock.lock();
        f(*last)
    }

    /// A registered snapshot that sees every commit applied so far, taken with commits paused,
    /// plus whatever `f` reads at that moment. For checkpoints.
    pub fn consistent_snapshot<T>(self: &Arc<Self>, f: impl FnOnce(Ts) -> T) -> (Arc<Snapshot>, T) {
        let last = self.commit_lock.lock();
        let snapshot = self.snapshot_at(*last);
        let out = f(*last);
        drop(last);
        (snapshot, out)
    }

    /// Waits for a lock on `key` for `txn`, recording it for release at the end.
    pub async fn lock(
        &self,
        txn: &Transaction,
        key: LockKey,
        timeout: Option<Duration>,
        interrupt: &crate::interrupt::Interrupt,
    ) -> Result<()> {
        if self
            .locks
            .acquire(&key, &txn.handle, timeout, interrupt)
            .await?
        {
            txn.writes.lock().record_lock(key);
        }
        Ok(())
    }
}

fn partition_of(table: &Table, key: PartitionKey) -> Result<Arc<Partition>> {
    table.partition_by_key(&key).ok_or_else(|| {
        KuraError::internal(format!(
            "table \"{}\" has no data partition {key:?}",
            table.def().name
        ))
    })
}

/// Fails unless rows may go into the new data partition `key` of the table `def`.
fn check_new_partition(def: &TableDef, key: PartitionKey) -> Result<()> {
    if def.placement.dropped_intervals.contains(&key.interval) {
        return Err(dropped_interval(def, key.interval));
    }
    Ok(())
}

/// The error for a row whose interval was removed by `ALTER TABLE ... DROP PARTITION`.
pub fn dropped_interval(def: &TableDef, interval: i64) -> KuraError {
    let bounds = def
        .partitioning()
        .interval()
        .map(|spec| spec.bounds(interval));
    KuraError::new(
        sqlstate::CHECK_VIOLATION,
        format!(
            "no data partition of table \"{}\" accepts the row: its interval was dropped",
            def.name
        ),
    )
    .with_detail(match bounds {
        Some((lower, upper)) => format!("The interval [{lower}, {upper}) of the partitioning key was removed by ALTER TABLE ... DROP PARTITION."),
        None => "The interval was removed by ALTER TABLE ... DROP PARTITION.".to_string(),
    })
}

/// The error for an insert that needs a data partition beyond the table's limit.
pub fn too_many_partitions(def: &TableDef, max: usize) -> KuraError {
    KuraError::new(
        sqlstate::PROGRAM_LIMIT_EXCEEDED,
        format!(
            "table \"{}\" already has the maximum of {max} data partitions",
            def.name
        ),
    )
    .with_hint("Drop old intervals with ALTER TABLE ... DROP PARTITION FOR (value), or raise /sql/tablePartitioningMaxAssignNum.")
}

fn dropped_meanwhile(def: &TableDef) -> KuraError {
    KuraError::new(
        sqlstate::UNDEFINED_TABLE,
        format!(
            "relation \"{}\" was dropped by another transaction",
            def.name
        ),
    )
}

/// Applies one partition change at `ts`: ends the versions `ended` (the change's deleted
/// serials, resolved) and appends its rows. Shared by commit and replay.
fn apply_change(
    table: &Table,
    def: &TableDef,
    change: &PartitionChange,
    ended: &[RowId],
    ts: Ts,
    residency: Option<&Arc<Residency>>,
) -> Result<()> {
    let partition = partition_of(table, change.partition)?;
    for row in ended {
        partition.set_end(*row, ts)?;
    }
    let mut serial = change.first_serial;
    for batch in &change.inserted {
        partition.append(def, batch, ts, serial)?;
        serial += batch.num_rows() as u64;
        if let Some(residency) = residency {
            residency.note_growth(slice_bytes(batch));
        }
    }
    Ok(())
}

/// The error of a transaction rolled back for outliving `/transaction/transactionTimeoutLimit`.
pub fn timed_out() -> KuraError {
    KuraError::new(
        sqlstate::QUERY_CANCELED,
        "transaction exceeded transactionTimeoutLimit and was rolled back",
    )
}

/// Fails the commit when an inserted primary key already has a live committed version in its
/// data partition (primary keys are unique per data partition, which is global uniqueness
/// when the partitioning key is part of the primary key): the statement-time check can miss a
/// key a concurrent transaction committed in between.
fn check_unique(
    partition: &Partition,
    def: &TableDef,
    inserted: &[RecordBatch],
    deleted: &[RowId],
) -> Result<()> {
    let Some(pk) = def.primary_index() else {
        return Ok(());
    };
    let deleted: std::collections::HashSet<RowId> = deleted.iter().copied().collect();
    for batch in inserted {
        for row in 0..batch.num_rows() {
            let key = index_key(batch, &pk.columns, row)?;
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
    Ok(())
}
