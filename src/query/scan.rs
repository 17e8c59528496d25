//! `KuraScanExec`: the physical scan of a Kura table at one snapshot.
//!
//! The scan reads column chunks (all of them, or the rows an index returned), keeps the row
//! versions visible at the statement's snapshot minus the rows the transaction itself deleted,
//! adds the transaction's private inserts, applies the pushed-down filters each unit needs
//! (see `scan_filter`), and hands DataFusion record batches. Visibility is computed per chunk;
//! a chunk whose rows are all visible is passed on without copying.
//!
//! Invariants: everything the scan reads was captured when it was planned (chunk lists are
//! `Arc` snapshots), so execution never takes a storage lock.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, UInt32Array, UInt64Array, new_null_array};
use datafusion::arrow::compute::{filter_record_batch, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::StreamExt;

use super::scan_filter::apply_predicate;
use crate::error::{KuraError, Result};
use crate::interrupt::Interrupt;
use crate::storage::chunk::Chunk;
use crate::storage::{RowId, TableDef, Ts};
use crate::txn::RowsPiece;

/// Where in the provider's column list the hidden row-id column sits: after the table's columns.
pub const ROW_ID_COLUMN: &str = "__kura_rowid";

/// One piece of work for a scan partition.
#[derive(Debug, Clone)]
pub enum ScanUnit {
    /// Rows of one chunk; `offsets` limits the scan to the rows an index returned.
    Chunk {
        partition: u16,
        chunk: Arc<Chunk>,
        offsets: Option<Vec<usize>>,
        /// The filters these rows must pass (those the partition's interval does not imply).
        predicate: Option<Arc<dyn PhysicalExpr>>,
    },
    /// Some of the transaction's own uncommitted rows, from position `first` on.
    Private {
        piece: RowsPiece,
        first: usize,
        deleted: Arc<std::collections::HashSet<usize>>,
        predicate: Option<Arc<dyn PhysicalExpr>>,
    },
}

impl ScanUnit {
    fn rows(&self) -> usize {
        match self {
            ScanUnit::Chunk { chunk, offsets, .. } => {
                offsets.as_ref().map_or(chunk.len(), |o| o.len())
            }
            ScanUnit::Private { piece, .. } => piece.num_rows(),
        }
    }
}

/// What every partition of one scan shares.
#[derive(Debug)]
pub struct ScanSpec {
    pub def: Arc<TableDef>,
    pub snapshot: Ts,
    /// Indices into the table's columns; `def.columns.len()` stands for the row id. The
    /// first `output_schema.fields().len()` leave the scan; the rest are read only for filters.
    pub projection: Vec<usize>,
    pub own_deleted: Arc<BTreeSet<RowId>>,
    /// The schema of the batches read (`projection`).
    pub read_schema: SchemaRef,
    /// The schema of the batches the scan returns.
    pub output_schema: SchemaRef,
    /// The filters the scan applies, for EXPLAIN.
    pub filters: Vec<String>,
    pub access: String,
    pub limit: Option<usize>,
    /// Checked before each unit is read, so a cancelled statement stops mid-scan.
    pub interrupt: Arc<Interrupt>,
}

#[derive(Debug)]
pub struct KuraScanExec {
    spec: Arc<ScanSpec>,
    groups: Vec<Vec<ScanUnit>>,
    partitions_read: usize,
    partitions_total: usize,
    properties: Arc<PlanProperties>,
}

impl KuraScanExec {
    pub fn new(
        spec: ScanSpec,
        units: Vec<ScanUnit>,
        target_partitions: usize,
        partitions_read: usize,
        partitions_total: usize,
    ) -> KuraScanExec {
        let total_rows: usize = units.iter().map(|u| u.rows()).sum();
        let groups_wanted = if total_rows < 65_536 {
            1
        } else {
            target_partitions.max(1)
        };
        let mut groups: Vec<Vec<ScanUnit>> =
            vec![Vec::new(); groups_wanted.min(units.len()).max(1)];
        let mut loads = vec![0usize; groups.len()];
        for unit in units {
            let lightest = (0..groups.len()).min_by_key(|g| loads[*g]).unwrap_or(0);
            loads[lightest] += unit.rows();
            groups[lightest].push(unit);
        }
        let properties = PlanProperties::new(
            EquivalenceProperties::new(spec.output_schema.clone()),
            Partitioning::UnknownPartitioning(groups.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        KuraScanExec {
            spec: Arc::new(spec),
            groups,
            partitions_read,
            partitions_total,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for KuraScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let columns: Vec<&str> = self.spec.projection[..self.spec.output_schema.fields().len()]
            .iter()
            .map(|i| {
                self.spec
                    .def
                    .columns
                    .get(*i)
                    .map_or(ROW_ID_COLUMN, |c| c.name.as_str())
            })
            .collect();
        write!(
            f,
            "KuraScanExec: table={}, access={}, data_partitions={}/{}, projection=[{}]",
            self.spec.def.name,
            self.spec.access,
            self.partitions_read,
            self.partitions_total,
            columns.join(", ")
        )?;
        if !self.spec.filters.is_empty() {
            write!(f, ", filters=[{}]", self.spec.filters.join(", "))?;
        }
        if let Some(limit) = self.spec.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for KuraScanExec {
    fn name(&self) -> &'static str {
        "KuraScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let units = self.groups.get(partition).cloned().unwrap_or_default();
        let spec = self.spec.clone();
        let mut remaining = spec.limit.unwrap_or(usize::MAX);
        let batches = futures::stream::iter(units)
            .map(move |unit| {
                let spec = spec.clone();
                let read = spec.interrupt.check().and_then(|_| read_unit(&spec, &unit));
                futures::stream::iter(match read {
                    Ok(batches) => batches.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(e) => vec![Err(e.into())],
                })
            })
            .flatten()
            .filter_map(move |batch| {
                let out = match batch {
                    Ok(b) if remaining == 0 || b.num_rows() == 0 => None,
                    Ok(b) => {
                        let take = b.num_rows().min(remaining);
                        remaining -= take;
                        crate::stats::counters::add(
                            &crate::stats::counters::COUNTERS.rows_read,
                            take as u64,
                        );
                        Some(Ok(b.slice(0, take)))
                    }
                    Err(e) => Some(Err(e)),
                };
                futures::future::ready(out)
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.spec.output_schema.clone(),
            batches,
        )))
    }
}

fn read_unit(spec: &ScanSpec, unit: &ScanUnit) -> Result<Vec<RecordBatch>> {
    let (batches, predicate) = match unit {
        ScanUnit::Chunk {
            partition,
            chunk,
            offsets: None,
            predicate,
        } => (read_chunk(spec, *partition, chunk)?, predicate),
        ScanUnit::Chunk {
            partition,
            chunk,
            offsets: Some(offsets),
            predicate,
        } => (
            read_chunk_rows(spec, *partition, chunk, offsets)?,
            predicate,
        ),
        ScanUnit::Private {
            piece,
            first,
            deleted,
            predicate,
        } => (vec![read_private(spec, piece, *first, deleted)?], predicate),
    };
    batches
        .into_iter()
        .map(|batch| {
            let batch = match predicate {
                Some(predicate) => apply_predicate(batch, predicate.as_ref())?,
                None => batch,
            };
            output(spec, batch)
        })
        .collect()
}

/// Drops the columns read only for the filters.
fn output(spec: &ScanSpec, batch: RecordBatch) -> Result<RecordBatch> {
    let width = spec.output_schema.fields().len();
    if batch.num_columns() == width {
        return Ok(batch);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        spec.output_schema.clone(),
        batch.columns()[..width].to_vec(),
        &options,
    )?)
}

fn read_chunk(spec: &ScanSpec, partition: u16, chunk: &Chunk) -> Result<Vec<RecordBatch>> {
    let first = RowId::new(partition, chunk.id(), 0);
    let last = RowId::new(partition, chunk.id(), u16::MAX);
    let has_own_deletes = spec.own_deleted.range(first..=last).next().is_some();
    let all_visible = !has_own_deletes && chunk.all_visible(spec.snapshot);
    let segments = chunk.segments()?;
    let mut out = Vec::with_capacity(segments.len());
    let mut start = 0;
    for segment in segments.iter() {
        let n = segment.num_rows();
        let row_ids = || chunk.row_ids(partition, start, n);
        let batch = project(spec, segment, n, row_ids)?;
        let batch = if all_visible {
            batch
        } else {
            let mask = chunk.visibility(start, n, spec.snapshot, |o| {
                has_own_deletes
                    && spec
                        .own_deleted
                        .contains(&RowId::new(partition, chunk.id(), o as u16))
            });
            filter(batch, &mask)?
        };
        out.push(batch);
        start += n;
    }
    Ok(out)
}

fn read_chunk_rows(
    spec: &ScanSpec,
    partition: u16,
    chunk: &Chunk,
    offsets: &[usize],
) -> Result<Vec<RecordBatch>> {
    let visible: Vec<usize> = offsets
        .iter()
        .copied()
        .filter(|o| {
            *o < chunk.len()
                && chunk.begin(*o) <= spec.snapshot
                && chunk.end(*o) > spec.snapshot
                && !spec
                    .own_deleted
                    .contains(&RowId::new(partition, chunk.id(), *o as u16))
        })
        .collect();
    let mut out = Vec::new();
    if visible.is_empty() {
        return Ok(out);
    }
    for (start, segment) in chunk.segments_holding(&visible)? {
        let n = segment.num_rows();
        let inside: Vec<usize> = visible
            .iter()
            .copied()
            .filter(|o| *o >= start && *o < start + n)
            .collect();
        if !inside.is_empty() {
            let indices = UInt32Array::from_iter_values(inside.iter().map(|o| (o - start) as u32));
            let columns = segment
                .columns()
                .iter()
                .map(|c| Ok(take(c.as_ref(), &indices, None)?))
                .collect::<Result<Vec<ArrayRef>>>()?;
            let picked = RecordBatch::try_new(segment.schema(), columns)?;
            let base = RowId::new(partition, chunk.id(), 0).0;
            let ids = || -> ArrayRef {
                Arc::new(UInt64Array::from_iter_values(
                    inside.iter().map(|o| base + *o as u64),
                ))
            };
            out.push(project(spec, &picked, inside.len(), ids)?);
        }
    }
    Ok(out)
}

fn read_private(
    spec: &ScanSpec,
    piece: &RowsPiece,
    start: usize,
    deleted: &std::collections::HashSet<usize>,
) -> Result<RecordBatch> {
    let batch = match piece {
        RowsPiece::Memory(batch) => batch.clone(),
        RowsPiece::Swapped { .. } => piece.load(&spec.def)?,
    };
    let n = batch.num_rows();
    let ids = || -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(
            (start..start + n).map(|p| RowId::private(p as u64).0),
        ))
    };
    let projected = project(spec, &batch, n, ids)?;
    let mask: BooleanArray = (start..start + n)
        .map(|p| Some(!deleted.contains(&p)))
        .collect();
    filter(projected, &mask)
}

/// Picks the projected columns out of a stored batch, widening batches stored before an
/// ADD COLUMN with the column's missing value.
fn project(
    spec: &ScanSpec,
    batch: &RecordBatch,
    rows: usize,
    row_ids: impl FnOnce() -> ArrayRef,
) -> Result<RecordBatch> {
    let mut row_ids = Some(row_ids);
    let mut columns = Vec::with_capacity(spec.projection.len());
    for index in &spec.projection {
        let column = match spec.def.columns.get(*index) {
            Some(_) if *index < batch.num_columns() => batch.column(*index).clone(),
            Some(def) if def.missing.is_null() => new_null_array(&def.ty.arrow_type(), rows),
            Some(def) => def.missing.to_array_of_size(rows)?,
            None => match row_ids.take() {
                Some(f) => f(),
                None => return Err(KuraError::internal("row id projected twice")),
            },
        };
        columns.push(column);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        spec.read_schema.clone(),
        columns,
        &options,
    )?)
}

pub(super) fn filter(batch: RecordBatch, mask: &BooleanArray) -> Result<RecordBatch> {
    if mask.true_count() == mask.len() {
        return Ok(batch);
    }
    if batch.num_columns() == 0 {
        let options = RecordBatchOptions::new().with_row_count(Some(mask.true_count()));
        return Ok(RecordBatch::try_new_with_options(
            batch.schema(),
            vec![],
            &options,
        )?);
    }
    Ok(filter_record_batch(&batch, mask)?)
}
