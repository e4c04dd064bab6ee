//! Ordered delivery (op 36, ours): messages sent with `SendOptions::ordered()` reach the
//! receiving application in send order per target, exactly once, under loss, duplication and
//! reordering, and a loss on one target never delays another (docs/PROTOCOL.md §3.3).
//!
//! Each target is its own stream. The sender numbers a target's messages 1, 2, 3, … (`seq`)
//! and stamps every packet with its `floor`: every seq below it is resolved (acknowledged or
//! abandoned at its deadline). The receiver delivers `seq == next` at once, holds later ones
//! in a bounded reorder buffer, and skips a gap once the floor passes it, so it never waits
//! for a message the sender gave up on. Reliability underneath is the outbox's: op 36 is
//! acknowledged with op 2 and retransmitted under its counter like op 1.
//!
//! - `OrderedSender`: one stream table (an epoch, and per target the next seq and the
//!   seqs not yet resolved). The client has one for all its servers; the server one per
//!   client session, so a client's new session starts a new epoch.
//! - `OrderedReceiver`: per (peer address, target) the epoch, the next seq to deliver and
//!   the held messages; bounded by [`OrderedLimits`]. Its deadline is the idle expiry of
//!   streams (`ClientTimer::OrderedStreams`, `ServerTimer::OrderedStreams`).
//!
//! The receive path takes a parsed [`OrderedMessage`], whatever carried it, so a reassembled
//! op 36 plaintext (segmentation) is fed to it the same way.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use alloc::boxed::Box;

use bytes::Bytes;

use crate::endpoint::{DropReason, ReceivedMessage};
use crate::reliability::{InFlight, OrderedOut, OwnedMessage, Payload};
use crate::rng::Rng;
use crate::time::{Duration, Instant};
use crate::wire::ordered::{OrderedMessage, OrderedSeq, StreamEpoch};

#[cfg(test)]
mod tests;

/// Bounds of what a peer can make an endpoint hold for its ordered streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderedLimits {
    /// Streams (targets) one peer may have open at once; a message opening one more is
    /// dropped unacknowledged ([`DropReason::TableFull`]), so its sender retries later.
    pub max_streams_per_peer: usize,
    /// Streams over all peers.
    pub max_streams: usize,
    /// Messages held for one peer (over all its streams) waiting for a gap to fill; beyond
    /// it a message is dropped unacknowledged ([`DropReason::OrderedBufferFull`]).
    pub max_held_per_peer: usize,
    /// Messages held over all peers.
    pub max_held: usize,
    /// How far past the next expected seq a message may be; further is dropped
    /// unacknowledged ([`DropReason::OrderedGap`]).
    pub max_gap: u64,
    /// A stream that hears nothing for this long is forgotten, its held messages delivered
    /// in order first (their sender has given up on the gap, or is gone). Keep it longer
    /// than any send timeout in use.
    pub idle: Duration,
}

impl Default for OrderedLimits {
    fn default() -> Self {
        OrderedLimits {
            max_streams_per_peer: 64,
            max_streams: 4096,
            max_held_per_peer: 128,
            max_held: 2048,
            max_gap: 4096,
            idle: Duration::from_secs(300),
        }
    }
}

/// One sender's ordered streams: an epoch, and per target what is issued and unresolved.
#[derive(Debug)]
pub(crate) struct OrderedSender {
    epoch: StreamEpoch,
    streams: BTreeMap<String, SendStream>,
}

/// The sending side of one target's stream.
///
/// # Invariants
/// Every seq in `outstanding` is below `next`; the floor is the least of them, or `next`.
#[derive(Debug)]
struct SendStream {
    next: u64,
    outstanding: BTreeSet<u64>,
    /// A seq was abandoned and no packet carrying the new floor may follow: when nothing is
    /// outstanding any more, an announcement must tell the receiver.
    announce: bool,
}

/// What the sender needs sent after resolving a seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterResolve {
    /// Nothing: the floor reaches the receiver with a packet still to come, or needs not.
    Nothing,
    /// A floor announcement (`seq`, `floor == seq + 1`) for the target.
    Announce {
        /// The newest resolved seq.
        seq: OrderedSeq,
        /// The floor: one past it.
        floor: OrderedSeq,
    },
}

impl OrderedSender {
    /// A stream table under `epoch` (drawn from the endpoint's injected RNG).
    pub(crate) fn new(epoch: StreamEpoch) -> Self {
        OrderedSender {
            epoch,
            streams: BTreeMap::new(),
        }
    }

    pub(crate) fn epoch(&self) -> StreamEpoch {
        self.epoch
    }

    /// Numbers the next message of `target`.
    pub(crate) fn issue(&mut self, target: &str) -> OrderedSeq {
        let s = self
            .streams
            .entry(target.into())
            .or_insert_with(|| SendStream {
                next: 1,
                outstanding: BTreeSet::new(),
                announce: false,
            });
        let seq = s.next;
        s.next += 1;
        s.outstanding.insert(seq);
        OrderedSeq(seq)
    }

    /// Takes back the seq just issued for `target` (its send was refused before it was
    /// queued), so that no gap is left behind.
    pub(crate) fn unissue(&mut self, target: &str, seq: OrderedSeq) {
        if let Some(s) = self.streams.get_mut(target) {
            s.outstanding.remove(&seq.0);
            if s.next == seq.0 + 1 {
                s.next = seq.0;
            }
        }
    }

    /// Every seq of `target` below this one is resolved.
    pub(crate) fn floor(&self, target: &str) -> OrderedSeq {
        OrderedSeq(
            self.streams
                .get(target)
                .map_or(1, |s| s.outstanding.first().copied().unwrap_or(s.next)),
        )
    }

    /// `seq` of `target` was acknowledged by every receiver expected to.
    pub(crate) fn on_acked(&mut self, target: &str, seq: OrderedSeq) -> AfterResolve {
        self.resolve(target, seq, false)
    }

    /// `seq` of `target` passed its deadline (or failed) unacknowledged by someone expected:
    /// the sender gives up on it, and the receiver must be able to skip it.
    pub(crate) fn on_abandoned(&mut self, target: &str, seq: OrderedSeq) -> AfterResolve {
        self.resolve(target, seq, true)
    }

    fn resolve(&mut self, target: &str, seq: OrderedSeq, abandoned: bool) -> AfterResolve {
        let Some(s) = self.streams.get_mut(target) else {
            return AfterResolve::Nothing;
        };
        if !s.outstanding.remove(&seq.0) {
            return AfterResolve::Nothing;
        }
        s.announce |= abandoned;
        // With something still outstanding, its retransmissions carry the floor; once
        // nothing is, only an announcement can.
        if s.announce && s.outstanding.is_empty() {
            s.announce = false;
            return AfterResolve::Announce {
                seq: OrderedSeq(s.next - 1),
                floor: OrderedSeq(s.next),
            };
        }
        AfterResolve::Nothing
    }

    /// The fields an op 36 packet of this table carries when sealed now: `floor` is the
    /// current one, and an announcement is moved up to it (both stay true as the floor only
    /// rises). A message's floor never passes its own seq.
    pub(crate) fn stamp(&self, o: &mut OrderedMessage<'_>) {
        if o.epoch != self.epoch {
            return;
        }
        let floor = self.floor(o.message.target);
        if o.is_announcement() {
            if floor > o.floor {
                o.floor = floor;
                o.seq = OrderedSeq(floor.0 - 1);
            }
        } else {
            o.floor = OrderedSeq(floor.0.min(o.seq.0).max(o.floor.0));
        }
    }
}

/// A new stream table with an epoch from the endpoint's RNG. Drawn only when the first
/// ordered message is sent, so endpoints that never send one draw exactly as before.
pub(crate) fn new_sender(rng: &mut Rng) -> OrderedSender {
    let [a, b, c, d] = rng.array();
    OrderedSender::new(StreamEpoch(u32::from_le_bytes([a, b, c, d])))
}

/// Numbers `message` in its target's stream and makes it an outbox payload.
pub(crate) fn message_payload(tx: &mut OrderedSender, message: OwnedMessage) -> Payload {
    let seq = tx.issue(message.target());
    Payload::Ordered(Box::new(OrderedOut {
        epoch: tx.epoch(),
        seq,
        // A lower bound (nothing below 1); the encoder stamps the current floor.
        floor: OrderedSeq(1),
        message,
    }))
}

/// Takes back the seq of a payload the outbox refused.
pub(crate) fn refused(tx: &mut OrderedSender, payload: &Payload) {
    if let Some(o) = payload.ordered() {
        tx.unissue(o.message.target(), o.seq);
    }
}

/// Resolves an exchange that left the outbox (acknowledged, or `abandoned` at its deadline
/// or by a failure) in its stream table; returns the floor announcement to queue (as an
/// internal exchange), if one is needed.
pub(crate) fn resolve(
    tx: Option<&mut OrderedSender>,
    e: &InFlight,
    abandoned: bool,
) -> Option<Payload> {
    let (tx, o) = (tx?, e.payload.ordered()?);
    if e.internal || o.epoch != tx.epoch() {
        return None;
    }
    let target = o.message.target();
    let after = if abandoned {
        tx.on_abandoned(target, o.seq)
    } else {
        tx.on_acked(target, o.seq)
    };
    match after {
        AfterResolve::Nothing => None,
        AfterResolve::Announce { seq, floor } => Some(Payload::Ordered(Box::new(OrderedOut {
            epoch: tx.epoch(),
            seq,
            floor,
            message: OwnedMessage::new(target, "", &[]),
        }))),
    }
}

/// The receiving side: every (peer, target) stream, and the messages held.
#[derive(Debug, Default)]
pub(crate) struct OrderedReceiver {
    streams: BTreeMap<(SocketAddr, String), RecvStream>,
    /// Messages held over all streams: the sum of their `held` lengths.
    held_total: usize,
}

/// The receiving side of one (peer, target) stream.
///
/// # Invariants
/// Every held seq is above `next` (one equal to it is delivered at once).
#[derive(Debug)]
struct RecvStream {
    epoch: StreamEpoch,
    next: u64,
    held: BTreeMap<u64, Held>,
    last_active: Instant,
}

#[derive(Debug)]
struct Held {
    name: String,
    payload: Bytes,
}

/// What the receiver did with an op 36 packet it did not drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// Delivered (with any held messages it released).
    Delivered,
    /// Held for a gap to fill or to be skipped.
    Held,
    /// Already delivered, skipped or held: acknowledge again, deliver nothing.
    Duplicate,
    /// A floor announcement, applied.
    Announcement,
}

impl OrderedReceiver {
    /// Takes an op 36 packet from `from`. Messages it releases are appended to `deliver` in
    /// stream order. `Ok` means: acknowledge it; `Err` is a counted drop, unacknowledged, so
    /// a sender of ours retries later.
    ///
    /// # Errors
    /// [`DropReason::OrderedInvalid`] for seq 0 or `u64::MAX`, or a floor past seq + 1,
    /// [`DropReason::TableFull`] when the peer or the endpoint has no room for a new stream,
    /// [`DropReason::OrderedGap`] and [`DropReason::OrderedBufferFull`] for a message that
    /// cannot be held.
    pub(crate) fn on_message(
        &mut self,
        now: Instant,
        limits: &OrderedLimits,
        from: SocketAddr,
        o: &OrderedMessage<'_>,
        deliver: &mut Vec<ReceivedMessage>,
    ) -> Result<Accepted, DropReason> {
        let (seq, floor) = (o.seq.0, o.floor.0);
        if seq == 0 || seq.checked_add(1).is_none_or(|max| floor > max) {
            return Err(DropReason::OrderedInvalid);
        }
        let target = o.message.target;
        let key = (from, String::from(target));
        if self.streams.get(&key).is_some_and(|s| s.epoch != o.epoch) {
            // The sender's old stream is over (it rebooted, or its session ended): what it
            // left held was acknowledged and will never be followed by more of that epoch.
            if let Some(old) = self.streams.remove(&key) {
                self.held_total -= old.held.len();
                release_all(from, target, old.held, deliver);
            }
        }
        if !self.streams.contains_key(&key) {
            if self.peer_streams(from) >= limits.max_streams_per_peer
                || self.streams.len() >= limits.max_streams
            {
                return Err(DropReason::TableFull);
            }
            // Everything below the floor is resolved: a new stream starts there.
            let stream = RecvStream {
                epoch: o.epoch,
                next: floor.max(1),
                held: BTreeMap::new(),
                last_active: now,
            };
            self.streams.insert(key.clone(), stream);
        }
        let held_by_peer = self.peer_held(from);
        let Some(s) = self.streams.get_mut(&key) else {
            return Err(DropReason::TableFull);
        };
        s.last_active = now;
        let before = s.held.len();
        s.apply_floor(from, target, floor, deliver);
        if o.is_announcement() {
            self.held_total -= before - s.held.len();
            return Ok(Accepted::Announcement);
        }
        let result = if seq < s.next || s.held.contains_key(&seq) {
            Ok(Accepted::Duplicate)
        } else if seq == s.next {
            deliver.push(received(from, target, o.message.name, o.message.payload));
            s.next += 1;
            s.release_consecutive(from, target, deliver);
            Ok(Accepted::Delivered)
        } else if seq - s.next > limits.max_gap {
            Err(DropReason::OrderedGap)
        } else if held_by_peer - (before - s.held.len()) >= limits.max_held_per_peer
            || self.held_total - (before - s.held.len()) >= limits.max_held
        {
            Err(DropReason::OrderedBufferFull)
        } else {
            let held = Held {
                name: o.message.name.into(),
                payload: Bytes::copy_from_slice(o.message.payload),
            };
            s.held.insert(seq, held);
            Ok(Accepted::Held)
        };
        // `held_total` follows what this packet released and added.
        self.held_total = self.held_total + s.held.len() - before;
        result
    }

    /// Moves every stream of the peer at `old` to `new` (a suite 3 session that roamed), so
    /// that its seqs continue there instead of starting a new stream. Streams already at
    /// `new` (another client's, now gone) are forgotten.
    pub(crate) fn move_peer(&mut self, old: SocketAddr, new: SocketAddr) {
        let keys: Vec<(SocketAddr, String)> = self
            .peer_range(old)
            .chain(self.peer_range(new))
            .map(|(k, _)| k.clone())
            .collect();
        let mut moved = Vec::new();
        for key in keys {
            if let Some(s) = self.streams.remove(&key) {
                if key.0 == old {
                    moved.push((key.1, s));
                } else {
                    self.held_total -= s.held.len();
                }
            }
        }
        for (target, s) in moved {
            self.streams.insert((new, target), s);
        }
    }

    /// When the next stream goes idle, if any does.
    pub(crate) fn next_expiry(&self, limits: &OrderedLimits) -> Option<Instant> {
        self.streams
            .values()
            .map(|s| s.last_active + limits.idle)
            .min()
    }

    /// Forgets the streams idle at `now`, delivering what they held in order.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        limits: &OrderedLimits,
        deliver: &mut Vec<ReceivedMessage>,
    ) {
        let idle: Vec<(SocketAddr, String)> = self
            .streams
            .iter()
            .filter(|(_, s)| s.last_active + limits.idle <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            if let Some(s) = self.streams.remove(&key) {
                self.held_total -= s.held.len();
                release_all(key.0, &key.1, s.held, deliver);
            }
        }
    }

    /// Messages held over all streams.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held_total
    }

    /// Streams open.
    #[cfg(test)]
    pub(crate) fn stream_count(&self) -> usize {
        self.streams.len()
    }

    fn peer_range(
        &self,
        from: SocketAddr,
    ) -> impl Iterator<Item = (&(SocketAddr, String), &RecvStream)> + '_ {
        self.streams
            .range((from, String::new())..)
            .take_while(move |((a, _), _)| *a == from)
    }

    fn peer_streams(&self, from: SocketAddr) -> usize {
        self.peer_range(from).count()
    }

    fn peer_held(&self, from: SocketAddr) -> usize {
        self.peer_range(from).map(|(_, s)| s.held.len()).sum()
    }
}

impl RecvStream {
    /// Everything below `floor` is resolved at the sender: deliver what is held below it in
    /// order, skip the gaps, and continue from there.
    fn apply_floor(
        &mut self,
        from: SocketAddr,
        target: &str,
        floor: u64,
        deliver: &mut Vec<ReceivedMessage>,
    ) {
        if floor <= self.next {
            return;
        }
        let above = self.held.split_off(&floor);
        let below = core::mem::replace(&mut self.held, above);
        release_all(from, target, below, deliver);
        self.next = floor;
        self.release_consecutive(from, target, deliver);
    }

    /// Delivers held messages from `next` on while there is no gap.
    fn release_consecutive(
        &mut self,
        from: SocketAddr,
        target: &str,
        deliver: &mut Vec<ReceivedMessage>,
    ) {
        while let Some(h) = self.held.remove(&self.next) {
            deliver.push(received(from, target, &h.name, &h.payload));
            self.next += 1;
        }
    }
}

/// Delivers every held message in seq order (their gaps are skipped).
fn release_all(
    from: SocketAddr,
    target: &str,
    held: BTreeMap<u64, Held>,
    deliver: &mut Vec<ReceivedMessage>,
) {
    for h in held.into_values() {
        deliver.push(received(from, target, &h.name, &h.payload));
    }
}

fn received(from: SocketAddr, target: &str, name: &str, payload: &[u8]) -> ReceivedMessage {
    ReceivedMessage::new(from, target, name, payload, true)
}
