//! `pav call`: one call, or `--count N` calls on one session with a latency summary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use pavillion_std::{CallError, Client};
use serde_json::json;

use crate::common::{self, human, micros, show, Failure};
use crate::keys::ClientArgs;

#[derive(Args, Debug)]
pub(crate) struct CallArgs {
    /// Function number (0 to 65535); 0 is echo, 1 a function's name, 401-404 the demo's.
    #[arg(value_parser = common::function)]
    function: u16,
    /// Argument, as text (or hex with --hex); `-` reads it from stdin.
    #[arg(default_value = "", conflicts_with = "file")]
    args: String,
    /// Read the argument from this file.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Read the argument as hex.
    #[arg(long)]
    hex: bool,
    /// Make this many calls on one session and print a latency summary instead of answers.
    #[arg(long, short = 'n', value_parser = common::count)]
    count: Option<usize>,
    /// Time from the start of one call to the start of the next with --count (0.5, 250ms, 2s).
    #[arg(long, short = 'i', value_parser = common::duration, default_value = "0")]
    interval: Duration,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) const AFTER_HELP: &str = "\
Examples:
  pav call 401 hello -s 192.168.1.20 --psk-file alice/psk --client-id alice-sensor-001
  pav call 401 hello --secret-key-file alice/secret.key --server-key-file server/public.key
  echo -n 'payload' | pav call 500 - --psk-file alice/psk
  pav call 500 --file request.bin --suite noise --psk-file alice/psk
  pav call 401 --file image.bin --psk-file alice/psk   # large arguments and answers: segmented
  pav call 0 ping --count 100 --interval 10ms --psk-file alice/psk   # latency summary
  pav --json call 0 ping -n 1000 --psk-file alice/psk                # the summary as JSON

With --count, the session is set up first, so the latencies are those of calls on an
established session; errors are counted by kind, and the exit code is 1 if any call failed.";

pub(crate) fn run(json: bool, mut a: CallArgs) -> Result<(), Failure> {
    let args = common::payload(&a.args, a.file.as_deref(), a.hex)?;
    // Large arguments take time to move too: counted at a slow link's 1 MB/s, as `pav send`.
    a.client.timeout += std::time::Duration::from_secs_f64(args.len() as f64 / 1e6);
    // Large arguments travel in segments; our limit (which also bounds the answer we accept)
    // grows to fit them unless --max-message was given.
    let max = a.client.max_message;
    let needed = args.len() + 16;
    let client = a.client.connect_with(|c| match max {
        Some(_) => c,
        None => {
            let fits = c.max_message_size().max(needed);
            c.max_message(fits)
        }
    })?;
    match a.count {
        None => once(json, &a, &client, &args),
        Some(n) => many(json, &a, &client, &args, n),
    }
}

fn once(json: bool, a: &CallArgs, client: &Client, args: &[u8]) -> Result<(), Failure> {
    let timeout = a.client.timeout;
    match client.call_with_timeout(a.function, args, timeout) {
        Ok(data) => {
            if json {
                println!(
                    "{}",
                    json!({
                        "ok": true,
                        "function": a.function,
                        "status": 0,
                        "data": String::from_utf8_lossy(&data),
                        "data_hex": hex::encode(&data),
                    })
                );
            } else {
                println!("{}", show(&data));
            }
            Ok(())
        }
        Err(CallError::Remote { status, data }) => {
            if json {
                println!(
                    "{}",
                    json!({
                        "ok": false,
                        "error": "remote",
                        "function": a.function,
                        "status": status.0,
                        "data": String::from_utf8_lossy(&data),
                        "data_hex": hex::encode(&data),
                    })
                );
            }
            Err(Failure {
                code: 1,
                kind: "remote",
                message: format!("remote status {}: {}", status.0, show(&data)),
                reported: json,
            })
        }
        Err(e) => Err(call_failure(client, timeout, e)),
    }
}

/// The failure of a call that got no answer.
fn call_failure(client: &Client, timeout: Duration, e: CallError) -> Failure {
    match e {
        CallError::TimedOut => Failure::failed(
            "timeout",
            format!(
                "no answer from {} within {timeout:?} (server down, wrong address or port, \
                 wrong server key, or a firewall)",
                client.server_addr()
            ),
        ),
        CallError::AuthenticationFailed { reason } => Failure::failed(
            "authentication",
            format!(
                "{} refused our credentials: {reason} (check --psk/--psk-file and --client-id, \
                 or --secret-key, --server-key and --suite)",
                client.server_addr()
            ),
        ),
        CallError::RefusedByReceiver { reason } => Failure::failed(
            "refused",
            format!(
                "{} refused the call's arguments: {reason} (a pav server takes up to its \
                 --max-message, 1M by default)",
                client.server_addr()
            ),
        ),
        e => Failure::failed("call", e.to_string()),
    }
}

/// The short name of a call error, for the summary.
fn kind(e: &CallError) -> String {
    match e {
        CallError::Remote { status, .. } => format!("status {}", status.0),
        CallError::TimedOut => "timeout".into(),
        CallError::Failed(reason) => format!("failed ({reason:?})"),
        CallError::AuthenticationFailed { .. } => "authentication".into(),
        other => {
            let text = format!("{other:?}");
            text.split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap_or("error")
                .to_ascii_lowercase()
        }
    }
}

fn many(json: bool, a: &CallArgs, client: &Client, args: &[u8], n: usize) -> Result<(), Failure> {
    let timeout = a.client.timeout;
    let started = Instant::now();
    client.wait_connected(timeout).map_err(|e| {
        Failure::failed(
            "timeout",
            format!("no session with {}: {e}", client.server_addr()),
        )
    })?;
    let setup = started.elapsed();
    let mut latencies = Vec::with_capacity(n);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let first = Instant::now();
    for i in 0..n {
        // Fixed rate: call i starts `i * interval` after the first, or at once if late.
        let due = first + a.interval * u32::try_from(i).unwrap_or(u32::MAX);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        match client.call_with_timeout(a.function, args, timeout) {
            Ok(_) => latencies.push(t.elapsed()),
            Err(e) => *errors.entry(kind(&e)).or_default() += 1,
        }
    }
    let total = first.elapsed();
    latencies.sort();
    let failed: usize = errors.values().sum();
    let pct = |p: f64| {
        if latencies.is_empty() {
            return None;
        }
        // Nearest rank.
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        Some(latencies[rank.clamp(1, latencies.len()) - 1])
    };
    let points = [
        ("min", latencies.first().copied()),
        ("p50", pct(50.0)),
        ("p90", pct(90.0)),
        ("p99", pct(99.0)),
        ("max", latencies.last().copied()),
    ];
    if json {
        let latency: serde_json::Map<String, serde_json::Value> = points
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.map(micros))))
            .collect();
        println!(
            "{}",
            json!({
                "ok": failed == 0,
                "function": a.function,
                "calls": n,
                "answered": latencies.len(),
                "errors": failed,
                "error_kinds": errors,
                "latency_us": latency,
                "setup_us": micros(setup),
                "elapsed_us": micros(total),
            })
        );
    } else {
        println!(
            "{n} calls to function {} on {}: {} answered, {failed} errors",
            a.function,
            client.server_addr(),
            latencies.len()
        );
        if !errors.is_empty() {
            let list: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            println!("errors: {}", list.join(", "));
        }
        if !latencies.is_empty() {
            let list: Vec<String> = points
                .iter()
                .filter_map(|(k, v)| v.map(|d| format!("{k} {}", human(d))))
                .collect();
            println!("latency: {}", list.join(", "));
        }
        println!(
            "session set up in {}; calls took {} in all",
            human(setup),
            human(total)
        );
    }
    if failed > 0 {
        return Err(Failure {
            code: 1,
            kind: "calls_failed",
            message: format!("{failed} of {n} calls failed"),
            reported: json,
        });
    }
    Ok(())
}
