//! An in-memory fleet: one [`Authority`] and any number of [`Member`]s on a network with a
//! fixed one-way latency, on which hosts can be taken down, paths cut and datagrams injected.
//! The harness is the authority's driver too: it keeps its records in an in-memory store,
//! writing each [`StoreBatch`](crate::endpoint::StoreBatch) before confirming it, so the
//! authority can be taken down and brought back restored from what it stored.
//!
//! Deterministic: no randomness besides the endpoints' seeds; the clock jumps to the next
//! deadline.
//!
//! # Examples
//! ```
//! use pavillion_proto::crypto::ecc::KeyPair;
//! use pavillion_proto::endpoint::{
//!     AuthorityConfig, JoinCredential, ListedPeer, MemberConfig, MemberState, Policy,
//! };
//! use pavillion_proto::testing::authority::Fleet;
//! use pavillion_proto::Duration;
//!
//! let (ka, km) = (KeyPair::from_secret_bytes([1; 32]), KeyPair::from_secret_bytes([2; 32]));
//! let (a, m) = ("10.0.0.1:1790".parse().unwrap(), "10.0.0.2:1790".parse().unwrap());
//! let mut policy = Policy::default();
//! policy.max_peers = 16;
//! policy.peers.push(ListedPeer { public: *km.public(), role: "gw".into(), name: "gw-1".into() });
//! let mut fleet = Fleet::new(a, AuthorityConfig::new(ka.clone(), policy, [1; 32]));
//! fleet.add_member(m, MemberConfig::new(km, a, *ka.public(), JoinCredential::Listed, [2; 32]));
//! fleet.run_for(Duration::from_secs(2));
//! assert!(matches!(fleet.member(m).state(), MemberState::Joined { .. }));
//! ```

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::endpoint::{
    Authority, AuthorityConfig, AuthorityEvent, Member, MemberConfig, MemberEvent, RestoreError,
    RevokeError, StoreOp, StoreTable, StoredRecord,
};
use crate::features::authority::MemberId;
use crate::time::{Duration, Instant};
use crate::wire::MAX_DATAGRAM;

/// One member of the fleet.
#[derive(Debug)]
pub struct MemberHost {
    /// The member.
    pub member: Member,
    /// The configuration it was made with (a reboot makes a new member of it).
    pub config: MemberConfig,
    /// Driven (`false`: it is dead, it neither receives nor runs timers).
    pub up: bool,
    /// Events it reported, oldest first (kept across reboots).
    pub events: Vec<MemberEvent>,
}

/// The authority, its driver's record store and the members (see the [module docs](self)).
#[derive(Debug)]
pub struct Fleet {
    now: Instant,
    latency: Duration,
    authority_addr: SocketAddr,
    authority_config: AuthorityConfig,
    /// `None` while it is down.
    authority: Option<Authority>,
    store: BTreeMap<(StoreTable, Vec<u8>), Vec<u8>>,
    /// Events the authority reported, oldest first (kept across restarts).
    pub authority_events: Vec<AuthorityEvent>,
    members: BTreeMap<SocketAddr, MemberHost>,
    in_flight: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    cut: BTreeSet<(SocketAddr, SocketAddr)>,
    delivered: BTreeMap<(SocketAddr, SocketAddr), u64>,
    reboots: u8,
}

impl Fleet {
    /// A fleet with its authority at `addr`, at time 1 s, 1 ms latency, no member yet.
    ///
    /// # Panics
    /// If the authority cannot start (never for an empty store).
    pub fn new(addr: SocketAddr, config: AuthorityConfig) -> Self {
        let mut fleet = Fleet {
            now: Instant::from_millis(1000),
            latency: Duration::from_millis(1),
            authority_addr: addr,
            authority_config: config,
            authority: None,
            store: BTreeMap::new(),
            authority_events: Vec::new(),
            members: BTreeMap::new(),
            in_flight: VecDeque::new(),
            cut: BTreeSet::new(),
            delivered: BTreeMap::new(),
            reboots: 0,
        };
        fleet
            .authority_up()
            .expect("an empty store always restores");
        fleet
    }

    /// Adds a member at `addr`; it starts joining at once.
    pub fn add_member(&mut self, addr: SocketAddr, config: MemberConfig) {
        let mut member = Member::new(config.clone());
        member.handle_timeout(self.now);
        self.members.insert(
            addr,
            MemberHost {
                member,
                config,
                up: true,
                events: Vec::new(),
            },
        );
        self.drain();
    }

    /// Replaces the member at `addr` by a new one made of its configuration with another
    /// seed: a reboot, same keys, nothing else remembered.
    pub fn reboot(&mut self, addr: SocketAddr) {
        self.reboots = self.reboots.wrapping_add(1);
        let reboots = self.reboots;
        let now = self.now;
        let h = self.host(addr);
        if let Some(b) = h.config.seed.last_mut() {
            *b ^= reboots;
        }
        h.member = Member::new(h.config.clone());
        h.member.handle_timeout(now);
        h.up = true;
        self.drain();
    }

    /// Takes the authority down: it stops at once (no goodbye), losing what it had not
    /// stored.
    pub fn authority_down(&mut self) {
        self.authority = None;
    }

    /// Brings the authority back, restored from the records it stored.
    ///
    /// # Errors
    /// What [`Authority::restore`] says of the records.
    pub fn authority_up(&mut self) -> Result<(), RestoreError> {
        let records = self.store.iter().map(|((table, key), value)| StoredRecord {
            table: *table,
            key,
            value,
        });
        let mut authority = Authority::restore(self.authority_config.clone(), records)?;
        authority.handle_timeout(self.now);
        self.authority = Some(authority);
        self.drain();
        Ok(())
    }

    /// The authority.
    ///
    /// # Panics
    /// While it is down.
    pub fn authority(&mut self) -> &mut Authority {
        self.authority.as_mut().expect("the authority is down")
    }

    /// Whether the authority is up.
    pub fn authority_is_up(&self) -> bool {
        self.authority.is_some()
    }

    /// The authority's stored records: (table, key) → value.
    pub fn store(&self) -> &BTreeMap<(StoreTable, Vec<u8>), Vec<u8>> {
        &self.store
    }

    /// Revokes a member at the authority.
    ///
    /// # Errors
    /// As [`Authority::revoke`].
    pub fn revoke(&mut self, id: MemberId) -> Result<(), RevokeError> {
        let now = self.now;
        let r = self.authority().revoke(now, id);
        self.drain();
        r
    }

    /// The host at `addr`.
    ///
    /// # Panics
    /// If there is no member there.
    pub fn host(&mut self, addr: SocketAddr) -> &mut MemberHost {
        self.members
            .get_mut(&addr)
            .expect("no member at that address")
    }

    /// The member at `addr`.
    ///
    /// # Panics
    /// If there is no member there.
    pub fn member(&mut self, addr: SocketAddr) -> &mut Member {
        &mut self.host(addr).member
    }

    /// The member addresses.
    pub fn member_addrs(&self) -> Vec<SocketAddr> {
        self.members.keys().copied().collect()
    }

    /// Stops (or resumes) driving the member at `addr`.
    pub fn set_up(&mut self, addr: SocketAddr, up: bool) {
        self.host(addr).up = up;
    }

    /// Cuts (or restores) the path between `a` and `b`, both ways.
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

    /// The authority's address.
    pub fn authority_addr(&self) -> SocketAddr {
        self.authority_addr
    }

    /// How many datagrams from `from` were handed to a live host at `to`.
    pub fn delivered(&self, from: SocketAddr, to: SocketAddr) -> u64 {
        self.delivered.get(&(from, to)).copied().unwrap_or(0)
    }

    /// Sends a datagram from `from` to `to` as if from the network.
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        self.in_flight
            .push_back((self.now + self.latency, from, to, bytes.to_vec()));
    }

    /// After a test commanded a member directly: sends what it queued.
    pub fn flush(&mut self) {
        self.drain();
    }

    /// Steps until `now + d` (bounded: fails on livelock).
    ///
    /// # Panics
    /// After a million steps without reaching the end.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.drain();
        let mut steps = 0u32;
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "livelock");
            let next_dgram = self.in_flight.iter().map(|x| x.0).min();
            let next_timer = self
                .members
                .values()
                .filter(|h| h.up)
                .filter_map(|h| h.member.poll_timeout())
                .chain(self.authority.as_ref().and_then(Authority::poll_timeout))
                .min();
            match next_dgram.into_iter().chain(next_timer).min() {
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

    /// Runs until `done` holds (checked after every step), at most `limit`; whether it did.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Fleet) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            let next = self.now + Duration::from_millis(10);
            self.run_for(
                next.saturating_duration_since(self.now)
                    .min(end.saturating_duration_since(self.now)),
            );
        }
        done(self)
    }

    fn step(&mut self) {
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|x| x.0 <= now);
        self.in_flight = rest.into();
        for (_, from, to, bytes) in due {
            if to == self.authority_addr {
                if let Some(a) = self.authority.as_mut() {
                    *self.delivered.entry((from, to)).or_default() += 1;
                    a.handle_datagram(now, from, &bytes);
                }
            } else if let Some(h) = self.members.get_mut(&to).filter(|h| h.up) {
                *self.delivered.entry((from, to)).or_default() += 1;
                h.member.handle_datagram(now, from, &bytes);
            }
        }
        if let Some(a) = self.authority.as_mut() {
            if a.poll_timeout().is_some_and(|t| t <= now) {
                a.handle_timeout(now);
            }
        }
        for h in self.members.values_mut() {
            if h.up && h.member.poll_timeout().is_some_and(|t| t <= now) {
                h.member.handle_timeout(now);
            }
        }
        self.drain();
    }

    /// Drains every live host: transmits onto the network, the authority's batches into the
    /// store (then confirmed), events into the logs.
    fn drain(&mut self) {
        let now = self.now;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let latency = self.latency;
        let mut out = Vec::new();
        if let Some(a) = self.authority.as_mut() {
            // Storing may let a version be published, which queues more to send.
            loop {
                while let Some(t) = a.poll_transmit(now, &mut buf) {
                    out.push((
                        self.authority_addr,
                        t.destination,
                        buf.get(..t.len).unwrap_or_default().to_vec(),
                    ));
                }
                let Some(batch) = a.poll_store() else { break };
                for op in batch.ops {
                    match op {
                        StoreOp::Put { table, key, value } => {
                            self.store.insert((table, key), value);
                        }
                        StoreOp::Delete { table, key } => {
                            self.store.remove(&(table, key));
                        }
                    }
                }
                a.stored(now, batch.id);
            }
            self.authority_events
                .extend(core::iter::from_fn(|| a.poll_event()));
        }
        for (addr, h) in self.members.iter_mut().filter(|(_, h)| h.up) {
            while let Some(t) = h.member.poll_transmit(now, &mut buf) {
                out.push((
                    *addr,
                    t.destination,
                    buf.get(..t.len).unwrap_or_default().to_vec(),
                ));
            }
            h.events
                .extend(core::iter::from_fn(|| h.member.poll_event()));
        }
        for (from, to, bytes) in out {
            if !self.cut.contains(&(from, to)) {
                self.in_flight.push_back((now + latency, from, to, bytes));
            }
        }
    }
}
