//! The member against the real authority, on the in-memory fleet of `testing::authority`.

use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::crypto::ecc::KeyPair;
use crate::endpoint::{
    AuthorityConfig, AuthorityEvent, ClientEvent, Enrolment, JoinCredential, ListedPeer,
    MemberConfig, MemberEvent, MemberState, Policy, ServerEvent,
};
use crate::features::authority::MemberId;
use crate::id::FunctionId;
use crate::testing::authority::Fleet;
use crate::time::Duration;
use crate::wire::authority::JoinRefusal;
use crate::wire::RpcStatus;

const SECRET: &[u8] = b"a passphrase of at least 16 characters";

fn keys(i: u8) -> KeyPair {
    KeyPair::from_secret_bytes([i; 32])
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 1790))
}

fn id(i: u8) -> MemberId {
    MemberId::of(keys(i).public())
}

/// The authority (keys 1, `addr(1)`) lists keys 2..=`listed`, and takes enrolments by
/// [`SECRET`] with role "sensor".
fn fleet(listed: u8, durable: bool) -> Fleet {
    let mut policy = Policy {
        max_peers: 64,
        ..Policy::default()
    };
    for i in 2..=listed {
        policy.peers.push(ListedPeer {
            public: *keys(i).public(),
            role: "gateway".into(),
            name: alloc::format!("gw-{i}"),
        });
    }
    policy.enrolments.push(Enrolment {
        key: Enrolment::key_of(SECRET),
        role: Some("sensor".into()),
    });
    let mut config = AuthorityConfig::new(keys(1), policy, [1; 32]);
    config.durable = durable;
    Fleet::new(addr(1), config)
}

fn member(i: u8, credential: JoinCredential) -> MemberConfig {
    let mut c = MemberConfig::new(keys(i), addr(1), *keys(1).public(), credential, [i; 32]);
    c.name = alloc::format!("m{i}");
    c
}

/// A fleet of `n` listed members (2..=n+1), all joined and holding the same roster.
fn joined(n: u8, connect_all: bool) -> Fleet {
    let mut f = fleet(n + 1, true);
    for i in 2..=n + 1 {
        let mut c = member(i, JoinCredential::Listed);
        c.connect_all = connect_all;
        f.add_member(addr(i), c);
    }
    let settled = f.run_until(Duration::from_secs(10), converged);
    assert!(settled, "the fleet did not settle");
    f
}

/// Every live member holds the authority's roster, and it lists every member.
fn converged(f: &mut Fleet) -> bool {
    let roster = f.authority().roster().clone();
    let addrs = f.member_addrs();
    roster.entries.len() == addrs.len()
        && addrs
            .into_iter()
            .all(|a| !f.host(a).up || f.member(a).roster() == &roster)
}

fn events(f: &mut Fleet, a: SocketAddr) -> Vec<MemberEvent> {
    f.host(a).events.clone()
}

#[test]
fn joins_with_each_credential() {
    let mut f = fleet(2, false);
    f.add_member(addr(2), member(2, JoinCredential::Listed));
    let mut enrolled = member(3, JoinCredential::Enrolment(Enrolment::key_of(SECRET)));
    enrolled.role = "ignored".into();
    f.add_member(addr(3), enrolled);
    f.add_member(
        addr(4),
        member(
            4,
            JoinCredential::Enrolment(Enrolment::key_of(b"not the secret at all")),
        ),
    );
    f.add_member(addr(5), member(5, JoinCredential::Listed));
    f.run_for(Duration::from_secs(3));
    assert_eq!(
        f.member(addr(2)).state(),
        &MemberState::Joined {
            id: id(2),
            role: "gateway".into()
        }
    );
    assert_eq!(
        f.member(addr(3)).state(),
        &MemberState::Joined {
            id: id(3),
            role: "sensor".into()
        }
    );
    assert_eq!(
        f.member(addr(4)).state(),
        &MemberState::Refused(JoinRefusal::BadProof)
    );
    assert_eq!(
        f.member(addr(5)).state(),
        &MemberState::Refused(JoinRefusal::NotInPolicy)
    );
    let signing = f.authority().signing_public();
    assert_eq!(f.member(addr(2)).signing(), Some(signing));
    let roster = f.authority().roster().clone();
    assert_eq!(roster.entries.len(), 2);
    assert_eq!(roster.entries[&id(2)].addr, Some(addr(2)));
}

#[test]
fn every_member_receives_the_roster_in_version_order() {
    let mut f = joined(4, false);
    f.add_member(
        addr(9),
        member(9, JoinCredential::Enrolment(Enrolment::key_of(SECRET))),
    );
    assert!(f.run_until(Duration::from_secs(10), converged));
    let last = f.authority().roster().version;
    for a in f.member_addrs() {
        let versions: Vec<u64> = events(&mut f, a)
            .into_iter()
            .filter_map(|e| match e {
                MemberEvent::Roster { version, .. } => Some(version),
                _ => None,
            })
            .collect();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "{a}: {versions:?}"
        );
        assert_eq!(versions.last(), Some(&last), "{a}");
        assert!(events(&mut f, a)
            .iter()
            .all(|e| !matches!(e, MemberEvent::RosterRejected(_))));
    }
}

#[test]
fn members_call_each_other_with_the_authority_down() {
    let mut f = joined(2, false);
    let (a, b) = (addr(2), addr(3));
    f.member(b)
        .server_mut()
        .register_function(FunctionId(40), "echo");
    f.authority_down();
    let before: u64 = [a, b].iter().map(|m| f.delivered(*m, addr(1))).sum();
    let now = f.now();
    let call = f
        .member(a)
        .call(now, id(3), FunctionId(40), b"ping")
        .unwrap();
    f.flush();
    let answered = f.run_until(Duration::from_secs(5), |f| {
        let now = f.now();
        let requests: Vec<_> = f
            .host(b)
            .events
            .drain(..)
            .filter_map(|e| match e {
                MemberEvent::FromPeer {
                    event: ServerEvent::RpcRequest(r),
                    id: who,
                } if who == id(2) => Some(r),
                _ => None,
            })
            .collect();
        for r in requests {
            f.member(b)
                .server_mut()
                .respond(now, r.call, RpcStatus::OK, &r.args)
                .unwrap();
            f.flush();
        }
        f.host(a).events.iter().any(|e| {
            matches!(e, MemberEvent::ToPeer { id: who, event: ClientEvent::Answered { call: c, data, .. } }
                if *who == id(3) && *c == call && &data[..] == b"ping")
        })
    });
    assert!(answered, "{:?}", events(&mut f, a));
    let after: u64 = [a, b].iter().map(|m| f.delivered(*m, addr(1))).sum();
    assert_eq!(before, after, "the authority saw nothing of the call");
    assert!(f.delivered(a, b) > 0);
}

#[test]
fn a_revoked_member_is_dropped_by_every_member_within_one_propagation() {
    let mut f = joined(3, true);
    let (a, b, c) = (addr(2), addr(3), addr(4));
    // Every pair holds a session both ways.
    assert!(f.run_until(Duration::from_secs(5), |f| {
        [a, b, c]
            .into_iter()
            .all(|m| f.member(m).connected_peers().len() == 2)
    }));
    f.revoke(id(4)).unwrap();
    let start = f.now();
    let dropped = f.run_until(Duration::from_secs(1), |f| {
        [a, b].into_iter().all(|m| {
            f.host(m)
                .events
                .iter()
                .any(|e| matches!(e, MemberEvent::PeerRevoked { id: r } if *r == id(4)))
                && f.member(m)
                    .connected_peers()
                    .iter()
                    .all(|(p, _)| *p != id(4))
        })
    });
    assert!(dropped, "not dropped within 1 s");
    assert!(f.now().saturating_duration_since(start) <= Duration::from_millis(100));
    assert!(f
        .authority_events
        .iter()
        .any(|e| matches!(e, AuthorityEvent::Revoked { id: r } if *r == id(4))));
    // The revoked member's calls fail and its handshakes to our servers go unanswered.
    let mark = f.host(a).events.len();
    f.member(a)
        .server_mut()
        .register_function(FunctionId(40), "echo");
    let now = f.now();
    let call = f
        .member(c)
        .call(now, id(2), FunctionId(40), b"let me in")
        .unwrap();
    f.flush();
    f.run_for(Duration::from_secs(30));
    let late = events(&mut f, a).split_off(mark);
    assert!(
        !late.iter().any(|e| matches!(
            e,
            MemberEvent::FromPeer { id: who, event: ServerEvent::Connected { .. } | ServerEvent::RpcRequest(_) }
                if *who == id(4)
        )),
        "{late:?}"
    );
    let answered = events(&mut f, c).iter().any(|e| {
        matches!(e, MemberEvent::ToPeer { event: ClientEvent::Answered { call: k, .. }, .. } if *k == call)
    });
    assert!(!answered);
    for m in [a, b] {
        assert!(f
            .member(m)
            .connected_peers()
            .iter()
            .all(|(p, _)| *p != id(4)));
        assert!(!f.member(m).roster().entries.contains_key(&id(4)));
    }
    assert_eq!(
        f.member(c).state(),
        &MemberState::Refused(JoinRefusal::Revoked)
    );
}

#[test]
fn a_rebooted_member_keeps_its_id() {
    let mut f = joined(2, false);
    let version = f.authority().roster().version;
    f.reboot(addr(2));
    assert!(f.run_until(Duration::from_secs(10), |f| {
        matches!(f.member(addr(2)).state(), MemberState::Joined { .. })
            && f.member(addr(2)).roster().version >= version
    }));
    assert_eq!(f.member(addr(2)).id(), id(2));
    assert!(f.authority_events.iter().any(|e| matches!(
        e,
        AuthorityEvent::Admitted { id: who, rejoin: true, .. } if *who == id(2)
    )));
    assert_eq!(f.authority().roster().entries.len(), 2);
}

#[test]
fn members_join_again_when_the_authority_comes_back() {
    let mut f = joined(2, false);
    let epoch = f.authority().roster().epoch;
    f.authority_down();
    f.run_for(Duration::from_secs(100));
    f.authority_up().unwrap();
    let joins = |f: &mut Fleet, a: SocketAddr| {
        f.host(a)
            .events
            .iter()
            .filter(|e| matches!(e, MemberEvent::Joined { .. }))
            .count()
    };
    assert!(f.run_until(Duration::from_secs(30), |f| {
        f.member_addrs().into_iter().all(|a| joins(f, a) == 2)
            && converged(f)
            && f.authority().roster().entries.values().all(|e| e.up)
    }));
    assert_eq!(
        f.authority().roster().epoch,
        epoch,
        "restored from its store"
    );
    for a in f.member_addrs() {
        assert!(events(&mut f, a)
            .iter()
            .any(|e| matches!(e, MemberEvent::AuthorityDown)));
    }
}

#[test]
fn a_call_pending_to_a_member_that_moved_fails_rather_than_vanishes() {
    let mut f = joined(2, true);
    let (a, b) = (addr(2), addr(3));
    // b goes silent until the others see it down; a's call to it waits (a long deadline, so
    // only the move can end it), then b comes back from another address (a new process).
    f.set_up(b, false);
    f.run_for(Duration::from_secs(80));
    let now = f.now();
    let call = f
        .member(a)
        .call(now, id(3), FunctionId(40), b"ping")
        .unwrap();
    f.flush();
    let moved = SocketAddr::from(([10, 0, 0, 33], 1790));
    let mut config = member(3, JoinCredential::Listed);
    config.seed = [33; 32];
    f.add_member(moved, config);
    let failed = f.run_until(Duration::from_millis(1500), |f| {
        f.host(a).events.iter().any(|e| {
            matches!(e, MemberEvent::ToPeer { id: who, event: ClientEvent::CallFailed { call: c, .. } }
                if *who == id(3) && *c == call)
        })
    });
    assert!(failed, "{:?}", events(&mut f, a));
    let addr_now = f
        .member(a)
        .roster()
        .entries
        .get(&id(3))
        .and_then(|e| e.addr);
    assert_eq!(addr_now, Some(moved));
}
