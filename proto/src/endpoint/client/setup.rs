//! The client's suite 1 and 2 setup exchange as the endpoint drives it: opening rounds and
//! sending op 1, answering a verified nonce with our client-info, confirmation (op 7) and
//! rejection (op 6), and what any completed handshake (of every suite) sets going.
//!
//! The decisions live in [`handshake`](crate::handshake): the challenge in `Initiator`, the
//! retry, rate limit and confirmation policy in `handshake::rounds`, the key derivations in
//! `handshake::client`. Here they meet the client's tables (sessions, queues, events).

use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::crypto::{ct_eq, SecretBoxKey};
use crate::handshake::noise_initiator::NoiseSlot;
use crate::handshake::rounds::{Connecting, Rounds, Trigger, Unconfirmed};
use crate::handshake::{client as hs, HandshakeError};
use crate::id::Counter;
use crate::keylog::{ReferenceSuite, SessionSecret};
use crate::session::remote_server::RemoteServer;
use crate::session::{RxKey, Session};
use crate::table::oldest_by;
use crate::time::Instant;
use crate::wire::{CipherId, Setup};

use super::super::config::ClientCredentials;
use super::super::{ClientEvent, CloseReason, DropReason, FailReason, Outgoing};
use super::Client;

impl Client {
    /// Opens a new handshake round: a fresh challenge, and op 1 at once.
    pub(super) fn start_round(&mut self, now: Instant) {
        self.auth_reset();
        self.initiator.new_round(&mut self.rng);
        self.rounds.opened(now, self.config.min_round_interval);
        self.group_round_started(now);
        self.send_request(0);
    }

    /// Sends op 1 for the current round and schedules its retry.
    pub(super) fn send_request(&mut self, attempt: u32) {
        let to = self.config.server;
        let (cipher, public) = match &self.config.credentials {
            ClientCredentials::Psk(_) => (CipherId::Psk, [0; 32]),
            // Only ever the public key (the reference leaks the secret here: bug 1).
            ClientCredentials::Ecc { keys, .. } => (CipherId::Ecc, keys.public().to_bytes()),
            ClientCredentials::Noise { .. } => (CipherId::Ecc, [0; 32]),
        };
        #[cfg(feature = "suite-noise")]
        let noise = self.noise.live().is_some();
        #[cfg(not(feature = "suite-noise"))]
        let noise = false;
        if noise {
            #[cfg(feature = "suite-noise")]
            match self.noise_initiation(to, self.noise_cookie()) {
                Some(out) => self.shared.tx.push_back(out),
                None => self.shared.stats.send_errors += 1,
            }
        } else {
            let packet = self
                .initiator
                .request(cipher, self.config.client_id, public);
            self.shared.tx.push_back(Outgoing::Setup { to, packet });
        }
        self.shared.stats.handshake_requests += 1;
        let delay = Rounds::retry_delay(
            self.config.limits.handshake_retry,
            attempt,
            self.retry_ceiling(),
            self.is_reconnecting(),
            &mut self.rng,
        );
        self.rounds
            .requesting(attempt, self.shared.last_now + delay);
    }

    /// A handshake triggered by an unauthenticated packet (op 4, op 5): rate limited.
    pub(super) fn request_handshake(&mut self, now: Instant) {
        match self.rounds.trigger(now) {
            // Looking for a lost server: a trigger means it may be back, ask now.
            Trigger::Hurry => {
                self.reconnect_now(now);
            }
            Trigger::Deferred => {}
            Trigger::Start => self.start_round(now),
        }
    }

    /// Whether `from` may speak for our server: a known reply address, the configured host, or
    /// anyone in multicast mode.
    pub(super) fn is_our_server(&self, from: SocketAddr) -> bool {
        self.multicast || self.servers.contains_key(&from) || from.ip() == self.config.server.ip()
    }

    pub(super) fn on_setup(&mut self, now: Instant, from: SocketAddr, setup: Setup) {
        match setup {
            #[cfg(feature = "suite-psk")]
            Setup::PskNonce(p) => {
                let ClientCredentials::Psk(key) = &self.config.credentials else {
                    return self.shared.stats.drop(DropReason::Unexpected);
                };
                let floor = self.counter_floor();
                let done = self.initiator.on_psk_nonce(key, &p).map(|server_nonce| {
                    let (id, nonce) = (self.config.client_id, self.client_nonce);
                    hs::psk_established(key, id, nonce, &self.cs_key, server_nonce, floor)
                });
                self.on_nonce(now, from, done);
            }
            #[cfg(feature = "suite-ecc")]
            Setup::EccNonce(p) => {
                let ClientCredentials::Ecc { keys, server } = &self.config.credentials else {
                    return self.shared.stats.drop(DropReason::Unexpected);
                };
                let floor = self.counter_floor();
                let done = self.initiator.on_ecc_nonce(keys, server, &p).map(|nonce| {
                    let (id, cs, rng) = (self.config.client_id, &self.cs_key, &mut self.rng);
                    hs::ecc_established(keys, server, id, cs, nonce, floor, rng)
                });
                self.on_nonce(now, from, done);
            }
            #[cfg(not(feature = "suite-psk"))]
            Setup::PskNonce(_) => self.shared.stats.drop(DropReason::SuiteNotCompiled),
            #[cfg(not(feature = "suite-ecc"))]
            Setup::EccNonce(_) => self.shared.stats.drop(DropReason::SuiteNotCompiled),
            Setup::UnrecognizedClient | Setup::NewServerJoin => {
                if self.is_our_server(from) {
                    self.on_lost_session_claim(now, from);
                } else {
                    self.shared.stats.drop(DropReason::Unexpected);
                }
            }
            Setup::InvalidClientId { challenge } => {
                if !self.initiator.is_current(&challenge) || !self.is_our_server(from) {
                    return self.shared.stats.drop(DropReason::BadHandshake);
                }
                self.on_rejected(from);
            }
            Setup::SessionEstablished { session_id } => match self.servers.get_mut(&from) {
                Some(s) if ct_eq(&s.session_id, &session_id) => {
                    s.confirmed = true;
                    self.rounds.confirmed();
                    if core::mem::take(&mut self.rounds.refused_unconfirmed) {
                        // The server dropped what went before its op 7 (§5.1).
                        self.outbox.retry_all_now(now);
                    }
                    self.reconnect_done();
                    // A server answering from a second port: what waited for op 7 goes now.
                    if self.is_connected() {
                        self.release_unreliable();
                    }
                }
                _ => self.shared.stats.drop(DropReason::Unexpected),
            },
            _ => self.shared.stats.drop(DropReason::Unexpected),
        }
    }

    /// A server's nonce packet was checked: answer a good one with our client-info and take
    /// the session; count a bad one (it may say our credentials are wrong).
    pub(super) fn on_nonce(
        &mut self,
        now: Instant,
        from: SocketAddr,
        done: Result<hs::Established, HandshakeError>,
    ) {
        match done {
            Ok(done) => {
                if self.nonce_disproves_claim(now) {
                    // The server answered under our session since its "op 4": the round was
                    // not needed, and our client-info would only replace a live session.
                    return;
                }
                let packet = done.client_info.clone();
                self.shared
                    .tx
                    .push_back(Outgoing::Setup { to: from, packet });
                self.on_established(now, from, done.rx, done.session_id, done.client_info);
            }
            Err(e) => {
                self.shared.stats.drop(DropReason::BadHandshake);
                self.on_bad_reply(from, e);
            }
        }
    }

    /// Some session was never confirmed: our client-info or the server's op 7 was lost, or the
    /// server died mid-handshake.
    pub(super) fn on_unconfirmed(&mut self, now: Instant) {
        if self.multicast {
            // One silent member must not make the whole group re-handshake forever: forget it.
            // If it is alive, our next packet draws an op 4 and a new round.
            let silent: Vec<SocketAddr> = self
                .servers
                .iter()
                .filter(|(_, s)| !s.confirmed)
                .map(|(a, _)| *a)
                .collect();
            for addr in silent {
                self.servers.remove(&addr);
                self.shared.events.push_back(ClientEvent::Disconnected {
                    addr,
                    reason: CloseReason::Unconfirmed,
                });
                self.subs_on_lost(now, addr);
            }
        } else if self.servers.values().any(|s| !s.confirmed) {
            let resend_wait = self.rtt.backoff(1);
            match self.rounds.unconfirmed(now, resend_wait) {
                Some(Unconfirmed::ResendClientInfo) => {
                    let again: Vec<(SocketAddr, Setup)> = self
                        .servers
                        .iter()
                        .filter(|(_, s)| !s.confirmed)
                        .filter_map(|(a, s)| s.client_info.clone().map(|p| (*a, p)))
                        .collect();
                    for (to, packet) in again {
                        self.shared.tx.push_back(Outgoing::Setup { to, packet });
                    }
                }
                Some(Unconfirmed::NewRound) => self.request_handshake(now),
                None => {}
            }
        }
    }

    /// A server does not know our id. With no session at all, queued work that never left
    /// fails now; retries stop until the application sends again.
    pub(super) fn on_rejected(&mut self, from: SocketAddr) {
        self.shared.events.push_back(ClientEvent::HandshakeFailed {
            addr: from,
            reason: HandshakeError::UnknownClient,
        });
        if self.servers.is_empty() {
            self.rounds.connecting = Connecting::Rejected;
            for e in self.outbox.drain_unsent() {
                self.fail(e, FailReason::Rejected);
            }
            self.waiting_unreliable.clear();
        }
    }

    /// The floor announced in client-info: just below the oldest unanswered counter, so a
    /// fresh server session accepts every exchange still awaiting an answer, and below every
    /// counter not yet used.
    pub(super) fn counter_floor(&self) -> Counter {
        let oldest = self
            .outbox
            .oldest_counter()
            .map_or(self.next_counter, |c| c.0);
        Counter(oldest.min(self.next_counter) - 1)
    }

    pub(super) fn on_established(
        &mut self,
        now: Instant,
        from: SocketAddr,
        rx: SecretBoxKey,
        session_id: [u8; 16],
        client_info: Setup,
    ) {
        let suite = match self.config.credentials {
            ClientCredentials::Psk(_) => ReferenceSuite::Psk,
            _ => ReferenceSuite::Ecc,
        };
        self.shared.log_secret(|| SessionSecret::Reference {
            suite,
            to_server: *self.cs_key.danger_as_bytes(),
            to_client: *rx.danger_as_bytes(),
        });
        self.make_room_for(from);
        let replaced = self.handoff_generation(from);
        let old = self.servers.remove(&from);
        if old.as_ref().is_some_and(|o| !o.up) {
            // The server we reported down answered again (our reconnection found it).
            self.shared
                .events
                .push_back(ClientEvent::PeerUp { addr: from });
        }
        // The server's counters start fresh under a fresh S>C key.
        let session = Session::replacing(
            RxKey::Reference(rx),
            Counter(0),
            now,
            old.map(|o| o.session),
        );
        let server = RemoteServer::new(session, session_id, false, None, Some(client_info));
        self.servers.insert(from, server);
        self.handoff_on_session(from, replaced);
        self.after_established(now, from, true);
    }

    /// Keeps the session table within `max_servers` before a session with `from` is added:
    /// the least recently heard server makes way.
    pub(super) fn make_room_for(&mut self, from: SocketAddr) {
        if !self.servers.contains_key(&from) && self.servers.len() >= self.config.max_servers {
            if let Some(addr) = oldest_by(&self.servers, |s| s.last_heard) {
                self.servers.remove(&addr);
                self.subs_on_lost(self.shared.last_now, addr);
            }
        }
    }

    /// What follows any completed handshake: the round closes, queued work goes out. `fresh`
    /// is false for a suite 3 rekey of a live session, which the application need not hear of.
    pub(super) fn after_established(&mut self, now: Instant, from: SocketAddr, fresh: bool) {
        if self.multicast {
            self.rounds.close_after(now, self.config.round_grace);
        } else {
            // Close the round: an answer to a replayed old request now carries a stale
            // challenge and is refused, instead of starting a handshake nobody asked for.
            self.initiator.new_round(&mut self.rng);
        }
        self.shared.stats.handshakes += 1;
        self.auth_reset();
        if self.servers.get(&from).is_some_and(|s| s.confirmed) {
            // Suite 3: the response authenticated the server, the client is back.
            self.reconnect_done();
        }
        // Every new session gets a whole window for its op 7: a deadline left by an earlier
        // exchange may be about to pass, and would drop this one unheard (in multicast mode).
        self.rounds.established(now + self.rtt.backoff(2));
        let early = self.noise.live_mut().and_then(|n| n.early_sent.take());
        if fresh {
            self.shared
                .events
                .push_back(ClientEvent::Connected { addr: from });
            // Recovery: do not wait out backed-off timers for what the old session swallowed;
            // except an exchange the initiation carried as 0-RTT data, which the server has.
            match early {
                Some(early) => self
                    .outbox
                    .retry_now_where(now, |e| e.counter != Some(early)),
                None => self.outbox.retry_all_now(now),
            }
            self.subs_on_session(now, from);
            self.registers_on_session(now, from);
        }
        self.time.start_periodic(now, self.config.time_sync);
        // A multicast suite 3 client can send to the group only once a server holds its key.
        if self.is_connected() && self.session_ready() {
            self.release_unreliable();
        }
    }

    /// Suite 3 multicast: a server acknowledged our first group key, so group sends start.
    pub(super) fn on_group_ready(&mut self, now: Instant) {
        self.release_unreliable();
        self.time.start_periodic(now, self.config.time_sync);
    }

    /// Whether session packets may go to the configured server address. A reference server
    /// answers the handshake from a second (reply) port but reads session packets on its
    /// listening port, where one that overtakes our client-info (sent to the reply port) is
    /// answered op 4 and waits for a retransmission. So with a unicast server whose
    /// reply address differs from the configured one, session packets wait for op 7; after
    /// the confirmation rounds give up (§5.1), they go anyway. Our server answers from the
    /// address it was sent to, so nothing waits.
    pub(super) fn session_ready(&self) -> bool {
        self.multicast
            || self.rounds.gave_up_confirming()
            || self
                .servers
                .iter()
                .any(|(a, s)| s.confirmed || *a == self.config.server)
    }
}
