//! Building the internal queries UPDATE, DELETE, RETURNING and ON CONFLICT run: a fixed
//! template is parsed, then the user's own expressions (already parsed) are spliced into its
//! syntax tree. User SQL text is never re-formatted or re-parsed.

use datafusion::sql::sqlparser::ast::{
    DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, Query, Select, SelectItem, SetExpr,
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
