//! The server half of the plumbing: the handle's commands, RPC handlers and responders, and
//! the router that carries commands out on the endpoint and routes its events.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use bytes::Bytes;
use pavillion_proto::endpoint::{
    self as proto, CallHandle, Reliability, RpcRequest, SendOptions, ServerEvent, Stats,
};
use pavillion_proto::features::status::Status;
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::{FunctionId, Instant, MessageId, PeerId};

use super::events::{ConnectionEvent, ConnectionSubscriber, ConnectionSubscribers};
use super::handoff::{HandoffCmd, HandoffRouter, HandoffSubscriber};
use super::link::{self, Link, WeakLink};
use super::messages::{ReceivedMessage, Subscriber, Subscribers};
use super::progress::FanoutProgress;
use super::registers::{ServerRegisterCmd, ServerRegisters};
use super::reply::{self, Pending, Reply};
use super::sockets;
use super::window::{SendHandle, Slot, Window};
use super::{Clock, Delivery, Flow, Parts, Role};
use crate::config::{ServerConfig, SEND_WINDOW_RESERVE};
use crate::durable::{self, DurableCommand, DurableError, DurableRestored};
use crate::error::{OpenError, SendError};
use crate::metrics::{MetricsRole, MetricsSnapshot, MetricsSource};

/// Binds a server on `addr` (with its reply socket and group, as configured) and builds its
/// endpoint, seeded from OS randomness.
///
/// # Errors
/// A socket that cannot be bound, or a group that cannot be joined.
pub fn open(
    addr: SocketAddr,
    config: &ServerConfig,
) -> Result<Parts<ServerRouter, ServerHandle>, OpenError> {
    let opened = sockets::server(addr, config)?;
    let sockets = opened.sockets;
    let local = sockets.primary.local_addr()?;
    let reply_addr = sockets
        .secondary
        .as_ref()
        .map(|s| s.local_addr())
        .transpose()?;
    let mut inner = config.inner.clone();
    inner.seed = crate::keys::random32();
    // A full window to one client never meets a refusal of its queue.
    inner.limits.max_queued = inner
        .limits
        .max_queued
        .max(config.send_window_size() + SEND_WINDOW_RESERVE);
    inner.announce = match config.announce {
        Some(explicit) => explicit,
        None => inner
            .announce
            .or(opened.group.map(|g| SocketAddr::new(g, local.port()))),
    };
    tracing::info!(%local, reply = ?reply_addr, group = ?opened.group, "server started");
    let mut endpoint = proto::Server::new(inner);
    let (link, commands) = link::channel();
    let clock = Clock::new();
    let durable = durable::start(
        config.durable_path(),
        &mut endpoint,
        clock.now(),
        link.downgrade(),
        |c| ServerCommand(Cmd::Durable(c)),
    )?;
    let durable_restored = durable.restored();
    let window = Window::for_driver(config.send_window_size(), link.driver_thread());
    Ok(Parts {
        router: ServerRouter {
            ep: endpoint,
            link: link.downgrade(),
            handlers: HashMap::new(),
            subscribers: Subscribers::default(),
            connection: ConnectionSubscribers::default(),
            fanouts: HashMap::new(),
            fanout_of: HashMap::new(),
            pipelined: HashMap::new(),
            next_fanout: 0,
            groups: opened.group.into_iter().collect(),
            registers: ServerRegisters::default(),
            durable,
            handoffs: HandoffRouter::default(),
        },
        sockets,
        commands,
        handle: ServerHandle {
            link,
            local,
            reply_addr,
            send_timeout: config.send_timeout,
            message_buffer: config.message_buffer,
            durable: durable_restored,
            window,
        },
        clock,
    })
}

/// A failed RPC: the status code and bytes (often a message) returned to the caller.
///
/// # Examples
/// ```
/// use pavillion_io::RpcFailure;
/// let f = RpcFailure::bad_input("expected 2 bytes");
/// assert_eq!(f.status.0, 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcFailure {
    /// The status code (docs/PROTOCOL.md §9.1); never 0.
    pub status: RpcStatus,
    /// The bytes returned with it.
    pub data: Bytes,
}

impl RpcFailure {
    /// A failure with any status and data.
    pub fn new(status: RpcStatus, data: impl Into<Bytes>) -> Self {
        RpcFailure {
            status,
            data: data.into(),
        }
    }

    /// Status 1 (error) with a message.
    pub fn error(message: &str) -> Self {
        Self::new(RpcStatus::ERROR, Bytes::copy_from_slice(message.as_bytes()))
    }

    /// Status 3 (bad input) with a message.
    pub fn bad_input(message: &str) -> Self {
        Self::new(
            RpcStatus::BAD_INPUT,
            Bytes::copy_from_slice(message.as_bytes()),
        )
    }
}

/// The outcome of a server's send for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The client's address.
    pub client: SocketAddr,
    /// What happened to the message there.
    pub result: Result<Delivery, SendError>,
}

impl Outcome {
    /// The result of a send to one client, from the outcomes of a send to
    /// [`Recipients::One`].
    ///
    /// # Errors
    /// That client's failure; [`SendError::Closed`] if there is no outcome.
    pub fn only(mut outcomes: Vec<Outcome>) -> Result<Delivery, SendError> {
        outcomes.pop().map_or(Err(SendError::Closed), |o| o.result)
    }
}

/// Answers one RPC call later, from any thread or task. Dropping it unanswered (also while
/// unwinding from a panic) answers status 1 with `NoAnswer`, so the caller learns at once
/// instead of at its deadline.
///
/// # Examples
/// A deferred handler (given to an adapter's `register_deferred`) answering from a thread:
/// ```no_run
/// use pavillion_io::Responder;
/// use pavillion_proto::endpoint::RpcRequest;
///
/// fn slow(request: RpcRequest, responder: Responder) {
///     std::thread::spawn(move || {
///         std::thread::sleep(std::time::Duration::from_millis(100));
///         responder.respond(Ok(request.args.to_vec()));
///     });
/// }
/// ```
#[derive(Debug)]
pub struct Responder {
    call: CallHandle,
    link: Link<ServerCommand>,
    answered: bool,
}

impl Responder {
    /// Sends the answer: `Ok(data)` is status 0. It never waits.
    pub fn respond<R: Into<Bytes>>(mut self, result: Result<R, RpcFailure>) {
        self.answered = true;
        let result = result.map(Into::into);
        let _ = self.link.send(ServerCommand(Cmd::Respond {
            call: self.call,
            result,
        }));
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.link.send(ServerCommand(Cmd::Respond {
                call: self.call,
                result: Err(RpcFailure::error("NoAnswer")),
            }));
        }
    }
}

/// How a registered function is answered.
pub enum Handler {
    /// Later, through the [`Responder`] the handler receives (which it may move anywhere).
    Later(Box<dyn FnMut(RpcRequest, Responder) + Send>),
    /// At once, by the handler's return value, on the driver.
    Now(NowHandler),
}

/// A handler answered by its return value.
pub type NowHandler = Box<dyn FnMut(&RpcRequest) -> Result<Bytes, RpcFailure> + Send>;

impl Handler {
    /// A handler answered by its return value.
    pub fn now<R, F>(mut f: F) -> Handler
    where
        R: Into<Bytes>,
        F: FnMut(&RpcRequest) -> Result<R, RpcFailure> + Send + 'static,
    {
        Handler::Now(Box::new(move |req| f(req).map(Into::into)))
    }

    /// A handler answered through a [`Responder`].
    pub fn later(f: impl FnMut(RpcRequest, Responder) + Send + 'static) -> Handler {
        Handler::Later(Box::new(f))
    }
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handler::Later(_) => "Handler::Later",
            Handler::Now(_) => "Handler::Now",
        })
    }
}

/// Which clients a send goes to.
pub enum Recipients {
    /// Every client for which `filter(address, identity)` is true.
    All(Box<dyn Fn(SocketAddr, PeerId) -> bool + Send>),
    /// The one client at this address.
    One(SocketAddr),
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recipients::All(_) => f.write_str("Recipients::All"),
            Recipients::One(a) => write!(f, "Recipients::One({a})"),
        }
    }
}

/// The runtime-independent part of a server handle: each method queues a command and
/// returns what to wait on.
#[derive(Debug)]
pub struct ServerHandle {
    link: Link<ServerCommand>,
    local: SocketAddr,
    reply_addr: Option<SocketAddr>,
    send_timeout: Duration,
    message_buffer: usize,
    durable: Option<DurableRestored>,
    /// The send window of pipelined sends, shared by every client.
    window: Window,
}

impl ServerHandle {
    /// Queues a command of the durable API (made with [`DurableCommand`]'s constructors,
    /// which return what to wait on).
    ///
    /// # Errors
    /// [`DurableError::InCallback`] on the driver's thread, [`DurableError::Closed`].
    pub fn durable(&self, command: DurableCommand) -> Result<(), DurableError> {
        if self.link.on_driver_thread() {
            return Err(DurableError::InCallback);
        }
        self.link
            .send(ServerCommand(Cmd::Durable(command)))
            .map_err(|_| DurableError::Closed)
    }

    /// As [`ServerHandle::durable`], also from the driver's thread (a message callback of a
    /// broker that forwards): the caller must not block on the answer there.
    ///
    /// # Errors
    /// [`DurableError::Closed`].
    pub fn durable_nowait(&self, command: DurableCommand) -> Result<(), DurableError> {
        self.link
            .send(ServerCommand(Cmd::Durable(command)))
            .map_err(|_| DurableError::Closed)
    }

    /// What the durable store gave back when the server started; `None` without one.
    pub fn durable_restored(&self) -> Option<DurableRestored> {
        self.durable
    }

    /// Answers calls to `function` with `handler`; `name` is what the standard call 1 returns.
    pub fn register(&self, function: u16, name: &str, handler: Handler) {
        let _ = self.link.send(ServerCommand(Cmd::Register {
            function: FunctionId(function),
            name: name.into(),
            handler,
        }));
    }

    /// Stops answering `function`; calls to it get status 2 (nonexistent function).
    pub fn unregister(&self, function: u16) {
        let _ = self.link.send(ServerCommand(Cmd::Unregister {
            function: FunctionId(function),
        }));
    }

    /// Adds a subscriber for `target` (announcing to clients that we take it), or for every
    /// message with `None`.
    pub fn on_message(&self, target: Option<&str>, sub: Box<dyn Subscriber>) {
        let _ = self.link.send(ServerCommand(Cmd::OnMessage {
            target: target.map(String::from),
            sub,
        }));
    }

    /// Adds the subscriber of the held messages of `target` (or of every target with
    /// `None`), announcing to clients that we take the target: their reliable messages there
    /// are acknowledged only when the subscriber completes their [`Handoff`]s
    /// (`docs/PROTOCOL.md` §18). One subscriber per target: a later one replaces it.
    ///
    /// [`Handoff`]: super::handoff::Handoff
    pub fn on_message_handoff(&self, target: Option<&str>, sub: Box<dyn HandoffSubscriber>) {
        let _ = self
            .link
            .send(handoff_command(HandoffCmd::subscribe(target, sub)));
    }

    /// Adds a subscriber to the connection events (client sessions up and down, clients
    /// silent and back). A closed server delivers nothing; the subscriber is dropped.
    pub fn on_connection(&self, sub: Box<dyn ConnectionSubscriber>) {
        let _ = self.link.send(ServerCommand(Cmd::OnConnection { sub }));
    }

    /// Asks for a snapshot of the endpoint's counters; `None` when the server is closed or
    /// this is the driver's thread.
    pub fn stats(&self) -> Option<Pending<Stats>> {
        self.link.ask(|reply| ServerCommand(Cmd::Stats { reply }))
    }

    /// Asks for a metrics snapshot (counters, sessions, round-trip histogram); `None` when
    /// closed or on the driver's thread.
    pub fn metrics(&self) -> Option<Pending<MetricsSnapshot>> {
        self.link.ask(|reply| ServerCommand(Cmd::Metrics { reply }))
    }

    /// A source of snapshots for a [`crate::metrics::MetricsServer`]: each scrape asks the
    /// driver (waiting at most `limit`). It does not keep the endpoint open: once every
    /// handle is gone, scrapes are answered 503.
    pub fn metrics_source(&self, limit: Duration) -> MetricsSource {
        let link = self.link.downgrade();
        MetricsSource::one(move || {
            let pending = link
                .upgrade()?
                .ask(|reply| ServerCommand(Cmd::Metrics { reply }))?;
            pending.wait(limit).ok()
        })
    }

    /// Queues a send to `to`, with the configured send timeout if reliable.
    ///
    /// # Errors
    /// [`SendError::InCallback`] or [`SendError::Closed`].
    pub fn send(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
        to: Recipients,
    ) -> Result<Pending<Result<Vec<Outcome>, SendError>>, SendError> {
        self.send_with_progress(target, name, data, reliability, to, None)
    }

    /// As [`ServerHandle::send`], with `progress` run for every report of the bytes a client
    /// acknowledged so far (a message sent in segments; one that fits a datagram has none),
    /// until the last outcome.
    ///
    /// # Errors
    /// As [`ServerHandle::send`].
    pub fn send_with_progress(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
        to: Recipients,
        progress: Option<FanoutProgress>,
    ) -> Result<Pending<Result<Vec<Outcome>, SendError>>, SendError> {
        if self.link.on_driver_thread() {
            return Err(SendError::InCallback);
        }
        let options = self.options(reliability);
        let (reply, pending) = reply::channel();
        let cmd = Cmd::Send {
            target: target.into(),
            name: name.into(),
            data: Bytes::copy_from_slice(data),
            options,
            to,
            progress,
            reply,
        };
        self.link
            .send(ServerCommand(cmd))
            .map_err(|_| SendError::Closed)?;
        Ok(pending)
    }

    /// The send window of pipelined messages ([`ServerHandle::send_pipelined_to`]): the
    /// runtime takes a slot from it (waiting for room as it waits) before queueing.
    pub fn window(&self) -> &Window {
        &self.window
    }

    /// Queues a pipelined message to the client at `to`, holding `slot` of
    /// [`ServerHandle::window`], and returns its handle at once. The driver keeps the slot
    /// until the message's outcome is known (acknowledged, failed, timed out, or the server
    /// closed), so the window bounds what pipelined sends hold even when the client is gone.
    ///
    /// As on the client, pipelined sends always go through the command channel: a burst
    /// reaches the endpoint together and may share datagrams.
    ///
    /// # Errors
    /// [`SendError::Closed`] (the slot is freed).
    pub fn send_pipelined_to(
        &self,
        slot: Slot,
        to: SocketAddr,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
    ) -> Result<SendHandle, SendError> {
        let (reply, pending) = reply::channel();
        let id = slot.id();
        let cmd = Cmd::SendPipelined {
            to,
            target: target.into(),
            name: name.into(),
            data: Bytes::copy_from_slice(data),
            options: self.options(reliability),
            waiter: PipelinedWaiter { reply, slot },
        };
        self.link
            .send(ServerCommand(cmd))
            .map_err(|_| SendError::Closed)?;
        Ok(SendHandle::new(id, pending, self.window.clone()))
    }

    /// The endpoint's options of a send with `reliability` and the configured timeout.
    fn options(&self, reliability: Reliability) -> SendOptions {
        match reliability {
            Reliability::Unreliable => SendOptions::unreliable(),
            Reliability::Ordered => SendOptions::ordered().with_timeout(self.send_timeout),
            _ => SendOptions::reliable().with_timeout(self.send_timeout),
        }
    }

    /// Asks for the connected clients; `None` when the server is closed or this is the
    /// driver's thread.
    pub fn clients(&self) -> Option<Pending<Vec<(SocketAddr, PeerId)>>> {
        self.link.ask(|reply| ServerCommand(Cmd::Clients { reply }))
    }

    /// Asks for the clients subscribed to `target` (opcode 13 from clients,
    /// `docs/PROTOCOL.md` §9.6): whom a broker forwards that target's messages to. `None` when
    /// the server is closed or this is the driver's thread.
    pub fn client_subscribers(&self, target: &str) -> Option<Pending<Vec<(SocketAddr, PeerId)>>> {
        self.link.ask(|reply| {
            ServerCommand(Cmd::ClientSubscribers {
                target: target.into(),
                reply,
            })
        })
    }

    /// Queues a register command (`docs/PROTOCOL.md` §9.8): a declaration, an update, a read
    /// of our own register, or a subscriber to clients' writes. `false` once the server is
    /// closed. Unlike the other waits, a register command may come from a callback: the
    /// caller then must not block on its answer.
    pub fn registers(&self, cmd: ServerRegisterCmd) -> bool {
        self.link.send(ServerCommand(Cmd::Registers(cmd))).is_ok()
    }

    /// Sets the status appended to ACKs, or `None` for plain 8-byte ACKs.
    pub fn set_status(&self, status: Option<Status>) {
        let _ = self.link.send(ServerCommand(Cmd::SetStatus(status)));
    }

    /// Queues joining (`join`) or leaving multicast `group` on the listening socket.
    ///
    /// # Errors
    /// `WouldBlock` on the driver's own thread, `NotConnected` once the server is closed.
    pub fn membership(&self, group: IpAddr, join: bool) -> io::Result<Pending<io::Result<()>>> {
        if self.link.on_driver_thread() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "called from a callback on the endpoint thread",
            ));
        }
        let (reply, pending) = reply::channel();
        self.link
            .send(ServerCommand(Cmd::Membership { group, join, reply }))
            .map_err(|_| closed())?;
        Ok(pending)
    }

    /// Queues the close: quit to every client, pending sends fail with `Closed`, the driver
    /// stops.
    pub fn close(&self) {
        let _ = self.link.send(ServerCommand(Cmd::Close));
    }

    /// Whether the caller runs on the driver's own thread (see [`Link::on_driver_thread`]).
    pub fn on_driver_thread(&self) -> bool {
        self.link.on_driver_thread()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address of the reply socket everything is sent from, if the server has one.
    pub fn reply_addr(&self) -> Option<SocketAddr> {
        self.reply_addr
    }

    /// The configured timeout of reliable sends.
    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }

    /// The configured message stream buffer (async adapter).
    pub fn message_buffer(&self) -> usize {
        self.message_buffer
    }
}

/// The error of a membership change on a closed server.
pub fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "server closed")
}

/// A command from a server handle to its driver (opaque: only the router reads it).
pub struct ServerCommand(Cmd);

/// A hand-off command as the driver takes it (`super::handoff` makes them).
pub(super) fn handoff_command(cmd: HandoffCmd) -> ServerCommand {
    ServerCommand(Cmd::Handoff(cmd))
}

impl std::fmt::Debug for ServerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerCommand")
    }
}

type SendReply = Reply<Result<Vec<Outcome>, SendError>>;

enum Cmd {
    Clients {
        reply: Reply<Vec<(SocketAddr, PeerId)>>,
    },
    ClientSubscribers {
        target: String,
        reply: Reply<Vec<(SocketAddr, PeerId)>>,
    },
    Close,
    Durable(DurableCommand),
    /// Acknowledgement hand-off (`super::handoff`).
    Handoff(HandoffCmd),
    Membership {
        group: IpAddr,
        join: bool,
        reply: Reply<io::Result<()>>,
    },
    OnConnection {
        sub: Box<dyn ConnectionSubscriber>,
    },
    OnMessage {
        target: Option<String>,
        sub: Box<dyn Subscriber>,
    },
    Register {
        function: FunctionId,
        name: String,
        handler: Handler,
    },
    Registers(ServerRegisterCmd),
    Respond {
        call: CallHandle,
        result: Result<Bytes, RpcFailure>,
    },
    Send {
        target: String,
        name: String,
        data: Bytes,
        options: SendOptions,
        to: Recipients,
        progress: Option<FanoutProgress>,
        reply: SendReply,
    },
    /// A pipelined send to one client (`ServerHandle::send_pipelined_to`).
    SendPipelined {
        to: SocketAddr,
        target: String,
        name: String,
        data: Bytes,
        options: SendOptions,
        waiter: PipelinedWaiter,
    },
    SetStatus(Option<Status>),
    Stats {
        reply: Reply<Stats>,
    },
    /// The counters and the session count in one snapshot (`crate::metrics`).
    Metrics {
        reply: Reply<MetricsSnapshot>,
    },
    Unregister {
        function: FunctionId,
    },
}

/// One send to several clients, answered when the last outcome arrives.
struct Fanout {
    waiting: usize,
    results: Vec<Outcome>,
    reply: SendReply,
    progress: Option<FanoutProgress>,
}

/// Who waits for a pipelined message's outcome: its reply slot and its place in the window.
struct PipelinedWaiter {
    reply: Reply<Result<Delivery, SendError>>,
    slot: Slot,
}

impl PipelinedWaiter {
    /// Answers the caller, then frees the window slot: whoever waits for the window to empty
    /// finds every outcome in place.
    fn answer(self, result: Result<Delivery, SendError>) {
        self.reply.send(result);
        drop(self.slot);
    }
}

/// The server driver's state: the endpoint, the RPC handlers, the message subscribers, and
/// the sends waiting for their outcomes (by message id).
pub struct ServerRouter {
    ep: proto::Server,
    /// For responders; weak, so that the channel closes when every handle is gone.
    link: WeakLink<ServerCommand>,
    handlers: HashMap<FunctionId, Handler>,
    subscribers: Subscribers,
    connection: ConnectionSubscribers,
    fanouts: HashMap<u64, Fanout>,
    fanout_of: HashMap<MessageId, (u64, SocketAddr)>,
    /// Pipelined sends waiting for their outcomes; at most the send window's size.
    pipelined: HashMap<MessageId, PipelinedWaiter>,
    next_fanout: u64,
    groups: Vec<IpAddr>,
    /// Subscribers to clients' register writes.
    registers: ServerRegisters,
    /// Durable messages: the store's writer, sends waiting to be stored, received ones.
    durable: durable::DurableRouter,
    /// Subscribers of held messages (acknowledgement hand-off).
    handoffs: HandoffRouter,
}

impl std::fmt::Debug for ServerRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerRouter")
            .field("handlers", &self.handlers.len())
            .field("fanouts", &self.fanouts.len())
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

impl ServerRouter {
    fn on_event(&mut self, now: Instant, event: ServerEvent) {
        // The events of every message and call are routed here at once: a `ServerEvent` is
        // 184 bytes, and each filter below takes it and hands it back by value, copies that
        // were a tenth of the server driver's samples in `pipelined noise 2` (issue 19).
        match event {
            ServerEvent::Message { peer, message } => return self.on_message(now, peer, message),
            ServerEvent::RpcRequest(req) => return self.on_call(now, req),
            ServerEvent::Delivered { id, acked, missing } => {
                return self.outcome(id, Ok(Delivery { acked, missing }))
            }
            _ => {}
        }
        if let Some(e) = ConnectionEvent::from_server_event(&event) {
            self.connection.deliver(&e);
        }
        let Some(event) = self.registers.on_event(event) else {
            return;
        };
        let Some(event) = self.durable.on_server_event(event) else {
            return;
        };
        // Messages, calls and deliveries were routed above, before the filters.
        match event {
            ServerEvent::HeldMessage {
                peer,
                message,
                handoff,
                key,
            } => {
                let held = super::handoff::Held {
                    message: ReceivedMessage::at_server(peer, message),
                    handoff,
                    key: Some(key),
                };
                let link = self.link.upgrade().map(super::handoff::HandoffLink::Server);
                self.handoffs.deliver(&mut self.ep, now, link, held);
            }
            ServerEvent::Failed { id, reason } => self.outcome(id, Err(reason.into())),
            ServerEvent::TimedOut { id } => self.outcome(id, Err(SendError::TimedOut)),
            ServerEvent::Progress { id, acked, total } => {
                let Some(&(fid, addr)) = self.fanout_of.get(&id) else {
                    return;
                };
                if let Some(p) = self.fanouts.get_mut(&fid).and_then(|f| f.progress.as_mut()) {
                    p.report(addr, acked, total);
                }
            }
            ServerEvent::Connected { addr, peer } => {
                tracing::info!(%addr, peer = ?peer, "client connected")
            }
            ServerEvent::Disconnected { addr, reason } => {
                tracing::info!(%addr, ?reason, "client disconnected")
            }
            ServerEvent::PeerDown { addr } => tracing::info!(%addr, "client down"),
            ServerEvent::PeerUp { addr } => tracing::info!(%addr, "client up"),
            // Rate-limited by the endpoint: at most once per source per interval.
            ServerEvent::AuthenticationFailed { from, count } => {
                tracing::warn!(%from, count, "failed authentication (wrong key or unknown client)")
            }
            other => tracing::debug!(event = ?other, "event"),
        }
    }

    fn on_message(&mut self, now: Instant, peer: PeerId, message: proto::ReceivedMessage) {
        let m = ReceivedMessage::at_server(peer, message);
        tracing::debug!(target = %m.target(), name = %m.name(), from = %m.from, "message");
        if self.subscribers.deliver(&m) {
            // The last subscriber of this target is gone: stop taking it.
            self.ep.unsubscribe(now, m.target());
        }
    }

    fn on_call(&mut self, now: Instant, req: RpcRequest) {
        let call = req.call;
        let result = match self.handlers.get_mut(&req.function) {
            Some(Handler::Now(h)) => {
                catch_unwind(AssertUnwindSafe(|| h(&req))).unwrap_or_else(|_| {
                    tracing::error!(function = req.function.0, "RPC handler panicked");
                    Err(RpcFailure::error("HandlerPanicked"))
                })
            }
            Some(Handler::Later(h)) => {
                // Every handle is gone: the driver is closing and nobody could answer.
                let Some(link) = self.link.upgrade() else {
                    return;
                };
                let responder = Responder {
                    call,
                    link,
                    answered: false,
                };
                // On a panic the responder is dropped during unwinding and answers itself.
                if catch_unwind(AssertUnwindSafe(|| h(req, responder))).is_err() {
                    tracing::error!("deferred RPC handler panicked");
                }
                return;
            }
            None => Err(RpcFailure::new(
                RpcStatus::NONEXISTENT_FUNCTION,
                Bytes::from_static(b"NonexistentFunction"),
            )),
        };
        self.respond(now, call, result);
    }

    fn respond(&mut self, now: Instant, call: CallHandle, result: Result<Bytes, RpcFailure>) {
        let (status, data) = match result {
            Ok(data) => (RpcStatus::OK, data),
            Err(f) => (f.status, f.data),
        };
        // The handler's buffer goes into the answer cache as it is: no copy per call.
        if let Err(e) = self.ep.respond_bytes(now, call, status, data) {
            tracing::debug!(error = %e, "RPC answer not sent");
        }
    }

    fn outcome(&mut self, id: MessageId, result: Result<Delivery, SendError>) {
        if let Some(waiter) = self.pipelined.remove(&id) {
            return waiter.answer(result);
        }
        let Some((fid, addr)) = self.fanout_of.remove(&id) else {
            return;
        };
        let Some(f) = self.fanouts.get_mut(&fid) else {
            return;
        };
        f.results.push(Outcome {
            client: addr,
            result,
        });
        f.waiting = f.waiting.saturating_sub(1);
        if f.waiting == 0 {
            if let Some(f) = self.fanouts.remove(&fid) {
                f.reply.send(Ok(f.results));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        now: Instant,
        target: &str,
        name: &str,
        data: &[u8],
        options: SendOptions,
        to: Recipients,
        progress: Option<FanoutProgress>,
        reply: SendReply,
    ) {
        let ids = match to {
            Recipients::All(filter) => {
                match self
                    .ep
                    .send_to_all(now, target, name, data, options, filter)
                {
                    Ok(ids) => ids,
                    Err(e) => return reply.send(Err(SendError::Refused(e))),
                }
            }
            Recipients::One(addr) => {
                vec![(
                    addr,
                    self.ep.send_message(now, addr, target, name, data, options),
                )]
            }
        };
        let mut fanout = Fanout {
            waiting: 0,
            results: Vec::new(),
            reply,
            progress,
        };
        let fid = self.next_fanout;
        self.next_fanout += 1;
        for (addr, r) in ids {
            let result = match r {
                Err(e) => Err(SendError::Refused(e)),
                Ok(_) if options.reliability == Reliability::Unreliable => Ok(Delivery::default()),
                Ok(id) => {
                    fanout.waiting += 1;
                    self.fanout_of.insert(id, (fid, addr));
                    continue;
                }
            };
            fanout.results.push(Outcome {
                client: addr,
                result,
            });
        }
        if fanout.waiting == 0 {
            fanout.reply.send(Ok(fanout.results));
        } else {
            self.fanouts.insert(fid, fanout);
        }
    }
}

impl Role for ServerRouter {
    type Endpoint = proto::Server;
    type Command = ServerCommand;

    fn endpoint(&self) -> &proto::Server {
        &self.ep
    }

    fn endpoint_mut(&mut self) -> &mut proto::Server {
        &mut self.ep
    }

    fn waiter_deadline(&self) -> Option<Instant> {
        self.durable.waiter_deadline()
    }

    fn is_direct(&self, command: &ServerCommand) -> bool {
        // A send's filter is application code; an answer runs none.
        match &command.0 {
            Cmd::Handoff(h) => h.is_direct(),
            c => matches!(c, Cmd::Respond { .. }),
        }
    }

    fn on_command(&mut self, now: Instant, socket: &UdpSocket, command: ServerCommand) -> Flow {
        match command.0 {
            Cmd::Clients { reply } => reply.send(self.ep.clients().collect()),
            Cmd::ClientSubscribers { target, reply } => {
                reply.send(self.ep.client_subscribers(&target).collect())
            }
            Cmd::Close => {
                self.close(now);
                return Flow::Stop;
            }
            Cmd::Durable(cmd) => self.durable.on_command(&mut self.ep, now, cmd),
            Cmd::Handoff(cmd) => self.handoffs.on_command(&mut self.ep, now, cmd),
            Cmd::Membership { group, join, reply } => {
                let r = if join {
                    sockets::join(socket, group).inspect(|_| self.groups.push(group))
                } else {
                    self.groups.retain(|g| *g != group);
                    sockets::leave(socket, group)
                };
                reply.send(r);
            }
            Cmd::OnConnection { sub } => {
                // Deliver what happened so far first, so that the new subscriber's view of
                // the sessions up is neither stale nor doubled.
                self.dispatch(now);
                let up: Vec<_> = self
                    .ep
                    .clients()
                    .map(|(addr, peer)| ConnectionEvent::Connected {
                        addr,
                        peer: Some(peer),
                    })
                    .collect();
                self.connection.add(sub, up);
            }
            Cmd::OnMessage { target, sub } => {
                if let Some(t) = &target {
                    self.ep.subscribe(now, t);
                }
                self.subscribers.add(target, sub);
            }
            Cmd::Register {
                function,
                name,
                handler,
            } => {
                self.ep.register_function(function, &name);
                self.handlers.insert(function, handler);
            }
            Cmd::Respond { call, result } => self.respond(now, call, result),
            Cmd::Send {
                target,
                name,
                data,
                options,
                to,
                progress,
                reply,
            } => self.send(now, &target, &name, &data, options, to, progress, reply),
            Cmd::SendPipelined {
                to,
                target,
                name,
                data,
                options,
                waiter,
            } => match self
                .ep
                .send_message(now, to, &target, &name, &data, options)
            {
                Ok(_) if options.reliability == Reliability::Unreliable => {
                    waiter.answer(Ok(Delivery::default()))
                }
                Ok(id) => {
                    self.pipelined.insert(id, waiter);
                }
                Err(e) => waiter.answer(Err(SendError::Refused(e))),
            },
            Cmd::SetStatus(status) => self.ep.set_status(status),
            Cmd::Registers(cmd) => self.registers.on_command(now, &mut self.ep, cmd),
            Cmd::Stats { reply } => reply.send(self.ep.stats().clone()),
            Cmd::Metrics { reply } => reply.send(MetricsSnapshot::new(
                MetricsRole::Server,
                u64::try_from(self.ep.session_count()).unwrap_or(u64::MAX),
                self.ep.stats().clone(),
            )),
            Cmd::Unregister { function } => {
                self.ep.unregister_function(function);
                self.handlers.remove(&function);
            }
        }
        Flow::Continue
    }

    fn dispatch(&mut self, now: Instant) {
        while let Some(event) = self.ep.poll_event() {
            self.on_event(now, event);
        }
        // After every pass: the durable batches go to the store's writer, and the waits
        // that are over are answered.
        self.durable.pump(&mut self.ep, now);
    }

    fn close(&mut self, now: Instant) {
        self.ep.close(now);
        // What the last pass changed (a consume) is written, and the writer has ended (the
        // store's file is free) before the loop ends.
        self.durable.shutdown(&mut self.ep, now);
    }
}
