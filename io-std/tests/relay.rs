//! Two relays on loopback: sessions come up, an injected broadcast is carried and emitted by
//! the other relay only, and closing one is reported as its peer going down.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use pavillion_proto::endpoint::{RelayConfig, RelayDrop, RelayEvent, RelayId, Scope};
use pavillion_std::keys::{generate_keypair, random32};
use pavillion_std::relay::Emitted;
use pavillion_std::{Relay, RelayNotice, RelayOptions};

fn wait_for(relay: &Relay, what: &str, f: impl FnMut(&RelayNotice) -> bool) -> RelayNotice {
    wait_within(relay, what, Duration::from_secs(10), f)
}

fn wait_within(
    relay: &Relay,
    what: &str,
    limit: Duration,
    mut f: impl FnMut(&RelayNotice) -> bool,
) -> RelayNotice {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(n) = relay.next_notice(Duration::from_millis(100)) {
            if f(&n) {
                return n;
            }
        }
    }
    panic!("{what}: not seen within {limit:?}");
}

fn is_up(n: &RelayNotice, who: RelayId) -> bool {
    matches!(n, RelayNotice::Event(RelayEvent::PeerUp { relay, .. }) if *relay == who)
}

#[test]
fn two_relays_carry_a_broadcast_and_report_peers() {
    let (ka, kb) = (generate_keypair(), generate_keypair());
    let (pa, pb) = (*ka.public(), *kb.public());
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // B first, so that A can name its port; B learns A when A connects (A is trusted).
    let b = Relay::open(RelayOptions {
        config: RelayConfig::new(kb, "seg-b", &[5076], random32()).with_trusted(pa),
        mesh_bind: bind,
        segment: None,
    })
    .unwrap();
    let a = Relay::open(RelayOptions {
        config: RelayConfig::new(ka, "seg-a", &[5076], random32()).with_peer(b.mesh_addr(), pb),
        mesh_bind: bind,
        segment: None,
    })
    .unwrap();
    wait_for(&a, "A sees B up", |n| is_up(n, b.id()));
    wait_for(&b, "B sees A up", |n| is_up(n, a.id()));

    let source: SocketAddr = "10.1.1.7:40000".parse().unwrap();
    a.inject(source, Scope::Broadcast, 5076, b"search");
    let got = wait_for(&b, "B emits the broadcast", |n| {
        matches!(n, RelayNotice::Emitted(_))
    });
    assert_eq!(
        got,
        RelayNotice::Emitted(Emitted {
            source,
            scope: Scope::Broadcast,
            port: 5076,
            payload: b"search".to_vec(),
        })
    );
    let (ra, _) = a.stats().unwrap();
    let (rb, _) = b.stats().unwrap();
    assert_eq!((ra.captured, ra.carried, ra.emitted), (1, 1, 0));
    assert_eq!(rb.emitted, 1);
    // An unconfigured port is not carried.
    a.inject(source, Scope::Broadcast, 9999, b"other");
    assert!(a.peers().unwrap().iter().any(|p| p.relay == b.id() && p.up));

    b.close();
    assert!(b.stats().is_none(), "a closed relay answers nothing");
    // At once: B said it leaves, well before the 4 s down timeout.
    wait_within(
        &a,
        "A sees B down",
        Duration::from_secs(2),
        |n| matches!(n, RelayNotice::Event(RelayEvent::PeerDown { relay }) if *relay == b.id()),
    );
    let (ra, _) = a.stats().unwrap();
    assert_eq!(ra.carried, 1, "nothing more was carried");
    a.close();
}

/// A relay with `lo` as its segment emits what the mesh brings to 127.255.255.255 from its
/// mesh socket (`--source relay`), where a local listener gets it once, and hears its own
/// emission back as an echo instead of carrying it again.
#[test]
fn a_relay_emits_on_its_segment_from_the_mesh_socket() {
    use pavillion_std::segment::{Emission, Interface};
    use pavillion_std::SegmentOptions;
    use socket2::{Domain, Protocol, Socket, Type};

    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listener = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    listener.set_reuse_address(true).unwrap();
    listener.set_reuse_port(true).unwrap();
    listener
        .bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())
        .unwrap();
    let listener: UdpSocket = listener.into();
    listener
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();

    let (ka, kb) = (generate_keypair(), generate_keypair());
    let (pa, pb) = (*ka.public(), *kb.public());
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = Relay::open(RelayOptions {
        config: RelayConfig::new(ka, "lo", &[port], random32()).with_trusted(pb),
        mesh_bind: bind,
        segment: Some(SegmentOptions {
            interface: Interface::lookup("lo").unwrap(),
            groups: Vec::new(),
            emission: Emission::Relay,
        }),
    })
    .unwrap();
    let b = Relay::open(RelayOptions {
        config: RelayConfig::new(kb, "elsewhere", &[port], random32()).with_peer(a.mesh_addr(), pa),
        mesh_bind: bind,
        segment: None,
    })
    .unwrap();
    wait_for(&a, "A sees B up", |n| is_up(n, b.id()));
    wait_for(&b, "B sees A up", |n| is_up(n, a.id()));
    let source: SocketAddr = "10.2.2.2:40000".parse().unwrap();
    b.inject(source, Scope::Broadcast, port, b"from elsewhere");

    let mut buf = [0u8; 100];
    let (n, from) = listener.recv_from(&mut buf).expect("the emission arrives");
    assert_eq!(&buf[..n], b"from elsewhere");
    assert_eq!(from, a.mesh_addr(), "emitted from the mesh socket");
    assert!(listener.recv_from(&mut buf).is_err(), "exactly one copy");
    let (ra, _) = a.stats().unwrap();
    assert_eq!(ra.emitted, 1);
    assert_eq!(ra.carried, 0, "its own emission is not carried back");
    assert_eq!(ra.dropped(RelayDrop::Echo), 1, "it heard its emission back");
}

/// The same for a multicast group carried with `--group`: joined on `lo`, emitted to the group
/// out of `lo`, heard back as an echo.
#[test]
fn a_relay_emits_a_group_on_its_segment_and_hears_it_back() {
    use pavillion_std::segment::{Emission, Interface};
    use pavillion_std::SegmentOptions;
    use socket2::{Domain, Protocol, Socket, Type};
    const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 71, 24);
    use std::net::Ipv4Addr;

    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listener = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    listener.set_reuse_address(true).unwrap();
    listener.set_reuse_port(true).unwrap();
    listener
        .bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())
        .unwrap();
    listener
        .join_multicast_v4(&GROUP, &Ipv4Addr::LOCALHOST)
        .unwrap();
    let listener: UdpSocket = listener.into();
    listener
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();

    let (ka, kb) = (generate_keypair(), generate_keypair());
    let (pa, pb) = (*ka.public(), *kb.public());
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = Relay::open(RelayOptions {
        config: RelayConfig::new(ka, "lo", &[port], random32()).with_trusted(pb),
        mesh_bind: bind,
        segment: Some(SegmentOptions {
            interface: Interface::lookup("lo").unwrap(),
            groups: vec![GROUP],
            emission: Emission::Relay,
        }),
    })
    .unwrap();
    let b = Relay::open(RelayOptions {
        config: RelayConfig::new(kb, "elsewhere", &[port], random32()).with_peer(a.mesh_addr(), pa),
        mesh_bind: bind,
        segment: None,
    })
    .unwrap();
    wait_for(&a, "A sees B up", |n| is_up(n, b.id()));
    wait_for(&b, "B sees A up", |n| is_up(n, a.id()));
    let source: SocketAddr = "10.2.2.2:40000".parse().unwrap();
    b.inject(
        source,
        Scope::Multicast(GROUP.into()),
        port,
        b"from elsewhere",
    );

    let mut buf = [0u8; 100];
    let (n, from) = listener.recv_from(&mut buf).expect("the emission arrives");
    assert_eq!(&buf[..n], b"from elsewhere");
    assert_eq!(from, a.mesh_addr(), "emitted from the mesh socket");
    assert!(listener.recv_from(&mut buf).is_err(), "exactly one copy");
    let (ra, _) = a.stats().unwrap();
    assert_eq!(ra.emitted, 1);
    assert_eq!(ra.carried, 0, "its own emission is not carried back");
    assert_eq!(ra.dropped(RelayDrop::Echo), 1, "it heard its emission back");
}
