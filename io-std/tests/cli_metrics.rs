//! `pav`'s live statistics as processes: `pav serve --metrics ADDR` scraped over TCP after a
//! call and a forwarded message (handshakes, a drop reason series, the RTT histogram),
//! `--stats` with RTT percentiles, and `pav --pcap FILE` with `PAVILLION_KEYLOGFILE`: the
//! call's datagrams both ways, opened by the key log. Every wait is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/pcapng.rs"]
mod pcapng;
#[path = "support/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pavillion_capture::{read_key_log, KEYLOG_ENV, KEYLOG_WARNING};
use pavillion_proto::dissect::{Decryption, Dissector};
use process::{free_port, run_with, scratch, stderr, Running, PAV, WAIT};
use serde_json::Value;

/// A folder with keys for a server and two devices.
fn keys(name: &str) -> PathBuf {
    let dir = scratch(name);
    for who in ["server", "alice", "bob"] {
        let out = run_with(Some(&dir), &["keygen", "--out", who], &[], None);
        assert!(out.status.success(), "{out:?}");
    }
    dir
}

/// The flags of device `who` talking to `addr`.
fn device(who: &str, addr: &str) -> Vec<String> {
    [
        "-s",
        addr,
        "--secret-key-file",
        &format!("{who}/secret.key"),
        "--server-key-file",
        "server/public.key",
        "-t",
        "5",
    ]
    .map(String::from)
    .to_vec()
}

/// `pav serve` with stdout and stderr read line by line; killed when dropped.
struct Serve {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Serve {
    fn start(dir: &Path, args: &[&str]) -> Serve {
        let mut child = Command::new(PAV)
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Serve {
            child,
            stdout,
            stderr,
        }
    }

    /// The exporter's address, from the line it prints on stderr.
    fn metrics_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .stderr
                .recv_timeout(left)
                .expect("no metrics line on stderr");
            if let Some(rest) = line.strip_prefix("metrics on http://") {
                return rest.strip_suffix("/metrics").unwrap().parse().unwrap();
            }
        }
    }

    /// The next JSON line whose `event` is `event`, within `WAIT`.
    fn next_event(&self, event: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .stdout
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {event:?} event in time"));
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["event"] == event {
                return v;
            }
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /metrics`: the status line and the samples (series → value).
fn scrape(addr: SocketAddr) -> (String, BTreeMap<String, f64>) {
    let mut c = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: pav\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let mut samples = BTreeMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        samples.insert(series.to_owned(), value.parse().unwrap());
    }
    (head.lines().next().unwrap().to_owned(), samples)
}

#[test]
fn serve_metrics_are_scraped_after_a_call_and_stats_print_rtt_percentiles() {
    let dir = keys("metrics");
    let addr = format!("127.0.0.1:{}", free_port());
    let serve = Serve::start(
        &dir,
        &[
            "--json",
            "serve",
            "--listen",
            &addr,
            "--duration",
            "30",
            "--secret-key-file",
            "server/secret.key",
            "--client",
            "alice/public.key",
            "--client",
            "bob/public.key",
            "--metrics",
            "127.0.0.1:0",
            "--stats",
            "0.3",
        ],
    );
    let metrics = serve.metrics_addr();
    assert_eq!(serve.next_event("listening")["addr"], addr.as_str());

    // Before any traffic: every family is there, zeros included.
    let (status, before) = scrape(metrics);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(before["pavillion_handshakes_total{role=\"server\"}"], 0.0);
    assert_eq!(before["pavillion_rtt_seconds_count{role=\"server\"}"], 0.0);

    // A listener subscribed to kitchen, a message the server forwards to it reliably (its
    // acknowledgement is the server's RTT sample), a call, and garbage to drop.
    let mut listen_args = vec!["--json", "listen", "kitchen"];
    let alice = device("alice", &addr);
    listen_args.extend(alice.iter().map(String::as_str));
    let listener = Running::start_in(Some(&dir), &listen_args, &[]);
    assert_eq!(listener.next_json()["event"], "listening");
    std::thread::sleep(Duration::from_millis(300));
    let bob = device("bob", &addr);
    let mut send = vec!["--json", "send", "kitchen", "t", "21.5"];
    send.extend(bob.iter().map(String::as_str));
    let out = run_with(Some(&dir), &send, &[], None);
    assert!(out.status.success(), "{out:?}");
    let mut call = vec!["call", "401", "hello"];
    call.extend(bob.iter().map(String::as_str));
    let out = run_with(Some(&dir), &call, &[], None);
    assert!(out.status.success(), "{out:?}");
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"garbage", &addr)
        .unwrap();

    let deadline = Instant::now() + WAIT;
    let after = loop {
        let (status, m) = scrape(metrics);
        assert_eq!(status, "HTTP/1.1 200 OK");
        let done = m["pavillion_drops_total{role=\"server\",reason=\"bad_magic\"}"] >= 1.0
            && m["pavillion_rtt_seconds_count{role=\"server\"}"] >= 1.0;
        if done {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "not counted in time: bad_magic {:?}, rtt count {:?}",
            m.get("pavillion_drops_total{role=\"server\",reason=\"bad_magic\"}"),
            m.get("pavillion_rtt_seconds_count{role=\"server\"}")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        after["pavillion_handshakes_total{role=\"server\"}"] >= 3.0,
        "{after:?}"
    );
    assert!(after["pavillion_sessions{role=\"server\"}"] >= 1.0);
    assert!(after["pavillion_datagrams_received_total{role=\"server\"}"] >= 4.0);
    let count = after["pavillion_rtt_seconds_count{role=\"server\"}"];
    assert_eq!(
        after["pavillion_rtt_seconds_bucket{role=\"server\",le=\"+Inf\"}"],
        count
    );
    assert!(after["pavillion_rtt_seconds_sum{role=\"server\"}"] > 0.0);

    // --stats: the same sample as percentiles.
    let deadline = Instant::now() + WAIT;
    let stats = loop {
        let v = serve.next_event("stats");
        if v["rtt"]["samples"].as_u64().unwrap_or(0) >= 1 {
            break v;
        }
        assert!(Instant::now() < deadline, "no RTT in the stats: {v}");
    };
    let p = |k: &str| stats["rtt"][k].as_u64().unwrap();
    assert!(p("p50_us") > 0 && p("p50_us") <= p("p90_us") && p("p90_us") <= p("p99_us"));
    assert!(
        p("p99_us") < 1_000_000,
        "loopback RTT under a second: {stats}"
    );
    assert!(stats["drops"]["bad_magic"].as_u64().unwrap() >= 1);
}

#[test]
fn serve_stats_text_names_the_rtt() {
    let dir = keys("stats-text");
    let addr = format!("127.0.0.1:{}", free_port());
    let out = run_with(
        Some(&dir),
        &[
            "serve",
            "--listen",
            &addr,
            "--duration",
            "0.5",
            "--stats",
            "0.2",
            "--secret-key-file",
            "server/secret.key",
            "--client",
            "alice/public.key",
        ],
        &[],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let text = process::stdout(&out);
    let last = text
        .lines()
        .find(|l| l.starts_with("stats (final):"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(last.ends_with("; rtt: no samples"), "{last}");
}

#[test]
fn pcap_holds_the_calls_datagrams_both_ways_and_the_key_log_opens_them() {
    let dir = keys("pcap");
    let addr = format!("127.0.0.1:{}", free_port());
    let server = Running::start_in(
        Some(&dir),
        &[
            "--json",
            "serve",
            "--listen",
            &addr,
            "--duration",
            "30",
            "--secret-key-file",
            "server/secret.key",
            "--client",
            "bob/public.key",
        ],
        &[],
    );
    assert_eq!(server.next_json()["event"], "listening");
    let keylog = dir.join("keys.log");
    let capture = dir.join("call.pcapng");
    let bob = device("bob", &addr);
    let mut call = vec!["--pcap", "call.pcapng", "call", "401", "hello"];
    call.extend(bob.iter().map(String::as_str));
    let out = run_with(
        Some(&dir),
        &call,
        &[(KEYLOG_ENV, keylog.to_str().unwrap())],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stderr(&out).matches(KEYLOG_WARNING).count(), 1, "{out:?}");

    let packets = pcapng::read(&std::fs::read(&capture).unwrap());
    let server_addr: SocketAddr = addr.parse().unwrap();
    let out_n = packets.iter().filter(|p| p.to == server_addr).count();
    let in_n = packets.iter().filter(|p| p.from == server_addr).count();
    assert!(
        out_n >= 2 && in_n >= 2,
        "{out_n} out, {in_n} in: {packets:?}"
    );
    assert_eq!(out_n + in_n, packets.len(), "only the call's own traffic");
    let local = packets[0].from;
    assert!(local.ip().is_loopback() && local.port() != 0, "{local}");
    assert!(packets.windows(2).all(|w| w[0].at_us <= w[1].at_us));

    let mut d = Dissector::new();
    for s in read_key_log(&keylog).unwrap() {
        d.add_secret(s);
    }
    let names: Vec<&str> = packets
        .iter()
        .map(|p| d.dissect(p.from, p.to, &p.payload))
        .filter(|x| matches!(x.decryption, Decryption::Opened(_)))
        .map(|x| x.name)
        .collect();
    assert!(names.contains(&"rpc_call"), "{names:?}");
    assert!(names.contains(&"rpc_response"), "{names:?}");
    if let Some(shown) = tshark_names(&capture, &keylog) {
        assert_eq!(shown.len(), packets.len(), "{shown:?}");
        assert!(shown.iter().any(|n| n == "rpc_call"), "{shown:?}");
        assert!(shown.iter().any(|n| n == "rpc_response"), "{shown:?}");
    }

    // Without the variable, no key log and no warning.
    let out = run_with(Some(&dir), &call, &[], None);
    assert!(out.status.success(), "{out:?}");
    assert!(!stderr(&out).contains(KEYLOG_WARNING));
}

/// What Wireshark's dissector (`wireshark/pavillion.lua`, under `tshark`) names each packet of
/// `capture` with the key log `keylog`: Wireshark reads what `pav --pcap` wrote. `None` (after
/// saying why) without tshark, unless `PAV_REQUIRE_TOOLS=1`, or without the dissector in this
/// tree.
fn tshark_names(capture: &Path, keylog: &Path) -> Option<Vec<String>> {
    let lua = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wireshark/pavillion.lua");
    let required = std::env::var_os("PAV_REQUIRE_TOOLS").is_some_and(|v| v == "1");
    if !lua.exists() {
        assert!(!required, "{} is missing", lua.display());
        eprintln!("skipped tshark: {} is not in this tree", lua.display());
        return None;
    }
    let child = Command::new("tshark")
        .arg("-X")
        .arg(format!("lua_script:{}", lua.display()))
        .arg("-o")
        .arg(format!("pavillion.keylog_file:{}", keylog.display()))
        .arg("-r")
        .arg(capture)
        .args(["-T", "fields", "-e", "pavillion.dissection"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(!required, "tshark is required (PAV_REQUIRE_TOOLS=1): {e}");
            eprintln!("skipped tshark: {e} (scripts/install-tools.sh installs it)");
            return None;
        }
    };
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // Kill by the pid of the child this test started.
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("tshark hung");
        }
    };
    assert!(out.status.success(), "{out:?}");
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}
