//! Suite 3 cookies and load detection on the responder (docs/PROTOCOL.md §12, WireGuard's
//! paper §5.4): under load, an initiation is served only if it carries a cookie that proves
//! its sender receives at the address it sends from, and the cookie costs us no state and no
//! Diffie-Hellman to make or check.
//!
//! Wire bytes: reads the 16-byte cookie field of an initiation (type 1, parsed in
//! `wire::noise`); the 25-byte cookie reply (type 3) it asks for is written by the endpoint.
//! Timers: none of its own; the secret rotates from the server's housekeeping
//! ([`Cookies::rotate`]), at most every [`COOKIE_ROTATION`]. Events: none (the server counts
//! cookie replies in its stats).

use core::net::SocketAddr;

use crate::crypto::ct_eq;
use crate::crypto::noise::cookie;
use crate::rng::Rng;
use crate::time::{Duration, Instant};

/// How often the cookie secret changes; a cookie is good for one or two periods.
pub(crate) const COOKIE_ROTATION: Duration = Duration::from_secs(120);

/// The window over which initiations are counted for [`LoadLimits::rate`].
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// When the responder counts as under load.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LoadLimits {
    /// At this many pending handshakes or more.
    pub(crate) pending: usize,
    /// Past this many initiations in one second.
    pub(crate) rate: u32,
}

/// What to do with one initiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Serve it: not under load, or its cookie is good.
    Admit,
    /// Under load without a good cookie: send it this cookie (statelessly) and nothing else.
    NeedCookie([u8; 16]),
}

/// The responder's cookie secrets and initiation rate; 80 bytes, one per server.
#[derive(Debug)]
pub(crate) struct Cookies {
    secret: [u8; 32],
    /// The secret before the last rotation: a cookie handed out just before it still works.
    previous: [u8; 32],
    /// When `secret` was made; `None` until the first rotation.
    rotated: Option<Instant>,
    /// Start of the current rate window, and initiations counted in it.
    rate_window: Instant,
    rate_count: u32,
}

impl Cookies {
    /// Fresh secrets from `rng`.
    pub(crate) fn new(rng: &mut Rng) -> Self {
        Cookies {
            secret: rng.array(),
            previous: rng.array(),
            rotated: None,
            rate_window: Instant::ZERO,
            rate_count: 0,
        }
    }

    /// Counts one initiation from `from` carrying `offered`, with `pending` handshakes
    /// waiting, and says whether to serve it. Call it first, before any key work.
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        from: SocketAddr,
        offered: &[u8; 16],
        pending: usize,
        limits: LoadLimits,
    ) -> Admission {
        if !self.under_load(now, pending, limits) {
            return Admission::Admit;
        }
        let valid = [self.secret, self.previous]
            .iter()
            .any(|s| ct_eq(&cookie(s, from), offered));
        if valid {
            Admission::Admit
        } else {
            Admission::NeedCookie(cookie(&self.secret, from))
        }
    }

    /// Whether `offered` is a cookie we handed to `from` (under the current or the previous
    /// secret). Constant time; no state changes.
    pub(crate) fn is_valid(&self, from: SocketAddr, offered: &[u8; 16]) -> bool {
        [self.secret, self.previous]
            .iter()
            .fold(false, |ok, s| ok | ct_eq(&cookie(s, from), offered))
    }

    /// The cookie for `from` under the current secret.
    pub(crate) fn for_source(&self, from: SocketAddr) -> [u8; 16] {
        cookie(&self.secret, from)
    }

    /// Replaces the secret if it is due (or was never rotated), keeping the last one.
    pub(crate) fn rotate(&mut self, now: Instant, rng: &mut Rng) {
        match self.rotated {
            Some(t) if now - t < COOKIE_ROTATION => {}
            _ => {
                self.previous = self.secret;
                self.secret = rng.array();
                self.rotated = Some(now);
            }
        }
    }

    /// Whether the handshake load calls for cookies: too many pending handshakes, or too many
    /// initiations this second (this one counted).
    fn under_load(&mut self, now: Instant, pending: usize, limits: LoadLimits) -> bool {
        if now - self.rate_window >= RATE_WINDOW {
            self.rate_window = now;
            self.rate_count = 0;
        }
        self.rate_count = self.rate_count.saturating_add(1);
        pending >= limits.pending || self.rate_count > limits.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: LoadLimits = LoadLimits {
        pending: 4,
        rate: 3,
    };

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn cookies() -> (Cookies, Rng) {
        let mut rng = Rng::from_seed([7; 32]);
        (Cookies::new(&mut rng), rng)
    }

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn the_cookie_handed_out_is_accepted_from_the_same_address_only() {
        let (mut c, _) = cookies();
        let Admission::NeedCookie(k) = c.admit(at(0), addr(1), &[0; 16], 9, LIMITS) else {
            panic!("under load a cookie is needed");
        };
        assert_eq!(c.admit(at(1), addr(1), &k, 9, LIMITS), Admission::Admit);
        assert_ne!(c.admit(at(2), addr(2), &k, 9, LIMITS), Admission::Admit);
    }

    #[test]
    fn is_valid_accepts_the_cookie_of_the_address_only() {
        let (c, _) = cookies();
        let good = c.for_source(addr(1));
        assert!(c.is_valid(addr(1), &good));
        assert!(!c.is_valid(addr(2), &good));
        assert!(!c.is_valid(addr(1), &[0; 16]));
    }

    #[test]
    fn a_cookie_survives_one_rotation_but_not_two() {
        let (mut c, mut rng) = cookies();
        c.rotate(at(0), &mut rng);
        let Admission::NeedCookie(k) = c.admit(at(0), addr(1), &[0; 16], 9, LIMITS) else {
            panic!("under load a cookie is needed");
        };
        c.rotate(at(1), &mut rng);
        assert_eq!(
            c.admit(at(1), addr(1), &k, 9, LIMITS),
            Admission::Admit,
            "not due yet"
        );
        let later = at(0) + COOKIE_ROTATION;
        c.rotate(later, &mut rng);
        assert_eq!(c.admit(later, addr(1), &k, 9, LIMITS), Admission::Admit);
        let again = later + COOKIE_ROTATION;
        c.rotate(again, &mut rng);
        assert_ne!(c.admit(again, addr(1), &k, 9, LIMITS), Admission::Admit);
    }

    #[test]
    fn load_starts_at_the_pending_threshold() {
        let (mut c, _) = cookies();
        assert_eq!(
            c.admit(at(0), addr(1), &[0; 16], 3, LIMITS),
            Admission::Admit
        );
        assert_ne!(
            c.admit(at(0), addr(1), &[0; 16], 4, LIMITS),
            Admission::Admit
        );
    }

    #[test]
    fn load_starts_past_the_rate_and_ends_with_its_window() {
        let (mut c, _) = cookies();
        for _ in 0..3 {
            assert_eq!(
                c.admit(at(10), addr(1), &[0; 16], 0, LIMITS),
                Admission::Admit
            );
        }
        assert_ne!(
            c.admit(at(500), addr(1), &[0; 16], 0, LIMITS),
            Admission::Admit
        );
        assert_eq!(
            c.admit(at(1010), addr(1), &[0; 16], 0, LIMITS),
            Admission::Admit
        );
    }
}
