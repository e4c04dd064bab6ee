//! Multicast through the async adapter, inside a network namespace the test creates (the
//! helper is io-std's, included by path); skipped with a printed reason where that is
//! impossible. Every wait is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "../../io-std/tests/support/netns.rs"]
mod netns;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::{future, StreamExt};
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use pavillion_smol::{CallError, Client, ClientConfig, Reliability, Server, ServerConfig};

use netns::{free_port, inside, rerun_in_namespace};

const GROUP: &str = "239.255.28.13";

#[test]
fn smol_multicast_join_leave_and_a_late_server() {
    if !inside() {
        rerun_in_namespace("smol_multicast_join_leave_and_a_late_server");
        return;
    }
    let id = ClientId(*b"smol-multicast-1");
    let psk = Psk::from_bytes([0x3c; 32]);
    let group: IpAddr = GROUP.parse().unwrap();
    let port = free_port();
    let to_group = SocketAddr::new(group, port);
    let server_config = ServerConfig::new().psk_client(id, psk.clone());
    let client_config = ClientConfig::psk(id, psk).keepalive(None);
    let test = async {
        let server = Server::bind(("0.0.0.0", port), server_config.clone().multicast(group))
            .await
            .unwrap();
        let mut all = server.on_message(Some("all"));
        let client = Client::connect(to_group, client_config.clone())
            .await
            .unwrap();

        // A call to the group is answered by the server that joined it, and a reliable
        // message to the group is acknowledged by it.
        assert_eq!(&client.call(0, b"group").await.unwrap()[..], b"group");
        let server_addr = client.wait_connected(Duration::from_secs(2)).await.unwrap();
        assert_eq!(server_addr.port(), port);
        let d = client
            .send_message("all", "n", b"hello", Reliability::Reliable)
            .await
            .unwrap();
        assert_eq!(d.acked, vec![server_addr]);
        assert_eq!(all.next().await.unwrap().payload(), b"hello");

        // After leaving, a new client of the group finds nobody; joining again brings it back.
        server.leave_multicast(group).await.unwrap();
        let late = Client::connect(to_group, client_config.clone())
            .await
            .unwrap();
        let timeout = Duration::from_millis(500);
        assert_eq!(
            late.call_with_timeout(0, b"anyone?", timeout).await,
            Err(CallError::TimedOut)
        );
        server.join_multicast(group).await.unwrap();
        let again = late
            .call_with_timeout(0, b"back", Duration::from_secs(5))
            .await;
        assert_eq!(again.as_deref(), Ok(&b"back"[..]));

        // A server bound to the group address starts later and announces itself from its
        // reply socket: the first client sets up a session with it without sending anything.
        let late_server = Server::bind(to_group, server_config.clone()).await.unwrap();
        let reply = late_server.reply_addr().expect("a reply socket");
        let started = Instant::now();
        loop {
            let ports: Vec<u16> = client
                .servers()
                .await
                .iter()
                .map(|s| s.addr().port())
                .collect();
            if ports.contains(&reply.port()) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the client did not find the late server: {ports:?}"
            );
            Timer::after(Duration::from_millis(20)).await;
        }
        late.close().await;
        client.close().await;
        late_server.close().await;
        server.close().await;
    };
    smol::block_on(future::or(test, async {
        Timer::after(Duration::from_secs(30)).await;
        panic!("the test did not finish in 30 s");
    }));
    println!("smol multicast ran inside a private network namespace");
}
