//! The authority's Ed25519 signing key, derived from its X25519 secret so that an operator
//! manages one key file, and the verifying half that members pin at their join.

use crate::crypto::ecc::KeyPair;

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
        todo!("{}", keys.public().as_bytes().len())
    }

    /// The verifying half.
    pub fn public(&self) -> SigningPublic {
        SigningPublic(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` (already domain-separated by the caller).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        todo!("{}", message.len())
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
        todo!("{} {}", message.len(), signature.len())
    }
}
