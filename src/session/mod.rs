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

pub mod settings;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, Set, Statement, TransactionIsolationLevel, TransactionMode, Value,
};

pub use settings::Settings;

use crate::error::{KuraError, Result, sqlstate};
use crate::query::Database;
use crate::sql::exec::RESTART_STATEMENT;
use crate::sql::{Exec, Outcome};
use crate::txn::{Isolation, Transaction, timed_out};

/// How often a READ COMMITTED statement may restart before giving up with 40001.
const MAX_RESTARTS: usize = 64;

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
    savepoints: Vec<(String, usize)>,
}

impl Block {
    /// Position of the newest savepoint called `name`.
    fn savepoint(&self, name: &Ident) -> Result<usize> {
        let wanted = normalize(name);
        self.savepoints
            .iter()
            .rposition(|(n, _)| *n == wanted)
            .ok_or_else(|| no_savepoint(&wanted))
    }
}

/// Limits that come from the server configuration.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub transaction_timeout: Duration,
    pub default_isolation: Isolation,
    pub lock_timeout: Duration,
    /// Default of `synchronous_commit`: on under SYNC (`logWriteMode` 0), off otherwise.
    pub synchronous_commit: bool,
}

pub struct Session {
    db: Arc<Database>,
    limits: SessionLimits,
    block: Option<Block>,
    next_isolation: Option<Isolation>,
    pub settings: Settings,
    /// Set by a result stream that failed after the statement returned.
    stream_failed: Arc<AtomicBool>,
}

impl Session {
    pub fn new(db: Arc<Database>, limits: SessionLimits) -> Session {
        let settings = Settings::new(
            limits.default_isolation.name(),
            limits.lock_timeout,
            limits.synchronous_commit,
        );
        Session {
            db,
            limits,
            block: None,
            next_isolation: None,
            settings,
            stream_failed: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
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

    pub async fn execute(
        &mut self,
        statement: &Statement,
        params: &ParamValues,
    ) -> Result<Outcome> {
        self.absorb_stream_failure();
        if let Some(block) = &self.block
            && block.failed
            && !allowed_when_failed(statement)
        {
            return Err(KuraError::new(
                sqlstate::IN_FAILED_SQL_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
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
            Statement::Reset(_) => Err(KuraError::unsupported(
                "RESET is not supported; use SET name TO DEFAULT",
            )),
            _ => {
                let result = self.run_in_transaction(statement, params).await;
                if result.is_err() {
                    self.fail_block();
                }
                result
            }
        }
    }

    /// Parameter types and result columns of a statement, planned on a fresh snapshot inside
    /// the session's transaction (or a throwaway one).
    pub async fn describe(
        &mut self,
        statement: &Statement,
    ) -> Result<crate::sql::describe::Description> {
        match statement {
            Statement::ShowVariable { variable } => match self.show(variable)? {
                Outcome::Rows { schema, .. } => Ok((Vec::new(), Some(schema))),
                Outcome::Done { .. } => Ok((Vec::new(), None)),
            },
            Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Set(_) => Ok((Vec::new(), None)),
            _ => {
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
                let exec = Exec::new(&db, txn, snapshot, None);
                exec.describe(statement).await
            }
        }
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
            None => Some(
                self.db
                    .txns
                    .begin(isolation, self.limits.transaction_timeout),
            ),
        };
        let db = self.db.clone();
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
        let result = run_with_restarts(&db, txn, statement, params, lock_timeout).await;
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
        let txn = self
            .db
            .txns
            .begin(isolation, self.limits.transaction_timeout);
        self.block = Some(Block {
            txn,
            failed: false,
            savepoints: Vec::new(),
        });
        Ok(outcome)
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
            return Ok(Outcome::done("ROLLBACK"));
        }
        if block.txn.handle.is_expired() || block.txn.handle.is_aborted() {
            self.db.txns.rollback(&block.txn);
            return Err(timed_out());
        }
        let wait = self.settings.commit_wait();
        self.db.txns.commit(&block.txn, wait).await?;
        Ok(Outcome::done("COMMIT"))
    }

    fn rollback(&mut self) -> Outcome {
        self.next_isolation = None;
        match self.block.take() {
            Some(block) => {
                self.db.txns.rollback(&block.txn);
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
        let block = self.block_for("SAVEPOINT")?;
        let mark = block.txn.writes.lock().mark();
        block.savepoints.push((normalize(name), mark));
        Ok(Outcome::done("SAVEPOINT"))
    }

    fn rollback_to(&mut self, name: &Ident) -> Result<Outcome> {
        let block = self.block_for("ROLLBACK TO SAVEPOINT")?;
        let position = block.savepoint(name)?;
        let mark = block.savepoints[position].1;
        block.savepoints.truncate(position + 1);
        block.txn.writes.lock().rollback_to(mark)?;
        block.failed = false;
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
                variable, values, ..
            } => {
                let name = variable_name(variable);
                if name == TEST_CLOCK {
                    let value = values.iter().map(value_text).collect::<Vec<_>>().join(", ");
                    self.db.txns.clock.set_from_text(&value)?;
                    return Ok(Outcome::done("SET"));
                }
                if values.len() == 1 && is_default(&values[0]) {
                    self.settings.reset(&name)?;
                } else {
                    let value = values.iter().map(value_text).collect::<Vec<_>>().join(", ");
                    self.settings.set(&name, &value)?;
                }
                Ok(Outcome::done("SET"))
            }
            Set::SetTimeZone { value, .. } => {
                self.settings.set("timezone", &value_text(value))?;
                Ok(Outcome::done("SET"))
            }
            Set::SetNames { charset_name, .. } => {
                self.settings
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
                            self.settings
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

    fn show(&mut self, variable: &[Ident]) -> Result<Outcome> {
        let name = variable
            .iter()
            .map(|i| i.value.to_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        if name == "all" {
            let (names, values): (Vec<String>, Vec<String>) = self
                .settings
                .all()
                .map(|(k, v)| (k.clone(), v.clone()))
                .unzip();
            let schema = Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("setting", DataType::Utf8, false),
            ]));
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(names)),
                Arc::new(StringArray::from(values)),
            ];
            let batch = RecordBatch::try_new(schema.clone(), columns)?;
            return Ok(Outcome::rows(schema, vec![batch], "SHOW"));
        }
        let key = match name.as_str() {
            "kura test_clock" => TEST_CLOCK.to_string(),
            "time zone" => "timezone".to_string(),
            "transaction isolation level" => "transaction_isolation".to_string(),
            _ => name.clone(),
        };
        let value = if key == TEST_CLOCK {
            self.db.txns.clock.describe()
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
) -> Result<Outcome> {
    for _ in 0..MAX_RESTARTS {
        let mark = txn.writes.lock().mark();
        let snapshot = match &txn.snapshot {
            Some(s) => s.clone(),
            None => db.txns.snapshot(),
        };
        let exec = Exec::new(db, txn, snapshot, lock_timeout);
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

fn normalize(ident: &Ident) -> String {
    crate::sql::names::normalize(ident)
}

fn no_savepoint(name: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_SAVEPOINT_SPECIFICATION,
        format!("savepoint \"{name}\" does not exist"),
    )
}

/// The test hook that moves the server clock (only with `kura serve --test-clock`).
const TEST_CLOCK: &str = "kura.test_clock";

fn variable_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.to_lowercase()))
        .collect::<Vec<_>>()
        .join(".")
}

fn is_default(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(i) if i.value.eq_ignore_ascii_case("default"))
}

fn value_text(expr: &Expr) -> String {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}
