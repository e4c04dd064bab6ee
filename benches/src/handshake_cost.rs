//! Handshake cost per suite against its Diffie–Hellman count, and what keeping suite 3's
//! static–static result (`ss`) saves on a repeat handshake.
//!
//! A handshake is timed as the criterion bench `handshake` times it: every datagram of the
//! exchange through both cores over the in-memory network, from the client's first packet to
//! the session up (endpoints built outside the timing). One X25519 Diffie–Hellman is timed
//! alone, so each suite's figure reads as "this many Diffie–Hellman-equivalents", to set
//! against the operations the suite needs (PSK none; suite 2 four; Noise IK eight and two key
//! generations, six and two with `ss` kept on both sides).

use std::time::Instant as WallInstant;

use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
use pavillion_proto::crypto::noise::{InitiatorKeys, NoiseInitiator, NoiseResponder, Pattern};
use pavillion_proto::crypto::static_dh::StaticDh;
use pavillion_proto::rng::Rng;

use crate::results::record;
use crate::{NetPair, Suite};

/// One measured line, for `compare`'s table.
#[derive(Debug, Clone)]
pub struct CostRow {
    /// What is measured.
    pub what: String,
    /// Our figure.
    pub ours: String,
    /// What it is set against.
    pub reference: String,
    /// Ours over the reference.
    pub ratio: f64,
}

/// Microseconds per handshake of `suite` through the cores, over about `seconds`.
fn handshake_us(suite: Suite, seconds: f64) -> f64 {
    let mut spent = 0.0;
    let mut n = 0u32;
    while spent < seconds || n < 3 {
        let mut pair = NetPair::new(suite);
        let t = WallInstant::now();
        assert!(pair.handshake(), "{} handshake failed", suite.name());
        spent += t.elapsed().as_secs_f64();
        n += 1;
    }
    spent / f64::from(n) * 1e6
}

/// Microseconds per X25519 Diffie–Hellman.
fn dh_us(seconds: f64) -> f64 {
    let ours = KeyPair::from_secret_bytes([7; 32]);
    let mut peer = *KeyPair::from_secret_bytes([9; 32]).public();
    let t = WallInstant::now();
    let mut n = 0u32;
    while t.elapsed().as_secs_f64() < seconds || n < 10 {
        // Each result is the next peer key, so the work cannot be hoisted.
        peer = PublicKey::from(ours.secret().diffie_hellman(&peer).to_bytes());
        n += 1;
    }
    std::hint::black_box(peer);
    t.elapsed().as_secs_f64() / f64::from(n) * 1e6
}

/// Microseconds per Noise IK handshake (both sides, crypto only), with or without `ss` and
/// the static public keys kept.
fn noise_ik_us(kept: bool, seconds: f64) -> f64 {
    let (client, server) = (
        KeyPair::from_secret_bytes([1; 32]),
        KeyPair::from_secret_bytes([2; 32]),
    );
    let mut cs = StaticDh::new(&client);
    cs.precompute(server.public());
    let mut ss = StaticDh::new(&server);
    ss.precompute(client.public());
    let (cs, ss) = if kept {
        (Some(&cs), Some(&ss))
    } else {
        (None, None)
    };
    let mut rng = Rng::from_seed([5; 32]);
    let t = WallInstant::now();
    let mut n = 0u32;
    while t.elapsed().as_secs_f64() < seconds || n < 10 {
        let keys = InitiatorKeys {
            local: Some(&client),
            server: Some(server.public()),
            psk: None,
        };
        let mut init =
            NoiseInitiator::new_cached(Pattern::Ik, &mut rng, keys, cs).expect("initiator");
        let mut m1 = [0u8; 256];
        let n1 = init.write_initiation(&[0; 16], &mut m1).expect("message 1");
        let mut resp = NoiseResponder::new_cached(Pattern::Ik, &mut rng, Some(&server), None, ss)
            .expect("responder");
        let mut p = [0u8; 64];
        resp.read_initiation(&m1[..n1], &mut p).expect("read 1");
        let mut m2 = [0u8; 256];
        let (n2, _) = resp.write_response(&[0; 8], &mut m2).expect("message 2");
        let (_, keys) = init.read_response(&m2[..n2], &mut p).expect("read 2");
        std::hint::black_box(keys);
        n += 1;
    }
    t.elapsed().as_secs_f64() / f64::from(n) * 1e6
}

/// The rows: each suite's handshake in Diffie–Hellman-equivalents, and Noise IK with `ss`
/// kept against without. Records `handshake_us_SUITE` (µs per handshake through the cores)
/// and `handshake_us_noise_ss_kept`, `handshake_us_noise_ik_crypto`, `x25519_dh_us`.
pub fn rows(seconds: f64) -> Vec<CostRow> {
    let per = (seconds / 4.0).max(0.05);
    let dh = dh_us(per);
    record("x25519_dh_us", dh, "us");
    let mut rows = Vec::new();
    for suite in Suite::ALL {
        let us = handshake_us(suite, per);
        record(&format!("handshake_us_{}", suite.name()), us, "us");
        let needs = match suite {
            Suite::Psk => "0 DH",
            Suite::Ecc => "4 DH",
            Suite::Noise => "8 DH + 2 keygen",
        };
        rows.push(CostRow {
            what: format!("handshake cost, {} (needs {needs})", suite.name()),
            ours: format!("{us:.1} us"),
            reference: format!("1 DH = {dh:.1} us"),
            ratio: us / dh,
        });
    }
    let plain = noise_ik_us(false, per);
    let kept = noise_ik_us(true, per);
    record("handshake_us_noise_ik_crypto", plain, "us");
    record("handshake_us_noise_ss_kept", kept, "us");
    rows.push(CostRow {
        what: "Noise IK repeat handshake, ss kept vs computed (crypto only)".into(),
        ours: format!("{kept:.1} us"),
        reference: format!("{plain:.1} us"),
        ratio: kept / plain,
    });
    rows
}
