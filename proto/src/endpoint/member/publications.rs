//! How a member applies the authority's roster publications (`docs/PROTOCOL.md` §15): only
//! what the pinned signing key signed, only forward within an epoch, a delta only on the
//! version it was made from and only if the result matches its digest; a gap or a mismatch
//! fetches a snapshot. Every publication not applied is counted in [`RosterStats`].
//!
//! [`RosterStats`]: super::RosterStats

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::{Member, MemberEvent};
use crate::features::authority::{Roster, RosterEntry, RosterError, RosterUpdate};
use crate::time::Instant;
use crate::wire::authority::{Delta, Snapshot};

/// The domain string of roster signatures.
const SIGNATURE_DOMAIN: &[u8] = b"pavillion roster v1";
/// The name byte of a snapshot in the signed bytes.
const NAME_SNAPSHOT: u8 = 0;
/// The name byte of a delta in the signed bytes.
const NAME_DELTA: u8 = 1;
/// An Ed25519 signature's length; it ends every publication.
const SIGNATURE_LEN: usize = 64;

impl Member {
    /// Whether `payload` (a publication ending in its signature) is signed by the pinned key.
    fn signed(&self, name: u8, payload: &[u8]) -> bool {
        let Some(signing) = self.signing else {
            return false;
        };
        let Some(body_len) = payload.len().checked_sub(SIGNATURE_LEN) else {
            return false;
        };
        let (body, signature) = payload.split_at(body_len);
        let Ok(signature) = <[u8; SIGNATURE_LEN]>::try_from(signature) else {
            return false;
        };
        let mut message = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 1 + body.len());
        message.extend_from_slice(SIGNATURE_DOMAIN);
        message.push(name);
        message.extend_from_slice(body);
        signing.verify(&message, &signature)
    }

    /// Counts a publication not applied and tells the driver.
    pub(super) fn reject(&mut self, error: RosterError) {
        let s = &mut self.stats;
        match error {
            RosterError::Malformed => s.malformed += 1,
            RosterError::BadSignature => s.bad_signature += 1,
            RosterError::Stale => s.stale += 1,
            RosterError::Gap => s.gaps += 1,
            RosterError::Inconsistent => s.inconsistent += 1,
        }
        self.events.push_back(MemberEvent::RosterRejected(error));
    }

    /// A `snapshot` (published, or a `FETCH` answer): replaces our roster if newer or of
    /// another epoch.
    pub(super) fn on_snapshot(&mut self, now: Instant, payload: &[u8]) {
        let Ok(snapshot) = Snapshot::parse(payload) else {
            return self.reject(RosterError::Malformed);
        };
        if !self.signed(NAME_SNAPSHOT, payload) {
            return self.reject(RosterError::BadSignature);
        }
        let Some(entries) = by_id(snapshot.entries) else {
            return self.reject(RosterError::Malformed);
        };
        let known = self.roster.version != 0;
        if known && snapshot.epoch == self.roster.epoch && snapshot.version <= self.roster.version {
            return self.reject(RosterError::Stale);
        }
        let next = Roster {
            epoch: snapshot.epoch,
            version: snapshot.version,
            entries,
        };
        let reset = known && snapshot.epoch != self.roster.epoch;
        self.install(now, next, reset);
    }

    /// A `delta`: applied only on the version it was made from, and only if the result
    /// matches its digest.
    pub(super) fn on_delta(&mut self, now: Instant, payload: &[u8]) {
        let Ok(delta) = Delta::parse(payload) else {
            return self.reject(RosterError::Malformed);
        };
        if !self.signed(NAME_DELTA, payload) {
            return self.reject(RosterError::BadSignature);
        }
        let same_epoch = self.roster.version != 0 && delta.epoch == self.roster.epoch;
        if same_epoch && delta.version <= self.roster.version {
            return self.reject(RosterError::Stale);
        }
        if !same_epoch || delta.base != self.roster.version {
            self.reject(RosterError::Gap);
            return self.fetch(now);
        }
        let Some(upserts) = by_id(delta.upserts) else {
            return self.reject(RosterError::Malformed);
        };
        let mut next = self.roster.clone();
        next.version = delta.version;
        next.entries.extend(upserts);
        for id in &delta.removals {
            next.entries.remove(id);
        }
        if next.digest() != delta.digest {
            self.reject(RosterError::Inconsistent);
            return self.fetch(now);
        }
        self.install(now, next, false);
    }

    /// Makes `next` our roster, tells the driver what changed, and follows it.
    fn install(&mut self, now: Instant, next: Roster, reset: bool) {
        let old = core::mem::replace(&mut self.roster, next);
        let mut update = RosterUpdate {
            reset,
            ..RosterUpdate::default()
        };
        for (id, entry) in &self.roster.entries {
            match old.entries.get(id) {
                None => update.added.push(*id),
                Some(before) if before != entry => update.changed.push(*id),
                Some(_) => {}
            }
        }
        update.removed = old
            .entries
            .keys()
            .filter(|id| !self.roster.entries.contains_key(id))
            .copied()
            .collect();
        self.stats.applied += 1;
        self.follow_roster(now, &update);
        self.events.push_back(MemberEvent::Roster {
            version: self.roster.version,
            update,
        });
    }
}

/// Entries by id, or `None` if one's id is not its key's (the authority signs only entries
/// it derived, so this is a broken publication).
fn by_id(
    entries: Vec<RosterEntry>,
) -> Option<BTreeMap<crate::features::authority::MemberId, RosterEntry>> {
    let mut out = BTreeMap::new();
    for e in entries {
        if crate::features::authority::MemberId::of(&e.public) != e.id {
            return None;
        }
        out.insert(e.id, e);
    }
    Some(out)
}
