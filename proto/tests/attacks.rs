//! Attacks on the server, each with the protection it pins (docs/SECURITY.md has the table):
//! a spoofed flood from 100k new sources a second (the reply budget table evicts instead of
//! refusing), a captured RPC call replayed 600 times (bounded re-answers), and op 1 floods
//! beyond the reply budget (no public-key work before the rate check).
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::endpoint::{ClientConfig, ClientEvent, ServerConfig};
use pavillion_proto::rng::Rng;
use pavillion_proto::testing::{Captured, Link, Network, Verdict};
use pavillion_proto::wire::noise::NoisePacket;
use pavillion_proto::wire::{CipherId, Datagram, NonceRequest, Setup};
use pavillion_proto::{ClientId, Duration, FunctionId, Instant};

mod common;

use common::{client_addr, client_keys, server_addr, Suite, SUITES};

const ID: ClientId = ClientId(*b"attacked-client1");

fn server_config(suite: Suite) -> ServerConfig {
    common::server_config(suite, ID, 1)
}

fn client_config(suite: Suite, seed: u8) -> ClientConfig {
    common::client_config(suite, ID, server_addr(), seed)
}

/// The `n`-th spoofed source: a new address every time (10.64.0.0/10, then ports).
fn spoofed(n: u32) -> SocketAddr {
    let ip = Ipv4Addr::from(0x0a40_0000 + (n % 0x3f_ffff));
    SocketAddr::new(IpAddr::V4(ip), 1024 + (n / 0x3f_ffff) as u16)
}

/// The first datagram `pick` accepts that a fresh client of `suite` sends to a fresh server.
fn sample(suite: Suite, pick: fn(&Datagram<'_>) -> bool) -> Vec<u8> {
    let mut net = Network::new(99, Link::clean());
    net.add_server(server_addr(), server_config(suite));
    net.add_client(client_addr(), client_config(suite, 98));
    net.capture();
    net.run_for(Duration::from_millis(50));
    net.captured()
        .iter()
        .find(|d| Datagram::parse(&d.bytes).is_ok_and(|p| pick(&p)))
        .expect("the client sent one")
        .bytes
        .clone()
}

/// What an off-path attacker sends: junk shaped like each kind of packet the server answers
/// without a session (36-byte session packets, suite 3 data packets), nonce requests that
/// name the real client's id (suites 1 and 2 keep half-open state for them) or a random one,
/// and replayed suite 3 initiations. One of them, in turn, from each new source.
struct Flood {
    kinds: Vec<Vec<u8>>,
    rng: Rng,
    sent: u32,
    bytes: u64,
}

impl Flood {
    fn new(suite: Suite) -> Self {
        let mut junk_session = b"PavillionS0".to_vec();
        junk_session.extend_from_slice(&[0x5a; 25]);
        assert_eq!(junk_session.len(), 36);
        let mut kinds = vec![junk_session];
        match suite {
            Suite::Psk | Suite::Ecc => {
                let real = sample(suite, |d| {
                    matches!(d, Datagram::Setup(Setup::NonceRequest(_)))
                });
                kinds.push(real);
                let other = Setup::NonceRequest(NonceRequest {
                    cipher: CipherId::Psk,
                    client_id: ClientId([7; 16]),
                    challenge: [1; 16],
                    session_hint: [0; 16],
                    public_key: [0; 32],
                });
                let mut buf = vec![0; other.buffer_len()];
                let n = other.emit(&mut buf).unwrap();
                buf.truncate(n);
                kinds.push(buf);
            }
            Suite::Noise => {
                let initiation = sample(suite, |d| {
                    matches!(d, Datagram::Noise(NoisePacket::Initiation(_)))
                });
                kinds.push(initiation);
                let data = sample(suite, |d| {
                    matches!(d, Datagram::Noise(NoisePacket::Data { .. }))
                });
                kinds.push(data);
            }
        }
        Flood {
            kinds,
            rng: Rng::seed_from_u64(5),
            sent: 0,
            bytes: 0,
        }
    }

    /// Sends `count` packets from `count` new sources.
    fn send(&mut self, net: &mut Network, count: u32) {
        for _ in 0..count {
            let kind = self.sent as usize % self.kinds.len();
            let mut bytes = self.kinds[kind].clone();
            // New challenges and tags each time, so nothing is a repeat of anything.
            let tail = bytes.len().saturating_sub(16);
            self.rng.fill(&mut bytes[tail..]);
            net.inject(spoofed(self.sent), server_addr(), &bytes);
            self.sent += 1;
            self.bytes += bytes.len() as u64;
        }
    }
}

/// Runs a flood of `per_ms` new sources a millisecond for `duration`, with the real client
/// added at `client_at` after the flood starts. Returns when the client connected, from its
/// start, and the bytes the server sent to spoofed sources per byte the attacker sent.
fn flood_run(
    suite: Suite,
    per_ms: u32,
    duration: Duration,
    client_at: Duration,
) -> (Option<Duration>, f64) {
    let mut net = Network::new(3, Link::clean());
    let config = server_config(suite);
    let max_half_open = config.max_half_open;
    net.add_server(server_addr(), config);
    let mut flood = Flood::new(suite);
    let start = net.now();
    let mut client_start = None;
    let mut connected = None;
    let mut replied = 0u64;
    net.capture();
    while net.now() - start < duration {
        if client_start.is_none() && net.now() - start >= client_at {
            net.add_client(client_addr(), client_config(suite, 2));
            client_start = Some(net.now());
        }
        flood.send(&mut net, per_ms);
        net.run_for(Duration::from_millis(1));
        if let Some(t) = client_start {
            if connected.is_none() && net.client(client_addr()).is_connected() {
                connected = Some(net.now() - t);
            }
        }
        let half_open = net.server(server_addr()).half_open_count();
        assert!(
            half_open <= max_half_open,
            "{suite:?}: {half_open} half-open"
        );
        replied += net
            .captured()
            .iter()
            .filter(|d| d.from == server_addr() && d.to != client_addr())
            .map(|d| d.bytes.len() as u64)
            .sum::<u64>();
        net.capture();
    }
    (connected, replied as f64 / flood.bytes as f64)
}

#[test]
fn a_client_connects_within_a_second_while_100k_new_sources_a_second_flood_the_server() {
    for suite in SUITES {
        // 100 new sources a millisecond for 1.5 s; the client starts 0.2 s in.
        let (connected, ratio) = flood_run(
            suite,
            100,
            Duration::from_millis(1500),
            Duration::from_millis(200),
        );
        let t = connected.unwrap_or_else(|| panic!("{suite:?}: never connected during the flood"));
        assert!(
            t <= Duration::from_secs(1),
            "{suite:?}: connected after {t:?}"
        );
        // Unauthenticated replies never amplify: at most 1.07 times the request (suite 2's
        // 108-byte op 11 for a 101-byte op 1), and never more in suite 3.
        let bound = if suite == Suite::Noise { 1.0 } else { 1.07 };
        assert!(
            ratio <= bound,
            "{suite:?}: the server sent {ratio:.3}x the flood's bytes"
        );
    }
}

/// A captured call replayed 600 times: the bytes sent toward the client stay within 1.5
/// times the attacker's.
fn replay_run(suite: Suite, from_elsewhere: bool) -> (u64, u64) {
    let mut net = Network::new(11, Link::clean());
    net.add_server(server_addr(), server_config(suite));
    // Standard call 1 returns a function's name: a 2-byte call with a 1,200-byte answer.
    let big = "x".repeat(1200);
    net.server(server_addr())
        .register_function(FunctionId(7), &big);
    net.add_client(client_addr(), client_config(suite, 2));
    net.run_for(Duration::from_millis(100));
    assert!(net.client(client_addr()).is_connected(), "{suite:?}");
    net.capture();
    let now = net.now();
    net.client(client_addr())
        .call(now, FunctionId::NAME, &7u16.to_le_bytes(), None)
        .unwrap();
    net.run_for(Duration::from_millis(50));
    let answered = net
        .client_events(client_addr())
        .iter()
        .any(|e| matches!(e, ClientEvent::Answered { data, .. } if data.len() == 1200));
    assert!(answered, "{suite:?}: the call was not answered");
    let call: Captured = net
        .captured()
        .iter()
        .find(|d| d.from == client_addr() && d.to == server_addr())
        .expect("the call")
        .clone();
    let attacker = if from_elsewhere {
        "10.0.0.66:40000".parse().unwrap()
    } else {
        client_addr()
    };
    net.capture();
    for _ in 0..600 {
        net.inject(attacker, server_addr(), &call.bytes);
        net.run_for(Duration::from_millis(10));
    }
    net.run_for(Duration::from_millis(100));
    let toward_client: u64 = net
        .captured()
        .iter()
        .filter(|d| d.from == server_addr() && d.to == client_addr())
        .map(|d| d.bytes.len() as u64)
        .sum();
    (toward_client, 600 * call.bytes.len() as u64)
}

#[test]
fn a_call_replayed_600_times_costs_the_attacker_more_than_the_client() {
    for suite in SUITES {
        for elsewhere in [false, true] {
            let (toward_client, attacker) = replay_run(suite, elsewhere);
            let ratio = toward_client as f64 / attacker as f64;
            assert!(
                ratio <= 1.5,
                "{suite:?} (from elsewhere: {elsewhere}): {toward_client} bytes toward the \
                 client for {attacker} of replays ({ratio:.2}x)"
            );
            if elsewhere && suite == Suite::Noise {
                assert_eq!(toward_client, 0, "suite 3 answers no replay from elsewhere");
            }
        }
    }
}

#[test]
fn a_call_whose_answers_are_lost_still_gets_the_cached_answer() {
    for suite in SUITES {
        let mut net = Network::new(12, Link::clean());
        net.add_server(server_addr(), server_config(suite));
        let big = "y".repeat(1200);
        net.server(server_addr())
            .register_function(FunctionId(7), &big);
        net.add_client(client_addr(), client_config(suite, 2));
        net.run_for(Duration::from_millis(100));
        // The server's first three answers are lost; the client's retries are answered from
        // the cache.
        let mut lost = 0;
        net.set_filter(move |d| {
            if d.from == server_addr() && d.bytes.len() > 1200 && lost < 3 {
                lost += 1;
                return Verdict::Drop;
            }
            Verdict::Deliver
        });
        let now = net.now();
        let call = net
            .client(client_addr())
            .call(
                now,
                FunctionId::NAME,
                &7u16.to_le_bytes(),
                Some(Duration::from_secs(5)),
            )
            .unwrap();
        net.run_for(Duration::from_secs(5));
        let answered = net.client_events(client_addr()).iter().any(|e| {
            matches!(e, ClientEvent::Answered { call: c, data, .. } if *c == call && data.len() == 1200)
        });
        assert!(answered, "{suite:?}: the retried call got no answer");
    }
}

/// Op 1 (or a suite 3 initiation) from one source, `count` times, each with a fresh guest
/// key or challenge: the public-key operations the server did for them.
fn public_key_ops_for(suite: Suite, guest: bool, count: u32) -> (u64, u64) {
    let mut config = server_config(suite).allow_guests(guest);
    config.cookie_rate = u32::MAX;
    config.cookie_threshold = usize::MAX;
    let mut net = Network::new(13, Link::clean());
    net.add_server(server_addr(), config);
    let source: SocketAddr = "10.0.0.77:5000".parse().unwrap();
    let template = match suite {
        Suite::Noise => sample(suite, |d| {
            matches!(d, Datagram::Noise(NoisePacket::Initiation(_)))
        }),
        _ => Vec::new(),
    };
    let mut rng = Rng::seed_from_u64(17);
    let mut within = 0;
    let limit = ServerConfig::new([0; 32]).replies_per_second;
    for i in 0..count {
        let bytes = match suite {
            Suite::Noise => template.clone(),
            _ => {
                let (client_id, public_key) = if guest {
                    let k = KeyPair::from_secret_bytes(rng.array());
                    (ClientId(rng.array()), k.public().to_bytes())
                } else {
                    (ID, client_keys().public().to_bytes())
                };
                let req = Setup::NonceRequest(NonceRequest {
                    cipher: if suite == Suite::Psk {
                        CipherId::Psk
                    } else {
                        CipherId::Ecc
                    },
                    client_id,
                    challenge: rng.array(),
                    session_hint: [0; 16],
                    public_key,
                });
                let mut buf = vec![0; req.buffer_len()];
                let n = req.emit(&mut buf).unwrap();
                buf.truncate(n);
                buf
            }
        };
        net.inject(source, server_addr(), &bytes);
        if i + 1 == limit {
            net.run_for(Duration::from_millis(1));
            within = net.server(server_addr()).stats().public_key_ops;
        }
    }
    // All within one second of the first: one budget window.
    net.run_for(Duration::from_millis(1));
    let total = net.server(server_addr()).stats().public_key_ops;
    (within, total)
}

#[test]
fn op1_beyond_the_reply_budget_costs_no_public_key_work() {
    let _ = Instant::ZERO;
    // Within one second, from one source: the budget allows `replies_per_second` replies.
    for (suite, guest) in [
        (Suite::Psk, false),
        (Suite::Ecc, false),
        (Suite::Ecc, true),
        (Suite::Noise, false),
    ] {
        let (within, total) = public_key_ops_for(suite, guest, 1000);
        if suite == Suite::Noise {
            // Suite 3 reads an initiation before charging the budget, so that only an
            // authentic, fresh one spends it (`docs/PROTOCOL.md` §8.2; under load the
            // stateless cookie check, disabled here, comes first and bounds this work). A
            // replay beyond the budget costs the read (one Diffie-Hellman: `ss` is kept)
            // and never the response's.
            let beyond = total - within;
            assert!(
                beyond <= 990,
                "{beyond} public-key operations for 990 replays"
            );
            assert!(beyond > 0, "the replays were read");
            continue;
        }
        assert_eq!(
            total,
            within,
            "{suite:?} guest={guest}: {} public-key operations beyond the budget",
            total - within
        );
        match (suite, guest) {
            (Suite::Psk, _) => assert_eq!(total, 0),
            // A known client's box key is made once and kept.
            (Suite::Ecc, false) => assert_eq!(total, 1),
            // One Diffie-Hellman per guest request within the budget, none beyond it.
            (Suite::Ecc, true) => assert_eq!(total, 10),
            _ => assert!(
                total > 0,
                "the replayed initiations within the budget were read"
            ),
        }
    }
}
