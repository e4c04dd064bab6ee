//! Coming back by itself (`docs/PROTOCOL.md` §6.7): after the server quits, goes silent or
//! restarts, the client looks for it again even with nothing to send (a listener), retrying
//! with a short backoff whose ceiling is [`ClientConfig::reconnect_retry_max`], and answering a
//! server's announcement (op 5) at once.
//!
//! [`ClientConfig::reconnect_retry_max`]: super::ClientConfig::reconnect_retry_max

use crate::reliability::{InFlight, Payload};
use crate::time::{Duration, Instant};

use super::Client;
use crate::handshake::rounds::Connecting;

/// Whether the client lost its server(s) and is looking for them again.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Reconnect {
    /// Since when, if it is.
    since: Option<Instant>,
}

impl Client {
    /// Whether the client is looking for a server it lost.
    pub fn is_reconnecting(&self) -> bool {
        self.reconnect.since.is_some()
    }

    /// Contact with the server(s) may be lost: a quit, or a server down. Unless another
    /// server still answers (or the server refused us), look for them again.
    pub(super) fn on_contact_lost(&mut self, now: Instant) {
        if self.servers.values().any(|s| s.up) {
            // Another server of the group still answers.
            return;
        }
        self.start_reconnect(now);
    }

    /// Start looking for the server(s) again, unless one refused us.
    fn start_reconnect(&mut self, now: Instant) {
        if self.closed || self.rounds.connecting == Connecting::Rejected {
            return;
        }
        if self.reconnect.since.is_none() {
            self.reconnect.since = Some(now);
        }
        self.request_handshake(now);
    }

    /// An exchange ended unanswered: a keepalive that nobody acknowledged means the server is
    /// gone or no longer knows us.
    pub(super) fn reconnect_on_expired(&mut self, now: Instant, e: &InFlight) {
        let keepalive = e.internal
            && e.acked.is_empty()
            && matches!(&e.payload, Payload::Message(m)
                if m.target().is_empty() && m.name().is_empty() && m.payload().is_empty());
        if keepalive {
            // Nobody answered a whole keepalive deadline: whatever the liveness timer says,
            // the session is of no use.
            self.start_reconnect(now);
        }
    }

    /// A session came up: the client is back.
    pub(super) fn reconnect_done(&mut self) {
        self.reconnect.since = None;
    }

    /// The retry ceiling for op 1: short while reconnecting.
    pub(super) fn retry_ceiling(&self) -> Duration {
        let max = self.config.limits.handshake_retry_max;
        if self.is_reconnecting() {
            max.min(self.config.reconnect_retry_max)
        } else {
            max
        }
    }

    /// An announcement (op 5) or "unrecognized" (op 4) arrived while a round is open: while
    /// reconnecting, resend op 1 now instead of waiting out the backoff, at most once per
    /// `min_round_interval` so that spoofed triggers cannot make us flood.
    pub(super) fn reconnect_now(&mut self, now: Instant) -> bool {
        if !self.is_reconnecting() || now < self.rounds.next_allowed {
            return false;
        }
        self.rounds.next_allowed = now + self.config.min_round_interval;
        self.send_request(0);
        true
    }
}
