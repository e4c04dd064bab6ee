//! A passive decoder of Pavillion datagrams: what each datagram of a capture or a simulated run
//! is, down to the application operation inside when its session's keys are known.
//!
//! The simulator's decoded trace, the sequence charts drawn from it and `pav`'s own tooling use
//! this; the Wireshark dissector (`wireshark/pavillion.lua`) implements the same names by hand,
//! and `docs/DECODE.md` §1 lists them. It is pure and never panics on any input (a datagram that
//! does not parse is a [`Layer::Garbage`] dissection naming the parse error).
//!
//! Keys come from [`SessionSecret`]s (a key log, or the endpoints of a simulation directly).
//! Suites 1 and 2 name no key in the header, so a session packet is tried under the key that
//! last opened a packet between the same two addresses, then under every key of its suite; a
//! key counts only if the Poly1305 tag verifies. Suite 3 packets name their key by receiver
//! index (group packets by sender and key id).
//!
//! # Example
//! ```
//! use pavillion_proto::dissect::{Dissector, Layer};
//! let mut d = Dissector::new();
//! let from = "127.0.0.1:40000".parse().unwrap();
//! let to = "127.0.0.1:1783".parse().unwrap();
//! let x = d.dissect(from, to, b"hello");
//! assert_eq!(x.layer, Layer::Garbage);
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::keylog::SessionSecret;

/// At most this many address pairs remember which key last opened their packets.
pub const MAX_CONVERSATIONS: usize = 4096;

/// At most this many secrets are held; further ones are ignored (and counted).
pub const MAX_SECRETS: usize = 1 << 16;

/// The suite a datagram belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SuiteNumber {
    /// Suite 1, pre-shared key.
    Psk,
    /// Suite 2, X25519 `crypto_box`.
    Ecc,
    /// Suite 3, Noise.
    Noise,
}

impl SuiteNumber {
    /// 1, 2 or 3, as the spec numbers them.
    pub const fn number(self) -> u8 {
        match self {
            SuiteNumber::Psk => 1,
            SuiteNumber::Ecc => 2,
            SuiteNumber::Noise => 3,
        }
    }
}

/// What layer of the protocol a datagram is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Does not parse; [`Dissection::error`] says why.
    Garbage,
    /// A suite 1 or 2 setup packet (counter 0, cleartext opcode).
    Setup,
    /// A suite 3 handshake packet: initiation, response, cookie reply, unknown index or
    /// unknown sender (types 1, 2, 3, 5, 7).
    Handshake,
    /// An encrypted session packet (suites 1 and 2 counter ≠ 0, suite 3 type 4).
    Session,
    /// A suite 3 group data packet (type 6).
    Group,
}

impl Layer {
    /// A short stable name (`garbage`, `setup`, `handshake`, `session`, `group`).
    pub const fn name(self) -> &'static str {
        match self {
            Layer::Garbage => "garbage",
            Layer::Setup => "setup",
            Layer::Handshake => "handshake",
            Layer::Session => "session",
            Layer::Group => "group",
        }
    }
}

/// Which way a decrypted session packet went, as its key tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server.
    ToServer,
    /// Server to client.
    ToClient,
}

/// Whether the inside of an encrypted packet could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decryption {
    /// Nothing is encrypted at this layer (setup packets in the clear, garbage).
    Clear,
    /// Encrypted, and no known key opens it.
    NoKey,
    /// Opened (the tag verified) under a known key of this direction.
    Opened(Direction),
}

/// A typed field value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An unsigned integer (counters, ids, lengths, function numbers, statuses).
    U64(u64),
    /// A signed integer (clock values).
    I64(i64),
    /// UTF-8 text (targets, names, register names).
    Text(String),
    /// Raw bytes (payload previews, nonces); shown as hex.
    Bytes(Vec<u8>),
}

/// One named field of a dissection. Names are `snake_case` and listed in `docs/DECODE.md` §1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's name.
    pub name: &'static str,
    /// Its value.
    pub value: Value,
}

/// What one datagram is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dissection {
    /// The suite, when the framing tells it (`None` for garbage, and for a suite 1/2 session
    /// packet that no key opened: the two suites share the framing).
    pub suite: Option<SuiteNumber>,
    /// The layer.
    pub layer: Layer,
    /// The header counter (suites 1/2 every packet; suite 3 data and group data).
    pub counter: Option<u64>,
    /// Setup opcode, suite 3 packet type, or (for an opened session packet) application opcode.
    pub op: Option<u8>,
    /// The stable `snake_case` name of `op` at this layer (`nonce_request`, `initiation`,
    /// `reliable_message`, `ack`, `rpc_call`, ...); `encrypted` for an unopened session packet,
    /// `garbage` for garbage.
    pub name: &'static str,
    /// Whether the inside was read.
    pub decryption: Decryption,
    /// The decoded fields, in wire order.
    pub fields: Vec<Field>,
    /// For garbage, or for an opened plaintext that does not parse: the parse error's text.
    pub error: Option<String>,
}

impl Dissection {
    /// The value of the first field called `name`.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|f| f.name == name).map(|f| &f.value)
    }

    /// A short label for a chart arrow: the name with its most telling fields, for example
    /// `reliable_message #7 sensors/temp`, `ack 7`, `rpc_call #9 fn=401`, `rpc_response #9 ok`,
    /// `segment 3/12`, `initiation idx=1a2b3c4d`, `encrypted ctr=12`.
    pub fn label(&self) -> String {
        todo!("H1")
    }
}

/// Statistics of a [`Dissector`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DissectorStats {
    /// Session and group packets opened.
    pub opened: u64,
    /// Session and group packets no key opened.
    pub unopened: u64,
    /// Secrets ignored because [`MAX_SECRETS`] were already held.
    pub secrets_ignored: u64,
}

/// Decodes datagrams with the secrets it was given.
#[derive(Debug, Default)]
pub struct Dissector {
    _todo: (),
}

impl Dissector {
    /// A dissector with no keys: session packets stay [`Decryption::NoKey`].
    pub fn new() -> Self {
        todo!("H1")
    }

    /// Adds one secret (duplicates are ignored).
    pub fn add_secret(&mut self, secret: SessionSecret) {
        todo!("H1")
    }

    /// How many distinct secrets it holds.
    pub fn secret_count(&self) -> usize {
        todo!("H1")
    }

    /// What it did so far.
    pub fn stats(&self) -> DissectorStats {
        todo!("H1")
    }

    /// Decodes one datagram sent from `from` to `to`. The addresses only pick the key to try
    /// first for suites 1 and 2; a wrong guess costs time, never a wrong answer.
    pub fn dissect(&mut self, from: SocketAddr, to: SocketAddr, datagram: &[u8]) -> Dissection {
        todo!("H1")
    }
}
