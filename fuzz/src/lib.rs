//! What the fuzz targets share: the input format, the endpoints they build, and the drain loop.
//!
//! # Input format
//! The stateful targets read their input as a suite byte followed by operations, through
//! [`Ops`]: each operation is an opcode byte and its fields (little-endian integers, byte
//! strings with a u16 length). Reads past the end give zeros and empty strings, so every input
//! is valid and the fuzzer never wastes time on rejected ones. The seed generator
//! (`examples/seeds.rs`) writes the same format with [`OpsWriter`], from real packets, which is
//! why this is hand-rolled rather than `arbitrary`: a seed can be written on purpose.

use std::net::SocketAddr;
use std::sync::OnceLock;

use pavillion_proto::endpoint::{
    Client, ClientConfig, Server, ServerConfig, ServerEvent, Transmit,
};
use pavillion_proto::testing::established::{self, EstablishedClient, EstablishedServer, Suite};
use pavillion_proto::testing::fixture;
use pavillion_proto::wire::{self, Datagram};
use pavillion_proto::{Duration, FunctionId, Instant};

/// The server's address in every target.
pub const SERVER: SocketAddr = established::SERVER_ADDR;
/// The client's address in every target.
pub const CLIENT: SocketAddr = established::CLIENT_ADDR;
/// Where the peer moves to on [`op::MOVE`] (a NAT rebinding), or where a stranger sends from.
pub const OTHER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3)),
    40001,
);

/// The RPC function the servers register (besides the built-in standard calls).
pub const FUNCTION: FunctionId = FunctionId(401);

/// Operation codes; an opcode byte is taken modulo [`op::COUNT`].
pub mod op {
    /// `bytes`: plaintext sealed by the peer under its next counter, then delivered.
    pub const SEALED: u8 = 0;
    /// `u16 back, bytes`: plaintext sealed under `next - 1 - back` (a replay or an old counter).
    pub const SEALED_AT: u8 = 1;
    /// `bytes`: a datagram delivered as it is.
    pub const RAW: u8 = 2;
    /// `u16 ms`: time passes; timers fire on the way and output is drained.
    pub const WAIT: u8 = 3;
    /// The peer's address switches between its own and [`super::OTHER`].
    pub const MOVE: u8 = 4;
    /// `u8 which, bytes`: a command on the endpoint (send, call, respond, ...).
    pub const COMMAND: u8 = 5;
    /// How many opcodes there are.
    pub const COUNT: u8 = 6;
}

/// Reads fuzz input field by field; past the end every read gives zero or an empty string.
#[derive(Debug)]
pub struct Ops<'a> {
    data: &'a [u8],
}

impl<'a> Ops<'a> {
    /// Reads `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Ops { data }
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        let (&b, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        b
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// A flag: the low bit of one byte.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A byte string with a u16 length in front, clipped to what is left.
    pub fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16()).min(self.data.len());
        let (b, rest) = self.data.split_at(n);
        self.data = rest;
        b
    }

    /// A suite, from one byte.
    pub fn suite(&mut self) -> Suite {
        Suite::from_byte(self.u8())
    }
}

/// Writes inputs in the format [`Ops`] reads, for seed corpora.
#[derive(Debug, Default)]
pub struct OpsWriter(pub Vec<u8>);

impl OpsWriter {
    /// Starts an input for `suite`.
    pub fn new(suite: Suite) -> Self {
        let b = Suite::ALL.iter().position(|s| *s == suite).unwrap_or(0) as u8;
        OpsWriter(vec![b])
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    /// A little-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A byte string with its u16 length in front.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let n = u16::try_from(b.len()).expect("seed field longer than 64 KiB");
        self.u16(n);
        self.0.extend_from_slice(b);
        self
    }
}

// Configurations are made once per process and cloned for each input: making one derives
// public keys, which would cost more than the rest of a run.

/// The server the handshake targets and the network target build: it knows client 1 under
/// every suite (PSK, ECC key, the same key for Noise IK), and registers [`FUNCTION`].
pub fn server(seed: u8) -> Server {
    static BASE: OnceLock<ServerConfig> = OnceLock::new();
    let mut config = BASE
        .get_or_init(|| {
            let id = fixture::client_id(1);
            ServerConfig::new([0; 32])
                .with_psk_client(id, fixture::client_psk(1))
                .with_keys(fixture::server_keys())
                .with_ecc_client(id, *fixture::client_keys(1).public())
        })
        .clone();
    config.seed = fixture::secret(0x51, usize::from(seed));
    let mut server = Server::new(config);
    server.register_function(FUNCTION, "fuzz");
    server
}

/// Client 1's configuration for `suite` (suite 3: Noise IK), talking to [`SERVER`].
pub fn client_config(suite: Suite, seed: u8) -> ClientConfig {
    static BASE: OnceLock<[ClientConfig; 3]> = OnceLock::new();
    let configs = BASE.get_or_init(|| {
        let id = fixture::client_id(1);
        let keys = fixture::client_keys(1);
        let server_public = *fixture::server_keys().public();
        [
            ClientConfig::psk(id, fixture::client_psk(1), SERVER, [0; 32]),
            ClientConfig::ecc(id, keys.clone(), server_public, SERVER, [0; 32]),
            ClientConfig::noise_ik(id, keys, server_public, SERVER, [0; 32]),
        ]
    });
    let i = Suite::ALL.iter().position(|s| *s == suite).unwrap_or(0);
    let mut config = configs[i].clone();
    config.seed = fixture::secret(0xCC, usize::from(seed));
    config
}

/// `testing::established::server`, from a configuration made once.
pub fn established_server(suite: Suite) -> EstablishedServer {
    static CONFIG: OnceLock<ServerConfig> = OnceLock::new();
    let config = CONFIG.get_or_init(established::server_config).clone();
    established::server_with(config, suite)
}

/// `testing::established::client`, from configurations made once.
pub fn established_client(suite: Suite) -> EstablishedClient {
    static CONFIGS: OnceLock<[ClientConfig; 3]> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| Suite::ALL.map(established::client_config));
    let i = Suite::ALL.iter().position(|s| *s == suite).unwrap_or(0);
    established::client_with(configs[i].clone(), suite)
}

/// Checks one datagram an endpoint sent: it fits the buffer and the size limit, and it parses
/// (an endpoint never sends what a peer cannot read).
pub fn check_sent(t: &Transmit, buf: &[u8]) {
    assert!(t.len > 0 && t.len <= buf.len() && t.len <= wire::MAX_DATAGRAM);
    if let Err(e) = Datagram::parse(&buf[..t.len]) {
        panic!("sent a datagram that does not parse: {e:?}");
    }
}

/// Drains a server's output; returns the datagrams it sent. RPC requests are collected in
/// `calls`, to be answered by a later command.
pub fn drain_server(
    server: &mut Server,
    now: Instant,
    calls: &mut Vec<pavillion_proto::endpoint::CallHandle>,
) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    let mut out = Vec::new();
    while let Some(t) = server.poll_transmit(now, &mut buf) {
        check_sent(&t, &buf);
        out.push((t.destination, buf[..t.len].to_vec()));
    }
    while let Some(ev) = server.poll_event() {
        if let ServerEvent::RpcRequest(r) = ev {
            if calls.len() < 64 {
                calls.push(r.call);
            }
        }
    }
    out
}

/// Drains a client's output; returns the datagrams it sent.
pub fn drain_client(client: &mut Client, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    let mut out = Vec::new();
    while let Some(t) = client.poll_transmit(now, &mut buf) {
        check_sent(&t, &buf);
        out.push((t.destination, buf[..t.len].to_vec()));
    }
    while client.poll_event().is_some() {}
    out
}

/// How far past [`established::START`] an input's time may go; later waits do nothing.
///
/// Past every timer's period (rekeys and cookie rotation at 120 s, liveness, message deadlines)
/// more time only repeats what happened; without the cap, an input of many long waits spends
/// seconds of CPU retrying handshakes, and the rate of the stateful targets drops a hundredfold.
pub const MAX_SPAN: Duration = Duration::from_secs(600);

/// The end of a wait of `ms` milliseconds from `now`, within [`MAX_SPAN`].
fn wait_end(now: Instant, ms: u16) -> Instant {
    (now + Duration::from_millis(u64::from(ms))).min(established::START + MAX_SPAN)
}

/// Lets `ms` milliseconds pass on a server, firing each timer at its own deadline.
pub fn wait_server(
    server: &mut Server,
    now: &mut Instant,
    ms: u16,
    calls: &mut Vec<pavillion_proto::endpoint::CallHandle>,
) -> Vec<(SocketAddr, Vec<u8>)> {
    let end = wait_end(*now, ms).max(*now);
    let mut out = Vec::new();
    // Bounded: an endpoint whose deadline does not move after `handle_timeout` is a livelock.
    for _ in 0..10_000 {
        match server.poll_timeout() {
            Some(t) if t <= end => {
                *now = t.max(*now);
                server.handle_timeout(*now);
                out.extend(drain_server(server, *now, calls));
            }
            _ => {
                *now = end;
                return out;
            }
        }
    }
    panic!("server timers livelock: the deadline never passes {end:?}");
}

/// Lets `ms` milliseconds pass on a client, firing each timer at its own deadline.
pub fn wait_client(client: &mut Client, now: &mut Instant, ms: u16) -> Vec<(SocketAddr, Vec<u8>)> {
    let end = wait_end(*now, ms).max(*now);
    let mut out = Vec::new();
    for _ in 0..10_000 {
        match client.poll_timeout() {
            Some(t) if t <= end => {
                *now = t.max(*now);
                client.handle_timeout(*now);
                out.extend(drain_client(client, *now));
            }
            _ => {
                *now = end;
                return out;
            }
        }
    }
    panic!("client timers livelock: the deadline never passes {end:?}");
}

/// A message target or name from fuzz bytes (the API refuses what is not UTF-8 anyway).
pub fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("t")
}
