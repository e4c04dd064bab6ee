//! BLAKE2b (RFC 7693) in a compact form: the twelve rounds run as a loop over the message
//! schedule instead of being unrolled.
//!
//! Why it exists: the `blake2` crate unrolls every round and was 14 KB of a one-suite client's
//! `.text` on a Cortex-M4 (issue 20); this loop is a few hundred bytes. Suites 1 and 2 hash
//! only during handshakes (key derivations, tags), never per packet, so the slower loop costs
//! nothing that matters there. Builds with the `fast-blake2b` feature (in `default`: the host
//! adapters) keep the crate's unrolled code; the two are proven byte-identical by the tests
//! below (RFC 7693's vector, the crate itself on every length and key, and the reference
//! packets of `tests::reference_bytes`, which run against whichever the build uses).

// `zeroize` comes through crypto_secretbox's `cipher` re-export (see `crypto/mod.rs`).
use crate::util::COLUMNS_THEN_DIAGONALS;
use crypto_secretbox::cipher::zeroize::Zeroize as _;

/// The initialisation vector: the first 64 bits of the fractional parts of the square roots
/// of the first eight primes (RFC 7693 §2.6).
const IV: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

/// The message word permutation of each round (RFC 7693 §2.7); rounds 10 and 11 reuse 0 and 1.
const SIGMA: [[u8; 16]; 12] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
];

const BLOCK: usize = 128;

/// An incremental BLAKE2b state with an output of 1 to 64 bytes and an optional key of up to
/// 64 bytes. The buffer (which holds the key block first) is wiped when dropped.
pub(crate) struct Blake2b {
    h: [u64; 8],
    /// Bytes compressed so far. BLAKE2b's counter is 128 bits; a message of 2^64 bytes is
    /// beyond anything this crate hashes, so the high half is always zero.
    t: u64,
    buf: [u8; BLOCK],
    /// Bytes of `buf` in use. A full block stays buffered until more data comes, because the
    /// last block must be compressed with the final flag.
    len: usize,
    out_len: usize,
}

impl Blake2b {
    /// A state for `OUT`-byte digests keyed with `key` (empty: unkeyed).
    ///
    /// `OUT` is 1..=64 and `key` at most 64 bytes: the callers in this crate pass constants
    /// (16 or 32, and 32-byte keys), checked at compile time for `OUT`.
    pub(crate) fn new<const OUT: usize>(key: &[u8]) -> Self {
        const { assert!(OUT >= 1 && OUT <= 64) };
        let key_len = key.len().min(64);
        let mut h = IV;
        h[0] ^= 0x0101_0000 ^ ((key_len as u64) << 8) ^ OUT as u64;
        let mut state = Blake2b {
            h,
            t: 0,
            buf: [0; BLOCK],
            len: 0,
            out_len: OUT,
        };
        if key_len > 0 {
            // The key, zero-padded to a block, is the first block of the message.
            state.buf[..key_len].copy_from_slice(&key[..key_len]);
            state.len = BLOCK;
        }
        state
    }

    /// Absorbs `data`.
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.len == BLOCK {
                self.t = self.t.wrapping_add(BLOCK as u64);
                self.compress(false);
                self.len = 0;
            }
            let n = (BLOCK - self.len).min(data.len());
            self.buf[self.len..self.len + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
        }
    }

    /// The digest: the first `OUT` bytes of the little-endian state words.
    pub(crate) fn finalize<const OUT: usize>(mut self) -> [u8; OUT] {
        self.t = self.t.wrapping_add(self.len as u64);
        self.buf[self.len..].fill(0);
        self.compress(true);
        let mut out = [0u8; OUT];
        for (i, byte) in out.iter_mut().enumerate().take(self.out_len) {
            *byte = self.h[i / 8].to_le_bytes()[i % 8];
        }
        out
    }

    fn compress(&mut self, last: bool) {
        let mut m = [0u64; 16];
        for (word, bytes) in m.iter_mut().zip(self.buf.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(bytes);
            *word = u64::from_le_bytes(le);
        }
        let mut v = [0u64; 16];
        v[..8].copy_from_slice(&self.h);
        v[8..].copy_from_slice(&IV);
        v[12] ^= self.t;
        if last {
            v[14] = !v[14];
        }
        for s in &SIGMA {
            // The words each of the round's eight `G` calls mixes (RFC 7693 §3.2).
            for (i, lane) in COLUMNS_THEN_DIAGONALS.iter().enumerate() {
                let [a, b, c, d] = lane.map(usize::from);
                let x = m[usize::from(s[2 * i]) & 15];
                let y = m[usize::from(s[2 * i + 1]) & 15];
                mix(&mut v, a & 15, b & 15, c & 15, d & 15, x, y);
            }
        }
        for (i, h) in self.h.iter_mut().enumerate() {
            *h ^= v[i] ^ v[i + 8];
        }
        m.zeroize();
        v.zeroize();
    }
}

impl Drop for Blake2b {
    fn drop(&mut self) {
        self.buf.zeroize();
        self.h.zeroize();
    }
}

/// The mixing function `G` (RFC 7693 §3.1).
#[inline(always)]
fn mix(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize, x: u64, y: u64) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(32);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(24);
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(63);
}

#[cfg(test)]
mod tests {
    use super::Blake2b;
    use alloc::vec;
    use alloc::vec::Vec;
    use blake2::digest::consts::{U16, U32, U64};
    use blake2::digest::{Digest, KeyInit, Mac as _};
    use quickcheck::quickcheck;

    fn compact<const OUT: usize>(key: &[u8], parts: &[&[u8]]) -> [u8; OUT] {
        let mut s = Blake2b::new::<OUT>(key);
        for p in parts {
            s.update(p);
        }
        s.finalize::<OUT>()
    }

    #[test]
    fn rfc_7693_appendix_a() {
        let want = hex::decode(
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1\
             7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
        )
        .unwrap();
        assert_eq!(compact::<64>(&[], &[b"abc"]).to_vec(), want);
    }

    /// RFC 7693 Appendix E's self-test: BLAKE2b of the byte sequences 0, 1, 2, ... of
    /// lengths 0, 3, 128, 129, 255 and 1024, unkeyed and keyed, for every output length
    /// of the test, folded into one BLAKE2b-256 whose value the RFC prints.
    #[test]
    fn rfc_7693_appendix_e_self_test() {
        fn selftest_seq(out: &mut [u8], seed: u32) {
            let mut a = 0xDEAD_4BADu32.wrapping_mul(seed);
            let mut b = 1u32;
            for byte in out.iter_mut() {
                let t = a.wrapping_add(b);
                a = b;
                b = t;
                *byte = (t >> 24) as u8;
            }
        }
        let mut fold = Blake2b::new::<32>(&[]);
        let mut input = [0u8; 1024];
        let mut key = [0u8; 64];
        for outlen in [20usize, 32, 48, 64] {
            for inlen in [0usize, 3, 128, 129, 255, 1024] {
                selftest_seq(&mut input[..inlen], inlen as u32);
                let mut unkeyed = by_len(outlen, &[], &input[..inlen]);
                fold.update(&unkeyed[..outlen]);
                selftest_seq(&mut key[..outlen], outlen as u32);
                unkeyed = by_len(outlen, &key[..outlen], &input[..inlen]);
                fold.update(&unkeyed[..outlen]);
            }
        }
        let want = hex::decode("c23a7800d98123bd10f506c61e29da5603d763b8bbad2e737f5e765a7bccd475")
            .unwrap();
        assert_eq!(fold.finalize::<32>().to_vec(), want);
    }

    /// A digest of `outlen` bytes (one of the self-test's lengths), in a 64-byte array.
    fn by_len(outlen: usize, key: &[u8], data: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        match outlen {
            20 => out[..20].copy_from_slice(&compact::<20>(key, &[data])),
            32 => out[..32].copy_from_slice(&compact::<32>(key, &[data])),
            48 => out[..48].copy_from_slice(&compact::<48>(key, &[data])),
            _ => out.copy_from_slice(&compact::<64>(key, &[data])),
        }
        out
    }

    quickcheck! {
        /// Unkeyed BLAKE2b-256 equals the `blake2` crate's on any input, however it is split.
        fn unkeyed_equals_the_crate(data: Vec<u8>, cut: usize) -> bool {
            let cut = if data.is_empty() { 0 } else { cut % (data.len() + 1) };
            let want: [u8; 32] = blake2::Blake2b::<U32>::digest(&data).into();
            compact::<32>(&[], &[&data[..cut], &data[cut..]]) == want
        }

        /// Keyed BLAKE2b-256 and -128 (the crate's MAC, which is what libsodium's
        /// `crypto_generichash` with a key computes) equal the crate's for 32-byte keys.
        fn keyed_equals_the_crate(key: Vec<u8>, data: Vec<u8>) -> bool {
            let mut k = [0u8; 32];
            for (a, b) in k.iter_mut().zip(key.iter().cycle()) {
                *a = *b;
            }
            let mut mac = <blake2::Blake2bMac<U32> as KeyInit>::new_from_slice(&k).unwrap();
            mac.update(&data);
            let want32: [u8; 32] = mac.finalize().into_bytes().into();
            let mut mac = <blake2::Blake2bMac<U16> as KeyInit>::new_from_slice(&k).unwrap();
            mac.update(&data);
            let want16: [u8; 16] = mac.finalize().into_bytes().into();
            compact::<32>(&k, &[&data]) == want32 && compact::<16>(&k, &[&data]) == want16
        }

        /// Every block boundary: 64-byte digests of inputs around multiples of 128 bytes.
        fn long_inputs_equal_the_crate(len: u16, byte: u8) -> bool {
            let data = vec![byte; usize::from(len % 1024)];
            let want: [u8; 64] = blake2::Blake2b::<U64>::digest(&data).into();
            compact::<64>(&[], &[&data]) == want
        }
    }
}
