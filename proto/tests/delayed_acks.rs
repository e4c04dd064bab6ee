//! Delayed acknowledgements on suite 3 (`docs/PROTOCOL.md` §17.4), end to end on the in-memory
//! network: a burst's batches sent with `MORE` are acknowledged by fewer datagrams, each within
//! its bound, without a spurious retransmission; a single message and suites 1 and 2 are
//! acknowledged at once as before.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use pavillion_proto::endpoint::SendOptions;
use pavillion_proto::testing::{established, Captured, Link, Network};
use pavillion_proto::wire::batch::{emit_batch, Frame};
use pavillion_proto::wire::noise::NoisePacket;
use pavillion_proto::wire::Datagram;
use pavillion_proto::wire::{App, Message};
use pavillion_proto::{ClientId, Duration};

use common::{client_addr, client_config, server_addr, server_config, Observed, Suite, SUITES};

const ID: ClientId = ClientId(*b"delayed-acks-cl1");

/// A connected pair on a clean link (0.5 ms each way); `tune` adjusts both configs' limits.
fn network(suite: Suite, tune: impl Fn(&mut pavillion_proto::endpoint::Limits)) -> Network {
    let mut net = Network::new(11, Link::clean());
    let mut server = server_config(suite, ID, 1);
    tune(&mut server.limits);
    let mut client = client_config(suite, ID, server_addr(), 2);
    tune(&mut client.limits);
    net.add_server(server_addr(), server);
    net.add_client(client_addr(), client);
    net.run_for(Duration::from_millis(50));
    assert!(net.client(client_addr()).is_connected());
    net
}

fn burst(net: &mut Network, n: usize) {
    let now = net.now();
    for i in 0..n {
        net.client(client_addr())
            .send_message(
                now,
                "t",
                "n",
                i.to_string().as_bytes(),
                SendOptions::reliable(),
            )
            .unwrap();
    }
}

/// Checks that every message was delivered once and acknowledged.
fn delivered_once(net: &mut Network, n: usize) {
    let got: Vec<Vec<u8>> = net
        .server_events(server_addr())
        .iter()
        .filter_map(|e| e.message().map(|m| m.payload().to_vec()))
        .collect();
    assert_eq!(
        got.iter().collect::<BTreeSet<_>>().len(),
        got.len(),
        "a duplicate"
    );
    assert_eq!(got.len(), n, "every message delivered");
    let acked = net
        .client_events(client_addr())
        .iter()
        .filter(|e| e.delivered().is_some())
        .count();
    assert_eq!(acked, n, "every message acknowledged");
}

/// Session data datagrams (not handshakes) from `from`.
fn data_from(captured: &[Captured], from: SocketAddr) -> Vec<&Captured> {
    captured
        .iter()
        .filter(|d| d.from == from)
        .filter(|d| match Datagram::parse(&d.bytes) {
            Ok(Datagram::Noise(p)) => matches!(p, NoisePacket::Data { .. }),
            Ok(Datagram::Session(_)) => true,
            _ => false,
        })
        .collect()
}

#[test]
fn a_burst_of_1000_gets_fewer_ack_datagrams_than_batches_each_within_its_bound() {
    let max_delay = Duration::from_millis(2);
    let mut net = network(Suite::Noise, |_| {});
    net.capture();
    burst(&mut net, 1000);
    net.run_for(Duration::from_secs(2));
    delivered_once(&mut net, 1000);
    let captured = net.captured().to_vec();
    let batches = data_from(&captured, client_addr());
    let acks = data_from(&captured, server_addr());
    assert!(
        acks.len() * 2 <= batches.len(),
        "{} ACK datagrams for {} batches",
        acks.len(),
        batches.len()
    );
    assert!(net.server(server_addr()).stats().acks_delayed > 0);
    // Every batch is covered by an ACK datagram leaving the server within one-way latency
    // plus the delay bound (the server sends nothing else here).
    let bound = Duration::from_micros(500) + max_delay;
    for b in &batches {
        assert!(
            acks.iter().any(|a| a.at >= b.at && a.at <= b.at + bound),
            "batch sent at {} not acknowledged within {bound:?}",
            b.at
        );
    }
    assert_eq!(net.client(client_addr()).stats().retransmissions, 0);
}

/// The receiver may hold an ACK longer than the sender's RTO (here: 25 ms against 10 ms,
/// before the server has an RTT sample of its own); the sender allows for it when it sent
/// `MORE`, so nothing is retransmitted.
#[test]
fn a_held_ack_causes_no_spurious_retransmission() {
    let mut net = network(Suite::Noise, |l| {
        l.max_ack_delay = Duration::from_millis(25);
        l.ack_eliciting_threshold = 32;
        // One batch in flight at a time: the next waits for the held ACK.
        l.max_in_flight = 1;
    });
    burst(&mut net, 300);
    net.run_for(Duration::from_secs(3));
    delivered_once(&mut net, 300);
    assert!(net.server(server_addr()).stats().acks_delayed > 0);
    assert_eq!(net.client(client_addr()).stats().retransmissions, 0);
}

/// A single message is acknowledged at once, also where the hold could apply: alone in a
/// suite 3 batch frame (a lone message is normally sent without one). Only `MORE` asks for
/// the hold, which the same frame with it set shows is there to be skipped.
#[test]
fn a_single_message_is_acknowledged_at_once() {
    let mut plain = [0u8; 256];
    let mut buf = [0u8; 512];
    let mut out = [0u8; 4096];
    for more in [false, true] {
        let mut s = established::server(established::Suite::Noise);
        let frame = Frame::App(App::ReliableMessage(Message {
            target: "t",
            name: "n",
            payload: b"alone",
        }));
        let n = emit_batch(more, &[frame], &mut plain).unwrap();
        let len = s.client.seal(&plain[..n], &mut buf).unwrap();
        s.server.handle_datagram(s.now, s.client_addr, &buf[..len]);
        let acked_now = s.server.poll_transmit(s.now, &mut out).is_some();
        assert_eq!(acked_now, !more, "MORE = {more}");
        assert_eq!(
            s.server.stats().acks_delayed,
            u64::from(more),
            "MORE = {more}"
        );
    }
    // Every suite, on the network: out one way, back the other, no wait at the server.
    for suite in SUITES {
        let mut net = network(suite, |_| {});
        net.capture();
        burst(&mut net, 1);
        net.run_for(Duration::from_millis(100));
        delivered_once(&mut net, 1);
        let captured = net.captured().to_vec();
        let sent = data_from(&captured, client_addr());
        let acks = data_from(&captured, server_addr());
        assert_eq!((sent.len(), acks.len()), (1, 1), "{suite:?}");
        // One way out, one way back: no wait at the server.
        assert_eq!(
            acks[0].at - sent[0].at,
            Duration::from_micros(500),
            "{suite:?}"
        );
        assert_eq!(net.server(server_addr()).stats().acks_delayed, 0);
    }
}

/// The `MORE` rule: a burst that fits one batch goes without `MORE`, so its ACK is not held.
#[test]
fn a_batch_without_more_is_acknowledged_at_once() {
    let mut net = network(Suite::Noise, |_| {});
    net.capture();
    burst(&mut net, 10);
    net.run_for(Duration::from_millis(100));
    delivered_once(&mut net, 10);
    let captured = net.captured().to_vec();
    let sent = data_from(&captured, client_addr());
    let acks = data_from(&captured, server_addr());
    assert_eq!((sent.len(), acks.len()), (1, 1));
    assert_eq!(acks[0].at - sent[0].at, Duration::from_micros(500));
    assert_eq!(net.server(server_addr()).stats().acks_delayed, 0);
}

#[test]
fn suites_1_and_2_acknowledge_every_message_at_once() {
    for suite in [Suite::Psk, Suite::Ecc] {
        let mut net = network(suite, |_| {});
        net.capture();
        burst(&mut net, 200);
        net.run_for(Duration::from_secs(2));
        delivered_once(&mut net, 200);
        let sent = data_from(net.captured(), client_addr()).len();
        let acks = data_from(net.captured(), server_addr()).len();
        assert_eq!(sent, 200, "{suite:?}: one datagram per message");
        assert_eq!(acks, 200, "{suite:?}: one ACK per message");
        assert_eq!(net.server(server_addr()).stats().acks_delayed, 0);
    }
}
