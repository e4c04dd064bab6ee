//! The blocking member: its handle and its side of the thread (answering the handle's
//! callers, running the functions it serves to the other members).

use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Interest, Poll, Waker};
use pavillion_io::authority::{MemberCommand, PeerCallError, PeerCalls};
use pavillion_io::plumbing::reply::{self};
use pavillion_io::{OpenError, RpcFailure, StdClock};
use pavillion_proto::endpoint::{
    Member as MemberCore, MemberError, MemberEvent, MemberState, RosterStats, SendError,
    SendOptions, Stats, Transmit,
};
use pavillion_proto::features::authority::{MemberId, Roster};
use pavillion_proto::wire::authority::JoinRefusal;
use pavillion_proto::{FunctionId, Instant, MessageId};

use super::driver::{Driver, Role, SOCKET, WAKE};
use super::{lock, notify, MemberOptions, EVENTS};

/// Why [`Member::wait_joined`] returned without an admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinError {
    /// The authority refused us for a reason that does not pass by itself.
    Refused(JoinRefusal),
    /// Neither admitted nor refused for good within the wait (the member keeps trying).
    TimedOut,
    /// The member was closed first.
    Closed,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Refused(r) => write!(f, "refused: {r:?}"),
            JoinError::TimedOut => f.write_str("not admitted in time"),
            JoinError::Closed => f.write_str("the member is closed"),
        }
    }
}

impl std::error::Error for JoinError {}

/// What a member's handle reads without asking its thread; `changed` wakes
/// [`Member::wait_joined`].
#[derive(Debug)]
struct Shared {
    state: Mutex<SharedState>,
    changed: Condvar,
}

#[derive(Debug)]
struct SharedState {
    state: MemberState,
    roster: Roster,
    closed: bool,
}

/// A running member on its one socket and thread. Dropping it closes it.
pub struct Member {
    id: MemberId,
    local_addr: SocketAddr,
    commands: Sender<MemberCommand>,
    waker: Arc<Waker>,
    events: Mutex<Receiver<MemberEvent>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Member {
    /// Binds the member's socket and starts its thread; it starts joining at once.
    ///
    /// # Errors
    /// [`OpenError`] if the socket cannot be bound.
    pub fn start(options: MemberOptions) -> Result<Member, OpenError> {
        let socket = UdpSocket::bind(options.bind)?;
        let local_addr = socket.local_addr()?;
        socket.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let mut socket = mio::net::UdpSocket::from_std(socket);
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let core = MemberCore::new(options.config);
        let id = core.id();
        let shared = Arc::new(Shared {
            state: Mutex::new(SharedState {
                state: core.state().clone(),
                roster: core.roster().clone(),
                closed: false,
            }),
            changed: Condvar::new(),
        });
        let (commands, command_rx) = mpsc::channel();
        let (event_tx, events) = mpsc::sync_channel(EVENTS);
        let driver = Driver {
            role: MemberRole {
                core,
                events: event_tx,
                shared: shared.clone(),
                peers: PeerCalls::default(),
            },
            clock: StdClock::new(),
            poll,
            socket,
            commands: command_rx,
            buf: vec![0; 65_536],
        };
        let thread = std::thread::Builder::new()
            .name("pavillion-member".into())
            .spawn(move || driver.run())?;
        Ok(Member {
            id,
            local_addr,
            commands,
            waker,
            events: Mutex::new(events),
            shared,
            thread: Mutex::new(Some(thread)),
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
        lock(&self.shared.state).state.clone()
    }

    /// The roster as last applied.
    pub fn roster(&self) -> Roster {
        lock(&self.shared.state).roster.clone()
    }

    /// Waits up to `timeout` until the authority admits us (our id and role), or refuses us
    /// for good. Refusals that pass by themselves (`LockedOut`, `Busy`) and an authority that
    /// is away keep it waiting: the member retries by itself.
    ///
    /// # Errors
    /// [`JoinError::Refused`], [`JoinError::TimedOut`], or [`JoinError::Closed`] if the
    /// member closes first.
    pub fn wait_joined(&self, timeout: Duration) -> Result<(MemberId, String), JoinError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut s = lock(&self.shared.state);
        loop {
            match &s.state {
                MemberState::Joined { id, role } => return Ok((*id, role.clone())),
                MemberState::Refused(r) => return Err(JoinError::Refused(*r)),
                MemberState::Joining if s.closed => return Err(JoinError::Closed),
                MemberState::Joining => {}
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(JoinError::TimedOut);
            }
            s = self
                .shared
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The next event (admission, the authority up and down, roster versions, members
    /// revoked, sessions up and down, messages and calls from members), waiting up to
    /// `timeout`; `None` on timeout or once the member closed. Calls to a function of
    /// [`Member::register`] are answered before they are reported.
    pub fn next_event(&self, timeout: Duration) -> Option<MemberEvent> {
        lock(&self.events).recv_timeout(timeout).ok()
    }

    fn send_command(&self, c: MemberCommand) -> bool {
        let ok = self.commands.send(c).is_ok();
        let _ = self.waker.wake();
        ok
    }

    /// Opens a session to a member of the roster now (calls and sends open one themselves).
    ///
    /// # Errors
    /// [`MemberError`]: unknown member, no address, too many peers; `Send(Closed)` once
    /// closed.
    pub fn connect(&self, peer: MemberId) -> Result<(), MemberError> {
        let closed = MemberError::Send(SendError::Closed);
        let (tx, rx) = reply::channel();
        if !self.send_command(MemberCommand::Connect(peer, tx)) {
            return Err(closed);
        }
        rx.wait(crate::GRACE).map_err(|_| closed)?
    }

    /// Calls `function` on a member's server and waits up to `timeout` for its answer (the
    /// session's own call deadline may end it sooner).
    ///
    /// # Errors
    /// [`PeerCallError`].
    pub fn call(
        &self,
        peer: MemberId,
        function: FunctionId,
        args: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerCallError> {
        let (tx, rx) = reply::channel();
        let command = MemberCommand::Call {
            peer,
            function,
            args: args.to_vec(),
            reply: tx,
        };
        if !self.send_command(command) {
            return Err(PeerCallError::Closed);
        }
        match rx.wait(timeout) {
            Ok(r) => r.map(|b| b.to_vec()),
            Err(reply::WaitError::TimedOut) => Err(PeerCallError::TimedOut),
            Err(_) => Err(PeerCallError::Closed),
        }
    }

    /// Sends a message to a member's server; returns once the session has taken it (its
    /// delivery is reported by [`Member::next_event`] as [`MemberEvent::ToPeer`]).
    ///
    /// # Errors
    /// [`MemberError`]; `Send(Closed)` once closed.
    pub fn send(
        &self,
        peer: MemberId,
        target: &str,
        name: &str,
        payload: &[u8],
        options: SendOptions,
    ) -> Result<MessageId, MemberError> {
        let closed = MemberError::Send(SendError::Closed);
        let (tx, rx) = reply::channel();
        let command = MemberCommand::Send {
            peer,
            target: target.into(),
            name: name.into(),
            payload: payload.to_vec(),
            options,
            reply: tx,
        };
        if !self.send_command(command) {
            return Err(closed);
        }
        rx.wait(crate::GRACE).map_err(|_| closed)?
    }

    /// Serves `function` to the other members of the roster (nobody else can open a session
    /// with our server). The handler runs on the member's thread.
    pub fn register<F>(&self, function: FunctionId, handler: F)
    where
        F: FnMut(MemberId, &[u8]) -> Result<Vec<u8>, RpcFailure> + Send + 'static,
    {
        self.send_command(MemberCommand::Register(function, Box::new(handler)));
    }

    /// How roster publications fared, and the sessions' summed counters; `None` once closed.
    pub fn stats(&self) -> Option<(RosterStats, Stats)> {
        let (tx, rx) = reply::channel();
        if !self.send_command(MemberCommand::Stats(tx)) {
            return None;
        }
        rx.wait(crate::GRACE).ok()
    }

    /// Ends every session (the authority and our peers see us leave at once) and stops the
    /// thread.
    pub fn close(&self) {
        self.send_command(MemberCommand::Close);
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
        lock(&self.shared.state).closed = true;
        self.shared.changed.notify_all();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.close();
    }
}

/// The member's side of the thread.
struct MemberRole {
    core: MemberCore,
    events: SyncSender<MemberEvent>,
    shared: Arc<Shared>,
    /// Calls to members waiting for their answer, and the functions we serve them.
    peers: PeerCalls,
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

    fn set_key_log(&mut self, on: bool) {
        self.core.set_key_log(on);
    }

    fn poll_secret(&mut self) -> Option<pavillion_proto::keylog::SessionSecret> {
        self.core.poll_secret()
    }

    fn on_command(&mut self, now: Instant, command: MemberCommand) -> bool {
        command.apply(now, &mut self.core, &mut self.peers)
    }

    fn dispatch(&mut self, now: Instant) -> bool {
        // The shared view first: a caller woken by an event (`PeerRevoked`, `Roster`) must find
        // `roster()` and `state()` already saying what the event says.
        self.publish();
        while let Some(e) = self.core.poll_event() {
            self.peers.route(now, &e, &mut self.core);
            notify(&self.events, e);
        }
        // Callers that stopped waiting leave nothing behind.
        self.peers.forget_abandoned();
        self.publish();
        true
    }

    fn close(&mut self, now: Instant) {
        self.core.close(now);
        let mut s = lock(&self.shared.state);
        s.closed = true;
        drop(s);
        self.shared.changed.notify_all();
    }
}

impl MemberRole {
    /// Copies the member's state and roster into the handle's shared view, and wakes the
    /// waiters of a state change.
    fn publish(&mut self) {
        let mut s = lock(&self.shared.state);
        let mut changed = false;
        if &s.state != self.core.state() {
            s.state = self.core.state().clone();
            changed = true;
        }
        let roster = self.core.roster();
        if s.roster.epoch != roster.epoch || s.roster.version != roster.version {
            s.roster = roster.clone();
        }
        drop(s);
        if changed {
            self.shared.changed.notify_all();
        }
    }
}
