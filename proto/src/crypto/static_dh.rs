//! Static–static Diffie–Hellman results kept between suite 3 handshakes (as WireGuard
//! implementations do), and the X25519 that snow runs through them.
//!
//! In Noise IK the `ss` token is DH(our static secret, the peer's static key): the same value
//! in every handshake between the same two parties. A client computes it once for its server,
//! a server once for each configured client (on that client's first handshake, from the
//! value snow computed anyway, and kept for the [`RECENT_PEERS`] clients that handshook most
//! recently, so that idle sessions do not each pay for one: `crypto::key_cache`), and
//! `CachedDh` hands it to snow instead of computing it again. Our own static public key is known too, so snow need not derive it from the secret
//! on every handshake. What this saves per handshake and side: one Diffie–Hellman and one
//! base-point multiplication (of four and two).
//!
//! Secrecy: a cached value is as secret as the static key it came from (anyone holding it can
//! impersonate either side to the other, exactly like the static key), and it is wiped when
//! dropped. Forward secrecy is untouched: the session keys still depend on both ephemeral keys.
//!
//! Parses no wire bytes, sets no timers, emits no events.

#[cfg(target_has_atomic = "ptr")]
use alloc::sync::Arc;
// Targets without atomic read-modify-write (riscv32imc, the ESP32-C3): the same `Arc`,
// counted through portable-atomic under the device's critical section.
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};
#[cfg(not(target_has_atomic = "ptr"))]
use portable_atomic_util::Arc;

use crypto_secretbox::cipher::zeroize::{Zeroize as _, Zeroizing};
use snow::types::{Dh, Random};
use x25519_dalek::{PublicKey, StaticSecret};

use super::ct_eq;
use super::ecc::KeyPair;
use super::key_cache::RecentKeys;
pub use super::key_cache::RECENT_PEERS;

/// Our static key pair and the static–static results with the peers we know; cheap to clone
/// (shared). See the [module docs](self).
#[derive(Clone)]
pub struct StaticDh {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    /// The peer's static public key to DH(our secret, it), for the most recent peers.
    peers: RecentKeys<[u8; 32], Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for StaticDh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticDh")
            .field("peers", &self.inner.peers.len())
            .finish_non_exhaustive()
    }
}

impl StaticDh {
    /// Our key pair, with no peer results yet.
    pub fn new(keys: &KeyPair) -> Self {
        StaticDh {
            inner: Arc::new(Inner {
                secret: Zeroizing::new(keys.secret().to_bytes()),
                public: keys.public().to_bytes(),
                peers: RecentKeys::new(RECENT_PEERS),
            }),
        }
    }

    /// Computes and keeps the result with `peer` (one Diffie–Hellman).
    pub fn precompute(&mut self, peer: &PublicKey) {
        let secret = StaticSecret::from(*self.inner.secret);
        let shared = secret.diffie_hellman(peer).to_bytes();
        self.insert(peer.to_bytes(), shared);
    }

    /// Keeps `shared` as the result with `peer` (dropping the least recently used result if
    /// [`RECENT_PEERS`] are kept). Cheap while no handshake holds a clone.
    pub(crate) fn insert(&mut self, peer: [u8; 32], shared: [u8; 32]) {
        Arc::make_mut(&mut self.inner)
            .peers
            .insert(peer, Zeroizing::new(shared));
    }

    /// Marks the result with `peer` as used now (a handshake found it), so that it is kept
    /// over those of peers seen less recently. Cheap while no handshake holds a clone.
    pub fn touch(&mut self, peer: &PublicKey) {
        if self.inner.peers.contains(peer.as_bytes()) {
            Arc::make_mut(&mut self.inner).peers.get(peer.as_bytes());
        }
    }

    /// Forgets the result with `peer` (a key no longer admitted).
    pub fn forget(&mut self, peer: &PublicKey) {
        if self.inner.peers.contains(peer.as_bytes()) {
            Arc::make_mut(&mut self.inner).peers.remove(peer.as_bytes());
        }
    }

    /// Whether the result with `peer` is kept.
    pub fn knows(&self, peer: &PublicKey) -> bool {
        self.inner.peers.contains(peer.as_bytes())
    }

    /// How many peer results are kept (at most [`RECENT_PEERS`]).
    pub fn len(&self) -> usize {
        self.inner.peers.len()
    }

    /// Whether no peer result is kept.
    pub fn is_empty(&self) -> bool {
        self.inner.peers.len() == 0
    }

    /// The result with `peer` if kept: what a handshake would compute as `ss`.
    pub fn shared_with(&self, peer: &PublicKey) -> Option<[u8; 32]> {
        self.inner.peers.peek(peer.as_bytes()).map(|s| **s)
    }
}

/// The Diffie–Hellman results of our static key that missed the cache in one handshake (at
/// most two: IK's responder computes `es` and `ss` with it, the initiator `ss` and `se`): the
/// peer key and the result. Read after a handshake message to keep the `ss` of a peer not seen
/// before, at no extra Diffie–Hellman. Atomics only because snow requires its primitives to
/// be `Sync`; one handshake uses it from one thread.
#[derive(Default)]
pub(crate) struct Recorder {
    slots: [Slot; 2],
    used: AtomicU32,
}

#[derive(Default)]
struct Slot {
    peer: [AtomicU32; 8],
    shared: [AtomicU32; 8],
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Recorder(..)")
    }
}

fn store(words: &[AtomicU32; 8], bytes: &[u8; 32]) {
    for (w, c) in words.iter().zip(bytes.chunks_exact(4)) {
        let mut b = [0u8; 4];
        b.copy_from_slice(c);
        w.store(u32::from_le_bytes(b), Ordering::Relaxed);
    }
}

fn load(words: &[AtomicU32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (w, c) in words.iter().zip(out.chunks_exact_mut(4)) {
        c.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    out
}

impl Recorder {
    fn record(&self, peer: &[u8; 32], shared: &[u8; 32]) {
        let used = self.used.load(Ordering::Relaxed);
        // NOTE(cast): at most 2.
        if let Some(slot) = self.slots.get(used as usize) {
            store(&slot.peer, peer);
            store(&slot.shared, shared);
            self.used.store(used + 1, Ordering::Relaxed);
        }
    }

    /// The recorded result with `peer`, if one was computed; every slot is wiped after.
    pub(crate) fn take_for(&self, peer: &PublicKey) -> Option<[u8; 32]> {
        // Load then store, not `swap`: one handshake uses it from one thread, and targets
        // without atomic read-modify-write (riscv32imc) have load and store only.
        let used = self.used.load(Ordering::Relaxed) as usize;
        self.used.store(0, Ordering::Relaxed);
        let mut found = None;
        for slot in self.slots.iter().take(used) {
            if found.is_none() && load(&slot.peer) == *peer.as_bytes() {
                found = Some(load(&slot.shared));
            }
            store(&slot.shared, &[0; 32]);
        }
        found
    }
}

/// X25519 for snow, as its default, but answering from a [`StaticDh`] where it can.
pub(crate) struct CachedDh {
    privkey: Zeroizing<[u8; 32]>,
    pubkey: [u8; 32],
    /// Whether `privkey` is the static secret of `statics`.
    is_static: bool,
    statics: Option<StaticDh>,
    recorder: Option<Arc<Recorder>>,
}

impl CachedDh {
    pub(crate) fn new(statics: Option<StaticDh>, recorder: Option<Arc<Recorder>>) -> Self {
        CachedDh {
            privkey: Zeroizing::new([0; 32]),
            pubkey: [0; 32],
            is_static: false,
            statics,
            recorder,
        }
    }

    fn derive_pubkey(&mut self) {
        let secret = StaticSecret::from(*self.privkey);
        self.pubkey = PublicKey::from(&secret).to_bytes();
    }
}

impl Dh for CachedDh {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        32
    }

    fn priv_len(&self) -> usize {
        32
    }

    fn set(&mut self, privkey: &[u8]) {
        let mut bytes = [0u8; 32];
        if let Some(src) = privkey.get(..32) {
            bytes.copy_from_slice(src);
        }
        *self.privkey = bytes;
        bytes.zeroize();
        let known = self
            .statics
            .as_ref()
            .filter(|s| ct_eq(&s.inner.secret[..], &self.privkey[..]))
            .map(|s| s.inner.public);
        self.is_static = known.is_some();
        match known {
            Some(public) => self.pubkey = public,
            None => self.derive_pubkey(),
        }
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut bytes = [0u8; 32];
        rng.try_fill_bytes(&mut bytes)?;
        *self.privkey = bytes;
        bytes.zeroize();
        self.is_static = false;
        self.derive_pubkey();
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        &self.pubkey
    }

    fn privkey(&self) -> &[u8] {
        &self.privkey[..]
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let mut peer = [0u8; 32];
        peer.copy_from_slice(pubkey.get(..32).ok_or(snow::Error::Dh)?);
        let out = out.get_mut(..32).ok_or(snow::Error::Dh)?;
        if self.is_static {
            if let Some(shared) = self
                .statics
                .as_ref()
                .and_then(|s| s.inner.peers.peek(&peer))
            {
                out.copy_from_slice(&shared[..]);
                return Ok(());
            }
        }
        let secret = StaticSecret::from(*self.privkey);
        let shared = Zeroizing::new(secret.diffie_hellman(&PublicKey::from(peer)).to_bytes());
        out.copy_from_slice(&shared[..]);
        if self.is_static {
            if let Some(r) = &self.recorder {
                r.record(&peer, &shared);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_precomputed_result_equals_the_computed_one() {
        let ours = KeyPair::from_secret_bytes([7; 32]);
        let theirs = KeyPair::from_secret_bytes([9; 32]);
        let mut statics = StaticDh::new(&ours);
        statics.precompute(theirs.public());
        let expected = theirs.secret().diffie_hellman(ours.public()).to_bytes();
        assert_eq!(statics.shared_with(theirs.public()), Some(expected));
        // Through snow's interface: the static key answers from the cache, and equals what
        // an uncached X25519 computes.
        let mut cached = CachedDh::new(Some(statics.clone()), None);
        cached.set(&ours.secret().to_bytes());
        assert_eq!(cached.pubkey(), ours.public().as_bytes());
        let mut plain = CachedDh::new(None, None);
        plain.set(&ours.secret().to_bytes());
        assert_eq!(plain.pubkey(), ours.public().as_bytes());
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        cached.dh(theirs.public().as_bytes(), &mut a).unwrap();
        plain.dh(theirs.public().as_bytes(), &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, expected);
    }

    #[test]
    fn a_miss_of_the_static_key_is_recorded_and_an_ephemeral_never() {
        let ours = KeyPair::from_secret_bytes([7; 32]);
        let theirs = KeyPair::from_secret_bytes([9; 32]);
        let other = KeyPair::from_secret_bytes([5; 32]);
        let recorder = Arc::new(Recorder::default());
        let statics = StaticDh::new(&ours);
        let mut dh = CachedDh::new(Some(statics.clone()), Some(recorder.clone()));
        dh.set(&ours.secret().to_bytes());
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        dh.dh(other.public().as_bytes(), &mut a).unwrap();
        dh.dh(theirs.public().as_bytes(), &mut b).unwrap();
        assert_eq!(recorder.take_for(theirs.public()), Some(b));
        assert_eq!(recorder.take_for(theirs.public()), None, "taken once");
        let mut eph = CachedDh::new(Some(statics), Some(recorder.clone()));
        eph.set(&[3; 32]);
        eph.dh(theirs.public().as_bytes(), &mut a).unwrap();
        assert_eq!(recorder.take_for(theirs.public()), None);
    }
}
