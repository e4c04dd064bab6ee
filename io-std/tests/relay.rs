//! Two relays on loopback: sessions come up, an injected broadcast is carried and emitted by
//! the other relay only, and closing one is reported as its peer going down.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pavillion_proto::endpoint::{RelayConfig, RelayEvent, RelayId, Scope};
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
