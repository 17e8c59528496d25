//! Epochs: every promotion starts a new epoch with a logged record, and each node keeps the
//! history of epochs it has followed (`<data>/replication.json`), so that two nodes can tell
//! whether one's log is a prefix of the other's.
//!
//! Invariants: the history is ordered by epoch and by start LSN; epoch 0 starts at LSN 1; the
//! file is replaced atomically (temporary file, fsync, rename, directory fsync); a standby
//! follows a primary only when its current epoch is in the primary's history and it holds no
//! record past the point where the primary's next epoch began.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{KuraError, Result, sqlstate};
use crate::wal::Lsn;
use crate::wal::segment::io_error;
use crate::wal::sync_dir;

pub const STATE_FILE: &str = "replication.json";

/// Where an epoch begins: the LSN of its first record (for a promotion, the record that
/// starts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochStart {
    pub epoch: u64,
    pub start: Lsn,
}

impl EpochStart {
    pub const FIRST: EpochStart = EpochStart { epoch: 0, start: 1 };
}

/// What a node remembers about replication across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub epochs: Vec<EpochStart>,
    /// The standbys (by name) that have followed this node as its primary: such a primary
    /// restarts fenced until all of them are back (see [`super::Role::Fenced`]).
    #[serde(default)]
    pub known_standbys: std::collections::BTreeSet<String>,
    /// Why an administrator fenced this primary (`kura_fence()`), until a promotion here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced: Option<String>,
}

impl Default for NodeState {
    fn default() -> Self {
        NodeState {
            epochs: vec![EpochStart::FIRST],
            known_standbys: Default::default(),
            fenced: None,
        }
    }
}

/// Whether a standby may follow this node's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lineage {
    /// Its log is a prefix of ours: stream from its next LSN.
    Prefix,
    /// It holds records ours does not: it must start over from a checkpoint copy.
    Diverged(String),
    /// It has seen a newer epoch than ours: we are a deposed primary.
    NewerThanUs(EpochStart),
}

impl NodeState {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(STATE_FILE)
    }

    /// The state in `data_dir`, or the initial one when there is none yet.
    pub fn load(data_dir: &Path) -> Result<NodeState> {
        let path = Self::path(data_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(NodeState::default()),
            Err(e) => return Err(io_error(&path, e)),
        };
        let state: NodeState = serde_json::from_str(&text).map_err(|e| {
            KuraError::new(
                sqlstate::DATA_CORRUPTED,
                format!("{} is damaged: {e}", path.display()),
            )
        })?;
        if state.epochs.is_empty() || !state.epochs.is_sorted_by_key(|e| (e.epoch, e.start)) {
            return Err(KuraError::new(
                sqlstate::DATA_CORRUPTED,
                format!("{} holds no valid epoch history", path.display()),
            ));
        }
        Ok(state)
    }

    pub fn save(&self, data_dir: &Path) -> Result<()> {
        let path = Self::path(data_dir);
        let tmp = data_dir.join(format!("{STATE_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| KuraError::internal(format!("cannot encode the epoch history: {e}")))?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .map_err(|e| io_error(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
        sync_dir(data_dir)
    }

    pub fn current(&self) -> EpochStart {
        self.epochs.last().copied().unwrap_or(EpochStart::FIRST)
    }

    /// Records that `start` began (a replayed or received epoch record); false when it was
    /// already known.
    pub fn note_epoch(&mut self, start: EpochStart) -> Result<bool> {
        let current = self.current();
        if self.epochs.contains(&start) {
            return Ok(false);
        }
        if start.epoch <= current.epoch || start.start <= current.start {
            return Err(KuraError::new(
                sqlstate::DATA_CORRUPTED,
                format!(
                    "epoch {} starting at LSN {} does not follow epoch {} starting at LSN {}",
                    start.epoch, start.start, current.epoch, current.start
                ),
            ));
        }
        self.epochs.push(start);
        Ok(true)
    }

    /// Whether a standby whose newest record is `standby_last`, in epoch `standby`, may
    /// follow this node, whose log ends at `our_last`.
    pub fn lineage(&self, standby: EpochStart, standby_last: Lsn, our_last: Lsn) -> Lineage {
        let ours = self.current();
        if standby.epoch > ours.epoch {
            return Lineage::NewerThanUs(standby);
        }
        if !self.epochs.contains(&standby) {
            return Lineage::Diverged(format!(
                "its epoch {} starting at LSN {} is not in this server's history",
                standby.epoch, standby.start
            ));
        }
        if let Some(next) = self.epochs.iter().find(|e| e.epoch > standby.epoch)
            && standby_last >= next.start
        {
            return Lineage::Diverged(format!(
                "it holds records up to LSN {standby_last} of epoch {}, which ended here at LSN {}",
                standby.epoch,
                next.start - 1
            ));
        }
        if standby_last > our_last {
            return Lineage::Diverged(format!(
                "it holds records up to LSN {standby_last}, this server's log ends at LSN {our_last}"
            ));
        }
        Lineage::Prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(starts: &[(u64, Lsn)]) -> NodeState {
        NodeState {
            epochs: starts
                .iter()
                .map(|&(epoch, start)| EpochStart { epoch, start })
                .collect(),
            known_standbys: Default::default(),
            fenced: None,
        }
    }

    #[test]
    fn a_standby_follows_only_a_log_its_own_is_a_prefix_of() {
        let primary = history(&[(0, 1), (1, 100)]);
        let e0 = EpochStart::FIRST;
        let e1 = EpochStart {
            epoch: 1,
            start: 100,
        };
        assert_eq!(primary.lineage(e0, 99, 150), Lineage::Prefix);
        assert_eq!(primary.lineage(e1, 150, 150), Lineage::Prefix);
        assert!(matches!(
            primary.lineage(e0, 100, 150),
            Lineage::Diverged(_)
        ));
        assert!(matches!(
            primary.lineage(e1, 151, 150),
            Lineage::Diverged(_)
        ));
        let elsewhere = EpochStart {
            epoch: 1,
            start: 90,
        };
        assert!(matches!(
            primary.lineage(elsewhere, 95, 150),
            Lineage::Diverged(_)
        ));
        let newer = EpochStart {
            epoch: 2,
            start: 120,
        };
        assert_eq!(
            primary.lineage(newer, 130, 150),
            Lineage::NewerThanUs(newer)
        );
    }

    #[test]
    fn epochs_only_move_forward_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = NodeState::load(dir.path()).unwrap();
        assert_eq!(state.current(), EpochStart::FIRST);
        let e1 = EpochStart {
            epoch: 1,
            start: 10,
        };
        assert!(state.note_epoch(e1).unwrap());
        assert!(!state.note_epoch(e1).unwrap(), "replayed again");
        assert!(
            state
                .note_epoch(EpochStart {
                    epoch: 1,
                    start: 12
                })
                .is_err()
        );
        state.known_standbys.insert("standby one".into());
        state.save(dir.path()).unwrap();
        assert_eq!(NodeState::load(dir.path()).unwrap(), state);
    }
}
