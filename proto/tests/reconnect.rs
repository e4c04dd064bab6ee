//! Clients come back by themselves (`docs/PROTOCOL.md` §6.7): after the server quits, after
//! liveness loss and after a server reboot, a client with nothing to send re-establishes its
//! session, re-sends its subscriptions and receives again; on suites 1, 2 and 3.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use std::net::SocketAddr;

use common::{client_addr, server_addr, Suite, SUITES};
use pavillion_proto::endpoint::{
    ClientConfig, ClientEvent, SendOptions, Server, ServerConfig, ServerEvent,
};
use pavillion_proto::testing::{Link, Network, Node};
use pavillion_proto::{ClientId, Duration};

const ID: ClientId = ClientId(*b"reconnect-client");

fn server_config(suite: Suite, seed: u8) -> ServerConfig {
    common::server_config(suite, ID, seed)
}

fn client_config(suite: Suite, keepalive: Duration) -> ClientConfig {
    let mut c = common::client_config(suite, ID, server_addr(), 2);
    c.keepalive = Some(keepalive);
    c
}

/// A client that subscribed to "news" and then sends nothing (a listener).
fn listener(suite: Suite, keepalive: Duration) -> Network {
    let mut net = Network::new(5, Link::clean());
    net.add_server(server_addr(), server_config(suite, 1));
    net.add_client(client_addr(), client_config(suite, keepalive));
    net.run_for(Duration::from_millis(100));
    let now = net.now();
    net.client(client_addr()).subscribe(now, "news").unwrap();
    net.run_for(Duration::from_millis(100));
    net.client_events(client_addr());
    net
}

/// Runs until the client is back: it no longer looks for its server, and holds a session
/// with it that is up and confirmed, and if `fresh`, a new session came up (`Connected`; a
/// suite 3 re-handshake with a server that kept our session is a rekey, with no event). How
/// long that took from now.
fn time_to_back(net: &mut Network, limit: Duration, fresh: bool) -> Option<Duration> {
    net.client_events(client_addr());
    let start = net.now();
    let mut connected = !fresh;
    while net.now() - start < limit {
        net.run_for(Duration::from_millis(1));
        connected |= net
            .client_events(client_addr())
            .iter()
            .any(|e| matches!(e, ClientEvent::Connected { .. }));
        let c = net.client(client_addr());
        let up = c
            .server(server_addr())
            .is_some_and(|s| s.is_up() && s.is_confirmed());
        if connected && up && !c.is_reconnecting() {
            return Some(net.now() - start);
        }
    }
    None
}

/// The server (whatever its incarnation) holds the subscription again, and what it sends the
/// client arrives.
fn receives_again(net: &mut Network, suite: Suite) {
    net.run_for(Duration::from_millis(200));
    let subs: Vec<SocketAddr> = net
        .server(server_addr())
        .client_subscribers("news")
        .map(|(a, _)| a)
        .collect();
    assert_eq!(subs, vec![client_addr()], "{suite:?}: subscription re-sent");
    let now = net.now();
    let id = net
        .server(server_addr())
        .send_message(
            now,
            client_addr(),
            "news",
            "n",
            b"after",
            SendOptions::reliable(),
        )
        .unwrap();
    net.run_for(Duration::from_millis(200));
    let got: Vec<Vec<u8>> = net
        .client_events(client_addr())
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Message(m) => Some(m.payload().to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![b"after".to_vec()], "{suite:?}");
    assert!(net
        .server_events(server_addr())
        .iter()
        .any(|e| matches!(e, ServerEvent::Delivered { id: i, .. } if *i == id)));
}

#[test]
fn a_listener_comes_back_after_its_server_quits_and_returns() {
    for suite in SUITES {
        // Keepalives out of the way: only the quit may bring the client back. The server
        // process ends right after sending its quit.
        let mut net = listener(suite, Duration::from_secs(600));
        let now = net.now();
        net.server(server_addr()).close(now);
        net.run_for(Duration::from_micros(100));
        net.set_up(server_addr(), false);

        net.run_for(Duration::from_secs(20));
        net.replace(
            server_addr(),
            Node::Server(Server::new(server_config(suite, 9))),
        );
        net.set_up(server_addr(), true);
        let back = time_to_back(&mut net, Duration::from_secs(5), true);
        assert!(
            back.is_some_and(|t| t <= Duration::from_secs(1)),
            "{suite:?}: back after {back:?}"
        );
        receives_again(&mut net, suite);
    }
}

#[test]
fn a_listener_comes_back_after_liveness_loss() {
    for suite in SUITES {
        let mut net = listener(suite, Duration::from_secs(2));
        // The server is cut off (same process, same state) for 20 s.
        net.set_up(server_addr(), false);
        net.run_for(Duration::from_secs(20));
        assert!(net.client(client_addr()).is_reconnecting(), "{suite:?}");
        net.set_up(server_addr(), true);
        let back = time_to_back(&mut net, Duration::from_secs(5), false);
        assert!(
            back.is_some_and(|t| t <= Duration::from_secs(1)),
            "{suite:?}: back after {back:?}"
        );
        receives_again(&mut net, suite);
    }
}

#[test]
fn a_listener_comes_back_after_a_server_reboot() {
    for suite in SUITES {
        let mut net = listener(suite, Duration::from_secs(2));
        // kill -9 and restart: no quit, a new process that knows nothing of us.
        net.set_up(server_addr(), false);
        net.run_for(Duration::from_millis(500));
        net.replace(
            server_addr(),
            Node::Server(Server::new(server_config(suite, 9))),
        );
        net.set_up(server_addr(), true);
        // The next keepalive meets the new process, which asks for a handshake (or
        // the keepalive goes unanswered): back within a keepalive and one retry ceiling.
        let back = time_to_back(&mut net, Duration::from_secs(10), true);
        assert!(
            back.is_some_and(|t| t <= Duration::from_secs(4)),
            "{suite:?}: back after {back:?}"
        );
        receives_again(&mut net, suite);
    }
}

#[test]
fn a_rebooted_server_that_announces_itself_is_rejoined_at_once() {
    for suite in SUITES {
        // The server quits and the client looks for it, retrying every ~0.9 s; the new
        // process announces itself and need not wait for the next retry.
        let mut net = listener(suite, Duration::from_secs(600));
        let now = net.now();
        net.server(server_addr()).close(now);
        net.run_for(Duration::from_micros(100));
        net.set_up(server_addr(), false);
        net.run_for(Duration::from_secs(3));
        assert!(net.client(client_addr()).is_reconnecting());
        let mut cfg = server_config(suite, 9);
        // The announcement (op 5) reaches the client, as a group announcement would.
        cfg.announce = Some(client_addr());
        net.replace(server_addr(), Node::Server(Server::new(cfg)));
        net.set_up(server_addr(), true);
        let back = time_to_back(&mut net, Duration::from_secs(5), true);
        assert!(
            back.is_some_and(|t| t <= Duration::from_millis(20)),
            "{suite:?}: back after {back:?}"
        );
        receives_again(&mut net, suite);
    }
}
