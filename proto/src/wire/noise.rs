//! Suite 3 packets: Noise handshakes, cookie replies and ChaCha20-Poly1305 data packets.
//!
//! Every suite 3 datagram starts with the magic `PvS3` and a type byte; integers are little
//! endian. `docs/PROTOCOL.md` §12 is the normative layout; in short:
//!
//! | type | packet | layout after magic and type | length |
//! |---|---|---|---|
//! | 1 | initiation | mode, sender index (4), cookie (16), [client id (16) if NNpsk0], Noise message 1 | 138 (IK) / 106 (NNpsk0) |
//! | 2 | response | sender index (4), receiver index (4), Noise message 2 | 69 |
//! | 3 | cookie reply | receiver index (4), cookie (16) | 25 |
//! | 4 | data | receiver index (4), counter (8), ciphertext, tag (16) | ≥ 34 |
//! | 5 | unknown index | receiver index (4) | 9 |
//! | 6 | group data | sender id (8), key id (4), counter (8), ciphertext, tag (16) | ≥ 42 |
//! | 7 | unknown sender | sender id (8), key id (4) | 17 |
//!
//! A data packet's first 17 bytes (a group data packet's first 25) are its header and the
//! AEAD's associated data, so a changed index, sender, key id or counter fails authentication.
//! Every reply to an unauthenticated packet is smaller than the packet that caused it.

use super::codec::{Reader, Writer};
use super::{Error, SessionPacket, TAG_LEN};
use crate::id::{ClientId, Counter};

/// The magic of suite 3 datagrams.
pub const NOISE_MAGIC: &[u8; 4] = b"PvS3";

/// Bytes before a data packet's ciphertext; also its associated data.
pub const DATA_HEADER_LEN: usize = 17;

/// Bytes before a group data packet's ciphertext; also its associated data.
pub const GROUP_HEADER_LEN: usize = 25;

/// Bytes a group data packet adds around its plaintext: header and tag.
pub const GROUP_OVERHEAD: usize = GROUP_HEADER_LEN + TAG_LEN;

/// Plaintext payload of an initiation: the client's epoch and handshake sequence number.
pub const INITIATION_PAYLOAD_LEN: usize = 16;

/// The fewest bytes 0-RTT data adds to an initiation's Noise message: a `u64` counter and one
/// plaintext byte (`docs/PROTOCOL.md` §12.2). An initiation is exactly its mode's length, or
/// at least this much longer.
pub const EARLY_DATA_MIN: usize = 8 + 1;

/// Plaintext payload of a response: the server's epoch.
pub const RESPONSE_PAYLOAD_LEN: usize = 8;

const TYPE_INITIATION: u8 = 1;
const TYPE_RESPONSE: u8 = 2;
const TYPE_COOKIE: u8 = 3;
const TYPE_DATA: u8 = 4;
const TYPE_UNKNOWN_INDEX: u8 = 5;
const TYPE_GROUP_DATA: u8 = 6;
const TYPE_UNKNOWN_SENDER: u8 = 7;

/// A session index: chosen by the receiver of the packets that carry it, so that a session is
/// found by index and survives a change of the peer's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionIndex(pub u32);

impl SessionIndex {
    /// This index with its top byte replaced by `prefix`, if any: a relay routes the packets
    /// of the endpoints sharing its socket by that byte.
    pub(crate) fn with_prefix(self, prefix: Option<u8>) -> SessionIndex {
        match prefix {
            Some(p) => SessionIndex((self.0 & 0x00ff_ffff) | (u32::from(p) << 24)),
            None => self,
        }
    }
}

/// A multicast sender: chosen at random by a client process for its group sends, and the same
/// at every server of the group, which maps it to that client's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SenderId(pub u64);

/// Which of a sender's group keys sealed a group data packet; each new key takes the next id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u32);

/// Which Noise pattern an initiation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// `Noise_IK`: the client has a static key and knows the server's.
    Ik,
    /// `Noise_IKpsk2`: as `Ik`, with a pre-shared key.
    IkPsk2,
    /// `Noise_NNpsk0`: pre-shared key only; the client id travels in clear to pick the key.
    NnPsk0,
}

impl Mode {
    const fn byte(self) -> u8 {
        match self {
            Mode::Ik => 1,
            Mode::IkPsk2 => 2,
            Mode::NnPsk0 => 3,
        }
    }

    fn from_byte(b: u8) -> Result<Mode, Error> {
        match b {
            1 => Ok(Mode::Ik),
            2 => Ok(Mode::IkPsk2),
            3 => Ok(Mode::NnPsk0),
            other => Err(Error::UnknownCipher(other)),
        }
    }

    /// Whether `len` is a valid length for this mode's first Noise message: exact, or longer
    /// by 0-RTT data.
    pub const fn message_len_ok(self, len: usize) -> bool {
        len == self.message_len() || len >= self.message_len() + EARLY_DATA_MIN
    }

    /// Length of this mode's first Noise message (with the initiation payload, without 0-RTT
    /// data).
    pub const fn message_len(self) -> usize {
        match self {
            // e, encrypted s, encrypted payload
            Mode::Ik | Mode::IkPsk2 => 32 + 32 + TAG_LEN + INITIATION_PAYLOAD_LEN + TAG_LEN,
            // e, encrypted payload (psk0 keys it)
            Mode::NnPsk0 => 32 + INITIATION_PAYLOAD_LEN + TAG_LEN,
        }
    }
}

/// Length of the second Noise message (with the response payload).
pub const RESPONSE_MESSAGE_LEN: usize = 32 + RESPONSE_PAYLOAD_LEN + TAG_LEN;

/// Type 1: the client's first handshake message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Initiation<'a> {
    /// The Noise pattern.
    pub mode: Mode,
    /// The index the client wants the server to put on packets to it.
    pub sender: SessionIndex,
    /// A cookie from a cookie reply, or zeros.
    pub cookie: [u8; 16],
    /// NNpsk0 only: which pre-shared key to use.
    pub client_id: Option<ClientId>,
    /// Noise message 1: exactly [`Mode::message_len`] bytes, or at least [`EARLY_DATA_MIN`]
    /// more when it carries 0-RTT data.
    pub message: &'a [u8],
}

/// Type 2: the server's handshake answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// The index the server wants on packets to it.
    pub sender: SessionIndex,
    /// The client's index from the initiation.
    pub receiver: SessionIndex,
    /// Noise message 2, exactly [`RESPONSE_MESSAGE_LEN`] bytes.
    pub message: &'a [u8],
}

/// A suite 3 datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoisePacket<'a> {
    /// Type 1.
    Initiation(Initiation<'a>),
    /// Type 2.
    Response(Response<'a>),
    /// Type 3: the server is under load; resend the initiation with this cookie.
    CookieReply {
        /// The client's index from the initiation.
        receiver: SessionIndex,
        /// The cookie, bound to the client's address.
        cookie: [u8; 16],
    },
    /// Type 4: an encrypted application packet.
    Data {
        /// The receiver's session index.
        receiver: SessionIndex,
        /// Counter, tag and ciphertext, as for suites 1 and 2.
        packet: SessionPacket<'a>,
    },
    /// Type 5: "no session has this index" (unauthenticated hint to handshake again).
    UnknownIndex {
        /// The index that was not found.
        receiver: SessionIndex,
    },
    /// Type 6: an application packet a client sends to every server of a group, sealed under
    /// its group key.
    GroupData {
        /// The client's sender id.
        sender: SenderId,
        /// Which of the sender's group keys sealed it.
        key: KeyId,
        /// Counter, tag and ciphertext.
        packet: SessionPacket<'a>,
    },
    /// Type 7: "I hold no such sender or key" (unauthenticated hint to deliver the group key
    /// again, or to handshake).
    UnknownSender {
        /// The sender id of the group data packet.
        sender: SenderId,
        /// Its key id.
        key: KeyId,
    },
}

impl<'a> NoisePacket<'a> {
    /// Parses a datagram that starts with [`NOISE_MAGIC`], with exact lengths.
    ///
    /// # Errors
    /// [`Error::BadMagic`], [`Error::Truncated`], [`Error::BadLength`], [`Error::UnknownCipher`]
    /// for an unknown mode, [`Error::UnknownSetupOpcode`] for an unknown type.
    pub fn parse(bytes: &'a [u8]) -> Result<NoisePacket<'a>, Error> {
        let mut r = Reader::new(bytes);
        if r.array_ref::<4>().map_err(|_| Error::Truncated)? != NOISE_MAGIC {
            return Err(Error::BadMagic);
        }
        let kind = r.u8()?;
        let exact = |r: &Reader<'_>, want: usize| {
            if r.remaining() == want {
                Ok(())
            } else {
                Err(Error::BadLength {
                    expected: want,
                    actual: r.remaining(),
                })
            }
        };
        match kind {
            TYPE_INITIATION => {
                let mode = Mode::from_byte(r.u8()?)?;
                let sender = SessionIndex(r.u32()?);
                let cookie = r.array()?;
                let client_id = match mode {
                    Mode::NnPsk0 => Some(ClientId(r.array()?)),
                    _ => None,
                };
                if !mode.message_len_ok(r.remaining()) {
                    exact(&r, mode.message_len())?;
                }
                Ok(NoisePacket::Initiation(Initiation {
                    mode,
                    sender,
                    cookie,
                    client_id,
                    message: r.rest(),
                }))
            }
            TYPE_RESPONSE => {
                let sender = SessionIndex(r.u32()?);
                let receiver = SessionIndex(r.u32()?);
                exact(&r, RESPONSE_MESSAGE_LEN)?;
                Ok(NoisePacket::Response(Response {
                    sender,
                    receiver,
                    message: r.rest(),
                }))
            }
            TYPE_COOKIE => {
                let receiver = SessionIndex(r.u32()?);
                exact(&r, 16)?;
                Ok(NoisePacket::CookieReply {
                    receiver,
                    cookie: r.array()?,
                })
            }
            TYPE_DATA => {
                let receiver = SessionIndex(r.u32()?);
                Ok(NoisePacket::Data {
                    receiver,
                    packet: sealed_body(r)?,
                })
            }
            TYPE_UNKNOWN_INDEX => {
                let receiver = SessionIndex(r.u32()?);
                exact(&r, 0)?;
                Ok(NoisePacket::UnknownIndex { receiver })
            }
            TYPE_GROUP_DATA => {
                let sender = SenderId(r.u64()?);
                let key = KeyId(r.u32()?);
                Ok(NoisePacket::GroupData {
                    sender,
                    key,
                    packet: sealed_body(r)?,
                })
            }
            TYPE_UNKNOWN_SENDER => {
                let sender = SenderId(r.u64()?);
                let key = KeyId(r.u32()?);
                exact(&r, 0)?;
                Ok(NoisePacket::UnknownSender { sender, key })
            }
            other => Err(Error::UnknownSetupOpcode(other)),
        }
    }

    /// Writes a handshake, cookie or unknown-index packet into `buf`; returns its length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`]; [`Error::BadLength`] for a Noise message of the wrong
    /// length, a missing NNpsk0 client id, or a data packet (use [`emit_data_header`] or
    /// [`emit_group_header`]).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(buf);
        w.put(NOISE_MAGIC)?;
        match self {
            NoisePacket::Initiation(i) => {
                if !i.mode.message_len_ok(i.message.len())
                    || (i.mode == Mode::NnPsk0) != i.client_id.is_some()
                {
                    return Err(Error::BadLength {
                        expected: i.mode.message_len(),
                        actual: i.message.len(),
                    });
                }
                w.u8(TYPE_INITIATION)?;
                w.u8(i.mode.byte())?;
                w.u32(i.sender.0)?;
                w.put(&i.cookie)?;
                if let Some(id) = i.client_id {
                    w.put(&id.0)?;
                }
                w.put(i.message)?;
            }
            NoisePacket::Response(resp) => {
                if resp.message.len() != RESPONSE_MESSAGE_LEN {
                    return Err(Error::BadLength {
                        expected: RESPONSE_MESSAGE_LEN,
                        actual: resp.message.len(),
                    });
                }
                w.u8(TYPE_RESPONSE)?;
                w.u32(resp.sender.0)?;
                w.u32(resp.receiver.0)?;
                w.put(resp.message)?;
            }
            NoisePacket::CookieReply { receiver, cookie } => {
                w.u8(TYPE_COOKIE)?;
                w.u32(receiver.0)?;
                w.put(cookie)?;
            }
            NoisePacket::UnknownIndex { receiver } => {
                w.u8(TYPE_UNKNOWN_INDEX)?;
                w.u32(receiver.0)?;
            }
            NoisePacket::UnknownSender { sender, key } => {
                w.u8(TYPE_UNKNOWN_SENDER)?;
                w.u64(sender.0)?;
                w.u32(key.0)?;
            }
            NoisePacket::Data { .. } | NoisePacket::GroupData { .. } => {
                return Err(Error::BadLength {
                    expected: DATA_HEADER_LEN,
                    actual: 0,
                })
            }
        }
        Ok(w.written())
    }
}

/// Writes a data packet's header (its first [`DATA_HEADER_LEN`] bytes) into `buf`.
///
/// # Errors
/// [`Error::BufferTooSmall`].
pub fn emit_data_header(
    buf: &mut [u8],
    receiver: SessionIndex,
    counter: Counter,
) -> Result<(), Error> {
    let mut w = Writer::new(buf);
    w.put(NOISE_MAGIC)?;
    w.u8(TYPE_DATA)?;
    w.u32(receiver.0)?;
    w.u64(counter.0)
}

/// Writes a group data packet's header (its first [`GROUP_HEADER_LEN`] bytes) into `buf`.
///
/// # Errors
/// [`Error::BufferTooSmall`].
pub fn emit_group_header(
    buf: &mut [u8],
    sender: SenderId,
    key: KeyId,
    counter: Counter,
) -> Result<(), Error> {
    let mut w = Writer::new(buf);
    w.put(NOISE_MAGIC)?;
    w.u8(TYPE_GROUP_DATA)?;
    w.u64(sender.0)?;
    w.u32(key.0)?;
    w.u64(counter.0)
}

/// The counter, ciphertext and tag that end a data or group data packet.
fn sealed_body<'a>(mut r: Reader<'a>) -> Result<SessionPacket<'a>, Error> {
    let counter = Counter(r.u64()?);
    let body = r.rest();
    // Even the shortest plaintext has an opcode byte.
    let Some(split) = body.len().checked_sub(TAG_LEN).filter(|n| *n > 0) else {
        return Err(Error::Truncated);
    };
    let (ciphertext, tag) = body.split_at(split);
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Truncated)?;
    Ok(SessionPacket {
        counter,
        tag,
        ciphertext,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use quickcheck::quickcheck;

    fn round_trip(p: NoisePacket<'_>) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let n = p.emit(&mut buf).unwrap();
        assert_eq!(NoisePacket::parse(&buf[..n]).unwrap(), p);
        buf[..n].to_vec()
    }

    /// An initiation is its mode's fixed length or at least `EARLY_DATA_MIN` longer (0-RTT
    /// data, §12.2); the lengths between are refused, both ways.
    #[test]
    fn initiation_lengths_with_zero_rtt_data() {
        for mode in [Mode::Ik, Mode::NnPsk0] {
            let client_id = (mode == Mode::NnPsk0).then_some(ClientId([3; 16]));
            for extra in 0..=EARLY_DATA_MIN + 1 {
                let m1 = vec![7u8; mode.message_len() + extra];
                let p = NoisePacket::Initiation(Initiation {
                    mode,
                    sender: SessionIndex(9),
                    cookie: [1; 16],
                    client_id,
                    message: &m1,
                });
                let mut buf = [0u8; 256];
                let ok = extra == 0 || extra >= EARLY_DATA_MIN;
                assert_eq!(p.emit(&mut buf).is_ok(), ok, "{mode:?} +{extra}");
                if ok {
                    round_trip(p);
                } else {
                    let mut raw = round_trip(NoisePacket::Initiation(Initiation {
                        message: &m1[..mode.message_len()],
                        ..match p {
                            NoisePacket::Initiation(i) => i,
                            _ => unreachable!(),
                        }
                    }));
                    raw.extend_from_slice(&m1[mode.message_len()..]);
                    assert!(matches!(
                        NoisePacket::parse(&raw),
                        Err(Error::BadLength { .. })
                    ));
                }
            }
        }
    }

    #[test]
    fn handshake_packets_round_trip_at_their_exact_lengths() {
        let m1 = vec![7u8; Mode::Ik.message_len()];
        let ik = round_trip(NoisePacket::Initiation(Initiation {
            mode: Mode::Ik,
            sender: SessionIndex(9),
            cookie: [1; 16],
            client_id: None,
            message: &m1,
        }));
        assert_eq!(ik.len(), 138);
        let m1 = vec![7u8; Mode::NnPsk0.message_len()];
        let nn = round_trip(NoisePacket::Initiation(Initiation {
            mode: Mode::NnPsk0,
            sender: SessionIndex(9),
            cookie: [0; 16],
            client_id: Some(ClientId([3; 16])),
            message: &m1,
        }));
        assert_eq!(nn.len(), 106);
        let m2 = [5u8; RESPONSE_MESSAGE_LEN];
        let resp = round_trip(NoisePacket::Response(Response {
            sender: SessionIndex(1),
            receiver: SessionIndex(2),
            message: &m2,
        }));
        assert_eq!(resp.len(), 69);
        let cookie = round_trip(NoisePacket::CookieReply {
            receiver: SessionIndex(2),
            cookie: [4; 16],
        });
        assert_eq!(cookie.len(), 25);
        let unknown = round_trip(NoisePacket::UnknownIndex {
            receiver: SessionIndex(2),
        });
        assert_eq!(unknown.len(), 9);
        // Every reply is smaller than the smallest packet that can cause it.
        assert!(resp.len() < nn.len() && cookie.len() < nn.len() && unknown.len() < 34);
    }

    #[test]
    fn data_packets_split_header_ciphertext_and_tag() {
        let mut buf = vec![0u8; DATA_HEADER_LEN + 3 + TAG_LEN];
        emit_data_header(&mut buf, SessionIndex(0x0102_0304), Counter(77)).unwrap();
        buf[DATA_HEADER_LEN..DATA_HEADER_LEN + 3].copy_from_slice(b"abc");
        match NoisePacket::parse(&buf).unwrap() {
            NoisePacket::Data { receiver, packet } => {
                assert_eq!(receiver, SessionIndex(0x0102_0304));
                assert_eq!(packet.counter, Counter(77));
                assert_eq!(packet.ciphertext, b"abc");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            NoisePacket::parse(&buf[..DATA_HEADER_LEN + TAG_LEN]),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        assert_eq!(NoisePacket::parse(b"PvS"), Err(Error::Truncated));
        assert_eq!(NoisePacket::parse(b"PvS3"), Err(Error::Truncated));
        assert_eq!(
            NoisePacket::parse(b"PvS3\x09"),
            Err(Error::UnknownSetupOpcode(9))
        );
        assert_eq!(
            NoisePacket::parse(b"PvS3\x01\x07"),
            Err(Error::UnknownCipher(7))
        );
        assert!(matches!(
            NoisePacket::parse(b"PvS3\x05\0\0\0\0\0"),
            Err(Error::BadLength { .. })
        ));
        assert!(matches!(
            NoisePacket::parse(b"PvS3\x03\0\0\0\0"),
            Err(Error::BadLength { .. })
        ));
    }

    #[test]
    fn group_packets_round_trip_at_their_exact_lengths() {
        let mut buf = vec![0u8; GROUP_HEADER_LEN + 1 + TAG_LEN];
        emit_group_header(
            &mut buf,
            SenderId(0x0102_0304_0506_0708),
            KeyId(9),
            Counter(77),
        )
        .unwrap();
        assert_eq!(&buf[..5], b"PvS3\x06");
        assert_eq!(&buf[5..13], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&buf[13..17], &9u32.to_le_bytes());
        assert_eq!(&buf[17..25], &77u64.to_le_bytes());
        buf[GROUP_HEADER_LEN] = 0xAA;
        match NoisePacket::parse(&buf).unwrap() {
            NoisePacket::GroupData {
                sender,
                key,
                packet,
            } => {
                assert_eq!((sender, key), (SenderId(0x0102_0304_0506_0708), KeyId(9)));
                assert_eq!(packet.counter, Counter(77));
                assert_eq!(packet.ciphertext, [0xAA]);
            }
            other => panic!("{other:?}"),
        }
        // The shortest group data packet is 42 bytes: one byte less has no opcode.
        assert_eq!(buf.len(), 42);
        assert_eq!(NoisePacket::parse(&buf[..41]), Err(Error::Truncated));
        let hint = round_trip(NoisePacket::UnknownSender {
            sender: SenderId(5),
            key: KeyId(6),
        });
        assert_eq!(hint.len(), 17);
        assert!(
            hint.len() < buf.len(),
            "the hint is smaller than its trigger"
        );
        assert!(matches!(
            NoisePacket::parse(&hint[..16]),
            Err(Error::Truncated)
        ));
        let mut long = hint.clone();
        long.push(0);
        assert!(matches!(
            NoisePacket::parse(&long),
            Err(Error::BadLength { .. })
        ));
        // Group data is emitted by its header function, never by `emit`.
        let p = NoisePacket::parse(&buf).unwrap();
        assert!(matches!(
            p.emit(&mut [0u8; 64]),
            Err(Error::BadLength { .. })
        ));
    }

    quickcheck! {
        fn group_header_round_trips(sender: u64, key: u32, counter: u64, body: Vec<u8>) -> bool {
            let mut buf = vec![0u8; GROUP_HEADER_LEN];
            emit_group_header(&mut buf, SenderId(sender), KeyId(key), Counter(counter)).unwrap();
            buf.extend_from_slice(&body);
            match NoisePacket::parse(&buf) {
                Ok(NoisePacket::GroupData { sender: s, key: k, packet }) => {
                    body.len() > TAG_LEN
                        && s == SenderId(sender)
                        && k == KeyId(key)
                        && packet.counter == Counter(counter)
                        && packet.ciphertext.len() + TAG_LEN == body.len()
                }
                Err(Error::Truncated) => body.len() <= TAG_LEN,
                _ => false,
            }
        }

        fn unknown_sender_round_trips(sender: u64, key: u32) -> bool {
            let p = NoisePacket::UnknownSender { sender: SenderId(sender), key: KeyId(key) };
            let mut buf = [0u8; 32];
            let n = p.emit(&mut buf).unwrap();
            n == 17 && NoisePacket::parse(&buf[..n]) == Ok(p)
        }

        fn parse_never_panics(bytes: Vec<u8>) -> bool {
            let mut b = NOISE_MAGIC.to_vec();
            b.extend_from_slice(&bytes);
            let _ = NoisePacket::parse(&b);
            let _ = super::super::Datagram::parse(&b);
            true
        }
    }
}
