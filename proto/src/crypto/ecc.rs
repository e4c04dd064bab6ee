//! Suite 2 (ECC): the `crypto_box` handshake boxes and the identities of docs/PROTOCOL.md
//! §4.2.
//!
//! The client chooses both session keys and sends them to the server inside the op 12 box; the
//! server proves it holds its secret key by boxing its nonce in op 11. Both boxes are libsodium's
//! `crypto_box_curve25519xsalsa20poly1305` (X25519, then HSalsa20, then XSalsa20-Poly1305), with
//! the 16-byte tag first and a random 24-byte nonce sent in clear in front of the box.
//!
//! There is no forward secrecy: whoever learns the server secret and a client public key can
//! open a captured op 12 and read that session's keys.

use core::fmt;

use crypto_box::aead::AeadInPlace;
use crypto_box::SalsaBox;
use crypto_secretbox::aead::consts::{U16, U24};
use crypto_secretbox::aead::KeyInit as _;
use crypto_secretbox::{Kdf, XSalsa20Poly1305};
// `zeroize` is not a direct dependency; crypto_secretbox's salsa20 feature always enables the
// re-export through `cipher`.
use crypto_secretbox::cipher::zeroize::{Zeroize as _, Zeroizing};
pub use x25519_dalek::{PublicKey, StaticSecret};

use super::{hash, keyed_hash, CryptoError, SecretBoxKey, TAG_LEN};
use crate::id::{ClientId, Hex};
use crate::rng::Rng;

/// An X25519 key pair, as the reference makes with `crypto_box_keypair()`.
///
/// `Debug` shows the public key only; the secret is wiped when dropped.
#[derive(Clone)]
pub struct KeyPair {
    /// The secret scalar, stored unclamped as given (X25519 clamps on use).
    secret: StaticSecret,
    /// Always `PublicKey::from(&secret)`.
    public: PublicKey,
}

impl KeyPair {
    /// Builds the key pair of a 32-byte X25519 secret key (libsodium's `sk`).
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret);
        KeyPair { secret, public }
    }

    /// Makes a fresh key pair from the injected generator (`keypair="guest"` in the reference).
    pub fn generate(rng: &mut Rng) -> Self {
        let mut bytes = rng.array::<32>();
        let pair = Self::from_secret_bytes(bytes);
        bytes.zeroize();
        pair
    }

    /// The public key, which the peer and the guest identity are derived from.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The secret key.
    pub fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &format_args!("{}", Hex(self.public.as_bytes())))
            .finish_non_exhaustive()
    }
}

/// A `crypto_box` key between one secret key and one public key, made once: the X25519
/// Diffie–Hellman happens in [`BoxKey::new`], and sealing or opening with it afterwards is
/// symmetric work only. A server keeps one per known client and per half-open exchange, so
/// that a flood of handshake packets costs no public-key work beyond its reply budget.
///
/// It holds the HSalsa20 of the shared secret, the key `crypto_box_beforenm` gives, and wipes
/// it when dropped.
#[derive(Clone)]
pub struct BoxKey(Zeroizing<[u8; 32]>);

impl BoxKey {
    /// Does the Diffie–Hellman of `secret` and `public` (and HSalsa20) once.
    pub fn new(secret: &StaticSecret, public: &PublicKey) -> Self {
        Self::from_shared(secret.diffie_hellman(public).as_bytes())
    }

    /// As [`BoxKey::new`], but `None` if `public` is of low order (the shared secret would
    /// not depend on our key, so anyone could compute it): one Diffie–Hellman for both.
    pub fn contributory(secret: &StaticSecret, public: &PublicKey) -> Option<Self> {
        let shared = secret.diffie_hellman(public);
        shared
            .was_contributory()
            .then(|| Self::from_shared(shared.as_bytes()))
    }

    fn from_shared(shared: &[u8; 32]) -> Self {
        let key = Zeroizing::new(<XSalsa20Poly1305 as Kdf>::kdf(
            shared.into(),
            &Default::default(),
        ));
        BoxKey(Zeroizing::new((*key).into()))
    }

    fn cipher(&self) -> XSalsa20Poly1305 {
        XSalsa20Poly1305::new((&*self.0).into())
    }
}

impl fmt::Debug for BoxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxKey(..)")
    }
}

/// [`seal_nonce`] under a key made before: no Diffie–Hellman.
pub fn seal_nonce_with(key: &BoxKey, box_nonce: &[u8; 24], inner: &[u8; 48]) -> [u8; 64] {
    let mut sealed = [0; 64];
    sealed[TAG_LEN..].copy_from_slice(inner);
    seal_detached(&key.cipher(), box_nonce, &mut sealed);
    sealed
}

/// [`open_client_info`] under a key made before: no Diffie–Hellman.
///
/// # Errors
/// [`CryptoError::Forged`] if the box was not made with this client's secret key for the server.
pub fn open_client_info_with(
    key: &BoxKey,
    box_nonce: &[u8; 24],
    sealed: &[u8; 120],
) -> Result<[u8; 104], CryptoError> {
    let mut buf = Zeroizing::new(*sealed);
    open_detached(&key.cipher(), box_nonce, &mut *buf)?;
    let mut inner = [0; 104];
    inner.copy_from_slice(&buf[TAG_LEN..]);
    Ok(inner)
}

/// Seals the op 11 (ECC Nonce) box from the server to the client.
///
/// `inner` is `serverNonce(32) || clientChallenge(16)`; the result is `tag(16) || ciphertext(48)`,
/// packet bytes 44..108, after the box nonce at 20..44.
pub fn seal_nonce(
    server: &StaticSecret,
    client: &PublicKey,
    box_nonce: &[u8; 24],
    inner: &[u8; 48],
) -> [u8; 64] {
    seal_nonce_with(&BoxKey::new(server, client), box_nonce, inner)
}

/// Opens the op 11 box on the client, giving back `serverNonce(32) || clientChallenge(16)`.
///
/// # Errors
/// [`CryptoError::Forged`] if the box was not made with the server's secret key for this client.
pub fn open_nonce(
    client: &StaticSecret,
    server: &PublicKey,
    box_nonce: &[u8; 24],
    sealed: &[u8; 64],
) -> Result<[u8; 48], CryptoError> {
    let mut buf = Zeroizing::new(*sealed);
    open_detached(&salsa_box(client, server), box_nonce, &mut *buf)?;
    let mut inner = [0; 48];
    inner.copy_from_slice(&buf[TAG_LEN..]);
    Ok(inner)
}

/// Seals the op 12 (ECC Client Info) box from the client to the server.
///
/// `inner` is `serverNonce(32) || C>S key(32) || S>C key(32) || u64_le(counter)`; the result is
/// `tag(16) || ciphertext(104)`, packet bytes 61..181, after the box nonce at 37..61.
pub fn seal_client_info(
    client: &StaticSecret,
    server: &PublicKey,
    box_nonce: &[u8; 24],
    inner: &[u8; 104],
) -> [u8; 120] {
    let mut sealed = [0; 120];
    sealed[TAG_LEN..].copy_from_slice(inner);
    seal_detached(&salsa_box(client, server), box_nonce, &mut sealed);
    sealed
}

/// Opens the op 12 box on the server, giving back
/// `serverNonce(32) || C>S key(32) || S>C key(32) || u64_le(counter)`.
///
/// The result holds session keys: wipe it once they are installed.
///
/// # Errors
/// [`CryptoError::Forged`] if the box was not made with this client's secret key for the server.
pub fn open_client_info(
    server: &StaticSecret,
    client: &PublicKey,
    box_nonce: &[u8; 24],
    sealed: &[u8; 120],
) -> Result<[u8; 104], CryptoError> {
    open_client_info_with(&BoxKey::new(server, client), box_nonce, sealed)
}

/// The session id the Python server announces in op 7: `H(clientPub; C>S key)[0..16]`, keyed
/// with the client's public key.
pub fn session_id(client: &PublicKey, client_to_server: &SecretBoxKey) -> [u8; 16] {
    let full = keyed_hash(client.as_bytes(), &[client_to_server.danger_as_bytes()]);
    let mut id = [0; 16];
    id.copy_from_slice(&full[..16]);
    id
}

/// The identity the Python server reports for a guest: the unkeyed BLAKE2b-256 of its public
/// key, all 32 bytes (the reference's docs say 16; its code uses 32).
pub fn guest_id(client: &PublicKey) -> [u8; 32] {
    hash(client.as_bytes())
}

/// The client id a keypair client uses when none is configured: the first 16 bytes of
/// [`guest_id`].
pub fn default_client_id(client: &PublicKey) -> ClientId {
    let mut id = [0; 16];
    id.copy_from_slice(&guest_id(client)[..16]);
    ClientId(id)
}

fn salsa_box(secret: &StaticSecret, public: &PublicKey) -> SalsaBox {
    // crypto_box has its own key types; its SecretKey wipes itself on drop, and the temporary
    // byte copy is wiped here.
    let bytes = Zeroizing::new(secret.to_bytes());
    let secret = crypto_box::SecretKey::from_bytes(*bytes);
    SalsaBox::new(
        &crypto_box::PublicKey::from_bytes(public.to_bytes()),
        &secret,
    )
}

/// Encrypts `buf[TAG_LEN..]` in place and writes the tag into `buf[..TAG_LEN]`.
fn seal_detached<C: AeadInPlace<NonceSize = U24>>(
    cipher: &C,
    box_nonce: &[u8; 24],
    buf: &mut [u8],
) {
    let (tag, body) = buf.split_at_mut(TAG_LEN);
    let computed = cipher
        .encrypt_in_place_detached(box_nonce.into(), &[], body)
        // NOTE(unwrap): crypto_box fails only when given associated data, and we pass none.
        .expect("crypto_box rejects only associated data");
    tag.copy_from_slice(&computed);
}

/// Checks the tag in `buf[..TAG_LEN]` and decrypts `buf[TAG_LEN..]` in place.
fn open_detached<C: AeadInPlace<NonceSize = U24, TagSize = U16>>(
    cipher: &C,
    box_nonce: &[u8; 24],
    buf: &mut [u8],
) -> Result<(), CryptoError> {
    let (tag, body) = buf.split_at_mut(TAG_LEN);
    cipher
        .decrypt_in_place_detached(box_nonce.into(), &[], body, (&*tag).into())
        .map_err(|_| CryptoError::Forged)
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::super::test_vectors::*;
    use super::*;

    /// Op 11 fields: (box nonce, sealed).
    fn op11_fields(packet: &[u8]) -> ([u8; 24], [u8; 64]) {
        assert_eq!(packet.len(), 108);
        assert_eq!(&packet[11..20], &[0, 0, 0, 0, 0, 0, 0, 0, 11]);
        (
            packet[20..44].try_into().unwrap(),
            packet[44..108].try_into().unwrap(),
        )
    }

    /// Op 12 fields: (client id, cipher, box nonce, sealed).
    fn op12_fields(packet: &[u8]) -> ([u8; 16], u8, [u8; 24], [u8; 120]) {
        assert_eq!(packet.len(), 181);
        assert_eq!(&packet[11..20], &[0, 0, 0, 0, 0, 0, 0, 0, 12]);
        (
            packet[20..36].try_into().unwrap(),
            packet[36],
            packet[37..61].try_into().unwrap(),
            packet[61..181].try_into().unwrap(),
        )
    }

    fn client_info(sn: &[u8], cts: &[u8], stc: &[u8], counter: u64) -> [u8; 104] {
        [sn, cts, stc, &counter.to_le_bytes()]
            .concat()
            .try_into()
            .unwrap()
    }

    fn computed_pairs() -> (KeyPair, KeyPair) {
        (
            KeyPair::from_secret_bytes(h32(COMPUTED_ECC_CLIENT_SK)),
            KeyPair::from_secret_bytes(h32(COMPUTED_ECC_SERVER_SK)),
        )
    }

    #[test]
    fn public_keys_from_secrets() {
        let (client, server) = computed_pairs();
        assert_eq!(client.public().as_bytes(), &h32(COMPUTED_ECC_CLIENT_PUB));
        assert_eq!(server.public().as_bytes(), &h32(COMPUTED_ECC_SERVER_PUB));
        let client = KeyPair::from_secret_bytes(h32(CAP_ECC_CLIENT_SK));
        let server = KeyPair::from_secret_bytes(h32(CAP_ECC_SERVER_SK));
        assert_eq!(client.public().as_bytes(), &h32(CAP_ECC_CLIENT_PUB));
        assert_eq!(server.public().as_bytes(), &h32(CAP_ECC_SERVER_PUB));
        // The secret is kept as given.
        assert_eq!(client.secret().to_bytes(), h32(CAP_ECC_CLIENT_SK));
    }

    #[test]
    fn computed_op11_opens_and_reseals_identically() {
        let (client, server) = computed_pairs();
        let packet = bytes(COMPUTED_OP11);
        let (box_nonce, sealed) = op11_fields(&packet);
        assert_eq!(box_nonce, [0x33; 24]);
        let inner = open_nonce(client.secret(), server.public(), &box_nonce, &sealed).unwrap();
        assert_eq!(&inner[..32], &h32(COMPUTED_SN));
        assert_eq!(&inner[32..], &h16(COMPUTED_CHALLENGE));
        assert_eq!(
            seal_nonce(server.secret(), client.public(), &box_nonce, &inner),
            sealed
        );
        // The box key is shared, so the client's side seals the same bytes too.
        assert_eq!(
            seal_nonce(client.secret(), server.public(), &box_nonce, &inner),
            sealed
        );
    }

    #[test]
    fn computed_op12_opens_and_reseals_identically() {
        let (client, server) = computed_pairs();
        let packet = bytes(COMPUTED_OP12);
        let (cid, cipher, box_nonce, sealed) = op12_fields(&packet);
        assert_eq!(
            (cid, cipher, box_nonce),
            (h16(COMPUTED_CLIENT_ID), 2, [0x66; 24])
        );
        let inner =
            open_client_info(server.secret(), client.public(), &box_nonce, &sealed).unwrap();
        assert_eq!(
            inner,
            client_info(&h32(COMPUTED_SN), &[0x44; 32], &[0x55; 32], 7000)
        );
        assert_eq!(
            seal_client_info(client.secret(), server.public(), &box_nonce, &inner),
            sealed
        );
    }

    #[test]
    fn computed_identities() {
        let (client, _) = computed_pairs();
        let cts = SecretBoxKey::from_bytes([0x44; 32]);
        assert_eq!(
            session_id(client.public(), &cts),
            h16(COMPUTED_ECC_SESSION_ID)
        );
        assert_eq!(guest_id(client.public()), h32(COMPUTED_GUEST_ID));
        assert_eq!(
            default_client_id(client.public()),
            ClientId(h16(COMPUTED_DEFAULT_CLIENT_ID))
        );
    }

    #[test]
    fn captured_handshake() {
        let client = KeyPair::from_secret_bytes(h32(CAP_ECC_CLIENT_SK));
        let server = KeyPair::from_secret_bytes(h32(CAP_ECC_SERVER_SK));

        let (nonce11, sealed11) = op11_fields(&bytes(CAP_ECC_OP11));
        let inner11 = open_nonce(client.secret(), server.public(), &nonce11, &sealed11).unwrap();
        let expected11: Vec<u8> = [&h32(CAP_ECC_SN)[..], &h16(CAP_ECC_CHALLENGE)].concat();
        assert_eq!(&inner11[..], &expected11[..]);

        let (cid, cipher, nonce12, sealed12) = op12_fields(&bytes(CAP_ECC_OP12));
        assert_eq!((cid, cipher), (h16(CAP_ECC_CID), 2));
        let inner12 =
            open_client_info(server.secret(), client.public(), &nonce12, &sealed12).unwrap();
        let expected12 = client_info(
            &h32(CAP_ECC_SN),
            &h32(CAP_ECC_CTS),
            &h32(CAP_ECC_STC),
            CAP_ECC_COUNTER,
        );
        assert_eq!(inner12, expected12);
        assert_eq!(
            seal_client_info(client.secret(), server.public(), &nonce12, &inner12),
            sealed12
        );

        let cts = SecretBoxKey::from_bytes(h32(CAP_ECC_CTS));
        let op7 = bytes(CAP_ECC_OP7);
        assert_eq!(&op7[11..20], &[0, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(session_id(client.public(), &cts), h16(CAP_ECC_SESSION_ID));
        assert_eq!(&op7[20..], &session_id(client.public(), &cts));
    }

    #[test]
    fn forged_boxes_are_rejected() {
        let (client, server) = computed_pairs();
        let (nonce11, sealed11) = op11_fields(&bytes(COMPUTED_OP11));
        let (_, _, nonce12, sealed12) = op12_fields(&bytes(COMPUTED_OP12));

        let mut bad_tag = sealed11;
        bad_tag[0] ^= 1;
        assert_eq!(
            open_nonce(client.secret(), server.public(), &nonce11, &bad_tag),
            Err(CryptoError::Forged)
        );
        let mut flipped = sealed12;
        flipped[119] ^= 0x80;
        assert_eq!(
            open_client_info(server.secret(), client.public(), &nonce12, &flipped),
            Err(CryptoError::Forged)
        );
        let mut other_nonce = nonce11;
        other_nonce[23] ^= 1;
        assert_eq!(
            open_nonce(client.secret(), server.public(), &other_nonce, &sealed11),
            Err(CryptoError::Forged)
        );

        // A third party's key opens neither box.
        let stranger = KeyPair::from_secret_bytes([0x77; 32]);
        assert_eq!(
            open_nonce(stranger.secret(), server.public(), &nonce11, &sealed11),
            Err(CryptoError::Forged)
        );
        assert_eq!(
            open_client_info(server.secret(), stranger.public(), &nonce12, &sealed12),
            Err(CryptoError::Forged)
        );
    }

    #[test]
    fn generated_pairs_work_and_debug_hides_the_secret() {
        let mut rng = Rng::seed_from_u64(3);
        let a = KeyPair::generate(&mut rng);
        let b = KeyPair::generate(&mut rng);
        assert_ne!(a.public(), b.public());
        let inner = [0x5a; 48];
        let sealed = seal_nonce(a.secret(), b.public(), &[1; 24], &inner);
        assert_eq!(
            open_nonce(b.secret(), a.public(), &[1; 24], &sealed),
            Ok(inner)
        );

        let pair = KeyPair::from_secret_bytes(h32(COMPUTED_ECC_CLIENT_SK));
        let shown = alloc::format!("{pair:?}");
        assert!(shown.contains(COMPUTED_ECC_CLIENT_PUB), "{shown}");
        assert!(!shown.contains("1111"), "{shown}");
    }

    #[test]
    fn quickcheck_boxes_round_trip_and_open_never_panics() {
        fn prop(seed: u64, nonce: Vec<u8>, data: Vec<u8>) -> bool {
            let mut rng = Rng::seed_from_u64(seed);
            let (a, b) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
            let mut n = [0; 24];
            let mut inner = [0; 104];
            for (d, s) in n.iter_mut().zip(nonce) {
                *d = s;
            }
            for (d, s) in inner.iter_mut().zip(&data) {
                *d = *s;
            }
            let sealed = seal_client_info(a.secret(), b.public(), &n, &inner);
            let round_trip = open_client_info(b.secret(), a.public(), &n, &sealed) == Ok(inner);
            // Arbitrary bytes as a box never authenticate.
            let mut junk = [0; 64];
            for (d, s) in junk.iter_mut().zip(data.iter().rev()) {
                *d = *s;
            }
            round_trip && open_nonce(a.secret(), b.public(), &n, &junk) == Err(CryptoError::Forged)
        }
        quickcheck::QuickCheck::new()
            .tests(50)
            .quickcheck(prop as fn(u64, Vec<u8>, Vec<u8>) -> bool);
    }
}
