//! Command and event plumbing shared by the blocking adapter `pavillion-std` and the async one
//! `pavillion-smol`.
//!
//! An adapter is a driver loop around a [`Role`] (a client or server *router*: the endpoint
//! plus everything that waits on it), a command channel from the application's handles to the
//! loop, and a way for a caller to wait for the answer to its command. Everything here is the
//! same for both runtimes:
//!
//! - [`config`](crate::config), [`error`](crate::error) and [`keys`](crate::keys) (top-level
//!   modules, as users name them);
//! - [`sockets`]: opening the client's socket (and group socket), the server's listening socket
//!   (and reply socket), group membership;
//! - [`client`] and [`server`]: the commands, the handles that queue them, and the routers that
//!   carry them out on the endpoint and route its events to the callers waiting for them (by
//!   call id and message id), to message subscribers and to RPC handlers;
//! - [`link`]: the command channel; [`reply`]: a one-answer slot a caller waits on;
//!   [`messages`]: subscribers (callbacks or streams) per target; [`events`]: connection
//!   events and their subscribers; [`progress`]: callbacks of large sends; [`registers`]:
//!   register operations, observers and a server's declarations; [`window`]: the send window
//!   and handles of pipelined sends, and [`outcomes`]: a client's outcomes of them by send
//!   number; `udp` (on Unix): batched datagram I/O
//!   (`recvmmsg`/`sendmmsg`) for both drivers.
//!
//! What each runtime adds is only its loop (a thread on `mio` in `pavillion-std`, a task on
//! `smol` in `pavillion-smol`)
//! and how a caller waits on a [`reply::Pending`]: [`reply::Pending::wait`] blocks, and a
//! `Pending` is also a `Future`.
//!
//! # Driving a role
//! A loop owns the sockets and the role, and:
//! 1. gives every received datagram, from any of its sockets, to the endpoint's
//!    [`Endpoint::handle_datagram`] (through [`Role::endpoint_mut`]);
//! 2. calls [`Endpoint::handle_timeout`] when [`Role::poll_timeout`] has passed;
//! 3. gives every command to [`Role::on_command`], and stops after [`Flow::Stop`];
//! 4. after each of those, sends what [`Endpoint::poll_transmit`] yields from
//!    [`sockets::Sockets::output`], calls [`Role::dispatch`], and sends again what
//!    [`Endpoint::poll_transmit`] yields: handlers answer and callbacks act during the
//!    dispatch, and what they queued must not wait for the next datagram or timer;
//! 5. when every handle is gone ([`link::TryRecvError::Gone`]), calls [`Role::close`], sends
//!    what it queued, and stops.

use std::net::{SocketAddr, UdpSocket};

use pavillion_proto::endpoint::{Endpoint, Receivers};
use pavillion_proto::Instant;

pub mod client;
pub mod events;
pub mod handoff;
pub mod link;
pub mod messages;
pub mod outcomes;
pub mod progress;
pub mod registers;
pub mod reply;
pub mod server;
pub mod sockets;
#[cfg(unix)]
pub mod udp;
pub mod window;

/// The drivers' clock: microseconds since the endpoint was created.
pub type Clock = crate::StdClock;

/// What one role (client or server) adds to a driver loop around its endpoint: its commands
/// and what it does with events. The endpoint itself is driven through
/// [`Endpoint`], the one driving contract of `proto`; see the [module docs](self) for the loop.
pub trait Role: Send + 'static {
    /// The endpoint it wraps.
    type Endpoint: Endpoint;
    /// The commands its handles send.
    type Command: Send + 'static;

    /// The endpoint, for the driver to feed datagrams and timeouts and to drain transmits.
    fn endpoint(&self) -> &Self::Endpoint;
    /// [`Role::endpoint`], mutably.
    fn endpoint_mut(&mut self) -> &mut Self::Endpoint;
    /// The earliest deadline of a caller waiting on the router itself (not on the endpoint),
    /// which [`Role::dispatch`] answers once it has passed; `None` if nobody waits.
    #[must_use]
    fn waiter_deadline(&self) -> Option<Instant> {
        None
    }
    /// When the driver must wake next: the endpoint's [`Endpoint::poll_timeout`] or a
    /// waiter's deadline, whichever is earlier. When it has passed, the driver calls
    /// [`Endpoint::handle_timeout`] (harmless if only a waiter was due) and then dispatches.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant> {
        match (self.endpoint().poll_timeout(), self.waiter_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    /// Carries out one command. `socket` is the primary socket, for group membership.
    fn on_command(&mut self, now: Instant, socket: &UdpSocket, command: Self::Command) -> Flow;
    /// Whether `command` may be carried out on the sender's thread, outside the loop: it runs
    /// no application code, emits no event and never stops the loop.
    fn is_direct(&self, command: &Self::Command) -> bool;
    /// Drains the endpoint's events and hands them to the application.
    fn dispatch(&mut self, now: Instant);
    /// Drains the endpoint's events like [`Role::dispatch`], but only routes those that run
    /// no application code (answers to waiting callers); keeps the others, in order, for the
    /// next [`Role::dispatch`]. Returns `true` if it kept any. A blocking driver calls it
    /// while a caller's thread receives for the endpoint (see
    /// [`link::Link::send_here`]), so a role whose handles use that must implement it; the
    /// default keeps everything.
    fn dispatch_direct(&mut self, _now: Instant) -> bool {
        true
    }
    /// Closes the endpoint because every handle is gone.
    fn close(&mut self, now: Instant);
}

/// Everything a runtime needs to run one endpoint, made from its configuration by
/// [`client::open`] or [`server::open`]: the router its driver runs, the opened sockets, the
/// driver's end of the command channel and clock, and the handle for the application.
#[derive(Debug)]
#[non_exhaustive]
pub struct Parts<R: Role, H> {
    /// The endpoint and everything waiting on it; the driver runs it.
    pub router: R,
    /// The opened sockets.
    pub sockets: sockets::Sockets,
    /// The driver's end of the command channel.
    pub commands: link::Commands<R::Command>,
    /// The application's end.
    pub handle: H,
    /// The driver's clock.
    pub clock: Clock,
}

/// Whether a driver loop goes on after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Flow {
    /// Keep running.
    Continue,
    /// The endpoint was closed: send what it queued and stop.
    Stop,
}

/// Who acknowledged a reliable message.
///
/// For a unicast send `acked` holds the one server; in multicast mode it holds every server
/// that acknowledged, and `missing` the expected subscribers that did not before the deadline.
/// An unreliable send returns both empty.
///
/// # Examples
/// ```
/// let d = pavillion_io::Delivery::default();
/// assert!(d.acked.is_empty() && d.missing.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The receivers that acknowledged the message.
    pub acked: Receivers,
    /// Expected receivers that did not acknowledge it in time.
    pub missing: Vec<SocketAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use pavillion_proto::endpoint::{Server, ServerConfig};

    /// A role whose only state is a caller waiting until `waiter`.
    struct Waiting {
        ep: Server,
        waiter: Option<Instant>,
    }

    impl Role for Waiting {
        type Endpoint = Server;
        type Command = ();

        fn endpoint(&self) -> &Server {
            &self.ep
        }
        fn endpoint_mut(&mut self) -> &mut Server {
            &mut self.ep
        }
        fn waiter_deadline(&self) -> Option<Instant> {
            self.waiter
        }
        fn on_command(&mut self, _: Instant, _: &UdpSocket, (): ()) -> Flow {
            Flow::Continue
        }
        fn is_direct(&self, (): &()) -> bool {
            false
        }
        fn dispatch(&mut self, _: Instant) {}
        fn close(&mut self, _: Instant) {}
    }

    #[test]
    fn the_driver_wakes_for_the_endpoint_or_a_waiter_whichever_is_first() {
        let mut role = Waiting {
            ep: Server::new(ServerConfig::new([1; 32])),
            waiter: None,
        };
        let endpoint = role.ep.poll_timeout();
        assert_eq!(role.poll_timeout(), endpoint);
        role.waiter = Some(Instant::ZERO);
        assert_eq!(role.poll_timeout(), Some(Instant::ZERO));
        role.waiter = Some(Instant::MAX);
        assert_eq!(role.poll_timeout(), endpoint.or(Some(Instant::MAX)));
    }
}
