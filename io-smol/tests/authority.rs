//! An async authority and members on loopback: two members join (one listed, one by an
//! enrolment secret), call each other directly, a revocation reaches the other member, and
//! an authority restarted from its store keeps its roster while the members join again.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use async_channel::Receiver;
use async_io::Timer;
use futures_lite::future;
use pavillion_io::keys::{generate_keypair, random32};
use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
use pavillion_proto::endpoint::{
    AuthorityConfig, AuthorityEvent, Enrolment, JoinCredential, ListedPeer, MemberConfig,
    MemberError, MemberEvent, Policy,
};
use pavillion_proto::features::authority::MemberId;
use pavillion_proto::FunctionId;
use pavillion_smol::authority::{
    Authority, AuthorityOptions, Member, MemberOptions, PeerCallError,
};
use pavillion_smol::RpcFailure;

const UPPER: FunctionId = FunctionId(0x0100);
const SECRET: &[u8] = b"a passphrase of at least 16 characters";

/// Runs `test` on `smol::block_on`, failing it if it takes longer than `limit`.
fn within<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test took longer than {limit:?}");
    }))
}

/// Waits for the first event `f` picks.
async fn wait_for<E: std::fmt::Debug, T>(
    events: &Receiver<E>,
    mut f: impl FnMut(&E) -> Option<T>,
) -> T {
    loop {
        let e = events.recv().await.expect("still open");
        if let Some(t) = f(&e) {
            return t;
        }
    }
}

/// Polls `f` until it holds (for state the handles expose without events, like the roster).
async fn until(mut f: impl FnMut() -> bool) {
    while !f() {
        Timer::after(Duration::from_millis(10)).await;
    }
}

/// A policy listing `listed` as a gateway, with one enrolment secret for sensors.
fn policy(listed: &PublicKey) -> Policy {
    Policy {
        enrolments: vec![Enrolment {
            key: Enrolment::key_of(SECRET),
            role: Some("sensor".into()),
        }],
        peers: vec![ListedPeer {
            public: *listed,
            role: "gateway".into(),
            name: "gw-1".into(),
        }],
        operators: Vec::new(),
        max_peers: 16,
        ..Policy::default()
    }
}

fn member_config(
    keys: KeyPair,
    authority: &Authority,
    authority_public: PublicKey,
    credential: JoinCredential,
) -> MemberConfig {
    let mut c = MemberConfig::new(
        keys,
        authority.local_addr(),
        authority_public,
        credential,
        random32(),
    );
    // Quick to notice the authority gone and to try again, so the restart test is short.
    c.limits.keepalive = Duration::from_millis(200);
    c.limits.down_after = Duration::from_secs(1);
    c.limits.join_retry = Duration::from_millis(100);
    c
}

/// A temporary store path unique to this process and test, removed first.
fn store_path(test: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("pavillion-smol-{}-{test}.redb", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

struct Fleet {
    authority: Authority,
    authority_keys: KeyPair,
    gateway: Member,
    sensor: Member,
}

/// An authority (with `store` if given) and two members, both joined and each in the
/// other's roster with an address.
async fn fleet(store: Option<PathBuf>) -> Fleet {
    let authority_keys = generate_keypair();
    let (gk, sk) = (generate_keypair(), generate_keypair());
    let config = AuthorityConfig::new(authority_keys.clone(), policy(gk.public()), random32());
    let mut options = AuthorityOptions::new(config);
    options.store = store;
    let authority = Authority::start(options).await.unwrap();
    let ap = *authority_keys.public();
    let gateway = Member::start(MemberOptions::new(member_config(
        gk,
        &authority,
        ap,
        JoinCredential::Listed,
    )))
    .await
    .unwrap();
    let mut sc = member_config(
        sk,
        &authority,
        ap,
        JoinCredential::Enrolment(Enrolment::key_of(SECRET)),
    );
    sc.role = "ignored: the enrolment names the role".into();
    sc.name = "s-1".into();
    let sensor = Member::start(MemberOptions::new(sc)).await.unwrap();

    let (gid, grole) = gateway.joined().await.unwrap();
    let (sid, srole) = sensor.joined().await.unwrap();
    assert_eq!((gid, grole.as_str()), (gateway.id(), "gateway"));
    assert_eq!((sid, srole.as_str()), (sensor.id(), "sensor"));
    let knows = |m: &Member, who: MemberId| {
        m.roster()
            .entries
            .get(&who)
            .is_some_and(|e| e.addr.is_some())
    };
    until(|| knows(&gateway, sid) && knows(&sensor, gid)).await;
    Fleet {
        authority,
        authority_keys,
        gateway,
        sensor,
    }
}

fn upper(_from: MemberId, args: &[u8]) -> Result<Vec<u8>, RpcFailure> {
    Ok(args.to_ascii_uppercase())
}

#[test]
fn two_members_join_and_call_each_other_directly() {
    within(Duration::from_secs(30), async {
        let f = fleet(None).await;
        let roster = f.authority.roster();
        assert_eq!(roster.entries.len(), 2);
        let s = &roster.entries[&f.sensor.id()];
        assert_eq!((s.role.as_str(), s.name.as_str()), ("sensor", "s-1"));
        // The address the roster gives is the member's one socket.
        assert_eq!(s.addr, Some(f.sensor.local_addr()));
        assert_eq!(f.gateway.roster(), f.sensor.roster());

        f.gateway.register(UPPER, |from, args| {
            let mut out = upper(from, args)?;
            out.extend_from_slice(b" from ");
            out.extend_from_slice(from.to_string().as_bytes());
            Ok(out)
        });
        f.sensor.register(UPPER, upper);
        let answer = f.sensor.call(f.gateway.id(), UPPER, b"hi").await.unwrap();
        // The gateway's handler saw who called: the sensor's id, from its session's key.
        assert_eq!(&answer[..], format!("HI from {}", f.sensor.id()).as_bytes());
        let answer = f.gateway.call(f.sensor.id(), UPPER, b"yo").await.unwrap();
        assert_eq!(&answer[..], b"YO");
        // A function nobody serves is refused by the member, not timed out.
        let e = f.sensor.call(f.gateway.id(), FunctionId(0x0200), b"").await;
        assert!(matches!(e, Err(PeerCallError::Remote { .. })), "{e:?}");
        // Nobody outside the roster is callable.
        let stranger = MemberId::of(generate_keypair().public());
        let e = f.sensor.call(stranger, UPPER, b"").await;
        assert_eq!(e, Err(PeerCallError::Member(MemberError::UnknownMember)));

        f.sensor.close().await;
        f.gateway.close().await;
        f.authority.close().await;
    });
}

#[test]
fn a_revocation_reaches_the_other_member() {
    within(Duration::from_secs(30), async {
        let f = fleet(None).await;
        f.gateway.register(UPPER, upper);
        f.sensor.register(UPPER, upper);
        // A session in both directions before the revocation, so both are cut.
        f.sensor.call(f.gateway.id(), UPPER, b"a").await.unwrap();
        f.gateway.call(f.sensor.id(), UPPER, b"b").await.unwrap();

        let events = f.gateway.events();
        let authority_events = f.authority.events();
        let sid = f.sensor.id();
        f.authority.revoke(sid).await.unwrap();
        wait_for(&authority_events, |e| {
            matches!(e, AuthorityEvent::Revoked { id } if *id == sid).then_some(())
        })
        .await;
        wait_for(&events, |e| {
            matches!(e, MemberEvent::PeerRevoked { id } if *id == sid).then_some(())
        })
        .await;
        assert!(!f.gateway.roster().entries.contains_key(&sid));
        assert!(!f.authority.roster().entries.contains_key(&sid));
        // The gateway no longer calls it, and no longer answers it.
        let e = f.gateway.call(sid, UPPER, b"c").await;
        assert_eq!(e, Err(PeerCallError::Member(MemberError::UnknownMember)));
        let e = f.sensor.call(f.gateway.id(), UPPER, b"d").await;
        assert!(e.is_err(), "a revoked member was answered: {e:?}");
        // Revoking again: the id is no longer a member.
        assert!(f.authority.revoke(sid).await.is_err());

        f.sensor.close().await;
        f.gateway.close().await;
        f.authority.close().await;
    });
}

#[test]
fn an_authority_restarted_from_its_store_keeps_the_roster_and_members_rejoin() {
    within(Duration::from_secs(60), async {
        let path = store_path("restart");
        let f = fleet(Some(path.clone())).await;
        let before = f.authority.roster();
        let addr = f.authority.local_addr();
        let (gid, sid) = (f.gateway.id(), f.sensor.id());
        let gateway_events = f.gateway.events();
        f.authority.close().await;
        drop(f.authority);
        wait_for(&gateway_events, |e| {
            matches!(e, MemberEvent::AuthorityDown).then_some(())
        })
        .await;

        // Same key, same store, same address; a policy with neither the listed key nor the
        // secret this time: the members are admitted by the stored roster, not by the policy.
        let empty = Policy {
            max_peers: 16,
            ..Policy::default()
        };
        let config = AuthorityConfig::new(f.authority_keys.clone(), empty, random32());
        let options = AuthorityOptions::new(config).bind(addr).store(path.clone());
        let authority = Authority::start(options).await.unwrap();
        let restored = authority.roster();
        assert_eq!(
            restored.epoch, before.epoch,
            "a new epoch: the store was not read"
        );
        assert!(restored.version >= before.version);
        assert!(restored.entries.contains_key(&gid) && restored.entries.contains_key(&sid));

        let events = authority.events();
        let mut rejoined = Vec::new();
        while rejoined.len() < 2 {
            let id = wait_for(&events, |e| match e {
                AuthorityEvent::Admitted { id, rejoin, .. } => {
                    assert!(rejoin, "{id} admitted as new");
                    Some(*id)
                }
                _ => None,
            })
            .await;
            if !rejoined.contains(&id) {
                rejoined.push(id);
            }
        }
        // Both members follow the restored roster (same epoch: no reset) and still reach
        // each other.
        let r = f.gateway.roster();
        assert_eq!(r.epoch, before.epoch);
        assert!(r.version >= before.version);
        f.sensor.register(UPPER, upper);
        let answer = f.gateway.call(sid, UPPER, b"again").await.unwrap();
        assert_eq!(&answer[..], b"AGAIN");

        f.sensor.close().await;
        f.gateway.close().await;
        authority.close().await;
        let _ = std::fs::remove_file(&path);
    });
}
