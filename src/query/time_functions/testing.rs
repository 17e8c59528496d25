//! Shorthands the unit tests of the time functions share: the time units, a zone from its text,
//! and a TIMESTAMP(3) value from GridDB text. Test-only; the helpers panic on bad input.

use chrono::FixedOffset;
use datafusion::arrow::datatypes::TimeUnit;

use super::parse::parse_timestamp;
use super::units::parse_zone;

pub(super) const MS: TimeUnit = TimeUnit::Millisecond;
pub(super) const US: TimeUnit = TimeUnit::Microsecond;
pub(super) const NS: TimeUnit = TimeUnit::Nanosecond;

pub(super) fn zone(text: &str) -> FixedOffset {
    parse_zone(text).unwrap()
}

/// A millisecond timestamp from GridDB text.
pub(super) fn ms(text: &str) -> i64 {
    parse_timestamp(text, None, MS).unwrap()
}
