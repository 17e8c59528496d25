//! Reading the arguments of one invocation: each argument, scalar or column, is read as
//! integers ([`Ints`], timestamps as their raw values: [`Timestamps`]), doubles ([`Floats`]),
//! strings ([`Strs`]) or parsed strings ([`Parsed`]), and then fetched row by row.
//!
//! Invariants: `get(row)` is `None` for a NULL and for a row past the end of a column, never a
//! panic; a scalar answers the same for every row; a type the coercion in `udf` does not produce
//! is an internal error; a constant string argument is parsed once, before any row is run.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayAccessor, ArrayRef, AsArray, Int64Array, PrimitiveArray, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::ColumnarValue;

use super::call::Call;
use crate::error::KuraError;

/// The value at `row` of `array`; `None` for a NULL or past the end.
fn cell<A: ArrayAccessor>(array: A, row: usize) -> Option<A::Item> {
    (row < array.len() && array.is_valid(row)).then(|| array.value(row))
}

fn unexpected(data_type: &DataType) -> DataFusionError {
    DataFusionError::Internal(format!(
        "time function received an argument of unexpected type {data_type}"
    ))
}

/// A numeric argument, a constant or a column.
pub(super) enum Numbers<T: ArrowPrimitiveType> {
    Scalar(Option<T::Native>),
    Array(PrimitiveArray<T>),
}

/// An argument read as 64-bit integers (integers, and timestamps as their raw values).
pub(super) type Ints = Numbers<Int64Type>;

/// An argument read as doubles.
pub(super) type Floats = Numbers<Float64Type>;

impl<T: ArrowPrimitiveType> Numbers<T> {
    pub(super) fn get(&self, row: usize) -> Option<T::Native> {
        match self {
            Numbers::Scalar(v) => *v,
            Numbers::Array(a) => cell(a, row),
        }
    }
}

impl Ints {
    pub(super) fn new(value: &ColumnarValue) -> DfResult<Ints> {
        Ok(match value {
            ColumnarValue::Scalar(scalar) => Numbers::Scalar(match scalar {
                ScalarValue::Int64(v)
                | ScalarValue::TimestampSecond(v, _)
                | ScalarValue::TimestampMillisecond(v, _)
                | ScalarValue::TimestampMicrosecond(v, _)
                | ScalarValue::TimestampNanosecond(v, _) => *v,
                ScalarValue::Null => None,
                other => return Err(unexpected(&other.data_type())),
            }),
            ColumnarValue::Array(array) => Numbers::Array(int64_array(array)?),
        })
    }
}

fn int64_array(array: &ArrayRef) -> DfResult<Int64Array> {
    /// The values of `array`, if it is a `T` array, as 64-bit integers.
    fn raw<T: ArrowPrimitiveType<Native = i64>>(array: &ArrayRef) -> Option<Int64Array> {
        array
            .as_primitive_opt::<T>()
            .map(|a| a.reinterpret_cast::<Int64Type>())
    }
    let ints = match array.data_type() {
        DataType::Int64 => raw::<Int64Type>(array),
        DataType::Timestamp(TimeUnit::Second, _) => raw::<TimestampSecondType>(array),
        DataType::Timestamp(TimeUnit::Millisecond, _) => raw::<TimestampMillisecondType>(array),
        DataType::Timestamp(TimeUnit::Microsecond, _) => raw::<TimestampMicrosecondType>(array),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => raw::<TimestampNanosecondType>(array),
        DataType::Null => Some(Int64Array::new_null(array.len())),
        _ => None,
    };
    ints.ok_or_else(|| unexpected(array.data_type()))
}

impl Floats {
    pub(super) fn new(value: &ColumnarValue) -> DfResult<Floats> {
        Ok(match value {
            ColumnarValue::Scalar(ScalarValue::Float64(v)) => Numbers::Scalar(*v),
            ColumnarValue::Scalar(ScalarValue::Null) => Numbers::Scalar(None),
            ColumnarValue::Scalar(other) => return Err(unexpected(&other.data_type())),
            ColumnarValue::Array(array) => {
                let floats = cast(array, &DataType::Float64)?;
                Numbers::Array(
                    floats
                        .as_primitive_opt::<Float64Type>()
                        .cloned()
                        .ok_or_else(|| unexpected(array.data_type()))?,
                )
            }
        })
    }
}

/// A timestamp argument: its raw values, and the unit and zone of its type.
pub(super) struct Timestamps {
    values: Ints,
    pub(super) unit: TimeUnit,
    pub(super) tz: Option<Arc<str>>,
}

impl Timestamps {
    pub(super) fn new(value: &ColumnarValue) -> DfResult<Timestamps> {
        // Coercion guarantees a timestamp.
        let (unit, tz) = match value.data_type() {
            DataType::Timestamp(unit, tz) => (unit, tz),
            _ => (TimeUnit::Microsecond, None),
        };
        Ok(Timestamps {
            values: Ints::new(value)?,
            unit,
            tz,
        })
    }

    pub(super) fn get(&self, row: usize) -> Option<i64> {
        self.values.get(row)
    }
}

/// An argument read as strings.
pub(super) enum Strs {
    Scalar(Option<String>),
    Array(StringArray),
}

impl Strs {
    pub(super) fn new(value: &ColumnarValue) -> DfResult<Strs> {
        Ok(match value {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
            ) => Strs::Scalar(v.clone()),
            ColumnarValue::Scalar(ScalarValue::Null) => Strs::Scalar(None),
            ColumnarValue::Scalar(other) => return Err(unexpected(&other.data_type())),
            ColumnarValue::Array(array) => {
                let strings = cast(array, &DataType::Utf8)?;
                Strs::Array(
                    strings
                        .as_string_opt::<i32>()
                        .cloned()
                        .ok_or_else(|| unexpected(array.data_type()))?,
                )
            }
        })
    }

    pub(super) fn get(&self, row: usize) -> Option<&str> {
        match self {
            Strs::Scalar(v) => v.as_deref(),
            Strs::Array(a) => cell(a, row),
        }
    }
}

/// A string argument parsed into `T`: once if it is a constant (so a bad constant fails even
/// when no row uses it), row by row otherwise.
pub(super) enum Parsed<T> {
    Const(Option<T>),
    Rows(Vec<Option<T>>),
}

impl<T: Copy> Parsed<T> {
    pub(super) fn new(
        value: &ColumnarValue,
        parse: impl Fn(&str) -> Result<T, KuraError>,
        call: &Call,
    ) -> DfResult<Parsed<T>> {
        let parse = |s: &str| parse(s).map_err(|e| call.fail(e));
        Ok(match Strs::new(value)? {
            Strs::Scalar(v) => Parsed::Const(v.as_deref().map(&parse).transpose()?),
            Strs::Array(a) => Parsed::Rows(
                a.iter()
                    .map(|v| v.map(&parse).transpose())
                    .collect::<DfResult<_>>()?,
            ),
        })
    }

    pub(super) fn get(&self, row: usize) -> Option<T> {
        match self {
            Parsed::Const(v) => *v,
            Parsed::Rows(v) => v.get(row).copied().flatten(),
        }
    }
}
