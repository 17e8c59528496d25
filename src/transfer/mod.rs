//! Export and import (GridDB's gs_export / gs_import): `kura export` writes tables, their
//! definitions and the database's views from a running server to a directory, and
//! `kura import` loads such a directory into another server — how a database moves between
//! servers or versions. Both are clients: they speak the PostgreSQL protocol, read the
//! definitions from `kura_definitions` and move rows with `COPY ... (FORMAT csv, HEADER)` or
//! `(FORMAT parquet)`.
//!
//! An export directory holds one data file per table, `schema.sql` (every statement, for a
//! reader or psql) and `export.json` ([`Manifest`]), written last: a directory without it is
//! an unfinished export. Invariants: all tables are read in one REPEATABLE READ transaction,
//! so they are one consistent snapshot; the manifest records each data file's size and
//! SHA-256, and import checks every file it will load before it changes anything.

pub mod export;
pub mod import;

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The manifest's file name.
pub const MANIFEST: &str = "export.json";
/// The file with every statement of the export, for people and psql.
pub const SCHEMA_FILE: &str = "schema.sql";
/// The manifest layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// How table rows are stored in an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// PostgreSQL's CSV with a header line (COPY's FORMAT csv).
    Csv,
    /// One Parquet file per table, with the table's exact column types.
    Parquet,
}

impl DataFormat {
    /// The options of the COPY statements that move the rows.
    pub fn copy_options(self) -> &'static str {
        match self {
            DataFormat::Csv => "(FORMAT csv, HEADER)",
            DataFormat::Parquet => "(FORMAT parquet)",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            DataFormat::Csv => "csv",
            DataFormat::Parquet => "parquet",
        }
    }
}

/// `export.json`: what an export holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// The version of the server that was exported.
    pub server_version: String,
    pub database: String,
    /// When the export's snapshot was taken (RFC 3339).
    pub exported_at: String,
    pub data_format: DataFormat,
    pub tables: Vec<TableExport>,
    pub views: Vec<ViewExport>,
}

/// One exported table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableExport {
    pub name: String,
    /// CREATE TABLE with the table's kind, partitioning and expiry.
    pub create: String,
    /// CREATE INDEX for each secondary index.
    pub indexes: Vec<String>,
    /// The columns of the data file, in order; import names them in its COPY, so rows load
    /// by name into an existing table whose columns are in another order.
    pub columns: Vec<String>,
    /// The table drops rows of expired partitions (an import may store fewer rows).
    pub expires: bool,
    pub rows: u64,
    /// The data file, relative to the export directory.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One exported view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewExport {
    pub name: String,
    pub create: String,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Manifest, String> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (an export directory holds {MANIFEST}, written when the export ends)",
                path.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not an export manifest: {e}", path.display()))?;
        if manifest.format_version > FORMAT_VERSION {
            return Err(format!(
                "{} has format version {}; this kura reads up to {FORMAT_VERSION}",
                path.display(),
                manifest.format_version
            ));
        }
        Ok(manifest)
    }
}

/// The items `wanted` names (every item when it names none), each once, in `wanted`'s order:
/// a name matches as written, else folded to lower case as an unquoted SQL name would be;
/// `missing` words the error for a name that matches nothing.
fn choose<'a, T>(
    items: &'a [T],
    name_of: impl Fn(&T) -> &str,
    wanted: &[String],
    missing: impl Fn(&str) -> String,
) -> Result<Vec<&'a T>, String> {
    if wanted.is_empty() {
        return Ok(items.iter().collect());
    }
    let mut chosen: Vec<&T> = Vec::new();
    for name in wanted {
        let folded = name.to_lowercase();
        let item = items
            .iter()
            .find(|t| name_of(t) == name.as_str())
            .or_else(|| items.iter().find(|t| name_of(t) == folded))
            .ok_or_else(|| missing(name))?;
        if !chosen.iter().any(|c| std::ptr::eq(*c, item)) {
            chosen.push(item);
        }
    }
    Ok(chosen)
}

/// `(a, b, ...)`: a COPY column list.
fn column_list(columns: &[String]) -> String {
    let quoted: Vec<String> = columns
        .iter()
        .map(|c| crate::pg_catalog::relations::quote_ident(c))
        .collect();
    format!("({})", quoted.join(", "))
}

/// A file name for table `name`: its letters, digits, `_` and `-`, others as `_`, made
/// unique among `taken` with a numeric suffix.
fn file_name(name: &str, extension: &str, taken: &mut std::collections::HashSet<String>) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = if stem.is_empty() {
        "table".into()
    } else {
        stem
    };
    let mut candidate = format!("{stem}.{extension}");
    let mut n = 2;
    // File systems may ignore case, so names differing only in case collide.
    while !taken.insert(candidate.to_lowercase()) {
        candidate = format!("{stem}_{n}.{extension}");
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_chosen_by_name_or_folded_name() {
        let all = ["a", "b", "Mixed"];
        let choose_tables = |wanted: &[String]| {
            choose(
                &all,
                |t| t,
                wanted,
                |name| format!("there is no table named \"{name}\""),
            )
            .map(|chosen| chosen.into_iter().copied().collect::<Vec<_>>())
        };
        assert_eq!(choose_tables(&[]).unwrap(), all.to_vec());
        let wanted = ["B".to_string(), "Mixed".to_string(), "b".to_string()];
        assert_eq!(choose_tables(&wanted).unwrap(), vec!["b", "Mixed"]);
        let error = choose_tables(&["c".to_string()]).unwrap_err();
        assert!(error.contains("no table named \"c\""), "{error}");
    }

    #[test]
    fn file_names_are_plain_and_unique() {
        let mut taken = Default::default();
        assert_eq!(file_name("sensors", "csv", &mut taken), "sensors.csv");
        assert_eq!(file_name("Sensors", "csv", &mut taken), "Sensors_2.csv");
        assert_eq!(file_name("a/b c", "csv", &mut taken), "a_b_c.csv");
        assert_eq!(file_name("a.b.c", "csv", &mut taken), "a_b_c_2.csv");
        assert_eq!(file_name("", "parquet", &mut taken), "table.parquet");
    }
}
