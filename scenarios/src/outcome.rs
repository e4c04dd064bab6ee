//! What one run of a scenario produced, and the bookkeeping that measures it.

use alloc::collections::BTreeMap;
use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use pavillion_proto::Instant;

/// One assertion a run did not meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// A short stable name of the check (`duplicates`, `delivered`, ...), for grouping.
    pub check: &'static str,
    /// What was seen, in words.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.detail)
    }
}

/// Percentiles of the delivery latency: simulated time from the send command to the
/// receiver's message event, over every expected delivery that happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

/// The most latency samples an [`Outcome`] keeps.
pub const MAX_LATENCY_SAMPLES: usize = 10_000;

/// `samples` sorted, and thinned to at most `max` evenly spaced ranks when longer, so that
/// their distribution stays the same.
pub(crate) fn thin(mut samples: Vec<u64>, max: usize) -> Vec<u64> {
    samples.sort_unstable();
    if samples.len() <= max {
        return samples;
    }
    let n = samples.len();
    (0..max)
        .filter_map(|i| samples.get(i * n / max).copied())
        .collect()
}

impl Latency {
    /// Nearest-rank percentiles of `samples` (microseconds); all zero if there are none.
    pub fn from_micros(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        let rank = |p: usize| -> Duration {
            if samples.is_empty() {
                return Duration::ZERO;
            }
            let i = (samples.len() * p).div_ceil(100).saturating_sub(1);
            Duration::from_micros(samples.get(i).copied().unwrap_or(0))
        };
        Latency {
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: rank(100),
        }
    }
}

/// The measured result of one run, with the assertions it failed.
///
/// Counts are over *expected deliveries*: a message and one receiver that should get it (one
/// per message for unicast, one per live subscriber for multicast).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Expected deliveries of messages the application handed to its endpoint.
    pub sent: u64,
    /// Expected deliveries that reached the receiving application at least once.
    pub delivered: u64,
    /// Extra deliveries of one message to one receiver *within one incarnation* of it: an
    /// exactly-once violation.
    pub duplicates: u64,
    /// Deliveries of one message to a receiver that rebooted in between. Not an error: the
    /// first delivery's ACK may have died with the old process, so the sender retried it.
    pub redelivered: u64,
    /// Expected deliveries the sender saw acknowledged by that receiver, which its
    /// application never got: a lost acknowledged message.
    pub lost_acked: u64,
    /// Delivery latency, in simulated time.
    pub latency: Latency,
    /// The delivery latencies themselves (µs of simulated time), sorted; at most
    /// [`MAX_LATENCY_SAMPLES`], evenly spread over all of them when there were more. For
    /// plots (`--plot`); not part of the digest.
    pub latencies_us: Vec<u64>,
    /// Retransmissions of reliable messages, summed over every endpoint and incarnation.
    pub retransmissions: u64,
    /// Handshakes completed by the servers, summed over every incarnation.
    pub handshakes: u64,
    /// From the disruption the scenario names (a reboot, a repair, a rebinding) until the
    /// session was back, if the scenario has one and it came back.
    pub reconnect_time: Option<Duration>,
    /// The trace digest (BLAKE2b-256, hex): equal for equal seeds.
    pub digest: String,
    /// The decoded trace (format version 1, `docs/TRACE.md`) as JSON lines, if the run was
    /// asked to keep it ([`Params::trace`](crate::Params::trace)).
    pub trace: Option<String>,
    /// Every datagram copy with its bytes and the run's session secrets, with
    /// [`Params::trace`](crate::Params::trace): what `--pcap` and `--keylog` write.
    pub capture: Option<pavillion_sim::Capture>,
    /// Assertions the run did not meet; empty means it passed.
    pub failures: Vec<Failure>,
    /// Measurements a scenario reports beyond the table's columns (for example the peak of
    /// the server's reassembly memory), printed under the table.
    pub notes: Vec<String>,
}

impl Outcome {
    /// Records a failure of `check` unless `ok`.
    pub fn check(&mut self, ok: bool, check: &'static str, detail: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(Failure {
                check,
                detail: detail(),
            });
        }
    }

    /// Whether every assertion held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Fails unless at least `percent` of the expected deliveries happened.
    pub fn expect_delivered_percent(&mut self, percent: u64) {
        let (d, s) = (self.delivered, self.sent);
        self.check(d * 100 >= s * percent, "delivered", || {
            format!("{d}/{s} delivered, expected at least {percent}%")
        });
    }
}

/// A message as its sender's application saw it.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    pub(crate) key: String,
    pub(crate) at: Instant,
    pub(crate) ack: Ack,
    /// When the sender heard it acknowledged (`Ack::Delivered`), to compare with when the
    /// receiving application took it.
    pub(crate) acked_at: Option<Instant>,
}

/// The outcome event the sender got for a message.
#[derive(Clone, Debug)]
pub(crate) enum Ack {
    Pending,
    /// Acknowledged by `acked` (perhaps not by every expected receiver).
    Delivered {
        acked: Vec<SocketAddr>,
    },
    Expired,
}

#[derive(Clone, Debug)]
struct Reception {
    host: String,
    incarnation: u32,
    at: Instant,
}

/// Shared by every host's application during a run: what was sent, acknowledged and received.
///
/// Payloads are unique keys (`host/index`), so a reception names its message without ids,
/// which restart with each incarnation of the sender.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) sent: Vec<Sent>,
    by_key: BTreeMap<String, usize>,
    received: BTreeMap<String, Vec<Reception>>,
    incarnations: BTreeMap<String, u32>,
    /// Send commands the endpoint refused (queue full, closed).
    pub(crate) refused: u64,
}

/// A receiver a message is expected to reach: the host whose application should get it, and
/// the address its ACK comes from (`None`: any ACK of the message counts, as for unicast,
/// where a NAT may change the address the sender sees).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Expect {
    pub(crate) host: String,
    pub(crate) addr: Option<SocketAddr>,
}

impl Expect {
    pub(crate) fn host(host: &str) -> Self {
        Expect {
            host: host.into(),
            addr: None,
        }
    }
}

/// What [`Ledger::tally`] counts.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) sent: u64,
    pub(crate) delivered: u64,
    pub(crate) duplicates: u64,
    pub(crate) redelivered: u64,
    pub(crate) lost_acked: u64,
    pub(crate) latencies: Vec<u64>,
    /// Receptions of payloads nobody sent.
    pub(crate) unknown: Vec<String>,
}

impl Ledger {
    /// Notes a (re)start of `host` and returns its incarnation, 0 for the first.
    pub(crate) fn start(&mut self, host: &str) -> u32 {
        let n = self
            .incarnations
            .entry(host.into())
            .and_modify(|n| *n += 1)
            .or_insert(0);
        *n
    }

    pub(crate) fn sent(&mut self, key: String, at: Instant) -> usize {
        let i = self.sent.len();
        self.by_key.insert(key.clone(), i);
        self.sent.push(Sent {
            key,
            at,
            ack: Ack::Pending,
            acked_at: None,
        });
        i
    }

    /// As [`Ledger::sent`], but a key sent before keeps its first entry (an application
    /// that sends a message again after a restart, because its first send was never stored).
    pub(crate) fn sent_once(&mut self, key: &str, at: Instant) -> usize {
        match self.by_key.get(key) {
            Some(&i) => i,
            None => self.sent(key.into(), at),
        }
    }

    /// The sender's outcome for entry `i`, heard at `at`.
    pub(crate) fn ack(&mut self, i: usize, ack: Ack, at: Instant) {
        if let Some(s) = self.sent.get_mut(i) {
            if matches!(ack, Ack::Delivered { .. }) {
                s.acked_at = Some(at);
            }
            s.ack = ack;
        }
    }

    /// The first time `host` received `key`, if it did.
    pub(crate) fn first_reception(&self, host: &str, key: &str) -> Option<Instant> {
        self.received
            .get(key)?
            .iter()
            .filter(|r| r.host == host)
            .map(|r| r.at)
            .min()
    }

    pub(crate) fn received(&mut self, host: &str, key: &str, at: Instant) {
        let incarnation = self.incarnations.get(host).copied().unwrap_or(0);
        self.received
            .entry(key.into())
            .or_default()
            .push(Reception {
                host: host.into(),
                incarnation,
                at,
            });
    }

    /// A reception by a given incarnation of `host` (for receptions settled after the run).
    pub(crate) fn received_by(&mut self, host: &str, incarnation: u32, key: &str, at: Instant) {
        self.received
            .entry(key.into())
            .or_default()
            .push(Reception {
                host: host.into(),
                incarnation,
                at,
            });
    }

    /// How many times `host` received `key`.
    pub(crate) fn receptions(&self, host: &str, key: &str) -> usize {
        self.received
            .get(key)
            .map_or(0, |r| r.iter().filter(|r| r.host == host).count())
    }

    /// Counts deliveries against the receivers `expect` names for each message.
    pub(crate) fn tally(&self, mut expect: impl FnMut(&Sent) -> Vec<Expect>) -> Tally {
        let mut t = Tally::default();
        // Exactly-once is checked over every reception, expected or not: a receiver that
        // was not counted on (a late joiner, a dying server) must not get duplicates either.
        for (key, recs) in &self.received {
            if !self.by_key.contains_key(key) {
                t.unknown.push(key.clone());
            }
            let mut per: BTreeMap<(&str, u32), u64> = BTreeMap::new();
            for r in recs {
                *per.entry((r.host.as_str(), r.incarnation)).or_default() += 1;
            }
            t.duplicates += per.values().map(|n| n - 1).sum::<u64>();
            let mut hosts: BTreeMap<&str, u64> = BTreeMap::new();
            for (host, _) in per.keys() {
                *hosts.entry(host).or_default() += 1;
            }
            t.redelivered += hosts.values().map(|n| n - 1).sum::<u64>();
        }
        for m in &self.sent {
            for e in expect(m) {
                t.sent += 1;
                let first = self
                    .received
                    .get(&m.key)
                    .into_iter()
                    .flatten()
                    .filter(|r| r.host == e.host)
                    .map(|r| r.at)
                    .min();
                let acked = match (&m.ack, e.addr) {
                    (Ack::Delivered { acked, .. }, Some(a)) => acked.contains(&a),
                    (Ack::Delivered { acked, .. }, None) => !acked.is_empty(),
                    _ => false,
                };
                match first {
                    Some(at) => {
                        t.delivered += 1;
                        t.latencies
                            .push(at.saturating_duration_since(m.at).as_micros() as u64);
                    }
                    None if acked => t.lost_acked += 1,
                    None => {}
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let l = Latency::from_micros((1..=100).rev().collect());
        assert_eq!(l.p50, Duration::from_micros(50));
        assert_eq!(l.p90, Duration::from_micros(90));
        assert_eq!(l.p99, Duration::from_micros(99));
        assert_eq!(l.max, Duration::from_micros(100));
        assert_eq!(Latency::from_micros(vec![]), Latency::default());
        assert_eq!(Latency::from_micros(vec![7]).p50, Duration::from_micros(7));
    }

    #[test]
    fn thinning_keeps_the_spread_and_the_bound() {
        assert_eq!(thin(vec![3, 1, 2], 5), [1, 2, 3]);
        let t = thin((0..1000).rev().collect(), 10);
        assert_eq!(t, [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
        assert!(thin(vec![], 4).is_empty());
    }

    #[test]
    fn tally_separates_duplicates_from_redeliveries_and_finds_lost_acks() {
        let mut l = Ledger::default();
        let t0 = Instant::from_micros(0);
        let a = l.sent("c/0".into(), t0);
        let b = l.sent("c/1".into(), t0);
        l.sent("c/2".into(), t0);
        let server: SocketAddr = "10.0.0.1:1783".parse().unwrap();
        l.ack(
            a,
            Ack::Delivered {
                acked: vec![server],
            },
            t0,
        );
        l.ack(
            b,
            Ack::Delivered {
                acked: vec![server],
            },
            t0,
        );
        l.start("s");
        l.received("s", "c/0", Instant::from_micros(10));
        l.received("s", "c/0", Instant::from_micros(11));
        l.start("s");
        l.received("s", "c/0", Instant::from_micros(12));
        l.received("s", "x/9", Instant::from_micros(13));
        let t = l.tally(|_| vec![Expect::host("s")]);
        assert_eq!((t.sent, t.delivered), (3, 1));
        assert_eq!((t.duplicates, t.redelivered, t.lost_acked), (1, 1, 1));
        assert_eq!(t.latencies, vec![10]);
        assert_eq!(t.unknown, vec!["x/9".to_string()]);
    }
}
