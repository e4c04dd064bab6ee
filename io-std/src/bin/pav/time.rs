//! `pav time`: the server's clock, as the protocol's time sync means it.

use clap::Args;
use serde_json::json;

use crate::common::Failure;
use crate::keys::ClientArgs;

#[derive(Args, Debug)]
pub(crate) struct TimeArgs {
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) const AFTER_HELP: &str = "\
Examples:
  pav time -s 192.168.1.20 --psk-file alice/psk --client-id alice-sensor-001
  pav --json time --secret-key-file alice/secret.key --server-key-file server/public.key

The clock is the server's monotonic clock, as the reference's time sync (opcode 20) means it:
seconds since an arbitrary start of the server (its boot or its start), not the time of day.
The offset is the server's clock minus ours (pav's own monotonic clock, started with pav);
it is uncertain by half the round trip of the request.";

pub(crate) fn run(json: bool, a: TimeArgs) -> Result<(), Failure> {
    let client = a.client.connect()?;
    let timeout = a.client.timeout;
    let addr = client
        .wait_connected(timeout)
        .map_err(|e| Failure::failed("timeout", format!("no session with the server: {e}")))?;
    let server = client.server(addr);
    let estimate = server
        .sync_time(timeout)
        .map_err(|e| Failure::failed("timeout", format!("no time from {addr}: {e}")))?;
    let remote = server
        .remote_now()
        .map_err(|e| Failure::failed("time", e.to_string()))?;
    let rtt = estimate.round_trip.map(|d| d.as_micros());
    let uncertainty = rtt.map(|r| r.div_ceil(2));
    if json {
        println!(
            "{}",
            json!({
                "server": addr.to_string(),
                "clock": "server monotonic",
                "remote_now_us": remote.as_micros(),
                "offset_us": estimate.offset_micros,
                "uncertainty_us": uncertainty,
                "round_trip_us": rtt,
            })
        );
    } else {
        println!("server {addr}");
        println!("server clock: {remote} (the server's monotonic clock: seconds since an arbitrary start, not the time of day)");
        match uncertainty {
            Some(u) => println!(
                "offset:       {:+} µs ± {u} µs (server clock minus ours; ± half the round trip)",
                estimate.offset_micros
            ),
            None => println!(
                "offset:       {:+} µs (server clock minus ours; uncertainty unknown)",
                estimate.offset_micros
            ),
        }
        if let Some(r) = rtt {
            println!("round trip:   {r} µs");
        }
    }
    Ok(())
}
