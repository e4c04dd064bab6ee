//! Heap allocations per reliable message, end to end: from the client's send to the server's
//! application, and the acknowledgement back. Allocation and its free are a sizeable share of
//! a message's cost once the crypto is fast (issue 19), and a copy added back on the path is
//! easy to miss in a profile; a count is not.
//!
//! Counted by the [`Counting`](crate::memory::Counting) global allocator, which the measuring
//! program installs (`tests/allocations.rs` does). [`direct`] splits the count by side through
//! the [`DirectPair`]; [`io_std`] counts every thread of a `pavillion-std`
//! client and server on loopback, callbacks included.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration as WallDuration, Instant as WallInstant};

use pavillion_proto::endpoint::{ClientEvent, SendOptions};
use pavillion_proto::wire::MAX_DATAGRAM;
use pavillion_proto::Duration;
use pavillion_std::{Client as StdClient, Reliability, Server as StdServer};

use crate::memory::{allocations, counting_installed};
use crate::{client_addr, payload, server_addr, DirectPair, Suite, BATCH, NAME, PAYLOAD, TARGET};

/// Batches sent before counting, so that queues and tables have grown to their steady size.
const WARM_UP: usize = 8;

/// Allocations per message through the core, by where they happen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PerMessage {
    /// In the client's `send_message`.
    pub send: f64,
    /// In the server: reading datagrams, its events (the delivered messages, dropped as an
    /// application that only reads them would), its transmits and timers.
    pub server: f64,
    /// The rest of the client: sealing, reading the ACKs, its events and timers.
    pub client: f64,
}

impl PerMessage {
    /// All of them.
    pub fn total(&self) -> f64 {
        self.send + self.server + self.client
    }
}

/// Adds what `f` allocates to `slot`.
fn counted<T>(slot: &mut usize, f: impl FnOnce() -> T) -> T {
    let before = allocations();
    let out = f();
    *slot += allocations() - before;
    out
}

/// Allocations per reliable [`PAYLOAD`]-byte message through a [`DirectPair`] of `suite`, over
/// `batches` windows of [`BATCH`] messages, each acknowledged before the next.
///
/// # Panics
/// If [`Counting`](crate::memory::Counting) is not the global allocator, or a batch is not
/// acknowledged.
pub fn direct(suite: Suite, batches: usize) -> PerMessage {
    assert!(
        counting_installed(),
        "install memory::Counting as the global allocator to count allocations"
    );
    let data = payload(PAYLOAD);
    let mut pair = DirectPair::connected(suite);
    for _ in 0..WARM_UP {
        pair.reliable_batch(BATCH, &data);
    }
    let (caddr, saddr) = (client_addr(0), server_addr());
    let mut buf = vec![0; MAX_DATAGRAM];
    let (mut send, mut server, mut client) = (0, 0, 0);
    for _ in 0..batches {
        for _ in 0..BATCH {
            counted(&mut send, || {
                pair.client
                    .send_message(pair.now, TARGET, NAME, &data, SendOptions::reliable())
            })
            .expect("the queue holds a batch");
        }
        let mut delivered = 0;
        for _ in 0..1000 {
            loop {
                let mut moved = false;
                while let Some(t) = counted(&mut client, || {
                    pair.client.poll_transmit(pair.now, &mut buf)
                }) {
                    counted(&mut server, || {
                        pair.server.handle_datagram(pair.now, caddr, &buf[..t.len]);
                    });
                    moved = true;
                }
                while let Some(t) = counted(&mut server, || {
                    pair.server.poll_transmit(pair.now, &mut buf)
                }) {
                    counted(&mut client, || {
                        pair.client.handle_datagram(pair.now, saddr, &buf[..t.len]);
                    });
                    moved = true;
                }
                if !moved {
                    break;
                }
            }
            pair.now += Duration::from_micros(1);
            counted(&mut client, || {
                while let Some(e) = pair.client.poll_event() {
                    delivered += usize::from(matches!(e, ClientEvent::Delivered { .. }));
                }
            });
            counted(&mut server, || while pair.server.poll_event().is_some() {});
            if delivered >= BATCH {
                break;
            }
            pair.skip_to_next_timer();
            counted(&mut client, || pair.client.handle_timeout(pair.now));
            counted(&mut server, || pair.server.handle_timeout(pair.now));
        }
        assert_eq!(
            delivered, BATCH,
            "every message of the batch is acknowledged"
        );
    }
    let messages = (batches * BATCH) as f64;
    PerMessage {
        send: send as f64 / messages,
        server: server as f64 / messages,
        client: client as f64 / messages,
    }
}

/// Allocations per reliable [`PAYLOAD`]-byte message through a `pavillion-std` client and
/// server on loopback, pipelined (`Client::send_pipelined`) to a server callback that counts
/// them: `messages` of them after a warm-up, every thread counted (the drivers, the
/// callback's, the sender), handles included.
///
/// # Panics
/// If the counting allocator is not installed, the loopback endpoints cannot be opened, or the
/// messages do not all arrive within 30 s.
pub fn io_std(suite: Suite, messages: u64) -> f64 {
    assert!(
        counting_installed(),
        "install memory::Counting as the global allocator to count allocations"
    );
    let (server_config, client_config) = crate::bulk::std_configs(suite);
    let server = StdServer::bind("127.0.0.1:0", server_config).expect("bind on loopback");
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    server.on_message(Some(TARGET), move |_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    let client = StdClient::connect(server.local_addr(), client_config).expect("client socket");
    client
        .wait_connected(WallDuration::from_secs(5))
        .expect("handshake on loopback");
    let data = vec![0x5a; PAYLOAD];
    let run = |n: u64| {
        let target = received.load(Ordering::Relaxed) + n;
        let mut handles = Vec::with_capacity(n as usize);
        let before = allocations();
        for _ in 0..n {
            let h = client
                .send_pipelined(TARGET, NAME, &data, Reliability::Reliable)
                .expect("a pipelined send");
            handles.push(h);
        }
        let deadline = WallInstant::now() + WallDuration::from_secs(30);
        while received.load(Ordering::Relaxed) < target {
            assert!(
                WallInstant::now() < deadline,
                "the messages did not all arrive"
            );
            std::thread::sleep(WallDuration::from_millis(1));
        }
        for h in handles {
            h.wait().expect("acknowledged");
        }
        allocations() - before
    };
    run(messages / 10 + 1);
    let counted = run(messages);
    client.close();
    drop(server);
    counted as f64 / messages as f64
}
