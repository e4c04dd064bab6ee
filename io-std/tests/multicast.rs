//! Multicast through the blocking adapter, inside a network namespace this test creates.
//!
//! The test re-runs itself inside `unshare --net` (a fresh namespace holding only a loopback
//! interface), brings loopback up and routes multicast to it (with source 127.0.0.1: loopback
//! addresses are host-scoped, so without it the kernel sends from 0.0.0.0), so no datagram reaches a
//! real interface. Where namespaces are not available (no privilege, no `unshare`), it prints
//! why and passes without running.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use pavillion_proto::ClientId;
use pavillion_std::keys::generate_psk;
use pavillion_std::{CallError, Client, ClientConfig, Reliability, Server, ServerConfig};

const INSIDE: &str = "PAVILLION_TEST_IN_NETNS";
const GROUP: &str = "239.255.28.12";

/// Runs the test named `name` of this binary inside a fresh network namespace. Returns false
/// (after printing why) when no namespace can be made here.
fn rerun_in_namespace(name: &str) -> bool {
    // Unprivileged users may still map themselves to root in a new user namespace.
    let variants: [&[&str]; 2] = [&["--net"], &["--user", "--map-root-user", "--net"]];
    let Some(flags) = variants.iter().find(|flags| {
        Command::new("unshare")
            .args(**flags)
            .args(["ip", "link", "set", "lo", "up"])
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        println!(
            "skipped: cannot create a network namespace here (unshare --net failed or is missing)"
        );
        return false;
    };
    let exe = std::env::current_exe().unwrap();
    let script = "ip link set lo up && ip route add 224.0.0.0/4 dev lo src 127.0.0.1 && exec \"$0\" --exact \"$1\" --nocapture --test-threads=1";
    let out = Command::new("unshare")
        .args(*flags)
        .args(["sh", "-c", script])
        .arg(exe)
        .arg(name)
        .env(INSIDE, "1")
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the test failed inside the namespace");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the test did not run inside the namespace"
    );
    true
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

#[test]
fn multicast_join_call_messages_and_leave() {
    if std::env::var_os(INSIDE).is_none() {
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
        let _ = tx.send(m.payload.to_vec());
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
        let _ = tx.send(m.name.clone());
    });
    let out = server
        .send_message("news", "back", b"", Reliability::Reliable, |_, _| true)
        .unwrap();
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(back.recv_timeout(Duration::from_secs(2)).unwrap(), "back");

    // After leaving the group, a new client of the group finds nobody.
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
