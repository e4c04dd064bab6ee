//! quinn 0.11 round trips on 127.0.0.1, 64 B, one in flight: a datagram ping-pong
//! (`send_datagram` / `read_datagram`, echoed by the server) and an RPC of one
//! bidirectional stream per call (open, write, finish; the server reads to the end and
//! writes it back). Against a raw UDP ping-pong measured in the same process, the three in
//! alternating slices, as compare's loopback rows.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use pavillion_peers::{payload, quic, rate, seconds_arg, RawPingPong, Results, BATCH, PAYLOAD};
use quinn::Connection;

/// How long a datagram ping waits for its echo before it counts as lost and is sent again
/// (datagrams are unreliable, even on loopback a full buffer may drop one).
const DATAGRAM_WAIT: Duration = Duration::from_millis(200);

/// Slices each figure is measured in, alternated, as compare's loopback rows.
const SLICES: usize = 3;

fn main() {
    let seconds = seconds_arg();
    let data = payload(PAYLOAD);
    let (server_config, client_config) = quic::configs();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
    // The echo server on its own thread and runtime, as pavillion's server is on its own
    // driver thread; it lives until the process ends.
    thread::spawn(move || {
        quic::runtime().block_on(async move {
            let endpoint = quic::server_endpoint(server_config);
            addr_tx
                .send(endpoint.local_addr().expect("bound"))
                .expect("main thread waits");
            while let Some(incoming) = endpoint.accept().await {
                tokio::spawn(async move {
                    if let Ok(conn) = incoming.await {
                        serve(conn).await;
                    }
                });
            }
        });
    });
    let server = addr_rx.recv().expect("server address");
    let rt = quic::runtime();
    let conn = rt.block_on(async {
        let endpoint = quic::client_endpoint(client_config);
        let conn = endpoint
            .connect(server, "localhost")
            .expect("connect")
            .await
            .expect("handshake on loopback");
        (endpoint, conn)
    });
    let (_endpoint, conn) = conn;
    let raw = RawPingPong::new();
    let slice = seconds / SLICES as f64;
    let (mut dgram, mut stream, mut udp) = (0.0, 0.0, 0.0);
    let mut lost = 0u64;
    let ping = Bytes::from(data.clone());
    for _ in 0..SLICES {
        dgram += rate(slice, || {
            rt.block_on(datagram_batch(&conn, &ping, &mut lost))
        }) / SLICES as f64;
        stream += rate(slice, || rt.block_on(stream_batch(&conn, &data))) / SLICES as f64;
        udp += raw.rate(&data, slice) / SLICES as f64;
    }
    println!("quinn datagram ping-pong, 64 B, one in flight: {dgram:.0} rt/s ({:.2}x raw UDP; {lost} lost and resent)", dgram / udp);
    println!(
        "quinn stream-per-call RPC, 64 B, one in flight:  {stream:.0} calls/s ({:.2}x raw UDP)",
        stream / udp
    );
    println!("raw UDP ping-pong, 64 B, same process:          {udp:.0} rt/s");
    let mut results = Results::default();
    results.record("quinn_dgram_pingpong_64", dgram, "rt/s");
    results.record("quinn_stream_rpc_64", stream, "calls/s");
    results.record("peer_raw_udp_pingpong_64", udp, "rt/s");
    results.print();
}

/// The server side of a connection: datagrams are echoed as they come; every bidirectional
/// stream is read to its end and answered with the same bytes.
async fn serve(conn: Connection) {
    let datagrams = conn.clone();
    tokio::spawn(async move {
        while let Ok(d) = datagrams.read_datagram().await {
            if datagrams.send_datagram(d).is_err() {
                break;
            }
        }
    });
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        tokio::spawn(async move {
            if let Ok(request) = recv.read_to_end(2048).await {
                let _ = send.write_all(&request).await;
                let _ = send.finish();
            }
        });
    }
}

/// [`BATCH`] datagram round trips, one in flight; a ping whose echo does not come within
/// [`DATAGRAM_WAIT`] is sent again and counted in `lost`.
async fn datagram_batch(conn: &Connection, ping: &Bytes, lost: &mut u64) -> u64 {
    for _ in 0..BATCH {
        conn.send_datagram(ping.clone()).expect("send datagram");
        loop {
            match tokio::time::timeout(DATAGRAM_WAIT, conn.read_datagram()).await {
                Ok(Ok(pong)) => {
                    debug_assert_eq!(pong.len(), ping.len());
                    break;
                }
                Ok(Err(e)) => panic!("connection lost: {e}"),
                Err(_) => {
                    *lost += 1;
                    conn.send_datagram(ping.clone()).expect("send datagram");
                }
            }
        }
    }
    BATCH
}

/// [`BATCH`] calls of one bidirectional stream each, one in flight.
async fn stream_batch(conn: &Connection, data: &[u8]) -> u64 {
    for _ in 0..BATCH {
        let (mut send, mut recv) = conn.open_bi().await.expect("open stream");
        send.write_all(data).await.expect("write request");
        send.finish().expect("finish request");
        let answer = recv.read_to_end(2048).await.expect("read answer");
        debug_assert_eq!(&answer[..], data);
    }
    BATCH
}
