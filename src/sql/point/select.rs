//! `SELECT <columns | *> FROM t [alias] WHERE <every key column = value>`: at most one row, read
//! through the primary-key index at the statement's snapshot.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::{GroupByExpr, Query, Select, SelectItem, SetExpr};

use super::{Exec, Operand, Target};
use crate::error::Result;
use crate::query::provider::column_field;
use crate::sql::Outcome;
use crate::sql::names::normalize;

/// A recognised point SELECT: its table, the key values and the output columns.
struct PointSelect {
    target: Target,
    key: Vec<Operand>,
    /// Table column and output name of each result column.
    columns: Vec<(usize, String)>,
}

impl Exec<'_> {
    pub(super) fn point_select(
        &self,
        query: &Query,
        params: &ParamValues,
    ) -> Result<Option<Outcome>> {
        let Some(point) = self.recognise_select(query) else {
            return Ok(None);
        };
        let Some(key) = point.target.key(&point.key, params) else {
            return Ok(None);
        };
        let def = &point.target.def;
        let schema = Arc::new(Schema::new(
            point
                .columns
                .iter()
                .map(|(column, name)| column_field(def, *column).with_name(name))
                .collect::<Vec<Field>>(),
        ));
        let schema = crate::sql::colnames::pg_query_schema(query, schema);
        let batches = match self.seen_version(&point.target, &key)? {
            None => Vec::new(),
            Some(seen) => {
                let row = self.seen_row(&point.target, &seen)?;
                let columns = point
                    .columns
                    .iter()
                    .map(|(column, _)| row.column(*column).clone())
                    .collect();
                vec![RecordBatch::try_new(schema.clone(), columns)?]
            }
        };
        Ok(Some(Outcome::rows(schema, batches, "SELECT")))
    }

    fn recognise_select(&self, query: &Query) -> Option<PointSelect> {
        let plain_query = super::plain_query(query);
        let SetExpr::Select(select) = query.body.as_ref() else {
            return None;
        };
        if !plain_query || !plain_select(select) {
            return None;
        }
        let [from] = select.from.as_slice() else {
            return None;
        };
        let target = Target::of(self, from)?;
        let key = target.key_operands(select.selection.as_ref()?)?;
        let mut columns = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(options)
                    if options.opt_ilike.is_none()
                        && options.opt_exclude.is_none()
                        && options.opt_except.is_none()
                        && options.opt_replace.is_none()
                        && options.opt_rename.is_none()
                        && options.opt_alias.is_none() =>
                {
                    columns.extend(
                        target
                            .def
                            .columns
                            .iter()
                            .enumerate()
                            .map(|(i, c)| (i, c.name.clone())),
                    );
                }
                SelectItem::UnnamedExpr(expr) => {
                    let column = target.column(expr)?;
                    columns.push((column, target.def.columns[column].name.clone()));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    columns.push((target.column(expr)?, normalize(alias)));
                }
                _ => return None,
            }
        }
        Some(PointSelect {
            target,
            key,
            columns,
        })
    }
}

/// A SELECT with one FROM item, a WHERE clause, and none of the other clauses.
fn plain_select(select: &Select) -> bool {
    let no_grouping = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => exprs.is_empty() && modifiers.is_empty(),
        GroupByExpr::All(_) => false,
    };
    no_grouping
        && select.optimizer_hints.is_empty()
        && select.distinct.is_none()
        && select.select_modifiers.is_none()
        && select.top.is_none()
        && select.exclude.is_none()
        && select.into.is_none()
        && select.lateral_views.is_empty()
        && select.prewhere.is_none()
        && select.selection.is_some()
        && select.connect_by.is_empty()
        && select.cluster_by.is_empty()
        && select.distribute_by.is_empty()
        && select.sort_by.is_empty()
        && select.having.is_none()
        && select.named_window.is_empty()
        && select.qualify.is_none()
        && select.value_table_mode.is_none()
}
