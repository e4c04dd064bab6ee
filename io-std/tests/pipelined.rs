//! Pipelined sends through the blocking adapter on loopback: handles, the send window and its
//! back-pressure, flush and close. Every wait is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/suites.rs"]
mod suites;

use std::collections::HashSet;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pavillion_proto::ClientId;
use pavillion_std::{Client, Reliability, SendError, Server};
use suites::Suite;

const ID: ClientId = ClientId(*b"pipelined-std-01");
const WAIT: Duration = Duration::from_secs(10);

/// A server on loopback whose subscriber records every payload to `t`, and a connected client
/// with a send window of `window`.
fn pair(suite: Suite, window: usize) -> (Server, Client, Arc<Mutex<Vec<Vec<u8>>>>) {
    let (sc, cc) = suites::configs(ID, suite);
    let server = Server::bind("127.0.0.1:0", sc).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    server.on_message(Some("t"), move |m| {
        g.lock().unwrap().push(m.payload().to_vec())
    });
    let client = Client::connect(server.local_addr(), cc.send_window(window)).unwrap();
    client.wait_connected(WAIT).unwrap();
    // The client counts as connected once it sent its credentials (suites 1 and 2); the
    // server may not hold the session yet, and a message it sends before then goes to nobody.
    let deadline = std::time::Instant::now() + WAIT;
    while server.clients().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never had the client"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (server, client, got)
}

/// A client of a server that never answers (a bound socket that reads nothing).
fn silent(window: usize, send_timeout: Duration) -> (UdpSocket, Client) {
    let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (_, cc) = suites::configs(ID, Suite::Psk);
    let cc = cc.send_window(window).send_timeout(send_timeout);
    let client = Client::connect(hole.local_addr().unwrap(), cc).unwrap();
    (hole, client)
}

#[test]
fn every_pipelined_message_is_delivered_once_and_handles_resolve_in_any_order() {
    for suite in [Suite::Psk, Suite::Ecc, Suite::NoiseIk] {
        let (_server, client, got) = pair(suite, 64);
        const N: u32 = 2000;
        let handles: Vec<_> = (0..N)
            .map(|i| {
                client
                    .send_pipelined("t", "n", &i.to_le_bytes(), Reliability::Reliable)
                    .unwrap()
            })
            .collect();
        // Numbered in send order.
        let ids: Vec<u64> = handles.iter().map(|h| h.id().0).collect();
        assert_eq!(ids, (0..u64::from(N)).collect::<Vec<_>>());
        // Waited on last first: each resolves whatever the order.
        for h in handles.into_iter().rev() {
            let d = h.wait_timeout(WAIT).unwrap();
            assert_eq!(d.acked, vec![client.server_addr()], "{suite:?}");
        }
        client.flush(WAIT).unwrap();
        // The server's application has each message once.
        let deadline = Instant::now() + WAIT;
        while got.lock().unwrap().len() < N as usize && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let got = got.lock().unwrap();
        assert_eq!(got.len(), N as usize, "{suite:?}");
        let distinct: HashSet<_> = got.iter().collect();
        assert_eq!(distinct.len(), N as usize, "{suite:?}: each message once");
    }
}

#[test]
fn flush_waits_for_every_outcome_even_of_dropped_handles() {
    let (_server, client, got) = pair(Suite::Psk, 1024);
    let mut kept = Vec::new();
    for i in 0..500u32 {
        let h = client.send_pipelined("t", "n", &i.to_le_bytes(), Reliability::Reliable);
        // Every other handle is dropped at once: its message is sent all the same.
        if i % 2 == 0 {
            kept.push(h.unwrap());
        }
    }
    client.flush(WAIT).unwrap();
    // Flush returned: every outcome is in.
    assert!(kept.iter().all(|h| h.is_done()));
    // The server acknowledged each, so its application got each message.
    let deadline = Instant::now() + WAIT;
    while got.lock().unwrap().len() < 500 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(got.lock().unwrap().len(), 500);
}

#[test]
fn a_full_window_is_would_block_or_a_wait_and_never_grows() {
    let (_hole, client) = silent(8, Duration::from_millis(800));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            client
                .try_send_pipelined("t", "n", b"x", Reliability::Reliable)
                .unwrap()
        })
        .collect();
    assert_eq!(
        client
            .try_send_pipelined("t", "n", b"x", Reliability::Reliable)
            .unwrap_err(),
        SendError::WouldBlock
    );
    // A blocking send waits for room: nothing more is queued while the window is full.
    let client = Arc::new(client);
    let done = Arc::new(AtomicBool::new(false));
    let waited = {
        let (client, done) = (client.clone(), done.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let h = client.send_pipelined("t", "n", b"y", Reliability::Reliable);
            done.store(true, Ordering::SeqCst);
            (started.elapsed(), h)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !done.load(Ordering::SeqCst),
        "a full window blocks the sender"
    );
    assert!(client.flush(Duration::from_millis(50)).is_err());
    // The silent server's messages time out; their slots free the blocked sender.
    for h in handles {
        assert_eq!(h.wait_timeout(WAIT).unwrap_err(), SendError::TimedOut);
    }
    let (elapsed, h) = waited.join().unwrap();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert_eq!(
        h.unwrap().wait_timeout(WAIT).unwrap_err(),
        SendError::TimedOut
    );
    client.flush(WAIT).unwrap();
}

#[test]
fn closing_resolves_every_handle_with_an_error() {
    let (_hole, client) = silent(16, Duration::from_secs(30));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            client
                .send_pipelined("t", "n", b"x", Reliability::Reliable)
                .unwrap()
        })
        .collect();
    assert!(handles.iter().all(|h| !h.is_done()));
    let started = Instant::now();
    client.close();
    for h in handles {
        assert!(h.is_done());
        assert_eq!(h.wait_timeout(WAIT).unwrap_err(), SendError::Closed);
    }
    // Long before the messages' own 30 s deadline.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_callback_cannot_wait_for_room_or_an_outcome() {
    let (server, client, _got) = pair(Suite::Psk, 1);
    let client = Arc::new(client);
    let weak = Arc::downgrade(&client);
    let (tx, rx) = std::sync::mpsc::channel();
    client.on_message(Some("poke"), move |_| {
        let Some(c) = weak.upgrade() else { return };
        // One slot: the first send takes it; the second would wait for it on the very thread
        // that must free it, and so would a wait for the first's outcome.
        let first = c.send_pipelined("t", "n", b"a", Reliability::Reliable);
        let second = c.send_pipelined("t", "n", b"b", Reliability::Reliable);
        let waited = first.map(|h| h.wait().map(|_| ()));
        let _ = tx.send((second.map(|_| ()), waited));
    });
    server
        .send_message("poke", "now", b"", Reliability::Unreliable, |_, _| true)
        .unwrap();
    let (second, waited) = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(second, Err(SendError::InCallback));
    assert_eq!(waited, Ok(Err(SendError::InCallback)));
    // The first message still goes, and frees its slot.
    client.flush(WAIT).unwrap();
}
