//! What a decoded trace ([`SimConfig::decoded_trace`](crate::SimConfig::decoded_trace)) takes
//! from a run while it goes: which sent copy each received datagram is, what the receiving
//! endpoint did with it, and every endpoint's session secrets.
//!
//! With the mode off every function here returns at its first branch, so ordinary runs (and
//! their digests) are exactly what they were.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use core::net::SocketAddr;

use pavillion_proto::endpoint::{RelayStats, Stats};
use pavillion_proto::keylog::SessionSecret;
use pavillion_proto::{Duration, Instant};

use crate::net::{now, Shared};
use crate::trace::{Fate, ReceiveOutcome, ReceiveRecord, Record};

/// Sent copies not yet received, by (source, destination).
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    by_pair: BTreeMap<(SocketAddr, SocketAddr), Vec<Pending>>,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    /// When it can arrive at the earliest: the send plus the reordering delay.
    due: Instant,
    bytes: Rc<[u8]>,
}

/// A copy still pending this long after it was due is taken as lost in a partition or to a
/// crashed host, and forgotten, so the table stays small.
const FORGET_AFTER: Duration = Duration::from_secs(300);

impl InFlight {
    /// Remembers a copy handed to turmoil.
    pub(crate) fn sent(
        &mut self,
        id: u64,
        from: SocketAddr,
        to: SocketAddr,
        due: Instant,
        bytes: Rc<[u8]>,
    ) {
        self.by_pair
            .entry((from, to))
            .or_default()
            .push(Pending { id, due, bytes });
    }

    /// The id of the copy of `bytes` from `from` to `to` that arrived at `at`, forgetting it:
    /// the latest one already due (a duplicate overtaken by its twin is matched by its own
    /// delay), else the oldest.
    pub(crate) fn take(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
        at: Instant,
    ) -> Option<u64> {
        let list = self.by_pair.get_mut(&(from, to))?;
        list.retain(|p| p.due + FORGET_AFTER >= at);
        let same = |p: &&Pending| &*p.bytes == bytes;
        let pick = list
            .iter()
            .enumerate()
            .filter(|(_, p)| same(p) && p.due <= at)
            .max_by_key(|(_, p)| p.id)
            .or_else(|| list.iter().enumerate().find(|(_, p)| same(p)))
            .map(|(i, _)| i)?;
        let id = list.remove(pick).id;
        if list.is_empty() {
            self.by_pair.remove(&(from, to));
        }
        Some(id)
    }
}

/// Whether copies of this fate travel (and so may be received).
pub(crate) fn travels(fate: Fate) -> bool {
    matches!(fate, Fate::Sent | Fate::Duplicate | Fate::Corrupted)
}

/// Drop counters by name, to tell what a `handle_datagram` did by their difference.
pub(crate) type Counters = Vec<(&'static str, u64)>;

/// The drop counters of an endpoint's [`Stats`].
pub(crate) fn drops(stats: &Stats) -> Counters {
    stats.drops().map(|(r, n)| (r.name(), n)).collect()
}

/// The drop counters of a relay: its endpoint's and its own.
pub(crate) fn relay_drops(stats: &Stats, relay: &RelayStats) -> Counters {
    let mut all = drops(stats);
    all.extend(relay.drops().map(|(r, n)| (r.name(), n)));
    all
}

/// The counters before a datagram is handed over, in a decoded trace only.
pub(crate) fn before(world: &Shared, counters: impl FnOnce() -> Counters) -> Option<Counters> {
    world.borrow().decoding.then(counters)
}

/// Records that `host` was handed `bytes` from `from` at `to`; `before` (from [`before`])
/// and `after` tell whether it dropped them, and why.
pub(crate) fn received(
    world: &Shared,
    host: &Rc<str>,
    from: SocketAddr,
    to: SocketAddr,
    bytes: &[u8],
    before: Option<Counters>,
    after: impl FnOnce() -> Counters,
) {
    let Some(before) = before else { return };
    let after = after();
    let moved = after
        .iter()
        .zip(&before)
        .find(|((_, a), (_, b))| a > b)
        .map(|((name, _), _)| *name);
    let outcome = if moved.is_some() || after.len() != before.len() {
        ReceiveOutcome::Dropped(moved)
    } else {
        ReceiveOutcome::Accepted
    };
    heard(world, host, from, to, bytes, outcome);
}

/// Records that `host` was handed `bytes` with a known outcome (a station hears everything, a
/// middlebox takes everything), in a decoded trace only.
pub(crate) fn heard(
    world: &Shared,
    host: &Rc<str>,
    from: SocketAddr,
    to: SocketAddr,
    bytes: &[u8],
    outcome: ReceiveOutcome,
) {
    let mut w = world.borrow_mut();
    if !w.decoding {
        return;
    }
    let at = now();
    let id = w.in_flight.take(from, to, bytes, at);
    w.trace.push(Record::Receive(ReceiveRecord {
        at,
        host: host.clone(),
        id,
        from,
        to,
        len: bytes.len(),
        outcome,
    }));
}

/// Collects the secrets an endpoint queued, in a decoded trace only (the key log is off
/// otherwise, and `poll` is not called).
pub(crate) fn secrets(world: &Shared, mut poll: impl FnMut() -> Option<SessionSecret>) {
    if !world.borrow().decoding {
        return;
    }
    while let Some(secret) = poll() {
        world.borrow_mut().trace.meta.add_secret(secret);
    }
}

/// Records a fleet role's event as structured JSON, in a decoded trace only (the digested
/// trace keeps it as a note, which the caller has written just before).
pub(crate) fn role_event(
    world: &Shared,
    host: &Rc<str>,
    at: Instant,
    role: &'static str,
    event: &impl serde::Serialize,
) {
    let mut w = world.borrow_mut();
    if !w.decoding {
        return;
    }
    // An event that does not serialize is a bug in its derive; the note still has it.
    let json = serde_json::to_string(event).unwrap_or_else(|e| {
        serde_json::json!({ "kind": "unserializable", "error": e.to_string() }).to_string()
    });
    w.trace.push(Record::RoleEvent {
        at,
        host: host.clone(),
        role,
        json,
    });
}

/// Whether a new endpoint must turn its key log on.
pub(crate) fn key_log(world: &Shared) -> bool {
    world.borrow().decoding
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A duplicate sent with no delay overtakes its twin delayed by the reordering fault:
    /// each arrival is matched to the copy that can have arrived, and a stale copy of the same
    /// bytes lost earlier is not taken while a due one exists.
    #[test]
    fn arrivals_match_the_copy_that_was_due() {
        let (a, b) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"));
        let bytes: Rc<[u8]> = Rc::from(&b"x"[..]);
        let mut f = InFlight::default();
        f.sent(1, a, b, Instant::from_micros(1_000), bytes.clone());
        f.sent(7, a, b, Instant::from_micros(50_000), bytes.clone());
        f.sent(8, a, b, Instant::from_micros(10_000), bytes.clone());
        assert_eq!(f.take(a, b, b"x", Instant::from_micros(11_000)), Some(8));
        assert_eq!(f.take(a, b, b"y", Instant::from_micros(11_000)), None);
        assert_eq!(f.take(b, a, b"x", Instant::from_micros(11_000)), None);
        assert_eq!(f.take(a, b, b"x", Instant::from_micros(51_000)), Some(7));
        assert_eq!(f.take(a, b, b"x", Instant::from_micros(51_000)), Some(1));
        assert_eq!(f.take(a, b, b"x", Instant::from_micros(51_000)), None);
    }
}
