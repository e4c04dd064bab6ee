//! Messages, call arguments and answers larger than a datagram through io-smol, on real
//! loopback sockets: sent in segments by the endpoint, reassembled whole, with progress
//! reported to the sender and refusals surfacing as typed errors. Every test is bounded by a
//! timer, so none can hang.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_io::Timer;
use futures_lite::{future, StreamExt};
use pavillion_proto::endpoint::SendError as Refusal;
use pavillion_proto::ClientId;
use pavillion_smol::{
    CallError, Client, Reliability, RpcFailure, SendError, Server, TransferRefusal,
};

#[path = "../../io-std/tests/support/suites.rs"]
mod suites;

use suites::{configs, Suite};

const ID: ClientId = ClientId(*b"smol-large-00001");
const WAIT: Duration = Duration::from_secs(30);
const MIB: usize = 1 << 20;

/// Runs `test` on `smol::block_on`, failing it if it takes longer than `limit`.
fn bounded<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test did not finish within {limit:?}");
    }))
}

/// `len` bytes that differ from any shifted or reordered copy of themselves.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Progress reports as the callback saw them.
type Seen = Arc<Mutex<Vec<(u64, u64)>>>;

fn recorder() -> (Seen, impl FnMut(u64, u64) + Send + 'static) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    (seen, move |acked, total| {
        s.lock().unwrap().push((acked, total))
    })
}

/// Progress never goes back, never passes the total, and ends at it.
fn assert_progress(seen: &Seen, at_least: usize) {
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 2, "progress reported {} times", seen.len());
    let total = seen[0].1;
    assert!(
        total >= at_least as u64,
        "total {total} < payload {at_least}"
    );
    for w in seen.windows(2) {
        assert!(w[0].0 <= w[1].0, "progress went back: {w:?}");
    }
    assert!(seen.iter().all(|&(a, t)| t == total && a <= t), "{seen:?}");
    assert_eq!(seen.last().unwrap().0, total, "progress ended short");
}

/// A server taking messages up to 8 MiB with a reversing function 405, and a client of it.
async fn pair(suite: Suite) -> (Server, Client) {
    let (server_config, client_config) = configs(ID, suite);
    let server = Server::bind("127.0.0.1:0", server_config.max_message(8 * MIB))
        .await
        .unwrap();
    server.register(405, "reverse", |req| {
        let mut v = req.args.to_vec();
        v.reverse();
        Ok::<_, RpcFailure>(v)
    });
    let client_config = client_config
        .max_message(8 * MIB)
        .send_timeout(WAIT)
        .call_timeout(WAIT);
    let client = Client::connect(server.local_addr(), client_config)
        .await
        .unwrap();
    client.wait_connected(WAIT).await.unwrap();
    (server, client)
}

#[test]
fn a_multi_mib_message_goes_each_way_whole_with_progress() {
    bounded(Duration::from_secs(120), async {
        for suite in [Suite::Psk, Suite::Ecc, Suite::NoiseIk] {
            let (server, client) = pair(suite).await;
            let mut at_server = server.on_message(Some("blobs"));
            let mut at_client = client.on_message(Some("blobs"));

            let up = pattern(3 * MIB + 17, 1);
            let (seen, progress) = recorder();
            let delivery = client
                .send_with_progress("blobs", "up", &up, Reliability::Reliable, progress)
                .await
                .unwrap();
            assert_eq!(delivery.acked, vec![server.local_addr()]);
            let got = at_server.next().await.unwrap();
            assert!(
                got.payload() == &up[..],
                "{suite:?}: client→server bytes differ"
            );
            assert_progress(&seen, up.len());

            let down = pattern(3 * MIB + 5, 2);
            let (addr, _) = server.clients().await[0];
            let (seen, progress) = recorder();
            server
                .send_to_with_progress(
                    addr,
                    "blobs",
                    "down",
                    &down,
                    Reliability::Reliable,
                    progress,
                )
                .await
                .unwrap();
            let got = at_client.next().await.unwrap();
            assert!(
                got.payload() == &down[..],
                "{suite:?}: server→client bytes differ"
            );
            assert_progress(&seen, down.len());

            client.close().await;
            server.close().await;
        }
    });
}

#[test]
fn large_call_arguments_and_answer_through_a_registered_handler() {
    bounded(Duration::from_secs(60), async {
        let (server, client) = pair(Suite::NoiseIk).await;
        let args = pattern(2 * MIB + 3, 3);
        let answer = client.call(405, &args).await.unwrap();
        let mut expected = args.clone();
        expected.reverse();
        assert_eq!(answer.len(), expected.len());
        assert!(answer[..] == expected[..], "answer bytes differ");
        assert_eq!(&client.call(405, b"abc").await.unwrap()[..], b"cba");
        client.close().await;
        server.close().await;
    });
}

#[test]
fn a_receiver_with_a_smaller_limit_refuses_and_the_sender_sees_why() {
    bounded(Duration::from_secs(60), async {
        let (server_config, client_config) = configs(ID, Suite::Psk);
        // The server keeps the default limit of 1 MiB; the client would send up to 8 MiB.
        let server = Server::bind("127.0.0.1:0", server_config).await.unwrap();
        let mut messages = server.on_message(None);
        server.register(405, "len", |req| {
            Ok::<_, RpcFailure>(req.args.len().to_string())
        });
        let client_config = client_config
            .max_message(8 * MIB)
            .send_timeout(WAIT)
            .call_timeout(WAIT);
        let client = Client::connect(server.local_addr(), client_config)
            .await
            .unwrap();
        let big = pattern(2 * MIB, 4);
        match client
            .send_message("blobs", "big", &big, Reliability::Reliable)
            .await
        {
            Err(SendError::RefusedByReceiver { reason }) => {
                assert_eq!(reason, TransferRefusal::TooLarge)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        match client.call(405, &big).await {
            Err(CallError::RefusedByReceiver { reason }) => {
                assert_eq!(reason, TransferRefusal::TooLarge)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let huge = vec![0u8; 8 * MIB + 1];
        assert_eq!(
            client
                .send_message("blobs", "huge", &huge, Reliability::Reliable)
                .await,
            Err(SendError::Refused(Refusal::TooLarge))
        );
        assert_eq!(&client.call(405, b"four").await.unwrap()[..], b"4");
        // Nothing but a small message was ever delivered.
        client
            .send_message("blobs", "small", b"ok", Reliability::Reliable)
            .await
            .unwrap();
        assert_eq!(messages.next().await.unwrap().name(), "small");
        client.close().await;
        server.close().await;
    });
}
