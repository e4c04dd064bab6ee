//! Round-trip time estimation and the retransmission timeout of reliable messages.
//!
//! Read first: RFC 6298 §2 (the estimator and its constants), §3 (Karn's algorithm, which the
//! caller applies) and §5.5 (backing off the timer). We follow its arithmetic exactly but not
//! its Internet-wide bounds; see [`RttConfig::default`] for why.
//!
//! All arithmetic is on whole microseconds, the resolution of [`Instant`](crate::time::Instant),
//! so no floating point is needed and results are identical on every target.

use core::time::Duration;

/// Bounds and starting point of the retransmission timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttConfig {
    /// The timeout before the first RTT sample (RFC 6298's initial RTO).
    ///
    /// Clamped to `min_rto..=max_rto` like every computed timeout.
    pub initial_rto: Duration,
    /// The lowest timeout ever used, however small the measured RTT.
    pub min_rto: Duration,
    /// The highest timeout ever used, including after backoff. Wins over `min_rto` if the two
    /// are inverted, so a misconfiguration cannot panic.
    pub max_rto: Duration,
    /// The clock granularity `G`: the timeout is at least one tick above the smoothed RTT even
    /// when the measured variation is zero.
    pub granularity: Duration,
}

/// A smoothed RTT and its variation, from which the retransmission timeout is derived.
///
/// # Examples
/// ```
/// use pavillion_proto::reliability::rtt::{RttConfig, RttEstimator};
/// use pavillion_proto::Duration;
/// let mut rtt = RttEstimator::new(RttConfig::default());
/// rtt.on_sample(Duration::from_millis(20));
/// // SRTT 20 ms + 4 · RTTVAR 10 ms.
/// assert_eq!(rtt.rto(), Duration::from_millis(60));
/// assert_eq!(rtt.backoff(1), Duration::from_millis(120));
/// ```
#[derive(Clone, Debug)]
pub struct RttEstimator {
    /// The configuration, packed (four `Duration`s take 64 bytes with their padding, and every
    /// server session holds an estimator: `compare`'s memory rows).
    config: Bounds,
    /// The estimate's SRTT ([`Estimate::srtt_8`]) in two halves (so that the struct aligns
    /// to 4 and packs), or [`NO_SAMPLE`] until the first sample, since RFC 6298 treats the
    /// first sample specially. Not an `Option`, which would cost another 8 bytes.
    srtt_8: [u32; 2],
    /// The estimate's RTTVAR ([`Estimate::rttvar_4`]), in two halves; 0 until the first sample.
    rttvar_4: [u32; 2],
    /// How many samples fed the estimate (saturating).
    samples: u32,
}

/// An [`RttConfig`], exactly, in 44 bytes instead of 64: what the estimator reads of it.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    /// `initial_rto` (clamped when read, as every timeout is).
    initial: Packed,
    min_rto: Packed,
    max_rto: Packed,
    /// In whole microseconds (saturating), the only unit the estimator uses it in.
    granularity_us: [u32; 2],
}

impl Bounds {
    const fn new(c: RttConfig) -> Self {
        let us = c.granularity.as_micros();
        let granularity_us = if us > u64::MAX as u128 {
            u64::MAX
        } else {
            us as u64
        };
        Bounds {
            initial: Packed::new(c.initial_rto),
            min_rto: Packed::new(c.min_rto),
            max_rto: Packed::new(c.max_rto),
            granularity_us: split(granularity_us),
        }
    }

    fn max_rto(self) -> Duration {
        self.max_rto.get()
    }

    /// Clamps `rto` into `min_rto..=max_rto`, letting `max_rto` win if the bounds are inverted.
    fn clamp(self, rto: Duration) -> Duration {
        // Not Ord::clamp: that panics when min > max, and the config is caller-supplied.
        rto.max(self.min_rto.get()).min(self.max_rto())
    }
}

/// A `Duration` in 12 bytes aligned to 4 (seconds in two halves, then nanoseconds).
#[derive(Clone, Copy, Debug)]
struct Packed([u32; 3]);

impl Packed {
    const fn new(d: Duration) -> Self {
        let [hi, lo] = split(d.as_secs());
        Packed([hi, lo, d.subsec_nanos()])
    }

    fn get(self) -> Duration {
        let [hi, lo, nanos] = self.0;
        Duration::new(join([hi, lo]), nanos)
    }
}

/// `x` as its high and low 32 bits.
const fn split(x: u64) -> [u32; 2] {
    [(x >> 32) as u32, x as u32]
}

/// The inverse of [`split`].
fn join([hi, lo]: [u32; 2]) -> u64 {
    (u64::from(hi) << 32) | u64::from(lo)
}

/// [`RttEstimator::srtt_8`] before the first sample: above any real value (see [`Estimate`]).
const NO_SAMPLE: u64 = u64::MAX;

impl Default for RttConfig {
    /// Bounds for a LAN protocol: initial 250 ms, min 10 ms, max 4 s, granularity 1 ms.
    ///
    /// RFC 6298 asks for an initial RTO of 1 s, a floor of 1 s and a ceiling of at least 60 s.
    /// Those protect Internet paths from coarse clocks and from receivers that delay their ACKs
    /// by up to 500 ms. Pavillion runs on a LAN, where round trips are well under 10 ms and every
    /// receiver ACKs a reliable message as soon as it decrypts it, so a 1 s floor would turn each
    /// lost datagram into a second of silence; the reference's own retries (every 10 to 320 ms on
    /// the Arduino, 8 resends in about 0.38 s from the Python client) show the expected scale.
    /// - `min_rto` 10 ms: still above the scheduling jitter of a busy host or a microcontroller's
    ///   main loop, which would otherwise cause spurious retransmits once the estimate settles
    ///   near a sub-millisecond RTT; it matches the Arduino's first retry.
    /// - `initial_rto` 250 ms: before any sample we may be talking over Wi-Fi with power saving,
    ///   where a first round trip of 100 to 200 ms is normal; a first loss still costs only a
    ///   quarter of a second.
    /// - `max_rto` 4 s: the caller's deadline, not the ceiling, decides when to give up; the
    ///   ceiling only keeps retries coming often enough that a peer back from a reboot or an
    ///   outage is reached within seconds.
    /// - `granularity` 1 ms: the timer resolution of common async runtimes and embedded ticks.
    fn default() -> Self {
        RttConfig {
            initial_rto: Duration::from_millis(250),
            min_rto: Duration::from_millis(10),
            max_rto: Duration::from_secs(4),
            granularity: Duration::from_millis(1),
        }
    }
}

impl RttEstimator {
    /// Makes an estimator with no samples yet, whose timeout is `config.initial_rto`.
    pub const fn new(config: RttConfig) -> Self {
        RttEstimator {
            config: Bounds::new(config),
            srtt_8: split(NO_SAMPLE),
            rttvar_4: [0; 2],
            samples: 0,
        }
    }

    /// The estimate, `None` before the first sample.
    fn estimate(&self) -> Option<Estimate> {
        let srtt_8 = join(self.srtt_8);
        (srtt_8 != NO_SAMPLE).then_some(Estimate {
            srtt_8,
            rttvar_4: join(self.rttvar_4),
        })
    }

    /// Feeds one round-trip time measured on a message that was sent exactly once.
    ///
    /// Applying Karn's rule is the caller's job: never feed the RTT of a retransmitted message,
    /// since its ACK may answer any of the copies and the sample would be meaningless.
    ///
    /// Samples above `u32::MAX` microseconds (about 71 minutes) are taken as that value. No LAN
    /// round trip comes close, the timeout saturates at `max_rto` long before, and the cap keeps
    /// every intermediate result far from u64 overflow whatever `Duration` is passed.
    pub fn on_sample(&mut self, rtt: Duration) {
        //= https://www.rfc-editor.org/rfc/rfc6298#section-3
        //# RTT samples MUST NOT be made using segments that were retransmitted
        let r = micros(rtt).min(MAX_SAMPLE_MICROS);
        self.samples = self.samples.saturating_add(1);
        let next = match self.estimate() {
            //= https://www.rfc-editor.org/rfc/rfc6298#section-2
            //# (2.2) When the first RTT measurement R is made, the host MUST set
            //#
            //#    SRTT <- R
            //#    RTTVAR <- R/2
            None => Estimate {
                srtt_8: 8 * r,
                rttvar_4: 2 * r,
            },
            //= https://www.rfc-editor.org/rfc/rfc6298#section-2
            //# (2.3) When a subsequent RTT measurement R' is made, a host MUST set
            //#
            //#    RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|
            //#    SRTT <- (1 - alpha) * SRTT + alpha * R'
            //#
            //# The value of SRTT used in the update to RTTVAR is its value
            //# before updating SRTT itself using the second assignment.
            //# [...] The above SHOULD be computed using alpha=1/8 and beta=1/4
            //
            // In the scaled units, x - x/8 + r is 8 · (7/8 · SRTT + 1/8 · R') and likewise for
            // RTTVAR with 4 and 1/4. No overflow: every term is below 2^35 (see Estimate).
            Some(Estimate { srtt_8, rttvar_4 }) => Estimate {
                rttvar_4: rttvar_4 - rttvar_4 / 4 + (srtt_8 / 8).abs_diff(r),
                srtt_8: srtt_8 - srtt_8 / 8 + r,
            },
        };
        (self.srtt_8, self.rttvar_4) = (split(next.srtt_8), split(next.rttvar_4));
    }

    /// The current retransmission timeout, `SRTT + max(G, 4 · RTTVAR)`, within the bounds.
    ///
    /// Before the first sample this is `initial_rto`. The result is always clamped to
    /// `min_rto..=max_rto` (with `max_rto` winning if the bounds are inverted).
    pub fn rto(&self) -> Duration {
        let rto = match self.estimate() {
            None => self.config.initial.get(),
            //= https://www.rfc-editor.org/rfc/rfc6298#section-2
            //# RTO <- SRTT + max (G, K*RTTVAR)
            //#
            //# where K = 4.
            Some(e) => {
                // rttvar_4 is exactly K · RTTVAR. Only the caller's granularity can be huge, hence
                // saturating.
                let spread = join(self.config.granularity_us).max(e.rttvar_4);
                Duration::from_micros(e.srtt().saturating_add(spread))
            }
        };
        self.config.clamp(rto)
    }

    /// The timer for a message already retransmitted `retransmissions` times.
    ///
    /// `backoff(0)` is [`rto`](Self::rto), the first transmission's timer; each retransmission
    /// doubles it, up to `max_rto`. The estimate itself is not touched, so the next fresh sample
    /// replaces the backed-off value at once.
    pub fn backoff(&self, retransmissions: u32) -> Duration {
        //= https://www.rfc-editor.org/rfc/rfc6298#section-5
        //# (5.5) The host MUST set RTO <- RTO * 2 ("back off the timer").
        let rto = self.rto();
        // The first transmission's timer, one per message sent: the RTO is within the ceiling
        // already (`Bounds::clamp`), so there is no doubling to bound.
        if retransmissions == 0 {
            return rto;
        }
        let doubled = 1u32
            .checked_shl(retransmissions)
            .and_then(|factor| rto.checked_mul(factor));
        match doubled {
            Some(d) => d.min(self.config.max_rto()),
            // A zero timeout (possible only with min_rto 0) stays zero however often doubled.
            None if rto.is_zero() => rto,
            None => self.config.max_rto(),
        }
    }

    /// The smoothed round-trip time (SRTT), or `None` before the first sample.
    pub fn smoothed(&self) -> Option<Duration> {
        self.estimate().map(|e| Duration::from_micros(e.srtt()))
    }

    /// The round-trip time variation (RTTVAR), or `None` before the first sample.
    pub fn variance(&self) -> Option<Duration> {
        self.estimate()
            .map(|e| Duration::from_micros(e.rttvar_4 / 4))
    }

    /// How many samples the estimator has taken.
    pub fn samples(&self) -> u64 {
        u64::from(self.samples)
    }
}

/// The estimator's state once it has a sample, in fixed point.
///
/// Scaled as in BSD and Linux TCP: with plain microseconds, truncating `7/8 · SRTT` would let
/// SRTT settle up to 7 µs below a steady RTT, and RTTVAR never decay below 3 µs. With the
/// fractions kept, a steady RTT is reported exactly and its variation decays to zero.
///
/// # Invariants
/// `srtt_8 <= 8 · MAX_SAMPLE_MICROS` and `rttvar_4 <= 4 · MAX_SAMPLE_MICROS`, because each is a
/// weighted average of capped samples (or of differences between two such values).
#[derive(Clone, Copy, Debug)]
struct Estimate {
    /// SRTT in eighths of a microsecond.
    srtt_8: u64,
    /// RTTVAR in quarters of a microsecond, which is also `4 · RTTVAR` in microseconds.
    rttvar_4: u64,
}

impl Estimate {
    /// SRTT in whole microseconds.
    fn srtt(self) -> u64 {
        self.srtt_8 / 8
    }
}

/// A duration in whole microseconds, saturating at u64::MAX.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The largest sample taken at face value, in microseconds (about 71 minutes).
const MAX_SAMPLE_MICROS: u64 = u32::MAX as u64;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use quickcheck::quickcheck;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// An estimator with the default config and no samples.
    fn estimator_fresh() -> RttEstimator {
        RttEstimator::new(RttConfig::default())
    }

    /// An estimator that has seen `samples`, in order.
    fn estimator_with(samples: &[Duration]) -> RttEstimator {
        let mut e = estimator_fresh();
        for &s in samples {
            e.on_sample(s);
        }
        e
    }

    #[test]
    fn initial_rto_before_any_sample() {
        let e = estimator_fresh();
        assert_eq!(e.rto(), ms(250));
        assert_eq!(e.smoothed(), None);
        assert_eq!(e.variance(), None);
        assert_eq!(e.samples(), 0);
        assert_eq!(e.backoff(2), ms(1000));
    }

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let e = estimator_with(&[ms(100)]);
        assert_eq!(e.smoothed(), Some(ms(100)));
        assert_eq!(e.variance(), Some(ms(50)));
        assert_eq!(e.rto(), ms(300));
        assert_eq!(e.samples(), 1);
    }

    #[test]
    fn second_sample_uses_the_old_srtt_for_the_variance() {
        let e = estimator_with(&[ms(100), ms(200)]);
        // RTTVAR = 3/4 · 50 + 1/4 · |100 - 200|; SRTT = 7/8 · 100 + 1/8 · 200.
        assert_eq!(e.variance(), Some(us(62_500)));
        assert_eq!(e.smoothed(), Some(us(112_500)));
        assert_eq!(e.rto(), us(112_500 + 4 * 62_500));
        assert_eq!(e.samples(), 2);
    }

    #[test]
    fn converges_to_a_steady_rtt() {
        let mut e = estimator_with(&[ms(300)]);
        for _ in 0..200 {
            e.on_sample(ms(20));
        }
        assert_eq!(e.smoothed(), Some(ms(20)));
        assert_eq!(e.variance(), Some(Duration::ZERO));
        // With no variation left, the granularity keeps the timeout one tick above the RTT.
        assert_eq!(e.rto(), ms(21));

        // Converging from below, which plain truncating arithmetic would never reach.
        for _ in 0..200 {
            e.on_sample(ms(40));
        }
        assert_eq!(e.smoothed(), Some(ms(40)));
        assert_eq!(e.variance(), Some(Duration::ZERO));
        assert_eq!(e.rto(), ms(41));
    }

    #[test]
    fn rto_is_clamped_to_min() {
        let e = estimator_with(&[us(100); 50]);
        assert_eq!(e.rto(), ms(10));
        let e = estimator_with(&[Duration::ZERO]);
        assert_eq!(e.rto(), ms(10));
    }

    #[test]
    fn rto_is_clamped_to_max() {
        let e = estimator_with(&[ms(3000)]);
        assert_eq!(e.rto(), ms(4000));
    }

    #[test]
    fn backoff_doubles_then_saturates() {
        let e = estimator_with(&[ms(100)]);
        assert_eq!(e.backoff(0), e.rto());
        assert_eq!(e.backoff(1), ms(600));
        assert_eq!(e.backoff(2), ms(1200));
        assert_eq!(e.backoff(3), ms(2400));
        assert_eq!(e.backoff(4), ms(4000));
        for n in [5, 31, 32, 33, 64, u32::MAX] {
            assert_eq!(e.backoff(n), ms(4000), "n = {n}");
        }
    }

    #[test]
    fn huge_samples_do_not_overflow() {
        let mut e = estimator_fresh();
        for _ in 0..10 {
            e.on_sample(Duration::MAX);
        }
        assert_eq!(e.smoothed(), Some(us(MAX_SAMPLE_MICROS)));
        assert_eq!(e.rto(), ms(4000));
        e.on_sample(Duration::ZERO);
        e.on_sample(Duration::MAX);
        assert_eq!(e.rto(), ms(4000));
        assert_eq!(e.backoff(u32::MAX), ms(4000));
    }

    #[test]
    fn estimator_is_small() {
        // Every server session holds one (compare's memory rows): 96 bytes with the config's
        // `Duration`s and an `Option` estimate.
        assert_eq!(core::mem::size_of::<RttEstimator>(), 64);
    }

    #[test]
    fn extreme_configs_do_not_panic() {
        let unbounded = RttConfig {
            initial_rto: Duration::MAX,
            min_rto: Duration::ZERO,
            max_rto: Duration::MAX,
            granularity: Duration::MAX,
        };
        let mut e = RttEstimator::new(unbounded);
        assert_eq!(e.rto(), Duration::MAX);
        assert_eq!(e.backoff(3), Duration::MAX);
        e.on_sample(Duration::MAX);
        assert_eq!(e.rto(), us(u64::MAX));
        assert_eq!(e.backoff(u32::MAX), Duration::MAX);

        let zero = RttConfig {
            min_rto: Duration::ZERO,
            granularity: Duration::ZERO,
            ..RttConfig::default()
        };
        let mut e = RttEstimator::new(zero);
        e.on_sample(Duration::ZERO);
        assert_eq!(e.rto(), Duration::ZERO);
        assert_eq!(e.backoff(u32::MAX), Duration::ZERO);

        let inverted = RttConfig {
            min_rto: ms(500),
            max_rto: ms(100),
            ..RttConfig::default()
        };
        let mut e = RttEstimator::new(inverted);
        assert_eq!(e.rto(), ms(100));
        e.on_sample(ms(1));
        assert_eq!(e.rto(), ms(100));
        assert_eq!(e.backoff(3), ms(100));
    }

    /// Mostly LAN-scale samples, with a few absurd ones mixed in.
    fn samples_from(raw: &[u64]) -> Vec<Duration> {
        raw.iter()
            .map(|&r| match r % 16 {
                0 => Duration::MAX,
                1 => us(r),
                _ => us(r % 5_000_000),
            })
            .collect()
    }

    quickcheck! {
        fn prop_rto_stays_within_bounds(raw: Vec<u64>, n: u32) -> bool {
            let config = RttConfig::default();
            let mut e = RttEstimator::new(config);
            samples_from(&raw).into_iter().all(|s| {
                e.on_sample(s);
                let rto = e.rto();
                let backoff = e.backoff(n);
                (config.min_rto..=config.max_rto).contains(&rto)
                    && rto <= backoff
                    && backoff <= config.max_rto
            })
        }

        fn prop_rto_stays_within_any_bounds(raw: Vec<u64>, bounds: (u64, u64, u64, u64)) -> bool {
            let (a, b, initial, g) = bounds;
            let config = RttConfig {
                initial_rto: us(initial),
                min_rto: us(a.min(b)),
                max_rto: us(a.max(b)),
                granularity: us(g),
            };
            let mut e = RttEstimator::new(config);
            let in_bounds = |e: &RttEstimator| {
                (config.min_rto..=config.max_rto).contains(&e.rto())
                    && e.backoff(u32::MAX) <= config.max_rto
            };
            in_bounds(&e)
                && samples_from(&raw).into_iter().all(|s| {
                    e.on_sample(s);
                    in_bounds(&e)
                })
        }

        fn prop_backoff_is_monotonic(raw: Vec<u64>, n: u8) -> bool {
            let e = estimator_with(&samples_from(&raw));
            let n = u32::from(n);
            e.backoff(n) <= e.backoff(n + 1)
        }

        fn prop_samples_are_counted(raw: Vec<u64>) -> bool {
            let e = estimator_with(&samples_from(&raw));
            e.samples() == raw.len() as u64 && e.smoothed().is_some() != raw.is_empty()
        }
    }
}
