//! Endpoints that already hold a session, and the peer's half of it: for fuzzing.
//!
//! A fuzzer that feeds random bytes to an endpoint never gets past authentication: nothing it
//! makes opens under a session key, so the application parser behind it is never reached. This
//! module builds a [`Server`] or a [`Client`] with a session already established for every
//! suite, *without running a handshake* (key agreement would cost more than the rest of an
//! input's run), and hands the caller a [`Sealer`]: the peer's send key and counter. Whatever
//! plaintext the fuzzer chooses, sealed with it, opens at the endpoint and reaches
//! [`App::parse`](crate::wire::App::parse) and everything after it.
//!
//! The session is installed through the code a completed handshake calls (the server's
//! `establish` and suite 3 confirmation, the client's accepted nonce or response), with keys
//! chosen here from fixed bytes. That code is reached from outside only through this module,
//! which exists only with the `testing` feature: no normal build can make a session without a
//! handshake, and nothing here weakens the checks an endpoint applies to what it receives.
//!
//! # Examples
//! ```
//! use pavillion_proto::endpoint::ServerEvent;
//! use pavillion_proto::testing::established::{self, Suite};
//!
//! for suite in Suite::ALL {
//!     let mut e = established::server(suite);
//!     let mut buf = [0u8; 2048];
//!     // Opcode 1 (reliable message): "target\nname\npayload".
//!     let n = e.client.seal(b"\x01kitchen\ntemp\n21.5", &mut buf).unwrap();
//!     e.server.handle_datagram(e.now, e.client_addr, &buf[..n]);
//!     let ev = core::iter::from_fn(|| e.server.poll_event()).next();
//!     assert!(matches!(ev, Some(ServerEvent::Message { message, .. }) if message.payload() == b"21.5"));
//! }
//! ```

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::fixture;
use crate::crypto::noise::ChaChaKey;
use crate::crypto::SecretBoxKey;
use crate::endpoint::{AssumedNoise, AssumedReference};
use crate::endpoint::{Client, ClientConfig, Server, ServerConfig};
use crate::id::{ClientId, Counter, PeerId};
use crate::session::{self, TxKey};
use crate::time::Instant;
use crate::wire::noise::SessionIndex;
use crate::wire::{self, Setup};

/// The server's address in every endpoint built here.
pub const SERVER_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1783);
/// The client's address in every endpoint built here.
pub const CLIENT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 40000);

/// The time at which the session is established; later inputs must not go before it.
pub const START: Instant = Instant::from_micros(1_000_000);

/// A cipher suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// Suite 1: pre-shared key, XSalsa20-Poly1305 sessions.
    Psk,
    /// Suite 2: X25519 key pairs (`crypto_box`), XSalsa20-Poly1305 sessions.
    Ecc,
    /// Suite 3: Noise, ChaCha20-Poly1305 sessions found by index.
    Noise,
}

impl Suite {
    /// Every suite, in order.
    pub const ALL: [Suite; 3] = [Suite::Psk, Suite::Ecc, Suite::Noise];

    /// The suite for a byte (its value modulo 3), for fuzz inputs.
    pub fn from_byte(b: u8) -> Suite {
        Suite::ALL[usize::from(b % 3)]
    }
}

/// One direction of an established session, held by the test: a send key and its counter.
///
/// It seals any plaintext (an opcode byte and payload, or anything else) as the session's next
/// datagram, exactly as the endpoint on that side would frame and encrypt it.
#[derive(Clone, Debug)]
pub struct Sealer {
    key: TxKey,
    next: u64,
}

impl Sealer {
    /// Seals `plaintext` under the next counter into `buf`; returns the datagram's length.
    ///
    /// # Errors
    /// [`wire::Error::BufferTooSmall`] if `buf` cannot hold the datagram (the counter is
    /// still used up).
    pub fn seal(&mut self, plaintext: &[u8], buf: &mut [u8]) -> Result<usize, wire::Error> {
        let counter = Counter(self.next);
        self.next += 1;
        self.seal_at(counter, plaintext, buf)
    }

    /// Seals `plaintext` under `counter`, which need not be fresh (to replay, or to go back
    /// into the window), into `buf`; returns the datagram's length.
    ///
    /// # Errors
    /// [`wire::Error::BufferTooSmall`] if `buf` cannot hold the datagram.
    pub fn seal_at(
        &self,
        counter: Counter,
        plaintext: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, wire::Error> {
        session::seal_plaintext(&self.key, counter, plaintext, buf)
    }

    /// The counter [`Sealer::seal`] uses next.
    pub fn next_counter(&self) -> Counter {
        Counter(self.next)
    }
}

/// A server with one established session, and the client's sending half of it.
#[derive(Debug)]
pub struct EstablishedServer {
    /// The server, with its output (op 7, the `Connected` event) already drained.
    pub server: Server,
    /// The client's address, [`CLIENT_ADDR`].
    pub client_addr: SocketAddr,
    /// Seals as the client: what it sends opens at the server.
    pub client: Sealer,
    /// The time the session was established, [`START`].
    pub now: Instant,
}

/// A client with one established, confirmed session, and the server's sending half of it.
#[derive(Debug)]
pub struct EstablishedClient {
    /// The client, with its output (handshake leftovers, keepalive, events) already drained.
    pub client: Client,
    /// The server's address, [`SERVER_ADDR`].
    pub server_addr: SocketAddr,
    /// Seals as the server: what it sends opens at the client.
    pub server: Sealer,
    /// The time the session was established, [`START`].
    pub now: Instant,
}

/// A server (that knows client 1 under every suite) with a session with client 1 at
/// [`CLIENT_ADDR`]. Shorthand for [`server_with`] and [`server_config`].
pub fn server(suite: Suite) -> EstablishedServer {
    server_with(server_config(), suite)
}

/// The configuration [`server`] uses: client 1 is known under every suite.
///
/// Making it derives two public keys, which costs more than the rest of a fuzz input's run: a
/// fuzz target makes it once and clones it into [`server_with`].
pub fn server_config() -> ServerConfig {
    let id = fixture::client_id(1);
    ServerConfig::new(fixture::secret(0x51, 0))
        .with_psk_client(id, fixture::client_psk(1))
        .with_keys(fixture::server_keys())
        .with_ecc_client(id, *fixture::client_keys(1).public())
}

/// As [`server`], from `config`, which must know client 1 as [`server_config`]'s does (its other
/// settings are free).
pub fn server_with(config: ServerConfig, suite: Suite) -> EstablishedServer {
    let id = fixture::client_id(1);
    let mut server = Server::new(config);
    let peer = PeerId::Client(id);
    let client = match suite {
        Suite::Psk | Suite::Ecc => {
            let c2s = SecretBoxKey::from_bytes(fixture::secret(0xC5, 1));
            // The reference client's counters start anywhere; ours from 2^63 up.
            let floor = Counter(1 << 63);
            let assumed = AssumedReference {
                client_id: id,
                peer,
                client_to_server: c2s.clone(),
                server_to_client: SecretBoxKey::from_bytes(fixture::secret(0x5C, 1)),
                client_counter: floor,
                session_id: [0x1D; 16],
            };
            server.danger_assume_session(START, CLIENT_ADDR, assumed);
            Sealer {
                key: TxKey::Reference(c2s),
                next: floor.0 + 1,
            }
        }
        Suite::Noise => {
            let (local, recv) = (SessionIndex(0x5E5E), fixture::secret(0xC5, 1));
            let assumed = AssumedNoise {
                client_id: id,
                peer,
                local,
                remote: SessionIndex(0xC1C1),
                send: ChaChaKey::from_bytes(fixture::secret(0x5C, 1)),
                recv: ChaChaKey::from_bytes(recv),
                epoch: 7,
            };
            server.danger_assume_noise_session(START, CLIENT_ADDR, assumed);
            Sealer {
                key: TxKey::Noise {
                    key: ChaChaKey::from_bytes(recv),
                    receiver: local,
                },
                next: 1,
            }
        }
    };
    let mut e = EstablishedServer {
        server,
        client_addr: CLIENT_ADDR,
        client,
        now: START,
    };
    let mut buf = [0u8; wire::MAX_DATAGRAM];
    while e.server.poll_transmit(START, &mut buf).is_some() {}
    while e.server.poll_event().is_some() {}
    e
}

/// A client 1 of the server at [`SERVER_ADDR`] with a confirmed session with it. Shorthand
/// for [`client_with`] and [`client_config`].
pub fn client(suite: Suite) -> EstablishedClient {
    client_with(client_config(suite), suite)
}

/// The configuration [`client`] uses for `suite`.
///
/// Suite 3 uses `NNpsk0` credentials: building a client starts its first handshake, and that
/// pattern's first message costs no Diffie-Hellman, only an ephemeral key. Suite 2's derives
/// two public keys: a fuzz target makes it once and clones it into [`client_with`].
pub fn client_config(suite: Suite) -> ClientConfig {
    let id = fixture::client_id(1);
    let seed = fixture::secret(0xCC, 1);
    match suite {
        Suite::Psk => ClientConfig::psk(id, fixture::client_psk(1), SERVER_ADDR, seed),
        Suite::Ecc => {
            let server_public = *fixture::server_keys().public();
            ClientConfig::ecc(
                id,
                fixture::client_keys(1),
                server_public,
                SERVER_ADDR,
                seed,
            )
        }
        Suite::Noise => ClientConfig::noise_psk(id, fixture::client_psk(1), SERVER_ADDR, seed),
    }
}

/// As [`client`], from `config`, which must be of `suite` and talk to [`SERVER_ADDR`] (its
/// other settings are free).
pub fn client_with(config: ClientConfig, suite: Suite) -> EstablishedClient {
    let mut client = Client::new(config);
    let s2c = fixture::secret(0x5C, 1);
    let server = match suite {
        Suite::Psk | Suite::Ecc => {
            let session_id = [0x1D; 16];
            client.danger_assume_session(
                START,
                SERVER_ADDR,
                SecretBoxKey::from_bytes(s2c),
                session_id,
            );
            // The server's op 7 confirms the session, as after a real handshake.
            let mut op7 = [0u8; 64];
            let confirm = Setup::SessionEstablished { session_id };
            if let Ok(n) = confirm.emit(&mut op7) {
                client.handle_datagram(START, SERVER_ADDR, &op7[..n]);
            }
            Sealer {
                key: TxKey::Reference(SecretBoxKey::from_bytes(s2c)),
                // Our server's counters start anywhere in 2^63 ..= 2^63 + 10^9.
                next: 1 << 63,
            }
        }
        Suite::Noise => {
            let local = SessionIndex(0xC1C1);
            client.danger_assume_noise_session(
                START,
                SERVER_ADDR,
                local,
                SessionIndex(0x5E5E),
                ChaChaKey::from_bytes(fixture::secret(0xC5, 1)),
                ChaChaKey::from_bytes(s2c),
                11,
            );
            Sealer {
                key: TxKey::Noise {
                    key: ChaChaKey::from_bytes(s2c),
                    receiver: local,
                },
                next: 1,
            }
        }
    };
    let mut e = EstablishedClient {
        client,
        server_addr: SERVER_ADDR,
        server,
        now: START,
    };
    let mut buf = [0u8; wire::MAX_DATAGRAM];
    while e.client.poll_transmit(START, &mut buf).is_some() {}
    while e.client.poll_event().is_some() {}
    e
}

/// The id of the client every endpoint here is built for.
pub fn client_id() -> ClientId {
    fixture::client_id(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{ClientEvent, ServerEvent};

    /// A message sealed by each side's `Sealer` is delivered, and what the endpoint itself
    /// sends opens under the other direction's key: both halves really are one session.
    #[test]
    fn every_suite_builds_a_working_session_in_both_roles() {
        for suite in Suite::ALL {
            let mut buf = [0u8; 2048];
            let mut e = server(suite);
            let n = e.client.seal(b"\x03t\nn\nhello", &mut buf).unwrap();
            e.server.handle_datagram(e.now, e.client_addr, &buf[..n]);
            let got = core::iter::from_fn(|| e.server.poll_event()).find_map(|ev| match ev {
                ServerEvent::Message { message, .. } => Some(message.payload_bytes()),
                _ => None,
            });
            assert_eq!(got.as_deref(), Some(&b"hello"[..]), "{suite:?} server");

            let mut e = client(suite);
            assert!(e.client.is_connected(), "{suite:?}");
            let n = e.server.seal(b"\x03t\nn\nhello", &mut buf).unwrap();
            e.client.handle_datagram(e.now, e.server_addr, &buf[..n]);
            let got = core::iter::from_fn(|| e.client.poll_event()).find_map(|ev| match ev {
                ClientEvent::Message(m) => Some(m.payload_bytes()),
                _ => None,
            });
            assert_eq!(got.as_deref(), Some(&b"hello"[..]), "{suite:?} client");
        }
    }
}
