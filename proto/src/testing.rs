//! An in-memory network for driving endpoints in tests and benchmarks.
//!
//! [`Network`] owns any number of endpoints at fixed addresses, a virtual clock and one link
//! model (latency, jitter that reorders, loss, duplication), all drawn from a seeded RNG, so a
//! seed replays a run exactly. It never sleeps and never opens a socket. Shaped like
//! quinn-proto's test `Pair`: [`Network::step`] delivers what is due and jumps the clock to the
//! next deadline of any endpoint or datagram; [`Network::run_for`] steps until a time and fails
//! on livelock.
//!
//! Tests can capture every datagram ([`Network::capture`]), drop or alter datagrams in flight
//! ([`Network::set_filter`]), inject raw bytes ([`Network::inject`]), take a host down
//! ([`Network::set_up`]), swap an endpoint for a fresh one to simulate a reboot
//! ([`Network::replace`]), put hosts in multicast groups ([`Network::join`]), give one direction
//! of one path its own link ([`Network::set_path`]) and give a host its own clock
//! ([`Network::set_clock_offset`]).
//!
//! # Examples
//! ```
//! use pavillion_proto::crypto::Psk;
//! use pavillion_proto::endpoint::{ClientConfig, ClientEvent, SendOptions, ServerConfig};
//! use pavillion_proto::testing::{Link, Network};
//! use pavillion_proto::{ClientId, Duration};
//!
//! let id = ClientId([1; 16]);
//! let server = "10.0.0.1:1783".parse().unwrap();
//! let client = "10.0.0.2:40000".parse().unwrap();
//! let mut net = Network::new(7, Link::lossy(0.3));
//! net.add_server(server, ServerConfig::new([1; 32]).with_psk_client(id, Psk::from_bytes([9; 32])));
//! net.add_client(client, ClientConfig::psk(id, Psk::from_bytes([9; 32]), server, [2; 32]));
//! let now = net.now();
//! let msg = net.client(client).send_message(now, "t", "n", b"hi", SendOptions::reliable()).unwrap();
//! net.run_for(Duration::from_secs(5));
//! let events = net.client_events(client);
//! assert!(events.iter().any(|e| matches!(e, ClientEvent::Delivered { id, .. } if *id == msg)));
//! ```

pub mod authority;
pub mod established;
pub mod relays;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::endpoint::{
    Client, ClientConfig, ClientEvent, Endpoint, Server, ServerConfig, ServerEvent, Transmit,
};
use crate::rng::Rng;
use crate::time::{Duration, Instant};
use crate::wire;

/// One endpoint on the network.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Node {
    /// A client.
    Client(Client),
    /// A server.
    Server(Server),
}

impl Node {
    // A host of either role is driven through the one `Endpoint` contract; the match only
    // picks the role, because each role has its own event type.

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Node::Client(c) => Endpoint::handle_timeout(c, now),
            Node::Server(s) => Endpoint::handle_timeout(s, now),
        }
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match self {
            Node::Client(c) => Endpoint::handle_datagram(c, now, from, data),
            Node::Server(s) => Endpoint::handle_datagram(s, now, from, data),
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        match self {
            Node::Client(c) => Endpoint::poll_transmit(c, now, buf),
            Node::Server(s) => Endpoint::poll_transmit(s, now, buf),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Node::Client(c) => Endpoint::poll_timeout(c),
            Node::Server(s) => Endpoint::poll_timeout(s),
        }
    }

    /// Moves the endpoint's pending events to the end of the list of its role.
    fn drain_events(&mut self, client: &mut Vec<ClientEvent>, server: &mut Vec<ServerEvent>) {
        match self {
            Node::Client(c) => drain(c, client),
            Node::Server(s) => drain(s, server),
        }
    }
}

fn drain<E: Endpoint>(endpoint: &mut E, into: &mut Vec<E::Event>) {
    into.extend(core::iter::from_fn(|| endpoint.poll_event()));
}

/// The link model, applied to every datagram independently.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter`; a jitter above the gap between two
    /// datagrams reorders them.
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
}

impl Link {
    /// A clean LAN link: 500 µs each way.
    pub const fn clean() -> Self {
        Link {
            latency: Duration::from_micros(500),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
        }
    }

    /// A clean link with this loss probability.
    pub const fn lossy(loss: f64) -> Self {
        Link {
            loss,
            ..Link::clean()
        }
    }
}

/// A datagram seen on the network, as [`Network::capture`] records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// When it was sent.
    pub at: Instant,
    /// Sender.
    pub from: SocketAddr,
    /// Destination.
    pub to: SocketAddr,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What a filter decides for a datagram in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Deliver it (possibly altered by the filter).
    Deliver,
    /// Drop it.
    Drop,
}

/// A test hook that sees (and may alter) every datagram as it is sent.
pub type Filter = Box<dyn FnMut(&mut Captured) -> Verdict>;

struct Host {
    addr: SocketAddr,
    node: Node,
    up: bool,
    /// Events not yet taken, in the list of the endpoint's role (the other stays empty).
    client_events: Vec<ClientEvent>,
    server_events: Vec<ServerEvent>,
    /// Added to the network clock for this host: its clock reads `now + offset`.
    clock_offset: Duration,
}

struct Flight {
    arrive: Instant,
    seq: u64,
    /// The host it is delivered to (a member, for a datagram sent to a group).
    recipient: SocketAddr,
    datagram: Captured,
}

/// Counts of what the network did to datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Datagrams delivered to an endpoint.
    pub delivered: u64,
    /// Datagrams lost by the link model or a filter.
    pub lost: u64,
    /// Extra copies made by the link model.
    pub duplicated: u64,
    /// Datagrams to an address with no host, or to a host that is down.
    pub undeliverable: u64,
}

/// Endpoints on a simulated network with a virtual clock.
pub struct Network {
    now: Instant,
    hosts: Vec<Host>,
    flights: Vec<Flight>,
    link: Link,
    rng: Rng,
    seq: u64,
    capture: Option<Vec<Captured>>,
    filter: Option<Filter>,
    buf: Vec<u8>,
    stats: NetStats,
    /// (group, member) pairs.
    groups: Vec<(SocketAddr, SocketAddr)>,
    /// Links that override `link` for one direction of one path: (from, to, link).
    paths: Vec<(SocketAddr, SocketAddr, Link)>,
    /// Steps `run_for` may take per simulated second before it declares livelock.
    pub max_steps_per_second: u64,
}

impl core::fmt::Debug for Network {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Network")
            .field("now", &self.now)
            .field("hosts", &self.hosts.len())
            .field("in_flight", &self.flights.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Network {
    /// An empty network whose randomness comes from `seed`. The clock starts at 1 s, so that
    /// nothing relies on time starting at zero.
    pub fn new(seed: u64, link: Link) -> Self {
        Network {
            now: Instant::from_millis(1_000),
            hosts: Vec::new(),
            flights: Vec::new(),
            link,
            rng: Rng::seed_from_u64(seed),
            seq: 0,
            capture: None,
            filter: None,
            buf: vec![0; wire::MAX_DATAGRAM],
            stats: NetStats::default(),
            groups: Vec::new(),
            paths: Vec::new(),
            max_steps_per_second: 2_000_000,
        }
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// What the network did so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Changes the link model from now on.
    pub fn set_link(&mut self, link: Link) {
        self.link = link;
    }

    /// Adds a client at `addr`.
    pub fn add_client(&mut self, addr: SocketAddr, config: ClientConfig) {
        self.add(addr, Node::Client(Client::new(config)));
    }

    /// Adds a server at `addr`.
    pub fn add_server(&mut self, addr: SocketAddr, config: ServerConfig) {
        self.add(addr, Node::Server(Server::new(config)));
    }

    /// Adds any endpoint at `addr`, replacing one already there.
    pub fn add(&mut self, addr: SocketAddr, node: Node) {
        self.hosts.retain(|h| h.addr != addr);
        self.hosts.push(Host {
            addr,
            node,
            up: true,
            client_events: Vec::new(),
            server_events: Vec::new(),
            clock_offset: Duration::ZERO,
        });
    }

    /// Makes `member` receive datagrams sent to `group` (a multicast or broadcast address).
    /// The sender of a group datagram does not get its own copy.
    pub fn join(&mut self, member: SocketAddr, group: SocketAddr) {
        if !self.groups.contains(&(group, member)) {
            self.groups.push((group, member));
        }
    }

    /// Stops `member` receiving datagrams sent to `group`.
    pub fn leave(&mut self, member: SocketAddr, group: SocketAddr) {
        self.groups.retain(|g| *g != (group, member));
    }

    /// Uses `link` instead of the network's link for datagrams from `from` to `to`, for
    /// asymmetric paths or one bad link. `to` may be a group address: the link then applies to
    /// every datagram sent to that address, and takes precedence over a member's own path (so
    /// a host joined to an address can model two sockets that see traffic at different delays,
    /// as the reference server's listening and reply sockets do).
    pub fn set_path(&mut self, from: SocketAddr, to: SocketAddr, link: Link) {
        self.paths.retain(|(f, t, _)| (*f, *t) != (from, to));
        self.paths.push((from, to, link));
    }

    /// Makes the clock of the host at `addr` read `offset` ahead of the network's.
    pub fn set_clock_offset(&mut self, addr: SocketAddr, offset: Duration) {
        if let Some(h) = self.host_mut(addr) {
            h.clock_offset = offset;
        }
    }

    /// The clock of the host at `addr` (the network clock plus its offset).
    pub fn clock_of(&self, addr: SocketAddr) -> Instant {
        let offset = self
            .hosts
            .iter()
            .find(|h| h.addr == addr)
            .map_or(Duration::ZERO, |h| h.clock_offset);
        self.now + offset
    }

    /// Swaps the endpoint at `addr` for `node`, as a reboot does: its state and undelivered
    /// events are gone; datagrams in flight to the address reach the new endpoint.
    pub fn replace(&mut self, addr: SocketAddr, node: Node) {
        if let Some(h) = self.host_mut(addr) {
            h.node = node;
            h.client_events.clear();
            h.server_events.clear();
        }
    }

    /// Takes a host off the network (`false`) or back on. A host that is down neither sends
    /// nor receives, and its timers do not run.
    pub fn set_up(&mut self, addr: SocketAddr, up: bool) {
        if let Some(h) = self.host_mut(addr) {
            h.up = up;
        }
    }

    /// Starts (or restarts) recording every datagram sent.
    pub fn capture(&mut self) {
        self.capture = Some(Vec::new());
    }

    /// The datagrams recorded since [`Network::capture`].
    pub fn captured(&self) -> &[Captured] {
        self.capture.as_deref().unwrap_or_default()
    }

    /// Installs a hook that sees every datagram as it is sent, before the link model.
    pub fn set_filter(&mut self, filter: impl FnMut(&mut Captured) -> Verdict + 'static) {
        self.filter = Some(Box::new(filter));
    }

    /// Removes the filter.
    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Puts raw bytes on the wire from `from` to `to`, arriving after the link latency; no
    /// loss applies.
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        let datagram = Captured {
            at: self.now,
            from,
            to,
            bytes: bytes.to_vec(),
        };
        for recipient in self.recipients(from, to) {
            let at = self.now + self.link_for(from, recipient).latency;
            self.schedule(at, recipient, datagram.clone());
        }
    }

    /// The client at `addr`.
    ///
    /// # Panics
    /// If there is no client at `addr` (a mistake in the test).
    pub fn client(&mut self, addr: SocketAddr) -> &mut Client {
        match self.host_mut(addr).map(|h| &mut h.node) {
            Some(Node::Client(c)) => c,
            _ => panic!("no client at {addr}"),
        }
    }

    /// The server at `addr`.
    ///
    /// # Panics
    /// If there is no server at `addr` (a mistake in the test).
    pub fn server(&mut self, addr: SocketAddr) -> &mut Server {
        match self.host_mut(addr).map(|h| &mut h.node) {
            Some(Node::Server(s)) => s,
            _ => panic!("no server at {addr}"),
        }
    }

    /// Takes the events the client at `addr` produced so far; none if no client is there.
    pub fn client_events(&mut self, addr: SocketAddr) -> Vec<ClientEvent> {
        self.collect();
        self.host_mut(addr)
            .map(|h| core::mem::take(&mut h.client_events))
            .unwrap_or_default()
    }

    /// Takes the events the server at `addr` produced so far; none if no server is there.
    pub fn server_events(&mut self, addr: SocketAddr) -> Vec<ServerEvent> {
        self.collect();
        self.host_mut(addr)
            .map(|h| core::mem::take(&mut h.server_events))
            .unwrap_or_default()
    }

    /// Delivers what is due and fires due timers, after moving the clock to the earliest
    /// pending deadline. Returns `false` when nothing is pending at all.
    pub fn step(&mut self) -> bool {
        self.flush();
        let next_flight = self.flights.iter().map(|f| f.arrive).min();
        let next_timer = self.next_timer();
        let Some(next) = [next_flight, next_timer].into_iter().flatten().min() else {
            return false;
        };
        self.now = self.now.max(next);
        self.deliver_due();
        let now = self.now;
        for h in self.hosts.iter_mut().filter(|h| h.up) {
            let local = now + h.clock_offset;
            if h.node.poll_timeout().is_some_and(|t| t <= local) {
                h.node.handle_timeout(local);
            }
        }
        self.flush();
        true
    }

    /// The earliest timer of any host that is up, on the network clock.
    fn next_timer(&self) -> Option<Instant> {
        self.hosts
            .iter()
            .filter(|h| h.up)
            .filter_map(|h| {
                let t = h.node.poll_timeout()?;
                Some(t.checked_sub(h.clock_offset).unwrap_or(Instant::ZERO))
            })
            .min()
    }

    /// Steps until the clock reaches `now + d` (or nothing is pending), then sets the clock
    /// there.
    ///
    /// # Panics
    /// On livelock: more than `max_steps_per_second` steps per simulated second.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let budget = (d.as_secs() + 1).saturating_mul(self.max_steps_per_second);
        let mut steps = 0u64;
        loop {
            self.flush();
            let pending = self
                .flights
                .iter()
                .map(|f| f.arrive)
                .chain(
                    self.hosts
                        .iter()
                        .filter(|h| h.up)
                        .filter_map(|h| h.node.poll_timeout()),
                )
                .min();
            match pending {
                Some(t) if t <= end => {
                    self.step();
                    steps += 1;
                    assert!(steps <= budget, "livelock: {steps} steps by {}", self.now);
                }
                _ => break,
            }
        }
        self.now = self.now.max(end);
        self.collect();
    }

    /// Steps until `done` returns true, at most for `limit` of simulated time. Returns whether
    /// `done` became true.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut Network) -> bool,
    ) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            let before = self.now;
            self.run_for(Duration::from_millis(1).min(end - before));
        }
        done(self)
    }

    fn host_mut(&mut self, addr: SocketAddr) -> Option<&mut Host> {
        self.hosts.iter_mut().find(|h| h.addr == addr)
    }

    fn collect(&mut self) {
        for h in &mut self.hosts {
            h.node
                .drain_events(&mut h.client_events, &mut h.server_events);
        }
    }

    /// Drains every endpoint's transmit queue onto the link.
    fn flush(&mut self) {
        let now = self.now;
        let mut sent = Vec::new();
        for h in self.hosts.iter_mut() {
            let local = now + h.clock_offset;
            while let Some(t) = h.node.poll_transmit(local, &mut self.buf) {
                if h.up {
                    sent.push(Captured {
                        at: now,
                        from: h.addr,
                        to: t.destination,
                        bytes: self.buf[..t.len].to_vec(),
                    });
                }
            }
            h.node
                .drain_events(&mut h.client_events, &mut h.server_events);
        }
        for mut d in sent {
            self.stats.sent += 1;
            if let Some(c) = self.capture.as_mut() {
                c.push(d.clone());
            }
            if let Some(f) = self.filter.as_mut() {
                if f(&mut d) == Verdict::Drop {
                    self.stats.lost += 1;
                    continue;
                }
            }
            // Each member of a group gets its own copy, lost or duplicated independently.
            for recipient in self.recipients(d.from, d.to) {
                let link = self.path_link(d.from, d.to, recipient);
                if self.chance(link.loss) {
                    self.stats.lost += 1;
                    continue;
                }
                if self.chance(link.duplicate) {
                    self.stats.duplicated += 1;
                    let at = self.arrival(&link);
                    self.schedule(at, recipient, d.clone());
                }
                let at = self.arrival(&link);
                self.schedule(at, recipient, d.clone());
            }
        }
    }

    /// Who receives a datagram to `to`: the members of a group, or the host itself.
    fn recipients(&self, from: SocketAddr, to: SocketAddr) -> Vec<SocketAddr> {
        let members: Vec<SocketAddr> = self
            .groups
            .iter()
            .filter(|(g, m)| *g == to && *m != from)
            .map(|(_, m)| *m)
            .collect();
        if members.is_empty() {
            vec![to]
        } else {
            members
        }
    }

    /// The link of a datagram sent to `to` and delivered to `recipient`: a path set for the
    /// address it was sent to first, then one for the recipient.
    fn path_link(&self, from: SocketAddr, to: SocketAddr, recipient: SocketAddr) -> Link {
        self.paths
            .iter()
            .find(|(f, t, _)| *f == from && *t == to)
            .map_or_else(|| self.link_for(from, recipient), |(_, _, l)| *l)
    }

    fn link_for(&self, from: SocketAddr, to: SocketAddr) -> Link {
        self.paths
            .iter()
            .find(|(f, t, _)| *f == from && *t == to)
            .map_or(self.link, |(_, _, l)| *l)
    }

    fn arrival(&mut self, link: &Link) -> Instant {
        let jitter = self.rng.range_inclusive(0, link.jitter.as_micros() as u64);
        self.now + link.latency + Duration::from_micros(jitter)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64) < p * (u64::MAX as f64)
    }

    fn schedule(&mut self, arrive: Instant, recipient: SocketAddr, datagram: Captured) {
        self.seq += 1;
        self.flights.push(Flight {
            arrive,
            seq: self.seq,
            recipient,
            datagram,
        });
    }

    fn deliver_due(&mut self) {
        let now = self.now;
        let mut due: Vec<Flight> = Vec::new();
        let mut i = 0;
        while i < self.flights.len() {
            if self.flights[i].arrive <= now {
                due.push(self.flights.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|f| (f.arrive, f.seq));
        let mut queue: VecDeque<Flight> = due.into();
        while let Some(f) = queue.pop_front() {
            let d = f.datagram;
            match self
                .hosts
                .iter_mut()
                .find(|h| h.addr == f.recipient && h.up)
            {
                Some(h) => {
                    self.stats.delivered += 1;
                    h.node
                        .handle_datagram(now + h.clock_offset, d.from, &d.bytes);
                }
                None => self.stats.undeliverable += 1,
            }
        }
    }
}

/// Fixed credentials for numbered clients and one server, shared by the benchmarks and the
/// scenario runner so that both build the same population the same way.
///
/// Keys are fixed rather than random: a seed already varies every nonce and counter, and
/// fixed keys keep a failing run's packets decodable by hand.
///
/// # Examples
/// ```
/// use pavillion_proto::testing::fixture;
/// assert_eq!(&fixture::client_id(42).0, b"client-000000042");
/// assert_ne!(fixture::client_keys(1).public(), fixture::client_keys(2).public());
/// ```
pub mod fixture {
    use crate::crypto::ecc::KeyPair;
    use crate::crypto::Psk;
    use crate::ClientId;

    /// The id of client `i`: `client-000000042`, exactly 16 bytes (`i` modulo 10^9).
    pub fn client_id(i: usize) -> ClientId {
        let mut id = *b"client-000000000";
        let mut n = i % 1_000_000_000;
        for digit in id[7..].iter_mut().rev() {
            // NOTE(cast): n % 10 < 10.
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
        ClientId(id)
    }

    /// 32 bytes of key material or seed, distinct per `tag` and `i`.
    ///
    /// The index goes in bytes 8..16: X25519 clamps the low bits of byte 0 (and the top of
    /// byte 31), so an index there would give every eight clients the same key pair — one
    /// identity under suite 3, which names a client by its static key.
    pub fn secret(tag: u8, i: usize) -> [u8; 32] {
        let mut b = [tag; 32];
        b[8..16].copy_from_slice(&(i as u64).to_le_bytes());
        b
    }

    /// The pre-shared key of client `i` (suite 1).
    pub fn client_psk(i: usize) -> Psk {
        Psk::from_bytes(secret(0x50, i))
    }

    /// The key pair of client `i` (suites 2 and 3).
    pub fn client_keys(i: usize) -> KeyPair {
        KeyPair::from_secret_bytes(secret(0xC1, i))
    }

    /// The server's key pair (suites 2 and 3).
    pub fn server_keys() -> KeyPair {
        KeyPair::from_secret_bytes(secret(0x5E, 0))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_client_gets_its_own_key_pair_and_a_readable_id() {
            let publics: alloc::collections::BTreeSet<[u8; 32]> = (0..1000)
                .map(|i| client_keys(i).public().to_bytes())
                .collect();
            assert_eq!(publics.len(), 1000);
            assert_eq!(&client_id(42).0, b"client-000000042");
            assert_eq!(&client_id(1_000_000_007).0, b"client-000000007");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::SendOptions;
    use crate::testing::fixture;

    #[test]
    fn events_are_taken_by_role_and_asking_the_wrong_role_loses_none() {
        let (s, c) = (
            "10.0.0.1:1783".parse().unwrap(),
            "10.0.0.2:40000".parse().unwrap(),
        );
        let mut net = Network::new(1, Link::clean());
        let id = fixture::client_id(1);
        let psk = crate::crypto::Psk::from_bytes([9; 32]);
        net.add_server(
            s,
            ServerConfig::new([1; 32]).with_psk_client(id, psk.clone()),
        );
        net.add_client(c, ClientConfig::psk(id, psk, s, [2; 32]));
        let now = net.now();
        net.client(c)
            .send_message(now, "t", "n", b"x", SendOptions::reliable())
            .unwrap();
        net.run_for(Duration::from_millis(100));
        assert!(net.client_events(s).is_empty());
        assert!(net.server_events(c).is_empty());
        let server = net.server_events(s);
        assert!(server
            .iter()
            .any(|e| matches!(e, ServerEvent::Connected { addr, .. } if *addr == c)));
        assert!(server
            .iter()
            .any(|e| matches!(e, ServerEvent::Message { message, .. } if message.from == c)));
        let client = net.client_events(c);
        assert!(client
            .iter()
            .any(|e| matches!(e, ClientEvent::Delivered { .. })));
        assert!(net.client_events(c).is_empty(), "taken once");
    }
}
