//! The member's side toward the other members: our clients to their servers (opened on
//! demand or for all with `connect_all`), our server's credentials kept equal to the roster's
//! keys, and the events of both, named by member id.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::{Member, MemberError, MemberEvent, Peer};
use crate::endpoint::{Client, ClientConfig, ClientEvent, SendError, ServerEvent};
use crate::features::authority::{MemberId, RosterUpdate};
use crate::id::PeerId;
use crate::time::Instant;

/// Index prefixes of our clients to members (0 is our server, 1 the authority client).
const FIRST_PEER_SLOT: u8 = 2;
/// How many peer slots there are.
const PEER_SLOTS: usize = 254;

impl Member {
    /// Our client to `peer`, opened if we hold none.
    pub(super) fn open_peer(
        &mut self,
        now: Instant,
        peer: MemberId,
    ) -> Result<&mut Peer, MemberError> {
        if peer == self.id {
            return Err(MemberError::UnknownMember);
        }
        let entry = self
            .roster
            .entries
            .get(&peer)
            .ok_or(MemberError::UnknownMember)?;
        let addr = entry.addr.ok_or(MemberError::NoAddress)?;
        let public = entry.public;
        if !self.peers.contains_key(&peer) {
            if self.closed {
                return Err(MemberError::Send(SendError::Closed));
            }
            if self.peers.len() >= self.config.limits.max_peers.min(PEER_SLOTS) {
                return Err(MemberError::TooManyPeers);
            }
            let used: BTreeSet<u8> = self.peers.values().map(|p| p.slot).collect();
            let slot = (FIRST_PEER_SLOT..=u8::MAX)
                .find(|s| !used.contains(s))
                .ok_or(MemberError::TooManyPeers)?;
            self.start_client(now, peer, public, addr, slot);
        }
        self.peers.get_mut(&peer).ok_or(MemberError::UnknownMember)
    }

    /// Opens our client to a member's server at `addr`, in `slot`.
    fn start_client(
        &mut self,
        now: Instant,
        peer: MemberId,
        public: crate::crypto::ecc::PublicKey,
        addr: SocketAddr,
        slot: u8,
    ) {
        let l = &self.config.limits;
        let mut c = ClientConfig::noise_ik(
            self.id.0,
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
        if let Some(mut old) = self.peers.remove(&peer) {
            // A client replaced (its member moved) ends its calls and messages here, so that
            // their callers hear `CallFailed`/`Failed` rather than wait for nothing.
            old.client.close(now);
            while let Some(event) = old.client.poll_event() {
                self.events
                    .push_back(MemberEvent::ToPeer { id: peer, event });
            }
        }
        self.peers.insert(
            peer,
            Peer {
                addr,
                slot,
                client,
                up: false,
            },
        );
    }

    /// Follows an applied roster: our server admits exactly its keys, a removed member's
    /// sessions end at once, a member seen at a new address while our session to it is down
    /// is looked for there, and with `connect_all` every member gets a session.
    pub(super) fn follow_roster(&mut self, now: Instant, update: &RosterUpdate) {
        for id in &update.removed {
            if *id == self.id {
                continue;
            }
            let _ = self.server.remove_ecc_client(now, id.0);
            // Dropped without a quit: it is no member any more, we owe it nothing.
            if let Some(p) = self.peers.remove(id) {
                if p.up {
                    self.events.push_back(MemberEvent::PeerDown { id: *id });
                }
            }
            self.events.push_back(MemberEvent::PeerRevoked { id: *id });
        }
        let entries: Vec<_> = self
            .roster
            .entries
            .values()
            .filter(|e| e.id != self.id)
            .map(|e| (e.id, e.public, e.addr))
            .collect();
        for (id, public, addr) in entries {
            self.server.admit_ecc_client(id.0, public);
            let Some(addr) = addr else { continue };
            match self.peers.get(&id) {
                Some(p) if !p.up && p.addr != addr => {
                    let slot = p.slot;
                    self.start_client(now, id, public, addr, slot);
                }
                Some(_) => {}
                None if self.config.connect_all && !self.closed => {
                    let _ = self.open_peer(now, id);
                }
                None => {}
            }
        }
    }

    /// Drains the embedded endpoints' events into ours until none is left.
    pub(super) fn pump(&mut self, now: Instant) {
        loop {
            let mut any = false;
            while let Some(e) = self.authority.poll_event() {
                any = true;
                self.on_authority_event(now, e);
            }
            while let Some(e) = self.server.poll_event() {
                any = true;
                self.on_server_event(e);
            }
            let mut ids = core::mem::take(&mut self.pump_ids);
            ids.clear();
            ids.extend(self.peers.keys().copied());
            for id in &ids {
                while let Some(e) = self.peers.get_mut(id).and_then(|p| p.client.poll_event()) {
                    any = true;
                    self.on_client_event(*id, e);
                }
            }
            self.pump_ids = ids;
            if !any {
                break;
            }
        }
        self.refresh_stats();
    }

    /// Our server's events, named by the member that caused them. Events that name no
    /// session (`Failed`, `TimedOut`, `Progress` of a server send, `AuthenticationFailed`)
    /// are not passed on.
    fn on_server_event(&mut self, e: ServerEvent) {
        let by_addr = |m: &Self, a: &SocketAddr| m.server_peers.get(a).copied();
        let id = match &e {
            ServerEvent::Connected {
                addr,
                peer: PeerId::Client(cid),
            } => {
                self.server_peers.insert(*addr, MemberId(*cid));
                Some(MemberId(*cid))
            }
            ServerEvent::Disconnected { addr, .. } => self.server_peers.remove(addr),
            ServerEvent::PeerUp { addr } | ServerEvent::PeerDown { addr } => by_addr(self, addr),
            ServerEvent::Delivered { acked, .. } => acked.first().and_then(|a| by_addr(self, a)),
            ServerEvent::Message {
                peer: PeerId::Client(cid),
                ..
            }
            | ServerEvent::ClientSubscribed {
                peer: PeerId::Client(cid),
                ..
            }
            | ServerEvent::ClientUnsubscribed {
                peer: PeerId::Client(cid),
                ..
            }
            | ServerEvent::RegisterWritten {
                peer: PeerId::Client(cid),
                ..
            } => Some(MemberId(*cid)),
            ServerEvent::RpcRequest(r) => match r.peer {
                PeerId::Client(cid) => Some(MemberId(cid)),
                _ => None,
            },
            _ => None,
        };
        if let Some(id) = id {
            self.events
                .push_back(MemberEvent::FromPeer { id, event: e });
        }
    }

    /// Our client's events toward member `id`: up and down become ours, the rest is passed on.
    fn on_client_event(&mut self, id: MemberId, e: ClientEvent) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        match e {
            ClientEvent::Connected { .. } | ClientEvent::PeerUp { .. } => {
                if !p.up {
                    p.up = true;
                    let addr = p.addr;
                    self.events.push_back(MemberEvent::PeerUp { id, addr });
                }
            }
            ClientEvent::PeerDown { .. } | ClientEvent::Disconnected { .. } => {
                if p.up {
                    p.up = false;
                    self.events.push_back(MemberEvent::PeerDown { id });
                }
            }
            event => self.events.push_back(MemberEvent::ToPeer { id, event }),
        }
    }
}
