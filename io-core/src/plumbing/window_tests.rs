//! Tests of the send window and the pipelined send handle.

use std::sync::Arc;
use std::task::Wake;
use std::thread;

use super::*;
use crate::plumbing::reply;

/// A minimal executor: parks the thread until the waker unparks it.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

#[test]
fn a_window_holds_at_most_its_limit_and_numbers_sends_in_order() {
    let w = Window::new(3);
    let slots: Vec<_> = (0..3).map(|_| w.try_acquire().unwrap()).collect();
    assert_eq!(
        slots.iter().map(|s| s.id().0).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(w.try_acquire().is_none());
    assert_eq!(w.outstanding(), 3);
    drop(slots);
    assert_eq!(w.outstanding(), 0);
    assert_eq!(w.try_acquire().unwrap().id(), SendId(3));
    // A limit of 0 would block every send for ever: it counts as 1.
    assert_eq!(Window::new(0).limit(), 1);
}

#[test]
fn a_blocked_sender_gets_the_first_freed_slot() {
    let w = Window::new(1);
    let held = w.acquire();
    let w2 = w.clone();
    let t = thread::spawn(move || w2.acquire().id());
    thread::sleep(Duration::from_millis(50));
    assert!(!t.is_finished(), "the window is full");
    drop(held);
    assert_eq!(t.join().unwrap(), SendId(1));
}

#[test]
fn waiting_for_idle_ends_when_the_last_slot_goes_or_at_the_limit() {
    let w = Window::new(4);
    assert!(w.wait_idle(Duration::ZERO));
    let a = w.acquire();
    let b = w.acquire();
    assert!(!w.wait_idle(Duration::from_millis(20)));
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        drop(a);
        thread::sleep(Duration::from_millis(20));
        drop(b);
    });
    assert!(w.wait_idle(Duration::from_secs(5)));
    assert_eq!(w.outstanding(), 0);
    t.join().unwrap();
}

#[test]
fn the_async_forms_wake_when_a_slot_is_freed() {
    let w = Window::new(1);
    let held = w.try_acquire().unwrap();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        drop(held);
    });
    let slot = block_on(w.acquire_async());
    t.join().unwrap();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        drop(slot);
    });
    block_on(w.idle());
    assert_eq!(w.outstanding(), 0);
    t.join().unwrap();
}

#[test]
fn a_handle_gives_the_outcome_blocking_or_as_a_future() {
    let w = Window::new(2);
    let (reply, pending) = reply::channel();
    let h = SendHandle::new(SendId(7), pending, w.clone());
    assert_eq!(h.id(), SendId(7));
    assert!(!h.is_done());
    reply.send(Ok(Delivery::default()));
    assert!(h.is_done());
    assert_eq!(h.wait(), Ok(Delivery::default()));

    let (reply, pending) = reply::channel::<Result<Delivery, SendError>>();
    let h = SendHandle::new(SendId(8), pending, w.clone());
    assert_eq!(
        h.wait_timeout(Duration::from_millis(10)),
        Err(SendError::TimedOut)
    );
    drop(reply);

    let (reply, pending) = reply::channel::<Result<Delivery, SendError>>();
    let h = SendHandle::new(SendId(9), pending, w);
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        drop(reply); // the endpoint closed
    });
    assert_eq!(block_on(h), Err(SendError::Closed));
    t.join().unwrap();
}

/// Slots are taken and freed without the lock, and waiters are found through a counter: a
/// wake-up lost between a waiter's last look and its sleep would leave a sender blocked for
/// ever. Four threads pass one slot around thousands of times, blocking and async; each is
/// bounded, so a lost wake-up fails instead of hanging.
#[test]
fn no_wake_up_is_lost_when_slots_are_freed_without_the_lock() {
    let w = Window::new(1);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let w = w.clone();
            thread::spawn(move || {
                for _ in 0..3000 {
                    let slot = if i % 2 == 0 {
                        w.acquire()
                    } else {
                        block_on(w.acquire_async())
                    };
                    drop(slot);
                }
            })
        })
        .collect();
    join_within_a_minute(threads);
    assert_eq!(w.outstanding(), 0);
    assert!(w.wait_idle(Duration::ZERO));
}

/// A sender blocked on a full window is woken once a batch of slots is free, not at every
/// freed slot: woken at every outcome, it would sleep and wake once per message.
#[test]
fn a_blocked_sender_wakes_at_the_low_water_mark() {
    // A window of 64 wakes a waiter once 4 slots are free.
    let w = Window::new(64);
    let mut held: Vec<_> = (0..64).map(|_| w.acquire()).collect();
    let w2 = w.clone();
    let t = thread::spawn(move || w2.acquire().id());
    while w.inner.waiting.load(Ordering::SeqCst) == 0 {
        thread::sleep(Duration::from_millis(1));
    }
    held.truncate(61);
    thread::sleep(Duration::from_millis(50));
    assert!(!t.is_finished(), "woken before the low-water mark");
    held.truncate(60);
    assert_eq!(t.join().unwrap(), SendId(64));
    assert_eq!(w.outstanding(), 60);
}

/// A woken thread no longer counts as waiting: the slots freed before it runs again do not
/// wake it again, each with a system call.
#[test]
fn a_woken_sender_is_woken_once() {
    let w = Window::new(64);
    let mut held: Vec<_> = (0..64).map(|_| w.acquire()).collect();
    let w2 = w.clone();
    let t = thread::spawn(move || drop(w2.acquire()));
    while w.inner.waiting.load(Ordering::SeqCst) == 0 {
        thread::sleep(Duration::from_millis(1));
    }
    // Freed at once, faster than the woken thread gets to run.
    held.clear();
    t.join().unwrap();
    assert_eq!(w.inner.lock().wakeups, 1);
    assert_eq!(w.inner.waiting.load(Ordering::SeqCst), 0);
}

/// With a low-water mark, a blocked sender is woken by whichever freed slot takes the window
/// down to it, and uncounted then: a wake-up lost there would leave senders blocked for ever.
/// Two senders keep a window of 64 full; a third thread frees their slots in bursts of any
/// size; each is bounded, so a lost wake-up fails instead of hanging.
#[test]
fn no_wake_up_is_lost_at_the_low_water_mark() {
    let w = Window::new(64);
    let (tx, rx) = std::sync::mpsc::channel::<Slot>();
    let senders: Vec<_> = (0..2)
        .map(|i| {
            let (w, tx) = (w.clone(), tx.clone());
            thread::spawn(move || {
                for _ in 0..20_000 {
                    let slot = if i == 0 {
                        w.acquire()
                    } else {
                        block_on(w.acquire_async())
                    };
                    if tx.send(slot).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let freer = thread::spawn(move || {
        let mut held = Vec::new();
        let mut burst = 1;
        loop {
            // Blocks only with nothing to free: the senders wait for this thread.
            if held.is_empty() {
                match rx.recv() {
                    Ok(slot) => held.push(slot),
                    Err(_) => break,
                }
            }
            held.extend(rx.try_iter());
            // Bursts of 1 to 9 slots, oldest first.
            let n = burst.min(held.len());
            held.drain(..n);
            burst = burst % 9 + 1;
        }
    });
    join_within_a_minute(senders);
    freer.join().unwrap();
    assert_eq!(w.outstanding(), 0);
}

/// Joins the sender threads of a wake-up test, failing (instead of hanging the suite) if one
/// still waits after a minute: a lost wake-up leaves its sender asleep for good.
fn join_within_a_minute(threads: Vec<thread::JoinHandle<()>>) {
    let start = Instant::now();
    for t in threads {
        while !t.is_finished() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "a waiting sender was never woken"
            );
            thread::sleep(Duration::from_millis(1));
        }
        t.join().unwrap();
    }
}
