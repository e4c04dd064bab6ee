//! Application messages: the decrypted plaintext of session packets (docs/PROTOCOL.md §3).
//!
//! A plaintext is one opcode byte followed by the payload. Parsed values borrow from the
//! plaintext; nothing is copied or allocated.

use super::codec::{Reader, Writer};
use super::durable::DurableMessage;
use super::noise::{KeyId, SenderId};
use super::ordered::OrderedMessage;
use super::register::{
    ObserveRequest, RegisterInfoPacket, RegisterInfoRequest, RegisterRead, RegisterValuePacket,
};
use super::segment::{self, AckRanges, RefusalCode, Segment, TransferId};
use super::Error;
use crate::id::{Counter, FunctionId};

/// Application opcodes (docs/PROTOCOL.md §3). Numbers not listed here are unassigned or dead in the
/// reference and parse as [`Error::UnknownAppOpcode`].
pub mod opcode {
    /// [`App::ReliableMessage`](super::App::ReliableMessage).
    pub const RELIABLE_MESSAGE: u8 = 1;
    /// [`App::Ack`](super::App::Ack).
    pub const ACK: u8 = 2;
    /// [`App::UnreliableMessage`](super::App::UnreliableMessage).
    pub const UNRELIABLE_MESSAGE: u8 = 3;
    /// [`App::RpcCall`](super::App::RpcCall).
    pub const RPC_CALL: u8 = 4;
    /// [`App::RpcResponse`](super::App::RpcResponse).
    pub const RPC_RESPONSE: u8 = 5;
    /// [`App::RegisterRead`](super::App::RegisterRead).
    pub const REGISTER_READ: u8 = 6;
    /// [`App::RegisterValue`](super::App::RegisterValue).
    pub const REGISTER_VALUE: u8 = 7;
    /// [`App::Observe`](super::App::Observe).
    pub const OBSERVE: u8 = 8;
    /// [`App::RegisterInfoRequest`](super::App::RegisterInfoRequest).
    pub const REGISTER_INFO_REQUEST: u8 = 9;
    /// [`App::RegisterInfo`](super::App::RegisterInfo).
    pub const REGISTER_INFO: u8 = 10;
    /// [`App::Quit`](super::App::Quit).
    pub const QUIT: u8 = 12;
    /// [`App::Subscribe`](super::App::Subscribe).
    pub const SUBSCRIBE: u8 = 13;
    /// [`App::Unsubscribe`](super::App::Unsubscribe).
    pub const UNSUBSCRIBE: u8 = 14;
    /// [`App::ClientAccept`](super::App::ClientAccept).
    pub const CLIENT_ACCEPT: u8 = 16;
    /// [`App::TimeSyncRequest`](super::App::TimeSyncRequest).
    pub const TIME_SYNC_REQUEST: u8 = 20;
    /// [`App::TimeSyncResponse`](super::App::TimeSyncResponse).
    pub const TIME_SYNC_RESPONSE: u8 = 21;
    /// [`App::GroupKey`](super::App::GroupKey) (ours: suite 3 multicast only).
    pub const GROUP_KEY: u8 = 32;
    /// [`App::Segment`](super::App::Segment) (ours).
    pub const SEGMENT: u8 = 33;
    /// [`App::AckRanges`](super::App::AckRanges) (ours).
    pub const ACK_RANGES: u8 = 34;
    /// [`App::TransferRefused`](super::App::TransferRefused) (ours).
    pub const TRANSFER_REFUSED: u8 = 35;
    /// [`App::OrderedMessage`](super::App::OrderedMessage) (ours: ordered delivery).
    pub const ORDERED_MESSAGE: u8 = 36;
    /// [`App::DurableMessage`](super::App::DurableMessage) (ours: durable messages).
    pub const DURABLE_MESSAGE: u8 = 37;
}

/// An addressed message: `target \n name \n payload` (docs/PROTOCOL.md §3, "Messages").
///
/// `target` and `name` never contain `\n`; `payload` may. The empty message (all three empty,
/// i.e. the body `"\n\n"`) is the reference client's keepalive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The target (topic) the message is sent to.
    pub target: &'a str,
    /// The message name within the target.
    pub name: &'a str,
    /// Opaque payload bytes.
    pub payload: &'a [u8],
}

/// The three optional status bytes at the end of an ACK (docs/PROTOCOL.md §9.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusBytes {
    /// Bits 0–5: level 0–63 (0 = unknown); bits 6–7: 0 discharging, 1 slow-charging,
    /// 2 charging, 3 generating.
    pub battery: u8,
    /// 0–100: WLAN RSSI + 120; 101–200: WWAN; 202 (201 in the doc): wired; 255: unknown.
    pub network: u8,
    /// Temperature in °C.
    pub temperature: i8,
}

/// The status code of an RPC response (docs/PROTOCOL.md §9.1); any u16 may appear on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RpcStatus(pub u16);

impl RpcStatus {
    /// Success; the data is the function's result.
    pub const OK: RpcStatus = RpcStatus(0);
    /// Generic failure.
    pub const ERROR: RpcStatus = RpcStatus(1);
    /// No function has the called number.
    pub const NONEXISTENT_FUNCTION: RpcStatus = RpcStatus(2);
    /// The arguments were not acceptable.
    pub const BAD_INPUT: RpcStatus = RpcStatus(3);
    /// A file named in the arguments does not exist.
    pub const NONEXISTENT_FILE: RpcStatus = RpcStatus(4);
    /// The reference Python server's code for any exception; the data is a traceback.
    pub const PYTHON_EXCEPTION: RpcStatus = RpcStatus(257);

    /// Whether this is [`RpcStatus::OK`].
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }
}

/// A parsed application message, borrowing from the decrypted plaintext.
///
/// Variants are in opcode order, which is the order of the spec's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App<'a> {
    /// Op 1: a message the receiver must ACK.
    ReliableMessage(Message<'a>),
    /// Op 2: acknowledges the packet with counter `counter`.
    Ack {
        /// The counter of the acknowledged packet.
        counter: Counter,
        /// The sender's status, if it reports one (payload 11 bytes instead of 8).
        status: Option<StatusBytes>,
    },
    /// Op 3: a message that is never ACKed.
    UnreliableMessage(Message<'a>),
    /// Op 4: calls a remote function; the response's `call` is this packet's counter.
    RpcCall {
        /// The function number.
        function: FunctionId,
        /// Opaque argument bytes.
        args: &'a [u8],
    },
    /// Op 5: the result of the call sent in the packet with counter `call`.
    RpcResponse {
        /// The counter of the call being answered.
        call: Counter,
        /// The outcome; non-OK data is usually an error text.
        status: RpcStatus,
        /// The returned bytes.
        data: &'a [u8],
    },
    /// Op 6: reads a register (`docs/PROTOCOL.md` §9.8).
    RegisterRead(RegisterRead),
    /// Op 7: a register's value: an answer, a notification or a client's write (§9.8).
    RegisterValue(RegisterValuePacket<'a>),
    /// Op 8: observes a register, or cancels an observation (§9.8).
    Observe(ObserveRequest),
    /// Op 9: asks for the info of a register, to enumerate them (§9.8).
    RegisterInfoRequest(RegisterInfoRequest),
    /// Op 10: a register's name, type, unit and flags (§9.8).
    RegisterInfo(RegisterInfoPacket<'a>),
    /// Op 12: the peer is closing the session.
    Quit {
        /// A reason code; the reference always sends none (empty payload).
        reason: Option<u16>,
    },
    /// Op 13: the sender wants messages for `target`.
    Subscribe {
        /// The target, without terminator.
        target: &'a str,
    },
    /// Op 14: the sender no longer wants messages for `target`.
    Unsubscribe {
        /// The target, without terminator.
        target: &'a str,
    },
    /// Op 16: the (Arduino) server accepted the client; carries its monotonic clock.
    ClientAccept {
        /// The server's monotonic time in microseconds.
        server_time_us: i64,
    },
    /// Op 20: asks for the peer's clock. Empty payload.
    TimeSyncRequest,
    /// Op 21: answers the time sync request sent with counter `request`.
    TimeSyncResponse {
        /// The counter of the request being answered.
        request: Counter,
        /// The responder's monotonic time in microseconds.
        monotonic_us: u64,
        /// The responder's Unix time in microseconds; sent by the Python server only.
        unix_us: Option<u64>,
    },
    /// Op 32 (ours, suite 3 only): a client's group key for its multicast sends, delivered to
    /// one server over that server's pairwise session (`docs/PROTOCOL.md` §12.11).
    GroupKey {
        /// The client's sender id, named in the header of its group data packets.
        sender: SenderId,
        /// The id of this key; each new key of the sender takes the next one.
        key_id: KeyId,
        /// The ChaCha20-Poly1305 key that seals the sender's group data packets.
        key: &'a [u8; 32],
    },
    /// Op 33 (ours): one segment of a plaintext too large for one datagram
    /// (`docs/PROTOCOL.md` §9.7).
    Segment(Segment<'a>),
    /// Op 34 (ours): acknowledges ranges of counters at once.
    AckRanges(AckRanges<'a>),
    /// Op 35 (ours): the receiver refuses a segmented transfer.
    TransferRefused {
        /// The refused transfer.
        transfer: TransferId,
        /// Why.
        reason: RefusalCode,
    },
    /// Op 36 (ours): a reliable message with its place in its target's ordered stream
    /// (`docs/PROTOCOL.md` §3.3). ACKed with op 2 like op 1.
    OrderedMessage(OrderedMessage<'a>),
    /// Op 37 (ours): a reliable message with an end-to-end id that survives reboots of either
    /// side (`docs/PROTOCOL.md` §16). ACKed with op 2 like op 1, once its record is stored.
    DurableMessage(DurableMessage<'a>),
}

/// ACK payload without and with status bytes.
const ACK_LEN: usize = 8;
const ACK_WITH_STATUS_LEN: usize = 11;
/// Time sync response payload without and with Unix time.
const TIME_SYNC_LEN: usize = 16;
const TIME_SYNC_WITH_UNIX_LEN: usize = 24;
/// Group key payload: sender id, key id, key.
const GROUP_KEY_LEN: usize = 8 + 4 + 32;

impl<'a> App<'a> {
    /// Parses a decrypted plaintext (opcode byte, then payload).
    ///
    /// # Errors
    /// [`Error::Truncated`] if the plaintext is empty or a variable-length payload is shorter
    /// than its fixed prefix; [`Error::UnknownAppOpcode`]; [`Error::BadLength`] if a payload
    /// with one or two allowed lengths has another; [`Error::MissingSeparator`] and
    /// [`Error::InvalidUtf8`] for malformed messages and subscription targets.
    pub fn parse(plaintext: &'a [u8]) -> Result<App<'a>, Error> {
        Self::parse_only::<{ u64::MAX }>(plaintext)
    }

    /// Parses like [`App::parse`], but only the opcodes whose bit is set in `OPCODES` (bit
    /// `n` for opcode `n`); any other is [`Error::UnknownAppOpcode`].
    ///
    /// For a role built without some features (issue 20): with their opcodes left out of a
    /// constant `OPCODES`, their parsers are dead code and not linked.
    pub(crate) fn parse_only<const OPCODES: u64>(plaintext: &'a [u8]) -> Result<App<'a>, Error> {
        use opcode::*;
        let has = |op: u8| OPCODES >> op & 1 == 1;
        let (&op, payload) = plaintext.split_first().ok_or(Error::Truncated)?;
        let mut r = Reader::new(payload);
        let len = payload.len();
        Ok(match op {
            RELIABLE_MESSAGE => App::ReliableMessage(Message::parse(payload)?),
            ACK => {
                if len != ACK_LEN && len != ACK_WITH_STATUS_LEN {
                    return Err(bad_length(ACK_LEN, len));
                }
                let counter = Counter(r.u64()?);
                let status = if len == ACK_WITH_STATUS_LEN {
                    Some(StatusBytes {
                        battery: r.u8()?,
                        network: r.u8()?,
                        temperature: r.i8()?,
                    })
                } else {
                    None
                };
                App::Ack { counter, status }
            }
            UNRELIABLE_MESSAGE => App::UnreliableMessage(Message::parse(payload)?),
            RPC_CALL => App::RpcCall {
                function: FunctionId(r.u16()?),
                args: r.rest(),
            },
            RPC_RESPONSE => App::RpcResponse {
                call: Counter(r.u64()?),
                status: RpcStatus(r.u16()?),
                data: r.rest(),
            },
            REGISTER_READ if has(REGISTER_READ) => App::RegisterRead(RegisterRead::parse(payload)?),
            REGISTER_VALUE if has(REGISTER_VALUE) => {
                App::RegisterValue(RegisterValuePacket::parse(payload)?)
            }
            OBSERVE if has(OBSERVE) => App::Observe(ObserveRequest::parse(payload)?),
            REGISTER_INFO_REQUEST if has(REGISTER_INFO_REQUEST) => {
                App::RegisterInfoRequest(RegisterInfoRequest::parse(payload)?)
            }
            REGISTER_INFO if has(REGISTER_INFO) => {
                App::RegisterInfo(RegisterInfoPacket::parse(payload)?)
            }
            QUIT => App::Quit {
                reason: match len {
                    0 => None,
                    2 => Some(r.u16()?),
                    _ => return Err(bad_length(0, len)),
                },
            },
            SUBSCRIBE => App::Subscribe {
                target: utf8(payload)?,
            },
            UNSUBSCRIBE => App::Unsubscribe {
                target: utf8(payload)?,
            },
            CLIENT_ACCEPT => {
                exact(len, 8)?;
                App::ClientAccept {
                    server_time_us: r.i64()?,
                }
            }
            TIME_SYNC_REQUEST => {
                exact(len, 0)?;
                App::TimeSyncRequest
            }
            TIME_SYNC_RESPONSE => {
                if len != TIME_SYNC_LEN && len != TIME_SYNC_WITH_UNIX_LEN {
                    return Err(bad_length(TIME_SYNC_LEN, len));
                }
                App::TimeSyncResponse {
                    request: Counter(r.u64()?),
                    monotonic_us: r.u64()?,
                    unix_us: if len == TIME_SYNC_WITH_UNIX_LEN {
                        Some(r.u64()?)
                    } else {
                        None
                    },
                }
            }
            GROUP_KEY => {
                exact(len, GROUP_KEY_LEN)?;
                App::GroupKey {
                    sender: SenderId(r.u64()?),
                    key_id: KeyId(r.u32()?),
                    key: r.array_ref()?,
                }
            }
            SEGMENT if has(SEGMENT) => App::Segment(Segment::parse(payload)?),
            ACK_RANGES if has(ACK_RANGES) => App::AckRanges(AckRanges::parse(payload)?),
            TRANSFER_REFUSED if has(TRANSFER_REFUSED) => {
                exact(len, segment::REFUSED_LEN)?;
                App::TransferRefused {
                    transfer: TransferId(r.u64()?),
                    reason: RefusalCode(r.u8()?),
                }
            }
            ORDERED_MESSAGE if has(ORDERED_MESSAGE) => {
                App::OrderedMessage(OrderedMessage::parse(payload)?)
            }
            DURABLE_MESSAGE if has(DURABLE_MESSAGE) => {
                App::DurableMessage(DurableMessage::parse(payload)?)
            }
            other => return Err(Error::UnknownAppOpcode(other)),
        })
    }

    /// The application opcode of this message.
    pub fn opcode(&self) -> u8 {
        use opcode::*;
        match self {
            App::ReliableMessage(_) => RELIABLE_MESSAGE,
            App::Ack { .. } => ACK,
            App::UnreliableMessage(_) => UNRELIABLE_MESSAGE,
            App::RpcCall { .. } => RPC_CALL,
            App::RpcResponse { .. } => RPC_RESPONSE,
            App::RegisterRead(_) => REGISTER_READ,
            App::RegisterValue(_) => REGISTER_VALUE,
            App::Observe(_) => OBSERVE,
            App::RegisterInfoRequest(_) => REGISTER_INFO_REQUEST,
            App::RegisterInfo(_) => REGISTER_INFO,
            App::Quit { .. } => QUIT,
            App::Subscribe { .. } => SUBSCRIBE,
            App::Unsubscribe { .. } => UNSUBSCRIBE,
            App::ClientAccept { .. } => CLIENT_ACCEPT,
            App::TimeSyncRequest => TIME_SYNC_REQUEST,
            App::TimeSyncResponse { .. } => TIME_SYNC_RESPONSE,
            App::GroupKey { .. } => GROUP_KEY,
            App::Segment(_) => SEGMENT,
            App::AckRanges(_) => ACK_RANGES,
            App::TransferRefused { .. } => TRANSFER_REFUSED,
            App::OrderedMessage(_) => ORDERED_MESSAGE,
            App::DurableMessage(_) => DURABLE_MESSAGE,
        }
    }

    /// Length of the plaintext [`emit`](Self::emit) writes: opcode and payload.
    ///
    /// The session packet carrying it is [`SESSION_OVERHEAD`](super::SESSION_OVERHEAD) bytes
    /// longer.
    pub fn buffer_len(&self) -> usize {
        let payload = match self {
            App::ReliableMessage(m) | App::UnreliableMessage(m) => m.buffer_len(),
            App::Ack { status: None, .. } => ACK_LEN,
            App::Ack {
                status: Some(_), ..
            } => ACK_WITH_STATUS_LEN,
            App::RpcCall { args, .. } => args.len().saturating_add(2),
            App::RpcResponse { data, .. } => data.len().saturating_add(10),
            App::RegisterRead(p) => p.buffer_len(),
            App::RegisterValue(p) => p.buffer_len(),
            App::Observe(p) => p.buffer_len(),
            App::RegisterInfoRequest(p) => p.buffer_len(),
            App::RegisterInfo(p) => p.buffer_len(),
            App::Quit { reason: None } => 0,
            App::Quit { reason: Some(_) } => 2,
            App::Subscribe { target } | App::Unsubscribe { target } => target.len(),
            App::ClientAccept { .. } => 8,
            App::TimeSyncRequest => 0,
            App::TimeSyncResponse { unix_us: None, .. } => TIME_SYNC_LEN,
            App::TimeSyncResponse {
                unix_us: Some(_), ..
            } => TIME_SYNC_WITH_UNIX_LEN,
            App::GroupKey { .. } => GROUP_KEY_LEN,
            App::Segment(seg) => seg.buffer_len(),
            App::AckRanges(r) => r.as_bytes().len(),
            App::TransferRefused { .. } => segment::REFUSED_LEN,
            App::OrderedMessage(o) => o.buffer_len(),
            App::DurableMessage(d) => d.buffer_len(),
        };
        payload.saturating_add(1)
    }

    /// Writes the plaintext to the front of `buf` and returns its length.
    ///
    /// # Errors
    /// [`Error::InvalidName`] if a message target or name contains `\n`;
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`buffer_len`](Self::buffer_len).
    /// `buf` is untouched on error.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        // The packet sent most (every message of a burst) is measured by its own length, not
        // by the match over every opcode that `buffer_len` is (issue 19).
        if let App::ReliableMessage(m) | App::UnreliableMessage(m) = self {
            return m.emit_packet(self.opcode(), buf);
        }
        if let App::OrderedMessage(o) = self {
            o.check_names()?;
        }
        if let App::DurableMessage(d) = self {
            d.check_names()?;
        }
        if buf.len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        let mut w = Writer::new(buf);
        w.u8(self.opcode())?;
        match *self {
            // Emitted above, by `emit_packet`.
            App::ReliableMessage(_) | App::UnreliableMessage(_) => {}
            App::Ack { counter, status } => {
                w.u64(counter.0)?;
                if let Some(s) = status {
                    w.u8(s.battery)?;
                    w.u8(s.network)?;
                    w.i8(s.temperature)?;
                }
            }
            App::RpcCall { function, args } => {
                w.u16(function.0)?;
                w.put(args)?;
            }
            App::RpcResponse { call, status, data } => {
                w.u64(call.0)?;
                w.u16(status.0)?;
                w.put(data)?;
            }
            App::RegisterRead(p) => p.emit(&mut w)?,
            App::RegisterValue(p) => p.emit(&mut w)?,
            App::Observe(p) => p.emit(&mut w)?,
            App::RegisterInfoRequest(p) => p.emit(&mut w)?,
            App::RegisterInfo(p) => p.emit(&mut w)?,
            App::Quit { reason } => {
                if let Some(r) = reason {
                    w.u16(r)?;
                }
            }
            App::Subscribe { target } | App::Unsubscribe { target } => w.put(target.as_bytes())?,
            App::ClientAccept { server_time_us } => w.i64(server_time_us)?,
            App::TimeSyncRequest => {}
            App::TimeSyncResponse {
                request,
                monotonic_us,
                unix_us,
            } => {
                w.u64(request.0)?;
                w.u64(monotonic_us)?;
                if let Some(u) = unix_us {
                    w.u64(u)?;
                }
            }
            App::GroupKey {
                sender,
                key_id,
                key,
            } => {
                w.u64(sender.0)?;
                w.u32(key_id.0)?;
                w.put(key)?;
            }
            App::Segment(seg) => seg.emit(&mut w)?,
            App::AckRanges(r) => w.put(r.as_bytes())?,
            App::TransferRefused { transfer, reason } => {
                w.u64(transfer.0)?;
                w.u8(reason.0)?;
            }
            App::OrderedMessage(o) => o.emit(&mut w)?,
            App::DurableMessage(d) => d.emit(&mut w)?,
        }
        Ok(w.written())
    }
}

impl<'a> Message<'a> {
    /// Splits a message body on its first two `\n`.
    ///
    /// # Errors
    /// [`Error::MissingSeparator`] if there are fewer than two `\n`; [`Error::InvalidUtf8`] if
    /// target or name is not UTF-8 (the payload is opaque and not checked).
    pub fn parse(body: &'a [u8]) -> Result<Message<'a>, Error> {
        let (target, rest) = split_line(body)?;
        let (name, payload) = split_line(rest)?;
        // Target and name are checked as one text, `target \n name`: it is UTF-8 exactly when
        // both are, and the `\n` (ASCII) is a char boundary of it. One check per message
        // instead of two; each costs some 50 instructions on a short name (issue 19).
        let names = utf8(
            body.get(..target.len() + 1 + name.len())
                .unwrap_or_default(),
        )?;
        let (target, name) = names
            .split_at_checked(target.len())
            .and_then(|(t, rest)| Some((t, rest.get(1..)?)))
            .ok_or(Error::InvalidUtf8)?;
        Ok(Message {
            target,
            name,
            payload,
        })
    }

    /// Length of the body: target, name, payload and the two separators.
    pub fn buffer_len(&self) -> usize {
        self.target
            .len()
            .saturating_add(self.name.len())
            .saturating_add(self.payload.len())
            .saturating_add(2)
    }

    /// Refuses names that would move the separators and so change the message's meaning.
    /// Searched as bytes: in UTF-8 the byte of `\n` is never part of another character.
    pub(super) fn check_names(&self) -> Result<(), Error> {
        if self.target.as_bytes().contains(&b'\n') || self.name.as_bytes().contains(&b'\n') {
            return Err(Error::InvalidName);
        }
        Ok(())
    }

    /// [`App::emit`] of this message under opcode `op` (1 or 3): the same checks, in the same
    /// order, and `buf` untouched on error.
    fn emit_packet(&self, op: u8, buf: &mut [u8]) -> Result<usize, Error> {
        self.check_names()?;
        let len = self.buffer_len().saturating_add(1);
        let mut w = Writer::new(buf.get_mut(..len).ok_or(Error::BufferTooSmall)?);
        w.u8(op)?;
        self.emit(&mut w)?;
        Ok(w.written())
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.put(self.target.as_bytes())?;
        w.u8(b'\n')?;
        w.put(self.name.as_bytes())?;
        w.u8(b'\n')?;
        w.put(self.payload)
    }
}

/// Splits at the first `\n`, dropping it.
fn split_line(bytes: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let at = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Error::MissingSeparator)?;
    let (line, rest) = bytes.split_at_checked(at).ok_or(Error::MissingSeparator)?;
    let rest = rest.get(1..).ok_or(Error::MissingSeparator)?;
    Ok((line, rest))
}

fn utf8(bytes: &[u8]) -> Result<&str, Error> {
    core::str::from_utf8(bytes).map_err(|_| Error::InvalidUtf8)
}

fn exact(actual: usize, expected: usize) -> Result<(), Error> {
    if actual == expected {
        Ok(())
    } else {
        Err(bad_length(expected, actual))
    }
}

fn bad_length(expected: usize, actual: usize) -> Error {
    Error::BadLength { expected, actual }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
