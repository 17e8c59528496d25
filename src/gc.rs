//! Garbage collection of dead row versions: a background task that periodically rewrites
//! chunks whose deleted versions no snapshot can see any more, so memory stays flat under an
//! update-heavy load with a constant row count.
//!
//! Invariant: only versions that ended at or before the transaction manager's GC horizon are
//! removed, and chunks pinned by open transactions are left alone.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::query::Engine;
use crate::storage::partition::CompactionStats;

/// One pass over every table of every database.
pub fn collect_garbage(engine: &Engine) -> Result<CompactionStats> {
    let horizon = engine.txns.gc_horizon();
    let mut total = CompactionStats::default();
    for table in engine.tables() {
        let def = table.def();
        for partition in table.partitions().iter() {
            let stats = partition.compact(&def, horizon)?;
            total.chunks_rewritten += stats.chunks_rewritten;
            total.versions_removed += stats.versions_removed;
        }
    }
    // Rewritten chunks are back in memory, which may put the store over its limit.
    if total.chunks_rewritten > 0
        && let Some(residency) = engine.txns.residency()
    {
        residency.enforce()?;
    }
    Ok(total)
}

/// Runs [`collect_garbage`] every `interval` until the runtime shuts down.
pub async fn run(engine: Arc<Engine>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let engine = engine.clone();
        match tokio::task::spawn_blocking(move || collect_garbage(&engine)).await {
            Ok(Ok(stats)) if stats.versions_removed > 0 => {
                tracing::debug!(
                    chunks = stats.chunks_rewritten,
                    versions = stats.versions_removed,
                    "garbage collection"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("garbage collection failed: {e}"),
            Err(e) => tracing::warn!("garbage collection task failed: {e}"),
        }
    }
}
