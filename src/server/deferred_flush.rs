//! A connection's writer that holds what the server writes until the connection loop is about
//! to wait for the client. pgwire flushes after ParseComplete, BindComplete, RowDescription
//! and CommandComplete, a `send` system call (and a TCP segment) each; a prepared statement
//! executed by a driver then costs four where PostgreSQL sends one packet per Sync.
//!
//! Invariants: while deferring, at most [`HOLD_LIMIT`] bytes wait (a larger answer goes out as
//! it grows); the owner calls [`DeferredFlush::drain`] before every read that may block, so
//! nothing stays held while the server waits for the client; with deferral off (a replication
//! stream), a flush flushes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before they are written without waiting for a drain.
const HOLD_LIMIT: usize = 64 * 1024;

pub struct DeferredFlush<S> {
    inner: S,
    pending: Vec<u8>,
    /// How much of `pending` the socket took already.
    written: usize,
    deferring: bool,
}

impl<S: AsyncWrite + Unpin> DeferredFlush<S> {
    pub fn new(inner: S) -> DeferredFlush<S> {
        DeferredFlush {
            inner,
            pending: Vec::new(),
            written: 0,
            deferring: true,
        }
    }

    /// Turns deferral off (after draining what is held) or on.
    pub async fn set_deferring(&mut self, deferring: bool) -> io::Result<()> {
        self.drain().await?;
        self.deferring = deferring;
        Ok(())
    }

    /// Writes and flushes everything held.
    pub async fn drain(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_drain(cx)).await
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DeferredFlush<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DeferredFlush<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.deferring && this.pending.is_empty() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        if this.pending.len() >= HOLD_LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        this.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.deferring {
            return Poll::Ready(Ok(()));
        }
        this.poll_drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// True when `buffer` starts with a whole typed message (a type byte, then a length that
/// counts itself): reading it will not wait for the client.
pub fn holds_whole_message(buffer: &[u8]) -> bool {
    let Some(length) = buffer.get(1..5) else {
        return false;
    };
    let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
    buffer.len() > length
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn whole_messages_are_recognised() {
        assert!(!holds_whole_message(b""));
        assert!(!holds_whole_message(b"S\0\0\0"));
        assert!(holds_whole_message(b"S\0\0\0\x04"));
        assert!(!holds_whole_message(b"Q\0\0\0\x09abc"));
        assert!(holds_whole_message(b"Q\0\0\0\x09abcd\0"));
    }

    #[tokio::test]
    async fn writes_wait_for_a_drain_unless_deferral_is_off() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut writer = DeferredFlush::new(server);
        let mut client = client;
        writer.write_all(b"one").await.unwrap();
        writer.flush().await.unwrap();
        let mut buf = [0u8; 16];
        let nothing =
            tokio::time::timeout(std::time::Duration::from_millis(50), client.read(&mut buf)).await;
        assert!(nothing.is_err(), "a flush while deferring writes nothing");
        writer.drain().await.unwrap();
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"one");

        // Past the limit, held bytes go out without a drain.
        writer.write_all(&vec![7u8; HOLD_LIMIT + 10]).await.unwrap();
        writer.write_all(b"x").await.unwrap();
        let mut got = vec![0u8; HOLD_LIMIT];
        client.read_exact(&mut got).await.unwrap();

        writer.set_deferring(false).await.unwrap();
        writer.write_all(b"now").await.unwrap();
        writer.flush().await.unwrap();
        let mut rest = vec![0u8; 10 + 1 + 3];
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest[11..], b"now");
    }
}
