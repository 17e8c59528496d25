//! Column types: how a SQL type name (GridDB's or PostgreSQL's spelling) maps to a Kura column
//! type, to its Arrow representation, and to its PostgreSQL name.
//!
//! Invariant: GridDB-only spellings keep GridDB's meaning (STRING, BYTE, SHORT, LONG, FLOAT as
//! binary32, BLOB, TIMESTAMP(3|6|9)); PostgreSQL spellings keep PostgreSQL's meaning (int8 and
//! bigint are 64-bit, float8 and double precision are binary64, real is binary32).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::sql::sqlparser::ast;

use crate::error::{KuraError, Result, sqlstate};

/// The time zone Kura stores `timestamptz` values in.
pub const UTC: &str = "+00:00";

/// A column type of a Kura table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlType {
    Bool,
    Byte,
    Short,
    Integer,
    Long,
    Float,
    Double,
    Numeric { precision: u8, scale: i8 },
    Text { max_len: Option<u32>, padded: bool },
    Blob,
    Timestamp { unit: TimeUnit },
    TimestampTz,
    Date,
}

impl SqlType {
    /// Resolves a column type written in CREATE TABLE / ALTER TABLE ADD COLUMN.
    pub fn from_ast(data_type: &ast::DataType) -> Result<SqlType> {
        // Before GridDB's substring rules, which would read `int[]` as INTEGER.
        if matches!(data_type, ast::DataType::Array(_)) {
            return Err(KuraError::unsupported(format!(
                "array types are not supported in table columns: {}",
                data_type.to_string().to_lowercase()
            )));
        }
        let text = data_type.to_string();
        parse_type_name(&text)
    }

    pub fn arrow_type(&self) -> DataType {
        match self {
            SqlType::Bool => DataType::Boolean,
            SqlType::Byte => DataType::Int8,
            SqlType::Short => DataType::Int16,
            SqlType::Integer => DataType::Int32,
            SqlType::Long => DataType::Int64,
            SqlType::Float => DataType::Float32,
            SqlType::Double => DataType::Float64,
            SqlType::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            SqlType::Text { .. } => DataType::Utf8,
            SqlType::Blob => DataType::Binary,
            SqlType::Timestamp { unit } => DataType::Timestamp(*unit, None),
            SqlType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC)))
            }
            SqlType::Date => DataType::Date32,
        }
    }

    /// Recovers the column type from the Arrow type of a query result (CREATE TABLE AS).
    pub fn from_arrow(data_type: &DataType) -> Result<SqlType> {
        Ok(match data_type {
            DataType::Boolean => SqlType::Bool,
            DataType::Int8 => SqlType::Byte,
            DataType::Int16 | DataType::UInt8 => SqlType::Short,
            DataType::Int32 | DataType::UInt16 => SqlType::Integer,
            DataType::Int64 | DataType::UInt32 | DataType::Null => SqlType::Long,
            DataType::Float16 | DataType::Float32 => SqlType::Float,
            DataType::Float64 => SqlType::Double,
            DataType::Decimal128(p, s) => SqlType::Numeric {
                precision: *p,
                scale: *s,
            },
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => SqlType::Text {
                max_len: None,
                padded: false,
            },
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => SqlType::Blob,
            DataType::Timestamp(_, Some(_)) => SqlType::TimestampTz,
            DataType::Timestamp(unit, None) => SqlType::Timestamp { unit: *unit },
            DataType::Date32 | DataType::Date64 => SqlType::Date,
            other => {
                return Err(KuraError::unsupported(format!(
                    "a column of type {other} cannot be stored"
                )));
            }
        })
    }

    /// The name PostgreSQL clients know this type by.
    pub fn pg_name(&self) -> String {
        match self {
            SqlType::Bool => "boolean".into(),
            SqlType::Byte | SqlType::Short => "smallint".into(),
            SqlType::Integer => "integer".into(),
            SqlType::Long => "bigint".into(),
            SqlType::Float => "real".into(),
            SqlType::Double => "double precision".into(),
            SqlType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            SqlType::Text {
                max_len: Some(n),
                padded: true,
            } => format!("character({n})"),
            SqlType::Text {
                max_len: Some(n),
                padded: false,
            } => format!("character varying({n})"),
            SqlType::Text { .. } => "text".into(),
            SqlType::Blob => "bytea".into(),
            SqlType::Timestamp { .. } => "timestamp without time zone".into(),
            SqlType::TimestampTz => "timestamp with time zone".into(),
            SqlType::Date => "date".into(),
        }
    }

    /// A name [`parse_type_name`] maps back to exactly this type; used in the transaction log
    /// and checkpoint manifests.
    pub fn storage_name(&self) -> String {
        match self {
            SqlType::Byte => "tinyint".into(),
            SqlType::Timestamp { unit } => {
                let digits = match unit {
                    TimeUnit::Second => 0,
                    TimeUnit::Millisecond => 3,
                    TimeUnit::Microsecond => 6,
                    TimeUnit::Nanosecond => 9,
                };
                format!("timestamp({digits})")
            }
            other => other.pg_name(),
        }
    }

    /// A type name DataFusion's SQL planner maps to this type's Arrow type (or one that
    /// casts to it exactly), used to type expressions assigned to a column.
    pub fn cast_name(&self) -> String {
        match self {
            SqlType::Bool => "boolean".into(),
            SqlType::Byte => "tinyint".into(),
            SqlType::Short => "smallint".into(),
            SqlType::Integer => "integer".into(),
            SqlType::Long => "bigint".into(),
            SqlType::Float => "real".into(),
            SqlType::Double => "double precision".into(),
            SqlType::Numeric { precision, scale } => format!("decimal({precision},{scale})"),
            SqlType::Text { .. } => "varchar".into(),
            SqlType::Blob => "bytea".into(),
            SqlType::Timestamp { .. } => "timestamp".into(),
            SqlType::TimestampTz => "timestamptz".into(),
            SqlType::Date => "date".into(),
        }
    }

    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            SqlType::Byte | SqlType::Short | SqlType::Integer | SqlType::Long
        )
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pg_name())
    }
}

/// Splits `NAME(a, b)` into the upper-cased name (inner whitespace collapsed) and its arguments.
fn split_type_name(text: &str) -> Result<(String, Vec<i64>)> {
    let (name, args) = match text.find('(') {
        Some(open) => {
            let close = text.rfind(')').ok_or_else(|| bad_type(text))?;
            let inner = &text[open + 1..close];
            let tail = text[close + 1..].trim();
            let mut name = text[..open].trim().to_string();
            if !tail.is_empty() {
                name = format!("{name} {tail}");
            }
            let args = inner
                .split(',')
                .map(|a| a.trim().parse::<i64>().map_err(|_| bad_type(text)))
                .collect::<Result<Vec<_>>>()?;
            (name, args)
        }
        None => (text.to_string(), Vec::new()),
    };
    let name = name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    Ok((name, args))
}

fn bad_type(text: &str) -> KuraError {
    KuraError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("type \"{}\" does not exist", text.to_lowercase()),
    )
}

/// Resolves a type name: exact PostgreSQL and GridDB names first, then GridDB's substring
/// rules (a name containing INT is INTEGER, CHAR/CLOB/TEXT is STRING, ...).
pub fn parse_type_name(text: &str) -> Result<SqlType> {
    let (name, args) = split_type_name(text)?;
    let text_type = |padded: bool| -> Result<SqlType> {
        let max_len = match args.first() {
            Some(n) if *n >= 1 && *n <= 10_485_760 => Some(*n as u32),
            Some(_) => {
                return Err(KuraError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("length for type {} must be at least 1", name.to_lowercase()),
                ));
            }
            None if padded => Some(1),
            None => None,
        };
        Ok(SqlType::Text { max_len, padded })
    };
    let resolved = match name.as_str() {
        "BOOL" | "BOOLEAN" => SqlType::Bool,
        "BYTE" | "TINYINT" => SqlType::Byte,
        "SHORT" | "SMALLINT" | "INT2" => SqlType::Short,
        "INTEGER" | "INT" | "INT4" | "MEDIUMINT" => SqlType::Integer,
        "LONG" | "BIGINT" | "INT8" => SqlType::Long,
        "FLOAT" | "REAL" | "FLOAT4" => {
            // PostgreSQL's float(p) with p > 24 is double precision.
            match args.first() {
                Some(p) if *p > 24 => SqlType::Double,
                _ => SqlType::Float,
            }
        }
        "DOUBLE" | "DOUBLE PRECISION" | "FLOAT8" => SqlType::Double,
        "NUMERIC" | "DECIMAL" | "DEC" => numeric_type(&args, text)?,
        "STRING" | "TEXT" => SqlType::Text {
            max_len: None,
            padded: false,
        },
        "VARCHAR" | "CHARACTER VARYING" | "CHAR VARYING" | "NVARCHAR" => text_type(false)?,
        "CHAR" | "CHARACTER" | "BPCHAR" | "NCHAR" => text_type(true)?,
        "BLOB" | "BYTEA" | "BINARY" | "VARBINARY" => SqlType::Blob,
        "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => timestamp_type(&args, text)?,
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => SqlType::TimestampTz,
        "DATE" => SqlType::Date,
        other => griddb_fallback(other).ok_or_else(|| bad_type(text))?,
    };
    Ok(resolved)
}

fn numeric_type(args: &[i64], text: &str) -> Result<SqlType> {
    let (precision, scale) = match args {
        [] => (38, 10),
        [p] => (*p, 0),
        [p, s] => (*p, *s),
        _ => return Err(bad_type(text)),
    };
    if !(1..=38).contains(&precision) {
        return Err(KuraError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("NUMERIC precision {precision} must be between 1 and 38"),
        ));
    }
    if scale < 0 || scale > precision {
        return Err(KuraError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("NUMERIC scale {scale} must be between 0 and precision {precision}"),
        ));
    }
    Ok(SqlType::Numeric {
        precision: precision as u8,
        scale: scale as i8,
    })
}

fn timestamp_type(args: &[i64], text: &str) -> Result<SqlType> {
    let unit = match args {
        [] | [6] => TimeUnit::Microsecond,
        [3] => TimeUnit::Millisecond,
        [9] => TimeUnit::Nanosecond,
        [0] => TimeUnit::Second,
        [_] => {
            return Err(KuraError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("TIMESTAMP precision in \"{text}\" must be 0, 3, 6 or 9"),
            ));
        }
        _ => return Err(bad_type(text)),
    };
    Ok(SqlType::Timestamp { unit })
}

/// GridDB's affinity rules for names no exact rule matched.
fn griddb_fallback(name: &str) -> Option<SqlType> {
    if name.contains("INT") {
        Some(SqlType::Integer)
    } else if name.contains("CHAR") || name.contains("CLOB") || name.contains("TEXT") {
        Some(SqlType::Text {
            max_len: None,
            padded: false,
        })
    } else if name.contains("BLOB") {
        Some(SqlType::Blob)
    } else if name.contains("REAL") || name.contains("DOUB") {
        Some(SqlType::Double)
    } else if name.contains("FLOA") {
        Some(SqlType::Float)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn storage_names_parse_back_to_the_same_type() {
        use super::*;
        let types = [
            SqlType::Bool,
            SqlType::Byte,
            SqlType::Short,
            SqlType::Integer,
            SqlType::Long,
            SqlType::Float,
            SqlType::Double,
            SqlType::Numeric {
                precision: 12,
                scale: 3,
            },
            SqlType::Text {
                max_len: None,
                padded: false,
            },
            SqlType::Text {
                max_len: Some(7),
                padded: false,
            },
            SqlType::Text {
                max_len: Some(4),
                padded: true,
            },
            SqlType::Blob,
            SqlType::Timestamp {
                unit: TimeUnit::Second,
            },
            SqlType::Timestamp {
                unit: TimeUnit::Millisecond,
            },
            SqlType::Timestamp {
                unit: TimeUnit::Microsecond,
            },
            SqlType::Timestamp {
                unit: TimeUnit::Nanosecond,
            },
            SqlType::TimestampTz,
            SqlType::Date,
        ];
        for ty in types {
            assert_eq!(parse_type_name(&ty.storage_name()).unwrap(), ty, "{ty:?}");
        }
    }

    use super::*;

    #[test]
    fn griddb_and_pg_spellings() {
        assert_eq!(parse_type_name("LONG").unwrap(), SqlType::Long);
        assert_eq!(parse_type_name("int8").unwrap(), SqlType::Long);
        assert_eq!(parse_type_name("FLOAT").unwrap(), SqlType::Float);
        assert_eq!(
            parse_type_name("double precision").unwrap(),
            SqlType::Double
        );
        assert_eq!(
            parse_type_name("VARCHAR(10)").unwrap(),
            SqlType::Text {
                max_len: Some(10),
                padded: false
            }
        );
        assert_eq!(
            parse_type_name("NUMERIC(10,2)").unwrap(),
            SqlType::Numeric {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(
            parse_type_name("TIMESTAMP(3)").unwrap(),
            SqlType::Timestamp {
                unit: TimeUnit::Millisecond
            }
        );
        assert_eq!(
            parse_type_name("TIMESTAMP WITH TIME ZONE").unwrap(),
            SqlType::TimestampTz
        );
        assert_eq!(parse_type_name("BIGINTEGER").unwrap(), SqlType::Integer);
        assert!(parse_type_name("GEOMETRY").is_err());
        assert!(parse_type_name("TIMESTAMP(4)").is_err());
    }
}
