//! Rust client and Rust server through the blocking adapter, on real loopback sockets.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pavillion_proto::crypto::Psk;
use pavillion_proto::features::status::{Battery, BatteryState, NetworkStatus, Status};
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::ClientId;
use pavillion_std::keys::{generate_keypair, generate_psk};
use pavillion_std::{
    CallError, Client, ClientConfig, Reliability, ReplySocket, RpcFailure, SendError, Server,
    ServerConfig, ServerError,
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

fn ecc_pair() -> (ServerConfig, ClientConfig) {
    let server_keys = generate_keypair();
    let client_keys = generate_keypair();
    let server = ServerConfig::new()
        .keys(server_keys.clone())
        .ecc_client(ID, *client_keys.public());
    (
        server,
        ClientConfig::ecc(ID, client_keys, *server_keys.public()),
    )
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn demo_server(
    config: ServerConfig,
    addr: SocketAddr,
) -> (Server, mpsc::Receiver<(String, Vec<u8>)>) {
    let server = Server::bind(addr, config).unwrap();
    server.register(401, "upper", |req| {
        Ok::<_, RpcFailure>(req.args.to_ascii_uppercase())
    });
    server.register(402, "fail", |_| {
        Err::<Vec<u8>, _>(RpcFailure::bad_input("nope"))
    });
    let (tx, rx) = mpsc::channel();
    server.on_message(Some("kitchen"), move |m| {
        let _ = tx.send((m.name().to_string(), m.payload().to_vec()));
    });
    (server, rx)
}

fn rpc_and_messages_both_ways(server_config: ServerConfig, client_config: ClientConfig) {
    let (server, from_client) = demo_server(server_config, "127.0.0.1:0".parse().unwrap());
    let client = Client::connect(server.local_addr(), client_config).unwrap();
    let (tx, from_server) = mpsc::channel();
    client.on_message(Some("alerts"), move |m| {
        let _ = tx.send((m.name().to_string(), m.payload().to_vec(), m.reliable));
    });

    // RPC: the built-in echo, a registered function, an error status, an unknown function.
    assert_eq!(&client.call(0, b"hello").unwrap()[..], b"hello");
    assert_eq!(&client.call(401, b"shout").unwrap()[..], b"SHOUT");
    match client.call(402, b"") {
        Err(CallError::Remote { status, data }) => {
            assert_eq!(status, RpcStatus::BAD_INPUT);
            assert_eq!(&data[..], b"nope");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    assert!(matches!(
        client.call(999, b""),
        Err(CallError::Remote {
            status: RpcStatus::NONEXISTENT_FUNCTION,
            ..
        })
    ));
    assert_eq!(
        &client.call(1, &401u16.to_le_bytes()).unwrap()[..],
        b"upper"
    );

    // Client to server, reliable and unreliable.
    let delivery = client
        .send_message("kitchen", "temp", b"21.5", Reliability::Reliable)
        .unwrap();
    assert_eq!(delivery.acked, vec![server.local_addr()]);
    assert_eq!(
        from_client.recv_timeout(WAIT).unwrap(),
        ("temp".into(), b"21.5".to_vec())
    );
    client
        .send_message("kitchen", "hum", b"40", Reliability::Unreliable)
        .unwrap();
    assert_eq!(
        from_client.recv_timeout(WAIT).unwrap(),
        ("hum".into(), b"40".to_vec())
    );

    // Server to client, reliable to all, then unreliable to one.
    let results = server
        .send_message("alerts", "fire", b"1", Reliability::Reliable, |_, _| true)
        .unwrap();
    assert_eq!(results.len(), 1);
    let client_addr = &results[0].client;
    assert!(results[0].result.is_ok(), "{results:?}");
    assert_eq!(
        from_server.recv_timeout(WAIT).unwrap(),
        ("fire".into(), b"1".to_vec(), true)
    );
    server
        .send_to(
            *client_addr,
            "alerts",
            "smoke",
            b"0",
            Reliability::Unreliable,
        )
        .unwrap();
    assert_eq!(
        from_server.recv_timeout(WAIT).unwrap(),
        ("smoke".into(), b"0".to_vec(), false)
    );
    assert_eq!(server.clients().len(), 1);

    // Refusals are typed and immediate.
    assert!(matches!(
        client.send_message("bad\ntarget", "n", b"", Reliability::Reliable),
        Err(SendError::Refused(_))
    ));
}

#[test]
fn psk_rpc_and_messages_both_ways() {
    let (s, c) = psk_pair();
    rpc_and_messages_both_ways(s, c);
}

#[test]
fn ecc_rpc_and_messages_both_ways() {
    let (s, c) = ecc_pair();
    rpc_and_messages_both_ways(s, c);
}

/// A server that sends everything from a second socket, as the reference does: the client's
/// session, the ACKs it gets and the messages it receives all come from the reply port, and
/// the server takes both what arrives on its listening port (calls, messages) and on its reply
/// port (handshake replies, ACKs).
#[test]
fn a_server_with_a_reply_socket_answers_from_it() {
    let (s, c) = psk_pair();
    let config = s.reply_socket(ReplySocket::Ephemeral);
    let (server, from_client) = demo_server(config, "127.0.0.1:0".parse().unwrap());
    let listen = server.local_addr();
    let reply = server.reply_addr().expect("a reply socket");
    assert_ne!(reply, listen);
    assert_eq!(reply.ip(), listen.ip());

    let client = Client::connect(listen, c).unwrap();
    let (tx, from_server) = mpsc::channel();
    client.on_message(Some("alerts"), move |m| {
        let _ = tx.send((m.from, m.name().to_string()));
    });
    // The handshake reply came from the reply port: the session is keyed by it.
    assert_eq!(client.wait_connected(WAIT).unwrap(), reply);
    let servers: Vec<_> = client.servers().iter().map(|s| s.addr()).collect();
    assert_eq!(servers, vec![reply]);

    // Calls go to the listening port and are answered from the reply port.
    assert_eq!(&client.call(0, b"echo").unwrap()[..], b"echo");
    assert_eq!(&client.call(401, b"up").unwrap()[..], b"UP");

    // A message each way; the ACK of ours comes from the reply port, and the ACK of the
    // server's goes back to it.
    let d = client
        .send_message("kitchen", "temp", b"20", Reliability::Reliable)
        .unwrap();
    assert_eq!(d.acked, vec![reply]);
    assert_eq!(
        from_client.recv_timeout(WAIT).unwrap(),
        ("temp".into(), b"20".to_vec())
    );
    let out = server
        .send_message("alerts", "fire", b"1", Reliability::Reliable, |_, _| true)
        .unwrap();
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(
        from_server.recv_timeout(WAIT).unwrap(),
        (reply, "fire".into())
    );

    // Quit comes from the reply port too: the client drops the session at once.
    server.close();
    let started = Instant::now();
    while !client.servers().is_empty() {
        assert!(started.elapsed() < WAIT, "no quit from the reply socket");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ipv6_loopback() {
    let (s, c) = psk_pair();
    let Ok(server) = Server::bind("[::1]:0", s) else {
        println!("skipped: no IPv6 loopback here");
        return;
    };
    let client = Client::connect(server.local_addr(), c).unwrap();
    assert_eq!(&client.call(0, b"six").unwrap()[..], b"six");
}

fn restart_and_recover(make: fn() -> (ServerConfig, ClientConfig)) {
    let (server_config, client_config) = make();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (server, _) = demo_server(server_config.clone(), addr);
    let client =
        Client::connect(addr, client_config.call_timeout(Duration::from_millis(800))).unwrap();
    assert_eq!(&client.call(401, b"a").unwrap()[..], b"A");

    // The server goes away: calls time out within their deadline, never hang.
    server.close();
    let started = Instant::now();
    assert_eq!(client.call(401, b"b"), Err(CallError::TimedOut));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");

    // A new server process on the same port: the client recovers by itself.
    let (server, _) = demo_server(server_config, addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.call(401, b"c") {
            Ok(b) => {
                assert_eq!(&b[..], b"C");
                break;
            }
            Err(e) if Instant::now() < deadline => println!("not yet: {e}"),
            Err(e) => panic!("no recovery after restart: {e}"),
        }
    }
    let delivery = client
        .send_message("kitchen", "after", b"restart", Reliability::Reliable)
        .unwrap();
    assert_eq!(delivery.acked, vec![server.local_addr()]);
}

#[test]
fn psk_server_restart_and_recovery() {
    restart_and_recover(psk_pair);
}

#[test]
fn ecc_server_restart_and_recovery() {
    restart_and_recover(ecc_pair);
}

#[test]
fn a_server_that_is_down_times_out_in_time() {
    let (_, c) = psk_pair();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let client = Client::connect(addr, c.send_timeout(Duration::from_millis(500))).unwrap();
    let started = Instant::now();
    assert_eq!(
        client.call_with_timeout(0, b"x", Duration::from_millis(300)),
        Err(CallError::TimedOut)
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    let started = Instant::now();
    assert_eq!(
        client.send_message("t", "n", b"x", Reliability::Reliable),
        Err(SendError::TimedOut)
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(
        client.wait_connected(Duration::from_millis(200)),
        Err(ServerError::TimedOut)
    );
}

#[test]
fn wrong_key_is_refused_not_hung() {
    let (s, _) = psk_pair();
    let server = Server::bind("127.0.0.1:0", s).unwrap();
    let other = ClientConfig::psk(ID, Psk::from_bytes([1; 32]));
    let client = Client::connect(server.local_addr(), other).unwrap();
    let started = Instant::now();
    assert!(client
        .call_with_timeout(0, b"x", Duration::from_millis(500))
        .is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn deferred_answers_and_callbacks_cannot_block() {
    let (s, c) = psk_pair();
    let server = Server::bind("127.0.0.1:0", s).unwrap();
    server.register_deferred(500, "later", |req, responder| {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            responder.respond(Ok(req.args.to_vec()));
        });
    });
    server.register_deferred(501, "dropped", |_, _| {});
    server.register(502, "panics", |_| -> Result<Vec<u8>, RpcFailure> {
        panic!("boom")
    });
    let client = Client::connect(server.local_addr(), c).unwrap();
    assert_eq!(&client.call(500, b"slow").unwrap()[..], b"slow");
    assert!(matches!(
        client.call(501, b""),
        Err(CallError::Remote {
            status: RpcStatus::ERROR,
            ..
        })
    ));
    assert!(matches!(
        client.call(502, b""),
        Err(CallError::Remote {
            status: RpcStatus::ERROR,
            ..
        })
    ));
    // The server survived the panic.
    assert_eq!(&client.call(0, b"ok").unwrap()[..], b"ok");

    // A blocking query from a callback (on the client's own thread) gets an error instead of
    // a deadlock.
    let (tx, rx) = mpsc::channel();
    let handle = client.server(server.local_addr());
    client.on_message(Some("probe"), move |_| {
        let _ = tx.send(handle.state());
    });
    server
        .send_message("probe", "p", b"", Reliability::Reliable, |_, _| true)
        .unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), Err(ServerError::InCallback));
}

#[test]
fn time_sync_and_status() {
    let (s, c) = psk_pair();
    let status = Status {
        battery: Battery {
            level: 63,
            state: BatteryState::Charging,
        },
        network: NetworkStatus::Wlan { rssi: -60 },
        temperature: 31,
    };
    let server = Server::bind("127.0.0.1:0", s.status(status)).unwrap();
    let client = Client::connect(server.local_addr(), c).unwrap();
    let addr = client.wait_connected(WAIT).unwrap();
    assert_eq!(addr, server.local_addr());
    let remote = client.server(addr);
    assert_eq!(remote.remote_now(), Err(ServerError::NoClock));
    let estimate = remote.sync_time(WAIT).unwrap();
    assert!(estimate.round_trip.unwrap() < Duration::from_secs(1));
    let now = remote.remote_now().unwrap();
    let back = remote.to_local(now).unwrap();
    let there = remote.to_remote(back).unwrap();
    assert!(there.as_micros().abs_diff(now.as_micros()) <= 1);

    // Status bytes ride on ACKs.
    client
        .send_message("t", "n", b"x", Reliability::Reliable)
        .unwrap();
    assert_eq!(remote.battery().unwrap().level, 63);
    assert_eq!(remote.rssi().unwrap(), Some(-60));
    assert_eq!(remote.temperature().unwrap(), 31);
    assert_eq!(client.servers().len(), 1);
    assert_eq!(
        client.server("127.0.0.1:9".parse().unwrap()).battery(),
        Err(ServerError::NotConnected)
    );
}

/// Forwards datagrams between one client and `server`, dropping the next client datagram
/// after each `drop_next.send(())`. Returns the relay's address and a count of drops.
fn lossy_relay(
    server: SocketAddr,
) -> (
    SocketAddr,
    mpsc::Sender<()>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = front.local_addr().unwrap();
    let (drop_tx, drop_rx) = mpsc::channel::<()>();
    let dropped = std::sync::Arc::new(AtomicUsize::new(0));
    let client: std::sync::Arc<std::sync::Mutex<Option<SocketAddr>>> = Default::default();
    {
        let (back, client) = (back.try_clone().unwrap(), client.clone());
        let front = front.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = back.recv_from(&mut buf) {
                if let Some(to) = *client.lock().unwrap() {
                    let _ = front.send_to(&buf[..n], to);
                }
            }
        });
    }
    let counted = dropped.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut pending_drops = 0;
        while let Ok((n, from)) = front.recv_from(&mut buf) {
            *client.lock().unwrap() = Some(from);
            pending_drops += drop_rx.try_iter().count();
            if pending_drops > 0 {
                pending_drops -= 1;
                counted.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            let _ = back.send_to(&buf[..n], server);
        }
    });
    (addr, drop_tx, dropped)
}

#[test]
fn a_lost_time_request_is_asked_again() {
    let (s, c) = psk_pair();
    let server = Server::bind("127.0.0.1:0", s).unwrap();
    let (relay, drop_next, dropped) = lossy_relay(server.local_addr());
    let client = Client::connect(relay, c).unwrap();
    let addr = client.wait_connected(WAIT).unwrap();
    // The next client datagram is the time request (op 20): lose it.
    drop_next.send(()).unwrap();
    let started = Instant::now();
    let estimate = client.server(addr).sync_time(WAIT).unwrap();
    assert!(estimate.round_trip.is_some());
    assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Asked again after about 250 ms, not after the caller's whole timeout.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// Several threads call at once while the server pushes messages: a caller's thread may
/// receive for the whole endpoint while it waits (other callers' answers, the pushes), so
/// every call must still get its own answer, and every message must reach its callback
/// exactly once, on the client's thread.
#[test]
fn concurrent_callers_and_server_pushes() {
    const CALLERS: usize = 4;
    const CALLS: usize = 300;
    const PUSHES: usize = 200;
    let (s, c) = psk_pair();
    let (server, _) = demo_server(s, "127.0.0.1:0".parse().unwrap());
    let client = Client::connect(server.local_addr(), c).unwrap();
    let (tx, pushed) = mpsc::channel();
    client.on_message(Some("alerts"), move |m| {
        let on_client_thread = std::thread::current().name() == Some("pavillion-client");
        let _ = tx.send((m.payload().to_vec(), on_client_thread));
    });
    client.wait_connected(WAIT).unwrap();
    // The client counts as connected once it sent its credentials; a push the server makes
    // before it holds the session goes to nobody (and `send_message` reports no receiver).
    let deadline = std::time::Instant::now() + WAIT;
    while server.clients().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never had the client"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..PUSHES {
                let (reliability, data) = (Reliability::Reliable, i.to_string());
                let sent = server
                    .send_message("alerts", "n", data.as_bytes(), reliability, |_, _| true)
                    .unwrap();
                assert!(
                    !sent.is_empty() && sent.iter().all(|o| o.result.is_ok()),
                    "{sent:?}"
                );
            }
        });
        for t in 0..CALLERS {
            let client = &client;
            scope.spawn(move || {
                for i in 0..CALLS {
                    let args = format!("caller {t} call {i}");
                    // Half echo, half the registered function, so answers differ per call.
                    if i % 2 == 0 {
                        assert_eq!(
                            &client.call(0, args.as_bytes()).unwrap()[..],
                            args.as_bytes()
                        );
                    } else {
                        let upper = args.to_ascii_uppercase();
                        let got = client.call(401, args.as_bytes()).unwrap();
                        assert_eq!(&got[..], upper.as_bytes());
                    }
                }
            });
        }
    });

    let mut seen = std::collections::HashSet::new();
    for _ in 0..PUSHES {
        let (payload, on_client_thread) = pushed.recv_timeout(WAIT).unwrap();
        assert!(
            on_client_thread,
            "a message callback ran on a caller's thread"
        );
        assert!(seen.insert(payload.clone()), "delivered twice: {payload:?}");
    }
    let expected: std::collections::HashSet<Vec<u8>> =
        (0..PUSHES).map(|i| i.to_string().into_bytes()).collect();
    assert_eq!(seen, expected);
    // Nothing more arrives: no duplicate came late.
    assert!(pushed.recv_timeout(Duration::from_millis(200)).is_err());
    // The endpoint is still fine for a lone caller afterwards.
    assert_eq!(&client.call(0, b"after").unwrap()[..], b"after");
}

#[test]
fn a_client_subscription_reaches_the_server() {
    for make in [psk_pair, ecc_pair] {
        let (s, c) = make();
        let server = Server::bind("127.0.0.1:0", s).unwrap();
        let client = Client::connect(server.local_addr(), c).unwrap();
        client.subscribe("lights").unwrap();
        assert!(matches!(
            client.subscribe("a\nb"),
            Err(SendError::Refused(_))
        ));
        let deadline = Instant::now() + WAIT;
        while server.client_subscribers("lights").is_empty() {
            assert!(Instant::now() < deadline, "never subscribed");
            std::thread::sleep(Duration::from_millis(10));
        }
        let subs = server.client_subscribers("lights");
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].0.port(), client.local_addr().port());
        // The client knows it once the server acknowledged it; never for a target it did not
        // subscribe to.
        while client.subscribed_at("lights").is_none() {
            assert!(Instant::now() < deadline, "never acknowledged");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(client.subscribed_at("lights"), Some(server.local_addr()));
        assert_eq!(client.subscribed_at("other"), None);
        client.unsubscribe("lights").unwrap();
        assert_eq!(client.subscribed_at("lights"), None);
        while !server.client_subscribers("lights").is_empty() {
            assert!(Instant::now() < deadline, "never unsubscribed");
            std::thread::sleep(Duration::from_millis(10));
        }
        client.close();
        server.close();
    }
}

/// A listener (nothing to send, keepalives off) whose server quits and is restarted on the
/// same port gets what the new server sends it: it came back by itself
/// (`docs/PROTOCOL.md` §6.7).
#[test]
fn a_listener_gets_messages_after_its_server_restarts() {
    for make in [psk_pair, ecc_pair] {
        let (s, c) = make();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let server = Server::bind(addr, s.clone()).unwrap();
        let client = Client::connect(addr, c.keepalive(None)).unwrap();
        let (tx, rx) = mpsc::channel();
        client.on_message(Some("news"), move |m| {
            let _ = tx.send(m.payload().to_vec());
        });
        client.wait_connected(WAIT).unwrap();
        let deadline = Instant::now() + WAIT;
        while server.clients().is_empty() {
            assert!(Instant::now() < deadline, "never connected");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The client's address as the server sees it.
        let me = server.clients()[0].0;
        let before = server
            .send_to(me, "news", "n", b"before", Reliability::Reliable)
            .unwrap();
        assert_eq!(before.acked.len(), 1);
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), b"before");

        // A clean quit (op 12 to the client), then a new process on the same port.
        server.close();
        std::thread::sleep(Duration::from_millis(300));
        let server = Server::bind(addr, s).unwrap();
        let deadline = Instant::now() + WAIT;
        let sent = loop {
            match server.send_to(me, "news", "n", b"after", Reliability::Reliable) {
                Ok(d) => break d,
                Err(e) if Instant::now() < deadline => {
                    println!("not back yet: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("the client never came back: {e}"),
            }
        };
        assert_eq!(sent.acked.len(), 1);
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), b"after");
        client.close();
        server.close();
    }
}

/// A server that answers to other credentials fails calls and messages at once with
/// `AuthenticationFailed`, saying what failed; a server that is down still times out
/// (`docs/PROTOCOL.md` §5.5).
#[test]
fn authentication_failures_say_what_failed() {
    use pavillion_std::AuthFailure;
    let server_keys = generate_keypair();
    let client_keys = generate_keypair();
    let psk = generate_psk();
    let stranger = ClientId(*b"stranger-client!");
    let server_config = ServerConfig::new()
        .psk_client(ID, psk)
        .keys(server_keys.clone())
        .ecc_client(ID, *client_keys.public());
    let server = Server::bind("127.0.0.1:0", server_config).unwrap();
    let cases = [
        (ClientConfig::psk(ID, generate_psk()), AuthFailure::WrongPsk),
        (
            ClientConfig::ecc(ID, client_keys.clone(), *generate_keypair().public()),
            AuthFailure::WrongKey,
        ),
        (
            ClientConfig::ecc(stranger, client_keys, *server_keys.public()),
            AuthFailure::UnknownClient,
        ),
    ];
    for (config, reason) in cases {
        let client = Client::connect(server.local_addr(), config).unwrap();
        let started = Instant::now();
        assert_eq!(
            client.call_with_timeout(0, b"x", Duration::from_secs(3)),
            Err(CallError::AuthenticationFailed { reason })
        );
        // Judged from the packets, well before the deadline.
        assert!(started.elapsed() < Duration::from_secs(2), "{reason:?}");
        assert_eq!(
            client.send_message("t", "n", b"m", Reliability::Reliable),
            Err(SendError::AuthenticationFailed { reason })
        );
        client.close();
    }
    // Nobody there: a timeout, whose message names the possible causes.
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_, c) = psk_pair();
    let client = Client::connect(addr, c).unwrap();
    let err = client
        .call_with_timeout(0, b"x", Duration::from_millis(300))
        .unwrap_err();
    assert_eq!(err, CallError::TimedOut);
    assert!(err.to_string().contains("wrong server key"), "{err}");
    server.close();
}
