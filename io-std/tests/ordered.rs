//! Ordered sends (`Reliability::Ordered`, op 36) through the blocking adapter on real loopback
//! sockets: many messages on two targets, both directions, arrive in send order, once each.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::sync::mpsc;
use std::time::Duration;

use pavillion_proto::ClientId;
use pavillion_std::keys::generate_psk;
use pavillion_std::{Client, ClientConfig, Reliability, Server, ServerConfig};

const ID: ClientId = ClientId(*b"ordered-std-cli1");
const WAIT: Duration = Duration::from_secs(5);
const COUNT: usize = 100;

/// Takes `n` (target, name) pairs from `rx`, within the wait.
fn take(rx: &mpsc::Receiver<(String, String)>, n: usize) -> Vec<(String, String)> {
    (0..n).map(|_| rx.recv_timeout(WAIT).unwrap()).collect()
}

fn on(target: &str, got: &[(String, String)]) -> Vec<String> {
    got.iter()
        .filter(|(t, _)| t == target)
        .map(|(_, n)| n.clone())
        .collect()
}

#[test]
fn many_ordered_messages_arrive_in_order_both_ways() {
    let psk = generate_psk();
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig::new().psk_client(ID, psk.clone()),
    )
    .unwrap();
    let (tx, at_server) = mpsc::channel();
    server.on_message(None, move |m| {
        assert!(m.reliable);
        let _ = tx.send((m.target().to_string(), m.name().to_string()));
    });
    let client = Client::connect(server.local_addr(), ClientConfig::psk(ID, psk)).unwrap();
    let (tx, at_client) = mpsc::channel();
    client.on_message(None, move |m| {
        let _ = tx.send((m.target().to_string(), m.name().to_string()));
    });
    client.wait_connected(WAIT).unwrap();
    let expected: Vec<String> = (0..COUNT).map(|i| i.to_string()).collect();

    for i in 0..COUNT {
        for target in ["a", "b"] {
            let d = client
                .send_message(target, &i.to_string(), b"x", Reliability::Ordered)
                .unwrap();
            assert_eq!(d.acked, vec![server.local_addr()]);
        }
    }
    let got = take(&at_server, 2 * COUNT);
    assert_eq!(on("a", &got), expected);
    assert_eq!(on("b", &got), expected);

    let (addr, _) = server.clients()[0];
    for i in 0..COUNT {
        for target in ["a", "b"] {
            server
                .send_to(addr, target, &i.to_string(), b"y", Reliability::Ordered)
                .unwrap();
        }
    }
    let got = take(&at_client, 2 * COUNT);
    assert_eq!(on("a", &got), expected);
    assert_eq!(on("b", &got), expected);
    assert!(
        at_server.try_recv().is_err() && at_client.try_recv().is_err(),
        "none twice"
    );
    client.close();
    server.close();
}
