//! Recovery after a server crash on loopback (issue 19): the server process goes away without
//! a quit and a new one starts on the same port. The client learns of it from the new
//! server's answer to its next packet (type 5 in suite 3, op 4 in suites 1 and 2) and comes
//! back by itself; in suite 3 the message that drew the answer travels in the new initiation
//! as 0-RTT data (`docs/PROTOCOL.md` §12.2).
//!
//! A crash is a server whose quit never reaches the client: the client talks to the server
//! through a small UDP relay in this test, which drops everything from the server while the
//! server closes.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use pavillion_proto::ClientId;
use pavillion_std::{Client, Reliability, Server};

#[path = "support/suites.rs"]
mod suites;

use suites::Suite;

const ID: ClientId = ClientId(*b"reboot-client-01");
const WAIT: Duration = Duration::from_secs(5);

/// A relay between one client and `server`: datagrams from the client go to the server,
/// the server's go back to the last client address seen. While `mute` is set, the server's
/// datagrams are dropped (its quit dies with it, as in a crash).
struct Relay {
    addr: SocketAddr,
    mute: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(server: SocketAddr) -> Relay {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let (mute, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (m, s) = (mute.clone(), stop.clone());
        thread::spawn(move || {
            let mut client = None;
            let mut buf = vec![0u8; 65_536];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if from == server {
                    if let (Some(to), false) = (client, m.load(Ordering::Relaxed)) {
                        let _ = socket.send_to(&buf[..n], to);
                    }
                } else {
                    client = Some(from);
                    let _ = socket.send_to(&buf[..n], server);
                }
            }
        });
        Relay { addr, mute, stop }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn crash_and_recover(suite: Suite) {
    let (s, c) = suites::configs(ID, suite);
    let server = Server::bind("127.0.0.1:0", s.clone()).unwrap();
    let addr = server.local_addr();
    let relay = Relay::start(addr);
    let client = Client::connect(relay.addr, c.keepalive(None)).unwrap();
    client.wait_connected(WAIT).unwrap();
    let d = client
        .send_message("t", "n", b"before", Reliability::Reliable)
        .unwrap();
    assert_eq!(d.acked.len(), 1);

    // A claim is acted on at once only if the last handshake round is `min_round_interval`
    // (1 s) old: a crash right after connecting waits that spacing out, which is not what
    // this measures.
    std::thread::sleep(Duration::from_millis(1100));
    // The crash: the quit is lost; a new process binds the same port.
    relay.mute.store(true, Ordering::Relaxed);
    server.close();
    let (tx, rx) = mpsc::channel();
    let server = Server::bind(addr, s).unwrap();
    server.on_message(Some("t"), move |m| {
        let _ = tx.send(m.payload.to_vec());
    });
    relay.mute.store(false, Ordering::Relaxed);

    let started = Instant::now();
    let d = client
        .send_message("t", "n", b"after", Reliability::Reliable)
        .unwrap();
    assert_eq!(d.acked.len(), 1, "{suite:?}");
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), b"after", "{suite:?}");
    let took = started.elapsed();
    println!("{suite:?}: delivered after the crash in {took:?}");
    // Far below the 1 s handshake spacing and the 2 x RTO check of the old op 4 rule.
    assert!(took < Duration::from_secs(1), "{suite:?}: {took:?}");
    let early = server.stats().map_or(0, |s| s.early_data);
    if matches!(suite, Suite::NoiseIk) {
        assert_eq!(early, 1, "the message came as 0-RTT data");
    } else {
        assert_eq!(early, 0);
    }
    client.close();
    server.close();
}

#[test]
fn suite_3_recovers_a_crashed_server_with_zero_rtt_data() {
    crash_and_recover(Suite::NoiseIk);
}

#[test]
fn suites_1_and_2_recover_a_crashed_server() {
    crash_and_recover(Suite::Psk);
    crash_and_recover(Suite::Ecc);
}
