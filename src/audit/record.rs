//! One audit record and its line: space-separated fields in GridDB's order, `(null)` for a
//! field with no value, and double quotes (doubled inside) around any field holding a space,
//! a quote or nothing:
//!
//! `TIME HOST PID LEVEL AUDIT_CATEGORY [SQLSTATE] USER ADMIN|USER DATABASE APPLICATION CLIENT
//! SERVER CLASS SQL OPERATION "STATEMENT" OPERATION_ID "DETAIL"`
//!
//! Invariants: a line holds no line break (control characters become spaces); the statement
//! is cut at the message limit on a character boundary.

use std::fmt::Write;
use std::net::SocketAddr;

use super::Category;
use crate::error::KuraError;

const NULL: &str = "(null)";

/// Who is connected, from where, to which database.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Names the connection in operation ids (a random UUID).
    pub id: String,
    /// The connection's process id (`pg_stat_activity.pid`); 0 before login.
    pub pid: i32,
    pub user: Option<String>,
    /// Known once logged in.
    pub admin: Option<bool>,
    pub database: Option<String>,
    pub application: Option<String>,
    pub client: Option<SocketAddr>,
    pub server: Option<SocketAddr>,
}

impl Connection {
    /// A new connection's id: 16 random bytes as a UUID (8-4-4-4-12 hex digits).
    pub fn new_id() -> String {
        let bytes = crate::security::verifier::random_bytes(16);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }
}

pub struct Record<'a> {
    pub connection: &'a Connection,
    pub category: Category,
    /// SELECT, DML, DDL, DCL, or the command (CONNECT, CHECKPOINT, TRANSACTION, ...).
    pub operation: &'a str,
    /// The statement, passwords already masked; empty for connection events.
    pub statement: &'a str,
    /// The statement's number within the connection (0 for connection events).
    pub sequence: u64,
    pub tables: &'a [String],
    pub error: Option<&'a KuraError>,
}

impl Record<'_> {
    /// The record's line, newline included.
    pub fn line(&self, host: &str, message_limit: usize) -> String {
        let c = self.connection;
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%:z");
        let level = if self.error.is_some() {
            "ERROR"
        } else {
            "INFO"
        };
        let code = self.error.map_or("00000", |e| e.code);
        let role = c.admin.map(|admin| if admin { "ADMIN" } else { "USER" });
        let address = |a: Option<SocketAddr>| a.map(|a| a.to_string());
        let mut line = format!(
            "{now} {} {} {level} AUDIT_{}",
            field(host),
            c.pid,
            self.category.class()
        );
        let _ = write!(line, " [{code}]");
        for value in [
            c.user.clone(),
            role.map(str::to_string),
            c.database.clone(),
            c.application.clone().filter(|a| !a.is_empty()),
            address(c.client),
            address(c.server),
        ] {
            line.push(' ');
            line.push_str(&value.map_or_else(|| NULL.to_string(), |v| field(&v)));
        }
        let _ = write!(
            line,
            " {} SQL {} {} {}:{} {}",
            self.category.class(),
            field(self.operation),
            optional(&crate::logs::cut(self.statement, message_limit)),
            c.id,
            self.sequence,
            optional(&self.detail()),
        );
        line.push('\n');
        line
    }

    /// Tables touched and the error, if any.
    fn detail(&self) -> String {
        let mut parts = Vec::new();
        if !self.tables.is_empty() {
            let names: Vec<String> = self.tables.iter().map(|t| format!("'{t}'")).collect();
            parts.push(format!("tables=[{}]", names.join(",")));
        }
        if let Some(error) = self.error {
            parts.push(format!("error={}", error.message));
        }
        parts.join("; ")
    }
}

/// `text` as one field: quoted when it holds a space or a quote, or is empty.
fn field(text: &str) -> String {
    if text.is_empty() || text.contains([' ', '"']) || text.contains(char::is_control) {
        quoted(text)
    } else {
        text.to_string()
    }
}

/// `text` in double quotes, quotes doubled, control characters as spaces.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\"\""),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `(null)` for nothing, else the quoted text.
fn optional(text: &str) -> String {
    if text.is_empty() {
        NULL.to_string()
    } else {
        quoted(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> Connection {
        Connection {
            id: "6a4ccd7a-818a-45e8-88c7-1ebda78d1959".into(),
            pid: 7,
            user: Some("app".into()),
            admin: Some(false),
            database: Some("db1".into()),
            application: Some("My App".into()),
            client: "192.0.2.1:63482".parse().ok(),
            server: "203.0.113.1:5433".parse().ok(),
        }
    }

    #[test]
    fn a_record_is_one_line_of_griddb_fields() {
        let error = KuraError::new("42P07", "relation \"t\" already exists");
        let tables = vec!["t".to_string()];
        let line = Record {
            connection: &connection(),
            category: Category::Ddl,
            operation: "DDL",
            statement: "CREATE TABLE t (a INT, b TEXT DEFAULT 'x\ny\"z')",
            sequence: 3,
            tables: &tables,
            error: Some(&error),
        }
        .line("host1", 1024);
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(
            chrono::DateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%S%.3f%:z").is_ok(),
            "{time}"
        );
        assert_eq!(
            rest,
            "host1 7 ERROR AUDIT_DDL [42P07] app USER db1 \"My App\" 192.0.2.1:63482 \
             203.0.113.1:5433 DDL SQL DDL \"CREATE TABLE t (a INT, b TEXT DEFAULT 'x y\"\"z')\" \
             6a4ccd7a-818a-45e8-88c7-1ebda78d1959:3 \
             \"tables=['t']; error=relation \"\"t\"\" already exists\"\n"
        );
    }

    #[test]
    fn missing_values_show_as_null_and_long_statements_are_cut() {
        let connection = Connection {
            id: "x".into(),
            ..Connection::default()
        };
        let line = Record {
            connection: &connection,
            category: Category::SqlRead,
            operation: "SELECT",
            statement: "SELECT 'ééééé'",
            sequence: 1,
            tables: &[],
            error: None,
        }
        .line("h", 10);
        assert!(
            line.ends_with(
                " h 0 INFO AUDIT_SQL_READ [00000] (null) (null) (null) (null) (null) (null) \
                 SQL_READ SQL SELECT \"SELECT 'é...\" x:1 (null)\n"
            ),
            "{line}"
        );
    }
}
