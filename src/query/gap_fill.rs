//! Gap filling for GridDB's `GROUP BY RANGE ... FILL`: a relation over the per-bucket
//! aggregate that emits one row per bucket of the requested range, in bucket order, and fills
//! the buckets no row fell into.
//!
//! | FILL | an empty bucket becomes |
//! |---|---|
//! | NULL (default) | a row with the bucket start as key and NULL elsewhere |
//! | NONE | no row |
//! | PREVIOUS | a copy of the nearest earlier non-empty bucket (NULL if none) |
//! | LINEAR | numeric columns interpolated between the nearest non-empty buckets on each side (NULL at the ends); other columns as PREVIOUS |
//!
//! Invariants: the input's last column is the bucket start (raw timestamp); buckets are
//! `first + i * interval` for `i < buckets`; the work is done on whole Arrow columns (`take`,
//! `cast`, one pass of interpolation per column), never row by row through expressions.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::compute::{cast, concat_batches, sort_to_indices, take};
use datafusion::arrow::datatypes::{DataType, Float64Type, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, collect,
};

use crate::error::{KuraError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Null,
    None,
    Previous,
    Linear,
}

/// The buckets to emit and how to fill them.
#[derive(Debug, Clone)]
pub struct GapFillSpec {
    /// Start of the first bucket, in the key's raw unit.
    pub first: i64,
    pub interval: i64,
    pub buckets: usize,
    pub fill: Fill,
    /// Output columns that hold the bucket start.
    pub key_positions: Vec<usize>,
}

/// The gap-filled relation a GROUP BY RANGE select is replaced by.
#[derive(Debug)]
pub struct GapFillTable {
    input: LogicalPlan,
    spec: Arc<GapFillSpec>,
    schema: SchemaRef,
}

impl GapFillTable {
    pub fn new(input: LogicalPlan, spec: GapFillSpec) -> Result<GapFillTable> {
        let full = input.schema().as_arrow().clone();
        let width = full.fields().len().saturating_sub(1);
        let schema = Arc::new(Schema::new(
            full.fields()
                .iter()
                .take(width)
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        Ok(GapFillTable {
            input,
            spec: Arc::new(spec),
            schema,
        })
    }
}

#[async_trait]
impl TableProvider for GapFillTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = state.create_physical_plan(&self.input).await?;
        Ok(Arc::new(GapFillExec::new(
            input,
            self.spec.clone(),
            self.schema.clone(),
            projection.cloned(),
        )?))
    }
}

#[derive(Debug)]
pub struct GapFillExec {
    input: Arc<dyn ExecutionPlan>,
    spec: Arc<GapFillSpec>,
    /// The full output schema (before projection).
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl GapFillExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        spec: Arc<GapFillSpec>,
        schema: SchemaRef,
        projection: Option<Vec<usize>>,
    ) -> DfResult<GapFillExec> {
        let projected = match &projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => schema.clone(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(projected),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(GapFillExec {
            input,
            spec,
            schema,
            projection,
            properties: Arc::new(properties),
        })
    }
}

impl DisplayAs for GapFillExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "GapFillExec: buckets={}, fill={:?}",
            self.spec.buckets, self.spec.fill
        )
    }
}

impl ExecutionPlan for GapFillExec {
    fn name(&self) -> &str {
        "GapFillExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("GapFillExec needs one input".into()))?;
        Ok(Arc::new(GapFillExec::new(
            input,
            self.spec.clone(),
            self.schema.clone(),
            self.projection.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "GapFillExec has one partition, not {partition}"
            )));
        }
        let input = self.input.clone();
        let spec = self.spec.clone();
        let schema = self.schema.clone();
        let projection = self.projection.clone();
        let output = self.properties.eq_properties.schema().clone();
        let stream = futures::stream::once(async move {
            let input_schema = input.schema();
            let batches = collect(input, context).await?;
            let all = concat_batches(&input_schema, &batches)?;
            let filled = fill(&all, &spec, &schema).map_err(DataFusionError::from)?;
            match &projection {
                Some(p) => Ok(filled.project(p)?),
                None => Ok(filled),
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(output, stream)))
    }
}

/// The filled rows of `input` (its last column is the bucket start).
fn fill(input: &RecordBatch, spec: &GapFillSpec, schema: &SchemaRef) -> Result<RecordBatch> {
    let width = schema.fields().len();
    let buckets = cast(input.column(width), &DataType::Int64)?;
    let buckets = buckets.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    if spec.fill == Fill::None {
        let order = sort_to_indices(input.column(width), None, None)?;
        let columns = (0..width)
            .map(|c| Ok(take(input.column(c), &order, None)?))
            .collect::<Result<Vec<_>>>()?;
        return conform(schema, columns);
    }
    let mut present: Vec<Option<u32>> = vec![None; spec.buckets];
    let mut by_bucket: HashMap<i64, u32> = HashMap::with_capacity(input.num_rows());
    for row in 0..input.num_rows() {
        if buckets.is_valid(row) {
            by_bucket.insert(buckets.value(row), row as u32);
        }
    }
    for (i, slot) in present.iter_mut().enumerate() {
        let start = spec.first + i as i64 * spec.interval;
        *slot = by_bucket.get(&start).copied();
    }
    let previous = previous_rows(&present);
    let mut columns = Vec::with_capacity(width);
    for c in 0..width {
        let column = input.column(c);
        let out: ArrayRef = if spec.key_positions.contains(&c) {
            let starts = Int64Array::from_iter_values(
                (0..spec.buckets).map(|i| spec.first + i as i64 * spec.interval),
            );
            cast(&starts, column.data_type())?
        } else {
            match spec.fill {
                Fill::Null | Fill::None => take(column, &UInt32Array::from(present.clone()), None)?,
                Fill::Previous => take(column, &UInt32Array::from(previous.clone()), None)?,
                Fill::Linear if column.data_type().is_numeric() => interpolate(column, &present)?,
                Fill::Linear => take(column, &UInt32Array::from(previous.clone()), None)?,
            }
        };
        columns.push(out);
    }
    conform(schema, columns)
}

fn conform(schema: &SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let options = datafusion::arrow::record_batch::RecordBatchOptions::new()
        .with_row_count(Some(columns.first().map_or(0, |c| c.len())));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(|e| KuraError::internal(format!("gap fill output: {e}")))
}

/// For every bucket, its own row or the nearest earlier bucket's.
fn previous_rows(present: &[Option<u32>]) -> Vec<Option<u32>> {
    let mut last = None;
    present
        .iter()
        .map(|row| {
            if row.is_some() {
                last = *row;
            }
            last
        })
        .collect()
}

/// A numeric column over all buckets: present buckets keep their value, empty ones are
/// interpolated linearly between the nearest present buckets on both sides.
fn interpolate(column: &ArrayRef, present: &[Option<u32>]) -> Result<ArrayRef> {
    let values = cast(column, &DataType::Float64)?;
    let values = values.as_primitive::<Float64Type>();
    let value = |row: u32| {
        let row = row as usize;
        values.is_valid(row).then(|| values.value(row))
    };
    let mut next: Vec<Option<usize>> = vec![None; present.len()];
    let mut upcoming = None;
    for i in (0..present.len()).rev() {
        if present[i].is_some() {
            upcoming = Some(i);
        }
        next[i] = upcoming;
    }
    let mut prior: Option<usize> = None;
    let mut out = Vec::with_capacity(present.len());
    for i in 0..present.len() {
        if let Some(row) = present[i] {
            prior = Some(i);
            out.push(value(row));
            continue;
        }
        let filled = match (prior, next[i]) {
            (Some(p), Some(q)) => match (present[p].and_then(value), present[q].and_then(value)) {
                (Some(v0), Some(v1)) => Some(v0 + (v1 - v0) * (i - p) as f64 / (q - p) as f64),
                _ => None,
            },
            _ => None,
        };
        out.push(filled);
    }
    let floats: ArrayRef = Arc::new(Float64Array::from(out));
    Ok(cast(&floats, column.data_type())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, TimeUnit};

    fn input(buckets: &[i64], values: &[Option<i64>]) -> (RecordBatch, SchemaRef) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("v", DataType::Int64, true),
            Field::new("b", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        let ts: ArrayRef = cast(
            &Int64Array::from(buckets.to_vec()),
            &DataType::Timestamp(TimeUnit::Millisecond, None),
        )
        .unwrap();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![ts.clone(), Arc::new(Int64Array::from(values.to_vec())), ts],
        )
        .unwrap();
        let out = Arc::new(Schema::new(schema.fields()[..2].to_vec()));
        (batch, out)
    }

    fn run(fill_kind: Fill, buckets: &[i64], values: &[Option<i64>]) -> Vec<Option<i64>> {
        let (batch, schema) = input(buckets, values);
        let spec = GapFillSpec {
            first: 0,
            interval: 10,
            buckets: 6,
            fill: fill_kind,
            key_positions: vec![0],
        };
        let out = fill(&batch, &spec, &schema).unwrap();
        let v = out
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        (0..v.len())
            .map(|i| v.is_valid(i).then(|| v.value(i)))
            .collect()
    }

    #[test]
    fn each_fill_method_matches_hand_computed_values() {
        // Buckets 0..50 step 10; rows in 10 (v=10), 40 (v=40), 20 (v=NULL).
        let buckets = [40, 10, 20];
        let values = [Some(40), Some(10), None];
        assert_eq!(
            run(Fill::Null, &buckets, &values),
            vec![None, Some(10), None, None, Some(40), None]
        );
        assert_eq!(
            run(Fill::Previous, &buckets, &values),
            vec![None, Some(10), None, None, Some(40), Some(40)]
        );
        // Bucket 30 lies between 20 (NULL) and 40: NULL. Ends: NULL.
        assert_eq!(
            run(Fill::Linear, &buckets, &values),
            vec![None, Some(10), None, None, Some(40), None]
        );
        assert_eq!(
            run(Fill::Linear, &[10, 40], &[Some(10), Some(41)]),
            vec![None, Some(10), Some(20), Some(30), Some(41), None]
        );
        assert_eq!(
            run(Fill::None, &buckets, &values),
            vec![Some(10), None, Some(40)]
        );
    }

    #[test]
    fn key_column_holds_every_bucket_start() {
        let (batch, schema) = input(&[10], &[Some(1)]);
        let spec = GapFillSpec {
            first: 0,
            interval: 10,
            buckets: 3,
            fill: Fill::Null,
            key_positions: vec![0],
        };
        let out = fill(&batch, &spec, &schema).unwrap();
        let ts = cast(out.column(0), &DataType::Int64).unwrap();
        assert_eq!(
            ts.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .values()
                .to_vec(),
            vec![0, 10, 20]
        );
    }
}
