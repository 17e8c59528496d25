//! The `xmin` system column of catalog relations (DataGrip reads `N.xmin` as the state number
//! of each object and compares `age(xmin)` to find what changed since it last looked).
//!
//! Catalog relations have no hidden columns, so the rewrite puts the catalog's transaction id
//! (`TxnManager::catalog_xid`, through [`CATALOG_XMIN`]) where a statement names `xmin` of one:
//! `alias.xmin` when `alias` names a catalog relation and nothing else, and a bare `xmin` when
//! every relation of the statement is a catalog relation. A select-list item keeps the column
//! name `xmin`.
//!
//! Invariant: a name that may refer to a user relation's column is left alone.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Query, SelectItem, SetExpr, Statement, TableFactor, VisitMut, VisitorMut,
    visit_expressions_mut,
};

use crate::query::functions::CATALOG_XMIN;
use crate::sql::template::function_call;

const XMIN: &str = "xmin";

/// Replaces references to catalog relations' `xmin` in `statement`.
pub fn rewrite(statement: &mut Statement) {
    let relations = Relations::of(statement);
    if relations.catalog.is_empty() {
        return;
    }
    let mut naming = NameProjectedXmin {
        relations: &relations,
    };
    let _ = statement.visit(&mut naming);
    let _ = visit_expressions_mut(statement, |expr| {
        if relations.is_catalog_xmin(expr) {
            *expr = function_call(CATALOG_XMIN, Vec::new());
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The names relations go by in a statement (aliases, or their own names), split into those
/// of catalog relations and all others (user tables, views, CTEs, derived tables).
#[derive(Default)]
struct Relations {
    catalog: HashSet<String>,
    other: HashSet<String>,
}

impl Relations {
    fn of(statement: &mut Statement) -> Relations {
        let mut collector = Relations::default();
        let _ = statement.visit(&mut collector);
        collector
    }

    fn is_catalog_xmin(&self, expr: &Expr) -> bool {
        match expr {
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [.., qualifier, column] if column.value.eq_ignore_ascii_case(XMIN) => {
                    let name = qualifier.value.to_lowercase();
                    self.catalog.contains(&name) && !self.other.contains(&name)
                }
                _ => false,
            },
            Expr::Identifier(column) => {
                column.value.eq_ignore_ascii_case(XMIN) && self.other.is_empty()
            }
            _ => false,
        }
    }
}

impl VisitorMut for Relations {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let own_name = name.0.last().map(|p| p.to_string().to_lowercase());
                let catalog = args.is_none() && super::rewrite::is_catalog_relation(name);
                let known_as = match alias {
                    Some(alias) => Some(alias.name.value.to_lowercase()),
                    None => own_name,
                };
                if let Some(known_as) = known_as {
                    if catalog {
                        self.catalog.insert(known_as);
                    } else {
                        self.other.insert(known_as);
                    }
                }
            }
            other => {
                let alias = match other {
                    TableFactor::Derived { alias, .. }
                    | TableFactor::UNNEST { alias, .. }
                    | TableFactor::Function { alias, .. }
                    | TableFactor::TableFunction { alias, .. } => alias.as_ref(),
                    _ => None,
                };
                // An unnamed one still has columns a bare `xmin` could mean.
                let known_as = alias.map_or_else(String::new, |a| a.name.value.to_lowercase());
                self.other.insert(known_as);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.other.insert(cte.alias.name.value.to_lowercase());
            }
        }
        ControlFlow::Continue(())
    }
}

/// Names a select-list item that is a catalog `xmin` reference `xmin`, as PostgreSQL does.
struct NameProjectedXmin<'a> {
    relations: &'a Relations,
}

impl VisitorMut for NameProjectedXmin<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(expr) = item
                    && self.relations.is_catalog_xmin(expr)
                {
                    *item = SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: Ident::new(XMIN),
                    };
                }
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .expect("parses")
            .remove(0);
        super::rewrite(&mut statement);
        statement.to_string()
    }

    #[test]
    fn qualified_xmin_of_a_catalog_relation_is_the_catalog_xid() {
        assert_eq!(
            rewritten("SELECT N.xmin AS s, nspname FROM pg_catalog.pg_namespace N"),
            "SELECT __kura_catalog_xmin() AS s, nspname FROM pg_catalog.pg_namespace N"
        );
        assert_eq!(
            rewritten("SELECT T.xmin FROM pg_class T WHERE age(T.xmin) < 5"),
            "SELECT __kura_catalog_xmin() AS xmin FROM pg_class T \
             WHERE age(__kura_catalog_xmin()) < 5"
        );
    }

    #[test]
    fn user_relations_keep_their_xmin() {
        let sql = "SELECT t.xmin, xmin FROM t JOIN pg_class c ON c.oid = t.id";
        assert_eq!(
            rewritten(sql),
            "SELECT t.xmin, xmin FROM t JOIN pg_class c ON c.oid = t.id"
        );
        let sql = "WITH c AS (SELECT 1 AS xmin) SELECT c.xmin FROM c, pg_class";
        assert_eq!(rewritten(sql), sql);
        let sql = "SELECT xmin FROM pg_class, (SELECT 1 AS xmin) AS d";
        assert_eq!(rewritten(sql), sql);
    }

    #[test]
    fn bare_xmin_over_catalog_relations_only() {
        assert_eq!(
            rewritten("SELECT xmin FROM pg_type"),
            "SELECT __kura_catalog_xmin() AS xmin FROM pg_type"
        );
    }
}
