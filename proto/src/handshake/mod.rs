//! The setup exchanges of suites 1 and 2.
//!
//! Read docs/PROTOCOL.md §2, §4 and §5 first. PSK (suite 1) runs `1 → 2 → 3 → 7` and ECC (suite 2) runs
//! `1 → 11 → 12 → 7`:
//!
//! ```text
//!  client                                   server
//!    | -- 1 NonceRequest(challenge) ----------> |  new ExpectClientInfo (bounded table)
//!    | <- 2 PskNonce(sn, challenge, tag) ------ |  PSK: tag = H(PSK; sn || challenge)
//!    | <- 11 EccNonce(box(sn || challenge)) --- |  ECC
//!    | -- 3 PskClientInfo(cn, sn, ctr, tag) --> |  PSK: keys derive from cn and sn
//!    | -- 12 EccClientInfo(box(sn, keys, ctr))> |  ECC: the client picks both keys
//!    | <- 7 SessionEstablished(session id) ---- |
//! ```
//!
//! The server's half-open state is an `ExpectClientInfo`, dropped once a client-info packet
//! verifies against it (a packet that fails leaves it in place). Keys come out only as
//! `SessionKeys`, which carry a `PeerAuthenticated` proof that only the verifying code in this
//! module can make, so a session cannot be built from an unverified packet.
//!
//! Where we are stricter than the reference (docs/PROTOCOL.md §10): the client checks the echoed
//! challenge on op 2 *and* op 11 and refuses a server nonce it has already used in the current
//! round (items 2 and 3), and no packet ever carries a secret key (item 1).

pub(crate) mod budget;
pub(crate) mod client;
pub(crate) mod cookie;
pub(crate) mod noise;
pub(crate) mod noise_initiator;
pub(crate) mod responder;
pub(crate) mod rounds;
pub(crate) mod server;

use core::fmt;

use crate::crypto::SecretBoxKey;
use crate::id::{Counter, PeerId};

pub(crate) use client::Initiator;
pub(crate) use server::ExpectClientInfo;

/// Proof that a peer's handshake packet authenticated. Only this module can make one.
#[derive(Debug)]
pub(crate) struct PeerAuthenticated(());

/// The keys and identity a completed handshake yields.
#[derive(Debug)]
pub(crate) struct SessionKeys {
    pub(crate) client_to_server: SecretBoxKey,
    pub(crate) server_to_client: SecretBoxKey,
    /// The client's counter floor: the server accepts counters above it.
    pub(crate) client_counter: Counter,
    pub(crate) session_id: [u8; 16],
    pub(crate) peer: PeerId,
    pub(crate) _proof: PeerAuthenticated,
}

impl SessionKeys {
    /// Keys for a session that is *assumed* to have been authenticated, with no handshake run.
    ///
    /// Only for `testing::established`, which builds endpoints that already hold a session so
    /// that fuzzers reach application parsing without paying for a handshake per input. It is
    /// compiled only with the `testing` feature (or in this crate's tests): no normal build
    /// can make a proof without verifying a packet.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn danger_assumed(
        client_to_server: SecretBoxKey,
        server_to_client: SecretBoxKey,
        client_counter: Counter,
        session_id: [u8; 16],
        peer: PeerId,
    ) -> Self {
        SessionKeys {
            client_to_server,
            server_to_client,
            client_counter,
            session_id,
            peer,
            _proof: PeerAuthenticated(()),
        }
    }
}

/// Why a handshake packet was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum HandshakeError {
    /// A keyed-hash tag did not verify (wrong PSK, or a forged packet).
    BadTag,
    /// The packet's cipher is not the one this exchange runs.
    CipherMismatch,
    /// The client id differs from the one that started the exchange.
    ClientIdMismatch,
    /// A box did not open (wrong key pair, or a forged packet).
    ForgedBox,
    /// The server refuses guests and does not know this client's key.
    GuestsNotAllowed,
    /// The ECC suite was asked for but no key pair is configured for it.
    NoKeyPair,
    /// The echoed server nonce is not the one this exchange issued.
    NonceMismatch,
    /// The server does not know this client id (setup opcode 6).
    UnknownClient,
    /// The server nonce was already used in this round: a replayed packet.
    ReusedNonce,
    /// The echoed challenge is not ours: a stale or replayed packet.
    WrongChallenge,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::BadTag => "handshake tag did not verify",
            HandshakeError::CipherMismatch => "cipher does not match the exchange",
            HandshakeError::ClientIdMismatch => "client id does not match the exchange",
            HandshakeError::ForgedBox => "handshake box did not open",
            HandshakeError::GuestsNotAllowed => "guests are not allowed",
            HandshakeError::NoKeyPair => "no ECC key pair configured",
            HandshakeError::NonceMismatch => "server nonce does not match",
            HandshakeError::UnknownClient => "unknown client id",
            HandshakeError::ReusedNonce => "server nonce already used",
            HandshakeError::WrongChallenge => "challenge does not match",
        })
    }
}

impl core::error::Error for HandshakeError {}
