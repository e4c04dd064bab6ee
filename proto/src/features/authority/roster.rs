//! The roster: the admitted members of a fleet, versioned, with the canonical encoding that
//! its digest and signatures cover, and the rules by which a member applies a publication.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;

use super::signing::{SigningKey, SigningPublic};
use crate::crypto::ecc::PublicKey;
use crate::id::ClientId;
use crate::wire::authority::{self as wire, Delta, Snapshot};

/// A member's identity: the default client id of its static public key (the first 16 bytes
/// of `BLAKE2b-256(public key)`), so nobody can claim it without the key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MemberId(pub ClientId);

impl MemberId {
    /// The id of the member holding this public key.
    pub fn of(public: &PublicKey) -> MemberId {
        MemberId(crate::crypto::ecc::default_client_id(public))
    }

    /// Parses 32 hex digits.
    pub fn parse_hex(text: &str) -> Option<MemberId> {
        let digits = text.as_bytes();
        if digits.len() != 32 {
            return None;
        }
        let mut id = [0u8; 16];
        for (byte, pair) in id.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
        }
        Some(MemberId(ClientId(id)))
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
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
        let mut body = Vec::new();
        wire::encode_roster_body(self.epoch, self.version, self.entries.values(), &mut body);
        wire::hash_parts(&[b"pavillion roster digest v1", &body])
    }

    /// The whole roster as a signed `snapshot` (the authority's side).
    pub fn snapshot(&self, key: &SigningKey) -> Snapshot {
        let mut snapshot = Snapshot {
            epoch: self.epoch,
            version: self.version,
            entries: self.entries.values().cloned().collect(),
            signature: [0; 64],
        };
        snapshot.signature = key.sign(&snapshot.signed_message());
        snapshot
    }

    /// The signed `delta` that turns `self` into `next` (the authority's side), or `None` if
    /// it would not fit a delta's two-byte counts (send a snapshot then). Epochs must match.
    pub fn delta_to(&self, next: &Roster, key: &SigningKey) -> Option<Delta> {
        let upserts: Vec<RosterEntry> = next
            .entries
            .values()
            .filter(|e| self.entries.get(&e.id) != Some(*e))
            .cloned()
            .collect();
        let removals: Vec<MemberId> = self
            .entries
            .keys()
            .filter(|id| !next.entries.contains_key(id))
            .copied()
            .collect();
        if upserts.len() > usize::from(u16::MAX) || removals.len() > usize::from(u16::MAX) {
            return None;
        }
        let mut delta = Delta {
            epoch: next.epoch,
            base: self.version,
            version: next.version,
            upserts,
            removals,
            digest: next.digest(),
            signature: [0; 64],
        };
        delta.signature = key.sign(&delta.signed_message());
        Some(delta)
    }

    /// Applies a `snapshot` (a member's side): it replaces the roster if its signature is the
    /// authority's and it is newer (same epoch, higher version) or of another epoch (an
    /// authority that lost its store: `reset`).
    ///
    /// # Errors
    /// [`RosterError`]: the roster is left unchanged.
    pub fn apply_snapshot(
        &mut self,
        snapshot: &Snapshot,
        key: &SigningPublic,
    ) -> Result<RosterUpdate, RosterError> {
        if !key.verify(&snapshot.signed_message(), &snapshot.signature) {
            return Err(RosterError::BadSignature);
        }
        let fresh = self.version == 0;
        if !fresh && snapshot.epoch == self.epoch && snapshot.version <= self.version {
            return Err(RosterError::Stale);
        }
        let mut entries = BTreeMap::new();
        let mut last: Option<MemberId> = None;
        for e in &snapshot.entries {
            // Sorted, unique, and each id the hash of its key: what peers admit for an id must
            // be the key it names.
            if last.is_some_and(|l| l >= e.id) || MemberId::of(&e.public) != e.id {
                return Err(RosterError::Malformed);
            }
            last = Some(e.id);
            entries.insert(e.id, e.clone());
        }
        let next = Roster {
            epoch: snapshot.epoch,
            version: snapshot.version,
            entries,
        };
        let mut update = self.diff(&next);
        update.reset = !fresh && snapshot.epoch != self.epoch;
        *self = next;
        Ok(update)
    }

    /// Applies a `delta` (a member's side). `Gap` and `Inconsistent` mean: fetch a snapshot.
    ///
    /// # Errors
    /// [`RosterError`]: the roster is left unchanged.
    pub fn apply_delta(
        &mut self,
        delta: &Delta,
        key: &SigningPublic,
    ) -> Result<RosterUpdate, RosterError> {
        if !key.verify(&delta.signed_message(), &delta.signature) {
            return Err(RosterError::BadSignature);
        }
        if delta.epoch == self.epoch && delta.version <= self.version {
            return Err(RosterError::Stale);
        }
        if delta.epoch != self.epoch || delta.base != self.version || self.version == 0 {
            return Err(RosterError::Gap);
        }
        let mut next = Roster {
            epoch: self.epoch,
            version: delta.version,
            entries: self.entries.clone(),
        };
        for e in &delta.upserts {
            if MemberId::of(&e.public) != e.id {
                return Err(RosterError::Malformed);
            }
            next.entries.insert(e.id, e.clone());
        }
        for id in &delta.removals {
            next.entries.remove(id);
        }
        if !crate::crypto::ct_eq(&next.digest(), &delta.digest) {
            return Err(RosterError::Inconsistent);
        }
        let update = self.diff(&next);
        *self = next;
        Ok(update)
    }

    /// Parses and applies a publication by its message name ([`wire::SNAPSHOT`] or
    /// [`wire::DELTA`]); anything else, or bytes that do not parse, is `Malformed`.
    ///
    /// # Errors
    /// As [`Roster::apply_snapshot`] and [`Roster::apply_delta`].
    pub fn apply_publication(
        &mut self,
        name: &str,
        payload: &[u8],
        key: &SigningPublic,
    ) -> Result<RosterUpdate, RosterError> {
        match name {
            wire::SNAPSHOT => {
                let s = Snapshot::parse(payload).map_err(|_| RosterError::Malformed)?;
                self.apply_snapshot(&s, key)
            }
            wire::DELTA => {
                let d = Delta::parse(payload).map_err(|_| RosterError::Malformed)?;
                self.apply_delta(&d, key)
            }
            _ => Err(RosterError::Malformed),
        }
    }

    /// What changes from `self` to `next`.
    fn diff(&self, next: &Roster) -> RosterUpdate {
        let mut update = RosterUpdate::default();
        for (id, e) in &next.entries {
            match self.entries.get(id) {
                None => update.added.push(*id),
                Some(old) if old != e => update.changed.push(*id),
                Some(_) => {}
            }
        }
        update.removed = self
            .entries
            .keys()
            .filter(|id| !next.entries.contains_key(id))
            .copied()
            .collect();
        update
    }
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
#[path = "roster_tests.rs"]
mod tests;
