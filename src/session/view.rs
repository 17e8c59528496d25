//! What a statement may read about the session that runs it and about the server's other
//! connections: the catalog relations `pg_settings`, `pg_stat_activity`, `pg_roles` and
//! `pg_cursors` are built from it.
//!
//! Invariant: a view is taken when the statement starts; the settings it holds are shared
//! with the session copy-on-write, so taking one costs a reference count.

use std::sync::Arc;

use super::Settings;
use super::backends::{Activity, Backends};
use super::cursors::CursorInfo;

#[derive(Debug)]
pub struct SessionView {
    pub user: String,
    /// The user is an administrator (sees every database).
    pub admin: bool,
    pub settings: Arc<Settings>,
    pub backends: Option<Arc<Backends>>,
    pub cursors: Vec<CursorInfo>,
}

impl SessionView {
    pub fn activities(&self) -> Vec<Activity> {
        self.backends
            .as_ref()
            .map(|b| b.activities())
            .unwrap_or_default()
    }
}
