//! TIME_AVG, GridDB's time-weighted mean, as a DataFusion aggregate returning DOUBLE:
//! `time_avg(ts, v)`, or `time_avg(v ORDER BY ts)` (the time taken from the ordering).
//!
//! Rows whose value (or time) is NULL are skipped. Over the remaining rows sorted by time,
//! each row is weighted by the span between the midpoints to its neighbours; the first row from
//! its own time to the next midpoint, the last from the previous midpoint to its own time. So
//! the mean is `Σ vᵢ·(tᵢ₊₁ − tᵢ₋₁)/2 / (t_last − t_first)` with `t₋₁ = t₀` and `tₙ = tₙ₋₁`.
//! One row gives its own value, no rows give NULL, and rows that all share one time (no span
//! to weight by) give their plain mean.
//!
//! Invariants: the accumulator keeps (time, value) pairs in any order and sorts them only when
//! evaluating, so partial aggregates merge across partitions in any order and no input ordering
//! is required (an ORDER BY is used for the time, never relied on for order). The state is two
//! lists, times (raw Int64 of the timestamp's unit) and values (DOUBLE).

use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{AggregateOrderSensitivity, format_state_name};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use crate::error::{KuraError, sqlstate};

/// The `time_avg` aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeAvg {
    signature: Signature,
}

impl TimeAvg {
    pub fn new() -> TimeAvg {
        TimeAvg {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for TimeAvg {
    fn default() -> Self {
        TimeAvg::new()
    }
}

fn mismatch(message: String) -> DataFusionError {
    KuraError::new(sqlstate::DATATYPE_MISMATCH, format!("TIME_AVG: {message}")).into()
}

fn numeric_or_null(data_type: &DataType) -> bool {
    data_type.is_numeric() || *data_type == DataType::Null
}

fn time_type(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Timestamp(..) | DataType::Null)
}

impl AggregateUDFImpl for TimeAvg {
    fn name(&self) -> &str {
        "time_avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        // Values become DOUBLE; types that do not fit are passed on for `return_type` to
        // reject with a message of its own.
        Ok(match arg_types {
            [value] if numeric_or_null(value) => vec![DataType::Float64],
            [time, value] if numeric_or_null(value) => vec![time.clone(), DataType::Float64],
            other => other.to_vec(),
        })
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        match arg_types {
            [value] | [_, value] if !numeric_or_null(value) => {
                Err(mismatch(format!("the value must be numeric, not {value}")))
            }
            [time, _] if !time_type(time) => Err(mismatch(format!(
                "the time must be a TIMESTAMP, not {time}"
            ))),
            [_] | [_, _] => Ok(DataType::Float64),
            _ => Err(KuraError::new(
                sqlstate::UNDEFINED_FUNCTION,
                format!("TIME_AVG takes 1 or 2 arguments, not {}", arg_types.len()),
            )
            .with_hint("Call it as time_avg(ts, value) or time_avg(value ORDER BY ts).")
            .into()),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        // Arguments arrive first, then the ORDER BY expressions.
        let (time_at, value_at) = match (args.exprs.len(), args.order_bys.first()) {
            (2, _) => (0, 1),
            (1, Some(order)) => {
                let time = order.expr.data_type(args.schema)?;
                if !time_type(&time) {
                    return Err(mismatch(format!(
                        "the ORDER BY expression must be a TIMESTAMP, not {time}"
                    )));
                }
                (1, 0)
            }
            _ => {
                return Err(KuraError::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "TIME_AVG(value) needs the row time",
                )
                .with_hint("Write time_avg(ts, value) or time_avg(value ORDER BY ts).")
                .into());
            }
        };
        Ok(Box::new(TimeAvgAccumulator {
            time_at,
            value_at,
            times: Vec::new(),
            values: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new_list(
                format_state_name(args.name, "times"),
                Field::new_list_field(DataType::Int64, true),
                true,
            )),
            Arc::new(Field::new_list(
                format_state_name(args.name, "values"),
                Field::new_list_field(DataType::Float64, true),
                true,
            )),
        ])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        // The ORDER BY only supplies the time; input in any order gives the same result.
        AggregateOrderSensitivity::Beneficial
    }

    fn with_beneficial_ordering(
        self: Arc<Self>,
        _beneficial_ordering: bool,
    ) -> DfResult<Option<Arc<dyn AggregateUDFImpl>>> {
        Ok(Some(self))
    }
}

/// (time, value) pairs of the non-NULL rows seen so far, unsorted.
#[derive(Debug)]
struct TimeAvgAccumulator {
    time_at: usize,
    value_at: usize,
    times: Vec<i64>,
    values: Vec<f64>,
}

impl TimeAvgAccumulator {
    fn push(&mut self, times: &ArrayRef, values: &ArrayRef) -> DfResult<()> {
        let times = cast(times, &DataType::Int64)?;
        let values = cast(values, &DataType::Float64)?;
        let (times, values) = (
            times.as_primitive::<Int64Type>(),
            values.as_primitive::<Float64Type>(),
        );
        for i in 0..times.len().min(values.len()) {
            if times.is_valid(i) && values.is_valid(i) {
                self.times.push(times.value(i));
                self.values.push(values.value(i));
            }
        }
        Ok(())
    }
}

fn argument(values: &[ArrayRef], i: usize) -> DfResult<&ArrayRef> {
    values
        .get(i)
        .ok_or_else(|| DataFusionError::Internal(format!("TIME_AVG: no argument {i}")))
}

fn list<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(items: &[T::Native]) -> ScalarValue {
    let array = ListArray::from_iter_primitive::<T, _, _>([Some(items.iter().copied().map(Some))]);
    ScalarValue::List(Arc::new(array))
}

impl Accumulator for TimeAvgAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let times = argument(values, self.time_at)?.clone();
        let data = argument(values, self.value_at)?.clone();
        self.push(&times, &data)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let times = argument(states, 0)?.as_list::<i32>();
        let values = argument(states, 1)?.as_list::<i32>();
        for row in 0..times.len().min(values.len()) {
            if times.is_valid(row) && values.is_valid(row) {
                self.push(&times.value(row), &values.value(row))?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![
            list::<Int64Type>(&self.times),
            list::<Float64Type>(&self.values),
        ])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Float64(time_weighted_mean(
            &self.times,
            &self.values,
        )))
    }

    fn size(&self) -> usize {
        size_of::<Self>()
            + self.times.capacity() * size_of::<i64>()
            + self.values.capacity() * size_of::<f64>()
    }
}

/// The time-weighted mean of `values` at `times` (see the module documentation).
pub(super) fn time_weighted_mean(times: &[i64], values: &[f64]) -> Option<f64> {
    let mut points: Vec<(i64, f64)> = times.iter().copied().zip(values.iter().copied()).collect();
    points.sort_by_key(|p| p.0);
    let (first, last) = (points.first()?.0, points.last()?.0);
    let span = (i128::from(last) - i128::from(first)) as f64;
    if span == 0.0 {
        return Some(points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64);
    }
    let n = points.len();
    let mut weighted = 0.0;
    for (i, &(_, v)) in points.iter().enumerate() {
        let before = points[i.saturating_sub(1)].0;
        let after = points[(i + 1).min(n - 1)].0;
        weighted += v * (i128::from(after) - i128::from(before)) as f64;
    }
    Some(weighted / 2.0 / span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, TimestampMillisecondArray};

    #[test]
    fn weights_rows_by_the_midpoints_to_their_neighbours() {
        // The spec's example: weights 5, 10, 15, 10 → 90 / 40.
        assert_eq!(
            time_weighted_mean(&[0, 10, 20, 40], &[4.0, 3.0, 2.0, 1.0]),
            Some(2.25)
        );
        // Order does not matter.
        assert_eq!(
            time_weighted_mean(&[40, 0, 20, 10], &[1.0, 4.0, 2.0, 3.0]),
            Some(2.25)
        );
        // Two rows: each half the span.
        assert_eq!(time_weighted_mean(&[0, 100], &[1.0, 3.0]), Some(2.0));
        assert_eq!(time_weighted_mean(&[5], &[7.5]), Some(7.5));
        assert_eq!(time_weighted_mean(&[], &[]), None);
        assert_eq!(time_weighted_mean(&[3, 3], &[1.0, 2.0]), Some(1.5));
    }

    fn batch(times: &[Option<i64>], values: &[Option<f64>]) -> Vec<ArrayRef> {
        vec![
            Arc::new(TimestampMillisecondArray::from(times.to_vec())),
            Arc::new(Float64Array::from(values.to_vec())),
        ]
    }

    fn accumulator() -> TimeAvgAccumulator {
        TimeAvgAccumulator {
            time_at: 0,
            value_at: 1,
            times: Vec::new(),
            values: Vec::new(),
        }
    }

    #[test]
    fn skips_nulls_and_merges_partial_states() {
        let mut a = accumulator();
        a.update_batch(&batch(
            &[Some(40_000), Some(5_000), None],
            &[Some(1.0), None, Some(9.0)],
        ))
        .unwrap();
        let mut b = accumulator();
        b.update_batch(&batch(&[Some(10_000), Some(0)], &[Some(3.0), Some(4.0)]))
            .unwrap();
        let mut c = accumulator();
        c.update_batch(&batch(&[Some(20_000)], &[Some(2.0)]))
            .unwrap();
        let mut total = accumulator();
        for part in [&mut a, &mut b, &mut c] {
            let state: Vec<ArrayRef> = part
                .state()
                .unwrap()
                .into_iter()
                .map(|s| s.to_array().unwrap())
                .collect();
            total.merge_batch(&state).unwrap();
        }
        assert_eq!(total.evaluate().unwrap(), ScalarValue::Float64(Some(2.25)));
        // Only NULL values: no result.
        let mut empty = accumulator();
        empty.update_batch(&batch(&[Some(1)], &[None])).unwrap();
        assert_eq!(empty.evaluate().unwrap(), ScalarValue::Float64(None));
    }
}
