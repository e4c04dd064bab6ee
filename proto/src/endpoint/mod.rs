//! The client and server roles, each a sans-IO state machine.
//!
//! Both follow the driving contract of the crate docs. Their methods come in four kinds:
//! - getters on `&self` (`stats`, `is_connected`, ...);
//! - inputs: `handle_datagram(now, from, bytes)` and `handle_timeout(now)`;
//! - commands: `send_message(now, ...)`, `close(now)`, returning an id or a typed error at once;
//! - outputs, drained in this order after every input or command: `poll_transmit(now, buf)`
//!   until `None`, then `poll_event()` until `None`, then `poll_timeout()`.
//!
//! A bad datagram never reaches the driver as an error: it is dropped and counted in
//! [`Stats`] under a [`DropReason`]. `Err` is only for commands the endpoint cannot carry out.

mod authority;
mod batch;
mod client;
mod config;
mod driving;
mod durable;
mod event;
mod handoff;
mod member;
mod mux;
mod relay;
mod server;
mod shared;
mod timers;

pub use crate::features::handoff::{HandoffError, HandoffId, HandoffTarget, MessageKey};
pub use crate::features::ordered::OrderedLimits;
pub use crate::features::registers::{
    Register, RegisterError, RegisterFailure, RegisterInfo, RegisterOpId,
};
pub use crate::features::timesync::SyncId;
pub use crate::reliability::Receivers;
pub use authority::{
    Authority, AuthorityConfig, AuthorityEvent, AuthorityLimits, AuthorityStats, BatchId,
    Enrolment, ListedPeer, Policy, RestoreError, RevokeError, StoreBatch, StoreOp, StoreTable,
    StoredRecord,
};
pub use client::{Client, ServerInfo};
pub use config::{ClientConfig, ClientCredentials, Limits, ServerConfig};
pub use driving::Endpoint;
use event::{delivered_event, expired_event, received_message};
pub use event::{
    AuthFailure, ClientEvent, CloseReason, FailReason, ReceivedMessage, RpcRequest, ServerEvent,
    TransferRefusal,
};
pub use member::{
    JoinCredential, Member, MemberConfig, MemberError, MemberEvent, MemberLimits, MemberState,
    RosterStats,
};
pub use relay::{
    Emit, LocalDatagram, PeerStatus, Relay, RelayConfig, RelayDrop, RelayEvent, RelayId,
    RelayLimits, RelayPeer, RelayStats, Scope,
};
#[cfg(any(test, feature = "testing"))]
pub(crate) use server::assumed::{AssumedNoise, AssumedReference};
pub use server::Server;

use core::fmt;
use core::net::SocketAddr;

use crate::id::Counter;
use crate::reliability::OwnedMessage;
use crate::session::{OpenError, Refused};
use crate::time::Duration;
use crate::wire::{self, Setup};

/// A datagram that `poll_transmit` wrote into the caller's buffer.
#[must_use = "the datagram in the buffer must be sent"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// How many bytes at the start of the buffer make up the datagram.
    pub len: usize,
}

/// The id of an RPC call; its outcome event carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CallId(pub u64);

/// Names one RPC request a server received, for [`Server::respond`].
///
/// It is bound to the session the call arrived on: after that client re-handshakes as a new
/// process, a stale handle answers nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CallHandle {
    pub(crate) addr: SocketAddr,
    pub(crate) counter: Counter,
    pub(crate) generation: u64,
}

/// Whether a message is acknowledged and retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reliability {
    /// Opcode 1: acknowledged, retried until acknowledged or the deadline passes, and
    /// reported as `Delivered`, `Failed` or `TimedOut`.
    Reliable,
    /// Opcode 3: sent once, never acknowledged, no outcome event.
    Unreliable,
    /// Opcode 36: reliable as [`Reliability::Reliable`] (same outcome events), and delivered
    /// to the receiving application in send order among the messages of the same target,
    /// exactly once. A message that times out is skipped by the receiver, never delivered
    /// out of order; other targets are never held up by it. An ordered message must fit one
    /// datagram (`SendError::TooLarge` otherwise): unlike a reliable one, it is not segmented.
    Ordered,
}

/// Options of one `send_message`.
///
/// # Examples
/// ```
/// use pavillion_proto::endpoint::SendOptions;
/// use pavillion_proto::Duration;
/// let opts = SendOptions::reliable().with_timeout(Duration::from_secs(2));
/// assert_eq!(opts.timeout, Some(Duration::from_secs(2)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendOptions {
    /// Reliable or not.
    pub reliability: Reliability,
    /// How long a reliable message may take, from the call until the ACK; the endpoint's
    /// default (5 s, as the reference client) if `None`.
    pub timeout: Option<Duration>,
}

impl SendOptions {
    /// A reliable send with the default timeout.
    pub const fn reliable() -> Self {
        SendOptions {
            reliability: Reliability::Reliable,
            timeout: None,
        }
    }

    /// An ordered send (see [`Reliability::Ordered`]) with the default timeout.
    ///
    /// # Examples
    /// ```
    /// use pavillion_proto::endpoint::{Reliability, SendOptions};
    /// assert_eq!(SendOptions::ordered().reliability, Reliability::Ordered);
    /// ```
    pub const fn ordered() -> Self {
        SendOptions {
            reliability: Reliability::Ordered,
            timeout: None,
        }
    }

    /// An unreliable send.
    pub const fn unreliable() -> Self {
        SendOptions {
            reliability: Reliability::Unreliable,
            timeout: None,
        }
    }

    /// Sets the deadline of a reliable send, relative to the call.
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// No deadline: a reliable (or ordered) message is retried, with the RTO ceiling as its
    /// longest interval, across outages and re-handshakes until it is acknowledged, its
    /// endpoint closes, or the application cancels it (`Client::cancel`, `Server::cancel`).
    /// It is [`Duration::MAX`] as the timeout, which every deadline computation saturates to
    /// "never".
    ///
    /// # Examples
    /// ```
    /// use pavillion_proto::endpoint::SendOptions;
    /// use pavillion_proto::Duration;
    /// let opts = SendOptions::reliable().without_deadline();
    /// assert_eq!(opts.timeout, Some(Duration::MAX));
    /// assert!(opts.has_no_deadline());
    /// ```
    pub const fn without_deadline(mut self) -> Self {
        self.timeout = Some(Duration::MAX);
        self
    }

    /// Whether [`SendOptions::without_deadline`] was set.
    pub const fn has_no_deadline(&self) -> bool {
        matches!(self.timeout, Some(t) if t.as_secs() == Duration::MAX.as_secs())
    }
}

/// Why a command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The endpoint was closed.
    Closed,
    /// The target or name contains a newline, which the wire format uses as separator; or a
    /// reliable message is entirely empty, which is the keepalive's form and never delivered.
    InvalidName,
    /// The bounded send queue is full; try again after some outcomes arrive.
    QueueFull,
    /// A reliable message (call arguments, answer) is larger than `Limits::max_message`; an
    /// unreliable one does not fit one datagram.
    TooLarge,
    /// The call was already answered, or its session is gone.
    UnknownCall,
    /// There is no session with that peer.
    UnknownPeer,
    /// A durable send before `enable_durable`.
    NotDurable,
    /// The operation does not exist in this mode (a durable send in multicast mode).
    Unsupported,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Closed => "endpoint is closed",
            SendError::InvalidName => "target or name contains a newline",
            SendError::QueueFull => "send queue is full",
            SendError::TooLarge => {
                "message larger than the configured maximum (unreliable: than one datagram)"
            }
            SendError::UnknownCall => "no such call awaits an answer",
            SendError::UnknownPeer => "no session with that peer",
            SendError::NotDurable => "durable messages are not enabled (no store)",
            SendError::Unsupported => "not supported in this mode",
        })
    }
}

impl core::error::Error for SendError {}

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// Why an incoming datagram was dropped. Every drop is counted in [`Stats`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum DropReason {
            $($(#[$doc])* $variant,)*
        }

        impl DropReason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];

            /// How many reasons there are: the size of [`Stats`]' drop table, so a new reason
            /// always has a counter.
            pub const COUNT: usize = DropReason::ALL.len();

            /// A short stable name, for logs and tables.
            pub const fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// A handshake packet failed verification (tag, box, nonce or challenge).
    BadHandshake = "bad_handshake",
    /// The datagram does not start with the Pavillion magic.
    BadMagic = "bad_magic",
    /// A decoded field is malformed (bad UTF-8, missing separator, unknown cipher).
    BadEncoding = "bad_encoding",
    /// A wrong exact length for a fixed-size packet.
    BadLength = "bad_length",
    /// An authenticated packet whose counter was already accepted.
    Duplicate = "duplicate",
    /// Authentication failed.
    Forged = "forged",
    /// Larger than the receive limit.
    Oversized = "oversized",
    /// The unsupported plaintext mode (`Pavillion0`).
    PlaintextMode = "plaintext_mode",
    /// A setup reply was suppressed by the per-source rate limit.
    RateLimited = "rate_limited",
    /// A bounded table is full of live entries.
    TableFull = "table_full",
    /// The counter is left of the replay window.
    TooOld = "too_old",
    /// Shorter than its format.
    Truncated = "truncated",
    /// A valid packet that makes no sense in the current state (e.g. client-info with no
    /// exchange open, or a server-only opcode at a server).
    Unexpected = "unexpected",
    /// An unknown opcode.
    UnknownOpcode = "unknown_opcode",
    /// A session packet from an address with no session.
    UnknownPeer = "unknown_peer",
    /// A known opcode this endpoint does not handle (yet).
    Unsupported = "unsupported",
    /// A segment (op 33) of a transfer larger than `Limits::max_message`: refused (op 35).
    TransferTooLarge = "transfer_too_large",
    /// A segment of a transfer for which the reassembly budget (per peer or in total) has no
    /// room: refused (op 35).
    TransferNoRoom = "transfer_no_room",
    /// A segment that disagrees with its transfer (total, offset, length or overlapping
    /// bytes): the partial message is freed and the transfer refused (op 35).
    TransferInconsistent = "transfer_inconsistent",
    /// A segment of a transfer whose partial message was freed after the reassembly timeout.
    TransferExpired = "transfer_expired",
    /// A segment, under a fresh counter, of a transfer already delivered (its sender
    /// re-handshook before our ACK reached it): acknowledged again, not delivered again.
    SegmentOfDelivered = "segment_of_delivered",
    /// An ordered message (op 36) with seq 0 or a floor past seq + 1.
    OrderedInvalid = "ordered_invalid",
    /// An ordered message too far ahead of the next one expected on its stream; not
    /// acknowledged, so its sender retries it later.
    OrderedGap = "ordered_gap",
    /// An ordered message that would have to be held while the reorder buffer (per peer or
    /// in total) is full; not acknowledged, so its sender retries it later.
    OrderedBufferFull = "ordered_buffer_full",
    /// A register packet refused with no answer to carry the refusal: an unreliable write
    /// or a `core.tagv` write that breaks a rule, an answer nobody asked for
    /// (`docs/PROTOCOL.md` §9.8).
    RegisterRefused = "register_refused",
    /// A durable message (op 37) at an endpoint without durability enabled: not
    /// acknowledged, so its sender keeps it.
    DurableDisabled = "durable_disabled",
    /// A durable message with seq 0 or `u64::MAX`, or a floor past seq + 1.
    DurableInvalid = "durable_invalid",
    /// A durable message more than `features::durable::WINDOW` seqs above its sender's floor;
    /// not acknowledged, so its sender retries it later.
    DurableWindow = "durable_window",
    /// A durable message from a new sender while `DurableLimits::max_senders` are known; not
    /// acknowledged.
    DurableTableFull = "durable_table_full",
    /// A durable message while the inbox holds `DurableLimits::max_inbox` unconsumed ones;
    /// not acknowledged.
    DurableInboxFull = "durable_inbox_full",
    /// A packet of a crypto suite this build leaves out (the `suite-psk`, `suite-ecc` and
    /// `suite-noise` features): a device that links one suite cannot answer another's.
    SuiteNotCompiled = "suite_not_compiled",
    /// A reliable message to a target whose ACKs are handed off, while the hand-off table
    /// (per session or in total) is full: not acknowledged, its counter made fresh again, so
    /// its sender's retransmission comes as new (`docs/PROTOCOL.md` §18).
    HandoffFull = "handoff_full",
    /// A packet of an optional feature this build leaves out (`durable`, `ordered`,
    /// `registers`, ...: the cargo features of `pavillion-proto`): a small device that links
    /// only what it uses does not acknowledge what it cannot hold, so the sender's deadline
    /// reports it.
    FeatureNotCompiled = "feature_not_compiled",
}

impl DropReason {
    /// How a refused segment is counted.
    pub(crate) fn refused(r: TransferRefusal) -> Self {
        match r {
            TransferRefusal::TooLarge => DropReason::TransferTooLarge,
            TransferRefusal::NoRoom => DropReason::TransferNoRoom,
            TransferRefusal::Inconsistent => DropReason::TransferInconsistent,
            TransferRefusal::Expired => DropReason::TransferExpired,
        }
    }
}

/// What a role holds for reassembling segmented messages (`docs/PROTOCOL.md` §9.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReassemblyUsage {
    /// Bytes reserved now: the announced totals of the partial messages held, plus a fixed
    /// overhead each. Never above `Limits::reassembly_total`.
    pub reserved: usize,
    /// The most bytes ever reserved at once.
    pub peak: usize,
    /// Partial messages held now.
    pub partials: usize,
}

impl DropReason {
    pub(crate) fn from_wire(e: wire::Error) -> Self {
        match e {
            wire::Error::BadLength { .. } => DropReason::BadLength,
            wire::Error::BadMagic => DropReason::BadMagic,
            wire::Error::Oversized => DropReason::Oversized,
            wire::Error::PlaintextMode => DropReason::PlaintextMode,
            wire::Error::Truncated => DropReason::Truncated,
            wire::Error::UnknownAppOpcode(_) | wire::Error::UnknownSetupOpcode(_) => {
                DropReason::UnknownOpcode
            }
            _ => DropReason::BadEncoding,
        }
    }

    /// The reason's slot in [`Stats`]: its declaration order, which is also its place in
    /// [`DropReason::ALL`].
    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    /// The stable [`DropReason::name`], so logs and tables print the same words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Counters of what an endpoint did; cheap to read at any time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams passed to `handle_datagram`.
    pub datagrams_received: u64,
    /// Datagrams returned by `poll_transmit`.
    pub datagrams_sent: u64,
    /// Completed handshakes.
    pub handshakes: u64,
    /// Handshake requests (opcode 1) sent (client) or answered (server).
    pub handshake_requests: u64,
    /// Messages delivered to the application.
    pub messages_received: u64,
    /// Retransmissions of reliable messages.
    pub retransmissions: u64,
    /// Queued datagrams that could not be written (caller buffer too small, or session gone).
    pub send_errors: u64,
    /// X25519 operations done for handshakes: each Diffie–Hellman, and each `crypto_box` seal
    /// or open under a key not computed before (one Diffie–Hellman each). Counted where they
    /// happen, so a test can check that a flood costs none beyond its budget.
    pub public_key_ops: u64,
    /// Client: unauthenticated claims that a server lost our session (op 4, op 5) not acted
    /// on, because one was being checked or the server proved alive.
    pub claims_disbelieved: u64,
    /// Suite 3 0-RTT data (`docs/PROTOCOL.md` §12.2). Client: initiations sent carrying an
    /// exchange. Server: exchanges read from initiations, after the handshake checks.
    pub early_data: u64,
    /// Server: suite 3 cookie replies sent (stateless, outside every budget).
    pub cookie_replies: u64,
    /// Server: sources whose reply budget was forgotten to make room for a new source (the
    /// table evicts when full; see `docs/PROTOCOL.md` §8).
    pub budget_evictions: u64,
    /// Server: replies to duplicate packets (re-sent RPC answers, re-acknowledgements) that
    /// the duplicate-reply limits held back.
    pub duplicate_replies_withheld: u64,
    /// Round-trip samples (RFC 6298 samples: acknowledged first transmissions only), for
    /// percentiles in statistics and metrics.
    pub rtt: crate::reliability::histogram::RttHistogram,
    /// Session secrets dropped from a full key log queue (only with the key log on).
    pub secrets_dropped: u64,
    /// Suite 3: datagrams sent as an op 38 batch (`docs/PROTOCOL.md` §17).
    pub batches_sent: u64,
    /// Suite 3: frames carried in those batches.
    pub frames_batched: u64,
    /// Suite 3: acknowledgements held back for a burst (`features::ack_delay`,
    /// `docs/PROTOCOL.md` §17.4).
    pub acks_delayed: u64,
    /// Suite 3: op 39 frames sent (several counters acknowledged at once).
    pub ack_ranges_sent: u64,
    /// Held messages refused by the application (`Server::refuse_handoff`,
    /// `Client::refuse_handoff`), to come again (`docs/PROTOCOL.md` §18).
    pub handoffs_refused: u64,
    /// Held messages refused because `Limits::handoff_timeout` passed.
    pub handoffs_expired: u64,
    /// Duplicates of held messages, neither acknowledged nor delivered.
    pub handoff_duplicates: u64,
    /// Server: held messages dropped because their session ended (the client quit, a new
    /// handshake replaced it, the server disconnected or evicted it); the sender sends them
    /// again on its new session. Their ids answer `HandoffError::SessionGone`, and are not
    /// counted again as refused or expired.
    pub handoffs_session_gone: u64,
    drops: DropCounts,
}

/// One counter per [`DropReason`]: a wrapper because arrays longer than 32 have no `Default`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DropCounts([u64; DropReason::COUNT]);

impl Default for DropCounts {
    fn default() -> Self {
        DropCounts([0; DropReason::COUNT])
    }
}

impl core::ops::Deref for DropCounts {
    type Target = [u64; DropReason::COUNT];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl core::ops::DerefMut for DropCounts {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Stats {
    /// How many datagrams were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    /// How many datagrams were dropped for any reason.
    pub fn total_dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Every drop reason with its count, zeros included, in [`DropReason::ALL`] order: what a
    /// table of drops (`pav serve --stats`, a metrics exporter) walks without naming each
    /// reason.
    ///
    /// # Examples
    /// ```
    /// use pavillion_proto::endpoint::{DropReason, Stats};
    ///
    /// let stats = Stats::default();
    /// assert_eq!(stats.drops().count(), DropReason::ALL.len());
    /// for (reason, count) in stats.drops() {
    ///     assert_eq!(count, stats.dropped(reason));
    ///     println!("{reason}: {count}");
    /// }
    /// ```
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.dropped(*r)))
    }

    /// Adds every counter of `other` to ours: the totals of several endpoints (a relay's
    /// server and its clients) as one.
    ///
    /// # Examples
    /// ```
    /// use pavillion_proto::endpoint::Stats;
    ///
    /// let mut total = Stats::default();
    /// let mut one = Stats::default();
    /// one.handshakes = 2;
    /// total.add(&one);
    /// total.add(&one);
    /// assert_eq!(total.handshakes, 4);
    /// ```
    pub fn add(&mut self, other: &Stats) {
        let Stats {
            datagrams_received,
            datagrams_sent,
            handshakes,
            handshake_requests,
            messages_received,
            retransmissions,
            send_errors,
            public_key_ops,
            claims_disbelieved,
            early_data,
            cookie_replies,
            budget_evictions,
            duplicate_replies_withheld,
            rtt,
            secrets_dropped,
            batches_sent,
            frames_batched,
            acks_delayed,
            ack_ranges_sent,
            handoffs_refused,
            handoffs_expired,
            handoff_duplicates,
            handoffs_session_gone,
            drops,
        } = other;
        self.handoffs_refused += handoffs_refused;
        self.handoffs_expired += handoffs_expired;
        self.handoff_duplicates += handoff_duplicates;
        self.handoffs_session_gone += handoffs_session_gone;
        self.batches_sent += batches_sent;
        self.frames_batched += frames_batched;
        self.acks_delayed += acks_delayed;
        self.ack_ranges_sent += ack_ranges_sent;
        self.rtt.add(rtt);
        self.secrets_dropped += secrets_dropped;
        self.datagrams_received += datagrams_received;
        self.datagrams_sent += datagrams_sent;
        self.handshakes += handshakes;
        self.handshake_requests += handshake_requests;
        self.messages_received += messages_received;
        self.retransmissions += retransmissions;
        self.send_errors += send_errors;
        self.public_key_ops += public_key_ops;
        self.claims_disbelieved += claims_disbelieved;
        self.early_data += early_data;
        self.cookie_replies += cookie_replies;
        self.budget_evictions += budget_evictions;
        self.duplicate_replies_withheld += duplicate_replies_withheld;
        for (a, b) in self.drops.iter_mut().zip(drops.0) {
            *a += b;
        }
    }

    pub(crate) fn drop(&mut self, reason: DropReason) {
        if let Some(c) = self.drops.get_mut(reason.index()) {
            *c += 1;
        }
    }
}

/// A datagram waiting in an endpoint's transmit queue. Sealing happens when it is polled, into
/// the caller's buffer, so queued items hold no encoded bytes.
#[derive(Debug)]
enum Outgoing {
    Setup {
        to: SocketAddr,
        packet: Setup,
    },
    Ack {
        to: SocketAddr,
        counter: Counter,
    },
    Unreliable {
        to: SocketAddr,
        message: OwnedMessage,
    },
    /// An outbox entry (message, call, subscription), first sent or again.
    Reliable {
        to: SocketAddr,
        id: u64,
    },
    RpcResponse {
        to: SocketAddr,
        call: Counter,
    },
    TimeRequest {
        to: SocketAddr,
    },
    TimeResponse {
        to: SocketAddr,
        request: Counter,
    },
    Quit {
        to: SocketAddr,
    },
    /// Every ACK owed to `to` for segments, coalesced into op 34 when encoded.
    AckRanges {
        to: SocketAddr,
    },
    /// Op 35: the transfer is refused.
    Refuse {
        to: SocketAddr,
        transfer: wire::segment::TransferId,
        reason: TransferRefusal,
    },
    /// A quit sealed before its session went away, or a suite 3 handshake packet (built when
    /// its handshake step ran).
    Sealed {
        to: SocketAddr,
        datagram: arrayvec::ArrayVec<u8, 160>,
    },
    /// A suite 3 initiation carrying 0-RTT data (`docs/PROTOCOL.md` §12.2), too long for
    /// `Sealed`; built when its handshake step ran.
    Initiation {
        to: SocketAddr,
        datagram: alloc::vec::Vec<u8>,
    },
    /// A register answer (op 7, 10) or an unreliable register write, sealed when sent.
    Register {
        to: SocketAddr,
        reply: alloc::boxed::Box<crate::features::registers::RegisterReply>,
    },
}

/// Checks a message against the wire format before it is queued.
fn check_message(target: &str, name: &str, payload: &[u8]) -> Result<(), SendError> {
    if target.contains('\n') || name.contains('\n') {
        return Err(SendError::InvalidName);
    }
    // opcode + target + '\n' + name + '\n' + payload must fit after the session header.
    check_size(3 + target.len() + name.len() + payload.len())
}

/// Whether a plaintext body (opcode included) fits one datagram.
fn fits_datagram(body: usize) -> bool {
    body <= wire::MAX_DATAGRAM - wire::SESSION_OVERHEAD
}

/// Checks an ordered message (op 36: the message and its 20-byte stream prefix).
fn check_ordered(target: &str, name: &str, payload: &[u8]) -> Result<(), SendError> {
    check_message(target, name, payload)?;
    check_size(3 + wire::ordered::PREFIX_LEN + target.len() + name.len() + payload.len())
}

/// Checks that a plaintext body (opcode included) fits one datagram.
fn check_size(body: usize) -> Result<(), SendError> {
    if body > wire::MAX_DATAGRAM - wire::SESSION_OVERHEAD {
        return Err(SendError::TooLarge);
    }
    Ok(())
}

fn owned(target: &str, name: &str, payload: &[u8]) -> OwnedMessage {
    OwnedMessage::new(target, name, payload)
}

/// The result of encoding one queued datagram.
enum Encoded {
    Ready(Transmit),
    /// Its reason went away (an exchange answered, a session gone): skip it.
    Obsolete,
    /// It could not be written (caller buffer too small).
    Failed,
}

impl Encoded {
    fn from(to: SocketAddr, r: Result<usize, wire::Error>) -> Self {
        match r {
            Ok(len) => Encoded::Ready(Transmit {
                destination: to,
                len,
            }),
            Err(_) => Encoded::Failed,
        }
    }
}

/// Copies an already sealed datagram into the caller's buffer.
fn copy_out(to: SocketAddr, datagram: &[u8], buf: &mut [u8]) -> Encoded {
    match buf.get_mut(..datagram.len()) {
        Some(out) => {
            out.copy_from_slice(datagram);
            Encoded::Ready(Transmit {
                destination: to,
                len: datagram.len(),
            })
        }
        None => Encoded::Failed,
    }
}

/// What an opened session packet is to the role that received it.
enum Inbound<'a> {
    /// A counter never seen before: its plaintext is acted on.
    Fresh(&'a [u8]),
    /// A copy of a packet already acted on (its plaintext, when it authenticated): the role
    /// may answer it again (an ACK that was lost), never act on it twice.
    Duplicate(&'a [u8]),
}

/// Counts what `Session::open` refused and says what is left to act on: the one place both
/// roles turn an open result into a fresh packet, a duplicate or a counted drop.
fn classify_opened<'a>(
    stats: &mut Stats,
    opened: Result<&'a [u8], (OpenError, Option<&'a [u8]>)>,
) -> Option<Inbound<'a>> {
    match opened {
        Ok(plain) => Some(Inbound::Fresh(plain)),
        Err((OpenError::Duplicate, Some(plain))) => {
            stats.drop(DropReason::Duplicate);
            Some(Inbound::Duplicate(plain))
        }
        Err((e, _)) => {
            stats.drop(open_drop(e));
            None
        }
    }
}

fn open_drop(e: OpenError) -> DropReason {
    match e {
        OpenError::Duplicate => DropReason::Duplicate,
        OpenError::TooOld => DropReason::TooOld,
        OpenError::Forged => DropReason::Forged,
        OpenError::Oversized => DropReason::Oversized,
    }
}

/// How a session packet refused before dispatch is counted.
fn refused_drop(refused: Refused) -> DropReason {
    match refused {
        Refused::Forged => DropReason::Forged,
        Refused::NotNoise => DropReason::Unexpected,
        Refused::UnknownIndex => DropReason::UnknownPeer,
        Refused::ReplayFromElsewhere => DropReason::Duplicate,
    }
}

impl Stats {
    /// Counts one encoding attempt; returns the datagram if there is one to send.
    fn account(&mut self, encoded: Encoded) -> Option<Transmit> {
        match encoded {
            Encoded::Ready(t) => {
                self.datagrams_sent += 1;
                Some(t)
            }
            Encoded::Obsolete => None,
            Encoded::Failed => {
                self.send_errors += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_table_fits_stats() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r} is not in its own slot");
        }
        let mut s = Stats::default();
        for r in DropReason::ALL {
            s.drop(*r);
        }
        assert_eq!(s.total_dropped(), DropReason::ALL.len() as u64);
        assert_eq!(s.dropped(DropReason::Forged), 1);
        assert_eq!(DropReason::TooOld.name(), "too_old");
    }

    #[test]
    fn message_checks() {
        assert_eq!(check_message("a\nb", "n", b""), Err(SendError::InvalidName));
        assert_eq!(check_message("a", "n\n", b""), Err(SendError::InvalidName));
        assert_eq!(
            check_message("a", "n", &[0; 5000]),
            Err(SendError::TooLarge)
        );
        assert_eq!(check_message("a", "n", b"x\ny"), Ok(()));
    }
}
