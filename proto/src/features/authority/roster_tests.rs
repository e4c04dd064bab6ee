use super::*;
use crate::crypto::ecc::KeyPair;
use alloc::string::ToString;
use alloc::vec;
use quickcheck::{Arbitrary, Gen, QuickCheck};

fn key(b: u8) -> SigningKey {
    SigningKey::derive(&KeyPair::from_secret_bytes([b; 32]))
}

fn entry(b: u8) -> RosterEntry {
    let public = *KeyPair::from_secret_bytes([b; 32]).public();
    RosterEntry {
        id: MemberId::of(&public),
        public,
        role: "sensor".to_string(),
        name: alloc::format!("n{b}"),
        addr: Some(SocketAddr::from(([10, 0, 0, b], 1790))),
        up: true,
    }
}

fn roster(epoch: u64, version: u64, members: &[u8]) -> Roster {
    Roster {
        epoch,
        version,
        entries: members.iter().map(|&b| (entry(b).id, entry(b))).collect(),
    }
}

/// A roster over member keys 1..=8, each present or not, up or down, at one of two addresses.
#[derive(Clone, Debug)]
struct Arb(Roster);

impl Arbitrary for Arb {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut r = Roster {
            epoch: 7,
            version: u64::from(u8::arbitrary(g)) + 1,
            entries: BTreeMap::new(),
        };
        for b in 1..=8u8 {
            if bool::arbitrary(g) {
                let mut e = entry(b);
                e.up = bool::arbitrary(g);
                if bool::arbitrary(g) {
                    e.addr = None;
                }
                r.entries.insert(e.id, e);
            }
        }
        Arb(r)
    }
}

#[test]
fn member_id_hex_round_trips() {
    let id = entry(3).id;
    let text = id.to_string();
    assert_eq!(text.len(), 32);
    assert_eq!(MemberId::parse_hex(&text), Some(id));
    assert_eq!(MemberId::parse_hex(&text.to_uppercase()), Some(id));
    assert_eq!(MemberId::parse_hex(&text[..31]), None);
    assert_eq!(MemberId::parse_hex(&alloc::format!("{text}0")), None);
    assert_eq!(MemberId::parse_hex(&text.replace(&text[..1], "g")), None);
    // Multi-byte characters are refused, not sliced through.
    assert_eq!(MemberId::parse_hex("ééééééééééééééee"), None);
}

#[test]
fn digest_covers_every_field() {
    let base = roster(1, 2, &[1, 2]);
    let d = base.digest();
    let mut r = base.clone();
    r.epoch = 2;
    assert_ne!(r.digest(), d);
    let mut r = base.clone();
    r.version = 3;
    assert_ne!(r.digest(), d);
    let id = entry(1).id;
    for change in 0..4 {
        let mut r = base.clone();
        let e = r.entries.get_mut(&id).unwrap();
        match change {
            0 => e.up = false,
            1 => e.addr = None,
            2 => e.role.push('x'),
            _ => e.name.push('x'),
        }
        assert_ne!(r.digest(), d, "change {change}");
    }
    assert_eq!(base.clone().digest(), d);
}

#[test]
fn snapshot_applies_with_the_right_key_only() {
    let k = key(9);
    let auth = roster(5, 3, &[1, 2]);
    let snap = auth.snapshot(&k);
    let mut m = Roster::default();
    assert_eq!(
        m.apply_snapshot(&snap, &key(8).public()),
        Err(RosterError::BadSignature)
    );
    let mut tampered = snap.clone();
    tampered.entries[0].up = false;
    assert_eq!(
        m.apply_snapshot(&tampered, &k.public()),
        Err(RosterError::BadSignature)
    );
    assert_eq!(m, Roster::default());
    let u = m.apply_snapshot(&snap, &k.public()).unwrap();
    assert_eq!(m, auth);
    assert_eq!(u.added.len(), 2);
    assert!(!u.reset);
    // The same or an older version again: stale.
    assert_eq!(
        m.apply_snapshot(&snap, &k.public()),
        Err(RosterError::Stale)
    );
    // Another epoch (an authority that lost its store), even at a lower version: a reset.
    let other = roster(6, 1, &[2, 3]);
    let u = m.apply_snapshot(&other.snapshot(&k), &k.public()).unwrap();
    assert!(u.reset);
    assert_eq!(u.added, vec![entry(3).id]);
    assert_eq!(u.removed, vec![entry(1).id]);
    assert_eq!(m, other);
}

#[test]
fn snapshot_with_an_id_that_is_not_its_key_is_malformed() {
    let k = key(9);
    let mut auth = roster(5, 3, &[1]);
    let mut e = entry(2);
    e.id = entry(1).id;
    auth.entries.insert(e.id, e);
    let mut m = Roster::default();
    assert_eq!(
        m.apply_snapshot(&auth.snapshot(&k), &k.public()),
        Err(RosterError::Malformed)
    );
}

#[test]
fn deltas_apply_in_order_and_gaps_are_reported() {
    let k = key(9);
    let v1 = roster(5, 1, &[1, 2]);
    let mut v2 = roster(5, 2, &[2, 3]);
    v2.entries.get_mut(&entry(2).id).unwrap().up = false;
    let v3 = roster(5, 3, &[3]);
    let d12 = v1.delta_to(&v2, &k).unwrap();
    let d23 = v2.delta_to(&v3, &k).unwrap();
    let mut m = v1.clone();
    assert_eq!(m.apply_delta(&d23, &k.public()), Err(RosterError::Gap));
    assert_eq!(
        m.apply_delta(&d12, &key(1).public()),
        Err(RosterError::BadSignature)
    );
    let u = m.apply_delta(&d12, &k.public()).unwrap();
    assert_eq!(m, v2);
    assert_eq!(u.added, vec![entry(3).id]);
    assert_eq!(u.changed, vec![entry(2).id]);
    assert_eq!(u.removed, vec![entry(1).id]);
    assert_eq!(m.apply_delta(&d12, &k.public()), Err(RosterError::Stale));
    m.apply_delta(&d23, &k.public()).unwrap();
    assert_eq!(m, v3);
    // A delta of another epoch cannot apply: fetch a snapshot.
    let other = roster(6, 4, &[3]).delta_to(&roster(6, 5, &[]), &k).unwrap();
    assert_eq!(m.apply_delta(&other, &k.public()), Err(RosterError::Gap));
}

#[test]
fn a_delta_whose_digest_differs_is_inconsistent_and_not_applied() {
    let k = key(9);
    let v1 = roster(5, 1, &[1]);
    let v2 = roster(5, 2, &[1, 2]);
    let d = v1.delta_to(&v2, &k).unwrap();
    // The member's roster at version 1 differs from the authority's (a lost update).
    let mut m = roster(5, 1, &[3]);
    let before = m.clone();
    assert_eq!(
        m.apply_delta(&d, &k.public()),
        Err(RosterError::Inconsistent)
    );
    assert_eq!(m, before);
}

#[test]
fn publications_parse_by_name() {
    let k = key(9);
    let v1 = roster(5, 1, &[1]);
    let mut bytes = Vec::new();
    v1.snapshot(&k).encode(&mut bytes);
    let mut m = Roster::default();
    assert_eq!(
        m.apply_publication("delta", &bytes, &k.public()),
        Err(RosterError::Malformed)
    );
    assert_eq!(
        m.apply_publication("other", &bytes, &k.public()),
        Err(RosterError::Malformed)
    );
    m.apply_publication("snapshot", &bytes, &k.public())
        .unwrap();
    assert_eq!(m, v1);
}

/// Whatever two rosters of one epoch, the delta from one applied to it gives the other, and
/// a member that applied a snapshot holds exactly the authority's roster.
#[test]
fn delta_to_then_apply_reaches_the_target() {
    fn prop(a: Arb, b: Arb) -> bool {
        let k = key(9);
        let (a, mut b) = (a.0, b.0);
        b.version = a.version + 1 + b.version % 3;
        let mut m = Roster::default();
        m.apply_snapshot(&a.snapshot(&k), &k.public()).unwrap();
        let ok_snapshot = m == a;
        let d = a.delta_to(&b, &k).unwrap();
        let mut bytes = Vec::new();
        d.encode(&mut bytes);
        m.apply_publication("delta", &bytes, &k.public()).unwrap();
        ok_snapshot && m == b
    }
    QuickCheck::new()
        .tests(40)
        .quickcheck(prop as fn(Arb, Arb) -> bool);
}
