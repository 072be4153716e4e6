//! A TCP proxy inside the test, between porter processes and a database server, that can
//! blackhole traffic for a while: a network partition (bytes go nowhere, connections stay
//! open and nobody is told), not a clean restart. Once healed, what was held back is
//! delivered, as TCP's retransmissions would after a real partition.
#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A proxy on 127.0.0.1 forwarding to `upstream`.
pub struct Proxy {
    /// The port it listens on.
    pub port: u16,
    partitioned: watch::Sender<bool>,
    resets: watch::Sender<u64>,
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
        let (resets, reset_rx) = watch::channel(0u64);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let rx = rx.clone();
                let mut reset = reset_rx.clone();
                reset.mark_unchanged();
                tokio::spawn(async move {
                    // A connection opened during a partition reaches nobody until it heals.
                    healed(&mut rx.clone()).await;
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    // Closed by a reset, the client's socket goes with a RST, not a FIN.
                    let _ = client.set_zero_linger();
                    let (cr, cw) = client.split();
                    let (sr, sw) = server.split();
                    tokio::select! {
                        _ = async { tokio::join!(pump(cr, sw, rx.clone()), pump(sr, cw, rx)) } => {}
                        _ = reset.changed() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            partitioned,
            resets,
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

    /// Resets every connection open now (a RST to the client, as a load balancer or a firewall
    /// that drops a flow sends); new ones pass as before.
    pub fn reset_all(&self) {
        self.resets.send_modify(|n| *n += 1);
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
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
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
