use super::*;
use crate::id::ClientId;
use alloc::string::ToString;
use alloc::vec;
use quickcheck::{Arbitrary, Gen, QuickCheck};

fn array<const N: usize>(g: &mut Gen) -> [u8; N] {
    let mut a = [0u8; N];
    for b in &mut a {
        *b = u8::arbitrary(g);
    }
    a
}

/// A label of at most `MAX_LABEL` bytes, sometimes with multi-byte characters.
fn label(g: &mut Gen) -> String {
    let mut s = String::new();
    let n = usize::arbitrary(g) % 12;
    for _ in 0..n {
        let c = *g.choose(&['a', 'Z', '7', '-', 'é', '漢', '🦀']).unwrap();
        if s.len() + c.len_utf8() > MAX_LABEL {
            break;
        }
        s.push(c);
    }
    s
}

fn addr(g: &mut Gen) -> Option<SocketAddr> {
    match u8::arbitrary(g) % 3 {
        0 => None,
        1 => Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(u32::arbitrary(g))),
            u16::arbitrary(g),
        )),
        _ => Some(SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from(u128::arbitrary(g))),
            u16::arbitrary(g),
        )),
    }
}

#[derive(Clone, Debug)]
struct E(RosterEntry);

impl Arbitrary for E {
    fn arbitrary(g: &mut Gen) -> Self {
        E(RosterEntry {
            id: MemberId(ClientId(array(g))),
            public: PublicKey::from(array::<32>(g)),
            role: label(g),
            name: label(g),
            addr: addr(g),
            up: bool::arbitrary(g),
        })
    }
}

#[derive(Clone, Debug)]
struct Req {
    public: [u8; 32],
    proof: Option<[u8; 32]>,
    role: String,
    name: String,
}

impl Arbitrary for Req {
    fn arbitrary(g: &mut Gen) -> Self {
        Req {
            public: array(g),
            proof: bool::arbitrary(g).then(|| array(g)),
            role: label(g),
            name: label(g),
        }
    }
}

#[derive(Clone, Debug)]
struct Ans(JoinAnswer);

impl Arbitrary for Ans {
    fn arbitrary(g: &mut Gen) -> Self {
        Ans(if bool::arbitrary(g) {
            JoinAnswer::Admitted {
                id: MemberId(ClientId(array(g))),
                signing: SigningPublic(array(g)),
                epoch: u64::arbitrary(g),
                version: u64::arbitrary(g),
                role: label(g),
            }
        } else {
            JoinAnswer::Refused {
                reason: JoinRefusal::from_code(u8::arbitrary(g) % 7 + 1).unwrap(),
                retry_after_ms: u32::arbitrary(g),
            }
        })
    }
}

fn snapshot(epoch: u64, version: u64, entries: Vec<E>, sig: u8) -> Snapshot {
    Snapshot {
        epoch,
        version,
        entries: entries.into_iter().map(|e| e.0).collect(),
        signature: [sig; 64],
    }
}

#[test]
fn join_request_round_trips() {
    fn prop(r: Req) -> bool {
        let req = JoinRequest {
            public: PublicKey::from(r.public),
            proof: r.proof.map_or(Proof::Listed, Proof::Enrolment),
            role: &r.role,
            name: &r.name,
        };
        let mut out = Vec::new();
        req.encode(&mut out);
        JoinRequest::parse(&out) == Ok(req)
    }
    QuickCheck::new().quickcheck(prop as fn(Req) -> bool);
}

#[test]
fn join_answer_round_trips() {
    fn prop(a: Ans) -> bool {
        let mut out = Vec::new();
        a.0.encode(&mut out);
        JoinAnswer::parse(&out) == Ok(a.0)
    }
    QuickCheck::new().quickcheck(prop as fn(Ans) -> bool);
}

#[test]
fn snapshot_round_trips() {
    fn prop(epoch: u64, version: u64, entries: Vec<E>, sig: u8) -> bool {
        let s = snapshot(epoch, version, entries, sig);
        let mut out = Vec::new();
        s.encode(&mut out);
        Snapshot::parse(&out) == Ok(s)
    }
    QuickCheck::new().quickcheck(prop as fn(u64, u64, Vec<E>, u8) -> bool);
}

#[test]
fn delta_round_trips() {
    fn prop(epoch: u64, base: u64, upserts: Vec<E>, removals: Vec<[u8; 16]>) -> bool {
        let d = Delta {
            epoch,
            base,
            version: base.wrapping_add(1),
            upserts: upserts.into_iter().map(|e| e.0).collect(),
            removals: removals
                .into_iter()
                .map(|r| MemberId(ClientId(r)))
                .collect(),
            digest: [7; 32],
            signature: [9; 64],
        };
        let mut out = Vec::new();
        d.encode(&mut out);
        Delta::parse(&out) == Ok(d)
    }
    QuickCheck::new().quickcheck(prop as fn(u64, u64, Vec<E>, Vec<[u8; 16]>) -> bool);
}

/// Every prefix of a valid payload is an error (never a panic, never a shorter value), and
/// so is any payload with a byte appended.
#[test]
fn truncation_and_trailing_bytes_are_errors() {
    fn prop(epoch: u64, entries: Vec<E>, r: Req, a: Ans) -> bool {
        let mut payloads: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut out = Vec::new();
        snapshot(epoch, 1, entries.clone(), 3).encode(&mut out);
        payloads.push((0, out));
        let mut out = Vec::new();
        Delta {
            epoch,
            base: 1,
            version: 2,
            upserts: entries.into_iter().map(|e| e.0).collect(),
            removals: vec![MemberId(ClientId([1; 16]))],
            digest: [0; 32],
            signature: [0; 64],
        }
        .encode(&mut out);
        payloads.push((1, out));
        let mut out = Vec::new();
        JoinRequest {
            public: PublicKey::from(r.public),
            proof: r.proof.map_or(Proof::Listed, Proof::Enrolment),
            role: &r.role,
            name: &r.name,
        }
        .encode(&mut out);
        payloads.push((2, out));
        let mut out = Vec::new();
        a.0.encode(&mut out);
        payloads.push((3, out));
        payloads.into_iter().all(|(kind, p)| {
            let ok = |b: &[u8]| match kind {
                0 => Snapshot::parse(b).is_ok(),
                1 => Delta::parse(b).is_ok(),
                2 => JoinRequest::parse(b).is_ok(),
                _ => JoinAnswer::parse(b).is_ok(),
            };
            let mut longer = p.clone();
            longer.push(0);
            ok(&p) && !ok(&longer) && (0..p.len()).all(|n| !ok(&p[..n]))
        })
    }
    QuickCheck::new()
        .tests(50)
        .quickcheck(prop as fn(u64, Vec<E>, Req, Ans) -> bool);
}

#[test]
fn garbage_never_panics() {
    fn prop(bytes: Vec<u8>) -> bool {
        let _ = JoinRequest::parse(&bytes);
        let _ = JoinAnswer::parse(&bytes);
        let _ = Snapshot::parse(&bytes);
        let _ = Delta::parse(&bytes);
        true
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn typed_errors() {
    assert_eq!(JoinRequest::parse(&[]), Err(AuthorityWireError::Truncated));
    assert_eq!(
        JoinRequest::parse(&[2]),
        Err(AuthorityWireError::BadVersion(2))
    );
    let mut p = vec![1];
    p.extend_from_slice(&[0; 32]);
    p.push(9);
    assert_eq!(JoinRequest::parse(&p), Err(AuthorityWireError::BadCode(9)));
    p.pop();
    p.extend_from_slice(&[0, 33]);
    p.extend_from_slice(&[b'a'; 33]);
    assert_eq!(JoinRequest::parse(&p), Err(AuthorityWireError::BadLabel));
    assert_eq!(
        JoinAnswer::parse(&[1, 1, 0, 0, 0, 0, 0]),
        Err(AuthorityWireError::BadCode(0))
    );
    // A count the payload cannot hold is refused before any allocation.
    let mut s = vec![0; 16];
    s.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(Snapshot::parse(&s), Err(AuthorityWireError::BadCount));
}

/// Pins the layout of `docs/PROTOCOL.md` §15 byte for byte.
#[test]
fn join_request_layout() {
    let mut out = Vec::new();
    JoinRequest {
        public: PublicKey::from([0xAA; 32]),
        proof: Proof::Enrolment([0xBB; 32]),
        role: "r",
        name: "nm",
    }
    .encode(&mut out);
    let mut want = vec![1];
    want.extend_from_slice(&[0xAA; 32]);
    want.push(1);
    want.extend_from_slice(&[0xBB; 32]);
    want.extend_from_slice(&[1, b'r', 2, b'n', b'm']);
    assert_eq!(out, want);
}

#[test]
fn entry_layout() {
    let e = RosterEntry {
        id: MemberId(ClientId([1; 16])),
        public: PublicKey::from([2; 32]),
        role: "a".to_string(),
        name: String::new(),
        addr: Some("10.0.0.1:258".parse().unwrap()),
        up: true,
    };
    let mut out = Vec::new();
    encode_entry(&e, &mut out);
    let mut want = vec![1; 16];
    want.extend_from_slice(&[2; 32]);
    want.extend_from_slice(&[1, b'a', 0, 4, 10, 0, 0, 1, 2, 1, 1]);
    assert_eq!(out, want);
}

#[test]
fn proofs_bind_both_keys_and_the_secret() {
    let k = enrolment_key(b"a long enough passphrase");
    let a = PublicKey::from([1; 32]);
    let j = PublicKey::from([2; 32]);
    let p = enrolment_proof(&k, &a, &j);
    assert_ne!(p, enrolment_proof(&k, &j, &a));
    assert_ne!(
        p,
        enrolment_proof(&enrolment_key(b"another passphrase!!"), &a, &j)
    );
    assert_ne!(p, enrolment_proof(&k, &a, &PublicKey::from([3; 32])));
    assert_eq!(p, enrolment_proof(&k, &a, &j));
}
