//! One suite's pipelined row of `compare --pipelined-only`, alone, for profiling: the same
//! measurement (`pavillion_benches::pipelined`, one sender thread keeping the default send
//! window of 64-byte messages through `pavillion-std` on loopback, counted at the server's
//! `on_message` callback), without the other suites and rows around it, so that a profiler's
//! samples belong to one run.
//!
//! ```sh
//! cargo build --release -p pavillion-benches --example pipelined
//! perf record -g target/release/examples/pipelined noise 3
//! ```
//!
//! Arguments: `[psk|ecc|noise] [SECONDS]` (noise and 3 s by default).
#![allow(missing_docs)]

use pavillion_benches::{pipelined, Suite};

fn main() {
    let mut args = std::env::args().skip(1);
    let suite = match args.next().as_deref() {
        Some("psk") => Suite::Psk,
        Some("ecc") => Suite::Ecc,
        Some("noise") | None => Suite::Noise,
        Some(other) => {
            eprintln!("unknown suite {other}: psk, ecc or noise");
            std::process::exit(2);
        }
    };
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let r = pipelined::pipelined(suite, pipelined::WINDOW, seconds);
    println!(
        "pipelined {}: {:.0} msg/s, {} failed, {} retransmissions, {:.3} datagrams per message",
        suite.name(),
        r.rate,
        r.failed,
        r.retransmissions,
        r.datagrams as f64 / r.messages.max(1) as f64
    );
}
