//! What each role tells its application: [`ClientEvent`] and [`ServerEvent`], with their
//! payloads and reasons.
//!
//! Each role has its own enum, so a variant carries exactly what that role knows (a server
//! knows the identity of every client, a client has none to report) and a `match` lists only
//! what can happen. Variants both roles emit (messages, the outcomes of reliable messages,
//! liveness, session ends) have the same name and fields in both, except that a server's
//! `Connected` and `Message` also name the client's identity; both share [`ReceivedMessage`].

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;

use bytes::Bytes;

use super::{CallHandle, CallId};
use crate::features::durable::{DurableFailure, DurableId};
use crate::features::handoff::{HandoffId, MessageKey};
use crate::features::registers::{RegisterFailure, RegisterInfo, RegisterOpId};
use crate::features::segment::{End, Kind, Transfers};
use crate::features::status::Status;
use crate::features::timesync::SyncId;
use crate::handshake::HandshakeError;
use crate::id::{FunctionId, MessageId, PeerId};
use crate::reliability::{ByteString, InFlight, OwnedMessage, Payload, Receivers};
use crate::wire::{self, RegisterId, RegisterValue, RpcStatus};

#[cfg(doc)]
use super::{Server, ServerConfig, ServerInfo};

/// Something a [`Client`](super::Client)'s application should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(tag = "kind", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server acknowledged a durable message (`send_durable`): its record is stored there,
    /// and it is delivered once. Reported once, by the run that saw the ACK.
    DurableDelivered {
        /// The id `send_durable` returned.
        id: DurableId,
    },
    /// A durable send ended without being sent.
    DurableFailed {
        /// The id `send_durable` returned.
        id: DurableId,
        /// Why.
        reason: DurableFailure,
    },
    /// A durable message from the server, stored in our inbox: handle it, then
    /// `consume_durable` it, or it is delivered again (with `redelivered`) after a restart.
    DurableMessage {
        /// Its end-to-end id.
        id: DurableId,
        /// The message.
        message: ReceivedMessage,
        /// Delivered before by an earlier run (read back from the inbox at restore).
        redelivered: bool,
    },
    /// A call was answered with status 0.
    Answered {
        /// The id `call` returned.
        call: CallId,
        /// The server that answered.
        from: SocketAddr,
        /// The returned bytes.
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::serde_util::hex"))]
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
        /// The [`Client::sync_time`](super::Client::sync_time) this answer ends (every
        /// server's answer to it names it), or `None` for an answer to a periodic request.
        sync: Option<SyncId>,
    },
    /// A session with a server came up.
    Connected {
        /// The server's (reply) address.
        addr: SocketAddr,
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
        acked: Receivers,
        /// Expected receivers that did not acknowledge it before the deadline.
        missing: Vec<SocketAddr>,
    },
    /// A session ended.
    Disconnected {
        /// The server's address.
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
    /// A reliable message from a server to a target marked with `Client::set_handoff` (the
    /// `handoff` feature): it is not acknowledged until `Client::complete_handoff`
    /// (`docs/PROTOCOL.md` §18). Refuse it with `Client::refuse_handoff` (or let
    /// `Limits::handoff_timeout` pass) and the server sends it again, as a new `HeldMessage`.
    ///
    /// Unlike [`ServerEvent::HeldMessage`] it carries no [`MessageKey`]: a server's counters
    /// are its session's with this client alone, so no other receiver could match them.
    HeldMessage {
        /// The message.
        message: ReceivedMessage,
        /// What completes or refuses it.
        handoff: HandoffId,
    },
    /// A message arrived from a server.
    Message(ReceivedMessage),
    /// Nothing authenticated was heard from this server for the configured down timeout.
    PeerDown {
        /// The server's address.
        addr: SocketAddr,
    },
    /// The first authenticated packet from a server that was down.
    PeerUp {
        /// The server's address.
        addr: SocketAddr,
    },
    /// Bytes of a segmented reliable message acknowledged so far (by every expected receiver,
    /// for multicast), out of `total`. Emitted when the count advances, at most once per
    /// processed datagram; never for a message that fits one datagram.
    Progress {
        /// The id `send_message` returned.
        id: MessageId,
        /// Bytes acknowledged so far.
        acked: u64,
        /// Bytes of the whole message.
        total: u64,
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
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::serde_util::hex"))]
        data: Bytes,
    },
    /// A server reported different status bytes (battery, network, temperature).
    StatusChanged {
        /// The server.
        addr: SocketAddr,
        /// Its new status.
        status: Status,
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
    /// The answer to a register operation (`docs/PROTOCOL.md` §9.8): the value read, the
    /// value written (a reliable write), or the value observed at the start of an
    /// observation.
    RegisterValue {
        /// The id the operation returned.
        op: RegisterOpId,
        /// The server that answered.
        from: SocketAddr,
        /// The register.
        register: RegisterId,
        /// Its value.
        value: RegisterValue,
    },
    /// An observed register changed (a notification), or its observation was renewed on a
    /// new session (its value then).
    RegisterNotified {
        /// The server.
        from: SocketAddr,
        /// The register.
        register: RegisterId,
        /// Its new value.
        value: RegisterValue,
    },
    /// A register operation failed: refused with a status, timed out, or the client closed.
    RegisterFailed {
        /// The id the operation returned.
        op: RegisterOpId,
        /// Why.
        failure: RegisterFailure,
    },
    /// The answer to [`Client::register_info`](super::Client::register_info): the first
    /// register numbered at or above the one asked for, or `None` past the last one.
    RegisterInfo {
        /// The id the operation returned.
        op: RegisterOpId,
        /// The server that answered.
        from: SocketAddr,
        /// The register, if any.
        info: Option<RegisterInfo>,
    },
    /// A reference server's tag message (`core.tag` or `core.tagv`, §9.8.6) named a tag's
    /// value: the register-like view of it, by name. The message is also delivered as a
    /// [`ClientEvent::Message`].
    TagNotified {
        /// The server.
        from: SocketAddr,
        /// The tag's name.
        name: String,
        /// Its value (always [`RegisterValue::F32`]).
        value: RegisterValue,
        /// The server's timestamp of the value (its monotonic clock, µs).
        timestamp_us: i64,
    },
}

/// Something a [`Server`]'s application should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(tag = "kind", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A client acknowledged a durable message (`send_durable`).
    DurableDelivered {
        /// The id `send_durable` returned.
        id: DurableId,
        /// The client.
        peer: PeerId,
    },
    /// A durable send ended without being sent.
    DurableFailed {
        /// The id `send_durable` returned.
        id: DurableId,
        /// Why.
        reason: DurableFailure,
    },
    /// A durable message from a client, stored in our inbox: handle it, then
    /// `consume_durable` it, or it is delivered again (with `redelivered`) after a restart.
    DurableMessage {
        /// The sender's authenticated identity.
        peer: PeerId,
        /// Its end-to-end id.
        id: DurableId,
        /// The message (`from` is the address it came from, or the unspecified address for a
        /// redelivery).
        message: ReceivedMessage,
        /// Delivered before by an earlier run (read back from the inbox at restore).
        redelivered: bool,
    },
    /// A client's session came up.
    Connected {
        /// The client's address.
        addr: SocketAddr,
        /// The client's authenticated identity.
        peer: PeerId,
    },
    /// A reliable message was acknowledged: by its client if `missing` is empty, or, when the
    /// deadline passed first, by the receivers in `acked` only.
    Delivered {
        /// The id `send_message` returned.
        id: MessageId,
        /// Who acknowledged it.
        acked: Receivers,
        /// Expected receivers that did not acknowledge it before the deadline.
        missing: Vec<SocketAddr>,
    },
    /// A client's session ended.
    Disconnected {
        /// The client's address.
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
    /// A message arrived from a client.
    Message {
        /// The sender's authenticated identity.
        peer: PeerId,
        /// The message.
        message: ReceivedMessage,
    },
    /// Nothing authenticated was heard from this client for the configured down timeout.
    PeerDown {
        /// The client's address.
        addr: SocketAddr,
    },
    /// The first authenticated packet from a client that was down.
    PeerUp {
        /// The client's address.
        addr: SocketAddr,
    },
    /// Bytes of a segmented reliable message acknowledged so far (by every expected receiver,
    /// for multicast), out of `total`. Emitted when the count advances, at most once per
    /// processed datagram; never for a message that fits one datagram.
    Progress {
        /// The id `send_message` returned.
        id: MessageId,
        /// Bytes acknowledged so far.
        acked: u64,
        /// Bytes of the whole message.
        total: u64,
    },
    /// An RPC call for the application.
    RpcRequest(RpcRequest),
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
    /// at most once per source per [`ServerConfig::auth_report_interval`].
    AuthenticationFailed {
        /// The source address.
        from: SocketAddr,
        /// Failures since the last report for this source.
        count: u32,
    },
    /// The reliable message with this id was acknowledged by nobody before its deadline.
    TimedOut {
        /// The id `send_message` returned.
        id: MessageId,
    },
    /// A client wrote a register (op 7, or a reference client's `core.tagv`;
    /// `docs/PROTOCOL.md` §9.8): the new value is in place and its observers will hear of it.
    RegisterWritten {
        /// The register.
        register: RegisterId,
        /// Its new value.
        value: RegisterValue,
        /// The client's address.
        by: SocketAddr,
        /// The client's identity.
        peer: PeerId,
    },
    /// A reliable message to a target marked with [`Server::set_handoff`]: it is not
    /// acknowledged until [`Server::complete_handoff`] (`docs/PROTOCOL.md` §18). Refuse it
    /// with [`Server::refuse_handoff`] (or let `Limits::handoff_timeout` pass) and the client
    /// sends it again, as a new `HeldMessage`.
    HeldMessage {
        /// The sender's authenticated identity.
        peer: PeerId,
        /// The message.
        message: ReceivedMessage,
        /// What completes or refuses it.
        handoff: HandoffId,
        /// The message's sender and counter: the same at every server a multicast message
        /// reaches, and for every retransmission, so receivers can drop copies by it.
        key: MessageKey,
    },
}

/// A message delivered to the application. Each is delivered at most once per session.
///
/// Both roles deliver it; a server adds the sender's identity beside it
/// ([`ServerEvent::Message`]).
///
/// The target, name and payload are read through methods: the three share one buffer, so
/// that a received message costs one allocation rather than three, and a clone costs none
/// (it shares the buffer). [`ReceivedMessage::payload_bytes`] hands out the payload as an
/// owned [`Bytes`] that shares it too.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The address it came from.
    pub from: SocketAddr,
    /// Whether it was sent reliably (and so was acknowledged).
    pub reliable: bool,
    message: OwnedMessage,
}

impl ReceivedMessage {
    /// A message from `from` (copied into one buffer).
    pub fn new(from: SocketAddr, target: &str, name: &str, payload: &[u8], reliable: bool) -> Self {
        ReceivedMessage {
            from,
            reliable,
            message: OwnedMessage::new(target, name, payload),
        }
    }

    /// A message whose parts an endpoint already holds in one buffer: no copy.
    pub(crate) fn from_owned(from: SocketAddr, message: OwnedMessage, reliable: bool) -> Self {
        ReceivedMessage {
            from,
            reliable,
            message,
        }
    }

    /// The target (topic) it was sent to.
    pub fn target(&self) -> &str {
        self.message.target()
    }

    /// The message name.
    pub fn name(&self) -> &str {
        self.message.name()
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        self.message.payload()
    }

    /// The payload as an owned [`Bytes`], sharing the message's buffer instead of copying it.
    pub fn payload_bytes(&self) -> Bytes {
        self.message.payload_bytes()
    }
}

/// The form of the struct with five fields it used to be, which traces print.
impl fmt::Debug for ReceivedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedMessage")
            .field("from", &self.from)
            .field("target", &self.target())
            .field("name", &self.name())
            .field("payload", &ByteString(self.payload()))
            .field("reliable", &self.reliable)
            .finish()
    }
}

/// The fields of the `Debug` form, the payload in hex (`docs/TRACE.md`).
#[cfg(feature = "serde")]
impl serde::Serialize for ReceivedMessage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;

        struct Hex<'a>(&'a [u8]);
        impl serde::Serialize for Hex<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                crate::serde_util::hex(self.0, s)
            }
        }

        let mut st = s.serialize_struct("ReceivedMessage", 5)?;
        st.serialize_field("from", &self.from)?;
        st.serialize_field("target", self.target())?;
        st.serialize_field("name", self.name())?;
        st.serialize_field("payload", &Hex(self.payload()))?;
        st.serialize_field("reliable", &self.reliable)?;
        st.end()
    }
}

/// An RPC call for the application to answer with [`Server::respond`], now or later.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::serde_util::hex"))]
    pub args: Bytes,
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
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
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
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
    /// The receiver refused the (segmented) message (opcode 35, `docs/PROTOCOL.md` §9.7).
    Refused(TransferRefusal),
    /// The application cancelled it (`cancel`) before it was acknowledged.
    Cancelled,
}

/// Why a receiver refused a segmented message (opcode 35).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum TransferRefusal {
    /// Larger than the receiver's `Limits::max_message`.
    TooLarge,
    /// The receiver's reassembly budget (per peer or in total) has no room for it now.
    NoRoom,
    /// The receiver freed the partial message after no segment came for its reassembly
    /// timeout.
    Expired,
    /// Segments disagreed (total, offset or overlapping bytes).
    Inconsistent,
}

impl fmt::Display for TransferRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransferRefusal::TooLarge => "larger than the receiver accepts",
            TransferRefusal::NoRoom => "no room in the receiver's reassembly budget",
            TransferRefusal::Expired => "the receiver's reassembly timed out",
            TransferRefusal::Inconsistent => "inconsistent segments",
        })
    }
}

/// What failed when a server's handshake replies did not authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
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
            FailReason::Refused(_) => "the receiver refused the message",
            FailReason::Cancelled => "cancelled by the application",
        })
    }
}

/// The outcome events of reliable exchanges, which both roles report the same way, so the
/// code that ends an exchange is written once for both.
pub(crate) trait ExchangeEvent: Sized {
    /// The role's `Delivered`.
    fn delivered(id: MessageId, acked: Receivers, missing: Vec<SocketAddr>) -> Self;
    /// The role's `TimedOut`.
    fn timed_out(id: MessageId) -> Self;
    /// The role's `CallTimedOut`; `None` for a role that makes no calls, and so has no such
    /// event.
    fn call_timed_out(call: CallId) -> Option<Self>;
    /// The role's `Progress` of a segmented message.
    fn progress(id: MessageId, acked: u64, total: u64) -> Self;
}

impl ExchangeEvent for ClientEvent {
    fn delivered(id: MessageId, acked: Receivers, missing: Vec<SocketAddr>) -> Self {
        ClientEvent::Delivered { id, acked, missing }
    }

    fn timed_out(id: MessageId) -> Self {
        ClientEvent::TimedOut { id }
    }

    fn call_timed_out(call: CallId) -> Option<Self> {
        Some(ClientEvent::CallTimedOut { call })
    }

    fn progress(id: MessageId, acked: u64, total: u64) -> Self {
        ClientEvent::Progress { id, acked, total }
    }
}

impl ExchangeEvent for ServerEvent {
    fn delivered(id: MessageId, acked: Receivers, missing: Vec<SocketAddr>) -> Self {
        ServerEvent::Delivered { id, acked, missing }
    }

    fn timed_out(id: MessageId) -> Self {
        ServerEvent::TimedOut { id }
    }

    /// A server makes no calls, so its outbox never holds one.
    fn call_timed_out(_: CallId) -> Option<Self> {
        None
    }

    fn progress(id: MessageId, acked: u64, total: u64) -> Self {
        ServerEvent::Progress { id, acked, total }
    }
}

/// The events for a segmented transfer that ended (`features::segment`): its last
/// `Progress` if not reported yet, then the message's outcome, or a call's timeout. An answer
/// (a server's segmented op 5) ends without an event: the call's outcome is the client's.
pub(crate) fn transfer_end_events<E: ExchangeEvent>(end: End, events: &mut VecDeque<E>) {
    let event = match end {
        End::Complete {
            id,
            kind: Kind::Message,
            acked,
            missing,
            progress,
        } => {
            if let Some((done, total)) = progress {
                events.push_back(E::progress(MessageId(id), done, total));
            }
            E::delivered(MessageId(id), acked.into_iter().collect(), missing)
        }
        End::Expired {
            id,
            kind: Kind::Message,
            acked,
            missing,
        } if !acked.is_empty() => E::delivered(MessageId(id), acked.into_iter().collect(), missing),
        End::Expired {
            id,
            kind: Kind::Message,
            ..
        } => E::timed_out(MessageId(id)),
        End::Expired {
            id,
            kind: Kind::Call,
            ..
        } => match E::call_timed_out(CallId(id)) {
            Some(e) => e,
            None => return,
        },
        _ => return,
    };
    events.push_back(event);
}

/// `Progress` for every message transfer whose acknowledged bytes advanced.
pub(crate) fn progress_events<E: ExchangeEvent>(t: &mut Transfers, events: &mut VecDeque<E>) {
    for (id, acked, total) in t.take_progress() {
        events.push_back(E::progress(MessageId(id), acked, total));
    }
}

/// The event for a reliable exchange that ended at its deadline, if the application gets one.
pub(crate) fn expired_event<E: ExchangeEvent>(e: InFlight) -> Option<E> {
    if e.internal {
        return None;
    }
    match e.payload {
        Payload::Call { .. } => E::call_timed_out(CallId(e.id)),
        _ if !e.acked.is_empty() => Some(delivered_event(e)),
        _ => Some(E::timed_out(MessageId(e.id))),
    }
}

/// `Delivered` for an exchange, naming who acknowledged it and who did not.
pub(crate) fn delivered_event<E: ExchangeEvent>(e: InFlight) -> E {
    let missing = e.missing();
    E::delivered(MessageId(e.id), e.acked, missing)
}

/// The message for an opened application message, or `None` for the reference's keepalive
/// (a reliable message with empty target, name and payload), acknowledged but not delivered.
pub(crate) fn received_message(
    from: SocketAddr,
    m: &wire::Message<'_>,
    reliable: bool,
) -> Option<ReceivedMessage> {
    if reliable && m.target.is_empty() && m.name.is_empty() && m.payload.is_empty() {
        return None;
    }
    Some(ReceivedMessage::new(
        from, m.target, m.name, m.payload, reliable,
    ))
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::time::Instant;

    fn exchange(payload: Payload, expected: Vec<SocketAddr>, acked: Vec<SocketAddr>) -> InFlight {
        InFlight {
            id: 7,
            payload,
            internal: false,
            counter: None,
            retransmissions: 0,
            last_sent: Instant::MAX,
            backoff: 0,
            next_retry: Instant::MAX,
            deadline: Instant::ZERO,
            expected,
            acked: acked.into_iter().collect(),
        }
    }

    fn message() -> Payload {
        Payload::Message(crate::reliability::OwnedMessage::new("t", "n", &[]))
    }

    #[test]
    fn an_expired_exchange_is_reported_the_same_way_by_both_roles() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:1783".parse().unwrap(),
            "10.0.0.2:1783".parse().unwrap(),
        );
        let partly = || exchange(message(), vec![a, b], vec![a]);
        assert_eq!(
            expired_event::<ClientEvent>(partly()),
            Some(ClientEvent::Delivered {
                id: MessageId(7),
                acked: Receivers::one(a),
                missing: vec![b],
            })
        );
        assert_eq!(
            expired_event::<ServerEvent>(partly()),
            Some(ServerEvent::Delivered {
                id: MessageId(7),
                acked: Receivers::one(a),
                missing: vec![b],
            })
        );
        let unheard = || exchange(message(), vec![a], Vec::new());
        assert_eq!(
            expired_event::<ClientEvent>(unheard()),
            Some(ClientEvent::TimedOut { id: MessageId(7) })
        );
        assert_eq!(
            expired_event::<ServerEvent>(unheard()),
            Some(ServerEvent::TimedOut { id: MessageId(7) })
        );
        let mut internal = unheard();
        internal.internal = true;
        assert_eq!(expired_event::<ClientEvent>(internal), None);
    }

    #[test]
    fn only_a_client_reports_a_call_timing_out() {
        let call = || {
            let args = Bytes::new();
            exchange(
                Payload::Call {
                    function: FunctionId(1),
                    args,
                },
                Vec::new(),
                Vec::new(),
            )
        };
        assert_eq!(
            expired_event::<ClientEvent>(call()),
            Some(ClientEvent::CallTimedOut { call: CallId(7) })
        );
        assert_eq!(expired_event::<ServerEvent>(call()), None);
    }

    #[test]
    fn the_reference_keepalive_is_not_delivered() {
        let from = "10.0.0.1:1783".parse().unwrap();
        let empty = wire::Message {
            target: "",
            name: "",
            payload: b"",
        };
        assert_eq!(received_message(from, &empty, true), None);
        let m = received_message(from, &empty, false).expect("an unreliable empty message");
        assert!(m.target().is_empty() && !m.reliable);
    }
}
