//! Parsing keys, ids and addresses as the reference accepts them, and making fresh ones.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use base64::Engine as _;
use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;

use crate::DEFAULT_PORT;

/// A key, id or address given as text could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The text decoded to the wrong number of bytes.
    #[error("{what} must be {expected} bytes, got {got}")]
    BadLength {
        /// What was being parsed.
        what: &'static str,
        /// The required length in bytes.
        expected: usize,
        /// The length found.
        got: usize,
    },
    /// A hex form with something other than hex digits.
    #[error("{what} is not valid hex")]
    BadHex {
        /// What was being parsed.
        what: &'static str,
    },
    /// Neither 64 hex characters nor base64 of 32 bytes.
    #[error("PSK must be 32 bytes: 64 hex characters or base64 of 32 bytes")]
    BadPsk,
    /// An address that neither parses nor resolves.
    #[error("cannot resolve address {0:?}")]
    BadAddress(String),
}

/// Parses a PSK given as text, by the reference's `preprocessKey` rules: exactly 64 characters
/// are hex; anything else is base64 that must decode to 32 bytes. Characters outside the base64
/// alphabet are skipped, as Python's `base64.b64decode` does.
///
/// # Errors
/// [`ParseError::BadHex`] for 64 characters that are not hex, [`ParseError::BadPsk`] for
/// anything else that is not base64 of exactly 32 bytes.
///
/// # Examples
/// ```
/// use pavillion_io::keys::parse_psk;
/// let hex = parse_psk(&"07".repeat(32)).unwrap();
/// let b64 = parse_psk("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").unwrap();
/// assert_eq!(hex, b64);
/// assert!(parse_psk("too short").is_err());
/// ```
pub fn parse_psk(text: &str) -> Result<Psk, ParseError> {
    if text.chars().count() == 64 {
        return Psk::from_hex(text).map_err(|_| ParseError::BadHex { what: "PSK" });
    }
    let alphabet: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(alphabet)
        .map_err(|_| ParseError::BadPsk)?;
    let raw: [u8; 32] = bytes.try_into().map_err(|_| ParseError::BadPsk)?;
    Ok(Psk::from_bytes(raw))
}

/// Reads a PSK from a file's bytes: exactly 32 bytes are the raw key (the reference's `bytes`
/// form); anything else is text for [`parse_psk`], surrounding whitespace removed.
///
/// # Errors
/// As [`parse_psk`].
///
/// # Examples
/// ```
/// use pavillion_io::keys::psk_from_file_bytes;
/// assert!(psk_from_file_bytes(&[9; 32]).is_ok());
/// assert!(psk_from_file_bytes(format!("{}\n", "09".repeat(32)).as_bytes()).is_ok());
/// ```
pub fn psk_from_file_bytes(bytes: &[u8]) -> Result<Psk, ParseError> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return Ok(Psk::from_bytes(raw));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ParseError::BadPsk)?;
    parse_psk(text.trim())
}

/// Parses 32 bytes in hex (an X25519 key).
///
/// # Errors
/// [`ParseError::BadHex`] or [`ParseError::BadLength`].
///
/// # Examples
/// ```
/// let k = pavillion_io::keys::parse_key32(&"ab".repeat(32), "public key").unwrap();
/// assert_eq!(k, [0xab; 32]);
/// ```
pub fn parse_key32(text: &str, what: &'static str) -> Result<[u8; 32], ParseError> {
    let bytes = hex::decode(text.trim()).map_err(|_| ParseError::BadHex { what })?;
    let got = bytes.len();
    bytes.try_into().map_err(|_| ParseError::BadLength {
        what,
        expected: 32,
        got,
    })
}

/// Parses an X25519 public key from 64 hex characters.
///
/// # Errors
/// As [`parse_key32`].
///
/// # Examples
/// ```
/// assert!(pavillion_io::keys::parse_public_key(&"01".repeat(32)).is_ok());
/// ```
pub fn parse_public_key(text: &str) -> Result<PublicKey, ParseError> {
    parse_key32(text, "public key").map(PublicKey::from)
}

/// Parses an X25519 secret key from 64 hex characters and derives its key pair.
///
/// # Errors
/// As [`parse_key32`].
///
/// # Examples
/// ```
/// let pair = pavillion_io::keys::parse_secret_key(&"01".repeat(32)).unwrap();
/// println!("{:?}", pair.public());
/// ```
pub fn parse_secret_key(text: &str) -> Result<KeyPair, ParseError> {
    parse_key32(text, "secret key").map(KeyPair::from_secret_bytes)
}

/// Parses a 16-byte client id: 32 hex characters, or text of exactly 16 bytes (the reference's
/// tests use `cid2cid2cid2cid2`).
///
/// # Errors
/// [`ParseError::BadLength`] for anything else.
///
/// # Examples
/// ```
/// use pavillion_io::keys::parse_client_id;
/// assert_eq!(parse_client_id("cid2cid2cid2cid2").unwrap().0, *b"cid2cid2cid2cid2");
/// assert_eq!(parse_client_id(&"00".repeat(16)).unwrap().0, [0; 16]);
/// ```
pub fn parse_client_id(text: &str) -> Result<ClientId, ParseError> {
    if text.len() == 32 {
        if let Ok(bytes) = hex::decode(text) {
            if let Ok(id) = <[u8; 16]>::try_from(bytes) {
                return Ok(ClientId(id));
            }
        }
    }
    let got = text.len();
    <[u8; 16]>::try_from(text.as_bytes())
        .map(ClientId)
        .map_err(|_| ParseError::BadLength {
            what: "client id (16 bytes of text, or 32 hex characters)",
            expected: 16,
            got,
        })
}

/// Resolves `text` to one socket address; a missing port means [`DEFAULT_PORT`].
///
/// # Errors
/// [`ParseError::BadAddress`] if it neither parses nor resolves.
///
/// # Examples
/// ```
/// use pavillion_io::keys::parse_addr;
/// assert_eq!(parse_addr("127.0.0.1").unwrap().port(), 1783);
/// assert_eq!(parse_addr("[::1]:5000").unwrap().port(), 5000);
/// assert!(parse_addr("not an address:xyz").is_err());
/// ```
pub fn parse_addr(text: &str) -> Result<SocketAddr, ParseError> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let bad = || ParseError::BadAddress(text.into());
    let resolved = if text.contains(':') {
        text.to_socket_addrs()
    } else {
        (text, DEFAULT_PORT).to_socket_addrs()
    };
    resolved.map_err(|_| bad())?.next().ok_or_else(bad)
}

/// 32 bytes of OS randomness.
///
/// # Panics
/// If the OS has no randomness to give, which leaves no safe way to make keys.
///
/// # Examples
/// ```
/// assert_ne!(pavillion_io::keys::random32(), [0; 32]);
/// ```
pub fn random32() -> [u8; 32] {
    let mut seed = [0u8; 32];
    // NOTE(unwrap): without OS entropy no key or seed can be made safely; failing loudly is
    // the only correct answer.
    getrandom::fill(&mut seed).expect("OS randomness unavailable");
    seed
}

/// A fresh PSK from OS randomness.
///
/// # Examples
/// ```
/// let psk = pavillion_io::keys::generate_psk();
/// ```
pub fn generate_psk() -> Psk {
    Psk::from_bytes(random32())
}

/// A fresh X25519 key pair from OS randomness.
///
/// # Examples
/// ```
/// let pair = pavillion_io::keys::generate_keypair();
/// assert_eq!(pair.public().as_bytes().len(), 32);
/// ```
pub fn generate_keypair() -> KeyPair {
    KeyPair::from_secret_bytes(random32())
}

/// The standard base64 form of a PSK, which [`parse_psk`] reads back.
///
/// # Examples
/// ```
/// use pavillion_io::keys::{parse_psk, psk_base64};
/// let psk = pavillion_io::keys::generate_psk();
/// assert_eq!(parse_psk(&psk_base64(&psk)).unwrap(), psk);
/// ```
pub fn psk_base64(psk: &Psk) -> String {
    base64::engine::general_purpose::STANDARD.encode(psk.danger_as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_forms_match_the_reference() {
        let raw = [0x5au8; 32];
        let from_hex = parse_psk(&hex::encode(raw)).unwrap();
        let from_upper_hex = parse_psk(&hex::encode_upper(raw)).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        let from_b64 = parse_psk(&b64).unwrap();
        // Python's non-validating b64decode skips characters outside the alphabet.
        let from_b64_spaced = parse_psk(&format!(" {}\n", &b64)).unwrap();
        assert_eq!(from_hex, Psk::from_bytes(raw));
        assert_eq!(from_upper_hex, from_hex);
        assert_eq!(from_b64, from_hex);
        assert_eq!(from_b64_spaced, from_hex);
        assert_eq!(
            parse_psk(&"zz".repeat(32)),
            Err(ParseError::BadHex { what: "PSK" })
        );
        // 64 characters are always hex, even when they are also valid base64 of 48 bytes.
        assert!(parse_psk(&"A".repeat(64)).is_ok());
        assert_eq!(parse_psk(&"A".repeat(63)), Err(ParseError::BadPsk));
        // Base64 of 31 or 33 bytes is refused.
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 31]);
        assert_eq!(parse_psk(&short), Err(ParseError::BadPsk));
        assert_eq!(parse_psk(""), Err(ParseError::BadPsk));
    }

    #[test]
    fn ids_keys_and_addresses() {
        assert!(parse_client_id("short").is_err());
        assert!(parse_key32("abcd", "k").is_err());
        assert!(parse_key32(&"g".repeat(64), "k").is_err());
        assert_eq!(parse_addr("localhost:7").unwrap().port(), 7);
        assert_eq!(parse_addr("::1").unwrap().port(), DEFAULT_PORT);
    }
}
