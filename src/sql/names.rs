//! Identifier handling shared by DDL and DML: PostgreSQL folding (unquoted names are
//! lower-cased, quoted names kept) and resolution of possibly schema-qualified object names.

use datafusion::sql::sqlparser::ast::{Ident, ObjectName};

use crate::error::{KuraError, Result, sqlstate};
use crate::query::database::SCHEMA_NAME;

pub fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// The relation name of `[catalog.][schema.]name`; only the `public` schema holds relations.
pub fn relation_name(name: &ObjectName) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(normalize)
                .ok_or_else(|| KuraError::syntax(format!("invalid name {name}")))
        })
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [table] => Ok(table.clone()),
        [schema, table] | [_, schema, table] if schema == SCHEMA_NAME => Ok(table.clone()),
        [schema, _] | [_, schema, _] => Err(KuraError::new(
            sqlstate::UNDEFINED_OBJECT,
            format!("schema \"{schema}\" does not exist"),
        )),
        _ => Err(KuraError::syntax(format!(
            "improper qualified name: {name}"
        ))),
    }
}
