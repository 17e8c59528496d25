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
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const INVALID_TRANSACTION_STATE: &str = "25000";
    pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
    pub const IDLE_IN_TRANSACTION_SESSION_TIMEOUT: &str = "25P03";
    pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
    pub const INVALID_SAVEPOINT_SPECIFICATION: &str = "3B001";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
    pub const SYNTAX_ERROR: &str = "42601";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    pub const INVALID_COLUMN_DEFINITION: &str = "42611";
    pub const CANNOT_COERCE: &str = "42846";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const OBJECT_IN_USE: &str = "55006";
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    pub const QUERY_CANCELED: &str = "57014";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const INTERNAL_ERROR: &str = "XX000";
}

/// An error with a SQLSTATE, a message and optional detail/hint, as sent in an ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KuraError {
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

pub type Result<T, E = KuraError> = std::result::Result<T, E>;

impl KuraError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
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
        other => KuraError::new(sqlstate::DATA_EXCEPTION, other.to_string()),
    }
}

/// Arrow reports every failed conversion as a cast error; PostgreSQL distinguishes malformed
/// text, out-of-range numbers and bad datetimes.
fn classify_cast_message(message: &str) -> KuraError {
    let lower = message.to_ascii_lowercase();
    let code = if lower.contains("overflow") || lower.contains("out of range") || lower.contains("too large") {
        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE
    } else if lower.contains("timestamp") || lower.contains("date") || lower.contains("time") {
        sqlstate::INVALID_DATETIME_FORMAT
    } else {
        sqlstate::INVALID_TEXT_REPRESENTATION
    };
    KuraError::new(code, message.to_string())
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
        DataFusionError::Shared(shared) => from_datafusion(DataFusionError::External(Box::new(
            SharedMessage(shared.to_string()),
        ))),
        DataFusionError::Collection(mut errors) => match errors.pop() {
            Some(first) => from_datafusion(first),
            None => KuraError::internal("unknown error"),
        },
        other => KuraError::internal(other.strip_backtrace()),
    }
}

#[derive(Debug)]
struct SharedMessage(String);

impl fmt::Display for SharedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SharedMessage {}

fn classify_plan_message(message: &str) -> KuraError {
    let code = if message.contains("No field named") || message.contains("not found in") {
        sqlstate::UNDEFINED_COLUMN
    } else if message.contains("table '") && message.contains("not found") {
        sqlstate::UNDEFINED_TABLE
    } else if message.contains("Ambiguous reference") {
        sqlstate::AMBIGUOUS_COLUMN
    } else if message.contains("Invalid function") || message.contains("No function matches") {
        sqlstate::UNDEFINED_FUNCTION
    } else if message.contains("Cannot infer common")
        || message.contains("Cannot coerce")
        || message.contains("does not support")
    {
        sqlstate::DATATYPE_MISMATCH
    } else if message.contains("Unsupported") || message.contains("not supported") {
        sqlstate::FEATURE_NOT_SUPPORTED
    } else {
        sqlstate::SYNTAX_ERROR
    };
    KuraError::new(code, clean_message(message))
}

fn classify_execution_message(message: &str) -> KuraError {
    let lower = message.to_ascii_lowercase();
    let code = if lower.contains("divide by zero") || lower.contains("division by zero") {
        sqlstate::DIVISION_BY_ZERO
    } else if lower.contains("overflow") {
        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE
    } else if lower.contains("cannot cast") || lower.contains("cast error") {
        return classify_cast_message(message);
    } else {
        sqlstate::DATA_EXCEPTION
    };
    KuraError::new(code, clean_message(message))
}

fn clean_message(message: &str) -> String {
    message.trim().to_string()
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
    }
}
