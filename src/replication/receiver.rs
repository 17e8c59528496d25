//! A standby's receiver: logs in to the primary as a replication client (same authentication
//! and TLS as any client), asks for the log from its next LSN, appends and applies what
//! arrives, and reports how far it got; reconnects after any failure until it is promoted.
//! A checkpoint copy from the primary is stored, and the standby restarts itself to load it.
//!
//! Invariants: the receiver is the only writer of a standby's log; it reports an LSN as
//! flushed only once the standby's log is fsynced through it; it stops (and the promotion
//! proceeds) only between two messages, so no message is half applied.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{Sink, SinkExt, Stream, StreamExt};
use pgwire::api::client::auth::{DefaultStartupHandler, StartupHandler};
use pgwire::api::client::{ClientInfo, Config as ClientConfig, ServerInformation};
use pgwire::error::{PgWireClientError, PgWireClientResult, PgWireResult};
use pgwire::messages::copy::CopyData;
use pgwire::messages::response::ReadyForQuery;
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{Authentication, BackendKeyData, Startup};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::client::PgWireClient;

use super::apply::Applier;
use super::hub::{ReceiverStatus, ReplicationHub};
use super::incoming::IncomingCopy;
use super::protocol::{Command, Message, StandbyProgress};
use crate::config::{Config, SslMode, split_host_port};
use crate::error::{KuraError, Result, sqlstate};
use crate::query::Engine;

const RETRY: Duration = Duration::from_secs(1);
/// A primary that has sent nothing (not even a keepalive) for this long is given up on.
const PRIMARY_SILENCE: Duration = Duration::from_secs(30);
pub const PASSWORD_ENV: &str = "KURA_REPLICATION_PASSWORD";
/// Set when a standby re-executes itself after a checkpoint copy: the address it listened
/// on, which the new image binds again (so clients and tests find it where it was).
pub const RESTART_LISTEN_ENV: &str = "KURA_RESTART_LISTEN";

/// Where and how a standby logs in to its primary.
#[derive(Clone)]
pub struct Upstream {
    pub address: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub name: String,
    pub tls: Option<pgwire::tokio::TlsConnector>,
    /// The address this standby serves clients on, kept across a self-restart.
    pub listening_on: Option<std::net::SocketAddr>,
}

impl Upstream {
    pub fn from_config(config: &Config) -> Result<Upstream> {
        let cluster = &config.cluster;
        let (host, port) = split_host_port(&cluster.standby_of).ok_or_else(|| {
            KuraError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("standby of {:?}: expected HOST:PORT", cluster.standby_of),
            )
        })?;
        let name = if cluster.standby_name.is_empty() {
            config.listen_addr()
        } else {
            cluster.standby_name.clone()
        };
        let tls = match cluster.replication_ssl_mode {
            SslMode::Required => Some(crate::server::tls::connector(config)?),
            _ => None,
        };
        Ok(Upstream {
            address: cluster.standby_of.clone(),
            host,
            port,
            user: cluster.replication_user.clone(),
            password: std::env::var(PASSWORD_ENV)
                .unwrap_or_else(|_| cluster.replication_password.clone()),
            name,
            tls,
            listening_on: None,
        })
    }
}

/// How a stream ended.
enum Ended {
    Promoted,
    Restart,
}

/// Follows the primary until a promotion is asked for; then returns, leaving the log and the
/// store at the last whole record applied (an incomplete commit's frames are cut off).
pub async fn run(
    engine: Arc<Engine>,
    hub: Arc<ReplicationHub>,
    upstream: Upstream,
    data_dir: std::path::PathBuf,
) {
    let mut applier = match Applier::new(engine.clone()) {
        Ok(applier) => applier,
        Err(e) => {
            tracing::error!("the standby cannot apply the primary's log: {e}");
            return;
        }
    };
    let mut promote = hub.promote_requested.subscribe();
    loop {
        set_status(&hub, |s| {
            s.primary = upstream.address.clone();
            s.state = "connecting";
        });
        let outcome = tokio::select! {
            outcome = follow(&hub, &upstream, &mut applier, &data_dir) => outcome,
            _ = promote.wait_for(|asked| *asked) => Ok(Ended::Promoted),
        };
        match outcome {
            Ok(Ended::Promoted) => break,
            Ok(Ended::Restart) => restart_process(upstream.listening_on),
            Err(e) => {
                tracing::warn!(primary = %upstream.address, "replication: {e}; retrying");
                set_status(&hub, |s| {
                    s.state = "disconnected";
                    s.last_error = Some(e.message.clone());
                });
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            _ = promote.wait_for(|asked| *asked) => break,
        }
    }
    if let Some(first) = applier.pending()
        && let Some(log) = engine.txns.log()
        && let Err(e) = log.discard_from(first)
    {
        tracing::error!("cannot cut an incomplete commit off the log: {e}");
    }
    set_status(&hub, |s| s.state = "stopped");
    hub.receiver_stopped.send_replace(true);
}

fn set_status(hub: &ReplicationHub, f: impl FnOnce(&mut ReceiverStatus)) {
    f(&mut hub.receiver.lock());
}

/// One connection to the primary, until it fails or a checkpoint copy has been stored.
async fn follow(
    hub: &Arc<ReplicationHub>,
    upstream: &Upstream,
    applier: &mut Applier,
    data_dir: &std::path::Path,
) -> Result<Ended> {
    let mut client = connect(upstream).await?;
    let log = applier.log();
    let command = Command::StartReplication {
        next: applier.next_lsn(),
        epoch: hub.current_epoch(),
    };
    client
        .send(PgWireFrontendMessage::Query(Query::new(command.to_sql())))
        .await
        .map_err(client_error)?;
    loop {
        match next_message(&mut client).await? {
            PgWireBackendMessage::CopyBothResponse(_) => break,
            PgWireBackendMessage::ErrorResponse(error) => return Err(primary_refused(error)),
            _ => {}
        }
    }
    tracing::info!(primary = %upstream.address, from = applier.next_lsn(), "following the primary");
    set_status(hub, |s| {
        s.state = "streaming";
        s.last_error = None;
    });
    let mut durable = log.subscribe_durable();
    let mut copy: Option<IncomingCopy> = None;
    loop {
        let message = tokio::select! {
            message = tokio::time::timeout(PRIMARY_SILENCE, next_message(&mut client)) => {
                message.map_err(|_| KuraError::new(
                    sqlstate::CONNECTION_EXCEPTION,
                    format!("the primary sent nothing for {PRIMARY_SILENCE:?}"),
                ))??
            }
            changed = durable.changed() => {
                if changed.is_err() {
                    return Err(KuraError::internal("the standby's log stopped"));
                }
                report(&mut client, hub, applier, &log).await?;
                continue;
            }
        };
        let data = match message {
            PgWireBackendMessage::CopyData(data) => data.data,
            PgWireBackendMessage::ErrorResponse(error) => return Err(primary_refused(error)),
            PgWireBackendMessage::CopyDone(_) => {
                return Err(KuraError::new(
                    sqlstate::CONNECTION_EXCEPTION,
                    "the primary ended the stream",
                ));
            }
            _ => continue,
        };
        set_status(hub, |s| s.last_message = Some(chrono::Utc::now()));
        match Message::decode(&data)? {
            Message::Frames { first, bytes } => {
                tokio::task::block_in_place(|| applier.receive(first, &bytes))?;
                log.request_flush(log.written_lsn());
                report(&mut client, hub, applier, &log).await?;
            }
            Message::Keepalive {
                written,
                epoch,
                reply,
            } => {
                let ours = hub.current_epoch().epoch;
                if epoch < ours {
                    return Err(KuraError::new(
                        sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                        format!(
                            "the primary is at epoch {epoch}, older than this standby's epoch \
                             {ours}: refusing its log"
                        ),
                    ));
                }
                set_status(hub, |s| s.primary_written = written);
                if reply {
                    report(&mut client, hub, applier, &log).await?;
                }
            }
            Message::CopyBegin(header) => {
                tracing::info!(
                    lsn = header.lsn,
                    files = header.files.len(),
                    "receiving a checkpoint copy from the primary"
                );
                set_status(hub, |s| s.state = "copying");
                copy = Some(IncomingCopy::begin(data_dir, header)?);
            }
            Message::CopyFile { name, bytes } => match &mut copy {
                Some(copy) => tokio::task::block_in_place(|| copy.write(&name, &bytes))?,
                None => {
                    return Err(KuraError::new(
                        sqlstate::PROTOCOL_VIOLATION,
                        "a file piece outside a checkpoint copy",
                    ));
                }
            },
            Message::CopyEnd => {
                let Some(copy) = copy.take() else {
                    return Err(KuraError::new(
                        sqlstate::PROTOCOL_VIOLATION,
                        "a copy end without a copy",
                    ));
                };
                let lsn = tokio::task::block_in_place(|| copy.complete())?;
                tracing::warn!(
                    lsn,
                    "checkpoint copy received: the standby restarts to load it"
                );
                let _ = client
                    .send(PgWireFrontendMessage::CopyDone(
                        pgwire::messages::copy::CopyDone::new(),
                    ))
                    .await;
                return Ok(Ended::Restart);
            }
            Message::Status(_) => {}
        }
    }
}

async fn report(
    client: &mut PgWireClient,
    hub: &ReplicationHub,
    applier: &Applier,
    log: &crate::wal::TxnLog,
) -> Result<()> {
    let progress = StandbyProgress {
        received: log.written_lsn(),
        flushed: log.durable_lsn(),
        applied: applier.applied(),
    };
    set_status(hub, |s| {
        s.progress = progress;
        s.primary_written = s.primary_written.max(progress.received);
    });
    let data = Message::Status(progress).encode()?;
    client
        .send(PgWireFrontendMessage::CopyData(CopyData::new(data)))
        .await
        .map_err(client_error)
}

async fn next_message(client: &mut PgWireClient) -> Result<PgWireBackendMessage> {
    match client.next().await {
        Some(Ok(message)) => Ok(message),
        Some(Err(e)) => Err(KuraError::new(
            sqlstate::CONNECTION_EXCEPTION,
            e.to_string(),
        )),
        None => Err(KuraError::new(
            sqlstate::CONNECTION_EXCEPTION,
            "the primary closed the connection",
        )),
    }
}

fn primary_refused(error: pgwire::messages::response::ErrorResponse) -> KuraError {
    let info = pgwire::error::ErrorInfo::from(error);
    KuraError::new(
        sqlstate::CONNECTION_EXCEPTION,
        format!("the primary refused: {} ({})", info.message, info.code),
    )
}

fn client_error(e: impl std::fmt::Display) -> KuraError {
    KuraError::new(sqlstate::CONNECTION_EXCEPTION, e.to_string())
}

async fn connect(upstream: &Upstream) -> Result<PgWireClient> {
    // The TLS mode's type is private to pgwire; its connection-string form is not.
    let sslmode = if upstream.tls.is_some() {
        "require"
    } else {
        "disable"
    };
    let mut config: ClientConfig = format!("sslmode={sslmode}")
        .parse()
        .map_err(|e| KuraError::internal(format!("replication connection settings: {e}")))?;
    config
        .host(upstream.host.clone())
        .port(upstream.port)
        .user(upstream.user.clone())
        .password(upstream.password.clone())
        .dbname("public")
        .application_name(upstream.name.clone())
        .connect_timeout(Duration::from_secs(10));
    let handler = ReplicationStartup {
        inner: DefaultStartupHandler::new(),
        name: upstream.name.clone(),
    };
    PgWireClient::connect(Arc::new(config), handler, upstream.tls.clone())
        .await
        .map_err(|e| {
            KuraError::new(
                sqlstate::CONNECTION_EXCEPTION,
                format!("cannot connect to the primary {}: {e}", upstream.address),
            )
        })
}

/// The default startup (authentication by any method the primary asks for) with the
/// `replication` startup parameter.
struct ReplicationStartup {
    inner: DefaultStartupHandler,
    name: String,
}

#[async_trait]
impl StartupHandler for ReplicationStartup {
    async fn startup<C>(&mut self, client: &mut C) -> PgWireClientResult<()>
    where
        C: ClientInfo + Sink<PgWireFrontendMessage> + Unpin + Send,
        PgWireClientError: From<<C as Sink<PgWireFrontendMessage>>::Error>,
    {
        let mut startup = Startup::new();
        let config = client.config();
        let (major, minor) = config.get_protocol_version().version_number();
        startup.protocol_number_major = major;
        startup.protocol_number_minor = minor;
        for (name, value) in [
            ("user", config.get_user().unwrap_or_default()),
            ("database", "public"),
            ("application_name", self.name.as_str()),
            ("replication", "true"),
        ] {
            startup
                .parameters
                .insert(name.to_string(), value.to_string());
        }
        client.send(PgWireFrontendMessage::Startup(startup)).await?;
        Ok(())
    }

    async fn on_authentication<C>(
        &mut self,
        client: &mut C,
        message: Authentication,
    ) -> PgWireClientResult<()>
    where
        C: ClientInfo
            + Stream<Item = PgWireResult<PgWireBackendMessage>>
            + Sink<PgWireFrontendMessage>
            + Unpin
            + Send,
        PgWireClientError: From<<C as Sink<PgWireFrontendMessage>>::Error>,
    {
        self.inner.on_authentication(client, message).await
    }

    async fn on_backend_key<C>(
        &mut self,
        client: &mut C,
        message: BackendKeyData,
    ) -> PgWireClientResult<()>
    where
        C: ClientInfo + Sink<PgWireFrontendMessage> + Unpin + Send,
        PgWireClientError: From<<C as Sink<PgWireFrontendMessage>>::Error>,
    {
        self.inner.on_backend_key(client, message).await
    }

    async fn on_ready_for_query<C>(
        &mut self,
        client: &mut C,
        message: ReadyForQuery,
    ) -> PgWireClientResult<ServerInformation>
    where
        C: ClientInfo + Sink<PgWireFrontendMessage> + Unpin + Send,
        PgWireClientError: From<<C as Sink<PgWireFrontendMessage>>::Error>,
    {
        self.inner.on_ready_for_query(client, message).await
    }
}

/// Replaces this process with a fresh start of the same command (after a checkpoint copy,
/// which recovery installs before loading).
fn restart_process(listening_on: Option<std::net::SocketAddr>) -> ! {
    use std::os::unix::process::CommandExt;
    let program = std::env::current_exe()
        .map(std::ffi::OsString::from)
        .unwrap_or_else(|_| std::env::args_os().next().unwrap_or_default());
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let mut command = std::process::Command::new(program);
    command.args(args);
    if let Some(address) = listening_on {
        command.env(RESTART_LISTEN_ENV, address.to_string());
    }
    let error = command.exec();
    tracing::error!("cannot restart the standby: {error}");
    std::process::exit(70);
}
