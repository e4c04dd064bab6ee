//! Deterministic, single-threaded runs of reliable messages through the direct pair, for
//! instruction counts under callgrind: wall-clock figures on a shared machine vary,
//! instruction counts do not (issue 19).
//!
//! `ack_cost BATCHES [SUITE]` sends BATCHES windows of 64 reliable 64-byte messages, each
//! acknowledged before the next window (the `core vs crypto floor` row's driver).
//!
//! `ack_cost pipe MESSAGES [SUITE]` pipelines MESSAGES reliable 64-byte messages the way the
//! io-std drivers move them in `compare --pipelined-only`: up to 1,024 awaiting their
//! outcomes (the default send window), the client's driver taking up to 64 queued sends per
//! pass before it seals, each side reading up to 32 datagrams per pass (`recvmmsg`) and
//! firing its timers when due (so the receiver's delayed ACKs wait and coalesce as they do on
//! loopback). Virtual time advances 1 µs per message queued (1 M msg/s) and 1 µs per
//! pass, so the timers see a plausible rate.
//!
//! Per-message cost is the difference between two runs of different lengths divided by the
//! difference in messages, which cancels the handshake and start-up:
//!
//! ```sh
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/ack_cost 10
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/ack_cost 110
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/a.out target/release/examples/ack_cost pipe 20000 noise
//! ```
#![allow(
    missing_docs,
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc
)]
use std::collections::VecDeque;

use pavillion_benches::{
    client_addr, payload, server_addr, DirectPair, Suite, BATCH, NAME, PAYLOAD, TARGET,
};
use pavillion_proto::endpoint::{ClientEvent, SendOptions};
use pavillion_proto::wire::MAX_DATAGRAM;
use pavillion_proto::Duration;

/// The io-core send window: sends awaiting their outcome.
const WINDOW: usize = 1024;
/// Queued commands a driver carries out before it seals and routes.
const COMMANDS: usize = 64;
/// Datagrams one receive call reads.
const RECV_BATCH: usize = 32;

fn suite(arg: Option<&str>) -> Suite {
    match arg {
        None | Some("psk") => Suite::Psk,
        Some("ecc") => Suite::Ecc,
        Some("noise") => Suite::Noise,
        Some(other) => panic!("unknown suite {other}"),
    }
}

/// A socket's receive queue: datagrams in flight to one side, in buffers reused.
#[derive(Default)]
struct Queue {
    queued: VecDeque<(Vec<u8>, usize)>,
    spare: Vec<Vec<u8>>,
}

impl Queue {
    fn push_from(&mut self, mut fill: impl FnMut(&mut [u8]) -> Option<usize>) -> u64 {
        let mut n = 0;
        loop {
            let mut buf = self.spare.pop().unwrap_or_else(|| vec![0; MAX_DATAGRAM]);
            match fill(&mut buf) {
                Some(len) => {
                    self.queued.push_back((buf, len));
                    n += 1;
                }
                None => {
                    self.spare.push(buf);
                    return n;
                }
            }
        }
    }

    fn pop(&mut self) -> Option<(Vec<u8>, usize)> {
        self.queued.pop_front()
    }

    fn give_back(&mut self, buf: Vec<u8>) {
        self.spare.push(buf);
    }
}

fn pipelined(messages: usize, suite: Suite) {
    let data = payload(PAYLOAD);
    let mut pair = DirectPair::connected(suite);
    let (caddr, saddr) = (client_addr(0), server_addr());
    let (mut to_server, mut to_client) = (Queue::default(), Queue::default());
    let (mut queued, mut done, mut in_flight, mut datagrams, mut timers) = (0, 0, 0, 0u64, 0u64);
    let mut passes = 0u64;
    while done < messages {
        passes += 1;
        assert!(passes < 100 * messages as u64 + 10_000, "the run stalled");
        // The client's driver: the commands queued meanwhile, then what they and the
        // datagrams read make it send.
        let mut take = 0;
        // An internal exchange (a keepalive) can hold a place of the queue: a full queue
        // waits for the next pass.
        while take < COMMANDS.min(WINDOW - in_flight).min(messages - queued)
            && pair
                .client
                .send_message(pair.now, TARGET, NAME, &data, SendOptions::reliable())
                .is_ok()
        {
            take += 1;
        }
        queued += take;
        in_flight += take;
        pair.now += Duration::from_micros(take as u64 + 1);
        for _ in 0..RECV_BATCH {
            let Some((buf, len)) = to_client.pop() else {
                break;
            };
            pair.client.handle_datagram(pair.now, saddr, &buf[..len]);
            to_client.give_back(buf);
        }
        if pair.client.poll_timeout().is_some_and(|t| t <= pair.now) {
            pair.client.handle_timeout(pair.now);
            timers += 1;
        }
        let now = pair.now;
        datagrams += to_server.push_from(|buf| pair.client.poll_transmit(now, buf).map(|t| t.len));
        while let Some(e) = pair.client.poll_event() {
            if matches!(e, ClientEvent::Delivered { .. }) {
                in_flight -= 1;
                done += 1;
            }
        }
        // The server's driver.
        for _ in 0..RECV_BATCH {
            let Some((buf, len)) = to_server.pop() else {
                break;
            };
            pair.server.handle_datagram(pair.now, caddr, &buf[..len]);
            to_server.give_back(buf);
        }
        if pair.server.poll_timeout().is_some_and(|t| t <= pair.now) {
            pair.server.handle_timeout(pair.now);
            timers += 1;
        }
        datagrams += to_client.push_from(|buf| pair.server.poll_transmit(now, buf).map(|t| t.len));
        while pair.server.poll_event().is_some() {}
        // Both idle with work outstanding: sleep until the next timer, as a driver would.
        if to_server.queued.is_empty() && to_client.queued.is_empty() && take == 0 {
            pair.skip_to_next_timer();
        }
    }
    println!(
        "{messages} messages pipelined, {datagrams} datagrams ({:.4}/msg), {passes} passes, \
         {timers} timer calls",
        datagrams as f64 / messages as f64
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("pipe") {
        let messages: usize = args
            .next()
            .map_or(10_000, |s| s.parse().expect("a message count"));
        pipelined(messages, suite(args.next().as_deref()));
        return;
    }
    let batches: usize = first.map_or(10, |s| s.parse().expect("a batch count"));
    let suite = suite(args.next().as_deref());
    let data = payload(PAYLOAD);
    let mut pair = DirectPair::connected(suite);
    for _ in 0..batches {
        pair.reliable_batch(BATCH, &data);
    }
    println!("{} messages, {} datagrams", batches * BATCH, pair.datagrams);
}
