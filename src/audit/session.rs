//! A logged-in connection's part of the audit log: its login, each statement it runs and its
//! disconnection, numbered within the connection.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::Statement;

use super::{AuditLog, Connection, Record, classify};
use crate::error::KuraError;
use crate::security::masking::masked_text;

pub struct SessionAudit {
    log: Arc<AuditLog>,
    connection: Connection,
    sequence: u64,
}

impl SessionAudit {
    /// Records the login.
    pub fn logged_in(log: Arc<AuditLog>, connection: Connection) -> SessionAudit {
        let audit = SessionAudit {
            log,
            connection,
            sequence: 0,
        };
        audit
            .log
            .connection_event(&audit.connection, "CONNECT", None);
        audit
    }

    /// Records `statement`, which ran as `effective` (the statement an EXECUTE runs, else
    /// itself), if its category and outcome are audited.
    pub fn statement(
        &mut self,
        statement: &Statement,
        effective: &Statement,
        error: Option<&KuraError>,
    ) {
        self.sequence += 1;
        let operation = classify(effective);
        if !self.log.wants(operation.category, error.is_some()) {
            return;
        }
        self.log.write(&Record {
            connection: &self.connection,
            category: operation.category,
            operation: operation.name,
            statement: &masked_text(statement),
            sequence: self.sequence,
            tables: &operation.tables,
            error,
        });
    }
}

impl Drop for SessionAudit {
    fn drop(&mut self) {
        self.log
            .connection_event(&self.connection, "DISCONNECT", None);
    }
}
