//! Relations in FROM over the columns of an earlier relation, which DataFusion does not plan
//! (a lateral reference), and `unnest(...) WITH ORDINALITY`, which it does not know:
//!
//! ```sql
//! FROM pg_index i JOIN pg_class c ON ... CROSS JOIN unnest(i.indkey) WITH ORDINALITY u(a, k)
//!   CROSS JOIN pg_indexam_has_property(c.relam, 'can_order') amcanorder
//! ```
//!
//! Each is a cross join of each row of the referenced relation with the rows computed from
//! it: the elements of an array for `unnest`, one row for a scalar function (which
//! `table_args` has made `(SELECT f(...) AS amcanorder) amcanorder`). Unnesting in a select
//! list does the same, so the referenced relation `i` becomes
//!
//! ```sql
//! (SELECT i.*, unnest(i.indkey) AS a, unnest(__kura_ordinals(i.indkey)) AS k FROM pg_index i) i
//! ```
//!
//! and the lateral relation goes; `u.a` and `u.k` become `i.a` and `i.k`. An `unnest` without
//! column references but `WITH ORDINALITY` becomes `(SELECT unnest(e) AS a, unnest(...) AS k) u`.
//!
//! Invariant: the rows are the same as PostgreSQL's. So the referenced relation may not be on
//! the NULL side of an outer join or before a RIGHT or FULL join (a NULL row would gain rows),
//! and the lateral relation must be joined by a cross join, a comma or `ON true`; otherwise the
//! statement is left to DataFusion.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Join, JoinConstraint, JoinOperator, ObjectName, Query, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, TableAlias, TableFactor, TableWithJoins, Value,
    WildcardAdditionalOptions, visit_expressions, visit_expressions_mut,
};

use super::template::{aliased, function_call, parse_query, rewrite_queries_bottom_up, select_mut};
use crate::query::ordinality;

/// Rewrites every lateral relation of `query` and its subqueries that DataFusion cannot plan.
pub fn rewrite(query: &mut Query) {
    rewrite_queries_bottom_up(query, in_query);
}

fn in_query(query: &mut Query) {
    // The query's own ORDER BY may name the unnest's columns, so renames cover the query.
    let mut renames = Vec::new();
    in_set_expr(query.body.as_mut(), &mut renames);
    if renames.is_empty() {
        return;
    }
    let _ = visit_expressions_mut(query, |expr| {
        rename(expr, &renames);
        ControlFlow::<()>::Continue(())
    });
}

fn in_set_expr(body: &mut SetExpr, renames: &mut Vec<Rename>) {
    match body {
        SetExpr::Select(select) => {
            while let Some(rename) = rewrite_one(&mut select.from) {
                expand_wildcards(&mut select.projection, &rename);
                renames.push(rename);
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            in_set_expr(left, renames);
            in_set_expr(right, renames);
        }
        _ => {}
    }
}

/// References `from.column` to become `to.column`.
struct Rename {
    from: String,
    to: Ident,
    columns: Vec<Ident>,
}

fn rename(expr: &mut Expr, renames: &[Rename]) {
    let Expr::CompoundIdentifier(parts) = expr else {
        return;
    };
    let [qualifier, column] = parts.as_mut_slice() else {
        return;
    };
    for rename in renames {
        if qualifier.value.eq_ignore_ascii_case(&rename.from)
            && rename
                .columns
                .iter()
                .any(|c| c.value.eq_ignore_ascii_case(&column.value))
        {
            *qualifier = rename.to.clone();
            return;
        }
    }
}

/// `u.*` becomes the unnest's columns under their new qualifier.
fn expand_wildcards(projection: &mut Vec<SelectItem>, rename: &Rename) {
    let mut expanded = Vec::with_capacity(projection.len());
    for item in projection.drain(..) {
        match &item {
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _)
                if name.to_string().eq_ignore_ascii_case(&rename.from) =>
            {
                for column in &rename.columns {
                    expanded.push(SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![
                        rename.to.clone(),
                        column.clone(),
                    ])));
                }
            }
            _ => expanded.push(item),
        }
    }
    *projection = expanded;
}

/// Where a relation sits in a FROM list: `from[table]`, and its join `join` if any.
#[derive(Clone, Copy, PartialEq)]
struct Position {
    table: usize,
    join: Option<usize>,
}

/// Rewrites the first lateral relation of `from` that needs it; the rename it implies.
fn rewrite_one(from: &mut Vec<TableWithJoins>) -> Option<Rename> {
    let positions: Vec<Position> = from
        .iter()
        .enumerate()
        .flat_map(|(table, t)| {
            std::iter::once(Position { table, join: None }).chain((0..t.joins.len()).map(
                move |j| Position {
                    table,
                    join: Some(j),
                },
            ))
        })
        .collect();
    for (index, &position) in positions.iter().enumerate() {
        let Some(lateral) = Lateral::of(factor(from, position)) else {
            continue;
        };
        let references = lateral.references();
        if references.is_none() {
            if !lateral.with_ordinality {
                continue;
            }
            *factor_mut(from, position) = derived(lateral.select(None, None)?, &lateral.alias);
            continue;
        }
        if !joined_by_cross_join(from, position) {
            continue;
        }
        let earlier = &positions[..index];
        let Some(target) = referenced_relation(from, earlier, references.as_deref()?) else {
            continue;
        };
        if !keeps_rows(from, target, position) {
            continue;
        }
        let name = known_as(factor(from, target))?;
        let inner = factor(from, target).clone();
        *factor_mut(from, target) = derived(lateral.select(Some(&name), Some(inner))?, &name);
        remove(from, position);
        return Some(Rename {
            from: lateral.alias.value.clone(),
            to: name,
            columns: lateral.column_names(),
        });
    }
    None
}

/// The columns PostgreSQL names for `unnest(array) [WITH ORDINALITY] [AS alias[(names)]]`:
/// the listed names, else the alias, else `unnest`; the ordinality column `ordinality` unless
/// the list names it.
pub fn unnest_column_names(alias: Option<&TableAlias>, with_ordinality: bool) -> Vec<Ident> {
    let listed = alias.map(|a| a.columns.as_slice()).unwrap_or_default();
    let named = |i: usize, default: Ident| listed.get(i).map_or(default, |c| c.name.clone());
    let element = alias.map_or_else(|| Ident::new("unnest"), |a| a.name.clone());
    let mut names = vec![named(0, element)];
    if with_ordinality {
        names.push(named(1, Ident::new("ordinality")));
    }
    names
}

/// A relation whose columns are expressions over one row: `unnest(array)` (one row per
/// element), or a derived table without FROM (`(SELECT f(x) AS a) a`, which `table_args`
/// makes of a scalar function in FROM).
struct Lateral {
    /// Each column's expression (set-returning for an unnest) and name.
    columns: Vec<(Expr, Ident)>,
    alias: Ident,
    /// An unnest `WITH ORDINALITY`: rewritten even without column references.
    with_ordinality: bool,
}

impl Lateral {
    fn of(factor: &TableFactor) -> Option<Lateral> {
        match factor {
            TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset: false,
                with_ordinality,
                ..
            } => {
                let [array] = array_exprs.as_slice() else {
                    return None;
                };
                Some(Lateral::unnest(array, alias.as_ref(), *with_ordinality))
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => Lateral::row(subquery, alias.as_ref()?),
            _ => None,
        }
    }

    fn unnest(array: &Expr, alias: Option<&TableAlias>, with_ordinality: bool) -> Lateral {
        let unnest = |expr: Expr| function_call("unnest", vec![expr]);
        let mut expressions = vec![unnest(array.clone())];
        if with_ordinality {
            expressions.push(unnest(function_call(ordinality::NAME, vec![array.clone()])));
        }
        Lateral {
            columns: expressions
                .into_iter()
                .zip(unnest_column_names(alias, with_ordinality))
                .collect(),
            alias: alias.map_or_else(|| Ident::new("unnest"), |a| a.name.clone()),
            with_ordinality,
        }
    }

    /// `(SELECT e1 AS a, e2 AS b) alias`: named items, no FROM or other clauses.
    fn row(subquery: &Query, alias: &TableAlias) -> Option<Lateral> {
        let SetExpr::Select(select) = subquery.body.as_ref() else {
            return None;
        };
        let plain = select.from.is_empty()
            && select.selection.is_none()
            && select.having.is_none()
            && subquery.with.is_none()
            && subquery.order_by.is_none()
            && subquery.limit_clause.is_none();
        if !plain {
            return None;
        }
        let columns = select
            .projection
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let (expr, name) = match item {
                    SelectItem::ExprWithAlias { expr, alias } => (expr, alias.clone()),
                    _ => return None,
                };
                let name = alias.columns.get(i).map_or(name, |c| c.name.clone());
                Some((expr.clone(), name))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Lateral {
            columns,
            alias: alias.name.clone(),
            with_ordinality: false,
        })
    }

    /// The qualifiers of the column references of its expressions (see [`qualifiers`]).
    fn references(&self) -> Option<Vec<String>> {
        let mut all: Vec<String> = self
            .columns
            .iter()
            .filter_map(|(expr, _)| qualifiers(expr))
            .flatten()
            .collect();
        all.sort();
        all.dedup();
        (!all.is_empty()).then_some(all)
    }

    fn column_names(&self) -> Vec<Ident> {
        self.columns.iter().map(|(_, name)| name.clone()).collect()
    }

    /// `SELECT [name.*,] e1 AS c1, ... [FROM relation]`.
    fn select(&self, name: Option<&Ident>, relation: Option<TableFactor>) -> Option<Query> {
        let mut query = parse_query("SELECT 1").ok()?;
        let select = select_mut(&mut query).ok()?;
        select.projection.clear();
        if let Some(name) = name {
            select.projection.push(SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(ObjectName::from(vec![name.clone()])),
                WildcardAdditionalOptions::default(),
            ));
        }
        for (expr, column) in &self.columns {
            select.projection.push(aliased(expr.clone(), &column.value));
        }
        if let Some(relation) = relation {
            select.from = vec![TableWithJoins {
                relation,
                joins: Vec::new(),
            }];
        }
        Some(query)
    }
}

/// `(subquery) AS name`.
fn derived(subquery: Query, name: &Ident) -> TableFactor {
    TableFactor::Derived {
        lateral: false,
        subquery: Box::new(subquery),
        alias: Some(TableAlias {
            explicit: true,
            name: name.clone(),
            columns: Vec::new(),
            at: None,
        }),
        sample: None,
    }
}

/// The qualifiers of the column references in `expr` (`None` when it has none); a bare
/// column counts as the empty qualifier.
fn qualifiers(expr: &Expr) -> Option<Vec<String>> {
    let mut found = Vec::new();
    let _ = visit_expressions(expr, |e| {
        match e {
            Expr::Identifier(_) => found.push(String::new()),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                found.push(parts[parts.len() - 2].value.to_lowercase());
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    found.sort();
    found.dedup();
    (!found.is_empty()).then_some(found)
}

/// The one earlier relation `qualifiers` name: by its alias or name, or the only earlier one
/// for bare columns.
fn referenced_relation(
    from: &[TableWithJoins],
    earlier: &[Position],
    qualifiers: &[String],
) -> Option<Position> {
    match qualifiers {
        [bare] if bare.is_empty() => match earlier {
            [only] => Some(*only),
            _ => None,
        },
        [qualifier] => earlier.iter().copied().find(|p| {
            known_as(factor(from, *p)).is_some_and(|n| n.value.eq_ignore_ascii_case(qualifier))
        }),
        _ => None,
    }
}

fn known_as(factor: &TableFactor) -> Option<Ident> {
    match factor {
        TableFactor::Table { alias, name, .. } => alias
            .as_ref()
            .map(|a| a.name.clone())
            .or_else(|| name.0.last().and_then(|p| p.as_ident().cloned())),
        TableFactor::Derived { alias, .. } => alias.as_ref().map(|a| a.name.clone()),
        _ => None,
    }
}

fn factor(from: &[TableWithJoins], position: Position) -> &TableFactor {
    let table = &from[position.table];
    match position.join {
        None => &table.relation,
        Some(j) => &table.joins[j].relation,
    }
}

fn factor_mut(from: &mut [TableWithJoins], position: Position) -> &mut TableFactor {
    let table = &mut from[position.table];
    match position.join {
        None => &mut table.relation,
        Some(j) => &mut table.joins[j].relation,
    }
}

fn is_true(constraint: &JoinConstraint) -> bool {
    matches!(
        constraint,
        JoinConstraint::On(Expr::Value(v)) if v.value == Value::Boolean(true)
    )
}

/// Whether the unnest at `position` is joined as a cross product: a comma (alone in its
/// FROM item), `CROSS JOIN`, or an inner join `ON true`.
fn joined_by_cross_join(from: &[TableWithJoins], position: Position) -> bool {
    match position.join {
        None => position.table > 0 && from[position.table].joins.is_empty(),
        Some(j) => match &from[position.table].joins[j].join_operator {
            JoinOperator::CrossJoin(JoinConstraint::None) => true,
            JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::CrossJoin(c) => {
                is_true(c)
            }
            _ => false,
        },
    }
}

/// Whether every row of `target` reaches the unnest at `position` at most once and none is
/// made up: `target` is not on the NULL side of an outer join, and no RIGHT or FULL join
/// lies between them.
fn keeps_rows(from: &[TableWithJoins], target: Position, position: Position) -> bool {
    let inner = |join: &Join| {
        matches!(
            join.join_operator,
            JoinOperator::Join(_)
                | JoinOperator::Inner(_)
                | JoinOperator::CrossJoin(_)
                | JoinOperator::Left(_)
                | JoinOperator::LeftOuter(_)
        )
    };
    let joins = &from[target.table].joins;
    if let Some(j) = target.join
        && !matches!(
            joins[j].join_operator,
            JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_)
        )
    {
        return false;
    }
    let later_joins = match (target.table == position.table, position.join) {
        (true, Some(end)) => &joins[target.join.map_or(0, |j| j + 1)..end],
        _ => &joins[target.join.map_or(0, |j| j + 1)..],
    };
    later_joins.iter().all(inner)
}

fn remove(from: &mut Vec<TableWithJoins>, position: Position) {
    match position.join {
        None => {
            from.remove(position.table);
        }
        Some(j) => {
            from[position.table].joins.remove(j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::template::parse_query;

    fn rewritten(sql: &str) -> String {
        let mut query = parse_query(sql).expect("parses");
        super::rewrite(&mut query);
        query.to_string()
    }

    #[test]
    fn lateral_unnest_with_ordinality_joins_its_relation() {
        assert_eq!(
            rewritten(
                "SELECT i.indexrelid, k, u.a FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 CROSS JOIN unnest(i.indkey) WITH ORDINALITY u(a, k) ORDER BY u.k"
            ),
            "SELECT i.indexrelid, k, i.a FROM (SELECT i.*, unnest(i.indkey) AS \"a\", \
             unnest(__kura_ordinals(i.indkey)) AS \"k\" FROM pg_index i) AS i \
             JOIN pg_class c ON c.oid = i.indexrelid ORDER BY i.k"
        );
    }

    #[test]
    fn scalar_functions_over_an_earlier_relation_join_it() {
        assert_eq!(
            rewritten(
                "SELECT c.relname, p.amcanorder FROM pg_class c \
                 CROSS JOIN (SELECT has_property(c.relam, 'can_order') AS amcanorder) p"
            ),
            "SELECT c.relname, c.amcanorder FROM (SELECT c.*, \
             has_property(c.relam, 'can_order') AS \"amcanorder\" FROM pg_class c) AS c"
        );
    }

    #[test]
    fn comma_joined_unnest_of_a_bare_column() {
        assert_eq!(
            rewritten("SELECT x FROM t, unnest(arr) AS x"),
            "SELECT x FROM (SELECT t.*, unnest(arr) AS \"x\" FROM t) AS t"
        );
    }

    #[test]
    fn constant_arrays_with_ordinality_become_a_derived_table() {
        assert_eq!(
            rewritten("SELECT * FROM unnest(ARRAY['a', 'b']) WITH ORDINALITY"),
            "SELECT * FROM (SELECT unnest(ARRAY['a', 'b']) AS \"unnest\", \
             unnest(__kura_ordinals(ARRAY['a', 'b'])) AS \"ordinality\") AS unnest"
        );
    }

    #[test]
    fn outer_joins_that_would_change_rows_are_left_alone() {
        for sql in [
            "SELECT * FROM a RIGHT JOIN t ON a.id = t.id CROSS JOIN unnest(a.arr) AS x",
            "SELECT * FROM t LEFT JOIN unnest(t.arr) AS x ON true",
            "SELECT * FROM t FULL JOIN b ON t.id = b.id CROSS JOIN unnest(t.arr) AS x",
            "SELECT * FROM unnest(ARRAY[1, 2]) AS x",
        ] {
            let unchanged = parse_query(sql).expect("parses").to_string();
            assert_eq!(rewritten(sql), unchanged);
        }
    }
}
