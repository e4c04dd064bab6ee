//! The driving loop both roles share: the whole sans-IO contract of
//! `pavillion_proto::endpoint::Endpoint` on one embassy-net UDP socket.
//!
//! After every input or command: drain `poll_transmit` (one datagram at a time through the
//! one datagram buffer, the lock released while the socket takes it), then `poll_event`
//! (each event goes to the role's tables), then sleep until a datagram arrives, the
//! endpoint's deadline passes, or a handle queues a command.

use embassy_futures::select::{select3, Either3};
use embassy_net::udp::{RecvError, UdpSocket};
use pavillion_proto::endpoint::Endpoint;
use pavillion_proto::Instant;

use crate::{addr, time, Core, Shared};

/// Counters of what the driver (not the protocol) did and dropped. Proto's own counters are
/// in its `Stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Datagrams the socket would not take (no route yet, a datagram larger than the socket's
    /// transmit buffer); the protocol retransmits what matters.
    pub send_failed: u64,
    /// Datagrams larger than the datagram buffer, dropped by the socket.
    pub truncated: u64,
    /// Messages dropped because the application's queue was full (see [`crate::INBOX`]).
    pub inbox_dropped: u64,
}

/// A role the loop drives: its endpoint, and where its events go.
pub(crate) trait Role {
    type Endpoint: Endpoint;

    /// The role's state in the shared core.
    fn pick(core: &mut Core) -> Option<&mut Self>;

    fn endpoint(&mut self) -> &mut Self::Endpoint;

    /// Hands one event to the tables the handle waits on. `scratch` is free for the call (a
    /// handler's answer).
    fn on_event(
        &mut self,
        now: Instant,
        event: <Self::Endpoint as Endpoint>::Event,
        scratch: &mut [u8],
    );

    fn stats(&mut self) -> &mut DriverStats;
}

/// Runs the role forever.
pub(crate) async fn run<R: Role>(shared: &Shared, socket: UdpSocket<'_>, buf: &mut [u8]) -> ! {
    loop {
        // Transmit, one datagram at a time; never hold the lock across the socket's await.
        loop {
            let now = time::now();
            let next = shared
                .with(|core| R::pick(core).and_then(|r| r.endpoint().poll_transmit(now, buf)));
            let Some(t) = next else { break };
            let datagram = buf.get(..t.len).unwrap_or_default();
            if socket
                .send_to(datagram, addr::to_endpoint(t.destination))
                .await
                .is_err()
            {
                shared.with(|core| {
                    if let Some(r) = R::pick(core) {
                        r.stats().send_failed += 1;
                    }
                });
            }
        }
        // Events; a handler's answer queues more to send, so go round again if any came.
        let now = time::now();
        let busy = shared.with(|core| {
            let Some(r) = R::pick(core) else { return false };
            let mut any = false;
            while let Some(event) = r.endpoint().poll_event() {
                any = true;
                r.on_event(now, event, buf);
            }
            any
        });
        if busy {
            continue;
        }
        let deadline = shared.with(|core| R::pick(core).and_then(|r| r.endpoint().poll_timeout()));
        let sleep = async {
            match deadline {
                Some(t) => embassy_time::Timer::at(time::to_embassy(t)).await,
                None => core::future::pending::<()>().await,
            }
        };
        match select3(socket.recv_from(buf), sleep, shared.kick.wait()).await {
            Either3::First(Ok((n, meta))) => {
                let from = addr::from_endpoint(meta.endpoint);
                let now = time::now();
                let datagram = buf.get(..n).unwrap_or_default();
                shared.with(|core| {
                    if let Some(r) = R::pick(core) {
                        r.endpoint().handle_datagram(now, from, datagram);
                    }
                });
            }
            Either3::First(Err(RecvError::Truncated)) => shared.with(|core| {
                if let Some(r) = R::pick(core) {
                    r.stats().truncated += 1;
                }
            }),
            Either3::Second(()) => {
                let now = time::now();
                shared.with(|core| {
                    if let Some(r) = R::pick(core) {
                        r.endpoint().handle_timeout(now);
                    }
                });
            }
            // A command queued something: the transmit loop above sends it.
            Either3::Third(()) => {}
        }
    }
}
