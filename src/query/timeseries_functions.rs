//! GridDB's time-series selection and interpolation functions (spec/GRIDDB_SQL.md §9), which
//! GridDB has only in TQL, as SQL functions planned and run by DataFusion:
//!
//! | SQL | kind | result |
//! |---|---|---|
//! | `time_next(table, t)` | table function | the row with the smallest key ≥ t |
//! | `time_next_only(table, t)` | table function | the row with the smallest key > t |
//! | `time_prev(table, t)` | table function | the row with the largest key ≤ t |
//! | `time_prev_only(table, t)` | table function | the row with the largest key < t |
//! | `time_interpolated(table, col, t)` | table function | the row at t, or one interpolated there |
//! | `time_sampling(table, col \| '*', start, end, k, unit)` | table function | one row per sample time |
//! | `time_avg(ts, v)` / `time_avg(v ORDER BY ts)` | aggregate | the time-weighted mean of v |
//!
//! This module owns the table functions themselves; `args` reads and checks their arguments,
//! `series` finds the table and plans reads of it, `sampling` is the relation behind
//! TIME_INTERPOLATED (one sample) and TIME_SAMPLING and `sample_exec` its execution plan, and
//! `avg` is the TIME_AVG aggregate. [`register`] installs all of them in a session, together with [`CallSyntax`], a relation
//! planner that lets the table functions be called in any case (`TIME_NEXT(...)`) and with
//! GridDB's bare words (`time_sampling(sensors, *, ..., HOUR)`).
//!
//! Invariants:
//! - A table function reads one Kura table, named by its first argument, whose time key is its
//!   first primary-key column and must be a TIMESTAMP. Rows are read only through DataFusion
//!   scans of a [`KuraTable`] (filter → sort → limit plans), so partition pruning and index
//!   range access apply, and every read sees the statement's snapshot.
//! - The time, range and interval arguments are constants: they are simplified to literals when
//!   the call is planned (`now()`, casts and constant expressions fold); anything else is an
//!   error. A NULL time gives no rows.
//! - Time arguments keep their own precision until compared with the key: `key >= t` compares
//!   with t rounded up to the key's unit, `key <= t` with t rounded down, so a TIMESTAMP(3) key
//!   is never matched by an instant it does not reach.
//! - Errors are [`KuraError`]s named after the SQL function: 42P01 for a missing table, 42809
//!   for a view, 42804 for a table without a TIMESTAMP key, a non-numeric interpolated column or
//!   an argument of the wrong type, 42703 for a missing column, 22023 for a bad unit, interval or
//!   non-constant argument, 22008 for an interval out of range, 42883 for a wrong number of
//!   arguments. No user input panics.

mod args;
mod avg;
mod sample_exec;
mod sampling;
mod series;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::datasource::{TableProvider, ViewTable};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::AggregateUDF;
use datafusion::logical_expr::planner::{
    RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    self as sql, FunctionArg, FunctionArgExpr, ObjectNamePart, TableFactor,
};

use crate::storage::Catalog;
use args::{Call, sampling_step};
pub use avg::TimeAvg;
use sampling::{SampleRange, SamplingTable};

/// The table functions, by their (lower-case) SQL names.
pub const TABLE_FUNCTIONS: [&str; 6] = [
    "time_next",
    "time_next_only",
    "time_prev",
    "time_prev_only",
    "time_interpolated",
    "time_sampling",
];

/// Installs the time-series functions in `ctx`: the table functions, which find their tables
/// in `catalog`, the TIME_AVG aggregate and the relation planner for GridDB's call syntax.
pub fn register(ctx: &SessionContext, catalog: &Arc<Catalog>) {
    for kind in [
        Selection::Next,
        Selection::NextOnly,
        Selection::Prev,
        Selection::PrevOnly,
    ] {
        ctx.register_udtf(
            kind.sql_name(),
            Arc::new(SelectionFunction {
                catalog: catalog.clone(),
                kind,
            }),
        );
    }
    ctx.register_udtf(
        "time_interpolated",
        Arc::new(InterpolatedFunction {
            catalog: catalog.clone(),
        }),
    );
    ctx.register_udtf(
        "time_sampling",
        Arc::new(SamplingFunction {
            catalog: catalog.clone(),
        }),
    );
    ctx.register_udaf(AggregateUDF::from(TimeAvg::new()));
    // Registration only inserts the planner into a list; it cannot fail in DataFusion 55.
    let _ = ctx.register_relation_planner(Arc::new(CallSyntax));
}

/// Lets Kura's table functions be called as GridDB writes them. DataFusion looks table
/// functions up by the name exactly as written, and plans their arguments against an empty
/// schema; for the functions of this module only, this planner
/// - lower-cases an unquoted function name (`TIME_NEXT(...)` finds `time_next`);
/// - turns a bare identifier argument into a string (`time_next(sensors, t)` names the table
///   `sensors`, `..., 1, HOUR)` the unit `'hour'`; unquoted words are lower-cased as
///   identifiers are, quoted ones kept);
/// - turns a `*` argument into the string `'*'` (`time_sampling(t, *, ...)`).
///
/// Every other relation is left untouched.
#[derive(Debug)]
pub struct CallSyntax;

impl RelationPlanner for CallSyntax {
    fn plan_relation(
        &self,
        mut relation: TableFactor,
        _context: &mut dyn RelationPlannerContext,
    ) -> DfResult<RelationPlanning> {
        if let TableFactor::Table {
            name,
            args: Some(args),
            ..
        } = &mut relation
            && let [ObjectNamePart::Identifier(function)] = name.0.as_mut_slice()
            && function.quote_style.is_none()
            && let Some(known) = TABLE_FUNCTIONS
                .iter()
                .find(|f| f.eq_ignore_ascii_case(&function.value))
        {
            function.value = known.to_string();
            for arg in &mut args.args {
                let FunctionArg::Unnamed(value) = arg else {
                    continue;
                };
                let text = match value {
                    FunctionArgExpr::Wildcard => "*".to_string(),
                    FunctionArgExpr::Expr(sql::Expr::Identifier(word)) => match word.quote_style {
                        None => word.value.to_lowercase(),
                        Some(_) => word.value.clone(),
                    },
                    _ => continue,
                };
                *value =
                    FunctionArgExpr::Expr(sql::Expr::value(sql::Value::SingleQuotedString(text)));
            }
        }
        Ok(RelationPlanning::Original(Box::new(relation)))
    }
}

/// Which neighbour of t a selection function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selection {
    Next,
    NextOnly,
    Prev,
    PrevOnly,
}

impl Selection {
    fn sql_name(self) -> &'static str {
        match self {
            Selection::Next => "time_next",
            Selection::NextOnly => "time_next_only",
            Selection::Prev => "time_prev",
            Selection::PrevOnly => "time_prev_only",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Selection::Next => "TIME_NEXT",
            Selection::NextOnly => "TIME_NEXT_ONLY",
            Selection::Prev => "TIME_PREV",
            Selection::PrevOnly => "TIME_PREV_ONLY",
        }
    }
}

/// TIME_NEXT, TIME_NEXT_ONLY, TIME_PREV and TIME_PREV_ONLY: a view over the one-row plan.
#[derive(Debug)]
struct SelectionFunction {
    catalog: Arc<Catalog>,
    kind: Selection,
}

impl TableFunctionImpl for SelectionFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let call = Call {
            function: self.kind.label(),
            session: args.session(),
        };
        let args = args.exprs();
        call.arity(args, "table, time")?;
        let series = call.series(&self.catalog, &call.text(args, 1, "table name")?)?;
        let bound = call.instant(args, 2, series.unit)?;
        let plan = series.nearest(self.kind, bound, None)?.build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// TIME_INTERPOLATED: the sampling relation with one sample, at t.
#[derive(Debug)]
struct InterpolatedFunction {
    catalog: Arc<Catalog>,
}

impl TableFunctionImpl for InterpolatedFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let call = Call {
            function: "TIME_INTERPOLATED",
            session: args.session(),
        };
        let args = args.exprs();
        call.arity(args, "table, column, time")?;
        let series = call.series(&self.catalog, &call.text(args, 1, "table name")?)?;
        let value = call.value_column(&series, &call.text(args, 2, "column name")?, false)?;
        let range = call
            .instant(args, 3, series.unit)?
            .map(|t| SampleRange::single(t.floor(series.unit)));
        Ok(Arc::new(SamplingTable::new(series, value, range)))
    }
}

/// TIME_SAMPLING.
#[derive(Debug)]
struct SamplingFunction {
    catalog: Arc<Catalog>,
}

impl TableFunctionImpl for SamplingFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let call = Call {
            function: "TIME_SAMPLING",
            session: args.session(),
        };
        let args = args.exprs();
        call.arity(args, "table, column, start, end, k, unit")?;
        let series = call.series(&self.catalog, &call.text(args, 1, "table name")?)?;
        let value = call.value_column(&series, &call.text(args, 2, "column name")?, true)?;
        let start = call.instant(args, 3, series.unit)?;
        let end = call.instant(args, 4, series.unit)?;
        let step = sampling_step(&call, args, series.unit)?;
        let range = match (start, end) {
            (Some(start), Some(end)) => {
                SampleRange::new(start.ceil(series.unit), end.floor(series.unit), step)
            }
            _ => None,
        };
        Ok(Arc::new(SamplingTable::new(series, value, range)))
    }
}
