//! The blocking driver: one thread owns the sockets and the role, and sleeps in `mio`'s poller
//! until a datagram arrives on any socket, a command is queued, or the role's next deadline.
//!
//! Sending a command wakes the poller through a `mio::Waker` (an eventfd on Linux), so a
//! command never waits for a deadline. Sockets are non-blocking and edge-triggered: each
//! readable event is drained until `WouldBlock`. A datagram that cannot be sent because the
//! socket buffer is full is kept and retried when the socket is writable again, and no new
//! datagram is taken from the role until it has gone.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use mio::net::UdpSocket as MioSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use pavillion_proto::{wire, Instant};

use crate::plumbing::link::{Commands, TryRecvError};
use crate::plumbing::sockets::Sockets;
use crate::plumbing::{Clock, Flow, Parts, Role};

const PRIMARY: Token = Token(0);
const SECONDARY: Token = Token(1);
const WAKE: Token = Token(2);

/// Starts the driver thread of an opened endpoint, and returns its handle and thread.
pub(crate) fn start<R: Role, H>(name: &str, parts: Parts<R, H>) -> io::Result<(H, JoinHandle<()>)> {
    let thread = spawn(
        name,
        parts.router,
        parts.sockets,
        parts.commands,
        parts.clock,
    )?;
    Ok((parts.handle, thread))
}

/// Starts the driver thread for `role` on `sockets`.
fn spawn<R: Role>(
    name: &str,
    role: R,
    sockets: Sockets,
    commands: Commands<R::Command>,
    clock: Clock,
) -> io::Result<JoinHandle<()>> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    commands.set_wake(move || {
        // A failed wake only delays the command until the next datagram or deadline.
        if let Err(e) = waker.wake() {
            tracing::debug!(error = %e, "driver wake-up failed");
        }
    });
    // Membership changes need the std socket; a clone shares the same kernel socket.
    let membership = sockets.primary.try_clone()?;
    let mut primary = nonblocking(sockets.primary)?;
    // Write interest only while a datagram waits for room (see `flush`): registered for
    // good, every send that frees its buffer would raise an edge and wake the poll for nothing.
    poll.registry()
        .register(&mut primary, PRIMARY, Interest::READABLE)?;
    let mut secondary = sockets.secondary.map(nonblocking).transpose()?;
    if let Some(s) = &mut secondary {
        poll.registry().register(s, SECONDARY, Interest::READABLE)?;
    }
    let driver = Driver {
        role,
        poll,
        primary,
        secondary,
        send_from_secondary: sockets.send_from_secondary,
        membership,
        clock,
        rx_buf: vec![0; 65_536],
        tx_buf: vec![0; wire::MAX_DATAGRAM],
        unsent: None,
    };
    thread::Builder::new().name(name.into()).spawn(move || {
        commands.set_driver_thread();
        driver.run(&commands);
    })
}

fn nonblocking(socket: UdpSocket) -> io::Result<MioSocket> {
    socket.set_nonblocking(true)?;
    Ok(MioSocket::from_std(socket))
}

struct Driver<R> {
    role: R,
    poll: Poll,
    primary: MioSocket,
    secondary: Option<MioSocket>,
    send_from_secondary: bool,
    membership: UdpSocket,
    clock: Clock,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    /// A datagram in `tx_buf` that would have blocked: its length and destination.
    unsent: Option<(usize, SocketAddr)>,
}

impl<R: Role> Driver<R> {
    /// The loop. Returns when a command closes the endpoint or every handle is gone.
    fn run(mut self, commands: &Commands<R::Command>) {
        let mut events = Events::with_capacity(16);
        // The endpoint may have queued datagrams when created (a client's first handshake).
        self.after(self.clock.now());
        loop {
            if self.take_commands(commands) == Flow::Stop {
                return;
            }
            let now = self.clock.now();
            let wait = match self.role.poll_timeout() {
                Some(t) if t <= now => {
                    self.role.handle_timeout(now);
                    self.after(now);
                    continue;
                }
                Some(t) => Some(t - now),
                None => None,
            };
            if let Err(e) = self.poll.poll(&mut events, wait) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::warn!(error = %e, "poll failed");
                }
                continue;
            }
            for event in events.iter() {
                let token = event.token();
                if token == WAKE {
                    continue;
                }
                if event.is_writable() {
                    self.flush(self.clock.now());
                }
                if event.is_readable() && self.receive(token, commands) == Flow::Stop {
                    return;
                }
            }
        }
    }

    /// Carries out every queued command, or closes the role if every handle is gone.
    fn take_commands(&mut self, commands: &Commands<R::Command>) -> Flow {
        loop {
            match commands.try_recv() {
                Ok(cmd) => {
                    let now = self.clock.now();
                    let flow = self.role.on_command(now, &self.membership, cmd);
                    self.after(now);
                    if flow == Flow::Stop {
                        return Flow::Stop;
                    }
                }
                Err(TryRecvError::Empty) => return Flow::Continue,
                Err(_) => {
                    let now = self.clock.now();
                    self.role.close(now);
                    self.after(now);
                    return Flow::Stop;
                }
            }
        }
    }

    /// Reads every datagram waiting on the socket of `token`. Queued commands go first, before
    /// each datagram: a command sent before a datagram was caused (a subscription, then the
    /// message it should see) must take effect first, even when the wake-up and the datagram
    /// arrive in one poll.
    fn receive(&mut self, token: Token, commands: &Commands<R::Command>) -> Flow {
        loop {
            if self.take_commands(commands) == Flow::Stop {
                return Flow::Stop;
            }
            let socket = match (token, &self.secondary) {
                (PRIMARY, _) => &self.primary,
                (_, Some(s)) => s,
                (_, None) => return Flow::Continue,
            };
            let (n, from) = match socket.recv_from(&mut self.rx_buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flow::Continue,
                // ICMP errors surface here (connection refused); the endpoint's own timers
                // deal with an unreachable peer, and the next datagram may be waiting.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    tracing::debug!(error = %e, "recv_from failed");
                    return Flow::Continue;
                }
            };
            tracing::trace!(%from, len = n, "datagram in");
            let now = self.clock.now();
            let data = self.rx_buf.get(..n).unwrap_or_default();
            self.role.handle_datagram(now, from, data);
            self.after(now);
        }
    }

    /// Sends what the role queued, then routes its events.
    fn after(&mut self, now: Instant) {
        self.flush(now);
        self.role.dispatch(now);
    }

    /// Sends the datagram that would have blocked, then every datagram the role has queued,
    /// through one reused buffer; stops at the first that would block, and asks the poller to
    /// say when the socket has room again.
    fn flush(&mut self, now: Instant) {
        let (socket, token) = match &mut self.secondary {
            Some(s) if self.send_from_secondary => (s, SECONDARY),
            _ => (&mut self.primary, PRIMARY),
        };
        let was_blocked = self.unsent.is_some();
        if let Some((len, to)) = self.unsent {
            if !send(socket, self.tx_buf.get(..len).unwrap_or_default(), to) {
                return;
            }
            self.unsent = None;
        }
        while let Some(t) = self.role.poll_transmit(now, &mut self.tx_buf) {
            tracing::trace!(to = %t.destination, len = t.len, "datagram out");
            if !send(
                socket,
                self.tx_buf.get(..t.len).unwrap_or_default(),
                t.destination,
            ) {
                self.unsent = Some((t.len, t.destination));
                break;
            }
        }
        let blocked = self.unsent.is_some();
        if blocked != was_blocked {
            let interest = if blocked {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = self.poll.registry().reregister(socket, token, interest) {
                tracing::warn!(error = %e, "cannot change the socket's poll interest");
            }
        }
    }
}

/// Sends one datagram; `false` if the socket would block (try again when writable).
fn send(socket: &MioSocket, datagram: &[u8], to: SocketAddr) -> bool {
    match socket.send_to(datagram, to) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) => {
            // A lost datagram is the endpoint's business: it retransmits what matters.
            tracing::debug!(error = %e, %to, "send_to failed");
            true
        }
    }
}
