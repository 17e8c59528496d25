//! `kura check --data-dir D [--repair]`: offline verification of a data directory.
//!
//! Every checkpoint manifest and data file is read back and checksummed; every log segment is
//! scanned record by record (checksums, decoding, LSN continuity within and across segments).
//! With `--repair`, a damaged log is cut at its first bad byte: the damaged segment is
//! truncated there and any later segments are moved to `txnlog/discarded/` (like
//! `redis-check-aof --fix`). Nothing else is changed and nothing is deleted.
//!
//! Invariant: the check holds the data-directory lock, so it never runs beside a server.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::checkpoint::DATA_DIR;
use crate::checkpoint::file::read_partition_pieces;
use crate::checkpoint::manifest::{Manifest, list_manifests};
use crate::error::Result;
use crate::recovery::{CHECKPOINT_DIR, DataDirLock, LOG_DIR, truncate_tail};
use crate::wal::record::Lsn;
use crate::wal::segment::{SegmentScan, io_error, list_segments, scan_segment};
use crate::wal::sync_dir;

/// What a check found (and repaired).
#[derive(Debug, Default)]
pub struct CheckReport {
    /// One line per checkpoint and segment, then the summary.
    pub text: String,
    /// Problems found that are still there.
    pub problems: usize,
    /// Problems fixed by `--repair`.
    pub repaired: usize,
}

pub fn check_data_dir(data_dir: &Path, repair: bool) -> Result<CheckReport> {
    let _lock = DataDirLock::acquire(data_dir)?;
    let mut report = CheckReport::default();
    let mut out = String::new();
    let _ = writeln!(out, "kura check: data directory {}", data_dir.display());
    let (checkpoints, damaged_checkpoints, newest_valid) =
        check_checkpoints(&data_dir.join(CHECKPOINT_DIR), &mut out)?;
    report.problems += damaged_checkpoints;
    let log_dir = data_dir.join(LOG_DIR);
    let segments = list_segments(&log_dir)?;
    let mut scans: Vec<SegmentScan> = Vec::with_capacity(segments.len());
    let mut cut: Option<usize> = None;
    for (i, (first, path)) in segments.iter().enumerate() {
        if let Some(previous) = scans.last()
            && previous.next_lsn() != *first
        {
            let _ = writeln!(
                out,
                "log segment {}: GAP: starts at LSN {first}, expected LSN {}",
                name(path),
                previous.next_lsn()
            );
            report.problems += 1;
            cut.get_or_insert(i);
            break;
        }
        let scan = scan_segment(path, *first, |_| Ok(()))?;
        match &scan.damage {
            None => {
                let _ = writeln!(
                    out,
                    "log segment {}: ok, {} records{}, {} bytes",
                    name(path),
                    scan.records,
                    lsn_range(&scan),
                    scan.file_len
                );
            }
            Some((damage, at_lsn)) => {
                let _ = writeln!(
                    out,
                    "log segment {}: DAMAGED at byte offset {} (LSN {at_lsn}): {damage}; {} valid records{} before it",
                    name(path),
                    scan.valid_len,
                    scan.records,
                    lsn_range(&scan)
                );
                report.problems += 1;
                cut.get_or_insert(i + 1);
                scans.push(scan);
                break;
            }
        }
        scans.push(scan);
    }
    let records: u64 = scans.iter().map(|s| s.records).sum();
    let first_lsn = scans.first().map(|s| s.first_lsn);
    let last_lsn = scans.iter().filter_map(|s| s.last_lsn).max();
    if let (Some(checkpoint), Some(first)) = (newest_valid, first_lsn)
        && first > checkpoint + 1
    {
        let _ = writeln!(
            out,
            "log: MISSING records: the newest valid checkpoint is at LSN {checkpoint} but the log starts at LSN {first}"
        );
        report.problems += 1;
    }
    if repair && let Some(cut) = cut {
        report.repaired += repair_log(&log_dir, &segments, &scans, cut, &mut out)?;
        report.problems = report.problems.saturating_sub(report.repaired);
    }
    let _ = writeln!(
        out,
        "summary: {checkpoints} checkpoints ({damaged_checkpoints} damaged), {} log segments, {records} records{}; {} problems{}",
        segments.len(),
        match (first_lsn, last_lsn) {
            (Some(first), Some(last)) => format!(", LSN {first}..{last}"),
            _ => String::new(),
        },
        report.problems,
        if report.repaired > 0 {
            format!(", {} repaired", report.repaired)
        } else {
            String::new()
        }
    );
    report.text = out;
    Ok(report)
}

/// Verifies every checkpoint; returns (count, damaged, LSN of the newest intact one).
fn check_checkpoints(dir: &Path, out: &mut String) -> Result<(usize, usize, Option<Lsn>)> {
    let manifests = list_manifests(dir)?;
    let mut damaged = 0;
    let mut newest_valid = None;
    for (lsn, path) in &manifests {
        let verdict = Manifest::read(path).and_then(|manifest| {
            let mut rows = 0u64;
            for entry in &manifest.partitions {
                let file = dir.join(DATA_DIR).join(&entry.file);
                let mut found = 0u64;
                read_partition_pieces(&file, |batch, _| {
                    found += batch.num_rows() as u64;
                    Ok(())
                })?;
                if found != entry.rows {
                    return Err(crate::error::KuraError::new(
                        crate::error::sqlstate::IO_ERROR,
                        format!(
                            "{} holds {found} rows, the manifest says {}",
                            entry.file, entry.rows
                        ),
                    ));
                }
                rows += found;
            }
            Ok((manifest.partitions.len(), manifest.tables.len(), rows))
        });
        match verdict {
            Ok((partitions, tables, rows)) => {
                newest_valid = newest_valid.max(Some(*lsn));
                let _ = writeln!(
                    out,
                    "checkpoint {}: ok, LSN {lsn}, {tables} tables, {partitions} data partitions, {rows} rows",
                    name(path)
                );
            }
            Err(e) => {
                damaged += 1;
                let _ = writeln!(out, "checkpoint {}: DAMAGED: {}", name(path), e.message);
            }
        }
    }
    Ok((manifests.len(), damaged, newest_valid))
}

/// Cuts the log at the damage: truncates the damaged segment (if it is one) and moves every
/// segment from `keep_before` on aside. Returns the number of problems repaired.
fn repair_log(
    dir: &Path,
    segments: &[(Lsn, PathBuf)],
    scans: &[SegmentScan],
    keep_before: usize,
    out: &mut String,
) -> Result<usize> {
    let mut repaired = 0;
    let damaged = scans.last().filter(|s| s.damage.is_some());
    if let Some(scan) = damaged
        && scan.records > 0
        && let Some((damage, at_lsn)) = &scan.damage
    {
        truncate_tail(&scan.path, &scan.valid_len, damage, *at_lsn)?;
        let _ = writeln!(
            out,
            "repaired: truncated {} to {} bytes (last record LSN {})",
            name(&scan.path),
            scan.valid_len,
            scan.last_lsn.unwrap_or(scan.first_lsn)
        );
        repaired += 1;
    }
    let first_moved = match damaged {
        Some(scan) if scan.records == 0 => keep_before.saturating_sub(1),
        _ => keep_before,
    };
    let moved = &segments[first_moved.min(segments.len())..];
    if !moved.is_empty() {
        let aside = dir.join("discarded");
        std::fs::create_dir_all(&aside).map_err(|e| io_error(&aside, e))?;
        for (_, path) in moved {
            let target = aside.join(path.file_name().unwrap_or_default());
            std::fs::rename(path, &target).map_err(|e| io_error(path, e))?;
            let _ = writeln!(
                out,
                "repaired: moved {} to {} (it follows the damage)",
                name(path),
                target.display()
            );
        }
        sync_dir(&aside)?;
        sync_dir(dir)?;
        if damaged.is_none_or(|s| s.records > 0) {
            // A gap, not a damaged segment: moving the rest aside is the repair.
            repaired += usize::from(damaged.is_none());
        } else {
            repaired += 1;
        }
    }
    Ok(repaired)
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn lsn_range(scan: &SegmentScan) -> String {
    scan.last_lsn
        .map(|last| format!(", LSN {}..{last}", scan.first_lsn))
        .unwrap_or_default()
}
