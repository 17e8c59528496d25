//! Replication: a primary streams its transaction log to standbys, which apply it and serve
//! read-only queries; a standby can be promoted to primary (docs/REPLICATION.md).
//!
//! - `hub`: the node's role, standbys and receiver status, and the commit wait for standbys;
//! - `epoch`: the epoch history that tells whether one node's log is a prefix of another's;
//! - `protocol`: replication commands and the messages of the CopyBoth stream;
//! - `sender`: the primary's side of a replication connection;
//! - `receiver` and `apply`: the standby's side, appending and applying what arrives;
//! - `incoming`: a checkpoint copy for a standby the log can no longer bring up to date.
//!
//! Invariants: only a primary takes writes (the transaction manager's write gate follows the
//! role); every promotion starts a new epoch with a logged record, so a deposed primary and
//! the standbys of the new one recognise each other.

pub mod apply;
pub mod epoch;
pub mod hub;
pub mod incoming;
pub mod protocol;
pub mod receiver;
pub mod sender;

use std::sync::Arc;
use std::time::Duration;

pub use epoch::{EpochStart, NodeState};
pub use hub::{ReplicationHub, Role};

use crate::error::{KuraError, Result, sqlstate};
use crate::query::Engine;
use crate::wal::CatalogChange;

/// Makes this server a primary: a standby stops following (after applying everything it
/// received), a fenced primary is opened; either starts a new epoch. Returns false when it
/// was a primary already.
pub async fn promote(engine: &Arc<Engine>, wait: Duration) -> Result<bool> {
    let hub = engine
        .replication()
        .cloned()
        .ok_or_else(|| KuraError::unsupported("promotion needs a server with a data directory"))?;
    match hub.role() {
        Role::Primary => return Ok(false),
        Role::Standby { .. } => {
            hub.promote_requested.send_replace(true);
            let mut stopped = hub.receiver_stopped.subscribe();
            let stopped = tokio::time::timeout(wait, stopped.wait_for(|done| *done)).await;
            if stopped.is_err() {
                return Err(KuraError::new(
                    sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "the standby did not stop following its primary in time",
                ));
            }
        }
        Role::Fenced { .. } => {}
    }
    let epoch = hub.current_epoch().epoch + 1;
    engine
        .txns
        .change_catalog_unguarded(
            crate::txn::CommitWait::FLUSH,
            || Ok(CatalogChange::NewEpoch { epoch }),
            |change, lsn| engine.apply_catalog_change(change, lsn),
        )
        .await?;
    hub.update_state(|state| {
        let had_standbys = !std::mem::take(&mut state.known_standbys).is_empty();
        Ok(state.fenced.take().is_some() || had_standbys)
    })?;
    hub.set_role(Role::Primary);
    tracing::warn!(epoch, "promoted: this server is now a primary");
    Ok(true)
}

/// Stops this primary taking writes, for a planned switchover: once its standby has applied
/// everything it wrote (`pg_current_wal_lsn()` here) the standby is promoted, and this server
/// restarted as a standby of it. It stays fenced across a restart; `kura promote` here opens
/// it again instead. Returns false when it was fenced already; a standby is refused (55000).
pub fn fence(engine: &Arc<Engine>) -> Result<bool> {
    let hub = engine
        .replication()
        .cloned()
        .ok_or_else(|| KuraError::unsupported("fencing needs a server with a data directory"))?;
    match hub.role() {
        Role::Primary => {
            let why = "fenced by kura_fence() for a switchover; restart it as a standby of the \
                       new primary, or run `kura promote` here to take writes again";
            hub.update_state(|state| {
                state.fenced = Some(why.to_string());
                Ok(true)
            })?;
            hub.set_role(Role::Fenced {
                why: why.into(),
                until_standbys_return: false,
            });
            tracing::warn!("fenced: this primary takes no more writes");
            Ok(true)
        }
        Role::Fenced { .. } => Ok(false),
        Role::Standby { .. } => Err(KuraError::new(
            sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "recovery is in progress",
        )
        .with_hint("kura_fence() fences a primary; this server is a standby")),
    }
}
