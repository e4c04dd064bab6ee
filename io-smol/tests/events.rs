//! Connection events and counters reach the application through io-smol, on real loopback
//! sockets: sessions up and down, peers silent and back, status changes, and drops by
//! reason. Every test is bounded by a timer, so none can hang.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use futures_lite::{future, StreamExt};
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::Limits;
use pavillion_proto::features::status::{Battery, BatteryState, NetworkStatus, Status};
use pavillion_proto::{ClientId, PeerId};
use pavillion_smol::{
    Client, ClientConfig, CloseReason, ConnectionEvent, ConnectionStream, DropReason, Reliability,
    Server, ServerConfig,
};

const ID: ClientId = ClientId(*b"smol-client-0002");

fn psk_pair() -> (ServerConfig, ClientConfig) {
    let psk = Psk::from_bytes([0x5b; 32]);
    (
        ServerConfig::new().psk_client(ID, psk.clone()),
        ClientConfig::psk(ID, psk),
    )
}

/// Runs `test` on `smol::block_on`, failing it if it takes longer than `limit`.
fn bounded<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test did not finish within {limit:?}");
    }))
}

/// The next event of `events` (the test's own bound limits the wait).
async fn next(events: &mut ConnectionStream) -> ConnectionEvent {
    events.next().await.expect("the connection stream ended")
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Short liveness timers, so that a silent peer is reported within a test's time.
fn quick_limits() -> Limits {
    let mut limits = Limits {
        down_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    limits.rtt.max_rto = Duration::from_millis(100);
    limits
}

#[test]
fn connected_disconnected_and_connected_again_when_the_server_comes_back() {
    bounded(Duration::from_secs(20), async {
        let (server_config, client_config) = psk_pair();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let server = Server::bind(addr, server_config.clone()).await.unwrap();
        let mut server_events = server.on_connection();
        let client = Client::connect(addr, client_config).await.unwrap();
        let mut client_events = client.on_connection();
        assert_eq!(&client.call(0, b"a").await.unwrap()[..], b"a");
        assert_eq!(
            next(&mut client_events).await,
            ConnectionEvent::Connected { addr, peer: None }
        );
        match next(&mut server_events).await {
            ConnectionEvent::Connected { addr: from, peer } => {
                assert_eq!(from.port(), client.local_addr().port());
                assert_eq!(peer, Some(PeerId::Client(ID)));
            }
            other => panic!("server saw {other:?}"),
        }
        // A stream made while the session is up starts with it.
        let mut late = client.on_connection();
        assert_eq!(
            next(&mut late).await,
            ConnectionEvent::Connected { addr, peer: None }
        );

        // The server quits: it says so, and the client reports the session gone.
        server.close().await;
        assert_eq!(
            next(&mut client_events).await,
            ConnectionEvent::Disconnected {
                addr,
                reason: CloseReason::PeerClosed
            }
        );

        // A new server on the same port: the next call brings a new session up.
        let server = Server::bind(addr, server_config).await.unwrap();
        let mut server_events = server.on_connection();
        assert_eq!(&client.call(0, b"b").await.unwrap()[..], b"b");
        assert_eq!(
            next(&mut client_events).await,
            ConnectionEvent::Connected { addr, peer: None }
        );
        assert!(matches!(
            next(&mut server_events).await,
            ConnectionEvent::Connected { .. }
        ));

        // The client quits: the server reports it.
        let local = client.local_addr();
        client.close().await;
        match next(&mut server_events).await {
            ConnectionEvent::Disconnected { addr, reason } => {
                assert_eq!(addr.port(), local.port());
                assert_eq!(reason, CloseReason::PeerClosed);
            }
            other => panic!("server saw {other:?}"),
        }
        // The client's own stream reports its end of the session, then ends with it.
        drop(late);
        assert_eq!(
            next(&mut client_events).await,
            ConnectionEvent::Disconnected {
                addr,
                reason: CloseReason::LocallyClosed
            }
        );
        assert_eq!(client_events.next().await, None);
    });
}

/// Forwards datagrams between one client and `server` while `open` is set, and drops them
/// both ways while it is not: a server (and client) that went silent without saying so. The
/// threads end when `stop` is set.
struct Relay {
    addr: SocketAddr,
    back: SocketAddr,
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn new(server: SocketAddr) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        }
        let relay = Relay {
            addr: front.local_addr().unwrap(),
            back: back.local_addr().unwrap(),
            open: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let client = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
        let pump = |from: UdpSocket, to: UdpSocket, towards_server: bool| {
            let (open, stop, client) = (relay.open.clone(), relay.stop.clone(), client.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, src)) = from.recv_from(&mut buf) else {
                        continue;
                    };
                    let dest = if towards_server {
                        *client.lock().unwrap() = Some(src);
                        Some(server)
                    } else {
                        *client.lock().unwrap()
                    };
                    if let (true, Some(dest)) = (open.load(Ordering::SeqCst), dest) {
                        let _ = to.send_to(&buf[..n], dest);
                    }
                }
            });
        };
        pump(front.try_clone().unwrap(), back.try_clone().unwrap(), true);
        pump(back, front, false);
        relay
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn peer_down_and_up_when_the_path_goes_silent_and_comes_back() {
    bounded(Duration::from_secs(20), async {
        let (server_config, client_config) = psk_pair();
        let server = Server::bind("127.0.0.1:0", server_config.limits(quick_limits()))
            .await
            .unwrap();
        let mut server_events = server.on_connection();
        let relay = Relay::new(server.local_addr());
        let client_config = client_config
            .limits(quick_limits())
            .keepalive(Some(Duration::from_millis(50)));
        let client = Client::connect(relay.addr, client_config).await.unwrap();
        let mut client_events = client.on_connection();
        assert_eq!(
            client.wait_connected(Duration::from_secs(5)).await.unwrap(),
            relay.addr
        );
        let connected = |e: &ConnectionEvent| matches!(e, ConnectionEvent::Connected { .. });
        assert!(connected(&next(&mut client_events).await));
        assert!(connected(&next(&mut server_events).await));

        // Nothing gets through: both ends report the other down, and keep the session.
        relay.open.store(false, Ordering::SeqCst);
        assert_eq!(
            next(&mut client_events).await,
            ConnectionEvent::PeerDown { addr: relay.addr }
        );
        assert_eq!(
            next(&mut server_events).await,
            ConnectionEvent::PeerDown { addr: relay.back }
        );

        // The path is back: the client's keepalive reaches the server, its ACK the client.
        relay.open.store(true, Ordering::SeqCst);
        // The peer is back: the old session answers again (PeerUp), or the client, which lost
        // contact, has already made a new one (Connected) — both say the peer returned.
        let back = next(&mut server_events).await;
        assert!(
            matches!(back, ConnectionEvent::PeerUp { addr } | ConnectionEvent::Connected { addr, .. } if addr == relay.back),
            "server: {back:?}"
        );
        let back = next(&mut client_events).await;
        assert!(
            matches!(back, ConnectionEvent::PeerUp { addr } | ConnectionEvent::Connected { addr, .. } if addr == relay.addr),
            "client: {back:?}"
        );
        assert_eq!(
            &client.call(0, b"still here").await.unwrap()[..],
            b"still here"
        );
    });
}

#[test]
fn a_status_change_reaches_the_client_stream() {
    bounded(Duration::from_secs(20), async {
        let (server_config, client_config) = psk_pair();
        let status = Status {
            battery: Battery {
                level: 40,
                state: BatteryState::Discharging,
            },
            network: NetworkStatus::Wlan { rssi: -70 },
            temperature: 22,
        };
        let server = Server::bind("127.0.0.1:0", server_config).await.unwrap();
        let client = Client::connect(server.local_addr(), client_config)
            .await
            .unwrap();
        let mut events = client.on_connection();
        client.wait_connected(Duration::from_secs(5)).await.unwrap();
        assert!(matches!(
            next(&mut events).await,
            ConnectionEvent::Connected { .. }
        ));
        server.set_status(Some(status));
        client
            .send_message("t", "n", b"x", Reliability::Reliable)
            .await
            .unwrap();
        assert_eq!(
            next(&mut events).await,
            ConnectionEvent::StatusChanged {
                addr: server.local_addr(),
                status
            }
        );
    });
}

#[test]
fn garbage_and_wrong_magic_are_counted_under_their_reasons() {
    bounded(Duration::from_secs(20), async {
        let (server_config, client_config) = psk_pair();
        let server = Server::bind("127.0.0.1:0", server_config).await.unwrap();
        assert_eq!(server.stats().await.unwrap().total_dropped(), 0);

        let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
        raw.send_to(b"NotPavillion at all, just garbage", server.local_addr())
            .unwrap();
        raw.send_to(b"Pavillion0 plaintext mode", server.local_addr())
            .unwrap();
        raw.send_to(b"Pavil", server.local_addr()).unwrap();

        // A real client after the garbage: once it is answered, the garbage was handled too.
        let client = Client::connect(server.local_addr(), client_config)
            .await
            .unwrap();
        assert_eq!(&client.call(0, b"a").await.unwrap()[..], b"a");
        let stats = server.stats().await.unwrap();
        assert_eq!(stats.dropped(DropReason::BadMagic), 1);
        assert_eq!(stats.dropped(DropReason::PlaintextMode), 1);
        assert_eq!(stats.dropped(DropReason::Truncated), 1);
        assert_eq!(stats.total_dropped(), 3);
        assert_eq!(stats.handshakes, 1);
        let named: Vec<String> = stats
            .drops()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{r}={n}"))
            .collect();
        assert_eq!(named, ["bad_magic=1", "plaintext_mode=1", "truncated=1"]);
        assert_eq!(client.stats().await.unwrap().handshakes, 1);

        client.close().await;
        server.close().await;
    });
}
