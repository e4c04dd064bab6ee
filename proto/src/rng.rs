//! The injected random number generator.
//!
//! Every endpoint owns one [`Rng`], seeded by its configuration. Nonces, challenges, counter
//! bases and jitter all come from it, so a seed replays a whole run. Deployments seed it from the
//! operating system (the adapters do); tests and simulations use fixed seeds.
//!
//! The stream is `rand_chacha`'s `ChaCha20Rng`. With the `fast-rng` feature (on by default)
//! it is that generator; without it, a compact block function computes the same stream byte
//! for byte (a property test compares them): `rand_chacha` computes four blocks at once in
//! emulated vector lanes, 2.6 KB of `.text` on a Cortex-M4, where a loop of quarter rounds is
//! a few hundred bytes (issue 20). An endpoint draws a few words per handshake or packet, so
//! a device does not feel the slower block function.

#[cfg(any(test, not(feature = "fast-rng")))]
use core::fmt;

#[cfg(any(test, not(feature = "fast-rng")))]
use crate::util::COLUMNS_THEN_DIAGONALS;
#[cfg(any(test, not(feature = "fast-rng")))]
use rand_core::block::{BlockRng, BlockRngCore};
use rand_core::{RngCore, SeedableRng};

/// The generator behind [`Rng`]: the well-kept crate on hosts, the compact one on devices.
#[cfg(feature = "fast-rng")]
type Inner = rand_chacha::ChaCha20Rng;
#[cfg(not(feature = "fast-rng"))]
type Inner = BlockRng<ChaCha20Core>;

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
pub struct Rng(Inner);

impl Rng {
    /// Makes a generator from a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Rng(Inner::from_seed(seed))
    }

    /// Makes a generator from a 64-bit seed (for tests and simulations).
    pub fn seed_from_u64(seed: u64) -> Self {
        Rng(Inner::seed_from_u64(seed))
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

#[cfg(any(test, not(feature = "fast-rng")))]
/// Words of one refill: four ChaCha20 blocks, as `rand_chacha` buffers them.
const BUF_WORDS: usize = 64;

#[cfg(any(test, not(feature = "fast-rng")))]
/// ChaCha20 (RFC 8439's block function, 64-bit block counter, stream 0) laid out as
/// `rand_chacha::ChaCha20Core`: each refill is the next four blocks, in order.
#[derive(Clone)]
struct ChaCha20Core {
    key: [u32; 8],
    /// The block counter of the next refill's first block.
    counter: u64,
}

#[cfg(any(test, not(feature = "fast-rng")))]
/// One refill, a type of its own because arrays longer than 32 have no `Default`.
#[derive(Clone)]
struct Words([u32; BUF_WORDS]);

#[cfg(any(test, not(feature = "fast-rng")))]
impl Default for Words {
    fn default() -> Self {
        Words([0; BUF_WORDS])
    }
}

#[cfg(any(test, not(feature = "fast-rng")))]
impl AsRef<[u32]> for Words {
    fn as_ref(&self) -> &[u32] {
        &self.0
    }
}

#[cfg(any(test, not(feature = "fast-rng")))]
impl AsMut<[u32]> for Words {
    fn as_mut(&mut self) -> &mut [u32] {
        &mut self.0
    }
}

#[cfg(any(test, not(feature = "fast-rng")))]
/// Keeps the key out of logs.
impl fmt::Debug for ChaCha20Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaCha20Core").finish_non_exhaustive()
    }
}

#[cfg(any(test, not(feature = "fast-rng")))]
impl SeedableRng for ChaCha20Core {
    type Seed = [u8; 32];

    fn from_seed(seed: [u8; 32]) -> Self {
        let mut key = [0; 8];
        for (k, b) in key.iter_mut().zip(seed.chunks_exact(4)) {
            *k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        ChaCha20Core { key, counter: 0 }
    }
}

#[cfg(any(test, not(feature = "fast-rng")))]
impl BlockRngCore for ChaCha20Core {
    type Item = u32;
    type Results = Words;

    fn generate(&mut self, results: &mut Words) {
        for block in results.0.chunks_exact_mut(16) {
            chacha20_block(&self.key, self.counter, block);
            self.counter = self.counter.wrapping_add(1);
        }
    }
}

#[cfg(any(test, not(feature = "fast-rng")))]
/// Writes ChaCha20 block `counter` under `key` (nonce zero) to `out` (16 words).
fn chacha20_block(key: &[u32; 8], counter: u64, out: &mut [u32]) {
    let mut init = [0u32; 16];
    init[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    init[4..12].copy_from_slice(key);
    init[12] = counter as u32;
    init[13] = (counter >> 32) as u32;
    let mut x = init;
    for _ in 0..10 {
        for quarter in &COLUMNS_THEN_DIAGONALS {
            let [a, b, c, d] = quarter.map(usize::from);
            x[a] = x[a].wrapping_add(x[b]);
            x[d] = (x[d] ^ x[a]).rotate_left(16);
            x[c] = x[c].wrapping_add(x[d]);
            x[b] = (x[b] ^ x[c]).rotate_left(12);
            x[a] = x[a].wrapping_add(x[b]);
            x[d] = (x[d] ^ x[a]).rotate_left(8);
            x[c] = x[c].wrapping_add(x[d]);
            x[b] = (x[b] ^ x[c]).rotate_left(7);
        }
    }
    for ((o, x), i) in out.iter_mut().zip(x).zip(init) {
        *o = x.wrapping_add(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use quickcheck::quickcheck;
    use rand_chacha::ChaCha20Rng;

    /// The compact generator, whichever `Rng` wraps in this build.
    type Compact = BlockRng<ChaCha20Core>;

    quickcheck! {
        /// The compact generator gives the same stream as `rand_chacha`'s `ChaCha20Rng` from
        /// the same seed, through any mix of word and byte draws (odd lengths and refill
        /// boundaries included).
        fn same_stream_as_rand_chacha(seed: Vec<u8>, draws: Vec<(bool, u16)>, small: u64) -> bool {
            let mut key = [0u8; 32];
            for (k, b) in key.iter_mut().zip(seed) {
                *k = b;
            }
            let (mut ours, mut theirs) = (Compact::from_seed(key), ChaCha20Rng::from_seed(key));
            let (mut a, mut b) = (Compact::seed_from_u64(small), ChaCha20Rng::seed_from_u64(small));
            draws.iter().all(|&(word, len)| {
                if word {
                    ours.next_u64() == theirs.next_u64() && a.next_u64() == b.next_u64()
                } else {
                    let len = usize::from(len % 300);
                    let (mut x, mut y) = (vec![0; len], vec![0; len]);
                    ours.fill_bytes(&mut x);
                    theirs.fill_bytes(&mut y);
                    x == y
                }
            })
        }
    }

    #[test]
    fn first_block_is_chacha20_of_the_zero_key() {
        // RFC 8439 A.1 test vector 1: key and nonce zero, block counter 0; both generators.
        let expected = *b"\x76\xb8\xe0\xad\xa0\xf1\x3d\x90\x40\x5d\x6a\xe5\x53\x86\xbd\x28";
        let mut out = [0; 16];
        Rng::from_seed([0; 32]).fill(&mut out);
        assert_eq!(out, expected);
        Compact::from_seed([0; 32]).fill_bytes(&mut out);
        assert_eq!(out, expected);
    }

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
