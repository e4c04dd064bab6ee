//! The async server: [`Server::bind`], RPC handlers, message streams and sends.

use std::collections::HashMap;
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::time::Duration;

use async_channel::{Sender, WeakSender};
use async_io::Async;
use bytes::Bytes;
use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{
    self as proto, CallHandle, Event, Limits, Reliability, RpcRequest, SendOptions, Transmit,
};
use pavillion_proto::features::status::Status;
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::{ClientId, FunctionId, Instant, MessageId, PeerId};

use crate::driver::{self, oneshot, Clock, Role};
use crate::error::{OpenError, SendError};
use crate::{message_stream, Delivery, MessageStream, Subscriber, Subscribers};

/// Configuration of a [`Server`]: its clients and keys.
///
/// Defaults: no clients (add them with the builders), reliable messages time out after 10 s (the
/// reference server's default), no status bytes in ACKs, the standard calls 0 (echo) and 1
/// (function name) answered by the endpoint itself, and
/// [`DEFAULT_MESSAGE_BUFFER`](crate::DEFAULT_MESSAGE_BUFFER) messages per stream.
///
/// A server with a key pair and known client keys serves suite 2 (ECC) and suite 3 (Noise
/// `IK`) clients alike.
///
/// # Examples
/// ```
/// use pavillion_proto::crypto::ecc::KeyPair;
/// use pavillion_proto::crypto::Psk;
/// use pavillion_proto::ClientId;
/// use pavillion_smol::ServerConfig;
///
/// let client_keys = KeyPair::from_secret_bytes([1; 32]);
/// let config = ServerConfig::new()
///     .psk_client(ClientId(*b"cid2cid2cid2cid2"), Psk::from_bytes([7; 32]))
///     .keys(KeyPair::from_secret_bytes([2; 32]))
///     .ecc_client(ClientId([3; 16]), *client_keys.public())
///     .allow_guests(true);
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    inner: proto::ServerConfig,
    send_timeout: Duration,
    message_buffer: usize,
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
            send_timeout: Duration::from_secs(10),
            message_buffer: crate::DEFAULT_MESSAGE_BUFFER,
        }
    }

    /// Admits the suite 1 client `id` with pre-shared key `psk`.
    pub fn psk_client(mut self, id: ClientId, psk: Psk) -> Self {
        self.inner.psk_clients.insert(id, psk);
        self
    }

    /// Sets the server's X25519 key pair, needed for suites 2 and 3.
    pub fn keys(mut self, keys: KeyPair) -> Self {
        self.inner.keys = Some(keys);
        self
    }

    /// Admits the suite 2 or 3 client `id` with public key `public`.
    pub fn ecc_client(mut self, id: ClientId, public: PublicKey) -> Self {
        self.inner.ecc_clients.insert(id, public);
        self
    }

    /// Admits clients whose key is not configured, known by the hash of their key.
    pub fn allow_guests(mut self, allow: bool) -> Self {
        self.inner.allow_guest = allow;
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

    /// Sets how many unread messages each [`MessageStream`] holds before it drops new ones
    /// (at least 1).
    pub fn message_buffer(mut self, messages: usize) -> Self {
        self.message_buffer = messages.max(1);
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
/// use pavillion_smol::RpcFailure;
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

/// Answers one RPC call later, from any task or thread. Dropping it unanswered (also when the
/// task holding it panics) answers status 1 with `NoAnswer`, so the caller learns at once
/// instead of at its deadline.
///
/// # Examples
/// ```no_run
/// # async fn example(server: pavillion_smol::Server) {
/// server.register_deferred(500, "slow", |request, responder| {
///     smol::spawn(async move {
///         async_io::Timer::after(std::time::Duration::from_millis(100)).await;
///         responder.respond(Ok(request.args.to_vec()));
///     })
///     .detach();
/// });
/// # }
/// ```
#[derive(Debug)]
pub struct Responder {
    call: CallHandle,
    link: Sender<Command>,
    answered: bool,
}

impl Responder {
    /// Sends the answer: `Ok(data)` is status 0. It never waits.
    pub fn respond<R: Into<Bytes>>(mut self, result: Result<R, RpcFailure>) {
        self.answered = true;
        let result = result.map(Into::into);
        let _ = self.link.try_send(Command::Respond {
            call: self.call,
            result,
        });
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.link.try_send(Command::Respond {
                call: self.call,
                result: Err(RpcFailure::error("NoAnswer")),
            });
        }
    }
}

/// A Pavillion server on its own socket and driver task.
///
/// Handlers given to [`Server::register`] run on the driver task and must not block; slow work
/// belongs in [`Server::register_async`], whose futures run as their own tasks. Dropping the
/// server (or [`Server::close`]) sends quit to every client and frees the port.
///
/// # Examples
/// ```no_run
/// use futures_lite::StreamExt;
/// use pavillion_proto::crypto::Psk;
/// use pavillion_proto::ClientId;
/// use pavillion_smol::{Reliability, RpcFailure, Server, ServerConfig};
///
/// smol::block_on(async {
///     let config = ServerConfig::new().psk_client(ClientId([1; 16]), Psk::from_bytes([7; 32]));
///     let server = Server::bind("0.0.0.0:1783", config).await?;
///     server.register(401, "upper", |req| Ok::<_, RpcFailure>(req.args.to_ascii_uppercase()));
///     let mut kitchen = server.on_message(Some("kitchen"));
///     if let Some(m) = kitchen.next().await {
///         println!("{} = {:?}", m.name, m.payload);
///     }
///     server
///         .send_message("alerts", "fire", b"1", Reliability::Reliable, |_, _| true)
///         .await?;
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Server {
    link: Sender<Command>,
    task: Option<smol::Task<()>>,
    local: SocketAddr,
    send_timeout: Duration,
    message_buffer: usize,
}

impl Server {
    /// Binds `addr` (port 1783 is the protocol's default) and starts serving.
    ///
    /// # Errors
    /// [`OpenError::Io`] if the socket cannot be bound, [`OpenError::Address`] if `addr`
    /// resolves to nothing.
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// let config = pavillion_smol::ServerConfig::new();
    /// let server = pavillion_smol::Server::bind("[::1]:0", config).await?;
    /// println!("listening on {}", server.local_addr());
    /// # Ok::<(), pavillion_smol::OpenError>(())
    /// # });
    /// ```
    pub async fn bind(
        addr: impl smol::net::AsyncToSocketAddrs,
        config: ServerConfig,
    ) -> Result<Server, OpenError> {
        let addr = crate::resolve(addr).await?;
        let socket = Async::<UdpSocket>::bind(addr)?;
        let local = socket.get_ref().local_addr()?;
        let mut inner = config.inner;
        inner.seed = crate::random32();
        let clock = Clock::new();
        let endpoint = proto::Server::new(inner);
        tracing::info!(%local, "server started");
        let (link, commands) = async_channel::unbounded();
        let role = ServerRole {
            ep: endpoint,
            link: link.downgrade(),
            handlers: HashMap::new(),
            subscribers: Subscribers::default(),
            fanouts: HashMap::new(),
            fanout_of: HashMap::new(),
            next_fanout: 0,
        };
        let task = driver::spawn(role, socket, commands, clock);
        Ok(Server {
            link,
            task: Some(task),
            local,
            send_timeout: config.send_timeout,
            message_buffer: config.message_buffer,
        })
    }

    /// Answers calls to `function` with `handler`, run on the driver task (it must not block).
    /// `name` is what the standard call 1 returns for it. A panicking handler answers status 1.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(server: pavillion_smol::Server) {
    /// use pavillion_smol::RpcFailure;
    /// server.register(401, "upper", |req| Ok::<_, RpcFailure>(req.args.to_ascii_uppercase()));
    /// # }
    /// ```
    pub fn register<R, F>(&self, function: u16, name: &str, mut handler: F)
    where
        R: Into<Bytes>,
        F: FnMut(&RpcRequest) -> Result<R, RpcFailure> + Send + 'static,
    {
        let handler = Handler::Now(Box::new(move |req| handler(req).map(Into::into)));
        self.add_handler(function, name, handler);
    }

    /// Answers calls to `function` with the future `handler` returns, run as its own task on
    /// smol's global executor (`smol::spawn`), so it may wait on anything. A future that
    /// panics answers status 1 (`NoAnswer`).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example(server: pavillion_smol::Server) {
    /// use pavillion_smol::RpcFailure;
    /// server.register_async(402, "slow_echo", |req| async move {
    ///     async_io::Timer::after(std::time::Duration::from_millis(50)).await;
    ///     Ok::<_, RpcFailure>(req.args)
    /// });
    /// # }
    /// ```
    pub fn register_async<R, F, Fut>(&self, function: u16, name: &str, mut handler: F)
    where
        R: Into<Bytes>,
        F: FnMut(RpcRequest) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, RpcFailure>> + Send + 'static,
    {
        let handler = Handler::Async(Box::new(move |req| {
            let fut = handler(req);
            Box::pin(async move { fut.await.map(Into::into) })
        }));
        self.add_handler(function, name, handler);
    }

    /// Answers calls to `function` later: `handler` (run on the driver task) gets the request
    /// and a [`Responder`] it may move anywhere.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(server: pavillion_smol::Server) {
    /// use pavillion_smol::RpcFailure;
    /// server.register_deferred(403, "checked", |req, responder| {
    ///     if req.args.is_empty() {
    ///         responder.respond::<Vec<u8>>(Err(RpcFailure::bad_input("empty")));
    ///     } else {
    ///         responder.respond(Ok(req.args.to_vec()));
    ///     }
    /// });
    /// # }
    /// ```
    pub fn register_deferred(
        &self,
        function: u16,
        name: &str,
        handler: impl FnMut(RpcRequest, Responder) + Send + 'static,
    ) {
        self.add_handler(function, name, Handler::Later(Box::new(handler)));
    }

    /// Stops answering `function`; calls to it get status 2 (nonexistent function).
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(server: pavillion_smol::Server) {
    /// server.unregister(401);
    /// # }
    /// ```
    pub fn unregister(&self, function: u16) {
        let _ = self.link.try_send(Command::Unregister {
            function: FunctionId(function),
        });
    }

    /// The messages clients send to `target` (announcing to clients that we take that
    /// target), or every message with `None`, as a stream. See [`MessageStream`] for what
    /// happens when it is not read fast enough.
    pub fn on_message(&self, target: Option<&str>) -> MessageStream {
        let (sub, stream) = message_stream(self.message_buffer);
        let _ = self.link.try_send(Command::OnMessage {
            target: target.map(String::from),
            sub,
        });
        stream
    }

    /// The same as [`Server::on_message`].
    pub fn messages(&self, target: Option<&str>) -> MessageStream {
        self.on_message(target)
    }

    /// Sends a message to every client for which `filter(address, identity)` is true, and
    /// returns each one's outcome. A reliable send resolves once every chosen client
    /// acknowledged it or its deadline passed.
    ///
    /// # Errors
    /// [`SendError::Refused`] for a message that cannot be sent at all, [`SendError::Closed`]
    /// after the server closed; failures of single clients are in the returned list.
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(server: pavillion_smol::Server) -> Result<(), pavillion_smol::SendError> {
    /// use pavillion_smol::Reliability;
    /// let outcomes = server
    ///     .send_message("alerts", "fire", b"1", Reliability::Reliable, |_, _| true)
    ///     .await?;
    /// for o in outcomes {
    ///     println!("{}: {:?}", o.client, o.result);
    /// }
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn send_message(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
        filter: impl Fn(SocketAddr, PeerId) -> bool + Send + 'static,
    ) -> Result<Vec<Outcome>, SendError> {
        let to = Recipients::All(Box::new(filter));
        self.send(target, name, data, reliability, to).await
    }

    /// Sends a message to the one client at `client`.
    ///
    /// # Errors
    /// [`SendError::Refused`] with `UnknownPeer` without a session at `client`; otherwise as
    /// [`Client::send_message`](crate::Client::send_message).
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(server: pavillion_smol::Server) -> Result<(), pavillion_smol::SendError> {
    /// use pavillion_smol::Reliability;
    /// for (addr, _) in server.clients().await {
    ///     server.send_to(addr, "alerts", "hello", b"", Reliability::Unreliable).await?;
    /// }
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn send_to(
        &self,
        client: SocketAddr,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
    ) -> Result<Delivery, SendError> {
        let to = Recipients::One(client);
        let mut all = self.send(target, name, data, reliability, to).await?;
        all.pop().map_or(Err(SendError::Closed), |o| o.result)
    }

    /// The connected clients: address and identity.
    pub async fn clients(&self) -> Vec<(SocketAddr, PeerId)> {
        let (reply, rx) = oneshot();
        if self.link.try_send(Command::Clients { reply }).is_err() {
            return Vec::new();
        }
        rx.recv().await.unwrap_or_default()
    }

    /// Sets the status appended to ACKs, or `None` for plain 8-byte ACKs.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(server: pavillion_smol::Server) {
    /// server.set_status(None);
    /// # }
    /// ```
    pub fn set_status(&self, status: Option<Status>) {
        let _ = self.link.try_send(Command::SetStatus(status));
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends quit to every client, fails pending sends with `Closed`, and waits for the driver
    /// task to end: the port is free when this returns.
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(server: pavillion_smol::Server) -> Result<(), pavillion_smol::OpenError> {
    /// let addr = server.local_addr();
    /// server.close().await;
    /// let again = pavillion_smol::Server::bind(addr, pavillion_smol::ServerConfig::new()).await?;
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn close(mut self) {
        let _ = self.link.try_send(Command::Close);
        if let Some(task) = self.task.take() {
            task.await;
        }
    }

    fn add_handler(&self, function: u16, name: &str, handler: Handler) {
        let _ = self.link.try_send(Command::Register {
            function: FunctionId(function),
            name: name.into(),
            handler,
        });
    }

    async fn send(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
        to: Recipients,
    ) -> Result<Vec<Outcome>, SendError> {
        let options = match reliability {
            Reliability::Unreliable => SendOptions::unreliable(),
            _ => SendOptions::reliable().with_timeout(self.send_timeout),
        };
        let (reply, rx) = oneshot();
        self.link
            .try_send(Command::Send {
                target: target.into(),
                name: name.into(),
                data: Bytes::copy_from_slice(data),
                options,
                to,
                reply,
            })
            .map_err(|_| SendError::Closed)?;
        rx.recv().await.unwrap_or(Err(SendError::Closed))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = self.link.try_send(Command::Close);
            // Dropping a smol task cancels it; detached, it finishes the close by itself.
            task.detach();
        }
    }
}

type Filter = Box<dyn Fn(SocketAddr, PeerId) -> bool + Send>;
type SendReply = Sender<Result<Vec<Outcome>, SendError>>;
type NowHandler = Box<dyn FnMut(&RpcRequest) -> Result<Bytes, RpcFailure> + Send>;
type BoxFuture = Pin<Box<dyn Future<Output = Result<Bytes, RpcFailure>> + Send>>;
type AsyncHandler = Box<dyn FnMut(RpcRequest) -> BoxFuture + Send>;

enum Recipients {
    All(Filter),
    One(SocketAddr),
}

enum Handler {
    Async(AsyncHandler),
    Later(Box<dyn FnMut(RpcRequest, Responder) + Send>),
    Now(NowHandler),
}

/// Commands from the handles to the server's driver.
enum Command {
    Clients {
        reply: Sender<Vec<(SocketAddr, PeerId)>>,
    },
    Close,
    OnMessage {
        target: Option<String>,
        sub: Subscriber,
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

/// The server driver's state.
struct ServerRole {
    ep: proto::Server,
    /// For responders; weak, so that the channel closes when every handle is gone.
    link: WeakSender<Command>,
    handlers: HashMap<FunctionId, Handler>,
    subscribers: Subscribers,
    fanouts: HashMap<u64, Fanout>,
    fanout_of: HashMap<MessageId, (u64, SocketAddr)>,
    next_fanout: u64,
}

impl ServerRole {
    fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::RpcRequest(req) => self.on_call(now, req),
            Event::Message(m) => {
                tracing::debug!(target = %m.target, name = %m.name, from = %m.from, "message");
                if self.subscribers.deliver(&m) {
                    // The last stream of this target is gone: stop taking it.
                    self.ep.unsubscribe(now, &m.target);
                }
            }
            Event::Delivered { id, acked, missing } => {
                self.outcome(id, Ok(Delivery { acked, missing }))
            }
            Event::Failed { id, reason } => self.outcome(id, Err(reason.into())),
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
            Some(Handler::Async(h)) => {
                let Some(responder) = responder(&self.link, call) else {
                    return;
                };
                match catch_unwind(AssertUnwindSafe(|| h(req))) {
                    Ok(fut) => smol::spawn(async move {
                        // On a panic the responder is dropped during unwinding and answers.
                        let result = fut.await;
                        responder.respond(result);
                    })
                    .detach(),
                    Err(_) => tracing::error!("async RPC handler panicked"),
                }
                return;
            }
            Some(Handler::Later(h)) => {
                let Some(responder) = responder(&self.link, call) else {
                    return;
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
}

/// A responder for `call`, or `None` when every handle is gone (the driver is closing).
fn responder(link: &WeakSender<Command>, call: CallHandle) -> Option<Responder> {
    Some(Responder {
        call,
        link: link.upgrade()?,
        answered: false,
    })
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

    fn on_command(&mut self, now: Instant, command: Command) -> bool {
        match command {
            Command::Clients { reply } => {
                let _ = reply.try_send(self.ep.clients().collect());
            }
            Command::Close => {
                self.ep.close(now);
                return false;
            }
            Command::OnMessage { target, sub } => {
                if let Some(t) = &target {
                    self.ep.subscribe(now, t);
                }
                self.subscribers.add(target, sub);
            }
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

    fn close(&mut self, now: Instant) {
        self.ep.close(now);
    }
}
