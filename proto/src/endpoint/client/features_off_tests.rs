//! Builds without an optional feature (`ordered`, `pubsub`, `segment`, ...; issue 20): its commands are
//! refused and its packets are counted drops that are never acknowledged. Each test checks
//! whichever the build carries, so it pins the full build and, run in a minimal build
//! (`cargo test -p pavillion-proto --no-default-features --features std,suite-psk --lib
//! features_off`, which `scripts/check-no-std.sh` runs), the left-out features.

use core::net::SocketAddr;

use crate::crypto::Psk;
use crate::endpoint::{
    ClientConfig, ClientEvent, DropReason, SendError, SendOptions, ServerConfig,
};
use crate::testing::{fixture, Link, Network};
use crate::time::Duration;

fn addrs() -> (SocketAddr, SocketAddr) {
    (
        "10.0.0.1:1783".parse().unwrap(),
        "10.0.0.2:40000".parse().unwrap(),
    )
}

/// A client and a server with a session up.
fn connected() -> Network {
    let (s, c) = addrs();
    let mut net = Network::new(1, Link::clean());
    let id = fixture::client_id(1);
    let psk = Psk::from_bytes([9; 32]);
    net.add_server(
        s,
        ServerConfig::new([1; 32]).with_psk_client(id, psk.clone()),
    );
    net.add_client(c, ClientConfig::psk(id, psk, s, [2; 32]));
    let now = net.now();
    net.client(c)
        .send_message(now, "t", "hello", b"", SendOptions::reliable())
        .unwrap();
    net.run_for(Duration::from_millis(100));
    assert!(net.client(c).is_connected());
    net
}

#[test]
fn an_ordered_send_is_refused_only_where_ordered_is_left_out() {
    let (_, c) = addrs();
    let mut net = connected();
    let now = net.now();
    let sent = net
        .client(c)
        .send_message(now, "t", "n", b"x", SendOptions::ordered());
    if cfg!(feature = "ordered") {
        assert!(sent.is_ok());
    } else {
        assert_eq!(sent, Err(SendError::Unsupported));
    }
}

#[test]
fn an_ordered_message_from_the_server_is_a_counted_unacknowledged_drop_where_left_out() {
    let (s, c) = addrs();
    let mut net = connected();
    let now = net.now();
    net.server(s)
        .send_message(now, c, "t", "n", b"x", SendOptions::ordered())
        .unwrap();
    net.run_for(Duration::from_millis(200));
    let delivered = net
        .client_events(c)
        .iter()
        .any(|e| matches!(e, ClientEvent::Message(m) if m.name() == "n"));
    let dropped = net
        .client(c)
        .stats()
        .dropped(DropReason::FeatureNotCompiled);
    let acked = net
        .server_events(s)
        .iter()
        .any(|e| matches!(e, crate::endpoint::ServerEvent::Delivered { .. }));
    if cfg!(feature = "ordered") {
        assert!(delivered && acked);
        assert_eq!(dropped, 0);
    } else {
        assert!(
            !delivered && !acked,
            "never acknowledged, so its sender's deadline reports it"
        );
        assert!(dropped >= 1);
    }
}

#[test]
fn subscribing_is_refused_only_where_pubsub_is_left_out() {
    let (_, c) = addrs();
    let mut net = connected();
    let now = net.now();
    let r = net.client(c).subscribe(now, "alarms");
    if cfg!(feature = "pubsub") {
        assert!(r.is_ok());
    } else {
        assert_eq!(r, Err(SendError::Unsupported));
    }
}

#[test]
fn a_message_larger_than_a_datagram_is_refused_only_where_segment_is_left_out() {
    let (_, c) = addrs();
    let mut net = connected();
    let now = net.now();
    let big = alloc::vec![7u8; 10_000];
    let sent = net
        .client(c)
        .send_message(now, "t", "big", &big, SendOptions::reliable());
    if cfg!(feature = "segment") {
        assert!(sent.is_ok());
    } else {
        assert_eq!(sent, Err(SendError::TooLarge));
    }
}

#[test]
fn a_segmented_message_from_the_server_is_a_counted_unacknowledged_drop_where_left_out() {
    let (s, c) = addrs();
    let mut net = connected();
    let now = net.now();
    let big = alloc::vec![7u8; 10_000];
    net.server(s)
        .send_message(now, c, "t", "big", &big, SendOptions::reliable())
        .unwrap();
    net.run_for(Duration::from_millis(300));
    let delivered = net
        .client_events(c)
        .iter()
        .any(|e| matches!(e, ClientEvent::Message(m) if m.name() == "big"));
    let dropped = net
        .client(c)
        .stats()
        .dropped(DropReason::FeatureNotCompiled);
    if cfg!(feature = "segment") {
        assert!(delivered);
        assert_eq!(dropped, 0);
    } else {
        assert!(!delivered);
        assert!(dropped >= 1);
    }
}
