//! Where the log's bytes and times stand by LSN: how many bytes had been appended through a
//! given LSN, and when. LSNs count records, not bytes, so the replication status view asks
//! this to report a standby's lag in bytes and seconds.
//!
//! Invariants: marks are kept in LSN order with growing byte counts; appends that come less
//! than [`MERGE_WITHIN`] and [`MERGE_BYTES`] after the previous mark move that mark forward
//! instead of adding one, so the marks cover a long stretch of log in bounded memory at a
//! resolution of one merge window; at most [`CAPACITY`] marks are kept, the oldest dropped
//! first.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Lsn;

const CAPACITY: usize = 1 << 16;
const MERGE_WITHIN: Duration = Duration::from_millis(10);
const MERGE_BYTES: u64 = 64 << 10;

#[derive(Debug, Clone, Copy)]
struct Mark {
    /// The newest LSN appended when the mark was taken.
    lsn: Lsn,
    /// Bytes appended since the log was opened, through `lsn`.
    bytes: u64,
    at: Instant,
    /// Where the mark's merge window began (bytes and time), so merging stays bounded.
    window_bytes: u64,
    window_at: Instant,
}

/// How far behind the log's end an LSN is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Bytes appended after it (`None` when it is older than the oldest mark).
    pub bytes: Option<u64>,
    /// How long ago the oldest record after it was appended; zero when it is the end.
    pub time: Option<Duration>,
}

#[derive(Debug)]
pub struct LogMarks {
    marks: VecDeque<Mark>,
}

impl LogMarks {
    /// Marks for a log whose last record so far is `last` (zero bytes appended through it).
    pub fn new(last: Lsn) -> LogMarks {
        let now = Instant::now();
        LogMarks {
            marks: VecDeque::from([Mark {
                lsn: last,
                bytes: 0,
                at: now,
                window_bytes: 0,
                window_at: now,
            }]),
        }
    }

    /// Records an append of `bytes` bytes ending with record `last`.
    pub fn appended(&mut self, last: Lsn, bytes: u64) {
        let now = Instant::now();
        let seeded_only = self.marks.len() <= 1;
        let Some(newest) = self.marks.back_mut() else {
            self.marks = LogMarks::new(last).marks;
            return;
        };
        let total = newest.bytes + bytes;
        let mergeable = !seeded_only
            && now.duration_since(newest.window_at) < MERGE_WITHIN
            && total - newest.window_bytes < MERGE_BYTES;
        if mergeable {
            newest.lsn = last;
            newest.bytes = total;
            newest.at = now;
            return;
        }
        if self.marks.len() == CAPACITY {
            self.marks.pop_front();
        }
        self.marks.push_back(Mark {
            lsn: last,
            bytes: total,
            at: now,
            window_bytes: total,
            window_at: now,
        });
    }

    /// Forgets the marks past `last` (the log's end was cut back to it).
    pub fn cut_back(&mut self, last: Lsn) {
        while self.marks.len() > 1 && self.marks.back().is_some_and(|m| m.lsn > last) {
            self.marks.pop_back();
        }
        if let Some(newest) = self.marks.back_mut() {
            newest.lsn = newest.lsn.min(last);
        }
    }

    /// How far `lsn` is behind the end of the log, at `now`.
    pub fn lag(&self, lsn: Lsn, now: Instant) -> Lag {
        let Some(newest) = self.marks.back() else {
            return Lag {
                bytes: None,
                time: None,
            };
        };
        if lsn >= newest.lsn {
            return Lag {
                bytes: Some(0),
                time: Some(Duration::ZERO),
            };
        }
        // The newest mark at or before `lsn` bounds the bytes it has; the first mark after it
        // holds the oldest record it lacks.
        let after = self.marks.partition_point(|m| m.lsn <= lsn);
        let bytes = after
            .checked_sub(1)
            .map(|at| newest.bytes - self.marks[at].bytes);
        let time = (after > 0).then(|| now.saturating_duration_since(self.marks[after].at));
        Lag { bytes, time }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_bytes_and_age_after_an_lsn() {
        let mut marks = LogMarks::new(10);
        std::thread::sleep(MERGE_WITHIN);
        marks.appended(12, 100);
        std::thread::sleep(MERGE_WITHIN);
        marks.appended(15, 50);
        let now = Instant::now();
        assert_eq!(marks.lag(15, now).bytes, Some(0));
        assert_eq!(marks.lag(15, now).time, Some(Duration::ZERO));
        assert_eq!(marks.lag(12, now).bytes, Some(50));
        assert_eq!(marks.lag(10, now).bytes, Some(150));
        assert!(marks.lag(10, now).time.unwrap() >= MERGE_WITHIN);
        assert!(marks.lag(12, now).time.unwrap() < marks.lag(10, now).time.unwrap());
        assert_eq!(
            marks.lag(9, now),
            Lag {
                bytes: None,
                time: None
            }
        );
    }

    #[test]
    fn quick_small_appends_share_one_mark_and_cutting_back_forgets_later_ones() {
        let mut marks = LogMarks::new(0);
        std::thread::sleep(MERGE_WITHIN);
        marks.appended(1, 10);
        for lsn in 2..50 {
            marks.appended(lsn, 10);
        }
        assert!(marks.marks.len() <= 3, "{}", marks.marks.len());
        assert_eq!(marks.lag(0, Instant::now()).bytes, Some(490));
        marks.cut_back(0);
        assert_eq!(marks.lag(0, Instant::now()).bytes, Some(0));
    }
}
