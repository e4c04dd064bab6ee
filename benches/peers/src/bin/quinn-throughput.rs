//! quinn 0.11 one-way 64 B datagrams on 127.0.0.1: one thread sends with
//! `send_datagram_wait` (which waits while quinn's datagram send buffer is full, so the
//! rate is what QUIC's congestion control lets through), the server counts what
//! `read_datagram` hands it. Against a raw UDP blast in the same process, counted the same
//! way, as compare's loopback rows. quinn packs many 64 B DATAGRAM frames into one QUIC
//! packet and many packets into one system call, which a raw blast of one datagram per
//! `send` does not: the sender's counts are printed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use pavillion_peers::{
    payload, quic, raw_udp_blast, received_rate, seconds_arg, wait_for_first, Results, PAYLOAD,
};

fn main() {
    let seconds = seconds_arg();
    let data = payload(PAYLOAD);
    let (server_config, client_config) = quic::configs();
    let received = Arc::new(AtomicU64::new(0));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
    {
        let received = received.clone();
        thread::spawn(move || {
            quic::runtime().block_on(async move {
                let endpoint = quic::server_endpoint(server_config);
                addr_tx
                    .send(endpoint.local_addr().expect("bound"))
                    .expect("main thread waits");
                if let Some(incoming) = endpoint.accept().await {
                    let conn = incoming.await.expect("handshake on loopback");
                    while conn.read_datagram().await.is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        });
    }
    let server = addr_rx.recv().expect("server address");
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (stop, data) = (stop.clone(), Bytes::from(data.clone()));
        thread::spawn(move || {
            quic::runtime().block_on(async move {
                let endpoint = quic::client_endpoint(client_config);
                let conn = endpoint
                    .connect(server, "localhost")
                    .expect("connect")
                    .await
                    .expect("handshake on loopback");
                while !stop.load(Ordering::Relaxed) {
                    conn.send_datagram_wait(data.clone())
                        .await
                        .expect("send datagram");
                }
                let stats = conn.stats();
                conn.close(0u32.into(), b"done");
                endpoint.wait_idle().await;
                stats
            })
        })
    };
    assert!(
        wait_for_first(&received, Duration::from_secs(5)),
        "no datagram arrived"
    );
    let quinn = received_rate(&received, seconds);
    stop.store(true, Ordering::Relaxed);
    let stats = sender.join().expect("sender thread");
    // quinn packs several DATAGRAM frames into one QUIC packet, and sends runs of packets
    // with one system call (GSO): say how many messages one UDP datagram carried.
    println!(
        "quinn sender: {} DATAGRAM frames in {} UDP datagrams ({:.1} per datagram) in {} system calls",
        stats.frame_tx.datagram,
        stats.udp_tx.datagrams,
        stats.frame_tx.datagram as f64 / stats.udp_tx.datagrams.max(1) as f64,
        stats.udp_tx.ios
    );
    let blast = raw_udp_blast(&data, seconds);
    println!(
        "quinn one-way datagrams, 64 B, counted at the receiver: {quinn:.0} msg/s ({:.2}x raw UDP)",
        quinn / blast
    );
    println!("raw UDP blast, 64 B, same process:                      {blast:.0} dg/s");
    let mut results = Results::default();
    results.record("quinn_dgram_oneway_64", quinn, "msg/s");
    results.record("peer_raw_udp_blast_64", blast, "dg/s");
    results.print();
}
