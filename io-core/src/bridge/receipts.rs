//! MQTT → Pavillion (`[[from_mqtt]]`): whether a broker publish has reached its Pavillion
//! receivers, judged over all the attempts the bridge made to send it (`docs/BRIDGE.md`,
//! "Guarantees").
//!
//! Each attempt sends the message again (a new message, with a new counter) and ends, for
//! each send, with who acknowledged it and which expected receivers did not (`Delivery`), or
//! with no outcome at all (nobody acknowledged in time, the send was refused). A receiver that
//! acknowledged any attempt has the message; so an attempt completes the publish when every
//! receiver it still missed had acknowledged an earlier one, and, for a group, when at least
//! `min_acks` servers acknowledged some attempt. That second rule covers the servers a group
//! client has not heard of (it expects only those that announced the target): a server that
//! was down when the bridge started, or silent for longer than the client's subscriber TTL.
//!
//! Memory is bounded: at most [`MAX_RECEIPTS`] receivers are remembered per publish, more
//! than `min_acks` can ask for.

use core::net::SocketAddr;

use super::config::MAX_MIN_ACKS;

/// The most receivers remembered for one publish.
pub const MAX_RECEIPTS: usize = 2 * MAX_MIN_ACKS;

/// Who acknowledged one broker publish over its attempts, and how many must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipts {
    /// Distinct receivers that acknowledged some attempt, at most [`MAX_RECEIPTS`].
    acked: Vec<SocketAddr>,
    /// The fewest distinct receivers the publish needs (1 for anything but a group).
    min_acks: usize,
}

impl Receipts {
    /// No receipts yet, for a publish that needs `min_acks` distinct receivers (at least 1).
    pub fn new(min_acks: usize) -> Receipts {
        Receipts {
            acked: Vec::new(),
            min_acks: min_acks.max(1),
        }
    }

    /// Records one send's outcome: `acked` acknowledged it, `missing` were expected and did
    /// not. Returns whether every receiver of this send has the message now (each one it
    /// missed acknowledged an earlier attempt).
    pub fn on_outcome(&mut self, acked: &[SocketAddr], missing: &[SocketAddr]) -> bool {
        for a in acked {
            if !self.acked.contains(a) && self.acked.len() < MAX_RECEIPTS {
                self.acked.push(*a);
            }
        }
        missing.iter().all(|m| self.acked.contains(m))
    }

    /// Whether enough distinct receivers acknowledged the publish.
    pub fn is_enough(&self) -> bool {
        self.acked.len() >= self.min_acks
    }

    /// The distinct receivers that acknowledged some attempt.
    pub fn acked(&self) -> &[SocketAddr] {
        &self.acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000 + u16::from(n)))
    }

    #[test]
    fn a_server_missed_by_one_attempt_counts_once_it_acknowledges_another() {
        let mut r = Receipts::new(2);
        // Attempt 1: A acknowledged, B (expected) did not.
        assert!(!r.on_outcome(&[addr(1)], &[addr(2)]));
        assert!(!r.is_enough());
        // Attempt 2: B is back, A is away now: both have it.
        assert!(r.on_outcome(&[addr(2)], &[addr(1)]));
        assert!(r.is_enough());
    }

    #[test]
    fn a_group_needs_min_acks_distinct_servers_even_when_none_is_missing() {
        // The client expected only A (B never announced itself): complete for it, not for us.
        let mut r = Receipts::new(2);
        assert!(r.on_outcome(&[addr(1)], &[]));
        assert!(!r.is_enough());
        // A again is still one server.
        assert!(r.on_outcome(&[addr(1)], &[]));
        assert!(!r.is_enough());
        assert!(r.on_outcome(&[addr(1), addr(2)], &[]));
        assert!(r.is_enough());
        assert_eq!(r.acked(), &[addr(1), addr(2)]);
    }

    #[test]
    fn one_ack_is_enough_by_default() {
        let mut r = Receipts::new(0);
        assert!(!r.is_enough());
        assert!(r.on_outcome(&[addr(1)], &[]));
        assert!(r.is_enough());
    }

    quickcheck! {
        /// Whatever the outcomes, the publish is complete only if every receiver any attempt
        /// missed acknowledged some attempt and at least `min_acks` distinct ones did; and
        /// the memory stays bounded.
        fn complete_only_when_every_missed_receiver_has_it(
            min_acks: u8,
            attempts: Vec<(Vec<u8>, Vec<u8>)>
        ) -> bool {
            let min_acks = usize::from(min_acks % 4) + 1;
            let mut r = Receipts::new(min_acks);
            let mut ever: Vec<SocketAddr> = Vec::new();
            for (acked, missing) in &attempts {
                let acked: Vec<SocketAddr> = acked.iter().map(|n| addr(n % 8)).collect();
                let missing: Vec<SocketAddr> = missing.iter().map(|n| addr(n % 8)).collect();
                ever.extend(&acked);
                let all_have = r.on_outcome(&acked, &missing);
                if all_have != missing.iter().all(|m| ever.contains(m)) {
                    return false;
                }
                let mut distinct = ever.clone();
                distinct.sort();
                distinct.dedup();
                if r.is_enough() != (distinct.len() >= min_acks)
                    || r.acked().len() > MAX_RECEIPTS
                {
                    return false;
                }
            }
            true
        }
    }
}
