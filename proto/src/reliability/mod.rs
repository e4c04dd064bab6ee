//! Reliability: RTT estimation, and the table of reliable messages awaiting an ACK.
//!
//! A reliable message keeps the counter of its first transmission for every retransmission, so
//! the receiver's replay window de-duplicates it and re-acknowledges a copy whose ACK was lost.
//! That is what makes delivery exactly-once within a session. Timers follow RFC 6298 (see
//! [`rtt`]); the caller's deadline always wins over the retry schedule.

mod earliest;
pub mod histogram;
mod receivers;
pub mod rtt;

pub use receivers::Receivers;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use bytes::Bytes;

use crate::crypto::noise::ChaChaKey;
use crate::features::durable::DurableSeq;
use crate::features::registers::RegisterPayload;
use crate::id::{Counter, FunctionId};
use crate::time::Instant;
use crate::wire::noise::{KeyId, SenderId};
use crate::wire::ordered::{OrderedMessage, OrderedSeq, StreamEpoch};
use crate::wire::segment::{Segment, TransferId};
use crate::wire::{App, Message};

use crate::session::replay::WINDOW;
use rtt::RttEstimator;

/// The most counters a sender lets run ahead of its oldest unanswered one: the receiver's
/// window, less room for ACKs and unreliable packets sent while that one is retried.
const SEND_SPAN: u64 = WINDOW - 256;

/// An application message held by the endpoint until it is sent (and, if reliable, acknowledged).
///
/// Target, name and payload are one buffer, back to back: one allocation per message instead
/// of one per part, which is most of what queueing a small message used to cost. The
/// constructor takes the target and name as `&str`, so the accessors' UTF-8 checks cannot
/// fail; they run on a few bytes at each transmission, which costs less than the two
/// allocations they replace. What needs no `&str` (a length, an equality, an emptiness test)
/// reads the stored lengths and bytes instead: each check is some 60 instructions, and the
/// per-message paths asked for one about 17 times (issue 19).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct OwnedMessage {
    bytes: Bytes,
    target_len: usize,
    name_len: usize,
}

impl OwnedMessage {
    /// A copy of the three parts, in one allocation.
    pub(crate) fn new(target: &str, name: &str, payload: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(target.len() + name.len() + payload.len());
        bytes.extend_from_slice(target.as_bytes());
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(payload);
        OwnedMessage {
            bytes: Bytes::from(bytes),
            target_len: target.len(),
            name_len: name.len(),
        }
    }

    /// The target (topic).
    pub(crate) fn target(&self) -> &str {
        text(self.bytes.get(..self.target_len))
    }

    /// The target's bytes, unchecked: enough to compare or look up a target.
    pub(crate) fn target_bytes(&self) -> &[u8] {
        self.bytes.get(..self.target_len).unwrap_or_default()
    }

    /// Whether target and name are both empty, as the keepalive's are.
    pub(crate) fn is_unnamed(&self) -> bool {
        self.target_len == 0 && self.name_len == 0
    }

    /// The length of the plaintext [`as_app`](Self::as_app) emits (its `buffer_len`): the
    /// opcode, the three parts and their two separators.
    pub(crate) fn app_len(&self) -> usize {
        self.bytes.len().saturating_add(3)
    }

    /// The message name.
    pub(crate) fn name(&self) -> &str {
        text(
            self.bytes
                .get(self.target_len..self.target_len + self.name_len),
        )
    }

    /// The payload.
    pub(crate) fn payload(&self) -> &[u8] {
        self.bytes
            .get(self.target_len + self.name_len..)
            .unwrap_or_default()
    }

    /// The payload as its own `Bytes`, sharing this message's buffer.
    pub(crate) fn payload_bytes(&self) -> Bytes {
        self.bytes.slice(self.target_len + self.name_len..)
    }

    /// The message as the wire writes it. Target and name are checked as one `&str` and split
    /// at the target's length, a char boundary since it ended a `&str`: one UTF-8 check per
    /// transmission instead of two.
    pub(crate) fn as_message(&self) -> Message<'_> {
        let (names, payload) = self
            .bytes
            .split_at_checked(self.target_len + self.name_len)
            .unwrap_or_default();
        let (target, name) = core::str::from_utf8(names)
            .ok()
            .and_then(|s| s.split_at_checked(self.target_len))
            .unwrap_or_default();
        Message {
            target,
            name,
            payload,
        }
    }

    /// The op 1 (`reliable`) or op 3 packet of this message.
    pub(crate) fn as_app(&self, reliable: bool) -> App<'_> {
        let m = self.as_message();
        if reliable {
            App::ReliableMessage(m)
        } else {
            App::UnreliableMessage(m)
        }
    }
}

/// A part that [`OwnedMessage::new`] copied from a `&str`: always UTF-8, and in range.
fn text(part: Option<&[u8]>) -> &str {
    part.and_then(|b| core::str::from_utf8(b).ok())
        .unwrap_or_default()
}

/// The form the three separate fields had, which traces and test failures print.
impl core::fmt::Debug for OwnedMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OwnedMessage")
            .field("target", &self.target())
            .field("name", &self.name())
            .field("payload", &ByteString(self.payload()))
            .finish()
    }
}

/// Bytes in the `Debug` form of `bytes::Bytes` (`b"..."` with escapes), so that a message
/// holding its payload as a slice of a larger buffer prints as it did with its own `Bytes`.
pub(crate) struct ByteString<'a>(pub(crate) &'a [u8]);

impl core::fmt::Debug for ByteString<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("b\"")?;
        for &b in self.0 {
            match b {
                b'\n' => f.write_str("\\n")?,
                b'\r' => f.write_str("\\r")?,
                b'\t' => f.write_str("\\t")?,
                b'\\' | b'"' => write!(f, "\\{}", b as char)?,
                b'\0' => f.write_str("\\0")?,
                0x20..=0x7e => write!(f, "{}", b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        f.write_str("\"")
    }
}

/// What a reliable exchange carries. Each is answered by the peer quoting its counter: an ACK
/// (opcode 2) for messages and (un)subscriptions, a response (opcode 5) for calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Payload {
    Message(OwnedMessage),
    Call {
        function: FunctionId,
        args: Bytes,
    },
    Subscribe(String),
    Unsubscribe(String),
    /// Suite 3 multicast: our group key, for one server over its pairwise session. Boxed, so
    /// that every other exchange in every outbox stays as small as before.
    GroupKey(Box<GroupKeyDelivery>),
    /// One segment of a segmented plaintext (`features::segment`), acknowledged by op 34 (or,
    /// for a call's first segment, answered by op 5).
    Segment(SegmentPayload),
    /// Op 36: a message of an ordered stream, or (internal) a floor announcement. Boxed for
    /// the same reason as `GroupKey`.
    Ordered(Box<OrderedOut>),
    /// Registers (`docs/PROTOCOL.md` §9.8): a client's request, answered by op 7 or 10, or a
    /// server's notification, acknowledged. Boxed, as the group key is.
    Register(Box<RegisterPayload>),
    /// Op 37: a durable message, by its seq. The message, origin and floor live in the
    /// endpoint's durable state (`features::durable`), which the encoder reads at each
    /// transmission; the entry's deadline is `Instant::MAX`.
    Durable(DurableSeq),
}

/// An op 36 exchange. Its `floor` is only a lower bound: the encoder stamps the sender's
/// current floor at each transmission (`features::ordered::OrderedSender::stamp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OrderedOut {
    pub(crate) epoch: StreamEpoch,
    pub(crate) seq: OrderedSeq,
    pub(crate) floor: OrderedSeq,
    /// For an announcement: the target, with empty name and payload.
    pub(crate) message: OwnedMessage,
}

/// One segment: a slice of its transfer's plaintext (shared, not copied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentPayload {
    pub(crate) transfer: TransferId,
    pub(crate) total: u32,
    pub(crate) offset: u32,
    pub(crate) data: Bytes,
    /// The first segment of a call: answered by the response, not by an ACK.
    pub(crate) call: bool,
}

/// One delivery of a client's group key (op 32) to the server at `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupKeyDelivery {
    pub(crate) to: SocketAddr,
    pub(crate) sender: SenderId,
    pub(crate) key_id: KeyId,
    pub(crate) key: ChaChaKey,
}

impl Payload {
    /// The packet this exchange sends, or `None` for a durable message, whose body is the
    /// durable state's (the encoder builds it from there).
    pub(crate) fn as_app(&self) -> Option<App<'_>> {
        Some(match self {
            Payload::Message(m) => m.as_app(true),
            Payload::Call { function, args } => App::RpcCall {
                function: *function,
                args,
            },
            Payload::Subscribe(t) => App::Subscribe { target: t },
            Payload::Unsubscribe(t) => App::Unsubscribe { target: t },
            Payload::GroupKey(d) => App::GroupKey {
                sender: d.sender,
                key_id: d.key_id,
                key: d.key.as_bytes(),
            },
            Payload::Segment(s) => App::Segment(Segment {
                transfer: s.transfer,
                total: s.total,
                offset: s.offset,
                data: &s.data,
            }),
            Payload::Ordered(o) => App::OrderedMessage(OrderedMessage {
                epoch: o.epoch,
                seq: o.seq,
                floor: o.floor,
                message: o.message.as_message(),
            }),
            Payload::Register(r) => r.as_app(),
            Payload::Durable(_) => return None,
        })
    }

    /// The durable message this exchange is, if it is one.
    pub(crate) fn durable(&self) -> Option<DurableSeq> {
        match self {
            Payload::Durable(seq) => Some(*seq),
            _ => None,
        }
    }

    /// The op 36 exchange this is, if it is one.
    pub(crate) fn ordered(&self) -> Option<&OrderedOut> {
        match self {
            Payload::Ordered(o) => Some(o),
            _ => None,
        }
    }

    pub(crate) fn is_call(&self) -> bool {
        // A register request is answered by op 7 or 10 quoting its counter, as a call is by
        // op 5: an ACK does not complete it.
        match self {
            Payload::Call { .. } => true,
            Payload::Segment(s) => s.call,
            Payload::Register(r) => r.is_request(),
            _ => false,
        }
    }

    /// The transfer this exchange is a segment of.
    pub(crate) fn transfer(&self) -> Option<TransferId> {
        match self {
            Payload::Segment(s) => Some(s.transfer),
            _ => None,
        }
    }
}

/// One reliable exchange in the outbox.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// The command id (a message or call id) the outcome event carries.
    pub(crate) id: u64,
    pub(crate) payload: Payload,
    /// Sent by the endpoint itself (keepalive, subscription): no outcome event.
    pub(crate) internal: bool,
    /// Assigned at the first transmission and kept for every retransmission; `None` while the
    /// exchange waits for a session.
    pub(crate) counter: Option<Counter>,
    pub(crate) retransmissions: u32,
    /// When the latest copy left; `Instant::MAX` until the first transmission (not an
    /// `Option`: with `next_retry`'s that is 16 bytes of every entry, which the outbox moves at
    /// each push and removal). While `retransmissions == 0` that is the first, against which
    /// RTT samples are taken (Karn's rule: never after a retransmission).
    pub(crate) last_sent: Instant,
    /// The exponent of the timer's backoff: it grows only while the session is silent, and
    /// falls back to zero when an answer arrived since the previous copy (see
    /// [`Outbox::on_retransmit`]). Apart from `retransmissions`, which Karn's rule reads; a u8
    /// (saturating) keeps `InFlight` within its size: past 2^9 the ceiling is reached anyway.
    pub(crate) backoff: u8,
    /// When to retransmit next; `Instant::MAX` (never) until the first transmission, which
    /// is how every minimum over the retries already read an entry without one.
    pub(crate) next_retry: Instant,
    /// The caller's deadline: past it the exchange ends, whatever the retry schedule says.
    pub(crate) deadline: Instant,
    /// Who must answer for the exchange to complete, fixed at the first transmission. Empty
    /// means the first answer from anyone completes it.
    pub(crate) expected: Vec<SocketAddr>,
    /// Who has answered so far.
    pub(crate) acked: Receivers,
}

impl InFlight {
    /// The next retry, if one is armed.
    #[cfg(test)]
    pub(crate) fn retry(&self) -> Option<Instant> {
        (self.next_retry != Instant::MAX).then_some(self.next_retry)
    }

    /// Feeds the time since the last transmission to `rtt` and `samples`, unless the exchange
    /// was retransmitted (which answer came for which copy is then unknown) or never sent.
    /// The callers decide which entry of a run speaks for its counter.
    fn record_rtt_sample(
        &self,
        now: Instant,
        rtt: &mut RttEstimator,
        samples: &mut histogram::RttHistogram,
    ) {
        if self.retransmissions == 0 && self.last_sent != Instant::MAX {
            rtt.on_sample(now - self.last_sent);
            samples.record(now - self.last_sent);
        }
    }

    /// Expected receivers that have not answered.
    pub(crate) fn missing(&self) -> Vec<SocketAddr> {
        self.expected
            .iter()
            .filter(|a| !self.acked.contains(a))
            .copied()
            .collect()
    }

    fn is_complete(&self) -> bool {
        if self.expected.is_empty() {
            !self.acked.is_empty()
        } else {
            self.expected.iter().all(|a| self.acked.contains(a))
        }
    }
}

/// What a timer pass over the outbox decided.
#[derive(Debug)]
pub(crate) enum Due {
    /// Send (again) the exchange with this id.
    Transmit(u64),
    /// The deadline passed; the entry is handed back with whoever answered.
    Expired(InFlight),
}

/// What an answer quoting a counter did.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The exchange is complete and removed.
    Complete(InFlight),
    /// Recorded; more answers are expected.
    Partial,
    /// No exchange under that counter (already complete, or never ours).
    Unknown,
}

/// The reliable exchanges of one sender, oldest first.
///
/// # Invariants
/// - Entries are in id order, which is also send order, so the oldest counter is found first.
/// - The entries with a counter are the first `sent` ones, and their counters increase: an
///   exchange takes a counter only after every older one has, and keeps it for good. So the
///   oldest counter is the front's, an answer is found by binary search, and new sends start
///   at index `sent`.
/// - At most `max_in_flight` distinct counters are in flight (`counters` of them); the rest
///   wait in order for a slot. Entries sharing a counter (a suite 3 run, `features::batch`)
///   are adjacent, so the distinct counters are counted by comparing neighbours.
/// - The total is bounded by `capacity`; `push` refuses more.
/// - `earliest_deadline` is exactly the minimum deadline of every entry, and `earliest_retry`
///   the minimum retry of the sent ones (`Instant::MAX` for none): a deadline query reads
///   them instead of walking the entries. While the values run in entry order (one timeout for
///   every message; retries armed in send order under a steady RTO) the minimum is the
///   front's, so removing it costs nothing; otherwise a removal of the minimum rescans.
#[derive(Debug)]
pub(crate) struct Outbox {
    entries: VecDeque<InFlight>,
    /// u32, not usize: with `last_answer` the outbox stays within the idle session's budget
    /// (`server::peer::tests::idle_session_state_stays_small`); larger configs saturate.
    capacity: u32,
    /// At most `u16::MAX` (`counters` is a u16), so a u16: the byte it saves pays for
    /// `retry_inversions` within the idle session's budget.
    max_in_flight: u16,
    /// How many entries have a counter (the sent prefix).
    sent: u32,
    /// How many distinct counters the sent prefix holds: what `max_in_flight` bounds. A u16
    /// (and `max_in_flight` saturates there), so that the outbox stays within the idle
    /// session's budget: the replay window lets far fewer be in flight anyway.
    counters: u16,
    /// The earliest deadline of any entry. Kept exact on every change, so that a deadline
    /// query is O(1): the scan over up to a window of entries per driver pass was the largest
    /// cost of the core path outside the cipher (issue 19).
    earliest_deadline: Instant,
    /// The earliest retry of any sent entry; `poll_due` makes its timer pass only when this
    /// or `earliest_deadline` is due.
    earliest_retry: Instant,
    /// Whether the deadlines never decrease from front to back (then the front's is the
    /// earliest). Restored by a rescan.
    deadlines_sorted: bool,
    /// How many neighbouring pairs of the sent prefix have their retries out of order (the
    /// later entry retries earlier): zero means the front's retry is the earliest. A count,
    /// not a flag, so that a disorder that is undone is forgotten without a rescan: every
    /// suite 3 run is first armed at the RTO and then moved later by `delay_retries`, which
    /// puts it out of order with the run before it for a moment; with a flag that moment
    /// left the prefix "unsorted" until the next rescan, and every ACK of the minimum then
    /// rescanned the whole window (issue 19's pipelined profile: a quarter of the client's
    /// instructions). Saturates at `u16::MAX`, which then only means "not sorted" until a
    /// rescan counts again.
    retry_inversions: u16,
    /// When an answer (ACK or response) to any exchange in flight last arrived: the evidence
    /// that the path works, which stops the backoff of the others (`docs/PROTOCOL.md` §7.3).
    /// `Instant::ZERO` until the first: not an `Option`, which would cost every idle server
    /// session 8 bytes; the comparison is strict, so the sentinel never counts as an answer.
    last_answer: Instant,
    /// How many internal messages (keepalives) the entries hold, so that the client's
    /// question "is a keepalive queued?", asked at every timer query, is answered without
    /// walking up to a window of entries when none is (issue 19: a tenth of suite 1's
    /// per-message cost outside the cipher). Exact below `u8::MAX`; at it the count only
    /// means "some, perhaps", until a rescan counts again. A u8 fits the padding the other
    /// fields leave, within the idle session's budget.
    internal_messages: u8,
}

/// Whether `e` counts in [`Outbox::internal_messages`].
fn is_internal_message(e: &InFlight) -> bool {
    e.internal && matches!(e.payload, Payload::Message(_))
}

impl Outbox {
    pub(crate) fn new(capacity: usize, max_in_flight: usize) -> Self {
        Outbox {
            entries: VecDeque::new(),
            capacity: u32::try_from(capacity.max(1)).unwrap_or(u32::MAX),
            max_in_flight: u16::try_from(max_in_flight.clamp(1, usize::from(u16::MAX)))
                .unwrap_or(u16::MAX),
            sent: 0,
            counters: 0,
            earliest_deadline: Instant::MAX,
            earliest_retry: Instant::MAX,
            deadlines_sorted: true,
            retry_inversions: 0,
            last_answer: Instant::ZERO,
            internal_messages: 0,
        }
    }

    /// Queues an exchange; it goes out when a session exists and an in-flight slot is free.
    pub(crate) fn push(
        &mut self,
        id: u64,
        payload: Payload,
        internal: bool,
        deadline: Instant,
    ) -> Result<(), Payload> {
        if self.entries.len() >= self.capacity as usize {
            return Err(payload);
        }
        debug_assert!(
            self.entries.back().is_none_or(|e| e.id < id),
            "ids must increase"
        );
        self.deadlines_sorted &= self.entries.back().is_none_or(|b| b.deadline <= deadline);
        self.earliest_deadline = self.earliest_deadline.min(deadline);
        self.entries.push_back(InFlight {
            id,
            payload,
            internal,
            counter: None,
            retransmissions: 0,
            last_sent: Instant::MAX,
            backoff: 0,
            next_retry: Instant::MAX,
            deadline,
            expected: Vec::new(),
            acked: Receivers::new(),
        });
        if self.entries.back().is_some_and(is_internal_message) {
            self.internal_messages = self.internal_messages.saturating_add(1);
        }
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every exchange, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &InFlight> + '_ {
        self.entries.iter()
    }

    pub(crate) fn get(&self, id: u64) -> Option<&InFlight> {
        self.index_of(id).map(|i| &self.entries[i])
    }

    /// Where the exchange `id` is.
    ///
    /// Ids increase by at least one per entry, so `id` lies at most `id - front.id` entries
    /// from the front, and at least `back.id - id` entries from the back: exactly there while
    /// the ids around it are dense (every id of a run of sends pushed here, none removed
    /// from between), which is the pipelined case. Each lookup of a send and of its
    /// transmission was a binary search over up to a window of entries before (issue 19).
    /// Otherwise a binary search of what lies between the two bounds.
    fn index_of(&self, id: u64) -> Option<usize> {
        let (front, back) = (self.entries.front()?.id, self.entries.back()?.id);
        let len = self.entries.len();
        let hi = usize::try_from(id.checked_sub(front)?).map_or(len, |d| d.saturating_add(1));
        let lo = usize::try_from(back.checked_sub(id)?)
            .map_or(0, |d| len.saturating_sub(d.saturating_add(1)));
        let hi = hi.min(len);
        for guess in [hi.wrapping_sub(1), lo] {
            if self.entries.get(guess).is_some_and(|e| e.id == id) {
                return Some(guess);
            }
        }
        let (mut lo, mut hi) = (lo, hi);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entries[mid].id.cmp(&id) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Equal => return Some(mid),
                core::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }

    /// [`Outbox::index_of`] for a first transmission: sends go out in order, so that is
    /// nearly always the first unsent entry, looked at before searching.
    fn index_of_unsent(&self, id: u64) -> Option<usize> {
        let next = self.sent();
        match self.entries.get(next) {
            Some(e) if e.id == id => Some(next),
            _ => self.index_of(id),
        }
    }

    /// The exchange sent under `counter`.
    pub(crate) fn find_counter(&self, counter: Counter) -> Option<&InFlight> {
        self.position_of(counter).and_then(|i| self.entries.get(i))
    }

    /// Where the exchange sent under `counter` is: a binary search of the sent prefix, whose
    /// counters increase (see the invariants).
    ///
    /// Several entries may share a counter (a suite 3 batch, `features::batch`): this finds the
    /// first of that run.
    fn position_of(&self, counter: Counter) -> Option<usize> {
        // Answers come mostly in send order, and the op 39 frame's counters are handled
        // lowest first (`endpoint::batch::acked_counters`): the front's run is the usual one.
        if self.sent > 0
            && self
                .entries
                .front()
                .is_some_and(|f| f.counter == Some(counter))
        {
            return Some(0);
        }
        let (mut lo, mut hi) = (0, self.sent().min(self.entries.len()));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entries[mid].counter {
                Some(c) if c < counter => lo = mid + 1,
                _ => hi = mid,
            }
        }
        (lo < self.sent().min(self.entries.len()) && self.entries[lo].counter == Some(counter))
            .then_some(lo)
    }

    /// The entries sent under `counter`, in order: one, or a batch's run.
    pub(crate) fn run(&self, counter: Counter) -> impl Iterator<Item = &InFlight> + '_ {
        let start = self.position_of(counter).unwrap_or(self.entries.len());
        self.entries
            .range(start..)
            .take_while(move |e| e.counter == Some(counter))
    }

    /// Whether an exchange waits for its first transmission (a burst is under way).
    pub(crate) fn has_unsent(&self) -> bool {
        self.entries.len() > self.sent()
    }

    /// Whether an internal exchange with this payload is already queued (so that keepalives
    /// and subscriptions are not stacked up while a peer is unreachable).
    pub(crate) fn has_internal(&self, payload: &Payload) -> bool {
        if self.internal_messages == 0 && matches!(payload, Payload::Message(_)) {
            return false;
        }
        self.entries
            .iter()
            .any(|e| e.internal && e.payload == *payload)
    }

    /// The lowest counter still awaiting an answer. A new session must accept it, so the client
    /// announces a handshake floor just below it (docs/PROTOCOL.md §6.4, and §10 item 9).
    pub(crate) fn oldest_counter(&self) -> Option<Counter> {
        self.entries.front().and_then(|e| e.counter)
    }

    /// Records the first transmission of `id` under `counter` to `expected` receivers, and arms
    /// its retry timer.
    pub(crate) fn on_first_transmit(
        &mut self,
        id: u64,
        counter: Counter,
        expected: Vec<SocketAddr>,
        now: Instant,
        rtt: &RttEstimator,
    ) {
        let Some(i) = self.index_of_unsent(id) else {
            return;
        };
        let previous = i.checked_sub(1).and_then(|p| self.entries[p].counter);
        let prev_retry = i.checked_sub(1).map_or(Instant::ZERO, |p| self.retry_at(p));
        let e = &mut self.entries[i];
        if e.counter.is_some() {
            return;
        }
        // The invariants: sends go out in order, under non-decreasing counters (a batch's
        // entries share one).
        debug_assert_eq!(i, self.sent as usize, "first transmission out of order");
        debug_assert!(previous.is_none_or(|p| p <= counter), "counter decreasing");
        e.counter = Some(counter);
        e.last_sent = now;
        e.expected = expected;
        let retry = (now + rtt.backoff(0)).min(e.deadline);
        e.next_retry = retry;
        if previous != Some(counter) {
            self.counters += 1;
        }
        self.sent += 1;
        if prev_retry > retry {
            self.add_inversions(1);
        }
        self.earliest_retry = self.earliest_retry.min(retry);
    }

    /// Makes every exchange in flight due at `now`: a new session just came up, and whatever
    /// went to the old one was probably lost with it. A copy that did arrive is a duplicate to
    /// the receiver's window, answered again, never delivered twice.
    ///
    /// The backoff starts again too: the timers grew while the old session was silent, which
    /// says nothing about the new one (a copy lost on the new path doubles from the RTO).
    pub(crate) fn retry_all_now(&mut self, now: Instant) {
        for e in self.entries.iter_mut().filter(|e| e.counter.is_some()) {
            e.next_retry = now.min(e.deadline);
            e.backoff = 0;
        }
        self.rescan();
    }

    /// Makes the exchanges in flight for which `pick` holds due at `now` (see
    /// [`Outbox::retry_all_now`]).
    pub(crate) fn retry_now_where(&mut self, now: Instant, pick: impl Fn(&InFlight) -> bool) {
        for e in self.entries.iter_mut().filter(|e| e.counter.is_some()) {
            if pick(e) {
                e.next_retry = now.min(e.deadline);
            }
        }
        self.rescan();
    }

    /// Records a retransmission of `id` and arms its next timer.
    ///
    /// The timer doubles (RFC 6298 §5.5) only if the session stayed silent since the previous
    /// copy. If an answer to any exchange arrived meanwhile, the path works and this copy (or
    /// its ACK) was lost at random: backing off would only delay it, so the timer falls back
    /// to the plain RTO, as QUIC resets its probe backoff on any acknowledgement (RFC 9002
    /// §6.2.1). A dead or partitioned peer answers nothing, so its timers still double to the
    /// ceiling and the number of copies sent into silence is unchanged.
    pub(crate) fn on_retransmit(&mut self, id: u64, now: Instant, rtt: &RttEstimator) {
        let last_answer = self.last_answer;
        let Some(i) = self.index_of(id) else {
            return;
        };
        let retry = {
            let e = &mut self.entries[i];
            e.retransmissions = e.retransmissions.saturating_add(1);
            // Only for an exchange with one receiver: an answer from one member of a group says
            // nothing of another that stays silent, and resending to it every RTO would
            // multiply the group's traffic (the `multicast` scenario: 36× the retransmissions).
            let alive = e.expected.len() <= 1 && last_answer > e.last_sent;
            e.backoff = if alive {
                0
            } else {
                e.backoff.saturating_add(1)
            };
            e.last_sent = now;
            (now + rtt.backoff(u32::from(e.backoff))).min(e.deadline)
        };
        if i < self.sent() {
            self.set_retry(i, retry);
        } else if let Some(e) = self.entries.get_mut(i) {
            // Never sent: not part of the retry minimum (nor of `poll_due`'s pass).
            e.next_retry = retry;
        }
    }

    /// Records an answer from `from` to the exchange sent under `counter`. The first answer to
    /// a never-retransmitted exchange feeds an RTT sample, to `rtt` and to the endpoint's
    /// `samples`. `call` says whether the answer is an RPC response (which only answers calls)
    /// or an ACK (which answers everything else).
    pub(crate) fn on_reply(
        &mut self,
        counter: Counter,
        call: bool,
        from: SocketAddr,
        now: Instant,
        rtt: &mut RttEstimator,
        samples: &mut histogram::RttHistogram,
    ) -> Reply {
        let Some(pos) = self
            .position_of(counter)
            .filter(|&i| self.entries[i].payload.is_call() == call)
        else {
            return Reply::Unknown;
        };
        // One sample per counter: only the last entry of a batch's run (completed last, by
        // the same ACK as the others) gives it, so the run does not repeat it.
        let last_of_run = self
            .entries
            .get(pos + 1)
            .is_none_or(|next| next.counter != Some(counter));
        let e = &mut self.entries[pos];
        if e.expected.len() <= 1 {
            self.last_answer = now;
        }
        if e.acked.is_empty() && last_of_run {
            e.record_rtt_sample(now, rtt, samples);
        }
        if !e.acked.insert(from) {
            return Reply::Partial;
        }
        // A call is complete with its first response, whoever sends it.
        if call || e.is_complete() {
            match self.remove_at(pos) {
                Some(done) => Reply::Complete(done),
                None => Reply::Unknown,
            }
        } else {
            Reply::Partial
        }
    }

    /// Completes in one step the run sent under `counter` when an ACK from `from` completes
    /// every entry of it: each is answered by an ACK, was not answered before, expects at most
    /// `from`, and passes `accept` (the kinds the caller finishes without the outbox). That is
    /// a suite 3 run acknowledged, the pipelined case: the run leaves in one drain, with one
    /// lookup and one update of the counts and minimums, instead of one lookup, removal and
    /// update per entry. Not only the oldest run: a receiver that holds the ACK of a batch
    /// sent with `MORE` and answers the next batch at once acknowledges out of order (about
    /// two runs in five of issue 19's pipelined suite 3 run), and entry by entry each removal
    /// from behind the older run moved that run's entries again. `None`, with nothing changed,
    /// otherwise: the caller answers entry by entry ([`Outbox::on_reply`]), which ends the
    /// same way.
    pub(crate) fn complete_run(
        &mut self,
        counter: Counter,
        from: SocketAddr,
        now: Instant,
        rtt: &mut RttEstimator,
        samples: &mut histogram::RttHistogram,
        accept: impl Fn(&InFlight) -> bool,
    ) -> Option<alloc::collections::vec_deque::Drain<'_, InFlight>> {
        let start = self.position_of(counter)?;
        let sent = self.sent().min(self.entries.len());
        let (mut n, mut held_deadline, mut held_retry) = (0usize, false, false);
        let mut internal_messages = 0usize;
        for e in self.entries.range(start..sent) {
            if e.counter != Some(counter) {
                break;
            }
            let completes = e.acked.is_empty()
                && !e.payload.is_call()
                && e.expected.len() <= 1
                && e.expected.iter().all(|a| *a == from);
            if !completes || !accept(e) {
                return None;
            }
            held_deadline |= e.deadline == self.earliest_deadline;
            held_retry |= e.next_retry == self.earliest_retry;
            internal_messages += usize::from(is_internal_message(e));
            n += 1;
        }
        let last = start + n.checked_sub(1)?;
        self.last_answer = now;
        // One sample per counter, from the run's last entry, as `on_reply` takes it.
        self.entries[last].record_rtt_sample(now, rtt, samples);
        for e in self.entries.range_mut(start..start + n) {
            e.acked = Receivers::one(from);
        }
        self.forget_run(start, n, held_deadline, held_retry);
        self.forget_internal_messages(internal_messages);
        Some(self.entries.drain(start..start + n))
    }

    /// Appends the counters in `first..first + count` under which an exchange answered by an
    /// ACK is in flight (an op 34 range): only counters of the sent prefix, so the work is
    /// bounded by the window, whatever range a peer names.
    pub(crate) fn acked_in_range(&self, first: Counter, count: u16, out: &mut Vec<Counter>) {
        let end = first.0.saturating_add(u64::from(count));
        let sent = self.sent().min(self.entries.len());
        let start = self
            .entries
            .range(..sent)
            .position(|e| e.counter.is_some_and(|c| c >= first))
            .unwrap_or(sent);
        out.extend(
            self.entries
                .range(start..sent)
                .filter_map(|e| e.counter.filter(|_| !e.payload.is_call()))
                .take_while(|c| c.0 < end),
        );
    }

    /// Removes every entry, in order (used when the peer goes away for good).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = InFlight> + '_ {
        self.sent = 0;
        self.counters = 0;
        self.earliest_deadline = Instant::MAX;
        self.earliest_retry = Instant::MAX;
        self.deadlines_sorted = true;
        self.retry_inversions = 0;
        self.internal_messages = 0;
        self.entries.drain(..)
    }

    /// Removes the entries for which `pick` holds, sent or not, keeping the others in order.
    pub(crate) fn remove_where(&mut self, pick: impl Fn(&InFlight) -> bool) -> Vec<InFlight> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            if pick(&self.entries[i]) {
                // The sent prefix stays a prefix, one shorter if `i` was in it.
                if let Some(e) = self.remove_raw(i) {
                    out.push(e);
                }
            } else {
                i += 1;
            }
        }
        if !out.is_empty() {
            self.rescan();
        }
        out
    }

    /// Removes entries that wait for a session and were never sent (used when the server
    /// refuses us: they can never go out).
    pub(crate) fn drain_unsent(&mut self) -> Vec<InFlight> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].counter.is_none() {
                if let Some(e) = self.remove_raw(i) {
                    out.push(e);
                }
            } else {
                i += 1;
            }
        }
        if !out.is_empty() {
            self.rescan();
        }
        out
    }

    /// How many new exchanges may take a counter now, with `next` the next counter to send.
    ///
    /// The receiver accepts a counter only inside its replay window (1024 wide). If new
    /// messages kept taking counters while an old one is being retransmitted, the old one's
    /// counter would fall out of that window and never be accepted again. So the span from the
    /// oldest unanswered counter to the next one stays under the window, less room for the
    /// ACKs and unreliable packets sent meanwhile.
    pub(crate) fn counter_budget(&self, next: Counter) -> usize {
        let span = self
            .oldest_counter()
            .map_or(0, |c| next.0.saturating_sub(c.0));
        usize::try_from(SEND_SPAN.saturating_sub(span)).unwrap_or(usize::MAX)
    }

    /// Decides, at `now`, which exchanges expire and which are (re)sent.
    ///
    /// `can_send` says whether a session exists: without one, nothing is sent but deadlines
    /// still apply. At most `new_budget` exchanges are sent for the first time (see
    /// [`Outbox::counter_budget`]). Expired entries are removed before this returns.
    pub(crate) fn poll_due(
        &mut self,
        now: Instant,
        can_send: bool,
        new_budget: usize,
        out: &mut Vec<Due>,
    ) {
        self.poll_due_runs(now, can_send, new_budget, 1, out);
    }

    /// [`Outbox::poll_due`] for a sender whose first transmissions may share a counter, up
    /// to `per_counter` of them (a suite 3 run): `max_in_flight` and `new_budget` count
    /// counters, so up to `per_counter` entries per free counter are handed out. The caller
    /// sends them in order and stops at the first that would need a counter
    /// [`Outbox::may_take_counter`] refuses.
    pub(crate) fn poll_due_runs(
        &mut self,
        now: Instant,
        can_send: bool,
        new_budget: usize,
        per_counter: usize,
        out: &mut Vec<Due>,
    ) {
        if now >= self.earliest_deadline.min(self.earliest_retry) {
            self.timer_pass(now, can_send, out);
        }
        // Nothing waits for its first transmission: the common pass of a pipelined sender
        // (every send is handed out by the pass its command makes) and of the client's other
        // outboxes, nearly always empty.
        if !can_send || !self.has_unsent() {
            return;
        }
        // New sends, oldest first, after every retransmission above (which are all older).
        let slots = usize::from(self.max_in_flight)
            .saturating_sub(usize::from(self.counters))
            .min(new_budget)
            .saturating_mul(per_counter.max(1));
        out.extend(
            self.entries
                .iter()
                .skip(self.sent())
                .take(slots)
                .map(|e| Due::Transmit(e.id)),
        );
    }

    /// Whether a first transmission may take a new counter: fewer than `max_in_flight`
    /// counters are in flight.
    pub(crate) fn may_take_counter(&self) -> bool {
        self.counters < self.max_in_flight
    }

    /// Expires what is past its deadline and picks the retransmissions due; the minimums are
    /// rescanned once at the end if anything expired.
    fn timer_pass(&mut self, now: Instant, can_send: bool, out: &mut Vec<Due>) {
        let mut expired = false;
        let mut i = 0;
        while i < self.entries.len() {
            let e = &self.entries[i];
            if e.deadline <= now {
                if let Some(e) = self.remove_raw(i) {
                    out.push(Due::Expired(e));
                    expired = true;
                }
                continue;
            }
            if e.counter.is_some() {
                // A retry handed out here is re-armed by `on_retransmit`; one that is not
                // (no session yet) keeps the next call making this pass.
                if can_send && e.next_retry <= now {
                    out.push(Due::Transmit(e.id));
                }
            }
            i += 1;
        }
        if expired {
            self.rescan();
        }
    }

    /// The earliest instant at which `poll_due` has work: a retry or a deadline.
    ///
    /// Retries count only with `can_send`; without it the next work is a deadline.
    ///
    /// With `can_send` and counter budget left, an exchange waiting for a free slot is due at
    /// once if a slot is free.
    pub(crate) fn next_timeout(&self, can_send: bool, new_budget: usize) -> Option<Instant> {
        if can_send && new_budget > 0 && self.has_unsent() && self.may_take_counter() {
            return Some(Instant::ZERO);
        }
        // Without a session a retry cannot go out, and `poll_due` does not re-arm it: a past
        // retry reported here would wake the driver again at once, for ever (found by
        // fuzzing: a client whose server quit spun until the deadline).
        let t = if can_send {
            self.earliest_deadline.min(self.earliest_retry)
        } else {
            self.earliest_deadline
        };
        // No deadline (`Instant::MAX`) and no retry: no timer, rather than one at the end of
        // time that a driver would have to turn into a sleep.
        (t < Instant::MAX).then_some(t)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod timeout_tests;
