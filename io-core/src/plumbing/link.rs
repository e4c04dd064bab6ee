//! The command channel from an endpoint's handles to its driver.
//!
//! Handles queue commands on a [`Link`]; the driver takes them from [`Commands`]. The queue is
//! an unbounded `async_channel`, so an async driver simply awaits [`Commands::recv`]. A
//! blocking driver sleeps in its poller instead, and registers a wake hook
//! ([`Commands::set_wake`]) that every send calls, so a command never waits for a timer or the
//! next datagram.

use std::sync::{Arc, OnceLock};
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
    let (tx, rx) = async_channel::unbounded();
    let shared = Arc::new(Shared {
        wake: OnceLock::new(),
        driver: OnceLock::new(),
    });
    let direct = Arc::new(OnceLock::new());
    (
        Link {
            tx,
            shared: shared.clone(),
            direct: direct.clone(),
        },
        Commands { rx, shared, direct },
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
    tx: async_channel::Sender<C>,
    shared: Arc<Shared>,
    direct: Arc<OnceLock<Direct<C>>>,
}

/// A link that does not keep the channel open: the driver holds one to make new handles
/// (RPC responders) without outliving the application's handles.
pub struct WeakLink<C> {
    tx: async_channel::WeakSender<C>,
    shared: Arc<Shared>,
    direct: Arc<OnceLock<Direct<C>>>,
}

/// The driver's end.
pub struct Commands<C> {
    rx: async_channel::Receiver<C>,
    shared: Arc<Shared>,
    direct: Arc<OnceLock<Direct<C>>>,
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
        self.tx.try_send(command).map_err(|_| Gone)?;
        if let Some(wake) = self.shared.wake.get() {
            wake();
        }
        Ok(())
    }

    fn send_with(&self, command: C, settled: Option<&dyn Fn() -> bool>) -> Result<(), Gone> {
        let command = match self.direct.get() {
            Some(direct) => match direct(command, &|| self.tx.is_empty(), settled) {
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
            tx: self.tx.downgrade(),
            shared: self.shared.clone(),
            direct: self.direct.clone(),
        }
    }
}

impl<C> Clone for Link<C> {
    fn clone(&self) -> Self {
        Link {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
            direct: self.direct.clone(),
        }
    }
}

impl<C> WeakLink<C> {
    /// A full link, or `None` when every full link is gone.
    pub fn upgrade(&self) -> Option<Link<C>> {
        Some(Link {
            tx: self.tx.upgrade()?,
            shared: self.shared.clone(),
            direct: self.direct.clone(),
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
        self.rx.try_recv().map_err(|e| match e {
            async_channel::TryRecvError::Empty => TryRecvError::Empty,
            async_channel::TryRecvError::Closed => TryRecvError::Gone,
        })
    }

    /// Whether no command is queued now.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The next command, or `None` once every link is gone.
    pub async fn recv(&self) -> Option<C> {
        self.rx.recv().await.ok()
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
        let _ = self.direct.set(direct);
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
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
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
