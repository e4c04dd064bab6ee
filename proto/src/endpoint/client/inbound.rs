//! The client's receive path for session packets (suites 1, 2 and 3 alike, once opened):
//! finding the server's session, opening the packet under it, and dispatching the
//! application packet to the feature that owns it (RPC answers, pub/sub, time sync, ACKs).

use crate::endpoint::shared;
use crate::endpoint::{classify_opened, Inbound};
use core::net::SocketAddr;

use crate::features::{pubsub, status::Status};
use crate::id::Counter;
use crate::reliability::{InFlight, OwnedMessage, Payload, Reply};
use crate::session::{KeyUsed, OpenError, Route};
use crate::time::Instant;
use crate::wire::{self, opcode, App, SessionPacket, StatusBytes};

use super::super::{
    delivered_event, received_message, ClientEvent, CloseReason, DropReason, Outgoing,
};
use super::{reconnect, Client};

/// The opcodes of the features this build leaves out (bit `n` for opcode `n`). The client
/// does not parse them, so that their parsers are not linked (issue 20); a packet with one is
/// a counted drop (`DropReason::FeatureNotCompiled`), never acknowledged, as the features'
/// own stubs count the packets they are handed.
const NOT_COMPILED: u64 = {
    const fn bit(op: u8) -> u64 {
        1 << op
    }
    let mut ops = 0;
    if !cfg!(feature = "registers") {
        ops |= bit(opcode::REGISTER_READ)
            | bit(opcode::REGISTER_VALUE)
            | bit(opcode::OBSERVE)
            | bit(opcode::REGISTER_INFO_REQUEST)
            | bit(opcode::REGISTER_INFO);
    }
    if !cfg!(feature = "segment") {
        ops |= bit(opcode::SEGMENT) | bit(opcode::ACK_RANGES) | bit(opcode::TRANSFER_REFUSED);
    }
    if !cfg!(feature = "ordered") {
        ops |= bit(opcode::ORDERED_MESSAGE);
    }
    if !cfg!(feature = "durable") {
        ops |= bit(opcode::DURABLE_MESSAGE);
    }
    ops
};

/// Parses an application packet from a server, as far as this build's features go.
///
/// # Errors
/// The drop to count: `FeatureNotCompiled` for an opcode of a feature left out, else the
/// wire error's.
fn parse_app(plain: &[u8]) -> Result<App<'_>, DropReason> {
    App::parse_only::<{ !NOT_COMPILED }>(plain).map_err(|e| match e {
        wire::Error::UnknownAppOpcode(op) if op < 64 && NOT_COMPILED >> op & 1 == 1 => {
            DropReason::FeatureNotCompiled
        }
        e => DropReason::from_wire(e),
    })
}

impl Client {
    /// Finds the session of a packet: by address, or else any session with the same host that
    /// authenticates it (the reference may answer from another port of that host).
    pub(super) fn find_server(
        &self,
        from: SocketAddr,
        header: &[u8],
        packet: &SessionPacket<'_>,
        scratch: &mut [u8],
    ) -> Option<SocketAddr> {
        if self.servers.contains_key(&from) {
            return Some(from);
        }
        self.servers
            .iter()
            .filter(|(a, _)| a.ip() == from.ip())
            .find(|(_, s)| s.authenticates(packet, header, scratch))
            .map(|(a, _)| *a)
    }

    pub(super) fn on_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &[u8],
        packet: &SessionPacket<'_>,
    ) {
        // The plaintext borrows the scratch buffer while handlers need `self`: lend it out.
        shared::with_scratch(self, |role, scratch| {
            role.on_session_in(now, from, header, packet, scratch)
        });
    }

    pub(super) fn on_session_in(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &[u8],
        packet: &SessionPacket<'_>,
        scratch: &mut [u8],
    ) {
        let Some(addr) = self.find_server(from, header, packet, scratch) else {
            return self.shared.stats.drop(DropReason::UnknownPeer);
        };
        let Some(server) = self.servers.get_mut(&addr) else {
            return self.shared.stats.drop(DropReason::UnknownPeer);
        };
        let Ok(opened) = server.open(Route::Address, false, packet, header, scratch) else {
            return self.shared.stats.drop(DropReason::Forged);
        };
        let by_previous = opened.by == KeyUsed::Previous;
        self.on_opened(now, from, addr, packet.counter, opened.result, by_previous);
    }

    /// Acts on a session packet that was opened (or refused) under the session of the server
    /// at `addr`, whatever its suite. `by_previous` says it opened under a key being retired,
    /// which does not confirm the new one.
    pub(super) fn on_opened(
        &mut self,
        now: Instant,
        from: SocketAddr,
        addr: SocketAddr,
        counter: Counter,
        opened: Result<&[u8], (OpenError, Option<&[u8]>)>,
        by_previous: bool,
    ) {
        let Some(server) = self.servers.get_mut(&addr) else {
            return;
        };
        let plain = match classify_opened(&mut self.shared.stats, opened) {
            Some(Inbound::Fresh(p)) => p,
            Some(Inbound::Duplicate(p)) => {
                // A copy of something held: its ACK waits for the application.
                if self.swallow_held_duplicate(addr, counter) {
                    return;
                }
                // A copy of something acknowledged whose ACK was lost: acknowledge it again.
                if self.on_duplicate_batch(from, counter, p) {
                    return;
                }
                match parse_app(p) {
                    // Ordered: the receiver knows whether it holds it (it may have refused it).
                    Ok(App::OrderedMessage(o)) => self.on_ordered(now, from, addr, counter, &o),
                    Ok(App::RegisterValue(v)) if v.answers == Counter(0) => self
                        .shared
                        .tx
                        .push_back(Outgoing::Ack { to: from, counter }),
                    Ok(
                        App::ReliableMessage(_) | App::Subscribe { .. } | App::Unsubscribe { .. },
                    ) => self
                        .shared
                        .tx
                        .push_back(Outgoing::Ack { to: from, counter }),
                    Ok(App::Segment(seg)) => self.on_segment_duplicate(from, addr, counter, &seg),
                    // Durable: its stored state decides, not the replay window.
                    Ok(App::DurableMessage(d)) => self.on_durable(from, counter, &d),
                    // A copy of a packet of a feature left out: counted as its first copy was.
                    Err(DropReason::FeatureNotCompiled) => {
                        self.shared.stats.drop(DropReason::FeatureNotCompiled)
                    }
                    _ => {}
                }
                return;
            }
            None => return,
        };
        server.last_heard = now;
        if !by_previous && !server.confirmed {
            server.confirmed = true;
            self.rounds.confirmed();
            // The client is back (reconnect.rs); a plain field write, `server` is borrowed.
            self.reconnect = reconnect::Reconnect::default();
        }
        if !server.up {
            server.up = true;
            self.shared.events.push_back(ClientEvent::PeerUp { addr });
        }
        if self.on_batched(now, from, addr, counter, plain) {
            return;
        }
        let app = match parse_app(plain) {
            Ok(a) => a,
            Err(reason) => return self.shared.stats.drop(reason),
        };
        match app {
            App::ReliableMessage(m) | App::UnreliableMessage(m) => {
                let reliable = matches!(app, App::ReliableMessage(_));
                if reliable && self.holds_message(&m) {
                    return self.on_held_message(now, from, addr, counter, &m);
                }
                if reliable {
                    self.ack(from, counter);
                }
                if let Some(message) = received_message(from, &m, reliable) {
                    self.shared.stats.messages_received += 1;
                    self.shared.events.push_back(ClientEvent::Message(message));
                }
                self.on_tag_message(addr, &m);
            }
            App::Ack { counter, status } => {
                if let Some(status) = status {
                    self.on_status(addr, status);
                }
                self.on_ack(now, addr, counter);
            }
            App::RpcResponse { call, status, data } => {
                self.on_answer(now, addr, call, status, data)
            }
            App::Subscribe { target } => {
                self.ack(from, counter);
                self.learn_subscriber(now, target, addr);
            }
            App::Unsubscribe { target } => {
                self.ack(from, counter);
                self.subscribers.forget(target, addr);
            }
            App::ClientAccept { server_time_us } => {
                if let Some(s) = self.servers.get_mut(&addr) {
                    s.clock.on_accept(server_time_us, now);
                }
            }
            App::TimeSyncResponse {
                request,
                monotonic_us,
                ..
            } => {
                let known = self
                    .servers
                    .get_mut(&addr)
                    .and_then(|s| s.clock.on_response(request, monotonic_us, now));
                if known.is_some() {
                    let sync = self.time.on_answer(request);
                    self.shared
                        .events
                        .push_back(ClientEvent::ClockUpdated { addr, sync });
                } else {
                    self.shared.stats.drop(DropReason::Unexpected);
                }
            }
            // Answered to the asker (the reference client answers to its default address:
            // bug 14).
            App::TimeSyncRequest => self.shared.tx.push_back(Outgoing::TimeResponse {
                to: from,
                request: counter,
            }),
            App::Quit { .. } => {
                self.servers.remove(&addr);
                self.shared.events.push_back(ClientEvent::Disconnected {
                    addr,
                    reason: CloseReason::PeerClosed,
                });
                self.subs_on_lost(now, addr);
                // Look for the server again (it may be restarting), even with nothing to
                // send: a listener must not go deaf.
                self.on_contact_lost(now);
            }
            App::Segment(seg) => self.on_segment(now, from, addr, counter, &seg),
            App::AckRanges(ranges) => self.on_ack_ranges(now, addr, ranges),
            App::TransferRefused { transfer, reason } => self.on_refused(transfer, reason),
            App::OrderedMessage(o) => self.on_ordered(now, from, addr, counter, &o),
            App::DurableMessage(d) => self.on_durable(from, counter, &d),
            App::RegisterValue(p) => self.on_register_value(now, from, addr, counter, p),
            App::RegisterInfo(p) => self.on_register_info_packet(now, addr, p),
            App::RpcCall { .. }
            | App::GroupKey { .. }
            | App::RegisterRead(_)
            | App::Observe(_)
            | App::RegisterInfoRequest(_) => self.shared.stats.drop(DropReason::Unsupported),
        }
    }

    pub(super) fn ack(&mut self, to: SocketAddr, counter: Counter) {
        crate::endpoint::batch::queue_ack(&mut self.shared.tx, to, counter);
    }

    pub(super) fn on_status(&mut self, addr: SocketAddr, status: StatusBytes) {
        if let Some(s) = self.servers.get_mut(&addr) {
            if s.status != Some(status) {
                s.status = Some(status);
                self.shared.events.push_back(ClientEvent::StatusChanged {
                    addr,
                    status: Status::from_bytes(status),
                });
            }
        }
    }

    /// An ACK of `counter`: completes every exchange sent under it (one, or a suite 3
    /// batch's run, `features::batch`).
    pub(super) fn on_ack(&mut self, now: Instant, addr: SocketAddr, counter: Counter) {
        if self.on_ack_run(now, addr, counter) {
            return;
        }
        let mut deferred = 0;
        while self.on_ack_one(now, addr, counter, &mut deferred)
            && self.outbox.find_counter(counter).is_some()
        {}
    }

    /// An ACK of `counter` that completes a whole run in flight, of messages only: the run
    /// leaves the outbox as one block (`Outbox::complete_run`), and each message ends
    /// as [`Client::on_ack_one`] would end it, in send order (each message's `Delivered`, the
    /// subscriber table learning once per stretch of one target). `false`, with nothing done,
    /// for any other ACK.
    fn on_ack_run(&mut self, now: Instant, addr: SocketAddr, counter: Counter) -> bool {
        let bounds = self.subscriber_bounds();
        let Some(run) = self.outbox.complete_run(
            counter,
            addr,
            now,
            &mut self.rtt,
            &mut self.shared.stats.rtt,
            |e| matches!(e.payload, Payload::Message(_)),
        ) else {
            return false;
        };
        let mut run = run.peekable();
        let mut refused = 0;
        while let Some(e) = run.next() {
            if let Some(m) = learned_target(&e) {
                refused += 1;
                let next = run.peek().and_then(learned_target);
                if !next.is_some_and(|n| same_target(m, n)) {
                    let learned = self.subscribers.learn_message(bounds, now, m, addr);
                    if learned.is_err() {
                        for _ in 0..refused {
                            self.shared.stats.drop(DropReason::TableFull);
                        }
                    }
                    refused = 0;
                }
            }
            if !e.internal {
                self.shared.events.push_back(delivered_event(e));
            }
        }
        true
    }

    /// Completes the first exchange sent under `counter`; `true` if it was completed.
    /// `deferred` counts the messages of the run before it whose target is learned with the
    /// next one's.
    fn on_ack_one(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        counter: Counter,
        deferred: &mut u32,
    ) -> bool {
        let bounds = self.subscriber_bounds();
        let reply = self.outbox.on_reply(
            counter,
            false,
            addr,
            now,
            &mut self.rtt,
            &mut self.shared.stats.rtt,
        );
        // An ACK of a message to a target says the server takes that target (learned after
        // the answer is recorded: the two touch disjoint state). The target is borrowed, not
        // cloned. Along a run of messages to one target only the last one learns: the others
        // would repeat its exact update (same target, server and time), once per message of
        // every burst (issue 19); a refusal still counts once per message.
        let target = match &reply {
            Reply::Complete(e) => learned_target(e),
            Reply::Partial => self.outbox.find_counter(counter).and_then(learned_target),
            Reply::Unknown => None,
        };
        if let Some(m) = target {
            let next = self.outbox.find_counter(counter).and_then(learned_target);
            if matches!(reply, Reply::Complete(_)) && next.is_some_and(|n| same_target(m, n)) {
                *deferred += 1;
            } else {
                let refused = core::mem::take(deferred) + 1;
                let learned = self.subscribers.learn_message(bounds, now, m, addr);
                if learned.is_err() {
                    for _ in 0..refused {
                        self.shared.stats.drop(DropReason::TableFull);
                    }
                }
            }
        }
        let complete = matches!(reply, Reply::Complete(_));
        if let Reply::Complete(e) = &reply {
            if let Some(seq) = e.payload.durable() {
                self.on_durable_acked(seq);
                return true;
            }
            self.on_ordered_resolved(e, false);
        }
        match reply {
            Reply::Complete(e) if e.payload.transfer().is_some() => self.on_segment_complete(e),
            Reply::Complete(e) if !e.internal => self.shared.events.push_back(delivered_event(e)),
            Reply::Complete(_) | Reply::Partial => {}
            Reply::Unknown if self.on_group_ack(now, addr, counter) => {}
            Reply::Unknown if self.on_sub_ack(now, addr, counter) => {}
            Reply::Unknown => self.shared.stats.drop(DropReason::Unexpected),
        }
        complete
    }

    pub(super) fn learn_subscriber(&mut self, now: Instant, target: &str, addr: SocketAddr) {
        let bounds = self.subscriber_bounds();
        if self.subscribers.learn(bounds, now, target, addr).is_err() {
            self.shared.stats.drop(DropReason::TableFull);
        }
    }

    fn subscriber_bounds(&self) -> pubsub::SubscriberBounds {
        pubsub::SubscriberBounds {
            max_targets: self.config.max_targets,
            max_servers: self.config.max_servers,
            ttl: self.config.subscriber_ttl,
        }
    }
}

/// The message whose target an ACK of `e` teaches the subscriber table: a message (or an
/// ordered message) of ours to a target, not an internal one. The message, not its target as
/// a `&str`: this runs for every acknowledged entry, and the comparisons and the table's
/// lookup need only its bytes (issue 19).
fn learned_target(e: &InFlight) -> Option<&OwnedMessage> {
    let m = match &e.payload {
        Payload::Message(m) => m,
        Payload::Ordered(o) => &o.message,
        _ => return None,
    };
    (!e.internal && !m.target_bytes().is_empty()).then_some(m)
}

/// Whether two messages go to the same target.
fn same_target(a: &OwnedMessage, b: &OwnedMessage) -> bool {
    a.target_bytes() == b.target_bytes()
}

#[cfg(test)]
mod tests {
    use super::{parse_app, NOT_COMPILED};
    use crate::endpoint::DropReason;
    use crate::wire::App;
    use alloc::vec::Vec;

    quickcheck::quickcheck! {
        /// Any plaintext: an opcode of a feature left out is a `FeatureNotCompiled` drop
        /// whatever follows it; any other parses exactly as `App::parse` parses it.
        fn parses_as_app_parse_but_the_features_left_out(op: u8, payload: Vec<u8>) -> bool {
            // Opcodes near the assigned ones, so that most cases parse.
            let op = op % 48;
            let mut plain = Vec::from([op]);
            plain.extend_from_slice(&payload);
            let left_out = NOT_COMPILED >> op & 1 == 1;
            match parse_app(&plain) {
                Err(DropReason::FeatureNotCompiled) => left_out,
                ours => !left_out && ours == App::parse(&plain).map_err(DropReason::from_wire),
            }
        }
    }

    #[test]
    fn the_features_left_out_are_the_ones_not_compiled() {
        let ops = |bits: u64| (0..64u8).filter(move |op| bits >> op & 1 == 1);
        let expected: Vec<u8> = [
            (!cfg!(feature = "registers")).then_some(&[6u8, 7, 8, 9, 10][..]),
            (!cfg!(feature = "segment")).then_some(&[33, 34, 35][..]),
            (!cfg!(feature = "ordered")).then_some(&[36][..]),
            (!cfg!(feature = "durable")).then_some(&[37][..]),
        ]
        .into_iter()
        .flatten()
        .flatten()
        .copied()
        .collect();
        assert_eq!(ops(NOT_COMPILED).collect::<Vec<_>>(), expected);
    }
}
