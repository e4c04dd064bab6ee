//! What every subcommand shares: failures and exit codes, output, the signal-aware input
//! loop, payloads, and the value parsers of numbers and durations.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use pavillion_std::ReceivedMessage;
use serde_json::json;

/// A failure to report: exit code 2 for bad input, 1 for a failed operation.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    /// Already printed as JSON on stdout.
    pub(crate) reported: bool,
}

impl Failure {
    /// Bad input: exit code 2.
    pub(crate) fn input(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            kind: "bad_input",
            message: message.into(),
            reported: false,
        }
    }

    /// A failed operation: exit code 1.
    pub(crate) fn failed(kind: &'static str, message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            kind,
            message: message.into(),
            reported: false,
        }
    }
}

/// What the loop of a long-running command waits for.
pub(crate) enum Input<T> {
    Item(T),
    /// SIGINT, SIGTERM or SIGHUP.
    Stop,
}

/// A channel that callbacks feed, and that a termination signal ends. `ctrlc` (with its
/// `termination` feature) runs the handler on its own thread, outside the signal context, so
/// the handler can simply send on the channel and let the main thread close the endpoint
/// (which sends quit) before it exits.
pub(crate) fn inputs<T: Send + 'static>() -> (mpsc::Sender<Input<T>>, mpsc::Receiver<Input<T>>) {
    let (tx, rx) = mpsc::channel();
    let stop = tx.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = stop.send(Input::Stop);
    }) {
        tracing::warn!(error = %e, "cannot catch signals; they will end pav without a quit");
    }
    (tx, rx)
}

/// A thread that moves a handle's events into the command's input channel, so that the main
/// loop waits on one channel for events, signals, its deadline and its stats tick.
pub(crate) struct Forwarder {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Forwarder {
    /// Sends every item `next` yields (it waits at most the given time for one) as
    /// [`Input::Item`] until [`Forwarder::stop`] or the receiver is gone.
    pub(crate) fn start<T: Send + 'static>(
        tx: mpsc::Sender<Input<T>>,
        next: impl Fn(Duration) -> Option<T> + Send + 'static,
    ) -> Forwarder {
        use std::sync::atomic::{AtomicBool, Ordering};
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let stop = std::sync::Arc::clone(&done);
        let thread = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(item) = next(Duration::from_millis(100)) {
                    if tx.send(Input::Item(item)).is_err() {
                        break;
                    }
                }
            }
        });
        Forwarder { done, thread }
    }

    /// Stops the thread and waits for it (within one wait of `next`).
    pub(crate) fn stop(self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Why [`next_input`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The deadline passed.
    Deadline,
    /// A termination signal, or every sender gone.
    Stopped,
    /// `tick` is due (see [`next_input`]).
    Tick,
}

/// The next input, or why there is none: the deadline, a termination signal, or `tick`
/// coming due first.
pub(crate) fn next_input<T>(
    inputs: &mpsc::Receiver<Input<T>>,
    deadline: Option<Instant>,
    tick: Option<Instant>,
) -> Result<T, Ended> {
    loop {
        let now = Instant::now();
        let until = match (deadline, tick) {
            (Some(d), Some(t)) => Some(d.min(t)),
            (d, t) => d.or(t),
        };
        let wait = match until {
            Some(u) => match u.checked_duration_since(now) {
                Some(w) if !w.is_zero() => w,
                _ => {
                    return Err(if deadline.is_some_and(|d| d <= now) {
                        Ended::Deadline
                    } else {
                        Ended::Tick
                    })
                }
            },
            None => Duration::from_secs(3600),
        };
        match inputs.recv_timeout(wait) {
            Ok(Input::Item(m)) => return Ok(m),
            Ok(Input::Stop) => {
                tracing::info!("signal received; closing");
                return Err(Ended::Stopped);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err(Ended::Stopped),
        }
    }
}

pub(crate) fn print_stopped(json: bool) {
    if json {
        println!("{}", json!({"event": "stopped"}));
    } else {
        println!("stopped");
    }
}

pub(crate) fn print_message(json: bool, m: &ReceivedMessage) {
    let peer = m.peer.map(|p| p.to_string());
    if json {
        println!(
            "{}",
            json!({
                "event": "message",
                "from": m.from.to_string(),
                "peer": peer,
                "target": m.target(),
                "name": m.name(),
                "data": String::from_utf8_lossy(m.payload()),
                "data_hex": hex::encode(m.payload()),
                "reliable": m.reliable,
            })
        );
    } else {
        let who = peer.map_or_else(|| m.from.to_string(), |p| format!("{} ({p})", m.from));
        let data = if m.payload().len() >= SHOW_LIMIT {
            format!("({} bytes)", m.payload().len())
        } else {
            show(m.payload())
        };
        println!("{who} {}/{}: {data}", m.target(), m.name());
    }
}

/// Text if the bytes are UTF-8, hex otherwise.
pub(crate) fn show(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("0x{}", hex::encode(data)),
    }
}

/// The payload of a call or message: the argument text (`-` reads stdin), or the bytes of
/// `file`; hex-decoded with `hex`.
pub(crate) fn payload(text: &str, file: Option<&Path>, is_hex: bool) -> Result<Vec<u8>, Failure> {
    let raw = match (file, text) {
        (Some(path), _) => std::fs::read(path)
            .map_err(|e| Failure::input(format!("--file {}: {e}", path.display())))?,
        (None, "-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| Failure::input(format!("cannot read the payload from stdin: {e}")))?;
            buf
        }
        (None, t) => t.as_bytes().to_vec(),
    };
    if !is_hex {
        return Ok(raw);
    }
    let text = String::from_utf8_lossy(&raw);
    let compact: String = text.split_whitespace().collect();
    hex::decode(&compact).map_err(|e| Failure::input(format!("bad hex {compact:?}: {e}")))
}

/// `path` relative to `base` (a configuration file's folder) unless it is absolute.
pub(crate) fn relative_to(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

// Value parsers: each gives clap a clear message, and clap exits with status 2.

pub(crate) fn function(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .map_err(|_| format!("function number must be 0 to 65535, not {s:?}"))
}

pub(crate) fn seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("expected seconds, not {s:?}"))
}

/// A duration: a number of seconds, or a number with a unit (`us`, `ms`, `s`, `m`):
/// `0.5`, `250ms`, `2s`, `1m`.
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        _ => f64::NAN,
    };
    number
        .parse::<f64>()
        .ok()
        .map(|v| v * scale)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("expected a duration such as 0.5, 250ms, 2s or 1m, not {s:?}"))
}

/// A size in bytes: a whole number with an optional unit, `K`/`KiB` (1024), `M`/`MiB`,
/// `G`/`GiB`: `65536`, `512K`, `16M`, `16MiB`.
pub(crate) fn size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => Some(0),
        "k" | "kib" => Some(10),
        "m" | "mib" => Some(20),
        "g" | "gib" => Some(30),
        _ => None,
    };
    shift
        .zip(number.parse::<usize>().ok())
        .and_then(|(shift, n)| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("expected a size such as 65536, 512K or 16M, not {s:?}"))
}

/// Messages at least this large are shown by their size, not their bytes, in text output:
/// beyond a datagram, they are files rather than readings.
pub(crate) const SHOW_LIMIT: usize = 64 << 10;

/// A positive count.
pub(crate) fn count(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a whole number of at least 1, not {s:?}"))
}

/// A [`Duration`] in microseconds, for JSON.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A [`Duration`] for people: µs below 1 ms, ms with two decimals below 10 s, else seconds.
pub(crate) fn human(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us} µs")
    } else if us < 10_000_000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(duration("10us"), Ok(Duration::from_micros(10)));
        assert!(duration("fast").is_err());
        assert!(duration("1h").is_err());
        assert!(duration("-1").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size("65536"), Ok(65536));
        assert_eq!(size("512K"), Ok(512 << 10));
        assert_eq!(size("16M"), Ok(16 << 20));
        assert_eq!(size("16MiB"), Ok(16 << 20));
        assert_eq!(size("1g"), Ok(1 << 30));
        assert!(size("").is_err());
        assert!(size("16 MB").is_err());
        assert!(size("-1").is_err());
        assert!(size("99999999999999999999G").is_err());
    }
}
