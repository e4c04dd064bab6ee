//! The two roles of a fleet on a thread each: an [`Authority`] that admits members, keeps
//! their roster durable and publishes it, and a [`Member`] that joins it and talks to the
//! other members directly. `docs/PROTOCOL.md` §15 holds the rules; `pav authority`,
//! `pav join`, `pav roster` and `pav revoke` are built on these handles.
//!
//! Each role owns one UDP socket and one thread, like [`Relay`](crate::Relay): the thread
//! sleeps in a `mio` poller until a datagram, a command from the handle, or the role's
//! `poll_timeout`, then sends what the role queued and reports its events. Every decision
//! (admission, lockout, publication, which keys a member accepts) is the `pavillion-proto`
//! role's; this module only drives it.
//!
//! An authority with a store writes each batch of changes in one redb transaction
//! ([`pavillion_io::authority::Store`]) before telling the role it is written, so nothing
//! reaches a member before it is durable and a restarted authority never publishes a roster
//! version lower than one a member has seen.
//!
//! # Examples
//! An authority that admits one listed key, and that member joining it, on loopback:
//! ```no_run
//! use std::time::Duration;
//! use pavillion_proto::crypto::ecc::KeyPair;
//! use pavillion_proto::endpoint::{AuthorityConfig, JoinCredential, ListedPeer, MemberConfig, Policy};
//! use pavillion_std::authority::{Authority, AuthorityOptions, Member, MemberOptions};
//!
//! let authority_keys = KeyPair::from_secret_bytes([1; 32]);
//! let member_keys = KeyPair::from_secret_bytes([2; 32]);
//! let policy = Policy {
//!     peers: vec![ListedPeer { public: *member_keys.public(), role: "sensor".into(), name: "s-1".into() }],
//!     max_peers: 16,
//!     ..Policy::default()
//! };
//! let config = AuthorityConfig::new(authority_keys.clone(), policy, [3; 32]);
//! let authority = Authority::start(AuthorityOptions::new(config))?;
//!
//! let config = MemberConfig::new(
//!     member_keys,
//!     authority.local_addr(),
//!     *authority_keys.public(),
//!     JoinCredential::Listed,
//!     [4; 32],
//! );
//! let member = Member::start(MemberOptions::new(config))?;
//! let (id, role) = member.wait_joined(Duration::from_secs(5))?;
//! println!("joined as {id} ({role})");
//! member.close();
//! authority.close();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Interest, Poll, Waker};
use pavillion_io::authority::{open_authority, store_batches, AuthorityCommand, Store};
pub use pavillion_io::authority::{AuthorityOptions, MemberOptions, OpenAuthorityError};
use pavillion_io::metrics::{MetricsServer, MetricsSnapshot, MetricsSource};
use pavillion_io::plumbing::reply;
use pavillion_io::StdClock;
use pavillion_proto::endpoint::{
    Authority as AuthorityCore, AuthorityEvent, AuthorityStats, Stats, Transmit,
};
use pavillion_proto::features::authority::{MemberId, Roster, SigningPublic};
use pavillion_proto::Instant;

mod driver;
mod member;

use driver::{Driver, Role, SOCKET, WAKE};
pub use member::{JoinError, Member};
pub use pavillion_io::authority::{PeerCallError, PeerHandler, RevokeFailure};

/// Events held for a handle that does not read them; later ones are dropped (they are
/// reports: the roster and the counters stay right whether or not anyone reads them).
pub const EVENTS: usize = 1024;

/// Locks a mutex whose holder may have panicked: the data is a snapshot, still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Hands a report to the handle, or drops it if nobody reads them.
fn notify<T: fmt::Debug>(events: &SyncSender<T>, event: T) {
    if let Err(TrySendError::Full(e)) = events.try_send(event) {
        tracing::debug!("fleet event dropped (nobody reads them): {e:?}");
    }
}

/// A running authority on its own socket and thread. Dropping it closes it.
pub struct Authority {
    local_addr: SocketAddr,
    signing: SigningPublic,
    commands: Sender<AuthorityCommand>,
    waker: Arc<Waker>,
    events: Mutex<Receiver<AuthorityEvent>>,
    shared: Arc<Mutex<AuthorityShared>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the handle reads without asking the thread.
#[derive(Debug, Default)]
struct AuthorityShared {
    roster: Roster,
    /// Why the loop stopped by itself (the store failed), if it did.
    failure: Option<String>,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Opens the store (if any) and restores the role from it, binds the socket, and starts
    /// the authority's thread.
    ///
    /// # Errors
    /// [`OpenAuthorityError`]: the socket, the store, or a stored record.
    pub fn start(mut options: AuthorityOptions) -> Result<Authority, OpenAuthorityError> {
        let (core, store) = open_authority(&mut options)?;
        let socket = UdpSocket::bind(options.bind)?;
        let local_addr = socket.local_addr()?;
        socket.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let mut socket = mio::net::UdpSocket::from_std(socket);
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let signing = core.signing_public();
        let shared = Arc::new(Mutex::new(AuthorityShared {
            roster: core.roster().clone(),
            failure: None,
        }));
        let (commands, command_rx) = mpsc::channel();
        let (event_tx, events) = mpsc::sync_channel(EVENTS);
        let driver = Driver {
            role: AuthorityRole {
                core,
                store,
                events: event_tx,
                shared: shared.clone(),
            },
            clock: StdClock::new(),
            poll,
            socket,
            commands: command_rx,
            buf: vec![0; 65_536],
        };
        let thread = std::thread::Builder::new()
            .name("pavillion-authority".into())
            .spawn(move || driver.run())?;
        Ok(Authority {
            local_addr,
            signing,
            commands,
            waker,
            events: Mutex::new(events),
            shared,
            thread: Mutex::new(Some(thread)),
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

    /// The next event (admissions, refusals, lockouts, presence, revocations, publications),
    /// waiting up to `timeout`; `None` on timeout or once the authority closed.
    pub fn next_event(&self, timeout: Duration) -> Option<AuthorityEvent> {
        lock(&self.events).recv_timeout(timeout).ok()
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

    fn send(&self, c: AuthorityCommand) -> bool {
        let ok = self.commands.send(c).is_ok();
        let _ = self.waker.wake();
        ok
    }

    /// Revokes a member: out of the roster, its key refused from now on, its session closed,
    /// and the roster published at once (after it is stored).
    ///
    /// # Errors
    /// [`RevokeFailure::Refused`] for an unknown id; [`RevokeFailure::Closed`].
    pub fn revoke(&self, id: MemberId) -> Result<(), RevokeFailure> {
        let (tx, rx) = reply::channel();
        if !self.send(AuthorityCommand::Revoke(id, tx)) {
            return Err(RevokeFailure::Closed);
        }
        rx.wait(crate::GRACE)
            .map_err(|_| RevokeFailure::Closed)?
            .map_err(RevokeFailure::Refused)
    }

    /// The authority's counters and its sessions' counters; `None` once closed.
    pub fn stats(&self) -> Option<(AuthorityStats, Stats)> {
        let (tx, rx) = reply::channel();
        if !self.send(AuthorityCommand::Stats(tx)) {
            return None;
        }
        rx.wait(crate::GRACE).ok()
    }

    /// A metrics snapshot: the sessions' counters and round-trip histogram, with the members
    /// whose session is up as sessions; `None` once closed.
    pub fn metrics(&self) -> Option<MetricsSnapshot> {
        let (tx, rx) = reply::channel();
        if !self.send(AuthorityCommand::Metrics(tx)) {
            return None;
        }
        rx.wait(crate::GRACE).ok()
    }

    /// Serves the authority's metrics in the Prometheus text format at
    /// `http://ADDR/metrics` (`docs/METRICS.md`) until the returned server is dropped.
    ///
    /// # Errors
    /// The listener's error.
    pub fn serve_metrics(&self, addr: impl ToSocketAddrs) -> io::Result<MetricsServer> {
        let commands = self.commands.clone();
        let waker = self.waker.clone();
        let source = MetricsSource::one(move || {
            let (tx, rx) = reply::channel();
            commands.send(AuthorityCommand::Metrics(tx)).ok()?;
            let _ = waker.wake();
            rx.wait(crate::GRACE).ok()
        });
        MetricsServer::bind(crate::resolve_io(addr)?, source)
    }

    /// Ends every session (members see the authority leave at once) and stops the thread.
    pub fn close(&self) {
        self.send(AuthorityCommand::Close);
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        self.close();
    }
}

/// The authority's side of the thread.
struct AuthorityRole {
    core: AuthorityCore,
    store: Option<Store>,
    events: SyncSender<AuthorityEvent>,
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

    fn on_command(&mut self, now: Instant, command: AuthorityCommand) -> bool {
        command.apply(&mut self.core, now)
    }

    fn dispatch(&mut self, now: Instant) -> bool {
        // Written (and acknowledged) before the events, so that a `Published` event names a
        // version that is on disk.
        let stored = store_batches(&mut self.core, self.store.as_ref(), now);
        // The snapshot before the events: whoever reads an event finds `roster()` agreeing.
        {
            let mut shared = lock(&self.shared);
            let published = self.core.roster();
            if shared.roster.epoch != published.epoch || shared.roster.version != published.version
            {
                shared.roster = published.clone();
            }
        }
        while let Some(e) = self.core.poll_event() {
            notify(&self.events, e);
        }
        let mut shared = lock(&self.shared);
        if let Err(e) = stored {
            tracing::error!("authority: {e}; stopping, since nothing more can be made durable");
            shared.failure = Some(e.to_string());
            return false;
        }
        true
    }

    fn close(&mut self, now: Instant) {
        self.core.close(now);
    }
}
