//! The server's wall clock, which decides when data partitions expire and what `NOW()` is.
//!
//! Tests need to move time instead of sleeping, so a clock can be made *adjustable*: it can
//! then be frozen at an instant, moved, and released back to the system time. Only a server
//! started with the hidden `--test-clock` flag has an adjustable clock; on any other server
//! every attempt to move it fails, so ordinary clients can never change time.
//!
//! Invariant: while frozen, `now_millis` returns exactly the frozen instant.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::{KuraError, Result, sqlstate};

/// `frozen` holds this while the clock follows the system time.
const NOT_FROZEN: i64 = i64::MIN;

#[derive(Debug)]
pub struct Clock {
    adjustable: bool,
    frozen: AtomicI64,
    /// Added to the system time while not frozen.
    offset: AtomicI64,
}

impl Clock {
    pub fn new(adjustable: bool) -> Clock {
        Clock {
            adjustable,
            frozen: AtomicI64::new(NOT_FROZEN),
            offset: AtomicI64::new(0),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// The clock's time, with the system clock's precision unless frozen.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let frozen = self.frozen.load(Ordering::Acquire);
        if frozen != NOT_FROZEN {
            return chrono::DateTime::from_timestamp_millis(frozen).unwrap_or_default();
        }
        let offset = chrono::TimeDelta::milliseconds(self.offset.load(Ordering::Acquire));
        chrono::Utc::now()
            .checked_add_signed(offset)
            .unwrap_or_else(chrono::Utc::now)
    }

    /// Stops the clock at `millis` since the epoch.
    pub fn freeze_at(&self, millis: i64) -> Result<()> {
        self.check_adjustable()?;
        if millis == NOT_FROZEN {
            return Err(KuraError::new(
                sqlstate::DATETIME_FIELD_OVERFLOW,
                "clock value out of range",
            ));
        }
        self.frozen.store(millis, Ordering::Release);
        Ok(())
    }

    /// Moves the clock by `delta` milliseconds (frozen or not).
    pub fn advance(&self, delta: i64) -> Result<()> {
        self.check_adjustable()?;
        let frozen = self.frozen.load(Ordering::Acquire);
        if frozen != NOT_FROZEN {
            let moved = frozen.saturating_add(delta);
            self.frozen
                .store(moved.max(NOT_FROZEN + 1), Ordering::Release);
        } else {
            self.offset.fetch_add(delta, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Follows the system time again.
    pub fn release(&self) -> Result<()> {
        self.check_adjustable()?;
        self.frozen.store(NOT_FROZEN, Ordering::Release);
        self.offset.store(0, Ordering::Release);
        Ok(())
    }

    /// `SET kura.test_clock = '<timestamp>' | 'system'`: freezes the clock at a timestamp
    /// (RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` in UTC), or follows the system time again.
    pub fn set_from_text(&self, text: &str) -> Result<()> {
        self.check_adjustable()?;
        let text = text.trim();
        if text.eq_ignore_ascii_case("system") {
            return self.release();
        }
        let parsed = chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_millis())
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                    .map(|t| t.and_utc().timestamp_millis())
            })
            .map_err(|_| {
                KuraError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!(
                        "invalid value for kura.test_clock: \"{text}\" (a timestamp or 'system')"
                    ),
                )
            })?;
        self.freeze_at(parsed)
    }

    /// The clock's time as RFC 3339 text with milliseconds.
    pub fn describe(&self) -> String {
        chrono::DateTime::from_timestamp_millis(self.now_millis())
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_else(|| self.now_millis().to_string())
    }

    fn check_adjustable(&self) -> Result<()> {
        if self.adjustable {
            return Ok(());
        }
        Err(KuraError::new(
            sqlstate::INSUFFICIENT_PRIVILEGE,
            "the server clock can only be moved on a server started with --test-clock",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clock_moves_only_when_told() {
        let clock = Clock::new(true);
        clock.freeze_at(1_000).unwrap();
        assert_eq!(clock.now_millis(), 1_000);
        assert_eq!(clock.describe(), "1970-01-01T00:00:01.000Z");
        clock.set_from_text("2024-01-02 03:04:05.5").unwrap();
        assert_eq!(clock.describe(), "2024-01-02T03:04:05.500Z");
        clock.set_from_text("2024-01-02T03:04:05+01:00").unwrap();
        assert_eq!(clock.describe(), "2024-01-02T02:04:05.000Z");
        assert!(clock.set_from_text("yesterday").is_err());
        clock.freeze_at(1_000).unwrap();
        clock.advance(500).unwrap();
        assert_eq!(clock.now_millis(), 1_500);
        clock.release().unwrap();
        assert!(clock.now_millis() > 1_600_000_000_000);
    }

    #[test]
    fn ordinary_clock_refuses_to_move() {
        let clock = Clock::new(false);
        assert!(clock.freeze_at(0).is_err());
        assert!(clock.advance(1).is_err());
    }
}
