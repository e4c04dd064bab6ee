//! Reliability: RTT estimation, and the table of reliable messages awaiting an ACK.
//!
//! A reliable message keeps the counter of its first transmission for every retransmission, so
//! the receiver's replay window de-duplicates it and re-acknowledges a copy whose ACK was lost.
//! That is what makes delivery exactly-once within a session. Timers follow RFC 6298 (see
//! [`rtt`]); the caller's deadline always wins over the retry schedule.

pub mod rtt;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;

use crate::id::{Counter, MessageId};
use crate::time::Instant;
use crate::wire::{App, Message};

use rtt::RttEstimator;

/// An application message held by the endpoint until it is sent (and, if reliable, acknowledged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OwnedMessage {
    pub(crate) target: String,
    pub(crate) name: String,
    pub(crate) payload: Bytes,
}

impl OwnedMessage {
    pub(crate) fn as_app(&self, reliable: bool) -> App<'_> {
        let m = Message {
            target: &self.target,
            name: &self.name,
            payload: &self.payload,
        };
        if reliable {
            App::ReliableMessage(m)
        } else {
            App::UnreliableMessage(m)
        }
    }
}

/// One reliable message in the outbox.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) id: MessageId,
    pub(crate) message: OwnedMessage,
    /// Assigned at the first transmission and kept for every retransmission; `None` while the
    /// message waits for a session.
    pub(crate) counter: Option<Counter>,
    /// When the first transmission left; RTT samples are taken against it (Karn's rule: only
    /// while `retransmissions == 0`).
    pub(crate) first_sent: Option<Instant>,
    pub(crate) retransmissions: u32,
    /// When to retransmit next; `None` until the first transmission.
    pub(crate) next_retry: Option<Instant>,
    /// The caller's deadline: past it the message times out, whatever the retry schedule says.
    pub(crate) deadline: Instant,
}

/// What a timer pass over the outbox decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Send (again) the message with this id.
    Transmit(MessageId),
    /// The deadline passed without an ACK.
    TimedOut(MessageId),
}

/// The reliable messages of one sender, oldest first.
///
/// # Invariants
/// - Entries are in id order, which is also send order, so the oldest counter is found first.
/// - At most `max_in_flight` entries have a counter; the rest wait in order for a slot.
/// - The total is bounded by `capacity`; `push` refuses more.
#[derive(Debug)]
pub(crate) struct Outbox {
    entries: VecDeque<InFlight>,
    capacity: usize,
    max_in_flight: usize,
}

impl Outbox {
    pub(crate) fn new(capacity: usize, max_in_flight: usize) -> Self {
        Outbox {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// Queues a message; it goes out when a session exists and an in-flight slot is free.
    pub(crate) fn push(
        &mut self,
        id: MessageId,
        message: OwnedMessage,
        deadline: Instant,
    ) -> Result<(), OwnedMessage> {
        if self.entries.len() >= self.capacity {
            return Err(message);
        }
        self.entries.push_back(InFlight {
            id,
            message,
            counter: None,
            first_sent: None,
            retransmissions: 0,
            next_retry: None,
            deadline,
        });
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, id: MessageId) -> Option<&InFlight> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The lowest counter still awaiting an ACK. A new session must accept it, so the client
    /// announces a handshake floor just below it (wire notes §10, bug 9).
    pub(crate) fn oldest_counter(&self) -> Option<Counter> {
        self.entries.iter().filter_map(|e| e.counter).min()
    }

    /// Records the first transmission of `id` under `counter`, and arms its retry timer.
    pub(crate) fn on_first_transmit(
        &mut self,
        id: MessageId,
        counter: Counter,
        now: Instant,
        rtt: &RttEstimator,
    ) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.counter = Some(counter);
            e.first_sent = Some(now);
            e.next_retry = Some((now + rtt.backoff(0)).min(e.deadline));
        }
    }

    /// Records a retransmission of `id` and backs its timer off.
    pub(crate) fn on_retransmit(&mut self, id: MessageId, now: Instant, rtt: &RttEstimator) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.retransmissions = e.retransmissions.saturating_add(1);
            e.next_retry = Some((now + rtt.backoff(e.retransmissions)).min(e.deadline));
        }
    }

    /// Removes the message sent under `counter`, feeding an RTT sample if it was never
    /// retransmitted. Returns its id, or `None` for an unknown or repeated ACK.
    pub(crate) fn on_ack(
        &mut self,
        counter: Counter,
        now: Instant,
        rtt: &mut RttEstimator,
    ) -> Option<MessageId> {
        let pos = self
            .entries
            .iter()
            .position(|e| e.counter == Some(counter))?;
        let e = self.entries.remove(pos)?;
        if e.retransmissions == 0 {
            if let Some(sent) = e.first_sent {
                rtt.on_sample(now - sent);
            }
        }
        Some(e.id)
    }

    /// Removes every entry, in order (used when the peer goes away for good).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = InFlight> + '_ {
        self.entries.drain(..)
    }

    /// Decides, at `now`, which messages time out and which are (re)sent.
    ///
    /// `can_send` says whether a session exists: without one, nothing is sent but deadlines
    /// still apply. Timed-out entries are removed before this returns.
    pub(crate) fn poll_due(&mut self, now: Instant, can_send: bool, out: &mut Vec<Due>) {
        let mut in_flight = 0;
        let mut i = 0;
        while i < self.entries.len() {
            let e = &self.entries[i];
            if e.deadline <= now {
                out.push(Due::TimedOut(e.id));
                self.entries.remove(i);
                continue;
            }
            if e.counter.is_some() {
                in_flight += 1;
                if can_send && e.next_retry.is_some_and(|t| t <= now) {
                    out.push(Due::Transmit(e.id));
                }
            } else if can_send && in_flight < self.max_in_flight {
                in_flight += 1;
                out.push(Due::Transmit(e.id));
            }
            i += 1;
        }
    }

    /// The earliest instant at which `poll_due` has work: a retry or a deadline.
    ///
    /// With `can_send`, a message waiting for a free slot is due at once if a slot is free.
    pub(crate) fn next_timeout(&self, can_send: bool) -> Option<Instant> {
        let mut in_flight = 0;
        let mut earliest: Option<Instant> = None;
        for e in &self.entries {
            let mut t = e.deadline;
            if e.counter.is_some() {
                in_flight += 1;
                if let Some(r) = e.next_retry {
                    t = t.min(r);
                }
            } else if can_send && in_flight < self.max_in_flight {
                in_flight += 1;
                t = Instant::ZERO;
            }
            earliest = Some(earliest.map_or(t, |x| x.min(t)));
        }
        earliest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;
    use rtt::RttConfig;

    fn msg() -> OwnedMessage {
        OwnedMessage {
            target: "t".into(),
            name: "n".into(),
            payload: Bytes::from_static(b"p"),
        }
    }

    fn due(o: &mut Outbox, now: Instant, can_send: bool) -> Vec<Due> {
        let mut v = Vec::new();
        o.poll_due(now, can_send, &mut v);
        v
    }

    #[test]
    fn waits_for_a_session_then_sends_and_retries_with_backoff() {
        let rtt = RttEstimator::new(RttConfig::default());
        let mut o = Outbox::new(8, 8);
        let t0 = Instant::ZERO;
        o.push(MessageId(1), msg(), t0 + Duration::from_secs(5))
            .unwrap();
        assert!(due(&mut o, t0, false).is_empty());
        assert_eq!(due(&mut o, t0, true), [Due::Transmit(MessageId(1))]);
        o.on_first_transmit(MessageId(1), Counter(10), t0, &rtt);
        assert!(due(&mut o, t0, true).is_empty());
        let r1 = o.next_timeout(true).unwrap();
        assert_eq!(r1, t0 + rtt.backoff(0));
        assert_eq!(due(&mut o, r1, true), [Due::Transmit(MessageId(1))]);
        o.on_retransmit(MessageId(1), r1, &rtt);
        assert_eq!(o.next_timeout(true).unwrap(), r1 + rtt.backoff(1));
    }

    #[test]
    fn ack_removes_and_samples_only_unretransmitted() {
        let mut rtt = RttEstimator::new(RttConfig::default());
        let mut o = Outbox::new(8, 8);
        let t0 = Instant::ZERO;
        for i in 1..=2 {
            o.push(MessageId(i), msg(), t0 + Duration::from_secs(5))
                .unwrap();
            o.on_first_transmit(MessageId(i), Counter(100 + i), t0, &rtt);
        }
        o.on_retransmit(MessageId(2), t0, &rtt);
        let t1 = t0 + Duration::from_millis(3);
        assert_eq!(o.on_ack(Counter(102), t1, &mut rtt), Some(MessageId(2)));
        assert_eq!(
            rtt.samples(),
            0,
            "Karn: no sample from a retransmitted message"
        );
        assert_eq!(o.on_ack(Counter(101), t1, &mut rtt), Some(MessageId(1)));
        assert_eq!(rtt.samples(), 1);
        assert_eq!(
            o.on_ack(Counter(101), t1, &mut rtt),
            None,
            "repeated ACK is ignored"
        );
        assert!(o.is_empty());
    }

    #[test]
    fn deadline_wins_over_retry_schedule() {
        let rtt = RttEstimator::new(RttConfig::default());
        let mut o = Outbox::new(8, 8);
        let t0 = Instant::ZERO;
        let deadline = t0 + Duration::from_millis(100);
        o.push(MessageId(7), msg(), deadline).unwrap();
        assert_eq!(due(&mut o, t0, true), [Due::Transmit(MessageId(7))]);
        o.on_first_transmit(MessageId(7), Counter(5), t0, &rtt);
        for _ in 0..10 {
            o.on_retransmit(MessageId(7), t0, &rtt);
        }
        assert_eq!(o.next_timeout(true), Some(deadline));
        assert_eq!(due(&mut o, deadline, true), [Due::TimedOut(MessageId(7))]);
        assert!(o.is_empty());
    }

    #[test]
    fn capacity_and_in_flight_limits_hold() {
        let rtt = RttEstimator::new(RttConfig::default());
        let mut o = Outbox::new(3, 2);
        let t0 = Instant::ZERO;
        let far = t0 + Duration::from_secs(60);
        for i in 0..3 {
            o.push(MessageId(i), msg(), far).unwrap();
        }
        assert!(o.push(MessageId(9), msg(), far).is_err());
        let first = due(&mut o, t0, true);
        assert_eq!(
            first,
            [Due::Transmit(MessageId(0)), Due::Transmit(MessageId(1))]
        );
        o.on_first_transmit(MessageId(0), Counter(1), t0, &rtt);
        o.on_first_transmit(MessageId(1), Counter(2), t0, &rtt);
        assert!(due(&mut o, t0, true).is_empty(), "third waits for a slot");
        assert_eq!(o.oldest_counter(), Some(Counter(1)));
    }
}
