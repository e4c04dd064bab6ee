//! The simulation: hosts on turmoil, a timeline of network actions, and the trace.

use alloc::fmt;
use alloc::rc::Rc;
use core::cell::{Cell, Ref, RefCell};
use core::net::{IpAddr, SocketAddr};
use core::time::Duration as StdDuration;
use std::time::UNIX_EPOCH;

use pavillion_proto::endpoint::{Client, Relay, RelayStats, Server, ServerEvent, Stats};
use pavillion_proto::Instant;

use crate::config::{ConfigError, LinkFaults, SimConfig};
use crate::durable::{DurableRole, DurableRows, InCommit, StoreDriver, StoreSpec, StoreStats};
use crate::host::{drive, ClientSpec, HostCtx, Script, ScriptRun, ServerCtl, ServerSpec};
use crate::middlebox::{self, MiddleboxConfig};
use crate::net::{derive_seed, World};
use crate::relay::{self, EmitFrom, Heard, RelaySpec, Segment};
use crate::trace::Trace;
use crate::trace_v1::HostRole;

/// `255.255.255.255`, which reaches the sender's own segment only.
const LIMITED_BROADCAST: SocketAddr =
    SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::BROADCAST), 0);

trait WithPort {
    fn with_port(self, port: u16) -> Self;
}

impl WithPort for SocketAddr {
    fn with_port(mut self, port: u16) -> Self {
        self.set_port(port);
        self
    }
}

/// Something done to the network at a chosen simulated time.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum NetAction {
    /// Restarts a host's software at once: its endpoint starts afresh.
    Bounce(String),
    /// Stops a host's software; it stays down until a [`NetAction::Bounce`].
    Crash(String),
    /// Holds datagrams between two hosts (both directions) until released.
    Hold(String, String),
    /// Drops every datagram between two hosts until repaired.
    Partition(String, String),
    /// Delivers the datagrams held between two hosts.
    Release(String, String),
    /// Ends a partition between two hosts.
    Repair(String, String),
    /// Changes the faults of datagrams sent from the first host to the second.
    SetLink(String, String, LinkFaults),
    /// Crashes a host with a store ([`StoreSpec`]) while its next transaction that
    /// [`InCommit`] matches is in flight, losing it, and restarts its software the given
    /// time later.
    CrashInCommit(String, InCommit, StdDuration),
}

impl fmt::Display for NetAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetAction::Bounce(h) => write!(f, "bounce {h}"),
            NetAction::Crash(h) => write!(f, "crash {h}"),
            NetAction::Hold(a, b) => write!(f, "hold {a} {b}"),
            NetAction::Partition(a, b) => write!(f, "partition {a} {b}"),
            NetAction::Release(a, b) => write!(f, "release {a} {b}"),
            NetAction::Repair(a, b) => write!(f, "repair {a} {b}"),
            NetAction::SetLink(a, b, l) => write!(f, "link {a} {b} {l:?}"),
            NetAction::CrashInCommit(h, t, d) => {
                write!(f, "crash-in-commit {h} {t:?} down {d:?}")
            }
        }
    }
}

/// Why a simulation could not be set up or run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// A host with this name exists already.
    DuplicateHost(String),
    /// No host has this name (or it is not a middlebox, where one is needed).
    UnknownHost(String),
    /// A host's software failed (a socket could not be bound); turmoil's message.
    Host(String),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Config(e) => write!(f, "invalid configuration: {e}"),
            SimError::DuplicateHost(h) => write!(f, "host `{h}` exists already"),
            SimError::UnknownHost(h) => write!(f, "no suitable host `{h}`"),
            SimError::Host(e) => write!(f, "host software failed: {e}"),
        }
    }
}

impl core::error::Error for SimError {}

impl From<ConfigError> for SimError {
    fn from(e: ConfigError) -> Self {
        SimError::Config(e)
    }
}

/// A deterministic network of real endpoints on turmoil.
///
/// Add hosts, schedule network actions with [`Simulation::at`], then [`Simulation::run`].
/// The same [`SimConfig`] and the same hosts give the same [`Trace`] and digest.
///
/// # Examples
/// ```
/// use core::time::Duration;
/// use pavillion_proto::crypto::Psk;
/// use pavillion_proto::endpoint::{ClientConfig, SendOptions, ServerConfig, ServerEvent};
/// use pavillion_proto::ClientId;
/// use pavillion_sim::{Script, SimConfig, Simulation};
///
/// let id = ClientId([1; 16]);
/// let psk = Psk::from_bytes([9; 32]);
/// let mut sim = Simulation::new(SimConfig::new(1).with_duration(Duration::from_secs(3)))?;
/// let server = sim.add_server(
///     "server",
///     ServerConfig::new([0; 32]).with_psk_client(id, psk.clone()),
///     |_, _| {},
/// )?;
/// let script = Script::new().at(Duration::from_millis(100), |ctl| {
///     ctl.send_message("t", "n", b"hi", SendOptions::reliable()).unwrap();
/// });
/// sim.add_client("client", ClientConfig::psk(id, psk, server, [0; 32]), script)?;
/// sim.run()?;
/// let trace = sim.trace();
/// assert!(trace
///     .server_events("server")
///     .any(|(_, e)| matches!(e, ServerEvent::Message { .. })));
/// # Ok::<(), pavillion_sim::SimError>(())
/// ```
pub struct Simulation {
    pub(crate) sim: turmoil::Sim<'static>,
    pub(crate) config: SimConfig,
    pub(crate) world: Rc<RefCell<World>>,
    pub(crate) hosts: Vec<String>,
    middleboxes: Vec<String>,
    /// (host, middlebox) pairs; partitioned from everything else when the run starts.
    behind: Vec<(String, String)>,
    /// Names of endpoints that share a host ([`Simulation::add_clients`]).
    pub(crate) shared_names: Vec<String>,
    /// Sorted by time; actions at the same time keep the order they were added in.
    timeline: Vec<(StdDuration, NetAction)>,
    /// Hosts armed by [`NetAction::CrashInCommit`], with how long they stay down.
    armed_downtime: alloc::collections::BTreeMap<String, StdDuration>,
    started: bool,
}

impl fmt::Debug for Simulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulation")
            .field("config", &self.config)
            .field("hosts", &self.hosts)
            .field("elapsed", &self.sim.elapsed())
            .finish()
    }
}

impl Simulation {
    /// An empty simulation.
    ///
    /// # Errors
    /// [`SimError::Config`] for an invalid link.
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        config.link.validate()?;
        // turmoil's latency has millisecond granularity; round up so that a sub-millisecond
        // latency still delays by one tick.
        let latency = StdDuration::from_millis(
            u64::try_from(config.link.latency.as_millis()).unwrap_or(u64::MAX),
        );
        let sim = turmoil::Builder::new()
            .rng_seed(config.seed)
            .epoch(UNIX_EPOCH + StdDuration::from_secs(1_700_000_000))
            .simulation_duration(config.duration + StdDuration::from_secs(1))
            .tick_duration(StdDuration::from_millis(1))
            .min_message_latency(latency)
            .max_message_latency(latency)
            .fail_rate(0.0)
            .udp_capacity(4096)
            .build();
        let mut world = World::new(config.seed, config.link);
        world.decoding = config.decoded_trace;
        world.trace.meta.seed = config.seed;
        Ok(Simulation {
            sim,
            config,
            world: Rc::new(RefCell::new(world)),
            hosts: Vec::new(),
            middleboxes: Vec::new(),
            behind: Vec::new(),
            shared_names: Vec::new(),
            timeline: Vec::new(),
            armed_downtime: alloc::collections::BTreeMap::new(),
            started: false,
        })
    }

    /// Adds a server host. `app` sees every event of the endpoint (after it is traced) and may
    /// answer RPC requests through the [`ServerCtl`]. Returns the address clients send to.
    ///
    /// # Errors
    /// [`SimError::DuplicateHost`] if the name is taken.
    pub fn add_server(
        &mut self,
        name: &str,
        spec: impl Into<ServerSpec>,
        mut app: impl FnMut(&mut ServerCtl<'_>, ServerEvent) + 'static,
    ) -> Result<SocketAddr, SimError> {
        let script = Script::new().on_event(move |ctl, ev| app(ctl, ev));
        self.add_server_script(name, spec, script)
    }

    /// Adds a server host run by a full [`Script`]: timed commands (server-initiated sends,
    /// for example) as well as the reaction to events.
    ///
    /// # Errors
    /// [`SimError::DuplicateHost`] if the name is taken.
    pub fn add_server_script(
        &mut self,
        name: &str,
        spec: impl Into<ServerSpec>,
        script: Script<Server>,
    ) -> Result<SocketAddr, SimError> {
        let spec: ServerSpec = spec.into();
        let port = spec.port;
        let store = spec.store;
        let mut script = script;
        let user_start = script.take_on_start();
        let spec2 = spec.clone();
        let mut user_start = user_start;
        script = script.on_start(move |ctl| {
            let now = ctl.now();
            for (f, n) in &spec2.functions {
                ctl.endpoint().register_function(*f, n);
            }
            for t in &spec2.subscriptions {
                ctl.endpoint().subscribe(now, t);
            }
            if let Some(f) = user_start.as_mut() {
                f(ctl);
            }
        });
        let addr = self.add_endpoint(name, port, store, script, move |seed| {
            let mut config = spec.config.clone();
            config.seed = seed;
            Server::new(config)
        })?;
        self.register(name, HostRole::Server, vec![addr]);
        Ok(addr)
    }

    /// Adds a client host run by `script`. Returns its address.
    ///
    /// # Errors
    /// [`SimError::DuplicateHost`] if the name is taken.
    pub fn add_client(
        &mut self,
        name: &str,
        spec: impl Into<ClientSpec>,
        script: Script<Client>,
    ) -> Result<SocketAddr, SimError> {
        let spec: ClientSpec = spec.into();
        let addr = self.add_endpoint(name, spec.port, spec.store, script, move |seed| {
            let mut config = spec.config.clone();
            config.seed = seed;
            Client::new(config)
        })?;
        self.register(name, HostRole::Client, vec![addr]);
        Ok(addr)
    }

    /// Adds one host that runs a client endpoint for each entry of `clients`: a name, a spec
    /// whose port must differ from the others', and a script. Each endpoint appears under its
    /// own name in the trace and in [`Simulation::stats`], and its RNGs are seeded from that
    /// name, exactly as if it had a host of its own. Network actions and links apply to the
    /// host, so to all of its endpoints at once. Returns their addresses, in order.
    ///
    /// This exists for crowds: turmoil's cost per step grows with the cube of its hosts (each
    /// host scans every pair of hosts), so a thousand clients are only affordable a hundred or
    /// so to a host.
    ///
    /// # Errors
    /// [`SimError::DuplicateHost`] if the host's name or an endpoint's name is taken.
    pub fn add_clients(
        &mut self,
        host: &str,
        clients: Vec<(String, ClientSpec, Script<Client>)>,
    ) -> Result<Vec<SocketAddr>, SimError> {
        for (name, _, _) in &clients {
            if name == host || self.hosts.contains(name) || self.shared_names.contains(name) {
                return Err(SimError::DuplicateHost(name.clone()));
            }
        }
        self.claim(host)?;
        self.shared_names
            .extend(clients.iter().map(|(n, _, _)| n.clone()));
        let ip = self.sim.lookup(host);
        let addrs: Vec<SocketAddr> = clients
            .iter()
            .map(|(_, spec, _)| SocketAddr::new(ip, spec.port))
            .collect();
        for ((name, _, _), addr) in clients.iter().zip(&addrs) {
            self.register(name, HostRole::Client, vec![*addr]);
        }
        let parts: Vec<(Rc<str>, ClientSpec, _)> = clients
            .into_iter()
            .map(|(name, spec, script)| (name.into(), spec, ScriptRun::new(script)))
            .collect();
        let node: Rc<str> = host.into();
        let world = self.world.clone();
        let incarnation = Rc::new(Cell::new(0u32));
        let base = self.config.seed;
        self.sim.host(host, move || {
            let n = incarnation.get();
            incarnation.set(n.wrapping_add(1));
            let drivers: Vec<_> = parts
                .iter()
                .map(|(name, spec, script)| {
                    let mut config = spec.config.clone();
                    config.seed = derive_seed(base, name, n, "endpoint");
                    let ctx = HostCtx {
                        host: name.clone(),
                        node: node.clone(),
                        world: world.clone(),
                        script: script.clone(),
                        port: spec.port,
                        incarnation: n,
                        later: Default::default(),
                    };
                    let store = spec
                        .store
                        .map(|s| StoreDriver::new(name.clone(), n, world.clone(), s));
                    drive(Client::new(config), ctx, store)
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
        Ok(addrs)
    }

    fn add_endpoint<E: crate::host::Hosted + DurableRole>(
        &mut self,
        name: &str,
        port: u16,
        store: Option<StoreSpec>,
        script: Script<E>,
        make: impl Fn([u8; 32]) -> E + 'static,
    ) -> Result<SocketAddr, SimError> {
        self.claim(name)?;
        let host: Rc<str> = name.into();
        let world = self.world.clone();
        let script = ScriptRun::new(script);
        let incarnation = Rc::new(Cell::new(0u32));
        let base = self.config.seed;
        self.sim.host(name, move || {
            let n = incarnation.get();
            incarnation.set(n.wrapping_add(1));
            let ep = make(derive_seed(base, &host, n, "endpoint"));
            let ctx = HostCtx {
                host: host.clone(),
                node: host.clone(),
                world: world.clone(),
                script: script.clone(),
                port,
                incarnation: n,
                later: Default::default(),
            };
            let store = store.map(|s| StoreDriver::new(host.clone(), n, world.clone(), s));
            drive(ep, ctx, store)
        });
        Ok(SocketAddr::new(self.sim.lookup(name), port))
    }

    /// Adds a NAT or adversary host (see [`MiddleboxConfig`]). Returns its address; private
    /// hosts placed behind it with [`Simulation::place_behind`] send to its route ports.
    ///
    /// # Errors
    /// [`SimError::DuplicateHost`] if the name is taken.
    pub fn add_middlebox(
        &mut self,
        name: &str,
        config: MiddleboxConfig,
    ) -> Result<IpAddr, SimError> {
        self.claim(name)?;
        let host: Rc<str> = name.into();
        let world = self.world.clone();
        let incarnation = Rc::new(Cell::new(0u32));
        self.sim.host(name, move || {
            let n = incarnation.get();
            incarnation.set(n.wrapping_add(1));
            middlebox::run(host.clone(), n, world.clone(), config.clone())
        });
        self.middleboxes.push(name.into());
        self.register(name, HostRole::Middlebox, Vec::new());
        Ok(self.sim.lookup(name))
    }

    /// Puts `host` behind the middlebox `middlebox`: at the start of the run it is cut off
    /// from every other host, and the middlebox treats its datagrams as outbound.
    ///
    /// # Errors
    /// [`SimError::UnknownHost`] if either is unknown or `middlebox` is not a middlebox.
    pub fn place_behind(&mut self, host: &str, middlebox: &str) -> Result<(), SimError> {
        if !self.hosts.iter().any(|h| h == host) {
            return Err(SimError::UnknownHost(host.into()));
        }
        if !self.middleboxes.iter().any(|h| h == middlebox) {
            return Err(SimError::UnknownHost(middlebox.into()));
        }
        let (h, m) = (self.sim.lookup(host), self.sim.lookup(middlebox));
        self.world
            .borrow_mut()
            .private
            .entry(m)
            .or_default()
            .insert(h);
        self.behind.push((host.into(), middlebox.into()));
        Ok(())
    }

    /// Makes the host `member` (at `port`) receive every datagram sent to `group`: drivers
    /// send one copy per member, each subject to its own link faults.
    ///
    /// # Errors
    /// [`SimError::UnknownHost`] if there is no such host.
    pub fn join(&mut self, group: SocketAddr, member: &str, port: u16) -> Result<(), SimError> {
        if !self.hosts.iter().any(|h| h == member) {
            return Err(SimError::UnknownHost(member.into()));
        }
        let addr = SocketAddr::new(self.sim.lookup(member), port);
        self.world
            .borrow_mut()
            .groups
            .entry(group)
            .or_default()
            .insert(addr);
        Ok(())
    }

    /// Sets the faults of datagrams sent from host `from` to host `to` (one direction).
    ///
    /// # Errors
    /// [`SimError::UnknownHost`] for an unknown host, [`SimError::Config`] for an invalid link.
    pub fn set_link(&mut self, from: &str, to: &str, link: LinkFaults) -> Result<(), SimError> {
        link.validate()?;
        let (a, b) = (self.ip(from)?, self.ip(to)?);
        self.world.borrow_mut().links.insert((a, b), link);
        Ok(())
    }

    /// Schedules a network action at simulated time `at` (from the start).
    pub fn at(&mut self, at: StdDuration, action: NetAction) -> &mut Self {
        let i = self.timeline.partition_point(|(t, _)| *t <= at);
        self.timeline.insert(i, (at, action));
        self
    }

    /// The address of a host, as other hosts see it.
    ///
    /// # Errors
    /// [`SimError::UnknownHost`] if there is no such host.
    pub fn ip(&self, host: &str) -> Result<IpAddr, SimError> {
        if self.hosts.iter().any(|h| h == host) {
            Ok(self.sim.lookup(host))
        } else {
            Err(SimError::UnknownHost(host.into()))
        }
    }

    /// Simulated time elapsed.
    pub fn elapsed(&self) -> StdDuration {
        self.sim.elapsed()
    }

    /// Runs until the configured duration has elapsed.
    ///
    /// # Errors
    /// [`SimError::Host`] if a host's software failed.
    pub fn run(&mut self) -> Result<(), SimError> {
        self.run_until(self.config.duration)
    }

    /// Runs until `until` has elapsed (from the start), applying the timeline on the way.
    /// It can be called repeatedly to inspect the trace between stretches.
    ///
    /// # Errors
    /// [`SimError::Host`] if a host's software failed.
    pub fn run_until(&mut self, until: StdDuration) -> Result<(), SimError> {
        if !self.started {
            self.started = true;
            self.isolate_private_hosts();
        }
        while self.sim.elapsed() < until {
            self.apply_due_actions()?;
            self.sim.step().map_err(|e| SimError::Host(e.to_string()))?;
            self.crash_in_commit();
        }
        self.apply_due_actions()
    }

    /// The committed rows of durable host `host`'s store (empty for a host without one).
    pub fn durable_rows(&self, host: &str) -> DurableRows {
        self.world.borrow().durable.rows(host)
    }

    /// What durable host `host`'s store did so far, over all its incarnations.
    pub fn store_stats(&self, host: &str) -> StoreStats {
        self.world.borrow().durable.stats(host)
    }

    /// Crashes the hosts armed by [`NetAction::CrashInCommit`] whose transaction started in
    /// the last step (so it is still in flight), and schedules their restart.
    fn crash_in_commit(&mut self) {
        let hosts = self.world.borrow_mut().durable.take_crashes();
        for host in hosts {
            let down = self.armed_downtime.remove(&*host).unwrap_or_default();
            let elapsed = self.sim.elapsed();
            let at = Instant::from_micros(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
            self.world
                .borrow_mut()
                .note(at, &Rc::from("sim"), format!("crash {host} in commit"));
            self.sim.crash(&*host);
            self.at(elapsed + down, NetAction::Bounce(host.to_string()));
        }
    }

    /// The trace so far.
    pub fn trace(&self) -> Ref<'_, Trace> {
        Ref::map(self.world.borrow(), |w| &w.trace)
    }

    /// The digest of the trace so far (see [`Trace::digest`]).
    pub fn digest(&self) -> String {
        self.world.borrow().trace.digest()
    }

    /// The stats of endpoint host `host`, one entry per incarnation (a rebooted host starts
    /// counting afresh), as they were after its last step; empty for a middlebox or a host
    /// that never ran.
    pub fn stats(&self, host: &str) -> Vec<Stats> {
        self.world
            .borrow()
            .stats
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    /// Adds a relay host (see [`RelaySpec`]) run by `script`: it joins its segment on each of
    /// its ports, and with [`EmitFrom::Source`] may hand others datagrams with the original
    /// senders' sources. Returns its mesh address.
    ///
    /// # Errors
    /// [`SimError::DuplicateHost`] if the name is taken.
    pub fn add_relay(
        &mut self,
        name: &str,
        spec: RelaySpec,
        script: Script<Relay>,
    ) -> Result<SocketAddr, SimError> {
        self.claim(name)?;
        let ip = self.sim.lookup(name);
        for &port in &spec.config.ports {
            self.join(spec.segment.group(port), name, port)?;
            self.place_on(name, spec.segment, LIMITED_BROADCAST.with_port(port), port)?;
        }
        if spec.emit == EmitFrom::Source {
            self.world.borrow_mut().spoofers.insert(ip);
        }
        let mesh = SocketAddr::new(ip, spec.mesh_port);
        let host: Rc<str> = name.into();
        let world = self.world.clone();
        let script = ScriptRun::new(script);
        let incarnation = Rc::new(Cell::new(0u32));
        let base = self.config.seed;
        let spec = Rc::new(spec);
        self.sim.host(name, move || {
            let n = incarnation.get();
            incarnation.set(n.wrapping_add(1));
            let seed = derive_seed(base, &host, n, "endpoint");
            let ctx = HostCtx {
                host: host.clone(),
                node: host.clone(),
                world: world.clone(),
                script: script.clone(),
                port: spec.mesh_port,
                incarnation: n,
                later: Default::default(),
            };
            let spec = spec.clone();
            async move {
                let relay = Relay::new(relay::resolve(&spec, &ctx.node, seed));
                relay::drive_relay(relay, ctx, spec).await
            }
        });
        self.register(name, HostRole::Relay, vec![mesh]);
        Ok(mesh)
    }

    /// Adds a station: a plain UDP host of `segment` bound to `port` that broadcasts each
    /// payload of `sends` there at its time, and records everything it hears on `port`
    /// ([`Simulation::heard`]). Returns its address.
    ///
    /// # Errors
    /// [`SimError::DuplicateHost`] if the name is taken.
    pub fn add_station(
        &mut self,
        name: &str,
        segment: Segment,
        port: u16,
        sends: Vec<(StdDuration, Vec<u8>)>,
    ) -> Result<SocketAddr, SimError> {
        self.claim(name)?;
        self.join(segment.group(port), name, port)?;
        self.place_on(name, segment, LIMITED_BROADCAST.with_port(port), port)?;
        let host: Rc<str> = name.into();
        let world = self.world.clone();
        let incarnation = Rc::new(Cell::new(0u32));
        let sends = Rc::new(sends);
        self.sim.host(name, move || {
            let n = incarnation.get();
            incarnation.set(n.wrapping_add(1));
            relay::drive_station(host.clone(), n, world.clone(), segment, port, sends.clone())
        });
        let addr = SocketAddr::new(self.sim.lookup(name), port);
        self.register(name, HostRole::Station, vec![addr]);
        Ok(addr)
    }

    /// Places `host` on `segment`, and makes it receive at `port` what the segment's hosts
    /// send to `group` (for example the limited broadcast `255.255.255.255`, or a multicast
    /// group that does not cross routers); hosts of other segments sending to `group` do not
    /// reach it. Relay hosts and stations are on their segment already.
    ///
    /// # Errors
    /// [`SimError::UnknownHost`] if there is no such host.
    pub fn place_on(
        &mut self,
        host: &str,
        segment: Segment,
        group: SocketAddr,
        port: u16,
    ) -> Result<(), SimError> {
        let ip = self.ip(host)?;
        let mut w = self.world.borrow_mut();
        w.segment_of.insert(ip, segment);
        w.segment_groups
            .entry((segment, group))
            .or_default()
            .insert(SocketAddr::new(ip, port));
        Ok(())
    }

    /// The relay counters of relay host `host`, one entry per incarnation.
    pub fn relay_stats(&self, host: &str) -> Vec<RelayStats> {
        self.world
            .borrow()
            .relay_stats
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    /// How many datagrams relays emitted on `segment` so far.
    pub fn emitted(&self, segment: Segment) -> u64 {
        self.world
            .borrow()
            .emitted
            .get(&segment)
            .copied()
            .unwrap_or(0)
    }

    /// The mesh datagrams relay hosts sent so far (the first 4096), as an on-path observer
    /// records them: source, destination and bytes. For replay attacks.
    pub fn mesh_packets(&self) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        self.world.borrow().mesh_log.clone()
    }

    /// What station `host` heard so far: when, from which source, the payload.
    pub fn heard(&self, host: &str) -> Vec<Heard> {
        self.world
            .borrow()
            .heard
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    /// Names a host's role and first addresses for a decoded trace's header.
    pub(crate) fn register(&mut self, name: &str, role: HostRole, addrs: Vec<SocketAddr>) {
        self.world
            .borrow_mut()
            .trace
            .meta
            .add_host(name, role, addrs);
    }

    pub(crate) fn claim(&mut self, name: &str) -> Result<(), SimError> {
        if self.hosts.iter().any(|h| h == name) {
            return Err(SimError::DuplicateHost(name.into()));
        }
        self.hosts.push(name.into());
        Ok(())
    }

    fn isolate_private_hosts(&mut self) {
        for (host, mbox) in &self.behind {
            for other in &self.hosts {
                if other != host && other != mbox {
                    self.sim.partition(host.as_str(), other.as_str());
                }
            }
        }
    }

    fn apply_due_actions(&mut self) -> Result<(), SimError> {
        let elapsed = self.sim.elapsed();
        while self.timeline.first().is_some_and(|(t, _)| *t <= elapsed) {
            let (_, action) = self.timeline.remove(0);
            let at = Instant::from_micros(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
            self.world
                .borrow_mut()
                .note(at, &Rc::from("sim"), action.to_string());
            self.apply(action)?;
        }
        Ok(())
    }

    fn apply(&mut self, action: NetAction) -> Result<(), SimError> {
        match action {
            NetAction::Bounce(h) => {
                self.ip(&h)?;
                self.sim.bounce(h.as_str());
            }
            NetAction::Crash(h) => {
                self.ip(&h)?;
                self.sim.crash(h.as_str());
            }
            NetAction::Hold(a, b) => {
                self.pair(&a, &b)?;
                self.sim.hold(a.as_str(), b.as_str());
            }
            NetAction::Partition(a, b) => {
                self.pair(&a, &b)?;
                self.sim.partition(a.as_str(), b.as_str());
            }
            NetAction::Release(a, b) => {
                self.pair(&a, &b)?;
                self.sim.release(a.as_str(), b.as_str());
            }
            NetAction::Repair(a, b) => {
                self.pair(&a, &b)?;
                self.sim.repair(a.as_str(), b.as_str());
            }
            NetAction::SetLink(a, b, link) => self.set_link(&a, &b, link)?,
            NetAction::CrashInCommit(h, table, down) => {
                self.ip(&h)?;
                self.world.borrow_mut().durable.arm(&h, table);
                self.armed_downtime.insert(h, down);
            }
        }
        Ok(())
    }

    fn pair(&self, a: &str, b: &str) -> Result<(), SimError> {
        self.ip(a)?;
        self.ip(b)?;
        Ok(())
    }
}
