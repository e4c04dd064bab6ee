//! The client's half of the setup exchange.

use arrayvec::ArrayVec;

use crate::crypto::ecc::{self, KeyPair, PublicKey};
use crate::crypto::{ct_eq, psk, Psk, SecretBoxKey};
use crate::id::{ClientId, Counter};
use crate::rng::Rng;
use crate::wire::{
    CipherId, EccClientInfo, EccNonce, NonceRequest, PskClientInfo, PskNonce, Setup,
};

use super::HandshakeError;

/// Server nonces remembered per round. A multicast round is answered by every server of the
/// group, each with its own nonce; past this many the oldest is forgotten.
const USED_NONCES: usize = 32;

/// The client's challenge state for one handshake round.
///
/// A round starts with [`Initiator::new_round`]: a fresh challenge, and an empty set of used
/// server nonces. A nonce packet counts only if it echoes the current challenge and carries a
/// server nonce not yet used in this round, so a captured nonce packet can never be replayed
/// (the reference resets its replay counter on such a replay, docs/PROTOCOL.md §10 item 2).
#[derive(Clone, Debug)]
pub(crate) struct Initiator {
    challenge: [u8; 16],
    /// Sent as the request's session hint. Random per process, like the reference's, so it never
    /// matches a live session id and never triggers the "already connected" shortcut.
    hint: [u8; 16],
    used: ArrayVec<[u8; 32], USED_NONCES>,
}

impl Initiator {
    pub(crate) fn new(rng: &mut Rng) -> Self {
        Initiator {
            challenge: rng.array(),
            hint: rng.array(),
            used: ArrayVec::new(),
        }
    }

    pub(crate) fn new_round(&mut self, rng: &mut Rng) {
        self.challenge = rng.array();
        self.used.clear();
    }

    /// The op 1 packet. `public_key` is the client's X25519 *public* key for ECC, zeros for PSK.
    pub(crate) fn request(
        &self,
        cipher: CipherId,
        client_id: ClientId,
        public_key: [u8; 32],
    ) -> Setup {
        Setup::NonceRequest(NonceRequest {
            cipher,
            client_id,
            challenge: self.challenge,
            session_hint: self.hint,
            public_key,
        })
    }

    /// Whether an op 6 (invalid client id) answers our current request.
    pub(crate) fn is_current(&self, challenge: &[u8; 16]) -> bool {
        ct_eq(challenge, &self.challenge)
    }

    /// Verifies an op 2 and returns the server nonce it carries.
    pub(crate) fn on_psk_nonce(
        &mut self,
        key: &Psk,
        p: &PskNonce,
    ) -> Result<[u8; 32], HandshakeError> {
        if !self.is_current(&p.challenge) {
            return Err(HandshakeError::WrongChallenge);
        }
        if self.used.contains(&p.server_nonce) {
            return Err(HandshakeError::ReusedNonce);
        }
        let tag = psk::nonce_tag(key, &p.server_nonce, &p.challenge);
        if !ct_eq(&tag, &p.tag) {
            return Err(HandshakeError::BadTag);
        }
        self.remember(p.server_nonce);
        Ok(p.server_nonce)
    }

    /// Opens and verifies an op 11 and returns the server nonce it carries.
    pub(crate) fn on_ecc_nonce(
        &mut self,
        keys: &KeyPair,
        server: &PublicKey,
        p: &EccNonce,
    ) -> Result<[u8; 32], HandshakeError> {
        let inner = ecc::open_nonce(keys.secret(), server, &p.box_nonce, &p.sealed)
            .map_err(|_| HandshakeError::ForgedBox)?;
        let (nonce, challenge) = inner.split_at(32);
        if !ct_eq(challenge, &self.challenge) {
            return Err(HandshakeError::WrongChallenge);
        }
        let mut server_nonce = [0u8; 32];
        server_nonce.copy_from_slice(nonce);
        if self.used.contains(&server_nonce) {
            return Err(HandshakeError::ReusedNonce);
        }
        self.remember(server_nonce);
        Ok(server_nonce)
    }

    fn remember(&mut self, nonce: [u8; 32]) {
        if self.used.is_full() {
            self.used.remove(0);
        }
        self.used.push(nonce);
    }
}

/// The op 3 packet for a verified server nonce.
pub(crate) fn psk_client_info(
    key: &Psk,
    client_id: ClientId,
    client_nonce: [u8; 32],
    server_nonce: [u8; 32],
    counter: Counter,
) -> Setup {
    let mut info = PskClientInfo {
        cipher: CipherId::Psk,
        client_id,
        client_nonce,
        server_nonce,
        counter,
        tag: [0; 32],
    };
    info.tag = psk::client_info_tag(key, &info.authenticated_bytes());
    Setup::PskClientInfo(info)
}

/// The op 12 packet: both session keys and the counter floor, boxed for the server.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ecc_client_info(
    keys: &KeyPair,
    server: &PublicKey,
    client_id: ClientId,
    box_nonce: [u8; 24],
    server_nonce: [u8; 32],
    client_to_server: &SecretBoxKey,
    server_to_client: &SecretBoxKey,
    counter: Counter,
) -> Setup {
    let mut inner = [0u8; 104];
    inner[..32].copy_from_slice(&server_nonce);
    inner[32..64].copy_from_slice(client_to_server.danger_as_bytes());
    inner[64..96].copy_from_slice(server_to_client.danger_as_bytes());
    inner[96..].copy_from_slice(&counter.0.to_le_bytes());
    Setup::EccClientInfo(EccClientInfo {
        client_id,
        cipher: CipherId::Ecc,
        box_nonce,
        sealed: ecc::seal_client_info(keys.secret(), server, &box_nonce, &inner),
    })
}

/// What a suite 1 or 2 client holds once a server's nonce verified: the S>C key the new
/// session receives under, its session id (which op 7 echoes), and the client-info to send
/// (and resend while the session is unconfirmed).
pub(crate) struct Established {
    pub(crate) rx: SecretBoxKey,
    pub(crate) session_id: [u8; 16],
    pub(crate) client_info: Setup,
}

/// Suite 1: both keys derive from the PSK and the two nonces; `floor` is the counter floor
/// announced in op 3.
pub(crate) fn psk_established(
    key: &Psk,
    client_id: ClientId,
    client_nonce: [u8; 32],
    cs_key: &SecretBoxKey,
    server_nonce: [u8; 32],
    floor: Counter,
) -> Established {
    Established {
        rx: psk::server_to_client_key(key, &client_nonce, &server_nonce),
        session_id: psk::session_id(key, cs_key),
        client_info: psk_client_info(key, client_id, client_nonce, server_nonce, floor),
    }
}

/// Suite 2: the client picks the S>C key, fresh for each server and handshake, and boxes it
/// with our C>S key and `floor` for the server (op 12).
pub(crate) fn ecc_established(
    keys: &KeyPair,
    server: &PublicKey,
    client_id: ClientId,
    cs_key: &SecretBoxKey,
    server_nonce: [u8; 32],
    floor: Counter,
    rng: &mut Rng,
) -> Established {
    let rx = SecretBoxKey::from_bytes(rng.array());
    let client_info = ecc_client_info(
        keys,
        server,
        client_id,
        rng.array(),
        server_nonce,
        cs_key,
        &rx,
        floor,
    );
    Established {
        rx,
        session_id: ecc::session_id(keys.public(), cs_key),
        client_info,
    }
}
