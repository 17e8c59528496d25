//! The on-disk form of catalog objects: table and view definitions as they appear in the
//! transaction log and in checkpoint manifests.
//!
//! Invariants: converting a definition to its stored form and back gives an equal definition
//! (types go through [`SqlType::storage_name`], values through [`StoredValue`] without loss);
//! the stored form only grows new optional fields, so old files stay readable.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};

use super::catalog::ViewDef;
use super::partitioning::{Expiry, Partitioning};
use super::schema::{ColumnDef, IndexDef, Placement, TableDef, TableId};
use crate::error::{KuraError, Result};
use crate::types::{SqlType, parse_type_name};

/// A single value of a column type, without loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredValue {
    Null,
    Bool(bool),
    /// Integers, and timestamps and dates in their Arrow unit.
    Int(i64),
    /// The bits of an `f64` (JSON has no NaN or infinity).
    FloatBits(u64),
    /// The unscaled value of a decimal, as text (it may exceed 64 bits).
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
}

impl StoredValue {
    pub fn from_scalar(value: &ScalarValue) -> Result<StoredValue> {
        use ScalarValue as S;
        if value.is_null() {
            return Ok(StoredValue::Null);
        }
        Ok(match value {
            S::Boolean(Some(b)) => StoredValue::Bool(*b),
            S::Int8(Some(v)) => StoredValue::Int(i64::from(*v)),
            S::Int16(Some(v)) => StoredValue::Int(i64::from(*v)),
            S::Int32(Some(v)) => StoredValue::Int(i64::from(*v)),
            S::Int64(Some(v)) => StoredValue::Int(*v),
            S::Date32(Some(v)) => StoredValue::Int(i64::from(*v)),
            S::TimestampSecond(Some(v), _)
            | S::TimestampMillisecond(Some(v), _)
            | S::TimestampMicrosecond(Some(v), _)
            | S::TimestampNanosecond(Some(v), _) => StoredValue::Int(*v),
            S::Float32(Some(v)) => StoredValue::FloatBits(f64::from(*v).to_bits()),
            S::Float64(Some(v)) => StoredValue::FloatBits(v.to_bits()),
            S::Decimal128(Some(v), _, _) => StoredValue::Decimal(v.to_string()),
            S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s)) => {
                StoredValue::Text(s.clone())
            }
            S::Binary(Some(b)) | S::LargeBinary(Some(b)) | S::BinaryView(Some(b)) => {
                StoredValue::Bytes(b.clone())
            }
            other => {
                return Err(KuraError::internal(format!(
                    "a value of type {} cannot be stored",
                    other.data_type()
                )));
            }
        })
    }

    /// The value as a scalar of `ty`'s Arrow type.
    pub fn to_scalar(&self, ty: &SqlType) -> Result<ScalarValue> {
        let data_type = ty.arrow_type();
        let mismatch =
            || KuraError::internal(format!("stored value {self:?} does not fit type {ty}"));
        let value = match (self, &data_type) {
            (StoredValue::Null, _) => return Ok(ScalarValue::try_from(&data_type)?),
            (StoredValue::Bool(b), DataType::Boolean) => ScalarValue::Boolean(Some(*b)),
            (StoredValue::Int(v), DataType::Int8) => {
                ScalarValue::Int8(Some(i8::try_from(*v).map_err(|_| mismatch())?))
            }
            (StoredValue::Int(v), DataType::Int16) => {
                ScalarValue::Int16(Some(i16::try_from(*v).map_err(|_| mismatch())?))
            }
            (StoredValue::Int(v), DataType::Int32) => {
                ScalarValue::Int32(Some(i32::try_from(*v).map_err(|_| mismatch())?))
            }
            (StoredValue::Int(v), DataType::Int64) => ScalarValue::Int64(Some(*v)),
            (StoredValue::Int(v), DataType::Date32) => {
                ScalarValue::Date32(Some(i32::try_from(*v).map_err(|_| mismatch())?))
            }
            (StoredValue::Int(v), DataType::Timestamp(unit, tz)) => {
                let (v, tz) = (Some(*v), tz.clone());
                match unit {
                    TimeUnit::Second => ScalarValue::TimestampSecond(v, tz),
                    TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(v, tz),
                    TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(v, tz),
                    TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(v, tz),
                }
            }
            (StoredValue::FloatBits(bits), DataType::Float32) => {
                ScalarValue::Float32(Some(f64::from_bits(*bits) as f32))
            }
            (StoredValue::FloatBits(bits), DataType::Float64) => {
                ScalarValue::Float64(Some(f64::from_bits(*bits)))
            }
            (StoredValue::Decimal(text), DataType::Decimal128(p, s)) => {
                ScalarValue::Decimal128(Some(text.parse().map_err(|_| mismatch())?), *p, *s)
            }
            (StoredValue::Text(s), DataType::Utf8) => ScalarValue::Utf8(Some(s.clone())),
            (StoredValue::Bytes(b), DataType::Binary) => ScalarValue::Binary(Some(b.clone())),
            _ => return Err(mismatch()),
        };
        Ok(value)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub nullable: bool,
    pub default: Option<String>,
    pub missing: StoredValue,
}

/// A table definition as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTable {
    pub id: TableId,
    /// The database holding the table; files written before databases existed say nothing,
    /// which means `public`.
    #[serde(
        default = "public_database",
        skip_serializing_if = "is_public_database"
    )]
    pub database: String,
    pub name: String,
    pub columns: Vec<StoredColumn>,
    pub primary_key: Vec<usize>,
    pub indexes: Vec<IndexDef>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timeseries: bool,
    #[serde(default, skip_serializing_if = "Partitioning::is_single")]
    pub partitioning: Partitioning,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<Expiry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_intervals: Vec<i64>,
}

/// A view definition as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredView {
    #[serde(
        default = "public_database",
        skip_serializing_if = "is_public_database"
    )]
    pub database: String,
    pub name: String,
    pub sql: String,
    pub columns: Vec<String>,
}

/// The database every server has; stored definitions without a database belong to it.
pub const PUBLIC_DATABASE: &str = "public";

pub fn public_database() -> String {
    PUBLIC_DATABASE.to_string()
}

fn is_public_database(name: &str) -> bool {
    name == PUBLIC_DATABASE
}

impl StoredTable {
    pub fn from_def(def: &TableDef, database: &str) -> Result<StoredTable> {
        let columns = def
            .columns
            .iter()
            .map(|c| {
                Ok(StoredColumn {
                    name: c.name.clone(),
                    ty: c.ty.storage_name(),
                    nullable: c.nullable,
                    default: c.default.clone(),
                    missing: StoredValue::from_scalar(&c.missing)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(StoredTable {
            id: def.id,
            database: database.to_string(),
            name: def.name.clone(),
            columns,
            primary_key: def.primary_key.clone(),
            indexes: def.indexes.clone(),
            timeseries: def.placement.timeseries,
            partitioning: def.placement.partitioning,
            expiry: def.placement.expiry,
            dropped_intervals: def.placement.dropped_intervals.iter().copied().collect(),
        })
    }

    pub fn to_def(&self) -> Result<TableDef> {
        let columns = self
            .columns
            .iter()
            .map(|c| {
                let ty = parse_type_name(&c.ty)?;
                Ok(ColumnDef {
                    name: c.name.clone(),
                    missing: c.missing.to_scalar(&ty)?,
                    ty,
                    nullable: c.nullable,
                    default: c.default.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let width = columns.len();
        let bad_position = |p: &usize| *p >= width;
        if self.primary_key.iter().any(bad_position)
            || self
                .indexes
                .iter()
                .any(|i| i.columns.iter().any(bad_position))
            || self.partitioning.key_columns().any(|c| bad_position(&c))
        {
            return Err(KuraError::internal(format!(
                "stored definition of table \"{}\" names a column that does not exist",
                self.name
            )));
        }
        Ok(TableDef::new(
            self.id,
            self.name.clone(),
            columns,
            self.primary_key.clone(),
            self.indexes.clone(),
        )
        .with_placement(Placement {
            timeseries: self.timeseries,
            partitioning: self.partitioning,
            expiry: self.expiry,
            dropped_intervals: self.dropped_intervals.iter().copied().collect(),
        }))
    }
}

impl StoredView {
    pub fn from_def(view: &ViewDef, database: &str) -> StoredView {
        StoredView {
            database: database.to_string(),
            name: view.name.clone(),
            sql: view.sql.clone(),
            columns: view.columns.clone(),
        }
    }

    pub fn to_def(&self) -> ViewDef {
        ViewDef {
            name: self.name.clone(),
            sql: self.sql.clone(),
            columns: self.columns.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_their_stored_form() {
        let cases = [
            (SqlType::Bool, ScalarValue::Boolean(Some(true))),
            (SqlType::Byte, ScalarValue::Int8(Some(-3))),
            (SqlType::Double, ScalarValue::Float64(Some(f64::NAN))),
            (SqlType::Float, ScalarValue::Float32(Some(1.5))),
            (
                SqlType::Numeric {
                    precision: 38,
                    scale: 2,
                },
                ScalarValue::Decimal128(Some(i128::MAX / 3), 38, 2),
            ),
            (SqlType::Blob, ScalarValue::Binary(Some(vec![0, 255]))),
            (SqlType::TimestampTz, ScalarValue::Int64(None)),
            (SqlType::Date, ScalarValue::Date32(Some(19_000))),
        ];
        for (ty, value) in cases {
            let value = value.cast_to(&ty.arrow_type()).unwrap();
            let stored = StoredValue::from_scalar(&value).unwrap();
            let text = serde_json::to_string(&stored).unwrap();
            let back: StoredValue = serde_json::from_str(&text).unwrap();
            let restored = back.to_scalar(&ty).unwrap();
            assert_eq!(format!("{restored:?}"), format!("{value:?}"), "{ty:?}");
        }
    }
}
