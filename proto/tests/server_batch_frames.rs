//! The server's receipt of a suite 3 batch (`docs/PROTOCOL.md` §17): each frame acts as the
//! packet it would be alone, under the batch's counter, whatever its kind (a message, an ACK,
//! op 39), and the batch is parsed once, whole, before any frame acts.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use pavillion_proto::endpoint::{SendOptions, ServerEvent};
use pavillion_proto::testing::established::{self, EstablishedServer};
use pavillion_proto::wire::batch::{emit_batch, Acks, Frame};
use pavillion_proto::wire::noise::NoisePacket;
use pavillion_proto::wire::{App, Datagram, Message};
use pavillion_proto::{Counter, MessageId};

/// A server with one suite 3 session that sent the client two reliable messages: their ids
/// and the counters they went under.
fn sent_two() -> (EstablishedServer, [(MessageId, Counter); 2]) {
    let mut s = established::server(established::Suite::Noise);
    let mut out = [0u8; 4096];
    let mut sent = Vec::new();
    for payload in [b"one", b"two"] {
        let id = s
            .server
            .send_message(
                s.now,
                s.client_addr,
                "t",
                "n",
                payload,
                SendOptions::reliable(),
            )
            .unwrap();
        let t = s
            .server
            .poll_transmit(s.now, &mut out)
            .expect("sent at once");
        let counter = match Datagram::parse(&out[..t.len]) {
            Ok(Datagram::Noise(NoisePacket::Data { packet, .. })) => packet.counter,
            other => panic!("not a data packet: {other:?}"),
        };
        sent.push((id, counter));
    }
    (s, [sent[0], sent[1]])
}

fn message(payload: &[u8]) -> Frame<'_> {
    Frame::App(App::ReliableMessage(Message {
        target: "t",
        name: "n",
        payload,
    }))
}

/// Seals `frames` as one batch from the client and hands it to the server; returns the
/// payloads it delivered and the ids it reported delivered.
fn receive(s: &mut EstablishedServer, frames: &[Frame<'_>]) -> (Vec<Vec<u8>>, Vec<MessageId>) {
    let mut plain = [0u8; 1024];
    let mut buf = [0u8; 2048];
    let n = emit_batch(false, frames, &mut plain).unwrap();
    let len = s.client.seal(&plain[..n], &mut buf).unwrap();
    s.server.handle_datagram(s.now, s.client_addr, &buf[..len]);
    let mut payloads = Vec::new();
    let mut delivered = Vec::new();
    while let Some(e) = s.server.poll_event() {
        match e {
            ServerEvent::Message { message, .. } => payloads.push(message.payload().to_vec()),
            ServerEvent::Delivered { id, .. } => delivered.push(id),
            _ => {}
        }
    }
    (payloads, delivered)
}

#[test]
fn op_39_and_ack_frames_in_a_batch_complete_what_they_acknowledge() {
    let (mut s, [(first, c1), (second, c2)]) = sent_two();
    let acks = Acks::from_descending([c1]).unwrap().0;
    let (payloads, delivered) = receive(&mut s, &[message(b"up"), Frame::Acks(acks)]);
    assert_eq!(payloads, [b"up".to_vec()], "the message frame is delivered");
    assert_eq!(
        delivered,
        [first],
        "the op 39 frame completes the first send"
    );
    let ack = Frame::App(App::Ack {
        counter: c2,
        status: None,
    });
    let (payloads, delivered) = receive(&mut s, &[ack, message(b"again")]);
    assert_eq!(payloads, [b"again".to_vec()]);
    assert_eq!(delivered, [second], "an op 2 frame completes the second");
}

#[test]
fn every_frame_of_a_batch_acts_in_order() {
    let (mut s, _) = sent_two();
    let bodies: Vec<Vec<u8>> = (0..20u8).map(|i| vec![b'a' + i]).collect();
    let frames: Vec<Frame<'_>> = bodies.iter().map(|b| message(b)).collect();
    let (payloads, _) = receive(&mut s, &frames);
    assert_eq!(payloads, bodies);
}
