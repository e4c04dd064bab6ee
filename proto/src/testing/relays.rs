//! An in-memory relay mesh: several [`Relay`]s, a mesh with a fixed one-way latency on which
//! any pair can be cut, and segment "hubs" that loop every emission back to every relay of
//! that segment (as a real broadcast domain does), logging it so a test can count copies.
//!
//! Deterministic: no randomness besides the relays' seeds; the clock jumps to the next
//! deadline.
//!
//! # Examples
//! ```
//! use pavillion_proto::crypto::ecc::KeyPair;
//! use pavillion_proto::endpoint::{RelayConfig, Scope};
//! use pavillion_proto::testing::relays::RelayNet;
//! use pavillion_proto::Duration;
//!
//! let (ka, kb) = (KeyPair::from_secret_bytes([1; 32]), KeyPair::from_secret_bytes([2; 32]));
//! let (a, b) = ("10.0.0.1:7124".parse().unwrap(), "10.0.1.1:7124".parse().unwrap());
//! let mut net = RelayNet::new();
//! net.add(a, RelayConfig::new(ka.clone(), "one", &[5076], [1; 32]).with_peer(b, *kb.public()));
//! net.add(b, RelayConfig::new(kb, "two", &[5076], [2; 32]).with_peer(a, *ka.public()));
//! net.run_for(Duration::from_secs(1));
//! net.broadcast("one", "10.0.0.9:4000".parse().unwrap(), Scope::Broadcast, 5076, b"search");
//! net.run_for(Duration::from_secs(1));
//! assert_eq!(net.emitted_on("two").len(), 1);
//! assert_eq!(net.emitted_on("one").len(), 0);
//! ```

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::endpoint::{Emit, LocalDatagram, Relay, RelayConfig, RelayEvent, Scope};
use crate::time::{Duration, Instant};
use crate::wire::MAX_DATAGRAM;

/// One datagram a relay emitted on its segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    /// The relay that emitted it (its mesh address).
    pub by: SocketAddr,
    /// What the relay said about it.
    pub emit: Emit,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// One relay of the net.
#[derive(Debug)]
pub struct Host {
    /// The relay.
    pub relay: Relay,
    /// Its segment (the hub its emissions go to).
    pub segment: String,
    /// Driven (`false`: it is dead, it neither receives nor runs timers).
    pub up: bool,
    /// Events it reported, oldest first.
    pub events: Vec<RelayEvent>,
}

/// Several relays, their mesh and their segments (see the [module docs](self)).
#[derive(Debug)]
pub struct RelayNet {
    now: Instant,
    latency: Duration,
    hosts: BTreeMap<SocketAddr, Host>,
    in_flight: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    cut: BTreeSet<(SocketAddr, SocketAddr)>,
    emitted: BTreeMap<String, Vec<Emitted>>,
    /// Emissions are heard back from the segment with the relay's mesh address as source
    /// (a driver without raw sockets) rather than the original sender's.
    pub emit_from_mesh: bool,
}

impl Default for RelayNet {
    fn default() -> Self {
        Self::new()
    }
}

impl RelayNet {
    /// An empty net at time 1 s, 1 ms latency.
    pub fn new() -> Self {
        RelayNet {
            now: Instant::from_millis(1000),
            latency: Duration::from_millis(1),
            hosts: BTreeMap::new(),
            in_flight: VecDeque::new(),
            cut: BTreeSet::new(),
            emitted: BTreeMap::new(),
            emit_from_mesh: false,
        }
    }

    /// Adds a relay at mesh address `addr`, on the segment its config names.
    pub fn add(&mut self, addr: SocketAddr, config: RelayConfig) {
        let segment = config.segment.clone();
        let mut relay = Relay::new(config);
        relay.handle_timeout(self.now);
        self.hosts.insert(
            addr,
            Host {
                relay,
                segment,
                up: true,
                events: Vec::new(),
            },
        );
        self.drain();
    }

    /// Replaces the relay at `addr` by a fresh one (a restart: new process, new instance),
    /// keeping its event log.
    pub fn restart(&mut self, addr: SocketAddr, config: RelayConfig) {
        let events = self
            .hosts
            .remove(&addr)
            .map(|h| h.events)
            .unwrap_or_default();
        self.add(addr, config);
        let h = self.host(addr);
        h.events.splice(0..0, events);
    }

    /// The relay at `addr`.
    pub fn host(&mut self, addr: SocketAddr) -> &mut Host {
        self.hosts.get_mut(&addr).expect("no relay at that address")
    }

    /// The relay at `addr`.
    pub fn relay(&mut self, addr: SocketAddr) -> &mut Relay {
        &mut self.host(addr).relay
    }

    /// Stops (or resumes) driving the relay at `addr`.
    pub fn set_up(&mut self, addr: SocketAddr, up: bool) {
        self.host(addr).up = up;
    }

    /// Cuts (or restores) the mesh path between `a` and `b`, both ways.
    pub fn set_cut(&mut self, a: SocketAddr, b: SocketAddr, cut: bool) {
        for pair in [(a, b), (b, a)] {
            if cut {
                self.cut.insert(pair);
            } else {
                self.cut.remove(&pair);
            }
        }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Every emission on `segment` so far.
    pub fn emitted_on(&self, segment: &str) -> &[Emitted] {
        self.emitted.get(segment).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Sends a datagram from `from` to the mesh address `to` as if from the network.
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        self.in_flight
            .push_back((self.now + self.latency, from, to, bytes.to_vec()));
    }

    /// A host on `segment` broadcasts: every up relay of the segment captures it.
    pub fn broadcast(
        &mut self,
        segment: &str,
        source: SocketAddr,
        scope: Scope,
        port: u16,
        payload: &[u8],
    ) {
        let now = self.now;
        for h in self.hosts.values_mut() {
            if h.up && h.segment == segment {
                h.relay.handle_local(
                    now,
                    LocalDatagram {
                        source,
                        scope,
                        port,
                        payload,
                    },
                );
            }
        }
        self.drain();
    }

    /// Steps until `now + d` (bounded: fails on livelock).
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        // A test may have commanded a relay directly since the last step.
        self.drain();
        let mut steps = 0u32;
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "livelock");
            let next_dgram = self.in_flight.iter().map(|x| x.0).min();
            let next_timer = self
                .hosts
                .values()
                .filter(|h| h.up)
                .filter_map(|h| h.relay.poll_timeout())
                .min();
            let next = next_dgram.into_iter().chain(next_timer).min();
            match next {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => {
                    self.now = end;
                    break;
                }
            }
            self.step();
        }
        self.step();
    }

    fn step(&mut self) {
        let now = self.now;
        let due: Vec<_> = {
            let (due, rest): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|x| x.0 <= now);
            self.in_flight = rest.into();
            due
        };
        for (_, from, to, bytes) in due {
            if let Some(h) = self.hosts.get_mut(&to) {
                if h.up {
                    h.relay.handle_datagram(now, from, &bytes);
                }
            }
        }
        for h in self.hosts.values_mut() {
            if h.up && h.relay.poll_timeout().is_some_and(|t| t <= now) {
                h.relay.handle_timeout(now);
            }
        }
        self.drain();
    }

    /// Drains every up relay: transmits onto the mesh, emissions onto (and back from) the
    /// segments, events into the log.
    fn drain(&mut self) {
        let now = self.now;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let mut heard = Vec::new();
            for (addr, h) in self.hosts.iter_mut() {
                if !h.up {
                    continue;
                }
                while let Some(t) = h.relay.poll_transmit(now, &mut buf) {
                    if !self.cut.contains(&(*addr, t.destination)) {
                        let bytes = buf.get(..t.len).unwrap_or_default().to_vec();
                        self.in_flight
                            .push_back((now + self.latency, *addr, t.destination, bytes));
                    }
                }
                while let Some(e) = h.relay.poll_emit(&mut buf) {
                    let payload = buf.get(..e.len).unwrap_or_default().to_vec();
                    let source = if self.emit_from_mesh { *addr } else { e.source };
                    heard.push((h.segment.clone(), source, e, payload.clone()));
                    self.emitted
                        .entry(h.segment.clone())
                        .or_default()
                        .push(Emitted {
                            by: *addr,
                            emit: e,
                            payload,
                        });
                }
                while let Some(e) = h.relay.poll_event() {
                    h.events.push(e);
                }
            }
            if heard.is_empty() {
                break;
            }
            for (segment, source, e, payload) in heard {
                for h in self.hosts.values_mut() {
                    if h.up && h.segment == segment {
                        h.relay.handle_local(
                            now,
                            LocalDatagram {
                                source,
                                scope: e.scope,
                                port: e.port,
                                payload: &payload,
                            },
                        );
                    }
                }
            }
        }
    }
}
