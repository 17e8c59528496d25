//! `pg_stat_progress_basebackup`: the backup running on this server (PostgreSQL's columns,
//! then Kura's: the set, the backup directory and the mode). No row while none runs.
//! `pg_stat_archiver`: the continuous log archiver (one row, as in PostgreSQL; Kura's own
//! columns name the set and how far its archive reaches). `kura_stat`: every statistics
//! figure of `kura stat`, one row each. `"#database_stats"`: GridDB's per-database
//! statistics metatable.
//!
//! Invariant: byte counts are of the files being read (uncompressed); the total grows once
//! the log's size is known, so `backup_streamed` never passes `backup_total` for long.

use super::Source;
use super::table::{Kind, Rows, V};
use crate::error::Result;

use Kind::*;

pub const STAT_PROGRESS_BASEBACKUP: &[(&str, Kind)] = &[
    ("pid", Int4),
    ("phase", Text),
    ("backup_total", Int8),
    ("backup_streamed", Int8),
    ("tablespaces_total", Int8),
    ("tablespaces_streamed", Int8),
    ("backup_name", Text),
    ("backup_data", Text),
    ("mode", Text),
    ("started", Timestamptz),
];

pub fn stat_progress_basebackup(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(STAT_PROGRESS_BASEBACKUP);
    let Some(backups) = source.engine.as_ref().and_then(|e| e.backups().cloned()) else {
        return Ok(rows);
    };
    if let Some(running) = backups.status().running {
        rows.push(vec![
            ("pid", V::Int(i64::from(running.pid))),
            ("phase", running.phase.describe().into()),
            ("backup_total", V::from(running.total)),
            ("backup_streamed", V::from(running.done)),
            ("tablespaces_total", V::Int(1)),
            (
                "tablespaces_streamed",
                V::Int(i64::from(
                    running.total > 0 && running.done >= running.total,
                )),
            ),
            ("backup_name", running.set.into()),
            ("backup_data", running.data.into()),
            ("mode", running.mode.to_string().into()),
            ("started", V::Micros(running.started.timestamp_micros())),
        ]);
    }
    Ok(rows)
}

pub const STAT_ARCHIVER: &[(&str, Kind)] = &[
    ("archived_count", Int8),
    ("last_archived_wal", Text),
    ("last_archived_time", Timestamptz),
    ("failed_count", Int8),
    ("last_failed_wal", Text),
    ("last_failed_time", Timestamptz),
    ("stats_reset", Timestamptz),
    ("archive_set", Text),
    ("archived_lsn", Int8),
    ("last_error", Text),
];

fn time(value: Option<chrono::DateTime<chrono::Utc>>) -> V {
    value.map_or(V::Null, |t| V::Micros(t.timestamp_micros()))
}

pub fn stat_archiver(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(STAT_ARCHIVER);
    let backups = source.engine.as_ref().and_then(|e| e.backups().cloned());
    let resume_error = backups.as_ref().and_then(|b| b.status().archive_error);
    let status = backups.and_then(|b| b.status().archive);
    let archived = status.as_ref().map(|s| s.next_lsn.saturating_sub(1));
    rows.push(vec![
        (
            "archived_count",
            status
                .as_ref()
                .map_or(V::Int(0), |s| V::from(s.sealed_files as u64)),
        ),
        (
            "last_archived_wal",
            archived.map(|lsn| lsn.to_string()).into(),
        ),
        (
            "last_archived_time",
            time(status.as_ref().and_then(|s| s.last_archived)),
        ),
        (
            "failed_count",
            status.as_ref().map_or(V::Int(0), |s| V::from(s.failures)),
        ),
        ("last_failed_wal", V::Null),
        (
            "last_failed_time",
            time(status.as_ref().and_then(|s| s.last_failure)),
        ),
        ("stats_reset", V::Null),
        ("archive_set", status.as_ref().map(|s| s.set.clone()).into()),
        ("archived_lsn", archived.into()),
        (
            "last_error",
            status.and_then(|s| s.error).or(resume_error).into(),
        ),
    ]);
    Ok(rows)
}

/// `kura_stat`: every statistics figure (`kura stat`), one row each.
pub const KURA_STAT: &[(&str, Kind)] = &[
    ("section", Text),
    ("name", Text),
    ("value", Text),
    ("metric", Text),
    ("description", Text),
];

pub fn kura_stat(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(KURA_STAT);
    let Some(engine) = source.engine.as_ref() else {
        return Ok(rows);
    };
    for figure in crate::stats::collect(engine) {
        rows.push(vec![
            ("section", figure.section.into()),
            ("name", figure.name.into()),
            ("value", figure.value.as_text().into()),
            ("metric", figure.metric.map(|(m, _)| m.to_string()).into()),
            ("description", figure.help.into()),
        ]);
    }
    Ok(rows)
}

/// `"#database_stats"`: one row per database (every database for an administrator, the
/// current one otherwise), with GridDB's columns and Kura's `database_name`. Kura serves
/// every request through SQL, so the transaction-service counts are 0; figures GridDB shows
/// only in multitenant mode, and that Kura does not track per database, are NULL as GridDB
/// shows them then.
pub const DATABASE_STATS: &[(&str, Kind)] = &[
    ("database_id", Int8),
    ("database_name", Text),
    ("node_address", Text),
    ("node_port", Int4),
    ("transaction_connection_count", Int8),
    ("transaction_request_count", Int8),
    ("sql_connection_count", Int8),
    ("sql_request_count", Int8),
    ("store_block_size", Int8),
    ("store_memory_size", Int8),
    ("store_swap_read_size", Int8),
    ("store_swap_write_size", Int8),
    ("sql_work_memory_size", Int8),
    ("sql_store_use_size", Int8),
    ("sql_store_swap_read_size", Int8),
    ("sql_store_swap_write_size", Int8),
    ("sql_task_count", Int8),
    ("sql_pending_job_count", Int8),
    ("sql_send_message_size", Int8),
    ("sql_total_request_count", Int8),
    ("transaction_total_request_count", Int8),
];

pub fn database_stats(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(DATABASE_STATS);
    let Some(engine) = source.engine.as_ref() else {
        return Ok(rows);
    };
    let admin = source.session.is_some_and(|s| s.admin);
    let activities = source.session.map(|s| s.activities()).unwrap_or_default();
    let (host, port) = engine
        .server_info()
        .and_then(|info| crate::config::split_host_port(&info.address))
        .map_or((V::Null, V::Null), |(host, port)| {
            (host.into(), i32::from(port).into())
        });
    for db in engine.databases() {
        if !admin && db.name != source.database {
            continue;
        }
        let sessions = activities.iter().filter(|a| a.database == db.name);
        let connections = sessions.clone().count() as u64;
        let running = sessions.filter(|a| a.state == "active").count() as u64;
        let (resident, swapped) = crate::stats::database_store_usage(&db);
        rows.push(vec![
            ("database_id", u64::from(db.id).into()),
            ("database_name", db.name.as_str().into()),
            ("node_address", host.clone()),
            ("node_port", port.clone()),
            ("transaction_connection_count", 0u64.into()),
            ("transaction_request_count", 0u64.into()),
            ("sql_connection_count", connections.into()),
            ("sql_request_count", running.into()),
            ("store_block_size", (resident as u64 + swapped).into()),
            ("store_memory_size", (resident as u64).into()),
            ("sql_task_count", running.into()),
            ("sql_pending_job_count", 0u64.into()),
            ("transaction_total_request_count", 0u64.into()),
        ]);
    }
    Ok(rows)
}
