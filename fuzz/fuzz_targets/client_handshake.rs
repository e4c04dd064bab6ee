//! The client's handshake state machines (suites 1, 2 and 3), fed arbitrary datagram sequences.
//!
//! Client 1, configured for the suite the first byte picks, receives datagrams from its server's
//! address or a stranger's, with time passing (its retries fire) and commands queued. Seeds are
//! the server's side of real handshakes (`examples/seeds.rs`): this client, built the same way,
//! accepts them again, so mutations start from deep states. Input: a suite byte, then
//! operations: `op::WAIT`, `op::MOVE`, `op::COMMAND` (queue a reliable message), anything else
//! a raw datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pavillion_fuzz::{drain_client, op, wait_client, Ops, OTHER, SERVER};
use pavillion_proto::endpoint::{Client, SendOptions};
use pavillion_proto::testing::established::START;

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let suite = ops.suite();
    let mut client = Client::new(pavillion_fuzz::client_config(suite, 1));
    let mut now = START;
    let mut from = SERVER;
    drain_client(&mut client, now);
    while !ops.is_empty() {
        match ops.u8() % op::COUNT {
            op::WAIT => {
                let ms = ops.u16();
                wait_client(&mut client, &mut now, ms);
            }
            op::MOVE => from = if from == OTHER { SERVER } else { OTHER },
            op::COMMAND => {
                let _which = ops.u8();
                let arg = ops.bytes();
                let _ = client.send_message(now, "t", "n", arg, SendOptions::reliable());
            }
            _ => client.handle_datagram(now, from, ops.bytes()),
        }
        drain_client(&mut client, now);
    }
});
