//! Acknowledgement hand-off at a client (`docs/PROTOCOL.md` §18: the rule is the receiver's,
//! either role) on the in-memory network, over every suite: a reliable message a server sends
//! to a held target is not acknowledged before the client's application completes it, and is
//! then; duplicates while held are swallowed; a refused, expired or table-full message comes
//! again as fresh; a completion after the session ended or was replaced says so, and the
//! server's copy comes again; a suite 3 batch is acknowledged after its last held frame. The
//! server's own tests are `tests/handoff.rs`; these mirror them.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use pavillion_proto::endpoint::{
    ClientConfig, ClientEvent, DropReason, HandoffError, HandoffId, HandoffTarget, Limits,
    SendOptions, ServerEvent,
};
use pavillion_proto::testing::{Link, Network};
use pavillion_proto::{ClientId, Duration, MessageId};

use common::{client_addr, client_config, server_addr, server_config, Suite, SUITES};

const ID: ClientId = ClientId(*b"client-handoff-1");

/// A connected pair; the client holds target "t" (and, with `tweak`, other limits).
fn network(suite: Suite, seed: u64, tweak: impl FnOnce(&mut Limits)) -> Network {
    network_with(suite, seed, |c| tweak(&mut c.limits))
}

/// As [`network`], with `tweak` on the client's whole configuration.
fn network_with(suite: Suite, seed: u64, tweak: impl FnOnce(&mut ClientConfig)) -> Network {
    let mut net = Network::new(seed, Link::clean());
    let mut server = server_config(suite, ID, 1);
    server.limits.default_timeout = Duration::from_secs(120);
    net.add_server(server_addr(), server);
    let mut client = client_config(suite, ID, server_addr(), 2);
    tweak(&mut client);
    net.add_client(client_addr(), client);
    net.run_for(Duration::from_millis(50));
    // The first send makes the session.
    let now = net.now();
    net.client(client_addr())
        .send_message(now, "hello", "n", b"", SendOptions::reliable())
        .unwrap();
    net.run_for(Duration::from_millis(100));
    assert!(net.client(client_addr()).is_connected(), "{suite:?}");
    net.client(client_addr())
        .set_handoff(HandoffTarget::Exact("t".into()));
    net.client_events(client_addr());
    net.server_events(server_addr());
    net
}

/// The server sends a reliable message to the client.
fn send(net: &mut Network, target: &str, payload: &[u8]) -> MessageId {
    let now = net.now();
    net.server(server_addr())
        .send_message(
            now,
            client_addr(),
            target,
            "n",
            payload,
            SendOptions::reliable(),
        )
        .unwrap()
}

/// One held message as the client reported it.
#[derive(Debug, Clone)]
struct Held {
    id: HandoffId,
    payload: Vec<u8>,
}

/// Splits the client's events into held messages and plain ones (payloads).
fn client_messages(net: &mut Network) -> (Vec<Held>, Vec<Vec<u8>>) {
    let mut held = Vec::new();
    let mut plain = Vec::new();
    for e in net.client_events(client_addr()) {
        match e {
            ClientEvent::HeldMessage { message, handoff } => {
                assert_eq!(message.from, server_addr());
                assert!(message.reliable);
                held.push(Held {
                    id: handoff,
                    payload: message.payload().to_vec(),
                });
            }
            ClientEvent::Message(m) => plain.push(m.payload().to_vec()),
            _ => {}
        }
    }
    (held, plain)
}

/// The ids the server heard acknowledged.
fn delivered(net: &mut Network) -> Vec<MessageId> {
    let mut ids: Vec<MessageId> = net
        .server_events(server_addr())
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Delivered { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    ids.sort();
    ids
}

fn complete(net: &mut Network, id: HandoffId) -> Result<(), HandoffError> {
    let now = net.now();
    net.client(client_addr()).complete_handoff(now, id)
}

fn refuse(net: &mut Network, id: HandoffId) -> Result<(), HandoffError> {
    let now = net.now();
    net.client(client_addr()).refuse_handoff(now, id)
}

#[test]
fn no_ack_before_completion_and_one_after() {
    for suite in SUITES {
        let mut net = network(suite, 1, |_| {});
        let m = send(&mut net, "t", b"x");
        // Several retransmissions' worth: each is a duplicate, swallowed.
        net.run_for(Duration::from_secs(3));
        let (held, plain) = client_messages(&mut net);
        assert_eq!(held.len(), 1, "{suite:?}: delivered once");
        assert_eq!(held[0].payload, b"x");
        assert!(plain.is_empty());
        assert!(
            delivered(&mut net).is_empty(),
            "{suite:?}: ACK before completion"
        );
        let stats = net.client(client_addr()).stats().clone();
        assert!(
            stats.handoff_duplicates > 0,
            "{suite:?}: no retransmission seen"
        );
        assert_eq!(net.client(client_addr()).held_count(), 1);

        assert_eq!(complete(&mut net, held[0].id), Ok(()));
        net.run_for(Duration::from_millis(100));
        assert_eq!(
            delivered(&mut net),
            vec![m],
            "{suite:?}: ACK after completion"
        );
        assert_eq!(net.client(client_addr()).held_count(), 0);
        assert_eq!(complete(&mut net, held[0].id), Err(HandoffError::Unknown));
        // Nothing more arrives: the server is done.
        net.run_for(Duration::from_secs(2));
        assert!(client_messages(&mut net).0.is_empty());
    }
}

#[test]
fn other_targets_and_unreliable_messages_are_not_held() {
    for suite in SUITES {
        let mut net = network(suite, 2, |_| {});
        let held_msg = send(&mut net, "t", b"held");
        // Apart, so that suite 3 does not batch the two under one counter.
        net.run_for(Duration::from_millis(100));
        let plain_msg = send(&mut net, "u", b"plain");
        let now = net.now();
        net.server(server_addr())
            .send_message(
                now,
                client_addr(),
                "t",
                "n",
                b"loose",
                SendOptions::unreliable(),
            )
            .unwrap();
        net.run_for(Duration::from_millis(500));
        let (held, mut plain) = client_messages(&mut net);
        plain.sort();
        assert_eq!(
            plain,
            vec![b"loose".to_vec(), b"plain".to_vec()],
            "{suite:?}"
        );
        assert_eq!(held.len(), 1);
        assert_eq!(delivered(&mut net), vec![plain_msg], "{suite:?}");
        complete(&mut net, held[0].id).unwrap();
        net.run_for(Duration::from_millis(100));
        assert_eq!(delivered(&mut net), vec![held_msg]);
    }
}

#[test]
fn a_cleared_target_is_acknowledged_at_once_again() {
    let mut net = network(Suite::Psk, 3, |_| {});
    net.client(client_addr())
        .clear_handoff(&HandoffTarget::Exact("t".into()));
    let m = send(&mut net, "t", b"x");
    net.run_for(Duration::from_millis(100));
    let (held, plain) = client_messages(&mut net);
    assert!(held.is_empty());
    assert_eq!(plain, vec![b"x".to_vec()]);
    assert_eq!(delivered(&mut net), vec![m]);
    // Every target.
    net.client(client_addr()).set_handoff(HandoffTarget::All);
    send(&mut net, "anything", b"y");
    net.run_for(Duration::from_millis(100));
    assert_eq!(client_messages(&mut net).0.len(), 1);
    assert!(delivered(&mut net).is_empty());
}

#[test]
fn a_refused_message_comes_again_as_fresh() {
    for suite in SUITES {
        let mut net = network(suite, 4, |_| {});
        let m = send(&mut net, "t", b"x");
        net.run_for(Duration::from_millis(100));
        let (held, _) = client_messages(&mut net);
        assert_eq!(held.len(), 1);
        assert_eq!(refuse(&mut net, held[0].id), Ok(()));
        assert_eq!(refuse(&mut net, held[0].id), Err(HandoffError::Unknown));
        net.run_for(Duration::from_secs(3));
        let (again, _) = client_messages(&mut net);
        assert_eq!(
            again.len(),
            1,
            "{suite:?}: the retransmission is delivered again"
        );
        assert_eq!(again[0].payload, b"x");
        assert_ne!(again[0].id, held[0].id, "a new hand-off");
        assert!(delivered(&mut net).is_empty());
        complete(&mut net, again[0].id).unwrap();
        net.run_for(Duration::from_millis(100));
        assert_eq!(delivered(&mut net), vec![m]);
        assert_eq!(net.client(client_addr()).stats().handoffs_refused, 1);
    }
}

#[test]
fn an_expired_message_comes_again_as_fresh() {
    for suite in SUITES {
        let mut net = network(suite, 5, |l| l.handoff_timeout = Duration::from_secs(1));
        let m = send(&mut net, "t", b"x");
        net.run_for(Duration::from_millis(900));
        assert_eq!(client_messages(&mut net).0.len(), 1);
        // The retransmission after the expiry is delivered again; complete it at once.
        let mut again = Vec::new();
        for _ in 0..60 {
            net.run_for(Duration::from_millis(100));
            again = client_messages(&mut net).0;
            if !again.is_empty() {
                break;
            }
        }
        assert_eq!(again.len(), 1, "{suite:?}: delivered again after expiry");
        assert_eq!(net.client(client_addr()).stats().handoffs_expired, 1);
        assert!(delivered(&mut net).is_empty());
        complete(&mut net, again[0].id).unwrap();
        net.run_for(Duration::from_millis(100));
        assert_eq!(delivered(&mut net), vec![m]);
    }
}

#[test]
fn the_expiry_needs_no_traffic() {
    // Nothing arrives in between: the client's own timer refuses the message.
    let mut net = network(Suite::Psk, 6, |l| {
        l.handoff_timeout = Duration::from_secs(1)
    });
    send(&mut net, "t", b"x");
    net.run_for(Duration::from_millis(100));
    assert_eq!(client_messages(&mut net).0.len(), 1);
    let due = net.client(client_addr()).poll_timeout().unwrap();
    assert!(
        due <= net.now() + Duration::from_secs(1),
        "the timer is armed"
    );
    net.set_up(server_addr(), false);
    net.run_for(Duration::from_millis(1_000));
    assert_eq!(net.client(client_addr()).held_count(), 0);
    assert_eq!(net.client(client_addr()).stats().handoffs_expired, 1);
}

#[test]
fn a_full_table_refuses_and_the_server_tries_again() {
    for suite in [Suite::Psk, Suite::Ecc] {
        let mut net = network(suite, 7, |l| l.max_held_per_session = 2);
        let ids: Vec<MessageId> = (0..3u8).map(|i| send(&mut net, "t", &[i])).collect();
        net.run_for(Duration::from_millis(100));
        let (held, _) = client_messages(&mut net);
        assert_eq!(held.len(), 2, "{suite:?}");
        let full = net
            .client(client_addr())
            .stats()
            .dropped(DropReason::HandoffFull);
        assert!(full >= 1, "{suite:?}");
        for h in &held {
            complete(&mut net, h.id).unwrap();
        }
        net.run_for(Duration::from_secs(3));
        let (third, _) = client_messages(&mut net);
        assert_eq!(third.len(), 1, "{suite:?}: the refused one came again");
        let mut all: Vec<u8> = held.iter().chain(&third).map(|h| h.payload[0]).collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
        complete(&mut net, third[0].id).unwrap();
        net.run_for(Duration::from_millis(100));
        assert_eq!(delivered(&mut net), ids);
    }
}

#[test]
fn a_gone_session_is_reported() {
    for suite in SUITES {
        let mut net = network(suite, 8, |_| {});
        send(&mut net, "t", b"x");
        net.run_for(Duration::from_millis(100));
        let (held, _) = client_messages(&mut net);
        assert_eq!(held.len(), 1);
        // The server ends the session (its quit reaches the client).
        let now = net.now();
        net.server(server_addr()).disconnect(now, client_addr());
        // The client looks for the server again at once: a new session, not the one the
        // message came over.
        net.run_for(Duration::from_millis(100));
        assert_eq!(
            complete(&mut net, held[0].id),
            Err(HandoffError::SessionGone),
            "{suite:?}"
        );
        assert_eq!(complete(&mut net, held[0].id), Err(HandoffError::Unknown));
        assert!(delivered(&mut net).is_empty());
    }
}

#[test]
fn a_new_handshake_replaces_the_session_and_the_message_comes_again() {
    // The server stays up with its state while the client hears nothing from it for long
    // enough to look for it again: the new handshake makes a new session on suites 1 and 2
    // (the old hand-off is gone, and the server's copy under the new key comes again as new,
    // not as a copy of something acknowledged); on suite 3 it is a rekey of the same
    // session, and the hand-off holds across it.
    for suite in SUITES {
        // Its keepalive goes unanswered: it looks for the server within seconds.
        let mut net = network_with(suite, 9, |c| {
            c.limits.handoff_timeout = Duration::from_secs(120);
            c.keepalive = Some(Duration::from_secs(2));
        });
        let m = send(&mut net, "t", b"x");
        net.run_for(Duration::from_millis(100));
        let (held, _) = client_messages(&mut net);
        assert_eq!(held.len(), 1);
        net.set_up(server_addr(), false);
        net.run_for(Duration::from_secs(20));
        assert!(net.client(client_addr()).is_reconnecting(), "{suite:?}");
        net.set_up(server_addr(), true);
        net.run_for(Duration::from_secs(6));
        let (again, _) = client_messages(&mut net);
        match suite {
            Suite::Psk | Suite::Ecc => {
                // The replaced session's entry left at once (only the new copy is held), and
                // its id answers `SessionGone` once, then as an unknown one.
                assert_eq!(net.client(client_addr()).held_count(), 1, "{suite:?}");
                let stats = net.client(client_addr()).stats().clone();
                assert_eq!(stats.handoffs_session_gone, 1, "{suite:?}");
                assert_eq!(
                    complete(&mut net, held[0].id),
                    Err(HandoffError::SessionGone),
                    "{suite:?}"
                );
                assert_eq!(complete(&mut net, held[0].id), Err(HandoffError::Unknown));
                assert_eq!(again.len(), 1, "{suite:?}: the server's copy came again");
                assert_eq!(again[0].payload, b"x");
                assert!(delivered(&mut net).is_empty(), "{suite:?}");
                complete(&mut net, again[0].id).unwrap();
            }
            Suite::Noise => {
                assert!(again.is_empty(), "{suite:?}: a rekey keeps the hand-off");
                complete(&mut net, held[0].id).unwrap();
            }
        }
        net.run_for(Duration::from_millis(200));
        assert_eq!(delivered(&mut net), vec![m], "{suite:?}");
    }
}

#[test]
fn a_batch_is_acknowledged_after_its_last_held_frame() {
    let mut net = network(Suite::Noise, 10, |_| {});
    let ids: Vec<MessageId> = (0..5u8).map(|i| send(&mut net, "t", &[i])).collect();
    net.run_for(Duration::from_millis(100));
    let (held, _) = client_messages(&mut net);
    assert_eq!(held.len(), 5);
    for h in &held[..4] {
        complete(&mut net, h.id).unwrap();
    }
    net.run_for(Duration::from_secs(2));
    assert!(delivered(&mut net).is_empty(), "ACK before the last frame");
    assert!(client_messages(&mut net).0.is_empty(), "delivered twice");
    complete(&mut net, held[4].id).unwrap();
    net.run_for(Duration::from_millis(100));
    assert_eq!(delivered(&mut net), ids);
}

#[test]
fn refusing_one_frame_of_a_batch_delivers_the_batch_again() {
    let mut net = network(Suite::Noise, 11, |_| {});
    let ids: Vec<MessageId> = (0..3u8).map(|i| send(&mut net, "t", &[i])).collect();
    net.run_for(Duration::from_millis(100));
    let (held, _) = client_messages(&mut net);
    assert_eq!(held.len(), 3);
    complete(&mut net, held[0].id).unwrap();
    refuse(&mut net, held[1].id).unwrap();
    assert_eq!(complete(&mut net, held[2].id), Err(HandoffError::Unknown));
    net.run_for(Duration::from_secs(3));
    let (again, _) = client_messages(&mut net);
    let payloads: Vec<u8> = again.iter().map(|h| h.payload[0]).collect();
    assert_eq!(payloads, vec![0, 1, 2], "the whole batch, at least once");
    for h in &again {
        complete(&mut net, h.id).unwrap();
    }
    net.run_for(Duration::from_millis(100));
    assert_eq!(delivered(&mut net), ids);
}

#[test]
fn a_batch_with_a_held_frame_waits_for_it_whole() {
    // A frame to an unmarked target shares the held frame's counter: the counter's one ACK
    // must wait for the held frame.
    let mut net = network(Suite::Noise, 12, |_| {});
    let held_id = send(&mut net, "t", b"held");
    let plain_id = send(&mut net, "u", b"plain");
    net.run_for(Duration::from_millis(100));
    let (held, plain) = client_messages(&mut net);
    assert_eq!((held.len(), plain.len()), (1, 1));
    net.run_for(Duration::from_secs(2));
    assert!(
        delivered(&mut net).is_empty(),
        "the batch was acknowledged early"
    );
    complete(&mut net, held[0].id).unwrap();
    net.run_for(Duration::from_millis(100));
    let mut want = vec![held_id, plain_id];
    want.sort();
    assert_eq!(delivered(&mut net), want);
}

#[test]
fn a_full_table_refuses_a_whole_batch() {
    // Suite 3: a batch is admitted whole or refused whole; what was refused comes again.
    let mut net = network(Suite::Noise, 13, |l| l.max_held_per_session = 1);
    let first = send(&mut net, "t", b"a");
    net.run_for(Duration::from_millis(100));
    let (held, _) = client_messages(&mut net);
    assert_eq!(held.len(), 1);
    let ids: Vec<MessageId> = (0..3u8).map(|i| send(&mut net, "t", &[i])).collect();
    net.run_for(Duration::from_millis(100));
    assert!(client_messages(&mut net).0.is_empty(), "no room: refused");
    assert!(
        net.client(client_addr())
            .stats()
            .dropped(DropReason::HandoffFull)
            >= 1
    );
    complete(&mut net, held[0].id).unwrap();
    net.run_for(Duration::from_secs(3));
    let (again, _) = client_messages(&mut net);
    let payloads: Vec<u8> = again.iter().map(|h| h.payload[0]).collect();
    assert_eq!(payloads, vec![0, 1, 2], "admitted whole past the bound");
    for h in &again {
        complete(&mut net, h.id).unwrap();
    }
    net.run_for(Duration::from_millis(100));
    let mut want = ids;
    want.push(first);
    want.sort();
    assert_eq!(delivered(&mut net), want);
}
