//! `generate_series` and `range` as PostgreSQL clients call them. DataFusion's versions take
//! only BIGINT literals, but `array_upper(...)` or an `integer` parameter folds to a 32-bit
//! value; here every integer literal argument is widened to BIGINT before DataFusion's own
//! implementation builds the series.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;

#[derive(Debug)]
struct WidenedSeries(Arc<dyn TableFunctionImpl>);

impl TableFunctionImpl for WidenedSeries {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let exprs: Vec<Expr> = args.exprs().iter().map(widen).collect();
        self.0
            .call_with_args(TableFunctionArgs::new(&exprs, args.session()))
    }
}

fn widen(expr: &Expr) -> Expr {
    let Expr::Literal(value, metadata) = expr else {
        return expr.clone();
    };
    let wide = match value {
        ScalarValue::Int8(v) => v.map(i64::from),
        ScalarValue::Int16(v) => v.map(i64::from),
        ScalarValue::Int32(v) => v.map(i64::from),
        ScalarValue::UInt8(v) => v.map(i64::from),
        ScalarValue::UInt16(v) => v.map(i64::from),
        ScalarValue::UInt32(v) => v.map(i64::from),
        _ => return expr.clone(),
    };
    Expr::Literal(ScalarValue::Int64(wide), metadata.clone())
}

/// Replaces DataFusion's `generate_series` and `range` in `ctx` with the widening versions.
pub fn register(ctx: &SessionContext) {
    for function in datafusion::functions_table::all_default_table_functions() {
        ctx.register_udtf(
            function.name(),
            Arc::new(WidenedSeries(function.function().clone())),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn integer_arguments_of_any_width_make_a_series() {
        let ctx = SessionContext::new();
        register(&ctx);
        let sql =
            "SELECT sum(value) AS s FROM generate_series(CAST(1 AS INT), CAST(4 AS SMALLINT))";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let column = batches[0].column(0);
        let sum = ScalarValue::try_from_array(column, 0).unwrap();
        assert_eq!(sum, ScalarValue::Int64(Some(10)));
    }
}
