//! Property (c) of `docs/PROTOCOL.md` §15.6: an attacker who sends suite 3 initiations from
//! a real client's own address, enough to spend that address's reply budget, cannot starve
//! the client's handshakes. Past the budget the server answers a cookie reply instead of
//! silence, and an initiation carrying a valid cookie for its source is charged to a second
//! budget that only the address's owner can spend (a spoofer never receives the cookie).
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use pavillion_proto::endpoint::DropReason;
use pavillion_proto::rng::Rng;
use pavillion_proto::testing::{Link, Network};
use pavillion_proto::wire::noise::NoisePacket;
use pavillion_proto::wire::Datagram;
use pavillion_proto::{ClientId, Duration};

mod common;

use common::{client_addr, server_addr, Suite};

const ID: ClientId = ClientId(*b"spoofed-source-1");

/// A suite 3 initiation as a client of this server sends it, to replay with fresh tails.
fn sample_initiation() -> Vec<u8> {
    let mut net = Network::new(99, Link::clean());
    net.add_server(server_addr(), common::server_config(Suite::Noise, ID, 1));
    net.add_client(
        client_addr(),
        common::client_config(Suite::Noise, ID, server_addr(), 98),
    );
    net.capture();
    net.run_for(Duration::from_millis(50));
    net.captured()
        .iter()
        .find(|d| {
            Datagram::parse(&d.bytes)
                .is_ok_and(|p| matches!(p, Datagram::Noise(NoisePacket::Initiation(_))))
        })
        .expect("the client sent one")
        .bytes
        .clone()
}

/// Every 100 ms, `burst` initiations spoofed from the client's address (fresh tails, so none
/// is a replay of another), while the real client starts 0.5 s in. Returns how long the
/// client took to connect, if it did within `limit`, and the server's rate-limit drops.
fn run(burst: u32, limit: Duration, cookie_when_rate_limited: bool) -> (Option<Duration>, u64) {
    let mut net = Network::new(3, Link::clean());
    let mut config = common::server_config(Suite::Noise, ID, 1);
    config.cookie_when_rate_limited = cookie_when_rate_limited;
    // Below the global cookie rate, so that the server is not under load and only the
    // per-source budget stands between the flood and the client.
    assert!(burst * 10 < config.cookie_rate);
    assert!(burst > config.replies_per_second);
    net.add_server(server_addr(), config);
    let initiation = sample_initiation();
    let mut rng = Rng::seed_from_u64(5);
    let start = net.now();
    let mut client_start = None;
    let mut connected = None;
    while net.now() - start < limit + Duration::from_millis(500) && connected.is_none() {
        for _ in 0..burst {
            let mut bytes = initiation.clone();
            let tail = bytes.len() - 16;
            rng.fill(&mut bytes[tail..]);
            net.inject(client_addr(), server_addr(), &bytes);
        }
        if client_start.is_none() && net.now() - start >= Duration::from_millis(500) {
            net.add_client(
                client_addr(),
                common::client_config(Suite::Noise, ID, server_addr(), 2),
            );
            client_start = Some(net.now());
        }
        for _ in 0..10 {
            net.run_for(Duration::from_millis(10));
            if let Some(t) = client_start {
                if connected.is_none() && net.client(client_addr()).is_connected() {
                    connected = Some(net.now() - t);
                }
            }
        }
    }
    let drops = net
        .server(server_addr())
        .stats()
        .dropped(DropReason::RateLimited);
    (connected.filter(|&t| t <= limit), drops)
}

#[test]
fn spoofed_initiations_from_a_clients_address_cannot_starve_its_handshake() {
    // 15 initiations every 100 ms from the client's own address: 15 times its budget of 10 a
    // second, yet below the global rate at which every initiation needs a cookie. The server
    // reads an initiation before charging the budget (`docs/PROTOCOL.md` §8.2), so these
    // forgeries, which do not authenticate, spend none of it.
    let (connected, drops) = run(15, Duration::from_secs(2), true);
    assert_eq!(drops, 0, "a forged initiation spent the address's budget");
    let t = connected.expect("the client connected despite the flood from its address");
    assert!(t <= Duration::from_millis(500), "connected after {t:?}");
}

/// The same flood against a server without the cookie option. Before the server checked
/// the initiation's public-key work ahead of the budget, the forgeries spent the address's
/// budget, the client's initiations were dropped and it never connected; now the budget is
/// never touched, with or without the option.
#[test]
fn without_the_option_the_same_flood_no_longer_starves_the_handshake() {
    let (connected, drops) = run(15, Duration::from_secs(2), false);
    assert_eq!(drops, 0);
    let t = connected.expect("the client connected despite the flood from its address");
    assert!(t <= Duration::from_millis(500), "connected after {t:?}");
}
