//! Estimating a server's monotonic clock (opcodes 20 and 21, and 16).
//!
//! The client stamps a request when it leaves (`t_tx`) and the response when it arrives
//! (`t_rx`). The server's answer `r` was read somewhere in between, so the best guess is that
//! it was read at the midpoint: `offset = r − (t_tx + t_rx) / 2`. Whatever the split of the
//! round trip between the two directions, the error of that guess is at most half the round
//! trip, and the estimate keeps the round trip so the caller can tell. A "client accept"
//! (opcode 16) carries a timestamp with no round trip; it is used only until a proper sample
//! exists.

use arrayvec::ArrayVec;

use crate::id::Counter;
use crate::time::{Duration, Instant};

/// Requests remembered at once; an answer to an older one is ignored.
const PENDING: usize = 4;

/// An estimate of a remote clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockEstimate {
    /// Remote minus local time, in microseconds.
    pub offset_micros: i64,
    /// The round trip of the sample; the offset is within half of it. `None` for an estimate
    /// from a client-accept timestamp, which has no bound.
    pub round_trip: Option<Duration>,
    /// When the sample was taken (local time).
    pub at: Instant,
}

impl ClockEstimate {
    /// The remote clock's reading at local instant `local`.
    pub fn to_remote(&self, local: Instant) -> Instant {
        Instant::from_micros(shift(local.as_micros(), self.offset_micros))
    }

    /// The local instant at which the remote clock reads `remote`.
    pub fn to_local(&self, remote: Instant) -> Instant {
        Instant::from_micros(shift(
            remote.as_micros(),
            self.offset_micros.saturating_neg(),
        ))
    }
}

fn shift(t: u64, by: i64) -> u64 {
    if by >= 0 {
        t.saturating_add(by as u64)
    } else {
        t.saturating_sub(by.unsigned_abs())
    }
}

/// Time sync state for one server.
#[derive(Clone, Debug, Default)]
pub struct TimeSync {
    estimate: Option<ClockEstimate>,
    pending: ArrayVec<(Counter, Instant), PENDING>,
}

impl TimeSync {
    /// Records that a request went out under `counter` at `now`.
    pub fn on_request(&mut self, counter: Counter, now: Instant) {
        if self.pending.is_full() {
            self.pending.remove(0);
        }
        self.pending.push((counter, now));
    }

    /// Takes a response to the request sent under `request`, read as `remote_micros` on the
    /// server, arriving at `now`. Returns the new estimate, or `None` for an unknown request.
    pub fn on_response(
        &mut self,
        request: Counter,
        remote_micros: u64,
        now: Instant,
    ) -> Option<ClockEstimate> {
        let pos = self.pending.iter().position(|(c, _)| *c == request)?;
        let (_, sent) = self.pending.remove(pos);
        let rtt = now - sent;
        let midpoint = sent.as_micros() as i128 + (rtt.as_micros() / 2) as i128;
        let offset =
            (remote_micros as i128 - midpoint).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        let estimate = ClockEstimate {
            offset_micros: offset,
            round_trip: Some(rtt),
            at: now,
        };
        self.estimate = Some(estimate);
        Some(estimate)
    }

    /// Takes a client-accept timestamp; used only while no round-trip sample exists.
    pub fn on_accept(&mut self, remote_micros: i64, now: Instant) {
        if self.estimate.is_some_and(|e| e.round_trip.is_some()) {
            return;
        }
        let offset = (remote_micros as i128 - now.as_micros() as i128)
            .clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        self.estimate = Some(ClockEstimate {
            offset_micros: offset,
            round_trip: None,
            at: now,
        });
    }

    /// Forgets the estimate (a new session may be a rebooted server with a new clock).
    pub fn reset(&mut self) {
        *self = TimeSync::default();
    }

    /// The current estimate.
    pub fn estimate(&self) -> Option<ClockEstimate> {
        self.estimate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_delay_gives_the_exact_offset() {
        let mut ts = TimeSync::default();
        let t0 = Instant::from_micros(1_000_000);
        ts.on_request(Counter(5), t0);
        // Remote clock is local + 250 ms; 10 ms each way.
        let remote_read = t0.as_micros() + 10_000 + 250_000;
        let e = ts
            .on_response(Counter(5), remote_read, t0 + Duration::from_millis(20))
            .unwrap();
        assert_eq!(e.offset_micros, 250_000);
        assert_eq!(e.round_trip, Some(Duration::from_millis(20)));
        assert_eq!(
            e.to_remote(Instant::from_micros(0)),
            Instant::from_micros(250_000)
        );
        assert_eq!(
            e.to_local(Instant::from_micros(250_000)),
            Instant::from_micros(0)
        );
    }

    #[test]
    fn asymmetric_delay_stays_within_half_the_round_trip() {
        for (up, down) in [(1u64, 39u64), (39, 1), (5, 50), (0, 100)] {
            let mut ts = TimeSync::default();
            let t0 = Instant::from_micros(5_000_000);
            ts.on_request(Counter(1), t0);
            let true_offset: i64 = -3_000_000;
            let remote_read = (t0.as_micros() as i64 + up as i64 * 1000 + true_offset) as u64;
            let rx = t0 + Duration::from_millis(up + down);
            let e = ts.on_response(Counter(1), remote_read, rx).unwrap();
            let err = (e.offset_micros - true_offset).unsigned_abs();
            assert!(err <= (up + down) * 1000 / 2, "error {err} for {up}/{down}");
        }
    }

    #[test]
    fn unknown_or_repeated_responses_are_ignored() {
        let mut ts = TimeSync::default();
        ts.on_request(Counter(1), Instant::ZERO);
        assert!(ts.on_response(Counter(2), 0, Instant::ZERO).is_none());
        assert!(ts.on_response(Counter(1), 0, Instant::ZERO).is_some());
        assert!(ts.on_response(Counter(1), 0, Instant::ZERO).is_none());
    }

    #[test]
    fn accept_is_used_only_without_a_round_trip_sample() {
        let mut ts = TimeSync::default();
        ts.on_accept(500, Instant::from_micros(100));
        assert_eq!(ts.estimate().unwrap().offset_micros, 400);
        ts.on_request(Counter(1), Instant::from_micros(100));
        ts.on_response(Counter(1), 1_000, Instant::from_micros(200));
        ts.on_accept(99_999, Instant::from_micros(300));
        assert_eq!(ts.estimate().unwrap().offset_micros, 850);
    }

    #[test]
    fn pending_requests_are_bounded() {
        let mut ts = TimeSync::default();
        for i in 0..10 {
            ts.on_request(Counter(i), Instant::ZERO);
        }
        assert!(ts.on_response(Counter(0), 0, Instant::ZERO).is_none());
        assert!(ts.on_response(Counter(9), 0, Instant::ZERO).is_some());
    }

    #[test]
    fn conversions_saturate() {
        let e = ClockEstimate {
            offset_micros: i64::MIN,
            round_trip: None,
            at: Instant::ZERO,
        };
        assert_eq!(e.to_remote(Instant::from_micros(5)), Instant::ZERO);
        assert_eq!(e.to_local(Instant::MAX), Instant::MAX);
    }
}
