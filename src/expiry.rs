//! Expiry release (期限解放): the background reaper that physically removes expired data
//! partitions.
//!
//! A partition is invisible from the instant it expires (scans and commits check the clock
//! themselves); the reaper only reclaims its memory. Once a second it releases up to
//! `/dataStore/batchScanNum` expired partitions, each in O(1) (the partition is unlinked from
//! its table and freed when the last reader lets go), through one logged catalog change per
//! table, so recovery and replicas remove the same partitions.
//!
//! Invariant: a partition is released only if it is still expired when the change is
//! validated under the commit lock.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::query::Engine;
use crate::storage::partition::Partition;
use crate::storage::{PartitionKey, TableId};
use crate::wal::CatalogChange;

/// Releases up to `limit` expired partitions now; returns how many were released.
pub async fn release_expired(db: &Engine, limit: usize) -> Result<usize> {
    let now = db.txns.clock.now_millis();
    let mut released = 0;
    let mut freed = Vec::new();
    for table in db.tables() {
        if released >= limit {
            break;
        }
        let def = table.def();
        let Some(last) = def.placement.last_expired_interval(now) else {
            continue;
        };
        let doomed: Vec<Arc<Partition>> = table
            .partitions()
            .in_intervals(i64::MIN..=last)
            .take(limit - released)
            .cloned()
            .collect();
        let keys: Vec<PartitionKey> = doomed.iter().map(|p| p.key()).collect();
        if keys.is_empty() {
            continue;
        }
        let id: TableId = def.id;
        let count = keys.len();
        db.change_catalog(|| {
            // Validated again with commits paused: the table and its partitions may have
            // changed, and a test clock may have moved back.
            let now = db.txns.clock.now_millis();
            let current = table.def();
            let still: Vec<PartitionKey> = keys
                .iter()
                .filter(|k| {
                    current.placement.expired(k.interval, now)
                        && table.partition_by_key(k).is_some()
                })
                .copied()
                .collect();
            Ok(CatalogChange::ReleasePartitions {
                table: id,
                partitions: still,
            })
        })
        .await?;
        released += count;
        tracing::info!(
            table = %def.name,
            partitions = count,
            "expired data partitions released"
        );
        freed.extend(doomed);
    }
    if released > 0 {
        free_and_return_memory(freed).await;
    }
    Ok(released)
}

/// Frees released partitions here rather than in whichever reader lets go of them last, then
/// hands the pages back to the OS. Readers that started before the release may still hold a
/// partition; they are waited for a little (a scan of one partition is short), after which the
/// last reader frees it and the allocator's background decay returns the pages. The freeing
/// itself takes seconds for millions of rows, so it runs off the reaper's thread.
async fn free_and_return_memory(partitions: Vec<Arc<Partition>>) {
    const WAIT: Duration = Duration::from_millis(10);
    for _ in 0..100 {
        if partitions.iter().all(|p| Arc::strong_count(p) == 1) {
            break;
        }
        tokio::time::sleep(WAIT).await;
    }
    crate::memory::free_in_background(partitions);
}

/// Runs [`release_expired`] every `interval` until the runtime shuts down.
pub async fn run(db: Arc<Engine>, interval: Duration, limit: usize) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if db.txns.write_refusal().is_some() {
            // A standby applies the releases its primary logs; a fenced primary waits.
            continue;
        }
        if let Err(e) = release_expired(&db, limit).await {
            tracing::warn!("expiry release failed: {e}");
        }
    }
}
