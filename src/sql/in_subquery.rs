//! `x [NOT] IN (SELECT ...)` outside a filter's top-level conditions: in a select list, ORDER
//! BY, or under OR or CASE in a WHERE, as Grafana's table list writes it
//! (`ORDER BY CASE WHEN quote_ident(table_schema) IN (SELECT ...) THEN 0 ELSE 1 END`).
//! DataFusion turns IN subqueries into semi joins only where they are conditions of a filter;
//! elsewhere it cannot run them. There the subquery collects its values into an array and
//! `__kura_in_array` tests membership with IN's three-valued logic:
//!
//! ```sql
//! x IN (SELECT e FROM t WHERE c)  →  __kura_in_array((SELECT array_agg(e) FROM t WHERE c), x)
//! ```
//!
//! A subquery with grouping, DISTINCT, ORDER BY, LIMIT, set operations or an aggregate or
//! set-returning select item is read whole instead: `(SELECT array_agg(v) FROM (...) AS s(v))`.
//! The plain form keeps a correlated subquery plannable (a correlated aggregate).
//!
//! Invariant: IN subqueries that are conditions of a WHERE or HAVING (joined by AND) stay as
//! they are, for DataFusion's semi and anti joins; nothing else changes.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, OrderByKind, Query, SelectItem, SetExpr, UnaryOperator, VisitMut,
    VisitorMut,
};

use super::template::{
    aggregate_single_item, function_call, parse_query, rewrite_queries_bottom_up,
};
use crate::query::in_array;

/// Rewrites the IN subqueries of `query` and its subqueries that DataFusion cannot run.
pub fn rewrite(query: &mut Query) {
    rewrite_queries_bottom_up(query, in_query);
}

fn in_query(query: &mut Query) {
    if let Some(order_by) = &mut query.order_by
        && let OrderByKind::Expressions(items) = &mut order_by.kind
    {
        for item in items {
            replace_within(&mut item.expr);
        }
    }
    in_set_expr(query.body.as_mut());
}

fn in_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item
                {
                    replace_within(expr);
                }
            }
            if let Some(selection) = &mut select.selection {
                in_condition(selection);
            }
            if let Some(having) = &mut select.having {
                in_condition(having);
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            in_set_expr(left);
            in_set_expr(right);
        }
        _ => {}
    }
}

/// A filter: its AND-ed IN subqueries stay; any other is rewritten.
fn in_condition(condition: &mut Expr) {
    match condition {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            in_condition(left);
            in_condition(right);
        }
        Expr::Nested(inner) => in_condition(inner),
        Expr::InSubquery { expr, .. } => replace_within(expr),
        other => replace_within(other),
    }
}

/// Rewrites the IN subqueries of `expr`, but not those of the queries inside it (each query
/// is rewritten on its own).
fn replace_within(expr: &mut Expr) {
    struct Replace {
        depth: usize,
    }
    impl VisitorMut for Replace {
        type Break = ();
        fn pre_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if self.depth == 0
                && let Expr::InSubquery {
                    expr: needle,
                    subquery,
                    negated,
                } = expr
            {
                let test = function_call(
                    in_array::NAME,
                    vec![collected(subquery), needle.as_ref().clone()],
                );
                *expr = if *negated {
                    Expr::UnaryOp {
                        op: UnaryOperator::Not,
                        expr: Box::new(test),
                    }
                } else {
                    test
                };
            }
            ControlFlow::Continue(())
        }
    }
    let _ = expr.visit(&mut Replace { depth: 0 });
}

/// `(SELECT array_agg(...) ...)`: the values of `subquery` as one array.
fn collected(subquery: &Query) -> Expr {
    if let Some(plain) = plain_collected(subquery) {
        return plain;
    }
    let whole =
        parse_query("SELECT array_agg(__kura_value) FROM (SELECT 1) AS __kura_in(__kura_value)")
            .ok()
            .and_then(|mut query| {
                let SetExpr::Select(select) = query.body.as_mut() else {
                    return None;
                };
                let datafusion::sql::sqlparser::ast::TableFactor::Derived {
                    subquery: inner, ..
                } = &mut select.from.first_mut()?.relation
                else {
                    return None;
                };
                **inner = subquery.clone();
                Some(query)
            });
    match whole {
        Some(query) => Expr::Subquery(Box::new(query)),
        // The template is fixed and parses; keep the statement as written otherwise.
        None => Expr::Subquery(Box::new(subquery.clone())),
    }
}

fn plain_collected(subquery: &Query) -> Option<Expr> {
    let mut query = subquery.clone();
    aggregate_single_item(&mut query, "array_agg").then(|| Expr::Subquery(Box::new(query)))
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
    fn select_lists_and_order_by_test_arrays() {
        assert_eq!(
            rewritten(
                "SELECT CASE WHEN s IN (SELECT n FROM t WHERE t.k = u.k) THEN 0 END FROM u \
                 ORDER BY s NOT IN (SELECT DISTINCT n FROM t)"
            ),
            "SELECT CASE WHEN __kura_in_array((SELECT array_agg(n) FROM t WHERE t.k = u.k), s) \
             THEN 0 END FROM u ORDER BY NOT __kura_in_array((SELECT array_agg(__kura_value) \
             FROM (SELECT DISTINCT n FROM t) AS __kura_in (__kura_value)), s)"
        );
    }

    #[test]
    fn filter_conditions_stay_semi_joins() {
        let sql = "SELECT a FROM u WHERE a IN (SELECT n FROM t) AND (b NOT IN (SELECT m FROM t))";
        let unchanged = parse_query(sql).expect("parses").to_string();
        assert_eq!(rewritten(sql), unchanged);
        assert_eq!(
            rewritten("SELECT a FROM u WHERE a = 1 OR a IN (SELECT max(n) FROM t)"),
            "SELECT a FROM u WHERE a = 1 OR __kura_in_array((SELECT array_agg(__kura_value) \
             FROM (SELECT max(n) FROM t) AS __kura_in (__kura_value)), a)"
        );
    }

    #[test]
    fn nested_queries_are_rewritten_on_their_own() {
        assert_eq!(
            rewritten("SELECT (SELECT count(*) FROM t WHERE t.n IN (SELECT 1)) FROM u"),
            "SELECT (SELECT count(*) FROM t WHERE t.n IN (SELECT 1)) FROM u"
        );
    }
}
