//! The replication settings: `/cluster` (copies, and the primary a standby follows), `/sync`
//! (log kept for standbys) and the replication mode values of `/transaction`.
//!
//! Invariants: `replicationNum` counts the primary too (1 = no standby is waited for); a
//! standby (`standbyOf` set) names a `HOST:PORT`; the mode accepts GridDB's numbers (0, 1) as
//! well as the names, and always serializes as a name.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ConfigError;
use super::sections::require;
use super::units::ConfigDuration;

/// `/transaction/replicationMode`: what a commit waits for from the standbys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplicationMode {
    /// Acknowledge after the local commit; standbys follow as fast as they can.
    #[default]
    Async,
    /// Acknowledge once `replicationNum - 1` standbys have received the record (GridDB 1).
    Semisync,
    /// Acknowledge once `replicationNum - 1` standbys have made the record durable.
    Sync,
}

impl ReplicationMode {
    pub fn name(self) -> &'static str {
        match self {
            ReplicationMode::Async => "ASYNC",
            ReplicationMode::Semisync => "SEMISYNC",
            ReplicationMode::Sync => "SYNC",
        }
    }
}

impl Serialize for ReplicationMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ReplicationMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModeVisitor;
        impl Visitor<'_> for ModeVisitor {
            type Value = ReplicationMode;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"ASYNC\", \"SEMISYNC\", \"SYNC\" or GridDB's 0 (ASYNC), 1 (SEMISYNC)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ReplicationMode, E> {
                match v.to_ascii_uppercase().as_str() {
                    "ASYNC" => Ok(ReplicationMode::Async),
                    "SEMISYNC" => Ok(ReplicationMode::Semisync),
                    "SYNC" => Ok(ReplicationMode::Sync),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ReplicationMode, E> {
                match v {
                    0 => Ok(ReplicationMode::Async),
                    1 => Ok(ReplicationMode::Semisync),
                    2 => Ok(ReplicationMode::Sync),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ReplicationMode, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(ModeVisitor)
    }
}

/// `/transaction/replicationTimeoutAction`: what a SEMISYNC or SYNC commit does when the
/// standbys have not answered within `replicationTimeoutInterval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplicationTimeoutAction {
    /// The commit fails with SQLSTATE 40003: it is durable here, but whether a standby has it
    /// is unknown. Nothing is acknowledged that the mode does not promise.
    #[default]
    Fail,
    /// The primary falls back to ASYNC (logged) until enough standbys have caught up again;
    /// the commit is acknowledged.
    Degrade,
}

/// `/cluster`: how many copies of the data there are, and (on a standby) which primary it
/// follows and how it logs in there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ClusterConfig {
    /// Copies of every record, the primary's included: SEMISYNC and SYNC commits wait for
    /// `replicationNum - 1` standbys.
    pub replication_num: u32,
    /// `HOST:PORT` of the primary this server follows as a standby; empty on a primary.
    pub standby_of: String,
    /// The name this standby reports to its primary (`application_name`); empty = its own
    /// listen address.
    pub standby_name: String,
    /// The user a standby logs in to its primary as (an administrator or a user with the
    /// REPLICATION attribute).
    pub replication_user: String,
    /// That user's password; the environment variable `KURA_REPLICATION_PASSWORD` overrides it.
    pub replication_password: String,
    /// Whether a standby connects to its primary over TLS (REQUIRED verifies the primary's
    /// certificate against `ca.crt` in `/system/securityPath`).
    pub replication_ssl_mode: super::SslMode,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            replication_num: 2,
            standby_of: String::new(),
            standby_name: String::new(),
            replication_user: "admin".to_owned(),
            replication_password: String::new(),
            replication_ssl_mode: super::SslMode::Disabled,
        }
    }
}

impl ClusterConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            (1..=16).contains(&self.replication_num),
            "/cluster/replicationNum",
            "must be between 1 and 16",
        )?;
        require(
            self.standby_of.is_empty() || split_host_port(&self.standby_of).is_some(),
            "/cluster/standbyOf",
            "must be HOST:PORT (or empty on a primary)",
        )?;
        require(
            self.replication_ssl_mode != super::SslMode::Preferred,
            "/cluster/replicationSslMode",
            "must be DISABLED or REQUIRED",
        )
    }

    /// True on a standby.
    pub fn is_standby(&self) -> bool {
        !self.standby_of.is_empty()
    }
}

/// `HOST:PORT` split; IPv6 hosts may be bracketed.
pub fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_matches(['[', ']']);
    let port = port.parse().ok()?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// `/sync`: how long the log a standby may still need is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SyncConfig {
    /// Log segments a standby has not received yet are kept for this long after it was last
    /// connected; after that a returning standby is sent a checkpoint copy instead. `0s`
    /// keeps nothing for standbys.
    pub keep_log_interval: ConfigDuration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            keep_log_interval: ConfigDuration::from_secs(1200),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_accept_names_and_griddb_numbers() {
        let parse = |json: &str| serde_json::from_str::<ReplicationMode>(json);
        assert_eq!(parse("\"semisync\"").unwrap(), ReplicationMode::Semisync);
        assert_eq!(parse("0").unwrap(), ReplicationMode::Async);
        assert_eq!(parse("1").unwrap(), ReplicationMode::Semisync);
        assert_eq!(parse("2").unwrap(), ReplicationMode::Sync);
        assert!(parse("3").is_err());
        assert!(parse("\"QUORUM\"").is_err());
        assert_eq!(
            serde_json::to_string(&ReplicationMode::Sync).unwrap(),
            "\"SYNC\""
        );
    }

    #[test]
    fn host_and_port_are_split() {
        assert_eq!(
            split_host_port("127.0.0.1:5433"),
            Some(("127.0.0.1".into(), 5433))
        );
        assert_eq!(split_host_port("[::1]:7"), Some(("::1".into(), 7)));
        assert_eq!(split_host_port("nohost"), None);
        assert_eq!(split_host_port(":5"), None);
    }
}
