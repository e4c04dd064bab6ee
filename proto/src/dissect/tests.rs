use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use quickcheck::{QuickCheck, TestResult};

use super::*;
use crate::crypto::test_vectors::*;
use crate::crypto::{SecretBoxKey, SessionCipher};
use crate::keylog::ReferenceSuite;
use crate::wire::noise::{emit_data_header, emit_group_header, KeyId, SenderId, SessionIndex};
use crate::wire::{emit_session_header, HEADER_LEN};

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn client() -> SocketAddr {
    a("10.0.0.2:40000")
}

fn server() -> SocketAddr {
    a("10.0.0.1:1783")
}

fn reference(suite: ReferenceSuite, cts: &str, stc: &str) -> SessionSecret {
    SessionSecret::Reference {
        suite,
        to_server: h32(cts),
        to_client: h32(stc),
    }
}

fn captured_keys() -> Dissector {
    let mut d = Dissector::new();
    d.add_secret(reference(ReferenceSuite::Psk, CAP_PSK_CTS, CAP_PSK_STC));
    d.add_secret(reference(ReferenceSuite::Ecc, CAP_ECC_CTS, CAP_ECC_STC));
    d
}

/// The reference captures' session packets decode to the opcode of their known plaintext,
/// in the suite and direction of the key that opens them.
#[test]
fn captured_session_packets_decode_with_their_keys() {
    let mut d = captured_keys();
    for (key, packet, plaintext) in CAPTURED_SESSION_PACKETS {
        let bytes = hex::decode(packet).unwrap();
        let op = hex::decode(plaintext).unwrap()[0];
        let x = d.dissect(client(), server(), &bytes);
        assert_eq!(x.layer, Layer::Session);
        assert_eq!(x.op, Some(op), "{x:?}");
        assert_eq!(x.name, op_name(op));
        assert!(x.error.is_none(), "{x:?}");
        let (suite, direction) = match *key {
            k if k == CAP_PSK_CTS => (SuiteNumber::Psk, Direction::ToServer),
            k if k == CAP_PSK_STC => (SuiteNumber::Psk, Direction::ToClient),
            k if k == CAP_ECC_CTS => (SuiteNumber::Ecc, Direction::ToServer),
            _ => (SuiteNumber::Ecc, Direction::ToClient),
        };
        assert_eq!(x.suite, Some(suite));
        assert_eq!(x.decryption, Decryption::Opened(direction));
    }
    assert_eq!(d.stats().opened, CAPTURED_SESSION_PACKETS.len() as u64);
    assert_eq!(d.stats().unopened, 0);
}

#[test]
fn captured_session_packets_stay_encrypted_without_keys() {
    let mut d = Dissector::new();
    // A key of no captured session: tried, and refused by the tag.
    d.add_secret(reference(ReferenceSuite::Psk, COMPUTED_CTS, COMPUTED_STC));
    for (_, packet, _) in CAPTURED_SESSION_PACKETS {
        let bytes = hex::decode(packet).unwrap();
        let x = d.dissect(client(), server(), &bytes);
        assert_eq!((x.layer, x.name), (Layer::Session, "encrypted"));
        assert_eq!(x.decryption, Decryption::NoKey);
        assert_eq!(x.suite, None);
        assert!(x.fields.is_empty());
        assert_eq!(
            x.label(),
            alloc::format!("encrypted ctr={}", x.counter.unwrap())
        );
    }
    assert_eq!(d.stats().opened, 0);
}

#[test]
fn captured_fields_are_named() {
    let mut d = captured_keys();
    // #9: reliable message TestTarget/MessageName "data".
    let (_, packet, _) = CAPTURED_SESSION_PACKETS[4];
    let x = d.dissect(client(), server(), &hex::decode(packet).unwrap());
    assert_eq!(x.field("target"), Some(&Value::Text("TestTarget".into())));
    assert_eq!(x.field("name"), Some(&Value::Text("MessageName".into())));
    assert_eq!(x.field("payload_len"), Some(&Value::U64(4)));
    assert_eq!(x.field("payload"), Some(&Value::Bytes(b"data".to_vec())));
    let ctr = x.counter.unwrap();
    assert_eq!(
        x.label(),
        alloc::format!("reliable_message #{ctr} TestTarget/MessageName")
    );
    // #10: its ACK.
    let (_, packet, _) = CAPTURED_SESSION_PACKETS[5];
    let y = d.dissect(server(), client(), &hex::decode(packet).unwrap());
    assert_eq!(y.field("acked"), Some(&Value::U64(ctr)));
    assert_eq!(y.label(), alloc::format!("ack {ctr}"));
    // #5 and #6: an RPC call and its response.
    let (_, packet, _) = CAPTURED_SESSION_PACKETS[0];
    let call = d.dissect(client(), server(), &hex::decode(packet).unwrap());
    assert_eq!(call.field("function"), Some(&Value::U64(401)));
    let (_, packet, _) = CAPTURED_SESSION_PACKETS[1];
    let resp = d.dissect(server(), client(), &hex::decode(packet).unwrap());
    assert_eq!(resp.field("call"), call.counter.map(Value::U64).as_ref());
    assert_eq!(resp.field("status"), Some(&Value::U64(0)));
    assert_eq!(
        resp.label(),
        alloc::format!("rpc_response #{} ok", call.counter.unwrap())
    );
    assert_eq!(
        call.label(),
        alloc::format!("rpc_call #{} fn=401", call.counter.unwrap())
    );
}

#[test]
fn captured_setup_packets_are_named() {
    let mut d = Dissector::new();
    let cases: [(&str, u8, &str, Option<SuiteNumber>); 5] = [
        (CAP_PSK_OP2, 2, "psk_nonce", Some(SuiteNumber::Psk)),
        (CAP_PSK_OP3, 3, "psk_client_info", Some(SuiteNumber::Psk)),
        (CAP_PSK_OP7, 7, "session_established", None),
        (CAP_ECC_OP11, 11, "ecc_nonce", Some(SuiteNumber::Ecc)),
        (CAP_ECC_OP12, 12, "ecc_client_info", Some(SuiteNumber::Ecc)),
    ];
    for (hex_packet, op, name, suite) in cases {
        let x = d.dissect(client(), server(), &hex::decode(hex_packet).unwrap());
        assert_eq!(x.layer, Layer::Setup);
        assert_eq!((x.op, x.name, x.suite), (Some(op), name, suite));
        assert_eq!(x.counter, Some(0));
        assert_eq!(x.decryption, Decryption::Clear);
        assert_eq!(x.label(), name);
    }
    let x = d.dissect(client(), server(), &hex::decode(CAP_PSK_OP3).unwrap());
    assert_eq!(
        x.field("client_id"),
        Some(&Value::Bytes(hex::decode(CAP_PSK_CID).unwrap()))
    );
    assert_eq!(
        x.field("server_nonce"),
        Some(&Value::Bytes(hex::decode(CAP_PSK_SN).unwrap()))
    );
}

#[test]
fn garbage_names_its_error() {
    let mut d = Dissector::new();
    let x = d.dissect(client(), server(), b"hello");
    assert_eq!(
        (x.layer, x.name, x.suite),
        (Layer::Garbage, "garbage", None)
    );
    assert!(x.error.is_some());
    assert!(x.label().starts_with("garbage ("));
    let x = d.dissect(client(), server(), b"PvS3\x09");
    assert_eq!(x.layer, Layer::Garbage);
}

fn noise_data(key: &ChaChaKey, index: u32, counter: u64, plaintext: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; DATA_HEADER_LEN];
    emit_data_header(&mut out, SessionIndex(index), Counter(counter)).unwrap();
    let mut body = plaintext.to_vec();
    let tag = key.seal_in_place(Counter(counter), &out, &mut body);
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    out
}

fn group_data(key: &ChaChaKey, sender: u64, key_id: u32, counter: u64, pt: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; GROUP_HEADER_LEN];
    emit_group_header(&mut out, SenderId(sender), KeyId(key_id), Counter(counter)).unwrap();
    let mut body = pt.to_vec();
    let tag = key.seal_in_place(Counter(counter), &out, &mut body);
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    out
}

fn reference_packet(key: &SecretBoxKey, counter: u64, plaintext: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    emit_session_header(&mut out, Counter(counter)).unwrap();
    let mut body = plaintext.to_vec();
    let tag = key.seal_in_place(Counter(counter), &out, &mut body);
    out.extend_from_slice(&tag);
    out.extend_from_slice(&body);
    out
}

#[test]
fn suite_3_data_is_found_by_index_and_group_data_by_sender_and_key_id() {
    let (ts, tc, g) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let mut d = Dissector::new();
    d.add_secret(SessionSecret::Noise {
        to_server_index: 0x1a2b_3c4d,
        to_server: ts,
        to_client_index: 0x00c0_ffee,
        to_client: tc,
    });
    d.add_secret(SessionSecret::Group {
        sender: 0x0123_4567_89ab_cdef,
        key_id: 7,
        key: g,
    });
    let sub = b"\x0dsensors";
    let up = noise_data(&ChaChaKey::from_bytes(ts), 0x1a2b_3c4d, 5, sub);
    let x = d.dissect(client(), server(), &up);
    assert_eq!(x.decryption, Decryption::Opened(Direction::ToServer));
    assert_eq!((x.name, x.suite), ("subscribe", Some(SuiteNumber::Noise)));
    assert_eq!(x.field("index"), Some(&Value::U64(0x1a2b_3c4d)));
    assert_eq!(x.label(), "subscribe sensors");
    let down = noise_data(&ChaChaKey::from_bytes(tc), 0x00c0_ffee, 9, b"\x14");
    let y = d.dissect(server(), client(), &down);
    assert_eq!(y.decryption, Decryption::Opened(Direction::ToClient));
    assert_eq!(y.name, "time_sync_request");
    // Under the other direction's index: the tag fails, nothing is shown.
    let wrong = noise_data(&ChaChaKey::from_bytes(tc), 0x1a2b_3c4d, 9, b"\x14");
    let z = d.dissect(server(), client(), &wrong);
    assert_eq!((z.name, z.decryption), ("encrypted", Decryption::NoKey));
    assert_eq!(z.op, Some(4));
    // Group data, and a group key inside a session packet that never shows its key.
    let msg = b"\x03t\nn\nhello";
    let gp = group_data(&ChaChaKey::from_bytes(g), 0x0123_4567_89ab_cdef, 7, 3, msg);
    let w = d.dissect(client(), a("239.255.3.3:1783"), &gp);
    assert_eq!((w.layer, w.name), (Layer::Group, "unreliable_message"));
    assert_eq!(w.field("key_id"), Some(&Value::U64(7)));
    assert_eq!(w.label(), "unreliable_message #3 t/n");
    let other_id = group_data(&ChaChaKey::from_bytes(g), 0x0123_4567_89ab_cdef, 8, 4, msg);
    assert_eq!(d.dissect(client(), server(), &other_id).name, "encrypted");
    let mut gk = vec![32u8];
    gk.extend_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
    gk.extend_from_slice(&8u32.to_le_bytes());
    gk.extend_from_slice(&[0xaa; 32]);
    let v = d.dissect(
        client(),
        server(),
        &noise_data(&ChaChaKey::from_bytes(ts), 0x1a2b_3c4d, 6, &gk),
    );
    assert_eq!(v.name, "group_key");
    assert_eq!(v.fields.len(), 3, "index, sender, key id: {v:?}");
    assert!(v
        .fields
        .iter()
        .all(|f| f.value != Value::Bytes(vec![0xaa; 32])));
    assert_eq!(v.label(), "group_key 0123456789abcdef/8");
}

#[test]
fn an_unknown_opcode_and_a_bad_payload_are_typed() {
    let key = SecretBoxKey::from_bytes([4; 32]);
    let mut d = Dissector::new();
    d.add_secret(SessionSecret::Reference {
        suite: ReferenceSuite::Psk,
        to_server: [4; 32],
        to_client: [5; 32],
    });
    let x = d.dissect(
        client(),
        server(),
        &reference_packet(&key, 3, &[0xee, 1, 2]),
    );
    assert_eq!((x.name, x.op), ("unknown_op", Some(0xee)));
    assert!(x.error.as_deref().unwrap().contains("238"));
    let y = d.dissect(client(), server(), &reference_packet(&key, 4, &[2, 1]));
    assert_eq!((y.name, y.op), ("ack", Some(2)));
    assert!(y.error.is_some() && y.fields.is_empty());
}

#[test]
fn the_conversation_cache_is_bounded_and_only_a_hint() {
    let mut d = Dissector::new();
    for i in 0..4u8 {
        d.add_secret(SessionSecret::Reference {
            suite: ReferenceSuite::Ecc,
            to_server: [i; 32],
            to_client: [i + 100; 32],
        });
    }
    let key = SecretBoxKey::from_bytes([3; 32]);
    for port in 0..(MAX_CONVERSATIONS as u16 + 10) {
        let from = SocketAddr::new(client().ip(), port);
        let x = d.dissect(from, server(), &reference_packet(&key, 1, b"\x14"));
        assert_eq!(x.name, "time_sync_request");
        assert!(d.conversations.len() <= MAX_CONVERSATIONS);
    }
    // The cache names key 3 for this pair; a packet under key 1 still opens.
    let other = SecretBoxKey::from_bytes([1; 32]);
    let x = d.dissect(client(), server(), &reference_packet(&other, 2, b"\x14"));
    assert_eq!(x.decryption, Decryption::Opened(Direction::ToServer));
}

#[test]
fn secrets_are_held_once_and_bounded() {
    let mut d = Dissector::new();
    let s = SessionSecret::Group {
        sender: 1,
        key_id: 1,
        key: [0; 32],
    };
    d.add_secret(s.clone());
    d.add_secret(s);
    assert_eq!(d.secret_count(), 1);
    for i in 0..MAX_SECRETS as u32 + 5 {
        d.add_secret(SessionSecret::Group {
            sender: 2,
            key_id: i,
            key: [0; 32],
        });
    }
    assert_eq!(d.secret_count(), MAX_SECRETS);
    assert_eq!(d.stats().secrets_ignored, 6);
}

fn keyed() -> Dissector {
    let mut d = captured_keys();
    d.add_secret(SessionSecret::Noise {
        to_server_index: 1,
        to_server: [1; 32],
        to_client_index: 2,
        to_client: [2; 32],
    });
    d.add_secret(SessionSecret::Group {
        sender: 1,
        key_id: 1,
        key: [1; 32],
    });
    d
}

#[test]
fn prop_never_panics_on_arbitrary_bytes() {
    fn prop(bytes: Vec<u8>) -> bool {
        let x = keyed().dissect(client(), server(), &bytes);
        let _ = x.label();
        true
    }
    QuickCheck::new().quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn prop_never_panics_behind_valid_headers() {
    fn prop(kind: u8, counter: u64, rest: Vec<u8>) -> bool {
        let mut bytes = match kind % 4 {
            0 => {
                let mut b = vec![0u8; HEADER_LEN];
                emit_session_header(&mut b, Counter(counter)).unwrap();
                b
            }
            1 => {
                let mut b = b"PavillionS0".to_vec();
                b.extend_from_slice(&[0; 8]);
                b.push(rest.first().copied().unwrap_or(1) % 13);
                b
            }
            2 => {
                let mut b = vec![0u8; DATA_HEADER_LEN];
                emit_data_header(
                    &mut b,
                    SessionIndex(1 + (counter as u32 & 1)),
                    Counter(counter),
                )
                .unwrap();
                b
            }
            _ => {
                let mut b = b"PvS3".to_vec();
                b.push((counter % 9) as u8);
                b
            }
        };
        bytes.extend_from_slice(&rest);
        let x = keyed().dissect(client(), server(), &bytes);
        let _ = x.label();
        true
    }
    QuickCheck::new().quickcheck(prop as fn(u8, u64, Vec<u8>) -> bool);
}

/// Plaintexts that open (sealed under a held key) but are anything at all.
#[test]
fn prop_never_panics_on_opened_garbage() {
    fn prop(suite: u8, plaintext: Vec<u8>) -> TestResult {
        if plaintext.is_empty() || plaintext.len() > 4000 {
            return TestResult::discard();
        }
        let bytes = match suite % 3 {
            0 => reference_packet(&SecretBoxKey::from_bytes(h32(CAP_PSK_CTS)), 9, &plaintext),
            1 => noise_data(&ChaChaKey::from_bytes([2; 32]), 2, 9, &plaintext),
            _ => group_data(&ChaChaKey::from_bytes([1; 32]), 1, 1, 9, &plaintext),
        };
        let x = keyed().dissect(client(), server(), &bytes);
        let _: String = x.label();
        TestResult::from_bool(
            matches!(x.decryption, Decryption::Opened(_)) && x.op == Some(plaintext[0]),
        )
    }
    QuickCheck::new().quickcheck(prop as fn(u8, Vec<u8>) -> TestResult);
}
