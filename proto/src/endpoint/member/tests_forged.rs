//! A member against a scripted authority: a plain suite 3 server holding the authority's key,
//! which answers `JOIN` and `FETCH` as told and sends whatever publications a test forges
//! (stale, wrongly signed, out of order), so each rule of applying the roster is pinned
//! without the real authority.

use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::crypto::ecc::KeyPair;
use crate::endpoint::{
    JoinCredential, Member, MemberConfig, MemberError, MemberEvent, MemberState, SendOptions,
    Server, ServerConfig, ServerEvent,
};
use crate::features::authority::{MemberId, Roster, RosterEntry, RosterError, SigningKey};
use crate::id::FunctionId;
use crate::time::{Duration, Instant};
use crate::wire::authority::{
    Delta, JoinAnswer, JoinRefusal, Snapshot, DELTA, FETCH, JOIN, ROSTER_TARGET, SNAPSHOT,
};
use crate::wire::{RpcStatus, MAX_DATAGRAM};

fn keys(i: u8) -> KeyPair {
    KeyPair::from_secret_bytes([i; 32])
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 1790))
}

fn entry(i: u8) -> RosterEntry {
    let public = *keys(i).public();
    RosterEntry {
        id: MemberId::of(&public),
        public,
        role: "sensor".into(),
        name: alloc::format!("m{i}"),
        addr: Some(addr(i)),
        up: true,
    }
}

const EPOCH: u64 = 0x5eed;

/// Writes the signature over everything before it, as the authority does.
fn sign(key: &SigningKey, name: u8, mut payload: Vec<u8>) -> Vec<u8> {
    let body = payload.len() - 64;
    let mut message = b"pavillion roster v1".to_vec();
    message.push(name);
    message.extend_from_slice(&payload[..body]);
    let signature = key.sign(&message);
    payload[body..].copy_from_slice(&signature);
    payload
}

fn snapshot(key: &SigningKey, epoch: u64, version: u64, members: &[u8]) -> Vec<u8> {
    let mut entries: Vec<RosterEntry> = members.iter().map(|i| entry(*i)).collect();
    // Canonical order: by id.
    entries.sort_by_key(|e| e.id);
    let mut out = Vec::new();
    Snapshot {
        epoch,
        version,
        entries,
        signature: [0; 64],
    }
    .encode(&mut out);
    sign(key, 0, out)
}

/// A delta from `base` (holding `before`) to `version` (holding `after`).
fn delta(key: &SigningKey, base: u64, version: u64, before: &[u8], after: &[u8]) -> Vec<u8> {
    let mut next = Roster {
        epoch: EPOCH,
        version,
        ..Roster::default()
    };
    for i in after {
        let e = entry(*i);
        next.entries.insert(e.id, e);
    }
    let mut out = Vec::new();
    Delta {
        epoch: EPOCH,
        base,
        version,
        upserts: after
            .iter()
            .filter(|i| !before.contains(i))
            .map(|i| entry(*i))
            .collect(),
        removals: before
            .iter()
            .filter(|i| !after.contains(i))
            .map(|i| entry(*i).id)
            .collect(),
        digest: next.digest(),
        signature: [0; 64],
    }
    .encode(&mut out);
    sign(key, 1, out)
}

/// The member (keys 2, at `addr(2)`) and the scripted authority (keys 1, at `addr(1)`).
struct Scripted {
    now: Instant,
    member: Member,
    server: Server,
    key: SigningKey,
    /// What `JOIN` is answered with.
    answer: JoinAnswer,
    /// What `FETCH` is answered with.
    fetch_answer: Vec<u8>,
    joins: u32,
    fetches: u32,
    subscribed: bool,
    events: Vec<MemberEvent>,
}

impl Scripted {
    fn new(credential: JoinCredential) -> Self {
        let auth = keys(1);
        let key = SigningKey::derive(&auth);
        let mut config = MemberConfig::new(keys(2), addr(1), *auth.public(), credential, [2; 32]);
        config.role = "sensor".into();
        let member = Member::new(config);
        let mut s = ServerConfig::new([1; 32])
            .with_keys(auth)
            .allow_guests(true);
        s.builtin_calls = false;
        let mut server = Server::new(s);
        server.register_function(JOIN, "join");
        server.register_function(FETCH, "fetch");
        let answer = JoinAnswer::Admitted {
            id: MemberId::of(keys(2).public()),
            signing: key.public(),
            epoch: EPOCH,
            version: 1,
            role: "sensor".into(),
        };
        let mut s = Scripted {
            now: Instant::from_millis(1000),
            member,
            server,
            key,
            answer,
            fetch_answer: Vec::new(),
            joins: 0,
            fetches: 0,
            subscribed: false,
            events: Vec::new(),
        };
        // Not pumped yet: a test may script the answers first.
        s.member.handle_timeout(s.now);
        s
    }

    /// Moves datagrams both ways (no latency) and plays the authority until all is quiet.
    fn pump(&mut self) {
        let now = self.now;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let mut moved = false;
            while let Some(t) = self.member.poll_transmit(now, &mut buf) {
                moved = true;
                if t.destination == addr(1) {
                    let d = buf[..t.len].to_vec();
                    self.server.handle_datagram(now, addr(2), &d);
                }
            }
            while let Some(t) = self.server.poll_transmit(now, &mut buf) {
                moved = true;
                let d = buf[..t.len].to_vec();
                self.member.handle_datagram(now, addr(1), &d);
            }
            while let Some(e) = self.server.poll_event() {
                moved = true;
                match e {
                    ServerEvent::RpcRequest(r) if r.function == JOIN => {
                        self.joins += 1;
                        let mut out = Vec::new();
                        self.answer.encode(&mut out);
                        self.server
                            .respond(now, r.call, RpcStatus::OK, &out)
                            .unwrap();
                    }
                    ServerEvent::RpcRequest(r) if r.function == FETCH => {
                        self.fetches += 1;
                        let out = self.fetch_answer.clone();
                        self.server
                            .respond(now, r.call, RpcStatus::OK, &out)
                            .unwrap();
                    }
                    ServerEvent::ClientSubscribed { target, .. } if target == ROSTER_TARGET => {
                        self.subscribed = true;
                    }
                    _ => {}
                }
            }
            while let Some(e) = self.member.poll_event() {
                self.events.push(e);
            }
            if !moved {
                break;
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.pump();
        for _ in 0..100_000 {
            let next = self
                .member
                .poll_timeout()
                .into_iter()
                .chain(self.server.poll_timeout())
                .min();
            match next {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => break,
            }
            self.member.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
        self.pump();
    }

    /// Publishes `payload` under `name` to the member, as the authority's server would.
    fn publish(&mut self, name: &str, payload: &[u8]) {
        let now = self.now;
        self.server
            .send_message(
                now,
                addr(2),
                ROSTER_TARGET,
                name,
                payload,
                SendOptions::reliable(),
            )
            .unwrap();
        self.run_for(Duration::from_millis(100));
    }

    fn joined() -> Self {
        let mut s = Scripted::new(JoinCredential::Listed);
        s.run_for(Duration::from_secs(2));
        assert!(matches!(s.member.state(), MemberState::Joined { .. }));
        assert!(s.subscribed, "a joined member subscribes to the roster");
        let v2 = snapshot(&s.key.clone(), EPOCH, 2, &[2, 3]);
        s.publish(SNAPSHOT, &v2);
        assert_eq!(s.member.roster().version, 2);
        s
    }
}

#[test]
fn joins_with_the_configured_credential_and_pins_the_signing_key() {
    let mut s = Scripted::new(JoinCredential::Listed);
    s.run_for(Duration::from_secs(2));
    assert_eq!(s.joins, 1);
    assert_eq!(s.member.signing(), Some(s.key.public()));
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, MemberEvent::AuthorityUp)));
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, MemberEvent::Joined { id, version: 1, .. } if *id == s.member.id())));
}

#[test]
fn stale_and_wrongly_signed_publications_are_ignored_and_counted() {
    let mut s = Scripted::joined();
    let key = s.key.clone();
    // Stale: an older version of the same epoch, correctly signed.
    s.publish(SNAPSHOT, &snapshot(&key, EPOCH, 1, &[2]));
    // Stale: a delta to our version again.
    s.publish(DELTA, &delta(&key, 1, 2, &[2], &[2, 3]));
    // Signed by another key.
    let other = SigningKey::derive(&keys(9));
    s.publish(SNAPSHOT, &snapshot(&other, EPOCH, 3, &[2]));
    // Signed, then altered.
    let mut altered = snapshot(&key, EPOCH, 3, &[2, 3]);
    altered[8] ^= 1;
    s.publish(SNAPSHOT, &altered);
    // A delta signed as a snapshot.
    let mut wrong_name = delta(&key, 2, 3, &[2, 3], &[2]);
    let body = wrong_name.len() - 64;
    let mut message = b"pavillion roster v1".to_vec();
    message.push(0);
    message.extend_from_slice(&wrong_name[..body]);
    let sig = key.sign(&message);
    wrong_name[body..].copy_from_slice(&sig);
    s.publish(DELTA, &wrong_name);
    // Not a publication at all.
    s.publish(SNAPSHOT, b"nonsense");
    let st = s.member.roster_stats().clone();
    assert_eq!(st.stale, 2);
    assert_eq!(st.fetches, 0);
    assert_eq!(st.bad_signature, 3);
    assert_eq!(st.malformed, 1);
    assert_eq!(st.applied, 1);
    assert_eq!(s.member.roster().version, 2);
    assert_eq!(s.member.roster().entries.len(), 2);
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, MemberEvent::RosterRejected(RosterError::BadSignature))));
}

#[test]
fn a_delta_on_our_version_applies() {
    let mut s = Scripted::joined();
    let key = s.key.clone();
    s.publish(DELTA, &delta(&key, 2, 3, &[2, 3], &[2, 3, 4]));
    assert_eq!(s.member.roster().version, 3);
    assert!(s.member.roster().entries.contains_key(&entry(4).id));
    assert_eq!(s.member.roster_stats().applied, 2);
    assert_eq!(s.fetches, 0);
}

#[test]
fn a_gap_fetches_a_snapshot() {
    let mut s = Scripted::joined();
    let key = s.key.clone();
    s.fetch_answer = snapshot(&key, EPOCH, 4, &[2, 3, 4, 5]);
    // Version 3 never arrived: 3 → 4 does not follow our 2.
    s.publish(DELTA, &delta(&key, 3, 4, &[2, 3, 4], &[2, 3, 4, 5]));
    assert_eq!(s.member.roster_stats().gaps, 1);
    assert_eq!(s.member.roster_stats().fetches, 1);
    assert_eq!(s.fetches, 1);
    assert_eq!(s.member.roster().version, 4);
    assert_eq!(s.member.roster().entries.len(), 4);
}

#[test]
fn an_inconsistent_delta_fetches_a_snapshot() {
    let mut s = Scripted::joined();
    let key = s.key.clone();
    s.fetch_answer = snapshot(&key, EPOCH, 3, &[2, 3, 4]);
    let mut d = delta(&key, 2, 3, &[2, 3], &[2, 3, 4]);
    // Another digest, then signed again: the authority signed a result we do not reach.
    let body = d.len() - 64;
    d[body - 1] ^= 1;
    let d = sign(&key, 1, d);
    s.publish(DELTA, &d);
    assert_eq!(s.member.roster_stats().inconsistent, 1);
    assert_eq!(s.fetches, 1);
    assert_eq!(s.member.roster().version, 3);
}

#[test]
fn another_epoch_replaces_the_roster_as_a_reset() {
    let mut s = Scripted::joined();
    let key = s.key.clone();
    s.publish(SNAPSHOT, &snapshot(&key, EPOCH + 1, 1, &[2]));
    assert_eq!(s.member.roster().epoch, EPOCH + 1);
    assert!(s.events.iter().any(|e| matches!(
        e,
        MemberEvent::Roster { version: 1, update } if update.reset && update.removed == vec![entry(3).id]
    )));
}

#[test]
fn a_removed_member_is_revoked_and_cut_off() {
    let mut s = Scripted::joined();
    let key = s.key.clone();
    let three = entry(3).id;
    s.member.connect(s.now, three).unwrap();
    s.publish(DELTA, &delta(&key, 2, 3, &[2, 3], &[2]));
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, MemberEvent::PeerRevoked { id } if *id == three)));
    let now = s.now;
    assert_eq!(
        s.member.call(now, three, FunctionId(7), b""),
        Err(MemberError::UnknownMember)
    );
}

#[test]
fn a_lockout_is_waited_out_and_a_final_refusal_stops() {
    let mut s = Scripted::new(JoinCredential::Enrolment([7; 32]));
    s.answer = JoinAnswer::Refused {
        reason: JoinRefusal::LockedOut,
        retry_after_ms: 5000,
    };
    s.run_for(Duration::from_secs(1));
    assert_eq!(s.joins, 1);
    assert_eq!(s.member.state(), &MemberState::Joining);
    assert!(s.events.iter().any(|e| matches!(
        e,
        MemberEvent::Refused { reason: JoinRefusal::LockedOut, retry_after: Some(d) } if *d == Duration::from_secs(5)
    )));
    s.answer = JoinAnswer::Refused {
        reason: JoinRefusal::BadProof,
        retry_after_ms: 0,
    };
    s.run_for(Duration::from_secs(5));
    assert_eq!(s.joins, 2, "joined again once the lock ended");
    assert_eq!(
        s.member.state(),
        &MemberState::Refused(JoinRefusal::BadProof)
    );
    s.run_for(Duration::from_secs(120));
    assert_eq!(s.joins, 2, "a final refusal is not retried");
}

/// The members of version `k` of a roster that gains one member per version.
fn members_at(k: u64) -> Vec<u8> {
    (2..=2 + k as u8).collect()
}

#[test]
fn any_order_of_publications_only_moves_forward_and_matches_the_authority() {
    const LAST: u64 = 6;
    fn prop(deliveries: Vec<(bool, u8)>) -> bool {
        let mut s = Scripted::new(JoinCredential::Listed);
        s.run_for(Duration::from_secs(2));
        let key = s.key.clone();
        s.fetch_answer = snapshot(&key, EPOCH, LAST, &members_at(LAST));
        let mut highest = 0;
        for (as_delta, k) in deliveries.into_iter().take(10) {
            let k = 1 + u64::from(k) % LAST;
            highest = highest.max(k);
            if as_delta && k > 1 {
                s.publish(
                    DELTA,
                    &delta(&key, k - 1, k, &members_at(k - 1), &members_at(k)),
                );
            } else {
                s.publish(SNAPSHOT, &snapshot(&key, EPOCH, k, &members_at(k)));
            }
        }
        let applied: Vec<u64> = s
            .events
            .iter()
            .filter_map(|e| match e {
                MemberEvent::Roster { version, .. } => Some(*version),
                _ => None,
            })
            .collect();
        let roster = s.member.roster();
        let mut expected: Vec<MemberId> = members_at(roster.version)
            .into_iter()
            .map(|i| entry(i).id)
            .collect();
        expected.sort();
        applied.windows(2).all(|w| w[0] < w[1])
            && roster.version >= highest
            && (highest == 0 || roster.entries.keys().copied().collect::<Vec<_>>() == expected)
    }
    quickcheck::QuickCheck::new()
        .tests(60)
        .quickcheck(prop as fn(Vec<(bool, u8)>) -> bool);
}
