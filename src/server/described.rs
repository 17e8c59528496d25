//! What a result column says about itself beyond its Arrow type, carried as Arrow field
//! metadata from the table providers through DataFusion's plans to the RowDescription: its
//! PostgreSQL type (when the Arrow type does not decide it, e.g. `varchar` vs `text`,
//! `int2vector` vs `int2[]`), its type modifier, and the table and column it comes from.
//!
//! Invariant: metadata only refines a description; a column without it is described from its
//! Arrow type alone.

use std::collections::HashMap;

use datafusion::arrow::datatypes::Field;
use pgwire::api::Type;
use pgwire::api::results::FieldInfo;

pub const PG_TYPE: &str = "kura.pg_type";
pub const TYPMOD: &str = "kura.typmod";
pub const TABLE_OID: &str = "kura.table_oid";
pub const ATTNUM: &str = "kura.attnum";

/// Metadata for a column of type `oid` with modifier `typmod`, from `table`'s column `attnum`.
pub fn metadata(pg_type: i32, typmod: i32, source: Option<(i32, i16)>) -> HashMap<String, String> {
    let mut out = HashMap::from([
        (PG_TYPE.to_string(), pg_type.to_string()),
        (TYPMOD.to_string(), typmod.to_string()),
    ]);
    if let Some((table, attnum)) = source {
        out.insert(TABLE_OID.to_string(), table.to_string());
        out.insert(ATTNUM.to_string(), attnum.to_string());
    }
    out
}

fn number<T: std::str::FromStr>(field: &Field, key: &str) -> Option<T> {
    field.metadata().get(key).and_then(|v| v.parse().ok())
}

/// The PostgreSQL type a field's metadata names.
pub fn pg_type(field: &Field) -> Option<Type> {
    number::<u32>(field, PG_TYPE).and_then(Type::from_oid)
}

/// PostgreSQL's `typlen` of a type: its fixed size in bytes, or -1 for variable-length types
/// (`-2`, for C strings, never appears in a result). Drivers such as psycopg read it from
/// the RowDescription.
pub fn type_len(datatype: &Type) -> i16 {
    match *datatype {
        Type::BOOL | Type::CHAR => 1,
        Type::INT2 => 2,
        Type::INT4
        | Type::FLOAT4
        | Type::OID
        | Type::DATE
        | Type::REGPROC
        | Type::REGCLASS
        | Type::REGTYPE
        | Type::XID
        | Type::CID => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
        Type::TIMETZ => 12,
        Type::INTERVAL | Type::UUID => 16,
        Type::NAME => 64,
        _ => -1,
    }
}

/// `info` refined by what `field`'s metadata says.
pub fn describe(field: &Field, info: FieldInfo) -> FieldInfo {
    if field.metadata().is_empty() {
        let len = type_len(info.datatype());
        return info.with_type_size(len);
    }
    let datatype = pg_type(field).unwrap_or_else(|| info.datatype().clone());
    let typmod = number(field, TYPMOD).unwrap_or(info.type_modifier());
    let described = FieldInfo::new(
        info.name().to_string(),
        number(field, TABLE_OID).or(info.table_id()),
        number(field, ATTNUM).or(info.column_id()),
        datatype.clone(),
        info.format(),
    );
    described
        .with_format_options(info.format_options().clone())
        .with_type_size(type_len(&datatype))
        .with_type_modifier(typmod)
}

/// The fields the row encoder works from: like the described ones, except that `int2vector`
/// and `oidvector` columns sent as text (already joined into `1 2` by the text rewrite) are
/// encoded as plain text, not quoted like an array element.
pub fn for_encoding(fields: &[FieldInfo]) -> Vec<FieldInfo> {
    fields
        .iter()
        .map(|info| {
            let vector =
                *info.datatype() == Type::INT2_VECTOR || *info.datatype() == Type::OID_VECTOR;
            if vector && info.format() == pgwire::api::results::FieldFormat::Text {
                FieldInfo::new(
                    info.name().to_string(),
                    info.table_id(),
                    info.column_id(),
                    Type::TEXT,
                    info.format(),
                )
            } else {
                info.clone()
            }
        })
        .collect()
}
