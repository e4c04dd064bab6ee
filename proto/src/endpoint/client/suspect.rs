//! Unauthenticated claims that a server lost our session, and when to believe them.
//!
//! Op 4 ("unrecognized client") and op 5 ("new server joined") carry no proof: anyone who can
//! spoof the server's address can send them. (Suite 3's type 5, "unknown index", names the
//! index our packets carry, which only an on-path attacker sees; it is believed at once.) A server
//! that really lost our session (it rebooted) also stops acknowledging us, so a claim about a
//! server we have a session with is believed only if that server then stays silent:
//!
//! 1. The claim opens a *suspicion*, unless one is open or one was disproved less than
//!    `min_round_interval` ago. If nothing is in flight to draw an answer, a keepalive goes
//!    out as a probe.
//! 2. Two RTOs later the suspicion is checked: if nothing authenticated came from the server
//!    since the claim, the claim was true, and a handshake round starts (rate limited as
//!    before). Otherwise it was false, and claims are ignored for `min_round_interval`.
//!
//! So a spoofer who sends these packets continuously forces no handshake at all while the
//! server answers, and costs at most one probe (a keepalive and its ACK) per
//! `min_round_interval` when the session is idle. A real reboot is believed two RTOs after the
//! server's first op 4. In unicast mode a claim from any port of the server's host concerns
//! our one server. A claim when we have no session (our first server) or from a group member
//! we have none with starts a round as before.
//!
//! A claim about a session still *unconfirmed* (suites 1 and 2: no op 7 yet) is the normal
//! sign that our client-info was lost, so the server dropped what we sent under it: the
//! client-info is resent at once (at most once per RTO, so a spoofer gets one datagram per
//! RTO out of us, no more), and once op 7 confirms the session everything in flight is resent
//! without waiting out its timer (`docs/PROTOCOL.md` §5.1). Waiting for the confirmation
//! deadline instead cost a second or more per lost client-info under loss.

use core::net::SocketAddr;

use super::Client;
use crate::time::Instant;

/// A claim about one server, open until `check_at`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Suspicion {
    server: SocketAddr,
    since: Instant,
    check_at: Instant,
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
        if self.outbox.is_empty() {
            self.send_keepalive(now);
        }
        self.suspicion = Some(Suspicion {
            server,
            since: now,
            check_at: now + self.rtt.backoff(1),
        });
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
        let heard = self
            .servers
            .get(&s.server)
            .is_some_and(|r| r.last_heard >= s.since);
        if heard {
            self.shared.stats.claims_disbelieved += 1;
            self.claims_ignored_until = now + self.config.min_round_interval;
        } else {
            self.request_handshake(now);
        }
    }
}
