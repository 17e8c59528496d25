//! Units, fields and time zones: the string arguments that say what to count or read
//! ([`Field`]) and in which fixed-offset zone ([`parse_zone`]).
//!
//! Invariants: units and fields match without regard to case and only within the set a function
//! allows; a zone is `Z`, `±hh:mm` or `±hhmm` with hh ≤ 23 and mm ≤ 59, and is written back as
//! GridDB writes it (`Z` or `±hh:mm`). Anything else is a 22023 error.

use chrono::{FixedOffset, Offset, Utc};

use super::errors::invalid_parameter;
use super::values::NANOS_PER_SECOND;
use crate::error::KuraError;

/// A unit of TIMESTAMP_ADD / TIMESTAMP_DIFF or a field of TIMESTAMP_TRUNC / EXTRACT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
    DayOfWeek,
    DayOfYear,
}

const FIELD_NAMES: [(&str, Field); 11] = [
    ("YEAR", Field::Year),
    ("MONTH", Field::Month),
    ("DAY", Field::Day),
    ("HOUR", Field::Hour),
    ("MINUTE", Field::Minute),
    ("SECOND", Field::Second),
    ("MILLISECOND", Field::Millisecond),
    ("MICROSECOND", Field::Microsecond),
    ("NANOSECOND", Field::Nanosecond),
    ("DAY_OF_WEEK", Field::DayOfWeek),
    ("DAY_OF_YEAR", Field::DayOfYear),
];

/// Units of TIMESTAMP_ADD and TIMESTAMP_DIFF.
pub(super) const ARITHMETIC_UNITS: &[Field] = &[
    Field::Year,
    Field::Month,
    Field::Day,
    Field::Hour,
    Field::Minute,
    Field::Second,
    Field::Millisecond,
];

/// Fields of TIMESTAMP_TRUNC.
pub(super) const TRUNC_FIELDS: &[Field] = &[
    Field::Year,
    Field::Month,
    Field::Day,
    Field::Hour,
    Field::Minute,
    Field::Second,
    Field::Millisecond,
    Field::Microsecond,
    Field::Nanosecond,
];

/// Fields of EXTRACT.
pub(super) const EXTRACT_FIELDS: &[Field] = &[
    Field::Year,
    Field::Month,
    Field::Day,
    Field::Hour,
    Field::Minute,
    Field::Second,
    Field::Millisecond,
    Field::Microsecond,
    Field::Nanosecond,
    Field::DayOfWeek,
    Field::DayOfYear,
];

impl Field {
    fn name(self) -> &'static str {
        FIELD_NAMES
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(name, _)| name)
    }

    /// Reads `text` (any case) as one of `allowed`.
    pub(super) fn parse(text: &str, allowed: &[Field]) -> Result<Field, KuraError> {
        FIELD_NAMES
            .iter()
            .find(|(name, f)| name.eq_ignore_ascii_case(text.trim()) && allowed.contains(f))
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|f| f.name()).collect();
                invalid_parameter(format!(
                    "invalid unit '{text}': expected one of {}",
                    names.join(", ")
                ))
            })
    }

    /// The length of a fixed-length unit, in nanoseconds (a day is 24 hours: zones are fixed
    /// offsets).
    pub(super) fn nanos(self) -> Option<i64> {
        Some(match self {
            Field::Day => 86_400 * NANOS_PER_SECOND,
            Field::Hour => 3_600 * NANOS_PER_SECOND,
            Field::Minute => 60 * NANOS_PER_SECOND,
            Field::Second => NANOS_PER_SECOND,
            Field::Millisecond => 1_000_000,
            Field::Microsecond => 1_000,
            Field::Nanosecond => 1,
            Field::Year | Field::Month | Field::DayOfWeek | Field::DayOfYear => return None,
        })
    }
}

pub(super) fn utc() -> FixedOffset {
    Utc.fix()
}

/// Reads a time zone argument: `Z`, `±hh:mm` or `±hhmm` (hh up to 23, mm up to 59).
pub(super) fn parse_zone(text: &str) -> Result<FixedOffset, KuraError> {
    let bad = || {
        invalid_parameter(format!(
            "invalid time zone '{text}': expected Z, ±hh:mm or ±hhmm"
        ))
    };
    if text == "Z" {
        return Ok(utc());
    }
    let (sign, rest) = match text.as_bytes().split_first() {
        Some((b'+', rest)) => (1, rest),
        Some((b'-', rest)) => (-1, rest),
        _ => return Err(bad()),
    };
    let (hh, mm) = match rest {
        [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => ([*h1, *h2], [*m1, *m2]),
        _ => return Err(bad()),
    };
    let hours = two_digits(hh).filter(|h| *h <= 23).ok_or_else(bad)?;
    let minutes = two_digits(mm).filter(|m| *m <= 59).ok_or_else(bad)?;
    FixedOffset::east_opt(sign * (hours * 3_600 + minutes * 60)).ok_or_else(bad)
}

fn two_digits(pair: [u8; 2]) -> Option<i32> {
    let [a, b] = pair;
    (a.is_ascii_digit() && b.is_ascii_digit())
        .then(|| i32::from(a - b'0') * 10 + i32::from(b - b'0'))
}

/// `Z` for UTC, otherwise `±hh:mm`, as GridDB writes zones.
pub(super) fn zone_text(zone: FixedOffset) -> String {
    let seconds = zone.local_minus_utc();
    if seconds == 0 {
        return "Z".to_string();
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::sqlstate;
    use crate::query::time_functions::testing::zone;

    #[test]
    fn zones() {
        assert_eq!(parse_zone("Z").unwrap().local_minus_utc(), 0);
        assert_eq!(parse_zone("+09:00").unwrap().local_minus_utc(), 9 * 3600);
        assert_eq!(parse_zone("-0130").unwrap().local_minus_utc(), -5400);
        assert_eq!(parse_zone("+00:00").unwrap(), utc());
        for bad in [
            "", "UTC", "z", "+9:00", "+24:00", "+05:60", "+0900x", "09:00", "+", "+é:00",
        ] {
            let e = parse_zone(bad).unwrap_err();
            assert_eq!(e.code, sqlstate::INVALID_PARAMETER_VALUE, "{bad}");
        }
        assert_eq!(zone_text(zone("+09:00")), "+09:00");
        assert_eq!(zone_text(zone("-0130")), "-01:30");
        assert_eq!(zone_text(utc()), "Z");
    }

    #[test]
    fn units_and_fields() {
        assert_eq!(Field::parse("day", ARITHMETIC_UNITS).unwrap(), Field::Day);
        assert_eq!(
            Field::parse("Day_Of_Week", EXTRACT_FIELDS).unwrap(),
            Field::DayOfWeek
        );
        let e = Field::parse("MICROSECOND", ARITHMETIC_UNITS).unwrap_err();
        assert!(e.message.contains("YEAR, MONTH, DAY"), "{}", e.message);
        assert!(Field::parse("WEEK", EXTRACT_FIELDS).is_err());
        assert!(Field::parse("DAY_OF_WEEK", TRUNC_FIELDS).is_err());
    }
}
