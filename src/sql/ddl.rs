//! DDL: CREATE/DROP TABLE, CREATE TABLE AS, ALTER TABLE ADD/RENAME COLUMN (ADD PRIMARY KEY is
//! in `primary_key`), CREATE/DROP INDEX,
//! CREATE/DROP VIEW.
//!
//! DDL takes effect immediately and is not undone by ROLLBACK (GridDB's model; documented in
//! docs/ARCHITECTURE.md). Every change goes through [`Database::change_catalog`]: validated
//! with commits paused, logged, applied, and durable before the command completes. A table's
//! definition is logged whole after each change.
//!
//! [`Database::change_catalog`]: crate::query::Database::change_catalog

use std::collections::HashSet;

use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    AlterTable, AlterTableOperation, ColumnDef as AstColumnDef, ColumnOption, CreateIndex,
    CreateTable, CreateView, Expr as AstExpr, ObjectName, ObjectType, TableConstraint,
};

use super::Outcome;
use super::exec::Exec;
use super::names::{normalize, relation_name};
use super::placement::table_placement;
use super::template::{aliased, parse_expr, select_mut};
use std::sync::Arc;

use crate::error::{KuraError, Result, sqlstate};
use crate::storage::stored::{StoredTable, StoredView};
use crate::storage::{ColumnDef, IndexDef, Table, TableDef, ViewDef};
use crate::types::SqlType;
use crate::wal::CatalogChange;

impl Exec<'_> {
    pub async fn create_table(&self, create: &CreateTable) -> Result<Outcome> {
        reject_unsupported_create(create)?;
        let name = relation_name(&create.name)?;
        if self.db.catalog.relation_exists(&name) {
            if create.if_not_exists {
                return Ok(Outcome::done("CREATE TABLE")
                    .with_notice(format!("relation \"{name}\" already exists, skipping")));
            }
            return Err(KuraError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        if let Some(query) = &create.query {
            return self.create_table_as(&name, create, query).await;
        }
        let mut columns = Vec::with_capacity(create.columns.len());
        let mut primary_key = Vec::new();
        let mut seen = HashSet::new();
        for column in &create.columns {
            let (def, is_pk) = self.column_def(column)?;
            if !seen.insert(def.name.to_lowercase()) {
                return Err(KuraError::new(
                    sqlstate::DUPLICATE_COLUMN,
                    format!("column \"{}\" specified more than once", def.name),
                ));
            }
            if is_pk {
                if !primary_key.is_empty() {
                    return Err(multiple_primary_keys(&name));
                }
                primary_key.push(columns.len());
            }
            columns.push(def);
        }
        for constraint in &create.constraints {
            match constraint {
                TableConstraint::PrimaryKey(pk) => {
                    if !primary_key.is_empty() {
                        return Err(multiple_primary_keys(&name));
                    }
                    for column in &pk.columns {
                        let col_name = index_column_name(&column.column.expr)?;
                        let index = columns
                            .iter()
                            .position(|c: &ColumnDef| c.name == col_name)
                            .ok_or_else(|| {
                                KuraError::new(
                                    sqlstate::UNDEFINED_COLUMN,
                                    format!("column \"{col_name}\" named in key does not exist"),
                                )
                            })?;
                        primary_key.push(index);
                    }
                }
                other => {
                    return Err(KuraError::unsupported(format!(
                        "table constraint {other} is not supported (only PRIMARY KEY)"
                    )));
                }
            }
        }
        if primary_key.len() > 16 {
            return Err(KuraError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                "a primary key may have at most 16 columns",
            ));
        }
        for index in &primary_key {
            columns[*index].nullable = false;
        }
        if columns.len() > 1024 {
            return Err(KuraError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                "tables can have at most 1024 columns",
            ));
        }
        self.db.plan_defaults(&columns)?;
        let indexes = if primary_key.is_empty() {
            Vec::new()
        } else {
            vec![IndexDef {
                id: 1,
                name: format!("{name}_pkey"),
                columns: primary_key.clone(),
                unique: true,
                primary: true,
            }]
        };
        let placement = table_placement(
            create,
            &columns,
            &primary_key,
            self.db.options.partitioning_rowkey_constraint,
        )?;
        let max = self.db.options.limits.max_partitions;
        if let Some(hash) = placement.partitioning.hash()
            && hash.count as usize > max
        {
            return Err(KuraError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "{} hash partitions exceed the maximum of {max} data partitions per table (/sql/tablePartitioningMaxAssignNum)",
                    hash.count
                ),
            ));
        }
        let id = self.db.catalog.allocate_table_id();
        let def = TableDef::new(id, name, columns, primary_key, indexes).with_placement(placement);
        self.create_logged_table(&def).await?;
        Ok(Outcome::done("CREATE TABLE"))
    }

    fn column_def(&self, column: &AstColumnDef) -> Result<(ColumnDef, bool)> {
        let name = normalize(&column.name);
        let ty = SqlType::from_ast(&column.data_type)?;
        let mut nullable = true;
        let mut default = None;
        let mut is_pk = false;
        for option in &column.options {
            match &option.option {
                ColumnOption::Null => nullable = true,
                ColumnOption::NotNull => nullable = false,
                ColumnOption::Default(expr) => default = Some(expr.to_string()),
                ColumnOption::PrimaryKey(_) => is_pk = true,
                other => {
                    return Err(KuraError::unsupported(format!(
                        "column option {other} is not supported"
                    )));
                }
            }
        }
        let missing = ScalarValue::try_from(&ty.arrow_type())?;
        Ok((
            ColumnDef {
                name,
                ty,
                nullable,
                default,
                missing,
            },
            is_pk,
        ))
    }

    /// Creates the table `def` through the log.
    async fn create_logged_table(&self, def: &TableDef) -> Result<Arc<Table>> {
        let catalog = &self.db.catalog;
        self.db
            .change_catalog(|| {
                catalog.check_new_table(def)?;
                Ok(CatalogChange::PutTable(Box::new(StoredTable::from_def(
                    def,
                    &self.db.name,
                )?)))
            })
            .await?;
        catalog
            .table_by_id(def.id)
            .ok_or_else(|| KuraError::internal("created table vanished"))
    }

    /// Replaces the definition of `table` through the log with `change(current definition)`.
    pub(super) async fn change_table(
        &self,
        table: &Arc<Table>,
        change: impl FnOnce(&TableDef) -> Result<TableDef>,
    ) -> Result<()> {
        self.db
            .change_catalog(|| {
                if table.is_dropped() {
                    return Err(KuraError::undefined_table(&table.def().name));
                }
                let def = change(&table.def())?;
                Ok(CatalogChange::PutTable(Box::new(StoredTable::from_def(
                    &def,
                    &self.db.name,
                )?)))
            })
            .await
    }

    async fn create_table_as(
        &self,
        name: &str,
        create: &CreateTable,
        query: &datafusion::sql::sqlparser::ast::Query,
    ) -> Result<Outcome> {
        let plan = self.plan_query(query.clone()).await?;
        let (schema, batches) = self.collect(&plan).await?;
        let mut columns = Vec::with_capacity(schema.fields().len());
        for (i, field) in schema.fields().iter().enumerate() {
            let name = create
                .columns
                .get(i)
                .map(|c| normalize(&c.name))
                .unwrap_or_else(|| field.name().clone());
            let ty = SqlType::from_arrow(field.data_type())?;
            columns.push(ColumnDef {
                name,
                missing: ScalarValue::try_from(&ty.arrow_type())?,
                ty,
                nullable: true,
                default: None,
            });
        }
        let id = self.db.catalog.allocate_table_id();
        let def = TableDef::new(id, name.to_string(), columns, Vec::new(), Vec::new());
        let table = self.create_logged_table(&def).await?;
        let mut rows = 0;
        for batch in batches {
            let n = batch.num_rows();
            let stored = super::rows::conform(&def, batch.columns().to_vec(), n, self.zone())?;
            rows += n;
            if n > 0 {
                self.txn.writes.lock().insert(&table, stored, Vec::new())?;
            }
        }
        Ok(Outcome::counted("SELECT", rows))
    }

    pub async fn alter_table(&self, alter: &AlterTable) -> Result<Outcome> {
        let name = relation_name(&alter.name)?;
        let Some(table) = self.db.catalog.table(&name) else {
            if alter.if_exists {
                return Ok(Outcome::done("ALTER TABLE"));
            }
            return Err(self
                .db
                .table(&name, "alter")
                .err()
                .unwrap_or_else(|| KuraError::undefined_table(&name)));
        };
        for operation in &alter.operations {
            let def = table.def();
            match operation {
                AlterTableOperation::AddColumn {
                    if_not_exists,
                    column_def,
                    ..
                } => {
                    let (mut column, is_pk) = self.column_def(column_def)?;
                    if is_pk {
                        return Err(KuraError::unsupported(
                            "ADD COLUMN ... PRIMARY KEY is not supported",
                        ));
                    }
                    if def.column_index(&column.name).is_some() {
                        if *if_not_exists {
                            continue;
                        }
                        return Err(KuraError::new(
                            sqlstate::DUPLICATE_COLUMN,
                            format!(
                                "column \"{}\" of relation \"{name}\" already exists",
                                column.name
                            ),
                        ));
                    }
                    column.missing = self.evaluate_default(&column).await?;
                    let has_rows = table.partitions().iter().any(|p| p.stored_versions() > 0);
                    if !column.nullable && column.missing.is_null() && has_rows {
                        return Err(KuraError::new(
                            sqlstate::NOT_NULL_VIOLATION,
                            format!(
                                "column \"{}\" of relation \"{name}\" contains null values",
                                column.name
                            ),
                        ));
                    }
                    let mut columns = def.columns.clone();
                    columns.push(column.clone());
                    self.db.plan_defaults(&columns)?;
                    self.change_table(&table, |current| {
                        if current.column_index(&column.name).is_some() {
                            return Err(KuraError::new(
                                sqlstate::DUPLICATE_COLUMN,
                                format!(
                                    "column \"{}\" of relation \"{name}\" already exists",
                                    column.name
                                ),
                            ));
                        }
                        let mut columns = current.columns.clone();
                        columns.push(column);
                        Ok(current.with_columns(columns))
                    })
                    .await?;
                }
                AlterTableOperation::RenameColumn {
                    old_column_name,
                    new_column_name,
                } => {
                    let old = normalize(old_column_name);
                    let new = normalize(new_column_name);
                    self.change_table(&table, |current| {
                        let index = current
                            .column_index(&old)
                            .ok_or_else(|| KuraError::undefined_column(&old))?;
                        if current.column_index(&new).is_some() {
                            return Err(KuraError::new(
                                sqlstate::DUPLICATE_COLUMN,
                                format!("column \"{new}\" of relation \"{name}\" already exists"),
                            ));
                        }
                        let mut columns = current.columns.clone();
                        columns[index].name = new;
                        Ok(current.with_columns(columns))
                    })
                    .await?;
                }
                AlterTableOperation::AddConstraint {
                    constraint: TableConstraint::PrimaryKey(pk),
                    ..
                } => self.add_primary_key(&table, pk).await?,
                AlterTableOperation::DropPartitions { partitions, .. } => {
                    for value in partitions {
                        self.drop_partition(&table, value).await?;
                    }
                }
                other => {
                    return Err(KuraError::unsupported(format!(
                        "ALTER TABLE {other} is not supported"
                    )));
                }
            }
        }
        Ok(Outcome::done("ALTER TABLE"))
    }

    /// The value existing rows take for a new column: its default, evaluated once.
    async fn evaluate_default(&self, column: &ColumnDef) -> Result<ScalarValue> {
        let Some(sql) = &column.default else {
            return ScalarValue::try_from(&column.ty.arrow_type()).map_err(Into::into);
        };
        let mut query = super::template::parse_query("SELECT 1")?;
        let expr = parse_expr(&format!("CAST(({sql}) AS {})", column.ty.cast_name()))?;
        select_mut(&mut query)?.projection = vec![aliased(expr, "v")];
        let plan = self.plan_query(query).await?;
        let (_, batches) = self.collect(&plan).await?;
        let batch = batches
            .first()
            .ok_or_else(|| KuraError::internal("default produced no row"))?;
        let value = ScalarValue::try_from_array(batch.column(0), 0)?;
        Ok(value.cast_to(&column.ty.arrow_type())?)
    }

    pub async fn create_index(&self, create: &CreateIndex) -> Result<Outcome> {
        if create.unique {
            return Err(KuraError::unsupported(
                "UNIQUE indexes are not supported; declare a PRIMARY KEY instead",
            ));
        }
        if create.predicate.is_some() || !create.include.is_empty() {
            return Err(KuraError::unsupported(
                "partial and covering indexes are not supported",
            ));
        }
        let table_name = relation_name(&create.table_name)?;
        let table = self.db.table(&table_name, "index")?;
        let def = table.def();
        let mut columns = Vec::new();
        for column in &create.columns {
            let name = index_column_name(&column.column.expr)?;
            columns.push(
                def.column_index(&name)
                    .ok_or_else(|| KuraError::undefined_column(&name))?,
            );
        }
        if columns.is_empty() || columns.len() > 16 {
            return Err(KuraError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                "an index has 1 to 16 columns",
            ));
        }
        let index_name = match &create.name {
            Some(name) => relation_name(name)?,
            None => {
                let cols: Vec<&str> = columns
                    .iter()
                    .map(|c| def.columns[*c].name.as_str())
                    .collect();
                format!("{table_name}_{}_idx", cols.join("_"))
            }
        };
        if def.indexes.len() >= 1024 {
            return Err(KuraError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                "a table can have at most 1024 indexes",
            ));
        }
        let catalog = &self.db.catalog;
        let created = self
            .change_table(&table, |current| {
                catalog.check_new_index(&index_name)?;
                let mut indexes = current.indexes.clone();
                indexes.push(IndexDef {
                    id: current.next_index_id(),
                    name: index_name.clone(),
                    columns: columns.clone(),
                    unique: false,
                    primary: false,
                });
                Ok(current.with_indexes(indexes))
            })
            .await;
        match created {
            Err(e) if e.code == sqlstate::DUPLICATE_TABLE && create.if_not_exists => {
                Ok(Outcome::done("CREATE INDEX").with_notice(format!(
                    "relation \"{index_name}\" already exists, skipping"
                )))
            }
            Err(e) => Err(e),
            Ok(()) => Ok(Outcome::done("CREATE INDEX")),
        }
    }

    pub async fn create_view(&self, create: &CreateView) -> Result<Outcome> {
        if create.materialized {
            return Err(KuraError::unsupported(
                "materialized views are not supported",
            ));
        }
        let name = relation_name(&create.name)?;
        if create.if_not_exists && self.db.catalog.relation_exists(&name) {
            return Ok(Outcome::done("CREATE VIEW"));
        }
        if self.db.catalog.table(&name).is_some() {
            return Err(KuraError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        // Plan once now so a broken view is rejected at CREATE time.
        let plan = self.plan_query((*create.query).clone()).await?;
        let columns: Vec<String> = create.columns.iter().map(|c| normalize(&c.name)).collect();
        if columns.len() > plan.schema().fields().len() {
            return Err(KuraError::syntax(
                "CREATE VIEW specifies more column names than columns",
            ));
        }
        let view = ViewDef {
            name,
            sql: create.query.to_string(),
            columns,
        };
        let catalog = &self.db.catalog;
        self.db
            .change_catalog(|| {
                catalog.check_new_view(&view.name, create.or_replace)?;
                Ok(CatalogChange::PutView(StoredView::from_def(
                    &view,
                    &self.db.name,
                )))
            })
            .await?;
        Ok(Outcome::done("CREATE VIEW"))
    }

    pub async fn drop(
        &self,
        object_type: &ObjectType,
        if_exists: bool,
        names: &[ObjectName],
    ) -> Result<Outcome> {
        let (tag, mut notices) = (drop_tag(object_type)?, Vec::new());
        for name in names {
            let relation = relation_name(name)?;
            let catalog = &self.db.catalog;
            let result = match object_type {
                ObjectType::Table => {
                    self.db
                        .change_catalog(|| {
                            let table = catalog
                                .table(&relation)
                                .ok_or_else(|| KuraError::undefined_table(&relation))?;
                            let def = table.def();
                            Ok(CatalogChange::DropTable {
                                id: def.id,
                                name: def.name.clone(),
                            })
                        })
                        .await
                }
                ObjectType::View => {
                    self.db
                        .change_catalog(|| {
                            Ok(CatalogChange::DropView {
                                database: self.db.name.clone(),
                                name: catalog.view_key(&relation)?,
                            })
                        })
                        .await
                }
                ObjectType::Index => self.drop_index(&relation).await,
                _ => unreachable_drop(),
            };
            match result {
                Err(e)
                    if e.code == sqlstate::UNDEFINED_TABLE
                        || e.code == sqlstate::UNDEFINED_OBJECT =>
                {
                    let message =
                        format!("{} \"{relation}\" does not exist", tag[5..].to_lowercase());
                    if !if_exists {
                        return Err(KuraError::new(e.code, message));
                    }
                    notices.push(format!("{message}, skipping"));
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        let mut outcome = Outcome::done(tag);
        for notice in notices {
            outcome = outcome.with_notice(notice);
        }
        Ok(outcome)
    }

    async fn drop_index(&self, name: &str) -> Result<()> {
        let (table, index) = self.db.catalog.find_index(name).ok_or_else(|| {
            KuraError::new(
                sqlstate::UNDEFINED_OBJECT,
                format!("index \"{name}\" does not exist"),
            )
        })?;
        if index.primary {
            return Err(KuraError::new(
                "2BP01",
                format!(
                    "cannot drop index {name} because constraint {name} on table {} requires it",
                    table.def().name
                ),
            ));
        }
        self.change_table(&table, |current| {
            if !current.indexes.iter().any(|i| i.id == index.id) {
                return Err(KuraError::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!("index \"{name}\" does not exist"),
                ));
            }
            let indexes = current
                .indexes
                .iter()
                .filter(|i| i.id != index.id)
                .cloned()
                .collect();
            Ok(current.with_indexes(indexes))
        })
        .await
    }
}

fn unreachable_drop() -> Result<()> {
    Err(KuraError::unsupported("this DROP is not supported"))
}

fn drop_tag(object_type: &ObjectType) -> Result<&'static str> {
    Ok(match object_type {
        ObjectType::Table => "DROP TABLE",
        ObjectType::View => "DROP VIEW",
        ObjectType::Index => "DROP INDEX",
        other => {
            return Err(KuraError::unsupported(format!(
                "DROP {other} is not supported"
            )));
        }
    })
}

pub(super) fn multiple_primary_keys(table: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_TABLE_DEFINITION,
        format!("multiple primary keys for table \"{table}\" are not allowed"),
    )
}

pub(super) fn index_column_name(expr: &AstExpr) -> Result<String> {
    match expr {
        AstExpr::Identifier(ident) => Ok(normalize(ident)),
        AstExpr::CompoundIdentifier(parts) => parts
            .last()
            .map(normalize)
            .ok_or_else(|| KuraError::syntax("empty column name")),
        other => Err(KuraError::unsupported(format!(
            "index on expression {other} is not supported"
        ))),
    }
}

fn reject_unsupported_create(create: &CreateTable) -> Result<()> {
    if create.temporary {
        return Err(KuraError::unsupported("temporary tables are not supported"));
    }
    if create.like.is_some() || create.clone.is_some() {
        return Err(KuraError::unsupported(
            "CREATE TABLE LIKE/CLONE is not supported",
        ));
    }
    if create.inherits.is_some() || create.partition_of.is_some() {
        return Err(KuraError::unsupported(
            "table inheritance and PARTITION OF are not supported; use GridDB's PARTITION BY",
        ));
    }
    Ok(())
}
