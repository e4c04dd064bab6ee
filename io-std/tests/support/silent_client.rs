//! A suite 1 client driven by hand over a plain socket: it connects, then goes silent (reads
//! nothing, acknowledges nothing), as a client that is gone without a word. The server keeps
//! its session until its own timers say otherwise, so what the server sends it is never
//! acknowledged. Both adapters' tests include this file by path.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant as StdInstant};

use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{Client, ClientConfig};
use pavillion_proto::{ClientId, Instant};

/// Connects a suite 1 client `id` with `psk` to `server`, driving it until the server
/// answered and then a little longer (the server holds the session by then), and returns the
/// socket the client used: its address is the client's at the server. Nothing reads the
/// socket afterwards. Panics if the server never answers within 5 s.
pub(crate) fn connect_then_go_silent(server: SocketAddr, id: ClientId, psk: Psk) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind on loopback");
    socket
        .set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    let mut client = Client::new(ClientConfig::psk(id, psk, server, [7; 32]));
    let start = StdInstant::now();
    let now =
        || Instant::from_micros(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
    let mut buf = vec![0u8; 65_536];
    let mut answered_at = None;
    loop {
        let t = now();
        client.handle_timeout(t);
        while let Some(out) = client.poll_transmit(t, &mut buf) {
            socket
                .send_to(&buf[..out.len], out.destination)
                .expect("send on loopback");
        }
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            client.handle_datagram(now(), from, &buf[..n]);
            if answered_at.is_none() {
                answered_at = Some(StdInstant::now());
            }
        }
        if client.is_connected()
            && answered_at.is_some_and(|a| a.elapsed() > Duration::from_millis(100))
        {
            return socket;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the server never answered"
        );
    }
}
