//! Authority and member hosts (issue 16): a fleet's [`Authority`] and its [`Member`]s on
//! turmoil, each a real `proto` role on one UDP socket, driven by the one driving contract
//! (`handle_datagram`, `handle_timeout`, drain `poll_transmit` and `poll_event`, sleep until
//! `poll_timeout`).
//!
//! The authority host is also its role's store driver: it writes every
//! [`StoreBatch`](pavillion_proto::endpoint::StoreBatch) into an in-memory record store
//! (applying its ops in order, as one transaction, since nothing else runs meanwhile) and only
//! then confirms it with [`Authority::stored`]. The store belongs to the host, not to the
//! incarnation: a crashed and bounced authority starts with [`Authority::restore`] from what
//! it stored, as a process that restarts on its disk does.
//!
//! Neither role implements `proto`'s `Endpoint` trait (their events are their own), so they
//! have their own [`RoleScript`]; its [`Ctl`] is the one every host uses. Their events go into
//! the trace as notes (their `Debug` form), so they count in the digest.
//!
//! Several members may share one turmoil host ([`Simulation::add_members`]), each on its own
//! port: turmoil's cost per step grows quickly with its hosts, and a fleet is many peers.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use core::cell::{Cell, RefCell};
use core::net::{Ipv4Addr, SocketAddr};

use pavillion_proto::endpoint::{
    Authority, AuthorityConfig, AuthorityEvent, AuthorityStats, Member, MemberConfig, MemberEvent,
    RosterStats, Stats, StoreOp, StoreTable, StoredRecord, Transmit,
};
use pavillion_proto::keylog::SessionSecret;
use pavillion_proto::{wire, Duration, Instant};
use turmoil::net::UdpSocket;

use crate::host::{next_wait, sleep_for, Ctl, HostScript};
use crate::net::{derive_seed, now, Shared, Wire};
use crate::relay::unwrap_from;
use crate::sim::Simulation;
use crate::tap;
use crate::SimError;

/// The port authority hosts listen on unless their spec says otherwise (`pav authority`'s
/// default).
pub const AUTHORITY_PORT: u16 = 1790;
/// The port member hosts bind unless their spec says otherwise. Fixed, so that a rebooted
/// member comes back at the same address.
pub const MEMBER_PORT: u16 = 1790;

/// An authority's stored records: (table, key) → value.
pub type Records = BTreeMap<(StoreTable, Vec<u8>), Vec<u8>>;

/// The counters and stores of the fleet's hosts, kept across their incarnations.
#[derive(Debug, Default)]
pub struct FleetCounters {
    /// Each authority host's counters, one entry per incarnation.
    authority: BTreeMap<Rc<str>, Vec<AuthorityStats>>,
    /// Each member's roster counters, one entry per incarnation.
    roster: BTreeMap<Rc<str>, Vec<RosterStats>>,
    /// Each authority host's store: what survives its crashes.
    stores: BTreeMap<Rc<str>, Records>,
}

/// Puts `value` in slot `i` of `all`, growing it as needed.
fn set_slot<T: Clone + Default>(all: &mut Vec<T>, i: u32, value: &T) {
    let i = i as usize;
    if all.len() <= i {
        all.resize(i + 1, T::default());
    }
    if let Some(slot) = all.get_mut(i) {
        slot.clone_from(value);
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for pavillion_proto::endpoint::Authority {}
    impl Sealed for pavillion_proto::endpoint::Member {}
}

/// A fleet role a host can run: [`Authority`] or [`Member`]. Sealed; it exists so that both
/// share one driver and one script type.
pub trait FleetRole: sealed::Sealed + 'static {
    /// What the role tells its driver.
    type Event: Clone + core::fmt::Debug + serde::Serialize;
    /// `authority` or `member`, as a decoded trace names the role of its events.
    #[doc(hidden)]
    const ROLE: &'static str;

    #[doc(hidden)]
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]);
    #[doc(hidden)]
    fn handle_timeout(&mut self, now: Instant);
    #[doc(hidden)]
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;
    #[doc(hidden)]
    fn poll_event(&mut self) -> Option<Self::Event>;
    #[doc(hidden)]
    fn poll_timeout(&self) -> Option<Instant>;
    #[doc(hidden)]
    fn stats(&self) -> &Stats;
    #[doc(hidden)]
    fn set_key_log(&mut self, on: bool);
    #[doc(hidden)]
    fn poll_secret(&mut self) -> Option<SessionSecret>;
    /// Writes what the role wants stored into `store` and confirms it; whether there was
    /// anything.
    #[doc(hidden)]
    fn write_store(&mut self, _now: Instant, _store: &mut Records) -> bool {
        false
    }
    /// Copies the role's own counters into `fleet`.
    #[doc(hidden)]
    fn record(&self, fleet: &mut FleetCounters, host: &Rc<str>, incarnation: u32);
}

impl FleetRole for Authority {
    type Event = AuthorityEvent;
    const ROLE: &'static str = "authority";

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        Authority::handle_datagram(self, now, from, datagram)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Authority::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        Authority::poll_transmit(self, now, buf)
    }
    fn poll_event(&mut self) -> Option<AuthorityEvent> {
        Authority::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Authority::poll_timeout(self)
    }
    fn stats(&self) -> &Stats {
        Authority::stats(self)
    }
    fn set_key_log(&mut self, on: bool) {
        Authority::set_key_log(self, on)
    }
    fn poll_secret(&mut self) -> Option<SessionSecret> {
        Authority::poll_secret(self)
    }
    fn write_store(&mut self, now: Instant, store: &mut Records) -> bool {
        let mut any = false;
        while let Some(batch) = self.poll_store() {
            any = true;
            for op in batch.ops {
                match op {
                    StoreOp::Put { table, key, value } => {
                        store.insert((table, key), value);
                    }
                    StoreOp::Delete { table, key } => {
                        store.remove(&(table, key));
                    }
                }
            }
            self.stored(now, batch.id);
        }
        any
    }
    fn record(&self, fleet: &mut FleetCounters, host: &Rc<str>, incarnation: u32) {
        let all = fleet.authority.entry(host.clone()).or_default();
        set_slot(all, incarnation, self.authority_stats());
    }
}

impl FleetRole for Member {
    type Event = MemberEvent;
    const ROLE: &'static str = "member";

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        Member::handle_datagram(self, now, from, datagram)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Member::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        Member::poll_transmit(self, now, buf)
    }
    fn poll_event(&mut self) -> Option<MemberEvent> {
        Member::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Member::poll_timeout(self)
    }
    fn stats(&self) -> &Stats {
        Member::stats(self)
    }
    fn set_key_log(&mut self, on: bool) {
        Member::set_key_log(self, on)
    }
    fn poll_secret(&mut self) -> Option<SessionSecret> {
        Member::poll_secret(self)
    }
    fn record(&self, fleet: &mut FleetCounters, host: &Rc<str>, incarnation: u32) {
        let all = fleet.roster.entry(host.clone()).or_default();
        set_slot(all, incarnation, self.roster_stats());
    }
}

/// What an authority or member host's application does ([`HostScript`], as [`crate::Script`]
/// for the other roles): commands at chosen simulated times, a hook at every (re)start (to
/// register the functions a member's server answers, which a rebooted member has forgotten),
/// a reaction to every event. It outlives reboots: a command runs at most once, and commands
/// that fall due while the host is down are skipped.
///
/// # Examples
/// ```
/// use core::time::Duration;
/// use pavillion_proto::endpoint::Member;
/// use pavillion_sim::RoleScript;
///
/// let script: RoleScript<Member> = RoleScript::new()
///     .at(Duration::from_secs(1), |ctl| ctl.note("one second"))
///     .on_event(|ctl, event| ctl.note(format!("{event:?}")));
/// assert_eq!(script.len(), 1);
/// ```
pub type RoleScript<E> = HostScript<E, <E as FleetRole>::Event>;

/// The script of an authority host.
pub type AuthorityScript = RoleScript<Authority>;
/// The script of a member host.
pub type MemberScript = RoleScript<Member>;
/// The handle an authority host's script gets.
pub type AuthorityCtl<'a> = Ctl<'a, Authority>;
/// The handle a member host's script gets.
pub type MemberCtl<'a> = Ctl<'a, Member>;

/// A script with its progress, shared by the incarnations of one host.
struct Run<E: FleetRole> {
    script: RoleScript<E>,
    next: usize,
}

impl<E: FleetRole> Run<E> {
    fn next_at(&self) -> Option<Instant> {
        self.script.step_at(self.next)
    }
}

/// An authority host: the role's configuration and its port.
#[derive(Clone, Debug)]
pub struct AuthoritySpec {
    /// The authority's configuration. Its `seed` is replaced by one derived from the
    /// simulation seed, the host name and the restart count. With `durable`, the host keeps
    /// its records and a restart restores from them; without, a restart is a new epoch.
    pub config: AuthorityConfig,
    /// The port it listens on.
    pub port: u16,
}

impl AuthoritySpec {
    /// An authority on [`AUTHORITY_PORT`].
    pub fn new(config: AuthorityConfig) -> Self {
        AuthoritySpec {
            config,
            port: AUTHORITY_PORT,
        }
    }
}

/// A member host: the role's configuration and its port.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    /// The member's configuration (its `authority` names the authority host's address, as
    /// [`Simulation::add_authority`] returned it). Its `seed` is replaced by one derived from
    /// the simulation seed, the member's name and the restart count; its keys stay, so a
    /// rebooted member keeps its identity.
    pub config: MemberConfig,
    /// The port it binds.
    pub port: u16,
    /// When its software first starts (from the start of the simulation), so that a fleet
    /// can come up over time instead of all at once; a reboot starts it at once.
    pub start: Duration,
}

impl MemberSpec {
    /// A member on [`MEMBER_PORT`], started with the simulation.
    pub fn new(config: MemberConfig) -> Self {
        MemberSpec {
            config,
            port: MEMBER_PORT,
            start: Duration::ZERO,
        }
    }

    /// The same member, first started at `start`.
    pub fn starting_at(mut self, start: Duration) -> Self {
        self.start = start;
        self
    }

    /// The same member on `port` (members sharing a host need one port each).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// The long-lived parts of a fleet host's task.
struct Ctx<E: FleetRole> {
    host: Rc<str>,
    node: Rc<str>,
    world: Shared,
    script: Rc<RefCell<Run<E>>>,
    port: u16,
    incarnation: u32,
}

impl Simulation {
    /// Adds an authority host (see [`AuthoritySpec`]) run by `script`. Returns its address,
    /// for the members' configurations.
    ///
    /// # Errors
    /// [`SimError::DuplicateHost`] if the name is taken.
    pub fn add_authority(
        &mut self,
        name: &str,
        spec: AuthoritySpec,
        script: AuthorityScript,
    ) -> Result<SocketAddr, SimError> {
        self.claim(name)?;
        let host: Rc<str> = name.into();
        let world = self.world.clone();
        let script = Rc::new(RefCell::new(Run { script, next: 0 }));
        let incarnation = Rc::new(Cell::new(0u32));
        let base = self.config.seed;
        let port = spec.port;
        self.sim.host(name, move || {
            let n = incarnation.get();
            incarnation.set(n.wrapping_add(1));
            let mut config = spec.config.clone();
            config.seed = derive_seed(base, &host, n, "endpoint");
            let ctx = Ctx {
                host: host.clone(),
                node: host.clone(),
                world: world.clone(),
                script: script.clone(),
                port,
                incarnation: n,
            };
            async move {
                let authority = start_authority(config, &ctx)?;
                drive(authority, ctx).await
            }
        });
        let addr = SocketAddr::new(self.sim.lookup(name), port);
        self.register(name, crate::HostRole::Authority, vec![addr]);
        Ok(addr)
    }

    /// Adds a member host (see [`MemberSpec`]) run by `script`. Returns its address.
    ///
    /// # Errors
    /// [`SimError::DuplicateHost`] if the name is taken.
    pub fn add_member(
        &mut self,
        name: &str,
        spec: MemberSpec,
        script: MemberScript,
    ) -> Result<SocketAddr, SimError> {
        self.claim(name)?;
        let addr = SocketAddr::new(self.sim.lookup(name), spec.port);
        self.register(name, crate::HostRole::Member, vec![addr]);
        self.host_members(name, vec![(name.to_owned(), spec, script)]);
        Ok(addr)
    }

    /// Adds one host that runs a member for each entry of `members`: a name, a spec whose
    /// port differs from the others', a script. Each appears under its own name in the trace
    /// and the stats, with RNGs seeded from that name, as if it had a host of its own;
    /// network actions apply to the host, so to all of them at once. Returns their addresses.
    ///
    /// # Errors
    /// [`SimError::DuplicateHost`] if the host's name or a member's name is taken.
    pub fn add_members(
        &mut self,
        host: &str,
        members: Vec<(String, MemberSpec, MemberScript)>,
    ) -> Result<Vec<SocketAddr>, SimError> {
        for (name, _, _) in &members {
            if name == host || self.hosts.contains(name) || self.shared_names.contains(name) {
                return Err(SimError::DuplicateHost(name.clone()));
            }
        }
        self.claim(host)?;
        self.shared_names
            .extend(members.iter().map(|(n, _, _)| n.clone()));
        let ip = self.sim.lookup(host);
        let addrs: Vec<SocketAddr> = members
            .iter()
            .map(|(_, spec, _)| SocketAddr::new(ip, spec.port))
            .collect();
        for ((name, _, _), addr) in members.iter().zip(&addrs) {
            self.register(name, crate::HostRole::Member, vec![*addr]);
        }
        self.host_members(host, members);
        Ok(addrs)
    }

    fn host_members(&mut self, node: &str, members: Vec<(String, MemberSpec, MemberScript)>) {
        let parts: Vec<(Rc<str>, MemberSpec, _)> = members
            .into_iter()
            .map(|(name, spec, script)| {
                let run = Rc::new(RefCell::new(Run { script, next: 0 }));
                (Rc::from(name.as_str()), spec, run)
            })
            .collect();
        let node: Rc<str> = node.into();
        let world = self.world.clone();
        let incarnation = Rc::new(Cell::new(0u32));
        let base = self.config.seed;
        self.sim.host(&*node.clone(), move || {
            let n = incarnation.get();
            incarnation.set(n.wrapping_add(1));
            let drivers: Vec<_> = parts
                .iter()
                .map(|(name, spec, script)| {
                    let mut config = spec.config.clone();
                    config.seed = derive_seed(base, name, n, "endpoint");
                    let ctx = Ctx {
                        host: name.clone(),
                        node: node.clone(),
                        world: world.clone(),
                        script: script.clone(),
                        port: spec.port,
                        incarnation: n,
                    };
                    let start = Instant::ZERO + spec.start;
                    async move {
                        let wait = start.saturating_duration_since(now());
                        if ctx.incarnation == 0 && wait > Duration::ZERO {
                            tokio::time::sleep(wait).await;
                        }
                        drive(Member::new(config), ctx).await
                    }
                })
                .collect();
            async move {
                let tasks: Vec<_> = drivers.into_iter().map(tokio::task::spawn_local).collect();
                for task in tasks {
                    task.await??;
                }
                Ok(())
            }
        });
    }

    /// The counters of authority host `host`, one entry per incarnation.
    pub fn authority_stats(&self, host: &str) -> Vec<AuthorityStats> {
        let w = self.world.borrow();
        w.fleet.authority.get(host).cloned().unwrap_or_default()
    }

    /// The roster counters of member `name`, one entry per incarnation.
    pub fn roster_stats(&self, name: &str) -> Vec<RosterStats> {
        let w = self.world.borrow();
        w.fleet.roster.get(name).cloned().unwrap_or_default()
    }

    /// What authority host `host` has stored so far.
    pub fn authority_records(&self, host: &str) -> Records {
        let w = self.world.borrow();
        w.fleet.stores.get(host).cloned().unwrap_or_default()
    }
}

/// The authority of one incarnation: restored from the host's records if it keeps them.
fn start_authority(config: AuthorityConfig, ctx: &Ctx<Authority>) -> turmoil::Result<Authority> {
    if !config.durable {
        return Ok(Authority::new(config));
    }
    let w = ctx.world.borrow();
    let empty = Records::new();
    let store = w.fleet.stores.get(&ctx.host).unwrap_or(&empty);
    let records = store.iter().map(|((table, key), value)| StoredRecord {
        table: *table,
        key,
        value,
    });
    Authority::restore(config, records).map_err(|e| format!("restore: {e:?}").into())
}

/// Runs one incarnation of a fleet host until it is crashed.
async fn drive<E: FleetRole>(mut ep: E, ctx: Ctx<E>) -> turmoil::Result {
    let sock = Rc::new(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, ctx.port)).await?);
    let local = SocketAddr::new(turmoil::lookup(&*ctx.node), ctx.port);
    let mut wire = Wire::new(ctx.host.clone(), ctx.incarnation, ctx.world.clone());
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    // One byte more than any valid datagram, so that an oversized one reaches the role still
    // oversized instead of silently truncated to a valid length.
    let mut rbuf = vec![0u8; wire::MAX_DATAGRAM + 1];

    let start = now();
    ctx.world
        .borrow_mut()
        .note(start, &ctx.host, format!("start {}", ctx.incarnation));
    if crate::tap::key_log(&ctx.world) {
        ep.set_key_log(true);
    }
    ep.handle_timeout(start);
    {
        let mut run = ctx.script.borrow_mut();
        while run.next_at().is_some_and(|t| t < start) {
            run.next += 1;
        }
        if let Some(f) = run.script.on_start_mut() {
            f(&mut Ctl {
                now: start,
                host: &ctx.host,
                endpoint: &mut ep,
                world: &ctx.world,
                later: None,
            });
        }
    }

    let mut spins = 0u32;
    loop {
        run_due(&mut ep, &ctx);
        pump(&mut ep, &ctx, &mut wire, &sock, local, &mut buf);
        {
            let mut w = ctx.world.borrow_mut();
            w.set_stats(&ctx.host, ctx.incarnation, ep.stats());
            ep.record(&mut w.fleet, &ctx.host, ctx.incarnation);
        }
        let wait = next_wait(
            [ep.poll_timeout(), ctx.script.borrow().next_at()],
            &mut spins,
        );
        tokio::select! {
            biased;
            r = sock.recv_from(&mut rbuf) => {
                if let Ok((n, from)) = r {
                    let data = rbuf.get(..n).unwrap_or_default();
                    for (source, bytes) in unwrap_from(&ctx.world, from, data) {
                        let before = tap::before(&ctx.world, || tap::drops(ep.stats()));
                        ep.handle_datagram(now(), source, bytes);
                        let after = || tap::drops(ep.stats());
                        tap::received(&ctx.world, &ctx.host, source, local, bytes, before, after);
                    }
                }
            }
            _ = sleep_for(wait) => ep.handle_timeout(now()),
        }
    }
}

/// Runs the script's commands that are due.
fn run_due<E: FleetRole>(ep: &mut E, ctx: &Ctx<E>) {
    let mut run = ctx.script.borrow_mut();
    let run = &mut *run;
    run.script
        .run_due(&mut run.next, ep, &ctx.host, &ctx.world, None);
}

/// Drains transmits, store batches and events until the role has nothing more to say; an
/// application reacting to an event may queue more.
fn pump<E: FleetRole>(
    ep: &mut E,
    ctx: &Ctx<E>,
    wire: &mut Wire,
    sock: &Rc<UdpSocket>,
    local: SocketAddr,
    buf: &mut [u8],
) {
    loop {
        let t = now();
        let mut busy = false;
        tap::secrets(&ctx.world, || ep.poll_secret());
        while let Some(tx) = ep.poll_transmit(t, buf) {
            busy = true;
            if let Some(bytes) = buf.get(..tx.len) {
                wire.send(sock, local, t, tx.destination, bytes);
            }
        }
        {
            // Written before it is confirmed, and confirmed before anything else runs: a
            // crash can only come between two steps, so a batch is stored whole or not at all.
            let mut w = ctx.world.borrow_mut();
            let store = w.fleet.stores.entry(ctx.host.clone()).or_default();
            busy |= ep.write_store(t, store);
        }
        while let Some(event) = ep.poll_event() {
            busy = true;
            ctx.world
                .borrow_mut()
                .note(t, &ctx.host, format!("event {event:?}"));
            tap::role_event(&ctx.world, &ctx.host, t, E::ROLE, &event);
            let mut run = ctx.script.borrow_mut();
            if let Some(f) = run.script.on_event_mut() {
                f(
                    &mut Ctl {
                        now: t,
                        host: &ctx.host,
                        endpoint: ep,
                        world: &ctx.world,
                        later: None,
                    },
                    event,
                );
            }
        }
        if !busy {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use pavillion_proto::crypto::ecc::KeyPair;
    use pavillion_proto::endpoint::{Enrolment, JoinCredential, Policy};

    use super::*;
    use crate::{NetAction, SimConfig};

    const SECRET: &[u8] = b"a passphrase of at least 16 characters";

    /// An authority that stores its records and two members on one host, enrolled by the
    /// secret; the authority crashes at 3 s and is back at 5 s.
    /// Every member event, with its time and member.
    type Seen = Rc<RefCell<Vec<(Instant, String, MemberEvent)>>>;

    fn fleet() -> (Simulation, Seen) {
        let mut sim =
            Simulation::new(SimConfig::new(3).with_duration(Duration::from_secs(9))).unwrap();
        let ka = KeyPair::from_secret_bytes([0x31; 32]);
        let mut policy = Policy {
            max_peers: 8,
            ..Policy::default()
        };
        policy.enrolments.push(Enrolment {
            key: Enrolment::key_of(SECRET),
            role: None,
        });
        let mut config = AuthorityConfig::new(ka.clone(), policy, [0; 32]);
        config.durable = true;
        let addr = sim
            .add_authority("authority", AuthoritySpec::new(config), RoleScript::new())
            .unwrap();
        let seen: Seen = Rc::default();
        let members = (0..2u8)
            .map(|i| {
                let keys = KeyPair::from_secret_bytes([0x40 + i; 32]);
                let credential = JoinCredential::Enrolment(Enrolment::key_of(SECRET));
                let config = MemberConfig::new(keys, addr, *ka.public(), credential, [0; 32]);
                let name = format!("m{i}");
                let seen = seen.clone();
                let n = name.clone();
                let script = MemberScript::new()
                    .on_event(move |ctl, e| seen.borrow_mut().push((ctl.now(), n.clone(), e)));
                let spec = MemberSpec::new(config).with_port(MEMBER_PORT + u16::from(i));
                (name, spec, script)
            })
            .collect();
        sim.add_members("fleet", members).unwrap();
        sim.at(
            core::time::Duration::from_secs(3),
            NetAction::Crash("authority".into()),
        );
        sim.at(
            core::time::Duration::from_secs(5),
            NetAction::Bounce("authority".into()),
        );
        (sim, seen)
    }

    /// Both members join and hold a roster of both; the authority stores records, comes
    /// back restored from them (its counters start afresh, a second incarnation), and the
    /// versions members apply keep growing: no reset.
    #[test]
    fn members_join_and_the_authority_comes_back_from_its_records() {
        let (mut sim, seen) = fleet();
        sim.run().unwrap();
        let seen = seen.borrow();
        for m in ["m0", "m1"] {
            assert!(seen
                .iter()
                .any(|(_, n, e)| n == m && matches!(e, MemberEvent::Joined { .. })));
            let versions: Vec<u64> = seen
                .iter()
                .filter_map(|(_, n, e)| match e {
                    MemberEvent::Roster { version, update } if n == m => {
                        assert!(!update.reset, "{m} applied a reset");
                        Some(*version)
                    }
                    _ => None,
                })
                .collect();
            assert!(!versions.is_empty(), "{m} applied no roster");
            assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
            assert_eq!(sim.roster_stats(m).len(), 1);
        }
        assert_eq!(sim.authority_stats("authority").len(), 2);
        let records = sim.authority_records("authority");
        let members = records
            .keys()
            .filter(|(t, _)| *t == StoreTable::Members)
            .count();
        assert_eq!(members, 2, "{records:?}");
    }
}
