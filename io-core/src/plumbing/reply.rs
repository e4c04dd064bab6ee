//! A one-answer slot between the driver and one waiting caller.
//!
//! The driver keeps the [`Reply`] until the outcome is known and then fills it; the caller
//! holds the [`Pending`] and waits on it either by blocking ([`Pending::wait`], the std
//! adapter) or by awaiting it (it is a [`Future`], the async adapter). This is the one place
//! where the two runtimes wait differently; everything that decides *what* the answer is lives
//! in the routers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A new slot: the driver's end and the caller's end.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use pavillion_io::plumbing::reply;
///
/// let (reply, pending) = reply::channel();
/// std::thread::spawn(move || reply.send(42));
/// assert_eq!(pending.wait(Duration::from_secs(5)), Ok(42));
/// ```
pub fn channel<T>() -> (Reply<T>, Pending<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State {
            value: None,
            sender_gone: false,
            receiver_gone: false,
            blocked: false,
            waker: None,
        }),
        ready: Condvar::new(),
        settled: AtomicBool::new(false),
    });
    (
        Reply { slot: slot.clone() },
        Pending {
            slot,
            answered: false,
        },
    )
}

/// The driver's end: fills the slot once. Dropping it unfilled tells the caller the endpoint
/// closed.
#[derive(Debug)]
pub struct Reply<T> {
    slot: Arc<Slot<T>>,
}

/// The caller's end: waits for the answer. Dropping it tells the driver nobody waits any more
/// ([`Reply::is_closed`]).
#[derive(Debug)]
pub struct Pending<T> {
    slot: Arc<Slot<T>>,
    /// The answer was taken: the driver's end is gone, and nothing is left to tell it.
    answered: bool,
}

/// Why a wait ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The driver dropped the reply unfilled: the endpoint closed.
    #[error("the endpoint closed")]
    Closed,
    /// The blocking wait's limit passed first.
    #[error("timed out")]
    TimedOut,
}

impl<T> Reply<T> {
    /// Fills the slot and wakes the caller. A caller that stopped waiting is not an error: the
    /// value is dropped.
    pub fn send(self, value: T) {
        let mut state = self.slot.lock();
        if !state.receiver_gone {
            state.value = Some(value);
        }
        // Gone as of now (the caller reads the value first): `Drop` then has nothing to do
        // and does not take the lock again.
        state.sender_gone = true;
        self.slot.settled.store(true, Ordering::Release);
        let waker = state.waker.take();
        let blocked = state.blocked;
        drop(state);
        // A notify is a system call even with nobody waiting; a caller that received its own
        // answer (or has not started waiting) does not need one.
        if blocked {
            self.slot.ready.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the caller has stopped waiting (dropped its [`Pending`]).
    pub fn is_closed(&self) -> bool {
        self.slot.lock().receiver_gone
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        // Answered ([`Reply::send`] marked the sender gone already).
        if self.slot.settled.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.slot.lock();
        state.sender_gone = true;
        self.slot.settled.store(true, Ordering::Release);
        let waker = state.waker.take();
        let blocked = state.blocked;
        drop(state);
        if blocked {
            self.slot.ready.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Pending<T> {
    /// Whether the wait is over: the answer is in, or the endpoint dropped the reply.
    pub fn is_settled(&self) -> bool {
        // Set under the lock with the value or the sender's end gone, and never cleared: a
        // caller polling many pending answers takes no lock.
        self.slot.settled.load(Ordering::Acquire)
    }

    /// Blocks until the answer arrives, at most `limit`.
    ///
    /// # Errors
    /// [`WaitError::Closed`] if the endpoint dropped the reply, [`WaitError::TimedOut`] after
    /// `limit`.
    pub fn wait(mut self, limit: Duration) -> Result<T, WaitError> {
        let deadline = Instant::now().checked_add(limit);
        let mut state = self.slot.lock();
        loop {
            if let Some(v) = state.value.take() {
                drop(state);
                self.answered = true;
                return Ok(v);
            }
            if state.sender_gone {
                return Err(WaitError::Closed);
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Err(WaitError::TimedOut),
                },
                // A limit past the clock's range: wait as long as the driver lives.
                None => Duration::from_secs(3600),
            };
            // Set and cleared under the lock, so a sender either sees it and notifies, or
            // filled the slot before this wait began and the loop finds the value.
            state.blocked = true;
            state = self
                .slot
                .ready
                .wait_timeout(state, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
            state.blocked = false;
        }
    }
}

impl<T, E: From<WaitError>> Pending<Result<T, E>> {
    /// Blocks for an outcome that is itself a `Result`, folding a failed wait into the
    /// outcome's error type.
    ///
    /// # Errors
    /// The outcome's error, or the wait's, converted.
    pub fn wait_outcome(self, limit: Duration) -> Result<T, E> {
        self.wait(limit).unwrap_or_else(|e| Err(e.into()))
    }

    /// Awaits an outcome that is itself a `Result`, folding a closed endpoint into the
    /// outcome's error type.
    ///
    /// # Errors
    /// The outcome's error, or [`WaitError::Closed`] converted.
    pub async fn outcome(self) -> Result<T, E> {
        self.await.unwrap_or_else(|e| Err(e.into()))
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, WaitError>;

    /// Ready with the answer, or with [`WaitError::Closed`]; never `TimedOut` (an async
    /// caller bounds its own wait, or relies on the endpoint's deadline).
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.lock();
        if let Some(v) = state.value.take() {
            drop(state);
            self.answered = true;
            return Poll::Ready(Ok(v));
        }
        if state.sender_gone {
            return Poll::Ready(Err(WaitError::Closed));
        }
        match &mut state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let mut state = self.slot.lock();
        state.receiver_gone = true;
        state.value = None;
    }
}

#[derive(Debug)]
struct Slot<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    /// The value is in or the sender's end is gone ([`Pending::is_settled`]).
    settled: AtomicBool,
}

#[derive(Debug)]
struct State<T> {
    value: Option<T>,
    sender_gone: bool,
    receiver_gone: bool,
    /// A thread blocks in [`Pending::wait`] and needs the condition variable's notify.
    blocked: bool,
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    /// The state; a panic elsewhere while holding the lock leaves it consistent (every update
    /// is a single field write), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_timeouts_and_closing() {
        let (reply, pending) = channel::<u8>();
        reply.send(1);
        assert_eq!(pending.wait(Duration::ZERO), Ok(1));

        let (reply, pending) = channel::<u8>();
        assert_eq!(
            pending.wait(Duration::from_millis(10)),
            Err(WaitError::TimedOut)
        );
        // The caller gave up: the driver can tell.
        assert!(reply.is_closed());

        let (reply, pending) = channel::<u8>();
        drop(reply);
        assert_eq!(pending.wait(Duration::from_secs(5)), Err(WaitError::Closed));
    }

    #[test]
    fn an_outcome_folds_the_wait_error() {
        let (reply, pending) = channel::<Result<u8, crate::CallError>>();
        drop(reply);
        assert_eq!(
            pending.wait_outcome(Duration::from_secs(1)),
            Err(crate::CallError::Closed)
        );
    }

    #[test]
    fn the_future_wakes_when_filled_from_another_thread() {
        let (reply, pending) = channel::<&str>();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            reply.send("done");
        });
        assert_eq!(block_on(pending), Ok("done"));
        t.join().unwrap();
        let (reply, pending) = channel::<&str>();
        drop(reply);
        assert_eq!(block_on(pending), Err(WaitError::Closed));
    }

    /// A minimal executor: parks the thread until the waker unparks it.
    fn block_on<F: Future>(fut: F) -> F::Output {
        use std::task::Wake;
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
}
