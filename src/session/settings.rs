//! Session settings: the run-time parameters `SET`, `SHOW` and `RESET` work on, with the
//! values PostgreSQL clients expect at startup.
//!
//! Invariant: names are case-insensitive and stored lower-case; only known parameters (and
//! custom `prefix.name` ones, as in PostgreSQL) can be set.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{KuraError, Result, sqlstate};
use crate::txn::CommitWait;

pub const SERVER_VERSION: &str = concat!("15.0 (Kura ", env!("CARGO_PKG_VERSION"), ")");

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
];

fn defaults() -> BTreeMap<String, String> {
    [
        ("server_version", SERVER_VERSION),
        ("server_version_num", "150000"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("datestyle", "ISO, MDY"),
        ("timezone", "UTC"),
        ("intervalstyle", "postgres"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("application_name", ""),
        ("is_superuser", "on"),
        ("search_path", "\"$user\", public"),
        ("transaction_isolation", "read committed"),
        ("default_transaction_isolation", "read committed"),
        ("transaction_read_only", "off"),
        ("default_transaction_read_only", "off"),
        ("lock_timeout", "0"),
        ("statement_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        ("extra_float_digits", "1"),
        ("synchronous_commit", "on"),
        ("max_identifier_length", "63"),
        ("bytea_output", "hex"),
        ("client_min_messages", "notice"),
        ("lc_messages", "C"),
        ("lc_monetary", "C"),
        ("lc_numeric", "C"),
        ("lc_time", "C"),
        ("row_security", "on"),
        ("geqo", "on"),
        ("jit", "off"),
        ("work_mem", "4MB"),
        ("max_parallel_workers_per_gather", "2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Parameters a client may not change.
const READ_ONLY: &[&str] = &[
    "server_version",
    "server_version_num",
    "server_encoding",
    "integer_datetimes",
    "max_identifier_length",
    "is_superuser",
];

#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<String, String>,
    initial: BTreeMap<String, String>,
}

impl Settings {
    pub fn new(
        default_isolation: &str,
        lock_timeout: Duration,
        synchronous_commit: bool,
    ) -> Settings {
        let mut values = defaults();
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
            format!("{}ms", lock_timeout.as_millis()),
        );
        Settings {
            initial: values.clone(),
            values,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(&name.to_lowercase()).map(String::as_str)
    }

    pub fn all(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter()
    }

    /// Sets a parameter from a startup packet or SET; returns the stored value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<String> {
        let name = name.to_lowercase();
        let name = match name.as_str() {
            "time zone" => "timezone".to_string(),
            "names" => "client_encoding".to_string(),
            _ => name,
        };
        if READ_ONLY.contains(&name.as_str()) {
            return Err(KuraError::new(
                "55P02",
                format!("parameter \"{name}\" cannot be changed"),
            ));
        }
        if !self.values.contains_key(&name) && !name.contains('.') {
            return Err(unknown(&name));
        }
        let value = normalize_value(&name, value)?;
        self.values.insert(name, value.clone());
        Ok(value)
    }

    pub fn reset(&mut self, name: &str) -> Result<()> {
        let name = name.to_lowercase();
        match self.initial.get(&name) {
            Some(v) => {
                self.values.insert(name, v.clone());
                Ok(())
            }
            None if self.values.remove(&name).is_some() => Ok(()),
            None => Err(unknown(&name)),
        }
    }

    pub fn reset_all(&mut self) {
        self.values = self.initial.clone();
    }

    /// What a commit waits for: `synchronous_commit = on` waits for the log fsync.
    pub fn commit_wait(&self) -> CommitWait {
        if self.get("synchronous_commit") == Some("off") {
            CommitWait::Written
        } else {
            CommitWait::Flush
        }
    }

    /// `lock_timeout` as a wait limit; `None` waits until the lock is free.
    pub fn lock_timeout(&self) -> Option<Duration> {
        let value = self.get("lock_timeout").unwrap_or("0");
        parse_duration_ms(value)
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }
}

fn unknown(name: &str) -> KuraError {
    KuraError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

fn normalize_value(name: &str, value: &str) -> Result<String> {
    match name {
        "client_encoding" => {
            let upper = value.to_uppercase().replace('-', "");
            if upper == "UTF8" || upper == "UNICODE" {
                Ok("UTF8".into())
            } else {
                Err(KuraError::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!("client encoding \"{value}\" is not supported; Kura speaks UTF8 only"),
                ))
            }
        }
        "lock_timeout" | "statement_timeout" | "idle_in_transaction_session_timeout" => {
            parse_duration_ms(value).map(|ms| {
                if ms == 0 {
                    "0".into()
                } else {
                    format!("{ms}ms")
                }
            })
        }
        "synchronous_commit" => match value.to_lowercase().as_str() {
            "on" | "true" | "yes" | "1" | "local" | "remote_write" | "remote_apply" => {
                Ok("on".into())
            }
            "off" | "false" | "no" | "0" => Ok("off".into()),
            _ => Err(KuraError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("invalid value for parameter \"synchronous_commit\": \"{value}\""),
            )
            .with_hint("Available values: on, off.")),
        },
        "transaction_isolation" | "default_transaction_isolation" => {
            let lower = value.to_lowercase();
            match lower.as_str() {
                "read committed" | "read uncommitted" => Ok("read committed".into()),
                "repeatable read" | "serializable" => Ok(lower),
                _ => Err(KuraError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("invalid value for parameter \"{name}\": \"{value}\""),
                )),
            }
        }
        _ => Ok(value.to_string()),
    }
}

/// Parses PostgreSQL duration settings: a bare number is milliseconds; units ms, s, min, h.
pub fn parse_duration_ms(value: &str) -> Result<u64> {
    let v = value.trim().trim_matches('\'');
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad_duration(value))?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad_duration(value)),
    };
    Ok(number.saturating_mul(factor))
}

fn bad_duration(value: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_PARAMETER_VALUE,
        format!("invalid value for a time setting: \"{value}\""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1500").unwrap(), 1500);
        assert_eq!(parse_duration_ms("2s").unwrap(), 2000);
        assert!(parse_duration_ms("2 parsecs").is_err());
    }

    #[test]
    fn unknown_and_read_only_parameters_fail() {
        let mut s = Settings::new("read committed", Duration::ZERO, true);
        assert!(s.set("no_such_thing", "1").is_err());
        assert!(s.set("server_version", "1").is_err());
        assert!(s.set("my.custom", "1").is_ok());
        assert_eq!(s.set("lock_timeout", "1s").unwrap(), "1000ms");
        assert_eq!(s.lock_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(s.commit_wait(), CommitWait::Flush);
        assert_eq!(s.set("synchronous_commit", "OFF").unwrap(), "off");
        assert_eq!(s.commit_wait(), CommitWait::Written);
        assert!(s.set("synchronous_commit", "sometimes").is_err());
    }
}
