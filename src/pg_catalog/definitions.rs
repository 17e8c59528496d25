//! `kura_definitions`: the SQL that recreates every table and view of the database — each
//! table's CREATE TABLE (columns, NOT NULL, defaults, primary key, `USING TIMESERIES`, GridDB's
//! partition expiry and its hash, interval or interval-hash partitioning), then its secondary
//! indexes, then the views. `kura export` writes these statements and `kura import` runs
//! them on another server.
//!
//! Invariant: running a table's statements in `position` order on an empty database yields a
//! table whose definition equals the original's (column types by their storage names, which
//! read back exactly), except for partitions removed by `ALTER TABLE ... DROP PARTITION`,
//! which are data, not definition. Views come after the tables, each after the views it
//! reads (`position` counts them in that order).

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::visit_relations;

use super::Source;
use super::relations::{column_list, quote_ident, table_defs};
use super::table::{Kind, Kind::*, Rows};
use crate::error::Result;
use crate::sql::names::relation_name;
use crate::storage::TableDef;
use crate::storage::ViewDef;
use crate::storage::partitioning::{HashSpec, Partitioning};

pub const DEFINITIONS: &[(&str, Kind)] = &[
    ("object_type", Text),
    ("object_name", Text),
    ("table_name", Text),
    ("position", Int4),
    ("statement", Text),
];

pub fn definitions(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(DEFINITIONS);
    for def in table_defs(source) {
        let mut push = |object_type: &str, object_name: &str, position: i32, statement: String| {
            rows.push(vec![
                ("object_type", object_type.into()),
                ("object_name", object_name.into()),
                ("table_name", def.name.as_str().into()),
                ("position", position.into()),
                ("statement", statement.into()),
            ]);
        };
        push("table", &def.name, 0, create_table(&def));
        let secondary = def.indexes.iter().filter(|i| !i.primary);
        for (position, index) in (1..).zip(secondary) {
            let statement = format!(
                "CREATE {}INDEX {} ON {} ({})",
                if index.unique { "UNIQUE " } else { "" },
                quote_ident(&index.name),
                quote_ident(&def.name),
                column_list(&def, &index.columns)
            );
            push("index", &index.name, position, statement);
        }
    }
    for (position, view) in (0..).zip(creation_order(source.catalog.views())) {
        let columns = if view.columns.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = view.columns.iter().map(|c| quote_ident(c)).collect();
            format!(" ({})", names.join(", "))
        };
        rows.push(vec![
            ("object_type", "view".into()),
            ("object_name", view.name.as_str().into()),
            ("table_name", view.name.as_str().into()),
            ("position", position.into()),
            (
                "statement",
                format!(
                    "CREATE VIEW {}{columns} AS {}",
                    quote_ident(&view.name),
                    view.sql
                )
                .into(),
            ),
        ]);
    }
    Ok(rows)
}

/// The views in an order they can be created in: each after the views it reads.
fn creation_order(views: Vec<Arc<ViewDef>>) -> Vec<Arc<ViewDef>> {
    let names: HashSet<String> = views.iter().map(|v| v.name.clone()).collect();
    let mut waiting: Vec<(Arc<ViewDef>, HashSet<String>)> = views
        .into_iter()
        .map(|view| {
            let mut reads = HashSet::new();
            for statement in crate::sql::parse_sql(&view.sql).unwrap_or_default() {
                let _ = visit_relations(&statement, |name| {
                    if let Ok(name) = relation_name(name)
                        && names.contains(&name)
                        && name != view.name
                    {
                        reads.insert(name);
                    }
                    ControlFlow::<()>::Continue(())
                });
            }
            (view, reads)
        })
        .collect();
    let mut ordered = Vec::with_capacity(waiting.len());
    while !waiting.is_empty() {
        let created: HashSet<&str> = ordered
            .iter()
            .map(|v: &Arc<ViewDef>| v.name.as_str())
            .collect();
        let ready = waiting
            .iter()
            .position(|(_, reads)| reads.iter().all(|r| created.contains(r.as_str())))
            // A cycle cannot be created; should one appear, keep the rest in name order.
            .unwrap_or(0);
        ordered.push(waiting.remove(ready).0);
    }
    ordered
}

fn column_name(def: &TableDef, column: usize) -> String {
    def.columns
        .get(column)
        .map_or_else(|| "?".to_string(), |c| quote_ident(&c.name))
}

/// The CREATE TABLE statement of `def`.
pub fn create_table(def: &TableDef) -> String {
    let mut parts: Vec<String> = def
        .columns
        .iter()
        .map(|column| {
            let mut text = format!("{} {}", quote_ident(&column.name), column.ty.storage_name());
            if !column.nullable {
                text.push_str(" NOT NULL");
            }
            if let Some(default) = &column.default {
                text.push_str(" DEFAULT ");
                text.push_str(default);
            }
            text
        })
        .collect();
    if !def.primary_key.is_empty() {
        parts.push(format!(
            "PRIMARY KEY ({})",
            column_list(def, &def.primary_key)
        ));
    }
    let mut out = format!(
        "CREATE TABLE {} ({})",
        quote_ident(&def.name),
        parts.join(", ")
    );
    let placement = &def.placement;
    if placement.timeseries {
        out.push_str(" USING TIMESERIES");
    }
    if let Some(expiry) = &placement.expiry {
        out.push_str(&format!(
            " WITH (expiration_type='PARTITION', expiration_time={}, expiration_time_unit='{}')",
            expiry.time,
            expiry.unit.name()
        ));
    }
    match &placement.partitioning {
        Partitioning::Single => {}
        Partitioning::Hash(hash) => out.push_str(&hash_clause(def, hash, "")),
        Partitioning::Interval(interval) => {
            out.push_str(&format!(
                " PARTITION BY RANGE ({}) EVERY ({}",
                column_name(def, interval.column),
                interval.width
            ));
            if let Some(unit) = interval.unit {
                out.push_str(", ");
                out.push_str(unit.name());
            }
            out.push(')');
            if let Some(hash) = &interval.subpartition {
                out.push_str(&hash_clause(def, hash, "SUB"));
            }
        }
    }
    out
}

fn hash_clause(def: &TableDef, hash: &HashSpec, prefix: &str) -> String {
    format!(
        " {prefix}PARTITION BY HASH ({}) {prefix}PARTITIONS {}",
        column_name(def, hash.column),
        hash.count
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, sql: &str) -> Arc<ViewDef> {
        Arc::new(ViewDef {
            name: name.into(),
            sql: sql.into(),
            columns: Vec::new(),
        })
    }

    #[test]
    fn views_come_after_the_views_they_read() {
        let views = vec![
            view("a_top", "SELECT * FROM b_middle JOIN \"C_base\" ON true"),
            view(
                "b_middle",
                "SELECT x FROM \"C_base\" WHERE x IN (SELECT y FROM t)",
            ),
            view("C_base", "SELECT 1 AS x"),
            view("d_alone", "SELECT * FROM t"),
        ];
        let names: Vec<String> = creation_order(views)
            .iter()
            .map(|v| v.name.clone())
            .collect();
        assert_eq!(names, ["C_base", "b_middle", "a_top", "d_alone"]);
    }
}
