//! Builds with fewer suites: a configuration naming a left-out suite is a typed error, and
//! its packets are counted drops. Each test checks every suite, so it pins the full build
//! (everything carried) and, run in a one-suite build
//! (`cargo test -p pavillion-proto --no-default-features --features std,suite-psk --lib suite`,
//! which `scripts/check-no-std.sh` runs for each suite), the left-out ones.

use core::net::SocketAddr;

use super::*;
use crate::crypto::ecc::KeyPair;
use crate::crypto::Psk;
use crate::endpoint::{
    Client, ClientConfig, DropReason, SendError, SendOptions, Server, ServerConfig,
};
use crate::id::ClientId;
use crate::time::Instant;
use crate::wire::noise::{NoisePacket, SessionIndex};
use crate::wire::{EccNonce, NonceRequest, PskNonce, Setup};

const ID: ClientId = ClientId(*b"sensor-000000001");

fn server_addr() -> SocketAddr {
    "127.0.0.1:1783".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

fn config(suite: Suite) -> ClientConfig {
    let psk = Psk::from_bytes([7; 32]);
    let server = KeyPair::from_secret_bytes([3; 32]);
    match suite {
        Suite::Psk => ClientConfig::psk(ID, psk, server_addr(), [2; 32]),
        Suite::Ecc => ClientConfig::ecc(
            ID,
            KeyPair::from_secret_bytes([4; 32]),
            *server.public(),
            server_addr(),
            [2; 32],
        ),
        Suite::Noise => ClientConfig::noise_ik(
            ID,
            KeyPair::from_secret_bytes([4; 32]),
            *server.public(),
            server_addr(),
            [2; 32],
        ),
    }
}

fn emit_setup(setup: &Setup) -> alloc::vec::Vec<u8> {
    let mut buf = [0; 512];
    let n = setup.emit(&mut buf).unwrap();
    buf[..n].to_vec()
}

fn emit_noise(packet: &NoisePacket<'_>) -> alloc::vec::Vec<u8> {
    let mut buf = [0; 512];
    let n = packet.emit(&mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn a_config_naming_a_left_out_suite_is_a_typed_error_and_a_closed_client() {
    for suite in Suite::ALL {
        let now = Instant::ZERO;
        let mut buf = [0; 2048];
        match Client::try_new(config(suite)) {
            Ok(mut client) => {
                assert!(suite.is_compiled(), "{suite}");
                // A carried suite starts its handshake at once.
                assert!(client.poll_transmit(now, &mut buf).is_some(), "{suite}");
            }
            Err(e) => {
                assert_eq!(e, SuiteNotCompiled(suite));
                assert!(!suite.is_compiled(), "{suite}");
                assert!(alloc::format!("{e}").contains(suite.feature()));
                // `new` never panics on it: the client is closed, sends nothing and
                // refuses commands with a typed status.
                let mut client = Client::new(config(suite));
                assert!(client.poll_transmit(now, &mut buf).is_none(), "{suite}");
                let sent = client.send_message(now, "t", "n", b"x", SendOptions::reliable());
                assert_eq!(sent, Err(SendError::Closed), "{suite}");
            }
        }
    }
}

#[test]
fn packets_of_a_left_out_suite_are_counted_drops_at_a_client() {
    // A client of whichever suite the build carries first.
    let Some(own) = Suite::ALL.into_iter().find(|s| s.is_compiled()) else {
        return;
    };
    let mut client = Client::new(config(own));
    let nonces = [
        (
            Suite::Psk,
            emit_setup(&Setup::PskNonce(PskNonce {
                server_nonce: [1; 32],
                challenge: [2; 16],
                tag: [3; 32],
            })),
        ),
        (
            Suite::Ecc,
            emit_setup(&Setup::EccNonce(EccNonce {
                box_nonce: [1; 24],
                sealed: [2; 64],
            })),
        ),
        (
            Suite::Noise,
            emit_noise(&NoisePacket::UnknownIndex {
                receiver: SessionIndex(7),
            }),
        ),
    ];
    let mut expected = 0;
    for (suite, datagram) in nonces {
        client.handle_datagram(Instant::ZERO, server_addr(), &datagram);
        if !suite.is_compiled() {
            expected += 1;
        }
        assert_eq!(
            client.stats().dropped(DropReason::SuiteNotCompiled),
            expected,
            "{suite}"
        );
    }
}

#[test]
fn packets_of_a_left_out_suite_are_counted_drops_at_a_server() {
    let mut server = Server::new(
        ServerConfig::new([1; 32])
            .with_psk_client(ID, Psk::from_bytes([7; 32]))
            .with_keys(KeyPair::from_secret_bytes([3; 32])),
    );
    let request = |cipher| {
        emit_setup(&Setup::NonceRequest(NonceRequest {
            cipher,
            client_id: ID,
            challenge: [5; 16],
            session_hint: [0; 16],
            public_key: *KeyPair::from_secret_bytes([4; 32]).public().as_bytes(),
        }))
    };
    let packets = [
        (Suite::Psk, request(crate::wire::CipherId::Psk)),
        (Suite::Ecc, request(crate::wire::CipherId::Ecc)),
        (
            Suite::Noise,
            emit_noise(&NoisePacket::UnknownIndex {
                receiver: SessionIndex(7),
            }),
        ),
    ];
    let mut expected = 0;
    for (suite, datagram) in packets {
        server.handle_datagram(Instant::ZERO, client_addr(), &datagram);
        if !suite.is_compiled() {
            expected += 1;
        }
        assert_eq!(
            server.stats().dropped(DropReason::SuiteNotCompiled),
            expected,
            "{suite}"
        );
    }
}

#[test]
fn suites_name_their_number_and_feature() {
    let numbers: alloc::vec::Vec<u8> = Suite::ALL.iter().map(|s| s.number()).collect();
    assert_eq!(numbers, [1, 2, 3]);
    for s in Suite::ALL {
        assert!(s.feature().starts_with("suite-"));
        assert_eq!(s.check().is_ok(), s.is_compiled());
    }
    assert_eq!(Suite::of_cipher(crate::wire::CipherId::Ecc), Suite::Ecc);
}
