//! Time as the driver supplies it.
//!
//! `proto` never reads a clock. Every input carries an [`Instant`], a monotonic count of
//! microseconds from an origin the driver chooses (process start, simulation start, boot). Only
//! differences between instants mean anything, so two endpoints may use different origins.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

pub use core::time::Duration;

/// A point in monotonic time, in microseconds since an origin chosen by the driver.
///
/// # Examples
/// ```
/// use pavillion_proto::time::{Duration, Instant};
/// let t0 = Instant::from_micros(1_000);
/// let t1 = t0 + Duration::from_millis(2);
/// assert_eq!(t1.as_micros(), 3_000);
/// assert_eq!(t1.saturating_duration_since(t0), Duration::from_millis(2));
/// assert_eq!(t0.saturating_duration_since(t1), Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the driver's clock.
    pub const ZERO: Instant = Instant(0);
    /// The latest representable instant; useful as "never".
    pub const MAX: Instant = Instant(u64::MAX);

    /// Makes an instant from microseconds since the driver's origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }

    /// Makes an instant from milliseconds since the driver's origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1_000))
    }

    /// Microseconds since the driver's origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, or `None` on overflow.
    pub fn checked_add(self, d: Duration) -> Option<Instant> {
        micros_of(d)
            .and_then(|m| self.0.checked_add(m))
            .map(Instant)
    }

    /// `self - d`, or `None` if it would fall before the origin.
    pub fn checked_sub(self, d: Duration) -> Option<Instant> {
        micros_of(d)
            .and_then(|m| self.0.checked_sub(m))
            .map(Instant)
    }
}

/// A duration's whole microseconds, or `None` if they do not fit a u64.
fn micros_of(d: Duration) -> Option<u64> {
    u64::try_from(d.as_micros()).ok()
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates at [`Instant::MAX`] instead of overflowing: a deadline that far out is "never".
    fn add(self, d: Duration) -> Instant {
        self.checked_add(d).unwrap_or(Instant::MAX)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating: an earlier minus a later instant is zero.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn add_saturates_instead_of_overflowing() {
        let near_end = Instant::from_micros(u64::MAX - 5);
        assert_eq!(near_end + Duration::from_secs(1), Instant::MAX);
        assert_eq!(near_end.checked_add(Duration::from_secs(1)), None);
    }

    #[test]
    fn subtraction_is_saturating() {
        let a = Instant::from_millis(5);
        let b = Instant::from_millis(7);
        assert_eq!(b - a, Duration::from_millis(2));
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!(a.checked_sub(Duration::from_millis(6)), None);
    }

    #[test]
    fn display_is_seconds_with_micros() {
        assert_eq!(Instant::from_micros(1_500_002).to_string(), "1.500002s");
    }
}
