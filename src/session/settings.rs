//! Session settings: the run-time parameters `SET`, `SHOW`, `RESET`, `set_config` and
//! `current_setting` work on, with the values PostgreSQL clients expect at startup, and the
//! metadata (`SHOW ALL`, `pg_settings`) that describes them.
//!
//! Invariants: names are case-insensitive and stored lower-case; only known parameters (and
//! custom `prefix.name` ones, as in PostgreSQL) can be set; every stored value is normalised,
//! so what `SHOW` prints is what the rest of the server reads.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{KuraError, Result, sqlstate};
use crate::session::zone::SessionZone;
use crate::txn::{CommitWait, StandbyWait};

pub const SERVER_VERSION: &str = concat!("15.0 (Kura ", env!("CARGO_PKG_VERSION"), ")");

/// The collation and character classification of every database: text compares by code
/// point, as in PostgreSQL's `C.UTF-8`.
pub const DATABASE_LOCALE: &str = "C.UTF-8";

/// The name PostgreSQL shows for a parameter (in ParameterStatus, `SHOW ALL` and
/// `pg_settings`): its own capitalisation for the few that have one.
pub fn display_name(name: &str) -> &str {
    match name {
        "datestyle" => "DateStyle",
        "timezone" => "TimeZone",
        "intervalstyle" => "IntervalStyle",
        other => other,
    }
}

/// Parameters reported to the client in ParameterStatus at startup and when they change.
pub const REPORTED: &[&str] = &[
    "server_version",
    "server_encoding",
    "client_encoding",
    "datestyle",
    "timezone",
    "integer_datetimes",
    "standard_conforming_strings",
    "application_name",
    "is_superuser",
    "intervalstyle",
    "session_authorization",
    "default_transaction_read_only",
    "in_hot_standby",
];

/// Who may change a parameter, in PostgreSQL's `pg_settings.context` terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Fixed by the server; no session can change it.
    Internal,
    /// Any session may change it.
    User,
}

impl Context {
    pub fn name(self) -> &'static str {
        match self {
            Context::Internal => "internal",
            Context::User => "user",
        }
    }
}

/// The type of a parameter's value, which decides how a new value is checked.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    Integer {
        min: i64,
        max: i64,
    },
    /// A duration in milliseconds (0 = disabled).
    Millis,
    Enum(&'static [&'static str]),
    String,
}

impl Kind {
    pub fn vartype(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Integer { .. } | Kind::Millis => "integer",
            Kind::Enum(_) => "enum",
            Kind::String => "string",
        }
    }
}

/// One known parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub default: &'static str,
    pub kind: Kind,
    pub context: Context,
    pub category: &'static str,
    pub description: &'static str,
}

const fn param(
    name: &'static str,
    default: &'static str,
    kind: Kind,
    context: Context,
    category: &'static str,
    description: &'static str,
) -> Param {
    Param {
        name,
        default,
        kind,
        context,
        category,
        description,
    }
}

const CLIENT: &str = "Client Connection Defaults / Statement Behavior";
const LOCALE: &str = "Client Connection Defaults / Locale and Formatting";
const PRESET: &str = "Preset Options";
const COMPAT: &str = "Version and Platform Compatibility / Previous PostgreSQL Versions";
const LOGGING: &str = "Reporting and Logging / What to Log";
const PLANNER: &str = "Query Tuning / Other Planner Options";
const WAL: &str = "Write-Ahead Log / Settings";
const ISOLATIONS: &[&str] = &[
    "serializable",
    "repeatable read",
    "read committed",
    "read uncommitted",
];

/// Every parameter Kura knows, with PostgreSQL's names and defaults.
pub const PARAMS: &[Param] = &[
    param(
        "application_name",
        "",
        Kind::String,
        Context::User,
        LOGGING,
        "Sets the application name to be reported in statistics and logs.",
    ),
    param(
        "bytea_output",
        "hex",
        Kind::Enum(&["hex"]),
        Context::User,
        CLIENT,
        "Sets the output format for bytea.",
    ),
    param(
        "client_encoding",
        "UTF8",
        Kind::String,
        Context::User,
        LOCALE,
        "Sets the client's character set encoding.",
    ),
    param(
        "client_min_messages",
        "notice",
        Kind::Enum(&[
            "debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning", "error",
        ]),
        Context::User,
        CLIENT,
        "Sets the message levels that are sent to the client.",
    ),
    param(
        "datestyle",
        "ISO, MDY",
        Kind::String,
        Context::User,
        LOCALE,
        "Sets the display format for date and time values.",
    ),
    param(
        "default_transaction_isolation",
        "read committed",
        Kind::Enum(ISOLATIONS),
        Context::User,
        CLIENT,
        "Sets the transaction isolation level of each new transaction.",
    ),
    param(
        "default_transaction_read_only",
        "off",
        Kind::Bool,
        Context::User,
        CLIENT,
        "Sets the default read-only status of new transactions.",
    ),
    param(
        "extra_float_digits",
        "1",
        Kind::Integer { min: -15, max: 3 },
        Context::User,
        LOCALE,
        "Sets the number of digits displayed for floating-point values.",
    ),
    param(
        "geqo",
        "on",
        Kind::Bool,
        Context::User,
        PLANNER,
        "Enables genetic query optimization (accepted for compatibility; Kura's planner is DataFusion's).",
    ),
    param(
        "idle_in_transaction_session_timeout",
        "0",
        Kind::Millis,
        Context::User,
        CLIENT,
        "Sets the maximum allowed idle time between queries, when in a transaction.",
    ),
    param(
        "integer_datetimes",
        "on",
        Kind::Bool,
        Context::Internal,
        PRESET,
        "Shows whether datetimes are integer based.",
    ),
    param(
        "intervalstyle",
        "postgres",
        Kind::Enum(&["postgres"]),
        Context::User,
        LOCALE,
        "Sets the display format for interval values.",
    ),
    param(
        "in_hot_standby",
        "off",
        Kind::Bool,
        Context::Internal,
        PRESET,
        "Shows whether this server refuses writes (a standby, or a fenced primary).",
    ),
    param(
        "is_superuser",
        "on",
        Kind::Bool,
        Context::Internal,
        PRESET,
        "Shows whether the current user is a superuser.",
    ),
    param(
        "jit",
        "off",
        Kind::Bool,
        Context::User,
        PLANNER,
        "Allow JIT compilation (accepted for compatibility; Kura compiles nothing at run time).",
    ),
    param(
        "lc_collate",
        DATABASE_LOCALE,
        Kind::String,
        Context::Internal,
        PRESET,
        "Shows the collation order locale.",
    ),
    param(
        "lc_ctype",
        DATABASE_LOCALE,
        Kind::String,
        Context::Internal,
        PRESET,
        "Shows the character classification and case conversion locale.",
    ),
    param(
        "lc_messages",
        "C",
        Kind::String,
        Context::User,
        LOCALE,
        "Sets the language in which messages are displayed.",
    ),
    param(
        "lc_monetary",
        "C",
        Kind::String,
        Context::User,
        LOCALE,
        "Sets the locale for formatting monetary amounts.",
    ),
    param(
        "lc_numeric",
        "C",
        Kind::String,
        Context::User,
        LOCALE,
        "Sets the locale for formatting numbers.",
    ),
    param(
        "lc_time",
        "C",
        Kind::String,
        Context::User,
        LOCALE,
        "Sets the locale for formatting date and time values.",
    ),
    param(
        "lock_timeout",
        "0",
        Kind::Millis,
        Context::User,
        CLIENT,
        "Sets the maximum allowed duration of any wait for a lock.",
    ),
    param(
        "max_identifier_length",
        "63",
        Kind::Integer { min: 63, max: 63 },
        Context::Internal,
        PRESET,
        "Shows the maximum identifier length.",
    ),
    param(
        "max_parallel_workers_per_gather",
        "2",
        Kind::Integer { min: 0, max: 1024 },
        Context::User,
        PLANNER,
        "Sets the maximum number of parallel processes per executor node (accepted for compatibility).",
    ),
    param(
        "row_security",
        "on",
        Kind::Bool,
        Context::User,
        CLIENT,
        "Enable row security (Kura has no row security policies).",
    ),
    param(
        "search_path",
        "\"$user\", public",
        Kind::String,
        Context::User,
        CLIENT,
        "Sets the schema search order for names that are not schema-qualified.",
    ),
    param(
        "server_encoding",
        "UTF8",
        Kind::String,
        Context::Internal,
        PRESET,
        "Shows the server (database) character set encoding.",
    ),
    param(
        "server_version",
        SERVER_VERSION,
        Kind::String,
        Context::Internal,
        PRESET,
        "Shows the server version.",
    ),
    param(
        "server_version_num",
        "150000",
        Kind::Integer {
            min: 150000,
            max: 150000,
        },
        Context::Internal,
        PRESET,
        "Shows the server version as an integer.",
    ),
    param(
        "session_authorization",
        "",
        Kind::String,
        Context::Internal,
        PRESET,
        "Shows the session user name.",
    ),
    param(
        "standard_conforming_strings",
        "on",
        Kind::Enum(&["on"]),
        Context::User,
        COMPAT,
        "Causes '...' strings to treat backslashes literally.",
    ),
    param(
        "statement_timeout",
        "0",
        Kind::Millis,
        Context::User,
        CLIENT,
        "Sets the maximum allowed duration of any statement.",
    ),
    param(
        "synchronous_commit",
        "on",
        Kind::Enum(&["on", "off", "local", "remote_write", "remote_apply"]),
        Context::User,
        WAL,
        "Sets the current transaction's synchronization level.",
    ),
    param(
        "timezone",
        "UTC",
        Kind::String,
        Context::User,
        LOCALE,
        "Sets the time zone for displaying and interpreting time stamps.",
    ),
    param(
        "transaction_isolation",
        "read committed",
        Kind::Enum(ISOLATIONS),
        Context::User,
        CLIENT,
        "Sets the current transaction's isolation level.",
    ),
    param(
        "transaction_read_only",
        "off",
        Kind::Bool,
        Context::User,
        CLIENT,
        "Sets the current transaction's read-only status.",
    ),
    param(
        "work_mem",
        "4MB",
        Kind::String,
        Context::User,
        "Resource Usage / Memory",
        "Sets the maximum memory to be used for query workspaces (accepted for compatibility).",
    ),
];

pub fn param_named(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name)
}

/// The canonical lower-case name of a parameter as written by a client.
pub fn canonical_name(name: &str) -> String {
    let lower = name.trim().to_lowercase();
    match lower.as_str() {
        "time zone" => "timezone".into(),
        "names" => "client_encoding".into(),
        "transaction isolation level" => "transaction_isolation".into(),
        "session authorization" => "session_authorization".into(),
        _ => lower,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    values: BTreeMap<String, String>,
    /// What RESET returns to: the defaults with the startup packet's parameters applied.
    reset_values: BTreeMap<String, String>,
}

impl Settings {
    pub fn new(
        default_isolation: &str,
        lock_timeout: Duration,
        synchronous_commit: bool,
    ) -> Settings {
        let mut values: BTreeMap<String, String> = PARAMS
            .iter()
            .map(|p| (p.name.to_string(), p.default.to_string()))
            .collect();
        values.insert(
            "synchronous_commit".into(),
            if synchronous_commit { "on" } else { "off" }.into(),
        );
        values.insert(
            "default_transaction_isolation".into(),
            default_isolation.into(),
        );
        values.insert("transaction_isolation".into(), default_isolation.into());
        values.insert(
            "lock_timeout".into(),
            format_millis(lock_timeout.as_millis()),
        );
        Settings {
            reset_values: values.clone(),
            values,
        }
    }

    /// Fixes the values RESET returns to (called once the startup parameters are applied).
    pub fn seal_startup(&mut self) {
        self.reset_values = self.values.clone();
    }

    /// Records the authenticated user (read-only to the session afterwards).
    pub fn set_session_user(&mut self, user: &str) {
        self.values
            .insert("session_authorization".into(), user.to_string());
        self.reset_values
            .insert("session_authorization".into(), user.to_string());
    }

    /// Records whether the server refuses writes (`in_hot_standby`); returns whether that
    /// changed.
    pub fn set_hot_standby(&mut self, refusing_writes: bool) -> bool {
        let value = if refusing_writes { "on" } else { "off" };
        if self.get("in_hot_standby") == Some(value) {
            return false;
        }
        for values in [&mut self.values, &mut self.reset_values] {
            values.insert("in_hot_standby".into(), value.into());
        }
        true
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        // Keys are canonical names: a hit is the answer, without building the canonical form.
        if let Some(value) = self.values.get(name) {
            return Some(value);
        }
        self.values.get(&canonical_name(name)).map(String::as_str)
    }

    pub fn all(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter()
    }

    /// The value RESET would restore.
    pub fn reset_value(&self, name: &str) -> Option<&str> {
        self.reset_values.get(name).map(String::as_str)
    }

    /// Sets a parameter from a startup packet, SET or set_config; returns the stored value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<String> {
        let name = canonical_name(name);
        let value = checked_value(&name, value)?;
        self.values.insert(name, value.clone());
        Ok(value)
    }

    pub fn reset(&mut self, name: &str) -> Result<()> {
        let name = canonical_name(name);
        if let Some(param) = param_named(&name)
            && param.context == Context::Internal
        {
            return Err(cannot_change(&name));
        }
        match self.reset_values.get(&name) {
            Some(v) => {
                self.values.insert(name, v.clone());
                Ok(())
            }
            None if name.contains('.') => {
                self.values.remove(&name);
                Ok(())
            }
            None => Err(unknown(&name)),
        }
    }

    /// Puts back a value saved before `SET LOCAL` (it was valid when saved).
    pub fn restore(&mut self, name: &str, value: &str) {
        self.values.insert(name.to_string(), value.to_string());
    }

    /// Removes a custom parameter that `SET LOCAL` created.
    pub fn forget(&mut self, name: &str) {
        if param_named(name).is_none() {
            self.values.remove(name);
        }
    }

    pub fn reset_all(&mut self) {
        self.values = self.reset_values.clone();
    }

    /// What a commit waits for (`synchronous_commit`): `off` does not wait for the local
    /// fsync, every other level does; `local` waits for no standby, `remote_write` for
    /// standbys to receive the record, `remote_apply` for them to apply it, and `on` and `off`
    /// as `/transaction/replicationMode` says.
    pub fn commit_wait(&self) -> CommitWait {
        let standbys = match self.get("synchronous_commit") {
            Some("local") => StandbyWait::None,
            Some("remote_write") => StandbyWait::Received,
            Some("remote_apply") => StandbyWait::Applied,
            _ => StandbyWait::Configured,
        };
        CommitWait {
            flush: self.get("synchronous_commit") != Some("off"),
            standbys,
        }
    }

    /// A duration parameter (`lock_timeout`, `statement_timeout`, ...); `None` when disabled.
    pub fn duration(&self, name: &str) -> Option<Duration> {
        let value = self.get(name).unwrap_or("0");
        parse_duration_ms(value)
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }

    /// The session time zone (`TimeZone`); UTC if the stored value were ever unreadable.
    pub fn zone(&self) -> SessionZone {
        self.get("timezone")
            .and_then(SessionZone::parse)
            .unwrap_or(SessionZone::Utc)
    }

    /// `lock_timeout` as a wait limit; `None` waits until the lock is free.
    pub fn lock_timeout(&self) -> Option<Duration> {
        self.duration("lock_timeout")
    }
}

fn unknown(name: &str) -> KuraError {
    KuraError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

fn cannot_change(name: &str) -> KuraError {
    KuraError::new(
        sqlstate::CANT_CHANGE_RUNTIME_PARAM,
        format!("parameter \"{name}\" cannot be changed"),
    )
}

fn invalid(name: &str, value: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_PARAMETER_VALUE,
        format!("invalid value for parameter \"{name}\": \"{value}\""),
    )
}

/// Checks a new value for `name` and returns it in the form the server stores.
fn checked_value(name: &str, value: &str) -> Result<String> {
    let Some(param) = param_named(name) else {
        if is_custom_name(name) {
            return Ok(value.to_string());
        }
        return Err(unknown(name));
    };
    if param.context == Context::Internal {
        return Err(cannot_change(name));
    }
    match name {
        "client_encoding" => return client_encoding(value),
        "datestyle" => return date_style(value),
        "timezone" => return time_zone(value),
        "synchronous_commit" => return synchronous_commit(value),
        "transaction_isolation" | "default_transaction_isolation" => {
            return isolation(name, value);
        }
        "application_name" => return Ok(value.chars().take(63).collect()),
        _ => {}
    }
    match param.kind {
        Kind::Bool => parse_bool(value)
            .map(|b| if b { "on" } else { "off" }.to_string())
            .ok_or_else(|| {
                KuraError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("parameter \"{name}\" requires a Boolean value"),
                )
            }),
        Kind::Integer { min, max } => {
            let number: i64 = value.trim().parse().map_err(|_| {
                KuraError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("invalid value for parameter \"{name}\": \"{value}\""),
                )
            })?;
            if !(min..=max).contains(&number) {
                return Err(KuraError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!(
                        "{number} is outside the valid range for parameter \"{name}\" ({min} .. {max})"
                    ),
                ));
            }
            Ok(number.to_string())
        }
        Kind::Millis => parse_duration_ms(value).map(|ms| format_millis(ms.into())),
        Kind::Enum(allowed) => {
            let lower = value.trim().to_lowercase();
            if allowed.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(invalid(name, value)
                    .with_hint(format!("Available values: {}.", allowed.join(", "))))
            }
        }
        Kind::String => Ok(value.to_string()),
    }
}

/// `prefix.name`: PostgreSQL's placeholder variables, settable by anyone.
fn is_custom_name(name: &str) -> bool {
    let mut parts = name.split('.');
    let valid = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
            && !p.starts_with(|c: char| c.is_ascii_digit())
    };
    match (parts.next(), parts.next()) {
        (Some(first), Some(second)) => valid(first) && valid(second) && parts.all(valid),
        _ => false,
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_lowercase().as_str() {
        "on" | "true" | "yes" | "1" | "t" | "y" => Some(true),
        "off" | "false" | "no" | "0" | "f" | "n" => Some(false),
        _ => None,
    }
}

fn client_encoding(value: &str) -> Result<String> {
    let upper = value.trim().to_uppercase().replace(['-', '_'], "");
    if upper == "UTF8" || upper == "UNICODE" {
        Ok("UTF8".into())
    } else {
        Err(KuraError::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("client encoding \"{value}\" is not supported; Kura speaks UTF8 only"),
        ))
    }
}

/// Output is always ISO; the day/month order only matters for input, where Kura reads ISO
/// dates. Both parts are kept so that `SHOW DateStyle` answers what was set.
fn date_style(value: &str) -> Result<String> {
    let mut output = "ISO";
    let mut order = "MDY";
    for part in value.split(',').map(|p| p.trim().to_uppercase()) {
        match part.as_str() {
            "ISO" => output = "ISO",
            "MDY" | "US" | "NONEURO" | "NONEUROPEAN" => order = "MDY",
            "DMY" | "EURO" | "EUROPEAN" => order = "DMY",
            "YMD" => order = "YMD",
            "SQL" | "POSTGRES" | "GERMAN" => {
                return Err(KuraError::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!("DateStyle \"{part}\" is not supported; Kura writes dates in ISO"),
                ));
            }
            "" | "DEFAULT" => {}
            _ => return Err(invalid("DateStyle", value)),
        }
    }
    Ok(format!("{output}, {order}"))
}

fn time_zone(value: &str) -> Result<String> {
    SessionZone::parse(value)
        .map(|zone| zone.name())
        .ok_or_else(|| invalid("TimeZone", value))
}

fn synchronous_commit(value: &str) -> Result<String> {
    match value.trim().to_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok("on".into()),
        "off" | "false" | "no" | "0" => Ok("off".into()),
        level @ ("local" | "remote_write" | "remote_apply") => Ok(level.into()),
        _ => Err(invalid("synchronous_commit", value)
            .with_hint("Available values: off, local, remote_write, on, remote_apply.")),
    }
}

/// READ UNCOMMITTED behaves as READ COMMITTED (as in PostgreSQL); SERIALIZABLE runs as
/// REPEATABLE READ and the session is told so when it starts such a transaction.
fn isolation(name: &str, value: &str) -> Result<String> {
    let lower = value.trim().to_lowercase();
    match lower.as_str() {
        "read committed" | "read uncommitted" => Ok("read committed".into()),
        "repeatable read" | "serializable" => Ok(lower),
        _ => Err(invalid(name, value)),
    }
}

fn format_millis(ms: u128) -> String {
    if ms == 0 {
        "0".into()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}min", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Parses PostgreSQL duration settings: a bare number is milliseconds; units us, ms, s, min,
/// h, d.
pub fn parse_duration_ms(value: &str) -> Result<u64> {
    let v = value.trim().trim_matches('\'').trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad_duration(value))?;
    let ms = match unit.trim() {
        "us" => number / 1000,
        "" | "ms" => number,
        "s" => number.saturating_mul(1000),
        "min" => number.saturating_mul(60_000),
        "h" => number.saturating_mul(3_600_000),
        "d" => number.saturating_mul(86_400_000),
        _ => return Err(bad_duration(value)),
    };
    if ms > i32::MAX as u64 {
        return Err(KuraError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("{ms} ms is outside the valid range for a time setting (0 .. 2147483647)"),
        ));
    }
    Ok(ms)
}

fn bad_duration(value: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_PARAMETER_VALUE,
        format!("invalid value for a time setting: \"{value}\""),
    )
    .with_hint(
        "Valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\".",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::new("read committed", Duration::ZERO, true)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1500").unwrap(), 1500);
        assert_eq!(parse_duration_ms("2s").unwrap(), 2000);
        assert_eq!(parse_duration_ms("'3min'").unwrap(), 180_000);
        assert!(parse_duration_ms("2 parsecs").is_err());
        assert!(parse_duration_ms("-1").is_err());
        assert!(parse_duration_ms("9999999999").is_err());
    }

    #[test]
    fn unknown_and_read_only_parameters_fail() {
        let mut s = settings();
        assert_eq!(s.set("no_such_thing", "1").unwrap_err().code, "42704");
        assert_eq!(s.set("server_version", "1").unwrap_err().code, "55P02");
        assert_eq!(s.reset("server_version").unwrap_err().code, "55P02");
        assert!(s.set("my.custom", "1").is_ok());
        assert!(s.set("my.", "1").is_err());
        assert_eq!(s.set("lock_timeout", "1s").unwrap(), "1s");
        assert_eq!(s.set("lock_timeout", "1500").unwrap(), "1500ms");
        assert_eq!(s.lock_timeout(), Some(Duration::from_millis(1500)));
        assert_eq!(s.commit_wait(), CommitWait::FLUSH);
        assert_eq!(s.set("synchronous_commit", "OFF").unwrap(), "off");
        assert_eq!(s.commit_wait(), CommitWait::WRITTEN);
        for (level, standbys) in [
            ("local", StandbyWait::None),
            ("remote_write", StandbyWait::Received),
            ("remote_apply", StandbyWait::Applied),
            ("on", StandbyWait::Configured),
        ] {
            assert_eq!(s.set("synchronous_commit", level).unwrap(), level);
            let wait = CommitWait {
                flush: true,
                standbys,
            };
            assert_eq!(s.commit_wait(), wait);
        }
        assert!(s.set("synchronous_commit", "sometimes").is_err());
    }

    #[test]
    fn values_are_checked_by_type() {
        let mut s = settings();
        assert_eq!(s.set("extra_float_digits", "3").unwrap(), "3");
        assert_eq!(s.set("extra_float_digits", "4").unwrap_err().code, "22023");
        assert_eq!(s.set("geqo", "false").unwrap(), "off");
        assert_eq!(s.set("geqo", "maybe").unwrap_err().code, "22023");
        assert_eq!(s.set("client_min_messages", "WARNING").unwrap(), "warning");
        assert!(s.set("client_min_messages", "loud").is_err());
        assert_eq!(s.set("DateStyle", "iso").unwrap(), "ISO, MDY");
        assert_eq!(s.set("DateStyle", "ISO, DMY").unwrap(), "ISO, DMY");
        assert_eq!(s.set("DateStyle", "German").unwrap_err().code, "0A000");
        assert_eq!(
            s.set("client_encoding", "latin1").unwrap_err().code,
            "0A000"
        );
        assert_eq!(s.set("TimeZone", "etc/utc").unwrap(), "UTC");
        assert_eq!(s.set("TimeZone", "asia/tokyo").unwrap(), "Asia/Tokyo");
        assert_eq!(s.set("TimeZone", "Mars/Olympus").unwrap_err().code, "22023");
    }

    #[test]
    fn reset_returns_to_the_startup_value() {
        let mut s = settings();
        s.set("application_name", "from startup").unwrap();
        s.seal_startup();
        s.set("application_name", "later").unwrap();
        s.set("my.custom", "x").unwrap();
        s.reset("application_name").unwrap();
        assert_eq!(s.get("application_name"), Some("from startup"));
        s.reset("my.custom").unwrap();
        assert_eq!(s.get("my.custom"), None);
        assert_eq!(s.reset("nope").unwrap_err().code, "42704");
        s.set("statement_timeout", "5s").unwrap();
        s.reset_all();
        assert_eq!(s.get("statement_timeout"), Some("0"));
    }
}
