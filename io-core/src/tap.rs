//! What the drivers copy out of a process for debugging: session secrets to a key log file
//! (`PAVILLION_KEYLOGFILE`), and every datagram to a pcapng capture (`pav --pcap FILE`).
//!
//! Both are process-wide and off by default. A driver asks [`Tap::for_driver`] once, when it
//! starts: with neither on it gets `None` and pays one branch per datagram from then on.
//! With the key log on it turns the endpoint's key log on
//! ([`pavillion_proto::endpoint::Endpoint::set_key_log`]) and, after every input, writes what
//! [`pavillion_proto::endpoint::Endpoint::poll_secret`] yields ([`Tap::drain_secrets`]); with a
//! capture on it hands every datagram it receives or sends to [`Tap::datagram`], with the
//! socket's local address and the time it saw it.
//!
//! The key log file is named by [`pavillion_capture::KEYLOG_ENV`], read when the first driver
//! of the process starts; the first driver to open it prints
//! [`pavillion_capture::KEYLOG_WARNING`] to stderr (and logs it), once per process. The
//! capture is asked for with [`capture_to`] before any endpoint opens. Writes are serialized
//! by a lock and flushed per line or datagram, so a killed process loses nothing it wrote;
//! both cost a system call per item, which is why they are for debugging only.
//!
//! A write that fails (a full disk) is logged once and the tap goes on without it: the
//! endpoint's traffic never depends on its debugging copy.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use pavillion_capture::{CaptureTime, KeyLogFile, PcapngWriter, KEYLOG_ENV, KEYLOG_WARNING};
use pavillion_proto::endpoint::Endpoint;
use pavillion_proto::keylog::SessionSecret;

/// The process's key log file and capture; a driver holds one while either is on.
#[derive(Debug)]
pub struct Tap {
    key_log: Option<Arc<Mutex<KeyLogFile>>>,
    capture: Option<Arc<Capture>>,
    key_log_failed: AtomicBool,
    capture_failed: AtomicBool,
}

/// A pcapng capture shared by every driver of the process.
#[derive(Debug)]
struct Capture {
    writer: Mutex<PcapngWriter<Spool>>,
    /// The writer's output, flushed after each datagram: one system call each.
    spool: Spool,
}

/// The capture file behind a buffer that the tap flushes itself after each datagram (the
/// writer only sees a `Write`).
#[derive(Clone, Debug)]
struct Spool(Arc<Mutex<BufWriter<File>>>);

impl Spool {
    fn lock(&self) -> MutexGuard<'_, BufWriter<File>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()
    }
}

/// The process-wide state: what was opened, and the tap handed to drivers.
#[derive(Debug, Default)]
struct Process {
    env_read: bool,
    key_log: Option<Arc<Mutex<KeyLogFile>>>,
    capture: Option<Arc<Capture>>,
    /// What drivers get; rebuilt after [`capture_to`].
    tap: Option<Arc<Tap>>,
}

static PROCESS: Mutex<Option<Process>> = Mutex::new(None);

fn process() -> MutexGuard<'static, Option<Process>> {
    PROCESS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes every datagram that the endpoints of this process started from now on send or
/// receive to a pcapng file at `path` (created or truncated), with real timestamps: what
/// `pav --pcap FILE` does. Endpoints already running are not captured.
///
/// # Errors
/// The file cannot be created or written, or a capture was already asked for.
pub fn capture_to(path: &Path) -> io::Result<()> {
    let mut guard = process();
    let p = guard.get_or_insert_with(Process::default);
    if p.capture.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a capture is already being written",
        ));
    }
    let mut spool = Spool(Arc::new(Mutex::new(BufWriter::new(File::create(path)?))));
    let writer = PcapngWriter::new(
        spool.clone(),
        concat!("pavillion ", env!("CARGO_PKG_VERSION")),
    )?;
    spool.flush()?;
    p.capture = Some(Arc::new(Capture {
        writer: Mutex::new(writer),
        spool,
    }));
    p.tap = None;
    Ok(())
}

impl Tap {
    /// The process's tap for a driver that is starting, or `None` when neither the key log
    /// nor a capture is on. Reads [`KEYLOG_ENV`] the first time, and opens the file it
    /// names (printing [`KEYLOG_WARNING`] once); a file that cannot be opened is reported on
    /// stderr and the key log stays off.
    pub fn for_driver() -> Option<Arc<Tap>> {
        let mut guard = process();
        let p = guard.get_or_insert_with(Process::default);
        if !p.env_read {
            p.env_read = true;
            // As `KeyLogFile::from_env`, read here so that a process without the variable
            // never touches the key log code at all.
            let named = std::env::var_os(KEYLOG_ENV).filter(|p| !p.is_empty());
            match named.map(|p| KeyLogFile::open(Path::new(&p))) {
                Some(Ok(file)) => {
                    eprintln!("{KEYLOG_WARNING}");
                    // Not the warning again: with a subscriber on stderr it would print twice.
                    tracing::warn!(path = %file.path().display(), "writing session keys to a key log file");
                    p.key_log = Some(Arc::new(Mutex::new(file)));
                }
                Some(Err(e)) => {
                    eprintln!("cannot open the key log named by {KEYLOG_ENV}: {e}; no key log");
                    tracing::warn!(error = %e, "cannot open the key log file");
                }
                None => {}
            }
        }
        if p.tap.is_none() && (p.key_log.is_some() || p.capture.is_some()) {
            p.tap = Some(Arc::new(Tap {
                key_log: p.key_log.clone(),
                capture: p.capture.clone(),
                key_log_failed: AtomicBool::new(false),
                capture_failed: AtomicBool::new(false),
            }));
        }
        p.tap.clone()
    }

    /// Whether session secrets are written: the driver then turns the endpoint's key log on.
    pub fn logs_keys(&self) -> bool {
        self.key_log.is_some()
    }

    /// Whether datagrams are captured.
    pub fn captures(&self) -> bool {
        self.capture.is_some()
    }

    /// Turns `endpoint`'s key log on if this tap writes one; a driver calls it once, before
    /// the endpoint's first input.
    pub fn attach<E: Endpoint + ?Sized>(&self, endpoint: &mut E) {
        if self.logs_keys() {
            endpoint.set_key_log(true);
        }
    }

    /// Writes every secret `endpoint` has queued. Cheap when none is: one `None` from
    /// `poll_secret`.
    pub fn drain_secrets<E: Endpoint + ?Sized>(&self, endpoint: &mut E) {
        let Some(log) = &self.key_log else { return };
        while let Some(secret) = endpoint.poll_secret() {
            self.write_secret(log, &secret);
        }
    }

    /// Writes one secret (for drivers of roles outside [`Endpoint`]).
    pub fn secret(&self, secret: &SessionSecret) {
        if let Some(log) = &self.key_log {
            self.write_secret(log, secret);
        }
    }

    fn write_secret(&self, log: &Mutex<KeyLogFile>, secret: &SessionSecret) {
        let result = log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(secret);
        if let Err(e) = result {
            if !self.key_log_failed.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "cannot write the key log; secrets are being lost");
            }
        }
    }

    /// Copies one datagram to the capture: `local` is the socket's own address (an
    /// unspecified one is shown as the loopback address of its family when the peer is on
    /// loopback), `peer` the other end, `inbound` whether it was received.
    pub fn datagram(&self, local: SocketAddr, peer: SocketAddr, inbound: bool, bytes: &[u8]) {
        let Some(capture) = &self.capture else { return };
        let local = shown(local, peer);
        let (from, to) = if inbound {
            (peer, local)
        } else {
            (local, peer)
        };
        let result = capture
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_udp(now(), from, to, bytes, None)
            .and_then(|()| capture.spool.lock().flush());
        if let Err(e) = result {
            if !self.capture_failed.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "cannot write the capture; datagrams are being lost");
            }
        }
    }

    /// Flushes what is buffered (nothing is, after each write: for a driver that stops).
    pub fn flush(&self) {
        if let Some(c) = &self.capture {
            let _ = c.spool.lock().flush();
        }
    }
}

/// The local address as the capture shows it.
fn shown(local: SocketAddr, peer: SocketAddr) -> SocketAddr {
    if !local.ip().is_unspecified() {
        return local;
    }
    let ip: IpAddr = match (local.ip(), peer.ip().is_loopback()) {
        (IpAddr::V4(_), true) => Ipv4Addr::LOCALHOST.into(),
        (IpAddr::V6(_), true) => Ipv6Addr::LOCALHOST.into(),
        (ip, false) => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// Real time, as a capture's timestamps are.
fn now() -> CaptureTime {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    CaptureTime(us)
}
