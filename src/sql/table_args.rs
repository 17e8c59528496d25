//! Table function calls as PostgreSQL clients write them.
//!
//! A function returning a single column takes its alias as the column's name too
//! (`FROM generate_series(1, 3) g` has a column `g`), which DataFusion does not do. A scalar
//! function in FROM is a relation of one row (`FROM string_to_array(x, ',') s`, as Grafana
//! writes it); DataFusion only knows table functions there, so the call becomes
//! `(SELECT f(...) AS s) s`. A `generate_series(...)` in a select list returns one row per
//! value, as a set-returning function does in PostgreSQL (DataFusion's scalar
//! `generate_series` returns one list): it becomes `unnest(generate_series(...))`, still named
//! `generate_series`.
//!
//! Parameters in the arguments of a table function (`FROM generate_series(1, $1)`):
//! DataFusion builds a table function's rows while planning, from literal arguments, so a
//! `$n` there must be a value before the statement is planned: when the statement runs, each
//! such placeholder becomes the literal of its bound value; while it is only described, a
//! NULL of no particular type stands in, which gives the function's columns without rows.
//!
//! Invariant: placeholders anywhere else are left to DataFusion's own binding, and a
//! statement without a placeholder in table function arguments is not copied.

use std::ops::ControlFlow;

use datafusion::arrow;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::sqlparser::ast::{
    CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, Ident, Query, SelectItem, SetExpr,
    Statement, TableAlias, TableAliasColumnDef, TableFactor, Value, Visit, VisitMut, Visitor,
    VisitorMut, visit_expressions, visit_expressions_mut,
};

use super::template::{function_call, parse_query, select_mut};
use crate::error::{KuraError, Result};

/// Functions that return one column, named by the alias when the call has no column list.
const SCALAR_TABLE_FUNCTIONS: [&str; 3] = ["generate_series", "range", "unnest"];

/// Rewrites the table function calls of `statement` as PostgreSQL reads them (see the module
/// docs): single-column functions name their column after the alias, and a scalar function
/// (one `is_scalar` knows that is not a table function) becomes a one-row relation.
pub fn normalize_calls(statement: &mut Statement, is_scalar: &dyn Fn(&str) -> bool) {
    struct Calls<'f>(&'f dyn Fn(&str) -> bool);
    impl VisitorMut for Calls<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            expand_series_in_select_lists(query.body.as_mut());
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            match factor {
                TableFactor::Table {
                    name,
                    args: Some(args),
                    alias,
                    ..
                } => {
                    let function = match name.0.as_slice() {
                        [.., part] => part.as_ident().map(|i| i.value.to_lowercase()),
                        [] => None,
                    };
                    let Some(function) = function else {
                        return ControlFlow::Continue(());
                    };
                    if SCALAR_TABLE_FUNCTIONS.contains(&function.as_str()) {
                        name_by_alias(alias.as_mut());
                    } else if name.0.len() == 1 && (self.0)(&function) {
                        let call = function_call(
                            &function,
                            arg_exprs(&mut args.args).map(|e| e.clone()).collect(),
                        );
                        if let Ok(relation) = one_row_relation(call, &function, alias.take()) {
                            *factor = relation;
                        }
                    }
                }
                TableFactor::UNNEST {
                    alias,
                    array_exprs,
                    with_offset: false,
                    ..
                } if array_exprs.len() == 1 => name_by_alias(alias.as_mut()),
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let _ = VisitMut::visit(statement, &mut Calls(is_scalar));
}

/// `SELECT generate_series(a, b) [AS x]` becomes `SELECT unnest(generate_series(a, b)) AS x`,
/// `x` defaulting to `generate_series`, in every SELECT of a set operation.
fn expand_series_in_select_lists(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for item in &mut select.projection {
                let (expr, alias) = match item {
                    SelectItem::UnnamedExpr(expr) => (expr, None),
                    SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
                    _ => continue,
                };
                let Expr::Function(function) = &*expr else {
                    continue;
                };
                let is_series = function
                    .name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|i| i.value.eq_ignore_ascii_case("generate_series"));
                if !is_series {
                    continue;
                }
                let expanded = function_call("unnest", vec![expr.clone()]);
                *item = SelectItem::ExprWithAlias {
                    expr: expanded,
                    alias: alias.unwrap_or_else(|| Ident::new("generate_series")),
                };
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            expand_series_in_select_lists(left);
            expand_series_in_select_lists(right);
        }
        _ => {}
    }
}

/// `f(...) a` without a column list gets `a(a)`.
fn name_by_alias(alias: Option<&mut TableAlias>) {
    if let Some(alias) = alias
        && alias.columns.is_empty()
    {
        alias.columns = vec![TableAliasColumnDef::from_name(alias.name.value.clone())];
    }
}

/// `(SELECT call AS a) AS a`, `a` being the alias's column, the alias, or the function's name.
fn one_row_relation(call: Expr, function: &str, alias: Option<TableAlias>) -> Result<TableFactor> {
    let alias = alias.unwrap_or_else(|| TableAlias {
        explicit: true,
        name: Ident::new(function),
        columns: Vec::new(),
        at: None,
    });
    let column = alias
        .columns
        .first()
        .map_or_else(|| alias.name.clone(), |c| c.name.clone());
    let mut query = parse_query("SELECT 1")?;
    select_mut(&mut query)?.projection = vec![SelectItem::ExprWithAlias {
        expr: call,
        alias: column,
    }];
    Ok(TableFactor::Derived {
        lateral: false,
        subquery: Box::new(query),
        alias: Some(alias),
        sample: None,
    })
}

/// A statement whose table function arguments hold no placeholder any more.
#[derive(Debug, Default)]
pub struct Bound {
    /// The rewritten statement, or `None` when it had no such placeholder.
    pub statement: Option<Statement>,
    /// While describing: the types of the placeholders taken out, by position (1-based),
    /// where the function decides them (`generate_series(1, $1)` counts in BIGINT).
    pub types: Vec<(usize, arrow::datatypes::DataType)>,
}

/// `statement` with the placeholders of its table function arguments replaced. `params` is
/// `None` while the statement is only described.
pub fn bind(statement: &Statement, params: Option<&ParamValues>) -> Result<Bound> {
    let mut finder = HasPlaceholderArgs;
    if statement.visit(&mut finder).is_continue() {
        return Ok(Bound::default());
    }
    let mut bound = statement.clone();
    let mut binder = Binder {
        params,
        types: Vec::new(),
    };
    match VisitMut::visit(&mut bound, &mut binder) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(Bound {
            statement: Some(bound),
            types: binder.types,
        }),
    }
}

/// Whether `factor` calls a series function, which counts in BIGINT when an argument is a
/// number.
fn is_series(factor: &TableFactor) -> bool {
    let name = match factor {
        TableFactor::Table { name, .. } | TableFactor::Function { name, .. } => name,
        _ => return false,
    };
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .is_some_and(|i| matches!(i.value.to_lowercase().as_str(), "generate_series" | "range"))
}

fn has_number(args: &[FunctionArg]) -> bool {
    args.iter().any(|arg| {
        matches!(
            arg,
            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))
                if matches!(v.value, Value::Number(..))
        )
    })
}

fn function_args(factor: &TableFactor) -> Option<&Vec<FunctionArg>> {
    match factor {
        TableFactor::Table {
            args: Some(args), ..
        } => Some(&args.args),
        TableFactor::Function { args, .. } => Some(args),
        _ => None,
    }
}

fn function_args_mut(factor: &mut TableFactor) -> Option<&mut Vec<FunctionArg>> {
    match factor {
        TableFactor::Table {
            args: Some(args), ..
        } => Some(&mut args.args),
        TableFactor::Function { args, .. } => Some(args),
        _ => None,
    }
}

fn arg_exprs(args: &mut [FunctionArg]) -> impl Iterator<Item = &mut Expr> {
    args.iter_mut().filter_map(|arg| match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
        | FunctionArg::Named {
            arg: FunctionArgExpr::Expr(e),
            ..
        }
        | FunctionArg::ExprNamed {
            arg: FunctionArgExpr::Expr(e),
            ..
        } => Some(e),
        _ => None,
    })
}

fn placeholder(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(name) => Some(name),
            _ => None,
        },
        _ => None,
    }
}

struct HasPlaceholderArgs;

impl Visitor for HasPlaceholderArgs {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        let Some(args) = function_args(factor) else {
            return ControlFlow::Continue(());
        };
        visit_expressions(args, |e| match placeholder(e) {
            Some(_) => ControlFlow::Break(()),
            None => ControlFlow::Continue(()),
        })
    }
}

struct Binder<'p> {
    params: Option<&'p ParamValues>,
    types: Vec<(usize, arrow::datatypes::DataType)>,
}

impl VisitorMut for Binder<'_> {
    type Break = KuraError;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<KuraError> {
        let series = is_series(factor);
        let Some(args) = function_args_mut(factor) else {
            return ControlFlow::Continue(());
        };
        let bigint = series && has_number(args);
        let params = self.params;
        let types = &mut self.types;
        for expr in arg_exprs(args) {
            visit_expressions_mut(expr, |e| {
                let Some(name) = placeholder(e) else {
                    return ControlFlow::Continue(());
                };
                if params.is_none()
                    && bigint
                    && let Some(position) = name.strip_prefix('$').and_then(|n| n.parse().ok())
                {
                    types.push((position, arrow::datatypes::DataType::Int64));
                }
                let value = match params {
                    None => Ok(null()),
                    Some(params) => params
                        .get_placeholders_with_values(name)
                        .map_err(KuraError::from)
                        .and_then(|v| literal(&v.value)),
                };
                match value {
                    Ok(value) => {
                        *e = value;
                        ControlFlow::Continue(())
                    }
                    Err(err) => ControlFlow::Break(err),
                }
            })?;
        }
        ControlFlow::Continue(())
    }
}

fn null() -> Expr {
    Expr::value(Value::Null)
}

/// The SQL literal of a bound value.
fn literal(value: &ScalarValue) -> Result<Expr> {
    if value.is_null() {
        return Ok(null());
    }
    let cast = |text: String, data_type: DataType| Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(Expr::value(Value::SingleQuotedString(text))),
        data_type,
        array: false,
        format: None,
    };
    Ok(match value {
        ScalarValue::Boolean(Some(b)) => Expr::value(Value::Boolean(*b)),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_)
        | ScalarValue::Decimal128(..) => Expr::value(Value::Number(value.to_string(), false)),
        ScalarValue::Float32(_) | ScalarValue::Float64(_) => {
            cast(value.to_string(), DataType::DoublePrecision)
        }
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Expr::value(Value::SingleQuotedString(s.clone())),
        ScalarValue::Date32(_) => cast(value.to_string(), DataType::Date),
        ScalarValue::TimestampMicrosecond(_, None)
        | ScalarValue::TimestampMillisecond(_, None)
        | ScalarValue::TimestampNanosecond(_, None)
        | ScalarValue::TimestampSecond(_, None) => cast(
            value.to_string(),
            DataType::Timestamp(None, datafusion::sql::sqlparser::ast::TimezoneInfo::None),
        ),
        other => {
            return Err(KuraError::unsupported(format!(
                "a parameter of type {} in the arguments of a table function",
                other.data_type()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse_sql;

    fn bound(sql: &str, params: Option<Vec<ScalarValue>>) -> Option<String> {
        let statement = parse_sql(sql).unwrap().remove(0);
        let params = params.map(|p| ParamValues::List(p.into_iter().map(Into::into).collect()));
        bind(&statement, params.as_ref())
            .unwrap()
            .statement
            .map(|s| s.to_string())
    }

    #[test]
    fn table_function_placeholders_take_their_values() {
        let sql = "SELECT * FROM generate_series(1, $1) WHERE value > $2";
        assert_eq!(
            bound(
                sql,
                Some(vec![
                    ScalarValue::Int32(Some(5)),
                    ScalarValue::Int64(Some(2))
                ])
            )
            .as_deref(),
            Some("SELECT * FROM generate_series(1, 5) WHERE value > $2")
        );
        assert_eq!(
            bound(sql, None).as_deref(),
            Some("SELECT * FROM generate_series(1, NULL) WHERE value > $2")
        );
    }

    #[test]
    fn single_column_functions_are_named_by_their_alias() {
        let mut statement = parse_sql(
            "SELECT g FROM generate_series(1, 3) g, unnest(x) AS u, generate_series(1, 2) AS h(k)",
        )
        .unwrap()
        .remove(0);
        normalize_calls(&mut statement, &|_| false);
        assert_eq!(
            statement.to_string(),
            "SELECT g FROM generate_series(1, 3) g (g), UNNEST(x) AS u (u), generate_series(1, 2) AS h (k)"
        );
    }

    #[test]
    fn scalar_functions_in_from_become_one_row_relations() {
        let mut statement = parse_sql(
            "SELECT s[1] FROM string_to_array('a,b', ',') s, generate_series(1, 2) g, unknown_fn(1) u",
        )
        .unwrap()
        .remove(0);
        normalize_calls(&mut statement, &|name| name == "string_to_array");
        assert_eq!(
            statement.to_string(),
            "SELECT s[1] FROM (SELECT string_to_array('a,b', ',') AS s) s, generate_series(1, 2) g (g), unknown_fn(1) u"
        );
    }

    #[test]
    fn statements_without_such_placeholders_are_untouched() {
        assert_eq!(bound("SELECT $1 FROM generate_series(1, 3)", None), None);
        assert_eq!(bound("SELECT * FROM t WHERE a = $1", None), None);
    }
}
