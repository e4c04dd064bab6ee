//! Pipelined sends from a server through the blocking adapter on loopback: handles, the
//! server's send window and its back-pressure, a client gone silent, flush and close. Every
//! wait is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/silent_client.rs"]
mod silent_client;
#[path = "support/suites.rs"]
mod suites;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use pavillion_std::{Client, Reliability, SendError, Server, ServerConfig};
use suites::Suite;

const ID: ClientId = ClientId(*b"srv-pipelined-01");
const WAIT: Duration = Duration::from_secs(10);

/// Polls until the server holds a session, and returns its client's address.
fn held(server: &Server) -> SocketAddr {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some((addr, _)) = server.clients().first() {
            return *addr;
        }
        assert!(Instant::now() < deadline, "the server never had the client");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A server with a send window of `window` and a silent client (connected, then reading
/// nothing); the server's sends time out after `send_timeout`.
fn silent(window: usize, send_timeout: Duration) -> (Server, std::net::UdpSocket, SocketAddr) {
    let psk = Psk::from_bytes([0x5a; 32]);
    let config = ServerConfig::new()
        .psk_client(ID, psk.clone())
        .send_window(window)
        .send_timeout(send_timeout);
    let server = Server::bind("127.0.0.1:0", config).unwrap();
    let socket = silent_client::connect_then_go_silent(server.local_addr(), ID, psk);
    let addr = held(&server);
    assert_eq!(addr, socket.local_addr().unwrap());
    (server, socket, addr)
}

#[test]
fn every_pipelined_message_reaches_the_client_once_and_handles_resolve_in_any_order() {
    for suite in [Suite::Psk, Suite::Ecc, Suite::NoiseIk] {
        let (sc, cc) = suites::configs(ID, suite);
        let server = Server::bind("127.0.0.1:0", sc.send_window(64)).unwrap();
        let client = Client::connect(server.local_addr(), cc).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        client.on_message(Some("t"), move |m| {
            g.lock().unwrap().push(m.payload().to_vec())
        });
        client.wait_connected(WAIT).unwrap();
        let to = held(&server);
        const N: u32 = 2000;
        let handles: Vec<_> = (0..N)
            .map(|i| {
                server
                    .send_pipelined_to(to, "t", "n", &i.to_le_bytes(), Reliability::Reliable)
                    .unwrap()
            })
            .collect();
        let ids: Vec<u64> = handles.iter().map(|h| h.id().0).collect();
        assert_eq!(
            ids,
            (0..u64::from(N)).collect::<Vec<_>>(),
            "numbered in send order"
        );
        // Waited on last first: each resolves whatever the order.
        for h in handles.into_iter().rev() {
            let d = h.wait_timeout(WAIT).unwrap();
            assert_eq!(d.acked, vec![to], "{suite:?}");
        }
        server.flush(WAIT).unwrap();
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
fn a_client_gone_silent_fills_the_window_which_blocks_and_frees_by_timeout() {
    let (server, _socket, to) = silent(8, Duration::from_millis(800));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            server
                .try_send_pipelined_to(to, "t", "n", b"x", Reliability::Reliable)
                .unwrap()
        })
        .collect();
    assert_eq!(
        server
            .try_send_pipelined_to(to, "t", "n", b"x", Reliability::Reliable)
            .unwrap_err(),
        SendError::WouldBlock,
        "the window holds 8"
    );
    // A blocking send waits for room: nothing more is queued while the window is full.
    let server = Arc::new(server);
    let done = Arc::new(AtomicBool::new(false));
    let waited = {
        let (server, done) = (server.clone(), done.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let h = server.send_pipelined_to(to, "t", "n", b"y", Reliability::Reliable);
            done.store(true, Ordering::SeqCst);
            (started.elapsed(), h)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !done.load(Ordering::SeqCst),
        "a full window blocks the sender"
    );
    assert_eq!(
        server.flush(Duration::from_millis(50)),
        Err(SendError::TimedOut)
    );
    // Never acknowledged: the messages time out, and their slots free the blocked sender.
    for h in handles {
        assert_eq!(h.wait_timeout(WAIT).unwrap_err(), SendError::TimedOut);
    }
    let (elapsed, h) = waited.join().unwrap();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert_eq!(
        h.unwrap().wait_timeout(WAIT).unwrap_err(),
        SendError::TimedOut
    );
    server.flush(WAIT).unwrap();
}

#[test]
fn a_send_to_no_session_fails_through_its_handle_and_frees_its_place() {
    let (sc, _) = suites::configs(ID, Suite::Psk);
    let server = Server::bind("127.0.0.1:0", sc.send_window(1)).unwrap();
    let nobody: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for _ in 0..3 {
        // One place: each refused send must have freed it for the next.
        let h = server
            .try_send_pipelined_to(nobody, "t", "n", b"x", Reliability::Reliable)
            .unwrap();
        assert!(matches!(h.wait_timeout(WAIT), Err(SendError::Refused(_))));
        // The place is freed just after the outcome is given: flush waits for that (and
        // times out if the place were never freed).
        server.flush(WAIT).unwrap();
    }
}

#[test]
fn closing_resolves_every_handle_with_an_error() {
    let (server, _socket, to) = silent(16, Duration::from_secs(30));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            server
                .send_pipelined_to(to, "t", "n", b"x", Reliability::Reliable)
                .unwrap()
        })
        .collect();
    assert!(handles.iter().all(|h| !h.is_done()));
    let started = Instant::now();
    server.close();
    for h in handles {
        assert!(h.wait_timeout(WAIT).is_err());
    }
    // Long before the messages' own 30 s deadline.
    assert!(started.elapsed() < Duration::from_secs(5));
}
