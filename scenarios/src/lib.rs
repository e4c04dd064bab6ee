//! Named, seeded network scenarios over [`pavillion_sim`], each with assertions on its outcome.
//!
//! A [`Scenario`] is a function from [`Params`] (a seed, a cipher [`Suite`], an optional loss
//! override) to an [`Outcome`]: what was sent and delivered, duplicates, acknowledged messages
//! that were lost, latency percentiles in simulated time, retransmissions, handshakes, the time
//! to reconnect after the scenario's disruption, the trace digest and the assertions that
//! failed. Assertions never panic: they are collected in [`Outcome::failures`], so that a
//! runner can tabulate many runs.
//!
//! [`SCENARIOS`] lists them all; the `pavillion-scenarios` binary replays them over many seeds
//! and prints a table ([`report`]).
//!
//! # Exactly once
//! Every scenario asserts that no receiver got a message twice within one incarnation
//! (`duplicates == 0`) and that every message its sender saw acknowledged reached the
//! receiving application (`lost_acked == 0`). A server that reboots may legitimately get a
//! message again, when the ACK of its first delivery died with the old process and the sender
//! retried: those are counted in [`Outcome::redelivered`], not as failures.
//!
//! # Determinism
//! The same [`Params`] always give the same [`Outcome::digest`].
//!
//! # Examples
//! ```
//! use pavillion_scenarios::{find, Params, Suite};
//! let scenario = find("clean").unwrap();
//! let outcome = (scenario.run)(&Params::new(1, Suite::Psk));
//! assert!(outcome.passed(), "{:?}", outcome.failures);
//! assert_eq!(outcome.delivered, outcome.sent);
//! ```
#![forbid(unsafe_code)]
#![deny(unused_must_use, missing_docs)]

extern crate alloc;

mod authority;
mod burst;
pub mod chart;
mod durable;
mod handoff;
mod harness;
mod mesh;
pub mod oracle;
mod outcome;
pub mod pcap;
pub mod plot;
pub mod report;
mod scenarios;
mod segments;
mod suite;

pub use outcome::{Failure, Latency, Outcome, MAX_LATENCY_SAMPLES};
pub use suite::{client_id, Suite};

/// What one run of a scenario varies.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Seeds the simulation: the same seed gives the same run.
    pub seed: u64,
    /// The cipher suite every endpoint uses.
    pub suite: Suite,
    /// Replaces the loss probability of the scenario's links (`0.0..=1.0`). Assertions are
    /// tuned for the scenario's own loss, so a higher one may make them fail.
    pub loss: Option<f64>,
    /// Keep the run's decoded trace (format version 1, `docs/TRACE.md`) in
    /// [`Outcome::trace`], and its datagrams and secrets in [`Outcome::capture`].
    pub trace: bool,
    /// The scenario's name, for a decoded trace's header (the runner sets it; empty by
    /// default).
    pub scenario: &'static str,
}

impl Params {
    /// A run with `seed` and `suite`, the scenario's own loss and no trace kept.
    pub const fn new(seed: u64, suite: Suite) -> Self {
        Params {
            seed,
            suite,
            loss: None,
            trace: false,
            scenario: "",
        }
    }
}

/// A named scenario.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// A short unique name, for `--only`.
    pub name: &'static str,
    /// One line on what it does and asserts.
    pub description: &'static str,
    /// The suites it runs over.
    pub suites: &'static [Suite],
    /// Runs it once.
    pub run: fn(&Params) -> Outcome,
}

/// Scenarios too costly to replay over every seed of a run: the runner gives each at most
/// this many seeds unless `--only` names it. `clients-10000` simulates 10,000 handshakes per
/// suite (about 5 to 35 s of CPU a seed); one seed keeps the default run within CI's time, and
/// `clients-1000` covers the storm over every seed.
pub static SEED_CAPS: &[(&str, u64)] = &[("clients-10000", 1)];

/// The most seeds the default run gives scenario `name` (see [`SEED_CAPS`]).
pub fn seed_cap(name: &str) -> Option<u64> {
    SEED_CAPS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, cap)| *cap)
}

/// Every scenario, in the order the runner replays them.
pub static SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "clean",
        description: "100 messages over a clean 1 ms link: all delivered, no retransmission",
        suites: Suite::ALL,
        run: scenarios::clean,
    },
    Scenario {
        name: "loss-10",
        description: "100 messages, 10% loss each way: all delivered exactly once",
        suites: Suite::ALL,
        run: scenarios::loss_10,
    },
    Scenario {
        name: "loss-30",
        description: "100 messages, 30% loss each way: all delivered exactly once",
        suites: Suite::ALL,
        run: scenarios::loss_30,
    },
    Scenario {
        name: "loss-50",
        description: "100 messages, 50% loss each way: at least 95% within the 120 s deadline",
        suites: Suite::ALL,
        run: scenarios::loss_50,
    },
    Scenario {
        name: "dup-reorder",
        description: "30% duplication and 30 ms reordering jitter: exactly once",
        suites: Suite::ALL,
        run: scenarios::dup_reorder,
    },
    Scenario {
        name: "ordered-delivery",
        description: "ordered messages on two targets each way, 10% loss, 30% duplication, \
                      30 ms reordering: each target in send order, once, complete",
        suites: Suite::ALL,
        run: scenarios::ordered_delivery,
    },
    Scenario {
        name: "server-reboot",
        description: "server down from 0.8 s to 2 s mid-stream: everything queued arrives",
        suites: Suite::ALL,
        run: scenarios::server_reboot,
    },
    Scenario {
        name: "server-quit",
        description: "server quits at 1.5 s, back at 3 s: the idle client is back within 1 s",
        suites: Suite::ALL,
        run: scenarios::server_quit,
    },
    Scenario {
        name: "client-reboot",
        description: "client down from 1 s to 1.5 s: it re-handshakes and its new sends arrive",
        suites: Suite::ALL,
        run: scenarios::client_reboot,
    },
    Scenario {
        name: "partition",
        description: "link cut from 2 s to 10 s: PeerDown then PeerUp on both sides",
        suites: Suite::ALL,
        run: scenarios::partition,
    },
    Scenario {
        name: "multicast",
        description: "3 servers, 2 clients; one server dies (named in `missing`), one joins late",
        suites: Suite::ALL,
        run: scenarios::multicast,
    },
    Scenario {
        name: "nat-rebind",
        description: "NAT mapping expires between bursts: reconnect (suites 1, 2) or keep the session (suite 3)",
        suites: Suite::ALL,
        run: scenarios::nat_rebind,
    },
    Scenario {
        name: "hairpin",
        description: "client and server behind one NAT, reachable only by hairpin",
        suites: Suite::ALL,
        run: scenarios::hairpin,
    },
    Scenario {
        name: "adversary-replay",
        description: "on-path adversary replays 600 datagrams: no duplicate delivery",
        suites: Suite::ALL,
        run: scenarios::adversary_replay,
    },
    Scenario {
        name: "adversary-forgery",
        description: "adversary flips bits and forges 50 session packets: all rejected",
        suites: Suite::ALL,
        run: scenarios::adversary_forgery,
    },
    Scenario {
        name: "adversary-flood",
        description: "100k forged sources/s and 2000 requests from 100 ports: a new client connects within 1 s, no amplification",
        suites: Suite::ALL,
        run: scenarios::adversary_flood,
    },
    Scenario {
        name: "adversary-spoof",
        description: "op 4, op 5 and op 6 spoofed at the client 1000/s: no forced re-handshake, at most 1 probe (and op 1) /s",
        suites: Suite::ALL,
        run: scenarios::adversary_spoof,
    },
    Scenario {
        name: "flood-first",
        description: "100k forged sources/s from before the client's first handshake: it connects within 1 s",
        suites: Suite::ALL,
        run: scenarios::flood_first,
    },
    Scenario {
        name: "flood-reboot",
        description: "server reboots under 100k forged sources/s: the client is back within 1 s of its return",
        suites: Suite::ALL,
        run: scenarios::flood_reboot,
    },
    Scenario {
        name: "clients-1000",
        description: "1000 clients on one server, two messages each: all connect and deliver",
        suites: Suite::ALL,
        run: scenarios::clients_1000,
    },
    Scenario {
        name: "clients-10000",
        description: "10000 clients on one server, two messages each: all connect and deliver",
        suites: Suite::ALL,
        run: scenarios::clients_10000,
    },
    Scenario {
        name: "large-message-10",
        description: "one 4 MiB message, 10% loss each way: delivered whole and once (segments)",
        suites: Suite::ALL,
        run: segments::large_message_10,
    },
    Scenario {
        name: "large-message-30",
        description: "one 4 MiB message, 30% loss each way: delivered whole and once (segments)",
        suites: Suite::ALL,
        run: segments::large_message_30,
    },
    Scenario {
        name: "reassembly-flood",
        description: "clients announce 1 MB messages and send one segment each: memory within budget, honest traffic unaffected",
        suites: Suite::ALL,
        run: segments::reassembly_flood,
    },
    Scenario {
        name: "register-observe",
        description: "a register observed across a server reboot: every change after the observation is renewed is notified",
        suites: Suite::ALL,
        run: scenarios::register_observe,
    },
    Scenario {
        name: "relay-mesh",
        description: "3 segments, 2 relays each, 30 broadcasts per segment: every station hears each exactly once, with its original source; no storm",
        suites: &[Suite::Noise],
        run: mesh::relay_mesh,
    },
    Scenario {
        name: "relay-failover",
        description: "every segment's emitting relay dies at 5 s: never a duplicate; exactly once again from 10 s (down_after + 1 s)",
        suites: &[Suite::Noise],
        run: mesh::relay_failover,
    },
    Scenario {
        name: "relay-partition",
        description: "relays of segments 1 and 2 cut from 5 s to 12 s: broadcasts go around through segment 3 (hop limit 2), straight again after; never a duplicate",
        suites: &[Suite::Noise],
        run: mesh::relay_partition,
    },
    Scenario {
        name: "relay-adversary",
        description: "mesh packets replayed, forged and flooded at the relays from 4.5 s to 7.5 s: nothing emitted that no station sent, every broadcast heard exactly once, drops counted",
        suites: &[Suite::Noise],
        run: mesh::relay_adversary,
    },
    Scenario {
        name: "relay-group",
        description: "a client of a group on segment 1 sends 50 messages to 255.255.255.255: the server on segment 2 gets each exactly once through the relays",
        suites: &[Suite::Noise],
        run: mesh::relay_group,
    },
    Scenario {
        name: "authority-join",
        description: "50 members join an authority (6 listed, 44 by enrolment secret) at 5% loss; an intruder with a wrong secret, restarted every second: all 50 admitted, the intruder locked out and never admitted, every roster at the final version with 50 entries, versions in increasing order",
        suites: &[Suite::Noise],
        run: authority::authority_join,
    },
    Scenario {
        name: "authority-spoof",
        description: "an adversary with no fleet key floods the authority from member P's address (initiations under its own keys, garbage) and fails proofs under its own keys while P reboots twice: P admitted at every start, never refused, locked or cut off; the attacker's keys locked",
        suites: &[Suite::Noise],
        run: authority::authority_spoof,
    },
    Scenario {
        name: "authority-revoke",
        description: "6 members call each other at 5% loss; one is revoked at 6 s: every other member drops it within 3 s (time in the notes) and answers none of its calls after",
        suites: &[Suite::Noise],
        run: authority::authority_revoke,
    },
    Scenario {
        name: "authority-reboot",
        description: "the authority is down from 8 s to 28 s and restarts from its records: members' calls to each other answered during the outage, none failed; versions continue upward, no reset; presence converges",
        suites: &[Suite::Noise],
        run: authority::authority_reboot,
    },
    Scenario {
        name: "durable-loss",
        description: "300 durable messages at 10% loss each way, no reboot: the server's output log holds each exactly once, every one acknowledged, both stores drained (baseline of durable-reboots)",
        suites: Suite::ALL,
        run: durable::durable_loss,
    },
    Scenario {
        name: "durable-reboots",
        description: "300 durable messages at 5% loss; client and server each reboot 4 times (2 in the middle of a commit) and the link is cut for 2 to 5 minutes mid-stream: the output log holds each exactly once (consume mark), the sender resumes from its send mark, redeliv 0",
        suites: Suite::ALL,
        run: durable::durable_reboots,
    },
    Scenario {
        name: "burst-1000",
        description: "1000 messages queued at once, 10% loss each way: exactly once; notes \
                      the client's datagrams per message (suite 3 batches them)",
        suites: Suite::ALL,
        run: burst::burst_1000,
    },
    Scenario {
        name: "handoff-faults",
        description: "a bridge holds each ACK until its broker answers (20-200 ms), refuses one \
                      first delivery in ten, drops the client once and crashes once, 20% loss: \
                      every acknowledged message was in the broker first, every message gets \
                      there, the drop frees the held messages at once",
        suites: Suite::ALL,
        run: handoff::handoff_faults,
    },
];

/// Names that select several scenarios on the runner's `--only`: a group and its members'
/// common prefix (a member is `PREFIX-...`).
pub static GROUPS: &[&str] = &["durable"];

/// Whether `--only NAME` selects `scenario`: its own name, or a group it belongs to.
pub fn selects(name: &str, scenario: &Scenario) -> bool {
    scenario.name == name
        || (GROUPS.contains(&name)
            && scenario
                .name
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('-')))
}

/// The scenario named `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// The names of every scenario, in order.
pub fn names() -> impl Iterator<Item = &'static str> {
    SCENARIOS.iter().map(|s| s.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = names().collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len());
        assert!(find("nope").is_none());
    }

    #[test]
    fn a_group_selects_its_members_only() {
        let picked: Vec<_> = SCENARIOS
            .iter()
            .filter(|s| selects("durable", s))
            .map(|s| s.name)
            .collect();
        assert_eq!(picked, ["durable-loss", "durable-reboots"]);
        let clean = find("clean").unwrap();
        assert!(selects("clean", clean) && !selects("durable", clean));
        assert!(!selects("cle", clean));
    }
}
