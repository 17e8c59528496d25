//! TIMESTAMP_MS / _US / _NS (and so GridDB's `TIMESTAMP('...')`): reading GridDB's timestamp
//! text, `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm|±hhmm)`, `YYYY-MM-DD` or
//! `hh:mm:ss[.fraction]`, into a TIMESTAMP(3), (6) or (9).
//!
//! Invariants: the whole string must match one of the three forms, byte for byte (no spaces, no
//! other digits than ASCII), or the error is 22007; the fraction has 3 digits, or also 6 (US), or
//! also 9 (NS); the full form carries its own zone, which must agree with a zone argument; a
//! field value out of its range, and an instant outside GridDB's range, is 22008.

use chrono::{FixedOffset, NaiveDate, NaiveTime};
use datafusion::arrow::datatypes::TimeUnit;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::ColumnarValue;

use super::args::Strs;
use super::call::Call;
use super::errors::{field_overflow, invalid_format, invalid_parameter, or_list, type_name};
use super::units::{parse_zone, utc, zone_text};
use super::values::griddb_from_local;
use crate::error::KuraError;

/// A cursor over the bytes of a timestamp string.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let digits = self.bytes.get(self.at..self.at + n)?;
        let mut value: u32 = 0;
        for d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(d - b'0');
        }
        self.at += n;
        Some(value)
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            return true;
        }
        false
    }

    /// `[.digits]` as nanoseconds, when its digit count is one of `allowed`.
    fn fraction(&mut self, allowed: &[usize]) -> Result<u32, Option<usize>> {
        if !self.eat(b'.') {
            return Ok(0);
        }
        let count = self.bytes[self.at.min(self.bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !allowed.contains(&count) {
            return Err(Some(count));
        }
        let value = self.digits(count).ok_or(None)?;
        let scale = 10u32.pow(9u32.saturating_sub(count as u32));
        Ok(value * scale)
    }

    fn rest(&self) -> &str {
        std::str::from_utf8(self.bytes.get(self.at..).unwrap_or_default()).unwrap_or("")
    }

    fn at_end(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// The fraction digit counts TIMESTAMP_MS/US/NS accept.
fn allowed_fractions(unit: TimeUnit) -> &'static [usize] {
    match unit {
        TimeUnit::Second => &[],
        TimeUnit::Millisecond => &[3],
        TimeUnit::Microsecond => &[3, 6],
        TimeUnit::Nanosecond => &[3, 6, 9],
    }
}

/// TIMESTAMP_MS / _US / _NS: reads `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm|±hhmm)`,
/// `YYYY-MM-DD` or `hh:mm:ss[.fraction]` (on 1970-01-01). A string without a zone is in `zone`,
/// or UTC; a string zone must agree with `zone` when both are given.
pub(super) fn parse_timestamp(
    text: &str,
    zone: Option<FixedOffset>,
    unit: TimeUnit,
) -> Result<i64, KuraError> {
    let malformed = || {
        invalid_format(format!(
            "invalid timestamp '{text}': expected YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm|±hhmm), \
             YYYY-MM-DD or hh:mm:ss"
        ))
    };
    let bad_fraction = |count: Option<usize>| {
        let Some(count) = count else {
            return malformed();
        };
        let counts: Vec<String> = allowed_fractions(unit)
            .iter()
            .map(usize::to_string)
            .collect();
        let allowed = match counts.as_slice() {
            [] => "no digits".to_string(),
            counts => format!("{} digits", or_list(counts)),
        };
        invalid_format(format!(
            "invalid timestamp '{text}': the fraction has {count} digits, {} takes {allowed}",
            type_name(unit)
        ))
    };
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut date = (1970, 1, 1);
    let mut time = (0, 0, 0, 0);
    let mut string_zone = None;
    let has_date = !text.contains(':') || text.contains('T');
    if has_date {
        let year = cursor.digits(4).ok_or_else(malformed)?;
        let month = cursor.eat(b'-').then(|| cursor.digits(2)).flatten();
        let day = cursor.eat(b'-').then(|| cursor.digits(2)).flatten();
        let (Some(month), Some(day)) = (month, day) else {
            return Err(malformed());
        };
        date = (year, month, day);
    }
    let has_time = !has_date || cursor.eat(b'T');
    if has_time {
        let hour = cursor.digits(2);
        let minute = cursor.eat(b':').then(|| cursor.digits(2)).flatten();
        let second = cursor.eat(b':').then(|| cursor.digits(2)).flatten();
        let (Some(hour), Some(minute), Some(second)) = (hour, minute, second) else {
            return Err(malformed());
        };
        let nanos = cursor
            .fraction(allowed_fractions(unit))
            .map_err(bad_fraction)?;
        time = (hour, minute, second, nanos);
        if has_date {
            // The full form carries its zone.
            string_zone = Some(parse_zone(cursor.rest()).map_err(|_| malformed())?);
            cursor.at = cursor.bytes.len();
        }
    }
    if !cursor.at_end() {
        return Err(malformed());
    }
    let zone = match (string_zone, zone) {
        (Some(own), Some(given)) if own != given => {
            return Err(invalid_parameter(format!(
                "the time zone of '{text}' ({}) contradicts the time zone argument ({})",
                zone_text(own),
                zone_text(given)
            )));
        }
        (Some(own), _) => own,
        (None, given) => given.unwrap_or_else(utc),
    };
    let year = i32::try_from(date.0).map_err(|_| malformed())?;
    let local = NaiveDate::from_ymd_opt(year, date.1, date.2)
        .zip(NaiveTime::from_hms_nano_opt(time.0, time.1, time.2, time.3))
        .map(|(d, t)| d.and_time(t))
        .ok_or_else(|| field_overflow(format!("date/time field value out of range: '{text}'")))?;
    griddb_from_local(local, zone, unit, || format!("timestamp '{text}'"))
}

/// TIMESTAMP_MS / _US / _NS `(text [, zone])`, making timestamps of `unit`.
pub(super) fn invoke_parse(
    call: &Call,
    args: &[ColumnarValue],
    unit: TimeUnit,
) -> DfResult<ColumnarValue> {
    let texts = Strs::new(call.arg(args, 0)?)?;
    let zones = call.given_zones(args.get(1))?;
    let out = call.each(|row| {
        let text = texts.get(row)?;
        let zone = match &zones {
            Some(zones) => Some(zones.get(row)?),
            None => None,
        };
        Some(parse_timestamp(text, zone, unit))
    })?;
    call.timestamps(out, unit, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::sqlstate;
    use crate::query::time_functions::testing::{MS, NS, US, ms, zone};
    use crate::query::time_functions::values::MAX_GRIDDB_SECOND;

    #[test]
    fn parses_griddb_strings() {
        assert_eq!(ms("2018-12-01T11:22:33.444Z"), 1_543_663_353_444);
        assert_eq!(ms("1970-01-01T00:00:00Z"), 0);
        // The zone forms all name the same instant.
        let base = ms("2018-12-01T10:30:02.392Z");
        assert_eq!(ms("2018-12-01T19:30:02.392+09:00"), base);
        assert_eq!(ms("2018-12-01T19:30:02.392+0900"), base);
        assert_eq!(ms("2018-12-01T09:30:02.392-01:00"), base);
        assert_eq!(ms("2018-12-01T10:30:02Z"), base - 392);
        // Date only and time only take the zone argument, then UTC.
        assert_eq!(ms("2018-12-01"), ms("2018-12-01T00:00:00Z"));
        let tokyo = Some(zone("+09:00"));
        assert_eq!(
            parse_timestamp("2018-12-01", tokyo, MS).unwrap(),
            ms("2018-11-30T15:00:00Z")
        );
        assert_eq!(ms("10:30:00"), 37_800_000);
        assert_eq!(ms("10:30:00.250"), 37_800_250);
        assert_eq!(
            parse_timestamp("10:30:00", tokyo, MS).unwrap(),
            ms("1970-01-01T01:30:00Z")
        );
        // A string zone that agrees with the argument is fine.
        assert_eq!(
            parse_timestamp("2018-12-01T19:30:02.392+09:00", tokyo, MS).unwrap(),
            base
        );
        // Precision: microsecond and nanosecond strings.
        assert_eq!(
            parse_timestamp("2018-12-01T10:30:02.392123Z", None, US).unwrap(),
            1_543_660_202_392_123
        );
        assert_eq!(
            parse_timestamp("2018-12-01T10:30:02.392Z", None, US).unwrap(),
            1_543_660_202_392_000
        );
        assert_eq!(
            parse_timestamp("2018-12-01T10:30:02.392123456Z", None, NS).unwrap(),
            1_543_660_202_392_123_456
        );
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:59.999Z", None, MS).unwrap(),
            MAX_GRIDDB_SECOND * 1000 + 999
        );
        // Leap day.
        assert_eq!(ms("2020-02-29"), ms("2020-03-01") - 86_400_000);
    }

    #[test]
    fn rejects_bad_strings() {
        let code = |text: &str, tz: Option<&str>, unit| {
            parse_timestamp(text, tz.map(zone), unit).unwrap_err().code
        };
        for bad in [
            "",
            "bad",
            "2018-12-01T10:30:00",  // the full form needs a zone
            "2018-12-01 10:30:00Z", // T, not a space
            "2018-12-1",
            "18-12-01",
            "2018-12-01T10:30Z",
            "2018-12-01T10:30:00.Z",
            "2018-12-01T10:30:00ZZ",
            "2018-12-01T10:30:00+9:00",
            " 2018-12-01",
            "2018-12-01x",
            "10:30:00Z",
            "10:30",
            "２０１８-12-01",
        ] {
            assert_eq!(
                code(bad, None, MS),
                sqlstate::INVALID_DATETIME_FORMAT,
                "{bad}"
            );
        }
        // Fraction digits by precision.
        assert_eq!(
            code("2018-12-01T10:30:00.5Z", None, MS),
            sqlstate::INVALID_DATETIME_FORMAT
        );
        assert_eq!(
            code("2018-12-01T10:30:00.123456Z", None, MS),
            sqlstate::INVALID_DATETIME_FORMAT
        );
        assert_eq!(
            code("2018-12-01T10:30:00.1234Z", None, US),
            sqlstate::INVALID_DATETIME_FORMAT
        );
        assert_eq!(
            code("2018-12-01T10:30:00.123456789Z", None, US),
            sqlstate::INVALID_DATETIME_FORMAT
        );
        assert!(parse_timestamp("2018-12-01T10:30:00.123456Z", None, NS).is_ok());
        // Field values.
        for bad in [
            "2018-02-29",
            "2018-13-01",
            "2018-00-10",
            "2018-04-31",
            "24:00:00",
            "10:60:00",
            "10:00:60",
        ] {
            assert_eq!(
                code(bad, None, MS),
                sqlstate::DATETIME_FIELD_OVERFLOW,
                "{bad}"
            );
        }
        // GridDB's range: from the epoch (after the zone is applied) to the end of 9999.
        for bad in [
            "1969-12-31T23:59:59Z",
            "1969-12-31",
            "1970-01-01T00:00:00+09:00",
        ] {
            assert_eq!(
                code(bad, None, MS),
                sqlstate::DATETIME_FIELD_OVERFLOW,
                "{bad}"
            );
        }
        assert_eq!(
            code("10:00:00", Some("+11:00"), MS),
            sqlstate::DATETIME_FIELD_OVERFLOW
        );
        assert_eq!(
            code("9999-12-31T23:59:59-01:00", None, MS),
            sqlstate::DATETIME_FIELD_OVERFLOW
        );
        // Nanoseconds since the epoch run out in 2262.
        assert_eq!(
            code("2300-01-01", None, NS),
            sqlstate::DATETIME_FIELD_OVERFLOW
        );
        // A zone in the string must agree with the argument.
        let e = parse_timestamp("2018-12-01T10:30:00Z", Some(zone("+09:00")), MS).unwrap_err();
        assert_eq!(e.code, sqlstate::INVALID_PARAMETER_VALUE);
        assert!(e.message.contains("contradicts"), "{}", e.message);
    }
}
