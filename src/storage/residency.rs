//! The store's memory limit (`/dataStore/storeMemoryLimit`): when the row data held in memory
//! grows past it, the sealed chunks read longest ago are swapped out to files
//! (`storage::swap`) until it is back under the limit with some room to spare.
//!
//! What counts is the column data of chunks; version stamps, serials and index entries stay
//! in memory and are not swapped. The open chunk of each partition (where appends go) stays
//! in memory too, so a table with many partitions may hold somewhat more than the limit.
//!
//! Invariants: swapping out never changes what any snapshot sees (the swapped chunk shares
//! its stamps and serials with the one it replaces, and replaces it only if nothing rewrote
//! it meanwhile); one pass runs at a time; a failed swap-out leaves the chunk in memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use super::Table;
use super::chunk::Chunk;
use super::partition::Partition;
use super::swap::{SwapDir, SwapStats};
use crate::error::Result;

/// Where the tables whose memory is limited come from (the engine).
pub trait TableSource: Send + Sync {
    fn all_tables(&self) -> Vec<Arc<Table>>;
}

/// A pass stops swapping once memory is this many eighths of the limit.
const TARGET_EIGHTHS: usize = 7;

/// What the last pass saw and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResidencyReport {
    /// Row data in memory after the pass.
    pub resident_bytes: usize,
    /// Row data in swap files after the pass.
    pub swapped_bytes: u64,
    /// Chunks swapped out by the pass.
    pub swapped_out: usize,
}

#[derive(Debug)]
pub struct Residency {
    limit: AtomicUsize,
    swap: SwapDir,
    source: OnceLock<Weak<dyn TableSource>>,
    /// Bytes appended since the last pass.
    growth: AtomicUsize,
    last: Mutex<ResidencyReport>,
}

impl std::fmt::Debug for dyn TableSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TableSource")
    }
}

struct Candidate {
    table: Arc<Table>,
    partition: Arc<Partition>,
    chunk: Arc<Chunk>,
}

impl Residency {
    pub fn new(limit: usize, swap: SwapDir) -> Residency {
        Residency {
            limit: AtomicUsize::new(limit),
            swap,
            source: OnceLock::new(),
            growth: AtomicUsize::new(0),
            last: Mutex::new(ResidencyReport::default()),
        }
    }

    /// Names the tables to watch; without a source nothing is ever swapped.
    pub fn attach(&self, source: Weak<dyn TableSource>) {
        let _ = self.source.set(source);
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Changes the limit (online); the caller runs [`Residency::enforce`] to apply it now.
    pub fn set_limit(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::Relaxed);
    }

    pub fn swap_stats(&self) -> SwapStats {
        self.swap.stats()
    }

    /// The swap files' directory (also used for the rows of large transactions).
    pub fn swap(&self) -> &SwapDir {
        &self.swap
    }

    /// Row data that may be added before a pass runs; also how much of its inserted rows a
    /// transaction keeps in memory before spilling them.
    pub fn growth_step(&self) -> usize {
        (self.limit() / 16).max(1 << 20)
    }

    pub fn last_report(&self) -> ResidencyReport {
        *self.last.lock()
    }

    /// Records `bytes` of new row data; every sixteenth of the limit, runs a pass at once, so
    /// a large commit cannot outgrow the limit by more than that.
    pub fn note_growth(&self, bytes: usize) {
        let grown = self.growth.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if grown < self.growth_step() {
            return;
        }
        if let Err(e) = self.enforce() {
            tracing::warn!("could not swap rows out to keep within storeMemoryLimit: {e}");
        }
    }

    /// Measures the row data in memory and swaps out the coldest sealed chunks while it is
    /// over the limit.
    pub fn enforce(&self) -> Result<ResidencyReport> {
        let mut last = self.last.lock();
        self.growth.store(0, Ordering::Release);
        let Some(source) = self.source.get().and_then(Weak::upgrade) else {
            return Ok(*last);
        };
        let mut report = ResidencyReport::default();
        let mut candidates = Vec::new();
        for table in source.all_tables() {
            for partition in table.partitions().iter() {
                let snapshot = partition.snapshot();
                for chunk in snapshot.chunks() {
                    report.resident_bytes += chunk.resident_bytes();
                    report.swapped_bytes += chunk.swapped_bytes();
                }
                candidates.extend(
                    partition
                        .resident_sealed()
                        .into_iter()
                        .map(|chunk| Candidate {
                            table: table.clone(),
                            partition: partition.clone(),
                            chunk,
                        }),
                );
            }
        }
        let limit = self.limit();
        if report.resident_bytes > limit {
            let target = limit / 8 * TARGET_EIGHTHS;
            candidates.sort_by_key(|c| c.chunk.last_read());
            for candidate in candidates {
                if report.resident_bytes <= target {
                    break;
                }
                if candidate.table.is_dropped() {
                    continue;
                }
                let bytes = candidate.chunk.resident_bytes();
                let rows = self.swap.write(&candidate.chunk.segments()?)?;
                let file_bytes = rows.file_bytes();
                let swapped = candidate.chunk.swapped_out(rows);
                if candidate
                    .partition
                    .replace_with_swapped(&candidate.chunk, swapped)
                {
                    report.resident_bytes = report.resident_bytes.saturating_sub(bytes);
                    report.swapped_bytes += file_bytes;
                    report.swapped_out += 1;
                }
            }
        }
        *last = report;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::PartitionKey;
    use crate::storage::schema::long_key_table;
    use crate::storage::table::TableLimits;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::record_batch::RecordBatch;

    struct OneTable(Arc<Table>);

    impl TableSource for OneTable {
        fn all_tables(&self) -> Vec<Arc<Table>> {
            vec![self.0.clone()]
        }
    }

    #[test]
    fn a_pass_swaps_out_the_chunks_read_longest_ago_and_rows_stay_readable() {
        let def = long_key_table();
        let limits = TableLimits {
            chunk_rows: 1024,
            max_partitions: 1,
        };
        let table = Arc::new(Table::new(def.clone(), Vec::new(), limits));
        let rows = RecordBatch::try_new(
            def.schema().clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..10_000))],
        )
        .unwrap();
        let partition = table.partition_by_key(&PartitionKey::SINGLE).unwrap();
        partition.append(&def, &rows, 1, 0).unwrap();
        let sealed = partition.snapshot().sealed.clone();
        // Read the first chunk last, so it is the warmest.
        sealed[0].segments().unwrap();

        let dir = tempfile::tempdir().unwrap();
        let limit = 20_000;
        let residency = Residency::new(limit, SwapDir::open(dir.path(), false).unwrap());
        let source: Arc<dyn TableSource> = Arc::new(OneTable(table.clone()));
        residency.attach(Arc::downgrade(&source));
        let report = residency.enforce().unwrap();

        assert!(report.resident_bytes <= limit / 8 * TARGET_EIGHTHS);
        assert!(report.swapped_out > 0);
        let snapshot = partition.snapshot();
        assert!(!snapshot.sealed[0].is_swapped(), "the warmest chunk stays");
        assert!(snapshot.sealed[1].is_swapped(), "a cold chunk goes");
        let total: i64 = snapshot
            .chunks()
            .flat_map(|c| c.segments().unwrap().into_owned())
            .map(|b| {
                let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                ids.values().iter().sum::<i64>()
            })
            .sum();
        assert_eq!(total, (0..10_000).sum::<i64>());
    }
}
