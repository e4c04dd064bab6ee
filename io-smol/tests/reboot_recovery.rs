//! Recovery after a server crash on loopback (issue 19), as `pavillion-std`'s test of the same
//! name: the server goes away without a quit (a relay drops it) and a new one starts on the
//! same port; the client's next message brings it back, in suite 3 as 0-RTT data in the new
//! initiation (`docs/PROTOCOL.md` §12.2).
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::{future, StreamExt};
use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use pavillion_smol::{Client, ClientConfig, Reliability, Server, ServerConfig};

const ID: ClientId = ClientId(*b"smol-reboot-0001");
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

#[derive(Clone, Copy, Debug, PartialEq)]
enum Suite {
    Psk,
    Ecc,
    NoiseIk,
}

fn server_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x22; 32])
}

fn client_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x11; 32])
}

fn configs(suite: Suite) -> (ServerConfig, ClientConfig) {
    let psk = Psk::from_bytes([0x5a; 32]);
    let server = *server_keys().public();
    match suite {
        Suite::Psk => (
            ServerConfig::new().psk_client(ID, psk.clone()),
            ClientConfig::psk(ID, psk),
        ),
        Suite::Ecc | Suite::NoiseIk => {
            let s = ServerConfig::new()
                .keys(server_keys())
                .ecc_client(ID, *client_keys().public());
            let c = match suite {
                Suite::Ecc => ClientConfig::ecc(ID, client_keys(), server),
                _ => ClientConfig::noise_ik(ID, client_keys(), server),
            };
            (s, c)
        }
    }
}

/// Runs `test` on `smol::block_on`, failing it if it takes longer than `limit`.
fn bounded<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test did not finish within {limit:?}");
    }))
}

/// A relay between one client and `server`; while `mute` is set the server's datagrams are
/// dropped (its quit dies with it, as in a crash).
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

async fn crash_and_recover(suite: Suite) {
    let (s, c) = configs(suite);
    let server = Server::bind("127.0.0.1:0", s.clone()).await.unwrap();
    let addr = server.local_addr();
    let relay = Relay::start(addr);
    let client = Client::connect(relay.addr, c.keepalive(None))
        .await
        .unwrap();
    client.wait_connected(WAIT).await.unwrap();
    client
        .send_message("t", "n", b"before", Reliability::Reliable)
        .await
        .unwrap();

    let mut server = server;
    let mut trials = Vec::new();
    for _ in 0..TRIALS {
        // A claim is acted on at once only if the last handshake round is
        // `min_round_interval` (1 s) old: a crash right after connecting (or recovering)
        // waits that spacing out, which is not what this measures.
        Timer::after(Duration::from_millis(1100)).await;
        relay.mute.store(true, Ordering::Relaxed);
        server.close().await;
        server = Server::bind(addr, s.clone()).await.unwrap();
        let mut inbox = server.on_message(Some("t"));
        relay.mute.store(false, Ordering::Relaxed);

        let started = Instant::now();
        client
            .send_message("t", "n", b"after", Reliability::Reliable)
            .await
            .unwrap();
        assert_eq!(inbox.next().await.unwrap().payload(), b"after");
        let took = started.elapsed();
        println!("{suite:?}: delivered after the crash in {took:?}");
        assert!(took < Duration::from_secs(1), "{suite:?}: {took:?}");
        trials.push((took, server.stats().await.map_or(0, |s| s.early_data)));
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
    if suite == Suite::NoiseIk {
        assert!(early >= 1, "{suite:?}: no recovery came with 0-RTT data");
    } else {
        assert_eq!(early, 0, "{suite:?}");
    }
    client.close().await;
    server.close().await;
}

#[test]
fn suite_3_recovers_a_crashed_server_with_zero_rtt_data() {
    bounded(Duration::from_secs(30), crash_and_recover(Suite::NoiseIk));
}

#[test]
fn suites_1_and_2_recover_a_crashed_server() {
    bounded(Duration::from_secs(30), async {
        crash_and_recover(Suite::Psk).await;
        crash_and_recover(Suite::Ecc).await;
    });
}
