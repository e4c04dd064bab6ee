//! Reliable messages without a deadline, and cancelling them (`docs/PROTOCOL.md` §7.2, §7.4),
//! over the in-memory network, every suite, both roles: a message survives a five-minute
//! outage and the server's reboot (a re-handshake) and is delivered once, its retries never
//! further apart than the RTO ceiling; a cancel ends it with one `Failed { Cancelled }` and
//! stops its retransmissions; a cancelled ordered seq is skipped by the receiver.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use pavillion_proto::endpoint::{ClientEvent, FailReason, SendOptions, Server, ServerEvent};
use pavillion_proto::testing::{Link, Network, Node, Verdict};
use pavillion_proto::{ClientId, Duration, Instant, MessageId};

use common::{client_addr, client_config, server_addr, server_config, Observed, Suite, SUITES};

const ID: ClientId = ClientId(*b"unlimited-client");

/// The payload size that tells our message's datagrams from everything else on the link.
const BIG: usize = 400;

fn pair(suite: Suite, seed: u8) -> Network {
    let mut net = Network::new(u64::from(seed), Link::clean());
    net.add_server(server_addr(), server_config(suite, ID, seed));
    net.add_client(
        client_addr(),
        client_config(suite, ID, server_addr(), seed + 1),
    );
    net.run_for(Duration::from_millis(500));
    net
}

/// Records when each datagram from `from` larger than `BIG` left (our message's copies).
fn watch(net: &mut Network, from: std::net::SocketAddr) -> Rc<RefCell<Vec<Instant>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    net.set_filter(move |d| {
        if d.from == from && d.bytes.len() > BIG {
            log.borrow_mut().push(d.at);
        }
        Verdict::Deliver
    });
    seen
}

fn forever() -> SendOptions {
    SendOptions::reliable().without_deadline()
}

fn names<E: Observed>(events: &[E]) -> Vec<String> {
    events
        .iter()
        .filter_map(Observed::message)
        .map(|m| m.name().to_string())
        .collect()
}

fn cancelled_client(events: &[ClientEvent], id: MessageId) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Failed { id: x, reason: FailReason::Cancelled } if *x == id))
        .count()
}

fn cancelled_server(events: &[ServerEvent], id: MessageId) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Failed { id: x, reason: FailReason::Cancelled } if *x == id))
        .count()
}

#[test]
fn a_message_without_deadline_survives_a_five_minute_outage_and_a_server_reboot() {
    for suite in SUITES {
        let mut net = pair(suite, 3);
        let (s, c) = (server_addr(), client_addr());
        let copies = watch(&mut net, c);
        net.set_up(s, false);
        let now = net.now();
        let id = net
            .client(c)
            .send_message(now, "t", "survivor", &[7; BIG], forever())
            .unwrap();
        net.run_for(Duration::from_secs(300));
        // The server comes back as a new process: the client must handshake again, and its
        // message, still queued, goes to the new session.
        net.replace(s, Node::Server(Server::new(server_config(suite, ID, 9))));
        net.set_up(s, true);
        net.run_for(Duration::from_secs(30));
        assert_eq!(
            names(&net.server_events(s)),
            ["survivor"],
            "{suite:?}: delivered once"
        );
        let events = net.client_events(c);
        assert!(
            events.iter().any(|e| e.delivered() == Some(id)),
            "{suite:?}: {events:?}"
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, ClientEvent::TimedOut { .. } | ClientEvent::Failed { .. })),
            "{suite:?}: no other outcome"
        );
        // Retried through the whole outage, never further apart than the RTO ceiling.
        let times = copies.borrow();
        let ceiling = pavillion_proto::endpoint::Limits::default().rtt.max_rto;
        assert!(times.len() > 60, "{suite:?}: {} copies", times.len());
        for w in times.windows(2) {
            assert!(
                w[1] - w[0] <= ceiling + Duration::from_millis(5),
                "{suite:?}: a gap of {:?}",
                w[1] - w[0]
            );
        }
    }
}

#[test]
fn a_cancelled_message_fails_once_as_cancelled_and_is_not_sent_again() {
    for suite in SUITES {
        let mut net = pair(suite, 5);
        let (s, c) = (server_addr(), client_addr());
        let copies = watch(&mut net, c);
        net.set_up(s, false);
        let now = net.now();
        let id = net
            .client(c)
            .send_message(now, "t", "doomed", &[1; BIG], forever())
            .unwrap();
        net.run_for(Duration::from_secs(20));
        let now = net.now();
        assert!(net.client(c).cancel(now, id), "{suite:?}");
        assert!(!net.client(c).cancel(now, id), "{suite:?}: only once");
        let sent = copies.borrow().len();
        assert!(sent > 1, "{suite:?}");
        net.set_up(s, true);
        net.run_for(Duration::from_secs(60));
        assert_eq!(
            copies.borrow().len(),
            sent,
            "{suite:?}: no copy after the cancel"
        );
        assert!(names(&net.server_events(s)).is_empty(), "{suite:?}");
        let events = net.client_events(c);
        assert_eq!(cancelled_client(&events, id), 1, "{suite:?}: {events:?}");
        assert!(
            !events.iter().any(|e| e.delivered() == Some(id)),
            "{suite:?}: one outcome"
        );
        assert_eq!(net.client(c).pending(), 0, "{suite:?}");
    }
}

#[test]
fn a_server_cancels_a_message_to_a_client_that_is_gone() {
    for suite in SUITES {
        let mut net = pair(suite, 7);
        let (s, c) = (server_addr(), client_addr());
        let copies = watch(&mut net, s);
        net.set_up(c, false);
        let now = net.now();
        let id = net
            .server(s)
            .send_message(now, c, "t", "doomed", &[2; BIG], forever())
            .unwrap();
        net.run_for(Duration::from_secs(20));
        let now = net.now();
        assert!(net.server(s).cancel(now, id), "{suite:?}");
        assert!(!net.server(s).cancel(now, id), "{suite:?}: only once");
        let sent = copies.borrow().len();
        net.set_up(c, true);
        net.run_for(Duration::from_secs(30));
        assert_eq!(
            copies.borrow().len(),
            sent,
            "{suite:?}: no copy after the cancel"
        );
        assert!(names(&net.client_events(c)).is_empty(), "{suite:?}");
        let events = net.server_events(s);
        assert_eq!(cancelled_server(&events, id), 1, "{suite:?}: {events:?}");
    }
}

#[test]
fn cancelling_a_segmented_message_ends_its_transfer() {
    for suite in SUITES {
        let mut net = pair(suite, 11);
        let (s, c) = (server_addr(), client_addr());
        let copies = watch(&mut net, c);
        net.set_up(s, false);
        let now = net.now();
        let id = net
            .client(c)
            .send_message(now, "t", "huge", &[3; 20_000], forever())
            .unwrap();
        net.run_for(Duration::from_secs(10));
        let now = net.now();
        assert!(net.client(c).cancel(now, id), "{suite:?}");
        let sent = copies.borrow().len();
        net.set_up(s, true);
        net.run_for(Duration::from_secs(30));
        assert_eq!(
            copies.borrow().len(),
            sent,
            "{suite:?}: no segment after the cancel"
        );
        assert!(names(&net.server_events(s)).is_empty(), "{suite:?}");
        let events = net.client_events(c);
        assert_eq!(cancelled_client(&events, id), 1, "{suite:?}: {events:?}");
        assert_eq!(net.client(c).pending(), 0, "{suite:?}");
    }
}

#[test]
fn a_cancelled_ordered_seq_is_skipped_by_the_receiver() {
    for suite in SUITES {
        let mut net = pair(suite, 13);
        let (s, c) = (server_addr(), client_addr());
        // Every copy of the first message is lost; it has no deadline, so only a cancel
        // unblocks the stream.
        net.set_filter(|d| {
            if d.from == client_addr() && d.bytes.len() > BIG {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
        let now = net.now();
        let ordered = SendOptions::ordered().without_deadline();
        let lost = net
            .client(c)
            .send_message(now, "a", "0", &[0; BIG + 100], ordered)
            .unwrap();
        let mut rest = Vec::new();
        for name in ["1", "2"] {
            rest.push(
                net.client(c)
                    .send_message(now, "a", name, b"", ordered)
                    .unwrap(),
            );
        }
        net.run_for(Duration::from_secs(30));
        assert!(
            names(&net.server_events(s)).is_empty(),
            "{suite:?}: 1 and 2 wait for 0"
        );
        let now = net.now();
        assert!(net.client(c).cancel(now, lost), "{suite:?}");
        net.run_for(Duration::from_secs(5));
        assert_eq!(names(&net.server_events(s)), ["1", "2"], "{suite:?}");
        let events = net.client_events(c);
        assert_eq!(cancelled_client(&events, lost), 1, "{suite:?}");
        for id in rest {
            assert!(
                events.iter().any(|e| e.delivered() == Some(id)),
                "{suite:?}"
            );
        }
    }
}

#[test]
fn cancel_of_a_finished_or_unknown_message_is_refused() {
    let mut net = pair(Suite::Psk, 17);
    let c = client_addr();
    let now = net.now();
    let id = net
        .client(c)
        .send_message(now, "t", "quick", b"x", forever())
        .unwrap();
    net.run_for(Duration::from_secs(2));
    let now = net.now();
    assert!(!net.client(c).cancel(now, id), "delivered already");
    assert!(!net.client(c).cancel(now, MessageId(999_999)), "unknown");
    // An unreliable message has no outcome to cancel.
    let u = net
        .client(c)
        .send_message(now, "t", "u", b"x", SendOptions::unreliable())
        .unwrap();
    assert!(!net.client(c).cancel(now, u));
}
