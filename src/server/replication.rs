//! Replication connections on the server side: the `replication` startup parameter, the
//! privilege it needs, and the commands such a connection accepts (IDENTIFY_SYSTEM,
//! START_REPLICATION); the stream itself runs in `replication::sender`.
//!
//! Invariants: only an administrator opens one; a
//! replication connection runs replication commands only; START_REPLICATION answers with an
//! error (and no stream) unless the standby may follow this server.

use std::sync::Arc;

use futures::{Sink, Stream};
use pgwire::error::PgWireResult;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::error::{KuraError, Result, sqlstate};
use crate::query::Engine;
use crate::replication::ReplicationHub;
use crate::replication::protocol::Command;
use crate::replication::sender::{self, Plan, StreamRequest};
use crate::security::Login;

/// What the startup message's `replication` parameter asks for.
pub fn requested(value: Option<&str>) -> Result<bool> {
    match value.map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if matches!(v.as_str(), "false" | "off" | "no" | "0" | "") => Ok(false),
        Some(v) if matches!(v.as_str(), "true" | "on" | "yes" | "1") => Ok(true),
        Some(v) if v == "database" => Err(KuraError::unsupported(
            "logical replication (replication=database): Kura streams its own log to Kura \
             standbys only",
        )),
        Some(v) => Err(KuraError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("invalid value for parameter \"replication\": \"{v}\""),
        )),
    }
}

/// Fails unless `login` may open a replication connection.
pub fn check_privilege(login: &Login) -> Result<()> {
    if login.admin {
        return Ok(());
    }
    Err(KuraError::new(
        sqlstate::INSUFFICIENT_PRIVILEGE,
        format!(
            "user \"{}\" may not start replication: it needs an administrator",
            login.user
        ),
    ))
}

/// What a replication command asks the connection to do.
pub enum Action {
    /// Answer with this SQL's result (IDENTIFY_SYSTEM).
    Query(String),
    /// Start streaming.
    Stream(Box<ReplicationStream>),
}

/// Parses and checks a replication command.
pub async fn command(
    engine: &Arc<Engine>,
    text: &str,
    user: &str,
    name: &str,
    addr: Option<std::net::SocketAddr>,
) -> Result<Action> {
    let hub = engine.replication().cloned().ok_or_else(|| {
        KuraError::unsupported("replication needs a server with a data directory")
    })?;
    match Command::parse(text)? {
        Command::IdentifySystem => {
            let written = engine.txns.log().map_or(0, |log| log.written_lsn());
            Ok(Action::Query(format!(
                "SELECT 'kura' AS systemid, CAST({} AS integer) AS timeline, \
                 '{written}' AS xlogpos, CAST(NULL AS text) AS dbname",
                hub.current_epoch().epoch
            )))
        }
        Command::StartReplication { next, epoch } => {
            let request = StreamRequest {
                next: next.max(1),
                epoch,
                user: user.to_string(),
                name: name.to_string(),
                addr,
            };
            let plan = sender::plan(engine, &hub, &request).await?;
            Ok(Action::Stream(Box::new(ReplicationStream {
                engine: engine.clone(),
                hub,
                request,
                plan,
            })))
        }
    }
}

/// A stream the connection runs once the command's answer (CopyBothResponse) is out.
pub struct ReplicationStream {
    engine: Arc<Engine>,
    hub: Arc<ReplicationHub>,
    request: StreamRequest,
    plan: Plan,
}

impl ReplicationStream {
    pub async fn run<S>(self, socket: &mut S)
    where
        S: Stream<Item = PgWireResult<PgWireFrontendMessage>>
            + Sink<PgWireBackendMessage, Error = std::io::Error>
            + Unpin,
    {
        let name = self.request.name.clone();
        if let Err(e) =
            sender::serve(socket, &self.engine, &self.hub, self.request, self.plan).await
        {
            tracing::warn!(standby = %name, "replication stream ended: {e}");
        } else {
            tracing::info!(standby = %name, "standby disconnected");
        }
    }
}
