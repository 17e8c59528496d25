//! [`Series`]: the table a time-series function reads, its TIMESTAMP key, and the DataFusion
//! plans over a [`KuraTable`] scan of it (nearest row: Filter → Sort → Limit 1).

use std::sync::Arc;

use datafusion::arrow::datatypes::TimeUnit;
use datafusion::common::{ScalarValue, TableReference};
use datafusion::datasource::{TableProvider, provider_as_source};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, SortExpr, ident, lit};

use super::Selection;
use super::args::Instant;
use crate::query::provider::KuraTable;
use crate::storage::{Table, TableDef};

/// A table read by a time-series function, and its time key.
#[derive(Debug, Clone)]
pub(super) struct Series {
    pub(super) table: Arc<Table>,
    pub(super) def: Arc<TableDef>,
    /// The key's column position.
    pub(super) key: usize,
    pub(super) unit: TimeUnit,
    pub(super) zone: Option<Arc<str>>,
}

impl Series {
    pub(super) fn key_name(&self) -> &str {
        &self.def.columns[self.key].name
    }

    /// The key column as an expression over a scan of the table.
    pub(super) fn key_expr(&self) -> Expr {
        ident(self.key_name())
    }

    /// A key value as a literal of the key's type.
    pub(super) fn key_literal(&self, value: i64) -> Expr {
        let zone = self.zone.clone();
        lit(match self.unit {
            TimeUnit::Second => ScalarValue::TimestampSecond(Some(value), zone),
            TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(Some(value), zone),
            TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(Some(value), zone),
            TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(Some(value), zone),
        })
    }

    /// Sort expressions along the primary key (time first), ascending or descending.
    pub(super) fn key_order(&self, ascending: bool) -> Vec<SortExpr> {
        self.def
            .primary_key
            .iter()
            .map(|c| ident(&self.def.columns[*c].name).sort(ascending, false))
            .collect()
    }

    /// A scan of the table (of the columns `projection`, all when None).
    pub(super) fn scan(&self, projection: Option<Vec<usize>>) -> DfResult<LogicalPlanBuilder> {
        let provider: Arc<dyn TableProvider> = Arc::new(KuraTable::new(self.table.clone(), false));
        LogicalPlanBuilder::scan(
            TableReference::bare(self.def.name.clone()),
            provider_as_source(provider),
            projection,
        )
    }

    /// The one row nearest to `bound` on the side `kind` selects, as a plan: Filter → Sort →
    /// Limit 1 over a scan, with `projection` applied to the scan.
    pub(super) fn nearest(
        &self,
        kind: Selection,
        bound: Option<Instant>,
        projection: Option<Vec<usize>>,
    ) -> DfResult<LogicalPlanBuilder> {
        let scan = self.scan(projection)?;
        let Some(bound) = bound else {
            return scan.limit(0, Some(0));
        };
        let key = self.key_expr();
        let unit = self.unit;
        let filter = match kind {
            Selection::Next => key.gt_eq(self.key_literal(bound.ceil(unit))),
            Selection::NextOnly => key.gt(self.key_literal(bound.floor(unit))),
            Selection::Prev => key.lt_eq(self.key_literal(bound.floor(unit))),
            Selection::PrevOnly => key.lt(self.key_literal(bound.ceil(unit))),
        };
        let ascending = matches!(kind, Selection::Next | Selection::NextOnly);
        scan.filter(filter)?
            .sort(self.key_order(ascending))?
            .limit(0, Some(1))
    }
}
