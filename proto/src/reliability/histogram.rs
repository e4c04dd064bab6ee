//! A fixed-size histogram of round-trip samples: percentiles for `pav serve --stats` and the
//! Prometheus exporter, at a constant cost per endpoint whatever the traffic.
//!
//! Buckets are log-linear (four per power of two of microseconds, from 1 µs to about 70 s;
//! larger samples land in the last bucket), so a percentile is exact to within 19 %.

use crate::time::Duration;

/// Number of buckets.
pub const BUCKETS: usize = 108;

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
        todo!("H1")
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
        todo!("H1")
    }

    /// Every bucket as (inclusive upper bound, cumulative count), ascending: what a
    /// Prometheus histogram's `le` series needs.
    pub fn cumulative(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        todo!("H1");
        #[allow(unreachable_code)]
        core::iter::empty()
    }

    /// Adds every count of `other` (totals across endpoints).
    pub fn add(&mut self, other: &RttHistogram) {
        todo!("H1")
    }
}
