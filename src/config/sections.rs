//! One struct per section of the definition file, with its defaults and its range checks.
//!
//! Invariants: every field has a default (`Default` is the shipped `conf/kura.json`); every field
//! is always serialized (no `skip_serializing*`), because the serialized defaults are the list of
//! known settings that unknown keys are checked against; each `validate` names the failing
//! setting by its JSON path.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::units::{ByteSize, ConfigDuration};

/// Fails with `OutOfRange` naming `path` unless `ok`.
pub(super) fn require(
    ok: bool,
    path: &'static str,
    requirement: &'static str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange { path, requirement })
    }
}

/// `/system`: where the server listens and where it keeps its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SystemConfig {
    /// Host name or IP address to listen on.
    pub service_address: String,
    /// TCP port for PostgreSQL-protocol clients; 0 lets the OS pick a free port.
    pub service_port: u16,
    /// Directory holding data files, logs and checkpoints.
    pub data_dir: PathBuf,
    /// Event log directory; a relative path is resolved against `data_dir`.
    pub event_log_path: PathBuf,
    /// Whether clients may, or must, use TLS.
    pub server_ssl_mode: SslMode,
    /// Newest TLS version offered.
    pub ssl_protocol_max_version: TlsVersion,
    /// Directory of `gs_node.crt` and `gs_node.key` (and `ca.crt` for client certificates);
    /// a relative path is resolved against `data_dir`.
    pub security_path: PathBuf,
    /// `HOST:PORT` of the HTTP endpoint with `/metrics` (Prometheus) and `/health`; empty
    /// turns it off; port 0 lets the OS pick a free port.
    pub metrics_address: String,
    /// Lets `SET kura.test_clock` move the server clock. Never read from a file: only the
    /// hidden `kura serve --test-clock` flag sets it, for tests.
    #[serde(skip)]
    pub test_clock: bool,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            service_address: "127.0.0.1".to_owned(),
            service_port: 5433,
            data_dir: PathBuf::from("./kura-data"),
            event_log_path: PathBuf::from("log"),
            server_ssl_mode: SslMode::Disabled,
            ssl_protocol_max_version: TlsVersion::TlsV1_2,
            security_path: PathBuf::from("security"),
            metrics_address: String::new(),
            test_clock: false,
        }
    }
}

impl SystemConfig {
    /// The event log directory with a relative `event_log_path` resolved against `data_dir`.
    pub fn event_log_dir(&self) -> PathBuf {
        self.data_dir.join(&self.event_log_path)
    }

    /// The certificate directory with a relative `security_path` resolved against `data_dir`.
    pub fn security_dir(&self) -> PathBuf {
        self.data_dir.join(&self.security_path)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            !self.service_address.trim().is_empty(),
            "/system/serviceAddress",
            "must not be empty",
        )?;
        require(
            !is_empty_path(&self.data_dir),
            "/system/dataDir",
            "must not be empty",
        )?;
        require(
            !is_empty_path(&self.event_log_path),
            "/system/eventLogPath",
            "must not be empty",
        )?;
        require(
            !is_empty_path(&self.security_path),
            "/system/securityPath",
            "must not be empty",
        )?;
        require(
            self.metrics_address.is_empty()
                || super::replication::split_host_port(&self.metrics_address).is_some(),
            "/system/metricsAddress",
            "must be HOST:PORT, or empty to turn the endpoint off",
        )
    }
}

/// `/system/serverSslMode`: GridDB's three TLS modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SslMode {
    /// Plaintext only; a client asking for TLS is told no.
    #[default]
    Disabled,
    /// TLS for clients that ask; plaintext for the others.
    Preferred,
    /// TLS only; a plaintext connection is refused with SQLSTATE 28000.
    Required,
}

/// `/system/sslProtocolMaxVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "TLSv1.2")]
    TlsV1_2,
    #[serde(rename = "TLSv1.3")]
    TlsV1_3,
}

/// `/security/authMethod`: how clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthMethod {
    /// SCRAM-SHA-256 (RFC 7677), PostgreSQL's default.
    #[default]
    #[serde(rename = "SCRAM_SHA_256")]
    ScramSha256,
    /// PostgreSQL's md5 challenge for users whose verifier is md5; SCRAM for the others.
    Md5,
    /// The password in cleartext, over TLS only.
    Password,
}

/// `/security/passwordEncryption`: how new passwords are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PasswordEncryption {
    #[default]
    #[serde(rename = "SCRAM_SHA_256")]
    ScramSha256,
    Md5,
}

/// `/security/clientCertificate`: what a TLS client's own certificate must prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientCertificate {
    /// No certificate is asked for.
    #[default]
    Off,
    /// A certificate signed by the CA in `ca.crt` is required; the password too.
    VerifyCa,
    /// As VERIFY_CA, and its common name must be the user's name.
    VerifyFull,
    /// As VERIFY_FULL, and the certificate replaces the password.
    Cert,
}

/// `/security`: users and authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SecurityConfig {
    /// The administrators' file (`kura user add|del|passwd`); a relative path is resolved
    /// against `/system/dataDir`.
    pub password_file: PathBuf,
    pub auth_method: AuthMethod,
    pub password_encryption: PasswordEncryption,
    /// Wait before answering a failed login, which slows down password guessing.
    pub login_failure_delay: ConfigDuration,
    pub client_certificate: ClientCertificate,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            password_file: PathBuf::from("conf/password"),
            auth_method: AuthMethod::ScramSha256,
            password_encryption: PasswordEncryption::ScramSha256,
            login_failure_delay: ConfigDuration::from_secs(1),
            client_certificate: ClientCertificate::Off,
        }
    }
}

impl SecurityConfig {
    pub(super) fn validate(&self, system: &SystemConfig) -> Result<(), ConfigError> {
        require(
            !is_empty_path(&self.password_file),
            "/security/passwordFile",
            "must not be empty",
        )?;
        require(
            self.auth_method != AuthMethod::Password || system.server_ssl_mode == SslMode::Required,
            "/security/authMethod",
            "PASSWORD sends passwords in cleartext: it needs /system/serverSslMode REQUIRED",
        )?;
        require(
            self.client_certificate == ClientCertificate::Off
                || system.server_ssl_mode == SslMode::Required,
            "/security/clientCertificate",
            "needs /system/serverSslMode REQUIRED (plaintext clients have no certificate)",
        )?;
        require(
            self.login_failure_delay.get() <= std::time::Duration::from_secs(10),
            "/security/loginFailureDelay",
            "must be at most 10s",
        )
    }
}

fn is_empty_path(path: &Path) -> bool {
    path.as_os_str().is_empty()
}

/// Isolation level of transactions that do not ask for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IsolationLevelSetting {
    /// A new snapshot per statement (GridDB's default).
    #[default]
    ReadCommitted,
    /// One snapshot per transaction; write-write conflicts fail with SQLSTATE 40001.
    RepeatableRead,
}

/// `/transaction`: connections, transaction limits and isolation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct TransactionConfig {
    /// Most client connections open at once.
    pub connection_limit: u32,
    /// A transaction open longer than this is aborted.
    pub transaction_timeout_limit: ConfigDuration,
    /// Longest wait for a row lock; zero waits until the holder finishes (bounded by
    /// `transaction_timeout_limit`).
    pub lock_timeout: ConfigDuration,
    /// Time a new connection has to finish startup and authentication.
    pub authentication_timeout_interval: ConfigDuration,
    /// Default isolation level of new sessions.
    pub isolation_level: IsolationLevelSetting,
    /// What a commit waits for from the standbys.
    pub replication_mode: super::ReplicationMode,
    /// Longest wait of a SEMISYNC or SYNC commit for its standbys.
    pub replication_timeout_interval: ConfigDuration,
    /// What such a commit does when the wait times out.
    pub replication_timeout_action: super::ReplicationTimeoutAction,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        Self {
            connection_limit: 5_000,
            transaction_timeout_limit: ConfigDuration::from_secs(300),
            lock_timeout: ConfigDuration::from_secs(0),
            authentication_timeout_interval: ConfigDuration::from_secs(5),
            isolation_level: IsolationLevelSetting::ReadCommitted,
            replication_mode: super::ReplicationMode::Async,
            replication_timeout_interval: ConfigDuration::from_secs(10),
            replication_timeout_action: super::ReplicationTimeoutAction::Fail,
        }
    }
}

impl TransactionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            self.connection_limit >= 1,
            "/transaction/connectionLimit",
            "must be at least 1",
        )?;
        require(
            !self.transaction_timeout_limit.is_zero(),
            "/transaction/transactionTimeoutLimit",
            "must be longer than 0s",
        )?;
        require(
            !self.authentication_timeout_interval.is_zero(),
            "/transaction/authenticationTimeoutInterval",
            "must be longer than 0s",
        )?;
        require(
            !self.replication_timeout_interval.is_zero(),
            "/transaction/replicationTimeoutInterval",
            "must be longer than 0s",
        )
    }
}

/// Compression of checkpoint data files or log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StoreCompressionMode {
    #[default]
    NoCompression,
    CompressionZstd,
}

/// `/dataStore`: commit-log flushing, memory and in-memory layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DataStoreConfig {
    /// 0 = SYNC (fsync the transaction log before a commit is acknowledged, shared by
    /// concurrent commits); N >= 1 = DELAYED_SYNC (write before acknowledging, fsync every N
    /// seconds).
    pub log_write_mode: u32,
    /// A transaction log segment is closed and a new one started at this size.
    pub log_segment_size: ByteSize,
    /// Compression of transaction log records.
    pub log_compression_mode: StoreCompressionMode,
    /// Memory the table store may use.
    pub store_memory_limit: ByteSize,
    /// Compression of checkpointed data files.
    pub store_compression_mode: StoreCompressionMode,
    /// Rows per column chunk: the row-append buffer is sealed into a chunk at this size.
    pub chunk_rows: usize,
    /// Period of the garbage collector of dead row versions.
    pub gc_interval: ConfigDuration,
    /// Most expired data partitions the background reaper releases per pass (once a second).
    pub batch_scan_num: u32,
    /// Where online backups are written; a relative path is resolved against the data
    /// directory. Put it on another disk in production.
    pub backup_path: PathBuf,
}

impl Default for DataStoreConfig {
    fn default() -> Self {
        Self {
            log_write_mode: 1,
            log_segment_size: ByteSize::mib(64),
            log_compression_mode: StoreCompressionMode::NoCompression,
            store_memory_limit: ByteSize::mib(1_024),
            store_compression_mode: StoreCompressionMode::NoCompression,
            chunk_rows: 16_384,
            gc_interval: ConfigDuration::from_secs(1),
            batch_scan_num: 2000,
            backup_path: PathBuf::from("backup"),
        }
    }
}

impl DataStoreConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            self.batch_scan_num >= 1,
            "/dataStore/batchScanNum",
            "must be at least 1",
        )?;
        require(
            self.log_write_mode <= 3600,
            "/dataStore/logWriteMode",
            "must be between 0 (SYNC) and 3600 seconds",
        )?;
        require(
            self.log_segment_size >= ByteSize::mib(1)
                && self.log_segment_size <= ByteSize::mib(1024),
            "/dataStore/logSegmentSize",
            "must be between 1MB and 1024MB",
        )?;
        require(
            self.store_memory_limit >= ByteSize::mib(1),
            "/dataStore/storeMemoryLimit",
            "must be at least 1MB",
        )?;
        require(
            (1024..=crate::storage::partition::MAX_CHUNK_ROWS).contains(&self.chunk_rows),
            "/dataStore/chunkRows",
            "must be between 1024 and 65536",
        )?;
        require(
            !self.gc_interval.is_zero(),
            "/dataStore/gcInterval",
            "must be longer than 0s",
        )?;
        require(
            !is_empty_path(&self.backup_path),
            "/dataStore/backupPath",
            "must not be empty",
        )
    }
}

/// `/checkpoint`: periodic consistent snapshots of the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct CheckpointConfig {
    /// Time between the starts of two checkpoints.
    pub checkpoint_interval: ConfigDuration,
    /// Completed checkpoints kept on disk (the newest first).
    pub retention_count: u32,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval: ConfigDuration::from_secs(60),
            retention_count: 2,
        }
    }
}

impl CheckpointConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            !self.checkpoint_interval.is_zero(),
            "/checkpoint/checkpointInterval",
            "must be longer than 0s",
        )?;
        require(
            self.retention_count >= 1,
            "/checkpoint/retentionCount",
            "must be at least 1",
        )
    }
}

/// `/sql`: SQL-level limits and rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SqlConfig {
    /// Statements running longer than this are written to the event log (0s = all).
    pub trace_limit_execution_time: ConfigDuration,
    /// Longest statement text (bytes) a slow-statement entry keeps; the rest is cut.
    pub trace_limit_query_size: u32,
    /// Most data partitions one table may have.
    pub table_partitioning_max_assign_num: u32,
    /// Reject a non-primary-key partitioning key on a table with a primary key.
    pub partitioning_rowkey_constraint: bool,
}

impl Default for SqlConfig {
    fn default() -> Self {
        Self {
            trace_limit_execution_time: ConfigDuration::from_secs(300),
            trace_limit_query_size: 1000,
            table_partitioning_max_assign_num: 10_000,
            partitioning_rowkey_constraint: true,
        }
    }
}

impl SqlConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            (1..=60_000).contains(&self.table_partitioning_max_assign_num),
            "/sql/tablePartitioningMaxAssignNum",
            "must be between 1 and 60000",
        )
    }
}
