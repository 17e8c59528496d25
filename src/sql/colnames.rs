//! PostgreSQL's names for result columns that have no alias (`count(*)` is called `count`,
//! `1 + 1` is `?column?`, `CAST(x AS int)` is `int4`), applied to the schema a query reports.
//! DataFusion keeps its own, unique, names internally; only what clients see changes.
//!
//! Invariant: names are only replaced when every output column can be matched to a select
//! item (at most one wildcard, expanded by counting).
//!
//! Also what the columns say about their origin: the declared type, typmod, table and column
//! that a table's field metadata carries describe only a column passed through unchanged, as
//! in PostgreSQL; DataFusion keeps the metadata through casts (`k::bigint`, `c::text`), so
//! computed columns lose it here.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::logical_expr::{Expr as LogicalExpr, LogicalPlan};
use datafusion::sql::sqlparser::ast::{DataType, Expr, Query, SelectItem, SetExpr, Statement};

/// The schema a query reports to clients: PostgreSQL's names, and origin metadata only on
/// columns passed through from a relation.
pub fn reported_schema(statement: &Statement, plan: &LogicalPlan) -> SchemaRef {
    let schema = plan.schema().inner().clone();
    let schema = match passed_through(plan) {
        Some(mask) if mask.len() == schema.fields().len() && mask.contains(&false) => {
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .zip(mask)
                .map(|(field, kept)| {
                    let field = field.as_ref().clone();
                    if kept {
                        field
                    } else {
                        field.with_metadata(Default::default())
                    }
                })
                .collect();
            Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
        }
        _ => schema,
    };
    pg_schema(statement, schema)
}

/// For each output column of the plan's top projection, whether it is a column reference.
fn passed_through(plan: &LogicalPlan) -> Option<Vec<bool>> {
    match plan {
        LogicalPlan::Projection(projection) => Some(
            projection
                .expr
                .iter()
                .map(|e| matches!(e.clone().unalias(), LogicalExpr::Column(_)))
                .collect(),
        ),
        LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Distinct(_)
        | LogicalPlan::SubqueryAlias(_) => plan.inputs().first().and_then(|p| passed_through(p)),
        _ => None,
    }
}

/// The schema with PostgreSQL's column names for `statement`'s unaliased select items.
fn pg_schema(statement: &Statement, schema: SchemaRef) -> SchemaRef {
    match statement {
        Statement::Query(query) => pg_query_schema(query, schema),
        _ => schema,
    }
}

/// The schema with PostgreSQL's column names for `query`'s unaliased select items.
pub fn pg_query_schema(query: &Query, schema: SchemaRef) -> SchemaRef {
    let Some(names) = item_names(query, schema.fields().len()) else {
        return schema;
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(names)
        .map(|(field, name)| match name {
            Some(name) => field.as_ref().clone().with_name(name),
            None => field.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Gives the top-level select items internal unique names so DataFusion accepts what
/// PostgreSQL accepts (`SELECT 1, 1`, `SELECT count(*), count(*)`, `SELECT CAST(v AS int), v`).
/// Clients never see these names: [`pg_schema`] reports PostgreSQL's.
pub fn disambiguate(query: &mut Query) {
    disambiguate_body(query.body.as_mut());
}

fn disambiguate_body(body: &mut SetExpr) {
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            disambiguate_body(left);
            disambiguate_body(right);
        }
        SetExpr::Select(select) => {
            let wildcards = wildcard_count(&select.projection);
            if wildcards > 1 {
                return;
            }
            let mut seen = std::collections::HashSet::new();
            for (position, item) in select.projection.iter_mut().enumerate() {
                let SelectItem::UnnamedExpr(expr) = item else {
                    continue;
                };
                let is_column = matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
                let first_use = expr_name(expr).is_some_and(|name| seen.insert(name));
                if is_column && first_use {
                    continue;
                }
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: datafusion::sql::sqlparser::ast::Ident::with_quote(
                        '"',
                        format!("__kura_col_{position}"),
                    ),
                };
            }
        }
        _ => {}
    }
}

fn wildcard_count(projection: &[SelectItem]) -> usize {
    projection
        .iter()
        .filter(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        })
        .count()
}

fn first_select(body: &SetExpr) -> Option<&datafusion::sql::sqlparser::ast::Select> {
    match body {
        SetExpr::Select(select) => Some(select),
        SetExpr::SetOperation { left, .. } => first_select(left),
        SetExpr::Query(query) => first_select(&query.body),
        _ => None,
    }
}

/// One entry per output column: the PostgreSQL name, or `None` to keep DataFusion's.
fn item_names(query: &Query, columns: usize) -> Option<Vec<Option<String>>> {
    let select = first_select(&query.body)?;
    let wildcards = wildcard_count(&select.projection);
    let named = select.projection.len() - wildcards;
    if wildcards > 1 || (wildcards == 0 && named != columns) || named > columns {
        return None;
    }
    let expanded = columns - named;
    let mut names = Vec::with_capacity(columns);
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(expr) => {
                names.push(Some(expr_name(expr).unwrap_or_else(|| "?column?".into())))
            }
            SelectItem::ExprWithAlias { .. } => names.push(None),
            _ => names.extend(std::iter::repeat_n(None, expanded)),
        }
    }
    Some(names)
}

/// PostgreSQL's FigureColname: the name an expression gives its column, if any.
fn expr_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(fold(ident)),
        Expr::CompoundIdentifier(parts) => parts.last().map(fold),
        Expr::Function(function) => function
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_lowercase()),
        Expr::Nested(inner) => expr_name(inner),
        Expr::Cast {
            expr, data_type, ..
        } => expr_name(expr).or_else(|| Some(type_name(data_type))),
        Expr::TypedString(typed) => Some(type_name(&typed.data_type)),
        Expr::Case { .. } => Some("case".into()),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Subquery(query) => first_select(&query.body)
            .and_then(|s| s.projection.first())
            .and_then(|item| match item {
                SelectItem::UnnamedExpr(e) => expr_name(e),
                SelectItem::ExprWithAlias { alias, .. } => Some(fold(alias)),
                _ => None,
            }),
        Expr::Array(_) => Some("array".into()),
        Expr::Interval(_) => Some("interval".into()),
        _ => None,
    }
}

fn fold(ident: &datafusion::sql::sqlparser::ast::Ident) -> String {
    super::names::normalize(ident)
}

/// PostgreSQL's internal name of a type, as used for cast column names.
fn type_name(data_type: &DataType) -> String {
    let text = data_type.to_string().to_lowercase();
    let base = text.split('(').next().unwrap_or(&text).trim();
    match base {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "real" | "float4" => "float4",
        "double precision" | "float8" | "double" => "float8",
        "boolean" | "bool" => "bool",
        "character varying" | "varchar" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" | "numeric" => "numeric",
        "timestamp with time zone" | "timestamptz" => "timestamptz",
        "timestamp" | "timestamp without time zone" => "timestamp",
        other => other,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType as ArrowType;

    fn names(sql: &str, columns: usize) -> Vec<String> {
        let statement = crate::sql::parse_sql(sql).unwrap().remove(0);
        let fields: Vec<Field> = (0..columns)
            .map(|i| Field::new(format!("df{i}"), ArrowType::Int64, true))
            .collect();
        let schema = pg_schema(&statement, Arc::new(Schema::new(fields)));
        schema.fields().iter().map(|f| f.name().clone()).collect()
    }

    #[test]
    fn postgres_column_names() {
        assert_eq!(
            names("SELECT count(*), sum(t.v) AS total, 1 + 1, x FROM t", 4),
            ["count", "df1", "?column?", "x"]
        );
        assert_eq!(
            names("SELECT CAST(1 AS int), avg(v)::numeric(6,1) FROM t", 2),
            ["int4", "avg"]
        );
        assert_eq!(names("SELECT *, max(v) FROM t", 3), ["df0", "df1", "max"]);
        assert_eq!(names("SELECT 1 UNION SELECT 2", 1), ["?column?"]);
    }
}
