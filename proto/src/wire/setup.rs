//! Cleartext setup packets (counter 0): the handshake messages of docs/PROTOCOL.md §2.
//!
//! Layout: [`MAGIC`](super::MAGIC) `||` u64 LE counter 0 `||` u8 opcode `||` payload. The
//! reference Python peers unpack payloads with exact-length `struct.unpack` calls, so every
//! opcode has exactly one valid payload length and anything else is [`Error::BadLength`].

use super::codec::{Reader, Writer};
use super::{emit_header, parse_header, Error, HEADER_LEN};
use crate::id::{ClientId, Counter};

/// Setup opcodes, a number space of their own (docs/PROTOCOL.md §2).
pub mod setup_opcode {
    /// Client asks a server for a nonce ([`Setup::NonceRequest`](super::Setup::NonceRequest)).
    pub const NONCE_REQUEST: u8 = 1;
    /// Server's PSK nonce ([`Setup::PskNonce`](super::Setup::PskNonce)).
    pub const PSK_NONCE: u8 = 2;
    /// Client's PSK answer ([`Setup::PskClientInfo`](super::Setup::PskClientInfo)).
    pub const PSK_CLIENT_INFO: u8 = 3;
    /// Server cannot decrypt the client's packets and asks for a new handshake.
    pub const UNRECOGNIZED_CLIENT: u8 = 4;
    /// A server announces it has (re)started.
    pub const NEW_SERVER_JOIN: u8 = 5;
    /// Server does not know the client id.
    pub const INVALID_CLIENT_ID: u8 = 6;
    /// Server confirms the session (undocumented in the reference docs).
    pub const SESSION_ESTABLISHED: u8 = 7;
    /// Server's ECC nonce ([`Setup::EccNonce`](super::Setup::EccNonce)).
    pub const ECC_NONCE: u8 = 11;
    /// Client's ECC answer ([`Setup::EccClientInfo`](super::Setup::EccClientInfo)).
    pub const ECC_CLIENT_INFO: u8 = 12;
}

/// The cipher suite byte of setup packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CipherId {
    /// Suite 1: pre-shared key, BLAKE2b key derivation.
    Psk = 1,
    /// Suite 2: X25519 `crypto_box`, session keys chosen by the client.
    Ecc = 2,
}

impl TryFrom<u8> for CipherId {
    type Error = Error;

    /// Maps the wire byte to a suite; [`Error::UnknownCipher`] for anything but 1 and 2.
    fn try_from(b: u8) -> Result<Self, Error> {
        match b {
            1 => Ok(CipherId::Psk),
            2 => Ok(CipherId::Ecc),
            other => Err(Error::UnknownCipher(other)),
        }
    }
}

impl From<CipherId> for u8 {
    fn from(c: CipherId) -> u8 {
        c as u8
    }
}

/// A parsed setup packet.
///
/// Variants are in opcode order, which is the order of the spec's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Op 1, client → server: start a handshake.
    NonceRequest(NonceRequest),
    /// Op 2, server → client: the server nonce of a PSK handshake.
    PskNonce(PskNonce),
    /// Op 3, client → server: the client nonce and counter of a PSK handshake.
    PskClientInfo(PskClientInfo),
    /// Op 4, server → client: "I cannot decrypt you, handshake again". Empty payload.
    UnrecognizedClient,
    /// Op 5, server → multicast: the server (re)started. Empty payload.
    NewServerJoin,
    /// Op 6, server → client: the client id is unknown.
    InvalidClientId {
        /// The challenge from the nonce request being refused.
        challenge: [u8; 16],
    },
    /// Op 7, server → client: the handshake completed.
    SessionEstablished {
        /// The session id, derived from the C>S key (docs/PROTOCOL.md §2.6).
        session_id: [u8; 16],
    },
    /// Op 11, server → client: the server nonce of an ECC handshake, sealed.
    EccNonce(EccNonce),
    /// Op 12, client → server: the session keys and counter of an ECC handshake, sealed.
    EccClientInfo(EccClientInfo),
}

/// Op 1 payload: a client's request for a server nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonceRequest {
    /// Which handshake the client wants.
    pub cipher: CipherId,
    /// The client's configured identity.
    pub client_id: ClientId,
    /// A random challenge the server must echo.
    pub challenge: [u8; 16],
    /// The session id the client believes it has; a server may skip the handshake if it matches.
    pub session_hint: [u8; 16],
    /// The client's X25519 public key for ECC, or all zeros for PSK.
    pub public_key: [u8; 32],
}

/// Op 2 payload: the server nonce of a PSK handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PskNonce {
    /// Fresh random server nonce.
    pub server_nonce: [u8; 32],
    /// The client's challenge, echoed.
    pub challenge: [u8; 16],
    /// `BLAKE2b-256(key=PSK, server_nonce || challenge)`.
    pub tag: [u8; 32],
}

/// Op 3 payload: the client's half of a PSK handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PskClientInfo {
    /// The cipher suite (1 in practice).
    pub cipher: CipherId,
    /// The client's configured identity, used to look up the PSK.
    pub client_id: ClientId,
    /// The client's per-process nonce.
    pub client_nonce: [u8; 32],
    /// The server nonce from op 2, echoed.
    pub server_nonce: [u8; 32],
    /// The client's current counter; its next session packet uses a larger one.
    pub counter: Counter,
    /// `BLAKE2b-256(key=PSK, authenticated_bytes())`.
    pub tag: [u8; 32],
}

/// Op 11 payload: the server nonce of an ECC handshake, sealed for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EccNonce {
    /// The random `crypto_box` nonce.
    pub box_nonce: [u8; 24],
    /// `crypto_box(server_nonce[32] || challenge[16])`: 16-byte tag then 48 bytes.
    pub sealed: [u8; 64],
}

/// Op 12 payload: the client's session keys and counter, sealed for the server.
///
/// Unlike op 3, the client id comes *before* the cipher byte, and it is in the clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EccClientInfo {
    /// The client's identity, used to look up its public key.
    pub client_id: ClientId,
    /// The cipher suite (2 in practice).
    pub cipher: CipherId,
    /// The random `crypto_box` nonce.
    pub box_nonce: [u8; 24],
    /// `crypto_box(server_nonce || c2s_key || s2c_key || u64 counter)`: 16-byte tag then 104
    /// bytes.
    pub sealed: [u8; 120],
}

impl NonceRequest {
    /// Exact payload length of op 1.
    pub const PAYLOAD_LEN: usize = 81;
}

impl PskNonce {
    /// Exact payload length of op 2.
    pub const PAYLOAD_LEN: usize = 80;
}

impl PskClientInfo {
    /// Exact payload length of op 3.
    pub const PAYLOAD_LEN: usize = 121;
    /// Length of [`authenticated_bytes`](Self::authenticated_bytes).
    pub const AUTHENTICATED_LEN: usize = 89;

    /// The bytes the op 3 tag covers: `cipher || client_id || client_nonce || server_nonce ||
    /// u64 LE counter`, i.e. the payload without its trailing tag.
    pub fn authenticated_bytes(&self) -> [u8; 89] {
        let mut out = [0u8; Self::AUTHENTICATED_LEN];
        let written = self.emit_authenticated(&mut Writer::new(&mut out));
        // The fields add up to exactly 89 bytes, so the writer cannot run out of room.
        debug_assert_eq!(written, Ok(()));
        out
    }

    fn emit_authenticated(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u8(self.cipher.into())?;
        w.put(&self.client_id.0)?;
        w.put(&self.client_nonce)?;
        w.put(&self.server_nonce)?;
        w.u64(self.counter.0)
    }
}

impl EccNonce {
    /// Exact payload length of op 11.
    pub const PAYLOAD_LEN: usize = 88;
}

impl EccClientInfo {
    /// Exact payload length of op 12.
    pub const PAYLOAD_LEN: usize = 161;
}

/// Payload length of ops 6 and 7.
const ID_PAYLOAD_LEN: usize = 16;

impl Setup {
    /// Parses a whole setup datagram, including magic and the zero counter.
    ///
    /// # Errors
    /// The header errors of [`Datagram::parse`](super::Datagram::parse); [`Error::NotSetup`]
    /// if the counter is not 0; [`Error::Truncated`] if the opcode is missing;
    /// [`Error::UnknownSetupOpcode`]; [`Error::BadLength`] if the payload length is not the
    /// opcode's exact length; [`Error::UnknownCipher`] for a cipher byte other than 1 or 2.
    pub fn parse(datagram: &[u8]) -> Result<Setup, Error> {
        let (counter, body) = parse_header(datagram)?;
        if !counter.is_setup() {
            return Err(Error::NotSetup);
        }
        Self::parse_body(body)
    }

    /// The setup opcode of this packet.
    pub fn opcode(&self) -> u8 {
        use setup_opcode::*;
        match self {
            Setup::NonceRequest(_) => NONCE_REQUEST,
            Setup::PskNonce(_) => PSK_NONCE,
            Setup::PskClientInfo(_) => PSK_CLIENT_INFO,
            Setup::UnrecognizedClient => UNRECOGNIZED_CLIENT,
            Setup::NewServerJoin => NEW_SERVER_JOIN,
            Setup::InvalidClientId { .. } => INVALID_CLIENT_ID,
            Setup::SessionEstablished { .. } => SESSION_ESTABLISHED,
            Setup::EccNonce(_) => ECC_NONCE,
            Setup::EccClientInfo(_) => ECC_CLIENT_INFO,
        }
    }

    /// Length of the whole datagram [`emit`](Self::emit) writes: header, opcode and payload.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + 1 + self.payload_len()
    }

    /// Writes the whole datagram to the front of `buf` and returns its length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`buffer_len`](Self::buffer_len);
    /// `buf` is then untouched.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        let mut w = Writer::new(buf);
        emit_header(&mut w, Counter::SETUP)?;
        w.u8(self.opcode())?;
        match self {
            Setup::NonceRequest(p) => {
                w.u8(p.cipher.into())?;
                w.put(&p.client_id.0)?;
                w.put(&p.challenge)?;
                w.put(&p.session_hint)?;
                w.put(&p.public_key)?;
            }
            Setup::PskNonce(p) => {
                w.put(&p.server_nonce)?;
                w.put(&p.challenge)?;
                w.put(&p.tag)?;
            }
            Setup::PskClientInfo(p) => {
                p.emit_authenticated(&mut w)?;
                w.put(&p.tag)?;
            }
            Setup::UnrecognizedClient | Setup::NewServerJoin => {}
            Setup::InvalidClientId { challenge: id }
            | Setup::SessionEstablished { session_id: id } => {
                w.put(id)?;
            }
            Setup::EccNonce(p) => {
                w.put(&p.box_nonce)?;
                w.put(&p.sealed)?;
            }
            Setup::EccClientInfo(p) => {
                w.put(&p.client_id.0)?;
                w.u8(p.cipher.into())?;
                w.put(&p.box_nonce)?;
                w.put(&p.sealed)?;
            }
        }
        Ok(w.written())
    }

    /// Parses opcode and payload, i.e. everything after the header.
    pub(super) fn parse_body(mut r: Reader<'_>) -> Result<Setup, Error> {
        use setup_opcode::*;
        let opcode = r.u8()?;
        let expected = match opcode {
            NONCE_REQUEST => NonceRequest::PAYLOAD_LEN,
            PSK_NONCE => PskNonce::PAYLOAD_LEN,
            PSK_CLIENT_INFO => PskClientInfo::PAYLOAD_LEN,
            UNRECOGNIZED_CLIENT | NEW_SERVER_JOIN => 0,
            INVALID_CLIENT_ID | SESSION_ESTABLISHED => ID_PAYLOAD_LEN,
            ECC_NONCE => EccNonce::PAYLOAD_LEN,
            ECC_CLIENT_INFO => EccClientInfo::PAYLOAD_LEN,
            other => return Err(Error::UnknownSetupOpcode(other)),
        };
        let actual = r.remaining();
        if actual != expected {
            return Err(Error::BadLength { expected, actual });
        }
        // From here on every read is within the exact length checked above.
        Ok(match opcode {
            NONCE_REQUEST => Setup::NonceRequest(NonceRequest {
                cipher: CipherId::try_from(r.u8()?)?,
                client_id: ClientId(r.array()?),
                challenge: r.array()?,
                session_hint: r.array()?,
                public_key: r.array()?,
            }),
            PSK_NONCE => Setup::PskNonce(PskNonce {
                server_nonce: r.array()?,
                challenge: r.array()?,
                tag: r.array()?,
            }),
            PSK_CLIENT_INFO => Setup::PskClientInfo(PskClientInfo {
                cipher: CipherId::try_from(r.u8()?)?,
                client_id: ClientId(r.array()?),
                client_nonce: r.array()?,
                server_nonce: r.array()?,
                counter: Counter(r.u64()?),
                tag: r.array()?,
            }),
            UNRECOGNIZED_CLIENT => Setup::UnrecognizedClient,
            NEW_SERVER_JOIN => Setup::NewServerJoin,
            INVALID_CLIENT_ID => Setup::InvalidClientId {
                challenge: r.array()?,
            },
            SESSION_ESTABLISHED => Setup::SessionEstablished {
                session_id: r.array()?,
            },
            ECC_NONCE => Setup::EccNonce(EccNonce {
                box_nonce: r.array()?,
                sealed: r.array()?,
            }),
            ECC_CLIENT_INFO => Setup::EccClientInfo(EccClientInfo {
                client_id: ClientId(r.array()?),
                cipher: CipherId::try_from(r.u8()?)?,
                box_nonce: r.array()?,
                sealed: r.array()?,
            }),
            // Already refused by the length match above; kept so the two matches cannot drift.
            other => return Err(Error::UnknownSetupOpcode(other)),
        })
    }

    fn payload_len(&self) -> usize {
        match self {
            Setup::NonceRequest(_) => NonceRequest::PAYLOAD_LEN,
            Setup::PskNonce(_) => PskNonce::PAYLOAD_LEN,
            Setup::PskClientInfo(_) => PskClientInfo::PAYLOAD_LEN,
            Setup::UnrecognizedClient | Setup::NewServerJoin => 0,
            Setup::InvalidClientId { .. } | Setup::SessionEstablished { .. } => ID_PAYLOAD_LEN,
            Setup::EccNonce(_) => EccNonce::PAYLOAD_LEN,
            Setup::EccClientInfo(_) => EccClientInfo::PAYLOAD_LEN,
        }
    }
}

#[cfg(test)]
#[path = "setup_tests.rs"]
mod tests;
