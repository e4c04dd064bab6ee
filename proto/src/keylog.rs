//! Session secrets for a key log: what a passive decoder (our trace decoder, the Wireshark
//! dissector) needs to read the packets of a session it only watched.
//!
//! An endpoint writes nothing by itself. With the key log on ([`crate::endpoint::Endpoint::set_key_log`],
//! off by default), every role queues one [`SessionSecret`] whenever it starts using new session
//! keys (a handshake, a suite 3 rekey, a new group key), and its driver drains the queue with
//! [`crate::endpoint::Endpoint::poll_secret`] and appends [`SessionSecret`]'s line form to a file.
//! The queue is bounded ([`MAX_QUEUED_SECRETS`]): a driver that never drains it loses the oldest
//! lines, never memory.
//!
//! # Line format (version 1)
//! One secret per line, fields separated by one space, hex in lower case, `#` starts a comment
//! line. Specified in `docs/DECODE.md` §2:
//!
//! ```text
//! PAVILLION_S1 <to-server key, 64 hex> <to-client key, 64 hex>
//! PAVILLION_S2 <to-server key> <to-client key>
//! PAVILLION_S3 <to-server index, 8 hex> <to-server key> <to-client index, 8 hex> <to-client key>
//! PAVILLION_S3_GROUP <sender id, 16 hex> <key id, 8 hex> <key, 64 hex>
//! ```
//!
//! Suite 3 indices are the receiver indices of the data packets (`docs/PROTOCOL.md` §12.2) that
//! each key opens, written as the `u32` value in big-endian hex (the number, not its wire bytes).
//!
//! A key log defeats the protocol's confidentiality for every session it lists: it exists for
//! debugging on a bench, and the adapters warn loudly when one is being written.

use alloc::collections::VecDeque;
use core::fmt;

/// At most this many secrets wait in an endpoint's queue; older ones are dropped first.
pub const MAX_QUEUED_SECRETS: usize = 64;

/// A suite whose session keys a line carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReferenceSuite {
    /// Suite 1 (pre-shared key).
    Psk,
    /// Suite 2 (X25519 `crypto_box`).
    Ecc,
}

/// The keys of one session, or of one suite 3 group sender, as a key log line carries them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SessionSecret {
    /// Suites 1 and 2: the XSalsa20-Poly1305 key of each direction.
    Reference {
        /// Which of the two suites.
        suite: ReferenceSuite,
        /// Seals client → server packets (C>S).
        to_server: [u8; 32],
        /// Seals server → client packets (S>C).
        to_client: [u8; 32],
    },
    /// Suite 3: the ChaCha20-Poly1305 key of each direction, with the receiver index that
    /// data packets under it carry.
    Noise {
        /// The receiver index of client → server data packets (the server's index).
        to_server_index: u32,
        /// Seals client → server data packets.
        to_server: [u8; 32],
        /// The receiver index of server → client data packets (the client's index).
        to_client_index: u32,
        /// Seals server → client data packets.
        to_client: [u8; 32],
    },
    /// Suite 3 multicast: one client's group key (op 32, `docs/PROTOCOL.md` §12.11).
    Group {
        /// The sender id group data packets carry.
        sender: u64,
        /// The key id group data packets carry.
        key_id: u32,
        /// The key.
        key: [u8; 32],
    },
}

impl fmt::Debug for SessionSecret {
    /// Never prints key bytes: a secret that reaches a log by `{:?}` must not leak.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionSecret::Reference { suite, .. } => f
                .debug_struct("Reference")
                .field("suite", suite)
                .finish_non_exhaustive(),
            SessionSecret::Noise {
                to_server_index,
                to_client_index,
                ..
            } => f
                .debug_struct("Noise")
                .field("to_server_index", &format_args!("{to_server_index:08x}"))
                .field("to_client_index", &format_args!("{to_client_index:08x}"))
                .finish_non_exhaustive(),
            SessionSecret::Group { sender, key_id, .. } => f
                .debug_struct("Group")
                .field("sender", &format_args!("{sender:016x}"))
                .field("key_id", key_id)
                .finish_non_exhaustive(),
        }
    }
}

impl fmt::Display for SessionSecret {
    /// The key log line, without a line terminator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionSecret::Reference {
                suite,
                to_server,
                to_client,
            } => {
                let label = match suite {
                    ReferenceSuite::Psk => LABEL_S1,
                    ReferenceSuite::Ecc => LABEL_S2,
                };
                write!(f, "{label} {} {}", Hex(to_server), Hex(to_client))
            }
            SessionSecret::Noise {
                to_server_index,
                to_server,
                to_client_index,
                to_client,
            } => write!(
                f,
                "{LABEL_S3} {to_server_index:08x} {} {to_client_index:08x} {}",
                Hex(to_server),
                Hex(to_client)
            ),
            SessionSecret::Group {
                sender,
                key_id,
                key,
            } => write!(f, "{LABEL_GROUP} {sender:016x} {key_id:08x} {}", Hex(key)),
        }
    }
}

/// Why a key log line could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyLogError {
    /// The first word is not one of the labels of the format.
    UnknownLabel,
    /// Too few or too many fields for the label.
    FieldCount {
        /// Fields the label needs.
        expected: usize,
        /// Fields the line has.
        found: usize,
    },
    /// A field is not hex of the right length.
    BadHex {
        /// Which field (0 is the label).
        field: usize,
    },
}

impl fmt::Display for KeyLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyLogError::UnknownLabel => f.write_str("unknown key log label"),
            KeyLogError::FieldCount { expected, found } => {
                write!(f, "expected {expected} fields, found {found}")
            }
            KeyLogError::BadHex { field } => {
                write!(f, "field {field} is not hex of the right length")
            }
        }
    }
}

impl core::error::Error for KeyLogError {}

const LABEL_S1: &str = "PAVILLION_S1";
const LABEL_S2: &str = "PAVILLION_S2";
const LABEL_S3: &str = "PAVILLION_S3";
const LABEL_GROUP: &str = "PAVILLION_S3_GROUP";

/// Lower-case hex of a key, without allocating (the crate is `no_std`).
struct Hex<'a>(&'a [u8; 32]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Exactly `2 * N` hex digits into `N` bytes.
fn hex_array<const N: usize>(word: &str, field: usize) -> Result<[u8; N], KeyLogError> {
    let bytes = word.as_bytes();
    if bytes.len() != 2 * N {
        return Err(KeyLogError::BadHex { field });
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            _ => return Err(KeyLogError::BadHex { field }),
        }
    }
    Ok(out)
}

fn hex_u32(word: &str, field: usize) -> Result<u32, KeyLogError> {
    hex_array::<4>(word, field).map(u32::from_be_bytes)
}

fn hex_u64(word: &str, field: usize) -> Result<u64, KeyLogError> {
    hex_array::<8>(word, field).map(u64::from_be_bytes)
}

impl SessionSecret {
    /// Reads one line of a key log: `Ok(None)` for a blank or comment line.
    pub fn parse_line(line: &str) -> Result<Option<Self>, KeyLogError> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        // At most six words are looked at, so a long line costs no memory.
        let mut words: [&str; 6] = [""; 6];
        let mut found = 0usize;
        for w in line.split(' ') {
            if let Some(slot) = words.get_mut(found) {
                *slot = w;
            }
            found = found.saturating_add(1);
        }
        let expected = match words[0] {
            LABEL_S1 | LABEL_S2 => 3,
            LABEL_S3 => 5,
            LABEL_GROUP => 4,
            _ => return Err(KeyLogError::UnknownLabel),
        };
        if found != expected {
            return Err(KeyLogError::FieldCount { expected, found });
        }
        let secret = match words[0] {
            LABEL_S1 | LABEL_S2 => SessionSecret::Reference {
                suite: if words[0] == LABEL_S1 {
                    ReferenceSuite::Psk
                } else {
                    ReferenceSuite::Ecc
                },
                to_server: hex_array(words[1], 1)?,
                to_client: hex_array(words[2], 2)?,
            },
            LABEL_S3 => SessionSecret::Noise {
                to_server_index: hex_u32(words[1], 1)?,
                to_server: hex_array(words[2], 2)?,
                to_client_index: hex_u32(words[3], 3)?,
                to_client: hex_array(words[4], 4)?,
            },
            _ => SessionSecret::Group {
                sender: hex_u64(words[1], 1)?,
                key_id: hex_u32(words[2], 2)?,
                key: hex_array(words[3], 3)?,
            },
        };
        Ok(Some(secret))
    }
}

/// An endpoint's queue of secrets for its driver: off (and empty) by default, bounded by
/// [`MAX_QUEUED_SECRETS`] with the oldest dropped first.
#[derive(Debug, Default)]
pub(crate) struct SecretQueue {
    on: bool,
    queue: VecDeque<SessionSecret>,
}

impl SecretQueue {
    /// Turns logging on or off; off forgets what was queued, so no key lingers in memory.
    pub(crate) fn set(&mut self, on: bool) {
        self.on = on;
        if !on {
            self.queue = VecDeque::new();
        }
    }

    /// Whether secrets are being kept.
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    /// Queues a secret while on; returns whether an older one had to make way.
    pub(crate) fn push(&mut self, secret: SessionSecret) -> bool {
        if !self.on {
            return false;
        }
        let full = self.queue.len() >= MAX_QUEUED_SECRETS;
        if full {
            self.queue.pop_front();
        }
        self.queue.push_back(secret);
        full
    }

    /// The oldest queued secret.
    pub(crate) fn pop(&mut self) -> Option<SessionSecret> {
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests;
