//! NAT and adversary hosts: one forwarding core with a mapping table, and scripted attacks.
//!
//! # How private hosts reach the outside
//! turmoil has one flat network and cannot spoof source addresses, so a middlebox works like a
//! port-forwarding NAT with fixed upstreams. Its [`Route`]s map an *inside port* of the
//! middlebox to a destination: a private client is configured with `middlebox_ip:inside_port`
//! as its server. The first datagram from a private `(ip, port)` creates a *mapping* to a fresh
//! public port, bound on the middlebox; the datagram leaves from that port, so the destination
//! sees the middlebox's address and the mapped port. Replies arriving at the mapped port go back
//! to the private host *from the inside port* of the route whose destination sent them, so the
//! client sees its configured server address. Datagrams from anyone else to a mapped port are
//! forwarded from the mapped port itself; datagrams to a port with no live mapping are dropped.
//!
//! Mappings are refreshed by outbound datagrams only (RFC 4787 requires it; inbound refresh is
//! optional). A mapping idle for longer than the timeout expires, and the next outbound datagram
//! of that private host gets a *new* public port, as on real NATs; the server then sees a new
//! source address, and the endpoints must re-handshake.
//!
//! *Hairpin*: a private host that sends to the middlebox's own public address (a route whose
//! destination is `middlebox_ip:mapped_port`, or directly to a mapped port) reaches the private
//! host owning that mapping, from its own mapped port, if hairpin is on; otherwise the datagram
//! is dropped.
//!
//! # Adversaries
//! An adversary is a middlebox on the path between a victim and its server (no expiry): it
//! records every datagram it forwards, and its [`Attack`]s replay them from the victim's mapped
//! port (so the server sees them from the victim's address), flip bits of forwarded datagrams,
//! forge session packets, and flood a server with setup requests from many source ports. A
//! real attacker spoofs any source address; here the flood's sources are the adversary's own
//! ports, so it exercises per-source state and rate limits but not per-address ones.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use pavillion_proto::rng::Rng;
use pavillion_proto::wire::{self, CipherId, NonceRequest, Setup};
use pavillion_proto::{ClientId, Duration, Instant};
use tokio::sync::mpsc;
use turmoil::net::UdpSocket;

use crate::net::{derive_seed, flip_bit, now, Shared, Wire};

/// One fixed upstream of a middlebox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The port of the middlebox that private hosts send to.
    pub inside_port: u16,
    /// Where their datagrams go. An unspecified IP (`0.0.0.0`) stands for the middlebox's own
    /// address, so that a route can lead to one of its public ports (hairpin).
    pub destination: SocketAddr,
}

/// An attack an adversary middlebox carries out at a chosen time.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attack {
    /// Flips one random bit in each of the next `count` datagrams it forwards (either way).
    FlipBits {
        /// How many datagrams to corrupt.
        count: usize,
    },
    /// Sends `count` session packets with random counters, tags and bodies, from the first
    /// private host's mapped port to its route's destination.
    Forge {
        /// How many packets.
        count: usize,
    },
    /// Sends `count` nonce requests (setup opcode 1) to `target`, round-robin from `sources`
    /// ports of the adversary.
    Flood {
        /// The server attacked.
        target: SocketAddr,
        /// How many requests.
        count: usize,
        /// How many distinct source ports.
        sources: u16,
        /// The client id to claim (a real one makes the server do more work); random if
        /// `None`.
        client_id: Option<ClientId>,
    },
    /// Sends again the last `count` datagrams that private hosts sent out, each from the
    /// mapped port and to the destination it first had.
    Replay {
        /// How many of the recorded datagrams (the most recent ones).
        count: usize,
    },
    /// An off-path flood from forged sources: `per_second` datagrams a second (in batches
    /// every millisecond) to `target` for `duration`, each from `source`, or if that is
    /// `None` from a source never used before (see [`spoofed_source`](crate::spoofed_source)).
    /// The datagrams cycle through `packets`, each with its last `random_tail` bytes (a
    /// challenge, a tag) made random.
    SpoofFlood {
        /// The host attacked.
        target: SocketAddr,
        /// The one forged source (for example the server's address, to spoof it at a
        /// client), or `None` for a new one per datagram.
        source: Option<SocketAddr>,
        /// Datagrams (and new sources) per second; a multiple of 1000 sends evenly.
        per_second: u32,
        /// How long the flood lasts.
        duration: core::time::Duration,
        /// What to send, in turn.
        packets: Vec<Vec<u8>>,
        /// How many bytes at the end of each datagram are drawn anew each time.
        random_tail: usize,
    },
}

/// A flood in progress.
struct Flooding {
    target: SocketAddr,
    source: Option<SocketAddr>,
    per_tick: usize,
    until: Instant,
    next_tick: Instant,
    packets: Vec<Vec<u8>>,
    random_tail: usize,
}

/// Between two batches of a flood.
const FLOOD_TICK: Duration = Duration::from_millis(1);

/// Configuration of a NAT or adversary host; see the [module docs](crate::middlebox).
///
/// # Examples
/// ```
/// use core::time::Duration;
/// use pavillion_sim::{Attack, MiddleboxConfig, Route};
/// let server = "192.168.0.1:1783".parse().unwrap();
/// let route = Route { inside_port: 1783, destination: server };
/// let nat = MiddleboxConfig::nat(vec![route], Duration::from_secs(5)).with_hairpin(true);
/// assert_eq!(nat.mapping_timeout, Some(Duration::from_secs(5)));
/// let adv = MiddleboxConfig::adversary(vec![route])
///     .with_attack(Duration::from_secs(2), Attack::Replay { count: 10 });
/// assert_eq!(adv.attacks.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiddleboxConfig {
    /// The fixed upstreams, by inside port.
    pub routes: Vec<Route>,
    /// Idle time after which a mapping expires; `None` keeps mappings forever.
    pub mapping_timeout: Option<Duration>,
    /// Whether private hosts can reach each other through the public address.
    pub hairpin: bool,
    /// The first public port handed out; each new mapping takes the next one.
    pub first_public_port: u16,
    /// The first port a flood sends from.
    pub first_flood_port: u16,
    /// Attacks, by simulated time from the start of the simulation.
    pub attacks: Vec<(core::time::Duration, Attack)>,
    /// Most forwarded datagrams remembered for replay; the oldest are forgotten first.
    pub max_recorded: usize,
}

impl MiddleboxConfig {
    /// A NAT whose mappings expire after `mapping_timeout` idle.
    pub fn nat(routes: Vec<Route>, mapping_timeout: Duration) -> Self {
        MiddleboxConfig {
            routes,
            mapping_timeout: Some(mapping_timeout),
            hairpin: false,
            first_public_port: 20000,
            first_flood_port: 50000,
            attacks: Vec::new(),
            max_recorded: 4096,
        }
    }

    /// An on-path adversary whose mappings never expire; add attacks with
    /// [`MiddleboxConfig::with_attack`].
    pub fn adversary(routes: Vec<Route>) -> Self {
        MiddleboxConfig {
            mapping_timeout: None,
            ..MiddleboxConfig::nat(routes, Duration::ZERO)
        }
    }

    /// Turns hairpin forwarding on or off.
    pub fn with_hairpin(mut self, hairpin: bool) -> Self {
        self.hairpin = hairpin;
        self
    }

    /// Schedules an attack at simulated time `at`.
    pub fn with_attack(mut self, at: core::time::Duration, attack: Attack) -> Self {
        let i = self.attacks.partition_point(|(t, _)| *t <= at);
        self.attacks.insert(i, (at, attack));
        self
    }
}

struct Mapping {
    private: SocketAddr,
    port: u16,
    last_out: Instant,
}

/// A datagram received on one of the middlebox's ports.
struct Inbound {
    port: u16,
    from: SocketAddr,
    bytes: Vec<u8>,
}

struct Recorded {
    port: u16,
    to: SocketAddr,
    bytes: Vec<u8>,
}

struct Middlebox {
    host: Rc<str>,
    ip: IpAddr,
    config: MiddleboxConfig,
    world: Shared,
    wire: Wire,
    rng: Rng,
    sockets: BTreeMap<u16, Rc<UdpSocket>>,
    tx: mpsc::UnboundedSender<Inbound>,
    /// Live and expired-but-not-yet-noticed mappings, by public port.
    mappings: BTreeMap<u16, Mapping>,
    /// Private address to its current public port.
    by_private: BTreeMap<SocketAddr, u16>,
    next_port: u16,
    recorded: Vec<Recorded>,
    flips_left: usize,
    next_attack: usize,
    flooding: Option<Flooding>,
    /// Forged sources used so far: each datagram of a flood gets the next.
    spoofed: u64,
}

/// Runs one incarnation of a middlebox until it is crashed; its mappings die with it.
pub(crate) async fn run(
    host: Rc<str>,
    incarnation: u32,
    world: Shared,
    config: MiddleboxConfig,
) -> turmoil::Result {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let seed = world.borrow().seed;
    let mut mb = Middlebox {
        ip: turmoil::lookup(&*host),
        wire: Wire::new(host.clone(), incarnation, world.clone()),
        rng: Rng::from_seed(derive_seed(seed, &host, incarnation, "attack")),
        next_port: config.first_public_port,
        config,
        host,
        world,
        sockets: BTreeMap::new(),
        tx,
        mappings: BTreeMap::new(),
        by_private: BTreeMap::new(),
        recorded: Vec::new(),
        flips_left: 0,
        next_attack: 0,
        flooding: None,
        spoofed: 0,
    };
    let spoofs = mb
        .config
        .attacks
        .iter()
        .any(|(_, a)| matches!(a, Attack::SpoofFlood { .. }));
    if spoofs {
        mb.world.borrow_mut().spoofers.insert(mb.ip);
    }
    let start = now();
    mb.note(format!("start {incarnation}"));
    while mb
        .config
        .attacks
        .get(mb.next_attack)
        .is_some_and(|(t, _)| Instant::ZERO + *t < start)
    {
        mb.next_attack += 1;
    }
    let inside: Vec<u16> = mb.config.routes.iter().map(|r| r.inside_port).collect();
    for port in inside {
        mb.open(port).await?;
    }
    loop {
        let wait = mb
            .config
            .attacks
            .get(mb.next_attack)
            .map(|(t, _)| (Instant::ZERO + *t).saturating_duration_since(now()));
        let flood_wait = mb
            .flooding
            .as_ref()
            .map(|f| f.next_tick.saturating_duration_since(now()));
        tokio::select! {
            biased;
            Some(d) = rx.recv() => mb.handle(d).await?,
            _ = sleep_for(flood_wait) => mb.flood_tick().await?,
            _ = sleep_for(wait) => {
                if let Some((_, attack)) = mb.config.attacks.get(mb.next_attack).cloned() {
                    mb.next_attack += 1;
                    mb.attack(attack).await?;
                }
            }
        }
    }
}

async fn sleep_for(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => core::future::pending().await,
    }
}

impl Middlebox {
    /// Binds `port` and starts forwarding what arrives on it to the main loop.
    async fn open(&mut self, port: u16) -> turmoil::Result<Rc<UdpSocket>> {
        if let Some(s) = self.sockets.get(&port) {
            return Ok(s.clone());
        }
        let sock = Rc::new(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).await?);
        self.sockets.insert(port, sock.clone());
        let (rsock, tx) = (sock.clone(), self.tx.clone());
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; wire::MAX_DATAGRAM + 1];
            while let Ok((n, from)) = rsock.recv_from(&mut buf).await {
                let bytes = buf.get(..n).unwrap_or_default().to_vec();
                if tx.send(Inbound { port, from, bytes }).is_err() {
                    return;
                }
            }
        });
        Ok(sock)
    }

    fn note(&self, text: String) {
        self.world.borrow_mut().note(now(), &self.host, text);
    }

    fn is_private(&self, ip: IpAddr) -> bool {
        self.world
            .borrow()
            .private
            .get(&self.ip)
            .is_some_and(|set: &BTreeSet<IpAddr>| set.contains(&ip))
    }

    fn is_live(&self, m: &Mapping, now: Instant) -> bool {
        self.config
            .mapping_timeout
            .is_none_or(|t| now.saturating_duration_since(m.last_out) <= t)
    }

    /// The live public port of `private` at `now`, refreshed, or a new one.
    async fn map_out(&mut self, private: SocketAddr, now: Instant) -> turmoil::Result<u16> {
        if let Some(port) = self.by_private.get(&private).copied() {
            let live = self
                .mappings
                .get(&port)
                .is_some_and(|m| self.is_live(m, now));
            if live {
                if let Some(m) = self.mappings.get_mut(&port) {
                    m.last_out = now;
                }
                return Ok(port);
            }
            self.expire(port);
        }
        let port = self.next_port;
        // Ports below the first public port are never handed out again: a mapping changes
        // port after expiry, as the issue asks, even if that means wrapping eventually.
        self.next_port = self
            .next_port
            .checked_add(1)
            .unwrap_or(self.config.first_public_port);
        self.open(port).await?;
        self.mappings.insert(
            port,
            Mapping {
                private,
                port,
                last_out: now,
            },
        );
        self.by_private.insert(private, port);
        self.note(format!(
            "map {private} -> {}",
            SocketAddr::new(self.ip, port)
        ));
        Ok(port)
    }

    fn expire(&mut self, port: u16) {
        if let Some(m) = self.mappings.remove(&port) {
            self.by_private.remove(&m.private);
            // Dropping the socket unbinds the port; its receive task ends with it.
            self.sockets.remove(&m.port);
            self.note(format!("expire {} (port {})", m.private, m.port));
        }
    }

    fn send(&mut self, port: u16, to: SocketAddr, mut bytes: Vec<u8>) {
        let now = now();
        let from = SocketAddr::new(self.ip, port);
        let Some(sock) = self.sockets.get(&port).cloned() else {
            self.wire.blocked(now, from, to, &bytes);
            return;
        };
        if self.flips_left > 0 && !bytes.is_empty() {
            self.flips_left -= 1;
            flip_bit(&mut self.rng, &mut bytes);
            self.note(format!("flip {from} -> {to}"));
        }
        self.wire.send(&sock, from, now, to, &bytes);
    }

    async fn handle(&mut self, d: Inbound) -> turmoil::Result {
        let now = now();
        // Taken by the middlebox itself; what it forwards (or blocks) is a datagram of its own.
        let at = SocketAddr::new(self.ip, d.port);
        let taken = crate::ReceiveOutcome::Accepted;
        crate::tap::heard(&self.world, &self.host, d.from, at, &d.bytes, taken);
        if self.is_private(d.from.ip()) {
            self.outbound(d, now).await
        } else {
            self.inbound(d, now);
            Ok(())
        }
    }

    async fn outbound(&mut self, d: Inbound, now: Instant) -> turmoil::Result {
        let dest = match self.config.routes.iter().find(|r| r.inside_port == d.port) {
            Some(r) if r.destination.ip().is_unspecified() => {
                SocketAddr::new(self.ip, r.destination.port())
            }
            Some(r) => r.destination,
            // Sent straight to a public port of ours: a hairpin attempt.
            None => SocketAddr::new(self.ip, d.port),
        };
        let port = self.map_out(d.from, now).await?;
        if dest.ip() == self.ip {
            let owner = self
                .mappings
                .get(&dest.port())
                .filter(|m| self.is_live(m, now))
                .map(|m| m.private);
            match owner {
                Some(owner) if self.config.hairpin => self.send(port, owner, d.bytes),
                _ => self
                    .wire
                    .blocked(now, SocketAddr::new(self.ip, port), dest, &d.bytes),
            }
            return Ok(());
        }
        if self.recorded.len() >= self.config.max_recorded && !self.recorded.is_empty() {
            self.recorded.remove(0);
        }
        self.recorded.push(Recorded {
            port,
            to: dest,
            bytes: d.bytes.clone(),
        });
        self.send(port, dest, d.bytes);
        Ok(())
    }

    fn inbound(&mut self, d: Inbound, now: Instant) {
        let owner = self
            .mappings
            .get(&d.port)
            .filter(|m| self.is_live(m, now))
            .map(|m| m.private);
        let Some(owner) = owner else {
            if self.mappings.contains_key(&d.port) {
                self.expire(d.port);
            }
            let at = SocketAddr::new(self.ip, d.port);
            self.wire.blocked(now, d.from, at, &d.bytes);
            return;
        };
        let from_port = self
            .config
            .routes
            .iter()
            .find(|r| r.destination == d.from)
            .map_or(d.port, |r| r.inside_port);
        self.send(from_port, owner, d.bytes);
    }

    async fn attack(&mut self, attack: Attack) -> turmoil::Result {
        match &attack {
            Attack::SpoofFlood {
                target,
                source,
                per_second,
                duration,
                packets,
                ..
            } => self.note(format!(
                "attack SpoofFlood {{ target: {target}, source: {source:?}, \
                 per_second: {per_second}, duration: {duration:?}, packets: {} }}",
                packets.len()
            )),
            a => self.note(format!("attack {a:?}")),
        }
        match attack {
            Attack::SpoofFlood {
                target,
                source,
                per_second,
                duration,
                packets,
                random_tail,
            } => {
                let now = now();
                self.flooding = Some(Flooding {
                    target,
                    source,
                    per_tick: (per_second / 1000).max(1) as usize,
                    until: now + duration,
                    next_tick: now,
                    packets,
                    random_tail,
                });
            }
            Attack::FlipBits { count } => self.flips_left += count,
            Attack::Replay { count } => {
                let start = self.recorded.len().saturating_sub(count);
                let replays: Vec<(u16, SocketAddr, Vec<u8>)> = self
                    .recorded
                    .get(start..)
                    .unwrap_or_default()
                    .iter()
                    .map(|r| (r.port, r.to, r.bytes.clone()))
                    .collect();
                for (port, to, bytes) in replays {
                    self.send(port, to, bytes);
                }
            }
            Attack::Forge { count } => {
                let victim = self.mappings.values().next().map(|m| m.port);
                let dest = self.config.routes.first().map(|r| r.destination);
                if let (Some(port), Some(to)) = (victim, dest) {
                    for _ in 0..count {
                        let bytes = self.forged_session();
                        self.send(port, to, bytes);
                    }
                }
            }
            Attack::Flood {
                target,
                count,
                sources,
                client_id,
            } => {
                let sources = sources.max(1);
                for i in 0..count {
                    let offset = u16::try_from(i % usize::from(sources)).unwrap_or(0);
                    let port = self.config.first_flood_port.saturating_add(offset);
                    self.open(port).await?;
                    let id = client_id.unwrap_or_else(|| ClientId(self.rng.array()));
                    let bytes = self.nonce_request(id);
                    self.send(port, target, bytes);
                }
            }
        }
        Ok(())
    }

    /// Sends one batch of the flood in progress, and schedules the next or ends it.
    async fn flood_tick(&mut self) -> turmoil::Result {
        let Some(f) = self.flooding.as_mut() else {
            return Ok(());
        };
        let now = now();
        if now >= f.until || f.packets.is_empty() {
            self.flooding = None;
            self.note("flood over".into());
            return Ok(());
        }
        f.next_tick = now + FLOOD_TICK;
        let (target, source, per_tick, random) = (f.target, f.source, f.per_tick, f.random_tail);
        let mut batch = Vec::with_capacity(per_tick);
        for _ in 0..per_tick {
            let f = self.flooding.as_ref().map(|f| &f.packets);
            let Some(packets) = f else { break };
            // NOTE(cast): a count of datagrams sent, reduced modulo a Vec's length.
            let mut bytes = packets[(self.spoofed % packets.len() as u64) as usize].clone();
            let tail = bytes.len().saturating_sub(random);
            self.rng.fill(&mut bytes[tail..]);
            let from = source.unwrap_or_else(|| crate::spoofed_source(self.spoofed));
            batch.push((from, bytes));
            self.spoofed += 1;
        }
        let sock = self.open(self.config.first_flood_port).await?;
        self.wire.send_spoofed(&sock, now, target, &batch);
        Ok(())
    }

    fn forged_session(&mut self) -> Vec<u8> {
        let mut bytes = wire::MAGIC.to_vec();
        let counter = self.rng.range_inclusive(1, u64::MAX);
        bytes.extend_from_slice(&counter.to_le_bytes());
        let body = self.rng.range_inclusive(17, 64) as usize;
        let mut rest = vec![0u8; body];
        self.rng.fill(&mut rest);
        bytes.extend_from_slice(&rest);
        bytes
    }

    fn nonce_request(&mut self, client_id: ClientId) -> Vec<u8> {
        let setup = Setup::NonceRequest(NonceRequest {
            cipher: CipherId::Psk,
            client_id,
            challenge: self.rng.array(),
            session_hint: [0; 16],
            public_key: [0; 32],
        });
        let mut buf = vec![0u8; setup.buffer_len()];
        let n = setup.emit(&mut buf).unwrap_or(0);
        buf.truncate(n);
        buf
    }
}
