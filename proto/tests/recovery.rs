//! Recovery from loss in the handshake (docs/PROTOCOL.md §5.1): the retry schedule before the
//! first answer, and a lost client-info.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::SocketAddr;

use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{
    ClientConfig, ClientEvent, SendOptions, ServerConfig, ServerEvent,
};
use pavillion_proto::testing::{Link, Network, Verdict};
use pavillion_proto::wire::noise::NoisePacket;
use pavillion_proto::wire::{Datagram, Setup};
use pavillion_proto::{ClientId, Duration, Instant};

const ID: ClientId = ClientId(*b"test-client-0001");

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

/// A suite 1 (`noise` false) or suite 3 Noise IK pair on a clean 1 ms link.
fn network(noise: bool) -> Network {
    let mut net = Network::new(4, Link::clean());
    let psk = Psk::from_bytes([0x42; 32]);
    let server = ServerConfig::new([1; 32]);
    let (server, client) = if noise {
        (
            server
                .with_keys(server_keys())
                .with_ecc_client(ID, *client_keys().public()),
            ClientConfig::noise_ik(
                ID,
                client_keys(),
                *server_keys().public(),
                server_addr(),
                [2; 32],
            ),
        )
    } else {
        (
            server.with_psk_client(ID, psk.clone()),
            ClientConfig::psk(ID, psk, server_addr(), [2; 32]),
        )
    };
    net.add_server(server_addr(), server);
    net.add_client(client_addr(), client);
    net
}

/// Whether a datagram from the client is a handshake request (op 1, or a suite 3 initiation).
fn is_request(bytes: &[u8]) -> bool {
    matches!(
        Datagram::parse(bytes),
        Ok(Datagram::Setup(Setup::NonceRequest(_)))
            | Ok(Datagram::Noise(NoisePacket::Initiation(_)))
    )
}

/// When the server's application first heard of the client.
fn server_connected_at(net: &mut Network, start: Instant, limit: Duration) -> Option<Duration> {
    let step = Duration::from_millis(5);
    let mut waited = Duration::ZERO;
    while waited < limit {
        net.run_for(step);
        waited += step;
        let up = net
            .server_events(server_addr())
            .iter()
            .any(|e| matches!(e, ServerEvent::Connected { .. }));
        if up {
            return Some(net.now() - start);
        }
    }
    None
}

/// Seven lost requests in a row (what 50% loss each way gives a few percent of handshakes)
/// cost seven base intervals, not a backoff to the ceiling: 250 ms doubling to 4 s would take
/// 11.75 s to the eighth try.
#[test]
fn early_handshake_retries_keep_the_base_interval() {
    for noise in [false, true] {
        let mut net = network(noise);
        let start = net.now();
        let mut lost = 0;
        net.set_filter(move |d| {
            if lost < 7 && is_request(&d.bytes) {
                lost += 1;
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
        let took = server_connected_at(&mut net, start, Duration::from_secs(20));
        // 7 × 250 ms plus at most 1/8 jitter each, plus the round trips.
        let took = took.expect("never connected");
        assert!(
            took <= Duration::from_millis(7 * 282 + 10),
            "noise {noise}: {took:?}"
        );
    }
}

/// A lost client-info: the server answers our first message with op 4, the client resends
/// the client-info at once and, on op 7, the message (dropped unread) without waiting for its
/// backed-off timer or the confirmation deadline (about 1 s before any RTT sample).
#[test]
fn a_lost_client_info_costs_a_round_trip_not_a_timeout() {
    let mut net = network(false);
    let mut dropped = false;
    net.set_filter(move |d| {
        let info = matches!(
            Datagram::parse(&d.bytes),
            Ok(Datagram::Setup(Setup::PskClientInfo(_)))
        );
        if info && !dropped {
            dropped = true;
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let start = net.now();
    let now = net.now();
    net.client(client_addr())
        .send_message(now, "t", "n", b"first", SendOptions::reliable())
        .unwrap();
    let mut delivered_at = None;
    for _ in 0..400 {
        net.run_for(Duration::from_millis(1));
        let got = net.server_events(server_addr()).iter().any(
            |e| matches!(e, ServerEvent::Message { message, .. } if message.payload() == b"first"),
        );
        if got {
            delivered_at = Some(net.now() - start);
            break;
        }
    }
    let took = delivered_at.expect("not delivered within 400 ms");
    assert!(took <= Duration::from_millis(20), "{took:?}");
    let events = net.client_events(client_addr());
    assert!(events
        .iter()
        .any(|e| matches!(e, ClientEvent::Connected { .. })));
}
