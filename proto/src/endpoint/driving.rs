//! The driving contract every role implements, declared once.
//!
//! The in-memory network of `testing`, the simulator and both socket adapters drive clients
//! and servers only through this trait, so a new role (a relay, an authority) plugs into all of
//! them by implementing it. Users who run the core in an event loop we do not ship do the same.

use core::net::SocketAddr;

use super::{Client, ClientEvent, Relay, RelayEvent, Server, ServerEvent, Stats, Transmit};
use crate::keylog::SessionSecret;
use crate::time::Instant;

/// A sans-IO protocol endpoint: datagrams and time go in; datagrams, events and a wake-up time
/// come out.
///
/// After every input (`handle_datagram`, `handle_timeout`) or command (the role's own methods,
/// such as [`Client::send_message`]), drain [`Endpoint::poll_transmit`] until `None`, then
/// [`Endpoint::poll_event`] until `None`, then sleep until [`Endpoint::poll_timeout`] or the
/// next datagram, whichever comes first.
///
/// # Example
/// A generic loop that moves every datagram between two endpoints in memory:
/// ```
/// use pavillion_proto::crypto::Psk;
/// use pavillion_proto::endpoint::{Client, ClientConfig, Endpoint, Server, ServerConfig};
/// use pavillion_proto::{ClientId, Duration, Instant};
/// use core::net::SocketAddr;
///
/// fn exchange(a: &mut impl Endpoint, a_addr: SocketAddr, b: &mut impl Endpoint, b_addr: SocketAddr, now: Instant) {
///     let mut buf = [0u8; 2048];
///     while let Some(t) = a.poll_transmit(now, &mut buf) {
///         b.handle_datagram(now, a_addr, &buf[..t.len]);
///     }
///     while let Some(t) = b.poll_transmit(now, &mut buf) {
///         a.handle_datagram(now, b_addr, &buf[..t.len]);
///     }
/// }
///
/// let id = ClientId(*b"sensor-000000001");
/// let psk = Psk::from_bytes([7; 32]);
/// let (s_addr, c_addr) = ("127.0.0.1:1783".parse().unwrap(), "127.0.0.1:40000".parse().unwrap());
/// let mut server = Server::new(ServerConfig::new([1; 32]).with_psk_client(id, psk.clone()));
/// let mut client = Client::new(ClientConfig::psk(id, psk, s_addr, [2; 32]));
/// let mut now = Instant::ZERO;
/// for _ in 0..10 {
///     exchange(&mut client, c_addr, &mut server, s_addr, now);
///     now += Duration::from_millis(1);
///     Endpoint::handle_timeout(&mut client, now);
///     Endpoint::handle_timeout(&mut server, now);
/// }
/// assert!(client.is_connected());
/// ```
pub trait Endpoint {
    /// What the role tells its application.
    type Event;

    /// Processes one received datagram. A bad datagram is dropped and counted in
    /// [`Endpoint::stats`], never returned as an error.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]);

    /// Runs the timers due at `now`. Calling it early is harmless.
    fn handle_timeout(&mut self, now: Instant);

    /// Writes the next datagram to send into `buf` (at least [`crate::wire::MAX_DATAGRAM`]
    /// bytes) and says where it goes.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;

    /// The next event for the application.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When the endpoint next wants [`Endpoint::handle_timeout`]; `None` for never.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Counters of what the endpoint did and dropped.
    fn stats(&self) -> &Stats;

    /// Turns the key log on or off (off by default): while on, the endpoint queues a
    /// [`SessionSecret`] whenever it starts using new session keys (see [`crate::keylog`]).
    /// Turning it off empties the queue.
    fn set_key_log(&mut self, on: bool);

    /// The next session secret for the key log, oldest first; always `None` while the key
    /// log is off.
    fn poll_secret(&mut self) -> Option<SessionSecret>;
}

macro_rules! forward_endpoint {
    ($role:ty, $event:ty) => {
        impl Endpoint for $role {
            type Event = $event;

            fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
                <$role>::handle_datagram(self, now, from, datagram)
            }

            fn handle_timeout(&mut self, now: Instant) {
                <$role>::handle_timeout(self, now)
            }

            fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
                <$role>::poll_transmit(self, now, buf)
            }

            fn poll_event(&mut self) -> Option<Self::Event> {
                <$role>::poll_event(self)
            }

            fn poll_timeout(&self) -> Option<Instant> {
                <$role>::poll_timeout(self)
            }

            fn stats(&self) -> &Stats {
                <$role>::stats(self)
            }

            fn set_key_log(&mut self, on: bool) {
                <$role>::set_key_log(self, on)
            }

            fn poll_secret(&mut self) -> Option<SessionSecret> {
                <$role>::poll_secret(self)
            }
        }
    };
}

forward_endpoint!(Client, ClientEvent);
forward_endpoint!(Server, ServerEvent);
forward_endpoint!(Relay, RelayEvent);
forward_endpoint!(super::Member, super::MemberEvent);
forward_endpoint!(super::Authority, super::AuthorityEvent);
