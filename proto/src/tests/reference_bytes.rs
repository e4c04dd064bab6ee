//! "Our encoder produces the same bytes given the same randomness": every packet of the computed
//! vectors and of the reference captures (`crate::crypto::test_vectors`) is rebuilt through the
//! code paths the endpoints use (handshake builders, `session::seal`, `Setup::emit`) and
//! compared byte for byte; the captured session packets also go through `RxSession::open`.

use alloc::vec;
use alloc::vec::Vec;

use crate::crypto::ecc::{self, KeyPair, PublicKey};
use crate::crypto::test_vectors::*;
use crate::crypto::{psk, Psk, SecretBoxKey};
use crate::handshake::client::{ecc_client_info, psk_client_info};
use crate::handshake::server::ExpectClientInfo;
use crate::id::{ClientId, Counter, FunctionId};
use crate::session::{self, OpenError, RxSession};
use crate::time::Instant;
use crate::wire::{
    self, App, CipherId, Datagram, Message, NonceRequest, RpcStatus, Setup, StatusBytes,
};

/// Computed vectors: op 1 (cipher 1, session-id hint and public key fields all zero). Not in
/// `test_vectors` because no library test needs it.
const COMPUTED_OP1: &str = "506176696c6c696f6e53300000000000000000010143434343434343434343434343434343c0c1c2c3c4c5c6c7c8c9cacbcccdcecf000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
/// Captures #1: the PSK client's op 1.
const CAP_PSK_OP1: &str = "506176696c6c696f6e533000000000000000000101000102030405060708090a0b0c0d0e0f77a28eaf3ce1c65fab37ebf2f1c8483f872b55b62410e28bc7d14a4afe08dd0f0000000000000000000000000000000000000000000000000000000000000000";
/// Captures #1: the random session-id hint.
const CAP_PSK_HINT: &str = "872b55b62410e28bc7d14a4afe08dd0f";
/// Captures #12: the ECC client's op 1.
const CAP_ECC_OP1: &str = "506176696c6c696f6e533000000000000000000102e0e1e2e3e4e5e6e7e8e9eaebecedeeef379232ecce8b9be79d3b2d824474088ad2e998556313bc44e5be4856bda49209dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44";
/// Captures #12: the random session-id hint.
const CAP_ECC_HINT: &str = "d2e998556313bc44e5be4856bda49209";
/// Captures #13: the op 11 box nonce.
const CAP_ECC_OP11_BOX_NONCE: &str = "98e52ba8497f978407ef4e90d35358a4f69bc3e8f3b9ddf0";
/// Captures #14: the op 12 box nonce.
const CAP_ECC_OP12_BOX_NONCE: &str = "9e6ed7b5252bf4dc26d9b4448eed83eb4588aadf412181c5";
/// Captures #3: the counter field of op 3.
const CAP_PSK_COUNTER: u64 = 44_675_429;

fn emit(setup: &Setup) -> Vec<u8> {
    let mut buf = vec![0u8; setup.buffer_len()];
    let n = setup.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn seal(key: &SecretBoxKey, counter: u64, app: &App<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    let tx = session::TxKey::Reference(key.clone());
    let n = session::seal(&tx, Counter(counter), app, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn id(s: &str) -> ClientId {
    ClientId(h16(s))
}

fn psk_key(s: &str) -> Psk {
    Psk::from_bytes(h32(s))
}

fn key(s: &str) -> SecretBoxKey {
    SecretBoxKey::from_bytes(h32(s))
}

fn h24(s: &str) -> [u8; 24] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn pair(secret: &str) -> KeyPair {
    KeyPair::from_secret_bytes(h32(secret))
}

fn public(s: &str) -> PublicKey {
    PublicKey::from(h32(s))
}

/// Opens `packet` (hex) in `rx`, returning the plaintext or the error.
fn open(rx: &mut RxSession<SecretBoxKey>, packet: &str) -> Result<Vec<u8>, OpenError> {
    let bytes = bytes(packet);
    let Ok(Datagram::Session(p)) = Datagram::parse(&bytes) else {
        panic!("not a session packet: {packet}");
    };
    let mut scratch = vec![0u8; wire::MAX_DATAGRAM];
    rx.open(&p, &bytes[..wire::HEADER_LEN], &mut scratch)
        .map(<[u8]>::to_vec)
        .map_err(|(e, _)| e)
}

#[test]
fn computed_op1_from_a_nonce_request() {
    let request = Setup::NonceRequest(NonceRequest {
        cipher: CipherId::Psk,
        client_id: id(COMPUTED_CLIENT_ID),
        challenge: h16(COMPUTED_CHALLENGE),
        session_hint: [0; 16],
        public_key: [0; 32],
    });
    assert_eq!(hex::encode(emit(&request)), COMPUTED_OP1);
    assert_eq!(emit(&request).len(), 101);
}

#[test]
fn captured_op1s_from_nonce_requests() {
    let psk_request = Setup::NonceRequest(NonceRequest {
        cipher: CipherId::Psk,
        client_id: id(CAP_PSK_CID),
        challenge: h16(CAP_PSK_CHALLENGE),
        session_hint: h16(CAP_PSK_HINT),
        public_key: [0; 32],
    });
    assert_eq!(hex::encode(emit(&psk_request)), CAP_PSK_OP1);
    // The ECC request carries the client's *public* key (derived here from its secret).
    let ecc_request = Setup::NonceRequest(NonceRequest {
        cipher: CipherId::Ecc,
        client_id: id(CAP_ECC_CID),
        challenge: h16(CAP_ECC_CHALLENGE),
        session_hint: h16(CAP_ECC_HINT),
        public_key: pair(CAP_ECC_CLIENT_SK).public().to_bytes(),
    });
    assert_eq!(hex::encode(emit(&ecc_request)), CAP_ECC_OP1);
}

#[test]
fn computed_op2_from_the_server_exchange() {
    let half = ExpectClientInfo::psk(
        Instant::ZERO,
        id(COMPUTED_CLIENT_ID),
        psk_key(COMPUTED_PSK),
        h32(COMPUTED_SN),
        h16(COMPUTED_CHALLENGE),
    );
    let reply = half.reply(None).unwrap();
    assert_eq!(hex::encode(emit(&reply)), COMPUTED_OP2);
    let Setup::PskNonce(p) = reply else {
        panic!("not op 2")
    };
    assert_eq!(p.tag, h32(COMPUTED_OP2_TAG));
}

#[test]
fn captured_op2_from_the_server_exchange() {
    let half = ExpectClientInfo::psk(
        Instant::ZERO,
        id(CAP_PSK_CID),
        psk_key(CAP_PSK),
        h32(CAP_PSK_SN),
        h16(CAP_PSK_CHALLENGE),
    );
    let reply = half.reply(None).unwrap();
    assert_eq!(hex::encode(emit(&reply)), CAP_PSK_OP2);
    let Setup::PskNonce(p) = reply else {
        panic!("not op 2")
    };
    assert_eq!(p.tag, h32(CAP_PSK_OP2_TAG));
}

#[test]
fn computed_op3_from_the_client_builder() {
    let info = psk_client_info(
        &psk_key(COMPUTED_PSK),
        id(COMPUTED_CLIENT_ID),
        h32(COMPUTED_CN),
        h32(COMPUTED_SN),
        Counter(1000),
    );
    assert_eq!(hex::encode(emit(&info)), COMPUTED_OP3);
    let Setup::PskClientInfo(p) = info else {
        panic!("not op 3")
    };
    assert_eq!(p.tag, h32(COMPUTED_OP3_TAG));
}

#[test]
fn captured_op3_from_the_client_builder() {
    let info = psk_client_info(
        &psk_key(CAP_PSK),
        id(CAP_PSK_CID),
        h32(CAP_PSK_CN),
        h32(CAP_PSK_SN),
        Counter(CAP_PSK_COUNTER),
    );
    assert_eq!(hex::encode(emit(&info)), CAP_PSK_OP3);
    let Setup::PskClientInfo(p) = info else {
        panic!("not op 3")
    };
    assert_eq!(p.tag, h32(CAP_PSK_OP3_TAG));
}

#[test]
fn computed_op11_from_the_server_exchange() {
    let server = pair(COMPUTED_ECC_SERVER_SK);
    let half = ExpectClientInfo::ecc(
        Instant::ZERO,
        id(COMPUTED_CLIENT_ID),
        public(COMPUTED_ECC_CLIENT_PUB),
        false,
        h32(COMPUTED_SN),
        [0x33; 24],
        h16(COMPUTED_CHALLENGE),
    );
    let reply = half.reply(Some(&server)).unwrap();
    assert_eq!(hex::encode(emit(&reply)), COMPUTED_OP11);
    assert_eq!(emit(&reply).len(), 108);
}

#[test]
fn captured_op11_from_the_server_exchange() {
    let server = pair(CAP_ECC_SERVER_SK);
    assert_eq!(server.public().to_bytes(), h32(CAP_ECC_SERVER_PUB));
    let half = ExpectClientInfo::ecc(
        Instant::ZERO,
        id(CAP_ECC_CID),
        public(CAP_ECC_CLIENT_PUB),
        false,
        h32(CAP_ECC_SN),
        h24(CAP_ECC_OP11_BOX_NONCE),
        h16(CAP_ECC_CHALLENGE),
    );
    let reply = half.reply(Some(&server)).unwrap();
    assert_eq!(hex::encode(emit(&reply)), CAP_ECC_OP11);
}

#[test]
fn ecc_reply_without_a_server_key_pair_is_refused() {
    let half = ExpectClientInfo::ecc(
        Instant::ZERO,
        id(COMPUTED_CLIENT_ID),
        public(COMPUTED_ECC_CLIENT_PUB),
        false,
        h32(COMPUTED_SN),
        [0x33; 24],
        h16(COMPUTED_CHALLENGE),
    );
    assert_eq!(
        half.reply(None),
        Err(crate::handshake::HandshakeError::NoKeyPair)
    );
}

#[test]
fn computed_op12_from_the_client_builder() {
    let info = ecc_client_info(
        &pair(COMPUTED_ECC_CLIENT_SK),
        &public(COMPUTED_ECC_SERVER_PUB),
        id(COMPUTED_CLIENT_ID),
        [0x66; 24],
        h32(COMPUTED_SN),
        &SecretBoxKey::from_bytes([0x44; 32]),
        &SecretBoxKey::from_bytes([0x55; 32]),
        Counter(7000),
    );
    assert_eq!(hex::encode(emit(&info)), COMPUTED_OP12);
    assert_eq!(emit(&info).len(), 181);
}

#[test]
fn captured_op12_from_the_client_builder() {
    let info = ecc_client_info(
        &pair(CAP_ECC_CLIENT_SK),
        &public(CAP_ECC_SERVER_PUB),
        id(CAP_ECC_CID),
        h24(CAP_ECC_OP12_BOX_NONCE),
        h32(CAP_ECC_SN),
        &key(CAP_ECC_CTS),
        &key(CAP_ECC_STC),
        Counter(CAP_ECC_COUNTER),
    );
    assert_eq!(hex::encode(emit(&info)), CAP_ECC_OP12);
}

#[test]
fn computed_handshakes_complete_on_the_server_side() {
    // PSK: the server's half-open state accepts the computed op 3 and derives §11's keys.
    let half = ExpectClientInfo::psk(
        Instant::ZERO,
        id(COMPUTED_CLIENT_ID),
        psk_key(COMPUTED_PSK),
        h32(COMPUTED_SN),
        h16(COMPUTED_CHALLENGE),
    );
    let Ok(Setup::PskClientInfo(info)) = Setup::parse(&bytes(COMPUTED_OP3)) else {
        panic!("op 3 does not parse")
    };
    let keys = half.on_psk_info(&info).unwrap();
    assert_eq!(keys.client_to_server, key(COMPUTED_CTS));
    assert_eq!(keys.server_to_client, key(COMPUTED_STC));
    assert_eq!(keys.client_counter, Counter(1000));
    assert_eq!(keys.session_id, h16(COMPUTED_PSK_SESSION_ID));

    // ECC: the computed op 12 carries C>S 44×32, S>C 55×32 and counter 7000.
    let server = pair(COMPUTED_ECC_SERVER_SK);
    let half = ExpectClientInfo::ecc(
        Instant::ZERO,
        id(COMPUTED_CLIENT_ID),
        public(COMPUTED_ECC_CLIENT_PUB),
        false,
        h32(COMPUTED_SN),
        [0x33; 24],
        h16(COMPUTED_CHALLENGE),
    );
    let Ok(Setup::EccClientInfo(info)) = Setup::parse(&bytes(COMPUTED_OP12)) else {
        panic!("op 12 does not parse")
    };
    let keys = half.on_ecc_info(&info, &server).unwrap();
    assert_eq!(keys.client_to_server, SecretBoxKey::from_bytes([0x44; 32]));
    assert_eq!(keys.server_to_client, SecretBoxKey::from_bytes([0x55; 32]));
    assert_eq!(keys.client_counter, Counter(7000));
    assert_eq!(keys.session_id, h16(COMPUTED_ECC_SESSION_ID));
}

#[test]
fn computed_session_packets_from_seal() {
    let cts = key(COMPUTED_CTS);
    let stc = key(COMPUTED_STC);
    let call = App::RpcCall {
        function: FunctionId(400),
        args: b"hello",
    };
    assert_eq!(hex::encode(seal(&cts, 1001, &call)), COMPUTED_CALL_1001);
    let response = App::RpcResponse {
        call: Counter(1001),
        status: RpcStatus::OK,
        data: b"olleh",
    };
    assert_eq!(
        hex::encode(seal(&stc, (1 << 63) + 5, &response)),
        COMPUTED_RESPONSE
    );
    let message = App::ReliableMessage(Message {
        target: "T",
        name: "N",
        payload: b"data",
    });
    assert_eq!(
        hex::encode(seal(&cts, 1002, &message)),
        COMPUTED_MESSAGE_1002
    );
    let ack = App::Ack {
        counter: Counter(1002),
        status: Some(StatusBytes {
            battery: 0,
            network: 0xff,
            temperature: 0,
        }),
    };
    assert_eq!(hex::encode(seal(&stc, (1 << 63) + 6, &ack)), COMPUTED_ACK);
    // Exact sizes a Python peer sees: 36 + payload. (The vector table labels the message
    // packet "45 B", but its hex, and 36 + len("T\nN\ndata"), is 44.)
    assert_eq!(seal(&cts, 1001, &call).len(), 43);
    assert_eq!(seal(&stc, (1 << 63) + 5, &response).len(), 51);
    assert_eq!(seal(&cts, 1002, &message).len(), 44);
    assert_eq!(seal(&stc, (1 << 63) + 6, &ack).len(), 47);
}

#[test]
fn computed_session_packets_open_in_a_receive_session() {
    // C>S with the floor op 3 announced (1000); S>C fresh.
    let mut c2s = RxSession::new(key(COMPUTED_CTS), Counter(1000));
    assert_eq!(
        hex::encode(open(&mut c2s, COMPUTED_CALL_1001).unwrap()),
        "04900168656c6c6f"
    );
    assert_eq!(
        hex::encode(open(&mut c2s, COMPUTED_MESSAGE_1002).unwrap()),
        "01540a4e0a64617461"
    );
    let mut s2c = RxSession::new(key(COMPUTED_STC), Counter(0));
    assert_eq!(
        hex::encode(open(&mut s2c, COMPUTED_RESPONSE).unwrap()),
        "05e90300000000000000006f6c6c6568"
    );
    assert_eq!(
        hex::encode(open(&mut s2c, COMPUTED_ACK).unwrap()),
        "02ea0300000000000000ff00"
    );
    // Wrong direction's key: forged.
    let mut wrong = RxSession::new(key(COMPUTED_STC), Counter(0));
    assert_eq!(open(&mut wrong, COMPUTED_CALL_1001), Err(OpenError::Forged));
}

#[test]
fn captured_keys_and_session_ids_derive_from_the_handshake_fields() {
    let psk = psk_key(CAP_PSK);
    let cts = psk::client_to_server_key(&psk, &h32(CAP_PSK_CN));
    let stc = psk::server_to_client_key(&psk, &h32(CAP_PSK_CN), &h32(CAP_PSK_SN));
    assert_eq!(cts, key(CAP_PSK_CTS));
    assert_eq!(stc, key(CAP_PSK_STC));
    let psk_sid = psk::session_id(&psk, &cts);
    assert_eq!(psk_sid, h16(CAP_PSK_SESSION_ID));
    let op7 = Setup::SessionEstablished {
        session_id: psk_sid,
    };
    assert_eq!(hex::encode(emit(&op7)), CAP_PSK_OP7);
    assert_eq!(emit(&op7).len(), 36);

    let ecc_sid = ecc::session_id(&public(CAP_ECC_CLIENT_PUB), &key(CAP_ECC_CTS));
    assert_eq!(ecc_sid, h16(CAP_ECC_SESSION_ID));
    let op7 = Setup::SessionEstablished {
        session_id: ecc_sid,
    };
    assert_eq!(hex::encode(emit(&op7)), CAP_ECC_OP7);
}

#[test]
fn captured_handshakes_complete_on_the_server_side() {
    let half = ExpectClientInfo::psk(
        Instant::ZERO,
        id(CAP_PSK_CID),
        psk_key(CAP_PSK),
        h32(CAP_PSK_SN),
        h16(CAP_PSK_CHALLENGE),
    );
    let Ok(Setup::PskClientInfo(info)) = Setup::parse(&bytes(CAP_PSK_OP3)) else {
        panic!("op 3 does not parse")
    };
    let keys = half.on_psk_info(&info).unwrap();
    assert_eq!(keys.client_to_server, key(CAP_PSK_CTS));
    assert_eq!(keys.server_to_client, key(CAP_PSK_STC));
    assert_eq!(keys.client_counter, Counter(CAP_PSK_COUNTER));
    let op7 = Setup::SessionEstablished {
        session_id: keys.session_id,
    };
    assert_eq!(hex::encode(emit(&op7)), CAP_PSK_OP7);

    let half = ExpectClientInfo::ecc(
        Instant::ZERO,
        id(CAP_ECC_CID),
        public(CAP_ECC_CLIENT_PUB),
        false,
        h32(CAP_ECC_SN),
        h24(CAP_ECC_OP11_BOX_NONCE),
        h16(CAP_ECC_CHALLENGE),
    );
    let Ok(Setup::EccClientInfo(info)) = Setup::parse(&bytes(CAP_ECC_OP12)) else {
        panic!("op 12 does not parse")
    };
    let keys = half.on_ecc_info(&info, &pair(CAP_ECC_SERVER_SK)).unwrap();
    assert_eq!(keys.client_to_server, key(CAP_ECC_CTS));
    assert_eq!(keys.server_to_client, key(CAP_ECC_STC));
    assert_eq!(keys.client_counter, Counter(CAP_ECC_COUNTER));
    let op7 = Setup::SessionEstablished {
        session_id: keys.session_id,
    };
    assert_eq!(hex::encode(emit(&op7)), CAP_ECC_OP7);
}

#[test]
fn captured_session_packets_reseal_identically() {
    for (k, packet, plaintext) in CAPTURED_SESSION_PACKETS {
        let bytes = bytes(packet);
        let counter = u64::from_le_bytes(bytes[11..19].try_into().unwrap());
        let plain = hex::decode(plaintext).unwrap();
        let app = App::parse(&plain).unwrap();
        assert_eq!(
            hex::encode(seal(&key(k), counter, &app)),
            *packet,
            "counter {counter}"
        );
    }
}

#[test]
fn captured_session_packets_open_in_receive_sessions() {
    // Each direction of each session, with the floor its handshake set: C>S above the client
    // info's counter field, S>C from zero (a fresh S>C key).
    let mut psk_c2s = RxSession::new(key(CAP_PSK_CTS), Counter(CAP_PSK_COUNTER));
    let mut psk_s2c = RxSession::new(key(CAP_PSK_STC), Counter(0));
    let mut ecc_c2s = RxSession::new(key(CAP_ECC_CTS), Counter(CAP_ECC_COUNTER));
    let mut ecc_s2c = RxSession::new(key(CAP_ECC_STC), Counter(0));
    for (k, packet, plaintext) in CAPTURED_SESSION_PACKETS {
        let rx = match *k {
            CAP_PSK_CTS => &mut psk_c2s,
            CAP_PSK_STC => &mut psk_s2c,
            CAP_ECC_CTS => &mut ecc_c2s,
            _ => &mut ecc_s2c,
        };
        assert_eq!(hex::encode(open(rx, packet).unwrap()), *plaintext);
        // The same packet again is a duplicate, never a second delivery.
        assert_eq!(open(rx, packet), Err(OpenError::Duplicate));
    }
    // A session from another handshake (other key) does not open them.
    let mut other = RxSession::new(key(CAP_ECC_CTS), Counter(0));
    assert_eq!(
        open(&mut other, CAPTURED_SESSION_PACKETS[0].1),
        Err(OpenError::Forged)
    );
}
