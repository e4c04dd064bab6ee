//! Suite 3 batching (`docs/PROTOCOL.md` §17), end to end on the in-memory network: bursts go
//! in few datagrams and arrive once, a lost batch is resent whole under its counter, a bad
//! batch has no effect, and single messages and suites 1 and 2 are as before.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::rc::Rc;

use pavillion_proto::endpoint::{DropReason, SendOptions, ServerEvent};
use pavillion_proto::testing::{established, Captured, Link, Network, Verdict};
use pavillion_proto::wire::batch::{emit_batch, Frame};
use pavillion_proto::wire::noise::NoisePacket;
use pavillion_proto::wire::{App, Datagram, Message};
use pavillion_proto::{ClientId, Duration};

use common::{client_addr, client_config, server_addr, server_config, Observed, Suite, SUITES};

const ID: ClientId = ClientId(*b"batching-client1");

fn network(suite: Suite, seed: u64) -> Network {
    let mut net = Network::new(seed, Link::clean());
    net.add_server(server_addr(), server_config(suite, ID, 1));
    net.add_client(client_addr(), client_config(suite, ID, server_addr(), 2));
    net.run_for(Duration::from_millis(50));
    assert!(net.client(client_addr()).is_connected());
    net
}

/// Queues `n` reliable messages at once, payloads "0", "1", ….
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

/// The payloads the server delivered, checking none twice.
fn delivered_once(net: &mut Network, n: usize) {
    let events = net.server_events(server_addr());
    let got: Vec<Vec<u8>> = events
        .iter()
        .filter_map(|e| e.message().map(|m| m.payload().to_vec()))
        .collect();
    let distinct: BTreeSet<&Vec<u8>> = got.iter().collect();
    assert_eq!(distinct.len(), got.len(), "a message delivered twice");
    assert_eq!(got.len(), n, "every message delivered");
    let acked = net
        .client_events(client_addr())
        .iter()
        .filter(|e| e.delivered().is_some())
        .count();
    assert_eq!(acked, n, "every message acknowledged");
}

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

fn noise_counter(d: &Captured) -> Option<u64> {
    match Datagram::parse(&d.bytes) {
        Ok(Datagram::Noise(NoisePacket::Data { packet, .. })) => Some(packet.counter.0),
        _ => None,
    }
}

#[test]
fn a_burst_of_1000_goes_in_an_eighth_as_many_datagrams_each_delivered_once() {
    let mut net = network(Suite::Noise, 7);
    net.capture();
    burst(&mut net, 1000);
    net.run_for(Duration::from_secs(2));
    delivered_once(&mut net, 1000);
    let sent = data_from(net.captured(), client_addr()).len();
    assert!(sent <= 1000 / 8, "{sent} datagrams for 1000 messages");
    let stats = net.client(client_addr()).stats().clone();
    assert!(stats.batches_sent > 0 && stats.frames_batched >= 900);
    assert_eq!(stats.retransmissions, 0);
    // The server acknowledged batches with op 2 (one counter each) or op 39.
    let acks = data_from(net.captured(), server_addr()).len();
    assert!(acks <= sent, "{acks} ACK datagrams for {sent} batches");
}

#[test]
fn a_lost_batch_is_resent_whole_under_its_counter_and_delivered_once() {
    let mut net = network(Suite::Noise, 8);
    net.capture();
    let dropped: Rc<RefCell<Option<u64>>> = Rc::default();
    let seen = dropped.clone();
    net.set_filter(move |d| {
        // The first big datagram from the client is a batch: lose it.
        if d.from == client_addr() && d.bytes.len() > 200 && seen.borrow().is_none() {
            *seen.borrow_mut() = noise_counter(d);
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
    burst(&mut net, 40);
    net.run_for(Duration::from_secs(3));
    delivered_once(&mut net, 40);
    let lost = dropped.borrow().expect("a batch was lost");
    let resent: Vec<&Captured> = data_from(net.captured(), client_addr())
        .into_iter()
        .filter(|d| noise_counter(d) == Some(lost))
        .collect();
    assert_eq!(resent.len(), 2, "sent, then resent under the same counter");
    assert_eq!(resent[0].bytes.len(), resent[1].bytes.len(), "resent whole");
    assert_eq!(net.client(client_addr()).stats().retransmissions, 1);
}

fn message(payload: &[u8], reliable: bool) -> Frame<'_> {
    let m = Message {
        target: "t",
        name: "n",
        payload,
    };
    Frame::App(if reliable {
        App::ReliableMessage(m)
    } else {
        App::UnreliableMessage(m)
    })
}

#[test]
fn a_batch_with_a_bad_frame_has_no_effect() {
    let mut s = established::server(established::Suite::Noise);
    let mut plain = [0u8; 256];
    let mut buf = [0u8; 512];
    // A good first frame and a second whose inner opcode (4, a call) may not be batched.
    let frames = [message(b"first", true), message(b"second", false)];
    let n = emit_batch(false, &frames, &mut plain).unwrap();
    let second_op = 2 + 2 + frames[0].buffer_len() + 2;
    plain[second_op] = 4;
    let len = s.client.seal(&plain[..n], &mut buf).unwrap();
    s.server.handle_datagram(s.now, s.client_addr, &buf[..len]);
    assert_eq!(s.server.stats().dropped(DropReason::BadEncoding), 1);
    assert!(
        std::iter::from_fn(|| s.server.poll_event()).all(|e| e.message().is_none()),
        "no frame of a bad batch is delivered"
    );
    let mut out = [0u8; 4096];
    assert!(
        s.server.poll_transmit(s.now, &mut out).is_none(),
        "nor acknowledged"
    );
    // The same batch with the frame intact: both delivered, one ACK.
    plain[second_op] = 3;
    let len = s.client.seal(&plain[..n], &mut buf).unwrap();
    s.server.handle_datagram(s.now, s.client_addr, &buf[..len]);
    let got = std::iter::from_fn(|| s.server.poll_event())
        .filter(|e| matches!(e, ServerEvent::Message { .. }))
        .count();
    assert_eq!(got, 2);
    assert!(s.server.poll_transmit(s.now, &mut out).is_some());
    assert!(
        s.server.poll_transmit(s.now, &mut out).is_none(),
        "one ACK for the batch"
    );
}

#[test]
fn single_messages_on_suite_3_are_sent_as_before() {
    let mut net = network(Suite::Noise, 9);
    net.capture();
    for i in 0..5 {
        burst(&mut net, 1);
        net.run_for(Duration::from_millis(20));
        let _ = i;
    }
    let sent = data_from(net.captured(), client_addr());
    assert_eq!(sent.len(), 5);
    // One message alone: header and tag (33 bytes), opcode, "t\nn\n0".
    assert!(sent.iter().all(|d| d.bytes.len() == 33 + 1 + 5));
    assert_eq!(net.client(client_addr()).stats().batches_sent, 0);
    assert_eq!(net.server(server_addr()).stats().batches_sent, 0);
    assert_eq!(net.server(server_addr()).stats().ack_ranges_sent, 0);
}

#[test]
fn suites_1_and_2_never_batch() {
    for suite in SUITES.into_iter().filter(|s| *s != Suite::Noise) {
        let mut net = network(suite, 10);
        net.capture();
        burst(&mut net, 200);
        net.run_for(Duration::from_secs(2));
        delivered_once(&mut net, 200);
        assert!(data_from(net.captured(), client_addr()).len() >= 200);
        for addr in [client_addr(), server_addr()] {
            let stats = if addr == client_addr() {
                net.client(addr).stats().clone()
            } else {
                net.server(addr).stats().clone()
            };
            assert_eq!(stats.batches_sent, 0, "{suite:?}");
            assert_eq!(stats.ack_ranges_sent, 0, "{suite:?}");
        }
    }
}

#[test]
fn the_delivered_events_of_op_39_come_in_send_order() {
    let mut net = network(Suite::Noise, 11);
    burst(&mut net, 400);
    net.run_for(Duration::from_secs(2));
    // The server acknowledged several runs per op 39 frame: the client completes them
    // oldest first, so the outcomes come in the order the messages were sent.
    assert!(net.server(server_addr()).stats().ack_ranges_sent > 0);
    let ids: Vec<_> = net
        .client_events(client_addr())
        .iter()
        .filter_map(|e| e.delivered())
        .collect();
    assert_eq!(ids.len(), 400, "every message acknowledged");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "out of send order: {ids:?}"
    );
}
