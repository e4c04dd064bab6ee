//! A fixed number of loopback RPCs to a registered handler through `pavillion-std`, for
//! profiling the adapter with `strace -c -f`, `perf record` or `perf stat`: unlike `compare`,
//! it runs one workload for a known count, so that system calls and CPU time divide by it.
//!
//! `rpc-probe [psk|ecc|noise] [COUNT] [FUNCTION] [msgs|pipe]`: COUNT calls (100,000 by default)
//! of FUNCTION (400, the registered echo; 0 is answered by the endpoint itself), one at a time;
//! with `msgs`, COUNT reliable 64-byte messages from 8 threads instead; with `pipe`, COUNT
//! pipelined reliable 64-byte messages from one thread (`Client::send_pipelined`, the default
//! window, handles dropped), then a flush: a bounded run of `compare`'s pipelined row for
//! `valgrind --tool=callgrind` (instructions per message). Prints the rate, how
//! many calls took long (a sign of the machine's load, or of a call that went through the
//! driver's thread), and on Linux each thread's CPU time per call.
#![allow(clippy::std_instead_of_core)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pavillion_benches::Suite;
use pavillion_std::{Client, Reliability, RpcFailure, Server};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let suite = match args.get(1).map(String::as_str) {
        Some("ecc") => Suite::Ecc,
        Some("noise") => Suite::Noise,
        _ => Suite::Psk,
    };
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let function: u16 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(400);
    let (mut server_config, mut client_config) = pavillion_benches::bulk::std_configs(suite);
    // Under valgrind everything runs some 50 times slower: timers meant for a real loopback
    // would fire and retransmit, and the profile would measure that. `PROBE_SLOW=1` gives
    // both ends a 2 s minimum RTO and a minute's deadlines.
    if std::env::var_os("PROBE_SLOW").is_some() {
        let mut limits = pavillion_proto::endpoint::Limits::default();
        limits.rtt.min_rto = Duration::from_secs(2);
        limits.rtt.initial_rto = Duration::from_secs(2);
        limits.default_timeout = Duration::from_secs(60);
        server_config = server_config.limits(limits.clone());
        client_config = client_config
            .limits(limits)
            .send_timeout(Duration::from_secs(60))
            .call_timeout(Duration::from_secs(60));
    }
    let server = Server::bind("127.0.0.1:0", server_config).expect("bind on loopback");
    server.register(400, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    server.on_message(Some("t"), move |_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    let client = Arc::new(Client::connect(server.local_addr(), client_config).expect("socket"));
    client
        .wait_connected(Duration::from_secs(5))
        .expect("handshake on loopback");
    let data = [7u8; 64];
    for _ in 0..1000 {
        client.call(function, &data).expect("answered");
    }
    let t = Instant::now();
    if args.get(4).map(String::as_str) == Some("pipe") {
        for _ in 0..n {
            drop(
                client
                    .send_pipelined("t", "n", &data, Reliability::Reliable)
                    .expect("queued"),
            );
        }
        client.flush(Duration::from_secs(60)).expect("flushed");
        let s = t.elapsed().as_secs_f64();
        println!(
            "{:.0} msg/s; {} counted by the server",
            n as f64 / s,
            received.load(Ordering::Relaxed)
        );
    } else if args.get(4).map(String::as_str) == Some("msgs") {
        let senders: Vec<_> = (0..8)
            .map(|_| {
                let client = client.clone();
                std::thread::spawn(move || {
                    for _ in 0..n / 8 {
                        client
                            .send_message("t", "n", &data, Reliability::Reliable)
                            .expect("acknowledged");
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().expect("sender");
        }
        let s = t.elapsed().as_secs_f64();
        println!("{:.0} msg/s", (n / 8 * 8) as f64 / s);
    } else {
        let (mut over_100us, mut over_1ms, mut worst) = (0, 0, Duration::ZERO);
        for _ in 0..n {
            let c = Instant::now();
            client.call(function, &data).expect("answered");
            let e = c.elapsed();
            worst = worst.max(e);
            over_100us += usize::from(e > Duration::from_micros(100));
            over_1ms += usize::from(e > Duration::from_millis(1));
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{:.0} calls/s; {over_100us} calls over 100 us, {over_1ms} over 1 ms, worst {worst:?}",
            n as f64 / s
        );
    }
    print_thread_times(n);
    if let Ok(client) = Arc::try_unwrap(client) {
        client.close();
    }
    drop(server);
}

/// Each thread's user and system CPU time per call, from `/proc/self/task` (clock ticks, so
/// meaningful over many calls only); nothing where there is no `/proc`.
fn print_thread_times(n: usize) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(stat), Ok(comm)) = (
            std::fs::read_to_string(path.join("stat")),
            std::fs::read_to_string(path.join("comm")),
        ) else {
            continue;
        };
        // Fields after the command name: utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let tick_us = 10_000.0 / n as f64;
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
            println!(
                "  {:16} user {:.2} us/call, system {:.2} us/call",
                comm.trim(),
                user * tick_us,
                system * tick_us
            );
        }
    }
}
