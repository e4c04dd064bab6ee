//! The blocking client: [`Client::connect`], then calls, messages and server queries.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use pavillion_proto::crypto::ecc::{self, KeyPair, PublicKey};
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{
    self as proto, CallId, ClientCredentials, Event, Limits, ReceivedMessage, Reliability,
    SendOptions, Transmit,
};
use pavillion_proto::features::status::{Battery, NetworkStatus, Status};
use pavillion_proto::features::timesync::ClockEstimate;
use pavillion_proto::{ClientId, FunctionId, Instant, MessageId};

use crate::driver::{self, Clock, Link, Role};
use crate::error::{CallError, OpenError, SendError, ServerError};
use crate::{Delivery, MessageCallback};

/// How long a blocking wait lasts beyond the endpoint's own deadline before it gives up. The
/// endpoint reports every deadline itself; this only guards against a driver that died.
const GRACE: Duration = Duration::from_secs(2);

/// Configuration of a [`Client`], with the reference client's defaults.
///
/// | setting | default |
/// |---|---|
/// | local address | `0.0.0.0:0` (or `[::]:0` for an IPv6 server) |
/// | call timeout | 2 s |
/// | reliable message timeout | 5 s |
/// | keepalive | 30 s |
/// | time sync | off (ask with [`RemoteServer::sync_time`]) |
/// | multicast TTL | 1 (the local link) |
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use pavillion_std::keys::parse_psk;
/// use pavillion_std::ClientConfig;
/// use pavillion_proto::ClientId;
///
/// let psk = parse_psk(&"07".repeat(32)).unwrap();
/// let config = ClientConfig::psk(ClientId(*b"cid2cid2cid2cid2"), psk)
///     .call_timeout(Duration::from_secs(1));
/// ```
#[derive(Clone, Debug)]
pub struct ClientConfig {
    client_id: ClientId,
    credentials: ClientCredentials,
    bind: Option<SocketAddr>,
    call_timeout: Duration,
    send_timeout: Duration,
    keepalive: Option<Duration>,
    time_sync: Option<Duration>,
    limits: Limits,
    multicast_ttl: u32,
}

impl ClientConfig {
    /// A suite 1 (PSK) client with id `client_id`.
    pub fn psk(client_id: ClientId, psk: Psk) -> Self {
        Self::new(client_id, ClientCredentials::Psk(psk))
    }

    /// A suite 2 (ECC) client with id `client_id`, our key pair and the server's public key.
    pub fn ecc(client_id: ClientId, keys: KeyPair, server: PublicKey) -> Self {
        Self::new(client_id, ClientCredentials::Ecc { keys, server })
    }

    /// A suite 2 client whose id derives from its public key, as the reference's keypair
    /// clients (and guests) do.
    pub fn guest(keys: KeyPair, server: PublicKey) -> Self {
        let id = ecc::default_client_id(keys.public());
        Self::ecc(id, keys, server)
    }

    /// Binds the client socket to `addr` instead of an ephemeral port on every interface.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Sets the default deadline of [`Client::call`].
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Sets the default deadline of a reliable [`Client::send_message`].
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Sets the keepalive interval, or turns keepalives off with `None`.
    pub fn keepalive(mut self, interval: Option<Duration>) -> Self {
        self.keepalive = interval;
        self
    }

    /// Asks every server for its clock this often (opcode 20), or only on demand with `None`.
    pub fn time_sync(mut self, interval: Option<Duration>) -> Self {
        self.time_sync = interval;
        self
    }

    /// Replaces the endpoint's capacities and timers.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the TTL of datagrams to a multicast group.
    pub fn multicast_ttl(mut self, ttl: u32) -> Self {
        self.multicast_ttl = ttl;
        self
    }

    /// The client id the server will see.
    pub fn client_id(&self) -> ClientId {
        self.client_id
    }

    fn new(client_id: ClientId, credentials: ClientCredentials) -> Self {
        ClientConfig {
            client_id,
            credentials,
            bind: None,
            call_timeout: Duration::from_secs(2),
            send_timeout: Duration::from_secs(5),
            keepalive: Some(Duration::from_secs(30)),
            time_sync: None,
            limits: Limits::default(),
            multicast_ttl: 1,
        }
    }

    fn endpoint_config(&self, server: SocketAddr, seed: [u8; 32]) -> proto::ClientConfig {
        // Every credential kind goes through the same constructor; the key placeholder is
        // replaced before the endpoint reads it.
        let mut c =
            proto::ClientConfig::psk(self.client_id, Psk::from_bytes([0; 32]), server, seed);
        c.credentials = self.credentials.clone();
        c.limits = self.limits.clone();
        c.limits.default_timeout = self.send_timeout;
        c.call_timeout = self.call_timeout;
        c.keepalive = self.keepalive;
        c.time_sync = self.time_sync;
        c
    }
}

/// A Pavillion client on its own socket and thread.
///
/// Every method may be called from any thread. Message callbacks run on the client's thread;
/// from there, the blocking methods return an `InCallback` error instead of waiting for
/// themselves. Dropping the client (or [`Client::close`]) sends quit to the server and fails
/// whatever is still pending with `Closed`.
///
/// # Examples
/// ```no_run
/// use pavillion_std::keys::parse_psk;
/// use pavillion_std::{Client, ClientConfig, Reliability};
/// use pavillion_proto::ClientId;
///
/// let psk = parse_psk(&"07".repeat(32))?;
/// let client = Client::connect("127.0.0.1:1783", ClientConfig::psk(ClientId([1; 16]), psk))?;
/// let answer = client.call(0, b"hello")?;
/// assert_eq!(&answer[..], b"hello");
/// client.on_message(Some("alerts"), |m| println!("{}: {:?}", m.name, m.payload));
/// let delivery = client.send_message("kitchen", "temp", b"21.5", Reliability::Reliable)?;
/// println!("acknowledged by {:?}", delivery.acked);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    link: Link<Command>,
    thread: Option<JoinHandle<()>>,
    clock: Clock,
    local: SocketAddr,
    server: SocketAddr,
    call_timeout: Duration,
    send_timeout: Duration,
}

impl Client {
    /// Opens a socket and starts a client talking to the server at `addr` (a unicast address,
    /// a multicast group or a broadcast address). The handshake starts at once; calls and
    /// messages made before it finishes wait for it.
    ///
    /// # Errors
    /// [`OpenError::Address`] if `addr` resolves to nothing, [`OpenError::Io`] if the socket
    /// cannot be opened or set up.
    ///
    /// # Examples
    /// ```no_run
    /// # use pavillion_std::{Client, ClientConfig};
    /// # fn example(config: ClientConfig) -> Result<(), pavillion_std::OpenError> {
    /// let client = Client::connect(("239.255.28.12", 1783), config)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(addr: impl ToSocketAddrs, config: ClientConfig) -> Result<Client, OpenError> {
        let server = resolve(addr)?;
        let bind = config.bind.unwrap_or(match server.ip() {
            IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
        });
        let socket = UdpSocket::bind(bind)?;
        match server.ip() {
            IpAddr::V4(v4) if v4.is_broadcast() => socket.set_broadcast(true)?,
            IpAddr::V4(v4) if v4.is_multicast() => {
                socket.set_multicast_ttl_v4(config.multicast_ttl)?;
                socket.set_multicast_loop_v4(true)?;
            }
            IpAddr::V6(v6) if v6.is_multicast() => socket.set_multicast_loop_v6(true)?,
            _ => {}
        }
        let local = socket.local_addr()?;
        let clock = Clock::new();
        let endpoint = proto::Client::new(config.endpoint_config(server, crate::keys::random32()));
        tracing::info!(%local, %server, "client started");
        let (link, thread) = driver::spawn("pavillion-client", socket, clock, |_| ClientRole {
            ep: endpoint,
            calls: HashMap::new(),
            sends: HashMap::new(),
            targets: HashMap::new(),
            any: Vec::new(),
            connect_waiters: Vec::new(),
            clock_waiters: Vec::new(),
        })?;
        Ok(Client {
            link,
            thread: Some(thread),
            clock,
            local,
            server,
            call_timeout: config.call_timeout,
            send_timeout: config.send_timeout,
        })
    }

    /// Calls `function` with `args` and waits for the answer, up to the configured call
    /// timeout (2 s by default).
    ///
    /// In multicast mode the first server to answer wins. A retry reuses the call's counter,
    /// so a pavillion-rs server runs the function once.
    ///
    /// # Errors
    /// [`CallError::Remote`] for a non-zero status, [`CallError::TimedOut`] when no answer came
    /// in time (a server that is down), and the other [`CallError`] variants.
    pub fn call(&self, function: u16, args: &[u8]) -> Result<Bytes, CallError> {
        self.call_with_timeout(function, args, self.call_timeout)
    }

    /// As [`Client::call`], with its own deadline.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn call_with_timeout(
        &self,
        function: u16,
        args: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        if self.link.on_driver_thread() {
            return Err(CallError::InCallback);
        }
        let (reply, rx) = sync_channel(1);
        let command = Command::Call {
            function: FunctionId(function),
            args: Bytes::copy_from_slice(args),
            timeout,
            reply,
        };
        self.link.send(command).map_err(|_| CallError::Closed)?;
        match rx.recv_timeout(timeout + GRACE) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(CallError::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(CallError::Closed),
        }
    }

    /// Sends a message to `target`/`name`. A reliable message blocks until every expected
    /// server acknowledged it, or the send timeout (5 s by default) passed with some
    /// acknowledgement; an unreliable one returns as soon as it is queued, with an empty
    /// [`Delivery`]. An unreliable message made before the session is up waits for it, and is
    /// dropped unsent if the client closes first (see [`Client::wait_connected`]).
    ///
    /// # Errors
    /// [`SendError::TimedOut`] when nobody acknowledged it, [`SendError::Refused`] for a
    /// message the endpoint cannot send, and the other [`SendError`] variants.
    pub fn send_message(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
    ) -> Result<Delivery, SendError> {
        let options = match reliability {
            Reliability::Unreliable => SendOptions::unreliable(),
            _ => SendOptions::reliable().with_timeout(self.send_timeout),
        };
        self.send_message_with(target, name, data, options)
    }

    /// As [`Client::send_message`], with explicit options (a per-message timeout).
    ///
    /// # Errors
    /// As [`Client::send_message`].
    pub fn send_message_with(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        options: SendOptions,
    ) -> Result<Delivery, SendError> {
        if self.link.on_driver_thread() {
            return Err(SendError::InCallback);
        }
        let (reply, rx) = sync_channel(1);
        let command = Command::Send {
            target: target.into(),
            name: name.into(),
            data: Bytes::copy_from_slice(data),
            options,
            reply,
        };
        self.link.send(command).map_err(|_| SendError::Closed)?;
        let wait = options.timeout.unwrap_or(self.send_timeout) + GRACE;
        match rx.recv_timeout(wait) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(SendError::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(SendError::Closed),
        }
    }

    /// Runs `callback` for every message to `target`, or for every message at all with
    /// `None`. Callbacks run on the client's thread, in the order they were added.
    pub fn on_message(
        &self,
        target: Option<&str>,
        callback: impl FnMut(&ReceivedMessage) + Send + 'static,
    ) {
        let command = Command::OnMessage {
            target: target.map(String::from),
            callback: Box::new(callback),
        };
        // A closed client delivers nothing anyway.
        let _ = self.link.send(command);
    }

    /// Waits until a session with a server is up, and returns the server's address.
    ///
    /// # Errors
    /// [`ServerError::TimedOut`] if none came up within `timeout`.
    pub fn wait_connected(&self, timeout: Duration) -> Result<SocketAddr, ServerError> {
        if self.link.on_driver_thread() {
            return Err(ServerError::InCallback);
        }
        let (reply, rx) = sync_channel(1);
        let deadline = self.clock.now() + timeout;
        self.link
            .send(Command::WaitConnected { deadline, reply })
            .map_err(|_| ServerError::Closed)?;
        match rx.recv_timeout(timeout + GRACE) {
            Ok(Some(addr)) => Ok(addr),
            Ok(None) | Err(RecvTimeoutError::Timeout) => Err(ServerError::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(ServerError::Closed),
        }
    }

    /// The servers we hold sessions with (several in multicast mode).
    pub fn servers(&self) -> Vec<RemoteServer> {
        let (reply, rx) = sync_channel(1);
        if self.link.on_driver_thread() || self.link.send(Command::Servers { reply }).is_err() {
            return Vec::new();
        }
        rx.recv_timeout(GRACE)
            .unwrap_or_default()
            .into_iter()
            .map(|addr| self.server(addr))
            .collect()
    }

    /// A handle on the server answering from `addr`; its methods fail with
    /// [`ServerError::NotConnected`] while there is no session with it.
    pub fn server(&self, addr: SocketAddr) -> RemoteServer {
        RemoteServer {
            addr,
            link: self.link.clone(),
            clock: self.clock,
        }
    }

    /// The local address of the client socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address the client was configured to talk to.
    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// Sends quit to the server, fails what is pending and stops the thread.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.link.send(Command::Close);
            if !self.link.on_driver_thread() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A server the client talks to: its clock and its status, as the reference's
/// `RemoteServerInterface` offers them.
///
/// Each method asks the client's thread for the current state, so the answers stay live.
///
/// # Examples
/// ```no_run
/// # fn example(client: pavillion_std::Client) -> Result<(), pavillion_std::ServerError> {
/// use std::time::Duration;
/// let addr = client.wait_connected(Duration::from_secs(2))?;
/// let server = client.server(addr);
/// server.sync_time(Duration::from_secs(2))?;
/// println!("server clock: {}", server.remote_now()?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RemoteServer {
    addr: SocketAddr,
    link: Link<Command>,
    clock: Clock,
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

impl RemoteServer {
    /// The address the server answers from.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current state, if there is a live session.
    ///
    /// # Errors
    /// [`ServerError::NotConnected`] without a live session, [`ServerError::Closed`] after the
    /// client closed.
    pub fn state(&self) -> Result<ServerState, ServerError> {
        if self.link.on_driver_thread() {
            return Err(ServerError::InCallback);
        }
        let (reply, rx) = sync_channel(1);
        self.link
            .send(Command::Server {
                addr: self.addr,
                reply,
            })
            .map_err(|_| ServerError::Closed)?;
        match rx.recv_timeout(GRACE) {
            Ok(Some(s)) if s.up => Ok(s),
            Ok(_) => Err(ServerError::NotConnected),
            Err(_) => Err(ServerError::Closed),
        }
    }

    /// The server's monotonic clock now, in its own time base.
    ///
    /// # Errors
    /// [`ServerError::NoClock`] before a time sync was answered; as [`RemoteServer::state`].
    pub fn remote_now(&self) -> Result<Instant, ServerError> {
        Ok(self.clock()?.to_remote(self.clock.now()))
    }

    /// The server's clock reading at local instant `local`.
    ///
    /// # Errors
    /// As [`RemoteServer::remote_now`].
    pub fn to_remote(&self, local: std::time::Instant) -> Result<Instant, ServerError> {
        Ok(self.clock()?.to_remote(self.clock.from_std(local)))
    }

    /// The local instant at which the server's clock reads `remote`.
    ///
    /// # Errors
    /// As [`RemoteServer::remote_now`], and [`ServerError::OutOfRange`] for an instant the
    /// local clock cannot represent.
    pub fn to_local(&self, remote: Instant) -> Result<std::time::Instant, ServerError> {
        let local = self.clock()?.to_local(remote);
        self.clock.to_std(local).ok_or(ServerError::OutOfRange)
    }

    /// The estimate of the server's clock: offset and the round trip that bounds its error.
    ///
    /// # Errors
    /// As [`RemoteServer::remote_now`].
    pub fn clock(&self) -> Result<ClockEstimate, ServerError> {
        self.state()?.clock.ok_or(ServerError::NoClock)
    }

    /// Asks the server for its clock and waits for the answer.
    ///
    /// # Errors
    /// [`ServerError::TimedOut`] without an answer within `timeout`; as
    /// [`RemoteServer::state`].
    pub fn sync_time(&self, timeout: Duration) -> Result<ClockEstimate, ServerError> {
        if self.link.on_driver_thread() {
            return Err(ServerError::InCallback);
        }
        let (reply, rx) = sync_channel(1);
        let deadline = self.clock.now() + timeout;
        self.link
            .send(Command::SyncTime {
                addr: self.addr,
                deadline,
                reply,
            })
            .map_err(|_| ServerError::Closed)?;
        match rx.recv_timeout(timeout + GRACE) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(ServerError::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(ServerError::Closed),
        }
    }

    /// The last reported status bytes, decoded.
    ///
    /// # Errors
    /// [`ServerError::NoStatus`] if the server sends none; as [`RemoteServer::state`].
    pub fn status(&self) -> Result<Status, ServerError> {
        self.state()?.status.ok_or(ServerError::NoStatus)
    }

    /// The battery level and state.
    ///
    /// # Errors
    /// As [`RemoteServer::status`].
    pub fn battery(&self) -> Result<Battery, ServerError> {
        Ok(self.status()?.battery)
    }

    /// The signal strength in dBm of a wireless link, `None` for a wired or unknown one.
    ///
    /// # Errors
    /// As [`RemoteServer::status`].
    pub fn rssi(&self) -> Result<Option<i16>, ServerError> {
        Ok(match self.status()?.network {
            NetworkStatus::Wlan { rssi } | NetworkStatus::Wwan { rssi } => Some(rssi),
            _ => None,
        })
    }

    /// The temperature in °C.
    ///
    /// # Errors
    /// As [`RemoteServer::status`].
    pub fn temperature(&self) -> Result<i8, ServerError> {
        Ok(self.status()?.temperature)
    }
}

fn resolve(addr: impl ToSocketAddrs) -> Result<SocketAddr, OpenError> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| OpenError::Address("no address".into()))
}

/// Commands from the handles to the client thread.
enum Command {
    Call {
        function: FunctionId,
        args: Bytes,
        timeout: Duration,
        reply: SyncSender<Result<Bytes, CallError>>,
    },
    Close,
    OnMessage {
        target: Option<String>,
        callback: MessageCallback,
    },
    Send {
        target: String,
        name: String,
        data: Bytes,
        options: SendOptions,
        reply: SyncSender<Result<Delivery, SendError>>,
    },
    Server {
        addr: SocketAddr,
        reply: SyncSender<Option<ServerState>>,
    },
    Servers {
        reply: SyncSender<Vec<SocketAddr>>,
    },
    SyncTime {
        addr: SocketAddr,
        deadline: Instant,
        reply: SyncSender<Result<ClockEstimate, ServerError>>,
    },
    WaitConnected {
        deadline: Instant,
        reply: SyncSender<Option<SocketAddr>>,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

struct ClockWaiter {
    addr: SocketAddr,
    /// The sample time of the estimate before the request; a newer one answers it.
    after: Option<Instant>,
    deadline: Instant,
    reply: SyncSender<Result<ClockEstimate, ServerError>>,
}

/// The client thread's state: the endpoint and who waits for what.
struct ClientRole {
    ep: proto::Client,
    calls: HashMap<CallId, SyncSender<Result<Bytes, CallError>>>,
    sends: HashMap<MessageId, SyncSender<Result<Delivery, SendError>>>,
    targets: HashMap<String, Vec<MessageCallback>>,
    any: Vec<MessageCallback>,
    connect_waiters: Vec<(Instant, SyncSender<Option<SocketAddr>>)>,
    clock_waiters: Vec<ClockWaiter>,
}

impl ClientRole {
    fn state(&self, addr: SocketAddr) -> Option<ServerState> {
        self.ep.server(addr).map(|s| ServerState {
            addr,
            up: s.is_up(),
            confirmed: s.is_confirmed(),
            status: s.status(),
            clock: s.clock(),
        })
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Answered { call, data, .. } => self.answer(call, Ok(data)),
            Event::RemoteError {
                call, status, data, ..
            } => self.answer(call, Err(CallError::Remote { status, data })),
            Event::CallTimedOut { call } => self.answer(call, Err(CallError::TimedOut)),
            Event::CallFailed { call, reason } => self.answer(call, Err(CallError::Failed(reason))),
            Event::Delivered { id, acked, missing } => {
                self.deliver(id, Ok(Delivery { acked, missing }))
            }
            Event::Failed { id, reason } => self.deliver(id, Err(SendError::Failed(reason))),
            Event::TimedOut { id } => self.deliver(id, Err(SendError::TimedOut)),
            Event::Message(m) => {
                tracing::debug!(target = %m.target, name = %m.name, from = %m.from, "message");
                run_callbacks(&mut self.targets, &mut self.any, &m);
            }
            Event::Connected { addr, .. } => {
                tracing::info!(%addr, "connected");
                for (_, w) in self.connect_waiters.drain(..) {
                    let _ = w.try_send(Some(addr));
                }
            }
            Event::Disconnected { addr, reason } => {
                tracing::info!(%addr, ?reason, "disconnected")
            }
            Event::HandshakeFailed { addr, reason } => {
                tracing::warn!(%addr, %reason, "handshake refused")
            }
            Event::PeerDown { addr } => tracing::info!(%addr, "server down"),
            Event::PeerUp { addr } => tracing::info!(%addr, "server up"),
            other => tracing::debug!(event = ?other, "event"),
        }
    }

    fn answer(&mut self, call: CallId, result: Result<Bytes, CallError>) {
        if let Some(reply) = self.calls.remove(&call) {
            let _ = reply.try_send(result);
        }
    }

    fn deliver(&mut self, id: MessageId, result: Result<Delivery, SendError>) {
        if let Some(reply) = self.sends.remove(&id) {
            let _ = reply.try_send(result);
        }
    }
}

/// Runs the callbacks for `m`: those of its target, then the catch-all ones. A panicking
/// callback is logged and does not take the endpoint down.
pub(crate) fn run_callbacks(
    targets: &mut HashMap<String, Vec<MessageCallback>>,
    any: &mut [MessageCallback],
    m: &ReceivedMessage,
) {
    let specific = targets
        .get_mut(&m.target)
        .map(|v| &mut v[..])
        .unwrap_or_default();
    for cb in specific.iter_mut().chain(any.iter_mut()) {
        if catch_unwind(AssertUnwindSafe(|| cb(m))).is_err() {
            tracing::error!(target = %m.target, "message callback panicked");
        }
    }
}

impl Role for ClientRole {
    type Command = Command;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.ep.handle_datagram(now, from, data);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.ep.poll_transmit(now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let waiters = self
            .connect_waiters
            .iter()
            .map(|(d, _)| *d)
            .chain(self.clock_waiters.iter().map(|w| w.deadline))
            .min();
        match (self.ep.poll_timeout(), waiters) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_command(&mut self, now: Instant, _socket: &UdpSocket, command: Command) -> bool {
        match command {
            Command::Call {
                function,
                args,
                timeout,
                reply,
            } => match self.ep.call(now, function, &args, Some(timeout)) {
                Ok(id) => {
                    self.calls.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.try_send(Err(CallError::Refused(e)));
                }
            },
            Command::Close => {
                self.ep.close(now);
                return false;
            }
            Command::OnMessage { target, callback } => match target {
                Some(t) => self.targets.entry(t).or_default().push(callback),
                None => self.any.push(callback),
            },
            Command::Send {
                target,
                name,
                data,
                options,
                reply,
            } => match self.ep.send_message(now, &target, &name, &data, options) {
                Ok(_) if options.reliability == Reliability::Unreliable => {
                    let _ = reply.try_send(Ok(Delivery::default()));
                }
                Ok(id) => {
                    self.sends.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.try_send(Err(SendError::Refused(e)));
                }
            },
            Command::Server { addr, reply } => {
                let _ = reply.try_send(self.state(addr));
            }
            Command::Servers { reply } => {
                let _ = reply.try_send(self.ep.servers().collect());
            }
            Command::SyncTime {
                addr,
                deadline,
                reply,
            } => {
                let up = self.state(addr).is_some_and(|s| s.up);
                if !up || self.ep.sync_time(now).is_err() {
                    let _ = reply.try_send(Err(ServerError::NotConnected));
                } else {
                    let after = self.state(addr).and_then(|s| s.clock).map(|c| c.at);
                    self.clock_waiters.push(ClockWaiter {
                        addr,
                        after,
                        deadline,
                        reply,
                    });
                }
            }
            Command::WaitConnected { deadline, reply } => match self.ep.servers().next() {
                Some(addr) => {
                    let _ = reply.try_send(Some(addr));
                }
                None => self.connect_waiters.push((deadline, reply)),
            },
        }
        true
    }

    fn dispatch(&mut self, now: Instant) {
        while let Some(event) = self.ep.poll_event() {
            self.on_event(event);
        }
        let mut waiters = std::mem::take(&mut self.clock_waiters);
        waiters.retain(|w| {
            let fresh = self
                .state(w.addr)
                .and_then(|s| s.clock)
                .filter(|c| w.after.is_none_or(|a| c.at > a));
            match fresh {
                Some(c) => {
                    let _ = w.reply.try_send(Ok(c));
                    false
                }
                None if w.deadline <= now => {
                    let _ = w.reply.try_send(Err(ServerError::TimedOut));
                    false
                }
                None => true,
            }
        });
        self.clock_waiters = waiters;
        self.connect_waiters.retain(|(deadline, reply)| {
            if *deadline <= now {
                let _ = reply.try_send(None);
                false
            } else {
                true
            }
        });
    }

    fn close(&mut self, now: Instant, _socket: &UdpSocket) {
        self.ep.close(now);
    }
}
