//! How a register's value becomes a retained MQTT payload (`docs/BRIDGE.md`, "Registers"),
//! and how a payload reads back as a value of a known type.
//!
//! A dashboard reads the payload as it is, so every value is the text `pav get` prints
//! (`true`/`false`, decimal integers, the shortest decimal that reads back as the same
//! float, text as its UTF-8), except opaque bytes, which are the bytes themselves. The type
//! goes along as the user property [`PAV_TYPE`] (`bool`, `i64`, `u64`, `f32`, `f64`, `text`,
//! `bytes`), so that a consumer can read the payload back exactly ([`value_of_payload`]).

use bytes::Bytes;
use pavillion_proto::wire::{RegisterType, RegisterValue};

/// The user property that names a register payload's type.
pub const PAV_TYPE: &str = "pav-type";

/// The retained payload of a register value.
///
/// An empty text or bytes value gives an empty payload, which MQTT reads as "clear the
/// retained message": a later subscriber then gets nothing for the register, which
/// `docs/BRIDGE.md` says stands for the empty value.
pub fn payload_of_value(value: &RegisterValue) -> Bytes {
    match value {
        RegisterValue::Bytes(b) => Bytes::copy_from_slice(b),
        other => Bytes::from(other.to_string()),
    }
}

/// The value a payload of type `kind` stands for; `None` if it is not one (not UTF-8 where
/// text is needed, not a number, ...). Floats read back to the same bits, NaN excepted
/// (any NaN prints `NaN`).
pub fn value_of_payload(kind: RegisterType, payload: &[u8]) -> Option<RegisterValue> {
    match kind {
        RegisterType::Bytes => Some(RegisterValue::Bytes(payload.to_vec())),
        RegisterType::Text => Some(RegisterValue::Text(
            core::str::from_utf8(payload).ok()?.to_owned(),
        )),
        RegisterType::Bool => match payload {
            b"true" => Some(RegisterValue::Bool(true)),
            b"false" => Some(RegisterValue::Bool(false)),
            _ => None,
        },
        other => RegisterValue::parse_as(other, core::str::from_utf8(payload).ok()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    fn round_trips(v: RegisterValue) -> bool {
        let p = payload_of_value(&v);
        value_of_payload(v.kind(), &p) == Some(v)
    }

    quickcheck! {
        fn every_value_reads_back_exactly(
            b: bool, i: i64, u: u64, f: f32, d: f64, t: String, bytes: Vec<u8>
        ) -> TestResult {
            if f.is_nan() || d.is_nan() {
                return TestResult::discard();
            }
            TestResult::from_bool(
                round_trips(RegisterValue::Bool(b))
                    && round_trips(RegisterValue::I64(i))
                    && round_trips(RegisterValue::U64(u))
                    && round_trips(RegisterValue::F32(f))
                    && round_trips(RegisterValue::F64(d))
                    && round_trips(RegisterValue::Text(t))
                    && round_trips(RegisterValue::Bytes(bytes)),
            )
        }
    }

    #[test]
    fn payloads_are_what_a_dashboard_reads() {
        assert_eq!(&payload_of_value(&RegisterValue::Bool(true))[..], b"true");
        assert_eq!(&payload_of_value(&RegisterValue::I64(-3))[..], b"-3");
        assert_eq!(&payload_of_value(&RegisterValue::F32(21.5))[..], b"21.5");
        assert_eq!(&payload_of_value(&RegisterValue::F64(0.1))[..], b"0.1");
        assert_eq!(
            &payload_of_value(&RegisterValue::Text("on".into()))[..],
            b"on"
        );
        assert_eq!(
            &payload_of_value(&RegisterValue::Bytes(vec![0, 0xff]))[..],
            &[0, 0xff]
        );
        assert_eq!(value_of_payload(RegisterType::Bool, b"1"), None);
        assert_eq!(value_of_payload(RegisterType::U64, b"-1"), None);
        assert_eq!(value_of_payload(RegisterType::Text, &[0xff]), None);
        assert_eq!(value_of_payload(RegisterType::None, b""), None);
    }
}
