//! Pipelined reliable messages through `pavillion-std` on loopback: one sender thread keeps
//! up to a send window of 64-byte messages awaiting their ACKs (`Client::send_pipelined`), and
//! the figure is what the server's application callback counts, so every message counted was
//! received, opened and acknowledged end to end.
//!
//! `compare` sets it beside the raw UDP blast (one datagram per send, counted at a receiving
//! socket) measured in the same run, and beside the older figure of [`THREADS`] blocking
//! senders (`reliable_threads_64_SUITE`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pavillion_std::{Client, Reliability, Server};

use crate::{Suite, NAME, PAYLOAD, TARGET};

/// The send window of the pipelined row: the adapters' default.
pub const WINDOW: usize = pavillion_std::config::DEFAULT_SEND_WINDOW;

/// Blocking sender threads of the older row it is compared with (`compare`'s "8 in flight").
pub const THREADS: usize = 8;

/// One measurement of pipelined messages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pipelined {
    /// Messages per second that reached the server's callback.
    pub rate: f64,
    /// Messages whose handle reported a failure during the run (0 on a healthy loopback).
    pub failed: u64,
    /// The client's retransmissions over the whole run, warm-up included.
    pub retransmissions: u64,
    /// Datagrams the client sent over the whole run, warm-up included.
    pub datagrams: u64,
    /// Messages the server's callback counted over the whole run.
    pub messages: u64,
}

/// Measures pipelined reliable [`PAYLOAD`]-byte messages in `suite` with send window
/// `window`, over `seconds` after a warm-up of a tenth of that.
///
/// # Panics
/// If the loopback endpoints cannot be opened or the handshake does not finish in 5 s: a
/// benchmark has nothing to report then.
pub fn pipelined(suite: Suite, window: usize, seconds: f64) -> Pipelined {
    let (server_config, client_config) = crate::bulk::std_configs(suite);
    let server = Server::bind("127.0.0.1:0", server_config).expect("bind on loopback");
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    server.on_message(Some(TARGET), move |_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    let client = Client::connect(server.local_addr(), client_config.send_window(window))
        .expect("client socket");
    client
        .wait_connected(Duration::from_secs(5))
        .expect("handshake on loopback");
    let client = Arc::new(client);
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let sender = {
        let (client, stop, failed) = (client.clone(), stop.clone(), failed.clone());
        thread::spawn(move || {
            let data = vec![0x5a; PAYLOAD];
            // Handles are kept in a ring of one window and looked at when their place comes
            // round again: by then most outcomes are in, so this costs no wait.
            let mut ring: Vec<Option<pavillion_std::SendHandle>> =
                (0..window).map(|_| None).collect();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let h = match client.send_pipelined(TARGET, NAME, &data, Reliability::Reliable) {
                    Ok(h) => h,
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("pipelined: first failure: {e}");
                        }
                        continue;
                    }
                };
                if let Some(old) = ring.get_mut(i).and_then(|slot| slot.replace(h)) {
                    if old.is_done() {
                        if let Err(e) = old.wait() {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("pipelined: first failure: {e}");
                            }
                        }
                    }
                }
                i = (i + 1) % window.max(1);
            }
        })
    };
    thread::sleep(Duration::from_secs_f64(seconds / 10.0));
    let (n0, t0) = (received.load(Ordering::Relaxed), Instant::now());
    thread::sleep(Duration::from_secs_f64(seconds));
    let n1 = received.load(Ordering::Relaxed);
    let rate = (n1 - n0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("sender thread");
    let _ = client.flush(Duration::from_secs(10));
    let stats = client.stats().unwrap_or_default();
    if let Ok(client) = Arc::try_unwrap(client) {
        client.close();
    }
    drop(server);
    Pipelined {
        rate,
        failed: failed.load(Ordering::Relaxed),
        retransmissions: stats.retransmissions,
        datagrams: stats.datagrams_sent,
        messages: received.load(Ordering::Relaxed),
    }
}
