//! Conforming rows to a table definition before they enter a transaction's writes: casting to
//! the column types, NOT NULL, character lengths and `char(n)` padding.
//!
//! Invariant: every batch a transaction stores has exactly the table's schema and satisfies
//! its column constraints.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, StringArray};
use datafusion::arrow::compute::CastOptions;
use datafusion::arrow::datatypes::{DataType, Decimal128Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::FormatOptions;

use crate::error::{KuraError, Result, sqlstate};
use crate::query::zone_casts::cast_in_zone;
use crate::storage::TableDef;
use crate::types::SqlType;

const STRICT: CastOptions<'static> = CastOptions {
    safe: false,
    format_options: FormatOptions::new(),
};

/// Casts and checks `columns` (one per table column, in table order) into a stored batch.
/// Zone-less times convert to and from `timestamptz` in `zone`, the session time zone.
pub fn conform(
    def: &TableDef,
    columns: Vec<ArrayRef>,
    rows: usize,
    zone: &str,
) -> Result<RecordBatch> {
    if columns.len() != def.columns.len() {
        return Err(KuraError::internal(format!(
            "expected {} columns for \"{}\", got {}",
            def.columns.len(),
            def.name,
            columns.len()
        )));
    }
    let mut out = Vec::with_capacity(columns.len());
    for (column, array) in def.columns.iter().zip(columns) {
        let target = column.ty.arrow_type();
        let array = if target == DataType::Binary && array.data_type() == &DataType::Utf8 {
            decode_bytea_column(&array)?
        } else if array.data_type() == &target {
            array
        } else {
            cast_in_zone(&array, &target, zone, &STRICT).map_err(|mut k| {
                k.message = format!("column \"{}\": {}", column.name, k.message);
                k
            })?
        };
        if !column.nullable && array.null_count() > 0 {
            return Err(KuraError::new(
                sqlstate::NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    column.name, def.name
                ),
            ));
        }
        if let SqlType::Numeric { precision, .. } = &column.ty {
            array
                .as_primitive::<Decimal128Type>()
                .validate_decimal_precision(*precision)
                .map_err(|_| {
                    KuraError::new(
                        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                        "numeric field overflow",
                    )
                })?;
        }
        let array = match &column.ty {
            SqlType::Text {
                max_len: Some(n),
                padded,
            } => check_length(array, *n as usize, *padded, &column.ty)?,
            _ => array,
        };
        out.push(array);
    }
    let options =
        datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        def.schema().clone(),
        out,
        &options,
    )?)
}

/// Rejects values longer than `n` characters (trailing spaces do not count, as in
/// PostgreSQL). `char(n)` values are stored without their trailing blanks, since PostgreSQL
/// treats those as insignificant in comparisons and `length`.
fn check_length(array: ArrayRef, n: usize, padded: bool, ty: &SqlType) -> Result<ArrayRef> {
    let strings = array.as_string::<i32>();
    let mut changed = false;
    for value in strings.iter().flatten() {
        let trimmed = value.trim_end_matches(' ');
        if trimmed.chars().count() > n {
            return Err(KuraError::new(
                sqlstate::STRING_DATA_RIGHT_TRUNCATION,
                format!("value too long for type {ty}"),
            ));
        }
        changed |= value.chars().count() > n || (padded && trimmed.len() != value.len());
    }
    if !changed {
        return Ok(array);
    }
    let fixed: StringArray = strings
        .iter()
        .map(|v| {
            v.map(|v| {
                if padded {
                    v.trim_end_matches(' ').to_string()
                } else {
                    v.chars().take(n).collect()
                }
            })
        })
        .collect();
    Ok(Arc::new(fixed))
}

/// Text written for a `bytea` column is PostgreSQL's bytea input: `\x` followed by hex
/// digits, or the escape format where `\\` is a backslash and `\nnn` an octal byte.
pub fn decode_bytea_column(array: &ArrayRef) -> Result<ArrayRef> {
    let strings = array.as_string::<i32>();
    let decoded: BinaryArray = strings
        .iter()
        .map(|v| v.map(decode_bytea).transpose())
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .collect();
    Ok(Arc::new(decoded))
}

pub fn decode_bytea(text: &str) -> Result<Vec<u8>> {
    let invalid = || {
        KuraError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type bytea: \"{text}\""),
        )
    };
    if let Some(hex) = text.strip_prefix("\\x") {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return Err(invalid());
        }
        return digits
            .chunks(2)
            .map(|pair| {
                let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
                u8::from_str_radix(pair, 16).map_err(|_| invalid())
            })
            .collect();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = bytes.get(i + 1..i + 4).ok_or_else(invalid)?;
            let octal = std::str::from_utf8(octal).map_err(|_| invalid())?;
            out.push(u8::from_str_radix(octal, 8).map_err(|_| invalid())?);
            i += 4;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytea_input_formats() {
        assert_eq!(decode_bytea("\\x48656c6c6f").unwrap(), b"Hello");
        assert_eq!(decode_bytea("\\x").unwrap(), b"");
        assert_eq!(decode_bytea("a\\\\b\\001").unwrap(), b"a\\b\x01");
        assert!(decode_bytea("\\x4").is_err());
    }
}
