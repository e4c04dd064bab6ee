//! Rust client and Rust server through io-smol on real loopback sockets, in suites 1 (PSK),
//! 2 (ECC) and 3 (Noise IK). Every test is bounded by a timer, so none can hang.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::{future, StreamExt};
use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use pavillion_smol::{
    CallError, Client, ClientConfig, Reliability, ReplySocket, RpcFailure, SendError, Server,
    ServerConfig,
};

const ID: ClientId = ClientId(*b"smol-client-0001");

#[derive(Clone, Copy, Debug)]
enum Suite {
    Psk,
    Ecc,
    NoiseIk,
}

const SUITES: [Suite; 3] = [Suite::Psk, Suite::Ecc, Suite::NoiseIk];

fn psk() -> Psk {
    Psk::from_bytes([0x5a; 32])
}

fn server_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x22; 32])
}

fn client_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x11; 32])
}

fn server_config(suite: Suite) -> ServerConfig {
    match suite {
        Suite::Psk => ServerConfig::new().psk_client(ID, psk()),
        Suite::Ecc | Suite::NoiseIk => ServerConfig::new()
            .keys(server_keys())
            .ecc_client(ID, *client_keys().public()),
    }
}

fn client_config(suite: Suite) -> ClientConfig {
    let server = *server_keys().public();
    match suite {
        Suite::Psk => ClientConfig::psk(ID, psk()),
        Suite::Ecc => ClientConfig::ecc(ID, client_keys(), server),
        Suite::NoiseIk => ClientConfig::noise_ik(ID, client_keys(), server),
    }
}

/// Runs `test` on `smol::block_on`, failing it if it takes longer than `limit`.
fn bounded<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test did not finish within {limit:?}");
    }))
}

/// A loopback address whose port nothing listens on (bound, then freed).
fn dead_addr() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

#[test]
fn echo_rpc_in_every_suite() {
    bounded(Duration::from_secs(30), async {
        for suite in SUITES {
            let server = Server::bind("127.0.0.1:0", server_config(suite))
                .await
                .unwrap();
            server.register(401, "upper", |req| {
                Ok::<_, RpcFailure>(req.args.to_ascii_uppercase())
            });
            server.register(402, "fails", |_| {
                Err::<Vec<u8>, _>(RpcFailure::bad_input("no"))
            });
            let client = Client::connect(server.local_addr(), client_config(suite))
                .await
                .unwrap();
            assert_eq!(
                &client.call(401, b"hi").await.unwrap()[..],
                b"HI",
                "{suite:?}"
            );
            // The standard echo, answered by the endpoint itself.
            assert_eq!(
                &client.call(0, b"ping").await.unwrap()[..],
                b"ping",
                "{suite:?}"
            );
            match client.call(402, b"").await {
                Err(CallError::Remote { status, data }) => {
                    assert_eq!(status.0, 3);
                    assert_eq!(&data[..], b"no");
                }
                other => panic!("{suite:?}: {other:?}"),
            }
            match client.call(999, b"").await {
                Err(CallError::Remote { status, .. }) => assert_eq!(status.0, 2),
                other => panic!("{suite:?}: {other:?}"),
            }
            client.close().await;
            server.close().await;
        }
    });
}

#[test]
fn a_message_each_way_in_every_suite() {
    bounded(Duration::from_secs(30), async {
        for suite in SUITES {
            let server = Server::bind("127.0.0.1:0", server_config(suite))
                .await
                .unwrap();
            let mut kitchen = server.on_message(Some("kitchen"));
            let client = Client::connect(server.local_addr(), client_config(suite))
                .await
                .unwrap();
            let mut alerts = client.on_message(Some("alerts"));
            client.wait_connected(Duration::from_secs(5)).await.unwrap();

            let delivery = client
                .send_message("kitchen", "temp", b"21.5", Reliability::Reliable)
                .await
                .unwrap();
            assert_eq!(delivery.acked, vec![server.local_addr()], "{suite:?}");
            let m = kitchen.next().await.unwrap();
            assert_eq!((m.name(), m.payload()), ("temp", &b"21.5"[..]));
            assert!(m.reliable);

            let outcomes = server
                .send_message("alerts", "fire", b"1", Reliability::Reliable, |_, _| true)
                .await
                .unwrap();
            assert_eq!(outcomes.len(), 1, "{suite:?}");
            assert_eq!(outcomes[0].client.port(), client.local_addr().port());
            assert!(outcomes[0].result.is_ok(), "{suite:?}: {outcomes:?}");
            let m = alerts.next().await.unwrap();
            assert_eq!((m.target(), m.name()), ("alerts", "fire"));
            assert_eq!(m.payload(), b"1");

            // Unreliable, both ways.
            client
                .send_message("kitchen", "door", b"open", Reliability::Unreliable)
                .await
                .unwrap();
            assert_eq!(kitchen.next().await.unwrap().name(), "door");
            server
                .send_to(
                    outcomes[0].client,
                    "alerts",
                    "smoke",
                    b"",
                    Reliability::Unreliable,
                )
                .await
                .unwrap();
            assert_eq!(alerts.next().await.unwrap().name(), "smoke");

            client.close().await;
            server.close().await;
        }
    });
}

#[test]
fn server_restart_on_the_same_port_and_recovery() {
    bounded(Duration::from_secs(60), async {
        for suite in SUITES {
            let server = Server::bind("127.0.0.1:0", server_config(suite))
                .await
                .unwrap();
            let addr = server.local_addr();
            let config = client_config(suite).call_timeout(Duration::from_millis(400));
            let client = Client::connect(addr, config).await.unwrap();
            assert_eq!(&client.call(0, b"a").await.unwrap()[..], b"a");

            // Down: calls time out at their deadline.
            server.close().await;
            let started = Instant::now();
            assert_eq!(client.call(0, b"b").await, Err(CallError::TimedOut));
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(390), "{suite:?}: {took:?}");
            assert!(took < Duration::from_millis(1400), "{suite:?}: {took:?}");

            // Back on the same port, with no memory of the session: the client recovers.
            let server = Server::bind(addr, server_config(suite)).await.unwrap();
            server.register(401, "upper", |req| {
                Ok::<_, RpcFailure>(req.args.to_ascii_uppercase())
            });
            let started = Instant::now();
            let answer = loop {
                match client.call(401, b"back").await {
                    Ok(a) => break a,
                    Err(CallError::TimedOut) => {
                        assert!(started.elapsed() < Duration::from_secs(10), "{suite:?}")
                    }
                    Err(e) => panic!("{suite:?}: {e:?}"),
                }
            };
            assert_eq!(&answer[..], b"BACK");
            // Messages flow again too.
            let mut kitchen = server.on_message(Some("kitchen"));
            client
                .send_message("kitchen", "temp", b"1", Reliability::Reliable)
                .await
                .unwrap();
            assert_eq!(kitchen.next().await.unwrap().name(), "temp");
            client.close().await;
            server.close().await;
        }
    });
}

#[test]
fn a_down_server_gives_a_timeout_within_the_deadline() {
    bounded(Duration::from_secs(30), async {
        for suite in SUITES {
            let config = client_config(suite)
                .call_timeout(Duration::from_millis(500))
                .send_timeout(Duration::from_millis(700));
            let client = Client::connect(dead_addr(), config).await.unwrap();

            let started = Instant::now();
            assert_eq!(client.call(0, b"x").await, Err(CallError::TimedOut));
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(490), "{suite:?}: {took:?}");
            assert!(took < Duration::from_millis(1500), "{suite:?}: {took:?}");

            let started = Instant::now();
            let sent = client
                .send_message("kitchen", "temp", b"1", Reliability::Reliable)
                .await;
            assert_eq!(sent, Err(SendError::TimedOut));
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(690), "{suite:?}: {took:?}");
            assert!(took < Duration::from_millis(1700), "{suite:?}: {took:?}");

            let timeout = Duration::from_millis(200);
            assert!(client.wait_connected(timeout).await.is_err());
            client.close().await;
        }
    });
}

#[test]
fn async_and_deferred_handlers() {
    bounded(Duration::from_secs(20), async {
        let server = Server::bind("127.0.0.1:0", server_config(Suite::Psk))
            .await
            .unwrap();
        server.register_async(402, "slow_echo", |req| async move {
            Timer::after(Duration::from_millis(50)).await;
            Ok::<_, RpcFailure>(req.args)
        });
        // This handler panics on purpose: its task's panic message in the output is expected.
        server.register_async(403, "panics", |_| async move {
            Timer::after(Duration::from_millis(10)).await;
            panic!("handler bug");
            #[allow(unreachable_code)]
            Ok::<Vec<u8>, RpcFailure>(Vec::new())
        });
        server.register_deferred(404, "later", |req, responder| {
            smol::spawn(async move {
                Timer::after(Duration::from_millis(20)).await;
                responder.respond(Ok::<_, RpcFailure>(req.args.to_vec()));
            })
            .detach();
        });
        server.register_deferred(405, "never", |_, _| {});
        let client = Client::connect(server.local_addr(), client_config(Suite::Psk))
            .await
            .unwrap();
        // Concurrent calls on one client resolve independently.
        let (a, b) = future::zip(client.call(402, b"one"), client.call(404, b"two")).await;
        assert_eq!(&a.unwrap()[..], b"one");
        assert_eq!(&b.unwrap()[..], b"two");
        for f in [403, 405] {
            match client.call(f, b"").await {
                Err(CallError::Remote { status, data }) => {
                    assert_eq!(status.0, 1);
                    assert_eq!(&data[..], b"NoAnswer");
                }
                other => panic!("{f}: {other:?}"),
            }
        }
        server.unregister(402);
        match client.call(402, b"").await {
            Err(CallError::Remote { status, .. }) => assert_eq!(status.0, 2),
            other => panic!("{other:?}"),
        }
        client.close().await;
        server.close().await;
    });
}

#[test]
fn a_full_stream_drops_new_messages_and_counts_them() {
    bounded(Duration::from_secs(20), async {
        let config = server_config(Suite::Psk).message_buffer(2);
        let server = Server::bind("127.0.0.1:0", config).await.unwrap();
        let mut slow = server.on_message(Some("t"));
        let mut all = server.on_message(None);
        let client = Client::connect(server.local_addr(), client_config(Suite::Psk))
            .await
            .unwrap();
        for i in 0..5u8 {
            // Acknowledged by the endpoint whether or not a stream had room.
            client
                .send_message("t", "n", &[i], Reliability::Reliable)
                .await
                .unwrap();
        }
        assert_eq!(slow.dropped(), 3);
        assert_eq!(all.dropped(), 3);
        assert_eq!(slow.next().await.unwrap().payload(), &[0]);
        assert_eq!(slow.next().await.unwrap().payload(), &[1]);
        assert_eq!(all.next().await.unwrap().payload(), &[0]);
        // Room again: the next message gets through.
        client
            .send_message("t", "n", &[9], Reliability::Reliable)
            .await
            .unwrap();
        assert_eq!(slow.next().await.unwrap().payload(), &[9]);
        client.close().await;
        server.close().await;
        // The streams end with the endpoint.
        assert!(all.next().await.is_some());
        assert!(all.next().await.is_some());
        assert!(all.next().await.is_none());
    });
}

#[test]
fn remote_server_clock_and_state() {
    bounded(Duration::from_secs(20), async {
        let server = Server::bind("127.0.0.1:0", server_config(Suite::NoiseIk))
            .await
            .unwrap();
        let client = Client::connect(server.local_addr(), client_config(Suite::NoiseIk))
            .await
            .unwrap();
        let addr = client.wait_connected(Duration::from_secs(5)).await.unwrap();
        assert_eq!(addr, server.local_addr());
        let remote = client.server(addr);
        let state = remote.state().await.unwrap();
        assert!(state.up);
        assert_eq!(
            remote.remote_now().await,
            Err(pavillion_smol::ServerError::NoClock)
        );
        let estimate = remote.sync_time(Duration::from_secs(2)).await.unwrap();
        assert!(estimate
            .round_trip
            .is_some_and(|rt| rt < Duration::from_secs(1)));
        let now = std::time::Instant::now();
        let r = remote.to_remote(now).await.unwrap();
        let back = remote.to_local(r).await.unwrap();
        let diff = back.max(now) - back.min(now);
        assert!(diff < Duration::from_millis(1), "{diff:?}");
        assert!(remote.remote_now().await.is_ok());
        assert_eq!(client.servers().await.len(), 1);
        assert_eq!(server.clients().await.len(), 1);
        assert_eq!(
            server.clients().await[0].0.port(),
            client.local_addr().port()
        );
        client.close().await;
        server.close().await;
    });
}

/// A server with a reply socket, through the async driver (two sockets in one task): the
/// session, the answers, the ACKs and the server's messages all come from the reply port.
#[test]
fn a_server_with_a_reply_socket_answers_from_it() {
    bounded(Duration::from_secs(30), async {
        for suite in SUITES {
            let config = server_config(suite).reply_socket(ReplySocket::Ephemeral);
            let server = Server::bind("127.0.0.1:0", config).await.unwrap();
            let reply = server.reply_addr().expect("a reply socket");
            assert_ne!(reply, server.local_addr());
            let mut kitchen = server.on_message(Some("kitchen"));
            let client = Client::connect(server.local_addr(), client_config(suite))
                .await
                .unwrap();
            let mut alerts = client.on_message(Some("alerts"));
            let connected = client.wait_connected(Duration::from_secs(5)).await.unwrap();
            assert_eq!(connected, reply, "{suite:?}");
            assert_eq!(&client.call(0, b"echo").await.unwrap()[..], b"echo");
            let d = client
                .send_message("kitchen", "temp", b"20", Reliability::Reliable)
                .await
                .unwrap();
            assert_eq!(d.acked, vec![reply], "{suite:?}");
            assert_eq!(kitchen.next().await.unwrap().name(), "temp");
            let out = server
                .send_message("alerts", "fire", b"1", Reliability::Reliable, |_, _| true)
                .await
                .unwrap();
            assert!(out.iter().all(|o| o.result.is_ok()), "{suite:?}: {out:?}");
            let m = alerts.next().await.unwrap();
            assert_eq!((m.from, m.name()), (reply, "fire"), "{suite:?}");
            client.close().await;
            server.close().await;
        }
    });
}

#[test]
fn ipv6_loopback() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    bounded(Duration::from_secs(20), async {
        let server = Server::bind("[::1]:0", server_config(Suite::Ecc))
            .await
            .unwrap();
        let client = Client::connect(server.local_addr(), client_config(Suite::Ecc))
            .await
            .unwrap();
        assert!(client.local_addr().is_ipv6());
        assert_eq!(&client.call(0, b"v6").await.unwrap()[..], b"v6");
        client.close().await;
        server.close().await;
    });
}

#[test]
fn a_closed_client_fails_at_once() {
    bounded(Duration::from_secs(10), async {
        let server = Server::bind("127.0.0.1:0", server_config(Suite::Psk))
            .await
            .unwrap();
        let client = Client::connect(server.local_addr(), client_config(Suite::Psk))
            .await
            .unwrap();
        let remote = client.server(server.local_addr());
        let mut stream = client.on_message(None);
        client.close().await;
        assert_eq!(
            remote.state().await,
            Err(pavillion_smol::ServerError::Closed)
        );
        assert!(stream.next().await.is_none());
        server.close().await;
    });
}

#[test]
fn a_client_subscription_reaches_the_server_in_every_suite() {
    bounded(Duration::from_secs(30), async {
        for suite in SUITES {
            let server = Server::bind("127.0.0.1:0", server_config(suite))
                .await
                .unwrap();
            let client = Client::connect(server.local_addr(), client_config(suite))
                .await
                .unwrap();
            client.subscribe("lights").await.unwrap();
            assert!(matches!(
                client.subscribe("a\nb").await,
                Err(SendError::Refused(_))
            ));
            let me = client.local_addr();
            let deadline = Instant::now() + Duration::from_secs(5);
            while server.client_subscribers("lights").await.is_empty() {
                assert!(Instant::now() < deadline, "{suite:?}: never subscribed");
                Timer::after(Duration::from_millis(10)).await;
            }
            let subs = server.client_subscribers("lights").await;
            assert_eq!(subs.len(), 1, "{suite:?}");
            assert_eq!(subs[0].0.port(), me.port(), "{suite:?}");
            while client.subscribed_at("lights").await.is_none() {
                assert!(Instant::now() < deadline, "{suite:?}: never acknowledged");
                Timer::after(Duration::from_millis(10)).await;
            }
            assert_eq!(
                client.subscribed_at("lights").await,
                Some(server.local_addr()),
                "{suite:?}"
            );
            assert_eq!(client.subscribed_at("other").await, None, "{suite:?}");
            client.unsubscribe("lights").await.unwrap();
            assert_eq!(client.subscribed_at("lights").await, None, "{suite:?}");
            while !server.client_subscribers("lights").await.is_empty() {
                assert!(Instant::now() < deadline, "{suite:?}: never unsubscribed");
                Timer::after(Duration::from_millis(10)).await;
            }
            client.close().await;
            server.close().await;
        }
    });
}
