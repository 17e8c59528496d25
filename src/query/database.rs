//! A database: its catalog, its transaction manager and the DataFusion context that plans
//! queries over it.
//!
//! DataFusion sees one catalog (named after the database) with one schema, `public`, whose
//! tables are Kura tables and views. Statements get their own copy of the session state with a
//! [`StatementContext`] attached; the catalog objects themselves are shared.
//!
//! Invariant: names starting with [`TEMP_PREFIX`] never reach the user catalog; they name
//! statement-scoped relations (the target of an UPDATE/DELETE with its row ids, rows for
//! RETURNING, the EXCLUDED rows of ON CONFLICT) and are removed when the statement ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::common::DFSchema;
use datafusion::datasource::{TableProvider, ViewTable};
use datafusion::error::Result as DfResult;
use datafusion::execution::context::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::ExprSchemable;
use datafusion::logical_expr::{LogicalPlanBuilder, col};
use datafusion::prelude::{SessionConfig, SessionContext};
use parking_lot::Mutex;

use super::context::StatementContext;
use super::engine::Engine;
use super::meta_tables::{self, MetaSource, meta_table};
use super::provider::KuraTable;
use crate::checkpoint::CheckpointStats;
use crate::error::{KuraError, Result};
use crate::pg_catalog::{CatalogSchema, SourceHandles};
use crate::storage::Ts;
use crate::storage::stored::StoredTable;
use crate::storage::table::{ColumnDefaults, TableLimits};
use crate::storage::{Catalog, ColumnDef, Table};
use crate::txn::TxnManager;
use crate::wal::{CatalogChange, StoredDatabase};

pub const TEMP_PREFIX: &str = "__kura_tmp_";
pub const SCHEMA_NAME: &str = "public";

/// Statement-scoped relations, by their generated names.
#[derive(Debug, Default)]
pub struct TempRelations {
    next: AtomicU64,
    relations: Mutex<HashMap<String, Arc<dyn TableProvider>>>,
}

/// Removes a statement-scoped relation when dropped.
#[derive(Debug)]
pub struct TempGuard {
    pub name: String,
    relations: Arc<TempRelations>,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        self.relations.relations.lock().remove(&self.name);
    }
}

impl TempRelations {
    pub fn register(self: &Arc<Self>, provider: Arc<dyn TableProvider>) -> TempGuard {
        let name = format!("{TEMP_PREFIX}{}", self.next.fetch_add(1, Ordering::Relaxed));
        self.relations.lock().insert(name.clone(), provider);
        TempGuard {
            name,
            relations: self.clone(),
        }
    }

    fn get(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        self.relations.lock().get(name).cloned()
    }
}

#[derive(Debug)]
struct KuraSchema {
    database: String,
    catalog: Arc<Catalog>,
    txns: Arc<TxnManager>,
    temps: Arc<TempRelations>,
    /// The base session state, used to plan stored views when they are referenced.
    planner: Arc<OnceLock<SessionState>>,
    /// `pg_catalog`, searched for names `public` lacks, as PostgreSQL's search path does.
    system: Arc<CatalogSchema>,
}

#[async_trait]
impl SchemaProvider for KuraSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.catalog.table_names();
        names.extend(self.catalog.view_names());
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if name.starts_with(TEMP_PREFIX) {
            return Ok(self.temps.get(name));
        }
        let source = MetaSource {
            database: &self.database,
            catalog: &self.catalog,
            txns: &self.txns,
        };
        if let Some(meta) = meta_table(name, &source) {
            return Ok(Some(meta?));
        }
        if let Some(table) = self.catalog.table(name) {
            return Ok(Some(Arc::new(KuraTable::new(table, false))));
        }
        let Some(view) = self.catalog.view(name) else {
            return self.system.table(name).await;
        };
        let Some(state) = self.planner.get() else {
            return Ok(None);
        };
        let mut plan = state.create_logical_plan(&view.sql).await?;
        if !view.columns.is_empty() {
            let exprs = plan
                .schema()
                .columns()
                .into_iter()
                .zip(&view.columns)
                .map(|(c, alias)| col(c).alias(alias))
                .collect::<Vec<_>>();
            plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
        }
        Ok(Some(Arc::new(ViewTable::new(plan, Some(view.sql.clone())))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.relation_exists(name)
            || meta_tables::NAMES.contains(&name)
            || (name.starts_with(TEMP_PREFIX) && self.temps.get(name).is_some())
            || self.system.table_exist(name)
    }
}

#[derive(Debug)]
struct KuraCatalog {
    public: Arc<KuraSchema>,
    /// `pg_catalog`, `information_schema`, and the empty `pg_temp`.
    others: HashMap<String, Arc<dyn SchemaProvider>>,
}

impl CatalogProvider for KuraCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = vec![SCHEMA_NAME.to_string()];
        names.extend(self.others.keys().cloned());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SCHEMA_NAME {
            return Some(self.public.clone());
        }
        self.others.get(name).cloned()
    }
}

/// What a database takes from the configuration.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub limits: TableLimits,
    /// Scan partitions DataFusion runs in parallel.
    pub target_partitions: usize,
    /// `/sql/partitioningRowkeyConstraint`.
    pub partitioning_rowkey_constraint: bool,
    /// The clock may be moved (`--test-clock`; see `clock.rs`).
    pub adjustable_clock: bool,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        let sql = crate::config::SqlConfig::default();
        DatabaseOptions {
            limits: TableLimits {
                chunk_rows: crate::config::DataStoreConfig::default().chunk_rows,
                max_partitions: sql.table_partitioning_max_assign_num as usize,
            },
            target_partitions: 2,
            partitioning_rowkey_constraint: sql.partitioning_rowkey_constraint,
            adjustable_clock: false,
        }
    }
}

impl DatabaseOptions {
    pub fn from_config(config: &crate::config::Config, target_partitions: usize) -> Self {
        DatabaseOptions {
            limits: TableLimits {
                chunk_rows: config.data_store.chunk_rows,
                max_partitions: config.sql.table_partitioning_max_assign_num as usize,
            },
            target_partitions,
            partitioning_rowkey_constraint: config.sql.partitioning_rowkey_constraint,
            adjustable_clock: config.system.test_clock,
        }
    }
}

#[derive(Debug)]
pub struct Database {
    pub name: String,
    /// The number behind the database's oid (`public` is 0).
    pub id: u32,
    pub options: DatabaseOptions,
    pub catalog: Arc<Catalog>,
    /// The server's transaction manager, shared by every database.
    pub txns: Arc<TxnManager>,
    pub temps: Arc<TempRelations>,
    base: SessionState,
    engine: Weak<Engine>,
}

impl Database {
    /// A database of `engine` (see [`Engine::install_database`]).
    pub(super) fn new(
        stored: &StoredDatabase,
        options: &DatabaseOptions,
        txns: Arc<TxnManager>,
        table_ids: Arc<AtomicU64>,
        engine: Weak<Engine>,
    ) -> Arc<Database> {
        let name = stored.name.as_str();
        let catalog = Arc::new(Catalog::sharing_ids(options.limits, table_ids));
        let temps = Arc::new(TempRelations::default());
        let planner = Arc::new(OnceLock::new());
        let handles = SourceHandles {
            database: name.to_string(),
            catalog: catalog.clone(),
            planner: planner.clone(),
            engine: engine.clone(),
        };
        let system = Arc::new(CatalogSchema::pg_catalog(handles.clone()));
        let schema = Arc::new(KuraSchema {
            database: name.to_string(),
            catalog: catalog.clone(),
            txns: txns.clone(),
            temps: temps.clone(),
            planner: planner.clone(),
            system: system.clone(),
        });
        let mut others: HashMap<String, Arc<dyn SchemaProvider>> = HashMap::new();
        others.insert("pg_temp".into(), Arc::new(MemorySchemaProvider::new()));
        others.insert("pg_catalog".into(), system);
        others.insert(
            "information_schema".into(),
            Arc::new(CatalogSchema::information_schema(handles)),
        );
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(name, SCHEMA_NAME)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(false)
            .with_target_partitions(options.target_partitions.max(1))
            .set_str("datafusion.sql_parser.dialect", "PostgreSQL")
            .set_bool("datafusion.sql_parser.enable_ident_normalization", true)
            .set_bool("datafusion.execution.parquet.pushdown_filters", false)
            // NOW() and `::timestamptz` are instants labelled like stored columns; each
            // statement then runs in its session's zone (see `zone_casts`).
            .set_str(
                "datafusion.execution.time_zone",
                super::zone_casts::STORED_ZONE,
            );
        let ctx = SessionContext::new_with_config(config);
        for function in super::functions::all() {
            ctx.register_udf(function);
        }
        super::timeseries_functions::register(&ctx, &catalog);
        super::series::register(&ctx);
        crate::pg_catalog::functions::register(&ctx, &catalog, engine.clone());
        ctx.register_catalog(
            name,
            Arc::new(KuraCatalog {
                public: schema,
                others,
            }),
        );
        // `::regclass`, `::oid` and `pg_catalog.int4`-style type names plan as integers and
        // builtins.
        let base = SessionStateBuilder::new_from_existing(ctx.state())
            .with_type_planner(Arc::new(super::type_planner::KuraTypePlanner::default()))
            .with_analyzer_rules(analyzer_rules())
            .build();
        let _ = planner.set(base.clone());
        Arc::new(Database {
            name: name.to_string(),
            id: stored.id,
            options: options.clone(),
            catalog,
            txns,
            temps,
            base,
            engine,
        })
    }

    /// The engine holding this database.
    pub fn engine(&self) -> Result<Arc<Engine>> {
        self.engine
            .upgrade()
            .ok_or_else(|| KuraError::internal("the engine is shutting down"))
    }

    /// Takes a checkpoint of the whole server now.
    pub async fn checkpoint(&self) -> Result<CheckpointStats> {
        self.engine()?.checkpoint().await
    }

    /// Plans each column's DEFAULT expression, cast to the column type.
    pub fn plan_defaults(&self, columns: &[ColumnDef]) -> Result<ColumnDefaults> {
        let empty = DFSchema::empty();
        let mut out = Vec::new();
        for column in columns {
            if let Some(sql) = &column.default {
                let expr = self.base.create_logical_expr(sql, &empty).map_err(|e| {
                    let k = KuraError::from(e);
                    KuraError::new(
                        k.code,
                        format!(
                            "invalid DEFAULT for column \"{}\": {}",
                            column.name, k.message
                        ),
                    )
                })?;
                out.push((
                    column.name.clone(),
                    expr.cast_to(&column.ty.arrow_type(), &empty)?,
                ));
            }
        }
        Ok(out)
    }

    /// Runs one DDL step of this database through the log (see [`Engine::change_catalog`]);
    /// fails with 3D000 once the database has been dropped.
    pub async fn change_catalog(
        &self,
        prepare: impl FnOnce() -> Result<CatalogChange>,
    ) -> Result<()> {
        let engine = self.engine()?;
        engine
            .change_catalog(|| {
                let current = engine.database(&self.name);
                if !current.is_some_and(|db| std::ptr::eq(db.as_ref(), self)) {
                    return Err(KuraError::new(
                        crate::error::sqlstate::INVALID_CATALOG_NAME,
                        format!("database \"{}\" does not exist", self.name),
                    ));
                }
                prepare()
            })
            .await
    }

    /// Creates or redefines a table from its logged definition (logged at `ts`).
    pub(super) fn put_table(&self, stored: &StoredTable, ts: Ts) -> Result<()> {
        let def = stored.to_def()?;
        let defaults = self.plan_defaults(&def.columns)?;
        let Some(table) = self.catalog.table_by_id(def.id) else {
            self.catalog.create_table(def, defaults)?;
            return Ok(());
        };
        let old = table.def();
        for index in &def.indexes {
            if !old.indexes.iter().any(|i| i.id == index.id) {
                for partition in table.partitions().iter() {
                    partition.build_index(index, &def)?;
                }
            }
        }
        for index in &old.indexes {
            if !def.indexes.iter().any(|i| i.id == index.id) {
                for partition in table.partitions().iter() {
                    partition.drop_index(index.id);
                }
            }
        }
        let dropped = &def.placement.dropped_intervals;
        if *dropped != old.placement.dropped_intervals {
            table.remove_partitions(ts, |key| dropped.contains(&key.interval));
        }
        table.set_def(def);
        table.set_defaults(defaults);
        Ok(())
    }

    /// A session state for one statement, carrying its snapshot and transaction.
    pub fn statement_state(&self, context: StatementContext) -> SessionState {
        let mut state = self.base.clone();
        let zone = super::zone_casts::session_zone(context.session.as_deref());
        let options = state.config_mut().options_mut();
        options.execution.time_zone = Some(zone);
        options.extensions.insert(super::context::StatementOptions {
            txn_id: context.txn_id,
            catalog_xid: self.txns.catalog_xid(),
        });
        // After the options are set: functions evaluated while the plan runs read this
        // snapshot of them. NOW() and CURRENT_TIMESTAMP: the server clock when the statement
        // started (the base state would otherwise keep the instant the server started).
        state.mark_start_execution();
        state.execution_props_mut().query_execution_start_time = Some(context.now);
        state.config_mut().set_extension(Arc::new(context));
        state
    }

    /// The table `name` for a statement that will `verb` it ("insert into", "update", ...);
    /// naming a view is an error because Kura's views are read-only (GridDB's rule).
    pub fn table(&self, name: &str, verb: &str) -> Result<Arc<Table>> {
        self.catalog.table(name).ok_or_else(|| {
            if self.catalog.view(name).is_some() {
                KuraError::new(
                    crate::error::sqlstate::WRONG_OBJECT_TYPE,
                    format!("cannot {verb} view \"{name}\""),
                )
                .with_detail("Views are read-only in Kura.")
            } else {
                KuraError::undefined_table(name)
            }
        })
    }
}

/// DataFusion's analyzer rules with Kura's around them: PostgreSQL's reading of quoted
/// literals before type coercion, the session time zone after it.
fn analyzer_rules() -> Vec<Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync>> =
        vec![Arc::new(super::literal_coercion::UnknownLiterals)];
    rules.extend(datafusion::optimizer::Analyzer::new().rules);
    rules.push(Arc::new(super::zone_casts::SessionZoneCasts));
    rules
}
