//! A TCP proxy inside the test, between porter processes and a database server, that can
//! blackhole traffic for a while: a network partition (bytes go nowhere, connections stay
//! open and nobody is told), not a clean restart. Once healed, what was held back is
//! delivered, as TCP's retransmissions would after a real partition.
#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A proxy on 127.0.0.1 forwarding to `upstream`.
pub struct Proxy {
    /// The port it listens on.
    pub port: u16,
    partitioned: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let (partitioned, rx) = watch::channel(false);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rx = rx.clone();
                tokio::spawn(async move {
                    // A connection opened during a partition reaches nobody until it heals.
                    healed(&mut rx.clone()).await;
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pump(cr, sw, rx.clone()), pump(sr, cw, rx));
                });
            }
        });
        Proxy {
            port,
            partitioned,
            accept,
        }
    }

    /// From now on, nothing passes in either direction.
    pub fn partition(&self) {
        self.partitioned.send_replace(true);
    }

    /// Traffic flows again, starting with what was held back.
    pub fn heal(&self) {
        self.partitioned.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn healed(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|partitioned| !partitioned).await;
}

/// Copies one direction; during a partition it neither reads nor writes, so the bytes wait in
/// the kernel's buffers (or in `buf`) until the partition heals.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut rx: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        healed(&mut rx).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        healed(&mut rx).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
