//! The client's glue for its subscriptions at a server (opcodes 13 and 14 sent client →
//! server, `docs/PROTOCOL.md` §9.6): the state is
//! [`Subscriptions`](crate::features::pubsub::Subscriptions); here are the rules that place
//! it and the reliable exchanges that carry it.
//!
//! Rule: every target is placed at one server, the *home*: the first server with a session,
//! kept while it is up. When the home goes down (down timeout), quits or is forgotten, the
//! subscriptions move to another live server of the group; when its session is re-established
//! (the server may have restarted and forgotten us) they are sent again. So a client of several
//! brokers on one group is forwarded each message by one broker only.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::id::Counter;
use crate::reliability::{Due, InFlight, Payload, Reply};
use crate::time::Instant;

use super::super::{Outgoing, SendError};
use super::Client;

impl Client {
    /// Asks the server to forward us the messages sent to `target` (opcode 13, acknowledged
    /// and retried). The subscription is kept: it is sent again on every new session and
    /// moved to another server of a group when its server goes down (`docs/PROTOCOL.md` §9.6).
    /// Subscribing twice to one target is one subscription.
    ///
    /// # Errors
    /// [`SendError::InvalidName`] for a newline in `target`, [`SendError::TooLarge`] if it
    /// does not fit one datagram, [`SendError::QueueFull`] beyond `max_targets` targets,
    /// [`SendError::Closed`] after [`Client::close`].
    pub fn subscribe(&mut self, now: Instant, target: &str) -> Result<(), SendError> {
        self.advance(now);
        if self.closed {
            return Err(SendError::Closed);
        }
        if target.contains('\n') {
            return Err(SendError::InvalidName);
        }
        super::check_size(1 + target.len())?;
        if self.subs.wanted.contains(target) {
            return Ok(());
        }
        if self.subs.wanted.len() >= self.config.max_targets {
            return Err(SendError::QueueFull);
        }
        self.subs.wanted.insert(target.into());
        if let Some(home) = self.sub_home(now) {
            self.queue_sub(now, home, Payload::Subscribe(target.into()));
        } else if !self.is_connected() && matches!(self.rounds.connecting, super::Connecting::Idle)
        {
            // Nothing else may bring a session: a subscription is a reason to look for one.
            self.start_round(now);
        }
        self.pump(now);
        Ok(())
    }

    /// Withdraws a subscription made with [`Client::subscribe`] (opcode 14 to the server it
    /// is placed at). Unsubscribing from a target we do not subscribe to does nothing.
    ///
    /// # Errors
    /// [`SendError::Closed`] after [`Client::close`].
    pub fn unsubscribe(&mut self, now: Instant, target: &str) -> Result<(), SendError> {
        self.advance(now);
        if self.closed {
            return Err(SendError::Closed);
        }
        if !self.subs.wanted.remove(target) {
            return Ok(());
        }
        self.subs.placed.remove(target);
        // A subscribe still in flight must not land after the unsubscribe.
        self.drop_sub_exchanges(|e| matches!(&e.payload, Payload::Subscribe(t) if t == target));
        if let Some(home) = self.subs.home.filter(|a| self.servers.contains_key(a)) {
            self.queue_sub(now, home, Payload::Unsubscribe(target.into()));
        }
        self.pump(now);
        Ok(())
    }

    /// The targets we subscribe to.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> + '_ {
        self.subs.wanted.iter().map(String::as_str)
    }

    /// The server holding our subscription to `target`, once it acknowledged it.
    pub fn subscribed_at(&self, target: &str) -> Option<SocketAddr> {
        self.subs.home.filter(|_| self.subs.placed.contains(target))
    }

    /// The home server: the current one while it holds a live session, else another live one
    /// (which then receives every subscription).
    fn sub_home(&mut self, now: Instant) -> Option<SocketAddr> {
        let current = self
            .subs
            .home
            .filter(|a| self.servers.get(a).is_some_and(|s| s.up));
        if current.is_some() {
            return current;
        }
        let next = self
            .servers
            .iter()
            .find(|(_, s)| s.up)
            .map(|(a, _)| *a)
            .filter(|_| self.is_connected());
        self.move_home(now, next);
        next
    }

    /// Places every subscription at `to` (or nowhere), dropping what was on its way elsewhere.
    fn move_home(&mut self, now: Instant, to: Option<SocketAddr>) {
        if self.subs.home == to && to.is_some() {
            return;
        }
        self.subs.home = to;
        self.subs.placed.clear();
        self.drop_sub_exchanges(|e| matches!(&e.payload, Payload::Subscribe(_)));
        if let Some(to) = to {
            let all: Vec<String> = self.subs.wanted.iter().cloned().collect();
            for t in all {
                self.queue_sub(now, to, Payload::Subscribe(t));
            }
        }
    }

    /// A session with `addr` was (re-)established: a home that restarted has forgotten us, so
    /// it gets every subscription again; a first session becomes the home.
    pub(super) fn subs_on_session(&mut self, now: Instant, addr: SocketAddr) {
        if self.subs.wanted.is_empty() {
            if self.subs.home.is_none() {
                self.subs.home = Some(addr);
            }
            return;
        }
        match self.subs.home {
            Some(home) if home == addr => {
                self.subs.placed.clear();
                self.drop_sub_exchanges(|e| matches!(&e.payload, Payload::Subscribe(_)));
                let all: Vec<String> = self.subs.wanted.iter().cloned().collect();
                for t in all {
                    self.queue_sub(now, addr, Payload::Subscribe(t));
                }
            }
            Some(home) if self.servers.get(&home).is_some_and(|s| s.up) => {}
            _ => self.move_home(now, Some(addr)),
        }
    }

    /// The server at `addr` is gone or down: its subscriptions move to another live server.
    pub(super) fn subs_on_lost(&mut self, now: Instant, addr: SocketAddr) {
        if self.subs.home != Some(addr) {
            self.drop_sub_exchanges(|e| e.expected.contains(&addr) && e.acked.is_empty());
            return;
        }
        let next = self
            .servers
            .iter()
            .find(|(a, s)| **a != addr && s.up)
            .map(|(a, _)| *a);
        if next.is_some() {
            self.move_home(now, next);
        } else if !self.servers.contains_key(&addr) {
            // No other server: wait for the next session, which becomes the home.
            self.move_home(now, None);
        }
    }

    fn queue_sub(&mut self, now: Instant, to: SocketAddr, payload: Payload) {
        let deadline = now + self.config.limits.default_timeout;
        let id = self.next_op_id;
        if self
            .subs
            .exchanges
            .push(id, payload, true, deadline)
            .is_ok()
        {
            self.subs.dest.insert(id, to);
            self.next_op_id += 1;
        }
    }

    fn drop_sub_exchanges(&mut self, pick: impl Fn(&InFlight) -> bool) {
        for e in self.subs.exchanges.remove_where(pick) {
            self.subs.dest.remove(&e.id);
        }
    }

    /// Moves due (un)subscriptions into the transmit queue; expired ones are dropped (a
    /// reference server never acknowledges them; the next session sends them again).
    pub(super) fn pump_subs(&mut self, now: Instant) {
        // Nothing to expire or send: spares every pump the session checks below.
        if self.subs.exchanges.is_empty() {
            return;
        }
        let can_send = !self.closed && self.is_connected() && self.session_ready();
        let mut due = Vec::new();
        self.subs
            .exchanges
            .poll_due(now, can_send, usize::MAX, &mut due);
        for d in due {
            match d {
                Due::Expired(e) => {
                    self.subs.dest.remove(&e.id);
                }
                Due::Transmit(id) => {
                    let Some(&to) = self.subs.dest.get(&id) else {
                        continue;
                    };
                    let first = self
                        .subs
                        .exchanges
                        .get(id)
                        .is_some_and(|e| e.counter.is_none());
                    if first {
                        let c = self.take_counter();
                        self.subs
                            .exchanges
                            .on_first_transmit(id, c, vec![to], now, &self.rtt);
                    } else {
                        self.subs.exchanges.on_retransmit(id, now, &self.rtt);
                        self.shared.stats.retransmissions += 1;
                    }
                    self.shared.tx.push_back(Outgoing::Reliable { to, id });
                }
            }
        }
    }

    /// An ACK that answers no message, call or key delivery: perhaps a subscription.
    pub(super) fn on_sub_ack(&mut self, now: Instant, addr: SocketAddr, counter: Counter) -> bool {
        match self.subs.exchanges.on_reply(
            counter,
            false,
            addr,
            now,
            &mut self.rtt,
            &mut self.shared.stats.rtt,
        ) {
            Reply::Complete(e) => {
                self.subs.dest.remove(&e.id);
                if let Payload::Subscribe(t) = e.payload {
                    if self.subs.home == Some(addr) && self.subs.wanted.contains(&t) {
                        self.subs.placed.insert(t);
                    }
                }
                true
            }
            Reply::Partial => true,
            Reply::Unknown => false,
        }
    }

    /// A subscription exchange in the transmit queue, by its id.
    pub(super) fn sub_exchange(&self, id: u64) -> Option<&InFlight> {
        self.subs.exchanges.get(id)
    }

    /// The earliest retry or deadline among subscription exchanges.
    pub(super) fn subs_timeout(&self) -> Option<Instant> {
        self.subs.exchanges.next_timeout(
            !self.closed && self.is_connected() && self.session_ready(),
            usize::MAX,
        )
    }

    /// Forgets every exchange (the client is closing).
    pub(super) fn drop_subs(&mut self) {
        self.subs.exchanges.drain().for_each(drop);
        self.subs.dest.clear();
    }
}
