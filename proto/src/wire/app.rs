//! Application messages: the decrypted plaintext of session packets (docs/PROTOCOL.md §3).
//!
//! A plaintext is one opcode byte followed by the payload. Parsed values borrow from the
//! plaintext; nothing is copied or allocated.

use super::codec::{Reader, Writer};
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
        use opcode::*;
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
            REGISTER_READ => App::RegisterRead(RegisterRead::parse(payload)?),
            REGISTER_VALUE => App::RegisterValue(RegisterValuePacket::parse(payload)?),
            OBSERVE => App::Observe(ObserveRequest::parse(payload)?),
            REGISTER_INFO_REQUEST => App::RegisterInfoRequest(RegisterInfoRequest::parse(payload)?),
            REGISTER_INFO => App::RegisterInfo(RegisterInfoPacket::parse(payload)?),
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
            SEGMENT => App::Segment(Segment::parse(payload)?),
            ACK_RANGES => App::AckRanges(AckRanges::parse(payload)?),
            TRANSFER_REFUSED => {
                exact(len, segment::REFUSED_LEN)?;
                App::TransferRefused {
                    transfer: TransferId(r.u64()?),
                    reason: RefusalCode(r.u8()?),
                }
            }
            ORDERED_MESSAGE => App::OrderedMessage(OrderedMessage::parse(payload)?),
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
        if let App::ReliableMessage(m) | App::UnreliableMessage(m) = self {
            m.check_names()?;
        }
        if let App::OrderedMessage(o) = self {
            o.check_names()?;
        }
        if buf.len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        let mut w = Writer::new(buf);
        w.u8(self.opcode())?;
        match *self {
            App::ReliableMessage(m) | App::UnreliableMessage(m) => m.emit(&mut w)?,
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
        Ok(Message {
            target: utf8(target)?,
            name: utf8(name)?,
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
    pub(super) fn check_names(&self) -> Result<(), Error> {
        if self.target.contains('\n') || self.name.contains('\n') {
            return Err(Error::InvalidName);
        }
        Ok(())
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
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector is valid hex")
    }

    /// Parses `hex`, compares with `expected`, and checks that emitting gives the same bytes.
    fn check_vector(hex: &str, expected: App<'_>) {
        let bytes = unhex(hex);
        let parsed = App::parse(&bytes).expect("vector parses");
        assert_eq!(parsed, expected);
        assert_eq!(parsed.buffer_len(), bytes.len());
        let mut out = alloc::vec![0u8; bytes.len()];
        assert_eq!(parsed.emit(&mut out), Ok(bytes.len()));
        assert_eq!(out, bytes);
    }

    // Plaintexts decoded from the reference captures and the computed vectors (crypto::test_vectors).

    #[test]
    fn capture_rpc_call() {
        check_vector(
            "04910141207465737420737472696e67",
            App::RpcCall {
                function: FunctionId(401),
                args: b"A test string",
            },
        );
        check_vector(
            "04900168656c6c6f",
            App::RpcCall {
                function: FunctionId(400),
                args: b"hello",
            },
        );
    }

    #[test]
    fn capture_rpc_response() {
        check_vector(
            "0567b1a90200000000000041207465737420737472696e67",
            App::RpcResponse {
                call: Counter(44675431),
                status: RpcStatus::OK,
                data: b"A test string",
            },
        );
        check_vector(
            "05e90300000000000000006f6c6c6568",
            App::RpcResponse {
                call: Counter(1001),
                status: RpcStatus::OK,
                data: b"olleh",
            },
        );
        // docs/PROTOCOL.md §10 item 7: the Python server's exception status is 257, `01 01`.
        let App::RpcResponse { status, .. } =
            App::parse(&unhex("05010000000000000001014578")).unwrap()
        else {
            panic!("not a response");
        };
        assert_eq!(status, RpcStatus::PYTHON_EXCEPTION);
        assert!(!status.is_ok());
    }

    #[test]
    fn capture_reliable_message() {
        check_vector(
            "01546573745461726765740a4d6573736167654e616d650a64617461",
            App::ReliableMessage(Message {
                target: "TestTarget",
                name: "MessageName",
                payload: b"data",
            }),
        );
        check_vector(
            "01540a4e0a64617461",
            App::ReliableMessage(Message {
                target: "T",
                name: "N",
                payload: b"data",
            }),
        );
    }

    #[test]
    fn capture_acks() {
        check_vector(
            "0269b1a90200000000",
            App::Ack {
                counter: Counter(44675433),
                status: None,
            },
        );
        check_vector(
            "02ea0300000000000000ff00",
            App::Ack {
                counter: Counter(1002),
                status: Some(StatusBytes {
                    battery: 0,
                    network: 255,
                    temperature: 0,
                }),
            },
        );
        check_vector(
            "0201000000000000007f65ec",
            App::Ack {
                counter: Counter(1),
                status: Some(StatusBytes {
                    battery: 127,
                    network: 101,
                    temperature: -20,
                }),
            },
        );
    }

    #[test]
    fn capture_quit_and_keepalive() {
        check_vector("0c", App::Quit { reason: None });
        check_vector(
            "0c0201",
            App::Quit {
                reason: Some(0x0102),
            },
        );
        // docs/PROTOCOL.md §3 and §9.3: the empty message "\n\n" is the client keepalive.
        check_vector(
            "030a0a",
            App::UnreliableMessage(Message {
                target: "",
                name: "",
                payload: b"",
            }),
        );
    }

    #[test]
    fn remaining_opcodes() {
        check_vector("0d6b69746368656e", App::Subscribe { target: "kitchen" });
        check_vector("0e", App::Unsubscribe { target: "" });
        check_vector(
            "10ffffffffffffffff",
            App::ClientAccept { server_time_us: -1 },
        );
        check_vector("14", App::TimeSyncRequest);
        check_vector(
            "1501000000000000000200000000000000",
            App::TimeSyncResponse {
                request: Counter(1),
                monotonic_us: 2,
                unix_us: None,
            },
        );
        check_vector(
            "15010000000000000002000000000000000300000000000000",
            App::TimeSyncResponse {
                request: Counter(1),
                monotonic_us: 2,
                unix_us: Some(3),
            },
        );
    }

    #[test]
    fn group_key_layout() {
        let mut hex = String::from("20");
        hex.push_str("0807060504030201"); // sender id, little endian
        hex.push_str("05000000"); // key id
        hex.push_str(&"ab".repeat(32));
        check_vector(
            &hex,
            App::GroupKey {
                sender: SenderId(0x0102_0304_0506_0708),
                key_id: KeyId(5),
                key: &[0xab; 32],
            },
        );
        let bytes = unhex(&hex);
        assert_eq!(bytes.len(), 45);
        assert_eq!(
            App::parse(&bytes[..44]),
            Err(Error::BadLength {
                expected: 44,
                actual: 43
            })
        );
    }

    #[test]
    fn payload_may_contain_newlines() {
        let m = Message::parse(b"a\nb\nc\nd\n").unwrap();
        assert_eq!((m.target, m.name, m.payload), ("a", "b", &b"c\nd\n"[..]));
        let m = Message::parse(b"\n\n\n").unwrap();
        assert_eq!((m.target, m.name, m.payload), ("", "", &b"\n"[..]));
    }

    #[test]
    fn typed_errors() {
        assert_eq!(App::parse(b""), Err(Error::Truncated));
        for op in [0u8, 11, 15, 17, 18, 19, 22, 255] {
            assert_eq!(App::parse(&[op, 1, 2, 3]), Err(Error::UnknownAppOpcode(op)));
        }
        // Messages.
        assert_eq!(App::parse(b"\x01"), Err(Error::MissingSeparator));
        assert_eq!(App::parse(b"\x01target"), Err(Error::MissingSeparator));
        assert_eq!(
            App::parse(b"\x03target\nname"),
            Err(Error::MissingSeparator)
        );
        assert_eq!(App::parse(b"\x01\xff\nname\n"), Err(Error::InvalidUtf8));
        assert_eq!(App::parse(b"\x01t\n\xc3\n"), Err(Error::InvalidUtf8));
        assert!(
            App::parse(b"\x01t\nn\n\xff\xfe").is_ok(),
            "payload is not UTF-8 checked"
        );
        assert_eq!(App::parse(b"\x0d\xff"), Err(Error::InvalidUtf8));
        assert_eq!(App::parse(b"\x0e\xc0\x80"), Err(Error::InvalidUtf8));
        // ACK: exactly 8 or 11 bytes.
        for len in [0, 7, 9, 10, 12] {
            let mut p = alloc::vec![2u8];
            p.resize(1 + len, 0);
            assert_eq!(
                App::parse(&p),
                Err(Error::BadLength {
                    expected: 8,
                    actual: len
                }),
                "ACK of {len} bytes"
            );
        }
        // Prefix lengths.
        assert_eq!(App::parse(&[4, 1]), Err(Error::Truncated));
        assert!(App::parse(&[4, 1, 0]).is_ok());
        assert_eq!(
            App::parse(&[5, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(Error::Truncated)
        );
        assert!(App::parse(&[5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_ok());
        // Exact lengths.
        assert_eq!(
            App::parse(&[12, 1]),
            Err(Error::BadLength {
                expected: 0,
                actual: 1
            })
        );
        assert_eq!(
            App::parse(&[12, 1, 2, 3]),
            Err(Error::BadLength {
                expected: 0,
                actual: 3
            })
        );
        assert_eq!(
            App::parse(&[16, 0, 0, 0, 0, 0, 0, 0]),
            Err(Error::BadLength {
                expected: 8,
                actual: 7
            })
        );
        assert_eq!(
            App::parse(&[20, 0]),
            Err(Error::BadLength {
                expected: 0,
                actual: 1
            })
        );
        assert_eq!(
            App::parse(&[21; 18]),
            Err(Error::BadLength {
                expected: 16,
                actual: 17
            })
        );
    }

    #[test]
    fn emit_refuses_newlines_in_names() {
        let mut buf = [0u8; 64];
        for (target, name) in [("a\nb", "n"), ("t", "\n"), ("\n", "")] {
            let m = Message {
                target,
                name,
                payload: b"",
            };
            assert_eq!(
                App::ReliableMessage(m).emit(&mut buf),
                Err(Error::InvalidName)
            );
            assert_eq!(
                App::UnreliableMessage(m).emit(&mut buf),
                Err(Error::InvalidName)
            );
        }
        assert_eq!(buf, [0u8; 64]);
    }

    #[test]
    fn emit_into_short_buffer_is_refused_untouched() {
        let a = App::RpcCall {
            function: FunctionId(1),
            args: b"xyz",
        };
        let mut buf = [0xee; 5];
        assert_eq!(a.emit(&mut buf), Err(Error::BufferTooSmall));
        assert_eq!(buf, [0xee; 5]);
        assert_eq!(a.emit(&mut []), Err(Error::BufferTooSmall));
        let mut buf = [0xee; 8];
        assert_eq!(a.emit(&mut buf), Ok(6));
        assert_eq!(buf, [4, 1, 0, b'x', b'y', b'z', 0xee, 0xee]);
    }

    // ---- properties ----

    /// An owned description of an [`App`], since quickcheck values must be `'static`.
    #[derive(Clone, Debug)]
    enum Spec {
        Message {
            reliable: bool,
            target: String,
            name: String,
            payload: Vec<u8>,
        },
        Ack {
            counter: u64,
            status: Option<(u8, u8, i8)>,
        },
        RpcCall {
            function: u16,
            args: Vec<u8>,
        },
        RpcResponse {
            call: u64,
            status: u16,
            data: Vec<u8>,
        },
        Quit {
            reason: Option<u16>,
        },
        Subscribe {
            subscribe: bool,
            target: String,
        },
        ClientAccept {
            server_time_us: i64,
        },
        TimeSyncRequest,
        TimeSyncResponse {
            request: u64,
            monotonic_us: u64,
            unix_us: Option<u64>,
        },
        GroupKey {
            sender: u64,
            key_id: u32,
            key: [u8; 32],
        },
        Segment {
            transfer: u64,
            total: u32,
            offset: u32,
            data: Vec<u8>,
        },
        /// The wire bytes of op 34's payload, built from arbitrary ranges.
        AckRanges(Vec<u8>),
        TransferRefused {
            transfer: u64,
            reason: u8,
        },
        Ordered {
            epoch: u32,
            seq: u64,
            floor: u64,
            target: String,
            name: String,
            payload: Vec<u8>,
        },
    }

    fn name(g: &mut Gen) -> String {
        String::arbitrary(g)
            .chars()
            .filter(|&c| c != '\n')
            .collect()
    }

    impl Arbitrary for Spec {
        fn arbitrary(g: &mut Gen) -> Self {
            match u8::arbitrary(g) % 14 {
                0 => Spec::Message {
                    reliable: bool::arbitrary(g),
                    target: name(g),
                    name: name(g),
                    payload: Vec::arbitrary(g),
                },
                1 => Spec::Ack {
                    counter: u64::arbitrary(g),
                    status: Arbitrary::arbitrary(g),
                },
                2 => Spec::RpcCall {
                    function: u16::arbitrary(g),
                    args: Vec::arbitrary(g),
                },
                3 => Spec::RpcResponse {
                    call: u64::arbitrary(g),
                    status: u16::arbitrary(g),
                    data: Vec::arbitrary(g),
                },
                4 => Spec::Quit {
                    reason: Arbitrary::arbitrary(g),
                },
                5 => Spec::Subscribe {
                    subscribe: bool::arbitrary(g),
                    // Subscription targets have no terminator, so any string survives.
                    target: String::arbitrary(g),
                },
                6 => Spec::ClientAccept {
                    server_time_us: i64::arbitrary(g),
                },
                7 => Spec::TimeSyncRequest,
                8 => {
                    let mut key = [0u8; 32];
                    for b in &mut key {
                        *b = u8::arbitrary(g);
                    }
                    Spec::GroupKey {
                        sender: u64::arbitrary(g),
                        key_id: u32::arbitrary(g),
                        key,
                    }
                }
                10 => Spec::Segment {
                    transfer: u64::arbitrary(g),
                    total: u32::arbitrary(g),
                    offset: u32::arbitrary(g),
                    data: Vec::arbitrary(g),
                },
                11 => {
                    let mut ranges: Vec<(Counter, u16)> = Vec::arbitrary(g)
                        .into_iter()
                        .map(|(c, n)| (Counter(c), n))
                        .collect();
                    ranges.truncate(segment::MAX_ACK_RANGES);
                    if ranges.is_empty() {
                        ranges.push((Counter(u64::arbitrary(g)), u16::arbitrary(g)));
                    }
                    let mut raw = alloc::vec![0u8; 1 + ranges.len() * segment::ACK_RANGE_LEN];
                    let built = AckRanges::build(&ranges, &mut raw).map(|r| r.as_bytes().len());
                    assert_eq!(built, Ok(raw.len()));
                    Spec::AckRanges(raw)
                }
                12 => Spec::TransferRefused {
                    transfer: u64::arbitrary(g),
                    reason: u8::arbitrary(g),
                },
                9 => Spec::Ordered {
                    epoch: u32::arbitrary(g),
                    seq: u64::arbitrary(g),
                    floor: u64::arbitrary(g),
                    target: name(g),
                    name: name(g),
                    payload: Vec::arbitrary(g),
                },
                _ => Spec::TimeSyncResponse {
                    request: u64::arbitrary(g),
                    monotonic_us: u64::arbitrary(g),
                    unix_us: Arbitrary::arbitrary(g),
                },
            }
        }
    }

    impl Spec {
        fn app(&self) -> App<'_> {
            match self {
                Spec::Message {
                    reliable,
                    target,
                    name,
                    payload,
                } => {
                    let m = Message {
                        target,
                        name,
                        payload,
                    };
                    if *reliable {
                        App::ReliableMessage(m)
                    } else {
                        App::UnreliableMessage(m)
                    }
                }
                Spec::Ack { counter, status } => App::Ack {
                    counter: Counter(*counter),
                    status: status.map(|(battery, network, temperature)| StatusBytes {
                        battery,
                        network,
                        temperature,
                    }),
                },
                Spec::RpcCall { function, args } => App::RpcCall {
                    function: FunctionId(*function),
                    args,
                },
                Spec::RpcResponse { call, status, data } => App::RpcResponse {
                    call: Counter(*call),
                    status: RpcStatus(*status),
                    data,
                },
                Spec::Quit { reason } => App::Quit { reason: *reason },
                Spec::Subscribe {
                    subscribe: true,
                    target,
                } => App::Subscribe { target },
                Spec::Subscribe {
                    subscribe: false,
                    target,
                } => App::Unsubscribe { target },
                Spec::ClientAccept { server_time_us } => App::ClientAccept {
                    server_time_us: *server_time_us,
                },
                Spec::TimeSyncRequest => App::TimeSyncRequest,
                Spec::TimeSyncResponse {
                    request,
                    monotonic_us,
                    unix_us,
                } => App::TimeSyncResponse {
                    request: Counter(*request),
                    monotonic_us: *monotonic_us,
                    unix_us: *unix_us,
                },
                Spec::GroupKey {
                    sender,
                    key_id,
                    key,
                } => App::GroupKey {
                    sender: SenderId(*sender),
                    key_id: KeyId(*key_id),
                    key,
                },
                Spec::Segment {
                    transfer,
                    total,
                    offset,
                    data,
                } => App::Segment(Segment {
                    transfer: TransferId(*transfer),
                    total: *total,
                    offset: *offset,
                    data,
                }),
                Spec::AckRanges(raw) => {
                    App::AckRanges(AckRanges::parse(raw).expect("built by arbitrary"))
                }
                Spec::TransferRefused { transfer, reason } => App::TransferRefused {
                    transfer: TransferId(*transfer),
                    reason: RefusalCode(*reason),
                },
                Spec::Ordered {
                    epoch,
                    seq,
                    floor,
                    target,
                    name,
                    payload,
                } => App::OrderedMessage(OrderedMessage {
                    epoch: super::super::ordered::StreamEpoch(*epoch),
                    seq: super::super::ordered::OrderedSeq(*seq),
                    floor: super::super::ordered::OrderedSeq(*floor),
                    message: Message {
                        target,
                        name,
                        payload,
                    },
                }),
            }
        }
    }

    #[test]
    fn prop_emit_parse_is_identity() {
        fn prop(spec: Spec) -> bool {
            let app = spec.app();
            let mut buf = alloc::vec![0u8; app.buffer_len() + 3];
            let Ok(n) = app.emit(&mut buf) else {
                return false;
            };
            n == app.buffer_len() && buf.get(..n).map(App::parse) == Some(Ok(app))
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(Spec) -> bool);
    }

    #[test]
    fn prop_short_buffer_is_refused() {
        fn prop(spec: Spec, cut: usize) -> bool {
            let app = spec.app();
            let mut buf = alloc::vec![0u8; cut % app.buffer_len()];
            app.emit(&mut buf) == Err(Error::BufferTooSmall)
        }
        QuickCheck::new()
            .tests(1000)
            .quickcheck(prop as fn(Spec, usize) -> bool);
    }

    #[test]
    fn prop_parse_never_panics() {
        fn prop(bytes: Vec<u8>) -> bool {
            if let Ok(app) = App::parse(&bytes) {
                // Whatever parses re-emits to the same bytes: the format has no slack.
                let mut buf = alloc::vec![0u8; bytes.len()];
                return app.emit(&mut buf) == Ok(bytes.len()) && buf == bytes;
            }
            true
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(Vec<u8>) -> bool);
    }

    #[test]
    fn prop_parse_never_panics_on_known_opcodes() {
        fn prop(op: u8, body: Vec<u8>) -> bool {
            let ops = [1, 2, 3, 4, 5, 12, 13, 14, 16, 20, 21, 32, 33, 34, 35, 36];
            let mut bytes = alloc::vec![ops[usize::from(op) % ops.len()]];
            bytes.extend_from_slice(&body);
            if let Ok(app) = App::parse(&bytes) {
                let mut buf = alloc::vec![0u8; bytes.len()];
                return app.emit(&mut buf) == Ok(bytes.len()) && buf == bytes;
            }
            true
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(u8, Vec<u8>) -> bool);
    }
}
