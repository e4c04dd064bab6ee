//! Two async relays on loopback (no segment: datagrams are injected and emissions reported):
//! sessions come up, an injected broadcast is carried and emitted by the other relay only, and
//! closing one is reported as its peer going down.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use async_io::Timer;
use futures_lite::future;
use pavillion_io::keys::{generate_keypair, random32};
use pavillion_proto::endpoint::{RelayConfig, RelayDrop, RelayEvent, RelayId, Scope};
use pavillion_smol::relay::Emitted;
use pavillion_smol::{Relay, RelayNotice, RelayOptions};

/// Runs `test` on `smol::block_on`, failing it if it takes longer than `limit`.
fn within<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test took longer than {limit:?}");
    }))
}

async fn wait_for(relay: &Relay, mut f: impl FnMut(&RelayNotice) -> bool) -> RelayNotice {
    loop {
        let n = relay.next_notice().await.expect("relay still open");
        if f(&n) {
            return n;
        }
    }
}

fn is_up(n: &RelayNotice, who: RelayId) -> bool {
    matches!(n, RelayNotice::Event(RelayEvent::PeerUp { relay, .. }) if *relay == who)
}

#[test]
fn two_async_relays_carry_a_broadcast_and_report_peers() {
    within(Duration::from_secs(20), async {
        let (ka, kb) = (generate_keypair(), generate_keypair());
        let (pa, pb) = (*ka.public(), *kb.public());
        let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut cb = RelayConfig::new(kb, "seg-b", &[5076], random32()).with_trusted(pa);
        // Quick down detection, so the test does not wait out the default 4 s.
        cb.limits.keepalive = Duration::from_millis(100);
        cb.limits.down_after = Duration::from_millis(500);
        let b = Relay::open(RelayOptions {
            config: cb,
            mesh_bind: bind,
            segment: None,
        })
        .unwrap();
        let mut ca =
            RelayConfig::new(ka, "seg-a", &[5076], random32()).with_peer(b.mesh_addr(), pb);
        ca.limits.keepalive = Duration::from_millis(100);
        ca.limits.down_after = Duration::from_millis(500);
        let a = Relay::open(RelayOptions {
            config: ca,
            mesh_bind: bind,
            segment: None,
        })
        .unwrap();
        wait_for(&a, |n| is_up(n, b.id())).await;
        wait_for(&b, |n| is_up(n, a.id())).await;

        let source: SocketAddr = "10.1.1.7:40000".parse().unwrap();
        a.inject(source, Scope::Broadcast, 5076, b"search");
        let got = wait_for(&b, |n| matches!(n, RelayNotice::Emitted(_))).await;
        assert_eq!(
            got,
            RelayNotice::Emitted(Emitted {
                source,
                scope: Scope::Broadcast,
                port: 5076,
                payload: b"search".to_vec(),
            })
        );
        // An unconfigured port is dropped, not carried.
        a.inject(source, Scope::Broadcast, 9999, b"other");
        let (ra, _) = a.stats().await.unwrap();
        assert_eq!((ra.captured, ra.carried, ra.emitted), (2, 1, 0));
        assert_eq!(ra.dropped(RelayDrop::UnknownPort), 1);
        let (rb, _) = b.stats().await.unwrap();
        // `received` counts membership announcements too; one datagram was emitted.
        assert_eq!((rb.captured, rb.emitted, rb.carried), (0, 1, 0));
        assert!(a
            .peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.relay == b.id() && p.up));

        b.close().await;
        assert!(b.stats().await.is_none(), "a closed relay answers nothing");
        wait_for(
            &a,
            |n| matches!(n, RelayNotice::Event(RelayEvent::PeerDown { relay }) if *relay == b.id()),
        )
        .await;
        a.close().await;
    });
}

/// The capture path on real sockets: relay A captures on `lo` (a broadcast to
/// `127.255.255.255`, never a real interface), carries it, and B (no segment) emits it with
/// the original sender as source. A unicast to the same port is not captured.
#[test]
fn a_broadcast_on_loopback_is_captured_and_carried() {
    use pavillion_io::segment::{Emission, Interface};
    use pavillion_smol::SegmentOptions;
    use std::net::UdpSocket;

    within(Duration::from_secs(20), async {
        let lo = Interface::lookup("lo").unwrap();
        let port = {
            // A port nothing else here uses: let the kernel pick one, then free it.
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let (ka, kb) = (generate_keypair(), generate_keypair());
        let (pa, pb) = (*ka.public(), *kb.public());
        let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let b = Relay::open(RelayOptions {
            config: RelayConfig::new(kb, "seg-b", &[port], random32()).with_trusted(pa),
            mesh_bind: bind,
            segment: None,
        })
        .unwrap();
        let a = Relay::open(RelayOptions {
            config: RelayConfig::new(ka, &lo.network(), &[port], random32())
                .with_peer(b.mesh_addr(), pb),
            mesh_bind: bind,
            segment: Some(SegmentOptions {
                interface: lo.clone(),
                groups: Vec::new(),
                emission: Emission::Relay,
            }),
        })
        .unwrap();
        wait_for(&a, |n| is_up(n, b.id())).await;
        wait_for(&b, |n| is_up(n, a.id())).await;

        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.set_broadcast(true).unwrap();
        // Unicast first: the relay must not see it.
        sender.send_to(b"unicast", ("127.0.0.1", port)).unwrap();
        sender.send_to(b"search", (lo.broadcast, port)).unwrap();
        let got = wait_for(&b, |n| matches!(n, RelayNotice::Emitted(_))).await;
        assert_eq!(
            got,
            RelayNotice::Emitted(Emitted {
                source: sender.local_addr().unwrap(),
                scope: Scope::Broadcast,
                port,
                payload: b"search".to_vec(),
            })
        );
        let (ra, _) = a.stats().await.unwrap();
        assert_eq!(
            (ra.captured, ra.carried),
            (1, 1),
            "only the broadcast is captured"
        );
        b.close().await;
        a.close().await;
    });
}
