//! The client half of the plumbing: the handle's commands, and the router that carries them
//! out on the endpoint and answers the callers waiting for their outcomes.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bytes::Bytes;
use pavillion_proto::endpoint::{
    self as proto, CallId, ClientEvent, Reliability, SendOptions, Stats,
};
use pavillion_proto::features::status::{Battery, NetworkStatus, Status};
use pavillion_proto::features::timesync::{ClockEstimate, SyncId};
use pavillion_proto::{FunctionId, Instant, MessageId};

use super::events::{ConnectionEvent, ConnectionSubscriber, ConnectionSubscribers};
use super::handoff::{HandoffCmd, HandoffLink, HandoffRouter, HandoffSubscriber, Held};
use super::link::{self, Link, WeakLink};
use super::messages::{ReceivedMessage, Subscriber, Subscribers};
use super::outcomes::Outcome;
use super::progress::Progress;
use super::registers::{ClientRegisterCmd, ClientRegisters, RegisterOpError};
use super::reply::{self, Pending, Reply, WaitError};
use super::sockets;
use super::window::{SendHandle, SendId, Slot, Window};
use super::{Clock, Delivery, Flow, Parts, Role};
use crate::config::ClientConfig;
use crate::durable::{self, DurableCommand, DurableError, DurableRestored};
use crate::error::{CallError, OpenError, SendError, ServerError};
use crate::metrics::{MetricsRole, MetricsSnapshot, MetricsSource};

/// Opens the sockets of a client of `server` (a unicast address, a multicast group or a
/// broadcast address) and builds its endpoint, seeded from OS randomness.
///
/// # Errors
/// A socket that cannot be bound or set up (joining the group, for a multicast client).
///
/// With a durable store ([`ClientConfig::durable`]) it is opened and the endpoint restored
/// from it here; an error there is [`OpenError::Durable`].
pub fn open(
    server: SocketAddr,
    config: &ClientConfig,
) -> Result<Parts<ClientRouter, ClientHandle>, OpenError> {
    let sockets = sockets::client(server, config)?;
    let local = sockets.primary.local_addr()?;
    let clock = Clock::new();
    let mut endpoint = proto::Client::new(config.endpoint_config(server, crate::keys::random32()));
    let (link, commands) = link::channel();
    let window = Window::with_outcomes(config.send_window_size(), link.driver_thread());
    let durable = durable::start(
        config.durable_path(),
        &mut endpoint,
        clock.now(),
        link.downgrade(),
        |c| ClientCommand(Cmd::Durable(c)),
    )?;
    let durable_restored = durable.restored();
    tracing::info!(%local, %server, "client started");
    Ok(Parts {
        router: ClientRouter {
            ep: endpoint,
            calls: IdMap::default(),
            sends: IdMap::default(),
            progress: IdMap::default(),
            subscribers: Subscribers::default(),
            connection: ConnectionSubscribers::default(),
            connect_waiters: Vec::new(),
            clock_waiters: Vec::new(),
            deferred: VecDeque::new(),
            registers: ClientRegisters::default(),
            durable,
            link: link.downgrade(),
            handoffs: HandoffRouter::default(),
            pipeline: Pipeline::default(),
            window: window.clone(),
            finished: Vec::new(),
            scratch: Vec::new(),
            peer: None,
        },
        sockets,
        commands,
        handle: ClientHandle {
            link,
            clock,
            local,
            server,
            call_timeout: config.call_timeout,
            send_timeout: config.send_timeout,
            message_buffer: config.message_buffer,
            durable: durable_restored,
            window,
        },
        clock,
    })
}

/// The runtime-independent part of a client handle: each method queues a command and returns
/// what to wait on; the runtime's `Client` only adds the waiting.
///
/// The methods that return a [`Pending`] refuse with an `InCallback` error when called on the
/// driver's own thread (a blocking adapter's callback), which could never see the answer.
#[derive(Debug)]
pub struct ClientHandle {
    link: Link<ClientCommand>,
    clock: Clock,
    local: SocketAddr,
    server: SocketAddr,
    call_timeout: Duration,
    send_timeout: Duration,
    message_buffer: usize,
    durable: Option<DurableRestored>,
    /// The send window of pipelined messages.
    window: Window,
}

impl ClientHandle {
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
            .send(ClientCommand(Cmd::Durable(command)))
            .map_err(|_| DurableError::Closed)
    }

    /// What the durable store gave back when the client started; `None` without one.
    pub fn durable_restored(&self) -> Option<DurableRestored> {
        self.durable
    }

    /// Queues a call of `function` with `args` and deadline `timeout`.
    ///
    /// # Errors
    /// [`CallError::InCallback`] or [`CallError::Closed`].
    pub fn call(
        &self,
        function: u16,
        args: &[u8],
        timeout: Duration,
    ) -> Result<Pending<Result<Bytes, CallError>>, CallError> {
        self.queue_call(function, args, timeout, false)
    }

    /// As [`ClientHandle::call`], for a caller that blocks for the answer at once: the
    /// blocking driver may let the caller's thread receive the answer itself
    /// ([`Link::send_here`]), so this returns when the answer is in or the driver took the
    /// endpoint back.
    ///
    /// # Errors
    /// As [`ClientHandle::call`].
    pub fn call_here(
        &self,
        function: u16,
        args: &[u8],
        timeout: Duration,
    ) -> Result<Pending<Result<Bytes, CallError>>, CallError> {
        self.queue_call(function, args, timeout, true)
    }

    fn queue_call(
        &self,
        function: u16,
        args: &[u8],
        timeout: Duration,
        here: bool,
    ) -> Result<Pending<Result<Bytes, CallError>>, CallError> {
        if self.link.on_driver_thread() {
            return Err(CallError::InCallback);
        }
        let (reply, pending) = reply::channel();
        let cmd = ClientCommand(Cmd::Call {
            function: FunctionId(function),
            args: Bytes::copy_from_slice(args),
            timeout,
            reply,
        });
        let sent = if here {
            self.link.send_here(cmd, &|| pending.is_settled())
        } else {
            self.link.send(cmd)
        };
        sent.map_err(|_| CallError::Closed)?;
        Ok(pending)
    }

    /// Queues a message.
    ///
    /// # Errors
    /// [`SendError::InCallback`] or [`SendError::Closed`].
    pub fn send_message(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        options: SendOptions,
    ) -> Result<Pending<Result<Delivery, SendError>>, SendError> {
        self.send_message_with_progress(target, name, data, options, None)
    }

    /// As [`ClientHandle::send_message`], with `progress` run for every report of the bytes
    /// acknowledged so far (a message sent in segments; one that fits a datagram has none)
    /// until the outcome.
    ///
    /// # Errors
    /// As [`ClientHandle::send_message`].
    pub fn send_message_with_progress(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        options: SendOptions,
        progress: Option<Progress>,
    ) -> Result<Pending<Result<Delivery, SendError>>, SendError> {
        if self.link.on_driver_thread() {
            return Err(SendError::InCallback);
        }
        let (reply, pending) = reply::channel();
        let cmd = Cmd::Send {
            message: Packed::new(target, name, data),
            options,
            progress,
            reply,
        };
        self.link
            .send(ClientCommand(cmd))
            .map_err(|_| SendError::Closed)?;
        Ok(pending)
    }

    /// The send window of pipelined messages ([`ClientHandle::send_pipelined`]): the runtime
    /// takes a slot from it (waiting for room as it waits) before queueing.
    pub fn window(&self) -> &Window {
        &self.window
    }

    /// Queues a pipelined message holding `slot` of [`ClientHandle::window`], and returns its
    /// handle at once. The driver keeps the slot until the message's outcome is known.
    ///
    /// Pipelined sends always go through the command channel, never run on the caller's
    /// thread: the driver carries out every command queued by the time it wakes before it
    /// sends, so that a burst of messages reaches the endpoint together (and the endpoint may
    /// put several in one datagram), and a sender that is ahead of the driver does not wake it
    /// again.
    ///
    /// # Errors
    /// [`SendError::Closed`] (the slot is freed).
    pub fn send_pipelined(
        &self,
        slot: Slot,
        target: &str,
        name: &str,
        data: &[u8],
        options: SendOptions,
    ) -> Result<SendHandle, SendError> {
        let mut slot = slot;
        // A client's window keeps its outcomes (`open`); a slot of another window has no
        // place on this one's board.
        let handle = self.window.handle(&mut slot).ok_or(SendError::Closed)?;
        let cmd = Cmd::Pipelined {
            message: Packed::new(target, name, data),
            options,
            slot,
        };
        // Refused, the command and its slot are dropped, which gives the send `Closed`;
        // then the handle goes, and nothing of it is kept.
        self.link
            .queue(ClientCommand(cmd))
            .map_err(|_| SendError::Closed)?;
        Ok(handle)
    }

    /// Queues a subscription to `target` at the server (`subscribe` true) or its withdrawal
    /// (`docs/PROTOCOL.md` §9.6). The answer is the endpoint's acceptance: the subscription
    /// itself is retried, re-sent on every new session and moved between the servers of a
    /// group by the endpoint.
    ///
    /// # Errors
    /// [`SendError::InCallback`] or [`SendError::Closed`].
    pub fn subscribe(
        &self,
        target: &str,
        subscribe: bool,
    ) -> Result<Pending<Result<(), SendError>>, SendError> {
        if self.link.on_driver_thread() {
            return Err(SendError::InCallback);
        }
        let (reply, pending) = reply::channel();
        let cmd = Cmd::Subscribe {
            target: target.into(),
            subscribe,
            reply,
        };
        self.link
            .send(ClientCommand(cmd))
            .map_err(|_| SendError::Closed)?;
        Ok(pending)
    }

    /// Queues a register operation (`docs/PROTOCOL.md` §9.8); its outcome comes through the
    /// pending half made with the command.
    ///
    /// # Errors
    /// [`RegisterOpError::InCallback`] or [`RegisterOpError::Closed`].
    pub fn registers(&self, cmd: ClientRegisterCmd) -> Result<(), RegisterOpError> {
        if self.link.on_driver_thread() {
            return Err(RegisterOpError::InCallback);
        }
        self.link
            .send(ClientCommand(Cmd::Registers(cmd)))
            .map_err(|_| RegisterOpError::Closed)
    }

    /// The send options for `reliability` with the configured send timeout.
    pub fn options(&self, reliability: Reliability) -> SendOptions {
        match reliability {
            Reliability::Unreliable => SendOptions::unreliable(),
            Reliability::Ordered => SendOptions::ordered().with_timeout(self.send_timeout),
            _ => SendOptions::reliable().with_timeout(self.send_timeout),
        }
    }

    /// Adds a subscriber for `target` (or every message with `None`). A closed client
    /// delivers nothing; the subscriber is dropped.
    pub fn on_message(&self, target: Option<&str>, sub: Box<dyn Subscriber>) {
        let cmd = Cmd::OnMessage {
            target: target.map(String::from),
            sub,
        };
        let _ = self.link.send(ClientCommand(cmd));
    }

    /// Adds the subscriber of the held messages of `target` (or of every target with
    /// `None`): the server's reliable messages there are acknowledged only when the
    /// subscriber completes their [`Handoff`]s (`docs/PROTOCOL.md` §18). One subscriber per
    /// target: a later one replaces it. As with [`ClientHandle::on_message`], the server
    /// sends us a target only if we subscribe to it there ([`ClientHandle::subscribe`]).
    ///
    /// [`Handoff`]: super::handoff::Handoff
    pub fn on_message_handoff(&self, target: Option<&str>, sub: Box<dyn HandoffSubscriber>) {
        let _ = self
            .link
            .send(handoff_command(HandoffCmd::subscribe(target, sub)));
    }

    /// Adds a subscriber to the connection events (sessions up and down, servers silent and
    /// back, status changes). A closed client delivers nothing; the subscriber is dropped.
    pub fn on_connection(&self, sub: Box<dyn ConnectionSubscriber>) {
        let _ = self.link.send(ClientCommand(Cmd::OnConnection { sub }));
    }

    /// Asks for a snapshot of the endpoint's counters; `None` when the client is closed or
    /// this is the driver's thread.
    pub fn stats(&self) -> Option<Pending<Stats>> {
        self.link.ask(|reply| ClientCommand(Cmd::Stats { reply }))
    }

    /// Asks for a metrics snapshot (counters, sessions, round-trip histogram); `None` when
    /// closed or on the driver's thread.
    pub fn metrics(&self) -> Option<Pending<MetricsSnapshot>> {
        self.link.ask(|reply| ClientCommand(Cmd::Metrics { reply }))
    }

    /// A source of snapshots for a [`crate::metrics::MetricsServer`]: each scrape asks the
    /// driver (waiting at most `limit`). It does not keep the endpoint open: once every
    /// handle is gone, scrapes are answered 503.
    pub fn metrics_source(&self, limit: Duration) -> MetricsSource {
        let link = self.link.downgrade();
        MetricsSource::one(move || {
            let pending = link
                .upgrade()?
                .ask(|reply| ClientCommand(Cmd::Metrics { reply }))?;
            pending.wait(limit).ok()
        })
    }

    /// Queues a wait, answered with the first server's address once a session is up, or
    /// `None` after `timeout` (decided by the driver).
    ///
    /// # Errors
    /// [`ServerError::InCallback`] or [`ServerError::Closed`].
    pub fn wait_connected(
        &self,
        timeout: Duration,
    ) -> Result<Pending<Option<SocketAddr>>, ServerError> {
        if self.link.on_driver_thread() {
            return Err(ServerError::InCallback);
        }
        let (reply, pending) = reply::channel();
        let deadline = self.clock.now() + timeout;
        let cmd = Cmd::WaitConnected { deadline, reply };
        self.link
            .send(ClientCommand(cmd))
            .map_err(|_| ServerError::Closed)?;
        Ok(pending)
    }

    /// The address from an answer to [`ClientHandle::wait_connected`].
    ///
    /// # Errors
    /// [`ServerError::TimedOut`] if no session came up in time; the wait's error.
    pub fn connected(
        answer: Result<Option<SocketAddr>, WaitError>,
    ) -> Result<SocketAddr, ServerError> {
        match answer {
            Ok(Some(addr)) => Ok(addr),
            Ok(None) => Err(ServerError::TimedOut),
            Err(e) => Err(e.into()),
        }
    }

    /// Asks for the addresses of the servers with a session; `None` when the client is closed
    /// or this is the driver's thread.
    pub fn servers(&self) -> Option<Pending<Vec<SocketAddr>>> {
        self.link.ask(|reply| ClientCommand(Cmd::Servers { reply }))
    }

    /// Asks which server holds our subscription to `target` (it acknowledged it, opcode 13),
    /// if any. `None` when the client is closed or this is the driver's thread.
    pub fn subscribed_at(&self, target: &str) -> Option<Pending<Option<SocketAddr>>> {
        self.link.ask(|reply| {
            ClientCommand(Cmd::SubscribedAt {
                target: target.into(),
                reply,
            })
        })
    }

    /// A handle on the server answering from `addr`.
    pub fn server(&self, addr: SocketAddr) -> RemoteHandle {
        RemoteHandle {
            addr,
            link: self.link.clone(),
            clock: self.clock,
        }
    }

    /// Queues the close: quit to every server, pending work fails with `Closed`, the driver
    /// stops.
    pub fn close(&self) {
        let _ = self.link.send(ClientCommand(Cmd::Close));
    }

    /// Whether the caller runs on the driver's own thread (see [`Link::on_driver_thread`]).
    pub fn on_driver_thread(&self) -> bool {
        self.link.on_driver_thread()
    }

    /// The local address of the client socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address the client was configured to talk to.
    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// The configured call timeout.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The configured timeout of reliable messages.
    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }

    /// The configured message stream buffer (async adapter).
    pub fn message_buffer(&self) -> usize {
        self.message_buffer
    }
}

/// The runtime-independent part of a handle on one server a client talks to.
#[derive(Clone, Debug)]
pub struct RemoteHandle {
    addr: SocketAddr,
    link: Link<ClientCommand>,
    clock: Clock,
}

impl RemoteHandle {
    /// The address the server answers from.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks for the client's current view of the server.
    ///
    /// # Errors
    /// [`ServerError::InCallback`] or [`ServerError::Closed`].
    pub fn state(&self) -> Result<Pending<Option<ServerState>>, ServerError> {
        if self.link.on_driver_thread() {
            return Err(ServerError::InCallback);
        }
        let (reply, pending) = reply::channel();
        let cmd = Cmd::Server {
            addr: self.addr,
            reply,
        };
        self.link
            .send(ClientCommand(cmd))
            .map_err(|_| ServerError::Closed)?;
        Ok(pending)
    }

    /// The state from an answer to [`RemoteHandle::state`], if the session is up.
    ///
    /// # Errors
    /// [`ServerError::NotConnected`] without a live session; the wait's error.
    pub fn live(
        answer: Result<Option<ServerState>, WaitError>,
    ) -> Result<ServerState, ServerError> {
        match answer {
            Ok(Some(s)) if s.up => Ok(s),
            Ok(_) => Err(ServerError::NotConnected),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends a time request and queues a wait for its answer, up to `timeout` (the endpoint's
    /// deadline for the sync: its outcome event ends the wait).
    ///
    /// # Errors
    /// [`ServerError::InCallback`] or [`ServerError::Closed`].
    pub fn sync_time(
        &self,
        timeout: Duration,
    ) -> Result<Pending<Result<ClockEstimate, ServerError>>, ServerError> {
        if self.link.on_driver_thread() {
            return Err(ServerError::InCallback);
        }
        let (reply, pending) = reply::channel();
        let cmd = Cmd::SyncTime {
            addr: self.addr,
            timeout,
            reply,
        };
        self.link
            .send(ClientCommand(cmd))
            .map_err(|_| ServerError::Closed)?;
        Ok(pending)
    }

    /// The server's clock now, by `estimate`.
    pub fn remote_now(&self, estimate: &ClockEstimate) -> Instant {
        estimate.to_remote(self.clock.now())
    }

    /// The server's clock at local instant `local`, by `estimate`.
    pub fn to_remote(&self, estimate: &ClockEstimate, local: std::time::Instant) -> Instant {
        estimate.to_remote(self.clock.from_std(local))
    }

    /// The local instant at which the server's clock reads `remote`, by `estimate`.
    ///
    /// # Errors
    /// [`ServerError::OutOfRange`] for an instant the local clock cannot represent.
    pub fn to_local(
        &self,
        estimate: &ClockEstimate,
        remote: Instant,
    ) -> Result<std::time::Instant, ServerError> {
        self.clock
            .to_std(estimate.to_local(remote))
            .ok_or(ServerError::OutOfRange)
    }
}

/// What the client knows of one server at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerState {
    /// The address the server answers from.
    pub addr: SocketAddr,
    /// Heard from within the down timeout.
    pub up: bool,
    /// The server confirmed the session.
    pub confirmed: bool,
    /// The last status the server reported.
    pub status: Option<Status>,
    /// The estimate of its clock.
    pub clock: Option<ClockEstimate>,
}

impl ServerState {
    /// The clock estimate.
    ///
    /// # Errors
    /// [`ServerError::NoClock`] before a time sync was answered.
    pub fn clock_estimate(&self) -> Result<ClockEstimate, ServerError> {
        self.clock.ok_or(ServerError::NoClock)
    }

    /// The last reported status.
    ///
    /// # Errors
    /// [`ServerError::NoStatus`] if the server sends none.
    pub fn reported_status(&self) -> Result<Status, ServerError> {
        self.status.ok_or(ServerError::NoStatus)
    }

    /// The battery level and state.
    ///
    /// # Errors
    /// As [`ServerState::reported_status`].
    pub fn battery(&self) -> Result<Battery, ServerError> {
        Ok(self.reported_status()?.battery)
    }

    /// The signal strength in dBm of a wireless link, `None` for a wired or unknown one.
    ///
    /// # Errors
    /// As [`ServerState::reported_status`].
    pub fn rssi(&self) -> Result<Option<i16>, ServerError> {
        Ok(match self.reported_status()?.network {
            NetworkStatus::Wlan { rssi } | NetworkStatus::Wwan { rssi } => Some(rssi),
            _ => None,
        })
    }

    /// The temperature in °C.
    ///
    /// # Errors
    /// As [`ServerState::reported_status`].
    pub fn temperature(&self) -> Result<i8, ServerError> {
        Ok(self.reported_status()?.temperature)
    }
}

/// A command from a client handle to its driver (opaque: only the router reads it).
pub struct ClientCommand(Cmd);

/// A hand-off command as the driver takes it (`super::handoff` makes them).
pub(super) fn handoff_command(cmd: HandoffCmd) -> ClientCommand {
    ClientCommand(Cmd::Handoff(cmd))
}

impl std::fmt::Debug for ClientCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCommand")
    }
}

enum Cmd {
    Call {
        function: FunctionId,
        args: Bytes,
        timeout: Duration,
        reply: Reply<Result<Bytes, CallError>>,
    },
    Close,
    Durable(DurableCommand),
    /// Acknowledgement hand-off (`super::handoff`).
    Handoff(HandoffCmd),
    OnConnection {
        sub: Box<dyn ConnectionSubscriber>,
    },
    OnMessage {
        target: Option<String>,
        sub: Box<dyn Subscriber>,
    },
    Registers(ClientRegisterCmd),
    Send {
        message: Packed,
        options: SendOptions,
        progress: Option<Progress>,
        reply: Reply<Result<Delivery, SendError>>,
    },
    /// A pipelined send whose handle waits on the window's board of outcomes: its slot is
    /// its ticket there (`Window::with_outcomes`).
    Pipelined {
        message: Packed,
        options: SendOptions,
        slot: Slot,
    },
    Server {
        addr: SocketAddr,
        reply: Reply<Option<ServerState>>,
    },
    Servers {
        reply: Reply<Vec<SocketAddr>>,
    },
    Subscribe {
        target: String,
        subscribe: bool,
        reply: Reply<Result<(), SendError>>,
    },
    SubscribedAt {
        target: String,
        reply: Reply<Option<SocketAddr>>,
    },
    Stats {
        reply: Reply<Stats>,
    },
    /// The counters and the session count in one snapshot (`crate::metrics`).
    Metrics {
        reply: Reply<MetricsSnapshot>,
    },
    SyncTime {
        addr: SocketAddr,
        timeout: Duration,
        reply: Reply<Result<ClockEstimate, ServerError>>,
    },
    WaitConnected {
        deadline: Instant,
        reply: Reply<Option<SocketAddr>>,
    },
}

/// A message's target, name and payload back to back, in the command itself when they are
/// small, else in one allocation (a send command is made once per message, on the sender's
/// thread, and read once by the driver, which copies what it keeps: a small message's
/// allocation would be freed on the other thread, which costs the allocator more than the
/// copy of the bytes in the command).
struct Packed {
    bytes: PackedBytes,
}

/// The bytes of a [`Packed`] message, and where the name and the payload start in them.
enum PackedBytes {
    /// Up to [`INLINE`] bytes, in the command; the offsets in one byte each keep the command
    /// a cache line shorter.
    Inline {
        buf: [u8; INLINE],
        len: u8,
        name_at: u8,
        data_at: u8,
    },
    /// Longer ones.
    Heap {
        bytes: Box<[u8]>,
        name_at: usize,
        data_at: usize,
    },
}

/// The most bytes (target, name and payload) a send command carries without an allocation:
/// a short target and name with a 64-byte payload fit, and the command stays a few cache
/// lines.
const INLINE: usize = 112;

impl Packed {
    fn new(target: &str, name: &str, data: &[u8]) -> Self {
        let len = target.len() + name.len() + data.len();
        let (name_at, data_at) = (target.len(), target.len() + name.len());
        let inline = (
            u8::try_from(len),
            u8::try_from(name_at),
            u8::try_from(data_at),
        );
        let bytes = match inline {
            (Ok(len), Ok(name_at), Ok(data_at)) if usize::from(len) <= INLINE => {
                let mut buf = [0; INLINE];
                let mut at = 0;
                for part in [target.as_bytes(), name.as_bytes(), data] {
                    if let Some(to) = buf.get_mut(at..at + part.len()) {
                        to.copy_from_slice(part);
                    }
                    at += part.len();
                }
                PackedBytes::Inline {
                    buf,
                    len,
                    name_at,
                    data_at,
                }
            }
            _ => {
                let mut bytes = Vec::with_capacity(len);
                bytes.extend_from_slice(target.as_bytes());
                bytes.extend_from_slice(name.as_bytes());
                bytes.extend_from_slice(data);
                PackedBytes::Heap {
                    bytes: bytes.into_boxed_slice(),
                    name_at,
                    data_at,
                }
            }
        };
        Packed { bytes }
    }

    /// Target, name and payload, as they were given.
    fn parts(&self) -> (&str, &str, &[u8]) {
        let (bytes, name_at, data_at): (&[u8], usize, usize) = match &self.bytes {
            PackedBytes::Inline {
                buf,
                len,
                name_at,
                data_at,
            } => (
                buf.get(..usize::from(*len)).unwrap_or_default(),
                usize::from(*name_at),
                usize::from(*data_at),
            ),
            PackedBytes::Heap {
                bytes,
                name_at,
                data_at,
            } => (bytes, *name_at, *data_at),
        };
        let (head, data) = bytes.split_at(data_at.min(bytes.len()));
        // Target and name were whole `&str`s, so together they are valid UTF-8 and split at
        // a char boundary: one validation for both (a call per message on the driver).
        let head = core::str::from_utf8(head).unwrap_or_default();
        let (target, name) = head.split_at_checked(name_at).unwrap_or_default();
        (target, name, data)
    }
}

/// A caller waiting for a server's clock: for that server's answer, or the end of the sync
/// it asked for.
struct ClockWaiter {
    addr: SocketAddr,
    sync: SyncId,
    reply: Reply<Result<ClockEstimate, ServerError>>,
}

/// The client driver's state: the endpoint, and who waits for what (calls by call id,
/// messages by message id, sessions and clocks by deadline).
pub struct ClientRouter {
    ep: proto::Client,
    calls: IdMap<CallId, Reply<Result<Bytes, CallError>>>,
    sends: IdMap<MessageId, SendWaiter>,
    /// Progress callbacks of sends still in `sends`; [`ClientRouter::dispatch`] forgets the
    /// others, after any deferred report of theirs ran.
    progress: IdMap<MessageId, Progress>,
    subscribers: Subscribers,
    connection: ConnectionSubscribers,
    connect_waiters: Vec<(Instant, Reply<Option<SocketAddr>>)>,
    clock_waiters: Vec<ClockWaiter>,
    /// Messages and connection events received by a caller's thread
    /// ([`Role::dispatch_direct`]), for the driver's thread to hand to the subscribers.
    deferred: VecDeque<Deferred>,
    /// Register operations waiting for their outcomes, and observers of changes.
    registers: ClientRegisters,
    /// Durable messages: the store's writer, sends waiting to be stored, received ones.
    durable: durable::DurableRouter,
    /// The command channel, for the tokens of held messages; weak, so that it does not keep
    /// the client open once the application's handles are gone.
    link: WeakLink<ClientCommand>,
    /// Subscribers of held messages (acknowledgement hand-off).
    handoffs: HandoffRouter,
    /// Pipelined sends waiting for their outcomes (at most the window's size).
    pipeline: Pipeline,
    /// The send window, whose board takes the outcomes of pipelined sends.
    window: Window,
    /// Pipelined sends whose outcome is known, given to their handles together at the end
    /// of the pass (`ClientRouter::finish`): `None` is a plain delivery to `peer`.
    finished: Vec<(Slot, Option<Outcome>)>,
    /// Reused by [`Window::complete`].
    scratch: Vec<(SendId, Option<Outcome>)>,
    /// The server of a plain delivery: the first to acknowledge a pipelined message alone.
    peer: Option<SocketAddr>,
}

/// Pipelined sends waiting for their outcomes, by message id. The endpoint numbers its
/// messages in increasing order, so they queue in id order: an outcome, nearly always for the
/// oldest, is found at the front or by a binary search, with no map entry per message.
#[derive(Default)]
struct Pipeline {
    /// In increasing id order; `None` once the outcome came, until the entries before it go.
    queue: VecDeque<(MessageId, Option<Slot>)>,
    /// Entries of `queue` that still wait.
    live: usize,
    /// A send whose id is not above the last queued one (never, with the endpoint's ids).
    other: IdMap<MessageId, Slot>,
}

impl Pipeline {
    fn push(&mut self, id: MessageId, slot: Slot) {
        if self.queue.back().is_some_and(|(last, _)| *last >= id) {
            self.other.insert(id, slot);
            return;
        }
        self.queue.push_back((id, Some(slot)));
        self.live += 1;
    }

    fn take(&mut self, id: MessageId) -> Option<Slot> {
        let at = match self.queue.front() {
            Some((front, _)) if *front == id => Some(0),
            Some(_) => self.queue.binary_search_by_key(&id, |(m, _)| *m).ok(),
            None => None,
        };
        let Some(slot) = at
            .and_then(|i| self.queue.get_mut(i))
            .and_then(|(_, s)| s.take())
        else {
            return self.other.remove(&id);
        };
        self.live -= 1;
        while self.queue.front().is_some_and(|(_, s)| s.is_none()) {
            self.queue.pop_front();
        }
        // Outcomes behind one that waits leave holes; past as many holes as live entries
        // (and a datagram's worth), they go, so the queue stays within twice the window.
        if self.queue.len() > 2 * self.live + 64 {
            self.queue.retain(|(_, s)| s.is_some());
        }
        Some(slot)
    }
}

/// A map keyed by the endpoint's own ids (calls, messages): numbers it hands out in
/// sequence, never chosen by a peer, so they need no keyed hash.
type IdMap<K, V> = HashMap<K, V, IdBuild>;

/// The hasher of [`IdMap`], for other tables of our own sequential numbers.
pub(crate) type IdBuild = BuildHasherDefault<IdHasher>;

/// Spreads a sequential `u64` id over the table (Fibonacci hashing: the table takes its
/// control bits from the top of the hash). Anything else is folded in byte by byte.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Who waits for a blocking send's outcome: its reply slot (a pipelined send's waits on the
/// window's board, `Cmd::Pipelined`).
struct SendWaiter {
    reply: Reply<Result<Delivery, SendError>>,
}

impl SendWaiter {
    /// Answers the caller.
    fn answer(self, result: Result<Delivery, SendError>) {
        self.reply.send(result);
    }
}

/// What a caller's thread leaves for the driver's thread: application code runs only there.
enum Deferred {
    Message(ReceivedMessage),
    Connection(ConnectionEvent),
    Progress {
        id: MessageId,
        acked: u64,
        total: u64,
    },
    Event(ClientEvent),
}

impl std::fmt::Debug for ClientRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRouter")
            .field("calls", &self.calls.len())
            .field("sends", &self.sends.len())
            .finish_non_exhaustive()
    }
}

impl ClientRouter {
    fn state(&self, addr: SocketAddr) -> Option<ServerState> {
        self.ep.server(addr).map(|s| ServerState {
            addr,
            up: s.is_up(),
            confirmed: s.is_confirmed(),
            status: s.status(),
            clock: s.clock(),
        })
    }

    fn on_event(&mut self, now: Instant, event: ClientEvent) {
        if let Some(e) = ConnectionEvent::from_client_event(&event) {
            self.connection.deliver(&e);
        }
        self.route(now, event);
    }

    /// Answers the callers an event concerns and hands messages to their subscribers; the
    /// connection subscribers are [`ClientRouter::on_event`]'s.
    fn route(&mut self, now: Instant, event: ClientEvent) {
        // The outcomes of messages first, nearly every event of a pipelined client: neither
        // the register operations nor the durable store take them, and the event is not
        // moved through both to find that out.
        let event = match event {
            ClientEvent::Delivered { id, acked, missing } => {
                return self.deliver(id, Ok(Delivery { acked, missing }))
            }
            ClientEvent::Failed { id, reason } => return self.deliver(id, Err(reason.into())),
            ClientEvent::TimedOut { id } => return self.deliver(id, Err(SendError::TimedOut)),
            other => other,
        };
        let Some(event) = self.registers.on_event(event) else {
            return;
        };
        let Some(event) = self.durable.on_client_event(event) else {
            return;
        };
        match event {
            ClientEvent::Answered { call, data, .. } => self.answer(call, Ok(data)),
            ClientEvent::RemoteError {
                call, status, data, ..
            } => self.answer(call, Err(CallError::Remote { status, data })),
            ClientEvent::CallTimedOut { call } => self.answer(call, Err(CallError::TimedOut)),
            ClientEvent::CallFailed { call, reason } => self.answer(call, Err(reason.into())),
            ClientEvent::ClockUpdated { addr, .. } => {
                // Any fresh answer from the server serves whoever waits for its clock.
                let estimate = self.state(addr).and_then(|s| s.clock);
                for w in extract(&mut self.clock_waiters, |w| w.addr == addr) {
                    w.reply.send(estimate.ok_or(ServerError::NoClock));
                }
            }
            ClientEvent::TimeSyncTimedOut { sync } => {
                for w in extract(&mut self.clock_waiters, |w| w.sync == sync) {
                    w.reply.send(Err(ServerError::TimedOut));
                }
            }
            ClientEvent::TimeSyncFailed { sync, .. } => {
                for w in extract(&mut self.clock_waiters, |w| w.sync == sync) {
                    w.reply.send(Err(ServerError::Closed));
                }
            }
            ClientEvent::Message(m) => self.on_message(&ReceivedMessage::at_client(m)),
            ClientEvent::HeldMessage { message, handoff } => {
                let held = Held {
                    message: ReceivedMessage::at_client(message),
                    handoff,
                    key: None,
                };
                let link = self.link.upgrade().map(HandoffLink::Client);
                self.handoffs.deliver(&mut self.ep, now, link, held);
            }
            ClientEvent::Progress { id, acked, total } => self.progress(id, acked, total),
            ClientEvent::Connected { addr, .. } => {
                tracing::info!(%addr, "connected");
                for (_, w) in self.connect_waiters.drain(..) {
                    w.send(Some(addr));
                }
            }
            ClientEvent::Disconnected { addr, reason } => {
                tracing::info!(%addr, ?reason, "disconnected")
            }
            ClientEvent::HandshakeFailed { addr, reason } => {
                tracing::warn!(%addr, %reason, "handshake refused")
            }
            ClientEvent::PeerDown { addr } => tracing::info!(%addr, "server down"),
            ClientEvent::PeerUp { addr } => tracing::info!(%addr, "server up"),
            other => tracing::debug!(event = ?other, "event"),
        }
    }

    fn on_message(&mut self, m: &ReceivedMessage) {
        tracing::debug!(target = %m.target(), name = %m.name(), from = %m.from, "message");
        self.subscribers.deliver(m);
    }

    fn answer(&mut self, call: CallId, result: Result<Bytes, CallError>) {
        if let Some(reply) = self.calls.remove(&call) {
            reply.send(result);
        }
    }

    fn progress(&mut self, id: MessageId, acked: u64, total: u64) {
        if let Some(p) = self.progress.get_mut(&id) {
            p.report(acked, total);
        }
    }

    fn deliver(&mut self, id: MessageId, result: Result<Delivery, SendError>) {
        if let Some(slot) = self.pipeline.take(id) {
            let outcome = match result {
                Ok(d) if self.is_plain(&d) => None,
                other => Some(other),
            };
            self.finished.push((slot, outcome));
            return;
        }
        if let Some(waiter) = self.sends.remove(&id) {
            waiter.answer(result);
        }
    }

    /// Whether `d` is a plain delivery: acknowledged by the one server that acknowledges
    /// pipelined messages alone (the first to do so), nobody missing. Its handle then needs
    /// no outcome of its own on the board.
    fn is_plain(&mut self, d: &Delivery) -> bool {
        let ([by], []) = (d.acked.as_slice(), d.missing.as_slice()) else {
            return false;
        };
        *self.peer.get_or_insert(*by) == *by
    }

    /// Gives the handles the outcomes found during this pass, under one lock.
    fn finish(&mut self) {
        if !self.finished.is_empty() {
            self.window
                .complete(self.peer, &mut self.finished, &mut self.scratch);
        }
    }
}

impl Role for ClientRouter {
    type Endpoint = proto::Client;
    type Command = ClientCommand;

    fn endpoint(&self) -> &proto::Client {
        &self.ep
    }

    fn endpoint_mut(&mut self) -> &mut proto::Client {
        &mut self.ep
    }

    fn waiter_deadline(&self) -> Option<Instant> {
        let connect = self.connect_waiters.iter().map(|(d, _)| *d).min();
        match (connect, self.durable.waiter_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn is_direct(&self, command: &ClientCommand) -> bool {
        // The endpoint reports their outcomes later, as events; refusals go to the caller's
        // own reply slot.
        // A pipelined send goes through the channel: see `ClientHandle::send_pipelined`.
        match &command.0 {
            Cmd::Call { .. } | Cmd::Send { .. } => true,
            Cmd::Handoff(h) => h.is_direct(),
            _ => false,
        }
    }

    fn on_command(&mut self, now: Instant, _socket: &UdpSocket, command: ClientCommand) -> Flow {
        match command.0 {
            Cmd::Call {
                function,
                args,
                timeout,
                reply,
            } => match self.ep.call(now, function, &args, Some(timeout)) {
                Ok(id) => {
                    self.calls.insert(id, reply);
                }
                Err(e) => reply.send(Err(CallError::Refused(e))),
            },
            Cmd::Close => {
                self.close(now);
                return Flow::Stop;
            }
            Cmd::Durable(cmd) => self.durable.on_command(&mut self.ep, now, cmd),
            Cmd::Handoff(cmd) => self.handoffs.on_command(&mut self.ep, now, cmd),
            Cmd::OnConnection { sub } => {
                // Deliver what happened so far first, so that the new subscriber's view of
                // the sessions up is neither stale nor doubled.
                self.dispatch(now);
                let up = self
                    .ep
                    .servers()
                    .map(|addr| ConnectionEvent::Connected { addr, peer: None });
                let up: Vec<_> = up.collect();
                self.connection.add(sub, up);
            }
            Cmd::OnMessage { target, sub } => self.subscribers.add(target, sub),
            Cmd::Send {
                message,
                options,
                progress,
                reply,
            } => {
                let waiter = SendWaiter { reply };
                let (target, name, data) = message.parts();
                match self.ep.send_message(now, target, name, data, options) {
                    Ok(_) if options.reliability == Reliability::Unreliable => {
                        waiter.answer(Ok(Delivery::default()))
                    }
                    Ok(id) => {
                        self.sends.insert(id, waiter);
                        if let Some(p) = progress {
                            self.progress.insert(id, p);
                        }
                    }
                    Err(e) => waiter.answer(Err(SendError::Refused(e))),
                }
            }
            Cmd::Pipelined {
                message,
                options,
                slot,
            } => {
                let (target, name, data) = message.parts();
                let outcome = match self.ep.send_message(now, target, name, data, options) {
                    Ok(_) if options.reliability == Reliability::Unreliable => {
                        Ok(Delivery::default())
                    }
                    Ok(id) => {
                        self.pipeline.push(id, slot);
                        return Flow::Continue;
                    }
                    Err(e) => Err(SendError::Refused(e)),
                };
                self.finished.push((slot, Some(outcome)));
            }
            Cmd::Registers(cmd) => self.registers.on_command(now, &mut self.ep, cmd),
            Cmd::Server { addr, reply } => reply.send(self.state(addr)),
            Cmd::Servers { reply } => reply.send(self.ep.servers().collect()),
            Cmd::SubscribedAt { target, reply } => reply.send(self.ep.subscribed_at(&target)),
            Cmd::Subscribe {
                target,
                subscribe,
                reply,
            } => {
                let done = if subscribe {
                    self.ep.subscribe(now, &target)
                } else {
                    self.ep.unsubscribe(now, &target)
                };
                reply.send(done.map_err(SendError::Refused));
            }
            Cmd::Stats { reply } => reply.send(self.ep.stats().clone()),
            Cmd::Metrics { reply } => reply.send(MetricsSnapshot::new(
                MetricsRole::Client,
                u64::try_from(self.ep.servers().count()).unwrap_or(u64::MAX),
                self.ep.stats().clone(),
            )),
            Cmd::SyncTime {
                addr,
                timeout,
                reply,
            } => {
                let up = self.state(addr).is_some_and(|s| s.up);
                match up.then(|| self.ep.sync_time(now, Some(timeout))) {
                    Some(Ok(sync)) => {
                        // Callers that stopped waiting are forgotten here.
                        drop(extract(&mut self.clock_waiters, |w| w.reply.is_closed()));
                        self.clock_waiters.push(ClockWaiter { addr, sync, reply });
                    }
                    _ => reply.send(Err(ServerError::NotConnected)),
                }
            }
            Cmd::WaitConnected { deadline, reply } => match self.ep.servers().next() {
                Some(addr) => reply.send(Some(addr)),
                None => {
                    self.connect_waiters.retain(|(_, r)| !r.is_closed());
                    self.connect_waiters.push((deadline, reply));
                }
            },
        }
        Flow::Continue
    }

    fn dispatch(&mut self, now: Instant) {
        // Received before anything still in the endpoint.
        while let Some(d) = self.deferred.pop_front() {
            match d {
                Deferred::Message(m) => self.on_message(&m),
                Deferred::Connection(e) => self.connection.deliver(&e),
                Deferred::Progress { id, acked, total } => self.progress(id, acked, total),
                Deferred::Event(e) => self.route(now, e),
            }
        }
        while let Some(event) = self.ep.poll_event() {
            self.on_event(now, event);
        }
        // A send whose outcome arrived (perhaps on a caller's thread) reports no more.
        let sends = &self.sends;
        self.progress.retain(|id, _| sends.contains_key(id));
        self.finish();
        self.expire(now);
    }

    fn dispatch_direct(&mut self, now: Instant) -> bool {
        while let Some(event) = self.ep.poll_event() {
            match event {
                // Subscribers are application code: they run on the driver's thread.
                ClientEvent::Message(m) => self
                    .deferred
                    .push_back(Deferred::Message(ReceivedMessage::at_client(m))),
                // So are progress callbacks.
                ClientEvent::Progress { id, acked, total } => self
                    .deferred
                    .push_back(Deferred::Progress { id, acked, total }),
                // Observers and hand-off subscribers are application code too.
                e @ (ClientEvent::RegisterNotified { .. } | ClientEvent::HeldMessage { .. }) => {
                    self.deferred.push_back(Deferred::Event(e))
                }
                other => {
                    if let Some(e) = ConnectionEvent::from_client_event(&other) {
                        self.deferred.push_back(Deferred::Connection(e));
                    }
                    self.route(now, other);
                }
            }
        }
        self.finish();
        self.expire(now);
        !self.deferred.is_empty()
    }

    fn close(&mut self, now: Instant) {
        self.ep.close(now);
        // What the last pass changed (a consume) is written, and the writer has ended (the
        // store's file is free) before the loop ends.
        self.durable.shutdown(&mut self.ep, now);
    }
}

impl Drop for ClientRouter {
    /// The driver stopped: what is known goes to its handles, and every other pipelined
    /// send is `Closed`.
    fn drop(&mut self) {
        self.finish();
        self.window.close_outcomes();
    }
}

impl ClientRouter {
    /// Answers the waits whose deadline has passed, and hands the durable batches to the
    /// store's writer (this runs after every pass of the loop).
    fn expire(&mut self, now: Instant) {
        self.durable.pump(&mut self.ep, now);
        for (_, w) in extract(&mut self.connect_waiters, |(d, _)| *d <= now) {
            w.send(None);
        }
    }
}

/// Removes and returns the elements of `v` for which `pick` holds, keeping the others in
/// order.
pub(crate) fn extract<T>(v: &mut Vec<T>, mut pick: impl FnMut(&T) -> bool) -> Vec<T> {
    let (picked, kept) = std::mem::take(v).into_iter().partition(|x| pick(x));
    *v = kept;
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipelined message of the usual size travels in the command itself (no allocation
    /// freed on the driver's thread); a long one in one allocation; both read back whole.
    #[test]
    fn a_packed_message_is_inline_when_small_and_reads_back_whole() {
        let small = Packed::new("bench", "m", &[0x5a; 64]);
        assert!(matches!(small.bytes, PackedBytes::Inline { .. }));
        assert_eq!(small.parts(), ("bench", "m", &[0x5a; 64][..]));

        let edge = "t".repeat(INLINE - 2);
        let full = Packed::new(&edge, "é", &[]);
        assert!(matches!(full.bytes, PackedBytes::Inline { .. }));
        assert_eq!(full.parts(), (edge.as_str(), "é", &[][..]));

        let data: Vec<u8> = (0..=255).collect();
        let large = Packed::new("target", "name", &data);
        assert!(matches!(large.bytes, PackedBytes::Heap { .. }));
        assert_eq!(large.parts(), ("target", "name", &data[..]));

        let over = Packed::new(&edge, "é", &[1]);
        assert!(matches!(over.bytes, PackedBytes::Heap { .. }));
        assert_eq!(over.parts(), (edge.as_str(), "é", &[1][..]));
    }

    /// Every command is copied into the channel on the sender's thread and out of it on the
    /// driver's, per message: with the channel's state word, it fits three cache lines.
    #[test]
    fn a_command_fits_three_cache_lines_in_the_channel() {
        assert!(
            std::mem::size_of::<ClientCommand>() + 8 <= 3 * 64,
            "{} bytes",
            std::mem::size_of::<ClientCommand>()
        );
    }

    /// The pipelined sends waiting for outcomes give back each send's own slot by message
    /// id, whatever the order the outcomes come in, and hold at most about twice as many
    /// entries as still wait, even behind one that waits for ever.
    #[test]
    fn the_pipeline_finds_each_send_and_stays_bounded() {
        let window = Window::new(4096);
        let mut pipeline = Pipeline::default();
        let mut sends = Vec::new();
        // Ids with gaps (calls and other sends take numbers in between).
        for i in 0..3000u64 {
            let slot = window.try_acquire().unwrap();
            sends.push((MessageId(10 + 3 * i), slot.id()));
            pipeline.push(MessageId(10 + 3 * i), slot);
        }
        // The first never gets an outcome; the others come in a scrambled order.
        let stuck = sends.remove(0);
        let mut x = 12345u64;
        while !sends.is_empty() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let (id, send) = sends.swap_remove((x >> 33) as usize % sends.len());
            assert_eq!(pipeline.take(id).map(|s| s.id()), Some(send));
            assert!(pipeline.take(id).is_none(), "given once");
            assert!(pipeline.take(MessageId(id.0 + 1)).is_none(), "not a send");
            assert!(pipeline.queue.len() <= 2 * pipeline.live + 64);
        }
        assert_eq!(pipeline.take(stuck.0).map(|s| s.id()), Some(stuck.1));
        assert!(pipeline.queue.is_empty());
    }
}
