//! The DataFusion side of the time functions: one [`TimeFunction`] per SQL name, which says
//! which argument lists it accepts, coerces the arguments, gives the result type, and hands an
//! invocation to the module that implements it.
//!
//! Invariants: every function has a user-defined signature and is immutable; a wrong number or
//! kind of arguments is a plan error naming the function and the argument; after coercion an
//! argument is Utf8 (text), a timestamp of any unit and zone (a date becomes a microsecond
//! timestamp), Int64 or Float64, which is all the readers in `args` accept. The result type of
//! TIMESTAMP_ADD / TIMESTAMP_TRUNC is their timestamp argument's.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::plan_err;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::call::Call;
use super::errors::or_list;
use super::{arithmetic, construct, format, parse, trunc_extract};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Add,
    Diff,
    Trunc,
    ToTimestampMs,
    ToEpochMs,
    /// TIMESTAMP_MS / _US / _NS.
    Parse(TimeUnit),
    /// MAKE_TIMESTAMP (_MS) / _US / _NS.
    Make(TimeUnit),
    Extract,
    Strftime,
}

/// What an argument position accepts, and what it is coerced to.
#[derive(Debug, Clone, Copy)]
enum ArgKind {
    /// Any string: Utf8.
    Text,
    /// A timestamp, kept as it is; a date becomes a microsecond timestamp.
    Ts,
    /// Any integer: Int64.
    Int,
    /// Any number: Float64.
    Num,
}

impl ArgKind {
    fn coerce(self, t: &DataType) -> Option<DataType> {
        use DataType::*;
        match (self, t) {
            (ArgKind::Text, Utf8 | LargeUtf8 | Utf8View | Null) => Some(Utf8),
            (ArgKind::Ts, Timestamp(..)) => Some(t.clone()),
            (ArgKind::Ts, Date32 | Date64 | Null) => Some(Timestamp(TimeUnit::Microsecond, None)),
            (ArgKind::Int | ArgKind::Num, Int8 | Int16 | Int32 | Int64)
            | (ArgKind::Int | ArgKind::Num, UInt8 | UInt16 | UInt32 | UInt64 | Null) => {
                Some(if matches!(self, ArgKind::Int) {
                    Int64
                } else {
                    Float64
                })
            }
            (ArgKind::Num, Float16 | Float32 | Float64 | Decimal128(..) | Decimal256(..)) => {
                Some(Float64)
            }
            _ => None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ArgKind::Text => "a string",
            ArgKind::Ts => "a TIMESTAMP",
            ArgKind::Int => "an integer",
            ArgKind::Num => "a number",
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct TimeFunction {
    name: &'static str,
    aliases: Vec<String>,
    kind: Kind,
    signature: Signature,
}

impl TimeFunction {
    pub(super) fn udf(name: &'static str, aliases: &[&str], kind: Kind) -> ScalarUDF {
        ScalarUDF::from(TimeFunction {
            name,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }

    /// The SQL name used in messages.
    fn label(&self) -> String {
        match self.kind {
            Kind::Extract => "EXTRACT".to_string(),
            _ => self.name.to_ascii_uppercase(),
        }
    }

    /// The argument lists this function accepts.
    fn shapes(&self) -> &'static [&'static [ArgKind]] {
        use ArgKind::{Int, Num, Text, Ts};
        match self.kind {
            Kind::Add => &[&[Text, Ts, Int], &[Text, Ts, Int, Text]],
            Kind::Diff => &[&[Text, Ts, Ts], &[Text, Ts, Ts, Text]],
            Kind::Trunc | Kind::Extract | Kind::Strftime => &[&[Text, Ts], &[Text, Ts, Text]],
            Kind::ToTimestampMs => &[&[Int]],
            Kind::ToEpochMs => &[&[Ts]],
            Kind::Parse(_) => &[&[Text], &[Text, Text]],
            Kind::Make(_) => &[
                &[Int, Int, Int],
                &[Int, Int, Int, Text],
                &[Int, Int, Int, Int, Int, Num],
                &[Int, Int, Int, Int, Int, Num, Text],
            ],
        }
    }
}

impl ScalarUDFImpl for TimeFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let label = self.label();
        let shapes = self.shapes();
        let Some(shape) = shapes.iter().find(|s| s.len() == arg_types.len()) else {
            let counts: Vec<String> = shapes.iter().map(|s| s.len().to_string()).collect();
            let counts = or_list(&counts);
            return plan_err!("{label} takes {counts} arguments, not {}", arg_types.len());
        };
        shape
            .iter()
            .zip(arg_types)
            .enumerate()
            .map(|(i, (kind, t))| match kind.coerce(t) {
                Some(t) => Ok(t),
                None => plan_err!(
                    "{label}: argument {} must be {}, not {t}",
                    i + 1,
                    kind.describe()
                ),
            })
            .collect()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            Kind::Add | Kind::Trunc => match arg_types.get(1) {
                Some(DataType::Timestamp(unit, tz)) => DataType::Timestamp(*unit, tz.clone()),
                _ => DataType::Timestamp(TimeUnit::Microsecond, None),
            },
            Kind::Diff | Kind::ToEpochMs | Kind::Extract => DataType::Int64,
            Kind::ToTimestampMs => DataType::Timestamp(TimeUnit::Millisecond, None),
            Kind::Parse(unit) | Kind::Make(unit) => DataType::Timestamp(unit, None),
            Kind::Strftime => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let call = Call::new(self.label(), &args);
        let args = &args.args;
        match self.kind {
            Kind::Add => arithmetic::invoke_add(&call, args),
            Kind::Diff => arithmetic::invoke_diff(&call, args),
            Kind::Trunc => trunc_extract::invoke_trunc(&call, args),
            Kind::Extract => trunc_extract::invoke_extract(&call, args),
            Kind::Strftime => format::invoke_strftime(&call, args),
            Kind::ToTimestampMs => construct::invoke_to_timestamp_ms(&call, args),
            Kind::ToEpochMs => construct::invoke_to_epoch_ms(&call, args),
            Kind::Parse(unit) => parse::invoke_parse(&call, args, unit),
            Kind::Make(unit) => construct::invoke_make(&call, args, unit),
        }
    }
}
