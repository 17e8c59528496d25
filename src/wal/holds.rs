//! Holds on the transaction log: a backup copying the log, or the continuous archiver, keeps
//! the segments holding the records it has not copied yet from removal by checkpoints.
//!
//! Invariant: while a [`LogHold`] exists, [`LogHolds::oldest`] is at most its LSN, so no
//! segment holding a record at or after that LSN is removed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::record::Lsn;

#[derive(Debug, Default, Clone)]
pub struct LogHolds {
    inner: Arc<HoldTable>,
}

#[derive(Debug, Default)]
struct HoldTable {
    next_id: AtomicU64,
    /// The first LSN each hold still needs.
    needed: Mutex<BTreeMap<u64, Lsn>>,
}

impl LogHolds {
    /// Keeps the records from `from` on.
    pub fn hold(&self, from: Lsn) -> LogHold {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.needed.lock().insert(id, from);
        LogHold {
            table: self.inner.clone(),
            id,
        }
    }

    /// The first LSN some hold still needs.
    pub fn oldest(&self) -> Option<Lsn> {
        self.inner.needed.lock().values().min().copied()
    }
}

/// One holder's claim; dropping it releases the log.
#[derive(Debug)]
pub struct LogHold {
    table: Arc<HoldTable>,
    id: u64,
}

impl LogHold {
    /// The holder has copied everything before `from`.
    pub fn advance(&self, from: Lsn) {
        if let Some(needed) = self.table.needed.lock().get_mut(&self.id) {
            *needed = (*needed).max(from);
        }
    }
}

impl Drop for LogHold {
    fn drop(&mut self) {
        self.table.needed.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_hold_wins_until_dropped() {
        let holds = LogHolds::default();
        assert_eq!(holds.oldest(), None);
        let a = holds.hold(10);
        let b = holds.hold(5);
        assert_eq!(holds.oldest(), Some(5));
        b.advance(20);
        assert_eq!(holds.oldest(), Some(10));
        b.advance(3);
        drop(a);
        assert_eq!(holds.oldest(), Some(20));
        drop(b);
        assert_eq!(holds.oldest(), None);
    }
}
