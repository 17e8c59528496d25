//! The event log: tracing events go to stderr and, for the server, to rolling files in
//! `/system/eventLogPath` (`kura-YYYYMMDD-N.log`, 1 MB each, `/trace/fileCount` kept), filtered
//! by the per-category levels of `/trace` unless `KURA_LOG` overrides them.
//!
//! Invariant: logging is set up once per process, before the server starts; only its levels
//! change afterwards (online changes of `/trace`).

pub mod rolling;

use std::sync::{Arc, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::Config;
use rolling::{RollingFile, RollingSpec};

/// The size at which an event-log file is closed (GridDB's 1 MB).
const EVENT_FILE_BYTES: u64 = 1 << 20;

/// Changes the levels of the running event log (online changes of `/trace`).
static LEVELS: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Sets the event log's levels from `/trace`'s filter directives, unless `KURA_LOG` set them.
pub fn set_levels(directives: &str) -> Result<(), String> {
    if std::env::var_os("KURA_LOG").is_some() {
        return Err(
            "KURA_LOG sets the levels of this server; unset it to change them online".into(),
        );
    }
    let filter = EnvFilter::try_new(directives).map_err(|e| format!("invalid log levels: {e}"))?;
    match LEVELS.get() {
        Some(handle) => handle.reload(filter).map_err(|e| e.to_string()),
        None => Err("the event log is not running".into()),
    }
}

/// Logs to stderr and, when `config` is given, to the event log.
pub fn init(config: Option<&Config>) -> Result<(), String> {
    let filter = match EnvFilter::try_from_env("KURA_LOG") {
        Ok(filter) => filter,
        Err(_) => {
            let directives = config.map_or_else(
                || "info".to_string(),
                |config| config.trace.filter_directives(),
            );
            EnvFilter::try_new(&directives)
                .map_err(|e| format!("invalid log levels {directives:?}: {e}"))?
        }
    };
    let (filter, levels) = reload::Layer::new(filter);
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let event_log = match config {
        Some(config) => {
            let dir = config.system.event_log_dir();
            let file = RollingFile::open(RollingSpec {
                dir: dir.clone(),
                prefix: "kura",
                max_bytes: EVENT_FILE_BYTES,
                keep: Some(config.trace.file_count as usize),
            })
            .map_err(|e| format!("cannot create event log directory {}: {e}", dir.display()))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(Arc::new(file)),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(event_log)
        .try_init()
        .map_err(|e| format!("cannot start logging: {e}"))?;
    let _ = LEVELS.set(levels);
    Ok(())
}

/// `text` cut at `limit` bytes on a character boundary, marked `...` when cut.
pub fn cut(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}
