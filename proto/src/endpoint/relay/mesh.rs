//! The mesh side of a relay: the embedded server and clients on one socket, routing of
//! received datagrams to them, the peers' up/down state, membership announcements and the
//! emitter election.
//!
//! Routing (`docs/PROTOCOL.md` §14.1): a datagram not starting with `PvS3` is dropped
//! `NotSuite3`; type 1 goes to the server; types 2, 3 and 4 go by the top byte of their
//! receiver index (0 the server, k the client in slot k); type 5 to the client whose peer
//! address is the source; anything else (group packets) is dropped `NotSuite3`.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::{Relay, RelayConfig, RelayDrop, RelayEvent, RelayId};
use crate::crypto::ecc::{self, PublicKey};
use crate::endpoint::mux::{route, Route};
use crate::endpoint::{Client, ClientConfig, ClientEvent, SendOptions, ServerConfig, ServerEvent};
use crate::features::relay::is_emitter;
use crate::id::PeerId;
use crate::time::Instant;
use crate::wire::relay::{self as frames, Member, Members};

/// A relay we hold a client for.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) public: PublicKey,
    pub(super) addr: SocketAddr,
    /// The top byte of the client's session indices (1..=255).
    pub(super) slot: u8,
    pub(super) client: Client,
    /// Whether our client's session to it is up.
    pub(super) up: bool,
    /// The segment it announced (empty until its first `members`).
    pub(super) segment: String,
    pub(super) configured: bool,
    /// The relays its latest `members` lists as up: a frame from one of those reached it
    /// directly, so we do not forward it there.
    pub(super) sees: BTreeSet<RelayId>,
}

/// The embedded server: our key pair, exactly the trusted relays as IK clients, no guests,
/// no built-in calls, index prefix 0.
pub(super) fn server_config(config: &RelayConfig, seed: [u8; 32]) -> ServerConfig {
    let mut s = ServerConfig::new(seed)
        .with_keys(config.keys.clone())
        .with_down_timeout(config.limits.down_after);
    s.allow_guest = false;
    s.builtin_calls = false;
    s.index_prefix = Some(0);
    s.max_sessions = config.limits.max_peers.max(1);
    s
}

impl Relay {
    /// Trusts `public`: its frames are accepted, and the server admits it.
    pub(super) fn trust(&mut self, public: PublicKey) {
        let id = RelayId::of(&public);
        if id == self.id {
            return;
        }
        self.trusted.insert(id, public);
        self.server.admit_ecc_client(id.0, public);
    }

    /// Opens (or reopens, at a new address) our client to a trusted relay, in a free slot.
    pub(super) fn connect(
        &mut self,
        now: Instant,
        public: PublicKey,
        addr: SocketAddr,
        configured: bool,
    ) {
        let id = RelayId::of(&public);
        if id == self.id || self.closed {
            return;
        }
        let (slot, was_configured) = match self.peers.remove(&id) {
            Some(old) => (Some(old.slot), old.configured),
            None => {
                if self.peers.len() >= self.config.limits.max_peers.min(255) {
                    return;
                }
                let used: BTreeSet<u8> = self.peers.values().map(|p| p.slot).collect();
                ((1..=255u8).find(|s| !used.contains(s)), false)
            }
        };
        let Some(slot) = slot else { return };
        let l = &self.config.limits;
        let mut c = ClientConfig::noise_ik(
            ecc::default_client_id(self.config.keys.public()),
            self.config.keys.clone(),
            public,
            addr,
            self.rng.array(),
        );
        c.keepalive = Some(l.keepalive);
        c.limits.down_timeout = l.down_after;
        c.index_prefix = Some(slot);
        let mut client = Client::new(c);
        client.set_key_log(self.server.key_log_on());
        client.handle_timeout(now);
        self.peers.insert(
            id,
            Peer {
                public,
                addr,
                slot,
                client,
                up: false,
                segment: String::new(),
                configured: configured || was_configured,
                sees: BTreeSet::new(),
            },
        );
    }

    /// Hands a mesh datagram to the endpoint it belongs to.
    pub(super) fn demux(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        match route(datagram) {
            Route::Server => self.server.handle_datagram(now, from, datagram),
            Route::Client(slot) => match self.peers.values_mut().find(|p| p.slot == slot) {
                Some(p) => p.client.handle_datagram(now, from, datagram),
                // A session of a client we no longer hold: the server answers "unknown index".
                None => self.server.handle_datagram(now, from, datagram),
            },
            Route::Source => match self.peers.values_mut().find(|p| p.addr == from) {
                Some(p) => p.client.handle_datagram(now, from, datagram),
                None => self.stats.drop(RelayDrop::NotSuite3),
            },
            Route::Drop => self.stats.drop(RelayDrop::NotSuite3),
        }
    }

    /// Drains the embedded endpoints' events into the relay's state until none is left.
    pub(super) fn pump(&mut self, now: Instant) {
        loop {
            let mut any = false;
            while let Some(e) = self.server.poll_event() {
                any = true;
                self.on_server_event(now, e);
            }
            let ids: Vec<RelayId> = self.peers.keys().copied().collect();
            for id in ids {
                while let Some(e) = self.peers.get_mut(&id).and_then(|p| p.client.poll_event()) {
                    any = true;
                    self.on_client_event(now, id, e);
                }
            }
            if !any {
                break;
            }
        }
        self.update_emitter();
        self.refresh_stats();
    }

    fn on_server_event(&mut self, now: Instant, e: ServerEvent) {
        match e {
            ServerEvent::Connected {
                addr,
                peer: PeerId::Client(cid),
            } => {
                let id = RelayId(cid);
                if let (Some(public), false) = (self.trusted.get(&id), self.peers.contains_key(&id))
                {
                    let public = *public;
                    self.connect(now, public, addr, false);
                    if self.peers.contains_key(&id) {
                        self.events
                            .push_back(RelayEvent::PeerJoined { relay: id, addr });
                    }
                }
            }
            ServerEvent::Message {
                peer: PeerId::Client(cid),
                message,
            } => {
                let from = RelayId(cid);
                self.stats.received += 1;
                if !self.trusted.contains_key(&from) {
                    self.stats.drop(RelayDrop::UnknownRelay);
                } else if message.target() != frames::TARGET {
                    self.stats.drop(RelayDrop::Malformed);
                } else if message.name() == frames::CARRY {
                    self.on_carry(now, from, message.payload());
                } else if message.name() == frames::MEMBERS {
                    self.on_members(now, from, message.from, message.payload());
                } else {
                    self.stats.drop(RelayDrop::Malformed);
                }
            }
            _ => {}
        }
    }

    fn on_client_event(&mut self, now: Instant, id: RelayId, e: ClientEvent) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        match e {
            ClientEvent::Connected { .. } | ClientEvent::PeerUp { .. } if !p.up => {
                p.up = true;
                self.events.push_back(RelayEvent::PeerUp {
                    relay: id,
                    addr: p.addr,
                    segment: p.segment.clone(),
                });
                self.announce_all(now);
            }
            ClientEvent::PeerDown { .. } | ClientEvent::Disconnected { .. } if p.up => {
                p.up = false;
                p.sees.clear();
                self.events.push_back(RelayEvent::PeerDown { relay: id });
                self.announce_all(now);
            }
            // Frames come to our server; a message from a peer's server is not one.
            ClientEvent::Message(_) => {
                self.stats.received += 1;
                self.stats.drop(RelayDrop::Malformed);
            }
            _ => {}
        }
    }

    fn on_members(&mut self, now: Instant, from: RelayId, source: SocketAddr, payload: &[u8]) {
        let Ok(m) = Members::parse(payload) else {
            self.stats.drop(RelayDrop::Malformed);
            return;
        };
        let Some((first, rest)) = m.entries.split_first() else {
            self.stats.drop(RelayDrop::Malformed);
            return;
        };
        if RelayId::of(&first.public) != from {
            self.stats.drop(RelayDrop::Malformed);
            return;
        }
        if !self.peers.contains_key(&from) {
            if let Some(public) = self.trusted.get(&from).copied() {
                let addr = first.addr.unwrap_or(source);
                self.connect(now, public, addr, false);
                if self.peers.contains_key(&from) {
                    self.events
                        .push_back(RelayEvent::PeerJoined { relay: from, addr });
                }
            }
        }
        let mut sees = BTreeSet::new();
        let mut joins = Vec::new();
        for e in rest {
            let id = RelayId::of(&e.public);
            if id == self.id {
                if let Some(a) = e.addr {
                    if self.own_addrs.len() < self.config.limits.max_peers {
                        self.own_addrs.insert(a);
                    }
                }
                if e.up {
                    sees.insert(id);
                }
                continue;
            }
            let Some(public) = self.trusted.get(&id).copied() else {
                self.stats.drop(RelayDrop::UnknownRelay);
                continue;
            };
            if e.up {
                sees.insert(id);
            }
            let Some(addr) = e.addr else { continue };
            match self.peers.get(&id) {
                None => joins.push((public, addr, true)),
                // A relay we see down that a peer reaches at another address: follow it.
                Some(p) if !p.up && p.addr != addr && e.up => joins.push((public, addr, false)),
                Some(_) => {}
            }
        }
        for (public, addr, new) in joins {
            self.connect(now, public, addr, false);
            let id = RelayId::of(&public);
            if new && self.peers.contains_key(&id) {
                self.events
                    .push_back(RelayEvent::PeerJoined { relay: id, addr });
            }
        }
        if let Some(p) = self.peers.get_mut(&from) {
            p.segment = first.segment.clone();
            p.sees = sees;
        }
    }

    /// Our `members` frame: us first, then every peer we hold.
    fn members_frame(&self) -> Members {
        let me = Member {
            public: *self.config.keys.public(),
            addr: self.config.advertise,
            up: true,
            segment: self.config.segment.clone(),
        };
        let others = self.peers.values().map(|p| Member {
            public: p.public,
            addr: Some(p.addr),
            up: p.up,
            segment: p.segment.clone(),
        });
        let entries = core::iter::once(me)
            .chain(others)
            .take(frames::MAX_MEMBERS)
            .collect();
        Members { entries }
    }

    /// Sends our `members` to every up peer, and sets the next periodic announcement.
    pub(super) fn announce_all(&mut self, now: Instant) {
        if self.closed {
            self.next_announce = None;
            return;
        }
        let mut frame = self.members_frame();
        if frame
            .entries
            .first()
            .is_some_and(|m| m.segment.len() > frames::MAX_SEGMENT_LEN)
        {
            // A configured name too long for the wire: announce none rather than a cut one.
            if let Some(m) = frame.entries.first_mut() {
                m.segment.clear();
            }
        }
        let mut buf = alloc::vec![0u8; frame.buffer_len()];
        if frame.emit(&mut buf).is_ok() {
            for p in self.peers.values_mut().filter(|p| p.up) {
                let _ = p.client.send_message(
                    now,
                    frames::TARGET,
                    frames::MEMBERS,
                    &buf,
                    SendOptions::unreliable(),
                );
            }
        }
        self.next_announce = Some(now + self.config.limits.announce_interval);
    }

    /// Re-runs the emitter election; a change is an event.
    pub(super) fn update_emitter(&mut self) {
        let siblings = self
            .peers
            .iter()
            .filter(|(_, p)| p.up && p.segment == self.config.segment)
            .map(|(id, _)| *id);
        let active = is_emitter(self.id, siblings);
        if active != self.emitter {
            self.emitter = active;
            self.events.push_back(RelayEvent::Emitter { active });
        }
    }

    /// Whether `addr` is a relay's mesh address (ours included): a datagram from it on the
    /// segment is a relay's emission heard back.
    pub(super) fn is_relay_addr(&self, addr: SocketAddr) -> bool {
        self.config.advertise == Some(addr)
            || self.own_addrs.contains(&addr)
            || self.peers.values().any(|p| p.addr == addr)
    }
}
