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
/// Recovery on loopback takes 0.4-0.9 ms with the current rules (one RTT for the answer that
/// reports the crash, one or two for the new round). The op 4 rule before issue 19 waited two
/// RTO floors of silence (2 x 10 ms) before its round: this test with that rule restored
/// (commit 8e0fa9b's parent, io-std) measured 20.5 ms for psk and 20.6 ms for ecc, so this
/// bound fails under it, while leaving a loaded 2-core machine over ten times what recovery
/// needs now. Suite 3 was sub-millisecond before its 0-RTT data too; its `early_data` check
/// pins that change.
const RECOVERY_BOUND: Duration = Duration::from_millis(15);

/// Crashes per suite. One crash on a loaded machine can take longer than the bound (the relay
/// thread or a retransmission waiting its RTO: 20-115 ms in 5 of 15 runs at load 13); the
/// old rule's wait is a timer, which load only lengthens, so the fastest of three is what
/// tells the rules apart.
const TRIALS: usize = 3;

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

    let mut server = server;
    let mut trials = Vec::new();
    for _ in 0..TRIALS {
        // A claim is acted on at once only if the last handshake round is
        // `min_round_interval` (1 s) old: a crash right after connecting (or recovering)
        // waits that spacing out, which is not what this measures.
        std::thread::sleep(Duration::from_millis(1100));
        // The crash: the quit is lost; a new process binds the same port.
        relay.mute.store(true, Ordering::Relaxed);
        server.close();
        let (tx, rx) = mpsc::channel();
        server = Server::bind(addr, s.clone()).unwrap();
        server.on_message(Some("t"), move |m| {
            let _ = tx.send(m.payload().to_vec());
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
        assert!(took < Duration::from_secs(1), "{suite:?}: {took:?}");
        trials.push((took, server.stats().map_or(0, |s| s.early_data)));
    }
    // The fastest of the crashes is below the old rule's floor (RECOVERY_BOUND). Suite 3
    // repairs with 0-RTT data (not in every crash on a loaded machine: 5 of 18 runs had a
    // fastest crash without it at load 13, so the check is for at least one of the three);
    // suites 1 and 2 never send it.
    let fastest = trials.iter().map(|t| t.0).min().unwrap();
    assert!(
        fastest < RECOVERY_BOUND,
        "{suite:?}: the fastest took {fastest:?}"
    );
    let early = trials.iter().filter(|t| t.1 > 0).count();
    if matches!(suite, Suite::NoiseIk) {
        assert!(early >= 1, "{suite:?}: no recovery came with 0-RTT data");
    } else {
        assert_eq!(early, 0, "{suite:?}");
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
