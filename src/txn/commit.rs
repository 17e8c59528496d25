//! The write half of a commit: the transaction's rows grouped by data partition, checked,
//! logged and applied under the commit lock.
//!
//! Rows are read piece by piece (a piece is one insert's rows, in memory or spilled to a swap
//! file by the write set), so a commit of any size holds about one log frame of rows in memory
//! at a time on top of what it adds to the store: pieces are read once to check primary keys,
//! once to encode each log frame, and once to append them to their partitions.
//!
//! Invariants: nothing is applied before every frame of the commit is in the log; the
//! serials a logged change names are exactly those the apply hands out (both follow the same
//! order of pieces from the partition's next serial); the commit timestamp is the LSN of the
//! commit's last frame.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use super::writes::{RowsPiece, WriteSet};
use super::{Transaction, TxnManager, partition_of, timed_out};
use crate::error::{KuraError, Result, sqlstate};
use crate::storage::chunk::{Serial, slice_bytes};
use crate::storage::partition::Partition;
use crate::storage::residency::Residency;
use crate::storage::schema::duplicate_row;
use crate::storage::{PartitionKey, RowId, TS_LIVE, Table, TableDef, TableId, Ts};
use crate::wal::PartitionChange;
use crate::wal::record::{COMMIT_FRAME_BUDGET, CommitFrame, encode_batches, encode_commit};

/// A commit's changes to one data partition, gathered before the commit lock is taken.
struct PreparedChange {
    table: Arc<Table>,
    def: Arc<TableDef>,
    partition: PartitionKey,
    /// The partition the deleted rows were read from (it may be removed before the commit).
    existing: Option<Arc<Partition>>,
    inserted: Vec<RowsPiece>,
    deleted: Vec<RowId>,
}

/// One change as logged and applied: consecutive pieces of a prepared change, about
/// [`COMMIT_FRAME_BUDGET`] bytes of rows. The first of a prepared change also ends its deleted
/// versions.
struct LoggedChange {
    owner: usize,
    pieces: Range<usize>,
    first_serial: Serial,
    deleted: Vec<Serial>,
    first: bool,
    bytes: usize,
}

/// Consecutive items grouped into runs of at most [`COMMIT_FRAME_BUDGET`] bytes (an item
/// larger than that alone); one empty run when there are no items.
fn budget_runs(sizes: impl IntoIterator<Item = usize>) -> Vec<Range<usize>> {
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

impl TxnManager {
    /// Validates, logs and applies the transaction's writes under the commit lock; returns
    /// the commit timestamp, or `None` when there was nothing to write.
    pub(super) fn apply(&self, txn: &Transaction) -> Result<Option<Ts>> {
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
        self.check_writable()?;
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
        let logged = logged_changes(&prepared)?;
        let frames = budget_runs(logged.iter().map(|l| l.bytes));
        let ts = *last + frames.len() as u64;
        if let Some(log) = self.log.get() {
            let first = *last + 1;
            let compress = log.compress();
            let committed_at = self.clock.now().timestamp_micros();
            let encoded = frames.iter().enumerate().map(|(i, run)| {
                let changes = logged[run.clone()]
                    .iter()
                    .map(|l| materialize(&prepared, l))
                    .collect::<Result<Vec<_>>>()?;
                let ipc = changes
                    .iter()
                    .map(|c| encode_batches(&c.inserted))
                    .collect::<Result<Vec<_>>>()?;
                let ipc: Vec<&[u8]> = ipc.iter().map(Vec::as_slice).collect();
                let role = if i + 1 == frames.len() {
                    CommitFrame::Last(Some(committed_at))
                } else {
                    CommitFrame::Part
                };
                encode_commit(first + i as u64, &changes, &ipc, compress, role)
            });
            log.append_frames(first, encoded)?;
        }
        for change in &logged {
            let owner = &prepared[change.owner];
            let ended: &[RowId] = if change.first { &owner.deleted } else { &[] };
            let partition_change = materialize(&prepared, change)?;
            apply_change(
                &owner.table,
                &owner.def,
                &partition_change,
                ended,
                ts,
                self.residency.get(),
            )?;
        }
        *last = ts;
        drop(last);
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let written: usize = prepared
            .iter()
            .map(|c| c.deleted.len() + c.inserted.iter().map(|p| p.num_rows()).sum::<usize>())
            .sum();
        crate::stats::counters::add(
            &crate::stats::counters::COUNTERS.rows_written,
            written as u64,
        );
        Ok(Some(ts))
    }

    /// Groups the write set by data partition. Spilled rows stay spilled: a spilled piece
    /// that spans several partitions is split into spilled pieces.
    fn prepare(&self, writes: &WriteSet) -> Result<Vec<PreparedChange>> {
        let mut prepared = Vec::new();
        for table_writes in writes.tables() {
            let table = &table_writes.table;
            let def = table.def();
            if table.is_dropped() {
                return Err(dropped_meanwhile(&def));
            }
            let mut by_partition: BTreeMap<PartitionKey, (Vec<RowsPiece>, Vec<RowId>)> =
                BTreeMap::new();
            for piece in table_writes.surviving_inserts()? {
                if def.partitioning().is_single() {
                    by_partition
                        .entry(PartitionKey::SINGLE)
                        .or_default()
                        .0
                        .push(piece);
                    continue;
                }
                let routed = table.route(piece.load(&def)?)?;
                if let ([(key, _)], RowsPiece::Swapped { .. }) = (routed.as_slice(), &piece) {
                    by_partition.entry(*key).or_default().0.push(piece);
                    continue;
                }
                for (key, rows) in routed {
                    let piece = match &piece {
                        RowsPiece::Swapped { .. } => self.spill(rows)?,
                        RowsPiece::Memory(_) => RowsPiece::Memory(rows),
                    };
                    by_partition.entry(key).or_default().0.push(piece);
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
                prepared.push(PreparedChange {
                    table: table.clone(),
                    def: def.clone(),
                    partition,
                    existing: partitions.get(&partition).cloned(),
                    inserted,
                    deleted,
                });
            }
        }
        Ok(prepared)
    }

    /// Rows written to a swap file (part of a spilled piece that spans partitions).
    fn spill(&self, rows: datafusion::arrow::record_batch::RecordBatch) -> Result<RowsPiece> {
        let residency: &Residency = self
            .residency
            .get()
            .ok_or_else(|| KuraError::internal("spilled rows without a swap directory"))?;
        Ok(RowsPiece::Swapped {
            num_rows: rows.num_rows(),
            bytes: slice_bytes(&rows),
            rows: residency.swap().write(std::slice::from_ref(&rows))?,
        })
    }
}

/// The logged changes of `prepared`, in order: each prepared change's pieces in runs of about
/// [`COMMIT_FRAME_BUDGET`] bytes, with the serials that follow the partition's next one.
fn logged_changes(prepared: &[PreparedChange]) -> Result<Vec<LoggedChange>> {
    let mut logged = Vec::with_capacity(prepared.len());
    for (owner, change) in prepared.iter().enumerate() {
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
        let runs = budget_runs(change.inserted.iter().map(RowsPiece::bytes));
        for (i, run) in runs.into_iter().enumerate() {
            let pieces = &change.inserted[run.clone()];
            logged.push(LoggedChange {
                owner,
                pieces: run,
                first_serial: serial,
                deleted: std::mem::take(&mut deleted),
                first: i == 0,
                bytes: pieces.iter().map(RowsPiece::bytes).sum(),
            });
            serial += pieces.iter().map(|p| p.num_rows() as u64).sum::<u64>();
        }
    }
    Ok(logged)
}

/// The partition change `logged` stands for, with its rows read into memory.
fn materialize(prepared: &[PreparedChange], logged: &LoggedChange) -> Result<PartitionChange> {
    let owner = &prepared[logged.owner];
    Ok(PartitionChange {
        table: owner.table.id(),
        partition: owner.partition,
        deleted: logged.deleted.clone(),
        first_serial: logged.first_serial,
        inserted: owner.inserted[logged.pieces.clone()]
            .iter()
            .map(|p| p.load(&owner.def))
            .collect::<Result<_>>()?,
    })
}

/// Applies one partition change at `ts`: ends the versions `ended` (the change's deleted
/// serials, resolved) and appends its rows. Shared by commit and replay.
pub(super) fn apply_change(
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

/// Fails the commit when an inserted primary key already has a live committed version in its
/// data partition (primary keys are unique per data partition, which is global uniqueness
/// when the partitioning key is part of the primary key): the statement-time check can miss a
/// key a concurrent transaction committed in between.
fn check_unique(
    partition: &Partition,
    def: &TableDef,
    inserted: &[RowsPiece],
    deleted: &[RowId],
) -> Result<()> {
    let Some(pk) = def.primary_index() else {
        return Ok(());
    };
    let deleted: std::collections::HashSet<RowId> = deleted.iter().copied().collect();
    for piece in inserted {
        let batch = piece.load(def)?;
        let keys = def.primary_codec()?.keys(&batch, &pk.columns)?;
        for (row, key) in keys.iter().enumerate() {
            let (snapshot, rows) = partition.lookup_key(pk.id, key);
            let taken = rows.iter().any(|r| {
                !deleted.contains(r)
                    && snapshot
                        .chunk(r.chunk())
                        .is_some_and(|c| r.offset() < c.len() && c.end(r.offset()) == TS_LIVE)
            });
            if taken {
                return Err(duplicate_row(def, &batch, &pk.columns, row));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_keep_items_within_the_budget() {
        let big = COMMIT_FRAME_BUDGET;
        assert_eq!(budget_runs([]), vec![0..0]);
        assert_eq!(budget_runs([10, 20]), vec![0..2]);
        assert_eq!(
            budget_runs([big, 1, big / 2, big / 2]),
            vec![0..1, 1..3, 3..4]
        );
    }
}
