//! The catalog of one database: its tables and views by name.
//!
//! Invariants: names are unique ignoring ASCII case across tables and views (GridDB's rule);
//! a lookup matches the exact name first, then the one name equal ignoring case. Index names
//! are unique within the database, as in PostgreSQL. Table ids come from an allocator the
//! server's databases share, so an id names one table in the whole server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use super::schema::{IndexDef, TableDef, TableId};
use super::table::{ColumnDefaults, Table, TableLimits};
use crate::error::{KuraError, Result, sqlstate};

/// A stored view: its name, the SELECT that defines it, and optional column names.
#[derive(Debug, Clone)]
pub struct ViewDef {
    pub name: String,
    pub sql: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Default)]
struct Inner {
    tables: BTreeMap<String, Arc<Table>>,
    views: BTreeMap<String, Arc<ViewDef>>,
}

#[derive(Debug)]
pub struct Catalog {
    inner: RwLock<Inner>,
    next_table_id: Arc<AtomicU64>,
    limits: TableLimits,
}

fn find<'a, V>(map: &'a BTreeMap<String, V>, name: &str) -> Option<(&'a String, &'a V)> {
    if let Some(entry) = map.get_key_value(name) {
        return Some(entry);
    }
    let mut matches = map.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name));
    match (matches.next(), matches.next()) {
        (Some(entry), None) => Some(entry),
        _ => None,
    }
}

impl Catalog {
    /// A catalog of its own (tests); the server's databases share one allocator
    /// ([`Catalog::sharing_ids`]).
    pub fn new(limits: TableLimits) -> Catalog {
        Catalog::sharing_ids(limits, Arc::new(AtomicU64::new(1)))
    }

    /// A catalog whose table ids come from `ids`, which other catalogs draw from too.
    pub fn sharing_ids(limits: TableLimits, ids: Arc<AtomicU64>) -> Catalog {
        Catalog {
            inner: RwLock::new(Inner::default()),
            next_table_id: ids,
            limits,
        }
    }

    /// True when the database holds no table and no view.
    pub fn is_empty(&self) -> bool {
        let inner = self.inner.read();
        inner.tables.is_empty() && inner.views.is_empty()
    }

    pub fn limits(&self) -> TableLimits {
        self.limits
    }

    pub fn allocate_table_id(&self) -> TableId {
        self.next_table_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn table(&self, name: &str) -> Option<Arc<Table>> {
        find(&self.inner.read().tables, name).map(|(_, t)| t.clone())
    }

    pub fn table_by_id(&self, id: TableId) -> Option<Arc<Table>> {
        self.inner
            .read()
            .tables
            .values()
            .find(|t| t.id() == id)
            .cloned()
    }

    pub fn views(&self) -> Vec<Arc<ViewDef>> {
        self.inner.read().views.values().cloned().collect()
    }

    pub fn view(&self, name: &str) -> Option<Arc<ViewDef>> {
        find(&self.inner.read().views, name).map(|(_, v)| v.clone())
    }

    pub fn table_names(&self) -> Vec<String> {
        self.inner.read().tables.keys().cloned().collect()
    }

    pub fn view_names(&self) -> Vec<String> {
        self.inner.read().views.keys().cloned().collect()
    }

    pub fn tables(&self) -> Vec<Arc<Table>> {
        self.inner.read().tables.values().cloned().collect()
    }

    fn check_free(inner: &Inner, name: &str) -> Result<()> {
        let taken = inner
            .tables
            .keys()
            .chain(inner.views.keys())
            .any(|k| k.eq_ignore_ascii_case(name));
        if taken {
            return Err(KuraError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        Ok(())
    }

    /// True when a table or view of this name (ignoring case) exists.
    pub fn relation_exists(&self, name: &str) -> bool {
        Self::check_free(&self.inner.read(), name).is_err()
    }

    /// Fails unless a table with this definition could be created now.
    pub fn check_new_table(&self, def: &TableDef) -> Result<()> {
        let inner = self.inner.read();
        Self::check_free(&inner, &def.name)?;
        for index in &def.indexes {
            Self::check_index_name_free(&inner, &index.name)?;
        }
        Ok(())
    }

    /// Fails unless `name` is free for a new index.
    pub fn check_new_index(&self, name: &str) -> Result<()> {
        Self::check_index_name_free(&self.inner.read(), name)
    }

    pub fn create_table(&self, def: TableDef, defaults: ColumnDefaults) -> Result<Arc<Table>> {
        let mut inner = self.inner.write();
        Self::check_free(&inner, &def.name)?;
        for index in &def.indexes {
            Self::check_index_name_free(&inner, &index.name)?;
        }
        self.next_table_id.fetch_max(def.id + 1, Ordering::Relaxed);
        let name = def.name.clone();
        let table = Arc::new(Table::new(def, defaults, self.limits));
        inner.tables.insert(name, table.clone());
        Ok(table)
    }

    pub fn drop_table(&self, name: &str) -> Result<Arc<Table>> {
        let mut inner = self.inner.write();
        let key = find(&inner.tables, name)
            .map(|(k, _)| k.clone())
            .ok_or_else(|| KuraError::undefined_table(name))?;
        let table = inner
            .tables
            .remove(&key)
            .ok_or_else(|| KuraError::undefined_table(name))?;
        table.mark_dropped();
        Ok(table)
    }

    /// Removes the table with id `id`.
    pub fn drop_table_by_id(&self, id: TableId) -> Result<Arc<Table>> {
        let mut inner = self.inner.write();
        let key = inner
            .tables
            .iter()
            .find(|(_, t)| t.id() == id)
            .map(|(k, _)| k.clone())
            .ok_or_else(|| KuraError::internal(format!("table {id} does not exist")))?;
        let table = inner
            .tables
            .remove(&key)
            .ok_or_else(|| KuraError::internal(format!("table {id} does not exist")))?;
        table.mark_dropped();
        Ok(table)
    }

    /// Fails unless a view with this name could be created now.
    pub fn check_new_view(&self, name: &str, replace: bool) -> Result<()> {
        let inner = self.inner.read();
        if replace && find(&inner.views, name).is_some() {
            return Ok(());
        }
        Self::check_free(&inner, name)
    }

    /// The stored name of view `name`, or the error for a missing view.
    pub fn view_key(&self, name: &str) -> Result<String> {
        find(&self.inner.read().views, name)
            .map(|(k, _)| k.clone())
            .ok_or_else(|| {
                KuraError::new(
                    sqlstate::UNDEFINED_TABLE,
                    format!("view \"{name}\" does not exist"),
                )
            })
    }

    pub fn create_view(&self, view: ViewDef, replace: bool) -> Result<()> {
        let mut inner = self.inner.write();
        if replace
            && let Some((key, _)) =
                find(&inner.views, &view.name).map(|(k, v)| (k.clone(), v.clone()))
        {
            inner.views.remove(&key);
        }
        Self::check_free(&inner, &view.name)?;
        inner.views.insert(view.name.clone(), Arc::new(view));
        Ok(())
    }

    pub fn drop_view(&self, name: &str) -> Result<()> {
        let mut inner = self.inner.write();
        let key = find(&inner.views, name)
            .map(|(k, _)| k.clone())
            .ok_or_else(|| {
                KuraError::new(
                    sqlstate::UNDEFINED_TABLE,
                    format!("view \"{name}\" does not exist"),
                )
            })?;
        inner.views.remove(&key);
        Ok(())
    }

    fn check_index_name_free(inner: &Inner, name: &str) -> Result<()> {
        let taken = inner.tables.values().any(|t| {
            t.def()
                .indexes
                .iter()
                .any(|i| i.name.eq_ignore_ascii_case(name))
        });
        if taken || find(&inner.tables, name).is_some() || find(&inner.views, name).is_some() {
            return Err(KuraError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        Ok(())
    }

    /// The table owning the index called `name`.
    pub fn find_index(&self, name: &str) -> Option<(Arc<Table>, IndexDef)> {
        let inner = self.inner.read();
        inner.tables.values().find_map(|t| {
            let def = t.def();
            def.indexes
                .iter()
                .find(|i| i.name == name || i.name.eq_ignore_ascii_case(name))
                .map(|i| (t.clone(), i.clone()))
        })
    }
}
