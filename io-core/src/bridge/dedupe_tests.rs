//! Tests of the pav-id and of the standby's table.

use super::*;
use pavillion_proto::ClientId;
use quickcheck::{quickcheck, TestResult};
use std::collections::HashSet;

fn facts<'a>(sender: &'a PeerId, counter: u64, payload: &'a [u8]) -> MessageFacts<'a> {
    MessageFacts {
        site: "plant-a",
        sender,
        counter: Counter(counter),
        target: "sensors",
        name: "temp",
        payload,
    }
}

#[test]
fn two_bridges_compute_the_same_id_for_one_message() {
    // Two bridges each see the multicast message: the same sender and counter, their own
    // copy of the content. They share nothing but the message.
    let at_gw1 = PeerId::Client(ClientId(*b"device-000000001"));
    let at_gw2 = PeerId::Client(ClientId(*b"device-000000001"));
    let payload1 = b"21.5".to_vec();
    let payload2 = b"21.5".to_vec();
    let a = PavId::of(&facts(&at_gw1, 77, &payload1));
    let b = PavId::of(&facts(&at_gw2, 77, &payload2));
    assert_eq!(a, b);
    // Pinned, so that a change of the hash's input (which would make bridges of two
    // versions disagree) is seen here first.
    assert_eq!(a.to_string(), "6f693b12311941fab7a58d71b42c87bf");
    assert_eq!(a.to_string().parse::<PavId>(), Ok(a));
    assert_ne!(a, PavId::of(&facts(&at_gw1, 78, &payload1)));
}

#[test]
fn a_pav_id_property_is_exactly_32_hex_digits() {
    assert_eq!("".parse::<PavId>(), Err(BadPavId));
    assert_eq!("00".parse::<PavId>(), Err(BadPavId));
    assert_eq!("zz".repeat(16).parse::<PavId>(), Err(BadPavId));
    assert_eq!("ab".repeat(16).parse::<PavId>(), Ok(PavId([0xab; 16])));
}

quickcheck! {
    /// Any field that differs gives another id, including content moved between fields
    /// (the length prefixes): ("ab", "c") is not ("a", "bc").
    fn different_messages_have_different_ids(
        a: (String, String, Vec<u8>, u64), b: (String, String, Vec<u8>, u64), guest: bool
    ) -> TestResult {
        let sender = if guest { PeerId::Guest([7; 32]) } else { PeerId::Client(ClientId([7; 16])) };
        let id = |m: &(String, String, Vec<u8>, u64)| PavId::of(&MessageFacts {
            site: "s", sender: &sender, counter: Counter(m.3), target: &m.0, name: &m.1, payload: &m.2,
        });
        if a == b {
            return TestResult::from_bool(id(&a) == id(&b));
        }
        TestResult::from_bool(id(&a) != id(&b))
    }

    fn ids_print_and_parse_back(bytes: (u64, u64)) -> bool {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&bytes.0.to_le_bytes());
        b[8..].copy_from_slice(&bytes.1.to_le_bytes());
        let id = PavId(b);
        id.to_string().len() == 32 && id.to_string().parse() == Ok(id)
    }
}

fn pid(n: u8) -> PavId {
    PavId([n; 16])
}

#[test]
fn a_held_message_completes_when_the_leaders_publish_is_seen() {
    let now = Instant::now();
    let mut s = Standby::new(Duration::from_millis(100), Duration::from_secs(5), 8);
    assert_eq!(s.hold(now, pid(1), "m1"), Hold::Held);
    assert_eq!(s.seen(now, pid(1)), Some("m1"));
    assert_eq!(s.held(), 0);
    assert!(s.expire(now + Duration::from_secs(1)).is_empty());
}

#[test]
fn a_publish_seen_before_its_message_completes_it_on_arrival() {
    let now = Instant::now();
    let mut s = Standby::new(Duration::from_millis(100), Duration::from_secs(5), 8);
    assert_eq!(s.seen(now, pid(2)), None);
    assert_eq!(s.hold(now, pid(2), "m2"), Hold::Published("m2"));
    // Remembered only for `remember`: later, the same id is a new message to hold.
    assert_eq!(s.seen(now, pid(3)), None);
    assert_eq!(
        s.hold(now + Duration::from_secs(5), pid(3), "m3"),
        Hold::Held
    );
}

#[test]
fn an_unseen_message_is_published_when_its_wait_ends_or_the_leader_goes() {
    let now = Instant::now();
    let ms = Duration::from_millis;
    let mut s = Standby::new(ms(100), Duration::from_secs(5), 8);
    s.hold(now, pid(1), 1);
    s.hold(now + ms(50), pid(2), 2);
    assert_eq!(s.next_deadline(), Some(now + ms(100)));
    assert!(s.expire(now + ms(99)).is_empty());
    assert_eq!(s.expire(now + ms(100)), vec![(pid(1), 1)]);
    assert_eq!(s.release_all(), vec![(pid(2), 2)]);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn a_full_table_publishes_at_once() {
    let now = Instant::now();
    let mut s = Standby::new(Duration::from_millis(100), Duration::from_secs(5), 1);
    assert_eq!(s.hold(now, pid(1), 1), Hold::Held);
    assert_eq!(s.hold(now, pid(2), 2), Hold::PublishNow(2));
    assert_eq!(s.hold(now, pid(1), 3), Hold::PublishNow(3));
}

quickcheck! {
    /// Never zero: every message handed to the standby comes back exactly once, either to
    /// publish or to complete; and it comes back "complete without publishing" only if a
    /// publish with its id was seen. The tables stay within their bound.
    fn every_message_comes_back_once_and_is_dropped_only_if_seen_published(
        ops: Vec<(u8, u8, u8)>, cap: u8
    ) -> bool {
        let cap = usize::from(cap % 6);
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut s = Standby::new(Duration::from_millis(20), Duration::from_millis(50), cap);
        let mut clock = 0u64;
        let mut given = HashSet::new();
        let mut back = HashSet::new();
        let mut seen_ids = HashSet::new();
        let mut completed_unpublished = Vec::new();
        let mut next = 0u32;
        for (op, idn, dt) in ops {
            clock += u64::from(dt % 16);
            let now = ms(clock);
            let id = pid(idn % 8);
            match op % 4 {
                0 => {
                    next += 1;
                    given.insert(next);
                    match s.hold(now, id, (id, next)) {
                        Hold::Held => {}
                        Hold::PublishNow(v) => { back.insert(v.1); }
                        Hold::Published(v) => { back.insert(v.1); completed_unpublished.push(v); }
                    }
                }
                1 => {
                    seen_ids.insert(id);
                    if let Some(v) = s.seen(now, id) {
                        if !back.insert(v.1) { return false; }
                        completed_unpublished.push(v);
                    }
                }
                2 => {
                    for (_, v) in s.expire(now) {
                        if !back.insert(v.1) { return false; }
                    }
                }
                _ => {
                    if idn % 8 == 0 {
                        for (_, v) in s.release_all() {
                            if !back.insert(v.1) { return false; }
                        }
                    }
                }
            }
            if s.held() > cap || s.seen.len() > cap || s.deadlines.len() != s.held.len() {
                return false;
            }
        }
        for (_, v) in s.release_all() {
            if !back.insert(v.1) { return false; }
        }
        given == back && completed_unpublished.iter().all(|(id, _)| seen_ids.contains(id))
    }
}
