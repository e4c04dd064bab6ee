//! The command channel from an endpoint's handles to its driver.
//!
//! Handles queue commands on a [`Link`]; the driver takes them from [`Commands`]. The queue is
//! unbounded, with one reader: an async driver awaits [`Commands::recv`]. A blocking driver
//! sleeps in its poller instead, and registers a wake hook ([`Commands::set_wake`]) that every
//! send calls, so a command never waits for a timer or the next datagram; it takes every
//! queued command at once ([`Commands::take_batch`]).
//!
//! The queue is a `VecDeque` under a mutex, not a lock-free list: a pipelined sender queues a
//! command per message, and a list of blocks allocates (and zeroes) a block every few dozen
//! commands on the sender's thread and frees it on the driver's, while the driver here swaps
//! the whole queue for its own emptied buffer under one lock per burst. The two buffers go
//! back and forth, so a steady stream of commands allocates nothing, and each command is
//! moved once in and once out. Either side holds the lock only to push one command or to
//! swap the buffers.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Poll, Waker};
use std::thread::{self, ThreadId};

use super::reply::{self, Pending, Reply};

/// A new command channel.
///
/// # Examples
/// ```
/// use pavillion_io::plumbing::link::{self, TryRecvError};
///
/// let (link, commands) = link::channel::<u32>();
/// link.send(7).unwrap();
/// assert_eq!(commands.try_recv(), Ok(7));
/// assert_eq!(commands.try_recv(), Err(TryRecvError::Empty));
/// drop(link);
/// assert_eq!(commands.try_recv(), Err(TryRecvError::Gone));
/// ```
pub fn channel<C>() -> (Link<C>, Commands<C>) {
    let shared = Arc::new(Shared {
        wake: OnceLock::new(),
        driver: OnceLock::new(),
    });
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            closed: false,
            waker: None,
        }),
        links: AtomicUsize::new(1),
        direct: OnceLock::new(),
    });
    (
        Link {
            chan: chan.clone(),
            shared: shared.clone(),
        },
        Commands { chan, shared },
    )
}

/// A driver's way to carry out a command on the sender's own thread (see
/// [`Commands::set_direct`]). It gets the command, a probe that says whether nothing is
/// queued, and for [`Link::send_here`] a probe that says whether the sender's wait is over;
/// it gives the command back if it cannot take it now.
pub type Direct<C> =
    Box<dyn Fn(C, &dyn Fn() -> bool, Option<&dyn Fn() -> bool>) -> Result<(), C> + Send + Sync>;

/// The handles' end: queues commands and wakes the driver.
pub struct Link<C> {
    chan: Arc<Chan<C>>,
    shared: Arc<Shared>,
}

/// A link that does not keep the channel open: the driver holds one to make new handles
/// (RPC responders) without outliving the application's handles.
pub struct WeakLink<C> {
    chan: Arc<Chan<C>>,
    shared: Arc<Shared>,
}

/// The driver's end.
pub struct Commands<C> {
    chan: Arc<Chan<C>>,
    shared: Arc<Shared>,
}

/// The driver is gone: the endpoint was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the endpoint is closed")]
pub struct Gone;

/// Why [`Commands::try_recv`] returned no command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryRecvError {
    /// None queued now.
    Empty,
    /// None queued, and every link is gone.
    Gone,
}

impl<C> Link<C> {
    /// Queues a command and wakes the driver.
    ///
    /// # Errors
    /// [`Gone`] once the driver has stopped.
    pub fn send(&self, command: C) -> Result<(), Gone> {
        self.send_with(command, None)
    }

    /// As [`Link::send`], for a sender that will then block until `settled` holds (its answer
    /// is in): a blocking driver may let the sender's thread receive the endpoint's datagrams
    /// itself until then, instead of handing the answer over from the driver's thread. It
    /// returns when `settled` holds or the driver takes the endpoint back (a deadline, a full
    /// socket buffer); the sender then waits as usual.
    ///
    /// # Errors
    /// [`Gone`] once the driver has stopped.
    pub fn send_here(&self, command: C, settled: &dyn Fn() -> bool) -> Result<(), Gone> {
        self.send_with(command, Some(settled))
    }

    /// As [`Link::send`], but never carried out on the sender's thread: for a command that
    /// the driver's role would not run there anyway (a pipelined send), so that the sender
    /// does not try the driver's lock for nothing, once per command, while the driver holds
    /// it.
    ///
    /// # Errors
    /// [`Gone`] once the driver has stopped.
    pub fn queue(&self, command: C) -> Result<(), Gone> {
        self.chan.push(command).map_err(|_| Gone)?;
        if let Some(wake) = self.shared.wake.get() {
            wake();
        }
        Ok(())
    }

    fn send_with(&self, command: C, settled: Option<&dyn Fn() -> bool>) -> Result<(), Gone> {
        let command = match self.chan.direct.get() {
            Some(direct) => match direct(command, &|| self.chan.is_empty(), settled) {
                Ok(()) => return Ok(()),
                Err(command) => command,
            },
            None => command,
        };
        self.queue(command)
    }

    /// Queues a query whose answer goes into a fresh slot, and returns the slot to wait on;
    /// `None` on the driver's own thread (the wait would never end) or once the driver has
    /// stopped. Every read-only question a handle asks (counters, peers, subscriptions) is one.
    pub fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> C) -> Option<Pending<T>> {
        if self.on_driver_thread() {
            return None;
        }
        let (reply, pending) = reply::channel();
        self.send(command(reply)).ok()?;
        Some(pending)
    }

    /// Whether the caller runs on the driver's own thread (inside a callback), where waiting
    /// for a command's outcome would wait forever. Always false for a driver that did not
    /// register its thread (an async task may move between threads, and never blocks).
    pub fn on_driver_thread(&self) -> bool {
        self.shared.driver.get() == Some(&thread::current().id())
    }

    /// A probe of whether a thread is the driver's, that does not keep the channel open
    /// (for handles that outlive their command, such as a pipelined send's).
    pub fn driver_thread(&self) -> DriverThread {
        DriverThread(self.shared.clone())
    }

    /// A link that does not keep the channel open.
    pub fn downgrade(&self) -> WeakLink<C> {
        WeakLink {
            chan: self.chan.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<C> Clone for Link<C> {
    fn clone(&self) -> Self {
        self.chan.links.fetch_add(1, Ordering::Relaxed);
        Link {
            chan: self.chan.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<C> Drop for Link<C> {
    /// The last link gone, a driver awaiting [`Commands::recv`] is woken to find out (a
    /// blocking driver finds out at its next look at the queue).
    fn drop(&mut self) {
        if self.chan.links.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waker = self.chan.lock().waker.take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl<C> WeakLink<C> {
    /// A full link, or `None` when every full link is gone.
    pub fn upgrade(&self) -> Option<Link<C>> {
        // Never from 0: once every link is gone, the driver may have closed for good.
        self.chan
            .links
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n > 0).then_some(n + 1)
            })
            .ok()?;
        Some(Link {
            chan: self.chan.clone(),
            shared: self.shared.clone(),
        })
    }
}

impl<C> Commands<C> {
    /// The next queued command, without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when none is queued, [`TryRecvError::Gone`] when none is and
    /// every link is gone.
    pub fn try_recv(&self) -> Result<C, TryRecvError> {
        let mut state = self.chan.lock();
        match state.queue.pop_front() {
            Some(command) => Ok(command),
            None => Err(self.chan.none_queued()),
        }
    }

    /// Moves every queued command to the end of `batch`, in the order they were queued, under
    /// one lock. An empty `batch` is swapped with the queue, and the handles then queue into
    /// its buffer: a driver that empties `batch` before it takes the next one allocates
    /// nothing while commands keep coming at the same pace.
    ///
    /// # Errors
    /// As [`Commands::try_recv`], when none is queued (`batch` is left as it was).
    ///
    /// # Examples
    /// ```
    /// use std::collections::VecDeque;
    /// use pavillion_io::plumbing::link::{self, TryRecvError};
    ///
    /// let (link, commands) = link::channel::<u32>();
    /// let mut batch = VecDeque::new();
    /// assert_eq!(commands.take_batch(&mut batch), Err(TryRecvError::Empty));
    /// for n in 1..=3 {
    ///     link.send(n).unwrap();
    /// }
    /// assert_eq!(commands.take_batch(&mut batch), Ok(()));
    /// assert_eq!(batch, [1, 2, 3]);
    /// assert!(commands.is_empty());
    /// ```
    pub fn take_batch(&self, batch: &mut VecDeque<C>) -> Result<(), TryRecvError> {
        let mut state = self.chan.lock();
        if state.queue.is_empty() {
            return Err(self.chan.none_queued());
        }
        if batch.is_empty() {
            // A burst far above the usual (a stalled driver) does not keep its memory twice
            // for ever: the buffer handed back for the next one is trimmed.
            batch.shrink_to(BATCH_KEPT);
            std::mem::swap(&mut state.queue, batch);
        } else {
            batch.append(&mut state.queue);
        }
        Ok(())
    }

    /// Whether no command is queued now.
    pub fn is_empty(&self) -> bool {
        self.chan.is_empty()
    }

    /// The next command, or `None` once every link is gone.
    pub async fn recv(&self) -> Option<C> {
        poll_fn(|cx| {
            let mut state = self.chan.lock();
            if let Some(command) = state.queue.pop_front() {
                return Poll::Ready(Some(command));
            }
            // Under the lock, which the last link takes to wake us after it is counted out.
            if self.chan.links.load(Ordering::Acquire) == 0 {
                return Poll::Ready(None);
            }
            match &mut state.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// Registers what a send does to wake a sleeping driver (a blocking driver's poller
    /// wake-up). Only the first registration counts.
    pub fn set_wake(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.shared.wake.set(Box::new(wake));
    }

    /// Registers how a send may carry out its command on the sender's own thread instead of
    /// queueing it (a blocking driver whose endpoint is free at that moment). Only the first
    /// registration counts.
    pub fn set_direct(&self, direct: Direct<C>) {
        let _ = self.chan.direct.set(direct);
    }

    /// Records the calling thread as the driver's, for [`Link::on_driver_thread`]. Only the
    /// first registration counts.
    pub fn set_driver_thread(&self) {
        let _ = self.shared.driver.set(thread::current().id());
    }
}

impl<C> Drop for Commands<C> {
    /// Drops the commands still queued once the driver has stopped, so that their reply slots
    /// tell their callers at once that the endpoint closed (and a pipelined send's window slot
    /// is freed) instead of staying in the channel as long as a handle lives; a command sent
    /// later is refused ([`Gone`]).
    fn drop(&mut self) {
        let queued = {
            let mut state = self.chan.lock();
            state.closed = true;
            state.waker = None;
            std::mem::take(&mut state.queue)
        };
        // Outside the lock: a command's drop may free a window slot, which wakes senders.
        drop(queued);
    }
}

/// Tells whether the calling thread is a driver's (see [`Link::on_driver_thread`]), without
/// keeping its channel open.
#[derive(Clone)]
pub struct DriverThread(Arc<Shared>);

impl DriverThread {
    /// Whether the caller runs on the driver's own thread.
    pub fn is_current(&self) -> bool {
        self.0.driver.get() == Some(&thread::current().id())
    }
}

impl std::fmt::Debug for DriverThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DriverThread").field(&self.0).finish()
    }
}

/// The queue and what the links share with the driver's end.
struct Chan<C> {
    state: Mutex<State<C>>,
    /// [`Link`]s alive (not [`WeakLink`]s): none left and nothing queued is
    /// [`TryRecvError::Gone`].
    links: AtomicUsize,
    direct: OnceLock<Direct<C>>,
}

/// What the channel's lock guards.
struct State<C> {
    queue: VecDeque<C>,
    /// The driver's end is gone: nothing is queued any more.
    closed: bool,
    /// The task awaiting [`Commands::recv`], if it waits.
    waker: Option<Waker>,
}

/// The most commands a buffer handed back to the queue keeps room for
/// ([`Commands::take_batch`]): above a send window's worth (1,024 by default), so that
/// pipelined bursts never make it grow again.
const BATCH_KEPT: usize = 4096;

impl<C> Chan<C> {
    /// The queue; a push or a swap cannot leave it half-written, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State<C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `command`, or gives it back once the driver's end is gone (dropped by the
    /// caller, outside the lock).
    fn push(&self, command: C) -> Result<(), C> {
        let mut state = self.lock();
        if state.closed {
            return Err(command);
        }
        state.queue.push_back(command);
        let waker = state.waker.take();
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// Why nothing is queued, under the lock: every link gone, or none queued yet.
    fn none_queued(&self) -> TryRecvError {
        if self.links.load(Ordering::Acquire) == 0 {
            TryRecvError::Gone
        } else {
            TryRecvError::Empty
        }
    }
}

struct Shared {
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
    driver: OnceLock<ThreadId>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

impl<C> std::fmt::Debug for Link<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl<C> std::fmt::Debug for WeakLink<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakLink").finish_non_exhaustive()
    }
}

impl<C> std::fmt::Debug for Commands<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    use super::{channel, TryRecvError};

    /// Taking a batch swaps buffers instead of moving commands: the driver gets the queue's
    /// buffer with the commands where they were queued, and the queue gets the driver's
    /// emptied one, into which the next burst is queued; so a steady stream of commands is
    /// moved once in and once out, and allocates nothing.
    #[test]
    fn a_taken_batch_swaps_buffers_with_the_queue() {
        let (link, commands) = channel::<u64>();
        let queued_at = || commands.chan.lock().queue.as_slices().0.as_ptr();
        let mut batch = VecDeque::with_capacity(16);
        let ours = batch.as_slices().0.as_ptr();
        for n in 0..3 {
            link.send(n).unwrap();
        }
        let theirs = queued_at();
        commands.take_batch(&mut batch).unwrap();
        assert_eq!(batch, [0, 1, 2]);
        assert_eq!(
            batch.as_slices().0.as_ptr(),
            theirs,
            "taken where they were queued"
        );
        assert_eq!(queued_at(), ours, "our buffer went to the queue");
        batch.clear();
        for n in 3..6 {
            link.send(n).unwrap();
        }
        commands.take_batch(&mut batch).unwrap();
        assert_eq!(batch, [3, 4, 5]);
        assert_eq!(batch.as_slices().0.as_ptr(), ours, "queued into our buffer");
        // A batch not yet emptied keeps its own and takes the queue's commands after them.
        link.send(6).unwrap();
        commands.take_batch(&mut batch).unwrap();
        assert_eq!(batch, [3, 4, 5, 6]);
        assert_eq!(commands.take_batch(&mut batch), Err(TryRecvError::Empty));
    }

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// An async driver waiting for a command is woken by the next one, and by the last link
    /// going (then the wait ends with `None`); a weak link cannot come back after that.
    #[test]
    fn a_waiting_receiver_is_woken_by_a_command_and_by_the_last_link() {
        let (link, commands) = channel::<u64>();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        {
            let mut recv = pin!(commands.recv());
            assert_eq!(recv.as_mut().poll(&mut cx), Poll::Pending);
            link.send(1).unwrap();
            assert!(flag.0.swap(false, Ordering::SeqCst), "woken by the command");
            assert_eq!(recv.as_mut().poll(&mut cx), Poll::Ready(Some(1)));
        }
        let weak = link.downgrade();
        let again = weak.upgrade().expect("a link is alive");
        drop(link);
        let mut recv = pin!(commands.recv());
        assert_eq!(recv.as_mut().poll(&mut cx), Poll::Pending);
        drop(again);
        assert!(flag.0.load(Ordering::SeqCst), "woken by the last link");
        assert_eq!(recv.as_mut().poll(&mut cx), Poll::Ready(None));
        assert!(weak.upgrade().is_none());
        assert_eq!(commands.try_recv(), Err(TryRecvError::Gone));
    }

    /// Once the driver's end is gone, what was queued is dropped at once and a new command is
    /// refused.
    #[test]
    fn the_drivers_end_gone_drops_the_queue_and_refuses_commands() {
        let (link, commands) = channel::<Arc<()>>();
        let held = Arc::new(());
        link.send(held.clone()).unwrap();
        drop(commands);
        assert_eq!(
            Arc::strong_count(&held),
            1,
            "the queued command was dropped"
        );
        assert!(link.send(held.clone()).is_err());
        assert_eq!(
            Arc::strong_count(&held),
            1,
            "the refused command was dropped"
        );
    }
}
