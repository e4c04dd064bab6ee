//! A caller that receives its own answer leaves the client's socket parked out of the driver's
//! poller for its next call (`io-std/src/driver.rs`, `PARK_GRACE`): back-to-back calls then
//! make no `epoll_ctl`. What arrives while nobody calls must still be read: the driver takes
//! the socket back after the grace.

use core::time::Duration;
use std::sync::mpsc;
use std::time::Instant;

use pavillion_proto::ClientId;
use pavillion_std::keys::generate_psk;
use pavillion_std::{Client, ClientConfig, Reliability, RpcFailure, Server, ServerConfig};

const ID: ClientId = ClientId(*b"parkparkparkpark");
const WAIT: Duration = Duration::from_secs(5);

/// After every call (which parks the socket) the server pushes a reliable message that no
/// call will read: the client's driver must take the socket back and deliver it, and the
/// server's send must see the ACK. Then calls go on as before.
#[test]
fn a_push_after_a_call_is_read_by_the_driver() {
    let psk = generate_psk();
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig::new().psk_client(ID, psk.clone()),
    )
    .unwrap();
    server.register(400, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
    let client = Client::connect(server.local_addr(), ClientConfig::psk(ID, psk)).unwrap();
    let (tx, pushed) = mpsc::channel();
    client.on_message(Some("alerts"), move |m| {
        let _ = tx.send(m.payload().to_vec());
    });
    client.wait_connected(WAIT).unwrap();
    let deadline = Instant::now() + WAIT;
    while server.clients().is_empty() {
        assert!(Instant::now() < deadline, "the server never had the client");
        std::thread::sleep(Duration::from_millis(5));
    }
    for round in 0..20u32 {
        let args = round.to_le_bytes();
        // A few back to back, so that the socket is parked between them and after the last.
        for _ in 0..3 {
            assert_eq!(&client.call(400, &args).unwrap()[..], &args);
        }
        let sent = server
            .send_message("alerts", "n", &args, Reliability::Reliable, |_, _| true)
            .unwrap();
        assert!(
            !sent.is_empty() && sent.iter().all(|o| o.result.is_ok()),
            "round {round}: the client never acknowledged the push: {sent:?}"
        );
        let got = pushed
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("round {round}: the push never reached the client: {e}"));
        assert_eq!(got, args);
    }
}
