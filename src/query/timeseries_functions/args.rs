//! The arguments of the time-series table functions: constants folded from expressions, time
//! arguments kept at their own precision ([`Instant`]), the table and its TIMESTAMP key, the
//! interpolated column and the sampling interval, each checked with the error the module
//! documentation lists.

use std::sync::Arc;

use chrono::Utc;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;

use super::series::Series;
use crate::error::{KuraError, sqlstate};
use crate::storage::Catalog;

/// One call being planned: the SQL function's name (for messages) and its session.
pub(super) struct Call<'a> {
    pub(super) function: &'static str,
    pub(super) session: &'a dyn Session,
}

impl Call<'_> {
    pub(super) fn error(&self, code: &'static str, message: impl std::fmt::Display) -> KuraError {
        KuraError::new(code, format!("{}: {message}", self.function))
    }

    pub(super) fn arity(&self, args: &[Expr], signature: &str) -> Result<(), KuraError> {
        let wanted = signature.split(',').count();
        if args.len() == wanted {
            return Ok(());
        }
        Err(self
            .error(
                sqlstate::UNDEFINED_FUNCTION,
                format!("takes {wanted} arguments, not {}", args.len()),
            )
            .with_hint(format!(
                "Call it as {}({signature}).",
                self.function.to_lowercase()
            )))
    }

    /// Argument `position` (from 1) as a constant, after constant folding.
    pub(super) fn constant(
        &self,
        args: &[Expr],
        position: usize,
    ) -> Result<ScalarValue, KuraError> {
        let expr = position
            .checked_sub(1)
            .and_then(|i| args.get(i))
            .ok_or_else(|| KuraError::internal("missing table function argument"))?;
        if let Expr::Literal(value, _) = expr {
            return Ok(value.clone());
        }
        let start = self
            .session
            .execution_props()
            .query_execution_start_time
            .unwrap_or_else(Utc::now);
        let context = SimplifyContext::builder()
            .with_config_options(Arc::new(self.session.config_options().clone()))
            .with_schema(Arc::new(DFSchema::empty()))
            .with_query_execution_start_time(Some(start))
            .build();
        let simplified = ExprSimplifier::new(context)
            .simplify(expr.clone())
            .map_err(KuraError::from)?;
        match simplified {
            Expr::Literal(value, _) => Ok(value),
            other => Err(self.error(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("argument {position} must be a constant, not {other}"),
            )),
        }
    }

    /// A string argument (a table or column name, a unit).
    pub(super) fn text(
        &self,
        args: &[Expr],
        position: usize,
        what: &str,
    ) -> Result<String, KuraError> {
        match self.constant(args, position)? {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Ok(s),
            v if v.is_null() => Err(self.error(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("the {what} must not be NULL"),
            )),
            v => Err(self.error(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "argument {position} ({what}) must be a string, not {}",
                    v.data_type()
                ),
            )),
        }
    }

    /// A point in time, at the precision it was given in (at least the key's); None for NULL.
    pub(super) fn instant(
        &self,
        args: &[Expr],
        position: usize,
        key_unit: TimeUnit,
    ) -> Result<Option<Instant>, KuraError> {
        let value = self.constant(args, position)?;
        if value.is_null() {
            return Ok(None);
        }
        let attempts: Vec<TimeUnit> = match value.data_type() {
            DataType::Timestamp(unit, _) => vec![finer(unit, key_unit)],
            DataType::Date32 | DataType::Date64 => vec![key_unit],
            // Text is read at nanosecond precision where that range (1677-2262) allows.
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                vec![TimeUnit::Nanosecond, finer(TimeUnit::Microsecond, key_unit)]
            }
            other => {
                return Err(self.error(
                    sqlstate::DATATYPE_MISMATCH,
                    format!("argument {position} must be a TIMESTAMP, not {other}"),
                ));
            }
        };
        let mut failure = None;
        for unit in attempts {
            match value.cast_to(&DataType::Timestamp(unit, None)) {
                Ok(cast) => {
                    if let Some(value) = timestamp_value(&cast) {
                        return Ok(Some(Instant { value, unit }));
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        Err(match failure {
            Some(e) => {
                let k = KuraError::from(e);
                self.error(k.code, k.message)
            }
            None => self.error(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("argument {position} is not a valid TIMESTAMP"),
            ),
        })
    }

    /// The table a call reads, with its time key.
    pub(super) fn series(&self, catalog: &Catalog, name: &str) -> Result<Series, KuraError> {
        let Some(table) = catalog.table(name) else {
            if catalog.view(name).is_some() {
                return Err(self.error(
                    sqlstate::WRONG_OBJECT_TYPE,
                    format!("\"{name}\" is a view; time-series functions read tables"),
                ));
            }
            let e = KuraError::undefined_table(name);
            return Err(self.error(e.code, e.message));
        };
        let def = table.def();
        let key = def.primary_key.first().copied();
        let key_type = key.and_then(|k| def.schema().fields().get(k).map(|f| f.data_type()));
        let Some(DataType::Timestamp(unit, zone)) = key_type.cloned() else {
            return Err(self
                .error(
                    sqlstate::DATATYPE_MISMATCH,
                    format!("table \"{}\" has no TIMESTAMP row key", def.name),
                )
                .with_hint(
                    "The time-series functions need a table whose first primary-key column is a TIMESTAMP.",
                ));
        };
        Ok(Series {
            table,
            key: key.unwrap_or(0),
            unit,
            zone,
            def,
        })
    }

    /// The column a call interpolates (None for `'*'` when `star` allows it).
    pub(super) fn value_column(
        &self,
        series: &Series,
        name: &str,
        star: bool,
    ) -> Result<Option<usize>, KuraError> {
        if star && name == "*" {
            return Ok(None);
        }
        let Some(c) = series.def.column_index(name) else {
            let e = KuraError::undefined_column(name);
            return Err(self.error(e.code, e.message));
        };
        let data_type = series.def.schema().field(c).data_type();
        if !data_type.is_numeric() {
            return Err(self.error(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "column \"{}\" is not numeric and cannot be interpolated",
                    series.def.columns[c].name
                ),
            ));
        }
        Ok(Some(c))
    }
}

fn timestamp_value(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::TimestampSecond(v, _)
        | ScalarValue::TimestampMillisecond(v, _)
        | ScalarValue::TimestampMicrosecond(v, _)
        | ScalarValue::TimestampNanosecond(v, _) => *v,
        _ => None,
    }
}

pub(super) fn per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

fn finer(a: TimeUnit, b: TimeUnit) -> TimeUnit {
    if per_second(a) >= per_second(b) { a } else { b }
}

/// A time argument: `value` in `unit`, which is never coarser than the key's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Instant {
    pub(super) value: i64,
    pub(super) unit: TimeUnit,
}

impl Instant {
    pub(super) fn factor(&self, key_unit: TimeUnit) -> i64 {
        (per_second(self.unit) / per_second(key_unit)).max(1)
    }

    /// The latest key value not after this instant.
    pub(super) fn floor(&self, key_unit: TimeUnit) -> i64 {
        self.value.div_euclid(self.factor(key_unit))
    }

    /// The earliest key value not before this instant.
    pub(super) fn ceil(&self, key_unit: TimeUnit) -> i64 {
        let f = self.factor(key_unit);
        self.value.div_euclid(f) + i64::from(self.value.rem_euclid(f) != 0)
    }
}

/// The sampling interval `k` `unit` (arguments 5 and 6), in units of the key.
pub(super) fn sampling_step(
    call: &Call,
    args: &[Expr],
    key_unit: TimeUnit,
) -> Result<i64, KuraError> {
    let k = match call.constant(args, 5)? {
        ScalarValue::Int8(Some(k)) => i64::from(k),
        ScalarValue::Int16(Some(k)) => i64::from(k),
        ScalarValue::Int32(Some(k)) => i64::from(k),
        ScalarValue::Int64(Some(k)) => k,
        ScalarValue::UInt8(Some(k)) => i64::from(k),
        ScalarValue::UInt16(Some(k)) => i64::from(k),
        ScalarValue::UInt32(Some(k)) => i64::from(k),
        ScalarValue::UInt64(Some(k)) => i64::try_from(k).unwrap_or(i64::MAX),
        v if v.is_null() => {
            return Err(call.error(
                sqlstate::INVALID_PARAMETER_VALUE,
                "the sampling interval must not be NULL",
            ));
        }
        v => {
            return Err(call.error(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "the sampling interval must be an integer, not {}",
                    v.data_type()
                ),
            ));
        }
    };
    if k <= 0 {
        return Err(call.error(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("the sampling interval must be positive, not {k}"),
        ));
    }
    let unit = call.text(args, 6, "unit")?;
    let unit_nanos: i64 = match unit.to_ascii_uppercase().as_str() {
        "DAY" => 86_400_000_000_000,
        "HOUR" => 3_600_000_000_000,
        "MINUTE" => 60_000_000_000,
        "SECOND" => 1_000_000_000,
        "MILLISECOND" => 1_000_000,
        _ => {
            return Err(call
                .error(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("unknown sampling unit \"{unit}\""),
                )
                .with_hint("Use DAY, HOUR, MINUTE, SECOND or MILLISECOND."));
        }
    };
    let key_nanos = 1_000_000_000 / per_second(key_unit);
    if unit_nanos % key_nanos != 0 {
        return Err(call.error(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("the key of this table cannot hold {unit} steps"),
        ));
    }
    k.checked_mul(unit_nanos / key_nanos).ok_or_else(|| {
        call.error(
            sqlstate::DATETIME_FIELD_OVERFLOW,
            format!("the sampling interval {k} {unit} is out of range"),
        )
    })
}
