//! String literals PostgreSQL reads as another type where DataFusion does not: a quoted
//! literal has type `unknown` in PostgreSQL and takes the type of what it is compared with, so
//! `indisprimary = 't'` (psqlODBC's primary-key query) compares booleans. DataFusion refuses
//! to compare `Boolean` with `Utf8`; this analyzer rule, run before type coercion, turns such
//! a literal into the boolean it spells. Likewise a quoted literal cast to `bytea`
//! (`'\x00ff'::bytea`, and the casts Kura adds when such a literal is assigned to a bytea
//! column) is read through bytea's input syntax, as PostgreSQL's `byteain` reads it, where
//! DataFusion would take its UTF-8 bytes.
//!
//! Invariant: only string literals compared with a boolean expression or cast to a binary
//! type change, and only when they spell a boolean as PostgreSQL's `boolin` accepts it or are
//! valid bytea input (else 22P02); anything else is left for type coercion to judge.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use std::sync::{Arc, OnceLock};

use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarUDF,
    TryCast, Volatility, create_udf,
};
use datafusion::optimizer::AnalyzerRule;

#[derive(Debug, Default)]
pub struct UnknownLiterals;

impl AnalyzerRule for UnknownLiterals {
    fn name(&self) -> &str {
        "kura_unknown_literals"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = datafusion::logical_expr::utils::merge_schema(&node.inputs());
            node.map_expressions(|e| {
                e.transform_up(|e| {
                    boolean_literal(e, &schema)?.transform_data(|e| bytea_literal(e, &schema))
                })
            })
        })
        .map(|t| t.data)
    }
}

/// PostgreSQL's spellings of a boolean (`boolin`): any unique prefix of true/false/yes/no,
/// `on`/`off`, `1`/`0`, in any case, with surrounding blanks.
pub fn parse_bool(text: &str) -> Option<bool> {
    let t = text.trim().to_ascii_lowercase();
    if t.is_empty() {
        return None;
    }
    let prefix_of = |word: &str| word.starts_with(&t);
    match t.as_str() {
        "1" | "on" => Some(true),
        "0" | "of" | "off" => Some(false),
        _ if prefix_of("true") || prefix_of("yes") => Some(true),
        _ if prefix_of("false") || prefix_of("no") => Some(false),
        _ => None,
    }
}

fn is_comparison(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    )
}

fn as_boolean(expr: &Expr) -> Option<Expr> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)), _) => {
            parse_bool(text).map(|b| Expr::Literal(ScalarValue::Boolean(Some(b)), None))
        }
        _ => None,
    }
}

fn boolean_literal(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    if !is_comparison(op) {
        return Ok(Transformed::no(expr));
    }
    let is_bool = |e: &Expr| matches!(e.get_type(schema), Ok(DataType::Boolean));
    let (left, right) = match (as_boolean(left), as_boolean(right)) {
        (_, Some(literal)) if is_bool(left) => (left.as_ref().clone(), literal),
        (Some(literal), _) if is_bool(right) => (literal, right.as_ref().clone()),
        _ => return Ok(Transformed::no(expr)),
    };
    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
        Box::new(left),
        *op,
        Box::new(right),
    ))))
}

/// `__kura_bytea_in(text)`: PostgreSQL's bytea input function over a text column.
fn bytea_in() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(create_udf(
            "__kura_bytea_in",
            vec![DataType::Utf8],
            DataType::Binary,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let text = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
                let decoded = crate::sql::rows::decode_bytea_column(&text)?;
                Ok(ColumnarValue::Array(decoded))
            }),
        ))
    })
    .clone()
}

/// `'text'::bytea`: the bytes the literal spells in bytea's input syntax; other text cast to
/// bytea is read the same way when the query runs.
fn bytea_literal(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let (Expr::Cast(Cast { expr: inner, field }) | Expr::TryCast(TryCast { expr: inner, field })) =
        &expr
    else {
        return Ok(Transformed::no(expr));
    };
    if !matches!(
        field.data_type(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    ) {
        return Ok(Transformed::no(expr));
    }
    let Expr::Literal(
        ScalarValue::Utf8(Some(text))
        | ScalarValue::Utf8View(Some(text))
        | ScalarValue::LargeUtf8(Some(text)),
        _,
    ) = inner.as_ref()
    else {
        let text = matches!(
            inner.get_type(schema),
            Ok(DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
        );
        if !text {
            return Ok(Transformed::no(expr));
        }
        // Text that is not a literal (a column of INSERT ... SELECT, a parameter) goes
        // through bytea's input function at run time.
        let decoded = Expr::ScalarFunction(ScalarFunction::new_udf(
            bytea_in(),
            vec![inner.as_ref().clone()],
        ));
        return Ok(Transformed::yes(Expr::Cast(Cast::new_from_field(
            Box::new(decoded),
            field.clone(),
        ))));
    };
    let bytes = crate::sql::rows::decode_bytea(text)?;
    Ok(Transformed::yes(Expr::Cast(Cast::new_from_field(
        Box::new(Expr::Literal(ScalarValue::Binary(Some(bytes)), None)),
        field.clone(),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_spelled_as_postgres_reads_them() {
        for (text, value) in [
            ("t", true),
            ("TRUE", true),
            (" yes ", true),
            ("on", true),
            ("1", true),
            ("f", false),
            ("fal", false),
            ("n", false),
            ("off", false),
            ("0", false),
        ] {
            assert_eq!(parse_bool(text), Some(value), "{text}");
        }
        for text in ["", "o", "maybe", "2", "tru e"] {
            assert_eq!(parse_bool(text), None, "{text}");
        }
    }
}
