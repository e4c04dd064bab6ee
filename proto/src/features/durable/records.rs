//! Encoding of the durable tables' keys and values, and the journal of operations on their
//! way to the store.
//!
//! Encodings (`docs/PROTOCOL.md` §16):
//! - a peer (the destination of an `outbox` row, the sender in `seen` and `inbox` keys):
//!   `0x00` = the client's server; `0x01` ‖ 16-byte client id = `PeerId::Client`; `0x02` ‖
//!   32 bytes = `PeerId::Guest`;
//! - seqs and origins in keys: u64 big-endian, so a store iterates them in order;
//! - numbers in values: u64 little-endian;
//! - a message body: `target \n name \n payload`, as on the wire (op 1).

use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use super::{DurableOp, DurablePeer, DurableSeq, DurableTable, OriginId};
use crate::id::{ClientId, PeerId};
use crate::reliability::OwnedMessage;
use crate::store::{BatchId, StoreOp};
use crate::wire::Message;

/// The `meta` table's keys.
pub mod keys {
    /// [`StoreIdentity`](super::super::StoreIdentity), 32 bytes.
    pub const IDENTITY: &[u8] = b"identity";
    /// Our [`OriginId`](super::super::OriginId), u64 LE.
    pub const ORIGIN: &[u8] = b"origin";
    /// The next seq to assign, u64 LE.
    pub const NEXT_SEQ: &[u8] = b"next_seq";
    /// The application's mark stored with its last send, u64 LE.
    pub const SEND_MARK: &[u8] = b"send_mark";
    /// The application's mark stored with its last consume, u64 LE.
    pub const CONSUME_MARK: &[u8] = b"consume_mark";
}

/// A sender as the receiver keys it: the peer it came from and its origin.
pub(super) type SenderKey = (DurablePeer, OriginId);
/// A received message: its sender and seq.
pub(super) type InboxKey = (DurablePeer, OriginId, DurableSeq);

/// Bytes of the `seen` value: floor, then the window's bitmap.
pub(super) const SEEN_LEN: usize = 8 + super::dedup::BITMAP_BYTES;

// ---- peers ----

pub(super) fn put_peer(out: &mut Vec<u8>, peer: DurablePeer) {
    match peer {
        DurablePeer::Server => out.push(0),
        DurablePeer::Client(PeerId::Client(id)) => {
            out.push(1);
            out.extend_from_slice(&id.0);
        }
        DurablePeer::Client(PeerId::Guest(h)) => {
            out.push(2);
            out.extend_from_slice(&h);
        }
    }
}

/// A peer at the front of `bytes`, and the rest.
pub(super) fn take_peer(bytes: &[u8]) -> Option<(DurablePeer, &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    match tag {
        0 => Some((DurablePeer::Server, rest)),
        1 => {
            let (id, rest) = rest.split_first_chunk::<16>()?;
            Some((DurablePeer::Client(PeerId::Client(ClientId(*id))), rest))
        }
        2 => {
            let (h, rest) = rest.split_first_chunk::<32>()?;
            Some((DurablePeer::Client(PeerId::Guest(*h)), rest))
        }
        _ => None,
    }
}

fn take_u64_be(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (n, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*n), rest))
}

/// A value that is exactly one u64 LE.
pub(super) fn u64_value(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_le_bytes)
}

// ---- keys ----

pub(super) fn outbox_key(seq: DurableSeq) -> Vec<u8> {
    seq.0.to_be_bytes().to_vec()
}

pub(super) fn parse_outbox_key(key: &[u8]) -> Option<DurableSeq> {
    key.try_into()
        .ok()
        .map(u64::from_be_bytes)
        .filter(|&s| s != 0 && s != u64::MAX)
        .map(DurableSeq)
}

pub(super) fn seen_key((peer, origin): SenderKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 32 + 8);
    put_peer(&mut k, peer);
    k.extend_from_slice(&origin.0.to_be_bytes());
    k
}

pub(super) fn parse_seen_key(key: &[u8]) -> Option<SenderKey> {
    let (peer, rest) = take_peer(key)?;
    let (origin, rest) = take_u64_be(rest)?;
    rest.is_empty().then_some((peer, OriginId(origin)))
}

pub(super) fn inbox_key((peer, origin, seq): InboxKey) -> Vec<u8> {
    let mut k = seen_key((peer, origin));
    k.extend_from_slice(&seq.0.to_be_bytes());
    k
}

pub(super) fn parse_inbox_key(key: &[u8]) -> Option<InboxKey> {
    let (peer, rest) = take_peer(key)?;
    let (origin, rest) = take_u64_be(rest)?;
    let (seq, rest) = take_u64_be(rest)?;
    (rest.is_empty() && seq != 0 && seq != u64::MAX).then_some((
        peer,
        OriginId(origin),
        DurableSeq(seq),
    ))
}

// ---- values ----

pub(super) fn put_body(out: &mut Vec<u8>, m: &OwnedMessage) {
    out.reserve(m.target().len() + m.name().len() + m.payload().len() + 2);
    out.extend_from_slice(m.target().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(m.name().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(m.payload());
}

pub(super) fn parse_body(bytes: &[u8]) -> Option<OwnedMessage> {
    let m = Message::parse(bytes).ok()?;
    Some(owned(&m))
}

/// An owned copy of a parsed message.
pub(super) fn owned(m: &Message<'_>) -> OwnedMessage {
    OwnedMessage::new(m.target, m.name, m.payload)
}

pub(super) fn outbox_value(to: DurablePeer, m: &OwnedMessage) -> Vec<u8> {
    let mut v = Vec::new();
    put_peer(&mut v, to);
    put_body(&mut v, m);
    v
}

pub(super) fn parse_outbox_value(value: &[u8]) -> Option<(DurablePeer, OwnedMessage)> {
    let (to, rest) = take_peer(value)?;
    Some((to, parse_body(rest)?))
}

/// Hex of a key, for [`DurableRestoreError::BadRecord`](super::DurableRestoreError).
pub(super) fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // NOTE(unwrap): writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

// ---- the journal ----

/// What waits for a batch to be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Waiter {
    /// A send: transmitted only once stored.
    Send(DurableSeq),
    /// A reception: acknowledged and delivered only once stored.
    Receive(InboxKey),
}

/// A row a batch wrote. If the batch fails, the row is written again from the current state,
/// so that a store that recovers ends up agreeing with memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Touched {
    Meta,
    Outbox(DurableSeq),
    Seen(SenderKey),
    Inbox(InboxKey),
}

/// Which `meta` rows must be written with their current values in the next batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct DirtyMeta {
    pub(super) identity: bool,
    pub(super) next_seq: bool,
    pub(super) send_mark: bool,
    pub(super) consume_mark: bool,
}

impl DirtyMeta {
    pub(super) fn any(&self) -> bool {
        self.identity || self.next_seq || self.send_mark || self.consume_mark
    }
}

/// A batch handed to the driver and not yet confirmed.
#[derive(Debug)]
pub(super) struct InFlightBatch {
    pub(super) id: BatchId,
    pub(super) waiters: Vec<Waiter>,
    pub(super) touched: Vec<Touched>,
}

/// Operations not yet in a batch, and batches handed out and not yet confirmed.
///
/// Rows that many operations rewrite (`meta`, a sender's `seen` row) are not queued per
/// operation: they are marked dirty and written once, with their value at `poll_store`, at
/// the end of the batch. That value includes every change queued in the batch, and nothing
/// from later ones.
#[derive(Debug, Default)]
pub(super) struct Journal {
    /// Ops for the next batch, in order.
    pub(super) pending: Vec<DurableOp>,
    /// What waits for the next batch.
    pub(super) waiters: Vec<Waiter>,
    /// Rows the next batch writes (for a failure).
    pub(super) touched: Vec<Touched>,
    pub(super) dirty_meta: DirtyMeta,
    pub(super) dirty_seen: BTreeSet<SenderKey>,
    /// Handed out, oldest first.
    pub(super) in_flight: VecDeque<InFlightBatch>,
    /// The last batch id handed out (ids count from 1).
    pub(super) last: u64,
}

impl Journal {
    pub(super) fn put(&mut self, table: DurableTable, key: Vec<u8>, value: Vec<u8>) {
        self.pending.push(StoreOp::Put { table, key, value });
    }

    pub(super) fn delete(&mut self, table: DurableTable, key: Vec<u8>) {
        self.pending.push(StoreOp::Delete { table, key });
    }

    /// Whether anything would make a batch.
    pub(super) fn is_idle(&self) -> bool {
        self.pending.is_empty()
            && self.waiters.is_empty()
            && !self.dirty_meta.any()
            && self.dirty_seen.is_empty()
    }

    /// The next batch id, recording the batch as handed out.
    pub(super) fn cut(&mut self) -> (BatchId, Vec<DurableOp>) {
        self.last += 1;
        let id = BatchId(self.last);
        self.in_flight.push_back(InFlightBatch {
            id,
            waiters: core::mem::take(&mut self.waiters),
            touched: core::mem::take(&mut self.touched),
        });
        (id, core::mem::take(&mut self.pending))
    }

    /// Removes and returns the batches handed out up to `id`, oldest first.
    pub(super) fn confirm(&mut self, id: BatchId) -> Vec<InFlightBatch> {
        let n = self.in_flight.iter().take_while(|b| b.id <= id).count();
        self.in_flight.drain(..n).collect()
    }
}
