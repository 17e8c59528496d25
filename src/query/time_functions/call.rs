//! One invocation of a time function: its SQL name for messages, how many rows it produces,
//! the argument readers every function shares (units, zones), the row loop, and the result.
//!
//! Invariants: an invocation whose arguments are all scalars gives a scalar, otherwise a column
//! of `number_rows` rows; every error a row or a constant argument raises comes out as a
//! [`KuraError`] whose message starts with the function's SQL name (`TIMESTAMP_ADD: ...`).

use std::sync::Arc;

use chrono::FixedOffset;
use datafusion::arrow::array::{
    ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray,
};
use datafusion::arrow::datatypes::TimeUnit;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};

use super::args::Parsed;
use super::units::{Field, parse_zone, utc};
use crate::error::KuraError;

/// One invocation: its SQL name for messages and the number of result rows.
pub(super) struct Call {
    label: String,
    rows: usize,
    scalar: bool,
}

impl Call {
    pub(super) fn new(label: String, args: &ScalarFunctionArgs) -> Call {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        Call {
            label,
            rows: if scalar { 1 } else { args.number_rows },
            scalar,
        }
    }

    /// `e`, named after this function.
    pub(super) fn fail(&self, e: KuraError) -> DataFusionError {
        KuraError {
            message: format!("{}: {}", self.label, e.message),
            ..e
        }
        .into()
    }

    pub(super) fn arg<'a>(
        &self,
        args: &'a [ColumnarValue],
        i: usize,
    ) -> DfResult<&'a ColumnarValue> {
        args.get(i).ok_or_else(|| {
            DataFusionError::Internal(format!("{}: argument {} is missing", self.label, i + 1))
        })
    }

    /// A unit or field argument.
    pub(super) fn fields(
        &self,
        value: &ColumnarValue,
        allowed: &[Field],
    ) -> DfResult<Parsed<Field>> {
        Parsed::new(value, |s| Field::parse(s, allowed), self)
    }

    /// An optional time zone argument; `None` when absent.
    pub(super) fn given_zones(
        &self,
        value: Option<&ColumnarValue>,
    ) -> DfResult<Option<Parsed<FixedOffset>>> {
        value.map(|v| Parsed::new(v, parse_zone, self)).transpose()
    }

    /// An optional time zone argument; UTC when absent.
    pub(super) fn zones(&self, value: Option<&ColumnarValue>) -> DfResult<Parsed<FixedOffset>> {
        Ok(self
            .given_zones(value)?
            .unwrap_or(Parsed::Const(Some(utc()))))
    }

    /// Runs `f` on every row, turning its errors into this function's.
    pub(super) fn each<T>(
        &self,
        mut f: impl FnMut(usize) -> Option<Result<T, KuraError>>,
    ) -> DfResult<Vec<Option<T>>> {
        (0..self.rows)
            .map(|row| f(row).transpose().map_err(|e| self.fail(e)))
            .collect()
    }

    /// The result column, or its only value when the invocation is scalar.
    fn result(&self, array: ArrayRef) -> DfResult<ColumnarValue> {
        if self.scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?));
        }
        Ok(ColumnarValue::Array(array))
    }

    /// Timestamps of `unit` and time zone `tz`.
    pub(super) fn timestamps(
        &self,
        values: Vec<Option<i64>>,
        unit: TimeUnit,
        tz: Option<Arc<str>>,
    ) -> DfResult<ColumnarValue> {
        let array: ArrayRef = match unit {
            TimeUnit::Second => Arc::new(TimestampSecondArray::from(values).with_timezone_opt(tz)),
            TimeUnit::Millisecond => {
                Arc::new(TimestampMillisecondArray::from(values).with_timezone_opt(tz))
            }
            TimeUnit::Microsecond => {
                Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(tz))
            }
            TimeUnit::Nanosecond => {
                Arc::new(TimestampNanosecondArray::from(values).with_timezone_opt(tz))
            }
        };
        self.result(array)
    }

    /// BIGINTs (GridDB's LONG).
    pub(super) fn longs(&self, values: Vec<Option<i64>>) -> DfResult<ColumnarValue> {
        self.result(Arc::new(Int64Array::from(values)))
    }

    pub(super) fn strings(&self, values: Vec<Option<String>>) -> DfResult<ColumnarValue> {
        self.result(Arc::new(StringArray::from(values)))
    }
}
