//! The slow-statement log (`/sql/traceLimitExecutionTime`): a client request (a simple query,
//! or extended-protocol messages up to Sync) that took at least the limit, rows sent included,
//! is written to the event log with its user, database and statements, passwords masked.
//!
//! Invariant: at most [`MAX_TEXT`] bytes of statement text are kept per request.

use std::time::{Duration, Instant};

use datafusion::sql::sqlparser::ast::Statement;

use crate::security::masking::masked_text;

const MAX_TEXT: usize = 4096;

#[derive(Debug)]
pub struct SlowLog {
    limit: Duration,
    started: Option<Instant>,
    text: String,
}

impl SlowLog {
    pub fn new(limit: Duration) -> SlowLog {
        SlowLog {
            limit,
            started: None,
            text: String::new(),
        }
    }

    /// A request starts (again calls within one request do nothing).
    pub fn begin(&mut self) {
        if self.started.is_none() {
            self.started = Some(Instant::now());
            self.text.clear();
        }
    }

    /// A statement of the current request.
    pub fn record(&mut self, statement: &Statement) {
        if self.text.len() >= MAX_TEXT {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str("; ");
        }
        self.text.push_str(&masked_text(statement));
        if self.text.len() > MAX_TEXT {
            let mut cut = MAX_TEXT;
            while !self.text.is_char_boundary(cut) {
                cut -= 1;
            }
            self.text.truncate(cut);
            self.text.push_str("...");
        }
    }

    /// The request is answered: logs it if it was slow.
    pub fn end(&mut self, user: &str, database: &str) {
        let Some(started) = self.started.take() else {
            return;
        };
        let elapsed = started.elapsed();
        if elapsed >= self.limit && !self.text.is_empty() {
            tracing::warn!(
                target: "kura::slow_statement",
                ms = elapsed.as_millis() as u64,
                user,
                database,
                statement = %self.text,
                "slow statement"
            );
        }
        self.text.clear();
    }
}
