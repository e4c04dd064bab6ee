//! Coalescing at datagram build time, suite 3 unicast only (`docs/PROTOCOL.md` §17): what the
//! roles share. When a role seals a datagram for a peer, the ACKs and unreliable messages
//! queued for the same peer ride along in one op 38 batch, and several ACKs become one op 39
//! frame. A datagram that would carry a single frame is sealed exactly as before.
//!
//! The run of reliable messages sharing a counter is built when they are first sent
//! (`features::batch::Run`); this module only packs a datagram.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::{Outgoing, Stats};
use crate::features::ack_delay::DelayedAcks;
use crate::id::Counter;
use crate::reliability::OwnedMessage;
use crate::session::{self, TxKey};
use crate::time::{Duration, Instant};
use crate::wire::batch::{self, Acks, Frame, MAX_RANGES};
use crate::wire::{self, App, StatusBytes};

/// How far into the transmit queue the encoder looks for riders: far enough for a burst of
/// ACKs, near enough that sealing stays cheap with many peers queued.
const SCAN: usize = 256;

/// The plaintext one datagram may carry.
const DATAGRAM_BUDGET: usize = wire::MAX_DATAGRAM - wire::SESSION_OVERHEAD;

/// What rides with a datagram: ACKs owed and unreliable messages, taken from the queue.
#[derive(Debug, Default)]
pub(super) struct Riders {
    acks: Vec<Counter>,
    unreliable: Vec<OwnedMessage>,
}

/// Whether an item of the transmit queue may ride in a datagram to `to`.
fn rides(out: &Outgoing, to: SocketAddr) -> bool {
    matches!(out, Outgoing::Ack { to: t, .. } | Outgoing::Unreliable { to: t, .. } if *t == to)
}

/// Whether something queued for `to` could ride with a datagram to it, and whether more
/// reliable data for `to` is queued (the batch's `MORE` flag).
pub(super) fn peek(tx: &VecDeque<Outgoing>, to: SocketAddr) -> (bool, bool) {
    let window = tx.iter().take(SCAN);
    let mut riders = false;
    let mut more = false;
    for out in window {
        riders |= rides(out, to);
        more |= matches!(out, Outgoing::Reliable { to: t, .. } if *t == to);
    }
    (riders, more)
}

/// Takes the riders for a datagram to `to` out of the queue's first [`SCAN`] items: every
/// ACK, and the unreliable messages that fit in `room` bytes and `frames` frames.
pub(super) fn take_riders(
    tx: &mut VecDeque<Outgoing>,
    to: SocketAddr,
    mut room: usize,
    mut frames: usize,
) -> Riders {
    let mut riders = Riders::default();
    let mut seen = 0;
    tx.retain_mut(|out| {
        seen += 1;
        if seen > SCAN || !rides(out, to) {
            return true;
        }
        match out {
            Outgoing::Ack { counter, .. } => {
                riders.acks.push(*counter);
                false
            }
            Outgoing::Unreliable { message, .. } => {
                let len = batch::FRAME_HEADER + message.app_len();
                if frames == 0 || len > room {
                    return true;
                }
                room -= len;
                frames -= 1;
                riders.unreliable.push(core::mem::replace(message, empty()));
                false
            }
            _ => true,
        }
    });
    riders
}

impl Riders {
    /// Adds the ACK that leads the datagram, if one does.
    pub(super) fn push_ack(&mut self, c: Option<Counter>) {
        self.acks.extend(c);
    }

    /// Adds the ACKs held for the peer (`features::ack_delay`): any datagram to it carries
    /// them.
    pub(super) fn push_held(&mut self, held: Option<Vec<Counter>>) {
        self.acks.extend(held.into_iter().flatten());
    }
}

fn empty() -> OwnedMessage {
    OwnedMessage::new("", "", &[])
}

/// The plaintext room left for riders after a lead of `lead_len` frame bytes in `lead_frames`
/// frames: one datagram, less the batch header and room for the ACK frame.
pub(super) fn room_after(lead_len: usize, lead_frames: usize) -> (usize, usize) {
    let used = batch::BATCH_HEADER
        + lead_len
        + lead_frames * batch::FRAME_HEADER
        + batch::FRAME_HEADER
        + batch::MAX_ACKS_LEN;
    (
        DATAGRAM_BUDGET.saturating_sub(used),
        batch::MAX_FRAMES.saturating_sub(lead_frames + 1),
    )
}

/// Seals one datagram: the ACKs owed (one op 2, or op 39 for several), then the `lead`
/// frames, then the unreliable riders. ACKs that do not fit one op 39 frame go back to the
/// front of the queue, for the next datagram.
#[allow(clippy::too_many_arguments)]
pub(super) fn seal(
    key: &TxKey,
    counter: Counter,
    more: bool,
    lead: &[App<'_>],
    mut riders: Riders,
    status: Option<StatusBytes>,
    queue: &mut VecDeque<Outgoing>,
    to: SocketAddr,
    stats: &mut Stats,
    buf: &mut [u8],
) -> Result<usize, wire::Error> {
    let mut frames: Vec<Frame<'_>> = Vec::with_capacity(2 + lead.len() + riders.unreliable.len());
    let acks = &mut riders.acks;
    // Newest first; `util::sort` rather than `sort_unstable` for code size (issue 20).
    crate::util::sort(acks);
    acks.reverse();
    acks.dedup();
    match acks.as_slice() {
        [] => {}
        [one] => frames.push(Frame::App(App::Ack {
            counter: *one,
            status,
        })),
        _ => {
            if let Some((ranges, taken)) = Acks::from_descending(acks.iter().copied()) {
                frames.push(Frame::Acks(ranges));
                stats.ack_ranges_sent += 1;
                for &c in acks[taken..].iter().rev() {
                    queue.push_front(Outgoing::Ack { to, counter: c });
                }
            }
        }
    }
    frames.extend(lead.iter().map(|a| Frame::App(*a)));
    frames.extend(
        riders
            .unreliable
            .iter()
            .map(|m| Frame::App(m.as_app(false))),
    );
    if frames.len() > 1 {
        stats.batches_sent += 1;
        stats.frames_batched += frames.len() as u64;
    }
    session::seal_frames(key, counter, more, &frames, buf)
}

/// Whether a suite 3 plaintext is one of this module's opcodes (38 or 39), which only a
/// suite 3 session parses; elsewhere they stay unknown opcodes.
pub(super) fn is_batch_opcode(plain: &[u8]) -> bool {
    matches!(plain.first(), Some(&batch::BATCH | &batch::ACKS))
}

/// The frames of a batch, each a plaintext the role dispatches as if it had come alone, and
/// its `MORE` flag; or the error that drops the batch whole (parsed first, so a bad batch has
/// no effect).
pub(super) fn frames(
    plain: &[u8],
) -> Result<(bool, impl Iterator<Item = &[u8]> + '_), wire::Error> {
    let more = batch::Batch::parse(plain)?.more;
    Ok((more, batch::frame_plaintexts(plain)))
}

/// How a role holds the ACK of a batch (`features::ack_delay`).
pub(super) struct Hold<'a> {
    /// The role's held ACKs.
    pub(super) delayed: &'a mut DelayedAcks,
    /// How long this peer's ACK may wait; zero sends it at once.
    pub(super) delay: Duration,
    /// `Limits::ack_eliciting_threshold`.
    pub(super) threshold: usize,
}

/// After the frames of a batch that `to` sent under `counter` with `MORE` were handled: the
/// ACK they queued (at `queued` or after) is held rather than sent at once, and whatever
/// the hold pushes out (a threshold reached, a full table) is queued instead.
pub(super) fn hold_ack(
    hold: Hold<'_>,
    tx: &mut VecDeque<Outgoing>,
    queued: usize,
    to: SocketAddr,
    counter: Counter,
    now: Instant,
    stats: &mut Stats,
) {
    if hold.delay.is_zero() {
        return;
    }
    let at = tx.iter().skip(queued).position(
        |out| matches!(out, Outgoing::Ack { to: t, counter: c } if *t == to && *c == counter),
    );
    let Some(at) = at.map(|i| i + queued) else {
        return;
    };
    tx.remove(at);
    let mut flush = Vec::new();
    if hold
        .delayed
        .hold(to, counter, now, hold.delay, hold.threshold, &mut flush)
    {
        stats.acks_delayed += 1;
    }
    tx.extend(
        flush
            .into_iter()
            .map(|(to, counter)| Outgoing::Ack { to, counter }),
    );
}

/// Queues the held ACKs whose wait ended at `now`: the role's pump runs this first.
pub(super) fn flush_due_acks(delayed: &mut DelayedAcks, now: Instant, tx: &mut VecDeque<Outgoing>) {
    if delayed.next_due().is_none_or(|t| t > now) {
        return;
    }
    let mut flush = Vec::new();
    delayed.take_due(now, &mut flush);
    tx.extend(
        flush
            .into_iter()
            .map(|(to, counter)| Outgoing::Ack { to, counter }),
    );
}

/// Whether a (duplicate) batch carries a reliable frame, so that it must be acknowledged
/// again.
pub(super) fn needs_ack(plain: &[u8]) -> bool {
    batch::Batch::parse(plain).is_ok_and(|b| {
        b.frames()
            .any(|f| matches!(f, Frame::App(App::ReliableMessage(_))))
    })
}

/// The counters an op 39 frame acknowledges, lowest first, at most the replay window's width
/// below its largest: no exchange of ours in flight is older, so a peer cannot make us walk
/// millions of counters.
///
/// Lowest first because the outbox is oldest first: each run acknowledged is then usually at
/// its front, where removing it moves nothing. Highest first, every run was taken from behind
/// the older ones still in flight, shifting them (issue 19's pipelined profile: the client's
/// largest cost outside the cipher). The ranges come highest first on the wire; they are
/// copied (at most [`MAX_RANGES`], no allocation) to be walked the other way.
pub(super) fn acked_counters(acks: &Acks) -> impl Iterator<Item = Counter> {
    let floor = acks.ranges().next().map_or(0, |r| {
        r.high.0.saturating_sub(crate::session::replay::WINDOW)
    });
    let mut ranges = [(0u64, 0u64); MAX_RANGES];
    let mut n = 0;
    for (slot, r) in ranges
        .iter_mut()
        .zip(acks.ranges().take_while(|r| r.high.0 >= floor))
    {
        *slot = (r.low.0.max(floor), r.high.0);
        n += 1;
    }
    (0..n)
        .rev()
        .flat_map(move |i| (ranges[i].0..=ranges[i].1).map(Counter))
}

/// Queues `Ack { to, counter }` unless it is the last thing queued: every reliable frame of a
/// suite 3 batch asks for the same ACK, and an `Outgoing` is some 200 bytes to copy in and
/// out (issue 19). Copies that something else separates are left to [`dedup_acks`].
pub(super) fn queue_ack(tx: &mut VecDeque<Outgoing>, to: SocketAddr, counter: Counter) {
    let queued =
        matches!(tx.back(), Some(Outgoing::Ack { to: t, counter: c }) if *t == to && *c == counter);
    if !queued {
        tx.push_back(Outgoing::Ack { to, counter });
    }
}

/// Removes the copies of `Ack { to, counter }` that handling the frames of one batch queued
/// after position `from`: every reliable frame asks for the same ACK.
pub(super) fn dedup_acks(tx: &mut VecDeque<Outgoing>, from: usize, to: SocketAddr, c: Counter) {
    let mut seen = false;
    let mut i = 0;
    tx.retain(|out| {
        i += 1;
        if i <= from {
            return true;
        }
        match out {
            Outgoing::Ack { to: t, counter } if *t == to && *counter == c => {
                !core::mem::replace(&mut seen, true)
            }
            _ => true,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::{acked_counters, queue_ack, Outgoing};
    use crate::id::Counter;
    use crate::session::replay::WINDOW;
    use crate::wire::batch::Acks;
    use alloc::vec::Vec;

    /// An ACK already last in the queue is not queued again; the same ACK behind something
    /// else, or an ACK of another counter or peer, is.
    #[test]
    fn an_ack_is_queued_once_when_it_is_already_last() {
        let (a, b) = (
            core::net::SocketAddr::from(([10, 0, 0, 1], 1)),
            core::net::SocketAddr::from(([10, 0, 0, 2], 1)),
        );
        let mut tx = alloc::collections::VecDeque::new();
        queue_ack(&mut tx, a, Counter(7));
        queue_ack(&mut tx, a, Counter(7));
        assert_eq!(tx.len(), 1, "the frames of one batch share one ACK");
        queue_ack(&mut tx, b, Counter(7));
        queue_ack(&mut tx, a, Counter(8));
        assert_eq!(tx.len(), 3, "another peer or counter is another ACK");
        tx.push_back(Outgoing::AckRanges { to: a });
        queue_ack(&mut tx, a, Counter(8));
        assert_eq!(
            tx.len(),
            5,
            "a copy behind something else is left to dedup_acks"
        );
    }

    quickcheck::quickcheck! {
        /// Whatever ranges an op 39 frame names, its counters come lowest first, each once:
        /// exactly those of its ranges within the replay window below its largest.
        fn op_39_counters_come_lowest_first_within_the_window(steps: Vec<(u16, bool)>) -> bool {
            // Descending counters from a high start, with gaps (some wider than the window).
            let mut c = 1u64 << 20;
            let mut named = Vec::new();
            for (step, wide) in steps {
                let gap = if wide { u64::from(step) * 4 } else { u64::from(step % 3) };
                let Some(next) = c.checked_sub(gap + 1) else { break };
                c = next;
                named.push(Counter(c));
            }
            let Some((acks, taken)) = Acks::from_descending(named.iter().copied()) else {
                return named.is_empty();
            };
            let floor = named[0].0.saturating_sub(WINDOW);
            let mut expected: Vec<Counter> =
                named[..taken].iter().copied().filter(|c| c.0 >= floor).collect();
            expected.reverse();
            acked_counters(&acks).collect::<Vec<_>>() == expected
        }
    }
}
