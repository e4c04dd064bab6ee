//! Durable messages (op 37, `docs/PROTOCOL.md` §16) over the in-memory network, every suite,
//! both directions, with a model store per endpoint (`durable_net`): exactly once under
//! loss, duplication and reordering, across reboots of the sender, of the receiver and of
//! both; a store that fails; a foreign store refused; the inbox delivered again after a crash
//! before consume; the consume mark making the application's output exactly once.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;
mod durable_net;

use pavillion_proto::endpoint::{Client, DropReason, SendError};
use pavillion_proto::features::durable::DurableRestoreError;
use pavillion_proto::testing::Link;
use pavillion_proto::{ClientId, Duration};

use common::{client_addr, client_config, server_addr, Suite, SUITES};
use durable_net::{exactly_once, line, Pair, Role};

/// A link that loses, duplicates and (with jitter far above the send gap) reorders.
fn hostile() -> Link {
    Link {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(30),
        loss: 0.2,
        duplicate: 0.2,
    }
}

fn other(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

/// Streams `n` lines from `from` over `link`, calling `mid` at each tenth of the way, then
/// checks the receiver's output holds each line once.
fn stream(suite: Suite, from: Role, n: u64, link: Link, mut mid: impl FnMut(&mut Pair, u64)) {
    let mut pair = Pair::new(suite, 7, Link::clean());
    pair.run(Duration::from_millis(500), true);
    pair.net.set_link(link);
    for step in 1..=10 {
        pair.feed(from, n * step / 10);
        pair.run(Duration::from_millis(300), true);
        mid(&mut pair, step);
    }
    let to = other(from);
    let ok = pair.run_until(Duration::from_secs(300), |p| {
        p.get(to).out.len() as u64 >= n && p.get(from).next_line >= n
    });
    // A quiet while more, so that a late duplicate would show.
    pair.net.set_link(Link::clean());
    pair.run(Duration::from_secs(10), true);
    assert!(ok, "{suite:?} {from:?}: {} of {n}", pair.side(to).out.len());
    if let Err(e) = exactly_once(&pair.side(to).out, n) {
        panic!("{suite:?} {from:?}: {e}");
    }
    assert_eq!(
        durable_queued(&mut pair, from),
        0,
        "{suite:?} {from:?}: all acknowledged"
    );
}

fn durable_queued(pair: &mut Pair, role: Role) -> usize {
    match role {
        Role::Client => pair.net.client(client_addr()).durable_queued(),
        Role::Server => pair.net.server(server_addr()).durable_queued(),
    }
}

#[test]
fn durable_messages_arrive_once_both_ways_under_loss_duplication_and_reordering() {
    for suite in SUITES {
        for from in [Role::Client, Role::Server] {
            stream(suite, from, 200, hostile(), |_, _| {});
        }
    }
}

#[test]
fn a_sender_that_reboots_mid_stream_loses_nothing_and_repeats_nothing() {
    for suite in SUITES {
        for from in [Role::Client, Role::Server] {
            stream(suite, from, 200, hostile(), |p, step| {
                if step % 3 == 0 {
                    // Crash with batches written but unconfirmed, and some not written.
                    p.write(from);
                    let more = p.get(from).next_line + 5;
                    p.feed(from, more);
                    p.crash(from);
                }
            });
        }
    }
}

#[test]
fn a_receiver_that_reboots_mid_stream_loses_nothing_and_repeats_nothing() {
    for suite in SUITES {
        for from in [Role::Client, Role::Server] {
            let to = other(from);
            stream(suite, from, 200, hostile(), |p, step| {
                if step % 3 == 1 {
                    p.net.run_for(Duration::from_millis(40));
                    p.handle(to);
                    p.write(to);
                    p.crash(to);
                }
            });
        }
    }
}

#[test]
fn both_reboot_mid_stream_and_links_drop_for_minutes() {
    for suite in SUITES {
        for from in [Role::Client, Role::Server] {
            stream(suite, from, 150, hostile(), |p, step| {
                if step == 4 {
                    // Both down for three minutes; both restart.
                    p.net.set_up(client_addr(), false);
                    p.net.set_up(server_addr(), false);
                    p.run(Duration::from_secs(180), true);
                    p.net.set_up(client_addr(), true);
                    p.net.set_up(server_addr(), true);
                    p.crash(Role::Client);
                    p.crash(Role::Server);
                }
                if step == 7 {
                    p.crash(other(from));
                    p.crash(from);
                }
            });
        }
    }
}

#[test]
fn nothing_is_sent_before_its_batch_is_stored() {
    let mut pair = Pair::new(Suite::Psk, 3, Link::clean());
    pair.run(Duration::from_millis(500), true);
    pair.net.capture();
    pair.feed(Role::Client, 3);
    // Written, not confirmed: still nothing on the wire, nothing at the server.
    pair.write(Role::Client);
    pair.run(Duration::from_secs(2), false);
    assert!(pair.server.out.is_empty());
    let quiet = pair.net.captured().len();
    pair.confirm(Role::Client);
    pair.run(Duration::from_secs(2), true);
    assert!(pair.net.captured().len() > quiet);
    assert_eq!(pair.server.out, [line(0), line(1), line(2)]);
}

#[test]
fn a_message_is_acknowledged_and_delivered_only_once_its_record_is_stored() {
    for suite in SUITES {
        let mut pair = Pair::new(suite, 5, Link::clean());
        pair.run(Duration::from_millis(500), true);
        pair.feed(Role::Client, 1);
        pair.write(Role::Client);
        pair.confirm(Role::Client);
        // The server receives it, but its store does not write: no delivery, no ACK.
        for _ in 0..200 {
            pair.net.run_for(Duration::from_millis(10));
            pair.handle(Role::Client);
            pair.handle(Role::Server);
            pair.write(Role::Client);
            pair.confirm(Role::Client);
        }
        assert!(pair.server.out.is_empty(), "{suite:?}");
        assert!(pair.client.delivered.is_empty(), "{suite:?}");
        assert_eq!(durable_queued(&mut pair, Role::Client), 1, "{suite:?}");
        // Written: delivered once, acknowledged.
        pair.run(Duration::from_secs(5), true);
        assert_eq!(pair.server.out, [line(0)], "{suite:?}");
        assert_eq!(pair.client.delivered.len(), 1, "{suite:?}");
        assert_eq!(durable_queued(&mut pair, Role::Client), 0, "{suite:?}");
    }
}

#[test]
fn a_store_that_fails_fails_the_sends_and_withholds_the_acks() {
    for suite in SUITES {
        let mut pair = Pair::new(suite, 9, Link::clean());
        pair.run(Duration::from_millis(500), true);
        // The sender's disk is full: its sends fail, typed, and never go out.
        pair.client.store.broken = true;
        pair.feed(Role::Client, 3);
        pair.run(Duration::from_secs(3), true);
        assert_eq!(pair.client.failed.len(), 3, "{suite:?}");
        assert!(pair.server.out.is_empty(), "{suite:?}");
        assert_eq!(durable_queued(&mut pair, Role::Client), 0, "{suite:?}");
        // The disk recovers; the application sends again (new seqs): delivered.
        pair.client.store.broken = false;
        pair.client.next_line = 0;
        pair.feed(Role::Client, 3);
        // Now the receiver's disk is full: no ACK, no delivery, the sender keeps retrying.
        pair.server.store.broken = true;
        pair.run(Duration::from_secs(10), true);
        assert!(pair.server.out.is_empty(), "{suite:?}");
        assert!(pair.client.delivered.is_empty(), "{suite:?}");
        assert_eq!(durable_queued(&mut pair, Role::Client), 3, "{suite:?}");
        pair.server.store.broken = false;
        pair.run(Duration::from_secs(10), true);
        if let Err(e) = exactly_once(&pair.server.out, 3) {
            panic!("{suite:?}: {e}");
        }
        assert_eq!(pair.client.delivered.len(), 3, "{suite:?}");
    }
}

#[test]
fn a_store_of_another_identity_is_refused_and_left_as_it_is() {
    let mut pair = Pair::new(Suite::Ecc, 11, Link::clean());
    pair.feed(Role::Client, 2);
    pair.run(Duration::from_secs(1), true);
    let rows = pair.client.store.rows.clone();
    let other = ClientId(*b"someone-else-123");
    let mut stranger = Client::new(client_config(Suite::Ecc, other, server_addr(), 40));
    let now = pair.now();
    assert_eq!(
        stranger.enable_durable(now, pair.client.store.records()),
        Err(DurableRestoreError::ForeignIdentity)
    );
    assert!(stranger.poll_store().is_none(), "nothing queued");
    assert_eq!(
        stranger.send_durable(now, "t", "x", b"", None),
        Err(SendError::NotDurable),
        "still off"
    );
    assert_eq!(pair.client.store.rows, rows);
    // The server's store is not a client's either.
    let now = pair.now();
    let records = pair.server.store.records();
    assert_eq!(
        pair.net.client(client_addr()).enable_durable(now, records),
        Err(DurableRestoreError::AlreadyEnabled)
    );
}

#[test]
fn the_inbox_is_delivered_again_after_a_crash_before_consume() {
    for suite in SUITES {
        for from in [Role::Client, Role::Server] {
            let to = other(from);
            let mut pair = Pair::new(suite, 13, Link::clean());
            pair.run(Duration::from_millis(500), true);
            pair.side(to).consume = false;
            pair.feed(from, 4);
            pair.run(Duration::from_secs(3), true);
            assert_eq!(pair.side(to).out.len(), 4, "{suite:?} {from:?}");
            assert_eq!(pair.side(from).delivered.len(), 4, "{suite:?} {from:?}");
            // Crash before consuming: the consume mark is unset, so the output is cut back
            // to nothing and all four come again, marked.
            pair.side(to).consume = true;
            pair.crash(to);
            pair.run(Duration::from_secs(3), true);
            let side = pair.side(to);
            assert_eq!(side.redelivered, 4, "{suite:?} {from:?}");
            if let Err(e) = exactly_once(&side.out, 4) {
                panic!("{suite:?} {from:?}: {e}");
            }
            // Consumed now: a further crash delivers nothing again.
            pair.crash(to);
            pair.run(Duration::from_secs(3), true);
            assert_eq!(pair.side(to).redelivered, 4, "{suite:?} {from:?}");
            assert_eq!(pair.side(to).out.len(), 4, "{suite:?} {from:?}");
        }
    }
}

#[test]
fn the_consume_mark_undoes_output_whose_consume_was_not_stored() {
    let mut pair = Pair::new(Suite::Psk, 17, Link::clean());
    pair.run(Duration::from_millis(500), true);
    pair.feed(Role::Client, 3);
    pair.run(Duration::from_secs(2), true);
    assert_eq!(pair.server.out.len(), 3);
    pair.feed(Role::Client, 5);
    // Lines 3 and 4 arrive and are stored; the application writes them out and consumes
    // them, but the consumes are not stored before the crash.
    pair.write(Role::Client);
    pair.confirm(Role::Client);
    let mut ticks = 0;
    while pair.server.out.len() < 5 && ticks < 300 {
        pair.net.run_for(Duration::from_millis(10));
        pair.handle(Role::Server);
        pair.write(Role::Server);
        pair.confirm(Role::Server);
        pair.handle(Role::Server);
        ticks += 1;
    }
    assert_eq!(pair.server.out.len(), 5);
    pair.crash(Role::Server);
    // The output was cut back to the stored mark (3): 3 and 4 come again, once each.
    assert_eq!(pair.server.out.len(), 3);
    pair.run(Duration::from_secs(3), true);
    if let Err(e) = exactly_once(&pair.server.out, 5) {
        panic!("{e}");
    }
}

#[test]
fn durable_sends_are_refused_when_off_or_in_multicast_mode() {
    let mut client = Client::new(client_config(
        Suite::Psk,
        ClientId(*b"durable-client-9"),
        server_addr(),
        1,
    ));
    let now = pavillion_proto::Instant::ZERO;
    assert_eq!(
        client.send_durable(now, "t", "x", b"", None),
        Err(SendError::NotDurable)
    );
    let group = "239.1.2.3:1783".parse().unwrap();
    let mut multicast = Client::new(client_config(
        Suite::Psk,
        ClientId(*b"durable-client-9"),
        group,
        1,
    ));
    multicast.enable_durable(now, []).unwrap();
    assert_eq!(
        multicast.send_durable(now, "t", "x", b"", None),
        Err(SendError::Unsupported)
    );
    let mut client = Client::new(client_config(
        Suite::Psk,
        ClientId(*b"durable-client-9"),
        server_addr(),
        1,
    ));
    client.enable_durable(now, []).unwrap();
    assert_eq!(
        client.send_durable(now, "t\n", "x", b"", None),
        Err(SendError::InvalidName)
    );
    assert_eq!(
        client.send_durable(now, "t", "x", &[0; 5000], None),
        Err(SendError::TooLarge)
    );
}

#[test]
fn an_endpoint_without_durability_drops_op_37_unacknowledged() {
    let mut pair = Pair::new(Suite::Psk, 19, Link::clean());
    pair.run(Duration::from_millis(500), true);
    // A server process without durability takes over: it must not acknowledge.
    let server = pavillion_proto::endpoint::Server::new(common::server_config(
        Suite::Psk,
        durable_net::ID,
        50,
    ));
    pair.net.replace(
        server_addr(),
        pavillion_proto::testing::Node::Server(server),
    );
    pair.feed(Role::Client, 1);
    pair.run(Duration::from_secs(5), true);
    assert!(pair.client.delivered.is_empty());
    assert!(
        pair.net
            .server(server_addr())
            .stats()
            .dropped(DropReason::DurableDisabled)
            > 0,
        "counted"
    );
    assert_eq!(durable_queued(&mut pair, Role::Client), 1, "kept, retried");
}
