use super::*;
use crate::testing::relays::RelayNet;
use crate::time::Duration;

fn keys(i: u8) -> KeyPair {
    KeyPair::from_secret_bytes([i; 32])
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const PORT: u16 = 5076;

/// Two relays on segments "one" and "two", each configured with the other.
fn two() -> (RelayNet, SocketAddr, SocketAddr) {
    let (ka, kb) = (keys(1), keys(2));
    let (a, b) = (addr("10.0.0.1:7124"), addr("10.0.1.1:7124"));
    let mut net = RelayNet::new();
    net.add(
        a,
        RelayConfig::new(ka.clone(), "one", &[PORT], [1; 32]).with_peer(b, *kb.public()),
    );
    net.add(
        b,
        RelayConfig::new(kb, "two", &[PORT], [2; 32]).with_peer(a, *ka.public()),
    );
    net.run_for(Duration::from_secs(1));
    (net, a, b)
}

#[test]
fn two_relays_come_up_both_ways() {
    let (mut net, a, b) = two();
    let (ida, idb) = (net.relay(a).id(), net.relay(b).id());
    let up = |net: &mut RelayNet, at, other| {
        net.host(at)
            .events
            .iter()
            .any(|e| matches!(e, RelayEvent::PeerUp { relay, .. } if *relay == other))
    };
    assert!(up(&mut net, a, idb));
    assert!(up(&mut net, b, ida));
    let peers = net.relay(a).peers();
    assert_eq!(peers.len(), 1);
    assert!(peers[0].up && peers[0].configured);
    assert_eq!(peers[0].segment, "two");
}

#[test]
fn a_captured_datagram_is_emitted_once_with_its_source_scope_port_and_payload() {
    let (mut net, a, b) = two();
    let src = addr("10.0.0.9:4000");
    net.broadcast("one", src, Scope::Broadcast, PORT, b"search");
    net.run_for(Duration::from_secs(2));
    let on_two = net.emitted_on("two");
    assert_eq!(on_two.len(), 1);
    assert_eq!(on_two[0].by, b);
    assert_eq!(on_two[0].emit.source, src);
    assert_eq!(on_two[0].emit.scope, Scope::Broadcast);
    assert_eq!(on_two[0].emit.port, PORT);
    assert_eq!(on_two[0].payload, b"search");
    assert!(net.emitted_on("one").is_empty());
    // Its emission was heard back on segment two and recognised.
    assert_eq!(net.relay(b).relay_stats().dropped(RelayDrop::Echo), 1);
    assert_eq!(net.relay(a).relay_stats().carried, 1);
    assert_eq!(net.relay(b).relay_stats().emitted, 1);
}

#[test]
fn an_emission_from_the_mesh_socket_heard_back_is_echo() {
    let (mut net, _a, b) = two();
    net.emit_from_mesh = true;
    net.broadcast("one", addr("10.0.0.9:4000"), Scope::Broadcast, PORT, b"x");
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.emitted_on("two").len(), 1);
    assert_eq!(net.relay(b).relay_stats().dropped(RelayDrop::Echo), 1);
    assert_eq!(net.relay(b).relay_stats().carried, 0);
}
