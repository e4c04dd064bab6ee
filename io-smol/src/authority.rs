//! The two roles of a fleet as `smol` tasks: an [`Authority`] that admits members, keeps their
//! roster durable and publishes it, and a [`Member`] that joins it and talks to the other
//! members directly. `docs/AUTHORITY.md` is the guide; `docs/PROTOCOL.md` §15 the rules.
//!
//! Each role owns one UDP socket and one task, like [`Relay`](crate::Relay): the task waits on
//! the first of a command from the handle, a datagram, or a timer at the role's
//! `poll_timeout`, then sends what the role queued and reports its events. Every decision
//! (admission, lockout, publication, which keys a member accepts) is the `pavillion-proto`
//! role's; this module only drives it.
//!
//! An authority with a store writes each batch of changes the role hands it in one redb
//! transaction (on smol's blocking pool, so the executor is not held up by the disk) before
//! telling the role it is written: nothing reaches a member before it is durable, so a
//! restarted authority never publishes a version lower than one a member has seen.
//!
//! # Examples
//! An authority that admits one listed key, and that member joining it, on loopback:
//! ```no_run
//! use pavillion_proto::crypto::ecc::KeyPair;
//! use pavillion_proto::endpoint::{
//!     AuthorityConfig, JoinCredential, ListedPeer, MemberConfig, Policy,
//! };
//! use pavillion_smol::authority::{Authority, AuthorityOptions, Member, MemberOptions};
//!
//! smol::block_on(async {
//!     let authority_keys = KeyPair::from_secret_bytes([1; 32]);
//!     let member_keys = KeyPair::from_secret_bytes([2; 32]);
//!     let policy = Policy {
//!         peers: vec![ListedPeer {
//!             public: *member_keys.public(),
//!             role: "sensor".into(),
//!             name: "s-1".into(),
//!         }],
//!         max_peers: 16,
//!         ..Policy::default()
//!     };
//!     let config = AuthorityConfig::new(authority_keys.clone(), policy, [3; 32]);
//!     let authority = Authority::start(AuthorityOptions::new(config)).await?;
//!
//!     let config = MemberConfig::new(
//!         member_keys,
//!         authority.local_addr(),
//!         *authority_keys.public(),
//!         JoinCredential::Listed,
//!         [4; 32],
//!     );
//!     let member = Member::start(MemberOptions::new(config)).await?;
//!     let (id, role) = member.joined().await?;
//!     println!("joined as {id} ({role})");
//!     member.close().await;
//!     authority.close().await;
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_channel::{Receiver, Sender};
use async_io::Async;
use pavillion_io::metrics::{MetricsServer, MetricsSnapshot, MetricsSource};
use pavillion_io::plumbing::reply;
use pavillion_proto::endpoint::{
    Authority as AuthorityCore, AuthorityEvent, AuthorityStats, BatchId, Stats, StoreBatch,
    Transmit,
};
use pavillion_proto::features::authority::{MemberId, Roster, SigningPublic};
use pavillion_proto::wire::authority::JoinRefusal;
use pavillion_proto::Instant;

mod driver;
mod member;

use driver::{drive, notify, Role};
pub use member::Member;
use pavillion_io::authority::{open_authority, AuthorityCommand, Store};
pub use pavillion_io::authority::{
    AuthorityOptions, MemberOptions, OpenAuthorityError, StoreError,
};
pub use pavillion_io::authority::{PeerCallError, PeerHandler, RevokeFailure};

/// Events held for a handle that does not read them; later ones are dropped (they are
/// reports: the roster and the counters stay right whether or not anyone reads them).
pub const EVENTS: usize = 1024;

/// Why [`Member::joined`] returned without an admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinError {
    /// The authority refused us for a reason that does not pass by itself.
    Refused(JoinRefusal),
    /// The member was closed first.
    Closed,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Refused(r) => write!(f, "refused: {r:?}"),
            JoinError::Closed => f.write_str("the member is closed"),
        }
    }
}

impl std::error::Error for JoinError {}

/// Locks a mutex whose holder may have panicked: the data is a snapshot, still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running authority. Dropping the handle closes it (without waiting; [`Authority::close`]
/// waits).
#[derive(Debug)]
pub struct Authority {
    local_addr: SocketAddr,
    signing: SigningPublic,
    commands: Sender<AuthorityCommand>,
    events: Receiver<AuthorityEvent>,
    shared: Arc<Mutex<AuthorityShared>>,
    task: Mutex<Option<smol::Task<()>>>,
}

/// What the handle reads without asking the task.
#[derive(Debug)]
struct AuthorityShared {
    roster: Roster,
    /// Why the task stopped by itself (the store failed), if it did.
    failure: Option<String>,
}

impl Authority {
    /// Opens the store (if any, on smol's blocking pool) and restores the role from it,
    /// binds the socket, and starts the authority's task on smol's global executor.
    ///
    /// # Errors
    /// [`OpenAuthorityError`]: the socket, the store, or a stored record.
    pub async fn start(options: AuthorityOptions) -> Result<Authority, OpenAuthorityError> {
        let (opened, options) = smol::unblock(move || {
            let mut options = options;
            (open_authority(&mut options), options)
        })
        .await;
        let (core, store) = opened?;
        let bind = options.bind;
        let socket = UdpSocket::bind(bind)?;
        let local_addr = socket.local_addr()?;
        let socket = Async::new(socket)?;
        let signing = core.signing_public();
        let shared = Arc::new(Mutex::new(AuthorityShared {
            roster: core.roster().clone(),
            failure: None,
        }));
        let (commands, command_rx) = async_channel::unbounded();
        let (event_tx, events) = async_channel::bounded(EVENTS);
        let role = AuthorityRole {
            core,
            store: store.map(Arc::new),
            events: event_tx,
            shared: shared.clone(),
        };
        let task = smol::spawn(drive(role, socket, command_rx));
        Ok(Authority {
            local_addr,
            signing,
            commands,
            events,
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// The socket's local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The key members verify rosters with.
    pub fn signing_public(&self) -> SigningPublic {
        self.signing
    }

    /// The authority's events: admissions, refusals, lockouts, presence, revocations,
    /// publications. Every receiver returned shares one queue of [`EVENTS`] (an event goes
    /// to one of them); it ends when the authority closes.
    pub fn events(&self) -> Receiver<AuthorityEvent> {
        self.events.clone()
    }

    /// The roster as last published.
    pub fn roster(&self) -> Roster {
        lock(&self.shared).roster.clone()
    }

    /// Why the authority stopped by itself (its store failed: nothing more can be made
    /// durable, so nothing more may be published), if it did.
    pub fn failure(&self) -> Option<String> {
        lock(&self.shared).failure.clone()
    }

    /// Revokes a member: out of the roster, its key refused from now on, its session closed,
    /// and the roster published at once (after it is stored).
    ///
    /// # Errors
    /// [`RevokeFailure::Refused`] for an unknown id; [`RevokeFailure::Closed`].
    pub async fn revoke(&self, id: MemberId) -> Result<(), RevokeFailure> {
        let (tx, rx) = reply::channel();
        self.commands
            .send(AuthorityCommand::Revoke(id, tx))
            .await
            .map_err(|_| RevokeFailure::Closed)?;
        rx.await
            .map_err(|_| RevokeFailure::Closed)?
            .map_err(RevokeFailure::Refused)
    }

    /// The authority's counters and its sessions' counters; `None` once closed.
    pub async fn stats(&self) -> Option<(AuthorityStats, Stats)> {
        let (tx, rx) = reply::channel();
        self.commands.send(AuthorityCommand::Stats(tx)).await.ok()?;
        rx.await.ok()
    }

    /// A metrics snapshot: the sessions' counters and round-trip histogram, with the members
    /// whose session is up as sessions; `None` once closed.
    pub async fn metrics(&self) -> Option<MetricsSnapshot> {
        let (tx, rx) = reply::channel();
        self.commands
            .send(AuthorityCommand::Metrics(tx))
            .await
            .ok()?;
        rx.await.ok()
    }

    /// Serves the authority's metrics in the Prometheus text format at
    /// `http://ADDR/metrics` (`docs/METRICS.md`) until the returned server is dropped.
    ///
    /// # Errors
    /// The listener's error.
    pub fn serve_metrics(&self, addr: SocketAddr) -> std::io::Result<MetricsServer> {
        let commands = self.commands.clone();
        let source = MetricsSource::one(move || {
            let (tx, rx) = reply::channel();
            commands.send_blocking(AuthorityCommand::Metrics(tx)).ok()?;
            rx.wait(crate::METRICS_WAIT).ok()
        });
        MetricsServer::bind(addr, source)
    }

    /// Ends every session (members see the authority leave at once) and waits for the task.
    pub async fn close(&self) {
        let _ = self.commands.send(AuthorityCommand::Close).await;
        let task = lock(&self.task).take();
        if let Some(t) = task {
            t.await;
        }
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        let _ = self.commands.try_send(AuthorityCommand::Close);
        if let Some(t) = lock(&self.task).take() {
            t.detach();
        }
    }
}

/// The authority's side of the task.
struct AuthorityRole {
    core: AuthorityCore,
    store: Option<Arc<Store>>,
    events: Sender<AuthorityEvent>,
    shared: Arc<Mutex<AuthorityShared>>,
}

impl Role for AuthorityRole {
    type Command = AuthorityCommand;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.core.handle_datagram(now, from, datagram);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.core.poll_transmit(now, buf)
    }

    fn set_key_log(&mut self, on: bool) {
        self.core.set_key_log(on);
    }

    fn poll_secret(&mut self) -> Option<pavillion_proto::keylog::SessionSecret> {
        self.core.poll_secret()
    }

    fn poll_store(&mut self) -> Option<(StoreBatch, Option<Arc<Store>>)> {
        let batch = self.core.poll_store()?;
        Some((batch, self.store.clone()))
    }

    fn stored(&mut self, now: Instant, batch: BatchId) {
        self.core.stored(now, batch);
    }

    fn failed(&mut self, why: String) {
        lock(&self.shared).failure = Some(why);
    }

    fn on_command(&mut self, now: Instant, command: AuthorityCommand) -> bool {
        command.apply(&mut self.core, now)
    }

    fn dispatch(&mut self, _now: Instant) {
        // The roster first, then the events: whoever reads an event sees the roster that
        // follows it.
        {
            let published = self.core.roster();
            let shared = &mut lock(&self.shared);
            if shared.roster.epoch != published.epoch || shared.roster.version != published.version
            {
                shared.roster = published.clone();
            }
        }
        while let Some(e) = self.core.poll_event() {
            notify(&self.events, e);
        }
    }

    fn close(&mut self, now: Instant) {
        self.core.close(now);
    }
}
