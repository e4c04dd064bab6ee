//! Round trips and typed errors of ops 6 to 10 (`docs/PROTOCOL.md` §9.8).

use super::*;
use crate::wire::App;
use alloc::vec;
use quickcheck::{Arbitrary, Gen, QuickCheck};

fn round_trip(app: App<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; app.buffer_len()];
    let n = app.emit(&mut buf).expect("emits");
    assert_eq!(n, buf.len());
    assert_eq!(App::parse(&buf), Ok(app));
    buf
}

#[test]
fn every_byte_of_op_7_is_where_the_spec_says() {
    let app = App::RegisterValue(RegisterValuePacket {
        answers: Counter(0x0102_0304_0506_0708),
        register: RegisterId(0x0a0b),
        status: RegisterStatus::OK,
        flags: flags::WRITABLE,
        value: Some(ValueRef::F32(1.5f32.to_bits())),
    });
    let bytes = round_trip(app);
    assert_eq!(
        bytes,
        [7, 8, 7, 6, 5, 4, 3, 2, 1, 0x0b, 0x0a, 0, 4, 2, 0, 0, 0xc0, 0x3f]
    );
}

#[test]
fn every_byte_of_ops_6_8_9_10() {
    let read = round_trip(App::RegisterRead(RegisterRead {
        register: RegisterId(0x0201),
    }));
    assert_eq!(read, [6, 1, 2]);
    let observe = round_trip(App::Observe(ObserveRequest {
        register: RegisterId(3),
        duration_ms: 60_000,
        min_interval_ms: 250,
    }));
    assert_eq!(observe, [8, 3, 0, 0x60, 0xea, 0, 0, 0xfa, 0, 0, 0]);
    let info_req = round_trip(App::RegisterInfoRequest(RegisterInfoRequest {
        from: RegisterId(5),
    }));
    assert_eq!(info_req, [9, 5, 0]);
    let info = round_trip(App::RegisterInfo(RegisterInfoPacket {
        answers: Counter(9),
        status: RegisterStatus::OK,
        register: RegisterId(5),
        kind: RegisterType::I64,
        flags: flags::WRITABLE,
        name: "t",
        unit: "C",
    }));
    assert_eq!(
        info,
        [10, 9, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 2, 2, 1, b't', 1, b'C']
    );
}

#[test]
fn typed_errors_for_bad_register_packets() {
    // Fixed lengths.
    assert_eq!(
        App::parse(&[6, 1]),
        Err(Error::BadLength {
            expected: 2,
            actual: 1
        })
    );
    assert_eq!(
        App::parse(&[8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(Error::BadLength {
            expected: 10,
            actual: 11
        })
    );
    assert_eq!(
        App::parse(&[9]),
        Err(Error::BadLength {
            expected: 2,
            actual: 0
        })
    );
    // Op 7: a short prefix, an unknown type, a bad boolean, a value of the wrong length,
    // text that is not UTF-8, a value where none is allowed.
    let prefix = |kind: u8| {
        let mut p = vec![7u8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, kind, 0];
        p.truncate(14);
        p
    };
    assert_eq!(App::parse(&prefix(1)[..13]), Err(Error::Truncated));
    let mut unknown = prefix(8);
    unknown.push(0);
    assert_eq!(App::parse(&unknown), Err(Error::BadRegisterValue));
    let mut bad_bool = prefix(1);
    bad_bool.push(2);
    assert_eq!(App::parse(&bad_bool), Err(Error::BadRegisterValue));
    let mut short_i64 = prefix(2);
    short_i64.extend([0; 7]);
    assert_eq!(
        App::parse(&short_i64),
        Err(Error::BadLength {
            expected: 8,
            actual: 7
        })
    );
    let mut bad_text = prefix(6);
    bad_text.push(0xff);
    assert_eq!(App::parse(&bad_text), Err(Error::InvalidUtf8));
    let mut none_with_bytes = prefix(0);
    none_with_bytes.push(0);
    assert_eq!(
        App::parse(&none_with_bytes),
        Err(Error::BadLength {
            expected: 0,
            actual: 1
        })
    );
    let mut long = prefix(7);
    long.extend(vec![0; MAX_VALUE_LEN + 1]);
    assert_eq!(
        App::parse(&long),
        Err(Error::BadLength {
            expected: MAX_VALUE_LEN,
            actual: MAX_VALUE_LEN + 1
        })
    );
    // Op 10: a name over the limit, trailing bytes, a name cut short.
    let mut info = vec![10u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0];
    let mut too_long = info.clone();
    too_long.push(MAX_NAME_LEN as u8 + 1);
    too_long.extend(vec![b'a'; MAX_NAME_LEN + 1]);
    too_long.push(0);
    assert_eq!(
        App::parse(&too_long),
        Err(Error::BadLength {
            expected: MAX_NAME_LEN,
            actual: MAX_NAME_LEN + 1
        })
    );
    info.extend([1, b'n', 0]);
    assert!(App::parse(&info).is_ok());
    let mut trailing = info.clone();
    trailing.push(0);
    assert!(matches!(
        App::parse(&trailing),
        Err(Error::BadLength { .. })
    ));
    assert_eq!(App::parse(&info[..info.len() - 2]), Err(Error::Truncated));
}

#[test]
fn values_read_and_print_by_type() {
    for (kind, text, value) in [
        (RegisterType::Bool, "true", RegisterValue::Bool(true)),
        (RegisterType::I64, "-3", RegisterValue::I64(-3)),
        (RegisterType::U64, "7", RegisterValue::U64(7)),
        (RegisterType::F32, "1.5", RegisterValue::F32(1.5)),
        (RegisterType::F64, "2.25", RegisterValue::F64(2.25)),
        (RegisterType::Text, "hi", RegisterValue::Text("hi".into())),
        (
            RegisterType::Bytes,
            "00ff",
            RegisterValue::Bytes(vec![0, 255]),
        ),
    ] {
        assert_eq!(RegisterValue::parse_as(kind, text), Some(value.clone()));
        assert_eq!(alloc::format!("{value}"), text);
        assert_eq!(value.kind(), kind);
        assert_eq!(RegisterType::from_name(kind.name()), Some(kind));
    }
    assert_eq!(RegisterValue::parse_as(RegisterType::I64, "x"), None);
    assert_eq!(RegisterValue::parse_as(RegisterType::Bytes, "0"), None);
    // A NaN equals itself: values compare by bits.
    let nan = RegisterValue::F64(f64::NAN);
    assert_eq!(nan, nan.clone());
}

/// An owned register packet, since quickcheck values must be `'static`.
#[derive(Clone, Debug)]
enum Spec {
    Read(u16),
    Value(u64, u16, u8, u8, Option<RegisterValue>),
    Observe(u16, u32, u32),
    InfoRequest(u16),
    Info(u64, u8, u16, u8, u8, String, String),
}

fn arbitrary_value(g: &mut Gen) -> RegisterValue {
    match u8::arbitrary(g) % 7 {
        0 => RegisterValue::Bool(bool::arbitrary(g)),
        1 => RegisterValue::I64(i64::arbitrary(g)),
        2 => RegisterValue::U64(u64::arbitrary(g)),
        3 => RegisterValue::F32(f32::arbitrary(g)),
        4 => RegisterValue::F64(f64::arbitrary(g)),
        5 => RegisterValue::Text(String::arbitrary(g)),
        _ => RegisterValue::Bytes(Vec::arbitrary(g)),
    }
}

fn short(g: &mut Gen, max: usize) -> String {
    let mut s = String::arbitrary(g);
    while s.len() > max {
        s.pop();
    }
    s
}

impl Arbitrary for Spec {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 5 {
            0 => Spec::Read(u16::arbitrary(g)),
            1 => Spec::Value(
                u64::arbitrary(g),
                u16::arbitrary(g),
                u8::arbitrary(g),
                u8::arbitrary(g),
                bool::arbitrary(g).then(|| arbitrary_value(g)),
            ),
            2 => Spec::Observe(u16::arbitrary(g), u32::arbitrary(g), u32::arbitrary(g)),
            3 => Spec::InfoRequest(u16::arbitrary(g)),
            _ => Spec::Info(
                u64::arbitrary(g),
                u8::arbitrary(g),
                u16::arbitrary(g),
                u8::arbitrary(g) % 8,
                u8::arbitrary(g),
                short(g, MAX_NAME_LEN),
                short(g, MAX_UNIT_LEN),
            ),
        }
    }
}

impl Spec {
    fn app(&self) -> App<'_> {
        match self {
            Spec::Read(r) => App::RegisterRead(RegisterRead {
                register: RegisterId(*r),
            }),
            Spec::Value(a, r, s, f, v) => App::RegisterValue(RegisterValuePacket {
                answers: Counter(*a),
                register: RegisterId(*r),
                status: RegisterStatus(*s),
                flags: *f,
                value: v.as_ref().map(RegisterValue::as_ref),
            }),
            Spec::Observe(r, d, i) => App::Observe(ObserveRequest {
                register: RegisterId(*r),
                duration_ms: *d,
                min_interval_ms: *i,
            }),
            Spec::InfoRequest(r) => App::RegisterInfoRequest(RegisterInfoRequest {
                from: RegisterId(*r),
            }),
            Spec::Info(a, s, r, k, f, n, u) => App::RegisterInfo(RegisterInfoPacket {
                answers: Counter(*a),
                status: RegisterStatus(*s),
                register: RegisterId(*r),
                kind: RegisterType::from_byte(*k).unwrap_or(RegisterType::None),
                flags: *f,
                name: n,
                unit: u,
            }),
        }
    }
}

#[test]
fn prop_register_packets_emit_then_parse_to_themselves() {
    fn prop(spec: Spec) -> bool {
        let app = spec.app();
        let mut buf = vec![0u8; app.buffer_len()];
        let Ok(n) = app.emit(&mut buf) else {
            return false;
        };
        let parsed = App::parse(&buf[..n]);
        // Values too long for one packet are refused on parse, never silently cut.
        match app {
            App::RegisterValue(p) if p.check().is_err() => parsed.is_err(),
            _ => parsed == Ok(app),
        }
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Spec) -> bool);
}

/// Any bytes after op 6 to 10 either fail to parse with a typed error or parse to a packet
/// that emits exactly those bytes again (one encoding per packet).
#[test]
fn prop_register_parse_never_panics() {
    fn prop(op: u8, body: Vec<u8>) -> bool {
        let mut p = vec![6 + op % 5];
        p.extend(body);
        match App::parse(&p) {
            Ok(app) => {
                let mut buf = vec![0u8; p.len()];
                app.emit(&mut buf) == Ok(p.len()) && buf == p
            }
            Err(_) => true,
        }
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(u8, Vec<u8>) -> bool);
}
