//! Row locks: one owner per key, waiters queue on the owner's completion, deadlocks are
//! detected when a wait would close a cycle, and waits end after `lock_timeout`.
//!
//! Invariants: a transaction holds each lock until it ends (commit or rollback); the lock table
//! and the waits-for graph change together under one mutex.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::error::{KuraError, Result, sqlstate};
use crate::interrupt::Interrupt;
use crate::storage::index::IndexKey;
use crate::storage::{RowId, TableId};

pub type TxnId = u64;

/// What a lock protects: a primary-key value of a table, or one row version of a table
/// without a primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LockKey {
    Key(TableId, IndexKey),
    Row(TableId, RowId),
}

/// A transaction's identity for locking, with the signal its waiters watch and the deadline
/// (`/transaction/transactionTimeoutLimit`) after which waiters may abort it.
#[derive(Debug)]
pub struct TxnHandle {
    pub id: TxnId,
    ended: watch::Sender<bool>,
    expires_at: Instant,
    aborted: AtomicBool,
    /// The process id of the connection running the transaction (0: none), for `pg_locks`.
    owner: AtomicI32,
}

impl TxnHandle {
    pub fn new(id: TxnId, timeout: Duration) -> Arc<TxnHandle> {
        let now = Instant::now();
        Arc::new(TxnHandle {
            id,
            ended: watch::channel(false).0,
            expires_at: now
                .checked_add(timeout)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
            aborted: AtomicBool::new(false),
            owner: AtomicI32::new(0),
        })
    }

    /// Names the connection that runs the transaction.
    pub fn set_owner(&self, pid: i32) {
        self.owner.store(pid, Ordering::Relaxed);
    }

    pub fn owner(&self) -> i32 {
        self.owner.load(Ordering::Relaxed)
    }

    /// True once the transaction outlived its deadline and a waiter aborted it: it can no
    /// longer commit, and its locks no longer hold.
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.expires_at
    }
}

#[derive(Debug, Default)]
struct LockTable {
    owners: HashMap<LockKey, Arc<TxnHandle>>,
    /// Each waiting transaction, by id, with the transaction it waits for.
    waits_for: HashMap<TxnId, Wait>,
}

#[derive(Debug)]
struct Wait {
    holder: TxnId,
    waiter: Arc<TxnHandle>,
}

/// One row of `pg_locks`: a transaction holding its lock (`granted`), or one waiting for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionLock {
    /// The transaction whose lock this is.
    pub transaction: TxnId,
    /// The connection holding or waiting for it (0: none).
    pub pid: i32,
    pub granted: bool,
}

#[derive(Debug, Default)]
pub struct LockManager {
    table: Mutex<LockTable>,
}

impl LockManager {
    /// Takes `key` for `me`, waiting while another transaction holds it.
    /// `timeout` of `None` waits until the holder ends.
    pub async fn acquire(
        &self,
        key: &LockKey,
        me: &Arc<TxnHandle>,
        timeout: Option<Duration>,
        interrupt: &Interrupt,
    ) -> Result<bool> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let holder = {
                let mut table = self.table.lock();
                match table.owners.get(key) {
                    None => {
                        table.owners.insert(key.clone(), me.clone());
                        return Ok(true);
                    }
                    Some(h) if h.is_aborted() => {
                        table.owners.insert(key.clone(), me.clone());
                        return Ok(true);
                    }
                    Some(h) if h.id == me.id => return Ok(false),
                    Some(h) => {
                        let holder = h.clone();
                        if Self::would_deadlock(&table.waits_for, holder.id, me.id) {
                            return Err(KuraError::new(
                                sqlstate::DEADLOCK_DETECTED,
                                "deadlock detected",
                            )
                            .with_detail(format!(
                                "Transaction {} waits for transaction {}, which waits for it.",
                                me.id, holder.id
                            )));
                        }
                        table.waits_for.insert(
                            me.id,
                            Wait {
                                holder: holder.id,
                                waiter: me.clone(),
                            },
                        );
                        crate::stats::counters::add(
                            &crate::stats::counters::COUNTERS.lock_conflicts,
                            1,
                        );
                        holder
                    }
                }
            };
            let mut ended = holder.ended.subscribe();
            let wait = ended.wait_for(|done| *done);
            let holder_deadline = tokio::time::Instant::from_std(holder.expires_at);
            let limit = deadline.map_or(holder_deadline, |d| d.min(holder_deadline));
            let outcome = tokio::select! {
                outcome = tokio::time::timeout_at(limit, wait) => outcome,
                reason = interrupt.interrupted() => {
                    self.table.lock().waits_for.remove(&me.id);
                    return Err(reason.error());
                }
            };
            self.table.lock().waits_for.remove(&me.id);
            if outcome.is_err() {
                if holder.is_expired() {
                    // The holder ran past transactionTimeoutLimit: it is aborted, and its locks
                    // are free for the taking (its commit will fail).
                    holder.aborted.store(true, Ordering::Release);
                    continue;
                }
                return Err(KuraError::new(
                    sqlstate::LOCK_NOT_AVAILABLE,
                    "canceling statement due to lock timeout",
                ));
            }
        }
    }

    fn would_deadlock(waits_for: &HashMap<TxnId, Wait>, mut from: TxnId, me: TxnId) -> bool {
        for _ in 0..=waits_for.len() {
            if from == me {
                return true;
            }
            match waits_for.get(&from) {
                Some(next) => from = next.holder,
                None => return false,
            }
        }
        false
    }

    /// Releases every lock in `keys` held by `me` and wakes its waiters.
    pub fn release_all(&self, me: &Arc<TxnHandle>, keys: &[LockKey]) {
        {
            let mut table = self.table.lock();
            for key in keys {
                if table.owners.get(key).is_some_and(|h| h.id == me.id) {
                    table.owners.remove(key);
                }
            }
            table.waits_for.remove(&me.id);
        }
        me.ended.send_replace(true);
    }

    /// PostgreSQL's view of row locks: every transaction holding any holds its own
    /// transaction lock; a transaction waiting for a row waits for its holder's.
    pub fn transaction_locks(&self) -> Vec<TransactionLock> {
        let table = self.table.lock();
        let mut holders: Vec<TransactionLock> = Vec::new();
        for handle in table.owners.values() {
            if !handle.is_aborted() && !holders.iter().any(|h| h.transaction == handle.id) {
                holders.push(TransactionLock {
                    transaction: handle.id,
                    pid: handle.owner(),
                    granted: true,
                });
            }
        }
        holders.sort_by_key(|h| h.transaction);
        let mut waiters: Vec<TransactionLock> = table
            .waits_for
            .values()
            .map(|wait| TransactionLock {
                transaction: wait.holder,
                pid: wait.waiter.owner(),
                granted: false,
            })
            .collect();
        waiters.sort_by_key(|w| (w.transaction, w.pid));
        holders.extend(waiters);
        holders
    }

    pub fn held_locks(&self) -> usize {
        self.table.lock().owners.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn key(v: i64) -> LockKey {
        LockKey::Key(1, IndexKey(v.to_be_bytes().into()))
    }

    #[tokio::test]
    async fn waiter_gets_lock_after_release() {
        let locks = Arc::new(LockManager::default());
        let a = TxnHandle::new(1, Duration::from_secs(60));
        let b = TxnHandle::new(2, Duration::from_secs(60));
        assert!(
            locks
                .acquire(&key(1), &a, None, &Interrupt::default())
                .await
                .unwrap()
        );
        let locks2 = locks.clone();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move {
            locks2
                .acquire(&key(1), &b2, None, &Interrupt::default())
                .await
        });
        tokio::task::yield_now().await;
        locks.release_all(&a, &[key(1)]);
        assert!(waiter.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn wait_times_out_with_55p03() {
        let locks = LockManager::default();
        let a = TxnHandle::new(1, Duration::from_secs(60));
        let b = TxnHandle::new(2, Duration::from_secs(60));
        locks
            .acquire(&key(1), &a, None, &Interrupt::default())
            .await
            .unwrap();
        let err = locks
            .acquire(
                &key(1),
                &b,
                Some(Duration::from_millis(10)),
                &Interrupt::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, sqlstate::LOCK_NOT_AVAILABLE);
    }

    #[tokio::test]
    async fn a_cancel_ends_a_lock_wait_with_57014() {
        let locks = Arc::new(LockManager::default());
        let a = TxnHandle::new(1, Duration::from_secs(60));
        let b = TxnHandle::new(2, Duration::from_secs(60));
        locks
            .acquire(&key(1), &a, None, &Interrupt::default())
            .await
            .unwrap();
        let interrupt = Arc::new(Interrupt::default());
        interrupt.begin_statement(None);
        let waiter = tokio::spawn({
            let (locks, interrupt) = (locks.clone(), interrupt.clone());
            async move { locks.acquire(&key(1), &b, None, &interrupt).await }
        });
        while !locks.table.lock().waits_for.contains_key(&2) {
            tokio::task::yield_now().await;
        }
        interrupt.cancel();
        let err = waiter.await.unwrap().unwrap_err();
        assert_eq!(err.code, sqlstate::QUERY_CANCELED);
        assert!(!locks.table.lock().waits_for.contains_key(&2));
    }

    #[tokio::test]
    async fn an_expired_holder_is_aborted_and_loses_its_locks() {
        let locks = LockManager::default();
        let old = TxnHandle::new(1, Duration::from_millis(20));
        let b = TxnHandle::new(2, Duration::from_secs(60));
        locks
            .acquire(&key(1), &old, None, &Interrupt::default())
            .await
            .unwrap();
        assert!(
            locks
                .acquire(&key(1), &b, None, &Interrupt::default())
                .await
                .unwrap()
        );
        assert!(old.is_aborted());
    }

    #[tokio::test]
    async fn cycle_is_a_deadlock() {
        let locks = Arc::new(LockManager::default());
        let a = TxnHandle::new(1, Duration::from_secs(60));
        let b = TxnHandle::new(2, Duration::from_secs(60));
        locks
            .acquire(&key(1), &a, None, &Interrupt::default())
            .await
            .unwrap();
        locks
            .acquire(&key(2), &b, None, &Interrupt::default())
            .await
            .unwrap();
        let (l, a2) = (locks.clone(), a.clone());
        let first =
            tokio::spawn(async move { l.acquire(&key(2), &a2, None, &Interrupt::default()).await });
        for _ in 0..100 {
            if locks.table.lock().waits_for.contains_key(&1) {
                break;
            }
            tokio::task::yield_now().await;
        }
        let err = locks
            .acquire(&key(1), &b, None, &Interrupt::default())
            .await
            .unwrap_err();
        assert_eq!(err.code, sqlstate::DEADLOCK_DETECTED);
        locks.release_all(&b, &[key(2)]);
        assert!(first.await.unwrap().unwrap());
    }
}
