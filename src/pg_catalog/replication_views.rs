//! The replication status relations: `pg_stat_replication` on a primary (one row per standby
//! it has streamed to since it started, with how far each has got and how far behind it is)
//! and `pg_stat_wal_receiver` on a standby (its connection to the primary).
//!
//! Invariants: LSNs are Kura's record numbers (int8), not byte positions, so the lag in bytes
//! is given in columns of its own (`*_lag_bytes`), measured on this server's log; a server
//! without replication shows no rows.

use std::time::Duration;

use super::Source;
use super::oids;
use super::server_views;
use super::table::{Kind, Rows, V};
use crate::config::ReplicationMode;
use crate::error::Result;
use crate::replication::ReplicationHub;

use Kind::*;

pub const STAT_REPLICATION: &[(&str, Kind)] = &[
    ("pid", Int4),
    ("usesysid", Oid),
    ("usename", Text),
    ("application_name", Text),
    ("client_addr", Text),
    ("client_hostname", Text),
    ("client_port", Int4),
    ("backend_start", Timestamptz),
    ("backend_xmin", Int8),
    ("state", Text),
    ("sent_lsn", Int8),
    ("write_lsn", Int8),
    ("flush_lsn", Int8),
    ("replay_lsn", Int8),
    ("write_lag", Interval),
    ("flush_lag", Interval),
    ("replay_lag", Interval),
    ("write_lag_bytes", Int8),
    ("flush_lag_bytes", Int8),
    ("replay_lag_bytes", Int8),
    ("sync_priority", Int4),
    ("sync_state", Text),
    ("reply_time", Timestamptz),
];

fn interval(time: Option<Duration>) -> V {
    time.map_or(V::Null, |t| {
        V::Micros(i64::try_from(t.as_micros()).unwrap_or(i64::MAX))
    })
}

fn hub(source: &Source) -> Option<std::sync::Arc<ReplicationHub>> {
    source.engine.as_ref()?.replication().cloned()
}

/// What a commit waits for from this standby, in PostgreSQL's terms.
fn sync_state(hub: &ReplicationHub) -> &'static str {
    if hub.settings.mode == ReplicationMode::Async
        || hub.settings.standbys_needed == 0
        || hub.is_degraded()
    {
        "async"
    } else {
        "quorum"
    }
}

pub fn stat_replication(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(STAT_REPLICATION);
    let (Some(hub), Some(engine)) = (hub(source), source.engine.as_ref()) else {
        return Ok(rows);
    };
    let Some(log) = engine.txns.log() else {
        return Ok(rows);
    };
    let micros = |t: chrono::DateTime<chrono::Utc>| V::Micros(t.timestamp_micros());
    let sync = sync_state(&hub);
    for standby in hub.standbys() {
        let progress = standby.progress;
        let (write, flush, replay) = (
            log.lag_behind(progress.received),
            log.lag_behind(progress.flushed),
            log.lag_behind(progress.applied),
        );
        rows.push(vec![
            ("pid", V::Int(i64::try_from(standby.id).unwrap_or(i64::MAX))),
            ("usesysid", oids::role(&standby.user, source.user()).into()),
            ("usename", standby.user.into()),
            ("application_name", standby.name.into()),
            server_views::client_addr(standby.client_addr),
            server_views::client_port(standby.client_addr),
            ("backend_start", micros(standby.backend_start)),
            ("state", standby.state.into()),
            ("sent_lsn", V::from(standby.sent)),
            ("write_lsn", V::from(progress.received)),
            ("flush_lsn", V::from(progress.flushed)),
            ("replay_lsn", V::from(progress.applied)),
            ("write_lag", interval(write.time)),
            ("flush_lag", interval(flush.time)),
            ("replay_lag", interval(replay.time)),
            ("write_lag_bytes", write.bytes.into()),
            ("flush_lag_bytes", flush.bytes.into()),
            ("replay_lag_bytes", replay.bytes.into()),
            ("sync_priority", i32::from(sync != "async").into()),
            ("sync_state", sync.into()),
            ("reply_time", standby.last_reply.map_or(V::Null, micros)),
        ]);
    }
    Ok(rows)
}

pub const STAT_WAL_RECEIVER: &[(&str, Kind)] = &[
    ("pid", Int4),
    ("status", Text),
    ("epoch", Int8),
    ("received_lsn", Int8),
    ("flushed_lsn", Int8),
    ("replay_lsn", Int8),
    ("latest_end_lsn", Int8),
    ("lag_records", Int8),
    ("last_msg_receipt_time", Timestamptz),
    ("sender_host", Text),
    ("sender_port", Int4),
    ("last_error", Text),
];

/// One row while this server is, or was since it started, a standby.
pub fn stat_wal_receiver(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(STAT_WAL_RECEIVER);
    let Some(hub) = hub(source) else {
        return Ok(rows);
    };
    let status = hub.receiver.lock().clone();
    if status.primary.is_empty() {
        return Ok(rows);
    }
    let (host, port) = crate::config::split_host_port(&status.primary)
        .map_or((status.primary.clone(), None), |(h, p)| (h, Some(p)));
    let progress = status.progress;
    rows.push(vec![
        ("pid", V::Int(i64::from(std::process::id()))),
        ("status", status.state.into()),
        ("epoch", V::from(hub.current_epoch().epoch)),
        ("received_lsn", V::from(progress.received)),
        ("flushed_lsn", V::from(progress.flushed)),
        ("replay_lsn", V::from(progress.applied)),
        ("latest_end_lsn", V::from(status.primary_written)),
        (
            "lag_records",
            V::from(status.primary_written.saturating_sub(progress.applied)),
        ),
        (
            "last_msg_receipt_time",
            status
                .last_message
                .map_or(V::Null, |t| V::Micros(t.timestamp_micros())),
        ),
        ("sender_host", host.into()),
        ("sender_port", port.map(i32::from).into()),
        ("last_error", status.last_error.into()),
    ]);
    Ok(rows)
}
