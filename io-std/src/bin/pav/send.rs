//! `pav send`: a message to TARGET/NAME (one per payload given), reliable by default.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use pavillion_std::{Reliability, SendError};
use serde_json::json;

use crate::common::{self, Failure};
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
    /// Read the payload from this file.
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
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) const AFTER_HELP: &str = "\
Examples:
  pav send kitchen temp 21.5 --psk-file alice/psk --client-id alice-sensor-001
  pav send kitchen temp 21.5 --secret-key-file alice/secret.key --server-key-file server/public.key
  sensors -j | pav send lab readings - --psk-file alice/psk
  pav send lab blob --file blob.bin --unreliable --psk-file alice/psk
  pav send alerts fire 1 -s 239.255.28.12 --psk-file alice/psk   # every server of a group
  pav send log line one two three --ordered --psk-file alice/psk  # three messages, in order

A reliable message is acknowledged by each server that received it; pav lists every one of
them (several for a multicast group), and those it expected that did not acknowledge.";

pub(crate) fn run(json: bool, a: SendArgs) -> Result<(), Failure> {
    let payloads = a
        .data
        .iter()
        .map(|d| common::payload(d, a.file.as_deref(), a.hex))
        .collect::<Result<Vec<_>, _>>()?;
    let reliability = if a.unreliable {
        Reliability::Unreliable
    } else if a.ordered {
        Reliability::Ordered
    } else {
        Reliability::Reliable
    };
    let client = a.client.connect()?;
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
        send_one(json, &a, &client, data, reliability)?;
    }
    Ok(())
}

/// Sends one message and prints its outcome.
fn send_one(
    json: bool,
    a: &SendArgs,
    client: &pavillion_std::Client,
    data: &[u8],
    reliability: Reliability,
) -> Result<(), Failure> {
    let server = client.server_addr();
    match client.send_message(&a.target, &a.name, data, reliability) {
        Ok(d) => {
            let acked: Vec<String> = d.acked.iter().map(|a| a.to_string()).collect();
            let missing: Vec<String> = d.missing.iter().map(|a| a.to_string()).collect();
            if json {
                println!(
                    "{}",
                    json!({"ok": true, "reliable": !a.unreliable, "ordered": a.ordered, "acked": acked, "missing": missing})
                );
            } else if a.unreliable {
                println!("sent (unreliable)");
            } else {
                println!("delivered to {}", acked.join(", "));
                if !missing.is_empty() {
                    println!("not acknowledged by {}", missing.join(", "));
                }
            }
            Ok(())
        }
        Err(SendError::TimedOut) => Err(Failure::failed(
            "timeout",
            format!(
                "no acknowledgement from {server} within {:?} (server down, wrong address or \
                 port, wrong server key, or a firewall)",
                a.client.timeout
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
