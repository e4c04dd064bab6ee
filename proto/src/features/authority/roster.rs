//! The roster: the admitted members of a fleet, versioned, with the canonical encoding that
//! its digest and signatures cover, and the rules by which a member applies a publication.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;

use crate::crypto::ecc::PublicKey;
use crate::id::ClientId;

/// A member's identity: the default client id of its static public key (the first 16 bytes
/// of `BLAKE2b-256(public key)`), so nobody can claim it without the key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub ClientId);

impl MemberId {
    /// The id of the member holding this public key.
    pub fn of(public: &PublicKey) -> MemberId {
        MemberId(crate::crypto::ecc::default_client_id(public))
    }

    /// Parses 32 hex digits.
    pub fn parse_hex(text: &str) -> Option<MemberId> {
        todo!("{text}")
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberId({self})")
    }
}

impl fmt::Display for MemberId {
    /// All 32 hex digits: operators copy them into `pav revoke`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 .0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One admitted member as the roster lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterEntry {
    /// Its id (derived from `public`).
    pub id: MemberId,
    /// Its static X25519 public key: peers admit exactly this key for it.
    pub public: PublicKey,
    /// Its role (at most 32 bytes of UTF-8), from the policy or its enrolment.
    pub role: String,
    /// Its human label (at most 32 bytes of UTF-8).
    pub name: String,
    /// The address the authority last saw it at; `None` before it was ever seen.
    pub addr: Option<SocketAddr>,
    /// Whether its session with the authority is alive.
    pub up: bool,
}

/// The admitted members, versioned. Versions grow by one per publication within an epoch; a
/// new epoch means an authority that started without its stored state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roster {
    /// Random per authority store.
    pub epoch: u64,
    /// 0 before anything was received or published.
    pub version: u64,
    /// The members, by id.
    pub entries: BTreeMap<MemberId, RosterEntry>,
}

/// Why a member did not apply a roster publication. Each is counted; none is fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RosterError {
    /// The publication does not parse.
    Malformed,
    /// Its signature is not the authority's.
    BadSignature,
    /// Same epoch, version not above ours.
    Stale,
    /// A delta whose base is not our version: we fetch a snapshot.
    Gap,
    /// A delta that applied but whose digest differs from the result: we fetch a snapshot.
    Inconsistent,
}

/// What applying a publication changed, for the member's events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RosterUpdate {
    /// Whether the epoch changed (a snapshot from an authority that lost its store).
    pub reset: bool,
    /// Members added.
    pub added: Vec<MemberId>,
    /// Members whose entry changed (address, up/down, role, name).
    pub changed: Vec<MemberId>,
    /// Members removed (revoked).
    pub removed: Vec<MemberId>,
}

impl Roster {
    /// BLAKE2b-256 of the canonical encoding (`docs/PROTOCOL.md` §15).
    pub fn digest(&self) -> [u8; 32] {
        todo!()
    }
}
