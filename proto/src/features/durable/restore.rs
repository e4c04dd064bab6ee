//! Reading the stored records back at start: every row decoded and checked before anything
//! changes, so a refused store leaves the endpoint as it was.

use alloc::collections::BTreeMap;

use super::dedup::{Dedup, InboxEntry, Window};
use super::records::{self, keys, InboxKey};
use super::sender::{Entry, Sender, State};
use super::{
    DurableRecord, DurableRestoreError, DurableSeq, DurableTable, OriginId, StoreIdentity,
};

/// The decoded records.
#[derive(Debug, Default)]
pub(super) struct Restored {
    pub(super) identity: Option<StoreIdentity>,
    pub(super) origin: Option<OriginId>,
    pub(super) next_seq: Option<u64>,
    pub(super) send_mark: Option<u64>,
    pub(super) consume_mark: Option<u64>,
    /// Whether any outbox, seen or inbox row exists.
    pub(super) rows: bool,
    pub(super) outbox: BTreeMap<DurableSeq, Entry>,
    pub(super) dedup: Dedup,
}

fn bad(table: DurableTable, key: &[u8]) -> DurableRestoreError {
    DurableRestoreError::BadRecord {
        table,
        key: records::hex(key),
    }
}

impl Restored {
    /// Decodes `records`.
    ///
    /// # Errors
    /// `BadRecord` for the first row that does not decode.
    pub(super) fn decode<'a>(
        records: impl IntoIterator<Item = DurableRecord<'a>>,
    ) -> Result<Self, DurableRestoreError> {
        let mut r = Restored::default();
        for rec in records {
            let (table, key, value) = (rec.table, rec.key, rec.value);
            let bad = || bad(table, key);
            match table {
                DurableTable::Meta => {
                    let number = || records::u64_value(value).ok_or_else(bad);
                    match key {
                        k if k == keys::IDENTITY => {
                            let id: [u8; 32] = value.try_into().map_err(|_| bad())?;
                            r.identity = Some(StoreIdentity(id));
                        }
                        k if k == keys::ORIGIN => r.origin = Some(OriginId(number()?)),
                        k if k == keys::NEXT_SEQ => {
                            let n = number()?;
                            if n == 0 {
                                return Err(bad());
                            }
                            r.next_seq = Some(n);
                        }
                        k if k == keys::SEND_MARK => r.send_mark = Some(number()?),
                        k if k == keys::CONSUME_MARK => r.consume_mark = Some(number()?),
                        // The adapter's own rows.
                        _ => {}
                    }
                }
                DurableTable::Outbox => {
                    let seq = records::parse_outbox_key(key).ok_or_else(bad)?;
                    let (to, message) = records::parse_outbox_value(value).ok_or_else(bad)?;
                    r.rows = true;
                    r.outbox.insert(
                        seq,
                        Entry {
                            to,
                            message,
                            state: State::Ready,
                        },
                    );
                }
                DurableTable::Seen => {
                    let sender = records::parse_seen_key(key).ok_or_else(bad)?;
                    let w = Window::decode(value).ok_or_else(bad)?;
                    r.rows = true;
                    r.dedup.senders.insert(sender, w);
                }
                DurableTable::Inbox => {
                    let k: InboxKey = records::parse_inbox_key(key).ok_or_else(bad)?;
                    let message = records::parse_body(value).ok_or_else(bad)?;
                    r.rows = true;
                    r.dedup.inbox.insert(
                        k,
                        InboxEntry {
                            message,
                            stored: true,
                            ack: None,
                        },
                    );
                }
            }
        }
        Ok(r)
    }

    /// Checks the identity and the meta rows; the stored sender state if the store is not
    /// fresh.
    ///
    /// # Errors
    /// `ForeignIdentity`, `MissingMeta`, `SeqAhead`.
    pub(super) fn check(
        &mut self,
        identity: StoreIdentity,
    ) -> Result<Option<(OriginId, Sender)>, DurableRestoreError> {
        if self.identity.is_some_and(|i| i != identity) {
            return Err(DurableRestoreError::ForeignIdentity);
        }
        let meta = (self.identity, self.origin, self.next_seq);
        let (origin, next_seq) = match meta {
            (None, None, None) if !self.rows => return Ok(None),
            (Some(_), Some(origin), Some(next)) => (origin, next),
            _ => return Err(DurableRestoreError::MissingMeta),
        };
        if self
            .outbox
            .last_key_value()
            .is_some_and(|(s, _)| s.0 >= next_seq)
        {
            return Err(DurableRestoreError::SeqAhead);
        }
        let mut sender = Sender::new(next_seq);
        for (seq, e) in core::mem::take(&mut self.outbox) {
            sender.insert(seq, e);
        }
        Ok(Some((origin, sender)))
    }
}
