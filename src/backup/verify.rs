//! `kura backup verify`: re-reads every file of a backup set and checks it — the information
//! files against their digests, every file against its size and SHA-256, the content of
//! every manifest, partition file and log file, that each backup's log runs without a gap
//! from its checkpoint to its end, that every partition file a backup needs is in its chain,
//! and that the archive continues the log without a gap.
//!
//! Invariant: verification only reads; each problem is reported with the file it is in.

use std::path::Path;

use super::files::{check_stored, open_decompressed, read_decompressed};
use super::info::{BackupInfo, Status};
use super::restore::{Stop, Target, archive_sources, backup_log_sources, walk_log};
use super::set::{MANIFEST_PREFIX, chain, open_set, partition_file_name, stored_partition_files};
use crate::checkpoint::file::verify_partition_stream;
use crate::checkpoint::manifest::Manifest;
use crate::error::Result;

/// What verification found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// One line per backup (and the archive) checked.
    pub checked: Vec<String>,
    pub problems: Vec<String>,
    pub files: usize,
    pub bytes: u64,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies every backup of `set`.
pub fn verify_set(backup_dir: &Path, set: &str) -> Result<VerifyReport> {
    let (set_dir, entries) = open_set(backup_dir, set)?;
    let mut report = VerifyReport::default();
    for entry in &entries {
        let name = entry.name(set);
        let info = match &entry.info {
            Ok(info) => info,
            Err(why) => {
                report.problems.push(format!("{name}: {why}"));
                continue;
            }
        };
        match info.status {
            Status::Ok => {}
            Status::P => {
                report
                    .checked
                    .push(format!("{name}: in progress, not checked"));
                continue;
            }
            Status::Ng => {
                let why = info.error.as_deref().unwrap_or("unknown error");
                report
                    .problems
                    .push(format!("{name}: the backup failed ({why})"));
                continue;
            }
        }
        let before = report.problems.len();
        verify_files(&entry.dir, info, &mut report);
        verify_needs(&entries, info, &mut report);
        let log = backup_log_sources(&entry.dir, info);
        match walk_log(
            &log,
            info.checkpoint_lsn,
            Target::Lsn(info.end_lsn),
            |_, _| Ok(()),
        ) {
            Ok(reach) if reach.lsn == info.end_lsn || reach.stop == Stop::Target => {}
            Ok(reach) => report.problems.push(format!(
                "{name}: its log ends at LSN {}, not at its end LSN {}",
                reach.lsn, info.end_lsn
            )),
            Err(e) => report.problems.push(format!("{name}: {}", e.message)),
        }
        let verdict = if report.problems.len() == before {
            "OK"
        } else {
            "DAMAGED"
        };
        report.checked.push(format!(
            "{name}: {verdict} ({} files, checkpoint LSN {}, log to LSN {})",
            info.files.len(),
            info.checkpoint_lsn,
            info.end_lsn
        ));
    }
    verify_archive(&set_dir, &entries, &mut report);
    Ok(report)
}

fn verify_files(dir: &Path, info: &BackupInfo, report: &mut VerifyReport) {
    for file in &info.files {
        let path = BackupInfo::file_path(dir, file);
        report.files += 1;
        report.bytes += file.bytes;
        let checked = check_stored(&path, file).and_then(|()| {
            if file.path.starts_with(MANIFEST_PREFIX) {
                let manifest = Manifest::parse(&read_decompressed(&path)?, &path)?;
                if manifest.lsn != info.checkpoint_lsn {
                    return Err(super::info::damaged(
                        &path,
                        "its LSN is not the backup's checkpoint LSN",
                    ));
                }
            } else if partition_file_name(&file.path).is_some() {
                verify_partition_stream(open_decompressed(&path)?, file.raw_bytes, &path)?;
            }
            Ok(())
        });
        if let Err(e) = checked {
            report.problems.push(e.message);
        }
    }
}

/// Every partition file the backup's manifest names is in the backup or those it builds on.
fn verify_needs(entries: &[super::set::DataEntry], info: &BackupInfo, report: &mut VerifyReport) {
    let outcome = chain(entries, &info.data).and_then(|links| {
        let stored = stored_partition_files(&links);
        let (dir, _) = links[0];
        let manifest_file = info
            .files
            .iter()
            .find(|f| f.path.starts_with(MANIFEST_PREFIX))
            .ok_or_else(|| super::info::damaged(dir, "it lists no checkpoint manifest"))?;
        let path = BackupInfo::file_path(dir, manifest_file);
        let manifest = Manifest::parse(&read_decompressed(&path)?, &path)?;
        for partition in &manifest.partitions {
            if !stored.contains_key(&partition.file) {
                report.problems.push(format!(
                    "{}: partition file {} is in none of the backups it builds on",
                    info.data, partition.file
                ));
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        report
            .problems
            .push(format!("{}: {}", info.data, e.message));
    }
}

fn verify_archive(set_dir: &Path, entries: &[super::set::DataEntry], report: &mut VerifyReport) {
    let archive = set_dir.join(super::archive::ARCHIVE_DIR);
    if !archive.is_dir() {
        return;
    }
    let Some(base) = entries.first().and_then(|e| e.info.as_ref().ok()) else {
        return;
    };
    let outcome = archive_sources(set_dir).and_then(|mut sources| {
        sources.sort_by_key(|s| s.first);
        report.files += sources.len();
        walk_log(&sources, base.end_lsn, Target::Latest, |_, _| Ok(()))
    });
    match outcome {
        Ok(reach) => match reach.stop {
            Stop::Gap(lsn) => report
                .problems
                .push(format!("archive: the log misses LSN {lsn}")),
            _ => report.checked.push(format!(
                "archive: OK (LSN {} to {}, {} records)",
                base.end_lsn + 1,
                reach.lsn,
                reach.records
            )),
        },
        Err(e) => report.problems.push(format!("archive: {}", e.message)),
    }
}
