//! The server's side of the acknowledgement hand-off (`features::handoff`,
//! `docs/PROTOCOL.md` §18): holding a reliable message's ACK until the application completes
//! it, swallowing duplicates while held, and making a refused counter fresh again.
//!
//! Sessions are named by their generation, not their address: a suite 3 session may move to
//! another address while a message is held, and a new session at the same address is another
//! one. A session that ends, however it ends, drops its held messages at once
//! ([`Server::release_handoffs`]): their ids answer `HandoffError::SessionGone`. The rules
//! are written once for both roles, in `endpoint/handoff.rs`; this file is the server's
//! glue: its session table, its event and where its ACKs go.

use alloc::boxed::Box;
use core::net::SocketAddr;

use super::addr_map::AddrMap;
use super::peer::ServerSession;
use super::{Server, ServerEvent};
use crate::endpoint::handoff::{HeldSession, HeldSessions, Receiver};
use crate::endpoint::{received_message, Outgoing};
use crate::features::handoff::{Bounds, HandoffError, HandoffId, HandoffTarget, MessageKey};
use crate::id::{Counter, PeerId};
use crate::time::Instant;
use crate::wire;

impl Server {
    /// Holds the ACK of every reliable message to `target` (or to every target) from now on:
    /// such a message is delivered as [`ServerEvent::HeldMessage`], and acknowledged only by
    /// [`Server::complete_handoff`]. Unreliable messages and keepalives are never held;
    /// ordered, durable and segmented messages keep their own rules and are not held either.
    pub fn set_handoff(&mut self, target: HandoffTarget) {
        self.handoffs.mark(target);
    }

    /// Stops holding messages to `target` (as named to [`Server::set_handoff`]). Messages
    /// held already stay held until completed, refused or expired.
    pub fn clear_handoff(&mut self, target: &HandoffTarget) {
        self.handoffs.unmark(target);
    }

    /// The message `id` is safe elsewhere: its ACK goes now (on suite 3, once every held
    /// message of its batch is completed), through the usual ACK path.
    ///
    /// # Errors
    /// [`HandoffError::Unknown`] if it is not held (completed, refused or expired already);
    /// [`HandoffError::SessionGone`] if its session ended or was replaced (the client sends
    /// it again on its new session).
    pub fn complete_handoff(&mut self, now: Instant, id: HandoffId) -> Result<(), HandoffError> {
        self.advance(now);
        let done = self.receiver().complete(id)?;
        if done.ack_now {
            // To the session where it is now: a suite 3 session may have moved.
            self.shared.tx.push_back(Outgoing::Ack {
                to: done.session,
                counter: done.held.counter,
            });
            self.pump(now);
        }
        Ok(())
    }

    /// The message `id` is not taken: its counter is made fresh again, so the client's next
    /// retransmission is delivered again (as a new [`ServerEvent::HeldMessage`]). On suite 3
    /// the other messages of its batch are released too (their ids become unknown) and come
    /// again with it.
    ///
    /// # Errors
    /// As [`Server::complete_handoff`].
    pub fn refuse_handoff(&mut self, now: Instant, id: HandoffId) -> Result<(), HandoffError> {
        self.advance(now);
        self.receiver().refuse(id)
    }

    /// Messages whose ACK is held now, over all sessions.
    pub fn held_count(&self) -> usize {
        self.handoffs.len()
    }

    /// A fresh reliable message to a marked target, over the session at `from` under
    /// `counter`: delivered and held, or, with the table full, refused (counted as
    /// [`DropReason::HandoffFull`]) so that its retransmission comes as fresh.
    ///
    /// [`DropReason::HandoffFull`]: crate::endpoint::DropReason::HandoffFull
    pub(super) fn on_held_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        peer: PeerId,
        counter: Counter,
        m: &wire::Message<'_>,
    ) {
        let timeout = self.config.limits.handoff_timeout;
        let Some(handoff) = self.receiver().hold(now, timeout, from, from, counter) else {
            return;
        };
        self.on_tag_message(now, from, m);
        // A held message is never a keepalive (`holds_message`), so it is delivered.
        if let Some(message) = received_message(from, m, true) {
            self.shared.stats.messages_received += 1;
            self.shared.events.push_back(ServerEvent::HeldMessage {
                peer,
                message,
                handoff,
                key: MessageKey { peer, counter },
            });
        }
    }

    /// A duplicate of a counter whose ACK is held: neither acknowledged nor delivered again.
    /// `false` for any other counter.
    pub(super) fn swallow_held_duplicate(&mut self, from: SocketAddr, counter: Counter) -> bool {
        self.receiver().swallow_duplicate(from, counter)
    }

    /// Suite 3: before a batch's frames are handled, whether the batch is admitted whole
    /// ([`Receiver::batch_fits`]); `false` if none of its frames may be handled.
    pub(super) fn batch_fits_handoff<'p>(
        &mut self,
        from: SocketAddr,
        counter: Counter,
        frames: impl Iterator<Item = &'p [u8]>,
    ) -> bool {
        self.receiver().batch_fits(from, counter, frames)
    }

    /// Suite 3: after a batch's frames were handled, its ACK (queued at `queued` or after)
    /// waits if any of its frames is held.
    pub(super) fn hold_batch_ack(&mut self, queued: usize, from: SocketAddr, counter: Counter) {
        self.receiver().hold_batch_ack(queued, from, from, counter);
    }

    /// Refuses the entries whose deadline passed: run by `pump`.
    pub(super) fn expire_handoffs(&mut self, now: Instant) {
        self.receiver().expire(now);
    }

    /// The session of `generation` ended (quit, disconnected, evicted, replaced by a new
    /// handshake): its held messages are dropped now rather than at their timeout
    /// ([`Receiver::end_session`]).
    pub(super) fn release_handoffs(&mut self, generation: u64) {
        self.receiver().end_session(generation);
    }

    /// When the oldest held message expires (the `Handoff` timer).
    pub(super) fn handoff_due(&self) -> Option<Instant> {
        self.handoffs.next_due()
    }

    /// The hand-off's view of this server.
    fn receiver(&mut self) -> Receiver<'_, AddrMap<Box<ServerSession>>, ServerEvent> {
        Receiver {
            table: &mut self.handoffs,
            sessions: &mut self.sessions,
            shared: &mut self.shared,
            bounds: Bounds::of(&self.config.limits),
        }
    }
}

impl HeldSessions for AddrMap<Box<ServerSession>> {
    type Session = Box<ServerSession>;

    fn session(&self, addr: &SocketAddr) -> Option<&Self::Session> {
        self.get(addr)
    }

    fn session_mut(&mut self, addr: &SocketAddr) -> Option<&mut Self::Session> {
        self.get_mut(addr)
    }

    fn find_generation(&self, generation: u64) -> Option<SocketAddr> {
        self.iter()
            .find(|(_, s)| s.generation == generation)
            .map(|(a, _)| a)
    }
}

impl HeldSession for Box<ServerSession> {
    fn generation(&self) -> u64 {
        self.generation
    }

    fn forget_counter(&mut self, counter: Counter) {
        self.forget(counter);
    }
}
