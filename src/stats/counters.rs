//! Process-wide activity counters since the server started (GridDB's gs_stat `s` figures):
//! rows read and written, read and write operations, lock conflicts. One server runs per
//! process, so plain statics serve; they are only ever added to, with relaxed ordering
//! (each counter is read on its own, never as a consistent set).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct Counters {
    /// Rows handed out by table scans.
    pub rows_read: AtomicU64,
    /// Row versions written by commits (inserted plus deleted).
    pub rows_written: AtomicU64,
    /// Queries run (SELECT and EXPLAIN of one; not the reads inside other statements).
    pub read_operations: AtomicU64,
    /// INSERT, UPDATE and DELETE statements run.
    pub write_operations: AtomicU64,
    /// Row-lock requests that found the row locked and had to wait.
    pub lock_conflicts: AtomicU64,
}

pub static COUNTERS: Counters = Counters {
    rows_read: AtomicU64::new(0),
    rows_written: AtomicU64::new(0),
    read_operations: AtomicU64::new(0),
    write_operations: AtomicU64::new(0),
    lock_conflicts: AtomicU64::new(0),
};

/// Adds `n` to `counter`.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
