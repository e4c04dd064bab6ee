//! The injected random number generator.
//!
//! Every endpoint owns one [`Rng`], seeded by its configuration. Nonces, challenges, counter
//! bases and jitter all come from it, so a seed replays a whole run. Deployments seed it from the
//! operating system (the adapters do); tests and simulations use fixed seeds.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// A ChaCha20 stream seeded by the driver.
///
/// # Examples
/// ```
/// use pavillion_proto::rng::Rng;
/// let mut a = Rng::from_seed([7; 32]);
/// let mut b = Rng::from_seed([7; 32]);
/// assert_eq!(a.array::<16>(), b.array::<16>());
/// ```
#[derive(Clone, Debug)]
pub struct Rng(ChaCha20Rng);

impl Rng {
    /// Makes a generator from a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Rng(ChaCha20Rng::from_seed(seed))
    }

    /// Makes a generator from a 64-bit seed (for tests and simulations).
    pub fn seed_from_u64(seed: u64) -> Self {
        Rng(ChaCha20Rng::seed_from_u64(seed))
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill_bytes(buf);
    }

    /// Returns `N` random bytes.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        self.0.fill_bytes(&mut out);
        out
    }

    /// A uniformly random u64.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A random value in `low..=high` (inclusive). Returns `low` if the range is empty.
    pub fn range_inclusive(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        let span = high - low;
        if span == u64::MAX {
            return self.next_u64();
        }
        // Rejection sampling keeps the distribution exactly uniform.
        let n = span + 1;
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return low + v % n;
            }
        }
    }

    /// A fresh generator for a sub-component, derived from this one, so that components stay
    /// deterministic without sharing one stream.
    pub fn fork(&mut self) -> Rng {
        Rng::from_seed(self.array())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_stays_in_bounds() {
        let mut r = Rng::seed_from_u64(1);
        for _ in 0..1000 {
            let v = r.range_inclusive(1024, 2048);
            assert!((1024..=2048).contains(&v));
        }
        assert_eq!(r.range_inclusive(5, 5), 5);
        assert_eq!(r.range_inclusive(9, 3), 9);
    }

    #[test]
    fn different_seeds_differ() {
        assert_ne!(
            Rng::seed_from_u64(1).array::<32>(),
            Rng::seed_from_u64(2).array::<32>()
        );
    }
}
