use super::*;
use alloc::string::String;
use alloc::vec::Vec;
use quickcheck::{Arbitrary, Gen, QuickCheck};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector is valid hex")
}

/// Parses `hex`, compares with `expected`, and checks that emitting gives the same bytes.
fn check_vector(hex: &str, expected: App<'_>) {
    let bytes = unhex(hex);
    let parsed = App::parse(&bytes).expect("vector parses");
    assert_eq!(parsed, expected);
    assert_eq!(parsed.buffer_len(), bytes.len());
    let mut out = alloc::vec![0u8; bytes.len()];
    assert_eq!(parsed.emit(&mut out), Ok(bytes.len()));
    assert_eq!(out, bytes);
}

// Plaintexts decoded from the reference captures and the computed vectors (crypto::test_vectors).

#[test]
fn capture_rpc_call() {
    check_vector(
        "04910141207465737420737472696e67",
        App::RpcCall {
            function: FunctionId(401),
            args: b"A test string",
        },
    );
    check_vector(
        "04900168656c6c6f",
        App::RpcCall {
            function: FunctionId(400),
            args: b"hello",
        },
    );
}

#[test]
fn capture_rpc_response() {
    check_vector(
        "0567b1a90200000000000041207465737420737472696e67",
        App::RpcResponse {
            call: Counter(44675431),
            status: RpcStatus::OK,
            data: b"A test string",
        },
    );
    check_vector(
        "05e90300000000000000006f6c6c6568",
        App::RpcResponse {
            call: Counter(1001),
            status: RpcStatus::OK,
            data: b"olleh",
        },
    );
    // docs/PROTOCOL.md §10 item 7: the Python server's exception status is 257, `01 01`.
    let App::RpcResponse { status, .. } = App::parse(&unhex("05010000000000000001014578")).unwrap()
    else {
        panic!("not a response");
    };
    assert_eq!(status, RpcStatus::PYTHON_EXCEPTION);
    assert!(!status.is_ok());
}

#[test]
fn capture_reliable_message() {
    check_vector(
        "01546573745461726765740a4d6573736167654e616d650a64617461",
        App::ReliableMessage(Message {
            target: "TestTarget",
            name: "MessageName",
            payload: b"data",
        }),
    );
    check_vector(
        "01540a4e0a64617461",
        App::ReliableMessage(Message {
            target: "T",
            name: "N",
            payload: b"data",
        }),
    );
}

#[test]
fn capture_acks() {
    check_vector(
        "0269b1a90200000000",
        App::Ack {
            counter: Counter(44675433),
            status: None,
        },
    );
    check_vector(
        "02ea0300000000000000ff00",
        App::Ack {
            counter: Counter(1002),
            status: Some(StatusBytes {
                battery: 0,
                network: 255,
                temperature: 0,
            }),
        },
    );
    check_vector(
        "0201000000000000007f65ec",
        App::Ack {
            counter: Counter(1),
            status: Some(StatusBytes {
                battery: 127,
                network: 101,
                temperature: -20,
            }),
        },
    );
}

#[test]
fn capture_quit_and_keepalive() {
    check_vector("0c", App::Quit { reason: None });
    check_vector(
        "0c0201",
        App::Quit {
            reason: Some(0x0102),
        },
    );
    // docs/PROTOCOL.md §3 and §9.3: the empty message "\n\n" is the client keepalive.
    check_vector(
        "030a0a",
        App::UnreliableMessage(Message {
            target: "",
            name: "",
            payload: b"",
        }),
    );
}

#[test]
fn remaining_opcodes() {
    check_vector("0d6b69746368656e", App::Subscribe { target: "kitchen" });
    check_vector("0e", App::Unsubscribe { target: "" });
    check_vector(
        "10ffffffffffffffff",
        App::ClientAccept { server_time_us: -1 },
    );
    check_vector("14", App::TimeSyncRequest);
    check_vector(
        "1501000000000000000200000000000000",
        App::TimeSyncResponse {
            request: Counter(1),
            monotonic_us: 2,
            unix_us: None,
        },
    );
    check_vector(
        "15010000000000000002000000000000000300000000000000",
        App::TimeSyncResponse {
            request: Counter(1),
            monotonic_us: 2,
            unix_us: Some(3),
        },
    );
}

#[test]
fn group_key_layout() {
    let mut hex = String::from("20");
    hex.push_str("0807060504030201"); // sender id, little endian
    hex.push_str("05000000"); // key id
    hex.push_str(&"ab".repeat(32));
    check_vector(
        &hex,
        App::GroupKey {
            sender: SenderId(0x0102_0304_0506_0708),
            key_id: KeyId(5),
            key: &[0xab; 32],
        },
    );
    let bytes = unhex(&hex);
    assert_eq!(bytes.len(), 45);
    assert_eq!(
        App::parse(&bytes[..44]),
        Err(Error::BadLength {
            expected: 44,
            actual: 43
        })
    );
}

#[test]
fn payload_may_contain_newlines() {
    let m = Message::parse(b"a\nb\nc\nd\n").unwrap();
    assert_eq!((m.target, m.name, m.payload), ("a", "b", &b"c\nd\n"[..]));
    let m = Message::parse(b"\n\n\n").unwrap();
    assert_eq!((m.target, m.name, m.payload), ("", "", &b"\n"[..]));
}

#[test]
fn typed_errors() {
    assert_eq!(App::parse(b""), Err(Error::Truncated));
    for op in [0u8, 11, 15, 17, 18, 19, 22, 255] {
        assert_eq!(App::parse(&[op, 1, 2, 3]), Err(Error::UnknownAppOpcode(op)));
    }
    // Messages.
    assert_eq!(App::parse(b"\x01"), Err(Error::MissingSeparator));
    assert_eq!(App::parse(b"\x01target"), Err(Error::MissingSeparator));
    assert_eq!(
        App::parse(b"\x03target\nname"),
        Err(Error::MissingSeparator)
    );
    assert_eq!(App::parse(b"\x01\xff\nname\n"), Err(Error::InvalidUtf8));
    assert_eq!(App::parse(b"\x01t\n\xc3\n"), Err(Error::InvalidUtf8));
    assert!(
        App::parse(b"\x01t\nn\n\xff\xfe").is_ok(),
        "payload is not UTF-8 checked"
    );
    assert_eq!(App::parse(b"\x0d\xff"), Err(Error::InvalidUtf8));
    assert_eq!(App::parse(b"\x0e\xc0\x80"), Err(Error::InvalidUtf8));
    // ACK: exactly 8 or 11 bytes.
    for len in [0, 7, 9, 10, 12] {
        let mut p = alloc::vec![2u8];
        p.resize(1 + len, 0);
        assert_eq!(
            App::parse(&p),
            Err(Error::BadLength {
                expected: 8,
                actual: len
            }),
            "ACK of {len} bytes"
        );
    }
    // Prefix lengths.
    assert_eq!(App::parse(&[4, 1]), Err(Error::Truncated));
    assert!(App::parse(&[4, 1, 0]).is_ok());
    assert_eq!(
        App::parse(&[5, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(Error::Truncated)
    );
    assert!(App::parse(&[5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_ok());
    // Exact lengths.
    assert_eq!(
        App::parse(&[12, 1]),
        Err(Error::BadLength {
            expected: 0,
            actual: 1
        })
    );
    assert_eq!(
        App::parse(&[12, 1, 2, 3]),
        Err(Error::BadLength {
            expected: 0,
            actual: 3
        })
    );
    assert_eq!(
        App::parse(&[16, 0, 0, 0, 0, 0, 0, 0]),
        Err(Error::BadLength {
            expected: 8,
            actual: 7
        })
    );
    assert_eq!(
        App::parse(&[20, 0]),
        Err(Error::BadLength {
            expected: 0,
            actual: 1
        })
    );
    assert_eq!(
        App::parse(&[21; 18]),
        Err(Error::BadLength {
            expected: 16,
            actual: 17
        })
    );
}

#[test]
fn emit_refuses_newlines_in_names() {
    let mut buf = [0u8; 64];
    for (target, name) in [("a\nb", "n"), ("t", "\n"), ("\n", "")] {
        let m = Message {
            target,
            name,
            payload: b"",
        };
        assert_eq!(
            App::ReliableMessage(m).emit(&mut buf),
            Err(Error::InvalidName)
        );
        assert_eq!(
            App::UnreliableMessage(m).emit(&mut buf),
            Err(Error::InvalidName)
        );
    }
    assert_eq!(buf, [0u8; 64]);
}

#[test]
fn emit_into_short_buffer_is_refused_untouched() {
    let a = App::RpcCall {
        function: FunctionId(1),
        args: b"xyz",
    };
    let mut buf = [0xee; 5];
    assert_eq!(a.emit(&mut buf), Err(Error::BufferTooSmall));
    assert_eq!(buf, [0xee; 5]);
    assert_eq!(a.emit(&mut []), Err(Error::BufferTooSmall));
    let mut buf = [0xee; 8];
    assert_eq!(a.emit(&mut buf), Ok(6));
    assert_eq!(buf, [4, 1, 0, b'x', b'y', b'z', 0xee, 0xee]);
}

// ---- properties ----

/// An owned description of an [`App`], since quickcheck values must be `'static`.
#[derive(Clone, Debug)]
enum Spec {
    Message {
        reliable: bool,
        target: String,
        name: String,
        payload: Vec<u8>,
    },
    Ack {
        counter: u64,
        status: Option<(u8, u8, i8)>,
    },
    RpcCall {
        function: u16,
        args: Vec<u8>,
    },
    RpcResponse {
        call: u64,
        status: u16,
        data: Vec<u8>,
    },
    Quit {
        reason: Option<u16>,
    },
    Subscribe {
        subscribe: bool,
        target: String,
    },
    ClientAccept {
        server_time_us: i64,
    },
    TimeSyncRequest,
    TimeSyncResponse {
        request: u64,
        monotonic_us: u64,
        unix_us: Option<u64>,
    },
    GroupKey {
        sender: u64,
        key_id: u32,
        key: [u8; 32],
    },
    Segment {
        transfer: u64,
        total: u32,
        offset: u32,
        data: Vec<u8>,
    },
    /// The wire bytes of op 34's payload, built from arbitrary ranges.
    AckRanges(Vec<u8>),
    TransferRefused {
        transfer: u64,
        reason: u8,
    },
    Ordered {
        epoch: u32,
        seq: u64,
        floor: u64,
        target: String,
        name: String,
        payload: Vec<u8>,
    },
    Durable {
        origin: u64,
        seq: u64,
        floor: u64,
        target: String,
        name: String,
        payload: Vec<u8>,
    },
}

fn name(g: &mut Gen) -> String {
    String::arbitrary(g)
        .chars()
        .filter(|&c| c != '\n')
        .collect()
}

impl Arbitrary for Spec {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 15 {
            0 => Spec::Message {
                reliable: bool::arbitrary(g),
                target: name(g),
                name: name(g),
                payload: Vec::arbitrary(g),
            },
            1 => Spec::Ack {
                counter: u64::arbitrary(g),
                status: Arbitrary::arbitrary(g),
            },
            2 => Spec::RpcCall {
                function: u16::arbitrary(g),
                args: Vec::arbitrary(g),
            },
            3 => Spec::RpcResponse {
                call: u64::arbitrary(g),
                status: u16::arbitrary(g),
                data: Vec::arbitrary(g),
            },
            4 => Spec::Quit {
                reason: Arbitrary::arbitrary(g),
            },
            5 => Spec::Subscribe {
                subscribe: bool::arbitrary(g),
                // Subscription targets have no terminator, so any string survives.
                target: String::arbitrary(g),
            },
            6 => Spec::ClientAccept {
                server_time_us: i64::arbitrary(g),
            },
            7 => Spec::TimeSyncRequest,
            8 => {
                let mut key = [0u8; 32];
                for b in &mut key {
                    *b = u8::arbitrary(g);
                }
                Spec::GroupKey {
                    sender: u64::arbitrary(g),
                    key_id: u32::arbitrary(g),
                    key,
                }
            }
            10 => Spec::Segment {
                transfer: u64::arbitrary(g),
                total: u32::arbitrary(g),
                offset: u32::arbitrary(g),
                data: Vec::arbitrary(g),
            },
            11 => {
                let mut ranges: Vec<(Counter, u16)> = Vec::arbitrary(g)
                    .into_iter()
                    .map(|(c, n)| (Counter(c), n))
                    .collect();
                ranges.truncate(segment::MAX_ACK_RANGES);
                if ranges.is_empty() {
                    ranges.push((Counter(u64::arbitrary(g)), u16::arbitrary(g)));
                }
                let mut raw = alloc::vec![0u8; 1 + ranges.len() * segment::ACK_RANGE_LEN];
                let built = AckRanges::build(&ranges, &mut raw).map(|r| r.as_bytes().len());
                assert_eq!(built, Ok(raw.len()));
                Spec::AckRanges(raw)
            }
            12 => Spec::TransferRefused {
                transfer: u64::arbitrary(g),
                reason: u8::arbitrary(g),
            },
            9 => Spec::Ordered {
                epoch: u32::arbitrary(g),
                seq: u64::arbitrary(g),
                floor: u64::arbitrary(g),
                target: name(g),
                name: name(g),
                payload: Vec::arbitrary(g),
            },
            14 => Spec::Durable {
                origin: u64::arbitrary(g),
                seq: u64::arbitrary(g),
                floor: u64::arbitrary(g),
                target: name(g),
                name: name(g),
                payload: Vec::arbitrary(g),
            },
            _ => Spec::TimeSyncResponse {
                request: u64::arbitrary(g),
                monotonic_us: u64::arbitrary(g),
                unix_us: Arbitrary::arbitrary(g),
            },
        }
    }
}

impl Spec {
    fn app(&self) -> App<'_> {
        match self {
            Spec::Message {
                reliable,
                target,
                name,
                payload,
            } => {
                let m = Message {
                    target,
                    name,
                    payload,
                };
                if *reliable {
                    App::ReliableMessage(m)
                } else {
                    App::UnreliableMessage(m)
                }
            }
            Spec::Ack { counter, status } => App::Ack {
                counter: Counter(*counter),
                status: status.map(|(battery, network, temperature)| StatusBytes {
                    battery,
                    network,
                    temperature,
                }),
            },
            Spec::RpcCall { function, args } => App::RpcCall {
                function: FunctionId(*function),
                args,
            },
            Spec::RpcResponse { call, status, data } => App::RpcResponse {
                call: Counter(*call),
                status: RpcStatus(*status),
                data,
            },
            Spec::Quit { reason } => App::Quit { reason: *reason },
            Spec::Subscribe {
                subscribe: true,
                target,
            } => App::Subscribe { target },
            Spec::Subscribe {
                subscribe: false,
                target,
            } => App::Unsubscribe { target },
            Spec::ClientAccept { server_time_us } => App::ClientAccept {
                server_time_us: *server_time_us,
            },
            Spec::TimeSyncRequest => App::TimeSyncRequest,
            Spec::TimeSyncResponse {
                request,
                monotonic_us,
                unix_us,
            } => App::TimeSyncResponse {
                request: Counter(*request),
                monotonic_us: *monotonic_us,
                unix_us: *unix_us,
            },
            Spec::GroupKey {
                sender,
                key_id,
                key,
            } => App::GroupKey {
                sender: SenderId(*sender),
                key_id: KeyId(*key_id),
                key,
            },
            Spec::Segment {
                transfer,
                total,
                offset,
                data,
            } => App::Segment(Segment {
                transfer: TransferId(*transfer),
                total: *total,
                offset: *offset,
                data,
            }),
            Spec::AckRanges(raw) => {
                App::AckRanges(AckRanges::parse(raw).expect("built by arbitrary"))
            }
            Spec::TransferRefused { transfer, reason } => App::TransferRefused {
                transfer: TransferId(*transfer),
                reason: RefusalCode(*reason),
            },
            Spec::Ordered {
                epoch,
                seq,
                floor,
                target,
                name,
                payload,
            } => App::OrderedMessage(OrderedMessage {
                epoch: super::super::ordered::StreamEpoch(*epoch),
                seq: super::super::ordered::OrderedSeq(*seq),
                floor: super::super::ordered::OrderedSeq(*floor),
                message: Message {
                    target,
                    name,
                    payload,
                },
            }),
            Spec::Durable {
                origin,
                seq,
                floor,
                target,
                name,
                payload,
            } => App::DurableMessage(super::super::durable::DurableMessage {
                origin: crate::features::durable::OriginId(*origin),
                seq: crate::features::durable::DurableSeq(*seq),
                floor: crate::features::durable::DurableSeq(*floor),
                message: Message {
                    target,
                    name,
                    payload,
                },
            }),
        }
    }
}

#[test]
fn prop_emit_parse_is_identity() {
    fn prop(spec: Spec) -> bool {
        let app = spec.app();
        let mut buf = alloc::vec![0u8; app.buffer_len() + 3];
        let Ok(n) = app.emit(&mut buf) else {
            return false;
        };
        n == app.buffer_len() && buf.get(..n).map(App::parse) == Some(Ok(app))
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Spec) -> bool);
}

#[test]
fn prop_short_buffer_is_refused() {
    fn prop(spec: Spec, cut: usize) -> bool {
        let app = spec.app();
        let mut buf = alloc::vec![0u8; cut % app.buffer_len()];
        app.emit(&mut buf) == Err(Error::BufferTooSmall)
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(Spec, usize) -> bool);
}

#[test]
fn prop_parse_never_panics() {
    fn prop(bytes: Vec<u8>) -> bool {
        if let Ok(app) = App::parse(&bytes) {
            // Whatever parses re-emits to the same bytes: the format has no slack.
            let mut buf = alloc::vec![0u8; bytes.len()];
            return app.emit(&mut buf) == Ok(bytes.len()) && buf == bytes;
        }
        true
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn prop_parse_never_panics_on_known_opcodes() {
    fn prop(op: u8, body: Vec<u8>) -> bool {
        let ops = [
            1, 2, 3, 4, 5, 12, 13, 14, 16, 20, 21, 32, 33, 34, 35, 36, 37,
        ];
        let mut bytes = alloc::vec![ops[usize::from(op) % ops.len()]];
        bytes.extend_from_slice(&body);
        if let Ok(app) = App::parse(&bytes) {
            let mut buf = alloc::vec![0u8; bytes.len()];
            return app.emit(&mut buf) == Ok(bytes.len()) && buf == bytes;
        }
        true
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(u8, Vec<u8>) -> bool);
}

/// `Message::parse` as it was before it checked target and name as one text.
fn parse_message_model(body: &[u8]) -> Result<Message<'_>, Error> {
    let (target, rest) = split_line(body)?;
    let (name, payload) = split_line(rest)?;
    Ok(Message {
        target: utf8(target)?,
        name: utf8(name)?,
        payload,
    })
}

/// A part of a message body: text (which may hold `\n` or multi-byte characters) or any
/// bytes (mostly not UTF-8).
fn body_part(text: Option<String>, bytes: Vec<u8>) -> Vec<u8> {
    text.map_or(bytes, String::into_bytes)
}

#[test]
fn prop_message_parse_checks_target_and_name_as_the_model_does() {
    fn prop(
        target: (Option<String>, Vec<u8>),
        name: (Option<String>, Vec<u8>),
        payload: Vec<u8>,
        raw: bool,
    ) -> bool {
        let mut body = body_part(target.0, target.1);
        if !raw {
            body.push(b'\n');
            body.extend(body_part(name.0, name.1));
            body.push(b'\n');
        }
        body.extend_from_slice(&payload);
        Message::parse(&body) == parse_message_model(&body)
    }
    QuickCheck::new().tests(5000).quickcheck(
        prop as fn((Option<String>, Vec<u8>), (Option<String>, Vec<u8>), Vec<u8>, bool) -> bool,
    );
}

/// `App::emit` of a message as it was before messages had their own path: names checked as
/// `str`s, then the generic length check, then the fields.
fn emit_message_model(app: &App<'_>, m: &Message<'_>, buf: &mut [u8]) -> Result<usize, Error> {
    if m.target.contains('\n') || m.name.contains('\n') {
        return Err(Error::InvalidName);
    }
    if buf.len() < app.buffer_len() {
        return Err(Error::BufferTooSmall);
    }
    let mut w = Writer::new(buf);
    w.u8(app.opcode())?;
    m.emit(&mut w)?;
    Ok(w.written())
}

#[test]
fn prop_message_emit_is_the_model() {
    fn prop(target: String, name: String, payload: Vec<u8>, reliable: bool, len: u8) -> bool {
        let m = Message {
            target: &target,
            name: &name,
            payload: &payload,
        };
        let app = if reliable {
            App::ReliableMessage(m)
        } else {
            App::UnreliableMessage(m)
        };
        // Around the exact length, where a short buffer turns into one that fits.
        let len = (app.buffer_len() + usize::from(len % 8)).saturating_sub(4);
        let (mut ours, mut model) = (alloc::vec![0xa5; len], alloc::vec![0xa5; len]);
        app.emit(&mut ours) == emit_message_model(&app, &m, &mut model) && ours == model
    }
    QuickCheck::new()
        .tests(5000)
        .quickcheck(prop as fn(String, String, Vec<u8>, bool, u8) -> bool);
}
