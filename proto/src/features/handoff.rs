//! Acknowledgement hand-off (`docs/PROTOCOL.md` §18): the ACK of a reliable message waits
//! until the application says the message is safe elsewhere (an MQTT bridge: the broker's
//! PUBACK), so that an acknowledged message is never lost by a crash of the receiver.
//!
//! The rule is the receiver's, whichever role receives: a server's messages from its clients
//! (`endpoint/server/handoff.rs`) and a client's messages from its servers
//! (`endpoint/client/handoff.rs`, the `handoff` feature) are held by the same table.
//!
//! The application marks targets ([`HandoffTarget`]); a fresh reliable message to a marked
//! target is delivered as `ServerEvent::HeldMessage` (`ClientEvent::HeldMessage`) with a
//! [`HandoffId`], and its counter is held here instead of acknowledged. The application then
//! completes it (the ACK goes out) or refuses it; a refusal, the [`Limits::handoff_timeout`]
//! expiry and a full table all make the counter unseen in the session's replay window, so
//! that the sender's retransmission is delivered again as fresh. A duplicate of a held
//! counter is neither acknowledged nor delivered. An empty reliable message (a keepalive) is
//! never held: nobody would ever see it to complete it.
//!
//! Wire bytes: none of its own (a local rule over op 3's ACK). Timers: one per role,
//! `ServerTimer::Handoff` and `ClientTimer::Handoff` (run by the role's `pump`), the oldest
//! entry's expiry. Events: `ServerEvent::HeldMessage` and `ClientEvent::HeldMessage`, built by
//! the endpoint.
//!
//! The table is bounded by [`Limits::max_held_per_session`] and [`Limits::max_held`]; the
//! marked targets are the application's, not a peer's, to bound. A session that ends takes
//! its entries with it at once (`Handoffs::end_session`), so that a client that leaves
//! does not hold the bounds until its entries expire; their ids are remembered (8 bytes and
//! a deadline each, at most [`Limits::max_held`] of them, until their deadline) only to
//! answer [`HandoffError::SessionGone`].
//!
//! [`Limits::handoff_timeout`]: crate::endpoint::Limits::handoff_timeout
//! [`Limits::max_held_per_session`]: crate::endpoint::Limits::max_held_per_session
//! [`Limits::max_held`]: crate::endpoint::Limits::max_held

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use core::fmt;
use core::net::SocketAddr;

use crate::id::{Counter, PeerId};
use crate::time::Instant;
use crate::wire::Message;

/// Names one held message until it is completed or refused; never reused in an endpoint's
/// life.
///
/// Opaque: only the endpoint makes one (in `ServerEvent::HeldMessage` or
/// `ClientEvent::HeldMessage`), and only that endpoint knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HandoffId(u64);

impl HandoffId {
    /// The id as a number, for logs and tables keyed by it.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for HandoffId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handoff#{}", self.0)
    }
}

/// What identifies a message for de-duplication across receivers: its sender and the counter
/// it was sealed under. A multicast message reaches every server of the group with the same
/// key, so several bridges that receive it can tell it is one message.
///
/// A retransmission carries the same key; a message the sender sent again as new (after a
/// refusal reached it as a missing ACK past its deadline, or after it re-handshook) may carry
/// another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MessageKey {
    /// The sender's authenticated identity.
    pub peer: PeerId,
    /// The counter the message was sealed under (on suite 3, a batch's messages share one).
    pub counter: Counter,
}

/// Which targets' reliable messages are held ([`Server::set_handoff`], `Client::set_handoff`).
///
/// [`Server::set_handoff`]: crate::endpoint::Server::set_handoff
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandoffTarget {
    /// Every target.
    All,
    /// This target exactly.
    Exact(String),
}

/// Why a hand-off could not be completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum HandoffError {
    /// No such hand-off is held: it was completed or refused already, it expired
    /// (`Limits::handoff_timeout`), or a batch-mate's refusal released it (the batch comes
    /// again).
    Unknown,
    /// The session the message came over ended or was replaced: no ACK can go to it. The
    /// sender sends the message again on its new session (so across a reconnect the
    /// guarantee is at-least-once). A client's session with a server is replaced by every
    /// new handshake (a suite 3 rekey keeps it).
    SessionGone,
}

impl fmt::Display for HandoffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandoffError::Unknown => "no such hand-off is held",
            HandoffError::SessionGone => "the message's session is gone",
        })
    }
}

impl core::error::Error for HandoffError {}

/// One held message: where its ACK goes, and when it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// Where the message came from, so where its ACK goes: on a server the session's address
    /// when it arrived (it may have moved since); on a client the address the server sent it
    /// from.
    pub(crate) addr: SocketAddr,
    /// The session's generation: a later session at the same address is another one.
    pub(crate) generation: u64,
    /// The counter whose ACK waits.
    pub(crate) counter: Counter,
    /// When it is refused unless completed.
    pub(crate) deadline: Instant,
}

/// The table is full: the message is refused (its counter forgotten) instead of held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Full;

/// What completing one entry released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Completed {
    /// The entry.
    pub(crate) held: Held,
    /// Whether it was the counter's last held frame, so that its ACK goes now.
    pub(crate) ack_now: bool,
}

/// The bounds of the table (from `Limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) per_session: usize,
    pub(crate) total: usize,
}

/// One role's hand-off state: the marked targets and the held messages.
///
/// # Invariants
/// - `counters[(g, c)]` is the number of entries of `held` with generation `g` and counter
///   `c`, and has no entry at zero.
/// - `sessions[g]` is the number of entries of `held` with generation `g`, no entry at zero.
/// - Outside a batch being handled, `held` has at most `Bounds::total` entries and each
///   session at most `Bounds::per_session`, plus the frames of one batch admitted while
///   under the bound (so at most `MAX_RUN_FRAMES - 1` over it).
/// - Ids are handed out in increasing order with deadlines `now + timeout` for a fixed
///   timeout and a monotonic `now`, so the first entry of `held` (and of `gone`) expires
///   first.
/// - No id is in both `held` and `gone`; `gone` has at most `Bounds::total` entries.
#[derive(Debug, Default)]
pub(crate) struct Handoffs {
    all: bool,
    exact: BTreeSet<String>,
    held: BTreeMap<HandoffId, Held>,
    /// Ids whose session ended while they were held, with the deadline they had: until then
    /// a completion or refusal of one answers `SessionGone`, as it would have while it was
    /// held, and after it `Unknown`, as an expired entry does.
    gone: BTreeMap<HandoffId, Instant>,
    counters: BTreeMap<(u64, Counter), u16>,
    sessions: BTreeMap<u64, usize>,
    next: u64,
    /// The suite 3 batch being handled, admitted whole (`admit`): its frames are held even
    /// past the bounds, since a batch cut in part could never be acknowledged.
    admitted: Option<(u64, Counter)>,
}

impl Handoffs {
    /// Marks `target`'s reliable messages as held.
    pub(crate) fn mark(&mut self, target: HandoffTarget) {
        match target {
            HandoffTarget::All => self.all = true,
            HandoffTarget::Exact(t) => {
                self.exact.insert(t);
            }
        }
    }

    /// Unmarks `target` (messages held already stay held).
    pub(crate) fn unmark(&mut self, target: &HandoffTarget) {
        match target {
            HandoffTarget::All => self.all = false,
            HandoffTarget::Exact(t) => {
                self.exact.remove(t);
            }
        }
    }

    /// Whether a reliable message to `target` is held. Cheap when nothing is marked, as on
    /// every endpoint that does not use the hand-off.
    pub(crate) fn marks(&self, target: &str) -> bool {
        self.all || (!self.exact.is_empty() && self.exact.contains(target))
    }

    /// Whether the reliable message `m` is held: its target is marked and it is not a
    /// keepalive (empty in all three parts), which is never delivered, so that nobody could
    /// complete it and its sender would take the missing ACK for a dead session.
    pub(crate) fn holds_message(&self, m: &Message<'_>) -> bool {
        self.marks(m.target) && !(m.target.is_empty() && m.name.is_empty() && m.payload.is_empty())
    }

    /// Whether nothing is marked (and so nothing new will be held).
    pub(crate) fn is_off(&self) -> bool {
        !self.all && self.exact.is_empty()
    }

    /// Room for `frames` more held messages of session `generation`.
    pub(crate) fn has_room(&self, generation: u64, frames: usize, bounds: Bounds) -> bool {
        let mine = self.sessions.get(&generation).copied().unwrap_or(0);
        mine + frames <= bounds.per_session && self.held.len() + frames <= bounds.total
    }

    /// Admits a suite 3 batch (one counter, several frames) whole if one more message fits:
    /// its frames are then held until [`end_batch`](Self::end_batch) whatever the bounds, so
    /// that a batch larger than the room left is not refused for ever.
    ///
    /// # Errors
    /// [`Full`] when either bound is reached already.
    pub(crate) fn admit(
        &mut self,
        generation: u64,
        counter: Counter,
        bounds: Bounds,
    ) -> Result<(), Full> {
        if !self.has_room(generation, 1, bounds) {
            return Err(Full);
        }
        self.admitted = Some((generation, counter));
        Ok(())
    }

    /// The admitted batch was handled.
    pub(crate) fn end_batch(&mut self) {
        self.admitted = None;
    }

    /// Holds one message of the session `(addr, generation)` under `counter`.
    ///
    /// # Errors
    /// [`Full`] when either bound is reached, unless the message is a frame of the admitted
    /// batch.
    pub(crate) fn hold(&mut self, held: Held, bounds: Bounds) -> Result<HandoffId, Full> {
        let admitted = self.admitted == Some((held.generation, held.counter));
        if !admitted && !self.has_room(held.generation, 1, bounds) {
            return Err(Full);
        }
        let id = HandoffId(self.next);
        self.next += 1;
        self.held.insert(id, held);
        *self
            .counters
            .entry((held.generation, held.counter))
            .or_default() += 1;
        *self.sessions.entry(held.generation).or_default() += 1;
        Ok(id)
    }

    /// Whether any message of `counter` on session `generation` is held.
    pub(crate) fn holds(&self, generation: u64, counter: Counter) -> bool {
        !self.held.is_empty() && self.counters.contains_key(&(generation, counter))
    }

    /// The entry `id`, if held.
    pub(crate) fn get(&self, id: HandoffId) -> Option<Held> {
        self.held.get(&id).copied()
    }

    /// Forgets `id` (completed): says whether its counter's ACK may go now.
    pub(crate) fn complete(&mut self, id: HandoffId) -> Option<Completed> {
        let held = self.remove(id)?;
        let ack_now = !self.counters.contains_key(&(held.generation, held.counter));
        Some(Completed { held, ack_now })
    }

    /// Forgets `id` and every other entry of its counter (refused: the sender sends the
    /// whole counter again, so its batch-mates will be delivered again too).
    pub(crate) fn refuse(&mut self, id: HandoffId) -> Option<Held> {
        let held = self.remove(id)?;
        self.release_counter(held.generation, held.counter);
        Some(held)
    }

    /// When the oldest entry, held or gone, expires.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let held = self.held.first_key_value().map(|(_, h)| h.deadline);
        let gone = self.gone.first_key_value().map(|(_, t)| *t);
        match (held, gone) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes the oldest entry if it expired by `now`, with every entry of its counter.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Held> {
        let (&id, held) = self.held.first_key_value()?;
        if held.deadline > now {
            return None;
        }
        self.refuse(id)
    }

    /// Forgets the ids of ended sessions whose deadline passed by `now`: from then on they
    /// answer `Unknown`, as the entries would have once expired.
    pub(crate) fn prune_gone(&mut self, now: Instant) {
        while let Some(entry) = self.gone.first_entry() {
            if *entry.get() > now {
                return;
            }
            entry.remove();
        }
    }

    /// Session `generation` ended: drops its entries at once, so that they stop counting
    /// against the bounds, and remembers their ids (each until its deadline, the oldest
    /// forgotten first past `bounds.total`) for [`take_gone`](Self::take_gone). Returns how
    /// many were dropped. No work, and no allocation, for a session that held nothing.
    pub(crate) fn end_session(&mut self, generation: u64, bounds: Bounds) -> usize {
        let Some(&n) = self.sessions.get(&generation) else {
            return 0;
        };
        let ids: alloc::vec::Vec<(HandoffId, Instant)> = self
            .held
            .iter()
            .filter(|(_, h)| h.generation == generation)
            .map(|(id, h)| (*id, h.deadline))
            .collect();
        for (id, deadline) in ids {
            self.remove(id);
            self.gone.insert(id, deadline);
        }
        while self.gone.len() > bounds.total {
            self.gone.pop_first();
        }
        n
    }

    /// Whether `id` was held when its session ended (and its deadline has not passed);
    /// forgets it, so that a second call answers `false`, as for a completed entry.
    pub(crate) fn take_gone(&mut self, id: HandoffId) -> bool {
        self.gone.remove(&id).is_some()
    }

    /// Messages held now.
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// The counters with messages held for session `generation`, each once.
    pub(crate) fn counters_of(&self, generation: u64) -> impl Iterator<Item = Counter> + '_ {
        self.counters
            .range((generation, Counter(0))..=(generation, Counter(u64::MAX)))
            .map(|(&(_, c), _)| c)
    }

    fn remove(&mut self, id: HandoffId) -> Option<Held> {
        let held = self.held.remove(&id)?;
        decrement(&mut self.counters, (held.generation, held.counter));
        decrement(&mut self.sessions, held.generation);
        Some(held)
    }

    /// Drops the entries of one counter (a refused batch's other frames).
    fn release_counter(&mut self, generation: u64, counter: Counter) {
        if !self.counters.contains_key(&(generation, counter)) {
            return;
        }
        let ids: alloc::vec::Vec<HandoffId> = self
            .held
            .iter()
            .filter(|(_, h)| h.generation == generation && h.counter == counter)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.remove(id);
        }
    }
}

/// Lowers a count, removing it at zero (the tables' "no entry at zero" invariants).
fn decrement<K: Ord>(
    map: &mut BTreeMap<K, impl Copy + PartialEq + From<u8> + core::ops::SubAssign>,
    key: K,
) {
    let one = From::from(1u8);
    if let Some(n) = map.get_mut(&key) {
        if *n == one {
            map.remove(&key);
        } else {
            *n -= one;
        }
    }
}

#[cfg(test)]
#[path = "handoff_tests.rs"]
mod tests;
