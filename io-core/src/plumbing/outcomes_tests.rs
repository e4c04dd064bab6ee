//! Tests of the board of pipelined outcomes, alone and through the window's handles.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll, Wake};
use std::thread;

use pavillion_proto::endpoint::Receivers;
use quickcheck::quickcheck;

use super::*;
use crate::plumbing::link;
use crate::plumbing::window::{SendHandle, Slot, Window};

const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 7000);

/// A small deterministic generator: the stress tests replay the same schedule every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

quickcheck! {
    /// Whatever the order in which numbers get their outcomes, the board says exactly which
    /// have one, and keeps no more runs than there are gaps between them.
    fn the_runs_say_exactly_which_numbers_are_done(order: Vec<u8>) -> bool {
        let mut state = State::default();
        let mut model = BTreeSet::new();
        for id in order {
            let id = u64::from(id);
            state.mark(id);
            model.insert(id);
            let gaps = (0..=255).filter(|i| !model.contains(i)).count();
            if state.early.len() > gaps {
                return false;
            }
            let runs_ok = state
                .early
                .windows(2)
                .all(|w| w[0].0 < w[0].1 && w[0].1 < w[1].0);
            if !runs_ok || (0..300).any(|i| state.is_done(i) != model.contains(&i)) {
                return false;
            }
        }
        true
    }
}

/// The outcome the driver gives send `id` in the stress tests: most are plain deliveries,
/// some fail, some are delivered to another server (so kept on the board).
fn outcome_of(id: u64) -> Option<Outcome> {
    match id % 11 {
        3 => Some(Err(SendError::TimedOut)),
        7 => Some(Ok(Delivery {
            acked: Receivers::one(SocketAddr::new(PEER.ip(), 10_000 + (id % 1000) as u16)),
            missing: vec![PEER],
        })),
        _ => None,
    }
}

fn expected(id: u64) -> Outcome {
    outcome_of(id).unwrap_or(Ok(Delivery {
        acked: Receivers::one(PEER),
        missing: Vec::new(),
    }))
}

struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `handle` to the end, parking between polls.
fn block_on(mut handle: SendHandle) -> Outcome {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = std::pin::Pin::new(&mut handle).poll(&mut cx) {
            return v;
        }
        thread::park_timeout(Duration::from_secs(1));
    }
}

fn window(limit: usize) -> Window {
    let (link, _commands) = link::channel::<()>();
    Window::with_outcomes(limit, link.driver_thread())
}

/// A driver thread gives the outcomes of a window's sends in shuffled batches, out of order,
/// failures and other servers among them, while the sender waits on each handle in one of
/// four ways (blocking, async, polling `is_done`, or dropping it): every handle waited on
/// gets exactly its own outcome, and the board keeps nothing once the handles are gone.
#[test]
fn every_handle_gets_exactly_its_own_outcome() {
    const SENDS: u64 = 20_000;
    let w = window(64);
    let (tx, rx) = std::sync::mpsc::channel::<Slot>();
    let driver = {
        let w = w.clone();
        thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let mut held: Vec<Slot> = Vec::new();
            let mut batch = Vec::new();
            let mut scratch = Vec::new();
            let mut open = true;
            while open || !held.is_empty() {
                // Slots gather while they come; a pause (the sender waits) lets a batch go.
                match rx.recv_timeout(Duration::from_millis(1)) {
                    Ok(slot) => {
                        held.push(slot);
                        if held.len() < 8 {
                            continue;
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => open = false,
                    Err(_) => {}
                }
                // A batch of any of those held, in any order.
                for _ in 0..=rng.below(held.len().min(12)) {
                    if held.is_empty() {
                        break;
                    }
                    let slot = held.swap_remove(rng.below(held.len()));
                    let outcome = outcome_of(slot.id().0);
                    batch.push((slot, outcome));
                }
                w.complete(Some(PEER), &mut batch, &mut scratch);
            }
        })
    };
    let mut waiting: std::collections::VecDeque<SendHandle> = Default::default();
    let mut checked = 0;
    let check = |h: SendHandle, how: u64, checked: &mut u64| {
        let id = h.id().0;
        let got = match how {
            0 => h.wait_timeout(Duration::from_secs(10)),
            1 => block_on(h),
            2 => {
                while !h.is_done() {
                    thread::yield_now();
                }
                h.wait_timeout(Duration::ZERO)
            }
            _ => return,
        };
        assert_eq!(got, expected(id), "send #{id}");
        *checked += 1;
    };
    for _ in 0..SENDS {
        let mut slot = w.acquire();
        let h = w.handle(&mut slot).expect("a window with outcomes");
        tx.send(slot).unwrap();
        waiting.push_back(h);
        if waiting.len() >= 48 {
            let h = waiting.pop_front().unwrap();
            let how = h.id().0 % 4;
            check(h, how, &mut checked);
        }
    }
    drop(tx);
    while let Some(h) = waiting.pop_front() {
        check(h, 0, &mut checked);
    }
    driver.join().unwrap();
    assert!(checked > SENDS / 2);
    let board = w.inner_board();
    let state = board.lock();
    assert_eq!(state.done_below, SENDS);
    assert!(state.early.is_empty());
    assert!(state.kept.is_empty(), "{} outcomes kept", state.kept.len());
    assert!(state.gone.is_empty());
    assert_eq!(w.outstanding(), 0);
}

/// Sends still without an outcome when the driver stops are `Closed`, those with one keep
/// it, and a slot dropped before its send was queued (no handle) leaves no number open.
#[test]
fn a_closed_board_fails_what_has_no_outcome() {
    let w = window(8);
    let mut batch = Vec::new();
    let mut scratch = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..6 {
        let mut slot = w.acquire();
        handles.push(w.handle(&mut slot).unwrap());
        slots.push(slot);
    }
    // A slot taken and dropped without a handle: the number is not left open.
    drop(w.acquire());
    let mut later = w.acquire();
    let later_handle = w.handle(&mut later).unwrap();
    // 4 and 1 have outcomes, out of order; 0, 2, 3, 5 do not.
    let four = slots.remove(4);
    let one = slots.remove(1);
    batch.push((four, outcome_of(4)));
    batch.push((one, Some(Err(SendError::TimedOut))));
    w.complete(Some(PEER), &mut batch, &mut scratch);
    batch.push((later, None));
    w.complete(Some(PEER), &mut batch, &mut scratch);
    assert!(handles[1].is_done() && handles[4].is_done() && later_handle.is_done());
    assert!(!handles[0].is_done());
    w.close_outcomes();
    drop(slots);
    let got: Vec<_> = handles
        .into_iter()
        .map(|h| h.wait_timeout(Duration::from_secs(1)))
        .collect();
    assert_eq!(got[1], Err(SendError::TimedOut));
    assert_eq!(got[4], expected(4));
    for i in [0, 2, 3, 5] {
        assert_eq!(got[i], Err(SendError::Closed), "send #{i}");
    }
    // A plain delivery, read after the close.
    assert_eq!(
        later_handle.wait_timeout(Duration::ZERO),
        Ok(Delivery {
            acked: Receivers::one(PEER),
            missing: Vec::new()
        })
    );
    assert_eq!(w.outstanding(), 0);
    assert!(w.inner_board().lock().kept.is_empty());
}

/// A handle whose wait ended at its limit, then dropped, leaves nothing kept when its outcome
/// comes.
#[test]
fn a_dropped_handle_keeps_nothing() {
    let w = window(4);
    let mut slot = w.acquire();
    let h = w.handle(&mut slot).unwrap();
    assert_eq!(
        h.wait_timeout(Duration::from_millis(10)),
        Err(SendError::TimedOut)
    );
    let mut batch = vec![(slot, Some(Err(SendError::TimedOut)))];
    w.complete(Some(PEER), &mut batch, &mut Vec::new());
    let board = w.inner_board();
    assert!(board.lock().kept.is_empty());
    assert!(board.lock().gone.is_empty());
}
