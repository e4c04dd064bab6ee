//! Several bridges for one site without duplicates (`docs/BRIDGE.md`, "Several bridges"):
//! the `pav-id` every bridge computes alike for one message, and the standby's table of
//! messages it holds until it sees the leader publish them.
//!
//! A multicast message reaches every bridge of the site with the same sender and counter
//! (A's `MessageKey`), so each bridge computes the same [`PavId`] from it and its content,
//! with no word between bridges. The leader publishes at once with the id as the MQTT 5 user
//! property [`PAV_ID`]; a standby holds the message ([`Standby::hold`]) and completes it
//! without publishing when the leader's publish with that id comes back on its
//! subscription ([`Standby::seen`]), or publishes it itself when the wait ends or the leader
//! goes ([`Standby::expire`], [`Standby::release_all`]). So no message a bridge acknowledged
//! is left unpublished; what can happen is two publishes with one id, which consumers drop.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest};
use pavillion_proto::{Counter, PeerId};

/// The MQTT 5 user property that carries a message's [`PavId`].
pub const PAV_ID: &str = "pav-id";

/// A message's id across the site's bridges: BLAKE2b-128 of its site, sender, counter,
/// target, name and payload, written as 32 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PavId(pub [u8; 16]);

/// What a [`PavId`] is computed from: one message as every bridge it reaches sees it.
#[derive(Clone, Copy, Debug)]
pub struct MessageFacts<'a> {
    /// The site (`site` in the configuration): two sites never share ids.
    pub site: &'a str,
    /// The authenticated sender.
    pub sender: &'a PeerId,
    /// The counter of the packet that carried it (the same at every server a multicast
    /// message reaches).
    pub counter: Counter,
    /// The target.
    pub target: &'a str,
    /// The message's name.
    pub name: &'a str,
    /// The payload.
    pub payload: &'a [u8],
}

impl PavId {
    /// The id of a message. Every field is length-prefixed and the whole is under a domain
    /// label, so that no two different messages share their input bytes.
    pub fn of(m: &MessageFacts<'_>) -> Self {
        let mut h = Blake2b::<U16>::new();
        h.update(b"pavillion bridge pav-id v1");
        field(&mut h, m.site.as_bytes());
        match m.sender {
            PeerId::Client(c) => {
                h.update([1]);
                field(&mut h, &c.0);
            }
            PeerId::Guest(g) => {
                h.update([2]);
                field(&mut h, g);
            }
            // A kind of peer this code does not know yet: its debug form is still the same
            // at every bridge running this version.
            other => {
                h.update([0xFF]);
                field(&mut h, format!("{other:?}").as_bytes());
            }
        }
        h.update(m.counter.0.to_le_bytes());
        field(&mut h, m.target.as_bytes());
        field(&mut h, m.name.as_bytes());
        field(&mut h, m.payload);
        PavId(h.finalize().into())
    }
}

fn field(h: &mut Blake2b<U16>, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

impl fmt::Display for PavId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PavId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PavId({self})")
    }
}

/// A [`PAV_ID`] property that is not 32 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a pav-id is 32 hex digits")]
pub struct BadPavId;

impl FromStr for PavId {
    type Err = BadPavId;

    fn from_str(s: &str) -> Result<Self, BadPavId> {
        let bytes = hex::decode(s).map_err(|_| BadPavId)?;
        Ok(PavId(bytes.try_into().map_err(|_| BadPavId)?))
    }
}

/// What [`Standby::hold`] decided for a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Hold<T> {
    /// The leader's publish was seen already: complete the message without publishing.
    Published(T),
    /// Held until its publish is seen or its wait ends.
    Held,
    /// Publish it now: the table is full, or a message with the same id is held already (a
    /// retransmission delivered as new after its hand-off expired). A possible duplicate,
    /// never a loss.
    PublishNow(T),
}

/// A standby bridge's messages held for the leader's publish, and the ids of publishes it
/// saw before their message reached it (the leader can be faster than our own copy).
///
/// Both are bounded: `capacity` held messages, `capacity` remembered ids for at most
/// `remember` each (oldest forgotten first; forgetting one early costs a duplicate, never a
/// loss).
#[derive(Debug)]
pub struct Standby<T> {
    held: HashMap<PavId, (Instant, T)>,
    /// Every key of `held` once, by the end of its wait.
    deadlines: BTreeSet<(Instant, PavId)>,
    seen: HashMap<PavId, Instant>,
    /// Every remembered id once, oldest first, with the instant it was seen.
    seen_order: VecDeque<(Instant, PavId)>,
    wait: Duration,
    remember: Duration,
    capacity: usize,
}

impl<T> Standby<T> {
    /// An empty table: messages wait `wait` (`standby_wait_ms`) for the leader's publish;
    /// publishes are remembered `remember` for their message to arrive.
    pub fn new(wait: Duration, remember: Duration, capacity: usize) -> Self {
        Standby {
            held: HashMap::new(),
            deadlines: BTreeSet::new(),
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            wait,
            remember,
            capacity,
        }
    }

    /// A message with id `id` reached this standby at `now`.
    pub fn hold(&mut self, now: Instant, id: PavId, value: T) -> Hold<T> {
        self.forget_old(now);
        if self.seen.contains_key(&id) {
            return Hold::Published(value);
        }
        if self.held.contains_key(&id) || self.held.len() >= self.capacity {
            return Hold::PublishNow(value);
        }
        let deadline = now + self.wait;
        self.deadlines.insert((deadline, id));
        self.held.insert(id, (deadline, value));
        Hold::Held
    }

    /// A publish with id `id` was seen on a mapped topic at `now`: returns the message held
    /// for it, which is complete without a publish of ours; otherwise remembers the id for a
    /// message still on its way.
    pub fn seen(&mut self, now: Instant, id: PavId) -> Option<T> {
        self.forget_old(now);
        if let Some((deadline, value)) = self.held.remove(&id) {
            self.deadlines.remove(&(deadline, id));
            return Some(value);
        }
        if self.seen.contains_key(&id) {
            return None;
        }
        if self.seen_order.len() >= self.capacity {
            if let Some((_, old)) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.capacity > 0 {
            self.seen.insert(id, now);
            self.seen_order.push_back((now, id));
        }
        None
    }

    /// The messages whose wait ended at or before `now`: publish each.
    pub fn expire(&mut self, now: Instant) -> Vec<(PavId, T)> {
        self.forget_old(now);
        let mut due = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some((_, value)) = self.held.remove(&id) {
                due.push((id, value));
            }
        }
        due
    }

    /// Every held message (the leader went offline, or we lead now): publish each.
    pub fn release_all(&mut self) -> Vec<(PavId, T)> {
        self.deadlines.clear();
        self.held.drain().map(|(id, (_, v))| (id, v)).collect()
    }

    /// The earliest end of a wait, for the runtime's timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    /// How many messages are held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.seen_order.front() {
            if now.saturating_duration_since(at) < self.remember {
                break;
            }
            self.seen_order.pop_front();
            self.seen.remove(&id);
        }
    }
}

#[cfg(test)]
#[path = "dedupe_tests.rs"]
mod tests;
