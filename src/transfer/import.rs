//! `kura import`: loads an export directory into a running server, table by table.
//!
//! Invariants: every data file to be loaded is checked against the manifest's size and
//! SHA-256 before the server is touched. Each table is all or nothing: its rows arrive in one
//! COPY (one transaction), and when the COPY or an index fails, a table the import created is
//! dropped again (DDL is not transactional in Kura). A bad row fails its table with the
//! server's "COPY t, line N" context; the other tables still load, and the command reports
//! every failure.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::Client;

use super::{DataFormat, Manifest, TableExport};
use crate::backup::files::digest_file;
use crate::client::{ClientOptions, connect, server_error};
use crate::pg_catalog::relations::quote_ident;

/// Bytes sent per CopyData message.
const CHUNK: usize = 1 << 20;

/// What to import, and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub dir: PathBuf,
    /// The tables to import; empty for every table and view of the export.
    pub tables: Vec<String>,
    /// Load rows into tables that already exist instead of creating them.
    pub data_only: bool,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportSummary {
    pub tables: usize,
    pub rows: u64,
    pub views: usize,
    /// Each table or view that failed, with why.
    pub failures: Vec<(String, String)>,
}

/// `kura import`: connects, imports, and prints a line per table and view and a summary;
/// fails when any table or view failed.
pub async fn run(server: &ClientOptions, options: &ImportOptions) -> Result<(), String> {
    let client = connect(server).await?;
    let summary = import(&client, options, &mut |line| println!("{line}")).await?;
    println!(
        "imported {} tables ({} rows) and {} views into database {}",
        summary.tables, summary.rows, summary.views, server.database
    );
    match summary.failures.len() {
        0 => Ok(()),
        n => Err(format!(
            "{n} failed: {}",
            summary
                .failures
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Imports what `options` names; `report` hears one line per table or view.
pub async fn import(
    client: &Client,
    options: &ImportOptions,
    report: &mut dyn FnMut(&str),
) -> Result<ImportSummary, String> {
    let manifest = Manifest::read(&options.dir)?;
    let tables = super::choose(
        &manifest.tables,
        |t| &t.name,
        &options.tables,
        |name| format!("the export holds no table named \"{name}\""),
    )?;
    for table in &tables {
        check_file(&options.dir, table)?;
    }
    let mut summary = ImportSummary::default();
    for table in tables {
        let load = Load {
            dir: &options.dir,
            format: manifest.data_format,
            data_only: options.data_only,
        };
        match import_table(client, &load, table).await {
            Ok(rows) => {
                let dropped = table.rows.saturating_sub(rows);
                let note = if dropped > 0 {
                    format!(" ({dropped} rows fell into expired partitions)")
                } else {
                    String::new()
                };
                report(&format!("{}: {rows} rows{note}", table.name));
                summary.tables += 1;
                summary.rows += rows;
            }
            Err(why) => {
                report(&format!("{}: FAILED: {why}", table.name));
                summary.failures.push((table.name.clone(), why));
            }
        }
    }
    if options.tables.is_empty() && !options.data_only {
        create_views(client, &manifest, &mut summary, report).await;
    }
    Ok(summary)
}

fn check_file(dir: &Path, table: &TableExport) -> Result<(), String> {
    let path = data_path(dir, table)?;
    let (bytes, sha256) = digest_file(&path).map_err(|e| e.message)?;
    if bytes != table.bytes || sha256 != table.sha256 {
        return Err(format!(
            "{} is damaged: {bytes} bytes with SHA-256 {sha256}, the manifest says {} bytes \
             with {}; nothing was imported",
            path.display(),
            table.bytes,
            table.sha256
        ));
    }
    Ok(())
}

/// The data file of `table`, which must lie inside the export directory.
fn data_path(dir: &Path, table: &TableExport) -> Result<PathBuf, String> {
    let plain = Path::new(&table.file)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !plain {
        return Err(format!(
            "the manifest names data file \"{}\" outside the export directory",
            table.file
        ));
    }
    Ok(dir.join(&table.file))
}

/// How tables are loaded.
struct Load<'a> {
    dir: &'a Path,
    format: DataFormat,
    data_only: bool,
}

/// Creates and loads one table; returns the rows stored.
async fn import_table(
    client: &Client,
    load: &Load<'_>,
    table: &TableExport,
) -> Result<u64, String> {
    let data_only = load.data_only;
    if !data_only {
        client
            .batch_execute(&table.create)
            .await
            .map_err(server_error)?;
    }
    let loaded = load_rows(client, load, table).await;
    let loaded = match loaded {
        Ok(rows) if data_only => Ok(rows),
        Ok(rows) => create_indexes(client, table).await.map(|()| rows),
        Err(e) => Err(e),
    };
    match loaded {
        Ok(rows) => Ok(rows),
        Err(why) if data_only => Err(why),
        Err(why) => {
            let drop = format!("DROP TABLE IF EXISTS {}", quote_ident(&table.name));
            match client.batch_execute(&drop).await {
                Ok(()) => Err(format!("{why}\n(the table was dropped again)")),
                Err(e) => Err(format!(
                    "{why}\n(dropping the table again failed too: {})",
                    server_error(e)
                )),
            }
        }
    }
}

async fn load_rows(client: &Client, load: &Load<'_>, table: &TableExport) -> Result<u64, String> {
    let path = data_path(load.dir, table)?;
    let copy = format!(
        "COPY {} {} FROM STDIN {}",
        quote_ident(&table.name),
        super::column_list(&table.columns),
        load.format.copy_options()
    );
    // The count is checked before the rows commit.
    client.batch_execute("BEGIN").await.map_err(server_error)?;
    let copied = copy_rows(client, &copy, &path).await;
    let checked = copied.and_then(|rows| check_count(table, rows));
    let end = if checked.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    let ended = client.batch_execute(end).await.map_err(server_error);
    let rows = checked?;
    ended?;
    Ok(rows)
}

/// Sends the data file through `copy`; returns the rows the server stored.
async fn copy_rows(client: &Client, copy: &str, path: &Path) -> Result<u64, String> {
    let sink = client
        .copy_in::<_, Bytes>(copy)
        .await
        .map_err(server_error)?;
    let mut sink = std::pin::pin!(sink);
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let n = file
            .read(&mut chunk)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        chunk.truncate(n);
        sink.send(Bytes::from(chunk)).await.map_err(server_error)?;
    }
    sink.as_mut().finish().await.map_err(server_error)
}

/// `rows` stored against the export's count: only rows of partitions that expired since the
/// export may be missing.
fn check_count(table: &TableExport, rows: u64) -> Result<u64, String> {
    let expected = table.rows;
    if rows > expected || (rows < expected && !table.expires) {
        return Err(format!(
            "the server stored {rows} rows where the export holds {expected}"
        ));
    }
    Ok(rows)
}

async fn create_indexes(client: &Client, table: &TableExport) -> Result<(), String> {
    for index in &table.indexes {
        client.batch_execute(index).await.map_err(server_error)?;
    }
    Ok(())
}

/// Creates the export's views; a view may use another, so failures are retried while any
/// view still gets created.
async fn create_views(
    client: &Client,
    manifest: &Manifest,
    summary: &mut ImportSummary,
    report: &mut dyn FnMut(&str),
) {
    let mut pending: Vec<_> = manifest.views.iter().collect();
    let mut done = HashSet::new();
    loop {
        let mut errors = Vec::new();
        for view in &pending {
            match client.batch_execute(&view.create).await {
                Ok(()) => {
                    report(&format!("view {}", view.name));
                    done.insert(view.name.clone());
                    summary.views += 1;
                }
                Err(e) => errors.push((view.name.clone(), server_error(e))),
            }
        }
        let before = pending.len();
        pending.retain(|v| !done.contains(&v.name));
        if pending.is_empty() || pending.len() == before {
            for (name, why) in errors {
                report(&format!("view {name}: FAILED: {why}"));
                summary.failures.push((format!("view {name}"), why));
            }
            return;
        }
    }
}
