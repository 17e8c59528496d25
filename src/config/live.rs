//! Settings of the definition file as the running server has them, and the ones GridDB marks
//! as changeable online (`ALTER SYSTEM SET`, `kura config set`): the store memory limit, how
//! long the log is kept for standbys, the slow-statement log's limits and the event log's
//! levels. Like GridDB's gs_paramconf, an online change lasts until the server stops; the
//! definition file is not rewritten.
//!
//! A change is read with the definition file's own parser and checks: the value replaces the
//! setting in the current configuration's JSON, which is parsed and validated whole.
//!
//! Invariants: the current configuration always passes validation; only settings in
//! [`ONLINE`] ever change; each change is written to the event log with the old and new value.

use std::collections::BTreeMap;

use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use super::Config;
use crate::error::{KuraError, Result, sqlstate};

/// The settings that can change while the server runs.
pub const ONLINE: &[&str] = &[
    "/dataStore/storeMemoryLimit",
    "/sync/keepLogInterval",
    "/sql/traceLimitExecutionTime",
    "/sql/traceLimitQuerySize",
    "/trace/default",
    "/trace/systemService",
    "/trace/transactionService",
    "/trace/sqlService",
    "/trace/transactionManager",
    "/trace/logManager",
    "/trace/checkpointService",
    "/trace/recoveryManager",
    "/trace/dataStore",
];

/// One setting as `SHOW ALL` and `pg_settings` list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRow {
    /// The definition file's path, `/section/name`.
    pub path: String,
    pub value: String,
    /// The value the server started with.
    pub startup: String,
    pub online: bool,
    /// Changed while the server runs.
    pub changed: bool,
}

#[derive(Debug)]
pub struct LiveConfig {
    startup: Config,
    current: RwLock<Config>,
    /// Paths changed online, with their new values.
    changed: Mutex<BTreeMap<String, String>>,
}

/// The JSON Pointer form of a setting's name: `/dataStore/storeMemoryLimit`, from that or
/// `dataStore.storeMemoryLimit`, in any case.
fn find_path(name: &str) -> Option<&'static str> {
    static PATHS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let paths = PATHS.get_or_init(|| {
        flatten(&Config::default())
            .into_iter()
            .map(|(path, _)| path)
            .collect()
    });
    let wanted = name.trim().trim_matches('"').replace('.', "/");
    let wanted = if wanted.starts_with('/') {
        wanted
    } else {
        format!("/{wanted}")
    };
    paths
        .iter()
        .find(|path| path.eq_ignore_ascii_case(&wanted))
        .map(String::as_str)
}

/// Every setting's path with its value as the definition file writes it.
fn flatten(config: &Config) -> Vec<(String, String)> {
    let Ok(Value::Object(sections)) = serde_json::to_value(config) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (section, values) in sections {
        if let Value::Object(values) = values {
            for (name, value) in values {
                let text = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.push((format!("/{section}/{name}"), text));
            }
        }
    }
    out
}

impl LiveConfig {
    pub fn new(startup: Config) -> LiveConfig {
        LiveConfig {
            current: RwLock::new(startup.clone()),
            startup,
            changed: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn current(&self) -> Config {
        self.current.read().clone()
    }

    /// Reads one value of the current configuration.
    pub fn read<T>(&self, f: impl FnOnce(&Config) -> T) -> T {
        f(&self.current.read())
    }

    /// Every setting, with whether it can change online.
    pub fn rows(&self) -> Vec<SettingRow> {
        let startup: BTreeMap<String, String> = flatten(&self.startup).into_iter().collect();
        let changed = self.changed.lock();
        flatten(&self.current.read())
            .into_iter()
            .map(|(path, value)| SettingRow {
                online: ONLINE.iter().any(|p| *p == path),
                changed: changed.contains_key(&path),
                startup: startup.get(&path).cloned().unwrap_or_default(),
                path,
                value,
            })
            .collect()
    }

    /// The path of a setting `name` names, if any.
    pub fn resolve(name: &str) -> Option<&'static str> {
        find_path(name)
    }

    /// The current value of the setting at `path`, as the definition file writes it.
    pub fn value(&self, path: &str) -> Option<String> {
        value_at(&self.current.read(), path)
    }

    /// The value the server started with.
    pub fn startup_value(&self, path: &str) -> Option<String> {
        value_at(&self.startup, path)
    }

    /// The configuration with setting `name` changed to `value` (`None`: back to the value
    /// the server started with), checked but not yet in force; and the setting's path.
    /// Settings that need a restart fail with 55P02. [`LiveConfig::commit`] puts it in force.
    pub fn prepare(&self, name: &str, value: Option<&str>) -> Result<(String, Config)> {
        let path = find_path(name).map(str::to_string).ok_or_else(|| {
            KuraError::new(
                sqlstate::UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{name}\""),
            )
        })?;
        if !ONLINE.contains(&path.as_str()) {
            return Err(KuraError::new(
                sqlstate::CANT_CHANGE_RUNTIME_PARAM,
                format!(
                    "parameter \"{path}\" cannot be changed without restarting the server; \
                     set it in the definition file"
                ),
            ));
        }
        let current = self.current.read();
        let new = match value {
            None => {
                let mut document = to_document(&current)?;
                let startup = to_document(&self.startup)?;
                *pointer(&mut document, &path)? =
                    startup.pointer(&path).cloned().unwrap_or_default();
                parse(document, &path)?
            }
            Some(text) => {
                let mut document = to_document(&current)?;
                let slot = pointer(&mut document, &path)?;
                *slot = match slot {
                    Value::Number(_) | Value::Bool(_) => serde_json::from_str(text.trim())
                        .unwrap_or_else(|_| Value::String(text.to_string())),
                    _ => Value::String(text.to_string()),
                };
                parse(document, &path)?
            }
        };
        let mut new = new;
        // Not part of the file: only a command-line flag sets it.
        new.system.test_clock = current.system.test_clock;
        Ok((path, new))
    }

    /// Puts a configuration from [`LiveConfig::prepare`] in force; returns the value of
    /// `path` as the definition file would write it.
    pub fn commit(&self, path: &str, new: Config) -> String {
        let shown = value_at(&new, path).unwrap_or_default();
        *self.current.write() = new;
        let mut changed = self.changed.lock();
        if self.startup_value(path).is_some_and(|value| value == shown) {
            changed.remove(path);
        } else {
            changed.insert(path.to_string(), shown.clone());
        }
        shown
    }
}

/// One setting's value as the definition file writes it.
fn value_at(config: &Config, path: &str) -> Option<String> {
    let document = serde_json::to_value(config).ok()?;
    Some(match document.pointer(path)? {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn to_document(config: &Config) -> Result<Value> {
    serde_json::to_value(config)
        .map_err(|e| KuraError::internal(format!("cannot encode the configuration: {e}")))
}

fn pointer<'a>(document: &'a mut Value, path: &str) -> Result<&'a mut Value> {
    document
        .pointer_mut(path)
        .ok_or_else(|| KuraError::internal(format!("no setting at {path}")))
}

fn parse(document: Value, path: &str) -> Result<Config> {
    let text = document.to_string();
    Config::from_json_str(&text).map_err(|e| {
        KuraError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("invalid value for parameter \"{path}\": {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_settings_change_with_the_file_parser_and_checks() {
        let live = LiveConfig::new(Config::default());
        let change = |name: &str, value: Option<&str>| {
            live.prepare(name, value)
                .map(|(path, new)| live.commit(&path, new))
        };
        let (path, new) = live
            .prepare("dataStore.storeMemoryLimit", Some("2048MB"))
            .unwrap();
        assert_eq!(path, "/dataStore/storeMemoryLimit");
        assert_eq!(new.data_store.store_memory_limit.get(), 2048 << 20);
        assert_eq!(
            live.read(|c| c.data_store.store_memory_limit.get()),
            1024 << 20
        );
        assert_eq!(live.commit(&path, new), "2GB");
        assert_eq!(
            live.read(|c| c.data_store.store_memory_limit.get()),
            2048 << 20
        );
        change("/SQL/TRACELIMITQUERYSIZE", Some("50")).unwrap();
        assert_eq!(live.read(|c| c.sql.trace_limit_query_size), 50);
        let err = change("/dataStore/storeMemoryLimit", Some("0MB")).unwrap_err();
        assert_eq!(err.code, sqlstate::INVALID_PARAMETER_VALUE);
        let err = change("/system/servicePort", Some("1")).unwrap_err();
        assert_eq!(err.code, sqlstate::CANT_CHANGE_RUNTIME_PARAM);
        let err = change("/no/such", Some("1")).unwrap_err();
        assert_eq!(err.code, sqlstate::UNDEFINED_OBJECT);
        change("/dataStore/storeMemoryLimit", None).unwrap();
        assert_eq!(
            live.read(|c| c.data_store.store_memory_limit.get()),
            1024 << 20
        );
        let row = live
            .rows()
            .into_iter()
            .find(|r| r.path == "/sql/traceLimitQuerySize")
            .unwrap();
        assert_eq!(
            (row.value.as_str(), row.startup.as_str(), row.online),
            ("50", "1000", true)
        );
    }
}
