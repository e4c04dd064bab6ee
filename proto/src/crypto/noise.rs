//! Suite 3: Noise handshakes and the ChaCha20-Poly1305 packet key.
//!
//! Read first: the Noise Protocol Framework (revision 34), §5 (processing rules), §7.5 (IK),
//! §9 (PSK modifiers), and WireGuard's paper §5.4 (the handshake and cookies this copies).
//!
//! The handshakes are [`snow`]'s: `Noise_IK_25519_ChaChaPoly_BLAKE2b` when the client knows the
//! server's static key (with `psk2` when a pre-shared key is configured too), and
//! `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b` for clients that hold only a pre-shared key. Snow
//! draws its ephemeral keys from an RNG we inject ([`Resolver`]), so a seed replays a handshake.
//! What we keep of a finished handshake is the raw split: one ChaCha20-Poly1305 key per
//! direction ([`ChaChaKey`]), used with our own packet header as associated data.
//!
//! Forward secrecy: the session keys depend on both ephemeral keys, which live only inside the
//! handshake state and are dropped with it; the static keys alone cannot recover them.

use alloc::boxed::Box;
#[cfg(target_has_atomic = "ptr")]
use alloc::sync::Arc;
// Targets without atomic read-modify-write (riscv32imc, the ESP32-C3): the same `Arc`,
// counted through portable-atomic under the device's critical section.
use core::fmt;
use core::net::{IpAddr, SocketAddr};
#[cfg(not(target_has_atomic = "ptr"))]
use portable_atomic_util::Arc;

use chacha20poly1305::aead::AeadInPlace as _;
// `zeroize` comes through the cipher crates' re-export, as in the parent module.
use chacha20poly1305::{ChaCha20Poly1305, KeyInit as _};
use crypto_secretbox::cipher::zeroize::Zeroize as _;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

use super::ecc::{KeyPair, PublicKey};
use super::static_dh::{CachedDh, Recorder, StaticDh};
use super::{keyed_hash, CryptoError, Psk, SessionCipher, TAG_LEN};
use crate::id::Counter;
use crate::rng::Rng;

/// A Noise handshake pattern, as named by the mode byte of an initiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pattern {
    /// The client knows the server's static key and has its own.
    Ik,
    /// As `Ik`, with a pre-shared key mixed in after the second message (as WireGuard).
    IkPsk2,
    /// The client holds only a pre-shared key (no static keys on either side).
    NnPsk0,
}

impl Pattern {
    /// The mode byte of an initiation.
    pub const fn wire(self) -> u8 {
        match self {
            Pattern::Ik => 1,
            Pattern::IkPsk2 => 2,
            Pattern::NnPsk0 => 3,
        }
    }

    /// The pattern a mode byte names.
    pub const fn from_wire(b: u8) -> Option<Pattern> {
        match b {
            1 => Some(Pattern::Ik),
            2 => Some(Pattern::IkPsk2),
            3 => Some(Pattern::NnPsk0),
            _ => None,
        }
    }

    /// The Noise protocol name.
    pub const fn name(self) -> &'static str {
        match self {
            Pattern::Ik => "Noise_IK_25519_ChaChaPoly_BLAKE2b",
            Pattern::IkPsk2 => "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2b",
            Pattern::NnPsk0 => "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b",
        }
    }

    /// Length of the first handshake message with a payload of `payload` bytes.
    pub const fn initiation_len(self, payload: usize) -> usize {
        match self {
            // e, es, s (encrypted: 32 + tag), ss, payload + tag
            Pattern::Ik | Pattern::IkPsk2 => 32 + 32 + TAG_LEN + payload + TAG_LEN,
            // psk, e, payload + tag
            Pattern::NnPsk0 => 32 + payload + TAG_LEN,
        }
    }

    /// Length of the second handshake message with a payload of `payload` bytes.
    pub const fn response_len(payload: usize) -> usize {
        32 + payload + TAG_LEN
    }
}

/// Why a Noise handshake step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoiseError {
    /// A message did not authenticate (wrong key, wrong PSK, altered or replayed bytes).
    Decrypt,
    /// The step is not valid with these keys or in this state.
    Setup,
}

impl fmt::Display for NoiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoiseError::Decrypt => "handshake message did not authenticate",
            NoiseError::Setup => "handshake step not possible in this state",
        })
    }
}

impl core::error::Error for NoiseError {}

impl From<snow::Error> for NoiseError {
    fn from(e: snow::Error) -> Self {
        match e {
            snow::Error::Decrypt => NoiseError::Decrypt,
            _ => NoiseError::Setup,
        }
    }
}

/// Snow's crypto, with randomness from a seed we hand it, and X25519 answering from our
/// static–static results where it can (`crypto::static_dh`).
pub struct Resolver {
    seed: [u8; 32],
    statics: Option<StaticDh>,
    recorder: Option<Arc<Recorder>>,
}

impl Resolver {
    /// A resolver whose RNG is seeded from `rng`.
    pub fn new(rng: &mut Rng) -> Self {
        Resolver {
            seed: rng.array(),
            statics: None,
            recorder: None,
        }
    }
}

struct SeededRandom(Rng);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRandom(Rng::from_seed(self.seed))))
    }

    fn resolve_dh(&self, choice: &snow::params::DHChoice) -> Option<Box<dyn Dh>> {
        match (&self.statics, choice) {
            (Some(_), snow::params::DHChoice::Curve25519) => Some(Box::new(CachedDh::new(
                self.statics.clone(),
                self.recorder.clone(),
            ))),
            _ => DefaultResolver.resolve_dh(choice),
        }
    }

    fn resolve_hash(&self, choice: &snow::params::HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &snow::params::CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// The keys of a finished handshake, from this side's point of view.
pub struct TransportKeys {
    /// Seals what this side sends.
    pub send: ChaChaKey,
    /// Opens what this side receives.
    pub recv: ChaChaKey,
}

impl fmt::Debug for TransportKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransportKeys(..)")
    }
}

fn seeded_builder<'a>(
    pattern: Pattern,
    seed: [u8; 32],
    statics: Option<&StaticDh>,
    recorder: Option<Arc<Recorder>>,
) -> Result<snow::Builder<'a>, NoiseError> {
    let params = pattern.name().parse().map_err(|_| NoiseError::Setup)?;
    let resolver = Resolver {
        seed,
        statics: statics.cloned(),
        recorder,
    };
    Ok(snow::Builder::with_resolver(params, Box::new(resolver)))
}

/// The client side of a handshake: writes the initiation, reads the response.
pub struct NoiseInitiator {
    hs: snow::HandshakeState,
}

impl fmt::Debug for NoiseInitiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoiseInitiator(..)")
    }
}

impl NoiseInitiator {
    /// Prepares a handshake. `local` and `server` are needed for the IK patterns, `psk` for
    /// `IkPsk2` and `NnPsk0`.
    ///
    /// # Errors
    /// [`NoiseError::Setup`] if a key the pattern needs is missing.
    pub fn new(
        pattern: Pattern,
        rng: &mut Rng,
        local: Option<&KeyPair>,
        server: Option<&PublicKey>,
        psk: Option<&Psk>,
    ) -> Result<Self, NoiseError> {
        Self::with_seed(pattern, rng.array(), local, server, psk, None)
    }

    /// As [`NoiseInitiator::new`], taking `ss` and our static public key from `statics` (made
    /// for `local`) instead of computing them: the same handshake bytes for less work.
    ///
    /// # Errors
    /// As [`NoiseInitiator::new`].
    pub fn new_cached(
        pattern: Pattern,
        rng: &mut Rng,
        keys: InitiatorKeys<'_>,
        statics: Option<&StaticDh>,
    ) -> Result<Self, NoiseError> {
        Self::new_recording(pattern, rng, keys, statics, None)
    }

    /// As [`NoiseInitiator::new_cached`], recording in `recorder` the `ss` it computes.
    pub(crate) fn new_recording(
        pattern: Pattern,
        rng: &mut Rng,
        keys: InitiatorKeys<'_>,
        statics: Option<&StaticDh>,
        recorder: Option<Arc<Recorder>>,
    ) -> Result<Self, NoiseError> {
        let seed = rng.array();
        let mut secret = keys.local.map(|k| k.secret().to_bytes());
        let built = (seed, statics, recorder);
        let result = Self::build(pattern, built, secret.as_ref(), keys.server, keys.psk);
        if let Some(s) = secret.as_mut() {
            s.zeroize();
        }
        result
    }

    /// As [`NoiseInitiator::new`], with the handshake's randomness (the ephemeral key) drawn
    /// from `seed`: the same seed, keys and payload write the same initiation.
    fn with_seed(
        pattern: Pattern,
        seed: [u8; 32],
        local: Option<&KeyPair>,
        server: Option<&PublicKey>,
        psk: Option<&Psk>,
        statics: Option<&StaticDh>,
    ) -> Result<Self, NoiseError> {
        let mut secret = local.map(|k| k.secret().to_bytes());
        let result = Self::build(pattern, (seed, statics, None), secret.as_ref(), server, psk);
        if let Some(s) = secret.as_mut() {
            s.zeroize();
        }
        result
    }

    fn build(
        pattern: Pattern,
        (seed, statics, recorder): ([u8; 32], Option<&StaticDh>, Option<Arc<Recorder>>),
        secret: Option<&[u8; 32]>,
        server: Option<&PublicKey>,
        psk: Option<&Psk>,
    ) -> Result<Self, NoiseError> {
        let remote = server.map(|k| k.to_bytes());
        let mut b = seeded_builder(pattern, seed, statics, recorder)?;
        match pattern {
            Pattern::Ik | Pattern::IkPsk2 => {
                let (Some(s), Some(r)) = (secret, remote.as_ref()) else {
                    return Err(NoiseError::Setup);
                };
                b = b.local_private_key(s)?.remote_public_key(r)?;
                if pattern == Pattern::IkPsk2 {
                    b = b.psk(2, psk.ok_or(NoiseError::Setup)?.danger_as_bytes())?;
                }
            }
            Pattern::NnPsk0 => b = b.psk(0, psk.ok_or(NoiseError::Setup)?.danger_as_bytes())?,
        }
        Ok(NoiseInitiator {
            hs: b.build_initiator()?,
        })
    }

    /// Writes the first message, carrying `payload` encrypted, into `out`.
    ///
    /// # Errors
    /// [`NoiseError::Setup`] if `out` is too small or the message was already written.
    pub fn write_initiation(
        &mut self,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, NoiseError> {
        Ok(self.hs.write_message(payload, out)?)
    }

    /// Reads the server's response; on success the handshake is done and yields the keys.
    ///
    /// The state is consumed either way: after a failed read snow's state is no longer valid,
    /// and the client starts a new handshake instead.
    ///
    /// # Errors
    /// [`NoiseError::Decrypt`] if the response does not authenticate.
    pub fn read_response(
        mut self,
        msg: &[u8],
        payload: &mut [u8],
    ) -> Result<(usize, TransportKeys), NoiseError> {
        let n = self.hs.read_message(msg, payload)?;
        let (send, recv) = self.hs.dangerously_get_raw_split();
        let keys = TransportKeys {
            send: ChaChaKey(send),
            recv: ChaChaKey(recv),
        };
        Ok((n, keys))
    }
}

/// An initiation that several responders may answer: the first message of a handshake sent to
/// a multicast group whose servers share one static key pair (IK) or the client's PSK.
///
/// A Noise initiator's state can read only one response, so this keeps the seed of the
/// handshake's randomness instead of the state: for each response it rebuilds the identical
/// state (same ephemeral key, same first message) and reads the response with it. Each
/// responder contributes its own fresh ephemeral key, so every response gives different
/// transport keys. The seed is the ephemeral secret in another form: it is wiped on drop, and
/// callers keep it only for the short window in which responses are awaited.
pub struct SharedInitiation {
    pattern: Pattern,
    seed: [u8; 32],
    payload: arrayvec::ArrayVec<u8, 64>,
}

impl fmt::Debug for SharedInitiation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedInitiation(..)")
    }
}

impl SharedInitiation {
    /// Starts a handshake and writes its first message, carrying `payload` (at most 64 bytes)
    /// encrypted, into `out`. Keys as for [`NoiseInitiator::new`].
    ///
    /// # Errors
    /// [`NoiseError::Setup`] if a key the pattern needs is missing, the payload is too long or
    /// `out` is too small.
    pub fn new(
        pattern: Pattern,
        rng: &mut Rng,
        keys: InitiatorKeys<'_>,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(Self, usize), NoiseError> {
        let shared = SharedInitiation {
            pattern,
            seed: rng.array(),
            payload: arrayvec::ArrayVec::try_from(payload).map_err(|_| NoiseError::Setup)?,
        };
        let n = shared.initiator(keys)?.write_initiation(payload, out)?;
        Ok((shared, n))
    }

    fn initiator(&self, keys: InitiatorKeys<'_>) -> Result<NoiseInitiator, NoiseError> {
        NoiseInitiator::with_seed(
            self.pattern,
            self.seed,
            keys.local,
            keys.server,
            keys.psk,
            None,
        )
    }

    /// Reads one responder's answer; `keys` must be those given to [`SharedInitiation::new`].
    /// It may be called once per responder; a failure leaves this initiation usable for the
    /// others.
    ///
    /// # Errors
    /// [`NoiseError::Decrypt`] if the response does not authenticate.
    pub fn read_response(
        &self,
        keys: InitiatorKeys<'_>,
        msg: &[u8],
        payload: &mut [u8],
    ) -> Result<(usize, TransportKeys), NoiseError> {
        let mut initiator = self.initiator(keys)?;
        // Replays the first message so that the state is the one the responder answered.
        let mut first = [0u8; 256];
        initiator.write_initiation(&self.payload, &mut first)?;
        initiator.read_response(msg, payload)
    }
}

impl Drop for SharedInitiation {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

/// The static keys and PSK an initiator uses, as [`NoiseInitiator::new`] takes them.
#[derive(Clone, Copy, Debug, Default)]
pub struct InitiatorKeys<'a> {
    /// Our static key pair (IK patterns).
    pub local: Option<&'a KeyPair>,
    /// The responder's static public key (IK patterns).
    pub server: Option<&'a PublicKey>,
    /// The pre-shared key (IKpsk2, NNpsk0).
    pub psk: Option<&'a Psk>,
}

/// The server side of a handshake: reads the initiation, writes the response.
pub struct NoiseResponder {
    hs: snow::HandshakeState,
}

impl fmt::Debug for NoiseResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoiseResponder(..)")
    }
}

impl NoiseResponder {
    /// Prepares to answer an initiation. `local` is needed for the IK patterns; `psk` for
    /// `NnPsk0` (for `IkPsk2`, set it with [`NoiseResponder::set_psk`] once the client's static
    /// key is known).
    ///
    /// # Errors
    /// [`NoiseError::Setup`] if a key the pattern needs is missing.
    pub fn new(
        pattern: Pattern,
        rng: &mut Rng,
        local: Option<&KeyPair>,
        psk: Option<&Psk>,
    ) -> Result<Self, NoiseError> {
        Self::new_recording(pattern, rng, local, psk, None, None)
    }

    /// As [`NoiseResponder::new`], taking `ss` with known initiators and our static public
    /// key from `statics` (made for `local`).
    ///
    /// # Errors
    /// As [`NoiseResponder::new`].
    pub fn new_cached(
        pattern: Pattern,
        rng: &mut Rng,
        local: Option<&KeyPair>,
        psk: Option<&Psk>,
        statics: Option<&StaticDh>,
    ) -> Result<Self, NoiseError> {
        Self::new_recording(pattern, rng, local, psk, statics, None)
    }

    /// As [`NoiseResponder::new_cached`], recording in `recorder` the `ss` it had to compute.
    pub(crate) fn new_recording(
        pattern: Pattern,
        rng: &mut Rng,
        local: Option<&KeyPair>,
        psk: Option<&Psk>,
        statics: Option<&StaticDh>,
        recorder: Option<Arc<Recorder>>,
    ) -> Result<Self, NoiseError> {
        let mut secret = local.map(|k| k.secret().to_bytes());
        let result = Self::build(pattern, rng, secret.as_ref(), psk, statics, recorder);
        if let Some(s) = secret.as_mut() {
            s.zeroize();
        }
        result
    }

    fn build(
        pattern: Pattern,
        rng: &mut Rng,
        secret: Option<&[u8; 32]>,
        psk: Option<&Psk>,
        statics: Option<&StaticDh>,
        recorder: Option<Arc<Recorder>>,
    ) -> Result<Self, NoiseError> {
        let mut b = seeded_builder(pattern, rng.array(), statics, recorder)?;
        match pattern {
            Pattern::Ik | Pattern::IkPsk2 => {
                b = b.local_private_key(secret.ok_or(NoiseError::Setup)?)?;
                if pattern == Pattern::IkPsk2 {
                    // A placeholder, replaced by `set_psk` after the first message names the
                    // client; snow needs the slot filled to build the state.
                    b = b.psk(2, &[0; 32])?;
                }
            }
            Pattern::NnPsk0 => b = b.psk(0, psk.ok_or(NoiseError::Setup)?.danger_as_bytes())?,
        }
        Ok(NoiseResponder {
            hs: b.build_responder()?,
        })
    }

    /// Reads the first message into `payload`.
    ///
    /// # Errors
    /// [`NoiseError::Decrypt`] if it does not authenticate.
    pub fn read_initiation(&mut self, msg: &[u8], payload: &mut [u8]) -> Result<usize, NoiseError> {
        Ok(self.hs.read_message(msg, payload)?)
    }

    /// The client's static key, once the first message of an IK pattern has been read.
    pub fn remote_static(&self) -> Option<PublicKey> {
        let bytes: [u8; 32] = self.hs.get_remote_static()?.try_into().ok()?;
        Some(PublicKey::from(bytes))
    }

    /// Sets the pre-shared key of `IkPsk2`, after the client is known.
    ///
    /// # Errors
    /// [`NoiseError::Setup`] if the state does not take a key there.
    pub fn set_psk(&mut self, psk: &Psk) -> Result<(), NoiseError> {
        Ok(self.hs.set_psk(2, psk.danger_as_bytes())?)
    }

    /// Writes the response; the handshake is then done and yields the keys.
    ///
    /// # Errors
    /// [`NoiseError::Setup`] if `out` is too small or the state is wrong.
    pub fn write_response(
        mut self,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, TransportKeys), NoiseError> {
        let n = self.hs.write_message(payload, out)?;
        // The responder's split is the initiator's, mirrored.
        let (initiator_send, initiator_recv) = self.hs.dangerously_get_raw_split();
        Ok((
            n,
            TransportKeys {
                send: ChaChaKey(initiator_recv),
                recv: ChaChaKey(initiator_send),
            },
        ))
    }
}

/// A ChaCha20-Poly1305 key for suite 3 packets: 96-bit nonce `00×4 || u64_le(counter)`, the
/// packet's cleartext header as associated data, the tag after the ciphertext.
#[derive(Clone)]
pub struct ChaChaKey([u8; 32]);

impl ChaChaKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ChaChaKey(bytes)
    }

    /// The raw key, for delivering a group key inside an encrypted packet.
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&self.0.into())
    }
}

fn chacha_nonce(counter: Counter) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.0.to_le_bytes());
    n
}

impl SessionCipher for ChaChaKey {
    fn seal_in_place(
        &self,
        counter: Counter,
        header: &[u8],
        plaintext: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = self
            .cipher()
            .encrypt_in_place_detached(&chacha_nonce(counter).into(), header, plaintext)
            // NOTE(unwrap): ChaCha20-Poly1305 fails only past 256 GiB of plaintext; ours is
            // bounded by the datagram size.
            .expect("plaintext within the AEAD limit");
        tag.into()
    }

    fn open_in_place(
        &self,
        counter: Counter,
        header: &[u8],
        tag: &[u8; TAG_LEN],
        ciphertext: &mut [u8],
    ) -> Result<(), CryptoError> {
        self.cipher()
            .decrypt_in_place_detached(
                &chacha_nonce(counter).into(),
                header,
                ciphertext,
                tag.into(),
            )
            .map_err(|_| CryptoError::Forged)
    }
}

impl Drop for ChaChaKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl PartialEq for ChaChaKey {
    fn eq(&self, other: &Self) -> bool {
        super::ct_eq(&self.0, &other.0)
    }
}

impl Eq for ChaChaKey {}

impl fmt::Debug for ChaChaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChaChaKey(..)")
    }
}

/// The cookie that proves a client can receive at `addr`: `BLAKE2b-256(key = secret, ip || port)`,
/// first 16 bytes. The server rotates `secret`, so a cookie is good for one or two rotations.
pub fn cookie(secret: &[u8; 32], addr: SocketAddr) -> [u8; 16] {
    let port = addr.port().to_le_bytes();
    let h = match addr.ip() {
        IpAddr::V4(ip) => keyed_hash(secret, &[&ip.octets(), &port]),
        IpAddr::V6(ip) => keyed_hash(secret, &[&ip.octets(), &port]),
    };
    let mut out = [0u8; 16];
    out.copy_from_slice(&h[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn keys(b: u8) -> KeyPair {
        KeyPair::from_secret_bytes([b; 32])
    }

    fn run(
        pattern: Pattern,
        client_psk: Option<&Psk>,
        server_psk: Option<&Psk>,
    ) -> Result<(TransportKeys, TransportKeys), NoiseError> {
        let mut rng = Rng::seed_from_u64(1);
        let (c, s) = (keys(1), keys(2));
        let mut init =
            NoiseInitiator::new(pattern, &mut rng, Some(&c), Some(s.public()), client_psk)?;
        let mut resp = NoiseResponder::new(pattern, &mut rng, Some(&s), server_psk)?;
        let mut m1 = [0u8; 256];
        let n1 = init.write_initiation(b"epoch", &mut m1)?;
        assert_eq!(n1, pattern.initiation_len(5));
        let mut p = [0u8; 64];
        let got = resp.read_initiation(&m1[..n1], &mut p)?;
        assert_eq!(&p[..got], b"epoch");
        if pattern != Pattern::NnPsk0 {
            assert_eq!(resp.remote_static().unwrap(), *c.public());
        }
        if pattern == Pattern::IkPsk2 {
            resp.set_psk(server_psk.unwrap())?;
        }
        let mut m2 = [0u8; 256];
        let (n2, server_keys) = resp.write_response(b"srv", &mut m2)?;
        assert_eq!(n2, Pattern::response_len(3));
        let (_, client_keys) = init.read_response(&m2[..n2], &mut p)?;
        Ok((client_keys, server_keys))
    }

    #[test]
    fn every_pattern_agrees_on_mirrored_keys() {
        let psk = Psk::from_bytes([7; 32]);
        for pattern in [Pattern::Ik, Pattern::IkPsk2, Pattern::NnPsk0] {
            let (c, s) = run(pattern, Some(&psk), Some(&psk)).unwrap();
            assert_eq!(c.send, s.recv, "{pattern:?}");
            assert_eq!(c.recv, s.send, "{pattern:?}");
            assert_ne!(c.send, c.recv);
        }
    }

    #[test]
    fn a_wrong_psk_fails() {
        let (a, b) = (Psk::from_bytes([7; 32]), Psk::from_bytes([8; 32]));
        assert_eq!(
            run(Pattern::NnPsk0, Some(&a), Some(&b)).err(),
            Some(NoiseError::Decrypt)
        );
        assert_eq!(
            run(Pattern::IkPsk2, Some(&a), Some(&b)).err(),
            Some(NoiseError::Decrypt)
        );
    }

    #[test]
    fn packet_key_binds_counter_and_header() {
        let k = ChaChaKey::from_bytes([3; 32]);
        let mut buf = *b"hello";
        let tag = k.seal_in_place(Counter(9), b"hdr", &mut buf);
        let mut open = buf;
        assert!(k.open_in_place(Counter(9), b"hdr", &tag, &mut open).is_ok());
        assert_eq!(&open, b"hello");
        let mut other = buf;
        assert!(k
            .open_in_place(Counter(9), b"hdX", &tag, &mut other)
            .is_err());
        let mut other = buf;
        assert!(k
            .open_in_place(Counter(10), b"hdr", &tag, &mut other)
            .is_err());
    }

    #[test]
    fn cookies_bind_the_address_and_the_secret() {
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:5001".parse().unwrap();
        assert_eq!(cookie(&[1; 32], a), cookie(&[1; 32], a));
        assert_ne!(cookie(&[1; 32], a), cookie(&[1; 32], b));
        assert_ne!(cookie(&[1; 32], a), cookie(&[2; 32], a));
    }

    #[test]
    fn one_shared_initiation_is_answered_by_every_server_holding_the_key() {
        let mut rng = Rng::seed_from_u64(5);
        let (c, s) = (keys(1), keys(2));
        let ck = InitiatorKeys {
            local: Some(&c),
            server: Some(s.public()),
            psk: None,
        };
        let mut m1 = [0u8; 256];
        let (shared, n1) =
            SharedInitiation::new(Pattern::Ik, &mut rng, ck, b"epoch+seq", &mut m1).unwrap();
        let mut answers = Vec::new();
        // Three servers sharing one static key pair answer the same first message.
        for _ in 0..3 {
            let mut resp = NoiseResponder::new(Pattern::Ik, &mut rng, Some(&s), None).unwrap();
            let mut p = [0u8; 64];
            let got = resp.read_initiation(&m1[..n1], &mut p).unwrap();
            assert_eq!(&p[..got], b"epoch+seq");
            let mut m2 = [0u8; 128];
            let (n2, server_keys) = resp.write_response(b"srv", &mut m2).unwrap();
            answers.push((m2[..n2].to_vec(), server_keys));
        }
        // A forged response fails and leaves the initiation usable.
        let mut p = [0u8; 64];
        let mut bad = answers[0].0.clone();
        bad[40] ^= 1;
        assert_eq!(
            shared.read_response(ck, &bad, &mut p).err(),
            Some(NoiseError::Decrypt)
        );
        let mut client_sends = Vec::new();
        for (m2, server_keys) in &answers {
            let (_, k) = shared.read_response(ck, m2, &mut p).unwrap();
            assert_eq!(k.send, server_keys.recv);
            assert_eq!(k.recv, server_keys.send);
            client_sends.push(k.send);
        }
        // Each responder's fresh ephemeral key gives each pairwise session its own keys.
        assert_ne!(client_sends[0], client_sends[1]);
        assert_ne!(client_sends[1], client_sends[2]);
        // A server with another static key cannot read the initiation at all.
        let mut other = NoiseResponder::new(Pattern::Ik, &mut rng, Some(&keys(3)), None).unwrap();
        assert!(other.read_initiation(&m1[..n1], &mut p).is_err());
    }

    #[test]
    fn same_seed_same_handshake_bytes() {
        let once = || {
            let mut rng = Rng::seed_from_u64(42);
            let mut init = NoiseInitiator::new(
                Pattern::Ik,
                &mut rng,
                Some(&keys(1)),
                Some(keys(2).public()),
                None,
            )
            .unwrap();
            let mut m = [0u8; 256];
            let n = init.write_initiation(b"x", &mut m).unwrap();
            m[..n].to_vec()
        };
        assert_eq!(once(), once());
    }
}
