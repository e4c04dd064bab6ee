//! How a member takes the authority's roster publications (`docs/PROTOCOL.md` §15.9): the
//! rules themselves (signature by the pinned key, only forward within an epoch, a delta only
//! on its base and only if the result matches its digest) are [`Roster`]'s; here a gap or a
//! mismatch fetches a snapshot, every publication not applied is counted in
//! [`RosterStats`], and an applied one is followed (our server's keys, peer clients).
//!
//! [`Roster`]: crate::features::authority::Roster
//! [`RosterStats`]: super::RosterStats

use super::{Member, MemberEvent};
use crate::features::authority::{RosterError, RosterUpdate};
use crate::time::Instant;
use crate::wire::authority::SNAPSHOT;

impl Member {
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

    /// A `snapshot` (published, or a `FETCH` answer).
    pub(super) fn on_snapshot(&mut self, now: Instant, payload: &[u8]) {
        self.on_publication(now, SNAPSHOT, payload);
    }

    /// A publication named `name` (`snapshot` or `delta`) on `core.roster`.
    pub(super) fn on_publication(&mut self, now: Instant, name: &str, payload: &[u8]) {
        // Before our first admission we know no key to verify with.
        let Some(signing) = self.signing else {
            return self.reject(RosterError::BadSignature);
        };
        match self.roster.apply_publication(name, payload, &signing) {
            Ok(update) => self.applied(now, update),
            Err(e @ (RosterError::Gap | RosterError::Inconsistent)) => {
                self.reject(e);
                self.fetch(now);
            }
            Err(e) => self.reject(e),
        }
    }

    /// Tells the driver what an applied version changed, and follows it.
    fn applied(&mut self, now: Instant, update: RosterUpdate) {
        self.stats.applied += 1;
        self.follow_roster(now, &update);
        self.events.push_back(MemberEvent::Roster {
            version: self.roster.version,
            update,
        });
    }
}
