//! `Server::remove_ecc_client`: a member dropping a revoked peer refuses it at once. Its
//! session ends (the client hears quit) and a new handshake under the key is not answered.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use pavillion_proto::endpoint::{CloseReason, ServerEvent};
use pavillion_proto::testing::{Link, Network};
use pavillion_proto::{ClientId, Duration};

mod common;

use common::{client_addr, server_addr, Suite};

const ID: ClientId = ClientId(*b"removed-client-1");

#[test]
fn a_removed_key_loses_its_session_and_cannot_handshake_again() {
    let mut net = Network::new(7, Link::clean());
    net.add_server(server_addr(), common::server_config(Suite::Noise, ID, 1));
    net.add_client(
        client_addr(),
        common::client_config(Suite::Noise, ID, server_addr(), 2),
    );
    net.run_for(Duration::from_millis(200));
    assert!(net.client(client_addr()).is_connected());
    net.server_events(server_addr());

    let now = net.now();
    assert!(net.server(server_addr()).remove_ecc_client(now, ID));
    assert!(!net.server(server_addr()).remove_ecc_client(now, ID));
    let events = net.server_events(server_addr());
    assert!(events.contains(&ServerEvent::Disconnected {
        addr: client_addr(),
        reason: CloseReason::LocallyClosed,
    }));
    assert_eq!(net.server(server_addr()).session_count(), 0);

    // The client tries again (it was told to quit, then keeps reconnecting): refused.
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.server(server_addr()).session_count(), 0);
    assert!(!net.client(client_addr()).is_connected());
}
