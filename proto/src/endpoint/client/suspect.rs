//! Unauthenticated claims that a server lost our session, and when to believe them.
//!
//! Op 4 ("unrecognized client") and op 5 ("new server joined") carry no proof: anyone who can
//! spoof the server's address can send them. (Suite 3's type 5, "unknown index", names the
//! index our packets carry, which only an on-path attacker sees; it is believed at once.) A server
//! that really lost our session (it rebooted) also stops acknowledging us, so a claim about a
//! server we have a session with is believed only if that server then stays silent. Suites 1
//! and 2 check the claim *while* they repair it (`docs/PROTOCOL.md` §5.1, claims):
//!
//! 1. The claim opens a *suspicion*, unless one is open or one was disproved less than
//!    `min_round_interval` ago. A keepalive goes out first as a probe (suite 3: only if
//!    nothing is in flight to draw an answer).
//! 2. Suites 1 and 2 in unicast mode start a handshake round at once if the round spacing
//!    allows (otherwise step 4 decides), in parallel with the old session, which stays in use: the server keeps a re-handshaking client's session (§6.5) and we keep the
//!    old key as a fallback, so a round nobody needed costs datagrams, never a message.
//! 3. When the server's nonce (op 2/11) comes back, the claim is judged: if something
//!    authenticated came from the server since the claim (the probe's ACK, sent before the
//!    nonce), the claim was false, the nonce is dropped and the round abandoned before our
//!    client-info, so the live session is untouched. Otherwise the claim is believed and the
//!    round completes: a rebooted server is back within three round trips of our first packet
//!    to it, not two RTOs later.
//! 4. Two RTOs after the claim it is checked anyway (the nonce may be lost): heard means
//!    false (an unanswered round it started is abandoned), silent means true (suite 3 and
//!    multicast mode, which start no parallel round, handshake now).
//!
//! So a spoofer who sends these packets continuously forces no completed handshake while the
//! server answers; it costs at most a probe (a keepalive and its ACK) and an op 1 and its
//! nonce per `min_round_interval`. In unicast mode a claim from any port of the server's host
//! concerns our one server. A claim when we have no session (our first server) or from a
//! group member we have none with starts a round as before.
//!
//! A claim about a session still *unconfirmed* (suites 1 and 2: no op 7 yet) is the normal
//! sign that our client-info was lost, so the server dropped what we sent under it: the
//! client-info is resent at once (at most once per RTO, so a spoofer gets one datagram per
//! RTO out of us, no more), and once op 7 confirms the session everything in flight is resent
//! without waiting out its timer (`docs/PROTOCOL.md` §5.1). Waiting for the confirmation
//! deadline instead cost a second or more per lost client-info under loss.

use core::net::SocketAddr;

use super::Client;
use crate::handshake::noise_initiator::NoiseSlot;
use crate::handshake::rounds::Connecting;
use crate::time::Instant;

/// A claim about one server, open until `check_at`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Suspicion {
    server: SocketAddr,
    since: Instant,
    check_at: Instant,
    /// Whether this claim opened the round now running (suites 1 and 2), which is abandoned if
    /// the claim proves false.
    opened_round: bool,
}

impl Client {
    /// Op 4 or op 5 from `from`, which may speak for our server.
    pub(super) fn on_lost_session_claim(&mut self, now: Instant, from: SocketAddr) {
        if self.on_claim_unconfirmed(now, from) {
            return;
        }
        // Unicast: a claim from any port of our server's host is about our one server (the
        // reference answers from a second port). Multicast: about the member that sent it.
        let server = if self.servers.contains_key(&from) {
            Some(from)
        } else if self.multicast {
            None
        } else {
            self.servers.keys().next().copied()
        };
        let Some(server) = server else {
            return self.request_handshake(now);
        };
        if self.suspicion.is_some() || now < self.claims_ignored_until {
            self.shared.stats.claims_disbelieved += 1;
            return;
        }
        // Unicast only: in a group, one member's claim must not make us handshake with all.
        let parallel = self.noise.live().is_none() && !self.multicast;
        // With a parallel round the probe always goes, and before op 1, so that a live
        // server's ACK of it arrives before its nonce and disproves the claim in time (what is
        // in flight may have been sent long ago and draw no answer soon).
        if self.outbox.is_empty() || parallel {
            self.send_keepalive(now);
            if parallel {
                self.pump(now);
            }
        }
        // Only a round that may start now: one deferred by the rate limit would run later
        // unjudged; that case waits for the check below, as suite 3 does.
        let opened_round =
            parallel && self.rounds.may_start() && now >= self.rounds.next_allowed && {
                let before = self.rounds.connecting;
                self.request_handshake(now);
                before != self.rounds.connecting
            };
        self.suspicion = Some(Suspicion {
            server,
            since: now,
            check_at: now + self.rtt.backoff(1),
            opened_round,
        });
    }

    /// Whether a server nonce (op 2/11) arriving now answers a round that a claim opened and
    /// the server disproved since (it sent something authenticated after the claim): then the
    /// nonce is not answered and the round is abandoned, so a forged claim never completes a
    /// handshake. A nonce for a claim not disproved closes the suspicion: it was true.
    pub(super) fn nonce_disproves_claim(&mut self, now: Instant) -> bool {
        let Some(s) = self.suspicion.filter(|s| s.opened_round) else {
            return false;
        };
        self.suspicion = None;
        if !self.heard_since(&s) {
            return false;
        }
        self.claim_disproved(now, true);
        true
    }

    /// Whether the server of suspicion `s` sent anything authenticated since the claim.
    fn heard_since(&self, s: &Suspicion) -> bool {
        self.servers
            .get(&s.server)
            .is_some_and(|r| r.last_heard >= s.since)
    }

    /// The claim was false: ignore claims for a while, and drop the round it opened (its
    /// nonce, if one comes, carries a stale challenge and is refused).
    fn claim_disproved(&mut self, now: Instant, abandon_round: bool) {
        self.shared.stats.claims_disbelieved += 1;
        self.claims_ignored_until = now + self.config.min_round_interval;
        if abandon_round && matches!(self.rounds.connecting, Connecting::Requesting { .. }) {
            self.rounds.connecting = Connecting::Idle;
            self.initiator.new_round(&mut self.rng);
        }
    }

    /// A claim about our unicast server's unconfirmed session: resend the client-info (rate
    /// limited) and remember that what we sent was dropped. True if the claim was that.
    fn on_claim_unconfirmed(&mut self, now: Instant, from: SocketAddr) -> bool {
        if self.multicast {
            return false;
        }
        let Some((to, info)) = self
            .servers
            .iter()
            .find(|(a, s)| (**a == from || a.ip() == from.ip()) && !s.confirmed)
            .and_then(|(a, s)| s.client_info.clone().map(|p| (*a, p)))
        else {
            return false;
        };
        self.rounds.refused_unconfirmed = true;
        if now >= self.rounds.info_resend_allowed {
            self.rounds.info_resend_allowed = now + self.rtt.rto();
            self.shared
                .tx
                .push_back(super::super::Outgoing::Setup { to, packet: info });
        }
        true
    }

    /// When the open suspicion is checked, if any.
    pub(super) fn suspicion_due(&self) -> Option<Instant> {
        self.suspicion.map(|s| s.check_at)
    }

    /// Checks the suspicion if it is due: handshake if the server stayed silent since.
    pub(super) fn check_suspicion(&mut self, now: Instant) {
        let Some(s) = self.suspicion.filter(|s| s.check_at <= now) else {
            return;
        };
        self.suspicion = None;
        if self.heard_since(&s) {
            self.claim_disproved(now, s.opened_round);
        } else if !s.opened_round {
            self.request_handshake(now);
        }
    }
}
