//! The driving loop shared by both roles: one task owns the socket and the endpoint.
//!
//! The task waits on whichever comes first of a command from the handles (an unbounded
//! `async_channel`), a datagram on the `Async<UdpSocket>`, or an `async_io::Timer` armed at the
//! endpoint's `poll_timeout`. After each it drains `poll_transmit` through one reused buffer
//! and then routes the endpoint's events. There is no sleep-and-poll anywhere: the task only
//! runs when one of those three is ready.

use std::net::{SocketAddr, UdpSocket};

use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use futures_lite::future;
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
    fn on_command(&mut self, now: Instant, command: Self::Command) -> bool;
    /// Drains the endpoint's events and hands them to the application.
    fn dispatch(&mut self, now: Instant);
    /// Closes the endpoint because every handle is gone.
    fn close(&mut self, now: Instant);
}

/// A one-answer channel: the driver keeps the sender until the outcome is known.
pub(crate) fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    async_channel::bounded(1)
}

/// What woke the driver.
enum Wake<C> {
    /// A command, or `None` when every handle is gone.
    Command(Option<C>),
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Timeout,
}

/// Starts the driver task for `role` on smol's global executor (`smol::spawn`), so it runs
/// whether or not the application is polling anything of ours.
pub(crate) fn spawn<R: Role>(
    role: R,
    socket: Async<UdpSocket>,
    commands: Receiver<R::Command>,
    clock: Clock,
) -> smol::Task<()> {
    smol::spawn(drive(role, socket, commands, clock))
}

/// The loop. Returns (dropping the socket, which frees the port) when a command asks to close
/// or every handle is gone.
async fn drive<R: Role>(
    mut role: R,
    socket: Async<UdpSocket>,
    commands: Receiver<R::Command>,
    clock: Clock,
) {
    let mut rx_buf = vec![0u8; 65_536];
    let mut tx_buf = vec![0u8; wire::MAX_DATAGRAM];
    // The endpoint may have queued datagrams when created (a client's first handshake).
    let now = clock.now();
    flush(&mut role, &socket, now, &mut tx_buf).await;
    role.dispatch(now);
    loop {
        let now = clock.now();
        let deadline = role.poll_timeout();
        if deadline.is_some_and(|t| t <= now) {
            role.handle_timeout(now);
            flush(&mut role, &socket, now, &mut tx_buf).await;
            role.dispatch(now);
            continue;
        }
        let timer = deadline
            .and_then(|t| clock.to_std(t))
            .map_or_else(Timer::never, Timer::at);
        // Commands first: a caller waits on each, and they are finite, so datagrams are not
        // starved; the timer last, since a datagram or command also advances the endpoint.
        let wake = future::or(
            async { Wake::Command(commands.recv().await.ok()) },
            future::or(
                async { Wake::Datagram(socket.recv_from(&mut rx_buf).await) },
                async {
                    timer.await;
                    Wake::Timeout
                },
            ),
        )
        .await;
        let now = clock.now();
        match wake {
            Wake::Command(Some(command)) => {
                let open = role.on_command(now, command);
                flush(&mut role, &socket, now, &mut tx_buf).await;
                role.dispatch(now);
                if !open {
                    return;
                }
            }
            Wake::Command(None) => {
                role.close(now);
                flush(&mut role, &socket, now, &mut tx_buf).await;
                role.dispatch(now);
                return;
            }
            Wake::Datagram(Ok((n, from))) => {
                tracing::trace!(%from, len = n, "datagram in");
                role.handle_datagram(now, from, rx_buf.get(..n).unwrap_or_default());
                flush(&mut role, &socket, now, &mut tx_buf).await;
                role.dispatch(now);
            }
            // ICMP errors surface here on some systems; the endpoint's own timers deal with
            // an unreachable peer.
            Wake::Datagram(Err(e)) => tracing::debug!(error = %e, "recv_from failed"),
            Wake::Timeout => {
                role.handle_timeout(now);
                flush(&mut role, &socket, now, &mut tx_buf).await;
                role.dispatch(now);
            }
        }
    }
}

/// Sends every datagram the endpoint has queued, through one reused buffer. `send_to` waits
/// for the socket to be writable, so a datagram that would block stays in the buffer until it
/// can go, and the next one is only polled after it.
async fn flush<R: Role>(role: &mut R, socket: &Async<UdpSocket>, now: Instant, buf: &mut [u8]) {
    while let Some(t) = role.poll_transmit(now, buf) {
        let datagram = buf.get(..t.len).unwrap_or_default();
        tracing::trace!(to = %t.destination, len = t.len, "datagram out");
        if let Err(e) = socket.send_to(datagram, t.destination).await {
            // A lost datagram is the endpoint's business: it retransmits what matters.
            tracing::debug!(error = %e, to = %t.destination, "send_to failed");
        }
    }
}
