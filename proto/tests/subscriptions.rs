//! Client subscriptions at servers (opcodes 13 and 14 sent client → server,
//! `docs/PROTOCOL.md` §9.6) over the in-memory network, on suites 1, 2 and 3.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use std::net::SocketAddr;

use common::{addr, client_addr, server_addr, Suite, SUITES};
use pavillion_proto::endpoint::{ClientConfig, DropReason, SendError, ServerConfig, ServerEvent};
use pavillion_proto::testing::{Link, Network};
use pavillion_proto::{ClientId, Duration};

const ID: ClientId = ClientId(*b"subscribe-client");

fn group() -> SocketAddr {
    addr("239.255.28.12:1783")
}

fn server_config(suite: Suite, seed: u8) -> ServerConfig {
    common::server_config(suite, ID, seed)
}

fn client_config(suite: Suite, server: SocketAddr, seed: u8) -> ClientConfig {
    common::client_config(suite, ID, server, seed)
}

fn pair(suite: Suite, seed: u64) -> Network {
    let mut net = Network::new(seed, Link::clean());
    net.add_server(server_addr(), server_config(suite, 1));
    net.add_client(client_addr(), client_config(suite, server_addr(), 2));
    net.run_for(Duration::from_millis(200));
    net
}

fn subscribers(net: &mut Network, server: SocketAddr, target: &str) -> Vec<SocketAddr> {
    net.server(server)
        .client_subscribers(target)
        .map(|(a, _)| a)
        .collect()
}

fn sub_events(events: &[ServerEvent]) -> Vec<(bool, SocketAddr, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::ClientSubscribed { addr, target, .. } => {
                Some((true, *addr, target.clone()))
            }
            ServerEvent::ClientUnsubscribed { addr, target, .. } => {
                Some((false, *addr, target.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn subscribe_and_unsubscribe_reach_the_server_on_every_suite() {
    for suite in SUITES {
        let mut net = pair(suite, 1);
        let now = net.now();
        net.client(client_addr()).subscribe(now, "lights").unwrap();
        net.client(client_addr()).subscribe(now, "doors").unwrap();
        // Twice is once.
        net.client(client_addr()).subscribe(now, "lights").unwrap();
        net.run_for(Duration::from_millis(100));
        assert_eq!(
            subscribers(&mut net, server_addr(), "lights"),
            vec![client_addr()],
            "{suite:?}"
        );
        assert_eq!(
            sub_events(&net.server_events(server_addr())),
            vec![
                (true, client_addr(), "lights".into()),
                (true, client_addr(), "doors".into())
            ],
            "{suite:?}"
        );
        assert_eq!(
            net.client(client_addr()).subscribed_at("lights"),
            Some(server_addr()),
            "{suite:?}: the ACK was seen"
        );
        let now = net.now();
        net.client(client_addr())
            .unsubscribe(now, "lights")
            .unwrap();
        net.run_for(Duration::from_millis(100));
        assert!(subscribers(&mut net, server_addr(), "lights").is_empty());
        assert_eq!(
            subscribers(&mut net, server_addr(), "doors"),
            vec![client_addr()]
        );
        assert_eq!(
            sub_events(&net.server_events(server_addr())),
            vec![(false, client_addr(), "lights".into())],
            "{suite:?}"
        );
        // The session ends: its subscriptions go with it.
        let now = net.now();
        net.client(client_addr()).close(now);
        net.run_for(Duration::from_millis(100));
        assert!(subscribers(&mut net, server_addr(), "doors").is_empty());
        assert_eq!(
            sub_events(&net.server_events(server_addr())),
            vec![(false, client_addr(), "doors".into())],
            "{suite:?}"
        );
    }
}

#[test]
fn a_subscription_survives_loss_and_a_newline_is_refused() {
    for suite in SUITES {
        let mut net = pair(suite, 2);
        net.set_link(Link::lossy(0.3));
        let now = net.now();
        assert_eq!(
            net.client(client_addr()).subscribe(now, "a\nb"),
            Err(SendError::InvalidName)
        );
        net.client(client_addr()).subscribe(now, "lights").unwrap();
        net.run_for(Duration::from_secs(4));
        assert_eq!(
            subscribers(&mut net, server_addr(), "lights"),
            vec![client_addr()],
            "{suite:?}"
        );
        assert_eq!(
            net.client(client_addr()).subscribed_at("lights"),
            Some(server_addr()),
            "{suite:?}"
        );
    }
}

#[test]
fn the_server_table_is_bounded_per_client() {
    let mut net = Network::new(3, Link::clean());
    let mut cfg = server_config(Suite::Psk, 1);
    cfg.max_subscriptions_per_client = 2;
    net.add_server(server_addr(), cfg);
    net.add_client(client_addr(), client_config(Suite::Psk, server_addr(), 2));
    net.run_for(Duration::from_millis(200));
    let now = net.now();
    for t in ["a", "b", "c"] {
        net.client(client_addr()).subscribe(now, t).unwrap();
    }
    net.run_for(Duration::from_secs(6));
    let held: Vec<String> = net
        .server(server_addr())
        .client_subscriptions(client_addr())
        .map(String::from)
        .collect();
    assert_eq!(held, vec!["a".to_string(), "b".to_string()]);
    assert!(
        net.server(server_addr())
            .stats()
            .dropped(DropReason::TableFull)
            > 0
    );
    assert_eq!(net.client(client_addr()).subscribed_at("c"), None);
}

fn brokers() -> Vec<SocketAddr> {
    (1..=3).map(|i| addr(&format!("10.0.1.{i}:1783"))).collect()
}

/// Which brokers hold the client's subscription to `target`.
fn holders(net: &mut Network, target: &str) -> Vec<SocketAddr> {
    brokers()
        .into_iter()
        .filter(|b| !subscribers(net, *b, target).is_empty())
        .collect()
}

#[test]
fn a_client_of_three_brokers_subscribes_at_exactly_one_and_moves_when_it_dies() {
    for suite in SUITES {
        let mut net = Network::new(4, Link::clean());
        for (i, b) in brokers().into_iter().enumerate() {
            net.add_server(b, server_config(suite, 10 + i as u8));
            net.join(b, group());
        }
        let mut cfg = client_config(suite, group(), 20);
        cfg.limits.down_timeout = Duration::from_secs(3);
        cfg.keepalive = Some(Duration::from_secs(1));
        net.add_client(client_addr(), cfg);
        net.join(client_addr(), group());
        net.run_for(Duration::from_secs(3));
        assert_eq!(net.client(client_addr()).servers().count(), 3, "{suite:?}");
        let now = net.now();
        net.client(client_addr()).subscribe(now, "lights").unwrap();
        net.run_for(Duration::from_millis(500));
        let first = holders(&mut net, "lights");
        assert_eq!(first.len(), 1, "{suite:?}: exactly one broker holds it");
        assert_eq!(
            net.client(client_addr()).subscribed_at("lights"),
            Some(first[0])
        );

        // Its broker dies: after the down timeout the subscription moves to one other.
        net.set_up(first[0], false);
        net.run_for(Duration::from_secs(6));
        let live: Vec<SocketAddr> = holders(&mut net, "lights")
            .into_iter()
            .filter(|b| *b != first[0])
            .collect();
        assert_eq!(live.len(), 1, "{suite:?}: one live broker took it over");
        assert_eq!(
            net.client(client_addr()).subscribed_at("lights"),
            Some(live[0]),
            "{suite:?}"
        );
    }
}
