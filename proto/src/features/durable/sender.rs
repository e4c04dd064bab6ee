//! The sender side: the durable outbox, by seq.
//!
//! An entry is *unstored* until the batch holding its `outbox` row is stored (it is never
//! transmitted before: a crash could otherwise give its seq to another message), then
//! *ready*, then *in flight* while it sits in a session's outbox. It leaves when it is
//! acknowledged, cancelled, or its batch fails. A session that ends puts its entries back to
//! ready, for the next session with that peer.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::{DurablePeer, DurableSeq};
use crate::reliability::OwnedMessage;

/// Where an entry is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    Unstored,
    Ready,
    InFlight,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) to: DurablePeer,
    pub(super) message: OwnedMessage,
    pub(super) state: State,
}

/// Durable messages sent and not yet resolved.
///
/// # Invariants
/// - `by_peer[p]` is exactly the seqs of entries to `p`, and holds no empty sets; so its
///   first seq is `p`'s floor.
/// - `ready[p]` is exactly the seqs of `Ready` entries to `p`, and holds no empty sets.
/// - Every seq in `entries` is below `next_seq`.
#[derive(Debug, Default)]
pub(super) struct Sender {
    pub(super) entries: BTreeMap<DurableSeq, Entry>,
    by_peer: BTreeMap<DurablePeer, BTreeSet<DurableSeq>>,
    ready: BTreeMap<DurablePeer, BTreeSet<DurableSeq>>,
    /// The seq the next message gets.
    pub(super) next_seq: u64,
}

impl Sender {
    pub(super) fn new(next_seq: u64) -> Self {
        Sender {
            next_seq,
            ..Sender::default()
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds an entry under `seq` (a new send, or one restored).
    pub(super) fn insert(&mut self, seq: DurableSeq, entry: Entry) {
        let (to, state) = (entry.to, entry.state);
        if let Some(old) = self.entries.insert(seq, entry) {
            self.unindex(seq, old.to, old.state);
        }
        self.by_peer.entry(to).or_default().insert(seq);
        if state == State::Ready {
            self.ready.entry(to).or_default().insert(seq);
        }
    }

    /// Removes an entry (resolved, or failed to store).
    pub(super) fn remove(&mut self, seq: DurableSeq) -> Option<Entry> {
        let e = self.entries.remove(&seq)?;
        self.unindex(seq, e.to, e.state);
        Some(e)
    }

    fn unindex(&mut self, seq: DurableSeq, to: DurablePeer, state: State) {
        remove_from(&mut self.by_peer, to, seq);
        if state == State::Ready {
            remove_from(&mut self.ready, to, seq);
        }
    }

    /// Moves an entry to `state` (from any other); false if it is not there.
    pub(super) fn set_state(&mut self, seq: DurableSeq, state: State) -> bool {
        let Some(e) = self.entries.get_mut(&seq) else {
            return false;
        };
        let (to, old) = (e.to, e.state);
        if old == state {
            return true;
        }
        e.state = state;
        if old == State::Ready {
            remove_from(&mut self.ready, to, seq);
        }
        if state == State::Ready {
            self.ready.entry(to).or_default().insert(seq);
        }
        true
    }

    pub(super) fn state(&self, seq: DurableSeq) -> Option<State> {
        self.entries.get(&seq).map(|e| e.state)
    }

    /// Moves up to `max` ready entries to `to` into flight, lowest seqs first, appending
    /// their seqs. Bounded by the room the caller has, so that an endpoint with a long ready
    /// queue does not walk (and put back) all of it on every acknowledgement.
    pub(super) fn take_ready(&mut self, to: DurablePeer, max: usize, out: &mut Vec<DurableSeq>) {
        let Some(seqs) = self.ready.get_mut(&to) else {
            return;
        };
        let mut taken = 0;
        while taken < max {
            let Some(seq) = seqs.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.get_mut(&seq) {
                e.state = State::InFlight;
                out.push(seq);
                taken += 1;
            }
        }
        if seqs.is_empty() {
            self.ready.remove(&to);
        }
    }

    pub(super) fn ready_peers(&self, out: &mut Vec<DurablePeer>) {
        out.extend(self.ready.keys().copied());
    }

    /// The least unresolved seq to `to`, else the next seq.
    pub(super) fn floor(&self, to: DurablePeer) -> DurableSeq {
        self.by_peer
            .get(&to)
            .and_then(|s| s.first().copied())
            .unwrap_or(DurableSeq(self.next_seq))
    }
}

fn remove_from(
    map: &mut BTreeMap<DurablePeer, BTreeSet<DurableSeq>>,
    to: DurablePeer,
    seq: DurableSeq,
) {
    if let Some(set) = map.get_mut(&to) {
        set.remove(&seq);
        if set.is_empty() {
            map.remove(&to);
        }
    }
}
