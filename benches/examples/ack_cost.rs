//! A deterministic, single-threaded run of pipelined reliable messages through the direct
//! pair (the `core vs crypto floor` row's driver), for instruction counts under callgrind:
//! wall-clock figures on a shared machine vary, instruction counts do not (issue 19).
//!
//! `ack_cost BATCHES [SUITE]` sends BATCHES windows of 64 reliable 64-byte messages, each
//! acknowledged before the next window. Per-message cost is the difference between two runs
//! of different lengths divided by the difference in messages, which cancels the handshake
//! and start-up:
//!
//! ```sh
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/ack_cost 10
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/ack_cost 110
//! ```
#![allow(
    missing_docs,
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc
)]
use pavillion_benches::{payload, DirectPair, Suite, BATCH, PAYLOAD};

fn main() {
    let mut args = std::env::args().skip(1);
    let batches: usize = args
        .next()
        .map_or(10, |s| s.parse().expect("a batch count"));
    let suite = match args.next().as_deref() {
        None | Some("psk") => Suite::Psk,
        Some("ecc") => Suite::Ecc,
        Some("noise") => Suite::Noise,
        Some(other) => panic!("unknown suite {other}"),
    };
    let data = payload(PAYLOAD);
    let mut pair = DirectPair::connected(suite);
    for _ in 0..batches {
        pair.reliable_batch(BATCH, &data);
    }
    println!("{} messages, {} datagrams", batches * BATCH, pair.datagrams);
}
