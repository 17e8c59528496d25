//! The transaction log: one record per committed transaction and per DDL, appended to segment
//! files in `<data>/txnlog/`, made durable by a flusher thread that gives many concurrent
//! commits one fsync (group commit).
//!
//! Invariants:
//! - Records are appended in LSN order with no gaps (the commit pipeline appends under its
//!   commit lock); `append` returns only after the frame is in the operating system, so a
//!   process crash never loses an appended record.
//! - `durable` only grows and never passes `written`; a waiter is released only when an fsync
//!   that began after its record was written has finished, or the log has failed.
//! - After a failed write the segment is cut back to its last whole record; if that or an
//!   fsync fails, the log refuses every later append until restart (no write is acknowledged
//!   on a log whose state on disk is unknown).
//! - Rotation fsyncs the old segment before the first record goes to the new one, so only the
//!   newest segment can hold records that are not yet durable.

pub mod frames;
pub mod holds;
pub mod marks;
pub mod record;
pub mod segment;
pub mod tail;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::error::{KuraError, Result, sqlstate};
pub use record::{CatalogChange, LogRecord, Lsn, PartitionChange, RecordBody, StoredDatabase};
use segment::{header_bytes, io_error, list_segments, segment_name};

/// How the log is opened.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub dir: PathBuf,
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_size: u64,
    /// Compress records with zstd.
    pub compress: bool,
    /// DELAYED_SYNC: fsync at this period; `None` is SYNC (fsync when a commit asks).
    pub sync_interval: Option<Duration>,
}

#[derive(Debug)]
struct Segment {
    file: Arc<File>,
    path: PathBuf,
    /// The LSN of its first record (its name).
    first_lsn: Lsn,
    len: u64,
}

/// What the flusher last made durable, or why it failed.
#[derive(Debug, Clone, Default)]
pub struct Durable {
    pub lsn: Lsn,
    pub failed: Option<Arc<str>>,
}

#[derive(Debug)]
struct FlushState {
    written: Lsn,
    requested: Lsn,
    durable: Lsn,
    file: Arc<File>,
    failed: Option<Arc<str>>,
    stop: bool,
    fsyncs: u64,
}

#[derive(Debug)]
struct Flusher {
    state: Mutex<FlushState>,
    wake: Condvar,
    durable: watch::Sender<Durable>,
}

#[derive(Debug)]
pub struct TxnLog {
    options: LogOptions,
    segment: Mutex<Segment>,
    flusher: Arc<Flusher>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    closed: std::sync::atomic::AtomicBool,
    /// The newest LSN whose frame is whole in a segment, for readers tailing the log.
    written: watch::Sender<Lsn>,
    marks: Mutex<marks::LogMarks>,
}

impl TxnLog {
    /// Starts a new segment whose first record will have LSN `next_lsn` (recovery has already
    /// read and repaired the older ones) and the flusher thread.
    pub fn open(options: LogOptions, next_lsn: Lsn) -> Result<Arc<TxnLog>> {
        std::fs::create_dir_all(&options.dir).map_err(|e| io_error(&options.dir, e))?;
        let segment = create_segment(&options.dir, next_lsn)?;
        let last = next_lsn.saturating_sub(1);
        let flusher = Arc::new(Flusher {
            state: Mutex::new(FlushState {
                written: last,
                requested: last,
                durable: last,
                file: segment.file.clone(),
                failed: None,
                stop: false,
                fsyncs: 0,
            }),
            wake: Condvar::new(),
            durable: watch::Sender::new(Durable {
                lsn: last,
                failed: None,
            }),
        });
        let thread = {
            let flusher = flusher.clone();
            let interval = options.sync_interval;
            std::thread::Builder::new()
                .name("kura-log-flusher".into())
                .spawn(move || flusher.run(interval))
                .map_err(|e| KuraError::internal(format!("cannot start the log flusher: {e}")))?
        };
        Ok(Arc::new(TxnLog {
            options,
            segment: Mutex::new(segment),
            flusher,
            thread: Mutex::new(Some(thread)),
            closed: std::sync::atomic::AtomicBool::new(false),
            written: watch::Sender::new(last),
            marks: Mutex::new(marks::LogMarks::new(last)),
        }))
    }

    pub fn options(&self) -> &LogOptions {
        &self.options
    }

    pub fn compress(&self) -> bool {
        self.options.compress
    }

    /// Appends one encoded frame holding record `lsn`. The caller serialises appends and
    /// passes LSNs in order.
    pub fn append(&self, lsn: Lsn, frame: &[u8]) -> Result<()> {
        self.append_frames(lsn, [Ok::<_, KuraError>(frame)])
            .map(|_| ())
    }

    /// Appends the frames of LSNs `first_lsn`, `first_lsn + 1`, ... as they are produced (a
    /// commit spanning several frames: only one of them is in memory at a time), all in one
    /// segment, which may grow past the segment size for them. If producing or writing one
    /// fails, none of them stays in the log. Returns the last LSN appended.
    pub fn append_frames<F: AsRef<[u8]>>(
        &self,
        first_lsn: Lsn,
        frames: impl IntoIterator<Item = Result<F>>,
    ) -> Result<Lsn> {
        self.append_in_segment(first_lsn, frames, true)
    }

    /// Appends frames a standby received from its primary. `may_rotate` is false when the
    /// first of them continues a commit whose earlier frames were appended before, so that a
    /// commit's frames always share one segment.
    pub fn append_received<F: AsRef<[u8]>>(
        &self,
        first_lsn: Lsn,
        frames: impl IntoIterator<Item = Result<F>>,
        may_rotate: bool,
    ) -> Result<Lsn> {
        self.append_in_segment(first_lsn, frames, may_rotate)
    }

    fn append_in_segment<F: AsRef<[u8]>>(
        &self,
        first_lsn: Lsn,
        frames: impl IntoIterator<Item = Result<F>>,
        may_rotate: bool,
    ) -> Result<Lsn> {
        if let Some(why) = self.failed() {
            return Err(log_failed(&why));
        }
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(KuraError::new(
                sqlstate::ADMIN_SHUTDOWN,
                "the server is shutting down; the transaction was rolled back",
            ));
        }
        let mut segment = self.segment.lock();
        let mut next = first_lsn;
        let mut start = None;
        for frame in frames {
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => {
                    if let Some(start) = start {
                        self.cut_back(&mut segment, start, &e.message);
                    }
                    return Err(e);
                }
            };
            let frame = frame.as_ref();
            if start.is_none()
                && may_rotate
                && segment.len > segment::SEGMENT_HEADER_LEN
                && segment.len + frame.len() as u64 > self.options.segment_size
            {
                self.rotate_locked(&mut segment, first_lsn)?;
            }
            let at = *start.get_or_insert(segment.len);
            // Positional writes: after a failed write the next record still goes right after
            // the last whole one, whatever the file offset was left at.
            if let Err(e) = segment.file.write_all_at(frame, segment.len) {
                let error = io_error(&segment.path, e);
                self.cut_back(&mut segment, at, &error.message);
                return Err(KuraError::new(
                    error.code,
                    format!("could not write to the transaction log: {}", error.message),
                )
                .with_hint(
                    "the transaction was rolled back; free space or fix the permissions and retry",
                ));
            }
            segment.len += frame.len() as u64;
            next += 1;
        }
        let last = next.saturating_sub(1);
        if let Some(start) = start {
            self.flusher.state.lock().written = last;
            self.marks.lock().appended(last, segment.len - start);
            self.written.send_replace(last);
        }
        Ok(last)
    }

    /// Cuts off whatever part of an unfinished append reached the file, so the next record
    /// follows the last whole one; if that fails too, the log stops taking records.
    fn cut_back(&self, segment: &mut Segment, to: u64, why: &str) {
        let cut = segment
            .file
            .set_len(to)
            .and_then(|()| segment.file.sync_data());
        match cut {
            Ok(()) => segment.len = to,
            Err(cut_error) => self.fail(format!(
                "{why}; removing the partial record also failed: {cut_error}"
            )),
        }
    }

    /// Starts a new segment for records from `next_lsn` on; the old one is fsynced first.
    /// Nothing happens when the log already holds frames past `next_lsn - 1` (a standby in the
    /// middle of a commit spanning several frames), so a commit never spans two segments.
    pub fn rotate(&self, next_lsn: Lsn) -> Result<()> {
        let mut segment = self.segment.lock();
        if segment.len == segment::SEGMENT_HEADER_LEN || self.written_lsn() + 1 != next_lsn {
            return Ok(());
        }
        self.rotate_locked(&mut segment, next_lsn)
    }

    fn rotate_locked(&self, segment: &mut Segment, next_lsn: Lsn) -> Result<()> {
        if let Err(e) = segment.file.sync_data() {
            let error = io_error(&segment.path, e);
            self.fail(error.message.clone());
            return Err(log_failed(&error.message));
        }
        let fresh = create_segment(&self.options.dir, next_lsn)?;
        self.flusher.state.lock().file = fresh.file.clone();
        *segment = fresh;
        Ok(())
    }

    /// Waits until record `lsn` is on stable storage, asking the flusher for an fsync.
    pub async fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        {
            let mut state = self.flusher.state.lock();
            if state.durable >= lsn {
                return Ok(());
            }
            state.requested = state.requested.max(lsn);
            self.flusher.wake.notify_one();
        }
        let mut rx = self.flusher.durable.subscribe();
        let reached = rx
            .wait_for(|d| d.lsn >= lsn || d.failed.is_some())
            .await
            .map_err(|_| KuraError::internal("the log flusher stopped"))?;
        if reached.lsn >= lsn {
            return Ok(());
        }
        Err(KuraError::new(
            sqlstate::IO_ERROR,
            format!(
                "could not make the commit durable: {}",
                reached.failed.as_deref().unwrap_or("the log failed")
            ),
        )
        .with_hint("the outcome of this transaction is unknown until the server restarts"))
    }

    /// Asks the flusher for an fsync through `lsn` without waiting for it (a standby, which
    /// reports what is durable as it becomes so).
    pub fn request_flush(&self, lsn: Lsn) {
        let mut state = self.flusher.state.lock();
        if state.durable < lsn {
            state.requested = state.requested.max(lsn);
            self.flusher.wake.notify_one();
        }
    }

    /// Follows what the flusher makes durable.
    pub fn subscribe_durable(&self) -> watch::Receiver<Durable> {
        self.flusher.durable.subscribe()
    }

    /// Cuts the newest segment back so that the log ends just before LSN `first` (a standby
    /// promoted in the middle of a commit spanning several frames drops that commit's frames).
    pub fn discard_from(&self, first: Lsn) -> Result<()> {
        let mut segment = self.segment.lock();
        let mut offset = segment::SEGMENT_HEADER_LEN;
        let mut lsn = segment.first_lsn;
        if lsn > first {
            return Err(KuraError::internal(format!(
                "LSN {first} is not in the newest log segment (it starts at {lsn})"
            )));
        }
        let mut header = [0u8; record::FRAME_HEADER_LEN];
        while lsn < first {
            segment
                .file
                .read_exact_at(&mut header, offset)
                .map_err(|e| io_error(&segment.path, e))?;
            let parsed = record::FrameHeader::parse(&header);
            offset += (record::FRAME_HEADER_LEN + parsed.payload_len) as u64;
            lsn += 1;
        }
        segment
            .file
            .set_len(offset)
            .and_then(|()| segment.file.sync_data())
            .map_err(|e| io_error(&segment.path, e))?;
        segment.len = offset;
        let last = first - 1;
        {
            let mut state = self.flusher.state.lock();
            state.written = last;
            state.requested = state.requested.min(last);
            state.durable = state.durable.min(last);
        }
        self.flusher
            .durable
            .send_modify(|d| d.lsn = d.lsn.min(last));
        self.marks.lock().cut_back(last);
        self.written.send_replace(last);
        Ok(())
    }

    /// Makes everything appended so far durable (blocking; for checkpoints and shutdown).
    pub fn sync_now(&self) -> Result<Lsn> {
        let segment = self.segment.lock();
        let written = self.flusher.state.lock().written;
        if let Err(e) = segment.file.sync_data() {
            let error = io_error(&segment.path, e);
            self.fail(error.message.clone());
            return Err(log_failed(&error.message));
        }
        drop(segment);
        self.flusher.advance(written);
        Ok(written)
    }

    /// The newest LSN whose frame is whole in the log (written to the operating system).
    pub fn written_lsn(&self) -> Lsn {
        *self.written.borrow()
    }

    /// Follows [`TxnLog::written_lsn`] as it grows.
    pub fn subscribe_written(&self) -> watch::Receiver<Lsn> {
        self.written.subscribe()
    }

    /// How far record `lsn` is behind the log's end, in bytes and in time.
    pub fn lag_behind(&self, lsn: Lsn) -> marks::Lag {
        self.marks.lock().lag(lsn, std::time::Instant::now())
    }

    /// Wakes every reader following the log (shutdown, or the log's end was cut back).
    pub fn notify_readers(&self) {
        self.written.send_modify(|_| {});
    }

    /// The newest LSN known to be on stable storage.
    pub fn durable_lsn(&self) -> Lsn {
        self.flusher.state.lock().durable
    }

    /// The number of fsyncs the flusher has issued (for statistics and tests).
    pub fn fsync_count(&self) -> u64 {
        self.flusher.state.lock().fsyncs
    }

    pub fn failed(&self) -> Option<Arc<str>> {
        self.flusher.state.lock().failed.clone()
    }

    /// Puts the log in the failed state: every later append is refused until restart.
    pub fn poison(&self, why: String) {
        self.fail(why);
    }

    fn fail(&self, why: String) {
        tracing::error!("transaction log failed, refusing writes until restart: {why}");
        let why: Arc<str> = why.into();
        self.flusher.state.lock().failed = Some(why.clone());
        self.flusher.durable.send_modify(|d| d.failed = Some(why));
    }

    /// Removes the segments whose records all have LSNs at or below `lsn`; never the newest.
    pub fn remove_segments_through(&self, lsn: Lsn) -> Result<usize> {
        let segments = list_segments(&self.options.dir)?;
        let mut removed = 0;
        for pair in segments.windows(2) {
            let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
            if *next_first <= lsn + 1 {
                std::fs::remove_file(path).map_err(|e| io_error(path, e))?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.options.dir)?;
        }
        Ok(removed)
    }

    /// Refuses every later append (shutdown has begun).
    pub fn refuse_appends(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Stops the flusher after a final fsync.
    pub fn close(&self) -> Result<()> {
        let synced = self.sync_now();
        self.flusher.state.lock().stop = true;
        self.flusher.wake.notify_all();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
        synced.map(|_| ())
    }
}

impl Drop for TxnLog {
    fn drop(&mut self) {
        self.flusher.state.lock().stop = true;
        self.flusher.wake.notify_all();
    }
}

impl Flusher {
    fn run(&self, interval: Option<Duration>) {
        loop {
            let (target, file) = {
                let mut state = self.state.lock();
                loop {
                    if state.stop {
                        return;
                    }
                    let pending = state.written > state.durable && state.failed.is_none();
                    if pending && state.requested > state.durable {
                        break;
                    }
                    match interval {
                        Some(period) => {
                            let timed_out = self.wake.wait_for(&mut state, period).timed_out();
                            if timed_out && state.written > state.durable && state.failed.is_none()
                            {
                                break;
                            }
                        }
                        None => self.wake.wait(&mut state),
                    }
                }
                state.fsyncs += 1;
                (state.written, state.file.clone())
            };
            match file.sync_data() {
                Ok(()) => self.advance(target),
                Err(e) => {
                    let why: Arc<str> = format!("fsync of the transaction log failed: {e}").into();
                    tracing::error!("{why}; refusing writes until restart");
                    self.state.lock().failed = Some(why.clone());
                    self.durable.send_modify(|d| d.failed = Some(why));
                }
            }
        }
    }

    fn advance(&self, lsn: Lsn) {
        let mut state = self.state.lock();
        if lsn > state.durable {
            state.durable = lsn;
            drop(state);
            self.durable.send_modify(|d| d.lsn = d.lsn.max(lsn));
        }
    }
}

fn log_failed(why: &str) -> KuraError {
    KuraError::new(
        sqlstate::IO_ERROR,
        format!("the transaction log is unusable, writes are refused: {why}"),
    )
    .with_hint("reads still work; fix the storage problem and restart the server")
}

/// Creates (or replaces) the segment for `first_lsn` with its header, fsynced with its
/// directory.
fn create_segment(dir: &Path, first_lsn: Lsn) -> Result<Segment> {
    let path = dir.join(segment_name(first_lsn));
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    file.write_all(&header_bytes(first_lsn))
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(&path, e))?;
    sync_dir(dir)?;
    Ok(Segment {
        file: Arc::new(file),
        path,
        first_lsn,
        len: segment::SEGMENT_HEADER_LEN,
    })
}

/// The entries of `dir` as `(file name, path)`; none when the directory does not exist.
pub fn dir_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, e)),
    };
    entries
        .map(|entry| {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            Ok((
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            ))
        })
        .collect()
}

/// The files in `dir` named `<prefix><LSN, 20 digits><suffix>`, in LSN order.
pub fn lsn_named_files(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<(Lsn, PathBuf)>> {
    let mut out: Vec<(Lsn, PathBuf)> = dir_entries(dir)?
        .into_iter()
        .filter_map(|(name, path)| {
            let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            let lsn = digits.parse().ok().filter(|_| digits.len() == 20)?;
            Some((lsn, path))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// fsyncs a directory so that files created, renamed or removed in it survive power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use record::{LogRecord, RecordBody};

    pub(super) fn options(dir: &Path, segment_size: u64) -> LogOptions {
        LogOptions {
            dir: dir.to_path_buf(),
            segment_size,
            compress: false,
            sync_interval: None,
        }
    }

    pub(super) fn frame(lsn: Lsn) -> Vec<u8> {
        LogRecord {
            lsn,
            body: RecordBody::Catalog(CatalogChange::DropView {
                database: "public".into(),
                name: format!("view number {lsn}"),
            }),
        }
        .encode(false)
        .unwrap()
    }

    #[tokio::test]
    async fn appended_records_are_scanned_back_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let log = TxnLog::open(options(dir.path(), 200), 1).unwrap();
        for lsn in 1..=20 {
            log.append(lsn, &frame(lsn)).unwrap();
        }
        log.wait_durable(20).await.unwrap();
        assert!(log.fsync_count() >= 1);
        log.close().unwrap();
        let segments = list_segments(dir.path()).unwrap();
        assert!(segments.len() > 1, "segments rotate at 200 bytes");
        let mut seen = Vec::new();
        for (first, path) in &segments {
            let scan = segment::scan_segment(path, *first, |r| {
                seen.push(r.lsn());
                Ok(())
            })
            .unwrap();
            assert_eq!(scan.damage, None);
        }
        assert_eq!(seen, (1..=20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn segments_behind_a_checkpoint_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let log = TxnLog::open(options(dir.path(), 1 << 20), 1).unwrap();
        for lsn in 1..=10 {
            log.append(lsn, &frame(lsn)).unwrap();
            if lsn % 3 == 0 {
                log.rotate(lsn + 1).unwrap();
            }
        }
        assert_eq!(log.remove_segments_through(6).unwrap(), 2);
        let firsts: Vec<Lsn> = list_segments(dir.path())
            .unwrap()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(firsts, vec![7, 10]);
        log.close().unwrap();
    }

    #[test]
    fn a_failed_write_leaves_no_gap_before_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = TxnLog::open(options(dir.path(), 1 << 20), 1).unwrap();
        log.append(1, &frame(1)).unwrap();
        // Simulate a partial write that left the file longer and its offset further on.
        let path = dir.path().join(segment_name(1));
        let good = std::fs::metadata(&path).unwrap().len();
        {
            let segment = log.segment.lock();
            segment.file.write_all_at(b"partial", good).unwrap();
            segment.file.set_len(good).unwrap();
        }
        log.append(2, &frame(2)).unwrap();
        log.close().unwrap();
        let scan = segment::scan_segment(&path, 1, |_| Ok(())).unwrap();
        assert_eq!((scan.records, scan.damage), (2, None));
    }

    #[test]
    fn a_torn_tail_is_reported_with_its_lsn() {
        let dir = tempfile::tempdir().unwrap();
        let log = TxnLog::open(options(dir.path(), 1 << 20), 1).unwrap();
        for lsn in 1..=3 {
            log.append(lsn, &frame(lsn)).unwrap();
        }
        log.close().unwrap();
        let path = dir.path().join(segment_name(1));
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let scan = segment::scan_segment(&path, 1, |_| Ok(())).unwrap();
        assert_eq!(scan.records, 2);
        assert_eq!(scan.damage, Some((segment::Damage::Torn, 3)));
    }

    fn part_frame(lsn: Lsn, rows: i64, last: bool) -> Vec<u8> {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(0..rows))],
        )
        .unwrap();
        let change = record::PartitionChange {
            table: 1,
            partition: crate::storage::PartitionKey {
                interval: 0,
                bucket: 0,
            },
            deleted: Vec::new(),
            first_serial: 0,
            inserted: vec![batch.clone()],
        };
        let ipc = record::encode_batches(&[batch]).unwrap();
        let role = if last {
            record::CommitFrame::Last(Some(lsn as i64))
        } else {
            record::CommitFrame::Part
        };
        record::encode_commit(lsn, &[change], &[ipc], false, role).unwrap()
    }

    fn scan_all(dir: &Path) -> (Vec<(Lsn, usize)>, Option<segment::Damage>, u64) {
        let mut seen = Vec::new();
        let (first, path) = list_segments(dir).unwrap().remove(0);
        let scan = segment::scan_segment(&path, first, |scanned| {
            let lsn = scanned.lsn();
            let rows: usize = match scanned {
                segment::Scanned::Record(LogRecord {
                    body: RecordBody::Commit(changes),
                    ..
                })
                | segment::Scanned::CommitPart { changes, .. } => {
                    changes.iter().map(|c| c.inserted_rows()).sum()
                }
                segment::Scanned::Record(_) => return Ok(()),
            };
            match seen.last_mut() {
                Some((last, sum)) if *last == lsn => *sum += rows,
                _ => seen.push((lsn, rows)),
            }
            Ok(())
        })
        .unwrap();
        (seen, scan.damage.map(|d| d.0), scan.valid_len)
    }

    #[tokio::test]
    async fn a_commit_spanning_frames_is_read_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let log = TxnLog::open(options(dir.path(), 1 << 20), 1).unwrap();
        log.append(1, &frame(1)).unwrap();
        let frames = [
            part_frame(2, 10, false),
            part_frame(3, 20, false),
            part_frame(4, 5, true),
        ];
        let last = log.append_frames(2, frames.iter().map(Ok)).unwrap();
        assert_eq!(last, 4);
        log.append(5, &part_frame(5, 7, true)).unwrap();
        log.wait_durable(5).await.unwrap();
        let whole = {
            let (seen, damage, valid_len) = scan_all(dir.path());
            assert_eq!(
                seen,
                vec![(4, 35), (5, 7)],
                "parts join into the last frame's commit"
            );
            assert_eq!(damage, None);
            valid_len
        };
        // The log ends after the first two frames of a commit: it never happened.
        let (_, path) = list_segments(dir.path()).unwrap().remove(0);
        let two_parts = whole - (frames[2].len() + part_frame(5, 7, true).len()) as u64;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(two_parts)
            .unwrap();
        let (seen, damage, valid_len) = scan_all(dir.path());
        assert_eq!(seen, Vec::<(Lsn, usize)>::new());
        assert_eq!(damage, Some(segment::Damage::IncompleteCommit));
        let first_part_start = two_parts - (frames[0].len() + frames[1].len()) as u64;
        assert_eq!(
            valid_len, first_part_start,
            "the commit's frames are cut as a whole"
        );
        // And the same with its second frame torn.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(two_parts - 3)
            .unwrap();
        let (_, damage, valid_len) = scan_all(dir.path());
        assert_eq!(damage, Some(segment::Damage::Torn));
        assert_eq!(valid_len, first_part_start);
    }

    #[test]
    fn a_failed_frame_leaves_nothing_of_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let log = TxnLog::open(options(dir.path(), 1 << 20), 1).unwrap();
        log.append(1, &frame(1)).unwrap();
        let frames: Vec<Result<Vec<u8>>> = vec![
            Ok(part_frame(2, 10, false)),
            Err(KuraError::internal("encoding failed")),
        ];
        assert!(log.append_frames(2, frames).is_err());
        log.append(2, &frame(2)).unwrap();
        let (first, path) = list_segments(dir.path()).unwrap().remove(0);
        let mut lsns = Vec::new();
        let scan = segment::scan_segment(&path, first, |r| {
            lsns.push(r.lsn());
            Ok(())
        })
        .unwrap();
        assert_eq!(lsns, vec![1, 2]);
        assert_eq!(scan.damage, None);
    }
}
