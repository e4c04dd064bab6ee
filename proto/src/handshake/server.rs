//! The server's half of the setup exchange.

use crate::crypto::ecc::{self, BoxKey, KeyPair, PublicKey};
use crate::crypto::{ct_eq, psk, Psk};
use crate::id::{ClientId, Counter, PeerId};
use crate::time::Instant;
use crate::wire::{CipherId, EccClientInfo, EccNonce, PskClientInfo, PskNonce, Setup};

use super::{HandshakeError, PeerAuthenticated, SessionKeys};

/// The credential the exchange is checked against.
#[derive(Clone, Debug)]
enum Credential {
    Psk(Psk),
    Ecc {
        client: PublicKey,
        guest: bool,
        /// The box key with the server's key pair, made once after the reply budget allowed
        /// it; without it each box costs a Diffie–Hellman.
        key: Option<BoxKey>,
    },
}

/// Half-open server state: a nonce was issued to an address, and the client-info packet that
/// echoes it is awaited. [`ExpectClientInfo::on_psk_info`] or [`ExpectClientInfo::on_ecc_info`]
/// turn a matching packet into [`SessionKeys`]; the caller then drops this state. A packet that
/// fails leaves it in place, so a forgery cannot cancel the real client's exchange.
#[derive(Clone, Debug)]
pub(crate) struct ExpectClientInfo {
    client_id: ClientId,
    credential: Credential,
    server_nonce: [u8; 32],
    /// The challenge of the request this answers; the reply is rebuilt from it on a duplicate
    /// request, so that a retried request gets the identical answer.
    challenge: [u8; 16],
    box_nonce: [u8; 24],
    pub(crate) created: Instant,
}

impl ExpectClientInfo {
    /// Starts a PSK exchange; the caller sends [`Self::reply`].
    pub(crate) fn psk(
        now: Instant,
        client_id: ClientId,
        key: Psk,
        server_nonce: [u8; 32],
        challenge: [u8; 16],
    ) -> Self {
        ExpectClientInfo {
            client_id,
            credential: Credential::Psk(key),
            server_nonce,
            challenge,
            box_nonce: [0; 24],
            created: now,
        }
    }

    /// Starts an ECC exchange with a known or guest public key.
    pub(crate) fn ecc(
        now: Instant,
        client_id: ClientId,
        client: PublicKey,
        guest: bool,
        server_nonce: [u8; 32],
        box_nonce: [u8; 24],
        challenge: [u8; 16],
    ) -> Self {
        ExpectClientInfo {
            client_id,
            credential: Credential::Ecc {
                client,
                guest,
                key: None,
            },
            server_nonce,
            challenge,
            box_nonce,
            created: now,
        }
    }

    /// Uses `key`, the box key of the server's secret and the client's public key, for the
    /// op 11 and op 12 boxes of an ECC exchange, instead of a Diffie–Hellman per box.
    pub(crate) fn with_box_key(mut self, key: BoxKey) -> Self {
        if let Credential::Ecc { key: k, .. } = &mut self.credential {
            *k = Some(key);
        }
        self
    }

    /// Whether this exchange answers the same request again (a retried op 1).
    pub(crate) fn answers(&self, client_id: ClientId, challenge: &[u8; 16]) -> bool {
        self.client_id == client_id && self.challenge == *challenge
    }

    /// The op 2 or op 11 packet that answers the request.
    pub(crate) fn reply(&self, keys: Option<&KeyPair>) -> Result<Setup, HandshakeError> {
        match &self.credential {
            Credential::Psk(key) => Ok(Setup::PskNonce(PskNonce {
                server_nonce: self.server_nonce,
                challenge: self.challenge,
                tag: psk::nonce_tag(key, &self.server_nonce, &self.challenge),
            })),
            Credential::Ecc { client, key, .. } => {
                let server = keys.ok_or(HandshakeError::NoKeyPair)?;
                let mut inner = [0u8; 48];
                inner[..32].copy_from_slice(&self.server_nonce);
                inner[32..].copy_from_slice(&self.challenge);
                let sealed = match key {
                    Some(k) => ecc::seal_nonce_with(k, &self.box_nonce, &inner),
                    None => ecc::seal_nonce(server.secret(), client, &self.box_nonce, &inner),
                };
                Ok(Setup::EccNonce(EccNonce {
                    box_nonce: self.box_nonce,
                    sealed,
                }))
            }
        }
    }

    /// Completes a PSK exchange with the client's op 3.
    pub(crate) fn on_psk_info(&self, info: &PskClientInfo) -> Result<SessionKeys, HandshakeError> {
        let Credential::Psk(key) = &self.credential else {
            return Err(HandshakeError::CipherMismatch);
        };
        if info.cipher != CipherId::Psk {
            return Err(HandshakeError::CipherMismatch);
        }
        if info.client_id != self.client_id {
            return Err(HandshakeError::ClientIdMismatch);
        }
        if !ct_eq(&info.server_nonce, &self.server_nonce) {
            return Err(HandshakeError::NonceMismatch);
        }
        let tag = psk::client_info_tag(key, &info.authenticated_bytes());
        if !ct_eq(&tag, &info.tag) {
            return Err(HandshakeError::BadTag);
        }
        let client_to_server = psk::client_to_server_key(key, &info.client_nonce);
        let server_to_client =
            psk::server_to_client_key(key, &info.client_nonce, &self.server_nonce);
        let session_id = psk::session_id(key, &client_to_server);
        Ok(SessionKeys {
            client_to_server,
            server_to_client,
            client_counter: info.counter,
            session_id,
            peer: PeerId::Client(self.client_id),
            _proof: PeerAuthenticated(()),
        })
    }

    /// Completes an ECC exchange with the client's op 12.
    pub(crate) fn on_ecc_info(
        &self,
        info: &EccClientInfo,
        server: &KeyPair,
    ) -> Result<SessionKeys, HandshakeError> {
        let Credential::Ecc { client, guest, key } = &self.credential else {
            return Err(HandshakeError::CipherMismatch);
        };
        if info.cipher != CipherId::Ecc {
            return Err(HandshakeError::CipherMismatch);
        }
        if info.client_id != self.client_id {
            return Err(HandshakeError::ClientIdMismatch);
        }
        let opened = match key {
            Some(k) => ecc::open_client_info_with(k, &info.box_nonce, &info.sealed),
            None => ecc::open_client_info(server.secret(), client, &info.box_nonce, &info.sealed),
        };
        let Ok(inner) = opened else {
            return Err(HandshakeError::ForgedBox);
        };
        let (echo, rest) = inner.split_at(32);
        if !ct_eq(echo, &self.server_nonce) {
            return Err(HandshakeError::NonceMismatch);
        }
        let mut cs = [0u8; 32];
        let mut sc = [0u8; 32];
        let mut ctr = [0u8; 8];
        cs.copy_from_slice(&rest[..32]);
        sc.copy_from_slice(&rest[32..64]);
        ctr.copy_from_slice(&rest[64..72]);
        let client_to_server = crate::crypto::SecretBoxKey::from_bytes(cs);
        let session_id = ecc::session_id(client, &client_to_server);
        let peer = if *guest {
            PeerId::Guest(ecc::guest_id(client))
        } else {
            PeerId::Client(self.client_id)
        };
        Ok(SessionKeys {
            client_to_server,
            server_to_client: crate::crypto::SecretBoxKey::from_bytes(sc),
            client_counter: Counter(u64::from_le_bytes(ctr)),
            session_id,
            peer,
            _proof: PeerAuthenticated(()),
        })
    }
}
