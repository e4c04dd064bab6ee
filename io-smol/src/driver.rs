//! The async driver: one task owns the sockets and the role.
//!
//! The task waits on whichever comes first of a command from the handles, datagrams on any
//! of its `Async<UdpSocket>`s (the listening and reply sockets of a server, or a multicast
//! client's own and group sockets), or an `async_io::Timer` armed at the role's
//! `poll_timeout`. After each it drains `poll_transmit`, routes the role's events, and
//! drains `poll_transmit` again, so that what handlers and callbacks made the role send
//! leaves before the task waits again. There is no sleep-and-poll anywhere: the task only
//! runs when one of those is ready.
//!
//! Datagrams move in batches, as in `pavillion-std` (`pavillion_io::plumbing::udp`): a
//! receive takes every datagram waiting, up to 32, in one `recvmmsg(2)` (tried at once, and
//! after readiness when none waited), and all of them are handled before what the role
//! queued for them goes out, up to 32 datagrams in one `sendmmsg(2)`. A send that would block
//! keeps the rest of its batch and waits for the socket to be writable; no new datagram is
//! taken from the role until they have gone. Queued commands still come before each batch.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use async_io::{Async, Timer};
use futures_lite::future;
use pavillion_io::plumbing::link::Commands;
use pavillion_io::plumbing::sockets::Sockets;
use pavillion_io::plumbing::udp::{RecvBatch, SendQueue};
use pavillion_io::plumbing::{Clock, Flow, Parts, Role};
use pavillion_io::tap::Tap;
use pavillion_proto::endpoint::Endpoint;
use pavillion_proto::Instant;

/// Starts the driver task of an opened endpoint, and returns its handle and task.
pub(crate) fn start<R: Role, H>(parts: Parts<R, H>) -> io::Result<(H, smol::Task<()>)> {
    let task = spawn(parts.router, parts.sockets, parts.commands, parts.clock)?;
    Ok((parts.handle, task))
}

/// Starts the driver task for `role` on smol's global executor (`smol::spawn`), so it runs
/// whether or not the application is polling anything of ours.
fn spawn<R: Role>(
    role: R,
    sockets: Sockets,
    commands: Commands<R::Command>,
    clock: Clock,
) -> io::Result<smol::Task<()>> {
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
    let mut role = role;
    if let Some(tap) = &tap {
        tap.attach(role.endpoint_mut());
    }
    let io = Io {
        primary: Async::new(sockets.primary)?,
        secondary: sockets.secondary.map(Async::new).transpose()?,
        send_from_secondary: sockets.send_from_secondary,
        membership,
        primary_local,
        secondary_local,
        tap,
    };
    Ok(smol::spawn(async move {
        drive(&mut role, io, commands, clock).await;
        retire(role).await;
    }))
}

/// Drops a role whose loop has ended, on smol's blocking pool: a role with a durable store owns
/// its writer thread, whose drop lets it finish the commit under way and joins it (a disk sync,
/// milliseconds), which must not hold up the executor. The driver task ends only after that, so
/// the store's file is free again when `close().await` returns.
async fn retire<R: Role>(role: R) {
    smol::unblock(move || drop(role)).await;
}

struct Io {
    primary: Async<UdpSocket>,
    secondary: Option<Async<UdpSocket>>,
    send_from_secondary: bool,
    membership: UdpSocket,
    /// The sockets' own addresses, for the capture.
    primary_local: SocketAddr,
    secondary_local: Option<SocketAddr>,
    /// The key log and capture, when this process writes either; `None` costs one branch
    /// per datagram.
    tap: Option<Arc<Tap>>,
}

impl Io {
    fn output(&self) -> &Async<UdpSocket> {
        match &self.secondary {
            Some(s) if self.send_from_secondary => s,
            _ => &self.primary,
        }
    }

    /// The address of the socket datagrams go out from.
    fn output_local(&self) -> SocketAddr {
        match self.secondary_local {
            Some(a) if self.send_from_secondary => a,
            _ => self.primary_local,
        }
    }
}

/// The most commands carried out in one wake-up before what they queued is sent: a batch's
/// worth of messages (the endpoint puts at most 64 in one datagram).
const COMMAND_RUN: usize = 64;

/// What woke the driver.
enum Wake<C> {
    /// A command, or `None` when every handle is gone.
    Command(Option<C>),
    /// A batch was read into the primary socket's [`RecvBatch`]: how many datagrams.
    Primary(io::Result<usize>),
    /// As `Primary`, for the secondary socket.
    Secondary(io::Result<usize>),
    Timeout,
}

/// The loop. Returns (dropping the sockets, which frees the port) when a command closes the
/// endpoint or every handle is gone.
async fn drive<R: Role>(role: &mut R, io: Io, commands: Commands<R::Command>, clock: Clock) {
    let mut rx_primary = RecvBatch::new();
    let mut rx_secondary = RecvBatch::new();
    let mut out = SendQueue::new();
    let tx_buf = &mut out;
    // The endpoint may have queued datagrams when created (a client's first handshake).
    let now = clock.now();
    after(role, &io, now, tx_buf).await;
    loop {
        let now = clock.now();
        let deadline = role.poll_timeout();
        if deadline.is_some_and(|t| t <= now) {
            role.endpoint_mut().handle_timeout(now);
            after(role, &io, now, tx_buf).await;
            continue;
        }
        let timer = deadline
            .and_then(|t| clock.to_std(t))
            .map_or_else(Timer::never, Timer::at);
        // Commands first: a caller waits on each, and they are finite, so datagrams are not
        // starved; the timer last, since a datagram or command also advances the endpoint.
        let wake = future::or(
            async { Wake::Command(commands.recv().await) },
            future::or(
                async { Wake::Primary(receive(&io.primary, &mut rx_primary).await) },
                future::or(
                    async {
                        match &io.secondary {
                            Some(s) => Wake::Secondary(receive(s, &mut rx_secondary).await),
                            None => future::pending().await,
                        }
                    },
                    async {
                        timer.await;
                        Wake::Timeout
                    },
                ),
            ),
        )
        .await;
        let now = clock.now();
        let (got, batch, local) = match wake {
            Wake::Command(Some(command)) => {
                // The commands queued with it are carried out with it, before anything is
                // sent: a burst of pipelined messages reaches the endpoint together (it may
                // coalesce them) and costs one pass of sending and routing.
                let mut flow = role.on_command(now, &io.membership, command);
                let mut run = 1;
                while flow == Flow::Continue && run < COMMAND_RUN {
                    let Ok(command) = commands.try_recv() else {
                        break;
                    };
                    flow = role.on_command(now, &io.membership, command);
                    run += 1;
                }
                after(role, &io, now, tx_buf).await;
                if flow == Flow::Stop {
                    return;
                }
                continue;
            }
            Wake::Command(None) => {
                role.close(now);
                after(role, &io, now, tx_buf).await;
                return;
            }
            Wake::Primary(got) => (got, &rx_primary, io.primary_local),
            Wake::Secondary(got) => (
                got,
                &rx_secondary,
                io.secondary_local.unwrap_or(io.primary_local),
            ),
            Wake::Timeout => {
                role.endpoint_mut().handle_timeout(now);
                after(role, &io, now, tx_buf).await;
                continue;
            }
        };
        match got {
            Ok(_) => {
                // Every datagram of the batch first, then what the role queued for them in
                // as few system calls as the kernel allows. The next batch is read when the
                // loop comes round (commands first), at once if more wait.
                for (datagram, from) in batch.datagrams() {
                    tracing::trace!(%from, len = datagram.len(), "datagram in");
                    if let Some(tap) = &io.tap {
                        tap.datagram(local, from, true, datagram);
                    }
                    role.endpoint_mut().handle_datagram(now, from, datagram);
                }
                after(role, &io, now, tx_buf).await;
            }
            // ICMP errors surface here on some systems; the endpoint's own timers deal with
            // an unreachable peer.
            Err(e) => tracing::debug!(error = %e, "recv_from failed"),
        }
    }
}

/// Sends every datagram the role has queued, routes its events, then sends what routing
/// queued: a handler's answer (or anything else application code made the role send) leaves
/// in the same wake-up as the datagram that caused it, not at the next timer or datagram.
/// Commands that callbacks issue through their handles are in the channel, which the loop
/// reads first when it waits again.
async fn after<R: Role>(role: &mut R, io: &Io, now: Instant, out: &mut SendQueue) {
    flush(role, io, now, out).await;
    role.dispatch(now);
    flush(role, io, now, out).await;
}

/// Reads the datagrams waiting on `socket` into `batch` (one `recvmmsg`), waiting for
/// readiness only when none waits. ICMP errors (a peer's port unreachable) surface as a
/// failed receive on some systems; they are skipped here, since the endpoint's own timers deal
/// with an unreachable peer and the next datagram may already wait.
async fn receive(socket: &Async<UdpSocket>, batch: &mut RecvBatch) -> io::Result<usize> {
    socket
        .read_with(|s| loop {
            match batch.recv(s) {
                Err(e) if transient(&e) => {}
                other => return other,
            }
        })
        .await
}

/// Errors after which the next receive may succeed at once.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Sends every datagram the role has queued, [`BATCH`](pavillion_io::plumbing::udp::BATCH)
/// at a time, each batch in as few system calls as the kernel allows. A batch that would
/// block waits for the socket to be writable and goes on from the first datagram that did
/// not go; the role is asked for more only once the batch is out.
async fn flush<R: Role>(role: &mut R, io: &Io, now: Instant, out: &mut SendQueue) {
    let socket = io.output();
    // Secrets first: the input that made them may also have queued their first packet.
    if let Some(tap) = &io.tap {
        tap.drain_secrets(role.endpoint_mut());
    }
    let local = io.output_local();
    loop {
        while !out.send(socket.get_ref(), |datagram, to| {
            if let Some(tap) = &io.tap {
                tap.datagram(local, to, false, datagram);
            }
        }) {
            if let Err(e) = socket.writable().await {
                // Kept: the next flush tries again.
                tracing::debug!(error = %e, "socket not writable");
                return;
            }
        }
        while out.has_room() {
            let Some(t) = role.endpoint_mut().poll_transmit(now, out.next_buf()) else {
                break;
            };
            tracing::trace!(to = %t.destination, len = t.len, "datagram out");
            out.push(t.len, t.destination);
        }
        if out.is_empty() {
            return;
        }
    }
}
