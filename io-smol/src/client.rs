//! The async client: [`Client::connect`], then calls, messages and server queries.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use async_channel::Sender;
use async_io::{Async, Timer};
use bytes::Bytes;
use futures_lite::future;
use pavillion_proto::crypto::ecc::{self, KeyPair, PublicKey};
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::{
    self as proto, CallId, ClientCredentials, Event, Limits, Reliability, SendOptions, Transmit,
};
use pavillion_proto::features::status::{Battery, NetworkStatus, Status};
use pavillion_proto::features::timesync::ClockEstimate;
use pavillion_proto::{ClientId, FunctionId, Instant, MessageId};

use crate::driver::{self, oneshot, Clock, Role};
use crate::error::{CallError, OpenError, SendError, ServerError};
use crate::{message_stream, Delivery, MessageStream, Subscriber, Subscribers};

/// Configuration of a [`Client`], with the reference client's defaults.
///
/// | setting | default |
/// |---|---|
/// | local address | `0.0.0.0:0` (or `[::]:0` for an IPv6 server) |
/// | call timeout | 2 s |
/// | reliable message timeout | 5 s |
/// | keepalive | 30 s |
/// | time sync | off (ask with [`RemoteServer::sync_time`]) |
/// | message stream buffer | [`DEFAULT_MESSAGE_BUFFER`](crate::DEFAULT_MESSAGE_BUFFER) |
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use pavillion_proto::crypto::Psk;
/// use pavillion_proto::ClientId;
/// use pavillion_smol::ClientConfig;
///
/// let config = ClientConfig::psk(ClientId(*b"cid2cid2cid2cid2"), Psk::from_bytes([7; 32]))
///     .call_timeout(Duration::from_secs(1))
///     .message_buffer(16);
/// assert_eq!(config.client_id().0, *b"cid2cid2cid2cid2");
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
    message_buffer: usize,
}

impl ClientConfig {
    /// A suite 1 (PSK) client with id `client_id`.
    pub fn psk(client_id: ClientId, psk: Psk) -> Self {
        Self::with_credentials(client_id, ClientCredentials::Psk(psk))
    }

    /// A suite 2 (ECC) client with id `client_id`, our key pair and the server's public key.
    pub fn ecc(client_id: ClientId, keys: KeyPair, server: PublicKey) -> Self {
        Self::with_credentials(client_id, ClientCredentials::Ecc { keys, server })
    }

    /// A suite 2 client whose id derives from its public key, as the reference's keypair
    /// clients (and guests) do.
    pub fn guest(keys: KeyPair, server: PublicKey) -> Self {
        let id = ecc::default_client_id(keys.public());
        Self::ecc(id, keys, server)
    }

    /// A suite 3 (Noise `IK`) client with id `client_id`, our static key pair and the
    /// server's public key.
    pub fn noise_ik(client_id: ClientId, keys: KeyPair, server: PublicKey) -> Self {
        let credentials = ClientCredentials::Noise {
            keys: Some(keys),
            server: Some(server),
            psk: None,
        };
        Self::with_credentials(client_id, credentials)
    }

    /// A client with any credentials the endpoint supports (suite 3 `IKpsk2` and `NNpsk0`
    /// too); the other constructors are shorthands for this.
    pub fn with_credentials(client_id: ClientId, credentials: ClientCredentials) -> Self {
        ClientConfig {
            client_id,
            credentials,
            bind: None,
            call_timeout: Duration::from_secs(2),
            send_timeout: Duration::from_secs(5),
            keepalive: Some(Duration::from_secs(30)),
            time_sync: None,
            limits: Limits::default(),
            message_buffer: crate::DEFAULT_MESSAGE_BUFFER,
        }
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

    /// Asks the server for its clock this often (opcode 20), or only on demand with `None`.
    pub fn time_sync(mut self, interval: Option<Duration>) -> Self {
        self.time_sync = interval;
        self
    }

    /// Replaces the endpoint's capacities and timers.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets how many unread messages each [`MessageStream`] holds before it drops new ones
    /// (at least 1).
    pub fn message_buffer(mut self, messages: usize) -> Self {
        self.message_buffer = messages.max(1);
        self
    }

    /// The client id the server will see.
    pub fn client_id(&self) -> ClientId {
        self.client_id
    }

    fn endpoint_config(&self, server: SocketAddr, seed: [u8; 32]) -> proto::ClientConfig {
        let mut c = proto::ClientConfig::with_credentials(
            self.client_id,
            self.credentials.clone(),
            server,
            seed,
        );
        c.limits = self.limits.clone();
        c.limits.default_timeout = self.send_timeout;
        c.call_timeout = self.call_timeout;
        c.keepalive = self.keepalive;
        c.time_sync = self.time_sync;
        c
    }
}

/// A Pavillion client on its own socket and driver task.
///
/// Every method may be called from any task or thread; the handle is `Send + Sync`. Dropping
/// the client (or [`Client::close`]) sends quit to the server and fails whatever is still
/// pending with `Closed`. Dropping a pending `call` or `send_message` future stops waiting
/// for it but does not cancel it: the endpoint still retries it until its deadline.
///
/// # Examples
/// ```no_run
/// use futures_lite::StreamExt;
/// use pavillion_proto::crypto::Psk;
/// use pavillion_proto::ClientId;
/// use pavillion_smol::{Client, ClientConfig, Reliability};
///
/// smol::block_on(async {
///     let config = ClientConfig::psk(ClientId([1; 16]), Psk::from_bytes([7; 32]));
///     let client = Client::connect("127.0.0.1:1783", config).await?;
///     let answer = client.call(0, b"hello").await?;
///     assert_eq!(&answer[..], b"hello");
///     let mut alerts = client.on_message(Some("alerts"));
///     let delivery = client
///         .send_message("kitchen", "temp", b"21.5", Reliability::Reliable)
///         .await?;
///     println!("acknowledged by {:?}", delivery.acked);
///     if let Some(m) = alerts.next().await {
///         println!("{}: {:?}", m.name, m.payload);
///     }
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    link: Sender<Command>,
    task: Option<smol::Task<()>>,
    clock: Clock,
    local: SocketAddr,
    server: SocketAddr,
    call_timeout: Duration,
    send_timeout: Duration,
    message_buffer: usize,
}

impl Client {
    /// Opens a socket and starts a client talking to the server at `addr`. The handshake
    /// starts at once; calls and messages made before it finishes wait for it.
    ///
    /// # Errors
    /// [`OpenError::Address`] if `addr` resolves to nothing, [`OpenError::Io`] if the socket
    /// cannot be opened.
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(config: pavillion_smol::ClientConfig) -> Result<(), pavillion_smol::OpenError> {
    /// let client = pavillion_smol::Client::connect(("::1", 1783), config).await?;
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn connect(
        addr: impl smol::net::AsyncToSocketAddrs,
        config: ClientConfig,
    ) -> Result<Client, OpenError> {
        let server = crate::resolve(addr).await?;
        let bind = config.bind.unwrap_or(match server.ip() {
            IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
        });
        let socket = Async::<UdpSocket>::bind(bind)?;
        let local = socket.get_ref().local_addr()?;
        let clock = Clock::new();
        let endpoint = proto::Client::new(config.endpoint_config(server, crate::random32()));
        tracing::info!(%local, %server, "client started");
        let (link, commands) = async_channel::unbounded();
        let role = ClientRole {
            ep: endpoint,
            calls: HashMap::new(),
            sends: HashMap::new(),
            subscribers: Subscribers::default(),
            connect_waiters: Vec::new(),
            clock_waiters: Vec::new(),
        };
        let task = driver::spawn(role, socket, commands, clock);
        Ok(Client {
            link,
            task: Some(task),
            clock,
            local,
            server,
            call_timeout: config.call_timeout,
            send_timeout: config.send_timeout,
            message_buffer: config.message_buffer,
        })
    }

    /// Calls `function` with `args` and waits for the answer, up to the configured call
    /// timeout (2 s by default). The endpoint decides when the deadline has passed.
    ///
    /// A retry reuses the call's counter, so a pavillion-rs server runs the function once.
    ///
    /// # Errors
    /// [`CallError::Remote`] for a non-zero status, [`CallError::TimedOut`] when no answer
    /// came in time (a server that is down), and the other [`CallError`] variants.
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) -> Result<(), pavillion_smol::CallError> {
    /// let echoed = client.call(0, b"ping").await?;
    /// assert_eq!(&echoed[..], b"ping");
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn call(&self, function: u16, args: &[u8]) -> Result<Bytes, CallError> {
        self.call_with_timeout(function, args, self.call_timeout)
            .await
    }

    /// As [`Client::call`], with its own deadline.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_with_timeout(
        &self,
        function: u16,
        args: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let (reply, rx) = oneshot();
        let command = Command::Call {
            function: FunctionId(function),
            args: Bytes::copy_from_slice(args),
            timeout,
            reply,
        };
        self.link.try_send(command).map_err(|_| CallError::Closed)?;
        rx.recv().await.unwrap_or(Err(CallError::Closed))
    }

    /// Sends a message to `target`/`name`. A reliable message resolves once the server
    /// acknowledged it, or with an error at the send timeout (5 s by default); an unreliable
    /// one resolves as soon as it is queued, with an empty [`Delivery`].
    ///
    /// # Errors
    /// [`SendError::TimedOut`] when nobody acknowledged it, [`SendError::Refused`] for a
    /// message the endpoint cannot send, and the other [`SendError`] variants.
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) -> Result<(), pavillion_smol::SendError> {
    /// use pavillion_smol::Reliability;
    /// client.send_message("kitchen", "temp", b"21.5", Reliability::Reliable).await?;
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
    ) -> Result<Delivery, SendError> {
        let options = match reliability {
            Reliability::Unreliable => SendOptions::unreliable(),
            _ => SendOptions::reliable().with_timeout(self.send_timeout),
        };
        self.send_message_with(target, name, data, options).await
    }

    /// As [`Client::send_message`], with explicit options (a per-message timeout).
    ///
    /// # Errors
    /// As [`Client::send_message`].
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) -> Result<(), pavillion_smol::SendError> {
    /// use pavillion_smol::SendOptions;
    /// let options = SendOptions::reliable().with_timeout(std::time::Duration::from_secs(1));
    /// client.send_message_with("kitchen", "temp", b"21.5", options).await?;
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn send_message_with(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        options: SendOptions,
    ) -> Result<Delivery, SendError> {
        let (reply, rx) = oneshot();
        let command = Command::Send {
            target: target.into(),
            name: name.into(),
            data: Bytes::copy_from_slice(data),
            options,
            reply,
        };
        self.link.try_send(command).map_err(|_| SendError::Closed)?;
        rx.recv().await.unwrap_or(Err(SendError::Closed))
    }

    /// The messages servers send to `target`, or every message with `None`, as a stream.
    /// See [`MessageStream`] for what happens when it is not read fast enough.
    ///
    /// # Examples
    /// ```no_run
    /// use futures_lite::StreamExt;
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) {
    /// let mut alerts = client.on_message(Some("alerts"));
    /// let first = alerts.next().await;
    /// # }
    /// # });
    /// ```
    pub fn on_message(&self, target: Option<&str>) -> MessageStream {
        let (sub, stream) = message_stream(self.message_buffer);
        // A closed client delivers nothing: the stream ends at once.
        let _ = self.link.try_send(Command::OnMessage {
            target: target.map(String::from),
            sub,
        });
        stream
    }

    /// The same as [`Client::on_message`].
    pub fn messages(&self, target: Option<&str>) -> MessageStream {
        self.on_message(target)
    }

    /// Waits until a session with a server is up, and returns the server's address.
    ///
    /// # Errors
    /// [`ServerError::TimedOut`] if none came up within `timeout`, [`ServerError::Closed`]
    /// after the client closed.
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) -> Result<(), pavillion_smol::ServerError> {
    /// let addr = client.wait_connected(std::time::Duration::from_secs(2)).await?;
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn wait_connected(&self, timeout: Duration) -> Result<SocketAddr, ServerError> {
        let (reply, rx) = oneshot();
        self.link
            .try_send(Command::WaitConnected { reply })
            .map_err(|_| ServerError::Closed)?;
        // The endpoint has no deadline for "some session is up"; this wait is the caller's.
        future::or(
            async { rx.recv().await.map_err(|_| ServerError::Closed) },
            async {
                Timer::after(timeout).await;
                Err(ServerError::TimedOut)
            },
        )
        .await
    }

    /// The servers we hold sessions with.
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) {
    /// for server in client.servers().await {
    ///     println!("{}: {:?}", server.addr(), server.state().await);
    /// }
    /// # }
    /// # });
    /// ```
    pub async fn servers(&self) -> Vec<RemoteServer> {
        let (reply, rx) = oneshot();
        if self.link.try_send(Command::Servers { reply }).is_err() {
            return Vec::new();
        }
        rx.recv()
            .await
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

    /// Sends quit to the server, fails what is pending with `Closed` and waits for the driver
    /// task to end (the socket is closed when this returns).
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) {
    /// client.close().await;
    /// # }
    /// # });
    /// ```
    pub async fn close(mut self) {
        let _ = self.link.try_send(Command::Close);
        if let Some(task) = self.task.take() {
            task.await;
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = self.link.try_send(Command::Close);
            // Dropping a smol task cancels it; detached, it finishes the close by itself.
            task.detach();
        }
    }
}

/// A server the client talks to: its clock and its status, as the reference's
/// `RemoteServerInterface` offers them.
///
/// Each method asks the client's driver for the current state, so the answers stay live.
///
/// # Examples
/// ```no_run
/// # smol::block_on(async {
/// # async fn example(client: pavillion_smol::Client) -> Result<(), pavillion_smol::ServerError> {
/// use std::time::Duration;
/// let addr = client.wait_connected(Duration::from_secs(2)).await?;
/// let server = client.server(addr);
/// server.sync_time(Duration::from_secs(2)).await?;
/// println!("server clock: {}", server.remote_now().await?);
/// # Ok(())
/// # }
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct RemoteServer {
    addr: SocketAddr,
    link: Sender<Command>,
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
    pub async fn state(&self) -> Result<ServerState, ServerError> {
        let (reply, rx) = oneshot();
        self.link
            .try_send(Command::Server {
                addr: self.addr,
                reply,
            })
            .map_err(|_| ServerError::Closed)?;
        match rx.recv().await {
            Ok(Some(s)) if s.up => Ok(s),
            Ok(_) => Err(ServerError::NotConnected),
            Err(_) => Err(ServerError::Closed),
        }
    }

    /// The server's monotonic clock now, in its own time base.
    ///
    /// # Errors
    /// [`ServerError::NoClock`] before a time sync was answered; as [`RemoteServer::state`].
    pub async fn remote_now(&self) -> Result<Instant, ServerError> {
        let estimate = self.clock().await?;
        Ok(estimate.to_remote(self.clock.now()))
    }

    /// The server's clock reading at local instant `local`.
    ///
    /// # Errors
    /// As [`RemoteServer::remote_now`].
    pub async fn to_remote(&self, local: std::time::Instant) -> Result<Instant, ServerError> {
        let estimate = self.clock().await?;
        Ok(estimate.to_remote(self.clock.from_std(local)))
    }

    /// The local instant at which the server's clock reads `remote`.
    ///
    /// # Errors
    /// As [`RemoteServer::remote_now`], and [`ServerError::OutOfRange`] for an instant the
    /// local clock cannot represent.
    pub async fn to_local(&self, remote: Instant) -> Result<std::time::Instant, ServerError> {
        let local = self.clock().await?.to_local(remote);
        self.clock.to_std(local).ok_or(ServerError::OutOfRange)
    }

    /// The estimate of the server's clock: offset and the round trip that bounds its error.
    ///
    /// # Errors
    /// As [`RemoteServer::remote_now`].
    pub async fn clock(&self) -> Result<ClockEstimate, ServerError> {
        self.state().await?.clock.ok_or(ServerError::NoClock)
    }

    /// Asks the server for its clock and waits for the answer (the endpoint's
    /// `ClockUpdated` event).
    ///
    /// # Errors
    /// [`ServerError::TimedOut`] without an answer within `timeout`; as
    /// [`RemoteServer::state`].
    pub async fn sync_time(&self, timeout: Duration) -> Result<ClockEstimate, ServerError> {
        let (reply, rx) = oneshot();
        self.link
            .try_send(Command::SyncTime {
                addr: self.addr,
                reply,
            })
            .map_err(|_| ServerError::Closed)?;
        // A time request has no outcome event when unanswered; this wait is the caller's.
        future::or(
            async { rx.recv().await.unwrap_or(Err(ServerError::Closed)) },
            async {
                Timer::after(timeout).await;
                Err(ServerError::TimedOut)
            },
        )
        .await
    }

    /// The last reported status bytes, decoded.
    ///
    /// # Errors
    /// [`ServerError::NoStatus`] if the server sends none; as [`RemoteServer::state`].
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(server: pavillion_smol::RemoteServer) -> Result<(), pavillion_smol::ServerError> {
    /// let status = server.status().await?;
    /// println!("battery {:?}, {} °C", status.battery, status.temperature);
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn status(&self) -> Result<Status, ServerError> {
        self.state().await?.status.ok_or(ServerError::NoStatus)
    }

    /// The battery level and state.
    ///
    /// # Errors
    /// As [`RemoteServer::status`].
    pub async fn battery(&self) -> Result<Battery, ServerError> {
        Ok(self.status().await?.battery)
    }

    /// The signal strength in dBm of a wireless link, `None` for a wired or unknown one.
    ///
    /// # Errors
    /// As [`RemoteServer::status`].
    pub async fn rssi(&self) -> Result<Option<i16>, ServerError> {
        Ok(match self.status().await?.network {
            NetworkStatus::Wlan { rssi } | NetworkStatus::Wwan { rssi } => Some(rssi),
            _ => None,
        })
    }

    /// The temperature in °C.
    ///
    /// # Errors
    /// As [`RemoteServer::status`].
    pub async fn temperature(&self) -> Result<i8, ServerError> {
        Ok(self.status().await?.temperature)
    }
}

type Reply<T> = Sender<T>;

/// Commands from the handles to the client's driver.
enum Command {
    Call {
        function: FunctionId,
        args: Bytes,
        timeout: Duration,
        reply: Reply<Result<Bytes, CallError>>,
    },
    Close,
    OnMessage {
        target: Option<String>,
        sub: Subscriber,
    },
    Send {
        target: String,
        name: String,
        data: Bytes,
        options: SendOptions,
        reply: Reply<Result<Delivery, SendError>>,
    },
    Server {
        addr: SocketAddr,
        reply: Reply<Option<ServerState>>,
    },
    Servers {
        reply: Reply<Vec<SocketAddr>>,
    },
    SyncTime {
        addr: SocketAddr,
        reply: Reply<Result<ClockEstimate, ServerError>>,
    },
    WaitConnected {
        reply: Reply<SocketAddr>,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// The client driver's state: the endpoint and who waits for what.
struct ClientRole {
    ep: proto::Client,
    calls: HashMap<CallId, Reply<Result<Bytes, CallError>>>,
    sends: HashMap<MessageId, Reply<Result<Delivery, SendError>>>,
    subscribers: Subscribers,
    connect_waiters: Vec<Reply<SocketAddr>>,
    clock_waiters: Vec<(SocketAddr, Reply<Result<ClockEstimate, ServerError>>)>,
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
            Event::CallFailed { call, reason } => self.answer(call, Err(reason.into())),
            Event::ClockUpdated { addr } => {
                let estimate = self.state(addr).and_then(|s| s.clock);
                self.clock_waiters.retain(|(a, reply)| {
                    if *a != addr {
                        return !reply.is_closed();
                    }
                    let _ = reply.try_send(estimate.ok_or(ServerError::NoClock));
                    false
                });
            }
            Event::Delivered { id, acked, missing } => {
                self.deliver(id, Ok(Delivery { acked, missing }))
            }
            Event::Failed { id, reason } => self.deliver(id, Err(reason.into())),
            Event::TimedOut { id } => self.deliver(id, Err(SendError::TimedOut)),
            Event::Message(m) => {
                tracing::debug!(target = %m.target, name = %m.name, from = %m.from, "message");
                self.subscribers.deliver(&m);
            }
            Event::Connected { addr, .. } => {
                tracing::info!(%addr, "connected");
                for w in self.connect_waiters.drain(..) {
                    let _ = w.try_send(addr);
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
        self.ep.poll_timeout()
    }

    fn on_command(&mut self, now: Instant, command: Command) -> bool {
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
            Command::OnMessage { target, sub } => self.subscribers.add(target, sub),
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
            Command::SyncTime { addr, reply } => {
                let up = self.state(addr).is_some_and(|s| s.up);
                if up && self.ep.sync_time(now).is_ok() {
                    // Waiters that gave up (their timeout passed) are forgotten here.
                    self.clock_waiters.retain(|(_, r)| !r.is_closed());
                    self.clock_waiters.push((addr, reply));
                } else {
                    let _ = reply.try_send(Err(ServerError::NotConnected));
                }
            }
            Command::WaitConnected { reply } => match self.ep.servers().next() {
                Some(addr) => {
                    let _ = reply.try_send(addr);
                }
                None => {
                    self.connect_waiters.retain(|r| !r.is_closed());
                    self.connect_waiters.push(reply);
                }
            },
        }
        true
    }

    fn dispatch(&mut self, _now: Instant) {
        while let Some(event) = self.ep.poll_event() {
            self.on_event(event);
        }
    }

    fn close(&mut self, now: Instant) {
        self.ep.close(now);
    }
}
