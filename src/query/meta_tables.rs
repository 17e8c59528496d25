//! GridDB's metatables, queried by SQL as `SELECT * FROM "#tables"`: `#tables`,
//! `#columns`, `#primary_keys`, `#index_info`, `#table_partitions`, `#views` and
//! `#databases`, with the columns GridDB gives them (GRIDDB_SQL.md §10) plus a few of Kura's
//! own, noted where they are declared.
//!
//! Column names are lower case, so that unquoted references (`SELECT table_name FROM
//! "#tables"`) resolve under PostgreSQL's identifier folding; GridDB matches them ignoring
//! case anyway.
//!
//! Invariant: each metatable is built from the catalog when a statement plans it and is a
//! read-only snapshot for that statement.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;

use crate::error::Result;
use crate::storage::partitioning::{IntervalSpec, Partitioning, raw_per_milli};
use crate::storage::{Catalog, TableDef};
use crate::txn::TxnManager;
use crate::types::SqlType;

/// The names of the metatables, as they must be written (quoted, lower case).
pub const NAMES: &[&str] = &[
    "#tables",
    "#columns",
    "#primary_keys",
    "#index_info",
    "#table_partitions",
    "#views",
    "#databases",
];

/// What a metatable is built from.
pub struct MetaSource<'a> {
    pub database: &'a str,
    pub catalog: &'a Catalog,
    pub txns: &'a TxnManager,
}

/// One column of a metatable under construction.
enum Values {
    Text(Vec<Option<String>>),
    Int16(Vec<Option<i16>>),
    Int32(Vec<Option<i32>>),
    Int64(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Millis(Vec<Option<i64>>),
}

impl Values {
    fn field(&self, name: &str) -> Field {
        let data_type = match self {
            Values::Text(_) => DataType::Utf8,
            Values::Int16(_) => DataType::Int16,
            Values::Int32(_) => DataType::Int32,
            Values::Int64(_) => DataType::Int64,
            Values::Bool(_) => DataType::Boolean,
            Values::Millis(_) => DataType::Timestamp(TimeUnit::Millisecond, None),
        };
        Field::new(name, data_type, true)
    }

    fn array(self) -> ArrayRef {
        match self {
            Values::Text(v) => Arc::new(StringArray::from(v)),
            Values::Int16(v) => Arc::new(Int16Array::from(v)),
            Values::Int32(v) => Arc::new(Int32Array::from(v)),
            Values::Int64(v) => Arc::new(Int64Array::from(v)),
            Values::Bool(v) => Arc::new(BooleanArray::from(v)),
            Values::Millis(v) => Arc::new(TimestampMillisecondArray::from(v)),
        }
    }
}

fn table_of(columns: Vec<(&str, Values)>) -> Result<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, values)| values.field(name))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns.into_iter().map(|(_, v)| v.array()).collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

fn text(value: impl Into<String>) -> Option<String> {
    Some(value.into())
}

/// The metatable `name`, or `None` when there is no such metatable.
pub fn meta_table(name: &str, source: &MetaSource) -> Option<Result<Arc<dyn TableProvider>>> {
    let tables: Vec<Arc<TableDef>> = source.catalog.tables().iter().map(|t| t.def()).collect();
    let built = match name {
        "#tables" => tables_table(source.database, &tables),
        "#columns" => columns_table(source.database, &tables),
        "#primary_keys" => primary_keys_table(source.database, &tables),
        "#index_info" => index_info_table(source.database, &tables),
        "#table_partitions" => partitions_table(source),
        "#views" => views_table(source),
        "#databases" => table_of(vec![
            ("database_name", Values::Text(vec![text(source.database)])),
            ("database_id", Values::Int64(vec![Some(0)])),
        ]),
        _ => return None,
    };
    Some(built)
}

/// GridDB's name of a column type (without precision); PostgreSQL-only types keep theirs.
fn type_name(ty: &SqlType) -> String {
    match ty {
        SqlType::Bool => "BOOL".into(),
        SqlType::Byte => "BYTE".into(),
        SqlType::Short => "SHORT".into(),
        SqlType::Integer => "INTEGER".into(),
        SqlType::Long => "LONG".into(),
        SqlType::Float => "FLOAT".into(),
        SqlType::Double => "DOUBLE".into(),
        SqlType::Text { .. } => "STRING".into(),
        SqlType::Blob => "BLOB".into(),
        SqlType::Timestamp { .. } => "TIMESTAMP".into(),
        other => other.pg_name().to_uppercase(),
    }
}

fn interval_text(spec: &IntervalSpec) -> (Option<String>, Option<String>) {
    (
        text(spec.width.to_string()),
        spec.unit.map(|u| u.name().to_string()),
    )
}

fn tables_table(database: &str, tables: &[Arc<TableDef>]) -> Result<Arc<dyn TableProvider>> {
    let n = tables.len();
    let mut names = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut expiration_time = Vec::with_capacity(n);
    let mut expiration_unit = Vec::with_capacity(n);
    let mut expiration_type = Vec::with_capacity(n);
    let mut partition_type = Vec::with_capacity(n);
    let mut partition_column = Vec::with_capacity(n);
    let mut interval_value = Vec::with_capacity(n);
    let mut interval_unit = Vec::with_capacity(n);
    let mut division_count = Vec::with_capacity(n);
    let mut sub_type = Vec::with_capacity(n);
    let mut sub_column = Vec::with_capacity(n);
    let mut sub_count = Vec::with_capacity(n);
    for def in tables {
        let placement = &def.placement;
        names.push(text(&def.name));
        kinds.push(text(if placement.timeseries {
            "TIMESERIES"
        } else {
            "COLLECTION"
        }));
        expiration_time.push(placement.expiry.map(|e| e.time as i32));
        expiration_unit.push(placement.expiry.map(|e| e.unit.name().to_string()));
        expiration_type.push(placement.expiry.map(|_| "PARTITION".to_string()));
        let column_name = |c: usize| text(&def.columns[c].name);
        match &placement.partitioning {
            Partitioning::Single => {
                partition_type.push(None);
                partition_column.push(None);
                interval_value.push(None);
                interval_unit.push(None);
                division_count.push(None);
                sub_type.push(None);
                sub_column.push(None);
                sub_count.push(None);
            }
            Partitioning::Hash(spec) => {
                partition_type.push(text("HASH"));
                partition_column.push(column_name(spec.column));
                interval_value.push(None);
                interval_unit.push(None);
                division_count.push(Some(spec.count as i32));
                sub_type.push(None);
                sub_column.push(None);
                sub_count.push(None);
            }
            Partitioning::Interval(spec) => {
                partition_type.push(text("INTERVAL"));
                partition_column.push(column_name(spec.column));
                let (value, unit) = interval_text(spec);
                interval_value.push(value);
                interval_unit.push(unit);
                division_count.push(None);
                sub_type.push(spec.subpartition.map(|_| "HASH".to_string()));
                sub_column.push(spec.subpartition.and_then(|s| column_name(s.column)));
                sub_count.push(spec.subpartition.map(|s| s.count as i32));
            }
        }
    }
    let nulls_text = || Values::Text(vec![None; n]);
    table_of(vec![
        ("database_name", Values::Text(vec![text(database); n])),
        ("table_name", Values::Text(names)),
        ("table_optional_type", Values::Text(kinds)),
        ("data_affinity", nulls_text()),
        ("expiration_time", Values::Int32(expiration_time)),
        ("expiration_time_unit", Values::Text(expiration_unit)),
        ("expiration_division_count", Values::Int32(vec![None; n])),
        ("partition_type", Values::Text(partition_type)),
        ("partition_column", Values::Text(partition_column)),
        ("partition_interval_value", Values::Text(interval_value)),
        ("partition_interval_unit", Values::Text(interval_unit)),
        ("partition_division_count", Values::Int32(division_count)),
        ("subpartition_type", Values::Text(sub_type)),
        ("subpartition_column", Values::Text(sub_column)),
        ("subpartition_interval_value", nulls_text()),
        ("subpartition_interval_unit", nulls_text()),
        ("subpartition_division_count", Values::Int32(sub_count)),
        ("expiration_type", Values::Text(expiration_type)),
    ])
}

fn columns_table(database: &str, tables: &[Arc<TableDef>]) -> Result<Arc<dyn TableProvider>> {
    let mut table_names = Vec::new();
    let mut positions = Vec::new();
    let mut names = Vec::new();
    let mut types = Vec::new();
    let mut nullable = Vec::new();
    let mut digits = Vec::new();
    let mut octets = Vec::new();
    for def in tables {
        for (i, column) in def.columns.iter().enumerate() {
            table_names.push(text(&def.name));
            positions.push(Some(i as i32 + 1));
            names.push(text(&column.name));
            types.push(text(type_name(&column.ty)));
            nullable.push(Some(column.nullable));
            digits.push(match &column.ty {
                SqlType::Timestamp { unit } => Some(match unit {
                    TimeUnit::Second => 0,
                    TimeUnit::Millisecond => 3,
                    TimeUnit::Microsecond => 6,
                    TimeUnit::Nanosecond => 9,
                }),
                SqlType::TimestampTz => Some(6),
                _ => None,
            });
            octets.push(match &column.ty {
                SqlType::Text {
                    max_len: Some(n), ..
                } => i32::try_from(*n).ok().map(|n| n.saturating_mul(4)),
                _ => None,
            });
        }
    }
    let n = names.len();
    table_of(vec![
        ("database_name", Values::Text(vec![text(database); n])),
        ("table_name", Values::Text(table_names)),
        ("ordinal_position", Values::Int32(positions)),
        ("column_name", Values::Text(names)),
        ("type_name", Values::Text(types)),
        ("nullable", Values::Bool(nullable)),
        ("compression_relative", Values::Text(vec![None; n])),
        ("compression_rate", Values::Int64(vec![None; n])),
        ("compression_span", Values::Int64(vec![None; n])),
        ("compression_width", Values::Int64(vec![None; n])),
        ("decimal_digits", Values::Int32(digits)),
        ("char_octet_length", Values::Int32(octets)),
    ])
}

fn primary_keys_table(database: &str, tables: &[Arc<TableDef>]) -> Result<Arc<dyn TableProvider>> {
    let (mut table_names, mut names, mut seqs) = (Vec::new(), Vec::new(), Vec::new());
    for def in tables {
        for (i, column) in def.primary_key.iter().enumerate() {
            table_names.push(text(&def.name));
            names.push(text(&def.columns[*column].name));
            seqs.push(Some(i as i16 + 1));
        }
    }
    let n = names.len();
    table_of(vec![
        ("database_name", Values::Text(vec![text(database); n])),
        ("table_name", Values::Text(table_names)),
        ("column_name", Values::Text(names)),
        ("key_seq", Values::Int16(seqs)),
    ])
}

fn index_info_table(database: &str, tables: &[Arc<TableDef>]) -> Result<Arc<dyn TableProvider>> {
    let (mut table_names, mut index_names, mut positions, mut names) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for def in tables {
        for index in &def.indexes {
            for (i, column) in index.columns.iter().enumerate() {
                table_names.push(text(&def.name));
                index_names.push(text(&index.name));
                positions.push(Some(i as i16 + 1));
                names.push(text(&def.columns[*column].name));
            }
        }
    }
    let n = names.len();
    table_of(vec![
        ("database_name", Values::Text(vec![text(database); n])),
        ("table_name", Values::Text(table_names)),
        ("index_name", Values::Text(index_names)),
        ("index_type", Values::Text(vec![text("TREE"); n])),
        ("ordinal_position", Values::Int16(positions)),
        ("column_name", Values::Text(names)),
    ])
}

fn views_table(source: &MetaSource) -> Result<Arc<dyn TableProvider>> {
    let views = source.catalog.views();
    let n = views.len();
    table_of(vec![
        (
            "database_name",
            Values::Text(vec![text(source.database); n]),
        ),
        (
            "view_name",
            Values::Text(views.iter().map(|v| text(&v.name)).collect()),
        ),
        (
            "view_definition",
            Values::Text(views.iter().map(|v| text(&v.sql)).collect()),
        ),
    ])
}

/// A stored interval-key value as text: timestamps in ISO 8601 (UTC, milliseconds or finer),
/// integers in decimal.
fn key_text(ty: &SqlType, raw: i64) -> String {
    let Some(per_milli) = raw_per_milli(ty) else {
        return raw.to_string();
    };
    let nanos_per_raw = 1_000_000 / per_milli;
    let nanos = i128::from(raw) * i128::from(nanos_per_raw);
    let seconds = nanos.div_euclid(1_000_000_000) as i64;
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    let format = match per_milli {
        1 => chrono::SecondsFormat::Millis,
        1_000 => chrono::SecondsFormat::Micros,
        _ => chrono::SecondsFormat::Nanos,
    };
    chrono::DateTime::from_timestamp(seconds, sub)
        .map(|t| t.to_rfc3339_opts(format, true))
        .unwrap_or_else(|| raw.to_string())
}

fn partitions_table(source: &MetaSource) -> Result<Arc<dyn TableProvider>> {
    let visible = source.txns.visible();
    let now = source.txns.clock.now_millis();
    let mut rows = PartitionRows::default();
    for table in source.catalog.tables() {
        let def = table.def();
        let set = table.partitions();
        for partition in set.iter() {
            let key = partition.key();
            let interval = def.partitioning().interval();
            let hash = def.partitioning().hash();
            let seq = match (interval, hash) {
                (Some(_), Some(h)) => key
                    .interval
                    .checked_mul(i64::from(h.count))
                    .and_then(|i| i.checked_add(i64::from(key.bucket))),
                (Some(_), None) => Some(key.interval),
                _ => Some(i64::from(key.bucket)),
            };
            rows.table.push(text(&def.name));
            rows.seq.push(seq);
            rows.name.push(text(format!(
                "{}@{}_{}",
                def.name, key.interval, key.bucket
            )));
            match interval {
                Some(spec) => {
                    let ty = &def.columns[spec.column].ty;
                    let (lower, upper) = spec.bounds(key.interval);
                    rows.lower.push(text(key_text(ty, lower)));
                    rows.upper.push(text(key_text(ty, upper)));
                }
                None => {
                    rows.lower.push(None);
                    rows.upper.push(None);
                }
            }
            rows.bucket.push(hash.map(|_| key.bucket as i32));
            rows.count
                .push(Some(partition.visible_count(visible) as i64));
            let (memory, swapped) = partition.residency();
            rows.memory.push(Some(memory as i64));
            rows.swapped.push(Some(swapped as i64));
            let expires = match (&def.placement.expiry, interval) {
                (Some(expiry), Some(spec)) => Some(
                    spec.upper_millis(key.interval)
                        .saturating_add(expiry.retention_millis()),
                ),
                _ => None,
            };
            rows.expires.push(expires);
            rows.status
                .push(text(if def.placement.expired(key.interval, now) {
                    "EXPIRED"
                } else {
                    "ACTIVE"
                }));
        }
    }
    let n = rows.table.len();
    table_of(vec![
        (
            "database_name",
            Values::Text(vec![text(source.database); n]),
        ),
        ("table_name", Values::Text(rows.table)),
        ("partition_seq", Values::Int64(rows.seq)),
        ("partition_name", Values::Text(rows.name)),
        ("partition_boundary_value", Values::Text(rows.lower)),
        // Kura: the exclusive upper bound of the interval.
        ("partition_upper_boundary_value", Values::Text(rows.upper)),
        // Kura: the hash bucket (hash and interval-hash tables).
        ("hash_bucket", Values::Int32(rows.bucket)),
        ("cluster_partition_index", Values::Int32(vec![Some(0); n])),
        ("worker_index", Values::Int32(vec![Some(0); n])),
        // Kura: rows visible now.
        ("num_rows", Values::Int64(rows.count)),
        ("partition_expired_check_time", Values::Millis(rows.expires)),
        ("partition_status", Values::Text(rows.status)),
        // Kura: row data and version stamps held in memory.
        ("memory_bytes", Values::Int64(rows.memory)),
        // Kura: row data swapped out to files (over /dataStore/storeMemoryLimit).
        ("swapped_bytes", Values::Int64(rows.swapped)),
    ])
}

#[derive(Default)]
struct PartitionRows {
    table: Vec<Option<String>>,
    seq: Vec<Option<i64>>,
    name: Vec<Option<String>>,
    lower: Vec<Option<String>>,
    upper: Vec<Option<String>>,
    bucket: Vec<Option<i32>>,
    count: Vec<Option<i64>>,
    expires: Vec<Option<i64>>,
    status: Vec<Option<String>>,
    memory: Vec<Option<i64>>,
    swapped: Vec<Option<i64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_renders_time_keys_in_their_precision() {
        let ms = SqlType::Timestamp {
            unit: TimeUnit::Millisecond,
        };
        assert_eq!(key_text(&ms, 86_400_000), "1970-01-02T00:00:00.000Z");
        assert_eq!(key_text(&ms, -1), "1969-12-31T23:59:59.999Z");
        let us = SqlType::Timestamp {
            unit: TimeUnit::Microsecond,
        };
        assert_eq!(key_text(&us, 1), "1970-01-01T00:00:00.000001Z");
        assert_eq!(key_text(&SqlType::Long, -5000), "-5000");
    }
}
