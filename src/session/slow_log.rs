//! The slow-statement log (`/sql/traceLimitExecutionTime`): a client request (a simple query,
//! or extended-protocol messages up to Sync) that took at least the limit, rows sent included,
//! is written to the event log with its user, database and statements, passwords masked.
//!
//! Invariants: a request only keeps its SQL texts (shared, not copied per statement); they are
//! parsed again and masked only when the request turns out slow, so fast requests pay nothing
//! for the log. At most `/sql/traceLimitQuerySize` bytes of statement text are logged per
//! request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::security::masking::masked_statements;

/// Texts kept per request (an extended-protocol pipeline may run many statements).
const MAX_TEXTS: usize = 16;

#[derive(Debug)]
pub struct SlowLog {
    limit: Duration,
    /// Bytes of statement text an entry keeps.
    text_limit: usize,
    started: Option<Instant>,
    texts: Vec<Arc<str>>,
}

impl SlowLog {
    pub fn new(limit: Duration, text_limit: usize) -> SlowLog {
        SlowLog {
            limit,
            text_limit,
            started: None,
            texts: Vec::new(),
        }
    }

    /// The limits in force (`/sql/traceLimit*` change online).
    pub fn set_limits(&mut self, limit: Duration, text_limit: usize) {
        self.limit = limit;
        self.text_limit = text_limit;
    }

    /// A request starts (further calls within one request do nothing).
    pub fn begin(&mut self) {
        if self.started.is_none() {
            self.started = Some(Instant::now());
            self.texts.clear();
        }
    }

    /// SQL the current request runs.
    pub fn record(&mut self, sql: Arc<str>) {
        if self.texts.len() < MAX_TEXTS {
            self.texts.push(sql);
        }
    }

    /// The request is answered: logs it if it was slow.
    pub fn end(&mut self, user: &str, database: &str) {
        let Some(started) = self.started.take() else {
            return;
        };
        let elapsed = started.elapsed();
        if elapsed >= self.limit && !self.texts.is_empty() {
            tracing::warn!(
                target: "kura::slow_statement",
                ms = elapsed.as_millis() as u64,
                user,
                database,
                statement = %masked(&self.texts, self.text_limit),
                "slow statement"
            );
        }
        self.texts.clear();
    }
}

/// The statements of `texts`, passwords masked, cut at `text_limit` bytes.
fn masked(texts: &[Arc<str>], text_limit: usize) -> String {
    let mut out = String::new();
    for text in texts {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&masked_statements(text));
    }
    crate::logs::cut(&out, text_limit)
}
