//! The receiver's side of segmented messages: partial plaintexts, their budget, and the
//! acknowledgements owed for segments.
//!
//! A partial message is keyed by (peer, transfer id). Before it stores a byte, the receiver
//! reserves the announced total plus a fixed overhead against a per-peer and a total budget,
//! and refuses (op 35) what would exceed either (`NoRoom`) or the maximum message
//! (`TooLarge`). Every segment is checked against the first one seen: same total, inside it,
//! and bytes that overlap what is stored equal to it; any disagreement frees the partial and
//! refuses the transfer (`Inconsistent`). Received bytes are tracked as merged intervals,
//! bounded in count. A partial with no new segment for the reassembly timeout is freed.
//!
//! Each peer's recently finished transfers (delivered or refused) are remembered, a bounded
//! number per peer, so that a retransmitted segment of a delivered message is acknowledged
//! again and never delivered twice, and one of a refused message is refused again.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::endpoint::{ReassemblyUsage, TransferRefusal};
use crate::id::Counter;
use crate::time::{Duration, Instant};
use crate::wire::segment::{Segment, TransferId, MAX_ACK_RANGES};

/// Bytes charged to a budget for each partial message on top of its total, so that many
/// tiny partials cannot hold more memory than their budget says.
pub(crate) const PARTIAL_OVERHEAD: usize = 256;

/// Most disjoint byte intervals a partial message may have: a sender fills the gaps it left,
/// so a legitimate transfer has about one per segment lost in its window.
pub(crate) const MAX_INTERVALS: usize = 1024;

/// Finished transfers remembered per peer.
pub(crate) const FINISHED_PER_PEER: usize = 64;

/// Peers whose finished transfers are remembered.
pub(crate) const MAX_PEERS: usize = 4096;

/// Segment counters awaiting an ACK per peer; beyond it the oldest is forgotten (its sender
/// retransmits, and gets it acknowledged again).
pub(crate) const MAX_PENDING_ACKS: usize = 4 * MAX_ACK_RANGES;

/// The receiver's limits (from `Limits`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub(crate) max_message: usize,
    pub(crate) per_peer: usize,
    pub(crate) total: usize,
    pub(crate) timeout: Duration,
}

/// What became of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// Stored (or already held); acknowledge it.
    Stored,
    /// It completed the plaintext; acknowledge it, and dispatch the plaintext as if it had
    /// arrived in one packet. `first` is the counter of the segment at offset 0.
    Complete { plaintext: Vec<u8>, first: Counter },
    /// A segment of a transfer already delivered: acknowledge it again, deliver nothing.
    Again,
    /// Refused: not acknowledged; the sender is told why (op 35).
    Refused(TransferRefusal),
}

#[derive(Debug)]
struct Partial {
    total: u32,
    data: Vec<u8>,
    /// Received byte ranges `[start, end)`, sorted, disjoint and not touching.
    have: Vec<(u32, u32)>,
    received: u32,
    last: Instant,
    first: Option<Counter>,
}

/// How a remembered transfer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Finished {
    Delivered,
    Refused(TransferRefusal),
}

/// A role's partial messages, their reservations, and the ACKs owed for segments.
#[derive(Debug)]
pub(crate) struct Reassembly {
    budget: Budget,
    partials: BTreeMap<(SocketAddr, TransferId), Partial>,
    reserved: BTreeMap<SocketAddr, usize>,
    reserved_total: usize,
    peak: usize,
    finished: BTreeMap<SocketAddr, VecDeque<(TransferId, Finished)>>,
    pending_acks: BTreeMap<SocketAddr, Vec<Counter>>,
}

impl Reassembly {
    pub(crate) fn new(budget: Budget) -> Self {
        Reassembly {
            budget,
            partials: BTreeMap::new(),
            reserved: BTreeMap::new(),
            reserved_total: 0,
            peak: 0,
            finished: BTreeMap::new(),
            pending_acks: BTreeMap::new(),
        }
    }

    /// Bytes reserved now and at the peak, and partial messages held.
    pub(crate) fn usage(&self) -> ReassemblyUsage {
        ReassemblyUsage {
            reserved: self.reserved_total,
            peak: self.peak,
            partials: self.partials.len(),
        }
    }

    /// Takes in one fresh segment from `peer`, sent under `counter`.
    pub(crate) fn on_segment(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        counter: Counter,
        seg: &Segment<'_>,
    ) -> Accepted {
        let key = (peer, seg.transfer);
        if !self.partials.contains_key(&key) {
            match self.finished_as(peer, seg.transfer) {
                Some(Finished::Delivered) => return Accepted::Again,
                Some(Finished::Refused(r)) => return Accepted::Refused(r),
                None => {}
            }
        }
        let refusal = match check(seg, self.budget.max_message) {
            Err(r) => Some(r),
            Ok(()) if !self.partials.contains_key(&key) => self.reserve(peer, seg.total).err(),
            Ok(()) => None,
        };
        if let Some(r) = refusal {
            return self.refuse(peer, seg.transfer, r);
        }
        let Some(p) = self.partials.get_mut(&key) else {
            // Just reserved: a new partial.
            let mut p = Partial {
                total: seg.total,
                data: vec![0; seg.total as usize],
                have: Vec::new(),
                received: 0,
                last: now,
                first: None,
            };
            p.store(seg, counter);
            return self.after_store(key, p);
        };
        if p.total != seg.total || !p.agrees(seg) {
            return self.refuse(peer, seg.transfer, TransferRefusal::Inconsistent);
        }
        p.last = now;
        p.store(seg, counter);
        if p.have.len() > MAX_INTERVALS {
            return self.refuse(peer, seg.transfer, TransferRefusal::Inconsistent);
        }
        match self.partials.remove(&key) {
            Some(p) => self.after_store(key, p),
            None => Accepted::Stored,
        }
    }

    /// What a copy of a segment (a duplicate counter) deserves: `Stored` if its bytes are held
    /// or its transfer was delivered, the refusal otherwise (`Expired` for a transfer no longer
    /// known).
    pub(crate) fn on_duplicate(&self, peer: SocketAddr, seg: &Segment<'_>) -> Accepted {
        if let Some(p) = self.partials.get(&(peer, seg.transfer)) {
            let end = seg.offset.saturating_add(seg.data.len() as u32);
            if p.have.iter().any(|&(s, e)| s <= seg.offset && end <= e) {
                return Accepted::Stored;
            }
            return Accepted::Refused(TransferRefusal::Inconsistent);
        }
        match self.finished_as(peer, seg.transfer) {
            Some(Finished::Delivered) => Accepted::Again,
            Some(Finished::Refused(r)) => Accepted::Refused(r),
            None => Accepted::Refused(TransferRefusal::Expired),
        }
    }

    /// When the oldest partial message expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.partials
            .values()
            .map(|p| p.last + self.budget.timeout)
            .min()
    }

    /// Frees the partial messages without progress for the timeout; returns them.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(SocketAddr, TransferId)> {
        let timeout = self.budget.timeout;
        let gone: Vec<(SocketAddr, TransferId)> = self
            .partials
            .iter()
            .filter(|(_, p)| p.last + timeout <= now)
            .map(|(k, _)| *k)
            .collect();
        for &(peer, transfer) in &gone {
            self.free(peer, transfer);
            self.remember(peer, transfer, Finished::Refused(TransferRefusal::Expired));
        }
        gone
    }

    /// Owes `peer` an ACK of `counter`. True if the peer had none pending: then the caller
    /// queues one datagram that takes every pending ACK of the peer when it is encoded.
    pub(crate) fn owe_ack(&mut self, peer: SocketAddr, counter: Counter) -> bool {
        let pending = self.pending_acks.entry(peer).or_default();
        let was_empty = pending.is_empty();
        if pending.len() >= MAX_PENDING_ACKS {
            pending.remove(0);
        }
        pending.push(counter);
        was_empty
    }

    /// The ACKs owed to `peer` as at most [`MAX_ACK_RANGES`] ranges, and whether some remain
    /// owed (then the caller queues another datagram).
    pub(crate) fn take_acks(&mut self, peer: SocketAddr) -> (Vec<(Counter, u16)>, bool) {
        let Some(mut pending) = self.pending_acks.remove(&peer) else {
            return (Vec::new(), false);
        };
        crate::util::sort(&mut pending);
        pending.dedup();
        let mut ranges: Vec<(Counter, u16)> = Vec::new();
        let mut used = 0;
        for &c in &pending {
            let full = ranges.len() == MAX_ACK_RANGES;
            match ranges.last_mut() {
                Some((first, n)) if first.0 + u64::from(*n) == c.0 && *n < u16::MAX => *n += 1,
                _ if full => break,
                _ => ranges.push((c, 1)),
            }
            used += 1;
        }
        let rest = pending.split_off(used);
        let more = !rest.is_empty();
        if more {
            self.pending_acks.insert(peer, rest);
        }
        (ranges, more)
    }

    /// Forgets what `peer` left: its partials, reservations, finished transfers and owed ACKs
    /// (its session ended for good).
    pub(crate) fn forget_peer(&mut self, peer: SocketAddr) {
        let keys: Vec<(SocketAddr, TransferId)> = self
            .partials
            .keys()
            .filter(|k| k.0 == peer)
            .copied()
            .collect();
        for (p, t) in keys {
            self.free(p, t);
        }
        self.finished.remove(&peer);
        self.pending_acks.remove(&peer);
    }

    fn finished_as(&self, peer: SocketAddr, transfer: TransferId) -> Option<Finished> {
        self.finished
            .get(&peer)?
            .iter()
            .find(|(t, _)| *t == transfer)
            .map(|(_, f)| *f)
    }

    fn reserve(&mut self, peer: SocketAddr, total: u32) -> Result<(), TransferRefusal> {
        let cost = total as usize + PARTIAL_OVERHEAD;
        let mine = self.reserved.get(&peer).copied().unwrap_or(0);
        if mine + cost > self.budget.per_peer || self.reserved_total + cost > self.budget.total {
            return Err(TransferRefusal::NoRoom);
        }
        self.reserved.insert(peer, mine + cost);
        self.reserved_total += cost;
        self.peak = self.peak.max(self.reserved_total);
        Ok(())
    }

    fn free(&mut self, peer: SocketAddr, transfer: TransferId) {
        let Some(p) = self.partials.remove(&(peer, transfer)) else {
            return;
        };
        let cost = p.total as usize + PARTIAL_OVERHEAD;
        self.reserved_total = self.reserved_total.saturating_sub(cost);
        if let Some(mine) = self.reserved.get_mut(&peer) {
            *mine = mine.saturating_sub(cost);
            if *mine == 0 {
                self.reserved.remove(&peer);
            }
        }
    }

    fn refuse(&mut self, peer: SocketAddr, transfer: TransferId, r: TransferRefusal) -> Accepted {
        self.free(peer, transfer);
        self.remember(peer, transfer, Finished::Refused(r));
        Accepted::Refused(r)
    }

    fn remember(&mut self, peer: SocketAddr, transfer: TransferId, how: Finished) {
        if !self.finished.contains_key(&peer) && self.finished.len() >= MAX_PEERS {
            if let Some(other) = self.finished.keys().next().copied() {
                self.finished.remove(&other);
            }
        }
        let list = self.finished.entry(peer).or_default();
        if list.len() >= FINISHED_PER_PEER {
            list.pop_front();
        }
        list.push_back((transfer, how));
    }

    /// Puts a partial (back) in the table, or delivers it if it is whole.
    fn after_store(&mut self, key: (SocketAddr, TransferId), p: Partial) -> Accepted {
        if p.received < p.total {
            self.partials.insert(key, p);
            return Accepted::Stored;
        }
        let cost = p.total as usize + PARTIAL_OVERHEAD;
        self.reserved_total = self.reserved_total.saturating_sub(cost);
        if let Some(mine) = self.reserved.get_mut(&key.0) {
            *mine = mine.saturating_sub(cost);
            if *mine == 0 {
                self.reserved.remove(&key.0);
            }
        }
        self.remember(key.0, key.1, Finished::Delivered);
        match p.first {
            Some(first) => Accepted::Complete {
                plaintext: p.data,
                first,
            },
            // Whole without a segment at offset 0 cannot happen (offset 0 is in every whole
            // plaintext); refuse rather than guess.
            None => Accepted::Refused(TransferRefusal::Inconsistent),
        }
    }
}

/// The checks a segment passes on its own.
fn check(seg: &Segment<'_>, max_message: usize) -> Result<(), TransferRefusal> {
    if seg.total as usize > max_message {
        return Err(TransferRefusal::TooLarge);
    }
    let end = u64::from(seg.offset) + seg.data.len() as u64;
    if seg.total == 0 || seg.data.is_empty() || end > u64::from(seg.total) {
        return Err(TransferRefusal::Inconsistent);
    }
    Ok(())
}

impl Partial {
    /// Whether the bytes of `seg` that overlap what is held equal it.
    fn agrees(&self, seg: &Segment<'_>) -> bool {
        let start = seg.offset;
        let end = start + seg.data.len() as u32;
        self.have.iter().all(|&(s, e)| {
            let (lo, hi) = (s.max(start), e.min(end));
            lo >= hi
                || self.data.get(lo as usize..hi as usize)
                    == seg.data.get((lo - start) as usize..(hi - start) as usize)
        })
    }

    /// Copies `seg` in (after [`check`] and [`Partial::agrees`]) and merges its interval.
    fn store(&mut self, seg: &Segment<'_>, counter: Counter) {
        let start = seg.offset;
        let end = start + seg.data.len() as u32;
        if let Some(dst) = self.data.get_mut(start as usize..end as usize) {
            dst.copy_from_slice(seg.data);
        }
        if start == 0 {
            self.first = Some(counter);
        }
        let (mut lo, mut hi) = (start, end);
        let mut kept = Vec::with_capacity(self.have.len() + 1);
        for &(s, e) in &self.have {
            if e < lo || s > hi {
                kept.push((s, e));
            } else {
                lo = lo.min(s);
                hi = hi.max(e);
            }
        }
        let at = kept.partition_point(|&(s, _)| s < lo);
        kept.insert(at, (lo, hi));
        self.received = kept.iter().map(|(s, e)| e - s).sum();
        self.have = kept;
    }
}

#[cfg(test)]
#[path = "reassembly_tests.rs"]
mod tests;
