//! Every scenario over every suite, for a small seed set: its assertions hold, the same seed
//! gives the same outcome and digest, and different seeds give different digests.
//!
//! The soak (`cargo run --release -p pavillion-scenarios -- --seeds 1000`) runs the same
//! scenarios over many more seeds; see the README.

use pavillion_scenarios::{find, Params, SCENARIOS};

/// Seed 1 runs twice (determinism), seed 2 once (different seeds differ).
fn check(name: &str) {
    let scenario = find(name).expect("registered");
    assert!(!scenario.suites.is_empty(), "{name} runs over no suite");
    for &suite in scenario.suites {
        let run = |seed| (scenario.run)(&Params::new(seed, suite));
        let first = run(1);
        assert!(
            first.passed(),
            "{name} {suite} seed 1: {:#?}",
            first.failures
        );
        assert!(first.sent > 0, "{name} {suite}: nothing was sent");
        assert_eq!(first.digest.len(), 64);
        let again = run(1);
        assert_eq!(first, again, "{name} {suite}: seed 1 ran differently twice");
        let other = run(2);
        assert!(
            other.passed(),
            "{name} {suite} seed 2: {:#?}",
            other.failures
        );
        assert_ne!(
            first.digest, other.digest,
            "{name} {suite}: seeds 1 and 2 gave the same digest"
        );
    }
}

macro_rules! scenario_tests {
    ($($(#[$attr:meta])* $test:ident => $name:literal,)*) => {
        $(
            #[test]
            $(#[$attr])*
            fn $test() {
                check($name);
            }
        )*

        #[test]
        fn every_registered_scenario_has_a_test() {
            let tested = [$($name),*];
            for s in SCENARIOS {
                assert!(tested.contains(&s.name), "no test runs `{}`", s.name);
            }
        }
    };
}

scenario_tests! {
    clean => "clean",
    loss_10 => "loss-10",
    loss_30 => "loss-30",
    loss_50 => "loss-50",
    dup_reorder => "dup-reorder",
    ordered_delivery => "ordered-delivery",
    server_reboot => "server-reboot",
    server_quit => "server-quit",
    client_reboot => "client-reboot",
    partition => "partition",
    multicast => "multicast",
    nat_rebind => "nat-rebind",
    hairpin => "hairpin",
    adversary_replay => "adversary-replay",
    adversary_forgery => "adversary-forgery",
    adversary_flood => "adversary-flood",
    adversary_spoof => "adversary-spoof",
    flood_first => "flood-first",
    flood_reboot => "flood-reboot",
    clients_1000 => "clients-1000",
    // Minutes in a debug build; the release runner replays it (one seed by default).
    #[ignore = "10,000 clients: run with --release -- --ignored, or through the runner"]
    clients_10000 => "clients-10000",
    large_message_10 => "large-message-10",
    large_message_30 => "large-message-30",
    reassembly_flood => "reassembly-flood",
    register_observe => "register-observe",
    relay_mesh => "relay-mesh",
    relay_failover => "relay-failover",
    relay_partition => "relay-partition",
    relay_adversary => "relay-adversary",
    relay_group => "relay-group",
    authority_join => "authority-join",
    authority_spoof => "authority-spoof",
    authority_revoke => "authority-revoke",
    authority_reboot => "authority-reboot",
    durable_loss => "durable-loss",
    durable_reboots => "durable-reboots",
    burst_1000 => "burst-1000",
    handoff_faults => "handoff-faults",
}

#[test]
fn a_trace_is_kept_only_when_asked_and_matches_the_digest() {
    let scenario = find("clean").unwrap();
    let suite = scenario.suites[0];
    let plain = (scenario.run)(&Params::new(5, suite));
    assert!(plain.trace.is_none());
    let traced = (scenario.run)(&Params {
        trace: true,
        ..Params::new(5, suite)
    });
    let lines = traced.trace.as_deref().unwrap();
    // Format version 1 (docs/TRACE.md): a header, then records that start with their time.
    let (header, records) = lines.split_once('\n').unwrap();
    assert!(header.starts_with("{\"type\":\"header\""), "{header}");
    assert!(records.lines().all(|l| l.starts_with("{\"t\":")));
    assert_eq!(traced.digest, plain.digest);
}

#[test]
fn a_loss_override_changes_the_run() {
    let scenario = find("clean").unwrap();
    let suite = scenario.suites[0];
    let clean = (scenario.run)(&Params::new(1, suite));
    let lossy = (scenario.run)(&Params {
        loss: Some(0.2),
        ..Params::new(1, suite)
    });
    assert_ne!(clean.digest, lossy.digest);
    assert!(lossy.retransmissions > 0);
    assert!(lossy.passed(), "{:?}", lossy.failures);
}
