//! Statement execution inside one transaction: planning through DataFusion with the
//! statement's snapshot attached, binding parameters, and collecting or streaming results.
//!
//! Invariant: every query a statement runs (including the internal SELECTs that UPDATE,
//! DELETE and ON CONFLICT use) reads the same snapshot and sees the transaction's own writes
//! as they were when the statement started.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Ident, Query, SelectItem, SetExpr, Statement};
use futures::TryStreamExt;

use crate::error::{KuraError, Result};
use crate::interrupt::Interrupt;
use crate::pg_catalog;
use crate::query::database::TempGuard;
use crate::query::interruptible::Interruptible;
use crate::query::{Database, StatementContext};
use crate::session::view::SessionView;
use crate::txn::{Snapshot, Transaction};

/// Internal error code: the statement must run again on a newer snapshot (READ COMMITTED
/// found a row changed by a transaction that committed after the statement's snapshot).
pub const RESTART_STATEMENT: &str = "KR001";

pub fn restart() -> KuraError {
    KuraError::new(
        RESTART_STATEMENT,
        "row changed concurrently; statement restarts",
    )
}

pub struct Exec<'a> {
    pub db: &'a Arc<Database>,
    pub txn: &'a Transaction,
    pub snapshot: Arc<Snapshot>,
    pub lock_timeout: Option<Duration>,
    pub interrupt: Arc<Interrupt>,
    session: Option<Arc<SessionView>>,
    /// The session time zone the statement runs in, as an Arrow label.
    zone: String,
    now: chrono::DateTime<chrono::Utc>,
    /// DataFusion's state for this statement, built on first use: statements that take a
    /// fast path (see `point`) never plan through DataFusion and skip its cost.
    state: OnceLock<SessionState>,
}

impl<'a> Exec<'a> {
    pub fn new(
        db: &'a Arc<Database>,
        txn: &'a Transaction,
        snapshot: Arc<Snapshot>,
        lock_timeout: Option<Duration>,
        interrupt: Arc<Interrupt>,
        session: Option<Arc<SessionView>>,
    ) -> Exec<'a> {
        let zone = crate::query::zone_casts::session_zone(session.as_deref());
        Exec {
            db,
            txn,
            snapshot,
            lock_timeout,
            interrupt,
            session,
            zone,
            now: db.txns.clock.now(),
            state: OnceLock::new(),
        }
    }

    pub fn state(&self) -> &SessionState {
        self.state.get_or_init(|| {
            self.db.statement_state(StatementContext {
                snapshot: self.snapshot.clone(),
                writes: Some(self.txn.writes.clone()),
                txn_id: self.txn.id(),
                now: self.now,
                interrupt: self.interrupt.clone(),
                session: self.session.clone(),
            })
        })
    }

    /// The session time zone the statement runs in, as an Arrow label.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    pub async fn plan(&self, mut statement: Statement) -> Result<LogicalPlan> {
        if pg_catalog::rewrite::touches_catalog(&statement) {
            let user = self.session.as_ref().map_or("kura", |s| s.user.as_str());
            statement = pg_catalog::rewrite::rewrite(statement, user);
        }
        let functions = self.state();
        super::table_args::normalize_calls(&mut statement, &|name| {
            functions.scalar_functions().contains_key(name)
                && !functions.table_functions().contains_key(name)
        });
        // Relations GROUP BY RANGE is rewritten into: needed only while planning, since the
        // plan holds the providers it resolved.
        let mut range_groups = Vec::new();
        let target = match &mut statement {
            Statement::Explain { statement, .. } => statement.as_mut(),
            other => other,
        };
        let query = match target {
            Statement::Query(query) => Some(query.as_mut()),
            Statement::Insert(insert) => insert.source.as_deref_mut(),
            _ => None,
        };
        if let Some(query) = query {
            super::lateral::rewrite(query);
            super::in_subquery::rewrite(query);
            alias_cte_columns(query);
            super::colnames::disambiguate(query);
            self.rewrite_range_groups(query, &mut range_groups).await?;
        }
        let returns_rows = matches!(statement, Statement::Query(_));
        let plan = self
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(statement)))
            .await?;
        if returns_rows {
            return super::result_literals::narrow_result_literals(plan);
        }
        Ok(plan)
    }

    pub async fn plan_query(&self, query: Query) -> Result<LogicalPlan> {
        self.plan(Statement::Query(Box::new(query))).await
    }

    pub fn bind(plan: LogicalPlan, params: &ParamValues) -> Result<LogicalPlan> {
        let empty = match params {
            ParamValues::List(v) => v.is_empty(),
            ParamValues::Map(m) => m.is_empty(),
        };
        if empty && plan.get_parameter_types()?.is_empty() {
            return Ok(plan);
        }
        Ok(plan.with_param_values(params.clone())?)
    }

    pub async fn stream(&self, plan: &LogicalPlan) -> Result<SendableRecordBatchStream> {
        let physical = self.state().create_physical_plan(plan).await?;
        let stream = execute_stream(physical, self.task_context())?;
        Ok(Interruptible::wrap(stream, self.interrupt.clone()))
    }

    pub async fn collect(&self, plan: &LogicalPlan) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let physical = self.state().create_physical_plan(plan).await?;
        let schema = physical.schema();
        let stream = execute_stream(physical, self.task_context())?;
        let batches = Interruptible::wrap(stream, self.interrupt.clone())
            .try_collect()
            .await?;
        Ok((schema, batches))
    }

    /// What the physical plan runs with: the statement's configuration and runtime, without
    /// copies of the function registries. `SessionState::task_ctx` copies every function name
    /// (hundreds of strings) per statement although a physical plan already holds its
    /// functions; that copy was a fifth of the cost of `SELECT 1`.
    fn task_context(&self) -> Arc<TaskContext> {
        Arc::new(TaskContext::new(
            None,
            self.state().session_id().to_string(),
            self.state().config().clone(),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            self.state().runtime_env().clone(),
        ))
    }

    /// Registers rows as a statement-scoped relation the internal queries can read.
    pub fn temp_rows(&self, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<TempGuard> {
        let table = MemTable::try_new(schema, vec![batches])?;
        Ok(self.db.temps.register(Arc::new(table)))
    }
}

/// `WITH n(a, b) AS (SELECT 1, 1 ...)`: names the CTE body's unnamed items after the CTE's
/// column list, as PostgreSQL does, so DataFusion sees distinct column names.
fn alias_cte_columns(query: &mut Query) {
    let Some(with) = query.with.as_mut() else {
        return;
    };
    for cte in &mut with.cte_tables {
        let names: Vec<Ident> = cte.alias.columns.iter().map(|c| c.name.clone()).collect();
        if names.is_empty() {
            continue;
        }
        let mut body = cte.query.body.as_mut();
        loop {
            match body {
                SetExpr::SetOperation { left, .. } => body = left.as_mut(),
                SetExpr::Select(select) => {
                    for (item, name) in select.projection.iter_mut().zip(&names) {
                        if let SelectItem::UnnamedExpr(expr) = item {
                            *item = SelectItem::ExprWithAlias {
                                expr: expr.clone(),
                                alias: name.clone(),
                            };
                        }
                    }
                    break;
                }
                _ => break,
            }
        }
    }
}
