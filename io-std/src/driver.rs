//! The blocking driver: one thread owns the sockets' poller and runs the role, sleeping in
//! `mio`'s poller until a datagram arrives on any socket, a command is queued, or the role's
//! next deadline.
//!
//! Sending a command wakes the poller through a `mio::Waker` (an eventfd on Linux), so a
//! command never waits for a deadline. Sockets are non-blocking and edge-triggered: each
//! readable event is drained until `WouldBlock`. A datagram that cannot be sent because the
//! socket buffer is full is kept and retried when the socket is writable again, and no new
//! datagram is taken from the role until it has gone.
//!
//! **Calls and sends go out from the caller's thread.** The role lives behind a mutex that the
//! driver thread holds only while it works, never while it sleeps. A command the role marks
//! direct ([`Role::is_direct`]: a client's call or message, a server's RPC answer) is carried
//! out by the sending thread itself when the mutex is free and nothing is queued before it:
//! it is sealed and sent at once, without a hop to the driver thread and back. The driver is
//! woken only if the command moved the role's next deadline before the one it sleeps until.
//! Everything else, and every command that finds the role busy, goes through the channel.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use mio::net::UdpSocket as MioSocket;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use pavillion_proto::{wire, Instant};

use crate::plumbing::link::{Commands, TryRecvError};
use crate::plumbing::sockets::Sockets;
use crate::plumbing::{Clock, Flow, Parts, Role};

const PRIMARY: Token = Token(0);
const SECONDARY: Token = Token(1);
const WAKE: Token = Token(2);

/// `Shared::armed` while the driver thread is not sleeping: it reads the deadline again
/// before it sleeps.
const AWAKE: u64 = 0;
/// `Shared::armed` while the driver thread sleeps with no deadline.
const NO_DEADLINE: u64 = u64::MAX;

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
    let waker = Waker::new(poll.registry(), WAKE)?;
    // Membership changes need the std socket; a clone shares the same kernel socket.
    let membership = sockets.primary.try_clone()?;
    let mut primary = nonblocking(sockets.primary)?;
    // Write interest only while a datagram waits for room (see `Core::flush`): registered for
    // good, every send that frees its buffer would raise an edge and wake the poll for nothing.
    poll.registry()
        .register(&mut primary, PRIMARY, Interest::READABLE)?;
    let mut secondary = sockets.secondary.map(nonblocking).transpose()?;
    if let Some(s) = &mut secondary {
        poll.registry().register(s, SECONDARY, Interest::READABLE)?;
    }
    let shared = Arc::new(Shared {
        core: Mutex::new(Core {
            role,
            tx_buf: vec![0; wire::MAX_DATAGRAM],
            unsent: None,
        }),
        primary,
        secondary,
        send_from_secondary: sockets.send_from_secondary,
        registry: poll.registry().try_clone()?,
        membership,
        clock,
        armed: AtomicU64::new(AWAKE),
        waker,
    });
    // Weak: the handles keep these hooks, and must not keep the sockets open after the
    // driver thread has ended (the port is free when `close` returns).
    let wake = Arc::downgrade(&shared);
    commands.set_wake(move || {
        if let Some(shared) = wake.upgrade() {
            shared.wake();
        }
    });
    let direct = Arc::downgrade(&shared);
    commands.set_direct(Box::new(move |cmd, nothing_queued| {
        match direct.upgrade() {
            Some(shared) => shared.direct(cmd, nothing_queued),
            None => Err(cmd),
        }
    }));
    thread::Builder::new().name(name.into()).spawn(move || {
        commands.set_driver_thread();
        shared.run(poll, &commands);
    })
}

fn nonblocking(socket: UdpSocket) -> io::Result<MioSocket> {
    socket.set_nonblocking(true)?;
    Ok(MioSocket::from_std(socket))
}

/// What the driver thread and direct senders share.
struct Shared<R> {
    core: Mutex<Core<R>>,
    primary: MioSocket,
    secondary: Option<MioSocket>,
    send_from_secondary: bool,
    registry: Registry,
    membership: UdpSocket,
    clock: Clock,
    /// The deadline (µs) the driver thread sleeps until, [`NO_DEADLINE`], or [`AWAKE`]. Stored
    /// while holding `core`, so a direct sender that took `core` after it reads the deadline
    /// the driver really sleeps until (or `AWAKE`: the driver will read the role's deadline
    /// again under the lock).
    armed: AtomicU64,
    waker: Waker,
}

/// The role and its send state; whoever holds it may drive the role.
struct Core<R> {
    role: R,
    tx_buf: Vec<u8>,
    /// A datagram in `tx_buf` that would have blocked: its length and destination.
    unsent: Option<(usize, SocketAddr)>,
}

impl<R: Role> Shared<R> {
    /// The role; a panic elsewhere while holding it (a callback's panics are caught, so only
    /// a bug of ours) leaves nothing half-written that matters more than stopping would.
    fn lock(&self) -> MutexGuard<'_, Core<R>> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        // A failed wake only delays the command until the next datagram or deadline.
        if let Err(e) = self.waker.wake() {
            tracing::debug!(error = %e, "driver wake-up failed");
        }
    }

    /// Carries out `cmd` on the calling thread if the role is free, the command may run
    /// outside the loop, and nothing is queued before it; gives it back otherwise.
    fn direct(&self, cmd: R::Command, nothing_queued: &dyn Fn() -> bool) -> Result<(), R::Command> {
        let Ok(mut core) = self.core.try_lock() else {
            return Err(cmd);
        };
        // Queued commands go first; checked under the lock, which the driver holds while it
        // takes them, so nothing can slip in between.
        if !core.role.is_direct(&cmd) || !nothing_queued() {
            return Err(cmd);
        }
        let now = self.clock.now();
        // A direct command never stops the loop.
        let _ = core.role.on_command(now, &self.membership, cmd);
        core.flush(now, self);
        let next = core.role.poll_timeout();
        drop(core);
        let armed = self.armed.load(Ordering::SeqCst);
        if armed != AWAKE && next.is_some_and(|t| t.as_micros() < armed) {
            self.wake();
        }
        Ok(())
    }

    /// The loop. Returns when a command closes the endpoint or every handle is gone.
    fn run(&self, mut poll: Poll, commands: &Commands<R::Command>) {
        let mut events = Events::with_capacity(16);
        let mut rx_buf = vec![0u8; 65_536];
        // The endpoint may have queued datagrams when created (a client's first handshake).
        self.lock().after(self.clock.now(), self);
        loop {
            let wait = {
                let mut core = self.lock();
                if core.take_commands(commands, self) == Flow::Stop {
                    return;
                }
                let deadline = loop {
                    let now = self.clock.now();
                    match core.role.poll_timeout() {
                        Some(t) if t <= now => {
                            core.role.handle_timeout(now);
                            core.after(now, self);
                        }
                        other => break other.map(|t| (t, t - now)),
                    }
                };
                let armed = deadline.map_or(NO_DEADLINE, |(t, _)| t.as_micros().max(1));
                self.armed.store(armed, Ordering::SeqCst);
                deadline.map(|(_, wait)| wait)
            };
            let polled = poll.poll(&mut events, wait);
            self.armed.store(AWAKE, Ordering::SeqCst);
            if let Err(e) = polled {
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
                    self.lock().flush(self.clock.now(), self);
                }
                if event.is_readable() && self.receive(token, commands, &mut rx_buf) == Flow::Stop {
                    return;
                }
            }
        }
    }

    /// Reads every datagram waiting on the socket of `token`. Queued commands go first, before
    /// each datagram: a command sent before a datagram was caused (a subscription, then the
    /// message it should see) must take effect first, even when the wake-up and the datagram
    /// arrive in one poll.
    fn receive(&self, token: Token, commands: &Commands<R::Command>, buf: &mut [u8]) -> Flow {
        let socket = match (token, &self.secondary) {
            (PRIMARY, _) => &self.primary,
            (_, Some(s)) => s,
            (_, None) => return Flow::Continue,
        };
        loop {
            let mut core = self.lock();
            if core.take_commands(commands, self) == Flow::Stop {
                return Flow::Stop;
            }
            let (n, from) = match socket.recv_from(buf) {
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
            core.role
                .handle_datagram(now, from, buf.get(..n).unwrap_or_default());
            core.after(now, self);
        }
    }
}

impl<R: Role> Core<R> {
    /// Carries out every queued command, or closes the role if every handle is gone.
    fn take_commands(&mut self, commands: &Commands<R::Command>, io: &Shared<R>) -> Flow {
        loop {
            match commands.try_recv() {
                Ok(cmd) => {
                    let now = io.clock.now();
                    let flow = self.role.on_command(now, &io.membership, cmd);
                    self.after(now, io);
                    if flow == Flow::Stop {
                        return Flow::Stop;
                    }
                }
                Err(TryRecvError::Empty) => return Flow::Continue,
                Err(_) => {
                    let now = io.clock.now();
                    self.role.close(now);
                    self.after(now, io);
                    return Flow::Stop;
                }
            }
        }
    }

    /// Sends what the role queued, then routes its events.
    fn after(&mut self, now: Instant, io: &Shared<R>) {
        self.flush(now, io);
        self.role.dispatch(now);
    }

    /// Sends the datagram that would have blocked, then every datagram the role has queued,
    /// through one reused buffer; stops at the first that would block, and asks the poller to
    /// say when the socket has room again.
    fn flush(&mut self, now: Instant, io: &Shared<R>) {
        let (socket, token) = match &io.secondary {
            Some(s) if io.send_from_secondary => (s, SECONDARY),
            _ => (&io.primary, PRIMARY),
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
            if let Err(e) = reregister(&io.registry, socket, token, interest) {
                tracing::warn!(error = %e, "cannot change the socket's poll interest");
            }
        }
    }
}

/// Changes what the poller watches `socket` for. `reregister` wants `&mut`, which a shared
/// socket cannot give, but it only reads the descriptor.
#[cfg(unix)]
fn reregister(
    registry: &Registry,
    socket: &MioSocket,
    token: Token,
    interest: Interest,
) -> io::Result<()> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(socket);
    registry.reregister(&mut mio::unix::SourceFd(&fd), token, interest)
}

/// Elsewhere the sockets stay registered for reads only, and a blocked datagram waits for the
/// next wake-up (a datagram, a command or a deadline) to be tried again.
#[cfg(not(unix))]
fn reregister(_: &Registry, _: &MioSocket, _: Token, _: Interest) -> io::Result<()> {
    Ok(())
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
