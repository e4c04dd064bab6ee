//! The decoded trace's records (`docs/TRACE.md`): kept only when asked, never in the digest,
//! receives matched to the copies they are with the endpoint's drop reason, every endpoint's
//! secrets collected, events serialized as tagged objects.

extern crate alloc;

mod common;

use core::time::Duration;

use common::{client_config, sender, server_config};
use pavillion_proto::endpoint::{
    AuthorityEvent, ClientEvent, CloseReason, FailReason, ReceivedMessage, ServerEvent,
};
use pavillion_proto::keylog::SessionSecret;
use pavillion_proto::{ClientId, MessageId, PeerId};
use pavillion_sim::{
    Fate, LinkFaults, NetAction, ReceiveOutcome, Record, SimConfig, Simulation, Trace,
};
use serde_json::json;

/// A client sending 20 messages over a link with loss and duplication, with a server reboot.
fn run(decoded: bool) -> Simulation {
    let link = LinkFaults::clean()
        .with_loss(0.1)
        .with_duplicate(0.3)
        .with_reorder_jitter(Duration::from_millis(20));
    let config = SimConfig::new(3)
        .with_duration(Duration::from_secs(20))
        .with_link(link)
        .with_decoded_trace(decoded);
    let mut sim = Simulation::new(config).unwrap();
    let server = sim
        .add_server("server", server_config(), |_, _| {})
        .unwrap();
    let script = sender(Duration::from_millis(100), Duration::from_millis(50), 20);
    sim.add_client("client", client_config(server), script)
        .unwrap();
    sim.at(
        Duration::from_millis(600),
        NetAction::Bounce("server".into()),
    );
    sim.run().unwrap();
    sim
}

fn receives(trace: &Trace) -> Vec<&pavillion_sim::ReceiveRecord> {
    trace
        .records()
        .iter()
        .filter_map(|r| match r {
            Record::Receive(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Off by default: no bytes, no receive records, no secrets. On: the same digest and the
/// same version 0 lines, plus what a decoded trace needs.
#[test]
fn a_decoded_trace_adds_records_but_not_to_the_digest() {
    let plain = run(false);
    let decoded = run(true);
    let (p, d) = (plain.trace(), decoded.trace());
    assert_eq!(p.digest(), d.digest());
    assert_eq!(p.to_json_lines(), d.to_json_lines());
    assert!(receives(&p).is_empty());
    assert!(p.datagrams().all(|d| d.bytes.is_none()));
    assert!(p.secrets().is_empty());

    assert!(d
        .datagrams()
        .all(|d| d.bytes.as_ref().map(|b| b.len()) == Some(d.len)));
    assert!(!receives(&d).is_empty());
    // Suite 1 sessions: before and after the server's reboot, each logged once.
    let s1 = d
        .secrets()
        .iter()
        .filter(|s| matches!(s, SessionSecret::Reference { .. }))
        .count();
    assert!(s1 >= 2, "{:?}", d.secrets());
    assert_eq!(d.capture().copies.len(), d.datagrams().count());
}

/// Every receive names a copy sent to that address before it (lost copies never), copies
/// arrive at most once, and the duplicates the endpoint threw away are dropped with a reason.
#[test]
fn receives_name_their_copies_and_drops_their_reason() {
    let sim = run(true);
    let trace = sim.trace();
    let sent: Vec<_> = trace.datagrams().collect();
    let mut seen = alloc::collections::BTreeSet::new();
    let mut dropped = 0;
    for r in receives(&trace) {
        let id = r.id.expect("no forgery in this run");
        let copy = sent[usize::try_from(id).unwrap()];
        assert_eq!(
            (copy.to, copy.from, copy.len),
            (r.to, r.from, r.len),
            "{r:?}"
        );
        // No copy arrives before its reordering delay has passed: a duplicate that overtook
        // its delayed twin is matched to itself.
        assert!(
            copy.at + Duration::from_micros(copy.delay_us) <= r.at,
            "{r:?} {copy:?}"
        );
        assert!(!matches!(copy.fate, Fate::Lost | Fate::Blocked), "{r:?}");
        assert!(seen.insert(id), "copy {id} received twice");
        if let ReceiveOutcome::Dropped(reason) = r.outcome {
            dropped += 1;
            assert!(reason.is_some(), "{r:?}");
        }
    }
    assert!(dropped > 0, "duplicates are dropped");
    let lost = sent.iter().filter(|d| d.fate == Fate::Lost).count();
    assert!(lost > 0);
}

/// Events serialize internally tagged by `kind`, with ids as numbers, bytes as hex,
/// durations in microseconds and reasons in snake_case.
#[test]
fn events_serialize_as_tagged_objects() {
    let addr: core::net::SocketAddr = "10.0.0.2:40000".parse().unwrap();
    let v = |e: &dyn erased::Ser| e.json();
    assert_eq!(
        v(&ClientEvent::Delivered {
            id: MessageId(5),
            acked: pavillion_proto::endpoint::Receivers::one(addr),
            missing: vec![]
        }),
        json!({"kind": "delivered", "id": 5, "acked": ["10.0.0.2:40000"], "missing": []})
    );
    assert_eq!(
        v(&ClientEvent::Failed {
            id: MessageId(1),
            reason: FailReason::PeerClosed
        }),
        json!({"kind": "failed", "id": 1, "reason": "peer_closed"})
    );
    assert_eq!(
        v(&ClientEvent::Disconnected {
            addr,
            reason: CloseReason::LocallyClosed
        }),
        json!({"kind": "disconnected", "addr": "10.0.0.2:40000", "reason": "locally_closed"})
    );
    let peer = PeerId::Client(ClientId([0xab; 16]));
    let message = ReceivedMessage::new(addr, "t", "n", b"\x01hi", true);
    assert_eq!(
        v(&ServerEvent::Message {
            peer,
            message: message.clone()
        }),
        json!({"kind": "message", "peer": {"client": "ab".repeat(16)}, "message": {
            "from": "10.0.0.2:40000", "target": "t", "name": "n", "payload": "016869",
            "reliable": true}})
    );
    assert_eq!(
        v(&ClientEvent::Message(message)),
        json!({"kind": "message", "from": "10.0.0.2:40000", "target": "t", "name": "n",
            "payload": "016869", "reliable": true})
    );
    let id = pavillion_proto::features::authority::MemberId(ClientId([1; 16]));
    assert_eq!(
        v(&AuthorityEvent::LockedOut {
            id,
            duration: Duration::from_millis(1500)
        }),
        json!({"kind": "locked_out", "id": "01".repeat(16), "duration": 1_500_000})
    );
}

/// `serde_json::to_value` over the event types, behind one object-safe trait.
mod erased {
    pub(crate) trait Ser {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("every event serializes")
        }
    }
}
