//! PostgreSQL's text output for the types whose text form the generic encoder gets wrong:
//! timestamps (PostgreSQL prints only the fractional digits a value needs, and `+00` for UTC)
//! and floating-point numbers (shortest round-trip digits, exponent from 1e15 on).
//!
//! Invariant: only columns sent in text format are rewritten; binary columns keep their Arrow
//! values.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use pgwire::api::results::{FieldFormat, FieldInfo};

use crate::error::Result;

/// Rewrites text-format columns of `batch` into PostgreSQL's text form where needed.
pub fn to_pg_text(batch: RecordBatch, fields: &[FieldInfo]) -> Result<RecordBatch> {
    let needs = batch
        .columns()
        .iter()
        .zip(fields)
        .any(|(c, f)| f.format() == FieldFormat::Text && rewritten(c.data_type()));
    if !needs {
        return Ok(batch);
    }
    let schema = batch.schema();
    let mut out_fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for ((column, field), info) in batch.columns().iter().zip(schema.fields()).zip(fields) {
        if info.format() == FieldFormat::Text && rewritten(column.data_type()) {
            columns.push(Arc::new(format_column(column)) as ArrayRef);
            out_fields.push(Field::new(field.name(), DataType::Utf8, true));
        } else {
            columns.push(column.clone());
            out_fields.push(field.as_ref().clone());
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(out_fields)),
        columns,
    )?)
}

fn rewritten(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Timestamp(..) | DataType::Float32 | DataType::Float64
    )
}

fn format_column(column: &ArrayRef) -> StringArray {
    let len = column.len();
    let text = |i: usize| -> Option<String> {
        if column.is_null(i) {
            return None;
        }
        Some(match column.data_type() {
            DataType::Float64 => format_float(column.as_primitive::<Float64Type>().value(i)),
            DataType::Float32 => format_float32(column.as_primitive::<Float32Type>().value(i)),
            DataType::Timestamp(unit, tz) => {
                let nanos = match unit {
                    TimeUnit::Second => column
                        .as_primitive::<TimestampSecondType>()
                        .value(i)
                        .saturating_mul(1_000_000_000),
                    TimeUnit::Millisecond => column
                        .as_primitive::<TimestampMillisecondType>()
                        .value(i)
                        .saturating_mul(1_000_000),
                    TimeUnit::Microsecond => column
                        .as_primitive::<TimestampMicrosecondType>()
                        .value(i)
                        .saturating_mul(1000),
                    TimeUnit::Nanosecond => {
                        column.as_primitive::<TimestampNanosecondType>().value(i)
                    }
                };
                format_timestamp(nanos, tz.is_some())
            }
            _ => return None,
        })
    };
    (0..len).map(text).collect()
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` with trailing zeros of the fraction removed, plus `+00`
/// for `timestamptz` (values are stored in UTC and sessions use UTC).
pub fn format_timestamp(nanos: i64, with_zone: bool) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    let Some(dt) = DateTime::from_timestamp(secs, sub).map(|d| d.naive_utc()) else {
        return nanos.to_string();
    };
    let mut out = base_format(&dt);
    if sub > 0 {
        let fraction = format!("{sub:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    if with_zone {
        out.push_str("+00");
    }
    out
}

fn base_format(dt: &NaiveDateTime) -> String {
    use chrono::Datelike;
    if dt.year() < 1 {
        // PostgreSQL writes years before 1 AD as "YYYY-MM-DD ... BC".
        let year = 1 - dt.year();
        return format!("{year:04}{} BC", dt.format("-%m-%d %H:%M:%S"));
    }
    dt.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// PostgreSQL's `float8` output with the default `extra_float_digits = 1`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let exponent = v.abs().log10().floor() as i32;
    if !(-4..15).contains(&exponent) {
        return exponential(&format!("{v:e}"));
    }
    format!("{v}")
}

fn format_float32(v: f32) -> String {
    if v.is_finite() && v != 0.0 {
        let exponent = v.abs().log10().floor() as i32;
        if !(-4..6).contains(&exponent) {
            return exponential(&format!("{v:e}"));
        }
        return format!("{v}");
    }
    format_float(v as f64)
}

/// Rust's `1.5e-7` as PostgreSQL's `1.5e-07` (sign always, at least two exponent digits).
fn exponential(rust: &str) -> String {
    let Some((mantissa, exp)) = rust.split_once('e') else {
        return rust.to_string();
    };
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_like_postgres() {
        assert_eq!(format_timestamp(0, false), "1970-01-01 00:00:00");
        assert_eq!(
            format_timestamp(1_500_000_000, false),
            "1970-01-01 00:00:01.5"
        );
        assert_eq!(
            format_timestamp(123_000_000, true),
            "1970-01-01 00:00:00.123+00"
        );
    }

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(format_float(4.0), "4");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(1e20), "1e+20");
        assert_eq!(format_float(1.5e-7), "1.5e-07");
        assert_eq!(format_float(-1024.125), "-1024.125");
        assert_eq!(format_float(f64::NAN), "NaN");
    }
}
