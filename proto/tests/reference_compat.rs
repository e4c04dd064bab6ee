//! What a Python (reference) peer needs from us, over the in-memory network: its server's second
//! reply port (docs/PROTOCOL.md §6.2), exact datagram lengths (§2, §3), the secret-key leak that
//! must not happen (§10 item 1), handshake retry backoff, and spoofed setup packets (§10 item 5).
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use pavillion_proto::crypto::ecc::{self, KeyPair};
use pavillion_proto::crypto::{psk, Psk, SecretBoxKey, SessionCipher};
use pavillion_proto::endpoint::{
    ClientConfig, ClientEvent, CloseReason, DropReason, SendOptions, Server, ServerConfig,
};
use pavillion_proto::handshake::HandshakeError;
use pavillion_proto::testing::{Captured, Link, Network, Node, Verdict};
use pavillion_proto::wire::{opcode, setup_opcode, App, Datagram, Setup, StatusBytes, HEADER_LEN};
use pavillion_proto::{ClientId, Duration, Instant, MessageId};

use common::Observed;

const ID: ClientId = ClientId(*b"test-client-0001");

fn server_addr() -> SocketAddr {
    "10.0.0.1:1783".parse().unwrap()
}

/// The reference server's ephemeral reply socket (its `sendsock`) on the same host.
fn reply_addr() -> SocketAddr {
    "10.0.0.1:47295".parse().unwrap()
}

/// Yet another port of the server's host.
fn other_port_addr() -> SocketAddr {
    "10.0.0.1:50001".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "10.0.0.2:40000".parse().unwrap()
}

/// A host that is not our server.
fn stranger_addr() -> SocketAddr {
    "10.0.0.66:1783".parse().unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suite {
    Psk,
    Ecc,
}

const SUITES: [Suite; 2] = [Suite::Psk, Suite::Ecc];

fn psk() -> Psk {
    Psk::from_bytes([0x42; 32])
}

fn server_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x22; 32])
}

fn client_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x11; 32])
}

fn server_config(suite: Suite) -> ServerConfig {
    let base = ServerConfig::new([1; 32]);
    match suite {
        Suite::Psk => base.with_psk_client(ID, psk()),
        Suite::Ecc => base
            .with_keys(server_keys())
            .with_ecc_client(ID, *client_keys().public()),
    }
}

fn client_config(suite: Suite) -> ClientConfig {
    match suite {
        Suite::Psk => ClientConfig::psk(ID, psk(), server_addr(), [2; 32]),
        Suite::Ecc => ClientConfig::ecc(
            ID,
            client_keys(),
            *server_keys().public(),
            server_addr(),
            [2; 32],
        ),
    }
}

fn network(suite: Suite, seed: u64) -> Network {
    let mut net = Network::new(seed, Link::clean());
    net.add_server(server_addr(), server_config(suite));
    net.add_client(client_addr(), client_config(suite));
    net
}

fn send(net: &mut Network, payload: &[u8]) -> MessageId {
    let now = net.now();
    net.client(client_addr())
        .send_message(now, "target", "name", payload, SendOptions::reliable())
        .unwrap()
}

fn server_send(net: &mut Network, payload: &[u8], options: SendOptions) -> MessageId {
    let now = net.now();
    net.server(server_addr())
        .send_message(now, client_addr(), "cmd", "go", payload, options)
        .unwrap()
}

fn messages(events: &[impl Observed]) -> Vec<(SocketAddr, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| e.message().map(|m| (m.from, m.payload().to_vec())))
        .collect()
}

fn payloads(events: &[impl Observed]) -> Vec<Vec<u8>> {
    messages(events).into_iter().map(|(_, p)| p).collect()
}

fn delivered(events: &[impl Observed]) -> Vec<MessageId> {
    events.iter().filter_map(Observed::delivered).collect()
}

fn setup_opcode_of(bytes: &[u8]) -> Option<u8> {
    match Datagram::parse(bytes) {
        Ok(Datagram::Setup(s)) => Some(s.opcode()),
        _ => None,
    }
}

fn is_session(bytes: &[u8]) -> bool {
    matches!(Datagram::parse(bytes), Ok(Datagram::Session(_)))
}

fn emit(setup: &Setup) -> Vec<u8> {
    let mut buf = vec![0u8; setup.buffer_len()];
    let n = setup.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// The op 1 datagrams the client sent, in order.
fn client_op1s(captured: &[Captured]) -> Vec<Captured> {
    captured
        .iter()
        .filter(|d| {
            d.from == client_addr()
                && setup_opcode_of(&d.bytes) == Some(setup_opcode::NONCE_REQUEST)
        })
        .cloned()
        .collect()
}

/// Every session key of the captured handshakes, as an eavesdropper holding the PSK (suite 1)
/// or the server's secret key (suite 2) can derive them.
fn session_keys(captured: &[Captured]) -> Vec<SecretBoxKey> {
    let mut keys = Vec::new();
    for d in captured {
        match Datagram::parse(&d.bytes) {
            Ok(Datagram::Setup(Setup::PskClientInfo(i))) => {
                keys.push(psk::client_to_server_key(&psk(), &i.client_nonce));
                keys.push(psk::server_to_client_key(
                    &psk(),
                    &i.client_nonce,
                    &i.server_nonce,
                ));
            }
            Ok(Datagram::Setup(Setup::EccClientInfo(i))) => {
                let inner = ecc::open_client_info(
                    server_keys().secret(),
                    client_keys().public(),
                    &i.box_nonce,
                    &i.sealed,
                )
                .expect("our op 12 opens with the server's key");
                keys.push(SecretBoxKey::from_bytes(inner[32..64].try_into().unwrap()));
                keys.push(SecretBoxKey::from_bytes(inner[64..96].try_into().unwrap()));
            }
            _ => {}
        }
    }
    keys
}

/// The plaintext of a session datagram under any of `keys`.
fn decrypt(keys: &[SecretBoxKey], bytes: &[u8]) -> Option<Vec<u8>> {
    let Ok(Datagram::Session(p)) = Datagram::parse(bytes) else {
        return None;
    };
    keys.iter().find_map(|k| {
        let mut body = p.ciphertext.to_vec();
        k.open_in_place(p.counter, &bytes[..HEADER_LEN], p.tag, &mut body)
            .ok()
            .map(|()| body)
    })
}

/// The reference server: it listens on `server_addr` but every datagram it sends leaves from
/// `reply_addr`, and whatever is sent to `reply_addr` reaches it.
fn reply_from_second_port(d: &mut Captured) -> Verdict {
    if d.from == server_addr() {
        d.from = reply_addr();
    }
    if d.to == reply_addr() {
        d.to = server_addr();
    }
    Verdict::Deliver
}

#[test]
fn handshakes_and_messages_work_with_a_server_that_replies_from_a_second_port() {
    for suite in SUITES {
        let mut net = network(suite, 1);
        net.set_filter(reply_from_second_port);
        let up = send(&mut net, b"up");
        net.run_for(Duration::from_millis(100));
        let client = net.client(client_addr());
        assert!(client.is_connected(), "{suite:?}");
        assert_eq!(
            client.servers().collect::<Vec<_>>(),
            [reply_addr()],
            "{suite:?}: the session is keyed by the reply address"
        );
        assert_eq!(
            payloads(&net.server_events(server_addr())),
            [b"up".to_vec()],
            "{suite:?}"
        );
        let c = net.client_events(client_addr());
        assert_eq!(delivered(&c), [up], "{suite:?}");
        assert!(
            c.contains(&ClientEvent::Connected { addr: reply_addr() }),
            "{suite:?}: {c:?}"
        );

        let down = server_send(&mut net, b"down", SendOptions::reliable());
        let again = send(&mut net, b"again");
        net.run_for(Duration::from_millis(100));
        let c = net.client_events(client_addr());
        assert_eq!(
            messages(&c),
            [(reply_addr(), b"down".to_vec())],
            "{suite:?}"
        );
        assert_eq!(delivered(&c), [again], "{suite:?}");
        let s = net.server_events(server_addr());
        assert_eq!(
            delivered(&s),
            [down],
            "{suite:?}: our ACK reached the server"
        );
        assert_eq!(payloads(&s), [b"again".to_vec()], "{suite:?}");
        assert_eq!(
            net.client(client_addr())
                .stats()
                .dropped(DropReason::UnknownPeer),
            0,
            "{suite:?}"
        );
    }
}

#[test]
fn client_outcomes_with_a_second_reply_port_arrive_exactly_once() {
    // Several messages both ways; every client message gets exactly one Delivered.
    let mut net = network(Suite::Psk, 2);
    net.set_filter(reply_from_second_port);
    net.run_for(Duration::from_millis(50));
    let ids: Vec<_> = (0..10u8).map(|i| send(&mut net, &[i])).collect();
    for i in 0..5u8 {
        server_send(&mut net, &[100 + i], SendOptions::reliable());
    }
    net.run_for(Duration::from_millis(200));
    let c = net.client_events(client_addr());
    assert_eq!(delivered(&c), ids);
    assert_eq!(
        payloads(&c),
        (100..105u8).map(|i| vec![i]).collect::<Vec<_>>()
    );
    assert_eq!(
        payloads(&net.server_events(server_addr())),
        (0..10u8).map(|i| vec![i]).collect::<Vec<_>>()
    );
}

#[test]
fn session_packets_from_another_port_of_the_server_host_are_accepted() {
    for suite in SUITES {
        let mut net = network(suite, 3);
        // Setup packets come from the listening port, session packets from another one.
        net.set_filter(|d| {
            if d.from == server_addr() && is_session(&d.bytes) {
                d.from = other_port_addr();
            }
            if d.to == other_port_addr() {
                d.to = server_addr();
            }
            Verdict::Deliver
        });
        let up = send(&mut net, b"up");
        net.run_for(Duration::from_millis(100));
        assert_eq!(
            net.client(client_addr()).servers().collect::<Vec<_>>(),
            [server_addr()],
            "{suite:?}"
        );
        let down = server_send(&mut net, b"down", SendOptions::reliable());
        net.run_for(Duration::from_millis(100));
        let c = net.client_events(client_addr());
        assert_eq!(
            delivered(&c),
            [up],
            "{suite:?}: the ACK from the other port counted"
        );
        assert_eq!(
            messages(&c),
            [(other_port_addr(), b"down".to_vec())],
            "{suite:?}"
        );
        let s = net.server_events(server_addr());
        assert_eq!(payloads(&s), [b"up".to_vec()], "{suite:?}");
        assert_eq!(delivered(&s), [down], "{suite:?}");
        assert_eq!(
            net.client(client_addr())
                .stats()
                .dropped(DropReason::UnknownPeer),
            0,
            "{suite:?}"
        );
    }
}

#[test]
fn valid_session_packet_from_another_host_is_dropped_as_unknown_peer() {
    for suite in SUITES {
        let mut net = network(suite, 4);
        net.run_for(Duration::from_millis(50));
        net.client_events(client_addr());
        // The server's next session packet appears to come from another host.
        net.set_filter(|d| {
            if d.from == server_addr() && is_session(&d.bytes) {
                d.from = stranger_addr();
            }
            Verdict::Deliver
        });
        net.capture();
        server_send(&mut net, b"diverted", SendOptions::unreliable());
        net.run_for(Duration::from_millis(50));
        assert!(
            messages(&net.client_events(client_addr())).is_empty(),
            "{suite:?}: never delivered"
        );
        assert_eq!(
            net.client(client_addr())
                .stats()
                .dropped(DropReason::UnknownPeer),
            1,
            "{suite:?}"
        );
        // The very same bytes from the real server are a valid session packet.
        net.clear_filter();
        let genuine = net
            .captured()
            .iter()
            .find(|d| d.from == server_addr() && is_session(&d.bytes))
            .unwrap()
            .clone();
        net.inject(server_addr(), client_addr(), &genuine.bytes);
        net.run_for(Duration::from_millis(50));
        assert_eq!(
            messages(&net.client_events(client_addr())),
            [(server_addr(), b"diverted".to_vec())],
            "{suite:?}"
        );
    }
}

/// Runs a full exchange for `suite` while capturing: handshake, messages both ways, an op 4
/// to a stranger, and an op 6 to a client with an unknown id.
fn full_exchange(suite: Suite, server: ServerConfig) -> (Network, Vec<Captured>) {
    let mut net = Network::new(5, Link::clean());
    net.add_server(server_addr(), server);
    net.add_client(client_addr(), client_config(suite));
    let unknown: SocketAddr = "10.0.0.3:40000".parse().unwrap();
    let mut cfg = client_config(suite);
    cfg.client_id = ClientId(*b"someone-else-000");
    net.add_client(unknown, cfg);
    net.capture();
    let ids: Vec<_> = (0..3u8).map(|i| send(&mut net, &[i])).collect();
    net.run_for(Duration::from_millis(50));
    for i in 0..3u8 {
        server_send(&mut net, &[10 + i], SendOptions::reliable());
    }
    net.run_for(Duration::from_millis(50));
    let c = net.client_events(client_addr());
    assert_eq!(delivered(&c), ids, "{suite:?}");
    assert_eq!(payloads(&c).len(), 3, "{suite:?}");
    assert_eq!(
        delivered(&net.server_events(server_addr())).len(),
        3,
        "{suite:?}"
    );
    // A session packet from an address with no session draws an op 4.
    let session_packet = net
        .captured()
        .iter()
        .find(|d| d.from == client_addr() && is_session(&d.bytes))
        .unwrap()
        .bytes
        .clone();
    let nobody: SocketAddr = "10.0.0.9:5555".parse().unwrap();
    net.inject(nobody, server_addr(), &session_packet);
    net.run_for(Duration::from_millis(50));
    let captured = net.captured().to_vec();
    (net, captured)
}

#[test]
fn setup_packets_have_the_exact_lengths_python_unpacks() {
    for suite in SUITES {
        let (_, captured) = full_exchange(suite, server_config(suite));
        let mut lengths: BTreeMap<u8, BTreeSet<usize>> = BTreeMap::new();
        for d in &captured {
            if let Some(op) = setup_opcode_of(&d.bytes) {
                lengths.entry(op).or_default().insert(d.bytes.len());
            }
        }
        let (nonce, info) = match suite {
            Suite::Psk => (
                (setup_opcode::PSK_NONCE, 100),
                (setup_opcode::PSK_CLIENT_INFO, 141),
            ),
            Suite::Ecc => (
                (setup_opcode::ECC_NONCE, 108),
                (setup_opcode::ECC_CLIENT_INFO, 181),
            ),
        };
        let expected: BTreeMap<u8, BTreeSet<usize>> = [
            (setup_opcode::NONCE_REQUEST, 101),
            nonce,
            info,
            (setup_opcode::UNRECOGNIZED_CLIENT, 20),
            (setup_opcode::INVALID_CLIENT_ID, 36),
            (setup_opcode::SESSION_ESTABLISHED, 36),
        ]
        .into_iter()
        .map(|(op, len)| (op, BTreeSet::from([len])))
        .collect();
        assert_eq!(lengths, expected, "{suite:?}");
    }
}

/// Decrypts every session datagram of `captured` and returns the ACKs as (sender, datagram
/// length, plaintext length).
fn acks(captured: &[Captured]) -> Vec<(SocketAddr, usize, usize)> {
    let keys = session_keys(captured);
    let mut out = Vec::new();
    for d in captured.iter().filter(|d| is_session(&d.bytes)) {
        // Injected datagrams are not captured, so every one is our endpoints' own.
        let plain = decrypt(&keys, &d.bytes).expect("every session packet opens");
        if plain[0] == opcode::ACK {
            assert!(matches!(App::parse(&plain), Ok(App::Ack { .. })));
            out.push((d.from, d.bytes.len(), plain.len()));
        }
    }
    out
}

#[test]
fn acks_are_exactly_eight_bytes_for_python_peers() {
    for suite in SUITES {
        let (_, captured) = full_exchange(suite, server_config(suite));
        let acks = acks(&captured);
        let from_client = acks.iter().filter(|a| a.0 == client_addr()).count();
        let from_server = acks.iter().filter(|a| a.0 == server_addr()).count();
        assert!(from_client >= 3 && from_server >= 3, "{suite:?}: {acks:?}");
        for (from, datagram, plain) in acks {
            assert_eq!(
                (datagram, plain),
                (44, 9),
                "{suite:?}: ACK from {from}: opcode + u64 only"
            );
        }
    }
}

#[test]
fn status_bytes_make_the_server_ack_47_bytes() {
    for suite in SUITES {
        let mut server = server_config(suite);
        server.status = Some(StatusBytes {
            battery: 0,
            network: 0xff,
            temperature: 0,
        });
        let (_, captured) = full_exchange(suite, server);
        let acks = acks(&captured);
        assert!(acks.iter().filter(|a| a.0 == server_addr()).count() >= 3);
        for (from, datagram, plain) in acks {
            if from == server_addr() {
                assert_eq!((datagram, plain), (47, 12), "{suite:?}");
            } else {
                assert_eq!(
                    (datagram, plain),
                    (44, 9),
                    "{suite:?}: client ACKs stay short"
                );
            }
        }
    }
}

/// Asserts that an op 1 carries the client's public key and nothing of its secret.
fn assert_public_key_only(op1: &[u8]) {
    assert_eq!(op1.len(), 101);
    assert_eq!(op1[20], 2, "cipher byte: ECC");
    assert_eq!(&op1[69..101], client_keys().public().as_bytes());
    let secret = [0x11u8; 32];
    assert!(
        !op1.windows(32).any(|w| w == secret),
        "the secret key is in the packet"
    );
}

#[test]
fn ecc_op1_carries_the_public_key_also_when_op4_or_op5_triggers_it() {
    let mut net = network(Suite::Ecc, 6);
    net.capture();
    net.run_for(Duration::from_millis(50));
    let first = client_op1s(net.captured());
    assert_eq!(first.len(), 1);
    assert_public_key_only(&first[0].bytes);
    assert!(net.client(client_addr()).is_connected());

    for trigger in [Setup::UnrecognizedClient, Setup::NewServerJoin] {
        // Past the rate limit of unauthenticated triggers.
        net.run_for(Duration::from_millis(1_500));
        // The server restarted, so the trigger is true: the client believes it once the
        // server stays silent to its probe (PROTOCOL §5.1), two RTOs later.
        net.replace(
            server_addr(),
            Node::Server(Server::new(server_config(Suite::Ecc))),
        );
        net.capture();
        let packet = emit(&trigger);
        assert_eq!(packet.len(), 20);
        net.inject(server_addr(), client_addr(), &packet);
        net.run_for(Duration::from_secs(1));
        let again = client_op1s(net.captured());
        assert_eq!(again.len(), 1, "{trigger:?} starts one round");
        assert_public_key_only(&again[0].bytes);
    }
    // And the session still works.
    net.client_events(client_addr());
    let id = send(&mut net, b"after");
    net.run_for(Duration::from_millis(50));
    assert_eq!(delivered(&net.client_events(client_addr())), [id]);
}

#[test]
fn handshake_retries_back_off_are_capped_and_recover() {
    let mut net = network(Suite::Psk, 7);
    net.set_up(server_addr(), false);
    net.capture();
    let start = net.now();
    net.run_for(Duration::from_secs(60));
    let times: Vec<Instant> = client_op1s(net.captured()).iter().map(|d| d.at).collect();
    // 17 requests in the first 4 s (16 resends at the base interval, §5.1), then doubling to
    // one every 4 s: about 33 in the first minute, 15 a minute after that.
    assert!(
        (25..40).contains(&times.len()),
        "{} requests in 60 s",
        times.len()
    );
    assert_eq!(times[0], start, "the first request leaves at once");
    for (i, pair) in times.windows(2).enumerate() {
        let interval = pair[1] - pair[0];
        let doublings = i.saturating_sub(15).min(16);
        let base = Duration::from_millis(250)
            .saturating_mul(1 << doublings)
            .min(Duration::from_secs(4));
        assert!(
            interval >= base && interval <= base + base / 8 + Duration::from_millis(1),
            "interval {i} is {interval:?}, base {base:?}"
        );
    }
    assert!(!net.client(client_addr()).is_connected());

    net.set_up(server_addr(), true);
    let up_at = net.now();
    let connected = net.run_until(Duration::from_secs(10), |net| {
        net.client(client_addr()).is_connected()
    });
    assert!(connected);
    assert!(
        net.now() - up_at <= Duration::from_millis(4_501),
        "connected {:?} after the server came up",
        net.now() - up_at
    );
    let id = send(&mut net, b"late");
    net.run_for(Duration::from_millis(50));
    assert_eq!(delivered(&net.client_events(client_addr())), [id]);
}

/// The server is alive and answers: spoofed claims that it lost our session start no round
/// at all (PROTOCOL §5.1; before, one round a second).
#[test]
fn spoofed_op4_op5_flood_completes_no_round_while_the_server_answers() {
    for suite in SUITES {
        let mut net = network(suite, 8);
        net.run_for(Duration::from_millis(1_500));
        net.capture();
        let op4 = emit(&Setup::UnrecognizedClient);
        let op5 = emit(&Setup::NewServerJoin);
        // 500 triggers over 5 s, from the server's address and from other ports of its host.
        for i in 0..500u32 {
            let from = if i % 3 == 0 {
                server_addr()
            } else {
                SocketAddr::new(server_addr().ip(), 2000 + (i % 50) as u16)
            };
            let packet = if i % 2 == 0 { &op4 } else { &op5 };
            net.inject(from, client_addr(), packet);
            net.run_for(Duration::from_millis(10));
        }
        // A claim opens a parallel round at most once a second (§5.1, claims); the server's
        // answers disprove each before its nonce is answered, so no client-info goes out and
        // no handshake completes.
        let rounds = client_op1s(net.captured()).len();
        assert!(rounds <= 5, "{suite:?}: {rounds} requests in 5 s");
        let infos = net
            .captured()
            .iter()
            .filter(|d| {
                d.from == client_addr()
                    && matches!(
                        setup_opcode_of(&d.bytes),
                        Some(setup_opcode::PSK_CLIENT_INFO | setup_opcode::ECC_CLIENT_INFO)
                    )
            })
            .count();
        assert_eq!(infos, 0, "{suite:?}: {infos} client-infos in 5 s");
        let disbelieved = net.client(client_addr()).stats().claims_disbelieved;
        assert!(
            disbelieved >= 490,
            "{suite:?}: {disbelieved} claims disbelieved"
        );
        net.client_events(client_addr());
        let id = send(&mut net, b"after the flood");
        net.run_for(Duration::from_millis(50));
        assert_eq!(
            delivered(&net.client_events(client_addr())),
            [id],
            "{suite:?}"
        );
    }
}

#[test]
fn spoofed_op6_needs_the_real_challenge_and_the_server_host() {
    let mut net = network(Suite::Psk, 9);
    // Keep the round open: the server does not answer.
    net.set_up(server_addr(), false);
    net.capture();
    net.run_for(Duration::from_millis(100));
    let op1 = client_op1s(net.captured()).pop().unwrap().bytes;
    let challenge: [u8; 16] = op1[37..53].try_into().unwrap();
    let has_failed = |events: &[ClientEvent]| {
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::HandshakeFailed { .. }))
    };

    let mut wrong = challenge;
    wrong[0] ^= 1;
    let before = net
        .client(client_addr())
        .stats()
        .dropped(DropReason::BadHandshake);
    net.inject(
        server_addr(),
        client_addr(),
        &emit(&Setup::InvalidClientId { challenge: wrong }),
    );
    // The right challenge, but from a host that is not our server.
    net.inject(
        stranger_addr(),
        client_addr(),
        &emit(&Setup::InvalidClientId { challenge }),
    );
    net.run_for(Duration::from_millis(10));
    assert!(!has_failed(&net.client_events(client_addr())));
    assert_eq!(
        net.client(client_addr())
            .stats()
            .dropped(DropReason::BadHandshake),
        before + 2
    );

    net.inject(
        server_addr(),
        client_addr(),
        &emit(&Setup::InvalidClientId { challenge }),
    );
    net.run_for(Duration::from_millis(10));
    assert_eq!(
        net.client_events(client_addr()),
        [ClientEvent::HandshakeFailed {
            addr: server_addr(),
            reason: HandshakeError::UnknownClient
        }]
    );
}

#[test]
fn server_disconnect_sends_a_36_byte_quit() {
    for suite in SUITES {
        let mut net = network(suite, 10);
        net.run_for(Duration::from_millis(50));
        net.client_events(client_addr());
        net.capture();
        let now = net.now();
        net.server(server_addr()).disconnect(now, client_addr());
        net.run_for(Duration::from_millis(50));
        // What the server sent before the client came back by itself (PROTOCOL.md §6.7).
        let quits: Vec<_> = net
            .captured()
            .iter()
            .take_while(|d| d.from == server_addr())
            .map(|d| d.bytes.len())
            .collect();
        assert_eq!(quits, [36], "{suite:?}: one op 12 with an empty payload");
        assert!(net
            .client_events(client_addr())
            .contains(&ClientEvent::Disconnected {
                addr: server_addr(),
                reason: CloseReason::PeerClosed
            }));
    }
}
