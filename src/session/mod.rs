//! A client session: its settings and its transaction state, and the execution of one
//! statement at a time.
//!
//! Transaction model: outside a transaction block every statement runs in its own
//! transaction (autocommit). `BEGIN` opens a block; an error inside it moves the block to the
//! failed state, where every statement but `ROLLBACK` (or `ROLLBACK TO SAVEPOINT`) fails with
//! 25P02. Under READ COMMITTED each statement reads a new snapshot and a statement that finds
//! a row changed after its snapshot restarts on a newer one; under REPEATABLE READ the first
//! statement's snapshot serves the whole transaction and such a conflict fails with 40001.
//!
//! Invariant: a failed statement leaves no writes behind (its writes are rolled back to the
//! mark taken when it started).

pub mod backends;
mod backup;
pub mod copy;
mod copy_file;
pub mod cursors;
pub mod functions;
mod security;
pub mod settings;
mod slow_log;
mod system;
pub mod view;
pub mod zone;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::{
    CloseCursor, ContextModifier, Declare, DeclareType, DiscardObject, Expr, FetchDirection, Ident,
    ObjectName, Reset, Set, Statement, TransactionIsolationLevel, TransactionMode, Value,
};

pub use settings::Settings;

use crate::audit::SessionAudit;
use crate::config::IsolationLevelSetting;
use crate::error::{KuraError, Result, sqlstate};
use crate::interrupt::Interrupt;
use crate::query::{Database, Engine};
use crate::sql::exec::RESTART_STATEMENT;
use crate::sql::{Exec, Outcome};
use crate::txn::{Isolation, Transaction, timed_out};
use backends::{Activity, BackendGuard, Backends};

/// How often a READ COMMITTED statement may restart before giving up with 40001.
const MAX_RESTARTS: usize = 64;

/// A COPY that wrote this many rows returns its freed buffers to the operating system when it
/// commits.
const LARGE_COPY_ROWS: u64 = 100_000;

/// The transaction state reported in ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    Idle,
    InBlock,
    Failed,
}

#[derive(Debug)]
struct Block {
    txn: Transaction,
    failed: bool,
    savepoints: Vec<Savepoint>,
    /// The settings when the block began: ROLLBACK restores them, as PostgreSQL undoes the
    /// SETs of an aborted transaction.
    settings_at_begin: Arc<Settings>,
    /// Values that `SET LOCAL` replaced, restored when the block ends either way.
    local_restore: BTreeMap<String, Option<String>>,
}

#[derive(Debug)]
struct Savepoint {
    name: String,
    mark: usize,
    settings: Arc<Settings>,
}

impl Block {
    /// Position of the newest savepoint called `name`.
    fn savepoint(&self, name: &Ident) -> Result<usize> {
        let wanted = normalize(name);
        self.savepoints
            .iter()
            .rposition(|s| s.name == wanted)
            .ok_or_else(|| no_savepoint(&wanted))
    }
}

/// Who is connected: what the session functions and `pg_stat_activity` report.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub backend_pid: i32,
    pub user: String,
    /// Administrators may do everything (see `security.rs`).
    pub admin: bool,
}

impl Identity {
    /// Sessions made inside the library (tests, tools) act as an administrator until a login
    /// replaces the identity.
    fn internal() -> Identity {
        Identity {
            backend_pid: 0,
            user: "kura".to_string(),
            admin: true,
        }
    }
}

/// A statement prepared with SQL `PREPARE`.
#[derive(Debug, Clone)]
struct SqlPrepared {
    statement: Statement,
    param_types: Vec<datafusion::sql::sqlparser::ast::DataType>,
}

/// Limits that come from the server configuration.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub transaction_timeout: Duration,
    pub default_isolation: Isolation,
    pub lock_timeout: Duration,
    /// Default of `synchronous_commit`: on under SYNC (`logWriteMode` 0), off otherwise.
    pub synchronous_commit: bool,
    /// How new passwords are stored.
    pub password_encryption: crate::config::PasswordEncryption,
    /// Requests taking at least this long go to the event log (`/sql/traceLimitExecutionTime`).
    pub slow_statement: Duration,
    /// Statement text a slow-statement entry keeps, in bytes (`/sql/traceLimitQuerySize`).
    pub slow_statement_text: usize,
}

impl SessionLimits {
    pub fn from_config(config: &crate::config::Config) -> SessionLimits {
        let t = &config.transaction;
        SessionLimits {
            transaction_timeout: t.transaction_timeout_limit.get(),
            default_isolation: match t.isolation_level {
                IsolationLevelSetting::ReadCommitted => Isolation::ReadCommitted,
                IsolationLevelSetting::RepeatableRead => Isolation::RepeatableRead,
            },
            lock_timeout: t.lock_timeout.get(),
            synchronous_commit: config.data_store.log_write_mode == 0,
            password_encryption: config.security.password_encryption,
            slow_statement: config.sql.trace_limit_execution_time.get(),
            slow_statement_text: config.sql.trace_limit_query_size as usize,
        }
    }
}

pub struct Session {
    engine: Arc<Engine>,
    /// The database the connection chose at startup (`public` until then).
    db: Arc<Database>,
    limits: SessionLimits,
    block: Option<Block>,
    next_isolation: Option<Isolation>,
    /// Shared copy-on-write with the statements that read them (see [`view::SessionView`]).
    pub settings: Arc<Settings>,
    pub identity: Identity,
    /// Statements prepared with SQL `PREPARE`, by name.
    sql_prepared: HashMap<String, SqlPrepared>,
    /// Raised by DEALLOCATE ALL and DISCARD ALL: protocol-level statements parsed before
    /// the current epoch no longer exist.
    statement_epoch: u64,
    /// Set by a result stream that failed after the statement returned.
    stream_failed: Arc<AtomicBool>,
    /// Cancel, timeouts and termination of this connection's work.
    pub interrupt: Arc<Interrupt>,
    /// The server's connections, for `pg_cancel_backend` and the like, and this one's entry.
    backends: Option<Arc<Backends>>,
    backend: Option<BackendGuard>,
    /// The COPY FROM STDIN waiting for data.
    copy_in: Option<copy::CopyIn>,
    cursors: cursors::Cursors,
    slow_log: slow_log::SlowLog,
    /// Set at login when the audit log is on.
    audit: Option<SessionAudit>,
}

impl Session {
    /// What the statement about to run may read about this session.
    fn view(&self) -> Arc<view::SessionView> {
        Arc::new(view::SessionView {
            user: self.identity.user.clone(),
            admin: self.identity.admin,
            settings: self.settings.clone(),
            backends: self.backends.clone(),
            cursors: self.cursors.infos(),
        })
    }

    pub fn new(engine: Arc<Engine>, limits: SessionLimits) -> Session {
        let settings = Arc::new(Settings::new(
            limits.default_isolation.name(),
            limits.lock_timeout,
            limits.synchronous_commit,
        ));
        Session {
            db: engine.public(),
            engine,
            limits,
            block: None,
            next_isolation: None,
            settings,
            identity: Identity::internal(),
            sql_prepared: HashMap::new(),
            statement_epoch: 0,
            stream_failed: Arc::new(AtomicBool::new(false)),
            interrupt: Arc::new(Interrupt::default()),
            backends: None,
            backend: None,
            copy_in: None,
            cursors: cursors::Cursors::default(),
            slow_log: slow_log::SlowLog::new(limits.slow_statement, limits.slow_statement_text),
            audit: None,
        }
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Chooses the connection's database (startup only: statements are bound to it).
    pub fn use_database(&mut self, db: Arc<Database>) {
        self.db = db;
    }

    /// Audits this session's statements (and, when it ends, its disconnection).
    pub fn start_audit(&mut self, audit: SessionAudit) {
        self.audit = Some(audit);
    }

    /// Joins the server's list of connections; returns this connection's process id.
    pub fn attach(&mut self, backends: Arc<Backends>, secret: Vec<u8>, activity: Activity) -> i32 {
        let guard = backends.register(secret, self.interrupt.clone(), activity);
        let pid = guard.pid();
        self.identity.backend_pid = pid;
        self.backends = Some(backends);
        self.backend = Some(guard);
        pid
    }

    /// Marks the start of a client request (a simple query, or the first Execute after a
    /// Sync): arms `statement_timeout`.
    pub fn begin_request(&mut self) {
        self.slow_log.begin();
        if self.interrupt.is_running() {
            return;
        }
        self.interrupt
            .begin_statement(self.settings.duration("statement_timeout"));
    }

    /// SQL the current request runs, for the slow-statement log and `pg_stat_activity`.
    pub fn record_request_sql(&mut self, sql: Arc<str>) {
        self.show_activity(|activity| {
            activity.state = "active";
            activity.query = sql.clone();
            activity.query_start = Some(chrono::Utc::now());
        });
        self.slow_log.record(sql);
    }

    /// Updates what `pg_stat_activity` shows of this connection.
    fn show_activity(&self, change: impl FnOnce(&mut backends::Activity)) {
        if let Some(backends) = &self.backends {
            backends.update(self.identity.backend_pid, change);
        }
    }

    /// The request is answered (ReadyForQuery): arms `idle_in_transaction_session_timeout`
    /// when the session waits inside a transaction block.
    pub fn end_request(&mut self) {
        if let Some(live) = self.engine().live_config() {
            let (limit, text) = live.read(|c| {
                (
                    c.sql.trace_limit_execution_time.get(),
                    c.sql.trace_limit_query_size as usize,
                )
            });
            self.slow_log.set_limits(limit, text);
        }
        self.slow_log.end(&self.identity.user, &self.db.name);
        let state = match &self.block {
            Some(block) if block.failed => "idle in transaction (aborted)",
            Some(_) => "idle in transaction",
            None => "idle",
        };
        self.show_activity(|activity| activity.state = state);
        let idle = match self.block {
            Some(_) => self
                .settings
                .duration("idle_in_transaction_session_timeout"),
            None => None,
        };
        self.interrupt.end_statement(idle);
    }

    /// Protocol-level prepared statements older than this epoch were discarded.
    pub fn statement_epoch(&self) -> u64 {
        self.statement_epoch
    }

    /// The session time zone as the text encoders take it: where `timestamptz` values show.
    pub fn display_zone(&self) -> Result<datafusion::arrow::array::timezone::Tz> {
        Ok(self.settings.zone().arrow_label().parse()?)
    }

    /// The flag a result stream raises when it fails while being sent.
    pub fn failure_flag(&self) -> Arc<AtomicBool> {
        self.stream_failed.clone()
    }

    fn absorb_stream_failure(&mut self) {
        if self.stream_failed.swap(false, Ordering::AcqRel)
            && let Some(block) = &mut self.block
        {
            block.failed = true;
        }
    }

    pub fn status(&mut self) -> TxnStatus {
        self.absorb_stream_failure();
        match &self.block {
            None => TxnStatus::Idle,
            Some(b) if b.failed => TxnStatus::Failed,
            Some(_) => TxnStatus::InBlock,
        }
    }

    /// Marks the open block failed (an error happened outside `execute`, e.g. while binding).
    pub fn fail_block(&mut self) {
        if let Some(block) = &mut self.block {
            block.failed = true;
        }
    }

    fn default_isolation(&self) -> Isolation {
        match self.settings.get("default_transaction_isolation") {
            Some("repeatable read" | "serializable") => Isolation::RepeatableRead,
            _ => Isolation::ReadCommitted,
        }
    }

    /// Runs one statement, then audits it.
    pub async fn execute(
        &mut self,
        statement: &Statement,
        params: &ParamValues,
    ) -> Result<Outcome> {
        let result = self.execute_statement(statement, params).await;
        if let Some(audit) = &mut self.audit {
            let effective = prepared_target(&self.sql_prepared, statement);
            audit.statement(statement, effective, result.as_ref().err());
        }
        result
    }

    async fn execute_statement(
        &mut self,
        statement: &Statement,
        params: &ParamValues,
    ) -> Result<Outcome> {
        self.absorb_stream_failure();
        self.note_server_role();
        if let Some(block) = &self.block
            && block.failed
            && !allowed_when_failed(statement)
        {
            return Err(KuraError::new(
                sqlstate::IN_FAILED_SQL_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        if let Err(e) = self.check_allowed(statement) {
            return self.failing(Err(e));
        }
        if let Some(result) = self.execute_security(statement).await {
            return self.failing(result);
        }
        if let Some(call) = crate::sql::backup_syntax::backup_call(statement) {
            let result = self.backup(call, params).await;
            return self.failing(result);
        }
        if let Some(call) = crate::sql::vacuum_syntax::vacuum_call(statement) {
            let result = self.vacuum(call, params);
            return self.failing(result);
        }
        if let Some((variable, value)) = crate::sql::system_syntax::system_change(statement) {
            let result = self.alter_system(variable, value);
            return self.failing(result);
        }
        match statement {
            Statement::StartTransaction { modes, .. } => self.begin(modes),
            Statement::Commit { .. } => self.commit().await,
            Statement::Rollback {
                savepoint: None, ..
            } => Ok(self.rollback()),
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => self.rollback_to(name),
            Statement::Savepoint { name } => self.savepoint(name),
            Statement::ReleaseSavepoint { name } => self.release(name),
            Statement::Set(set) => self.set(set),
            Statement::ShowVariable { variable } => self.show(variable),
            Statement::Reset(reset) => self.reset(&reset.reset),
            Statement::Discard { object_type } => self.discard(object_type),
            Statement::Deallocate { name, .. } => self.deallocate(name),
            Statement::Declare { stmts } if is_cursor(stmts) => {
                let result = self.declare(statement, stmts, params).await;
                self.failing(result)
            }
            Statement::Fetch {
                name, direction, ..
            } => {
                let fetch = !crate::sql::dialect::is_move(statement);
                let result = self.fetch(name, direction, fetch).await;
                self.failing(result)
            }
            Statement::Close { cursor } => {
                let result = self.close(cursor);
                self.failing(result)
            }
            Statement::Prepare {
                name,
                data_types,
                statement,
            } => self.prepare(name, data_types, statement),
            Statement::Copy {
                source,
                to,
                target,
                options,
                legacy_options,
                values,
            } => {
                if !values.is_empty() {
                    return Err(KuraError::unsupported(
                        "COPY data inside the statement text is not supported; send it as COPY data",
                    ));
                }
                let options = copy::parse(source, *to, target, options, legacy_options)?;
                let result = match (copy_file::server_file(target)?, *to) {
                    (Some(path), true) => self.copy_to_file(source, &options, &path).await,
                    (Some(path), false) => self.copy_from_file(source, &options, &path).await,
                    (None, true) => self.copy_to(source, &options).await,
                    (None, false) => self.copy_from(source, &options),
                };
                self.failing(result)
            }
            _ => {
                let result = self.run_statement(statement, params).await;
                self.failing(result)
            }
        }
    }

    /// A new transaction run by this connection.
    fn begin_transaction(&self, isolation: Isolation) -> Transaction {
        let txn = self
            .db
            .txns
            .begin(isolation, self.limits.transaction_timeout);
        txn.handle.set_owner(self.identity.backend_pid);
        txn
    }

    /// `result`, after failing the transaction block if it is an error.
    fn failing(&mut self, result: Result<Outcome>) -> Result<Outcome> {
        if result.is_err() {
            self.fail_block();
        }
        result
    }

    async fn copy_to(
        &mut self,
        source: &datafusion::sql::sqlparser::ast::CopySource,
        options: &copy::CopyOptions,
    ) -> Result<Outcome> {
        let query = copy::copy_to_query(&self.db, source)?;
        let outcome = self
            .run_statement(
                &Statement::Query(Box::new(query)),
                &ParamValues::List(Vec::new()),
            )
            .await?;
        let Outcome::Rows { schema, stream, .. } = outcome else {
            return Err(KuraError::internal("COPY TO did not produce rows"));
        };
        let (start, stream) = copy::encode_rows(schema, stream, options, self.display_zone()?)?;
        Ok(Outcome::CopyOut { start, stream })
    }

    fn copy_from(
        &mut self,
        source: &datafusion::sql::sqlparser::ast::CopySource,
        options: &copy::CopyOptions,
    ) -> Result<Outcome> {
        let (implicit, mark) = match &self.block {
            Some(block) => (None, block.txn.writes.lock().mark()),
            None => {
                let isolation = self
                    .next_isolation
                    .unwrap_or_else(|| self.default_isolation());
                (Some(self.begin_transaction(isolation)), 0)
            }
        };
        let (copy_in, start) = copy::CopyIn::start(&self.db, source, options, implicit, mark)?;
        self.copy_in = Some(copy_in);
        Ok(Outcome::CopyIn(start))
    }

    /// True while a COPY FROM STDIN waits for data.
    pub fn copy_in_progress(&self) -> bool {
        self.copy_in.is_some()
    }

    /// CopyData: decodes the data and writes full batches of rows.
    pub async fn copy_data(&mut self, data: &[u8]) -> Result<()> {
        let Some(mut copy_in) = self.copy_in.take() else {
            return Ok(());
        };
        copy_in.feed(data);
        match self.write_copy_rows(&mut copy_in, false).await {
            Ok(()) => {
                self.copy_in = Some(copy_in);
                Ok(())
            }
            Err(e) => Err(self.abort_copy(copy_in, e)),
        }
    }

    /// CopyDone: the last rows are written and, outside a block, the COPY commits.
    pub async fn copy_done(&mut self) -> Result<Outcome> {
        let Some(mut copy_in) = self.copy_in.take() else {
            return Err(KuraError::new(
                sqlstate::PROTOCOL_VIOLATION,
                "CopyDone without a COPY in progress",
            ));
        };
        copy_in.finish();
        if let Err(e) = self.write_copy_rows(&mut copy_in, true).await {
            return Err(self.abort_copy(copy_in, e));
        }
        if let Some(txn) = copy_in.take_implicit() {
            self.db
                .txns
                .commit(&txn, self.settings.commit_wait())
                .await?;
            if copy_in.rows_written() >= LARGE_COPY_ROWS {
                // Its buffers are freed and returned to the OS at once, not after the decay.
                crate::memory::free_in_background(txn);
            }
        }
        Ok(Outcome::counted("COPY", copy_in.rows_written() as usize))
    }

    /// Writes the rows decoded so far in full batches and, at the end of the data, the rest.
    async fn write_copy_rows(&mut self, copy_in: &mut copy::CopyIn, at_end: bool) -> Result<()> {
        loop {
            let full = copy_in.fill()?;
            if full || at_end {
                self.flush_copy(copy_in).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// CopyFail from the client: nothing of the COPY stays.
    pub fn copy_fail(&mut self, message: &str) -> KuraError {
        self.abort_copy_in(KuraError::new(
            sqlstate::QUERY_CANCELED,
            format!("COPY from stdin failed: {message}"),
        ))
    }

    /// Ends the COPY FROM in progress, undoing what it wrote; returns `error`.
    fn abort_copy_in(&mut self, error: KuraError) -> KuraError {
        match self.copy_in.take() {
            Some(copy_in) => self.abort_copy(copy_in, error),
            None => error,
        }
    }

    fn abort_copy(&mut self, mut copy_in: copy::CopyIn, error: KuraError) -> KuraError {
        match copy_in.take_implicit() {
            Some(txn) => self.db.txns.rollback(&txn),
            None => {
                if let Some(block) = &mut self.block {
                    let _ = block.txn.writes.lock().rollback_to(copy_in.start_mark());
                    block.failed = true;
                }
            }
        }
        error
    }

    async fn flush_copy(&mut self, copy_in: &mut copy::CopyIn) -> Result<()> {
        let db = self.db.clone();
        let lock_timeout = self.settings.lock_timeout();
        let implicit = copy_in.take_implicit();
        let txn = match (&implicit, &self.block) {
            (Some(txn), _) => txn,
            (None, Some(block)) => &block.txn,
            (None, None) => return Err(KuraError::internal("COPY without a transaction")),
        };
        let snapshot = txn.snapshot.clone().unwrap_or_else(|| db.txns.snapshot());
        let exec = Exec::new(
            &db,
            txn,
            snapshot,
            lock_timeout,
            self.interrupt.clone(),
            Some(self.view()),
        );
        let flushed = copy_in.flush(&exec).await;
        drop(exec);
        copy_in.restore_implicit(implicit);
        flushed
    }

    /// Runs a statement that reads or writes data, after binding `EXECUTE` and the session
    /// functions.
    async fn run_statement(
        &mut self,
        statement: &Statement,
        params: &ParamValues,
    ) -> Result<Outcome> {
        let executed;
        let statement = match statement {
            Statement::Execute {
                name, parameters, ..
            } => {
                executed = self.instantiate(name.as_ref(), parameters)?;
                &executed
            }
            other => other,
        };
        let bound = functions::bind(statement, self, Some(params))?;
        if let Some(wait) = bound.promote {
            if !self.identity.admin {
                return Err(KuraError::new(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    "permission denied to promote: only administrators may",
                ));
            }
            if !crate::replication::promote(self.engine(), wait).await? {
                return Err(KuraError::new(
                    sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "recovery is not in progress",
                )
                .with_hint("this server is a primary already"));
            }
        }
        if bound.fence {
            if !self.identity.admin {
                return Err(KuraError::new(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    "permission denied to fence this server: only administrators may",
                ));
            }
            crate::replication::fence(self.engine())?;
        }
        if !bound.sleep.is_zero() {
            let interrupt = self.interrupt.clone();
            tokio::select! {
                _ = tokio::time::sleep(bound.sleep) => {}
                reason = interrupt.interrupted() => return Err(reason.error()),
            }
        }
        let statement = bound.statement.as_ref().unwrap_or(statement);
        self.check_writable(statement)?;
        let with_args = crate::sql::table_args::bind(statement, Some(params))?.statement;
        let statement = with_args.as_ref().unwrap_or(statement);
        // On the heap: the planning and execution future is large, and a worker thread's
        // stack also has to hold DataFusion's recursion over deep plans.
        Box::pin(self.run_in_transaction(statement, params)).await
    }

    /// VACUUM (a garbage-collection pass now) or ANALYZE (nothing to gather: statistics are
    /// read live); both check the named tables exist. As in PostgreSQL, VACUUM cannot run
    /// inside a transaction block.
    fn vacuum(
        &mut self,
        call: &datafusion::sql::sqlparser::ast::Function,
        params: &ParamValues,
    ) -> Result<Outcome> {
        let args = functions::call_text_args(call, Some(params))?;
        let Some((Some(command), tables)) = args.split_first() else {
            return Err(KuraError::syntax(
                "kura_vacuum takes a command and table names",
            ));
        };
        for table in tables.iter().flatten() {
            self.db.table(table, command)?;
        }
        if command != "vacuum" {
            return Ok(Outcome::done("ANALYZE"));
        }
        if self.block.is_some() {
            return Err(KuraError::new(
                sqlstate::ACTIVE_SQL_TRANSACTION,
                "VACUUM cannot run inside a transaction block",
            ));
        }
        crate::gc::collect_garbage(self.engine())?;
        Ok(Outcome::done("VACUUM"))
    }

    /// Parameter types and result columns of a statement, planned on a fresh snapshot inside
    /// the session's transaction (or a throwaway one).
    pub async fn describe(
        &mut self,
        statement: &Statement,
    ) -> Result<crate::sql::describe::Description> {
        if crate::sql::backup_syntax::backup_call(statement).is_some() {
            return Ok((Vec::new(), Some(backup::backup_schema())));
        }
        if crate::sql::vacuum_syntax::vacuum_call(statement).is_some() {
            return Ok((Vec::new(), None));
        }
        match statement {
            Statement::ShowVariable { variable } => match self.show(variable)? {
                Outcome::Rows { schema, .. } => Ok((Vec::new(), Some(schema))),
                _ => Ok((Vec::new(), None)),
            },
            Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Set(_)
            | Statement::Reset(_)
            | Statement::Discard { .. }
            | Statement::Deallocate { .. }
            | Statement::Prepare { .. }
            | Statement::Close { .. } => Ok((Vec::new(), None)),
            Statement::Fetch { name, .. } => {
                let schema = if crate::sql::dialect::is_move(statement) {
                    None
                } else {
                    self.cursor_schema(&normalize(name))
                };
                Ok((Vec::new(), schema))
            }
            Statement::Declare { stmts } if is_cursor(stmts) => {
                let Some(query) = stmts.first().and_then(|d| d.for_query.clone()) else {
                    return Ok((Vec::new(), None));
                };
                let (params, _) = Box::pin(self.describe(&Statement::Query(query))).await?;
                Ok((params, None))
            }
            _ => {
                let executed;
                let statement = match statement {
                    Statement::Execute {
                        name, parameters, ..
                    } => {
                        executed = self.instantiate(name.as_ref(), parameters)?;
                        &executed
                    }
                    other => other,
                };
                let bound = functions::bind(statement, self, None)?.statement;
                let statement = bound.as_ref().unwrap_or(statement);
                let with_args = crate::sql::table_args::bind(statement, None)?;
                let statement = with_args.statement.as_ref().unwrap_or(statement);
                let db = self.db.clone();
                let throwaway;
                let txn = match &self.block {
                    Some(block) => &block.txn,
                    None => {
                        throwaway = db
                            .txns
                            .begin(Isolation::ReadCommitted, self.limits.transaction_timeout);
                        &throwaway
                    }
                };
                let snapshot = txn.snapshot.clone().unwrap_or_else(|| db.txns.snapshot());
                let exec = Exec::new(
                    &db,
                    txn,
                    snapshot,
                    None,
                    self.interrupt.clone(),
                    Some(self.view()),
                );
                let (mut params, result) = exec.describe(statement).await?;
                for (position, data_type) in with_args.types {
                    if params.len() < position {
                        params.resize(position, None);
                    }
                    params[position - 1].get_or_insert(data_type);
                }
                Ok((params, result))
            }
        }
    }

    /// Keeps `in_hot_standby` true to whether the server refuses writes now (it changes when
    /// a standby is promoted or a primary fenced), so clients see it in ParameterStatus.
    pub fn note_server_role(&mut self) {
        let refusing = self.db.txns.write_refusal().is_some();
        if self.settings.get("in_hot_standby") != Some(if refusing { "on" } else { "off" }) {
            Arc::make_mut(&mut self.settings).set_hot_standby(refusing);
        }
    }

    /// Refuses a statement that writes (DML, DDL, DCL) on a server that takes no writes (a
    /// standby, a fenced primary) with PostgreSQL's 25006; the commit refuses it too, this
    /// only fails it before it does any work.
    fn check_writable(&self, statement: &Statement) -> Result<()> {
        use crate::audit::Category;
        let Some(why) = self.db.txns.write_refusal() else {
            return Ok(());
        };
        let operation = crate::audit::classify(statement);
        if !matches!(
            operation.category,
            Category::SqlWrite | Category::Ddl | Category::Dcl
        ) {
            return Ok(());
        }
        let text = statement.to_string();
        let command = text.split_whitespace().next().unwrap_or("").to_uppercase();
        Err(KuraError::new(
            sqlstate::READ_ONLY_SQL_TRANSACTION,
            format!("cannot execute {command} in a read-only transaction"),
        )
        .with_detail(why.to_string()))
    }

    async fn run_in_transaction(
        &mut self,
        statement: &Statement,
        params: &ParamValues,
    ) -> Result<Outcome> {
        let lock_timeout = self.settings.lock_timeout();
        let commit_wait = self.settings.commit_wait();
        let isolation = self
            .next_isolation
            .unwrap_or_else(|| self.default_isolation());
        let implicit = match self.block.take() {
            Some(block) => {
                if block.txn.handle.is_expired() || block.txn.handle.is_aborted() {
                    self.db.txns.rollback(&block.txn);
                    self.block = Some(Block {
                        failed: true,
                        ..block
                    });
                    return Err(timed_out());
                }
                self.block = Some(block);
                None
            }
            None => Some(self.begin_transaction(isolation)),
        };
        let db = self.db.clone();
        let view = self.view();
        let txn = match (&implicit, &mut self.block) {
            (Some(txn), _) => txn,
            (None, Some(block)) => {
                if block.txn.isolation == Isolation::RepeatableRead && block.txn.snapshot.is_none()
                {
                    block.txn.snapshot = Some(db.txns.snapshot());
                }
                &block.txn
            }
            (None, None) => return Err(KuraError::internal("no transaction")),
        };
        let interrupt = self.interrupt.clone();
        let result =
            run_with_restarts(&db, txn, statement, params, lock_timeout, interrupt, view).await;
        if let Some(txn) = implicit {
            match result {
                Ok(outcome) => {
                    db.txns.commit(&txn, commit_wait).await?;
                    Ok(outcome)
                }
                Err(e) => {
                    db.txns.rollback(&txn);
                    Err(e)
                }
            }
        } else {
            result
        }
    }

    /// `DECLARE name [BINARY] [SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`.
    async fn declare(
        &mut self,
        statement: &Statement,
        stmts: &[Declare],
        params: &ParamValues,
    ) -> Result<Outcome> {
        let [declare] = stmts else {
            return Err(KuraError::unsupported("DECLARE of several cursors at once"));
        };
        let (Some(query), [name]) = (&declare.for_query, declare.names.as_slice()) else {
            return Err(KuraError::syntax(
                "DECLARE CURSOR needs one name and a query",
            ));
        };
        let holdable = declare.hold == Some(true);
        if declare.binary == Some(true) {
            return Err(KuraError::unsupported("BINARY cursors are not supported"));
        }
        if self.block.is_none() && !holdable {
            return Err(KuraError::new(
                sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                "DECLARE CURSOR can only be used in transaction blocks",
            ));
        }
        let name = normalize(name);
        // Before the query runs: a taken name must not cost a whole scan.
        self.cursors.check_free(&name)?;
        let Outcome::Rows { schema, stream, .. } = self
            .run_statement(&Statement::Query(query.clone()), params)
            .await?
        else {
            return Err(KuraError::internal("a cursor's query returned no rows"));
        };
        let info = cursors::CursorInfo {
            name,
            statement: statement.to_string(),
            holdable,
            binary: false,
            scrollable: declare.scroll == Some(true),
            created: chrono::Utc::now(),
        };
        let cursor = cursors::Cursor::open(info, schema, stream, self.block.is_some()).await?;
        self.cursors.declare(cursor)?;
        Ok(Outcome::done("DECLARE CURSOR"))
    }

    /// `FETCH` (`fetch`) or `MOVE` on a cursor.
    async fn fetch(
        &mut self,
        name: &Ident,
        direction: &FetchDirection,
        fetch: bool,
    ) -> Result<Outcome> {
        let cursor = self.cursors.get_mut(&normalize(name))?;
        let (batches, count) = cursor.fetch(direction, fetch).await?;
        if !fetch {
            return Ok(Outcome::Done {
                command: "MOVE".to_string(),
                rows: Some(count as usize),
                notices: Vec::new(),
            });
        }
        Ok(Outcome::Rows {
            schema: cursor.schema.clone(),
            stream: cursor.stream_of(batches)?,
            command: "FETCH".to_string(),
        })
    }

    /// `CLOSE name` or `CLOSE ALL`.
    fn close(&mut self, cursor: &CloseCursor) -> Result<Outcome> {
        match cursor {
            CloseCursor::All => {
                self.cursors.close_all();
                Ok(Outcome::done("CLOSE CURSOR ALL"))
            }
            CloseCursor::Specific { name } => self
                .cursors
                .close(&normalize(name))
                .map(|()| Outcome::done("CLOSE CURSOR")),
        }
    }

    /// The columns a cursor returns (a protocol Describe of a portal named after it).
    pub fn cursor_schema(&self, name: &str) -> Option<datafusion::arrow::datatypes::SchemaRef> {
        self.cursors.get(name).map(|c| c.schema.clone())
    }

    fn begin(&mut self, modes: &[TransactionMode]) -> Result<Outcome> {
        if self.block.is_some() {
            return Ok(Outcome::done("BEGIN")
                .with_notice("there is already a transaction in progress".into()));
        }
        let mut isolation = self
            .next_isolation
            .unwrap_or_else(|| self.default_isolation());
        let mut outcome = Outcome::done("BEGIN");
        for mode in modes {
            if let TransactionMode::IsolationLevel(level) = mode {
                isolation = isolation_of(level);
                if let Some(notice) = serializable_notice(level) {
                    outcome = outcome.with_notice(notice);
                }
            }
        }
        let txn = self.begin_transaction(isolation);
        self.block = Some(Block {
            txn,
            failed: false,
            savepoints: Vec::new(),
            settings_at_begin: self.settings.clone(),
            local_restore: BTreeMap::new(),
        });
        Ok(outcome)
    }

    /// Ends the block's effect on the settings and cursors: a rollback undoes every SET made
    /// in it; a commit keeps them except the `SET LOCAL` ones. Cursors end as
    /// [`cursors::Cursors::end_block`] says.
    fn end_block_settings(&mut self, block: &Block, committed: bool) {
        self.cursors.end_block(committed);
        if !committed {
            self.settings = block.settings_at_begin.clone();
            return;
        }
        for (name, before) in &block.local_restore {
            match before {
                Some(value) => Arc::make_mut(&mut self.settings).restore(name, value),
                None => Arc::make_mut(&mut self.settings).forget(name),
            }
        }
    }

    async fn commit(&mut self) -> Result<Outcome> {
        self.next_isolation = None;
        let Some(block) = self.block.take() else {
            return Ok(
                Outcome::done("COMMIT").with_notice("there is no transaction in progress".into())
            );
        };
        if block.failed {
            self.db.txns.rollback(&block.txn);
            self.end_block_settings(&block, false);
            return Ok(Outcome::done("ROLLBACK"));
        }
        if block.txn.handle.is_expired() || block.txn.handle.is_aborted() {
            self.db.txns.rollback(&block.txn);
            self.end_block_settings(&block, false);
            return Err(timed_out());
        }
        let wait = self.settings.commit_wait();
        let committed = self.db.txns.commit(&block.txn, wait).await;
        self.end_block_settings(&block, committed.is_ok());
        committed?;
        Ok(Outcome::done("COMMIT"))
    }

    fn rollback(&mut self) -> Outcome {
        self.next_isolation = None;
        match self.block.take() {
            Some(block) => {
                self.db.txns.rollback(&block.txn);
                self.end_block_settings(&block, false);
                Outcome::done("ROLLBACK")
            }
            None => {
                Outcome::done("ROLLBACK").with_notice("there is no transaction in progress".into())
            }
        }
    }

    fn block_for(&mut self, what: &str) -> Result<&mut Block> {
        self.block.as_mut().ok_or_else(|| {
            KuraError::new(
                sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                format!("{what} can only be used in transaction blocks"),
            )
        })
    }

    fn savepoint(&mut self, name: &Ident) -> Result<Outcome> {
        let settings = self.settings.clone();
        let block = self.block_for("SAVEPOINT")?;
        let mark = block.txn.writes.lock().mark();
        block.savepoints.push(Savepoint {
            name: normalize(name),
            mark,
            settings,
        });
        Ok(Outcome::done("SAVEPOINT"))
    }

    fn rollback_to(&mut self, name: &Ident) -> Result<Outcome> {
        let block = self.block_for("ROLLBACK TO SAVEPOINT")?;
        let position = block.savepoint(name)?;
        let mark = block.savepoints[position].mark;
        let settings = block.savepoints[position].settings.clone();
        block.savepoints.truncate(position + 1);
        block.txn.writes.lock().rollback_to(mark)?;
        block.failed = false;
        self.settings = settings;
        Ok(Outcome::done("ROLLBACK"))
    }

    fn release(&mut self, name: &Ident) -> Result<Outcome> {
        let block = self.block_for("RELEASE SAVEPOINT")?;
        let position = block.savepoint(name)?;
        block.savepoints.truncate(position);
        Ok(Outcome::done("RELEASE"))
    }

    fn set(&mut self, set: &Set) -> Result<Outcome> {
        match set {
            Set::SingleAssignment {
                scope,
                variable,
                values,
                ..
            } => {
                let name = variable_name(variable);
                if name == TEST_CLOCK {
                    let value = values.iter().map(value_text).collect::<Vec<_>>().join(", ");
                    self.db.txns.clock.set_from_text(&value)?;
                    return Ok(Outcome::done("SET"));
                }
                let local = matches!(scope, Some(ContextModifier::Local));
                if local && self.block.is_none() {
                    return Ok(Outcome::done("SET")
                        .with_notice("SET LOCAL can only be used in transaction blocks".into()));
                }
                if values.len() == 1 && is_default(&values[0]) {
                    self.remember_local(&name, local);
                    Arc::make_mut(&mut self.settings).reset(&name)?;
                } else {
                    let value = values.iter().map(value_text).collect::<Vec<_>>().join(", ");
                    self.set_setting_scoped(&name, &value, local)?;
                }
                Ok(Outcome::done("SET"))
            }
            Set::SetTimeZone { value, local } => {
                self.set_setting_scoped("timezone", &value_text(value), *local)?;
                Ok(Outcome::done("SET"))
            }
            Set::SetNames { charset_name, .. } => {
                Arc::make_mut(&mut self.settings)
                    .set("client_encoding", &charset_name.to_string())?;
                Ok(Outcome::done("SET"))
            }
            Set::SetTransaction { modes, session, .. } => {
                let mut outcome = Outcome::done("SET");
                for mode in modes {
                    if let TransactionMode::IsolationLevel(level) = mode {
                        if let Some(notice) = serializable_notice(level) {
                            outcome = outcome.with_notice(notice);
                        }
                        let isolation = isolation_of(level);
                        if *session {
                            Arc::make_mut(&mut self.settings)
                                .set("default_transaction_isolation", isolation.name())?;
                        } else if let Some(block) = &mut self.block {
                            if block.txn.snapshot.is_some() || !block.txn.writes.lock().is_empty() {
                                return Err(KuraError::new(
                                    sqlstate::ACTIVE_SQL_TRANSACTION,
                                    "SET TRANSACTION ISOLATION LEVEL must be called before any query",
                                ));
                            }
                            block.txn.isolation = isolation;
                        } else {
                            self.next_isolation = Some(isolation);
                        }
                    }
                }
                Ok(outcome)
            }
            other => Err(KuraError::unsupported(format!("{other} is not supported"))),
        }
    }

    /// Before `SET LOCAL name`, remembers the value to restore when the block ends.
    fn remember_local(&mut self, name: &str, local: bool) {
        let name = settings::canonical_name(name);
        let before = self.settings.get(&name).map(str::to_string);
        if let Some(block) = &mut self.block
            && local
        {
            block.local_restore.entry(name).or_insert(before);
        }
    }

    /// `SET [LOCAL]` and `set_config(name, value, is_local)`.
    fn set_setting_scoped(&mut self, name: &str, value: &str, local: bool) -> Result<String> {
        if local && self.block.is_none() {
            // Outside a block a local setting would end with the statement's own transaction.
            return Ok(self.settings.get(name).unwrap_or_default().to_string());
        }
        self.remember_local(name, local);
        Arc::make_mut(&mut self.settings).set(name, value)
    }

    fn reset(&mut self, reset: &Reset) -> Result<Outcome> {
        match reset {
            Reset::ALL => Arc::make_mut(&mut self.settings).reset_all(),
            Reset::ConfigurationParameter(name) => {
                let name = variable_name(name);
                if name == "session authorization" || name == "session_authorization" {
                    return Ok(Outcome::done("RESET"));
                }
                Arc::make_mut(&mut self.settings).reset(&name)?
            }
        }
        Ok(Outcome::done("RESET"))
    }

    /// DISCARD ALL returns the session to its state right after startup. Kura has no plan
    /// cache, sequences or temporary tables, so the other forms have nothing to discard.
    fn discard(&mut self, object: &DiscardObject) -> Result<Outcome> {
        if *object == DiscardObject::ALL {
            if self.block.is_some() {
                return Err(KuraError::new(
                    sqlstate::ACTIVE_SQL_TRANSACTION,
                    "DISCARD ALL cannot run inside a transaction block",
                ));
            }
            Arc::make_mut(&mut self.settings).reset_all();
            self.next_isolation = None;
            self.sql_prepared.clear();
            self.cursors.close_all();
            self.statement_epoch += 1;
        }
        Ok(Outcome::done(&format!("DISCARD {object}")))
    }

    /// DEALLOCATE of a SQL-prepared statement, or of all prepared statements. The handler
    /// deallocates protocol-level statements by name itself.
    fn deallocate(&mut self, name: &Ident) -> Result<Outcome> {
        if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
            self.sql_prepared.clear();
            self.cursors.close_all();
            self.statement_epoch += 1;
            return Ok(Outcome::done("DEALLOCATE ALL"));
        }
        let key = normalize(name);
        match self.sql_prepared.remove(&key) {
            Some(_) => Ok(Outcome::done("DEALLOCATE")),
            None => Err(no_prepared_statement(&key)),
        }
    }

    fn prepare(
        &mut self,
        name: &Ident,
        data_types: &[datafusion::sql::sqlparser::ast::DataType],
        statement: &Statement,
    ) -> Result<Outcome> {
        let key = normalize(name);
        if self.sql_prepared.contains_key(&key) {
            return Err(KuraError::new(
                sqlstate::DUPLICATE_PREPARED_STATEMENT,
                format!("prepared statement \"{key}\" already exists"),
            ));
        }
        if matches!(
            statement,
            Statement::Prepare { .. } | Statement::Execute { .. } | Statement::Deallocate { .. }
        ) {
            return Err(KuraError::syntax(format!("cannot prepare {statement}")));
        }
        self.sql_prepared.insert(
            key,
            SqlPrepared {
                statement: statement.clone(),
                param_types: data_types.to_vec(),
            },
        );
        Ok(Outcome::done("PREPARE"))
    }

    /// The statement `EXECUTE name(args)` runs: the prepared one with each `$n` replaced by
    /// its argument (cast to the declared parameter type, when one was given).
    fn instantiate(&self, name: Option<&ObjectName>, args: &[Expr]) -> Result<Statement> {
        let name = name.map(variable_name).unwrap_or_default();
        let prepared = self
            .sql_prepared
            .get(&name)
            .ok_or_else(|| no_prepared_statement(&name))?;
        if !prepared.param_types.is_empty() && prepared.param_types.len() != args.len() {
            return Err(KuraError::new(
                sqlstate::SYNTAX_ERROR,
                format!(
                    "wrong number of parameters for prepared statement \"{name}\"; expected {} but got {}",
                    prepared.param_types.len(),
                    args.len()
                ),
            ));
        }
        let mut statement = prepared.statement.clone();
        let mut missing = None;
        let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut statement, |expr| {
            if let Expr::Value(v) = expr
                && let Value::Placeholder(p) = &v.value
                && let Some(index) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
            {
                match args.get(index.wrapping_sub(1)) {
                    Some(arg) => {
                        *expr = match prepared.param_types.get(index - 1) {
                            Some(data_type) => Expr::Cast {
                                kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                                expr: Box::new(Expr::Nested(Box::new(arg.clone()))),
                                data_type: data_type.clone(),
                                array: false,
                                format: None,
                            },
                            None => Expr::Nested(Box::new(arg.clone())),
                        }
                    }
                    None => missing = Some(index),
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        if let Some(index) = missing {
            return Err(KuraError::new(
                sqlstate::UNDEFINED_PARAMETER,
                format!("there is no parameter ${index}"),
            ));
        }
        Ok(statement)
    }

    fn show(&mut self, variable: &[Ident]) -> Result<Outcome> {
        let words: Vec<String> = variable.iter().map(|i| i.value.to_lowercase()).collect();
        // `SHOW TIME ZONE` arrives as two words and `SHOW app.setting` as two parts.
        let spaced = words.join(" ");
        let name = if spaced == "all"
            || settings::param_named(&settings::canonical_name(&spaced)).is_some()
        {
            spaced
        } else {
            words.join(".")
        };
        if name == "all" {
            let mut names = Vec::new();
            let mut values = Vec::new();
            let mut descriptions = Vec::new();
            for (name, value) in self.settings.all() {
                names.push(settings::display_name(name).to_string());
                values.push(value.clone());
                descriptions.push(
                    settings::param_named(name)
                        .map(|p| p.description)
                        .unwrap_or("Custom (placeholder) parameter."),
                );
            }
            for row in self
                .engine()
                .live_config()
                .map(|l| l.rows())
                .unwrap_or_default()
            {
                names.push(row.path);
                values.push(row.value);
                descriptions.push(if row.online {
                    "Server setting (definition file); ALTER SYSTEM SET changes it online."
                } else {
                    "Server setting (definition file); changing it needs a restart."
                });
            }
            let schema = Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("setting", DataType::Utf8, false),
                Field::new("description", DataType::Utf8, false),
            ]));
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(names)),
                Arc::new(StringArray::from(values)),
                Arc::new(StringArray::from(descriptions)),
            ];
            let batch = RecordBatch::try_new(schema.clone(), columns)?;
            return Ok(Outcome::rows(schema, vec![batch], "SHOW"));
        }
        if settings::param_named(&settings::canonical_name(&name)).is_none()
            && let Some(path) = crate::config::live::LiveConfig::resolve(&name)
            && let Some(live) = self.engine().live_config()
        {
            let value = live.value(path).unwrap_or_default();
            let schema = Arc::new(Schema::new(vec![Field::new(path, DataType::Utf8, false)]));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(vec![value])) as ArrayRef],
            )?;
            return Ok(Outcome::rows(schema, vec![batch], "SHOW"));
        }
        let key = settings::canonical_name(&name);
        let value = if key == TEST_CLOCK {
            self.db.txns.clock.describe()
        } else if key == "transaction_read_only" && self.db.txns.write_refusal().is_some() {
            "on".to_string()
        } else if key == "transaction_isolation" {
            let isolation = self
                .block
                .as_ref()
                .map(|b| b.txn.isolation)
                .or(self.next_isolation)
                .unwrap_or_else(|| self.default_isolation());
            isolation.name().to_string()
        } else {
            self.settings.get(&key).map(str::to_string).ok_or_else(|| {
                KuraError::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!("unrecognized configuration parameter \"{key}\""),
                )
            })?
        };
        let schema = Arc::new(Schema::new(vec![Field::new(&key, DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![value])) as ArrayRef],
        )?;
        Ok(Outcome::rows(schema, vec![batch], "SHOW"))
    }
}

impl functions::SessionState for Session {
    fn setting(&self, name: &str) -> Option<String> {
        self.settings.get(name).map(str::to_string)
    }

    fn set_setting(&mut self, name: &str, value: &str, local: bool) -> Result<String> {
        self.set_setting_scoped(name, value, local)
    }

    fn user(&self) -> String {
        self.identity.user.clone()
    }

    fn database(&self) -> String {
        self.db.name.clone()
    }

    fn backend_pid(&self) -> i32 {
        self.identity.backend_pid
    }

    fn signal_backend(&self, pid: i32, terminate: bool) -> bool {
        self.backends
            .as_ref()
            .is_some_and(|b| b.signal(pid, terminate))
    }

    fn in_recovery(&self) -> bool {
        self.engine()
            .replication()
            .is_some_and(|hub| hub.is_standby())
    }

    fn log_position(&self, which: functions::LogPosition) -> Option<u64> {
        let hub = self.engine().replication()?;
        match which {
            functions::LogPosition::Written => Some(self.db.txns.log()?.written_lsn()),
            _ if !hub.is_standby() => None,
            functions::LogPosition::Received => Some(hub.receiver.lock().progress.received),
            functions::LogPosition::Replayed => Some(hub.receiver.lock().progress.applied),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            self.db.txns.rollback(&block.txn);
        }
    }
}

/// Runs a statement, restarting it on a newer snapshot when READ COMMITTED asks for that.
async fn run_with_restarts(
    db: &Arc<Database>,
    txn: &Transaction,
    statement: &Statement,
    params: &ParamValues,
    lock_timeout: Option<Duration>,
    interrupt: Arc<Interrupt>,
    view: Arc<view::SessionView>,
) -> Result<Outcome> {
    for _ in 0..MAX_RESTARTS {
        let mark = txn.writes.lock().mark();
        let snapshot = match &txn.snapshot {
            Some(s) => s.clone(),
            None => db.txns.snapshot(),
        };
        let exec = Exec::new(
            db,
            txn,
            snapshot,
            lock_timeout,
            interrupt.clone(),
            Some(view.clone()),
        );
        match exec.run(statement, params).await {
            Ok(outcome) => return Ok(outcome),
            Err(e) => {
                txn.writes.lock().rollback_to(mark)?;
                if e.code != RESTART_STATEMENT {
                    return Err(e);
                }
            }
        }
    }
    Err(KuraError::serialization_failure())
}

fn allowed_when_failed(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Rollback { .. } | Statement::Commit { .. }
    )
}

fn isolation_of(level: &TransactionIsolationLevel) -> Isolation {
    match level {
        TransactionIsolationLevel::RepeatableRead
        | TransactionIsolationLevel::Serializable
        | TransactionIsolationLevel::Snapshot => Isolation::RepeatableRead,
        _ => Isolation::ReadCommitted,
    }
}

/// SERIALIZABLE runs as REPEATABLE READ (snapshot isolation); the client is told so.
fn serializable_notice(level: &TransactionIsolationLevel) -> Option<String> {
    matches!(level, TransactionIsolationLevel::Serializable).then(|| {
        "SERIALIZABLE is not supported yet; the transaction runs as REPEATABLE READ (snapshot isolation)"
            .to_string()
    })
}

fn is_cursor(stmts: &[Declare]) -> bool {
    stmts
        .iter()
        .all(|d| d.declare_type == Some(DeclareType::Cursor))
}

fn normalize(ident: &Ident) -> String {
    crate::sql::names::normalize(ident)
}

fn no_prepared_statement(name: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_SQL_STATEMENT_NAME,
        format!("prepared statement \"{name}\" does not exist"),
    )
}

fn no_savepoint(name: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_SAVEPOINT_SPECIFICATION,
        format!("savepoint \"{name}\" does not exist"),
    )
}

/// The test hook that moves the server clock (only with `kura serve --test-clock`).
const TEST_CLOCK: &str = "kura.test_clock";

/// The statement an SQL `EXECUTE` runs, or `statement` itself.
fn prepared_target<'a>(
    prepared: &'a HashMap<String, SqlPrepared>,
    statement: &'a Statement,
) -> &'a Statement {
    match statement {
        Statement::Execute { name, .. } => {
            let key = name.as_ref().map(variable_name).unwrap_or_default();
            prepared.get(&key).map_or(statement, |p| &p.statement)
        }
        other => other,
    }
}

fn variable_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.to_lowercase()))
        .collect::<Vec<_>>()
        .join(".")
}

pub(super) fn is_default(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(i) if i.value.eq_ignore_ascii_case("default"))
}

pub(super) fn value_text(expr: &Expr) -> String {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}
