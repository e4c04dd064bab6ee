//! The receiver's side of the acknowledgement hand-off (`features::handoff`,
//! `docs/PROTOCOL.md` §18), written once for both roles that receive reliable messages: a
//! server from its clients (`server/handoff.rs`) and a client from its servers
//! (`client/handoff.rs`). The roles differ only in what they keep per session and in the
//! event they deliver; everything here works on a role's table, its sessions by address,
//! and its queues, borrowed together as a [`Receiver`].
//!
//! Sessions are named by their generation, not their address: a suite 3 session may move to
//! another address while a message is held, and a new session at the same address is another
//! one.

use core::net::SocketAddr;

use super::shared::Shared;
use super::{DropReason, Limits, Outgoing};
use crate::features::handoff::{Bounds, HandoffError, HandoffId, Handoffs, Held};
use crate::id::Counter;
use crate::time::Instant;
use crate::wire::App;

/// A role's sessions by address, as the hand-off sees them.
pub(crate) trait HeldSessions {
    /// What the role keeps per session.
    type Session: HeldSession;
    /// The session at `addr`.
    fn session(&self, addr: &SocketAddr) -> Option<&Self::Session>;
    /// The session at `addr`, to change.
    fn session_mut(&mut self, addr: &SocketAddr) -> Option<&mut Self::Session>;
    /// The address of the session of `generation`, wherever it is.
    fn find_generation(&self, generation: u64) -> Option<SocketAddr>;
}

/// A session that messages can be held under.
pub(crate) trait HeldSession {
    /// Its generation (a later session at the same address has another).
    fn generation(&self) -> u64;
    /// Makes `counter` unseen in its replay window, so that the sender's retransmission is
    /// delivered again as fresh.
    fn forget_counter(&mut self, counter: Counter);
}

impl Bounds {
    /// The table's bounds as the role's limits set them.
    pub(crate) fn of(limits: &Limits) -> Self {
        Bounds {
            per_session: limits.max_held_per_session,
            total: limits.max_held,
        }
    }
}

/// One role's hand-off at work: its table, its sessions by address and its queues.
pub(crate) struct Receiver<'a, S, E> {
    pub(crate) table: &'a mut Handoffs,
    pub(crate) sessions: &'a mut S,
    pub(crate) shared: &'a mut Shared<E>,
    pub(crate) bounds: Bounds,
}

/// A completion the table accepted.
pub(crate) struct Completion {
    /// The entry.
    pub(crate) held: Held,
    /// Where its session is now.
    pub(crate) session: SocketAddr,
    /// Whether its ACK goes now (on suite 3, once every held frame of its batch is done).
    pub(crate) ack_now: bool,
}

impl<S: HeldSessions, E> Receiver<'_, S, E> {
    /// Completes `id` in the table. The caller sends the ACK when `ack_now`.
    ///
    /// # Errors
    /// [`HandoffError::Unknown`] if it is not held; [`HandoffError::SessionGone`] if its
    /// session ended while it was (answered once), or is gone now.
    pub(crate) fn complete(&mut self, id: HandoffId) -> Result<Completion, HandoffError> {
        let Some(held) = self.table.get(id) else {
            return Err(self.not_held(id));
        };
        let session = self.held_session(&held);
        let Some(done) = self.table.complete(id) else {
            return Err(HandoffError::Unknown);
        };
        let session = session.ok_or(HandoffError::SessionGone)?;
        Ok(Completion {
            held,
            session,
            ack_now: done.ack_now,
        })
    }

    /// Refuses `id`: its counter is made fresh again in its session's window.
    ///
    /// # Errors
    /// As [`Receiver::complete`].
    pub(crate) fn refuse(&mut self, id: HandoffId) -> Result<(), HandoffError> {
        let Some(held) = self.table.refuse(id) else {
            return Err(self.not_held(id));
        };
        self.shared.stats.handoffs_refused += 1;
        if self.forget_held(&held) {
            Ok(())
        } else {
            Err(HandoffError::SessionGone)
        }
    }

    /// Holds the fresh message that came from `from` over the session at `session` under
    /// `counter`. `None` if there is no such session, or if the table is full: then the
    /// counter is refused at once (counted as [`DropReason::HandoffFull`]) so that its
    /// retransmission comes as fresh.
    pub(crate) fn hold(
        &mut self,
        now: Instant,
        timeout: crate::time::Duration,
        from: SocketAddr,
        session: SocketAddr,
        counter: Counter,
    ) -> Option<HandoffId> {
        let generation = self.sessions.session(&session)?.generation();
        let held = Held {
            addr: from,
            generation,
            counter,
            deadline: now + timeout,
        };
        match self.table.hold(held, self.bounds) {
            Ok(id) => Some(id),
            Err(_) => {
                self.shared.stats.drop(DropReason::HandoffFull);
                self.forget_held(&held);
                None
            }
        }
    }

    /// A duplicate of a counter whose ACK is held on the session at `session`: neither
    /// acknowledged nor delivered again (counted in `Stats::handoff_duplicates`). `false` for
    /// any other counter.
    pub(crate) fn swallow_duplicate(&mut self, session: SocketAddr, counter: Counter) -> bool {
        let Some(s) = self.sessions.session(&session) else {
            return false;
        };
        if !self.table.holds(s.generation(), counter) {
            return false;
        }
        self.shared.stats.handoff_duplicates += 1;
        true
    }

    /// Suite 3: before a batch's frames are handled, whether it has held frames and one more
    /// message fits the table: then the batch is admitted whole (it may pass the bounds by
    /// its other frames, at most `MAX_RUN_FRAMES - 1`). If not, the whole batch is refused
    /// (its counter forgotten, counted once as [`DropReason::HandoffFull`]) and none of its
    /// frames may be handled, so that no frame is delivered twice for this cause; returns
    /// `false` then.
    pub(crate) fn batch_fits<'p>(
        &mut self,
        session: SocketAddr,
        counter: Counter,
        mut frames: impl Iterator<Item = &'p [u8]>,
    ) -> bool {
        if self.table.is_off() {
            return true;
        }
        let Some(generation) = self.sessions.session(&session).map(HeldSession::generation) else {
            return true;
        };
        let table = &*self.table;
        let any_held = frames.any(
            |f| matches!(App::parse(f), Ok(App::ReliableMessage(m)) if table.holds_message(&m)),
        );
        if !any_held || self.table.admit(generation, counter, self.bounds).is_ok() {
            return true;
        }
        self.shared.stats.drop(DropReason::HandoffFull);
        if let Some(s) = self.sessions.session_mut(&session) {
            s.forget_counter(counter);
        }
        false
    }

    /// Suite 3: after a batch's frames were handled, its ACK to `from` (queued at `queued` or
    /// after) waits if any of its frames is held.
    pub(crate) fn hold_batch_ack(
        &mut self,
        queued: usize,
        from: SocketAddr,
        session: SocketAddr,
        counter: Counter,
    ) {
        self.table.end_batch();
        let Some(s) = self.sessions.session(&session) else {
            return;
        };
        if !self.table.holds(s.generation(), counter) {
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
    /// and forgets the ids of ended sessions that passed theirs: run by the role's `pump`.
    pub(crate) fn expire(&mut self, now: Instant) {
        if self.table.next_due().is_none_or(|t| t > now) {
            return;
        }
        while let Some(held) = self.table.expire(now) {
            self.shared.stats.handoffs_expired += 1;
            self.forget_held(&held);
        }
        self.table.prune_gone(now);
    }

    /// The session of `generation` ended (quit, disconnected, evicted, replaced by a new
    /// handshake): its held messages are dropped now rather than at their timeout, so that
    /// they stop counting against the bounds; only their ids stay, to answer `SessionGone`.
    /// No ACK could reach that session any more; the sender sends them again on its new one.
    /// Counted in `Stats::handoffs_session_gone`.
    pub(crate) fn end_session(&mut self, generation: u64) {
        let n = self.table.end_session(generation, self.bounds);
        self.shared.stats.handoffs_session_gone += n as u64;
    }

    /// Why `id` is not held: its session ended while it was (`SessionGone`, answered once),
    /// or it was completed, refused or expired, or never handed out (`Unknown`).
    fn not_held(&mut self, id: HandoffId) -> HandoffError {
        if self.table.take_gone(id) {
            HandoffError::SessionGone
        } else {
            HandoffError::Unknown
        }
    }

    /// Makes `held`'s counter fresh in its session's window; `false` if the session is gone.
    /// A counter already below the window stays refused: the sender's deadline reports it.
    fn forget_held(&mut self, held: &Held) -> bool {
        let Some(addr) = self.held_session(held) else {
            return false;
        };
        if let Some(s) = self.sessions.session_mut(&addr) {
            s.forget_counter(held.counter);
        }
        true
    }

    /// The address of `held`'s session now, if it still exists (it may have moved).
    fn held_session(&self, held: &Held) -> Option<SocketAddr> {
        match self.sessions.session(&held.addr) {
            Some(s) if s.generation() == held.generation => Some(held.addr),
            _ => self.sessions.find_generation(held.generation),
        }
    }
}
