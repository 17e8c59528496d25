//! `pg_stat_progress_basebackup`: the backup running on this server (PostgreSQL's columns,
//! then Kura's: the set, the backup directory and the mode). No row while none runs.
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

fn bytes(value: u64) -> V {
    V::Int(i64::try_from(value).unwrap_or(i64::MAX))
}

pub fn stat_progress_basebackup(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(STAT_PROGRESS_BASEBACKUP);
    let Some(backups) = source.engine.as_ref().and_then(|e| e.backups().cloned()) else {
        return Ok(rows);
    };
    if let Some(running) = backups.status().running {
        rows.push(vec![
            ("pid", V::Int(i64::from(running.pid))),
            ("phase", running.phase.describe().into()),
            ("backup_total", bytes(running.total)),
            ("backup_streamed", bytes(running.done)),
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
