//! Suite 3 handshake cost: the responder's checks come in an order that lets no forged or
//! replayed initiation spend a legitimate client's reply budget, and the static–static
//! Diffie–Hellman of a known pair is done once, not per handshake.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::SocketAddr;

use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::crypto::noise::{InitiatorKeys, NoiseInitiator, NoiseResponder, Pattern};
use pavillion_proto::crypto::static_dh::StaticDh;
use pavillion_proto::endpoint::{ClientConfig, DropReason, ServerConfig};
use pavillion_proto::rng::Rng;
use pavillion_proto::testing::{Link, Network};
use pavillion_proto::wire::noise::NoisePacket;
use pavillion_proto::wire::Datagram;
use pavillion_proto::{ClientId, Duration};

const ID: ClientId = ClientId(*b"noise-client-001");
const STRANGER: ClientId = ClientId(*b"noise-stranger-1");

fn server_addr() -> SocketAddr {
    "10.0.0.1:1783".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "10.0.0.2:40000".parse().unwrap()
}

fn server_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x22; 32])
}

fn client_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x11; 32])
}

fn client_config(id: ClientId, keys: KeyPair, seed: u8) -> ClientConfig {
    ClientConfig::noise_ik(id, keys, *server_keys().public(), server_addr(), [seed; 32])
}

/// An initiation sealed to our server by a key it does not admit: authentic as Noise, but
/// not from one of its clients, so the server's public-key work refuses it.
fn forged_initiation() -> Vec<u8> {
    let mut net = Network::new(5, Link::clean());
    net.add_server(
        server_addr(),
        ServerConfig::new([1; 32]).with_keys(server_keys()),
    );
    let stranger = KeyPair::from_secret_bytes([0x33; 32]);
    net.add_client(client_addr(), client_config(STRANGER, stranger, 4));
    net.capture();
    net.run_for(Duration::from_millis(5));
    net.captured()
        .iter()
        .find(|d| {
            matches!(
                Datagram::parse(&d.bytes),
                Ok(Datagram::Noise(NoisePacket::Initiation(_)))
            )
        })
        .expect("the stranger initiated")
        .bytes
        .clone()
}

/// 50 forged initiations from the real client's own address (five times its reply budget, and
/// below the cookie thresholds) arrive just before the client's own: the client must still be
/// answered at once. With the budget charged before the public-key work, the forgeries spent
/// all ten replies and the real initiation was dropped as `rate_limited`.
#[test]
fn forged_initiations_from_a_clients_address_do_not_spend_its_budget() {
    let forged = forged_initiation();
    let mut net = Network::new(7, Link::clean());
    net.add_server(
        server_addr(),
        ServerConfig::new([1; 32])
            .with_keys(server_keys())
            .with_ecc_client(ID, *client_keys().public()),
    );
    for _ in 0..50 {
        net.inject(client_addr(), server_addr(), &forged);
    }
    net.run_for(Duration::from_micros(100));
    net.add_client(client_addr(), client_config(ID, client_keys(), 2));
    let client = client_addr();
    let connected = net.run_until(Duration::from_millis(5), |n| {
        n.client(client).is_connected()
    });
    let stats = net.server(server_addr()).stats().clone();
    assert_eq!(stats.dropped(DropReason::RateLimited), 0, "{stats:?}");
    assert_eq!(stats.dropped(DropReason::BadHandshake), 50, "{stats:?}");
    assert!(connected, "the client was not answered at once");
}

/// The `ss` a side keeps equals the one a handshake computes, and a handshake that takes it
/// from the cache writes the same bytes and agrees on the same keys as one that does not.
#[test]
fn a_precomputed_static_result_gives_the_same_handshake() {
    let (client, server) = (client_keys(), server_keys());
    let mut client_statics = StaticDh::new(&client);
    client_statics.precompute(server.public());
    let mut server_statics = StaticDh::new(&server);
    server_statics.precompute(client.public());
    assert_eq!(
        client_statics.shared_with(server.public()),
        server_statics.shared_with(client.public()),
        "both sides' ss agree"
    );
    let run = |cs: Option<&StaticDh>, ss: Option<&StaticDh>| {
        let keys = InitiatorKeys {
            local: Some(&client),
            server: Some(server.public()),
            psk: None,
        };
        let mut rng = Rng::from_seed([3; 32]);
        let mut init = NoiseInitiator::new_cached(Pattern::Ik, &mut rng, keys, cs).unwrap();
        let mut m1 = [0u8; 256];
        let n1 = init.write_initiation(b"hello", &mut m1).unwrap();
        let mut resp =
            NoiseResponder::new_cached(Pattern::Ik, &mut rng, Some(&server), None, ss).unwrap();
        let mut p = [0u8; 64];
        assert_eq!(resp.read_initiation(&m1[..n1], &mut p).unwrap(), 5);
        let mut m2 = [0u8; 256];
        let (n2, server_keys) = resp.write_response(b"", &mut m2).unwrap();
        let (_, client_keys) = init.read_response(&m2[..n2], &mut p).unwrap();
        assert_eq!(client_keys.send, server_keys.recv);
        (m1[..n1].to_vec(), m2[..n2].to_vec(), client_keys.send)
    };
    let plain = run(None, None);
    let cached = run(Some(&client_statics), Some(&server_statics));
    assert_eq!(plain, cached);
}
