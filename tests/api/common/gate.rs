//! Outages on demand: a TCP relay that the test cuts and restores, and what `/readyz` says
//! meanwhile.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::TestApp;

/// A TCP relay to `upstream` that the test can cut (dropping every connection and refusing new
/// ones) by sending `false`, and restore with `true`, as a restart of the service would. It
/// relays bytes only, so TLS passes through it.
pub async fn tcp_gate(upstream: String) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (open, _) = watch::channel(true);
    let gate = open.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            if !*gate.borrow() {
                continue;
            }
            let mut closed = gate.subscribe();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = closed.wait_for(|open| !open) => {}
                }
            });
        }
    });
    (addr, open)
}

pub async fn readiness(app: &TestApp) -> (u16, Value) {
    let response = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

pub async fn wait_for_readiness(app: &TestApp, want: u16) -> Value {
    for _ in 0..200 {
        let (status, body) = readiness(app).await;
        if status == want {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/readyz never answered {want}");
}
