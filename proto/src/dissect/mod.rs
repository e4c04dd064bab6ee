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

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::crypto::noise::ChaChaKey;
use crate::crypto::{SecretBoxKey, SessionCipher};
use crate::id::Counter;
use crate::keylog::{ReferenceSuite, SessionSecret};
use crate::wire::noise::{NoisePacket, DATA_HEADER_LEN, GROUP_HEADER_LEN};
use crate::wire::{App, Datagram, SessionPacket, Setup, HEADER_LEN, MAX_DATAGRAM};

mod app;
mod label;
mod packets;
#[cfg(test)]
mod tests;

pub use app::{op_name, PAYLOAD_PREVIEW};

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
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
    }

    /// A short label for a chart arrow: the name with its most telling fields, for example
    /// `reliable_message #7 sensors/temp`, `ack 7`, `rpc_call #9 fn=401`, `rpc_response #9 ok`,
    /// `segment 2048/9000` (byte offset / total), `initiation idx=1a2b3c4d`, `encrypted ctr=12`.
    ///
    /// The full list is `docs/DECODE.md` §1.5.
    pub fn label(&self) -> String {
        label::label(self)
    }

    fn garbage(error: &crate::wire::Error) -> Dissection {
        Dissection {
            suite: None,
            layer: Layer::Garbage,
            counter: None,
            op: None,
            name: "garbage",
            decryption: Decryption::Clear,
            fields: Vec::new(),
            error: Some(error.to_string()),
        }
    }

    /// A sealed packet before any key is tried: `encrypted`, with the header's fields.
    fn sealed(suite: Option<SuiteNumber>, layer: Layer, counter: Counter, op: Option<u8>) -> Self {
        Dissection {
            suite,
            layer,
            counter: Some(counter.0),
            op,
            name: "encrypted",
            decryption: Decryption::NoKey,
            fields: Vec::new(),
            error: None,
        }
    }

    /// Fills in what an opened plaintext says.
    fn opened(&mut self, direction: Direction, plaintext: &[u8]) {
        self.decryption = Decryption::Opened(direction);
        self.op = plaintext.first().copied();
        if let Some(r) = app::batched(plaintext) {
            match r {
                Ok((name, fields)) => {
                    self.name = name;
                    self.fields.extend(fields);
                }
                Err(e) => {
                    self.name = self.op.map_or("unknown_op", op_name);
                    self.error = Some(e.to_string());
                }
            }
            return;
        }
        match App::parse(plaintext) {
            Ok(app) => {
                self.name = op_name(app.opcode());
                self.fields.extend(app::fields(&app));
            }
            Err(e) => {
                self.name = self.op.map_or("unknown_op", op_name);
                self.error = Some(e.to_string());
            }
        }
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

/// A suite 1/2 key of one direction.
#[derive(Debug)]
struct ReferenceKey {
    suite: ReferenceSuite,
    direction: Direction,
    key: SecretBoxKey,
}

/// Decodes datagrams with the secrets it was given.
#[derive(Debug, Default)]
pub struct Dissector {
    /// The line of every secret held, to ignore duplicates (endpoints log the same keys
    /// more than once: both ends, and a client's fixed C>S key on every re-handshake).
    held: BTreeSet<String>,
    /// Suites 1 and 2: every key of either direction, oldest first.
    reference: Vec<ReferenceKey>,
    /// The keys in `reference`, by (suite 2?, to client?) and bytes, to hold each once.
    reference_held: BTreeSet<((bool, bool), [u8; 32])>,
    /// Suite 3: the keys of each receiver index, newest last.
    noise: BTreeMap<u32, Vec<(Direction, ChaChaKey)>>,
    /// Suite 3 multicast: a group key by (sender, key id).
    groups: BTreeMap<(u64, u32), ChaChaKey>,
    /// Which `reference` key last opened a packet from one address to another.
    conversations: BTreeMap<(SocketAddr, SocketAddr), usize>,
    stats: DissectorStats,
    /// Decryption scratch: the ciphertext is opened in place in a copy.
    scratch: Vec<u8>,
}

impl Dissector {
    /// A dissector with no keys: session packets stay [`Decryption::NoKey`].
    pub fn new() -> Self {
        Dissector::default()
    }

    /// Adds one secret (duplicates are ignored).
    pub fn add_secret(&mut self, secret: SessionSecret) {
        let line = secret.to_string();
        if self.held.contains(&line) {
            return;
        }
        if self.held.len() >= MAX_SECRETS {
            self.stats.secrets_ignored += 1;
            return;
        }
        self.held.insert(line);
        match secret {
            SessionSecret::Reference {
                suite,
                to_server,
                to_client,
            } => {
                for (direction, key) in [
                    (Direction::ToServer, to_server),
                    (Direction::ToClient, to_client),
                ] {
                    // A client's C>S key repeats across its sessions: hold it once.
                    let tag = (
                        suite == ReferenceSuite::Ecc,
                        direction == Direction::ToClient,
                    );
                    if self.reference_held.insert((tag, key)) {
                        self.reference.push(ReferenceKey {
                            suite,
                            direction,
                            key: SecretBoxKey::from_bytes(key),
                        });
                    }
                }
            }
            SessionSecret::Noise {
                to_server_index,
                to_server,
                to_client_index,
                to_client,
            } => {
                for (index, direction, key) in [
                    (to_server_index, Direction::ToServer, to_server),
                    (to_client_index, Direction::ToClient, to_client),
                ] {
                    let keys = self.noise.entry(index).or_default();
                    keys.push((direction, ChaChaKey::from_bytes(key)));
                }
            }
            SessionSecret::Group {
                sender,
                key_id,
                key,
            } => {
                self.groups
                    .insert((sender, key_id), ChaChaKey::from_bytes(key));
            }
        }
    }

    /// How many distinct secrets it holds.
    pub fn secret_count(&self) -> usize {
        self.held.len()
    }

    /// What it did so far.
    pub fn stats(&self) -> DissectorStats {
        self.stats
    }

    /// Decodes one datagram sent from `from` to `to`. The addresses only pick the key to try
    /// first for suites 1 and 2; a wrong guess costs time, never a wrong answer.
    pub fn dissect(&mut self, from: SocketAddr, to: SocketAddr, datagram: &[u8]) -> Dissection {
        let parsed = match Datagram::parse(datagram) {
            Ok(p) => p,
            Err(e) => return Dissection::garbage(&e),
        };
        let d = match parsed {
            Datagram::Setup(s) => setup(&s),
            Datagram::Session(p) => self.reference_session(from, to, datagram, &p),
            Datagram::Noise(n) => self.noise(datagram, &n),
        };
        if matches!(d.layer, Layer::Session | Layer::Group) {
            match d.decryption {
                Decryption::Opened(_) => self.stats.opened += 1,
                _ => self.stats.unopened += 1,
            }
        }
        d
    }

    /// Opens `packet` under `key` into the scratch buffer; the plaintext's length on success.
    fn open(
        scratch: &mut Vec<u8>,
        key: &impl SessionCipher,
        header: &[u8],
        packet: &SessionPacket<'_>,
    ) -> Option<usize> {
        let n = packet.ciphertext.len();
        if n > MAX_DATAGRAM {
            return None;
        }
        scratch.clear();
        scratch.extend_from_slice(packet.ciphertext);
        key.open_in_place(packet.counter, header, packet.tag, scratch)
            .ok()
            .map(|()| n)
    }

    fn reference_session(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        datagram: &[u8],
        packet: &SessionPacket<'_>,
    ) -> Dissection {
        let mut d = Dissection::sealed(None, Layer::Session, packet.counter, None);
        let header = datagram.get(..HEADER_LEN).unwrap_or_default();
        let cached = self.conversations.get(&(from, to)).copied();
        let order = cached
            .into_iter()
            .chain((0..self.reference.len()).filter(|&i| Some(i) != cached));
        let mut scratch = core::mem::take(&mut self.scratch);
        let mut found = None;
        for i in order {
            let Some(k) = self.reference.get(i) else {
                continue;
            };
            if let Some(n) = Self::open(&mut scratch, &k.key, header, packet) {
                found = Some((i, n));
                break;
            }
        }
        if let Some((i, n)) = found {
            let k = &self.reference[i];
            d.suite = Some(match k.suite {
                ReferenceSuite::Psk => SuiteNumber::Psk,
                ReferenceSuite::Ecc => SuiteNumber::Ecc,
            });
            d.opened(k.direction, &scratch[..n]);
            if cached != Some(i) {
                if self.conversations.len() >= MAX_CONVERSATIONS {
                    self.conversations.clear();
                }
                self.conversations.insert((from, to), i);
            }
        }
        self.scratch = scratch;
        d
    }

    fn noise(&mut self, datagram: &[u8], n: &NoisePacket<'_>) -> Dissection {
        let handshake = |op: u8, name: &'static str, fields: Vec<Field>| Dissection {
            suite: Some(SuiteNumber::Noise),
            layer: Layer::Handshake,
            counter: None,
            op: Some(op),
            name,
            decryption: Decryption::Clear,
            fields,
            error: None,
        };
        match n {
            NoisePacket::Initiation(i) => {
                let mut fields = alloc::vec![
                    packets::text("mode", packets::mode_name(i.mode)),
                    packets::number("sender_index", u64::from(i.sender.0)),
                    packets::bytes("cookie", &i.cookie),
                ];
                if let Some(id) = i.client_id {
                    fields.push(packets::bytes("client_id", &id.0));
                }
                fields.push(packets::number("message_len", i.message.len() as u64));
                handshake(1, "initiation", fields)
            }
            NoisePacket::Response(r) => handshake(
                2,
                "response",
                alloc::vec![
                    packets::number("sender_index", u64::from(r.sender.0)),
                    packets::number("receiver_index", u64::from(r.receiver.0)),
                    packets::number("message_len", r.message.len() as u64),
                ],
            ),
            NoisePacket::CookieReply { receiver, cookie } => handshake(
                3,
                "cookie_reply",
                alloc::vec![
                    packets::number("receiver_index", u64::from(receiver.0)),
                    packets::bytes("cookie", cookie),
                ],
            ),
            NoisePacket::UnknownIndex { receiver } => handshake(
                5,
                "unknown_index",
                alloc::vec![packets::number("receiver_index", u64::from(receiver.0))],
            ),
            NoisePacket::UnknownSender { sender, key } => handshake(
                7,
                "unknown_sender",
                alloc::vec![
                    packets::number("sender", sender.0),
                    packets::number("key_id", u64::from(key.0)),
                ],
            ),
            NoisePacket::Data { receiver, packet } => {
                let suite = Some(SuiteNumber::Noise);
                let mut d = Dissection::sealed(suite, Layer::Session, packet.counter, Some(4));
                d.fields
                    .push(packets::number("index", u64::from(receiver.0)));
                let header = datagram.get(..DATA_HEADER_LEN).unwrap_or_default();
                let mut scratch = core::mem::take(&mut self.scratch);
                let keys = self.noise.get(&receiver.0).map(Vec::as_slice);
                let opened = keys
                    .unwrap_or_default()
                    .iter()
                    .rev()
                    .find_map(|(dir, key)| {
                        Self::open(&mut scratch, key, header, packet).map(|n| (*dir, n))
                    });
                if let Some((dir, n)) = opened {
                    d.opened(dir, &scratch[..n]);
                }
                self.scratch = scratch;
                d
            }
            NoisePacket::GroupData {
                sender,
                key,
                packet,
            } => {
                let suite = Some(SuiteNumber::Noise);
                let mut d = Dissection::sealed(suite, Layer::Group, packet.counter, Some(6));
                d.fields.push(packets::number("sender", sender.0));
                d.fields.push(packets::number("key_id", u64::from(key.0)));
                let header = datagram.get(..GROUP_HEADER_LEN).unwrap_or_default();
                let mut scratch = core::mem::take(&mut self.scratch);
                let opened = self
                    .groups
                    .get(&(sender.0, key.0))
                    .and_then(|k| Self::open(&mut scratch, k, header, packet));
                if let Some(n) = opened {
                    d.opened(Direction::ToServer, &scratch[..n]);
                }
                self.scratch = scratch;
                d
            }
        }
    }
}

/// A setup packet's dissection: its suite is the cipher byte where it has one, and the
/// suite an opcode belongs to otherwise (op 2 is suite 1's, op 11 suite 2's).
fn setup(s: &Setup) -> Dissection {
    let (op, name, fields) = packets::setup(s);
    let suite = match s {
        Setup::NonceRequest(r) => Some(r.cipher),
        Setup::PskClientInfo(i) => Some(i.cipher),
        Setup::EccClientInfo(i) => Some(i.cipher),
        Setup::PskNonce(_) => Some(crate::wire::CipherId::Psk),
        Setup::EccNonce(_) => Some(crate::wire::CipherId::Ecc),
        _ => None,
    };
    Dissection {
        suite: suite.map(|c| match c {
            crate::wire::CipherId::Psk => SuiteNumber::Psk,
            crate::wire::CipherId::Ecc => SuiteNumber::Ecc,
        }),
        layer: Layer::Setup,
        counter: Some(0),
        op: Some(op),
        name,
        decryption: Decryption::Clear,
        fields,
        error: None,
    }
}
