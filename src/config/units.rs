//! Setting values that carry a unit: durations (`"60s"`, `"500ms"`, `"5min"`) and byte sizes
//! (`"1024MB"`).
//!
//! Invariants: a value is a whole number followed by an optional unit (whitespace between the two
//! is allowed); units are case-sensitive; a bare number means seconds for durations and bytes for
//! sizes, whether written as a JSON number or a string; overflow is an error, never a wrap.
//! Values serialize back to the largest unit that represents them exactly, so a parsed value
//! round-trips unchanged.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a duration or size was rejected. The messages are shown to users as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("empty value; expected {expected}")]
    Empty { expected: &'static str },
    #[error("\"{input}\" does not start with a whole number; expected {expected}")]
    NotANumber {
        input: String,
        expected: &'static str,
    },
    #[error("\"{input}\" has a fraction; use a smaller unit instead (e.g. \"1500ms\", \"512MB\")")]
    Fraction { input: String },
    #[error("unknown unit \"{unit}\" in \"{input}\"; expected {expected}")]
    UnknownUnit {
        input: String,
        unit: String,
        expected: &'static str,
    },
    #[error("\"{input}\" is too large")]
    TooLarge { input: String },
    #[error("{value} is negative; expected {expected}")]
    Negative { value: i64, expected: &'static str },
}

/// A family of units, each a multiple of one base unit (milliseconds or bytes).
struct UnitScale {
    /// `(suffix, multiplier)` pairs, largest first; the last one has multiplier 1.
    units: &'static [(&'static str, u64)],
    /// The multiplier of a number written without a unit.
    bare_multiplier: u64,
    /// What a valid value looks like, for error messages.
    expected: &'static str,
}

const DURATION_SCALE: UnitScale = UnitScale {
    units: &[
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ],
    bare_multiplier: 1_000,
    expected: "a duration: a whole number with unit ms, s, min, h or d, such as \"60s\" \
               (a bare number means seconds)",
};

const SIZE_SCALE: UnitScale = UnitScale {
    units: &[
        ("TB", 1 << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
        ("B", 1),
    ],
    bare_multiplier: 1,
    expected: "a size: a whole number with unit B, KB, MB, GB or TB (1024-based), such as \
               \"1024MB\" (a bare number means bytes)",
};

impl UnitScale {
    /// Parses `input` into a count of base units.
    fn parse(&self, input: &str) -> Result<u64, UnitError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(UnitError::Empty {
                expected: self.expected,
            });
        }
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, rest) = trimmed.split_at(digits_end);
        let number = self.parse_number(input, digits, rest)?;
        let multiplier = self.multiplier(input, rest.trim_start())?;
        number
            .checked_mul(multiplier)
            .ok_or_else(|| too_large(input))
    }

    fn parse_number(&self, input: &str, digits: &str, rest: &str) -> Result<u64, UnitError> {
        if digits.is_empty() {
            return Err(UnitError::NotANumber {
                input: input.to_owned(),
                expected: self.expected,
            });
        }
        if rest.starts_with('.') {
            return Err(UnitError::Fraction {
                input: input.to_owned(),
            });
        }
        digits.parse().map_err(|_| too_large(input))
    }

    fn multiplier(&self, input: &str, unit: &str) -> Result<u64, UnitError> {
        if unit.is_empty() {
            return Ok(self.bare_multiplier);
        }
        self.units
            .iter()
            .find(|(suffix, _)| *suffix == unit)
            .map(|&(_, multiplier)| multiplier)
            .ok_or_else(|| UnitError::UnknownUnit {
                input: input.to_owned(),
                unit: unit.to_owned(),
                expected: self.expected,
            })
    }

    /// Converts a bare JSON number into base units.
    fn bare_to_base(&self, number: u64) -> Result<u64, UnitError> {
        number
            .checked_mul(self.bare_multiplier)
            .ok_or_else(|| too_large(&number.to_string()))
    }

    /// Writes `value` base units with the largest unit that divides it exactly (zero is written
    /// in the bare unit: `0s`, `0B`).
    fn format(&self, value: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let &(suffix, multiplier) = self
            .units
            .iter()
            .find(|&&(_, multiplier)| match value {
                0 => multiplier == self.bare_multiplier,
                _ => value.is_multiple_of(multiplier),
            })
            .expect("every unit table ends with a unit of multiplier 1");
        write!(f, "{}{suffix}", value / multiplier)
    }
}

fn too_large(input: &str) -> UnitError {
    UnitError::TooLarge {
        input: input.to_owned(),
    }
}

/// A duration setting, written like `"60s"`; whole milliseconds at most precise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }

    pub fn get(&self) -> Duration {
        self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl FromStr for ConfigDuration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, UnitError> {
        DURATION_SCALE.parse(s).map(Self::from_millis)
    }
}

/// Sub-millisecond parts (which parsing never produces) are dropped.
impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        DURATION_SCALE.format(millis, f)
    }
}

/// A size in bytes, written like `"1024MB"` (1 KB = 1024 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn mib(mebibytes: u64) -> Self {
        Self(mebibytes * (1 << 20))
    }

    pub fn get(&self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, UnitError> {
        SIZE_SCALE.parse(s).map(Self)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SIZE_SCALE.format(self.0, f)
    }
}

/// Shared serde plumbing of the two unit types.
trait UnitValue: Sized {
    const SCALE: &'static UnitScale;
    fn from_base(base_units: u64) -> Self;
}

impl UnitValue for ConfigDuration {
    const SCALE: &'static UnitScale = &DURATION_SCALE;
    fn from_base(millis: u64) -> Self {
        Self::from_millis(millis)
    }
}

impl UnitValue for ByteSize {
    const SCALE: &'static UnitScale = &SIZE_SCALE;
    fn from_base(bytes: u64) -> Self {
        Self(bytes)
    }
}

/// Accepts a unit string or a bare non-negative JSON integer.
struct UnitVisitor<T>(PhantomData<T>);

impl<T: UnitValue> Visitor<'_> for UnitVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::SCALE.expected)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::SCALE.parse(v).map(T::from_base).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::SCALE
            .bare_to_base(v)
            .map(T::from_base)
            .map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        match u64::try_from(v) {
            Ok(unsigned) => self.visit_u64(unsigned),
            Err(_) => Err(E::custom(UnitError::Negative {
                value: v,
                expected: T::SCALE.expected,
            })),
        }
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UnitVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UnitVisitor(PhantomData))
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duration(s: &str) -> Result<Duration, UnitError> {
        s.parse::<ConfigDuration>().map(|d| d.get())
    }

    fn size(s: &str) -> Result<u64, UnitError> {
        s.parse::<ByteSize>().map(|b| b.get())
    }

    #[test]
    fn parses_every_duration_unit() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(duration("5min"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bare_duration_means_seconds_and_spaces_are_allowed() {
        assert_eq!(duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(duration(" 10 s "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn parses_every_size_unit() {
        assert_eq!(size("7B"), Ok(7));
        assert_eq!(size("2KB"), Ok(2_048));
        assert_eq!(size("1024MB"), Ok(1 << 30));
        assert_eq!(size("3GB"), Ok(3 << 30));
        assert_eq!(size("1TB"), Ok(1 << 40));
        assert_eq!(size("4096"), Ok(4_096));
    }

    #[test]
    fn unknown_unit_is_named_with_the_accepted_units() {
        let message = duration("60sec").unwrap_err().to_string();
        assert!(
            message.contains("unknown unit \"sec\" in \"60sec\""),
            "{message}"
        );
        assert!(message.contains("ms, s, min, h or d"), "{message}");
        let message = size("1mb").unwrap_err().to_string();
        assert!(message.contains("unknown unit \"mb\""), "{message}");
        assert!(message.contains("B, KB, MB, GB or TB"), "{message}");
    }

    #[test]
    fn malformed_values_are_rejected_clearly() {
        assert!(matches!(duration(""), Err(UnitError::Empty { .. })));
        assert!(matches!(duration("s"), Err(UnitError::NotANumber { .. })));
        assert!(matches!(duration("-5s"), Err(UnitError::NotANumber { .. })));
        assert!(matches!(duration("1.5s"), Err(UnitError::Fraction { .. })));
        assert!(matches!(
            size("99999999999TB"),
            Err(UnitError::TooLarge { .. })
        ));
        assert!(matches!(
            size("99999999999999999999999"),
            Err(UnitError::TooLarge { .. })
        ));
    }

    #[test]
    fn display_uses_the_largest_exact_unit() {
        assert_eq!(ConfigDuration::from_millis(1_500).to_string(), "1500ms");
        assert_eq!(ConfigDuration::from_secs(300).to_string(), "5min");
        assert_eq!(ConfigDuration::from_secs(90).to_string(), "90s");
        assert_eq!(ConfigDuration::from_secs(172_800).to_string(), "2d");
        assert_eq!(ConfigDuration::default().to_string(), "0s");
        assert_eq!(ByteSize::mib(1_024).to_string(), "1GB");
        assert_eq!(ByteSize(1_536).to_string(), "1536B");
        assert_eq!(ByteSize(0).to_string(), "0B");
    }

    #[test]
    fn serde_round_trips_and_accepts_bare_numbers() {
        let parsed: ConfigDuration = serde_json::from_str("\"60s\"").unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"1min\"");
        let bare: ConfigDuration = serde_json::from_str("5").unwrap();
        assert_eq!(bare, ConfigDuration::from_secs(5));
        let bytes: ByteSize = serde_json::from_str("2048").unwrap();
        assert_eq!(serde_json::to_string(&bytes).unwrap(), "\"2KB\"");
    }

    #[test]
    fn serde_rejects_negative_numbers_and_other_types() {
        let negative = serde_json::from_str::<ConfigDuration>("-1").unwrap_err();
        assert!(
            negative.to_string().contains("-1 is negative"),
            "{negative}"
        );
        let boolean = serde_json::from_str::<ByteSize>("true").unwrap_err();
        assert!(boolean.to_string().contains("expected a size"), "{boolean}");
        let float = serde_json::from_str::<ConfigDuration>("1.5").unwrap_err();
        assert!(float.to_string().contains("expected a duration"), "{float}");
    }
}
