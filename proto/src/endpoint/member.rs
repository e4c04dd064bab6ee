//! The member role: a peer of a fleet that an [`Authority`](super::Authority) admits. It joins
//! over a suite 3 session with the authority, follows the signed roster, and talks to the
//! other members directly over suite 3 sessions keyed by the roster, refusing any key the
//! roster does not list (so a revoked member is cut off within one roster propagation).
//!
//! Inside, on one UDP socket: one [`Client`](super::Client) to the authority (index prefix 1),
//! one [`Server`] for the other members (prefix 0, admitting exactly the roster's keys), and
//! one client per member we talk to (prefixes 2..=255), demultiplexed as the relay does.
//! `docs/PROTOCOL.md` §15 is the normative description.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::mux::{route, Route};
use super::{
    CallId, Client, ClientConfig, ClientEvent, DropReason, SendError, SendOptions, Server,
    ServerConfig, ServerEvent, Stats, Transmit,
};
use crate::crypto::ecc::{KeyPair, PublicKey};
use crate::features::authority::{MemberId, Roster, RosterError, RosterUpdate, SigningPublic};
use crate::id::{FunctionId, MessageId};
use crate::rng::Rng;
use crate::time::{Duration, Instant};
use crate::wire::authority::JoinRefusal;

mod fleet;
mod join;
mod publications;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_forged;

/// How a member proves it may join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinCredential {
    /// Its key is listed in the authority's policy (or it is a member already).
    Listed,
    /// An enrolment secret's key ([`Enrolment::key_of`](super::Enrolment::key_of)).
    Enrolment([u8; 32]),
}

/// Timers and capacities of a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberLimits {
    /// Keepalive on every session (authority and peers), so presence is seen.
    pub keepalive: Duration,
    /// Silence after which the authority or a peer is reported down.
    pub down_after: Duration,
    /// Most members we hold a client session with (at most 254).
    pub max_peers: usize,
    /// First wait before joining again after a refusal that may pass (`LockedOut`, `Busy`
    /// wait their `retry_after`), or after the authority went away; doubles up to 60 s.
    pub join_retry: Duration,
}

impl Default for MemberLimits {
    fn default() -> Self {
        MemberLimits {
            keepalive: Duration::from_secs(30),
            down_after: Duration::from_secs(75),
            max_peers: 64,
            join_retry: Duration::from_secs(1),
        }
    }
}

/// Configuration of a [`Member`].
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// Seed of the member's RNG. Use fresh OS randomness in deployments.
    pub seed: [u8; 32],
    /// Our static key pair: our [`MemberId`] derives from it; keep it across reboots to keep
    /// our identity.
    pub keys: KeyPair,
    /// The authority's address.
    pub authority: SocketAddr,
    /// The authority's static public key.
    pub authority_public: PublicKey,
    /// How we prove we may join.
    pub credential: JoinCredential,
    /// The role we ask for (a listed key's policy role wins). At most 32 bytes.
    pub role: String,
    /// Our human label. At most 32 bytes.
    pub name: String,
    /// Open a session to every member of the roster as soon as it is known (and to new ones
    /// as they join), rather than on the first [`Member::connect`] or send.
    pub connect_all: bool,
    /// Timers and capacities.
    pub limits: MemberLimits,
}

impl MemberConfig {
    /// A member joining the authority at `authority` with `credential`.
    pub fn new(
        keys: KeyPair,
        authority: SocketAddr,
        authority_public: PublicKey,
        credential: JoinCredential,
        seed: [u8; 32],
    ) -> Self {
        MemberConfig {
            seed,
            keys,
            authority,
            authority_public,
            credential,
            role: String::new(),
            name: String::new(),
            connect_all: false,
            limits: MemberLimits::default(),
        }
    }
}

/// Where a member stands with its authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Not admitted yet (connecting or waiting for the answer).
    Joining,
    /// Admitted.
    Joined {
        /// Our id.
        id: MemberId,
        /// Our role.
        role: String,
    },
    /// Refused for a reason that will not pass by itself (`NotInPolicy`, `BadProof`,
    /// `Revoked`, `Full`, `Malformed`). `LockedOut` and `Busy` retry and stay `Joining`.
    Refused(JoinRefusal),
}

/// What a member tells its driver.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MemberEvent {
    /// The authority admitted us.
    Joined {
        /// Our id.
        id: MemberId,
        /// Our role.
        role: String,
        /// The roster version at admission.
        version: u64,
    },
    /// The authority refused us.
    Refused {
        /// Why.
        reason: JoinRefusal,
        /// When we try again (`LockedOut`, `Busy`); `None`: we do not.
        retry_after: Option<Duration>,
    },
    /// Our session with the authority came up.
    AuthorityUp,
    /// Our session with the authority went down; peer sessions go on.
    AuthorityDown,
    /// A roster version was applied.
    Roster {
        /// Which version.
        version: u64,
        /// What changed.
        update: RosterUpdate,
    },
    /// A roster publication was not applied (counted in [`RosterStats`]).
    RosterRejected(RosterError),
    /// A member left the roster: its sessions with us are closed and its key refused.
    PeerRevoked {
        /// Who.
        id: MemberId,
    },
    /// Our session to a member came up.
    PeerUp {
        /// Who.
        id: MemberId,
        /// Where.
        addr: SocketAddr,
    },
    /// Our session to a member went down.
    PeerDown {
        /// Who.
        id: MemberId,
    },
    /// Something a member did on its session to our server: a call to answer
    /// ([`Member::server_mut`] and [`Server::respond`]), a message, a subscription.
    FromPeer {
        /// Who.
        id: MemberId,
        /// What.
        event: ServerEvent,
    },
    /// The outcome of something we sent to a member: an answer, a delivery, a failure.
    ToPeer {
        /// Who.
        id: MemberId,
        /// What.
        event: ClientEvent,
    },
}

/// Why a member could not do what it was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberError {
    /// The roster lists no member with this id (unknown, or revoked).
    UnknownMember,
    /// The roster has no address for it yet.
    NoAddress,
    /// We hold `max_peers` sessions already.
    TooManyPeers,
    /// The session refused the send.
    Send(SendError),
}

/// How roster publications fared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RosterStats {
    /// Publications applied.
    pub applied: u64,
    /// Ignored: not parsed.
    pub malformed: u64,
    /// Ignored: signature not the authority's.
    pub bad_signature: u64,
    /// Ignored: not newer than ours.
    pub stale: u64,
    /// Deltas that did not follow our version (a snapshot was fetched).
    pub gaps: u64,
    /// Deltas whose result did not match their digest (a snapshot was fetched).
    pub inconsistent: u64,
    /// `FETCH` calls made.
    pub fetches: u64,
}

/// The index prefix of our client to the authority (0 is our server, 2..=255 our peers).
const AUTHORITY_SLOT: u8 = 1;

/// A member we hold a client session with.
#[derive(Debug)]
struct Peer {
    /// Where we reach its server.
    addr: SocketAddr,
    /// The top byte of our client's session indices (2..=255).
    slot: u8,
    client: Client,
    /// Whether our client's session to it is up.
    up: bool,
}

/// A member of a fleet. Drive it like every role: `handle_datagram`, `handle_timeout`, then
/// drain `poll_transmit` and `poll_event`; wake at `poll_timeout`.
#[derive(Debug)]
pub struct Member {
    config: MemberConfig,
    id: MemberId,
    rng: Rng,
    state: MemberState,
    /// The authority's roster key, pinned from its join answer.
    signing: Option<SigningPublic>,
    authority: Client,
    authority_up: bool,
    server: Server,
    peers: BTreeMap<MemberId, Peer>,
    /// Who holds each session of our server, for server events that name only an address.
    server_peers: BTreeMap<SocketAddr, MemberId>,
    roster: Roster,
    /// Whether we asked the authority for publications (once, after our first admission;
    /// the client keeps the subscription across sessions).
    subscribed: bool,
    join_call: Option<CallId>,
    fetch_call: Option<CallId>,
    /// When to call `JOIN` again after a refusal that may pass or a failed call.
    next_join: Option<Instant>,
    join_backoff: Duration,
    events: VecDeque<MemberEvent>,
    /// Reused by every pump for the peer ids it walks, so that handling a datagram
    /// allocates no list of its own.
    pump_ids: Vec<MemberId>,
    next_poll: usize,
    closed: bool,
    stats: RosterStats,
    /// Datagrams no embedded endpoint took.
    own: Stats,
    /// Every endpoint's counters and `own`, summed after each input.
    sum: Stats,
}

impl Member {
    /// Creates a member; it starts joining at once (drain `poll_transmit`).
    pub fn new(config: MemberConfig) -> Self {
        let mut rng = Rng::from_seed(config.seed);
        let id = MemberId::of(config.keys.public());
        let l = &config.limits;
        let mut s = ServerConfig::new(rng.array())
            .with_keys(config.keys.clone())
            .with_down_timeout(l.down_after);
        s.allow_guest = false;
        s.index_prefix = Some(0);
        let server = Server::new(s);
        let mut c = ClientConfig::noise_ik(
            id.0,
            config.keys.clone(),
            config.authority_public,
            config.authority,
            rng.array(),
        );
        c.keepalive = Some(l.keepalive);
        c.limits.down_timeout = l.down_after;
        c.index_prefix = Some(AUTHORITY_SLOT);
        let mut authority = Client::new(c);
        authority.handle_timeout(Instant::ZERO);
        let join_backoff = l.join_retry;
        let mut member = Member {
            id,
            rng,
            state: MemberState::Joining,
            signing: None,
            authority,
            authority_up: false,
            server,
            peers: BTreeMap::new(),
            server_peers: BTreeMap::new(),
            roster: Roster::default(),
            subscribed: false,
            join_call: None,
            fetch_call: None,
            next_join: None,
            join_backoff,
            events: VecDeque::new(),
            pump_ids: Vec::new(),
            next_poll: 0,
            closed: false,
            stats: RosterStats::default(),
            own: Stats::default(),
            sum: Stats::default(),
            config,
        };
        member.refresh_stats();
        member
    }

    /// Our identity.
    pub fn id(&self) -> MemberId {
        self.id
    }

    /// Where we stand with the authority.
    pub fn state(&self) -> &MemberState {
        &self.state
    }

    /// The roster as last applied.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// The authority's signing key, once joined.
    pub fn signing(&self) -> Option<SigningPublic> {
        self.signing
    }

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        match route(datagram) {
            Route::Server => self.server.handle_datagram(now, from, datagram),
            Route::Client(AUTHORITY_SLOT) => self.authority.handle_datagram(now, from, datagram),
            Route::Client(slot) => match self.peers.values_mut().find(|p| p.slot == slot) {
                Some(p) => p.client.handle_datagram(now, from, datagram),
                // A session of a client we no longer hold: the server answers "unknown index".
                None => self.server.handle_datagram(now, from, datagram),
            },
            Route::Source if from == self.config.authority => {
                self.authority.handle_datagram(now, from, datagram)
            }
            Route::Source => match self.peers.values_mut().find(|p| p.addr == from) {
                Some(p) => p.client.handle_datagram(now, from, datagram),
                None => {
                    self.own.datagrams_received += 1;
                    self.own.drop(DropReason::UnknownPeer);
                }
            },
            Route::Drop => {
                self.own.datagrams_received += 1;
                self.own.drop(DropReason::Unsupported);
            }
        }
        self.pump(now);
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.server.handle_timeout(now);
        self.authority.handle_timeout(now);
        for p in self.peers.values_mut() {
            p.client.handle_timeout(now);
        }
        if self.next_join.is_some_and(|t| t <= now) {
            self.next_join = None;
            self.join(now);
        }
        self.pump(now);
    }

    /// Writes the next datagram into `buf` and says where it goes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        // Round robin, so that a busy peer cannot starve the authority session.
        let n = self.peers.len() + 2;
        for k in 0..n {
            let i = (self.next_poll + k) % n;
            let t = match i {
                0 => self.authority.poll_transmit(now, buf),
                1 => self.server.poll_transmit(now, buf),
                _ => self
                    .peers
                    .values_mut()
                    .nth(i - 2)
                    .and_then(|p| p.client.poll_transmit(now, buf)),
            };
            if t.is_some() {
                self.next_poll = (i + 1) % n;
                self.refresh_stats();
                return t;
            }
        }
        None
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<MemberEvent> {
        self.events.pop_front()
    }

    /// When the member next wants `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let clients = self.peers.values().filter_map(|p| p.client.poll_timeout());
        self.server
            .poll_timeout()
            .into_iter()
            .chain(self.authority.poll_timeout())
            .chain(clients)
            .chain(self.next_join)
            .min()
    }

    /// Opens a session to a member of the roster (sends and calls open one by themselves).
    ///
    /// # Errors
    /// [`MemberError::UnknownMember`], [`MemberError::NoAddress`] or
    /// [`MemberError::TooManyPeers`].
    pub fn connect(&mut self, now: Instant, peer: MemberId) -> Result<(), MemberError> {
        self.open_peer(now, peer)?;
        self.pump(now);
        Ok(())
    }

    /// Calls `function` on a member's server; the answer comes as
    /// [`MemberEvent::ToPeer`] with [`ClientEvent::Answered`].
    ///
    /// # Errors
    /// As [`Member::connect`], or [`MemberError::Send`].
    pub fn call(
        &mut self,
        now: Instant,
        peer: MemberId,
        function: FunctionId,
        args: &[u8],
    ) -> Result<CallId, MemberError> {
        let p = self.open_peer(now, peer)?;
        let r = p.client.call(now, function, args, None);
        self.pump(now);
        r.map_err(MemberError::Send)
    }

    /// Sends a message to a member's server.
    ///
    /// # Errors
    /// As [`Member::connect`], or [`MemberError::Send`].
    pub fn send_message(
        &mut self,
        now: Instant,
        peer: MemberId,
        target: &str,
        name: &str,
        payload: &[u8],
        options: SendOptions,
    ) -> Result<MessageId, MemberError> {
        let p = self.open_peer(now, peer)?;
        let r = p.client.send_message(now, target, name, payload, options);
        self.pump(now);
        r.map_err(MemberError::Send)
    }

    /// Our server for the other members: register functions, answer their calls, declare
    /// registers, send to connected members.
    pub fn server_mut(&mut self) -> &mut Server {
        &mut self.server
    }

    /// The members our server has a session with, and where.
    pub fn connected_peers(&self) -> Vec<(MemberId, SocketAddr)> {
        self.server
            .clients()
            .filter_map(|(addr, peer)| match peer {
                crate::id::PeerId::Client(cid) => Some((MemberId(cid), addr)),
                _ => None,
            })
            .collect()
    }

    /// How roster publications fared.
    pub fn roster_stats(&self) -> &RosterStats {
        &self.stats
    }

    /// The sessions' counters, summed over our endpoints.
    pub fn stats(&self) -> &Stats {
        &self.sum
    }

    /// Turns the key log on or off (off by default); see [`crate::keylog`].
    pub fn set_key_log(&mut self, on: bool) {
        // The server's flag is the member's: peers' clients made later copy it (`fleet`).
        self.server.set_key_log(on);
        self.authority.set_key_log(on);
        for p in self.peers.values_mut() {
            p.client.set_key_log(on);
        }
    }

    /// The next session secret for the key log; `None` while the key log is off.
    pub fn poll_secret(&mut self) -> Option<crate::keylog::SessionSecret> {
        self.server
            .poll_secret()
            .or_else(|| self.authority.poll_secret())
            .or_else(|| self.peers.values_mut().find_map(|p| p.client.poll_secret()))
    }

    /// Ends every session.
    pub fn close(&mut self, now: Instant) {
        self.closed = true;
        self.next_join = None;
        self.authority.close(now);
        for p in self.peers.values_mut() {
            p.client.close(now);
        }
        self.server.close(now);
        self.pump(now);
    }

    fn refresh_stats(&mut self) {
        let mut sum = self.server.stats().clone();
        sum.add(self.authority.stats());
        for p in self.peers.values() {
            sum.add(p.client.stats());
        }
        sum.add(&self.own);
        self.sum = sum;
    }
}
