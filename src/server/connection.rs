//! One client connection's message loop: TLS negotiation and every message handed to pgwire's
//! dispatcher, as pgwire's own `process_socket` does, with one addition: a replication
//! connection that has started streaming leaves the loop for the replication sender, which
//! needs to read the standby's messages while it writes (pgwire's CopyBoth response writes
//! a whole stream before it reads again).
//!
//! Answers are held (`deferred_flush`) and written when the loop is about to wait for the
//! client, so a pipelined Parse/Bind/Describe/Execute/Sync is answered in one packet.
//!
//! Invariants: a message is handled completely (its answer written) before the next is read,
//! except in the replication stream, which owns the socket until the connection ends; the
//! loop never waits for the client while answers are held.

use std::sync::Arc;

use futures::StreamExt;
use pgwire::api::{ClientInfo, PgWireConnectionState, PgWireServerHandlers};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::net::TcpStream;

use super::deferred_flush::{DeferredFlush, holds_whole_message};
use super::handler::{ConnectionHandlers, KuraHandler};
use tokio_util::codec::{Framed, FramedParts};

/// Serves `socket` until the client leaves or the connection fails.
pub async fn serve(
    socket: TcpStream,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    handler: Arc<KuraHandler>,
) -> std::io::Result<()> {
    let Some(socket) = negotiate_tls(socket, tls).await? else {
        return Ok(());
    };
    if let Some(chain) = socket.client_certificates() {
        handler.set_client_certificates(chain);
    }
    let parts = socket.into_parts();
    let mut held = FramedParts::new(DeferredFlush::new(parts.io), parts.codec);
    held.read_buf = parts.read_buf;
    held.write_buf = parts.write_buf;
    let mut socket = Framed::from_parts(held);
    let handlers = ConnectionHandlers(handler.clone());
    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    loop {
        // Before authentication a message may have no type byte: only typed ones are counted.
        let next_is_here = handler.is_authenticated() && holds_whole_message(socket.read_buffer());
        if !next_is_here {
            socket.get_mut().drain().await?;
        }
        let Some(message) = socket.next().await else {
            break;
        };
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!("bad message from {}: {e}", socket.socket_addr());
                break;
            }
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let handled = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        if let Err(e) = handled {
            process_error(&mut socket, e, extended_query).await?;
        }
        if let Some(stream) = handler.take_replication_stream() {
            socket.get_mut().set_deferring(false).await?;
            stream.run(&mut socket).await;
            break;
        }
    }
    socket.get_mut().drain().await
}
