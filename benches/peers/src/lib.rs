//! What the peer programs share: the measuring loops of `pavillion-benches`' `compare`,
//! copied so that a quinn or Zenoh figure is taken exactly as ours is, and the same-process
//! raw UDP baselines (a ping-pong and a one-way blast) that every ratio is taken against.
//!
//! Every program prints human lines and, at the end, one `result<TAB>key<TAB>value<TAB>unit`
//! line per figure, the format of `pavillion_benches::results`, which
//! `benches/peers/compare-all.sh` reads.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The payload size of every row: 64 bytes, as compare's loopback rows.
pub const PAYLOAD: usize = 64;

/// Round trips per call of the closure that [`rate`] times, as compare's `StdPair::calls`.
pub const BATCH: u64 = 64;

/// The payload compare sends: bytes 0, 1, 2, ...
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| i as u8).collect()
}

/// The command line every program takes: `--seconds S` (default 2, as compare's).
pub fn seconds_arg() -> f64 {
    let mut args = std::env::args().skip(1);
    let mut seconds = 2.0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|s: &f64| *s > 0.0)
                    .unwrap_or_else(|| usage("--seconds needs a positive number"));
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    seconds
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("{problem}");
    }
    eprintln!(
        "usage: {} [--seconds S]",
        std::env::args().next().unwrap_or_default()
    );
    std::process::exit(if problem.is_empty() { 0 } else { 2 })
}

/// Figures printed as result lines at the end, in the order recorded.
#[derive(Default)]
pub struct Results(Vec<(String, f64, String)>);

impl Results {
    /// Records `value` in `unit` under `key` (a later figure under the same key replaces it).
    pub fn record(&mut self, key: &str, value: f64, unit: &str) {
        self.0.retain(|(k, _, _)| k != key);
        self.0.push((key.to_owned(), value, unit.to_owned()));
    }

    /// Prints the `result` lines, after an empty line, as `compare --results` does.
    pub fn print(&self) {
        println!();
        for (key, value, unit) in &self.0 {
            println!("result\t{key}\t{value:.3}\t{unit}");
        }
    }
}

/// Runs `f` (which returns how many operations it did) for `seconds` after a warm-up of a
/// tenth of that; returns operations per second. compare's `rate`.
pub fn rate(seconds: f64, mut f: impl FnMut() -> u64) -> f64 {
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < seconds / 10.0 {
        f();
    }
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        ops += f();
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

/// The rate at which `counter` grows, over `seconds` after a warm-up of a tenth of that.
/// compare's `received_rate`: throughput is always counted at the receiver.
pub fn received_rate(counter: &AtomicU64, seconds: f64) -> f64 {
    thread::sleep(Duration::from_secs_f64(seconds / 10.0));
    let (n0, t0) = (counter.load(Ordering::Relaxed), Instant::now());
    thread::sleep(Duration::from_secs_f64(seconds));
    let n1 = counter.load(Ordering::Relaxed);
    (n1 - n0) as f64 / t0.elapsed().as_secs_f64()
}

/// Waits until `counter` is non-zero (the first message arrived, so routes and subscriptions
/// are in place), for at most `limit`; false if it never was.
pub fn wait_for_first(counter: &AtomicU64, limit: Duration) -> bool {
    let start = Instant::now();
    while counter.load(Ordering::Relaxed) == 0 {
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

/// A raw UDP echo on 127.0.0.1 served by its own thread (as compare's `raw_udp_rate`), with
/// a connected client socket; kept open so that its slices can alternate with a peer's.
pub struct RawPingPong {
    sock: UdpSocket,
    echo: Option<thread::JoinHandle<()>>,
}

impl RawPingPong {
    /// Binds the echo and the client on 127.0.0.1.
    pub fn new() -> RawPingPong {
        let echo = UdpSocket::bind("127.0.0.1:0").expect("bind on loopback");
        let echo_addr = echo.local_addr().expect("bound");
        let handle = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            loop {
                let (n, from) = echo.recv_from(&mut buf).expect("recv");
                if n == 0 {
                    break;
                }
                echo.send_to(&buf[..n], from).expect("send");
            }
        });
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind on loopback");
        sock.connect(echo_addr).expect("connect");
        RawPingPong {
            sock,
            echo: Some(handle),
        }
    }

    /// Round trips of `data` per second over `seconds`, one in flight.
    pub fn rate(&self, data: &[u8], seconds: f64) -> f64 {
        let mut buf = [0u8; 2048];
        rate(seconds, || {
            for _ in 0..BATCH {
                self.sock.send(data).expect("send");
                let n = self.sock.recv(&mut buf).expect("recv");
                assert_eq!(n, data.len());
            }
            BATCH
        })
    }
}

impl Default for RawPingPong {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RawPingPong {
    fn drop(&mut self) {
        // An empty datagram tells the echo thread to stop.
        let _ = self.sock.send(&[]);
        if let Some(h) = self.echo.take() {
            let _ = h.join();
        }
    }
}

/// Datagrams of `data` per second that a receiving thread reads while another sends them to
/// it on 127.0.0.1 as fast as it can (what the socket buffer cannot hold is dropped).
/// compare's `raw_udp_blast`.
pub fn raw_udp_blast(data: &[u8], seconds: f64) -> f64 {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind on loopback");
    let sink_addr = sink.local_addr().expect("bound");
    sink.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (received, stop) = (received.clone(), stop.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if sink.recv(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let sender = {
        let (stop, data) = (stop.clone(), data.to_vec());
        thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind on loopback");
            sock.connect(sink_addr).expect("connect");
            while !stop.load(Ordering::Relaxed) {
                // A full buffer (ENOBUFS, EAGAIN) only drops the datagram: keep sending.
                let _ = sock.send(&data);
            }
        })
    };
    let r = received_rate(&received, seconds);
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("sender thread");
    reader.join().expect("reader thread");
    r
}

/// A free TCP or UDP port on 127.0.0.1 for a Zenoh locator (Zenoh cannot report the port
/// it picked for `:0` through the stable API): bound, read, released.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    l.local_addr().expect("bound").port()
}

pub mod quic;
pub mod zen;
