//! A server with an established session, under every suite, fed packets its client sealed.
//!
//! The target holds the client's send key (`testing::established`), so every plaintext the
//! fuzzer picks opens at the server and reaches application parsing and the handlers behind
//! it: messages, ACKs, RPC and its answer cache, subscriptions, time sync, group keys, quit.
//! Replays, old counters, raw datagrams, address changes and time are in the fuzzer's hands.
//! Input: a suite byte, then operations (see `pavillion_fuzz::op`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pavillion_fuzz::{drain_server, op, text, wait_server, Ops, OTHER};
use pavillion_proto::endpoint::SendOptions;
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::Counter;

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let mut e = pavillion_fuzz::established_server(ops.suite());
    e.server.register_function(pavillion_fuzz::FUNCTION, "fuzz");
    let mut now = e.now;
    let mut from = e.client_addr;
    let mut calls = Vec::new();
    let mut buf = vec![0u8; 8192];
    while !ops.is_empty() {
        match ops.u8() % op::COUNT {
            op::SEALED => {
                let plain = ops.bytes();
                if let Ok(n) = e.client.seal(plain, &mut buf) {
                    e.server.handle_datagram(now, from, &buf[..n]);
                }
            }
            op::SEALED_AT => {
                let back = u64::from(ops.u16());
                let plain = ops.bytes();
                let c = Counter(e.client.next_counter().0.saturating_sub(1 + back));
                if let Ok(n) = e.client.seal_at(c, plain, &mut buf) {
                    e.server.handle_datagram(now, from, &buf[..n]);
                }
            }
            op::RAW => e.server.handle_datagram(now, from, ops.bytes()),
            op::WAIT => {
                let ms = ops.u16();
                wait_server(&mut e.server, &mut now, ms, &mut calls);
            }
            op::MOVE => from = if from == OTHER { e.client_addr } else { OTHER },
            _ => {
                let which = ops.u8();
                let arg = ops.bytes();
                match which % 5 {
                    0 => {
                        for call in calls.drain(..) {
                            let status = RpcStatus(u16::from(which));
                            let _ = e.server.respond(now, call, status, arg);
                        }
                    }
                    1 | 2 => {
                        let opts = if which % 5 == 1 {
                            SendOptions::reliable()
                        } else {
                            SendOptions::unreliable()
                        };
                        let _ = e.server.send_message(now, from, "t", "n", arg, opts);
                    }
                    3 => e.server.subscribe(now, text(arg)),
                    _ => e.server.disconnect(now, from),
                }
            }
        }
        drain_server(&mut e.server, now, &mut calls);
    }
});
