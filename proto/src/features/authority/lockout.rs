//! Lockout of credentials that fail to prove themselves: counted per static public key that
//! completed a handshake (never per address, which an attacker can spoof), with a growing
//! lock, and a global budget of failed proofs that bounds online guessing with fresh keys.

use alloc::collections::BTreeMap;

use crate::time::{Duration, Instant};

/// How failed proofs lock a key out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failed proofs of one key that lock it.
    pub threshold: u32,
    /// The first lock; each further lock of the same key doubles it.
    pub base: Duration,
    /// Longest lock.
    pub max: Duration,
    /// Failed proofs accepted per minute over all keys; beyond it joins with a proof are
    /// answered `Busy` without checking.
    pub failed_proofs_per_minute: u32,
    /// Most keys tracked; when full, the entry whose lock ends first is forgotten.
    pub max_entries: usize,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            threshold: 5,
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
            failed_proofs_per_minute: 60,
            max_entries: 4096,
        }
    }
}

/// A key whose failures are counted: the static public key that completed the handshake.
pub type KeyBytes = [u8; 32];

/// What we remember of one key that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// Consecutive failed proofs since the last lock (or success).
    failures: u32,
    /// How many times it was locked: the next lock lasts `base * 2^level`.
    level: u8,
    /// When its current lock ends, if it is locked.
    until: Option<Instant>,
}

/// A key's lockout state as stored (`StoreTable::Lockouts` value: failures (2), level (1),
/// remaining lock in milliseconds (8), little endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutRecord {
    /// Consecutive failures (saturated at `u16::MAX`).
    pub failures: u16,
    /// Locks so far.
    pub level: u8,
    /// What remains of its lock, in milliseconds (0: not locked).
    pub remaining_ms: u64,
}

impl LockoutRecord {
    /// Its stored bytes.
    pub fn encode(&self) -> [u8; 11] {
        let mut b = [0; 11];
        b[..2].copy_from_slice(&self.failures.to_le_bytes());
        b[2] = self.level;
        b[3..].copy_from_slice(&self.remaining_ms.to_le_bytes());
        b
    }

    /// Reads stored bytes; `None` if they are not 11 bytes.
    pub fn decode(bytes: &[u8]) -> Option<LockoutRecord> {
        let b: &[u8; 11] = bytes.try_into().ok()?;
        Some(LockoutRecord {
            failures: u16::from_le_bytes([b[0], b[1]]),
            level: b[2],
            remaining_ms: u64::from_le_bytes([b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10]]),
        })
    }
}

/// Tokens are kept in "token-microseconds" so that refilling needs no division: one failed
/// proof costs a minute's worth of microseconds, and every elapsed microsecond adds
/// `failed_proofs_per_minute` of them.
const TOKEN: u64 = 60_000_000;

/// The lockout table and the global budget of failed proofs.
#[derive(Clone, Debug)]
pub struct Lockouts {
    policy: LockoutPolicy,
    entries: BTreeMap<KeyBytes, Entry>,
    tokens: u64,
    refilled: Instant,
}

impl Lockouts {
    /// An empty table with a full budget.
    pub fn new(policy: LockoutPolicy, now: Instant) -> Self {
        let tokens = u64::from(policy.failed_proofs_per_minute).saturating_mul(TOKEN);
        Lockouts {
            policy,
            entries: BTreeMap::new(),
            tokens,
            refilled: now,
        }
    }

    /// Replaces the policy (a reloaded file); counts and locks already made stay.
    pub fn set_policy(&mut self, policy: LockoutPolicy) {
        self.policy = policy;
    }

    /// How long `key` stays locked, or `None` if it may try.
    pub fn locked(&self, now: Instant, key: &KeyBytes) -> Option<Duration> {
        let until = self.entries.get(key)?.until?;
        (until > now).then(|| until.saturating_duration_since(now))
    }

    /// `None` if a failed proof may still be checked now; else how long until one may.
    pub fn budget(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        if self.tokens >= TOKEN {
            return None;
        }
        let rate = u64::from(self.policy.failed_proofs_per_minute);
        if rate == 0 {
            return Some(Duration::from_secs(60));
        }
        Some(Duration::from_micros((TOKEN - self.tokens).div_ceil(rate)))
    }

    /// Counts a failed proof of `key` and takes one token of the budget. Returns the lock's
    /// length if this failure locked the key.
    pub fn fail(&mut self, now: Instant, key: &KeyBytes) -> Option<Duration> {
        self.refill(now);
        self.tokens = self.tokens.saturating_sub(TOKEN);
        if !self.entries.contains_key(key) && self.entries.len() >= self.policy.max_entries {
            self.evict(now);
        }
        if self.policy.max_entries == 0 {
            return None;
        }
        let entry = self.entries.entry(*key).or_insert(Entry {
            failures: 0,
            level: 0,
            until: None,
        });
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures < self.policy.threshold.max(1) {
            return None;
        }
        let lock = lock_length(&self.policy, entry.level);
        entry.failures = 0;
        entry.level = entry.level.saturating_add(1);
        entry.until = Some(now.checked_add(lock).unwrap_or(Instant::MAX));
        Some(lock)
    }

    /// A successful proof (or join) of `key`: its count and locks are forgotten. Returns
    /// whether there was anything to forget.
    pub fn succeed(&mut self, key: &KeyBytes) -> bool {
        self.entries.remove(key).is_some()
    }

    /// The state of `key` to store, `None` if it has none (delete its record).
    pub fn record(&self, now: Instant, key: &KeyBytes) -> Option<LockoutRecord> {
        let e = self.entries.get(key)?;
        let remaining = e
            .until
            .map_or(Duration::ZERO, |u| u.saturating_duration_since(now));
        Some(LockoutRecord {
            failures: u16::try_from(e.failures).unwrap_or(u16::MAX),
            level: e.level,
            remaining_ms: u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Every key with state, for a full store write.
    pub fn keys(&self) -> impl Iterator<Item = &KeyBytes> {
        self.entries.keys()
    }

    /// Restores a stored record (at start): a lock continues for what remained of it.
    pub fn restore(&mut self, now: Instant, key: KeyBytes, record: LockoutRecord) {
        if self.entries.len() >= self.policy.max_entries && !self.entries.contains_key(&key) {
            self.evict(now);
        }
        if self.policy.max_entries == 0 {
            return;
        }
        let until = (record.remaining_ms > 0).then(|| {
            now.checked_add(Duration::from_millis(record.remaining_ms))
                .unwrap_or(Instant::MAX)
        });
        self.entries.insert(
            key,
            Entry {
                failures: u32::from(record.failures),
                level: record.level,
                until,
            },
        );
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn refill(&mut self, now: Instant) {
        let cap = u64::from(self.policy.failed_proofs_per_minute).saturating_mul(TOKEN);
        let elapsed = u64::try_from(now.saturating_duration_since(self.refilled).as_micros())
            .unwrap_or(u64::MAX);
        let add = elapsed.saturating_mul(u64::from(self.policy.failed_proofs_per_minute));
        self.tokens = self.tokens.saturating_add(add).min(cap);
        self.refilled = self.refilled.max(now);
    }

    /// Forgets the entry whose lock ends first (unlocked entries first): the one that protects
    /// least. A flood of fresh keys can thus only push out other attackers' stale counts.
    fn evict(&mut self, now: Instant) {
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.until.filter(|u| *u > now).unwrap_or(Instant::ZERO))
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            self.entries.remove(&k);
        }
    }
}

/// `base * 2^level`, at most `max`.
fn lock_length(policy: &LockoutPolicy, level: u8) -> Duration {
    let factor = 1u32.checked_shl(u32::from(level)).unwrap_or(u32::MAX);
    policy
        .base
        .checked_mul(factor)
        .unwrap_or(policy.max)
        .min(policy.max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn threshold_failures_lock_and_locks_grow_to_the_max() {
        let mut l = Lockouts::new(LockoutPolicy::default(), t(0));
        let k = [1; 32];
        for _ in 0..4 {
            assert_eq!(l.fail(t(0), &k), None);
            assert_eq!(l.locked(t(0), &k), None);
        }
        assert_eq!(l.fail(t(0), &k), Some(Duration::from_secs(30)));
        assert_eq!(l.locked(t(1_000), &k), Some(Duration::from_secs(29)));
        assert_eq!(l.locked(t(30_000), &k), None);
        let mut now = 30_000;
        let mut locks = Vec::new();
        for _ in 0..8 {
            for _ in 0..4 {
                l.fail(t(now), &k);
            }
            let d = l.fail(t(now), &k).unwrap();
            locks.push(d.as_secs());
            now += u64::try_from(d.as_millis()).unwrap() + 60_000;
        }
        assert_eq!(locks, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert!(l.succeed(&k));
        assert_eq!(l.locked(t(now), &k), None);
        assert_eq!(l.record(t(now), &k), None);
    }

    #[test]
    fn the_global_budget_refills_over_a_minute() {
        let policy = LockoutPolicy {
            failed_proofs_per_minute: 2,
            ..LockoutPolicy::default()
        };
        let mut l = Lockouts::new(policy, t(0));
        assert_eq!(l.budget(t(0)), None);
        l.fail(t(0), &[1; 32]);
        assert_eq!(l.budget(t(0)), None);
        l.fail(t(0), &[2; 32]);
        assert_eq!(l.budget(t(0)), Some(Duration::from_secs(30)));
        assert_eq!(l.budget(t(10_000)), Some(Duration::from_secs(20)));
        assert_eq!(l.budget(t(30_000)), None);
    }

    #[test]
    fn the_table_is_bounded_and_keeps_the_longest_locks() {
        let policy = LockoutPolicy {
            threshold: 1,
            max_entries: 3,
            ..LockoutPolicy::default()
        };
        let mut l = Lockouts::new(policy, t(0));
        l.fail(t(0), &[1; 32]);
        l.fail(t(0), &[1; 32]); // Locked longer (level 2).
        for k in 2..10u8 {
            l.fail(t(1), &[k; 32]);
            assert!(l.len() <= 3);
        }
        assert!(l.locked(t(1), &[1; 32]).is_some());
    }

    #[test]
    fn records_round_trip() {
        let mut l = Lockouts::new(LockoutPolicy::default(), t(0));
        let k = [4; 32];
        for _ in 0..5 {
            l.fail(t(0), &k);
        }
        l.fail(t(0), &k);
        let r = l.record(t(10_000), &k).unwrap();
        assert_eq!(
            r,
            LockoutRecord {
                failures: 1,
                level: 1,
                remaining_ms: 20_000
            }
        );
        assert_eq!(LockoutRecord::decode(&r.encode()), Some(r));
        assert_eq!(LockoutRecord::decode(&[0; 10]), None);
        let mut m = Lockouts::new(LockoutPolicy::default(), t(500));
        m.restore(t(500), k, r);
        assert_eq!(m.locked(t(500), &k), Some(Duration::from_secs(20)));
    }

    #[derive(Clone, Debug)]
    struct Op {
        key: u8,
        ok: bool,
        advance_ms: u16,
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Self {
            Op {
                key: u8::arbitrary(g) % 6,
                ok: u8::arbitrary(g) % 8 == 0,
                advance_ms: u16::arbitrary(g),
            }
        }
    }

    /// Whatever other keys do (fail, succeed, fill the table, spend the budget), a key that
    /// never failed is never locked: failures are counted only against the key that failed.
    #[test]
    fn a_key_without_failures_is_never_locked() {
        fn prop(ops: Vec<Op>, max_entries: u8) -> bool {
            let policy = LockoutPolicy {
                threshold: 2,
                max_entries: usize::from(max_entries % 4) + 1,
                ..LockoutPolicy::default()
            };
            let mut l = Lockouts::new(policy, t(0));
            let innocent = [0xEE; 32];
            let mut now = 0;
            for op in ops {
                now += u64::from(op.advance_ms);
                let k = [op.key; 32];
                if op.ok {
                    l.succeed(&k);
                } else {
                    l.fail(t(now), &k);
                }
                if l.locked(t(now), &innocent).is_some() || l.record(t(now), &innocent).is_some() {
                    return false;
                }
            }
            true
        }
        QuickCheck::new().quickcheck(prop as fn(Vec<Op>, u8) -> bool);
    }
}
