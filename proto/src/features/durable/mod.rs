//! Durable messages: exactly once across outages and reboots of either side
//! (`docs/PROTOCOL.md` §16).
//!
//! A durable message (op 37) carries an end-to-end id, [`DurableId`]: the sender's
//! [`OriginId`], drawn once and stored, and a [`DurableSeq`] that the sender never reuses. It
//! is retried with no deadline until the receiver acknowledges it or the application cancels
//! it. The receiver de-duplicates on the id with bounded state per sender (a floor and a window
//! of seqs above it) and acknowledges a message only once its record is stored.
//!
//! This module owns that state; it never touches storage. What must survive a crash is handed
//! to the driver as [`StoreOp`]s on the tables of [`DurableTable`], and restored from them:
//!
//! | table ([`DurableTable::name`]) | key | value | written |
//! |---|---|---|---|
//! | `durable_meta` | `identity`, `origin`, `next_seq`, `send_mark`, `consume_mark` (see [`keys`]) | 32 bytes; u64 LE each | at a fresh start; once per batch with a send (`next_seq`, and `send_mark` if marked) or a marked consume |
//! | `durable_outbox` | seq, u64 BE | destination, then `target \n name \n payload` | a send (put); its ACK or cancel (delete) |
//! | `durable_seen` | sender, then origin u64 BE | floor u64 LE, then the 128-byte window (bit `i` = seq floor + `i` received) | once per batch in which that sender's window changed; `forget` (delete) |
//! | `durable_inbox` | sender, origin u64 BE, seq u64 BE | `target \n name \n payload` | a new message (put, in the batch of its `seen` row); its consume (delete) |
//!
//! A destination or sender is one byte and an id: `0x00` the client's server, `0x01` and a
//! 16-byte client id, `0x02` and a guest's 32 bytes. Keys hold numbers big-endian, so a store
//! iterates them in order; values little-endian. Rows of `durable_meta` with other keys are
//! the adapter's own, and ignored here.
//!
//! Submodules: `sender` (the outbox: unstored, ready, in flight; per-destination floors),
//! `dedup` (per-sender windows and the inbox: the receiver rules), `records` (the encodings
//! and the journal of pending operations and handed-out batches), `batches` (what confirming
//! or failing a batch releases), `restore` (decoding the rows back at start).
//!
//! # Ordering (the exactly-once argument)
//! - A send's `outbox` row and the advanced `next_seq` are stored **before** the message is
//!   first transmitted, so a seq that any receiver may have seen is never given to another
//!   message after a crash.
//! - A received message's `inbox` row and its sender's `seen` row are stored in one batch
//!   **before** the ACK is sent and before it is delivered to the application. A crash before
//!   that batch is stored leaves no trace and no ACK: the sender retries. A crash after it
//!   leaves the message in the inbox, delivered again at restore (marked `redelivered`).
//! - The application's `consume` deletes the inbox row; an application that needs its own
//!   effect to be exactly once makes that effect and the consume atomic (the same batch, or a
//!   `consume_mark` that tells it after a crash how far its own output got).
//! - Every operation made between two `poll_store` calls lands in one batch. So a relay of
//!   durable messages (receive, send onward, consume) is atomic when it consumes right after
//!   it sends.
//! - A failed batch fails every batch handed out after it, and the driver writes none of
//!   those; the rows they touched are written again from memory in the next batch. So the
//!   store only ever holds a prefix of the batches, which the argument above needs (a `seen`
//!   row must never be stored without the `inbox` rows of the bits it sets).

mod batches;
mod dedup;
#[cfg(test)]
mod props;
mod records;
mod restore;
mod sender;
#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::id::{ClientId, PeerId};
use crate::store::{StoreBatch, StoreOp, StoredRecord, Table};

pub use records::keys;

/// A sender's durable identity: drawn from the endpoint's RNG the first time durability is
/// enabled with an empty store, and stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct OriginId(pub u64);

/// A durable message's place in its origin's sequence: from 1, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DurableSeq(pub u64);

/// The end-to-end id of a durable message, the same at the sender and the receiver, across
/// retries, re-handshakes and reboots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DurableId {
    /// Who sent it.
    pub origin: OriginId,
    /// Its seq.
    pub seq: DurableSeq,
}

impl fmt::Display for DurableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}:{}", self.origin.0, self.seq.0)
    }
}

/// The other end of a durable message, as the endpoint knows it across sessions: a client's
/// server, or a server's client by authenticated identity (its address may change).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DurablePeer {
    /// The client's server (a client has one; durable messages are not multicast).
    Server,
    /// A server's client.
    Client(PeerId),
}

/// The tables of durable state (see the module docs for their rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DurableTable {
    /// Identity, origin, next seq and the application's marks.
    Meta,
    /// Messages sent and not yet acknowledged or cancelled.
    Outbox,
    /// Per sender: what was received (floor and window).
    Seen,
    /// Messages received and not yet consumed by the application.
    Inbox,
}

impl Table for DurableTable {
    const ALL: &'static [Self] = &[
        DurableTable::Meta,
        DurableTable::Outbox,
        DurableTable::Seen,
        DurableTable::Inbox,
    ];

    fn name(self) -> &'static str {
        match self {
            DurableTable::Meta => "durable_meta",
            DurableTable::Outbox => "durable_outbox",
            DurableTable::Seen => "durable_seen",
            DurableTable::Inbox => "durable_inbox",
        }
    }
}

/// A batch of durable state for the driver to store.
pub type DurableBatch = StoreBatch<DurableTable>;
/// One change in a [`DurableBatch`].
pub type DurableOp = StoreOp<DurableTable>;
/// A durable record read back at start.
pub type DurableRecord<'a> = StoredRecord<'a, DurableTable>;

/// Seqs above a sender's floor that a receiver tracks; a message further ahead is refused
/// unacknowledged (`durable_window`) until the floor moves.
pub const WINDOW: u64 = 1024;

/// Bounds of durable state. Everything a remote peer can make us store is bounded here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurableLimits {
    /// Durable messages sent and not yet resolved (all destinations); `send_durable` gives
    /// `SendError::QueueFull` beyond it.
    pub max_outbox: usize,
    /// Senders whose `seen` state we keep; a message from a new sender beyond it is refused
    /// unacknowledged (`durable_table_full`).
    pub max_senders: usize,
    /// Received messages not yet consumed by the application; beyond it new ones are refused
    /// unacknowledged (`durable_inbox_full`), so the senders retry later.
    pub max_inbox: usize,
}

impl Default for DurableLimits {
    fn default() -> Self {
        DurableLimits {
            max_outbox: 4096,
            max_senders: 1024,
            max_inbox: 4096,
        }
    }
}

/// What [`Client::enable_durable`](crate::endpoint::Client::enable_durable) (or the server's)
/// restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurableRestored {
    /// Our origin (new if the store was empty).
    pub origin: OriginId,
    /// Whether the store was empty.
    pub fresh: bool,
    /// Messages back in the outbox, to be sent again.
    pub queued: usize,
    /// Messages in the inbox, delivered again as events marked `redelivered`.
    pub inbox: usize,
    /// The last mark given with a send (see `send_durable`), if any.
    pub send_mark: Option<u64>,
    /// The last mark given with a consume, if any.
    pub consume_mark: Option<u64>,
}

/// Why stored durable records were refused at start. The store is left as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurableRestoreError {
    /// A record that does not decode: its table and key, in hex.
    BadRecord {
        /// Which table.
        table: DurableTable,
        /// The key, in hex.
        key: String,
    },
    /// The records were written by another identity (another client id or key).
    ForeignIdentity,
    /// Rows exist but the `meta` rows (identity, origin, next seq) do not.
    MissingMeta,
    /// An `outbox` seq at or above the stored `next_seq`: the store is inconsistent.
    SeqAhead,
    /// Durability was already enabled on this endpoint.
    AlreadyEnabled,
}

impl fmt::Display for DurableRestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurableRestoreError::BadRecord { table, key } => {
                write!(
                    f,
                    "stored record {key} of table {} does not decode",
                    table.name()
                )
            }
            DurableRestoreError::ForeignIdentity => {
                f.write_str("the durable store was written by another identity")
            }
            DurableRestoreError::MissingMeta => {
                f.write_str("the durable store has records but no identity, origin or next seq")
            }
            DurableRestoreError::SeqAhead => {
                f.write_str("the durable store has a queued seq at or above its next seq")
            }
            DurableRestoreError::AlreadyEnabled => f.write_str("durability is already enabled"),
        }
    }
}

impl core::error::Error for DurableRestoreError {}

/// Why a durable send ended without an acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum DurableFailure {
    /// The driver could not store the batch holding the message: it was never sent.
    Store,
}

/// The fingerprint of the identity that owns a durable store (`meta` row `identity`):
/// BLAKE2b-256 of a domain tag and the endpoint's own identity (see
/// [`Client::durable_identity`](crate::endpoint::Client::durable_identity)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StoreIdentity(pub [u8; 32]);

impl StoreIdentity {
    /// The identity of a client with this id and, for suites 2 and 3, this static public key.
    pub fn client(id: ClientId, public: Option<&[u8; 32]>) -> Self {
        let public: &[u8] = public.map_or(&[], |p| p);
        StoreIdentity(crate::wire::authority::hash_parts(&[
            CLIENT_DOMAIN,
            &id.0,
            public,
        ]))
    }

    /// The identity of a server with this static public key (`None` for a PSK-only server,
    /// which has no identity of its own: every PSK-only server has the same one).
    pub fn server(public: Option<&[u8; 32]>) -> Self {
        let public: &[u8] = public.map_or(&[], |p| p);
        StoreIdentity(crate::wire::authority::hash_parts(&[SERVER_DOMAIN, public]))
    }
}

/// The domain tags of [`StoreIdentity`]: a client's and a server's identities never collide.
const CLIENT_DOMAIN: &[u8] = b"pavillion durable client v1";
const SERVER_DOMAIN: &[u8] = b"pavillion durable server v1";

/// Where a received durable message waits for its ACK: the endpoint sends op 2 quoting
/// `counter` to `to` once the message's batch is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PendingAck {
    pub(crate) to: core::net::SocketAddr,
    pub(crate) counter: crate::id::Counter,
}

/// What the receiver decided about one op 37.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Receive {
    /// Seen and stored before: acknowledge it now, deliver nothing.
    AckNow,
    /// New: its records are queued; ACK and delivery wait for [`Durable::stored`].
    Held,
    /// Seen, and its batch is not stored yet: nothing now (the ACK goes out when it is).
    Waiting,
    /// Refused, unacknowledged; counted under this reason.
    Drop(crate::endpoint::DropReason),
}

/// A durable message for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub(crate) from: DurablePeer,
    pub(crate) id: DurableId,
    pub(crate) message: crate::reliability::OwnedMessage,
    pub(crate) redelivered: bool,
    /// `None` for a redelivery from the inbox at restore.
    pub(crate) ack: Option<PendingAck>,
}

/// What a stored (or failed) batch released.
#[derive(Debug, Default)]
pub(crate) struct Released {
    /// Messages now stored at the receiver: send their ACK (if any), then deliver.
    pub(crate) deliveries: Vec<Delivery>,
    /// Our sends that failed to store: report `DurableFailure::Store`.
    pub(crate) failed: Vec<(DurablePeer, DurableId)>,
    /// Whether sends became ready to transmit (`take_ready`).
    pub(crate) sendable: bool,
}

/// The durable state of one endpoint (both roles): its sender side (origin, next seq, the
/// durable outbox), its receiver side (per-sender `seen` state, the inbox) and the batches on
/// their way to the store.
#[derive(Debug)]
pub(crate) struct Durable {
    limits: DurableLimits,
    inner: Option<Enabled>,
}

#[derive(Debug)]
struct Enabled {
    identity: StoreIdentity,
    origin: OriginId,
    sender: sender::Sender,
    dedup: dedup::Dedup,
    journal: records::Journal,
    send_mark: Option<u64>,
    consume_mark: Option<u64>,
    /// Inbox entries restored at `enable`, not yet handed out by `take_redeliveries`.
    redeliver: Vec<records::InboxKey>,
}

impl Durable {
    /// Durability off: every durable command says `SendError::NotDurable`, and op 37 is
    /// dropped as `durable_disabled` (unacknowledged: its sender keeps it).
    pub(crate) fn new(limits: DurableLimits) -> Self {
        Durable {
            limits,
            inner: None,
        }
    }

    /// Whether `enable` succeeded.
    pub(crate) fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Turns durability on from the stored records (none for a first start): checks the
    /// identity, draws an origin from `rng` if the store is empty (queuing its `meta` rows),
    /// restores the outbox (every entry ready to send again), the `seen` state, and the inbox,
    /// whose messages [`Durable::take_redeliveries`] hands out once.
    ///
    /// The RNG is drawn from only for a fresh store, so enabling durability on a restored
    /// store does not shift the endpoint's other random values.
    pub(crate) fn enable<'a>(
        &mut self,
        identity: StoreIdentity,
        records: impl IntoIterator<Item = DurableRecord<'a>>,
        rng: &mut crate::rng::Rng,
    ) -> Result<DurableRestored, DurableRestoreError> {
        if self.inner.is_some() {
            return Err(DurableRestoreError::AlreadyEnabled);
        }
        let mut r = restore::Restored::decode(records)?;
        let checked = r.check(identity)?;
        let fresh = checked.is_none();
        let (origin, sender) =
            checked.unwrap_or_else(|| (OriginId(rng.next_u64()), sender::Sender::new(1)));
        let mut journal = records::Journal::default();
        if fresh {
            journal.dirty_meta = records::DirtyMeta {
                identity: true,
                next_seq: true,
                send_mark: false,
                consume_mark: false,
            };
        }
        let redeliver = r.dedup.inbox.keys().copied().collect();
        let restored = DurableRestored {
            origin,
            fresh,
            queued: sender.len(),
            inbox: r.dedup.inbox.len(),
            send_mark: r.send_mark,
            consume_mark: r.consume_mark,
        };
        self.inner = Some(Enabled {
            identity,
            origin,
            sender,
            dedup: r.dedup,
            journal,
            send_mark: r.send_mark,
            consume_mark: r.consume_mark,
            redeliver,
        });
        Ok(restored)
    }

    /// Our origin, once enabled.
    pub(crate) fn origin(&self) -> Option<OriginId> {
        self.inner.as_ref().map(|e| e.origin)
    }

    // ---- sender ----

    /// Queues a durable message to `to` with the next seq: its `outbox` row and `next_seq`
    /// (and `send_mark` if given) go into the pending batch; it becomes ready to send once
    /// that batch is stored.
    ///
    /// # Errors
    /// `NotDurable` before `enable`; `QueueFull` at `max_outbox` (or, in theory, when the
    /// seqs run out).
    pub(crate) fn queue(
        &mut self,
        to: DurablePeer,
        message: crate::reliability::OwnedMessage,
        mark: Option<u64>,
    ) -> Result<DurableId, crate::endpoint::SendError> {
        use crate::endpoint::SendError;
        let e = self.inner.as_mut().ok_or(SendError::NotDurable)?;
        // u64::MAX is never a seq (the receiver refuses it), so it is never the next one.
        if e.sender.len() >= self.limits.max_outbox || e.sender.next_seq == u64::MAX {
            return Err(SendError::QueueFull);
        }
        let seq = DurableSeq(e.sender.next_seq);
        e.sender.next_seq += 1;
        let j = &mut e.journal;
        j.put(
            DurableTable::Outbox,
            records::outbox_key(seq),
            records::outbox_value(to, &message),
        );
        j.touched.push(records::Touched::Outbox(seq));
        j.waiters.push(records::Waiter::Send(seq));
        j.dirty_meta.next_seq = true;
        if let Some(m) = mark {
            e.send_mark = Some(m);
            j.dirty_meta.send_mark = true;
        }
        e.sender.insert(
            seq,
            sender::Entry {
                to,
                message,
                state: sender::State::Unstored,
            },
        );
        Ok(DurableId {
            origin: e.origin,
            seq,
        })
    }

    /// Moves up to `max` stored, not-in-flight messages to `to` into `out` (lowest seqs first)
    /// and marks them in flight: the endpoint puts each in that peer's outbox as a
    /// `Payload::Durable`, and asks for no more than its outbox has room for.
    pub(crate) fn take_ready(&mut self, to: DurablePeer, max: usize, out: &mut Vec<DurableSeq>) {
        if let Some(e) = self.inner.as_mut() {
            e.sender.take_ready(to, max, out);
        }
    }

    /// Destinations with messages ready to send (for a server: which clients to look for).
    pub(crate) fn ready_peers(&self, out: &mut Vec<DurablePeer>) {
        if let Some(e) = self.inner.as_ref() {
            e.sender.ready_peers(out);
        }
    }

    /// A message in flight lost its session (the session ended or was replaced): it is ready
    /// again for the next session with its peer. Nothing for a message not in flight.
    pub(crate) fn requeue(&mut self, seq: DurableSeq) {
        if let Some(e) = self.inner.as_mut() {
            if e.sender.state(seq) == Some(sender::State::InFlight) {
                e.sender.set_state(seq, sender::State::Ready);
            }
        }
    }

    /// The message `seq`, while it is queued.
    pub(crate) fn message(&self, seq: DurableSeq) -> Option<&crate::reliability::OwnedMessage> {
        self.inner
            .as_ref()
            .and_then(|e| e.sender.entries.get(&seq))
            .map(|e| &e.message)
    }

    /// The floor to stamp on a packet to `to`: its least unresolved seq, or the next seq.
    pub(crate) fn floor(&self, to: DurablePeer) -> DurableSeq {
        self.inner
            .as_ref()
            .map_or(DurableSeq(1), |e| e.sender.floor(to))
    }

    /// The receiver acknowledged `seq`: resolved, its `outbox` row deleted (pending batch).
    /// Returns its id and destination if it was queued.
    pub(crate) fn acked(&mut self, seq: DurableSeq) -> Option<(DurablePeer, DurableId)> {
        let e = self.inner.as_mut()?;
        let entry = e.sender.remove(seq)?;
        e.journal
            .delete(DurableTable::Outbox, records::outbox_key(seq));
        e.journal.touched.push(records::Touched::Outbox(seq));
        Some((
            entry.to,
            DurableId {
                origin: e.origin,
                seq,
            },
        ))
    }

    /// The application cancelled `seq`: resolved as `acked`, with no event. Returns its
    /// destination, and whether it was in flight (so the endpoint removes it from the outbox).
    pub(crate) fn cancel(&mut self, seq: DurableSeq) -> Option<(DurablePeer, bool)> {
        let in_flight = self.inner.as_ref()?.sender.state(seq)? == sender::State::InFlight;
        self.acked(seq).map(|(to, _)| (to, in_flight))
    }

    /// Messages queued and not resolved.
    pub(crate) fn queued(&self) -> usize {
        self.inner.as_ref().map_or(0, |e| e.sender.len())
    }

    // ---- receiver ----

    /// One op 37 from `from`, authenticated, arriving with `ack` (its counter and source).
    /// Rules 2–9 of `docs/PROTOCOL.md` §16; rule 1 (durability off) is
    /// `Drop(DurableDisabled)`. A duplicate costs no allocation unless it moves its sender's
    /// floor.
    pub(crate) fn receive(
        &mut self,
        from: DurablePeer,
        packet: &crate::wire::durable::DurableMessage<'_>,
        ack: PendingAck,
    ) -> Receive {
        use crate::endpoint::DropReason;
        let Some(e) = self.inner.as_mut() else {
            return Receive::Drop(DropReason::DurableDisabled);
        };
        let sender = (from, packet.origin);
        let mut floor_moved = false;
        let verdict = e.dedup.judge(
            sender,
            packet.seq,
            packet.floor,
            &self.limits,
            &mut floor_moved,
        );
        // An accepted message sets its bit: the row changes as when the floor moves.
        let changed = floor_moved || verdict == dedup::Verdict::Accept;
        if changed && e.journal.dirty_seen.insert(sender) {
            e.journal.touched.push(records::Touched::Seen(sender));
        }
        let key = (from, packet.origin, packet.seq);
        match verdict {
            dedup::Verdict::AckNow => Receive::AckNow,
            dedup::Verdict::Waiting => {
                // The latest copy's counter is the one its sender still waits on.
                if let Some(entry) = e.dedup.inbox.get_mut(&key) {
                    entry.ack = Some(ack);
                }
                Receive::Waiting
            }
            dedup::Verdict::Invalid => Receive::Drop(DropReason::DurableInvalid),
            dedup::Verdict::TableFull => Receive::Drop(DropReason::DurableTableFull),
            dedup::Verdict::OutOfWindow => Receive::Drop(DropReason::DurableWindow),
            dedup::Verdict::InboxFull => Receive::Drop(DropReason::DurableInboxFull),
            dedup::Verdict::Accept => {
                let message = records::owned(&packet.message);
                let mut value = Vec::new();
                records::put_body(&mut value, &message);
                e.journal
                    .put(DurableTable::Inbox, records::inbox_key(key), value);
                e.journal.touched.push(records::Touched::Inbox(key));
                e.journal.waiters.push(records::Waiter::Receive(key));
                e.dedup.inbox.insert(
                    key,
                    dedup::InboxEntry {
                        message,
                        stored: false,
                        ack: Some(ack),
                    },
                );
                Receive::Held
            }
        }
    }

    /// The application is done with a delivered message: its inbox row is deleted (and the
    /// mark, if given, stored as `consume_mark`). False if it is not in the inbox (or not
    /// delivered yet); the mark is then not stored.
    pub(crate) fn consume(&mut self, from: DurablePeer, id: DurableId, mark: Option<u64>) -> bool {
        let Some(e) = self.inner.as_mut() else {
            return false;
        };
        let key = (from, id.origin, id.seq);
        if !e.dedup.inbox.get(&key).is_some_and(|m| m.stored) {
            return false;
        }
        e.dedup.inbox.remove(&key);
        e.journal
            .delete(DurableTable::Inbox, records::inbox_key(key));
        e.journal.touched.push(records::Touched::Inbox(key));
        if let Some(m) = mark {
            e.consume_mark = Some(m);
            e.journal.dirty_meta.consume_mark = true;
        }
        true
    }

    /// The inbox restored by `enable`, handed out once (in key order: by sender, then seq).
    pub(crate) fn take_redeliveries(&mut self) -> Vec<Delivery> {
        let Some(e) = self.inner.as_mut() else {
            return Vec::new();
        };
        let keys = core::mem::take(&mut e.redeliver);
        keys.into_iter()
            .filter_map(|key @ (from, origin, seq)| {
                let m = e.dedup.inbox.get(&key)?;
                Some(Delivery {
                    from,
                    id: DurableId { origin, seq },
                    message: m.message.clone(),
                    redelivered: true,
                    ack: None,
                })
            })
            .collect()
    }

    /// Forgets what we know of a peer's messages (the application's choice, for a peer
    /// that is gone for good): its `seen` rows are deleted. Its inbox rows stay until
    /// consumed.
    pub(crate) fn forget(&mut self, from: DurablePeer) {
        let Some(e) = self.inner.as_mut() else {
            return;
        };
        let gone: Vec<records::SenderKey> = e
            .dedup
            .senders
            .range((from, OriginId(0))..=(from, OriginId(u64::MAX)))
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            e.dedup.senders.remove(&k);
            e.journal.dirty_seen.remove(&k);
            e.journal.delete(DurableTable::Seen, records::seen_key(k));
            e.journal.touched.push(records::Touched::Seen(k));
        }
    }
}
