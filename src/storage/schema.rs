//! Table definitions: columns, primary key and indexes, and the Arrow schema derived from them.
//!
//! Invariants: a `TableDef` is immutable; DDL replaces it as a whole. Column positions never
//! change (ADD COLUMN appends, RENAME keeps the position), so stored batches stay valid; batches
//! written before an ADD COLUMN are narrower and are widened with the column's `missing` value.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, new_null_array};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;

use super::key_codec::{IndexKey, KeyCodec};
use super::partitioning::{Expiry, PartitionKey, Partitioning};
use crate::error::Result;
use crate::types::SqlType;

pub type TableId = u64;

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
    /// The DEFAULT expression as SQL text, evaluated for every insert that omits the column.
    pub default: Option<String>,
    /// The value rows that existed before ADD COLUMN read for this column.
    pub missing: ScalarValue,
}

/// An index; stored as is in the log and checkpoint manifests (see `stored.rs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexDef {
    pub id: u32,
    pub name: String,
    pub columns: Vec<usize>,
    pub unique: bool,
    pub primary: bool,
}

/// Where a table's rows live and for how long: its kind, partitioning and expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// A time-series table (`USING TIMESERIES`): its first column is a TIMESTAMP primary key.
    pub timeseries: bool,
    pub partitioning: Partitioning,
    pub expiry: Option<Expiry>,
    /// Intervals removed by `ALTER TABLE ... DROP PARTITION`: inserting into them fails.
    pub dropped_intervals: BTreeSet<i64>,
}

impl Placement {
    /// True when interval `interval` has expired at `now_millis`: its upper bound plus the
    /// retention period lies before now. Only tables with PARTITION expiry expire.
    pub fn expired(&self, interval: i64, now_millis: i64) -> bool {
        match (&self.expiry, self.partitioning.interval()) {
            (Some(expiry), Some(spec)) => {
                spec.upper_millis(interval)
                    .saturating_add(expiry.retention_millis())
                    < now_millis
            }
            _ => false,
        }
    }

    /// The newest interval that has expired at `now_millis`, if the table expires at all.
    pub fn last_expired_interval(&self, now_millis: i64) -> Option<i64> {
        let (expiry, spec) = (self.expiry.as_ref()?, self.partitioning.interval()?);
        // upper(i) + retention < now  <=>  (i + 1) * width_ms < now - retention
        let limit = now_millis.saturating_sub(expiry.retention_millis());
        let raw_limit = limit.saturating_mul(spec.raw_per_milli.max(1));
        // The largest i with (i + 1) * raw_width < raw_limit, i.e. (i + 1) <= (raw_limit - 1) / w.
        let i = raw_limit.saturating_sub(1).div_euclid(spec.raw_width) - 1;
        Some(i)
    }
}

#[derive(Debug, Clone)]
pub struct TableDef {
    pub id: TableId,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    pub primary_key: Vec<usize>,
    pub indexes: Vec<IndexDef>,
    pub placement: Placement,
    schema: SchemaRef,
    /// Encodes primary-key values (absent without a primary key).
    primary_codec: Option<Arc<KeyCodec>>,
}

impl TableDef {
    pub fn new(
        id: TableId,
        name: String,
        columns: Vec<ColumnDef>,
        primary_key: Vec<usize>,
        indexes: Vec<IndexDef>,
    ) -> TableDef {
        let schema = build_schema(&columns);
        let primary_codec = (!primary_key.is_empty())
            .then(|| {
                KeyCodec::new(
                    primary_key
                        .iter()
                        .map(|c| schema.field(*c).data_type().clone())
                        .collect(),
                )
                .ok()
            })
            .flatten()
            .map(Arc::new);
        TableDef {
            id,
            name,
            columns,
            primary_key,
            indexes,
            placement: Placement::default(),
            schema,
            primary_codec,
        }
    }

    pub fn with_placement(mut self, placement: Placement) -> TableDef {
        self.placement = placement;
        self
    }

    /// A copy with other columns or indexes (the schema is rebuilt).
    pub fn with_columns(&self, columns: Vec<ColumnDef>) -> TableDef {
        TableDef::new(
            self.id,
            self.name.clone(),
            columns,
            self.primary_key.clone(),
            self.indexes.clone(),
        )
        .with_placement(self.placement.clone())
    }

    pub fn with_indexes(&self, indexes: Vec<IndexDef>) -> TableDef {
        TableDef::new(
            self.id,
            self.name.clone(),
            self.columns.clone(),
            self.primary_key.clone(),
            indexes,
        )
        .with_placement(self.placement.clone())
    }

    pub fn partitioning(&self) -> &Partitioning {
        &self.placement.partitioning
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .or_else(|| {
                let mut matches = self
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.name.eq_ignore_ascii_case(name));
                match (matches.next(), matches.next()) {
                    (Some((i, _)), None) => Some(i),
                    _ => None,
                }
            })
    }

    /// The codec of primary-key values; an error for a table without a primary key.
    pub fn primary_codec(&self) -> Result<&KeyCodec> {
        self.primary_codec.as_deref().ok_or_else(|| {
            crate::error::KuraError::internal(format!(
                "table {} has no primary-key codec",
                self.name
            ))
        })
    }

    /// The key a transaction's own rows must not repeat: the primary key, plus the data
    /// partition when a partitioning column is outside the primary key (uniqueness then holds
    /// per data partition, `/sql/partitioningRowkeyConstraint = false`).
    pub fn unique_key(&self, primary: IndexKey, placed: PartitionKey) -> IndexKey {
        let per_partition = self
            .partitioning()
            .key_columns()
            .any(|c| !self.primary_key.contains(&c));
        if !per_partition {
            return primary;
        }
        let mut bytes = primary.0.into_vec();
        bytes.extend_from_slice(&placed.interval.to_be_bytes());
        bytes.extend_from_slice(&placed.bucket.to_be_bytes());
        IndexKey(bytes.into())
    }

    pub fn primary_index(&self) -> Option<&IndexDef> {
        self.indexes.iter().find(|i| i.primary)
    }

    pub fn next_index_id(&self) -> u32 {
        self.indexes.iter().map(|i| i.id + 1).max().unwrap_or(1)
    }

    /// Brings a stored batch to this definition's width and names.
    pub fn widen(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if batch.num_columns() == self.columns.len() && batch.schema() == self.schema {
            return Ok(batch.clone());
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.truncate(self.columns.len());
        for col in &self.columns[columns.len()..] {
            columns.push(missing_array(&col.missing, &col.ty, batch.num_rows())?);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// `batches` widened to the current shape and joined into one batch.
    pub fn widen_concat(&self, batches: &[RecordBatch]) -> Result<RecordBatch> {
        let widened = batches
            .iter()
            .map(|b| self.widen(b))
            .collect::<Result<Vec<_>>>()?;
        Ok(datafusion::arrow::compute::concat_batches(
            &self.schema,
            &widened,
        )?)
    }
}

fn missing_array(value: &ScalarValue, ty: &SqlType, rows: usize) -> Result<ArrayRef> {
    if value.is_null() {
        return Ok(new_null_array(&ty.arrow_type(), rows));
    }
    Ok(value.to_array_of_size(rows)?)
}

/// The storage schema: every field nullable. NOT NULL is a constraint on writes (checked by
/// `sql::rows::conform`), not on stored versions: a deleted version may hold a NULL that a later
/// `ADD PRIMARY KEY` forbids, until garbage collection removes it.
fn build_schema(columns: &[ColumnDef]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.ty.arrow_type(), true))
            .collect::<Vec<_>>(),
    ))
}

/// The error for inserting a primary-key value (`values`, one per key column) that already has
/// a live version.
pub fn duplicate_key(def: &TableDef, values: &[ScalarValue]) -> crate::error::KuraError {
    let name = def
        .primary_index()
        .map_or("primary key".to_string(), |i| i.name.clone());
    let columns: Vec<&str> = def
        .primary_key
        .iter()
        .map(|c| def.columns[*c].name.as_str())
        .collect();
    let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    crate::error::KuraError::new(
        crate::error::sqlstate::UNIQUE_VIOLATION,
        format!("duplicate key value violates unique constraint \"{name}\""),
    )
    .with_detail(format!(
        "Key ({})=({}) already exists.",
        columns.join(", "),
        values.join(", ")
    ))
}

/// [`duplicate_key`] for row `row` of `batch`, whose primary key is in `columns`.
pub fn duplicate_row(
    def: &TableDef,
    batch: &RecordBatch,
    columns: &[usize],
    row: usize,
) -> crate::error::KuraError {
    match super::partition::key_values(batch, columns, row) {
        Ok(values) => duplicate_key(def, &values),
        Err(e) => e,
    }
}

/// Table `t` with one LONG column `k` as its primary key (`t_pkey`): the smallest table unit
/// tests of storage and planning need.
#[cfg(test)]
pub(crate) fn long_key_table() -> TableDef {
    TableDef::new(
        1,
        "t".into(),
        vec![ColumnDef {
            name: "k".into(),
            ty: SqlType::Long,
            nullable: false,
            default: None,
            missing: ScalarValue::Int64(None),
        }],
        vec![0],
        vec![IndexDef {
            id: 1,
            name: "t_pkey".into(),
            columns: vec![0],
            unique: true,
            primary: true,
        }],
    )
}
