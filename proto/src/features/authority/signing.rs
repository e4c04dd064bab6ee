//! The authority's Ed25519 signing key, derived from its X25519 secret so that an operator
//! manages one key file, and the verifying half that members pin at their join.

use crate::crypto::ecc::KeyPair;
use crypto_secretbox::cipher::zeroize::Zeroizing;

/// The authority's signing key.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

/// The authority's Ed25519 verifying key, as members learn it from the join answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigningPublic(pub [u8; 32]);

impl SigningKey {
    /// Derives the signing key from the authority's X25519 key pair:
    /// `BLAKE2b-256("pavillion authority signing key v1" || secret)` is the Ed25519 seed.
    pub fn derive(keys: &KeyPair) -> SigningKey {
        // The secret is hashed, never used as the Ed25519 key itself: a roster signature then
        // reveals nothing about the X25519 secret, and the two keys cannot be confused.
        let secret = Zeroizing::new(keys.secret().to_bytes());
        let seed = Zeroizing::new(crate::wire::authority::hash_parts(&[
            b"pavillion authority signing key v1",
            &secret[..],
        ]));
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The verifying half.
    pub fn public(&self) -> SigningPublic {
        SigningPublic(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` (already domain-separated by the caller).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.0.sign(message).to_bytes()
    }
}

impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SigningKey({:?})", self.public())
    }
}

impl SigningPublic {
    /// Whether `signature` is this key's over `message` (strict verification).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        // Strict: no small-order keys or malleable signatures, so one roster has one valid
        // signature per key.
        ed25519_dalek::VerifyingKey::from_bytes(&self.0).is_ok_and(|key| {
            key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(b: u8) -> KeyPair {
        KeyPair::from_secret_bytes([b; 32])
    }

    #[test]
    fn derivation_is_deterministic_and_per_key() {
        assert_eq!(
            SigningKey::derive(&keys(1)).public(),
            SigningKey::derive(&keys(1)).public()
        );
        assert_ne!(
            SigningKey::derive(&keys(1)).public(),
            SigningKey::derive(&keys(2)).public()
        );
    }

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let k = SigningKey::derive(&keys(1));
        let sig = k.sign(b"roster");
        assert!(k.public().verify(b"roster", &sig));
        assert!(!k.public().verify(b"rostex", &sig));
        assert!(!SigningKey::derive(&keys(2))
            .public()
            .verify(b"roster", &sig));
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!k.public().verify(b"roster", &bad));
        // Not a curve point: refused, not a panic.
        assert!(!SigningPublic([0xff; 32]).verify(b"roster", &sig));
    }
}
