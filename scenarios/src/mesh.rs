//! The relay mesh (issue 15) over the simulated network: three segments, two relays on each,
//! a broadcasting station and a listening station on every segment.
//!
//! Every station listens on the carried port, so each one hears its own segment's broadcasts
//! directly and the other segments' through the relays. The guarantee checked is per station
//! and per broadcast: heard **exactly once** (a relayed copy of its own segment's broadcast
//! coming back, or a second relayed copy, shows as a count of 2), and nothing heard that no
//! station sent. Emissions are also counted per segment: a storm shows as more than the
//! number of broadcasts sent on the other segments.

use alloc::collections::BTreeMap;
use core::net::SocketAddr;
use core::time::Duration;

use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::endpoint::{
    DropReason, Relay, RelayConfig, RelayDrop, RelayEvent, RelayId, RelayLimits,
};
use pavillion_proto::rng::Rng;
use pavillion_proto::Instant;
use pavillion_sim::{
    Attack, HostEvent, LinkFaults, MiddleboxConfig, NetAction, RelaySpec, Script, Segment,
};

use crate::harness::{ms, secs, Harness};
use crate::outcome::Outcome;
use crate::Params;

/// The carried port (PVAccess searches).
const PORT: u16 = 5076;
/// The segments.
const SEGMENTS: [Segment; 3] = [Segment(1), Segment(2), Segment(3)];
/// Relays per segment.
const SIBLINGS: [&str; 2] = ["a", "b"];

/// The relay host `k` of segment `s`.
fn relay_name(s: Segment, k: &str) -> String {
    format!("relay-{}{k}", s.0)
}

/// The fixed key of a relay host (the mesh's trust does not depend on the seed).
fn relay_keys(s: Segment, k: &str) -> KeyPair {
    let mut secret = [0x40; 32];
    secret[5] = s.0;
    secret[6] = k.as_bytes().first().copied().unwrap_or(0);
    KeyPair::from_secret_bytes(secret)
}

/// The station of segment `s` that broadcasts (and listens), and the one that only listens.
fn talker(s: Segment) -> String {
    format!("talker-{}", s.0)
}

fn listener(s: Segment) -> String {
    format!("listener-{}", s.0)
}

/// One broadcast: which segment, when, what.
#[derive(Clone, Debug)]
struct Sent {
    segment: Segment,
    at: Duration,
    payload: Vec<u8>,
}

/// The mesh: six relays in a full static mesh, and the stations.
struct Mesh {
    h: Harness,
    sent: Vec<Sent>,
}

impl Mesh {
    /// Six relays with `limits`, and `count` broadcasts per segment from `start`, one every
    /// `interval` with up to 50 ms of jitter drawn from the seed.
    fn new(
        p: &Params,
        duration: Duration,
        limits: &RelayLimits,
        start: Duration,
        interval: Duration,
        count: u32,
    ) -> Self {
        let mut h = Harness::new(p, duration, LinkFaults::clean());
        let mut rng = Rng::seed_from_u64(p.seed ^ 0x5e6_0e47);
        let all: Vec<(Segment, &str)> = SEGMENTS
            .iter()
            .flat_map(|s| SIBLINGS.iter().map(move |k| (*s, *k)))
            .collect();
        for &(s, k) in &all {
            let keys = relay_keys(s, k);
            let mut config = RelayConfig::new(keys, &s.name(), &[PORT], [0; 32]);
            config.limits = limits.clone();
            let mut spec = RelaySpec::new(config, s);
            for &(s2, k2) in &all {
                if (s2, k2) != (s, k) {
                    spec = spec.with_peer(&relay_name(s2, k2), *relay_keys(s2, k2).public());
                }
            }
            if let Err(e) = h
                .sim
                .add_relay(&relay_name(s, k), spec, Script::<Relay>::new())
            {
                h.setup_error(e);
            }
        }
        let mut sent = Vec::new();
        for s in SEGMENTS {
            let mut sends = Vec::new();
            for i in 0..count {
                let at = start + interval * i + ms(rng.range_inclusive(0, 50));
                let payload = format!("search {}/{i}", s.0).into_bytes();
                sends.push((at, payload.clone()));
                sent.push(Sent {
                    segment: s,
                    at,
                    payload,
                });
            }
            if let Err(e) = h.sim.add_station(&talker(s), s, PORT, sends) {
                h.setup_error(e);
            }
            if let Err(e) = h.sim.add_station(&listener(s), s, PORT, Vec::new()) {
                h.setup_error(e);
            }
        }
        Mesh { h, sent }
    }

    /// Runs the simulation and checks every broadcast: heard at most once by every station,
    /// and exactly once where `must(sent)` says so; nothing heard that was not sent; no
    /// segment's emissions above what the other segments sent.
    fn finish(&mut self, must: impl Fn(&Sent) -> bool) -> Outcome {
        let mut out = self.h.run(|_| Vec::new());
        let sim = &self.h.sim;
        let addr: BTreeMap<Segment, SocketAddr> = SEGMENTS
            .iter()
            .filter_map(|s| Some((*s, sim_addr(sim, &talker(*s))?)))
            .collect();
        let by_payload: BTreeMap<&[u8], &Sent> =
            self.sent.iter().map(|s| (&s.payload[..], s)).collect();
        out.sent = self.sent.len() as u64;
        let mut complete = 0u64;
        let mut missed = Vec::new();
        for s in SEGMENTS {
            for station in [talker(s), listener(s)] {
                let heard = sim.heard(&station);
                let mut counts: BTreeMap<&[u8], u64> = BTreeMap::new();
                for pavillion_sim::Heard { from, payload, .. } in &heard {
                    match by_payload.get(&payload[..]) {
                        Some(sent) => {
                            *counts.entry(&sent.payload[..]).or_default() += 1;
                            // Emitted with the original source: the sender's own address.
                            let want = addr.get(&sent.segment);
                            out.check(want == Some(from), "source", || {
                                format!("{station} heard {:?} from {from}, not from its sender {want:?}",
                                    String::from_utf8_lossy(payload))
                            });
                        }
                        None => out.check(false, "forged", || {
                            format!(
                                "{station} heard {:?} from {from}, which nobody broadcast",
                                String::from_utf8_lossy(payload)
                            )
                        }),
                    }
                }
                for sent in &self.sent {
                    if sent.segment == s && station == talker(s) {
                        continue; // A sender does not hear itself.
                    }
                    let n = counts.get(&sent.payload[..]).copied().unwrap_or(0);
                    if n > 1 {
                        out.duplicates += n - 1;
                    }
                    if n == 0 && must(sent) {
                        missed.push(format!(
                            "{station} {}",
                            String::from_utf8_lossy(&sent.payload)
                        ));
                    }
                }
            }
        }
        for sent in &self.sent {
            let everywhere = SEGMENTS.iter().all(|s| {
                sim.heard(&listener(*s))
                    .iter()
                    .any(|x| x.payload == sent.payload)
            });
            if everywhere {
                complete += 1;
            }
        }
        out.delivered = complete;
        let dups = out.duplicates;
        out.check(dups == 0, "exactly-once", || {
            format!("{dups} extra copies of broadcasts heard")
        });
        out.check(missed.is_empty(), "delivered", || {
            format!(
                "{} required receptions missing, first {:?}",
                missed.len(),
                missed.first()
            )
        });
        for s in SEGMENTS {
            let others = self.sent.iter().filter(|x| x.segment != s).count() as u64;
            let emitted = sim.emitted(s);
            out.check(emitted <= others, "storm", || {
                format!(
                    "{} relays emitted {emitted} datagrams, only {others} broadcast elsewhere",
                    s.name()
                )
            });
            out.notes
                .push(format!("{}: {emitted} emitted of {others}", s.name()));
        }
        out.notes.push(drop_summary(sim));
        out
    }
}

fn sim_addr(sim: &pavillion_sim::Simulation, host: &str) -> Option<SocketAddr> {
    sim.ip(host).ok().map(|ip| SocketAddr::new(ip, PORT))
}

/// Every relay's counters summed: what was carried and emitted, and the drops by reason.
fn drop_summary(sim: &pavillion_sim::Simulation) -> String {
    let mut carried = 0;
    let mut emitted = 0;
    let mut forwarded = 0;
    let mut drops: BTreeMap<&'static str, u64> = BTreeMap::new();
    for s in SEGMENTS {
        for k in SIBLINGS {
            for st in sim.relay_stats(&relay_name(s, k)) {
                carried += st.carried;
                emitted += st.emitted;
                forwarded += st.forwarded;
                for (r, n) in st.drops().filter(|(_, n)| *n > 0) {
                    *drops.entry(r.name()).or_default() += n;
                }
            }
        }
    }
    let drops: Vec<String> = drops.iter().map(|(r, n)| format!("{r}={n}")).collect();
    format!(
        "relays: carried={carried} emitted={emitted} forwarded={forwarded} drops: {}",
        drops.join(" ")
    )
}

/// The sibling of segment `s` that emits while both are up: the lower relay id.
fn emitter(s: Segment) -> &'static str {
    let a = RelayId::of(relay_keys(s, "a").public());
    let b = RelayId::of(relay_keys(s, "b").public());
    if a < b {
        "a"
    } else {
        "b"
    }
}

/// Three segments, two relays each, 30 broadcasts per segment from 2 s: every station hears
/// every broadcast exactly once, with its original source; no segment's relays emit more
/// than the other segments sent.
pub(crate) fn relay_mesh(p: &Params) -> Outcome {
    let limits = RelayLimits::default();
    let mut m = Mesh::new(p, secs(10), &limits, secs(2), ms(200), 30);
    m.finish(|_| true)
}

/// When the emitting relay of every segment dies (at 5 s).
const DIE: Duration = secs(5);

/// The emitter of every segment dies at 5 s. Broadcasts sent before are heard exactly once;
/// those of the detection window (until the survivor sees its sibling down, `down_after`,
/// and takes over) may be lost but never duplicated; from `DIE + down_after + 1 s` on, exactly
/// once again.
pub(crate) fn relay_failover(p: &Params) -> Outcome {
    let limits = RelayLimits::default();
    let mut m = Mesh::new(p, secs(18), &limits, secs(2), ms(200), 75);
    for s in SEGMENTS {
        m.h.sim.at(DIE, NetAction::Crash(relay_name(s, emitter(s))));
    }
    let recovered = DIE + limits.down_after + secs(1);
    let mut out = m.finish(move |sent| sent.at < DIE - ms(100) || sent.at >= recovered);
    // The row's reconnect column: the slowest segment's takeover, from the death to the
    // survivor's `Emitter { active: true }`.
    let mut slowest = Some(Duration::ZERO);
    for s in SEGMENTS {
        let survivor = relay_name(s, if emitter(s) == "a" { "b" } else { "a" });
        let took =
            m.h.events(&survivor, |e| match e {
                HostEvent::Relay(RelayEvent::Emitter { active: true }) => Some(()),
                _ => None,
            })
            .into_iter()
            .map(|(at, ())| at.saturating_duration_since(Instant::ZERO + DIE))
            .find(|d| !d.is_zero());
        out.check(took.is_some(), "takeover", || {
            format!("{survivor} never became its segment's emitter")
        });
        slowest = slowest.zip(took).map(|(a, b)| a.max(b));
    }
    out.reconnect_time = slowest;
    out
}

/// When the relays of segments 1 and 2 cannot reach each other.
const CUT: (Duration, Duration) = (secs(5), secs(12));

/// Every pair of relays between segments 1 and 2 is partitioned from 5 s to 12 s; with hop
/// limit 2 the broadcasts between them go around through segment 3 once the cut is seen
/// (after `down_after` and the next members announcement), and straight again after it
/// heals. Broadcasts of the windows of change may be lost, never duplicated.
pub(crate) fn relay_partition(p: &Params) -> Outcome {
    let limits = RelayLimits::default();
    let mut m = Mesh::new(p, secs(24), &limits, secs(2), ms(200), 100);
    for a in SIBLINGS {
        for b in SIBLINGS {
            let (x, y) = (relay_name(SEGMENTS[0], a), relay_name(SEGMENTS[1], b));
            m.h.sim
                .at(CUT.0, NetAction::Partition(x.clone(), y.clone()));
            m.h.sim.at(CUT.1, NetAction::Repair(x, y));
        }
    }
    let around = CUT.0 + limits.down_after + secs(2);
    let healed = CUT.1 + secs(4);
    let mut out = m.finish(move |sent| {
        sent.at < CUT.0 - ms(100) || (sent.at >= around && sent.at < CUT.1) || sent.at >= healed
    });
    let forwarded: u64 = all_relays()
        .flat_map(|r| m.h.sim.relay_stats(&r))
        .map(|st| st.forwarded)
        .sum();
    out.check(forwarded > 0, "around", || {
        "no relay forwarded anything: nothing went around the cut".into()
    });
    out
}

/// Every relay host's name.
fn all_relays() -> impl Iterator<Item = String> {
    SEGMENTS
        .iter()
        .flat_map(|s| SIBLINGS.iter().map(move |k| relay_name(*s, k)))
}

/// An adversary on the mesh port from 4.5 s to 7.5 s, while the stations broadcast: it
/// replays at `relay-1a` the mesh packets `relay-2a` sent it in the first 4 s (recorded on
/// the path, sent again from `relay-2a`'s address), forges at `relay-1b` packets shaped like
/// `relay-3a`'s with random tags, and floods `relay-2a` from new forged sources with junk and
/// recorded initiations. Nothing is heard that no station sent, every broadcast is still
/// heard exactly once, and the attacked relays count the drops.
pub(crate) fn relay_adversary(p: &Params) -> Outcome {
    let limits = RelayLimits::default();
    let mut m = Mesh::new(p, secs(12), &limits, secs(2), ms(200), 40);
    let recorded_at = secs(4);
    if let Err(e) = m.h.sim.run_until(recorded_at) {
        m.h.setup_error(e);
    }
    let mesh = |h: &Harness, s: Segment, k: &str| {
        h.sim
            .ip(&relay_name(s, k))
            .map(|ip| SocketAddr::new(ip, pavillion_sim::MESH_PORT))
    };
    let (Ok(r1a), Ok(r1b), Ok(r2a), Ok(r3a)) = (
        mesh(&m.h, SEGMENTS[0], "a"),
        mesh(&m.h, SEGMENTS[0], "b"),
        mesh(&m.h, SEGMENTS[1], "a"),
        mesh(&m.h, SEGMENTS[2], "a"),
    ) else {
        m.h.setup_error("relay hosts missing");
        return m.finish(|_| true);
    };
    let packets = m.h.sim.mesh_packets();
    let between = |from: SocketAddr, to: SocketAddr| -> Vec<Vec<u8>> {
        packets
            .iter()
            .filter(|(f, t, _)| *f == from && *t == to)
            .map(|(_, _, b)| b.clone())
            .collect()
    };
    let replayed = between(r2a, r1a);
    let shaped = between(r3a, r1b);
    let mut junk = b"PvS3".to_vec();
    junk.extend_from_slice(&[0x5a; 60]);
    let mut flood = vec![junk, b"not a relay".to_vec()];
    flood.extend(
        packets
            .iter()
            .filter(|(_, _, b)| b.get(4) == Some(&1))
            .take(2)
            .map(|(_, _, b)| b.clone()),
    );
    let attack = |target, source, per_second, packets, random_tail| Attack::SpoofFlood {
        target,
        source,
        per_second,
        duration: secs(3),
        packets,
        random_tail,
    };
    let start = ms(4500);
    // One adversary host per attack: a middlebox runs one flood at a time.
    let attacks = [
        (
            "adversary-replay",
            attack(r1a, Some(r2a), 1000, replayed.clone(), 0),
        ),
        (
            "adversary-forge",
            attack(r1b, Some(r3a), 2000, shaped.clone(), 16),
        ),
        ("adversary-flood", attack(r2a, None, 10_000, flood, 8)),
    ];
    for (name, a) in attacks {
        let adversary = MiddleboxConfig::adversary(Vec::new()).with_attack(start, a);
        if let Err(e) = m.h.sim.add_middlebox(name, adversary) {
            m.h.setup_error(e);
        }
    }
    let mut out = m.finish(|_| true);
    let r = (replayed.len(), shaped.len());
    out.check(r.0 > 0 && r.1 > 0, "recorded", || {
        format!(
            "recorded {} packets to replay and {} to forge from",
            r.0, r.1
        )
    });
    // Each attack is counted under its own reason at the relay it hit.
    let checks = [
        ("relay-1a", "replay", Some(DropReason::Duplicate), None),
        ("relay-1b", "forgery", Some(DropReason::Forged), None),
        (
            "relay-2a",
            "flood",
            Some(DropReason::BadHandshake),
            Some(RelayDrop::NotSuite3),
        ),
    ];
    for (host, what, mesh_reason, relay_reason) in checks {
        let mesh = m.h.sim.stats(host);
        let relay = m.h.sim.relay_stats(host);
        if let Some(r) = mesh_reason {
            let n: u64 = mesh.iter().map(|s| s.dropped(r)).sum();
            out.check(n > 0, "counted", || {
                format!("{host} counted no {r:?} drop under the {what}")
            });
        }
        if let Some(r) = relay_reason {
            let n: u64 = relay.iter().map(|s| s.dropped(r)).sum();
            out.check(n > 0, "counted", || {
                format!("{host} counted no {} drop under the {what}", r.name())
            });
        }
        let reasons: Vec<String> = mesh
            .iter()
            .flat_map(|s| {
                s.drops()
                    .filter(|(_, n)| *n > 0)
                    .map(|(r, n)| format!("{r:?}={n}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.notes
            .push(format!("{host} ({what}): mesh drops {}", reasons.join(" ")));
    }
    out
}

/// A Pavillion client of a group on segment 1 sends 50 reliable messages to the limited
/// broadcast address (its group): the relays of both segments carry them, and the server on
/// segment 2, which only the relays' emissions reach, gets every one exactly once and answers
/// the client directly (emissions keep the client's source).
pub(crate) fn relay_group(p: &Params) -> Outcome {
    use pavillion_sim::{ServerSpec, SERVER_PORT};

    let group: SocketAddr = ([255, 255, 255, 255], SERVER_PORT).into();
    let mut h = Harness::new(p, secs(12), LinkFaults::clean());
    let segments = [SEGMENTS[0], SEGMENTS[1]];
    let all: Vec<(Segment, &str)> = segments
        .iter()
        .flat_map(|s| SIBLINGS.iter().map(move |k| (*s, *k)))
        .collect();
    for &(s, k) in &all {
        let config = RelayConfig::new(relay_keys(s, k), &s.name(), &[SERVER_PORT], [0; 32]);
        let mut spec = RelaySpec::new(config, s);
        for &(s2, k2) in all.iter().filter(|x| **x != (s, k)) {
            spec = spec.with_peer(&relay_name(s2, k2), *relay_keys(s2, k2).public());
        }
        if let Err(e) = h
            .sim
            .add_relay(&relay_name(s, k), spec, Script::<Relay>::new())
        {
            h.setup_error(e);
        }
    }
    h.server(
        "server",
        ServerSpec::new(p.suite.server_config(1)).with_subscription("t"),
    );
    if let Err(e) = h
        .sim
        .join(segments[1].group(SERVER_PORT), "server", SERVER_PORT)
    {
        h.setup_error(e);
    }
    let batch = crate::harness::Batch::new(secs(3), ms(100), 50).deadline(secs(6));
    h.client("client", p.suite.client_config(0, group), &[batch]);
    if let Err(e) = h
        .sim
        .place_on("client", segments[0], group, pavillion_sim::CLIENT_PORT)
    {
        h.setup_error(e);
    }
    if let Err(e) = h.sim.place_on("server", segments[1], group, SERVER_PORT) {
        h.setup_error(e);
    }
    let mut out = h.run(crate::harness::unicast("server"));
    out.expect_delivered_percent(100);
    let emitted = h.sim.emitted(segments[1]);
    out.check(emitted > 0, "relayed", || {
        "no relay emitted on the server's segment".into()
    });
    out.notes.push(format!(
        "{emitted} datagrams emitted on {}, {} on {}",
        segments[1].name(),
        h.sim.emitted(segments[0]),
        segments[0].name()
    ));
    out
}
