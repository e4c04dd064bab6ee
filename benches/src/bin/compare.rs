//! Prints one table that checks pavillion-rs against its performance targets.
//!
//! Run by hand, in release: `cargo run --release -p pavillion-benches --bin compare`.
//!
//! Every row is a ratio of two things measured side by side in this run on this machine, so
//! that the verdict does not depend on how fast the machine is:
//! - **core vs crypto floor**: reliable 64-byte messages per second through an in-memory
//!   client–server pair, against the cost of only the seal and open calls that those messages
//!   and their ACKs need (the floor no implementation of the protocol can beat);
//! - **loopback**, through `pavillion-std`'s public API on 127.0.0.1: calls per second to an
//!   echo registered with `Server::register` (the user's path) and to function 0 (answered by
//!   the endpoint itself), against a raw UDP ping-pong with the same payload size; reliable
//!   64-byte messages per second that reach a server subscriber, several in flight, against
//!   a raw UDP one-way blast;
//! - **bulk**: a 16 MiB reliable message through `pavillion-std` on 127.0.0.1 (sent in
//!   segments; `Client::send_message` to a server's message callback), against a plain TCP
//!   transfer of the same bytes, with the retransmissions the Pavillion run needed;
//! - **memory**: heap bytes per idle session of a server holding 10k and 100k sessions,
//!   counted by a global allocator, and servers of 1M (psk) and 100k sessions (ecc, noise)
//!   that still deliver a message from 1,000 random clients (`pavillion_benches::memory`);
//! - **recovery**: simulated time from a server reboot until the server's application has a
//!   message sent right after it (and, shown beside it, until a call is answered), in RTTs of
//!   the in-memory network.
//!
//! `--peer-cmd` runs an external command (for example a reference client's benchmark) and
//! divides the calls/s it prints by ours.

use std::hint::black_box;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration as WallDuration, Instant as WallInstant};

use clap::Parser;
use pavillion_benches::{payload, rate, Suite, NAME, PAYLOAD, TARGET};
use pavillion_proto::wire::{MAX_DATAGRAM, SESSION_OVERHEAD};

/// The memory rows read live heap bytes from this allocator (`pavillion_benches::memory`).
#[global_allocator]
static ALLOCATOR: pavillion_benches::memory::Counting = pavillion_benches::memory::Counting;

/// Command-line options of `compare`.
#[derive(Parser, Debug)]
#[command(about = "Checks pavillion-rs against its performance targets; run in release")]
struct Args {
    /// Seconds spent on each throughput measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Print only the crypto floor (seal+open per size and cipher), for comparing builds
    /// such as `RUSTFLAGS="-C target-cpu=native"`.
    #[arg(long)]
    crypto_only: bool,
    /// Skip the 100k-session memory measurement (it takes the longest to set up).
    #[arg(long)]
    skip_100k: bool,
    /// Skip the large servers that prove serving (psk at 1M sessions, ecc and noise at 100k;
    /// minutes to set up).
    #[arg(long)]
    skip_1m: bool,
    /// Print only the memory rows, for iterating on the size of session state.
    #[arg(long)]
    memory_only: bool,
    /// Print only the handshake cost rows (per suite, against one Diffie–Hellman).
    #[arg(long)]
    handshake_only: bool,
    /// Print only the crypto floor and the loopback RPC rows, for profiling the adapter.
    #[arg(long)]
    loopback_only: bool,
    /// Print only the bulk rows (16 MiB message vs TCP), for profiling large transfers.
    #[arg(long)]
    bulk_only: bool,
    /// Print only the durable messages row (durable vs reliable on loopback, psk).
    #[arg(long)]
    durable_only: bool,
    /// Measure only the pipelined-message rows (every suite, with the raw UDP blast and the
    /// blocking threads' figure beside them).
    #[arg(long)]
    pipelined_only: bool,
    /// Measure only the core vs crypto floor rows (every suite).
    #[arg(long)]
    core_only: bool,
    /// Measure only the io-smol rows (pipelined messages and RPC through the async adapter).
    #[arg(long)]
    smol_only: bool,
    /// Measure only the MQTT bridge row (issue 21): through `pav bridge` into mosquitto
    /// against direct QoS 1 publishing (`pavillion_benches::bridge`).
    #[arg(long)]
    bridge_only: bool,
    /// Size of the bulk message, in MiB.
    #[arg(long, default_value_t = 16)]
    bulk_mib: usize,
    /// Also print every figure as a `result<TAB>key<TAB>value<TAB>unit` line at the end
    /// (`pavillion_benches::results`), for `benches/peers/compare-all.sh`.
    #[arg(long)]
    results: bool,
    /// A shell command whose output's last number is another implementation's calls/s on
    /// loopback; its ratio to our loopback RPC is printed.
    #[arg(long)]
    peer_cmd: Option<String>,
}

/// Seconds per seal+open of a `len`-byte plaintext under `suite`'s cipher.
fn seal_open_secs(suite: Suite, len: usize, seconds: f64) -> f64 {
    let cipher = suite.cipher();
    let mut buf = payload(len);
    let mut counter = 1u64;
    1.0 / rate(seconds, || {
        for _ in 0..256 {
            counter += 1;
            cipher.seal_open(counter, black_box(&mut buf));
        }
        256
    })
}

/// One line of the table.
struct Row {
    what: String,
    ours: String,
    reference: String,
    ratio: f64,
    target: &'static str,
    ok: Option<bool>,
}

fn print_table(rows: &[Row]) {
    let w = rows.iter().map(|r| r.what.len()).max().unwrap_or(0).max(8);
    println!(
        "{:<w$} {:>18} {:>18} {:>8}  {:<16} verdict",
        "measure", "pavillion", "reference", "ratio", "target"
    );
    println!("{}", "-".repeat(w + 76));
    for r in rows {
        let verdict = match r.ok {
            Some(true) => "MET",
            Some(false) => "MISSED",
            None => "-",
        };
        println!(
            "{:<w$} {:>18} {:>18} {:>8.2}  {:<16} {verdict}",
            r.what, r.ours, r.reference, r.ratio, r.target
        );
    }
}

fn crypto_floor(args: &Args) {
    println!("crypto floor: one seal + one open, ns (MB/s of plaintext)");
    for suite in [Suite::Psk, Suite::Noise] {
        let cipher = match suite {
            Suite::Noise => "chacha20poly1305 (suite 3)",
            _ => "xsalsa20poly1305 (suites 1, 2)",
        };
        let mut line = format!("  {cipher:<32}");
        for len in [64, 256, 1200] {
            let s = seal_open_secs(suite, len, args.seconds / 2.0);
            line += &format!(
                "  {len:>4} B: {:>7.0} ns ({:>6.0} MB/s)",
                s * 1e9,
                len as f64 / s / 1e6
            );
        }
        println!("{line}");
    }
}

/// Core vs crypto floor for one suite: the direct row (the target) and the network row, the
/// floor counted per datagram the run carried (`pavillion_benches::core_floor`).
fn core_rows(suite: Suite, seconds: f64) -> Vec<Row> {
    pavillion_benches::core_floor::rows(suite, seconds)
        .into_iter()
        .map(|r| Row {
            what: r.what(),
            ours: format!("{:.0} msg/s", r.ours),
            reference: format!("{:.0} msg/s", r.floor),
            ratio: r.ratio(),
            target: "<= 1.2x floor",
            ok: r.ok(),
        })
        .collect()
}

/// A connected `pavillion-std` pair on 127.0.0.1 in `suite`, with a registered echo handler
/// (function [`ECHO`]) and a subscriber that counts messages to [`TARGET`].
struct StdPair {
    server: pavillion_std::Server,
    client: std::sync::Arc<pavillion_std::Client>,
    received: std::sync::Arc<AtomicU64>,
}

/// The function the benchmark registers through `Server::register`: an echo, answered by
/// application code on the server's driver thread, as users' functions are.
const ECHO: u16 = 400;

impl StdPair {
    fn connected(suite: Suite) -> StdPair {
        use pavillion_std::{Client, RpcFailure, Server};
        let (server_config, client_config) = pavillion_benches::bulk::std_configs(suite);
        let server = Server::bind("127.0.0.1:0", server_config).expect("bind on loopback");
        server.register(ECHO, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
        let received = std::sync::Arc::new(AtomicU64::new(0));
        let count = received.clone();
        server.on_message(Some(TARGET), move |_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        let client = Client::connect(server.local_addr(), client_config).expect("client socket");
        client
            .wait_connected(WallDuration::from_secs(5))
            .expect("handshake on loopback");
        StdPair {
            server,
            client: std::sync::Arc::new(client),
            received,
        }
    }

    /// Calls per second of `function` with `data`, one call at a time.
    fn calls(&self, function: u16, data: &[u8], seconds: f64) -> f64 {
        rate(seconds, || {
            for _ in 0..64 {
                let got = self.client.call(function, data).expect("echo answered");
                debug_assert_eq!(&got[..], data);
            }
            64
        })
    }

    /// Reliable messages per second that reach the server's subscriber, from [`WINDOW`]
    /// threads each sending `data` one reliable message after another through
    /// `Client::send_message` (which blocks until the ACK).
    fn pipelined(&self, data: &[u8], seconds: f64) -> f64 {
        use pavillion_std::Reliability;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..WINDOW)
            .map(|_| {
                let (client, stop, data) = (self.client.clone(), stop.clone(), data.to_vec());
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        client
                            .send_message(TARGET, NAME, &data, Reliability::Reliable)
                            .expect("message acknowledged");
                    }
                })
            })
            .collect();
        let got = received_rate(&self.received, seconds);
        stop.store(true, Ordering::Relaxed);
        for s in senders {
            s.join().expect("sender thread");
        }
        got
    }

    fn close(self) {
        if let Ok(client) = std::sync::Arc::try_unwrap(self.client) {
            client.close();
        }
        drop(self.server);
    }
}

/// Reliable messages a pipelined sender keeps in flight: one blocking sender thread each.
const WINDOW: usize = 8;

/// The rate at which `counter` grows, over `seconds` after a warm-up of a tenth of that.
fn received_rate(counter: &AtomicU64, seconds: f64) -> f64 {
    thread::sleep(WallDuration::from_secs_f64(seconds / 10.0));
    let (n0, t0) = (counter.load(Ordering::Relaxed), WallInstant::now());
    thread::sleep(WallDuration::from_secs_f64(seconds));
    let n1 = counter.load(Ordering::Relaxed);
    (n1 - n0) as f64 / t0.elapsed().as_secs_f64()
}

/// The loopback rows of one suite, every figure measured in this run: RPC to a handler
/// registered through `Server::register` and to function 0 (which the endpoint answers
/// itself) against a raw UDP ping-pong of the same size; pipelined reliable messages to a
/// subscriber against a raw UDP one-way blast. The three round-trip figures are taken in
/// alternating slices, so that a change of load on the machine hits them alike.
fn loopback_rows(suite: Suite, seconds: f64) -> Vec<Row> {
    let data = payload(PAYLOAD);
    let pair = StdPair::connected(suite);
    const SLICES: usize = 3;
    let slice = seconds / SLICES as f64;
    let (mut registered, mut zero, mut raw) = (0.0, 0.0, 0.0);
    for _ in 0..SLICES {
        registered += pair.calls(ECHO, &data, slice) / SLICES as f64;
        zero += pair.calls(0, &data, slice) / SLICES as f64;
        raw += raw_udp_rate(&data, slice) / SLICES as f64;
    }
    let messages = pair.pipelined(&data, seconds);
    pair.close();
    let blast = raw_udp_blast(&data, seconds);
    let piped = pipelined_row(suite, seconds, messages, blast);
    let name = suite.name();
    use pavillion_benches::results::record;
    record(&format!("rpc_handler_64_{name}"), registered, "calls/s");
    record(&format!("rpc_fn0_64_{name}"), zero, "calls/s");
    record(&format!("raw_udp_pingpong_64_{name}"), raw, "rt/s");
    record(&format!("reliable_threads_64_{name}"), messages, "msg/s");
    record(&format!("raw_udp_blast_64_{name}"), blast, "dg/s");
    vec![
        Row {
            what: format!("loopback RPC, registered handler vs raw UDP ping-pong, {name}"),
            ours: format!("{registered:.0} calls/s"),
            reference: format!("{raw:.0} rt/s"),
            ratio: registered / raw,
            target: ">= 0.8x raw",
            ok: Some(registered / raw >= 0.8),
        },
        Row {
            what: format!("loopback RPC, function 0 vs raw UDP ping-pong, {name}"),
            ours: format!("{zero:.0} calls/s"),
            reference: format!("{raw:.0} rt/s"),
            ratio: zero / raw,
            target: "(context)",
            ok: None,
        },
        Row {
            what: format!(
                "loopback reliable 64 B msgs ({WINDOW} in flight) vs raw UDP blast, {name}"
            ),
            ours: format!("{messages:.0} msg/s"),
            reference: format!("{blast:.0} dg/s"),
            ratio: messages / blast,
            target: "(informative)",
            ok: None,
        },
        piped,
    ]
}

/// The pipelined row of one suite (`pavillion_benches::pipelined`), beside the raw UDP
/// `blast` and the blocking `threads` figure of the same run; records `pipelined_64_SUITE`.
fn pipelined_row(suite: Suite, seconds: f64, threads: f64, blast: f64) -> Row {
    use pavillion_benches::pipelined::{pipelined, THREADS, WINDOW};
    let got = pipelined(suite, WINDOW, seconds);
    let name = suite.name();
    pavillion_benches::results::record(&format!("pipelined_64_{name}"), got.rate, "msg/s");
    Row {
        what: format!(
            "loopback pipelined reliable 64 B msgs (window {WINDOW}), {name} \
             [{THREADS} blocking threads: {threads:.0} msg/s; {} failed, {:.2} datagrams \
             and {:.3} retransmissions per message]",
            got.failed,
            got.datagrams as f64 / got.messages.max(1) as f64,
            got.retransmissions as f64 / got.messages.max(1) as f64,
        ),
        ours: format!("{:.0} msg/s", got.rate),
        reference: format!("{blast:.0} dg/s"),
        ratio: got.rate / blast,
        target: ">= 1M msg/s",
        ok: Some(got.rate >= 1e6),
    }
}

/// Runs of each bulk transfer; the median is reported.
const BULK_RUNS: usize = 3;

/// The bulk rows of one suite: a `mib` MiB reliable message through `pavillion-std` on
/// loopback (delivered to the server's callback) against a plain TCP transfer of the same
/// bytes, the medians of [`BULK_RUNS`] runs of each, alternated; and, for context, the same
/// figure against the crypto floor of a full segment (one seal and one open of a datagram's
/// plaintext on one core: what the transfer costs at the least, since TCP encrypts nothing).
fn bulk_rows(suite: Suite, mib: usize, seconds: f64) -> Vec<Row> {
    use pavillion_benches::bulk::{pavillion_bulk, tcp_bulk};
    let data = payload(mib << 20);
    let mut ours = Vec::new();
    let mut tcp = Vec::new();
    for _ in 0..BULK_RUNS {
        ours.extend(pavillion_bulk(suite, &data, 1));
        tcp.push(tcp_bulk(&data));
    }
    let retransmissions: u64 = ours.iter().map(|r| r.retransmissions).sum();
    let datagrams = ours.iter().map(|r| r.datagrams_sent).sum::<u64>() / BULK_RUNS as u64;
    let mut delivered: Vec<_> = ours.iter().map(|r| r.delivered).collect();
    delivered.sort();
    tcp.sort();
    let mb_s = |d: WallDuration| data.len() as f64 / d.as_secs_f64() / 1e6;
    let (p, t) = (mb_s(delivered[BULK_RUNS / 2]), mb_s(tcp[BULK_RUNS / 2]));
    eprintln!(
        "bulk {}: {} datagrams per run, {retransmissions} retransmissions in {BULK_RUNS} runs; \
         runs (ms) pavillion {:?}, tcp {:?}",
        suite.name(),
        datagrams,
        delivered.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        tcp.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
    );
    let segment = MAX_DATAGRAM - SESSION_OVERHEAD;
    let floor = segment as f64 / seal_open_secs(suite, segment, seconds / 2.0) / 1e6;
    vec![
        Row {
            what: format!("loopback bulk {mib} MiB message vs TCP, {}", suite.name()),
            ours: format!("{p:.0} MB/s {retransmissions} rtx"),
            reference: format!("{t:.0} MB/s"),
            ratio: p / t,
            target: ">= 0.5x TCP, 0 rtx",
            ok: Some(p / t >= 0.5 && retransmissions == 0),
        },
        Row {
            what: format!(
                "loopback bulk {mib} MiB message vs crypto floor ({segment} B), {}",
                suite.name()
            ),
            ours: format!("{p:.0} MB/s"),
            reference: format!("{floor:.0} MB/s"),
            ratio: p / floor,
            target: "(context)",
            ok: None,
        },
    ]
}

/// Round trips per second of `data` between two UDP sockets on 127.0.0.1, the echo side on
/// its own thread as the pavillion server is.
fn raw_udp_rate(data: &[u8], seconds: f64) -> f64 {
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
    let mut buf = [0u8; 2048];
    let r = rate(seconds, || {
        for _ in 0..64 {
            sock.send(data).expect("send");
            let n = sock.recv(&mut buf).expect("recv");
            assert_eq!(n, data.len());
        }
        64
    });
    // An empty datagram tells the echo thread to stop.
    sock.send(&[]).expect("send");
    handle.join().expect("echo thread");
    r
}

/// Datagrams of `data` per second that a receiving thread reads, while another sends them to
/// it on 127.0.0.1 as fast as it can (what the socket buffer cannot hold is dropped).
fn raw_udp_blast(data: &[u8], seconds: f64) -> f64 {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind on loopback");
    let sink_addr = sink.local_addr().expect("bound");
    sink.set_read_timeout(Some(WallDuration::from_millis(50)))
        .expect("read timeout");
    let received = std::sync::Arc::new(AtomicU64::new(0));
    let stop = std::sync::Arc::new(AtomicBool::new(false));
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

/// The memory rows (`pavillion_benches::memory`), after the layout of an idle session.
fn memory_rows(args: &Args) -> Vec<Row> {
    use pavillion_benches::memory::{print_layout, rows, Options};
    print_layout();
    let options = Options {
        skip_100k: args.skip_100k,
        skip_1m: args.skip_1m,
    };
    rows(options)
        .into_iter()
        .map(|r| Row {
            what: r.what,
            ours: r.ours,
            reference: r.reference,
            ratio: r.ratio,
            target: r.target,
            ok: Some(r.ok),
        })
        .collect()
}

/// Simulated time from a server reboot until the server's application has a message sent
/// right after it, in RTTs of the clean in-memory link (the measure); the call made
/// right after the reboot is answered in the time shown in parentheses.
fn recovery_row(suite: Suite) -> Row {
    let r = pavillion_benches::recovery::after_reboot(suite);
    let rtts = r.delivered_rtts();
    let rtt_ms = r.rtt.as_micros() as f64 / 1000.0;
    if rtts.is_finite() {
        let key = format!("recovery_rtt_{}", suite.name());
        pavillion_benches::results::record(&key, rtts, "rtt");
    }
    let ms = |t: Option<pavillion_proto::Duration>| match t {
        Some(t) => format!("{:.1} ms", t.as_micros() as f64 / 1000.0),
        None => "never".into(),
    };
    let bound = if suite == Suite::Noise { 1.5 } else { 3.0 };
    Row {
        what: format!("recovery after server reboot, {}", suite.name()),
        ours: format!(
            "{} (call answered {})",
            ms(r.delivered_after),
            ms(r.answered_after)
        ),
        reference: format!("RTT {rtt_ms:.1} ms"),
        ratio: rtts,
        target: if suite == Suite::Noise {
            "<= 1.5 RTT"
        } else {
            "<= 3 RTT"
        },
        ok: Some(rtts <= bound),
    }
}

/// Runs `cmd` and reads the last number it prints as calls/s.
fn peer_rate(cmd: &str) -> Option<f64> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|t| t.parse::<f64>().ok())
        .next_back()
}

fn main() {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build measures nothing useful; use --release");
    }
    run(&args);
    if args.results {
        println!();
        for line in pavillion_benches::results::lines() {
            println!("{line}");
        }
    }
}

/// Measures and prints the rows `args` asks for.
fn run(args: &Args) {
    crypto_floor(args);
    if args.crypto_only {
        return;
    }
    println!();

    let mut rows = Vec::new();
    if args.bulk_only {
        for suite in Suite::ALL {
            rows.extend(bulk_rows(suite, args.bulk_mib, args.seconds));
        }
        println!();
        print_table(&rows);
        return;
    }
    if args.durable_only {
        rows.push(durable_row(Suite::Psk, args.seconds));
        println!();
        print_table(&rows);
        return;
    }
    if args.pipelined_only {
        for suite in Suite::ALL {
            let pair = StdPair::connected(suite);
            let threads = pair.pipelined(&payload(PAYLOAD), args.seconds);
            pair.close();
            let blast = raw_udp_blast(&payload(PAYLOAD), args.seconds);
            rows.push(pipelined_row(suite, args.seconds, threads, blast));
        }
        println!();
        print_table(&rows);
        return;
    }
    if args.bridge_only {
        match pavillion_benches::bridge::measure() {
            Ok(r) => rows.push(Row {
                what: format!(
                    "MQTT bridge, {} x 64 B QoS 1 into mosquitto vs {}",
                    pavillion_benches::bridge::MESSAGES,
                    r.direct_by
                ),
                ours: format!("{:.0} msg/s", r.bridge),
                reference: format!("{:.0} msg/s", r.direct),
                ratio: r.bridge / r.direct,
                target: "(informative)",
                ok: None,
            }),
            Err(why) => println!("bridge row skipped: {why}"),
        }
        println!();
        print_table(&rows);
        return;
    }
    if args.smol_only {
        for m in pavillion_benches::smol_io::rows(args.seconds) {
            println!("{:<60} {:>12.0} {}", m.what, m.rate, m.unit);
        }
        return;
    }
    if args.handshake_only {
        rows.extend(handshake_cost_rows(args.seconds));
        println!();
        print_table(&rows);
        return;
    }
    if args.memory_only {
        rows.extend(memory_rows(args));
        println!();
        print_table(&rows);
        return;
    }
    if !args.loopback_only {
        for suite in Suite::ALL {
            rows.extend(core_rows(suite, args.seconds));
        }
        if args.core_only {
            println!();
            print_table(&rows);
            return;
        }
        for b in pavillion_benches::batched::rows(args.seconds) {
            rows.push(Row {
                what: format!("{} [{:.3} dg/msg]", b.what, b.datagrams_per_message),
                ours: format!("{:.0} msg/s", b.ours),
                reference: format!("{:.0} msg/s", b.floor),
                ratio: b.ours / b.floor,
                target: "context",
                ok: None,
            });
        }
    }
    let mut ours_psk_rpc = None;
    for suite in Suite::ALL {
        let loopback = loopback_rows(suite, args.seconds);
        if suite == Suite::Psk {
            ours_psk_rpc = loopback.first().and_then(|row| {
                row.ours
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<f64>().ok())
            });
        }
        rows.extend(loopback);
    }
    if !args.loopback_only {
        for suite in Suite::ALL {
            rows.extend(bulk_rows(suite, args.bulk_mib, args.seconds));
        }
    }
    if let (Some(cmd), Some(ours)) = (&args.peer_cmd, ours_psk_rpc) {
        match peer_rate(cmd) {
            Some(peer) => rows.push(Row {
                what: "loopback RPC (registered handler) vs external peer, psk".into(),
                ours: format!("{ours:.0} calls/s"),
                reference: format!("{peer:.0} calls/s"),
                ratio: ours / peer,
                target: "(informative)",
                ok: None,
            }),
            None => eprintln!("--peer-cmd printed no number"),
        }
    }
    if args.loopback_only {
        println!();
        print_table(&rows);
        return;
    }
    rows.push(durable_row(Suite::Psk, args.seconds));
    rows.extend(handshake_cost_rows(args.seconds));
    rows.extend(memory_rows(args));
    for suite in Suite::ALL {
        rows.push(recovery_row(suite));
    }
    println!();
    print_table(&rows);
}

/// Handshake cost per suite in Diffie–Hellman-equivalents (`pavillion_benches::handshake_cost`).
fn handshake_cost_rows(seconds: f64) -> Vec<Row> {
    pavillion_benches::handshake_cost::rows(seconds)
        .into_iter()
        .map(|r| Row {
            what: r.what,
            ours: r.ours,
            reference: r.reference,
            ratio: r.ratio,
            target: "(informative)",
            ok: None,
        })
        .collect()
}

/// Durable messages per second (stored at both ends, batched syncs: see
/// `pavillion_benches::durable`) against reliable non-durable ones, in the same run.
fn durable_row(suite: Suite, seconds: f64) -> Row {
    use pavillion_benches::durable::{durable_rates, PIPELINE, SENDERS};
    let r = durable_rates(suite, seconds);
    let ratio = r.durable / r.reliable;
    Row {
        what: format!(
            "loopback durable 64 B msgs ({SENDERS}x{PIPELINE} queued, group fsync) vs reliable \
             ({SENDERS} in flight), {}",
            suite.name()
        ),
        ours: format!("{:.0} msg/s", r.durable),
        reference: format!("{:.0} msg/s", r.reliable),
        ratio,
        target: ">= 0.3x reliable",
        ok: Some(ratio >= 0.3),
    }
}
