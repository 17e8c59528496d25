//! `UPDATE t [alias] SET c = v | c = c2 ± v | c = v ± c2, ... WHERE <every key column = value>`:
//! the one version the snapshot sees is replaced through `apply_updates`, which takes the key
//! lock and checks for concurrent changes exactly as the general UPDATE does.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::sqlparser::ast::{AssignmentTarget, BinaryOperator, Expr, Update};

use super::{Exec, Operand, Seen, Target};
use crate::error::{KuraError, Result, sqlstate};
use crate::sql::Outcome;
use crate::storage::chunk::RowId;

/// The new value of one column.
enum NewValue {
    Set(Operand),
    /// `column ± operand` (or `operand ± column` when `operand_first`), in 64-bit integers.
    Arithmetic {
        column: usize,
        subtract: bool,
        operand: Operand,
        operand_first: bool,
    },
}

struct PointUpdate {
    target: Target,
    key: Vec<Operand>,
    assignments: Vec<(usize, NewValue)>,
}

impl Exec<'_> {
    pub(super) async fn point_update(
        &self,
        update: &Update,
        params: &ParamValues,
    ) -> Result<Option<Outcome>> {
        let Some(point) = self.recognise_update(update) else {
            return Ok(None);
        };
        let Some(key) = point.target.key(&point.key, params) else {
            return Ok(None);
        };
        let def = &point.target.def;
        // Every value is checked before anything is written, so falling back is still possible.
        let mut sets = Vec::with_capacity(point.assignments.len());
        for (column, value) in &point.assignments {
            let target = def.columns[*column].ty.arrow_type();
            let ready = match value {
                NewValue::Set(operand) => Some(operand.value(params, &target)),
                NewValue::Arithmetic { operand, .. } if target.is_integer() => {
                    Some(operand.value(params, &DataType::Int64))
                }
                NewValue::Arithmetic { .. } => None,
            };
            let Some(Some(ready)) = ready else {
                return Ok(None);
            };
            sets.push((*column, ready));
        }
        let Some(seen) = self.seen_version(&point.target, &key)? else {
            return Ok(Some(Outcome::counted("UPDATE", 0)));
        };
        let old = self.seen_row(&point.target, &seen)?;
        let mut new_columns: Vec<ArrayRef> = old.columns().to_vec();
        for ((column, value), (_, ready)) in point.assignments.iter().zip(sets) {
            let target = def.columns[*column].ty.arrow_type();
            let new = match value {
                NewValue::Set(_) => ready,
                NewValue::Arithmetic {
                    column: source,
                    subtract,
                    operand_first,
                    ..
                } => {
                    let current = ScalarValue::try_from_array(old.column(*source), 0)?;
                    arithmetic(&current, &ready, *subtract, *operand_first, &target)?
                }
            };
            new_columns[*column] = new.to_array_of_size(1)?;
        }
        let row = match seen {
            Seen::Private(position) => RowId::private(position as u64),
            Seen::Base(row) => row,
        };
        let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(vec![row.0]))];
        columns.extend(new_columns);
        columns.extend(def.primary_key.iter().map(|c| old.column(*c).clone()));
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        let updated = self
            .apply_updates(&point.target.table, def, vec![batch], false)
            .await?;
        Ok(Some(Outcome::counted("UPDATE", updated.num_rows())))
    }

    fn recognise_update(&self, update: &Update) -> Option<PointUpdate> {
        let plain = update.optimizer_hints.is_empty()
            && update.from.is_none()
            && update.returning.is_none()
            && update.output.is_none()
            && update.or.is_none()
            && update.order_by.is_empty()
            && update.limit.is_none();
        if !plain {
            return None;
        }
        let target = Target::of(self, &update.table)?;
        let key = target.key_operands(update.selection.as_ref()?)?;
        let mut assignments: Vec<(usize, NewValue)> = Vec::new();
        for assignment in &update.assignments {
            let AssignmentTarget::ColumnName(name) = &assignment.target else {
                return None;
            };
            let [part] = name.0.as_slice() else {
                return None;
            };
            let column = target
                .def
                .column_index(&super::normalize(part.as_ident()?))?;
            let taken = assignments.iter().any(|(c, _)| *c == column);
            if taken || target.def.primary_key.contains(&column) {
                return None;
            }
            assignments.push((column, new_value(&target, &assignment.value)?));
        }
        Some(PointUpdate {
            target,
            key,
            assignments,
        })
    }
}

fn new_value(target: &Target, expr: &Expr) -> Option<NewValue> {
    if let Some(operand) = Operand::parse(expr) {
        return Some(NewValue::Set(operand));
    }
    let (left, op, right) = match expr {
        Expr::Nested(inner) => return new_value(target, inner),
        Expr::BinaryOp { left, op, right } => (left, op, right),
        _ => return None,
    };
    let subtract = match op {
        BinaryOperator::Plus => false,
        BinaryOperator::Minus => true,
        _ => return None,
    };
    let integer = |c: usize| target.def.columns[c].ty.arrow_type().is_integer();
    match (target.column(left), target.column(right)) {
        (Some(column), None) if integer(column) => Some(NewValue::Arithmetic {
            column,
            subtract,
            operand: Operand::parse(right)?,
            operand_first: false,
        }),
        (None, Some(column)) if integer(column) => Some(NewValue::Arithmetic {
            column,
            subtract,
            operand: Operand::parse(left)?,
            operand_first: true,
        }),
        _ => None,
    }
}

/// `current ± operand` as a value of the integer type `target`; NULL in, NULL out. Out of
/// range is 22003, as PostgreSQL reports integer overflow.
fn arithmetic(
    current: &ScalarValue,
    operand: &ScalarValue,
    subtract: bool,
    operand_first: bool,
    target: &DataType,
) -> Result<ScalarValue> {
    let as_i64 = |v: &ScalarValue| -> Result<Option<i64>> {
        match v.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(v) => Ok(v),
            _ => Err(KuraError::internal("integer cast")),
        }
    };
    let (Some(a), Some(b)) = (as_i64(current)?, as_i64(operand)?) else {
        return Ok(ScalarValue::try_from(target)?);
    };
    let (left, right) = if operand_first { (b, a) } else { (a, b) };
    let result = if subtract {
        left.checked_sub(right)
    } else {
        left.checked_add(right)
    };
    let out_of_range = || {
        let name = match target {
            DataType::Int8 | DataType::Int16 => "smallint",
            DataType::Int32 => "integer",
            _ => "bigint",
        };
        KuraError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{name} out of range"),
        )
    };
    let result = result.ok_or_else(out_of_range)?;
    ScalarValue::Int64(Some(result))
        .cast_to(target)
        .map_err(|_| out_of_range())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_checks_the_column_range() {
        let int = |v: i32| ScalarValue::Int32(Some(v));
        let long = |v: i64| ScalarValue::Int64(Some(v));
        let sum = arithmetic(&int(5), &long(3), false, false, &DataType::Int32).unwrap();
        assert_eq!(sum, int(8));
        let difference = arithmetic(&int(5), &long(3), true, true, &DataType::Int32).unwrap();
        assert_eq!(difference, int(-2));
        let overflow = arithmetic(&int(i32::MAX), &long(1), false, false, &DataType::Int32);
        assert_eq!(
            overflow.unwrap_err().code,
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE
        );
        let wide = arithmetic(&long(i64::MAX), &long(1), false, false, &DataType::Int64);
        assert!(wide.unwrap_err().message.contains("bigint"));
        let null = arithmetic(
            &ScalarValue::Int32(None),
            &long(1),
            false,
            false,
            &DataType::Int32,
        );
        assert_eq!(null.unwrap(), ScalarValue::Int32(None));
    }
}
