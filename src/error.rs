//! The one error type of Kura: every failure that can reach a client is a [`KuraError`] carrying
//! a PostgreSQL SQLSTATE and a message written for the user.
//!
//! Invariants: errors coming from DataFusion, Arrow and sqlparser are mapped to the closest
//! SQLSTATE here and nowhere else; an error raised inside a DataFusion plan by Kura code travels
//! as `DataFusionError::External(KuraError)` and comes back out unchanged.

use std::fmt;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

/// PostgreSQL SQLSTATE codes used by Kura.
pub mod sqlstate {
    pub const SUCCESSFUL_COMPLETION: &str = "00000";
    pub const WARNING: &str = "01000";
    pub const CONNECTION_EXCEPTION: &str = "08000";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const CARDINALITY_VIOLATION: &str = "21000";
    pub const DATA_EXCEPTION: &str = "22000";
    pub const STRING_DATA_RIGHT_TRUNCATION: &str = "22001";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const INVALID_DATETIME_FORMAT: &str = "22007";
    pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const NULL_VALUE_NOT_ALLOWED: &str = "22004";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const INVALID_BINARY_REPRESENTATION: &str = "22P03";
    pub const BAD_COPY_FILE_FORMAT: &str = "22P04";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const INVALID_TRANSACTION_STATE: &str = "25000";
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
    pub const STATEMENT_COMPLETION_UNKNOWN: &str = "40003";
    pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
    pub const IDLE_IN_TRANSACTION_SESSION_TIMEOUT: &str = "25P03";
    pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
    pub const INVALID_CURSOR_NAME: &str = "34000";
    pub const INVALID_CATALOG_NAME: &str = "3D000";
    pub const DUPLICATE_CURSOR: &str = "42P03";
    pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
    pub const UNDEFINED_PARAMETER: &str = "42P02";
    pub const INVALID_SAVEPOINT_SPECIFICATION: &str = "3B001";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
    pub const SYNTAX_ERROR: &str = "42601";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const RESERVED_NAME: &str = "42939";
    pub const DUPLICATE_DATABASE: &str = "42P04";
    pub const INVALID_GRANT_OPERATION: &str = "0LP01";
    pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const INVALID_SCHEMA_NAME: &str = "3F000";
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    pub const INVALID_COLUMN_DEFINITION: &str = "42611";
    pub const INVALID_COLUMN_REFERENCE: &str = "42P10";
    pub const CANNOT_COERCE: &str = "42846";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const DISK_FULL: &str = "53100";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const IO_ERROR: &str = "58030";
    pub const UNDEFINED_FILE: &str = "58P01";
    pub const INVALID_NAME: &str = "42602";
    pub const OBJECT_IN_USE: &str = "55006";
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    pub const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02";
    pub const QUERY_CANCELED: &str = "57014";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const INTERNAL_ERROR: &str = "XX000";
    pub const DATA_CORRUPTED: &str = "XX001";
}

/// An error with a SQLSTATE, a message and optional detail/hint, as sent in an ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KuraError {
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// Where the error happened (PostgreSQL's CONTEXT), e.g. `COPY t, line 3, column v: "x"`.
    pub context: Option<String>,
}

pub type Result<T, E = KuraError> = std::result::Result<T, E>;

impl KuraError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            hint: None,
            context: None,
        }
    }

    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new(sqlstate::SYNTAX_ERROR, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(sqlstate::FEATURE_NOT_SUPPORTED, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(sqlstate::INTERNAL_ERROR, message)
    }

    /// A file-system error: disk full (53100) or any other I/O failure (58030).
    pub fn io(message: impl Into<String>, error: &std::io::Error) -> Self {
        let code = match error.kind() {
            std::io::ErrorKind::StorageFull => sqlstate::DISK_FULL,
            std::io::ErrorKind::NotFound => sqlstate::UNDEFINED_FILE,
            std::io::ErrorKind::PermissionDenied => sqlstate::INSUFFICIENT_PRIVILEGE,
            _ => sqlstate::IO_ERROR,
        };
        Self::new(code, message)
    }

    pub fn undefined_table(name: &str) -> Self {
        Self::new(
            sqlstate::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        )
    }

    pub fn undefined_column(name: &str) -> Self {
        Self::new(
            sqlstate::UNDEFINED_COLUMN,
            format!("column \"{name}\" does not exist"),
        )
    }

    pub fn serialization_failure() -> Self {
        Self::new(
            sqlstate::SERIALIZATION_FAILURE,
            "could not serialize access due to concurrent update",
        )
    }

    /// Errors that end the connection (sent with severity FATAL).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.code,
            sqlstate::ADMIN_SHUTDOWN
                | sqlstate::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
                | sqlstate::TOO_MANY_CONNECTIONS
        )
    }

    /// Errors after which a statement may be retried on a new snapshot under READ COMMITTED.
    pub fn is_serialization_failure(&self) -> bool {
        self.code == sqlstate::SERIALIZATION_FAILURE
    }
}

impl fmt::Display for KuraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for KuraError {}

impl From<KuraError> for DataFusionError {
    fn from(e: KuraError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

impl From<ParserError> for KuraError {
    fn from(e: ParserError) -> Self {
        let text = match e {
            ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
            ParserError::RecursionLimitExceeded => {
                return KuraError::new(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    "statement is nested too deeply",
                );
            }
        };
        KuraError::syntax(format!("syntax error: {text}"))
    }
}

impl From<ArrowError> for KuraError {
    fn from(e: ArrowError) -> Self {
        from_arrow(&e)
    }
}

impl From<DataFusionError> for KuraError {
    fn from(e: DataFusionError) -> Self {
        from_datafusion(e)
    }
}

fn from_arrow(e: &ArrowError) -> KuraError {
    match e {
        ArrowError::DivideByZero => KuraError::new(sqlstate::DIVISION_BY_ZERO, "division by zero"),
        ArrowError::CastError(m) | ArrowError::ParseError(m) => classify_cast_message(m),
        ArrowError::ComputeError(m) if m.contains("Overflow") || m.contains("overflow") => {
            KuraError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, m.clone())
        }
        ArrowError::ArithmeticOverflow(m) => {
            KuraError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, m.clone())
        }
        ArrowError::ExternalError(inner) => match inner.downcast_ref::<KuraError>() {
            Some(k) => k.clone(),
            None => KuraError::new(sqlstate::DATA_EXCEPTION, inner.to_string()),
        },
        ArrowError::NotYetImplemented(m) => KuraError::unsupported(m.clone()),
        ArrowError::InvalidArgumentError(m) if m.contains("too large to store in a Decimal") => {
            KuraError::new(
                sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                "numeric field overflow",
            )
            .with_detail(m.clone())
        }
        other => KuraError::new(sqlstate::DATA_EXCEPTION, other.to_string()),
    }
}

fn from_datafusion(e: DataFusionError) -> KuraError {
    match e {
        DataFusionError::External(inner) => match inner.downcast::<KuraError>() {
            Ok(k) => *k,
            Err(inner) => match inner.downcast::<ArrowError>() {
                Ok(a) => from_arrow(&a),
                Err(inner) => KuraError::internal(inner.to_string()),
            },
        },
        DataFusionError::ArrowError(a, _) => from_arrow(&a),
        DataFusionError::SQL(p, _) => KuraError::from(*p),
        DataFusionError::NotImplemented(m) => KuraError::unsupported(m),
        DataFusionError::Plan(m) => classify_plan_message(&m),
        DataFusionError::SchemaError(s, _) => classify_plan_message(&s.to_string()),
        DataFusionError::Execution(m) => classify_execution_message(&m),
        DataFusionError::ResourcesExhausted(m) => KuraError::new("53200", m),
        DataFusionError::Context(ctx, inner) => {
            let mut k = from_datafusion(*inner);
            if k.code == sqlstate::INTERNAL_ERROR {
                k.message = format!("{ctx}: {}", k.message);
            }
            k
        }
        DataFusionError::Shared(shared) => classify_execution_message(&shared.to_string()),
        DataFusionError::Diagnostic(_, inner) => from_datafusion(*inner),
        DataFusionError::Collection(mut errors) => match errors.pop() {
            Some(first) => from_datafusion(first),
            None => KuraError::internal("unknown error"),
        },
        other => KuraError::internal(other.strip_backtrace()),
    }
}

/// Arrow reports every failed conversion as a cast error; PostgreSQL distinguishes malformed
/// text, out-of-range numbers and bad datetimes, and names the SQL type.
fn classify_cast_message(message: &str) -> KuraError {
    let lower = message.to_ascii_lowercase();
    if let Some((value, ty)) = between(message, "Cannot cast string '", "' to value of ").map(|v| {
        (
            v,
            message
                .rsplit("to value of ")
                .next()
                .unwrap_or("")
                .trim_end_matches(" type"),
        )
    }) {
        let pg = pg_type_name(ty);
        let code = if pg.contains("time") || pg == "date" {
            sqlstate::INVALID_DATETIME_FORMAT
        } else {
            sqlstate::INVALID_TEXT_REPRESENTATION
        };
        return KuraError::new(
            code,
            format!("invalid input syntax for type {pg}: \"{value}\""),
        );
    }
    if let Some(ty) = message
        .strip_prefix("Can't cast value ")
        .and_then(|r| r.split(" to type ").nth(1))
    {
        return KuraError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{} out of range", pg_type_name(ty.trim())),
        );
    }
    if lower.contains("too large to store in a decimal")
        || lower.contains("precision") && lower.contains("decimal")
    {
        return KuraError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            "numeric field overflow",
        )
        .with_detail(message.to_string());
    }
    let code = if lower.contains("overflow")
        || lower.contains("out of range")
        || lower.contains("too large")
    {
        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE
    } else if lower.contains("timestamp") || lower.contains("date") || lower.contains("time") {
        sqlstate::INVALID_DATETIME_FORMAT
    } else {
        sqlstate::INVALID_TEXT_REPRESENTATION
    };
    KuraError::new(code, message.to_string())
}

/// The PostgreSQL name of an Arrow type as it appears in Arrow's messages.
fn pg_type_name(arrow: &str) -> &'static str {
    match arrow {
        "Int8" | "Int16" => "smallint",
        "Int32" => "integer",
        "Int64" => "bigint",
        "Float32" => "real",
        "Float64" => "double precision",
        "Boolean" => "boolean",
        "Date32" | "Date64" => "date",
        a if a.starts_with("Timestamp") && a.contains("Some") => "timestamp with time zone",
        a if a.starts_with("Timestamp") => "timestamp",
        a if a.starts_with("Decimal") => "numeric",
        a if a.starts_with("Interval") => "interval",
        _ => "text",
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

fn classify_plan_message(message: &str) -> KuraError {
    let message = message.trim();
    if let Some(name) = between(message, "table '", "' not found") {
        let name = name.rsplit('.').next().unwrap_or(name);
        return KuraError::undefined_table(name);
    }
    if let Some(rest) = message.split("No field named ").nth(1) {
        let name = rest
            .split(['.', ' ', ','])
            .find(|p| !p.is_empty())
            .unwrap_or(rest)
            .trim_matches('"');
        let name = rest
            .split(". Did you mean")
            .next()
            .map(|n| n.trim_end_matches('.').trim_matches('"'))
            .filter(|n| !n.contains(' '))
            .unwrap_or(name);
        let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
        return KuraError::undefined_column(name);
    }
    if let Some(name) =
        between(message, "Ambiguous reference to unqualified field ", "\0").or_else(|| {
            message
                .split("Ambiguous reference to unqualified field ")
                .nth(1)
        })
    {
        return KuraError::new(
            sqlstate::AMBIGUOUS_COLUMN,
            format!("column reference \"{}\" is ambiguous", name.trim()),
        );
    }
    if let Some(name) = between(message, "Invalid function '", "'") {
        return KuraError::new(
            sqlstate::UNDEFINED_FUNCTION,
            format!("function {name} does not exist"),
        )
        .with_hint("No function matches the given name and argument types.");
    }
    if let Some(column) = between(
        message,
        "column \"",
        "\" must appear in the GROUP BY clause",
    ) {
        return KuraError::new(
            "42803",
            format!(
                "column \"{column}\" must appear in the GROUP BY clause or be used in an aggregate function"
            ),
        );
    }
    let code = if message.contains("No function matches") {
        sqlstate::UNDEFINED_FUNCTION
    } else if message.contains("Cannot infer common")
        || message.contains("Cannot coerce")
        || message.contains("does not support")
    {
        sqlstate::DATATYPE_MISMATCH
    } else if message.contains("Unsupported") || message.contains("not supported") {
        sqlstate::FEATURE_NOT_SUPPORTED
    } else if let Some(counts) = between(
        message,
        "Inconsistent data length across values list: got ",
        " values in row",
    ) {
        let got: usize = counts.parse().unwrap_or(0);
        let expected: usize = message
            .rsplit("but expected ")
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let text = if got < expected {
            "INSERT has more target columns than expressions"
        } else {
            "INSERT has more expressions than target columns"
        };
        return KuraError::syntax(text);
    } else {
        sqlstate::SYNTAX_ERROR
    };
    KuraError::new(code, clean_message(message))
}

fn classify_execution_message(message: &str) -> KuraError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("scalar subquery returned more than one row") {
        return KuraError::new(
            sqlstate::CARDINALITY_VIOLATION,
            "more than one row returned by a subquery used as an expression",
        );
    }
    let code = if lower.contains("divide by zero") || lower.contains("division by zero") {
        return KuraError::new(sqlstate::DIVISION_BY_ZERO, "division by zero");
    } else if lower.contains("overflow") {
        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE
    } else if lower.contains("cannot cast")
        || lower.contains("cast error")
        || lower.contains("can't cast")
    {
        return classify_cast_message(message);
    } else {
        sqlstate::DATA_EXCEPTION
    };
    KuraError::new(code, clean_message(message))
}

/// Drops DataFusion's category prefixes ("Error during planning: ", "Schema error: ").
fn clean_message(message: &str) -> String {
    let mut text = message.trim();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "Execution error: ",
        "Invalid argument error: ",
        "This feature is not implemented: ",
        "Arrow error: ",
    ] {
        text = text.strip_prefix(prefix).unwrap_or(text);
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_kura_error_round_trips() {
        let original = KuraError::undefined_table("t");
        let df: DataFusionError = original.clone().into();
        assert_eq!(KuraError::from(df), original);
    }

    #[test]
    fn divide_by_zero_maps_to_22012() {
        let e = KuraError::from(DataFusionError::ArrowError(
            Box::new(ArrowError::DivideByZero),
            None,
        ));
        assert_eq!(e.code, sqlstate::DIVISION_BY_ZERO);
    }

    #[test]
    fn unknown_column_maps_to_42703() {
        let e = classify_plan_message("Schema error: No field named x.");
        assert_eq!(e.code, sqlstate::UNDEFINED_COLUMN);
        assert_eq!(e.message, "column \"x\" does not exist");
        let e = classify_plan_message("No field named note. Did you mean 'items.name'?");
        assert_eq!(e.message, "column \"note\" does not exist");
    }

    #[test]
    fn missing_table_and_bad_casts_read_like_postgres() {
        let e = classify_plan_message("table 'public.public.fresh' not found");
        assert_eq!(e.message, "relation \"fresh\" does not exist");
        let e = classify_cast_message("Cannot cast string 'abc' to value of Int32 type");
        assert_eq!(e.code, sqlstate::INVALID_TEXT_REPRESENTATION);
        assert_eq!(e.message, "invalid input syntax for type integer: \"abc\"");
        let e = classify_cast_message("Can't cast value 2147483648 to type Int32");
        assert_eq!(e.message, "integer out of range");
    }
}
