//! The cleartext packets: suite 1/2 setup packets (`docs/DECODE.md` §1.2) and suite 3
//! handshake packets (§1.3), from the crate's parsers.

use alloc::vec::Vec;

use super::{Field, Value};
use crate::wire::noise::Mode;
use crate::wire::Setup;

fn u(name: &'static str, v: impl Into<u64>) -> Field {
    Field {
        name,
        value: Value::U64(v.into()),
    }
}

fn b(name: &'static str, v: &[u8]) -> Field {
    Field {
        name,
        value: Value::Bytes(v.to_vec()),
    }
}

/// The opcode, name and fields of a setup packet.
pub(super) fn setup(s: &Setup) -> (u8, &'static str, Vec<Field>) {
    match s {
        Setup::NonceRequest(r) => (
            1,
            "nonce_request",
            alloc::vec![
                u("cipher", u8::from(r.cipher)),
                b("client_id", &r.client_id.0),
                b("challenge", &r.challenge),
                b("session_hint", &r.session_hint),
                b("public_key", &r.public_key),
            ],
        ),
        Setup::PskNonce(n) => (
            2,
            "psk_nonce",
            alloc::vec![
                b("server_nonce", &n.server_nonce),
                b("challenge", &n.challenge),
                b("tag", &n.tag),
            ],
        ),
        Setup::PskClientInfo(i) => (
            3,
            "psk_client_info",
            alloc::vec![
                u("cipher", u8::from(i.cipher)),
                b("client_id", &i.client_id.0),
                b("client_nonce", &i.client_nonce),
                b("server_nonce", &i.server_nonce),
                u("counter_floor", i.counter.0),
                b("tag", &i.tag),
            ],
        ),
        Setup::UnrecognizedClient => (4, "unrecognized_client", Vec::new()),
        Setup::NewServerJoin => (5, "new_server_join", Vec::new()),
        Setup::InvalidClientId { challenge } => (
            6,
            "invalid_client_id",
            alloc::vec![b("challenge", challenge)],
        ),
        Setup::SessionEstablished { session_id } => (
            7,
            "session_established",
            alloc::vec![b("session_id", session_id)],
        ),
        Setup::EccNonce(n) => (
            11,
            "ecc_nonce",
            alloc::vec![
                b("box_nonce", &n.box_nonce),
                u("sealed_len", n.sealed.len() as u64),
            ],
        ),
        Setup::EccClientInfo(i) => (
            12,
            "ecc_client_info",
            alloc::vec![
                b("client_id", &i.client_id.0),
                u("cipher", u8::from(i.cipher)),
                b("box_nonce", &i.box_nonce),
                u("sealed_len", i.sealed.len() as u64),
            ],
        ),
    }
}

/// The `mode` field's text.
pub(super) fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Ik => "ik",
        Mode::IkPsk2 => "ik_psk2",
        Mode::NnPsk0 => "nn_psk0",
    }
}

/// A text field.
pub(super) fn text(name: &'static str, v: &str) -> Field {
    Field {
        name,
        value: Value::Text(v.into()),
    }
}

/// A bytes field.
pub(super) fn bytes(name: &'static str, v: &[u8]) -> Field {
    b(name, v)
}

/// A `u64` field.
pub(super) fn number(name: &'static str, v: u64) -> Field {
    u(name, v)
}
