//! Timestamp values: an Arrow timestamp is a count of `TimeUnit`s since the Unix epoch in UTC;
//! this module converts such counts to and from UTC and local (fixed-offset) date-times, and
//! knows GridDB's timestamp range.
//!
//! Invariants: conversions never panic and never wrap: a result that does not fit is
//! [`out_of_range`] (22008) for the target unit; conversions to a coarser unit round down
//! (toward the past), never to the nearest; a leap-second date-time counts as second 59.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeDelta, Timelike};
use datafusion::arrow::datatypes::TimeUnit;

use super::errors::{griddb_range_error, out_of_range};
use crate::error::KuraError;

pub(super) const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// The last second GridDB can store, 9999-12-31T23:59:59Z, in seconds since the epoch.
pub(super) const MAX_GRIDDB_SECOND: i64 = 253_402_300_799;

/// Digits of the fraction of a second in a timestamp of `unit` (GridDB's precision).
pub(super) fn fraction_digits(unit: TimeUnit) -> u32 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

fn per_second(unit: TimeUnit) -> i64 {
    10i64.pow(fraction_digits(unit))
}

/// Nanoseconds since the epoch of a value in `unit` (exact: i128 holds them all).
pub(super) fn epoch_nanos(value: i64, unit: TimeUnit) -> i128 {
    i128::from(value) * i128::from(NANOS_PER_SECOND / per_second(unit))
}

/// The value in `unit` of `nanos` since the epoch, rounded down.
pub(super) fn from_epoch_nanos(nanos: i128, unit: TimeUnit) -> Result<i64, KuraError> {
    let step = i128::from(NANOS_PER_SECOND / per_second(unit));
    i64::try_from(nanos.div_euclid(step)).map_err(|_| out_of_range(unit))
}

/// The nanoseconds of `time` within its second (a leap second's fold removed).
pub(super) fn subsec_nanos(time: NaiveDateTime) -> u32 {
    time.nanosecond() % 1_000_000_000
}

/// The UTC date and time of a value in `unit`.
fn to_utc(value: i64, unit: TimeUnit) -> Result<NaiveDateTime, KuraError> {
    let per_second = per_second(unit);
    let seconds = value.div_euclid(per_second);
    let nanos = value.rem_euclid(per_second) * (NANOS_PER_SECOND / per_second);
    let nanos = u32::try_from(nanos).map_err(|_| out_of_range(unit))?;
    DateTime::from_timestamp(seconds, nanos)
        .map(|t| t.naive_utc())
        .ok_or_else(|| out_of_range(unit))
}

/// The value in `unit` of a UTC date and time, rounded down to the unit.
fn from_utc(time: NaiveDateTime, unit: TimeUnit) -> Result<i64, KuraError> {
    let nanos = i64::from(subsec_nanos(time));
    let sub = nanos / (NANOS_PER_SECOND / per_second(unit));
    time.and_utc()
        .timestamp()
        .checked_mul(per_second(unit))
        .and_then(|v| v.checked_add(sub))
        .ok_or_else(|| out_of_range(unit))
}

fn offset(zone: FixedOffset) -> TimeDelta {
    TimeDelta::seconds(i64::from(zone.local_minus_utc()))
}

/// The local date and time in `zone` of a value in `unit`.
pub(super) fn to_local(
    value: i64,
    unit: TimeUnit,
    zone: FixedOffset,
) -> Result<NaiveDateTime, KuraError> {
    to_utc(value, unit)?
        .checked_add_signed(offset(zone))
        .ok_or_else(|| out_of_range(unit))
}

/// The value in `unit` of a local date and time in `zone`.
pub(super) fn from_local(
    time: NaiveDateTime,
    zone: FixedOffset,
    unit: TimeUnit,
) -> Result<i64, KuraError> {
    let utc = time
        .checked_sub_signed(offset(zone))
        .ok_or_else(|| out_of_range(unit))?;
    from_utc(utc, unit)
}

/// Like [`from_local`], for a GridDB timestamp: the instant must lie in GridDB's range, or the
/// error says that `what()` is out of it.
pub(super) fn griddb_from_local(
    time: NaiveDateTime,
    zone: FixedOffset,
    unit: TimeUnit,
    what: impl FnOnce() -> String,
) -> Result<i64, KuraError> {
    let instant = time
        .checked_sub_signed(offset(zone))
        .filter(|t| in_griddb_range(*t))
        .ok_or_else(|| griddb_range_error(&what()))?;
    from_utc(instant, unit)
}

/// True if `time` (UTC) lies in GridDB's timestamp range.
fn in_griddb_range(time: NaiveDateTime) -> bool {
    (0..=MAX_GRIDDB_SECOND).contains(&time.and_utc().timestamp())
}
