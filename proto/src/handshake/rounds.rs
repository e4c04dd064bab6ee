//! The client's handshake round policy, for every suite: when a request (op 1, or a suite 3
//! initiation) is retried, how rounds triggered by unauthenticated packets are rate limited,
//! and how long an unconfirmed session is chased before it is taken as it is.
//!
//! The client endpoint sends what this state decides; the challenge itself is the
//! [`Initiator`](super::Initiator)'s. Wire bytes: none. Timers: the handshake retry
//! (`Connecting::Requesting::next_retry`), the deferred round, the confirmation deadline and
//! the multicast round close, which the client's timer table reads from here. Events: none.

use crate::rng::Rng;
use crate::time::{Duration, Instant};

/// New rounds started for lack of confirmation before we accept an unconfirmed session as it
/// is (a server may simply never send op 7; its first authenticated packet confirms it).
pub(crate) const MAX_CONFIRM_ROUNDS: u8 = 6;

/// Of those, how many first resend the client-info rather than start a new round.
const CLIENT_INFO_RESENDS: u8 = 3;

/// Resends of a request that go at the base interval before the interval starts doubling.
///
/// The client cannot tell a lossy path from a dead server before the first answer, and each
/// try needs both directions (a quarter of the tries get through at 50% loss each way). A
/// backoff from the first resend spends the early seconds waiting: with 250 ms doubling to
/// 4 s, a handshake needing 7 tries took 11.75 s, and one needing 17 took over 50 s. 16
/// resends at the base interval (4 s at the default 250 ms) get through 99.99% of the time at
/// 50% loss, while a dead server still sees the interval grow to the ceiling after them: at
/// most 4 requests a second, for 4 seconds, per client (`docs/PROTOCOL.md` §5.1).
pub(crate) const PERSISTENT_RESENDS: u32 = 16;

/// Handshake progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connecting {
    /// No round in progress.
    Idle,
    /// A round is open: op 1 was (or is about to be) sent, and is resent at `next_retry`.
    Requesting {
        attempt: u32,
        next_retry: Option<Instant>,
    },
    /// The server said it does not know us; no automatic retries until a new command.
    Rejected,
}

/// What to do about a handshake asked for by an unauthenticated packet (op 4, op 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// A round is already open: the server may be back, so resend now if reconnecting.
    Hurry,
    /// Rounds are rate limited; one starts at the deferred-round timer.
    Deferred,
    /// Start a round now.
    Start,
}

/// What to do about sessions still unconfirmed when the confirmation deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unconfirmed {
    /// Resend the client-info of each unconfirmed session (our server accepts a repeat for
    /// the exchange it just completed and answers op 7 again).
    ResendClientInfo,
    /// Resending did not help: run a new round.
    NewRound,
}

/// The client's round state: one per client, whatever the number of servers.
#[derive(Debug)]
pub(crate) struct Rounds {
    pub(crate) connecting: Connecting,
    /// Earliest start of the next handshake round triggered by an unauthenticated packet.
    pub(crate) next_allowed: Instant,
    /// Multicast: when the open round closes (its challenge rotates) after a first answer.
    pub(crate) close: Option<Instant>,
    /// When to give up on an unconfirmed session (our client-info or the server's op 7 may
    /// have been lost) and run a new round.
    pub(crate) confirm_by: Option<Instant>,
    /// Rounds started for lack of confirmation since the last confirmation; bounded, so a
    /// server that never confirms does not make us handshake forever.
    confirm_rounds: u8,
    /// A round asked for while rounds were rate limited; it starts when they are allowed.
    pub(crate) deferred: Option<Instant>,
    /// A retry delay computed before the driver told us the time (the first round, in the
    /// client's constructor); armed by the first input, so a clock that does not start at zero
    /// does not fire it at once.
    unarmed_retry: Option<Duration>,
    /// Earliest resend of the client-info on an op 4 about an unconfirmed session.
    pub(crate) info_resend_allowed: Instant,
    /// An op 4 said the server does not know our unconfirmed session: what we sent under it
    /// was dropped unread, so it is all resent as soon as the session is confirmed.
    pub(crate) refused_unconfirmed: bool,
}

impl Rounds {
    pub(crate) fn new() -> Self {
        Rounds {
            connecting: Connecting::Idle,
            next_allowed: Instant::ZERO,
            close: None,
            confirm_by: None,
            confirm_rounds: 0,
            deferred: None,
            unarmed_retry: None,
            info_resend_allowed: Instant::ZERO,
            refused_unconfirmed: false,
        }
    }

    /// A round opened at `now`: triggered rounds wait `min_interval` from here.
    pub(crate) fn opened(&mut self, now: Instant, min_interval: Duration) {
        self.close = None;
        self.deferred = None;
        self.unarmed_retry = None;
        self.next_allowed = now + min_interval;
    }

    /// Whether a command may open a round (none is open; a rejection waits for a command).
    pub(crate) fn may_start(&self) -> bool {
        matches!(self.connecting, Connecting::Idle | Connecting::Rejected)
    }

    /// The delay before request `attempt` is resent: `retry` for the first
    /// [`PERSISTENT_RESENDS`] resends, then doubling from `retry`, at most `ceiling`, with up to
    /// 1/8 of jitter so that many clients rebooted together do not retry in step. While
    /// `reconnecting` the jitter is taken off, so the ceiling holds.
    pub(crate) fn retry_delay(
        retry: Duration,
        attempt: u32,
        ceiling: Duration,
        reconnecting: bool,
        rng: &mut Rng,
    ) -> Duration {
        let doublings = attempt.saturating_sub(PERSISTENT_RESENDS - 1).min(16);
        let base = retry.saturating_mul(1u32 << doublings).min(ceiling);
        let jitter = Duration::from_micros(rng.range_inclusive(0, (base.as_micros() / 8) as u64));
        if reconnecting {
            base - jitter
        } else {
            base + jitter
        }
    }

    /// Request `attempt` went out; it is resent at `next_retry`.
    pub(crate) fn requesting(&mut self, attempt: u32, next_retry: Instant) {
        self.connecting = Connecting::Requesting {
            attempt,
            next_retry: Some(next_retry),
        };
    }

    /// The first round is opened before the driver told us the time: keep its retry delay,
    /// not its deadline, until [`Rounds::arm`].
    pub(crate) fn disarm_first_retry(&mut self) {
        if let Connecting::Requesting { next_retry, .. } = &mut self.connecting {
            self.unarmed_retry = next_retry.take().map(|t| t - Instant::ZERO);
        }
    }

    /// The driver's first time: the first round's retry counts from it.
    pub(crate) fn arm(&mut self, now: Instant) {
        if let Some(delay) = self.unarmed_retry.take() {
            if let Connecting::Requesting { next_retry, .. } = &mut self.connecting {
                *next_retry = Some(now + delay);
            }
        }
    }

    /// An unauthenticated packet asks for a handshake at `now`. Rate limited, not dropped: a
    /// server that rebooted just after our last round must still be found, one round per
    /// interval at most.
    pub(crate) fn trigger(&mut self, now: Instant) -> Trigger {
        if matches!(self.connecting, Connecting::Requesting { .. }) {
            return Trigger::Hurry;
        }
        if now < self.next_allowed {
            self.deferred = Some(self.next_allowed);
            return Trigger::Deferred;
        }
        Trigger::Start
    }

    /// A session was confirmed: the next unconfirmed one gets all its rounds again.
    pub(crate) fn confirmed(&mut self) {
        self.confirm_rounds = 0;
    }

    /// Whether we stopped chasing confirmation and take the unconfirmed session as it is.
    pub(crate) fn gave_up_confirming(&self) -> bool {
        self.confirm_rounds >= MAX_CONFIRM_ROUNDS
    }

    /// The confirmation deadline passed with a unicast session unconfirmed: first resend the
    /// client-info (waiting `resend_wait` for op 7 again), then new rounds, then give up.
    pub(crate) fn unconfirmed(
        &mut self,
        now: Instant,
        resend_wait: Duration,
    ) -> Option<Unconfirmed> {
        if self.gave_up_confirming() {
            return None;
        }
        self.confirm_rounds += 1;
        if self.confirm_rounds <= CLIENT_INFO_RESENDS {
            self.confirm_by = Some(now + resend_wait);
            Some(Unconfirmed::ResendClientInfo)
        } else {
            Some(Unconfirmed::NewRound)
        }
    }

    /// A handshake completed: the round is over, and the new session gets until at least
    /// `window_end` for its op 7 (a deadline left by an earlier exchange may be about to pass,
    /// and would drop this one unheard).
    pub(crate) fn established(&mut self, window_end: Instant) {
        self.connecting = Connecting::Idle;
        // A fresh session resends everything anyway (`Outbox::retry_all_now`).
        self.refused_unconfirmed = false;
        self.confirm_by = Some(self.confirm_by.map_or(window_end, |t| t.max(window_end)));
    }

    /// Multicast: other servers of the group answer the same request; the round closes
    /// `grace` after the first answer, after which a replayed old request gets a stale
    /// challenge back.
    pub(crate) fn close_after(&mut self, now: Instant, grace: Duration) {
        self.close.get_or_insert(now + grace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn retry_backs_off_to_the_ceiling_and_reconnecting_stays_under_it() {
        let mut rng = Rng::from_seed([7; 32]);
        for attempt in 0..40 {
            let d = Rounds::retry_delay(ms(100), attempt, ms(5_000), false, &mut rng);
            let doublings = attempt.saturating_sub(PERSISTENT_RESENDS - 1);
            let base = ms(100).saturating_mul(1u32 << doublings).min(ms(5_000));
            assert!(
                d >= base && d <= base + base / 8,
                "attempt {attempt}: {d:?}"
            );
            let r = Rounds::retry_delay(ms(100), attempt, ms(5_000), true, &mut rng);
            assert!(
                r <= base && r >= base - base / 8,
                "attempt {attempt}: {r:?}"
            );
        }
    }

    #[test]
    fn triggers_are_rate_limited_and_deferred() {
        let mut r = Rounds::new();
        r.opened(Instant::ZERO, ms(1_000));
        r.established(Instant::ZERO + ms(10));
        assert_eq!(r.trigger(Instant::ZERO + ms(500)), Trigger::Deferred);
        assert_eq!(r.deferred, Some(Instant::ZERO + ms(1_000)));
        assert_eq!(r.trigger(Instant::ZERO + ms(1_000)), Trigger::Start);
        r.requesting(0, Instant::ZERO + ms(1_100));
        assert_eq!(r.trigger(Instant::ZERO + ms(1_050)), Trigger::Hurry);
    }

    #[test]
    fn confirmation_resends_then_rounds_then_gives_up() {
        let mut r = Rounds::new();
        let now = Instant::ZERO + ms(1);
        let mut seen = alloc::vec::Vec::new();
        while let Some(u) = r.unconfirmed(now, ms(50)) {
            seen.push(u);
        }
        use Unconfirmed::{NewRound, ResendClientInfo};
        let expected = [ResendClientInfo; 3].into_iter().chain([NewRound; 3]);
        assert!(seen.into_iter().eq(expected));
        assert!(r.gave_up_confirming());
        r.confirmed();
        assert!(!r.gave_up_confirming());
    }

    #[test]
    fn a_new_session_extends_but_never_shortens_the_confirmation_window() {
        let mut r = Rounds::new();
        r.established(Instant::ZERO + ms(300));
        r.established(Instant::ZERO + ms(200));
        assert_eq!(r.confirm_by, Some(Instant::ZERO + ms(300)));
        r.established(Instant::ZERO + ms(400));
        assert_eq!(r.confirm_by, Some(Instant::ZERO + ms(400)));
    }

    #[test]
    fn the_first_retry_counts_from_the_first_input() {
        let mut r = Rounds::new();
        r.requesting(0, Instant::ZERO + ms(250));
        r.disarm_first_retry();
        assert_eq!(
            r.connecting,
            Connecting::Requesting {
                attempt: 0,
                next_retry: None
            }
        );
        r.arm(Instant::ZERO + ms(10_000));
        let due = Some(Instant::ZERO + ms(10_250));
        assert_eq!(
            r.connecting,
            Connecting::Requesting {
                attempt: 0,
                next_retry: due
            }
        );
    }
}
