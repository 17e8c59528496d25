//! The `pg_catalog` relations that describe Kura's own objects: namespaces, relations
//! (tables, their indexes, views), columns, indexes, constraints, defaults, the database,
//! roles, and the convenience views (`pg_tables`, `pg_views`, `pg_indexes`).
//!
//! Invariant: every row's oids follow [`super::oids`], so `pg_index.indrelid`,
//! `pg_constraint.conindid`, `pg_attribute.attrelid` and RowDescription table oids all join
//! back to `pg_class.oid`.

use std::sync::Arc;

use super::oids::{self, PgType, types};
use super::table::{Kind, Rows, V};
use super::{RelationSpec, Source};
use super::{
    definitions, operations_views, replication_views, server_views, statistics, time_zones,
};
use crate::error::Result;
use crate::storage::TableDef;
use crate::storage::schema::IndexDef;
use crate::types::SqlType;

use Kind::*;

pub const PG_CATALOG: &[RelationSpec] = &[
    RelationSpec {
        name: "pg_namespace",
        layout: NAMESPACE,
        build: namespaces,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_class",
        layout: CLASS,
        build: classes,
        needs_views: true,
    },
    RelationSpec {
        name: "pg_attribute",
        layout: ATTRIBUTE,
        build: attributes,
        needs_views: true,
    },
    RelationSpec {
        name: "pg_index",
        layout: INDEX,
        build: indexes,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_constraint",
        layout: CONSTRAINT,
        build: constraints,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_attrdef",
        layout: ATTRDEF,
        build: attrdefs,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_database",
        layout: DATABASE,
        build: databases,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_tables",
        layout: TABLES,
        build: tables_view,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_views",
        layout: VIEWS,
        build: views_view,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_matviews",
        layout: MATVIEWS,
        build: no_rows_matviews,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_indexes",
        layout: INDEXES,
        build: indexes_view,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_roles",
        layout: server_views::ROLES,
        build: server_views::roles,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_authid",
        layout: server_views::AUTHID,
        build: server_views::authid,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_user",
        layout: server_views::USER,
        build: server_views::users,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_auth_members",
        layout: server_views::AUTH_MEMBERS,
        build: server_views::auth_members,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_settings",
        layout: server_views::SETTINGS,
        build: server_views::settings,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_stat_activity",
        layout: server_views::STAT_ACTIVITY,
        build: server_views::stat_activity,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_stat_replication",
        layout: replication_views::STAT_REPLICATION,
        build: replication_views::stat_replication,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_stat_progress_basebackup",
        layout: operations_views::STAT_PROGRESS_BASEBACKUP,
        build: operations_views::stat_progress_basebackup,
        needs_views: false,
    },
    RelationSpec {
        name: "kura_definitions",
        layout: definitions::DEFINITIONS,
        build: definitions::definitions,
        needs_views: false,
    },
    RelationSpec {
        name: "#database_stats",
        layout: operations_views::DATABASE_STATS,
        build: operations_views::database_stats,
        needs_views: false,
    },
    RelationSpec {
        name: "kura_stat",
        layout: operations_views::KURA_STAT,
        build: operations_views::kura_stat,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_stat_archiver",
        layout: operations_views::STAT_ARCHIVER,
        build: operations_views::stat_archiver,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_stat_wal_receiver",
        layout: replication_views::STAT_WAL_RECEIVER,
        build: replication_views::stat_wal_receiver,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_locks",
        layout: server_views::LOCKS,
        build: server_views::locks,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_cursors",
        layout: server_views::CURSORS,
        build: server_views::cursors,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_stat_user_tables",
        layout: statistics::STAT_TABLES,
        build: statistics::stat_tables,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_stat_all_tables",
        layout: statistics::STAT_TABLES,
        build: statistics::stat_tables,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_timezone_names",
        layout: time_zones::NAMES,
        build: time_zones::names,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_timezone_abbrevs",
        layout: time_zones::ABBREVS,
        build: time_zones::abbrevs,
        needs_views: false,
    },
    RelationSpec {
        name: "pg_stat_ssl",
        layout: statistics::STAT_SSL,
        build: statistics::stat_ssl,
        needs_views: false,
    },
];

const NAMESPACE: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("nspname", Text),
    ("nspowner", Oid),
    ("nspacl", TextArray),
];

/// The schemas every database has.
pub const SCHEMAS: &[(i32, &str)] = &[
    (oids::PG_CATALOG_NAMESPACE, "pg_catalog"),
    (oids::PUBLIC_NAMESPACE, "public"),
    (oids::INFORMATION_SCHEMA_NAMESPACE, "information_schema"),
];

fn namespaces(_: &Source) -> Result<Rows> {
    let mut rows = Rows::new(NAMESPACE);
    for (oid, name) in SCHEMAS {
        rows.push(vec![
            ("oid", (*oid).into()),
            ("nspname", (*name).into()),
            ("nspowner", oids::OWNER_ROLE.into()),
        ]);
    }
    Ok(rows)
}

const CLASS: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("relname", Text),
    ("relnamespace", Oid),
    ("reltype", Oid),
    ("reloftype", Oid),
    ("relowner", Oid),
    ("relam", Oid),
    ("relfilenode", Oid),
    ("reltablespace", Oid),
    ("relpages", Int4),
    ("reltuples", Float4),
    ("relallvisible", Int4),
    ("reltoastrelid", Oid),
    ("relhasindex", Bool),
    ("relisshared", Bool),
    ("relpersistence", Text),
    ("relkind", Text),
    ("relnatts", Int2),
    ("relchecks", Int2),
    ("relhasrules", Bool),
    ("relhastriggers", Bool),
    ("relhassubclass", Bool),
    ("relrowsecurity", Bool),
    ("relforcerowsecurity", Bool),
    ("relispopulated", Bool),
    ("relreplident", Text),
    ("relispartition", Bool),
    ("relrewrite", Oid),
    ("relfrozenxid", Int4),
    ("relminmxid", Int4),
    ("relacl", TextArray),
    ("reloptions", TextArray),
    ("relpartbound", Text),
];

/// The tables of the catalog, by name.
pub fn table_defs(source: &Source) -> Vec<Arc<TableDef>> {
    let mut defs: Vec<Arc<TableDef>> = source.catalog.tables().iter().map(|t| t.def()).collect();
    defs.sort_by(|a, b| a.name.cmp(&b.name));
    defs
}

fn class_row(oid: i32, name: &str, kind: &str, am: i32, natts: usize) -> Vec<(&'static str, V)> {
    vec![
        ("oid", oid.into()),
        ("relname", name.into()),
        ("relnamespace", oids::PUBLIC_NAMESPACE.into()),
        ("reltype", 0.into()),
        ("reloftype", 0.into()),
        ("relowner", oids::OWNER_ROLE.into()),
        ("relam", am.into()),
        ("relfilenode", oid.into()),
        ("reltablespace", 0.into()),
        ("relpages", 0.into()),
        ("reltoastrelid", 0.into()),
        ("relhasindex", false.into()),
        ("relisshared", false.into()),
        ("relpersistence", "p".into()),
        ("relkind", kind.into()),
        ("relnatts", (natts as i64).into()),
        ("relchecks", 0.into()),
        ("relhasrules", (kind == "v").into()),
        ("relhastriggers", false.into()),
        ("relhassubclass", false.into()),
        ("relrowsecurity", false.into()),
        ("relforcerowsecurity", false.into()),
        ("relispopulated", true.into()),
        ("relreplident", if kind == "r" { "d" } else { "n" }.into()),
        ("relispartition", false.into()),
        ("relrewrite", 0.into()),
        ("relfrozenxid", 0.into()),
        ("relminmxid", 0.into()),
    ]
}

fn classes(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(CLASS);
    for def in table_defs(source) {
        let oid = oids::table(def.id);
        let mut row = class_row(oid, &def.name, "r", oids::HEAP_AM, def.columns.len());
        set(&mut row, "relhasindex", (!def.indexes.is_empty()).into());
        set(&mut row, "reltuples", V::Int(-1));
        rows.push(row);
        for index in &def.indexes {
            rows.push(class_row(
                oids::index(def.id, index.id),
                &index.name,
                "i",
                oids::BTREE_AM,
                index.columns.len(),
            ));
        }
    }
    for (view, schema) in &source.views {
        let natts = schema.as_ref().map_or(0, |s| s.fields().len());
        rows.push(class_row(oids::view(&view.name), &view.name, "v", 0, natts));
    }
    Ok(rows)
}

fn set(row: &mut [(&'static str, V)], name: &str, value: V) {
    if let Some(slot) = row.iter_mut().find(|(n, _)| *n == name) {
        slot.1 = value;
    }
}

const ATTRIBUTE: &[(&str, Kind)] = &[
    ("attrelid", Oid),
    ("attname", Text),
    ("atttypid", Oid),
    ("attstattarget", Int4),
    ("attlen", Int2),
    ("attnum", Int2),
    ("attndims", Int4),
    ("attcacheoff", Int4),
    ("atttypmod", Int4),
    ("attbyval", Bool),
    ("attalign", Text),
    ("attstorage", Text),
    ("attcompression", Text),
    ("attnotnull", Bool),
    ("atthasdef", Bool),
    ("atthasmissing", Bool),
    ("attidentity", Text),
    ("attgenerated", Text),
    ("attisdropped", Bool),
    ("attislocal", Bool),
    ("attinhcount", Int4),
    ("attcollation", Oid),
    ("attacl", TextArray),
    ("attoptions", TextArray),
    ("attfdwoptions", TextArray),
    ("attmissingval", TextArray),
];

/// The collation `pg_attribute.attcollation` shows for text columns ("default").
const DEFAULT_COLLATION: i32 = 100;

fn attribute_row(
    relid: i32,
    attnum: usize,
    name: &str,
    ty: PgType,
    not_null: bool,
    has_default: bool,
) -> Vec<(&'static str, V)> {
    let textual = matches!(ty.oid, types::TEXT | types::VARCHAR | types::BPCHAR);
    vec![
        ("attrelid", relid.into()),
        ("attname", name.into()),
        ("atttypid", ty.oid.into()),
        ("attstattarget", (-1).into()),
        ("attlen", i64::from(ty.len).into()),
        ("attnum", (attnum as i64).into()),
        ("attndims", 0.into()),
        ("attcacheoff", (-1).into()),
        ("atttypmod", ty.typmod.into()),
        ("attbyval", (ty.len > 0 && ty.len <= 8).into()),
        ("attalign", if ty.len == 8 { "d" } else { "i" }.into()),
        ("attstorage", if ty.len < 0 { "x" } else { "p" }.into()),
        ("attcompression", "".into()),
        ("attnotnull", not_null.into()),
        ("atthasdef", has_default.into()),
        ("atthasmissing", false.into()),
        ("attidentity", "".into()),
        ("attgenerated", "".into()),
        ("attisdropped", false.into()),
        ("attislocal", true.into()),
        ("attinhcount", 0.into()),
        (
            "attcollation",
            if textual { DEFAULT_COLLATION } else { 0 }.into(),
        ),
    ]
}

fn attributes(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(ATTRIBUTE);
    for def in table_defs(source) {
        let relid = oids::table(def.id);
        for (i, column) in def.columns.iter().enumerate() {
            rows.push(attribute_row(
                relid,
                i + 1,
                &column.name,
                PgType::of(&column.ty),
                !column.nullable,
                column.default.is_some(),
            ));
        }
        for index in &def.indexes {
            let relid = oids::index(def.id, index.id);
            for (i, c) in index.columns.iter().enumerate() {
                if let Some(column) = def.columns.get(*c) {
                    rows.push(attribute_row(
                        relid,
                        i + 1,
                        &column.name,
                        PgType::of(&column.ty),
                        false,
                        false,
                    ));
                }
            }
        }
    }
    for (view, schema) in &source.views {
        let Some(schema) = schema else { continue };
        let relid = oids::view(&view.name);
        for (i, field) in schema.fields().iter().enumerate() {
            let ty = SqlType::from_arrow(field.data_type())
                .map(|t| PgType::of(&t))
                .unwrap_or(PgType {
                    oid: types::TEXT,
                    typmod: -1,
                    len: -1,
                });
            rows.push(attribute_row(relid, i + 1, field.name(), ty, false, false));
        }
    }
    Ok(rows)
}

const INDEX: &[(&str, Kind)] = &[
    ("indexrelid", Oid),
    ("indrelid", Oid),
    ("indnatts", Int2),
    ("indnkeyatts", Int2),
    ("indisunique", Bool),
    ("indnullsnotdistinct", Bool),
    ("indisprimary", Bool),
    ("indisexclusion", Bool),
    ("indimmediate", Bool),
    ("indisclustered", Bool),
    ("indisvalid", Bool),
    ("indcheckxmin", Bool),
    ("indisready", Bool),
    ("indislive", Bool),
    ("indisreplident", Bool),
    ("indkey", Int2Vector),
    ("indcollation", OidVector),
    ("indclass", OidVector),
    ("indoption", Int2Vector),
    ("indexprs", Text),
    ("indpred", Text),
];

/// The default btree operator class of a column type (what `indclass` lists).
fn opclass(ty: &SqlType) -> i64 {
    match ty {
        SqlType::Bool => 424,
        SqlType::Byte | SqlType::Short => 1979,
        SqlType::Integer => 1978,
        SqlType::Long => 3124,
        SqlType::Float => 1970,
        SqlType::Double => 1971,
        SqlType::Numeric { .. } => 3125,
        SqlType::Text { padded: true, .. } => 426,
        SqlType::Text { .. } => 3126,
        SqlType::Blob => 421,
        SqlType::Timestamp { .. } => 3128,
        SqlType::TimestampTz => 3127,
        SqlType::Date => 3122,
    }
}

fn indexes(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(INDEX);
    for def in table_defs(source) {
        for index in &def.indexes {
            let n = index.columns.len() as i64;
            let columns: Vec<&SqlType> = index
                .columns
                .iter()
                .filter_map(|c| def.columns.get(*c).map(|c| &c.ty))
                .collect();
            rows.push(vec![
                ("indexrelid", oids::index(def.id, index.id).into()),
                ("indrelid", oids::table(def.id).into()),
                ("indnatts", n.into()),
                ("indnkeyatts", n.into()),
                ("indisunique", (index.unique || index.primary).into()),
                ("indnullsnotdistinct", false.into()),
                ("indisprimary", index.primary.into()),
                ("indisexclusion", false.into()),
                ("indimmediate", true.into()),
                ("indisclustered", false.into()),
                ("indisvalid", true.into()),
                ("indcheckxmin", false.into()),
                ("indisready", true.into()),
                ("indislive", true.into()),
                ("indisreplident", false.into()),
                ("indkey", V::Ints(oids::attnums(&index.columns))),
                (
                    "indcollation",
                    V::Ints(
                        columns
                            .iter()
                            .map(|t| match t {
                                SqlType::Text { .. } => i64::from(DEFAULT_COLLATION),
                                _ => 0,
                            })
                            .collect(),
                    ),
                ),
                (
                    "indclass",
                    V::Ints(columns.iter().map(|t| opclass(t)).collect()),
                ),
                ("indoption", V::Ints(vec![0; columns.len()])),
            ]);
        }
    }
    Ok(rows)
}

const CONSTRAINT: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("conname", Text),
    ("connamespace", Oid),
    ("contype", Text),
    ("condeferrable", Bool),
    ("condeferred", Bool),
    ("convalidated", Bool),
    ("conrelid", Oid),
    ("contypid", Oid),
    ("conindid", Oid),
    ("conparentid", Oid),
    ("confrelid", Oid),
    ("confupdtype", Text),
    ("confdeltype", Text),
    ("confmatchtype", Text),
    ("conislocal", Bool),
    ("coninhcount", Int4),
    ("connoinherit", Bool),
    ("conkey", Int2Array),
    ("confkey", Int2Array),
    ("conpfeqop", OidArray),
    ("conppeqop", OidArray),
    ("conffeqop", OidArray),
    ("confdelsetcols", Int2Array),
    ("conexclop", OidArray),
    ("conbin", Text),
];

/// The constraints an index enforces: primary keys and unique indexes.
pub fn constraint_of(index: &IndexDef) -> Option<&'static str> {
    if index.primary {
        Some("p")
    } else if index.unique {
        Some("u")
    } else {
        None
    }
}

/// Every key constraint of every table: the table, the index that enforces it, its `contype`.
pub fn key_constraints(source: &Source) -> Vec<(Arc<TableDef>, IndexDef, &'static str)> {
    let mut out = Vec::new();
    for def in table_defs(source) {
        for index in &def.indexes {
            if let Some(kind) = constraint_of(index) {
                out.push((def.clone(), index.clone(), kind));
            }
        }
    }
    out
}

fn constraints(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(CONSTRAINT);
    for (def, index, kind) in key_constraints(source) {
        rows.push(vec![
            ("oid", oids::constraint(def.id, index.id).into()),
            ("conname", index.name.as_str().into()),
            ("connamespace", oids::PUBLIC_NAMESPACE.into()),
            ("contype", kind.into()),
            ("condeferrable", false.into()),
            ("condeferred", false.into()),
            ("convalidated", true.into()),
            ("conrelid", oids::table(def.id).into()),
            ("contypid", 0.into()),
            ("conindid", oids::index(def.id, index.id).into()),
            ("conparentid", 0.into()),
            ("confrelid", 0.into()),
            ("confupdtype", " ".into()),
            ("confdeltype", " ".into()),
            ("confmatchtype", " ".into()),
            ("conislocal", true.into()),
            ("coninhcount", 0.into()),
            ("connoinherit", true.into()),
            ("conkey", V::Ints(oids::attnums(&index.columns))),
        ]);
    }
    Ok(rows)
}

const ATTRDEF: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("adrelid", Oid),
    ("adnum", Int2),
    ("adbin", Text),
];

fn attrdefs(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(ATTRDEF);
    for def in table_defs(source) {
        for (i, column) in def.columns.iter().enumerate() {
            if let Some(default) = &column.default {
                rows.push(vec![
                    ("oid", oids::attrdef(def.id, i + 1).into()),
                    ("adrelid", oids::table(def.id).into()),
                    ("adnum", (i as i64 + 1).into()),
                    // pg_get_expr shows the expression from its text.
                    ("adbin", default.as_str().into()),
                ]);
            }
        }
    }
    Ok(rows)
}

const DATABASE: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("datname", Text),
    ("datdba", Oid),
    ("encoding", Int4),
    ("datlocprovider", Text),
    ("datistemplate", Bool),
    ("datallowconn", Bool),
    ("datconnlimit", Int4),
    ("datfrozenxid", Int4),
    ("datminmxid", Int4),
    ("dattablespace", Oid),
    ("datcollate", Text),
    ("datctype", Text),
    ("daticulocale", Text),
    ("datcollversion", Text),
    ("datacl", TextArray),
];

/// `pg_database.encoding` of UTF8.
pub const UTF8_ENCODING: i32 = 6;

fn databases(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(DATABASE);
    for (name, id) in source.visible_databases() {
        rows.push(database_row(name, id));
    }
    Ok(rows)
}

fn database_row(name: String, id: u32) -> Vec<(&'static str, V)> {
    vec![
        ("oid", oids::database(id).into()),
        ("datname", name.into()),
        ("datdba", oids::OWNER_ROLE.into()),
        ("encoding", UTF8_ENCODING.into()),
        ("datlocprovider", "c".into()),
        ("datistemplate", false.into()),
        ("datallowconn", true.into()),
        ("datconnlimit", (-1).into()),
        ("datfrozenxid", 0.into()),
        ("datminmxid", 1.into()),
        ("dattablespace", oids::DEFAULT_TABLESPACE.into()),
        (
            "datcollate",
            crate::session::settings::DATABASE_LOCALE.into(),
        ),
        ("datctype", crate::session::settings::DATABASE_LOCALE.into()),
    ]
}

const TABLES: &[(&str, Kind)] = &[
    ("schemaname", Text),
    ("tablename", Text),
    ("tableowner", Text),
    ("tablespace", Text),
    ("hasindexes", Bool),
    ("hasrules", Bool),
    ("hastriggers", Bool),
    ("rowsecurity", Bool),
];

fn tables_view(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(TABLES);
    for def in table_defs(source) {
        rows.push(vec![
            ("schemaname", "public".into()),
            ("tablename", def.name.as_str().into()),
            ("tableowner", source.user().into()),
            ("hasindexes", (!def.indexes.is_empty()).into()),
            ("hasrules", false.into()),
            ("hastriggers", false.into()),
            ("rowsecurity", false.into()),
        ]);
    }
    Ok(rows)
}

const VIEWS: &[(&str, Kind)] = &[
    ("schemaname", Text),
    ("viewname", Text),
    ("viewowner", Text),
    ("definition", Text),
];

fn views_view(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(VIEWS);
    let mut views = source.catalog.views();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    for view in views {
        rows.push(vec![
            ("schemaname", "public".into()),
            ("viewname", view.name.as_str().into()),
            ("viewowner", source.user().into()),
            ("definition", view.sql.as_str().into()),
        ]);
    }
    Ok(rows)
}

const MATVIEWS: &[(&str, Kind)] = &[
    ("schemaname", Text),
    ("matviewname", Text),
    ("matviewowner", Text),
    ("tablespace", Text),
    ("hasindexes", Bool),
    ("ispopulated", Bool),
    ("definition", Text),
];

/// Kura has no materialized views.
fn no_rows_matviews(_: &Source) -> Result<Rows> {
    Ok(Rows::new(MATVIEWS))
}

const INDEXES: &[(&str, Kind)] = &[
    ("schemaname", Text),
    ("tablename", Text),
    ("indexname", Text),
    ("tablespace", Text),
    ("indexdef", Text),
];

fn indexes_view(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(INDEXES);
    for def in table_defs(source) {
        for index in &def.indexes {
            rows.push(vec![
                ("schemaname", "public".into()),
                ("tablename", def.name.as_str().into()),
                ("indexname", index.name.as_str().into()),
                ("indexdef", index_definition(&def, index).into()),
            ]);
        }
    }
    Ok(rows)
}

/// `pg_get_indexdef`: the CREATE INDEX statement that would make the index.
pub fn index_definition(def: &TableDef, index: &IndexDef) -> String {
    format!(
        "CREATE {}INDEX {} ON public.{} USING btree ({})",
        if index.unique || index.primary {
            "UNIQUE "
        } else {
            ""
        },
        quote_ident(&index.name),
        quote_ident(&def.name),
        column_list(def, &index.columns)
    )
}

/// `pg_get_constraintdef`: `PRIMARY KEY (a, b)` or `UNIQUE (a)`.
pub fn constraint_definition(def: &TableDef, index: &IndexDef) -> String {
    let kind = if index.primary {
        "PRIMARY KEY"
    } else {
        "UNIQUE"
    };
    format!("{kind} ({})", column_list(def, &index.columns))
}

pub(super) fn column_list(def: &TableDef, columns: &[usize]) -> String {
    columns
        .iter()
        .filter_map(|c| def.columns.get(*c))
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An identifier as PostgreSQL prints it: bare when it is lower case, plain and not a
/// reserved keyword (so the text parses back to the same name), quoted otherwise.
pub fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !super::keywords::is_reserved(name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}
