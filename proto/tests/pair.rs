//! Client/server behaviour over the in-memory network, for every suite.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use pavillion_proto::crypto::ecc::{self, KeyPair};
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{
    AuthFailure, ClientConfig, ClientEvent, DropReason, FailReason, SendOptions, ServerConfig,
    ServerEvent,
};
use pavillion_proto::handshake::HandshakeError;
use pavillion_proto::testing::{Link, Network, Node, Verdict};
use pavillion_proto::wire::{CipherId, Datagram, NonceRequest, PskClientInfo, Setup};
use pavillion_proto::{ClientId, Counter, Duration, MessageId, PeerId};

use common::Observed;

const ID: ClientId = ClientId(*b"test-client-0001");

fn server_addr() -> SocketAddr {
    "10.0.0.1:1783".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "10.0.0.2:40000".parse().unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suite {
    Psk,
    Ecc,
    Guest,
    /// Suite 3, Noise IK.
    NoiseIk,
    /// Suite 3, Noise IKpsk2.
    NoiseIkPsk,
    /// Suite 3, Noise NNpsk0.
    NoisePsk,
    /// Suite 3, IK with a key the server does not know.
    NoiseGuest,
}

const SUITES: [Suite; 7] = [
    Suite::Psk,
    Suite::Ecc,
    Suite::Guest,
    Suite::NoiseIk,
    Suite::NoiseIkPsk,
    Suite::NoisePsk,
    Suite::NoiseGuest,
];

fn psk() -> Psk {
    Psk::from_bytes([0x42; 32])
}

fn server_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x22; 32])
}

fn client_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x11; 32])
}

fn server_config(suite: Suite, seed: u8) -> ServerConfig {
    let base = ServerConfig::new([seed; 32]);
    match suite {
        Suite::Psk => base.with_psk_client(ID, psk()),
        Suite::Ecc => base
            .with_keys(server_keys())
            .with_ecc_client(ID, *client_keys().public()),
        Suite::Guest | Suite::NoiseGuest => base.with_keys(server_keys()).allow_guests(true),
        Suite::NoiseIk => base
            .with_keys(server_keys())
            .with_ecc_client(ID, *client_keys().public()),
        Suite::NoiseIkPsk => base
            .with_keys(server_keys())
            .with_ecc_client(ID, *client_keys().public())
            .with_psk_client(ID, psk()),
        Suite::NoisePsk => base.with_psk_client(ID, psk()),
    }
}

fn client_config(suite: Suite, seed: u8) -> ClientConfig {
    let server_pub = *server_keys().public();
    match suite {
        Suite::Psk => ClientConfig::psk(ID, psk(), server_addr(), [seed; 32]),
        Suite::Ecc => ClientConfig::ecc(ID, client_keys(), server_pub, server_addr(), [seed; 32]),
        Suite::Guest => ClientConfig::guest(client_keys(), server_pub, server_addr(), [seed; 32]),
        Suite::NoiseIk => {
            ClientConfig::noise_ik(ID, client_keys(), server_pub, server_addr(), [seed; 32])
        }
        Suite::NoiseIkPsk => {
            ClientConfig::noise_ik(ID, client_keys(), server_pub, server_addr(), [seed; 32])
                .with_noise_psk(psk())
        }
        Suite::NoisePsk => ClientConfig::noise_psk(ID, psk(), server_addr(), [seed; 32]),
        Suite::NoiseGuest => {
            ClientConfig::noise_guest(client_keys(), server_pub, server_addr(), [seed; 32])
        }
    }
}

fn network(suite: Suite, link: Link, seed: u64) -> Network {
    let mut net = Network::new(seed, link);
    net.add_server(server_addr(), server_config(suite, 1));
    net.add_client(client_addr(), client_config(suite, 2));
    net
}

fn send(net: &mut Network, payload: &[u8]) -> MessageId {
    let now = net.now();
    net.client(client_addr())
        .send_message(now, "target", "name", payload, SendOptions::reliable())
        .unwrap()
}

fn messages(events: &[impl Observed]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| e.message().map(|m| m.payload().to_vec()))
        .collect()
}

fn delivered(events: &[impl Observed]) -> Vec<MessageId> {
    events.iter().filter_map(Observed::delivered).collect()
}

#[test]
fn every_suite_handshakes_and_delivers_both_ways() {
    for suite in SUITES {
        let mut net = network(suite, Link::clean(), 1);
        net.run_for(Duration::from_millis(50));
        let server_events = net.server_events(server_addr());
        let expected_peer = match suite {
            Suite::Guest | Suite::NoiseGuest => {
                PeerId::Guest(ecc::guest_id(client_keys().public()))
            }
            _ => PeerId::Client(ID),
        };
        assert!(
            server_events.contains(&ServerEvent::Connected {
                addr: client_addr(),
                peer: expected_peer
            }),
            "{suite:?}: {server_events:?}"
        );
        assert!(net.client(client_addr()).is_connected(), "{suite:?}");

        let id = send(&mut net, b"up");
        let now = net.now();
        let down = net
            .server(server_addr())
            .send_message(
                now,
                client_addr(),
                "cmd",
                "go",
                b"down",
                SendOptions::reliable(),
            )
            .unwrap();
        net.run_for(Duration::from_millis(50));
        let s = net.server_events(server_addr());
        let c = net.client_events(client_addr());
        assert_eq!(messages(&s), [b"up".to_vec()], "{suite:?}");
        assert_eq!(messages(&c), [b"down".to_vec()], "{suite:?}");
        assert_eq!(delivered(&c), [id], "{suite:?}");
        assert_eq!(delivered(&s), [down], "{suite:?}");
    }
}

#[test]
fn guest_is_refused_when_guests_are_not_allowed() {
    let mut net = Network::new(3, Link::clean());
    net.add_server(
        server_addr(),
        ServerConfig::new([1; 32]).with_keys(server_keys()),
    );
    net.add_client(client_addr(), client_config(Suite::Guest, 2));
    let id = send(&mut net, b"x");
    net.run_for(Duration::from_secs(1));
    let c = net.client_events(client_addr());
    assert!(c.contains(&ClientEvent::HandshakeFailed {
        addr: server_addr(),
        reason: HandshakeError::UnknownClient
    }));
    assert!(c.contains(&ClientEvent::Failed {
        id,
        reason: FailReason::Rejected
    }));
    assert_eq!(net.server(server_addr()).session_count(), 0);
}

#[test]
fn wrong_psk_gives_no_session_and_no_delivery() {
    let mut net = Network::new(4, Link::clean());
    net.add_server(
        server_addr(),
        ServerConfig::new([1; 32]).with_psk_client(ID, Psk::from_bytes([0x43; 32])),
    );
    net.add_client(client_addr(), client_config(Suite::Psk, 2));
    net.capture();
    let id = send(&mut net, b"secret");
    net.run_for(Duration::from_secs(10));
    let c = net.client_events(client_addr());
    // Said as what it is, not a timeout (PROTOCOL.md §5.5).
    assert!(
        c.contains(&ClientEvent::Failed {
            id,
            reason: FailReason::AuthenticationFailed(AuthFailure::WrongPsk)
        }),
        "{c:?}"
    );
    assert!(messages(&net.server_events(server_addr())).is_empty());
    assert_eq!(net.server(server_addr()).session_count(), 0);
    assert!(!net.client(client_addr()).is_connected());
    assert!(
        net.client(client_addr())
            .stats()
            .dropped(DropReason::BadHandshake)
            > 0
    );

    // The client refused the server's nonce; an attacker holding the wrong key would not stop
    // there. It answers the last op 2 with a client-info tagged under its key: the server must
    // refuse that too.
    let nonce = net
        .captured()
        .iter()
        .rev()
        .find_map(|d| match Datagram::parse(&d.bytes) {
            Ok(Datagram::Setup(Setup::PskNonce(n))) => Some(n),
            _ => None,
        })
        .expect("the server answered op 1");
    let mut info = PskClientInfo {
        cipher: CipherId::Psk,
        client_id: ID,
        client_nonce: [7; 32],
        server_nonce: nonce.server_nonce,
        counter: Counter(1000),
        tag: [0; 32],
    };
    info.tag = pavillion_proto::crypto::psk::client_info_tag(&psk(), &info.authenticated_bytes());
    let mut buf = [0u8; 256];
    let n = Setup::PskClientInfo(info).emit(&mut buf).unwrap();
    let refused = net
        .server(server_addr())
        .stats()
        .dropped(DropReason::BadHandshake);
    net.inject(client_addr(), server_addr(), &buf[..n]);
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.server(server_addr()).session_count(), 0);
    assert_eq!(
        net.server(server_addr())
            .stats()
            .dropped(DropReason::BadHandshake),
        refused + 1
    );
}

#[test]
fn wrong_server_key_gives_no_session() {
    let mut net = Network::new(5, Link::clean());
    net.add_server(server_addr(), server_config(Suite::Ecc, 1));
    let wrong = *KeyPair::from_secret_bytes([0x99; 32]).public();
    net.add_client(
        client_addr(),
        ClientConfig::ecc(ID, client_keys(), wrong, server_addr(), [2; 32]),
    );
    send(&mut net, b"x");
    net.run_for(Duration::from_secs(3));
    assert!(messages(&net.server_events(server_addr())).is_empty());
    assert!(!net.client(client_addr()).is_connected());
}

#[test]
fn unknown_client_id_is_rejected() {
    for suite in [Suite::Psk, Suite::Ecc] {
        let mut net = Network::new(6, Link::clean());
        net.add_server(server_addr(), server_config(suite, 1));
        let mut cfg = client_config(suite, 2);
        cfg.client_id = ClientId(*b"someone-else-000");
        net.add_client(client_addr(), cfg);
        let id = send(&mut net, b"x");
        net.run_for(Duration::from_secs(1));
        let c = net.client_events(client_addr());
        assert!(
            c.contains(&ClientEvent::HandshakeFailed {
                addr: server_addr(),
                reason: HandshakeError::UnknownClient
            }),
            "{suite:?}: {c:?}"
        );
        assert!(c.contains(&ClientEvent::Failed {
            id,
            reason: FailReason::Rejected
        }));
        assert_eq!(net.server(server_addr()).session_count(), 0);
    }
}

#[test]
fn message_sent_before_the_handshake_is_delivered() {
    for suite in SUITES {
        let mut net = network(suite, Link::clean(), 7);
        // Sent at once, before any datagram has moved.
        let id = send(&mut net, b"early");
        net.run_for(Duration::from_millis(100));
        assert_eq!(
            messages(&net.server_events(server_addr())),
            [b"early".to_vec()],
            "{suite:?}"
        );
        assert_eq!(
            delivered(&net.client_events(client_addr())),
            [id],
            "{suite:?}"
        );
    }
}

#[test]
fn thousand_messages_under_30_percent_loss_arrive_exactly_once() {
    for suite in SUITES {
        let mut net = network(suite, Link::lossy(0.3), 8);
        let mut ids = Vec::new();
        for i in 0..1000u32 {
            let now = net.now();
            let opts = SendOptions::reliable().with_timeout(Duration::from_secs(600));
            ids.push(
                net.client(client_addr())
                    .send_message(now, "bulk", "n", &i.to_le_bytes(), opts)
                    .unwrap(),
            );
        }
        let mut got: BTreeMap<u32, u32> = BTreeMap::new();
        let mut acked = Vec::new();
        net.run_until(Duration::from_secs(600), |net| {
            for p in messages(&net.server_events(server_addr())) {
                *got.entry(u32::from_le_bytes(p.try_into().unwrap()))
                    .or_default() += 1;
            }
            acked.extend(delivered(&net.client_events(client_addr())));
            acked.len() == 1000
        });
        assert_eq!(got.len(), 1000, "{suite:?}: every message arrived");
        assert!(got.values().all(|n| *n == 1), "{suite:?}: none twice");
        acked.sort();
        assert_eq!(acked, ids, "{suite:?}: every message acknowledged once");
        assert!(net.stats().lost > 0);
    }
}

#[test]
fn duplication_and_reordering_deliver_exactly_once() {
    let link = Link {
        jitter: Duration::from_millis(5),
        duplicate: 0.3,
        ..Link::lossy(0.1)
    };
    let mut net = network(Suite::Psk, link, 9);
    for i in 0..200u32 {
        let now = net.now();
        net.client(client_addr())
            .send_message(now, "t", "n", &i.to_le_bytes(), SendOptions::reliable())
            .unwrap();
        net.run_for(Duration::from_micros(200));
    }
    net.run_for(Duration::from_secs(10));
    let mut got = messages(&net.server_events(server_addr()));
    assert_eq!(got.len(), 200);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 200);
    assert_eq!(delivered(&net.client_events(client_addr())).len(), 200);
    assert!(
        net.server(server_addr())
            .stats()
            .dropped(DropReason::Duplicate)
            > 0
    );
}

#[test]
fn replayed_session_packet_is_rejected_and_reacknowledged() {
    let mut net = network(Suite::Psk, Link::clean(), 10);
    net.run_for(Duration::from_millis(50));
    net.capture();
    send(&mut net, b"once");
    net.run_for(Duration::from_millis(50));
    assert_eq!(
        messages(&net.server_events(server_addr())),
        [b"once".to_vec()]
    );
    let original = net
        .captured()
        .iter()
        .find(|d| {
            d.from == client_addr() && matches!(Datagram::parse(&d.bytes), Ok(Datagram::Session(_)))
        })
        .unwrap()
        .clone();
    net.capture();
    for _ in 0..3 {
        net.inject(original.from, original.to, &original.bytes);
    }
    net.run_for(Duration::from_millis(50));
    assert!(
        messages(&net.server_events(server_addr())).is_empty(),
        "never delivered twice"
    );
    assert_eq!(
        net.server(server_addr())
            .stats()
            .dropped(DropReason::Duplicate),
        3
    );
    let acks = net
        .captured()
        .iter()
        .filter(|d| d.from == server_addr())
        .count();
    assert_eq!(acks, 3, "each copy is acknowledged again");
}

#[test]
fn replayed_handshake_packets_change_nothing() {
    for suite in [Suite::Psk, Suite::Ecc] {
        let mut net = network(suite, Link::clean(), 11);
        net.capture();
        net.run_for(Duration::from_millis(50));
        let setup: Vec<_> = net
            .captured()
            .iter()
            .filter(|d| matches!(Datagram::parse(&d.bytes), Ok(Datagram::Setup(_))))
            .cloned()
            .collect();
        let handshakes = net.client(client_addr()).stats().handshakes;
        let server_handshakes = net.server(server_addr()).stats().handshakes;
        for d in &setup {
            net.inject(d.from, d.to, &d.bytes);
        }
        net.run_for(Duration::from_millis(50));
        assert_eq!(
            net.client(client_addr()).stats().handshakes,
            handshakes,
            "{suite:?}"
        );
        assert_eq!(
            net.server(server_addr()).stats().handshakes,
            server_handshakes,
            "{suite:?}"
        );
        // The session still works.
        let id = send(&mut net, b"after");
        net.run_for(Duration::from_millis(50));
        assert_eq!(
            delivered(&net.client_events(client_addr())),
            [id],
            "{suite:?}"
        );
    }
}

#[test]
fn server_restart_mid_traffic_recovers_and_delivers_queued_messages() {
    for suite in SUITES {
        let mut net = network(suite, Link::clean(), 12);
        for i in 0..5u8 {
            send(&mut net, &[i]);
            net.run_for(Duration::from_millis(20));
        }
        assert_eq!(messages(&net.server_events(server_addr())).len(), 5);
        net.client_events(client_addr());

        net.replace(
            server_addr(),
            Node::Server(pavillion_proto::endpoint::Server::new(server_config(
                suite, 3,
            ))),
        );
        let ids: Vec<_> = (5..10u8).map(|i| send(&mut net, &[i])).collect();
        net.run_for(Duration::from_secs(3));
        let got = messages(&net.server_events(server_addr()));
        assert_eq!(
            got,
            (5..10u8).map(|i| vec![i]).collect::<Vec<_>>(),
            "{suite:?}"
        );
        let c = net.client_events(client_addr());
        assert_eq!(delivered(&c), ids, "{suite:?}");
        assert!(
            c.iter().any(|e| matches!(e, ClientEvent::Connected { .. })),
            "{suite:?}: re-handshake"
        );
    }
}

#[test]
fn client_restart_gets_a_new_session() {
    let mut net = network(Suite::Psk, Link::clean(), 13);
    send(&mut net, b"1");
    net.run_for(Duration::from_millis(50));
    net.replace(
        client_addr(),
        Node::Client(pavillion_proto::endpoint::Client::new(client_config(
            Suite::Psk,
            4,
        ))),
    );
    let id = send(&mut net, b"2");
    net.run_for(Duration::from_secs(2));
    assert_eq!(
        messages(&net.server_events(server_addr())),
        [b"1".to_vec(), b"2".to_vec()]
    );
    assert_eq!(delivered(&net.client_events(client_addr())), [id]);
}

#[test]
fn dead_server_gives_timed_out_at_the_deadline() {
    let mut net = network(Suite::Psk, Link::clean(), 14);
    net.run_for(Duration::from_millis(50));
    net.set_up(server_addr(), false);
    let start = net.now();
    let now = net.now();
    let id = net
        .client(client_addr())
        .send_message(
            now,
            "t",
            "n",
            b"x",
            SendOptions::reliable().with_timeout(Duration::from_secs(2)),
        )
        .unwrap();
    let mut at = None;
    net.run_until(Duration::from_secs(5), |net| {
        if net
            .client_events(client_addr())
            .contains(&ClientEvent::TimedOut { id })
        {
            at = Some(net.now());
        }
        at.is_some()
    });
    let elapsed = at.expect("timed out") - start;
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed <= Duration::from_millis(2_001),
        "{elapsed:?}"
    );
}

#[test]
fn bad_input_is_counted_and_does_not_disturb_the_session() {
    let mut net = network(Suite::Psk, Link::clean(), 15);
    net.capture();
    send(&mut net, b"first");
    net.run_for(Duration::from_millis(50));
    let session_packet = net
        .captured()
        .iter()
        .find(|d| {
            d.from == client_addr() && matches!(Datagram::parse(&d.bytes), Ok(Datagram::Session(_)))
        })
        .unwrap()
        .bytes
        .clone();
    let mut forged = session_packet.clone();
    *forged.last_mut().unwrap() ^= 1;
    // A counter ahead of anything sent: fresh to the replay window, so only the tag stops it.
    let mut forged_counter = session_packet.clone();
    let counter = u64::from_le_bytes(forged_counter[11..19].try_into().unwrap());
    forged_counter[11..19].copy_from_slice(&(counter + 1000).to_le_bytes());
    let mut unknown_setup = b"PavillionS0\0\0\0\0\0\0\0\0".to_vec();
    unknown_setup.push(99);
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (b"Pavi".to_vec(), DropReason::Truncated),
        (b"NotPavillion-at-all-really".to_vec(), DropReason::BadMagic),
        (
            b"Pavillion0\0\0\0\0\0\0\0\0\x01".to_vec(),
            DropReason::PlaintextMode,
        ),
        (unknown_setup, DropReason::UnknownOpcode),
        (vec![0xff; 9000], DropReason::Oversized),
        (forged, DropReason::Forged),
        (forged_counter, DropReason::Forged),
        (
            b"PavillionS0\0\0\0\0\0\0\0\0\x01short".to_vec(),
            DropReason::BadLength,
        ),
    ];
    for (bytes, reason) in &cases {
        let before = net.server(server_addr()).stats().dropped(*reason);
        net.inject(client_addr(), server_addr(), bytes);
        net.run_for(Duration::from_millis(5));
        assert_eq!(
            net.server(server_addr()).stats().dropped(*reason),
            before + 1,
            "{reason:?}"
        );
    }
    // Quickly after a good packet, a forgery does not even provoke a re-handshake.
    assert_eq!(net.server(server_addr()).session_count(), 1);
    let id = send(&mut net, b"still works");
    net.run_for(Duration::from_millis(50));
    assert_eq!(
        messages(&net.server_events(server_addr())),
        [b"first".to_vec(), b"still works".to_vec()]
    );
    assert!(delivered(&net.client_events(client_addr())).contains(&id));
}

#[test]
fn handshake_flood_from_spoofed_sources_keeps_state_bounded() {
    let mut net = network(Suite::Psk, Link::clean(), 16);
    let mut cfg = server_config(Suite::Psk, 1);
    cfg.max_half_open = 64;
    cfg.max_rate_limited_sources = 128;
    net.replace(
        server_addr(),
        Node::Server(pavillion_proto::endpoint::Server::new(cfg)),
    );
    // A valid request with a known client id, from 5000 spoofed addresses.
    net.capture();
    net.run_for(Duration::from_millis(1));
    let request = net
        .captured()
        .iter()
        .find(|d| {
            matches!(
                Datagram::parse(&d.bytes),
                Ok(Datagram::Setup(Setup::NonceRequest(_)))
            )
        })
        .unwrap()
        .bytes
        .clone();
    let mut largest_reply = 0;
    net.capture();
    for i in 0..5000u32 {
        let spoofed: SocketAddr = format!("10.1.{}.{}:{}", i / 250, i % 250, 1000 + i % 7)
            .parse()
            .unwrap();
        net.inject(spoofed, server_addr(), &request);
        if i % 100 == 0 {
            net.run_for(Duration::from_millis(1));
            assert!(net.server(server_addr()).half_open_count() <= 64);
        }
    }
    net.run_for(Duration::from_millis(10));
    for d in net.captured().iter().filter(|d| d.from == server_addr()) {
        largest_reply = largest_reply.max(d.bytes.len());
    }
    assert!(
        largest_reply <= request.len(),
        "no reply larger than the request"
    );
    assert!(net.server(server_addr()).half_open_count() <= 64);
    // The real client still gets in.
    net.run_for(Duration::from_secs(2));
    let id = send(&mut net, b"real");
    net.run_for(Duration::from_secs(3));
    assert!(delivered(&net.client_events(client_addr())).contains(&id));
}

#[test]
fn setup_replies_are_rate_limited_per_source() {
    let mut net = network(Suite::Psk, Link::clean(), 17);
    net.run_for(Duration::from_millis(50));
    net.capture();
    // Counted packets from an address with no session each ask for an op 4.
    let stranger: SocketAddr = "10.0.0.9:5555".parse().unwrap();
    let mut packet = b"PavillionS0\x01\0\0\0\0\0\0\0".to_vec();
    packet.extend_from_slice(&[0u8; 20]);
    for _ in 0..100 {
        net.inject(stranger, server_addr(), &packet);
    }
    net.run_for(Duration::from_millis(10));
    let replies = net.captured().iter().filter(|d| d.to == stranger).count();
    assert!(replies <= 10, "{replies} replies");
    assert!(
        net.server(server_addr())
            .stats()
            .dropped(DropReason::RateLimited)
            >= 90
    );

    // Handshake replies (op 2 here) have their own budget: 100 nonce requests naming a known
    // client, each with a fresh challenge, from another stranger get at most
    // `replies_per_second` answers.
    let stranger: SocketAddr = "10.0.0.10:5555".parse().unwrap();
    let limited = net
        .server(server_addr())
        .stats()
        .dropped(DropReason::RateLimited);
    for i in 0..100u8 {
        let request = Setup::NonceRequest(NonceRequest {
            cipher: CipherId::Psk,
            client_id: ID,
            challenge: [i; 16],
            session_hint: [0; 16],
            public_key: [0; 32],
        });
        let mut buf = [0u8; 256];
        let n = request.emit(&mut buf).unwrap();
        net.inject(stranger, server_addr(), &buf[..n]);
    }
    net.run_for(Duration::from_millis(10));
    let replies = net.captured().iter().filter(|d| d.to == stranger).count();
    assert!((1..=10).contains(&replies), "{replies} replies");
    assert!(
        net.server(server_addr())
            .stats()
            .dropped(DropReason::RateLimited)
            >= limited + 90
    );
}

#[test]
fn quit_ends_the_session_on_both_sides() {
    let mut net = network(Suite::Psk, Link::clean(), 18);
    net.run_for(Duration::from_millis(50));
    net.server_events(server_addr());
    let now = net.now();
    net.client(client_addr()).close(now);
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.server(server_addr()).session_count(), 0);
    assert!(net
        .server_events(server_addr())
        .iter()
        .any(|e| matches!(e, ServerEvent::Disconnected { .. })));
    let now = net.now();
    assert!(net
        .client(client_addr())
        .send_message(now, "t", "n", b"", SendOptions::reliable())
        .is_err());
}

#[test]
fn filter_hook_can_drop_acks_and_retransmission_recovers() {
    let mut net = network(Suite::Psk, Link::clean(), 19);
    net.run_for(Duration::from_millis(50));
    let mut dropped = 0;
    net.set_filter(move |d| {
        if d.from == server_addr() && dropped < 3 {
            dropped += 1;
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let id = send(&mut net, b"x");
    net.run_for(Duration::from_secs(3));
    assert_eq!(messages(&net.server_events(server_addr())), [b"x".to_vec()]);
    assert_eq!(delivered(&net.client_events(client_addr())), [id]);
    assert!(net.client(client_addr()).stats().retransmissions >= 3);
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut net = network(Suite::Ecc, Link::lossy(0.2), seed);
        net.capture();
        for i in 0..20u8 {
            send(&mut net, &[i]);
        }
        net.run_for(Duration::from_secs(5));
        net.captured().to_vec()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}
