//! Segmented messages (ops 33–35, `docs/PROTOCOL.md` §9.7) over the in-memory network: round
//! trips around every size boundary in both directions and over every suite, loss, large
//! calls and answers, multicast, refusals, budgets and expiry.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use std::net::SocketAddr;

use pavillion_proto::endpoint::{
    ClientEvent, DropReason, FailReason, Limits, SendError, SendOptions, ServerEvent,
    TransferRefusal,
};
use pavillion_proto::testing::{Link, Network, Verdict};
use pavillion_proto::wire::{self, RpcStatus};
use pavillion_proto::{ClientId, Duration, FunctionId, MessageId};

use common::{client_addr, client_config, server_addr, server_config, Suite, SUITES};

const ID: ClientId = ClientId(*b"segments-client1");

/// Plaintext room in one datagram: a message body of this many bytes (opcode included) is
/// the largest that is not segmented.
const ONE_DATAGRAM: usize = wire::MAX_DATAGRAM - wire::SESSION_OVERHEAD;

/// Segment data bytes per datagram (unicast).
const SEGMENT: usize = ONE_DATAGRAM - 1 - 16;

fn pair(suite: Suite, link: Link, seed: u64, limits: Limits) -> Network {
    let mut net = Network::new(seed, link);
    let mut server = server_config(suite, ID, 1);
    server.limits = limits.clone();
    net.add_server(server_addr(), server);
    let mut client = client_config(suite, ID, server_addr(), 2);
    client.limits = limits;
    net.add_client(client_addr(), client);
    // Both sides: under loss the client may hold a session whose client-info the server has
    // not received yet, and a test that starts with the server sending would find no client.
    let up = net.run_until(Duration::from_secs(5), |net| {
        net.client(client_addr()).is_connected() && net.server(server_addr()).clients().count() > 0
    });
    assert!(up);
    net
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// A payload size whose message body (target "t", name "n") is `body` bytes.
fn for_body(body: usize) -> usize {
    body - 5
}

fn reliable(timeout_s: u64) -> SendOptions {
    SendOptions::reliable().with_timeout(Duration::from_secs(timeout_s))
}

/// Client → server: the message arrives once and whole, and the client hears `Delivered`.
fn client_to_server(net: &mut Network, data: &[u8], timeout_s: u64) -> Vec<ClientEvent> {
    let now = net.now();
    let id = net
        .client(client_addr())
        .send_message(now, "t", "n", data, reliable(timeout_s))
        .unwrap();
    let mut got = Vec::new();
    let mut events = Vec::new();
    let done = net.run_until(Duration::from_secs(timeout_s + 1), |net| {
        got.extend(
            net.server_events(server_addr())
                .into_iter()
                .filter_map(|e| match e {
                    ServerEvent::Message { message, .. } => Some(message),
                    _ => None,
                }),
        );
        events.extend(net.client_events(client_addr()));
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Delivered { id: d, .. } if *d == id))
    });
    assert!(done, "not delivered: {events:?}");
    net.run_for(Duration::from_secs(1));
    got.extend(
        net.server_events(server_addr())
            .into_iter()
            .filter_map(|e| match e {
                ServerEvent::Message { message, .. } => Some(message),
                _ => None,
            }),
    );
    assert_eq!(got.len(), 1, "delivered once");
    assert_eq!(got[0].payload(), data, "and whole");
    assert!(got[0].reliable);
    events
}

#[test]
fn round_trips_around_every_boundary_both_ways_over_every_suite() {
    for suite in SUITES {
        let mut net = pair(suite, Link::clean(), 1, Limits::default());
        for body in [
            ONE_DATAGRAM - 1,
            ONE_DATAGRAM,
            ONE_DATAGRAM + 1,
            2 * SEGMENT,
            2 * SEGMENT + 1,
            10 * SEGMENT + 7,
        ] {
            let data = payload(for_body(body), body as u8);
            let events = client_to_server(&mut net, &data, 5);
            let progress: Vec<(u64, u64)> = events
                .iter()
                .filter_map(|e| match e {
                    ClientEvent::Progress { acked, total, .. } => Some((*acked, *total)),
                    _ => None,
                })
                .collect();
            if body <= ONE_DATAGRAM {
                assert!(
                    progress.is_empty(),
                    "{suite:?} {body}: one datagram, no progress"
                );
            } else {
                let total = body as u64;
                assert!(progress.windows(2).all(|w| w[0].0 < w[1].0), "advancing");
                assert_eq!(progress.last(), Some(&(total, total)), "{suite:?} {body}");
            }
            // And back: server → client.
            let now = net.now();
            let id = net
                .server(server_addr())
                .send_message(now, client_addr(), "t", "n", &data, reliable(5))
                .unwrap();
            net.run_for(Duration::from_secs(2));
            let events = net.server_events(server_addr());
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, ServerEvent::Delivered { id: d, .. } if *d == id)),
                "{suite:?} {body}: {events:?}"
            );
            let got: Vec<_> = net
                .client_events(client_addr())
                .into_iter()
                .filter_map(|e| match e {
                    ClientEvent::Message(m) => Some(m),
                    _ => None,
                })
                .collect();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].payload(), &data[..]);
        }
    }
}

#[test]
fn four_mebibytes_under_loss_arrive_whole_and_once() {
    let limits = Limits {
        max_message: 8 << 20,
        reassembly_per_peer: 8 << 20,
        ..Limits::default()
    };
    let mut net = pair(Suite::Psk, Link::lossy(0.1), 4, limits);
    let data = payload(4 << 20, 9);
    let events = client_to_server(&mut net, &data, 120);
    // Acknowledged window by window: progress in many steps, each further, up to the total.
    let progress: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Progress { acked, .. } => Some(*acked),
            _ => None,
        })
        .collect();
    assert!(progress.len() > 16, "{} steps", progress.len());
    assert!(progress.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(progress.last(), Some(&(data.len() as u64 + 5)));
    let stats = net.client(client_addr()).stats().clone();
    assert!(stats.retransmissions > 0, "loss makes retransmissions");
    // One lost segment resends that segment only: about 10% of them, not the tail.
    let segments = (4u64 << 20) / SEGMENT as u64;
    assert!(
        stats.retransmissions < segments / 2,
        "{} retransmissions for {segments} segments",
        stats.retransmissions
    );
}

#[test]
fn unreliable_and_oversized_messages_are_refused_at_the_call() {
    let mut net = pair(Suite::Psk, Link::clean(), 2, Limits::default());
    let now = net.now();
    let c = net.client(client_addr());
    let big = payload(ONE_DATAGRAM, 1);
    assert_eq!(
        c.send_message(now, "t", "n", &big, SendOptions::unreliable()),
        Err(SendError::TooLarge)
    );
    let huge = payload(1 << 20, 1);
    assert_eq!(
        c.send_message(now, "t", "n", &huge, SendOptions::reliable()),
        Err(SendError::TooLarge),
        "over the default 1 MiB maximum with its header"
    );
    assert_eq!(
        c.send_message(now, "t\nx", "n", &big, SendOptions::reliable()),
        Err(SendError::InvalidName)
    );
}

#[test]
fn the_receivers_maximum_refuses_with_a_reason_the_sender_sees() {
    for suite in SUITES {
        let mut net = pair(suite, Link::clean(), 3, Limits::default());
        // The server accepts less than the client sends.
        let limits = Limits {
            max_message: 64 * 1024,
            ..Limits::default()
        };
        let mut server = server_config(suite, ID, 1);
        server.limits = limits;
        net.replace(
            server_addr(),
            pavillion_proto::testing::Node::Server(pavillion_proto::endpoint::Server::new(server)),
        );
        net.run_for(Duration::from_secs(3));
        let now = net.now();
        let data = payload(100 * 1024, 3);
        let id = net
            .client(client_addr())
            .send_message(now, "t", "n", &data, reliable(10))
            .unwrap();
        net.run_for(Duration::from_secs(3));
        let events = net.client_events(client_addr());
        assert!(
            events.iter().any(|e| matches!(e, ClientEvent::Failed { id: f, reason: FailReason::Refused(TransferRefusal::TooLarge) } if *f == id)),
            "{suite:?}: {events:?}"
        );
        assert!(
            net.server(server_addr())
                .stats()
                .dropped(DropReason::TransferTooLarge)
                > 0
        );
        assert_eq!(net.server(server_addr()).reassembly().reserved, 0);
        assert!(net
            .server_events(server_addr())
            .iter()
            .all(|e| !matches!(e, ServerEvent::Message { .. })));
    }
}

#[test]
fn a_full_budget_refuses_with_no_room() {
    let limits = Limits {
        reassembly_per_peer: 100 * 1024,
        ..Limits::default()
    };
    let mut net = pair(Suite::Psk, Link::clean(), 5, limits);
    let now = net.now();
    let data = payload(200 * 1024, 5);
    let id = net
        .client(client_addr())
        .send_message(now, "t", "n", &data, reliable(10))
        .unwrap();
    net.run_for(Duration::from_secs(2));
    let events = net.client_events(client_addr());
    assert!(
        events.iter().any(|e| matches!(e, ClientEvent::Failed { id: f, reason: FailReason::Refused(TransferRefusal::NoRoom) } if *f == id)),
        "{events:?}"
    );
    assert!(
        net.server(server_addr())
            .stats()
            .dropped(DropReason::TransferNoRoom)
            > 0
    );
    // A message within the budget still goes.
    client_to_server(&mut net, &payload(50 * 1024, 6), 5);
}

#[test]
fn large_call_arguments_and_answers_run_once() {
    for suite in SUITES {
        let mut net = pair(suite, Link::lossy(0.1), 6, Limits::default());
        net.server(server_addr())
            .register_function(FunctionId(9), "big");
        let args = payload(50_000, 7);
        let now = net.now();
        let call = net
            .client(client_addr())
            .call(now, FunctionId(9), &args, Some(Duration::from_secs(20)))
            .unwrap();
        let mut requests = 0;
        let mut answer = None;
        net.run_until(Duration::from_secs(20), |net| {
            let now = net.now();
            for e in net.server_events(server_addr()) {
                if let ServerEvent::RpcRequest(r) = e {
                    requests += 1;
                    let mut back = r.args.to_vec();
                    back.reverse();
                    net.server(server_addr())
                        .respond(now, r.call, RpcStatus::OK, &back)
                        .unwrap();
                }
            }
            for e in net.client_events(client_addr()) {
                if let ClientEvent::Answered { call: c, data, .. } = e {
                    assert_eq!(c, call);
                    answer = Some(data);
                }
            }
            answer.is_some()
        });
        let mut back = args.clone();
        back.reverse();
        assert_eq!(answer.as_deref(), Some(&back[..]), "{suite:?}");
        net.run_for(Duration::from_secs(2));
        for e in net.server_events(server_addr()) {
            assert!(!matches!(e, ServerEvent::RpcRequest(_)), "run once: {e:?}");
        }
        assert_eq!(requests, 1);
        // The built-in echo answers a large argument in segments too.
        let now = net.now();
        let echo = net.client(client_addr()).echo(now, &args).unwrap();
        let ok = net.run_until(Duration::from_secs(10), |net| {
            net.client_events(client_addr()).iter().any(|e| {
                matches!(e, ClientEvent::Answered { call, data, .. } if *call == echo && data.as_ref() == &args[..])
            })
        });
        assert!(ok, "{suite:?}: echo");
    }
}

#[test]
fn duplicated_and_reordered_segments_deliver_once() {
    let link = Link {
        jitter: Duration::from_millis(5),
        duplicate: 0.2,
        ..Link::lossy(0.05)
    };
    let mut net = pair(Suite::Psk, link, 7, Limits::default());
    for (i, len) in [20_000usize, 100_000, 5_000].into_iter().enumerate() {
        client_to_server(&mut net, &payload(len, i as u8), 20);
    }
}

#[test]
fn a_segment_of_a_delivered_message_is_acknowledged_not_delivered_again() {
    let mut net = pair(Suite::Psk, Link::clean(), 8, Limits::default());
    net.capture();
    let data = payload(3 * SEGMENT, 8);
    client_to_server(&mut net, &data, 5);
    // Replay the first segment the client sent: a duplicate counter, so it is acknowledged
    // again (op 34), not delivered again.
    let first_segment = net
        .captured()
        .iter()
        .find(|c| c.from == client_addr() && c.bytes.len() > 3000)
        .cloned()
        .unwrap();
    net.inject(client_addr(), server_addr(), &first_segment.bytes);
    net.run_for(Duration::from_millis(50));
    let events = net.server_events(server_addr());
    assert!(events
        .iter()
        .all(|e| !matches!(e, ServerEvent::Message { .. })));
    assert!(
        net.server(server_addr())
            .stats()
            .dropped(DropReason::Duplicate)
            >= 1
    );
    let last = net.captured().last().unwrap();
    assert_eq!(last.from, server_addr(), "re-acknowledged");
}

#[test]
fn the_server_sends_large_messages_to_every_client_and_reports_progress() {
    let mut net = pair(Suite::Psk, Link::lossy(0.05), 9, Limits::default());
    let now = net.now();
    let data = payload(300_000, 9);
    let sent = net
        .server(server_addr())
        .send_to_all(now, "t", "n", &data, reliable(20), |_, _| true)
        .unwrap();
    let id: MessageId = sent[0].1.unwrap();
    let mut progress = Vec::new();
    let mut delivered = false;
    net.run_until(Duration::from_secs(20), |net| {
        for e in net.server_events(server_addr()) {
            match e {
                ServerEvent::Progress {
                    id: p,
                    acked,
                    total,
                } if p == id => progress.push((acked, total)),
                ServerEvent::Delivered { id: d, .. } if d == id => delivered = true,
                _ => {}
            }
        }
        delivered
    });
    assert!(delivered);
    assert!(progress.len() > 1);
    assert!(progress.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(progress.last().map(|p| p.1), Some(data.len() as u64 + 5));
    let got: Vec<_> = net
        .client_events(client_addr())
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Message(m) => Some(m.payload_bytes()),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].as_ref(), &data[..]);
}

/// Keeps only what `keep` lets through from `from`.
fn drop_from(net: &mut Network, from: SocketAddr, mut keep: impl FnMut(&[u8]) -> bool + 'static) {
    net.set_filter(move |c| {
        if c.from == from && !keep(&c.bytes) {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
}

#[test]
fn a_partial_message_expires_and_frees_its_reservation() {
    let limits = Limits {
        reassembly_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let mut net = pair(Suite::Psk, Link::clean(), 10, limits);
    // Only the first two datagrams of the transfer get through.
    let mut passed = 0;
    drop_from(&mut net, client_addr(), move |bytes| {
        if bytes.len() < 3000 {
            return true;
        }
        passed += 1;
        passed <= 2
    });
    let now = net.now();
    let data = payload(10 * SEGMENT, 10);
    let id = net
        .client(client_addr())
        .send_message(now, "t", "n", &data, reliable(60))
        .unwrap();
    net.run_for(Duration::from_millis(500));
    let held = net.server(server_addr()).reassembly();
    assert_eq!(held.partials, 1);
    assert!(held.reserved > data.len());
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.server(server_addr()).reassembly().reserved, 0, "freed");
    let events = net.client_events(client_addr());
    assert!(
        events.iter().any(|e| matches!(e, ClientEvent::Failed { id: f, reason: FailReason::Refused(TransferRefusal::Expired) } if *f == id)),
        "the sender is told: {events:?}"
    );
}

fn group() -> SocketAddr {
    common::addr("239.255.28.12:1783")
}

fn members() -> Vec<SocketAddr> {
    (1..=3)
        .map(|i| common::addr(&format!("10.0.1.{i}:1783")))
        .collect()
}

/// Three servers of a group taking "lights", and one client sending to the group with at most
/// `in_flight` exchanges in flight.
fn multicast(suite: Suite, seed: u64, in_flight: usize) -> Network {
    let mut net = Network::new(seed, Link::clean());
    for (i, s) in members().into_iter().enumerate() {
        net.add_server(s, server_config(suite, ID, 10 + i as u8));
        net.join(s, group());
    }
    let mut client = client_config(suite, ID, group(), 20);
    client.limits.max_in_flight = in_flight;
    net.add_client(client_addr(), client);
    net.join(client_addr(), group());
    let now = net.now();
    for s in members() {
        net.server(s).subscribe(now, "lights");
    }
    net.run_for(Duration::from_millis(500));
    let now = net.now();
    assert_eq!(
        net.client(client_addr()).subscribers(now, "lights").len(),
        3
    );
    net
}

fn multicast_outcome(
    events: &[ClientEvent],
    id: MessageId,
) -> Option<(Vec<SocketAddr>, Vec<SocketAddr>)> {
    events.iter().find_map(|e| match e {
        ClientEvent::Delivered {
            id: d,
            acked,
            missing,
        } if *d == id => {
            let (mut a, mut m) = (acked.to_vec(), missing.clone());
            a.sort();
            m.sort();
            Some((a, m))
        }
        _ => None,
    })
}

/// Every server of the group acknowledges every segment; a server that lost some gets them
/// again and is counted; a dead one is named missing, and only servers with the whole message
/// are listed as having it.
#[test]
fn multicast_segments_reach_every_server_and_the_outcome_lists_who_got_it_whole() {
    for suite in SUITES {
        let mut net = multicast(suite, 11, 64);
        let data = payload(6 * SEGMENT, 11);
        // The second server loses everything for 50 ms: it misses segments, then catches up.
        let lossy = members()[1];
        net.set_path(client_addr(), lossy, Link::lossy(1.0));
        let now = net.now();
        let id = net
            .client(client_addr())
            .send_message(now, "lights", "on", &data, reliable(5))
            .unwrap();
        net.run_for(Duration::from_millis(50));
        net.set_path(client_addr(), lossy, Link::clean());
        net.run_for(Duration::from_secs(6));
        let events = net.client_events(client_addr());
        assert_eq!(
            multicast_outcome(&events, id),
            Some((members(), Vec::new())),
            "{suite:?}: {events:?}"
        );
        for s in members() {
            let got: Vec<_> = net
                .server_events(s)
                .into_iter()
                .filter_map(|e| match e {
                    ServerEvent::Message { message, .. } => Some(message.payload_bytes()),
                    _ => None,
                })
                .collect();
            assert_eq!(got.len(), 1, "{suite:?} {s}");
            assert_eq!(got[0].as_ref(), &data[..]);
        }
        // A server that gets some of the first transmissions and then nothing has acknowledged
        // some segments but not all: at the deadline the others are listed, it is missing.
        let partial = members()[2];
        net.set_path(client_addr(), partial, Link::lossy(0.5));
        let now = net.now();
        let id = net
            .client(client_addr())
            .send_message(now, "lights", "on", &data, reliable(2))
            .unwrap();
        net.run_for(Duration::from_micros(1500));
        net.set_path(client_addr(), partial, Link::lossy(1.0));
        net.run_for(Duration::from_secs(3));
        let others: Vec<_> = members().into_iter().filter(|s| *s != partial).collect();
        assert_eq!(
            multicast_outcome(&net.client_events(client_addr()), id),
            Some((others, vec![partial])),
            "{suite:?}"
        );
        assert_eq!(net.server(partial).reassembly().partials, 1, "{suite:?}");
    }
}

/// Suite 3 agrees new keys after 40 packets here, so a transfer's segments go out under one
/// session key and, retransmitted or not, arrive under the next (the same peer's
/// re-handshake): the message is whole, once.
#[test]
fn segments_cross_a_rekey() {
    let mut net = Network::new(12, Link::lossy(0.05));
    net.add_server(server_addr(), server_config(Suite::Noise, ID, 1));
    let mut client = client_config(Suite::Noise, ID, server_addr(), 2);
    client.rekey_after_messages = 40;
    net.add_client(client_addr(), client);
    assert!(net.run_until(Duration::from_secs(5), |net| net
        .client(client_addr())
        .is_connected()));
    let handshakes = net.server(server_addr()).stats().handshakes;
    let data = payload(200 * SEGMENT, 12);
    let now = net.now();
    let id = net
        .client(client_addr())
        .send_message(now, "t", "n", &data, reliable(30))
        .unwrap();
    let mut got = Vec::new();
    let done = net.run_until(Duration::from_secs(30), |net| {
        got.extend(
            net.server_events(server_addr())
                .into_iter()
                .filter_map(|e| match e {
                    ServerEvent::Message { message, .. } => Some(message.payload_bytes()),
                    _ => None,
                }),
        );
        let events = net.client_events(client_addr());
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Delivered { id: d, .. } if *d == id))
    });
    assert!(done);
    assert!(
        net.server(server_addr()).stats().handshakes > handshakes,
        "the transfer crossed a rekey"
    );
    net.run_for(Duration::from_secs(2));
    got.extend(
        net.server_events(server_addr())
            .into_iter()
            .filter_map(|e| match e {
                ServerEvent::Message { message, .. } => Some(message.payload_bytes()),
                _ => None,
            }),
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].as_ref(), &data[..]);
}
