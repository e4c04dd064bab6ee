//! Acknowledgement hand-off (`docs/PROTOCOL.md` §18) on the in-memory network, over every
//! suite: a held message is not acknowledged before the application completes it, and is
//! then; duplicates while held are swallowed; a refused, expired or table-full message comes
//! again as fresh; a completion after the session is gone says so; a session that quits or
//! is replaced frees its held messages at once; a suite 3 batch is acknowledged after its
//! last held frame.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use std::net::SocketAddr;

use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::endpoint::{
    Client, ClientConfig, ClientEvent, DropReason, HandoffError, HandoffId, HandoffTarget,
    MessageKey, SendOptions, ServerConfig, ServerEvent,
};
use pavillion_proto::testing::{Link, Network, Node};
use pavillion_proto::{ClientId, Duration, MessageId, PeerId};

use common::{
    addr, client_addr, client_config, psk, server_addr, server_config, server_keys, Suite, SUITES,
};

const ID: ClientId = ClientId(*b"handoff-client-1");
/// A second client, for the bounds shared by every session.
const ID2: ClientId = ClientId(*b"handoff-client-2");

/// A connected pair; the server holds target "t" (and, with `tweak`, other limits).
fn network(
    suite: Suite,
    seed: u64,
    tweak: impl FnOnce(&mut pavillion_proto::endpoint::Limits),
) -> Network {
    let mut net = Network::new(seed, Link::clean());
    let mut config = server_config(suite, ID, 1);
    tweak(&mut config.limits);
    net.add_server(server_addr(), config);
    let mut client = client_config(suite, ID, server_addr(), 2);
    client.limits.default_timeout = Duration::from_secs(20);
    net.add_client(client_addr(), client);
    net.run_for(Duration::from_millis(50));
    assert!(net.client(client_addr()).is_connected());
    net.server(server_addr())
        .set_handoff(HandoffTarget::Exact("t".into()));
    net
}

fn send(net: &mut Network, target: &str, payload: &[u8]) -> MessageId {
    let now = net.now();
    net.client(client_addr())
        .send_message(now, target, "n", payload, SendOptions::reliable())
        .unwrap()
}

/// One held message as the server reported it.
#[derive(Debug, Clone)]
struct Held {
    id: HandoffId,
    key: MessageKey,
    payload: Vec<u8>,
}

/// Splits the server's events into held messages and plain ones (payloads).
fn server_messages(net: &mut Network) -> (Vec<Held>, Vec<Vec<u8>>) {
    let mut held = Vec::new();
    let mut plain = Vec::new();
    for e in net.server_events(server_addr()) {
        match e {
            ServerEvent::HeldMessage {
                message,
                handoff,
                key,
                peer,
            } => {
                assert_eq!(key.peer, peer);
                held.push(Held {
                    id: handoff,
                    key,
                    payload: message.payload().to_vec(),
                });
            }
            ServerEvent::Message { message, .. } => plain.push(message.payload().to_vec()),
            _ => {}
        }
    }
    (held, plain)
}

/// The ids the client heard acknowledged.
fn delivered(net: &mut Network) -> Vec<MessageId> {
    net.client_events(client_addr())
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Delivered { id, .. } => Some(id),
            _ => None,
        })
        .collect()
}

fn complete(net: &mut Network, id: HandoffId) -> Result<(), HandoffError> {
    let now = net.now();
    net.server(server_addr()).complete_handoff(now, id)
}

#[test]
fn no_ack_before_completion_and_one_after() {
    for suite in SUITES {
        let mut net = network(suite, 1, |_| {});
        let m = send(&mut net, "t", b"x");
        // Several retransmissions' worth: each is a duplicate, swallowed.
        net.run_for(Duration::from_secs(3));
        let (held, plain) = server_messages(&mut net);
        assert_eq!(held.len(), 1, "{suite:?}: delivered once");
        assert!(plain.is_empty());
        assert!(
            delivered(&mut net).is_empty(),
            "{suite:?}: ACK before completion"
        );
        let stats = net.server(server_addr()).stats().clone();
        assert!(
            stats.handoff_duplicates > 0,
            "{suite:?}: no retransmission seen"
        );
        assert_eq!(net.server(server_addr()).held_count(), 1);

        assert_eq!(complete(&mut net, held[0].id), Ok(()));
        net.run_for(Duration::from_millis(100));
        assert_eq!(
            delivered(&mut net),
            vec![m],
            "{suite:?}: ACK after completion"
        );
        assert_eq!(net.server(server_addr()).held_count(), 0);
        assert_eq!(complete(&mut net, held[0].id), Err(HandoffError::Unknown));
        // Nothing more arrives: the sender is done.
        net.run_for(Duration::from_secs(2));
        assert!(server_messages(&mut net).0.is_empty());
    }
}

#[test]
fn other_targets_are_acknowledged_at_once() {
    for suite in SUITES {
        let mut net = network(suite, 2, |_| {});
        let held_msg = send(&mut net, "t", b"held");
        // Apart, so that suite 3 does not batch the two under one counter.
        net.run_for(Duration::from_millis(100));
        let plain_msg = send(&mut net, "u", b"plain");
        net.run_for(Duration::from_millis(500));
        let (held, plain) = server_messages(&mut net);
        assert_eq!(plain, vec![b"plain".to_vec()]);
        assert_eq!(held.len(), 1);
        assert_eq!(delivered(&mut net), vec![plain_msg], "{suite:?}");
        complete(&mut net, held[0].id).unwrap();
        net.run_for(Duration::from_millis(100));
        assert_eq!(delivered(&mut net), vec![held_msg]);
    }
}

#[test]
fn a_refused_message_comes_again_as_fresh() {
    for suite in SUITES {
        let mut net = network(suite, 3, |_| {});
        let m = send(&mut net, "t", b"x");
        net.run_for(Duration::from_millis(100));
        let (held, _) = server_messages(&mut net);
        assert_eq!(held.len(), 1);
        let now = net.now();
        assert_eq!(
            net.server(server_addr()).refuse_handoff(now, held[0].id),
            Ok(())
        );
        assert_eq!(
            net.server(server_addr()).refuse_handoff(now, held[0].id),
            Err(HandoffError::Unknown)
        );
        net.run_for(Duration::from_secs(3));
        let (again, _) = server_messages(&mut net);
        assert_eq!(
            again.len(),
            1,
            "{suite:?}: the retransmission is delivered again"
        );
        assert_eq!(again[0].payload, b"x");
        assert_eq!(again[0].key, held[0].key, "the same counter, fresh again");
        assert_ne!(again[0].id, held[0].id, "a new hand-off");
        assert!(delivered(&mut net).is_empty());
        complete(&mut net, again[0].id).unwrap();
        net.run_for(Duration::from_millis(100));
        assert_eq!(delivered(&mut net), vec![m]);
        assert_eq!(net.server(server_addr()).stats().handoffs_refused, 1);
    }
}

#[test]
fn an_expired_message_comes_again_as_fresh() {
    for suite in SUITES {
        let mut net = network(suite, 4, |l| l.handoff_timeout = Duration::from_secs(1));
        let m = send(&mut net, "t", b"x");
        net.run_for(Duration::from_millis(900));
        assert_eq!(server_messages(&mut net).0.len(), 1);
        // The retransmission after the expiry is delivered again; complete it at once.
        let mut again = Vec::new();
        for _ in 0..60 {
            net.run_for(Duration::from_millis(100));
            again = server_messages(&mut net).0;
            if !again.is_empty() {
                break;
            }
        }
        assert_eq!(again.len(), 1, "{suite:?}: delivered again after expiry");
        assert_eq!(net.server(server_addr()).stats().handoffs_expired, 1);
        assert!(delivered(&mut net).is_empty());
        complete(&mut net, again[0].id).unwrap();
        net.run_for(Duration::from_millis(100));
        assert_eq!(delivered(&mut net), vec![m]);
    }
}

#[test]
fn a_full_table_refuses_and_the_sender_tries_again() {
    for suite in [Suite::Psk, Suite::Ecc] {
        let mut net = network(suite, 5, |l| l.max_held_per_session = 2);
        let ids: Vec<MessageId> = (0..3u8).map(|i| send(&mut net, "t", &[i])).collect();
        net.run_for(Duration::from_millis(100));
        let (held, _) = server_messages(&mut net);
        assert_eq!(held.len(), 2, "{suite:?}");
        let full = net
            .server(server_addr())
            .stats()
            .dropped(DropReason::HandoffFull);
        assert!(full >= 1, "{suite:?}");
        for h in &held {
            complete(&mut net, h.id).unwrap();
        }
        net.run_for(Duration::from_secs(3));
        let (third, _) = server_messages(&mut net);
        assert_eq!(third.len(), 1, "{suite:?}: the refused one came again");
        let mut all: Vec<u8> = held.iter().chain(&third).map(|h| h.payload[0]).collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
        complete(&mut net, third[0].id).unwrap();
        net.run_for(Duration::from_millis(100));
        let mut acked = delivered(&mut net);
        acked.sort();
        assert_eq!(acked, ids);
    }
}

#[test]
fn a_gone_session_is_reported_and_the_client_sends_again() {
    for suite in SUITES {
        let mut net = network(suite, 6, |_| {});
        send(&mut net, "t", b"x");
        net.run_for(Duration::from_millis(100));
        let (held, _) = server_messages(&mut net);
        assert_eq!(held.len(), 1);
        let now = net.now();
        net.server(server_addr()).disconnect(now, client_addr());
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
fn a_batch_is_acknowledged_after_its_last_held_frame() {
    let mut net = network(Suite::Noise, 7, |_| {});
    let ids: Vec<MessageId> = (0..5u8).map(|i| send(&mut net, "t", &[i])).collect();
    net.run_for(Duration::from_millis(100));
    let (held, _) = server_messages(&mut net);
    assert_eq!(held.len(), 5);
    let counter = held[0].key.counter;
    assert!(
        held.iter().all(|h| h.key.counter == counter),
        "one batch, one counter: {held:?}"
    );
    for h in &held[..4] {
        complete(&mut net, h.id).unwrap();
    }
    net.run_for(Duration::from_secs(2));
    assert!(delivered(&mut net).is_empty(), "ACK before the last frame");
    assert!(server_messages(&mut net).0.is_empty(), "delivered twice");
    complete(&mut net, held[4].id).unwrap();
    net.run_for(Duration::from_millis(100));
    let mut acked = delivered(&mut net);
    acked.sort();
    assert_eq!(acked, ids);
}

#[test]
fn refusing_one_frame_of_a_batch_delivers_the_batch_again() {
    let mut net = network(Suite::Noise, 8, |_| {});
    let ids: Vec<MessageId> = (0..3u8).map(|i| send(&mut net, "t", &[i])).collect();
    net.run_for(Duration::from_millis(100));
    let (held, _) = server_messages(&mut net);
    assert_eq!(held.len(), 3);
    complete(&mut net, held[0].id).unwrap();
    let now = net.now();
    net.server(server_addr())
        .refuse_handoff(now, held[1].id)
        .unwrap();
    assert_eq!(complete(&mut net, held[2].id), Err(HandoffError::Unknown));
    net.run_for(Duration::from_secs(3));
    let (again, _) = server_messages(&mut net);
    let payloads: Vec<u8> = again.iter().map(|h| h.payload[0]).collect();
    assert_eq!(payloads, vec![0, 1, 2], "the whole batch, at least once");
    for h in &again {
        complete(&mut net, h.id).unwrap();
    }
    net.run_for(Duration::from_millis(100));
    let mut acked = delivered(&mut net);
    acked.sort();
    assert_eq!(acked, ids);
}

#[test]
fn keys_name_the_sender() {
    let mut net = network(Suite::Psk, 9, |_| {});
    send(&mut net, "t", b"x");
    net.run_for(Duration::from_millis(100));
    let (held, _) = server_messages(&mut net);
    assert_eq!(held[0].key.peer, PeerId::Client(ID));
}

#[test]
fn a_batch_with_a_held_frame_waits_for_it_whole() {
    // A frame to an unmarked target shares the held frame's counter: the counter's one ACK
    // must wait for the held frame.
    let mut net = network(Suite::Noise, 10, |_| {});
    let held_id = send(&mut net, "t", b"held");
    let plain_id = send(&mut net, "u", b"plain");
    net.run_for(Duration::from_millis(100));
    let (held, plain) = server_messages(&mut net);
    assert_eq!((held.len(), plain.len()), (1, 1));
    net.run_for(Duration::from_secs(2));
    assert!(
        delivered(&mut net).is_empty(),
        "the batch was acknowledged early"
    );
    complete(&mut net, held[0].id).unwrap();
    net.run_for(Duration::from_millis(100));
    let mut acked = delivered(&mut net);
    acked.sort();
    let mut want = vec![held_id, plain_id];
    want.sort();
    assert_eq!(acked, want);
}

fn second_addr() -> SocketAddr {
    addr("10.0.0.3:40000")
}

fn second_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x33; 32])
}

/// The server of `network` that also knows the second client.
fn with_second(config: ServerConfig, suite: Suite) -> ServerConfig {
    match suite {
        Suite::Psk => config.with_psk_client(ID2, psk()),
        Suite::Ecc | Suite::Noise => config.with_ecc_client(ID2, *second_keys().public()),
    }
}

fn second_config(suite: Suite) -> ClientConfig {
    let (server, seed) = (server_addr(), [9; 32]);
    let mut config = match suite {
        Suite::Psk => ClientConfig::psk(ID2, psk(), server, seed),
        Suite::Ecc => ClientConfig::ecc(ID2, second_keys(), *server_keys().public(), server, seed),
        Suite::Noise => {
            ClientConfig::noise_ik(ID2, second_keys(), *server_keys().public(), server, seed)
        }
    };
    config.limits.default_timeout = Duration::from_secs(20);
    config
}

/// Two messages held, with the per-session and the global bound both at 2: the table is
/// full for every session.
fn full_table(suite: Suite, seed: u64) -> (Network, Vec<Held>) {
    let mut net = Network::new(seed, Link::clean());
    let mut config = with_second(server_config(suite, ID, 1), suite);
    config.limits.max_held_per_session = 2;
    config.limits.max_held = 2;
    net.add_server(server_addr(), config);
    let mut client = client_config(suite, ID, server_addr(), 2);
    client.limits.default_timeout = Duration::from_secs(20);
    net.add_client(client_addr(), client);
    net.run_for(Duration::from_millis(50));
    net.server(server_addr())
        .set_handoff(HandoffTarget::Exact("t".into()));
    send(&mut net, "t", b"a");
    // Apart, so that suite 3 does not batch the two under one counter.
    net.run_for(Duration::from_millis(50));
    send(&mut net, "t", b"b");
    net.run_for(Duration::from_millis(50));
    let (held, _) = server_messages(&mut net);
    assert_eq!(held.len(), 2, "{suite:?}");
    assert_eq!(net.server(server_addr()).held_count(), 2);
    (net, held)
}

/// What the second client's application saw of a message it sent: its hand-off, if the
/// server held it.
fn held_from(net: &mut Network, peer: PeerId) -> Vec<Held> {
    server_messages(net)
        .0
        .into_iter()
        .filter(|h| h.key.peer == peer)
        .collect()
}

#[test]
fn a_session_that_quits_frees_its_held_messages_at_once() {
    for suite in SUITES {
        let (mut net, held) = full_table(suite, 11);
        // Another client's message finds the global bound taken.
        net.add_client(second_addr(), second_config(suite));
        net.run_for(Duration::from_millis(50));
        let now = net.now();
        let other = net
            .client(second_addr())
            .send_message(now, "t", "n", b"c", SendOptions::reliable())
            .unwrap();
        net.run_for(Duration::from_millis(50));
        let full = net
            .server(server_addr())
            .stats()
            .dropped(DropReason::HandoffFull);
        assert!(full >= 1, "{suite:?}: the table was not full");
        assert!(held_from(&mut net, PeerId::Client(ID2)).is_empty());

        // The first client quits: its two entries go with its session, long before the
        // 30 s hand-off timeout, and the other client's next retransmission is held.
        let now = net.now();
        net.client(client_addr()).close(now);
        net.run_for(Duration::from_millis(20));
        let stats = net.server(server_addr()).stats().clone();
        assert_eq!(stats.handoffs_session_gone, 2, "{suite:?}");
        assert_eq!(net.server(server_addr()).held_count(), 0, "{suite:?}");
        net.run_for(Duration::from_secs(3));
        let again = held_from(&mut net, PeerId::Client(ID2));
        assert_eq!(again.len(), 1, "{suite:?}: the freed bound took it");
        assert_eq!(net.server(server_addr()).held_count(), 1);

        // The application's late answers about the ended session get the typed error once.
        assert_eq!(
            complete(&mut net, held[0].id),
            Err(HandoffError::SessionGone),
            "{suite:?}"
        );
        assert_eq!(complete(&mut net, held[0].id), Err(HandoffError::Unknown));
        let now = net.now();
        assert_eq!(
            net.server(server_addr()).refuse_handoff(now, held[1].id),
            Err(HandoffError::SessionGone),
            "{suite:?}"
        );
        let stats = net.server(server_addr()).stats().clone();
        assert_eq!((stats.handoffs_refused, stats.handoffs_expired), (0, 0));

        complete(&mut net, again[0].id).unwrap();
        net.run_for(Duration::from_millis(100));
        let acked: Vec<MessageId> = net
            .client_events(second_addr())
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::Delivered { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        assert_eq!(acked, vec![other], "{suite:?}");
    }
}

#[test]
fn a_replaced_session_frees_its_held_messages_at_once() {
    for suite in SUITES {
        let (mut net, held) = full_table(suite, 12);
        // The client process restarts at the same address (new keys) and handshakes again:
        // the new session replaces the old one.
        let restarted = client_config(suite, ID, server_addr(), 3);
        net.replace(client_addr(), Node::Client(Client::new(restarted)));
        net.run_for(Duration::from_millis(100));
        assert!(net.client(client_addr()).is_connected(), "{suite:?}");
        assert_eq!(net.server(server_addr()).held_count(), 0, "{suite:?}");
        assert_eq!(
            net.server(server_addr()).stats().handoffs_session_gone,
            2,
            "{suite:?}"
        );
        // Both bounds are free for the new session.
        send(&mut net, "t", b"c");
        net.run_for(Duration::from_millis(50));
        send(&mut net, "t", b"d");
        net.run_for(Duration::from_millis(100));
        let (fresh, _) = server_messages(&mut net);
        assert_eq!(fresh.len(), 2, "{suite:?}");
        assert_eq!(
            net.server(server_addr())
                .stats()
                .dropped(DropReason::HandoffFull),
            0,
            "{suite:?}"
        );
        assert_eq!(
            complete(&mut net, held[0].id),
            Err(HandoffError::SessionGone),
            "{suite:?}"
        );
        for h in &fresh {
            complete(&mut net, h.id).unwrap();
        }
        net.run_for(Duration::from_millis(100));
        assert_eq!(delivered(&mut net).len(), 2, "{suite:?}");
        // Nothing is held now, yet the hand-off timer still wakes the server at the old
        // entries' timeout, to forget their ids as expired ones are.
        net.run_for(Duration::from_secs(31));
        assert_eq!(complete(&mut net, held[1].id), Err(HandoffError::Unknown));
    }
}

#[test]
fn a_keepalive_is_never_held() {
    // Under `HandoffTarget::All` a client's keepalive (an empty reliable message, never
    // delivered) must still be acknowledged: held, nobody could complete it, and the client
    // would take the silence for a dead session and look for the server again.
    for suite in SUITES {
        let mut net = Network::new(11, Link::clean());
        net.add_server(server_addr(), server_config(suite, ID, 1));
        let mut client = client_config(suite, ID, server_addr(), 2);
        client.keepalive = Some(Duration::from_secs(1));
        net.add_client(client_addr(), client);
        net.run_for(Duration::from_millis(50));
        assert!(net.client(client_addr()).is_connected());
        net.server(server_addr()).set_handoff(HandoffTarget::All);
        net.run_for(Duration::from_secs(10));
        assert_eq!(net.server(server_addr()).held_count(), 0, "{suite:?}");
        assert_eq!(net.server(server_addr()).stats().handoff_duplicates, 0);
        assert!(
            !net.client(client_addr()).is_reconnecting(),
            "{suite:?}: keepalives went unanswered"
        );
        assert!(server_messages(&mut net).0.is_empty());
    }
}
