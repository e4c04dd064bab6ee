//! Ordered delivery (op 36) over the in-memory network, every suite, both directions: order and
//! exactly-once under loss, duplication and reordering, no head-of-line blocking across
//! targets, skipping what the sender abandoned, a rebooted sender's fresh stream, multicast,
//! and bad input as counted drops.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use pavillion_proto::endpoint::{
    ClientEvent, DropReason, ReceivedMessage, SendError, SendOptions, ServerEvent,
};
use pavillion_proto::testing::established::{self, Suite as EstablishedSuite};
use pavillion_proto::testing::{Link, Network, Node, Verdict};
use pavillion_proto::{ClientId, Duration, MessageId};

use common::{client_addr, client_config, server_addr, server_config, Observed, Suite, SUITES};

const ID: ClientId = ClientId(*b"ordered-client-1");

fn pair(suite: Suite, link: Link, seed: u64) -> Network {
    let mut net = Network::new(seed, link);
    net.add_server(server_addr(), server_config(suite, ID, 1));
    net.add_client(client_addr(), client_config(suite, ID, server_addr(), 2));
    net.run_for(Duration::from_millis(500));
    net
}

/// A link that loses, duplicates and (with jitter far above the send gap) reorders.
fn hostile() -> Link {
    Link {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(30),
        loss: 0.2,
        duplicate: 0.2,
    }
}

fn long() -> SendOptions {
    SendOptions::ordered().with_timeout(Duration::from_secs(120))
}

/// The (target, name) of every message in `events`, in delivery order.
fn received<E: Observed>(events: &[E]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(Observed::message)
        .map(|m: &ReceivedMessage| (m.target().to_string(), m.name().to_string()))
        .collect()
}

/// The names delivered on `target`.
fn on(target: &str, got: &[(String, String)]) -> Vec<String> {
    got.iter()
        .filter(|(t, _)| t == target)
        .map(|(_, n)| n.clone())
        .collect()
}

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

#[test]
fn both_directions_arrive_in_order_exactly_once_under_loss_duplication_and_reordering() {
    for suite in SUITES {
        for seed in 1..=3 {
            both_directions_over(suite, seed);
        }
    }
}

fn both_directions_over(suite: Suite, seed: u64) {
    let mut net = pair(suite, Link::clean(), seed);
    net.set_link(hostile());
    let (s, c) = (server_addr(), client_addr());
    let n = 60;
    for i in 0..n {
        let now = net.now();
        for target in ["a", "b"] {
            net.client(c)
                .send_message(now, target, &i.to_string(), b"x", long())
                .unwrap();
            net.server(s)
                .send_message(now, c, target, &i.to_string(), b"y", long())
                .unwrap();
        }
        net.run_for(Duration::from_millis(2));
    }
    net.run_for(Duration::from_secs(90));
    let at_server = received(&net.server_events(s));
    let at_client = received(&net.client_events(c));
    for target in ["a", "b"] {
        assert_eq!(
            on(target, &at_server),
            numbered(n),
            "{suite:?} seed {seed} c>s"
        );
        assert_eq!(
            on(target, &at_client),
            numbered(n),
            "{suite:?} seed {seed} s>c"
        );
    }
    let stats = net.stats();
    assert!(
        stats.duplicated > 0 && stats.lost > 0,
        "the link did its worst"
    );
}

#[test]
fn a_loss_on_one_target_does_not_hold_up_another() {
    for suite in SUITES {
        let mut net = pair(suite, Link::clean(), 5);
        let (s, c) = (server_addr(), client_addr());
        // The first copy of "a" number 0 (the one long datagram) is lost.
        let lose = Rc::new(Cell::new(true));
        let flag = lose.clone();
        net.set_filter(move |d| {
            if d.from == client_addr() && d.bytes.len() > 300 && flag.replace(false) {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
        let now = net.now();
        for (target, name) in [("a", "0"), ("a", "1"), ("b", "0"), ("b", "1")] {
            let payload: &[u8] = if name == "0" && target == "a" {
                &[0; 400]
            } else {
                b""
            };
            net.client(c)
                .send_message(now, target, name, payload, SendOptions::ordered())
                .unwrap();
        }
        net.run_for(Duration::from_secs(5));
        assert!(!lose.get(), "a's 0 was lost once");
        let got = received(&net.server_events(s));
        assert_eq!(on("b", &got), ["0", "1"], "{suite:?}");
        assert_eq!(on("a", &got), ["0", "1"], "{suite:?}: a in order");
        // b was delivered while a waited for the retransmission of its 0.
        let at = |t: &str, n: &str| got.iter().position(|m| m == &(t.into(), n.into()));
        assert!(
            at("b", "1") < at("a", "0"),
            "{suite:?}: b held up by a: {got:?}"
        );
    }
}

#[test]
fn an_abandoned_message_is_skipped_and_the_rest_delivered_in_order() {
    for suite in SUITES {
        let mut net = pair(suite, Link::clean(), 9);
        let (s, c) = (server_addr(), client_addr());
        // Every copy of the long message is lost; its deadline passes.
        net.set_filter(|d| {
            if d.from == client_addr() && d.bytes.len() > 600 {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
        let now = net.now();
        let short = SendOptions::ordered().with_timeout(Duration::from_millis(800));
        let lost = net
            .client(c)
            .send_message(now, "a", "0", &[0; 700], short)
            .unwrap();
        let mut rest = Vec::new();
        for name in ["1", "2"] {
            rest.push(
                net.client(c)
                    .send_message(now, "a", name, b"", long())
                    .unwrap(),
            );
        }
        net.run_for(Duration::from_millis(300));
        assert!(
            received(&net.server_events(s)).is_empty(),
            "{suite:?}: 1 and 2 are held behind 0"
        );
        net.run_for(Duration::from_secs(3));
        let got = received(&net.server_events(s));
        assert_eq!(
            on("a", &got),
            ["1", "2"],
            "{suite:?}: 0 skipped, the rest in order"
        );
        let events = net.client_events(c);
        assert!(events
            .iter()
            .any(|e| matches!(e, ClientEvent::TimedOut { id } if *id == lost)));
        for id in rest {
            assert!(events.iter().any(|e| e.delivered() == Some(id)));
        }
    }
}

#[test]
fn a_rebooted_client_starts_a_fresh_stream() {
    for suite in SUITES {
        let mut net = pair(suite, Link::clean(), 11);
        let (s, c) = (server_addr(), client_addr());
        let now = net.now();
        for name in ["0", "1"] {
            net.client(c)
                .send_message(now, "a", name, b"", SendOptions::ordered())
                .unwrap();
        }
        net.run_for(Duration::from_secs(1));
        net.replace(
            c,
            Node::Client(pavillion_proto::endpoint::Client::new(client_config(
                suite, ID, s, 3,
            ))),
        );
        net.run_for(Duration::from_secs(1));
        let now = net.now();
        net.client(c)
            .send_message(now, "a", "after", b"", SendOptions::ordered())
            .unwrap();
        net.run_for(Duration::from_secs(3));
        let got = received(&net.server_events(s));
        assert_eq!(on("a", &got), ["0", "1", "after"], "{suite:?}");
    }
}

#[test]
fn ordered_messages_that_do_not_fit_are_refused() {
    let mut net = pair(Suite::Psk, Link::clean(), 1);
    let now = net.now();
    let big = vec![0u8; 4096];
    let r = net
        .client(client_addr())
        .send_message(now, "a", "n", &big, SendOptions::ordered());
    assert_eq!(r, Err(SendError::TooLarge));
    let r = net
        .client(client_addr())
        .send_message(now, "a\n", "n", b"", SendOptions::ordered());
    assert_eq!(r, Err(SendError::InvalidName));
}

/// An op 36 plaintext: epoch, seq, floor, then `t\nn\np`.
fn op36(epoch: u32, seq: u64, floor: u64) -> Vec<u8> {
    let mut p = vec![36u8];
    p.extend_from_slice(&epoch.to_le_bytes());
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&floor.to_le_bytes());
    p.extend_from_slice(b"t\nn\np");
    p
}

#[test]
fn bad_seqs_and_floors_are_counted_drops_never_acknowledged() {
    for suite in EstablishedSuite::ALL {
        let mut e = established::server(suite);
        let mut buf = [0u8; 2048];
        let cases: [(Vec<u8>, DropReason); 4] = [
            (op36(1, 0, 0), DropReason::OrderedInvalid),
            (op36(1, 5, 7), DropReason::OrderedInvalid),
            (op36(1, 1_000_000, 1), DropReason::OrderedGap),
            (op36(1, u64::MAX, 1), DropReason::OrderedInvalid),
        ];
        for (plain, reason) in cases {
            let before = e.server.stats().dropped(reason);
            let n = e.client.seal(&plain, &mut buf).unwrap();
            e.server.handle_datagram(e.now, e.client_addr, &buf[..n]);
            assert_eq!(e.server.stats().dropped(reason), before + 1, "{suite:?}");
            let mut out = [0u8; 2048];
            assert!(e.server.poll_transmit(e.now, &mut out).is_none(), "no ACK");
        }
        // Truncated prefixes are typed too.
        let n = e.client.seal(&[36, 1, 2, 3], &mut buf).unwrap();
        e.server.handle_datagram(e.now, e.client_addr, &buf[..n]);
        assert_eq!(e.server.stats().dropped(DropReason::Truncated), 1);
        // A good one is delivered and acknowledged.
        let n = e.client.seal(&op36(1, 1, 1), &mut buf).unwrap();
        e.server.handle_datagram(e.now, e.client_addr, &buf[..n]);
        let mut out = [0u8; 2048];
        assert!(e.server.poll_transmit(e.now, &mut out).is_some(), "ACK");
        let events: Vec<ServerEvent> = std::iter::from_fn(|| e.server.poll_event()).collect();
        assert_eq!(received(&events), [("t".into(), "n".into())]);
    }
}

fn group() -> SocketAddr {
    "239.255.28.12:1783".parse().unwrap()
}

#[test]
fn multicast_ordered_reaches_every_server_in_order() {
    for suite in SUITES {
        multicast_over(suite);
    }
}

fn multicast_over(suite: Suite) {
    let servers: Vec<SocketAddr> = (1..=3)
        .map(|i| format!("10.0.1.{i}:1783").parse().unwrap())
        .collect();
    let mut net = Network::new(3, Link::clean());
    for (i, s) in servers.iter().enumerate() {
        net.add_server(*s, server_config(suite, ID, 10 + i as u8));
        net.join(*s, group());
    }
    net.add_client(client_addr(), client_config(suite, ID, group(), 20));
    net.join(client_addr(), group());
    let now = net.now();
    for s in &servers {
        net.server(*s).subscribe(now, "a");
    }
    net.run_for(Duration::from_millis(500));
    net.set_link(hostile());
    let mut ids: Vec<MessageId> = Vec::new();
    for i in 0..30 {
        let now = net.now();
        ids.push(
            net.client(client_addr())
                .send_message(now, "a", &i.to_string(), b"", long())
                .unwrap(),
        );
        net.run_for(Duration::from_millis(2));
    }
    net.run_for(Duration::from_secs(60));
    for s in &servers {
        let got = received(&net.server_events(*s));
        assert_eq!(on("a", &got), numbered(30), "{suite:?} server {s}");
    }
}

#[test]
fn a_new_client_process_gets_a_fresh_stream_from_the_server() {
    for suite in SUITES {
        let mut net = pair(suite, Link::clean(), 13);
        let (s, c) = (server_addr(), client_addr());
        // The client dies; the server's ordered message to it is never acknowledged.
        net.set_up(c, false);
        let now = net.now();
        let lost = net
            .server(s)
            .send_message(now, c, "a", "0", b"", SendOptions::ordered())
            .unwrap();
        net.run_for(Duration::from_millis(300));
        // A new process of the client comes back at the same address.
        net.replace(
            c,
            Node::Client(pavillion_proto::endpoint::Client::new(client_config(
                suite, ID, s, 4,
            ))),
        );
        net.set_up(c, true);
        net.run_for(Duration::from_secs(1));
        let events = net.server_events(s);
        assert!(
            events.iter().any(|e| matches!(e,
                ServerEvent::Failed { id, .. } | ServerEvent::TimedOut { id } if *id == lost)),
            "{suite:?}: the old session's message failed with it"
        );
        let now = net.now();
        net.server(s)
            .send_message(now, c, "a", "1", b"", SendOptions::ordered())
            .unwrap();
        net.run_for(Duration::from_millis(200));
        let got = received(&net.client_events(c));
        assert_eq!(
            on("a", &got),
            ["1"],
            "{suite:?}: not held behind the old stream"
        );
    }
}
