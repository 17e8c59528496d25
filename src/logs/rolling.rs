//! A log file that rolls over as GridDB's event and audit logs do: files are named
//! `PREFIX-YYYYMMDD-N.log` (UTC date, N counting from 1 within the day), and a new file is
//! begun when the process starts, on the first record of a new day, and before a record that
//! would take the file past its size limit.
//!
//! Invariants: a record (one `write` call) is never split across two files; a file is only
//! ever appended to by the one process that began it (a start never reuses a file); when a
//! file count is set, at most that many files of the prefix remain after each roll-over,
//! the oldest deleted first.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};
use parking_lot::Mutex;

/// Where, under which name and up to what size records go.
#[derive(Debug, Clone)]
pub struct RollingSpec {
    pub dir: PathBuf,
    pub prefix: &'static str,
    /// A file is closed before a record would take it past this many bytes (a record larger
    /// than the limit gets a file of its own).
    pub max_bytes: u64,
    /// Files of the prefix kept; `None` keeps all.
    pub keep: Option<usize>,
}

pub struct RollingFile {
    spec: RollingSpec,
    state: Mutex<Option<Current>>,
}

struct Current {
    file: File,
    date: NaiveDate,
    sequence: u32,
    written: u64,
}

impl RollingFile {
    /// Makes the directory; the first file is begun with the first record.
    pub fn open(spec: RollingSpec) -> io::Result<RollingFile> {
        std::fs::create_dir_all(&spec.dir)?;
        Ok(RollingFile {
            spec,
            state: Mutex::new(None),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.spec.dir
    }

    /// Appends one record, rolling over first if the day changed or the file is full.
    pub fn append(&self, record: &[u8]) -> io::Result<()> {
        self.append_on(Utc::now().date_naive(), record)
    }

    fn append_on(&self, today: NaiveDate, record: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock();
        let roll = match state.as_ref() {
            None => true,
            Some(current) => {
                current.date != today
                    || (current.written > 0
                        && current.written + record.len() as u64 > self.spec.max_bytes)
            }
        };
        if roll {
            let previous = state.take();
            let sequence = match previous {
                Some(current) if current.date == today => current.sequence + 1,
                _ => self.last_sequence(today)? + 1,
            };
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(self.path(today, sequence))?;
            *state = Some(Current {
                file,
                date: today,
                sequence,
                written: 0,
            });
            self.prune()?;
        }
        let Some(current) = state.as_mut() else {
            return Err(io::Error::other("no log file is open"));
        };
        current.file.write_all(record)?;
        current.written += record.len() as u64;
        Ok(())
    }

    fn path(&self, date: NaiveDate, sequence: u32) -> PathBuf {
        self.spec.dir.join(format!(
            "{}-{}-{sequence}.log",
            self.spec.prefix,
            date.format("%Y%m%d")
        ))
    }

    /// The files of this prefix, oldest first.
    fn files(&self) -> io::Result<Vec<(NaiveDate, u32, PathBuf)>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.spec.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some((date, sequence)) = parse_name(self.spec.prefix, name) {
                files.push((date, sequence, path));
            }
        }
        files.sort();
        Ok(files)
    }

    fn last_sequence(&self, date: NaiveDate) -> io::Result<u32> {
        Ok(self
            .files()?
            .iter()
            .filter(|(d, _, _)| *d == date)
            .map(|(_, sequence, _)| *sequence)
            .max()
            .unwrap_or(0))
    }

    fn prune(&self) -> io::Result<()> {
        let Some(keep) = self.spec.keep else {
            return Ok(());
        };
        let files = self.files()?;
        let excess = files.len().saturating_sub(keep.max(1));
        for (_, _, path) in &files[..excess] {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }
}

/// `PREFIX-YYYYMMDD-N.log` → (date, N).
fn parse_name(prefix: &str, name: &str) -> Option<(NaiveDate, u32)> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let rest = rest.strip_suffix(".log")?;
    let (date, sequence) = rest.split_once('-')?;
    if date.len() != 8 {
        return None;
    }
    let date = NaiveDate::parse_from_str(date, "%Y%m%d").ok()?;
    Some((date, sequence.parse().ok()?))
}

/// tracing's writer: each event is one `write_all` of its formatted line.
impl Write for &RollingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn spec(dir: &Path, keep: Option<usize>) -> RollingSpec {
        RollingSpec {
            dir: dir.to_path_buf(),
            prefix: "test",
            max_bytes: 10,
            keep,
        }
    }

    #[test]
    fn rolls_over_by_size_day_and_restart_without_splitting_records() {
        let tmp = tempfile::tempdir().unwrap();
        let day1 = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let day2 = day1.succ_opt().unwrap();
        let log = RollingFile::open(spec(tmp.path(), None)).unwrap();
        log.append_on(day1, b"123456").unwrap();
        log.append_on(day1, b"7890").unwrap();
        // 10 bytes written: the next record begins file 2, and one larger than the limit
        // still goes whole into a file of its own.
        log.append_on(day1, b"a").unwrap();
        log.append_on(day1, b"bbbbbbbbbbbbbbb").unwrap();
        log.append_on(day2, b"c").unwrap();
        drop(log);
        // A restart begins a new file after the day's last.
        let log = RollingFile::open(spec(tmp.path(), None)).unwrap();
        log.append_on(day2, b"d").unwrap();
        assert_eq!(
            names(tmp.path()),
            [
                "test-20261121-1.log",
                "test-20261121-2.log",
                "test-20261121-3.log",
                "test-20261122-1.log",
                "test-20261122-2.log"
            ]
        );
        let read = |name: &str| std::fs::read_to_string(tmp.path().join(name)).unwrap();
        assert_eq!(read("test-20261121-1.log"), "1234567890");
        assert_eq!(read("test-20261121-3.log"), "bbbbbbbbbbbbbbb");
        assert_eq!(read("test-20261122-2.log"), "d");
    }

    #[test]
    fn keeps_the_newest_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("other.txt"), "not a log").unwrap();
        std::fs::write(tmp.path().join("test-20250101-9.log"), "old").unwrap();
        let log = RollingFile::open(spec(tmp.path(), Some(2))).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        for _ in 0..4 {
            log.append_on(day, b"0123456789").unwrap();
        }
        assert_eq!(
            names(tmp.path()),
            ["other.txt", "test-20261121-3.log", "test-20261121-4.log"]
        );
    }

    #[test]
    fn names_of_other_files_are_ignored() {
        assert_eq!(
            parse_name("kura", "kura-20261121-12.log"),
            Some((NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(), 12))
        );
        for name in [
            "kura-audit-20261121-1.log",
            "kura-2026112-1.log",
            "kura-20261121-x.log",
            "kura-20261121-1.txt",
        ] {
            assert_eq!(parse_name("kura", name), None, "{name}");
        }
    }
}
