//! The server's connections ("backends" in PostgreSQL's words): each one's process id and
//! cancel key, its interrupt, and what `pg_stat_activity` shows about it. CancelRequest,
//! `pg_cancel_backend` and `pg_terminate_backend` find a connection here.
//!
//! Invariants: process ids are unique for the server's lifetime; an entry lives exactly as
//! long as its [`BackendGuard`]; a cancel needs the connection's secret key, which is never
//! shown to other sessions.

use std::collections::HashMap;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use parking_lot::Mutex;

use crate::interrupt::Interrupt;

/// What a connection shows to the others.
#[derive(Debug, Clone)]
pub struct Activity {
    pub pid: i32,
    pub user: String,
    pub database: String,
    pub application_name: String,
    pub client_addr: Option<SocketAddr>,
    /// The connection uses TLS.
    pub ssl: bool,
    pub backend_start: chrono::DateTime<chrono::Utc>,
    pub query_start: Option<chrono::DateTime<chrono::Utc>>,
    pub state: &'static str,
    /// The running or last statement, as the client sent it (masked when shown).
    pub query: Arc<str>,
}

#[derive(Debug)]
struct Backend {
    secret: Vec<u8>,
    interrupt: Arc<Interrupt>,
    activity: Activity,
}

#[derive(Debug)]
pub struct Backends {
    next_pid: AtomicI32,
    entries: Mutex<HashMap<i32, Backend>>,
}

impl Default for Backends {
    fn default() -> Self {
        Backends {
            // Small numbers look like PostgreSQL process ids and never collide with 0,
            // which clients treat as "no key".
            next_pid: AtomicI32::new(1000),
            entries: Mutex::new(HashMap::new()),
        }
    }
}

/// Removes the connection's entry when the connection ends.
#[derive(Debug)]
pub struct BackendGuard {
    pid: i32,
    backends: Arc<Backends>,
}

impl Drop for BackendGuard {
    fn drop(&mut self) {
        self.backends.entries.lock().remove(&self.pid);
    }
}

impl BackendGuard {
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

impl Backends {
    /// Registers a connection; returns its guard. `secret` is the cancel key sent in
    /// BackendKeyData.
    pub fn register(
        self: &Arc<Self>,
        secret: Vec<u8>,
        interrupt: Arc<Interrupt>,
        mut activity: Activity,
    ) -> BackendGuard {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        activity.pid = pid;
        self.entries.lock().insert(
            pid,
            Backend {
                secret,
                interrupt,
                activity,
            },
        );
        BackendGuard {
            pid,
            backends: self.clone(),
        }
    }

    /// A CancelRequest: cancels `pid`'s running statement if the key matches.
    pub fn cancel_with_key(&self, pid: i32, secret: &[u8]) -> bool {
        let entries = self.entries.lock();
        match entries.get(&pid) {
            Some(backend) if backend.secret == secret => backend.interrupt.cancel(),
            _ => false,
        }
    }

    /// `pg_cancel_backend` / `pg_terminate_backend`: false when no such connection exists.
    pub fn signal(&self, pid: i32, terminate: bool) -> bool {
        let entries = self.entries.lock();
        let Some(backend) = entries.get(&pid) else {
            return false;
        };
        if terminate {
            backend.interrupt.terminate();
        } else {
            backend.interrupt.cancel();
        }
        true
    }

    /// Updates what a connection shows in `pg_stat_activity`.
    pub fn update(&self, pid: i32, change: impl FnOnce(&mut Activity)) {
        if let Some(backend) = self.entries.lock().get_mut(&pid) {
            change(&mut backend.activity);
        }
    }

    pub fn activities(&self) -> Vec<Activity> {
        let mut all: Vec<Activity> = self
            .entries
            .lock()
            .values()
            .map(|b| b.activity.clone())
            .collect();
        all.sort_by_key(|a| a.pid);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity() -> Activity {
        Activity {
            ssl: false,
            pid: 0,
            user: "u".into(),
            database: "d".into(),
            application_name: String::new(),
            client_addr: None,
            backend_start: chrono::Utc::now(),
            query_start: None,
            state: "idle",
            query: Arc::from(""),
        }
    }

    #[test]
    fn a_cancel_needs_the_right_key_and_a_running_statement() {
        let backends = Arc::new(Backends::default());
        let interrupt = Arc::new(Interrupt::default());
        let guard = backends.register(vec![1, 2, 3, 4], interrupt.clone(), activity());
        let pid = guard.pid();
        interrupt.begin_statement(None);
        assert!(!backends.cancel_with_key(pid, &[9, 9, 9, 9]));
        assert!(interrupt.check().is_ok());
        assert!(backends.cancel_with_key(pid, &[1, 2, 3, 4]));
        assert_eq!(interrupt.check().unwrap_err().code, "57014");
        drop(guard);
        assert!(
            !backends.signal(pid, true),
            "the entry left with its connection"
        );
    }
}
