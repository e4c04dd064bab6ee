//! No race with a server that answers from a second port (`docs/PROTOCOL.md` §6.2): the
//! reference reads session packets on its listening socket and handshakes on its reply socket,
//! so a first call that overtakes our client-info got op 4 and waited for a retransmission
//! (about 13% of one-shot calls took ~255 ms). Modelled here with a server whose reply port
//! differs from its listening port, and whose reply socket sees our client-info later than the
//! listening socket sees the call.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::SocketAddr;

use pavillion_proto::endpoint::{ClientConfig, ClientEvent, DropReason, ServerConfig};
use pavillion_proto::testing::{Link, Network};
use pavillion_proto::wire::{Datagram, Setup};
use pavillion_proto::{ClientId, Duration};

mod common;

use common::{addr, client_addr, client_keys, psk, server_keys};

const ID: ClientId = ClientId(*b"race-client-0001");

/// Where the client sends: the server's listening socket.
fn listening() -> SocketAddr {
    addr("10.0.0.1:1783")
}

/// Where the server answers from (and its one endpoint lives): the reply socket.
fn reply() -> SocketAddr {
    addr("10.0.0.1:50000")
}

fn reference_like(ecc: bool, seed: u64) -> Network {
    let mut net = Network::new(seed, Link::clean());
    let server = ServerConfig::new([1; 32]);
    let server = if ecc {
        server
            .with_keys(server_keys())
            .with_ecc_client(ID, *client_keys().public())
    } else {
        server.with_psk_client(ID, psk())
    };
    net.add_server(reply(), server);
    // What is sent to the listening port reaches the endpoint at once; what is sent to the
    // reply port (our client-info) 5 ms later: the listening socket has not seen op 3 yet
    // when a call sent right after it arrives.
    net.join(reply(), listening());
    net.set_path(client_addr(), listening(), Link::clean());
    let slow = Link {
        latency: Duration::from_millis(5),
        ..Link::clean()
    };
    net.set_path(client_addr(), reply(), slow);
    let client = if ecc {
        ClientConfig::ecc(
            ID,
            client_keys(),
            *server_keys().public(),
            listening(),
            [2; 32],
        )
    } else {
        ClientConfig::psk(ID, psk(), listening(), [2; 32])
    };
    net.add_client(client_addr(), client);
    net
}

#[test]
fn the_first_call_waits_for_op_7_from_a_server_with_a_reply_port() {
    for ecc in [false, true] {
        let mut net = reference_like(ecc, 1);
        net.capture();
        let now = net.now();
        let call = net.client(client_addr()).echo(now, b"one-shot").unwrap();
        net.run_for(Duration::from_millis(100));
        let events = net.client_events(client_addr());
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ClientEvent::Answered { call: c, .. } if *c == call)),
            "ecc {ecc}: {events:?}"
        );
        let op4 = net
            .captured()
            .iter()
            .filter(|d| d.from == reply())
            .filter(|d| {
                matches!(
                    Datagram::parse(&d.bytes),
                    Ok(Datagram::Setup(Setup::UnrecognizedClient))
                )
            })
            .count();
        assert_eq!(op4, 0, "ecc {ecc}: no op 4 round");
        let c = net.client(client_addr());
        assert_eq!(c.stats().retransmissions, 0, "ecc {ecc}: no retransmission");
        assert_eq!(c.stats().handshakes, 1, "ecc {ecc}");
        assert_eq!(
            net.server(reply()).stats().dropped(DropReason::UnknownPeer),
            0,
            "ecc {ecc}"
        );
    }
}
