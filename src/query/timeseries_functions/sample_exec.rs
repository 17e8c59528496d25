//! [`SamplingExec`]: computes the rows of TIME_SAMPLING and TIME_INTERPOLATED (see `sampling`)
//! from the table rows in and around the sampled range.
//!
//! Invariants: the input is sorted by key (declared as a required ordering, and checked again);
//! the work is done on whole Arrow columns: sample times are matched to rows by one forward pass
//! over the sorted keys, copies are `take`s, interpolation is one pass per batch, and output is
//! produced lazily in batches of the session's batch size, so a LIMIT stops the work early.
//! Sample times outside the first and last row are skipped arithmetically, never walked.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch,
    RecordBatchOptions, UInt32Array,
};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{cast, concat_batches, sort_to_indices, take, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexRequirement, OrderingRequirements, PhysicalExpr,
    PhysicalSortRequirement,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
    collect,
};
use futures::{StreamExt, TryStreamExt};

use super::sampling::SampleRange;

/// What an output column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The sample time.
    Key,
    /// The interpolated column.
    Value,
    /// A copy of the exact or earlier row.
    Copy,
}

/// What [`SamplingExec`] computes from its input rows.
#[derive(Debug)]
pub(super) struct SampleSpec {
    pub(super) range: SampleRange,
    /// Input positions of the key and of the interpolated column.
    pub(super) key: usize,
    pub(super) value: Option<usize>,
    /// For each output column: its input position and role.
    pub(super) columns: Vec<(usize, Role)>,
}

/// Computes the samples from the rows around and within the sampled range (see the module
/// documentation). One output partition; the input is read whole before the first batch.
#[derive(Debug)]
pub(super) struct SamplingExec {
    input: Arc<dyn ExecutionPlan>,
    spec: Arc<SampleSpec>,
    properties: Arc<PlanProperties>,
}

impl SamplingExec {
    pub(super) fn new(
        input: Arc<dyn ExecutionPlan>,
        spec: Arc<SampleSpec>,
        schema: SchemaRef,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        SamplingExec {
            input,
            spec,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for SamplingExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let r = &self.spec.range;
        write!(
            f,
            "SamplingExec: first={}, last={}, step={}, interpolate={}",
            r.first,
            r.last,
            r.step,
            self.spec.value.is_some()
        )
    }
}

impl ExecutionPlan for SamplingExec {
    fn name(&self) -> &str {
        "SamplingExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        // Declared so that the optimizer keeps (or adds) the sort by key under this plan.
        let key = self.spec.key;
        let name = self.input.schema().field(key).name().clone();
        let ascending = SortOptions {
            descending: false,
            nulls_first: false,
        };
        let requirement = LexRequirement::new([PhysicalSortRequirement::new(
            Arc::new(Column::new(&name, key)),
            Some(ascending),
        )]);
        vec![requirement.map(OrderingRequirements::new)]
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
            .ok_or_else(|| DataFusionError::Internal("SamplingExec needs one input".into()))?;
        Ok(Arc::new(SamplingExec::new(
            input,
            self.spec.clone(),
            self.properties.eq_properties.schema().clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "SamplingExec has one partition, not {partition}"
            )));
        }
        let input = self.input.clone();
        let spec = self.spec.clone();
        let schema = self.properties.eq_properties.schema().clone();
        let batch_size = context.session_config().batch_size().max(1);
        let out = schema.clone();
        let stream = futures::stream::once(async move {
            let input_schema = input.schema();
            let batches = collect(input, context).await?;
            let rows = concat_batches(&input_schema, &batches)?;
            Samples::new(rows, spec, out, batch_size)
        })
        .map_ok(futures::stream::iter)
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.boxed(),
        )))
    }
}

/// The rows to sample from, sorted by key, and the samples still to emit.
pub(super) struct Samples {
    rows: RecordBatch,
    keys: Vec<i64>,
    spec: Arc<SampleSpec>,
    schema: SchemaRef,
    batch_size: usize,
    /// The next sample time to emit (i128: `first + i * step` may pass i64's range).
    next: i128,
    /// The last sample time that can give a row.
    end: i128,
    /// The first row whose key is at or after `next`.
    cursor: usize,
}

impl Samples {
    fn new(
        rows: RecordBatch,
        spec: Arc<SampleSpec>,
        schema: SchemaRef,
        batch_size: usize,
    ) -> DfResult<Samples> {
        let rows = sorted_by_key(rows, spec.key)?;
        let keys: Vec<i64> = cast(rows.column(spec.key), &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        let range = spec.range;
        let (first, last, step) = (
            i128::from(range.first),
            i128::from(range.last),
            i128::from(range.step),
        );
        // Only sample times between the first and the last row can give a row.
        let (mut next, mut end) = (1, 0);
        if let (Some(&lowest), Some(&highest)) = (keys.first(), keys.last()) {
            let lo = first.max(i128::from(lowest));
            let skipped = (lo - first + step - 1) / step;
            next = first + skipped * step;
            end = last.min(i128::from(highest));
        }
        Ok(Samples {
            rows,
            keys,
            spec,
            schema,
            batch_size,
            next,
            end,
            cursor: 0,
        })
    }

    /// The next batch of samples.
    fn batch(&mut self) -> DfResult<RecordBatch> {
        let step = i128::from(self.spec.range.step);
        let mut times: Vec<i64> = Vec::with_capacity(self.batch_size);
        // Per sample: the row copied (exact, else earlier), the later row, exactness and
        // the fraction of the way from the earlier row to the later one.
        let mut base: Vec<u32> = Vec::with_capacity(self.batch_size);
        let mut later: Vec<u32> = Vec::with_capacity(self.batch_size);
        let mut exact: Vec<bool> = Vec::with_capacity(self.batch_size);
        let mut fraction: Vec<f64> = Vec::with_capacity(self.batch_size);
        while self.next <= self.end && times.len() < self.batch_size {
            // `next` lies within [keys[0], keys[last]], so it fits in i64 and a row at or
            // after it exists.
            let s = i64::try_from(self.next).map_err(|_| internal("sample time out of range"))?;
            while self.keys.get(self.cursor).is_some_and(|&k| k < s) {
                self.cursor += 1;
            }
            let at = self.cursor;
            let key_at = *self
                .keys
                .get(at)
                .ok_or_else(|| internal("sample time after the last row"))?;
            let row = u32::try_from(at).map_err(|_| internal("too many rows to sample"))?;
            times.push(s);
            if key_at == s {
                base.push(row);
                later.push(row);
                exact.push(true);
                fraction.push(0.0);
            } else {
                // s > keys[0], so at >= 1.
                let earlier = at
                    .checked_sub(1)
                    .ok_or_else(|| internal("sample time before the first row"))?;
                let t0 = i128::from(self.keys[earlier]);
                let t1 = i128::from(key_at);
                base.push(row - 1);
                later.push(row);
                exact.push(false);
                fraction.push((i128::from(s) - t0) as f64 / (t1 - t0) as f64);
            }
            self.next += step;
        }
        let base = UInt32Array::from(base);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.spec.columns.len());
        for (i, &(position, role)) in self.spec.columns.iter().enumerate() {
            let column = self.rows.column(position);
            let target = self.schema.field(i).data_type();
            columns.push(match role {
                Role::Key => cast(&Int64Array::from(times.clone()), target)?,
                Role::Copy => take(column, &base, None)?,
                Role::Value => {
                    let copied = take(column, &base, None)?;
                    let later = take(column, &UInt32Array::from(later.clone()), None)?;
                    let built = interpolate(&copied, &later, &fraction, target)?;
                    zip(&BooleanArray::from(exact.clone()), &copied, &built)?
                }
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(times.len()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }
}

impl Iterator for Samples {
    type Item = DfResult<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.next <= self.end).then(|| self.batch())
    }
}

fn internal(message: &str) -> DataFusionError {
    DataFusionError::Internal(format!("SamplingExec: {message}"))
}

/// The rows with a key, sorted by it (the input plan sorts them; this only checks, and sorts
/// again if a plan rewrite ever lost the order).
fn sorted_by_key(rows: RecordBatch, key: usize) -> DfResult<RecordBatch> {
    let column = rows.column(key);
    let rows = if column.null_count() > 0 {
        let present = datafusion::arrow::compute::is_not_null(column)?;
        datafusion::arrow::compute::filter_record_batch(&rows, &present)?
    } else {
        rows
    };
    let keys = cast(rows.column(key), &DataType::Int64)?;
    let keys = keys.as_primitive::<Int64Type>().values();
    if keys.windows(2).all(|w| w[0] <= w[1]) {
        return Ok(rows);
    }
    let order = sort_to_indices(rows.column(key), None, None)?;
    Ok(take_record_batch(&rows, &order)?)
}

/// `v0 + (v1 - v0) * fraction` per sample, NULL where either value is NULL, as `target`.
fn interpolate(
    earlier: &ArrayRef,
    later: &ArrayRef,
    fraction: &[f64],
    target: &DataType,
) -> DfResult<ArrayRef> {
    let v0 = cast(earlier, &DataType::Float64)?;
    let v1 = cast(later, &DataType::Float64)?;
    let (v0, v1) = (
        v0.as_primitive::<Float64Type>(),
        v1.as_primitive::<Float64Type>(),
    );
    let values: Float64Array = (0..fraction.len())
        .map(|i| {
            (v0.is_valid(i) && v1.is_valid(i)).then(|| {
                let (a, b) = (v0.value(i), v1.value(i));
                a + (b - a) * fraction[i]
            })
        })
        .collect();
    Ok(cast(&values, target)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};

    fn rows(keys: &[i64], values: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("v", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let ts = cast(
            &Int64Array::from(keys.to_vec()),
            &DataType::Timestamp(TimeUnit::Millisecond, None),
        )
        .unwrap();
        let s: Vec<String> = keys.iter().map(|k| format!("r{k}")).collect();
        RecordBatch::try_new(
            schema,
            vec![
                ts,
                Arc::new(Int64Array::from(values.to_vec())),
                Arc::new(datafusion::arrow::array::StringArray::from(s)),
            ],
        )
        .unwrap()
    }

    /// (key, v, s) per sample, with the named column `v` interpolated or not.
    fn sample(
        keys: &[i64],
        values: &[Option<i64>],
        range: SampleRange,
        interpolate: bool,
    ) -> Vec<(i64, Option<i64>, String)> {
        let input = rows(keys, values);
        let role = if interpolate { Role::Value } else { Role::Copy };
        let spec = SampleSpec {
            range,
            key: 0,
            value: interpolate.then_some(1),
            columns: vec![(0, Role::Key), (1, role), (2, Role::Copy)],
        };
        let schema = input.schema();
        let samples = Samples::new(input, Arc::new(spec), schema, 2).unwrap();
        let mut out = Vec::new();
        for batch in samples {
            let batch = batch.unwrap();
            assert!(batch.num_rows() <= 2);
            let ts = cast(batch.column(0), &DataType::Int64).unwrap();
            let ts = ts.as_primitive::<Int64Type>();
            let v = batch.column(1).as_primitive::<Int64Type>();
            let s = batch.column(2).as_string::<i32>();
            for i in 0..batch.num_rows() {
                out.push((
                    ts.value(i),
                    v.is_valid(i).then(|| v.value(i)),
                    s.value(i).to_string(),
                ));
            }
        }
        out
    }

    #[test]
    fn samples_exact_rows_interpolate_gaps_and_skip_the_ends() {
        // Rows at 10 (v=100), 20 (v=200), 40 (v=NULL), 50 (v=500); samples every 5 from 0 to 60.
        let keys = [20, 10, 50, 40];
        let values = [Some(200), Some(100), Some(500), None];
        let got = sample(&keys, &values, SampleRange::new(0, 60, 5).unwrap(), true);
        let want = vec![
            (10, Some(100), "r10".to_string()),
            (15, Some(150), "r10".to_string()),
            (20, Some(200), "r20".to_string()),
            // 20..40: v1 is NULL.
            (25, None, "r20".to_string()),
            (30, None, "r20".to_string()),
            (35, None, "r20".to_string()),
            (40, None, "r40".to_string()),
            (45, None, "r40".to_string()),
            (50, Some(500), "r50".to_string()),
        ];
        assert_eq!(got, want);
        // Without interpolation every field copies the earlier row.
        let got = sample(&keys, &values, SampleRange::new(0, 60, 5).unwrap(), false);
        assert_eq!(got[1], (15, Some(100), "r10".to_string()));
        assert_eq!(got[3], (25, Some(200), "r20".to_string()));
        // Integer results truncate: 100 + 100 * 1/3.
        let got = sample(
            &[0, 3],
            &[Some(100), Some(200)],
            SampleRange::single(1),
            true,
        );
        assert_eq!(got, vec![(1, Some(133), "r0".to_string())]);
        // Offsets that do not hit a row exactly; the grid starts at `first`.
        let got = sample(&keys, &values, SampleRange::new(-7, 60, 9).unwrap(), true);
        assert_eq!(
            got.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
            vec![
                (11, Some(110)),
                (20, Some(200)),
                (29, None),
                (38, None),
                (47, None)
            ]
        );
    }

    #[test]
    fn no_rows_outside_the_data() {
        let keys = [10, 20];
        let values = [Some(1), Some(2)];
        assert!(sample(&keys, &values, SampleRange::single(5), true).is_empty());
        assert!(sample(&keys, &values, SampleRange::single(25), true).is_empty());
        assert!(sample(&[], &[], SampleRange::new(0, 100, 1).unwrap(), true).is_empty());
        assert_eq!(
            sample(&keys, &values, SampleRange::single(20), true).len(),
            1
        );
        assert_eq!(
            sample(
                &[10],
                &[Some(7)],
                SampleRange::new(0, 100, 10).unwrap(),
                true
            ),
            vec![(10, Some(7), "r10".to_string())]
        );
        assert!(SampleRange::new(10, 9, 1).is_none());
        // Huge ranges are not walked sample by sample outside the data.
        let got = sample(
            &keys,
            &values,
            SampleRange::new(i64::MIN + 1, i64::MAX, 2).unwrap(),
            true,
        );
        assert_eq!(got.len(), 5);
    }
}
