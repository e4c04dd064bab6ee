//! Pipelined sends: the send window that bounds how many messages a client has queued or in
//! flight without waiting for them, and the [`SendHandle`] of one such message.
//!
//! A pipelined send takes a [`Slot`] of the window before its command is queued. The slot
//! travels with the command to the driver, which keeps it beside the message's reply slot (a
//! server), or as the message's ticket on the window's board of outcomes (a client,
//! [`Window::with_outcomes`], see [`super::outcomes`]), and drops it only once the outcome is
//! known (acknowledged, failed, timed out, or the endpoint
//! closed). So the window counts messages whose outcome is still open, whether or not the
//! application still holds their handles: dropping a handle never frees its slot early (the
//! message still occupies the endpoint) and never leaks it (the driver frees it with the
//! outcome). Memory a sender can make us hold is therefore bounded by the window, whatever the
//! server does.
//!
//! Both runtimes share this: a blocking sender waits on the window's condition variable
//! ([`Window::acquire`]), an async one awaits [`Window::acquire_async`]; a full window is
//! [`Window::try_acquire`]'s `None`, which the adapters report as
//! [`SendError::WouldBlock`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::link::DriverThread;
use super::outcomes::{Board, Outcome};
use super::reply::Pending;
use super::Delivery;
use crate::error::SendError;

/// The number of a pipelined send on its client: 0 for the first, then in the order the sends
/// took their window slots. It identifies a [`SendHandle`] to the application (to match
/// outcomes that arrive in any order with what was sent); it is not the endpoint's
/// `MessageId`, which is chosen on the driver after the send returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendId(pub u64);

impl std::fmt::Display for SendId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A client's send window: at most `limit` pipelined messages without an outcome.
///
/// Cloning shares the window.
///
/// # Examples
/// ```
/// use pavillion_io::plumbing::window::Window;
///
/// let window = Window::new(2);
/// let a = window.try_acquire().expect("room");
/// let _b = window.try_acquire().expect("room");
/// assert!(window.try_acquire().is_none(), "full");
/// drop(a); // the outcome of the first message is known
/// assert!(window.try_acquire().is_some());
/// ```
#[derive(Clone, Debug)]
pub struct Window {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    /// A freed slot wakes those waiting for room only once at most this many are in use (a
    /// batch of outcomes later): woken at every outcome, a sender that is ahead of the driver
    /// would sleep and wake once per message, a system call on each side, and send one message
    /// per wake-up. Those waiting for the window to empty are woken at 0, which is below it.
    low_water: usize,
    /// Slots in use. Taken and freed without the lock (a pipelined sender takes one per
    /// message on its thread and the driver frees one per outcome on its own: a shared lock
    /// there would bounce between the two cores every message); the lock guards the waiters.
    outstanding: AtomicUsize,
    /// The next [`SendId`].
    next: AtomicU64,
    /// Threads blocked plus tasks registered, mirrored from `state` under its lock: a freed
    /// slot takes the lock only when somebody waits.
    waiting: AtomicUsize,
    state: Mutex<State>,
    /// Signalled when a slot is freed while a thread waits (for room or for none in use).
    changed: Condvar,
    /// Which thread is the driver's, where waiting for an outcome would never end.
    driver: Option<DriverThread>,
    /// The outcomes of the sends, by number, for a window made with
    /// [`Window::with_outcomes`]; otherwise each handle has its own reply slot.
    board: Option<Board>,
}

/// Who waits. A waiter is counted in [`Inner::waiting`] before it looks at the slots again,
/// and a freed slot is given back before its dropper looks at `waiting` (both sequentially
/// consistent): so either the waiter sees the slot, or every dropper from then on sees the
/// waiter, and the one that takes the window to its low-water mark (`Inner::low_water`) wakes
/// it under the lock, which the waiter holds until it sleeps. Only droppers free slots while
/// the window stays full, so one of them gets there.
#[derive(Debug, Default)]
struct State {
    /// Threads blocked on `changed` and not yet woken: a woken thread is no longer counted,
    /// so the slots freed before it runs again do not wake it again (a system call each).
    blocked: usize,
    /// How many times the blocked threads were woken: a thread whose sleep ends with the
    /// same number (a timeout, or a spurious wake-up) uncounts itself.
    wakeups: u64,
    /// Tasks waiting for room or for the window to empty.
    wakers: Vec<Waker>,
}

/// The slots freed between two wake-ups of a sender waiting for room: a sixteenth of the
/// window (64 of the default 1,024: one command run of the driver, one datagram's worth of
/// messages), at least 1 and at most [`WAKE_BATCH_MAX`].
const WAKE_BATCH_DIVISOR: usize = 16;

/// The most slots freed between two wake-ups of a waiting sender, whatever the window: a
/// sender waits at most this many outcomes longer than it must.
const WAKE_BATCH_MAX: usize = 64;

/// One message's place in the window; dropping it frees the place. The driver holds it until
/// the message's outcome is known.
///
/// In a window with outcomes ([`Window::with_outcomes`]) a slot is also the message's ticket
/// there: once bound to a handle ([`Window::handle`]), dropping it without an outcome
/// ([`Window::complete`]) gives the handle [`SendError::Closed`].
#[derive(Debug)]
pub struct Slot {
    inner: Arc<Inner>,
    id: SendId,
    /// A handle waits for this send's outcome on the window's board.
    bound: bool,
    /// The outcome is on the board.
    settled: bool,
    /// The place in the window was freed already (with a batch of outcomes).
    freed: bool,
}

impl Window {
    /// A window of `limit` messages (at least 1).
    pub fn new(limit: usize) -> Self {
        Self::build(limit, None, false)
    }

    /// As [`Window::new`], for a client whose driver runs on `driver`: a handle waited on
    /// there returns [`SendError::InCallback`] instead of waiting forever.
    pub fn for_driver(limit: usize, driver: DriverThread) -> Self {
        Self::build(limit, Some(driver), false)
    }

    /// As [`Window::for_driver`], with the outcomes of its sends kept by send number on the
    /// window itself instead of in a reply slot per handle: the driver answers a batch of
    /// them at once ([`Window::complete`]), and a handle whose message was delivered in order
    /// reads its outcome without a lock.
    pub fn with_outcomes(limit: usize, driver: DriverThread) -> Self {
        Self::build(limit, Some(driver), true)
    }

    fn build(limit: usize, driver: Option<DriverThread>, board: bool) -> Self {
        let limit = limit.max(1);
        Window {
            inner: Arc::new(Inner {
                limit,
                low_water: limit - (limit / WAKE_BATCH_DIVISOR).clamp(1, WAKE_BATCH_MAX),
                outstanding: AtomicUsize::new(0),
                next: AtomicU64::new(0),
                waiting: AtomicUsize::new(0),
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
                driver,
                board: board.then(Board::default),
            }),
        }
    }

    /// How many messages the window holds at most.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// How many messages hold a slot now: queued or in flight, outcome not yet known.
    pub fn outstanding(&self) -> usize {
        self.inner.outstanding.load(Ordering::SeqCst)
    }

    /// Whether the caller runs on the driver's thread (see [`Window::for_driver`]).
    pub fn on_driver_thread(&self) -> bool {
        self.inner
            .driver
            .as_ref()
            .is_some_and(DriverThread::is_current)
    }

    /// A slot if the window has room now; `None` when it is full.
    pub fn try_acquire(&self) -> Option<Slot> {
        self.take()
    }

    /// A slot, blocking while the window is full. Every slot is freed by its message's
    /// outcome, which the endpoint reports by the message's deadline at the latest (or when
    /// the client closes), so the wait is bounded by the oldest message's deadline. A full
    /// window wakes its blocked senders once a sixteenth of it (at most 64 slots) is free,
    /// not at every freed slot, so that each wake-up sends a batch.
    pub fn acquire(&self) -> Slot {
        if let Some(slot) = self.take() {
            return slot;
        }
        let mut state = self.inner.lock();
        loop {
            state.blocked += 1;
            self.inner.count_waiters(&state);
            if let Some(slot) = self.take() {
                state.blocked -= 1;
                self.inner.count_waiters(&state);
                return slot;
            }
            state = self.sleep(state, None);
        }
    }

    /// A slot, once the window has room (the async form of [`Window::acquire`]).
    pub fn acquire_async(&self) -> Acquire<'_> {
        Acquire { window: self }
    }

    /// Blocks until no slot is in use (every pipelined message so far has its outcome), at
    /// most `limit`; `false` if the limit passed first.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        if self.outstanding() == 0 {
            return true;
        }
        let deadline = Instant::now().checked_add(limit);
        let mut state = self.inner.lock();
        loop {
            state.blocked += 1;
            self.inner.count_waiters(&state);
            let left = match deadline {
                Some(d) => d.checked_duration_since(Instant::now()),
                None => Some(Duration::from_secs(3600)),
            };
            let idle = self.outstanding() == 0;
            match left {
                Some(left) if !idle && !left.is_zero() => state = self.sleep(state, Some(left)),
                _ => {
                    state.blocked -= 1;
                    self.inner.count_waiters(&state);
                    return idle;
                }
            }
        }
    }

    /// Resolves once no slot is in use (the async form of [`Window::wait_idle`], without a
    /// limit: bound it with a timer if needed).
    pub fn idle(&self) -> Idle<'_> {
        Idle { window: self }
    }

    fn take(&self) -> Option<Slot> {
        let outstanding = &self.inner.outstanding;
        let mut n = outstanding.load(Ordering::SeqCst);
        loop {
            if n >= self.inner.limit {
                return None;
            }
            match outstanding.compare_exchange_weak(n, n + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(now) => n = now,
            }
        }
        let id = SendId(self.inner.next.fetch_add(1, Ordering::Relaxed));
        Some(Slot {
            inner: self.inner.clone(),
            id,
            bound: false,
            settled: false,
            freed: false,
        })
    }

    /// Sleeps on the condition variable once (at most `limit`), counted in `blocked` by the
    /// caller; uncounted when it wakes (by the slot's dropper that woke it, or here).
    fn sleep<'a>(
        &'a self,
        state: MutexGuard<'a, State>,
        limit: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        let changed = &self.inner.changed;
        let seen = state.wakeups;
        let mut state = match limit {
            Some(t) => changed
                .wait_timeout(state, t)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0),
            None => changed.wait(state).unwrap_or_else(PoisonError::into_inner),
        };
        if state.wakeups == seen {
            state.blocked -= 1;
        }
        self.inner.count_waiters(&state);
        state
    }

    /// The handle of the send holding `slot` (one per slot: the first to take the outcome
    /// has it), waiting on the window's board (a window made
    /// with [`Window::with_outcomes`]): the driver must then give the slot's outcome with
    /// [`Window::complete`], or drop the slot (the handle gets [`SendError::Closed`]). `None`
    /// for another window.
    pub fn handle(&self, slot: &mut Slot) -> Option<SendHandle> {
        self.inner.board.as_ref()?;
        slot.bound = true;
        Some(SendHandle {
            id: slot.id,
            source: Source::Board,
            window: self.clone(),
        })
    }

    /// Gives the outcomes of a batch of sends of this window (made with
    /// [`Window::with_outcomes`]): a `None` outcome is a delivery acknowledged by `peer`
    /// alone. Their handles see them, then their places are freed; `batch` is left empty.
    /// `scratch` is only reused between calls, to allocate nothing per batch.
    pub fn complete(
        &self,
        peer: Option<SocketAddr>,
        batch: &mut Vec<(Slot, Option<Outcome>)>,
        scratch: &mut Vec<(SendId, Option<Outcome>)>,
    ) {
        let Some(board) = &self.inner.board else {
            batch.clear();
            return;
        };
        for (slot, outcome) in batch.iter_mut() {
            slot.settled = true;
            slot.freed = true;
            scratch.push((slot.id, outcome.take()));
        }
        board.complete(peer, scratch);
        // Outcomes first, then the places: whoever waits for the window to empty finds every
        // outcome in place.
        let n = batch.len();
        batch.clear();
        self.inner.release(n);
    }

    /// Closes the board of outcomes: every send without one has [`SendError::Closed`] (the
    /// client closed).
    pub fn close_outcomes(&self) {
        if let Some(board) = &self.inner.board {
            board.close();
        }
    }

    /// The board of outcomes, for tests.
    #[cfg(test)]
    pub(crate) fn inner_board(&self) -> &Board {
        self.inner.board.as_ref().expect("a window with outcomes")
    }

    /// Registers `waker` to be woken at the next freed slot (once per task).
    fn register(&self, state: &mut State, waker: &Waker) {
        if !state.wakers.iter().any(|w| w.will_wake(waker)) {
            state.wakers.push(waker.clone());
        }
        self.inner.count_waiters(state);
    }
}

impl Inner {
    /// The waiters; every update is a few integer writes, so a panic elsewhere while holding
    /// the lock leaves it consistent and poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Mirrors the number of waiters in `waiting` (under the lock).
    fn count_waiters(&self, state: &State) {
        self.waiting
            .store(state.blocked + state.wakers.len(), Ordering::SeqCst);
    }
}

impl Slot {
    /// The number of the send that holds this slot.
    pub fn id(&self) -> SendId {
        self.id
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let (Some(board), false) = (&self.inner.board, self.settled) {
            // Bound to a handle: the driver stopped before the outcome. Otherwise nobody
            // waits, but the number must not stay open (`outcomes`' `done_below`).
            let outcome = self.bound.then_some(Err(SendError::Closed));
            board.complete(None, &mut vec![(self.id, outcome)]);
        }
        if !self.freed {
            self.inner.release(1);
        }
    }
}

impl Inner {
    /// Frees `n` places of the window, and wakes those waiting for room or for none in use
    /// once it is low enough.
    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let left = self
            .outstanding
            .fetch_sub(n, Ordering::SeqCst)
            .saturating_sub(n);
        // Nobody waits (the common case): no lock, no system call. Nor while the window is
        // still nearly full: a waiter's last look found it full (`State`), so slots are only
        // freed from there on until one of them takes it to the low-water mark, which wakes it.
        if self.waiting.load(Ordering::SeqCst) == 0 || left > self.low_water {
            return;
        }
        let mut state = self.lock();
        let notify = state.blocked > 0;
        if notify {
            // Every blocked thread is woken now, and looks at the window again itself.
            state.blocked = 0;
            state.wakeups = state.wakeups.wrapping_add(1);
        }
        let wakers = std::mem::take(&mut state.wakers);
        self.count_waiters(&state);
        drop(state);
        if notify {
            self.changed.notify_all();
        }
        for w in wakers {
            w.wake();
        }
    }
}

/// The future of [`Window::acquire_async`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a> {
    window: &'a Window,
}

impl Future for Acquire<'_> {
    type Output = Slot;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Slot> {
        if let Some(slot) = self.window.take() {
            return Poll::Ready(slot);
        }
        let mut state = self.window.inner.lock();
        self.window.register(&mut state, cx.waker());
        // Counted as a waiter first: a slot freed before that is seen now (see `State`).
        match self.window.take() {
            Some(slot) => Poll::Ready(slot),
            None => Poll::Pending,
        }
    }
}

/// The future of [`Window::idle`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Idle<'a> {
    window: &'a Window,
}

impl Future for Idle<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.window.outstanding() == 0 {
            return Poll::Ready(());
        }
        let mut state = self.window.inner.lock();
        self.window.register(&mut state, cx.waker());
        // Counted as a waiter first: a slot freed before that is seen now (see `State`).
        if self.window.outstanding() == 0 {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// The handle of one pipelined message: its outcome, once the endpoint knows it.
///
/// Wait for it ([`SendHandle::wait`], blocking), await it (it is a `Future`), poll
/// [`SendHandle::is_done`], or drop it: the message is sent and retried all the same, and its
/// window slot is freed when its outcome is known, not when the handle goes.
#[derive(Debug)]
#[must_use = "a dropped handle still sends the message, but its outcome is lost"]
pub struct SendHandle {
    id: SendId,
    source: Source,
    window: Window,
}

/// Where a [`SendHandle`]'s outcome comes from.
#[derive(Debug)]
enum Source {
    /// Its own reply slot.
    Reply(Pending<Result<Delivery, SendError>>),
    /// The window's board, by send number (`Window::with_outcomes`).
    Board,
    /// The board's outcome was taken (a future polled to the end).
    Taken,
}

impl SendHandle {
    /// A handle for the send numbered `id` of `window`, whose outcome comes through `pending`.
    pub fn new(id: SendId, pending: Pending<Result<Delivery, SendError>>, window: Window) -> Self {
        SendHandle {
            id,
            source: Source::Reply(pending),
            window,
        }
    }

    fn board(&self) -> Option<&Board> {
        self.window.inner.board.as_ref()
    }

    /// The number of this send on its client (the order in which sends were queued).
    pub fn id(&self) -> SendId {
        self.id
    }

    /// Whether the outcome is known: [`SendHandle::wait`] would return at once.
    pub fn is_done(&self) -> bool {
        match (&self.source, self.board()) {
            (Source::Reply(p), _) => p.is_settled(),
            (Source::Board, Some(b)) => b.is_settled(self.id),
            _ => true,
        }
    }

    /// Blocks until the outcome is known. The endpoint reports it by the message's deadline
    /// (the client's send timeout, 5 s by default) at the latest.
    ///
    /// # Errors
    /// The message's [`SendError`]; [`SendError::Closed`] if the client closed first;
    /// [`SendError::InCallback`] when waited on in a callback on the client's own thread
    /// before the outcome is in (the wait could never end).
    pub fn wait(self) -> Result<Delivery, SendError> {
        // Past the clock's range: the reply slot waits as long as the driver lives.
        self.wait_timeout(Duration::MAX)
    }

    /// As [`SendHandle::wait`], at most `limit`.
    ///
    /// # Errors
    /// As [`SendHandle::wait`], and [`SendError::TimedOut`] when `limit` passed first (the
    /// message itself may still be acknowledged later).
    pub fn wait_timeout(mut self, limit: Duration) -> Result<Delivery, SendError> {
        if !self.is_done() && self.window.on_driver_thread() {
            return Err(SendError::InCallback);
        }
        match std::mem::replace(&mut self.source, Source::Taken) {
            Source::Reply(p) => p.wait_outcome(limit),
            Source::Board => match self.board().and_then(|b| b.wait(self.id, limit)) {
                Some(outcome) => outcome,
                None => {
                    // Not taken: dropping the handle forgets it.
                    self.source = Source::Board;
                    Err(SendError::TimedOut)
                }
            },
            Source::Taken => Err(SendError::Closed),
        }
    }
}

impl Drop for SendHandle {
    fn drop(&mut self) {
        if let (Source::Board, Some(b)) = (&self.source, self.board()) {
            b.forget(self.id);
        }
    }
}

impl Future for SendHandle {
    type Output = Result<Delivery, SendError>;

    /// Ready with the outcome, or [`SendError::Closed`] if the client closed first.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match &mut this.source {
            Source::Reply(pending) => match Pin::new(pending).poll(cx) {
                Poll::Ready(Ok(outcome)) => Poll::Ready(outcome),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
                Poll::Pending => Poll::Pending,
            },
            Source::Board => {
                let Some(board) = this.window.inner.board.as_ref() else {
                    return Poll::Ready(Err(SendError::Closed));
                };
                match board.poll(this.id, cx.waker()) {
                    Some(outcome) => {
                        this.source = Source::Taken;
                        Poll::Ready(outcome)
                    }
                    None => Poll::Pending,
                }
            }
            Source::Taken => Poll::Ready(Err(SendError::Closed)),
        }
    }
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
