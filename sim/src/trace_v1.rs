//! The decoded trace, format version 1: a header naming the run and its hosts, then one JSON
//! object per line for every command, datagram copy, receive, event and note, with each
//! datagram decoded by [`pavillion_proto::dissect`] under the run's own session secrets.
//!
//! `docs/TRACE.md` specifies the format and `docs/trace.schema.json` validates it. The digest
//! is not taken over these lines but over the version 0 ones ([`Trace::digest`]), which stay
//! byte for byte what they were, so a decoded trace never changes a run's digest.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use core::net::SocketAddr;
use std::io;

use pavillion_proto::dissect::{Decryption, Direction, Dissection, Dissector, Value};
use pavillion_proto::keylog::SessionSecret;
use pavillion_proto::Instant;
use serde::ser::{SerializeMap as _, Serializer};
use serde::Serialize;

use crate::trace::{HostEvent, ReceiveOutcome, Record, Trace};

/// The format's name in every header.
pub const TRACE_FORMAT: &str = "pavillion-trace";
/// The version [`Trace::write_v1`] writes. Fields added to a record keep it; anything else (a
/// field removed, renamed or retyped, a record's meaning changed) bumps it.
pub const TRACE_VERSION: u32 = 1;

/// What the trace knows of the run beyond its records: the hosts and the secrets.
#[derive(Clone, Debug, Default)]
pub(crate) struct Meta {
    pub(crate) seed: u64,
    pub(crate) hosts: Vec<HostMeta>,
    pub(crate) secrets: Vec<SessionSecret>,
}

/// A host as added to the simulation.
#[derive(Clone, Debug)]
pub(crate) struct HostMeta {
    pub(crate) name: Rc<str>,
    pub(crate) role: HostRole,
    pub(crate) addrs: Vec<SocketAddr>,
}

impl Meta {
    pub(crate) fn add_host(&mut self, name: &str, role: HostRole, addrs: Vec<SocketAddr>) {
        self.hosts.push(HostMeta {
            name: name.into(),
            role,
            addrs,
        });
    }

    /// Keeps a secret once (a client's C>S key repeats in every line of its sessions).
    pub(crate) fn add_secret(&mut self, secret: SessionSecret) {
        if !self.secrets.contains(&secret) {
            self.secrets.push(secret);
        }
    }
}

/// What a host of a simulation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HostRole {
    /// A fleet authority.
    Authority,
    /// A client endpoint.
    Client,
    /// A fleet member.
    Member,
    /// A NAT or adversary.
    Middlebox,
    /// A relay.
    Relay,
    /// A server endpoint.
    Server,
    /// A plain UDP station of a segment.
    Station,
}

impl HostRole {
    /// The name the header gives it.
    pub const fn name(self) -> &'static str {
        match self {
            HostRole::Authority => "authority",
            HostRole::Client => "client",
            HostRole::Member => "member",
            HostRole::Middlebox => "middlebox",
            HostRole::Relay => "relay",
            HostRole::Server => "server",
            HostRole::Station => "station",
        }
    }
}

/// One host in a trace's header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceHost {
    /// Its name, as records' `host` fields give it.
    pub name: String,
    /// What it is.
    pub role: HostRole,
    /// Every address it used (bound, sent from or received at), in order of first use.
    pub addrs: Vec<SocketAddr>,
}

/// The first line of a version 1 trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceHeader {
    /// Always `header`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Always [`TRACE_FORMAT`].
    pub format: &'static str,
    /// [`TRACE_VERSION`].
    pub version: u32,
    /// The scenario's name (empty for a simulation that is no named scenario).
    pub scenario: String,
    /// The suite's name (`psk`, `ecc`, `noise`), if the run has one.
    pub suite: Option<String>,
    /// The simulation seed.
    pub seed: u64,
    /// The hosts, in the order they were added.
    pub hosts: Vec<TraceHost>,
}

/// What a note is about, for charts: told from its text (see `docs/TRACE.md` §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoteKind {
    /// An adversary's action (an attack, a flipped bit, a flood).
    Attack,
    /// A host crashed (or was crashed in a commit).
    Crash,
    /// Anything else (an application's note, a relay's emission, a fleet event's text).
    Other,
    /// A partition or hold between two hosts.
    Partition,
    /// A NAT mapping made or expired.
    Nat,
    /// A partition repaired or a hold released.
    Repair,
    /// A host's software started again (`bounce`, or `start N` for N > 0).
    Restart,
    /// A durable store's transaction.
    Store,
}

impl NoteKind {
    /// Tells the kind of a note from its text, as the simulation writes them.
    ///
    /// # Examples
    /// ```
    /// use pavillion_sim::NoteKind;
    /// assert_eq!(NoteKind::of("crash server"), NoteKind::Crash);
    /// assert_eq!(NoteKind::of("start 1"), NoteKind::Restart);
    /// assert_eq!(NoteKind::of("start 0"), NoteKind::Other);
    /// assert_eq!(NoteKind::of("store: commit 3 (2 ops, 5 rows)"), NoteKind::Store);
    /// ```
    pub fn of(text: &str) -> Self {
        let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
        match first.trim_end_matches(':') {
            "crash" | "crash-in-commit" => NoteKind::Crash,
            "bounce" => NoteKind::Restart,
            "start" if rest != "0" => NoteKind::Restart,
            "partition" | "hold" => NoteKind::Partition,
            "repair" | "release" => NoteKind::Repair,
            "map" | "expire" | "hairpin" => NoteKind::Nat,
            "attack" | "flip" | "flood" | "replay" | "forge" => NoteKind::Attack,
            "store" => NoteKind::Store,
            _ => NoteKind::Other,
        }
    }
}

/// One datagram copy with its bytes, for a capture file (see [`Trace::wire_copies`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireCopy {
    /// Simulated time of the send.
    pub at: Instant,
    /// The sender's address.
    pub from: SocketAddr,
    /// The recipient.
    pub to: SocketAddr,
    /// The bytes as sent.
    pub bytes: Vec<u8>,
    /// What happened to it (`sent`, `lost`, ...).
    pub fate: &'static str,
}

/// What a capture file and a key log of a run need: every datagram copy with its bytes, and
/// the run's session secrets (see [`Trace::capture`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capture {
    /// Every datagram copy that left a host, in order, with its fate.
    pub copies: Vec<WireCopy>,
    /// The session secrets of the run, each once.
    pub secrets: Vec<SessionSecret>,
}

impl Trace {
    /// The copies and secrets of a decoded trace, for a pcapng file and a key log; empty
    /// without [`SimConfig::decoded_trace`](crate::SimConfig::decoded_trace).
    pub fn capture(&self) -> Capture {
        Capture {
            copies: self.wire_copies().collect(),
            secrets: self.meta.secrets.clone(),
        }
    }

    /// The header of this trace's version 1 form: the hosts in the order they were added,
    /// each with every address it used.
    pub fn header(&self, scenario: &str, suite: Option<&str>) -> TraceHeader {
        let mut hosts: Vec<TraceHost> = self
            .meta
            .hosts
            .iter()
            .map(|h| TraceHost {
                name: h.name.to_string(),
                role: h.role,
                addrs: h.addrs.clone(),
            })
            .collect();
        let mut used = |host: &str, addr: SocketAddr| {
            if crate::spoof::is_spoofed(&addr) {
                return;
            }
            if let Some(h) = hosts.iter_mut().find(|h| h.name == host) {
                if !h.addrs.contains(&addr) {
                    h.addrs.push(addr);
                }
            }
        };
        for r in self.records() {
            match r {
                Record::Datagram(d) => used(&d.host, d.from),
                Record::Receive(r) => used(&r.host, r.to),
                _ => {}
            }
        }
        TraceHeader {
            kind: "header",
            format: TRACE_FORMAT,
            version: TRACE_VERSION,
            scenario: scenario.into(),
            suite: suite.map(Into::into),
            seed: self.meta.seed,
            hosts,
        }
    }

    /// The session secrets of the run (a decoded trace's), each once, in the order the
    /// endpoints first used them.
    pub fn secrets(&self) -> &[SessionSecret] {
        &self.meta.secrets
    }

    /// Every datagram copy whose bytes were kept (all of them in a decoded trace), in order.
    pub fn wire_copies(&self) -> impl Iterator<Item = WireCopy> + '_ {
        self.datagrams().filter_map(|d| {
            d.bytes.as_ref().map(|b| WireCopy {
                at: d.at,
                from: d.from,
                to: d.to,
                bytes: b.to_vec(),
                fate: d.fate.name(),
            })
        })
    }

    /// Writes the version 1 form: `header`, then one line per record.
    ///
    /// Every datagram whose bytes were kept is decoded with a fresh [`Dissector`] holding
    /// every secret of the run; without them (a run without
    /// [`SimConfig::decoded_trace`](crate::SimConfig::decoded_trace)) its `packet` is `null`
    /// and there are no receive records.
    ///
    /// # Errors
    /// Whatever `out` returns.
    pub fn write_v1(&self, out: &mut impl io::Write, header: &TraceHeader) -> io::Result<()> {
        let mut dissector = Dissector::new();
        for s in &self.meta.secrets {
            dissector.add_secret(s.clone());
        }
        let owners = self.owners(header);
        line(out, header)?;
        let mut id = 0u64;
        for r in self.records() {
            let t = r.at().as_micros();
            match r {
                Record::Command { host, text, .. } => {
                    let typ = "command";
                    line(out, &Line::Command { t, typ, host, text })?;
                }
                Record::Datagram(d) => {
                    let dissection = d.bytes.as_ref().map(|b| dissector.dissect(d.from, d.to, b));
                    let label = dissection
                        .as_ref()
                        .map_or_else(|| d.kind.to_string(), Dissection::label);
                    line(
                        out,
                        &Line::Datagram {
                            typ: "datagram",
                            t,
                            host: &d.host,
                            id,
                            from: d.from,
                            to: d.to,
                            to_host: owners.get(&d.to).map(|s| s.as_str()),
                            len: d.len,
                            kind: d.kind.to_string(),
                            fate: d.fate.name(),
                            delay_us: d.delay_us,
                            packet: dissection.as_ref().map(Packet),
                            label,
                        },
                    )?;
                    id += 1;
                }
                Record::Receive(rc) => {
                    let (outcome, reason) = match rc.outcome {
                        ReceiveOutcome::Accepted => ("accepted", None),
                        ReceiveOutcome::Dropped(reason) => ("dropped", reason),
                    };
                    line(
                        out,
                        &Line::Receive {
                            typ: "receive",
                            t,
                            host: &rc.host,
                            id: rc.id,
                            from: rc.from,
                            to: rc.to,
                            len: rc.len,
                            outcome,
                            reason,
                        },
                    )?;
                }
                Record::Event { host, event, .. } => {
                    let json = event_json(event)?;
                    line(
                        out,
                        &Line::Event {
                            typ: "event",
                            t,
                            host,
                            role: event.role(),
                            event: json,
                        },
                    )?;
                }
                Record::RoleEvent {
                    host, role, json, ..
                } => {
                    let event: serde_json::Value =
                        serde_json::from_str(json).map_err(io::Error::other)?;
                    line(
                        out,
                        &Line::Event {
                            typ: "event",
                            t,
                            host,
                            role,
                            event,
                        },
                    )?;
                }
                Record::Note { host, text, .. } => line(
                    out,
                    &Line::Note {
                        typ: "note",
                        t,
                        host,
                        text,
                        kind: NoteKind::of(text),
                    },
                )?,
            }
        }
        Ok(())
    }

    /// The version 1 form as one string (see [`Trace::write_v1`]).
    pub fn to_v1_lines(&self, header: &TraceHeader) -> String {
        let mut out = Vec::new();
        // NOTE(unwrap): writing to a Vec cannot fail, and every record serializes.
        let _ = self.write_v1(&mut out, header);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Which host owns each address, for `to_host`.
    fn owners(&self, header: &TraceHeader) -> BTreeMap<SocketAddr, String> {
        let mut owners = BTreeMap::new();
        for h in &header.hosts {
            for a in &h.addrs {
                owners.entry(*a).or_insert_with(|| h.name.clone());
            }
        }
        owners
    }
}

/// Writes one value as one line.
fn line(out: &mut impl io::Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

fn event_json(event: &HostEvent) -> io::Result<serde_json::Value> {
    let v = match event {
        HostEvent::Client(e) => serde_json::to_value(e),
        HostEvent::Server(e) => serde_json::to_value(e),
        HostEvent::Relay(e) => serde_json::to_value(e),
    };
    v.map_err(io::Error::other)
}

/// One record of a version 1 trace. Untagged, each variant naming its `type` itself, so that
/// every line starts with `t` and `type` as version 0 lines start with `t`.
#[derive(Serialize)]
#[serde(untagged)]
enum Line<'a> {
    Command {
        t: u64,
        #[serde(rename = "type")]
        typ: &'static str,
        host: &'a str,
        text: &'a str,
    },
    Datagram {
        t: u64,
        #[serde(rename = "type")]
        typ: &'static str,
        host: &'a str,
        id: u64,
        from: SocketAddr,
        to: SocketAddr,
        to_host: Option<&'a str>,
        len: usize,
        kind: String,
        fate: &'static str,
        delay_us: u64,
        packet: Option<Packet<'a>>,
        label: String,
    },
    Receive {
        t: u64,
        #[serde(rename = "type")]
        typ: &'static str,
        host: &'a str,
        id: Option<u64>,
        from: SocketAddr,
        to: SocketAddr,
        len: usize,
        outcome: &'static str,
        reason: Option<&'static str>,
    },
    Event {
        t: u64,
        #[serde(rename = "type")]
        typ: &'static str,
        host: &'a str,
        role: &'a str,
        event: serde_json::Value,
    },
    Note {
        t: u64,
        #[serde(rename = "type")]
        typ: &'static str,
        host: &'a str,
        text: &'a str,
        kind: NoteKind,
    },
}

/// A dissection as a trace writes it.
struct Packet<'a>(&'a Dissection);

impl Serialize for Packet<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry("suite", &d.suite.map(|s| s.number()))?;
        m.serialize_entry("layer", d.layer.name())?;
        m.serialize_entry("counter", &d.counter)?;
        m.serialize_entry("op", &d.op)?;
        m.serialize_entry("name", d.name)?;
        let decryption = match d.decryption {
            Decryption::Clear => "clear",
            Decryption::NoKey => "no_key",
            Decryption::Opened(Direction::ToServer) => "to_server",
            Decryption::Opened(Direction::ToClient) => "to_client",
        };
        m.serialize_entry("decryption", decryption)?;
        m.serialize_entry("fields", &Fields(d))?;
        m.serialize_entry("error", &d.error)?;
        m.end()
    }
}

/// The fields of a dissection as one object, in wire order (a repeated name keeps its first
/// value, so the object stays valid JSON).
struct Fields<'a>(&'a Dissection);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = &self.0.fields;
        let mut m = s.serialize_map(None)?;
        for (i, f) in fields.iter().enumerate() {
            if fields.iter().take(i).any(|g| g.name == f.name) {
                continue;
            }
            match &f.value {
                Value::U64(v) => m.serialize_entry(f.name, v)?,
                Value::I64(v) => m.serialize_entry(f.name, v)?,
                Value::Text(v) => m.serialize_entry(f.name, v)?,
                Value::Bytes(v) => m.serialize_entry(f.name, &hex::encode(v))?,
            }
        }
        m.end()
    }
}
