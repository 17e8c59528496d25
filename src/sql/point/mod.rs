//! Point statements: the primary-key lookup `SELECT cols FROM t WHERE key = v`, the single-row
//! `UPDATE t SET c = v | c = c ± v WHERE key = v`, and `INSERT INTO t [(cols)] VALUES (...)`
//! of parameters and plain literals. They run on the storage directly: DataFusion's planning
//! costs far more than such a statement's work (see benches/README.md).
//!
//! Invariants:
//! - A point statement does exactly what the general path does: the same rows and versions,
//!   the same locks and conflict checks (the writes go through the same `dml` functions), the
//!   same result schema. Recognition is conservative: any clause, type or value outside the
//!   shapes here makes it answer `None`, and the statement takes the general path.
//! - A value is used only when its type is the column's own (after exact integer narrowing),
//!   so no cast rule of the general path has to be repeated here.

mod insert;
mod select;
mod update;

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, ObjectName, TableFactor, TableWithJoins, UnaryOperator, Value,
};

use super::names::{normalize, relation_name};
use crate::error::Result;
use crate::storage::chunk::RowId;
use crate::storage::index::IndexKey;
use crate::storage::partition::fetch_rows;
use crate::storage::{Table, TableDef};

use super::exec::Exec;

/// A value written in the statement: a parameter (`$n`, zero-based here) or a literal.
#[derive(Debug, Clone)]
enum Operand {
    Param(usize),
    Literal(ScalarValue),
}

impl Operand {
    fn parse(expr: &Expr) -> Option<Operand> {
        match expr {
            Expr::Nested(inner) => Operand::parse(inner),
            Expr::Value(value) => match &value.value {
                Value::Placeholder(p) => {
                    let n: usize = p.strip_prefix('$')?.parse().ok()?;
                    Some(Operand::Param(n.checked_sub(1)?))
                }
                Value::Number(n, false) => n
                    .parse::<i64>()
                    .ok()
                    .map(|v| Operand::Literal(ScalarValue::Int64(Some(v)))),
                Value::SingleQuotedString(s) => {
                    Some(Operand::Literal(ScalarValue::Utf8(Some(s.clone()))))
                }
                Value::Boolean(b) => Some(Operand::Literal(ScalarValue::Boolean(Some(*b)))),
                Value::Null => Some(Operand::Literal(ScalarValue::Null)),
                _ => None,
            },
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match expr.as_ref() {
                Expr::Value(value) => match &value.value {
                    Value::Number(n, false) => format!("-{n}")
                        .parse::<i64>()
                        .ok()
                        .map(|v| Operand::Literal(ScalarValue::Int64(Some(v)))),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        }
    }

    /// The value as `target`, or None when the general path must decide (another type, or a
    /// conversion that is not exact).
    fn value(&self, params: &ParamValues, target: &DataType) -> Option<ScalarValue> {
        let value = match self {
            Operand::Param(i) => match params {
                ParamValues::List(list) => list.get(*i)?.value.clone(),
                ParamValues::Map(_) => return None,
            },
            Operand::Literal(v) => v.clone(),
        };
        exact_value(value, target)
    }
}

/// A query without WITH, ORDER BY, LIMIT, FETCH, locking or other clauses around its body.
fn plain_query(query: &datafusion::sql::sqlparser::ast::Query) -> bool {
    query.with.is_none()
        && query.order_by.is_none()
        && query.limit_clause.is_none()
        && query.fetch.is_none()
        && query.locks.is_empty()
        && query.for_clause.is_none()
        && query.settings.is_none()
        && query.format_clause.is_none()
        && query.pipe_operators.is_empty()
}

/// `value` as a value of `target` when it already is one, is NULL, or is an integer that fits
/// an integer `target`.
fn exact_value(value: ScalarValue, target: &DataType) -> Option<ScalarValue> {
    let from = value.data_type();
    if &from == target {
        return Some(value);
    }
    if value.is_null() {
        return ScalarValue::try_from(target).ok();
    }
    if from.is_integer() && target.is_integer() {
        return value.cast_to(target).ok();
    }
    None
}

/// The table a point statement names: a plain table reference with an optional alias, to a
/// table without expiry (expired partitions are the general scan's to hide) whose data
/// partition is determined by its primary key.
struct Target {
    table: Arc<Table>,
    def: Arc<TableDef>,
    /// The name columns may be qualified with (the alias, else the table name).
    qualifier: String,
}

impl Target {
    fn of(exec: &Exec<'_>, from: &TableWithJoins) -> Option<Target> {
        if !from.joins.is_empty() {
            return None;
        }
        let TableFactor::Table {
            name,
            alias,
            args: None,
            with_hints,
            version: None,
            with_ordinality: false,
            partitions,
            json_path: None,
            sample: None,
            index_hints,
        } = &from.relation
        else {
            return None;
        };
        if !with_hints.is_empty() || !partitions.is_empty() || !index_hints.is_empty() {
            return None;
        }
        if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
            return None;
        }
        let target = Target::named(exec, name)?;
        Some(Target {
            qualifier: alias
                .as_ref()
                .map_or(target.qualifier, |a| normalize(&a.name)),
            ..target
        })
    }

    fn named(exec: &Exec<'_>, name: &ObjectName) -> Option<Target> {
        let table = exec.db.catalog.table(&relation_name(name).ok()?)?;
        let def = table.def();
        let keyed = !def.primary_key.is_empty()
            && def.placement.expiry.is_none()
            && def
                .partitioning()
                .key_columns()
                .all(|c| def.primary_key.contains(&c));
        keyed.then(|| Target {
            qualifier: def.name.clone(),
            table,
            def,
        })
    }

    /// The column an identifier names (`c` or `qualifier.c`).
    fn column(&self, expr: &Expr) -> Option<usize> {
        let name = match expr {
            Expr::Identifier(ident) => normalize(ident),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [qualifier, column] if normalize(qualifier) == self.qualifier => normalize(column),
                _ => return None,
            },
            Expr::Nested(inner) => return self.column(inner),
            _ => return None,
        };
        self.def.column_index(&name)
    }

    /// The primary-key values a WHERE clause of `key = value` conjuncts names, one per key
    /// column, in key order.
    fn key_operands(&self, selection: &Expr) -> Option<Vec<Operand>> {
        let mut found: Vec<Option<Operand>> = vec![None; self.def.primary_key.len()];
        self.collect_equalities(selection, &mut found)?;
        found.into_iter().collect()
    }

    fn collect_equalities(&self, expr: &Expr, found: &mut [Option<Operand>]) -> Option<()> {
        let Expr::BinaryOp { left, op, right } = expr else {
            return match expr {
                Expr::Nested(inner) => self.collect_equalities(inner, found),
                _ => None,
            };
        };
        match op {
            BinaryOperator::And => {
                self.collect_equalities(left, found)?;
                self.collect_equalities(right, found)
            }
            BinaryOperator::Eq => {
                let (column, operand) = match (self.column(left), self.column(right)) {
                    (Some(c), None) => (c, Operand::parse(right)?),
                    (None, Some(c)) => (c, Operand::parse(left)?),
                    _ => return None,
                };
                let slot = self.def.primary_key.iter().position(|k| *k == column)?;
                if found[slot].is_some() {
                    return None;
                }
                found[slot] = Some(operand);
                Some(())
            }
            _ => None,
        }
    }

    /// The key values as the key columns' types; None when one is not exactly of its type or
    /// is NULL (`key = NULL` matches nothing, which the general path reports as well).
    fn key(&self, operands: &[Operand], params: &ParamValues) -> Option<PointKey> {
        let values = operands
            .iter()
            .zip(&self.def.primary_key)
            .map(|(operand, column)| {
                let target = self.def.columns[*column].ty.arrow_type();
                operand.value(params, &target).filter(|v| !v.is_null())
            })
            .collect::<Option<Vec<_>>>()?;
        let key = self.def.primary_codec().ok()?.key_of_values(&values)?;
        Some(PointKey { values, key })
    }
}

/// The primary key a point statement names: its values and their key bytes.
struct PointKey {
    values: Vec<ScalarValue>,
    key: IndexKey,
}

/// The version of a primary-key value a statement sees.
enum Seen {
    /// The transaction's own uncommitted row at this position.
    Private(usize),
    /// A committed version visible at the snapshot.
    Base(RowId),
}

impl Exec<'_> {
    /// A point statement's outcome, or None when `statement` is not one.
    pub async fn run_point(
        &self,
        statement: &datafusion::sql::sqlparser::ast::Statement,
        params: &ParamValues,
    ) -> Result<Option<super::Outcome>> {
        use datafusion::sql::sqlparser::ast::Statement;
        match statement {
            Statement::Query(query) => self.point_select(query, params),
            Statement::Update(update) => self.point_update(update, params).await,
            Statement::Insert(insert) => self.point_insert(insert, params).await,
            _ => Ok(None),
        }
    }

    /// The version of `key` this statement sees: the transaction's own row, else the committed
    /// version visible at the snapshot that the transaction has not deleted.
    fn seen_version(&self, target: &Target, point: &PointKey) -> Result<Option<Seen>> {
        let def = &target.def;
        let Some(placed) = def.partitioning().key_of(|c| {
            let slot = def.primary_key.iter().position(|k| *k == c)?;
            point.values.get(slot)
        })?
        else {
            return Ok(None);
        };
        let unique = def.unique_key(point.key.clone(), placed);
        let writes = self.txn.writes.lock();
        if let Some(position) = writes.private_key(target.table.id(), &unique) {
            return Ok(Some(Seen::Private(position)));
        }
        let (Some(pk), Some(partition)) =
            (def.primary_index(), target.table.partition_by_key(&placed))
        else {
            return Ok(None);
        };
        let ts = self.snapshot.ts();
        let (snapshot, rows) = partition.lookup_key(pk.id, &point.key);
        for row in rows {
            let visible = snapshot.chunk(row.chunk()).is_some_and(|c| {
                row.offset() < c.len() && c.begin(row.offset()) <= ts && c.end(row.offset()) > ts
            });
            if visible && !writes.deleted_base(target.table.id(), row) {
                return Ok(Some(Seen::Base(row)));
            }
        }
        Ok(None)
    }

    /// The full row of a seen version, in the definition's shape.
    fn seen_row(
        &self,
        target: &Target,
        seen: &Seen,
    ) -> Result<datafusion::arrow::record_batch::RecordBatch> {
        let def = &target.def;
        match seen {
            Seen::Private(position) => {
                let row = self
                    .txn
                    .writes
                    .lock()
                    .private_row(target.table.id(), *position)?
                    .ok_or_else(|| crate::error::KuraError::internal("private row vanished"))?;
                def.widen(&row)
            }
            Seen::Base(row) => {
                let partition = target.table.partition(row.partition()).ok_or_else(|| {
                    crate::error::KuraError::internal("row in an unknown partition")
                })?;
                fetch_rows(&partition.snapshot(), def, &[*row])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(sql: &str) -> Option<Operand> {
        let expr = super::super::template::parse_expr(sql).unwrap();
        Operand::parse(&expr)
    }

    #[test]
    fn operands_are_parameters_and_plain_literals() {
        assert!(matches!(literal("$3"), Some(Operand::Param(2))));
        assert!(literal("$0").is_none());
        let params = ParamValues::List(Vec::new());
        let int = |sql: &str, ty: DataType| literal(sql).and_then(|o| o.value(&params, &ty));
        assert_eq!(
            int("-7", DataType::Int32),
            Some(ScalarValue::Int32(Some(-7)))
        );
        assert_eq!(
            int("(42)", DataType::Int16),
            Some(ScalarValue::Int16(Some(42)))
        );
        // Not exact: the general path decides (PostgreSQL compares 3000000000 as bigint).
        assert_eq!(int("3000000000", DataType::Int32), None);
        assert_eq!(int("'7'", DataType::Int32), None);
        assert_eq!(int("1.5", DataType::Float64), None);
        assert_eq!(int("NULL", DataType::Int32), Some(ScalarValue::Int32(None)));
        assert!(literal("1 + 1").is_none());
        assert!(literal("now()").is_none());
    }
}
