//! Checks a parsed JSON definition file against the shape of the defaults, so that every error
//! names the setting by its JSON Pointer path (`/transaction/foo`).
//!
//! Invariants: the template is the serialized `Config::default()`, so the set of known keys is
//! exactly the set of fields; paths use JSON Pointer escaping (`~0`, `~1`) and can be fed back to
//! `serde_json::Value::pointer`.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::ConfigError;

/// Fails on the first key of `input` that `template` does not know, and on a non-object given
/// where `template` has a section. `path` is the JSON Pointer of `input` ("" for the root).
pub(super) fn check_keys(input: &Value, template: &Value, path: &str) -> Result<(), ConfigError> {
    let Value::Object(known) = template else {
        return Ok(());
    };
    let Value::Object(given) = input else {
        return Err(ConfigError::NotASection {
            path: display_path(path),
        });
    };
    for (key, value) in given {
        let child = child_path(path, key);
        match known.get(key) {
            Some(known_value) => check_keys(value, known_value, &child)?,
            None => {
                return Err(ConfigError::UnknownSetting {
                    path: child,
                    expected: key_list(known),
                });
            }
        }
    }
    Ok(())
}

/// Names the first setting whose value alone makes `T` fail to deserialize: each leaf of
/// `input` in turn is put into the template. `error` is reported if no single leaf fails.
pub(super) fn locate_invalid<T: DeserializeOwned>(
    input: &Value,
    template: &Value,
    error: &serde_json::Error,
) -> ConfigError {
    let mut found = Vec::new();
    collect_leaves(input, template, String::new(), &mut found);
    found
        .into_iter()
        .find_map(|(path, value)| probe::<T>(template, &path, value).map(|e| (path, e)))
        .map_or_else(
            || invalid_value("/".to_owned(), error),
            |(path, e)| invalid_value(path, &e),
        )
}

/// Deserializes `template` with the value at `path` replaced by `value`; returns the error.
fn probe<T: DeserializeOwned>(
    template: &Value,
    path: &str,
    value: &Value,
) -> Option<serde_json::Error> {
    let mut candidate = template.clone();
    *candidate.pointer_mut(path)? = value.clone();
    T::deserialize(&candidate).err()
}

/// Pushes `(path, value)` for every value of `input` that sits where `template` has a setting
/// rather than a section.
fn collect_leaves<'a>(
    input: &'a Value,
    template: &Value,
    path: String,
    out: &mut Vec<(String, &'a Value)>,
) {
    match (input, template) {
        (Value::Object(given), Value::Object(known)) => {
            for (key, value) in given {
                if let Some(known_value) = known.get(key) {
                    collect_leaves(value, known_value, child_path(&path, key), out);
                }
            }
        }
        _ => out.push((path, input)),
    }
}

fn invalid_value(path: String, error: &serde_json::Error) -> ConfigError {
    ConfigError::InvalidValue {
        path,
        message: error.to_string(),
    }
}

fn child_path(parent: &str, key: &str) -> String {
    format!("{parent}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn display_path(path: &str) -> String {
    if path.is_empty() { "/" } else { path }.to_owned()
}

fn key_list(keys: &Map<String, Value>) -> String {
    keys.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
