//! The server's suite 1 and 2 setup exchanges, all of them: the bounded tables of half-open and
//! just-completed exchanges (by address), and the suite 2 box keys of recent clients; and
//! for suite 3, [`read_initiation`], which reads an initiation and maps it to one of the
//! configured clients.
//!
//! The endpoint keeps only the routing around it: the reply budget (which must be paid between
//! [`SetupResponder::claim`] and [`SetupResponder::start`], so that requests beyond the budget
//! cost no public-key work), the reports of failed authentications, and the sessions that a
//! verified client-info yields. One exchange is an [`ExpectClientInfo`] (`handshake::server`).

use alloc::collections::BTreeMap;
use core::net::SocketAddr;

use crate::crypto::ecc::{self, BoxKey, KeyPair, PublicKey};
use crate::crypto::key_cache::{RecentKeys, RECENT_PEERS};
use crate::crypto::noise::Pattern;
use crate::crypto::static_dh::StaticDh;
use crate::crypto::Psk;
use crate::id::{ClientId, PeerId};
use crate::rng::Rng;
use crate::table::BoundedTable;
use crate::time::{Duration, Instant};
use crate::wire::{CipherId, NonceRequest, Setup};

use super::noise::{dh_count, ExpectInitiation, ReadInitiation, Step};
use super::{ExpectClientInfo, HandshakeError, SessionKeys};

/// What the server knows of its clients, borrowed from its configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Credentials<'a> {
    pub(crate) psk_clients: &'a BTreeMap<ClientId, Psk>,
    pub(crate) ecc_clients: &'a BTreeMap<ClientId, PublicKey>,
    pub(crate) allow_guest: bool,
    pub(crate) keys: Option<&'a KeyPair>,
}

/// Who an op 1 claims to be, judged from the configuration alone (no key work).
#[derive(Debug)]
pub(crate) enum Claim {
    Psk(Psk),
    /// The client's public key, and whether it is a guest's.
    Ecc(PublicKey, bool),
}

/// Why an op 1 gets no exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The client id is not configured (and no guest may take it): answered with op 6.
    UnknownClient,
    /// Suite 2 was asked for and we have no key pair.
    NoKeyPair,
    /// A guest key of low order: its box key would be predictable, so anyone could finish
    /// that guest's handshake; libsodium refuses such keys, and so do we.
    WeakKey,
}

/// The server's suite 1 and 2 exchanges. Everything an unauthenticated source can make it
/// store is in the two bounded tables; the box keys are at most one per configured client, and
/// at most [`RECENT_PEERS`].
#[derive(Debug)]
pub(crate) struct SetupResponder {
    half_open: BoundedTable<SocketAddr, ExpectClientInfo>,
    /// Exchanges completed within the half-open timeout, kept to accept a second client-info
    /// for the same nonce (a reference ECC client picks new keys for every op 11 it gets, and
    /// a retried op 1 is answered with the identical op 11); bounded like `half_open`.
    completed: BoundedTable<SocketAddr, ExpectClientInfo>,
    /// Suite 2 box keys of the configured clients that handshook most recently, made on first
    /// use (`crypto::key_cache`: kept for every client, they cost each idle session more than
    /// its replay window).
    box_keys: RecentKeys<ClientId, BoxKey>,
}

impl SetupResponder {
    pub(crate) fn new(max_half_open: usize) -> Self {
        SetupResponder {
            half_open: BoundedTable::new(max_half_open, |h| h.created),
            completed: BoundedTable::new(max_half_open, |h| h.created),
            box_keys: RecentKeys::new(RECENT_PEERS),
        }
    }

    /// Exchanges awaiting their client-info.
    pub(crate) fn half_open_len(&self) -> usize {
        self.half_open.len()
    }

    /// Whether nothing is held that housekeeping must expire.
    pub(crate) fn is_idle(&self) -> bool {
        self.half_open.is_empty() && self.completed.is_empty()
    }

    /// Forgets exchanges older than `timeout`, completed or not.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) {
        self.half_open.retain(|_, h| now - h.created < timeout);
        self.completed.retain(|_, h| now - h.created < timeout);
    }

    /// The answer to a retried op 1 from `from`: the identical reply, at no new state (the box
    /// key is kept with the exchange, so rebuilding needs no Diffie-Hellman). `None` if `req`
    /// is not a retry; `Some(None)` if it is but the reply cannot be rebuilt.
    pub(crate) fn retried(
        &self,
        from: SocketAddr,
        req: &NonceRequest,
        keys: Option<&KeyPair>,
    ) -> Option<Option<Setup>> {
        let half = self.half_open.get(&from)?;
        half.answers(req.client_id, &req.challenge)
            .then(|| half.reply(keys).ok())
    }

    /// Who `req` claims to be, from the configuration alone.
    pub(crate) fn claim(creds: Credentials<'_>, req: &NonceRequest) -> Result<Claim, Refused> {
        match req.cipher {
            CipherId::Psk => match creds.psk_clients.get(&req.client_id) {
                Some(key) => Ok(Claim::Psk(key.clone())),
                None => Err(Refused::UnknownClient),
            },
            CipherId::Ecc => {
                if creds.keys.is_none() {
                    return Err(Refused::NoKeyPair);
                }
                match creds.ecc_clients.get(&req.client_id) {
                    Some(k) => Ok(Claim::Ecc(*k, false)),
                    None if creds.allow_guest => {
                        Ok(Claim::Ecc(PublicKey::from(req.public_key), true))
                    }
                    None => Err(Refused::UnknownClient),
                }
            }
        }
    }

    /// Opens the exchange for `req` and returns its op 2 or op 11. Only call it once the reply
    /// budget has paid for the request: it may do public-key work, counted in `public_key_ops`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        &mut self,
        now: Instant,
        from: SocketAddr,
        req: &NonceRequest,
        claim: Claim,
        keys: Option<&KeyPair>,
        rng: &mut Rng,
        public_key_ops: &mut u64,
    ) -> Result<Setup, Refused> {
        let half = match claim {
            Claim::Psk(key) => {
                ExpectClientInfo::psk(now, req.client_id, key, rng.array(), req.challenge)
            }
            Claim::Ecc(public, guest) => {
                let box_key = self
                    .box_key(req.client_id, &public, guest, keys, public_key_ops)
                    .ok_or(Refused::WeakKey)?;
                let (nonce, box_nonce) = (rng.array(), rng.array());
                ExpectClientInfo::ecc(
                    now,
                    req.client_id,
                    public,
                    guest,
                    nonce,
                    box_nonce,
                    req.challenge,
                )
                .with_box_key(box_key)
            }
        };
        let reply = half.reply(keys).map_err(|_| Refused::NoKeyPair)?;
        self.half_open.insert(from, half);
        Ok(reply)
    }

    /// The suite 2 box key with `public`: a configured client's is made once and kept while it
    /// is among the [`RECENT_PEERS`] most recent (so a flood naming a known id costs no
    /// Diffie-Hellman after the first), a guest's is made
    /// for each exchange, by the same Diffie-Hellman that checks the key is not of low order.
    /// `None` for such a key.
    fn box_key(
        &mut self,
        id: ClientId,
        public: &PublicKey,
        guest: bool,
        keys: Option<&KeyPair>,
        public_key_ops: &mut u64,
    ) -> Option<BoxKey> {
        let keys = keys?;
        if guest {
            *public_key_ops += 1;
            return BoxKey::contributory(keys.secret(), public);
        }
        if let Some(k) = self.box_keys.get(&id) {
            return Some(k.clone());
        }
        *public_key_ops += 1;
        let k = ecc::BoxKey::new(keys.secret(), public);
        self.box_keys.insert(id, k.clone());
        Some(k)
    }

    /// Checks an op 3 or op 12 from `from` against its exchange, or against the one it just
    /// completed (a resent client-info is answered with op 7 again). `None` if there is no
    /// such exchange (or `info` is not a client-info, or suite 2 without a key pair). A
    /// verified packet moves its exchange to the completed table; a failed one leaves it in
    /// place, so a forged client-info cannot cancel the real one.
    pub(crate) fn on_client_info(
        &mut self,
        from: SocketAddr,
        info: &Setup,
        keys: Option<&KeyPair>,
    ) -> Option<(ClientId, Result<SessionKeys, HandshakeError>)> {
        let half = self
            .half_open
            .get(&from)
            .or_else(|| self.completed.get(&from))?;
        let (client_id, verdict) = match info {
            Setup::PskClientInfo(info) => (info.client_id, half.on_psk_info(info)),
            Setup::EccClientInfo(info) => (info.client_id, half.on_ecc_info(info, keys?)),
            _ => return None,
        };
        if verdict.is_ok() {
            if let Some(done) = self.half_open.remove(&from) {
                self.completed.insert(from, done);
            }
        }
        Some((client_id, verdict))
    }
}

/// Why a suite 3 initiation gets no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InitiationRefused {
    /// Not from one of our clients: an unknown client id or static key, or sealed to another
    /// static key or under another PSK. Worth an authentication-failure report.
    NotOurs,
    /// Our keys cannot run the pattern (no key pair for an IK pattern).
    Unsupported,
}

/// Reads an initiation of `pattern` (`client_id` is NNpsk0's clear id) and says who sent it.
/// It does the responder's Diffie-Hellman work, counted in `public_key_ops`: the server calls
/// it before charging any reply budget, so that only an authentic initiation spends one
/// (cookies under load keep this work bounded, `docs/PROTOCOL.md` §8.2). `statics` gives the
/// `ss` of initiators seen before (`crypto::static_dh`).
pub(crate) fn read_initiation(
    creds: Credentials<'_>,
    rng: &mut Rng,
    pattern: Pattern,
    client_id: Option<ClientId>,
    message: &[u8],
    public_key_ops: &mut u64,
    statics: Option<&StaticDh>,
) -> Result<(ReadInitiation, PeerId, ClientId), InitiationRefused> {
    let nn_psk = match client_id {
        Some(id) => Some(
            creds
                .psk_clients
                .get(&id)
                .ok_or(InitiationRefused::NotOurs)?,
        ),
        None => None,
    };
    // With statics our public key is known: no derivation of it at the start.
    if statics.is_none() {
        *public_key_ops += dh_count(pattern, Step::Start);
    }
    let expect = ExpectInitiation::new_cached(pattern, rng, creds.keys, nn_psk, statics)
        .map_err(|_| InitiationRefused::Unsupported)?;
    *public_key_ops += dh_count(pattern, Step::Read);
    let mut read = expect
        .read(message)
        .map_err(|_| InitiationRefused::NotOurs)?;
    // `ss` came from the statics: one Diffie-Hellman fewer.
    let cached = read
        .remote_static()
        .is_some_and(|p| statics.is_some_and(|s| s.knows(&p)));
    *public_key_ops -= u64::from(cached);
    let (peer, id) = identify(creds, pattern, client_id, &mut read, public_key_ops)
        .ok_or(InitiationRefused::NotOurs)?;
    Ok((read, peer, id))
}

/// Who a suite 3 initiation is from (its counterpart of [`SetupResponder::claim`]): the
/// static key of an IK pattern mapped to a configured id (or a guest, whose key must not be
/// of low order: that would make its keys predictable), or the clear client id of NNpsk0.
/// For IKpsk2 it also sets the identified client's PSK, which the rest of the message needs.
/// Counts its Diffie-Hellman in `public_key_ops`. `None` if the initiator is not one of ours.
fn identify(
    creds: Credentials<'_>,
    pattern: Pattern,
    id: Option<ClientId>,
    responder: &mut ReadInitiation,
    public_key_ops: &mut u64,
) -> Option<(PeerId, ClientId)> {
    if pattern == Pattern::NnPsk0 {
        let id = id?;
        return Some((PeerId::Client(id), id));
    }
    let public = responder.remote_static()?;
    let known = creds
        .ecc_clients
        .iter()
        .find(|(_, k)| **k == public)
        .map(|(id, _)| *id);
    let (peer, id) = match known {
        Some(id) => (PeerId::Client(id), id),
        None if creds.allow_guest => {
            let keys = creds.keys?;
            *public_key_ops += 1;
            if !keys.secret().diffie_hellman(&public).was_contributory() {
                return None;
            }
            (
                PeerId::Guest(ecc::guest_id(&public)),
                ecc::default_client_id(&public),
            )
        }
        None => return None,
    };
    if pattern == Pattern::IkPsk2 {
        let psk = creds.psk_clients.get(&id)?;
        responder.set_psk(psk).ok()?;
    }
    Some((peer, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::client::psk_client_info;
    use crate::id::Counter;

    const ID: ClientId = ClientId(*b"CCCCCCCCCCCCCCCC");

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn request(cipher: CipherId, public_key: [u8; 32], challenge: u8) -> NonceRequest {
        NonceRequest {
            cipher,
            client_id: ID,
            challenge: [challenge; 16],
            session_hint: [0; 16],
            public_key,
        }
    }

    struct Config {
        psk: BTreeMap<ClientId, Psk>,
        ecc: BTreeMap<ClientId, PublicKey>,
        keys: KeyPair,
    }

    impl Config {
        fn new(client: &KeyPair) -> Self {
            Config {
                psk: [(ID, Psk::from_bytes([7; 32]))].into(),
                ecc: [(ID, *client.public())].into(),
                keys: KeyPair::from_secret_bytes([9; 32]),
            }
        }

        fn creds(&self, allow_guest: bool) -> Credentials<'_> {
            Credentials {
                psk_clients: &self.psk,
                ecc_clients: &self.ecc,
                allow_guest,
                keys: Some(&self.keys),
            }
        }
    }

    fn start(r: &mut SetupResponder, c: &Config, from: SocketAddr, req: &NonceRequest) -> u64 {
        let mut ops = 0;
        let claim = SetupResponder::claim(c.creds(true), req).unwrap();
        let mut rng = Rng::from_seed([1; 32]);
        let keys = Some(&c.keys);
        r.start(Instant::ZERO, from, req, claim, keys, &mut rng, &mut ops)
            .unwrap();
        ops
    }

    #[test]
    fn a_retried_request_gets_the_identical_reply_and_no_new_exchange() {
        let c = Config::new(&KeyPair::from_secret_bytes([3; 32]));
        let mut r = SetupResponder::new(4);
        let req = request(CipherId::Psk, [0; 32], 1);
        let mut rng = Rng::from_seed([1; 32]);
        let claim = SetupResponder::claim(c.creds(false), &req).unwrap();
        let mut ops = 0;
        let first = r
            .start(
                Instant::ZERO,
                addr(1),
                &req,
                claim,
                None,
                &mut rng,
                &mut ops,
            )
            .unwrap();
        assert_eq!(r.retried(addr(1), &req, None), Some(Some(first)));
        // Another challenge, or another source, is a new request.
        assert_eq!(
            r.retried(addr(1), &request(CipherId::Psk, [0; 32], 2), None),
            None
        );
        assert_eq!(r.retried(addr(2), &req, None), None);
        assert_eq!(r.half_open_len(), 1);
    }

    #[test]
    fn unknown_clients_are_refused_and_guests_only_when_allowed() {
        let c = Config::new(&KeyPair::from_secret_bytes([3; 32]));
        let mut stranger = request(CipherId::Ecc, [5; 32], 1);
        stranger.client_id = ClientId([0; 16]);
        assert!(matches!(
            SetupResponder::claim(c.creds(false), &stranger),
            Err(Refused::UnknownClient)
        ));
        assert!(matches!(
            SetupResponder::claim(c.creds(true), &stranger),
            Ok(Claim::Ecc(_, true))
        ));
        let mut no_keys = c.creds(true);
        no_keys.keys = None;
        assert!(matches!(
            SetupResponder::claim(no_keys, &stranger),
            Err(Refused::NoKeyPair)
        ));
    }

    #[test]
    fn a_configured_clients_box_key_costs_one_diffie_hellman_a_guests_one_each() {
        let client = KeyPair::from_secret_bytes([3; 32]);
        let c = Config::new(&client);
        let mut r = SetupResponder::new(4);
        let known = request(CipherId::Ecc, client.public().to_bytes(), 1);
        assert_eq!(start(&mut r, &c, addr(1), &known), 1);
        assert_eq!(start(&mut r, &c, addr(2), &known), 0);
        let mut guest = request(CipherId::Ecc, [5; 32], 1);
        guest.client_id = ClientId([0; 16]);
        assert_eq!(start(&mut r, &c, addr(3), &guest), 1);
        assert_eq!(start(&mut r, &c, addr(4), &guest), 1);
    }

    #[test]
    fn a_low_order_guest_key_gets_no_exchange() {
        let c = Config::new(&KeyPair::from_secret_bytes([3; 32]));
        let mut r = SetupResponder::new(4);
        let mut guest = request(CipherId::Ecc, [0; 32], 1);
        guest.client_id = ClientId([0; 16]);
        let claim = SetupResponder::claim(c.creds(true), &guest).unwrap();
        let (mut rng, mut ops) = (Rng::from_seed([1; 32]), 0);
        let keys = Some(&c.keys);
        let started = r.start(
            Instant::ZERO,
            addr(1),
            &guest,
            claim,
            keys,
            &mut rng,
            &mut ops,
        );
        assert_eq!(started, Err(Refused::WeakKey));
        assert_eq!(r.half_open_len(), 0);
    }

    #[test]
    fn a_verified_client_info_completes_the_exchange_and_a_resent_one_still_verifies() {
        let c = Config::new(&KeyPair::from_secret_bytes([3; 32]));
        let mut r = SetupResponder::new(4);
        let req = request(CipherId::Psk, [0; 32], 1);
        start(&mut r, &c, addr(1), &req);
        let Some(Some(Setup::PskNonce(nonce))) = r.retried(addr(1), &req, None) else {
            panic!("no exchange");
        };
        let psk = &c.psk[&ID];
        let forged = psk_client_info(
            &Psk::from_bytes([8; 32]),
            ID,
            [2; 32],
            nonce.server_nonce,
            Counter(5),
        );
        let (_, verdict) = r.on_client_info(addr(1), &forged, None).unwrap();
        assert_eq!(verdict.unwrap_err(), HandshakeError::BadTag);
        assert_eq!(r.half_open_len(), 1, "a forgery leaves the exchange open");
        let info = psk_client_info(psk, ID, [2; 32], nonce.server_nonce, Counter(5));
        let (id, verdict) = r.on_client_info(addr(1), &info, None).unwrap();
        assert_eq!((id, verdict.is_ok()), (ID, true));
        assert_eq!(r.half_open_len(), 0);
        assert!(!r.is_idle());
        let (_, again) = r.on_client_info(addr(1), &info, None).unwrap();
        assert!(
            again.is_ok(),
            "the completed exchange answers a resent client-info"
        );
        assert!(r.on_client_info(addr(2), &info, None).is_none());
        r.expire(
            Instant::ZERO + Duration::from_secs(5),
            Duration::from_secs(5),
        );
        assert!(r.is_idle());
    }

    /// An IK initiation's message from `client` to `server`.
    fn initiation_message(client: &KeyPair, server: &KeyPair) -> ([u8; 128], usize) {
        let mut rng = Rng::from_seed([9; 32]);
        let mut m1 = [0u8; 128];
        let creds = (Some(client), Some(server.public()), None);
        let index = crate::wire::noise::SessionIndex(5);
        let (_, n) = crate::handshake::noise::SentInitiation::start(
            Pattern::Ik,
            &mut rng,
            creds,
            1,
            1,
            index,
            &mut m1,
        )
        .unwrap();
        (m1, n)
    }

    /// An IK initiation from `client` to `server`, read by the server.
    fn initiation(client: &KeyPair, server: &KeyPair) -> ReadInitiation {
        let (m1, n) = initiation_message(client, server);
        let mut rng = Rng::from_seed([9; 32]);
        ExpectInitiation::new(Pattern::Ik, &mut rng, Some(server), None)
            .unwrap()
            .read(&m1[..n])
            .unwrap()
    }

    #[test]
    fn an_initiation_not_for_us_or_from_a_stranger_is_refused() {
        let client = KeyPair::from_secret_bytes([3; 32]);
        let c = Config::new(&client);
        let mut rng = Rng::from_seed([1; 32]);
        let mut read = |creds, pattern, id, (m1, n): ([u8; 128], usize)| {
            read_initiation(creds, &mut rng, pattern, id, &m1[..n], &mut 0, None)
                .map(|(_, peer, id)| (peer, id))
        };
        let ours = initiation_message(&client, &c.keys);
        let from_client = read(c.creds(false), Pattern::Ik, None, ours);
        assert_eq!(from_client, Ok((PeerId::Client(ID), ID)));
        let other = initiation_message(&client, &KeyPair::from_secret_bytes([4; 32]));
        let refused = read(c.creds(false), Pattern::Ik, None, other);
        assert_eq!(refused, Err(InitiationRefused::NotOurs));
        let mut no_keys = c.creds(false);
        no_keys.keys = None;
        let refused = read(no_keys, Pattern::Ik, None, other);
        assert_eq!(refused, Err(InitiationRefused::Unsupported));
        let stranger = Some(ClientId([0; 16]));
        let refused = read(c.creds(false), Pattern::NnPsk0, stranger, other);
        assert_eq!(refused, Err(InitiationRefused::NotOurs));
    }

    #[test]
    fn an_initiation_is_identified_by_its_static_key_or_as_a_guest_only_when_allowed() {
        let client = KeyPair::from_secret_bytes([3; 32]);
        let c = Config::new(&client);
        let mut ops = 0;
        let mut read = initiation(&client, &c.keys);
        let known = identify(c.creds(false), Pattern::Ik, None, &mut read, &mut ops);
        assert_eq!(known, Some((PeerId::Client(ID), ID)));
        assert_eq!(ops, 0, "a configured key needs no Diffie-Hellman");
        let stranger = KeyPair::from_secret_bytes([4; 32]);
        let mut read = initiation(&stranger, &c.keys);
        assert_eq!(
            identify(c.creds(false), Pattern::Ik, None, &mut read, &mut ops),
            None
        );
        let guest = identify(c.creds(true), Pattern::Ik, None, &mut read, &mut ops);
        let id = ecc::default_client_id(stranger.public());
        let peer = PeerId::Guest(ecc::guest_id(stranger.public()));
        assert_eq!(guest, Some((peer, id)));
        assert_eq!(ops, 1);
    }
}
