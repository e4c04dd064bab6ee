//! The reference captures through the public wire API only: every datagram
//! captured from the unmodified reference (`crypto::test_vectors`) parses, setup packets re-emit byte for byte, and the
//! decoded session plaintexts round-trip through `App`.

use pavillion_proto::wire::{
    emit_session_header, opcode, setup_opcode, App, Datagram, Error, HEADER_LEN, SESSION_OVERHEAD,
};
use pavillion_proto::Counter;

/// `(capture hex, plaintext hex or "" for setup packets)` for captures #1 to #20.
const CAPTURES: &[(&str, &str)] = &[
    ("506176696c6c696f6e533000000000000000000101000102030405060708090a0b0c0d0e0f77a28eaf3ce1c65fab37ebf2f1c8483f872b55b62410e28bc7d14a4afe08dd0f0000000000000000000000000000000000000000000000000000000000000000", ""),
    ("506176696c6c696f6e53300000000000000000024d52471fd07a9716e5d3c949f46f9c6a322d286fd118342be060b3e2944586b977a28eaf3ce1c65fab37ebf2f1c8483f5fe40531d84fd7929b20ee9693d89ac1a04e004ea7b0c5cb02f06a5b5d100d6c", ""),
    ("506176696c6c696f6e533000000000000000000301000102030405060708090a0b0c0d0e0f1a65ce225c37eea8aba872457df0380db84663bf288bdca90fb9dd986be7e46d4d52471fd07a9716e5d3c949f46f9c6a322d286fd118342be060b3e2944586b965b1a90200000000275b35894b8191f6a810fe1f86a47bac389d07bb105c35750e174f0e54b542ee", ""),
    ("506176696c6c696f6e5330000000000000000007a62aeda8fde4f1cdf0ac1140f1a9ffc3", ""),
    ("506176696c6c696f6e533067b1a902000000001616fd0849f557c307c298d91e22c48e959d08dc0c06c46cba587176ed7eee7a", "04910141207465737420737472696e67"),
    ("506176696c6c696f6e5330f02c012f0000008074e5245cd933ac99beec9368bbedce3bd2256a6ee423a9cc31decca0b87be02384698e0a7eb921ae", "0567b1a90200000000000041207465737420737472696e67"),
    ("506176696c6c696f6e533068b1a9020000000082b6594d5d70e0e0a1fd0431216ef090c9adaca7fd9fa7b76dd02f0a9a8e8763", "04910141207465737420737472696e67"),
    ("506176696c6c696f6e5330f12c012f000000800ae33db9b3659391a79bb0fb62e5065ad265dec6c94ecd01cb567987c146cb560bad573046f0729e", "0568b1a90200000000000041207465737420737472696e67"),
    ("506176696c6c696f6e533069b1a90200000000fd7424dd462d17741a89ee66180b9656fdc61ff207aca43833bdfe28d9ac602f59170ddead1b06da8afd5fc5", "01546573745461726765740a4d6573736167654e616d650a64617461"),
    ("506176696c6c696f6e5330f22c012f00000080a1735ad3f87c36e679b99f48dd1425042ebb30502b3ef4553b", "0269b1a90200000000"),
    ("506176696c6c696f6e53306ab1a90200000000303c6adb80eefee7e7ed49df251f6d8fac", "0c"),
    ("506176696c6c696f6e533000000000000000000102e0e1e2e3e4e5e6e7e8e9eaebecedeeef379232ecce8b9be79d3b2d824474088ad2e998556313bc44e5be4856bda49209dc2cca31e8e43bbd91dff7e475cca3347eb478107d5bd765aba4ae4a30c35d44", ""),
    ("506176696c6c696f6e533000000000000000000b98e52ba8497f978407ef4e90d35358a4f69bc3e8f3b9ddf0ec93114548c445708f681af020197c18675fdb0c98555c98d0ab18f22732dcd55c9ae3d5ef40a1ad94463a6e748fb7b4f8ac47415c595a29b3d0bbde68bfd908", ""),
    ("506176696c6c696f6e533000000000000000000ce0e1e2e3e4e5e6e7e8e9eaebecedeeef029e6ed7b5252bf4dc26d9b4448eed83eb4588aadf412181c54a585d58719c2cec61416f8ded1f7fb729087415defcc6131f707d6d866b6490cbfb3bc63d33a53d5bba501d82a385da52b99ec9d71ce447aac1d1cc7f925aa483e784a78acbf7aabc3795f29f97360f2ed40edf20d01b009e088fbd1db851b6efaf3266aedb446fb21d3eff3a832164d3bf6107f5ebb2f1", ""),
    ("506176696c6c696f6e5330000000000000000007ab1ceec14034d1f007849176cfd8fe03", ""),
    ("506176696c6c696f6e5330fd49d61100000000bd55f8db081c48ceab706c7edeebaa8165c8c78e1c614318ed5f137d483156e2", "04910141207465737420737472696e67"),
    ("506176696c6c696f6e533057a1920300000080e0acb4044902c1c596ba2d509ad553ed98244a0e84064513a7d33794e991f05438f15a3ca3091ddd", "05fd49d61100000000000041207465737420737472696e67"),
    ("506176696c6c696f6e5330fe49d6110000000015a150296373d6a4bdd2ac6a869af723af58a16fec604b2cf9d9bd5047449941", "04910141207465737420737472696e67"),
    ("506176696c6c696f6e533058a192030000008094d6058e2187306731f14304a0d8b823ac7f91dab1978d2d7b5fae3262ff88c50d27afa0cd780354", "05fe49d61100000000000041207465737420737472696e67"),
    ("506176696c6c696f6e5330ff49d61100000000e5319db821761704121c9345b8f1030610", "0c"),
];

#[test]
fn every_capture_parses_and_re_emits() {
    let mut setup_ops = Vec::new();
    let mut app_ops = Vec::new();
    for (i, (packet, plaintext)) in CAPTURES.iter().enumerate() {
        let bytes = hex::decode(packet).unwrap();
        match Datagram::parse(&bytes).unwrap_or_else(|e| panic!("capture #{}: {e}", i + 1)) {
            Datagram::Setup(setup) => {
                assert!(
                    plaintext.is_empty(),
                    "capture #{} should be a session packet",
                    i + 1
                );
                let mut out = vec![0u8; setup.buffer_len()];
                assert_eq!(setup.emit(&mut out), Ok(bytes.len()));
                assert_eq!(out, bytes, "capture #{}", i + 1);
                setup_ops.push(setup.opcode());
            }
            Datagram::Session(p) => {
                let plain = hex::decode(plaintext).unwrap();
                // secretbox ciphertext is exactly as long as its plaintext.
                assert_eq!(p.ciphertext.len(), plain.len(), "capture #{}", i + 1);
                assert_eq!(bytes.len(), SESSION_OVERHEAD + plain.len());
                let mut header = [0u8; HEADER_LEN];
                emit_session_header(&mut header, p.counter).unwrap();
                assert_eq!(header[..], bytes[..HEADER_LEN]);

                let app = App::parse(&plain).unwrap();
                let mut out = vec![0u8; app.buffer_len()];
                assert_eq!(app.emit(&mut out), Ok(plain.len()));
                assert_eq!(out, plain, "capture #{}", i + 1);
                app_ops.push(app.opcode());
            }
            other => panic!("capture #{}: not a suite 1/2 packet: {other:?}", i + 1),
        }
    }
    use setup_opcode::*;
    assert_eq!(
        setup_ops,
        [
            NONCE_REQUEST,
            PSK_NONCE,
            PSK_CLIENT_INFO,
            SESSION_ESTABLISHED,
            NONCE_REQUEST,
            ECC_NONCE,
            ECC_CLIENT_INFO,
            SESSION_ESTABLISHED
        ]
    );
    use opcode::*;
    assert_eq!(
        app_ops,
        [
            RPC_CALL,
            RPC_RESPONSE,
            RPC_CALL,
            RPC_RESPONSE,
            RELIABLE_MESSAGE,
            ACK,
            QUIT,
            RPC_CALL
        ]
        .into_iter()
        .chain([RPC_RESPONSE, RPC_CALL, RPC_RESPONSE, QUIT])
        .collect::<Vec<_>>()
    );
}

#[test]
fn hostile_datagrams_are_typed_errors() {
    assert_eq!(
        Datagram::parse(b"Pavillion0\0\0\0\0\0\0\0\0\x01"),
        Err(Error::PlaintextMode)
    );
    assert_eq!(Datagram::parse(b"GET / HTTP/1.1\r\n"), Err(Error::BadMagic));
    let mut ack9 = vec![2u8];
    ack9.extend_from_slice(&[0; 9]);
    let e = App::parse(&ack9).unwrap_err();
    assert_eq!(
        e,
        Error::BadLength {
            expected: 8,
            actual: 9
        }
    );
    assert_eq!(e.name(), "bad_length");
    let mut short = [0u8; HEADER_LEN - 1];
    assert_eq!(
        emit_session_header(&mut short, Counter(7)),
        Err(Error::BufferTooSmall)
    );
}
