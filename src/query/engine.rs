//! The server's databases: one transaction manager, log and clock under every database, and
//! for each database its own catalog and DataFusion context (GridDB's databases inside one
//! cluster database). The engine also holds the general users and their grants
//! ([`Directory`]), which are logged like the catalog.
//!
//! Invariants: table ids are unique across databases (one allocator), so commit records and
//! checkpoints name tables by id alone; database names are unique ignoring ASCII case;
//! `public` always exists; a database is dropped only when it holds no table or view; every
//! change to databases, users and grants goes through the log ([`Engine::change_catalog`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::RwLock;

use super::database::{Database, DatabaseOptions};
use crate::checkpoint::{CheckpointStats, Checkpointer};
use crate::clock::Clock;
use crate::error::{KuraError, Result, sqlstate};
use crate::security::Directory;
use crate::security::admins::Admins;
use crate::storage::stored::PUBLIC_DATABASE;
use crate::storage::{Table, TableId, Ts};
use crate::txn::{CommitWait, TxnManager};
use crate::wal::{CatalogChange, StoredDatabase};

#[derive(Debug)]
pub struct Engine {
    pub options: DatabaseOptions,
    pub txns: Arc<TxnManager>,
    pub directory: Directory,
    table_ids: Arc<AtomicU64>,
    /// By name as created.
    databases: RwLock<BTreeMap<String, Arc<Database>>>,
    checkpointer: OnceLock<Arc<Checkpointer>>,
    /// The administrators (absent for engines made inside the library).
    admins: OnceLock<Arc<Admins>>,
    /// Replication state (absent for engines without a data directory).
    replication: OnceLock<Arc<crate::replication::ReplicationHub>>,
    /// Online backups (absent for engines without a data directory).
    backups: OnceLock<Arc<crate::backup::BackupManager>>,
    /// The server around the engine (absent for engines made inside the library).
    server_info: OnceLock<Arc<crate::stats::ServerInfo>>,
    /// The definition file's settings as the running server has them.
    live_config: OnceLock<Arc<crate::config::live::LiveConfig>>,
    me: Weak<Engine>,
}

fn undefined_database(name: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_CATALOG_NAME,
        format!("database \"{name}\" does not exist"),
    )
}

impl crate::storage::residency::TableSource for Engine {
    fn all_tables(&self) -> Vec<Arc<Table>> {
        self.tables()
    }
}

impl Engine {
    /// An engine holding only `public`.
    pub fn new(options: DatabaseOptions) -> Arc<Engine> {
        let clock = Arc::new(Clock::new(options.adjustable_clock));
        let txns = TxnManager::with_clock(clock);
        Arc::new_cyclic(|me: &Weak<Engine>| {
            let table_ids = Arc::new(AtomicU64::new(1));
            let public = Database::new(
                &StoredDatabase {
                    name: PUBLIC_DATABASE.to_string(),
                    id: 0,
                },
                &options,
                txns.clone(),
                table_ids.clone(),
                me.clone(),
            );
            Engine {
                options,
                txns,
                directory: Directory::default(),
                table_ids,
                databases: RwLock::new(BTreeMap::from([(PUBLIC_DATABASE.to_string(), public)])),
                checkpointer: OnceLock::new(),
                admins: OnceLock::new(),
                replication: OnceLock::new(),
                backups: OnceLock::new(),
                server_info: OnceLock::new(),
                live_config: OnceLock::new(),
                me: me.clone(),
            }
        })
    }

    /// The database called `name`: the exact name, else the one equal ignoring case.
    pub fn database(&self, name: &str) -> Option<Arc<Database>> {
        let databases = self.databases.read();
        if let Some(db) = databases.get(name) {
            return Some(db.clone());
        }
        let mut matches = databases
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name));
        match (matches.next(), matches.next()) {
            (Some((_, db)), None) => Some(db.clone()),
            _ => None,
        }
    }

    /// The database called `name`, or 3D000.
    pub fn existing_database(&self, name: &str) -> Result<Arc<Database>> {
        self.database(name).ok_or_else(|| undefined_database(name))
    }

    pub fn public(&self) -> Arc<Database> {
        self.databases
            .read()
            .get(PUBLIC_DATABASE)
            .cloned()
            .expect("public always exists")
    }

    /// Every database, by name.
    pub fn databases(&self) -> Vec<Arc<Database>> {
        self.databases.read().values().cloned().collect()
    }

    /// Every table of every database.
    pub fn tables(&self) -> Vec<Arc<Table>> {
        self.databases()
            .iter()
            .flat_map(|db| db.catalog.tables())
            .collect()
    }

    pub fn table_by_id(&self, id: TableId) -> Option<Arc<Table>> {
        self.databases
            .read()
            .values()
            .find_map(|db| db.catalog.table_by_id(id))
    }

    /// The next table id to hand out (for checkpoints).
    pub fn next_table_id(&self) -> TableId {
        self.table_ids.load(Ordering::Relaxed)
    }

    /// Makes sure later ids are at least `id` (after loading stored tables).
    pub fn reserve_table_ids(&self, id: TableId) {
        self.table_ids.fetch_max(id, Ordering::Relaxed);
    }

    /// The next number for a database's oid.
    pub fn next_database_id(&self) -> u32 {
        self.databases
            .read()
            .values()
            .map(|db| db.id + 1)
            .max()
            .unwrap_or(1)
    }

    /// Sets the administrators' file the server authenticates with (once, at start).
    pub fn attach_admins(&self, admins: Arc<Admins>) {
        let _ = self.admins.set(admins);
    }

    /// Whether `name` is (still) an administrator; `None` for an engine without the file.
    pub fn admin_exists(&self, name: &str) -> Option<bool> {
        self.admins.get().map(|a| a.get(name).is_some())
    }

    /// Every administrator's name.
    pub fn admin_names(&self) -> Vec<String> {
        self.admins.get().map(|a| a.names()).unwrap_or_default()
    }

    /// Sets the checkpointer `CHECKPOINT` uses (once, after recovery).
    pub fn attach_checkpointer(&self, checkpointer: Arc<Checkpointer>) {
        let _ = self.checkpointer.set(checkpointer);
    }

    pub fn checkpointer(&self) -> Option<&Arc<Checkpointer>> {
        self.checkpointer.get()
    }

    pub fn attach_replication(&self, hub: Arc<crate::replication::ReplicationHub>) {
        let _ = self.replication.set(hub);
    }

    pub fn replication(&self) -> Option<&Arc<crate::replication::ReplicationHub>> {
        self.replication.get()
    }

    pub fn attach_backups(&self, backups: Arc<crate::backup::BackupManager>) {
        let _ = self.backups.set(backups);
    }

    pub fn backups(&self) -> Option<&Arc<crate::backup::BackupManager>> {
        self.backups.get()
    }

    pub fn attach_server_info(&self, info: Arc<crate::stats::ServerInfo>) {
        let _ = self.server_info.set(info);
    }

    pub fn server_info(&self) -> Option<Arc<crate::stats::ServerInfo>> {
        self.server_info.get().cloned()
    }

    pub fn attach_live_config(&self, live: Arc<crate::config::live::LiveConfig>) {
        let _ = self.live_config.set(live);
    }

    pub fn live_config(&self) -> Option<&Arc<crate::config::live::LiveConfig>> {
        self.live_config.get()
    }

    /// Takes a checkpoint now, off the async runtime's worker threads.
    pub async fn checkpoint(&self) -> Result<CheckpointStats> {
        let checkpointer = self.checkpointer.get().cloned().ok_or_else(|| {
            KuraError::unsupported("CHECKPOINT needs a server started on a data directory")
        })?;
        let engine = self
            .me
            .upgrade()
            .ok_or_else(|| KuraError::internal("the engine is shutting down"))?;
        tokio::task::spawn_blocking(move || checkpointer.run(&engine))
            .await
            .map_err(|e| KuraError::internal(format!("checkpoint task failed: {e}")))?
    }

    /// Runs one catalog change through the log: `prepare` validates (with commits and other
    /// DDL paused) and names the change; it is logged, applied, and durable when this returns.
    pub async fn change_catalog(
        &self,
        prepare: impl FnOnce() -> Result<CatalogChange>,
    ) -> Result<()> {
        self.txns
            .change_catalog(CommitWait::FLUSH, prepare, |change, ts| {
                self.apply_catalog_change(change, ts)
            })
            .await
    }

    /// Makes a logged catalog change (logged at `ts`); shared by DDL and log replay.
    pub fn apply_catalog_change(&self, change: &CatalogChange, ts: Ts) -> Result<()> {
        match change {
            CatalogChange::PutTable(stored) => self
                .existing_database(&stored.database)?
                .put_table(stored, ts),
            CatalogChange::PutView(view) => self
                .existing_database(&view.database)?
                .catalog
                .create_view(view.to_def(), true),
            CatalogChange::DropView { database, name } => {
                self.existing_database(database)?.catalog.drop_view(name)
            }
            CatalogChange::DropTable { id, .. } => {
                let dropped = self
                    .databases
                    .read()
                    .values()
                    .find(|db| db.catalog.table_by_id(*id).is_some())
                    .map(|db| db.catalog.drop_table_by_id(*id))
                    .ok_or_else(|| KuraError::internal(format!("table {id} does not exist")))??;
                // Not here: this runs with commits and other DDL paused.
                crate::memory::free_in_background(dropped);
                Ok(())
            }
            CatalogChange::ReleasePartitions { table, partitions } => {
                let table = self.table_by_id(*table).ok_or_else(|| {
                    KuraError::internal(format!("partitions released from unknown table {table}"))
                })?;
                let released: std::collections::BTreeSet<_> = partitions.iter().collect();
                table.remove_partitions(ts, |key| released.contains(key));
                Ok(())
            }
            CatalogChange::PutDatabase(stored) => {
                self.install_database(stored);
                Ok(())
            }
            CatalogChange::DropDatabase { name } => {
                let db = self.existing_database(name)?;
                self.databases.write().remove(&db.name);
                self.directory.drop_database(&db.name);
                Ok(())
            }
            CatalogChange::PutUser(user) => self.directory.put_user(user),
            CatalogChange::DropUser { name } => {
                self.directory.drop_user(name);
                Ok(())
            }
            CatalogChange::SetGrant {
                user,
                database,
                privilege,
            } => {
                self.directory.set_grant(user, database, *privilege);
                Ok(())
            }
            CatalogChange::NewEpoch { epoch } => match self.replication.get() {
                Some(hub) => hub.update_state(|state| {
                    state.note_epoch(crate::replication::EpochStart {
                        epoch: *epoch,
                        start: ts,
                    })
                }),
                None => Ok(()),
            },
        }
    }

    /// Creates database `stored` (from the log or a checkpoint).
    pub fn install_database(&self, stored: &StoredDatabase) -> Arc<Database> {
        let db = Database::new(
            stored,
            &self.options,
            self.txns.clone(),
            self.table_ids.clone(),
            self.me.clone(),
        );
        self.databases
            .write()
            .insert(stored.name.clone(), db.clone());
        db
    }

    /// Fails unless database `name` may be dropped now: it exists, is not `public`, and holds
    /// nothing (GridDB's rule).
    pub fn check_droppable(&self, name: &str) -> Result<Arc<Database>> {
        let db = self.existing_database(name)?;
        if db.name == PUBLIC_DATABASE {
            return Err(KuraError::new(
                sqlstate::RESERVED_NAME,
                "database \"public\" cannot be dropped",
            ));
        }
        if !db.catalog.is_empty() {
            return Err(KuraError::new(
                sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                format!("database \"{}\" is not empty", db.name),
            )
            .with_detail("Drop its tables and views first."));
        }
        Ok(db)
    }
}
