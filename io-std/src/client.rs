//! The blocking client: [`Client::connect`], then calls, messages and server queries.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use pavillion_proto::endpoint::{Reliability, SendOptions, Stats};
use pavillion_proto::features::status::{Battery, Status};
use pavillion_proto::features::timesync::ClockEstimate;
use pavillion_proto::Instant;

use crate::config::ClientConfig;
use crate::driver;
use crate::error::{CallError, OpenError, SendError, ServerError};
use crate::handoff::Handoff;
use crate::plumbing::client::{self, ClientHandle, RemoteHandle, ServerState};
use crate::plumbing::events::{ConnectionCallback, ConnectionEvent};
use crate::plumbing::handoff::HandoffCallback;
use crate::plumbing::messages::{Callback, ReceivedMessage};
use crate::plumbing::progress::Progress;
use crate::plumbing::window::SendHandle;
use crate::plumbing::Delivery;
use crate::GRACE;
use pavillion_io::metrics::{MetricsServer, MetricsSnapshot};

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
/// client.on_message(Some("alerts"), |m| println!("{}: {:?}", m.name(), m.payload()));
/// let delivery = client.send_message("kitchen", "temp", b"21.5", Reliability::Reliable)?;
/// println!("acknowledged by {:?}", delivery.acked);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    pub(crate) handle: ClientHandle,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    /// Opens a socket and starts a client talking to the server at `addr` (a unicast address,
    /// a multicast group or a broadcast address). The handshake starts at once; calls and
    /// messages made before it finishes wait for it.
    ///
    /// With a multicast group, the client also joins the group on a second socket bound to
    /// the group's port, to hear servers that start later announce themselves.
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
        let server = crate::resolve(addr)?;
        let (handle, thread) = driver::start("pavillion-client", client::open(server, &config)?)?;
        Ok(Client {
            handle,
            thread: Some(thread),
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
        self.call_with_timeout(function, args, self.handle.call_timeout())
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
        // The endpoint reports the deadline; the grace only guards against a dead driver.
        self.handle
            .call_here(function, args, timeout)?
            .wait_outcome(timeout + GRACE)
    }

    /// Sends a message to `target`/`name`. A reliable message blocks until every expected
    /// server acknowledged it, or the send timeout (5 s by default) passed with some
    /// acknowledgement; an unreliable one returns as soon as it is queued, with an empty
    /// [`Delivery`]. An unreliable message made before the session is up waits for it, and is
    /// dropped unsent if the client closes first (see [`Client::wait_connected`]).
    /// [`Reliability::Ordered`] is reliable too, and the server's application gets the ordered
    /// messages of one target in send order, once each (`docs/PROTOCOL.md` §3.3).
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
    pub fn send_message(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
    ) -> Result<Delivery, SendError> {
        let options = self.handle.options(reliability);
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
        let wait = options.timeout.unwrap_or(self.handle.send_timeout()) + GRACE;
        self.handle
            .send_message(target, name, data, options)?
            .wait_outcome(wait)
    }

    /// Queues a message and returns its [`SendHandle`] at once, without waiting for the
    /// acknowledgement; blocks only while the send window is full
    /// ([`ClientConfig::send_window`], 1024 by default): until the outcomes of earlier
    /// pipelined messages free a batch of it (a sixteenth, at most 64). Many messages are then
    /// in flight at once, and the endpoint may carry several in one datagram.
    ///
    /// The handle gives the outcome ([`SendHandle::wait`], [`SendHandle::is_done`]) as
    /// [`Client::send_message`] would return it; outcomes arrive in any order. A dropped
    /// handle does not cancel the message, and its window slot is freed when the outcome is
    /// known. [`Client::flush`] waits for every outcome. Memory stays bounded by the window
    /// even when the server is gone: a full window blocks the sender until the oldest
    /// messages time out (the send timeout, 5 s by default).
    ///
    /// # Errors
    /// [`SendError::Closed`] once the client is closed; [`SendError::InCallback`] when the
    /// window is full and this runs in a callback on the client's thread (waiting for room
    /// there would never end). A message the endpoint refuses (too large, a bad name) is
    /// reported through its handle.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(client: pavillion_std::Client) -> Result<(), pavillion_std::SendError> {
    /// use std::time::Duration;
    /// use pavillion_std::Reliability;
    ///
    /// let handles: Vec<_> = (0..1000u32)
    ///     .map(|i| client.send_pipelined("sensors", "reading", &i.to_le_bytes(), Reliability::Reliable))
    ///     .collect::<Result<_, _>>()?;
    /// client.flush(Duration::from_secs(10))?;
    /// for h in handles {
    ///     assert!(h.is_done());
    ///     h.wait()?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_pipelined(
        &self,
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

    /// Blocks until every pipelined message sent so far has its outcome (none holds a place
    /// in the send window), at most `timeout`. The outcomes themselves, failures included,
    /// are in their handles.
    ///
    /// # Errors
    /// [`SendError::TimedOut`] when `timeout` passed first; [`SendError::InCallback`] in a
    /// callback on the client's thread while messages are outstanding.
    pub fn flush(&self, timeout: Duration) -> Result<(), SendError> {
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

    /// As [`Client::send_message`], reporting progress: a message larger than a datagram
    /// (up to [`ClientConfig::max_message`], 1 MiB by default) is sent in segments, and
    /// `progress(acked, total)` runs on the client's thread each time more of its bytes were
    /// acknowledged (by every expected server, for a group), the last time with
    /// `acked == total`. A message that fits one datagram reports nothing. The callback must
    /// not block.
    ///
    /// # Errors
    /// As [`Client::send_message`]; [`SendError::RefusedByReceiver`] when the server refused
    /// the message (larger than it accepts, or no room to reassemble it now).
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(client: pavillion_std::Client) -> Result<(), pavillion_std::SendError> {
    /// use pavillion_std::Reliability;
    ///
    /// let firmware = vec![0u8; 512 * 1024];
    /// client.send_with_progress("ota", "image", &firmware, Reliability::Reliable, |acked, total| {
    ///     eprint!("\r{acked}/{total} bytes");
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_with_progress(
        &self,
        target: &str,
        name: &str,
        data: &[u8],
        reliability: Reliability,
        progress: impl FnMut(u64, u64) + Send + 'static,
    ) -> Result<Delivery, SendError> {
        let options = self.handle.options(reliability);
        let wait = options.timeout.unwrap_or(self.handle.send_timeout()) + GRACE;
        let progress = Some(Progress::new(progress));
        self.handle
            .send_message_with_progress(target, name, data, options, progress)?
            .wait_outcome(wait)
    }

    /// Subscribes to `target` at the server: a broker (`pav serve`) then forwards us the
    /// messages sent to it. The subscription is kept across reconnections and, for a client of
    /// a group, held by one live server at a time (`docs/PROTOCOL.md` §9.6). Returns once the
    /// endpoint accepted it; delivery to the server is retried in the background.
    ///
    /// # Errors
    /// [`SendError::Refused`] for a target the endpoint cannot send (a newline, too long, too
    /// many targets), [`SendError::Closed`], [`SendError::InCallback`].
    pub fn subscribe(&self, target: &str) -> Result<(), SendError> {
        self.handle.subscribe(target, true)?.wait_outcome(GRACE)
    }

    /// The server that holds our subscription to `target`: it acknowledged it. `None` while
    /// the subscription is still on its way (or was never made): [`Client::subscribe`] returns
    /// before the server has it, so a caller that must not miss the first forwarded message
    /// waits for this.
    pub fn subscribed_at(&self, target: &str) -> Option<SocketAddr> {
        let at = self.handle.subscribed_at(target)?.wait(GRACE).ok();
        at.flatten()
    }

    /// Withdraws a subscription made with [`Client::subscribe`].
    ///
    /// # Errors
    /// As [`Client::subscribe`].
    pub fn unsubscribe(&self, target: &str) -> Result<(), SendError> {
        self.handle.subscribe(target, false)?.wait_outcome(GRACE)
    }

    /// Runs `callback` for every message to `target`, or for every message at all with
    /// `None`. Callbacks run on the client's thread, in the order they were added.
    pub fn on_message(
        &self,
        target: Option<&str>,
        callback: impl FnMut(&ReceivedMessage) + Send + 'static,
    ) {
        self.handle
            .on_message(target, Box::new(Callback::new(callback)));
    }

    /// Like [`Client::on_message`], but the ACK of a reliable message from the server waits
    /// for [`Handoff::complete`] (`docs/PROTOCOL.md` §18): the server's send returns only once
    /// the callback's token is completed, and a token refused or dropped makes the server
    /// send the message again (a new call). Unreliable messages have no ACK to hold: they
    /// come to [`Client::on_message`] callbacks as before. The server sends us a target only
    /// if we [`subscribe`](Client::subscribe) to it there.
    ///
    /// One callback per target (`None`: every target); a later one replaces it. Held
    /// messages go only to it, not to `on_message` callbacks. Across a new session with the
    /// server (a reconnection) the server sends what it still holds again, so a message may
    /// come twice: at least once, never acknowledged and lost.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(client: pavillion_std::Client) -> Result<(), pavillion_std::SendError> {
    /// use std::sync::mpsc;
    /// let (tx, rx) = mpsc::channel();
    /// client.on_message_handoff(Some("alarms"), move |m, handoff| {
    ///     let _ = tx.send((m.payload_bytes(), handoff));
    /// });
    /// client.subscribe("alarms")?;
    /// std::thread::spawn(move || {
    ///     for (payload, handoff) in rx {
    ///         // ... store `payload` somewhere safe, then:
    ///         let _ = handoff.complete();
    ///     }
    /// });
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_message_handoff(
        &self,
        target: Option<&str>,
        mut callback: impl FnMut(&ReceivedMessage, Handoff) + Send + 'static,
    ) {
        let callback = HandoffCallback::new(move |m, h| callback(m, Handoff::new(h)));
        self.handle.on_message_handoff(target, Box::new(callback));
    }

    /// Runs `callback` for every [`ConnectionEvent`]: a session with a server came up or
    /// ended, a server went silent for the down timeout or was heard again, a server's status
    /// bytes changed. Callbacks run on the client's thread, in the order the events happened
    /// and the callbacks were added, and only for events after this call is processed.
    ///
    /// A callback may call the client's methods (through a [`std::sync::Weak`] or a channel,
    /// since it cannot own the client it is registered on): they go through the same queue as
    /// any command, so nothing deadlocks. The ones that wait for an answer return an
    /// `InCallback` error at once instead ([`CallError::InCallback`],
    /// [`SendError::InCallback`], ...); hand such work to another thread.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(client: pavillion_std::Client) {
    /// use pavillion_std::ConnectionEvent;
    ///
    /// client.on_connection(|event| match event {
    ///     ConnectionEvent::Connected { addr, .. } => println!("session with {addr}"),
    ///     ConnectionEvent::Disconnected { addr, reason } => println!("{addr} left: {reason:?}"),
    ///     ConnectionEvent::PeerDown { addr } => println!("{addr} is silent"),
    ///     ConnectionEvent::StatusChanged { status, .. } => println!("battery {:?}", status.battery),
    ///     _ => {}
    /// });
    /// # }
    /// ```
    pub fn on_connection(&self, callback: impl FnMut(&ConnectionEvent) + Send + 'static) {
        self.handle
            .on_connection(Box::new(ConnectionCallback::new(callback)));
    }

    /// A snapshot of the endpoint's counters: datagrams, handshakes, retransmissions, and
    /// datagrams dropped by reason ([`Stats::dropped`], [`Stats::drops`]). `None` once the
    /// client is closed, or from a callback on its own thread.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(client: pavillion_std::Client) {
    /// if let Some(stats) = client.stats() {
    ///     println!("{} datagrams in, {} retransmissions", stats.datagrams_received, stats.retransmissions);
    ///     for (reason, count) in stats.drops().filter(|(_, n)| *n > 0) {
    ///         println!("dropped {count} as {reason}");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn stats(&self) -> Option<Stats> {
        self.handle.stats()?.wait(GRACE).ok()
    }

    /// A metrics snapshot: the counters of [`Client::stats`], the sessions up and the
    /// round-trip histogram, as [`MetricsServer`] serves them. `None` once closed, or from a
    /// callback on its own thread.
    pub fn metrics(&self) -> Option<MetricsSnapshot> {
        self.handle.metrics()?.wait(GRACE).ok()
    }

    /// Serves this client's metrics in the Prometheus text format at
    /// `http://ADDR/metrics` (`docs/METRICS.md`) until the returned server is dropped. Bind
    /// it to loopback or a management address: the counters describe the traffic.
    ///
    /// # Errors
    /// The listener's error (the port is taken, the address is not ours).
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(x: pavillion_std::Client) -> std::io::Result<()> {
    /// let exporter = x.serve_metrics("127.0.0.1:9464")?;
    /// println!("scrape http://{}/metrics", exporter.local_addr());
    /// # Ok(()) }
    /// ```
    pub fn serve_metrics(&self, addr: impl ToSocketAddrs) -> io::Result<MetricsServer> {
        MetricsServer::bind(crate::resolve_io(addr)?, self.handle.metrics_source(GRACE))
    }

    /// Waits until a session with a server is up, and returns the server's address.
    ///
    /// # Errors
    /// [`ServerError::TimedOut`] if none came up within `timeout`.
    pub fn wait_connected(&self, timeout: Duration) -> Result<SocketAddr, ServerError> {
        let answer = self.handle.wait_connected(timeout)?.wait(timeout + GRACE);
        ClientHandle::connected(answer)
    }

    /// The servers we hold sessions with (several in multicast mode).
    pub fn servers(&self) -> Vec<RemoteServer> {
        let addrs = self.handle.servers().and_then(|p| p.wait(GRACE).ok());
        addrs
            .unwrap_or_default()
            .into_iter()
            .map(|addr| self.server(addr))
            .collect()
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

    /// Sends quit to the server, fails what is pending and stops the thread.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.close();
            if !self.handle.on_driver_thread() {
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
    pub fn state(&self) -> Result<ServerState, ServerError> {
        RemoteHandle::live(self.inner.state()?.wait(GRACE))
    }

    /// The server's monotonic clock now, in its own time base.
    ///
    /// # Errors
    /// [`ServerError::NoClock`] before a time sync was answered; as [`RemoteServer::state`].
    pub fn remote_now(&self) -> Result<Instant, ServerError> {
        Ok(self.inner.remote_now(&self.clock()?))
    }

    /// The server's clock reading at local instant `local`.
    ///
    /// # Errors
    /// As [`RemoteServer::remote_now`].
    pub fn to_remote(&self, local: std::time::Instant) -> Result<Instant, ServerError> {
        Ok(self.inner.to_remote(&self.clock()?, local))
    }

    /// The local instant at which the server's clock reads `remote`.
    ///
    /// # Errors
    /// As [`RemoteServer::remote_now`], and [`ServerError::OutOfRange`] for an instant the
    /// local clock cannot represent.
    pub fn to_local(&self, remote: Instant) -> Result<std::time::Instant, ServerError> {
        self.inner.to_local(&self.clock()?, remote)
    }

    /// The estimate of the server's clock: offset and the round trip that bounds its error.
    ///
    /// # Errors
    /// As [`RemoteServer::remote_now`].
    pub fn clock(&self) -> Result<ClockEstimate, ServerError> {
        self.state()?.clock_estimate()
    }

    /// Asks the server for its clock and waits for the answer.
    ///
    /// # Errors
    /// [`ServerError::TimedOut`] without an answer within `timeout`; as
    /// [`RemoteServer::state`].
    pub fn sync_time(&self, timeout: Duration) -> Result<ClockEstimate, ServerError> {
        self.inner.sync_time(timeout)?.wait_outcome(timeout + GRACE)
    }

    /// The last reported status bytes, decoded.
    ///
    /// # Errors
    /// [`ServerError::NoStatus`] if the server sends none; as [`RemoteServer::state`].
    pub fn status(&self) -> Result<Status, ServerError> {
        self.state()?.reported_status()
    }

    /// The battery level and state.
    ///
    /// # Errors
    /// As [`RemoteServer::status`].
    pub fn battery(&self) -> Result<Battery, ServerError> {
        self.state()?.battery()
    }

    /// The signal strength in dBm of a wireless link, `None` for a wired or unknown one.
    ///
    /// # Errors
    /// As [`RemoteServer::status`].
    pub fn rssi(&self) -> Result<Option<i16>, ServerError> {
        self.state()?.rssi()
    }

    /// The temperature in °C.
    ///
    /// # Errors
    /// As [`RemoteServer::status`].
    pub fn temperature(&self) -> Result<i8, ServerError> {
        self.state()?.temperature()
    }
}
