use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use quickcheck::{Arbitrary, Gen, QuickCheck};

use super::*;

fn key(g: &mut Gen) -> [u8; 32] {
    let mut k = [0u8; 32];
    k.iter_mut().for_each(|b| *b = u8::arbitrary(g));
    k
}

impl Arbitrary for SessionSecret {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 4 {
            0 | 1 => SessionSecret::Reference {
                suite: if bool::arbitrary(g) {
                    ReferenceSuite::Psk
                } else {
                    ReferenceSuite::Ecc
                },
                to_server: key(g),
                to_client: key(g),
            },
            2 => SessionSecret::Noise {
                to_server_index: u32::arbitrary(g),
                to_server: key(g),
                to_client_index: u32::arbitrary(g),
                to_client: key(g),
            },
            _ => SessionSecret::Group {
                sender: u64::arbitrary(g),
                key_id: u32::arbitrary(g),
                key: key(g),
            },
        }
    }
}

#[test]
fn prop_line_round_trips() {
    fn prop(s: SessionSecret) -> bool {
        let line = format!("{s}");
        SessionSecret::parse_line(&line) == Ok(Some(s)) && !line.contains('\n')
    }
    QuickCheck::new().quickcheck(prop as fn(SessionSecret) -> bool);
}

#[test]
fn prop_parse_never_panics() {
    fn prop(line: String) -> bool {
        let _ = SessionSecret::parse_line(&line);
        true
    }
    QuickCheck::new().quickcheck(prop as fn(String) -> bool);
}

#[test]
fn prop_parse_never_panics_behind_a_label() {
    fn prop(label: u8, words: Vec<String>) -> bool {
        let labels = [
            "PAVILLION_S1",
            "PAVILLION_S2",
            "PAVILLION_S3",
            "PAVILLION_S3_GROUP",
        ];
        let mut line = String::from(labels[usize::from(label) % 4]);
        for w in words {
            line.push(' ');
            line.push_str(&w);
        }
        let _ = SessionSecret::parse_line(&line);
        true
    }
    QuickCheck::new().quickcheck(prop as fn(u8, Vec<String>) -> bool);
}

const K1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const K2: &str = "0202020202020202020202020202020202020202020202020202020202020202";

#[test]
fn documented_lines_parse_to_their_values() {
    let s3 = format!("PAVILLION_S3 1a2b3c4d {K1} 00c0ffee {K2}");
    assert_eq!(
        SessionSecret::parse_line(&s3),
        Ok(Some(SessionSecret::Noise {
            to_server_index: 0x1a2b_3c4d,
            to_server: [1; 32],
            to_client_index: 0x00c0_ffee,
            to_client: [2; 32],
        }))
    );
    let group = format!("PAVILLION_S3_GROUP 0123456789abcdef 00000001 {K1}\r");
    assert_eq!(
        SessionSecret::parse_line(&group),
        Ok(Some(SessionSecret::Group {
            sender: 0x0123_4567_89ab_cdef,
            key_id: 1,
            key: [1; 32],
        }))
    );
    let s2 = format!("PAVILLION_S2 {K1} {K2}");
    assert_eq!(
        SessionSecret::parse_line(&s2),
        Ok(Some(SessionSecret::Reference {
            suite: ReferenceSuite::Ecc,
            to_server: [1; 32],
            to_client: [2; 32],
        }))
    );
    assert_eq!(SessionSecret::parse_line("# comment"), Ok(None));
    assert_eq!(SessionSecret::parse_line("   "), Ok(None));
    assert_eq!(SessionSecret::parse_line(""), Ok(None));
}

#[test]
fn bad_lines_give_typed_errors() {
    assert_eq!(
        SessionSecret::parse_line(&format!("CLIENT_RANDOM {K1} {K2}")),
        Err(KeyLogError::UnknownLabel)
    );
    assert_eq!(
        SessionSecret::parse_line(&format!("PAVILLION_S1 {K1}")),
        Err(KeyLogError::FieldCount {
            expected: 3,
            found: 2
        })
    );
    assert_eq!(
        SessionSecret::parse_line(&format!("PAVILLION_S1 {K1} {K2} {K2}")),
        Err(KeyLogError::FieldCount {
            expected: 3,
            found: 4
        })
    );
    assert_eq!(
        SessionSecret::parse_line(&format!("PAVILLION_S1 {K1} {}", &K2[1..])),
        Err(KeyLogError::BadHex { field: 2 })
    );
    assert_eq!(
        SessionSecret::parse_line(&format!("PAVILLION_S3 1a2b3c4g {K1} 00000000 {K2}")),
        Err(KeyLogError::BadHex { field: 1 })
    );
    assert_eq!(
        SessionSecret::parse_line(&format!("PAVILLION_S3_GROUP 01 00000001 {K1}")),
        Err(KeyLogError::BadHex { field: 1 })
    );
}

#[test]
fn debug_never_shows_keys() {
    let secrets = [
        SessionSecret::Reference {
            suite: ReferenceSuite::Psk,
            to_server: [0xab; 32],
            to_client: [0xab; 32],
        },
        SessionSecret::Noise {
            to_server_index: 1,
            to_server: [0xab; 32],
            to_client_index: 2,
            to_client: [0xab; 32],
        },
        SessionSecret::Group {
            sender: 3,
            key_id: 4,
            key: [0xab; 32],
        },
    ];
    for s in secrets {
        let debug = format!("{s:?}");
        assert!(!debug.contains("abab") && !debug.contains("171"), "{debug}");
        assert!(format!("{s}").contains("abababab"));
    }
}
