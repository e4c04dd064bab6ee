//! Pipelined sends through io-smol on loopback: handles as futures, the send window and its
//! back-pressure, flush and close. Every test is bounded by a timer, so none can hang.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "../../io-std/tests/support/suites.rs"]
mod suites;

use std::collections::HashSet;
use std::future::Future;
use std::net::UdpSocket;
use std::time::Duration;

use async_io::Timer;
use futures_lite::{future, StreamExt};
use pavillion_proto::ClientId;
use pavillion_smol::{Client, Reliability, SendError, Server};
use suites::Suite;

const ID: ClientId = ClientId(*b"pipelined-smol-1");

/// Runs `test` on `smol::block_on`, failing it if it takes longer than `limit`.
fn bounded<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test did not finish within {limit:?}");
    }))
}

#[test]
fn pipelined_messages_arrive_once_and_handles_resolve_in_any_order() {
    bounded(Duration::from_secs(60), async {
        for suite in [Suite::Psk, Suite::Ecc, Suite::NoiseIk] {
            let (sc, cc) = suites::configs(ID, suite);
            // Room for every message: the stream is read after the sends.
            let server = Server::bind("127.0.0.1:0", sc.message_buffer(2048))
                .await
                .unwrap();
            let mut got = server.on_message(Some("t"));
            let client = Client::connect(server.local_addr(), cc.send_window(32))
                .await
                .unwrap();
            const N: u32 = 1000;
            let mut handles = Vec::new();
            for i in 0..N {
                let h = client
                    .send_pipelined("t", "n", &i.to_le_bytes(), Reliability::Reliable)
                    .await
                    .unwrap();
                handles.push(h);
            }
            // Awaited last first.
            for h in handles.into_iter().rev() {
                let d = h.await.unwrap();
                assert_eq!(d.acked.len(), 1, "{suite:?}");
            }
            client.flush(Duration::from_secs(10)).await.unwrap();
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
fn a_full_window_is_would_block_or_waits_and_close_fails_every_handle() {
    bounded(Duration::from_secs(30), async {
        // A server that never answers.
        let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (_, cc) = suites::configs(ID, Suite::Psk);
        let client = Client::connect(hole.local_addr().unwrap(), cc.send_window(4))
            .await
            .unwrap();
        let mut handles = Vec::new();
        for _ in 0..4 {
            handles.push(
                client
                    .try_send_pipelined("t", "n", b"x", Reliability::Reliable)
                    .unwrap(),
            );
        }
        assert_eq!(
            client
                .try_send_pipelined("t", "n", b"x", Reliability::Reliable)
                .unwrap_err(),
            SendError::WouldBlock
        );
        // Awaiting room does not finish while the window is full.
        let waited = future::or(
            async {
                client
                    .send_pipelined("t", "n", b"x", Reliability::Reliable)
                    .await
                    .map(|_| "room")
                    .unwrap_or("error")
            },
            async {
                Timer::after(Duration::from_millis(300)).await;
                "still full"
            },
        )
        .await;
        assert_eq!(waited, "still full");
        assert_eq!(
            client.flush(Duration::from_millis(50)).await,
            Err(SendError::TimedOut)
        );
        client.close().await;
        for h in handles {
            assert_eq!(h.await.unwrap_err(), SendError::Closed);
        }
    });
}
