//! The hand-off to the store: cutting batches, and what their confirmation or failure
//! releases.

use alloc::vec::Vec;

use super::records::{self, keys};
use super::{sender, Delivery, Durable, DurableBatch, DurableId, DurableTable, Enabled, Released};
use crate::store::{BatchId, StoreBatch};

impl Durable {
    /// The pending operations as one batch, if any. The rows many operations rewrite
    /// (`meta`, `seen`) come last, once each, with their current values.
    pub(crate) fn poll_store(&mut self) -> Option<DurableBatch> {
        let e = self.inner.as_mut()?;
        if e.journal.is_idle() {
            return None;
        }
        e.flush_dirty();
        let (id, ops) = e.journal.cut();
        Some(StoreBatch { id, ops })
    }

    /// The driver stored every batch up to `batch`: sends in them become ready, receptions
    /// in them are acknowledged and delivered.
    pub(crate) fn stored(&mut self, batch: BatchId) -> Released {
        let mut out = Released::default();
        let Some(e) = self.inner.as_mut() else {
            return out;
        };
        for b in e.journal.confirm(batch) {
            for w in b.waiters {
                match w {
                    records::Waiter::Send(seq) => {
                        if e.sender.state(seq) == Some(sender::State::Unstored) {
                            e.sender.set_state(seq, sender::State::Ready);
                            out.sendable = true;
                        }
                    }
                    records::Waiter::Receive(key @ (from, origin, seq)) => {
                        let Some(m) = e.dedup.inbox.get_mut(&key).filter(|m| !m.stored) else {
                            continue;
                        };
                        m.stored = true;
                        out.deliveries.push(Delivery {
                            from,
                            id: DurableId { origin, seq },
                            message: m.message.clone(),
                            redelivered: false,
                            ack: m.ack.take(),
                        });
                    }
                }
            }
        }
        out
    }

    /// The driver could not store the batches handed out up to `batch` (the ones not already
    /// confirmed). Every batch handed out after them fails too: its `seen` rows may count
    /// messages whose `inbox` rows were in a failed batch, and a crash after storing it
    /// alone would lose them. So the driver, after a failed write, writes none of the batches
    /// it still holds; it reports the last of them here and goes on with `poll_store`.
    ///
    /// Sends in failed batches fail (`DurableFailure::Store`; their seqs are not reused);
    /// received messages in them are forgotten, unacknowledged, so their senders retry. Every
    /// row a failed batch wrote is queued again with its current value (or deleted if it no
    /// longer exists): a store that recovers catches up, whichever prefix of the failed
    /// batches it kept (a transaction may commit before its driver sees an error).
    pub(crate) fn store_failed(&mut self, batch: BatchId) -> Released {
        let mut out = Released::default();
        let Some(e) = self.inner.as_mut() else {
            return out;
        };
        if e.journal.in_flight.front().is_none_or(|b| b.id > batch) {
            return out;
        }
        let failed: Vec<records::InFlightBatch> = e.journal.in_flight.drain(..).collect();
        for b in &failed {
            for &w in &b.waiters {
                match w {
                    records::Waiter::Send(seq) => {
                        if e.sender.state(seq) == Some(sender::State::Unstored) {
                            if let Some(entry) = e.sender.remove(seq) {
                                let id = DurableId {
                                    origin: e.origin,
                                    seq,
                                };
                                out.failed.push((entry.to, id));
                            }
                        }
                    }
                    records::Waiter::Receive(key @ (from, origin, seq)) => {
                        if e.dedup.inbox.get(&key).is_some_and(|m| !m.stored) {
                            e.dedup.inbox.remove(&key);
                            if let Some(w) = e.dedup.senders.get_mut(&(from, origin)) {
                                w.clear(seq.0);
                                if e.journal.dirty_seen.insert((from, origin)) {
                                    e.journal
                                        .touched
                                        .push(records::Touched::Seen((from, origin)));
                                }
                            }
                        }
                    }
                }
            }
        }
        for b in &failed {
            for &t in &b.touched {
                e.reassert(t);
            }
        }
        out
    }
}

impl Enabled {
    /// Queues the dirty `meta` and `seen` rows with their current values.
    fn flush_dirty(&mut self) {
        let j = &mut self.journal;
        let d = core::mem::take(&mut j.dirty_meta);
        if d.any() {
            j.touched.push(records::Touched::Meta);
        }
        if d.identity {
            j.put(
                DurableTable::Meta,
                keys::IDENTITY.to_vec(),
                self.identity.0.to_vec(),
            );
            j.put(
                DurableTable::Meta,
                keys::ORIGIN.to_vec(),
                self.origin.0.to_le_bytes().to_vec(),
            );
        }
        if d.next_seq {
            j.put(
                DurableTable::Meta,
                keys::NEXT_SEQ.to_vec(),
                self.sender.next_seq.to_le_bytes().to_vec(),
            );
        }
        if let (true, Some(m)) = (d.send_mark, self.send_mark) {
            j.put(
                DurableTable::Meta,
                keys::SEND_MARK.to_vec(),
                m.to_le_bytes().to_vec(),
            );
        }
        if let (true, Some(m)) = (d.consume_mark, self.consume_mark) {
            j.put(
                DurableTable::Meta,
                keys::CONSUME_MARK.to_vec(),
                m.to_le_bytes().to_vec(),
            );
        }
        for k in core::mem::take(&mut j.dirty_seen) {
            match self.dedup.senders.get(&k) {
                Some(w) => j.put(DurableTable::Seen, records::seen_key(k), w.encode()),
                None => j.delete(DurableTable::Seen, records::seen_key(k)),
            }
        }
    }

    /// Queues row `t` again with its current value, or its deletion if it is gone.
    fn reassert(&mut self, t: records::Touched) {
        let j = &mut self.journal;
        match t {
            records::Touched::Meta => {
                j.dirty_meta = records::DirtyMeta {
                    identity: true,
                    next_seq: true,
                    send_mark: self.send_mark.is_some(),
                    consume_mark: self.consume_mark.is_some(),
                };
            }
            records::Touched::Outbox(seq) => {
                match self.sender.entries.get(&seq) {
                    // Not reached today (a failed send leaves; a resolved one is gone), but
                    // the rule is the same for every row.
                    Some(entry) => j.put(
                        DurableTable::Outbox,
                        records::outbox_key(seq),
                        records::outbox_value(entry.to, &entry.message),
                    ),
                    None => j.delete(DurableTable::Outbox, records::outbox_key(seq)),
                }
                j.touched.push(t);
            }
            records::Touched::Seen(k) => {
                if j.dirty_seen.insert(k) {
                    j.touched.push(t);
                }
            }
            records::Touched::Inbox(key) => {
                // Present in memory, stored or not: put. An unstored row here is a later
                // reception of the same message whose put is already pending; deleting it
                // after that put would lose a message we then acknowledge.
                match self.dedup.inbox.get(&key) {
                    Some(m) => {
                        let mut value = Vec::new();
                        records::put_body(&mut value, &m.message);
                        j.put(DurableTable::Inbox, records::inbox_key(key), value);
                    }
                    _ => j.delete(DurableTable::Inbox, records::inbox_key(key)),
                }
                j.touched.push(t);
            }
        }
    }
}
