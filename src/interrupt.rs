//! Interrupting a connection's work: query cancellation (CancelRequest, `pg_cancel_backend`),
//! `statement_timeout`, `idle_in_transaction_session_timeout` and termination
//! (`pg_terminate_backend`, shutdown). One `Interrupt` per connection; statements poll it
//! between batches and while they wait for locks, and the connection's watchdog task keeps
//! its timers.
//!
//! Invariants: a cancel or a timeout only affects the statement that was running when it was
//! requested (a request that arrives between statements is dropped, as in PostgreSQL);
//! termination is sticky and ends the connection.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::{KuraError, Result, sqlstate};

/// Why work stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    Cancel = 1,
    StatementTimeout = 2,
    IdleInTransactionTimeout = 3,
    Terminate = 4,
}

impl Reason {
    fn from_u8(value: u8) -> Option<Reason> {
        match value {
            1 => Some(Reason::Cancel),
            2 => Some(Reason::StatementTimeout),
            3 => Some(Reason::IdleInTransactionTimeout),
            4 => Some(Reason::Terminate),
            _ => None,
        }
    }

    /// The error a statement (or the connection) ends with.
    pub fn error(self) -> KuraError {
        match self {
            Reason::Cancel => KuraError::new(
                sqlstate::QUERY_CANCELED,
                "canceling statement due to user request",
            ),
            Reason::StatementTimeout => KuraError::new(
                sqlstate::QUERY_CANCELED,
                "canceling statement due to statement timeout",
            ),
            Reason::IdleInTransactionTimeout => KuraError::new(
                sqlstate::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
                "terminating connection due to idle-in-transaction timeout",
            ),
            Reason::Terminate => KuraError::new(
                sqlstate::ADMIN_SHUTDOWN,
                "terminating connection due to administrator command",
            ),
        }
    }

    pub fn ends_connection(self) -> bool {
        matches!(self, Reason::IdleInTransactionTimeout | Reason::Terminate)
    }
}

/// The deadline the watchdog waits for, tagged with the activity count it belongs to.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    activity: u64,
    reason: Reason,
}

#[derive(Debug, Default)]
pub struct Interrupt {
    reason: AtomicU8,
    running: AtomicBool,
    /// Counts statement starts and ends, so a timer armed for one statement (or one idle
    /// period) never fires into the next.
    activity: AtomicU64,
    deadline: Mutex<Option<Deadline>>,
    changed: Notify,
}

impl Interrupt {
    /// A statement starts: earlier cancels are forgotten; `timeout` arms `statement_timeout`.
    pub fn begin_statement(&self, timeout: Option<Duration>) {
        let activity = self.activity.fetch_add(1, Ordering::AcqRel) + 1;
        let _ = self.reason.compare_exchange(
            Reason::Cancel as u8,
            0,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        let _ = self.reason.compare_exchange(
            Reason::StatementTimeout as u8,
            0,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.running.store(true, Ordering::Release);
        *self.deadline.lock() = timeout.map(|t| Deadline {
            at: Instant::now() + t,
            activity,
            reason: Reason::StatementTimeout,
        });
        self.changed.notify_waiters();
    }

    /// The statement ended; `idle_timeout` arms `idle_in_transaction_session_timeout` when
    /// the session waits inside a transaction block.
    pub fn end_statement(&self, idle_timeout: Option<Duration>) {
        let activity = self.activity.fetch_add(1, Ordering::AcqRel) + 1;
        self.running.store(false, Ordering::Release);
        *self.deadline.lock() = idle_timeout.map(|t| Deadline {
            at: Instant::now() + t,
            activity,
            reason: Reason::IdleInTransactionTimeout,
        });
        self.changed.notify_waiters();
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Cancels the running statement, if there is one. Returns whether one was running.
    pub fn cancel(&self) -> bool {
        if !self.is_running() {
            return false;
        }
        let _ = self.reason.compare_exchange(
            0,
            Reason::Cancel as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.changed.notify_waiters();
        true
    }

    /// Ends the connection: the running statement stops, an idle connection is closed.
    pub fn terminate(&self) {
        self.raise(Reason::Terminate);
    }

    fn raise(&self, reason: Reason) {
        self.reason.fetch_max(reason as u8, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    pub fn reason(&self) -> Option<Reason> {
        Reason::from_u8(self.reason.load(Ordering::Acquire))
    }

    /// Fails when the work in progress must stop.
    pub fn check(&self) -> Result<()> {
        match self.reason() {
            None => Ok(()),
            Some(reason) => Err(reason.error()),
        }
    }

    /// Resolves when an interrupt is raised (for waits that must stop early).
    pub async fn interrupted(&self) -> Reason {
        loop {
            let notified = self.changed.notified();
            if let Some(reason) = self.reason() {
                return reason;
            }
            notified.await;
        }
    }

    /// The connection's watchdog: fires the armed deadline when it passes, and returns the
    /// reason when the connection must end while no statement runs (the caller then closes
    /// it). Runs for the connection's lifetime.
    pub async fn watch(&self) -> Reason {
        loop {
            let notified = self.changed.notified();
            if let Some(reason) = self.reason()
                && reason.ends_connection()
                && !self.is_running()
            {
                return reason;
            }
            let deadline = *self.deadline.lock();
            match deadline {
                Some(deadline) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(deadline.at) => self.fire(deadline),
                    }
                }
                None => notified.await,
            }
        }
    }

    fn fire(&self, deadline: Deadline) {
        let mut armed = self.deadline.lock();
        if self.activity.load(Ordering::Acquire) != deadline.activity {
            return;
        }
        *armed = None;
        drop(armed);
        match deadline.reason {
            Reason::StatementTimeout if self.is_running() => {
                let _ = self.reason.compare_exchange(
                    0,
                    Reason::StatementTimeout as u8,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            Reason::IdleInTransactionTimeout if !self.is_running() => {
                self.reason
                    .fetch_max(deadline.reason as u8, Ordering::AcqRel);
            }
            _ => return,
        }
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_cancel_between_statements_is_dropped() {
        let interrupt = Interrupt::default();
        assert!(!interrupt.cancel());
        interrupt.begin_statement(None);
        assert!(interrupt.check().is_ok());
        assert!(interrupt.cancel());
        assert_eq!(interrupt.check().unwrap_err().code, "57014");
        interrupt.end_statement(None);
        interrupt.begin_statement(None);
        assert!(interrupt.check().is_ok(), "the next statement starts clean");
    }

    #[test]
    fn termination_is_sticky() {
        let interrupt = Interrupt::default();
        interrupt.terminate();
        interrupt.begin_statement(None);
        assert_eq!(interrupt.check().unwrap_err().code, "57P01");
    }

    #[test]
    fn a_timer_fires_only_for_the_activity_it_was_armed_for() {
        let interrupt = Interrupt::default();
        interrupt.begin_statement(Some(Duration::from_secs(1)));
        let first = interrupt.deadline.lock().unwrap();
        interrupt.end_statement(None);
        interrupt.begin_statement(Some(Duration::from_secs(1)));
        let second = interrupt.deadline.lock().unwrap();
        interrupt.fire(first);
        assert!(
            interrupt.check().is_ok(),
            "the first statement's timer was disarmed"
        );
        interrupt.fire(second);
        assert_eq!(
            interrupt.check().unwrap_err().to_string(),
            "canceling statement due to statement timeout"
        );
        interrupt.end_statement(Some(Duration::from_secs(1)));
        let idle = interrupt.deadline.lock().unwrap();
        assert_eq!(idle.reason, Reason::IdleInTransactionTimeout);
        interrupt.fire(idle);
        assert_eq!(interrupt.reason(), Some(Reason::IdleInTransactionTimeout));
    }

    #[tokio::test]
    async fn the_watchdog_returns_when_an_idle_connection_must_end() {
        let interrupt = Arc::new(Interrupt::default());
        let watchdog = tokio::spawn({
            let interrupt = interrupt.clone();
            async move { interrupt.watch().await }
        });
        interrupt.begin_statement(None);
        interrupt.terminate();
        tokio::task::yield_now().await;
        assert!(!watchdog.is_finished(), "a running statement ends first");
        interrupt.end_statement(None);
        assert_eq!(watchdog.await.unwrap(), Reason::Terminate);
    }
}
