//! Delayed acknowledgements, suite 3 only (`docs/PROTOCOL.md` §17.4).
//!
//! A batch whose sender set `MORE` says more data follows at once, so its ACK may wait and
//! ride with the ACKs of the next batches (one op 39 frame for many counters) instead of
//! costing a datagram of its own each. The rules this module keeps:
//! - An ACK waits at most `ack_delay = min(max_ack_delay, srtt / 4)` after the first held
//!   one of its peer (`max_ack_delay` before any RTT sample), and never longer than
//!   [`MAX_ACK_DELAY_CEILING`], which the sender adds to its retransmission timer of a batch
//!   it sent with `MORE`: so a held ACK never causes a spurious retransmission.
//! - At most `ack_eliciting_threshold` counters wait per peer: the one that reaches it sends
//!   them all at once.
//! - Anything sealed for the peer meanwhile carries them (the endpoint takes them as riders).
//! - Memory is bounded: at most [`MAX_PEERS`] peers hold ACKs; a new one beyond that sends
//!   the ACKs of the peer whose wait ends first.
//!
//! The endpoint holds an ACK with [`DelayedAcks::hold`], takes a peer's ACKs when it seals a
//! datagram to it ([`DelayedAcks::take`]), and sends what is due at its timer
//! ([`DelayedAcks::next_due`], [`DelayedAcks::take_due`]).

use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::id::Counter;
use crate::reliability::rtt::RttEstimator;
use crate::time::{Duration, Instant};

/// The longest any receiver may hold an ACK (`docs/PROTOCOL.md` §17.4): larger configured
/// delays are clamped to it, and a sender adds it to the retransmission timer of a batch it
/// sent with `MORE`. QUIC's default `max_ack_delay`.
pub(crate) const MAX_ACK_DELAY_CEILING: Duration = Duration::from_millis(25);

/// The most counters one peer's held ACKs may hold, whatever the threshold says: one op 39
/// frame's worth of ranges is far more, so a flush is one frame.
pub(crate) const MAX_HELD_PER_PEER: usize = 32;

/// The most peers with held ACKs at once.
pub(crate) const MAX_PEERS: usize = 64;

/// How long an ACK may wait for a peer whose RTT is `rtt`'s: `min(max_ack_delay, srtt / 4)`,
/// never above the ceiling.
pub(crate) fn ack_delay(max_ack_delay: Duration, rtt: &RttEstimator) -> Duration {
    let bound = max_ack_delay.min(MAX_ACK_DELAY_CEILING);
    rtt.smoothed().map_or(bound, |srtt| bound.min(srtt / 4))
}

/// The held ACKs of one peer.
#[derive(Debug)]
struct Held {
    to: SocketAddr,
    /// When the first of them must go.
    due: Instant,
    counters: Vec<Counter>,
}

/// Every peer's held ACKs.
#[derive(Debug, Default)]
pub(crate) struct DelayedAcks {
    held: Vec<Held>,
}

impl DelayedAcks {
    /// Holds the ACK of `counter` for `to`, to go by `now + delay` at the latest. Counters to
    /// send at once (the peer reached `threshold`, or the table was full and another peer's
    /// wait was cut short) are appended to `flush`. Returns whether the ACK was held.
    pub(crate) fn hold(
        &mut self,
        to: SocketAddr,
        counter: Counter,
        now: Instant,
        delay: Duration,
        threshold: usize,
        flush: &mut Vec<(SocketAddr, Counter)>,
    ) -> bool {
        let threshold = threshold.clamp(1, MAX_HELD_PER_PEER);
        let i = match self.held.iter().position(|h| h.to == to) {
            Some(i) => i,
            None => {
                if self.held.len() >= MAX_PEERS {
                    // Full: the wait that ends first ends now.
                    if let Some(first) = (0..self.held.len()).min_by_key(|&j| self.held[j].due) {
                        let h = self.held.swap_remove(first);
                        flush.extend(h.counters.into_iter().map(|c| (h.to, c)));
                    }
                }
                self.held.push(Held {
                    to,
                    due: now + delay,
                    counters: Vec::new(),
                });
                self.held.len() - 1
            }
        };
        let h = &mut self.held[i];
        if !h.counters.contains(&counter) {
            h.counters.push(counter);
        }
        if h.counters.len() >= threshold {
            let h = self.held.swap_remove(i);
            flush.extend(h.counters.into_iter().map(|c| (h.to, c)));
            return false;
        }
        true
    }

    /// Takes every ACK held for `to` (a datagram to it is being sealed: they ride along).
    pub(crate) fn take(&mut self, to: SocketAddr) -> Option<Vec<Counter>> {
        let i = self.held.iter().position(|h| h.to == to)?;
        Some(self.held.swap_remove(i).counters)
    }

    /// Whether ACKs are held for `to`.
    pub(crate) fn holds(&self, to: SocketAddr) -> bool {
        self.held.iter().any(|h| h.to == to)
    }

    /// When the first held ACK must go.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.due).min()
    }

    /// Appends to `flush` the ACKs whose wait ended at `now`, in the order they were held.
    pub(crate) fn take_due(&mut self, now: Instant, flush: &mut Vec<(SocketAddr, Counter)>) {
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].due <= now {
                let h = self.held.remove(i);
                flush.extend(h.counters.into_iter().map(|c| (h.to, c)));
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reliability::rtt::RttConfig;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn the_threshold_sends_every_held_ack_at_once() {
        let mut d = DelayedAcks::default();
        let mut flush = Vec::new();
        let t0 = Instant::ZERO;
        let delay = Duration::from_millis(2);
        for c in 1..4 {
            assert!(d.hold(addr(1), Counter(c), t0, delay, 4, &mut flush));
        }
        assert!(flush.is_empty());
        assert_eq!(d.next_due(), Some(t0 + delay));
        assert!(!d.hold(addr(1), Counter(4), t0, delay, 4, &mut flush));
        assert_eq!(flush.len(), 4);
        assert!(d.held.is_empty());
    }

    #[test]
    fn the_wait_is_counted_from_the_first_held_ack() {
        let mut d = DelayedAcks::default();
        let mut flush = Vec::new();
        let t0 = Instant::ZERO;
        let delay = Duration::from_millis(2);
        d.hold(addr(1), Counter(1), t0, delay, 8, &mut flush);
        d.hold(addr(1), Counter(2), t0 + delay / 2, delay, 8, &mut flush);
        d.take_due(t0 + (delay - Duration::from_micros(1)), &mut flush);
        assert!(flush.is_empty());
        d.take_due(t0 + delay, &mut flush);
        assert_eq!(flush, [(addr(1), Counter(1)), (addr(1), Counter(2))]);
    }

    #[test]
    fn the_table_is_bounded_in_peers_and_counters() {
        let mut d = DelayedAcks::default();
        let mut flush = Vec::new();
        let t0 = Instant::ZERO;
        for p in 0..(MAX_PEERS as u16 + 10) {
            let at = Instant::from_micros(u64::from(p));
            d.hold(
                addr(p),
                Counter(1),
                at,
                Duration::from_millis(1),
                8,
                &mut flush,
            );
        }
        assert_eq!(d.held.len(), MAX_PEERS);
        assert_eq!(flush.len(), 10, "the earliest waits were cut short");
        assert_eq!(flush[0].0, addr(0));
        flush.clear();
        let mut d = DelayedAcks::default();
        for c in 0..100 {
            d.hold(
                addr(1),
                Counter(c),
                t0,
                Duration::from_millis(1),
                1000,
                &mut flush,
            );
        }
        assert!(d.held.iter().all(|h| h.counters.len() < MAX_HELD_PER_PEER));
    }

    #[test]
    fn the_delay_is_a_quarter_rtt_under_the_configured_bound_and_the_ceiling() {
        let mut rtt = RttEstimator::new(RttConfig::default());
        let ms = Duration::from_millis;
        assert_eq!(ack_delay(ms(2), &rtt), ms(2), "before any sample");
        assert_eq!(ack_delay(ms(100), &rtt), MAX_ACK_DELAY_CEILING);
        rtt.on_sample(ms(4));
        assert_eq!(ack_delay(ms(2), &rtt), ms(1));
    }
}
