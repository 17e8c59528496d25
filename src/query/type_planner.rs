//! SQL type names Kura plans beyond DataFusion's: `datafusion-pg-catalog`'s oid aliases
//! (`regclass`, `oid`, `pg_catalog.int4`, ...), and PostgreSQL's internal text types that
//! catalog queries cast to: `name`, `"char"` and `bpchar`, all text in Kura.
//!
//! Invariant: a type either planner knows keeps that planner's meaning; unknown names are left
//! to DataFusion, which rejects them.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::sql::sqlparser::ast::DataType as SqlDataType;
use datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;

#[derive(Debug, Default)]
pub struct KuraTypePlanner {
    oids: PgOidTypePlanner,
}

/// `name`, `"char"` (quoted: unquoted `char` is `character(1)`) and `bpchar`.
fn is_text_alias(sql_type: &SqlDataType) -> bool {
    let SqlDataType::Custom(name, modifiers) = sql_type else {
        return false;
    };
    let [part] = name.0.as_slice() else {
        return false;
    };
    let Some(ident) = part.as_ident() else {
        return false;
    };
    let value = ident.value.to_ascii_lowercase();
    match value.as_str() {
        "name" | "bpchar" => modifiers.is_empty() || value == "bpchar",
        "char" => ident.quote_style.is_some(),
        _ => false,
    }
}

impl TypePlanner for KuraTypePlanner {
    fn plan_type_field(&self, sql_type: &SqlDataType) -> DfResult<Option<Arc<Field>>> {
        if let Some(field) = self.oids.plan_type_field(sql_type)? {
            return Ok(Some(field));
        }
        Ok(is_text_alias(sql_type).then(|| Arc::new(Field::new("", DataType::Utf8, true))))
    }
}
