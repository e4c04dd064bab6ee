//! Durable hosts: the model store outlives reboots, a crash in a commit loses only what was
//! not committed, and durable messages still arrive exactly once.

extern crate alloc;

mod common;

use alloc::rc::Rc;
use core::cell::RefCell;
use core::time::Duration;

use common::*;
use pavillion_proto::endpoint::{Client, Server, ServerEvent};
use pavillion_proto::features::durable::DurableTable;
use pavillion_sim::{
    ClientSpec, InCommit, NetAction, Script, ServerSpec, SimConfig, Simulation, StoreSpec,
};

/// What the server's application consumed, by payload, and how often it was handed a
/// redelivery.
type Consumed = Rc<RefCell<(Vec<String>, u32)>>;

/// A durable client sends `count` messages, one every 50 ms from 100 ms, to a durable server
/// whose application consumes each at once (no mark: the test counts consumptions).
fn durable_pair(seed: u64, count: usize) -> (Simulation, Consumed) {
    let config = SimConfig::new(seed).with_duration(Duration::from_secs(30));
    let mut sim = Simulation::new(config).unwrap();
    let consumed: Consumed = Rc::default();
    let c2 = consumed.clone();
    let app = Script::<Server>::new().on_event(move |ctl, e| {
        if let ServerEvent::DurableMessage {
            peer,
            id,
            message,
            redelivered,
        } = e
        {
            let now = ctl.now();
            assert!(ctl.endpoint().consume_durable(now, peer, id, None));
            let mut c = c2.borrow_mut();
            c.0.push(String::from_utf8_lossy(message.payload()).into_owned());
            c.1 += u32::from(redelivered);
        }
    });
    let spec = ServerSpec::new(server_config()).with_store(StoreSpec::default());
    let server = sim.add_server_script("server", spec, app).unwrap();
    let script = Script::<Client>::new().repeat(
        Duration::from_millis(100),
        Duration::from_millis(50),
        count,
        |ctl, i| {
            let now = ctl.now();
            let payload = i.to_string();
            ctl.endpoint()
                .send_durable(now, "t", "n", payload.as_bytes(), None)
                .expect("durable send");
        },
    );
    let spec = ClientSpec::from(client_config(server)).with_store(StoreSpec::default());
    sim.add_client("client", spec, script).unwrap();
    (sim, consumed)
}

/// The server crashes in the middle of a commit and is back 2 s later; the client reboots
/// too. Every message is consumed; whatever was consumed twice was a redelivery from the
/// inbox (its consume was in the lost commit), never a second copy of the network's.
#[test]
fn crashes_in_commits_lose_only_uncommitted_batches() {
    let (mut sim, consumed) = durable_pair(3, 40);
    sim.at(
        Duration::from_millis(700),
        NetAction::CrashInCommit("server".into(), InCommit::Any, Duration::from_secs(2)),
    );
    sim.at(
        Duration::from_millis(1500),
        NetAction::CrashInCommit("client".into(), InCommit::Any, Duration::from_millis(500)),
    );
    sim.run().unwrap();

    let server = sim.store_stats("server");
    assert_eq!(server.crashes_in_commit, 1, "{server:?}");
    assert!(server.lost_batches >= 1, "{server:?}");
    assert_eq!(server.restores, 1, "{server:?}");
    let client = sim.store_stats("client");
    assert_eq!(client.crashes_in_commit, 1, "{client:?}");
    assert_eq!(sim.stats("server").len(), 2);
    assert_eq!(sim.stats("client").len(), 2);

    let (log, redelivered) = &*consumed.borrow();
    let mut once = log.clone();
    once.sort_unstable();
    once.dedup();
    // The client re-sent nothing it lost: its sends before the crash are either stored
    // (and retried) or lost with their batch (never transmitted), so only messages from the
    // client's script that ran are expected, each once plus inbox redeliveries.
    assert!(log.len() - once.len() <= *redelivered as usize, "{log:?}");
    let outbox = sim
        .durable_rows("client")
        .keys()
        .filter(|(t, _)| *t == DurableTable::Outbox)
        .count();
    let inbox = sim
        .durable_rows("server")
        .keys()
        .filter(|(t, _)| *t == DurableTable::Inbox)
        .count();
    assert_eq!((outbox, inbox), (0, 0));
}

/// The same seed gives the same digest with durable hosts (store delays are seeded).
#[test]
fn durable_hosts_are_deterministic() {
    let digest = |seed| {
        let (mut sim, _) = durable_pair(seed, 10);
        sim.at(
            Duration::from_millis(400),
            NetAction::CrashInCommit("server".into(), InCommit::Any, Duration::from_secs(1)),
        );
        sim.run().unwrap();
        sim.digest()
    };
    assert_eq!(digest(5), digest(5));
    assert_ne!(digest(5), digest(6));
}
