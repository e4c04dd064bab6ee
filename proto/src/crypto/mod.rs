//! The session cipher and the key derivations of suites 1 (PSK) and 2 (ECC).
//!
//! Read first: docs/PROTOCOL.md §1.2 (session packet layout and cipher) and §4 (key schedules).
//!
//! Both suites protect session packets the same way: `crypto_secretbox` (XSalsa20-Poly1305) under
//! the direction's key, with the nonce `00×16 || u64_le(counter)` ([`nonce_for`]). A session
//! datagram is `magic(11) || counter(8) || tag(16) || ciphertext`: the tag comes first, exactly as
//! libsodium's "easy" layout puts it. [`SessionCipher`] works in place on the ciphertext part and
//! hands the tag back separately, so the per-packet path never allocates.
//!
//! The suites differ only in how the keys are agreed: [`psk`] derives them with keyed BLAKE2b
//! from a pre-shared key, [`ecc`] carries client-chosen keys in a `crypto_box`.
//!
//! Key material is never printed: every key type has a redacted `Debug` and no `Display`.

use core::fmt;
use core::hint::black_box;

#[cfg(feature = "fast-blake2b")]
use blake2::digest::{Digest, KeyInit, Mac as _};
#[cfg(feature = "fast-blake2b")]
use blake2::{Blake2b, Blake2bMac};
#[cfg(feature = "fast-blake2b")]
use crypto_secretbox::aead::consts::U32;
// The cipher's `new`; with `fast-blake2b` the same trait comes in with BLAKE2b's imports.
use crypto_secretbox::aead::AeadInPlace as _;
#[cfg(not(feature = "fast-blake2b"))]
use crypto_secretbox::KeyInit;
// `zeroize` is not a direct dependency; crypto_secretbox's salsa20 feature always enables the
// re-export through `cipher`.
use crypto_secretbox::cipher::zeroize::Zeroize as _;
use crypto_secretbox::XSalsa20Poly1305;

use crate::id::Counter;

#[cfg_attr(feature = "fast-blake2b", allow(dead_code))]
mod blake2b;
pub mod ecc;
pub(crate) mod key_cache;
pub mod noise;
pub mod psk;
pub mod static_dh;
pub mod suite;

/// Length of the Poly1305 tag that precedes the ciphertext of every session packet.
pub const TAG_LEN: usize = 16;

/// A cryptographic operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// An output buffer was shorter than the operation needs.
    BufferTooSmall,
    /// Authentication failed: the tag does not match (wrong key, wrong counter or altered bytes).
    Forged,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CryptoError::BufferTooSmall => "buffer too small",
            CryptoError::Forged => "authentication failed",
        })
    }
}

impl core::error::Error for CryptoError {}

/// Per-packet protection of session datagrams.
///
/// Suites 1 and 2 implement it with [`SecretBoxKey`]. It is a trait so that a later suite (for
/// example ChaCha20-Poly1305 with the header as associated data) slots in without touching the
/// session code.
pub trait SessionCipher {
    /// Encrypts `plaintext` in place and returns the tag.
    ///
    /// `header` is the cleartext header (magic and counter). Suites 1 and 2 ignore it: the
    /// reference binds the counter through the nonce only.
    fn seal_in_place(&self, counter: Counter, header: &[u8], plaintext: &mut [u8])
        -> [u8; TAG_LEN];

    /// Checks `tag` and decrypts `ciphertext` in place.
    ///
    /// # Errors
    /// [`CryptoError::Forged`] if the tag does not authenticate the ciphertext under this key and
    /// counter. `ciphertext` is then left unchanged.
    fn open_in_place(
        &self,
        counter: Counter,
        header: &[u8],
        tag: &[u8; TAG_LEN],
        ciphertext: &mut [u8],
    ) -> Result<(), CryptoError>;
}

/// The XSalsa20-Poly1305 (`crypto_secretbox`) key of one direction of a suite 1 or 2 session.
///
/// The nonce of each packet is [`nonce_for`] its counter. The key is wiped when dropped, compares
/// in constant time and prints as `SecretBoxKey(..)`.
#[derive(Clone)]
pub struct SecretBoxKey([u8; 32]);

impl SecretBoxKey {
    /// Wraps 32 raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretBoxKey(bytes)
    }

    /// The raw key bytes, for the derivations that hash a key (the session id) and for the op 12
    /// box that carries keys to the server. Never log them.
    pub fn danger_as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> XSalsa20Poly1305 {
        // The cipher holds its own copy of the key and wipes it on drop.
        XSalsa20Poly1305::new((&self.0).into())
    }
}

impl SessionCipher for SecretBoxKey {
    fn seal_in_place(
        &self,
        counter: Counter,
        _header: &[u8],
        plaintext: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = self
            .cipher()
            .encrypt_in_place_detached(&nonce_for(counter).into(), &[], plaintext)
            // NOTE(unwrap): crypto_secretbox fails only when given associated data, and we pass none.
            .expect("secretbox rejects only associated data");
        tag.into()
    }

    fn open_in_place(
        &self,
        counter: Counter,
        _header: &[u8],
        tag: &[u8; TAG_LEN],
        ciphertext: &mut [u8],
    ) -> Result<(), CryptoError> {
        // The crate checks the tag (in constant time) before it decrypts anything.
        self.cipher()
            .decrypt_in_place_detached(&nonce_for(counter).into(), &[], ciphertext, tag.into())
            .map_err(|_| CryptoError::Forged)
    }
}

impl PartialEq for SecretBoxKey {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for SecretBoxKey {}

impl fmt::Debug for SecretBoxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBoxKey(..)")
    }
}

impl Drop for SecretBoxKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The 24-byte secretbox nonce of a session packet: 16 zero bytes, then the counter (u64 LE).
///
/// This is the reference's `nonce_from_number`.
pub fn nonce_for(counter: Counter) -> [u8; 24] {
    let mut nonce = [0; 24];
    nonce[16..].copy_from_slice(&counter.0.to_le_bytes());
    nonce
}

/// BLAKE2b-256 keyed with a 32-byte key, over the concatenation of `parts`.
///
/// This is libsodium's `crypto_generichash(msg, key)` with the default 32-byte output and no salt
/// or personalisation; taking the message in parts avoids building the concatenation.
#[cfg(feature = "fast-blake2b")]
pub fn keyed_hash(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // NOTE(unwrap): BLAKE2b accepts keys of up to 64 bytes and this one is 32.
    let mut mac = <Blake2bMac<U32> as KeyInit>::new_from_slice(key)
        .expect("a 32-byte key is valid for BLAKE2b");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// BLAKE2b-256 keyed with a 32-byte key, over the concatenation of `parts`.
///
/// This is libsodium's `crypto_generichash(msg, key)` with the default 32-byte output and no salt
/// or personalisation; taking the message in parts avoids building the concatenation. (The
/// compact implementation: see `blake2b.rs`.)
#[cfg(not(feature = "fast-blake2b"))]
pub fn keyed_hash(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut state = blake2b::Blake2b::new::<32>(key);
    for part in parts {
        state.update(part);
    }
    state.finalize::<32>()
}

/// Unkeyed BLAKE2b-256 (libsodium `crypto_generichash(msg)`).
#[cfg(feature = "fast-blake2b")]
pub fn hash(data: &[u8]) -> [u8; 32] {
    Blake2b::<U32>::digest(data).into()
}

/// Unkeyed BLAKE2b-256 (libsodium `crypto_generichash(msg)`; the compact implementation).
#[cfg(not(feature = "fast-blake2b"))]
pub fn hash(data: &[u8]) -> [u8; 32] {
    let mut state = blake2b::Blake2b::new::<32>(&[]);
    state.update(data);
    state.finalize::<32>()
}

/// A 32-byte pre-shared key (suite 1).
///
/// It is wiped when dropped, compares in constant time and prints as `Psk(..)`.
#[derive(Clone)]
pub struct Psk([u8; 32]);

impl Psk {
    /// Wraps 32 raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Psk(bytes)
    }

    /// Parses the 64-character hex form (either case) that the reference also accepts.
    ///
    /// # Errors
    /// [`KeyParseError::BadLength`] if `s` is not exactly 64 bytes long,
    /// [`KeyParseError::BadHex`] if it contains anything but hex digits.
    pub fn from_hex(s: &str) -> Result<Psk, KeyParseError> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return Err(KeyParseError::BadLength);
        }
        let mut key = Psk([0; 32]);
        for (out, pair) in key.0.iter_mut().zip(s.chunks_exact(2)) {
            // Dropping `key` on an error wipes the half-parsed bytes.
            let &[hi, lo] = pair else {
                return Err(KeyParseError::BadLength);
            };
            match (hex_digit(hi), hex_digit(lo)) {
                (Some(hi), Some(lo)) => *out = hi << 4 | lo,
                _ => return Err(KeyParseError::BadHex),
            }
        }
        Ok(key)
    }

    /// The raw key bytes. Never log them.
    pub fn danger_as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for Psk {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for Psk {}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(..)")
    }
}

impl Drop for Psk {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A key given as text could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyParseError {
    /// The text holds something other than hex digits.
    BadHex,
    /// The text does not have the length of a 32-byte key in hex (64 characters).
    BadLength,
}

impl fmt::Display for KeyParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyParseError::BadHex => "key is not valid hex",
            KeyParseError::BadLength => "key must be 64 hex characters (32 bytes)",
        })
    }
}

impl core::error::Error for KeyParseError {}

/// Compares two byte strings in time that depends only on their lengths.
///
/// For tags and keys. Unequal lengths return `false` at once: lengths are public.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        // black_box keeps the optimiser from turning the fold into an early-exit comparison.
        .fold(0u8, |acc, (x, y)| black_box(acc | (x ^ y)));
    black_box(diff) == 0
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod test_vectors;

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::test_vectors::*;
    use super::*;

    #[test]
    fn nonce_of_counter_1001() {
        assert_eq!(
            hex::encode(nonce_for(Counter(1001))),
            "00000000000000000000000000000000e903000000000000"
        );
    }

    #[test]
    fn hashes_match_libsodium_generichash() {
        assert_eq!(hash(&h32(COMPUTED_ECC_CLIENT_PUB)), h32(COMPUTED_GUEST_ID));
        assert_eq!(
            keyed_hash(&h32(COMPUTED_PSK), &[&h32(COMPUTED_CN)]),
            h32(COMPUTED_CTS)
        );
        // Splitting the message into parts changes nothing.
        let msg = [h32(COMPUTED_CN), h32(COMPUTED_SN)].concat();
        let psk = h32(COMPUTED_PSK);
        let whole = keyed_hash(&psk, &[&msg]);
        assert_eq!(
            whole,
            keyed_hash(&psk, &[&msg[..5], &msg[5..40], &[], &msg[40..]])
        );
        assert_eq!(whole, h32(COMPUTED_STC));
    }

    #[test]
    fn computed_session_packets_open_and_reseal_identically() {
        let cts = SecretBoxKey::from_bytes(h32(COMPUTED_CTS));
        let stc = SecretBoxKey::from_bytes(h32(COMPUTED_STC));
        let cases: [(&SecretBoxKey, u64, &str, &str); 4] = [
            (&cts, 1001, COMPUTED_CALL_1001, "04900168656c6c6f"),
            (
                &stc,
                (1 << 63) + 5,
                COMPUTED_RESPONSE,
                "05e90300000000000000006f6c6c6568",
            ),
            (&cts, 1002, COMPUTED_MESSAGE_1002, "01540a4e0a64617461"),
            (
                &stc,
                (1 << 63) + 6,
                COMPUTED_ACK,
                "02ea0300000000000000ff00",
            ),
        ];
        for (key, counter, packet, plaintext) in cases {
            let packet = hex::decode(packet).unwrap();
            let (c, pt) = open_packet(key, &packet).unwrap();
            assert_eq!(c, Counter(counter));
            assert_eq!(hex::encode(&pt), plaintext);
            assert_eq!(seal_packet(key, c, &pt), packet);
        }
    }

    #[test]
    fn captured_session_packets_decrypt() {
        for (key, packet, plaintext) in CAPTURED_SESSION_PACKETS {
            let key = SecretBoxKey::from_bytes(h32(key));
            let packet = hex::decode(packet).unwrap();
            let (c, pt) = open_packet(&key, &packet).unwrap();
            assert_eq!(hex::encode(&pt), *plaintext, "counter {}", c.0);
            assert_eq!(seal_packet(&key, c, &pt), packet);
        }
    }

    #[test]
    fn forged_packets_are_rejected() {
        let key = SecretBoxKey::from_bytes(h32(COMPUTED_CTS));
        let good = hex::decode(COMPUTED_CALL_1001).unwrap();
        assert!(open_packet(&key, &good).is_ok());

        let mut bad_tag = good.clone();
        bad_tag[19] ^= 1;
        assert_eq!(open_packet(&key, &bad_tag), Err(CryptoError::Forged));

        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 0x80;
        assert_eq!(open_packet(&key, &flipped), Err(CryptoError::Forged));

        // The counter is bound through the nonce.
        let mut other_counter = good.clone();
        other_counter[11] ^= 1;
        assert_eq!(open_packet(&key, &other_counter), Err(CryptoError::Forged));

        let wrong = SecretBoxKey::from_bytes(h32(COMPUTED_STC));
        assert_eq!(open_packet(&wrong, &good), Err(CryptoError::Forged));

        // A failed open leaves the ciphertext as it was.
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&good[19..35]);
        let mut ct = good[35..].to_vec();
        assert_eq!(
            wrong.open_in_place(Counter(1001), &good[..19], &tag, &mut ct),
            Err(CryptoError::Forged)
        );
        assert_eq!(ct, &good[35..]);
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let key = SecretBoxKey::from_bytes([9; 32]);
        let tag = key.seal_in_place(Counter(5), &[], &mut []);
        assert_eq!(key.open_in_place(Counter(5), &[], &tag, &mut []), Ok(()));
        assert_eq!(
            key.open_in_place(Counter(6), &[], &tag, &mut []),
            Err(CryptoError::Forged)
        );
    }

    #[test]
    fn keys_are_redacted_and_compare_by_value() {
        let key = SecretBoxKey::from_bytes([0xab; 32]);
        assert_eq!(alloc::format!("{key:?}"), "SecretBoxKey(..)");
        assert_eq!(key, key.clone());
        assert_ne!(key, SecretBoxKey::from_bytes([0xac; 32]));
        let psk = Psk::from_bytes([0xab; 32]);
        assert_eq!(alloc::format!("{psk:?}"), "Psk(..)");
        assert_eq!(psk, psk.clone());
    }

    #[test]
    fn psk_from_hex() {
        let psk = Psk::from_hex(COMPUTED_PSK).unwrap();
        assert_eq!(psk.danger_as_bytes(), &h32(COMPUTED_PSK));
        let upper = Psk::from_hex(&COMPUTED_PSK.to_ascii_uppercase()).unwrap();
        assert_eq!(upper, psk);
        assert_eq!(
            Psk::from_hex(&COMPUTED_PSK[2..]),
            Err(KeyParseError::BadLength)
        );
        assert_eq!(Psk::from_hex(""), Err(KeyParseError::BadLength));
        let mut bad = alloc::string::String::from(COMPUTED_PSK);
        bad.replace_range(63..64, "g");
        assert_eq!(Psk::from_hex(&bad), Err(KeyParseError::BadHex));
        // A multi-byte character must not be cut in half or accepted.
        bad.replace_range(62..64, "é");
        assert_eq!(Psk::from_hex(&bad), Err(KeyParseError::BadHex));
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            alloc::format!("{}", CryptoError::Forged),
            "authentication failed"
        );
        assert!(!alloc::format!("{}", KeyParseError::BadHex).is_empty());
    }

    #[test]
    fn quickcheck_seal_then_open_is_identity() {
        fn prop(key: Vec<u8>, counter: u64, plaintext: Vec<u8>) -> bool {
            let mut k = [0; 32];
            for (d, s) in k.iter_mut().zip(key) {
                *d = s;
            }
            let key = SecretBoxKey::from_bytes(k);
            let mut buf = plaintext.clone();
            let tag = key.seal_in_place(Counter(counter), &[], &mut buf);
            // Past a few bytes, a ciphertext equal to its plaintext would mean no encryption.
            let changed = plaintext.len() < 16 || buf != plaintext;
            let opened = key
                .open_in_place(Counter(counter), &[], &tag, &mut buf)
                .is_ok();
            changed && opened && buf == plaintext
        }
        quickcheck::quickcheck(prop as fn(Vec<u8>, u64, Vec<u8>) -> bool);
    }

    #[test]
    fn quickcheck_open_never_panics() {
        fn prop(counter: u64, tag: Vec<u8>, data: Vec<u8>) -> bool {
            let key = SecretBoxKey::from_bytes(h32(COMPUTED_CTS));
            let mut t = [0; TAG_LEN];
            for (d, s) in t.iter_mut().zip(tag) {
                *d = s;
            }
            let mut buf = data.clone();
            // Random bytes never authenticate, and a failure leaves the buffer alone.
            key.open_in_place(Counter(counter), &[], &t, &mut buf) == Err(CryptoError::Forged)
                && buf == data
        }
        quickcheck::quickcheck(prop as fn(u64, Vec<u8>, Vec<u8>) -> bool);
    }
}
