//! The async client: [`Client::connect`], then calls, messages and server queries.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use pavillion_io::metrics::{MetricsServer, MetricsSnapshot};
use pavillion_io::plumbing::client::{self, ClientHandle, RemoteHandle};
use pavillion_io::plumbing::progress::Progress;
use pavillion_io::plumbing::window::SendHandle;
use pavillion_io::{
    CallError, ClientConfig, Delivery, OpenError, SendError, ServerError, ServerState,
};
use pavillion_proto::endpoint::{Reliability, SendOptions, Stats};
use pavillion_proto::features::status::{Battery, Status};
use pavillion_proto::features::timesync::ClockEstimate;
use pavillion_proto::Instant;

use crate::handoff::{handoff_stream, HandoffStream};
use crate::{connection_stream, driver, message_stream, ConnectionStream, MessageStream};

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
///         println!("{}: {:?}", m.name(), m.payload());
///     }
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    pub(crate) handle: ClientHandle,
    task: Option<smol::Task<()>>,
}

impl Client {
    /// Opens a socket and starts a client talking to the server at `addr` (a unicast address,
    /// a multicast group or a broadcast address). The handshake starts at once; calls and
    /// messages made before it finishes wait for it. With a multicast group, the client also
    /// joins the group to hear servers that start later announce themselves.
    ///
    /// # Errors
    /// [`OpenError::Address`] if `addr` resolves to nothing, [`OpenError::Io`] if the socket
    /// cannot be opened, [`OpenError::Durable`] if the configured durable store cannot be
    /// opened or restored (corrupt, truncated, in use, another identity's).
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
        let parts = if config.durable_path().is_some() {
            // Opening a durable store reads the whole file: on the blocking pool, not here.
            smol::unblock(move || client::open(server, &config)).await?
        } else {
            client::open(server, &config)?
        };
        let (handle, task) = driver::start(parts)?;
        Ok(Client {
            handle,
            task: Some(task),
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
        let timeout = self.handle.call_timeout();
        self.call_with_timeout(function, args, timeout).await
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
        self.handle.call(function, args, timeout)?.outcome().await
    }

    /// Sends a message to `target`/`name`. A reliable message resolves once the server
    /// acknowledged it, or with an error at the send timeout (5 s by default); an unreliable
    /// one resolves as soon as it is queued, with an empty [`Delivery`].
    /// [`Reliability::Ordered`] is reliable too, and the server's application gets the ordered
    /// messages of one target in send order, once each, even with many in flight at once
    /// (`docs/PROTOCOL.md` §3.3).
    ///
    /// A reliable message larger than a datagram, up to [`ClientConfig::max_message`] (1 MiB
    /// by default), is sent in segments and arrives whole; [`Client::send_with_progress`]
    /// reports how far it got.
    ///
    /// # Errors
    /// [`SendError::TimedOut`] when nobody acknowledged it, [`SendError::Refused`] for a
    /// message the endpoint cannot send (an unreliable one larger than a datagram, a reliable
    /// one larger than `max_message`), [`SendError::RefusedByReceiver`] for one the server
    /// would not take, and the other [`SendError`] variants.
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
        let options = self.handle.options(reliability);
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
        let pending = self.handle.send_message(target, name, data, options)?;
        pending.outcome().await
    }

    /// Queues a message and returns its [`SendHandle`] without waiting for the
    /// acknowledgement; awaits only room in the send window ([`ClientConfig::send_window`],
    /// 1024 by default): the outcomes of earlier pipelined messages, which free a batch of it
    /// (a sixteenth, at most 64). Many messages are then in flight at once, and the endpoint
    /// may carry several in one datagram.
    ///
    /// The handle is a future of the outcome, as [`Client::send_message`] would give it;
    /// outcomes arrive in any order. A dropped handle does not cancel the message, and its
    /// window slot is freed when the outcome is known. [`Client::flush`] waits for every
    /// outcome. Memory stays bounded by the window even when the server is gone: a full
    /// window holds the sender until the oldest messages time out (the send timeout, 5 s by
    /// default).
    ///
    /// # Errors
    /// [`SendError::Closed`] once the client is closed. A message the endpoint refuses (too
    /// large, a bad name) is reported through its handle.
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) -> Result<(), pavillion_smol::SendError> {
    /// use pavillion_smol::Reliability;
    /// let mut handles = Vec::new();
    /// for i in 0..1000u32 {
    ///     handles.push(client.send_pipelined("sensors", "reading", &i.to_le_bytes(), Reliability::Reliable).await?);
    /// }
    /// for h in handles {
    ///     h.await?;
    /// }
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn send_pipelined(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
    ) -> Result<SendHandle, SendError> {
        let slot = self.handle.window().acquire_async().await;
        let options = self.handle.options(reliability);
        self.handle
            .send_pipelined(slot, target, name, data, options)
    }

    /// As [`Client::send_pipelined`], but a full send window is [`SendError::WouldBlock`]
    /// at once instead of a wait.
    ///
    /// # Errors
    /// [`SendError::WouldBlock`]; as [`Client::send_pipelined`].
    pub fn try_send_pipelined(
        &self,
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
        let options = self.handle.options(reliability);
        self.handle
            .send_pipelined(slot, target, name, data, options)
    }

    /// Resolves once every pipelined message sent so far has its outcome (none holds a place
    /// in the send window), or with [`SendError::TimedOut`] after `timeout`. The outcomes
    /// themselves, failures included, are in their handles.
    ///
    /// # Errors
    /// [`SendError::TimedOut`].
    pub async fn flush(&self, timeout: Duration) -> Result<(), SendError> {
        let idle = async {
            self.handle.window().idle().await;
            Ok(())
        };
        let limit = async {
            async_io::Timer::after(timeout).await;
            Err(SendError::TimedOut)
        };
        futures_lite::future::or(idle, limit).await
    }

    /// As [`Client::send_message`], reporting progress: a message larger than a datagram
    /// (up to [`ClientConfig::max_message`], 1 MiB by default) is sent in segments, and
    /// `progress(acked, total)` runs on the driver task each time more of its bytes were
    /// acknowledged (by every expected server, for a group), the last time with
    /// `acked == total`. A message that fits one datagram reports nothing. The callback must
    /// not block (send the numbers on a channel to show them elsewhere).
    ///
    /// # Errors
    /// As [`Client::send_message`]; [`SendError::RefusedByReceiver`] when the server refused
    /// the message (larger than it accepts, or no room to reassemble it now).
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) -> Result<(), pavillion_smol::SendError> {
    /// use pavillion_smol::Reliability;
    /// let image = vec![0u8; 512 * 1024];
    /// let (tx, rx) = async_channel::unbounded();
    /// client
    ///     .send_with_progress("ota", "image", &image, Reliability::Reliable, move |acked, total| {
    ///         let _ = tx.try_send((acked, total));
    ///     })
    ///     .await?;
    /// # drop(rx);
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn send_with_progress(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
        progress: impl FnMut(u64, u64) + Send + 'static,
    ) -> Result<Delivery, SendError> {
        let options = self.handle.options(reliability);
        let progress = Some(Progress::new(progress));
        let pending = self
            .handle
            .send_message_with_progress(target, name, data, options, progress)?;
        pending.outcome().await
    }

    /// Subscribes to `target` at the server: a broker (`pav serve`) then forwards us the
    /// messages sent to it. The subscription is kept across reconnections and, for a client of
    /// a group, held by one live server at a time (`docs/PROTOCOL.md` §9.6). Resolves once the
    /// endpoint accepted it; delivery to the server is retried in the background.
    ///
    /// # Errors
    /// [`SendError::Refused`] for a target the endpoint cannot send (a newline, too long, too
    /// many targets), [`SendError::Closed`].
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) -> Result<(), pavillion_smol::SendError> {
    /// client.subscribe("kitchen").await?;
    /// let kitchen = client.on_message(Some("kitchen"));
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn subscribe(&self, target: &str) -> Result<(), SendError> {
        self.handle.subscribe(target, true)?.outcome().await
    }

    /// The server that holds our subscription to `target`: it acknowledged it. `None` while
    /// the subscription is still on its way (or was never made): [`Client::subscribe`] returns
    /// before the server has it, so a caller that must not miss the first forwarded message
    /// waits for this.
    pub async fn subscribed_at(&self, target: &str) -> Option<SocketAddr> {
        match self.handle.subscribed_at(target) {
            Some(pending) => pending.await.ok().flatten(),
            None => None,
        }
    }

    /// Withdraws a subscription made with [`Client::subscribe`].
    ///
    /// # Errors
    /// As [`Client::subscribe`].
    pub async fn unsubscribe(&self, target: &str) -> Result<(), SendError> {
        self.handle.subscribe(target, false)?.outcome().await
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
        let (sub, stream) = message_stream(self.handle.message_buffer());
        // A closed client delivers nothing: the stream ends at once.
        self.handle.on_message(target, Box::new(sub));
        stream
    }

    /// Like [`Client::on_message`], but the ACK of a reliable message from the server to
    /// `target` (every target with `None`) waits until its [`Handoff`](crate::Handoff) is
    /// completed (`docs/PROTOCOL.md` §18): the server's send resolves only then, and a token
    /// refused or dropped makes the server send the message again. Unreliable messages have
    /// no ACK to hold: they go to [`Client::on_message`] streams as before. The server sends
    /// us a target only if we [`subscribe`](Client::subscribe) to it there.
    ///
    /// One stream per target; a later one replaces it. Held messages go only to it. Across a
    /// new session with the server the server sends what it still holds again, so a message
    /// may come twice: at least once, never acknowledged and lost.
    pub fn on_message_handoff(&self, target: Option<&str>) -> HandoffStream {
        let (sub, stream) = handoff_stream(self.handle.message_buffer());
        // A closed client delivers nothing: the stream ends at once.
        self.handle.on_message_handoff(target, Box::new(sub));
        stream
    }

    /// The same as [`Client::on_message`].
    pub fn messages(&self, target: Option<&str>) -> MessageStream {
        self.on_message(target)
    }

    /// The connection events ([`ConnectionEvent`](crate::ConnectionEvent)): a session with
    /// a server came up or ended, a server went silent for the down timeout or was heard
    /// again, a server's status bytes changed. The stream starts with a `Connected` for each
    /// session already up. See [`ConnectionStream`].
    ///
    /// # Examples
    /// ```no_run
    /// use futures_lite::StreamExt;
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) {
    /// let mut events = client.on_connection();
    /// while let Some(event) = events.next().await {
    ///     println!("{} {event:?}", event.addr());
    /// }
    /// # }
    /// # });
    /// ```
    pub fn on_connection(&self) -> ConnectionStream {
        let (sub, stream) = connection_stream(self.handle.message_buffer());
        // A closed client delivers nothing: the stream ends at once.
        self.handle.on_connection(Box::new(sub));
        stream
    }

    /// A snapshot of the endpoint's counters: datagrams, handshakes, retransmissions, and
    /// datagrams dropped by reason ([`Stats::dropped`], [`Stats::drops`]). `None` once the
    /// client is closed.
    ///
    /// # Examples
    /// ```no_run
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) {
    /// if let Some(stats) = client.stats().await {
    ///     println!("{} retransmissions", stats.retransmissions);
    /// }
    /// # }
    /// # });
    /// ```
    pub async fn stats(&self) -> Option<Stats> {
        self.handle.stats()?.await.ok()
    }

    /// A metrics snapshot: the counters of [`Client::stats`], the sessions up and the
    /// round-trip histogram, as [`MetricsServer`] serves them; `None` once closed.
    pub async fn metrics(&self) -> Option<MetricsSnapshot> {
        self.handle.metrics()?.await.ok()
    }

    /// Serves this client's metrics in the Prometheus text format at `http://ADDR/metrics`
    /// (`docs/METRICS.md`) until the returned server is dropped. The exporter runs on a
    /// thread of its own and asks the driver task for a snapshot per scrape, so a scrape
    /// never blocks the executor. Bind it to loopback or a management address.
    ///
    /// # Errors
    /// The listener's error (the port is taken, the address is not ours).
    pub fn serve_metrics(&self, addr: SocketAddr) -> io::Result<MetricsServer> {
        MetricsServer::bind(addr, self.handle.metrics_source(crate::METRICS_WAIT))
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
        let answer = self.handle.wait_connected(timeout)?.await;
        ClientHandle::connected(answer)
    }

    /// The servers we hold sessions with (several in multicast mode).
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
        let addrs = match self.handle.servers() {
            Some(pending) => pending.await.unwrap_or_default(),
            None => Vec::new(),
        };
        addrs.into_iter().map(|addr| self.server(addr)).collect()
    }

    /// A handle on the server answering from `addr`; its methods fail with
    /// [`ServerError::NotConnected`] while there is no session with it.
    pub fn server(&self, addr: SocketAddr) -> RemoteServer {
        RemoteServer {
            inner: self.handle.server(addr),
        }
    }

    /// The local address of the client socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// The address the client was configured to talk to.
    pub fn server_addr(&self) -> SocketAddr {
        self.handle.server_addr()
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
        self.handle.close();
        if let Some(task) = self.task.take() {
            task.await;
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.handle.close();
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
    inner: RemoteHandle,
}

impl RemoteServer {
    /// The address the server answers from.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr()
    }

    /// The current state, if there is a live session.
    ///
    /// # Errors
    /// [`ServerError::NotConnected`] without a live session, [`ServerError::Closed`] after the
    /// client closed.
    pub async fn state(&self) -> Result<ServerState, ServerError> {
        RemoteHandle::live(self.inner.state()?.await)
    }

    /// The server's monotonic clock now, in its own time base.
    ///
    /// # Errors
    /// [`ServerError::NoClock`] before a time sync was answered; as [`RemoteServer::state`].
    pub async fn remote_now(&self) -> Result<Instant, ServerError> {
        Ok(self.inner.remote_now(&self.clock().await?))
    }

    /// The server's clock reading at local instant `local`.
    ///
    /// # Errors
    /// As [`RemoteServer::remote_now`].
    pub async fn to_remote(&self, local: std::time::Instant) -> Result<Instant, ServerError> {
        Ok(self.inner.to_remote(&self.clock().await?, local))
    }

    /// The local instant at which the server's clock reads `remote`.
    ///
    /// # Errors
    /// As [`RemoteServer::remote_now`], and [`ServerError::OutOfRange`] for an instant the
    /// local clock cannot represent.
    pub async fn to_local(&self, remote: Instant) -> Result<std::time::Instant, ServerError> {
        self.inner.to_local(&self.clock().await?, remote)
    }

    /// The estimate of the server's clock: offset and the round trip that bounds its error.
    ///
    /// # Errors
    /// As [`RemoteServer::remote_now`].
    pub async fn clock(&self) -> Result<ClockEstimate, ServerError> {
        self.state().await?.clock_estimate()
    }

    /// Asks the server for its clock and waits for the answer, up to `timeout` (the endpoint's
    /// deadline for the sync, whose outcome event ends the wait).
    ///
    /// # Errors
    /// [`ServerError::TimedOut`] without an answer within `timeout`; as
    /// [`RemoteServer::state`].
    pub async fn sync_time(&self, timeout: Duration) -> Result<ClockEstimate, ServerError> {
        self.inner.sync_time(timeout)?.outcome().await
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
        self.state().await?.reported_status()
    }

    /// The battery level and state.
    ///
    /// # Errors
    /// As [`RemoteServer::status`].
    pub async fn battery(&self) -> Result<Battery, ServerError> {
        self.state().await?.battery()
    }

    /// The signal strength in dBm of a wireless link, `None` for a wired or unknown one.
    ///
    /// # Errors
    /// As [`RemoteServer::status`].
    pub async fn rssi(&self) -> Result<Option<i16>, ServerError> {
        self.state().await?.rssi()
    }

    /// The temperature in °C.
    ///
    /// # Errors
    /// As [`RemoteServer::status`].
    pub async fn temperature(&self) -> Result<i8, ServerError> {
        self.state().await?.temperature()
    }
}
