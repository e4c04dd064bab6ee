//! Same seed, same digest; different seeds, different digests.

extern crate alloc;

mod common;

use core::time::Duration;

use common::*;
use pavillion_proto::endpoint::{ClientEvent, ServerEvent};
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::FunctionId;
use pavillion_sim::{LinkFaults, NetAction, ServerSpec, SimConfig, Simulation};

/// A run with every kind of randomness: link faults, reordering, a reboot and RPC.
fn digest(seed: u64) -> (String, usize) {
    let link = LinkFaults::clean()
        .with_loss(0.1)
        .with_duplicate(0.1)
        .with_corrupt(0.05)
        .with_reorder_jitter(Duration::from_millis(5));
    let config = SimConfig::new(seed)
        .with_duration(Duration::from_secs(10))
        .with_link(link);
    let mut sim = Simulation::new(config).unwrap();
    let spec = ServerSpec::new(server_config()).with_function(FunctionId(401), "double");
    let server = sim
        .add_server("server", spec, |ctl, event| {
            if let ServerEvent::RpcRequest(req) = event {
                let mut out = req.args.to_vec();
                out.extend_from_slice(&req.args);
                let _ = ctl.respond(req.call, RpcStatus::OK, &out);
            }
        })
        .unwrap();
    let script = sender(Duration::from_millis(100), Duration::from_millis(10), 30).repeat(
        Duration::from_millis(150),
        Duration::from_millis(30),
        10,
        |ctl, i| {
            let _ = ctl.call(FunctionId(401), &[i as u8], None);
        },
    );
    sim.add_client("client", client_config(server), script)
        .unwrap();
    sim.at(Duration::from_secs(2), NetAction::Bounce("server".into()));
    sim.run().unwrap();
    let trace = sim.trace();
    let answered = trace
        .client_events("client")
        .filter(|(_, e)| matches!(e, ClientEvent::Answered { .. }))
        .count();
    (trace.digest(), answered)
}

#[test]
fn same_seed_same_digest_different_seed_different_digest() {
    let (a, answered) = digest(41);
    assert!(answered > 0, "no RPC was answered");
    assert_eq!(digest(41).0, a);
    assert_ne!(digest(42).0, a);
}
