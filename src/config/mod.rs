//! The server's settings: the GridDB-style JSON definition file (`conf/kura.json`), its
//! sections (`/system`, `/transaction`, `/dataStore`, `/checkpoint`, `/sql`, `/security`,
//! `/trace`, `/cluster`, `/sync`), unit-bearing values
//! (`"60s"`, `"1024MB"`), and the checks run at startup. Every setting is documented in
//! `docs/CONFIGURATION.md`.
//!
//! Invariants:
//! - every setting has a default, and `Config::default()` equals the shipped `conf/kura.json`;
//!   a missing section or key takes its default;
//! - an unknown key anywhere is an error naming its path (`unknown setting "/transaction/foo"`),
//!   and so is a malformed value (`invalid value for setting "/system/servicePort": ...`);
//! - a `Config` returned by `load` or `from_json_str` has passed `validate`;
//! - adding a setting is one field plus its default in `sections.rs`, one line in
//!   `conf/kura.json` and one row in `docs/CONFIGURATION.md` (the tests below fail when the
//!   file or the docs miss a setting).

pub mod command;
mod document;
pub mod live;
mod replication;
mod sections;
mod trace;
mod units;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use replication::{
    ClusterConfig, ReplicationMode, ReplicationTimeoutAction, SyncConfig, split_host_port,
};
pub use sections::{
    AuthMethod, CheckpointConfig, ClientCertificate, DataStoreConfig, IsolationLevelSetting,
    PasswordEncryption, SecurityConfig, SqlConfig, SslMode, StoreCompressionMode, SystemConfig,
    TlsVersion, TransactionConfig,
};
pub use trace::{AuditLevel, EventLevel, TraceConfig};
pub use units::{ByteSize, ConfigDuration, UnitError};

/// Why the configuration cannot be used. The messages are shown to users as they are.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration is not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    #[error("unknown setting \"{path}\"; expected one of: {expected}")]
    UnknownSetting { path: String, expected: String },
    #[error("setting \"{path}\" must be a JSON object of settings")]
    NotASection { path: String },
    #[error("invalid value for setting \"{path}\": {message}")]
    InvalidValue { path: String, message: String },
    #[error("invalid value for setting \"{path}\": it {requirement}")]
    OutOfRange {
        path: &'static str,
        requirement: &'static str,
    },
}

/// All settings of one server, one field per section of the definition file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Config {
    pub system: SystemConfig,
    pub transaction: TransactionConfig,
    pub data_store: DataStoreConfig,
    pub checkpoint: CheckpointConfig,
    pub sql: SqlConfig,
    pub security: SecurityConfig,
    pub trace: TraceConfig,
    pub cluster: ClusterConfig,
    pub sync: SyncConfig,
}

impl Config {
    /// Reads, parses and validates the definition file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text)
    }

    /// Parses and validates a definition file's text.
    pub fn from_json_str(s: &str) -> Result<Config, ConfigError> {
        let document: Value = serde_json::from_str(s).map_err(ConfigError::Syntax)?;
        let config = Self::from_document(&document)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks value ranges (types and units were checked while parsing).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.system.validate()?;
        self.transaction.validate()?;
        self.data_store.validate()?;
        self.checkpoint.validate()?;
        self.sql.validate()?;
        self.security.validate(&self.system)?;
        self.cluster.validate()?;
        self.trace.validate()
    }

    /// The administrators' file, resolved against the data directory.
    pub fn password_file(&self) -> PathBuf {
        self.system.data_dir.join(&self.security.password_file)
    }

    /// The backup directory (`/dataStore/backupPath`), resolved against the data directory.
    pub fn backup_dir(&self) -> PathBuf {
        self.system.data_dir.join(&self.data_store.backup_path)
    }

    /// The address to listen on, `host:port`; IPv6 literals are bracketed (`[::1]:5433`).
    pub fn listen_addr(&self) -> String {
        let host = self.system.service_address.trim();
        let port = self.system.service_port;
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    fn from_document(document: &Value) -> Result<Config, ConfigError> {
        let template = serde_json::to_value(Config::default())
            .expect("the default configuration serializes to JSON");
        document::check_keys(document, &template, "")?;
        Config::deserialize(document)
            .map_err(|error| document::locate_invalid::<Config>(document, &template, &error))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn error_of(json: &str) -> String {
        Config::from_json_str(json).unwrap_err().to_string()
    }

    #[test]
    fn shipped_file_equals_the_defaults() {
        let shipped = Config::from_json_str(include_str!("../../conf/kura.json")).unwrap();
        assert_eq!(shipped, Config::default());
    }

    /// JSON Pointer paths of every setting, from the serialized defaults.
    fn setting_paths() -> Vec<String> {
        let Value::Object(sections) = serde_json::to_value(Config::default()).unwrap() else {
            panic!("the configuration serializes to an object");
        };
        let mut paths = Vec::new();
        for (section, settings) in &sections {
            let Value::Object(settings) = settings else {
                panic!("section {section} serializes to an object");
            };
            paths.extend(settings.keys().map(|key| format!("/{section}/{key}")));
        }
        paths
    }

    #[test]
    fn shipped_file_and_docs_list_every_setting() {
        let shipped: Value = serde_json::from_str(include_str!("../../conf/kura.json")).unwrap();
        let docs = include_str!("../../docs/CONFIGURATION.md");
        for path in setting_paths() {
            assert!(
                shipped.pointer(&path).is_some(),
                "conf/kura.json lacks {path}"
            );
            assert!(
                docs.contains(&format!("| `{path}` |")),
                "docs/CONFIGURATION.md lacks a row for {path}"
            );
        }
    }

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(config.listen_addr(), "127.0.0.1:5433");
        assert_eq!(config.system.data_dir, PathBuf::from("./kura-data"));
        assert_eq!(config.system.event_log_dir(), Path::new("./kura-data/log"));
        assert_eq!(config.transaction.connection_limit, 5_000);
        assert_eq!(
            config.transaction.transaction_timeout_limit.0,
            Duration::from_secs(300)
        );
        assert_eq!(config.transaction.lock_timeout.get(), Duration::ZERO);
        assert_eq!(
            config.transaction.isolation_level,
            IsolationLevelSetting::ReadCommitted
        );
        assert_eq!(config.data_store.log_write_mode, 1);
        assert_eq!(config.data_store.store_memory_limit.get(), 1 << 30);
        assert_eq!(config.data_store.chunk_rows, 16_384);
        assert_eq!(
            config.checkpoint.checkpoint_interval.get(),
            Duration::from_secs(60)
        );
        assert_eq!(config.sql.table_partitioning_max_assign_num, 10_000);
        assert!(config.sql.partitioning_rowkey_constraint);
    }

    #[test]
    fn missing_sections_and_keys_take_defaults() {
        assert_eq!(Config::from_json_str("{}").unwrap(), Config::default());
        let config = Config::from_json_str(
            r#"{"transaction": {"isolationLevel": "REPEATABLE_READ", "lockTimeout": "500ms"}}"#,
        )
        .unwrap();
        let expected = TransactionConfig {
            isolation_level: IsolationLevelSetting::RepeatableRead,
            lock_timeout: ConfigDuration::from_millis(500),
            ..TransactionConfig::default()
        };
        assert_eq!(config.transaction, expected);
        assert_eq!(config.system, SystemConfig::default());
    }

    #[test]
    fn unknown_key_error_names_its_path() {
        let message = error_of(r#"{"transaction": {"foo": 1}}"#);
        assert!(
            message.starts_with("unknown setting \"/transaction/foo\""),
            "{message}"
        );
        assert!(message.contains("connectionLimit"), "{message}");
        let message = error_of(r#"{"partitionTable": {}}"#);
        assert!(
            message.starts_with("unknown setting \"/partitionTable\""),
            "{message}"
        );
        let message = error_of(r#"{"sql": {"a/b": 1}}"#);
        assert!(
            message.starts_with("unknown setting \"/sql/a~1b\""),
            "{message}"
        );
    }

    #[test]
    fn section_must_be_an_object() {
        let message = error_of(r#"{"system": 5}"#);
        assert_eq!(
            message,
            "setting \"/system\" must be a JSON object of settings"
        );
        let message = error_of("[]");
        assert_eq!(message, "setting \"/\" must be a JSON object of settings");
    }

    #[test]
    fn invalid_value_error_names_its_path() {
        let message = error_of(r#"{"checkpoint": {"checkpointInterval": "60sec"}}"#);
        assert!(
            message.starts_with("invalid value for setting \"/checkpoint/checkpointInterval\""),
            "{message}"
        );
        assert!(message.contains("unknown unit \"sec\""), "{message}");
        let message = error_of(r#"{"system": {"servicePort": 70000}}"#);
        assert!(
            message.starts_with("invalid value for setting \"/system/servicePort\""),
            "{message}"
        );
        let message = error_of(r#"{"transaction": {"isolationLevel": "SERIALIZABLE"}}"#);
        assert!(message.contains("/transaction/isolationLevel"), "{message}");
        assert!(message.contains("REPEATABLE_READ"), "{message}");
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let message = error_of(r#"{"transaction": {"connectionLimit": 0}}"#);
        assert_eq!(
            message,
            "invalid value for setting \"/transaction/connectionLimit\": it must be at least 1"
        );
        assert!(error_of(r#"{"dataStore": {"chunkRows": 0}}"#).contains("/dataStore/chunkRows"));
        assert!(error_of(r#"{"system": {"dataDir": ""}}"#).contains("/system/dataDir"));
    }

    #[test]
    fn syntax_errors_say_where() {
        let message = error_of("{\"system\": {\n}");
        assert!(
            message.starts_with("configuration is not valid JSON"),
            "{message}"
        );
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn load_reports_the_missing_file() {
        let path = Path::new("/nonexistent/kura.json");
        let message = Config::load(path).unwrap_err().to_string();
        assert!(
            message.starts_with("cannot read configuration file /nonexistent/kura.json"),
            "{message}"
        );
    }

    #[test]
    fn listen_addr_brackets_ipv6() {
        let mut config = Config::default();
        config.system.service_address = "::1".to_owned();
        config.system.service_port = 0;
        assert_eq!(config.listen_addr(), "[::1]:0");
    }
}
