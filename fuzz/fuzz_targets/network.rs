//! A client and a server of one suite on `testing::Network`, driven by arbitrary operations.
//!
//! Structure-aware: each operation is a command on either endpoint (send, call, respond, time
//! sync, subscribe, close), a change of the link (loss, duplication, jitter that reorders), a
//! host going down or coming back, a server reboot, a raw datagram injected either way, or time
//! passing. The network itself checks for livelock. Input: a suite byte, then operations of one
//! byte each with their fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pavillion_fuzz::{client_config, text, Ops, CLIENT, FUNCTION, SERVER};
use pavillion_proto::endpoint::{SendOptions, ServerEvent};
use pavillion_proto::testing::{established, Link, Network, Node};
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::{Duration, FunctionId};

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let suite = ops.suite();
    let mut net = Network::new(u64::from(ops.u8()), Link::clean());
    net.add(SERVER, Node::Server(pavillion_fuzz::server(1)));
    net.add_client(CLIENT, client_config(suite, 1));
    let mut calls = Vec::new();
    let mut steps = 0;
    while !ops.is_empty() && steps < 64 {
        steps += 1;
        let now = net.now();
        match ops.u8() % 12 {
            0 => {
                let arg = ops.bytes();
                let opts = SendOptions::reliable();
                let _ = net
                    .client(CLIENT)
                    .send_message(now, "t", text(arg), arg, opts);
            }
            1 => {
                let arg = ops.bytes();
                let opts = SendOptions::unreliable();
                let _ = net
                    .client(CLIENT)
                    .send_message(now, text(arg), "n", arg, opts);
            }
            2 => {
                let f = if !ops.bool() {
                    FUNCTION
                } else {
                    FunctionId(ops.u16())
                };
                let arg = ops.bytes();
                let _ = net.client(CLIENT).call(now, f, arg, None);
            }
            3 => {
                let arg = ops.bytes();
                let opts = SendOptions::reliable();
                let _ = net
                    .server(SERVER)
                    .send_message(now, CLIENT, "t", "n", arg, opts);
            }
            4 => {
                // Within the same span as the other targets' waits.
                let ms = u64::from(ops.u16() % 10_000);
                if net.now() < established::START + pavillion_fuzz::MAX_SPAN {
                    net.run_for(Duration::from_millis(ms));
                }
            }
            5 => {
                let (loss, dup, jitter) = (ops.u8(), ops.u8(), ops.u8());
                net.set_link(Link {
                    loss: f64::from(loss) / 512.0,
                    duplicate: f64::from(dup) / 512.0,
                    jitter: Duration::from_micros(u64::from(jitter) * 20),
                    ..Link::clean()
                });
            }
            6 => {
                let to_server = !ops.bool();
                let bytes = ops.bytes();
                if to_server {
                    net.inject(CLIENT, SERVER, bytes);
                } else {
                    net.inject(SERVER, CLIENT, bytes);
                }
            }
            7 => net.server(SERVER).subscribe(now, text(ops.bytes())),
            8 => {
                let seed = ops.u8();
                net.replace(SERVER, Node::Server(pavillion_fuzz::server(seed)));
                calls.clear();
            }
            9 => {
                let status = RpcStatus(u16::from(ops.u8()));
                let data = ops.bytes();
                for call in calls.drain(..) {
                    let _ = net.server(SERVER).respond(now, call, status, data);
                }
            }
            10 => {
                let up = !ops.bool();
                let host = if !ops.bool() { SERVER } else { CLIENT };
                net.set_up(host, up);
            }
            _ => match ops.u8() % 3 {
                0 => drop(net.client(CLIENT).sync_time(now, None)),
                1 => net.client(CLIENT).close(now),
                _ => net.server(SERVER).close(now),
            },
        }
        for ev in net.server_events(SERVER) {
            if let ServerEvent::RpcRequest(r) = ev {
                calls.push(r.call);
            }
        }
        net.client_events(CLIENT);
    }
    net.run_for(Duration::from_secs(2));
});
