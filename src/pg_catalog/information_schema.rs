//! The SQL-standard `information_schema` over Kura's tables and views, with PostgreSQL's
//! spelling of type names (`integer`, `character varying`, `timestamp without time zone`)
//! and its `udt_name`s (`int4`, `varchar`, `timestamp`), which BI tools classify columns by.
//!
//! Invariant: it lists exactly the relations of `pg_class` in schema `public`, and the keys of
//! `pg_constraint`.

use super::oids::{PgType, types};
use super::relations::{key_constraints, table_defs};
use super::table::{Kind, Rows, V};
use super::{RelationSpec, Source};
use crate::error::Result;
use crate::types::SqlType;

use Kind::*;

pub const RELATIONS: &[RelationSpec] = &[
    RelationSpec {
        name: "schemata",
        layout: SCHEMATA,
        build: schemata,
        needs_views: false,
    },
    RelationSpec {
        name: "tables",
        layout: TABLES,
        build: tables,
        needs_views: false,
    },
    RelationSpec {
        name: "views",
        layout: VIEWS,
        build: views,
        needs_views: false,
    },
    RelationSpec {
        name: "columns",
        layout: COLUMNS,
        build: columns,
        needs_views: true,
    },
    RelationSpec {
        name: "table_constraints",
        layout: TABLE_CONSTRAINTS,
        build: table_constraints,
        needs_views: false,
    },
    RelationSpec {
        name: "key_column_usage",
        layout: KEY_COLUMN_USAGE,
        build: key_column_usage,
        needs_views: false,
    },
    RelationSpec {
        name: "constraint_column_usage",
        layout: CONSTRAINT_COLUMN_USAGE,
        build: constraint_column_usage,
        needs_views: false,
    },
    RelationSpec {
        name: "referential_constraints",
        layout: REFERENTIAL_CONSTRAINTS,
        build: no_foreign_keys,
        needs_views: false,
    },
    RelationSpec {
        name: "character_sets",
        layout: CHARACTER_SETS,
        build: character_sets,
        needs_views: false,
    },
];

const SCHEMATA: &[(&str, Kind)] = &[
    ("catalog_name", Text),
    ("schema_name", Text),
    ("schema_owner", Text),
    ("default_character_set_catalog", Text),
    ("default_character_set_schema", Text),
    ("default_character_set_name", Text),
    ("sql_path", Text),
];

fn schemata(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(SCHEMATA);
    for (_, name) in super::relations::SCHEMAS {
        rows.push(vec![
            ("catalog_name", source.database.into()),
            ("schema_name", (*name).into()),
            ("schema_owner", source.user().into()),
        ]);
    }
    Ok(rows)
}

const TABLES: &[(&str, Kind)] = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("table_type", Text),
    ("self_referencing_column_name", Text),
    ("reference_generation", Text),
    ("user_defined_type_catalog", Text),
    ("user_defined_type_schema", Text),
    ("user_defined_type_name", Text),
    ("is_insertable_into", Text),
    ("is_typed", Text),
    ("commit_action", Text),
];

fn tables(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(TABLES);
    let mut entries: Vec<(String, &str)> = table_defs(source)
        .iter()
        .map(|d| (d.name.clone(), "BASE TABLE"))
        .collect();
    entries.extend(source.catalog.view_names().into_iter().map(|n| (n, "VIEW")));
    entries.sort();
    for (name, kind) in entries {
        rows.push(vec![
            ("table_catalog", source.database.into()),
            ("table_schema", "public".into()),
            ("table_name", name.into()),
            ("table_type", kind.into()),
            (
                "is_insertable_into",
                if kind == "VIEW" { "NO" } else { "YES" }.into(),
            ),
            ("is_typed", "NO".into()),
        ]);
    }
    Ok(rows)
}

const VIEWS: &[(&str, Kind)] = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("view_definition", Text),
    ("check_option", Text),
    ("is_updatable", Text),
    ("is_insertable_into", Text),
    ("is_trigger_updatable", Text),
    ("is_trigger_deletable", Text),
    ("is_trigger_insertable_into", Text),
];

fn views(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(VIEWS);
    let mut views = source.catalog.views();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    for view in views {
        rows.push(vec![
            ("table_catalog", source.database.into()),
            ("table_schema", "public".into()),
            ("table_name", view.name.as_str().into()),
            ("view_definition", view.sql.as_str().into()),
            ("check_option", "NONE".into()),
            ("is_updatable", "NO".into()),
            ("is_insertable_into", "NO".into()),
            ("is_trigger_updatable", "NO".into()),
            ("is_trigger_deletable", "NO".into()),
            ("is_trigger_insertable_into", "NO".into()),
        ]);
    }
    Ok(rows)
}

const COLUMNS: &[(&str, Kind)] = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("column_name", Text),
    ("ordinal_position", Int4),
    ("column_default", Text),
    ("is_nullable", Text),
    ("data_type", Text),
    ("character_maximum_length", Int4),
    ("character_octet_length", Int4),
    ("numeric_precision", Int4),
    ("numeric_precision_radix", Int4),
    ("numeric_scale", Int4),
    ("datetime_precision", Int4),
    ("interval_type", Text),
    ("interval_precision", Int4),
    ("character_set_catalog", Text),
    ("character_set_schema", Text),
    ("character_set_name", Text),
    ("collation_catalog", Text),
    ("collation_schema", Text),
    ("collation_name", Text),
    ("domain_catalog", Text),
    ("domain_schema", Text),
    ("domain_name", Text),
    ("udt_catalog", Text),
    ("udt_schema", Text),
    ("udt_name", Text),
    ("scope_catalog", Text),
    ("scope_schema", Text),
    ("scope_name", Text),
    ("maximum_cardinality", Int4),
    ("dtd_identifier", Text),
    ("is_self_referencing", Text),
    ("is_identity", Text),
    ("identity_generation", Text),
    ("identity_start", Text),
    ("identity_increment", Text),
    ("identity_maximum", Text),
    ("identity_minimum", Text),
    ("identity_cycle", Text),
    ("is_generated", Text),
    ("generation_expression", Text),
    ("is_updatable", Text),
];

/// The standard's name of a type and PostgreSQL's internal one (`udt_name`).
fn type_names(ty: &SqlType) -> (&'static str, &'static str) {
    match ty {
        SqlType::Bool => ("boolean", "bool"),
        SqlType::Byte | SqlType::Short => ("smallint", "int2"),
        SqlType::Integer => ("integer", "int4"),
        SqlType::Long => ("bigint", "int8"),
        SqlType::Float => ("real", "float4"),
        SqlType::Double => ("double precision", "float8"),
        SqlType::Numeric { .. } => ("numeric", "numeric"),
        SqlType::Text {
            max_len: Some(_),
            padded: true,
        } => ("character", "bpchar"),
        SqlType::Text {
            max_len: Some(_),
            padded: false,
        } => ("character varying", "varchar"),
        SqlType::Text { .. } => ("text", "text"),
        SqlType::Blob => ("bytea", "bytea"),
        SqlType::Timestamp { .. } => ("timestamp without time zone", "timestamp"),
        SqlType::TimestampTz => ("timestamp with time zone", "timestamptz"),
        SqlType::Date => ("date", "date"),
    }
}

/// One column of a table or view, as `information_schema.columns` describes it.
struct ColumnFacts<'a> {
    table: &'a str,
    position: usize,
    name: &'a str,
    ty: &'a SqlType,
    nullable: bool,
    default: Option<&'a str>,
    updatable: bool,
}

fn column_row(source: &Source, column: ColumnFacts) -> Vec<(&'static str, V)> {
    let ColumnFacts {
        table,
        position,
        name,
        ty,
        nullable,
        default,
        updatable,
    } = column;
    let (data_type, udt) = type_names(ty);
    let pg = PgType::of(ty);
    let mut row = vec![
        ("table_catalog", source.database.into()),
        ("table_schema", "public".into()),
        ("table_name", table.into()),
        ("column_name", name.into()),
        ("ordinal_position", (position as i64).into()),
        ("column_default", default.into()),
        ("is_nullable", if nullable { "YES" } else { "NO" }.into()),
        ("data_type", data_type.into()),
        ("udt_catalog", source.database.into()),
        ("udt_schema", "pg_catalog".into()),
        ("udt_name", udt.into()),
        ("dtd_identifier", (position as i64).to_string().into()),
        ("is_self_referencing", "NO".into()),
        ("is_identity", "NO".into()),
        ("identity_cycle", "NO".into()),
        ("is_generated", "NEVER".into()),
        ("is_updatable", if updatable { "YES" } else { "NO" }.into()),
    ];
    match ty {
        SqlType::Text { max_len, .. } => {
            let octets = max_len.map_or(1_073_741_824, |n| i64::from(n) * 4);
            row.push(("character_maximum_length", max_len.map(i64::from).into()));
            row.push(("character_octet_length", V::Int(octets)));
        }
        SqlType::Numeric { precision, scale } => {
            row.push(("numeric_precision", i64::from(*precision).into()));
            row.push(("numeric_precision_radix", 10.into()));
            row.push(("numeric_scale", i64::from(*scale).into()));
        }
        SqlType::Byte | SqlType::Short | SqlType::Integer | SqlType::Long => {
            let bits = match pg.oid {
                types::INT2 => 16,
                types::INT4 => 32,
                _ => 64,
            };
            row.push(("numeric_precision", bits.into()));
            row.push(("numeric_precision_radix", 2.into()));
            row.push(("numeric_scale", 0.into()));
        }
        SqlType::Float | SqlType::Double => {
            let bits = if pg.oid == types::FLOAT4 { 24 } else { 53 };
            row.push(("numeric_precision", bits.into()));
            row.push(("numeric_precision_radix", 2.into()));
        }
        SqlType::Timestamp { .. } | SqlType::TimestampTz | SqlType::Date => {
            let precision = match (ty, pg.typmod) {
                (SqlType::Date, _) => 0,
                (_, m) if m >= 0 => m,
                _ => 6,
            };
            row.push(("datetime_precision", precision.into()));
        }
        SqlType::Bool | SqlType::Blob => {}
    }
    row
}

fn columns(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(COLUMNS);
    for def in table_defs(source) {
        for (i, column) in def.columns.iter().enumerate() {
            rows.push(column_row(
                source,
                ColumnFacts {
                    table: &def.name,
                    position: i + 1,
                    name: &column.name,
                    ty: &column.ty,
                    nullable: column.nullable,
                    default: column.default.as_deref(),
                    updatable: true,
                },
            ));
        }
    }
    for (view, schema) in &source.views {
        let Some(schema) = schema else { continue };
        for (i, field) in schema.fields().iter().enumerate() {
            let ty = SqlType::from_arrow(field.data_type()).unwrap_or(SqlType::Text {
                max_len: None,
                padded: false,
            });
            rows.push(column_row(
                source,
                ColumnFacts {
                    table: &view.name,
                    position: i + 1,
                    name: field.name(),
                    ty: &ty,
                    nullable: true,
                    default: None,
                    updatable: false,
                },
            ));
        }
    }
    Ok(rows)
}

const TABLE_CONSTRAINTS: &[(&str, Kind)] = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("constraint_type", Text),
    ("is_deferrable", Text),
    ("initially_deferred", Text),
    ("enforced", Text),
    ("nulls_distinct", Text),
];

fn table_constraints(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(TABLE_CONSTRAINTS);
    for (def, index, kind) in key_constraints(source) {
        rows.push(vec![
            ("constraint_catalog", source.database.into()),
            ("constraint_schema", "public".into()),
            ("constraint_name", index.name.as_str().into()),
            ("table_catalog", source.database.into()),
            ("table_schema", "public".into()),
            ("table_name", def.name.as_str().into()),
            (
                "constraint_type",
                if kind == "p" { "PRIMARY KEY" } else { "UNIQUE" }.into(),
            ),
            ("is_deferrable", "NO".into()),
            ("initially_deferred", "NO".into()),
            ("enforced", "YES".into()),
            ("nulls_distinct", "YES".into()),
        ]);
    }
    Ok(rows)
}

const KEY_COLUMN_USAGE: &[(&str, Kind)] = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("column_name", Text),
    ("ordinal_position", Int4),
    ("position_in_unique_constraint", Int4),
];

fn key_column_usage(source: &Source) -> Result<Rows> {
    key_column_rows(source, KEY_COLUMN_USAGE, true)
}

/// One row per column of each key constraint (`key_column_usage` also numbers them).
fn key_column_rows(source: &Source, layout: super::table::Layout, numbered: bool) -> Result<Rows> {
    let mut rows = Rows::new(layout);
    for (def, index, _) in key_constraints(source) {
        for (position, c) in index.columns.iter().enumerate() {
            let Some(column) = def.columns.get(*c) else {
                continue;
            };
            let mut row = vec![
                ("constraint_catalog", source.database.into()),
                ("constraint_schema", "public".into()),
                ("constraint_name", index.name.as_str().into()),
                ("table_catalog", source.database.into()),
                ("table_schema", "public".into()),
                ("table_name", def.name.as_str().into()),
                ("column_name", column.name.as_str().into()),
            ];
            if numbered {
                row.push(("ordinal_position", (position as i64 + 1).into()));
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

const CONSTRAINT_COLUMN_USAGE: &[(&str, Kind)] = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("column_name", Text),
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
];

fn constraint_column_usage(source: &Source) -> Result<Rows> {
    key_column_rows(source, CONSTRAINT_COLUMN_USAGE, false)
}

const REFERENTIAL_CONSTRAINTS: &[(&str, Kind)] = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("unique_constraint_catalog", Text),
    ("unique_constraint_schema", Text),
    ("unique_constraint_name", Text),
    ("match_option", Text),
    ("update_rule", Text),
    ("delete_rule", Text),
];

/// Kura has no foreign keys.
fn no_foreign_keys(_: &Source) -> Result<Rows> {
    Ok(Rows::new(REFERENTIAL_CONSTRAINTS))
}

const CHARACTER_SETS: &[(&str, Kind)] = &[
    ("character_set_catalog", Text),
    ("character_set_schema", Text),
    ("character_set_name", Text),
    ("character_repertoire", Text),
    ("form_of_use", Text),
    ("default_collate_catalog", Text),
    ("default_collate_schema", Text),
    ("default_collate_name", Text),
];

fn character_sets(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(CHARACTER_SETS);
    rows.push(vec![
        ("character_set_name", "UTF8".into()),
        ("character_repertoire", "UCS".into()),
        ("form_of_use", "UTF8".into()),
        ("default_collate_catalog", source.database.into()),
        ("default_collate_schema", "pg_catalog".into()),
        (
            "default_collate_name",
            crate::session::settings::DATABASE_LOCALE.into(),
        ),
    ]);
    Ok(rows)
}
