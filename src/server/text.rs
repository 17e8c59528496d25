//! PostgreSQL's text output for the types whose text form the generic encoder gets wrong:
//! timestamps (PostgreSQL prints only the fractional digits a value needs, and a `timestamptz`
//! in the session time zone with its offset, `+09`) and floating-point numbers (shortest
//! round-trip digits, exponent from 1e15 on).
//!
//! Two rewrites apply to both formats: `BYTE` (Int8) columns are widened to `smallint`, the
//! type they are described as, and `char(n)` columns (marked with [`BPCHAR_LENGTH`] metadata)
//! get their trailing blanks back.
//!
//! Invariant: the text rewrites apply only to columns sent in text format; binary columns keep
//! their Arrow values.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Offset, TimeZone};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use pgwire::api::results::{FieldFormat, FieldInfo};

use crate::error::Result;

/// Field metadata key carrying the declared length of a `char(n)` column.
pub const BPCHAR_LENGTH: &str = "kura.bpchar_length";

/// How one column must change before encoding.
enum Rewrite {
    Keep,
    Text,
    Widen,
    Pad(usize),
    /// `int2vector` / `oidvector`: items separated by spaces, not an array literal.
    Vector,
}

fn rewrite_of(column: &ArrayRef, field: &Field, info: &FieldInfo) -> Rewrite {
    if let Some(n) = field
        .metadata()
        .get(BPCHAR_LENGTH)
        .and_then(|n| n.parse().ok())
    {
        return Rewrite::Pad(n);
    }
    let vector = super::described::pg_type(field)
        .is_some_and(|t| t == pgwire::api::Type::INT2_VECTOR || t == pgwire::api::Type::OID_VECTOR);
    match column.data_type() {
        DataType::List(_) if vector && info.format() == FieldFormat::Text => Rewrite::Vector,
        DataType::Int8 => Rewrite::Widen,
        t if info.format() == FieldFormat::Text && rewritten(t) => Rewrite::Text,
        _ => Rewrite::Keep,
    }
}

/// Brings a result batch into the form the PostgreSQL encoder must send (see module docs).
/// `schema` is the reported result schema, whose field metadata marks `char(n)` columns.
/// `zone` is the session time zone, in which `timestamptz` values are shown.
pub fn to_pg_text(
    batch: RecordBatch,
    schema: &Schema,
    fields: &[FieldInfo],
    zone: &Tz,
) -> Result<RecordBatch> {
    let rewrites: Vec<Rewrite> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .zip(fields)
        .map(|((column, field), info)| rewrite_of(column, field, info))
        .collect();
    if rewrites.iter().all(|r| matches!(r, Rewrite::Keep)) {
        return Ok(batch);
    }
    let batch_schema = batch.schema();
    let mut out_fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for ((column, field), rewrite) in batch
        .columns()
        .iter()
        .zip(batch_schema.fields())
        .zip(rewrites)
    {
        let array: ArrayRef = match rewrite {
            Rewrite::Keep => column.clone(),
            Rewrite::Text => Arc::new(format_column(column, zone)),
            Rewrite::Widen => cast(column, &DataType::Int16)?,
            Rewrite::Pad(n) => Arc::new(pad_column(column, n)),
            Rewrite::Vector => Arc::new(vector_column(column)),
        };
        out_fields.push(Field::new(field.name(), array.data_type().clone(), true));
        columns.push(array);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(out_fields)),
        columns,
    )?)
}

fn vector_column(column: &ArrayRef) -> StringArray {
    let Some(lists) = column.as_list_opt::<i32>() else {
        return (0..column.len()).map(|_| None::<String>).collect();
    };
    (0..lists.len())
        .map(|i| {
            if lists.is_null(i) {
                return None;
            }
            let items = lists.value(i);
            Some(
                (0..items.len())
                    .filter_map(|j| {
                        datafusion::common::ScalarValue::try_from_array(&items, j)
                            .ok()
                            .map(|v| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })
        .collect()
}

/// A `char(n)` column's values with their trailing blanks back (NULL for non-text columns).
pub fn pad_column(column: &ArrayRef, n: usize) -> StringArray {
    match column.as_string_opt::<i32>() {
        Some(strings) => strings
            .iter()
            .map(|v| {
                v.map(|v| {
                    let len = v.chars().count();
                    if len >= n {
                        v.to_string()
                    } else {
                        format!("{v}{}", " ".repeat(n - len))
                    }
                })
            })
            .collect(),
        None => (0..column.len()).map(|_| None::<String>).collect(),
    }
}

fn rewritten(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Timestamp(..) | DataType::Float32 | DataType::Float64
    )
}

/// The text of each value of a timestamp or floating-point column (NULL for other types);
/// `timestamptz` values are shown in `zone`.
pub fn format_column(column: &ArrayRef, zone: &Tz) -> StringArray {
    let len = column.len();
    let text = |i: usize| -> Option<String> {
        if column.is_null(i) {
            return None;
        }
        Some(match column.data_type() {
            DataType::Float64 => format_float(column.as_primitive::<Float64Type>().value(i)),
            DataType::Float32 => format_float32(column.as_primitive::<Float32Type>().value(i)),
            DataType::Timestamp(unit, tz) => {
                let (value, per_second): (i64, i64) = match unit {
                    TimeUnit::Second => (column.as_primitive::<TimestampSecondType>().value(i), 1),
                    TimeUnit::Millisecond => (
                        column.as_primitive::<TimestampMillisecondType>().value(i),
                        1_000,
                    ),
                    TimeUnit::Microsecond => (
                        column.as_primitive::<TimestampMicrosecondType>().value(i),
                        1_000_000,
                    ),
                    TimeUnit::Nanosecond => (
                        column.as_primitive::<TimestampNanosecondType>().value(i),
                        1_000_000_000,
                    ),
                };
                let seconds = value.div_euclid(per_second);
                let nanos = value.rem_euclid(per_second) * (1_000_000_000 / per_second);
                format_timestamp(seconds, nanos as u32, tz.as_ref().map(|_| zone))
            }
            _ => return None,
        })
    };
    (0..len).map(text).collect()
}

/// Every value of `column` in PostgreSQL's text form (what `COPY ... TO` writes and text-format
/// results show); `None` for NULL. `pad` restores the trailing blanks of a `char(n)` column;
/// `timestamptz` values are shown in `zone`.
pub fn text_values(
    column: &ArrayRef,
    pad: Option<usize>,
    zone: &Tz,
) -> Result<Vec<Option<String>>> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let len = column.len();
    Ok(match column.data_type() {
        DataType::Boolean => {
            let bools = column.as_boolean();
            (0..len)
                .map(|i| (!bools.is_null(i)).then(|| if bools.value(i) { "t" } else { "f" }.into()))
                .collect()
        }
        DataType::Binary => {
            let bytes = column.as_binary::<i32>();
            (0..len)
                .map(|i| {
                    (!bytes.is_null(i)).then(|| {
                        let mut out = String::with_capacity(2 + 2 * bytes.value(i).len());
                        out.push_str("\\x");
                        for b in bytes.value(i) {
                            out.push_str(&format!("{b:02x}"));
                        }
                        out
                    })
                })
                .collect()
        }
        DataType::Utf8 if pad.is_some() => pad_column(column, pad.unwrap_or(0))
            .iter()
            .map(|v| v.map(str::to_string))
            .collect(),
        t if rewritten(t) => format_column(column, zone)
            .iter()
            .map(|v| v.map(str::to_string))
            .collect(),
        _ => {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::new())?;
            (0..len)
                .map(|i| (!column.is_null(i)).then(|| formatter.value(i).to_string()))
                .collect()
        }
    })
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` with trailing zeros of the fraction removed; a
/// `timestamptz` (`zone` given) is shown as local time in `zone` followed by its UTC offset
/// (`+09`, `-03:30`), and years before 1 AD end in ` BC`, all as PostgreSQL writes them.
pub fn format_timestamp(secs: i64, sub: u32, zone: Option<&Tz>) -> String {
    let Some(utc) = DateTime::from_timestamp(secs, sub).map(|d| d.naive_utc()) else {
        return format!("{secs}.{sub:09}");
    };
    let offset = zone.map(|z| z.offset_from_utc_datetime(&utc).fix().local_minus_utc());
    let local = utc + chrono::TimeDelta::seconds(i64::from(offset.unwrap_or(0)));
    let (mut out, bc) = base_format(&local);
    if sub > 0 {
        let fraction = format!("{sub:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    if let Some(offset) = offset {
        out.push_str(&crate::session::zone::format_offset(offset));
    }
    if bc {
        out.push_str(" BC");
    }
    out
}

/// The date and time of day, and whether the year is before 1 AD (PostgreSQL writes those as
/// the positive year `1 - year` with a ` BC` suffix).
fn base_format(dt: &NaiveDateTime) -> (String, bool) {
    use chrono::Datelike;
    if dt.year() < 1 {
        let year = 1 - dt.year();
        return (format!("{year:04}{}", dt.format("-%m-%d %H:%M:%S")), true);
    }
    (dt.format("%Y-%m-%d %H:%M:%S").to_string(), false)
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
        let zone = |name: &str| name.parse::<Tz>().unwrap();
        assert_eq!(format_timestamp(0, 0, None), "1970-01-01 00:00:00");
        assert_eq!(
            format_timestamp(1, 500_000_000, None),
            "1970-01-01 00:00:01.5"
        );
        assert_eq!(
            format_timestamp(0, 123_000_000, Some(&zone("UTC"))),
            "1970-01-01 00:00:00.123+00"
        );
        assert_eq!(
            format_timestamp(253_402_300_799, 999_999_000, None),
            "9999-12-31 23:59:59.999999"
        );
        assert_eq!(
            format_timestamp(1_704_067_200, 0, Some(&zone("Asia/Tokyo"))),
            "2024-01-01 09:00:00+09"
        );
        assert_eq!(
            format_timestamp(1_704_067_200, 0, Some(&zone("-03:30"))),
            "2023-12-31 20:30:00-03:30"
        );
        // Summer time: New York is UTC-4 in July, UTC-5 in January.
        assert_eq!(
            format_timestamp(1_719_835_200, 0, Some(&zone("America/New_York"))),
            "2024-07-01 08:00:00-04"
        );
        assert_eq!(
            format_timestamp(-62_198_755_200, 0, Some(&zone("UTC"))),
            "0002-01-01 00:00:00+00 BC"
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
