//! Publication: changes are coalesced for `publish_delay` (revocations go at once) into one
//! version, which is cut into a store batch and published (a `delta`, or a `snapshot` when a
//! delta cannot be made) to every member or operator subscribed to the roster, once the
//! driver has stored it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::mem::take;
use core::net::SocketAddr;

use super::{Authority, AuthorityEvent, StoreBatch, StoreOp, StoreTable};
use crate::endpoint::SendOptions;
use crate::features::authority::Roster;
use crate::time::Instant;
use crate::wire::authority::{DELTA, ROSTER_TARGET, SNAPSHOT};

/// When the next version is cut.
#[derive(Clone, Debug, Default)]
pub(super) struct Publisher {
    /// Something changed since the last cut.
    pub(super) changed: bool,
    /// Cut at the next chance, without waiting for the delay.
    pub(super) immediate: bool,
    /// When the coalescing window of the first change since the last cut ends.
    pub(super) at: Option<Instant>,
}

impl Publisher {
    /// When a version must be cut.
    pub(super) fn due(&self) -> Option<Instant> {
        if !self.changed {
            None
        } else if self.immediate {
            Some(Instant::ZERO)
        } else {
            self.at
        }
    }
}

impl Authority {
    /// Notes a roster change, to be published within `publish_delay`.
    pub(super) fn changed(&mut self, now: Instant) {
        self.publish.changed = true;
        if self.publish.at.is_none() {
            self.publish.at = Some(now + self.limits.publish_delay);
        }
    }

    /// Cuts a version if one is due.
    pub(super) fn publish_due(&mut self, now: Instant) {
        if !self.publish.changed {
            return;
        }
        let at = *self
            .publish
            .at
            .get_or_insert(now + self.limits.publish_delay);
        if self.publish.immediate || at <= now {
            self.cut_version(now);
        }
    }

    /// Makes the next version from the members now, with the store operations that record
    /// it; it is published when stored (at once without a store).
    fn cut_version(&mut self, now: Instant) {
        self.publish = Publisher::default();
        let prev = &self.store.cut;
        let next = Roster {
            epoch: prev.epoch,
            version: prev.version + 1,
            entries: self
                .members
                .iter()
                .map(|(id, m)| (*id, m.entry.clone()))
                .collect::<BTreeMap<_, _>>(),
        };
        let mut ops = take(&mut self.store.pending);
        if prev.version == 0 {
            ops.push(meta("epoch", next.epoch));
        }
        ops.push(meta("version", next.version));
        for (id, m) in &self.members {
            if prev.entries.get(id) != Some(&m.entry) {
                ops.push(StoreOp::Put {
                    table: StoreTable::Members,
                    key: id.0 .0.to_vec(),
                    value: super::store::member_value(m),
                });
            }
        }
        for id in prev.entries.keys() {
            if !self.members.contains_key(id) {
                ops.push(StoreOp::Delete {
                    table: StoreTable::Members,
                    key: id.0 .0.to_vec(),
                });
            }
        }
        self.store.cut = next.clone();
        if self.durable {
            let id = self.store.next_batch();
            self.store.ready.push_back(StoreBatch { id, ops });
            self.store.in_flight.push_back((id, Some(next)));
        } else {
            self.publish_version(now, next);
        }
    }

    /// Sends `next` to every reader subscribed, as a delta from what they hold.
    pub(super) fn publish_version(&mut self, now: Instant, next: Roster) {
        let mut payload = Vec::new();
        let delta = (self.roster.version > 0 && self.roster.epoch == next.epoch)
            .then(|| self.roster.delta_to(&next, &self.key))
            .flatten();
        let name = match delta {
            Some(d) => {
                d.encode(&mut payload);
                DELTA
            }
            None => {
                next.snapshot(&self.key).encode(&mut payload);
                SNAPSHOT
            }
        };
        let readers: Vec<SocketAddr> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.subscribed && s.reader())
            .map(|(a, _)| *a)
            .collect();
        for addr in readers {
            // A session that cannot take it (queue full, gone) catches up by FETCH or at its
            // next subscription; nothing else to do here.
            let _ = self.server.send_message(
                now,
                addr,
                ROSTER_TARGET,
                name,
                &payload,
                SendOptions::reliable(),
            );
        }
        self.stats.published += 1;
        self.events.push_back(AuthorityEvent::Published {
            version: next.version,
        });
        self.roster = next;
    }

    /// Sends the roster as last published to one reader.
    pub(super) fn send_snapshot(&mut self, now: Instant, addr: SocketAddr) {
        if self.roster.version == 0 {
            // Nothing published yet: the first version goes out as a snapshot to it.
            return;
        }
        let mut payload = Vec::new();
        self.roster.snapshot(&self.key).encode(&mut payload);
        let _ = self.server.send_message(
            now,
            addr,
            ROSTER_TARGET,
            SNAPSHOT,
            &payload,
            SendOptions::reliable(),
        );
    }
}

fn meta(key: &str, value: u64) -> StoreOp {
    StoreOp::Put {
        table: StoreTable::Meta,
        key: key.as_bytes().to_vec(),
        value: value.to_le_bytes().to_vec(),
    }
}
