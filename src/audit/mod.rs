//! The audit log (GridDB's function reference 7.9, `/trace/auditLogs`): one line per login,
//! refused connection, disconnection and statement, in the categories AUDIT_CONNECT,
//! AUDIT_SQL_READ, AUDIT_SQL_WRITE, AUDIT_DDL, AUDIT_DCL, AUDIT_SYSTEM and AUDIT_STAT, each
//! recording operations and errors (INFO), errors only (ERROR) or nothing (CRITICAL). Files
//! `kura-audit-YYYYMMDD-N.log` roll over daily, at each start and at `/trace/auditFileLimit`,
//! and are never deleted by the server.
//!
//! Invariants: nothing is written, and no directory made, unless `/trace/auditLogs` is on; a
//! statement's text is rendered (and its passwords masked) only when its record is written;
//! no record holds a password; a record is one line.

mod classify;
mod record;
mod session;

use std::io;
use std::sync::Arc;

use crate::config::{AuditLevel, Config};
use crate::error::KuraError;
use crate::logs::rolling::{RollingFile, RollingSpec};

pub use classify::{Operation, classify};
pub use record::{Connection, Record};
pub use session::SessionAudit;

/// What an audited operation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Connect,
    SqlRead,
    SqlWrite,
    Ddl,
    Dcl,
    System,
    Stat,
}

impl Category {
    /// The category without its `AUDIT_` prefix (GridDB's operation class).
    pub fn class(self) -> &'static str {
        match self {
            Category::Connect => "CONNECT",
            Category::SqlRead => "SQL_READ",
            Category::SqlWrite => "SQL_WRITE",
            Category::Ddl => "DDL",
            Category::Dcl => "DCL",
            Category::System => "SYSTEM",
            Category::Stat => "STAT",
        }
    }
}

pub struct AuditLog {
    file: RollingFile,
    levels: [AuditLevel; 7],
    message_limit: usize,
    host: String,
}

impl AuditLog {
    /// The audit log `config` asks for, if any; its directory is made now.
    pub fn open(config: &Config) -> io::Result<Option<Arc<AuditLog>>> {
        let trace = &config.trace;
        if !trace.audit_logs {
            return Ok(None);
        }
        let file = RollingFile::open(RollingSpec {
            dir: trace.audit_dir(&config.system.data_dir),
            prefix: "kura-audit",
            max_bytes: trace.audit_file_limit.get(),
            keep: None,
        })?;
        Ok(Some(Arc::new(AuditLog {
            file,
            levels: [
                trace.audit_connect,
                trace.audit_sql_read,
                trace.audit_sql_write,
                trace.audit_ddl,
                trace.audit_dcl,
                trace.audit_system,
                trace.audit_stat,
            ],
            message_limit: trace.audit_message_limit as usize,
            host: host_name(),
        })))
    }

    /// True when an operation of `category` that succeeded (`failed` false) or failed is to be
    /// recorded.
    pub fn wants(&self, category: Category, failed: bool) -> bool {
        match self.levels[category as usize] {
            AuditLevel::Info => true,
            AuditLevel::Error => failed,
            AuditLevel::Critical => false,
        }
    }

    /// Writes `record` if its category and outcome are recorded.
    pub fn write(&self, record: &Record<'_>) {
        if !self.wants(record.category, record.error.is_some()) {
            return;
        }
        let line = record.line(&self.host, self.message_limit);
        if let Err(e) = self.file.append(line.as_bytes()) {
            tracing::error!(
                dir = %self.file.dir().display(),
                "cannot write the audit log: {e}"
            );
        }
    }

    /// Records a login (`CONNECT`), a disconnection, or with `error` a refused connection or
    /// failed login.
    pub fn connection_event(
        &self,
        connection: &Connection,
        operation: &str,
        error: Option<&KuraError>,
    ) {
        self.write(&Record {
            connection,
            category: Category::Connect,
            operation,
            statement: "",
            sequence: 0,
            tables: &[],
            error,
        });
    }
}

/// This machine's name, as the records show it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
