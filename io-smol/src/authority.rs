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

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_channel::{Receiver, Sender, TrySendError};
use async_io::{Async, Timer};
use bytes::Bytes;
use futures_lite::future;
use pavillion_io::plumbing::reply::{self, Reply};
use pavillion_io::{OpenError, RpcFailure, StdClock};
use pavillion_proto::endpoint::{
    Authority as AuthorityCore, AuthorityConfig, AuthorityEvent, AuthorityStats, BatchId, CallId,
    ClientEvent, FailReason, Member as MemberCore, MemberConfig, MemberError, MemberEvent,
    MemberState, Policy, RestoreError, RevokeError, RosterStats, SendOptions, ServerEvent, Stats,
    StoreBatch, Transmit,
};
use pavillion_proto::features::authority::{MemberId, Roster, SigningPublic};
use pavillion_proto::wire::authority::JoinRefusal;
use pavillion_proto::wire::{self, RpcStatus};
use pavillion_proto::{FunctionId, Instant, MessageId};

mod store;

use store::Store;
pub use store::StoreError;

/// Events held for a handle that does not read them; later ones are dropped (they are
/// reports: the roster and the counters stay right whether or not anyone reads them).
pub const EVENTS: usize = 1024;

/// The default port of an authority (`pav authority --bind`).
pub const AUTHORITY_PORT: u16 = 1790;

/// How an [`Authority`] is started.
#[derive(Clone, Debug)]
pub struct AuthorityOptions {
    /// The role itself: keys, policy, limits. `durable` is set from [`Self::store`].
    pub config: AuthorityConfig,
    /// The socket members and operators reach us at.
    pub bind: SocketAddr,
    /// The redb file of our durable state; `None`: nothing survives a restart (a new roster
    /// epoch each time, every member enrols again).
    pub store: Option<PathBuf>,
}

impl AuthorityOptions {
    /// An authority on an ephemeral loopback port, without a store (tests).
    pub fn new(config: AuthorityConfig) -> Self {
        AuthorityOptions {
            config,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: None,
        }
    }

    /// Listen on `bind` instead.
    #[must_use]
    pub fn bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// Keep our state in the redb file at `path` (created if missing).
    #[must_use]
    pub fn store(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(path.into());
        self
    }
}

/// How a [`Member`] is started.
#[derive(Clone, Debug)]
pub struct MemberOptions {
    /// The role itself: keys, authority, credential, limits.
    pub config: MemberConfig,
    /// Our one socket: the authority, our server and our clients to other members share it,
    /// and the authority publishes the address it sees as ours.
    pub bind: SocketAddr,
}

impl MemberOptions {
    /// A member on an ephemeral loopback port (tests).
    pub fn new(config: MemberConfig) -> Self {
        MemberOptions {
            config,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// Use a socket bound to `bind` instead.
    #[must_use]
    pub fn bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }
}

/// Why [`Authority::start`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The socket could not be bound.
    Open(OpenError),
    /// The store could not be opened or read.
    Store(StoreError),
    /// The store holds a record the role does not accept.
    Restore(RestoreError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Open(e) => write!(f, "{e}"),
            StartError::Store(e) => write!(f, "store: {e}"),
            StartError::Restore(e) => write!(f, "store holds a bad record: {e:?}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Open(OpenError::Io(e))
    }
}

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

/// Why a [`Member::call`] returned no result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerCallError {
    /// The call could not be made: unknown or revoked member, no address, too many peers, or
    /// the session refused it.
    Member(MemberError),
    /// The member answered with a non-zero status.
    Remote {
        /// The status.
        status: RpcStatus,
        /// The bytes returned with it.
        data: Bytes,
    },
    /// The call failed before its deadline.
    Failed(FailReason),
    /// No answer before the deadline.
    TimedOut,
    /// The member we called was revoked while the call was pending.
    Revoked,
    /// Our member was closed.
    Closed,
}

impl fmt::Display for PeerCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerCallError::Member(e) => write!(f, "call not made: {e:?}"),
            PeerCallError::Remote { status, data } => {
                write!(
                    f,
                    "remote error {}: {}",
                    status.0,
                    String::from_utf8_lossy(data)
                )
            }
            PeerCallError::Failed(r) => write!(f, "call failed: {r:?}"),
            PeerCallError::TimedOut => f.write_str("call timed out"),
            PeerCallError::Revoked => f.write_str("the member was revoked"),
            PeerCallError::Closed => f.write_str("the member is closed"),
        }
    }
}

impl std::error::Error for PeerCallError {}

/// Why an [`Authority::revoke`] did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeFailure {
    /// The role refused it.
    Refused(RevokeError),
    /// The authority is closed.
    Closed,
}

impl fmt::Display for RevokeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevokeFailure::Refused(RevokeError::UnknownMember) => f.write_str("no such member"),
            RevokeFailure::Refused(e) => write!(f, "{e:?}"),
            RevokeFailure::Closed => f.write_str("the authority is closed"),
        }
    }
}

impl std::error::Error for RevokeFailure {}

/// Locks a mutex whose holder may have panicked: the data is a snapshot, still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// Authority

/// What an [`Authority`] handle asks of its task.
enum AuthorityCommand {
    Revoke(MemberId, Reply<Result<(), RevokeError>>),
    SetPolicy(Policy),
    Stats(Reply<(AuthorityStats, Stats)>),
    Close,
}

/// A running authority. Dropping the handle closes it (without waiting; [`Authority::close`]
/// waits).
#[derive(Debug)]
pub struct Authority {
    local_addr: SocketAddr,
    signing: SigningPublic,
    commands: Sender<AuthorityCommand>,
    events: Receiver<AuthorityEvent>,
    roster: Arc<Mutex<Roster>>,
    task: Mutex<Option<smol::Task<()>>>,
}

impl fmt::Debug for AuthorityCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthorityCommand::Revoke(..) => "Revoke",
            AuthorityCommand::SetPolicy(_) => "SetPolicy",
            AuthorityCommand::Stats(_) => "Stats",
            AuthorityCommand::Close => "Close",
        })
    }
}

impl Authority {
    /// Opens the store (if any) and restores the role from it, binds the socket, and starts
    /// the authority's task on smol's global executor.
    ///
    /// # Errors
    /// [`StartError`]: the socket, the store, or a stored record.
    pub async fn start(options: AuthorityOptions) -> Result<Authority, StartError> {
        let AuthorityOptions {
            mut config,
            bind,
            store,
        } = options;
        config.durable = store.is_some();
        let (store, core) = match store {
            Some(path) => {
                let (store, records) = smol::unblock(move || Store::open(&path))
                    .await
                    .map_err(StartError::Store)?;
                let core = AuthorityCore::restore(config, records.iter().map(|r| r.as_record()))
                    .map_err(StartError::Restore)?;
                (Some(store), core)
            }
            None => (None, AuthorityCore::new(config)),
        };
        let socket = UdpSocket::bind(bind)?;
        let local_addr = socket.local_addr()?;
        let socket = Async::new(socket)?;
        let signing = core.signing_public();
        let roster = Arc::new(Mutex::new(core.roster().clone()));
        let (commands, command_rx) = async_channel::unbounded();
        let (event_tx, events) = async_channel::bounded(EVENTS);
        let role = AuthorityRole {
            core,
            store,
            events: event_tx,
            roster: roster.clone(),
        };
        let task = smol::spawn(drive(role, socket, command_rx));
        Ok(Authority {
            local_addr,
            signing,
            commands,
            events,
            roster,
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
        lock(&self.roster).clone()
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

    /// Replaces the policy (a reloaded file); members admitted before stay admitted.
    pub fn set_policy(&self, policy: Policy) {
        let _ = self.commands.try_send(AuthorityCommand::SetPolicy(policy));
    }

    /// The authority's counters and its sessions' counters; `None` once closed.
    pub async fn stats(&self) -> Option<(AuthorityStats, Stats)> {
        let (tx, rx) = reply::channel();
        self.commands.send(AuthorityCommand::Stats(tx)).await.ok()?;
        rx.await.ok()
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
    store: Option<Store>,
    events: Sender<AuthorityEvent>,
    roster: Arc<Mutex<Roster>>,
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

    fn poll_store(&mut self) -> Option<(StoreBatch, Option<Store>)> {
        let batch = self.core.poll_store()?;
        Some((batch, self.store.take()))
    }

    fn stored(&mut self, now: Instant, batch: BatchId, store: Option<Store>) {
        self.store = store;
        self.core.stored(now, batch);
    }

    fn on_command(&mut self, now: Instant, command: AuthorityCommand) -> bool {
        match command {
            AuthorityCommand::Revoke(id, r) => r.send(self.core.revoke(now, id)),
            AuthorityCommand::SetPolicy(p) => self.core.set_policy(now, p),
            AuthorityCommand::Stats(r) => r.send((
                self.core.authority_stats().clone(),
                self.core.stats().clone(),
            )),
            AuthorityCommand::Close => return false,
        }
        true
    }

    fn dispatch(&mut self, _now: Instant) {
        while let Some(e) = self.core.poll_event() {
            notify(&self.events, e);
        }
        let published = self.core.roster();
        let mut roster = lock(&self.roster);
        if roster.epoch != published.epoch || roster.version != published.version {
            *roster = published.clone();
        }
    }

    fn close(&mut self, now: Instant) {
        self.core.close(now);
    }
}

/// Queues an event for the handle, or drops it if nobody reads them.
fn notify<T: fmt::Debug>(to: &Sender<T>, event: T) {
    if let Err(TrySendError::Full(e)) = to.try_send(event) {
        tracing::debug!("event dropped (nobody reads them): {e:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Member

/// A function a [`Member`] serves to the other members: the caller's id and the arguments
/// in, the result or a failure out. It runs on the member's task, so it must not wait.
pub type PeerHandler = Box<dyn FnMut(MemberId, &[u8]) -> Result<Vec<u8>, RpcFailure> + Send>;

/// What a [`Member`] handle asks of its task.
enum MemberCommand {
    Joined(Reply<Result<(MemberId, String), JoinError>>),
    Connect(MemberId, Reply<Result<(), MemberError>>),
    Call {
        peer: MemberId,
        function: FunctionId,
        args: Vec<u8>,
        reply: Reply<Result<Bytes, PeerCallError>>,
    },
    Send {
        peer: MemberId,
        target: String,
        name: String,
        payload: Vec<u8>,
        options: SendOptions,
        reply: Reply<Result<MessageId, MemberError>>,
    },
    Register(FunctionId, PeerHandler),
    Stats(Reply<(RosterStats, Stats)>),
    Close,
}

impl fmt::Debug for MemberCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberCommand::Joined(_) => "Joined",
            MemberCommand::Connect(..) => "Connect",
            MemberCommand::Call { .. } => "Call",
            MemberCommand::Send { .. } => "Send",
            MemberCommand::Register(..) => "Register",
            MemberCommand::Stats(_) => "Stats",
            MemberCommand::Close => "Close",
        })
    }
}

/// What a member's handle reads without asking its task.
#[derive(Debug)]
struct MemberShared {
    state: MemberState,
    roster: Roster,
}

/// A running member. Dropping the handle closes it (without waiting; [`Member::close`]
/// waits).
#[derive(Debug)]
pub struct Member {
    id: MemberId,
    local_addr: SocketAddr,
    commands: Sender<MemberCommand>,
    events: Receiver<MemberEvent>,
    shared: Arc<Mutex<MemberShared>>,
    task: Mutex<Option<smol::Task<()>>>,
}

impl Member {
    /// Binds the member's socket and starts its task on smol's global executor; it starts
    /// joining at once.
    ///
    /// # Errors
    /// [`OpenError`] if the socket cannot be bound.
    pub async fn start(options: MemberOptions) -> Result<Member, OpenError> {
        let socket = UdpSocket::bind(options.bind)?;
        let local_addr = socket.local_addr()?;
        let socket = Async::new(socket)?;
        let core = MemberCore::new(options.config);
        let id = core.id();
        let shared = Arc::new(Mutex::new(MemberShared {
            state: core.state().clone(),
            roster: core.roster().clone(),
        }));
        let (commands, command_rx) = async_channel::unbounded();
        let (event_tx, events) = async_channel::bounded(EVENTS);
        let role = MemberRole {
            core,
            events: event_tx,
            shared: shared.clone(),
            joined: Vec::new(),
            calls: BTreeMap::new(),
            handlers: BTreeMap::new(),
        };
        let task = smol::spawn(drive(role, socket, command_rx));
        Ok(Member {
            id,
            local_addr,
            commands,
            events,
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// Our identity (from our key).
    pub fn id(&self) -> MemberId {
        self.id
    }

    /// The socket's local address (ours in the roster, as the authority sees it).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where we stand with the authority now.
    pub fn state(&self) -> MemberState {
        lock(&self.shared).state.clone()
    }

    /// Waits until the authority admits us (our id and role), or refuses us for good.
    /// Refusals that pass by themselves (`LockedOut`, `Busy`) and an authority that is away
    /// keep it waiting: the member retries by itself.
    ///
    /// # Errors
    /// [`JoinError::Refused`], or [`JoinError::Closed`] if the member closes first.
    pub async fn joined(&self) -> Result<(MemberId, String), JoinError> {
        let (tx, rx) = reply::channel();
        self.commands
            .send(MemberCommand::Joined(tx))
            .await
            .map_err(|_| JoinError::Closed)?;
        rx.await.map_err(|_| JoinError::Closed)?
    }

    /// The roster as last applied.
    pub fn roster(&self) -> Roster {
        lock(&self.shared).roster.clone()
    }

    /// Our events: admission, the authority up and down, roster versions, members revoked,
    /// sessions up and down, messages and calls from members (calls to a function of
    /// [`Member::register`] are answered before they are reported). Every receiver returned
    /// shares one queue of [`EVENTS`]; it ends when the member closes.
    pub fn events(&self) -> Receiver<MemberEvent> {
        self.events.clone()
    }

    /// Opens a session to a member of the roster now (calls and sends open one themselves).
    ///
    /// # Errors
    /// [`MemberError`]: unknown member, no address, too many peers; `Send(Closed)` once
    /// closed.
    pub async fn connect(&self, peer: MemberId) -> Result<(), MemberError> {
        let (tx, rx) = reply::channel();
        let closed = MemberError::Send(pavillion_proto::endpoint::SendError::Closed);
        self.commands
            .send(MemberCommand::Connect(peer, tx))
            .await
            .map_err(|_| closed)?;
        rx.await.map_err(|_| closed)?
    }

    /// Calls `function` on a member's server and waits for its answer (the session's call
    /// deadline bounds the wait).
    ///
    /// # Errors
    /// [`PeerCallError`].
    pub async fn call(
        &self,
        peer: MemberId,
        function: FunctionId,
        args: &[u8],
    ) -> Result<Bytes, PeerCallError> {
        let (tx, rx) = reply::channel();
        let command = MemberCommand::Call {
            peer,
            function,
            args: args.to_vec(),
            reply: tx,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| PeerCallError::Closed)?;
        rx.await.map_err(|_| PeerCallError::Closed)?
    }

    /// Sends a message to a member's server; returns once the session has taken it (its
    /// delivery is reported in [`Member::events`] as [`MemberEvent::ToPeer`]).
    ///
    /// # Errors
    /// [`MemberError`]; `Send(Closed)` once closed.
    pub async fn send(
        &self,
        peer: MemberId,
        target: &str,
        name: &str,
        payload: &[u8],
        options: SendOptions,
    ) -> Result<MessageId, MemberError> {
        let (tx, rx) = reply::channel();
        let closed = MemberError::Send(pavillion_proto::endpoint::SendError::Closed);
        let command = MemberCommand::Send {
            peer,
            target: target.into(),
            name: name.into(),
            payload: payload.to_vec(),
            options,
            reply: tx,
        };
        self.commands.send(command).await.map_err(|_| closed)?;
        rx.await.map_err(|_| closed)?
    }

    /// Serves `function` to the other members of the roster (nobody else can open a session
    /// with our server). The handler runs on the member's task.
    pub fn register<F>(&self, function: FunctionId, handler: F)
    where
        F: FnMut(MemberId, &[u8]) -> Result<Vec<u8>, RpcFailure> + Send + 'static,
    {
        let _ = self
            .commands
            .try_send(MemberCommand::Register(function, Box::new(handler)));
    }

    /// How roster publications fared, and the sessions' summed counters; `None` once closed.
    pub async fn stats(&self) -> Option<(RosterStats, Stats)> {
        let (tx, rx) = reply::channel();
        self.commands.send(MemberCommand::Stats(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Ends every session (the authority and our peers see us leave at once) and waits for
    /// the task.
    pub async fn close(&self) {
        let _ = self.commands.send(MemberCommand::Close).await;
        let task = lock(&self.task).take();
        if let Some(t) = task {
            t.await;
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.commands.try_send(MemberCommand::Close);
        if let Some(t) = lock(&self.task).take() {
            t.detach();
        }
    }
}

/// The member's side of the task.
struct MemberRole {
    core: MemberCore,
    events: Sender<MemberEvent>,
    shared: Arc<Mutex<MemberShared>>,
    /// Callers of [`Member::joined`] waiting for an outcome.
    joined: Vec<Reply<Result<(MemberId, String), JoinError>>>,
    /// Calls to members waiting for their answer (call ids are per peer session).
    calls: BTreeMap<(MemberId, CallId), Reply<Result<Bytes, PeerCallError>>>,
    handlers: BTreeMap<FunctionId, PeerHandler>,
}

impl MemberRole {
    /// Answers the callers of [`Member::joined`] if we are admitted or refused for good.
    fn settle_joined(&mut self) {
        let outcome = match self.core.state() {
            MemberState::Joining => return,
            MemberState::Joined { id, role } => Ok((*id, role.clone())),
            MemberState::Refused(r) => Err(JoinError::Refused(*r)),
        };
        for r in self.joined.drain(..) {
            r.send(outcome.clone());
        }
    }

    fn finish_call(&mut self, peer: MemberId, call: CallId, outcome: Result<Bytes, PeerCallError>) {
        if let Some(r) = self.calls.remove(&(peer, call)) {
            r.send(outcome);
        }
    }

    /// Routes one event to the callers waiting for it; `false` if nobody else needs it.
    fn route(&mut self, now: Instant, event: &MemberEvent) {
        match event {
            MemberEvent::ToPeer { id, event } => match event {
                ClientEvent::Answered { call, data, .. } => {
                    self.finish_call(*id, *call, Ok(data.clone()));
                }
                ClientEvent::RemoteError {
                    call, status, data, ..
                } => {
                    let e = PeerCallError::Remote {
                        status: *status,
                        data: data.clone(),
                    };
                    self.finish_call(*id, *call, Err(e));
                }
                ClientEvent::CallFailed { call, reason } => {
                    self.finish_call(*id, *call, Err(PeerCallError::Failed(*reason)));
                }
                ClientEvent::CallTimedOut { call } => {
                    self.finish_call(*id, *call, Err(PeerCallError::TimedOut));
                }
                _ => {}
            },
            MemberEvent::PeerRevoked { id } => {
                let gone: Vec<_> = self
                    .calls
                    .range((*id, CallId(0))..)
                    .take_while(|((p, _), _)| p == id)
                    .map(|(k, _)| *k)
                    .collect();
                for k in gone {
                    if let Some(r) = self.calls.remove(&k) {
                        r.send(Err(PeerCallError::Revoked));
                    }
                }
            }
            MemberEvent::FromPeer {
                id,
                event: ServerEvent::RpcRequest(req),
            } => {
                let (status, data) = match self.handlers.get_mut(&req.function) {
                    Some(h) => match h(*id, &req.args) {
                        Ok(data) => (RpcStatus::OK, Bytes::from(data)),
                        Err(f) => (f.status, f.data),
                    },
                    None => (RpcStatus::NONEXISTENT_FUNCTION, Bytes::new()),
                };
                let server = self.core.server_mut();
                if let Err(e) = server.respond(now, req.call, status, &data) {
                    tracing::debug!("member: answer to {id} not sent: {e:?}");
                }
            }
            _ => {}
        }
    }
}

impl Role for MemberRole {
    type Command = MemberCommand;

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

    fn on_command(&mut self, now: Instant, command: MemberCommand) -> bool {
        match command {
            MemberCommand::Joined(r) => {
                self.joined.push(r);
                self.settle_joined();
            }
            MemberCommand::Connect(peer, r) => r.send(self.core.connect(now, peer)),
            MemberCommand::Call {
                peer,
                function,
                args,
                reply,
            } => match self.core.call(now, peer, function, &args) {
                Ok(call) => {
                    self.calls.insert((peer, call), reply);
                }
                Err(e) => reply.send(Err(PeerCallError::Member(e))),
            },
            MemberCommand::Send {
                peer,
                target,
                name,
                payload,
                options,
                reply,
            } => reply.send(
                self.core
                    .send_message(now, peer, &target, &name, &payload, options),
            ),
            MemberCommand::Register(function, handler) => {
                self.core
                    .server_mut()
                    .register_function(function, "member function");
                self.handlers.insert(function, handler);
            }
            MemberCommand::Stats(r) => {
                r.send((self.core.roster_stats().clone(), self.core.stats().clone()));
            }
            MemberCommand::Close => return false,
        }
        true
    }

    fn dispatch(&mut self, now: Instant) {
        while let Some(e) = self.core.poll_event() {
            self.route(now, &e);
            notify(&self.events, e);
        }
        self.settle_joined();
        let mut shared = lock(&self.shared);
        if &shared.state != self.core.state() {
            shared.state = self.core.state().clone();
        }
        let roster = self.core.roster();
        if shared.roster.epoch != roster.epoch || shared.roster.version != roster.version {
            shared.roster = roster.clone();
        }
    }

    fn close(&mut self, now: Instant) {
        self.core.close(now);
    }
}

// ---------------------------------------------------------------------------------------
// The loop both roles share

/// What the loop needs of a role.
trait Role: Send + 'static {
    type Command: Send + 'static;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;

    /// The next batch to write, and the store to write it to (lent to the blocking pool for
    /// the write; `None`: nothing to write it to, the role acknowledges at once).
    fn poll_store(&mut self) -> Option<(StoreBatch, Option<Store>)> {
        None
    }

    /// The batch is written; the store comes back.
    fn stored(&mut self, now: Instant, batch: BatchId, store: Option<Store>) {
        let _ = (now, batch, store);
    }

    /// Carries out a command; `false` to close.
    fn on_command(&mut self, now: Instant, command: Self::Command) -> bool;

    /// Reports the role's events.
    fn dispatch(&mut self, now: Instant);

    fn close(&mut self, now: Instant);
}

/// What woke the task.
enum Wake<C> {
    Command(Option<C>),
    Datagram(io::Result<(usize, SocketAddr)>),
    Timeout,
}

/// The task: returns when a command closes the role, every handle is gone, or a store write
/// fails (the role must not publish what was not written, so it stops).
async fn drive<R: Role>(mut role: R, socket: Async<UdpSocket>, commands: Receiver<R::Command>) {
    let clock = StdClock::new();
    let mut rx = vec![0u8; 65_536];
    let mut tx = vec![0u8; wire::MAX_DATAGRAM];
    // A member queues its first handshake when created.
    if !after(&mut role, &socket, &clock, &mut tx).await {
        return;
    }
    loop {
        let now = clock.now();
        let deadline = role.poll_timeout();
        if deadline.is_some_and(|t| t <= now) {
            role.handle_timeout(now);
            if !after(&mut role, &socket, &clock, &mut tx).await {
                return;
            }
            continue;
        }
        let timer = deadline
            .and_then(|t| clock.to_std(t))
            .map_or_else(Timer::never, Timer::at);
        let wake = future::or(
            async { Wake::Command(commands.recv().await.ok()) },
            future::or(
                async { Wake::Datagram(socket.recv_from(&mut rx).await) },
                async {
                    timer.await;
                    Wake::Timeout
                },
            ),
        )
        .await;
        let now = clock.now();
        match wake {
            Wake::Command(command) => {
                if !command.is_some_and(|c| role.on_command(now, c)) {
                    role.close(now);
                    after(&mut role, &socket, &clock, &mut tx).await;
                    return;
                }
            }
            Wake::Datagram(Ok((n, from))) => {
                role.handle_datagram(now, from, rx.get(..n).unwrap_or_default());
            }
            // ICMP errors of earlier sends surface here; the role's timers deal with a peer
            // that is gone.
            Wake::Datagram(Err(e)) => tracing::debug!("recv_from: {e}"),
            Wake::Timeout => role.handle_timeout(now),
        }
        if !after(&mut role, &socket, &clock, &mut tx).await {
            return;
        }
    }
}

/// Sends what the role queued, writes its batches and tells it they are written (which may
/// queue publications), reports its events (handlers may queue answers), and sends again.
/// `false` if a store write failed.
async fn after<R: Role>(
    role: &mut R,
    socket: &Async<UdpSocket>,
    clock: &StdClock,
    buf: &mut [u8],
) -> bool {
    loop {
        flush(role, socket, clock.now(), buf).await;
        let Some((batch, store)) = role.poll_store() else {
            break;
        };
        let id = batch.id;
        let store = match store {
            Some(store) => {
                let (store, written) = smol::unblock(move || {
                    let written = store.write(&batch);
                    (store, written)
                })
                .await;
                if let Err(e) = written {
                    tracing::error!("authority store write failed, stopping: {e}");
                    role.close(clock.now());
                    flush(role, socket, clock.now(), buf).await;
                    return false;
                }
                Some(store)
            }
            None => None,
        };
        role.stored(clock.now(), id, store);
    }
    role.dispatch(clock.now());
    flush(role, socket, clock.now(), buf).await;
    true
}

async fn flush<R: Role>(role: &mut R, socket: &Async<UdpSocket>, now: Instant, buf: &mut [u8]) {
    while let Some(t) = role.poll_transmit(now, buf) {
        let datagram = buf.get(..t.len).unwrap_or_default();
        if let Err(e) = socket.send_to(datagram, t.destination).await {
            // A lost datagram is the role's business: it retransmits what matters.
            tracing::debug!("send_to {}: {e}", t.destination);
        }
    }
}
