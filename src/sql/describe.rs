//! Describing a statement for the extended protocol without running it: the types of its
//! `$n` parameters and the columns it returns.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Expr, OnConflictAction, OnInsert, SelectItem, Statement, Value,
};

use super::exec::Exec;
use super::template::{select_from, select_mut};
use crate::error::{KuraError, Result};
use crate::storage::TableDef;

/// Types DataFusion leaves open but the context fixes: `CAST($1 AS t)` and a function
/// argument whose position has exactly one type in the function's signature.
fn infer_from_context(
    plan: &LogicalPlan,
    types: &mut HashMap<String, Option<DataType>>,
) -> Result<()> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Cast, Expr as LExpr, TryCast, TypeSignature};
    let mut learn = |id: &str, data_type: &DataType| {
        if let Some(slot @ None) = types.get_mut(id) {
            *slot = Some(data_type.clone());
        }
    };
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                match e {
                    LExpr::Cast(Cast { expr, field }) | LExpr::TryCast(TryCast { expr, field }) => {
                        if let LExpr::Placeholder(p) = expr.as_ref() {
                            learn(&p.id, field.data_type());
                        }
                    }
                    LExpr::ScalarFunction(call) => {
                        let exact = |sig: &TypeSignature| match sig {
                            TypeSignature::Exact(types) if types.len() == call.args.len() => {
                                Some(types.clone())
                            }
                            _ => None,
                        };
                        let candidates: Vec<Vec<DataType>> =
                            match &call.func.signature().type_signature {
                                TypeSignature::OneOf(list) => {
                                    list.iter().filter_map(exact).collect()
                                }
                                other => exact(other).into_iter().collect(),
                            };
                        if let [only] = candidates.as_slice() {
                            for (arg, data_type) in call.args.iter().zip(only) {
                                if let LExpr::Placeholder(p) = arg {
                                    learn(&p.id, data_type);
                                }
                            }
                        }
                    }
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(())
}

/// Parameter types by position (`None` when nothing determines one) and the result columns.
pub type Description = (Vec<Option<DataType>>, Option<SchemaRef>);

impl Exec<'_> {
    pub async fn describe(&self, statement: &Statement) -> Result<Description> {
        match statement {
            Statement::Query(_) | Statement::Explain { .. } => {
                let plan = self.plan(statement.clone()).await?;
                let schema = super::colnames::reported_schema(statement, &plan);
                Ok((parameter_types(&plan)?, Some(schema)))
            }
            Statement::Insert(insert) => {
                let name = match &insert.table {
                    datafusion::sql::sqlparser::ast::TableObject::TableName(n) => {
                        super::names::relation_name(n)?
                    }
                    _ => {
                        return Err(KuraError::unsupported(
                            "INSERT INTO a table function is not supported",
                        ));
                    }
                };
                let def = self.db.table(&name, "insert into")?.def();
                let plan = self
                    .plan(Statement::Insert(super::dml::plain_insert(insert, &def)?))
                    .await?;
                let LogicalPlan::Dml(dml) = &plan else {
                    return Err(KuraError::internal("INSERT did not plan as DML"));
                };
                let mut params = parameter_types(&dml.input)?;
                if let Some(OnInsert::OnConflict(conflict)) = &insert.on
                    && let OnConflictAction::DoUpdate(update) = &conflict.action
                {
                    assigned_parameter_types(&def, &update.assignments, &mut params);
                }
                let alias = insert
                    .table_alias
                    .as_ref()
                    .map(|a| super::names::normalize(&a.alias))
                    .unwrap_or_else(|| def.name.clone());
                Ok((
                    params,
                    self.returning_schema(insert.returning.as_ref(), &def, &alias)
                        .await?,
                ))
            }
            Statement::Update(update) => {
                let target = self.update_query(update)?;
                let plan = self.plan_query(target.query.clone()).await?;
                let result = self
                    .returning_schema(update.returning.as_ref(), &target.def, &target.alias)
                    .await?;
                let mut params = parameter_types(&plan)?;
                assigned_parameter_types(&target.def, &update.assignments, &mut params);
                Ok((params, result))
            }
            Statement::Delete(delete) => {
                let target = self.delete_query(delete)?;
                let plan = self.plan_query(target.query.clone()).await?;
                let result = self
                    .returning_schema(delete.returning.as_ref(), &target.def, &target.alias)
                    .await?;
                Ok((parameter_types(&plan)?, result))
            }
            _ => Ok((Vec::new(), None)),
        }
    }

    async fn returning_schema(
        &self,
        returning: Option<&Vec<SelectItem>>,
        def: &TableDef,
        alias: &str,
    ) -> Result<Option<SchemaRef>> {
        let Some(items) = returning else {
            return Ok(None);
        };
        let relation = self.temp_rows(def.schema().clone(), vec![])?;
        let mut query = select_from(&relation.name, alias)?;
        select_mut(&mut query)?.projection = items.clone();
        let plan = self.plan_query(query).await?;
        Ok(Some(Arc::new(plan.schema().as_arrow().clone())))
    }
}

/// `SET column = $n`: the parameter takes the column's type (DataFusion does not infer the
/// type of a parameter that is only cast).
fn assigned_parameter_types(
    def: &TableDef,
    assignments: &[Assignment],
    types: &mut Vec<Option<DataType>>,
) {
    for assignment in assignments {
        let AssignmentTarget::ColumnName(name) = &assignment.target else {
            continue;
        };
        let Expr::Value(value) = &assignment.value else {
            continue;
        };
        let Value::Placeholder(placeholder) = &value.value else {
            continue;
        };
        let Some(index) = placeholder
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|i| *i > 0)
        else {
            continue;
        };
        let column = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .and_then(|i| def.column_index(&super::names::normalize(i)));
        if let Some(column) = column {
            if types.len() < index {
                types.resize(index, None);
            }
            types[index - 1] = Some(def.columns[column].ty.arrow_type());
        }
    }
}

/// `$1..$n` types of a plan, by position.
pub fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>> {
    let mut types: HashMap<String, Option<DataType>> = plan.get_parameter_types()?;
    if types.values().any(Option::is_none) {
        infer_from_context(plan, &mut types)?;
    }
    let mut by_position: Vec<Option<DataType>> = Vec::new();
    for (name, ty) in types {
        let Some(index) = name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        if index == 0 {
            continue;
        }
        if by_position.len() < index {
            by_position.resize(index, None);
        }
        by_position[index - 1] = ty;
    }
    Ok(by_position)
}
