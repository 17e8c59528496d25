//! PostgreSQL's own catalog rows (types, functions, operators, access methods, collations,
//! ...) from the snapshot `datafusion-pg-catalog` ships, loaded once per process.
//!
//! The snapshot stores array columns of `pg_proc` as text (`'23 23'`, `"['a', 'b']"`); they
//! are turned into real arrays here, because clients subscript and unnest them.
//!
//! Invariant: only relations that hold no Kura object come from here; those that describe
//! Kura's tables, roles and databases are built by [`super::relations`].

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    ArrayRef, Int16Builder, Int32Builder, ListBuilder, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::{MemTable, TableProvider};
use datafusion_pg_catalog::pg_catalog::{ArrowTable, PgCatalogStaticTables};

use super::oids::types::{INT2VECTOR, OIDVECTOR};
use crate::server::described;

/// Relations taken from the snapshot as they are.
fn plain(t: &PgCatalogStaticTables) -> Vec<(&'static str, &Arc<ArrowTable>)> {
    vec![
        ("pg_aggregate", &t.pg_aggregate),
        ("pg_am", &t.pg_am),
        ("pg_amop", &t.pg_amop),
        ("pg_amproc", &t.pg_amproc),
        ("pg_cast", &t.pg_cast),
        ("pg_collation", &t.pg_collation),
        ("pg_conversion", &t.pg_conversion),
        ("pg_language", &t.pg_language),
        ("pg_opclass", &t.pg_opclass),
        ("pg_operator", &t.pg_operator),
        ("pg_opfamily", &t.pg_opfamily),
        ("pg_range", &t.pg_range),
        ("pg_ts_config", &t.pg_ts_config),
        ("pg_ts_dict", &t.pg_ts_dict),
        ("pg_ts_parser", &t.pg_ts_parser),
        ("pg_ts_template", &t.pg_ts_template),
        ("pg_type", &t.pg_type),
        ("pg_db_role_setting", &t.pg_db_role_setting),
        ("pg_default_acl", &t.pg_default_acl),
        ("pg_depend", &t.pg_depend),
        ("pg_description", &t.pg_description),
        ("pg_enum", &t.pg_enum),
        ("pg_event_trigger", &t.pg_event_trigger),
        ("pg_extension", &t.pg_extension),
        ("pg_foreign_data_wrapper", &t.pg_foreign_data_wrapper),
        ("pg_foreign_server", &t.pg_foreign_server),
        ("pg_foreign_table", &t.pg_foreign_table),
        ("pg_inherits", &t.pg_inherits),
        ("pg_init_privs", &t.pg_init_privs),
        ("pg_largeobject", &t.pg_largeobject),
        ("pg_largeobject_metadata", &t.pg_largeobject_metadata),
        ("pg_partitioned_table", &t.pg_partitioned_table),
        ("pg_policy", &t.pg_policy),
        ("pg_publication", &t.pg_publication),
        ("pg_publication_namespace", &t.pg_publication_namespace),
        ("pg_publication_rel", &t.pg_publication_rel),
        ("pg_replication_origin", &t.pg_replication_origin),
        ("pg_rewrite", &t.pg_rewrite),
        ("pg_seclabel", &t.pg_seclabel),
        ("pg_sequence", &t.pg_sequence),
        ("pg_shdepend", &t.pg_shdepend),
        ("pg_shdescription", &t.pg_shdescription),
        ("pg_shseclabel", &t.pg_shseclabel),
        ("pg_statistic", &t.pg_statistic),
        ("pg_statistic_ext", &t.pg_statistic_ext),
        ("pg_statistic_ext_data", &t.pg_statistic_ext_data),
        ("pg_subscription", &t.pg_subscription),
        ("pg_subscription_rel", &t.pg_subscription_rel),
        ("pg_tablespace", &t.pg_tablespace),
        ("pg_trigger", &t.pg_trigger),
        ("pg_user_mapping", &t.pg_user_mapping),
    ]
}

/// The static batches, loaded on first use.
struct Loaded {
    tables: HashMap<&'static str, (Arc<Schema>, Vec<RecordBatch>)>,
}

fn loaded() -> Option<&'static Loaded> {
    static LOADED: OnceLock<Option<Loaded>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let statics = match PgCatalogStaticTables::try_new() {
                Ok(statics) => statics,
                Err(e) => {
                    tracing::error!("the static pg_catalog snapshot failed to load: {e}");
                    return None;
                }
            };
            let mut tables = HashMap::new();
            let mut all = plain(&statics);
            all.push(("pg_proc", &statics.pg_proc));
            for (name, table) in all {
                match with_arrays(name, table.schema(), table.data()) {
                    Ok(patched) => {
                        tables.insert(name, patched);
                    }
                    Err(e) => tracing::error!("{name} snapshot: {e}"),
                }
            }
            Some(Loaded { tables })
        })
        .as_ref()
}

/// The static relations by name.
pub fn tables() -> HashMap<&'static str, Arc<dyn TableProvider>> {
    let mut out: HashMap<&'static str, Arc<dyn TableProvider>> = HashMap::new();
    let Some(loaded) = loaded() else {
        return out;
    };
    for (name, (schema, batches)) in &loaded.tables {
        if let Ok(table) = MemTable::try_new(schema.clone(), vec![batches.clone()]) {
            out.insert(*name, Arc::new(table));
        }
    }
    out
}

/// Whether `name` is a static relation without rows (never true of the relations Kura
/// builds from its own catalog, which shadow static ones of the same name).
pub fn is_empty(name: &str) -> bool {
    let built = super::relations::PG_CATALOG.iter().any(|r| r.name == name);
    !built
        && loaded()
            .and_then(|l| l.tables.get(name))
            .is_some_and(|(_, batches)| batches.iter().all(|b| b.num_rows() == 0))
}

/// The rows of static relation `name` (for functions that look types and functions up).
pub fn batches(name: &str) -> &'static [RecordBatch] {
    loaded()
        .and_then(|l| l.tables.get(name))
        .map_or(&[], |(_, b)| b.as_slice())
}

/// What the items of a text-encoded array column are.
#[derive(Clone, Copy, PartialEq)]
enum Items {
    Int16,
    Oid,
    Text,
}

/// Array columns the snapshot stores as text: (relation, column, items, 0-based vector).
const ARRAY_COLUMNS: &[(&str, &str, Items, bool)] = &[
    ("pg_proc", "proargtypes", Items::Oid, true),
    ("pg_proc", "proallargtypes", Items::Oid, false),
    ("pg_proc", "proargmodes", Items::Text, false),
    ("pg_proc", "proargnames", Items::Text, false),
    ("pg_proc", "proconfig", Items::Text, false),
    ("pg_proc", "proacl", Items::Text, false),
    ("pg_type", "typacl", Items::Text, false),
    ("pg_policy", "polroles", Items::Oid, false),
    ("pg_statistic_ext", "stxkeys", Items::Int16, true),
    ("pg_statistic_ext", "stxkind", Items::Text, false),
    ("pg_publication_rel", "prattrs", Items::Int16, true),
    ("pg_trigger", "tgattr", Items::Int16, true),
    ("pg_extension", "extconfig", Items::Oid, false),
    ("pg_extension", "extcondition", Items::Text, false),
    ("pg_db_role_setting", "setconfig", Items::Text, false),
    ("pg_event_trigger", "evttags", Items::Text, false),
    ("pg_default_acl", "defaclacl", Items::Text, false),
    ("pg_foreign_data_wrapper", "fdwoptions", Items::Text, false),
    ("pg_foreign_server", "srvoptions", Items::Text, false),
    ("pg_foreign_table", "ftoptions", Items::Text, false),
    ("pg_user_mapping", "umoptions", Items::Text, false),
    ("pg_tablespace", "spcacl", Items::Text, false),
    ("pg_tablespace", "spcoptions", Items::Text, false),
    ("pg_init_privs", "initprivs", Items::Text, false),
    ("pg_language", "lanacl", Items::Text, false),
    ("pg_largeobject_metadata", "lomacl", Items::Text, false),
    ("pg_subscription", "subpublications", Items::Text, false),
    ("pg_partitioned_table", "partattrs", Items::Int16, true),
    ("pg_partitioned_table", "partclass", Items::Oid, true),
    ("pg_partitioned_table", "partcollation", Items::Oid, true),
];

/// A static relation with its text-encoded array columns turned into arrays.
fn with_arrays(
    relation: &str,
    schema: Arc<Schema>,
    batches: &[RecordBatch],
) -> datafusion::error::Result<(Arc<Schema>, Vec<RecordBatch>)> {
    let spec = |name: &str| {
        ARRAY_COLUMNS
            .iter()
            .find(|(r, c, _, _)| *r == relation && *c == name)
            .map(|(_, _, items, vector)| (*items, *vector))
    };
    let list = |item: DataType| DataType::List(Arc::new(Field::new("item", item, true)));
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match spec(f.name()) {
            Some((items, vector)) if f.data_type() == &DataType::Utf8 => {
                let (item, vector_type) = match items {
                    Items::Int16 => (DataType::Int16, INT2VECTOR),
                    Items::Oid => (DataType::Int32, OIDVECTOR),
                    Items::Text => (DataType::Utf8, 0),
                };
                let field = Field::new(f.name(), list(item), true);
                if vector {
                    field.with_metadata(described::metadata(vector_type, -1, None))
                } else {
                    field
                }
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    let patched_schema = Arc::new(Schema::new(fields));
    let mut out = Vec::new();
    for batch in batches {
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let text = column.as_any().downcast_ref::<StringArray>();
            columns.push(match (spec(field.name()), text) {
                (Some((items, vector)), Some(text)) => list_of(text, items, vector),
                _ => column.clone(),
            });
        }
        out.push(RecordBatch::try_new(patched_schema.clone(), columns)?);
    }
    Ok((patched_schema, out))
}

/// `'23 25'` or `'{23,25}'` or `"[23, 25]"`: the items of a text-encoded array.
fn items(text: &str) -> Vec<String> {
    text.trim_matches(|c| c == '{' || c == '}' || c == '[' || c == ']')
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|s| s.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A text column of encoded arrays as a list column; an empty text is an empty vector
/// (`proargtypes` of a function without arguments) or NULL (other arrays).
fn list_of(text: &StringArray, items: Items, vector: bool) -> ArrayRef {
    fn build<B: datafusion::arrow::array::ArrayBuilder>(
        text: &StringArray,
        vector: bool,
        values: B,
        mut push: impl FnMut(&mut B, &str),
    ) -> ArrayRef {
        let mut builder = ListBuilder::new(values);
        for value in text.iter() {
            match value {
                Some(v) if !v.is_empty() => {
                    for item in self::items(v) {
                        push(builder.values(), &item);
                    }
                    builder.append(true);
                }
                Some(_) => builder.append(vector),
                None => builder.append(false),
            }
        }
        Arc::new(builder.finish())
    }
    match items {
        Items::Int16 => build(text, vector, Int16Builder::new(), |b, s| {
            b.append_option(s.parse::<i16>().ok())
        }),
        Items::Oid => build(text, vector, Int32Builder::new(), |b, s| {
            b.append_option(s.parse::<i32>().ok())
        }),
        Items::Text => build(text, vector, StringBuilder::new(), |b, s| b.append_value(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_arrays_split_in_every_snapshot_spelling() {
        assert_eq!(items("23 25"), vec!["23", "25"]);
        assert_eq!(items("{i,o}"), vec!["i", "o"]);
        assert_eq!(items("['year', 'month']"), vec!["year", "month"]);
        assert!(items("").is_empty());
    }

    #[test]
    fn the_snapshot_loads_with_array_columns() {
        let proc = batches("pg_proc");
        assert!(!proc.is_empty());
        let schema = proc[0].schema();
        assert!(matches!(
            schema
                .field_with_name("proargtypes")
                .map(|f| f.data_type().clone()),
            Ok(DataType::List(_))
        ));
        assert!(!batches("pg_type").is_empty());
    }
}
