//! Captures of Pavillion traffic that standard tools open.
//!
//! - [`PcapngWriter`] writes UDP datagrams (with synthesized IPv4/IPv6 and UDP headers, link
//!   type `LINKTYPE_RAW`) to a pcapng file that Wireshark and `tshark` read; the simulator
//!   writes one for a run (`pavillion-scenarios --pcap`), `pav --pcap` one of its own traffic.
//! - [`KeyLogFile`] appends [`SessionSecret`] lines (`pavillion_proto::keylog`) to the file
//!   named by [`KEYLOG_ENV`], in the spirit of `SSLKEYLOGFILE`; the Wireshark dissector
//!   (`wireshark/pavillion.lua`) and [`pavillion_proto::dissect`] read it back with
//!   [`read_key_log`].
//!
//! The key log format is specified in `docs/DECODE.md` §2, the capture in `docs/WIRESHARK.md`.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pavillion_proto::keylog::SessionSecret;

/// The environment variable that names a key log file; unset (the default) means no key log.
pub const KEYLOG_ENV: &str = "PAVILLION_KEYLOGFILE";

/// What a program prints (to stderr) when it writes a key log: anyone who reads the file can
/// decrypt every session it lists.
pub const KEYLOG_WARNING: &str = "WARNING: writing Pavillion session keys to a key log file; \
anyone who can read it can decrypt this traffic. Unset PAVILLION_KEYLOGFILE outside debugging.";

/// A capture timestamp: microseconds since the Unix epoch (real captures) or since the start
/// of a simulated run (the simulator's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaptureTime(pub u64);

/// Writes UDP datagrams as a pcapng file.
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header and one interface description (`LINKTYPE_RAW`, microsecond
    /// timestamps) naming the capturing program in `application`.
    pub fn new(out: W, application: &str) -> io::Result<Self> {
        todo!("H4")
    }

    /// Writes one datagram from `from` to `to` (both IPv4 or both IPv6; a mixed pair is
    /// written with the IPv4 address mapped into IPv6) with an optional packet comment (the
    /// simulator names a copy's fate there: `lost`, `duplicate`, ...).
    pub fn write_udp(
        &mut self,
        at: CaptureTime,
        from: SocketAddr,
        to: SocketAddr,
        payload: &[u8],
        comment: Option<&str>,
    ) -> io::Result<()> {
        todo!("H4")
    }

    /// Flushes and returns the output.
    pub fn into_inner(self) -> io::Result<W> {
        todo!("H4")
    }
}

/// Appends session secrets to a key log file.
#[derive(Debug)]
pub struct KeyLogFile {
    path: PathBuf,
    file: std::fs::File,
}

impl KeyLogFile {
    /// Opens `path` for appending (creating it, mode 0600 on Unix) and writes a comment line
    /// naming the format version when the file is new.
    pub fn open(path: &Path) -> io::Result<Self> {
        todo!("H4")
    }

    /// Opens the file named by [`KEYLOG_ENV`], if it is set and not empty.
    pub fn from_env() -> Option<io::Result<Self>> {
        todo!("H4")
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line and flushes it, so a crash loses no key already used on the wire.
    pub fn write(&mut self, secret: &SessionSecret) -> io::Result<()> {
        todo!("H4")
    }
}

/// Reads every secret of a key log file, skipping comments and blank lines; a malformed line
/// is an `InvalidData` error naming its line number.
pub fn read_key_log(path: &Path) -> io::Result<Vec<SessionSecret>> {
    todo!("H4")
}
