//! TIMESTAMP_TRUNC and EXTRACT: the local fields of a timestamp in a zone, reset below a field
//! or read one at a time.
//!
//! Invariants: fields are those of the local date and time in the zone (UTC by default);
//! TIMESTAMP_TRUNC keeps its input's type and never moves a value forward; EXTRACT's sub-second
//! fields are the whole fraction of the second in that unit, never negative (also before 1970),
//! DAY_OF_WEEK counts from Sunday = 0 and DAY_OF_YEAR from January 1 = 1.

use chrono::{Datelike, FixedOffset, NaiveDate, NaiveTime, Timelike};
use datafusion::arrow::datatypes::TimeUnit;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::ColumnarValue;

use super::args::Timestamps;
use super::call::Call;
use super::errors::out_of_range;
use super::units::{EXTRACT_FIELDS, Field, TRUNC_FIELDS};
use super::values::{from_local, subsec_nanos, to_local};
use crate::error::KuraError;

/// TIMESTAMP_TRUNC: `value` with the fields below `field` (in `zone`) reset.
fn trunc(field: Field, value: i64, unit: TimeUnit, zone: FixedOffset) -> Result<i64, KuraError> {
    let t = to_local(value, unit, zone)?;
    let date = t.date();
    let (h, m, s, nanos) = (t.hour(), t.minute(), t.second(), t.nanosecond());
    let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN);
    let at = |time: Option<NaiveTime>| time.map(|time| date.and_time(time));
    let truncated = match field {
        Field::Year => NaiveDate::from_ymd_opt(t.year(), 1, 1).map(midnight),
        Field::Month => NaiveDate::from_ymd_opt(t.year(), t.month(), 1).map(midnight),
        Field::Day | Field::DayOfWeek | Field::DayOfYear => Some(midnight(date)),
        Field::Hour => at(NaiveTime::from_hms_opt(h, 0, 0)),
        Field::Minute => at(NaiveTime::from_hms_opt(h, m, 0)),
        Field::Second => at(NaiveTime::from_hms_opt(h, m, s)),
        Field::Millisecond => at(NaiveTime::from_hms_nano_opt(
            h,
            m,
            s,
            nanos - nanos % 1_000_000,
        )),
        Field::Microsecond => at(NaiveTime::from_hms_nano_opt(h, m, s, nanos - nanos % 1_000)),
        Field::Nanosecond => Some(t),
    }
    .ok_or_else(|| out_of_range(unit))?;
    from_local(truncated, zone, unit)
}

/// EXTRACT: one field of `value` in `zone`. The sub-second fields are the whole fraction of
/// the second in that unit.
fn extract(field: Field, value: i64, unit: TimeUnit, zone: FixedOffset) -> Result<i64, KuraError> {
    let t = to_local(value, unit, zone)?;
    let nanos = i64::from(subsec_nanos(t));
    Ok(match field {
        Field::Year => i64::from(t.year()),
        Field::Month => i64::from(t.month()),
        Field::Day => i64::from(t.day()),
        Field::Hour => i64::from(t.hour()),
        Field::Minute => i64::from(t.minute()),
        Field::Second => i64::from(t.second()),
        Field::Millisecond => nanos / 1_000_000,
        Field::Microsecond => nanos / 1_000,
        Field::Nanosecond => nanos,
        Field::DayOfWeek => i64::from(t.weekday().num_days_from_sunday()),
        Field::DayOfYear => i64::from(t.ordinal()),
    })
}

/// TIMESTAMP_TRUNC `(field, ts [, zone])`.
pub(super) fn invoke_trunc(call: &Call, args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let fields = call.fields(call.arg(args, 0)?, TRUNC_FIELDS)?;
    let ts = Timestamps::new(call.arg(args, 1)?)?;
    let zones = call.zones(args.get(2))?;
    let out = call.each(|row| {
        let (f, v, z) = (fields.get(row)?, ts.get(row)?, zones.get(row)?);
        Some(trunc(f, v, ts.unit, z))
    })?;
    call.timestamps(out, ts.unit, ts.tz)
}

/// EXTRACT `(field, ts [, zone])`.
pub(super) fn invoke_extract(call: &Call, args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let fields = call.fields(call.arg(args, 0)?, EXTRACT_FIELDS)?;
    let ts = Timestamps::new(call.arg(args, 1)?)?;
    let zones = call.zones(args.get(2))?;
    let out = call.each(|row| {
        let (f, v, z) = (fields.get(row)?, ts.get(row)?, zones.get(row)?);
        Some(extract(f, v, ts.unit, z))
    })?;
    call.longs(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::query::time_functions::construct::make_timestamp;
    use crate::query::time_functions::parse::parse_timestamp;
    use crate::query::time_functions::testing::{MS, NS, ms, zone};
    use crate::query::time_functions::units::utc;

    #[test]
    fn truncates_in_the_zone() {
        let ts = make_timestamp([2019, 5, 15, 0, 0], 0.0, utc(), MS).unwrap();
        assert_eq!(
            trunc(Field::Day, ts, MS, zone("-01:00")).unwrap(),
            ms("2019-05-14T01:00:00Z")
        );
        let ts = ms("2019-09-19T10:30:15.123Z");
        assert_eq!(
            trunc(Field::Hour, ts, MS, utc()).unwrap(),
            ms("2019-09-19T10:00:00Z")
        );
        assert_eq!(trunc(Field::Year, ts, MS, utc()).unwrap(), ms("2019-01-01"));
        assert_eq!(
            trunc(Field::Month, ts, MS, utc()).unwrap(),
            ms("2019-09-01")
        );
        assert_eq!(
            trunc(Field::Minute, ts, MS, utc()).unwrap(),
            ms("2019-09-19T10:30:00Z")
        );
        assert_eq!(
            trunc(Field::Second, ts, MS, utc()).unwrap(),
            ms("2019-09-19T10:30:15Z")
        );
        assert_eq!(trunc(Field::Millisecond, ts, MS, utc()).unwrap(), ts);
        assert_eq!(trunc(Field::Nanosecond, ts, MS, utc()).unwrap(), ts);
        // Half-hour zones move the hour boundary.
        assert_eq!(
            trunc(Field::Hour, ms("2019-09-19T10:20:15Z"), MS, zone("+05:30")).unwrap(),
            ms("2019-09-19T09:30:00Z")
        );
        let ns = parse_timestamp("2019-09-19T10:30:15.123456789Z", None, NS).unwrap();
        assert_eq!(trunc(Field::Microsecond, ns, NS, utc()).unwrap(), ns - 789);
        assert_eq!(
            trunc(Field::Millisecond, ns, NS, utc()).unwrap(),
            ns - 456_789
        );
        assert_eq!(
            trunc(Field::Year, ns, NS, zone("+09:00")).unwrap(),
            parse_timestamp("2019-01-01", Some(zone("+09:00")), NS).unwrap()
        );
        // Before 1970.
        assert_eq!(trunc(Field::Day, -1, MS, utc()).unwrap(), -86_400_000);
    }

    #[test]
    fn extracts_fields() {
        let ts = ms("2018-12-01T10:30:02.392Z");
        let get = |f, tz| extract(f, ts, MS, zone(tz)).unwrap();
        assert_eq!(get(Field::Hour, "+09:00"), 19);
        assert_eq!(get(Field::Year, "Z"), 2018);
        assert_eq!(get(Field::Month, "Z"), 12);
        assert_eq!(get(Field::Day, "Z"), 1);
        assert_eq!(get(Field::Day, "-11:00"), 30);
        assert_eq!(get(Field::Minute, "Z"), 30);
        assert_eq!(get(Field::Second, "Z"), 2);
        assert_eq!(get(Field::Millisecond, "Z"), 392);
        assert_eq!(get(Field::Microsecond, "Z"), 392_000);
        assert_eq!(get(Field::Nanosecond, "Z"), 392_000_000);
        // 2018-12-01 was a Saturday, the 335th day of 2018.
        assert_eq!(get(Field::DayOfWeek, "Z"), 6);
        assert_eq!(get(Field::DayOfYear, "Z"), 335);
        assert_eq!(
            extract(Field::DayOfYear, ms("2020-12-31"), MS, utc()).unwrap(),
            366
        );
        assert_eq!(extract(Field::DayOfWeek, 0, MS, utc()).unwrap(), 4);
        // Before the epoch the fraction is still positive.
        assert_eq!(extract(Field::Millisecond, -1, MS, utc()).unwrap(), 999);
        assert_eq!(extract(Field::Year, -1, MS, utc()).unwrap(), 1969);
    }
}
