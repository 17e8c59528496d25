//! The `pg_catalog` relations about the server rather than the schema: roles (`pg_roles`,
//! `pg_authid`, `pg_user`, `pg_auth_members`), settings (`pg_settings`), connections
//! (`pg_stat_activity`), row locks (`pg_locks`) and the session's open cursors
//! (`pg_cursors`).
//!
//! Invariants: the roles are the administrators and the general users; the session's own
//! user has oid [`oids::OWNER_ROLE`], owner of every object; `pg_settings` shows the scanning
//! session's own values.

use super::Source;
use super::oids;
use super::table::{Kind, Rows, V};
use crate::error::Result;
use crate::session::settings::{self, Kind as ParamKind};

use Kind::*;

pub const ROLES: &[(&str, Kind)] = &[
    ("rolname", Text),
    ("rolsuper", Bool),
    ("rolinherit", Bool),
    ("rolcreaterole", Bool),
    ("rolcreatedb", Bool),
    ("rolcanlogin", Bool),
    ("rolreplication", Bool),
    ("rolconnlimit", Int4),
    ("rolpassword", Text),
    ("rolvaliduntil", Timestamptz),
    ("rolbypassrls", Bool),
    ("rolconfig", TextArray),
    ("oid", Oid),
];

fn role_row(source: &Source, name: &str, admin: bool) -> Vec<(&'static str, V)> {
    vec![
        ("oid", oids::role(name, source.user()).into()),
        ("rolname", name.into()),
        ("rolsuper", admin.into()),
        ("rolinherit", true.into()),
        ("rolcreaterole", admin.into()),
        ("rolcreatedb", admin.into()),
        ("rolcanlogin", true.into()),
        ("rolreplication", admin.into()),
        ("rolconnlimit", (-1).into()),
        ("rolbypassrls", admin.into()),
    ]
}

pub fn roles(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(ROLES);
    for (name, admin) in source.roles() {
        let mut row = role_row(source, &name, admin);
        row.push(("rolpassword", "********".into()));
        rows.push(row);
    }
    Ok(rows)
}

pub const AUTHID: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("rolname", Text),
    ("rolsuper", Bool),
    ("rolinherit", Bool),
    ("rolcreaterole", Bool),
    ("rolcreatedb", Bool),
    ("rolcanlogin", Bool),
    ("rolreplication", Bool),
    ("rolbypassrls", Bool),
    ("rolconnlimit", Int4),
    ("rolpassword", Text),
    ("rolvaliduntil", Timestamptz),
];

/// pg_authid holds the verifier itself in PostgreSQL; Kura never shows one.
pub fn authid(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(AUTHID);
    for (name, admin) in source.roles() {
        rows.push(role_row(source, &name, admin));
    }
    Ok(rows)
}

pub const USER: &[(&str, Kind)] = &[
    ("usename", Text),
    ("usesysid", Oid),
    ("usecreatedb", Bool),
    ("usesuper", Bool),
    ("userepl", Bool),
    ("usebypassrls", Bool),
    ("passwd", Text),
    ("valuntil", Timestamptz),
    ("useconfig", TextArray),
];

pub fn users(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(USER);
    for (name, admin) in source.roles() {
        rows.push(vec![
            ("usesysid", oids::role(&name, source.user()).into()),
            ("usename", name.into()),
            ("usecreatedb", admin.into()),
            ("usesuper", admin.into()),
            ("userepl", admin.into()),
            ("usebypassrls", admin.into()),
            ("passwd", "********".into()),
        ]);
    }
    Ok(rows)
}

pub const AUTH_MEMBERS: &[(&str, Kind)] = &[
    ("oid", Oid),
    ("roleid", Oid),
    ("member", Oid),
    ("grantor", Oid),
    ("admin_option", Bool),
];

/// No role is a member of another.
pub fn auth_members(_: &Source) -> Result<Rows> {
    Ok(Rows::new(AUTH_MEMBERS))
}

pub const SETTINGS: &[(&str, Kind)] = &[
    ("name", Text),
    ("setting", Text),
    ("unit", Text),
    ("category", Text),
    ("short_desc", Text),
    ("extra_desc", Text),
    ("context", Text),
    ("vartype", Text),
    ("source", Text),
    ("min_val", Text),
    ("max_val", Text),
    ("enumvals", TextArray),
    ("boot_val", Text),
    ("reset_val", Text),
    ("sourcefile", Text),
    ("sourceline", Int4),
    ("pending_restart", Bool),
];

pub fn settings(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(SETTINGS);
    let Some(session) = source.session else {
        return Ok(rows);
    };
    for (name, value) in session.settings.all() {
        let Some(param) = settings::param_named(name) else {
            continue;
        };
        let (min, max, enums) = match param.kind {
            ParamKind::Integer { min, max } => (Some(min.to_string()), Some(max.to_string()), None),
            ParamKind::Millis => (Some("0".into()), Some(i32::MAX.to_string()), None),
            ParamKind::Enum(values) => (
                None,
                None,
                Some(values.iter().map(|v| v.to_string()).collect::<Vec<_>>()),
            ),
            ParamKind::Bool | ParamKind::String => (None, None, None),
        };
        let reset = session.settings.reset_value(name).unwrap_or(param.default);
        rows.push(vec![
            ("name", settings::display_name(param.name).into()),
            ("setting", value.as_str().into()),
            (
                "unit",
                matches!(param.kind, ParamKind::Millis)
                    .then_some("ms")
                    .into(),
            ),
            ("category", param.category.into()),
            ("short_desc", param.description.into()),
            ("context", param.context.name().into()),
            ("vartype", param.kind.vartype().into()),
            (
                "source",
                if value == param.default {
                    "default"
                } else {
                    "session"
                }
                .into(),
            ),
            ("min_val", min.into()),
            ("max_val", max.into()),
            ("enumvals", enums.map_or(V::Null, V::Texts)),
            ("boot_val", param.default.into()),
            ("reset_val", reset.into()),
            ("pending_restart", false.into()),
        ]);
    }
    let live = source
        .engine
        .as_ref()
        .and_then(|e| e.live_config().cloned());
    for row in live.map(|l| l.rows()).unwrap_or_default() {
        let section = row.path.split('/').nth(1).unwrap_or("").to_string();
        rows.push(vec![
            ("name", row.path.as_str().into()),
            ("setting", row.value.as_str().into()),
            ("category", format!("Server / {section}").into()),
            (
                "short_desc",
                "Kura server setting (definition file); see docs/CONFIGURATION.md".into(),
            ),
            (
                "context",
                if row.online { "sighup" } else { "postmaster" }.into(),
            ),
            ("vartype", "string".into()),
            (
                "source",
                if row.changed {
                    "online change"
                } else {
                    "configuration file"
                }
                .into(),
            ),
            ("boot_val", row.startup.as_str().into()),
            ("reset_val", row.startup.as_str().into()),
            ("pending_restart", false.into()),
        ]);
    }
    Ok(rows)
}

pub const STAT_ACTIVITY: &[(&str, Kind)] = &[
    ("datid", Oid),
    ("datname", Text),
    ("pid", Int4),
    ("leader_pid", Int4),
    ("usesysid", Oid),
    ("usename", Text),
    ("application_name", Text),
    ("client_addr", Text),
    ("client_hostname", Text),
    ("client_port", Int4),
    ("backend_start", Timestamptz),
    ("xact_start", Timestamptz),
    ("query_start", Timestamptz),
    ("state_change", Timestamptz),
    ("wait_event_type", Text),
    ("wait_event", Text),
    ("state", Text),
    ("backend_xid", Int4),
    ("backend_xmin", Int4),
    ("query_id", Int8),
    ("query", Text),
    ("backend_type", Text),
];

fn database_oid(source: &Source, name: &str) -> i32 {
    source
        .engine
        .as_ref()
        .and_then(|e| e.database(name))
        .map_or(oids::DATABASE, |db| oids::database(db.id))
}

/// The `client_addr` column of a connection from `addr`.
pub fn client_addr(addr: Option<std::net::SocketAddr>) -> (&'static str, V) {
    ("client_addr", addr.map(|a| a.ip().to_string()).into())
}

/// The `client_port` column: -1 when the connection has no address.
pub fn client_port(addr: Option<std::net::SocketAddr>) -> (&'static str, V) {
    (
        "client_port",
        addr.map_or(-1, |a| i32::from(a.port())).into(),
    )
}

/// Bytes of a statement `pg_stat_activity` shows (PostgreSQL's track_activity_query_size).
const QUERY_TEXT_BYTES: usize = 1024;

pub fn stat_activity(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(STAT_ACTIVITY);
    let Some(session) = source.session else {
        return Ok(rows);
    };
    let micros = |t: chrono::DateTime<chrono::Utc>| V::Micros(t.timestamp_micros());
    for activity in session.activities() {
        // As in PostgreSQL, only administrators see other users' statements; nobody sees a
        // password.
        let query = if session.admin || activity.user == session.user {
            crate::logs::cut(
                &crate::security::masking::masked_statements(&activity.query),
                QUERY_TEXT_BYTES,
            )
        } else {
            "<insufficient privilege>".to_string()
        };
        rows.push(vec![
            ("datid", database_oid(source, &activity.database).into()),
            ("usesysid", oids::role(&activity.user, source.user()).into()),
            ("datname", activity.database.into()),
            ("pid", activity.pid.into()),
            ("usename", activity.user.into()),
            ("application_name", activity.application_name.into()),
            client_addr(activity.client_addr),
            client_port(activity.client_addr),
            ("backend_start", micros(activity.backend_start)),
            ("query_start", activity.query_start.map_or(V::Null, micros)),
            ("state_change", activity.query_start.map_or(V::Null, micros)),
            ("state", activity.state.into()),
            ("query", query.into()),
            ("backend_type", "client backend".into()),
        ]);
    }
    Ok(rows)
}

/// `pg_locks`; `transactionid` (PostgreSQL's `xid`) is an int8 here.
pub const LOCKS: &[(&str, Kind)] = &[
    ("locktype", Text),
    ("database", Oid),
    ("relation", Oid),
    ("page", Int4),
    ("tuple", Int2),
    ("virtualxid", Text),
    ("transactionid", Int8),
    ("classid", Oid),
    ("objid", Oid),
    ("objsubid", Int2),
    ("virtualtransaction", Text),
    ("pid", Int4),
    ("mode", Text),
    ("granted", Bool),
    ("fastpath", Bool),
    ("waitstart", Timestamptz),
];

/// Row locks as PostgreSQL shows them: each writing transaction holds an exclusive lock on its
/// own transaction id, and a transaction waiting for a row a share lock request on the
/// holder's (not granted).
pub fn locks(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(LOCKS);
    let Some(engine) = &source.engine else {
        return Ok(rows);
    };
    for lock in engine.txns.locks.transaction_locks() {
        rows.push(vec![
            ("locktype", "transactionid".into()),
            (
                "transactionid",
                V::from(i64::try_from(lock.transaction).unwrap_or(i64::MAX)),
            ),
            (
                "virtualtransaction",
                format!("{}/{}", lock.pid, lock.transaction).into(),
            ),
            ("pid", lock.pid.into()),
            (
                "mode",
                if lock.granted {
                    "ExclusiveLock"
                } else {
                    "ShareLock"
                }
                .into(),
            ),
            ("granted", lock.granted.into()),
            ("fastpath", false.into()),
        ]);
    }
    Ok(rows)
}

pub const CURSORS: &[(&str, Kind)] = &[
    ("name", Text),
    ("statement", Text),
    ("is_holdable", Bool),
    ("is_binary", Bool),
    ("is_scrollable", Bool),
    ("creation_time", Timestamptz),
];

pub fn cursors(source: &Source) -> Result<Rows> {
    let mut rows = Rows::new(CURSORS);
    let Some(session) = source.session else {
        return Ok(rows);
    };
    for cursor in &session.cursors {
        rows.push(vec![
            ("name", cursor.name.clone().into()),
            ("statement", cursor.statement.clone().into()),
            ("is_holdable", cursor.holdable.into()),
            ("is_binary", cursor.binary.into()),
            ("is_scrollable", cursor.scrollable.into()),
            (
                "creation_time",
                V::Micros(cursor.created.timestamp_micros()),
            ),
        ]);
    }
    Ok(rows)
}
