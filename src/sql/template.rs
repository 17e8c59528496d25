//! Building the internal queries UPDATE, DELETE, RETURNING and ON CONFLICT run: a fixed
//! template is parsed, then the user's own expressions (already parsed) are spliced into its
//! syntax tree. User SQL text is never re-formatted or re-parsed. Also the syntax-tree steps
//! the rewrites before planning share (visiting every query, aggregating a subquery's item).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, ObjectName, Query, Select,
    SelectItem, SetExpr, VisitMut, VisitorMut, visit_expressions,
};
use datafusion::sql::sqlparser::parser::Parser;

use super::dialect::KuraDialect;
use crate::error::{KuraError, Result};

pub fn quoted(name: &str) -> String {
    Ident::with_quote('"', name).to_string()
}

/// `SELECT 1 FROM "relation" AS "alias"`, ready for its projection and filter to be replaced.
pub fn select_from(relation: &str, alias: &str) -> Result<Query> {
    parse_query(&format!(
        "SELECT 1 FROM {} AS {}",
        quoted(relation),
        quoted(alias)
    ))
}

pub fn parse_query(sql: &str) -> Result<Query> {
    let dialect = KuraDialect::default();
    let mut parser = Parser::new(&dialect).try_with_sql(sql)?;
    Ok(*parser.parse_query()?)
}

pub fn parse_expr(sql: &str) -> Result<Expr> {
    let dialect = KuraDialect::default();
    let mut parser = Parser::new(&dialect).try_with_sql(sql)?;
    Ok(parser.parse_expr()?)
}

pub fn parse_type(sql: &str) -> Result<DataType> {
    let dialect = KuraDialect::default();
    let mut parser = Parser::new(&dialect).try_with_sql(sql)?;
    Ok(parser.parse_data_type()?)
}

/// `alias."column"` as an expression.
pub fn column_ref(alias: &str, column: &str) -> Result<Expr> {
    parse_expr(&format!("{}.{}", quoted(alias), quoted(column)))
}

pub fn select_mut(query: &mut Query) -> Result<&mut Select> {
    match query.body.as_mut() {
        SetExpr::Select(select) => Ok(select.as_mut()),
        _ => Err(KuraError::internal("template is not a SELECT")),
    }
}

pub fn aliased(expr: Expr, alias: &str) -> SelectItem {
    SelectItem::ExprWithAlias {
        expr,
        alias: Ident::with_quote('"', alias),
    }
}

/// `name(args...)` as an expression.
pub fn function_call(name: &str, args: Vec<Expr>) -> Expr {
    function_with_clauses(name, args, Vec::new())
}

/// `name(args... clauses)`, e.g. with an `ORDER BY` inside the call.
pub fn function_with_clauses(
    name: &str,
    args: Vec<Expr>,
    clauses: Vec<FunctionArgumentClause>,
) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses,
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// Calls `rewrite` on `query` and on every query inside it, innermost first.
pub fn rewrite_queries_bottom_up(query: &mut Query, rewrite: impl FnMut(&mut Query)) {
    struct Queries<F>(F);
    impl<F: FnMut(&mut Query)> VisitorMut for Queries<F> {
        type Break = ();
        fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            (self.0)(query);
            ControlFlow::Continue(())
        }
    }
    let _ = query.visit(&mut Queries(rewrite));
}

/// Functions that cannot go inside another aggregate: aggregates, and the set-returning
/// `unnest` and `generate_series`.
const NOT_NESTABLE: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "json_agg",
    "first_value",
    "last_value",
    "unnest",
    "generate_series",
];

/// `SELECT e FROM ... WHERE ...` becomes `SELECT aggregate(e) FROM ... WHERE ...` (keeping the
/// item's alias): one row from a plain single-item SELECT, which DataFusion can plan as a
/// correlated subquery. False, and `query` unchanged, when it is not plain (grouping,
/// DISTINCT, ORDER BY, LIMIT, windows, set operations) or `e` cannot be aggregated.
pub fn aggregate_single_item(query: &mut Query, aggregate: &str) -> bool {
    let plain_query =
        query.order_by.is_none() && query.limit_clause.is_none() && query.fetch.is_none();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return false;
    };
    let plain = plain_query
        && select.distinct.is_none()
        && select.having.is_none()
        && select.named_window.is_empty()
        && select.qualify.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        && select.projection.len() == 1;
    if !plain {
        return false;
    }
    let (item, alias) = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
        _ => return false,
    };
    if calls_unnestable(item) {
        return false;
    }
    let aggregated = function_call(aggregate, vec![item.clone()]);
    select.projection[0] = match alias {
        Some(alias) => SelectItem::ExprWithAlias {
            expr: aggregated,
            alias,
        },
        None => SelectItem::UnnamedExpr(aggregated),
    };
    true
}

/// Whether `expr` calls a [`NOT_NESTABLE`] function or a window function.
fn calls_unnestable(expr: &Expr) -> bool {
    visit_expressions(expr, |e| {
        if let Expr::Function(f) = e {
            let name = f.name.0.last().map(|p| p.to_string().to_lowercase());
            if f.over.is_some() || name.is_some_and(|n| NOT_NESTABLE.contains(&n.as_str())) {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })
    .is_break()
}
