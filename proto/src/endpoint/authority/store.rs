//! Durable state: the batches the driver writes atomically before anything in them is
//! published, and the restore of an authority from its records.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use super::admission::{AdmittedBy, Member};
use super::{
    Authority, AuthorityConfig, BatchId, RestoreError, StoreBatch, StoreOp, StoreTable,
    StoredRecord,
};
use crate::features::authority::lockout::{KeyBytes, LockoutRecord, Lockouts};
use crate::features::authority::{MemberId, Roster};
use crate::time::Instant;
use crate::wire::authority::{encode_entry, parse_entry};

/// Batches on their way to the store.
#[derive(Clone, Debug, Default)]
pub(super) struct Store {
    /// Operations not in a batch yet.
    pub(super) pending: Vec<StoreOp>,
    /// Batches for `poll_store`.
    pub(super) ready: VecDeque<StoreBatch>,
    /// Batches handed out and not yet stored, with the version each publishes.
    pub(super) in_flight: VecDeque<(BatchId, Option<Roster>)>,
    /// The roster of the last version cut (stored or on its way).
    pub(super) cut: Roster,
    next: u64,
    /// Lockouts read at restore, applied at the first instant we are told.
    restored: Vec<(KeyBytes, LockoutRecord)>,
}

impl Store {
    pub(super) fn next_batch(&mut self) -> BatchId {
        self.next += 1;
        BatchId(self.next)
    }

    /// Applies restored lockouts: their locks run from the first `now` we see.
    pub(super) fn start(&mut self, now: Instant, lockouts: &mut Lockouts) {
        for (key, record) in self.restored.drain(..) {
            lockouts.restore(now, key, record);
        }
    }
}

/// A member's stored value: its canonical entry, then how it was admitted.
pub(super) fn member_value(m: &Member) -> Vec<u8> {
    let mut v = Vec::new();
    encode_entry(&m.entry, &mut v);
    v.push(m.by as u8);
    v
}

impl Authority {
    /// Records a key's lockout state (or its absence) in the store.
    pub(super) fn store_lockout(&mut self, now: Instant, key: KeyBytes) {
        if !self.durable {
            return;
        }
        let op = match self.lockouts.record(now, &key) {
            Some(r) => StoreOp::Put {
                table: StoreTable::Lockouts,
                key: key.to_vec(),
                value: r.encode().to_vec(),
            },
            None => StoreOp::Delete {
                table: StoreTable::Lockouts,
                key: key.to_vec(),
            },
        };
        let id = self.store.next_batch();
        let mut ops = core::mem::take(&mut self.store.pending);
        ops.push(op);
        self.store.ready.push_back(StoreBatch { id, ops });
        self.store.in_flight.push_back((id, None));
    }

    /// Publishes, in order, every version whose batch is now stored.
    pub(super) fn on_stored(&mut self, now: Instant, batch: BatchId) {
        while self
            .store
            .in_flight
            .front()
            .is_some_and(|(id, _)| *id <= batch)
        {
            if let Some((_, Some(roster))) = self.store.in_flight.pop_front() {
                self.publish_version(now, roster);
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn u64_of(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

pub(super) fn restore<'a>(
    config: AuthorityConfig,
    records: impl IntoIterator<Item = StoredRecord<'a>>,
) -> Result<Authority, RestoreError> {
    let mut epoch = None;
    let mut version = None;
    let mut members = BTreeMap::new();
    let mut revoked = Vec::new();
    let mut lockouts = Vec::new();
    for r in records {
        let bad = || RestoreError::BadRecord {
            table: r.table,
            key: hex(r.key),
        };
        match r.table {
            StoreTable::Meta => match r.key {
                b"epoch" => epoch = Some(u64_of(r.value).ok_or_else(bad)?),
                b"version" => version = Some(u64_of(r.value).ok_or_else(bad)?),
                // The adapter's own keys (the policy text).
                _ => {}
            },
            StoreTable::Members => {
                let (entry, rest) = parse_entry(r.value).map_err(|_| bad())?;
                let by = match rest {
                    [b] => AdmittedBy::from_byte(*b).ok_or_else(bad)?,
                    _ => return Err(bad()),
                };
                if r.key != entry.id.0 .0 || MemberId::of(&entry.public) != entry.id {
                    return Err(bad());
                }
                members.insert(entry.id, Member { entry, by });
            }
            StoreTable::Revoked => {
                let key: KeyBytes = r.key.try_into().map_err(|_| bad())?;
                revoked.push(key);
            }
            StoreTable::Lockouts => {
                let key: KeyBytes = r.key.try_into().map_err(|_| bad())?;
                lockouts.push((key, LockoutRecord::decode(r.value).ok_or_else(bad)?));
            }
        }
    }
    let (Some(epoch), Some(version)) = (epoch, version) else {
        if members.is_empty() && revoked.is_empty() && lockouts.is_empty() {
            return Ok(Authority::new(config));
        }
        return Err(RestoreError::MissingMeta);
    };
    let mut a = Authority::empty(config, epoch);
    a.roster = Roster {
        epoch,
        version,
        entries: members
            .iter()
            .map(|(id, m): (&MemberId, &Member)| (*id, m.entry.clone()))
            .collect(),
    };
    a.store.cut = a.roster.clone();
    a.revoked.extend(revoked);
    a.store.restored = lockouts;
    // Sessions did not survive the restart: every member is down until it reconnects.
    for m in members.values_mut() {
        if m.entry.up {
            m.entry.up = false;
            a.publish.changed = true;
        }
    }
    a.members = members;
    Ok(a)
}
