//! The suite 3 routing tables of a server, laid out for idle sessions: every session has an
//! entry in both, so their bytes count per session (`compare`'s memory rows).
//!
//! - [`ByIndex`]: receiver index → the session's address, on every data packet. IPv4 addresses
//!   (6 bytes) are kept apart from the rest (32 bytes each as `SocketAddr`), which makes an
//!   entry a fifth of its size for the common case.
//! - [`ByPeer`]: a peer's identity → one of its session's indices, for an initiation, a group
//!   packet and a replaced session. Keyed by a 4-byte fingerprint of the identity (33 bytes as
//!   `PeerId`), with every hit checked against the session it leads to, so that two peers
//!   whose fingerprints collide only cost a second lookup, never a wrong answer.
//!
//! Parses no wire bytes, sets no timers, emits no events.

use alloc::collections::{BTreeMap, BTreeSet};
use core::net::{SocketAddr, SocketAddrV4};

use crate::id::PeerId;
use crate::wire::noise::SessionIndex;

/// Receiver index → address of the session it names.
#[derive(Debug, Default)]
pub(super) struct ByIndex {
    v4: BTreeMap<SessionIndex, SocketAddrV4>,
    other: BTreeMap<SessionIndex, SocketAddr>,
}

impl ByIndex {
    /// The address of the session `index` names.
    pub(super) fn get(&self, index: &SessionIndex) -> Option<SocketAddr> {
        match self.v4.get(index) {
            Some(a) => Some(SocketAddr::V4(*a)),
            None => self.other.get(index).copied(),
        }
    }

    /// Whether `index` names a session.
    pub(super) fn contains_key(&self, index: &SessionIndex) -> bool {
        self.v4.contains_key(index) || self.other.contains_key(index)
    }

    /// Routes `index` to `addr`, in place of what it named before.
    pub(super) fn insert(&mut self, index: SessionIndex, addr: SocketAddr) {
        self.remove(&index);
        match addr {
            SocketAddr::V4(a) => {
                self.v4.insert(index, a);
            }
            other => {
                self.other.insert(index, other);
            }
        }
    }

    /// Forgets `index`.
    pub(super) fn remove(&mut self, index: &SessionIndex) {
        self.v4.remove(index);
        self.other.remove(index);
    }

    /// Moves `index` from the session at `old` to `new`; nothing if it names another.
    pub(super) fn move_if(&mut self, index: SessionIndex, old: SocketAddr, new: SocketAddr) {
        if self.get(&index) == Some(old) {
            self.insert(index, new);
        }
    }

    /// Forgets every index that names the session at `addr`.
    pub(super) fn forget_addr(&mut self, addr: SocketAddr) {
        match addr {
            SocketAddr::V4(a) => self.v4.retain(|_, v| *v != a),
            other => self.other.retain(|_, v| *v != other),
        }
    }
}

/// A peer's identity → an index of its session, through a fingerprint; see the module docs.
#[derive(Debug, Default)]
pub(super) struct ByPeer {
    entries: BTreeSet<(u32, SessionIndex)>,
}

impl ByPeer {
    /// Records that `index` names a session of `peer`.
    pub(super) fn insert(&mut self, peer: &PeerId, index: SessionIndex) {
        self.entries.insert((fingerprint(peer), index));
    }

    /// Forgets that `index` names a session of `peer`; whether it was recorded.
    pub(super) fn remove(&mut self, peer: &PeerId, index: SessionIndex) -> bool {
        self.entries.remove(&(fingerprint(peer), index))
    }

    /// The indices recorded for `peer`'s fingerprint: its session's, and those of any peer
    /// whose fingerprint collides with it, for the caller to tell apart.
    pub(super) fn candidates(&self, peer: &PeerId) -> impl Iterator<Item = SessionIndex> + '_ {
        let f = fingerprint(peer);
        self.entries
            .range((f, SessionIndex(0))..=(f, SessionIndex(u32::MAX)))
            .map(|(_, i)| *i)
    }
}

/// Four bytes of `peer`: a configured id mixed (ids are often alike in their first bytes),
/// a guest's hash as it is (it is already a hash of the key).
fn fingerprint(peer: &PeerId) -> u32 {
    match peer {
        PeerId::Client(id) => {
            // FNV-1a: spreads ids that differ in any byte; collisions only cost a lookup.
            let mut h: u32 = 0x811c_9dc5;
            for b in id.0 {
                h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
            }
            h
        }
        PeerId::Guest(hash) => u32::from_le_bytes([hash[0], hash[1], hash[2], hash[3]]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ClientId;

    #[test]
    fn both_address_families_route() {
        let mut t = ByIndex::default();
        let v4: SocketAddr = "192.0.2.1:7".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:7".parse().unwrap();
        t.insert(SessionIndex(1), v4);
        t.insert(SessionIndex(2), v6);
        assert_eq!(t.get(&SessionIndex(1)), Some(v4));
        assert_eq!(t.get(&SessionIndex(2)), Some(v6));
        // Moving to the other family leaves no stale entry behind.
        t.move_if(SessionIndex(1), v4, v6);
        assert_eq!(t.get(&SessionIndex(1)), Some(v6));
        t.move_if(SessionIndex(1), v4, v4);
        assert_eq!(
            t.get(&SessionIndex(1)),
            Some(v6),
            "only from the named address"
        );
        t.forget_addr(v6);
        assert!(!t.contains_key(&SessionIndex(1)) && !t.contains_key(&SessionIndex(2)));
    }

    #[test]
    fn a_peer_finds_its_indices_and_only_those_of_its_fingerprint() {
        let mut t = ByPeer::default();
        let a = PeerId::Client(ClientId([1; 16]));
        let b = PeerId::Client(ClientId([2; 16]));
        t.insert(&a, SessionIndex(10));
        t.insert(&b, SessionIndex(20));
        assert_eq!(
            t.candidates(&a).collect::<alloc::vec::Vec<_>>(),
            [SessionIndex(10)]
        );
        t.remove(&a, SessionIndex(10));
        assert_eq!(t.candidates(&a).count(), 0);
        assert_eq!(t.candidates(&b).count(), 1);
        // Ids alike in all but their last byte get different fingerprints.
        let mut id = [7; 16];
        let f = fingerprint(&PeerId::Client(ClientId(id)));
        id[15] = 8;
        assert_ne!(f, fingerprint(&PeerId::Client(ClientId(id))));
    }
}
