//! The sender's side of segmented messages: one [`Transfer`] per plaintext too large for a
//! datagram, fed lazily into its peer's outbox as ordinary reliable exchanges.
//!
//! A transfer holds the whole plaintext (shared `Bytes`; a segment is a slice of it, never a
//! copy) and keeps at most a window of its segments in the outbox at once, so that a 64 MiB
//! message costs one outbox slot per segment in flight, not one per segment. Each segment is
//! an internal exchange (no outcome event of its own) with the transfer's deadline; the outbox
//! gives it a counter kept across retransmissions and re-handshakes, RTT-based retries, the
//! in-flight window, the counter floor and, for multicast, the set of expected receivers. The
//! transfer counts completed segments and, per receiver, how many each acknowledged, so that
//! its outcome names who got the message whole.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use bytes::Bytes;

use crate::id::Counter;
use crate::reliability::{InFlight, Outbox, Payload, SegmentPayload};
use crate::time::Instant;
use crate::wire::segment::TransferId;

/// What a transfer carries, which decides its outcome events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An application message (op 1): `Progress`, then `Delivered`, `Failed` or `TimedOut`.
    Message,
    /// A client's call (op 4): its segment at offset 0 stands for the call, and is answered by
    /// the response (op 5) quoting its counter; outcome events are the call's.
    Call,
    /// A server's answer to a call (op 5): no event; the call named is the one answered.
    Answer(Counter),
}

/// One segmented plaintext on its way to `to`.
#[derive(Debug)]
pub(crate) struct Transfer {
    /// The command id (message or call id) its events carry.
    pub(crate) id: u64,
    pub(crate) wire: TransferId,
    pub(crate) kind: Kind,
    /// The peer it goes to (the client's configured server address for a client).
    pub(crate) to: SocketAddr,
    /// A message's target, from which a multicast client learns the expected receivers.
    pub(crate) target: Option<String>,
    plaintext: Bytes,
    segment_len: usize,
    /// Where the next segment pushed into the outbox starts.
    next_offset: usize,
    /// Segments in the outbox, not yet complete.
    outstanding: usize,
    /// How many segments the plaintext makes.
    segments: u32,
    /// Segments complete (acknowledged by every expected receiver).
    done: u32,
    acked_bytes: u64,
    /// The `acked_bytes` last reported in a `Progress` event.
    reported: u64,
    pub(crate) deadline: Instant,
    /// The receivers every segment must be acknowledged by, fixed when the first segment is
    /// first sent (empty: any one receiver).
    pub(crate) expected: Option<Vec<SocketAddr>>,
    /// Per receiver, how many segments it acknowledged.
    per_receiver: Vec<(SocketAddr, u32)>,
}

impl Transfer {
    /// A transfer of `plaintext` in segments of `segment_len` bytes (at least 1).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        wire: TransferId,
        kind: Kind,
        to: SocketAddr,
        target: Option<String>,
        plaintext: Bytes,
        segment_len: usize,
        deadline: Instant,
    ) -> Self {
        let segment_len = segment_len.max(1);
        let segments = plaintext.len().div_ceil(segment_len);
        Transfer {
            id,
            wire,
            kind,
            to,
            target,
            segments: u32::try_from(segments).unwrap_or(u32::MAX),
            plaintext,
            segment_len,
            next_offset: 0,
            outstanding: 0,
            done: 0,
            acked_bytes: 0,
            reported: 0,
            deadline,
            expected: None,
            per_receiver: Vec::new(),
        }
    }

    /// Bytes of the whole plaintext.
    pub(crate) fn total(&self) -> u64 {
        self.plaintext.len() as u64
    }

    /// Receivers that acknowledged every segment: the expected ones that did, or with none
    /// expected, whoever did (any one receiver completes each segment then).
    fn whole(&self) -> Vec<SocketAddr> {
        self.per_receiver
            .iter()
            .filter(|(_, n)| *n >= self.segments)
            .map(|(a, _)| *a)
            .collect()
    }

    fn count_acks(&mut self, acked: &[SocketAddr]) {
        for a in acked {
            match self.per_receiver.iter_mut().find(|(r, _)| r == a) {
                Some((_, n)) => *n += 1,
                None => self.per_receiver.push((*a, 1)),
            }
        }
    }

    /// The outcome at the end: who has it whole, and who was expected but has not.
    fn outcome(&self) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let acked = self.whole();
        let missing = self
            .expected
            .iter()
            .flatten()
            .filter(|a| !acked.contains(a))
            .copied()
            .collect();
        (acked, missing)
    }
}

/// How a transfer ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Every segment of a message or an answer was acknowledged. `progress` is the final
    /// `(acked, total)` if it was not reported yet (the last ACKs came in one datagram).
    Complete {
        id: u64,
        kind: Kind,
        acked: Vec<SocketAddr>,
        missing: Vec<SocketAddr>,
        progress: Option<(u64, u64)>,
    },
    /// Its deadline passed: `acked` got it whole, `missing` were expected and did not.
    Expired {
        id: u64,
        kind: Kind,
        acked: Vec<SocketAddr>,
        missing: Vec<SocketAddr>,
    },
}

/// A role's transfers, in the order they were started.
#[derive(Debug, Default)]
pub(crate) struct Transfers {
    list: Vec<Transfer>,
}

impl Transfers {
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn start(&mut self, t: Transfer) {
        self.list.push(t);
    }

    pub(crate) fn get(&self, wire: TransferId) -> Option<&Transfer> {
        self.list.iter().find(|t| t.wire == wire)
    }

    pub(crate) fn get_mut(&mut self, wire: TransferId) -> Option<&mut Transfer> {
        self.list.iter_mut().find(|t| t.wire == wire)
    }

    /// Removes and returns a transfer (refused, failed or answered).
    pub(crate) fn remove(&mut self, wire: TransferId) -> Option<Transfer> {
        let i = self.list.iter().position(|t| t.wire == wire)?;
        Some(self.list.remove(i))
    }

    /// Where the transfers go.
    pub(crate) fn destinations(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.list.iter().map(|t| t.to)
    }

    /// The earliest deadline of any transfer.
    pub(crate) fn earliest_deadline(&self) -> Option<Instant> {
        self.list.iter().map(|t| t.deadline).min()
    }

    /// Pushes more segments of the transfers to `to` into `outbox`, each transfer keeping at
    /// most `window` segments there. Ids come from `next_id`, which must stay above every id
    /// already in the outbox. Stops when the outbox is full.
    pub(crate) fn top_up(
        &mut self,
        to: Option<SocketAddr>,
        outbox: &mut Outbox,
        next_id: &mut u64,
        window: usize,
    ) {
        for t in self
            .list
            .iter_mut()
            .filter(|t| to.is_none_or(|a| a == t.to))
        {
            while t.outstanding < window && t.next_offset < t.plaintext.len() {
                let end = (t.next_offset + t.segment_len).min(t.plaintext.len());
                let segment = SegmentPayload {
                    transfer: t.wire,
                    total: u32::try_from(t.plaintext.len()).unwrap_or(u32::MAX),
                    offset: u32::try_from(t.next_offset).unwrap_or(u32::MAX),
                    data: t.plaintext.slice(t.next_offset..end),
                    call: t.kind == Kind::Call && t.next_offset == 0,
                };
                if outbox
                    .push(*next_id, Payload::Segment(segment), true, t.deadline)
                    .is_err()
                {
                    return;
                }
                *next_id += 1;
                t.outstanding += 1;
                t.next_offset = end;
            }
        }
    }

    /// A segment `e` is complete: counts it, and ends its transfer if it was the last.
    pub(crate) fn on_complete(&mut self, e: &InFlight) -> Option<End> {
        let Payload::Segment(seg) = &e.payload else {
            return None;
        };
        let t = self.get_mut(seg.transfer)?;
        t.outstanding = t.outstanding.saturating_sub(1);
        t.done = t.done.saturating_add(1);
        t.acked_bytes += seg.data.len() as u64;
        t.count_acks(&e.acked);
        // A call's offset-0 segment is completed by the answer, which ends the transfer.
        let needed = match t.kind {
            Kind::Call => t.segments.saturating_sub(1),
            _ => t.segments,
        };
        if t.done < needed || t.kind == Kind::Call {
            return None;
        }
        let t = self.remove(seg.transfer)?;
        let (acked, missing) = t.outcome();
        let progress = (t.acked_bytes > t.reported).then(|| (t.acked_bytes, t.total()));
        Some(End::Complete {
            id: t.id,
            kind: t.kind,
            acked,
            missing,
            progress,
        })
    }

    /// A segment reached its deadline: the transfer ends with it. `rest` are its other
    /// segments, removed from the outbox by the caller; receivers count as having the message
    /// whole only if they acknowledged every segment.
    pub(crate) fn on_expired(&mut self, wire: TransferId, rest: &[InFlight]) -> Option<End> {
        let mut t = self.remove(wire)?;
        for e in rest {
            // Partly acknowledged segments count for who did acknowledge them.
            t.count_acks(&e.acked);
        }
        let (acked, missing) = t.outcome();
        Some(End::Expired {
            id: t.id,
            kind: t.kind,
            acked,
            missing,
        })
    }

    /// The transfers past their deadline (their segments may be gone with a session).
    pub(crate) fn past_deadline(&self, now: Instant) -> Vec<TransferId> {
        self.list
            .iter()
            .filter(|t| t.deadline <= now)
            .map(|t| t.wire)
            .collect()
    }

    /// Every transfer for which `pick` holds.
    /// How many transfers go to `to`; no allocation, since the server asks on every ACK.
    pub(crate) fn count_to(&self, to: SocketAddr) -> usize {
        self.list.iter().filter(|t| t.to == to).count()
    }

    pub(crate) fn ids_where(&self, pick: impl Fn(&Transfer) -> bool) -> Vec<TransferId> {
        self.list
            .iter()
            .filter(|t| pick(t))
            .map(|t| t.wire)
            .collect()
    }

    /// `(id, acked, total)` of each message transfer whose acknowledged bytes advanced since
    /// the last call.
    pub(crate) fn take_progress(&mut self) -> Vec<(u64, u64, u64)> {
        let mut out = Vec::new();
        for t in self.list.iter_mut().filter(|t| t.kind == Kind::Message) {
            if t.acked_bytes > t.reported {
                t.reported = t.acked_bytes;
                out.push((t.id, t.acked_bytes, t.total()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reliability::rtt::{RttConfig, RttEstimator};
    use crate::reliability::{Due, Reply};
    use crate::time::Duration;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn a_transfer_feeds_a_window_of_segments_and_completes_with_the_last() {
        let mut rtt = RttEstimator::new(RttConfig::default());
        let mut outbox = Outbox::new(16, 16);
        let mut ts = Transfers::default();
        let t0 = Instant::ZERO;
        let data = Bytes::from((0..=255u8).cycle().take(1000).collect::<Vec<u8>>());
        let deadline = t0 + Duration::from_secs(5);
        let t = Transfer::new(
            7,
            TransferId(9),
            Kind::Message,
            addr(1),
            None,
            data,
            300,
            deadline,
        );
        ts.start(t);
        let mut next_id = 1;
        ts.top_up(None, &mut outbox, &mut next_id, 2);
        assert_eq!(outbox.len(), 2, "a window of two");
        let mut counter = 100;
        let mut ends = Vec::new();
        for _ in 0..10 {
            let mut due = Vec::new();
            outbox.poll_due(t0, true, usize::MAX, &mut due);
            for d in due {
                if let Due::Transmit(id) = d {
                    outbox.on_first_transmit(id, Counter(counter), Vec::new(), t0, &rtt);
                    counter += 1;
                }
            }
            while let Some(c) = outbox.oldest_counter() {
                if let Reply::Complete(e) = outbox.on_reply(
                    c,
                    false,
                    addr(1),
                    t0,
                    &mut rtt,
                    &mut crate::reliability::histogram::RttHistogram::default(),
                ) {
                    ends.extend(ts.on_complete(&e));
                }
            }
            ts.top_up(None, &mut outbox, &mut next_id, 2);
        }
        assert_eq!(next_id, 5, "1000 bytes in 300-byte segments: four");
        assert_eq!(ts.take_progress(), Vec::new(), "the transfer is gone");
        match ends.as_slice() {
            [End::Complete { id: 7, acked, .. }] => assert_eq!(acked, &[addr(1)]),
            other => panic!("{other:?}"),
        }
    }
}
