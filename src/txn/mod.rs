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

mod commit;
pub mod locks;
pub mod writes;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

use commit::apply_change;
pub use commit::{dropped_interval, too_many_partitions};
pub use locks::{LockKey, LockManager, TransactionLock, TxnHandle, TxnId};
pub use writes::{OwnWrites, RowsPiece, WriteSet};

use crate::clock::Clock;
use crate::error::{KuraError, Result, sqlstate};
use crate::storage::partition::Partition;
use crate::storage::residency::Residency;
use crate::storage::{PartitionKey, Table, TableId, Ts};
use crate::wal::record::encode_catalog;
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
    /// Why this server refuses writes (a standby, a fenced primary), if it does.
    write_refusal: parking_lot::RwLock<Option<Arc<str>>>,
    standby_acks: OnceLock<Arc<dyn StandbyAcks>>,
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

/// What a commit waits for before it is acknowledged: the local log, then the standbys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitWait {
    /// Wait until the log record is on stable storage (fsynced), surviving power loss;
    /// otherwise until it is in the operating system, surviving a crash of the process.
    pub flush: bool,
    pub standbys: StandbyWait,
}

impl CommitWait {
    /// DDL and the configured defaults: fsynced here, standbys as configured.
    pub const FLUSH: CommitWait = CommitWait {
        flush: true,
        standbys: StandbyWait::Configured,
    };
    pub const WRITTEN: CommitWait = CommitWait {
        flush: false,
        standbys: StandbyWait::Configured,
    };
}

/// How far standbys must have got with a commit before it is acknowledged (the session's
/// `synchronous_commit` level; see docs/REPLICATION.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandbyWait {
    /// As `/transaction/replicationMode` says.
    Configured,
    /// Not at all (`local`).
    None,
    /// Received by the standbys (`remote_write`, SEMISYNC).
    Received,
    /// Durable on the standbys (SYNC).
    Flushed,
    /// Applied, so readable there (`remote_apply`).
    Applied,
}

/// Waits for standbys to confirm commits; attached by the replication layer on servers that
/// replicate.
#[async_trait::async_trait]
pub trait StandbyAcks: Send + Sync + std::fmt::Debug {
    /// Returns once the standbys confirm `lsn` as `wait` asks, or fails (40003) when they do
    /// not in time.
    async fn wait(&self, lsn: Lsn, wait: StandbyWait) -> Result<()>;
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
            write_refusal: parking_lot::RwLock::new(None),
            standby_acks: OnceLock::new(),
        })
    }

    /// Refuses (with the reason given) or accepts every later commit and DDL. Replay of a
    /// primary's log on a standby is not affected.
    pub fn refuse_writes(&self, why: Option<String>) {
        let _paused = self.commit_lock.lock();
        *self.write_refusal.write() = why.map(Arc::from);
    }

    /// Why writes are refused, if they are.
    pub fn write_refusal(&self) -> Option<Arc<str>> {
        self.write_refusal.read().clone()
    }

    /// Fails with SQLSTATE 25006 when this server refuses writes.
    pub fn check_writable(&self) -> Result<()> {
        match self.write_refusal() {
            None => Ok(()),
            Some(why) => Err(read_only_error(&why)),
        }
    }

    /// From now on commits wait for standbys as their `CommitWait` asks.
    pub fn attach_standby_acks(&self, acks: Arc<dyn StandbyAcks>) -> Result<()> {
        self.standby_acks
            .set(acks)
            .map_err(|_| KuraError::internal("standby acknowledgements are already attached"))
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
            writes: Arc::new(Mutex::new(WriteSet::new(self.residency.get().cloned()))),
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
        let waits_for_standbys =
            wait.standbys != StandbyWait::None && self.standby_acks.get().is_some();
        if (!wait.flush && !waits_for_standbys) || self.log.get().is_none() {
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

    /// Waits for the log and the standbys as `wait` asks, then makes commit `ts` (and all
    /// before it) visible. A commit that the standbys did not confirm in time is published
    /// all the same (it is in the log here) before its error is returned.
    async fn publish(&self, ts: Ts, wait: CommitWait) -> Result<()> {
        if wait.flush
            && let Some(log) = self.log.get()
        {
            log.wait_durable(ts).await?;
        }
        let confirmed = match self.standby_acks.get() {
            Some(acks) => acks.wait(ts, wait.standbys).await,
            None => Ok(()),
        };
        self.make_visible(ts);
        confirmed
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

    /// Changes the catalog as one logged step: `prepare` validates under the commit lock and
    /// returns the change to log; once it is logged, `apply` makes it. DDL is durable (as
    /// `wait` asks) when this returns.
    pub async fn change_catalog<T>(
        &self,
        wait: CommitWait,
        prepare: impl FnOnce() -> Result<CatalogChange>,
        apply: impl FnOnce(&CatalogChange, Ts) -> Result<T>,
    ) -> Result<T> {
        self.change_catalog_gated(true, wait, prepare, apply).await
    }

    /// [`TxnManager::change_catalog`] on a server that refuses writes: the record that starts
    /// a new epoch at a promotion, logged before the server takes writes.
    pub async fn change_catalog_unguarded<T>(
        &self,
        wait: CommitWait,
        prepare: impl FnOnce() -> Result<CatalogChange>,
        apply: impl FnOnce(&CatalogChange, Ts) -> Result<T>,
    ) -> Result<T> {
        self.change_catalog_gated(false, wait, prepare, apply).await
    }

    async fn change_catalog_gated<T>(
        &self,
        gated: bool,
        wait: CommitWait,
        prepare: impl FnOnce() -> Result<CatalogChange>,
        apply: impl FnOnce(&CatalogChange, Ts) -> Result<T>,
    ) -> Result<T> {
        let (ts, out) = {
            let mut last = self.commit_lock.lock();
            if gated {
                self.check_writable()?;
            }
            let change = prepare()?;
            let ts = *last + 1;
            if let Some(log) = self.log.get() {
                let time = Some(self.clock.now().timestamp_micros());
                log.append(ts, &encode_catalog(ts, &change, log.compress(), time)?)?;
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

    /// Replays logged partition changes of the commit at `lsn` during recovery (no other
    /// activity runs); [`TxnManager::replayed`] follows once the commit's last changes are in.
    pub fn replay_changes(
        &self,
        lsn: Lsn,
        changes: &[PartitionChange],
        table_by_id: impl Fn(TableId) -> Option<Arc<Table>>,
    ) -> Result<()> {
        let _serialised = self.commit_lock.lock();
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
        Ok(())
    }

    /// Records that the commit logged at `lsn` has been replayed.
    pub fn replayed(&self, lsn: Lsn) {
        let mut last = self.commit_lock.lock();
        self.advance_to(&mut last, lsn);
    }

    /// Replays the catalog change logged at `lsn` with `apply`, with commits and DDL paused.
    pub fn replay_catalog(&self, lsn: Lsn, apply: impl FnOnce() -> Result<()>) -> Result<()> {
        {
            let mut last = self.commit_lock.lock();
            apply()?;
            self.advance_to(&mut last, lsn);
        }
        self.note_catalog_change();
        Ok(())
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

/// The error of a write on a server that refuses writes.
pub fn read_only_error(why: &str) -> KuraError {
    KuraError::new(
        sqlstate::READ_ONLY_SQL_TRANSACTION,
        format!("cannot execute writes: {why}"),
    )
}

/// The error of a transaction rolled back for outliving `/transaction/transactionTimeoutLimit`.
pub fn timed_out() -> KuraError {
    KuraError::new(
        sqlstate::QUERY_CANCELED,
        "transaction exceeded transactionTimeoutLimit and was rolled back",
    )
}
