//! The async server: [`Server::bind`], RPC handlers, message streams and sends.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use pavillion_io::metrics::{MetricsServer, MetricsSnapshot};
use pavillion_io::plumbing::progress::FanoutProgress;
use pavillion_io::plumbing::server::{self, closed, Handler, Recipients, ServerHandle};
use pavillion_io::plumbing::window::SendHandle;
use pavillion_io::{Delivery, OpenError, Outcome, Responder, RpcFailure, SendError, ServerConfig};
use pavillion_proto::endpoint::{Reliability, RpcRequest, Stats};
use pavillion_proto::features::status::Status;
use pavillion_proto::PeerId;

use crate::handoff::{handoff_stream, HandoffStream};
use crate::{connection_stream, driver, message_stream, ConnectionStream, MessageStream};

/// A Pavillion server on its own socket (two with a reply socket) and driver task.
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
///         println!("{} = {:?}", m.name(), m.payload());
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
    pub(crate) handle: ServerHandle,
    task: Option<smol::Task<()>>,
}

impl Server {
    /// Binds `addr` (port 1783 is the protocol's default) and starts serving. A multicast
    /// group address (say `239.255.28.12:1783`) receives what is sent to the group, and the
    /// server then answers from a reply socket (see [`ServerConfig`]).
    ///
    /// # Errors
    /// [`OpenError::Io`] if a socket cannot be bound or the group joined,
    /// [`OpenError::Address`] if `addr` resolves to nothing, [`OpenError::Durable`] if the
    /// configured durable store cannot be opened or restored.
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
        let parts = if config.durable_path().is_some() {
            // Opening a durable store reads the whole file: on the blocking pool, not here.
            smol::unblock(move || server::open(addr, &config)).await?
        } else {
            server::open(addr, &config)?
        };
        let (handle, task) = driver::start(parts)?;
        Ok(Server {
            handle,
            task: Some(task),
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
    pub fn register<R, F>(&self, function: u16, name: &str, handler: F)
    where
        R: Into<Bytes>,
        F: FnMut(&RpcRequest) -> Result<R, RpcFailure> + Send + 'static,
    {
        self.handle.register(function, name, Handler::now(handler));
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
        // A deferred handler whose responder moves into the task: if the future panics, the
        // responder is dropped while unwinding and answers by itself.
        let handler = Handler::later(move |req, responder| {
            let fut = handler(req);
            smol::spawn(async move { responder.respond(fut.await) }).detach();
        });
        self.handle.register(function, name, handler);
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
        self.handle
            .register(function, name, Handler::later(handler));
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
        self.handle.unregister(function);
    }

    /// The messages clients send to `target` (announcing to clients that we take that
    /// target), or every message with `None`, as a stream. See [`MessageStream`] for what
    /// happens when it is not read fast enough.
    pub fn on_message(&self, target: Option<&str>) -> MessageStream {
        let (sub, stream) = message_stream(self.handle.message_buffer());
        self.handle.on_message(target, Box::new(sub));
        stream
    }

    /// Like [`Server::on_message`], but the ACK of a reliable message to `target` (every
    /// target with `None`) waits until its [`Handoff`](crate::Handoff) is completed
    /// (`docs/PROTOCOL.md` §18): the client's send resolves only then, and a token refused
    /// or dropped makes the client send the message again. Unreliable messages have no ACK
    /// to hold: they go to [`Server::on_message`] streams as before.
    ///
    /// One stream per target; a later one replaces it. Held messages go only to it.
    pub fn on_message_handoff(&self, target: Option<&str>) -> HandoffStream {
        let (sub, stream) = handoff_stream(self.handle.message_buffer());
        self.handle.on_message_handoff(target, Box::new(sub));
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
        let pending = self.handle.send(target, name, data, reliability, to)?;
        pending.outcome().await
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
        let pending = self.handle.send(target, name, data, reliability, to)?;
        Outcome::only(pending.outcome().await?)
    }

    /// As [`Server::send_to`], reporting progress: a message larger than a datagram (up to
    /// [`ServerConfig::max_message`], 1 MiB by default) is sent in segments, and
    /// `progress(acked, total)` runs on the driver task each time the client acknowledged
    /// more of its bytes, the last time with `acked == total`. A message that fits one
    /// datagram reports nothing. The callback must not block.
    ///
    /// # Errors
    /// As [`Server::send_to`]; [`SendError::RefusedByReceiver`] when the client refused the
    /// message.
    pub async fn send_to_with_progress(
        &self,
        client: SocketAddr,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
        mut progress: impl FnMut(u64, u64) + Send + 'static,
    ) -> Result<Delivery, SendError> {
        let to = Recipients::One(client);
        let progress = FanoutProgress::new(move |_, acked, total| progress(acked, total));
        let pending =
            self.handle
                .send_with_progress(target, name, data, reliability, to, Some(progress))?;
        Outcome::only(pending.outcome().await?)
    }

    /// Queues a message to the client at `client` and returns its [`SendHandle`] at once,
    /// without waiting for the acknowledgement; awaits only room in the server's send window
    /// ([`ServerConfig::send_window`], 1024 by default, shared by every client). The handle
    /// is a future of the outcome, as [`Server::send_to`] would return it; a dropped handle
    /// does not cancel the message. [`Server::flush`] waits for every outcome. Memory stays
    /// bounded by the window even when a client is gone: its messages fail or time out (the
    /// send timeout) and free their places.
    ///
    /// # Errors
    /// [`SendError::Closed`] once the server is closed. A message the endpoint refuses (no
    /// session at `client`, too large) is reported through its handle.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example(server: pavillion_smol::Server) -> Result<(), pavillion_smol::SendError> {
    /// use std::time::Duration;
    /// use pavillion_smol::Reliability;
    ///
    /// let mut handles = Vec::new();
    /// for (addr, _) in server.clients().await {
    ///     handles.push(server.send_pipelined_to(addr, "sensors", "reading", b"1", Reliability::Reliable).await?);
    /// }
    /// server.flush(Duration::from_secs(10)).await?;
    /// for h in handles {
    ///     h.await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_pipelined_to(
        &self,
        client: SocketAddr,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
    ) -> Result<SendHandle, SendError> {
        let slot = self.handle.window().acquire_async().await;
        self.handle
            .send_pipelined_to(slot, client, target, name, data, reliability)
    }

    /// As [`Server::send_pipelined_to`], but a full send window is [`SendError::WouldBlock`]
    /// at once instead of a wait.
    ///
    /// # Errors
    /// [`SendError::WouldBlock`]; as [`Server::send_pipelined_to`].
    pub fn try_send_pipelined_to(
        &self,
        client: SocketAddr,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
    ) -> Result<SendHandle, SendError> {
        let slot = self
            .handle
            .window()
            .try_acquire()
            .ok_or(SendError::WouldBlock)?;
        self.handle
            .send_pipelined_to(slot, client, target, name, data, reliability)
    }

    /// Resolves once every pipelined message sent so far has its outcome, or with
    /// [`SendError::TimedOut`] after `timeout`. The outcomes themselves are in their handles.
    ///
    /// # Errors
    /// [`SendError::TimedOut`].
    pub async fn flush(&self, timeout: std::time::Duration) -> Result<(), SendError> {
        let idle = async {
            self.handle.window().idle().await;
            Ok(())
        };
        let late = async {
            async_io::Timer::after(timeout).await;
            Err(SendError::TimedOut)
        };
        futures_lite::future::or(idle, late).await
    }

    /// The connected clients: address and identity.
    pub async fn clients(&self) -> Vec<(SocketAddr, PeerId)> {
        match self.handle.clients() {
            Some(pending) => pending.await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// The clients subscribed to `target` (with [`Client::subscribe`](crate::Client::subscribe)):
    /// whom a broker forwards that target's messages to (`docs/PROTOCOL.md` §9.6).
    pub async fn client_subscribers(&self, target: &str) -> Vec<(SocketAddr, PeerId)> {
        match self.handle.client_subscribers(target) {
            Some(pending) => pending.await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// The connection events about clients ([`ConnectionEvent`](crate::ConnectionEvent)):
    /// a session came up (with the client's identity) or ended, a client went silent for the
    /// down timeout or was heard again. The stream starts with a `Connected` for each session
    /// already up. See [`ConnectionStream`].
    ///
    /// # Examples
    /// ```no_run
    /// use futures_lite::StreamExt;
    /// use pavillion_smol::ConnectionEvent;
    /// # smol::block_on(async {
    /// # async fn example(server: pavillion_smol::Server) {
    /// let mut events = server.on_connection();
    /// while let Some(event) = events.next().await {
    ///     if let ConnectionEvent::Connected { addr, peer } = event {
    ///         println!("{peer:?} connected from {addr}");
    ///     }
    /// }
    /// # }
    /// # });
    /// ```
    pub fn on_connection(&self) -> ConnectionStream {
        let (sub, stream) = connection_stream(self.handle.message_buffer());
        self.handle.on_connection(Box::new(sub));
        stream
    }

    /// A snapshot of the endpoint's counters: datagrams, handshakes, retransmissions, and
    /// datagrams dropped by reason ([`Stats::dropped`], [`Stats::drops`]): garbage, forgeries
    /// and floods show up here. `None` once the server is closed.
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(server: pavillion_smol::Server) {
    /// if let Some(stats) = server.stats().await {
    ///     for (reason, count) in stats.drops().filter(|(_, n)| *n > 0) {
    ///         println!("{reason}: {count}");
    ///     }
    /// }
    /// # }
    /// # });
    /// ```
    pub async fn stats(&self) -> Option<Stats> {
        self.handle.stats()?.await.ok()
    }

    /// A metrics snapshot: the counters of [`Server::stats`], the sessions up and the
    /// round-trip histogram, as [`MetricsServer`] serves them; `None` once closed.
    pub async fn metrics(&self) -> Option<MetricsSnapshot> {
        self.handle.metrics()?.await.ok()
    }

    /// Serves this server's metrics in the Prometheus text format at `http://ADDR/metrics`
    /// (`docs/METRICS.md`) until the returned server is dropped. The exporter runs on a
    /// thread of its own and asks the driver task for a snapshot per scrape, so a scrape
    /// never blocks the executor. Bind it to loopback or a management address.
    ///
    /// # Errors
    /// The listener's error (the port is taken, the address is not ours).
    pub fn serve_metrics(&self, addr: SocketAddr) -> io::Result<MetricsServer> {
        MetricsServer::bind(addr, self.handle.metrics_source(crate::METRICS_WAIT))
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
        self.handle.set_status(status);
    }

    /// Joins multicast group `group` on the listening socket.
    ///
    /// # Errors
    /// The socket's error, or `NotConnected` if the server is closed.
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(server: pavillion_smol::Server) -> std::io::Result<()> {
    /// server.join_multicast("239.255.28.12".parse().unwrap()).await?;
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn join_multicast(&self, group: IpAddr) -> io::Result<()> {
        self.membership(group, true).await
    }

    /// Leaves multicast group `group`.
    ///
    /// # Errors
    /// As [`Server::join_multicast`].
    pub async fn leave_multicast(&self, group: IpAddr) -> io::Result<()> {
        self.membership(group, false).await
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// The address of the reply socket everything is sent from, if the server has one.
    pub fn reply_addr(&self) -> Option<SocketAddr> {
        self.handle.reply_addr()
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
        self.handle.close();
        if let Some(task) = self.task.take() {
            task.await;
        }
    }

    async fn membership(&self, group: IpAddr, join: bool) -> io::Result<()> {
        let pending = self.handle.membership(group, join)?;
        pending.await.map_err(|_| closed())?
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.handle.close();
            // Dropping a smol task cancels it; detached, it finishes the close by itself.
            task.detach();
        }
    }
}
