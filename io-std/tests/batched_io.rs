//! The driver's batched socket I/O, end to end on loopback: datagrams that wait together are
//! read together (up to 32 per system call on Linux) and every one of them is handled, and the
//! answers to many peers leave together, each to its own peer.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use pavillion_std::{Client, ClientConfig, Reliability, RpcFailure, Server, ServerConfig};

const WAIT: Duration = Duration::from_secs(5);

fn id(i: usize) -> ClientId {
    let mut id = *b"batched-client-0";
    id[15] = b'a' + i as u8;
    ClientId(id)
}

fn psk() -> Psk {
    Psk::from_bytes([0x3c; 32])
}

/// Polls `done` until it holds or [`WAIT`] passes.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < WAIT {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    done()
}

/// A burst of datagrams that the server reads in batches: every one is handled (counted as
/// received and dropped as garbage), and the session that follows works.
#[test]
fn every_datagram_of_a_burst_is_handled() {
    let server = Server::bind("127.0.0.1:0", ServerConfig::new().psk_client(id(0), psk()))
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
    let received = || server.stats().map_or(0, |s| s.datagrams_received);
    assert!(
        eventually(|| received() >= BURST),
        "{} of {BURST} datagrams handled",
        received()
    );
    let client = Client::connect(server.local_addr(), ClientConfig::psk(id(0), psk()))
        .expect("client socket");
    assert_eq!(&client.call(400, b"after").expect("answered")[..], b"after");
}

/// Messages sent as fast as a client can reach the server's subscriber, every one, while the
/// server reads them in batches and acknowledges the reliable ones in batches.
#[test]
fn a_burst_of_messages_is_delivered_whole() {
    let server = Server::bind("127.0.0.1:0", ServerConfig::new().psk_client(id(0), psk()))
        .expect("bind on loopback");
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    server.on_message(Some("burst"), move |_| {
        seen.fetch_add(1, Ordering::Relaxed);
    });
    let client = Client::connect(server.local_addr(), ClientConfig::psk(id(0), psk()))
        .expect("client socket");
    client.wait_connected(WAIT).expect("handshake");
    // Reliable messages from several threads: their datagrams and ACKs interleave.
    const THREADS: u64 = 8;
    const EACH: u64 = 100;
    let client = Arc::new(client);
    let senders: Vec<_> = (0..THREADS)
        .map(|_| {
            let client = client.clone();
            thread::spawn(move || {
                for _ in 0..EACH {
                    client
                        .send_message("burst", "n", &[1; 64], Reliability::Reliable)
                        .expect("acknowledged");
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    assert!(
        eventually(|| count.load(Ordering::Relaxed) == THREADS * EACH),
        "{} of {} messages delivered",
        count.load(Ordering::Relaxed),
        THREADS * EACH
    );
}

/// Calls from many clients at once: the server's answers to them leave in batches, and each
/// reaches the client that asked (each echoes its own caller's payload).
#[test]
fn answers_to_many_clients_reach_each_its_own() {
    const CLIENTS: usize = 12;
    const CALLS: usize = 200;
    let config = (0..CLIENTS).fold(ServerConfig::new(), |c, i| c.psk_client(id(i), psk()));
    let server = Server::bind("127.0.0.1:0", config).expect("bind on loopback");
    server.register(400, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
    let addr = server.local_addr();
    let callers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            thread::spawn(move || {
                let client =
                    Client::connect(addr, ClientConfig::psk(id(i), psk())).expect("client");
                client.wait_connected(WAIT).expect("handshake");
                for n in 0..CALLS {
                    let args = format!("client {i} call {n}");
                    let got = client.call(400, args.as_bytes()).expect("answered");
                    assert_eq!(&got[..], args.as_bytes(), "an answer for another caller");
                }
                client.close();
            })
        })
        .collect();
    for c in callers {
        c.join().expect("caller");
    }
}
