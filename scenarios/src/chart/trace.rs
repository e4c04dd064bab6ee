//! Reading a v1 trace (`docs/TRACE.md`) into typed records.
//!
//! Only what a chart draws is typed; every other field is ignored, so that a newer writer that
//! adds fields still charts. A record type this reader does not know is skipped for the same
//! reason. A line that is not JSON, or a known record missing a field it needs, is an error
//! naming the line.

use core::fmt;

use serde::Deserialize;
use serde_json::Value;

/// The trace's first line.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Header {
    /// `pavillion-trace`.
    pub(crate) format: String,
    /// 1 for the format this reader knows.
    pub(crate) version: u64,
    #[serde(default)]
    pub(crate) scenario: Option<String>,
    #[serde(default)]
    pub(crate) suite: Option<String>,
    #[serde(default)]
    pub(crate) seed: Option<u64>,
    /// Every host, in the order the run added them: the lifelines' order.
    #[serde(default)]
    pub(crate) hosts: Vec<HostInfo>,
}

/// One host of the header.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct HostInfo {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) addrs: Vec<String>,
}

/// What the sending driver did with a datagram copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Fate {
    Sent,
    Lost,
    Duplicate,
    Corrupted,
    Blocked,
    /// A fate a newer writer added: drawn as sent.
    #[serde(other)]
    Other,
}

impl Fate {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Fate::Sent | Fate::Other => "sent",
            Fate::Lost => "lost",
            Fate::Duplicate => "duplicate",
            Fate::Corrupted => "corrupted",
            Fate::Blocked => "blocked",
        }
    }
}

/// A datagram copy leaving a host.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct DatagramRec {
    pub(crate) t: u64,
    pub(crate) host: String,
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) from: String,
    #[serde(default)]
    pub(crate) to: String,
    #[serde(default)]
    pub(crate) to_host: Option<String>,
    #[serde(default)]
    pub(crate) len: u64,
    pub(crate) fate: Fate,
    #[serde(default)]
    pub(crate) delay_us: u64,
    /// The decoded packet, kept whole for the hover details.
    #[serde(default)]
    pub(crate) packet: Option<Value>,
    #[serde(default)]
    pub(crate) label: Option<String>,
}

impl DatagramRec {
    /// The arrow's text: the writer's label, else the packet's name, else its length.
    pub(crate) fn label(&self) -> String {
        if let Some(l) = self.label.as_deref().filter(|l| !l.is_empty()) {
            return l.to_string();
        }
        self.packet
            .as_ref()
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .map_or_else(|| format!("{} bytes", self.len), str::to_string)
    }
}

/// Whether a host's endpoint kept a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Accepted,
    Dropped,
    /// An outcome a newer writer added: drawn as accepted.
    #[serde(other)]
    Other,
}

/// A datagram handed to a host's endpoint.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ReceiveRec {
    pub(crate) t: u64,
    pub(crate) host: String,
    /// The `datagram` record this is a copy of; `None` when the writer could not match it.
    #[serde(default)]
    pub(crate) id: Option<u64>,
    #[serde(default)]
    pub(crate) from: String,
    #[serde(default)]
    pub(crate) len: u64,
    pub(crate) outcome: Outcome,
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

/// An application event.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct EventRec {
    pub(crate) t: u64,
    pub(crate) host: String,
    #[serde(default)]
    pub(crate) event: Value,
}

impl EventRec {
    /// The event's `kind` (`delivered`, `peer_up`, ...), or `event`.
    pub(crate) fn kind(&self) -> &str {
        self.event
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("event")
    }
}

/// A command or a note: a timed line of text on a host.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct TextRec {
    pub(crate) t: u64,
    pub(crate) host: String,
    #[serde(default)]
    pub(crate) text: String,
    /// A note's kind (`crash`, `restart`, `partition`, ...); absent for commands.
    #[serde(default)]
    pub(crate) kind: Option<String>,
}

/// One line of a v1 trace.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Record {
    Header(Header),
    Command(TextRec),
    Datagram(DatagramRec),
    Receive(ReceiveRec),
    Event(EventRec),
    Note(TextRec),
    /// A record type a newer writer added.
    #[serde(other)]
    Unknown,
}

/// Why a trace could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    /// The 1-based line number, or 0 for the file as a whole.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl core::error::Error for TraceError {}

/// A whole trace.
#[derive(Clone, Debug, Default)]
pub(crate) struct TraceFile {
    pub(crate) header: Header,
    /// Every record after the header, in file order (which is simulation order).
    pub(crate) records: Vec<Record>,
}

/// Parses the JSON lines of a v1 trace; blank lines are skipped.
pub(crate) fn parse(text: &str) -> Result<TraceFile, TraceError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let Some((n, first)) = lines.next() else {
        return Err(TraceError {
            line: 0,
            message: "the trace is empty".into(),
        });
    };
    let header = match serde_json::from_str::<Record>(first) {
        Ok(Record::Header(h)) if h.format == "pavillion-trace" && h.version == 1 => h,
        Ok(Record::Header(h)) => {
            return Err(TraceError {
                line: n,
                message: format!(
                    "format `{}` version {}: this reader knows pavillion-trace version 1",
                    h.format, h.version
                ),
            })
        }
        Ok(_) | Err(_) => {
            return Err(TraceError {
                line: n,
                message: "expected the v1 header ({\"type\":\"header\",\"format\":\
                          \"pavillion-trace\",\"version\":1,...}); write traces with \
                          `pavillion-scenarios --trace`"
                    .into(),
            })
        }
    };
    let mut records = Vec::new();
    for (n, line) in lines {
        match serde_json::from_str::<Record>(line) {
            Ok(Record::Header(_)) => {
                return Err(TraceError {
                    line: n,
                    message: "a second header".into(),
                })
            }
            Ok(r) => records.push(r),
            Err(e) => {
                return Err(TraceError {
                    line: n,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(TraceFile { header, records })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"type":"header","format":"pavillion-trace","version":1,"scenario":"clean","suite":"psk","seed":1,"hosts":[{"name":"server","role":"server","addrs":["192.168.0.1:1783"]}]}"#;

    #[test]
    fn reads_known_records_and_skips_unknown_ones_and_fields() {
        let text = format!(
            "{HEADER}\n\n\
             {{\"t\":5,\"type\":\"datagram\",\"host\":\"c\",\"id\":0,\"from\":\"a\",\"to\":\"b\",\
               \"to_host\":null,\"len\":9,\"fate\":\"teleported\",\"delay_us\":0,\"new\":[1]}}\n\
             {{\"t\":6,\"type\":\"hologram\",\"host\":\"c\"}}\n\
             {{\"t\":7,\"type\":\"receive\",\"host\":\"server\",\"id\":null,\"from\":\"a\",\
               \"to\":\"b\",\"len\":9,\"outcome\":\"dropped\",\"reason\":\"replay\"}}\n"
        );
        let t = parse(&text).unwrap();
        assert_eq!(t.header.hosts[0].name, "server");
        assert_eq!(t.records.len(), 3);
        match &t.records[0] {
            Record::Datagram(d) => {
                assert_eq!(d.fate, Fate::Other);
                assert_eq!(d.label(), "9 bytes");
            }
            r => panic!("{r:?}"),
        }
        assert!(matches!(t.records[1], Record::Unknown));
        match &t.records[2] {
            Record::Receive(r) => assert_eq!(r.reason.as_deref(), Some("replay")),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(&format!("{HEADER}\n{{\"t\":1,\"type\":\"note\"}}\n")).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = parse(&format!("{HEADER}\n\nnot json\n")).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.to_string().starts_with("line 3: "), "{e}");
        // A v0 trace has no header.
        let e = parse("{\"t\":0,\"type\":\"note\",\"host\":\"a\",\"text\":\"x\"}\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(parse("").is_err());
        let v2 = HEADER.replace("\"version\":1", "\"version\":2");
        assert!(parse(&v2).unwrap_err().message.contains("version 2"));
    }
}
