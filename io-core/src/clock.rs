//! The drivers' clock: `proto` takes time as an input and reads none, so the clock that
//! turns the system's monotonic time into [`Instant`]s lives here, beside the adapters.

use core::time::Duration;

use pavillion_proto::Instant;

/// A driver's clock on `std`: [`Instant`]s counted from the moment the clock was made.
///
/// `proto` reads no clock at all, so this lives with the adapters: they (and benchmarks and
/// examples) read it, and it converts back to `std::time::Instant` to arm real timers at
/// `poll_timeout()`.
///
/// # Examples
/// ```
/// use pavillion_io::StdClock;
/// let clock = StdClock::new();
/// let now = clock.now();
/// let back = clock.to_std(now).unwrap();
/// assert_eq!(clock.from_std(back), now);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct StdClock {
    origin: std::time::Instant,
}

impl StdClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        StdClock {
            origin: std::time::Instant::now(),
        }
    }

    /// The current time in the endpoint's time base.
    pub fn now(&self) -> Instant {
        self.from_std(std::time::Instant::now())
    }

    /// Converts a std instant to the endpoint's time base; instants before the origin clamp
    /// to zero.
    pub fn from_std(&self, t: std::time::Instant) -> Instant {
        let micros = t.saturating_duration_since(self.origin).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// Converts an endpoint instant to a std instant, if representable.
    pub fn to_std(&self, t: Instant) -> Option<std::time::Instant> {
        self.origin
            .checked_add(Duration::from_micros(t.as_micros()))
    }
}

impl Default for StdClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_clock_round_trips_and_clamps() {
        let clock = StdClock::new();
        let t = Instant::from_micros(1_234_567);
        assert_eq!(clock.from_std(clock.to_std(t).unwrap()), t);
        let before = clock.to_std(Instant::ZERO).unwrap() - Duration::from_millis(1);
        assert_eq!(clock.from_std(before), Instant::ZERO);
    }
}
