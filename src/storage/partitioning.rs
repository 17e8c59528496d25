//! How a table's rows are placed into data partitions (GridDB's hash, interval and
//! interval-hash partitioning), and how long they are kept (partition expiry).
//!
//! A data partition is named by a [`PartitionKey`]: the interval number of its rows' interval
//! key (`⌊key / width⌋`, 0 without interval partitioning) and the hash bucket of its hash key
//! (0 without hash partitioning). The key is what the transaction log and checkpoints record,
//! so placement must never change for a stored table:
//! - interval numbers are computed on the raw stored integer (timestamps in their own unit),
//!   with a floor division, so negative keys fall into negative intervals;
//! - hash buckets are CRC32C of a canonical encoding of the value (every integer width as a
//!   64-bit little-endian number, so a literal of another width finds the same bucket), mixed
//!   by MurmurHash3's finalizer, modulo the bucket count. NULL goes to bucket 0.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, UInt32Array, downcast_array,
};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimeUnit,
};
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::error::{KuraError, Result, sqlstate};
use crate::types::SqlType;

/// Names one data partition of a table.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct PartitionKey {
    pub interval: i64,
    pub bucket: u32,
}

impl PartitionKey {
    pub const SINGLE: PartitionKey = PartitionKey {
        interval: 0,
        bucket: 0,
    };
}

/// A unit of time in interval widths and retention periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TimeUnitName {
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

impl TimeUnitName {
    pub fn parse(text: &str) -> Option<TimeUnitName> {
        Some(match text.to_ascii_uppercase().as_str() {
            "DAY" => TimeUnitName::Day,
            "HOUR" => TimeUnitName::Hour,
            "MINUTE" => TimeUnitName::Minute,
            "SECOND" => TimeUnitName::Second,
            "MILLISECOND" => TimeUnitName::Millisecond,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TimeUnitName::Day => "DAY",
            TimeUnitName::Hour => "HOUR",
            TimeUnitName::Minute => "MINUTE",
            TimeUnitName::Second => "SECOND",
            TimeUnitName::Millisecond => "MILLISECOND",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            TimeUnitName::Day => 86_400_000,
            TimeUnitName::Hour => 3_600_000,
            TimeUnitName::Minute => 60_000,
            TimeUnitName::Second => 1_000,
            TimeUnitName::Millisecond => 1,
        }
    }
}

/// Hash partitioning of one column into `count` buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashSpec {
    pub column: usize,
    pub count: u32,
}

/// Interval partitioning: rows whose key lies in `[i·w, (i+1)·w)` share interval `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalSpec {
    pub column: usize,
    /// The width as declared (in `unit` for time keys).
    pub width: i64,
    pub unit: Option<TimeUnitName>,
    /// Interval-hash partitioning: each interval split further by hash.
    pub subpartition: Option<HashSpec>,
    /// The width in the stored unit of the key (milliseconds, microseconds, ... for time keys).
    pub raw_width: i64,
    /// Stored key units per millisecond for time keys (1 for integers, which have no time).
    pub raw_per_milli: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Partitioning {
    /// One data partition.
    #[default]
    Single,
    Hash(HashSpec),
    Interval(IntervalSpec),
}

/// PARTITION expiry: a data partition expires when its upper bound plus the retention period
/// is earlier than the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    pub time: i64,
    pub unit: TimeUnitName,
}

impl Expiry {
    pub fn retention_millis(&self) -> i64 {
        self.time.saturating_mul(self.unit.millis())
    }
}

/// Stored key units per millisecond of a time type; None for types that are not time.
pub fn raw_per_milli(ty: &SqlType) -> Option<i64> {
    match ty {
        SqlType::Timestamp { unit } => Some(match unit {
            TimeUnit::Second => 0,
            TimeUnit::Millisecond => 1,
            TimeUnit::Microsecond => 1_000,
            TimeUnit::Nanosecond => 1_000_000,
        })
        .filter(|n| *n > 0),
        SqlType::TimestampTz => Some(1_000),
        _ => None,
    }
}

fn invalid(message: impl Into<String>) -> KuraError {
    KuraError::new(sqlstate::INVALID_TABLE_DEFINITION, message)
}

impl IntervalSpec {
    /// Checks GridDB's width rules for a key of type `ty` and computes the stored width.
    pub fn new(
        column: usize,
        ty: &SqlType,
        width: i64,
        unit: Option<TimeUnitName>,
        subpartition: Option<HashSpec>,
    ) -> Result<IntervalSpec> {
        let sub = subpartition.map_or(1, |s| i64::from(s.count));
        let (raw_width, raw_per_milli) = match (ty, unit) {
            (SqlType::Byte, None) if (1..=127).contains(&width) => (width, 1),
            (SqlType::Short, None) if (1..=32_767).contains(&width) => (width, 1),
            (SqlType::Integer, None) if (1..=i64::from(i32::MAX)).contains(&width) => (width, 1),
            (SqlType::Long, None) if width >= 1000 * sub => (width, 1),
            (SqlType::Byte | SqlType::Short | SqlType::Integer | SqlType::Long, Some(_)) => {
                return Err(invalid(
                    "an interval unit is only allowed for a TIMESTAMP partitioning key",
                ));
            }
            (SqlType::Long, None) => {
                return Err(invalid(format!(
                    "the interval of a LONG partitioning key must be at least {}",
                    1000 * sub
                )));
            }
            (SqlType::Byte | SqlType::Short | SqlType::Integer, None) => {
                // GridDB's names: BYTE and SHORT would otherwise print as PostgreSQL's smallint.
                let (name, max) = match ty {
                    SqlType::Byte => ("BYTE", 127),
                    SqlType::Short => ("SHORT", 32_767),
                    _ => ("INTEGER", i64::from(i32::MAX)),
                };
                return Err(invalid(format!(
                    "interval {width} is out of range for a {name} partitioning key (1 to {max})"
                )));
            }
            (_, unit) => {
                let Some(per_milli) = raw_per_milli(ty) else {
                    return Err(invalid(format!(
                        "interval partitioning needs a BYTE, SHORT, INTEGER, LONG or TIMESTAMP key, not {ty}"
                    )));
                };
                let Some(unit) = unit else {
                    return Err(invalid(
                        "the interval of a TIMESTAMP partitioning key needs a unit: DAY, HOUR, MINUTE or SECOND",
                    ));
                };
                if unit == TimeUnitName::Millisecond {
                    return Err(invalid(
                        "the interval unit of a TIMESTAMP partitioning key must be DAY, HOUR, MINUTE or SECOND",
                    ));
                }
                let raw = width
                    .checked_mul(unit.millis())
                    .and_then(|ms| ms.checked_mul(per_milli))
                    .filter(|_| width >= 1)
                    .ok_or_else(|| {
                        invalid(format!("interval {width} {} is out of range", unit.name()))
                    })?;
                (raw, per_milli)
            }
        };
        Ok(IntervalSpec {
            column,
            width,
            unit,
            subpartition,
            raw_width,
            raw_per_milli,
        })
    }

    /// The interval holding the stored key `raw`.
    pub fn interval_of(&self, raw: i64) -> i64 {
        raw.div_euclid(self.raw_width)
    }

    /// The stored key range `[lower, upper)` of interval `i`, saturated at the type's ends.
    pub fn bounds(&self, interval: i64) -> (i64, i64) {
        let lower = interval.saturating_mul(self.raw_width);
        (lower, lower.saturating_add(self.raw_width))
    }

    /// The exclusive upper bound of interval `i` in milliseconds since the epoch (time keys).
    pub fn upper_millis(&self, interval: i64) -> i64 {
        self.bounds(interval)
            .1
            .div_euclid(self.raw_per_milli.max(1))
    }
}

impl Partitioning {
    pub fn is_single(&self) -> bool {
        matches!(self, Partitioning::Single)
    }

    pub fn interval(&self) -> Option<&IntervalSpec> {
        match self {
            Partitioning::Interval(spec) => Some(spec),
            _ => None,
        }
    }

    /// The hash part: the whole scheme for hash tables, the subpartitioning for interval-hash.
    pub fn hash(&self) -> Option<&HashSpec> {
        match self {
            Partitioning::Hash(spec) => Some(spec),
            Partitioning::Interval(spec) => spec.subpartition.as_ref(),
            Partitioning::Single => None,
        }
    }

    /// The columns placement depends on (which UPDATE may not change).
    pub fn key_columns(&self) -> impl Iterator<Item = usize> + '_ {
        let interval = self.interval().map(|spec| spec.column);
        interval
            .into_iter()
            .chain(self.hash().map(|spec| spec.column))
    }

    /// The data partitions a table has from the start (hash tables create all of them).
    pub fn initial_keys(&self) -> Vec<PartitionKey> {
        match self {
            Partitioning::Single => vec![PartitionKey::SINGLE],
            Partitioning::Hash(spec) => (0..spec.count)
                .map(|bucket| PartitionKey {
                    interval: 0,
                    bucket,
                })
                .collect(),
            Partitioning::Interval(_) => Vec::new(),
        }
    }

    /// The data partition of every row of `batch`.
    pub fn keys(&self, batch: &RecordBatch) -> Result<Vec<PartitionKey>> {
        let rows = batch.num_rows();
        let intervals = match self.interval() {
            Some(spec) => Some(interval_numbers(spec, batch.column(spec.column))?),
            None => None,
        };
        let buckets = match self.hash() {
            Some(spec) => Some(hash_buckets(batch.column(spec.column), spec.count)?),
            None => None,
        };
        Ok((0..rows)
            .map(|row| PartitionKey {
                interval: intervals.as_ref().map_or(0, |i| i[row]),
                bucket: buckets.as_ref().map_or(0, |b| b[row]),
            })
            .collect())
    }

    /// The data partition of a row whose partitioning columns hold `value(column)` (values of
    /// the columns' types); None when a value is missing or NULL.
    pub fn key_of<'a>(
        &self,
        value: impl Fn(usize) -> Option<&'a ScalarValue>,
    ) -> Result<Option<PartitionKey>> {
        let interval = match self.interval() {
            Some(spec) => match value(spec.column).and_then(raw_integer) {
                Some(raw) => spec.interval_of(raw),
                None => return Ok(None),
            },
            None => 0,
        };
        let bucket = match self.hash() {
            Some(spec) => match value(spec.column) {
                Some(v) if !v.is_null() => hash_bucket(v, spec.count)?,
                _ => return Ok(None),
            },
            None => 0,
        };
        Ok(Some(PartitionKey { interval, bucket }))
    }

    /// Splits `batch` by data partition; each piece keeps the rows' order.
    pub fn route(&self, batch: RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>> {
        if self.is_single() || batch.num_rows() == 0 {
            return Ok(vec![(PartitionKey::SINGLE, batch)]);
        }
        let keys = self.keys(&batch)?;
        if keys.iter().all(|k| *k == keys[0]) {
            return Ok(vec![(keys[0], batch)]);
        }
        let mut rows: BTreeMap<PartitionKey, Vec<u32>> = BTreeMap::new();
        for (row, key) in keys.into_iter().enumerate() {
            rows.entry(key).or_default().push(row as u32);
        }
        rows.into_iter()
            .map(|(key, indices)| {
                Ok((key, take_record_batch(&batch, &UInt32Array::from(indices))?))
            })
            .collect()
    }
}

/// The stored integer of each value of an interval key (the key is NOT NULL).
fn interval_numbers(spec: &IntervalSpec, column: &ArrayRef) -> Result<Vec<i64>> {
    let raw = raw_integers(column)?;
    if raw.null_count() > 0 {
        return Err(KuraError::new(
            sqlstate::NOT_NULL_VIOLATION,
            "the interval partitioning key must not be NULL",
        ));
    }
    Ok(raw.values().iter().map(|v| spec.interval_of(*v)).collect())
}

/// Integer and time columns as 64-bit integers in their stored unit.
pub fn raw_integers(column: &ArrayRef) -> Result<datafusion::arrow::array::Int64Array> {
    let as_int = match column.data_type() {
        DataType::Timestamp(_, _) => cast(column, &DataType::Int64)?,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            cast(column, &DataType::Int64)?
        }
        other => {
            return Err(KuraError::internal(format!(
                "an interval partitioning key cannot have type {other}"
            )));
        }
    };
    Ok(downcast_array(&as_int))
}

/// The stored integer of one interval-key value (for `DROP PARTITION FOR` and pruning).
pub fn raw_integer(value: &ScalarValue) -> Option<i64> {
    use ScalarValue as S;
    match value {
        S::Int8(Some(v)) => Some(i64::from(*v)),
        S::Int16(Some(v)) => Some(i64::from(*v)),
        S::Int32(Some(v)) => Some(i64::from(*v)),
        S::Int64(Some(v)) => Some(*v),
        S::TimestampSecond(Some(v), _)
        | S::TimestampMillisecond(Some(v), _)
        | S::TimestampMicrosecond(Some(v), _)
        | S::TimestampNanosecond(Some(v), _) => Some(*v),
        _ => None,
    }
}

/// The hash bucket of every value of `column`.
pub fn hash_buckets(column: &ArrayRef, count: u32) -> Result<Vec<u32>> {
    let count = count.max(1);
    let mut out = Vec::with_capacity(column.len());
    let mut push = |valid: bool, bytes: &[u8]| {
        out.push(if valid {
            mix(crc32c::crc32c(bytes)) % count
        } else {
            0
        })
    };
    macro_rules! integers {
        ($t:ty) => {{
            let values = column.as_primitive::<$t>();
            for row in 0..values.len() {
                push(
                    values.is_valid(row),
                    &(values.value(row) as i64).to_le_bytes(),
                );
            }
        }};
    }
    match column.data_type() {
        DataType::Int8 => integers!(Int8Type),
        DataType::Int16 => integers!(Int16Type),
        DataType::Int32 => integers!(Int32Type),
        DataType::Int64 => integers!(Int64Type),
        DataType::Date32 => integers!(Date32Type),
        DataType::Timestamp(_, _) => {
            let values = raw_integers(column)?;
            for row in 0..values.len() {
                push(values.is_valid(row), &values.value(row).to_le_bytes());
            }
        }
        DataType::Float32 | DataType::Float64 => {
            let values = if *column.data_type() == DataType::Float32 {
                cast(column, &DataType::Float64)?
            } else {
                column.clone()
            };
            let values = values.as_primitive::<Float64Type>();
            for row in 0..values.len() {
                push(
                    values.is_valid(row),
                    &canonical_float(values.value(row)).to_le_bytes(),
                );
            }
        }
        DataType::Decimal128(_, _) => {
            let values = column.as_primitive::<Decimal128Type>();
            for row in 0..values.len() {
                push(values.is_valid(row), &values.value(row).to_le_bytes());
            }
        }
        DataType::Boolean => {
            let values = column.as_boolean();
            for row in 0..values.len() {
                push(values.is_valid(row), &[u8::from(values.value(row))]);
            }
        }
        DataType::Utf8 => {
            let values = column.as_string::<i32>();
            for row in 0..values.len() {
                push(values.is_valid(row), values.value(row).as_bytes());
            }
        }
        DataType::Binary => {
            let values = column.as_binary::<i32>();
            for row in 0..values.len() {
                push(values.is_valid(row), values.value(row));
            }
        }
        other => {
            return Err(KuraError::internal(format!(
                "a hash partitioning key cannot have type {other}"
            )));
        }
    }
    Ok(out)
}

/// Spreads a CRC over all 32 bits: CRC is linear, so keys differing only in a few bits
/// (`dev-1`, `dev-2`, ...) would otherwise share their low bits and crowd few buckets. This
/// is the 32-bit finalizer of MurmurHash3.
fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The bucket of one value, which must already have the key column's type.
pub fn hash_bucket(value: &ScalarValue, count: u32) -> Result<u32> {
    let array: ArrayRef = value.to_array_of_size(1)?;
    Ok(hash_buckets(&array, count)?[0])
}

/// One bit pattern per float value: -0.0 hashes as 0.0, every NaN alike.
fn canonical_float(v: f64) -> u64 {
    if v == 0.0 {
        0
    } else if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

/// Types a hash partitioning key may have.
pub fn hashable(ty: &SqlType) -> bool {
    let array: Arc<dyn Array> = datafusion::arrow::array::new_empty_array(&ty.arrow_type());
    hash_buckets(&array, 1).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use datafusion::arrow::datatypes::{Field, Schema};

    fn ts_spec(width: i64, unit: TimeUnitName, sub: Option<HashSpec>) -> IntervalSpec {
        IntervalSpec::new(
            0,
            &SqlType::Timestamp {
                unit: TimeUnit::Millisecond,
            },
            width,
            Some(unit),
            sub,
        )
        .unwrap()
    }

    #[test]
    fn widths_follow_griddb_rules() {
        assert!(IntervalSpec::new(0, &SqlType::Byte, 127, None, None).is_ok());
        assert!(IntervalSpec::new(0, &SqlType::Byte, 128, None, None).is_err());
        assert!(IntervalSpec::new(0, &SqlType::Long, 999, None, None).is_err());
        assert!(IntervalSpec::new(0, &SqlType::Long, 1000, None, None).is_ok());
        let sub = Some(HashSpec {
            column: 1,
            count: 4,
        });
        assert!(IntervalSpec::new(0, &SqlType::Long, 3999, None, sub).is_err());
        assert!(IntervalSpec::new(0, &SqlType::Integer, 5, Some(TimeUnitName::Day), None).is_err());
        let ts = SqlType::Timestamp {
            unit: TimeUnit::Millisecond,
        };
        assert!(IntervalSpec::new(0, &ts, 1, None, None).is_err());
        assert!(IntervalSpec::new(0, &ts, 1, Some(TimeUnitName::Millisecond), None).is_err());
        assert!(IntervalSpec::new(0, &SqlType::Double, 1, None, None).is_err());
        let micro = IntervalSpec::new(
            0,
            &SqlType::Timestamp {
                unit: TimeUnit::Microsecond,
            },
            2,
            Some(TimeUnitName::Hour),
            None,
        )
        .unwrap();
        assert_eq!(micro.raw_width, 2 * 3_600_000 * 1000);
        assert_eq!(micro.upper_millis(0), 7_200_000);
    }

    #[test]
    fn intervals_floor_towards_negative_infinity() {
        let spec = IntervalSpec::new(0, &SqlType::Integer, 10, None, None).unwrap();
        assert_eq!(spec.interval_of(0), 0);
        assert_eq!(spec.interval_of(9), 0);
        assert_eq!(spec.interval_of(10), 1);
        assert_eq!(spec.interval_of(-1), -1);
        assert_eq!(spec.bounds(-1), (-10, 0));
        let day = ts_spec(1, TimeUnitName::Day, None);
        assert_eq!(day.interval_of(86_400_000 * 3 + 5), 3);
        assert_eq!(day.upper_millis(3), 86_400_000 * 4);
    }

    #[test]
    fn routing_splits_by_interval_and_bucket_and_keeps_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("s", DataType::Utf8, false),
        ]));
        let hour = 3_600_000;
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![
                    0,
                    hour,
                    1,
                    hour + 1,
                    2,
                ])),
                Arc::new(StringArray::from(vec!["a", "a", "b", "b", "a"])),
            ],
        )
        .unwrap();
        let partitioning = Partitioning::Interval(ts_spec(
            1,
            TimeUnitName::Hour,
            Some(HashSpec {
                column: 1,
                count: 8,
            }),
        ));
        let routed = partitioning.route(batch).unwrap();
        let total: usize = routed.iter().map(|(_, b)| b.num_rows()).sum();
        assert_eq!(total, 5);
        let a = hash_bucket(&ScalarValue::Utf8(Some("a".into())), 8).unwrap();
        let first = routed
            .iter()
            .find(|(k, _)| {
                *k == PartitionKey {
                    interval: 0,
                    bucket: a,
                }
            })
            .unwrap();
        let ts = first
            .1
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
        assert_eq!(ts.values().to_vec(), vec![0, 2]);
    }

    #[test]
    fn buckets_agree_across_integer_widths_and_scalars() {
        let narrow: ArrayRef = Arc::new(Int32Array::from(vec![Some(7), None, Some(-3)]));
        let wide: ArrayRef = Arc::new(Int64Array::from(vec![Some(7), None, Some(-3)]));
        assert_eq!(
            hash_buckets(&narrow, 16).unwrap(),
            hash_buckets(&wide, 16).unwrap()
        );
        assert_eq!(hash_buckets(&narrow, 16).unwrap()[1], 0);
        assert_eq!(
            hash_bucket(&ScalarValue::Int64(Some(7)), 16).unwrap(),
            hash_buckets(&narrow, 16).unwrap()[0]
        );
        // Placement is part of the stored format: it must never change.
        assert_eq!(
            hash_bucket(&ScalarValue::Int64(Some(7)), 1024).unwrap(),
            mix(crc32c::crc32c(&7i64.to_le_bytes())) % 1024
        );
    }

    #[test]
    fn similar_strings_spread_over_buckets() {
        let names: ArrayRef = Arc::new(StringArray::from(
            (1..=8).map(|n| format!("dev-{n}")).collect::<Vec<_>>(),
        ));
        let buckets: std::collections::BTreeSet<u32> =
            hash_buckets(&names, 4).unwrap().into_iter().collect();
        assert_eq!(buckets.len(), 4);
    }
}
