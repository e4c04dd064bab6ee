//! The authority's payloads: `JOIN` requests and answers, roster snapshots and deltas.
//!
//! Whatever the bytes, parsing returns, and a payload that parses encodes back to exactly the
//! bytes it came from (every field has one encoding), which is what lets a member check a
//! roster signature over the parsed value. Applying the bytes as a roster publication never
//! panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::features::authority::{Roster, SigningKey};
use pavillion_proto::wire::authority::{Delta, JoinAnswer, JoinRequest, Snapshot};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    if let Ok(r) = JoinRequest::parse(data) {
        r.encode(&mut out);
        assert_eq!(out, data);
    }
    out.clear();
    if let Ok(a) = JoinAnswer::parse(data) {
        a.encode(&mut out);
        assert_eq!(out, data);
    }
    out.clear();
    if let Ok(s) = Snapshot::parse(data) {
        s.encode(&mut out);
        assert_eq!(out, data);
    }
    out.clear();
    if let Ok(d) = Delta::parse(data) {
        d.encode(&mut out);
        assert_eq!(out, data);
    }
    let key = SigningKey::derive(&KeyPair::from_secret_bytes([7; 32])).public();
    let mut roster = Roster::default();
    for name in ["snapshot", "delta"] {
        let _ = roster.apply_publication(name, data, &key);
    }
});
