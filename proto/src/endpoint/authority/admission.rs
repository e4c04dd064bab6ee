//! Admission: the `JOIN` call (`docs/PROTOCOL.md` §15 rules 1–7, in their order), the calls
//! only members and operators may make (`FETCH`, `REVOKE`), sessions that do not join, and
//! presence (a member's session up or down).

use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::{Authority, AuthorityEvent, RevokeError, StoreOp, StoreTable};
use crate::crypto::ct_eq;
use crate::crypto::ecc::guest_id;
use crate::endpoint::RpcRequest;
use crate::features::authority::{MemberId, RosterEntry};
use crate::id::{ClientId, PeerId};
use crate::time::{Duration, Instant};
use crate::wire::authority::{
    enrolment_proof, JoinAnswer, JoinRefusal, JoinRequest, Proof, FETCH, JOIN, REVOKE,
};
use crate::wire::RpcStatus;

/// How a member was admitted (the byte after its entry in its stored record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum AdmittedBy {
    /// Its key is listed in the policy.
    Listed = 0,
    /// It proved an enrolment secret.
    Enrolment = 1,
}

impl AdmittedBy {
    pub(super) fn from_byte(b: u8) -> Option<AdmittedBy> {
        match b {
            0 => Some(AdmittedBy::Listed),
            1 => Some(AdmittedBy::Enrolment),
            _ => None,
        }
    }
}

/// An admitted member as the authority holds it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Member {
    pub(super) entry: RosterEntry,
    pub(super) by: AdmittedBy,
}

/// What the authority knows of one session of its server.
#[derive(Clone, Debug)]
pub(super) struct Session {
    /// `BLAKE2b-256` of the static key that completed the handshake.
    pub(super) key_hash: Option<[u8; 32]>,
    /// The member it is, once joined (or at once, for a member's key).
    pub(super) member: Option<MemberId>,
    /// Whether its key is an operator's.
    pub(super) operator: bool,
    /// When it came up: it must join within `join_timeout` of this.
    pub(super) since: Instant,
    /// Malformed `JOIN` calls so far.
    pub(super) malformed: u32,
    /// Whether it subscribed to the roster.
    pub(super) subscribed: bool,
}

impl Session {
    /// Neither joined nor an operator: it may only call `JOIN`, and not for long.
    pub(super) fn pending(&self) -> bool {
        self.member.is_none() && !self.operator
    }

    /// May read the roster.
    pub(super) fn reader(&self) -> bool {
        !self.pending()
    }
}

/// The member id a key hash names: a member id is the first 16 bytes of that hash.
fn id_of_hash(hash: &[u8; 32]) -> MemberId {
    let mut id = [0; 16];
    id.copy_from_slice(&hash[..16]);
    MemberId(ClientId(id))
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl Authority {
    pub(super) fn on_connected(&mut self, now: Instant, addr: SocketAddr, peer: PeerId) {
        let key_hash = match peer {
            PeerId::Guest(h) => Some(h),
            // Not configured, so not expected; such a session can only time out.
            _ => None,
        };
        let operator = key_hash.is_some_and(|h| self.is_operator(&h));
        // A member's key is its credential: its session is the member's at once.
        let member = key_hash.map(|h| id_of_hash(&h)).filter(|id| {
            self.members
                .get(id)
                .is_some_and(|m| Some(guest_id(&m.entry.public)) == key_hash)
        });
        self.sessions.insert(
            addr,
            Session {
                key_hash,
                member,
                operator,
                since: now,
                malformed: 0,
                subscribed: false,
            },
        );
        if let Some(id) = member {
            self.mark_up(now, id, addr);
        }
        self.bound_pending(now);
    }

    /// At most `max_pending_joins` sessions that have not joined: the oldest goes first.
    fn bound_pending(&mut self, now: Instant) {
        loop {
            let pending: Vec<(Instant, SocketAddr)> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.pending())
                .map(|(a, s)| (s.since, *a))
                .collect();
            if pending.len() <= self.limits.max_pending_joins {
                return;
            }
            let Some(&(_, oldest)) = pending.iter().min() else {
                return;
            };
            self.evict(now, oldest);
        }
    }

    /// Disconnects a session that did not join in time or sent too many malformed calls.
    fn evict(&mut self, now: Instant, addr: SocketAddr) {
        self.sessions.remove(&addr);
        self.server.disconnect(now, addr);
        self.stats.evicted += 1;
    }

    /// Disconnects sessions that have not joined within `join_timeout`.
    pub(super) fn expire_pending(&mut self, now: Instant) {
        let late: Vec<SocketAddr> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.pending() && s.since + self.limits.join_timeout <= now)
            .map(|(a, _)| *a)
            .collect();
        for addr in late {
            self.evict(now, addr);
        }
    }

    pub(super) fn on_disconnected(&mut self, now: Instant, addr: SocketAddr) {
        if let Some(s) = self.sessions.remove(&addr) {
            if let Some(id) = s.member {
                self.mark_down(now, id, addr);
            }
        }
    }

    /// The server's `PeerUp`/`PeerDown` for a session.
    pub(super) fn set_up(&mut self, now: Instant, addr: SocketAddr, up: bool) {
        let Some(id) = self.sessions.get(&addr).and_then(|s| s.member) else {
            return;
        };
        if up {
            self.mark_up(now, id, addr);
        } else {
            self.mark_down(now, id, addr);
        }
    }

    fn mark_up(&mut self, now: Instant, id: MemberId, addr: SocketAddr) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        if m.entry.up && m.entry.addr == Some(addr) {
            return;
        }
        m.entry.up = true;
        m.entry.addr = Some(addr);
        self.events.push_back(AuthorityEvent::Up { id, addr });
        self.changed(now);
    }

    /// Only the session at the member's current address can take it down: an old session
    /// of a member that rebooted at another port ends without hiding the new one.
    fn mark_down(&mut self, now: Instant, id: MemberId, addr: SocketAddr) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        if !m.entry.up || m.entry.addr != Some(addr) {
            return;
        }
        m.entry.up = false;
        self.events.push_back(AuthorityEvent::Down { id });
        self.changed(now);
    }

    fn is_operator(&self, hash: &[u8; 32]) -> bool {
        self.policy
            .operators
            .iter()
            .any(|k| ct_eq(&guest_id(k), hash))
    }

    pub(super) fn on_call(&mut self, now: Instant, call: RpcRequest) {
        let Some(session) = self.sessions.get(&call.from).cloned() else {
            // A call from a session we never saw come up cannot be answered usefully.
            let _ = self
                .server
                .respond(now, call.call, RpcStatus::BAD_INPUT, &[]);
            return;
        };
        let (status, answer) = match call.function {
            JOIN => {
                let answer = self.join(now, call.from, &session, &call.args);
                let mut out = Vec::new();
                answer.encode(&mut out);
                (RpcStatus::OK, out)
            }
            _ if session.pending() => (RpcStatus::BAD_INPUT, Vec::new()),
            FETCH => {
                let mut out = Vec::new();
                self.roster.snapshot(&self.key).encode(&mut out);
                (RpcStatus::OK, out)
            }
            REVOKE if !session.operator => (RpcStatus::OK, alloc::vec![2]),
            REVOKE => match <[u8; 16]>::try_from(&call.args[..]) {
                Err(_) => (RpcStatus::BAD_INPUT, Vec::new()),
                Ok(id) => match self.revoke_member(now, MemberId(ClientId(id))) {
                    Ok(()) => (RpcStatus::OK, alloc::vec![0]),
                    Err(RevokeError::UnknownMember) => (RpcStatus::OK, alloc::vec![1]),
                },
            },
            _ => (RpcStatus::NONEXISTENT_FUNCTION, Vec::new()),
        };
        let _ = self.server.respond(now, call.call, status, &answer);
        if self
            .sessions
            .get(&call.from)
            .is_some_and(|s| s.malformed >= self.limits.max_malformed)
        {
            self.evict(now, call.from);
        }
    }

    /// The `JOIN` rules of `docs/PROTOCOL.md` §15, in their order.
    fn join(
        &mut self,
        now: Instant,
        from: SocketAddr,
        session: &Session,
        args: &[u8],
    ) -> JoinAnswer {
        self.stats.joins += 1;
        let Some(hash) = session.key_hash else {
            return self.refuse(from, MemberId(ClientId([0; 16])), JoinRefusal::Malformed, 0);
        };
        // 1. The request must parse and name the key that did the handshake: a proof is
        //    bound to the key that holds the session.
        let request = match JoinRequest::parse(args) {
            Ok(r) if ct_eq(&guest_id(&r.public), &hash) => r,
            _ => {
                if let Some(s) = self.sessions.get_mut(&from) {
                    s.malformed += 1;
                }
                return self.refuse(from, id_of_hash(&hash), JoinRefusal::Malformed, 0);
            }
        };
        let public = request.public;
        let key = public.to_bytes();
        let id = MemberId::of(&public);
        // 2. Revoked for good.
        if self.revoked.contains(&key) {
            return self.refuse(from, id, JoinRefusal::Revoked, 0);
        }
        // 3. Already a member: its key is its credential; same id, role and name.
        if let Some(m) = self.members.get(&id) {
            let role = m.entry.role.clone();
            return self.admit(now, from, id, role, true);
        }
        // 4. Listed in the policy.
        let listed = self
            .policy
            .peers
            .iter()
            .find(|p| p.public == public)
            .map(|p| (p.role.clone(), p.name.clone()));
        let (role, name, by) = match listed {
            Some((role, name)) => (role, name, AdmittedBy::Listed),
            None => {
                // 5. Locked out: the proof is not even checked.
                if let Some(left) = self.lockouts.locked(now, &key) {
                    return self.refuse(from, id, JoinRefusal::LockedOut, millis(left));
                }
                // 6. A proof of an enrolment secret.
                let Proof::Enrolment(proof) = request.proof else {
                    return self.refuse(from, id, JoinRefusal::NotInPolicy, 0);
                };
                if let Some(wait) = self.lockouts.budget(now) {
                    return self.refuse(from, id, JoinRefusal::Busy, millis(wait));
                }
                let Some(role) = self.check_proof(&public, &proof) else {
                    if let Some(lock) = self.lockouts.fail(now, &key) {
                        self.stats.lockouts += 1;
                        self.events
                            .push_back(AuthorityEvent::LockedOut { id, duration: lock });
                    }
                    self.store_lockout(now, key);
                    return self.refuse(from, id, JoinRefusal::BadProof, 0);
                };
                let role = role.unwrap_or_else(|| String::from(request.role));
                (role, String::from(request.name), AdmittedBy::Enrolment)
            }
        };
        // 7. Room in the roster.
        if self.members.len() >= self.policy.max_peers {
            return self.refuse(from, id, JoinRefusal::Full, 0);
        }
        self.members.insert(
            id,
            Member {
                entry: RosterEntry {
                    id,
                    public,
                    role: role.clone(),
                    name,
                    addr: Some(from),
                    up: true,
                },
                by,
            },
        );
        self.admit(now, from, id, role, false)
    }

    /// The role of the enrolment whose secret `proof` proves (`Some(None)`: the joiner's own
    /// role), comparing against every secret in constant time so that timing says nothing of
    /// which secret, if any, came close.
    fn check_proof(
        &self,
        joiner: &crate::crypto::ecc::PublicKey,
        proof: &[u8; 32],
    ) -> Option<Option<String>> {
        let mut found = None;
        for e in &self.policy.enrolments {
            let ok = ct_eq(&enrolment_proof(&e.key, &self.public, joiner), proof);
            if ok && found.is_none() {
                found = Some(e.role.clone());
            }
        }
        found
    }

    fn admit(
        &mut self,
        now: Instant,
        from: SocketAddr,
        id: MemberId,
        role: String,
        rejoin: bool,
    ) -> JoinAnswer {
        if let Some(m) = self.members.get(&id) {
            if self.lockouts.succeed(&m.entry.public.to_bytes()) {
                self.store_lockout(now, m.entry.public.to_bytes());
            }
        }
        let subscribed = match self.sessions.get_mut(&from) {
            Some(s) => {
                let first = s.member.is_none() && !s.operator;
                s.member = Some(id);
                s.subscribed && first
            }
            None => false,
        };
        self.mark_up(now, id, from);
        // A new entry, or a rejoin: either is a new version.
        self.changed(now);
        self.stats.admitted += 1;
        self.events.push_back(AuthorityEvent::Admitted {
            id,
            role: role.clone(),
            addr: from,
            rejoin,
        });
        if subscribed {
            // It subscribed before it joined: now it may read.
            self.send_snapshot(now, from);
        }
        JoinAnswer::Admitted {
            id,
            signing: self.signing,
            epoch: self.roster.epoch,
            version: self.roster.version,
            role,
        }
    }

    fn refuse(
        &mut self,
        from: SocketAddr,
        id: MemberId,
        reason: JoinRefusal,
        retry_after_ms: u32,
    ) -> JoinAnswer {
        *self.stats.refused.entry(reason).or_insert(0) += 1;
        self.events.push_back(AuthorityEvent::Refused {
            id,
            addr: from,
            reason,
        });
        JoinAnswer::Refused {
            reason,
            retry_after_ms,
        }
    }

    pub(super) fn on_subscribed(&mut self, now: Instant, addr: SocketAddr) {
        let Some(s) = self.sessions.get_mut(&addr) else {
            return;
        };
        s.subscribed = true;
        if s.reader() {
            self.send_snapshot(now, addr);
        }
    }

    pub(super) fn revoke_member(&mut self, now: Instant, id: MemberId) -> Result<(), RevokeError> {
        let m = self.members.remove(&id).ok_or(RevokeError::UnknownMember)?;
        let key = m.entry.public.to_bytes();
        self.revoked.insert(key);
        self.store.pending.push(StoreOp::Put {
            table: StoreTable::Revoked,
            key: key.to_vec(),
            value: Vec::new(),
        });
        let hash = guest_id(&m.entry.public);
        let sessions: Vec<SocketAddr> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.member == Some(id) || s.key_hash == Some(hash))
            .map(|(a, _)| *a)
            .collect();
        for addr in sessions {
            self.sessions.remove(&addr);
            self.server.disconnect(now, addr);
        }
        self.stats.revoked += 1;
        self.events.push_back(AuthorityEvent::Revoked { id });
        self.changed(now);
        self.publish.immediate = true;
        self.publish_due(now);
        Ok(())
    }
}
