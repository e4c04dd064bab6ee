//! Typed identifiers and counters.
//!
//! Wire values that mean different things get different types, so a function number can never be
//! passed where a counter is expected.

use core::fmt;

/// A client's 16-byte identity, as configured on both sides (like a user name).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ClientId(pub [u8; 16]);

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", Hex(&self.0))
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Hex(&self.0).fmt(f)
    }
}

/// The identity the server reports for an authenticated peer.
///
/// A configured client is known by its [`ClientId`]. A guest admitted by its X25519 public key
/// is known by the unkeyed BLAKE2b-256 of that key, all 32 bytes, exactly as the reference server
/// reports it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum PeerId {
    /// A client whose id was configured on the server.
    Client(ClientId),
    /// A guest, identified by `BLAKE2b-256(public key)`.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::serde_util::hex"))]
    Guest([u8; 32]),
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerId::Client(id) => write!(f, "client {id}"),
            PeerId::Guest(h) => write!(f, "guest {}", Hex(h)),
        }
    }
}

/// An RPC function number (u16 on the wire, little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FunctionId(pub u16);

impl From<u16> for FunctionId {
    fn from(n: u16) -> Self {
        FunctionId(n)
    }
}

impl FunctionId {
    /// Standard call 0: returns its argument.
    pub const ECHO: FunctionId = FunctionId(0);
    /// Standard call 1: returns the name of the function whose number is the argument.
    pub const NAME: FunctionId = FunctionId(1);
}

/// The 64-bit packet counter of the Pavillion header.
///
/// Counter 0 marks a setup packet. Every session packet carries a non-zero counter, which is
/// also the XSalsa20 nonce, so a counter value is never reused under one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Counter(pub u64);

impl Counter {
    /// The counter of setup packets.
    pub const SETUP: Counter = Counter(0);

    /// Whether this is the setup counter.
    pub const fn is_setup(self) -> bool {
        self.0 == 0
    }
}

/// The id of a message send command; its outcome event carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MessageId(pub u64);

/// Lower-case hex formatting of a byte slice, for ids (never for keys).
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn ids_format_as_hex() {
        let id = ClientId(*b"CCCCCCCCCCCCCCCC");
        assert_eq!(id.to_string(), "43434343434343434343434343434343");
        assert_eq!(
            PeerId::Guest([0xab; 32]).to_string(),
            alloc::format!("guest {}", "ab".repeat(32))
        );
    }

    #[test]
    fn setup_counter() {
        assert!(Counter::SETUP.is_setup());
        assert!(!Counter(1).is_setup());
    }
}
