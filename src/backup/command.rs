//! The terminal side of `kura backup` and `kura restore`: taking a backup on a running server
//! with a progress bar, its status, and the listings, verification reports and restore plans
//! read from the backup directory (which need no server, as GridDB's gs_backuplist).
//!
//! Invariant: every text here is built from what the server or the backup files say; the
//! command's exit status follows the outcome (a damaged backup fails `verify`).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use super::info::BackupInfo;
use super::names::Mode;
use super::restore::{RestorePlan, Stop, Target};
use super::set::{list_sets, open_set};
use crate::client::{ClientOptions, connect, server_error};
use crate::error::KuraError;

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Text of the first row's columns of a simple query's answer.
fn first_row(messages: &[tokio_postgres::SimpleQueryMessage]) -> Option<Vec<Option<String>>> {
    messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => Some(
            (0..row.len())
                .map(|i| row.get(i).map(str::to_string))
                .collect(),
        ),
        _ => None,
    })
}

/// Takes a backup on the server at `options`, drawing its progress on a terminal.
pub async fn create(options: &ClientOptions, set: &str, mode: Mode) -> Result<String, String> {
    let client = connect(options).await?;
    let monitor = connect(options).await?;
    let started = Instant::now();
    let call = format!(
        "CALL kura_backup({}, {})",
        quoted(set),
        quoted(&mode.to_string())
    );
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    let running = client.simple_query(&call);
    tokio::pin!(running);
    let answer = loop {
        tokio::select! {
            answer = &mut running => break answer,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                let query = "SELECT phase, backup_total, backup_streamed FROM \
                             pg_stat_progress_basebackup";
                if let Ok(rows) = monitor.simple_query(query).await
                    && let Some(row) = first_row(&rows)
                {
                    let number = |i: usize| row.get(i).cloned().flatten()
                        .and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                    bar.set_message(row[0].clone().unwrap_or_default());
                    bar.set_length(number(1).max(number(2)));
                    bar.set_position(number(2));
                }
            }
        }
    };
    bar.finish_and_clear();
    let rows = answer.map_err(server_error)?;
    let row = first_row(&rows).ok_or("the server answered no row")?;
    let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    Ok(format!(
        "backup {} ({}) {}: checkpoint LSN {}, log to LSN {}, {} files, {} bytes, {:.1} s",
        field(1),
        field(2),
        field(3),
        field(4),
        field(5),
        field(6),
        field(7),
        started.elapsed().as_secs_f64()
    ))
}

/// GridDB's `gs_stat --type backup`: what the server's backup is doing.
pub async fn status(options: &ClientOptions) -> Result<String, String> {
    let client = connect(options).await?;
    let rows = client
        .simple_query(
            "SELECT backup_name, backup_data, mode, phase, backup_streamed, backup_total \
             FROM pg_stat_progress_basebackup",
        )
        .await
        .map_err(server_error)?;
    Ok(match first_row(&rows) {
        None => "BackupStatus: -".to_string(),
        Some(row) => {
            let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            format!(
                "BackupStatus: Processing({})\nBackupName: {}\nBackupData: {}\nPhase: {}\n\
                 Progress: {} of {} bytes",
                field(2),
                field(0),
                field(1),
                field(3),
                field(4),
                field(5)
            )
        }
    })
}

fn end_time(info: &BackupInfo) -> &str {
    info.end_time.as_deref().unwrap_or("-")
}

/// GridDB's gs_backuplist: every set, newest first; or one set's backups.
pub fn list(backup_dir: &Path, set: Option<&str>) -> Result<String, KuraError> {
    let mut out = String::new();
    let Some(set) = set else {
        let _ = writeln!(
            out,
            " {:<13} {:>6}  {:<32} {:<32}",
            "BackupName", "Status", "StartTime", "EndTime"
        );
        let _ = writeln!(out, "{}", "-".repeat(88));
        for summary in list_sets(backup_dir)? {
            let (start, end) = summary.times();
            let marker = if summary.status() == "--" { '*' } else { ' ' };
            let _ = writeln!(
                out,
                "{marker}{:<13} {:>6}  {:<32} {:<32}",
                summary.name,
                summary.status(),
                start.unwrap_or_else(|| "-".into()),
                end.unwrap_or_else(|| "-".into())
            );
        }
        return Ok(out);
    };
    let (set_dir, entries) = open_set(backup_dir, set)?;
    let _ = writeln!(
        out,
        "BackupName : {set}\nBackupFolder : {}\n",
        backup_dir.display()
    );
    let _ = writeln!(
        out,
        "{:<20} {:>6} {:<12} {:>13} {:>12}  {:<32} {:<32}",
        "BackupData", "Status", "Mode", "CheckpointLSN", "EndLSN", "StartTime", "EndTime"
    );
    let _ = writeln!(out, "{}", "-".repeat(134));
    for entry in &entries {
        match &entry.info {
            Ok(info) => {
                let _ = writeln!(
                    out,
                    "{:<20} {:>6} {:<12} {:>13} {:>12}  {:<32} {:<32}",
                    info.data,
                    info.status.as_str(),
                    info.mode.to_string(),
                    info.checkpoint_lsn,
                    info.end_lsn,
                    info.start_time,
                    end_time(info)
                );
                if let Some(error) = &info.error {
                    let _ = writeln!(out, "    error: {error}");
                }
            }
            Err(why) => {
                let _ = writeln!(out, "{:<20} {:>6}  {why}", entry.name(set), "NG");
            }
        }
    }
    let archive = set_dir.join(super::archive::ARCHIVE_DIR);
    if archive.is_dir() {
        let sources = super::restore::archive_sources(&set_dir)?;
        let first = sources.first().map(|s| s.first);
        let _ = writeln!(
            out,
            "\narchive: {} files{}",
            sources.len(),
            first.map_or(String::new(), |f| format!(", from LSN {f}"))
        );
    }
    Ok(out)
}

/// `kura backup verify`: the report, and whether the set is sound.
pub fn verify(backup_dir: &Path, set: &str) -> Result<(String, bool), KuraError> {
    let report = super::verify::verify_set(backup_dir, set)?;
    let mut out = String::new();
    for line in &report.checked {
        let _ = writeln!(out, "{line}");
    }
    for problem in &report.problems {
        let _ = writeln!(out, "problem: {problem}");
    }
    let _ = writeln!(
        out,
        "{} files, {} bytes read: {}",
        report.files,
        report.bytes,
        if report.ok() {
            "the backup is sound"
        } else {
            "the backup is DAMAGED"
        }
    );
    Ok((out, report.ok()))
}

fn time_text(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).map_or_else(
        || micros.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )
}

/// gs_restore --test's table, and how far the log goes.
pub fn describe_plan(plan: &RestorePlan, backup_dir: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "BackupName : {}\nBackupFolder : {}\n",
        plan.set,
        backup_dir.display()
    );
    let _ = writeln!(
        out,
        "{:<20} {:>6}  {:<32} {:<32}",
        "RestoreData", "Status", "StartTime", "EndTime"
    );
    let _ = writeln!(out, "{}", "-".repeat(92));
    for info in &plan.used {
        let _ = writeln!(
            out,
            "{:<20} {:>6}  {:<32} {:<32}",
            info.data,
            info.status.as_str(),
            info.start_time,
            end_time(info)
        );
    }
    let _ = writeln!(
        out,
        "\ncheckpoint LSN {} with {} partition files ({} bytes), then {} records from {} log files",
        plan.manifest.lsn,
        plan.partition_files,
        plan.partition_bytes,
        plan.reach.records,
        plan.log_files
    );
    let reached = plan.reach.time.map_or(String::new(), |t| {
        format!(" (last commit at {})", time_text(t))
    });
    let why = match (&plan.reach.stop, plan.target) {
        (Stop::Target, _) => "the target".to_string(),
        (_, Target::Latest) => "the end of the backup's log".to_string(),
        (Stop::EndOfLog, _) => "the end of the backup's log, before the target".to_string(),
        (Stop::Gap(lsn), _) => format!("a gap in the backup's log at LSN {lsn}"),
    };
    let _ = writeln!(
        out,
        "restores to LSN {}{reached}: stops at {why}",
        plan.reach.lsn
    );
    out
}

/// Reads `--until`: RFC 3339, or `YYYY-MM-DD HH:MM:SS[.ffffff]` in this machine's time zone.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(text, format) {
            return Ok(t.timestamp_micros());
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return naive
                .and_local_timezone(chrono::Local)
                .earliest()
                .map(|t| t.timestamp_micros())
                .ok_or_else(|| format!("{text} does not exist in this machine's time zone"));
        }
    }
    Err(format!(
        "cannot read the time {text:?}: use RFC 3339 (2026-11-23T10:00:00+09:00) or \
         'YYYY-MM-DD HH:MM:SS' in this machine's time zone"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_the_forms_operators_write() {
        let utc = parse_time("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(parse_time("2026-11-23 19:00:00+09:00").unwrap(), utc);
        assert_eq!(
            parse_time("2026-11-23T10:00:00.5+00:00").unwrap(),
            utc + 500_000
        );
        assert!(parse_time("2026-11-23 10:00:00").is_ok());
        assert!(parse_time("yesterday").is_err());
    }
}
