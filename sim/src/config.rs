//! What a simulation is made of: its seed, its length and the faults of its links.

use core::fmt;
use core::time::Duration;

/// Faults the sending driver injects into every datagram on a link, drawn from the sender's
/// seeded RNG.
///
/// turmoil itself only delays datagrams (by `latency`, a fixed delay) and never loses them in
/// our simulations: loss, duplication, corruption and reordering happen in the driver, so they
/// apply to each copy of a multicast datagram independently and depend only on the sender's
/// own sequence of sends, not on how turmoil schedules hosts.
///
/// # Examples
/// ```
/// use pavillion_sim::LinkFaults;
/// let link = LinkFaults::clean().with_loss(0.3);
/// assert!(link.validate().is_ok());
/// assert!(LinkFaults::clean().with_loss(1.5).validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkFaults {
    /// Probability that a datagram is lost, in `0.0..=1.0`.
    pub loss: f64,
    /// Probability that a datagram is sent twice, in `0.0..=1.0`.
    pub duplicate: f64,
    /// Probability that one random bit of a datagram is flipped, in `0.0..=1.0`.
    pub corrupt: f64,
    /// Each copy is held back by a delay drawn uniformly from `0..=reorder_jitter`, which
    /// reorders datagrams sent closer together than the jitter.
    pub reorder_jitter: Duration,
    /// One-way delay that turmoil applies to every datagram; whole milliseconds, since
    /// turmoil's clock ticks in milliseconds. Global for the simulation: per-link settings
    /// ignore it.
    pub latency: Duration,
}

impl LinkFaults {
    /// A link that only delays datagrams by 1 ms.
    pub const fn clean() -> Self {
        LinkFaults {
            loss: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            reorder_jitter: Duration::ZERO,
            latency: Duration::from_millis(1),
        }
    }

    /// Sets the loss probability.
    pub const fn with_loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// Sets the duplication probability.
    pub const fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Sets the corruption probability.
    pub const fn with_corrupt(mut self, p: f64) -> Self {
        self.corrupt = p;
        self
    }

    /// Sets the reordering jitter.
    pub const fn with_reorder_jitter(mut self, jitter: Duration) -> Self {
        self.reorder_jitter = jitter;
        self
    }

    /// Sets the one-way latency.
    pub const fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Checks that every probability lies in `0.0..=1.0`.
    ///
    /// # Errors
    /// [`ConfigError::Probability`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, p) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::Probability(name));
            }
        }
        Ok(())
    }
}

impl Default for LinkFaults {
    fn default() -> Self {
        LinkFaults::clean()
    }
}

/// A seeded simulation run.
///
/// # Examples
/// ```
/// use core::time::Duration;
/// use pavillion_sim::{LinkFaults, SimConfig};
/// let config = SimConfig::new(7)
///     .with_duration(Duration::from_secs(20))
///     .with_link(LinkFaults::clean().with_loss(0.1));
/// assert_eq!(config.seed, 7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimConfig {
    /// Seeds turmoil and, together with each host's name, every RNG of the run.
    pub seed: u64,
    /// How much simulated time [`Simulation::run`](crate::Simulation::run) covers.
    pub duration: Duration,
    /// The faults of every link without its own setting.
    pub link: LinkFaults,
    /// Keep what a decoded trace needs (off by default, so that ordinary runs pay nothing):
    /// each datagram copy's bytes, a record of each datagram handed to a host, every
    /// endpoint's session secrets (their key log is turned on) and structured role events.
    /// The digest does not depend on it. See [`Trace::write_v1`](crate::Trace::write_v1).
    pub decoded_trace: bool,
}

impl SimConfig {
    /// Ten simulated seconds on clean links.
    pub const fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            duration: Duration::from_secs(10),
            link: LinkFaults::clean(),
            decoded_trace: false,
        }
    }

    /// Sets how long the run lasts.
    pub const fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// Keeps what a decoded trace needs, or not (see [`SimConfig::decoded_trace`]).
    pub const fn with_decoded_trace(mut self, on: bool) -> Self {
        self.decoded_trace = on;
        self
    }

    /// Sets the default link faults.
    pub const fn with_link(mut self, link: LinkFaults) -> Self {
        self.link = link;
        self
    }
}

/// A configuration the simulation cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A probability field (named) is outside `0.0..=1.0` or NaN.
    Probability(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Probability(name) => write!(f, "probability `{name}` is not in 0..=1"),
        }
    }
}

impl core::error::Error for ConfigError {}
