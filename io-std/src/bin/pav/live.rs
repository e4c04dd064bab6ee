//! Live statistics of the long-running commands (`serve`, `relay`, `authority`): the
//! round-trip percentiles that `--stats` prints beside the counters, and `--metrics ADDR`,
//! the Prometheus exporter (`docs/METRICS.md`).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use pavillion_std::metrics::{MetricsServer, RttPercentiles};
use pavillion_std::Stats;
use serde_json::{json, Value};

use crate::common::Failure;

/// Help of every `--metrics` flag.
pub(crate) const METRICS_HELP: &str = "Serve the counters, drops by reason and the RTT \
histogram in the Prometheus text format at http://ADDR/metrics (such as 127.0.0.1:9464; port \
0 picks a free one, printed on stderr). Bind it to loopback or a management address.";

/// Parses `--metrics ADDR`: an address with a port (a name is resolved once).
pub(crate) fn metrics_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("expected ADDR:PORT, not {s:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// Starts the exporter with `serve` (a handle's `serve_metrics`) and says where it listens,
/// on stderr (`metrics on http://127.0.0.1:9464/metrics`), so stdout keeps its format.
pub(crate) fn start_metrics(
    addr: SocketAddr,
    serve: impl FnOnce(SocketAddr) -> io::Result<MetricsServer>,
) -> Result<MetricsServer, Failure> {
    let server = serve(addr)
        .map_err(|e| Failure::failed("metrics", format!("cannot serve metrics on {addr}: {e}")))?;
    eprintln!("metrics on http://{}/metrics", server.local_addr());
    Ok(server)
}

/// The RTT percentiles for a text stats line: `rtt p50 1.2ms p90 3.4ms p99 9.9ms (812
/// samples)`, or `rtt: no samples`.
pub(crate) fn rtt_text(stats: &Stats) -> String {
    RttPercentiles::of(stats).map_or_else(|| "rtt: no samples".to_owned(), |p| p.to_string())
}

/// The RTT percentiles for a JSON stats line, in microseconds (`null` before the first
/// sample): `{"samples": 812, "p50_us": 1200, "p90_us": 3400, "p99_us": 9900}`.
pub(crate) fn rtt_json(stats: &Stats) -> Value {
    let us = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    match RttPercentiles::of(stats) {
        Some(p) => json!({"samples": p.samples, "p50_us": us(p.p50), "p90_us": us(p.p90),
                          "p99_us": us(p.p99)}),
        None => json!({"samples": 0, "p50_us": null, "p90_us": null, "p99_us": null}),
    }
}
