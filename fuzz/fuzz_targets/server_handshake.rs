//! The server's handshake state machines (suites 1, 2 and 3), fed arbitrary datagram sequences.
//!
//! A server that knows client 1 under every suite receives datagrams from the client's address
//! or a stranger's, with time passing in between. Seeds are the client's side of real
//! handshakes (`examples/seeds.rs`), which this server, built the same way, completes again, so
//! mutations start from deep states: half-open exchanges, completed ones, pending suite 3
//! keys, cookies under load. Input: a suite byte (unused here), then operations:
//! `op::WAIT`, `op::MOVE`, anything else a raw datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pavillion_fuzz::{drain_server, op, wait_server, Ops, CLIENT, OTHER};
use pavillion_proto::testing::established::START;

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let _suite = ops.suite();
    let mut server = pavillion_fuzz::server(1);
    let mut now = START;
    let mut from = CLIENT;
    let mut calls = Vec::new();
    while !ops.is_empty() {
        match ops.u8() % op::COUNT {
            op::WAIT => {
                let ms = ops.u16();
                wait_server(&mut server, &mut now, ms, &mut calls);
            }
            op::MOVE => from = if from == OTHER { CLIENT } else { OTHER },
            _ => server.handle_datagram(now, from, ops.bytes()),
        }
        drain_server(&mut server, now, &mut calls);
    }
});
