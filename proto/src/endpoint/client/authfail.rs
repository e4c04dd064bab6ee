//! Failures that say what failed (`docs/PROTOCOL.md` §5.5): when the server answers our
//! handshake but its replies do not authenticate under our credentials, pending work fails
//! with [`FailReason::AuthenticationFailed`] instead of waiting for its deadline.
//!
//! Rule, against spoofing: a reply counts only if it comes from the server's host (anyone, in
//! multicast mode) and, for suite 1, echoes the current challenge (which an off-path attacker
//! never sees). The failure is declared only once replies to **two different attempts** of the
//! same round (the first op 1 and a retry) have failed, with no reply that authenticated in
//! between: one spoofed packet cannot fail a legitimate client's calls, and a real server with
//! another key fails every attempt alike. Suite 3 gives the client nothing to judge: an
//! initiation sealed to the wrong key, or carrying a wrong PSK, gets no answer by design.

use core::net::SocketAddr;

use crate::handshake::HandshakeError;

use super::super::{AuthFailure, ClientEvent, FailReason};
use super::Client;
use crate::handshake::rounds::Connecting;

/// Replies to this many distinct attempts must fail before we believe them.
const FAILED_ATTEMPTS: u8 = 2;

/// Bad handshake replies seen in the current round.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct AuthFailures {
    /// The last attempt a bad reply answered, and how many distinct attempts did.
    last_attempt: Option<u32>,
    attempts: u8,
}

impl Client {
    /// A reply that should have authenticated did not: `reason` for the round's
    /// current attempt.
    pub(super) fn on_bad_reply(&mut self, from: SocketAddr, error: HandshakeError) {
        let reason = match error {
            HandshakeError::BadTag => AuthFailure::WrongPsk,
            HandshakeError::ForgedBox => AuthFailure::WrongKey,
            // Stale, replayed or someone else's: says nothing about our keys.
            _ => return,
        };
        if !self.is_our_server(from) {
            return;
        }
        let Connecting::Requesting { attempt, .. } = self.rounds.connecting else {
            return;
        };
        let a = &mut self.auth;
        if a.last_attempt != Some(attempt) {
            a.last_attempt = Some(attempt);
            a.attempts = a.attempts.saturating_add(1);
        }
        if a.attempts >= FAILED_ATTEMPTS {
            self.auth = AuthFailures::default();
            self.on_auth_failed(from, reason, error);
        }
    }

    /// A handshake reply authenticated, or a new round began: start counting afresh.
    pub(super) fn auth_reset(&mut self) {
        self.auth = AuthFailures::default();
    }

    /// The server clearly does not accept our credentials. With no session at all, work
    /// that never left fails now, and retries stop until the application sends again (as
    /// for op 6).
    fn on_auth_failed(&mut self, from: SocketAddr, reason: AuthFailure, error: HandshakeError) {
        self.shared.events.push_back(ClientEvent::HandshakeFailed {
            addr: from,
            reason: error,
        });
        if self.servers.is_empty() {
            self.rounds.connecting = Connecting::Rejected;
            for e in self.outbox.drain_unsent() {
                self.fail(e, FailReason::AuthenticationFailed(reason));
            }
            self.waiting_unreliable.clear();
        }
    }
}
