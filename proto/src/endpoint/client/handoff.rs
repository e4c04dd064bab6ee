//! The client's side of the acknowledgement hand-off (`features::handoff`,
//! `docs/PROTOCOL.md` §18): a reliable message from a server to a marked target is delivered
//! as `ClientEvent::HeldMessage` and its ACK waits until the application completes it;
//! duplicates are swallowed while it is held; a refusal, the expiry and a full table make its
//! counter fresh again, so that the server's retransmission is delivered again as new. The
//! table and the rules are the server's, written once in `endpoint/handoff.rs`; this file is
//! the client's glue: its servers, its event, where its ACKs go and its session numbering.
//!
//! Sessions are named by a generation numbered here at every handshake: a new session with a
//! server (even at the same address) is another one, and what was held under the old one is
//! gone with it (`HandoffError::SessionGone`). A suite 3 rekey keeps the session. Suites 1 and
//! 2 reseal an unacknowledged message under the new key with its old counter, which the new
//! session would take for a copy of something delivered (`session::keys::Replaced`): the old
//! session's held counters are forgotten there, so the message comes again, as new.
//!
//! Wire bytes: none of its own. Timer: `ClientTimer::Handoff` (run by `pump`). Events:
//! `ClientEvent::HeldMessage`.

use crate::util::VecMap;
use core::net::SocketAddr;

use super::Client;
use crate::endpoint::handoff::{HeldSession, HeldSessions, Receiver};
use crate::endpoint::{received_message, ClientEvent, HandoffError, HandoffId, HandoffTarget};
use crate::features::handoff::{Bounds, Handoffs};
use crate::id::Counter;
use crate::session::remote_server::RemoteServer;
use crate::time::Instant;
use crate::wire;

/// The client's hand-off state: the table every role uses, and the session numbering.
#[derive(Debug, Default)]
pub(super) struct ClientHandoffs {
    table: Handoffs,
    /// The generation the last session got; zero before the first (so a session the
    /// hand-off never numbered holds nothing).
    last_generation: u64,
}

impl Client {
    /// Holds the ACK of every reliable message from a server to `target` (or to every target)
    /// from now on: such a message is delivered as [`ClientEvent::HeldMessage`], and
    /// acknowledged only by [`Client::complete_handoff`] (`docs/PROTOCOL.md` §18). Unreliable
    /// messages and keepalives are never held; ordered, durable and segmented messages keep
    /// their own rules and are not held either.
    pub fn set_handoff(&mut self, target: HandoffTarget) {
        self.handoffs.table.mark(target);
    }

    /// Stops holding messages to `target` (as named to [`Client::set_handoff`]). Messages
    /// held already stay held until completed, refused or expired.
    pub fn clear_handoff(&mut self, target: &HandoffTarget) {
        self.handoffs.table.unmark(target);
    }

    /// The message `id` is safe elsewhere: its ACK goes to the server now (on suite 3, once
    /// every held message of its batch is completed).
    ///
    /// # Errors
    /// [`HandoffError::Unknown`] if it is not held (completed, refused or expired already, or
    /// released by a batch-mate's refusal); [`HandoffError::SessionGone`] if the session it
    /// came over ended or was replaced by a new handshake (the server sends it again on the
    /// new session).
    pub fn complete_handoff(&mut self, now: Instant, id: HandoffId) -> Result<(), HandoffError> {
        self.advance(now);
        let done = self.receiver().complete(id)?;
        if done.ack_now {
            // To the address the server sent it from, as every ACK of a client.
            self.ack(done.held.addr, done.held.counter);
            self.pump(now);
        }
        Ok(())
    }

    /// The message `id` is not taken: its counter is made fresh again, so the server's next
    /// retransmission is delivered again (as a new [`ClientEvent::HeldMessage`]). On suite 3
    /// the other messages of its batch are released too (their ids become unknown) and come
    /// again with it.
    ///
    /// # Errors
    /// As [`Client::complete_handoff`].
    pub fn refuse_handoff(&mut self, now: Instant, id: HandoffId) -> Result<(), HandoffError> {
        self.advance(now);
        self.receiver().refuse(id)
    }

    /// Messages whose ACK is held now, over all servers.
    pub fn held_count(&self) -> usize {
        self.handoffs.table.len()
    }

    /// Whether the reliable message `m` is held rather than acknowledged.
    pub(super) fn holds_message(&self, m: &wire::Message<'_>) -> bool {
        self.handoffs.table.holds_message(m)
    }

    /// A fresh reliable message to a marked target, from `from` over the session of the
    /// server at `addr` under `counter`: delivered and held, or, with the table full, refused
    /// (counted as `DropReason::HandoffFull`) so that its retransmission comes as fresh.
    pub(super) fn on_held_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        addr: SocketAddr,
        counter: Counter,
        m: &wire::Message<'_>,
    ) {
        let timeout = self.config.limits.handoff_timeout;
        let Some(handoff) = self.receiver().hold(now, timeout, from, addr, counter) else {
            return;
        };
        // A held message is never a keepalive (`holds_message`), so it is delivered.
        if let Some(message) = received_message(from, m, true) {
            self.shared.stats.messages_received += 1;
            self.shared
                .events
                .push_back(ClientEvent::HeldMessage { message, handoff });
        }
        self.on_tag_message(addr, m);
    }

    /// A duplicate of a counter whose ACK is held, from the server at `addr`: neither
    /// acknowledged nor delivered again. `false` for any other counter.
    pub(super) fn swallow_held_duplicate(&mut self, addr: SocketAddr, counter: Counter) -> bool {
        self.receiver().swallow_duplicate(addr, counter)
    }

    /// Suite 3: before a batch's frames are handled, whether the batch is admitted whole;
    /// `false` if none of its frames may be handled. As the server's.
    pub(super) fn batch_fits_handoff<'p>(
        &mut self,
        addr: SocketAddr,
        counter: Counter,
        frames: impl Iterator<Item = &'p [u8]>,
    ) -> bool {
        self.receiver().batch_fits(addr, counter, frames)
    }

    /// Suite 3: after a batch's frames were handled, its ACK to `from` (queued at `queued` or
    /// after) waits if any of its frames is held.
    pub(super) fn hold_batch_ack(
        &mut self,
        queued: usize,
        from: SocketAddr,
        addr: SocketAddr,
        counter: Counter,
    ) {
        self.receiver().hold_batch_ack(queued, from, addr, counter);
    }

    /// Refuses the entries whose deadline passed: run by `pump`.
    pub(super) fn expire_handoffs(&mut self, now: Instant) {
        self.receiver().expire(now);
    }

    /// When the oldest held message expires (the `Handoff` timer).
    pub(super) fn handoff_due(&self) -> Option<Instant> {
        self.handoffs.table.next_due()
    }

    /// The generation of the session with the server at `addr`, before a handshake replaces
    /// it (for [`Client::handoff_on_session`]).
    pub(super) fn handoff_generation(&self, addr: SocketAddr) -> Option<u64> {
        self.servers.get(&addr).map(|s| s.generation)
    }

    /// A handshake made a new session with the server at `addr`, replacing the session of
    /// generation `replaced` if any: the new one gets its own generation, and the counters
    /// held under the old one are made fresh in the new one's memory of it, so that the
    /// server's copies under either key are delivered again rather than acknowledged unseen.
    pub(super) fn handoff_on_session(&mut self, addr: SocketAddr, replaced: Option<u64>) {
        self.handoffs.last_generation += 1;
        let generation = self.handoffs.last_generation;
        let Some(s) = self.servers.get_mut(&addr) else {
            return;
        };
        s.generation = generation;
        if let Some(old) = replaced.filter(|&g| g != 0) {
            for c in self.handoffs.table.counters_of(old) {
                s.forget(c);
            }
            // As at a server (§18.2 rule 8): the replaced session's entries stop counting
            // against the bounds now; only their ids stay, to answer `SessionGone`.
            self.receiver().end_session(old);
        }
    }

    /// The hand-off's view of this client.
    fn receiver(&mut self) -> Receiver<'_, VecMap<SocketAddr, RemoteServer>, ClientEvent> {
        Receiver {
            table: &mut self.handoffs.table,
            sessions: &mut self.servers,
            shared: &mut self.shared,
            bounds: Bounds::of(&self.config.limits),
        }
    }
}

impl HeldSessions for VecMap<SocketAddr, RemoteServer> {
    type Session = RemoteServer;

    fn session(&self, addr: &SocketAddr) -> Option<&Self::Session> {
        self.get(addr)
    }

    fn session_mut(&mut self, addr: &SocketAddr) -> Option<&mut Self::Session> {
        self.get_mut(addr)
    }

    fn find_generation(&self, generation: u64) -> Option<SocketAddr> {
        self.iter()
            .find(|(_, s)| s.generation == generation)
            .map(|(a, _)| *a)
    }
}

impl HeldSession for RemoteServer {
    fn generation(&self) -> u64 {
        self.generation
    }

    fn forget_counter(&mut self, counter: Counter) {
        self.forget(counter);
    }
}
