//! Connection events and counters reach the application through the blocking adapter, on
//! real loopback sockets: sessions up and down, peers silent and back, status changes, and
//! drops by reason.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use pavillion_proto::endpoint::Limits;
use pavillion_proto::features::status::{Battery, BatteryState, NetworkStatus, Status};
use pavillion_proto::{ClientId, PeerId};
use pavillion_std::keys::generate_psk;
use pavillion_std::{
    CallError, Client, ClientConfig, CloseReason, ConnectionEvent, DropReason, Reliability, Server,
    ServerConfig,
};

const ID: ClientId = ClientId(*b"cid2cid2cid2cid2");
const WAIT: Duration = Duration::from_secs(5);

fn psk_pair() -> (ServerConfig, ClientConfig) {
    let psk = generate_psk();
    (
        ServerConfig::new().psk_client(ID, psk.clone()),
        ClientConfig::psk(ID, psk),
    )
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The next connection event within `WAIT`, skipping those `skip` rejects.
fn next(
    rx: &mpsc::Receiver<ConnectionEvent>,
    skip: impl Fn(&ConnectionEvent) -> bool,
) -> ConnectionEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) if skip(&e) => continue,
            Ok(e) => return e,
            Err(e) => panic!("no connection event within {WAIT:?}: {e}"),
        }
    }
}

fn events(on: impl FnOnce(mpsc::Sender<ConnectionEvent>)) -> mpsc::Receiver<ConnectionEvent> {
    let (tx, rx) = mpsc::channel();
    on(tx);
    rx
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
    let (server_config, client_config) = psk_pair();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let server = Server::bind(addr, server_config.clone()).unwrap();
    let server_events = events(|tx| {
        server.on_connection(move |e| {
            let _ = tx.send(e.clone());
        })
    });
    let client = Client::connect(addr, client_config).unwrap();
    let client_events = events(|tx| {
        client.on_connection(move |e| {
            let _ = tx.send(e.clone());
        })
    });
    assert_eq!(&client.call(0, b"a").unwrap()[..], b"a");
    assert_eq!(
        next(&client_events, |_| false),
        ConnectionEvent::Connected { addr, peer: None }
    );
    match next(&server_events, |_| false) {
        ConnectionEvent::Connected { addr: from, peer } => {
            assert_eq!(from.port(), client.local_addr().port());
            assert_eq!(peer, Some(PeerId::Client(ID)));
        }
        other => panic!("server saw {other:?}"),
    }

    // A subscriber added while the session is up hears of it first.
    let late = events(|tx| {
        client.on_connection(move |e| {
            let _ = tx.send(e.clone());
        })
    });
    assert_eq!(
        next(&late, |_| false),
        ConnectionEvent::Connected { addr, peer: None }
    );

    // The server quits: it says so, and the client reports the session gone.
    server.close();
    assert_eq!(
        next(&client_events, |_| false),
        ConnectionEvent::Disconnected {
            addr,
            reason: CloseReason::PeerClosed
        }
    );

    // A new server process on the same port: the next call brings a new session up.
    let server = Server::bind(addr, server_config).unwrap();
    let server_events = events(|tx| {
        server.on_connection(move |e| {
            let _ = tx.send(e.clone());
        })
    });
    assert_eq!(&client.call(0, b"b").unwrap()[..], b"b");
    assert_eq!(
        next(&client_events, |_| false),
        ConnectionEvent::Connected { addr, peer: None }
    );
    assert!(matches!(
        next(&server_events, |_| false),
        ConnectionEvent::Connected { .. }
    ));

    // The client quits: the server reports it.
    let local = client.local_addr();
    client.close();
    match next(&server_events, |_| false) {
        ConnectionEvent::Disconnected { addr, reason } => {
            assert_eq!(addr.port(), local.port());
            assert_eq!(reason, CloseReason::PeerClosed);
        }
        other => panic!("server saw {other:?}"),
    }
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
    let (server_config, client_config) = psk_pair();
    let server = Server::bind("127.0.0.1:0", server_config.limits(quick_limits())).unwrap();
    let server_events = events(|tx| {
        server.on_connection(move |e| {
            let _ = tx.send(e.clone());
        })
    });
    let relay = Relay::new(server.local_addr());
    let client_config = client_config
        .limits(quick_limits())
        .keepalive(Some(Duration::from_millis(50)));
    let client = Client::connect(relay.addr, client_config).unwrap();
    let client_events = events(|tx| {
        client.on_connection(move |e| {
            let _ = tx.send(e.clone());
        })
    });
    assert_eq!(client.wait_connected(WAIT).unwrap(), relay.addr);
    let connected = |e: &ConnectionEvent| matches!(e, ConnectionEvent::Connected { .. });
    assert!(connected(&next(&client_events, |_| false)));
    assert!(connected(&next(&server_events, |_| false)));

    // Nothing gets through: both ends report the other down, and keep the session.
    relay.open.store(false, Ordering::SeqCst);
    assert_eq!(
        next(&client_events, |_| false),
        ConnectionEvent::PeerDown { addr: relay.addr }
    );
    assert_eq!(
        next(&server_events, |_| false),
        ConnectionEvent::PeerDown { addr: relay.back }
    );

    // The path is back: the client's keepalive reaches the server, its ACK the client.
    relay.open.store(true, Ordering::SeqCst);
    // The peer is back: the old session answers again (PeerUp), or the client, which lost
    // contact, has already made a new one (Connected) — both say the peer returned.
    let back = next(&server_events, |_| false);
    assert!(
        matches!(back, ConnectionEvent::PeerUp { addr } | ConnectionEvent::Connected { addr, .. } if addr == relay.back),
        "server: {back:?}"
    );
    let back = next(&client_events, |_| false);
    assert!(
        matches!(back, ConnectionEvent::PeerUp { addr } | ConnectionEvent::Connected { addr, .. } if addr == relay.addr),
        "client: {back:?}"
    );
    assert_eq!(&client.call(0, b"still here").unwrap()[..], b"still here");
}

/// A blocked caller's thread receives for the endpoint while it waits for its answer, and the
/// first call of a client waits through the handshake: the `Connected` it meets there must
/// still reach the callbacks on the client's own thread, as every callback does. Whether the
/// caller's thread gets the socket depends on timing, so ten clients try.
#[test]
fn events_met_by_a_waiting_caller_run_on_the_client_thread() {
    let (server_config, client_config) = psk_pair();
    let server = Server::bind("127.0.0.1:0", server_config).unwrap();
    for _ in 0..10 {
        let client = Client::connect(server.local_addr(), client_config.clone()).unwrap();
        let (tx, client_events) = mpsc::channel();
        client.on_connection(move |e| {
            let _ = tx.send((e.clone(), std::thread::current().name().map(String::from)));
        });
        // A round trip through the command queue: the subscription is in place and nothing
        // is queued, so the call below may be carried out on this thread, which then receives.
        assert!(client.stats().is_some());
        assert_eq!(&client.call(0, b"first").unwrap()[..], b"first");
        let (e, thread) = client_events.recv_timeout(WAIT).unwrap();
        assert_eq!(
            e,
            ConnectionEvent::Connected {
                addr: server.local_addr(),
                peer: None
            }
        );
        assert_eq!(thread.as_deref(), Some("pavillion-client"));
    }
}

#[test]
fn a_status_change_reaches_the_client_and_callbacks_may_issue_commands() {
    let (server_config, client_config) = psk_pair();
    let status = Status {
        battery: Battery {
            level: 40,
            state: BatteryState::Discharging,
        },
        network: NetworkStatus::Wlan { rssi: -70 },
        temperature: 22,
    };
    let server = Arc::new(Server::bind("127.0.0.1:0", server_config).unwrap());
    // The server's callback sets the status the moment a client connects: a command issued
    // from the server's own thread, queued behind the event. Its blocking queries answer at
    // once instead of waiting for the thread they run on.
    let (probe_tx, probe_rx) = mpsc::channel();
    let weak = Arc::downgrade(&server);
    server.on_connection(move |e| {
        if let (ConnectionEvent::Connected { .. }, Some(server)) = (e, weak.upgrade()) {
            server.set_status(Some(status));
            let _ = probe_tx.send((server.clients().len(), server.stats().is_none()));
        }
    });

    let client = Arc::new(Client::connect(server.local_addr(), client_config).unwrap());
    let (tx, client_events) = mpsc::channel();
    let (call_tx, call_in_callback) = mpsc::channel();
    let weak = Arc::downgrade(&client);
    client.on_connection(move |e| {
        if let (ConnectionEvent::StatusChanged { .. }, Some(client)) = (e, weak.upgrade()) {
            // A call from the client's own thread fails at once rather than deadlock.
            let _ = call_tx.send(client.call(0, b"x"));
        }
        let _ = tx.send(e.clone());
    });
    client.wait_connected(WAIT).unwrap();
    assert_eq!(probe_rx.recv_timeout(WAIT).unwrap(), (0, true));

    // The status rides on the ACK of the next reliable message.
    client
        .send_message("t", "n", b"x", Reliability::Reliable)
        .unwrap();
    let changed = next(&client_events, |e| {
        matches!(e, ConnectionEvent::Connected { .. })
    });
    assert_eq!(
        changed,
        ConnectionEvent::StatusChanged {
            addr: server.local_addr(),
            status
        }
    );
    assert_eq!(
        call_in_callback.recv_timeout(WAIT).unwrap(),
        Err(CallError::InCallback)
    );
    // The same status again is no change.
    client
        .send_message("t", "n", b"y", Reliability::Reliable)
        .unwrap();
    assert!(client_events
        .recv_timeout(Duration::from_millis(200))
        .is_err());
    assert_eq!(&client.call(0, b"ok").unwrap()[..], b"ok");
}

#[test]
fn garbage_and_wrong_magic_are_counted_under_their_reasons() {
    let (server_config, client_config) = psk_pair();
    let server = Server::bind("127.0.0.1:0", server_config).unwrap();
    let before = server.stats().unwrap();
    assert_eq!(before.total_dropped(), 0);

    let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
    raw.send_to(b"NotPavillion at all, just garbage", server.local_addr())
        .unwrap();
    raw.send_to(b"Pavillion0 plaintext mode", server.local_addr())
        .unwrap();
    raw.send_to(b"Pavil", server.local_addr()).unwrap();

    // A real client after the garbage: once it is answered, the garbage was handled too.
    let client = Client::connect(server.local_addr(), client_config).unwrap();
    assert_eq!(&client.call(0, b"a").unwrap()[..], b"a");
    let stats = server.stats().unwrap();
    assert_eq!(stats.dropped(DropReason::BadMagic), 1);
    assert_eq!(stats.dropped(DropReason::PlaintextMode), 1);
    assert_eq!(stats.dropped(DropReason::Truncated), 1);
    assert_eq!(stats.total_dropped(), 3);
    assert_eq!(stats.handshakes, 1);
    assert!(stats.datagrams_received >= 5, "{stats:?}");
    let named: Vec<(&str, u64)> = stats
        .drops()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (r.name(), n))
        .collect();
    assert_eq!(
        named,
        vec![("bad_magic", 1), ("plaintext_mode", 1), ("truncated", 1)]
    );
    assert_eq!(DropReason::BadMagic.to_string(), "bad_magic");

    let client_stats = client.stats().unwrap();
    assert_eq!(client_stats.handshakes, 1);
    assert_eq!(client_stats.total_dropped(), 0);

    // Closed endpoints have no counters to give.
    client.close();
    server.close();
    assert!(server.stats().is_none());
}
