//! The size functions tools show next to tables (psql `\dt+`, `\di+`, `\l+`, DBeaver, pgAdmin):
//! `pg_relation_size`, `pg_table_size`, `pg_indexes_size`, `pg_total_relation_size` and
//! `pg_database_size`.
//!
//! Kura keeps its data in memory, so a size is the memory a relation's rows (with their
//! version stamps) or index entries occupy now, measured when the function runs; files on
//! disk (log, checkpoints) are not part of any relation's size.
//!
//! Invariant: `pg_total_relation_size(t) = pg_table_size(t) + pg_indexes_size(t)`, and the
//! database size is the sum of its tables' total sizes.

use std::sync::{Arc, Weak};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::ScalarUDF;

use super::functions::{error, function, int_arg, oid_arg, relation_oid, text_arg};
use super::oids::{self, Relation};
use crate::error::{KuraError, sqlstate};
use crate::query::Engine;
use crate::storage::{Catalog, Table};

/// What a size function measures of a table.
#[derive(Clone, Copy)]
enum Part {
    /// The relation itself: a table's rows, or one index's entries.
    Relation,
    /// Every index of a table.
    Indexes,
    /// Rows and indexes.
    Total,
}

/// The relation an argument names: an oid, or a name as `'t'::regclass` reads it.
fn relation_arg(catalog: &Catalog, value: &ScalarValue) -> DfResult<Option<i32>> {
    if let Some(oid) = oid_arg(value) {
        return Ok(Some(oid));
    }
    match text_arg(value) {
        None => Ok(None),
        Some(name) => relation_oid(catalog, &name)
            .map(Some)
            .ok_or_else(|| error(KuraError::undefined_table(&name))),
    }
}

/// The bytes of `part` of relation `oid`; `None` when no relation has that oid. Only what
/// `part` needs is measured: index sizes walk every entry.
fn relation_bytes(catalog: &Catalog, oid: i32, part: Part) -> Option<i64> {
    let bytes = match oids::decode(oid)? {
        Relation::Table(id) => {
            let table = catalog.table_by_id(id)?;
            match part {
                Part::Relation => table.data_bytes(),
                Part::Indexes => table.index_bytes(|_| true),
                Part::Total => table_bytes(&table),
            }
        }
        Relation::Index(table, index) => match part {
            Part::Relation | Part::Total => {
                catalog.table_by_id(table)?.index_bytes(|id| id == index)
            }
            Part::Indexes => 0,
        },
        Relation::Constraint(..) => return None,
    };
    Some(i64::try_from(bytes).unwrap_or(i64::MAX))
}

/// A table's rows and indexes.
fn table_bytes(table: &Table) -> usize {
    table.data_bytes() + table.index_bytes(|_| true)
}

fn database_bytes(catalog: &Catalog) -> i64 {
    let total: usize = catalog.tables().iter().map(|t| table_bytes(t)).sum();
    i64::try_from(total).unwrap_or(i64::MAX)
}

fn size_function(
    name: &'static str,
    arities: &[usize],
    catalog: &Arc<Catalog>,
    part: Part,
) -> ScalarUDF {
    let catalog = catalog.clone();
    function(name, arities, DataType::Int64, move |a| {
        let Some(oid) = relation_arg(&catalog, &a[0])? else {
            return Ok(ScalarValue::Int64(None));
        };
        // Only the main fork holds anything; the free-space and visibility maps do not exist.
        let fork = a.get(1).and_then(text_arg);
        if fork.as_deref().is_some_and(|f| f != "main") {
            return Ok(ScalarValue::Int64(Some(0)));
        }
        Ok(ScalarValue::Int64(relation_bytes(&catalog, oid, part)))
    })
}

/// The size functions of a database whose catalog is `catalog`; `pg_database_size` also
/// measures the server's other databases through `engine`.
pub fn functions(catalog: &Arc<Catalog>, engine: Weak<Engine>) -> Vec<ScalarUDF> {
    vec![
        size_function("pg_relation_size", &[1, 2], catalog, Part::Relation),
        size_function("pg_table_size", &[1], catalog, Part::Relation),
        size_function("pg_indexes_size", &[1], catalog, Part::Indexes),
        size_function("pg_total_relation_size", &[1], catalog, Part::Total),
        function("pg_database_size", &[1], DataType::Int64, move |a| {
            let engine = engine
                .upgrade()
                .ok_or_else(|| error(KuraError::internal("the engine is shutting down")))?;
            let found = match (&a[0], int_arg(&a[0])) {
                (_, Some(oid)) => engine
                    .databases()
                    .into_iter()
                    .find(|db| i64::from(oids::database(db.id)) == oid),
                (value, None) => match text_arg(value) {
                    None => return Ok(ScalarValue::Int64(None)),
                    Some(name) => engine.database(&name),
                },
            };
            let db = found.ok_or_else(|| {
                let shown = text_arg(&a[0]).unwrap_or_default();
                error(KuraError::new(
                    sqlstate::INVALID_CATALOG_NAME,
                    format!("database \"{shown}\" does not exist"),
                ))
            })?;
            Ok(ScalarValue::Int64(Some(database_bytes(&db.catalog))))
        }),
    ]
}
