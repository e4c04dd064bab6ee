//! `Server::bind_with`: handlers added in its setup are there for the first datagram.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::sync::mpsc;
use std::time::Duration;

use pavillion_proto::ClientId;
use pavillion_std::keys::generate_psk;
use pavillion_std::{Client, ClientConfig, Reliability, RpcFailure, Server, ServerConfig};

#[test]
fn setup_runs_before_the_first_datagram() {
    let id = ClientId(*b"cid2cid2cid2cid2");
    let psk = generate_psk();
    let (tx, rx) = mpsc::channel();
    let server = Server::bind_with(
        "127.0.0.1:0",
        ServerConfig::new().psk_client(id, psk.clone()),
        |s| {
            s.register(401, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
            s.on_message(None, move |m| {
                let _ = tx.send(m.name().to_string());
            });
        },
    )
    .unwrap();
    let client = Client::connect(server.local_addr(), ClientConfig::psk(id, psk)).unwrap();
    assert_eq!(&client.call(401, b"first").unwrap()[..], b"first");
    client
        .send_message("t", "n", b"", Reliability::Reliable)
        .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "n");
    server.close();
}
