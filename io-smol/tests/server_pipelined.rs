//! Pipelined sends from a server through io-smol on loopback: handles as futures, the
//! server's send window and its back-pressure, a client gone silent, flush and close. Every
//! test is bounded by a timer, so none can hang.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "../../io-std/tests/support/silent_client.rs"]
mod silent_client;
#[path = "../../io-std/tests/support/suites.rs"]
mod suites;

use std::collections::HashSet;
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use async_io::Timer;
use futures_lite::{future, StreamExt};
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use pavillion_smol::{Client, Reliability, SendError, Server, ServerConfig};
use suites::Suite;

const ID: ClientId = ClientId(*b"srv-pipelined-sm");

/// Runs `test` on `smol::block_on`, failing it if it takes longer than `limit`.
fn bounded<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test did not finish within {limit:?}");
    }))
}

/// Waits until the server holds a session, and returns its client's address.
async fn held(server: &Server) -> SocketAddr {
    loop {
        if let Some((addr, _)) = server.clients().await.first() {
            return *addr;
        }
        Timer::after(Duration::from_millis(5)).await;
    }
}

/// A server with a send window of `window` and a silent client (connected, then reading
/// nothing); the server's sends time out after `send_timeout`.
async fn silent(window: usize, send_timeout: Duration) -> (Server, UdpSocket, SocketAddr) {
    let psk = Psk::from_bytes([0x5a; 32]);
    let config = ServerConfig::new()
        .psk_client(ID, psk.clone())
        .send_window(window)
        .send_timeout(send_timeout);
    let server = Server::bind("127.0.0.1:0", config).await.unwrap();
    let local = server.local_addr();
    let socket = smol::unblock(move || silent_client::connect_then_go_silent(local, ID, psk)).await;
    let addr = held(&server).await;
    assert_eq!(addr, socket.local_addr().unwrap());
    (server, socket, addr)
}

#[test]
fn pipelined_messages_reach_the_client_once_and_handles_resolve_in_any_order() {
    bounded(Duration::from_secs(60), async {
        for suite in [Suite::Psk, Suite::Ecc, Suite::NoiseIk] {
            let (sc, cc) = suites::configs(ID, suite);
            let server = Server::bind("127.0.0.1:0", sc.send_window(32))
                .await
                .unwrap();
            // Room for every message: the stream is read after the sends.
            let client = Client::connect(server.local_addr(), cc.message_buffer(2048))
                .await
                .unwrap();
            let mut got = client.on_message(Some("t"));
            client
                .wait_connected(Duration::from_secs(10))
                .await
                .unwrap();
            let to = held(&server).await;
            const N: u32 = 1000;
            let mut handles = Vec::new();
            for i in 0..N {
                let h = server
                    .send_pipelined_to(to, "t", "n", &i.to_le_bytes(), Reliability::Reliable)
                    .await
                    .unwrap();
                handles.push(h);
            }
            // Awaited last first.
            for h in handles.into_iter().rev() {
                let d = h.await.unwrap();
                assert_eq!(d.acked, vec![to], "{suite:?}");
            }
            server.flush(Duration::from_secs(10)).await.unwrap();
            let mut seen = HashSet::new();
            while seen.len() < N as usize {
                let m = got.next().await.unwrap();
                assert!(
                    seen.insert(m.payload().to_vec()),
                    "{suite:?}: a message twice"
                );
            }
            client.close().await;
            server.close().await;
        }
    });
}

#[test]
fn a_client_gone_silent_fills_the_window_which_waits_and_frees_by_timeout() {
    bounded(Duration::from_secs(30), async {
        let (server, _socket, to) = silent(4, Duration::from_millis(600)).await;
        let mut handles = Vec::new();
        for _ in 0..4 {
            let h = server.try_send_pipelined_to(to, "t", "n", b"x", Reliability::Reliable);
            handles.push(h.unwrap());
        }
        assert_eq!(
            server
                .try_send_pipelined_to(to, "t", "n", b"x", Reliability::Reliable)
                .unwrap_err(),
            SendError::WouldBlock
        );
        // The awaiting send waits for room: it is not ready while the window is full.
        let waiting = server.send_pipelined_to(to, "t", "n", b"y", Reliability::Reliable);
        let early = future::or(async { Some(waiting.await) }, async {
            Timer::after(Duration::from_millis(200)).await;
            None
        })
        .await;
        assert!(early.is_none(), "a full window holds the sender");
        assert_eq!(
            server.flush(Duration::from_millis(50)).await,
            Err(SendError::TimedOut)
        );
        for h in handles {
            assert_eq!(h.await.unwrap_err(), SendError::TimedOut);
        }
        // Room again.
        let h = server
            .send_pipelined_to(to, "t", "n", b"z", Reliability::Reliable)
            .await
            .unwrap();
        assert_eq!(h.await.unwrap_err(), SendError::TimedOut);
        server.flush(Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn closing_resolves_every_handle_with_an_error() {
    bounded(Duration::from_secs(30), async {
        let (server, _socket, to) = silent(8, Duration::from_secs(30)).await;
        let mut handles = Vec::new();
        for _ in 0..8 {
            let h = server.send_pipelined_to(to, "t", "n", b"x", Reliability::Reliable);
            handles.push(h.await.unwrap());
        }
        server.close().await;
        for h in handles {
            assert!(h.await.is_err());
        }
    });
}
