//! A client with an established, confirmed session, under every suite, fed packets its server
//! sealed.
//!
//! The target holds the server's send key (`testing::established`), so every plaintext the
//! fuzzer picks opens at the client and reaches application parsing and the handlers behind
//! it: ACKs against its outbox, RPC answers against its calls, subscriptions, status, time
//! sync, server announcements, quit. Commands (send, call, time sync, close), replays, raw
//! datagrams and time are in the fuzzer's hands. Input: a suite byte, then operations (see
//! `pavillion_fuzz::op`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pavillion_fuzz::{drain_client, op, text, wait_client, Ops, FUNCTION, OTHER};
use pavillion_proto::endpoint::SendOptions;
use pavillion_proto::{Counter, FunctionId};

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let mut e = pavillion_fuzz::established_client(ops.suite());
    let mut now = e.now;
    let mut from = e.server_addr;
    let mut buf = vec![0u8; 8192];
    while !ops.is_empty() {
        match ops.u8() % op::COUNT {
            op::SEALED => {
                let plain = ops.bytes();
                if let Ok(n) = e.server.seal(plain, &mut buf) {
                    e.client.handle_datagram(now, from, &buf[..n]);
                }
            }
            op::SEALED_AT => {
                let back = u64::from(ops.u16());
                let plain = ops.bytes();
                let c = Counter(e.server.next_counter().0.saturating_sub(1 + back));
                if let Ok(n) = e.server.seal_at(c, plain, &mut buf) {
                    e.client.handle_datagram(now, from, &buf[..n]);
                }
            }
            op::RAW => e.client.handle_datagram(now, from, ops.bytes()),
            op::WAIT => {
                let ms = ops.u16();
                wait_client(&mut e.client, &mut now, ms);
            }
            op::MOVE => from = if from == OTHER { e.server_addr } else { OTHER },
            _ => {
                let which = ops.u8();
                let arg = ops.bytes();
                let c = &mut e.client;
                match which % 6 {
                    0 => drop(c.send_message(now, "t", text(arg), arg, SendOptions::reliable())),
                    1 => drop(c.send_message(now, text(arg), "n", arg, SendOptions::unreliable())),
                    2 => drop(c.call(now, FUNCTION, arg, None)),
                    3 => drop(c.call(now, FunctionId(u16::from(which)), arg, None)),
                    4 => drop(c.sync_time(now, None)),
                    _ => c.close(now),
                }
            }
        }
        drain_client(&mut e.client, now);
    }
});
