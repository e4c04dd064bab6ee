//! The authority's payloads (`docs/PROTOCOL.md` §15): the `JOIN` call and its answer, the
//! `REVOKE` call, and the roster publications (`snapshot`, `delta`) on [`ROSTER_TARGET`].
//!
//! Integers are little endian. Parsing checks every length before reading, so any input
//! gives a value or a typed [`AuthorityWireError`], never a panic.

use alloc::vec::Vec;

use crate::crypto::ecc::PublicKey;
use crate::features::authority::{MemberId, RosterEntry, SigningPublic};
use crate::id::FunctionId;

/// The call a joining member makes on its authority session.
pub const JOIN: FunctionId = FunctionId(0xFF00);
/// The call that answers with a roster `snapshot` (members and operators only).
pub const FETCH: FunctionId = FunctionId(0xFF01);
/// The call by which an operator revokes a member.
pub const REVOKE: FunctionId = FunctionId(0xFF02);
/// The pub/sub target of roster publications.
pub const ROSTER_TARGET: &str = "core.roster";
/// The message name of a whole roster.
pub const SNAPSHOT: &str = "snapshot";
/// The message name of a change from one version to the next.
pub const DELTA: &str = "delta";
/// The only payload version.
pub const VERSION: u8 = 1;
/// Longest role or name.
pub const MAX_LABEL: usize = 32;

/// Why an authority payload did not parse or could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorityWireError {
    /// The payload ended before a field.
    Truncated,
    /// The version byte is not [`VERSION`].
    BadVersion(u8),
    /// An unknown proof kind, outcome, refusal reason or address family.
    BadCode(u8),
    /// A role or name longer than [`MAX_LABEL`] or not UTF-8.
    BadLabel,
    /// Bytes after the last field.
    TrailingBytes,
    /// A count larger than the payload can hold.
    BadCount,
    /// The output buffer is too small.
    NoRoom,
}

/// How a joiner proves it may join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// None: its key must be listed in the policy or admitted already.
    Listed,
    /// `BLAKE2b-256(key = enrolment key, "pavillion join v1" || authority public || joiner
    /// public)`.
    Enrolment([u8; 32]),
}

/// The `JOIN` call's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest<'a> {
    /// The joiner's static key; its hash must match the session's.
    pub public: PublicKey,
    /// Its proof.
    pub proof: Proof,
    /// The role it asks for (a listed key's policy role wins).
    pub role: &'a str,
    /// Its human label.
    pub name: &'a str,
}

/// Why the authority refused a join. The codes are the wire's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum JoinRefusal {
    /// 1: no proof, and the key is neither listed nor admitted.
    NotInPolicy,
    /// 2: the proof matches no enrolment secret.
    BadProof,
    /// 3: this key failed too often; it may try again after the lock.
    LockedOut,
    /// 4: this key was revoked.
    Revoked,
    /// 5: the roster holds `max_peers` members.
    Full,
    /// 6: the request does not parse, or names another key than the session's.
    Malformed,
    /// 7: too many failed proofs lately, over all keys; try again later.
    Busy,
}

/// The `JOIN` call's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinAnswer {
    /// Admitted.
    Admitted {
        /// Our member id.
        id: MemberId,
        /// The authority's roster signing key, to pin.
        signing: SigningPublic,
        /// The roster's epoch.
        epoch: u64,
        /// The roster's version at admission.
        version: u64,
        /// The role we were given.
        role: alloc::string::String,
    },
    /// Refused.
    Refused {
        /// Why.
        reason: JoinRefusal,
        /// When trying again may help (`LockedOut`, `Busy`), in milliseconds; else 0.
        retry_after_ms: u32,
    },
}

/// A whole roster as published (name [`SNAPSHOT`], and the `FETCH` answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The roster's epoch.
    pub epoch: u64,
    /// Its version.
    pub version: u64,
    /// Every member, sorted by id.
    pub entries: Vec<RosterEntry>,
    /// Ed25519 over the domain string, the name byte and every byte before it.
    pub signature: [u8; 64],
}

/// A change from version `base` to `version` (name [`DELTA`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    /// The roster's epoch.
    pub epoch: u64,
    /// The version it applies to.
    pub base: u64,
    /// The version it makes.
    pub version: u64,
    /// Entries added or changed.
    pub upserts: Vec<RosterEntry>,
    /// Members removed.
    pub removals: Vec<MemberId>,
    /// The digest of the roster after applying it.
    pub digest: [u8; 32],
    /// Ed25519 over the domain string, the name byte and every byte before it.
    pub signature: [u8; 64],
}

impl<'a> JoinRequest<'a> {
    /// Parses a `JOIN` payload.
    pub fn parse(payload: &'a [u8]) -> Result<Self, AuthorityWireError> {
        todo!("{}", payload.len())
    }

    /// Appends the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        todo!("{}", out.len())
    }
}

impl JoinAnswer {
    /// Parses a `JOIN` answer.
    pub fn parse(payload: &[u8]) -> Result<Self, AuthorityWireError> {
        todo!("{}", payload.len())
    }

    /// Appends the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        todo!("{}", out.len())
    }
}

impl Snapshot {
    /// Parses a `snapshot` payload (the signature is not checked here).
    pub fn parse(payload: &[u8]) -> Result<Self, AuthorityWireError> {
        todo!("{}", payload.len())
    }

    /// Appends the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        todo!("{}", out.len())
    }
}

impl Delta {
    /// Parses a `delta` payload (the signature is not checked here).
    pub fn parse(payload: &[u8]) -> Result<Self, AuthorityWireError> {
        todo!("{}", payload.len())
    }

    /// Appends the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        todo!("{}", out.len())
    }
}
