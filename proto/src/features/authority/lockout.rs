//! Lockout of credentials that fail to prove themselves: counted per static public key that
//! completed a handshake (never per address, which an attacker can spoof), with a growing
//! lock, and a global budget of failed proofs that bounds online guessing with fresh keys.

use crate::time::Duration;

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
