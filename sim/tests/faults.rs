//! Reliable delivery over faulty links: loss, duplication, corruption and reordering.

extern crate alloc;

mod common;

use core::time::Duration;

use common::*;
use pavillion_sim::{Fate, LinkFaults, SimConfig, Simulation};

#[test]
fn hundred_messages_under_30_percent_loss_arrive_exactly_once() {
    let link = LinkFaults::clean().with_loss(0.3);
    // The session's RTO backs off to its 4 s ceiling under this much loss, so the last
    // messages take a while.
    let config = SimConfig::new(11)
        .with_duration(Duration::from_secs(90))
        .with_link(link);
    let mut sim = Simulation::new(config).unwrap();
    let server = sim
        .add_server("server", server_config(), |_, _| {})
        .unwrap();
    let sender = sender(Duration::from_millis(100), Duration::from_millis(20), 100);
    sim.add_client("client", client_config(server), sender)
        .unwrap();
    sim.run().unwrap();

    let trace = sim.trace();
    assert_exactly_once(&trace, "server", 100);
    assert_eq!(delivered(&trace, "client").len(), 100);
    let lost = trace.datagrams().filter(|d| d.fate == Fate::Lost).count();
    assert!(lost > 30, "the link lost only {lost}");
}

#[test]
fn duplication_corruption_and_reordering_still_deliver_exactly_once() {
    let link = LinkFaults::clean()
        .with_loss(0.05)
        .with_duplicate(0.3)
        .with_corrupt(0.2)
        .with_reorder_jitter(Duration::from_millis(30));
    let config = SimConfig::new(12)
        .with_duration(Duration::from_secs(30))
        .with_link(link);
    let mut sim = Simulation::new(config).unwrap();
    let server = sim
        .add_server("server", server_config(), |_, _| {})
        .unwrap();
    let sender = sender(Duration::from_millis(100), Duration::from_millis(5), 100);
    sim.add_client("client", client_config(server), sender)
        .unwrap();
    sim.run().unwrap();

    let trace = sim.trace();
    assert_exactly_once(&trace, "server", 100);
    assert_eq!(delivered(&trace, "client").len(), 100);
    for fate in [Fate::Duplicate, Fate::Corrupted] {
        assert!(trace.datagrams().any(|d| d.fate == fate), "no {fate:?}");
    }
    assert!(trace.datagrams().any(|d| d.delay_us > 0));
}
