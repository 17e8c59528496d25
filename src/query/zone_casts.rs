//! The session time zone (`TimeZone`) in plans and in stored rows.
//!
//! Kura keeps every `timestamptz` as an instant; Arrow labels it with a time zone that only
//! says how the instant is shown and split into fields. Stored columns are labelled UTC and the
//! session zone reaches a statement through DataFusion's `execution.time_zone`. PostgreSQL
//! reads and splits instants in the session zone, so wherever the label would leak into a
//! result this module puts the session zone in its place:
//!
//! - text or `timestamp` cast to `timestamptz`: zone-less values are local times in the
//!   session zone (`'2024-01-01 09:00'` in Tokyo is 00:00 UTC);
//! - `timestamptz` cast to `timestamp`, `date` or `time`: the local time in the session zone;
//! - `date_part`/`EXTRACT`, `date_trunc` and `to_char` of a `timestamptz`: fields of the local
//!   time in the session zone;
//! - timestamps cast to text: PostgreSQL's text form (in every session, UTC included), which
//!   for a `timestamptz` is the local time in the session zone and its offset.
//!
//! Invariants: a rewritten expression has the type it had before, so plan schemas never
//! change; rewriting is idempotent; in a UTC session nothing is rewritten.

use std::sync::Arc;

use chrono::{Offset, TimeZone};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DataType, FieldRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::datatype::DataTypeExt;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::error::{KuraError, Result};

/// The Arrow label of stored `timestamptz` columns.
pub const STORED_ZONE: &str = crate::types::UTC;

/// The session zone a statement runs in, as an Arrow time-zone label.
/// The zone a statement of `session` runs in, as an Arrow label (the stored zone for internal
/// statements, which have no session).
pub fn session_zone(session: Option<&crate::session::view::SessionView>) -> String {
    match session {
        Some(session) => session.settings.zone().arrow_label(),
        None => STORED_ZONE.to_string(),
    }
}

pub fn statement_zone(config: &ConfigOptions) -> &str {
    config.execution.time_zone.as_deref().unwrap_or(STORED_ZONE)
}

/// The zone stored `timestamptz` columns are labelled with, as an Arrow zone.
pub fn stored_tz() -> Result<Tz> {
    Ok(STORED_ZONE.parse()?)
}

fn is_utc(label: &str) -> bool {
    matches!(label, "UTC" | "+00:00" | "Z" | "Etc/UTC")
}

/// Functions whose result depends on the zone an instant is read in.
fn zone_sensitive(function: &str) -> bool {
    matches!(function, "date_part" | "date_trunc" | "to_char")
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The analyzer rule that applies the session zone (see module docs). It runs after type
/// coercion, when every cast it looks at is explicit.
#[derive(Debug, Default)]
pub struct SessionZoneCasts;

impl AnalyzerRule for SessionZoneCasts {
    fn name(&self) -> &str {
        "kura_session_zone_casts"
    }

    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let zone: Arc<str> = Arc::from(statement_zone(config));
        plan.transform_up_with_subqueries(|node| {
            let schema = datafusion::logical_expr::utils::merge_schema(&node.inputs());
            let schema = match &node {
                LogicalPlan::TableScan(scan) => scan.projected_schema.as_ref().clone(),
                _ => schema,
            };
            node.map_expressions(|e| e.transform_up(|e| in_session_zone(e, &schema, &zone)))
        })
        .map(|t| t.data)
    }
}

/// `expr` relabelled to the session zone: same instants, local fields in `zone`.
fn relabel(expr: Expr, unit: TimeUnit, zone: &Arc<str>) -> Expr {
    Expr::Cast(Cast::new(
        Box::new(expr),
        DataType::Timestamp(unit, Some(zone.clone())),
    ))
}

/// `expr` cast to `field`'s type, as a `TRY_CAST` when `try_cast`.
fn recast(expr: Expr, field: FieldRef, try_cast: bool) -> Expr {
    if try_cast {
        Expr::TryCast(TryCast::new_from_field(Box::new(expr), field))
    } else {
        Expr::Cast(Cast::new_from_field(Box::new(expr), field))
    }
}

fn in_session_zone(expr: Expr, schema: &DFSchema, zone: &Arc<str>) -> DfResult<Transformed<Expr>> {
    let utc = is_utc(zone);
    let (inner, field, try_cast) = match &expr {
        Expr::Cast(Cast { expr, field }) => (expr.as_ref(), field, false),
        Expr::TryCast(TryCast { expr, field }) => (expr.as_ref(), field, true),
        Expr::ScalarFunction(call) if !utc && zone_sensitive(call.func.name()) => {
            return function_in_zone(expr, schema, zone);
        }
        _ => return Ok(Transformed::no(expr)),
    };
    let Ok(from) = inner.get_type(schema) else {
        return Ok(Transformed::no(expr));
    };
    // The operand is copied only by a rewrite.
    let inner_owned = || inner.clone();
    let field = field.clone();
    let zoned = |unit: TimeUnit| DataType::Timestamp(unit, Some(zone.clone()));
    let rewritten = match (&from, field.data_type()) {
        (DataType::Timestamp(unit, label), to) if is_text(to) => {
            let shown = match label {
                Some(_) => relabel(inner_owned(), *unit, zone),
                None => inner_owned(),
            };
            let text = ScalarUDF::from(TimestampText::new()).call(vec![shown]);
            recast(text, field, try_cast)
        }
        _ if utc => return Ok(Transformed::no(expr)),
        (source, DataType::Timestamp(unit, Some(label)))
            if (is_text(source) || matches!(source, DataType::Timestamp(_, None)))
                && label != zone =>
        {
            let local = recast(
                inner_owned(),
                zoned(*unit).into_nullable_field_ref(),
                try_cast,
            );
            Expr::Cast(Cast::new_from_field(Box::new(local), field))
        }
        (DataType::Timestamp(unit, Some(_)), DataType::Timestamp(_, None)) => {
            let local = datafusion::functions::datetime::to_local_time().call(vec![relabel(
                inner_owned(),
                *unit,
                zone,
            )]);
            recast(local, field, try_cast)
        }
        (
            DataType::Timestamp(unit, Some(label)),
            DataType::Date32 | DataType::Date64 | DataType::Time32(_) | DataType::Time64(_),
        ) if label != zone => recast(relabel(inner_owned(), *unit, zone), field, try_cast),
        _ => return Ok(Transformed::no(expr)),
    };
    Ok(Transformed::yes(rewritten))
}

/// A zone-sensitive function call with its `timestamptz` arguments read in the session zone;
/// a `timestamptz` result is relabelled back, so the call keeps its type.
fn function_in_zone(expr: Expr, schema: &DFSchema, zone: &Arc<str>) -> DfResult<Transformed<Expr>> {
    let Ok(result_type) = expr.get_type(schema) else {
        return Ok(Transformed::no(expr));
    };
    let Expr::ScalarFunction(ScalarFunction { func, args }) = expr else {
        return Ok(Transformed::no(expr));
    };
    let mut changed = false;
    let args = args
        .into_iter()
        .map(|arg| match arg.get_type(schema) {
            Ok(DataType::Timestamp(unit, Some(label))) if label != *zone => {
                changed = true;
                relabel(arg, unit, zone)
            }
            _ => arg,
        })
        .collect();
    let call = Expr::ScalarFunction(ScalarFunction { func, args });
    if !changed {
        return Ok(Transformed::no(call));
    }
    Ok(Transformed::yes(match result_type {
        DataType::Timestamp(_, Some(_)) => Expr::Cast(Cast::new(Box::new(call), result_type)),
        _ => call,
    }))
}

/// `__kura_timestamp_text(ts)`: PostgreSQL's text form of a timestamp, a `timestamptz` shown in
/// the zone it is labelled with (the rule labels it with the session zone first).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TimestampText {
    signature: Signature,
}

impl TimestampText {
    fn new() -> TimestampText {
        TimestampText {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TimestampText {
    fn name(&self) -> &str {
        "__kura_timestamp_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(KuraError::internal("__kura_timestamp_text takes one argument").into());
        };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let column = arg.to_array(args.number_rows)?;
        let zone: Tz = match column.data_type() {
            DataType::Timestamp(_, Some(label)) => label.parse()?,
            _ => STORED_ZONE.parse()?,
        };
        let text: ArrayRef = Arc::new(crate::server::text::format_column(&column, &zone));
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&text, 0)?)
        } else {
            ColumnarValue::Array(text)
        })
    }
}

/// Casts a column of written values to a stored type the way the session reads them: text and
/// `timestamp` become instants as local times in `zone`, and `timestamptz` becomes the local
/// time in `zone`. Every other cast is Arrow's.
pub fn cast_in_zone(
    array: &ArrayRef,
    target: &DataType,
    zone: &str,
    options: &CastOptions,
) -> Result<ArrayRef> {
    if is_utc(zone) {
        return Ok(cast_with_options(array, target, options)?);
    }
    let zoned = |unit: TimeUnit| DataType::Timestamp(unit, Some(Arc::from(zone)));
    match (array.data_type(), target) {
        (source, DataType::Timestamp(unit, Some(label)))
            if (is_text(source) || matches!(source, DataType::Timestamp(_, None)))
                && label.as_ref() != zone =>
        {
            let local = cast_with_options(array, &zoned(*unit), options)?;
            Ok(cast_with_options(&local, target, options)?)
        }
        (DataType::Timestamp(unit, Some(_)), DataType::Timestamp(_, None)) => {
            let local = local_times(array, *unit, zone)?;
            Ok(cast_with_options(&local, target, options)?)
        }
        _ => Ok(cast_with_options(array, target, options)?),
    }
}

/// The wall-clock times in `zone` of a `timestamptz` column, as a zone-less column.
fn local_times(array: &ArrayRef, unit: TimeUnit, zone: &str) -> Result<ArrayRef> {
    let tz: Tz = zone.parse()?;
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let shift = |value: i64| -> Option<i64> {
        let seconds = value.div_euclid(per_second);
        let utc = chrono::DateTime::from_timestamp(seconds, 0)?.naive_utc();
        let offset = i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc());
        value.checked_add(offset.checked_mul(per_second)?)
    };
    fn shifted<T: datafusion::arrow::datatypes::ArrowTimestampType>(
        array: &ArrayRef,
        shift: impl Fn(i64) -> Option<i64>,
    ) -> ArrayRef {
        let values: PrimitiveArray<T> = array
            .as_primitive::<T>()
            .iter()
            .map(|v| v.and_then(&shift))
            .collect();
        Arc::new(values)
    }
    let out = match unit {
        TimeUnit::Second => shifted::<TimestampSecondType>(array, shift),
        TimeUnit::Millisecond => shifted::<TimestampMillisecondType>(array, shift),
        TimeUnit::Microsecond => shifted::<TimestampMicrosecondType>(array, shift),
        TimeUnit::Nanosecond => shifted::<TimestampNanosecondType>(array, shift),
    };
    if out.null_count() != array.null_count() {
        return Err(KuraError::new(
            crate::error::sqlstate::DATETIME_FIELD_OVERFLOW,
            "timestamp out of range",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;

    const STRICT: CastOptions<'static> = CastOptions {
        safe: false,
        format_options: datafusion::arrow::util::display::FormatOptions::new(),
    };

    fn micros(array: &ArrayRef) -> i64 {
        array.as_primitive::<TimestampMicrosecondType>().value(0)
    }

    #[test]
    fn zone_less_text_is_local_time_in_the_session_zone() {
        let text: ArrayRef = Arc::new(StringArray::from(vec!["2024-01-01 09:00:00"]));
        let stored = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(STORED_ZONE)));
        let tokyo = cast_in_zone(&text, &stored, "Asia/Tokyo", &STRICT).unwrap();
        assert_eq!(micros(&tokyo), 1_704_067_200_000_000);
        let utc = cast_in_zone(&text, &stored, "UTC", &STRICT).unwrap();
        assert_eq!(micros(&utc), 1_704_099_600_000_000);
        let with_offset: ArrayRef = Arc::new(StringArray::from(vec!["2024-01-01 00:00:00+00"]));
        let explicit = cast_in_zone(&with_offset, &stored, "Asia/Tokyo", &STRICT).unwrap();
        assert_eq!(micros(&explicit), 1_704_067_200_000_000);
    }

    #[test]
    fn instants_become_local_times_in_the_session_zone() {
        let instant: ArrayRef = Arc::new(
            PrimitiveArray::<TimestampMicrosecondType>::from(vec![
                Some(1_704_067_200_000_000),
                None,
            ])
            .with_timezone(STORED_ZONE),
        );
        let local = cast_in_zone(
            &instant,
            &DataType::Timestamp(TimeUnit::Microsecond, None),
            "Asia/Tokyo",
            &STRICT,
        )
        .unwrap();
        assert_eq!(micros(&local), 1_704_099_600_000_000);
        assert!(local.is_null(1));
    }
}
