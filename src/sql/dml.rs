//! INSERT (with ON CONFLICT and GridDB's INSERT OR REPLACE), UPDATE and DELETE.
//!
//! Rows to write are computed by DataFusion: INSERT uses DataFusion's own INSERT planning for
//! the source rows (column lists, defaults, casts, parameter types); UPDATE and DELETE run an
//! internal SELECT over the target table with its hidden row-id column. The rows found are
//! then locked and checked: a version changed after the snapshot fails the statement with
//! 40001 under REPEATABLE READ and restarts it on a new snapshot under READ COMMITTED.
//!
//! Invariants: a committed version is only ever replaced by the transaction holding its lock
//! (the primary-key value, or the row id for tables without a primary key); primary-key
//! uniqueness is checked at statement time and again at commit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, UInt64Array};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, ConflictTarget, Delete, Expr, FromTable, Ident, Insert,
    ObjectName, OnConflictAction, OnInsert, Query, SelectItem, SetExpr, SqliteOnConflict,
    Statement, TableFactor, TableObject, Update, UpdateTableFromKind,
};

use super::Outcome;
use super::exec::{Exec, restart};
use super::names::{normalize, relation_name};
use super::rows::conform;
use super::template::{
    aliased, column_ref, parse_expr, parse_query, quoted, select_from, select_mut,
};
use crate::error::{KuraError, Result, sqlstate};
use crate::query::database::TempGuard;
use crate::query::provider::KuraTable;
use crate::query::scan::ROW_ID_COLUMN;
use crate::storage::index::IndexKey;
use crate::storage::schema::duplicate_row;
use crate::storage::{PartitionKey, RowId, TS_LIVE, Table, TableDef};
use crate::txn::dropped_interval;
use crate::txn::{Isolation, LockKey};

/// What INSERT does when a row's primary key is taken.
#[derive(Debug, Clone)]
pub(super) enum OnConflict {
    Fail,
    Nothing,
    Replace,
    Update(Box<ConflictUpdate>),
}

/// The SET list and WHERE of ON CONFLICT DO UPDATE.
#[derive(Debug, Clone)]
pub(super) struct ConflictUpdate {
    assignments: Vec<Assignment>,
    selection: Option<Expr>,
}

/// A live version of a primary-key value.
#[derive(Debug, Clone, Copy)]
enum Existing {
    Private(usize),
    Base(RowId),
}

const SEQ_COLUMN: &str = "__kura_seq";

/// The table an UPDATE or DELETE changes and the internal query that finds its rows; the
/// row-id relation the query reads stays registered while this value lives.
pub struct DmlTarget {
    pub table: Arc<Table>,
    pub def: Arc<TableDef>,
    pub alias: String,
    pub query: Query,
    _relation: TempGuard,
}

impl Exec<'_> {
    pub async fn insert(&self, insert: &Insert, params: &ParamValues) -> Result<Outcome> {
        let TableObject::TableName(name) = &insert.table else {
            return Err(KuraError::unsupported(
                "INSERT INTO a table function is not supported",
            ));
        };
        let name = relation_name(name)?;
        let table = self.db.table(&name, "insert into")?;
        let def = table.def();
        check_insert_columns(insert, &def)?;
        let on_conflict = conflict_mode(insert, &def)?;
        let LogicalPlan::Dml(dml) = self
            .plan(Statement::Insert(plain_insert(insert, &def)?))
            .await?
        else {
            return Err(KuraError::internal("INSERT did not plan as DML"));
        };
        let source = Exec::bind(dml.input.as_ref().clone(), params)?;
        let (_, batches) = self.collect(&source).await?;
        let columns = concat_columns(&def, batches)?;
        let rows = columns.first().map_or(0, |c| c.len());
        let batch = conform(&def, columns, rows, self.zone())?;
        let (batch, placed) = self.place_rows(&def, batch)?;
        let written = self
            .write_inserts(&table, &def, batch, &placed, on_conflict)
            .await?;
        let alias = insert
            .table_alias
            .as_ref()
            .map(|a| normalize(&a.alias))
            .unwrap_or_else(|| def.name.clone());
        self.finish("INSERT 0", written, insert.returning.as_ref(), &def, &alias)
            .await
    }

    /// Inserts rows given as one array per table column (COPY FROM): conformed to the table,
    /// placed, and written; a duplicate key fails. Returns the number of rows stored.
    pub async fn insert_columns(
        &self,
        table: &Arc<Table>,
        columns: Vec<ArrayRef>,
        rows: usize,
    ) -> Result<usize> {
        let def = table.def();
        let batch = conform(&def, columns, rows, self.zone())?;
        let (batch, placed) = self.place_rows(&def, batch)?;
        let written = self
            .write_inserts(table, &def, batch, &placed, OnConflict::Fail)
            .await?;
        Ok(written.num_rows())
    }

    /// Drops the rows that fall into expired data partitions (GridDB accepts them and stores
    /// nothing) and refuses rows for intervals removed by `DROP PARTITION`; returns the rows
    /// kept with their data partitions. The commit checks again, since time moves on and
    /// partitions may be dropped meanwhile.
    pub(super) fn place_rows(
        &self,
        def: &TableDef,
        batch: RecordBatch,
    ) -> Result<(RecordBatch, Vec<PartitionKey>)> {
        let placement = &def.placement;
        let keys = placement.partitioning.keys(&batch)?;
        if placement.partitioning.interval().is_none() || batch.num_rows() == 0 {
            return Ok((batch, keys));
        }
        let now = self.db.txns.clock.now_millis();
        if let Some(key) = keys
            .iter()
            .find(|k| placement.dropped_intervals.contains(&k.interval))
        {
            return Err(dropped_interval(def, key.interval));
        }
        if placement.expiry.is_none() {
            return Ok((batch, keys));
        }
        let keep: datafusion::arrow::array::BooleanArray = keys
            .iter()
            .map(|k| Some(!placement.expired(k.interval, now)))
            .collect();
        if keep.true_count() == batch.num_rows() {
            return Ok((batch, keys));
        }
        let kept = keys
            .into_iter()
            .zip(keep.iter())
            .filter(|(_, k)| *k == Some(true))
            .map(|(key, _)| key)
            .collect();
        Ok((
            datafusion::arrow::compute::filter_record_batch(&batch, &keep)?,
            kept,
        ))
    }

    pub(super) async fn write_inserts(
        &self,
        table: &Arc<Table>,
        def: &TableDef,
        batch: RecordBatch,
        placed: &[PartitionKey],
        on_conflict: OnConflict,
    ) -> Result<RecordBatch> {
        if def.primary_key.is_empty() {
            self.txn
                .writes
                .lock()
                .insert(table, batch.clone(), Vec::new())?;
            return Ok(batch);
        }
        let upsert = !matches!(on_conflict, OnConflict::Fail);
        let mut keep = vec![true; batch.num_rows()];
        let mut keys = Vec::with_capacity(batch.num_rows());
        let mut seen: HashMap<IndexKey, usize> = HashMap::new();
        let mut updates: Vec<(Existing, usize)> = Vec::new();
        let duplicate = |row| duplicate_row(def, &batch, &def.primary_key, row);
        let batch_keys = def.primary_codec()?.keys(&batch, &def.primary_key)?;
        for (row, key) in batch_keys.into_iter().enumerate() {
            let unique = def.unique_key(key.clone(), placed[row]);
            if let Some(first) = seen.get(&unique).copied() {
                match on_conflict {
                    OnConflict::Fail => return Err(duplicate(row)),
                    OnConflict::Nothing => keep[row] = false,
                    OnConflict::Replace => keep[first] = false,
                    OnConflict::Update(_) => {
                        return Err(KuraError::new(
                            sqlstate::CARDINALITY_VIOLATION,
                            "ON CONFLICT DO UPDATE command cannot affect row a second time",
                        )
                        .with_hint("Ensure that no rows proposed for insertion within the same command have duplicate constrained values."));
                    }
                }
            }
            seen.insert(unique.clone(), row);
            if upsert {
                self.lock(LockKey::Key(table.id(), key.clone())).await?;
            }
            if let Some(existing) = self.find_live(table, def, &key, &unique, placed[row])? {
                match &on_conflict {
                    OnConflict::Fail => return Err(duplicate(row)),
                    OnConflict::Nothing => keep[row] = false,
                    OnConflict::Replace => {
                        self.remove_existing(table, existing, &key, true).await?
                    }
                    OnConflict::Update(_) => {
                        keep[row] = false;
                        updates.push((existing, row));
                    }
                }
            }
            keys.push(unique);
        }
        let mask: datafusion::arrow::array::BooleanArray = keep.iter().map(|k| Some(*k)).collect();
        let inserted = datafusion::arrow::compute::filter_record_batch(&batch, &mask)?;
        let inserted_keys: Vec<IndexKey> = keys
            .into_iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(key, _)| key)
            .collect();
        if inserted.num_rows() > 0 {
            self.txn
                .writes
                .lock()
                .insert(table, inserted.clone(), inserted_keys)?;
        }
        let OnConflict::Update(update) = on_conflict else {
            return Ok(inserted);
        };
        let ConflictUpdate {
            assignments,
            selection,
        } = *update;
        if updates.is_empty() {
            return Ok(inserted);
        }
        let updated = self
            .upsert_updates(
                table,
                def,
                &batch,
                &updates,
                &assignments,
                selection.as_ref(),
            )
            .await?;
        Ok(concat_batches(def.schema(), &[inserted, updated])?)
    }

    /// Applies ON CONFLICT DO UPDATE to the conflicting rows.
    async fn upsert_updates(
        &self,
        table: &Arc<Table>,
        def: &TableDef,
        proposed: &RecordBatch,
        updates: &[(Existing, usize)],
        assignments: &[Assignment],
        selection: Option<&Expr>,
    ) -> Result<RecordBatch> {
        let mut existing_rows = Vec::with_capacity(updates.len());
        let mut existing_ids = Vec::with_capacity(updates.len());
        for (existing, _) in updates {
            let (row, id) = match existing {
                Existing::Private(pos) => (
                    self.txn
                        .writes
                        .lock()
                        .private_row(def.id, *pos)?
                        .ok_or_else(|| KuraError::internal("private row vanished"))?,
                    RowId::private(*pos as u64),
                ),
                Existing::Base(row) => {
                    let partition = table
                        .partition(row.partition())
                        .ok_or_else(|| KuraError::internal("partition vanished"))?;
                    (partition.fetch(def, &[*row])?, *row)
                }
            };
            existing_rows.push(def.widen(&row)?);
            existing_ids.push(id.0);
        }
        let seq: ArrayRef = Arc::new(UInt64Array::from_iter_values(0..updates.len() as u64));
        let existing = concat_batches(def.schema(), &existing_rows)?;
        let existing = with_extra_columns(
            &existing,
            vec![
                (
                    ROW_ID_COLUMN,
                    Arc::new(UInt64Array::from(existing_ids)) as ArrayRef,
                ),
                (SEQ_COLUMN, seq.clone()),
            ],
        )?;
        let indices = UInt64Array::from_iter_values(updates.iter().map(|(_, r)| *r as u64));
        let excluded = datafusion::arrow::compute::take_record_batch(proposed, &indices)?;
        let excluded = with_extra_columns(&excluded, vec![(SEQ_COLUMN, seq)])?;
        let existing_rel = self.temp_rows(existing.schema(), vec![existing])?;
        let excluded_rel = self.temp_rows(excluded.schema(), vec![excluded])?;
        let alias = def.name.clone();
        let join_sql = format!(
            "SELECT 1 FROM {} AS {} JOIN {} AS excluded ON {}.{} = excluded.{}",
            quoted(&existing_rel.name),
            quoted(&alias),
            quoted(&excluded_rel.name),
            quoted(&alias),
            quoted(SEQ_COLUMN),
            quoted(SEQ_COLUMN)
        );
        let mut query = parse_query(&join_sql)?;
        let select = select_mut(&mut query)?;
        select.selection = selection.cloned();
        select.projection = update_projection(def, &alias, assignments)?;
        let plan = self.plan_query(query).await?;
        let (_, batches) = self.collect(&plan).await?;
        self.apply_updates(table, def, batches, true).await
    }

    pub async fn update(&self, update: &Update, params: &ParamValues) -> Result<Outcome> {
        let target = self.update_query(update)?;
        let plan = Exec::bind(self.plan_query(target.query).await?, params)?;
        let (_, batches) = self.collect(&plan).await?;
        let updated = self
            .apply_updates(&target.table, &target.def, batches, false)
            .await?;
        self.finish(
            "UPDATE",
            updated,
            update.returning.as_ref(),
            &target.def,
            &target.alias,
        )
        .await
    }

    /// The internal SELECT that finds an UPDATE's rows and computes their new values.
    pub fn update_query(&self, update: &Update) -> Result<DmlTarget> {
        if !update.table.joins.is_empty() {
            return Err(KuraError::unsupported("UPDATE of a join is not supported"));
        }
        let TableFactor::Table { name, alias, .. } = &update.table.relation else {
            return Err(KuraError::unsupported("UPDATE target must be a table"));
        };
        let mut target = self.dml_target(name, alias.as_ref().map(|a| &a.name), "update")?;
        let select = select_mut(&mut target.query)?;
        if let Some(from) = &update.from {
            let (UpdateTableFromKind::BeforeSet(tables) | UpdateTableFromKind::AfterSet(tables)) =
                from;
            select.from.extend(tables.iter().cloned());
        }
        select.selection = update.selection.clone();
        select.projection = update_projection(&target.def, &target.alias, &update.assignments)?;
        Ok(target)
    }

    /// `SELECT ... FROM <table with row ids> AS alias`, the base of UPDATE and DELETE.
    fn dml_target(
        &self,
        name: &ObjectName,
        alias: Option<&Ident>,
        verb: &str,
    ) -> Result<DmlTarget> {
        let table = self.db.table(&relation_name(name)?, verb)?;
        let def = table.def();
        let alias = alias.map(normalize).unwrap_or_else(|| def.name.clone());
        let relation = self
            .db
            .temps
            .register(Arc::new(KuraTable::new(table.clone(), true)));
        let query = select_from(&relation.name, &alias)?;
        Ok(DmlTarget {
            table,
            def,
            alias,
            query,
            _relation: relation,
        })
    }

    /// Replaces each old version named by the first column (row id) of `batches` with the
    /// new row in the following columns; the trailing columns hold the old primary key.
    pub(super) async fn apply_updates(
        &self,
        table: &Arc<Table>,
        def: &TableDef,
        batches: Vec<RecordBatch>,
        newer_allowed: bool,
    ) -> Result<RecordBatch> {
        let width = def.columns.len();
        let Some(schema) = batches.first().map(|b| b.schema()) else {
            return Ok(RecordBatch::new_empty(def.schema().clone()));
        };
        let all = concat_batches(&schema, &batches)?;
        let ids = all.column(0).as_primitive::<UInt64Type>().clone();
        let mut seen = HashSet::new();
        let unique: Vec<u64> = (0..all.num_rows())
            .filter(|i| seen.insert(ids.value(*i)))
            .map(|i| i as u64)
            .collect();
        let all = datafusion::arrow::compute::take_record_batch(&all, &UInt64Array::from(unique))?;
        let ids = all.column(0).as_primitive::<UInt64Type>().clone();
        let old_keys: Vec<IndexKey> = if def.primary_key.is_empty() {
            Vec::new()
        } else {
            let cols: Vec<usize> = (0..def.primary_key.len()).map(|i| 1 + width + i).collect();
            def.primary_codec()?.keys(&all, &cols)?
        };
        for r in 0..all.num_rows() {
            let row = RowId(ids.value(r));
            let key = old_keys.get(r).cloned();
            self.remove_row(table, row, key, newer_allowed).await?;
        }
        let columns: Vec<ArrayRef> = all.columns()[1..=width].to_vec();
        let new_rows = conform(def, columns, all.num_rows(), self.zone())?;
        let mut keys = Vec::new();
        if !def.primary_key.is_empty() {
            let placed = def.partitioning().keys(&new_rows)?;
            let mut seen = HashSet::new();
            let duplicate = |row| duplicate_row(def, &new_rows, &def.primary_key, row);
            let new_keys = def.primary_codec()?.keys(&new_rows, &def.primary_key)?;
            for (r, (old_key, key)) in old_keys.iter().zip(new_keys).enumerate() {
                let unique = def.unique_key(key.clone(), placed[r]);
                if !seen.insert(unique.clone()) {
                    return Err(duplicate(r));
                }
                if key != *old_key {
                    self.lock(LockKey::Key(table.id(), key.clone())).await?;
                    if self
                        .find_live(table, def, &key, &unique, placed[r])?
                        .is_some()
                    {
                        return Err(duplicate(r));
                    }
                }
                keys.push(unique);
            }
        }
        if new_rows.num_rows() > 0 {
            self.txn
                .writes
                .lock()
                .insert(table, new_rows.clone(), keys)?;
        }
        Ok(new_rows)
    }

    pub async fn delete(&self, delete: &Delete, params: &ParamValues) -> Result<Outcome> {
        let target = self.delete_query(delete)?;
        let (table, def, alias) = (
            target.table.clone(),
            target.def.clone(),
            target.alias.clone(),
        );
        let plan = Exec::bind(self.plan_query(target.query).await?, params)?;
        let (schema, batches) = self.collect(&plan).await?;
        let all = concat_batches(&schema, &batches)?;
        let ids = all.column(0).as_primitive::<UInt64Type>().clone();
        let mut seen = HashSet::new();
        let mut keep = Vec::new();
        let deleted_keys = if def.primary_key.is_empty() {
            None
        } else {
            let cols: Vec<usize> = def.primary_key.iter().map(|c| c + 1).collect();
            Some(def.primary_codec()?.keys(&all, &cols)?)
        };
        for r in 0..all.num_rows() {
            let row = RowId(ids.value(r));
            if !seen.insert(row) {
                continue;
            }
            let key = deleted_keys.as_ref().map(|keys| keys[r].clone());
            self.remove_row(&table, row, key, false).await?;
            keep.push(r as u64);
        }
        let deleted =
            datafusion::arrow::compute::take_record_batch(&all, &UInt64Array::from(keep))?;
        let deleted = RecordBatch::try_new(def.schema().clone(), deleted.columns()[1..].to_vec())
            .or_else(|_| {
            conform(
                &def,
                deleted.columns()[1..].to_vec(),
                deleted.num_rows(),
                self.zone(),
            )
        })?;
        self.finish("DELETE", deleted, delete.returning.as_ref(), &def, &alias)
            .await
    }

    /// `TRUNCATE [TABLE] t1, t2, ...`: every row of each table is deleted in this
    /// transaction, so readers keep their snapshots and ROLLBACK brings the rows back.
    /// RESTART IDENTITY and CASCADE change nothing: Kura has no sequences or foreign keys.
    pub async fn truncate(
        &self,
        truncate: &datafusion::sql::sqlparser::ast::Truncate,
    ) -> Result<Outcome> {
        if truncate.partitions.is_some() || truncate.on_cluster.is_some() {
            return Err(KuraError::unsupported(
                "TRUNCATE of partitions or on a cluster is not supported",
            ));
        }
        // Every name is resolved before any row goes.
        let mut names = Vec::with_capacity(truncate.table_names.len());
        for target in &truncate.table_names {
            let name = relation_name(&target.name)?;
            if truncate.if_exists && self.db.catalog.table(&name).is_none() {
                continue;
            }
            self.db.table(&name, "truncate")?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let no_params = ParamValues::List(Vec::new());
        for name in names {
            let sql = format!("DELETE FROM {}", crate::sql::template::quoted(&name));
            let Some(Statement::Delete(delete)) = crate::sql::parse_sql(&sql)?.pop() else {
                return Err(KuraError::internal("TRUNCATE built no DELETE"));
            };
            self.delete(&delete, &no_params).await?;
        }
        Ok(Outcome::done("TRUNCATE TABLE"))
    }

    /// The internal SELECT that finds a DELETE's rows (row id and every column).
    pub fn delete_query(&self, delete: &Delete) -> Result<DmlTarget> {
        if !delete.tables.is_empty() {
            return Err(KuraError::unsupported(
                "multi-table DELETE is not supported",
            ));
        }
        let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
        let [target] = from.as_slice() else {
            return Err(KuraError::unsupported(
                "DELETE from several tables is not supported",
            ));
        };
        let TableFactor::Table { name, alias, .. } = &target.relation else {
            return Err(KuraError::unsupported("DELETE target must be a table"));
        };
        let mut target = self.dml_target(name, alias.as_ref().map(|a| &a.name), "delete from")?;
        let mut projection = vec![aliased(
            column_ref(&target.alias, ROW_ID_COLUMN)?,
            ROW_ID_COLUMN,
        )];
        for column in &target.def.columns {
            projection.push(aliased(
                column_ref(&target.alias, &column.name)?,
                &column.name,
            ));
        }
        let select = select_mut(&mut target.query)?;
        if let Some(using) = &delete.using {
            select.from.extend(using.iter().cloned());
        }
        select.selection = delete.selection.clone();
        select.projection = projection;
        Ok(target)
    }

    /// Deletes one version found by this statement: private rows directly, committed versions
    /// after taking their lock and checking nobody changed them since the snapshot.
    async fn remove_row(
        &self,
        table: &Arc<Table>,
        row: RowId,
        key: Option<IndexKey>,
        newer_allowed: bool,
    ) -> Result<()> {
        if row.is_private() {
            self.txn
                .writes
                .lock()
                .delete_private(table, row.private_position())?;
            return Ok(());
        }
        let lock = match key {
            Some(key) => LockKey::Key(table.id(), key),
            None => LockKey::Row(table.id(), row),
        };
        self.lock(lock).await?;
        self.claim_base(table, row, newer_allowed)
    }

    fn claim_base(&self, table: &Arc<Table>, row: RowId, newer_allowed: bool) -> Result<()> {
        let partition = table
            .partition(row.partition())
            .ok_or_else(|| KuraError::internal("row in an unknown partition"))?;
        if !partition.pin(row) {
            return Err(restart());
        }
        self.txn.writes.lock().record_pin(partition.clone(), row);
        let (begin, end) = partition.stamps(row).ok_or_else(restart)?;
        let changed = end != TS_LIVE || (!newer_allowed && begin > self.snapshot.ts());
        if changed {
            return Err(match self.txn.isolation {
                Isolation::RepeatableRead => KuraError::serialization_failure(),
                Isolation::ReadCommitted => restart(),
            });
        }
        self.txn.writes.lock().delete_base(table, row);
        Ok(())
    }

    async fn remove_existing(
        &self,
        table: &Arc<Table>,
        existing: Existing,
        _key: &IndexKey,
        upsert: bool,
    ) -> Result<()> {
        match existing {
            Existing::Private(pos) => {
                self.txn.writes.lock().delete_private(table, pos)?;
                Ok(())
            }
            Existing::Base(row) => {
                let newer_allowed = upsert && self.txn.isolation == Isolation::ReadCommitted;
                self.claim_base(table, row, newer_allowed)
            }
        }
    }

    async fn lock(&self, key: LockKey) -> Result<()> {
        self.db
            .txns
            .lock(self.txn, key, self.lock_timeout, &self.interrupt)
            .await
    }

    /// The live version of a primary-key value `key` in data partition `placed` (primary keys
    /// are unique per data partition): this transaction's own row (found by its unique key,
    /// see `TableDef::unique_key`), or the newest committed version this transaction has not
    /// deleted (whatever the snapshot).
    fn find_live(
        &self,
        table: &Arc<Table>,
        def: &TableDef,
        key: &IndexKey,
        unique: &IndexKey,
        placed: PartitionKey,
    ) -> Result<Option<Existing>> {
        let writes = self.txn.writes.lock();
        if let Some(pos) = writes.private_key(table.id(), unique) {
            return Ok(Some(Existing::Private(pos)));
        }
        let (Some(pk), Some(partition)) = (def.primary_index(), table.partition_by_key(&placed))
        else {
            return Ok(None);
        };
        let (snapshot, rows) = partition.lookup_key(pk.id, key);
        for row in rows {
            let live = snapshot
                .chunk(row.chunk())
                .is_some_and(|c| row.offset() < c.len() && c.end(row.offset()) == TS_LIVE);
            if live && !writes.deleted_base(table.id(), row) {
                return Ok(Some(Existing::Base(row)));
            }
        }
        Ok(None)
    }

    /// The statement's result: RETURNING rows, or just the command tag.
    async fn finish(
        &self,
        command: &str,
        rows: RecordBatch,
        returning: Option<&Vec<SelectItem>>,
        def: &TableDef,
        alias: &str,
    ) -> Result<Outcome> {
        let Some(items) = returning else {
            return Ok(Outcome::counted(command, rows.num_rows()));
        };
        let rel = self.temp_rows(def.schema().clone(), vec![rows])?;
        let mut query = select_from(&rel.name, alias)?;
        select_mut(&mut query)?.projection = items.clone();
        let plan = self.plan_query(query).await?;
        let (schema, batches) = self.collect(&plan).await?;
        Ok(Outcome::rows(schema, batches, command))
    }
}

/// A string literal written into a `bytea` column is PostgreSQL bytea input (`\\x` hex or the
/// escape format): it becomes `decode('<hex>', 'hex')` so DataFusion stores the bytes it
/// denotes rather than the text.
fn bytea_literal(value: &Expr, column: Option<&crate::storage::ColumnDef>) -> Result<Option<Expr>> {
    if !column.is_some_and(|c| c.ty == crate::types::SqlType::Blob) {
        return Ok(None);
    }
    let Expr::Value(v) = value else {
        return Ok(None);
    };
    let datafusion::sql::sqlparser::ast::Value::SingleQuotedString(text) = &v.value else {
        return Ok(None);
    };
    let bytes = super::rows::decode_bytea(text)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(parse_expr(&format!("decode('{hex}', 'hex')"))?))
}

/// Every column named in `INSERT INTO t (...)` must exist, with PostgreSQL's message.
fn check_insert_columns(insert: &Insert, def: &TableDef) -> Result<()> {
    for column in &insert.columns {
        let name = column
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(normalize)
            .ok_or_else(|| KuraError::syntax("invalid column name in INSERT"))?;
        if def.column_index(&name).is_none() {
            return Err(KuraError::new(
                sqlstate::UNDEFINED_COLUMN,
                format!(
                    "column \"{name}\" of relation \"{}\" does not exist",
                    def.name
                ),
            ));
        }
    }
    Ok(())
}

/// The INSERT DataFusion plans: without the clauses Kura handles itself, and with PostgreSQL's
/// rules that `VALUES` rows shorter than the table fill the leading columns and that
/// `DEFAULT` in a VALUES row stands for the column's default.
pub fn plain_insert(insert: &Insert, def: &TableDef) -> Result<Insert> {
    let mut plain = insert.clone();
    plain.on = None;
    plain.returning = None;
    plain.or = None;
    let Some(source) = plain.source.as_mut() else {
        return Ok(plain);
    };
    let SetExpr::Values(values) = source.body.as_mut() else {
        return Ok(plain);
    };
    let width = values.rows.iter().map(|r| r.len()).max().unwrap_or(0);
    if plain.columns.is_empty() && width < def.columns.len() {
        plain.columns = def.columns[..width]
            .iter()
            .map(|c| ObjectName::from(vec![Ident::with_quote('"', &c.name)]))
            .collect();
    }
    let targets: Vec<Option<usize>> = if plain.columns.is_empty() {
        (0..width).map(Some).collect()
    } else {
        plain
            .columns
            .iter()
            .map(|c| {
                c.0.last()
                    .and_then(|p| p.as_ident())
                    .and_then(|i| def.column_index(&normalize(i)))
            })
            .collect()
    };
    for row in &mut values.rows {
        for (position, value) in row.iter_mut().enumerate() {
            let column = targets
                .get(position)
                .copied()
                .flatten()
                .map(|c| &def.columns[c]);
            if let Some(hex) = bytea_literal(value, column)? {
                *value = hex;
                continue;
            }
            let is_default = matches!(value, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"));
            if !is_default {
                continue;
            }
            *value = match column.and_then(|c| c.default.as_deref()) {
                Some(sql) => parse_expr(sql)?,
                None => parse_expr("NULL")?,
            };
        }
    }
    Ok(plain)
}

pub(super) fn conflict_mode(insert: &Insert, def: &TableDef) -> Result<OnConflict> {
    if let Some(or) = &insert.or {
        return match or {
            SqliteOnConflict::Replace => Ok(OnConflict::Replace),
            SqliteOnConflict::Ignore => Ok(OnConflict::Nothing),
            other => Err(KuraError::unsupported(format!(
                "INSERT OR {other} is not supported"
            ))),
        };
    }
    let Some(on) = &insert.on else {
        return Ok(OnConflict::Fail);
    };
    let OnInsert::OnConflict(conflict) = on else {
        return Err(KuraError::unsupported(
            "ON DUPLICATE KEY UPDATE is not supported; use ON CONFLICT",
        ));
    };
    let no_constraint = || {
        KuraError::new(
            "42P10",
            "there is no unique or exclusion constraint matching the ON CONFLICT specification",
        )
    };
    match &conflict.conflict_target {
        Some(ConflictTarget::Columns(columns)) => {
            let named: HashSet<Option<usize>> = columns
                .iter()
                .map(|c| def.column_index(&normalize(c)))
                .collect();
            let pk: HashSet<Option<usize>> = def.primary_key.iter().map(|c| Some(*c)).collect();
            if def.primary_key.is_empty() || named != pk {
                return Err(no_constraint());
            }
        }
        Some(ConflictTarget::OnConstraint(name)) => {
            let wanted = name.to_string();
            if def
                .primary_index()
                .is_none_or(|i| !i.name.eq_ignore_ascii_case(wanted.trim_matches('"')))
            {
                return Err(KuraError::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!(
                        "constraint \"{wanted}\" for table \"{}\" does not exist",
                        def.name
                    ),
                ));
            }
        }
        None if matches!(conflict.action, OnConflictAction::DoUpdate(_)) => {
            return Err(KuraError::syntax(
                "ON CONFLICT DO UPDATE requires inference specification or constraint name",
            ));
        }
        None => {}
    }
    if def.primary_key.is_empty() {
        return Ok(OnConflict::Fail);
    }
    Ok(match &conflict.action {
        OnConflictAction::DoNothing => OnConflict::Nothing,
        OnConflictAction::DoUpdate(update) => OnConflict::Update(Box::new(ConflictUpdate {
            assignments: update.assignments.clone(),
            selection: update.selection.clone(),
        })),
    })
}

/// `rowid, <each column: new value or old value>, <old primary key...>` for an UPDATE.
fn update_projection(
    def: &TableDef,
    alias: &str,
    assignments: &[Assignment],
) -> Result<Vec<SelectItem>> {
    let mut assigned: HashMap<usize, Expr> = HashMap::new();
    for assignment in assignments {
        let AssignmentTarget::ColumnName(name) = &assignment.target else {
            return Err(KuraError::unsupported(
                "multi-column assignment is not supported",
            ));
        };
        let column_name = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(normalize)
            .ok_or_else(|| KuraError::syntax("invalid column in SET"))?;
        let index = def.column_index(&column_name).ok_or_else(|| {
            KuraError::new(
                sqlstate::UNDEFINED_COLUMN,
                format!(
                    "column \"{column_name}\" of relation \"{}\" does not exist",
                    def.name
                ),
            )
        })?;
        if def.partitioning().key_columns().any(|c| c == index) {
            return Err(KuraError::new(
                sqlstate::CHECK_VIOLATION,
                format!(
                    "partitioning column \"{column_name}\" of table \"{}\" cannot be updated",
                    def.name
                ),
            )
            .with_hint("DELETE the row and INSERT it again with the new value."));
        }
        if assigned.insert(index, assignment.value.clone()).is_some() {
            return Err(KuraError::syntax(format!(
                "multiple assignments to same column \"{column_name}\""
            )));
        }
    }
    let mut projection = vec![aliased(column_ref(alias, ROW_ID_COLUMN)?, ROW_ID_COLUMN)];
    for (i, column) in def.columns.iter().enumerate() {
        let expr = match assigned.remove(&i) {
            Some(Expr::Value(v)) if v.to_string().eq_ignore_ascii_case("DEFAULT") => {
                return Err(KuraError::unsupported(
                    "SET column = DEFAULT is not supported",
                ));
            }
            Some(value) => cast_to_column(value, &column.ty)?,
            None => column_ref(alias, &column.name)?,
        };
        projection.push(aliased(expr, &column.name));
    }
    for (i, pk) in def.primary_key.iter().enumerate() {
        projection.push(aliased(
            column_ref(alias, &def.columns[*pk].name)?,
            &format!("__kura_old_{i}"),
        ));
    }
    Ok(projection)
}

/// Wraps a value in a cast to the column's type so parameters get the column's type.
fn cast_to_column(value: Expr, ty: &crate::types::SqlType) -> Result<Expr> {
    let mut cast = parse_expr(&format!("CAST(NULL AS {})", ty.cast_name()))?;
    if let Expr::Cast { expr, .. } = &mut cast {
        **expr = value;
    }
    Ok(cast)
}

fn with_extra_columns(batch: &RecordBatch, extra: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns = batch.columns().to_vec();
    for (name, array) in extra {
        fields.push(Field::new(name, array.data_type().clone(), true));
        columns.push(array);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Concatenates INSERT source batches into one array per table column.
fn concat_columns(def: &TableDef, batches: Vec<RecordBatch>) -> Result<Vec<ArrayRef>> {
    let Some(first) = batches.first() else {
        return Ok(def
            .columns
            .iter()
            .map(|c| datafusion::arrow::array::new_empty_array(&c.ty.arrow_type()))
            .collect());
    };
    let schema: SchemaRef = first.schema();
    let all = concat_batches(&schema, &batches)?;
    Ok(all.columns().to_vec())
}
