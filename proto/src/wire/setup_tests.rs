use super::super::{Datagram, MAGIC};
use super::*;
use alloc::vec::Vec;
use quickcheck::{Arbitrary, Gen, QuickCheck};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector is valid hex")
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    <[u8; N]>::try_from(unhex(s)).expect("test field has the right length")
}

/// Parses `hex`, compares with `expected`, and checks that emitting gives the same bytes.
fn check_vector(hex: &str, expected: &Setup) {
    let bytes = unhex(hex);
    let parsed = Setup::parse(&bytes).expect("vector parses");
    assert_eq!(&parsed, expected);
    assert_eq!(Datagram::parse(&bytes), Ok(Datagram::Setup(parsed.clone())));
    assert_eq!(parsed.buffer_len(), bytes.len());
    let mut out = alloc::vec![0u8; bytes.len()];
    assert_eq!(parsed.emit(&mut out), Ok(bytes.len()));
    assert_eq!(out, bytes);
}

// ---- computed vectors (crypto::test_vectors) ----

const C_CLIENT_ID: &str = "43434343434343434343434343434343";
const C_CLIENT_NONCE: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafa0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
const C_SERVER_NONCE: &str = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
const C_CHALLENGE: &str = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf";

#[test]
fn computed_op1_nonce_request() {
    check_vector(
        "506176696c6c696f6e53300000000000000000010143434343434343434343434343434343\
         c0c1c2c3c4c5c6c7c8c9cacbcccdcecf000000000000000000000000000000000000000000\
         000000000000000000000000000000000000000000000000000000",
        &Setup::NonceRequest(NonceRequest {
            cipher: CipherId::Psk,
            client_id: ClientId(arr(C_CLIENT_ID)),
            challenge: arr(C_CHALLENGE),
            session_hint: [0; 16],
            public_key: [0; 32],
        }),
    );
}

#[test]
fn computed_op2_psk_nonce() {
    check_vector(
        "506176696c6c696f6e5330000000000000000002b0b1b2b3b4b5b6b7b8b9babbbcbdbebf\
         b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf5fcce90d\
         71cb5ad435308d5a43ebfa4255e2c3279482d041bd299b40b056fddd",
        &Setup::PskNonce(PskNonce {
            server_nonce: arr(C_SERVER_NONCE),
            challenge: arr(C_CHALLENGE),
            tag: arr("5fcce90d71cb5ad435308d5a43ebfa4255e2c3279482d041bd299b40b056fddd"),
        }),
    );
}

#[test]
fn computed_op3_psk_client_info() {
    let hex = "506176696c6c696f6e533000000000000000000301434343434343434343434343434343\
               43a0a1a2a3a4a5a6a7a8a9aaabacadaeafa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2\
               b3b4b5b6b7b8b9babbbcbdbebfb0b1b2b3b4b5b6b7b8b9babbbcbdbebfe8030000000000\
               009d5d2db180f7dad1f51f0b2daf646fd3cb886e1bc569fc849a67211f9e97c520";
    let info = PskClientInfo {
        cipher: CipherId::Psk,
        client_id: ClientId(arr(C_CLIENT_ID)),
        client_nonce: arr(C_CLIENT_NONCE),
        server_nonce: arr(C_SERVER_NONCE),
        counter: Counter(1000),
        tag: arr("9d5d2db180f7dad1f51f0b2daf646fd3cb886e1bc569fc849a67211f9e97c520"),
    };
    check_vector(hex, &Setup::PskClientInfo(info.clone()));
    // The tag input is the 89 payload bytes between the opcode and the tag.
    let bytes = unhex(hex);
    assert_eq!(&info.authenticated_bytes()[..], &bytes[20..109]);
}

#[test]
fn computed_op11_ecc_nonce() {
    check_vector(
        "506176696c6c696f6e533000000000000000000b33333333333333333333333333333333\
         33333333333333335fa72c32d508f4b3ecb73cc099bee5b986ad7c2a0a5c5beb180ba198\
         254978fa4da6836945b36712d078346c23ae42e82a7a92301e369e840fcccfd504549ac2",
        &Setup::EccNonce(EccNonce {
            box_nonce: [0x33; 24],
            sealed: arr("5fa72c32d508f4b3ecb73cc099bee5b986ad7c2a0a5c5beb180ba198\
                 254978fa4da6836945b36712d078346c23ae42e82a7a92301e369e840fcccfd504549ac2"),
        }),
    );
}

#[test]
fn computed_op12_ecc_client_info() {
    check_vector(
        "506176696c6c696f6e533000000000000000000c43434343434343434343434343434343\
         0266666666666666666666666666666666666666666666666617535af349ef534d814ada\
         a287ea3020b394f03efe285a2ae8e34f94d0461f1dabfdc01e10733d7241f34881a6b9e8\
         081e7d33586998a99934643e4700dc51b9feaee3b6e458d47636839341b9fcf25e0f63ed\
         05db971224eb0161e1c7f727687845e6be1d72f3c5ec1b50bc042faa2d3e79748ff9a4df\
         6a",
        &Setup::EccClientInfo(EccClientInfo {
            client_id: ClientId(arr(C_CLIENT_ID)),
            cipher: CipherId::Ecc,
            box_nonce: [0x66; 24],
            sealed: arr("17535af349ef534d814ada\
                 a287ea3020b394f03efe285a2ae8e34f94d0461f1dabfdc01e10733d7241f34881a6b9e8\
                 081e7d33586998a99934643e4700dc51b9feaee3b6e458d47636839341b9fcf25e0f63ed\
                 05db971224eb0161e1c7f727687845e6be1d72f3c5ec1b50bc042faa2d3e79748ff9a4df\
                 6a"),
        }),
    );
}

// ---- reference captures (crypto::test_vectors), every counter-0 packet ----

const PSK_CID: &str = "000102030405060708090a0b0c0d0e0f";
const ECC_CID: &str = "e0e1e2e3e4e5e6e7e8e9eaebecedeeef";

#[test]
fn capture_01_psk_nonce_request() {
    check_vector(
        "506176696c6c696f6e533000000000000000000101000102030405060708090a0b0c0d0e0f\
         77a28eaf3ce1c65fab37ebf2f1c8483f872b55b62410e28bc7d14a4afe08dd0f\
         0000000000000000000000000000000000000000000000000000000000000000",
        &Setup::NonceRequest(NonceRequest {
            cipher: CipherId::Psk,
            client_id: ClientId(arr(PSK_CID)),
            challenge: arr("77a28eaf3ce1c65fab37ebf2f1c8483f"),
            session_hint: arr("872b55b62410e28bc7d14a4afe08dd0f"),
            public_key: [0; 32],
        }),
    );
}

#[test]
fn capture_02_psk_nonce() {
    check_vector(
        "506176696c6c696f6e53300000000000000000024d52471fd07a9716e5d3c949f46f9c6a\
         322d286fd118342be060b3e2944586b977a28eaf3ce1c65fab37ebf2f1c8483f5fe40531\
         d84fd7929b20ee9693d89ac1a04e004ea7b0c5cb02f06a5b5d100d6c",
        &Setup::PskNonce(PskNonce {
            server_nonce: arr("4d52471fd07a9716e5d3c949f46f9c6a322d286fd118342be060b3e2944586b9"),
            challenge: arr("77a28eaf3ce1c65fab37ebf2f1c8483f"),
            tag: arr("5fe40531d84fd7929b20ee9693d89ac1a04e004ea7b0c5cb02f06a5b5d100d6c"),
        }),
    );
}

#[test]
fn capture_03_psk_client_info() {
    check_vector(
        "506176696c6c696f6e533000000000000000000301000102030405060708090a0b0c0d0e0f\
         1a65ce225c37eea8aba872457df0380db84663bf288bdca90fb9dd986be7e46d\
         4d52471fd07a9716e5d3c949f46f9c6a322d286fd118342be060b3e2944586b9\
         65b1a90200000000\
         275b35894b8191f6a810fe1f86a47bac389d07bb105c35750e174f0e54b542ee",
        &Setup::PskClientInfo(PskClientInfo {
            cipher: CipherId::Psk,
            client_id: ClientId(arr(PSK_CID)),
            client_nonce: arr("1a65ce225c37eea8aba872457df0380db84663bf288bdca90fb9dd986be7e46d"),
            server_nonce: arr("4d52471fd07a9716e5d3c949f46f9c6a322d286fd118342be060b3e2944586b9"),
            counter: Counter(44675429),
            tag: arr("275b35894b8191f6a810fe1f86a47bac389d07bb105c35750e174f0e54b542ee"),
        }),
    );
}

#[test]
fn capture_04_and_15_session_established() {
    check_vector(
        "506176696c6c696f6e5330000000000000000007a62aeda8fde4f1cdf0ac1140f1a9ffc3",
        &Setup::SessionEstablished {
            session_id: arr("a62aeda8fde4f1cdf0ac1140f1a9ffc3"),
        },
    );
    check_vector(
        "506176696c6c696f6e5330000000000000000007ab1ceec14034d1f007849176cfd8fe03",
        &Setup::SessionEstablished {
            session_id: arr("ab1ceec14034d1f007849176cfd8fe03"),
        },
    );
}

#[test]
fn capture_12_ecc_nonce_request() {
    check_vector(
        "506176696c6c696f6e533000000000000000000102e0e1e2e3e4e5e6e7e8e9eaebecedeeef\
         379232ecce8b9be79d3b2d824474088ad2e998556313bc44e5be4856bda49209\
         dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44",
        &Setup::NonceRequest(NonceRequest {
            cipher: CipherId::Ecc,
            client_id: ClientId(arr(ECC_CID)),
            challenge: arr("379232ecce8b9be79d3b2d824474088a"),
            session_hint: arr("d2e998556313bc44e5be4856bda49209"),
            public_key: arr("dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44"),
        }),
    );
}

#[test]
fn capture_13_ecc_nonce() {
    check_vector(
        "506176696c6c696f6e533000000000000000000b98e52ba8497f978407ef4e90d35358a4\
         f69bc3e8f3b9ddf0ec93114548c445708f681af020197c18675fdb0c98555c98d0ab18f2\
         2732dcd55c9ae3d5ef40a1ad94463a6e748fb7b4f8ac47415c595a29b3d0bbde68bfd908",
        &Setup::EccNonce(EccNonce {
            box_nonce: arr("98e52ba8497f978407ef4e90d35358a4f69bc3e8f3b9ddf0"),
            sealed: arr("ec93114548c445708f681af020197c18675fdb0c98555c98d0ab18f2\
                 2732dcd55c9ae3d5ef40a1ad94463a6e748fb7b4f8ac47415c595a29b3d0bbde68bfd908"),
        }),
    );
}

#[test]
fn capture_14_ecc_client_info() {
    check_vector(
        "506176696c6c696f6e533000000000000000000ce0e1e2e3e4e5e6e7e8e9eaebecedeeef02\
         9e6ed7b5252bf4dc26d9b4448eed83eb4588aadf412181c5\
         4a585d58719c2cec61416f8ded1f7fb729087415defcc6131f707d6d866b6490cbfb3bc63d\
         33a53d5bba501d82a385da52b99ec9d71ce447aac1d1cc7f925aa483e784a78acbf7aabc37\
         95f29f97360f2ed40edf20d01b009e088fbd1db851b6efaf3266aedb446fb21d3eff3a8321\
         64d3bf6107f5ebb2f1",
        &Setup::EccClientInfo(EccClientInfo {
            client_id: ClientId(arr(ECC_CID)),
            cipher: CipherId::Ecc,
            box_nonce: arr("9e6ed7b5252bf4dc26d9b4448eed83eb4588aadf412181c5"),
            sealed: arr(
                "4a585d58719c2cec61416f8ded1f7fb729087415defcc6131f707d6d866b6490cbfb3bc63d\
                 33a53d5bba501d82a385da52b99ec9d71ce447aac1d1cc7f925aa483e784a78acbf7aabc37\
                 95f29f97360f2ed40edf20d01b009e088fbd1db851b6efaf3266aedb446fb21d3eff3a8321\
                 64d3bf6107f5ebb2f1",
            ),
        }),
    );
}

#[test]
fn empty_and_id_payloads() {
    // docs/PROTOCOL.md §2.4: op 4 is the 20 bytes `PavillionS0`, eight 00 bytes, then 04.
    let header = "506176696c6c696f6e53300000000000000000";
    assert_eq!(unhex(header).len(), HEADER_LEN);
    check_vector(&alloc::format!("{header}04"), &Setup::UnrecognizedClient);
    check_vector(&alloc::format!("{header}05"), &Setup::NewServerJoin);
    check_vector(
        &alloc::format!("{header}06{C_CHALLENGE}"),
        &Setup::InvalidClientId {
            challenge: arr(C_CHALLENGE),
        },
    );
}

/// A datagram with a setup header, `opcode` and a `len`-byte payload of `fill`.
fn setup_datagram(opcode: u8, len: usize, fill: u8) -> Vec<u8> {
    let mut v = Vec::from(&MAGIC[..]);
    v.extend_from_slice(&[0; 8]);
    v.push(opcode);
    v.resize(v.len() + len, fill);
    v
}

#[test]
fn every_opcode_requires_its_exact_length() {
    let table = [
        (1, 81),
        (2, 80),
        (3, 121),
        (4, 0),
        (5, 0),
        (6, 16),
        (7, 16),
        (11, 88),
        (12, 161),
    ];
    for (op, len) in table {
        // Fill with 1 so that cipher bytes are valid wherever they sit.
        let ok = Setup::parse(&setup_datagram(op, len, 1)).expect("exact length parses");
        assert_eq!(ok.opcode(), op);
        assert_eq!(ok.buffer_len(), 20 + len);
        for wrong in [len + 1, len.wrapping_sub(1), 0, 200] {
            if wrong == len || wrong > 1000 {
                continue;
            }
            assert_eq!(
                Setup::parse(&setup_datagram(op, wrong, 1)),
                Err(Error::BadLength {
                    expected: len,
                    actual: wrong
                }),
                "op {op} with {wrong} bytes"
            );
        }
    }
}

#[test]
fn unknown_opcodes_are_typed() {
    for op in [0u8, 8, 9, 10, 13, 255] {
        assert_eq!(
            Setup::parse(&setup_datagram(op, 0, 0)),
            Err(Error::UnknownSetupOpcode(op))
        );
        assert_eq!(
            Datagram::parse(&setup_datagram(op, 16, 0)),
            Err(Error::UnknownSetupOpcode(op))
        );
    }
}

#[test]
fn unknown_cipher_is_typed() {
    // Op 1 and op 3 carry the cipher first; op 12 carries it after the client id.
    let mut v = setup_datagram(1, 81, 0);
    assert_eq!(Setup::parse(&v), Err(Error::UnknownCipher(0)));
    v[20] = 3;
    assert_eq!(Setup::parse(&v), Err(Error::UnknownCipher(3)));
    assert_eq!(
        Setup::parse(&setup_datagram(3, 121, 9)),
        Err(Error::UnknownCipher(9))
    );
    let mut v = setup_datagram(12, 161, 2);
    v[36] = 7;
    assert_eq!(Setup::parse(&v), Err(Error::UnknownCipher(7)));
    assert_eq!(CipherId::try_from(2), Ok(CipherId::Ecc));
    assert_eq!(u8::from(CipherId::Psk), 1);
}

#[test]
fn header_errors_and_session_counter() {
    assert_eq!(
        Setup::parse(b"PavillionS0\0\0\0\0\0\0\0\0"),
        Err(Error::Truncated)
    );
    assert_eq!(Setup::parse(b"PavillionS0\0\0\0"), Err(Error::Truncated));
    assert_eq!(
        Setup::parse(b"Pavillion0\0\0\0\0\0\0\0\0\x01"),
        Err(Error::PlaintextMode)
    );
    assert_eq!(
        Setup::parse(b"XavillionS0\0\0\0\0\0\0\0\0\x04"),
        Err(Error::BadMagic)
    );
    let mut v = setup_datagram(4, 0, 0);
    v[11] = 1;
    assert_eq!(Setup::parse(&v), Err(Error::NotSetup));
}

#[test]
fn emit_into_short_buffer_is_refused_untouched() {
    let s = Setup::SessionEstablished {
        session_id: [7; 16],
    };
    let mut buf = [0xee; 35];
    assert_eq!(s.emit(&mut buf), Err(Error::BufferTooSmall));
    assert_eq!(buf, [0xee; 35]);
    let mut buf = [0xee; 40];
    assert_eq!(s.emit(&mut buf), Ok(36));
    assert_eq!(&buf[36..], &[0xee; 4]);
}

// ---- properties ----

impl Arbitrary for CipherId {
    fn arbitrary(g: &mut Gen) -> Self {
        if bool::arbitrary(g) {
            CipherId::Psk
        } else {
            CipherId::Ecc
        }
    }
}

impl Arbitrary for Setup {
    fn arbitrary(g: &mut Gen) -> Self {
        let id = |g: &mut Gen| ClientId(<[u8; 16]>::arbitrary(g));
        match u8::arbitrary(g) % 9 {
            0 => Setup::NonceRequest(NonceRequest {
                cipher: CipherId::arbitrary(g),
                client_id: id(g),
                challenge: Arbitrary::arbitrary(g),
                session_hint: Arbitrary::arbitrary(g),
                public_key: Arbitrary::arbitrary(g),
            }),
            1 => Setup::PskNonce(PskNonce {
                server_nonce: Arbitrary::arbitrary(g),
                challenge: Arbitrary::arbitrary(g),
                tag: Arbitrary::arbitrary(g),
            }),
            2 => Setup::PskClientInfo(PskClientInfo {
                cipher: CipherId::arbitrary(g),
                client_id: id(g),
                client_nonce: Arbitrary::arbitrary(g),
                server_nonce: Arbitrary::arbitrary(g),
                counter: Counter(u64::arbitrary(g)),
                tag: Arbitrary::arbitrary(g),
            }),
            3 => Setup::UnrecognizedClient,
            4 => Setup::NewServerJoin,
            5 => Setup::InvalidClientId {
                challenge: Arbitrary::arbitrary(g),
            },
            6 => Setup::SessionEstablished {
                session_id: Arbitrary::arbitrary(g),
            },
            7 => Setup::EccNonce(EccNonce {
                box_nonce: Arbitrary::arbitrary(g),
                sealed: Arbitrary::arbitrary(g),
            }),
            _ => Setup::EccClientInfo(EccClientInfo {
                client_id: id(g),
                cipher: CipherId::arbitrary(g),
                box_nonce: Arbitrary::arbitrary(g),
                sealed: Arbitrary::arbitrary(g),
            }),
        }
    }
}

#[test]
fn prop_emit_parse_is_identity() {
    fn prop(s: Setup) -> bool {
        let mut buf = [0u8; 200];
        let Ok(n) = s.emit(&mut buf) else {
            return false;
        };
        n == s.buffer_len() && buf.get(..n).map(Setup::parse) == Some(Ok(s))
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(Setup) -> bool);
}

#[test]
fn prop_short_buffer_is_refused() {
    fn prop(s: Setup, cut: usize) -> bool {
        let short = cut % s.buffer_len();
        let mut buf = alloc::vec![0u8; short];
        s.emit(&mut buf) == Err(Error::BufferTooSmall)
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(Setup, usize) -> bool);
}

#[test]
fn prop_parse_never_panics_on_known_opcodes() {
    fn prop(op: u8, body: Vec<u8>, exact: bool, fill: u8) -> bool {
        let ops = [1, 2, 3, 4, 5, 6, 7, 11, 12];
        let lens = [81, 80, 121, 0, 0, 16, 16, 88, 161];
        let i = usize::from(op) % ops.len();
        let mut v = setup_datagram(ops[i], 0, 0);
        v.extend_from_slice(&body);
        if exact {
            v.resize(20 + lens[i], fill);
        }
        let _ = Setup::parse(&v);
        true
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(u8, Vec<u8>, bool, u8) -> bool);
}
