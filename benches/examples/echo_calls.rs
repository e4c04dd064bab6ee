#![allow(
    missing_docs,
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc
)]
use pavillion_proto::ClientId;
use pavillion_std::keys::generate_psk;
use pavillion_std::{Client, ClientConfig, RpcFailure, Server, ServerConfig};
use std::time::Duration;
/// Voluntary context switches of every thread of this process so far.
fn ctx() -> u64 {
    let mut t = 0;
    for e in std::fs::read_dir("/proc/self/task").unwrap() {
        let s = std::fs::read_to_string(e.unwrap().path().join("status")).unwrap();
        for l in s.lines() {
            if let Some(v) = l.strip_prefix("voluntary_ctxt_switches:") {
                t += v.trim().parse::<u64>().unwrap();
            }
        }
    }
    t
}
fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(20000, |s| s.parse().unwrap());
    // `echo_calls N registered`: calls an echo registered with `Server::register` (the
    // `compare --loopback-only` row's handler) instead of the core's built-in function 0.
    let function = match std::env::args().nth(2).as_deref() {
        Some("registered") => 5,
        _ => 0,
    };
    let id = ClientId([3; 16]);
    let psk = generate_psk();
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig::new().psk_client(id, psk.clone()),
    )
    .unwrap();
    server.register(5, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
    let client = Client::connect(server.local_addr(), ClientConfig::psk(id, psk)).unwrap();
    client.wait_connected(Duration::from_secs(5)).unwrap();
    let data = [7u8; 64];
    for _ in 0..1000 {
        client.call(function, &data).unwrap();
    }
    let c0 = ctx();
    let t0 = std::time::Instant::now();
    eprintln!("START");
    for _ in 0..n {
        client.call(function, &data).unwrap();
    }
    let el = t0.elapsed();
    let c1 = ctx();
    eprintln!(
        "END {:.0} calls/s, {:.2} voluntary cs/call",
        n as f64 / el.as_secs_f64(),
        (c1 - c0) as f64 / n as f64
    );
}
