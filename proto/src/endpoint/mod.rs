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

mod client;
mod config;
mod driving;
mod server;
mod timers;

pub use crate::features::timesync::SyncId;
pub use client::{Client, ServerInfo};
pub use config::{ClientConfig, ClientCredentials, Limits, ServerConfig};
pub use driving::Endpoint;
#[cfg(any(test, feature = "testing"))]
pub(crate) use server::assumed::{AssumedNoise, AssumedReference};
pub use server::Server;

use alloc::string::String;
use core::fmt;
use core::net::SocketAddr;

use bytes::Bytes;

use crate::features::status::Status;
use crate::handshake::HandshakeError;
use crate::id::{Counter, FunctionId, MessageId, PeerId};
use crate::reliability::OwnedMessage;
use crate::session::OpenError;
use crate::time::Duration;
use crate::wire::{self, RpcStatus, Setup};

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
pub struct CallId(pub u64);

/// Names one RPC request a server received, for [`Server::respond`].
///
/// It is bound to the session the call arrived on: after that client re-handshakes as a new
/// process, a stale handle answers nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallHandle {
    pub(crate) addr: SocketAddr,
    pub(crate) counter: Counter,
    pub(crate) generation: u64,
}

/// An RPC call for the application to answer with [`Server::respond`], now or later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcRequest {
    /// Pass this to `respond`.
    pub call: CallHandle,
    /// The caller's address.
    pub from: SocketAddr,
    /// The caller's identity.
    pub peer: PeerId,
    /// The function number.
    pub function: FunctionId,
    /// The argument bytes.
    pub args: Bytes,
}

/// Something the application should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A call was answered with status 0.
    Answered {
        /// The id `call` returned.
        call: CallId,
        /// The server that answered.
        from: SocketAddr,
        /// The returned bytes.
        data: Bytes,
    },
    /// A call failed before its deadline for a reason other than time.
    CallFailed {
        /// The id `call` returned.
        call: CallId,
        /// Why.
        reason: FailReason,
    },
    /// A call got no answer before its deadline.
    CallTimedOut {
        /// The id `call` returned.
        call: CallId,
    },
    /// A time sync answer updated the estimate of a server's clock (see
    /// [`ServerInfo::clock`]).
    ClockUpdated {
        /// The server.
        addr: SocketAddr,
        /// The [`Client::sync_time`] this answer ends (every server's answer to it names it),
        /// or `None` for an answer to a periodic request.
        sync: Option<SyncId>,
    },
    /// A session came up. On a client, `addr` is the server's (reply) address and `peer` is
    /// `None`; on a server, `addr` is the client's address and `peer` its identity.
    Connected {
        /// The peer's address.
        addr: SocketAddr,
        /// The authenticated identity of a client (server side only).
        peer: Option<PeerId>,
    },
    /// A reliable message was acknowledged: by every expected receiver if `missing` is empty,
    /// or, when the deadline passed first, by the receivers in `acked` only.
    ///
    /// Expected receivers are the subscribers of the target when the message was first sent
    /// (multicast), or any one server (unicast, or a target without known subscribers).
    Delivered {
        /// The id `send_message` returned.
        id: MessageId,
        /// Who acknowledged it.
        acked: alloc::vec::Vec<SocketAddr>,
        /// Expected receivers that did not acknowledge it before the deadline.
        missing: alloc::vec::Vec<SocketAddr>,
    },
    /// A session ended.
    Disconnected {
        /// The peer's address.
        addr: SocketAddr,
        /// Why it ended.
        reason: CloseReason,
    },
    /// The reliable message with this id will not be delivered, for a reason other than time.
    Failed {
        /// The id `send_message` returned.
        id: MessageId,
        /// Why.
        reason: FailReason,
    },
    /// A server refused our handshake in a way only it could have (the reply echoed our own
    /// current challenge).
    HandshakeFailed {
        /// The server that refused.
        addr: SocketAddr,
        /// What it said.
        reason: HandshakeError,
    },
    /// A message arrived.
    Message(ReceivedMessage),
    /// Nothing authenticated was heard from this peer for the configured down timeout.
    PeerDown {
        /// The peer's address.
        addr: SocketAddr,
    },
    /// The first authenticated packet from a peer that was down.
    PeerUp {
        /// The peer's address.
        addr: SocketAddr,
    },
    /// A call was answered with a non-zero status (docs/PROTOCOL.md §9.1 lists the codes).
    RemoteError {
        /// The id `call` returned.
        call: CallId,
        /// The server that answered.
        from: SocketAddr,
        /// The status code.
        status: RpcStatus,
        /// The returned bytes (often a message).
        data: Bytes,
    },
    /// An RPC call for the application (server side).
    RpcRequest(RpcRequest),
    /// A server reported different status bytes (battery, network, temperature).
    StatusChanged {
        /// The server.
        addr: SocketAddr,
        /// Its new status.
        status: Status,
    },
    /// A client subscribed to `target` at this server (opcode 13 from a client,
    /// `docs/PROTOCOL.md` §9.6): a broker forwards it the messages sent to that target. See
    /// [`Server::client_subscribers`].
    ClientSubscribed {
        /// The client's address.
        addr: SocketAddr,
        /// The client's identity.
        peer: PeerId,
        /// The target.
        target: String,
    },
    /// A client withdrew its subscription to `target` (opcode 14), or its session ended.
    ClientUnsubscribed {
        /// The client's address.
        addr: SocketAddr,
        /// The client's identity.
        peer: PeerId,
        /// The target.
        target: String,
    },
    /// Setup packets from `from` failed authentication (bad op 3/op 12, an unknown client id,
    /// a suite 3 initiation that does not decrypt); `count` since the last report. Reported
    /// at most once per source per [`ServerConfig::auth_report_interval`] (server side).
    AuthenticationFailed {
        /// The source address.
        from: SocketAddr,
        /// Failures since the last report for this source.
        count: u32,
    },
    /// A time sync ended without an answer for a reason other than time (the client closed).
    TimeSyncFailed {
        /// The id `sync_time` returned.
        sync: SyncId,
        /// Why.
        reason: FailReason,
    },
    /// No server answered a time sync before its deadline (`Limits::default_timeout`).
    TimeSyncTimedOut {
        /// The id `sync_time` returned.
        sync: SyncId,
    },
    /// The reliable message with this id was acknowledged by nobody before its deadline.
    TimedOut {
        /// The id `send_message` returned.
        id: MessageId,
    },
}

/// A message delivered to the application. Each is delivered at most once per session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The address it came from.
    pub from: SocketAddr,
    /// The sender's identity, on a server; `None` on a client.
    pub peer: Option<PeerId>,
    /// The target (topic) it was sent to.
    pub target: String,
    /// The message name.
    pub name: String,
    /// The payload bytes.
    pub payload: Bytes,
    /// Whether it was sent reliably (and so was acknowledged).
    pub reliable: bool,
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// We closed it.
    LocallyClosed,
    /// The peer sent quit (opcode 12).
    PeerClosed,
    /// A multicast server answered our handshake but never confirmed the session.
    Unconfirmed,
}

/// Why a reliable message failed before its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailReason {
    /// The endpoint was closed before the message was acknowledged.
    Closed,
    /// The peer ended the session before acknowledging it.
    PeerClosed,
    /// The server refused this client (unknown client id).
    Rejected,
    /// The server answered but its replies did not authenticate under our credentials, on
    /// more than one handshake attempt (`docs/PROTOCOL.md` §5.5).
    AuthenticationFailed(AuthFailure),
}

/// What failed when a server's handshake replies did not authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// Suite 1: the server's op 2 tag does not verify under our pre-shared key (the server
    /// holds another key for our id).
    WrongPsk,
    /// Suite 2: the server's op 11 box does not open with our key pair and the configured
    /// server key (a wrong server key, or the server holds another key for our id).
    WrongKey,
    /// The server does not know our client id (op 6).
    UnknownClient,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthFailure::WrongPsk => "the server's reply does not verify under our pre-shared key",
            AuthFailure::WrongKey => {
                "the server's reply does not open with our key pair and the server key"
            }
            AuthFailure::UnknownClient => "the server does not know our client id",
        })
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailReason::Closed => "endpoint closed",
            FailReason::PeerClosed => "peer closed the session",
            FailReason::Rejected => "server rejected the client",
            FailReason::AuthenticationFailed(_) => "authentication failed",
        })
    }
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
    /// The message does not fit one datagram.
    TooLarge,
    /// The call was already answered, or its session is gone.
    UnknownCall,
    /// There is no session with that peer.
    UnknownPeer,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Closed => "endpoint is closed",
            SendError::InvalidName => "target or name contains a newline",
            SendError::QueueFull => "send queue is full",
            SendError::TooLarge => "message does not fit one datagram",
            SendError::UnknownCall => "no such call awaits an answer",
            SendError::UnknownPeer => "no session with that peer",
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
    /// Server: suite 3 cookie replies sent (stateless, outside every budget).
    pub cookie_replies: u64,
    /// Server: sources whose reply budget was forgotten to make room for a new source (the
    /// table evicts when full; see `docs/PROTOCOL.md` §8).
    pub budget_evictions: u64,
    /// Server: replies to duplicate packets (re-sent RPC answers, re-acknowledgements) that
    /// the duplicate-reply limits held back.
    pub duplicate_replies_withheld: u64,
    drops: [u64; DropReason::COUNT],
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
    /// A quit sealed before its session went away, or a suite 3 handshake packet (built when
    /// its handshake step ran).
    Sealed {
        to: SocketAddr,
        datagram: arrayvec::ArrayVec<u8, 160>,
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

/// Checks that a plaintext body (opcode included) fits one datagram.
fn check_size(body: usize) -> Result<(), SendError> {
    if body > wire::MAX_DATAGRAM - wire::SESSION_OVERHEAD {
        return Err(SendError::TooLarge);
    }
    Ok(())
}

/// The event for a reliable exchange that ended at its deadline, if the application gets one.
fn expired_event(e: crate::reliability::InFlight) -> Option<Event> {
    use crate::reliability::Payload;
    if e.internal {
        return None;
    }
    Some(match e.payload {
        Payload::Call { .. } => Event::CallTimedOut { call: CallId(e.id) },
        _ if !e.acked.is_empty() => delivered_event(e),
        _ => Event::TimedOut {
            id: MessageId(e.id),
        },
    })
}

/// `Delivered` for an exchange, naming who acknowledged it and who did not.
fn delivered_event(e: crate::reliability::InFlight) -> Event {
    let missing = e.missing();
    Event::Delivered {
        id: MessageId(e.id),
        acked: e.acked,
        missing,
    }
}

fn owned(target: &str, name: &str, payload: &[u8]) -> OwnedMessage {
    OwnedMessage {
        target: target.into(),
        name: name.into(),
        payload: Bytes::copy_from_slice(payload),
    }
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

fn open_drop(e: OpenError) -> DropReason {
    match e {
        OpenError::Duplicate => DropReason::Duplicate,
        OpenError::TooOld => DropReason::TooOld,
        OpenError::Forged => DropReason::Forged,
        OpenError::Oversized => DropReason::Oversized,
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

/// The event for an opened application message, or `None` for the reference's keepalive
/// (a reliable message with empty target, name and payload), acknowledged but not delivered.
fn message_event(
    from: SocketAddr,
    peer: Option<PeerId>,
    m: &crate::wire::Message<'_>,
    reliable: bool,
) -> Option<Event> {
    if reliable && m.target.is_empty() && m.name.is_empty() && m.payload.is_empty() {
        return None;
    }
    Some(Event::Message(ReceivedMessage {
        from,
        peer,
        target: m.target.into(),
        name: m.name.into(),
        payload: Bytes::copy_from_slice(m.payload),
        reliable,
    }))
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
