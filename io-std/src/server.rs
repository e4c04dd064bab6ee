//! The blocking server: [`Server::bind`], RPC handlers, message callbacks and sends.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use bytes::Bytes;
use pavillion_proto::endpoint::{Reliability, RpcRequest, Stats};
use pavillion_proto::features::status::Status;
use pavillion_proto::PeerId;

use crate::config::ServerConfig;
use crate::driver;
use crate::error::{OpenError, SendError};
use crate::handoff::Handoff;
use crate::plumbing::events::{ConnectionCallback, ConnectionEvent};
use crate::plumbing::handoff::HandoffCallback;
use crate::plumbing::messages::{Callback, ReceivedMessage};
use crate::plumbing::progress::FanoutProgress;
use crate::plumbing::server::{
    self, closed, Handler, Outcome, Recipients, Responder, RpcFailure, ServerHandle,
};
use crate::plumbing::window::SendHandle;
use crate::plumbing::Delivery;
use crate::GRACE;
use pavillion_io::metrics::{MetricsServer, MetricsSnapshot};

/// A Pavillion server on its own socket (two with a reply socket) and thread.
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
/// server.on_message(Some("kitchen"), |m| println!("{} = {:?}", m.name(), m.payload()));
/// server.send_message("alerts", "fire", b"1", Reliability::Reliable, |_, _| true)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Server {
    pub(crate) handle: ServerHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Server {
    /// Binds `addr` (port 1783 is the protocol's default) and starts serving. A multicast
    /// group address (say `239.255.28.12:1783`) receives what is sent to the group, and the
    /// server then answers from a reply socket (see [`ServerConfig`]).
    ///
    /// # Errors
    /// [`OpenError::Io`] if a socket cannot be bound or the group joined,
    /// [`OpenError::Address`] if `addr` resolves to nothing.
    pub fn bind(addr: impl ToSocketAddrs, config: ServerConfig) -> Result<Server, OpenError> {
        Self::bind_with(addr, config, |_| {})
    }

    /// As [`Server::bind`], with `setup` run on the new server before it handles its first
    /// datagram: the handlers and callbacks it adds are in place for the very first client,
    /// whereas after [`Server::bind`] returns, a quick client may call a function that is not
    /// registered yet.
    ///
    /// # Errors
    /// As [`Server::bind`].
    ///
    /// # Examples
    /// ```no_run
    /// use pavillion_std::keys::parse_psk;
    /// use pavillion_std::{RpcFailure, Server, ServerConfig};
    /// use pavillion_proto::ClientId;
    ///
    /// let config = ServerConfig::new().psk_client(ClientId([1; 16]), parse_psk(&"07".repeat(32))?);
    /// let server = Server::bind_with("0.0.0.0:1783", config, |s| {
    ///     s.register(401, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind_with(
        addr: impl ToSocketAddrs,
        config: ServerConfig,
        setup: impl FnOnce(&Server),
    ) -> Result<Server, OpenError> {
        let addr = crate::resolve(addr)?;
        let parts = server::open(addr, &config)?;
        // The commands `setup` queues wait in the channel, which the driver empties before it
        // reads any socket.
        let (server, thread) = driver::start_with("pavillion-server", parts, |handle| {
            let server = Server {
                handle,
                thread: Mutex::new(None),
            };
            setup(&server);
            server
        })?;
        *server.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(thread);
        Ok(server)
    }

    /// Answers calls to `function` with `handler`, on the server thread. `name` is what the
    /// standard call 1 returns for it. A panicking handler answers status 1.
    pub fn register<R, F>(&self, function: u16, name: &str, handler: F)
    where
        R: Into<Bytes>,
        F: FnMut(&RpcRequest) -> Result<R, RpcFailure> + Send + 'static,
    {
        self.handle.register(function, name, Handler::now(handler));
    }

    /// Answers calls to `function` later: `handler` gets the request and a [`Responder`] it
    /// may move to another thread.
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
    pub fn unregister(&self, function: u16) {
        self.handle.unregister(function);
    }

    /// Runs `callback` for every message to `target` (and announces to clients that we take
    /// that target), or for every message at all with `None`.
    pub fn on_message(
        &self,
        target: Option<&str>,
        callback: impl FnMut(&ReceivedMessage) + Send + 'static,
    ) {
        self.handle
            .on_message(target, Box::new(Callback::new(callback)));
    }

    /// Like [`Server::on_message`], but the ACK of a reliable message waits for
    /// [`Handoff::complete`] (`docs/PROTOCOL.md` §18): the client's send returns only once
    /// the callback's token is completed, and a token refused or dropped makes the client
    /// send the message again (a new call). Unreliable messages have no ACK to hold: they
    /// come to [`Server::on_message`] subscribers as before.
    ///
    /// One callback per target (`None`: every target); a later one replaces it. Held
    /// messages go only to it, not to `on_message` callbacks.
    pub fn on_message_handoff(
        &self,
        target: Option<&str>,
        mut callback: impl FnMut(&ReceivedMessage, Handoff) + Send + 'static,
    ) {
        let callback = HandoffCallback::new(move |m, h| callback(m, Handoff::new(h)));
        self.handle.on_message_handoff(target, Box::new(callback));
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
        let to = Recipients::All(Box::new(filter));
        self.send(target, name, data, reliability, to)
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
        let to = Recipients::One(client);
        Outcome::only(self.send(target, name, data, reliability, to)?)
    }

    /// As [`Server::send_to`], reporting progress: a message larger than a datagram (up to
    /// [`ServerConfig::max_message`], 1 MiB by default) is sent in segments, and
    /// `progress(acked, total)` runs on the server's thread each time the client acknowledged
    /// more of its bytes, the last time with `acked == total`. A message that fits one
    /// datagram reports nothing. The callback must not block.
    ///
    /// # Errors
    /// As [`Server::send_to`]; [`SendError::RefusedByReceiver`] when the client refused the
    /// message.
    pub fn send_to_with_progress(
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
        let wait = self.handle.send_timeout() + GRACE;
        let outcomes = self
            .handle
            .send_with_progress(target, name, data, reliability, to, Some(progress))?
            .wait_outcome(wait)?;
        Outcome::only(outcomes)
    }

    /// Queues a message to the client at `client` and returns its [`SendHandle`] at once,
    /// without waiting for the acknowledgement; blocks only while the server's send window
    /// is full ([`ServerConfig::send_window`], 1024 by default, shared by every client) until
    /// the outcome of an earlier pipelined message is known. Many messages are then in flight
    /// at once, and the endpoint may carry several in one datagram.
    ///
    /// The handle gives the outcome as [`Server::send_to`] would return it; outcomes arrive
    /// in any order. A dropped handle does not cancel the message. [`Server::flush`] waits
    /// for every outcome. Memory stays bounded by the window even when a client is gone: its
    /// messages fail or time out (the send timeout) and free their places.
    ///
    /// # Errors
    /// [`SendError::Closed`] once the server is closed; [`SendError::InCallback`] when the
    /// window is full and this runs in a callback on the server's thread. A message the
    /// endpoint refuses (no session at `client`, too large) is reported through its handle.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(server: pavillion_std::Server) -> Result<(), pavillion_std::SendError> {
    /// use std::time::Duration;
    /// use pavillion_std::Reliability;
    ///
    /// for (addr, _) in server.clients() {
    ///     for i in 0..100u32 {
    ///         // The handle is dropped: flush below waits for every outcome.
    ///         let _ = server.send_pipelined_to(addr, "sensors", "reading", &i.to_le_bytes(), Reliability::Reliable)?;
    ///     }
    /// }
    /// server.flush(Duration::from_secs(10))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_pipelined_to(
        &self,
        client: SocketAddr,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
    ) -> Result<SendHandle, SendError> {
        let window = self.handle.window();
        let slot = match window.try_acquire() {
            Some(slot) => slot,
            None if self.handle.on_driver_thread() => return Err(SendError::InCallback),
            None => window.acquire(),
        };
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

    /// Blocks until every pipelined message sent so far has its outcome, at most `timeout`.
    /// The outcomes themselves, failures included, are in their handles.
    ///
    /// # Errors
    /// [`SendError::TimedOut`] when `timeout` passed first; [`SendError::InCallback`] in a
    /// callback on the server's thread while messages are outstanding.
    pub fn flush(&self, timeout: std::time::Duration) -> Result<(), SendError> {
        let window = self.handle.window();
        if window.outstanding() > 0 && self.handle.on_driver_thread() {
            return Err(SendError::InCallback);
        }
        if window.wait_idle(timeout) {
            Ok(())
        } else {
            Err(SendError::TimedOut)
        }
    }

    /// The connected clients: address and identity.
    pub fn clients(&self) -> Vec<(SocketAddr, PeerId)> {
        let clients = self.handle.clients().and_then(|p| p.wait(GRACE).ok());
        clients.unwrap_or_default()
    }

    /// The clients subscribed to `target` (with [`Client::subscribe`](crate::Client::subscribe)):
    /// whom a broker forwards that target's messages to (`docs/PROTOCOL.md` §9.6).
    pub fn client_subscribers(&self, target: &str) -> Vec<(SocketAddr, PeerId)> {
        let subs = self
            .handle
            .client_subscribers(target)
            .and_then(|p| p.wait(GRACE).ok());
        subs.unwrap_or_default()
    }

    /// Runs `callback` for every [`ConnectionEvent`] about a client: its session came up
    /// (with its identity) or ended, it went silent for the down timeout or was heard again.
    /// Callbacks run on the server's thread, in the order the events happened and the
    /// callbacks were added.
    ///
    /// A callback may call the server's methods (through a [`std::sync::Weak`] or a channel):
    /// the ones that only queue a command ([`Server::set_status`], [`Server::register`],
    /// [`Server::on_message`], ...) take effect once the callback returns; the ones that wait
    /// for an answer return an `InCallback` error or an empty answer at once rather than
    /// deadlock.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(server: pavillion_std::Server) {
    /// use pavillion_std::ConnectionEvent;
    ///
    /// server.on_connection(|event| match event {
    ///     ConnectionEvent::Connected { addr, peer } => println!("{peer:?} connected from {addr}"),
    ///     ConnectionEvent::Disconnected { addr, .. } => println!("{addr} left"),
    ///     other => println!("{other:?}"),
    /// });
    /// # }
    /// ```
    pub fn on_connection(&self, callback: impl FnMut(&ConnectionEvent) + Send + 'static) {
        self.handle
            .on_connection(Box::new(ConnectionCallback::new(callback)));
    }

    /// A snapshot of the endpoint's counters: datagrams, handshakes, retransmissions, and
    /// datagrams dropped by reason ([`Stats::dropped`], [`Stats::drops`]): garbage, forgeries
    /// and floods show up here. `None` once the server is closed, or from a callback on its
    /// own thread.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(server: pavillion_std::Server) {
    /// use pavillion_std::DropReason;
    ///
    /// if let Some(stats) = server.stats() {
    ///     println!("{} handshakes, {} forged", stats.handshakes, stats.dropped(DropReason::Forged));
    /// }
    /// # }
    /// ```
    pub fn stats(&self) -> Option<Stats> {
        self.handle.stats()?.wait(GRACE).ok()
    }

    /// A metrics snapshot: the counters of [`Server::stats`], the sessions up and the
    /// round-trip histogram, as [`MetricsServer`] serves them. `None` once closed, or from a
    /// callback on its own thread.
    pub fn metrics(&self) -> Option<MetricsSnapshot> {
        self.handle.metrics()?.wait(GRACE).ok()
    }

    /// Serves this server's metrics in the Prometheus text format at
    /// `http://ADDR/metrics` (`docs/METRICS.md`) until the returned server is dropped. Bind
    /// it to loopback or a management address: the counters describe the traffic.
    ///
    /// # Errors
    /// The listener's error (the port is taken, the address is not ours).
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(x: pavillion_std::Server) -> std::io::Result<()> {
    /// let exporter = x.serve_metrics("127.0.0.1:9464")?;
    /// println!("scrape http://{}/metrics", exporter.local_addr());
    /// # Ok(()) }
    /// ```
    pub fn serve_metrics(&self, addr: impl ToSocketAddrs) -> io::Result<MetricsServer> {
        MetricsServer::bind(crate::resolve_io(addr)?, self.handle.metrics_source(GRACE))
    }

    /// Sets the status appended to ACKs, or `None` for plain 8-byte ACKs.
    pub fn set_status(&self, status: Option<Status>) {
        self.handle.set_status(status);
    }

    /// Joins multicast group `group` on the listening socket.
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
        self.handle.local_addr()
    }

    /// The address of the reply socket everything is sent from, if the server has one.
    pub fn reply_addr(&self) -> Option<SocketAddr> {
        self.handle.reply_addr()
    }

    /// Sends quit to every client and stops; the port is free when this returns. Later calls
    /// on this handle fail with `Closed`. Unlike dropping the server, this works through a
    /// shared reference, so a server shared between threads can be closed by any of them.
    pub fn close(&self) {
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            self.handle.close();
            if !self.handle.on_driver_thread() {
                let _ = thread.join();
            }
        }
    }

    fn membership(&self, group: IpAddr, join: bool) -> io::Result<()> {
        let pending = self.handle.membership(group, join)?;
        pending.wait(GRACE).map_err(|_| closed())?
    }

    fn send(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
        to: Recipients,
    ) -> Result<Vec<Outcome>, SendError> {
        let wait = self.handle.send_timeout() + GRACE;
        self.handle
            .send(target, name, data, reliability, to)?
            .wait_outcome(wait)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}
