//! The node's replication state: its role, its epoch history, the standbys following it (on
//! a primary) and its receiver's progress (on a standby); and the wait of SEMISYNC and SYNC
//! commits for their standbys.
//!
//! Invariants:
//! - the role and the transaction manager's write gate change together: only a primary
//!   takes writes;
//! - a commit waits at most `replicationTimeoutInterval`; it then fails with 40003 or, under
//!   DEGRADE, the primary stops waiting until enough standbys have caught up again;
//! - the epoch history on disk is updated before the role that depends on it is announced.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use super::epoch::{EpochStart, NodeState};
use super::protocol::StandbyProgress;
use crate::config::{Config, ReplicationMode, ReplicationTimeoutAction};
use crate::error::{KuraError, Result, sqlstate};
use crate::txn::{StandbyAcks, StandbyWait, TxnManager};
use crate::wal::Lsn;

/// What this server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Takes writes and streams its log to standbys.
    Primary,
    /// Follows the primary at this address; refuses writes.
    Standby { primary: String },
    /// A primary that must not take writes: it restarted after having had standbys (one of
    /// them may have been promoted meanwhile: `until_standbys_return`, it opens once all of
    /// them are back), or a standby showed it a newer epoch (it stays fenced).
    Fenced {
        why: String,
        until_standbys_return: bool,
    },
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby { .. } => "standby",
            Role::Fenced { .. } => "fenced",
        }
    }
}

/// The settings the hub works by.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub mode: ReplicationMode,
    /// Standbys a SEMISYNC or SYNC commit waits for.
    pub standbys_needed: usize,
    pub timeout: Duration,
    pub timeout_action: ReplicationTimeoutAction,
    pub keep_log: Duration,
}

impl HubSettings {
    pub fn from_config(config: &Config) -> HubSettings {
        HubSettings {
            mode: config.transaction.replication_mode,
            standbys_needed: config.cluster.replication_num.saturating_sub(1) as usize,
            timeout: config.transaction.replication_timeout_interval.get(),
            timeout_action: config.transaction.replication_timeout_action,
            keep_log: config.sync.keep_log_interval.get(),
        }
    }
}

/// One standby as its primary sees it.
#[derive(Debug, Clone)]
pub struct StandbyEntry {
    pub id: u64,
    pub name: String,
    pub user: String,
    pub client_addr: Option<std::net::SocketAddr>,
    pub backend_start: chrono::DateTime<chrono::Utc>,
    /// startup, copying (a checkpoint copy), catchup, streaming, or disconnected.
    pub state: &'static str,
    /// The newest LSN sent to it.
    pub sent: Lsn,
    pub progress: StandbyProgress,
    pub last_reply: Option<chrono::DateTime<chrono::Utc>>,
    pub connected: bool,
    pub last_seen: Instant,
}

/// A standby's receiver as the standby sees it.
#[derive(Debug, Clone, Default)]
pub struct ReceiverStatus {
    pub primary: String,
    /// connecting, streaming, copying, or stopped.
    pub state: &'static str,
    pub progress: StandbyProgress,
    /// The primary's written LSN as last reported.
    pub primary_written: Lsn,
    pub last_message: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error: Option<String>,
}

#[derive(Debug)]
pub struct ReplicationHub {
    data_dir: PathBuf,
    pub settings: HubSettings,
    txns: Arc<TxnManager>,
    role: watch::Sender<Role>,
    state: Mutex<NodeState>,
    standbys: Mutex<Vec<StandbyEntry>>,
    /// Bumped on every standby status, so commit waits re-check.
    progress: watch::Sender<u64>,
    degraded: AtomicBool,
    next_id: AtomicU64,
    pub receiver: Mutex<ReceiverStatus>,
    /// Set when a promotion has been asked for; the receiver stops and the node takes over.
    pub promote_requested: watch::Sender<bool>,
    /// Set by the receiver once it has stopped (its last message applied, the log cut).
    pub receiver_stopped: watch::Sender<bool>,
    /// `/sync/keepLogInterval`, which can change while the server runs.
    keep_log: Mutex<Duration>,
}

impl ReplicationHub {
    /// The hub of a node in `data_dir`, starting in `role` (its write gate set accordingly).
    pub fn new(
        data_dir: PathBuf,
        settings: HubSettings,
        txns: Arc<TxnManager>,
        state: NodeState,
        role: Role,
    ) -> Arc<ReplicationHub> {
        let hub = Arc::new(ReplicationHub {
            data_dir,
            keep_log: Mutex::new(settings.keep_log),
            settings,
            txns,
            role: watch::Sender::new(Role::Primary),
            state: Mutex::new(state),
            standbys: Mutex::new(Vec::new()),
            progress: watch::Sender::new(0),
            degraded: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            receiver: Mutex::new(ReceiverStatus::default()),
            promote_requested: watch::Sender::new(false),
            receiver_stopped: watch::Sender::new(false),
        });
        hub.set_role(role);
        hub
    }

    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    pub fn subscribe_role(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// Changes the role and the write gate with it.
    pub fn set_role(&self, role: Role) {
        let refusal = match &role {
            Role::Primary => None,
            Role::Standby { primary } => Some(format!(
                "this server is a standby of {primary} (read-only until it is promoted)"
            )),
            Role::Fenced { why, .. } => Some(format!("this primary is fenced: {why}")),
        };
        if role != *self.role.borrow() {
            tracing::info!(
                role = role.name(),
                "replication role: {}",
                refusal.as_deref().unwrap_or("primary, taking writes")
            );
        }
        self.txns.refuse_writes(refusal);
        self.role.send_replace(role);
    }

    pub fn is_standby(&self) -> bool {
        matches!(*self.role.borrow(), Role::Standby { .. })
    }

    pub fn node_state(&self) -> NodeState {
        self.state.lock().clone()
    }

    pub fn current_epoch(&self) -> EpochStart {
        self.state.lock().current()
    }

    /// Changes the persistent state with `f` and saves it.
    pub fn update_state(&self, f: impl FnOnce(&mut NodeState) -> Result<bool>) -> Result<()> {
        let mut state = self.state.lock();
        let mut changed = state.clone();
        if f(&mut changed)? {
            changed.save(&self.data_dir)?;
            *state = changed;
        }
        Ok(())
    }

    /// Registers a standby that has started streaming; it stays listed (for log retention
    /// and the status view) after it disconnects.
    pub fn register_standby(
        &self,
        name: &str,
        user: &str,
        client_addr: Option<std::net::SocketAddr>,
        start: Lsn,
    ) -> Result<u64> {
        self.update_state(|state| Ok(state.known_standbys.insert(name.to_string())))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut standbys = self.standbys.lock();
        standbys.retain(|s| s.connected || s.name != name);
        let acked = start.saturating_sub(1);
        standbys.push(StandbyEntry {
            id,
            name: name.to_string(),
            user: user.to_string(),
            client_addr,
            backend_start: chrono::Utc::now(),
            state: "startup",
            sent: acked,
            progress: StandbyProgress {
                received: acked,
                flushed: acked,
                applied: acked,
            },
            last_reply: None,
            connected: true,
            last_seen: Instant::now(),
        });
        let back: std::collections::BTreeSet<&str> = standbys
            .iter()
            .filter(|s| s.connected)
            .map(|s| s.name.as_str())
            .collect();
        let all_back = self
            .state
            .lock()
            .known_standbys
            .iter()
            .all(|known| back.contains(known.as_str()));
        drop(standbys);
        if all_back
            && matches!(
                *self.role.borrow(),
                Role::Fenced {
                    until_standbys_return: true,
                    ..
                }
            )
        {
            tracing::info!("every standby this primary had is back: taking writes again");
            self.set_role(Role::Primary);
        }
        Ok(id)
    }

    /// The role a primary restarting with this state starts in.
    pub fn restart_role(state: &NodeState) -> Role {
        if let Some(why) = &state.fenced {
            return Role::Fenced {
                why: why.clone(),
                until_standbys_return: false,
            };
        }
        if state.known_standbys.is_empty() {
            return Role::Primary;
        }
        let names: Vec<&str> = state.known_standbys.iter().map(String::as_str).collect();
        Role::Fenced {
            why: format!(
                "it restarted after having standbys ({}); it takes writes again once all of \
                 them have re-attached, or after `kura promote` here",
                names.join(", ")
            ),
            until_standbys_return: true,
        }
    }

    /// Updates standby `id` with `f`.
    pub fn update_standby(&self, id: u64, f: impl FnOnce(&mut StandbyEntry)) {
        let mut standbys = self.standbys.lock();
        if let Some(entry) = standbys.iter_mut().find(|s| s.id == id) {
            f(entry);
            entry.last_seen = Instant::now();
        }
    }

    /// A standby's status message: its progress, and whether enough standbys have caught up
    /// with `written` for a degraded primary to wait again.
    pub fn record_progress(&self, id: u64, progress: StandbyProgress, written: Lsn) {
        self.update_standby(id, |entry| {
            entry.progress = progress;
            entry.last_reply = Some(chrono::Utc::now());
        });
        if self.degraded.load(Ordering::Acquire)
            && self.confirmed(written, StandbyWait::Received) >= self.settings.standbys_needed
        {
            self.degraded.store(false, Ordering::Release);
            tracing::info!("standbys caught up: commits wait for them again");
        }
        self.progress.send_modify(|n| *n += 1);
    }

    /// A standby has disconnected.
    pub fn unregister_standby(&self, id: u64) {
        self.update_standby(id, |entry| {
            entry.connected = false;
            entry.state = "disconnected";
        });
        self.progress.send_modify(|n| *n += 1);
    }

    pub fn standbys(&self) -> Vec<StandbyEntry> {
        self.standbys.lock().clone()
    }

    /// Changes `/sync/keepLogInterval` (online).
    pub fn set_keep_log(&self, keep: Duration) {
        *self.keep_log.lock() = keep;
    }

    /// The oldest LSN a connected or recently seen (within `keepLogInterval`) standby still
    /// needs from the log, if any: segments holding it or newer must stay. A standby resumes
    /// after what it has made durable.
    pub fn log_needed_from(&self) -> Option<Lsn> {
        let keep = *self.keep_log.lock();
        self.standbys
            .lock()
            .iter()
            .filter(|s| s.connected || s.last_seen.elapsed() < keep)
            .map(|s| s.progress.flushed + 1)
            .min()
    }

    /// Waits, at most `timeout`, until every connected standby has made `lsn` durable (a
    /// primary shutting down lets them have its last commits); returns whether they all have.
    pub async fn drain(&self, lsn: Lsn, timeout: Duration) -> bool {
        let mut progress = self.progress.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            progress.borrow_and_update();
            let behind = self
                .standbys
                .lock()
                .iter()
                .filter(|s| s.connected && s.progress.flushed < lsn)
                .count();
            if behind == 0 {
                return true;
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => {}
                _ => return false,
            }
        }
    }

    /// How many connected standbys have got as far as `wait` asks with `lsn`.
    fn confirmed(&self, lsn: Lsn, wait: StandbyWait) -> usize {
        self.standbys
            .lock()
            .iter()
            .filter(|s| s.connected)
            .filter(|s| match wait {
                StandbyWait::Received => s.progress.received >= lsn,
                StandbyWait::Applied => s.progress.applied >= lsn,
                _ => s.progress.flushed >= lsn,
            })
            .count()
    }

    fn resolve(&self, wait: StandbyWait) -> StandbyWait {
        match (wait, self.settings.mode) {
            (StandbyWait::Configured, ReplicationMode::Async) => StandbyWait::None,
            (StandbyWait::Configured, ReplicationMode::Semisync) => StandbyWait::Received,
            (StandbyWait::Configured, ReplicationMode::Sync) => StandbyWait::Flushed,
            (other, _) => other,
        }
    }

    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }
}

#[async_trait::async_trait]
impl StandbyAcks for ReplicationHub {
    async fn wait(&self, lsn: Lsn, wait: StandbyWait) -> Result<()> {
        let wait = self.resolve(wait);
        let needed = self.settings.standbys_needed;
        if wait == StandbyWait::None || needed == 0 || self.is_degraded() {
            return Ok(());
        }
        let mut progress = self.progress.subscribe();
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        loop {
            progress.borrow_and_update();
            if self.confirmed(lsn, wait) >= needed || self.is_degraded() {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(KuraError::internal("the replication hub stopped")),
                Err(_) => break,
            }
        }
        let connected = self.standbys.lock().iter().filter(|s| s.connected).count();
        match self.settings.timeout_action {
            ReplicationTimeoutAction::Fail => Err(KuraError::new(
                sqlstate::STATEMENT_COMPLETION_UNKNOWN,
                format!(
                    "the transaction committed here, but {needed} standby(s) did not confirm it \
                     within replicationTimeoutInterval ({} connected)",
                    connected
                ),
            )
            .with_hint(
                "the commit is durable on the primary; whether it survives a failover is \
                 unknown. Check pg_stat_replication.",
            )),
            ReplicationTimeoutAction::Degrade => {
                if !self.degraded.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        lsn,
                        connected,
                        needed,
                        "standbys did not confirm a commit within replicationTimeoutInterval: \
                         degrading to ASYNC until they catch up"
                    );
                }
                Ok(())
            }
        }
    }
}
