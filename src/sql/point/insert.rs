//! `INSERT INTO t [(columns)] VALUES (...), ...` whose values are parameters and plain literals
//! of the columns' own types, and whose unlisted columns have no default: the rows are built
//! directly and written through the same placing, conforming and key checks as any INSERT.

use datafusion::arrow::array::{ArrayRef, new_null_array};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::sqlparser::ast::{Insert, SetExpr, TableObject};

use super::{Exec, Operand};
use crate::error::Result;
use crate::sql::Outcome;
use crate::sql::names::{normalize, relation_name};
use crate::sql::rows::conform;

impl Exec<'_> {
    pub(super) async fn point_insert(
        &self,
        insert: &Insert,
        params: &ParamValues,
    ) -> Result<Option<Outcome>> {
        let Some((table, rows)) = self.recognise_insert(insert) else {
            return Ok(None);
        };
        let def = table.def();
        let width = def.columns.len();
        let mut values: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(rows.len()); width];
        let listed: Vec<usize> = rows
            .first()
            .map_or(Vec::new(), |r| r.iter().map(|(c, _)| *c).collect());
        for row in &rows {
            for (column, operand) in row {
                let Some(value) = operand.value(params, &def.columns[*column].ty.arrow_type())
                else {
                    return Ok(None);
                };
                values[*column].push(value);
            }
        }
        let count = rows.len();
        let columns = values
            .into_iter()
            .enumerate()
            .map(|(column, values)| {
                let ty = def.columns[column].ty.arrow_type();
                if listed.contains(&column) {
                    Ok(ScalarValue::iter_to_array(values)?)
                } else {
                    Ok(new_null_array(&ty, count))
                }
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let on_conflict = crate::sql::dml::conflict_mode(insert, &def)?;
        let batch = conform(&def, columns, count, self.zone())?;
        let (batch, placed) = self.place_rows(&def, batch)?;
        let written = self
            .write_inserts(&table, &def, batch, &placed, on_conflict)
            .await?;
        Ok(Some(Outcome::counted("INSERT 0", written.num_rows())))
    }

    /// The table and, per VALUES row, the column and operand of each value.
    #[allow(clippy::type_complexity)]
    fn recognise_insert(
        &self,
        insert: &Insert,
    ) -> Option<(
        std::sync::Arc<crate::storage::Table>,
        Vec<Vec<(usize, Operand)>>,
    )> {
        let plain = insert.optimizer_hints.is_empty()
            && insert.or.is_none()
            && !insert.ignore
            && !insert.overwrite
            && insert.assignments.is_empty()
            && insert.partitioned.is_none()
            && insert.after_columns.is_empty()
            && insert.returning.is_none()
            && insert.output.is_none()
            && !insert.replace_into
            && insert.priority.is_none()
            && insert.insert_alias.is_none()
            && insert.settings.is_none()
            && insert.format_clause.is_none()
            && insert.multi_table_insert_type.is_none();
        let TableObject::TableName(name) = &insert.table else {
            return None;
        };
        let source = insert.source.as_ref()?;
        let plain_source = super::plain_query(source);
        let SetExpr::Values(values) = source.body.as_ref() else {
            return None;
        };
        if !plain || !plain_source {
            return None;
        }
        let table = self.db.catalog.table(&relation_name(name).ok()?)?;
        let def = table.def();
        let columns: Vec<usize> = if insert.columns.is_empty() {
            (0..def.columns.len()).collect()
        } else {
            let mut columns = Vec::with_capacity(insert.columns.len());
            for name in &insert.columns {
                let [part] = name.0.as_slice() else {
                    return None;
                };
                let column = def.column_index(&normalize(part.as_ident()?))?;
                if columns.contains(&column) {
                    return None;
                }
                columns.push(column);
            }
            columns
        };
        let unlisted_have_no_default = (0..def.columns.len())
            .filter(|c| !columns.contains(c))
            .all(|c| def.columns[c].default.is_none());
        if !unlisted_have_no_default || values.rows.is_empty() {
            return None;
        }
        let mut rows = Vec::with_capacity(values.rows.len());
        for row in &values.rows {
            if row.content.len() != columns.len() {
                return None;
            }
            let operands = row
                .content
                .iter()
                .zip(&columns)
                .map(|(expr, column)| Some((*column, Operand::parse(expr)?)))
                .collect::<Option<Vec<_>>>()?;
            rows.push(operands);
        }
        Some((table, rows))
    }
}
