//! The errors of the time functions, one constructor per SQLSTATE they use.
//!
//! Invariants: 22023 (invalid parameter value) is for a bad unit, field, zone or format, 22007
//! (invalid datetime format) for unreadable timestamp text, 22008 (datetime field overflow) for
//! a value out of range. Messages here do not name the SQL function: `Call::fail` adds it.

use datafusion::arrow::datatypes::TimeUnit;

use crate::error::{KuraError, sqlstate};

pub(super) fn invalid_parameter(message: String) -> KuraError {
    KuraError::new(sqlstate::INVALID_PARAMETER_VALUE, message)
}

pub(super) fn invalid_format(message: String) -> KuraError {
    KuraError::new(sqlstate::INVALID_DATETIME_FORMAT, message)
}

pub(super) fn field_overflow(message: String) -> KuraError {
    KuraError::new(sqlstate::DATETIME_FIELD_OVERFLOW, message)
}

/// GridDB's name of the timestamp type of `unit`.
pub(super) fn type_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "TIMESTAMP(0)",
        TimeUnit::Millisecond => "TIMESTAMP(3)",
        TimeUnit::Microsecond => "TIMESTAMP(6)",
        TimeUnit::Nanosecond => "TIMESTAMP(9)",
    }
}

pub(super) fn out_of_range(unit: TimeUnit) -> KuraError {
    field_overflow(format!("timestamp out of range for {}", type_name(unit)))
}

/// `what` (a phrase, like "the timestamp") lies outside GridDB's timestamp range.
pub(super) fn griddb_range_error(what: &str) -> KuraError {
    field_overflow(format!(
        "{what} is out of range: GridDB timestamps run from 1970-01-01T00:00:00Z to \
         9999-12-31T23:59:59.999999999Z"
    ))
}

/// `a`, `a or b`, `a, b or c`, …; empty for no items.
pub(super) fn or_list(items: &[String]) -> String {
    match items.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}
