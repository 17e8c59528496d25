//! The pgwire handlers of one connection: startup and authentication (`auth.rs`), the simple
//! query protocol (several statements per message, executed and answered one at a time), and
//! the extended protocol (Parse/Bind/Describe/Execute/Sync with named statements and portals).
//!
//! Invariant: the transaction status sent in ReadyForQuery always comes from the session, so
//! clients see I/T/E exactly as the session's transaction block is.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_pg::datatypes::into_pg_type;
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::Statement;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_execution_response};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState, PgWireServerHandlers, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::ProtocolVersion;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{
    Describe, Sync as PgSync, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{EmptyQueryResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{ParameterStatus, PasswordMessageFamily, SecretKey, Startup};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::tokio_rustls::rustls::pki_types::CertificateDer;
use tokio::sync::Mutex;

use super::auth::{Authenticator, Pending, Progress};
use super::wire::{error_info, fatal_info, fields, respond, to_pgwire};
use crate::audit::{AuditLog, Connection, SessionAudit};
use crate::config::SslMode;
use crate::error::{KuraError, sqlstate};
use crate::security::Login;
use crate::security::verifier::random_bytes;
use crate::session::backends::{Activity, Backends};
use crate::session::settings::REPORTED;
use crate::session::{Session, Settings, TxnStatus};
use crate::sql::{Outcome, parse_sql};
use crate::storage::stored::PUBLIC_DATABASE;

/// A statement prepared with Parse: its syntax tree and what Describe reports.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub statement: Statement,
    /// The text it was parsed from (for the slow-statement log).
    pub sql: Arc<str>,
    pub param_types: Vec<Option<DataType>>,
    pub result: Option<SchemaRef>,
    /// The result's fields in text format, built on the first Describe: drivers describe the
    /// portal of every execution.
    pub text_fields: std::sync::OnceLock<Vec<FieldInfo>>,
    /// The session's statement epoch at Parse: DEALLOCATE ALL / DISCARD ALL end it.
    pub epoch: u64,
}

/// What the server knows of a connection when it accepts it.
pub struct Accepted {
    pub backends: Arc<Backends>,
    pub auth: Arc<Authenticator>,
    /// Set when the connection exceeds `/transaction/connectionLimit`: startup is refused.
    pub over_limit: bool,
    /// The server's end of the connection.
    pub server_addr: Option<std::net::SocketAddr>,
    pub audit: Option<Arc<AuditLog>>,
}

pub struct KuraHandler {
    session: Arc<Mutex<Session>>,
    parser: Arc<KuraParser>,
    accepted: Accepted,
    /// The startup message's parameters, kept until authentication ends.
    startup: parking_lot::Mutex<Option<BTreeMap<String, String>>>,
    /// The authentication exchange in progress.
    pending: parking_lot::Mutex<Option<Pending>>,
    authenticated: AtomicBool,
    /// The client negotiated TLS.
    secure: AtomicBool,
    /// A replication connection (startup parameter `replication`): replication commands only.
    replication: AtomicBool,
    /// The stream a START_REPLICATION has opened, for the connection loop to run.
    stream: parking_lot::Mutex<Option<super::replication::ReplicationStream>>,
    /// The TLS client's certificate chain, taken from the socket before the connection loop
    /// wraps it (pgwire finds it only on its own stream type).
    client_certificates: std::sync::OnceLock<Vec<CertificateDer<'static>>>,
}

impl KuraHandler {
    /// Records the certificate chain the TLS client presented.
    pub fn set_client_certificates(&self, chain: &[CertificateDer<'_>]) {
        let owned = chain.iter().map(|c| c.clone().into_owned()).collect();
        let _ = self.client_certificates.set(owned);
    }

    pub fn new(session: Session, accepted: Accepted) -> KuraHandler {
        let session = Arc::new(Mutex::new(session));
        KuraHandler {
            parser: Arc::new(KuraParser {
                session: session.clone(),
            }),
            session,
            accepted,
            startup: parking_lot::Mutex::new(None),
            pending: parking_lot::Mutex::new(None),
            authenticated: AtomicBool::new(false),
            secure: AtomicBool::new(false),
            replication: AtomicBool::new(false),
            client_certificates: std::sync::OnceLock::new(),
            stream: parking_lot::Mutex::new(None),
        }
    }
}

/// Routes a CancelRequest (which arrives on a connection of its own) to the connection it
/// names.
pub struct CancelDispatch(pub Arc<Backends>);

#[async_trait]
impl CancelHandler for CancelDispatch {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = request.secret_key.to_bytes();
        if !self.0.cancel_with_key(request.pid, &key) {
            tracing::debug!("cancel request for process {} ignored", request.pid);
        }
    }
}

pub struct ConnectionHandlers(pub Arc<KuraHandler>);

impl PgWireServerHandlers for ConnectionHandlers {
    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.0.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(CancelDispatch(self.0.accepted.backends.clone()))
    }

    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.0.clone()
    }
}

fn wire_status(status: TxnStatus) -> TransactionStatus {
    match status {
        TxnStatus::Idle => TransactionStatus::Idle,
        TxnStatus::InBlock => TransactionStatus::Transaction,
        TxnStatus::Failed => TransactionStatus::Error,
    }
}

struct SessionParameters(BTreeMap<String, String>);

impl ServerParameterProvider for SessionParameters {
    fn server_parameters<C>(&self, _client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        Some(self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

/// A startup error: always FATAL, then pgwire closes the connection.
fn startup_error(e: &KuraError) -> PgWireError {
    PgWireError::UserError(Box::new(fatal_info(e)))
}

#[async_trait]
impl StartupHandler for KuraHandler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(startup) => self.start(client, startup).await,
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                self.authenticate(client, message).await
            }
            _ => Err(startup_error(&KuraError::new(
                sqlstate::PROTOCOL_VIOLATION,
                "expected a startup or password message",
            ))),
        }
    }
}

impl KuraHandler {
    /// The startup message: refuses what must be refused, then asks for the password.
    async fn start<C>(&self, client: &mut C, startup: Startup) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        save_startup_parameters_to_metadata(client, &startup);
        self.secure.store(client.is_secure(), Ordering::Release);
        let user = match self.admissible(client) {
            Ok(user) => user,
            Err(e) => return Err(self.refuse(client, "CONNECT", &e)),
        };
        protocol_negotiation(client, &startup).await?;
        *self.startup.lock() = Some(startup.parameters.clone());
        let certified = self
            .accepted
            .auth
            .check_certificate(&user, self.client_certificates.get().map(Vec::as_slice))
            .map_err(|e| self.refuse(client, "AUTHENTICATE", &e))?;
        if let Some(login) = certified {
            return self.open_session(client, login).await;
        }
        let (request, pending) = self.accepted.auth.begin(&user);
        *self.pending.lock() = Some(pending);
        client.set_state(PgWireConnectionState::AuthenticationInProgress);
        client
            .send(PgWireBackendMessage::Authentication(request))
            .await?;
        Ok(())
    }

    /// The user a new connection names, unless the connection is to be refused before
    /// authentication.
    fn admissible<C: ClientInfo>(&self, client: &C) -> Result<String, KuraError> {
        if self.accepted.over_limit {
            return Err(KuraError::new(
                sqlstate::TOO_MANY_CONNECTIONS,
                "sorry, too many clients already",
            ));
        }
        if self.accepted.auth.ssl_mode == SslMode::Required && !client.is_secure() {
            return Err(KuraError::new(
                sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                "this server accepts TLS connections only",
            )
            .with_hint("connect with sslmode=require (or verify-ca, verify-full)"));
        }
        match client.metadata().get("user").filter(|u| !u.is_empty()) {
            Some(user) => Ok(user.clone()),
            None => Err(KuraError::new(
                sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                "no user name specified in the startup message",
            )),
        }
    }

    /// Audits a refused connection or failed login; the FATAL error to answer it with.
    fn refuse<C: ClientInfo>(&self, client: &C, operation: &str, error: &KuraError) -> PgWireError {
        if operation == "AUTHENTICATE" {
            tracing::warn!(
                client = %client.socket_addr(),
                user = client.metadata().get("user").map_or("", |u| u.as_str()),
                "login failed: {}",
                error.message
            );
        }
        if let Some(audit) = &self.accepted.audit {
            let mut connection = self.connection(client);
            connection.id = Connection::new_id();
            audit.connection_event(&connection, operation, Some(error));
        }
        startup_error(error)
    }

    /// The audit log's view of this connection, from the startup message's parameters.
    fn connection<C: ClientInfo>(&self, client: &C) -> Connection {
        let parameter = |name: &str| client.metadata().get(name).cloned();
        Connection {
            user: parameter("user"),
            database: parameter("database")
                .filter(|d| !d.is_empty())
                .or_else(|| parameter("user").map(|_| PUBLIC_DATABASE.to_string())),
            application: parameter("application_name"),
            client: Some(client.socket_addr()),
            server: self.accepted.server_addr,
            ..Connection::default()
        }
    }

    /// A password message: the next step of the exchange, and the session once it succeeds.
    async fn authenticate<C>(
        &self,
        client: &mut C,
        message: PasswordMessageFamily,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(pending) = self.pending.lock().take() else {
            return Err(startup_error(&KuraError::new(
                sqlstate::PROTOCOL_VIOLATION,
                "unexpected password message",
            )));
        };
        match self.accepted.auth.step(pending, message) {
            Ok(Progress::Continue(request, pending)) => {
                *self.pending.lock() = Some(pending);
                client
                    .send(PgWireBackendMessage::Authentication(request))
                    .await?;
                Ok(())
            }
            Ok(Progress::Done(last, login)) => {
                if let Some(last) = last {
                    client
                        .feed(PgWireBackendMessage::Authentication(last))
                        .await?;
                }
                self.open_session(client, login).await
            }
            Err(e) => {
                if e.code == sqlstate::INVALID_PASSWORD {
                    tokio::time::sleep(self.accepted.auth.failure_delay).await;
                }
                Err(self.refuse(client, "AUTHENTICATE", &e))
            }
        }
    }

    /// After authentication: the database, the settings from the startup message, and the
    /// connection's entry among the server's backends.
    async fn open_session<C>(&self, client: &mut C, login: Login) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let parameters = self.startup.lock().take().unwrap_or_default();
        let replication =
            super::replication::requested(parameters.get("replication").map(String::as_str))
                .and_then(|asked| {
                    if asked {
                        super::replication::check_privilege(&login)?;
                    }
                    Ok(asked)
                })
                .map_err(|e| self.refuse(client, "CONNECT", &e))?;
        self.replication.store(replication, Ordering::Release);
        let mut session = self.session.lock().await;
        let database = parameters
            .get("database")
            .filter(|d| !d.is_empty())
            .map_or(PUBLIC_DATABASE, |d| d.as_str());
        session
            .engine()
            .existing_database(database)
            .and_then(|db| session.log_in(&login, db))
            .map_err(|e| self.refuse(client, "CONNECT", &e))?;
        for (name, value) in &parameters {
            let settable = !matches!(
                name.as_str(),
                "user" | "database" | "options" | "replication"
            );
            if settable {
                // Unknown startup parameters are ignored, as PostgreSQL ignores none of them
                // silently only for real GUCs; clients send e.g. `extra_float_digits`.
                let _ = Arc::make_mut(&mut session.settings).set(name, value);
            }
        }
        session.note_server_role();
        let settings = Arc::make_mut(&mut session.settings);
        settings.set_session_user(&login.user);
        settings.seal_startup();
        let secret = match client.protocol_version() {
            ProtocolVersion::PROTOCOL3_0 => {
                let bytes = random_bytes(4);
                SecretKey::I32(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            }
            _ => SecretKey::Bytes(random_bytes(32).into()),
        };
        let activity = Activity {
            pid: 0,
            user: login.user.clone(),
            database: session.database().name.clone(),
            application_name: session
                .settings
                .get("application_name")
                .unwrap_or_default()
                .to_string(),
            client_addr: Some(client.socket_addr()),
            ssl: client.is_secure(),
            backend_start: chrono::Utc::now(),
            query_start: None,
            state: "idle",
            query: Arc::from(""),
        };
        let pid = session.attach(
            self.accepted.backends.clone(),
            secret.to_bytes().to_vec(),
            activity,
        );
        if let Some(log) = &self.accepted.audit {
            let connection = Connection {
                id: Connection::new_id(),
                pid,
                user: Some(login.user.clone()),
                admin: Some(session.identity.admin),
                database: Some(session.database().name.clone()),
                ..self.connection(client)
            };
            session.start_audit(SessionAudit::logged_in(log.clone(), connection));
        }
        client.set_pid_and_secret_key(pid, secret);
        let reported = reported(&session.settings).into_iter().collect();
        self.authenticated.store(true, Ordering::Release);
        tracing::debug!(user = %login.user, database = %session.database().name, "connected");
        finish_authentication(client, &SessionParameters(reported)).await
    }

    /// True when the connection uses TLS (known once the startup message arrived).
    pub fn is_secure(&self) -> bool {
        self.secure.load(Ordering::Acquire)
    }

    /// True once the client has logged in (the authentication timeout no longer applies).
    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    /// The replication stream a START_REPLICATION opened, once.
    pub fn take_replication_stream(&self) -> Option<super::replication::ReplicationStream> {
        self.stream.lock().take()
    }

    /// A query on a replication connection: a replication command.
    async fn on_replication_command<C>(&self, client: &mut C, sql: &str) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use super::replication::{Action, command};
        let mut session = self.session.lock().await;
        let engine = session.engine().clone();
        let user = session.identity.user.clone();
        let name = session
            .settings
            .get("application_name")
            .filter(|n| !n.is_empty())
            .map_or_else(|| client.socket_addr().to_string(), str::to_string);
        let action = command(&engine, sql, &user, &name, Some(client.socket_addr())).await;
        match action {
            Ok(Action::Query(sql)) => {
                let statements = parse_sql(&sql).map_err(to_pgwire)?;
                for statement in &statements {
                    run_simple(&mut session, client, statement).await?;
                }
            }
            Ok(Action::Stream(stream)) => {
                let response = pgwire::messages::copy::CopyBothResponse::new(0, 0, Vec::new());
                client
                    .send(PgWireBackendMessage::CopyBothResponse(response))
                    .await?;
                client.set_state(PgWireConnectionState::CopyInProgress(false));
                *self.stream.lock() = Some(*stream);
                return Ok(());
            }
            Err(e) => {
                client
                    .feed(PgWireBackendMessage::ErrorResponse(error_info(&e).into()))
                    .await?;
            }
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                TransactionStatus::Idle,
            )))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl SimpleQueryHandler for KuraHandler {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        if self.replication.load(Ordering::Acquire) {
            return self.on_replication_command(client, &query.query).await;
        }
        let mut session = self.session.lock().await;
        session.begin_request();
        let sql = query.query;
        session.record_request_sql(Arc::from(sql.as_str()));
        match parse_sql(&sql) {
            Err(e) => {
                session.fail_block();
                client
                    .feed(PgWireBackendMessage::ErrorResponse(error_info(&e).into()))
                    .await?;
            }
            Ok(statements) if statements.is_empty() => {
                // Blank, only semicolons, or only comments (Grafana's `-- ping`).
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
            }
            Ok(statements) => {
                if let Some(position) = statements.iter().position(is_copy_from_stdin)
                    && position + 1 != statements.len()
                {
                    let e = KuraError::unsupported(
                        "COPY FROM STDIN must be the last statement of a query string",
                    );
                    session.fail_block();
                    session.end_request();
                    client.set_state(PgWireConnectionState::ReadyForQuery);
                    return Err(to_pgwire(e));
                }
                for statement in &statements {
                    if let Err(e) = run_simple(&mut session, client, statement).await {
                        session.fail_block();
                        let info = match e {
                            PgWireError::UserError(info) => *info,
                            other => error_info(&KuraError::internal(other.to_string())),
                        };
                        if info.is_fatal() {
                            // pgwire sends it, then closes the connection.
                            session.end_request();
                            return Err(PgWireError::UserError(Box::new(info)));
                        }
                        client
                            .feed(PgWireBackendMessage::ErrorResponse(info.into()))
                            .await?;
                        break;
                    }
                }
            }
        }
        if session.copy_in_progress() {
            // CopyDone or CopyFail ends the request; pgwire then sends ReadyForQuery.
            return Ok(());
        }
        let status = wire_status(session.status());
        session.end_request();
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        Ok(())
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let statements = parse_sql(query).map_err(to_pgwire)?;
        let mut responses = Vec::with_capacity(statements.len());
        for statement in &statements {
            let failed = session.failure_flag();
            match session.execute(statement, &no_params()).await {
                Ok(outcome) => {
                    let zone = session.display_zone().map_err(to_pgwire)?;
                    responses
                        .push(respond(client, outcome, &Format::UnifiedText, failed, zone).await?)
                }
                Err(e) => {
                    responses.push(Response::Error(Box::new(error_info(&e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// Executes one statement of a simple query and writes its whole answer.
async fn run_simple<C>(
    session: &mut Session,
    client: &mut C,
    statement: &Statement,
) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let failed = session.failure_flag();
    let before = session.settings.clone();
    let outcome = match deallocate_protocol_statement(client, statement) {
        Some(outcome) => outcome,
        None => session
            .execute(statement, &no_params())
            .await
            .map_err(to_pgwire)?,
    };
    report_changes(session, client, &before).await?;
    let zone = session.display_zone().map_err(to_pgwire)?;
    match respond(client, outcome, &Format::UnifiedText, failed, zone).await? {
        Response::Query(results) => {
            pgwire::api::query::send_query_response(client, results, true).await
        }
        Response::Execution(tag)
        | Response::TransactionStart(tag)
        | Response::TransactionEnd(tag) => send_execution_response(client, tag).await,
        Response::EmptyQuery => {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            Ok(())
        }
        Response::Error(info) => Err(PgWireError::UserError(info)),
        Response::CopyIn(start) => {
            pgwire::api::copy::send_copy_in_response(client, start).await?;
            client.set_state(PgWireConnectionState::CopyInProgress(false));
            Ok(())
        }
        Response::CopyOut(_) => Err(to_pgwire(KuraError::internal(
            "COPY TO data is sent by wire::respond",
        ))),
        Response::CopyBoth(_) => Err(to_pgwire(KuraError::unsupported(
            "COPY BOTH is not supported",
        ))),
    }
}

/// The reported parameters (ParameterStatus) and their current values.
fn reported(settings: &Settings) -> Vec<(String, String)> {
    REPORTED
        .iter()
        .filter_map(|name| {
            settings.get(name).map(|v| {
                (
                    crate::session::settings::display_name(name).to_string(),
                    v.to_string(),
                )
            })
        })
        .collect()
}

/// Sends ParameterStatus for every reported parameter whose value differs from `before`, the
/// settings when the request started. Settings are copy-on-write, so unchanged settings are
/// the same allocation and cost nothing to compare.
async fn report_changes<C>(
    session: &Session,
    client: &mut C,
    before: &Arc<Settings>,
) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if Arc::ptr_eq(before, &session.settings) {
        return Ok(());
    }
    let before = reported(before);
    for (name, value) in reported(&session.settings) {
        if !before.contains(&(name.clone(), value.clone())) {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name, value,
                )))
                .await?;
        }
    }
    Ok(())
}

/// A parameter that does not fit its type is "out of range" (22003), as in PostgreSQL.
fn parameter_error(e: PgWireError) -> PgWireError {
    match e {
        PgWireError::UserError(mut info) if info.message.contains("out of range") => {
            info.code = sqlstate::NUMERIC_VALUE_OUT_OF_RANGE.to_string();
            PgWireError::UserError(info)
        }
        other => other,
    }
}

/// `DEALLOCATE name` of a statement prepared through the protocol (Parse): removed here,
/// because the statements live in the connection's portal store. SQL-prepared statements
/// and `DEALLOCATE ALL` are the session's.
fn deallocate_protocol_statement<C>(client: &C, statement: &Statement) -> Option<Outcome>
where
    C: ClientPortalStore,
    C::PortalStore: PortalStore,
{
    let Statement::Deallocate { name, .. } = statement else {
        return None;
    };
    let key = crate::sql::names::normalize(name);
    let store = client.portal_store();
    if key == "all" || store.get_statement(&key).is_none() {
        return None;
    }
    store.rm_statement(&key);
    Some(Outcome::done("DEALLOCATE"))
}

fn is_copy_from_stdin(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Copy {
            to: false,
            target: datafusion::sql::sqlparser::ast::CopyTarget::Stdin,
            ..
        }
    )
}

#[async_trait]
impl CopyHandler for KuraHandler {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        match session.copy_data(&copy_data.data).await {
            Ok(()) => Ok(()),
            Err(e) => {
                session.end_request();
                let status = wire_status(session.status());
                client.set_transaction_status(status);
                Err(to_pgwire(e))
            }
        }
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let outcome = session.copy_done().await;
        session.end_request();
        let status = wire_status(session.status());
        client.set_transaction_status(status);
        let outcome = outcome.map_err(to_pgwire)?;
        let Outcome::Done { command, rows, .. } = outcome else {
            return Err(to_pgwire(KuraError::internal("COPY ended without a count")));
        };
        let tag = Tag::new(&command).with_rows(rows.unwrap_or(0));
        send_execution_response(client, tag).await
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let error = session.copy_fail(&fail.message);
        session.end_request();
        client.set_transaction_status(wire_status(session.status()));
        to_pgwire(error)
    }
}

fn discarded(name: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_SQL_STATEMENT_NAME,
        format!("prepared statement \"{name}\" does not exist"),
    )
    .with_detail("It was deallocated by DEALLOCATE ALL or DISCARD ALL.")
}

fn no_params() -> ParamValues {
    ParamValues::List(Vec::new())
}

pub struct KuraParser {
    session: Arc<Mutex<Session>>,
}

#[async_trait]
impl QueryParser for KuraParser {
    type Statement = Arc<Prepared>;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = parse_sql(sql).map_err(to_pgwire)?;
        let statement = match statements.len() {
            0 => return Ok(None),
            1 => statements.remove(0),
            _ => {
                return Err(to_pgwire(KuraError::syntax(
                    "cannot insert multiple commands into a prepared statement",
                )));
            }
        };
        let mut session = self.session.lock().await;
        let (param_types, result) = match session.describe(&statement).await {
            Ok(described) => described,
            Err(e) => {
                session.fail_block();
                return Err(to_pgwire(e));
            }
        };
        Ok(Some(Arc::new(Prepared {
            statement,
            sql: Arc::from(sql),
            param_types,
            result,
            text_fields: std::sync::OnceLock::new(),
            epoch: session.statement_epoch(),
        })))
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        Ok(stmt
            .param_types
            .iter()
            .map(|t| {
                t.as_ref()
                    .and_then(|t| into_pg_type(t).ok())
                    .unwrap_or(Type::TEXT)
            })
            .collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let Some(schema) = &stmt.result else {
            return Ok(Vec::new());
        };
        match format {
            None | Some(Format::UnifiedText) => {
                if let Some(cached) = stmt.text_fields.get() {
                    return Ok(cached.clone());
                }
                let built = fields(schema, &Format::UnifiedText)?;
                Ok(stmt.text_fields.get_or_init(|| built).clone())
            }
            Some(format) => fields(schema, format),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for KuraHandler {
    type Statement = Arc<Prepared>;
    type QueryParser = KuraParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let mut session = self.session.lock().await;
        session.begin_request();
        session.record_request_sql(prepared.sql.clone());
        if prepared.epoch < session.statement_epoch() {
            session.fail_block();
            return Err(to_pgwire(discarded(&portal.statement.id)));
        }
        if let Some(outcome) = deallocate_protocol_statement(client, &prepared.statement) {
            return respond(
                client,
                outcome,
                &portal.result_column_format,
                session.failure_flag(),
                session.display_zone().map_err(to_pgwire)?,
            )
            .await;
        }
        let types: Vec<Option<&DataType>> =
            prepared.param_types.iter().map(|t| t.as_ref()).collect();
        let params = match super::params::decode_parameters(portal, &types) {
            Ok(p) => p,
            Err(e) => {
                session.fail_block();
                return Err(parameter_error(e));
            }
        };
        let failed = session.failure_flag();
        let before = session.settings.clone();
        let outcome = session
            .execute(&prepared.statement, &params)
            .await
            .map_err(to_pgwire)?;
        report_changes(&session, client, &before).await?;
        let zone = session.display_zone().map_err(to_pgwire)?;
        respond(client, outcome, &portal.result_column_format, failed, zone).await
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // A statement that returns no rows answers ParameterDescription then NoData; pgwire
        // would send an empty RowDescription, which pgjdbc takes for a result set.
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT
            && let Some(Entry::Value(stmt)) = client.portal_store().get_statement(name)
            && stmt.statement.result.is_none()
        {
            let described = self.do_describe_statement(client, &stmt).await?;
            let oids = described.parameters.iter().map(|t| t.oid()).collect();
            client
                .send(PgWireBackendMessage::ParameterDescription(
                    ParameterDescription::new(oids),
                ))
                .await?;
            client
                .send(PgWireBackendMessage::NoData(NoData::new()))
                .await?;
            return Ok(());
        }
        // A SQL cursor is also a portal of the connection (psycopg describes its server-side
        // cursors that way).
        if message.target_type == TARGET_TYPE_BYTE_PORTAL
            && client.portal_store().get_portal(name).is_none()
            && let Some(schema) = self.session.lock().await.cursor_schema(name)
        {
            let fields = fields(&schema, &Format::UnifiedText)?;
            let description = DescribePortalResponse::new(fields);
            return pgwire::api::query::send_describe_response(client, &description).await;
        }
        self._on_describe(client, message).await
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _ = client;
        if target.statement.epoch < self.session.lock().await.statement_epoch() {
            return Err(to_pgwire(discarded(&target.id)));
        }
        let parser = self.query_parser();
        let server_types = parser.get_parameter_types(&target.statement)?;
        let param_types = (0..server_types.len().max(target.parameter_types.len()))
            .map(|i| {
                target
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .or_else(|| server_types.get(i).cloned())
                    .unwrap_or(Type::TEXT)
            })
            .collect();
        let fields = parser.get_result_schema(&target.statement, None)?;
        Ok(DescribeStatementResponse::new(param_types, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        target: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fields = self.query_parser().get_result_schema(
            &target.statement.statement,
            Some(&target.result_column_format),
        )?;
        Ok(DescribePortalResponse::new(fields))
    }

    async fn on_sync<C>(&self, client: &mut C, _message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client.portal_store().rm_portal(DEFAULT_NAME);
        let mut session = self.session.lock().await;
        let status = wire_status(session.status());
        session.end_request();
        drop(session);
        client.set_transaction_status(status);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        client.flush().await?;
        Ok(())
    }
}
