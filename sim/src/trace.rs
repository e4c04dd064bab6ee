//! The record of a run: every datagram and every application event, reduced to a digest.
//!
//! Records are appended in the order the simulation produced them, which is deterministic for
//! a seed, so the JSON-lines form and its digest are too. The digest is BLAKE2b-256 over the
//! JSON lines (each terminated by `\n`), hex-encoded.

use alloc::rc::Rc;
use core::fmt::{self, Write as _};
use core::net::SocketAddr;
use std::io;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use pavillion_proto::endpoint::{ClientEvent, RelayEvent, ServerEvent};
use pavillion_proto::wire::noise::NoisePacket;
use pavillion_proto::wire::{Datagram, Setup};
use pavillion_proto::Instant;

/// What a datagram is, as far as a passive observer can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DatagramKind {
    /// Bytes that do not parse as a Pavillion datagram.
    Garbage,
    /// An encrypted session packet (counter ≠ 0).
    Session,
    /// A cleartext setup packet with this opcode.
    Setup(u8),
    /// A suite 3 handshake, cookie or unknown-index packet.
    Handshake,
}

impl DatagramKind {
    /// Classifies raw bytes without any key.
    ///
    /// # Examples
    /// ```
    /// use pavillion_sim::DatagramKind;
    /// assert_eq!(DatagramKind::classify(b"hello"), DatagramKind::Garbage);
    /// ```
    pub fn classify(bytes: &[u8]) -> Self {
        match Datagram::parse(bytes) {
            Ok(Datagram::Setup(s)) => DatagramKind::Setup(setup_opcode(&s)),
            Ok(Datagram::Session(_)) => DatagramKind::Session,
            Ok(Datagram::Noise(NoisePacket::Data { .. })) => DatagramKind::Session,
            Ok(_) => DatagramKind::Handshake,
            Err(_) => DatagramKind::Garbage,
        }
    }
}

fn setup_opcode(s: &Setup) -> u8 {
    s.opcode()
}

impl fmt::Display for DatagramKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatagramKind::Garbage => f.write_str("garbage"),
            DatagramKind::Session => f.write_str("session"),
            DatagramKind::Setup(op) => write!(f, "setup:{op}"),
            DatagramKind::Handshake => f.write_str("handshake"),
        }
    }
}

/// What the sending driver did with one copy of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fate {
    /// Dropped by a NAT or adversary (no mapping, hairpin off, or held back).
    Blocked,
    /// Sent with one bit flipped.
    Corrupted,
    /// An extra copy made by the duplication fault.
    Duplicate,
    /// Lost by the loss fault; never reached turmoil.
    Lost,
    /// Handed to turmoil unchanged (a partition may still drop it).
    Sent,
}

impl Fate {
    /// A short stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Fate::Blocked => "blocked",
            Fate::Corrupted => "corrupted",
            Fate::Duplicate => "duplicate",
            Fate::Lost => "lost",
            Fate::Sent => "sent",
        }
    }
}

/// One datagram copy leaving a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatagramRecord {
    /// Simulated time of the send.
    pub at: Instant,
    /// The sending host's name.
    pub host: Rc<str>,
    /// The sender's address.
    pub from: SocketAddr,
    /// The recipient (a member's address for a datagram sent to a group).
    pub to: SocketAddr,
    /// Length in bytes.
    pub len: usize,
    /// What it is, classified before any corruption.
    pub kind: DatagramKind,
    /// What the driver did with it.
    pub fate: Fate,
    /// Extra delay from the reordering fault, in microseconds.
    pub delay_us: u64,
    /// The bytes as they went on the wire (after any corruption), kept only while a decoded
    /// trace is asked ([`SimConfig::decoded_trace`](crate::SimConfig::decoded_trace)).
    pub bytes: Option<Rc<[u8]>>,
}

/// What a host's endpoint did with a datagram it was handed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReceiveOutcome {
    /// Taken: no drop counter moved.
    Accepted,
    /// Dropped, counted under this reason (a `DropReason` or `RelayDrop` name); `None` when a
    /// counter moved that has no name here.
    Dropped(Option<&'static str>),
}

/// One datagram handed to a host's endpoint (or heard by a station, or taken by a
/// middlebox). Recorded only in a decoded trace; never part of the digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveRecord {
    /// Simulated time of the hand-over.
    pub at: Instant,
    /// The receiving host's name.
    pub host: Rc<str>,
    /// The number of the [`DatagramRecord`] this is a copy of (see [`Trace::datagram_id`]),
    /// or `None` when no sent copy matches (a datagram an adversary forged on the spot).
    pub id: Option<u64>,
    /// The source the endpoint was told.
    pub from: SocketAddr,
    /// The address it arrived at.
    pub to: SocketAddr,
    /// Length in bytes.
    pub len: usize,
    /// What the endpoint did with it.
    pub outcome: ReceiveOutcome,
}

/// One entry of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    /// A command the host's script or application gave its endpoint, and its result.
    Command {
        /// Simulated time.
        at: Instant,
        /// The host's name.
        host: Rc<str>,
        /// A stable textual form.
        text: String,
    },
    /// A datagram copy leaving a host.
    Datagram(DatagramRecord),
    /// An application event of an endpoint.
    Event {
        /// Simulated time.
        at: Instant,
        /// The host's name.
        host: Rc<str>,
        /// The event.
        event: HostEvent,
    },
    /// Something the simulation did: a partition, a crash, a NAT mapping, an attack.
    Note {
        /// Simulated time.
        at: Instant,
        /// The host (or "sim").
        host: Rc<str>,
        /// A stable textual form.
        text: String,
    },
    /// A datagram handed to a host (decoded traces only; not in the digest).
    Receive(ReceiveRecord),
    /// An event of an authority or member host as structured JSON, recorded (in decoded traces
    /// only, and not in the digest) right after the note that the digested trace keeps for it.
    RoleEvent {
        /// Simulated time.
        at: Instant,
        /// The host's name.
        host: Rc<str>,
        /// `authority` or `member`.
        role: &'static str,
        /// The event as a JSON object (see `pavillion_proto::serde_util`).
        json: String,
    },
}

impl Record {
    /// When it happened.
    pub fn at(&self) -> Instant {
        match self {
            Record::Command { at, .. }
            | Record::Event { at, .. }
            | Record::Note { at, .. }
            | Record::RoleEvent { at, .. } => *at,
            Record::Datagram(d) => d.at,
            Record::Receive(r) => r.at,
        }
    }

    /// Whether the record is part of the version 0 lines (and so of the digest): receive
    /// records and structured role events exist only in decoded traces, and must not change
    /// the digest of a run.
    pub fn in_digest(&self) -> bool {
        !matches!(self, Record::Receive(_) | Record::RoleEvent { .. })
    }

    /// Writes the record as one JSON object (no trailing newline): the version 0 form, which
    /// the digest hashes. Records outside it ([`Record::in_digest`]) write nothing.
    ///
    /// Events are written in their `Debug` form (see [`HostEvent`] for the one exception), which
    /// is deterministic and names every field.
    pub fn write_json(&self, out: &mut String) {
        // NOTE(unwrap): writing to a String cannot fail.
        let _ = match self {
            Record::Command { at, host, text } => write!(
                out,
                "{{\"t\":{},\"type\":\"command\",\"host\":{},\"text\":{}}}",
                at.as_micros(),
                Json(host),
                Json(text)
            ),
            Record::Datagram(d) => write!(
                out,
                "{{\"t\":{},\"type\":\"datagram\",\"host\":{},\"from\":\"{}\",\"to\":\"{}\",\
                 \"len\":{},\"kind\":\"{}\",\"fate\":\"{}\",\"delay_us\":{}}}",
                d.at.as_micros(),
                Json(&d.host),
                d.from,
                d.to,
                d.len,
                d.kind,
                d.fate.name(),
                d.delay_us
            ),
            Record::Event { at, host, event } => write!(
                out,
                "{{\"t\":{},\"type\":\"event\",\"host\":{},\"event\":{}}}",
                at.as_micros(),
                Json(host),
                Json(&TraceText(event).to_string())
            ),
            Record::Note { at, host, text } => write!(
                out,
                "{{\"t\":{},\"type\":\"note\",\"host\":{},\"text\":{}}}",
                at.as_micros(),
                Json(host),
                Json(text)
            ),
            Record::Receive(_) | Record::RoleEvent { .. } => Ok(()),
        };
    }
}

/// A JSON string literal.
pub(crate) struct Json<'a>(pub(crate) &'a str);

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// An application event of a client or server host, as the trace keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostEvent {
    /// An event of a client host.
    Client(ClientEvent),
    /// An event of a server host.
    Server(ServerEvent),
    /// An event of a relay host.
    Relay(RelayEvent),
}

impl HostEvent {
    /// The role that emitted it: `client`, `server` or `relay`.
    pub const fn role(&self) -> &'static str {
        match self {
            HostEvent::Client(_) => "client",
            HostEvent::Server(_) => "server",
            HostEvent::Relay(_) => "relay",
        }
    }
}

impl From<RelayEvent> for HostEvent {
    fn from(e: RelayEvent) -> Self {
        HostEvent::Relay(e)
    }
}

impl From<ClientEvent> for HostEvent {
    fn from(e: ClientEvent) -> Self {
        HostEvent::Client(e)
    }
}

impl From<ServerEvent> for HostEvent {
    fn from(e: ServerEvent) -> Self {
        HostEvent::Server(e)
    }
}

/// An event as the trace writes it: its role's `Debug` form.
struct TraceText<'a>(&'a HostEvent);

impl fmt::Display for TraceText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            HostEvent::Client(e) => write!(f, "{e:?}"),
            HostEvent::Server(e) => write!(f, "{e:?}"),
            HostEvent::Relay(e) => write!(f, "{e:?}"),
        }
    }
}

/// Every datagram and event of a run, in order.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    records: Vec<Record>,
    /// Datagram records so far: the next one's number.
    datagrams: u64,
    /// What a decoded trace adds: the hosts, the run's secrets (see `trace_v1`).
    pub(crate) meta: crate::trace_v1::Meta,
}

impl Trace {
    /// Appends a record.
    pub fn push(&mut self, record: Record) {
        if matches!(record, Record::Datagram(_)) {
            self.datagrams += 1;
        }
        self.records.push(record);
    }

    /// The number the next [`Record::Datagram`] gets: datagram records are numbered from 0
    /// in trace order (the `id` of a decoded trace's `datagram` and `receive` records).
    pub fn datagram_id(&self) -> u64 {
        self.datagrams
    }

    /// All records, in order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The events of `host`, with their times.
    pub fn events<'a>(
        &'a self,
        host: &'a str,
    ) -> impl Iterator<Item = (Instant, &'a HostEvent)> + 'a {
        self.records.iter().filter_map(move |r| match r {
            Record::Event { at, host: h, event } if &**h == host => Some((*at, event)),
            _ => None,
        })
    }

    /// The events of client host `host`, with their times.
    pub fn client_events<'a>(
        &'a self,
        host: &'a str,
    ) -> impl Iterator<Item = (Instant, &'a ClientEvent)> + 'a {
        self.events(host).filter_map(|(at, e)| match e {
            HostEvent::Client(e) => Some((at, e)),
            _ => None,
        })
    }

    /// The events of server host `host`, with their times.
    pub fn server_events<'a>(
        &'a self,
        host: &'a str,
    ) -> impl Iterator<Item = (Instant, &'a ServerEvent)> + 'a {
        self.events(host).filter_map(|(at, e)| match e {
            HostEvent::Server(e) => Some((at, e)),
            _ => None,
        })
    }

    /// Every datagram copy sent.
    pub fn datagrams(&self) -> impl Iterator<Item = &DatagramRecord> + '_ {
        self.records.iter().filter_map(|r| match r {
            Record::Datagram(d) => Some(d),
            _ => None,
        })
    }

    /// The notes of `host` (or of `"sim"` for network actions).
    pub fn notes<'a>(&'a self, host: &'a str) -> impl Iterator<Item = (Instant, &'a str)> + 'a {
        self.records.iter().filter_map(move |r| match r {
            Record::Note { at, host: h, text } if &**h == host => Some((*at, text.as_str())),
            _ => None,
        })
    }

    /// The whole trace as JSON lines (version 0: the digested form).
    pub fn to_json_lines(&self) -> String {
        let mut out = String::new();
        for r in self.records.iter().filter(|r| r.in_digest()) {
            r.write_json(&mut out);
            out.push('\n');
        }
        out
    }

    /// Writes the trace as JSON lines.
    ///
    /// # Errors
    /// Whatever `w` returns.
    pub fn write_json_lines(&self, w: &mut impl io::Write) -> io::Result<()> {
        let mut line = String::new();
        for r in self.records.iter().filter(|r| r.in_digest()) {
            line.clear();
            r.write_json(&mut line);
            line.push('\n');
            w.write_all(line.as_bytes())?;
        }
        Ok(())
    }

    /// BLAKE2b-256 of the JSON lines, hex-encoded: equal traces have equal digests.
    pub fn digest(&self) -> String {
        let mut h = Blake2b::<U32>::new();
        let mut line = String::new();
        for r in self.records.iter().filter(|r| r.in_digest()) {
            line.clear();
            r.write_json(&mut line);
            line.push('\n');
            h.update(line.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_and_digest_changes() {
        let mut t = Trace::default();
        t.push(Record::Note {
            at: Instant::from_micros(5),
            host: "a\"b".into(),
            text: "x\ny".into(),
        });
        assert_eq!(
            t.to_json_lines(),
            "{\"t\":5,\"type\":\"note\",\"host\":\"a\\\"b\",\"text\":\"x\\ny\"}\n"
        );
        let d1 = t.digest();
        assert_eq!(d1.len(), 64);
        t.push(Record::Note {
            at: Instant::from_micros(6),
            host: "sim".into(),
            text: String::new(),
        });
        assert_ne!(d1, t.digest());
        let mut buf = Vec::new();
        t.write_json_lines(&mut buf).unwrap();
        assert_eq!(buf, t.to_json_lines().into_bytes());
    }

    /// Each event is written in its own role's form: a client's `Connected` carries no peer,
    /// a server's carries the client's identity.
    #[test]
    fn events_are_written_in_their_roles_form() {
        use pavillion_proto::endpoint::ReceivedMessage;
        use pavillion_proto::PeerId;

        let addr: SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let peer = PeerId::Client(pavillion_proto::ClientId(*b"client-000000001"));
        let text = |e: HostEvent| {
            let mut out = String::new();
            Record::Event {
                at: Instant::ZERO,
                host: "h".into(),
                event: e,
            }
            .write_json(&mut out);
            out
        };
        let line = |event: &str| {
            format!(
                "{{\"t\":0,\"type\":\"event\",\"host\":\"h\",\"event\":{}}}",
                Json(event)
            )
        };
        assert_eq!(
            text(ClientEvent::Connected { addr }.into()),
            line("Connected { addr: 10.0.0.2:40000 }")
        );
        assert_eq!(
            text(ServerEvent::Connected { addr, peer }.into()),
            line(&format!(
                "Connected {{ addr: 10.0.0.2:40000, peer: {peer:?} }}"
            ))
        );
        let message = ReceivedMessage::new(addr, "t", "n", b"x", true);
        assert_eq!(
            text(ServerEvent::Message { peer, message }.into()),
            line(&format!(
                "Message {{ peer: {peer:?}, message: ReceivedMessage {{ from: 10.0.0.2:40000, \
                 target: \"t\", name: \"n\", payload: b\"x\", reliable: true }} }}"
            ))
        );
    }
}
