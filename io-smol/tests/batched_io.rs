//! The async driver's batched socket I/O, end to end on loopback: datagrams that wait together
//! are read together (up to 32 per `recvmmsg` on Linux) and every one of them is handled, and
//! the answers to many peers leave together (`sendmmsg`), each to its own peer.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::future::Future;
use std::net::UdpSocket;
use std::time::Duration;

use async_io::Timer;
use futures_lite::future;
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use pavillion_smol::{Client, ClientConfig, RpcFailure, Server, ServerConfig};

fn id(i: usize) -> ClientId {
    let mut id = *b"batched-smol-c-0";
    id[15] = b'a' + i as u8;
    ClientId(id)
}

fn psk() -> Psk {
    Psk::from_bytes([0x3d; 32])
}

/// Runs `test` on `smol::block_on`, failing it if it takes longer than `limit`.
fn bounded<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test did not finish within {limit:?}");
    }))
}

/// A burst of datagrams that the server reads in batches: every one is handled (counted as
/// received, and dropped as garbage), and a session afterwards works.
#[test]
fn every_datagram_of_a_burst_is_handled() {
    bounded(Duration::from_secs(30), async {
        let server = Server::bind("127.0.0.1:0", ServerConfig::new().psk_client(id(0), psk()))
            .await
            .expect("bind on loopback");
        server.register(400, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
        // Queued in the server's socket faster than its driver reads them, so that they wait
        // together; the socket buffer holds this many short datagrams.
        const BURST: u64 = 300;
        let junk = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for i in 0..BURST {
            junk.send_to(&[0xee, i as u8, 1, 2, 3, 4, 5, 6], server.local_addr())
                .expect("send");
        }
        loop {
            let received = server.stats().await.map_or(0, |s| s.datagrams_received);
            assert!(
                received <= BURST,
                "{received} datagrams for a burst of {BURST}"
            );
            if received == BURST {
                break;
            }
            Timer::after(Duration::from_millis(5)).await;
        }
        let client = Client::connect(server.local_addr(), ClientConfig::psk(id(0), psk()))
            .await
            .expect("client socket");
        assert_eq!(
            &client.call(400, b"after").await.expect("answered")[..],
            b"after"
        );
        client.close().await;
        server.close().await;
    });
}

/// Calls from many clients at once: the server's answers to them leave in batches, and each
/// reaches the client that asked (each echoes its own caller's payload).
#[test]
fn answers_to_many_clients_reach_each_its_own() {
    bounded(Duration::from_secs(60), async {
        const CLIENTS: usize = 12;
        const CALLS: usize = 200;
        let config = (0..CLIENTS).fold(ServerConfig::new(), |c, i| c.psk_client(id(i), psk()));
        let server = Server::bind("127.0.0.1:0", config)
            .await
            .expect("bind on loopback");
        server.register(400, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
        let addr = server.local_addr();
        let callers: Vec<_> = (0..CLIENTS)
            .map(|i| {
                smol::spawn(async move {
                    let client = Client::connect(addr, ClientConfig::psk(id(i), psk()))
                        .await
                        .expect("client");
                    for n in 0..CALLS {
                        let args = format!("client {i} call {n}");
                        let got = client.call(400, args.as_bytes()).await.expect("answered");
                        assert_eq!(&got[..], args.as_bytes(), "an answer for another caller");
                    }
                    client.close().await;
                })
            })
            .collect();
        for c in callers {
            c.await;
        }
        server.close().await;
    });
}
