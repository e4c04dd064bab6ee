//! A fixed-size histogram of round-trip samples: percentiles for `pav serve --stats` and the
//! Prometheus exporter, at a constant cost per endpoint whatever the traffic.
//!
//! Buckets are logarithmic: bucket `i` holds the samples up to `⌈2^(i/4)⌉` µs (four per power of
//! two, from 1 µs to about 113 s; larger samples land in the last bucket). A sample `v ≥ 1 µs` lands
//! in a bucket whose bound `b` has `v ≤ b < 1.19 · v`, so a percentile read from bounds is exact to
//! within 19 % (`quantile` is never below the true sample quantile).

use crate::time::Duration;

/// Number of buckets.
pub const BUCKETS: usize = 108;

/// Inclusive upper bounds of the buckets in microseconds: `⌈2^(i/4)⌉`. Small bounds repeat
/// (whole microseconds); a sample goes to the first bucket whose bound holds it, so the later
/// copies of a repeated bound stay empty.
const BOUNDS_US: [u64; BUCKETS] = [
    1, 2, 2, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 23, 27, 32, 39, 46, 54, 64, 77, 91,
    108, 128, 153, 182, 216, 256, 305, 363, 431, 512, 609, 725, 862, 1024, 1218, 1449, 1723, 2048,
    2436, 2897, 3445, 4096, 4871, 5793, 6889, 8192, 9742, 11586, 13778, 16384, 19484, 23171, 27555,
    32768, 38968, 46341, 55109, 65536, 77936, 92682, 110218, 131072, 155872, 185364, 220436,
    262144, 311744, 370728, 440872, 524288, 623488, 741456, 881744, 1048576, 1246975, 1482911,
    1763488, 2097152, 2493949, 2965821, 3526976, 4194304, 4987897, 5931642, 7053951, 8388608,
    9975793, 11863284, 14107901, 16777216, 19951585, 23726567, 28215802, 33554432, 39903170,
    47453133, 56431604, 67108864, 79806339, 94906266, 112863207,
];

/// The bucket of a sample of `us` microseconds.
fn bucket_of(us: u64) -> usize {
    BOUNDS_US.partition_point(|&b| b < us).min(BUCKETS - 1)
}

/// Counts of RTT samples by size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RttHistogram {
    counts: [u32; BUCKETS],
    total: u64,
    sum_us: u64,
}

impl Default for RttHistogram {
    fn default() -> Self {
        RttHistogram {
            counts: [0; BUCKETS],
            total: 0,
            sum_us: 0,
        }
    }
}

impl RttHistogram {
    /// Counts one sample.
    pub fn record(&mut self, rtt: Duration) {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        let c = &mut self.counts[bucket_of(us)];
        *c = c.saturating_add(1);
        self.total = self.total.saturating_add(1);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Samples counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Sum of the samples, for a mean (Prometheus `_sum`).
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us)
    }

    /// The upper bound of the bucket holding the `q`-quantile (`q` in 0..=1, clamped), or
    /// `None` with no samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // The nearest-rank quantile: the smallest sample with at least q·n samples at or below.
        // `as` saturates, and the product is at most `total`.
        let rank = ((q * total as f64) as u64)
            .saturating_add(u64::from((q * total as f64).fract() > 0.0))
            .clamp(1, total);
        let mut seen = 0u64;
        for (count, bound) in self.counts.iter().zip(BOUNDS_US) {
            seen = seen.saturating_add(u64::from(*count));
            if seen >= rank {
                return Some(Duration::from_micros(bound));
            }
        }
        Some(Duration::from_micros(BOUNDS_US[BUCKETS - 1]))
    }

    /// Every bucket as (inclusive upper bound, cumulative count), ascending: what a
    /// Prometheus histogram's `le` series needs.
    ///
    /// A bound that repeats (below 8 µs) is given once: its later copies are always empty, and a
    /// Prometheus histogram must not repeat an `le`.
    pub fn cumulative(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        let mut seen = 0u64;
        self.counts
            .iter()
            .zip(BOUNDS_US)
            .enumerate()
            .filter_map(move |(i, (count, bound))| {
                seen = seen.saturating_add(u64::from(*count));
                let repeated = i > 0 && BOUNDS_US[i - 1] == bound;
                (!repeated).then(|| (Duration::from_micros(bound), seen))
            })
    }

    /// Adds every count of `other` (totals across endpoints).
    pub fn add(&mut self, other: &RttHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine = mine.saturating_add(theirs);
        }
        self.total = self.total.saturating_add(other.total);
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use quickcheck::{QuickCheck, TestResult};

    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn bounds_ascend_and_grow_by_at_most_a_quarter_octave() {
        for w in BOUNDS_US.windows(2) {
            assert!(w[0] <= w[1]);
            // The 19 % claim: one bound over the previous one is at most 2^(1/4), plus the
            // rounding to whole microseconds.
            assert!(w[1] as f64 <= (w[0] as f64) * 1.189_208 + 1.0, "{w:?}");
        }
        assert_eq!(BOUNDS_US[0], 1);
        assert_eq!(BOUNDS_US[BUCKETS - 1], 112_863_207);
    }

    #[test]
    fn empty_has_no_quantile() {
        let h = RttHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.count(), 0);
        assert!(h.cumulative().all(|(_, c)| c == 0));
    }

    #[test]
    fn quantiles_of_a_known_set() {
        let mut h = RttHistogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.sum(), Duration::from_millis(5050));
        // p50 is 50 ms: its bucket's bound is 50 ms or a little more.
        let p50 = h.quantile(0.5).unwrap();
        assert!(p50 >= Duration::from_millis(50) && p50 < Duration::from_micros(59_500));
        let p99 = h.quantile(0.99).unwrap();
        assert!(p99 >= Duration::from_millis(99) && p99 < Duration::from_micros(117_810));
        assert!(h.quantile(0.0).unwrap() >= Duration::from_millis(1));
        assert_eq!(h.quantile(2.0), h.quantile(1.0));
        assert_eq!(h.quantile(f64::NAN), h.quantile(0.0));
    }

    #[test]
    fn huge_samples_land_in_the_last_bucket() {
        let mut h = RttHistogram::default();
        h.record(Duration::MAX);
        h.record(Duration::ZERO);
        assert_eq!(h.quantile(1.0), Some(us(BOUNDS_US[BUCKETS - 1])));
        assert_eq!(h.quantile(0.0), Some(us(1)));
        assert_eq!(h.cumulative().last().map(|(_, c)| c), Some(2));
    }

    #[test]
    fn cumulative_is_ascending_without_repeated_bounds_and_ends_at_the_count() {
        let mut h = RttHistogram::default();
        for n in [1, 2, 3, 5, 900, 1_000_000] {
            h.record(us(n));
        }
        let series: Vec<_> = h.cumulative().collect();
        for w in series.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        }
        assert_eq!(series.last().unwrap().1, 6);
        assert_eq!(series[0], (us(1), 1));
        assert_eq!(series[1], (us(2), 2));
    }

    #[test]
    fn add_sums_counts() {
        let mut a = RttHistogram::default();
        let mut b = RttHistogram::default();
        a.record(us(10));
        b.record(us(1000));
        b.record(us(1000));
        a.add(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.sum(), us(2010));
        assert_eq!(a.quantile(1.0 / 3.0), Some(us(10)));
        assert_eq!(a.quantile(0.5).map(|d| d >= us(1000)), Some(true));
    }

    /// Quantiles are monotone in q, and each is within 19 % above the true nearest-rank
    /// sample quantile.
    #[test]
    fn prop_quantile_is_monotone_and_within_19_percent() {
        fn prop(samples: Vec<u32>, qs: Vec<u8>) -> TestResult {
            if samples.is_empty() {
                return TestResult::discard();
            }
            // Keep samples below the last bound (above it the last bucket under-reports).
            let mut sorted: Vec<u64> = samples
                .iter()
                .map(|&s| 1 + u64::from(s) % BOUNDS_US[BUCKETS - 1])
                .collect();
            let mut h = RttHistogram::default();
            sorted.iter().for_each(|&s| h.record(us(s)));
            sorted.sort_unstable();
            let mut qs: Vec<f64> = qs.iter().map(|&q| f64::from(q) / 255.0).collect();
            qs.sort_by(f64::total_cmp);
            let mut last = Duration::ZERO;
            for q in qs {
                let got = h.quantile(q).unwrap();
                let n = sorted.len() as f64;
                let rank = ((q * n).ceil() as usize).clamp(1, sorted.len());
                let truth = sorted[rank - 1] as f64;
                let got_us = got.as_micros() as f64;
                if got < last || got_us < truth || got_us > truth * 1.19 {
                    return TestResult::failed();
                }
                last = got;
            }
            TestResult::passed()
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(Vec<u32>, Vec<u8>) -> TestResult);
    }
}
