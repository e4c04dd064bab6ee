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
mod tests {
    use super::super::{Datagram, MAGIC};
    use super::*;
    use alloc::vec::Vec;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector is valid hex")
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        <[u8; N]>::try_from(unhex(s)).expect("test field has the right length")
    }

    /// Parses `hex`, compares with `expected`, and checks that emitting gives the same bytes.
    fn check_vector(hex: &str, expected: &Setup) {
        let bytes = unhex(hex);
        let parsed = Setup::parse(&bytes).expect("vector parses");
        assert_eq!(&parsed, expected);
        assert_eq!(Datagram::parse(&bytes), Ok(Datagram::Setup(parsed.clone())));
        assert_eq!(parsed.buffer_len(), bytes.len());
        let mut out = alloc::vec![0u8; bytes.len()];
        assert_eq!(parsed.emit(&mut out), Ok(bytes.len()));
        assert_eq!(out, bytes);
    }

    // ---- computed vectors (crypto::test_vectors) ----

    const C_CLIENT_ID: &str = "43434343434343434343434343434343";
    const C_CLIENT_NONCE: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafa0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
    const C_SERVER_NONCE: &str = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
    const C_CHALLENGE: &str = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf";

    #[test]
    fn computed_op1_nonce_request() {
        check_vector(
            "506176696c6c696f6e53300000000000000000010143434343434343434343434343434343\
             c0c1c2c3c4c5c6c7c8c9cacbcccdcecf000000000000000000000000000000000000000000\
             000000000000000000000000000000000000000000000000000000",
            &Setup::NonceRequest(NonceRequest {
                cipher: CipherId::Psk,
                client_id: ClientId(arr(C_CLIENT_ID)),
                challenge: arr(C_CHALLENGE),
                session_hint: [0; 16],
                public_key: [0; 32],
            }),
        );
    }

    #[test]
    fn computed_op2_psk_nonce() {
        check_vector(
            "506176696c6c696f6e5330000000000000000002b0b1b2b3b4b5b6b7b8b9babbbcbdbebf\
             b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf5fcce90d\
             71cb5ad435308d5a43ebfa4255e2c3279482d041bd299b40b056fddd",
            &Setup::PskNonce(PskNonce {
                server_nonce: arr(C_SERVER_NONCE),
                challenge: arr(C_CHALLENGE),
                tag: arr("5fcce90d71cb5ad435308d5a43ebfa4255e2c3279482d041bd299b40b056fddd"),
            }),
        );
    }

    #[test]
    fn computed_op3_psk_client_info() {
        let hex = "506176696c6c696f6e533000000000000000000301434343434343434343434343434343\
                   43a0a1a2a3a4a5a6a7a8a9aaabacadaeafa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2\
                   b3b4b5b6b7b8b9babbbcbdbebfb0b1b2b3b4b5b6b7b8b9babbbcbdbebfe8030000000000\
                   009d5d2db180f7dad1f51f0b2daf646fd3cb886e1bc569fc849a67211f9e97c520";
        let info = PskClientInfo {
            cipher: CipherId::Psk,
            client_id: ClientId(arr(C_CLIENT_ID)),
            client_nonce: arr(C_CLIENT_NONCE),
            server_nonce: arr(C_SERVER_NONCE),
            counter: Counter(1000),
            tag: arr("9d5d2db180f7dad1f51f0b2daf646fd3cb886e1bc569fc849a67211f9e97c520"),
        };
        check_vector(hex, &Setup::PskClientInfo(info.clone()));
        // The tag input is the 89 payload bytes between the opcode and the tag.
        let bytes = unhex(hex);
        assert_eq!(&info.authenticated_bytes()[..], &bytes[20..109]);
    }

    #[test]
    fn computed_op11_ecc_nonce() {
        check_vector(
            "506176696c6c696f6e533000000000000000000b33333333333333333333333333333333\
             33333333333333335fa72c32d508f4b3ecb73cc099bee5b986ad7c2a0a5c5beb180ba198\
             254978fa4da6836945b36712d078346c23ae42e82a7a92301e369e840fcccfd504549ac2",
            &Setup::EccNonce(EccNonce {
                box_nonce: [0x33; 24],
                sealed: arr("5fa72c32d508f4b3ecb73cc099bee5b986ad7c2a0a5c5beb180ba198\
                     254978fa4da6836945b36712d078346c23ae42e82a7a92301e369e840fcccfd504549ac2"),
            }),
        );
    }

    #[test]
    fn computed_op12_ecc_client_info() {
        check_vector(
            "506176696c6c696f6e533000000000000000000c43434343434343434343434343434343\
             0266666666666666666666666666666666666666666666666617535af349ef534d814ada\
             a287ea3020b394f03efe285a2ae8e34f94d0461f1dabfdc01e10733d7241f34881a6b9e8\
             081e7d33586998a99934643e4700dc51b9feaee3b6e458d47636839341b9fcf25e0f63ed\
             05db971224eb0161e1c7f727687845e6be1d72f3c5ec1b50bc042faa2d3e79748ff9a4df\
             6a",
            &Setup::EccClientInfo(EccClientInfo {
                client_id: ClientId(arr(C_CLIENT_ID)),
                cipher: CipherId::Ecc,
                box_nonce: [0x66; 24],
                sealed: arr("17535af349ef534d814ada\
                     a287ea3020b394f03efe285a2ae8e34f94d0461f1dabfdc01e10733d7241f34881a6b9e8\
                     081e7d33586998a99934643e4700dc51b9feaee3b6e458d47636839341b9fcf25e0f63ed\
                     05db971224eb0161e1c7f727687845e6be1d72f3c5ec1b50bc042faa2d3e79748ff9a4df\
                     6a"),
            }),
        );
    }

    // ---- reference captures (crypto::test_vectors), every counter-0 packet ----

    const PSK_CID: &str = "000102030405060708090a0b0c0d0e0f";
    const ECC_CID: &str = "e0e1e2e3e4e5e6e7e8e9eaebecedeeef";

    #[test]
    fn capture_01_psk_nonce_request() {
        check_vector(
            "506176696c6c696f6e533000000000000000000101000102030405060708090a0b0c0d0e0f\
             77a28eaf3ce1c65fab37ebf2f1c8483f872b55b62410e28bc7d14a4afe08dd0f\
             0000000000000000000000000000000000000000000000000000000000000000",
            &Setup::NonceRequest(NonceRequest {
                cipher: CipherId::Psk,
                client_id: ClientId(arr(PSK_CID)),
                challenge: arr("77a28eaf3ce1c65fab37ebf2f1c8483f"),
                session_hint: arr("872b55b62410e28bc7d14a4afe08dd0f"),
                public_key: [0; 32],
            }),
        );
    }

    #[test]
    fn capture_02_psk_nonce() {
        check_vector(
            "506176696c6c696f6e53300000000000000000024d52471fd07a9716e5d3c949f46f9c6a\
             322d286fd118342be060b3e2944586b977a28eaf3ce1c65fab37ebf2f1c8483f5fe40531\
             d84fd7929b20ee9693d89ac1a04e004ea7b0c5cb02f06a5b5d100d6c",
            &Setup::PskNonce(PskNonce {
                server_nonce: arr(
                    "4d52471fd07a9716e5d3c949f46f9c6a322d286fd118342be060b3e2944586b9",
                ),
                challenge: arr("77a28eaf3ce1c65fab37ebf2f1c8483f"),
                tag: arr("5fe40531d84fd7929b20ee9693d89ac1a04e004ea7b0c5cb02f06a5b5d100d6c"),
            }),
        );
    }

    #[test]
    fn capture_03_psk_client_info() {
        check_vector(
            "506176696c6c696f6e533000000000000000000301000102030405060708090a0b0c0d0e0f\
             1a65ce225c37eea8aba872457df0380db84663bf288bdca90fb9dd986be7e46d\
             4d52471fd07a9716e5d3c949f46f9c6a322d286fd118342be060b3e2944586b9\
             65b1a90200000000\
             275b35894b8191f6a810fe1f86a47bac389d07bb105c35750e174f0e54b542ee",
            &Setup::PskClientInfo(PskClientInfo {
                cipher: CipherId::Psk,
                client_id: ClientId(arr(PSK_CID)),
                client_nonce: arr(
                    "1a65ce225c37eea8aba872457df0380db84663bf288bdca90fb9dd986be7e46d",
                ),
                server_nonce: arr(
                    "4d52471fd07a9716e5d3c949f46f9c6a322d286fd118342be060b3e2944586b9",
                ),
                counter: Counter(44675429),
                tag: arr("275b35894b8191f6a810fe1f86a47bac389d07bb105c35750e174f0e54b542ee"),
            }),
        );
    }

    #[test]
    fn capture_04_and_15_session_established() {
        check_vector(
            "506176696c6c696f6e5330000000000000000007a62aeda8fde4f1cdf0ac1140f1a9ffc3",
            &Setup::SessionEstablished {
                session_id: arr("a62aeda8fde4f1cdf0ac1140f1a9ffc3"),
            },
        );
        check_vector(
            "506176696c6c696f6e5330000000000000000007ab1ceec14034d1f007849176cfd8fe03",
            &Setup::SessionEstablished {
                session_id: arr("ab1ceec14034d1f007849176cfd8fe03"),
            },
        );
    }

    #[test]
    fn capture_12_ecc_nonce_request() {
        check_vector(
            "506176696c6c696f6e533000000000000000000102e0e1e2e3e4e5e6e7e8e9eaebecedeeef\
             379232ecce8b9be79d3b2d824474088ad2e998556313bc44e5be4856bda49209\
             dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44",
            &Setup::NonceRequest(NonceRequest {
                cipher: CipherId::Ecc,
                client_id: ClientId(arr(ECC_CID)),
                challenge: arr("379232ecce8b9be79d3b2d824474088a"),
                session_hint: arr("d2e998556313bc44e5be4856bda49209"),
                public_key: arr("dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44"),
            }),
        );
    }

    #[test]
    fn capture_13_ecc_nonce() {
        check_vector(
            "506176696c6c696f6e533000000000000000000b98e52ba8497f978407ef4e90d35358a4\
             f69bc3e8f3b9ddf0ec93114548c445708f681af020197c18675fdb0c98555c98d0ab18f2\
             2732dcd55c9ae3d5ef40a1ad94463a6e748fb7b4f8ac47415c595a29b3d0bbde68bfd908",
            &Setup::EccNonce(EccNonce {
                box_nonce: arr("98e52ba8497f978407ef4e90d35358a4f69bc3e8f3b9ddf0"),
                sealed: arr("ec93114548c445708f681af020197c18675fdb0c98555c98d0ab18f2\
                     2732dcd55c9ae3d5ef40a1ad94463a6e748fb7b4f8ac47415c595a29b3d0bbde68bfd908"),
            }),
        );
    }

    #[test]
    fn capture_14_ecc_client_info() {
        check_vector(
            "506176696c6c696f6e533000000000000000000ce0e1e2e3e4e5e6e7e8e9eaebecedeeef02\
             9e6ed7b5252bf4dc26d9b4448eed83eb4588aadf412181c5\
             4a585d58719c2cec61416f8ded1f7fb729087415defcc6131f707d6d866b6490cbfb3bc63d\
             33a53d5bba501d82a385da52b99ec9d71ce447aac1d1cc7f925aa483e784a78acbf7aabc37\
             95f29f97360f2ed40edf20d01b009e088fbd1db851b6efaf3266aedb446fb21d3eff3a8321\
             64d3bf6107f5ebb2f1",
            &Setup::EccClientInfo(EccClientInfo {
                client_id: ClientId(arr(ECC_CID)),
                cipher: CipherId::Ecc,
                box_nonce: arr("9e6ed7b5252bf4dc26d9b4448eed83eb4588aadf412181c5"),
                sealed: arr(
                    "4a585d58719c2cec61416f8ded1f7fb729087415defcc6131f707d6d866b6490cbfb3bc63d\
                     33a53d5bba501d82a385da52b99ec9d71ce447aac1d1cc7f925aa483e784a78acbf7aabc37\
                     95f29f97360f2ed40edf20d01b009e088fbd1db851b6efaf3266aedb446fb21d3eff3a8321\
                     64d3bf6107f5ebb2f1",
                ),
            }),
        );
    }

    #[test]
    fn empty_and_id_payloads() {
        // docs/PROTOCOL.md §2.4: op 4 is the 20 bytes `PavillionS0`, eight 00 bytes, then 04.
        let header = "506176696c6c696f6e53300000000000000000";
        assert_eq!(unhex(header).len(), HEADER_LEN);
        check_vector(&alloc::format!("{header}04"), &Setup::UnrecognizedClient);
        check_vector(&alloc::format!("{header}05"), &Setup::NewServerJoin);
        check_vector(
            &alloc::format!("{header}06{C_CHALLENGE}"),
            &Setup::InvalidClientId {
                challenge: arr(C_CHALLENGE),
            },
        );
    }

    /// A datagram with a setup header, `opcode` and a `len`-byte payload of `fill`.
    fn setup_datagram(opcode: u8, len: usize, fill: u8) -> Vec<u8> {
        let mut v = Vec::from(&MAGIC[..]);
        v.extend_from_slice(&[0; 8]);
        v.push(opcode);
        v.resize(v.len() + len, fill);
        v
    }

    #[test]
    fn every_opcode_requires_its_exact_length() {
        let table = [
            (1, 81),
            (2, 80),
            (3, 121),
            (4, 0),
            (5, 0),
            (6, 16),
            (7, 16),
            (11, 88),
            (12, 161),
        ];
        for (op, len) in table {
            // Fill with 1 so that cipher bytes are valid wherever they sit.
            let ok = Setup::parse(&setup_datagram(op, len, 1)).expect("exact length parses");
            assert_eq!(ok.opcode(), op);
            assert_eq!(ok.buffer_len(), 20 + len);
            for wrong in [len + 1, len.wrapping_sub(1), 0, 200] {
                if wrong == len || wrong > 1000 {
                    continue;
                }
                assert_eq!(
                    Setup::parse(&setup_datagram(op, wrong, 1)),
                    Err(Error::BadLength {
                        expected: len,
                        actual: wrong
                    }),
                    "op {op} with {wrong} bytes"
                );
            }
        }
    }

    #[test]
    fn unknown_opcodes_are_typed() {
        for op in [0u8, 8, 9, 10, 13, 255] {
            assert_eq!(
                Setup::parse(&setup_datagram(op, 0, 0)),
                Err(Error::UnknownSetupOpcode(op))
            );
            assert_eq!(
                Datagram::parse(&setup_datagram(op, 16, 0)),
                Err(Error::UnknownSetupOpcode(op))
            );
        }
    }

    #[test]
    fn unknown_cipher_is_typed() {
        // Op 1 and op 3 carry the cipher first; op 12 carries it after the client id.
        let mut v = setup_datagram(1, 81, 0);
        assert_eq!(Setup::parse(&v), Err(Error::UnknownCipher(0)));
        v[20] = 3;
        assert_eq!(Setup::parse(&v), Err(Error::UnknownCipher(3)));
        assert_eq!(
            Setup::parse(&setup_datagram(3, 121, 9)),
            Err(Error::UnknownCipher(9))
        );
        let mut v = setup_datagram(12, 161, 2);
        v[36] = 7;
        assert_eq!(Setup::parse(&v), Err(Error::UnknownCipher(7)));
        assert_eq!(CipherId::try_from(2), Ok(CipherId::Ecc));
        assert_eq!(u8::from(CipherId::Psk), 1);
    }

    #[test]
    fn header_errors_and_session_counter() {
        assert_eq!(
            Setup::parse(b"PavillionS0\0\0\0\0\0\0\0\0"),
            Err(Error::Truncated)
        );
        assert_eq!(Setup::parse(b"PavillionS0\0\0\0"), Err(Error::Truncated));
        assert_eq!(
            Setup::parse(b"Pavillion0\0\0\0\0\0\0\0\0\x01"),
            Err(Error::PlaintextMode)
        );
        assert_eq!(
            Setup::parse(b"XavillionS0\0\0\0\0\0\0\0\0\x04"),
            Err(Error::BadMagic)
        );
        let mut v = setup_datagram(4, 0, 0);
        v[11] = 1;
        assert_eq!(Setup::parse(&v), Err(Error::NotSetup));
    }

    #[test]
    fn emit_into_short_buffer_is_refused_untouched() {
        let s = Setup::SessionEstablished {
            session_id: [7; 16],
        };
        let mut buf = [0xee; 35];
        assert_eq!(s.emit(&mut buf), Err(Error::BufferTooSmall));
        assert_eq!(buf, [0xee; 35]);
        let mut buf = [0xee; 40];
        assert_eq!(s.emit(&mut buf), Ok(36));
        assert_eq!(&buf[36..], &[0xee; 4]);
    }

    // ---- properties ----

    impl Arbitrary for CipherId {
        fn arbitrary(g: &mut Gen) -> Self {
            if bool::arbitrary(g) {
                CipherId::Psk
            } else {
                CipherId::Ecc
            }
        }
    }

    impl Arbitrary for Setup {
        fn arbitrary(g: &mut Gen) -> Self {
            let id = |g: &mut Gen| ClientId(<[u8; 16]>::arbitrary(g));
            match u8::arbitrary(g) % 9 {
                0 => Setup::NonceRequest(NonceRequest {
                    cipher: CipherId::arbitrary(g),
                    client_id: id(g),
                    challenge: Arbitrary::arbitrary(g),
                    session_hint: Arbitrary::arbitrary(g),
                    public_key: Arbitrary::arbitrary(g),
                }),
                1 => Setup::PskNonce(PskNonce {
                    server_nonce: Arbitrary::arbitrary(g),
                    challenge: Arbitrary::arbitrary(g),
                    tag: Arbitrary::arbitrary(g),
                }),
                2 => Setup::PskClientInfo(PskClientInfo {
                    cipher: CipherId::arbitrary(g),
                    client_id: id(g),
                    client_nonce: Arbitrary::arbitrary(g),
                    server_nonce: Arbitrary::arbitrary(g),
                    counter: Counter(u64::arbitrary(g)),
                    tag: Arbitrary::arbitrary(g),
                }),
                3 => Setup::UnrecognizedClient,
                4 => Setup::NewServerJoin,
                5 => Setup::InvalidClientId {
                    challenge: Arbitrary::arbitrary(g),
                },
                6 => Setup::SessionEstablished {
                    session_id: Arbitrary::arbitrary(g),
                },
                7 => Setup::EccNonce(EccNonce {
                    box_nonce: Arbitrary::arbitrary(g),
                    sealed: Arbitrary::arbitrary(g),
                }),
                _ => Setup::EccClientInfo(EccClientInfo {
                    client_id: id(g),
                    cipher: CipherId::arbitrary(g),
                    box_nonce: Arbitrary::arbitrary(g),
                    sealed: Arbitrary::arbitrary(g),
                }),
            }
        }
    }

    #[test]
    fn prop_emit_parse_is_identity() {
        fn prop(s: Setup) -> bool {
            let mut buf = [0u8; 200];
            let Ok(n) = s.emit(&mut buf) else {
                return false;
            };
            n == s.buffer_len() && buf.get(..n).map(Setup::parse) == Some(Ok(s))
        }
        QuickCheck::new()
            .tests(1000)
            .quickcheck(prop as fn(Setup) -> bool);
    }

    #[test]
    fn prop_short_buffer_is_refused() {
        fn prop(s: Setup, cut: usize) -> bool {
            let short = cut % s.buffer_len();
            let mut buf = alloc::vec![0u8; short];
            s.emit(&mut buf) == Err(Error::BufferTooSmall)
        }
        QuickCheck::new()
            .tests(1000)
            .quickcheck(prop as fn(Setup, usize) -> bool);
    }

    #[test]
    fn prop_parse_never_panics_on_known_opcodes() {
        fn prop(op: u8, body: Vec<u8>, exact: bool, fill: u8) -> bool {
            let ops = [1, 2, 3, 4, 5, 6, 7, 11, 12];
            let lens = [81, 80, 121, 0, 0, 16, 16, 88, 161];
            let i = usize::from(op) % ops.len();
            let mut v = setup_datagram(ops[i], 0, 0);
            v.extend_from_slice(&body);
            if exact {
                v.resize(20 + lens[i], fill);
            }
            let _ = Setup::parse(&v);
            true
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(u8, Vec<u8>, bool, u8) -> bool);
    }
}
