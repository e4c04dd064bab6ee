//! Upkeep of the server's session table: room for a new session, the end of one, and the
//! exchanges the server itself queues on a session.

use alloc::vec::Vec;
use core::net::SocketAddr;

use super::Server;
use crate::endpoint::{CloseReason, FailReason, ServerEvent};
use crate::id::{ClientId, MessageId, PeerId};
use crate::reliability::{Outbox, Payload};
use crate::time::Instant;

impl Server {
    /// Stops admitting a suite 3 client key, at once: the credential is removed, handshakes
    /// of it still pending are forgotten, and its session, if any, is ended as
    /// [`Server::disconnect`] ends it (a member dropping a revoked peer). Returns whether the
    /// key was admitted.
    pub fn remove_ecc_client(&mut self, now: Instant, id: ClientId) -> bool {
        let removed = self.config.ecc_clients.remove(&id);
        if let Some(public) = &removed {
            self.noise.forget_static(public);
        }
        let known = removed.is_some();
        let peer = PeerId::Client(id);
        self.noise.forget_pending_of(peer);
        let addrs: Vec<SocketAddr> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.peer == peer)
            .map(|(a, _)| a)
            .collect();
        for a in addrs {
            self.disconnect(now, a);
        }
        known
    }

    /// Makes room for one more session, replacing the longest-idle one if it is idle enough.
    pub(super) fn make_room(&mut self, now: Instant) -> bool {
        if self.sessions.len() < self.config.max_sessions {
            return true;
        }
        let idle = self.config.session_idle;
        // The first of the longest idle in address order, as over one `BTreeMap`.
        let oldest = self
            .sessions
            .iter()
            .min_by_key(|(_, s)| s.last_heard)
            .map(|(a, _)| a);
        let victim = oldest.filter(|a| {
            self.sessions
                .get(a)
                .is_some_and(|s| now - s.last_heard >= idle)
        });
        match victim {
            Some(a) => {
                self.end_session(a, CloseReason::LocallyClosed, FailReason::Closed);
                true
            }
            None => false,
        }
    }

    /// Ends the session at `addr`: its tables, subscriptions, outbox and held messages go,
    /// the application hears why.
    pub(super) fn end_session(&mut self, addr: SocketAddr, reason: CloseReason, fail: FailReason) {
        if let Some(s) = self.sessions.remove(&addr) {
            self.release_handoffs(s.generation);
            self.forget_noise(addr, &s);
            self.forget_client_subs(addr, s.peer);
            self.registers.observers.forget(addr);
            self.busy.remove(&addr);
            self.ordered_tx.remove(&addr);
            self.fail_outbox(s.outbox, fail);
            self.end_segments(addr, fail);
            self.shared
                .events
                .push_back(ServerEvent::Disconnected { addr, reason });
            // Its durable messages may go to another session of the same client.
            self.fill_durable();
        }
    }

    /// Fails every message the application queued in `outbox`.
    pub(super) fn fail_outbox(&mut self, mut outbox: Outbox, reason: FailReason) {
        for e in outbox.drain() {
            if self.requeue_durable(&e) || e.internal {
                continue;
            }
            self.shared.events.push_back(ServerEvent::Failed {
                id: MessageId(e.id),
                reason,
            });
        }
    }

    /// Queues a protocol exchange of our own (a subscription notice) on the session at `to`;
    /// dropped if its outbox is full, as the application never waits on it.
    pub(super) fn push_internal(&mut self, now: Instant, to: SocketAddr, payload: Payload) {
        let deadline = now + self.config.limits.default_timeout;
        let id = self.next_op_id;
        if let Some(s) = self.sessions.get_mut(&to) {
            if s.outbox.push(id, payload, true, deadline).is_ok() {
                self.next_op_id += 1;
                self.busy.insert(to);
            }
        }
    }
}
