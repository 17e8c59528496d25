//! A standby's log apply: frames received from the primary are checked, appended to the
//! standby's own log (the same LSNs, so it restarts from its own log), then applied with the
//! code recovery uses.
//!
//! Invariants: frames are appended only when their LSNs continue the log without a gap and
//! every one of them passes its checksum; a commit spanning several frames is applied only
//! once its last frame is in, reading its earlier frames back from the log one at a time;
//! readers see a commit only once all of it is applied (the visible LSN moves at its end).

use std::sync::Arc;

use crate::error::{KuraError, Result, sqlstate};
use crate::query::Engine;
use crate::wal::record::{Decoded, FRAME_HEADER_LEN, FrameHeader, MAX_PAYLOAD_LEN};
use crate::wal::tail::LogTail;
use crate::wal::{CatalogChange, LogRecord, Lsn, RecordBody, TxnLog};

#[derive(Debug)]
pub struct Applier {
    engine: Arc<Engine>,
    log: Arc<TxnLog>,
    /// The first LSN of a commit whose later frames have not arrived yet.
    pending: Option<Lsn>,
}

impl Applier {
    pub fn new(engine: Arc<Engine>) -> Result<Applier> {
        let log = engine
            .txns
            .log()
            .cloned()
            .ok_or_else(|| KuraError::internal("a standby needs its transaction log"))?;
        Ok(Applier {
            engine,
            log,
            pending: None,
        })
    }

    pub fn log(&self) -> Arc<TxnLog> {
        self.log.clone()
    }

    /// The newest LSN applied (visible to readers).
    pub fn applied(&self) -> Lsn {
        self.engine.txns.visible()
    }

    /// The LSN the next frame must carry.
    pub fn next_lsn(&self) -> Lsn {
        self.log.written_lsn() + 1
    }

    /// The first LSN of an incomplete commit at the end of the log, if any.
    pub fn pending(&self) -> Option<Lsn> {
        self.pending
    }

    /// Checks, appends and applies the frames in `bytes`, the first of which has LSN `first`.
    pub fn receive(&mut self, first: Lsn, bytes: &[u8]) -> Result<()> {
        let expected = self.next_lsn();
        if first != expected {
            return Err(stream_error(format!(
                "the primary sent LSN {first} where LSN {expected} was due"
            )));
        }
        let frames = split_frames(first, bytes)?;
        let may_rotate = self.pending.is_none();
        self.log.append_received(
            first,
            frames.iter().map(|(range, _)| Ok(&bytes[range.clone()])),
            may_rotate,
        )?;
        for (_, decoded) in frames {
            self.apply(decoded)?;
        }
        Ok(())
    }

    fn apply(&mut self, decoded: Decoded) -> Result<()> {
        let engine = &self.engine;
        let tables = |id| engine.table_by_id(id);
        match decoded {
            Decoded::CommitPart(lsn, _) => {
                self.pending.get_or_insert(lsn);
            }
            Decoded::Record(LogRecord {
                lsn,
                body: RecordBody::Commit(changes),
            }) => {
                if let Some(first) = self.pending.take() {
                    self.apply_parts(first, lsn)?;
                }
                engine.txns.replay_changes(lsn, &changes, tables)?;
                engine.txns.replayed(lsn);
            }
            Decoded::Record(LogRecord {
                lsn,
                body: RecordBody::Catalog(change),
            }) => {
                if self.pending.is_some() {
                    return Err(stream_error(format!(
                        "catalog change at LSN {lsn} inside a commit spanning several frames"
                    )));
                }
                engine
                    .txns
                    .replay_catalog(lsn, || engine.apply_catalog_change(&change, lsn))?;
                if let CatalogChange::NewEpoch { epoch } = change {
                    tracing::info!(epoch, lsn, "the primary started a new epoch");
                }
            }
        }
        Ok(())
    }

    /// Applies the earlier frames (`first` up to `last - 1`) of the commit whose last frame is
    /// `last`, read back from the log.
    fn apply_parts(&self, first: Lsn, last: Lsn) -> Result<()> {
        let engine = &self.engine;
        let mut tail = LogTail::open(&self.log.options().dir, first)?
            .ok_or_else(|| KuraError::internal(format!("LSN {first} is not in the log")))?;
        let mut buffer = Vec::new();
        while tail.next_lsn() < last {
            buffer.clear();
            tail.read(tail.next_lsn(), 0, &mut buffer)?;
            let lsn = tail.next_lsn() - 1;
            for (_, decoded) in split_frames(lsn, &buffer)? {
                let Decoded::CommitPart(_, changes) = decoded else {
                    return Err(stream_error(format!("LSN {lsn} is not part of a commit")));
                };
                engine
                    .txns
                    .replay_changes(last, &changes, |id| engine.table_by_id(id))?;
            }
        }
        Ok(())
    }
}

/// The frames in `bytes`: each one's byte range and decoded content, checked to carry LSNs
/// `first`, `first + 1`, ...
fn split_frames(first: Lsn, bytes: &[u8]) -> Result<Vec<(std::ops::Range<usize>, Decoded)>> {
    let mut frames = Vec::new();
    let mut at = 0;
    let mut lsn = first;
    while at < bytes.len() {
        let header: &[u8; FRAME_HEADER_LEN] = bytes
            .get(at..at + FRAME_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| stream_error("a frame header is cut short".into()))?;
        let header = FrameHeader::parse(header);
        let end = at + FRAME_HEADER_LEN + header.payload_len;
        if header.payload_len > MAX_PAYLOAD_LEN || end > bytes.len() {
            return Err(stream_error(format!("frame {lsn} is cut short")));
        }
        if header.lsn != lsn {
            return Err(stream_error(format!(
                "frame {} arrived where {lsn} was due",
                header.lsn
            )));
        }
        let decoded = LogRecord::decode(&header, &bytes[at + FRAME_HEADER_LEN..end])?;
        frames.push((at..end, decoded));
        at = end;
        lsn += 1;
    }
    Ok(frames)
}

fn stream_error(message: String) -> KuraError {
    KuraError::new(
        sqlstate::PROTOCOL_VIOLATION,
        format!("replication stream: {message}"),
    )
}
