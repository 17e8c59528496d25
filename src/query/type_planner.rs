//! SQL type names Kura plans beyond DataFusion's: `datafusion-pg-catalog`'s oid aliases
//! (`regclass`, `oid`, `pg_catalog.int4`, ...), and PostgreSQL's internal text types that
//! catalog queries cast to: `name`, `"char"` and `bpchar`, all text in Kura, and the
//! transaction id types `xid` and `xid8`, int8 like `txid_current()`.
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

/// The Arrow type of a PostgreSQL type name DataFusion does not know: `name`, `"char"`
/// (quoted: unquoted `char` is `character(1)`) and `bpchar` are text; `xid` and `xid8` int8.
fn internal_type(sql_type: &SqlDataType) -> Option<DataType> {
    let SqlDataType::Custom(name, modifiers) = sql_type else {
        return None;
    };
    let [part] = name.0.as_slice() else {
        return None;
    };
    let ident = part.as_ident()?;
    let value = ident.value.to_ascii_lowercase();
    let known = match value.as_str() {
        "name" | "xid" | "xid8" => modifiers.is_empty(),
        "bpchar" => true,
        "char" => ident.quote_style.is_some(),
        _ => false,
    };
    if !known {
        return None;
    }
    Some(match value.as_str() {
        "xid" | "xid8" => DataType::Int64,
        _ => DataType::Utf8,
    })
}

impl TypePlanner for KuraTypePlanner {
    fn plan_type_field(&self, sql_type: &SqlDataType) -> DfResult<Option<Arc<Field>>> {
        if let Some(field) = self.oids.plan_type_field(sql_type)? {
            return Ok(Some(field));
        }
        Ok(internal_type(sql_type).map(|data_type| Arc::new(Field::new("", data_type, true))))
    }
}
