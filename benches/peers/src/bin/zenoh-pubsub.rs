//! Zenoh 1.x publish/subscribe of 64 B samples between two peers on 127.0.0.1, over TCP
//! (Zenoh's default transport) and over UDP: one thread puts as fast as Zenoh takes them
//! (`CongestionControl::Block`, as Zenoh's own `z_pub_thr`, so that nothing is dropped at
//! the publisher and the figure is samples delivered), the subscriber's callback counts.
//! Zenoh's default batching is kept. Against a raw UDP blast in the same process, counted
//! at the receiver the same way, as compare's loopback rows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use pavillion_peers::zen::{pair, Link};
use pavillion_peers::{
    payload, raw_udp_blast, received_rate, seconds_arg, wait_for_first, Results, PAYLOAD,
};
use zenoh::bytes::ZBytes;
use zenoh::qos::CongestionControl;
use zenoh::Wait;

const KEY: &str = "pavillion/bench/thr";

fn main() {
    let seconds = seconds_arg();
    let data = payload(PAYLOAD);
    let mut results = Results::default();
    let tcp = pubsub(Link::Tcp, &data, seconds);
    let udp = pubsub(Link::Udp, &data, seconds);
    let blast = raw_udp_blast(&data, seconds);
    for (link, rate) in [(Link::Tcp, tcp), (Link::Udp, udp)] {
        match rate {
            Some(r) => println!(
                "zenoh pub/sub over {}, 64 B, counted at the subscriber: {r:.0} msg/s ({:.2}x raw UDP)",
                link.name(),
                r / blast
            ),
            None => println!("zenoh pub/sub over {}: nothing arrived (n/a)", link.name()),
        }
    }
    println!("raw UDP blast, 64 B, same process:                  {blast:.0} dg/s");
    if let Some(r) = tcp {
        results.record("zenoh_pubsub_64", r, "msg/s");
    }
    if let Some(r) = udp {
        results.record("zenoh_pubsub_udp_64", r, "msg/s");
    }
    results.record("peer_raw_udp_blast_64", blast, "dg/s");
    results.print();
}

/// Samples per second the subscriber counts over `link`; `None` if none arrived in 5 s.
fn pubsub(link: Link, data: &[u8], seconds: f64) -> Option<f64> {
    let (sub_session, pub_session) = pair(link);
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    let subscriber = sub_session
        .declare_subscriber(KEY)
        .callback(move |_sample| {
            count.fetch_add(1, Ordering::Relaxed);
        })
        .wait()
        .expect("declare subscriber");
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (stop, session, sample) = (
            stop.clone(),
            pub_session.clone(),
            ZBytes::from(data.to_vec()),
        );
        thread::spawn(move || {
            let publisher = session
                .declare_publisher(KEY)
                .congestion_control(CongestionControl::Block)
                .wait()
                .expect("declare publisher");
            while !stop.load(Ordering::Relaxed) {
                publisher.put(sample.clone()).wait().expect("put");
            }
        })
    };
    let rate = wait_for_first(&received, Duration::from_secs(5))
        .then(|| received_rate(&received, seconds));
    stop.store(true, Ordering::Relaxed);
    publisher.join().expect("publisher thread");
    drop(subscriber);
    let _ = pub_session.close().wait();
    let _ = sub_session.close().wait();
    rate
}
