//! Suite 3 0-RTT data (`docs/PROTOCOL.md` §12.2): after a server reboot, the initiation that
//! repairs the session carries the client's oldest exchange in flight.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::SocketAddr;

use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::endpoint::{
    ClientConfig, ClientEvent, DropReason, SendOptions, Server, ServerConfig, ServerEvent,
};
use pavillion_proto::testing::{Captured, Link, Network, Node};
use pavillion_proto::wire::noise::{Mode, NoisePacket};
use pavillion_proto::wire::Datagram;
use pavillion_proto::{ClientId, Duration, MessageId};

const ID: ClientId = ClientId(*b"noise-client-0rt");

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

/// A server process; a reboot is a new one with another seed.
fn server(seed: u8) -> Server {
    Server::new(server_config(seed))
}

fn network(seed: u64) -> Network {
    let mut net = Network::new(seed, Link::clean());
    net.add_server(server_addr(), server_config(1));
    let client = ClientConfig::noise_ik(
        ID,
        client_keys(),
        *server_keys().public(),
        server_addr(),
        [2; 32],
    );
    net.add_client(client_addr(), client);
    net
}

fn send(net: &mut Network, payload: &[u8]) -> MessageId {
    let now = net.now();
    net.client(client_addr())
        .send_message(now, "t", "n", payload, SendOptions::reliable())
        .unwrap()
}

fn delivered_at_server(net: &mut Network) -> Vec<Vec<u8>> {
    net.server_events(server_addr())
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Message { message, .. } => Some(message.payload().to_vec()),
            _ => None,
        })
        .collect()
}

/// Initiations longer than the fixed IK length: the ones carrying 0-RTT data.
fn early_initiations(captured: &[Captured]) -> Vec<Captured> {
    captured
        .iter()
        .filter(|d| {
            matches!(Datagram::parse(&d.bytes), Ok(Datagram::Noise(NoisePacket::Initiation(i)))
                if i.message.len() > Mode::Ik.message_len())
        })
        .cloned()
        .collect()
}

fn responses(captured: &[Captured]) -> usize {
    captured
        .iter()
        .filter(|d| {
            matches!(
                Datagram::parse(&d.bytes),
                Ok(Datagram::Noise(NoisePacket::Response(_)))
            )
        })
        .count()
}

/// A connected pair whose server then reboots; "after" is sent at once and the run goes on
/// for `run`. Returns the network (capturing since the reboot) and the message's id.
fn reboot_and_send(seed: u64, run: Duration) -> (Network, MessageId) {
    let mut net = network(seed);
    send(&mut net, b"before");
    net.run_for(Duration::from_millis(100));
    assert_eq!(delivered_at_server(&mut net), [b"before".to_vec()]);
    net.client_events(client_addr());
    net.replace(server_addr(), Node::Server(server(3)));
    net.capture();
    let id = send(&mut net, b"after");
    net.run_for(run);
    (net, id)
}

/// The link is 500 µs each way: the type 5 comes back after 1 ms, and the initiation carrying
/// the message reaches the server half a millisecond later. Without 0-RTT data the message
/// would wait for the handshake (2.5 ms), and `early_data` would stay 0.
#[test]
fn zero_rtt_data_is_delivered_once_after_a_reboot() {
    let (mut net, _) = reboot_and_send(1, Duration::from_micros(1_500));
    assert_eq!(delivered_at_server(&mut net), [b"after".to_vec()]);
    assert_eq!(net.server(server_addr()).stats().early_data, 1);
    assert_eq!(net.client(client_addr()).stats().early_data, 1);
    assert_eq!(early_initiations(net.captured()).len(), 1);
    // Once: nothing the client sends later delivers it again.
    net.run_for(Duration::from_secs(2));
    assert!(delivered_at_server(&mut net).is_empty());
}

/// The server acknowledges the 0-RTT message after its response, so the client learns of the
/// delivery two round trips after the send, without sending the message again.
#[test]
fn zero_rtt_reliable_message_is_acknowledged() {
    let (mut net, id) = reboot_and_send(2, Duration::from_micros(2_000));
    let events = net.client_events(client_addr());
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Delivered { id: d, .. } if *d == id)),
        "{events:?}"
    );
    net.run_for(Duration::from_secs(1));
    let server = net.server(server_addr()).stats();
    assert_eq!(server.dropped(DropReason::Duplicate), 0, "no second copy");
    assert_eq!(net.client(client_addr()).stats().retransmissions, 0);
}

/// A recorded initiation with 0-RTT data, replayed to the server that answered it (alive, and
/// knowing the client's epoch and sequence), is refused by the replay rule: no response, nothing
/// delivered, counted as `bad_handshake`.
#[test]
fn a_replayed_initiation_with_zero_rtt_data_to_a_live_server_delivers_nothing() {
    let (mut net, _) = reboot_and_send(3, Duration::from_millis(100));
    assert_eq!(delivered_at_server(&mut net), [b"after".to_vec()]);
    let recorded = early_initiations(net.captured()).remove(0);
    let refused = net
        .server(server_addr())
        .stats()
        .dropped(DropReason::BadHandshake);
    let answered = responses(net.captured());
    net.inject(recorded.from, recorded.to, &recorded.bytes);
    net.run_for(Duration::from_millis(100));
    assert!(delivered_at_server(&mut net).is_empty());
    let stats = net.server(server_addr()).stats();
    assert_eq!(stats.dropped(DropReason::BadHandshake), refused + 1);
    assert_eq!(stats.early_data, 1);
    assert_eq!(responses(net.captured()), answered);
}

/// 0-RTT data altered in flight fails the initiation's decryption: dropped as
/// `bad_handshake`, unanswered, nothing delivered. (The same bytes unaltered, to a server that
/// rebooted again, are delivered: the documented once-per-server-incarnation replay.)
#[test]
fn an_initiation_whose_zero_rtt_data_fails_to_decrypt_is_dropped_and_counted() {
    let (mut net, _) = reboot_and_send(4, Duration::from_millis(100));
    let recorded = early_initiations(net.captured()).remove(0);
    let mut altered = recorded.bytes.clone();
    // The last plaintext byte of the 0-RTT data, just before the payload's tag.
    let at = altered.len() - 17;
    altered[at] ^= 1;

    net.replace(server_addr(), Node::Server(server(5)));
    net.inject(recorded.from, recorded.to, &altered);
    net.run_for(Duration::from_millis(10));
    let stats = net.server(server_addr()).stats();
    assert_eq!(stats.dropped(DropReason::BadHandshake), 1);
    assert_eq!(stats.early_data, 0);
    assert_eq!(stats.handshake_requests, 0, "no response");
    assert!(delivered_at_server(&mut net).is_empty());

    net.inject(recorded.from, recorded.to, &recorded.bytes);
    net.run_for(Duration::from_millis(10));
    assert_eq!(delivered_at_server(&mut net), [b"after".to_vec()]);
}
