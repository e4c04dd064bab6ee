//! A fleet on loopback with the blocking handles: members join by listed key and by
//! enrolment secret and call each other directly, a wrong secret is refused, a revoked member
//! is cut off by the others, and an authority restarted from its redb store keeps its epoch
//! and version while its members rejoin. Every wait is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::endpoint::{
    AuthorityConfig, Enrolment, JoinCredential, ListedPeer, MemberConfig, MemberError, MemberEvent,
    MemberState, Policy, RevokeError,
};
use pavillion_proto::features::authority::MemberId;
use pavillion_proto::wire::authority::JoinRefusal;
use pavillion_proto::FunctionId;
use pavillion_std::authority::{
    Authority, AuthorityOptions, JoinError, Member, MemberOptions, PeerCallError, RevokeFailure,
};
use pavillion_std::keys::random32;

const ECHO: FunctionId = FunctionId(401);
const SECRET: &[u8] = b"a passphrase of at least 16 characters";
const LIMIT: Duration = Duration::from_secs(10);

fn keys() -> KeyPair {
    KeyPair::from_secret_bytes(random32())
}

/// A policy listing `listed` as a gateway and admitting anyone with [`SECRET`] as a sensor.
fn policy(listed: &KeyPair) -> Policy {
    Policy {
        peers: vec![ListedPeer {
            public: *listed.public(),
            role: "gateway".into(),
            name: "gw-1".into(),
        }],
        enrolments: vec![Enrolment {
            key: Enrolment::key_of(SECRET),
            role: Some("sensor".into()),
        }],
        max_peers: 16,
        ..Policy::default()
    }
}

fn authority(keys: &KeyPair, policy: Policy, store: Option<&PathBuf>) -> Authority {
    let mut options = AuthorityOptions::new(AuthorityConfig::new(keys.clone(), policy, random32()));
    if let Some(s) = store {
        options = options.store(s.clone());
    }
    Authority::start(options).expect("authority starts")
}

fn member(
    authority: &Authority,
    authority_keys: &KeyPair,
    keys: KeyPair,
    credential: JoinCredential,
) -> Member {
    let config = MemberConfig::new(
        keys,
        authority.local_addr(),
        *authority_keys.public(),
        credential,
        random32(),
    );
    Member::start(MemberOptions::new(config)).expect("member starts")
}

/// Waits until `f` holds, polling every 20 ms, at most [`LIMIT`].
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: not within {LIMIT:?}");
}

/// Waits for a member event `f` accepts, at most [`LIMIT`].
fn event(m: &Member, what: &str, mut f: impl FnMut(&MemberEvent) -> bool) -> MemberEvent {
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        if let Some(e) = m.next_event(Duration::from_millis(50)) {
            if f(&e) {
                return e;
            }
        }
    }
    panic!("{what}: not within {LIMIT:?}");
}

fn knows(m: &Member, id: MemberId) -> bool {
    m.roster()
        .entries
        .get(&id)
        .is_some_and(|e| e.addr.is_some())
}

fn temp_store(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "pav-authority-{name}-{}-{}.redb",
        std::process::id(),
        hex::encode(&random32()[..4])
    ));
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn listed_and_enrolled_members_join_and_call_each_other_directly() {
    let (ak, gk) = (keys(), keys());
    let auth = authority(&ak, policy(&gk), None);
    let gw = member(&auth, &ak, gk, JoinCredential::Listed);
    let sensor = member(
        &auth,
        &ak,
        keys(),
        JoinCredential::Enrolment(Enrolment::key_of(SECRET)),
    );
    let (gw_id, gw_role) = gw.wait_joined(LIMIT).expect("listed key admitted");
    assert_eq!((gw_id, gw_role.as_str()), (gw.id(), "gateway"));
    let (s_id, s_role) = sensor.wait_joined(LIMIT).expect("enrolled key admitted");
    assert_eq!((s_id, s_role.as_str()), (sensor.id(), "sensor"));

    gw.register(ECHO, |caller, args| {
        let mut out = caller.to_string().into_bytes();
        out.push(b':');
        out.extend_from_slice(args);
        Ok(out)
    });
    until("the sensor learns the gateway's address", || {
        knows(&sensor, gw_id)
    });
    let answer = sensor
        .call(gw_id, ECHO, b"hi", LIMIT)
        .expect("the gateway answers");
    // The gateway's server saw the sensor's authenticated identity, not a claimed one.
    assert_eq!(answer, format!("{s_id}:hi").into_bytes());
    until("the authority lists both, up", || {
        let r = auth.roster();
        [gw_id, s_id]
            .iter()
            .all(|id| r.entries.get(id).is_some_and(|e| e.up))
    });
    let (stats, _) = auth.stats().expect("stats");
    assert_eq!(stats.admitted, 2);
}

#[test]
fn a_wrong_secret_is_refused_for_good() {
    let (ak, gk) = (keys(), keys());
    let auth = authority(&ak, policy(&gk), None);
    let wrong = Enrolment::key_of(b"not the passphrase of this fleet");
    let m = member(&auth, &ak, keys(), JoinCredential::Enrolment(wrong));
    assert_eq!(
        m.wait_joined(LIMIT),
        Err(JoinError::Refused(JoinRefusal::BadProof))
    );
    let unlisted = member(&auth, &ak, keys(), JoinCredential::Listed);
    assert_eq!(
        unlisted.wait_joined(LIMIT),
        Err(JoinError::Refused(JoinRefusal::NotInPolicy))
    );
    assert!(auth.roster().entries.is_empty());
}

#[test]
fn a_revoked_member_is_cut_off_by_the_others() {
    let (ak, gk) = (keys(), keys());
    let auth = authority(&ak, policy(&gk), None);
    let gw = member(&auth, &ak, gk, JoinCredential::Listed);
    let sensor = member(
        &auth,
        &ak,
        keys(),
        JoinCredential::Enrolment(Enrolment::key_of(SECRET)),
    );
    let (gw_id, _) = gw.wait_joined(LIMIT).expect("admitted");
    sensor.wait_joined(LIMIT).expect("admitted");
    gw.register(ECHO, |_, args| Ok(args.to_vec()));
    until("the sensor knows the gateway", || knows(&sensor, gw_id));
    assert_eq!(sensor.call(gw_id, ECHO, b"x", LIMIT), Ok(b"x".to_vec()));

    assert_eq!(
        auth.revoke(MemberId::of(ak.public())),
        Err(RevokeFailure::Refused(RevokeError::UnknownMember))
    );
    auth.revoke(gw_id).expect("revoked");
    event(
        &sensor,
        "the sensor drops the gateway",
        |e| matches!(e, MemberEvent::PeerRevoked { id } if *id == gw_id),
    );
    assert!(!sensor.roster().entries.contains_key(&gw_id));
    assert_eq!(
        sensor.call(gw_id, ECHO, b"x", LIMIT),
        Err(PeerCallError::Member(MemberError::UnknownMember))
    );
    assert!(!auth.roster().entries.contains_key(&gw_id));
}

#[test]
fn an_authority_restarted_from_its_store_keeps_its_epoch_and_members() {
    let store = temp_store("restart");
    let (ak, gk) = (keys(), keys());
    let auth = authority(&ak, policy(&gk), Some(&store));
    let bind = auth.local_addr();
    let sensor_keys = keys();
    let sensor = member(
        &auth,
        &ak,
        sensor_keys,
        JoinCredential::Enrolment(Enrolment::key_of(SECRET)),
    );
    let (s_id, _) = sensor.wait_joined(LIMIT).expect("admitted");
    until("the sensor follows the roster", || {
        sensor.roster().entries.contains_key(&s_id)
    });
    let before = auth.roster();
    assert!(before.entries.contains_key(&s_id));
    auth.close();
    drop(auth);

    // Same address, so that the member finds it again; same store.
    let options = AuthorityOptions::new(AuthorityConfig::new(ak.clone(), policy(&gk), random32()))
        .bind(bind)
        .store(store.clone());
    let auth = Authority::start(options).expect("restarts from its store");
    let after = auth.roster();
    assert_eq!(after.epoch, before.epoch, "the epoch survives a restart");
    assert!(after.version >= before.version);
    assert!(
        after.entries.contains_key(&s_id),
        "members survive a restart"
    );
    // The member rejoins (its key is its credential now) and never sees a reset.
    until("the sensor is up again at the restarted authority", || {
        auth.roster().entries.get(&s_id).is_some_and(|e| e.up)
            && auth.roster().version > after.version
    });
    let (stats, _) = auth.stats().expect("stats");
    assert!(stats.admitted >= 1, "the rejoin is an admission");
    assert_eq!(sensor.roster().epoch, before.epoch);
    drop(sensor);
    drop(auth);
    let _ = std::fs::remove_file(&store);
}

#[test]
fn a_member_whose_authority_is_silent_keeps_trying_until_closed() {
    // A socket that reads the member's handshakes and never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let ak = keys();
    let config = MemberConfig::new(
        keys(),
        silent.local_addr().unwrap(),
        *ak.public(),
        JoinCredential::Listed,
        random32(),
    );
    let m = Member::start(MemberOptions::new(config)).expect("member starts");
    let mut buf = [0; 2048];
    let (_, from) = silent
        .recv_from(&mut buf)
        .expect("the member opens a session");
    assert_eq!(from, m.local_addr());
    assert_eq!(
        m.wait_joined(Duration::from_millis(300)),
        Err(JoinError::TimedOut)
    );
    assert_eq!(m.state(), MemberState::Joining);
    let stranger = MemberId::of(ak.public());
    assert_eq!(
        m.call(stranger, ECHO, b"x", LIMIT),
        Err(PeerCallError::Member(MemberError::UnknownMember))
    );
    assert!(m.stats().is_some());
    m.close();
    assert_eq!(m.wait_joined(LIMIT), Err(JoinError::Closed));
    assert_eq!(
        m.call(stranger, ECHO, b"x", LIMIT),
        Err(PeerCallError::Closed)
    );
    assert!(m.stats().is_none());
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Authority>();
    send_sync::<Member>();
}
