//! A token bucket: `rate` tokens per second up to `burst`, one per datagram.

use crate::time::Instant;

/// Tokens are counted in millionths so that rates below one per microsecond add up exactly.
const SCALE: u64 = 1_000_000;

/// One rate limit (per origin relay or per port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Tokens now, times [`SCALE`]; at most `burst * SCALE`.
    tokens: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = u64::from(burst.max(1));
        TokenBucket {
            rate: u64::from(rate),
            burst,
            tokens: burst * SCALE,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let micros = now.saturating_duration_since(self.last).as_micros() as u64;
        self.last = self.last.max(now);
        // rate tokens per second = rate * SCALE per 1e6 µs = rate per µs in scaled units.
        let refill = micros.saturating_mul(self.rate);
        self.tokens = self.tokens.saturating_add(refill).min(self.burst * SCALE);
        if self.tokens >= SCALE {
            self.tokens -= SCALE;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::from_millis(1000);
        let mut b = TokenBucket::new(10, 3, t0);
        assert_eq!((0..5).filter(|_| b.take(t0)).count(), 3);
        // 10 per second: one more every 100 ms.
        assert!(!b.take(t0 + Duration::from_millis(99)));
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(100)));
        // Never more than the burst after a long pause.
        let later = t0 + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| b.take(later)).count(), 3);
    }
}
