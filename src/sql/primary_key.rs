//! `ALTER TABLE ... ADD [CONSTRAINT name] PRIMARY KEY (columns)` on a table that has none.
//!
//! Invariant: the key is added only if every live row version has non-NULL, distinct key
//! values (distinct within each data partition, the scope primary keys have everywhere, see
//! `TableDef::unique_key`). The check runs inside `change_catalog`'s preparation, with commits
//! paused, so no commit can slip a duplicate in between the check and the new definition;
//! transactions still open are checked against the new key when they commit.

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::PrimaryKeyConstraint;

use super::exec::Exec;
use super::names::normalize;
use super::placement::check_rowkey_constraint;
use crate::error::{KuraError, Result, sqlstate};
use crate::storage::chunk::TS_LIVE;
use crate::storage::key_codec::KeyCodec;
use crate::storage::partition::key_values;
use crate::storage::{IndexDef, Table, TableDef};
use datafusion::common::ScalarValue;

impl Exec<'_> {
    pub(super) async fn add_primary_key(
        &self,
        table: &std::sync::Arc<Table>,
        constraint: &PrimaryKeyConstraint,
    ) -> Result<()> {
        let def = table.def();
        let mut columns = Vec::with_capacity(constraint.columns.len());
        for column in &constraint.columns {
            let name = super::ddl::index_column_name(&column.column.expr)?;
            let position = def
                .column_index(&name)
                .ok_or_else(|| KuraError::undefined_column(&name))?;
            if columns.contains(&position) {
                return Err(KuraError::new(
                    sqlstate::DUPLICATE_COLUMN,
                    format!("column \"{name}\" appears twice in primary key constraint"),
                ));
            }
            columns.push(position);
        }
        if columns.is_empty() || columns.len() > 16 {
            return Err(KuraError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                "a primary key has 1 to 16 columns",
            ));
        }
        let index_name = match &constraint.name {
            Some(name) => normalize(name),
            None => format!("{}_pkey", def.name),
        };
        let rowkey_constraint = self.db.options.partitioning_rowkey_constraint;
        let catalog = &self.db.catalog;
        self.change_table(table, |current| {
            if !current.primary_key.is_empty() {
                return Err(super::ddl::multiple_primary_keys(&current.name));
            }
            catalog.check_new_index(&index_name)?;
            check_rowkey_constraint(
                current.partitioning(),
                &current.columns,
                &columns,
                rowkey_constraint,
            )?;
            check_existing_rows(table, current, &columns, &index_name)?;
            let mut table_columns = current.columns.clone();
            for position in &columns {
                table_columns[*position].nullable = false;
            }
            let mut indexes = current.indexes.clone();
            indexes.push(IndexDef {
                id: current.next_index_id(),
                name: index_name.clone(),
                columns: columns.clone(),
                unique: true,
                primary: true,
            });
            Ok(TableDef::new(
                current.id,
                current.name.clone(),
                table_columns,
                columns.clone(),
                indexes,
            )
            .with_placement(current.placement.clone()))
        })
        .await
    }
}

/// Fails when a live row version has a NULL in the key columns or shares its key with another
/// live version of the same data partition. Deleted versions do not count.
fn check_existing_rows(
    table: &Table,
    def: &TableDef,
    columns: &[usize],
    index_name: &str,
) -> Result<()> {
    let codec = KeyCodec::new(
        columns
            .iter()
            .map(|c| def.schema().field(*c).data_type().clone())
            .collect(),
    )?;
    for partition in table.partitions().iter() {
        let mut seen = HashSet::new();
        for chunk in partition.snapshot().chunks() {
            let mut offset = 0;
            for segment in chunk.segments()?.iter() {
                let segment = def.widen(segment)?;
                let keys = codec.keys(&segment, columns)?;
                for (row, key) in keys.into_iter().enumerate() {
                    if chunk.end(offset + row) != TS_LIVE {
                        continue;
                    }
                    match columns.iter().find(|c| segment.column(**c).is_null(row)) {
                        Some(null) => {
                            return Err(KuraError::new(
                                sqlstate::NOT_NULL_VIOLATION,
                                format!(
                                    "column \"{}\" of relation \"{}\" contains null values",
                                    def.columns[*null].name, def.name
                                ),
                            ));
                        }
                        None => {
                            if !seen.insert(key) {
                                let values = key_values(&segment, columns, row)?;
                                return Err(duplicated(def, columns, index_name, &values));
                            }
                        }
                    }
                }
                offset += segment.num_rows();
            }
        }
    }
    Ok(())
}

fn duplicated(
    def: &TableDef,
    columns: &[usize],
    index_name: &str,
    values: &[ScalarValue],
) -> KuraError {
    let names: Vec<&str> = columns
        .iter()
        .map(|c| def.columns[*c].name.as_str())
        .collect();
    let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    KuraError::new(
        sqlstate::UNIQUE_VIOLATION,
        format!("could not create unique index \"{index_name}\""),
    )
    .with_detail(format!(
        "Key ({})=({}) is duplicated.",
        names.join(", "),
        values.join(", ")
    ))
}
