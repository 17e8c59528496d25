//! `kura export`: one table, several, or the whole database (with its views) from a running
//! server into a new directory.
//!
//! Invariants: the directory is new or empty (an export never overwrites files); every data
//! file is fsynced before the manifest names it, and the manifest is written last, under a
//! temporary name renamed into place.

use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use tokio_postgres::Client;

use super::{DataFormat, FORMAT_VERSION, MANIFEST, Manifest, SCHEMA_FILE, TableExport, ViewExport};
use crate::backup::files::DigestWriter;
use crate::checkpoint::manifest::write_atomically;
use crate::client::{ClientOptions, connect, server_error};
use crate::pg_catalog::relations::quote_ident;

/// What to export, and where.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub dir: PathBuf,
    pub format: DataFormat,
    /// The tables to export; empty for every table and view.
    pub tables: Vec<String>,
}

/// One statement of `kura_definitions`.
struct Definition {
    object_type: String,
    table: String,
    statement: String,
}

/// `kura export`: connects, exports, and prints a line per table and a summary.
pub async fn run(server: &ClientOptions, options: &ExportOptions) -> Result<(), String> {
    let client = connect(server).await?;
    let manifest = export(&client, options, &mut |line| println!("{line}")).await?;
    let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
    println!(
        "exported {} tables ({rows} rows) and {} views of database {} to {}",
        manifest.tables.len(),
        manifest.views.len(),
        manifest.database,
        options.dir.display()
    );
    Ok(())
}

/// Exports what `options` names; `report` hears one line per table as it is written.
pub async fn export(
    client: &Client,
    options: &ExportOptions,
    report: &mut dyn FnMut(&str),
) -> Result<Manifest, String> {
    prepare_directory(&options.dir)?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(server_error)?;
    let manifest = export_snapshot(client, options, report).await;
    // Read only: ending the transaction either way loses nothing.
    let _ = client.batch_execute("ROLLBACK").await;
    let manifest = manifest?;
    write_schema(&options.dir, &manifest)?;
    write_manifest(&options.dir, &manifest)?;
    Ok(manifest)
}

async fn export_snapshot(
    client: &Client,
    options: &ExportOptions,
    report: &mut dyn FnMut(&str),
) -> Result<Manifest, String> {
    let about = client
        .query_one("SELECT version(), current_database()", &[])
        .await
        .map_err(server_error)?;
    let exported_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let definitions: Vec<Definition> = client
        .query(
            "SELECT object_type, table_name, statement FROM kura_definitions \
             ORDER BY object_type = 'view', \
             CASE WHEN object_type = 'view' THEN position END, table_name, position",
            &[],
        )
        .await
        .map_err(server_error)?
        .iter()
        .map(|row| Definition {
            object_type: row.get(0),
            table: row.get(1),
            statement: row.get(2),
        })
        .collect();
    let expiring: HashSet<String> = client
        .query(
            "SELECT table_name FROM \"#tables\" WHERE expiration_type IS NOT NULL",
            &[],
        )
        .await
        .map_err(server_error)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut columns: HashMap<String, Vec<String>> = HashMap::new();
    let rows = client
        .query(
            "SELECT table_name, column_name FROM \"#columns\" \
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .map_err(server_error)?;
    for row in rows {
        columns.entry(row.get(0)).or_default().push(row.get(1));
    }
    let all_tables: Vec<&str> = definitions
        .iter()
        .filter(|d| d.object_type == "table")
        .map(|d| d.table.as_str())
        .collect();
    let chosen = super::choose(
        &all_tables,
        |t| t,
        &options.tables,
        |name| format!("there is no table named \"{name}\""),
    )?;

    let mut taken = HashSet::new();
    let mut tables = Vec::new();
    for &name in chosen {
        let statements = definitions.iter().filter(|d| d.table == name);
        let (mut create, mut indexes) = (String::new(), Vec::new());
        for definition in statements {
            match definition.object_type.as_str() {
                "table" => create = definition.statement.clone(),
                "index" => indexes.push(definition.statement.clone()),
                _ => {}
            }
        }
        let file = super::file_name(name, options.format.extension(), &mut taken);
        let quoted = quote_ident(name);
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {quoted}"), &[])
            .await
            .map_err(server_error)?
            .get(0);
        let columns = columns.remove(name).unwrap_or_default();
        let copy = format!(
            "COPY {quoted} {} TO STDOUT {}",
            super::column_list(&columns),
            options.format.copy_options()
        );
        let (bytes, sha256) = copy_to_file(client, &copy, &options.dir.join(&file)).await?;
        report(&format!("{name}: {rows} rows, {bytes} bytes -> {file}"));
        tables.push(TableExport {
            name: name.to_string(),
            create,
            indexes,
            columns,
            expires: expiring.contains(name),
            rows: rows.max(0) as u64,
            file,
            bytes,
            sha256,
        });
    }
    let views = if options.tables.is_empty() {
        definitions
            .iter()
            .filter(|d| d.object_type == "view")
            .map(|d| ViewExport {
                name: d.table.clone(),
                create: d.statement.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Manifest {
        format_version: FORMAT_VERSION,
        server_version: about.get(0),
        database: about.get(1),
        exported_at,
        data_format: options.format,
        tables,
        views,
    })
}

fn prepare_directory(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "{shown} is not empty: export into a new or empty directory"
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {shown}: {e}"))
        }
        Err(e) => Err(format!("cannot read {shown}: {e}")),
    }
}

/// Runs a COPY TO STDOUT into `path` (fsynced); returns the file's size and SHA-256.
async fn copy_to_file(client: &Client, copy: &str, path: &Path) -> Result<(u64, String), String> {
    let failed = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(failed)?;
    let mut out = BufWriter::with_capacity(1 << 20, DigestWriter::new(file));
    let stream = client.copy_out(copy).await.map_err(server_error)?;
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(server_error)?;
        out.write_all(&chunk).map_err(failed)?;
    }
    let (file, bytes, sha256) = out
        .into_inner()
        .map_err(|e| failed(e.into_error()))?
        .finish();
    file.sync_all().map_err(failed)?;
    Ok((bytes, sha256))
}

fn write_schema(dir: &Path, manifest: &Manifest) -> Result<(), String> {
    let mut text = format!(
        "-- Definitions exported from database {} ({}) at {}\n",
        manifest.database, manifest.server_version, manifest.exported_at
    );
    for table in &manifest.tables {
        text.push_str(&format!("\n{};\n", table.create));
        for index in &table.indexes {
            text.push_str(&format!("{index};\n"));
        }
    }
    for view in &manifest.views {
        text.push_str(&format!("\n{};\n", view.create));
    }
    write_atomically(&dir.join(SCHEMA_FILE), text.as_bytes()).map_err(|e| e.message)
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), String> {
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| format!("cannot write the manifest: {e}"))?;
    write_atomically(&dir.join(MANIFEST), text.as_bytes()).map_err(|e| e.message)
}
