//! The relay role: carries UDP broadcast and multicast datagrams of configured ports between
//! network segments over authenticated suite 3 sessions with the other relays of a mesh.
//!
//! A relay has two sides:
//! - **the mesh**: one UDP port (`handle_datagram` / `poll_transmit`, as every role), on which
//!   it holds a suite 3 session with every other relay it trusts;
//! - **the segment**: the broadcast or multicast datagrams of the configured ports that the
//!   driver sees on the local network ([`Relay::handle_local`]), and the datagrams the relay
//!   asks the driver to emit there ([`Relay::poll_emit`]).
//!
//! Inside, a relay is one suite 3 [`Server`] (which admits exactly the trusted relay keys) and
//! one [`Client`] per peer relay, all on the one mesh socket: `mesh` demultiplexes received
//! datagrams by the top byte of the session index and keeps the peers and their membership;
//! `carry` holds the capture, receive, forward and emit rules; `docs/PROTOCOL.md` §14 is the
//! normative description.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, SocketAddr};

use crate::crypto::ecc::{KeyPair, PublicKey};
use crate::id::ClientId;
use crate::time::{Duration, Instant};

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Server, Stats, Transmit};
use crate::features::relay::bucket::TokenBucket;
use crate::features::relay::echo::EchoCache;
use crate::features::relay::window::SeqWindows;
use crate::rng::Rng;

mod carry;
mod mesh;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_input;

/// A relay's identity: the default client id of its static public key (the first 16 bytes of
/// `BLAKE2b-256(public key)`), so it cannot be claimed without the key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayId(pub ClientId);

impl RelayId {
    /// The id of the relay holding this public key.
    pub fn of(public: &PublicKey) -> RelayId {
        RelayId(crate::crypto::ecc::default_client_id(public))
    }
}

impl fmt::Debug for RelayId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayId({})", self)
    }
}

impl fmt::Display for RelayId {
    /// The first 8 bytes in hex, enough to tell relays apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 .0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// How a datagram reached (or leaves on) the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// To the segment's broadcast address (IPv4 limited or directed broadcast); emitted to
    /// the receiving segment's own broadcast address.
    Broadcast,
    /// To this multicast group; emitted to the same group.
    Multicast(IpAddr),
}

/// A broadcast or multicast datagram the driver saw on the local segment.
#[derive(Clone, Copy, Debug)]
pub struct LocalDatagram<'a> {
    /// Who sent it (source address and port).
    pub source: SocketAddr,
    /// Broadcast or which group.
    pub scope: Scope,
    /// Its destination port (one of [`RelayConfig::ports`], or it is dropped).
    pub port: u16,
    /// The UDP payload, whole.
    pub payload: &'a [u8],
}

/// A datagram the driver must emit on the local segment; its payload is the first `len` bytes
/// of the buffer given to [`Relay::poll_emit`].
#[must_use = "the datagram in the buffer must be emitted"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Emit {
    /// The original sender's address. A driver that can (raw sockets) emits with this source
    /// so that replies go straight to the sender; otherwise it emits from its own address.
    pub source: SocketAddr,
    /// Broadcast or which group.
    pub scope: Scope,
    /// Destination port.
    pub port: u16,
    /// Payload length at the start of the buffer.
    pub len: usize,
}

/// Another relay this one knows from configuration: where it listens and its static key.
#[derive(Clone, Debug)]
pub struct RelayPeer {
    /// Its mesh address.
    pub addr: SocketAddr,
    /// Its static public key.
    pub public: PublicKey,
}

/// Capacities, rates and timers of a relay. Every table a peer or the segment can make a
/// relay grow has a bound here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// Most hops a carried datagram may travel (1: only from its origin to direct peers).
    pub hop_limit: u8,
    /// How long a carried datagram's content is remembered, to recognise its copies (from a
    /// second relay of its segment, or its own re-emission heard back from the segment).
    /// Identical datagrams (same port and payload) within this window are carried once.
    pub echo_window: Duration,
    /// Most content digests remembered.
    pub echo_entries: usize,
    /// Most origins whose sequence windows are kept.
    pub max_origins: usize,
    /// Most relays in the mesh (configured and learned).
    pub max_peers: usize,
    /// Datagrams per second, and burst, accepted from one origin relay for emission.
    pub per_origin_rate: u32,
    /// Burst of `per_origin_rate`.
    pub per_origin_burst: u32,
    /// Datagrams per second, and burst, captured on one port for carrying.
    pub per_port_rate: u32,
    /// Burst of `per_port_rate`.
    pub per_port_burst: u32,
    /// Keepalive interval on every mesh session; a peer is down after `down_after` of silence.
    pub keepalive: Duration,
    /// Silence after which a peer relay is reported down.
    pub down_after: Duration,
    /// Interval between membership announcements to every peer (also sent on every change).
    pub announce_interval: Duration,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            hop_limit: 2,
            echo_window: Duration::from_secs(1),
            echo_entries: 4096,
            max_origins: 64,
            max_peers: 32,
            per_origin_rate: 500,
            per_origin_burst: 1000,
            per_port_rate: 500,
            per_port_burst: 1000,
            keepalive: Duration::from_secs(1),
            down_after: Duration::from_secs(4),
            announce_interval: Duration::from_secs(10),
        }
    }
}

/// Configuration of a [`Relay`].
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Seed of the relay's RNG. Use fresh OS randomness in deployments.
    pub seed: [u8; 32],
    /// Our static key pair; our [`RelayId`] derives from its public half.
    pub keys: KeyPair,
    /// The segment we sit on. Relays that announce the same name share a segment and
    /// elect one emitter among them. A driver's default is the interface's network, for
    /// example `192.168.1.0/24`. At most 64 bytes.
    pub segment: String,
    /// The destination ports whose broadcasts we carry and accept from the mesh.
    pub ports: Vec<u16>,
    /// Relays we connect to at start.
    pub peers: Vec<RelayPeer>,
    /// Further public keys of relays that may join by announcement (the keys of `peers` are
    /// trusted already). Nothing signed by another key is accepted.
    pub trusted: Vec<PublicKey>,
    /// Our mesh address as others should reach it, if the driver knows it (announced to peers;
    /// otherwise they use the address our packets come from).
    pub advertise: Option<SocketAddr>,
    /// Capacities, rates and timers.
    pub limits: RelayLimits,
}

impl RelayConfig {
    /// A relay on `segment` carrying `ports`, with no peers yet (add them with
    /// [`RelayConfig::with_peer`] and [`RelayConfig::with_trusted`]).
    pub fn new(keys: KeyPair, segment: &str, ports: &[u16], seed: [u8; 32]) -> Self {
        RelayConfig {
            seed,
            keys,
            segment: String::from(segment),
            ports: ports.to_vec(),
            peers: Vec::new(),
            trusted: Vec::new(),
            advertise: None,
            limits: RelayLimits::default(),
        }
    }

    /// Adds a relay to connect to at start.
    pub fn with_peer(mut self, addr: SocketAddr, public: PublicKey) -> Self {
        self.peers.push(RelayPeer { addr, public });
        self
    }

    /// Trusts a relay key that may join later by announcement.
    pub fn with_trusted(mut self, public: PublicKey) -> Self {
        self.trusted.push(public);
        self
    }
}

/// What a relay tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayEvent {
    /// A mesh session with this relay came up (first time, or again after it was down).
    PeerUp {
        /// Which relay.
        relay: RelayId,
        /// Its mesh address.
        addr: SocketAddr,
        /// The segment it announced (empty until its first announcement).
        segment: String,
    },
    /// Nothing authenticated was heard from this relay for `down_after`.
    PeerDown {
        /// Which relay.
        relay: RelayId,
    },
    /// A trusted relay not in our configuration became known (it connected to us, or a peer
    /// announced it); we connect to it.
    PeerJoined {
        /// Which relay.
        relay: RelayId,
        /// Its mesh address.
        addr: SocketAddr,
    },
    /// We became, or stopped being, the relay that emits on our segment.
    Emitter {
        /// Whether we emit now.
        active: bool,
    },
}

/// Why a relay dropped a datagram (from the segment or from the mesh). Counted in
/// [`RelayStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RelayDrop {
    /// Segment: a datagram this relay or another relay of the segment emitted, heard back.
    Echo,
    /// Mesh: a copy of a datagram already taken (same origin and sequence).
    Duplicate,
    /// Mesh: a datagram with content already carried or emitted within the echo window (a
    /// second relay of the origin segment captured it too).
    DuplicateContent,
    /// Mesh: it travelled more hops than our hop limit.
    HopLimit,
    /// Either side: a port we do not carry.
    UnknownPort,
    /// Mesh: a frame from a peer that is not a trusted relay, or naming an origin we do not
    /// trust.
    UnknownRelay,
    /// Mesh: an origin sent more than its rate allows.
    OriginRate,
    /// Segment: more broadcasts on one port than its rate allows.
    PortRate,
    /// Segment: larger than one mesh datagram can carry (never truncated).
    TooLarge,
    /// Mesh: a relay frame that does not parse.
    Malformed,
    /// Mesh: a datagram that is not suite 3 (the mesh speaks nothing else), or a suite 3
    /// group packet (the mesh uses none).
    NotSuite3,
    /// Segment: the queue of datagrams waiting for `poll_emit` was full (the driver does not
    /// drain it).
    EmitQueueFull,
}

impl RelayDrop {
    /// Every reason, in declaration order.
    pub const ALL: &'static [RelayDrop] = &[
        RelayDrop::Echo,
        RelayDrop::Duplicate,
        RelayDrop::DuplicateContent,
        RelayDrop::HopLimit,
        RelayDrop::UnknownPort,
        RelayDrop::UnknownRelay,
        RelayDrop::OriginRate,
        RelayDrop::PortRate,
        RelayDrop::TooLarge,
        RelayDrop::Malformed,
        RelayDrop::NotSuite3,
        RelayDrop::EmitQueueFull,
    ];

    /// A short name for logs and metrics (`echo`, `duplicate`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            RelayDrop::Echo => "echo",
            RelayDrop::Duplicate => "duplicate",
            RelayDrop::DuplicateContent => "duplicate_content",
            RelayDrop::HopLimit => "hop_limit",
            RelayDrop::UnknownPort => "unknown_port",
            RelayDrop::UnknownRelay => "unknown_relay",
            RelayDrop::OriginRate => "origin_rate",
            RelayDrop::PortRate => "port_rate",
            RelayDrop::TooLarge => "too_large",
            RelayDrop::Malformed => "malformed",
            RelayDrop::NotSuite3 => "not_suite3",
            RelayDrop::EmitQueueFull => "emit_queue_full",
        }
    }
}

/// What a relay did, and what it dropped by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Datagrams passed to `handle_local`.
    pub captured: u64,
    /// Captured datagrams sent into the mesh (counted once, however many peers got it).
    pub carried: u64,
    /// Relay frames received from the mesh.
    pub received: u64,
    /// Datagrams handed to the driver by `poll_emit`.
    pub emitted: u64,
    /// Frames passed on to further relays (hop > 1).
    pub forwarded: u64,
    /// Frames received and not emitted because another relay of our segment emits.
    pub standby: u64,
    drops: [u64; RelayDrop::ALL.len()],
}

impl RelayStats {
    /// Datagrams dropped for `reason`.
    pub fn dropped(&self, reason: RelayDrop) -> u64 {
        let i = RelayDrop::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.drops.get(i).copied().unwrap_or(0)
    }

    /// Every reason with its count.
    pub fn drops(&self) -> impl Iterator<Item = (RelayDrop, u64)> + '_ {
        RelayDrop::ALL.iter().map(|r| (*r, self.dropped(*r)))
    }

    pub(crate) fn drop(&mut self, reason: RelayDrop) {
        if let Some(i) = RelayDrop::ALL.iter().position(|r| *r == reason) {
            if let Some(c) = self.drops.get_mut(i) {
                *c += 1;
            }
        }
    }
}

/// One mesh peer as the relay sees it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// Which relay.
    pub relay: RelayId,
    /// Its mesh address.
    pub addr: SocketAddr,
    /// The segment it announced (empty until known).
    pub segment: String,
    /// Whether its session is up.
    pub up: bool,
    /// Configured (`true`) or learned by announcement.
    pub configured: bool,
}

/// A relay of the mesh: it carries UDP broadcast and multicast datagrams of configured ports
/// between network segments over authenticated suite 3 sessions with the other relays.
///
/// It has two sides: **the mesh**, one UDP port (`handle_datagram` / `poll_transmit`, as
/// every role), on which it holds a session with every other relay it trusts; and **the
/// segment**: the broadcast or multicast datagrams of the configured ports that the driver
/// sees on the local network ([`Relay::handle_local`]), and those the relay asks the driver
/// to emit there ([`Relay::poll_emit`]). Drain after every input: `poll_transmit`, then
/// `poll_emit`, then `poll_event`, each until `None`; wake at `poll_timeout`.
/// `docs/PROTOCOL.md` §14 specifies the mesh.
#[derive(Debug)]
pub struct Relay {
    config: RelayConfig,
    id: RelayId,
    rng: Rng,
    /// Random per process start, so our sequence numbers restarting at 1 are not replays.
    instance: u32,
    /// The last sequence number we gave a captured datagram.
    seq: u64,
    /// Answers the other relays' clients (index prefix 0).
    server: Server,
    /// Every trusted relay key (configured, trusted, added), by relay id.
    trusted: BTreeMap<RelayId, PublicKey>,
    /// Peers we hold a client for, each in its own index slot (1..=255).
    peers: BTreeMap<RelayId, mesh::Peer>,
    /// Addresses our own emissions come from as peers see them (announced back to us), so
    /// that our echo is recognised even when the driver did not tell us our address. At most
    /// `max_peers`.
    own_addrs: BTreeSet<SocketAddr>,
    echo: EchoCache,
    windows: SeqWindows,
    origin_buckets: BTreeMap<RelayId, TokenBucket>,
    port_buckets: BTreeMap<u16, TokenBucket>,
    /// Datagrams for `poll_emit`, at most [`EMIT_QUEUE`].
    emits: VecDeque<(Emit, Vec<u8>)>,
    /// Reused for every `carry` frame we write, so carrying allocates no buffer of its own.
    frame: Vec<u8>,
    events: VecDeque<RelayEvent>,
    emitter: bool,
    next_announce: Option<Instant>,
    /// Which endpoint `poll_transmit` asks first, so that no peer starves the others.
    next_poll: usize,
    closed: bool,
    stats: RelayStats,
    mesh_stats: Stats,
}

/// Most datagrams waiting for `poll_emit`.
const EMIT_QUEUE: usize = 256;

impl Relay {
    /// Creates a relay. It starts its handshakes with the configured peers at once: drain
    /// `poll_transmit`.
    pub fn new(config: RelayConfig) -> Self {
        let mut rng = Rng::from_seed(config.seed);
        let id = RelayId::of(config.keys.public());
        let instance = rng.next_u64() as u32;
        let server = Server::new(mesh::server_config(&config, rng.array()));
        let now = Instant::ZERO;
        let port_buckets = config
            .ports
            .iter()
            .map(|p| {
                let l = &config.limits;
                (*p, TokenBucket::new(l.per_port_rate, l.per_port_burst, now))
            })
            .collect();
        let mut relay = Relay {
            id,
            rng,
            instance,
            seq: 0,
            server,
            trusted: BTreeMap::new(),
            peers: BTreeMap::new(),
            own_addrs: BTreeSet::new(),
            echo: EchoCache::new(config.limits.echo_window, config.limits.echo_entries),
            windows: SeqWindows::new(config.limits.max_origins),
            origin_buckets: BTreeMap::new(),
            port_buckets,
            emits: VecDeque::new(),
            frame: Vec::new(),
            events: VecDeque::new(),
            emitter: true,
            next_announce: None,
            next_poll: 0,
            closed: false,
            stats: RelayStats::default(),
            mesh_stats: Stats::default(),
            config,
        };
        let keys: Vec<PublicKey> = relay
            .config
            .peers
            .iter()
            .map(|p| p.public)
            .chain(relay.config.trusted.iter().copied())
            .collect();
        for k in keys {
            relay.trust(k);
        }
        for p in relay.config.peers.clone() {
            relay.connect(now, p.public, p.addr, true);
        }
        relay.refresh_stats();
        relay
    }

    /// Our identity.
    pub fn id(&self) -> RelayId {
        self.id
    }

    /// Processes one datagram received on the mesh port.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.demux(now, from, datagram);
        self.pump(now);
    }

    /// Processes one broadcast or multicast datagram seen on the local segment.
    pub fn handle_local(&mut self, now: Instant, datagram: LocalDatagram<'_>) {
        self.capture(now, datagram);
        self.refresh_stats();
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.server.handle_timeout(now);
        for p in self.peers.values_mut() {
            p.client.handle_timeout(now);
        }
        if self.next_announce.is_some_and(|t| t <= now) {
            self.announce_all(now);
        }
        self.echo.expire(now);
        self.pump(now);
    }

    /// Writes the next mesh datagram into `buf` and says where it goes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let n = self.peers.len() + 1;
        for k in 0..n {
            let i = (self.next_poll + k) % n;
            let t = if i == 0 {
                self.server.poll_transmit(now, buf)
            } else {
                self.peers
                    .values_mut()
                    .nth(i - 1)
                    .and_then(|p| p.client.poll_transmit(now, buf))
            };
            if t.is_some() {
                self.next_poll = (i + 1) % n;
                self.refresh_stats();
                return t;
            }
        }
        None
    }

    /// Writes the next datagram to emit on the local segment into `buf` (at least
    /// [`crate::wire::MAX_DATAGRAM`] bytes).
    pub fn poll_emit(&mut self, buf: &mut [u8]) -> Option<Emit> {
        self.next_emit(buf)
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// When the relay next wants `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // The echo cache needs no wake-up: a key past its window no longer matches, and the
        // next insertion forgets it (the cache stays bounded by `echo_entries` meanwhile).
        let clients = self.peers.values().filter_map(|p| p.client.poll_timeout());
        self.server
            .poll_timeout()
            .into_iter()
            .chain(clients)
            .chain(self.next_announce)
            .min()
    }

    /// What the relay carried, emitted and dropped.
    pub fn relay_stats(&self) -> &RelayStats {
        &self.stats
    }

    /// The mesh sessions' counters (handshakes, authentication failures, replays), summed
    /// over the relay's sessions.
    pub fn stats(&self) -> &Stats {
        &self.mesh_stats
    }

    /// Turns the key log on or off (off by default); see [`crate::keylog`].
    pub fn set_key_log(&mut self, on: bool) {
        // The server's flag is the relay's: peers' clients made later copy it (`mesh`).
        self.server.set_key_log(on);
        for p in self.peers.values_mut() {
            p.client.set_key_log(on);
        }
    }

    /// The next session secret for the key log; `None` while the key log is off.
    pub fn poll_secret(&mut self) -> Option<crate::keylog::SessionSecret> {
        self.server
            .poll_secret()
            .or_else(|| self.peers.values_mut().find_map(|p| p.client.poll_secret()))
    }

    /// Every known peer relay, configured or learned.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .map(|(id, p)| PeerStatus {
                relay: *id,
                addr: p.addr,
                segment: p.segment.clone(),
                up: p.up,
                configured: p.configured,
            })
            .collect()
    }

    /// Whether we emit on our segment now.
    pub fn is_emitter(&self) -> bool {
        self.emitter
    }

    /// Adds a peer at run time (a driver's rediscovery, for example DNS); it is trusted from
    /// now on.
    pub fn add_peer(&mut self, now: Instant, peer: RelayPeer) {
        self.trust(peer.public);
        let id = RelayId::of(&peer.public);
        match self.peers.get(&id) {
            Some(p) if p.addr == peer.addr || p.up => {}
            _ => self.connect(now, peer.public, peer.addr, true),
        }
        self.pump(now);
    }

    /// Ends every mesh session (peers see us leave at once rather than after `down_after`).
    pub fn close(&mut self, now: Instant) {
        self.closed = true;
        for p in self.peers.values_mut() {
            p.client.close(now);
        }
        self.server.close(now);
        self.next_announce = None;
        self.pump(now);
    }

    /// Sets `mesh_stats` to the sum of the embedded endpoints' counters.
    fn refresh_stats(&mut self) {
        let mut sum = self.server.stats().clone();
        for p in self.peers.values() {
            sum.add(p.client.stats());
        }
        self.mesh_stats = sum;
    }
}
