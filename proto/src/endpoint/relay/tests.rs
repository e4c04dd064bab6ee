use super::*;
use crate::testing::relays::RelayNet;
use crate::time::Duration;

pub(super) fn keys(i: u8) -> KeyPair {
    KeyPair::from_secret_bytes([i; 32])
}

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) const PORT: u16 = 5076;

/// Two relays on segments "one" and "two", each configured with the other.
fn two() -> (RelayNet, SocketAddr, SocketAddr) {
    two_with(RelayLimits::default())
}

/// As [`two`], with these limits on both.
pub(super) fn two_with(limits: RelayLimits) -> (RelayNet, SocketAddr, SocketAddr) {
    let (ka, kb) = (keys(1), keys(2));
    let (a, b) = (addr("10.0.0.1:7124"), addr("10.0.1.1:7124"));
    let mut net = RelayNet::new();
    let mut ca = RelayConfig::new(ka.clone(), "one", &[PORT], [1; 32]).with_peer(b, *kb.public());
    ca.limits = limits.clone();
    let mut cb = RelayConfig::new(kb, "two", &[PORT], [2; 32]).with_peer(a, *ka.public());
    cb.limits = limits;
    net.add(a, ca);
    net.add(b, cb);
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
    let (mut net, a, b) = two();
    net.emit_from_mesh = true;
    net.broadcast("one", addr("10.0.0.9:4000"), Scope::Broadcast, PORT, b"x");
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.emitted_on("two").len(), 1);
    assert_eq!(net.relay(b).relay_stats().dropped(RelayDrop::Echo), 1);
    assert_eq!(net.relay(b).relay_stats().carried, 0);
    // Recognised by its source alone: new content from a relay's mesh address.
    net.broadcast("two", a, Scope::Broadcast, PORT, b"new content");
    assert_eq!(net.relay(b).relay_stats().dropped(RelayDrop::Echo), 2);
    assert_eq!(net.relay(b).relay_stats().carried, 0);
}

/// Three segments, two relays each, full mesh (every relay configured with every other).
fn six() -> (RelayNet, Vec<(SocketAddr, &'static str)>) {
    let segs = ["one", "two", "three"];
    let hosts: Vec<(SocketAddr, &str, KeyPair)> = (0..6u8)
        .map(|i| {
            let a = addr(&alloc::format!("10.0.{}.{}:7124", i / 2, 1 + i % 2));
            (a, segs[usize::from(i / 2)], keys(10 + i))
        })
        .collect();
    let mut net = RelayNet::new();
    for (i, (a, seg, k)) in hosts.iter().enumerate() {
        let mut c = RelayConfig::new(k.clone(), seg, &[PORT], [20 + i as u8; 32]);
        for (b, _, kb) in &hosts {
            if b != a {
                c = c.with_peer(*b, *kb.public());
            }
        }
        net.add(*a, c);
    }
    net.run_for(Duration::from_secs(2));
    (net, hosts.into_iter().map(|(a, s, _)| (a, s)).collect())
}

/// Broadcasts `n` distinct datagrams on each segment, each from a host of that segment.
fn broadcast_rounds(net: &mut RelayNet, n: u32, tag: &str) {
    for round in 0..n {
        for (i, seg) in ["one", "two", "three"].iter().enumerate() {
            let src = addr(&alloc::format!("10.0.{i}.50:4000"));
            let payload = alloc::format!("{tag} {seg} {round}");
            net.broadcast(seg, src, Scope::Broadcast, PORT, payload.as_bytes());
            net.run_for(Duration::from_millis(20));
        }
    }
    net.run_for(Duration::from_millis(500));
}

/// Every datagram sent on a segment was emitted exactly once on every other segment and
/// never on its own.
fn assert_once_elsewhere(net: &RelayNet, n: u32, tag: &str) {
    for (i, seg) in ["one", "two", "three"].iter().enumerate() {
        for round in 0..n {
            let payload = alloc::format!("{tag} {seg} {round}");
            for other in ["one", "two", "three"] {
                let copies = net
                    .emitted_on(other)
                    .iter()
                    .filter(|e| e.payload == payload.as_bytes())
                    .count();
                let want = usize::from(other != *seg);
                assert_eq!(copies, want, "{payload:?} on {other} (from segment {i})");
            }
        }
    }
}

#[test]
fn three_segments_each_datagram_once_on_every_other_segment() {
    let (mut net, hosts) = six();
    // One emitter per segment: the lower id of each pair.
    for pair in hosts.chunks(2) {
        let emitters = pair
            .iter()
            .filter(|(a, _)| net.relay(*a).is_emitter())
            .count();
        assert_eq!(emitters, 1, "{pair:?}");
    }
    broadcast_rounds(&mut net, 5, "a");
    assert_once_elsewhere(&net, 5, "a");
    // A full mesh forwards nothing.
    for (a, _) in &hosts {
        assert_eq!(net.relay(*a).relay_stats().forwarded, 0);
    }
}

#[test]
fn three_segments_keep_the_guarantee_when_one_relay_per_segment_dies() {
    let (mut net, hosts) = six();
    // Kill each segment's emitter, the harder case.
    let dead: Vec<SocketAddr> = hosts
        .iter()
        .map(|(a, _)| *a)
        .filter(|a| net.relay(*a).is_emitter())
        .collect();
    assert_eq!(dead.len(), 3);
    for a in &dead {
        net.set_up(*a, false);
    }
    net.run_for(RelayLimits::default().down_after + Duration::from_secs(2));
    for (a, _) in hosts.iter().filter(|(a, _)| !dead.contains(a)) {
        let h = net.host(*a);
        assert!(h.relay.is_emitter(), "{a} took over");
        assert!(h.events.contains(&RelayEvent::Emitter { active: true }));
        assert_eq!(
            h.events
                .iter()
                .filter(|e| matches!(e, RelayEvent::PeerDown { .. }))
                .count(),
            3
        );
    }
    broadcast_rounds(&mut net, 3, "b");
    assert_once_elsewhere(&net, 3, "b");
}

#[test]
fn a_relay_configured_with_one_peer_is_learned_by_the_others_by_announcement() {
    let (ka, kb, kc) = (keys(1), keys(2), keys(3));
    let (a, b, c) = (
        addr("10.0.0.1:7124"),
        addr("10.0.1.1:7124"),
        addr("10.0.2.1:7124"),
    );
    let mut net = RelayNet::new();
    let ca = RelayConfig::new(ka.clone(), "one", &[PORT], [1; 32])
        .with_peer(b, *kb.public())
        .with_trusted(*kc.public());
    let cb = RelayConfig::new(kb.clone(), "two", &[PORT], [2; 32])
        .with_peer(a, *ka.public())
        .with_trusted(*kc.public());
    // C knows only A, and trusts B's key.
    let cc = RelayConfig::new(kc, "three", &[PORT], [3; 32])
        .with_peer(a, *ka.public())
        .with_trusted(*kb.public());
    net.add(a, ca);
    net.add(b, cb);
    net.add(c, cc);
    net.run_for(Duration::from_secs(3));
    let idc = net.relay(c).id();
    let idb = net.relay(b).id();
    let joined = |net: &mut RelayNet, at, who, addr| {
        net.host(at)
            .events
            .contains(&RelayEvent::PeerJoined { relay: who, addr })
    };
    assert!(joined(&mut net, a, idc, c), "A learns C from its session");
    assert!(joined(&mut net, b, idc, c), "B learns C from A's members");
    assert!(joined(&mut net, c, idb, b), "C learns B");
    for at in [a, b, c] {
        let peers = net.relay(at).peers();
        assert_eq!(peers.len(), 2, "{at}");
        assert!(peers.iter().all(|p| p.up), "{at}: {peers:?}");
    }
    let c_at_b = net
        .relay(b)
        .peers()
        .into_iter()
        .find(|p| p.relay == idc)
        .unwrap();
    assert!(!c_at_b.configured);
    assert_eq!(c_at_b.segment, "three");
    // The mesh carries between all three.
    net.broadcast(
        "three",
        addr("10.0.2.9:1"),
        Scope::Broadcast,
        PORT,
        b"from c",
    );
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.emitted_on("one").len(), 1);
    assert_eq!(net.emitted_on("two").len(), 1);
}

#[test]
fn an_untrusted_key_never_gets_a_session() {
    let (mut net, a, _b) = two();
    let d = addr("10.0.9.1:7124");
    let cd = RelayConfig::new(keys(9), "nine", &[PORT], [9; 32]).with_peer(a, *keys(1).public());
    net.add(d, cd);
    net.run_for(Duration::from_secs(5));
    // A's server refused every initiation (an IK initiation under an unknown static key does
    // not authenticate): counted, no session, no event.
    let refused = net
        .relay(a)
        .stats()
        .dropped(crate::endpoint::DropReason::BadHandshake);
    assert!(refused >= 2, "{:?}", net.relay(a).stats());
    assert_eq!(net.relay(a).peers().len(), 1);
    assert!(!net
        .host(d)
        .events
        .iter()
        .any(|e| matches!(e, RelayEvent::PeerUp { .. })));
    assert!(!net.relay(d).peers()[0].up);
    // Nothing it captures reaches anyone.
    net.broadcast(
        "nine",
        addr("10.0.9.9:1"),
        Scope::Broadcast,
        PORT,
        b"inject",
    );
    net.run_for(Duration::from_secs(1));
    assert!(net.emitted_on("one").is_empty() && net.emitted_on("two").is_empty());
}

/// A, B, C on three segments, full mesh configured, with the A–C path cut.
fn partitioned(hop_limit: u8) -> (RelayNet, [SocketAddr; 3]) {
    let k = [keys(1), keys(2), keys(3)];
    let addrs = [
        addr("10.0.0.1:7124"),
        addr("10.0.1.1:7124"),
        addr("10.0.2.1:7124"),
    ];
    let segs = ["one", "two", "three"];
    let mut net = RelayNet::new();
    net.set_cut(addrs[0], addrs[2], true);
    for i in 0..3 {
        let mut c = RelayConfig::new(k[i].clone(), segs[i], &[PORT], [i as u8 + 1; 32]);
        c.limits.hop_limit = hop_limit;
        for j in (0..3).filter(|j| *j != i) {
            c = c.with_peer(addrs[j], *k[j].public());
        }
        net.add(addrs[i], c);
    }
    net.run_for(Duration::from_secs(3));
    (net, addrs)
}

#[test]
fn a_frame_goes_around_a_partial_partition_within_the_hop_limit() {
    let (mut net, [a, b, c]) = partitioned(2);
    assert!(!net.relay(a).peers().iter().any(|p| p.addr == c && p.up));
    net.broadcast("one", addr("10.0.0.9:1"), Scope::Broadcast, PORT, b"around");
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.emitted_on("two").len(), 1);
    assert_eq!(net.emitted_on("three").len(), 1);
    assert_eq!(net.relay(b).relay_stats().forwarded, 1);
    assert!(net.emitted_on("one").is_empty());
    // C does not pass it on (hops = limit), so nothing comes back.
    assert_eq!(net.relay(c).relay_stats().forwarded, 0);

    // With a hop limit of 1 nothing is forwarded: C never gets it.
    let (mut net, [_a, b, _c]) = partitioned(1);
    net.broadcast("one", addr("10.0.0.9:1"), Scope::Broadcast, PORT, b"around");
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.emitted_on("two").len(), 1);
    assert!(net.emitted_on("three").is_empty());
    assert_eq!(net.relay(b).relay_stats().forwarded, 0);
}

#[test]
fn a_partition_heals() {
    let (mut net, [a, _b, c]) = partitioned(2);
    net.set_cut(a, c, false);
    net.run_for(Duration::from_secs(5));
    assert!(net.relay(a).peers().iter().all(|p| p.up));
    net.broadcast("one", addr("10.0.0.9:1"), Scope::Broadcast, PORT, b"healed");
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.emitted_on("two").len(), 1);
    assert_eq!(net.emitted_on("three").len(), 1);
}

#[test]
fn a_trusted_relay_that_opens_a_session_to_us_is_joined() {
    // A bare suite 3 client with a trusted relay key, which never sends `members`: the
    // session alone makes A connect back.
    use crate::endpoint::{Client, ClientConfig};
    let (ka, kc) = (keys(1), keys(3));
    let (a, c) = (addr("10.0.0.1:7124"), addr("10.0.2.1:7124"));
    let mut relay = Relay::new(
        RelayConfig::new(ka.clone(), "one", &[PORT], [1; 32]).with_trusted(*kc.public()),
    );
    let cid = crate::crypto::ecc::default_client_id(kc.public());
    let mut client = Client::new(ClientConfig::noise_ik(
        cid,
        kc.clone(),
        *ka.public(),
        a,
        [5; 32],
    ));
    let mut now = crate::time::Instant::from_millis(1000);
    let mut buf = alloc::vec![0u8; crate::wire::MAX_DATAGRAM];
    for _ in 0..50 {
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            relay.handle_datagram(now, c, &buf[..t.len]);
        }
        while let Some(t) = relay.poll_transmit(now, &mut buf) {
            if t.destination == c {
                client.handle_datagram(now, a, &buf[..t.len]);
            }
        }
        now += Duration::from_millis(10);
        relay.handle_timeout(now);
        client.handle_timeout(now);
    }
    let events: Vec<_> = core::iter::from_fn(|| relay.poll_event()).collect();
    let idc = RelayId::of(kc.public());
    assert!(
        events.contains(&RelayEvent::PeerJoined {
            relay: idc,
            addr: c
        }),
        "{events:?}"
    );
    assert_eq!(relay.peers().len(), 1);
    assert!(!relay.peers()[0].configured);
}

#[test]
fn a_restarted_relay_is_back_and_its_sequence_numbers_start_afresh() {
    let (mut net, a, b) = two();
    for i in 0..3u8 {
        net.broadcast("two", addr("10.0.1.9:1"), Scope::Broadcast, PORT, &[i]);
        net.run_for(Duration::from_millis(100));
    }
    assert_eq!(net.emitted_on("one").len(), 3);
    // B restarts: a new process with a new instance, counting from 1 again.
    let cb = RelayConfig::new(keys(2), "two", &[PORT], [99; 32]).with_peer(a, *keys(1).public());
    net.restart(b, cb);
    net.run_for(Duration::from_secs(3));
    assert!(net.relay(a).peers()[0].up);
    assert!(net.relay(b).peers()[0].up);
    for i in 10..13u8 {
        net.broadcast("two", addr("10.0.1.9:1"), Scope::Broadcast, PORT, &[i]);
        net.run_for(Duration::from_millis(100));
    }
    assert_eq!(net.emitted_on("one").len(), 6);
    assert_eq!(net.relay(a).relay_stats().dropped(RelayDrop::Duplicate), 0);
}

#[test]
fn members_are_announced_periodically_and_closing_ends_sessions_at_once() {
    let limits = RelayLimits {
        announce_interval: Duration::from_secs(1),
        ..RelayLimits::default()
    };
    let (mut net, a, b) = two_with(limits);
    let before = net.relay(b).relay_stats().received;
    net.run_for(Duration::from_millis(5_500));
    // One `members` from A every second, nothing else.
    let got = net.relay(b).relay_stats().received - before;
    assert!((5..=6).contains(&got), "{got}");

    let now = net.now();
    net.relay(a).close(now);
    net.run_for(Duration::from_millis(100));
    let ida = net.relay(a).id();
    assert!(net
        .host(b)
        .events
        .contains(&RelayEvent::PeerDown { relay: ida }));
}

#[test]
fn an_emitter_cut_off_from_the_origin_segment_gets_the_frame_through_its_sibling() {
    let (mut net, hosts) = six();
    let emitter_two = hosts
        .iter()
        .map(|(a, _)| *a)
        .find(|a| net.host(*a).segment == "two" && net.relay(*a).is_emitter())
        .unwrap();
    for (a, seg) in &hosts {
        if *seg == "one" {
            net.set_cut(*a, emitter_two, true);
        }
    }
    net.run_for(RelayLimits::default().down_after + Duration::from_secs(2));
    // Its sibling still sees it up, so it stays the emitter.
    assert!(net.relay(emitter_two).is_emitter());
    broadcast_rounds(&mut net, 3, "c");
    assert_once_elsewhere(&net, 3, "c");
    assert!(net.relay(emitter_two).relay_stats().emitted >= 3);
}

#[test]
fn any_schedule_of_distinct_broadcasts_is_emitted_once_on_every_other_segment() {
    use quickcheck::QuickCheck;
    // Each op: a segment (0..3), a source host (0..4) and a pause (0..40 ms) before the next.
    fn prop(ops: Vec<(u8, u8, u8)>) -> bool {
        let (mut net, _) = six();
        let segs = ["one", "two", "three"];
        let ops: Vec<_> = ops.into_iter().take(30).collect();
        for (n, (seg, host, pause)) in ops.iter().enumerate() {
            let i = usize::from(*seg % 3);
            let src = addr(&alloc::format!("10.0.{i}.{}:4000", 50 + host % 4));
            let payload = alloc::format!("op {n}");
            net.broadcast(segs[i], src, Scope::Broadcast, PORT, payload.as_bytes());
            net.run_for(Duration::from_millis(u64::from(*pause % 40)));
        }
        net.run_for(Duration::from_millis(500));
        ops.iter().enumerate().all(|(n, (seg, _, _))| {
            let payload = alloc::format!("op {n}");
            (0..3).all(|j| {
                let copies = net
                    .emitted_on(segs[j])
                    .iter()
                    .filter(|e| e.payload == payload.as_bytes())
                    .count();
                copies == usize::from(j != usize::from(*seg % 3))
            })
        })
    }
    QuickCheck::new()
        .tests(40)
        .quickcheck(prop as fn(Vec<(u8, u8, u8)>) -> bool);
}

#[test]
fn a_relay_that_closed_and_restarted_is_reconnected() {
    let (mut net, a, b) = two();
    let now = net.now();
    net.relay(a).close(now);
    net.run_for(Duration::from_millis(100));
    net.set_up(a, false);
    net.run_for(Duration::from_secs(10));
    let ca = RelayConfig::new(keys(1), "one", &[PORT], [77; 32]).with_peer(b, *keys(2).public());
    net.restart(a, ca);
    net.run_for(Duration::from_secs(3));
    assert!(net.relay(b).peers()[0].up);
    assert!(net.relay(a).peers()[0].up);
    net.broadcast("two", addr("10.0.1.9:1"), Scope::Broadcast, PORT, b"after");
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.emitted_on("one").len(), 1);
}
