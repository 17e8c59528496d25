//! The catalog functions clients call: `format_type`, `pg_get_indexdef`,
//! `pg_get_constraintdef`, `pg_get_viewdef`, `pg_get_expr`, `to_regclass` and friends, the
//! visibility and privilege tests, `pg_get_function_*`, and the name lookups that
//! `oid::regclass`-style casts are rewritten into (see [`super::rewrite`]).
//!
//! Invariant: each function reads the catalog when it runs and answers what PostgreSQL would
//! for the same objects; a lookup of something that does not exist gives NULL (the `to_reg*`
//! family) or PostgreSQL's error (the casts).

use std::sync::{Arc, OnceLock, Weak};

use datafusion::arrow::array::{Array, ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use super::oids::{self, Relation};
use super::relations::{SCHEMAS, constraint_definition, index_definition, quote_ident};
use super::statics;
use crate::error::{KuraError, sqlstate};
use crate::query::Engine;
use crate::storage::Catalog;

type Eval = dyn Fn(&[ScalarValue]) -> DfResult<ScalarValue> + Send + Sync;

/// A function evaluated value by value; its arguments are whatever the caller passes (the
/// implementation reads numbers from integers or numeric strings, names from text).
struct RowFunction {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    eval: Arc<Eval>,
}

impl std::fmt::Debug for RowFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for RowFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for RowFunction {}

impl std::hash::Hash for RowFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for RowFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        if all_scalar {
            let values: Vec<ScalarValue> = args
                .args
                .iter()
                .map(|a| match a {
                    ColumnarValue::Scalar(s) => s.clone(),
                    ColumnarValue::Array(_) => ScalarValue::Null,
                })
                .collect();
            return Ok(ColumnarValue::Scalar(self.cast((self.eval)(&values)?)?));
        }
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<_>>()?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let values: Vec<ScalarValue> = arrays
                .iter()
                .map(|a| ScalarValue::try_from_array(a, row))
                .collect::<DfResult<_>>()?;
            out.push(self.cast((self.eval)(&values)?)?);
        }
        if out.is_empty() {
            return Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_empty_array(&self.returns),
            ));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

impl RowFunction {
    fn cast(&self, value: ScalarValue) -> DfResult<ScalarValue> {
        if value.data_type() == self.returns {
            Ok(value)
        } else {
            value.cast_to(&self.returns)
        }
    }
}

pub(super) fn function(
    name: &'static str,
    arities: &[usize],
    returns: DataType,
    eval: impl Fn(&[ScalarValue]) -> DfResult<ScalarValue> + Send + Sync + 'static,
) -> ScalarUDF {
    let signatures = arities
        .iter()
        .map(|n| {
            if *n == 0 {
                TypeSignature::Nullary
            } else {
                TypeSignature::Any(*n)
            }
        })
        .collect();
    ScalarUDF::from(RowFunction {
        name,
        signature: Signature::one_of(signatures, Volatility::Stable),
        returns,
        eval: Arc::new(eval),
    })
}

/// An integer argument: integers, or text holding one (`'16393'`).
pub(super) fn int_arg(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::Int8(v) => v.map(i64::from),
        ScalarValue::Int16(v) => v.map(i64::from),
        ScalarValue::Int32(v) => v.map(i64::from),
        ScalarValue::Int64(v) => *v,
        ScalarValue::UInt8(v) => v.map(i64::from),
        ScalarValue::UInt16(v) => v.map(i64::from),
        ScalarValue::UInt32(v) => v.map(i64::from),
        ScalarValue::UInt64(v) => v.and_then(|v| i64::try_from(v).ok()),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn oid_arg(value: &ScalarValue) -> Option<i32> {
    int_arg(value).and_then(|v| i32::try_from(v).ok())
}

pub(super) fn text_arg(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => s.clone(),
        ScalarValue::Null => None,
        other if other.is_null() => None,
        other => Some(other.to_string()),
    }
}

pub(super) fn text(value: Option<String>) -> ScalarValue {
    ScalarValue::Utf8(value)
}

fn boolean(value: Option<bool>) -> ScalarValue {
    ScalarValue::Boolean(value)
}

fn oid(value: Option<i32>) -> ScalarValue {
    ScalarValue::Int32(value)
}

pub(super) fn error(e: KuraError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// A reg* input cast: the oid `lookup` finds for the name in `arg`, or the error `missing`
/// makes of the name (PostgreSQL fails such a cast rather than returning NULL).
fn reg_input(
    arg: &ScalarValue,
    lookup: impl Fn(&str) -> Option<i32>,
    missing: impl Fn(&str) -> KuraError,
) -> DfResult<ScalarValue> {
    // An oid, or digits, is the object itself (`'16393'::regclass`).
    if let Some(number) = oid_arg(arg) {
        return Ok(oid(Some(number)));
    }
    match text_arg(arg) {
        None => Ok(oid(None)),
        Some(name) => match lookup(&name) {
            Some(o) => Ok(oid(Some(o))),
            None => Err(error(missing(&name))),
        },
    }
}

/// The name of a relation oid, as `oid::regclass` prints it.
fn relation_name(catalog: &Catalog, oid: i32) -> Option<String> {
    if let Some(relation) = oids::decode(oid) {
        let table_id = match relation {
            Relation::Table(t) | Relation::Index(t, _) | Relation::Constraint(t, _) => t,
        };
        let def = catalog.table_by_id(table_id)?.def();
        return match relation {
            Relation::Table(_) => Some(quote_ident(&def.name)),
            Relation::Index(_, i) | Relation::Constraint(_, i) => def
                .indexes
                .iter()
                .find(|x| x.id == i)
                .map(|x| quote_ident(&x.name)),
        };
    }
    if let Some((name, _)) = SYSTEM_RELATIONS.iter().find(|(_, o)| *o == oid) {
        return Some(name.to_string());
    }
    catalog
        .view_names()
        .into_iter()
        .find(|name| oids::view(name) == oid)
        .map(|name| quote_ident(&name))
}

/// PostgreSQL's oids of the system catalogs clients name in casts
/// (`d.classoid = 'pg_class'::regclass`).
const SYSTEM_RELATIONS: &[(&str, i32)] = &[
    ("pg_type", 1247),
    ("pg_attribute", 1249),
    ("pg_proc", 1255),
    ("pg_class", 1259),
    ("pg_authid", 1260),
    ("pg_database", 1262),
    ("pg_am", 2601),
    ("pg_attrdef", 2604),
    ("pg_constraint", 2606),
    ("pg_description", 2609),
    ("pg_index", 2610),
    ("pg_namespace", 2615),
    ("pg_roles", 12001),
];

/// The oid of a relation named `name` (`schema.name` or `name`, quoted or not).
pub(super) fn relation_oid(catalog: &Catalog, name: &str) -> Option<i32> {
    let parts = identifier_parts(name);
    let system = |n: &str| {
        SYSTEM_RELATIONS
            .iter()
            .find(|(r, _)| *r == n)
            .map(|(_, o)| *o)
    };
    let relation = match parts.as_slice() {
        [schema, name] if schema == "pg_catalog" => return system(name),
        [name] if catalog.table(name).is_none() && system(name).is_some() => {
            return system(name);
        }
        [name] => name.clone(),
        [schema, name] if schema == "public" => name.clone(),
        _ => return None,
    };
    if let Some(table) = catalog.table(&relation) {
        return Some(oids::table(table.def().id));
    }
    if catalog.view(&relation).is_some() {
        return Some(oids::view(&relation));
    }
    for table in catalog.tables() {
        let def = table.def();
        if let Some(index) = def.indexes.iter().find(|i| i.name == relation) {
            return Some(oids::index(def.id, index.id));
        }
    }
    None
}

/// `a.b`, `"A".b`: the parts of a possibly qualified name, unquoted and case-folded.
fn identifier_parts(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = name.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c if quoted => current.push(c),
            c => current.extend(c.to_lowercase()),
        }
    }
    parts.push(current);
    parts
}

/// Rows of a static catalog relation as (oid, name) pairs, for type and function lookups.
fn static_names(relation: &str, name_column: &str) -> &'static [(i32, String)] {
    static TYPES: OnceLock<Vec<(i32, String)>> = OnceLock::new();
    static PROCS: OnceLock<Vec<(i32, String)>> = OnceLock::new();
    let cell = if relation == "pg_type" {
        &TYPES
    } else {
        &PROCS
    };
    cell.get_or_init(|| {
        let mut out = Vec::new();
        for batch in statics::batches(relation) {
            let (Some(oids), Some(names)) = (
                column::<Int32Array>(batch, "oid"),
                column::<StringArray>(batch, name_column),
            ) else {
                continue;
            };
            for i in 0..batch.num_rows() {
                if !oids.is_null(i) && !names.is_null(i) {
                    out.push((oids.value(i), names.value(i).to_string()));
                }
            }
        }
        out
    })
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Option<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
}

/// `pg_type` facts `format_type` needs beyond the name: the element of an array type.
fn type_element(oid: i32) -> Option<i32> {
    static ELEMENTS: OnceLock<Vec<(i32, i32)>> = OnceLock::new();
    let elements = ELEMENTS.get_or_init(|| {
        let mut out = Vec::new();
        for batch in statics::batches("pg_type") {
            let (Some(oids), Some(elems), Some(categories)) = (
                column::<Int32Array>(batch, "oid"),
                column::<Int32Array>(batch, "typelem"),
                column::<StringArray>(batch, "typcategory"),
            ) else {
                continue;
            };
            for i in 0..batch.num_rows() {
                if categories.value(i) == "A" && elems.value(i) != 0 {
                    out.push((oids.value(i), elems.value(i)));
                }
            }
        }
        out
    });
    elements.iter().find(|(o, _)| *o == oid).map(|(_, e)| *e)
}

/// `format_type(oid, typmod)`.
pub fn format_type(oid: i32, typmod: Option<i32>) -> Option<String> {
    if let Some(name) = oids::format_type(oid, typmod) {
        return Some(name);
    }
    if let Some(element) = type_element(oid) {
        return format_type(element, typmod).map(|e| format!("{e}[]"));
    }
    static_names("pg_type", "typname")
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, name)| name.clone())
}

/// The oid of type `name` as SQL writes it (`integer`, `int4`, `varchar(10)`, `text[]`).
fn type_oid(name: &str) -> Option<i32> {
    let lower = name.trim().to_lowercase();
    let lower = lower.strip_prefix("pg_catalog.").unwrap_or(&lower);
    let base = lower.split('(').next().unwrap_or(lower).trim();
    if let Some(element) = base.strip_suffix("[]") {
        let element = type_oid(element)?;
        return static_names("pg_type", "typname")
            .iter()
            .find(|(o, _)| type_element(*o) == Some(element))
            .map(|(o, _)| *o);
    }
    let internal = match base {
        "integer" | "int" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "real" => "float4",
        "double precision" | "float" => "float8",
        "boolean" => "bool",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        other => other,
    };
    let internal = internal.trim_matches('"');
    static_names("pg_type", "typname")
        .iter()
        .find(|(_, n)| n == internal)
        .map(|(o, _)| *o)
}

/// `pg_get_function_arguments` / `_result` over the static `pg_proc`.
fn function_signature(oid: i32) -> Option<(String, String)> {
    for batch in statics::batches("pg_proc") {
        let oids = column::<Int32Array>(batch, "oid")?;
        let Some(row) = (0..batch.num_rows()).find(|i| oids.value(*i) == oid) else {
            continue;
        };
        let rettype = column::<Int32Array>(batch, "prorettype")?.value(row);
        let retset = batch
            .column_by_name("proretset")
            .and_then(|c| ScalarValue::try_from_array(c, row).ok())
            == Some(ScalarValue::Boolean(Some(true)));
        let args = batch
            .column_by_name("proargtypes")
            .and_then(|c| ScalarValue::try_from_array(c, row).ok());
        let mut names = Vec::new();
        if let Some(ScalarValue::List(list)) = args {
            let values = list.value(0);
            if let Some(items) = values.as_any().downcast_ref::<Int32Array>() {
                for item in items.iter().flatten() {
                    names.push(format_type(item, None).unwrap_or_else(|| item.to_string()));
                }
            }
        }
        let result = format_type(rettype, None).unwrap_or_else(|| rettype.to_string());
        let result = if retset {
            format!("SETOF {result}")
        } else {
            result
        };
        return Some((names.join(", "), result));
    }
    None
}

/// `pg_size_pretty(bigint)`.
fn size_pretty(bytes: i64) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes;
    let mut unit = 0;
    // PostgreSQL switches unit once the value reaches 10240 of the current one, rounding.
    while value.unsigned_abs() >= 10 * 1024 && unit + 1 < units.len() {
        value = if value >= 0 {
            (value + 512) / 1024
        } else {
            (value - 512) / 1024
        };
        unit += 1;
    }
    format!("{value} {}", units[unit])
}

fn start_time() -> i64 {
    static START: OnceLock<i64> = OnceLock::new();
    *START.get_or_init(|| chrono::Utc::now().timestamp_micros())
}

/// Registers the catalog functions of a database whose catalog is `catalog`.
pub fn register(ctx: &SessionContext, catalog: &Arc<Catalog>, engine: Weak<Engine>) {
    start_time();
    for udf in all(catalog) {
        ctx.register_udf(udf);
    }
    for udf in super::sizes::functions(catalog, engine) {
        ctx.register_udf(udf);
    }
    super::keywords::register(ctx);
    ctx.register_udf(super::expand_array::udf());
    ctx.register_udf(datafusion_pg_catalog::pg_catalog::quote_ident_udf::create_quote_ident_udf());
    ctx.register_udf(datafusion_pg_catalog::pg_catalog::quote_ident_udf::create_parse_ident_udf());
    ctx.register_udf(datafusion_pg_catalog::pg_catalog::array_bounds_udf::create_array_upper_udf());
    ctx.register_udf(datafusion_pg_catalog::pg_catalog::array_bounds_udf::create_array_lower_udf());
    ctx.register_udf(datafusion_pg_catalog::pg_catalog::create_pg_get_partkeydef_udf());
    ctx.register_udf(
        datafusion_pg_catalog::pg_catalog::create_pg_get_statisticsobjdef_columns_udf(),
    );
}

/// PostgreSQL's answers of `pg_indexam_has_property` for its built-in access methods (Kura's
/// indexes are all btree); NULL for other methods and unknown properties.
fn index_am_property(am: i32, property: &str) -> Option<bool> {
    const PROPERTIES: [&str; 5] = [
        "can_order",
        "can_unique",
        "can_multi_col",
        "can_exclude",
        "can_include",
    ];
    let answers: [bool; 5] = match am {
        oids::BTREE_AM => [true, true, true, true, true],
        405 => [false, false, false, true, false],  // hash
        783 => [false, false, true, true, true],    // gist
        2742 => [false, false, true, false, false], // gin
        4000 => [false, false, false, true, true],  // spgist
        3580 => [false, false, true, false, false], // brin
        _ => return None,
    };
    let index = PROPERTIES.iter().position(|p| *p == property)?;
    Some(answers[index])
}

fn all(catalog: &Arc<Catalog>) -> Vec<ScalarUDF> {
    let utf8 = DataType::Utf8;
    let mut out = vec![
        function("format_type", &[2], utf8.clone(), |a| {
            let Some(oid) = oid_arg(&a[0]) else {
                return Ok(text(None));
            };
            let typmod = int_arg(&a[1]).map(|m| m as i32);
            Ok(text(Some(
                format_type(oid, typmod).unwrap_or_else(|| "???".into()),
            )))
        }),
        // The type name of a value (PostgreSQL returns a regtype, which prints as this name).
        function("pg_typeof", &[1], utf8.clone(), |a| {
            let name = match a[0].data_type() {
                DataType::Null => Some("unknown".to_string()),
                // GridDB's BYTE travels as smallint.
                DataType::Int8 => Some("smallint".to_string()),
                t => arrow_pg::datatypes::into_pg_type(&t)
                    .ok()
                    .and_then(|t| format_type(t.oid() as i32, None)),
            };
            Ok(text(name))
        }),
        function("pg_get_expr", &[2, 3], utf8.clone(), |a| {
            Ok(text(text_arg(&a[0])))
        }),
        function("pg_encoding_to_char", &[1], utf8.clone(), |a| {
            Ok(text(int_arg(&a[0]).map(|e| {
                if e == i64::from(super::relations::UTF8_ENCODING) {
                    "UTF8".to_string()
                } else {
                    String::new()
                }
            })))
        }),
        function("pg_size_pretty", &[1], utf8.clone(), |a| {
            Ok(text(int_arg(&a[0]).map(size_pretty)))
        }),
        // Kura has only PostgreSQL's two built-in tablespaces, whose location is "".
        function("pg_tablespace_location", &[1], utf8.clone(), |a| {
            Ok(text(oid_arg(&a[0]).and_then(|o| {
                [oids::DEFAULT_TABLESPACE, oids::GLOBAL_TABLESPACE]
                    .contains(&o)
                    .then(String::new)
            })))
        }),
        function("pg_is_in_recovery", &[0], DataType::Boolean, |_| {
            Ok(boolean(Some(false)))
        }),
        function(
            "pg_postmaster_start_time",
            &[0],
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            |_| {
                Ok(ScalarValue::TimestampMicrosecond(
                    Some(start_time()),
                    Some("UTC".into()),
                ))
            },
        ),
        function("to_regtype", &[1], DataType::Int32, |a| {
            Ok(oid(text_arg(&a[0]).and_then(|n| type_oid(&n))))
        }),
        function("__kura_regtype_in", &[1], DataType::Int32, |a| {
            reg_input(&a[0], type_oid, |name| {
                KuraError::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!("type \"{name}\" does not exist"),
                )
            })
        }),
        function("__kura_regtype_out", &[1], utf8.clone(), |a| {
            Ok(text(oid_arg(&a[0]).map(|o| {
                if o == 0 {
                    "-".to_string()
                } else {
                    format_type(o, None).unwrap_or_else(|| o.to_string())
                }
            })))
        }),
        function("to_regnamespace", &[1], DataType::Int32, |a| {
            Ok(oid(text_arg(&a[0]).and_then(|n| namespace_oid(&n))))
        }),
        function("__kura_regnamespace_in", &[1], DataType::Int32, |a| {
            reg_input(&a[0], namespace_oid, |name| {
                KuraError::new(
                    sqlstate::INVALID_SCHEMA_NAME,
                    format!("schema \"{name}\" does not exist"),
                )
            })
        }),
        function("__kura_regnamespace_out", &[1], utf8.clone(), |a| {
            Ok(text(oid_arg(&a[0]).map(|o| {
                SCHEMAS
                    .iter()
                    .find(|(n, _)| *n == o)
                    .map_or_else(|| o.to_string(), |(_, name)| name.to_string())
            })))
        }),
        // A function's oid from its name (regproc columns of the static `pg_type` and
        // `pg_aggregate` hold names, which lose which overload they meant: the first is
        // taken); `-` is PostgreSQL's spelling of "no function", oid 0.
        function("__kura_regproc_in", &[1], DataType::Int32, |a| {
            Ok(oid(text_arg(&a[0]).map(|name| {
                let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
                static_names("pg_proc", "proname")
                    .iter()
                    .find(|(_, n)| n == name)
                    .map_or(0, |(o, _)| *o)
            })))
        }),
        function("__kura_regproc_out", &[1], utf8.clone(), |a| {
            Ok(text(oid_arg(&a[0]).map(|o| {
                static_names("pg_proc", "proname")
                    .iter()
                    .find(|(p, _)| *p == o)
                    .map_or_else(|| o.to_string(), |(_, name)| name.clone())
            })))
        }),
        function("pg_get_function_result", &[1], utf8.clone(), |a| {
            Ok(text(
                oid_arg(&a[0]).and_then(function_signature).map(|s| s.1),
            ))
        }),
        // Kura does not count scans per relation yet (the statistics work): the count is
        // unknown, NULL, as the scan counters of pg_stat_user_tables are.
        function("pg_stat_get_numscans", &[1], DataType::Int64, |_| {
            Ok(ScalarValue::Int64(None))
        }),
        function("pg_indexam_has_property", &[2], DataType::Boolean, |a| {
            let property = oid_arg(&a[0]).zip(text_arg(&a[1]));
            Ok(boolean(property.and_then(|(am, name)| {
                index_am_property(am, &name.to_ascii_lowercase())
            })))
        }),
        // No COMMENT ON in Kura: no object has a description.
        function("obj_description", &[1, 2], utf8.clone(), |_| Ok(text(None))),
        function("col_description", &[2], utf8.clone(), |_| Ok(text(None))),
        function("shobj_description", &[2], utf8.clone(), |_| Ok(text(None))),
    ];
    // Signatures come from proargtypes, without defaults: both argument lists are the same.
    for name in [
        "pg_get_function_arguments",
        "pg_get_function_identity_arguments",
    ] {
        out.push(function(name, &[1], utf8.clone(), |a| {
            Ok(text(
                oid_arg(&a[0]).and_then(function_signature).map(|s| s.0),
            ))
        }));
    }
    // Every schema is on the search path and every function and type lives in pg_catalog.
    for name in [
        "pg_table_is_visible",
        "pg_type_is_visible",
        "pg_function_is_visible",
    ] {
        out.push(function(name, &[1], DataType::Boolean, |a| {
            Ok(boolean((!a[0].is_null()).then_some(true)))
        }));
    }
    // Until Kura has users and privileges (see the security work) every session may do
    // everything.
    for name in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_column_privilege",
        "has_any_column_privilege",
        "has_function_privilege",
        "has_sequence_privilege",
        "pg_has_role",
    ] {
        out.push(function(name, &[2, 3, 4], DataType::Boolean, |a| {
            Ok(boolean((!a.iter().any(|v| v.is_null())).then_some(true)))
        }));
    }
    // Kura has no rewrite rules (pg_rewrite is empty): no rule has a definition.
    out.push(function("pg_get_ruledef", &[1, 2], utf8.clone(), |_| {
        Ok(text(None))
    }));
    // Every table could be published (Kura has no publications yet, so the question only
    // comes from psql's `\d`, which joins the answer with the empty pg_publication).
    let c = catalog.clone();
    out.push(function(
        "pg_relation_is_publishable",
        &[1],
        DataType::Boolean,
        move |a| {
            let Some(oid) = oid_arg(&a[0]) else {
                return Ok(boolean(None));
            };
            let table =
                matches!(oids::decode(oid), Some(Relation::Table(t)) if c.table_by_id(t).is_some());
            Ok(boolean(Some(table)))
        },
    ));
    let c = catalog.clone();
    out.push(function(
        "pg_get_indexdef",
        &[1, 3],
        utf8.clone(),
        move |a| {
            let Some(Relation::Index(table, index)) = oid_arg(&a[0]).and_then(oids::decode) else {
                return Ok(text(None));
            };
            let Some(def) = c.table_by_id(table).map(|t| t.def()) else {
                return Ok(text(None));
            };
            let Some(index) = def.indexes.iter().find(|i| i.id == index) else {
                return Ok(text(None));
            };
            let column = a.get(1).and_then(int_arg).unwrap_or(0);
            if column > 0 {
                return Ok(text(
                    index
                        .columns
                        .get(column as usize - 1)
                        .and_then(|c| def.columns.get(*c))
                        .map(|c| quote_ident(&c.name)),
                ));
            }
            Ok(text(Some(index_definition(&def, index))))
        },
    ));
    let c = catalog.clone();
    out.push(function(
        "pg_get_constraintdef",
        &[1, 2],
        utf8.clone(),
        move |a| {
            let Some(Relation::Constraint(table, index)) = oid_arg(&a[0]).and_then(oids::decode)
            else {
                return Ok(text(None));
            };
            let def = c.table_by_id(table).map(|t| t.def());
            Ok(text(def.and_then(|def| {
                def.indexes
                    .iter()
                    .find(|i| i.id == index)
                    .map(|i| constraint_definition(&def, i))
            })))
        },
    ));
    let c = catalog.clone();
    out.push(function(
        "pg_get_viewdef",
        &[1, 2],
        utf8.clone(),
        move |a| {
            let sql = match &a[0] {
                v if oid_arg(v).is_some() => {
                    let o = oid_arg(v);
                    c.views()
                        .into_iter()
                        .find(|view| Some(oids::view(&view.name)) == o)
                        .map(|view| view.sql.clone())
                }
                v => text_arg(v)
                    .and_then(|name| identifier_parts(&name).pop())
                    .and_then(|name| c.view(&name))
                    .map(|view| view.sql.clone()),
            };
            Ok(text(sql))
        },
    ));
    let c = catalog.clone();
    out.push(function("to_regclass", &[1], DataType::Int32, move |a| {
        Ok(oid(text_arg(&a[0]).and_then(|n| relation_oid(&c, &n))))
    }));
    let c = catalog.clone();
    out.push(function(
        "__kura_regclass_in",
        &[1],
        DataType::Int32,
        move |a| {
            reg_input(
                &a[0],
                |name| relation_oid(&c, name),
                KuraError::undefined_table,
            )
        },
    ));
    let c = catalog.clone();
    out.push(function("__kura_regclass_out", &[1], utf8, move |a| {
        Ok(text(oid_arg(&a[0]).map(|o| {
            relation_name(&c, o).unwrap_or_else(|| o.to_string())
        })))
    }));
    out
}

fn namespace_oid(name: &str) -> Option<i32> {
    let name = identifier_parts(name).pop()?;
    SCHEMAS.iter().find(|(_, n)| *n == name).map(|(o, _)| *o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_postgresql() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10239), "10239 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(8_388_608), "8192 kB");
        assert_eq!(size_pretty(20_971_520), "20 MB");
    }

    #[test]
    fn names_split_into_parts() {
        assert_eq!(
            identifier_parts("public.Readings"),
            vec!["public", "readings"]
        );
        assert_eq!(identifier_parts("\"A.b\""), vec!["A.b"]);
    }

    #[test]
    fn types_resolve_both_ways() {
        assert_eq!(type_oid("integer"), Some(23));
        assert_eq!(type_oid("int4"), Some(23));
        assert_eq!(type_oid("character varying(10)"), Some(1043));
        assert_eq!(type_oid("int4[]"), Some(1007));
        assert_eq!(format_type(1007, None).as_deref(), Some("integer[]"));
        assert_eq!(format_type(2950, None).as_deref(), Some("uuid"));
        assert_eq!(type_oid("no_such_type"), None);
    }
}
