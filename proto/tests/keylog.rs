//! The key log (`docs/DECODE.md` §2): with it on, every role logs the secrets a passive
//! decoder needs, and a `Dissector` given only those secrets opens every session and group
//! packet the endpoints exchanged, in every suite, across re-handshakes and rekeys.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::SocketAddr;

use pavillion_proto::dissect::{Decryption, Direction, Dissector, Layer, SuiteNumber};
use pavillion_proto::endpoint::{ClientConfig, SendOptions, Server, ServerConfig};
use pavillion_proto::keylog::SessionSecret;
use pavillion_proto::testing::fixture::{client_id, client_keys, client_psk, server_keys};
use pavillion_proto::testing::{Captured, Link, Network, Node};
use pavillion_proto::Duration;

fn server_addr() -> SocketAddr {
    "10.0.0.1:1783".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "10.0.0.2:40000".parse().unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Suite {
    Psk,
    Ecc,
    Noise,
}

fn server_config(suite: Suite, seed: u8) -> ServerConfig {
    let c = ServerConfig::new([seed; 32]);
    match suite {
        Suite::Psk => c.with_psk_client(client_id(1), client_psk(1)),
        Suite::Ecc | Suite::Noise => c
            .with_keys(server_keys())
            .with_ecc_client(client_id(1), *client_keys(1).public()),
    }
}

fn client_config(suite: Suite, server: SocketAddr) -> ClientConfig {
    let (id, seed) = (client_id(1), [7; 32]);
    match suite {
        Suite::Psk => ClientConfig::psk(id, client_psk(1), server, seed),
        Suite::Ecc => ClientConfig::ecc(id, client_keys(1), *server_keys().public(), server, seed),
        Suite::Noise => {
            let mut c =
                ClientConfig::noise_ik(id, client_keys(1), *server_keys().public(), server, seed);
            // Rekey often, so that several rekeys happen within the run.
            c.rekey_after_messages = 10;
            c.min_round_interval = Duration::from_millis(20);
            c
        }
    }
}

fn network(suite: Suite, key_log: bool) -> Network {
    let mut net = Network::new(3, Link::clean());
    net.add_server(server_addr(), server_config(suite, 1));
    net.add_client(client_addr(), client_config(suite, server_addr()));
    net.server(server_addr()).set_key_log(key_log);
    net.client(client_addr()).set_key_log(key_log);
    net.capture();
    net
}

/// Reliable and unreliable messages, and a time request, then time for the ACKs.
fn traffic(net: &mut Network, n: usize) {
    for i in 0..n {
        let now = net.now();
        let c = net.client(client_addr());
        let body = format!("payload {i}");
        c.send_message(
            now,
            "sensors",
            "temp",
            body.as_bytes(),
            SendOptions::reliable(),
        )
        .unwrap();
        c.send_message(now, "sensors", "raw", b"x", SendOptions::unreliable())
            .unwrap();
        if i % 5 == 0 {
            let _ = c.sync_time(now, None);
        }
        net.run_for(Duration::from_millis(30));
    }
    net.run_for(Duration::from_secs(2));
}

fn drain(net: &mut Network, hosts: &[SocketAddr], into: &mut Vec<SessionSecret>) {
    for &h in hosts {
        if h == client_addr() {
            while let Some(s) = net.client(h).poll_secret() {
                into.push(s);
            }
        } else {
            while let Some(s) = net.server(h).poll_secret() {
                into.push(s);
            }
        }
    }
}

/// Dissects every captured datagram with only `secrets`: each session and group packet must
/// open, in the direction its addresses say. Returns how many opened.
fn assert_all_open(captured: &[Captured], secrets: &[SessionSecret], client: SocketAddr) -> usize {
    let mut d = Dissector::new();
    secrets.iter().cloned().for_each(|s| d.add_secret(s));
    let mut opened = 0;
    for c in captured {
        let x = d.dissect(c.from, c.to, &c.bytes);
        assert_ne!(x.layer, Layer::Garbage, "{x:?}");
        if matches!(x.layer, Layer::Session | Layer::Group) {
            let want = if c.from == client {
                Direction::ToServer
            } else {
                Direction::ToClient
            };
            assert_eq!(
                x.decryption,
                Decryption::Opened(want),
                "packet {} -> {} ({:?}) not opened: {x:?}",
                c.from,
                c.to,
                x.counter
            );
            assert_ne!(x.name, "encrypted");
            assert!(x.error.is_none(), "{x:?}");
            opened += 1;
        }
    }
    opened
}

fn every_packet_opens(suite: Suite) {
    let mut net = network(suite, true);
    traffic(&mut net, 20);
    let mut secrets = Vec::new();
    drain(&mut net, &[client_addr(), server_addr()], &mut secrets);
    if suite != Suite::Noise {
        // A new server process: the client handshakes again and gets a new S>C key.
        net.replace(
            server_addr(),
            Node::Server(Server::new(server_config(suite, 9))),
        );
        net.server(server_addr()).set_key_log(true);
        traffic(&mut net, 20);
        drain(&mut net, &[client_addr(), server_addr()], &mut secrets);
    }
    let handshakes = net.client(client_addr()).stats().handshakes;
    assert!(
        handshakes >= 2,
        "{suite:?}: re-handshake or rekey happened ({handshakes})"
    );
    let distinct: std::collections::BTreeSet<String> =
        secrets.iter().map(ToString::to_string).collect();
    assert!(
        distinct.len() as u64 >= handshakes,
        "{suite:?}: a secret per handshake ({} for {handshakes})",
        distinct.len()
    );
    let opened = assert_all_open(net.captured(), &secrets, client_addr());
    // Suite 3 batches messages sent close together (docs/PROTOCOL.md §17): fewer packets.
    let least = if suite == Suite::Noise { 40 } else { 60 };
    assert!(opened >= least, "{suite:?}: {opened} packets opened");
    // Without the secrets, none opens.
    let mut blind = Dissector::new();
    for c in net.captured() {
        let x = blind.dissect(c.from, c.to, &c.bytes);
        assert!(matches!(
            x.decryption,
            Decryption::Clear | Decryption::NoKey
        ));
    }
}

#[test]
fn suite_1_every_session_packet_opens_with_the_logged_secrets() {
    every_packet_opens(Suite::Psk);
}

#[test]
fn suite_2_every_session_packet_opens_with_the_logged_secrets() {
    every_packet_opens(Suite::Ecc);
}

#[test]
fn suite_3_every_data_packet_opens_with_the_logged_secrets_across_rekeys() {
    every_packet_opens(Suite::Noise);
}

#[test]
fn suite_3_swapped_indices_open_nothing() {
    let mut net = network(Suite::Noise, true);
    traffic(&mut net, 5);
    let mut secrets = Vec::new();
    drain(&mut net, &[client_addr(), server_addr()], &mut secrets);
    assert!(!secrets.is_empty());
    let swapped: Vec<SessionSecret> = secrets
        .iter()
        .map(|s| match s.clone() {
            SessionSecret::Noise {
                to_server_index,
                to_server,
                to_client_index,
                to_client,
            } => SessionSecret::Noise {
                to_server_index: to_client_index,
                to_server,
                to_client_index: to_server_index,
                to_client,
            },
            other => other,
        })
        .collect();
    let mut d = Dissector::new();
    swapped.into_iter().for_each(|s| d.add_secret(s));
    let mut data = 0;
    for c in net.captured() {
        let x = d.dissect(c.from, c.to, &c.bytes);
        if x.layer == Layer::Session {
            data += 1;
            assert_eq!(x.decryption, Decryption::NoKey, "{x:?}");
            assert_eq!(x.suite, Some(SuiteNumber::Noise));
        }
    }
    assert!(data > 10);
}

#[test]
fn with_the_key_log_off_nothing_is_queued() {
    for suite in [Suite::Psk, Suite::Ecc, Suite::Noise] {
        let mut net = network(suite, false);
        traffic(&mut net, 3);
        assert!(net.client(client_addr()).is_connected());
        assert_eq!(net.client(client_addr()).poll_secret(), None);
        assert_eq!(net.server(server_addr()).poll_secret(), None);
        assert_eq!(net.client(client_addr()).stats().secrets_dropped, 0);
    }
}

#[test]
fn turning_the_key_log_off_forgets_the_queue() {
    let mut net = network(Suite::Psk, true);
    traffic(&mut net, 1);
    net.client(client_addr()).set_key_log(false);
    net.client(client_addr()).set_key_log(true);
    assert_eq!(net.client(client_addr()).poll_secret(), None);
    assert!(net.server(server_addr()).poll_secret().is_some());
}

// ---- Suite 3 multicast: group keys ---------------------------------------------------------

fn group() -> SocketAddr {
    "239.255.3.3:1783".parse().unwrap()
}

fn members() -> Vec<SocketAddr> {
    (1..=3)
        .map(|i| format!("10.0.3.{i}:1783").parse().unwrap())
        .collect()
}

#[test]
fn suite_3_group_packets_open_with_the_logged_group_keys() {
    let mut net = Network::new(5, Link::clean());
    for (i, s) in members().into_iter().enumerate() {
        net.add_server(s, server_config(Suite::Noise, 10 + i as u8));
        net.join(s, group());
        net.server(s).set_key_log(true);
        let now = net.now();
        net.server(s).subscribe(now, "sensors");
    }
    let mut cfg = client_config(Suite::Noise, group());
    cfg.rekey_after_messages = 15;
    net.add_client(client_addr(), cfg);
    net.client(client_addr()).set_key_log(true);
    net.capture();
    let found = net.run_until(Duration::from_secs(10), |net| {
        let now = net.now();
        net.client(client_addr()).subscribers(now, "sensors").len() == 3
    });
    assert!(found);
    traffic(&mut net, 40);
    let mut secrets = Vec::new();
    drain(&mut net, &members(), &mut secrets);
    // Every server recorded (and logged) the client's group keys.
    let recorded = secrets
        .iter()
        .filter(|s| matches!(s, SessionSecret::Group { .. }))
        .count();
    assert!(recorded >= 6, "{recorded} group keys logged by the servers");
    drain(&mut net, &[client_addr()], &mut secrets);
    let groups = secrets
        .iter()
        .filter(|s| matches!(s, SessionSecret::Group { .. }))
        .map(ToString::to_string)
        .collect::<std::collections::BTreeSet<_>>();
    assert!(groups.len() >= 2, "the group key rotated: {groups:?}");
    let mut d = Dissector::new();
    secrets.iter().cloned().for_each(|s| d.add_secret(s));
    let (mut group_packets, mut group_keys) = (0, 0);
    for c in net.captured() {
        let x = d.dissect(c.from, c.to, &c.bytes);
        if matches!(x.layer, Layer::Session | Layer::Group) {
            assert!(matches!(x.decryption, Decryption::Opened(_)), "{x:?}");
        }
        if x.layer == Layer::Group {
            group_packets += 1;
        }
        if x.name == "group_key" {
            group_keys += 1;
            assert!(x.field("key").is_none(), "a group key is never shown");
        }
    }
    assert!(group_packets >= 40, "{group_packets}");
    assert!(group_keys >= 3, "{group_keys}");
}

// ---- RTT samples in `Stats::rtt` -----------------------------------------------------------

/// Every RTT sample an endpoint takes lands in its statistics' histogram: one per reliable
/// exchange acknowledged at its first transmission, with the link's round trip.
#[test]
fn rtt_samples_reach_the_stats_histogram_on_both_sides() {
    let link = Link {
        latency: Duration::from_millis(10),
        ..Link::clean()
    };
    let mut net = Network::new(4, link);
    net.add_server(server_addr(), server_config(Suite::Psk, 1));
    net.add_client(client_addr(), client_config(Suite::Psk, server_addr()));
    net.run_until(Duration::from_secs(5), |net| {
        net.server(server_addr()).session_count() == 1
    });
    for i in 0..10u8 {
        let now = net.now();
        net.client(client_addr())
            .send_message(now, "t", "n", &[i], SendOptions::reliable())
            .unwrap();
        net.server(server_addr())
            .send_message(now, client_addr(), "t", "n", &[i], SendOptions::reliable())
            .unwrap();
        net.run_for(Duration::from_millis(100));
    }
    net.run_for(Duration::from_secs(1));
    for (side, stats, estimator) in [
        (
            "client",
            net.client(client_addr()).stats().rtt.clone(),
            net.client(client_addr()).rtt().samples(),
        ),
        ("server", net.server(server_addr()).stats().rtt.clone(), 0),
    ] {
        assert!(stats.count() >= 10, "{side}: {} samples", stats.count());
        if side == "client" {
            assert_eq!(
                stats.count(),
                estimator,
                "the same samples as the estimator"
            );
        }
        // Two 10 ms hops: every sample is about 20 ms.
        let p50 = stats.quantile(0.5).unwrap();
        assert!(
            p50 >= Duration::from_millis(20) && p50 < Duration::from_millis(25),
            "{side}: p50 {p50:?}"
        );
    }
}

// ---- Roles made of endpoints: relays, members, the authority --------------------------------

fn lines(mut poll: impl FnMut() -> Option<SessionSecret>) -> std::collections::BTreeSet<String> {
    std::iter::from_fn(&mut poll)
        .map(|s| s.to_string())
        .collect()
}

/// Each relay forwards the secrets of its server and of its clients to its peers: both ends of
/// a mesh session log the same suite 3 line.
#[test]
fn relays_log_their_mesh_sessions() {
    use pavillion_proto::crypto::ecc::KeyPair;
    use pavillion_proto::endpoint::RelayConfig;
    use pavillion_proto::testing::relays::RelayNet;
    let (ka, kb) = (
        KeyPair::from_secret_bytes([0x31; 32]),
        KeyPair::from_secret_bytes([0x32; 32]),
    );
    let (a, b): (SocketAddr, SocketAddr) = (
        "10.0.0.1:7124".parse().unwrap(),
        "10.0.1.1:7124".parse().unwrap(),
    );
    let mut net = RelayNet::new();
    let ca = RelayConfig::new(ka.clone(), "one", &[5076], [1; 32]).with_peer(b, *kb.public());
    let cb = RelayConfig::new(kb, "two", &[5076], [2; 32]).with_peer(a, *ka.public());
    net.add(a, ca);
    net.relay(a).set_key_log(true);
    net.add(b, cb);
    net.relay(b).set_key_log(true);
    net.run_for(Duration::from_secs(2));
    let at_a = lines(|| net.relay(a).poll_secret());
    let at_b = lines(|| net.relay(b).poll_secret());
    assert!(
        at_a.iter().all(|l| l.starts_with("PAVILLION_S3 ")),
        "{at_a:?}"
    );
    assert!(at_a.intersection(&at_b).count() >= 1, "{at_a:?} / {at_b:?}");
}

/// A member forwards the secrets of its client to the authority, and the authority those of
/// its server: both log the member's session.
#[test]
fn the_authority_and_a_member_log_their_session() {
    use pavillion_proto::crypto::ecc::KeyPair;
    use pavillion_proto::endpoint::{
        AuthorityConfig, JoinCredential, ListedPeer, MemberConfig, MemberState, Policy,
    };
    use pavillion_proto::testing::authority::Fleet;
    let (ka, km) = (
        KeyPair::from_secret_bytes([1; 32]),
        KeyPair::from_secret_bytes([2; 32]),
    );
    let (a, m): (SocketAddr, SocketAddr) = (
        "10.0.0.1:1790".parse().unwrap(),
        "10.0.0.2:1790".parse().unwrap(),
    );
    let mut policy = Policy {
        max_peers: 16,
        ..Policy::default()
    };
    policy.peers.push(ListedPeer {
        public: *km.public(),
        role: "gw".into(),
        name: "gw-1".into(),
    });
    let mut fleet = Fleet::new(a, AuthorityConfig::new(ka.clone(), policy, [1; 32]));
    fleet.authority().set_key_log(true);
    fleet.add_member(
        m,
        MemberConfig::new(km, a, *ka.public(), JoinCredential::Listed, [2; 32]),
    );
    fleet.member(m).set_key_log(true);
    fleet.run_for(Duration::from_secs(2));
    assert!(matches!(
        fleet.member(m).state(),
        MemberState::Joined { .. }
    ));
    let at_a = lines(|| fleet.authority().poll_secret());
    let at_m = lines(|| fleet.member(m).poll_secret());
    assert!(at_a.intersection(&at_m).count() >= 1, "{at_a:?} / {at_m:?}");
}
