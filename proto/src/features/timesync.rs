//! Time sync: estimating a server's monotonic clock (opcodes 20 and 21, and 16), and the
//! client's time requests.
//!
//! The client stamps a request when it leaves (`t_tx`) and the response when it arrives
//! (`t_rx`). The server's answer `r` was read somewhere in between, so the best guess is that
//! it was read at the midpoint: `offset = r − (t_tx + t_rx) / 2`. Whatever the split of the
//! round trip between the two directions, the error of that guess is at most half the round
//! trip, and the estimate keeps the round trip so the caller can tell. A "client accept"
//! (opcode 16) carries a timestamp with no round trip; it is used only until a proper sample
//! exists.
//!
//! What the endpoint hands in and gets back:
//! - wire: the client parses opcode 21 (`TimeSyncResponse`, into [`TimeSync::on_response`] and
//!   `TimeRequests::on_answer`) and 16 (`ClientAccept`, into [`TimeSync::on_accept`]); both
//!   roles answer opcode 20 with a response stamped when it is sealed.
//! - timers: `TimeRequests::periodic_due` (`ClientConfig::time_sync`) and
//!   `TimeRequests::retry_due` (the request of `Client::sync_time`, asked again on the
//!   retransmission schedule of reliable messages, [`RttEstimator::backoff`], until an answer
//!   or its deadline). They are the client's `TimeSync` and `TimeRetry` timers.
//! - sent: a time request (one unsealed `Outgoing::TimeRequest`) when a timer says so.
//! - events: `ClockUpdated { addr, sync }` for every answer, carrying the [`SyncId`] it
//!   completes; `TimeSyncTimedOut { sync }` when nobody answered by the deadline, and
//!   `TimeSyncFailed { sync, reason }` when the client closes first.
//!
//! Why not the outbox: a reliable exchange keeps its counter across retransmissions so that
//! the receiver's replay window drops the copies, but a repeated time request would be dropped
//! the same way and never answered, and the round trip must be measured from the copy that was
//! answered. So each try is a fresh unreliable packet with its own counter; only the schedule is
//! shared with reliable messages, through the same [`RttEstimator`].
//!
//! [`RttEstimator`]: crate::reliability::rtt::RttEstimator
//! [`RttEstimator::backoff`]: crate::reliability::rtt::RttEstimator::backoff

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

/// The id of a time sync asked with `Client::sync_time`; the events that end it carry the same
/// id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SyncId(pub u64);

/// The client's time requests: the periodic one, and the one a [`SyncId`] waits for.
#[derive(Clone, Debug, Default)]
pub(crate) struct TimeRequests {
    /// When the next periodic request goes out; `None` until a first session (or with periodic
    /// sync off).
    next_periodic: Option<Instant>,
    /// The sync asked for and not answered yet. At most one: asking again while one is open
    /// sends a new request for the same id.
    asked: Option<Asked>,
    /// Which sync recent requests were sent for, so that every server's answer to one names
    /// it, not only the first (multicast).
    sent_for: ArrayVec<(Counter, SyncId), PENDING>,
}

/// An open sync: when to ask again, how often it was asked, and until when.
#[derive(Clone, Copy, Debug)]
struct Asked {
    id: SyncId,
    retry_at: Instant,
    sent: u32,
    until: Instant,
}

/// What an expired retry timer asks the endpoint to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Send a time request now.
    Send,
    /// Nothing yet (no session to ask over): the timer was moved to the deadline.
    Wait,
    /// The deadline passed unanswered: report it.
    TimedOut(SyncId),
}

impl TimeRequests {
    /// Opens a sync whose first request goes out now, or asks again for the open one. Returns
    /// its id: `fresh` if no sync was open, else the open one's, whose schedule restarts.
    pub(crate) fn ask(
        &mut self,
        fresh: SyncId,
        now: Instant,
        first_retry: Duration,
        timeout: Duration,
    ) -> SyncId {
        let id = self.asked.map_or(fresh, |a| a.id);
        let until = now + timeout;
        self.asked = Some(Asked {
            id,
            retry_at: (now + first_retry).min(until),
            sent: 1,
            until,
        });
        id
    }

    /// When the open sync is asked again or times out.
    pub(crate) fn retry_due(&self) -> Option<Instant> {
        self.asked.map(|a| a.retry_at)
    }

    /// The retry timer expired: says what to do. `backoff(n)` is the wait after the `n`-th
    /// send, as for reliable messages.
    pub(crate) fn on_retry(
        &mut self,
        now: Instant,
        connected: bool,
        backoff: impl FnOnce(u32) -> Duration,
    ) -> Retry {
        let Some(a) = self.asked.as_mut().filter(|a| a.retry_at <= now) else {
            return Retry::Wait;
        };
        if now >= a.until {
            let id = a.id;
            self.asked = None;
            return Retry::TimedOut(id);
        }
        if !connected {
            a.retry_at = a.until;
            return Retry::Wait;
        }
        a.retry_at = (now + backoff(a.sent)).min(a.until);
        a.sent += 1;
        Retry::Send
    }

    /// Starts the periodic requests at `now`, unless they run already (`interval` `None`:
    /// periodic sync is off).
    pub(crate) fn start_periodic(&mut self, now: Instant, interval: Option<Duration>) {
        if self.next_periodic.is_none() {
            self.next_periodic = interval.map(|_| now);
        }
    }

    /// When the next periodic request is due; none goes out without a session.
    pub(crate) fn periodic_due(&self, connected: bool) -> Option<Instant> {
        self.next_periodic.filter(|_| connected)
    }

    /// A periodic request goes out now; the next one is `interval` later.
    pub(crate) fn on_periodic(&mut self, now: Instant, interval: Option<Duration>) {
        self.next_periodic = interval.map(|i| now + i);
    }

    /// A request is sealed under `counter`: an answer to it names the open sync, if any.
    pub(crate) fn on_sent(&mut self, counter: Counter) {
        if let Some(a) = self.asked {
            if self.sent_for.is_full() {
                self.sent_for.remove(0);
            }
            self.sent_for.push((counter, a.id));
        }
    }

    /// A known request was answered: any answer is a fresh sample, so the open sync (if any)
    /// is done. Returns the sync the answer is reported under: the open one, else the one the
    /// request was sent for, else none (a periodic request).
    pub(crate) fn on_answer(&mut self, request: Counter) -> Option<SyncId> {
        self.asked.take().map(|a| a.id).or_else(|| {
            self.sent_for
                .iter()
                .find(|(c, _)| *c == request)
                .map(|(_, id)| *id)
        })
    }

    /// The client closes: the open sync, if any, ends unanswered.
    pub(crate) fn close(&mut self) -> Option<SyncId> {
        self.asked.take().map(|a| a.id)
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

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_sync_asked_again_keeps_its_id() {
        let mut r = TimeRequests::default();
        let t0 = Instant::from_micros(1_000);
        assert_eq!(r.ask(SyncId(1), t0, ms(10), ms(100)), SyncId(1));
        assert_eq!(r.ask(SyncId(2), t0 + ms(5), ms(10), ms(100)), SyncId(1));
        assert_eq!(r.retry_due(), Some(t0 + ms(15)));
        r.on_sent(Counter(7));
        assert_eq!(r.on_answer(Counter(7)), Some(SyncId(1)));
        assert_eq!(r.ask(SyncId(3), t0 + ms(20), ms(10), ms(100)), SyncId(3));
    }

    #[test]
    fn every_answer_to_a_sync_names_it() {
        let mut r = TimeRequests::default();
        r.ask(SyncId(4), Instant::ZERO, ms(10), ms(100));
        r.on_sent(Counter(9));
        assert_eq!(r.on_answer(Counter(9)), Some(SyncId(4)));
        // A second server answers the same request.
        assert_eq!(r.on_answer(Counter(9)), Some(SyncId(4)));
        assert_eq!(r.retry_due(), None);
        // A periodic request names no sync.
        r.on_sent(Counter(10));
        assert_eq!(r.on_answer(Counter(10)), None);
    }

    #[test]
    fn retries_follow_the_backoff_until_the_deadline() {
        let mut r = TimeRequests::default();
        let t0 = Instant::ZERO;
        r.ask(SyncId(1), t0, ms(10), ms(50));
        assert_eq!(r.on_retry(t0 + ms(5), true, |_| ms(20)), Retry::Wait);
        assert_eq!(
            r.on_retry(t0 + ms(10), true, |n| ms(20 * n as u64)),
            Retry::Send
        );
        assert_eq!(r.retry_due(), Some(t0 + ms(30)));
        assert_eq!(
            r.on_retry(t0 + ms(30), true, |n| ms(20 * n as u64)),
            Retry::Send
        );
        // The next wait would pass the deadline: the timer stops at it.
        assert_eq!(r.retry_due(), Some(t0 + ms(50)));
        assert_eq!(
            r.on_retry(t0 + ms(50), true, |_| ms(20)),
            Retry::TimedOut(SyncId(1))
        );
        assert_eq!(r.retry_due(), None);
    }

    #[test]
    fn without_a_session_a_sync_waits_for_its_deadline() {
        let mut r = TimeRequests::default();
        r.ask(SyncId(1), Instant::ZERO, ms(10), ms(50));
        assert_eq!(
            r.on_retry(Instant::ZERO + ms(10), false, |_| ms(20)),
            Retry::Wait
        );
        assert_eq!(r.retry_due(), Some(Instant::ZERO + ms(50)));
        assert_eq!(r.close(), Some(SyncId(1)));
        assert_eq!(r.close(), None);
    }

    #[test]
    fn periodic_requests_start_once_and_need_a_session() {
        let mut r = TimeRequests::default();
        r.start_periodic(Instant::ZERO, None);
        assert_eq!(r.periodic_due(true), None);
        let t = Instant::from_micros(5);
        r.start_periodic(t, Some(ms(10)));
        r.start_periodic(t + ms(1), Some(ms(10)));
        assert_eq!(r.periodic_due(true), Some(t));
        assert_eq!(r.periodic_due(false), None);
        r.on_periodic(t, Some(ms(10)));
        assert_eq!(r.periodic_due(true), Some(t + ms(10)));
    }
}
