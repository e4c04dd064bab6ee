//! A map keyed by socket address that keeps IPv4 keys in 6 bytes instead of 32.
//!
//! The server's session table holds one entry per session, idle or not, so its B-tree nodes
//! count per session (`compare`'s memory rows): with `SocketAddr` keys a leaf of eleven
//! entries is 452 bytes, most of it IPv6-sized room that IPv4 addresses leave empty, and
//! leaves are often half full. IPv4 keys go into their own tree as `SocketAddrV4` (a leaf of
//! 168 bytes for the session table's boxed values); the rest into a second tree.
//!
//! It behaves as one `BTreeMap<SocketAddr, V>`, iteration order included (every IPv4
//! address sorts before every IPv6 one, and `SocketAddrV4` sorts as its `SocketAddr` does),
//! which `tests::prop_matches_btreemap` checks against that map.
//!
//! Parses no wire bytes, sets no timers, emits no events.

use alloc::collections::BTreeMap;
use core::net::{SocketAddr, SocketAddrV4};

/// A map from socket address to `V`; see the module docs.
#[derive(Debug)]
pub(super) struct AddrMap<V> {
    v4: BTreeMap<SocketAddrV4, V>,
    /// IPv6 addresses; never an IPv4 one.
    other: BTreeMap<SocketAddr, V>,
}

impl<V> Default for AddrMap<V> {
    fn default() -> Self {
        AddrMap {
            v4: BTreeMap::new(),
            other: BTreeMap::new(),
        }
    }
}

impl<V> AddrMap<V> {
    /// Puts `value` at `addr`, returning what was there.
    pub(super) fn insert(&mut self, addr: SocketAddr, value: V) -> Option<V> {
        match addr {
            SocketAddr::V4(a) => self.v4.insert(a, value),
            other => self.other.insert(other, value),
        }
    }

    /// Takes the value at `addr` out.
    pub(super) fn remove(&mut self, addr: &SocketAddr) -> Option<V> {
        match addr {
            SocketAddr::V4(a) => self.v4.remove(a),
            other => self.other.remove(other),
        }
    }

    /// The value at `addr`, to change.
    pub(super) fn get_mut(&mut self, addr: &SocketAddr) -> Option<&mut V> {
        match addr {
            SocketAddr::V4(a) => self.v4.get_mut(a),
            other => self.other.get_mut(other),
        }
    }

    /// Every entry in address order, values to change.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (SocketAddr, &mut V)> {
        let v4 = self.v4.iter_mut().map(|(a, v)| (SocketAddr::V4(*a), v));
        v4.chain(self.other.iter_mut().map(|(a, v)| (*a, v)))
    }

    /// Every value in address order, to change.
    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.v4.values_mut().chain(self.other.values_mut())
    }

    /// The value at `addr`.
    pub(super) fn get(&self, addr: &SocketAddr) -> Option<&V> {
        match addr {
            SocketAddr::V4(a) => self.v4.get(a),
            other => self.other.get(other),
        }
    }

    /// Whether `addr` has a value.
    pub(super) fn contains_key(&self, addr: &SocketAddr) -> bool {
        self.get(addr).is_some()
    }

    /// How many entries there are.
    pub(super) fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    /// Whether there are none.
    pub(super) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.other.is_empty()
    }

    /// Every entry in address order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (SocketAddr, &V)> {
        let v4 = self.v4.iter().map(|(a, v)| (SocketAddr::V4(*a), v));
        v4.chain(self.other.iter().map(|(a, v)| (*a, v)))
    }

    /// Every address in order.
    pub(super) fn keys(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.iter().map(|(a, _)| a)
    }

    /// Every value in address order.
    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.v4.values().chain(self.other.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
    use quickcheck::quickcheck;

    /// Addresses from a small pool, so that operations meet the same keys again: IPv4 and
    /// IPv6, and IPv4-mapped IPv6 ones, which must stay in the other tree.
    fn addr(n: u8) -> SocketAddr {
        let port = u16::from(n % 4);
        match n % 3 {
            0 => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n / 12), port)),
            1 => SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n / 12)),
                port,
                0,
                0,
            )),
            _ => SocketAddr::V6(SocketAddrV6::new(
                Ipv4Addr::new(10, 0, 0, n / 12).to_ipv6_mapped(),
                port,
                0,
                0,
            )),
        }
    }

    /// Runs `ops` on the map and on a `BTreeMap<SocketAddr, _>` (the model), and tells
    /// whether every answer and the final contents, in order, agree.
    fn agrees(ops: &[(u8, u8, u32)]) -> bool {
        let mut map = AddrMap::default();
        let mut model = BTreeMap::new();
        let same_answers = ops.iter().all(|&(op, n, value)| {
            let a = addr(n);
            match op % 4 {
                0 | 1 => map.insert(a, value) == model.insert(a, value),
                2 => map.remove(&a) == model.remove(&a),
                _ => {
                    if let (Some(v), Some(m)) = (map.get_mut(&a), model.get_mut(&a)) {
                        *v = v.wrapping_add(1);
                        *m = m.wrapping_add(1);
                    }
                    map.get(&a) == model.get(&a) && map.contains_key(&a) == model.contains_key(&a)
                }
            }
        });
        let ours: Vec<(SocketAddr, u32)> = map.iter().map(|(a, v)| (a, *v)).collect();
        let theirs: Vec<(SocketAddr, u32)> = model.iter().map(|(a, v)| (*a, *v)).collect();
        let keys: Vec<SocketAddr> = map.keys().collect();
        let values: Vec<u32> = map.values().copied().collect();
        let mut_order: Vec<SocketAddr> = map.iter_mut().map(|(a, _)| a).collect();
        let mut_values = map.values_mut().count();
        same_answers
            && ours == theirs
            && keys == model.keys().copied().collect::<Vec<_>>()
            && values == model.values().copied().collect::<Vec<_>>()
            && mut_order == keys
            && mut_values == model.len()
            && map.len() == model.len()
            && map.is_empty() == model.is_empty()
    }

    #[test]
    fn ipv4_sorts_before_ipv6_as_in_one_map() {
        let v6 = addr(1);
        let v4 = addr(0);
        let mapped = addr(2);
        let ops = [(0, 1, 1), (0, 2, 2), (0, 0, 3)];
        assert!(agrees(&ops));
        let mut map = AddrMap::default();
        map.insert(v6, 1);
        map.insert(mapped, 2);
        map.insert(v4, 3);
        // The IPv4-mapped address is an IPv6 key: it must not meet the IPv4 one.
        assert_eq!(map.get(&v4), Some(&3));
        assert_eq!(map.get(&mapped), Some(&2));
        assert_eq!(map.keys().next(), Some(v4));
    }

    quickcheck! {
        fn prop_matches_btreemap(ops: Vec<(u8, u8, u32)>) -> bool {
            agrees(&ops)
        }
    }
}
