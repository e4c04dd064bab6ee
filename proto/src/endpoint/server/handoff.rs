//! The server's side of the acknowledgement hand-off (`features::handoff`,
//! `docs/PROTOCOL.md` §18): holding a reliable message's ACK until the application completes
//! it, swallowing duplicates while held, and making a refused counter fresh again.
//!
//! Sessions are named by their generation, not their address: a suite 3 session may move to
//! another address while a message is held, and a new session at the same address is another
//! one. A session that ends, however it ends, drops its held messages at once
//! ([`Server::release_handoffs`]): their ids answer `HandoffError::SessionGone`.

use core::net::SocketAddr;

use super::{Server, ServerEvent};
use crate::endpoint::{received_message, DropReason, Outgoing};
use crate::features::handoff::{Bounds, HandoffError, HandoffId, HandoffTarget, Held, MessageKey};
use crate::id::{Counter, PeerId};
use crate::time::Instant;
use crate::wire::{self, App};

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
        let Some(held) = self.handoffs.get(id) else {
            return Err(self.not_held(id));
        };
        let to = self.held_session(&held);
        let Some(done) = self.handoffs.complete(id) else {
            return Err(HandoffError::Unknown);
        };
        let to = to.ok_or(HandoffError::SessionGone)?;
        if done.ack_now {
            self.shared.tx.push_back(Outgoing::Ack {
                to,
                counter: held.counter,
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
        let Some(held) = self.handoffs.refuse(id) else {
            return Err(self.not_held(id));
        };
        self.shared.stats.handoffs_refused += 1;
        if self.forget_held(&held) {
            Ok(())
        } else {
            Err(HandoffError::SessionGone)
        }
    }

    /// Messages whose ACK is held now, over all sessions.
    pub fn held_count(&self) -> usize {
        self.handoffs.len()
    }

    /// A fresh reliable message to a marked target, over the session at `from` under
    /// `counter`: delivered and held, or, with the table full, refused (counted as
    /// [`DropReason::HandoffFull`]) so that its retransmission comes as fresh.
    pub(super) fn on_held_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        peer: PeerId,
        counter: Counter,
        m: &wire::Message<'_>,
    ) {
        let Some(generation) = self.sessions.get(&from).map(|s| s.generation) else {
            return;
        };
        let held = Held {
            addr: from,
            generation,
            counter,
            deadline: now + self.config.limits.handoff_timeout,
        };
        let Ok(handoff) = self.handoffs.hold(held, self.handoff_bounds()) else {
            self.shared.stats.drop(DropReason::HandoffFull);
            self.handoffs_refuse_counter(&held);
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

    /// A duplicate of a counter whose ACK is held: neither acknowledged nor delivered again
    /// (counted in `Stats::handoff_duplicates`). `false` for any other counter.
    pub(super) fn swallow_held_duplicate(&mut self, from: SocketAddr, counter: Counter) -> bool {
        let Some(s) = self.sessions.get(&from) else {
            return false;
        };
        if !self.handoffs.holds(s.generation, counter) {
            return false;
        }
        self.shared.stats.handoff_duplicates += 1;
        true
    }

    /// Suite 3: before a batch's frames are handled, whether it has held frames and one more
    /// message fits the table: then the batch is admitted whole (it may pass the bounds by
    /// its other frames, at most `MAX_RUN_FRAMES - 1`). If not, the whole batch is refused
    /// (its counter forgotten, counted once as [`DropReason::HandoffFull`]) and none of its
    /// frames is handled, so that no frame is delivered twice for this cause; returns `false`
    /// then.
    pub(super) fn batch_fits_handoff<'p>(
        &mut self,
        from: SocketAddr,
        counter: Counter,
        frames: impl Iterator<Item = &'p [u8]>,
    ) -> bool {
        if self.handoffs.is_off() {
            return true;
        }
        let Some(generation) = self.sessions.get(&from).map(|s| s.generation) else {
            return true;
        };
        let mut frames = frames;
        let any_held = frames.any(|f| {
            matches!(App::parse(f), Ok(App::ReliableMessage(m)) if self.handoffs.holds_message(&m))
        });
        let bounds = self.handoff_bounds();
        if !any_held || self.handoffs.admit(generation, counter, bounds).is_ok() {
            return true;
        }
        self.shared.stats.drop(DropReason::HandoffFull);
        if let Some(s) = self.sessions.get_mut(&from) {
            s.forget(counter);
        }
        false
    }

    /// Suite 3: after a batch's frames were handled, its ACK (queued at `queued` or after)
    /// waits if any of its frames is held.
    pub(super) fn hold_batch_ack(&mut self, queued: usize, from: SocketAddr, counter: Counter) {
        self.handoffs.end_batch();
        let Some(s) = self.sessions.get(&from) else {
            return;
        };
        if !self.handoffs.holds(s.generation, counter) {
            return;
        }
        let mut i = 0;
        self.shared.tx.retain(|out| {
            i += 1;
            i <= queued
                || !matches!(out, Outgoing::Ack { to, counter: c } if *to == from && *c == counter)
        });
    }

    /// Refuses the entries whose deadline passed (`Limits::handoff_timeout`), oldest first,
    /// and forgets the ids of ended sessions that passed theirs: run by `pump`.
    pub(super) fn expire_handoffs(&mut self, now: Instant) {
        if self.handoffs.next_due().is_none_or(|t| t > now) {
            return;
        }
        while let Some(held) = self.handoffs.expire(now) {
            self.shared.stats.handoffs_expired += 1;
            self.forget_held(&held);
        }
        self.handoffs.prune_gone(now);
    }

    /// The session of `generation` ended (quit, disconnected, evicted, replaced by a new
    /// handshake): its held messages are dropped now rather than at their timeout, so that
    /// they stop counting against `Limits::max_held_per_session` and `Limits::max_held`.
    /// No ACK could reach that session any more; the sender sends them again on its new one.
    /// Counted in `Stats::handoffs_session_gone`.
    pub(super) fn release_handoffs(&mut self, generation: u64) {
        let bounds = self.handoff_bounds();
        let n = self.handoffs.end_session(generation, bounds);
        self.shared.stats.handoffs_session_gone += n as u64;
    }

    /// Why `id` is not held: its session ended while it was (`SessionGone`), or it was
    /// completed, refused or expired, or never handed out (`Unknown`).
    fn not_held(&mut self, id: HandoffId) -> HandoffError {
        if self.handoffs.take_gone(id) {
            HandoffError::SessionGone
        } else {
            HandoffError::Unknown
        }
    }

    /// When the oldest held message expires (the `Handoff` timer).
    pub(super) fn handoff_due(&self) -> Option<Instant> {
        self.handoffs.next_due()
    }

    /// A full table: the counter is refused at once, as `refuse_handoff` would, with the
    /// counter's other held frames.
    fn handoffs_refuse_counter(&mut self, held: &Held) {
        self.forget_held(held);
    }

    /// Makes `held`'s counter fresh in its session's window; `false` if the session is gone.
    /// A counter already below the window stays refused: the sender's deadline reports it.
    fn forget_held(&mut self, held: &Held) -> bool {
        let Some(addr) = self.held_session(held) else {
            return false;
        };
        if let Some(s) = self.sessions.get_mut(&addr) {
            s.forget(held.counter);
        }
        true
    }

    /// The address of `held`'s session now, if it still exists (it may have moved).
    fn held_session(&self, held: &Held) -> Option<SocketAddr> {
        match self.sessions.get(&held.addr) {
            Some(s) if s.generation == held.generation => Some(held.addr),
            _ => self
                .sessions
                .iter()
                .find(|(_, s)| s.generation == held.generation)
                .map(|(a, _)| a),
        }
    }

    fn handoff_bounds(&self) -> Bounds {
        Bounds {
            per_session: self.config.limits.max_held_per_session,
            total: self.config.limits.max_held,
        }
    }
}
