//! [`Receivers`]: the addresses that acknowledged a reliable message.

use alloc::vec::Vec;
use core::net::SocketAddr;

/// The receivers that acknowledged a reliable message, in the order they answered, each once.
///
/// Reads as a slice (`len`, `iter`, `contains`, `first`, `to_vec` through `Deref`). One
/// address is held inline: a unicast message is acknowledged by one server, and a `Vec` of
/// one cost a heap allocation and its release for every message sent, on the path that every
/// pipelined message takes (issue 19). Only a group's second answer moves them to the heap.
#[derive(Clone, Default)]
pub struct Receivers(Repr);

/// Invariant: `Many` holds none or at least two addresses; a single one is always `One`.
#[derive(Clone)]
enum Repr {
    One(SocketAddr),
    Many(Vec<SocketAddr>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Many(Vec::new())
    }
}

impl Receivers {
    /// No receiver yet.
    pub const fn new() -> Self {
        Receivers(Repr::Many(Vec::new()))
    }

    /// Just `addr`.
    pub const fn one(addr: SocketAddr) -> Self {
        Receivers(Repr::One(addr))
    }

    /// Adds `addr` at the end unless it is already there; returns whether it was added.
    pub fn insert(&mut self, addr: SocketAddr) -> bool {
        if self.contains(&addr) {
            return false;
        }
        match &mut self.0 {
            Repr::Many(v) if v.is_empty() => self.0 = Repr::One(addr),
            Repr::Many(v) => v.push(addr),
            Repr::One(first) => self.0 = Repr::Many(alloc::vec![*first, addr]),
        }
        true
    }

    /// The addresses, in the order they were added.
    pub fn as_slice(&self) -> &[SocketAddr] {
        match &self.0 {
            Repr::One(a) => core::slice::from_ref(a),
            Repr::Many(v) => v,
        }
    }
}

impl core::ops::Deref for Receivers {
    type Target = [SocketAddr];

    fn deref(&self) -> &[SocketAddr] {
        self.as_slice()
    }
}

impl<'a> IntoIterator for &'a Receivers {
    type Item = &'a SocketAddr;
    type IntoIter = core::slice::Iter<'a, SocketAddr>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

/// Each address once, in order (duplicates after the first are skipped, as `insert` does).
impl FromIterator<SocketAddr> for Receivers {
    fn from_iter<I: IntoIterator<Item = SocketAddr>>(iter: I) -> Self {
        let mut r = Receivers::new();
        for a in iter {
            r.insert(a);
        }
        r
    }
}

/// The list form a `Vec<SocketAddr>` printed, which traces and digests keep.
impl core::fmt::Debug for Receivers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl PartialEq for Receivers {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Receivers {}

impl PartialEq<[SocketAddr]> for Receivers {
    fn eq(&self, other: &[SocketAddr]) -> bool {
        self.as_slice() == other
    }
}

impl<const N: usize> PartialEq<[SocketAddr; N]> for Receivers {
    fn eq(&self, other: &[SocketAddr; N]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<Vec<SocketAddr>> for Receivers {
    fn eq(&self, other: &Vec<SocketAddr>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// A sequence of `ip:port` strings, as the `Vec` it replaced.
#[cfg(feature = "serde")]
impl serde::Serialize for Receivers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use alloc::{format, vec};

    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn one_is_inline_and_two_or_more_keep_their_order_once_each() {
        let mut r = Receivers::new();
        assert!(r.is_empty());
        assert!(r.insert(addr(1)));
        assert!(matches!(r.0, Repr::One(_)));
        assert_eq!(r, [addr(1)]);
        assert!(!r.insert(addr(1)), "each once");
        assert!(r.insert(addr(2)));
        assert!(r.insert(addr(3)));
        assert!(!r.insert(addr(2)));
        assert_eq!(r, vec![addr(1), addr(2), addr(3)]);
        assert_eq!(
            format!("{r:?}"),
            format!("{:?}", vec![addr(1), addr(2), addr(3)])
        );
        assert_eq!(
            Receivers::one(addr(1)),
            [addr(1)].into_iter().collect::<Receivers>()
        );
    }
}
