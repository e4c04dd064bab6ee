//! A reference ECC client picks a new S>C key for every op 11 it receives; our server must
//! follow it when a retried op 1 brings a second client-info for the same exchange.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::net::SocketAddr;

use pavillion_proto::crypto::ecc::{self, KeyPair};
use pavillion_proto::crypto::{SecretBoxKey, SessionCipher};
use pavillion_proto::endpoint::ServerConfig;
use pavillion_proto::testing::{Link, Network};
use pavillion_proto::wire::{
    self, App, CipherId, Datagram, EccClientInfo, Message, NonceRequest, Setup,
};
use pavillion_proto::{ClientId, Counter, Duration};

const ID: ClientId = ClientId(*b"reference-ecc-01");

fn server_addr() -> SocketAddr {
    "10.0.0.1:1783".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "10.0.0.2:40000".parse().unwrap()
}

fn emit(setup: &Setup) -> Vec<u8> {
    let mut buf = vec![0u8; setup.buffer_len()];
    setup.emit(&mut buf).unwrap();
    buf
}

/// The op 12 a reference client sends: both keys and the counter floor, boxed.
fn client_info(
    client: &KeyPair,
    server: &KeyPair,
    server_nonce: &[u8],
    cs: [u8; 32],
    sc: [u8; 32],
) -> Vec<u8> {
    let mut inner = [0u8; 104];
    inner[..32].copy_from_slice(server_nonce);
    inner[32..64].copy_from_slice(&cs);
    inner[64..96].copy_from_slice(&sc);
    inner[96..].copy_from_slice(&1000u64.to_le_bytes());
    let box_nonce = [sc[0]; 24];
    emit(&Setup::EccClientInfo(EccClientInfo {
        client_id: ID,
        cipher: CipherId::Ecc,
        box_nonce,
        sealed: ecc::seal_client_info(client.secret(), server.public(), &box_nonce, &inner),
    }))
}

#[test]
fn a_second_client_info_for_the_same_nonce_switches_the_server_to_client_key() {
    let (server_keys, client_keys) = (
        KeyPair::from_secret_bytes([0x22; 32]),
        KeyPair::from_secret_bytes([0x11; 32]),
    );
    let mut net = Network::new(1, Link::clean());
    let config = ServerConfig::new([1; 32])
        .with_keys(server_keys.clone())
        .with_ecc_client(ID, *client_keys.public());
    net.add_server(server_addr(), config);
    net.capture();

    let request = emit(&Setup::NonceRequest(NonceRequest {
        cipher: CipherId::Ecc,
        client_id: ID,
        challenge: [7; 16],
        session_hint: [0; 16],
        public_key: client_keys.public().to_bytes(),
    }));
    net.inject(client_addr(), server_addr(), &request);
    net.run_for(Duration::from_millis(10));
    let op11 = net
        .captured()
        .iter()
        .find_map(|d| match Datagram::parse(&d.bytes) {
            Ok(Datagram::Setup(Setup::EccNonce(n))) => Some(n),
            _ => None,
        })
        .expect("op 11");
    let inner = ecc::open_nonce(
        client_keys.secret(),
        server_keys.public(),
        &op11.box_nonce,
        &op11.sealed,
    )
    .unwrap();
    let server_nonce = &inner[..32];

    let (cs, first_sc, second_sc) = ([0x44; 32], [0x55; 32], [0x66; 32]);
    net.inject(
        client_addr(),
        server_addr(),
        &client_info(&client_keys, &server_keys, server_nonce, cs, first_sc),
    );
    net.run_for(Duration::from_millis(10));
    // The client retried op 1, got the identical op 11 again, and answered it with a new key.
    net.inject(
        client_addr(),
        server_addr(),
        &client_info(&client_keys, &server_keys, server_nonce, cs, second_sc),
    );
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.server(server_addr()).session_count(), 1);

    // A reliable message under the C>S key; its ACK must open under the second S>C key.
    let body_app = App::ReliableMessage(Message {
        target: "t",
        name: "n",
        payload: b"x",
    });
    let mut packet = vec![0u8; wire::SESSION_OVERHEAD + body_app.buffer_len()];
    wire::emit_session_header(&mut packet, Counter(1001)).unwrap();
    let (head, body) = packet.split_at_mut(wire::SESSION_OVERHEAD);
    body_app.emit(body).unwrap();
    let tag =
        SecretBoxKey::from_bytes(cs).seal_in_place(Counter(1001), &head[..wire::HEADER_LEN], body);
    head[wire::HEADER_LEN..].copy_from_slice(&tag);
    net.capture();
    net.inject(client_addr(), server_addr(), &packet);
    net.run_for(Duration::from_millis(10));
    let ack = net
        .captured()
        .iter()
        .find(|d| {
            d.from == server_addr() && matches!(Datagram::parse(&d.bytes), Ok(Datagram::Session(_)))
        })
        .expect("an ACK")
        .bytes
        .clone();
    let Ok(Datagram::Session(p)) = Datagram::parse(&ack) else {
        unreachable!()
    };
    let mut plain = p.ciphertext.to_vec();
    SecretBoxKey::from_bytes(second_sc)
        .open_in_place(p.counter, &ack[..wire::HEADER_LEN], p.tag, &mut plain)
        .expect("sealed under the client's latest S>C key");
    assert!(matches!(
        App::parse(&plain),
        Ok(App::Ack {
            counter: Counter(1001),
            ..
        })
    ));
}
