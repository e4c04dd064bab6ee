//! Shared fixtures for the pavillion-rs benchmarks and the `compare` binary.
//!
//! The criterion benches (`benches/*.rs`) and `compare` measure the same things, so the
//! endpoints, credentials and drivers they use live here once: a [`Suite`] gives
//! configurations for every cipher suite, [`NetPair`] is a client and a server on the in-memory
//! [`Network`], [`DirectPair`] is the same pair pumped by hand (no link model, no per-datagram
//! copies: the protocol core and nothing else), and [`Farm`] is a server holding many live
//! sessions, built by driving it directly with datagrams from client endpoints.
//!
//! Everything is deterministic: keys are fixed, seeds are derived from indices, and time is
//! virtual ([`Instant`]); only the wall-clock cost of running it is measured.

pub mod allocations;
pub mod batched;
pub mod bridge;
pub mod bulk;
pub mod core_floor;
pub mod durable;
pub mod handshake_cost;
pub mod memory;
pub mod pipelined;
pub mod recovery;
pub mod results;
pub mod smol_io;

use core::net::{Ipv4Addr, SocketAddr};

use pavillion_proto::crypto::noise::ChaChaKey;
use pavillion_proto::crypto::{SecretBoxKey, SessionCipher};
use pavillion_proto::endpoint::{
    Client, ClientConfig, ClientEvent, SendOptions, Server, ServerConfig,
};
pub use pavillion_proto::testing::fixture::{client_id, client_keys, client_psk, server_keys};
use pavillion_proto::testing::{fixture, Link, Network};
use pavillion_proto::wire::{HEADER_LEN, MAX_DATAGRAM};
use pavillion_proto::{Counter, Duration, Instant};

/// Target of every benchmark message; short, like a real topic.
pub const TARGET: &str = "bench";
/// Name of every benchmark message.
pub const NAME: &str = "m";
/// Payload size of the messaging and RPC benchmarks (the "64-byte messages").
pub const PAYLOAD: usize = 64;
/// Reliable messages sent per batch: the default `max_in_flight`, so a batch is one window.
pub const BATCH: usize = 64;

/// Runs `f` (which returns how many operations it did) for `seconds` after a warm-up of a
/// tenth of that; returns operations per second. Every throughput row measures this way, so
/// that figures taken side by side are comparable.
pub fn rate(seconds: f64, mut f: impl FnMut() -> u64) -> f64 {
    let warm = std::time::Instant::now();
    while warm.elapsed().as_secs_f64() < seconds / 10.0 {
        f();
    }
    let start = std::time::Instant::now();
    let mut ops = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        ops += f();
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

/// Plaintext length of one benchmark message: opcode, `target\n`, `name\n`, payload.
pub const fn message_plaintext_len(payload: usize) -> usize {
    1 + TARGET.len() + 1 + NAME.len() + 1 + payload
}

/// Plaintext length of an ACK without status bytes: opcode and the acknowledged counter.
pub const ACK_PLAINTEXT_LEN: usize = 1 + 8;

/// A cipher suite to benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// Suite 1: pre-shared keys, XSalsa20-Poly1305 sessions.
    Psk,
    /// Suite 2: X25519 key pairs, XSalsa20-Poly1305 sessions.
    Ecc,
    /// Suite 3: Noise IK, ChaCha20-Poly1305 sessions.
    Noise,
}

impl Suite {
    /// Every suite, in suite-number order.
    pub const ALL: [Suite; 3] = [Suite::Psk, Suite::Ecc, Suite::Noise];

    /// Short name for benchmark ids and tables.
    pub const fn name(self) -> &'static str {
        match self {
            Suite::Psk => "psk",
            Suite::Ecc => "ecc",
            Suite::Noise => "noise",
        }
    }

    /// A server admitting clients `0..clients`.
    ///
    /// The limits that would refuse a benchmark's load are lifted (sessions, half-open
    /// handshakes, the suite 3 cookie rate): the benches measure the work of serving sessions,
    /// not the refusal of floods. The rate-limit table admits one entry per client for the
    /// same reason.
    pub fn server_config(self, clients: usize) -> ServerConfig {
        let mut config = ServerConfig::new([0x5E; 32]);
        match self {
            Suite::Psk => {
                for i in 0..clients {
                    config = config.with_psk_client(client_id(i), client_psk(i));
                }
            }
            Suite::Ecc | Suite::Noise => {
                config = config.with_keys(server_keys());
                for i in 0..clients {
                    config = config.with_ecc_client(client_id(i), *client_keys(i).public());
                }
            }
        }
        config.max_sessions = clients.max(1);
        config.max_half_open = clients.max(256);
        config.cookie_rate = u32::MAX;
        config.cookie_threshold = usize::MAX;
        // Every farm client has its own address and handshakes within milliseconds of the
        // others; a smaller reply rate-limit table would refuse them until entries expire.
        config.max_rate_limited_sources = clients.max(1024);
        config
    }

    /// The configuration of client `i`, talking to `server`.
    pub fn client_config(self, i: usize, server: SocketAddr) -> ClientConfig {
        let seed = seed(i);
        match self {
            Suite::Psk => ClientConfig::psk(client_id(i), client_psk(i), server, seed),
            Suite::Ecc => ClientConfig::ecc(
                client_id(i),
                client_keys(i),
                *server_keys().public(),
                server,
                seed,
            ),
            Suite::Noise => ClientConfig::noise_ik(
                client_id(i),
                client_keys(i),
                *server_keys().public(),
                server,
                seed,
            ),
        }
    }

    /// The session cipher this suite uses, with a fixed key.
    pub fn cipher(self) -> BenchCipher {
        match self {
            Suite::Psk | Suite::Ecc => BenchCipher::SecretBox(SecretBoxKey::from_bytes([0x11; 32])),
            Suite::Noise => BenchCipher::ChaCha(ChaChaKey::from_bytes([0x11; 32])),
        }
    }
}

/// The session cipher of a suite, so that one benchmark loop covers both implementations.
#[derive(Debug)]
pub enum BenchCipher {
    /// Suites 1 and 2.
    SecretBox(SecretBoxKey),
    /// Suite 3.
    ChaCha(ChaChaKey),
}

impl BenchCipher {
    fn as_dyn(&self) -> &dyn SessionCipher {
        match self {
            BenchCipher::SecretBox(k) => k,
            BenchCipher::ChaCha(k) => k,
        }
    }

    /// Seals `buf` in place under `counter` and returns the tag, as a sender does.
    pub fn seal(&self, counter: u64, buf: &mut [u8]) -> [u8; 16] {
        self.as_dyn()
            .seal_in_place(Counter(counter), &[0u8; HEADER_LEN], buf)
    }

    /// Opens `buf` in place under `counter` and `tag`, as a receiver does; returns whether the
    /// tag verified.
    pub fn open(&self, counter: u64, tag: &[u8; 16], buf: &mut [u8]) -> bool {
        self.as_dyn()
            .open_in_place(Counter(counter), &[0u8; HEADER_LEN], tag, buf)
            .is_ok()
    }

    /// Seals `buf` in place under `counter`, then opens it again, as one packet costs a sender
    /// and its receiver. Panics if the tag does not verify, which would mean a broken cipher.
    pub fn seal_open(&self, counter: u64, buf: &mut [u8]) {
        let header = [0u8; HEADER_LEN];
        let cipher = self.as_dyn();
        let tag = cipher.seal_in_place(Counter(counter), &header, buf);
        cipher
            .open_in_place(Counter(counter), &header, &tag, buf)
            .expect("a packet sealed under the same key and counter opens");
    }
}

fn seed(i: usize) -> [u8; 32] {
    fixture::secret(0x5D, i)
}

/// The server's address in every fixture.
pub fn server_addr() -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(10, 0, 0, 1).into(), 1783)
}

/// The address of client `i`: distinct per client (up to 2^20 of them), outside 10.0.0.0/8,
/// so that every client has its own session and its own reply rate limit.
pub fn client_addr(i: usize) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::from(0xAC10_0000u32 + i as u32).into(), 40_000)
}

/// A payload of `len` bytes.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| i as u8).collect()
}

/// One client and one server on the in-memory [`Network`] with a clean link (500 µs each way).
pub struct NetPair {
    /// The network that owns both endpoints.
    pub net: Network,
    /// The client's address.
    pub client: SocketAddr,
    /// The server's address.
    pub server: SocketAddr,
    /// The suite both speak.
    pub suite: Suite,
}

impl NetPair {
    /// A pair that has not handshaken yet.
    pub fn new(suite: Suite) -> Self {
        let server = server_addr();
        let client = client_addr(0);
        let mut net = Network::new(1, Link::clean());
        net.add_server(server, suite.server_config(1));
        net.add_client(client, suite.client_config(0, server));
        NetPair {
            net,
            client,
            server,
            suite,
        }
    }

    /// A pair whose session is up.
    ///
    /// # Panics
    /// If the handshake does not complete within 5 simulated seconds.
    pub fn connected(suite: Suite) -> Self {
        let mut pair = Self::new(suite);
        assert!(
            pair.handshake(),
            "{} handshake did not complete",
            suite.name()
        );
        pair
    }

    /// Runs the network until the client is connected; returns whether it did within 5
    /// simulated seconds. A client starts its handshake when created, so this is the whole
    /// exchange.
    pub fn handshake(&mut self) -> bool {
        let client = self.client;
        self.net
            .run_until(Duration::from_secs(5), |n| n.client(client).is_connected())
    }

    /// Sends `n` reliable messages with `payload` and steps the network until all are
    /// acknowledged. Returns the datagrams the network carried meanwhile (messages and ACKs).
    ///
    /// # Panics
    /// If the network goes idle before every message is delivered.
    pub fn reliable_batch(&mut self, n: usize, payload: &[u8]) -> u64 {
        let before = self.net.stats().sent;
        let now = self.net.now();
        for _ in 0..n {
            self.net
                .client(self.client)
                .send_message(now, TARGET, NAME, payload, SendOptions::reliable())
                .expect("the queue holds a batch");
        }
        let mut delivered = 0;
        while delivered < n {
            assert!(self.net.step(), "network idle with messages undelivered");
            delivered += count(&self.net.client_events(self.client), |e| {
                matches!(e, ClientEvent::Delivered { .. })
            });
        }
        // The server's message events are not needed; drop them so they do not pile up.
        self.net.server_events(self.server);
        self.net.stats().sent - before
    }

    /// Makes `n` echo calls with `payload` and steps the network until all are answered.
    ///
    /// # Panics
    /// If the network goes idle before every call is answered.
    pub fn echo_batch(&mut self, n: usize, payload: &[u8]) {
        let now = self.net.now();
        for _ in 0..n {
            self.net
                .client(self.client)
                .echo(now, payload)
                .expect("the queue holds a batch");
        }
        let mut answered = 0;
        while answered < n {
            assert!(self.net.step(), "network idle with calls unanswered");
            answered += count(&self.net.client_events(self.client), |e| {
                matches!(e, ClientEvent::Answered { .. })
            });
        }
        self.net.server_events(self.server);
    }
}

fn count(events: &[ClientEvent], f: impl Fn(&ClientEvent) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

/// A client and a server exchanging datagrams by hand: no link model, no latency, no copies
/// beyond the one transmit buffer. What it costs is what the two endpoints cost.
pub struct DirectPair {
    /// The client endpoint.
    pub client: Client,
    /// The server endpoint.
    pub server: Server,
    /// Virtual time; advanced by 1 µs per exchange so that time is never frozen.
    pub now: Instant,
    buf: Vec<u8>,
    /// Datagrams moved between the two so far.
    pub datagrams: u64,
}

impl DirectPair {
    /// A connected pair.
    ///
    /// # Panics
    /// If the handshake does not complete.
    pub fn connected(suite: Suite) -> Self {
        let mut pair = DirectPair {
            client: Client::new(suite.client_config(0, server_addr())),
            server: Server::new(suite.server_config(1)),
            now: Instant::from_millis(1_000),
            buf: vec![0; MAX_DATAGRAM],
            datagrams: 0,
        };
        assert!(
            connect(
                &mut pair.server,
                &mut pair.client,
                client_addr(0),
                &mut pair.now,
                &mut pair.buf
            ),
            "{} handshake did not complete",
            suite.name()
        );
        pair
    }

    /// Moves datagrams both ways until neither endpoint has anything to send.
    pub fn pump(&mut self) {
        let (caddr, saddr) = (client_addr(0), server_addr());
        loop {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit(self.now, &mut self.buf) {
                self.server
                    .handle_datagram(self.now, caddr, &self.buf[..t.len]);
                self.datagrams += 1;
                moved = true;
            }
            while let Some(t) = self.server.poll_transmit(self.now, &mut self.buf) {
                self.client
                    .handle_datagram(self.now, saddr, &self.buf[..t.len]);
                self.datagrams += 1;
                moved = true;
            }
            if !moved {
                break;
            }
        }
        self.now += Duration::from_micros(1);
    }

    /// Moves the clock to the earlier of the two endpoints' next timers (never back), as a
    /// driver with nothing to read sleeps until its deadline.
    pub fn skip_to_next_timer(&mut self) {
        let next = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        if let Some(t) = next {
            self.now = self.now.max(t);
        }
    }

    /// Pumps, and fires the endpoints' timers when the pump goes quiet, until `n` client
    /// events match `done` (or 1000 rounds pass). Some sends wait for a timer rather than
    /// going out at once (the last message of a window can), so a bare pump is not enough.
    /// Server events are drained so that they do not pile up.
    fn run_until(&mut self, n: usize, done: impl Fn(&ClientEvent) -> bool) -> usize {
        let mut seen = 0;
        for _ in 0..1000 {
            self.pump();
            seen += core::iter::from_fn(|| self.client.poll_event())
                .filter(|e| done(e))
                .count();
            while self.server.poll_event().is_some() {}
            if seen >= n {
                break;
            }
            self.skip_to_next_timer();
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
        }
        seen
    }

    /// Sends `n` reliable messages and pumps until all are delivered.
    ///
    /// # Panics
    /// If they are not all delivered after the pump goes quiet.
    pub fn reliable_batch(&mut self, n: usize, payload: &[u8]) {
        for _ in 0..n {
            self.client
                .send_message(self.now, TARGET, NAME, payload, SendOptions::reliable())
                .expect("the queue holds a batch");
        }
        let delivered = self.run_until(n, |e| matches!(e, ClientEvent::Delivered { .. }));
        assert_eq!(delivered, n, "every message of the batch is acknowledged");
    }

    /// Makes `n` echo calls and pumps until all are answered.
    ///
    /// # Panics
    /// If they are not all answered after the pump goes quiet.
    pub fn echo_batch(&mut self, n: usize, payload: &[u8]) {
        for _ in 0..n {
            self.client
                .echo(self.now, payload)
                .expect("the queue holds a batch");
        }
        let answered = self.run_until(n, |e| matches!(e, ClientEvent::Answered { .. }));
        assert_eq!(answered, n, "every call of the batch is answered");
    }
}

/// Handshakes `client` (at `addr`) with `server` by passing datagrams directly, advancing
/// `now` by 10 µs per round so that no timer fires. Returns whether the client connected.
/// Server events are drained so that a farm of many sessions does not keep a queue of
/// `Connected` events in its measured state.
pub fn connect(
    server: &mut Server,
    client: &mut Client,
    addr: SocketAddr,
    now: &mut Instant,
    buf: &mut [u8],
) -> bool {
    let saddr = server_addr();
    for _ in 0..16 {
        while let Some(t) = client.poll_transmit(*now, buf) {
            server.handle_datagram(*now, addr, &buf[..t.len]);
        }
        while let Some(t) = server.poll_transmit(*now, buf) {
            if t.destination == addr {
                client.handle_datagram(*now, saddr, &buf[..t.len]);
            }
        }
        while server.poll_event().is_some() {}
        while client.poll_event().is_some() {}
        *now += Duration::from_micros(10);
        if client.is_connected() {
            // One more round delivers anything the client sends on connecting (for example a
            // confirmation), so the session is settled and idle when we return.
            while let Some(t) = client.poll_transmit(*now, buf) {
                server.handle_datagram(*now, addr, &buf[..t.len]);
            }
            while server.poll_transmit(*now, buf).is_some() {}
            while server.poll_event().is_some() {}
            return true;
        }
    }
    false
}

/// A server holding many live sessions, each with its own client address.
pub struct Farm {
    /// The server.
    pub server: Server,
    /// The clients, kept when asked for (to produce more traffic), by index.
    pub clients: Vec<Client>,
    /// Virtual time after the last handshake.
    pub now: Instant,
    /// The suite of every session.
    pub suite: Suite,
}

impl Farm {
    /// A server with `n` sessions of `suite`. With `keep_clients`, the client endpoints are
    /// kept in [`Farm::clients`]; otherwise each is dropped once connected, so that only the
    /// server's state remains.
    ///
    /// # Panics
    /// If a handshake fails.
    pub fn build(suite: Suite, n: usize, keep_clients: bool) -> Self {
        Self::build_with(suite, Server::new(suite.server_config(n)), n, keep_clients)
    }

    /// As [`Farm::build`], with a server made by the caller from `suite.server_config(n)` (so
    /// that the caller can measure what the empty server holds first).
    ///
    /// # Panics
    /// If a handshake fails.
    pub fn build_with(suite: Suite, mut server: Server, n: usize, keep_clients: bool) -> Self {
        let mut now = Instant::from_millis(1_000);
        let mut buf = vec![0; MAX_DATAGRAM];
        let mut clients = Vec::with_capacity(if keep_clients { n } else { 0 });
        for i in 0..n {
            let mut client = Client::new(suite.client_config(i, server_addr()));
            assert!(
                connect(&mut server, &mut client, client_addr(i), &mut now, &mut buf),
                "{} handshake {i} failed",
                suite.name()
            );
            if keep_clients {
                clients.push(client);
            }
        }
        assert_eq!(server.session_count(), n, "every client holds a session");
        Farm {
            server,
            clients,
            now,
            suite,
        }
    }

    /// Lets 11 simulated seconds pass (past the 10 s half-open timeout, well inside the 75 s
    /// down timeout) and runs the server's housekeeping, so that what remains is the state of
    /// idle sessions: finished handshakes and reply budgets have expired.
    pub fn settle(&mut self) {
        self.now += Duration::from_secs(11);
        self.server.handle_timeout(self.now);
        while self.server.poll_event().is_some() {}
        let mut buf = vec![0; MAX_DATAGRAM];
        while self.server.poll_transmit(self.now, &mut buf).is_some() {}
    }

    /// One unreliable message datagram from each client in `range` (wrapping), with fresh
    /// counters, ready for [`Server::handle_datagram`]. Needs `keep_clients`.
    pub fn datagrams(
        &mut self,
        start: usize,
        count: usize,
        payload: &[u8],
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut buf = vec![0; MAX_DATAGRAM];
        let n = self.clients.len();
        (0..count)
            .map(|k| {
                let i = (start + k) % n;
                let c = &mut self.clients[i];
                c.send_message(self.now, TARGET, NAME, payload, SendOptions::unreliable())
                    .expect("an unreliable send on a connected client is accepted");
                let t = c
                    .poll_transmit(self.now, &mut buf)
                    .expect("the message is sent at once");
                let bytes = buf[..t.len].to_vec();
                while c.poll_transmit(self.now, &mut buf).is_some() {}
                (client_addr(i), bytes)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use pavillion_proto::endpoint::ServerEvent;

    use super::*;

    // The fixtures must work before anything is measured with them: a broken pair would
    // otherwise show up as a panic deep inside a bench run.
    #[test]
    fn fixtures_work_for_every_suite() {
        let p = payload(PAYLOAD);
        for suite in Suite::ALL {
            let mut net = NetPair::connected(suite);
            let datagrams = net.reliable_batch(8, &p);
            // Suite 3 batches messages queued together (docs/PROTOCOL.md §17).
            let least = if suite == Suite::Noise { 2 } else { 16 };
            assert!(datagrams >= least, "{}: messages and ACKs", suite.name());
            net.echo_batch(4, &p);

            let mut direct = DirectPair::connected(suite);
            direct.reliable_batch(BATCH, &p);
            direct.echo_batch(BATCH, &p);

            let mut farm = Farm::build(suite, 20, true);
            for (from, bytes) in farm.datagrams(5, 30, &p) {
                farm.server.handle_datagram(farm.now, from, &bytes);
            }
            let messages = core::iter::from_fn(|| farm.server.poll_event())
                .filter(|e| matches!(e, ServerEvent::Message { .. }))
                .count();
            assert_eq!(
                messages,
                30,
                "{}: every farm datagram is accepted",
                suite.name()
            );

            let mut buf = payload(1200);
            suite.cipher().seal_open(7, &mut buf);
            assert_eq!(buf, payload(1200));
        }
    }
}
