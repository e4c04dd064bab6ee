//! The relay under bad input, rate limits and floods.

use super::tests::{addr, two_with, PORT};
use super::*;
use crate::crypto::ecc::KeyPair;
use crate::endpoint::SendOptions;
use crate::testing::relays::RelayNet;
use crate::time::Duration;
use crate::wire::relay::{Carry, CARRY, MEMBERS, TARGET};

/// Has `from`'s client for `to` send a message straight to `to`'s server.
fn send_raw(
    net: &mut RelayNet,
    from: SocketAddr,
    to: SocketAddr,
    target: &str,
    name: &str,
    payload: &[u8],
) {
    let id = net.relay(to).id();
    let now = net.now();
    let peer = net.relay(from).peers.get_mut(&id).expect("peer");
    peer.client
        .send_message(now, target, name, payload, SendOptions::unreliable())
        .expect("sent");
    net.run_for(Duration::from_millis(50));
}

fn frame(origin: RelayId, hops: u8, seq: u64, port: u16, payload: &[u8]) -> Vec<u8> {
    let f = Carry {
        hops,
        origin,
        instance: 1,
        seq,
        port,
        source: addr("10.0.0.9:4000"),
        scope: Scope::Broadcast,
        payload,
    };
    let mut buf = alloc::vec![0u8; f.buffer_len()];
    f.emit(&mut buf).unwrap();
    buf
}

#[test]
fn bad_frames_from_a_peer_are_typed_drops_and_emit_nothing() {
    let (mut net, a, b) = two_with(RelayLimits::default());
    let ida = net.relay(a).id();
    let cases: Vec<(Vec<u8>, &str, &str, RelayDrop)> = alloc::vec![
        (
            frame(ida, 1, 1, 9999, b"p"),
            TARGET,
            CARRY,
            RelayDrop::UnknownPort
        ),
        (
            frame(ida, 3, 2, PORT, b"h"),
            TARGET,
            CARRY,
            RelayDrop::HopLimit
        ),
        (
            frame(RelayId(crate::id::ClientId([0x55; 16])), 1, 3, PORT, b"u"),
            TARGET,
            CARRY,
            RelayDrop::UnknownRelay
        ),
        (b"garbage".to_vec(), TARGET, CARRY, RelayDrop::Malformed),
        (b"garbage".to_vec(), TARGET, MEMBERS, RelayDrop::Malformed),
        (
            frame(ida, 1, 4, PORT, b"n"),
            TARGET,
            "other",
            RelayDrop::Malformed
        ),
        (
            frame(ida, 1, 5, PORT, b"t"),
            "elsewhere",
            CARRY,
            RelayDrop::Malformed
        ),
        (
            frame(net.relay(b).id(), 1, 6, PORT, b"us"),
            TARGET,
            CARRY,
            RelayDrop::Duplicate
        ),
    ];
    let mut zero = frame(ida, 1, 7, PORT, b"z");
    zero[1] = 0;
    let cases = cases
        .into_iter()
        .chain([(zero, TARGET, CARRY, RelayDrop::HopLimit)]);
    for (bytes, target, name, reason) in cases {
        let before = net.relay(b).relay_stats().clone();
        send_raw(&mut net, a, b, target, name, &bytes);
        let after = net.relay(b).relay_stats().clone();
        assert_eq!(
            after.dropped(reason),
            before.dropped(reason) + 1,
            "{reason:?}"
        );
        assert_eq!(after.received, before.received + 1, "{reason:?}");
    }
    assert!(net.emitted_on("two").is_empty());
}

#[test]
fn a_replayed_sequence_number_is_a_duplicate() {
    let (mut net, a, b) = two_with(RelayLimits::default());
    let ida = net.relay(a).id();
    send_raw(
        &mut net,
        a,
        b,
        TARGET,
        CARRY,
        &frame(ida, 1, 1, PORT, b"first"),
    );
    assert_eq!(net.emitted_on("two").len(), 1);
    // Same origin, instance and seq, even with other content.
    send_raw(
        &mut net,
        a,
        b,
        TARGET,
        CARRY,
        &frame(ida, 1, 1, PORT, b"again"),
    );
    assert_eq!(net.relay(b).relay_stats().dropped(RelayDrop::Duplicate), 1);
    assert_eq!(net.emitted_on("two").len(), 1);
}

#[test]
fn non_suite3_and_oversized_and_unknown_port_local_datagrams_are_dropped() {
    let (mut net, a, b) = two_with(RelayLimits::default());
    net.inject(addr("10.9.9.9:1"), b, b"hello, not suite 3");
    net.inject(addr("10.9.9.9:1"), b, b"PvS3\x06 group packet");
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.relay(b).relay_stats().dropped(RelayDrop::NotSuite3), 2);

    let src = addr("10.0.0.9:4000");
    let max = crate::wire::relay::MAX_CARRY_FRAME - Carry::header_len(&src, &Scope::Broadcast);
    let big = alloc::vec![7u8; max + 1];
    net.broadcast("one", src, Scope::Broadcast, PORT, &big);
    net.broadcast("one", src, Scope::Broadcast, PORT + 1, b"other port");
    net.run_for(Duration::from_millis(100));
    let s = net.relay(a).relay_stats().clone();
    assert_eq!((s.captured, s.carried), (2, 0));
    assert_eq!(s.dropped(RelayDrop::TooLarge), 1);
    assert_eq!(s.dropped(RelayDrop::UnknownPort), 1);
    // The largest that fits is carried whole.
    net.broadcast("one", src, Scope::Broadcast, PORT, &big[..max]);
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.emitted_on("two").len(), 1);
    assert_eq!(net.emitted_on("two")[0].payload.len(), max);
}

#[test]
fn rate_limits_per_origin_and_per_port() {
    // Per port at the capturing relay.
    let limits = RelayLimits {
        per_port_rate: 1,
        per_port_burst: 2,
        ..RelayLimits::default()
    };
    let (mut net, a, _b) = two_with(limits);
    for i in 0..5u8 {
        net.broadcast("one", addr("10.0.0.9:4000"), Scope::Broadcast, PORT, &[i]);
    }
    net.run_for(Duration::from_millis(100));
    let s = net.relay(a).relay_stats().clone();
    assert_eq!((s.carried, s.dropped(RelayDrop::PortRate)), (2, 3));
    assert_eq!(net.emitted_on("two").len(), 2);

    // Per origin at the receiving relay.
    let limits = RelayLimits {
        per_origin_rate: 1,
        per_origin_burst: 2,
        ..RelayLimits::default()
    };
    let (mut net, _a, b) = two_with(limits);
    for i in 0..5u8 {
        net.broadcast("one", addr("10.0.0.9:4000"), Scope::Broadcast, PORT, &[i]);
    }
    net.run_for(Duration::from_millis(100));
    let s = net.relay(b).relay_stats().clone();
    assert_eq!((s.emitted, s.dropped(RelayDrop::OriginRate)), (2, 3));
    // The bucket refills at its rate.
    net.run_for(Duration::from_secs(1));
    net.broadcast(
        "one",
        addr("10.0.0.9:4000"),
        Scope::Broadcast,
        PORT,
        b"later",
    );
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.relay(b).relay_stats().emitted, 3);
}

#[test]
fn tables_stay_bounded_under_a_flood() {
    let limits = RelayLimits {
        echo_entries: 16,
        max_origins: 2,
        per_port_rate: 1_000_000,
        per_port_burst: 1_000_000,
        per_origin_rate: 1_000_000,
        per_origin_burst: 1_000_000,
        ..RelayLimits::default()
    };
    let (mut net, a, b) = two_with(limits);
    // Distinct content, paced so that what is in flight stays within the cache (the
    // cache must hold what one echo window brings: see docs/PROTOCOL.md §14.6).
    for i in 0..500u32 {
        let src = addr("10.0.0.9:4000");
        net.broadcast("one", src, Scope::Broadcast, PORT, &i.to_le_bytes());
        net.run_for(Duration::from_millis(2));
        assert!(net.relay(a).echo.len() <= 16);
        assert!(net.relay(b).echo.len() <= 16);
    }
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.relay(b).relay_stats().emitted, 500);
    // Distinct origins: untrusted ones never take a window; the trusted are bounded.
    let ida = net.relay(a).id();
    for i in 0..50u8 {
        let origin = RelayId(crate::id::ClientId([i; 16]));
        send_raw(
            &mut net,
            a,
            b,
            TARGET,
            CARRY,
            &frame(origin, 1, 1, PORT, &[i]),
        );
    }
    send_raw(
        &mut net,
        a,
        b,
        TARGET,
        CARRY,
        &frame(ida, 1, 1_000, PORT, b"x"),
    );
    assert!(net.relay(b).windows.len() <= 2);
    assert!(net.relay(b).origin_buckets.len() <= 2);
    assert!(net.relay(b).emits.len() <= super::EMIT_QUEUE);
}

fn members(entries: Vec<crate::wire::relay::Member>) -> Vec<u8> {
    let m = crate::wire::relay::Members { entries };
    let mut buf = alloc::vec![0u8; m.buffer_len()];
    m.emit(&mut buf).unwrap();
    buf
}

fn member(k: &KeyPair, at: Option<SocketAddr>, seg: &str) -> crate::wire::relay::Member {
    crate::wire::relay::Member {
        public: *k.public(),
        addr: at,
        up: true,
        segment: seg.into(),
    }
}

#[test]
fn members_naming_untrusted_relays_or_not_led_by_the_sender_are_dropped() {
    let (mut net, a, b) = two_with(RelayLimits::default());
    let ka = super::tests::keys(1);
    let stranger = super::tests::keys(77);
    // An untrusted entry is ignored and counted; the rest of the frame counts.
    let frame = members(alloc::vec![
        member(&ka, None, "renamed"),
        member(&stranger, Some(addr("10.7.7.7:7124")), "x"),
    ]);
    send_raw(&mut net, a, b, TARGET, MEMBERS, &frame);
    assert_eq!(
        net.relay(b).relay_stats().dropped(RelayDrop::UnknownRelay),
        1
    );
    assert_eq!(net.relay(b).peers().len(), 1);
    assert_eq!(net.relay(b).peers()[0].segment, "renamed");
    // A frame whose first entry is not its sender is malformed, and changes nothing.
    let frame = members(alloc::vec![member(&stranger, None, "evil")]);
    send_raw(&mut net, a, b, TARGET, MEMBERS, &frame);
    assert_eq!(net.relay(b).relay_stats().dropped(RelayDrop::Malformed), 1);
    assert_eq!(net.relay(b).peers()[0].segment, "renamed");
}

#[test]
fn a_peer_announcing_a_new_address_for_a_relay_we_see_down_moves_our_client() {
    // A and B configured with each other; C trusted by both but configured with A at an
    // address where it is not.
    let (ka, kb, kc) = (
        super::tests::keys(1),
        super::tests::keys(2),
        super::tests::keys(3),
    );
    let (a, b, c) = (
        addr("10.0.0.1:7124"),
        addr("10.0.1.1:7124"),
        addr("10.0.2.1:7124"),
    );
    let wrong = addr("10.0.2.99:7124");
    let mut net = RelayNet::new();
    net.add(
        a,
        RelayConfig::new(ka.clone(), "one", &[PORT], [1; 32])
            .with_peer(b, *kb.public())
            .with_peer(wrong, *kc.public()),
    );
    net.add(
        b,
        RelayConfig::new(kb.clone(), "two", &[PORT], [2; 32]).with_peer(a, *ka.public()),
    );
    net.run_for(Duration::from_secs(1));
    let idc = RelayId::of(kc.public());
    assert!(!net.relay(a).peers().iter().any(|p| p.relay == idc && p.up));
    // B announces C at its real address and up.
    let frame = members(alloc::vec![
        member(&kb, None, "two"),
        member(&kc, Some(c), "three"),
    ]);
    net.add(
        c,
        RelayConfig::new(kc, "three", &[PORT], [3; 32]).with_trusted(*ka.public()),
    );
    send_raw(&mut net, b, a, TARGET, MEMBERS, &frame);
    net.run_for(Duration::from_secs(2));
    let at_a = net.relay(a).peers();
    let pc = at_a.iter().find(|p| p.relay == idc).unwrap();
    assert_eq!(pc.addr, c);
    assert!(pc.up && pc.configured);
}
