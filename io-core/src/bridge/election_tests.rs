//! Tests of the leader election: unit cases and the agreement property.

use super::*;
use quickcheck::{quickcheck, TestResult};

fn id(n: u8) -> BridgeId {
    BridgeId(format!("gw{n}"))
}

#[test]
fn the_smallest_online_bridge_leads_and_a_disconnected_one_knows_nothing() {
    let mut e = Election::new(id(2), 16);
    assert_eq!(e.role(), Role::Disconnected);
    assert_eq!(e.on_connected(), Some(Role::Leader));
    assert_eq!(
        e.on_state(id(1), Presence::Online),
        Some(Role::Standby { leader: id(1) })
    );
    // A larger id changes nothing.
    assert_eq!(e.on_state(id(3), Presence::Online), None);
    // The leader's last will: we lead.
    assert_eq!(e.on_state(id(1), Presence::Offline), Some(Role::Leader));
    assert!(e.is_leader());
    assert_eq!(e.on_lost(), Some(Role::Disconnected));
    assert!(!e.is_leader());
    assert_eq!(e.leader(), None);
}

#[test]
fn our_own_retained_state_is_not_our_state() {
    let mut e = Election::new(id(5), 1);
    e.on_connected();
    // Our last will from an earlier connection, still retained when we subscribe: we are
    // connected, so we still count as online.
    assert_eq!(e.on_state(id(5), Presence::Offline), None);
    assert!(e.is_leader());
    // Our own `online` takes no room in the bounded view, so a smaller bridge still leads.
    e.on_state(id(5), Presence::Online);
    e.on_state(id(1), Presence::Online);
    assert_eq!(e.leader(), Some(&id(1)));
    assert_eq!(e.ignored(), 0);
}

#[test]
fn only_an_exact_online_payload_makes_a_leader() {
    assert_eq!(Presence::of_payload(b"online"), Presence::Online);
    assert_eq!(Presence::of_payload(b"offline"), Presence::Offline);
    assert_eq!(Presence::of_payload(b""), Presence::Offline);
    assert_eq!(Presence::of_payload(b"Online "), Presence::Offline);
    assert_eq!(
        Presence::of_payload(Presence::Online.payload()),
        Presence::Online
    );
}

#[test]
fn the_view_is_bounded() {
    let mut e = Election::new(id(9), 2);
    e.on_connected();
    e.on_state(id(5), Presence::Online);
    e.on_state(id(6), Presence::Online);
    e.on_state(id(1), Presence::Online);
    assert_eq!(e.ignored(), 1);
    assert_eq!(e.leader(), Some(&id(5)));
    // A bridge already known can still change state.
    e.on_state(id(5), Presence::Offline);
    assert_eq!(e.leader(), Some(&id(6)));
}

/// One bridge's input: noise (stale states, connection flaps), with each other bridge's
/// final state inserted somewhere and nothing about that bridge after it, and its own final
/// connection state last.
fn history(
    me: u8,
    world: &[bool],
    noise: &[(u8, bool)],
    spots: &[u8],
) -> Vec<(u8, Option<Presence>)> {
    let n = world.len() as u8;
    // `None` as a state means our own connection flapping: a `(me, state)` pair.
    let mut events: Vec<(u8, Option<Presence>)> = noise
        .iter()
        .map(|&(b, on)| {
            let b = b % n;
            let state = if on {
                Presence::Online
            } else {
                Presence::Offline
            };
            if b == me {
                (b, if on { None } else { Some(Presence::Offline) })
            } else {
                (b, Some(state))
            }
        })
        .collect();
    for b in 0..n {
        if b == me {
            continue;
        }
        let spot =
            usize::from(spots.get(usize::from(b)).copied().unwrap_or(0)) % (events.len() + 1);
        let mut kept: Vec<_> = events[..spot].to_vec();
        kept.extend(events[spot..].iter().filter(|e| e.0 != b).copied());
        let state = if world[usize::from(b)] {
            Presence::Online
        } else {
            Presence::Offline
        };
        kept.insert(spot, (b, Some(state)));
        events = kept;
    }
    events
}

fn run(me: u8, world: &[bool], events: &[(u8, Option<Presence>)]) -> Option<Election> {
    let mut e = Election::new(id(me), 64);
    for &(b, state) in events {
        match state {
            // Our own connection flapping up or down.
            None => {
                e.on_connected();
            }
            Some(s) if b == me => {
                let _ = s;
                e.on_lost();
            }
            Some(s) => {
                e.on_state(id(b), s);
            }
        }
        // A view never holds two leaders: its role and its leader say the same.
        let consistent = match (e.leader(), e.role()) {
            (None, Role::Disconnected) => true,
            (Some(l), Role::Leader) => *l == id(me),
            (Some(l), Role::Standby { leader }) => *l == leader && leader != id(me),
            _ => false,
        };
        if !consistent {
            return None;
        }
    }
    if world[usize::from(me)] {
        e.on_connected();
    } else {
        e.on_lost();
    }
    Some(e)
}

quickcheck! {
    /// Views that saw the same final retained states, in any order and after any stale ones,
    /// agree on one leader (the smallest online id), and exactly one of them leads; a
    /// disconnected bridge leads nothing.
    fn views_that_saw_the_same_states_agree(
        world: Vec<bool>, noise: Vec<(u8, bool)>, spots: Vec<u8>, shift: u8
    ) -> TestResult {
        if world.is_empty() || world.len() > 8 {
            return TestResult::discard();
        }
        let n = world.len() as u8;
        let expected = (0..n).find(|&b| world[usize::from(b)]).map(id);
        let mut leaders = 0;
        for me in 0..n {
            // Each view sees the noise and the final states in its own order.
            let rotated: Vec<_> = noise
                .iter()
                .cycle()
                .skip(usize::from(shift.wrapping_mul(me)) % noise.len().max(1))
                .take(noise.len())
                .copied()
                .collect();
            let my_spots: Vec<u8> = spots.iter().map(|s| s.wrapping_add(me)).collect();
            let events = history(me, &world, &rotated, &my_spots);
            let Some(view) = run(me, &world, &events) else {
                return TestResult::failed();
            };
            if world[usize::from(me)] {
                if view.leader() != expected.as_ref() {
                    return TestResult::failed();
                }
            } else if view.role() != Role::Disconnected {
                return TestResult::failed();
            }
            leaders += usize::from(view.is_leader());
        }
        TestResult::from_bool(leaders == usize::from(expected.is_some()))
    }
}
