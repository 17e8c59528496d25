//! The network front end: a TCP listener that hands each connection to pgwire with Kura's
//! handlers, enforces `/transaction/connectionLimit`, and starts the background tasks.
//!
//! Invariant: nothing a client sends can stop the accept loop; a failing connection only ends
//! itself.

pub mod auth;
pub mod connection;
pub mod deferred_flush;
pub mod described;
pub mod handler;
pub mod params;
pub mod replication;
pub mod text;
pub mod tls;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::os::fd::AsFd;

use tokio::net::{TcpListener, TcpStream};

use crate::audit::AuditLog;
use crate::checkpoint::Checkpointer;
use crate::config::Config;
use crate::error::{KuraError, Result, sqlstate};
use crate::interrupt::Interrupt;
use crate::query::Engine;
use crate::recovery::DataDirLock;
use crate::security::admins::{self, Admins, FirstStart};
use crate::session::backends::Backends;
use crate::session::{Session, SessionLimits};
use auth::Authenticator;
use handler::{Accepted, KuraHandler};

pub struct Server {
    listener: TcpListener,
    engine: Arc<Engine>,
    checkpointer: Arc<Checkpointer>,
    config: Arc<Config>,
    connections: Arc<AtomicUsize>,
    backends: Arc<Backends>,
    auth: Arc<Authenticator>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    audit: Option<Arc<AuditLog>>,
    first_start: FirstStart,
    /// The primary this server follows, when it is a standby.
    upstream: Option<crate::replication::receiver::Upstream>,
    /// The metrics and health endpoint's listener until `run` starts serving it.
    metrics: parking_lot::Mutex<Option<TcpListener>>,
    metrics_addr: Option<SocketAddr>,
    _lock: DataDirLock,
}

/// Counts a connection for as long as it lives.
struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Server {
    /// Recovers the data directory, then listens. Nothing is accepted before recovery ends.
    pub async fn bind(config: Config) -> Result<Server> {
        let target_partitions = std::thread::available_parallelism().map_or(2, |n| n.get());
        let recovery_config = config.clone();
        let recovered = tokio::task::spawn_blocking(move || {
            crate::recovery::open(&recovery_config, target_partitions)
        })
        .await
        .map_err(|e| KuraError::internal(format!("recovery task failed: {e}")))??;
        let backups =
            crate::backup::BackupManager::new(config.backup_dir(), config.system.data_dir.clone());
        {
            let (backups, engine) = (backups.clone(), recovered.engine.clone());
            tokio::task::spawn_blocking(move || backups.recover(&engine))
                .await
                .map_err(|e| KuraError::internal(format!("backup start task failed: {e}")))??;
        }
        recovered.engine.attach_backups(backups);
        recovered
            .engine
            .attach_live_config(Arc::new(crate::config::live::LiveConfig::new(
                config.clone(),
            )));
        let password_file = config.password_file();
        let first_start =
            admins::ensure_file(&password_file, std::env::var(admins::PASSWORD_ENV).ok())?;
        let admins = Arc::new(Admins::open(password_file)?);
        recovered.engine.attach_admins(admins.clone());
        let auth = Arc::new(Authenticator::new(
            recovered.engine.clone(),
            admins,
            &config,
        ));
        let tls = tls::acceptor(&config)?;

        let audit = AuditLog::open(&config).map_err(|e| {
            KuraError::new(
                sqlstate::IO_ERROR,
                format!(
                    "cannot create the audit log in {}: {e}",
                    config.trace.audit_dir(&config.system.data_dir).display()
                ),
            )
        })?;
        let address = config.listen_addr();
        let listener = TcpListener::bind(&address).await.map_err(|e| {
            KuraError::new(
                sqlstate::CONNECTION_EXCEPTION,
                format!("cannot listen on {address}: {e}"),
            )
        })?;
        let metrics = if config.system.metrics_address.is_empty() {
            None
        } else {
            let address = &config.system.metrics_address;
            Some(TcpListener::bind(address).await.map_err(|e| {
                KuraError::new(
                    sqlstate::CONNECTION_EXCEPTION,
                    format!("cannot listen for metrics on {address}: {e}"),
                )
            })?)
        };
        let connections = Arc::new(AtomicUsize::new(0));
        let backends = Arc::new(Backends::default());
        recovered
            .engine
            .attach_server_info(Arc::new(crate::stats::ServerInfo {
                started: recovered.engine.txns.clock.now(),
                address: listener
                    .local_addr()
                    .map_or_else(|_| address.clone(), |a| a.to_string()),
                connections: connections.clone(),
                backends: backends.clone(),
                recovery: recovered.report.duration,
                records_replayed: recovered.report.records_replayed,
                data_dir: config.system.data_dir.clone(),
            }));
        let mut config = config;
        if config.cluster.standby_name.is_empty()
            && let Ok(bound) = listener.local_addr()
        {
            // The name a standby reports defaults to the address it really listens on.
            config.cluster.standby_name = bound.to_string();
        }
        let upstream = if config.cluster.is_standby() {
            let mut upstream = crate::replication::receiver::Upstream::from_config(&config)?;
            upstream.listening_on = listener.local_addr().ok();
            Some(upstream)
        } else {
            None
        };
        Ok(Server {
            listener,
            engine: recovered.engine,
            checkpointer: recovered.checkpointer,
            config: Arc::new(config),
            connections,
            backends,
            metrics_addr: metrics.as_ref().and_then(|l| l.local_addr().ok()),
            metrics: parking_lot::Mutex::new(metrics),
            auth,
            tls,
            audit,
            first_start,
            upstream,
            _lock: recovered.lock,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| KuraError::internal(format!("listener has no address: {e}")))
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Where the metrics and health endpoint listens, when it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The default administrator's password when this start generated it (shown once).
    pub fn generated_admin_password(&self) -> Option<&str> {
        match &self.first_start {
            FirstStart::Generated(password) => Some(password),
            _ => None,
        }
    }

    /// Accepts connections until the future is dropped (see [`Server::shutdown`]).
    pub async fn run(&self) -> Result<()> {
        crate::memory::start_background_purge();
        tokio::spawn(crate::gc::run(
            self.engine.clone(),
            self.config.data_store.gc_interval.get(),
        ));
        tokio::spawn(crate::expiry::run(
            self.engine.clone(),
            std::time::Duration::from_secs(1),
            self.config.data_store.batch_scan_num as usize,
        ));
        if let (Some(upstream), Some(hub)) = (&self.upstream, self.engine.replication()) {
            tokio::spawn(crate::replication::receiver::run(
                self.engine.clone(),
                hub.clone(),
                upstream.clone(),
                self.config.system.data_dir.clone(),
            ));
        }
        if let Some(backups) = self.engine.backups() {
            backups.start_archiving();
        }
        if let Some(listener) = self.metrics.lock().take() {
            tokio::spawn(crate::stats::http::serve(listener, self.engine.clone()));
        }
        tokio::spawn(self.checkpointer.clone().run_periodically(
            self.engine.clone(),
            self.config.checkpoint.checkpoint_interval.get(),
        ));
        let limit = self.config.transaction.connection_limit as usize;
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let count = self.connections.fetch_add(1, Ordering::AcqRel) + 1;
            let slot = ConnectionSlot(self.connections.clone());
            let over_limit = count > limit;
            let session = Session::new(
                self.engine.clone(),
                SessionLimits::from_config(&self.config),
            );
            let interrupt = session.interrupt.clone();
            let auth_timeout = self
                .config
                .transaction
                .authentication_timeout_interval
                .get();
            let tls = self.tls.clone();
            let handler = Arc::new(KuraHandler::new(
                session,
                Accepted {
                    backends: self.backends.clone(),
                    auth: self.auth.clone(),
                    over_limit,
                    server_addr: socket.local_addr().ok(),
                    audit: self.audit.clone(),
                },
            ));
            tokio::spawn(async move {
                let _slot = slot;
                serve_connection(socket, peer, tls, handler, interrupt, auth_timeout).await;
            });
        }
    }
}

/// Runs one connection until it ends, until it has not logged in within
/// `/transaction/authenticationTimeoutInterval`, or until its interrupt ends it while it is
/// idle (`pg_terminate_backend`, `idle_in_transaction_session_timeout`). In the last two cases
/// the client gets PostgreSQL's FATAL message before the socket closes, written through a
/// second handle on the socket because pgwire owns the first; dropping the handler then rolls
/// back the session's open transaction.
async fn serve_connection(
    socket: TcpStream,
    peer: SocketAddr,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    handler: Arc<KuraHandler>,
    interrupt: Arc<Interrupt>,
    auth_timeout: std::time::Duration,
) {
    let login_deadline = {
        let handler = handler.clone();
        async move {
            tokio::time::sleep(auth_timeout).await;
            if handler.is_authenticated() {
                std::future::pending::<()>().await;
            }
        }
    };
    let second_handle = socket
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::net::TcpStream::from);
    // A TLS connection cannot take a plaintext message: it is only closed.
    let plaintext = |stream: Option<std::net::TcpStream>| stream.filter(|_| !handler.is_secure());
    tokio::select! {
        ended = connection::serve(socket, tls, handler.clone()) => {
            if let Err(e) = ended {
                tracing::debug!("connection from {peer} ended: {e}");
            }
        }
        reason = interrupt.watch() => {
            tracing::info!("closing the connection from {peer}: {}", reason.error());
            if let Some(stream) = plaintext(second_handle) {
                send_fatal_and_close(stream, &reason.error()).await;
            }
        }
        () = login_deadline => {
            tracing::info!("closing the connection from {peer}: authentication timed out");
            if let Some(stream) = plaintext(second_handle) {
                let error = KuraError::new(
                    sqlstate::QUERY_CANCELED,
                    "canceling authentication due to timeout",
                );
                send_fatal_and_close(stream, &error).await;
            }
        }
    }
}

async fn send_fatal_and_close(stream: std::net::TcpStream, error: &KuraError) {
    use pgwire::messages::Message;
    use tokio::io::AsyncWriteExt;
    let mut bytes = bytes::BytesMut::new();
    let message = pgwire::messages::response::ErrorResponse::from(wire::fatal_info(error));
    if message.encode(&mut bytes).is_err() {
        return;
    }
    let Ok(mut stream) = TcpStream::from_std(stream) else {
        return;
    };
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

impl Server {
    /// A clean stop, after the accept loop has ended: new commits are refused, the ones in
    /// flight finish, a checkpoint is written and the log is closed.
    pub async fn shutdown(self) -> Result<()> {
        let db = self.engine.clone();
        let log = db.txns.log().cloned();
        if let Some(log) = &log {
            db.txns.with_commits_paused(|_| log.refuse_appends());
            // Connected standbys get the last commits before the primary goes away.
            if let Some(hub) = db.replication()
                && !hub.standbys().is_empty()
            {
                let last = log.written_lsn();
                if !hub.drain(last, hub.settings.timeout).await {
                    tracing::warn!(
                        lsn = last,
                        "shutdown: not every connected standby confirmed the log's end in time"
                    );
                }
            }
        }
        if let Some(backups) = db.backups() {
            backups.flush_archive().await;
        }
        tracing::info!("shutdown: writing a final checkpoint");
        let checkpointer = self.checkpointer.clone();
        tokio::task::spawn_blocking(move || {
            let checkpoint = checkpointer.run(&db);
            let closed = log.map_or(Ok(()), |log| log.close());
            checkpoint.and(closed)
        })
        .await
        .map_err(|e| KuraError::internal(format!("shutdown task failed: {e}")))??;
        tracing::info!("shutdown complete");
        Ok(())
    }
}
