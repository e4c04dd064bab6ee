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
        todo!("H1: name the variant and the indices/ids only")
    }
}

impl fmt::Display for SessionSecret {
    /// The key log line, without a line terminator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!("H1")
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
        todo!("H1")
    }
}

impl SessionSecret {
    /// Reads one line of a key log: `Ok(None)` for a blank or comment line.
    pub fn parse_line(line: &str) -> Result<Option<Self>, KeyLogError> {
        todo!("H1")
    }
}
