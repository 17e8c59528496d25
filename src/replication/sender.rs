//! The primary's side of a replication connection: decide how a standby catches up (the log
//! from its next LSN, or a checkpoint copy first), then ship log frames as they are written,
//! keepalives every second, and record the standby's acknowledgements.
//!
//! Invariants: a standby is streamed to only when its log is a prefix of ours (same epoch
//! history, nothing past our end); frames go out in LSN order, whole, only once written here;
//! a standby that shows us a newer epoch fences this server; a silent standby is dropped after
//! [`STANDBY_SILENCE`].

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::epoch::{EpochStart, Lineage};
use super::hub::{ReplicationHub, Role};
use super::protocol::{CopyHeader, Message};
use crate::checkpoint::DATA_DIR;
use crate::checkpoint::manifest::{Manifest, list_manifests};
use crate::error::{KuraError, Result, sqlstate};
use crate::query::Engine;
use crate::wal::Lsn;
use crate::wal::tail::LogTail;

/// A standby that has sent nothing for this long is disconnected.
pub const STANDBY_SILENCE: Duration = Duration::from_secs(60);
const KEEPALIVE: Duration = Duration::from_secs(1);
const MESSAGE_BUDGET: usize = 1 << 20;
const COPY_PIECE: usize = 256 << 10;

/// Who is asking to stream, and from where.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    pub next: Lsn,
    pub epoch: EpochStart,
    pub user: String,
    pub name: String,
    pub addr: Option<std::net::SocketAddr>,
}

/// How a standby will catch up.
#[derive(Debug)]
pub enum Plan {
    /// From the log, starting at its next LSN.
    Stream(LogTail),
    /// From a copy of the newest checkpoint; it restarts and asks again afterwards.
    Copy(CheckpointCopy),
}

/// The files of one checkpoint, opened (so a newer checkpoint removing them cannot cut the
/// copy short).
#[derive(Debug)]
pub struct CheckpointCopy {
    header: CopyHeader,
    files: Vec<(String, File)>,
}

/// Checks that the standby may follow us and chooses how it catches up. A standby with a
/// newer epoch fences this server.
pub async fn plan(
    engine: &Arc<Engine>,
    hub: &Arc<ReplicationHub>,
    request: &StreamRequest,
) -> Result<Plan> {
    let log = engine.txns.log().cloned().ok_or_else(|| {
        KuraError::unsupported("replication needs a server with a data directory")
    })?;
    let state = hub.node_state();
    let last = request.next.saturating_sub(1);
    match state.lineage(request.epoch, last, log.written_lsn()) {
        Lineage::NewerThanUs(theirs) => {
            let why = format!(
                "standby \"{}\" has seen epoch {} (from LSN {}), newer than this server's \
                 epoch {}: another server was promoted",
                request.name,
                theirs.epoch,
                theirs.start,
                state.current().epoch
            );
            if !hub.is_standby() {
                hub.set_role(Role::Fenced {
                    why: why.clone(),
                    until_standbys_return: false,
                });
            }
            Err(
                KuraError::new(sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE, why)
                    .with_hint("re-attach this server as a standby of the promoted one"),
            )
        }
        Lineage::Diverged(why) => {
            tracing::warn!(
                standby = %request.name,
                "standby's log has diverged ({why}): sending it a checkpoint copy"
            );
            Ok(Plan::Copy(checkpoint_copy(engine, hub).await?))
        }
        Lineage::Prefix => {
            let dir = log.options().dir.clone();
            let next = request.next;
            match tokio::task::spawn_blocking(move || LogTail::open(&dir, next))
                .await
                .map_err(|e| KuraError::internal(format!("log reader failed: {e}")))??
            {
                Some(tail) => Ok(Plan::Stream(tail)),
                None => {
                    tracing::info!(
                        standby = %request.name,
                        next,
                        "the log no longer holds what the standby needs: sending a checkpoint copy"
                    );
                    Ok(Plan::Copy(checkpoint_copy(engine, hub).await?))
                }
            }
        }
    }
}

/// Opens the files of the newest checkpoint (taking one when there is none).
async fn checkpoint_copy(
    engine: &Arc<Engine>,
    hub: &Arc<ReplicationHub>,
) -> Result<CheckpointCopy> {
    let dir = engine
        .checkpointer()
        .map(|c| c.options().dir.clone())
        .ok_or_else(|| {
            KuraError::unsupported("replication needs a server with a data directory")
        })?;
    if list_manifests(&dir)?.is_empty() {
        engine.checkpoint().await?;
    }
    let state = hub.node_state();
    tokio::task::spawn_blocking(move || open_checkpoint(dir, state))
        .await
        .map_err(|e| KuraError::internal(format!("checkpoint copy failed: {e}")))?
}

fn open_checkpoint(dir: PathBuf, state: super::epoch::NodeState) -> Result<CheckpointCopy> {
    let (lsn, manifest_path) = list_manifests(&dir)?
        .into_iter()
        .next()
        .ok_or_else(|| KuraError::internal("no checkpoint to copy"))?;
    let manifest = Manifest::read(&manifest_path)?;
    let mut names = vec![
        manifest_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    ];
    names.extend(
        manifest
            .partitions
            .iter()
            .map(|p| format!("{DATA_DIR}/{}", p.file)),
    );
    let mut files = Vec::with_capacity(names.len());
    let mut listed = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let file = File::open(&path).map_err(|e| crate::wal::segment::io_error(&path, e))?;
        let len = file
            .metadata()
            .map_err(|e| crate::wal::segment::io_error(&path, e))?
            .len();
        listed.push((name.clone(), len));
        files.push((name, file));
    }
    Ok(CheckpointCopy {
        header: CopyHeader {
            lsn,
            files: listed,
            state,
        },
        files,
    })
}

/// Removes a standby from the active list when its connection ends, however it ends.
struct Registration<'a> {
    hub: &'a ReplicationHub,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.hub.unregister_standby(self.id);
    }
}

/// Runs the stream until the standby goes away, the server stops, or an error.
pub async fn serve<S>(
    socket: &mut S,
    engine: &Arc<Engine>,
    hub: &Arc<ReplicationHub>,
    request: StreamRequest,
    plan: Plan,
) -> Result<()>
where
    S: Stream<Item = PgWireResult<PgWireFrontendMessage>>
        + Sink<PgWireBackendMessage, Error = std::io::Error>
        + Unpin,
{
    let log = engine
        .txns
        .log()
        .cloned()
        .ok_or_else(|| KuraError::internal("no transaction log"))?;
    let id = hub.register_standby(&request.name, &request.user, request.addr, request.next)?;
    let _registration = Registration { hub, id };
    let mut tail = match plan {
        Plan::Stream(tail) => tail,
        Plan::Copy(copy) => {
            hub.update_standby(id, |entry| entry.state = "copying");
            send_copy(socket, copy).await?;
            // The standby installs it, restarts and comes back with a new request.
            while let Some(message) = socket.next().await {
                if matches!(message, Ok(PgWireFrontendMessage::CopyDone(_)) | Err(_)) {
                    break;
                }
            }
            return Ok(());
        }
    };
    tracing::info!(standby = %request.name, from = request.next, "standby streaming");
    let mut written = log.subscribe_written();
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    let mut last_heard = Instant::now();
    let mut buffer = Vec::new();
    loop {
        let through = *written.borrow_and_update();
        while tail.next_lsn() <= through {
            buffer.clear();
            let first = tail.next_lsn();
            tokio::task::block_in_place(|| tail.read(through, MESSAGE_BUDGET, &mut buffer))?;
            let message = Message::Frames {
                first,
                bytes: Bytes::copy_from_slice(&buffer),
            };
            send(socket, &message).await?;
            let sent = tail.next_lsn() - 1;
            hub.update_standby(id, |entry| {
                entry.sent = sent;
                entry.state = "catchup";
            });
        }
        // Everything written has been sent.
        hub.update_standby(id, |entry| entry.state = "streaming");
        socket
            .flush()
            .await
            .map_err(|e| KuraError::new(sqlstate::CONNECTION_EXCEPTION, e.to_string()))?;
        tokio::select! {
            changed = written.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            message = socket.next() => {
                last_heard = Instant::now();
                match message {
                    Some(Ok(PgWireFrontendMessage::CopyData(data))) => {
                        if let Message::Status(progress) = Message::decode(&data.data)? {
                            hub.record_progress(id, progress, log.written_lsn());
                        }
                    }
                    Some(Ok(PgWireFrontendMessage::CopyDone(_) | PgWireFrontendMessage::Terminate(_)))
                    | None => return Ok(()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(KuraError::new(sqlstate::PROTOCOL_VIOLATION, e.to_string())),
                }
            }
            _ = keepalive.tick() => {
                if last_heard.elapsed() > STANDBY_SILENCE {
                    tracing::warn!(standby = %request.name, "standby silent for {STANDBY_SILENCE:?}: disconnecting it");
                    return Ok(());
                }
                let message = Message::Keepalive {
                    written: log.written_lsn(),
                    epoch: hub.current_epoch().epoch,
                    reply: true,
                };
                send(socket, &message).await?;
            }
        }
    }
}

async fn send<S>(socket: &mut S, message: &Message) -> Result<()>
where
    S: Sink<PgWireBackendMessage, Error = std::io::Error> + Unpin,
{
    socket
        .feed(PgWireBackendMessage::CopyData(CopyData::new(
            message.encode()?,
        )))
        .await
        .map_err(|e| KuraError::new(sqlstate::CONNECTION_EXCEPTION, e.to_string()))
}

async fn send_copy<S>(socket: &mut S, copy: CheckpointCopy) -> Result<()>
where
    S: Sink<PgWireBackendMessage, Error = std::io::Error> + Unpin,
{
    tracing::info!(
        lsn = copy.header.lsn,
        files = copy.files.len(),
        "sending a checkpoint copy"
    );
    send(socket, &Message::CopyBegin(copy.header)).await?;
    let mut piece = vec![0u8; COPY_PIECE];
    for (name, file) in copy.files {
        let mut offset = 0u64;
        loop {
            let read = tokio::task::block_in_place(|| file.read_at(&mut piece, offset))
                .map_err(|e| KuraError::io(format!("{name}: {e}"), &e))?;
            if read == 0 {
                break;
            }
            offset += read as u64;
            let message = Message::CopyFile {
                name: name.clone(),
                bytes: Bytes::copy_from_slice(&piece[..read]),
            };
            send(socket, &message).await?;
        }
    }
    send(socket, &Message::CopyEnd).await?;
    socket
        .flush()
        .await
        .map_err(|e| KuraError::new(sqlstate::CONNECTION_EXCEPTION, e.to_string()))
}
