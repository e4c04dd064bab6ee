//! Durable messages through `pavillion-std` on loopback against non-durable reliable ones in
//! the same run (issue 17's benchmark).
//!
//! **Sync policy: batched.** Every store write is a `redb` transaction committed with
//! `Durability::Immediate` (an fsync), on each side; the adapter's writer thread puts every
//! batch that queued up during the previous commit into the next one (group commit). So the
//! rate depends on how many messages are in flight: here [`SENDERS`] threads each keep
//! [`PIPELINE`] durable sends waiting to be stored (`Client::queue_durable`), and the
//! receiving side consumes as it goes (its inbox rows and consumes share commits too). A sync
//! per message would be one message per fsync, whatever the load: not measured, it is just
//! the disk's fsync rate.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use pavillion_std::{Client, Reliability, Server};

use crate::bulk::std_configs;
use crate::{Suite, NAME, TARGET};

/// Sending threads of both measurements.
pub const SENDERS: usize = 8;
/// Durable sends each sending thread keeps waiting to be stored.
pub const PIPELINE: usize = 128;

/// Messages per second received by the server in one measurement.
#[derive(Clone, Copy, Debug)]
pub struct DurableRates {
    /// Durable messages consumed by the server's application per second.
    pub durable: f64,
    /// Reliable (non-durable) messages received by the server's callback per second, from
    /// [`SENDERS`] threads each blocking on its send (as the loopback row measures them).
    pub reliable: f64,
}

/// A scratch folder for the two stores, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Measures both rates for `seconds` each, on one client/server pair with durable stores in
/// a temporary folder.
///
/// # Panics
/// If the loopback endpoints or the stores cannot be opened, or a send fails: a benchmark
/// has nothing to report then.
pub fn durable_rates(suite: Suite, seconds: f64) -> DurableRates {
    let dir = std::env::temp_dir().join(format!(
        "pav-bench-durable-{}-{}",
        std::process::id(),
        suite.name()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let scratch = Scratch(dir);
    let (server_config, client_config) = std_configs(suite);
    let server = Arc::new(
        Server::bind(
            "127.0.0.1:0",
            server_config.durable(scratch.0.join("server.redb")),
        )
        .expect("bind on loopback"),
    );
    let plain = Arc::new(AtomicU64::new(0));
    let count = plain.clone();
    server.on_message(Some(TARGET), move |_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    let client = Arc::new(
        Client::connect(
            server.local_addr(),
            client_config.durable(scratch.0.join("client.redb")),
        )
        .expect("client socket"),
    );
    client
        .wait_connected(Duration::from_secs(5))
        .expect("handshake on loopback");
    let data = vec![0x5a; crate::PAYLOAD];

    // Reliable, not durable.
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (client, stop, data) = (client.clone(), stop.clone(), data.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    client
                        .send_message(TARGET, NAME, &data, Reliability::Reliable)
                        .expect("message acknowledged");
                }
            })
        })
        .collect();
    let reliable = counted_rate(&plain, seconds);
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().expect("sender thread");
    }

    // Durable: consumed by the server's application as they arrive.
    let consumed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (server, consumed, stop) = (server.clone(), consumed.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(Some(d)) = server.recv_durable(Duration::from_millis(50)) {
                    server.consume_durable(&d, None).expect("consumed");
                    consumed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (client, stop, data) = (client.clone(), stop.clone(), data.clone());
            thread::spawn(move || {
                let mut waiting = VecDeque::new();
                while !stop.load(Ordering::Relaxed) {
                    waiting.push_back(
                        client
                            .queue_durable(TARGET, NAME, &data, None)
                            .expect("queued"),
                    );
                    if waiting.len() >= PIPELINE {
                        if let Some(p) = waiting.pop_front() {
                            let stored = p.wait_outcome(Duration::from_secs(60));
                            if stored.is_err() && !stop.load(Ordering::Relaxed) {
                                panic!("durable send not stored: {stored:?}");
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let durable = counted_rate(&consumed, seconds);
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().expect("sender thread");
    }
    receiver.join().expect("receiver thread");
    drop(client);
    drop(server);
    drop(scratch);
    DurableRates { durable, reliable }
}

/// The rate at which `counter` grows, over `seconds` after a warm-up of a tenth of that.
fn counted_rate(counter: &AtomicU64, seconds: f64) -> f64 {
    thread::sleep(Duration::from_secs_f64(seconds / 10.0));
    let (n0, t0) = (counter.load(Ordering::Relaxed), std::time::Instant::now());
    thread::sleep(Duration::from_secs_f64(seconds));
    let n1 = counter.load(Ordering::Relaxed);
    (n1 - n0) as f64 / t0.elapsed().as_secs_f64()
}
