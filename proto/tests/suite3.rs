//! Suite 3 (Noise): forward secrecy, identity, replay, roaming, rekey and cookies.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{
    Client, ClientConfig, DropReason, Event, SendOptions, Server, ServerConfig,
};
use pavillion_proto::testing::{Captured, Link, Network, Node, Verdict};
use pavillion_proto::wire::noise::NoisePacket;
use pavillion_proto::wire::Datagram;
use pavillion_proto::{ClientId, Duration};

const ID: ClientId = ClientId(*b"noise-client-001");

fn server_addr() -> SocketAddr {
    "10.0.0.1:1783".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "10.0.0.2:40000".parse().unwrap()
}

fn server_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x22; 32])
}

fn client_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x11; 32])
}

fn server_config(seed: u8) -> ServerConfig {
    ServerConfig::new([seed; 32])
        .with_keys(server_keys())
        .with_ecc_client(ID, *client_keys().public())
}

fn client_config(seed: u8) -> ClientConfig {
    ClientConfig::noise_ik(
        ID,
        client_keys(),
        *server_keys().public(),
        server_addr(),
        [seed; 32],
    )
}

fn network(link: Link, seed: u64) -> Network {
    let mut net = Network::new(seed, link);
    net.add_server(server_addr(), server_config(1));
    net.add_client(client_addr(), client_config(2));
    net
}

fn send(net: &mut Network, payload: &[u8]) {
    let now = net.now();
    net.client(client_addr())
        .send_message(now, "t", "n", payload, SendOptions::reliable())
        .unwrap();
}

fn payloads(events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.payload.to_vec()),
            _ => None,
        })
        .collect()
}

fn noise_packets(captured: &[Captured], pick: fn(&NoisePacket<'_>) -> bool) -> Vec<&Captured> {
    captured
        .iter()
        .filter(|d| matches!(Datagram::parse(&d.bytes), Ok(Datagram::Noise(p)) if pick(&p)))
        .collect()
}

#[test]
fn a_recorded_session_cannot_be_decrypted_with_both_static_keys() {
    let mut net = network(Link::clean(), 1);
    net.capture();
    send(&mut net, b"top secret");
    net.run_for(Duration::from_millis(100));
    let now = net.now();
    net.server(server_addr())
        .send_message(
            now,
            client_addr(),
            "t",
            "n",
            b"also secret",
            SendOptions::reliable(),
        )
        .ok();
    net.run_for(Duration::from_millis(100));
    assert_eq!(
        payloads(&net.events(server_addr())),
        [b"top secret".to_vec()]
    );
    let recording: Vec<Captured> = net.captured().to_vec();

    // Fresh endpoints holding both static keys replay the whole recording.
    let mut replay = Network::new(2, Link::clean());
    replay.add_server(server_addr(), server_config(7));
    replay.add_client(client_addr(), client_config(8));
    replay.run_for(Duration::from_millis(10));
    replay.events(server_addr());
    replay.events(client_addr());
    replay.set_filter(|_| Verdict::Drop); // only the recording reaches them
    for d in &recording {
        replay.inject(d.from, d.to, &d.bytes);
    }
    replay.run_for(Duration::from_millis(100));
    assert!(payloads(&replay.events(server_addr())).is_empty());
    assert!(payloads(&replay.events(client_addr())).is_empty());
    let dropped = replay.server(server_addr()).stats().total_dropped()
        + replay.client(client_addr()).stats().total_dropped();
    assert!(dropped > 0, "the recorded data packets were refused");
}

#[test]
fn a_wrong_static_key_or_psk_gives_no_session() {
    let cases: Vec<(ServerConfig, ClientConfig)> = vec![
        // The server knows another key for this id, and takes no guests.
        (
            ServerConfig::new([1; 32])
                .with_keys(server_keys())
                .with_ecc_client(ID, *KeyPair::from_secret_bytes([0x33; 32]).public()),
            client_config(2),
        ),
        // The client expects another server key.
        (
            server_config(1),
            ClientConfig::noise_ik(
                ID,
                client_keys(),
                *KeyPair::from_secret_bytes([0x44; 32]).public(),
                server_addr(),
                [2; 32],
            ),
        ),
        // IKpsk2 with a different PSK.
        (
            server_config(1).with_psk_client(ID, Psk::from_bytes([1; 32])),
            client_config(2).with_noise_psk(Psk::from_bytes([2; 32])),
        ),
        // NNpsk0 with a different PSK.
        (
            ServerConfig::new([1; 32]).with_psk_client(ID, Psk::from_bytes([1; 32])),
            ClientConfig::noise_psk(ID, Psk::from_bytes([2; 32]), server_addr(), [2; 32]),
        ),
    ];
    for (i, (server, client)) in cases.into_iter().enumerate() {
        let mut net = Network::new(3, Link::clean());
        net.add_server(server_addr(), server);
        net.add_client(client_addr(), client);
        send(&mut net, b"x");
        net.run_for(Duration::from_secs(3));
        assert!(!net.client(client_addr()).is_connected(), "case {i}");
        assert_eq!(net.server(server_addr()).session_count(), 0, "case {i}");
        assert!(payloads(&net.events(server_addr())).is_empty(), "case {i}");
    }
}

#[test]
fn a_replayed_initiation_is_refused() {
    let mut net = network(Link::clean(), 4);
    net.capture();
    send(&mut net, b"1");
    net.run_for(Duration::from_millis(100));
    let initiation =
        noise_packets(net.captured(), |p| matches!(p, NoisePacket::Initiation(_)))[0].clone();
    let responses_before =
        noise_packets(net.captured(), |p| matches!(p, NoisePacket::Response(_))).len();
    let refused_before = net
        .server(server_addr())
        .stats()
        .dropped(DropReason::BadHandshake);
    for _ in 0..3 {
        net.inject(initiation.from, initiation.to, &initiation.bytes);
    }
    net.run_for(Duration::from_millis(100));
    assert_eq!(
        net.server(server_addr())
            .stats()
            .dropped(DropReason::BadHandshake),
        refused_before + 3
    );
    assert_eq!(
        noise_packets(net.captured(), |p| matches!(p, NoisePacket::Response(_))).len(),
        responses_before
    );
    send(&mut net, b"2");
    net.run_for(Duration::from_millis(100));
    assert_eq!(
        payloads(&net.events(server_addr())),
        [b"1".to_vec(), b"2".to_vec()]
    );
}

#[test]
fn a_nat_rebinding_keeps_the_session() {
    let mut net = network(Link::clean(), 5);
    send(&mut net, b"before");
    net.run_for(Duration::from_millis(100));
    let handshakes = net.server(server_addr()).stats().handshakes;
    // From now on the client's packets leave through a new NAT mapping.
    let mapped: SocketAddr = "192.0.2.7:61000".parse().unwrap();
    net.set_filter(move |d| {
        if d.from == client_addr() {
            d.from = mapped;
        }
        if d.to == mapped {
            d.to = client_addr();
        }
        Verdict::Deliver
    });
    for i in 0..5u8 {
        send(&mut net, &[i]);
    }
    net.run_for(Duration::from_millis(100));
    let now = net.now();
    assert_eq!(
        net.server(server_addr()).stats().handshakes,
        handshakes,
        "no new handshake"
    );
    let clients: Vec<SocketAddr> = net
        .server(server_addr())
        .clients()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(clients, [mapped], "the session follows the client");
    // The server answers at the new address.
    let id = net
        .server(server_addr())
        .send_message(now, mapped, "t", "n", b"to you", SendOptions::reliable())
        .unwrap();
    net.run_for(Duration::from_millis(100));
    assert_eq!(payloads(&net.events(client_addr())), [b"to you".to_vec()]);
    let server_events = net.events(server_addr());
    assert_eq!(payloads(&server_events).len(), 6);
    assert!(server_events
        .iter()
        .any(|e| matches!(e, Event::Delivered { id: i, .. } if *i == id)));
}

#[test]
fn rekeying_in_the_middle_of_10k_messages_loses_and_duplicates_nothing() {
    let mut net = Network::new(6, Link::lossy(0.05));
    net.add_server(server_addr(), server_config(1));
    let mut cfg = client_config(2);
    cfg.rekey_after_messages = 1_000;
    // Rounds are spaced by this; shorter, so that keys rotate many times within the run.
    cfg.min_round_interval = Duration::from_millis(20);
    net.add_client(client_addr(), cfg);
    let mut got: BTreeMap<u32, u32> = BTreeMap::new();
    let mut delivered = 0usize;
    let mut next = 0u32;
    net.run_until(Duration::from_secs(600), |net| {
        // Keep the queue topped up, within its bound.
        while next < 10_000 && net.client(client_addr()).pending() < 512 {
            let now = net.now();
            let opts = SendOptions::reliable().with_timeout(Duration::from_secs(300));
            net.client(client_addr())
                .send_message(now, "bulk", "n", &next.to_le_bytes(), opts)
                .unwrap();
            next += 1;
        }
        for p in payloads(&net.events(server_addr())) {
            *got.entry(u32::from_le_bytes(p.try_into().unwrap()))
                .or_default() += 1;
        }
        delivered += net
            .events(client_addr())
            .iter()
            .filter(|e| matches!(e, Event::Delivered { .. }))
            .count();
        delivered == 10_000
    });
    assert_eq!(got.len(), 10_000, "every message arrived");
    assert!(got.values().all(|n| *n == 1), "none twice");
    assert_eq!(delivered, 10_000, "every message acknowledged");
    let rekeys = net.client(client_addr()).stats().handshakes;
    assert!(
        rekeys >= 5,
        "keys rotated along the way ({rekeys} handshakes)"
    );
    assert_eq!(
        net.server(server_addr())
            .stats()
            .dropped(DropReason::TooOld),
        0
    );
}

#[test]
fn a_spoofed_initiation_flood_gets_cookies_and_the_real_client_still_connects() {
    let mut net = Network::new(7, Link::clean());
    let mut cfg = server_config(1);
    cfg.cookie_threshold = 8;
    cfg.cookie_rate = 20;
    cfg.max_half_open = 32;
    net.add_server(server_addr(), cfg);
    // A real initiation to replay (from another client of the same server).
    let mut donor = Network::new(8, Link::clean());
    donor.add_server(server_addr(), server_config(3));
    donor.add_client(client_addr(), client_config(4));
    donor.capture();
    donor.run_for(Duration::from_millis(1));
    let initiation = noise_packets(donor.captured(), |p| {
        matches!(p, NoisePacket::Initiation(_))
    })[0]
        .bytes
        .clone();

    net.capture();
    for i in 0..3000u32 {
        let spoofed: SocketAddr = format!("10.9.{}.{}:{}", i / 250, i % 250, 2000 + i % 13)
            .parse()
            .unwrap();
        // Half replayed real initiations, half garbage of the right shape.
        let mut bytes = initiation.clone();
        if i % 2 == 1 {
            for b in &mut bytes[26..] {
                *b = (i as u8).wrapping_mul(31).wrapping_add(*b);
            }
        }
        net.inject(spoofed, server_addr(), &bytes);
        if i % 100 == 0 {
            net.run_for(Duration::from_millis(5));
            assert!(net.server(server_addr()).half_open_count() <= 32);
        }
        if i == 1500 {
            net.add_client(client_addr(), client_config(2));
        }
    }
    net.run_for(Duration::from_millis(100));
    let largest_reply = net
        .captured()
        .iter()
        .filter(|d| d.from == server_addr() && d.to != client_addr())
        .map(|d| d.bytes.len())
        .max()
        .unwrap_or(0);
    assert!(
        largest_reply <= initiation.len(),
        "no reply larger than its trigger ({largest_reply})"
    );
    let cookies = noise_packets(net.captured(), |p| {
        matches!(p, NoisePacket::CookieReply { .. })
    })
    .len();
    assert!(cookies > 0, "cookies were handed out under load");
    assert!(net.server(server_addr()).half_open_count() <= 32);
    // The real client connected during the flood.
    net.run_for(Duration::from_secs(2));
    assert!(net.client(client_addr()).is_connected());
    send(&mut net, b"real");
    net.run_for(Duration::from_millis(200));
    assert_eq!(payloads(&net.events(server_addr())), [b"real".to_vec()]);
    let _ = Client::new(client_config(9));
    let _ = Node::Server(Server::new(server_config(9)));
}

#[test]
fn a_new_server_session_after_a_lost_quit_restarts_the_clients_window() {
    for seed in 0..20u64 {
        let mut net = Network::new(seed, Link::clean());
        net.add_server(server_addr(), server_config(seed as u8));
        net.add_client(client_addr(), client_config(seed as u8 + 100));
        send(&mut net, b"first");
        net.run_for(Duration::from_millis(100));
        // The server ends the session; its quit is lost, so the client does not know.
        net.set_filter(|d| {
            if d.from == server_addr() {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
        let now = net.now();
        net.server(server_addr()).disconnect(now, client_addr());
        net.run_for(Duration::from_millis(10));
        net.clear_filter();
        net.events(client_addr());
        // The next message finds no session, the client handshakes again, and the server's
        // new counters (a new random base) must be accepted.
        send(&mut net, b"second");
        net.run_for(Duration::from_secs(3));
        let delivered = net
            .events(client_addr())
            .iter()
            .filter(|e| matches!(e, Event::Delivered { .. }))
            .count();
        assert_eq!(delivered, 1, "seed {seed}");
        assert_eq!(
            net.client(client_addr())
                .stats()
                .dropped(DropReason::TooOld),
            0,
            "seed {seed}"
        );
    }
}
