//! `ALTER SYSTEM SET` (and `SET GLOBAL`): an online change of a server setting that GridDB
//! marks as changeable while running (`config/live.rs`), put in force at once and written to
//! the event log. Administrators only (checked with the other privileges).

use datafusion::sql::sqlparser::ast::{Expr, ObjectName};

use super::Session;
use crate::config::Config;
use crate::error::{KuraError, Result};
use crate::query::Engine;
use crate::sql::Outcome;

impl Session {
    pub(super) fn alter_system(&mut self, variable: &ObjectName, value: &Expr) -> Result<Outcome> {
        let engine = self.engine().clone();
        let live = engine.live_config().ok_or_else(|| {
            KuraError::unsupported("server settings change only on a running server")
        })?;
        let name = variable.to_string();
        let value = (!super::is_default(value)).then(|| super::value_text(value));
        let (path, new) = live.prepare(&name, value.as_deref())?;
        put_in_force(&engine, &path, &new)?;
        let shown = live.commit(&path, new);
        let before = live.startup_value(&path).unwrap_or_default();
        tracing::info!(
            target: "kura::settings",
            setting = %path,
            value = %shown,
            startup_value = %before,
            user = %self.identity.user,
            "setting changed online"
        );
        Ok(Outcome::done("ALTER SYSTEM").with_notice(format!(
            "{path} is {shown} until the server stops; the definition file is not changed"
        )))
    }
}

/// Makes the parts of the server that keep their own copy of a setting use its new value;
/// the others read the live configuration when they need it.
fn put_in_force(engine: &Engine, path: &str, new: &Config) -> Result<()> {
    match path {
        "/dataStore/storeMemoryLimit" => {
            if let Some(residency) = engine.txns.residency().cloned() {
                residency.set_limit(new.data_store.store_memory_limit.get() as usize);
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = residency.enforce() {
                        tracing::warn!("could not swap rows out for the new storeMemoryLimit: {e}");
                    }
                });
            }
        }
        "/sync/keepLogInterval" => {
            if let Some(hub) = engine.replication() {
                hub.set_keep_log(new.sync.keep_log_interval.get());
            }
        }
        trace if trace.starts_with("/trace/") => {
            crate::logs::set_levels(&new.trace.filter_directives()).map_err(|why| {
                KuraError::new(crate::error::sqlstate::CANT_CHANGE_RUNTIME_PARAM, why)
            })?;
        }
        _ => {}
    }
    Ok(())
}
