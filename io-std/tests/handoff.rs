//! Acknowledgement hand-off through the blocking adapter on loopback (`docs/PROTOCOL.md`
//! §18), at either end: a client's reliable send returns only after the server's application
//! completed the message's hand-off, a server's send to a client only after the client's
//! application completed it, and a refused message arrives twice.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use pavillion_proto::ClientId;
use pavillion_std::keys::generate_psk;
use pavillion_std::{Client, ClientConfig, Handoff, Reliability, Server, ServerConfig};

const ID: ClientId = ClientId(*b"handoff-std-cli1");
const WAIT: Duration = Duration::from_secs(5);

fn pair() -> (Server, Client, mpsc::Receiver<(Vec<u8>, Handoff)>) {
    let psk = generate_psk();
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig::new().psk_client(ID, psk.clone()),
    )
    .unwrap();
    let (tx, rx) = mpsc::channel();
    server.on_message_handoff(Some("t"), move |m, h| {
        let _ = tx.send((m.payload().to_vec(), h));
    });
    let client = Client::connect(
        server.local_addr(),
        ClientConfig::psk(ID, psk).send_timeout(Duration::from_secs(10)),
    )
    .unwrap();
    (server, client, rx)
}

#[test]
fn a_send_returns_only_after_the_hand_off_completes() {
    let (server, client, held) = pair();
    let sender = thread::spawn(move || {
        let started = Instant::now();
        let r = client.send_message("t", "n", b"x", Reliability::Reliable);
        (r, started.elapsed(), client)
    });
    let (payload, handoff) = held.recv_timeout(WAIT).unwrap();
    assert_eq!(payload, b"x");
    assert_eq!(
        handoff.key().unwrap().peer,
        pavillion_proto::PeerId::Client(ID)
    );
    // Held past several retransmission timeouts: the send must still be waiting.
    thread::sleep(Duration::from_millis(1500));
    assert!(!sender.is_finished(), "the send returned before completion");
    assert_eq!(handoff.complete(), Ok(()));
    let (result, elapsed, _client) = sender.join().unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(elapsed >= Duration::from_millis(1500));
    // The retransmissions while held were swallowed, not delivered again.
    assert!(held.try_recv().is_err());
    let stats = server.stats().unwrap();
    assert!(stats.handoff_duplicates > 0);
}

#[test]
fn a_refused_message_arrives_twice() {
    let (server, client, held) = pair();
    let sender =
        thread::spawn(move || client.send_message("t", "n", b"again", Reliability::Reliable));
    let (first, handoff) = held.recv_timeout(WAIT).unwrap();
    handoff.refuse();
    let (second, handoff) = held.recv_timeout(WAIT).unwrap();
    assert_eq!(first, second);
    assert!(!sender.is_finished());
    handoff.complete().unwrap();
    assert!(sender.join().unwrap().is_ok());
    assert_eq!(server.stats().unwrap().handoffs_refused, 1);
}

#[test]
fn a_dropped_token_refuses_and_a_callback_may_complete_at_once() {
    let psk = generate_psk();
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig::new().psk_client(ID, psk.clone()),
    )
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let mut seen = 0;
    server.on_message_handoff(None, move |m, h| {
        seen += 1;
        let _ = tx.send(m.payload().to_vec());
        // The first copy is dropped (refused), the second completed on the driver's thread.
        if seen > 1 {
            assert_eq!(h.complete(), Ok(()));
        }
    });
    let client = Client::connect(server.local_addr(), ClientConfig::psk(ID, psk)).unwrap();
    client
        .send_message("any", "n", b"y", Reliability::Reliable)
        .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), b"y");
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), b"y");
    assert!(rx.try_recv().is_err());
}

/// A connected pair whose client holds the server's messages to `target` (every target with
/// `None`), and the client's address as the server knows it.
fn client_pair(
    target: Option<&str>,
) -> (
    Server,
    Client,
    std::net::SocketAddr,
    mpsc::Receiver<(Vec<u8>, Handoff)>,
) {
    let psk = generate_psk();
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig::new()
            .psk_client(ID, psk.clone())
            .send_timeout(Duration::from_secs(10)),
    )
    .unwrap();
    let client = Client::connect(server.local_addr(), ClientConfig::psk(ID, psk)).unwrap();
    let (tx, rx) = mpsc::channel();
    client.on_message_handoff(target, move |m, h| {
        let _ = tx.send((m.payload().to_vec(), h));
    });
    client.wait_connected(WAIT).unwrap();
    let deadline = Instant::now() + WAIT;
    let addr = loop {
        if let Some((a, _)) = server.clients().first() {
            break *a;
        }
        assert!(Instant::now() < deadline, "the server never saw the client");
        thread::sleep(Duration::from_millis(10));
    };
    (server, client, addr, rx)
}

#[test]
fn a_servers_send_returns_only_after_the_clients_hand_off_completes() {
    let (server, client, addr, held) = client_pair(Some("t"));
    let sender = thread::spawn(move || {
        let started = Instant::now();
        let r = server.send_to(addr, "t", "n", b"x", Reliability::Reliable);
        (r, started.elapsed(), server)
    });
    let (payload, handoff) = held.recv_timeout(WAIT).unwrap();
    assert_eq!(payload, b"x");
    assert_eq!(handoff.key(), None, "a client's hand-off has no key");
    // Held past several retransmission timeouts: the send must still be waiting.
    thread::sleep(Duration::from_millis(1500));
    assert!(!sender.is_finished(), "the send returned before completion");
    assert_eq!(handoff.complete(), Ok(()));
    let (result, elapsed, _server) = sender.join().unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(elapsed >= Duration::from_millis(1500));
    // The retransmissions while held were swallowed, not delivered again.
    assert!(held.try_recv().is_err());
    let stats = client.stats().unwrap();
    assert!(stats.handoff_duplicates > 0);
}

#[test]
fn a_message_refused_by_the_client_arrives_twice() {
    let (server, client, addr, held) = client_pair(None);
    let sender = thread::spawn(move || {
        let r = server.send_to(addr, "any", "n", b"again", Reliability::Reliable);
        (r, server)
    });
    let (first, handoff) = held.recv_timeout(WAIT).unwrap();
    handoff.refuse();
    let (second, handoff) = held.recv_timeout(WAIT).unwrap();
    assert_eq!(first, second);
    assert!(!sender.is_finished());
    handoff.complete().unwrap();
    let (result, _server) = sender.join().unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(client.stats().unwrap().handoffs_refused, 1);
}

#[test]
fn other_targets_reach_the_clients_plain_callbacks_at_once() {
    let (server, client, addr, held) = client_pair(Some("t"));
    let (tx, rx) = mpsc::channel();
    client.on_message(None, move |m| {
        let _ = tx.send(m.payload().to_vec());
    });
    let started = Instant::now();
    server
        .send_to(addr, "u", "n", b"plain", Reliability::Reliable)
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), b"plain");
    assert!(held.try_recv().is_err());
}
