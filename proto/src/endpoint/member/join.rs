//! The member's side toward the authority: the `JOIN` call on every new session (so a
//! rebooted member, or one whose authority came back, is admitted again with the same id),
//! its answer and refusals, the subscription to the roster, and `FETCH`.

use alloc::vec::Vec;

use super::{JoinCredential, Member, MemberEvent, MemberState};
use crate::endpoint::ClientEvent;
use crate::time::{Duration, Instant};
use crate::wire::authority::{
    enrolment_proof, JoinAnswer, JoinRefusal, JoinRequest, Proof, FETCH, JOIN, ROSTER_TARGET,
};

/// Longest wait between join attempts.
const MAX_JOIN_BACKOFF: Duration = Duration::from_secs(60);

impl Member {
    /// Calls `JOIN` on the authority session, unless a call is pending or we were refused
    /// for good.
    pub(super) fn join(&mut self, now: Instant) {
        if self.closed || self.join_call.is_some() || matches!(self.state, MemberState::Refused(_))
        {
            return;
        }
        let proof = match &self.config.credential {
            JoinCredential::Listed => Proof::Listed,
            JoinCredential::Enrolment(key) => Proof::Enrolment(enrolment_proof(
                key,
                &self.config.authority_public,
                self.config.keys.public(),
            )),
        };
        let request = JoinRequest {
            public: *self.config.keys.public(),
            proof,
            role: &self.config.role,
            name: &self.config.name,
        };
        let mut payload = Vec::new();
        request.encode(&mut payload);
        self.next_join = None;
        match self.authority.call(now, JOIN, &payload, None) {
            Ok(call) => self.join_call = Some(call),
            Err(_) => self.retry_join_later(now, None),
        }
    }

    /// Calls `JOIN` again after `after`, or after the backoff, which doubles up to 60 s.
    fn retry_join_later(&mut self, now: Instant, after: Option<Duration>) {
        let wait = after.unwrap_or(self.join_backoff);
        self.join_backoff = (self.join_backoff + self.join_backoff).min(MAX_JOIN_BACKOFF);
        self.next_join = Some(now + wait);
    }

    /// Asks the authority for a whole roster (after a gap or an inconsistent delta).
    pub(super) fn fetch(&mut self, now: Instant) {
        if self.fetch_call.is_some() || self.closed {
            return;
        }
        if let Ok(call) = self.authority.call(now, FETCH, &[], None) {
            self.stats.fetches += 1;
            self.fetch_call = Some(call);
        }
    }

    /// The authority client's events.
    pub(super) fn on_authority_event(&mut self, now: Instant, e: ClientEvent) {
        match e {
            ClientEvent::Connected { .. } => {
                if !self.authority_up {
                    self.authority_up = true;
                    self.events.push_back(MemberEvent::AuthorityUp);
                }
                // A new session: the authority may have restarted, or we rebooted.
                self.join(now);
            }
            ClientEvent::PeerUp { .. } if !self.authority_up => {
                self.authority_up = true;
                self.events.push_back(MemberEvent::AuthorityUp);
            }
            ClientEvent::PeerDown { .. } | ClientEvent::Disconnected { .. }
                if self.authority_up =>
            {
                self.authority_up = false;
                self.events.push_back(MemberEvent::AuthorityDown);
            }
            ClientEvent::Answered { call, data, .. } if Some(call) == self.join_call => {
                self.join_call = None;
                match JoinAnswer::parse(&data) {
                    Ok(answer) => self.on_join_answer(now, answer),
                    Err(_) => self.retry_join_later(now, None),
                }
            }
            ClientEvent::Answered { call, data, .. } if Some(call) == self.fetch_call => {
                self.fetch_call = None;
                self.on_snapshot(now, &data);
            }
            ClientEvent::RemoteError { call, .. }
            | ClientEvent::CallFailed { call, .. }
            | ClientEvent::CallTimedOut { call } => {
                if Some(call) == self.join_call {
                    self.join_call = None;
                    self.retry_join_later(now, None);
                } else if Some(call) == self.fetch_call {
                    self.fetch_call = None;
                }
            }
            ClientEvent::Message(m) if m.target() == ROSTER_TARGET => {
                self.on_publication(now, m.name(), m.payload());
            }
            _ => {}
        }
    }

    fn on_join_answer(&mut self, now: Instant, answer: JoinAnswer) {
        match answer {
            JoinAnswer::Admitted {
                id,
                signing,
                epoch,
                version,
                role,
            } => {
                self.join_backoff = self.config.limits.join_retry;
                self.signing = Some(signing);
                self.state = MemberState::Joined {
                    id,
                    role: role.clone(),
                };
                self.events
                    .push_back(MemberEvent::Joined { id, role, version });
                if !self.subscribed {
                    // The authority answers a member's subscription with a snapshot.
                    self.subscribed = true;
                    let _ = self.authority.subscribe(now, ROSTER_TARGET);
                } else if self.roster.epoch != epoch || self.roster.version < version {
                    // A rejoin: our subscription came back with the session, possibly before
                    // the authority knew us again, so ask for the roster.
                    self.fetch(now);
                }
            }
            JoinAnswer::Refused {
                reason,
                retry_after_ms,
            } => {
                let retry = matches!(reason, JoinRefusal::LockedOut | JoinRefusal::Busy);
                let retry_after = retry.then(|| {
                    Duration::from_millis(u64::from(retry_after_ms))
                        .max(self.config.limits.join_retry)
                });
                self.events.push_back(MemberEvent::Refused {
                    reason,
                    retry_after,
                });
                if let Some(after) = retry_after {
                    self.retry_join_later(now, Some(after));
                } else {
                    self.state = MemberState::Refused(reason);
                    self.next_join = None;
                    // Nothing more to ask: without this the client would keep a session the
                    // authority disconnects for not joining, and open it again, forever.
                    self.authority.close(now);
                }
            }
        }
    }
}
