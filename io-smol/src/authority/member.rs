//! The async member: its handle and its side of the task (answering the handle's callers,
//! running the functions it serves to the other members).

use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use async_channel::{Receiver, Sender};
use async_io::Async;
use bytes::Bytes;
use pavillion_io::plumbing::reply::{self, Reply};
use pavillion_io::{OpenError, RpcFailure};
use pavillion_proto::endpoint::{
    Member as MemberCore, MemberError, MemberEvent, MemberState, RosterStats, SendOptions, Stats,
    Transmit,
};
use pavillion_proto::features::authority::{MemberId, Roster};
use pavillion_proto::{FunctionId, Instant, MessageId};

use super::driver::{drive, notify, Role};
use super::{lock, JoinError, MemberOptions, EVENTS};
use pavillion_io::authority::{MemberCommand, PeerCallError, PeerCalls};

/// What a [`Member`] handle asks of its task.
enum Command {
    /// Wait for the join's outcome.
    Joined(Reply<Result<(MemberId, String), JoinError>>),
    /// What both adapters' member loops do.
    Member(MemberCommand),
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Joined(_) => f.write_str("Joined"),
            Command::Member(c) => c.fmt(f),
        }
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
    commands: Sender<Command>,
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
            peers: PeerCalls::default(),
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
            .send(Command::Joined(tx))
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
            .send(Command::Member(MemberCommand::Connect(peer, tx)))
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
            .send(Command::Member(command))
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
        self.commands
            .send(Command::Member(command))
            .await
            .map_err(|_| closed)?;
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
            .try_send(Command::Member(MemberCommand::Register(
                function,
                Box::new(handler),
            )));
    }

    /// How roster publications fared, and the sessions' summed counters; `None` once closed.
    pub async fn stats(&self) -> Option<(RosterStats, Stats)> {
        let (tx, rx) = reply::channel();
        self.commands
            .send(Command::Member(MemberCommand::Stats(tx)))
            .await
            .ok()?;
        rx.await.ok()
    }

    /// Ends every session (the authority and our peers see us leave at once) and waits for
    /// the task.
    pub async fn close(&self) {
        let _ = self
            .commands
            .send(Command::Member(MemberCommand::Close))
            .await;
        let task = lock(&self.task).take();
        if let Some(t) = task {
            t.await;
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self
            .commands
            .try_send(Command::Member(MemberCommand::Close));
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
    /// Calls to members waiting for their answer, and the functions we serve them.
    peers: PeerCalls,
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
}

impl Role for MemberRole {
    type Command = Command;

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

    fn on_command(&mut self, now: Instant, command: Command) -> bool {
        match command {
            Command::Joined(r) => {
                self.joined.push(r);
                self.settle_joined();
                true
            }
            Command::Member(c) => c.apply(now, &mut self.core, &mut self.peers),
        }
    }

    fn dispatch(&mut self, now: Instant) {
        let mut events = Vec::new();
        while let Some(e) = self.core.poll_event() {
            self.peers.route(now, &e, &mut self.core);
            events.push(e);
        }
        self.settle_joined();
        // The snapshots first, then the events: whoever reads an event sees the state that
        // follows it (a `PeerRevoked` and a roster without that member).
        {
            let mut shared = lock(&self.shared);
            if &shared.state != self.core.state() {
                shared.state = self.core.state().clone();
            }
            let roster = self.core.roster();
            if shared.roster.epoch != roster.epoch || shared.roster.version != roster.version {
                shared.roster = roster.clone();
            }
        }
        for e in events {
            notify(&self.events, e);
        }
    }

    fn close(&mut self, now: Instant) {
        self.core.close(now);
    }
}
