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

use core::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::io::{self, Write};
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
///
/// The file is one section (little-endian), one interface of link type `LINKTYPE_RAW` (101:
/// every packet starts with its IP header) with microsecond timestamps, and one Enhanced Packet
/// Block per datagram. The IP and UDP headers are synthesized from the socket addresses, with
/// correct IPv4 header and UDP checksums, so Wireshark shows no checksum warnings.
///
/// # Example
/// ```
/// use pavillion_capture::{CaptureTime, PcapngWriter};
/// let mut w = PcapngWriter::new(Vec::new(), "doc").unwrap();
/// let (a, b) = ("10.0.0.2:40000".parse().unwrap(), "10.0.0.1:1783".parse().unwrap());
/// w.write_udp(CaptureTime(1_000_000), a, b, b"hello", Some("sent")).unwrap();
/// let bytes = w.into_inner().unwrap();
/// assert_eq!(&bytes[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
/// ```
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header and one interface description (`LINKTYPE_RAW`, microsecond
    /// timestamps) naming the capturing program in `application`.
    pub fn new(mut out: W, application: &str) -> io::Result<Self> {
        let mut shb = Vec::with_capacity(64);
        shb.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes()); // major version
        shb.extend_from_slice(&0u16.to_le_bytes()); // minor version
        shb.extend_from_slice(&(-1i64).to_le_bytes()); // section length: not computed
        push_option(&mut shb, OPT_SHB_USERAPPL, application.as_bytes());
        push_end_of_options(&mut shb);
        write_block(&mut out, BLOCK_SHB, &shb)?;

        let mut idb = Vec::with_capacity(24);
        idb.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes()); // reserved
        idb.extend_from_slice(&SNAP_LEN.to_le_bytes());
        push_option(&mut idb, OPT_IF_TSRESOL, &[6]);
        push_end_of_options(&mut idb);
        write_block(&mut out, BLOCK_IDB, &idb)?;
        Ok(PcapngWriter { out })
    }

    /// Writes one datagram from `from` to `to` (both IPv4 or both IPv6; a mixed pair is
    /// written with the IPv4 address mapped into IPv6) with an optional packet comment (the
    /// simulator names a copy's fate there: `lost`, `duplicate`, ...).
    ///
    /// A payload too long for one UDP datagram (more than 65 507 bytes over IPv4) is an
    /// `InvalidInput` error and writes nothing.
    pub fn write_udp(
        &mut self,
        at: CaptureTime,
        from: SocketAddr,
        to: SocketAddr,
        payload: &[u8],
        comment: Option<&str>,
    ) -> io::Result<()> {
        let packet = ip_udp_packet(from, to, payload)?;
        let captured = u32::try_from(packet.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "packet too long"))?;
        let mut epb = Vec::with_capacity(packet.len() + 64);
        // Interface 0, then the timestamp's high and low halves.
        epb.extend_from_slice(&0u32.to_le_bytes());
        // NOTE(cast): the high and low halves of a u64 each fit a u32.
        epb.extend_from_slice(&((at.0 >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(at.0 as u32).to_le_bytes());
        epb.extend_from_slice(&captured.to_le_bytes());
        epb.extend_from_slice(&captured.to_le_bytes());
        epb.extend_from_slice(&packet);
        pad4(&mut epb);
        if let Some(text) = comment {
            push_option(&mut epb, OPT_COMMENT, text.as_bytes());
            push_end_of_options(&mut epb);
        }
        write_block(&mut self.out, BLOCK_EPB, &epb)
    }

    /// Flushes and returns the output.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// pcapng block types and option codes (draft-ietf-opsawg-pcapng).
const BLOCK_SHB: u32 = 0x0A0D_0D0A;
const BLOCK_IDB: u32 = 1;
const BLOCK_EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_COMMENT: u16 = 1;
const OPT_SHB_USERAPPL: u16 = 4;
const OPT_IF_TSRESOL: u16 = 9;
const LINKTYPE_RAW: u16 = 101;
/// No datagram is longer: the largest IPv6 packet without jumbograms.
const SNAP_LEN: u32 = 65_535 + 40;
const UDP_PROTOCOL: u8 = 17;
const TTL: u8 = 64;

/// Writes `type || total length || body || total length`; `body` is already padded to 4.
fn write_block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = u32::try_from(body.len() + 12)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "block too long"))?;
    let mut block = Vec::with_capacity(body.len() + 12);
    block.extend_from_slice(&kind.to_le_bytes());
    block.extend_from_slice(&total.to_le_bytes());
    block.extend_from_slice(body);
    block.extend_from_slice(&total.to_le_bytes());
    out.write_all(&block)
}

/// Appends one option (code, length, value padded to 4). Values here are short: a program
/// name, a comment, one byte; a longer one is cut at the 65 535 bytes an option can hold.
fn push_option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    let value = &value[..value.len().min(usize::from(u16::MAX))];
    buf.extend_from_slice(&code.to_le_bytes());
    // NOTE(cast): cut to u16::MAX above.
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
    pad4(buf);
}

fn push_end_of_options(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&[0; 4]);
}

fn pad4(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

/// The IP packet carrying `payload` from `from` to `to` in one UDP datagram.
fn ip_udp_packet(from: SocketAddr, to: SocketAddr, payload: &[u8]) -> io::Result<Vec<u8>> {
    let too_long = || io::Error::new(io::ErrorKind::InvalidInput, "payload too long for UDP");
    let udp_len = u16::try_from(payload.len() + 8).map_err(|_| too_long())?;
    let mut udp = Vec::with_capacity(payload.len() + 8);
    udp.extend_from_slice(&from.port().to_be_bytes());
    udp.extend_from_slice(&to.port().to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]); // checksum, filled below
    udp.extend_from_slice(payload);
    match (from.ip(), to.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let total = u16::try_from(udp.len() + 20).map_err(|_| too_long())?;
            let mut pseudo = Vec::with_capacity(12);
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&[0, UDP_PROTOCOL]);
            pseudo.extend_from_slice(&udp_len.to_be_bytes());
            set_udp_checksum(&mut udp, &pseudo);
            let mut ip = Vec::with_capacity(20 + udp.len());
            ip.extend_from_slice(&[0x45, 0]); // version 4, 5 words; no TOS
            ip.extend_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0]); // id 0, don't fragment
            ip.extend_from_slice(&[TTL, UDP_PROTOCOL, 0, 0]);
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            let sum = internet_checksum(&[&ip]);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            ip.extend_from_slice(&udp);
            Ok(ip)
        }
        (src, dst) => {
            let (src, dst) = (as_v6(src), as_v6(dst));
            let mut pseudo = Vec::with_capacity(40);
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&u32::from(udp_len).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, UDP_PROTOCOL]);
            set_udp_checksum(&mut udp, &pseudo);
            let mut ip = Vec::with_capacity(40 + udp.len());
            ip.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, no class, no flow label
            ip.extend_from_slice(&udp_len.to_be_bytes());
            ip.extend_from_slice(&[UDP_PROTOCOL, TTL]);
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            ip.extend_from_slice(&udp);
            Ok(ip)
        }
    }
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// RFC 768: a computed zero is sent as all ones (zero means "no checksum" over IPv4, and is
/// invalid over IPv6).
fn set_udp_checksum(udp: &mut [u8], pseudo: &[u8]) {
    let sum = match internet_checksum(&[pseudo, udp]) {
        0 => 0xFFFF,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// RFC 1071 over the concatenation of `parts` (each but the last of even length).
fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(*last) << 8;
        }
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    // NOTE(cast): folded to 16 bits above.
    !(sum as u16)
}

/// Appends session secrets to a key log file.
///
/// Every line is written with one `write` call and no buffer, so a crash loses no key that
/// was already used on the wire, and two processes appending to one file do not interleave
/// within a line.
#[derive(Debug)]
pub struct KeyLogFile {
    path: PathBuf,
    file: std::fs::File,
}

impl KeyLogFile {
    /// Opens `path` for appending (creating it, mode 0600 on Unix) and writes a comment line
    /// naming the format version when the file is new.
    ///
    /// An existing file keeps its permissions: who may read it is then the owner's choice.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        if file.metadata()?.len() == 0 {
            file.write_all(KEYLOG_HEADER.as_bytes())?;
        }
        Ok(KeyLogFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Opens the file named by [`KEYLOG_ENV`], if it is set and not empty.
    pub fn from_env() -> Option<io::Result<Self>> {
        let path = std::env::var_os(KEYLOG_ENV).filter(|p| !p.is_empty())?;
        Some(Self::open(Path::new(&path)))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line and flushes it, so a crash loses no key already used on the wire.
    pub fn write(&mut self, secret: &SessionSecret) -> io::Result<()> {
        let line = format!("{secret}\n");
        self.file.write_all(line.as_bytes())?;
        self.file.flush()
    }
}

/// The first line of a new key log file.
const KEYLOG_HEADER: &str =
    "# Pavillion key log, format 1 (docs/DECODE.md \u{a7}2). Anyone who reads this file can decrypt the sessions it lists.\n";

/// Reads every secret of a key log file, skipping comments and blank lines; a malformed line
/// is an `InvalidData` error naming its line number.
pub fn read_key_log(path: &Path) -> io::Result<Vec<SessionSecret>> {
    let text = std::fs::read_to_string(path)?;
    parse_key_log(&text)
}

/// [`read_key_log`] over text already in memory.
pub fn parse_key_log(text: &str) -> io::Result<Vec<SessionSecret>> {
    let mut secrets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match SessionSecret::parse_line(line) {
            Ok(Some(secret)) => secrets.push(secret),
            Ok(None) => {}
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("key log line {}: {e}", i + 1),
                ))
            }
        }
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests;
