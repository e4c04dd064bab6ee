//! The authority role: admits members of a fleet by credential, locks out credentials that
//! fail to prove themselves (never a legitimate member an attacker spoofs), publishes the
//! roster of admitted members, signed and versioned, on [`ROSTER_TARGET`], tracks their
//! presence, and revokes them. Members then talk to each other directly with the roster's
//! keys ([`Member`](super::Member)); the authority is never in their data path.
//!
//! Inside, an authority is one suite 3 [`Server`] that lets any static key open a session
//! (proving it holds that key); admission is the `JOIN` call on that session.
//! `docs/PROTOCOL.md` §15 is the normative description.
//!
//! [`ROSTER_TARGET`]: crate::wire::authority::ROSTER_TARGET

mod admission;
mod publication;
mod store;
#[cfg(test)]
mod tests;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::{Server, ServerConfig, ServerEvent, Stats, Transmit};
use crate::crypto::ecc::{KeyPair, PublicKey};
use crate::features::authority::lockout::{LockoutPolicy, Lockouts};
use crate::features::authority::{MemberId, Roster, SigningKey, SigningPublic};
use crate::time::{Duration, Instant};
use crate::wire::authority::{JoinRefusal, ROSTER_TARGET};

/// An enrolment secret of the policy: whoever proves it may join, with its role.
#[derive(Clone, Debug)]
pub struct Enrolment {
    /// `BLAKE2b-256("pavillion enrolment v1" || secret)`: see [`Enrolment::key_of`].
    pub key: [u8; 32],
    /// The role given to members admitted by it; `None`: the role the joiner asks for.
    pub role: Option<String>,
}

impl Enrolment {
    /// The enrolment key of a secret (a passphrase or random bytes).
    pub fn key_of(secret: &[u8]) -> [u8; 32] {
        crate::wire::authority::enrolment_key(secret)
    }
}

/// A member key listed in the policy: it joins without a proof.
#[derive(Clone, Debug)]
pub struct ListedPeer {
    /// Its static public key.
    pub public: PublicKey,
    /// Its role.
    pub role: String,
    /// Its human label.
    pub name: String,
}

/// Who may join and who may administer: the operator's policy file, parsed.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Secrets by which unlisted keys may enrol.
    pub enrolments: Vec<Enrolment>,
    /// Keys admitted without a proof.
    pub peers: Vec<ListedPeer>,
    /// Keys that may revoke and read the roster without being members.
    pub operators: Vec<PublicKey>,
    /// How failing credentials are locked out.
    pub lockout: LockoutPolicy,
    /// Most members in the roster.
    pub max_peers: usize,
}

impl Default for Policy {
    /// Nobody may join (no secrets, no listed keys) and room for 1024 members.
    fn default() -> Self {
        Policy {
            enrolments: Vec::new(),
            peers: Vec::new(),
            operators: Vec::new(),
            lockout: LockoutPolicy::default(),
            max_peers: 1024,
        }
    }
}

/// Capacities and timers of an authority. Every table a remote peer can make it grow has a
/// bound here or in the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorityLimits {
    /// Most sessions that have not joined yet; the oldest is disconnected beyond it.
    pub max_pending_joins: usize,
    /// A session that has not joined within this is disconnected.
    pub join_timeout: Duration,
    /// Malformed `JOIN` calls after which a session is disconnected.
    pub max_malformed: u32,
    /// Changes within this window are published as one version (revocations at once).
    pub publish_delay: Duration,
    /// A member silent for this long is marked down.
    pub down_after: Duration,
}

impl Default for AuthorityLimits {
    fn default() -> Self {
        AuthorityLimits {
            max_pending_joins: 256,
            join_timeout: Duration::from_secs(10),
            max_malformed: 3,
            publish_delay: Duration::from_millis(100),
            down_after: Duration::from_secs(75),
        }
    }
}

/// Configuration of an [`Authority`].
#[derive(Clone, Debug)]
pub struct AuthorityConfig {
    /// Seed of the authority's RNG. Use fresh OS randomness in deployments.
    pub seed: [u8; 32],
    /// Our static key pair: members name its public half; our roster signing key derives
    /// from it.
    pub keys: KeyPair,
    /// Who may join and administer.
    pub policy: Policy,
    /// Capacities and timers.
    pub limits: AuthorityLimits,
    /// Whether the driver stores our records ([`Authority::poll_store`]). Without a store,
    /// every batch counts as written at once, and a restart begins a new roster epoch.
    pub durable: bool,
}

impl AuthorityConfig {
    /// An authority with `policy`, default limits, and no store.
    pub fn new(keys: KeyPair, policy: Policy, seed: [u8; 32]) -> Self {
        AuthorityConfig {
            seed,
            keys,
            policy,
            limits: AuthorityLimits::default(),
            durable: false,
        }
    }
}

/// What an authority tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorityEvent {
    /// A member joined (or joined again: `rejoin`, same id, role and name).
    Admitted {
        /// Who.
        id: MemberId,
        /// Its role.
        role: String,
        /// Where from.
        addr: SocketAddr,
        /// Whether it was a member already.
        rejoin: bool,
    },
    /// A join was refused.
    Refused {
        /// The id of the key that tried.
        id: MemberId,
        /// Where from.
        addr: SocketAddr,
        /// Why.
        reason: JoinRefusal,
    },
    /// A key was locked out for `duration` after repeated failed proofs.
    LockedOut {
        /// The id of the key.
        id: MemberId,
        /// How long.
        duration: Duration,
    },
    /// A member's session came up.
    Up {
        /// Who.
        id: MemberId,
        /// Where.
        addr: SocketAddr,
    },
    /// A member's session went down (silence or close).
    Down {
        /// Who.
        id: MemberId,
    },
    /// A member was revoked (by [`Authority::revoke`] or an operator's `REVOKE`).
    Revoked {
        /// Who.
        id: MemberId,
    },
    /// A roster version was published.
    Published {
        /// Which.
        version: u64,
    },
}

/// Why [`Authority::revoke`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeError {
    /// No member has this id.
    UnknownMember,
}

/// What an authority did, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorityStats {
    /// `JOIN` calls received.
    pub joins: u64,
    /// Joins admitted (rejoins included).
    pub admitted: u64,
    /// Joins refused, by reason.
    pub refused: alloc::collections::BTreeMap<JoinRefusal, u64>,
    /// Keys locked out.
    pub lockouts: u64,
    /// Members revoked.
    pub revoked: u64,
    /// Roster versions published.
    pub published: u64,
    /// Sessions disconnected for not joining in time, or for malformed calls.
    pub evicted: u64,
}

/// The table a stored record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreTable {
    /// `epoch`, `version` (and the adapter's own `policy`).
    Meta,
    /// Admitted members by id.
    Members,
    /// Revoked keys.
    Revoked,
    /// Lockouts by key.
    Lockouts,
}

impl StoreTable {
    /// Every table.
    pub const ALL: [StoreTable; 4] = [
        StoreTable::Meta,
        StoreTable::Members,
        StoreTable::Revoked,
        StoreTable::Lockouts,
    ];

    /// Its name in a store.
    pub const fn name(self) -> &'static str {
        match self {
            StoreTable::Meta => "meta",
            StoreTable::Members => "members",
            StoreTable::Revoked => "revoked",
            StoreTable::Lockouts => "lockouts",
        }
    }
}

impl crate::store::Table for StoreTable {
    // The inherent array: one list of the tables.
    const ALL: &'static [Self] = &StoreTable::ALL;

    fn name(self) -> &'static str {
        StoreTable::name(self)
    }
}

/// One change to the authority's stored state (the generic [`crate::store::StoreOp`]).
pub type StoreOp = crate::store::StoreOp<StoreTable>;

/// Identifies a [`StoreBatch`] for [`Authority::stored`].
pub use crate::store::BatchId;

/// Changes the driver must write in one atomic transaction, then confirm with
/// [`Authority::stored`]. Nothing in it is published before that.
pub type StoreBatch = crate::store::StoreBatch<StoreTable>;

/// A record of the authority read back from the store at start.
pub type StoredRecord<'a> = crate::store::StoredRecord<'a, StoreTable>;

/// Why [`Authority::restore`] refused the stored records.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    /// A record that does not decode: its table and key, in hex.
    BadRecord {
        /// Which table.
        table: StoreTable,
        /// The key, in hex.
        key: String,
    },
    /// Members are stored but no epoch or version.
    MissingMeta,
}

/// The authority of a fleet. Drive it like every role: `handle_datagram`, `handle_timeout`,
/// then drain `poll_transmit`, `poll_store` (write, then [`Authority::stored`]) and
/// `poll_event`; wake at `poll_timeout`.
#[derive(Debug)]
pub struct Authority {
    server: Server,
    /// The roster as last published (what members hold).
    roster: Roster,
    signing: SigningPublic,
    stats: AuthorityStats,
    key: SigningKey,
    public: PublicKey,
    policy: Policy,
    limits: AuthorityLimits,
    durable: bool,
    /// The members now, changes included that are not published yet.
    members: BTreeMap<MemberId, admission::Member>,
    /// Static keys refused for good.
    revoked: BTreeSet<[u8; 32]>,
    lockouts: Lockouts,
    /// Sessions by address: who they are and whether they joined.
    sessions: BTreeMap<SocketAddr, admission::Session>,
    events: VecDeque<AuthorityEvent>,
    publish: publication::Publisher,
    store: store::Store,
}

impl Authority {
    /// A fresh authority (a new roster epoch).
    pub fn new(config: AuthorityConfig) -> Self {
        let mut rng = crate::rng::Rng::from_seed(crate::wire::authority::hash_parts(&[
            b"pavillion authority epoch",
            &config.seed,
        ]));
        let epoch = rng.next_u64();
        let mut a = Authority::empty(config, epoch);
        // Version 1, the empty roster, begins the epoch; the epoch is stored with it.
        a.publish.changed = true;
        a.publish.immediate = true;
        a
    }

    fn empty(config: AuthorityConfig, epoch: u64) -> Self {
        let mut server_config = ServerConfig::new(config.seed)
            .with_keys(config.keys.clone())
            .with_down_timeout(config.limits.down_after);
        server_config.allow_guest = true;
        server_config.builtin_calls = false;
        // Property (c) of §15.7: a spoofer flooding initiations from a member's address must
        // not starve the member's handshakes.
        server_config.cookie_when_rate_limited = true;
        let key = SigningKey::derive(&config.keys);
        let mut server = Server::new(server_config);
        server.register_function(crate::wire::authority::JOIN, "core.join");
        server.register_function(crate::wire::authority::FETCH, "core.fetch");
        server.register_function(crate::wire::authority::REVOKE, "core.revoke");
        let mut store = store::Store::default();
        store.cut.epoch = epoch;
        Authority {
            server,
            roster: Roster {
                epoch,
                version: 0,
                entries: BTreeMap::new(),
            },
            signing: key.public(),
            stats: AuthorityStats::default(),
            key,
            public: *config.keys.public(),
            lockouts: Lockouts::new(config.policy.lockout.clone(), Instant::ZERO),
            policy: config.policy,
            limits: config.limits,
            durable: config.durable,
            members: BTreeMap::new(),
            revoked: BTreeSet::new(),
            sessions: BTreeMap::new(),
            events: VecDeque::new(),
            publish: publication::Publisher::default(),
            store,
        }
    }

    /// An authority continuing from its stored records (an empty set: as [`Authority::new`]).
    ///
    /// # Errors
    /// [`RestoreError`] naming the first record that does not decode.
    pub fn restore<'a>(
        config: AuthorityConfig,
        records: impl IntoIterator<Item = StoredRecord<'a>>,
    ) -> Result<Self, RestoreError> {
        store::restore(config, records)
    }

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.server.handle_datagram(now, from, datagram);
        self.process(now);
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.server.handle_timeout(now);
        self.process(now);
        self.expire_pending(now);
        self.publish_due(now);
        self.process(now);
    }

    /// Writes the next datagram into `buf` and says where it goes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.server.poll_transmit(now, buf)
    }

    /// The next batch of changes to store.
    pub fn poll_store(&mut self) -> Option<StoreBatch> {
        self.store.ready.pop_front()
    }

    /// The driver has written `batch` durably: what it holds may now be published.
    pub fn stored(&mut self, now: Instant, batch: BatchId) {
        self.on_stored(now, batch);
        self.process(now);
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<AuthorityEvent> {
        self.events.pop_front()
    }

    /// When the authority next wants `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let join = self
            .sessions
            .values()
            .filter(|s| s.pending())
            .map(|s| s.since + self.limits.join_timeout)
            .min();
        [self.server.poll_timeout(), join, self.publish.due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Revokes a member: removed from the roster, its key refused from now on, its session
    /// closed, and the roster published at once.
    ///
    /// # Errors
    /// [`RevokeError::UnknownMember`] if no member has this id.
    pub fn revoke(&mut self, now: Instant, id: MemberId) -> Result<(), RevokeError> {
        self.revoke_member(now, id)?;
        self.process(now);
        Ok(())
    }

    /// Replaces the policy (a reloaded file). Members admitted before stay admitted.
    pub fn set_policy(&mut self, now: Instant, policy: Policy) {
        self.lockouts.set_policy(policy.lockout.clone());
        self.policy = policy;
        self.process(now);
    }

    /// The roster as last published.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// The key members verify rosters with.
    pub fn signing_public(&self) -> SigningPublic {
        self.signing
    }

    /// Admissions, refusals, lockouts and publications.
    pub fn authority_stats(&self) -> &AuthorityStats {
        &self.stats
    }

    /// The sessions' counters (handshakes, authentication failures, drops).
    pub fn stats(&self) -> &Stats {
        self.server.stats()
    }

    /// Turns the key log on or off (off by default); see [`crate::keylog`].
    pub fn set_key_log(&mut self, on: bool) {
        self.server.set_key_log(on);
    }

    /// The next session secret for the key log; `None` while the key log is off.
    pub fn poll_secret(&mut self) -> Option<crate::keylog::SessionSecret> {
        self.server.poll_secret()
    }

    /// Ends every session (members see the authority leave at once).
    pub fn close(&mut self, now: Instant) {
        self.server.close(now);
        self.process(now);
    }

    /// Handles what the server reported, then hands changes to the store (and, without a
    /// store, publishes what is due).
    fn process(&mut self, now: Instant) {
        self.store.start(now, &mut self.lockouts);
        while let Some(event) = self.server.poll_event() {
            self.on_server_event(now, event);
        }
        self.publish_due(now);
    }

    fn on_server_event(&mut self, now: Instant, event: ServerEvent) {
        match event {
            ServerEvent::Connected { addr, peer } => self.on_connected(now, addr, peer),
            ServerEvent::Disconnected { addr, .. } => self.on_disconnected(now, addr),
            ServerEvent::PeerDown { addr } => self.set_up(now, addr, false),
            ServerEvent::PeerUp { addr } => self.set_up(now, addr, true),
            ServerEvent::RpcRequest(call) => self.on_call(now, call),
            ServerEvent::ClientSubscribed { addr, target, .. } if target == ROSTER_TARGET => {
                self.on_subscribed(now, addr)
            }
            ServerEvent::ClientUnsubscribed { addr, target, .. } if target == ROSTER_TARGET => {
                if let Some(s) = self.sessions.get_mut(&addr) {
                    s.subscribed = false;
                }
            }
            _ => {}
        }
    }
}
