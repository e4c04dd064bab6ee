//! Time between embassy-time's clock and proto's `Instant` (microseconds from any origin).
//!
//! Both count from the device's boot, so the conversion is a change of unit only; it
//! saturates instead of overflowing, because proto may ask for a wake-up far in the future.

/// Proto's instant for an embassy-time instant.
///
/// # Examples
/// ```
/// let t = embassy_time::Instant::from_millis(1500);
/// assert_eq!(pavillion_embassy::to_proto(t).as_micros(), 1_500_000);
/// ```
pub fn to_proto(t: embassy_time::Instant) -> pavillion_proto::Instant {
    pavillion_proto::Instant::from_micros(t.as_micros())
}

/// The embassy-time instant for proto's instant; [`embassy_time::Instant::MAX`] for one past
/// what the tick counter can hold.
///
/// # Examples
/// ```
/// use pavillion_proto::Instant;
/// assert_eq!(pavillion_embassy::to_embassy(Instant::MAX), embassy_time::Instant::MAX);
/// ```
pub fn to_embassy(t: pavillion_proto::Instant) -> embassy_time::Instant {
    embassy_time::Instant::try_from_micros(t.as_micros()).unwrap_or(embassy_time::Instant::MAX)
}

/// Now, in proto's terms.
pub(crate) fn now() -> pavillion_proto::Instant {
    to_proto(embassy_time::Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_keeps_microseconds_both_ways() {
        for us in [0, 1, 999, 1_000_001, 3_600_000_000, u64::MAX / 1_000_000] {
            let t = pavillion_proto::Instant::from_micros(us);
            assert_eq!(to_proto(to_embassy(t)), t, "{us} µs");
        }
    }

    #[test]
    fn far_future_neither_overflows_nor_reorders() {
        // proto's "never" and deadlines near it must stay later than any real time.
        let far = pavillion_proto::Instant::from_micros(u64::MAX - 1);
        assert!(to_embassy(far) > to_embassy(pavillion_proto::Instant::from_micros(1 << 50)));
        assert_eq!(
            to_embassy(pavillion_proto::Instant::MAX),
            embassy_time::Instant::MAX
        );
    }
}
