//! `/trace`: the event log's files and levels per category, and the audit log (GridDB's
//! function reference 7.8 and 7.9).
//!
//! Invariants: as in `sections.rs` (every field has a default and is always serialized; the
//! default is the shipped `conf/kura.json`); a level accepts GridDB's `LEVEL_` prefix or not.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::sections::require;
use super::units::ByteSize;

/// An event-log level, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventLevel {
    #[serde(rename = "LEVEL_DEBUG", alias = "DEBUG")]
    Debug,
    #[serde(rename = "LEVEL_INFO", alias = "INFO")]
    Info,
    #[serde(rename = "LEVEL_WARNING", alias = "WARNING")]
    Warning,
    #[serde(rename = "LEVEL_ERROR", alias = "ERROR")]
    Error,
}

impl EventLevel {
    /// The level's name in a tracing filter directive.
    pub fn directive(self) -> &'static str {
        match self {
            EventLevel::Debug => "debug",
            EventLevel::Info => "info",
            EventLevel::Warning => "warn",
            EventLevel::Error => "error",
        }
    }
}

/// An audit category's level: INFO records operations and errors, ERROR only errors,
/// CRITICAL nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditLevel {
    #[serde(rename = "INFO", alias = "LEVEL_INFO")]
    Info,
    #[serde(rename = "ERROR", alias = "LEVEL_ERROR")]
    Error,
    #[serde(rename = "CRITICAL", alias = "LEVEL_CRITICAL")]
    Critical,
}

/// `/trace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct TraceConfig {
    /// Event-log files kept; the oldest are deleted beyond it.
    pub file_count: u32,
    /// Libraries (DataFusion, pgwire, ...) and anything in no category below.
    pub default: EventLevel,
    /// Server start and stop, configuration, administrators and certificates.
    pub system_service: EventLevel,
    /// Connections, sessions and the statements they run.
    pub transaction_service: EventLevel,
    /// Planning and running SQL, including the slow-statement log.
    pub sql_service: EventLevel,
    /// Transactions, locks and their timeouts.
    pub transaction_manager: EventLevel,
    /// The transaction log.
    pub log_manager: EventLevel,
    /// Checkpoints.
    pub checkpoint_service: EventLevel,
    /// Recovery at startup and `kura check`.
    pub recovery_manager: EventLevel,
    /// Table storage, garbage collection and expiry release.
    pub data_store: EventLevel,
    /// Write the audit log.
    pub audit_logs: bool,
    /// Where the `audit` directory is made; empty: the data directory.
    pub audit_logs_path: PathBuf,
    /// Size at which an audit file is closed and the next one of the day begun.
    pub audit_file_limit: ByteSize,
    /// Longest statement text (bytes) in one audit record; the rest is cut.
    pub audit_message_limit: u32,
    pub audit_connect: AuditLevel,
    pub audit_sql_read: AuditLevel,
    pub audit_sql_write: AuditLevel,
    pub audit_ddl: AuditLevel,
    pub audit_dcl: AuditLevel,
    pub audit_system: AuditLevel,
    pub audit_stat: AuditLevel,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self {
            file_count: 30,
            default: EventLevel::Warning,
            system_service: EventLevel::Info,
            transaction_service: EventLevel::Info,
            sql_service: EventLevel::Info,
            transaction_manager: EventLevel::Info,
            log_manager: EventLevel::Info,
            checkpoint_service: EventLevel::Info,
            recovery_manager: EventLevel::Info,
            data_store: EventLevel::Info,
            audit_logs: false,
            audit_logs_path: PathBuf::new(),
            audit_file_limit: ByteSize::mib(10),
            audit_message_limit: 1024,
            audit_connect: AuditLevel::Info,
            audit_sql_read: AuditLevel::Critical,
            audit_sql_write: AuditLevel::Critical,
            audit_ddl: AuditLevel::Critical,
            audit_dcl: AuditLevel::Critical,
            audit_system: AuditLevel::Critical,
            audit_stat: AuditLevel::Critical,
        }
    }
}

impl TraceConfig {
    /// The tracing filter directives: the default level, then one per module of each
    /// category (the most specific directive wins).
    pub fn filter_directives(&self) -> String {
        let categories: [(EventLevel, &[&str]); 8] = [
            (
                self.system_service,
                &["kura", "kura::config", "kura::security", "kura::memory"],
            ),
            (self.transaction_service, &["kura::server", "kura::session"]),
            (
                self.sql_service,
                &[
                    "kura::query",
                    "kura::sql",
                    "kura::pg_catalog",
                    "kura::copy",
                    "kura::slow_statement",
                ],
            ),
            (self.transaction_manager, &["kura::txn"]),
            (self.log_manager, &["kura::wal"]),
            (self.checkpoint_service, &["kura::checkpoint"]),
            (self.recovery_manager, &["kura::recovery", "kura::check"]),
            (
                self.data_store,
                &["kura::storage", "kura::gc", "kura::expiry"],
            ),
        ];
        let mut directives = vec![self.default.directive().to_string()];
        for (level, targets) in categories {
            for target in targets {
                directives.push(format!("{target}={}", level.directive()));
            }
        }
        directives.join(",")
    }

    /// The audit log's directory: `audit` under `/trace/auditLogsPath`, or under the data
    /// directory when that is empty; a relative path is resolved against the data directory.
    pub fn audit_dir(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.audit_logs_path).join("audit")
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            (1..=10_000).contains(&self.file_count),
            "/trace/fileCount",
            "must be between 1 and 10000",
        )?;
        require(
            self.audit_file_limit.get() >= 1024,
            "/trace/auditFileLimit",
            "must be at least 1KB",
        )?;
        require(
            self.audit_message_limit >= 16,
            "/trace/auditMessageLimit",
            "must be at least 16",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_directive_follows_default() {
        let config = TraceConfig {
            checkpoint_service: EventLevel::Error,
            ..TraceConfig::default()
        };
        let directives = config.filter_directives();
        assert!(directives.starts_with("warn,kura=info,"), "{directives}");
        assert!(
            directives.contains("kura::checkpoint=error"),
            "{directives}"
        );
        tracing_subscriber::EnvFilter::try_new(&directives).unwrap();
    }

    #[test]
    fn levels_take_griddb_spellings() {
        let config: TraceConfig =
            serde_json::from_str(r#"{"default": "ERROR", "auditDdl": "LEVEL_INFO"}"#).unwrap();
        assert_eq!(config.default, EventLevel::Error);
        assert_eq!(config.audit_ddl, AuditLevel::Info);
    }
}
