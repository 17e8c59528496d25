//! Timestamps from numbers and back: MAKE_TIMESTAMP (and `_MS` / `_US` / `_NS`) from local date
//! and time fields, TO_TIMESTAMP_MS from milliseconds since the epoch, and TO_EPOCH_MS, its
//! inverse.
//!
//! Invariants: MAKE_TIMESTAMP and TO_TIMESTAMP_MS make GridDB timestamps, so their results lie
//! in GridDB's range, else 22008; a fractional second rounds half up to the unit and never
//! carries into the next second; TO_EPOCH_MS accepts any timestamp and rounds down.

use chrono::{FixedOffset, NaiveDate, NaiveTime};
use datafusion::arrow::datatypes::TimeUnit;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::ColumnarValue;

use super::args::{Floats, Ints, Timestamps};
use super::call::Call;
use super::errors::{field_overflow, griddb_range_error};
use super::values::{
    MAX_GRIDDB_SECOND, epoch_nanos, fraction_digits, from_epoch_nanos, griddb_from_local,
};
use crate::error::KuraError;

/// MAKE_TIMESTAMP: the instant of the given local fields in `zone`. `second` may carry a
/// fraction, rounded to the unit (GridDB rounds half up and never carries into the next
/// second).
pub(super) fn make_timestamp(
    fields: [i64; 5],
    second: f64,
    zone: FixedOffset,
    unit: TimeUnit,
) -> Result<i64, KuraError> {
    let [year, month, day, hour, minute] = fields;
    if !(0.0..60.0).contains(&second) {
        return Err(field_overflow(format!(
            "seconds value {second} is out of range: it must be at least 0 and less than 60"
        )));
    }
    let whole = second.floor();
    let digits = fraction_digits(unit);
    let scale = 10f64.powi(digits as i32);
    let max_fraction = 10i64.pow(digits) - 1;
    // `as` saturates; the value is in 0..=10^digits.
    let fraction = (((second - whole) * scale + 0.5).floor() as i64).min(max_fraction);
    let nanos = fraction * 10i64.pow(9 - digits);
    let bad = || {
        field_overflow(format!(
            "date/time field value out of range: year {year}, month {month}, day {day}, \
             hour {hour}, minute {minute}, second {second}"
        ))
    };
    let small = |v: i64| u32::try_from(v).ok();
    let local = i32::try_from(year)
        .ok()
        .zip(small(month))
        .zip(small(day))
        .and_then(|((y, m), d)| NaiveDate::from_ymd_opt(y, m, d))
        .zip(
            small(hour)
                .zip(small(minute))
                .zip(small(nanos))
                .and_then(|((h, mi), n)| NaiveTime::from_hms_nano_opt(h, mi, whole as u32, n)),
        )
        .map(|(d, t)| d.and_time(t))
        .ok_or_else(bad)?;
    griddb_from_local(local, zone, unit, || "the timestamp".to_string())
}

/// TO_TIMESTAMP_MS: the epoch plus `millis` milliseconds, in GridDB's range.
fn to_timestamp_ms(millis: i64) -> Result<i64, KuraError> {
    if (0..=MAX_GRIDDB_SECOND * 1_000 + 999).contains(&millis) {
        return Ok(millis);
    }
    Err(griddb_range_error(&format!("{millis} milliseconds")))
}

/// TO_EPOCH_MS: milliseconds since the epoch, finer digits dropped (rounded down).
fn to_epoch_ms(value: i64, unit: TimeUnit) -> Result<i64, KuraError> {
    from_epoch_nanos(epoch_nanos(value, unit), TimeUnit::Millisecond)
        .map_err(|_| field_overflow("milliseconds out of range for LONG".to_string()))
}

/// MAKE_TIMESTAMP `(year, month, day [, hour, minute, second] [, zone])`, making timestamps of
/// `unit`.
pub(super) fn invoke_make(
    call: &Call,
    args: &[ColumnarValue],
    unit: TimeUnit,
) -> DfResult<ColumnarValue> {
    let with_time = args.len() >= 6;
    let count = if with_time { 5 } else { 3 };
    let ints = (0..count)
        .map(|i| Ints::new(call.arg(args, i)?))
        .collect::<DfResult<Vec<_>>>()?;
    let seconds = if with_time {
        Some(Floats::new(call.arg(args, 5)?)?)
    } else {
        None
    };
    let zones = call.zones(args.get(if with_time { 6 } else { 3 }))?;
    let out = call.each(|row| {
        let mut fields = [0i64; 5];
        for (slot, ints) in fields.iter_mut().zip(&ints) {
            *slot = ints.get(row)?;
        }
        let second = match &seconds {
            Some(s) => s.get(row)?,
            None => 0.0,
        };
        Some(make_timestamp(fields, second, zones.get(row)?, unit))
    })?;
    call.timestamps(out, unit, None)
}

/// TO_TIMESTAMP_MS `(millis)`.
pub(super) fn invoke_to_timestamp_ms(
    call: &Call,
    args: &[ColumnarValue],
) -> DfResult<ColumnarValue> {
    let millis = Ints::new(call.arg(args, 0)?)?;
    let out = call.each(|row| Some(to_timestamp_ms(millis.get(row)?)))?;
    call.timestamps(out, TimeUnit::Millisecond, None)
}

/// TO_EPOCH_MS `(ts)`.
pub(super) fn invoke_to_epoch_ms(call: &Call, args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let ts = Timestamps::new(call.arg(args, 0)?)?;
    let out = call.each(|row| Some(to_epoch_ms(ts.get(row)?, ts.unit)))?;
    call.longs(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::sqlstate;
    use crate::query::time_functions::parse::parse_timestamp;
    use crate::query::time_functions::testing::{MS, NS, US, ms, zone};
    use crate::query::time_functions::units::utc;

    #[test]
    fn makes_timestamps() {
        assert_eq!(
            make_timestamp([2019, 9, 19, 0, 0], 0.0, utc(), MS).unwrap(),
            ms("2019-09-19T00:00:00.000Z")
        );
        assert_eq!(
            make_timestamp([2019, 9, 19, 10, 30], 15.123, zone("+09:00"), MS).unwrap(),
            ms("2019-09-19T01:30:15.123Z")
        );
        // Sub-millisecond digits round; they never carry into the next second.
        assert_eq!(
            make_timestamp([2019, 9, 19, 10, 30], 15.9996, utc(), MS).unwrap(),
            ms("2019-09-19T10:30:15.999Z")
        );
        assert_eq!(
            make_timestamp([2019, 9, 19, 10, 30], 15.0004, utc(), MS).unwrap(),
            ms("2019-09-19T10:30:15.000Z")
        );
        assert_eq!(
            make_timestamp([2019, 9, 19, 10, 30], 15.123456, utc(), US).unwrap(),
            parse_timestamp("2019-09-19T10:30:15.123456Z", None, US).unwrap()
        );
        for (fields, second) in [
            ([2019, 2, 29, 0, 0], 0.0),
            ([2019, 13, 1, 0, 0], 0.0),
            ([2019, 1, 1, 24, 0], 0.0),
            ([2019, 1, 1, 0, 60], 0.0),
            ([2019, 1, 1, 0, 0], 60.0),
            ([2019, 1, 1, 0, 0], -0.5),
            ([2019, 1, 1, 0, 0], f64::NAN),
            ([2019, 1, 1, 0, 0], f64::INFINITY),
            ([1969, 12, 31, 0, 0], 0.0),
            ([i64::MAX, 1, 1, 0, 0], 0.0),
            ([2019, -1, 1, 0, 0], 0.0),
            ([10_000, 1, 1, 0, 0], 0.0),
        ] {
            let e = make_timestamp(fields, second, utc(), MS).unwrap_err();
            assert_eq!(
                e.code,
                sqlstate::DATETIME_FIELD_OVERFLOW,
                "{fields:?} {second}"
            );
        }
    }

    #[test]
    fn epoch_milliseconds() {
        assert_eq!(
            to_timestamp_ms(1_609_459_199_999).unwrap(),
            ms("2020-12-31T23:59:59.999Z")
        );
        assert!(to_timestamp_ms(-1).is_err());
        assert!(to_timestamp_ms(i64::MAX).is_err());
        assert_eq!(
            to_epoch_ms(ms("2020-12-31T23:59:59.999+09:00"), MS).unwrap(),
            1_609_426_799_999
        );
        assert_eq!(to_epoch_ms(1_999, US).unwrap(), 1);
        assert_eq!(to_epoch_ms(-1, US).unwrap(), -1);
        assert_eq!(to_epoch_ms(1_999_999, NS).unwrap(), 1);
        assert_eq!(to_epoch_ms(2, TimeUnit::Second).unwrap(), 2_000);
        assert!(to_epoch_ms(i64::MAX, TimeUnit::Second).is_err());
    }
}
