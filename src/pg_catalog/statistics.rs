//! The statistics views clients read for row estimates and connection facts:
//! `pg_stat_user_tables` / `pg_stat_all_tables` (Metabase's table list, DBeaver) and
//! `pg_stat_ssl` (DataGrip).
//!
//! Invariant: a figure Kura measures is exact at the statement's snapshot (`n_live_tup`,
//! `n_dead_tup`); a figure it does not track yet (scan and write counters, vacuum times) is
//! NULL rather than an invented zero.

use super::Source;
use super::oids;
use super::relations::table_defs;
use super::table::{Kind, Rows};
use crate::error::Result;

use Kind::*;

pub const STAT_TABLES: &[(&str, Kind)] = &[
    ("relid", Oid),
    ("schemaname", Text),
    ("relname", Text),
    ("seq_scan", Int8),
    ("seq_tup_read", Int8),
    ("idx_scan", Int8),
    ("idx_tup_fetch", Int8),
    ("n_tup_ins", Int8),
    ("n_tup_upd", Int8),
    ("n_tup_del", Int8),
    ("n_tup_hot_upd", Int8),
    ("n_live_tup", Int8),
    ("n_dead_tup", Int8),
    ("n_mod_since_analyze", Int8),
    ("n_ins_since_vacuum", Int8),
    ("last_vacuum", Timestamptz),
    ("last_autovacuum", Timestamptz),
    ("last_analyze", Timestamptz),
    ("last_autoanalyze", Timestamptz),
    ("vacuum_count", Int8),
    ("autovacuum_count", Int8),
    ("analyze_count", Int8),
    ("autoanalyze_count", Int8),
];

/// One row per table: live rows are those visible to the statement, dead rows the stored
/// versions that are not (deleted or replaced, awaiting garbage collection).
pub fn stat_tables(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(STAT_TABLES);
    for def in table_defs(source) {
        let Some(table) = source.catalog.table_by_id(def.id) else {
            continue;
        };
        let (mut live, mut stored) = (0usize, 0usize);
        for partition in table.partitions().iter() {
            stored += partition.stored_versions();
            if let Some(ts) = source.snapshot {
                live += partition.visible_count(ts);
            }
        }
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let mut row = vec![
            ("relid", oids::table(def.id).into()),
            ("schemaname", "public".into()),
            ("relname", def.name.as_str().into()),
        ];
        if source.snapshot.is_some() {
            row.push(("n_live_tup", count(live).into()));
            row.push(("n_dead_tup", count(stored.saturating_sub(live)).into()));
        }
        rows.push(row);
    }
    Ok(rows)
}

pub const STAT_SSL: &[(&str, Kind)] = &[
    ("pid", Int4),
    ("ssl", Bool),
    ("version", Text),
    ("cipher", Text),
    ("bits", Int4),
    ("client_dn", Text),
    ("client_serial", Text),
    ("issuer_dn", Text),
];

/// One row per connection: whether it uses TLS (the protocol details are not tracked).
pub fn stat_ssl(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(STAT_SSL);
    if let Some(session) = source.session {
        for activity in session.activities() {
            rows.push(vec![
                ("pid", activity.pid.into()),
                ("ssl", activity.ssl.into()),
            ]);
        }
    }
    Ok(rows)
}
