//! The authority driven with plain suite 3 clients over a zero-latency in-memory harness
//! (members here are `Client`s that call `JOIN` and subscribe by hand; `endpoint::member`
//! has its own tests).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::*;
use crate::endpoint::{Client, ClientConfig, ClientEvent, Endpoint};
use crate::features::authority::lockout::LockoutPolicy;
use crate::wire::authority::{
    enrolment_proof, JoinAnswer, JoinRequest, Proof, FETCH, JOIN, REVOKE,
};
use crate::wire::RpcStatus;

const SECRET: &[u8] = b"a passphrase of at least 16 characters";

fn keys(i: u8) -> KeyPair {
    KeyPair::from_secret_bytes([i; 32])
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 4000 + u16::from(i)))
}

fn authority_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 1790))
}

/// A policy: one enrolment secret (role "sensor"), key 10 listed as "gw-1", key 20 operator.
fn policy() -> Policy {
    Policy {
        enrolments: vec![Enrolment {
            key: Enrolment::key_of(SECRET),
            role: Some("sensor".to_string()),
        }],
        peers: vec![ListedPeer {
            public: *keys(10).public(),
            role: "gateway".to_string(),
            name: "gw-1".to_string(),
        }],
        operators: vec![*keys(20).public()],
        ..Policy::default()
    }
}

fn config(durable: bool) -> AuthorityConfig {
    let mut c = AuthorityConfig::new(keys(1), policy(), [7; 32]);
    c.durable = durable;
    c
}

/// An authority and clients on a zero-latency network. Datagrams can be injected or
/// filtered; store batches are written (kept) and acknowledged when `auto_store` is set.
struct Net {
    now: Instant,
    auth: Authority,
    clients: BTreeMap<SocketAddr, Client>,
    events: Vec<AuthorityEvent>,
    client_events: BTreeMap<SocketAddr, Vec<ClientEvent>>,
    written: Vec<StoreBatch>,
    auto_store: bool,
    /// Datagrams to the authority from these sources are dropped (a host that is down).
    down: Vec<SocketAddr>,
    /// Sources that claim another address (an attacker spoofing it): real to claimed.
    spoof: BTreeMap<SocketAddr, SocketAddr>,
    /// Every datagram the authority received, by claimed source (for replays).
    seen: Vec<(SocketAddr, Vec<u8>)>,
}

impl Net {
    fn new(auth: Authority) -> Self {
        Net {
            now: Instant::from_millis(1_000),
            auth,
            clients: BTreeMap::new(),
            events: Vec::new(),
            client_events: BTreeMap::new(),
            written: Vec::new(),
            auto_store: true,
            down: Vec::new(),
            spoof: BTreeMap::new(),
            seen: Vec::new(),
        }
    }

    fn add(&mut self, i: u8, at: SocketAddr) {
        // A rebooted client draws other ephemeral keys than its earlier life.
        let mut seed = [i; 32];
        seed[..8].copy_from_slice(&self.now.as_micros().to_le_bytes());
        let c = ClientConfig::noise_guest(keys(i), *keys(1).public(), authority_addr(), seed);
        self.clients.insert(at, Client::new(c));
        self.client_events.remove(&at);
    }

    fn inject(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.auth.handle_datagram(self.now, from, bytes);
        self.pump();
    }

    /// Moves every datagram and event until all is quiet at this instant.
    fn pump(&mut self) {
        let mut buf = [0u8; 4096];
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(t) = self.auth.poll_transmit(self.now, &mut buf) {
                moved = true;
                if let Some(c) = self.clients.get_mut(&t.destination) {
                    c.handle_datagram(self.now, authority_addr(), &buf[..t.len]);
                }
            }
            let addrs: Vec<SocketAddr> = self.clients.keys().copied().collect();
            for a in addrs {
                let c = self.clients.get_mut(&a).unwrap();
                while let Some(t) = c.poll_transmit(self.now, &mut buf) {
                    moved = true;
                    if t.destination == authority_addr() && !self.down.contains(&a) {
                        let from = self.spoof.get(&a).copied().unwrap_or(a);
                        self.seen.push((from, buf[..t.len].to_vec()));
                        self.auth.handle_datagram(self.now, from, &buf[..t.len]);
                    }
                }
                let evs = self.client_events.entry(a).or_default();
                while let Some(e) = c.poll_event() {
                    evs.push(e);
                }
            }
            while let Some(b) = self.auth.poll_store() {
                moved = true;
                self.written.push(b.clone());
                if self.auto_store {
                    self.auth.stored(self.now, b.id);
                }
            }
            while let Some(e) = self.auth.poll_event() {
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("livelock");
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.pump();
            let next = self
                .clients
                .values()
                .filter_map(Endpoint::poll_timeout)
                .chain(self.auth.poll_timeout())
                .min()
                .unwrap_or(end)
                .max(self.now);
            if next > end {
                self.now = end;
                return;
            }
            self.now = next.max(self.now + Duration::from_micros(1)).min(end);
            self.auth.handle_timeout(self.now);
            for c in self.clients.values_mut() {
                c.handle_timeout(self.now);
            }
            if self.now == end {
                self.pump();
                return;
            }
        }
    }

    fn call(
        &mut self,
        at: SocketAddr,
        function: crate::id::FunctionId,
        args: &[u8],
    ) -> Result<Vec<u8>, RpcStatus> {
        let now = self.now;
        let id = self
            .clients
            .get_mut(&at)
            .unwrap()
            .call(now, function, args, None)
            .unwrap();
        self.run_for(Duration::from_millis(50));
        for e in self.client_events.get(&at).into_iter().flatten() {
            match e {
                ClientEvent::Answered { call, data, .. } if *call == id => return Ok(data.to_vec()),
                ClientEvent::RemoteError { call, status, .. } if *call == id => {
                    return Err(*status)
                }
                _ => {}
            }
        }
        panic!(
            "no answer to {function:?} from {at}: {:?}",
            self.client_events.get(&at)
        );
    }

    fn join_with(&mut self, i: u8, at: SocketAddr, proof: Proof, role: &str) -> JoinAnswer {
        let mut args = Vec::new();
        JoinRequest {
            public: *keys(i).public(),
            proof,
            role,
            name: "n",
        }
        .encode(&mut args);
        let data = self
            .call(at, JOIN, &args)
            .expect("JOIN answers with status 0");
        JoinAnswer::parse(&data).unwrap()
    }

    fn join(&mut self, i: u8, at: SocketAddr, secret: &[u8]) -> JoinAnswer {
        let k = Enrolment::key_of(secret);
        let proof = enrolment_proof(&k, keys(1).public(), keys(i).public());
        self.join_with(i, at, Proof::Enrolment(proof), "asked")
    }

    /// Adds client `i` at `at`, lets it connect, and joins it with `secret`.
    fn member(&mut self, i: u8, at: SocketAddr, secret: &[u8]) -> JoinAnswer {
        self.add(i, at);
        self.run_for(Duration::from_millis(50));
        self.join(i, at, secret)
    }

    fn roster_messages(&self, at: SocketAddr) -> Vec<(String, Vec<u8>)> {
        self.client_events
            .get(&at)
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                ClientEvent::Message(m) if m.target() == "core.roster" => {
                    Some((m.name().to_string(), m.payload().to_vec()))
                }
                _ => None,
            })
            .collect()
    }
}

fn refused(a: &JoinAnswer) -> Option<JoinRefusal> {
    match a {
        JoinAnswer::Refused { reason, .. } => Some(*reason),
        JoinAnswer::Admitted { .. } => None,
    }
}

fn admitted(a: &JoinAnswer) -> (MemberId, String) {
    match a {
        JoinAnswer::Admitted { id, role, .. } => (*id, role.clone()),
        JoinAnswer::Refused { reason, .. } => panic!("refused: {reason:?}"),
    }
}

#[test]
fn listed_key_and_enrolment_are_admitted_others_refused() {
    let mut net = Net::new(Authority::new(config(false)));
    // Listed: no proof needed, the policy's role wins.
    net.add(10, addr(10));
    net.run_for(Duration::from_millis(50));
    let a = net.join_with(10, addr(10), Proof::Listed, "ignored");
    assert_eq!(
        admitted(&a),
        (MemberId::of(keys(10).public()), "gateway".to_string())
    );
    // Enrolment secret: the enrolment's role.
    let a = net.member(11, addr(11), SECRET);
    assert_eq!(admitted(&a).1, "sensor");
    // Wrong secret.
    let a = net.member(12, addr(12), b"not the passphrase at all");
    assert_eq!(refused(&a), Some(JoinRefusal::BadProof));
    // No proof, not listed.
    net.add(13, addr(13));
    net.run_for(Duration::from_millis(50));
    let a = net.join_with(13, addr(13), Proof::Listed, "x");
    assert_eq!(refused(&a), Some(JoinRefusal::NotInPolicy));
    // A request naming another key than the session's.
    let mut args = Vec::new();
    JoinRequest {
        public: *keys(10).public(),
        proof: Proof::Listed,
        role: "",
        name: "",
    }
    .encode(&mut args);
    let a = JoinAnswer::parse(&net.call(addr(13), JOIN, &args).unwrap()).unwrap();
    assert_eq!(refused(&a), Some(JoinRefusal::Malformed));
    let a = JoinAnswer::parse(&net.call(addr(13), JOIN, b"junk").unwrap()).unwrap();
    assert_eq!(refused(&a), Some(JoinRefusal::Malformed));
    assert_eq!(net.auth.authority_stats().admitted, 2);
    net.run_for(Duration::from_millis(200));
    let roster = net.auth.roster();
    assert_eq!(roster.entries.len(), 2);
    assert!(roster.entries.values().all(|e| e.up));
    assert_eq!(
        roster.entries[&MemberId::of(keys(11).public())].addr,
        Some(addr(11))
    );
}

#[test]
fn malformed_calls_past_the_limit_end_the_session() {
    let mut net = Net::new(Authority::new(config(false)));
    net.add(13, addr(13));
    net.run_for(Duration::from_millis(50));
    for _ in 0..3 {
        let _ = net.call(addr(13), JOIN, b"junk");
    }
    assert_eq!(net.auth.authority_stats().evicted, 1);
    assert!(net.client_events[&addr(13)]
        .iter()
        .any(|e| matches!(e, ClientEvent::Disconnected { .. })));
}

#[test]
fn unjoined_sessions_may_only_join_and_time_out() {
    let mut net = Net::new(Authority::new(config(false)));
    net.add(13, addr(13));
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.call(addr(13), FETCH, &[]), Err(RpcStatus::BAD_INPUT));
    assert_eq!(
        net.call(addr(13), REVOKE, &[0; 16]),
        Err(RpcStatus::BAD_INPUT)
    );
    net.run_for(Duration::from_secs(11));
    assert_eq!(net.auth.authority_stats().evicted, 1);
}

#[test]
fn full_roster_refuses_new_members_but_not_rejoins() {
    let mut c = config(false);
    c.policy.max_peers = 1;
    let mut net = Net::new(Authority::new(c));
    admitted(&net.member(11, addr(11), SECRET));
    assert_eq!(
        refused(&net.member(12, addr(12), SECRET)),
        Some(JoinRefusal::Full)
    );
    admitted(&net.join(11, addr(11), SECRET));
}

#[test]
fn rejoin_after_a_reboot_keeps_id_role_and_name() {
    let mut net = Net::new(Authority::new(config(false)));
    let (id, role) = admitted(&net.member(11, addr(11), SECRET));
    let v = net.auth.roster().version;
    // The member reboots: same key, new port, its old session silent.
    net.clients.remove(&addr(11));
    let new_addr = SocketAddr::from(([10, 0, 0, 11], 5555));
    net.add(11, new_addr);
    net.run_for(Duration::from_millis(50));
    // Its key is its credential: no proof needed.
    let a = net.join_with(11, new_addr, Proof::Listed, "other role");
    assert_eq!(admitted(&a), (id, role));
    net.run_for(Duration::from_millis(200));
    let e = &net.auth.roster().entries[&id];
    assert_eq!((e.addr, e.up, e.name.as_str()), (Some(new_addr), true, "n"));
    assert!(net.auth.roster().version > v);
    assert!(net
        .events
        .iter()
        .any(|e| matches!(e, AuthorityEvent::Admitted { rejoin: true, id: i, .. } if *i == id)));
}

#[test]
fn lockout_after_threshold_growing_and_cleared_by_success() {
    let mut net = Net::new(Authority::new(config(false)));
    net.add(12, addr(12));
    net.run_for(Duration::from_millis(50));
    for _ in 0..5 {
        assert_eq!(
            refused(&net.join(12, addr(12), b"wrong passphrase!!")),
            Some(JoinRefusal::BadProof)
        );
    }
    // Locked: even the right secret is not checked.
    let a = net.join(12, addr(12), SECRET);
    assert_eq!(refused(&a), Some(JoinRefusal::LockedOut));
    assert!(matches!(a, JoinAnswer::Refused { retry_after_ms, .. } if retry_after_ms > 29_000));
    net.run_for(Duration::from_secs(31));
    net.add(12, addr(12));
    net.run_for(Duration::from_millis(50));
    for _ in 0..5 {
        net.join(12, addr(12), b"wrong passphrase!!");
    }
    // The second lock is twice the first.
    let a = net.join(12, addr(12), SECRET);
    assert!(
        matches!(a, JoinAnswer::Refused { reason: JoinRefusal::LockedOut, retry_after_ms } if retry_after_ms > 59_000)
    );
    net.run_for(Duration::from_secs(61));
    net.add(12, addr(12));
    net.run_for(Duration::from_millis(50));
    admitted(&net.join(12, addr(12), SECRET));
    assert!(net.auth.lockouts.is_empty());
    assert_eq!(net.auth.authority_stats().lockouts, 2);
}

#[test]
fn busy_once_the_budget_is_spent_while_listed_and_admitted_keys_join() {
    let mut c = config(false);
    c.policy.lockout = LockoutPolicy {
        failed_proofs_per_minute: 3,
        ..LockoutPolicy::default()
    };
    let mut net = Net::new(Authority::new(c));
    admitted(&net.member(11, addr(11), SECRET));
    for i in 30..33 {
        assert_eq!(
            refused(&net.member(i, addr(i), b"guessing the secret")),
            Some(JoinRefusal::BadProof)
        );
    }
    assert_eq!(
        refused(&net.member(33, addr(33), SECRET)),
        Some(JoinRefusal::Busy)
    );
    net.add(10, addr(10));
    net.run_for(Duration::from_millis(50));
    admitted(&net.join_with(10, addr(10), Proof::Listed, ""));
    admitted(&net.join(11, addr(11), SECRET));
}

#[test]
fn subscribers_get_a_snapshot_then_signed_deltas() {
    let mut net = Net::new(Authority::new(config(false)));
    let a = net.member(11, addr(11), SECRET);
    let JoinAnswer::Admitted { signing, .. } = a else {
        panic!()
    };
    let now = net.now;
    net.clients
        .get_mut(&addr(11))
        .unwrap()
        .subscribe(now, "core.roster")
        .unwrap();
    net.run_for(Duration::from_millis(300));
    admitted(&net.member(12, addr(12), SECRET));
    net.run_for(Duration::from_millis(300));
    let msgs = net.roster_messages(addr(11));
    assert!(msgs.len() >= 2, "{msgs:?}");
    assert_eq!(msgs[0].0, "snapshot");
    let mut r = Roster::default();
    for (name, payload) in &msgs {
        r.apply_publication(name, payload, &signing).unwrap();
    }
    assert_eq!(&r, net.auth.roster());
    assert_eq!(r.entries.len(), 2);
}

#[test]
fn a_subscription_before_the_join_is_served_after_it() {
    let mut net = Net::new(Authority::new(config(false)));
    net.add(11, addr(11));
    net.run_for(Duration::from_millis(50));
    let now = net.now;
    net.clients
        .get_mut(&addr(11))
        .unwrap()
        .subscribe(now, "core.roster")
        .unwrap();
    net.run_for(Duration::from_millis(50));
    assert!(net.roster_messages(addr(11)).is_empty());
    admitted(&net.join(11, addr(11), SECRET));
    net.run_for(Duration::from_millis(300));
    assert_eq!(net.roster_messages(addr(11))[0].0, "snapshot");
}

#[test]
fn revoke_removes_closes_and_publishes_at_once() {
    let mut net = Net::new(Authority::new(config(false)));
    let (id, _) = admitted(&net.member(11, addr(11), SECRET));
    let watcher = admitted(&net.member(12, addr(12), SECRET));
    let _ = watcher;
    let now = net.now;
    net.clients
        .get_mut(&addr(12))
        .unwrap()
        .subscribe(now, "core.roster")
        .unwrap();
    net.run_for(Duration::from_millis(300));
    let unknown = MemberId(crate::id::ClientId([9; 16]));
    assert_eq!(
        net.auth.revoke(net.now, unknown),
        Err(RevokeError::UnknownMember)
    );
    let before = net.roster_messages(addr(12)).len();
    let v = net.auth.roster().version;
    net.auth.revoke(net.now, id).unwrap();
    // Published without the coalescing delay.
    assert_eq!(net.auth.roster().version, v + 1);
    assert!(!net.auth.roster().entries.contains_key(&id));
    net.pump();
    assert!(net.roster_messages(addr(12)).len() > before);
    assert!(net.client_events[&addr(11)]
        .iter()
        .any(|e| matches!(e, ClientEvent::Disconnected { .. })));
    // It is refused from now on, even with the secret.
    net.add(11, addr(11));
    net.run_for(Duration::from_millis(50));
    assert_eq!(
        refused(&net.join(11, addr(11), SECRET)),
        Some(JoinRefusal::Revoked)
    );
}

#[test]
fn revoke_over_the_wire_only_for_operators() {
    let mut net = Net::new(Authority::new(config(false)));
    let (id, _) = admitted(&net.member(11, addr(11), SECRET));
    // A member is not an operator.
    assert_eq!(net.call(addr(11), REVOKE, &id.0 .0), Ok(vec![2]));
    net.add(20, addr(20));
    net.run_for(Duration::from_millis(50));
    // An operator reads the roster and revokes without joining.
    let snap = net.call(addr(20), FETCH, &[]).unwrap();
    assert_eq!(
        crate::wire::authority::Snapshot::parse(&snap)
            .unwrap()
            .entries
            .len(),
        1
    );
    assert_eq!(net.call(addr(20), REVOKE, &[9; 16]), Ok(vec![1]));
    assert_eq!(net.call(addr(20), REVOKE, &id.0 .0), Ok(vec![0]));
    net.pump();
    assert!(net.auth.roster().entries.is_empty());
}

#[test]
fn presence_follows_the_member_session() {
    let mut c = config(false);
    c.limits.down_after = Duration::from_secs(5);
    let mut net = Net::new(Authority::new(c));
    let (id, _) = admitted(&net.member(11, addr(11), SECRET));
    net.run_for(Duration::from_millis(200));
    net.down.push(addr(11));
    net.run_for(Duration::from_secs(10));
    assert!(!net.auth.roster().entries[&id].up);
    assert!(net.events.contains(&AuthorityEvent::Down { id }));
}

#[test]
fn nothing_is_published_before_it_is_stored_and_restore_continues() {
    let mut net = Net::new(Authority::new(config(true)));
    net.auto_store = false;
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.auth.roster().version, 0);
    let first = net.written[0].id;
    net.auth.stored(net.now, first);
    assert_eq!(net.auth.roster().version, 1);
    net.auto_store = true;
    admitted(&net.member(11, addr(11), SECRET));
    net.run_for(Duration::from_millis(300));
    let epoch = net.auth.roster().epoch;
    let version = net.auth.roster().version;
    assert_eq!(version, 2);
    // Apply the written batches to a map, as a driver's store would.
    let mut db: BTreeMap<(StoreTable, Vec<u8>), Vec<u8>> = BTreeMap::new();
    for b in &net.written {
        for op in &b.ops {
            match op {
                StoreOp::Put { table, key, value } => {
                    db.insert((*table, key.clone()), value.clone());
                }
                StoreOp::Delete { table, key } => {
                    db.remove(&(*table, key.clone()));
                }
            }
        }
    }
    let records = db.iter().map(|((t, k), v)| StoredRecord {
        table: *t,
        key: k,
        value: v,
    });
    let restored = Authority::restore(config(true), records).unwrap();
    assert_eq!(
        (restored.roster().epoch, restored.roster().version),
        (epoch, version)
    );
    assert_eq!(restored.roster().entries.len(), 1);
    // A fresh store is a fresh epoch.
    let fresh = Authority::restore(config(true), core::iter::empty()).unwrap();
    assert_ne!(fresh.roster.epoch, 0);
    // A bad record is named.
    let bad = [StoredRecord {
        table: StoreTable::Meta,
        key: b"epoch",
        value: &[1, 2],
    }];
    assert_eq!(
        Authority::restore(config(true), bad).err(),
        Some(RestoreError::BadRecord {
            table: StoreTable::Meta,
            key: "65706f6368".to_string()
        })
    );
    let id = MemberId::of(keys(11).public());
    let member = db[&(StoreTable::Members, id.0 .0.to_vec())].clone();
    let orphan = [StoredRecord {
        table: StoreTable::Members,
        key: &id.0 .0,
        value: &member,
    }];
    assert_eq!(
        Authority::restore(config(true), orphan).err(),
        Some(RestoreError::MissingMeta)
    );
}

/// The spoofing property of `docs/PROTOCOL.md` §15: an attacker that sends anything from any
/// address, P's included, without P's secret or ours, cannot get P refused or locked out, nor
/// close its session: (i) handshakes under its own keys from P's address, (iii) garbage and
/// replays of P's datagrams from P's address, (iv) failed proofs under its own keys; all
/// while P reboots and rejoins.
#[test]
fn an_attacker_spoofing_a_member_cannot_lock_it_out_or_close_it() {
    let mut net = Net::new(Authority::new(config(false)));
    let p = addr(11);
    let (id, _) = admitted(&net.member(11, p, SECRET));
    net.run_for(Duration::from_millis(200));
    let mut junk = 0xdead_beef_u64;
    for round in 0..6u8 {
        // (i) an attacker key handshaking (and failing proofs) from P's address.
        let attacker = SocketAddr::from(([10, 0, 1, round], 6000));
        net.add(40 + round, attacker);
        net.spoof.insert(attacker, p);
        net.run_for(Duration::from_millis(50));
        // (iv) failing proofs under fresh keys of its own, at its own addresses.
        let own = SocketAddr::from(([10, 0, 2, round], 6000));
        net.member(60 + round, own, b"guess guess guess guess");
        net.member(60 + round, own, b"guess guess guess guess");
        // (iii) garbage and replays of everything P sent, from P's address.
        let replays: Vec<Vec<u8>> = net
            .seen
            .iter()
            .filter(|(from, _)| *from == p)
            .map(|(_, d)| d.clone())
            .collect();
        for d in replays {
            net.inject(p, &d);
            let mut g = d.clone();
            junk = junk.wrapping_mul(6364136223846793005).wrapping_add(1);
            let at = (junk as usize) % g.len();
            g[at] ^= 0x40;
            net.inject(p, &g);
        }
        net.inject(p, b"not a datagram at all");
        // P reboots (at its address, a fresh ephemeral) every other round and rejoins.
        if round % 2 == 1 {
            // After a second, so that the replays above have not spent the per-source reply
            // budget of P's address: that flood, (ii), is property (c)'s own test.
            net.run_for(Duration::from_millis(1100));
            net.add(11, p);
            net.run_for(Duration::from_millis(50));
        }
        let a = net.join(11, p, SECRET);
        assert_eq!(admitted(&a).0, id, "round {round}");
        net.run_for(Duration::from_secs(2));
    }
    assert!(!net
        .events
        .iter()
        .any(|e| matches!(e, AuthorityEvent::Refused { id: i, .. } | AuthorityEvent::LockedOut { id: i, .. } if *i == id)));
    assert!(net
        .auth
        .lockouts
        .locked(net.now, &keys(11).public().to_bytes())
        .is_none());
    assert!(net
        .auth
        .lockouts
        .record(net.now, &keys(11).public().to_bytes())
        .is_none());
    // The attacker's own keys did fail (the test exercised the lockout path).
    assert!(net.auth.authority_stats().refused[&JoinRefusal::BadProof] >= 12);
    assert!(net.auth.roster().entries[&id].up);
    // P's session was never closed by the authority.
    assert!(!net.client_events[&p]
        .iter()
        .any(|e| matches!(e, ClientEvent::Disconnected { .. })));
}
