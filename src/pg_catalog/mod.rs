//! PostgreSQL's system catalogs over Kura: the `pg_catalog` and `information_schema` schemas
//! every database shows to clients (psql's backslash commands, JDBC `DatabaseMetaData`, ODBC
//! `SQLTables`, BI tools), the functions those clients call, and the SQL rewrites that let
//! their catalog queries plan on DataFusion.
//!
//! Relations that describe Kura's objects (`pg_class`, `pg_attribute`, `pg_index`, ...) and
//! its sessions (`pg_settings`, `pg_stat_activity`) are built per statement from the catalog
//! ([`relations`], [`server_views`]); PostgreSQL's own system rows (`pg_type`, `pg_proc`,
//! `pg_am`, ...) come from the snapshot `datafusion-pg-catalog` ships ([`statics`]).
//!
//! Invariants: oids are stable ([`oids`]); the relations are read-only; every relation a
//! schema lists can be scanned.

pub mod definitions;
pub mod expand_array;
pub mod functions;
pub mod information_schema;
pub mod keywords;
pub mod oids;
pub mod operations_views;
pub mod relations;
pub mod replication_views;
pub mod rewrite;
pub mod server_views;
pub mod sizes;
pub mod statics;
pub mod statistics;
pub mod system_columns;
pub mod table;
pub mod time_zones;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::SchemaProvider;
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DfResult;
use datafusion::execution::context::SessionState;

use crate::query::{Engine, StatementContext};
use crate::session::view::SessionView;
use crate::storage::Catalog;
use crate::storage::catalog::ViewDef;
use table::{BuildRows, Layout, SnapshotTable};

/// What catalog rows are built from.
pub struct Source<'a> {
    pub database: &'a str,
    pub catalog: &'a Catalog,
    pub session: Option<&'a SessionView>,
    /// The statement's snapshot, for the relations that count rows.
    pub snapshot: Option<crate::storage::chunk::Ts>,
    /// Each view with its output columns, when the relation needs them.
    pub views: Vec<(Arc<ViewDef>, Option<SchemaRef>)>,
    /// The server's databases and users (absent while the engine shuts down).
    pub engine: Option<Arc<Engine>>,
}

impl Source<'_> {
    pub fn user(&self) -> &str {
        self.session.map_or("kura", |s| s.user.as_str())
    }

    /// The databases the session's user may connect to, by name, with their oid numbers:
    /// administrators see all, general users `public` and the ones granted to them.
    pub fn visible_databases(&self) -> Vec<(String, u32)> {
        let Some(engine) = &self.engine else {
            return vec![(self.database.to_string(), 0)];
        };
        let admin = self.session.is_none_or(|s| s.admin);
        engine
            .databases()
            .iter()
            .filter(|db| {
                admin
                    || db.name == crate::storage::stored::PUBLIC_DATABASE
                    || engine.directory.privilege(self.user(), &db.name).is_some()
            })
            .map(|db| (db.name.clone(), db.id))
            .collect()
    }

    /// Every role: administrators first, then general users, each with whether it is an
    /// administrator.
    pub fn roles(&self) -> Vec<(String, bool)> {
        let Some(engine) = &self.engine else {
            return vec![(self.user().to_string(), true)];
        };
        let mut roles: Vec<(String, bool)> = engine
            .admin_names()
            .into_iter()
            .map(|n| (n, true))
            .collect();
        roles.extend(
            engine
                .directory
                .users()
                .into_iter()
                .map(|u| (u.name, false)),
        );
        if !roles.iter().any(|(name, _)| name == self.user()) {
            roles.push((
                self.user().to_string(),
                self.session.is_none_or(|s| s.admin),
            ));
        }
        roles
    }
}

/// What a catalog relation keeps to build its rows at scan time.
#[derive(Debug, Clone)]
pub struct SourceHandles {
    pub database: String,
    pub catalog: Arc<Catalog>,
    /// Plans stored views, to learn their columns.
    pub planner: Arc<OnceLock<SessionState>>,
    pub engine: Weak<Engine>,
}

impl SourceHandles {
    pub async fn source<'a>(
        &'a self,
        context: Option<&'a StatementContext>,
        with_views: bool,
    ) -> Source<'a> {
        let mut views = Vec::new();
        if with_views {
            for view in self.catalog.views() {
                let schema = match self.planner.get() {
                    Some(state) => state
                        .create_logical_plan(&view.sql)
                        .await
                        .ok()
                        .map(|plan| plan.schema().inner().clone()),
                    None => None,
                };
                views.push((view, schema));
            }
        }
        Source {
            database: &self.database,
            catalog: &self.catalog,
            session: context.and_then(|c| c.session.as_deref()),
            snapshot: context.map(|c| c.snapshot.ts()),
            views,
            engine: self.engine.upgrade(),
        }
    }
}

/// One relation of a catalog schema.
pub struct RelationSpec {
    pub name: &'static str,
    pub layout: Layout,
    pub build: BuildRows,
    /// The rows need the columns of views (planned at scan time).
    pub needs_views: bool,
}

/// A schema of [`RelationSpec`]s, optionally backed by static tables for names it lacks.
#[derive(Debug)]
pub struct CatalogSchema {
    relations: &'static [RelationSpec],
    statics: HashMap<&'static str, Arc<dyn TableProvider>>,
    handles: SourceHandles,
}

impl std::fmt::Debug for RelationSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl CatalogSchema {
    pub fn pg_catalog(handles: SourceHandles) -> CatalogSchema {
        CatalogSchema {
            relations: relations::PG_CATALOG,
            statics: statics::tables(),
            handles,
        }
    }

    pub fn information_schema(handles: SourceHandles) -> CatalogSchema {
        CatalogSchema {
            relations: information_schema::RELATIONS,
            statics: HashMap::new(),
            handles,
        }
    }
}

#[async_trait]
impl SchemaProvider for CatalogSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.relations.iter().map(|r| r.name.to_string()).collect();
        names.extend(self.statics.keys().map(|n| n.to_string()));
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(spec) = self.relations.iter().find(|r| r.name == name) {
            return Ok(Some(Arc::new(SnapshotTable::new(
                spec.layout,
                spec.build,
                spec.needs_views,
                self.handles.clone(),
            ))));
        }
        Ok(self.statics.get(name).cloned())
    }

    fn table_exist(&self, name: &str) -> bool {
        self.relations.iter().any(|r| r.name == name) || self.statics.contains_key(name)
    }
}
