//! The passive decoder (`pavillion_proto::dissect`), which reads captures and key logs that
//! anyone may hand it: whatever the bytes, `Dissector::dissect` returns and its label is built.
//!
//! The first byte picks the shape. Odd: the rest is a datagram as it is. Even: the rest is a
//! plaintext, sealed under a key the dissector holds as a suite 1/2 session packet, a suite 3
//! data packet or a suite 3 group data packet, so that the application decoding behind a
//! verified tag is fuzzed too (the fuzzer cannot forge a tag). A sealed packet must open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pavillion_proto::crypto::noise::ChaChaKey;
use pavillion_proto::crypto::{SecretBoxKey, SessionCipher};
use pavillion_proto::dissect::{Decryption, Dissector};
use pavillion_proto::id::Counter;
use pavillion_proto::keylog::{ReferenceSuite, SessionSecret};
use pavillion_proto::wire::noise::{
    emit_data_header, emit_group_header, KeyId, SenderId, SessionIndex, DATA_HEADER_LEN,
    GROUP_HEADER_LEN,
};
use pavillion_proto::wire::{emit_session_header, HEADER_LEN};

const PSK_TO_SERVER: [u8; 32] = [5; 32];
const NOISE_TO_SERVER: [u8; 32] = [6; 32];
const GROUP: [u8; 32] = [7; 32];

fn dissector() -> Dissector {
    let mut d = Dissector::new();
    d.add_secret(SessionSecret::Reference {
        suite: ReferenceSuite::Psk,
        to_server: PSK_TO_SERVER,
        to_client: [8; 32],
    });
    d.add_secret(SessionSecret::Noise {
        to_server_index: 1,
        to_server: NOISE_TO_SERVER,
        to_client_index: 2,
        to_client: [9; 32],
    });
    d.add_secret(SessionSecret::Group {
        sender: 3,
        key_id: 4,
        key: GROUP,
    });
    d
}

fn sealed(shape: u8, plaintext: &[u8]) -> Vec<u8> {
    let counter = Counter(9);
    let mut body = plaintext.to_vec();
    match shape % 3 {
        0 => {
            let mut out = vec![0u8; HEADER_LEN];
            emit_session_header(&mut out, counter).unwrap();
            let tag =
                SecretBoxKey::from_bytes(PSK_TO_SERVER).seal_in_place(counter, &out, &mut body);
            out.extend_from_slice(&tag);
            out.extend_from_slice(&body);
            out
        }
        1 => {
            let mut out = vec![0u8; DATA_HEADER_LEN];
            emit_data_header(&mut out, SessionIndex(1), counter).unwrap();
            let tag = ChaChaKey::from_bytes(NOISE_TO_SERVER).seal_in_place(counter, &out, &mut body);
            out.extend_from_slice(&body);
            out.extend_from_slice(&tag);
            out
        }
        _ => {
            let mut out = vec![0u8; GROUP_HEADER_LEN];
            emit_group_header(&mut out, SenderId(3), KeyId(4), counter).unwrap();
            let tag = ChaChaKey::from_bytes(GROUP).seal_in_place(counter, &out, &mut body);
            out.extend_from_slice(&body);
            out.extend_from_slice(&tag);
            out
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let from = "10.0.0.2:40000".parse().unwrap();
    let to = "10.0.0.1:1783".parse().unwrap();
    let mut d = dissector();
    if first & 1 == 1 {
        let _ = d.dissect(from, to, rest).label();
    } else if !rest.is_empty() && rest.len() <= 4000 {
        let x = d.dissect(from, to, &sealed(first >> 1, rest));
        let _ = x.label();
        assert!(matches!(x.decryption, Decryption::Opened(_)), "{x:?}");
        assert_eq!(x.op, Some(rest[0]));
    }
});
