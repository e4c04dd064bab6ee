//! The async adapter `pavillion-smol` on loopback: pipelined reliable 64-byte messages
//! (`Client::send_pipelined`, counted by the server's message stream, so every message counted
//! was received, opened and acknowledged end to end) and RPC calls to a registered echo
//! handler, one at a time. These rows show what the driver's batched system calls
//! (`recvmmsg`/`sendmmsg`, `pavillion_io::plumbing::udp`) give the async adapter; `compare
//! --smol-only` prints them, and a build of the same rows against the older driver gives
//! the figures they are set beside (see `benches/README.md`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use pavillion_smol::{Client, Reliability, RpcFailure, Server};

use crate::results::record;
use crate::{Suite, NAME, PAYLOAD, TARGET};

/// The function number of the registered echo.
const ECHO: u16 = 400;

/// One measured row: what it measures, the figure, its unit and its results key.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// What the row measures.
    pub what: String,
    /// The figure.
    pub rate: f64,
    /// Its unit.
    pub unit: &'static str,
}

/// Measures both rows in every suite, `seconds` each after a warm-up of a tenth of that, and
/// records `smol_pipelined_64_SUITE` (msg/s) and `smol_rpc_handler_64_SUITE` (calls/s).
///
/// # Panics
/// If the loopback endpoints cannot be opened or the handshake does not finish in 5 s: a
/// benchmark has nothing to report then.
pub fn rows(seconds: f64) -> Vec<Measured> {
    let mut rows = Vec::new();
    for suite in Suite::ALL {
        let name = suite.name();
        let (pipelined, rpc) = smol::block_on(measure(suite, seconds));
        record(&format!("smol_pipelined_64_{name}"), pipelined, "msg/s");
        record(&format!("smol_rpc_handler_64_{name}"), rpc, "calls/s");
        rows.push(Measured {
            what: format!("io-smol pipelined reliable 64 B messages, {name}"),
            rate: pipelined,
            unit: "msg/s",
        });
        rows.push(Measured {
            what: format!("io-smol RPC, registered handler, 64 B, {name}"),
            rate: rpc,
            unit: "calls/s",
        });
    }
    rows
}

async fn measure(suite: Suite, seconds: f64) -> (f64, f64) {
    let (server_config, client_config) = crate::bulk::std_configs(suite);
    let server = Server::bind("127.0.0.1:0", server_config)
        .await
        .expect("bind on loopback");
    server.register(ECHO, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
    let received = Arc::new(AtomicU64::new(0));
    let mut stream = server.on_message(Some(TARGET));
    let count = received.clone();
    let counter = smol::spawn(async move {
        while stream.next().await.is_some() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    let client = Client::connect(server.local_addr(), client_config)
        .await
        .expect("client socket");
    client
        .wait_connected(Duration::from_secs(5))
        .await
        .expect("handshake on loopback");
    let data = vec![0x5a; PAYLOAD];

    // Pipelined: one task keeps the window full; handles are dropped (their places are
    // freed with their outcomes).
    let stop = Arc::new(AtomicBool::new(false));
    let client = Arc::new(client);
    let sender = {
        let (client, stop, data) = (client.clone(), stop.clone(), data.clone());
        smol::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if client
                    .send_pipelined(TARGET, NAME, &data, Reliability::Reliable)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    async_io::Timer::after(Duration::from_secs_f64(seconds / 10.0)).await;
    let (n0, t0) = (received.load(Ordering::Relaxed), Instant::now());
    async_io::Timer::after(Duration::from_secs_f64(seconds)).await;
    let pipelined = (received.load(Ordering::Relaxed) - n0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    sender.await;
    let _ = client.flush(Duration::from_secs(10)).await;

    // RPC: one call at a time.
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < seconds / 10.0 {
        client.call(ECHO, &data).await.expect("answered");
    }
    let (mut calls, t0) = (0u64, Instant::now());
    while t0.elapsed().as_secs_f64() < seconds {
        client.call(ECHO, &data).await.expect("answered");
        calls += 1;
    }
    let rpc = calls as f64 / t0.elapsed().as_secs_f64();
    if let Ok(client) = Arc::try_unwrap(client) {
        client.close().await;
    }
    server.close().await;
    drop(counter);
    (pipelined, rpc)
}
