//! `pav send`: a message to TARGET/NAME (one per payload given), reliable by default. A payload
//! larger than a datagram (a file) is sent in segments, with a progress bar on a terminal.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pavillion_proto::endpoint::SendError as Refusal;
use pavillion_std::{Reliability, SendError};
use serde_json::json;

use crate::common::{self, Failure};
use crate::durable;
use crate::keys::ClientArgs;

#[derive(Args, Debug)]
pub(crate) struct SendArgs {
    /// Target (topic).
    target: String,
    /// Message name.
    name: String,
    /// Payload, as text (or hex with --hex); `-` reads it from stdin. Several payloads send
    /// several messages, one after another.
    #[arg(default_value = "", conflicts_with = "file", num_args = 0..)]
    data: Vec<String>,
    /// Read the payload from this file (`-` for stdin): up to 64 MiB, sent in segments and
    /// acknowledged as one message; a progress bar shows on a terminal. The server must accept
    /// it (`pav serve --max-message`).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Send once without acknowledgement.
    #[arg(long)]
    unreliable: bool,
    /// Ordered delivery: reliable, and the server's application gets this target's ordered
    /// messages in send order, once each (docs/PROTOCOL.md §3.3).
    #[arg(long, conflicts_with = "unreliable")]
    ordered: bool,
    /// Read the payload as hex.
    #[arg(long)]
    hex: bool,
    /// Durable: keep the messages in the store file STORE (made if missing) until the
    /// server acknowledges them, across outages and restarts of either side; a later run
    /// with the same STORE sends what is left. Exactly once at the server.
    #[arg(long, value_name = "STORE", conflicts_with_all = ["unreliable", "ordered", "file"])]
    durable: Option<PathBuf>,
    /// With --durable: one message per line of FILE (`-` for stdin). Each line is stored
    /// with its number as the mark, and a restart resumes after the last line stored.
    #[arg(long, value_name = "FILE", requires = "durable")]
    lines: Option<PathBuf>,
    /// With --durable: seconds to wait for every stored message to be acknowledged
    /// [default: as long as it takes].
    #[arg(long, value_name = "SECS", requires = "durable", value_parser = common::seconds)]
    wait: Option<Duration>,
    /// Send the payload N times, pipelined: up to --window messages await their
    /// acknowledgements at once. Prints the count acknowledged and the rate.
    #[arg(long, value_name = "N", conflicts_with_all = ["durable", "file", "ordered"])]
    count: Option<u64>,
    /// With --count: how many messages may await their acknowledgements at once.
    #[arg(long, value_name = "W", requires = "count", default_value_t = pavillion_std::config::DEFAULT_SEND_WINDOW)]
    window: usize,
    /// With --count: a payload of B bytes instead of the one given.
    #[arg(long, value_name = "B", requires = "count")]
    size: Option<usize>,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) const AFTER_HELP: &str = "\
Examples:
  pav send kitchen temp 21.5 --psk-file alice/psk --client-id alice-sensor-001
  pav send kitchen temp 21.5 --secret-key-file alice/secret.key --server-key-file server/public.key
  sensors -j | pav send lab readings - --psk-file alice/psk
  pav send ota image --file firmware.bin --psk-file alice/psk      # any size up to 64M
  tar c logs | pav send backup logs --file - --psk-file alice/psk
  pav send alerts fire 1 -s 239.255.28.12 --psk-file alice/psk   # every server of a group
  pav send log line one two three --ordered --psk-file alice/psk  # three messages, in order
  pav send kitchen temp 21.5 --durable alice.redb --psk-file alice/psk   # exactly once
  pav send log line --durable alice.redb --lines readings.txt --psk-file alice/psk
  pav send bench m --count 100000 --size 64 --psk-file alice/psk  # pipelined, prints msg/s

A reliable message is acknowledged by each server that received it; pav lists every one of
them (several for a multicast group), and those it expected that did not acknowledge.
A message larger than a datagram (about 4 KB) must be reliable: it is cut into segments, and a
progress bar shows the bytes acknowledged (on a terminal, without --json). The server refuses
one larger than its --max-message (1M by default); pav then says so. With --json, the result
line has the bytes sent and the time taken.

With --durable STORE a message is stored in STORE before it is sent, then retried with no
deadline until the server acknowledges it; pav exits once every message in STORE is
acknowledged (or after --wait, with code 1: the next run with STORE sends the rest). Killed
at any point and run again, it sends each message exactly once. With --lines, each line of
the file is a message, and a new run resumes after the last line stored. The server keeps
what it received in its own store (`pav serve --durable`).

With --count N the payload is sent N times without waiting for each acknowledgement: up to
--window messages (1024 by default) are in flight at once. pav prints how many were
acknowledged and the rate (`sent N, acknowledged N, in S s, R msg/s`), and exits with code 1
if any was not.";

pub(crate) fn run(json: bool, a: SendArgs) -> Result<(), Failure> {
    if let Some(store) = a.durable.clone() {
        return send_durable(json, &a, &store);
    }
    if let Some(count) = a.count {
        return send_count(json, &a, count);
    }
    let payloads = match a.file.as_deref() {
        Some(p) if p.as_os_str() == "-" => vec![common::payload("-", None, a.hex)?],
        file => a
            .data
            .iter()
            .map(|d| common::payload(d, file, a.hex))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let reliability = if a.unreliable {
        Reliability::Unreliable
    } else if a.ordered {
        Reliability::Ordered
    } else {
        Reliability::Reliable
    };
    // Our own limit guards what we accept; what we send is the user's choice, so it grows to
    // fit the payload (the whole plaintext: opcode, target, name, two newlines) unless given.
    let largest = payloads.iter().map(Vec::len).max().unwrap_or(0);
    let needed = largest + a.target.len() + a.name.len() + 3;
    let max = a.client.max_message;
    // --timeout is for the server to answer; a large message also needs the time to move it,
    // counted at a slow link's 1 MB/s, so that a big file is not cut off at the default 2 s.
    let deadline = a.client.timeout + Duration::from_secs_f64(largest as f64 / 1e6);
    let client = a.client.connect_with(|c| {
        let c = c.send_timeout(deadline);
        match max {
            Some(_) => c,
            None => {
                let fits = c.max_message_size().max(needed);
                c.max_message(fits)
            }
        }
    })?;
    let server = client.server_addr();
    if is_group(server) && !a.unreliable {
        settle(&client, a.client.timeout)?;
    }
    if a.unreliable {
        // An unreliable message waits for the session and is sent once; closing before the
        // session is up would drop it unsent.
        client
            .wait_connected(a.client.timeout)
            .map_err(|e| Failure::failed("timeout", format!("no session with {server}: {e}")))?;
    }
    for data in &payloads {
        send_one(json, &a, &client, data, reliability, deadline)?;
    }
    Ok(())
}

/// `--durable STORE`: the payloads, or the lines of `--lines`, stored and sent exactly once.
fn send_durable(json: bool, a: &SendArgs, store: &std::path::Path) -> Result<(), Failure> {
    let source = match &a.lines {
        Some(path) => durable::Source::Lines(path.clone()),
        None => durable::Source::Payloads(
            a.data
                .iter()
                .map(|d| common::payload(d, None, a.hex))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let client = a.client.connect_with(|c| c.durable(store))?;
    durable::send(json, &client, store, &a.target, &a.name, source, a.wait)
}

/// `--count N`: the payload N times through `Client::send_pipelined`, with at most
/// `--window` messages awaiting their outcomes; prints the tally and the rate.
fn send_count(json: bool, a: &SendArgs, count: u64) -> Result<(), Failure> {
    let data = match a.size {
        Some(size) => vec![b'x'; size],
        None => match a.data.first() {
            Some(d) => common::payload(d, None, a.hex)?,
            None => Vec::new(),
        },
    };
    let reliability = if a.unreliable {
        Reliability::Unreliable
    } else {
        Reliability::Reliable
    };
    let window = a.window.max(1);
    let client = a.client.connect_with(|c| c.send_window(window))?;
    let server = client.server_addr();
    client
        .wait_connected(a.client.timeout)
        .map_err(|e| Failure::failed("timeout", format!("no session with {server}: {e}")))?;
    let started = Instant::now();
    let (mut acked, mut first_error) = (0u64, None);
    let mut settle = |h: pavillion_std::SendHandle| match h.wait() {
        Ok(_) => acked += 1,
        Err(e) => {
            first_error.get_or_insert(e);
        }
    };
    // The oldest handles are looked at once a window's worth is younger: by then their
    // outcomes are mostly in, and the handles kept stay bounded by the window.
    let mut handles = std::collections::VecDeque::with_capacity(window);
    for _ in 0..count {
        let h = client
            .send_pipelined(&a.target, &a.name, &data, reliability)
            .map_err(|e| Failure::failed("send", e.to_string()))?;
        handles.push_back(h);
        if handles.len() >= window {
            if let Some(old) = handles.pop_front() {
                settle(old);
            }
        }
    }
    for h in handles {
        settle(h);
    }
    let elapsed = started.elapsed();
    let rate = count as f64 / elapsed.as_secs_f64().max(1e-9);
    if let Some(e) = first_error {
        return Err(Failure::failed(
            "incomplete",
            format!(
                "sent {count}, acknowledged {acked}, in {:.3} s; the first failure: {e}",
                elapsed.as_secs_f64()
            ),
        ));
    }
    if json {
        println!(
            "{}",
            json!({
                "ok": true,
                "sent": count,
                "acknowledged": acked,
                "reliable": !a.unreliable,
                "window": window,
                "bytes": data.len(),
                "micros": common::micros(elapsed),
                "rate": rate.round(),
            })
        );
    } else {
        println!(
            "sent {count}, acknowledged {acked}, in {:.3} s, {rate:.0} msg/s",
            elapsed.as_secs_f64()
        );
    }
    Ok(())
}

/// Sends one message, with a progress bar on a terminal, and prints its outcome.
fn send_one(
    json: bool,
    a: &SendArgs,
    client: &pavillion_std::Client,
    data: &[u8],
    reliability: Reliability,
    deadline: Duration,
) -> Result<(), Failure> {
    let server = client.server_addr();
    let started = Instant::now();
    let bar = (!json && !a.unreliable && std::io::stderr().is_terminal()).then(|| bar(data));
    let sent = match &bar {
        Some(bar) => {
            let b = bar.clone();
            let progress = move |acked: u64, total: u64| {
                b.set_length(total);
                b.set_position(acked);
            };
            client.send_with_progress(&a.target, &a.name, data, reliability, progress)
        }
        None => client.send_message(&a.target, &a.name, data, reliability),
    };
    let elapsed = started.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match sent {
        Ok(d) => {
            let acked: Vec<String> = d.acked.iter().map(|a| a.to_string()).collect();
            let missing: Vec<String> = d.missing.iter().map(|a| a.to_string()).collect();
            if json {
                println!(
                    "{}",
                    json!({
                        "ok": true,
                        "reliable": !a.unreliable,
                        "ordered": a.ordered,
                        "acked": acked,
                        "missing": missing,
                        "bytes": data.len(),
                        "micros": common::micros(elapsed),
                    })
                );
            } else if a.unreliable {
                println!("sent (unreliable)");
            } else {
                let size = if data.len() >= common::SHOW_LIMIT {
                    format!(" ({} bytes in {})", data.len(), common::human(elapsed))
                } else {
                    String::new()
                };
                println!("delivered to {}{size}", acked.join(", "));
                if !missing.is_empty() {
                    println!("not acknowledged by {}", missing.join(", "));
                }
            }
            Ok(())
        }
        Err(SendError::RefusedByReceiver { reason }) => Err(Failure::failed(
            "refused",
            format!(
                "{server} refused the message ({} bytes): {reason} (a pav server takes up to \
                 its --max-message, 1M by default)",
                data.len()
            ),
        )),
        Err(SendError::Refused(Refusal::TooLarge)) => Err(Failure::failed(
            "too_large",
            format!(
                "the message ({} bytes) is too large: {}",
                data.len(),
                if a.unreliable {
                    "an unreliable message must fit one datagram; send it reliably"
                } else {
                    "larger than --max-message (at most 64M)"
                }
            ),
        )),
        Err(SendError::TimedOut) => Err(Failure::failed(
            "timeout",
            format!(
                "no acknowledgement from {server} within {deadline:?} (server down, wrong \
                 address or port, wrong server key, or a firewall)"
            ),
        )),
        Err(SendError::AuthenticationFailed { reason }) => Err(Failure::failed(
            "authentication",
            format!(
                "{server} refused our credentials: {reason} (check --psk/--psk-file and \
                 --client-id, or --secret-key, --server-key and --suite)"
            ),
        )),
        Err(e) => Err(Failure::failed("send", e.to_string())),
    }
}

/// A progress bar of the bytes acknowledged, on stderr; its length becomes the whole message's
/// at the first report.
fn bar(data: &[u8]) -> ProgressBar {
    let bar = ProgressBar::new(data.len() as u64);
    let style = ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// A multicast group or the broadcast address: many servers may answer.
fn is_group(addr: std::net::SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.is_multicast() || ip.is_broadcast(),
        std::net::IpAddr::V6(ip) => ip.is_multicast(),
    }
}

/// Waits until the servers of a group have answered the handshake round and announced their
/// targets: until no new session came up for a while, within the round's 2 s and `timeout`.
/// Sending earlier would expect acknowledgements from the first servers only.
fn settle(client: &pavillion_std::Client, timeout: Duration) -> Result<(), Failure> {
    let quiet = Duration::from_millis(300);
    let started = Instant::now();
    client.wait_connected(timeout).map_err(|e| {
        Failure::failed(
            "timeout",
            format!("no server of {} answered: {e}", client.server_addr()),
        )
    })?;
    let until = started + timeout.min(Duration::from_millis(2500));
    let mut known = client.servers().len();
    let mut changed = Instant::now();
    while Instant::now() < until && changed.elapsed() < quiet {
        std::thread::sleep(Duration::from_millis(25));
        let now = client.servers().len();
        if now != known {
            known = now;
            changed = Instant::now();
        }
    }
    Ok(())
}
