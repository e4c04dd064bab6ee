//! The authority (issue 16) over the simulated network: one authority host admits a fleet of
//! member hosts, publishes their signed roster, locks out credentials that fail, revokes, and
//! goes down and comes back from its stored records; members talk to each other directly.
//!
//! Every row records the events of the authority and of each member (with the member's
//! incarnation) and the roster each one holds at the end, and asserts its property on them.
//! Links lose a few percent of datagrams, so joins, publications and calls go through retries.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use core::cell::RefCell;
use core::net::SocketAddr;
use core::time::Duration;

use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
use pavillion_proto::endpoint::{
    AuthorityConfig, AuthorityEvent, AuthorityLimits, Client, ClientConfig, ClientEvent, Enrolment,
    JoinCredential, ListedPeer, MemberConfig, MemberEvent, MemberLimits, Policy, ServerEvent,
};
use pavillion_proto::features::authority::{MemberId, Roster};
use pavillion_proto::wire::authority::JoinRefusal;
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::{FunctionId, Instant};
use pavillion_sim::{
    Attack, AuthorityScript, AuthoritySpec, LinkFaults, MemberScript, MemberSpec, MiddleboxConfig,
    NetAction, MEMBER_PORT,
};

use crate::harness::{ms, secs, Harness};
use crate::outcome::Outcome;
use crate::Params;

/// The authority host.
const AUTHORITY: &str = "authority";
/// The fleet's enrolment secret.
const SECRET: &[u8] = b"the fleet's enrolment passphrase";
/// The function every member's server answers (an echo), for calls between members.
const PING: FunctionId = FunctionId(7);

/// The authority's fixed key.
fn authority_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x5a; 32])
}

/// The fixed key of member `i` (a fleet's identities do not depend on the seed). The index
/// sits in bytes 8..16: X25519 clamps the low bits of byte 0 and the high bits of byte 31, so
/// indices written there would give several members one key.
fn member_keys(i: usize) -> KeyPair {
    let mut secret = [0x61; 32];
    secret[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    KeyPair::from_secret_bytes(secret)
}

/// The fixed key of attacker key `i`.
fn attacker_keys(i: usize) -> KeyPair {
    let mut secret = [0x0a; 32];
    secret[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    KeyPair::from_secret_bytes(secret)
}

fn member_name(i: usize) -> String {
    format!("member-{i:02}")
}

/// A member event as the log keeps it: when, in which incarnation of the member.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    incarnation: u32,
    event: MemberEvent,
}

/// What the fleet's hosts reported.
#[derive(Debug, Default)]
struct FleetLog {
    authority: Vec<(Instant, AuthorityEvent)>,
    members: BTreeMap<String, Vec<Seen>>,
    /// Starts of each member so far (its current incarnation is this minus one).
    starts: BTreeMap<String, u32>,
    /// The roster each host held at the end of the run (absent: it was down).
    finals: BTreeMap<String, Roster>,
    /// Calls between members: made, answered, failed (each by caller).
    calls: BTreeMap<String, Calls>,
}

/// One member's calls to the others.
#[derive(Clone, Debug, Default)]
struct Calls {
    /// When each call pending was made, by incarnation, callee and call id (ids are per
    /// callee's session).
    made: BTreeMap<(u32, MemberId, u64), Instant>,
    /// (made at, answered at, callee).
    answered: Vec<(Instant, Instant, MemberId)>,
    /// (made at, failed at, callee).
    failed: Vec<(Instant, Instant, MemberId)>,
}

type Log = Rc<RefCell<FleetLog>>;

impl FleetLog {
    fn events(&self, name: &str) -> &[Seen] {
        self.members
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// One authority and its members on a [`Harness`].
struct Fleet {
    h: Harness,
    log: Log,
    addr: SocketAddr,
    duration: Duration,
    /// Member names with their ids.
    ids: BTreeMap<String, MemberId>,
}

impl Fleet {
    /// An authority with `policy` and `limits` (`durable`: it stores its records, and a
    /// restart restores from them), on links with `loss` each way.
    fn new(
        p: &Params,
        duration: Duration,
        loss: f64,
        policy: Policy,
        limits: AuthorityLimits,
        durable: bool,
        extra: impl FnOnce(AuthorityScript, Log) -> AuthorityScript,
    ) -> Self {
        let mut h = Harness::new(p, duration, LinkFaults::clean().with_loss(loss));
        let log: Log = Rc::default();
        let mut config = AuthorityConfig::new(authority_keys(), policy, [0; 32]);
        config.limits = limits;
        config.durable = durable;
        let (l1, l2) = (log.clone(), log.clone());
        let end = duration - ms(1);
        let script = AuthorityScript::new()
            .on_event(move |ctl, e| l1.borrow_mut().authority.push((ctl.now(), e)))
            .at(end, move |ctl| {
                let roster = ctl.endpoint().roster().clone();
                l2.borrow_mut().finals.insert(AUTHORITY.into(), roster);
            });
        let script = extra(script, log.clone());
        let addr = match h
            .sim
            .add_authority(AUTHORITY, AuthoritySpec::new(config), script)
        {
            Ok(a) => a,
            Err(e) => {
                h.setup_error(e);
                SocketAddr::from(([0, 0, 0, 0], 0))
            }
        };
        Fleet {
            h,
            log,
            addr,
            duration,
            ids: BTreeMap::new(),
        }
    }

    /// The configuration of a member with `keys` and `credential`.
    fn config(&self, keys: KeyPair, credential: JoinCredential, name: &str) -> MemberConfig {
        let mut c = MemberConfig::new(
            keys,
            self.addr,
            *authority_keys().public(),
            credential,
            [0; 32],
        );
        c.name = name.into();
        c.role = "device".into();
        c
    }

    /// The script of member `name`: it logs its events and its calls, answers `PING`, and
    /// records its roster at the end; `extra` adds commands.
    fn script(&self, name: &str, extra: impl FnOnce(MemberScript) -> MemberScript) -> MemberScript {
        let (l1, l2, l3) = (self.log.clone(), self.log.clone(), self.log.clone());
        let (n1, n2, n3) = (name.to_owned(), name.to_owned(), name.to_owned());
        let script = MemberScript::new()
            .on_start(move |ctl| {
                *l1.borrow_mut().starts.entry(n1.clone()).or_default() += 1;
                ctl.endpoint().server_mut().register_function(PING, "ping");
            })
            .on_event(move |ctl, event| {
                let now = ctl.now();
                let mut log = l2.borrow_mut();
                let incarnation = log.starts.get(&n2).copied().unwrap_or(1) - 1;
                match &event {
                    MemberEvent::FromPeer {
                        event: ServerEvent::RpcRequest(r),
                        ..
                    } if r.function == PING => {
                        let (call, args) = (r.call, r.args.clone());
                        let _ =
                            ctl.endpoint()
                                .server_mut()
                                .respond(now, call, RpcStatus::OK, &args);
                    }
                    MemberEvent::ToPeer { id: to, event: e } => {
                        let calls = log.calls.entry(n2.clone()).or_default();
                        let (call, ok) = match e {
                            ClientEvent::Answered { call, .. } => (*call, true),
                            ClientEvent::CallFailed { call, .. }
                            | ClientEvent::CallTimedOut { call }
                            | ClientEvent::RemoteError { call, .. } => (*call, false),
                            _ => (pavillion_proto::endpoint::CallId(u64::MAX), false),
                        };
                        if let Some(at) = calls.made.remove(&(incarnation, *to, call.0)) {
                            if ok {
                                calls.answered.push((at, now, *to));
                            } else {
                                calls.failed.push((at, now, *to));
                            }
                        }
                    }
                    _ => {}
                }
                log.members.entry(n2.clone()).or_default().push(Seen {
                    at: now,
                    incarnation,
                    event,
                });
            })
            .at(self.duration - ms(1), move |ctl| {
                let roster = ctl.endpoint().roster().clone();
                l3.borrow_mut().finals.insert(n3.clone(), roster);
            });
        extra(script)
    }

    /// Adds `members` (name, keys, credential, first start, extra commands) on the one host
    /// `host`, each on its own port.
    fn add(&mut self, host: &str, members: Vec<Spec>) {
        let mut all = Vec::new();
        for (k, m) in members.into_iter().enumerate() {
            let mut config = self.config(m.keys.clone(), m.credential, &m.name);
            config.connect_all = m.connect_all;
            config.limits = m.limits;
            let spec = MemberSpec::new(config)
                .with_port(MEMBER_PORT + k as u16)
                .starting_at(m.start);
            let script = self.script(&m.name, m.extra);
            self.ids
                .insert(m.name.clone(), MemberId::of(m.keys.public()));
            all.push((m.name, spec, script));
        }
        let r = match all.pop() {
            // A member alone on a host of its name.
            Some((name, spec, script)) if all.is_empty() && name == host => {
                self.h.sim.add_member(host, spec, script).map(|_| ())
            }
            Some(last) => {
                all.push(last);
                self.h.sim.add_members(host, all).map(|_| ())
            }
            None => Ok(()),
        };
        if let Err(e) = r {
            self.h.setup_error(e);
        }
    }

    fn id(&self, name: &str) -> MemberId {
        self.ids
            .get(name)
            .copied()
            .unwrap_or(MemberId(pavillion_proto::ClientId([0; 16])))
    }

    /// Runs the simulation; the common part of the outcome.
    fn run(&mut self) -> Outcome {
        let mut out = self.h.run(|_| Vec::new());
        out.handshakes = self
            .h
            .sim
            .stats(AUTHORITY)
            .iter()
            .map(|s| s.handshakes)
            .sum();
        out
    }

    /// Fails unless every member of `names`, in every incarnation, applied roster versions in
    /// increasing order and never a reset; returns the largest count of versions applied.
    fn check_versions(&self, out: &mut Outcome, names: &[String]) {
        let log = self.log.borrow();
        for n in names {
            let mut last: BTreeMap<u32, u64> = BTreeMap::new();
            for s in log.events(n) {
                if let MemberEvent::Roster { version, update } = &s.event {
                    let prev = last.insert(s.incarnation, *version);
                    out.check(prev.is_none_or(|p| p < *version), "versions", || {
                        format!("{n} applied version {version} after {prev:?}")
                    });
                    out.check(!update.reset, "reset", || {
                        format!("{n} applied a roster of another epoch at version {version}")
                    });
                }
            }
        }
    }
}

/// One member to add: who, how it joins, when it starts, what else it does.
struct Spec {
    name: String,
    keys: KeyPair,
    credential: JoinCredential,
    start: Duration,
    connect_all: bool,
    limits: MemberLimits,
    extra: Box<dyn FnOnce(MemberScript) -> MemberScript>,
}

impl Spec {
    fn new(name: String, keys: KeyPair, credential: JoinCredential) -> Self {
        Spec {
            name,
            keys,
            credential,
            start: Duration::ZERO,
            connect_all: false,
            limits: MemberLimits::default(),
            extra: Box::new(|s| s),
        }
    }
}

/// A policy with the fleet's enrolment secret (role "sensor") and `listed` keys (role
/// "gateway").
fn policy(listed: &[(PublicKey, String)]) -> Policy {
    Policy {
        enrolments: vec![Enrolment {
            key: Enrolment::key_of(SECRET),
            role: Some("sensor".into()),
        }],
        peers: listed
            .iter()
            .map(|(public, name)| ListedPeer {
                public: *public,
                role: "gateway".into(),
                name: name.clone(),
            })
            .collect(),
        operators: Vec::new(),
        lockout: Default::default(),
        max_peers: 1024,
    }
}

fn enrolled() -> JoinCredential {
    JoinCredential::Enrolment(Enrolment::key_of(SECRET))
}

fn wrong_secret() -> JoinCredential {
    JoinCredential::Enrolment(Enrolment::key_of(b"not the fleet's passphrase at all"))
}

/// The ids the authority admitted, and how often each.
fn admitted(log: &FleetLog) -> BTreeMap<MemberId, u32> {
    let mut m = BTreeMap::new();
    for (_, e) in &log.authority {
        if let AuthorityEvent::Admitted { id, .. } = e {
            *m.entry(*id).or_default() += 1;
        }
    }
    m
}

fn locked(log: &FleetLog) -> BTreeSet<MemberId> {
    log.authority
        .iter()
        .filter_map(|(_, e)| match e {
            AuthorityEvent::LockedOut { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn refusals(log: &FleetLog) -> BTreeMap<JoinRefusal, u64> {
    let mut m = BTreeMap::new();
    for (_, e) in &log.authority {
        if let AuthorityEvent::Refused { reason, .. } = e {
            *m.entry(*reason).or_default() += 1;
        }
    }
    m
}

fn last_published(log: &FleetLog) -> Option<u64> {
    log.authority
        .iter()
        .filter_map(|(_, e)| match e {
            AuthorityEvent::Published { version } => Some(*version),
            _ => None,
        })
        .max()
}

fn secs_f(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// Members of the join row; the first `LISTED` are listed in the policy, the rest enrol.
const JOINERS: usize = 50;
const LISTED: usize = 6;
/// Members per host (turmoil's cost grows quickly with its hosts).
const PER_HOST: usize = 10;

/// 50 members join over 3 s (6 listed in the policy, 44 by the enrolment secret) at 5% loss;
/// an intruder with a wrong secret, restarted every second by its operator, is locked out
/// after `threshold` failed proofs. Asserts: the 50 admitted, the intruder locked and never
/// admitted, every member's roster at the final version with 50 entries, versions applied in
/// increasing order.
pub(crate) fn authority_join(p: &Params) -> Outcome {
    let listed: Vec<(PublicKey, String)> = (0..LISTED)
        .map(|i| (*member_keys(i).public(), format!("gw-{i}")))
        .collect();
    let mut f = Fleet::new(
        p,
        secs(12),
        0.05,
        policy(&listed),
        AuthorityLimits::default(),
        false,
        |s, _| s,
    );
    let names: Vec<String> = (0..JOINERS).map(member_name).collect();
    for (h, chunk) in names.chunks(PER_HOST).enumerate() {
        let specs = chunk
            .iter()
            .map(|n| {
                let i: usize = n.trim_start_matches("member-").parse().unwrap_or(0);
                let credential = if i < LISTED {
                    JoinCredential::Listed
                } else {
                    enrolled()
                };
                let mut s = Spec::new(n.clone(), member_keys(i), credential);
                s.start = ms(200) + ms(60) * i as u32;
                s
            })
            .collect();
        f.add(&format!("fleet-{h}"), specs);
    }
    f.add(
        "intruder",
        vec![Spec::new(
            "intruder".into(),
            attacker_keys(0),
            wrong_secret(),
        )],
    );
    for k in 1..=7u32 {
        f.h.sim
            .at(secs(u64::from(k)), NetAction::Bounce("intruder".into()));
    }
    let mut out = f.run();
    let intruder = f.id("intruder");
    let log = f.log.borrow();
    let admitted = admitted(&log);
    let joined = names
        .iter()
        .filter(|n| admitted.contains_key(&f.id(n)))
        .count();
    out.sent = JOINERS as u64;
    out.delivered = joined as u64;
    out.check(joined == JOINERS, "admitted", || {
        format!("{joined} of {JOINERS} members admitted")
    });
    out.check(!admitted.contains_key(&intruder), "intruder", || {
        "the intruder with a wrong secret was admitted".into()
    });
    let locked = locked(&log);
    out.check(locked.contains(&intruder), "locked", || {
        "the intruder was never locked out".into()
    });
    out.check(locked.len() == 1, "locked", || {
        format!(
            "{} keys locked out, only the intruder's should be",
            locked.len()
        )
    });
    let last = last_published(&log);
    let mut complete = 0;
    for n in &names {
        let r = log.finals.get(n);
        let ok = r.is_some_and(|r| Some(r.version) == last && r.entries.len() == JOINERS);
        if ok {
            complete += 1;
        }
        out.check(ok, "roster", || {
            format!(
                "{n} ends with version {:?} and {:?} entries; the authority published {last:?}",
                r.map(|r| r.version),
                r.map(|r| r.entries.len())
            )
        });
    }
    drop(log);
    f.check_versions(&mut out, &names);
    let log = f.log.borrow();
    let refused: Vec<String> = refusals(&log)
        .iter()
        .map(|(r, n)| format!("{r:?}={n}"))
        .collect();
    let (mut applied, mut fetches, mut gaps) = (0, 0, 0);
    for n in &names {
        for s in f.h.sim.roster_stats(n) {
            applied += s.applied;
            fetches += s.fetches;
            gaps += s.gaps;
        }
    }
    out.notes.push(format!(
        "joins: {joined} of {JOINERS} admitted ({LISTED} listed, {} enrolled); intruder refused {}, locked out {}; final version {}, {complete}/{JOINERS} members hold it with {JOINERS} entries; publications applied {applied}, gaps {gaps}, fetches {fetches}",
        JOINERS - LISTED,
        refused.join(" "),
        locked.contains(&intruder),
        last.unwrap_or(0),
    ));
    out
}

/// How many distinct attacker keys the spoofing adversary's initiations carry.
const SPOOF_KEYS: usize = 4;
/// Attacker keys that fail proofs from the attacker's own address.
const GUESSERS: usize = 3;

/// Handshake initiations toward `authority` under attacker keys `first..first + n`, as the
/// adversary sends them from P's address.
fn initiations(authority: SocketAddr, first: usize, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; pavillion_proto::wire::MAX_DATAGRAM];
    for i in first..first + n {
        let keys = attacker_keys(i);
        let config =
            ClientConfig::noise_guest(keys, *authority_keys().public(), authority, [i as u8; 32]);
        let mut c = Client::new(config);
        let t = Instant::from_millis(1);
        let _ = c.call(t, PING, b"", None);
        c.handle_timeout(t);
        if let Some(tx) = c.poll_transmit(t, &mut buf) {
            out.extend(buf.get(..tx.len).map(<[u8]>::to_vec));
        }
    }
    out
}

/// P reboots at 5 s and 10 s while an adversary holding none of the fleet's keys sends from
/// P's address, from 2 s to 13 s: handshake initiations under its own keys at 1000/s (far
/// beyond the per-source reply budget) and garbage at 1000/s; and, from its own address,
/// failed proofs under `GUESSERS` keys of its own, restarted every second. Asserts: P
/// admitted at each start, never refused or locked out, its authority session never closed
/// within an incarnation; the guessers' keys locked out.
pub(crate) fn authority_spoof(p: &Params) -> Outcome {
    const FLOOD: Duration = secs(2);
    const REBOOTS: [Duration; 2] = [secs(5), secs(10)];
    let mut f = Fleet::new(
        p,
        secs(15),
        0.02,
        policy(&[]),
        AuthorityLimits::default(),
        false,
        |s, _| s,
    );
    let others: Vec<String> = (1..5).map(member_name).collect();
    let specs = others
        .iter()
        .enumerate()
        .map(|(k, n)| {
            let mut s = Spec::new(n.clone(), member_keys(k + 1), enrolled());
            s.start = ms(100) + ms(50) * k as u32;
            s
        })
        .collect();
    f.add("fleet", specs);
    let pname = "member-p".to_owned();
    f.add(
        "member-p",
        vec![Spec::new(pname.clone(), member_keys(0), enrolled())],
    );
    let guessers: Vec<Spec> = (0..GUESSERS)
        .map(|g| {
            Spec::new(
                format!("guesser-{g}"),
                attacker_keys(100 + g),
                JoinCredential::Enrolment([g as u8; 32]),
            )
        })
        .collect();
    f.add("guessers", guessers);
    for k in 1..=7u32 {
        f.h.sim.at(
            FLOOD + secs(u64::from(k)),
            NetAction::Bounce("guessers".into()),
        );
    }
    for at in REBOOTS {
        f.h.sim.at(at, NetAction::Bounce("member-p".into()));
    }
    let p_addr = match f.h.sim.ip("member-p") {
        Ok(ip) => SocketAddr::new(ip, MEMBER_PORT),
        Err(e) => {
            f.h.setup_error(e);
            SocketAddr::from(([0, 0, 0, 0], 0))
        }
    };
    let mut junk = b"PvS3".to_vec();
    junk.extend_from_slice(&[0x5a; 60]);
    let floods = [
        ("spoof-initiations", initiations(f.addr, 0, SPOOF_KEYS), 0),
        ("spoof-garbage", vec![junk, vec![0x01; 148], vec![]], 16),
    ];
    for (name, packets, random_tail) in floods {
        let attack = Attack::SpoofFlood {
            target: f.addr,
            source: Some(p_addr),
            per_second: 1000,
            duration: secs(11),
            packets,
            random_tail,
        };
        let adversary = MiddleboxConfig::adversary(Vec::new()).with_attack(FLOOD, attack);
        if let Err(e) = f.h.sim.add_middlebox(name, adversary) {
            f.h.setup_error(e);
        }
    }
    let mut out = f.run();
    let pid = f.id(&pname);
    let log = f.log.borrow();
    let starts = log.starts.get(&pname).copied().unwrap_or(0);
    let pevents = log.events(&pname);
    let joins: BTreeSet<u32> = pevents
        .iter()
        .filter(|s| matches!(s.event, MemberEvent::Joined { .. }))
        .map(|s| s.incarnation)
        .collect();
    out.sent = u64::from(starts);
    out.delivered = joins.len() as u64;
    out.check(starts == 3 && joins.len() == 3, "rejoin", || {
        format!(
            "P started {starts} times and was admitted in {} of them",
            joins.len()
        )
    });
    let refused = pevents
        .iter()
        .filter(|s| matches!(s.event, MemberEvent::Refused { .. }))
        .count();
    out.check(refused == 0, "refused", || {
        format!("P was refused {refused} times")
    });
    let closed = pevents
        .iter()
        .filter(|s| matches!(s.event, MemberEvent::AuthorityDown))
        .count();
    out.check(closed == 0, "session", || {
        format!("P's authority session went down {closed} times within an incarnation")
    });
    let against_p = log
        .authority
        .iter()
        .filter(|(_, e)| match e {
            AuthorityEvent::Refused { id, .. } | AuthorityEvent::LockedOut { id, .. } => *id == pid,
            _ => false,
        })
        .count();
    out.check(against_p == 0, "lockout", || {
        format!("the authority refused or locked P {against_p} times")
    });
    let admitted = admitted(&log);
    let padmitted = admitted.get(&pid).copied().unwrap_or(0);
    out.check(padmitted >= 3, "admitted", || {
        format!("the authority admitted P {padmitted} times, not at each of its 3 starts")
    });
    let locked = locked(&log);
    let guessers_locked = (0..GUESSERS)
        .filter(|g| locked.contains(&MemberId::of(attacker_keys(100 + g).public())))
        .count();
    out.check(guessers_locked == GUESSERS, "attacker-locked", || {
        format!("{guessers_locked} of {GUESSERS} attacker keys locked out")
    });
    // Time from each start of P to its admission.
    let mut waits = Vec::new();
    let starts_at = [Duration::ZERO, REBOOTS[0], REBOOTS[1]];
    for (inc, at) in starts_at.iter().enumerate() {
        let t = pevents
            .iter()
            .find(|s| s.incarnation == inc as u32 && matches!(s.event, MemberEvent::Joined { .. }))
            .map(|s| s.at.saturating_duration_since(Instant::ZERO + *at));
        waits.push(t.map_or("never".into(), secs_f));
    }
    let drops: u64 =
        f.h.sim
            .stats(AUTHORITY)
            .iter()
            .map(|s| s.drops().map(|(_, n)| n).sum::<u64>())
            .sum();
    out.notes.push(format!(
        "P admitted {} of {starts} starts (after {}), refused 0, session closures 0; attacker keys locked {guessers_locked}/{GUESSERS}; authority drops {drops}",
        joins.len(),
        waits.join(", "),
    ));
    out
}

/// Fast presence: keepalives every second, down after 4 s of silence.
fn quick_limits() -> MemberLimits {
    MemberLimits {
        keepalive: secs(1),
        down_after: secs(4),
        join_retry: ms(500),
        ..MemberLimits::default()
    }
}

/// Members that call each other directly.
const PEERS: usize = 6;

/// Member `i` of a peer-to-peer fleet: connects to every member, calls the next `fanout`
/// members (by index) every `interval` from `from`.
fn calling_member(
    f: &Fleet,
    i: usize,
    n: usize,
    fanout: usize,
    from: Duration,
    interval: Duration,
    count: usize,
) -> Spec {
    let name = member_name(i);
    let mut s = Spec::new(name.clone(), member_keys(i), enrolled());
    s.connect_all = true;
    s.limits = quick_limits();
    s.start = ms(100) + ms(40) * i as u32;
    let callees: Vec<MemberId> = (1..=fanout)
        .map(|d| MemberId::of(member_keys((i + d) % n).public()))
        .collect();
    let log = f.log.clone();
    s.extra = Box::new(move |script| {
        script.repeat(from, interval, count, move |ctl, _| {
            let now = ctl.now();
            for to in &callees {
                let r = ctl.endpoint().call(now, *to, PING, b"ping");
                let mut log = log.borrow_mut();
                let inc = log.starts.get(&name).copied().unwrap_or(1) - 1;
                let calls = log.calls.entry(name.clone()).or_default();
                match r {
                    Ok(call) => {
                        calls.made.insert((inc, *to, call.0), now);
                    }
                    // Refused at once (no session, no address): a failed call too.
                    Err(_) => calls.failed.push((now, now, *to)),
                }
            }
        })
    });
    s
}

/// Six members connect to each other and call each other every 500 ms; at 6 s the authority
/// revokes member 5. Measured: from the revocation until every other member has dropped it
/// (its `PeerRevoked`). Asserts: within 3 s at 5% loss; no member answers a call of the
/// revoked member after it dropped it; the revoked member gets no answer from 1 s after the
/// last drop on.
pub(crate) fn authority_revoke(p: &Params) -> Outcome {
    const REVOKE: Duration = secs(6);
    const BOUND: Duration = secs(3);
    let victim = MemberId::of(member_keys(PEERS - 1).public());
    let mut f = Fleet::new(
        p,
        secs(12),
        0.05,
        policy(&[]),
        AuthorityLimits::default(),
        false,
        move |s, _| {
            s.at(REVOKE, move |ctl| {
                let now = ctl.now();
                let r = ctl.endpoint().revoke(now, victim);
                ctl.note(format!("revoke {victim}: {r:?}"));
            })
        },
    );
    let specs: Vec<Spec> = (0..PEERS)
        .map(|i| calling_member(&f, i, PEERS, PEERS - 1, secs(2), ms(500), 20))
        .collect();
    for (i, s) in specs.into_iter().enumerate() {
        f.add(&format!("host-{i}"), vec![s]);
    }
    let mut out = f.run();
    let log = f.log.borrow();
    let vname = member_name(PEERS - 1);
    let revoked_at = log.authority.iter().find_map(|(at, e)| match e {
        AuthorityEvent::Revoked { id } if *id == victim => Some(*at),
        _ => None,
    });
    out.check(revoked_at.is_some(), "revoked", || {
        "the authority never revoked the member".into()
    });
    let t0 = revoked_at.unwrap_or(Instant::ZERO + REVOKE);
    let mut dropped = Vec::new();
    for i in 0..PEERS - 1 {
        let n = member_name(i);
        let at = log.events(&n).iter().find_map(|s| match s.event {
            MemberEvent::PeerRevoked { id } if id == victim && s.at >= t0 => Some(s.at),
            _ => None,
        });
        out.check(at.is_some(), "dropped", || {
            format!("{n} never dropped the revoked member")
        });
        if let Some(at) = at {
            dropped.push(at);
            // Nothing from the revoked member reaches the application after the drop.
            let late = log
                .events(&n)
                .iter()
                .filter(|s| {
                    s.at > at
                        && matches!(&s.event, MemberEvent::FromPeer { id, .. } if *id == victim)
                })
                .count();
            out.check(late == 0, "refused", || {
                format!("{n} heard the revoked member {late} times after dropping it")
            });
        }
        let still = log
            .finals
            .get(&n)
            .is_some_and(|r| r.entries.contains_key(&victim));
        out.check(!still, "roster", || {
            format!("{n} still lists the revoked member")
        });
    }
    let worst = dropped
        .iter()
        .map(|at| at.saturating_duration_since(t0))
        .max();
    out.check(
        dropped.len() == PEERS - 1 && worst.is_some_and(|w| w <= BOUND),
        "time",
        || format!("every member dropped the revoked one after {worst:?}, bound {BOUND:?}"),
    );
    // The revoked member's calls go unanswered once everyone dropped it (1 s of slack for
    // answers already in flight).
    let after = dropped.iter().max().copied().unwrap_or(t0) + secs(1);
    let vcalls = log.calls.get(&vname).cloned().unwrap_or_default();
    let late_answers = vcalls
        .answered
        .iter()
        .filter(|(made, _, _)| *made > after)
        .count();
    out.check(late_answers == 0, "cut-off", || {
        format!("the revoked member got {late_answers} answers to calls made after every member dropped it")
    });
    // Calls between the members that stay: all answered.
    let (mut answered, mut made_before) = (0usize, 0usize);
    for i in 0..PEERS - 1 {
        if let Some(c) = log.calls.get(&member_name(i)) {
            let ok = c.answered.iter().filter(|x| x.2 != victim).count();
            let failed = c.failed.iter().filter(|x| x.2 != victim).count();
            let pending = c.made.keys().filter(|k| k.1 != victim).count();
            answered += ok;
            made_before += ok + failed + pending;
        }
    }
    out.sent = made_before as u64;
    out.delivered = answered as u64;
    out.check(answered > 0, "calls", || {
        "no call between members was answered".into()
    });
    out.notes.push(format!(
        "revocation: every other member dropped it {} after revoke (bound {}); calls answered {answered}; revoked member's late answers {late_answers}",
        worst.map_or("never".into(), secs_f),
        secs_f(BOUND),
    ));
    out
}

/// Five members call their neighbour every 500 ms; the authority is down from 8 s to 28 s and
/// comes back from its stored records; member 4 dies at 14 s, during the outage. Asserts:
/// calls answered during the outage (> 0, none failed); no member ever applies a lower
/// version or a reset; after the restart the authority publishes above the version it had
/// stored; every live member ends with member 4 down and the others up.
pub(crate) fn authority_reboot(p: &Params) -> Outcome {
    const DOWN: Duration = secs(8);
    const UP: Duration = secs(28);
    const DEAD: Duration = secs(14);
    const N: usize = 5;
    let limits = AuthorityLimits {
        down_after: secs(4),
        ..AuthorityLimits::default()
    };
    let mut f = Fleet::new(p, secs(45), 0.03, policy(&[]), limits, true, |s, _| s);
    let specs: Vec<Spec> = (0..N)
        .map(|i| calling_member(&f, i, N, 1, secs(2), ms(500), 84))
        .collect();
    for (i, s) in specs.into_iter().enumerate() {
        f.add(&format!("host-{i}"), vec![s]);
    }
    f.h.sim.at(DOWN, NetAction::Crash(AUTHORITY.into()));
    f.h.sim.at(UP, NetAction::Bounce(AUTHORITY.into()));
    f.h.sim.at(DEAD, NetAction::Crash("host-4".into()));
    // The version stored when the authority went down.
    let mut out = f.run();
    let names: Vec<String> = (0..N).map(member_name).collect();
    f.check_versions(&mut out, &names);
    let log = f.log.borrow();
    let (down, up) = (Instant::ZERO + DOWN, Instant::ZERO + UP);
    let before = log
        .authority
        .iter()
        .filter(|(at, _)| *at < down)
        .filter_map(|(_, e)| match e {
            AuthorityEvent::Published { version } => Some(*version),
            _ => None,
        })
        .max();
    let after = log
        .authority
        .iter()
        .filter(|(at, _)| *at >= up)
        .filter_map(|(_, e)| match e {
            AuthorityEvent::Published { version } => Some(*version),
            _ => None,
        })
        .min();
    out.check(
        before.is_some() && after.is_some() && after > before,
        "continued",
        || format!("published {before:?} before the outage, then {after:?} after the restart"),
    );
    // Calls made while the authority was down, by the members alive then.
    let (mut during_ok, mut during_failed) = (0usize, 0usize);
    for i in 0..N - 1 {
        // Member 3 calls member 4, which dies during the outage: its calls are not counted.
        if i == N - 2 {
            continue;
        }
        if let Some(c) = log.calls.get(&member_name(i)) {
            during_ok += c
                .answered
                .iter()
                .filter(|(m, _, _)| *m >= down && *m < up)
                .count();
            during_failed += c
                .failed
                .iter()
                .filter(|(m, _, _)| *m >= down && *m < up)
                .count();
        }
    }
    out.sent = (during_ok + during_failed) as u64;
    out.delivered = during_ok as u64;
    out.check(during_ok > 0 && during_failed == 0, "outage-calls", || {
        format!("during the outage {during_ok} calls answered, {during_failed} failed")
    });
    let dead = MemberId::of(member_keys(N - 1).public());
    let mut converged = 0;
    let hosts: Vec<&str> = names
        .iter()
        .take(N - 1)
        .map(String::as_str)
        .chain([AUTHORITY])
        .collect();
    for n in &hosts {
        let r = log.finals.get(*n);
        let ok = r.is_some_and(|r| {
            r.entries.len() == N && r.entries.values().all(|e| e.up == (e.id != dead))
        });
        if ok {
            converged += 1;
        }
        out.check(ok, "presence", || {
            format!(
                "{n} ends with presence {:?}",
                r.map(|r| r
                    .entries
                    .values()
                    .map(|e| (e.name.clone(), e.up))
                    .collect::<Vec<_>>())
            )
        });
    }
    let final_version = log.finals.get(AUTHORITY).map(|r| r.version);
    out.notes.push(format!(
        "outage {}..{}: calls answered {during_ok}, failed {during_failed}; versions: {before:?} before, {after:?} first after restart, {final_version:?} final; presence converged at {converged}/{} hosts",
        secs_f(DOWN),
        secs_f(UP),
        hosts.len(),
    ));
    out
}
