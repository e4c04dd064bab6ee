//! The driving loop shared by both roles: one thread owns the socket and the endpoint.
//!
//! The thread blocks in `recv_from` with a read timeout set to the endpoint's next deadline.
//! Commands arrive over an `mpsc` channel; after queueing one, the sender sends a one-byte wake
//! datagram to the endpoint socket from a second socket (the waker), so a command never waits for
//! a deadline. Datagrams from the waker's address are never given to the endpoint.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use pavillion_proto::endpoint::Transmit;
use pavillion_proto::{wire, Instant};

/// The driver's clock: microseconds since the endpoint was created.
pub(crate) type Clock = pavillion_proto::time::StdClock;

/// What one role (client or server) adds to the loop: its endpoint, its commands and what it
/// does with events.
pub(crate) trait Role: Send + 'static {
    /// The commands its handles send.
    type Command: Send + 'static;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;
    fn poll_timeout(&self) -> Option<Instant>;
    /// Carries out one command; returns `false` when the loop should end (close).
    fn on_command(&mut self, now: Instant, socket: &UdpSocket, command: Self::Command) -> bool;
    /// Drains the endpoint's events and hands them to the application.
    fn dispatch(&mut self, now: Instant);
    /// Closes the endpoint because every handle is gone.
    fn close(&mut self, now: Instant, socket: &UdpSocket);
}

/// What every handle of one endpoint shares.
#[derive(Debug)]
struct Shared {
    waker: UdpSocket,
    wake_target: SocketAddr,
    driver: OnceLock<ThreadId>,
}

/// A way to send commands to the driver thread, waking it at once.
#[derive(Debug)]
pub(crate) struct Link<C> {
    tx: Sender<C>,
    shared: Arc<Shared>,
}

impl<C> Clone for Link<C> {
    fn clone(&self) -> Self {
        Link {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// The driver thread is gone (the endpoint was closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gone;

impl<C> Link<C> {
    /// Queues a command and wakes the driver.
    pub(crate) fn send(&self, command: C) -> Result<(), Gone> {
        self.tx.send(command).map_err(|_| Gone)?;
        // A lost wake datagram only delays the command until the next datagram or deadline;
        // on loopback it is not lost.
        if let Err(e) = self.shared.waker.send_to(&[0], self.shared.wake_target) {
            tracing::debug!(error = %e, "wake datagram not sent");
        }
        Ok(())
    }

    /// Whether the caller is the driver thread itself (a callback), which must not block on a
    /// command's outcome.
    pub(crate) fn on_driver_thread(&self) -> bool {
        self.shared.driver.get() == Some(&thread::current().id())
    }
}

/// Starts the driver thread for `role` on `socket`. `make_role` receives a link so that the
/// role can hand out handles (RPC responders) that send commands back.
pub(crate) fn spawn<R: Role>(
    name: &str,
    socket: UdpSocket,
    clock: Clock,
    make_role: impl FnOnce(Link<R::Command>) -> R,
) -> io::Result<(Link<R::Command>, JoinHandle<()>)> {
    let local = socket.local_addr()?;
    let wake_target = wake_target(local);
    let waker_bind = if wake_target.ip().is_multicast() || wake_target.ip().is_unspecified() {
        loopback(local.ip())
    } else {
        wake_target.ip()
    };
    let waker = UdpSocket::bind(SocketAddr::new(waker_bind, 0))?;
    let waker_addr = waker.local_addr()?;
    let (tx, rx) = mpsc::channel();
    let link = Link {
        tx,
        shared: Arc::new(Shared {
            waker,
            wake_target,
            driver: OnceLock::new(),
        }),
    };
    let role = make_role(link.clone());
    let shared = link.shared.clone();
    let handle = thread::Builder::new().name(name.into()).spawn(move || {
        let _ = shared.driver.set(thread::current().id());
        drive(role, &socket, &rx, clock, waker_addr);
    })?;
    Ok((link, handle))
}

/// Where the waker sends: the socket's own address, with an unspecified IP replaced by
/// loopback of the same family.
fn wake_target(local: SocketAddr) -> SocketAddr {
    let ip = if local.ip().is_unspecified() {
        loopback(local.ip())
    } else {
        local.ip()
    };
    SocketAddr::new(ip, local.port())
}

fn loopback(family: IpAddr) -> IpAddr {
    match family {
        IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
    }
}

/// The loop. Returns when a command asks to close or every handle is gone.
fn drive<R: Role>(
    mut role: R,
    socket: &UdpSocket,
    commands: &Receiver<R::Command>,
    clock: Clock,
    waker: SocketAddr,
) {
    let mut rx_buf = vec![0u8; 65_536];
    let mut tx_buf = vec![0u8; wire::MAX_DATAGRAM];
    // The endpoint may have queued datagrams when created (a client's first handshake).
    flush(&mut role, socket, clock.now(), &mut tx_buf);
    loop {
        // Commands first: they may change the next deadline.
        let mut open = true;
        loop {
            match commands.try_recv() {
                Ok(cmd) => {
                    let now = clock.now();
                    open = role.on_command(now, socket, cmd);
                    flush(&mut role, socket, now, &mut tx_buf);
                    role.dispatch(now);
                    if !open {
                        break;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let now = clock.now();
                    role.close(now, socket);
                    flush(&mut role, socket, now, &mut tx_buf);
                    role.dispatch(now);
                    open = false;
                    break;
                }
            }
        }
        if !open {
            return;
        }
        let now = clock.now();
        let wait = match role.poll_timeout() {
            Some(t) if t <= now => {
                role.handle_timeout(now);
                flush(&mut role, socket, now, &mut tx_buf);
                role.dispatch(now);
                continue;
            }
            // A zero timeout is an error for `set_read_timeout`; a microsecond is not.
            Some(t) => Some((t - now).max(Duration::from_micros(1))),
            None => None,
        };
        if let Err(e) = socket.set_read_timeout(wait) {
            tracing::warn!(error = %e, "cannot set the socket read timeout");
        }
        match socket.recv_from(&mut rx_buf) {
            Ok((_, from)) if from == waker => {}
            Ok((n, from)) => {
                tracing::trace!(%from, len = n, "datagram in");
                let now = clock.now();
                role.handle_datagram(now, from, rx_buf.get(..n).unwrap_or_default());
                flush(&mut role, socket, now, &mut tx_buf);
                role.dispatch(now);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let now = clock.now();
                role.handle_timeout(now);
                flush(&mut role, socket, now, &mut tx_buf);
                role.dispatch(now);
            }
            // ICMP errors surface here on some systems (connection reset); the endpoint's own
            // timers deal with an unreachable peer.
            Err(e) => tracing::debug!(error = %e, "recv_from failed"),
        }
    }
}

/// Sends every datagram the endpoint has queued, through one reused buffer.
fn flush<R: Role>(role: &mut R, socket: &UdpSocket, now: Instant, buf: &mut [u8]) {
    while let Some(t) = role.poll_transmit(now, buf) {
        let datagram = buf.get(..t.len).unwrap_or_default();
        tracing::trace!(to = %t.destination, len = t.len, "datagram out");
        if let Err(e) = socket.send_to(datagram, t.destination) {
            // A lost datagram is the endpoint's business: it retransmits what matters.
            tracing::debug!(error = %e, to = %t.destination, "send_to failed");
        }
    }
}
