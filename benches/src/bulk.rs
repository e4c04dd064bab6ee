//! The bulk transfer of `compare`: one large reliable message through `pavillion-std` on
//! loopback, against a plain TCP transfer of the same bytes in the same run.
//!
//! Both figures are "bytes the receiving application holds, per second of wall clock from the
//! sender's first call": for Pavillion, from `Client::send_message` until the server's
//! message callback (the application's path) runs with the whole payload; for TCP, from
//! `connect` until a reader thread has read every byte.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use pavillion_std::{Client, ClientConfig, Reliability, Server, ServerConfig};

use crate::{client_id, client_keys, client_psk, server_keys, Suite};

/// The target of the bulk message.
const BULK_TARGET: &str = "bulk";

/// What one Pavillion bulk run measured.
#[derive(Clone, Copy, Debug)]
pub struct BulkRun {
    /// Wall time from the send call until the server's callback had the whole message.
    pub delivered: Duration,
    /// Wall time until the sender's `send_message` returned (the last ACK was in).
    pub acknowledged: Duration,
    /// Retransmissions the client counted during the run.
    pub retransmissions: u64,
    /// Datagrams the client sent during the run.
    pub datagrams_sent: u64,
}

/// The `pavillion-std` configurations of one client of a loopback server in `suite`, with
/// the adapters' defaults (every loopback row of `compare` uses them).
pub fn std_configs(suite: Suite) -> (ServerConfig, ClientConfig) {
    match suite {
        Suite::Psk => (
            ServerConfig::new().psk_client(client_id(0), client_psk(0)),
            ClientConfig::psk(client_id(0), client_psk(0)),
        ),
        Suite::Ecc => (
            ServerConfig::new()
                .keys(server_keys())
                .ecc_client(client_id(0), *client_keys(0).public()),
            ClientConfig::ecc(client_id(0), client_keys(0), *server_keys().public()),
        ),
        Suite::Noise => (
            ServerConfig::new()
                .keys(server_keys())
                .ecc_client(client_id(0), *client_keys(0).public()),
            ClientConfig::noise_ik(client_id(0), client_keys(0), *server_keys().public()),
        ),
    }
}

/// Sends `data` as one reliable message from a client to a server on 127.0.0.1, `runs` times
/// on one session, and returns each run.
///
/// # Panics
/// If the loopback endpoints cannot be opened or a message is not delivered within a minute:
/// a benchmark has nothing to report then.
pub fn pavillion_bulk(suite: Suite, data: &[u8], runs: usize) -> Vec<BulkRun> {
    let max = data.len() + 64;
    let (server_config, client_config) = std_configs(suite);
    let (server_config, client_config) = (
        server_config.max_message(max),
        client_config.max_message(max),
    );
    let server = Server::bind("127.0.0.1:0", server_config).expect("bind on loopback");
    let (tx, rx) = mpsc::channel();
    server.on_message(Some(BULK_TARGET), move |m| {
        let _ = tx.send((Instant::now(), m.payload().len()));
    });
    let client_config = client_config.send_timeout(Duration::from_secs(60));
    let client = Client::connect(server.local_addr(), client_config).expect("client socket");
    client
        .wait_connected(Duration::from_secs(5))
        .expect("handshake on loopback");
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let before = client.stats().expect("client stats");
        let start = Instant::now();
        client
            .send_message(BULK_TARGET, "blob", data, Reliability::Reliable)
            .expect("bulk message acknowledged");
        let acknowledged = start.elapsed();
        let (at, len) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("bulk message delivered");
        assert_eq!(len, data.len(), "bulk message delivered whole");
        let after = client.stats().expect("client stats");
        out.push(BulkRun {
            delivered: at.duration_since(start),
            acknowledged,
            retransmissions: after.retransmissions - before.retransmissions,
            datagrams_sent: after.datagrams_sent - before.datagrams_sent,
        });
    }
    client.close();
    server.close();
    out
}

/// Writes `data` over a fresh TCP connection on 127.0.0.1 while a reader thread reads it all;
/// returns the wall time from `connect` until the reader had every byte.
///
/// # Panics
/// If loopback TCP fails.
pub fn tcp_bulk(data: &[u8]) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    let addr = listener.local_addr().expect("bound");
    let total = data.len();
    let reader = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 64 << 10];
        let mut got = 0;
        while got < total {
            match stream.read(&mut buf).expect("read") {
                0 => break,
                n => got += n,
            }
        }
        (Instant::now(), got)
    });
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(data).expect("write");
    let (done, got) = reader.join().expect("reader thread");
    assert_eq!(got, total, "TCP transfer whole");
    done.duration_since(start)
}
