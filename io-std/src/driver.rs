//! The blocking driver: one thread owns the sockets' poller and runs the role, sleeping in
//! `mio`'s poller until a datagram arrives on any socket, a command is queued, or the role's
//! next deadline.
//!
//! Sending a command wakes the poller through a `mio::Waker` (an eventfd on Linux), so a
//! command never waits for a deadline. Sockets are non-blocking; on Linux their readiness is
//! level-triggered and each readable event reads one batch of up to 32 datagrams in one
//! `recvmmsg` (the poller reports again while more wait), elsewhere it is edge-triggered and
//! each event is drained until `WouldBlock`. Every datagram of a batch is handled before what
//! the role queued for them goes out, up to 32 datagrams to any mix of destinations in one
//! `sendmmsg` ([`crate::plumbing::udp`]). A datagram that cannot be sent because the socket buffer is
//! full is kept, with the rest of its batch, and retried when the socket is writable again,
//! and no new datagram is taken from the role until they have gone.
//!
//! **What application code queues leaves in the same wake-up.** After every datagram, timer
//! or command the driver sends what the role queued, routes its events (running handlers and
//! callbacks), and sends again: a registered handler's answer goes out at once, not at the
//! next timer or datagram. Commands that callbacks issue through their handles (a deferred
//! answer, a registration) are queued and wake the poller, so the loop carries them out
//! before it sleeps.
//!
//! **Commands come in runs.** While the driver thread is awake a queued command does not wake
//! it (it looks at the queue again before it sleeps), and the commands queued together are
//! carried out together, up to `COMMAND_RUN`, before what they queued is sent and their events
//! routed (`Core::take_commands`): a burst of pipelined messages reaches the endpoint at once.
//!
//! **Calls and sends go out from the caller's thread.** The role lives behind a mutex that the
//! driver thread holds only while it works, never while it sleeps. A command the role marks
//! direct ([`Role::is_direct`]: a client's call or message, a server's RPC answer) is carried
//! out by the sending thread itself when the mutex is free and nothing is queued before it:
//! it is sealed and sent at once, without a hop to the driver thread and back. The driver is
//! woken only if the command moved the role's next deadline before the one it sleeps until.
//! Everything else, and every command that finds the role busy, goes through the channel;
//! except a call whose caller will block for its answer, which waits for the driver to let
//! go of the role (it holds it only while it works): queued, the call and its answer would
//! both go through the driver's thread, and the caller's next call would find the driver busy
//! again.
//!
//! **A caller may receive its own answer.** A call sent this way by a caller that will block
//! for its answer ([`Link::send_here`](crate::plumbing::link::Link::send_here)) takes the
//! primary socket out of the poller before the request goes out, and the calling thread then
//! receives on that socket itself (one blocking `recvfrom` at a time, without holding the
//! role; the socket is in blocking mode with a short receive timeout, and the driver reads
//! and sends on it with `MSG_DONTWAIT`). Every datagram it reads is handled under the role's lock as the driver would;
//! answers fill their callers' slots there, and messages for subscribers are kept for the
//! driver's thread, which is woken to run them. The driver thread meanwhile sleeps on,
//! watching its other sockets, the commands and its deadline, and does not read the primary
//! socket. When the answer is in, or the role's deadline passes first (the driver runs
//! timers), or a datagram cannot be sent, the socket goes back into the poller; adding it
//! back reports anything that arrived and was not read. The answer thus needs no hand-over
//! from the driver thread, and the driver need not wake to re-arm its timer for the call.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use mio::net::UdpSocket as MioSocket;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use pavillion_proto::endpoint::Endpoint;
use pavillion_proto::Instant;

use crate::plumbing::link::{Commands, TryRecvError};
use crate::plumbing::sockets::Sockets;
use crate::plumbing::udp::{RecvBatch, SendQueue};
use crate::plumbing::{Clock, Flow, Parts, Role};
use pavillion_io::tap::Tap;

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

/// As [`start`], with `before` given the handle before the thread starts: the commands it
/// queues are taken before any datagram is read.
pub(crate) fn start_with<R: Role, H, T>(
    name: &str,
    parts: Parts<R, H>,
    before: impl FnOnce(H) -> T,
) -> io::Result<(T, JoinHandle<()>)> {
    let early = before(parts.handle);
    let thread = spawn(
        name,
        parts.router,
        parts.sockets,
        parts.commands,
        parts.clock,
    )?;
    Ok((early, thread))
}

/// Starts the driver thread for `role` on `sockets`.
fn spawn<R: Role>(
    name: &str,
    mut role: R,
    sockets: Sockets,
    commands: Commands<R::Command>,
    clock: Clock,
) -> io::Result<JoinHandle<()>> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKE)?;
    // Membership changes need the std socket; a clone shares the same kernel socket.
    let membership = sockets.primary.try_clone()?;
    let primary_local = sockets.primary.local_addr()?;
    let secondary_local = sockets
        .secondary
        .as_ref()
        .map(UdpSocket::local_addr)
        .transpose()?;
    // The key log and capture, if this process writes them (`pavillion_io::tap`).
    let tap = Tap::for_driver();
    if let Some(tap) = &tap {
        tap.attach(role.endpoint_mut());
    }
    let mut primary = leadable(sockets.primary)?;
    // Write interest only while a datagram waits for room (see `Core::flush`): registered for
    // good, every send that frees its buffer would raise an edge and wake the poll for nothing.
    poll.registry()
        .register(&mut primary, PRIMARY, Interest::READABLE)?;
    let mut secondary = sockets.secondary.map(nonblocking).transpose()?;
    if let Some(s) = &mut secondary {
        poll.registry().register(s, SECONDARY, Interest::READABLE)?;
    }
    if LEVEL {
        reregister(poll.registry(), &primary, PRIMARY, Interest::READABLE)?;
        if let Some(s) = &secondary {
            reregister(poll.registry(), s, SECONDARY, Interest::READABLE)?;
        }
    }
    let shared = Arc::new(Shared {
        core: Mutex::new(Core {
            role,
            out: SendQueue::new(),
            inbox: RecvBatch::new(),
            batch: VecDeque::new(),
            led: false,
            parked: None,
        }),
        primary,
        secondary,
        send_from_secondary: sockets.send_from_secondary,
        primary_local,
        secondary_local,
        tap,
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
            shared.wake_if_asleep();
        }
    });
    let direct = Arc::downgrade(&shared);
    commands.set_direct(Box::new(move |cmd, nothing_queued, settled| {
        match direct.upgrade() {
            Some(shared) => shared.direct(cmd, nothing_queued, settled),
            None => Err(cmd),
        }
    }));
    thread::Builder::new().name(name.into()).spawn(move || {
        commands.set_driver_thread();
        shared.run(poll, &commands);
    })
}

/// An ICMP error from an earlier send, reported by a receive: the endpoint's own timers deal
/// with an unreachable peer, so the receiver goes on reading.
fn unreachable_peer(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}

fn nonblocking(socket: UdpSocket) -> io::Result<MioSocket> {
    socket.set_nonblocking(true)?;
    Ok(MioSocket::from_std(socket))
}

/// The primary socket. On Unix it stays in blocking mode, with a receive timeout of
/// [`LEAD_SLICE`]: a caller's thread that receives for the endpoint ([`Shared::lead`]) then
/// waits in one `recvfrom` instead of `poll(2)` and then `recvfrom`, and the driver reads and
/// sends with `MSG_DONTWAIT`, so that it never blocks on it. Elsewhere it is non-blocking.
#[cfg(unix)]
fn leadable(socket: UdpSocket) -> io::Result<MioSocket> {
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(LEAD_SLICE))?;
    Ok(MioSocket::from_std(socket))
}

#[cfg(not(unix))]
fn leadable(socket: UdpSocket) -> io::Result<MioSocket> {
    nonblocking(socket)
}

/// How long a caller's thread that receives for the endpoint waits in one `recvfrom` before
/// it looks again at whether its wait is over or the role's deadline has passed. Below the
/// protocol's 10 ms minimum retransmission timeout, so that the driver gets the socket back
/// soon after a deadline; a wait that ends early (its answer came) ends at once.
#[cfg_attr(not(unix), allow(dead_code))]
const LEAD_SLICE: core::time::Duration = core::time::Duration::from_millis(5);

/// What the driver thread and direct senders share.
struct Shared<R: Role> {
    core: Mutex<Core<R>>,
    primary: MioSocket,
    secondary: Option<MioSocket>,
    send_from_secondary: bool,
    /// The sockets' own addresses, for the capture.
    primary_local: SocketAddr,
    secondary_local: Option<SocketAddr>,
    /// The key log and capture, when this process writes either; `None` costs one branch
    /// per datagram.
    tap: Option<Arc<Tap>>,
    registry: Registry,
    membership: UdpSocket,
    clock: Clock,
    /// The deadline (µs) the driver thread sleeps until, [`NO_DEADLINE`], or [`AWAKE`]. Stored
    /// while holding `core`, so a direct sender that took `core` after it reads the deadline
    /// the driver really sleeps until (or `AWAKE`: the driver will read the role's deadline
    /// again under the lock). A sender that wakes the driver for a command stores `AWAKE`
    /// without the lock ([`Shared::wake_if_asleep`]): the driver is bound to run then.
    armed: AtomicU64,
    waker: Waker,
}

/// The role and its send state; whoever holds it may drive the role.
struct Core<R: Role> {
    role: R,
    /// What the role queued and has not gone yet: between flushes, only datagrams that
    /// would have blocked (sent when the socket has room again).
    out: SendQueue,
    /// The driver's receive buffers (a caller's thread that receives has its own).
    inbox: RecvBatch,
    /// The commands taken from the queue and not yet carried out ([`Core::take_commands`]):
    /// empty whenever the role is let go. Kept for its buffer, which goes back to the queue.
    batch: VecDeque<R::Command>,
    /// The primary socket is out of the poller: a caller's thread receives on it, or it is
    /// parked between calls (`parked`); the driver must not read it.
    led: bool,
    /// Since when the primary socket is parked: out of the poller, nobody reading it, kept
    /// for the next call of a caller that receives its own answer ([`PARK_GRACE`]). Only
    /// while `led`.
    parked: Option<Instant>,
}

impl<R: Role> Shared<R> {
    /// The role; a panic elsewhere while holding it (a callback's panics are caught, so only
    /// a bug of ours) leaves nothing half-written that matters more than stopping would.
    fn lock(&self) -> MutexGuard<'_, Core<R>> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the driver thread for a queued command, unless it is awake: it takes the queued
    /// commands before it sleeps ([`Shared::run`] looks at the queue again after it armed),
    /// so a sender that is ahead of the driver does not pay a system call per command.
    fn wake_if_asleep(&self) {
        // Pairs with the fence in `run`: either the driver sees the command queued after it
        // armed, or this sees it armed and wakes it.
        std::sync::atomic::fence(Ordering::SeqCst);
        // The first command after the driver armed wakes it and marks it awake: the commands
        // queued before it runs again do not wake it once more, a system call each (the
        // driver stores `AWAKE` itself only once it runs, and takes them all then).
        if claim_wake(&self.armed) {
            self.wake();
        }
    }

    fn wake(&self) {
        // A failed wake only delays the command until the next datagram or deadline.
        if let Err(e) = self.waker.wake() {
            tracing::debug!(error = %e, "driver wake-up failed");
        }
    }

    /// Carries out `cmd` on the calling thread if the role is free, the command may run
    /// outside the loop, and nothing is queued before it; gives it back otherwise. With
    /// `settled`, the calling thread then receives for the endpoint until `settled` holds or
    /// it must give the socket back (see [`Shared::lead`]).
    fn direct(
        &self,
        cmd: R::Command,
        nothing_queued: &dyn Fn() -> bool,
        settled: Option<&dyn Fn() -> bool>,
    ) -> Result<(), R::Command> {
        // A caller that will block for its answer waits for the driver to finish what it is
        // doing (it holds the role only while it works, never while it sleeps) rather than
        // queue: queued, the call would go out from the driver's thread and its answer come
        // back through it, and the caller's next call would find the driver busy again
        // handing that answer over, so that one busy moment (a timer) would send every call
        // after it through the driver. `send_here` is never used on the driver's own thread.
        let core = match settled {
            Some(_) => Ok(self.lock()),
            None => self.core.try_lock(),
        };
        let Ok(mut core) = core else {
            return Err(cmd);
        };
        // Queued commands go first; checked under the lock, which the driver holds while it
        // takes them, so nothing can slip in between.
        if !core.role.is_direct(&cmd) || !nothing_queued() {
            return Err(cmd);
        }
        // The socket leaves the poller before the request goes out, so that the answer can
        // never wake the driver thread (taking it out after the send would save the
        // `epoll_ctl` from the request's path, but a caller preempted between the two, as on
        // a loaded machine, then wakes the driver for every answer that beats it). One caller
        // at a time; a blocked send means the driver is waiting for room, which only the
        // poller reports.
        // A socket parked by the previous call is taken as it is: no system call.
        let lead = settled.filter(|_| {
            core.out.is_empty()
                && !self.send_from_secondary
                && (core.parked.take().is_some() || (!core.led && self.take_primary().is_ok()))
        });
        if lead.is_some() {
            core.led = true;
        }
        let now = self.clock.now();
        // A direct command never stops the loop.
        let _ = core.role.on_command(now, &self.membership, cmd);
        core.flush(now, self);
        if let Some(settled) = lead {
            drop(core);
            self.lead(settled);
            return Ok(());
        }
        let next = core.role.poll_timeout();
        drop(core);
        self.wake_if_earlier(next);
        Ok(())
    }

    /// Wakes the driver thread if it sleeps until later than `next`, so that it re-arms.
    fn wake_if_earlier(&self, next: Option<Instant>) {
        let armed = self.armed.load(Ordering::SeqCst);
        if armed != AWAKE && next.is_some_and(|t| t.as_micros() < armed) {
            self.wake();
        }
    }

    /// Takes the primary socket out of the poller, for a caller's thread to receive on.
    ///
    /// On Linux it stays registered with an empty interest (which `mio` cannot express):
    /// changing the interest is cheaper than removing and adding it again (no allocation in
    /// the kernel). Only a socket error could still wake the driver, which then finds the
    /// socket led and leaves it alone.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn take_primary(&self) -> io::Result<()> {
        use rustix::event::epoll::{self, EventData, EventFlags};
        let token = EventData::new_u64(PRIMARY.0 as u64);
        Ok(epoll::modify(
            &self.registry,
            &self.primary,
            token,
            EventFlags::ET,
        )?)
    }

    #[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
    fn take_primary(&self) -> io::Result<()> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.primary);
        self.registry.deregister(&mut mio::unix::SourceFd(&fd))
    }

    /// Elsewhere callers do not receive for the endpoint: the driver always does.
    #[cfg(not(unix))]
    fn take_primary(&self) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Puts the primary socket back into the poller.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn give_primary(&self, interest: Interest) -> io::Result<()> {
        reregister(&self.registry, &self.primary, PRIMARY, interest)
    }

    #[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
    fn give_primary(&self, interest: Interest) -> io::Result<()> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.primary);
        self.registry
            .register(&mut mio::unix::SourceFd(&fd), PRIMARY, interest)
    }

    #[cfg(not(unix))]
    fn give_primary(&self, _: Interest) -> io::Result<()> {
        Ok(())
    }

    /// Receives on the primary socket on the calling thread (which holds it, `Core::led`)
    /// until `settled` holds, the role's next deadline passes (the driver runs timers), or a
    /// datagram cannot be sent; then gives the socket back to the poller. The role is locked
    /// only while a datagram is handled, so commands from other threads go on meanwhile.
    fn lead(&self, settled: &dyn Fn() -> bool) {
        LEAD_BUF.with_borrow_mut(|buf| {
            while !settled() {
                let deadline = self.lock().role.poll_timeout();
                // A call always has a deadline; without one, the driver's loop watches.
                if deadline.is_none_or(|t| t <= self.clock.now()) {
                    break;
                }
                // Blocks up to `LEAD_SLICE`, without holding the role.
                let (n, from) = match recv_blocking(&self.primary, buf) {
                    Ok(got) => got,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    // As in `receive`: the endpoint's timers deal with an unreachable peer.
                    Err(e) if unreachable_peer(&e) => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "recv_from failed");
                        break;
                    }
                };
                tracing::trace!(%from, len = n, "datagram in");
                let datagram = buf.get(..n).unwrap_or_default();
                if let Some(tap) = &self.tap {
                    tap.datagram(self.primary_local, from, true, datagram);
                }
                let mut core = self.lock();
                let now = self.clock.now();
                core.role
                    .endpoint_mut()
                    .handle_datagram(now, from, datagram);
                // Messages run on the driver's thread; it is woken at once, not when the call
                // ends.
                let keeps = core.role.dispatch_direct(now);
                // After routing, as the driver does (`Core::after`): all that was queued goes
                // now.
                core.flush(now, self);
                let blocked = !core.out.is_empty();
                drop(core);
                if keeps {
                    self.wake();
                }
                if blocked {
                    break;
                }
            }
        });
        let mut core = self.lock();
        let now = self.clock.now();
        let next = core.role.poll_timeout();
        if settled() && core.out.is_empty() {
            // Parked for the caller's next call: back-to-back calls then take and give
            // back nothing. The driver gives it back after `PARK_GRACE` with no call; it
            // sleeps at most that long while the socket is out of the poller, so it is
            // woken here only if it went to sleep before this call took the socket.
            core.parked = Some(now);
            drop(core);
            let grace = now + PARK_GRACE;
            self.wake_if_earlier(Some(next.map_or(grace, |t| t.min(grace))));
            return;
        }
        core.give_primary(self);
        drop(core);
        self.wake_if_earlier(next);
    }

    /// The loop. Returns when a command closes the endpoint or every handle is gone.
    fn run(&self, mut poll: Poll, commands: &Commands<R::Command>) {
        let mut events = Events::with_capacity(16);
        // The endpoint may have queued datagrams when created (a client's first handshake).
        self.lock().after(self.clock.now(), self);
        loop {
            let wait = {
                let mut core = self.lock();
                if core.take_commands(commands, self) == Flow::Stop {
                    return;
                }
                // Messages a caller's thread received (`Shared::lead`) woke us to run here.
                core.dispatch(self.clock.now(), self);
                // A socket parked for a while without a call comes back (`PARK_GRACE`).
                let now = self.clock.now();
                if core.parked.is_some_and(|at| now >= at + PARK_GRACE) {
                    core.give_primary(self);
                }
                let deadline = loop {
                    let now = self.clock.now();
                    match core.role.poll_timeout() {
                        Some(t) if t <= now => {
                            core.role.endpoint_mut().handle_timeout(now);
                            core.after(now, self);
                        }
                        other => break other,
                    }
                };
                // While the socket is out of the poller, the driver looks again within the
                // grace, so that a socket parked after this sleep began comes back in time.
                let now = self.clock.now();
                let deadline = match (deadline, core.led) {
                    (d, true) => {
                        let back = core.parked.map_or(now, |at| at.max(now)) + PARK_GRACE;
                        Some(d.map_or(back, |t| t.min(back)))
                    }
                    (d, false) => d,
                }
                .map(|t| (t, t.saturating_duration_since(now)));
                let armed = deadline.map_or(NO_DEADLINE, |(t, _)| t.as_micros().max(1));
                self.armed.store(armed, Ordering::SeqCst);
                // A command queued after `take_commands` looked, by a sender that saw us
                // awake and did not wake us (`Shared::wake_if_asleep`): do not sleep on it.
                std::sync::atomic::fence(Ordering::SeqCst);
                if commands.is_empty() {
                    deadline.map(|(_, wait)| wait)
                } else {
                    Some(core::time::Duration::ZERO)
                }
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
                if event.is_readable() && self.receive(token, commands) == Flow::Stop {
                    return;
                }
            }
        }
    }

    /// Reads the datagrams waiting on the socket of `token`, up to [`BATCH`](crate::plumbing::udp::BATCH) per
    /// system call, handles them all, then sends what the role queued for them in as few
    /// system calls as it can ([`Core::after`]). Where readiness is level-triggered
    /// ([`LEVEL`]) one batch is read per readable event (the poller reports again while more
    /// wait), else batches until none waits. Queued commands go first, before each batch: a
    /// command sent before a datagram was caused (a subscription, then the message it should
    /// see) must take effect first, even when the wake-up and the datagram arrive in one poll.
    fn receive(&self, token: Token, commands: &Commands<R::Command>) -> Flow {
        let socket = match (token, &self.secondary) {
            (PRIMARY, _) => &self.primary,
            (_, Some(s)) => s,
            (_, None) => return Flow::Continue,
        };
        loop {
            let mut guard = self.lock();
            if guard.take_commands(commands, self) == Flow::Stop {
                return Flow::Stop;
            }
            // A caller's thread holds the socket and reads it (`Shared::lead`).
            if token == PRIMARY && guard.led {
                return Flow::Continue;
            }
            let core = &mut *guard;
            match core.inbox.recv(socket) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flow::Continue,
                // ICMP errors surface here (connection refused); the endpoint's own timers
                // deal with an unreachable peer, and the next datagram may be waiting.
                Err(e) if unreachable_peer(&e) || e.kind() == io::ErrorKind::Interrupted => {
                    continue
                }
                Err(e) => {
                    tracing::debug!(error = %e, "recv_from failed");
                    return Flow::Continue;
                }
            }
            let local = match token {
                PRIMARY => self.primary_local,
                _ => self.secondary_local.unwrap_or(self.primary_local),
            };
            let now = self.clock.now();
            for (datagram, from) in core.inbox.datagrams() {
                tracing::trace!(%from, len = datagram.len(), "datagram in");
                if let Some(tap) = &self.tap {
                    tap.datagram(local, from, true, datagram);
                }
                core.role
                    .endpoint_mut()
                    .handle_datagram(now, from, datagram);
            }
            core.after(now, self);
            if LEVEL {
                return Flow::Continue;
            }
        }
    }
}

impl<R: Role> Core<R> {
    /// Carries out every queued command, or closes the role if every handle is gone.
    ///
    /// Commands queued together are carried out together, up to [`COMMAND_RUN`], before
    /// what they queued is sent and their events routed: a burst of pipelined messages
    /// reaches the endpoint at once, so that it can coalesce them, and costs one pass of
    /// sending and routing instead of one per message. The queue is taken whole, under one
    /// lock ([`Commands::take_batch`]), into `Core::batch`, which is empty again whenever the
    /// role is let go (a direct sender's look at the queue, under the role's lock, sees all
    /// that waits).
    fn take_commands(&mut self, commands: &Commands<R::Command>, io: &Shared<R>) -> Flow {
        let mut run = 0;
        // One reading of the clock per run: its commands reach the endpoint together.
        let mut started = None;
        loop {
            let Some(cmd) = self.batch.pop_front() else {
                match commands.take_batch(&mut self.batch) {
                    Ok(()) => continue,
                    // The run so far is sent and routed, and the queue looked at again: its
                    // callbacks may have queued more.
                    Err(_) if started.is_some() => {
                        if let Some(now) = started.take() {
                            self.after(now, io);
                        }
                        run = 0;
                        continue;
                    }
                    Err(TryRecvError::Empty) => return Flow::Continue,
                    Err(_) => {
                        let now = io.clock.now();
                        self.role.close(now);
                        self.after(now, io);
                        return Flow::Stop;
                    }
                }
            };
            let now = *started.get_or_insert_with(|| io.clock.now());
            let flow = self.role.on_command(now, &io.membership, cmd);
            run += 1;
            if flow == Flow::Stop {
                // The rest are refused now (their callers see the endpoint closed), not
                // when the driver's state goes.
                self.batch.clear();
                self.after(now, io);
                return Flow::Stop;
            }
            if run >= COMMAND_RUN {
                self.after(now, io);
                run = 0;
                started = None;
            }
        }
    }

    /// Sends what the role queued, routes its events, then sends what that queued: a
    /// handler's answer (or anything else application code made the role send) leaves in the
    /// same wake-up as the datagram that caused it, not at the next timer or datagram.
    fn after(&mut self, now: Instant, io: &Shared<R>) {
        self.flush(now, io);
        self.dispatch(now, io);
    }

    /// Routes the role's events (running the application's callbacks and handlers), then
    /// sends what they made it queue. Commands the callbacks issue through their handles are
    /// queued and wake the driver, which carries them out before it sleeps.
    fn dispatch(&mut self, now: Instant, io: &Shared<R>) {
        self.role.dispatch(now);
        self.flush(now, io);
    }

    /// Sends the datagrams that would have blocked, then every datagram the role has queued,
    /// [`BATCH`](crate::plumbing::udp::BATCH) at a time, each batch in as few system calls as the kernel allows
    /// ([`SendQueue::send`]); stops at the first that would block, keeps it and the rest of
    /// its batch, takes no more from the role, and asks the poller to say when the socket has
    /// room again.
    fn flush(&mut self, now: Instant, io: &Shared<R>) {
        let (socket, token) = match &io.secondary {
            Some(s) if io.send_from_secondary => (s, SECONDARY),
            _ => (&io.primary, PRIMARY),
        };
        // Secrets first: the input that made them may also have queued their first packet.
        if let Some(tap) = &io.tap {
            tap.drain_secrets(self.role.endpoint_mut());
        }
        let local = match token {
            SECONDARY => io.secondary_local.unwrap_or(io.primary_local),
            _ => io.primary_local,
        };
        let was_blocked = !self.out.is_empty();
        loop {
            let gone = self.out.send(socket, |datagram, to| {
                if let Some(tap) = &io.tap {
                    tap.datagram(local, to, false, datagram);
                }
            });
            if !gone {
                break;
            }
            while self.out.has_room() {
                let Some(t) = self
                    .role
                    .endpoint_mut()
                    .poll_transmit(now, self.out.next_buf())
                else {
                    break;
                };
                tracing::trace!(to = %t.destination, len = t.len, "datagram out");
                self.out.push(t.len, t.destination);
            }
            if self.out.is_empty() {
                break;
            }
        }
        let blocked = !self.out.is_empty();
        // Parked, nobody would see the socket become writable: it goes back at once.
        if blocked && token == PRIMARY && self.parked.is_some() {
            self.give_primary(io);
            return;
        }
        // Out of the poller while led: `Shared::lead` adds it back with the right interest.
        if blocked != was_blocked && !(token == PRIMARY && self.led) {
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

impl<R: Role> Core<R> {
    /// Puts the primary socket back into the poller (from a lead or from parking), watching
    /// for room too if a datagram waits for it. Added back, the socket reports what is
    /// waiting in it: nothing unread is lost.
    fn give_primary(&mut self, io: &Shared<R>) {
        self.led = false;
        self.parked = None;
        let interest = if !self.out.is_empty() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if let Err(e) = io.give_primary(interest) {
            tracing::warn!(error = %e, "cannot give the socket back to the poller");
        }
    }
}

/// Whether the caller is the one to wake a driver that sleeps with `armed`: the first since
/// it armed, which marks it [`AWAKE`] (read first, so that a driver already awake costs no
/// write to the shared line).
fn claim_wake(armed: &AtomicU64) -> bool {
    armed.load(Ordering::SeqCst) != AWAKE && armed.swap(AWAKE, Ordering::SeqCst) != AWAKE
}

/// How long the primary socket stays parked out of the poller after a caller received its
/// own answer, waiting for that caller's next call: back-to-back calls then make no
/// `epoll_ctl` at all. A datagram nobody asked for (a server's push) that arrives meanwhile
/// waits at most about this long (the driver looks at whole milliseconds) before the driver
/// reads it.
const PARK_GRACE: pavillion_proto::Duration = pavillion_proto::Duration::from_millis(1);

/// The most commands [`Core::take_commands`] carries out before it sends what they queued: a
/// batch's worth of messages (the endpoint puts at most 64 in one datagram), so that a long
/// queue does not hold back the first of them.
const COMMAND_RUN: usize = 64;

/// Whether the sockets' readiness is level-triggered (Linux, see [`reregister`]): then a
/// readable event is worth one datagram, and the poller reports again while more wait, which
/// saves the read that would only say `WouldBlock` after each datagram of a ping-pong.
/// Elsewhere it is `mio`'s edge-triggered readiness, and each event is drained.
const LEVEL: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Changes what the poller watches `socket` for, level-triggered (`mio` registers
/// edge-triggered only; see [`LEVEL`]).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn reregister(
    registry: &Registry,
    socket: &MioSocket,
    token: Token,
    interest: Interest,
) -> io::Result<()> {
    use rustix::event::epoll::{self, EventData, EventFlags};
    let mut flags = EventFlags::empty();
    if interest.is_readable() {
        flags |= EventFlags::IN | EventFlags::RDHUP;
    }
    if interest.is_writable() {
        flags |= EventFlags::OUT;
    }
    let token = EventData::new_u64(token.0 as u64);
    Ok(epoll::modify(registry, socket, token, flags)?)
}

/// Changes what the poller watches `socket` for. `reregister` wants `&mut`, which a shared
/// socket cannot give, but it only reads the descriptor.
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
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

thread_local! {
    /// A caller's thread receives into its own buffer, without holding the role ([`Shared::lead`]).
    static LEAD_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 65_536]);
}

/// Receives one datagram on the primary socket, waiting up to its receive timeout
/// ([`LEAD_SLICE`]); `WouldBlock` when none came.
#[cfg(unix)]
fn recv_blocking(socket: &MioSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    recv_with(socket, buf, rustix::net::RecvFlags::empty())
}

#[cfg(not(unix))]
fn recv_blocking(_: &MioSocket, _: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Receives one datagram if one is waiting, whatever the socket's mode (on Linux the
/// driver receives in batches instead, [`RecvBatch`]).
#[cfg(unix)]
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(crate) fn recv_nowait(socket: &MioSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    recv_with(socket, buf, rustix::net::RecvFlags::DONTWAIT)
}

#[cfg(not(unix))]
pub(crate) fn recv_nowait(socket: &MioSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    socket.recv_from(buf)
}

#[cfg(unix)]
fn recv_with(
    socket: &MioSocket,
    buf: &mut [u8],
    flags: rustix::net::RecvFlags,
) -> io::Result<(usize, SocketAddr)> {
    loop {
        let (_, n, from) = rustix::net::recvfrom(socket, &mut *buf, flags)?;
        // A UDP socket always reports the sender; anything else is not for us.
        if let Some(from) = from.and_then(|a| SocketAddr::try_from(a).ok()) {
            return Ok((n.min(buf.len()), from));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Of the commands queued while the driver sleeps, only the first wakes it (a system
    /// call); the next ones find it marked awake, as they do once it runs.
    #[test]
    fn only_the_first_command_wakes_a_sleeping_driver() {
        let armed = AtomicU64::new(NO_DEADLINE);
        assert!(claim_wake(&armed));
        assert!(!claim_wake(&armed));
        assert_eq!(armed.load(Ordering::SeqCst), AWAKE);
        // Armed again before the driver sleeps next: the next command wakes it.
        armed.store(1_000, Ordering::SeqCst);
        assert!(claim_wake(&armed));
        assert!(!claim_wake(&armed));
    }
}
