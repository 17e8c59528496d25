//! A fault-injecting TCP proxy for replication tests: it forwards connections to a target
//! port and can hold every byte in flight (freeze), let them go again (thaw), or cut every
//! open connection.
#![allow(dead_code)]

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct Faults {
    frozen: bool,
    /// Bumped to cut the connections open at that moment.
    cuts: u64,
}

pub struct Proxy {
    pub port: u16,
    faults: Arc<watch::Sender<Faults>>,
}

impl Proxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards to `target_port` there.
    pub async fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let faults = Arc::new(watch::Sender::new(Faults::default()));
        let accepting = faults.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                    continue;
                };
                let cuts = accepting.borrow().cuts;
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, accepting.subscribe(), cuts));
                tokio::spawn(pump(server_read, client_write, accepting.subscribe(), cuts));
            }
        });
        Proxy { port, faults }
    }

    /// Holds every byte from now on, in both directions, until [`Proxy::thaw`].
    pub fn freeze(&self) {
        self.faults.send_modify(|f| f.frozen = true);
    }

    pub fn thaw(&self) {
        self.faults.send_modify(|f| f.frozen = false);
    }

    /// Closes every connection open now; later ones go through.
    pub fn cut(&self) {
        self.faults.send_modify(|f| f.cuts += 1);
    }
}

/// Copies `from` to `to`, pausing while frozen, until either side closes or a cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut faults: watch::Receiver<Faults>,
    cuts: u64,
) {
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = faults.wait_for(|f| f.cuts != cuts) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match faults.wait_for(|f| !f.frozen || f.cuts != cuts).await {
            Ok(f) if f.cuts == cuts => {}
            _ => return,
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
