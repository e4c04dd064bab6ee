//! The oracle bound of the loss scenarios: what a sender that retries every round trip would
//! achieve on the same schedule, loss and seeds, printed beside the measured rows so that a
//! latency figure can be judged against what the loss itself costs.
//!
//! The oracle knows the RTT from the start and resends every RTT until the copy gets through,
//! with no timer, backoff or rate limit. Its handshake is `round_trips` round trips (two for
//! suites 1 and 2: nonce request and nonce, then client-info and confirmation; one for suite 3's
//! Noise initiation and response), each needing both directions, retried every RTT. Then each
//! message, sent at its scheduled time or at the end of the handshake if later, is resent every
//! RTT until one copy crosses (one direction: latency is counted to the server's delivery, as
//! in the measured rows). Loss is drawn independently per datagram, as the simulator's links
//! do, from the seed's own stream (not the simulator's draws: the two senders send different
//! datagrams, so no draw could be shared). Percentiles are summed over seeds as the table's
//! are: the median of the seeds' medians, and the worst seed's 99th percentile.

use core::time::Duration;

use core::fmt::Write as _;

use crate::report::{duration, Row};
use crate::Suite;

/// A loss scenario's traffic and link, as the oracle sees them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spec {
    /// Probability that a datagram is lost, each direction independently.
    pub loss: f64,
    /// One-way link delay.
    pub one_way: Duration,
    /// When the first message is sent, from the start of the run (when the handshake starts).
    pub first: Duration,
    /// The interval between messages.
    pub interval: Duration,
    /// How many messages.
    pub count: u32,
    /// Round trips the handshake needs before data may go.
    pub round_trips: u32,
}

/// The oracle's latency percentiles over a set of seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The median of the seeds' median latencies.
    pub p50: Duration,
    /// The worst seed's 99th percentile latency.
    pub p99: Duration,
}

/// The spec of the scenario `name` over `suite` (with `loss` replacing the scenario's own, as
/// the runner's `--loss` does), or `None` if it is not one of the loss scenarios.
///
/// The traffic is `scenarios::lossy`'s: 100 messages, one every 20 ms from 100 ms, over 1 ms
/// links. (The harness adds a few milliseconds of jitter to each send; the oracle does not.)
pub fn spec(name: &str, suite: Suite, loss: Option<f64>) -> Option<Spec> {
    let own = match name {
        "loss-10" => 0.1,
        "loss-30" => 0.3,
        "loss-50" => 0.5,
        _ => return None,
    };
    Some(Spec {
        loss: loss.unwrap_or(own),
        one_way: Duration::from_millis(1),
        first: Duration::from_millis(100),
        interval: Duration::from_millis(20),
        count: 100,
        round_trips: match suite {
            Suite::Noise => 1,
            _ => 2,
        },
    })
}

/// The oracle's delivery latencies for one seed, in send order.
pub fn latencies(spec: &Spec, seed: u64) -> Vec<Duration> {
    let mut rng = SplitMix(seed ^ 0x6f72_6163_6c65_0000);
    let rtt = spec.one_way.saturating_mul(2);
    // A link with a loss of 1 or more never delivers: cap the tries rather than loop forever.
    let crosses = |rng: &mut SplitMix| !rng.chance(spec.loss);
    let mut ready = Duration::ZERO;
    for _ in 0..spec.round_trips {
        let mut tries = 0u32;
        while !(crosses(&mut rng) && crosses(&mut rng)) && tries < MAX_TRIES {
            tries += 1;
        }
        ready = ready.saturating_add(rtt.saturating_mul(tries.saturating_add(1)));
    }
    (0..spec.count)
        .map(|i| {
            let sent = spec.first.saturating_add(spec.interval.saturating_mul(i));
            let mut tries = 0u32;
            while !crosses(&mut rng) && tries < MAX_TRIES {
                tries += 1;
            }
            let delivered = sent
                .max(ready)
                .saturating_add(rtt.saturating_mul(tries))
                .saturating_add(spec.one_way);
            delivered.saturating_sub(sent)
        })
        .collect()
}

/// The oracle's percentiles over `seeds`, summed as the report's table sums the measured ones.
pub fn bound(spec: &Spec, seeds: &[u64]) -> Bound {
    let mut p50s = Vec::new();
    let mut p99 = Duration::ZERO;
    for &seed in seeds {
        let mut l = latencies(spec, seed);
        l.sort_unstable();
        p50s.push(rank(&l, 50));
        p99 = p99.max(rank(&l, 99));
    }
    p50s.sort_unstable();
    Bound {
        p50: p50s
            .get(p50s.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or_default(),
        p99,
    }
}

/// The oracle bound of every loss row, one line each, for the lines after
/// the table; empty if no row is a loss scenario. `loss` is the runner's `--loss`, if given.
pub fn lines(rows: &[Row], seeds: &[u64], loss: Option<f64>) -> String {
    let mut out = String::new();
    for row in rows {
        let Some(spec) = spec(row.scenario, row.suite, loss) else {
            continue;
        };
        let b = bound(&spec, seeds);
        let _ = writeln!(
            out,
            "{:<9} {:<6} oracle p50 {:>8}  p99 {:>8}   measured p50 {:>8}  p99 {:>8}",
            row.scenario,
            row.suite.name(),
            duration(b.p50),
            duration(b.p99),
            duration(row.p50()),
            duration(row.p99),
        );
    }
    out
}

/// The nearest-rank percentile `pct` of sorted `l` (as `outcome::Latency` computes it).
fn rank(l: &[Duration], pct: usize) -> Duration {
    if l.is_empty() {
        return Duration::ZERO;
    }
    let i = (pct * l.len()).div_ceil(100).clamp(1, l.len()) - 1;
    l[i]
}

/// Tries after which the oracle gives up on one crossing (only a loss of 1 gets there).
const MAX_TRIES: u32 = 1_000_000;

/// SplitMix64: a small, fixed generator, so the bound is the same on every platform and
/// needs no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        // The top 53 bits as a uniform float in [0, 1).
        ((self.next() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn spec_with(loss: f64, round_trips: u32) -> Spec {
        Spec {
            loss,
            one_way: ms(1),
            first: ms(100),
            interval: ms(20),
            count: 100,
            round_trips,
        }
    }

    #[test]
    fn without_loss_every_message_takes_one_way() {
        // The handshake (2 RTT = 4 ms) ends long before the first send at 100 ms.
        let l = latencies(&spec_with(0.0, 2), 1);
        assert_eq!(l.len(), 100);
        assert!(l.iter().all(|&d| d == ms(1)));
        let b = bound(&spec_with(0.0, 2), &[1, 2, 3]);
        assert_eq!(
            b,
            Bound {
                p50: ms(1),
                p99: ms(1)
            }
        );
    }

    #[test]
    fn a_handshake_longer_than_the_first_send_delays_it() {
        let s = Spec {
            first: Duration::ZERO,
            interval: ms(1),
            count: 3,
            ..spec_with(0.0, 5)
        };
        // Ready at 5 round trips (10 ms); sent at 0, 1 and 2 ms; delivered 1 ms after 10 ms.
        assert_eq!(latencies(&s, 7), [ms(11), ms(10), ms(9)]);
    }

    #[test]
    fn latencies_are_whole_round_trips_plus_one_way_after_the_handshake() {
        for seed in 1..20 {
            for l in latencies(&spec_with(0.5, 1), seed) {
                let us = l.as_micros();
                assert!(us >= 1000 && (us - 1000) % 2000 == 0, "{l:?}");
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_bound_and_loss_makes_it_worse() {
        let seeds: Vec<u64> = (1..=20).collect();
        assert_eq!(
            bound(&spec_with(0.5, 2), &seeds),
            bound(&spec_with(0.5, 2), &seeds)
        );
        let low = bound(&spec_with(0.1, 2), &seeds);
        let high = bound(&spec_with(0.5, 2), &seeds);
        assert!(low.p99 < high.p99, "{low:?} {high:?}");
    }

    #[test]
    fn mean_tries_match_the_loss() {
        // One crossing at loss p takes 1 / (1 - p) tries on average: 2 at 50%, so the mean
        // latency of messages sent after the handshake is 1 ms + 2 ms · (2 - 1) = 3 ms.
        let s = Spec {
            count: 20_000,
            ..spec_with(0.5, 0)
        };
        let l = latencies(&s, 3);
        let mean = l.iter().map(|d| d.as_micros()).sum::<u128>() as f64 / l.len() as f64;
        assert!((2_900.0..3_100.0).contains(&mean), "{mean}");
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let l: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(rank(&l, 50), Duration::from_micros(50));
        assert_eq!(rank(&l, 99), Duration::from_micros(99));
        assert_eq!(rank(&[ms(7)], 50), ms(7));
        assert_eq!(rank(&[], 50), Duration::ZERO);
    }

    #[test]
    fn a_total_loss_terminates() {
        let s = Spec {
            count: 1,
            ..spec_with(1.0, 1)
        };
        assert_eq!(latencies(&s, 1).len(), 1);
    }

    #[test]
    fn only_the_loss_scenarios_have_a_spec() {
        assert_eq!(
            spec("loss-50", Suite::Noise, None).map(|s| s.round_trips),
            Some(1)
        );
        assert_eq!(
            spec("loss-30", Suite::Psk, Some(0.2)).map(|s| s.loss),
            Some(0.2)
        );
        assert!(spec("clean", Suite::Psk, None).is_none());
    }
}
