//! The echo cache: content keys of datagrams a relay carried, received or emitted within the
//! echo window. A datagram whose key is here is a copy: a second relay of the origin segment
//! captured it too, or our own (or a sibling's) emission came back from the segment.

use alloc::collections::{BTreeMap, VecDeque};
use core::net::IpAddr;

use blake2::digest::consts::U8;
use blake2::{Blake2b, Digest};

use crate::endpoint::Scope;
use crate::time::{Duration, Instant};

/// What makes two datagrams the same: destination port, scope and a 64-bit BLAKE2b digest of
/// the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentKey {
    port: u16,
    /// 0 broadcast, 4 or 6 multicast, with the group's bytes.
    scope: (u8, [u8; 16]),
    digest: u64,
}

impl ContentKey {
    /// The key of a datagram.
    pub fn of(port: u16, scope: Scope, payload: &[u8]) -> Self {
        let scope = match scope {
            Scope::Broadcast => (0, [0; 16]),
            Scope::Multicast(IpAddr::V4(a)) => {
                let mut b = [0; 16];
                b[..4].copy_from_slice(&a.octets());
                (4, b)
            }
            Scope::Multicast(IpAddr::V6(a)) => (6, a.octets()),
        };
        let d: [u8; 8] = Blake2b::<U8>::digest(payload).into();
        ContentKey {
            port,
            scope,
            digest: u64::from_le_bytes(d),
        }
    }
}

/// Content keys with expiry; at most `cap` of them (the oldest go first).
#[derive(Clone, Debug)]
pub struct EchoCache {
    window: Duration,
    cap: usize,
    /// Each key's current expiry.
    keys: BTreeMap<ContentKey, Instant>,
    /// Keys in insertion order with the expiry they got then; an entry whose expiry is not
    /// the key's current one is stale (the key was recorded again) and is skipped. At most
    /// `2 * cap` entries.
    order: VecDeque<(Instant, ContentKey)>,
}

impl EchoCache {
    /// An empty cache remembering keys for `window`, at most `cap` of them.
    pub fn new(window: Duration, cap: usize) -> Self {
        EchoCache {
            window,
            cap: cap.max(1),
            keys: BTreeMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `key` was recorded within the window.
    pub fn contains(&self, now: Instant, key: &ContentKey) -> bool {
        self.keys.get(key).is_some_and(|e| *e > now)
    }

    /// Records `key` (again) until `now + window`.
    pub fn insert(&mut self, now: Instant, key: ContentKey) {
        self.expire(now);
        let expiry = now + self.window;
        self.keys.insert(key, expiry);
        self.order.push_back((expiry, key));
        while self.keys.len() > self.cap || self.order.len() > 2 * self.cap {
            self.pop_front();
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// When the oldest key expires, if any.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.order.front().map(|(e, _)| *e)
    }

    /// Forgets the keys whose window has passed.
    pub fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(e, _)| *e <= now) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((expiry, key)) = self.order.pop_front() {
            if self.keys.get(&key) == Some(&expiry) {
                self.keys.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_expire_and_stay_bounded() {
        let t0 = Instant::from_millis(1000);
        let mut c = EchoCache::new(Duration::from_secs(1), 3);
        let k = |p: &[u8]| ContentKey::of(5076, Scope::Broadcast, p);
        c.insert(t0, k(b"a"));
        assert!(c.contains(t0, &k(b"a")));
        assert!(!c.contains(t0, &k(b"b")));
        assert!(!c.contains(t0, &ContentKey::of(5077, Scope::Broadcast, b"a")));
        assert!(!c.contains(t0 + Duration::from_secs(1), &k(b"a")));
        for i in 0..100u32 {
            c.insert(t0, k(&i.to_le_bytes()));
            assert!(c.len() <= 3 && c.order.len() <= 6);
        }
        // The newest stay; the oldest went first.
        assert!(c.contains(t0, &k(&99u32.to_le_bytes())));
        assert!(!c.contains(t0, &k(&0u32.to_le_bytes())));
        // Recording a key again extends it.
        c.insert(t0, k(b"x"));
        c.insert(t0 + Duration::from_millis(900), k(b"x"));
        assert!(c.contains(t0 + Duration::from_millis(1500), &k(b"x")));
        c.expire(t0 + Duration::from_secs(5));
        assert!(c.is_empty());
    }
}
