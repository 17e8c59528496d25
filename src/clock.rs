//! The server's wall clock, which decides when data partitions expire and what `NOW()` is.
//!
//! Tests need to move time instead of sleeping, so a clock can be made *adjustable*: it can
//! then be frozen at an instant, moved, and released back to the system time. Only a server
//! started with the hidden `--test-clock` flag has an adjustable clock; on any other server
//! every attempt to move it fails, so ordinary clients can never change time.
//!
//! Invariant: while frozen, `now_millis` returns exactly the frozen instant.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{KuraError, Result, sqlstate};

/// `frozen` holds this while the clock follows the system time.
const NOT_FROZEN: i64 = i64::MIN;

#[derive(Debug)]
pub struct Clock {
    adjustable: bool,
    frozen: AtomicI64,
    /// Added to the system time while not frozen.
    offset: AtomicI64,
    moved: AtomicBool,
}

impl Clock {
    pub fn new(adjustable: bool) -> Clock {
        Clock {
            adjustable,
            frozen: AtomicI64::new(NOT_FROZEN),
            offset: AtomicI64::new(0),
            moved: AtomicBool::new(false),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> i64 {
        let frozen = self.frozen.load(Ordering::Acquire);
        if frozen != NOT_FROZEN {
            return frozen;
        }
        system_millis().saturating_add(self.offset.load(Ordering::Acquire))
    }

    pub fn is_adjustable(&self) -> bool {
        self.adjustable
    }

    /// True once the clock has been moved away from the system time.
    pub fn was_moved(&self) -> bool {
        self.moved.load(Ordering::Acquire)
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
        self.moved.store(true, Ordering::Release);
        self.frozen.store(millis, Ordering::Release);
        Ok(())
    }

    /// Moves the clock by `delta` milliseconds (frozen or not).
    pub fn advance(&self, delta: i64) -> Result<()> {
        self.check_adjustable()?;
        self.moved.store(true, Ordering::Release);
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

fn system_millis() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
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
        assert!(!clock.was_moved());
    }
}
