//! Acknowledgement hand-off through io-smol on loopback (`docs/PROTOCOL.md` §18), in every
//! suite and at either end: a client's reliable send resolves only after the server's
//! application completed the message's hand-off, a server's send to a client only after the
//! client's application completed it, and a refused message arrives twice. Every test is
//! bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use futures_lite::{future, StreamExt};
use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::crypto::Psk;
use pavillion_proto::{ClientId, PeerId};
use pavillion_smol::{Client, ClientConfig, Reliability, Server, ServerConfig};

const ID: ClientId = ClientId(*b"smol-handoff-cl1");

#[derive(Clone, Copy, Debug)]
enum Suite {
    Psk,
    Ecc,
    NoiseIk,
}

const SUITES: [Suite; 3] = [Suite::Psk, Suite::Ecc, Suite::NoiseIk];

fn server_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x23; 32])
}

fn client_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x13; 32])
}

fn configs(suite: Suite) -> (ServerConfig, ClientConfig) {
    let psk = Psk::from_bytes([0x5b; 32]);
    let server = *server_keys().public();
    let keyed = ServerConfig::new()
        .keys(server_keys())
        .ecc_client(ID, *client_keys().public());
    let (s, c) = match suite {
        Suite::Psk => (
            ServerConfig::new().psk_client(ID, psk.clone()),
            ClientConfig::psk(ID, psk),
        ),
        Suite::Ecc => (keyed, ClientConfig::ecc(ID, client_keys(), server)),
        Suite::NoiseIk => (keyed, ClientConfig::noise_ik(ID, client_keys(), server)),
    };
    (s, c.send_timeout(Duration::from_secs(10)))
}

/// Runs `test` on `smol::block_on`, failing it if it takes longer than `limit`.
fn bounded<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test did not finish within {limit:?}");
    }))
}

#[test]
fn a_send_resolves_only_after_the_hand_off_completes() {
    bounded(Duration::from_secs(60), async {
        for suite in SUITES {
            let (sc, cc) = configs(suite);
            let server = Server::bind("127.0.0.1:0", sc).await.unwrap();
            let mut held = server.on_message_handoff(Some("t"));
            let client = Arc::new(Client::connect(server.local_addr(), cc).await.unwrap());
            let c = client.clone();
            let send =
                smol::spawn(
                    async move { c.send_message("t", "n", b"x", Reliability::Reliable).await },
                );
            let (m, handoff) = held.next().await.unwrap();
            assert_eq!(m.payload(), b"x");
            assert_eq!(handoff.key().unwrap().peer, PeerId::Client(ID));
            // Held past several retransmission timeouts: the send must still be waiting.
            Timer::after(Duration::from_millis(1500)).await;
            assert!(
                !send.is_finished(),
                "{suite:?}: the send resolved before completion"
            );
            assert_eq!(handoff.complete().await, Ok(()));
            assert!(send.await.is_ok(), "{suite:?}");
            let stats = server.stats().await.unwrap();
            assert!(stats.handoff_duplicates > 0, "{suite:?}");
            drop(client);
            server.close().await;
        }
    });
}

#[test]
fn a_refused_message_arrives_twice() {
    bounded(Duration::from_secs(60), async {
        for suite in SUITES {
            let (sc, cc) = configs(suite);
            let server = Server::bind("127.0.0.1:0", sc).await.unwrap();
            let mut held = server.on_message_handoff(None);
            let client = Arc::new(Client::connect(server.local_addr(), cc).await.unwrap());
            let c = client.clone();
            let send = smol::spawn(async move {
                c.send_message("any", "n", b"again", Reliability::Reliable)
                    .await
            });
            let (first, handoff) = held.next().await.unwrap();
            handoff.refuse();
            let (second, handoff) = held.next().await.unwrap();
            assert_eq!(first.payload(), second.payload());
            assert!(!send.is_finished());
            handoff.complete().await.unwrap();
            assert!(send.await.is_ok(), "{suite:?}");
            assert_eq!(server.stats().await.unwrap().handoffs_refused, 1);
            drop(client);
            server.close().await;
        }
    });
}

/// The client's address as `server` knows it, once its session is up there.
async fn client_addr(server: &Server) -> std::net::SocketAddr {
    loop {
        if let Some((a, _)) = server.clients().await.first() {
            return *a;
        }
        Timer::after(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_servers_send_resolves_only_after_the_clients_hand_off_completes() {
    bounded(Duration::from_secs(60), async {
        for suite in SUITES {
            let (sc, cc) = configs(suite);
            let server = Arc::new(
                Server::bind("127.0.0.1:0", sc.send_timeout(Duration::from_secs(10)))
                    .await
                    .unwrap(),
            );
            let client = Client::connect(server.local_addr(), cc).await.unwrap();
            let mut held = client.on_message_handoff(Some("t"));
            client.wait_connected(Duration::from_secs(5)).await.unwrap();
            let addr = client_addr(&server).await;
            let s = server.clone();
            let send =
                smol::spawn(
                    async move { s.send_to(addr, "t", "n", b"x", Reliability::Reliable).await },
                );
            let (m, handoff) = held.next().await.unwrap();
            assert_eq!(m.payload(), b"x");
            assert_eq!(handoff.key(), None, "a client's hand-off has no key");
            // Held past several retransmission timeouts: the send must still be waiting.
            Timer::after(Duration::from_millis(1500)).await;
            assert!(
                !send.is_finished(),
                "{suite:?}: the send resolved before completion"
            );
            assert_eq!(handoff.complete().await, Ok(()));
            assert!(send.await.is_ok(), "{suite:?}");
            let stats = client.stats().await.unwrap();
            assert!(stats.handoff_duplicates > 0, "{suite:?}");
            drop(client);
            if let Ok(server) = Arc::try_unwrap(server) {
                server.close().await;
            }
        }
    });
}

#[test]
fn a_message_refused_by_the_client_arrives_twice() {
    bounded(Duration::from_secs(60), async {
        for suite in SUITES {
            let (sc, cc) = configs(suite);
            let server = Arc::new(
                Server::bind("127.0.0.1:0", sc.send_timeout(Duration::from_secs(10)))
                    .await
                    .unwrap(),
            );
            let client = Client::connect(server.local_addr(), cc).await.unwrap();
            let mut held = client.on_message_handoff(None);
            client.wait_connected(Duration::from_secs(5)).await.unwrap();
            let addr = client_addr(&server).await;
            let s = server.clone();
            let send = smol::spawn(async move {
                s.send_to(addr, "any", "n", b"again", Reliability::Reliable)
                    .await
            });
            let (first, handoff) = held.next().await.unwrap();
            handoff.refuse();
            let (second, handoff) = held.next().await.unwrap();
            assert_eq!(first.payload(), second.payload());
            assert!(!send.is_finished());
            handoff.complete().await.unwrap();
            assert!(send.await.is_ok(), "{suite:?}");
            assert_eq!(client.stats().await.unwrap().handoffs_refused, 1);
            drop(client);
            if let Ok(server) = Arc::try_unwrap(server) {
                server.close().await;
            }
        }
    });
}
