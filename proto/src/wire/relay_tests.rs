use super::*;
use alloc::vec;
use quickcheck::{Arbitrary, Gen, QuickCheck};

fn ip(g: &mut Gen) -> IpAddr {
    if bool::arbitrary(g) {
        IpAddr::V4(Ipv4Addr::from(u32::arbitrary(g)))
    } else {
        IpAddr::V6(Ipv6Addr::from(u128::arbitrary(g)))
    }
}

/// An owned `carry` frame, since quickcheck values must be `'static`.
#[derive(Clone, Debug)]
struct CarrySpec {
    hops: u8,
    origin: [u8; 16],
    instance: u32,
    seq: u64,
    port: u16,
    source: SocketAddr,
    scope: Scope,
    payload: Vec<u8>,
}

impl Arbitrary for CarrySpec {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut origin = [0u8; 16];
        for b in &mut origin {
            *b = u8::arbitrary(g);
        }
        CarrySpec {
            hops: u8::arbitrary(g).max(1),
            origin,
            instance: u32::arbitrary(g),
            seq: u64::arbitrary(g),
            port: u16::arbitrary(g),
            source: SocketAddr::new(ip(g), u16::arbitrary(g)),
            scope: if bool::arbitrary(g) {
                Scope::Broadcast
            } else {
                Scope::Multicast(ip(g))
            },
            payload: Vec::arbitrary(g),
        }
    }
}

impl CarrySpec {
    fn frame(&self) -> Carry<'_> {
        Carry {
            hops: self.hops,
            origin: RelayId(ClientId(self.origin)),
            instance: self.instance,
            seq: self.seq,
            port: self.port,
            source: self.source,
            scope: self.scope,
            payload: &self.payload,
        }
    }
}

#[derive(Clone, Debug)]
struct MembersSpec(Members);

impl Arbitrary for MembersSpec {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = 1 + usize::arbitrary(g) % 8;
        let entries = (0..n)
            .map(|_| {
                let mut key = [0u8; 32];
                for b in &mut key {
                    *b = u8::arbitrary(g);
                }
                let seg: String = String::arbitrary(g).chars().take(20).collect();
                Member {
                    public: PublicKey::from(key),
                    addr: bool::arbitrary(g).then(|| SocketAddr::new(ip(g), u16::arbitrary(g))),
                    up: bool::arbitrary(g),
                    segment: seg,
                }
            })
            .collect();
        MembersSpec(Members { entries })
    }
}

#[test]
fn carry_round_trips() {
    fn prop(s: CarrySpec) -> bool {
        let f = s.frame();
        let mut buf = vec![0u8; f.buffer_len()];
        f.emit(&mut buf) == Ok(buf.len()) && Carry::parse(&buf) == Ok(f)
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(CarrySpec) -> bool);
}

#[test]
fn members_round_trip() {
    fn prop(s: MembersSpec) -> bool {
        let mut buf = vec![0u8; s.0.buffer_len()];
        s.0.emit(&mut buf) == Ok(buf.len()) && Members::parse(&buf).as_ref() == Ok(&s.0)
    }
    QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(MembersSpec) -> bool);
}

#[test]
fn any_bytes_parse_or_fail_typed() {
    // And a frame that parses re-emits exactly its bytes: one encoding per frame.
    fn prop(mut bytes: Vec<u8>) -> bool {
        if let Some(b) = bytes.first_mut() {
            *b = VERSION;
        }
        let carry = Carry::parse(&bytes).map_or(true, |f| {
            let mut buf = vec![0u8; f.buffer_len()];
            f.emit(&mut buf) == Ok(bytes.len()) && buf == bytes
        });
        let members = Members::parse(&bytes).map_or(true, |f| {
            let mut buf = vec![0u8; f.buffer_len()];
            f.emit(&mut buf) == Ok(bytes.len()) && buf == bytes
        });
        carry && members
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn every_truncation_of_a_frame_is_typed() {
    let s = CarrySpec {
        hops: 1,
        origin: [7; 16],
        instance: 3,
        seq: 9,
        port: 5076,
        source: "10.0.0.1:4000".parse().unwrap(),
        scope: Scope::Multicast("239.1.2.3".parse().unwrap()),
        payload: vec![],
    };
    let f = s.frame();
    let mut buf = vec![0u8; f.buffer_len()];
    f.emit(&mut buf).unwrap();
    for n in 0..buf.len() {
        assert_eq!(Carry::parse(&buf[..n]), Err(FrameError::Truncated), "{n}");
    }
    let m = Members {
        entries: vec![Member {
            public: PublicKey::from([1; 32]),
            addr: Some("10.0.0.1:7124".parse().unwrap()),
            up: true,
            segment: "seg".into(),
        }],
    };
    let mut buf = vec![0u8; m.buffer_len()];
    m.emit(&mut buf).unwrap();
    for n in 2..buf.len() {
        assert_eq!(Members::parse(&buf[..n]), Err(FrameError::Truncated), "{n}");
    }
    buf.push(0);
    assert_eq!(Members::parse(&buf), Err(FrameError::BadCount));
}

#[test]
fn layout_is_as_specified() {
    let f = Carry {
        hops: 1,
        origin: RelayId(ClientId([0xaa; 16])),
        instance: 0x0403_0201,
        seq: 5,
        port: 5076,
        source: "10.0.0.1:4000".parse().unwrap(),
        scope: Scope::Broadcast,
        payload: b"hi",
    };
    let mut buf = vec![0u8; f.buffer_len()];
    f.emit(&mut buf).unwrap();
    let expected = hex::decode(concat!(
        "01",                               // version
        "01",                               // hops
        "00",                               // broadcast
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", // origin
        "01020304",                         // instance
        "0500000000000000",                 // seq
        "d413",                             // port 5076
        "04",                               // IPv4 source
        "0a000001",                         // 10.0.0.1
        "a00f",                             // port 4000
        "6869",                             // payload
    ))
    .unwrap();
    assert_eq!(buf, expected);
}

#[test]
fn malformed_fields_are_typed() {
    let s = CarrySpec {
        hops: 1,
        origin: [7; 16],
        instance: 3,
        seq: 9,
        port: 5076,
        source: "10.0.0.1:4000".parse().unwrap(),
        scope: Scope::Broadcast,
        payload: vec![1, 2],
    };
    let f = s.frame();
    let mut buf = vec![0u8; f.buffer_len()];
    f.emit(&mut buf).unwrap();
    let bad = |i: usize, v: u8| {
        let mut b = buf.clone();
        b[i] = v;
        Carry::parse(&b).map(|_| ())
    };
    assert_eq!(bad(0, 2), Err(FrameError::BadVersion(2)));
    assert_eq!(bad(1, 0), Err(FrameError::ZeroHops));
    assert_eq!(bad(2, 5), Err(FrameError::BadKind(5)));
    assert_eq!(bad(33, 5), Err(FrameError::BadFamily(5)));
    let zero = Carry { hops: 0, ..f };
    assert_eq!(zero.emit(&mut buf), Err(FrameError::ZeroHops));
    assert_eq!(f.emit(&mut [0u8; 3]), Err(FrameError::BufferTooSmall));

    let m_up = |seg: &[u8], count: u8, up: u8| {
        let mut b = vec![VERSION, count];
        b.extend_from_slice(&[1; 32]);
        b.push(0);
        b.push(up);
        b.push(seg.len() as u8);
        b.extend_from_slice(seg);
        Members::parse(&b)
    };
    let m = |seg: &[u8], count: u8| m_up(seg, count, 1);
    assert!(m(b"ok", 1).is_ok());
    assert_eq!(m_up(b"ok", 1, 2), Err(FrameError::BadUp(2)));
    assert_eq!(m(&[0xff], 1), Err(FrameError::InvalidUtf8));
    assert_eq!(m(&[b'a'; 65], 1), Err(FrameError::SegmentTooLong));
    assert_eq!(m(b"ok", 0), Err(FrameError::BadCount));
    assert_eq!(m(b"ok", 2), Err(FrameError::Truncated));
    assert_eq!(m(b"ok", MAX_MEMBERS as u8 + 1), Err(FrameError::BadCount));
    assert_eq!(Members::parse(&[2, 1]), Err(FrameError::BadVersion(2)));
}

#[test]
fn the_largest_members_frame_fits() {
    let entry = Member {
        public: PublicKey::from([1; 32]),
        addr: Some("[::1]:7124".parse().unwrap()),
        up: true,
        segment: "x".repeat(MAX_SEGMENT_LEN),
    };
    let m = Members {
        entries: vec![entry; MAX_MEMBERS],
    };
    assert!(m.buffer_len() <= MAX_MEMBERS_FRAME);
    let mut buf = vec![0u8; m.buffer_len()];
    assert_eq!(m.emit(&mut buf), Ok(buf.len()));
}
