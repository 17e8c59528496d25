//! The filters a Kura scan applies itself.
//!
//! The provider accepts every deterministic filter as `Exact`, so DataFusion plans no
//! `FilterExec` above the scan: planning a filter node (its statistics and interval analysis,
//! redone at every optimizer rewrite) was a sixth of the cost of a short time-range query. The
//! scan evaluates the filters on the rows it reads, and skips, per data partition, the filters
//! that the partition's interval makes true for every row (`ts >= X AND ts < Y` on partitions
//! wholly inside `[X, Y)`), so a range query over whole intervals evaluates nothing per row.
//!
//! Invariant: a row leaves the scan only if every filter the provider accepted is true for it
//! (NULL counts as false), exactly as a `FilterExec` would decide.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_expr::PhysicalExpr;

use super::pruning::intervals_implying;
use crate::error::{KuraError, Result};
use crate::storage::TableDef;

/// Whether the scan can evaluate `filter` itself: deterministic, and made only of the row's
/// columns and constants (no subquery, outer reference or unbound parameter).
pub fn scan_can_evaluate(filter: &Expr) -> bool {
    let unsupported = filter.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::SetComparison(_)
                | Expr::OuterReferenceColumn(..)
                | Expr::Placeholder(_)
        ))
    });
    !filter.is_volatile() && !unsupported.unwrap_or(true)
}

/// The predicates one scan applies, built once per distinct set of filters a partition needs.
pub struct ScanFilters<'a> {
    state: &'a dyn Session,
    filters: Vec<Expr>,
    /// Per filter, the intervals on which it holds for every row.
    implied: Vec<Option<RangeInclusive<i64>>>,
    read_schema: DFSchema,
    built: HashMap<Vec<bool>, Option<Arc<dyn PhysicalExpr>>>,
}

impl<'a> ScanFilters<'a> {
    /// `read_schema` is the schema of the batches the predicates are evaluated on: it must
    /// hold every column the filters name.
    pub fn new(
        state: &'a dyn Session,
        def: &TableDef,
        filters: &[Expr],
        read_schema: SchemaRef,
    ) -> DfResult<ScanFilters<'a>> {
        let filters: Vec<Expr> = filters
            .iter()
            .map(|f| unqualified(f.clone()))
            .collect::<DfResult<_>>()?;
        let implied = filters.iter().map(|f| intervals_implying(def, f)).collect();
        Ok(ScanFilters {
            state,
            filters,
            implied,
            read_schema: DFSchema::try_from(read_schema)?,
            built: HashMap::new(),
        })
    }

    /// The predicate for rows of `interval` (`None` for rows outside any interval: the
    /// transaction's own inserts), or `None` if nothing needs evaluating. On a table without
    /// interval partitioning no filter is implied, so every partition gets all of them.
    pub fn predicate_for(
        &mut self,
        interval: Option<i64>,
    ) -> DfResult<Option<Arc<dyn PhysicalExpr>>> {
        let needed: Vec<bool> = self
            .implied
            .iter()
            .map(|range| !matches!((range, interval), (Some(r), Some(i)) if r.contains(&i)))
            .collect();
        if let Some(predicate) = self.built.get(&needed) {
            return Ok(predicate.clone());
        }
        let chosen: Vec<Expr> = self
            .filters
            .iter()
            .zip(&needed)
            .filter(|(_, need)| **need)
            .map(|(f, _)| f.clone())
            .collect();
        let predicate = match conjunction(chosen) {
            Some(expr) => Some(self.state.create_physical_expr(expr, &self.read_schema)?),
            None => None,
        };
        self.built.insert(needed, predicate.clone());
        Ok(predicate)
    }
}

/// The rows of `batch` for which `predicate` is true.
pub fn apply_predicate(batch: RecordBatch, predicate: &dyn PhysicalExpr) -> Result<RecordBatch> {
    if batch.num_rows() == 0 {
        return Ok(batch);
    }
    let value = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
    let mask: &BooleanArray = value
        .as_boolean_opt()
        .ok_or_else(|| KuraError::internal("a scan filter did not evaluate to booleans"))?;
    super::scan::filter(batch, mask)
}

/// Filters name the scan's columns by bare name: the relation they were written against (a
/// table name or an alias) means nothing to the batches the scan reads.
fn unqualified(filter: Expr) -> DfResult<Expr> {
    filter
        .transform(|e| match e {
            Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
                Column::new_unqualified(c.name),
            ))),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
}
