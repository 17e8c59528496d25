//! `KuraTable`: the DataFusion `TableProvider` of a Kura table.
//!
//! The provider is long-lived and holds no transaction state: each scan reads the statement's
//! snapshot and the transaction's own writes from the [`StatementContext`] extension of the
//! session config DataFusion passes in. A provider built with `with_row_id` adds the hidden
//! row-id column that UPDATE and DELETE use to find the versions they change.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::access::{choose_index, column_facts};
use super::context::StatementContext;
use super::pruning::{choose_partitions, covered_intervals};
use super::scan::{KuraScanExec, ROW_ID_COLUMN, ScanSpec, ScanUnit};
use super::scan_filter::{ScanFilters, scan_can_evaluate};
use crate::error::KuraError;
use crate::pg_catalog::oids::{self, PgType};
use crate::server::described;
use crate::server::text::BPCHAR_LENGTH;
use crate::storage::table::ColumnDefaults;
use crate::storage::{Table, TableDef};
use crate::types::SqlType;

#[derive(Debug)]
pub struct KuraTable {
    table: Arc<Table>,
    def: Arc<TableDef>,
    defaults: Arc<ColumnDefaults>,
    schema: SchemaRef,
}

impl KuraTable {
    pub fn new(table: Arc<Table>, with_row_id: bool) -> KuraTable {
        let def = table.def();
        let defaults = table.defaults();
        let mut fields = column_fields(&def);
        if with_row_id {
            fields.push(Field::new(ROW_ID_COLUMN, DataType::UInt64, false));
        }
        KuraTable {
            table,
            def,
            defaults,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    pub fn table(&self) -> &Arc<Table> {
        &self.table
    }
}

/// The fields the table's columns have in queries: what RowDescription reports for them.
pub fn column_fields(def: &TableDef) -> Vec<Field> {
    (0..def.columns.len())
        .map(|i| column_field(def, i))
        .collect()
}

/// The field of column `i` in queries. Every column is declared nullable to DataFusion: NOT
/// NULL is Kura's to enforce, with PostgreSQL's error, when rows are written. The metadata is
/// what RowDescription reports: the declared type with its modifier, and the table oid and
/// column number clients look the column up by.
pub fn column_field(def: &TableDef, i: usize) -> Field {
    let column = &def.columns[i];
    let pg = PgType::of(&column.ty);
    let mut metadata = described::metadata(
        pg.oid,
        pg.typmod,
        Some((oids::table(def.id), (i + 1) as i16)),
    );
    if let SqlType::Text {
        max_len: Some(n),
        padded: true,
    } = column.ty
    {
        metadata.insert(BPCHAR_LENGTH.to_string(), n.to_string());
    }
    def.schema()
        .field(i)
        .clone()
        .with_nullable(true)
        .with_metadata(metadata)
}

#[async_trait]
impl TableProvider for KuraTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, e)| e)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if scan_can_evaluate(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let ctx = state
            .config()
            .get_extension::<StatementContext>()
            .ok_or_else(|| {
                DataFusionError::from(KuraError::internal("scan outside of a statement"))
            })?;
        let mut projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let output_schema = Arc::new(self.schema.project(&projection)?);
        // DataFusion leaves out of the projection the columns only an `Exact` filter names.
        let exact: Vec<Expr> = filters
            .iter()
            .filter(|f| scan_can_evaluate(f))
            .cloned()
            .collect();
        for filter in &exact {
            for column in filter.column_refs() {
                if let Ok(index) = self.schema.index_of(&column.name)
                    && !projection.contains(&index)
                {
                    projection.push(index);
                }
            }
        }
        let read_schema = Arc::new(self.schema.project(&projection)?);
        let mut scan_filters = ScanFilters::new(state, &self.def, &exact, read_schema.clone())?;
        let own = ctx.own_writes(self.def.id);
        let facts = column_facts(&self.def, filters);
        let access = choose_index(&self.def, &facts);
        let choice = choose_partitions(
            &self.def,
            &self.table.partitions(),
            &facts,
            ctx.now_millis(),
        );
        let covered = covered_intervals(&self.def, &facts, access.as_ref());
        let mut units = Vec::new();
        let mut whole_partitions = 0;
        for partition in &choice.partitions {
            let whole = covered
                .as_ref()
                .is_some_and(|c| c.contains(&partition.key().interval));
            let predicate = scan_filters.predicate_for(Some(partition.key().interval))?;
            whole_partitions += usize::from(whole);
            match access.as_ref().filter(|_| !whole) {
                Some(access) => {
                    let mut by_chunk: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
                    let mut snapshot = None;
                    for range in &access.ranges {
                        let (snap, rows) = partition.lookup(access.index.id, range);
                        for row in rows {
                            by_chunk.entry(row.chunk()).or_default().push(row.offset());
                        }
                        snapshot.get_or_insert(snap);
                    }
                    let Some(snapshot) = snapshot else { continue };
                    for (chunk_id, mut offsets) in by_chunk {
                        if let Some(chunk) = snapshot.chunk(chunk_id) {
                            offsets.sort_unstable();
                            offsets.dedup();
                            units.push(ScanUnit::Chunk {
                                partition: partition.slot(),
                                chunk: chunk.clone(),
                                offsets: Some(offsets),
                                predicate: predicate.clone(),
                            });
                        }
                    }
                }
                None => {
                    let snapshot = partition.snapshot();
                    for chunk in snapshot.chunks().filter(|c| !c.is_empty()) {
                        units.push(ScanUnit::Chunk {
                            partition: partition.slot(),
                            chunk: chunk.clone(),
                            offsets: None,
                            predicate: predicate.clone(),
                        });
                    }
                }
            }
        }
        let own_deleted = Arc::new(own.as_ref().map(|o| o.deleted.clone()).unwrap_or_default());
        if let Some(own) = own
            && !own.inserts.is_empty()
        {
            let deleted = Arc::new(own.private_deleted);
            let predicate = scan_filters.predicate_for(None)?;
            let mut first = 0;
            for piece in own.inserts {
                let rows = piece.num_rows();
                units.push(ScanUnit::Private {
                    piece,
                    first,
                    deleted: deleted.clone(),
                    predicate: predicate.clone(),
                });
                first += rows;
            }
        }
        let access_text = match access {
            Some(a) if whole_partitions > 0 => format!(
                "{}, whole chunks of {whole_partitions} partitions inside the range",
                a.description
            ),
            Some(a) => a.description,
            None => "full scan".to_string(),
        };
        let spec = ScanSpec {
            def: self.def.clone(),
            snapshot: ctx.snapshot.ts(),
            projection,
            own_deleted,
            read_schema,
            output_schema,
            filters: exact.iter().map(|f| f.to_string()).collect(),
            access: access_text,
            limit,
            interrupt: ctx.interrupt.clone(),
        };
        let target = state.config().target_partitions();
        Ok(Arc::new(KuraScanExec::new(
            spec,
            units,
            target,
            choice.partitions.len(),
            choice.total,
        )))
    }
}
