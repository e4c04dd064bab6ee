//! Multicast through the blocking adapter, inside a network namespace each test creates (see
//! `support/netns.rs`); skipped with a printed reason where that is impossible.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/netns.rs"]
mod netns;

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pavillion_proto::ClientId;
use pavillion_std::keys::generate_psk;
use pavillion_std::{CallError, Client, ClientConfig, Reliability, Server, ServerConfig};

use netns::{free_port, inside, rerun_in_namespace};

const GROUP: &str = "239.255.28.12";

#[test]
fn multicast_join_call_messages_and_leave() {
    if !inside() {
        rerun_in_namespace("multicast_join_call_messages_and_leave");
        return;
    }
    let id = ClientId(*b"cid2cid2cid2cid2");
    let psk = generate_psk();
    let group: IpAddr = GROUP.parse().unwrap();
    let port = free_port();
    let server = Server::bind(
        ("0.0.0.0", port),
        ServerConfig::new()
            .psk_client(id, psk.clone())
            .multicast(group),
    )
    .unwrap();
    let (tx, got) = mpsc::channel();
    server.on_message(Some("all"), move |m| {
        let _ = tx.send(m.payload().to_vec());
    });
    let config = ClientConfig::psk(id, psk.clone());
    let client = Client::connect(SocketAddr::new(group, port), config.clone()).unwrap();

    // A call to the group is answered by the server that joined it.
    assert_eq!(
        &client.call(0, b"to the group").unwrap()[..],
        b"to the group"
    );
    let server_addr = client.wait_connected(Duration::from_secs(2)).unwrap();
    assert_eq!(server_addr.port(), port);

    // A reliable message to the group is acknowledged by the subscribed server.
    let d = client
        .send_message("all", "n", b"hello group", Reliability::Reliable)
        .unwrap();
    assert_eq!(d.acked, vec![server_addr]);
    assert!(d.missing.is_empty());
    assert_eq!(
        got.recv_timeout(Duration::from_secs(2)).unwrap(),
        b"hello group"
    );

    // And the server reaches the client.
    let (tx, back) = mpsc::channel();
    client.on_message(None, move |m| {
        let _ = tx.send(m.name().to_string());
    });
    let out = server
        .send_message("news", "back", b"", Reliability::Reliable, |_, _| true)
        .unwrap();
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(back.recv_timeout(Duration::from_secs(2)).unwrap(), "back");

    // After leaving the group, a new client of the group finds nobody, although the first
    // client is still a member of the group on this host.
    server.leave_multicast(group).unwrap();
    let late = Client::connect(SocketAddr::new(group, port), config).unwrap();
    assert_eq!(
        late.call_with_timeout(0, b"anyone?", Duration::from_millis(500)),
        Err(CallError::TimedOut)
    );
    // Joining again brings it back.
    server.join_multicast(group).unwrap();
    let again = late.call_with_timeout(0, b"back", Duration::from_secs(5));
    assert_eq!(again.as_deref(), Ok(&b"back"[..]));
    println!("multicast ran inside a private network namespace");
}

/// Servers bound to the group address itself, as a reference deployment runs them: each
/// receives the group's traffic and answers from its own reply socket. A client of the group
/// hears a server that starts later announce itself, and sets up a session with it before it
/// sends anything.
#[test]
fn a_group_client_hears_a_late_server_announce_itself() {
    if !inside() {
        rerun_in_namespace("a_group_client_hears_a_late_server_announce_itself");
        return;
    }
    let id = ClientId(*b"cid2cid2cid2cid2");
    let psk = generate_psk();
    let group: IpAddr = GROUP.parse().unwrap();
    let port = free_port();
    let start = |got: mpsc::Sender<(char, Vec<u8>)>, name: char| {
        let config = ServerConfig::new().psk_client(id, psk.clone());
        let server = Server::bind((group, port), config).unwrap();
        server.on_message(Some("all"), move |m| {
            let _ = got.send((name, m.payload().to_vec()));
        });
        // Bound to a group: everything goes out from a unicast reply socket.
        let reply = server
            .reply_addr()
            .expect("a group-bound server has a reply socket");
        assert_ne!(reply.port(), port);
        (server, reply.port())
    };
    let (tx, got) = mpsc::channel();
    let (_a, a_port) = start(tx.clone(), 'a');
    // No keepalives: nothing but the announcement can make the client look for servers.
    let config = ClientConfig::psk(id, psk.clone()).keepalive(None);
    let client = Client::connect(SocketAddr::new(group, port), config).unwrap();
    assert_eq!(&client.call(0, b"first").unwrap()[..], b"first");
    let first = client.wait_connected(Duration::from_secs(2)).unwrap();
    assert_eq!(first.port(), a_port, "the session is with A's reply socket");

    let (_b, b_port) = start(tx, 'b');
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut ports = Vec::new();
    while Instant::now() < deadline {
        ports = client.servers().iter().map(|s| s.addr().port()).collect();
        if ports.len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ports.sort_unstable();
    let mut expected = vec![a_port, b_port];
    expected.sort_unstable();
    assert_eq!(ports, expected, "the client did not find the late server");

    // A reliable message to the group is acknowledged by both, each from its reply port.
    let d = client
        .send_message("all", "n", b"both", Reliability::Reliable)
        .unwrap();
    let mut acked: Vec<u16> = d.acked.iter().map(|a| a.port()).collect();
    acked.sort_unstable();
    assert_eq!(acked, expected);
    assert!(d.missing.is_empty(), "{d:?}");
    let mut heard: Vec<char> = (0..2)
        .map(|_| got.recv_timeout(Duration::from_secs(2)).unwrap())
        .map(|(name, payload)| {
            assert_eq!(payload, b"both");
            name
        })
        .collect();
    heard.sort_unstable();
    assert_eq!(heard, ['a', 'b']);
    println!("late server found inside a private network namespace");
}
