//! The replication protocol: the commands a standby sends on a replication connection and the
//! messages both sides exchange inside the CopyBoth stream that `START_REPLICATION` opens.
//!
//! Commands (simple query, PostgreSQL's names where they exist):
//! - `IDENTIFY_SYSTEM`: one row (systemid, timeline = current epoch, xlogpos = last written
//!   LSN, dbname NULL).
//! - `START_REPLICATION <next LSN> EPOCH <epoch> START <LSN the epoch began at>`.
//!
//! Stream messages (the first byte names them; integers are little-endian u64):
//! - primary → standby: `w` first LSN + whole log frames; `k` keepalive (written LSN, epoch,
//!   reply requested); `c` a checkpoint copy begins (JSON [`CopyHeader`]); `f` a piece of one
//!   of its files (name length u16, name, bytes); `e` the copy is complete.
//! - standby → primary: `r` status (received, flushed and applied LSN).
//!
//! Invariant: decoding never panics and never trusts a length it has not checked against the
//! message.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::epoch::{EpochStart, NodeState};
use crate::error::{KuraError, Result, sqlstate};
use crate::wal::Lsn;

/// A replication command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    IdentifySystem,
    StartReplication { next: Lsn, epoch: EpochStart },
}

impl Command {
    pub fn parse(text: &str) -> Result<Command> {
        let text = text.trim().trim_end_matches(';');
        let words: Vec<&str> = text.split_whitespace().collect();
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let number = |i: usize| -> Result<u64> {
            words
                .get(i)
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| syntax(text))
        };
        match upper
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["IDENTIFY_SYSTEM"] => Ok(Command::IdentifySystem),
            ["START_REPLICATION", _, "EPOCH", _, "START", _] => Ok(Command::StartReplication {
                next: number(1)?,
                epoch: EpochStart {
                    epoch: number(3)?,
                    start: number(5)?,
                },
            }),
            [first, ..]
                if matches!(
                    *first,
                    "START_REPLICATION"
                        | "BASE_BACKUP"
                        | "CREATE_REPLICATION_SLOT"
                        | "DROP_REPLICATION_SLOT"
                        | "TIMELINE_HISTORY"
                        | "READ_REPLICATION_SLOT"
                ) =>
            {
                Err(KuraError::unsupported(format!(
                    "replication command {first} in this form: Kura streams its own log \
                     (START_REPLICATION <lsn> EPOCH <epoch> START <lsn>), not PostgreSQL's WAL"
                )))
            }
            _ => Err(syntax(text)),
        }
    }

    pub fn to_sql(&self) -> String {
        match self {
            Command::IdentifySystem => "IDENTIFY_SYSTEM".into(),
            Command::StartReplication { next, epoch } => format!(
                "START_REPLICATION {next} EPOCH {} START {}",
                epoch.epoch, epoch.start
            ),
        }
    }
}

fn syntax(text: &str) -> KuraError {
    KuraError::new(
        sqlstate::SYNTAX_ERROR,
        format!("not a replication command: {text}"),
    )
    .with_hint("a replication connection accepts IDENTIFY_SYSTEM and START_REPLICATION")
}

/// What a checkpoint copy holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyHeader {
    /// The checkpoint's LSN: the log streams on from the next one.
    pub lsn: Lsn,
    /// Files relative to the checkpoint directory, with their lengths.
    pub files: Vec<(String, u64)>,
    /// The primary's epoch history, which the standby adopts.
    pub state: NodeState,
}

/// A message inside the replication stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Frames {
        first: Lsn,
        bytes: Bytes,
    },
    Keepalive {
        written: Lsn,
        epoch: u64,
        reply: bool,
    },
    CopyBegin(CopyHeader),
    CopyFile {
        name: String,
        bytes: Bytes,
    },
    CopyEnd,
    Status(StandbyProgress),
}

/// How far a standby has got: received (written to its log), flushed (fsynced) and applied
/// (visible to its readers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StandbyProgress {
    pub received: Lsn,
    pub flushed: Lsn,
    pub applied: Lsn,
}

impl Message {
    pub fn encode(&self) -> Result<Bytes> {
        let mut out = BytesMut::new();
        match self {
            Message::Frames { first, bytes } => {
                out.put_u8(b'w');
                out.put_u64_le(*first);
                out.put_slice(bytes);
            }
            Message::Keepalive {
                written,
                epoch,
                reply,
            } => {
                out.put_u8(b'k');
                out.put_u64_le(*written);
                out.put_u64_le(*epoch);
                out.put_u8(u8::from(*reply));
            }
            Message::CopyBegin(header) => {
                out.put_u8(b'c');
                let json = serde_json::to_vec(header).map_err(|e| {
                    KuraError::internal(format!("cannot encode a copy header: {e}"))
                })?;
                out.put_slice(&json);
            }
            Message::CopyFile { name, bytes } => {
                out.put_u8(b'f');
                let len = u16::try_from(name.len())
                    .map_err(|_| KuraError::internal(format!("file name too long: {name}")))?;
                out.put_u16_le(len);
                out.put_slice(name.as_bytes());
                out.put_slice(bytes);
            }
            Message::CopyEnd => out.put_u8(b'e'),
            Message::Status(progress) => {
                out.put_u8(b'r');
                out.put_u64_le(progress.received);
                out.put_u64_le(progress.flushed);
                out.put_u64_le(progress.applied);
            }
        }
        Ok(out.freeze())
    }

    pub fn decode(data: &Bytes) -> Result<Message> {
        let Some((&kind, rest)) = data.split_first() else {
            return Err(bad("an empty message"));
        };
        let body = data.slice(1..);
        let u64_at = |at: usize| -> Result<u64> {
            rest.get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
                .ok_or_else(|| bad("a short message"))
        };
        match kind {
            b'w' => Ok(Message::Frames {
                first: u64_at(0)?,
                bytes: body.slice(8.min(body.len())..),
            }),
            b'k' => Ok(Message::Keepalive {
                written: u64_at(0)?,
                epoch: u64_at(8)?,
                reply: rest.get(16).copied().unwrap_or(0) != 0,
            }),
            b'c' => serde_json::from_slice(rest)
                .map(Message::CopyBegin)
                .map_err(|e| bad(&format!("a bad copy header ({e})"))),
            b'f' => {
                let len = rest
                    .get(..2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
                    .ok_or_else(|| bad("a short file piece"))?;
                let name = rest
                    .get(2..2 + len)
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .ok_or_else(|| bad("a bad file name"))?
                    .to_string();
                Ok(Message::CopyFile {
                    name,
                    bytes: body.slice(2 + len..),
                })
            }
            b'e' => Ok(Message::CopyEnd),
            b'r' => Ok(Message::Status(StandbyProgress {
                received: u64_at(0)?,
                flushed: u64_at(8)?,
                applied: u64_at(16)?,
            })),
            other => Err(bad(&format!("an unknown message kind {:?}", other as char))),
        }
    }
}

fn bad(what: &str) -> KuraError {
    KuraError::new(
        sqlstate::PROTOCOL_VIOLATION,
        format!("replication stream: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_print() {
        let start = Command::StartReplication {
            next: 42,
            epoch: EpochStart { epoch: 1, start: 7 },
        };
        assert_eq!(Command::parse(&start.to_sql()).unwrap(), start);
        assert_eq!(
            Command::parse("identify_system;").unwrap(),
            Command::IdentifySystem
        );
        assert_eq!(
            Command::parse("START_REPLICATION 0/0").unwrap_err().code,
            sqlstate::FEATURE_NOT_SUPPORTED
        );
        assert_eq!(
            Command::parse("SELECT 1").unwrap_err().code,
            sqlstate::SYNTAX_ERROR
        );
        assert!(Command::parse("START_REPLICATION x EPOCH 1 START 1").is_err());
    }

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let messages = [
            Message::Frames {
                first: 9,
                bytes: Bytes::from_static(b"frames"),
            },
            Message::Keepalive {
                written: 5,
                epoch: 2,
                reply: true,
            },
            Message::CopyBegin(CopyHeader {
                lsn: 3,
                files: vec![("manifest-3".into(), 10)],
                state: NodeState::default(),
            }),
            Message::CopyFile {
                name: "data/x.kpart".into(),
                bytes: Bytes::from_static(b"abc"),
            },
            Message::CopyEnd,
            Message::Status(StandbyProgress {
                received: 3,
                flushed: 2,
                applied: 1,
            }),
        ];
        for message in messages {
            assert_eq!(
                Message::decode(&message.encode().unwrap()).unwrap(),
                message
            );
        }
        for garbage in [&b""[..], b"w", b"k\x01", b"f\xff\xff", b"r12", b"z", b"c{"] {
            assert!(Message::decode(&Bytes::copy_from_slice(garbage)).is_err());
        }
    }
}
