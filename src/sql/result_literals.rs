//! The type a query reports for an integer literal it returns as a column: `SELECT 1` is an
//! `integer` in PostgreSQL (drivers read `int4` from its RowDescription), while DataFusion
//! types every integer literal `bigint`.
//!
//! Only literals that are whole result columns of the outermost SELECT are narrowed: inside
//! expressions DataFusion's integer arithmetic wraps on overflow instead of failing, so a
//! literal narrowed there could turn `100000 * 100000` into a wrong `integer` where `bigint`
//! gives the right value.
//!
//! Invariant: values never change, only the type of columns that are bare literals in
//! `int4` range.

use datafusion::common::Result as DfResult;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::{Distinct, Expr, LogicalPlan, Projection};

use crate::error::Result;

/// `plan` with the bare integer-literal columns of its outermost projection typed `integer`.
pub fn narrow_result_literals(plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(narrow(plan)?.data)
}

fn narrow(plan: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    match plan {
        LogicalPlan::Projection(projection) => {
            let mut changed = false;
            let exprs: Vec<Expr> = projection
                .expr
                .iter()
                .map(|e| narrow_column(e, &mut changed))
                .collect();
            if !changed {
                return Ok(Transformed::no(LogicalPlan::Projection(projection)));
            }
            let narrowed = Projection::try_new(exprs, projection.input)?;
            Ok(Transformed::yes(LogicalPlan::Projection(narrowed)))
        }
        LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::Distinct(Distinct::All(_)) => {
            let mut changed = false;
            let plan = plan.map_children(|child| {
                let child = narrow(child)?;
                changed |= child.transformed;
                Ok(child)
            })?;
            if !changed {
                return Ok(Transformed::no(plan.data));
            }
            Ok(Transformed::yes(plan.data.recompute_schema()?))
        }
        other => Ok(Transformed::no(other)),
    }
}

fn narrow_column(expr: &Expr, changed: &mut bool) -> Expr {
    match expr {
        Expr::Literal(ScalarValue::Int64(Some(v)), metadata) => match i32::try_from(*v) {
            Ok(narrow) => {
                *changed = true;
                Expr::Literal(ScalarValue::Int32(Some(narrow)), metadata.clone())
            }
            Err(_) => expr.clone(),
        },
        Expr::Alias(alias) => {
            let inner = narrow_column(&alias.expr, changed);
            Expr::Alias(datafusion::logical_expr::expr::Alias {
                expr: Box::new(inner),
                ..alias.clone()
            })
        }
        _ => expr.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::prelude::SessionContext;

    async fn types_of(sql: &str) -> Vec<DataType> {
        let ctx = SessionContext::new();
        let plan = ctx.state().create_logical_plan(sql).await.unwrap();
        let plan = narrow_result_literals(plan).unwrap();
        plan.schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    }

    #[tokio::test]
    async fn bare_literal_columns_are_integers() {
        assert_eq!(
            types_of("SELECT 1, 2 AS two, 3000000000, 1 + 1").await,
            vec![
                DataType::Int32,
                DataType::Int32,
                DataType::Int64,
                DataType::Int64
            ]
        );
        assert_eq!(
            types_of("SELECT 1 AS x ORDER BY x LIMIT 1").await,
            vec![DataType::Int32]
        );
        // Inner queries keep bigint literals: arithmetic on them stays exact.
        assert_eq!(
            types_of("SELECT x * 100000 FROM (SELECT 100000 AS x) s").await,
            vec![DataType::Int64]
        );
    }
}
