//! STRFTIME: a timestamp written in a zone by a format of `%` codes.
//!
//! Invariants: the codes are exactly `%Y %m %d %H %M %S %3f %6f %9f %z %w %W %j %c %%`; any
//! other `%` sequence, including a `%` at the end, is a 22023 error naming the code. `%c` is
//! GridDB's ISO text with as many fraction digits as the input's precision; everything outside
//! a code is copied as it is.

use std::fmt::Write as _;

use chrono::{Datelike, FixedOffset, NaiveDateTime, Timelike};
use datafusion::arrow::datatypes::TimeUnit;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::ColumnarValue;

use super::args::{Strs, Timestamps};
use super::call::Call;
use super::errors::invalid_parameter;
use super::units::zone_text;
use super::values::{fraction_digits, subsec_nanos, to_local};
use crate::error::KuraError;

/// STRFTIME: `value` in `zone` written by `format`.
fn strftime(
    format: &str,
    value: i64,
    unit: TimeUnit,
    zone: FixedOffset,
) -> Result<String, KuraError> {
    let t = to_local(value, unit, zone)?;
    let nanos = subsec_nanos(t);
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut code = chars.next();
        let mut width = None;
        if let Some(digit) = code.filter(char::is_ascii_digit) {
            width = Some(digit);
            code = chars.next();
        }
        let written = match (width, code) {
            (None, Some('Y')) => write!(out, "{:04}", t.year()),
            (None, Some('m')) => write!(out, "{:02}", t.month()),
            (None, Some('d')) => write!(out, "{:02}", t.day()),
            (None, Some('H')) => write!(out, "{:02}", t.hour()),
            (None, Some('M')) => write!(out, "{:02}", t.minute()),
            (None, Some('S')) => write!(out, "{:02}", t.second()),
            (Some('3'), Some('f')) => write!(out, "{:03}", nanos / 1_000_000),
            (Some('6'), Some('f')) => write!(out, "{:06}", nanos / 1_000),
            (Some('9'), Some('f')) => write!(out, "{nanos:09}"),
            (None, Some('w')) => write!(out, "{}", t.weekday().num_days_from_sunday()),
            (None, Some('W')) => write!(
                out,
                "{:02}",
                (t.ordinal0() + 7 - t.weekday().num_days_from_monday()) / 7
            ),
            (None, Some('j')) => write!(out, "{:03}", t.ordinal()),
            (None, Some('c')) => {
                out.push_str(&iso_text(t, zone, unit));
                Ok(())
            }
            (None, Some('z')) => {
                out.push_str(&zone_text(zone));
                Ok(())
            }
            (None, Some('%')) => {
                out.push('%');
                Ok(())
            }
            (width, code) => {
                let code: String = width.into_iter().chain(code).collect();
                return Err(invalid_parameter(format!(
                    "unsupported format code '%{code}' in '{format}': expected one of %Y %m %d \
                     %H %M %S %3f %6f %9f %z %w %W %j %c %%"
                )));
            }
        };
        // Writing into a String cannot fail.
        let _ = written;
    }
    Ok(out)
}

/// `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)`, with the fraction digits of `unit`.
fn iso_text(t: NaiveDateTime, zone: FixedOffset, unit: TimeUnit) -> String {
    let mut text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let digits = fraction_digits(unit);
    if digits > 0 {
        let fraction = subsec_nanos(t) / 10u32.pow(9 - digits);
        let _ = write!(text, ".{fraction:0width$}", width = digits as usize);
    }
    text.push_str(&zone_text(zone));
    text
}

/// STRFTIME `(format, ts [, zone])`.
pub(super) fn invoke_strftime(call: &Call, args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let formats = Strs::new(call.arg(args, 0)?)?;
    let ts = Timestamps::new(call.arg(args, 1)?)?;
    let zones = call.zones(args.get(2))?;
    let out = call.each(|row| {
        let (f, v, z) = (formats.get(row)?, ts.get(row)?, zones.get(row)?);
        Some(strftime(f, v, ts.unit, z))
    })?;
    call.strings(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::sqlstate;
    use crate::query::time_functions::parse::parse_timestamp;
    use crate::query::time_functions::testing::{MS, US, ms, zone};
    use crate::query::time_functions::units::utc;

    #[test]
    fn formats() {
        let ts = ms("2019-06-19T14:15:01.123Z");
        let f = |fmt: &str, tz: &str| strftime(fmt, ts, MS, zone(tz)).unwrap();
        assert_eq!(f("%c", "Z"), "2019-06-19T14:15:01.123Z");
        assert_eq!(f("%c", "+09:00"), "2019-06-19T23:15:01.123+09:00");
        assert_eq!(f("%H:%M:%S%z", "+09:00"), "23:15:01+09:00");
        assert_eq!(f("%Y/%m/%d %j %w", "Z"), "2019/06/19 170 3");
        assert_eq!(f("%3f|%6f|%9f|100%%", "Z"), "123|123000|123000000|100%");
        assert_eq!(f("%z", "-0130"), "-01:30");
        assert_eq!(f("", "Z"), "");
        assert_eq!(f("日時 %Y", "Z"), "日時 2019");
        let week = |text: &str| strftime("%W", ms(text), MS, utc()).unwrap();
        assert_eq!(week("2019-01-19T14:15:01.123Z"), "02");
        // 2018 began on a Monday, 2017 on a Sunday.
        assert_eq!(week("2018-01-01"), "01");
        assert_eq!(week("2017-01-01"), "00");
        assert_eq!(week("2017-01-02"), "01");
        assert_eq!(week("2017-12-31"), "52");
        let us = parse_timestamp("2019-06-19T14:15:01.123456Z", None, US).unwrap();
        assert_eq!(
            strftime("%c", us, US, utc()).unwrap(),
            "2019-06-19T14:15:01.123456Z"
        );
        for bad in ["%", "%q", "%f", "%4f", "%3Y", "abc%"] {
            let e = strftime(bad, ts, MS, utc()).unwrap_err();
            assert_eq!(e.code, sqlstate::INVALID_PARAMETER_VALUE, "{bad}");
        }
    }
}
