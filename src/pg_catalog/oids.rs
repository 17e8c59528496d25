//! Object identifiers: the numbers `pg_catalog` rows, RowDescription messages and regclass
//! casts use for Kura's schemas, relations, indexes, constraints, roles and types.
//!
//! Invariant: every oid is a pure function of what it names (a table's id, an index's id
//! within its table, a view's name), so the same object has the same oid in every statement,
//! every connection and after a restart, and clients may cache them as they do with
//! PostgreSQL. System objects keep PostgreSQL's own numbers (`pg_catalog` = 11, `public` =
//! 2200, the type oids of `pg_type`).

use crate::storage::TableId;
use crate::types::SqlType;
use datafusion::arrow::datatypes::TimeUnit;

pub const PG_CATALOG_NAMESPACE: i32 = 11;
pub const PUBLIC_NAMESPACE: i32 = 2200;
pub const INFORMATION_SCHEMA_NAMESPACE: i32 = 13283;
/// The role every object belongs to: PostgreSQL's bootstrap superuser oid.
pub const OWNER_ROLE: i32 = 10;
pub const DATABASE: i32 = 16384;

/// A database's oid: `public` keeps [`DATABASE`], the others follow it by their number.
pub fn database(id: u32) -> i32 {
    DATABASE + id as i32
}

/// A role's oid: the session's own user is [`OWNER_ROLE`] (the owner every object reports);
/// the others get a number derived from their name, stable across restarts.
pub fn role(name: &str, session_user: &str) -> i32 {
    if name == session_user {
        return OWNER_ROLE;
    }
    20_000 + (crc32c::crc32c(name.to_ascii_lowercase().as_bytes()) % 1_000_000_000) as i32
}
pub const HEAP_AM: i32 = 2;
pub const BTREE_AM: i32 = 403;
pub const DEFAULT_TABLESPACE: i32 = 1663;
pub const GLOBAL_TABLESPACE: i32 = 1664;

/// Relations of table `id` take the oids `base .. base + SLOTS`: the table itself, its
/// indexes (`base + 1 + index id`) and its constraints (`base + SLOTS/2 + index id`).
const TABLE_BASE: i64 = 100_000;
const SLOTS: i64 = 256;
/// Views take oids from a band above every table's: a hash of the name.
const VIEW_BASE: i64 = 1_900_000_000;
const VIEW_BAND: u64 = 200_000_000;

pub fn table(id: TableId) -> i32 {
    clamp(TABLE_BASE + (id as i64) * SLOTS)
}

pub fn index(table_id: TableId, index_id: u32) -> i32 {
    clamp(TABLE_BASE + (table_id as i64) * SLOTS + 1 + i64::from(index_id % 127))
}

pub fn constraint(table_id: TableId, index_id: u32) -> i32 {
    clamp(TABLE_BASE + (table_id as i64) * SLOTS + SLOTS / 2 + i64::from(index_id % 127))
}

/// A column default (`pg_attrdef.oid`): one per column, after the table's other oids.
pub fn attrdef(table_id: TableId, attnum: usize) -> i32 {
    clamp(TABLE_BASE + (table_id as i64) * SLOTS + SLOTS - 1 - (attnum as i64 % 64))
}

pub fn view(name: &str) -> i32 {
    // FNV-1a: stable across processes and releases, unlike the std hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    clamp(VIEW_BASE + (hash % VIEW_BAND) as i64)
}

fn clamp(oid: i64) -> i32 {
    i32::try_from(oid).unwrap_or(i32::MAX)
}

/// A relation an oid names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Table(TableId),
    Index(TableId, u32),
    Constraint(TableId, u32),
}

/// Which table-band object `oid` is, if any (views are found by hashing their names).
pub fn decode(oid: i32) -> Option<Relation> {
    let offset = i64::from(oid) - TABLE_BASE;
    if offset < 0 || i64::from(oid) >= VIEW_BASE {
        return None;
    }
    let table = (offset / SLOTS) as TableId;
    let slot = offset % SLOTS;
    Some(match slot {
        0 => Relation::Table(table),
        s if s < SLOTS / 2 => Relation::Index(table, (s - 1) as u32),
        s => Relation::Constraint(table, (s - SLOTS / 2) as u32),
    })
}

/// How a column type appears in `pg_attribute` and RowDescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgType {
    pub oid: i32,
    pub typmod: i32,
    pub len: i16,
}

pub mod types {
    pub const BOOL: i32 = 16;
    pub const BYTEA: i32 = 17;
    pub const NAME: i32 = 19;
    pub const INT8: i32 = 20;
    pub const INT2: i32 = 21;
    pub const INT2VECTOR: i32 = 22;
    pub const INT4: i32 = 23;
    pub const REGPROC: i32 = 24;
    pub const TEXT: i32 = 25;
    pub const OID: i32 = 26;
    pub const OIDVECTOR: i32 = 30;
    pub const FLOAT4: i32 = 700;
    pub const FLOAT8: i32 = 701;
    pub const BPCHAR: i32 = 1042;
    pub const VARCHAR: i32 = 1043;
    pub const DATE: i32 = 1082;
    pub const TIME: i32 = 1083;
    pub const TIMESTAMP: i32 = 1114;
    pub const TIMESTAMPTZ: i32 = 1184;
    pub const INTERVAL: i32 = 1186;
    pub const NUMERIC: i32 = 1700;
    pub const REGCLASS: i32 = 2205;
    pub const REGTYPE: i32 = 2206;
}

impl PgType {
    pub fn of(ty: &SqlType) -> PgType {
        let plain = |oid, len| PgType {
            oid,
            typmod: -1,
            len,
        };
        match ty {
            SqlType::Bool => plain(types::BOOL, 1),
            SqlType::Byte | SqlType::Short => plain(types::INT2, 2),
            SqlType::Integer => plain(types::INT4, 4),
            SqlType::Long => plain(types::INT8, 8),
            SqlType::Float => plain(types::FLOAT4, 4),
            SqlType::Double => plain(types::FLOAT8, 8),
            SqlType::Numeric { precision, scale } => PgType {
                oid: types::NUMERIC,
                typmod: ((i32::from(*precision) << 16) | (i32::from(*scale) & 0xffff)) + 4,
                len: -1,
            },
            SqlType::Text {
                max_len: Some(n),
                padded,
            } => PgType {
                oid: if *padded {
                    types::BPCHAR
                } else {
                    types::VARCHAR
                },
                typmod: i32::try_from(*n).unwrap_or(i32::MAX - 4) + 4,
                len: -1,
            },
            SqlType::Text { max_len: None, .. } => plain(types::TEXT, -1),
            SqlType::Blob => plain(types::BYTEA, -1),
            SqlType::Timestamp { unit } => PgType {
                oid: types::TIMESTAMP,
                typmod: match unit {
                    TimeUnit::Second => 0,
                    TimeUnit::Millisecond => 3,
                    TimeUnit::Microsecond | TimeUnit::Nanosecond => -1,
                },
                len: 8,
            },
            SqlType::TimestampTz => plain(types::TIMESTAMPTZ, 8),
            SqlType::Date => plain(types::DATE, 4),
        }
    }
}

/// `format_type(oid, typmod)`: the SQL name of a type, with its modifier. `None` for an oid
/// this table does not know (the caller looks it up in `pg_type`).
pub fn format_type(oid: i32, typmod: Option<i32>) -> Option<String> {
    let typmod = typmod.filter(|m| *m >= 0);
    let name = match oid {
        types::BOOL => "boolean",
        types::BYTEA => "bytea",
        types::NAME => "name",
        types::INT8 => "bigint",
        types::INT2 => "smallint",
        types::INT2VECTOR => "int2vector",
        types::INT4 => "integer",
        types::REGPROC => "regproc",
        types::TEXT => "text",
        types::OID => "oid",
        types::OIDVECTOR => "oidvector",
        types::FLOAT4 => "real",
        types::FLOAT8 => "double precision",
        types::DATE => "date",
        types::INTERVAL => "interval",
        types::REGCLASS => "regclass",
        types::REGTYPE => "regtype",
        types::BPCHAR => {
            return Some(match typmod {
                Some(m) => format!("character({})", m - 4),
                None => "bpchar".into(),
            });
        }
        types::VARCHAR => {
            return Some(match typmod {
                Some(m) => format!("character varying({})", m - 4),
                None => "character varying".into(),
            });
        }
        types::NUMERIC => {
            return Some(match typmod {
                Some(m) => format!("numeric({},{})", (m - 4) >> 16, (m - 4) & 0xffff),
                None => "numeric".into(),
            });
        }
        types::TIME => return Some(with_precision("time", typmod, " without time zone")),
        types::TIMESTAMP => {
            return Some(with_precision("timestamp", typmod, " without time zone"));
        }
        types::TIMESTAMPTZ => return Some(with_precision("timestamp", typmod, " with time zone")),
        _ => return None,
    };
    Some(name.to_string())
}

fn with_precision(base: &str, typmod: Option<i32>, suffix: &str) -> String {
    match typmod {
        Some(p) => format!("{base}({p}){suffix}"),
        None => format!("{base}{suffix}"),
    }
}

/// The attribute numbers (1-based) of `columns`.
pub fn attnums(columns: &[usize]) -> Vec<i64> {
    columns.iter().map(|c| *c as i64 + 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_decode_to_what_they_name() {
        assert_eq!(decode(table(7)), Some(Relation::Table(7)));
        assert_eq!(decode(index(7, 2)), Some(Relation::Index(7, 2)));
        assert_eq!(decode(constraint(7, 1)), Some(Relation::Constraint(7, 1)));
        assert_eq!(decode(view("v")), None);
        assert_eq!(decode(2200), None);
        assert_eq!(view("hourly"), view("hourly"));
        assert_ne!(view("a"), view("b"));
    }

    #[test]
    fn types_print_with_their_modifiers() {
        let varchar = PgType::of(&SqlType::Text {
            max_len: Some(64),
            padded: false,
        });
        assert_eq!((varchar.oid, varchar.typmod), (1043, 68));
        assert_eq!(
            format_type(varchar.oid, Some(varchar.typmod)).as_deref(),
            Some("character varying(64)")
        );
        let numeric = PgType::of(&SqlType::Numeric {
            precision: 6,
            scale: 2,
        });
        assert_eq!(
            format_type(numeric.oid, Some(numeric.typmod)).as_deref(),
            Some("numeric(6,2)")
        );
        assert_eq!(
            format_type(1114, Some(-1)).as_deref(),
            Some("timestamp without time zone")
        );
        assert_eq!(
            format_type(1114, Some(3)).as_deref(),
            Some("timestamp(3) without time zone")
        );
        assert_eq!(format_type(99999, None), None);
    }
}
