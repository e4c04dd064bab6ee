//! The blocking server: [`Server::bind`], RPC handlers, message callbacks and sends.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{
    self as proto, CallHandle, Event, Limits, ReceivedMessage, Reliability, RpcRequest,
    SendOptions, Transmit,
};
use pavillion_proto::features::status::Status;
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::{ClientId, FunctionId, Instant, MessageId, PeerId};

use crate::client::run_callbacks;
use crate::driver::{self, Clock, Link, Role};
use crate::error::{OpenError, SendError};
use crate::{Delivery, MessageCallback};

/// How long a blocking wait lasts beyond the endpoint's own deadline (see the client's).
const GRACE: Duration = Duration::from_secs(2);

/// Configuration of a [`Server`]: its clients, keys and optional multicast group.
///
/// Defaults: no clients (add them with the builders), reliable messages time out after 10 s (the
/// reference server's default), no status bytes in ACKs, no multicast group, the standard calls
/// 0 (echo) and 1 (function name) answered by the endpoint itself.
///
/// # Examples
/// ```
/// use pavillion_std::keys::{generate_keypair, parse_psk};
/// use pavillion_std::ServerConfig;
/// use pavillion_proto::ClientId;
///
/// let config = ServerConfig::new()
///     .psk_client(ClientId(*b"cid2cid2cid2cid2"), parse_psk(&"07".repeat(32)).unwrap())
///     .keys(generate_keypair())
///     .allow_guests(true)
///     .multicast("239.255.28.12".parse().unwrap());
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    inner: proto::ServerConfig,
    multicast: Option<IpAddr>,
    send_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerConfig {
    /// A server that knows no clients yet.
    pub fn new() -> Self {
        ServerConfig {
            // The seed is drawn from OS randomness in `Server::bind`.
            inner: proto::ServerConfig::new([0; 32]),
            multicast: None,
            send_timeout: Duration::from_secs(10),
        }
    }

    /// Admits the suite 1 client `id` with pre-shared key `psk`.
    pub fn psk_client(mut self, id: ClientId, psk: Psk) -> Self {
        self.inner.psk_clients.insert(id, psk);
        self
    }

    /// Sets the server's X25519 key pair, needed for suite 2.
    pub fn keys(mut self, keys: KeyPair) -> Self {
        self.inner.keys = Some(keys);
        self
    }

    /// Admits the suite 2 client `id` with public key `public`.
    pub fn ecc_client(mut self, id: ClientId, public: PublicKey) -> Self {
        self.inner.ecc_clients.insert(id, public);
        self
    }

    /// Admits suite 2 clients whose key is not configured, known by the hash of their key.
    pub fn allow_guests(mut self, allow: bool) -> Self {
        self.inner.allow_guest = allow;
        self
    }

    /// Joins multicast group `group` on the listening socket.
    pub fn multicast(mut self, group: IpAddr) -> Self {
        self.multicast = Some(group);
        self
    }

    /// Appends this status to every ACK (11-byte ACKs, which a Python peer does not expect).
    pub fn status(mut self, status: Status) -> Self {
        self.inner.status = Some(status.to_bytes());
        self
    }

    /// Sets the default deadline of a reliable [`Server::send_message`].
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Replaces the endpoint's capacities and timers.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.inner.limits = limits;
        self
    }

    /// The endpoint configuration, for settings without a builder here. Its seed is replaced
    /// by OS randomness when the server binds.
    pub fn endpoint_mut(&mut self) -> &mut proto::ServerConfig {
        &mut self.inner
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

/// A failed RPC: the status code and bytes (often a message) returned to the caller.
///
/// # Examples
/// ```
/// use pavillion_std::RpcFailure;
/// let f = RpcFailure::bad_input("expected 2 bytes");
/// assert_eq!(f.status.0, 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcFailure {
    /// The status code (wire notes §5.7); never 0.
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

/// Answers one RPC call later, from any thread. Dropping it unanswered answers status 1 with
/// `NoAnswer`, so the caller learns at once instead of at its deadline.
///
/// # Examples
/// ```no_run
/// # fn example(server: pavillion_std::Server) {
/// server.register_deferred(500, "slow", |request, responder| {
///     std::thread::spawn(move || {
///         std::thread::sleep(std::time::Duration::from_millis(100));
///         responder.respond(Ok(request.args.to_vec()));
///     });
/// });
/// # }
/// ```
#[derive(Debug)]
pub struct Responder {
    call: CallHandle,
    link: Link<Command>,
    answered: bool,
}

impl Responder {
    /// Sends the answer: `Ok(data)` is status 0.
    pub fn respond<R: Into<Bytes>>(mut self, result: Result<R, RpcFailure>) {
        self.answered = true;
        let result = result.map(Into::into);
        let _ = self.link.send(Command::Respond {
            call: self.call,
            result,
        });
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.link.send(Command::Respond {
                call: self.call,
                result: Err(RpcFailure::error("NoAnswer")),
            });
        }
    }
}

/// A Pavillion server on its own socket and thread.
///
/// RPC handlers and message callbacks run on the server's thread. Dropping the server (or
/// [`Server::close`]) sends quit to every client, leaves its multicast group and frees the port.
///
/// # Examples
/// ```no_run
/// use pavillion_std::keys::parse_psk;
/// use pavillion_std::{Reliability, RpcFailure, Server, ServerConfig};
/// use pavillion_proto::ClientId;
///
/// let psk = parse_psk(&"07".repeat(32))?;
/// let server = Server::bind("0.0.0.0:1783", ServerConfig::new().psk_client(ClientId([1; 16]), psk))?;
/// server.register(401, "upper", |req| Ok::<_, RpcFailure>(req.args.to_ascii_uppercase()));
/// server.on_message(Some("kitchen"), |m| println!("{} = {:?}", m.name, m.payload));
/// server.send_message("alerts", "fire", b"1", Reliability::Reliable, |_, _| true)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Server {
    link: Link<Command>,
    thread: Option<JoinHandle<()>>,
    local: SocketAddr,
    send_timeout: Duration,
}

impl Server {
    /// Binds `addr` (port 1783 is the protocol's default) and starts serving.
    ///
    /// # Errors
    /// [`OpenError::Io`] if the socket cannot be bound or the group joined,
    /// [`OpenError::Address`] if `addr` resolves to nothing.
    pub fn bind(addr: impl ToSocketAddrs, config: ServerConfig) -> Result<Server, OpenError> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| OpenError::Address("no address".into()))?;
        let socket = UdpSocket::bind(addr)?;
        if let Some(group) = config.multicast {
            join(&socket, group)?;
        }
        let local = socket.local_addr()?;
        let mut inner = config.inner;
        inner.seed = crate::keys::random32();
        let endpoint = proto::Server::new(inner);
        tracing::info!(%local, multicast = ?config.multicast, "server started");
        let clock = Clock::new();
        let groups = config.multicast.into_iter().collect();
        let (link, thread) = driver::spawn("pavillion-server", socket, clock, |link| ServerRole {
            ep: endpoint,
            link,
            handlers: HashMap::new(),
            targets: HashMap::new(),
            any: Vec::new(),
            fanouts: HashMap::new(),
            fanout_of: HashMap::new(),
            next_fanout: 0,
            groups,
        })?;
        Ok(Server {
            link,
            thread: Some(thread),
            local,
            send_timeout: config.send_timeout,
        })
    }

    /// Answers calls to `function` with `handler`, on the server thread. `name` is what the
    /// standard call 1 returns for it. A panicking handler answers status 1.
    pub fn register<R, F>(&self, function: u16, name: &str, mut handler: F)
    where
        R: Into<Bytes>,
        F: FnMut(&RpcRequest) -> Result<R, RpcFailure> + Send + 'static,
    {
        let handler = Handler::Now(Box::new(move |req| handler(req).map(Into::into)));
        let _ = self.link.send(Command::Register {
            function: FunctionId(function),
            name: name.into(),
            handler,
        });
    }

    /// Answers calls to `function` later: `handler` gets the request and a [`Responder`] it
    /// may move to another thread.
    pub fn register_deferred(
        &self,
        function: u16,
        name: &str,
        handler: impl FnMut(RpcRequest, Responder) + Send + 'static,
    ) {
        let _ = self.link.send(Command::Register {
            function: FunctionId(function),
            name: name.into(),
            handler: Handler::Later(Box::new(handler)),
        });
    }

    /// Stops answering `function`; calls to it get status 2 (nonexistent function).
    pub fn unregister(&self, function: u16) {
        let _ = self.link.send(Command::Unregister {
            function: FunctionId(function),
        });
    }

    /// Runs `callback` for every message to `target` (and announces to clients that we take
    /// that target), or for every message at all with `None`.
    pub fn on_message(
        &self,
        target: Option<&str>,
        callback: impl FnMut(&ReceivedMessage) + Send + 'static,
    ) {
        let _ = self.link.send(Command::OnMessage {
            target: target.map(String::from),
            callback: Box::new(callback),
        });
    }

    /// Sends a message to every client for which `filter(address, identity)` is true, and
    /// returns each one's outcome. A reliable send blocks until every chosen client
    /// acknowledged it or the send timeout passed.
    ///
    /// # Errors
    /// [`SendError::Refused`] for a message that cannot be sent at all, [`SendError::Closed`]
    /// or [`SendError::InCallback`]; failures of single clients are in the returned list.
    pub fn send_message(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
        filter: impl Fn(SocketAddr, PeerId) -> bool + Send + 'static,
    ) -> Result<Vec<Outcome>, SendError> {
        self.send(
            target,
            name,
            data,
            reliability,
            Recipients::All(Box::new(filter)),
        )
    }

    /// Sends a message to the one client at `client`.
    ///
    /// # Errors
    /// [`SendError::Refused`] with `UnknownPeer` without a session at `client`; otherwise as
    /// [`Client::send_message`](crate::Client::send_message).
    pub fn send_to(
        &self,
        client: SocketAddr,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
    ) -> Result<Delivery, SendError> {
        let mut all = self.send(target, name, data, reliability, Recipients::One(client))?;
        all.pop().map_or(Err(SendError::Closed), |o| o.result)
    }

    /// The connected clients: address and identity.
    pub fn clients(&self) -> Vec<(SocketAddr, PeerId)> {
        let (reply, rx) = sync_channel(1);
        if self.link.on_driver_thread() || self.link.send(Command::Clients { reply }).is_err() {
            return Vec::new();
        }
        rx.recv_timeout(GRACE).unwrap_or_default()
    }

    /// Sets the status appended to ACKs, or `None` for plain 8-byte ACKs.
    pub fn set_status(&self, status: Option<Status>) {
        let _ = self.link.send(Command::SetStatus(status));
    }

    /// Joins multicast group `group` on the server socket.
    ///
    /// # Errors
    /// The socket's error, or `NotConnected` if the server is closed.
    pub fn join_multicast(&self, group: IpAddr) -> io::Result<()> {
        self.membership(group, true)
    }

    /// Leaves multicast group `group`.
    ///
    /// # Errors
    /// As [`Server::join_multicast`].
    pub fn leave_multicast(&self, group: IpAddr) -> io::Result<()> {
        self.membership(group, false)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends quit to every client and stops; the port is free when this returns.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn membership(&self, group: IpAddr, join: bool) -> io::Result<()> {
        let closed = || io::Error::new(io::ErrorKind::NotConnected, "server closed");
        if self.link.on_driver_thread() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "called from a callback",
            ));
        }
        let (reply, rx) = sync_channel(1);
        self.link
            .send(Command::Membership { group, join, reply })
            .map_err(|_| closed())?;
        rx.recv_timeout(GRACE).map_err(|_| closed())?
    }

    fn send(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
        to: Recipients,
    ) -> Result<Vec<Outcome>, SendError> {
        if self.link.on_driver_thread() {
            return Err(SendError::InCallback);
        }
        let options = match reliability {
            Reliability::Unreliable => SendOptions::unreliable(),
            _ => SendOptions::reliable().with_timeout(self.send_timeout),
        };
        let (reply, rx) = sync_channel(1);
        self.link
            .send(Command::Send {
                target: target.into(),
                name: name.into(),
                data: Bytes::copy_from_slice(data),
                options,
                to,
                reply,
            })
            .map_err(|_| SendError::Closed)?;
        match rx.recv_timeout(self.send_timeout + GRACE) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(SendError::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(SendError::Closed),
        }
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

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn join(socket: &UdpSocket, group: IpAddr) -> io::Result<()> {
    match group {
        IpAddr::V4(g) => socket.join_multicast_v4(&g, &Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(g) => socket.join_multicast_v6(&g, 0),
    }
}

fn leave(socket: &UdpSocket, group: IpAddr) -> io::Result<()> {
    match group {
        IpAddr::V4(g) => socket.leave_multicast_v4(&g, &Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(g) => socket.leave_multicast_v6(&g, 0),
    }
}

type Filter = Box<dyn Fn(SocketAddr, PeerId) -> bool + Send>;
type SendReply = SyncSender<Result<Vec<Outcome>, SendError>>;
type NowHandler = Box<dyn FnMut(&RpcRequest) -> Result<Bytes, RpcFailure> + Send>;

enum Recipients {
    All(Filter),
    One(SocketAddr),
}

enum Handler {
    Now(NowHandler),
    Later(Box<dyn FnMut(RpcRequest, Responder) + Send>),
}

/// Commands from the handles to the server thread.
enum Command {
    Clients {
        reply: SyncSender<Vec<(SocketAddr, PeerId)>>,
    },
    Close,
    Membership {
        group: IpAddr,
        join: bool,
        reply: SyncSender<io::Result<()>>,
    },
    OnMessage {
        target: Option<String>,
        callback: MessageCallback,
    },
    Register {
        function: FunctionId,
        name: String,
        handler: Handler,
    },
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
        reply: SendReply,
    },
    SetStatus(Option<Status>),
    Unregister {
        function: FunctionId,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// One reliable send to several clients, answered when the last outcome arrives.
struct Fanout {
    waiting: usize,
    results: Vec<Outcome>,
    reply: SendReply,
}

/// The server thread's state.
struct ServerRole {
    ep: proto::Server,
    link: Link<Command>,
    handlers: HashMap<FunctionId, Handler>,
    targets: HashMap<String, Vec<MessageCallback>>,
    any: Vec<MessageCallback>,
    fanouts: HashMap<u64, Fanout>,
    fanout_of: HashMap<MessageId, (u64, SocketAddr)>,
    next_fanout: u64,
    groups: Vec<IpAddr>,
}

impl ServerRole {
    fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::RpcRequest(req) => self.on_call(now, req),
            Event::Message(m) => {
                tracing::debug!(target = %m.target, name = %m.name, from = %m.from, "message");
                run_callbacks(&mut self.targets, &mut self.any, &m);
            }
            Event::Delivered { id, acked, missing } => {
                self.outcome(id, Ok(Delivery { acked, missing }))
            }
            Event::Failed { id, reason } => self.outcome(id, Err(SendError::Failed(reason))),
            Event::TimedOut { id } => self.outcome(id, Err(SendError::TimedOut)),
            Event::Connected { addr, peer } => {
                tracing::info!(%addr, peer = ?peer, "client connected")
            }
            Event::Disconnected { addr, reason } => {
                tracing::info!(%addr, ?reason, "client disconnected")
            }
            other => tracing::debug!(event = ?other, "event"),
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
                let responder = Responder {
                    call,
                    link: self.link.clone(),
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
        if let Err(e) = self.ep.respond(now, call, status, &data) {
            tracing::debug!(error = %e, "RPC answer not sent");
        }
    }

    fn outcome(&mut self, id: MessageId, result: Result<Delivery, SendError>) {
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
                let _ = f.reply.try_send(Ok(f.results));
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
        reply: SendReply,
    ) {
        let ids = match to {
            Recipients::All(filter) => {
                match self
                    .ep
                    .send_to_all(now, target, name, data, options, filter)
                {
                    Ok(ids) => ids,
                    Err(e) => {
                        let _ = reply.try_send(Err(SendError::Refused(e)));
                        return;
                    }
                }
            }
            Recipients::One(addr) => {
                vec![(
                    addr,
                    self.ep.send_message(now, addr, target, name, data, options),
                )]
            }
        };
        let fid = self.next_fanout;
        self.next_fanout += 1;
        let mut fanout = Fanout {
            waiting: 0,
            results: Vec::new(),
            reply,
        };
        for (addr, r) in ids {
            match r {
                Err(e) => fanout.results.push(Outcome {
                    client: addr,
                    result: Err(SendError::Refused(e)),
                }),
                Ok(_) if options.reliability == Reliability::Unreliable => {
                    fanout.results.push(Outcome {
                        client: addr,
                        result: Ok(Delivery::default()),
                    })
                }
                Ok(id) => {
                    fanout.waiting += 1;
                    self.fanout_of.insert(id, (fid, addr));
                }
            }
        }
        if fanout.waiting == 0 {
            let _ = fanout.reply.try_send(Ok(fanout.results));
        } else {
            self.fanouts.insert(fid, fanout);
        }
    }

    fn shut(&mut self, now: Instant, socket: &UdpSocket) {
        let clients: Vec<SocketAddr> = self.ep.clients().map(|(a, _)| a).collect();
        for addr in clients {
            self.ep.disconnect(now, addr);
        }
        for g in self.groups.drain(..) {
            if let Err(e) = leave(socket, g) {
                tracing::debug!(error = %e, group = %g, "leaving group failed");
            }
        }
    }
}

impl Role for ServerRole {
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
        self.ep.poll_timeout()
    }

    fn on_command(&mut self, now: Instant, socket: &UdpSocket, command: Command) -> bool {
        match command {
            Command::Clients { reply } => {
                let _ = reply.try_send(self.ep.clients().collect());
            }
            Command::Close => {
                self.shut(now, socket);
                return false;
            }
            Command::Membership {
                group,
                join: j,
                reply,
            } => {
                let r = if j {
                    join(socket, group).inspect(|_| self.groups.push(group))
                } else {
                    self.groups.retain(|g| *g != group);
                    leave(socket, group)
                };
                let _ = reply.try_send(r);
            }
            Command::OnMessage { target, callback } => match target {
                Some(t) => {
                    self.ep.subscribe(now, &t);
                    self.targets.entry(t).or_default().push(callback);
                }
                None => self.any.push(callback),
            },
            Command::Register {
                function,
                name,
                handler,
            } => {
                self.ep.register_function(function, &name);
                self.handlers.insert(function, handler);
            }
            Command::Respond { call, result } => self.respond(now, call, result),
            Command::Send {
                target,
                name,
                data,
                options,
                to,
                reply,
            } => self.send(now, &target, &name, &data, options, to, reply),
            Command::SetStatus(status) => self.ep.set_status(status),
            Command::Unregister { function } => {
                self.ep.unregister_function(function);
                self.handlers.remove(&function);
            }
        }
        true
    }

    fn dispatch(&mut self, now: Instant) {
        while let Some(event) = self.ep.poll_event() {
            self.on_event(now, event);
        }
    }

    fn close(&mut self, now: Instant, socket: &UdpSocket) {
        self.shut(now, socket);
    }
}
