//! GridDB's table kinds, partitioning and expiry in DDL: CREATE TABLE's `USING TIMESERIES`,
//! `WITH (...)` options and `PARTITION BY` (see `table_syntax.rs`) are read into a
//! [`Placement`], enforcing every rule GridDB has for them; `ALTER TABLE ... DROP PARTITION
//! FOR (value)` removes an interval.
//!
//! Invariant: a `Placement` returned here is valid for the columns and primary key it was
//! checked against: its key columns exist, have allowed types, interval keys are NOT NULL,
//! and partitioning keys are primary-key columns unless `/sql/partitioningRowkeyConstraint`
//! is off.

use datafusion::sql::sqlparser::ast::{
    CreateTable, CreateTableOptions, Expr, HiveIOFormat, Ident, SqlOption, Value,
};

use super::exec::Exec;
use super::names::normalize;
use super::table_syntax::{PartitionClause, TIMESERIES};
use super::template::{aliased, parse_query, select_mut};
use crate::error::{KuraError, Result, sqlstate};
use crate::storage::partitioning::{
    Expiry, HashSpec, IntervalSpec, Partitioning, TimeUnitName, hashable,
};
use crate::storage::stored::StoredTable;
use crate::storage::{ColumnDef, Placement, Table};
use crate::types::SqlType;
use crate::wal::CatalogChange;
use std::sync::Arc;

/// Most hash partitions (or interval-hash subpartitions) a table may have.
pub const MAX_HASH_PARTITIONS: u64 = 1024;

fn invalid(message: impl Into<String>) -> KuraError {
    KuraError::new(sqlstate::INVALID_TABLE_DEFINITION, message)
}

fn bad_option(message: impl Into<String>) -> KuraError {
    KuraError::new(sqlstate::INVALID_PARAMETER_VALUE, message)
}

/// The placement a CREATE TABLE asks for, checked against its columns and primary key.
pub fn table_placement(
    create: &CreateTable,
    columns: &[ColumnDef],
    primary_key: &[usize],
    rowkey_constraint: bool,
) -> Result<Placement> {
    let timeseries = match create
        .hive_formats
        .as_ref()
        .and_then(|h| h.storage.as_ref())
    {
        Some(HiveIOFormat::Using { format }) if format.value == TIMESERIES => true,
        Some(other) => {
            return Err(KuraError::unsupported(format!(
                "table storage format {other:?} is not supported"
            )));
        }
        None => false,
    };
    if timeseries {
        check_timeseries_key(columns, primary_key)?;
    }
    let partitioning = match create.partition_by.as_deref() {
        Some(expr) => partitioning(
            &PartitionClause::from_expr(expr)?,
            columns,
            primary_key,
            rowkey_constraint,
        )?,
        None => Partitioning::Single,
    };
    let options = match &create.table_options {
        CreateTableOptions::None => &[][..],
        CreateTableOptions::With(options) => options.as_slice(),
        other => {
            return Err(KuraError::unsupported(format!(
                "table options {other} are not supported"
            )));
        }
    };
    let expiry = expiry(options, &partitioning, columns)?;
    Ok(Placement {
        timeseries,
        partitioning,
        expiry,
        dropped_intervals: Default::default(),
    })
}

/// A time-series table's first column is its only primary-key column, a TIMESTAMP.
fn check_timeseries_key(columns: &[ColumnDef], primary_key: &[usize]) -> Result<()> {
    use datafusion::arrow::datatypes::TimeUnit;
    let first_is_timestamp = columns.first().is_some_and(|c| {
        matches!(
            c.ty,
            SqlType::Timestamp {
                unit: TimeUnit::Millisecond | TimeUnit::Microsecond
            } | SqlType::TimestampTz
        )
    });
    if primary_key != [0] || !first_is_timestamp {
        return Err(invalid(
            "a time-series table (USING TIMESERIES) needs its first column to be a TIMESTAMP PRIMARY KEY (millisecond or microsecond precision) and no other key column",
        ));
    }
    Ok(())
}

fn column_position(columns: &[ColumnDef], ident: &Ident) -> Result<usize> {
    let name = normalize(ident);
    columns
        .iter()
        .position(|c| c.name == name)
        .or_else(|| {
            columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(&name))
        })
        .ok_or_else(|| {
            KuraError::new(
                sqlstate::UNDEFINED_COLUMN,
                format!("partitioning column \"{name}\" does not exist"),
            )
        })
}

fn hash_spec(columns: &[ColumnDef], column: &Ident, count: u64, what: &str) -> Result<HashSpec> {
    let column = column_position(columns, column)?;
    if !(1..=MAX_HASH_PARTITIONS).contains(&count) {
        return Err(invalid(format!(
            "the number of {what} must be between 1 and {MAX_HASH_PARTITIONS}, not {count}"
        )));
    }
    let ty = &columns[column].ty;
    if !hashable(ty) {
        return Err(invalid(format!(
            "a column of type {ty} cannot be a hash partitioning key"
        )));
    }
    Ok(HashSpec {
        column,
        count: count as u32,
    })
}

fn partitioning(
    clause: &PartitionClause,
    columns: &[ColumnDef],
    primary_key: &[usize],
    rowkey_constraint: bool,
) -> Result<Partitioning> {
    let partitioning = match clause {
        PartitionClause::Hash { column, count } => {
            Partitioning::Hash(hash_spec(columns, column, *count, "hash partitions")?)
        }
        PartitionClause::Range {
            column,
            width,
            unit,
            subpartition,
        } => {
            let key = column_position(columns, column)?;
            if columns[key].nullable {
                return Err(invalid(format!(
                    "interval partitioning column \"{}\" must be NOT NULL",
                    columns[key].name
                )));
            }
            let unit = match unit {
                Some(name) => Some(TimeUnitName::parse(name).ok_or_else(|| {
                    invalid(format!(
                        "interval unit {name} is not allowed: use DAY, HOUR, MINUTE or SECOND"
                    ))
                })?),
                None => None,
            };
            let subpartition = match subpartition {
                Some((column, count)) => {
                    Some(hash_spec(columns, column, *count, "hash subpartitions")?)
                }
                None => None,
            };
            Partitioning::Interval(IntervalSpec::new(
                key,
                &columns[key].ty,
                *width,
                unit,
                subpartition,
            )?)
        }
    };
    check_rowkey_constraint(&partitioning, columns, primary_key, rowkey_constraint)?;
    Ok(partitioning)
}

/// With the row-key constraint on, every partitioning column must belong to the primary key,
/// so that keys are unique across data partitions and not only within each.
pub fn check_rowkey_constraint(
    partitioning: &Partitioning,
    columns: &[ColumnDef],
    primary_key: &[usize],
    rowkey_constraint: bool,
) -> Result<()> {
    if rowkey_constraint && !primary_key.is_empty() {
        for column in partitioning.key_columns() {
            if !primary_key.contains(&column) {
                return Err(invalid(format!(
                "partitioning column \"{}\" must be part of the primary key",
                columns[column].name
            ))
            .with_hint("Set /sql/partitioningRowkeyConstraint to false to allow it; the primary key is then unique only within each data partition."));
            }
        }
    }
    Ok(())
}

fn option_text(key: &str, value: &Expr) -> Result<String> {
    match value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s.clone()),
            _ => Err(bad_option(format!("option {key} needs a string value"))),
        },
        Expr::Identifier(ident) => Ok(ident.value.clone()),
        _ => Err(bad_option(format!("option {key} needs a string value"))),
    }
}

fn option_integer(key: &str, value: &Expr) -> Result<i64> {
    let parsed = match value {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<i64>().ok(),
            _ => None,
        },
        _ => None,
    };
    parsed.ok_or_else(|| bad_option(format!("option {key} needs an integer value")))
}

/// Reads the `WITH (...)` options: GridDB's expiry settings and placement hints.
fn expiry(
    options: &[SqlOption],
    partitioning: &Partitioning,
    columns: &[ColumnDef],
) -> Result<Option<Expiry>> {
    let mut kind: Option<String> = None;
    let mut time: Option<i64> = None;
    let mut unit: Option<TimeUnitName> = None;
    for option in options {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(bad_option(format!(
                "table option {option} is not supported"
            )));
        };
        let name = key.value.to_ascii_lowercase();
        match name.as_str() {
            "expiration_type" => kind = Some(option_text(&name, value)?.to_ascii_uppercase()),
            "expiration_time" => {
                let n = option_integer(&name, value)?;
                if !(1..=i64::from(i32::MAX)).contains(&n) {
                    return Err(bad_option(format!(
                        "expiration_time must be between 1 and {}, not {n}",
                        i32::MAX
                    )));
                }
                time = Some(n);
            }
            "expiration_time_unit" => {
                let text = option_text(&name, value)?;
                unit = Some(TimeUnitName::parse(&text).ok_or_else(|| {
                    bad_option(format!(
                        "expiration_time_unit must be DAY, HOUR, MINUTE, SECOND or MILLISECOND, not {text}"
                    ))
                })?);
            }
            "expiration_division_count" => {
                return Err(bad_option(
                    "expiration_division_count applies to ROW expiry only",
                ));
            }
            "data_affinity" => {
                let text = option_text(&name, value)?;
                if text.len() > 8 {
                    return Err(bad_option("data_affinity may be at most 8 characters"));
                }
            }
            "interval_worker_group" | "interval_worker_group_position" => {
                option_integer(&name, value)?;
            }
            // PostgreSQL's free space per heap page (pgbench -i sets it): a column store
            // appends whole chunks, so there is no page to leave room in.
            "fillfactor" => {
                let n = option_integer(&name, value)?;
                if !(10..=100).contains(&n) {
                    return Err(bad_option(format!(
                        "value {n} out of bounds for option \"fillfactor\""
                    ))
                    .with_detail("Valid values are between \"10\" and \"100\"."));
                }
            }
            _ => {
                return Err(bad_option(format!(
                    "unrecognized table option \"{}\"",
                    key.value
                )));
            }
        }
    }
    if kind.is_none() && time.is_none() && unit.is_none() {
        return Ok(None);
    }
    match kind.as_deref().unwrap_or("PARTITION") {
        "PARTITION" => {}
        "ROW" => {
            return Err(KuraError::unsupported(
                "ROW expiry is not supported; use expiration_type='PARTITION'",
            ));
        }
        other => {
            return Err(bad_option(format!(
                "expiration_type must be PARTITION or ROW, not {other}"
            )));
        }
    }
    let time = time.ok_or_else(|| bad_option("expiry needs expiration_time"))?;
    let time_key = partitioning.interval().is_some_and(|spec| {
        crate::storage::partitioning::raw_per_milli(&columns[spec.column].ty).is_some()
    });
    if !time_key {
        return Err(invalid(
            "PARTITION expiry needs interval or interval-hash partitioning on a TIMESTAMP column",
        ));
    }
    Ok(Some(Expiry {
        time,
        unit: unit.unwrap_or(TimeUnitName::Day),
    }))
}

impl Exec<'_> {
    /// `ALTER TABLE t DROP PARTITION FOR (value)`: removes the interval holding `value` (all
    /// its hash subpartitions); later inserts into that interval fail.
    pub async fn drop_partition(&self, table: &Arc<Table>, value: &Expr) -> Result<()> {
        let def = table.def();
        let Some(spec) = def.partitioning().interval().copied() else {
            return Err(KuraError::new(
                sqlstate::WRONG_OBJECT_TYPE,
                format!(
                    "table \"{}\" is not interval partitioned: DROP PARTITION applies to interval and interval-hash tables only",
                    def.name
                ),
            ));
        };
        let key_type = def.columns[spec.column].ty.arrow_type();
        let mut query = parse_query("SELECT 1")?;
        select_mut(&mut query)?.projection = vec![aliased(value.clone(), "v")];
        let plan = self.plan_query(query).await?;
        let (_, batches) = self.collect(&plan).await?;
        let batch = batches
            .first()
            .filter(|b| b.num_rows() == 1)
            .ok_or_else(|| KuraError::internal("DROP PARTITION value produced no row"))?;
        let value = datafusion::common::ScalarValue::try_from_array(batch.column(0), 0)?;
        // Arrow casts a number to a timestamp, but a number names no instant in SQL.
        let numeric_for_time = matches!(
            key_type,
            datafusion::arrow::datatypes::DataType::Timestamp(..)
        ) && value.data_type().is_numeric();
        let raw = value
            .cast_to(&key_type)
            .ok()
            .filter(|_| !numeric_for_time)
            .and_then(|v| crate::storage::partitioning::raw_integer(&v))
            .ok_or_else(|| {
                KuraError::new(
                    sqlstate::DATATYPE_MISMATCH,
                    format!(
                        "DROP PARTITION FOR needs a value of the partitioning key's type {}, not {value}",
                        def.columns[spec.column].ty
                    ),
                )
            })?;
        let interval = spec.interval_of(raw);
        self.db
            .change_catalog(|| {
                if table.is_dropped() {
                    return Err(KuraError::undefined_table(&def.name));
                }
                let mut current = (*table.def()).clone();
                current.placement.dropped_intervals.insert(interval);
                Ok(CatalogChange::PutTable(Box::new(StoredTable::from_def(
                    &current,
                    &self.db.name,
                )?)))
            })
            .await
    }
}
