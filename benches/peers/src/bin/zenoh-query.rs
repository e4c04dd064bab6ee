//! Zenoh 1.x request/response between two peers on 127.0.0.1 over TCP: `get` with a 64 B
//! payload to a queryable that replies with the same bytes, one in flight (a call is done
//! when the reply stream ends, as a user's `get` is). Against a raw UDP ping-pong measured
//! in the same process, in alternating slices, as compare's loopback rows.

use std::time::{Duration, Instant};

use pavillion_peers::zen::{pair, Link};
use pavillion_peers::{payload, rate, seconds_arg, RawPingPong, Results, BATCH, PAYLOAD};
use zenoh::bytes::ZBytes;
use zenoh::{Session, Wait};

const KEY: &str = "pavillion/bench/echo";

/// Slices each figure is measured in, alternated, as compare's loopback rows.
const SLICES: usize = 3;

fn main() {
    let seconds = seconds_arg();
    let data = payload(PAYLOAD);
    let (server, client) = pair(Link::Tcp);
    let queryable = server
        .declare_queryable(KEY)
        .callback(|query| {
            let answer = query.payload().cloned().unwrap_or_default();
            query
                .reply(query.key_expr().clone(), answer)
                .wait()
                .expect("reply");
        })
        .wait()
        .expect("declare queryable");
    let request = ZBytes::from(data.clone());
    // The queryable's declaration reaches the other peer asynchronously: call until one
    // answers, for at most 5 s.
    let start = Instant::now();
    while !call(&client, &request) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the queryable never answered"
        );
    }
    let raw = RawPingPong::new();
    let slice = seconds / SLICES as f64;
    let (mut zenoh, mut udp) = (0.0, 0.0);
    for _ in 0..SLICES {
        zenoh += rate(slice, || {
            for _ in 0..BATCH {
                assert!(call(&client, &request), "query unanswered");
            }
            BATCH
        }) / SLICES as f64;
        udp += raw.rate(&data, slice) / SLICES as f64;
    }
    println!(
        "zenoh get/queryable over tcp, 64 B, one in flight: {zenoh:.0} calls/s ({:.2}x raw UDP)",
        zenoh / udp
    );
    println!("raw UDP ping-pong, 64 B, same process:           {udp:.0} rt/s");
    drop(queryable);
    let _ = client.close().wait();
    let _ = server.close().wait();
    let mut results = Results::default();
    results.record("zenoh_query_64", zenoh, "calls/s");
    results.record("peer_raw_udp_pingpong_64", udp, "rt/s");
    results.print();
}

/// One `get` with `request`; true if a reply with the same length came before the reply
/// stream ended.
fn call(client: &Session, request: &ZBytes) -> bool {
    let replies = client
        .get(KEY)
        .payload(request.clone())
        .wait()
        .expect("get");
    let mut answered = false;
    while let Ok(reply) = replies.recv() {
        if let Ok(sample) = reply.result() {
            answered |= sample.payload().len() == request.len();
        }
    }
    answered
}
