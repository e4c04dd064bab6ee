//! Suites 1 and 2 on the server: routing setup packets (ops 1, 3, 12) to the exchanges of
//! `handshake::responder`, charging replies to the source's budget, reporting failed
//! authentications, and making or refreshing the session a verified client-info yields.
//!
//! Wire bytes routed here: ops 1, 3, 12; written: 2, 6, 7, 11. Timers: none of its own (the
//! server's housekeeping expires the exchanges). Events: `Connected`.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::{Server, ServerSession, Who};
use crate::crypto::ct_eq;
use crate::endpoint::{DropReason, FailReason, Outgoing, ServerEvent};
use crate::handshake::responder::{Refused, SetupResponder};
use crate::handshake::{HandshakeError, SessionKeys};
use crate::id::ClientId;
use crate::keylog::{ReferenceSuite, SessionSecret};
use crate::reliability::Payload;
use crate::session::{RxKey, Session, TxKey};
use crate::time::Instant;
use crate::wire::{NonceRequest, Setup};

impl Server {
    pub(super) fn on_setup(&mut self, now: Instant, from: SocketAddr, setup: Setup) {
        if let Setup::NonceRequest(req) = setup {
            return self.on_nonce_request(now, from, req);
        }
        let keys = self.config.keys.as_ref();
        match self.setup.on_client_info(from, &setup, keys) {
            Some((client_id, verdict)) => self.on_client_info(now, from, client_id, verdict),
            None => self.shared.stats.drop(DropReason::Unexpected),
        }
    }

    fn on_client_info(
        &mut self,
        now: Instant,
        from: SocketAddr,
        client_id: ClientId,
        verdict: Result<SessionKeys, HandshakeError>,
    ) {
        match verdict {
            Ok(keys) => self.establish(now, from, client_id, keys),
            // The exchange stays open: a forged client-info must not cancel the real one.
            Err(e) => {
                self.shared.stats.drop(DropReason::BadHandshake);
                // A stale client-info (another exchange's nonce) says nothing of the keys.
                if matches!(e, HandshakeError::BadTag | HandshakeError::ForgedBox) {
                    self.auth_failed(now, from);
                }
            }
        }
    }

    /// Op 1. Checks in cost order: what needs no key first, then the reply budget, and only
    /// then public-key work (suite 2's box, and a guest key's check), so that packets beyond
    /// the budget cost none (`docs/PROTOCOL.md` §8.2).
    fn on_nonce_request(&mut self, now: Instant, from: SocketAddr, req: NonceRequest) {
        if !crate::crypto::suite::Suite::of_cipher(req.cipher).is_compiled() {
            return self.shared.stats.drop(DropReason::SuiteNotCompiled);
        }
        if self
            .sessions
            .get(&from)
            .is_some_and(|s| ct_eq(&s.session_id, &req.session_hint))
        {
            // The reference's "already connected" shortcut.
            return self.shared.stats.drop(DropReason::Unexpected);
        }
        let keys = self.config.keys.as_ref();
        if let Some(retried) = self.setup.retried(from, &req, keys) {
            if let Some(reply) = retried {
                self.reply_setup(now, from, reply);
            }
            return;
        }
        let creds = super::credentials(&self.config);
        let claim = match SetupResponder::claim(creds, &req) {
            Ok(claim) => claim,
            Err(Refused::UnknownClient) => return self.refuse(now, from, req.challenge),
            Err(_) => return self.shared.stats.drop(DropReason::Unsupported),
        };
        if !self.allow_reply(now, from) {
            return;
        }
        // The budget paid for this request: public-key work is allowed from here on.
        let keys = self.config.keys.as_ref();
        let ops = &mut self.shared.stats.public_key_ops;
        let reply = match self
            .setup
            .start(now, from, &req, claim, keys, &mut self.rng, ops)
        {
            Ok(reply) => reply,
            Err(Refused::WeakKey) => return self.shared.stats.drop(DropReason::BadHandshake),
            Err(_) => return self.shared.stats.drop(DropReason::Unsupported),
        };
        self.shared.stats.handshake_requests += 1;
        self.shared.tx.push_back(Outgoing::Setup {
            to: from,
            packet: reply,
        });
    }

    /// Opcode 6: the client id is unknown. 36 bytes for a 101-byte request.
    fn refuse(&mut self, now: Instant, to: SocketAddr, challenge: [u8; 16]) {
        self.shared.stats.drop(DropReason::BadHandshake);
        self.auth_failed(now, to);
        self.reply_setup(now, to, Setup::InvalidClientId { challenge });
    }

    pub(super) fn establish(
        &mut self,
        now: Instant,
        from: SocketAddr,
        client_id: ClientId,
        keys: SessionKeys,
    ) {
        let session_id = keys.session_id;
        let suite = if self.config.psk_clients.contains_key(&client_id) {
            ReferenceSuite::Psk
        } else {
            ReferenceSuite::Ecc
        };
        self.shared.log_secret(|| SessionSecret::Reference {
            suite,
            to_server: *keys.client_to_server.danger_as_bytes(),
            to_client: *keys.server_to_client.danger_as_bytes(),
        });
        match self.sessions.get_mut(&from) {
            // The same client process (same C>S key) handshaking again, for example after a
            // spoofed op 4: keep the replay window, so that nothing it already sent can be
            // replayed, and keep the outbox, the answer cache and the counter.
            Some(s)
                if s.is_current(&RxKey::Reference(keys.client_to_server.clone()))
                    && s.client_id == client_id =>
            {
                s.tx_key = TxKey::Reference(keys.server_to_client);
                s.session_id = session_id;
                s.last_heard = now;
            }
            existing => {
                if existing.is_none() && !self.make_room(now) {
                    return self.shared.stats.drop(DropReason::TableFull);
                }
                let rx = RxKey::Reference(keys.client_to_server);
                let who = Who {
                    peer: keys.peer,
                    client_id,
                    session_id,
                };
                let tx_key = TxKey::Reference(keys.server_to_client);
                let session = Session::new(rx, keys.client_counter, now);
                let session = ServerSession::new(self, now, session, who, tx_key);
                if let Some(old) = self.sessions.insert(from, Box::new(session)) {
                    // A different client process took over the address: its messages and
                    // subscriptions are not for this one.
                    self.release_handoffs(old.generation);
                    self.forget_client_subs(from, old.peer);
                    self.fail_outbox(old.outbox, FailReason::PeerClosed);
                    self.end_segments(from, FailReason::PeerClosed);
                    // Its ordered streams failed with its outbox: the new one gets a new epoch.
                    self.ordered_tx.remove(&from);
                }
                self.busy.remove(&from);
                // A new client process knows nothing of our subscriptions yet.
                let targets: Vec<String> = self.targets.iter().cloned().collect();
                for t in targets {
                    self.push_internal(now, from, Payload::Subscribe(t));
                }
            }
        }
        self.shared.stats.handshakes += 1;
        self.shared.tx.push_back(Outgoing::Setup {
            to: from,
            packet: Setup::SessionEstablished { session_id },
        });
        // NOTE: the session was updated or inserted just above, so it is always there.
        if let Some(s) = self.sessions.get(&from) {
            self.shared.events.push_back(ServerEvent::Connected {
                addr: from,
                peer: s.peer,
            });
        }
        self.fill_durable();
    }
}
