//! What a simulated run leaves for standard tools: a pcapng capture of every datagram copy
//! (`--pcap`) and a key log of its session secrets (`--keylog`), which Wireshark with
//! `wireshark/pavillion.lua` reads together (`docs/WIRESHARK.md`).
//!
//! Times in the capture are simulated microseconds since the start of the run (so a capture
//! opens at 1970-01-01 in Wireshark), and each packet's comment is the copy's fate in the
//! trace (`sent`, `lost`, `duplicate`, `corrupted`, `blocked`): a lost copy is in the capture
//! although no receiver saw it, as the decoded trace has it.

use std::io::{self, Write as _};
use std::path::Path;

use pavillion_capture::{CaptureTime, PcapngWriter};
use pavillion_sim::Capture;

/// The capture of `capture`'s datagram copies as pcapng bytes.
///
/// # Errors
/// Whatever the writer returns.
pub fn pcapng(capture: &Capture) -> io::Result<Vec<u8>> {
    let mut w = PcapngWriter::new(Vec::new(), "pavillion-scenarios")?;
    for c in &capture.copies {
        let at = CaptureTime(c.at.as_micros());
        w.write_udp(at, c.from, c.to, &c.bytes, Some(c.fate))?;
    }
    w.into_inner()
}

/// The key log of `capture`'s secrets: a comment line, then one line per secret.
pub fn key_log(capture: &Capture) -> String {
    let mut out = String::from("# pavillion key log (simulated run)\n");
    for s in &capture.secrets {
        out.push_str(&s.to_string());
        out.push('\n');
    }
    out
}

/// Writes [`pcapng`] to `path`.
///
/// # Errors
/// If it cannot be written.
pub fn write(path: &Path, capture: &Capture) -> io::Result<()> {
    let bytes = pcapng(capture)?;
    let mut f = std::fs::File::create(path)?;
    f.write_all(&bytes)?;
    f.flush()
}

/// Writes [`key_log`] to `path`.
///
/// # Errors
/// If it cannot be written.
pub fn write_key_log(path: &Path, capture: &Capture) -> io::Result<()> {
    std::fs::write(path, key_log(capture))
}
