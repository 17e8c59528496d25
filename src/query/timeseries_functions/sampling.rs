//! The relation behind TIME_SAMPLING and TIME_INTERPOLATED: one row per sample time
//! `s = first + i * step` (`s <= last`), each the table's row at s if there is one, otherwise a
//! row built from the rows just before and just after s:
//! - the key is s;
//! - the interpolated column (if one is named) is `v0 + (v1 - v0) * (s - t0) / (t1 - t0)`,
//!   computed in DOUBLE and cast back to the column's type (integers truncate), NULL when either
//!   neighbour's value is NULL;
//! - every other column is copied from the earlier row.
//!
//! A sample time with no row at or before it, or none at or after it, gives no row; the output
//! is in sample-time order.
//!
//! Invariants: the rows come from one DataFusion plan over the table, the union of (a) the rows
//! with key in `[first, last]`, (b) the last row before `first` and (c) the first row after
//! `last` (each a Filter, and for (b) and (c) Sort → Limit 1, over a
//! [`KuraTable`](crate::query::provider::KuraTable) scan), sorted by key, reading only the
//! columns the query needs; [`SamplingExec`](super::sample_exec::SamplingExec) computes the
//! samples from those rows.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use super::Selection;
use super::args::Instant;
use super::sample_exec::{Role, SampleSpec, SamplingExec};
use super::series::Series;
use crate::query::provider::KuraTable;

/// The sample times, in raw key units: `first + i * step` for every i with the result at most
/// `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SampleRange {
    pub(super) first: i64,
    pub(super) last: i64,
    pub(super) step: i64,
}

impl SampleRange {
    /// The range, or None when it holds no sample (`first > last`). `step` must be positive.
    pub(super) fn new(first: i64, last: i64, step: i64) -> Option<SampleRange> {
        (first <= last && step > 0).then_some(SampleRange { first, last, step })
    }

    /// The one sample time `t`.
    pub(super) fn single(t: i64) -> SampleRange {
        SampleRange {
            first: t,
            last: t,
            step: 1,
        }
    }
}

/// The sampled relation a TIME_SAMPLING or TIME_INTERPOLATED call returns.
#[derive(Debug)]
pub(super) struct SamplingTable {
    series: Series,
    /// The interpolated column's position in the table.
    value: Option<usize>,
    /// None when no sample time exists (a NULL bound, or start after end).
    range: Option<SampleRange>,
    schema: SchemaRef,
}

impl SamplingTable {
    pub(super) fn new(
        series: Series,
        value: Option<usize>,
        range: Option<SampleRange>,
    ) -> SamplingTable {
        let schema = KuraTable::new(series.table.clone(), false).schema();
        SamplingTable {
            series,
            value,
            range,
            schema,
        }
    }
}

#[async_trait]
impl TableProvider for SamplingTable {
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
        let output: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let output_schema = Arc::new(self.schema.project(&output)?);
        let Some(range) = self.range else {
            return Ok(Arc::new(EmptyExec::new(output_schema)));
        };
        // The table columns the samples need, in table order.
        let key = self.series.key;
        let mut needed: Vec<usize> = output.clone();
        needed.push(key);
        needed.extend(self.value);
        needed.sort_unstable();
        needed.dedup();
        let at = |c: usize| needed.iter().position(|n| *n == c).unwrap_or(0);
        let columns: Vec<(usize, Role)> = output
            .iter()
            .map(|&c| {
                let role = if c == key {
                    Role::Key
                } else if Some(c) == self.value {
                    Role::Value
                } else {
                    Role::Copy
                };
                (at(c), role)
            })
            .collect();

        let series = &self.series;
        let key_expr = series.key_expr();
        let within = series
            .scan(Some(needed.clone()))?
            .filter(
                key_expr
                    .clone()
                    .gt_eq(series.key_literal(range.first))
                    .and(key_expr.clone().lt_eq(series.key_literal(range.last))),
            )?
            .build()?;
        let before = series.nearest(
            Selection::PrevOnly,
            Some(Instant {
                value: range.first,
                unit: series.unit,
            }),
            Some(needed.clone()),
        )?;
        let after = series.nearest(
            Selection::NextOnly,
            Some(Instant {
                value: range.last,
                unit: series.unit,
            }),
            Some(needed.clone()),
        )?;
        let plan = before
            .union(within)?
            .union(after.build()?)?
            .sort(series.key_order(true))?
            .build()?;
        let input = state.create_physical_plan(&plan).await?;
        let spec = SampleSpec {
            range,
            key: at(key),
            value: self.value.map(at),
            columns,
        };
        Ok(Arc::new(SamplingExec::new(
            input,
            Arc::new(spec),
            output_schema,
        )))
    }
}
