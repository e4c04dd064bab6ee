//! Durable messages on the async adapter (`docs/DURABLE.md`, `docs/PROTOCOL.md` §16): the
//! calls of `pavillion-std`, under the same names, as async functions.
//!
//! Durability is opted into by the configuration ([`ClientConfig::durable`](crate::ClientConfig::durable)
//! and [`ServerConfig::durable`](crate::ServerConfig::durable), a store path): [`Client::connect`]
//! and [`Server::bind`] then open the store (on smol's blocking pool: it reads the whole file),
//! restore the endpoint from it (queued messages are sent again, unconsumed ones delivered
//! again), and fail with [`OpenError::Durable`](crate::OpenError::Durable) for a store that is
//! corrupt, truncated, in use, or another identity's.
//!
//! The store is written by the writer thread of `pavillion_io::durable`, shared with the
//! blocking adapter, never by the driver task: a commit waits for the disk (milliseconds), and
//! the task goes on receiving, acknowledging and answering meanwhile. A thread rather than
//! `smol::unblock` per commit, because the writer must see the batches in order and group
//! those that queue up during a commit into the next one; one long-lived thread per store does
//! both, and it is the same code as the blocking adapter's. Many tasks awaiting
//! [`Client::send_durable`] at once therefore share one disk sync.

use std::future::Future;
use std::time::Duration;

use pavillion_io::durable::{DurableCommand, DurableDelivery, DurableError};
use pavillion_io::plumbing::reply::Pending;
use pavillion_proto::features::durable::{DurableId, DurablePeer, DurableRestored};
use pavillion_proto::PeerId;

use crate::{Client, Server};

/// Awaits a driver's answer that is itself a result; a driver that is gone means the endpoint
/// closed.
async fn answer<T>(pending: Pending<Result<T, DurableError>>) -> Result<T, DurableError> {
    pending.outcome().await
}

/// Awaits a driver's plain answer.
async fn value<T>(pending: Pending<T>) -> Result<T, DurableError> {
    Ok(pending.await?)
}

/// Refuses a call that only makes sense with a store before it waits for something that can
/// never come (a receive on an endpoint without durability would wait for ever).
fn enabled(restored: Option<DurableRestored>) -> Result<(), DurableError> {
    restored.map(drop).ok_or(DurableError::NotEnabled)
}

impl Client {
    /// Queues a durable command for the driver.
    fn durable(&self, command: DurableCommand) -> Result<(), DurableError> {
        self.handle.durable(command)
    }

    /// The shape of every durable call that only makes sense with a store: refuse without one
    /// (a receive would otherwise wait for ever), queue the command, await the driver's answer.
    async fn ask<T>(
        &self,
        (command, pending): (DurableCommand, Pending<T>),
    ) -> Result<T, DurableError> {
        enabled(self.durable_restored())?;
        self.durable(command)?;
        value(pending).await
    }

    /// What the store held when the client started: our origin, how many queued messages are
    /// being sent again, how many unconsumed ones are delivered again, and the application's
    /// marks (see [`Client::send_durable_marked`] and [`Client::consume_durable`]). `None`
    /// without durability.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(client: pavillion_smol::Client) {
    /// if let Some(restored) = client.durable_restored() {
    ///     let resume_at = restored.send_mark.unwrap_or(0);
    ///     println!("{} queued from before; input resumes at {resume_at}", restored.queued);
    /// }
    /// # }
    /// ```
    pub fn durable_restored(&self) -> Option<DurableRestored> {
        self.handle.durable_restored()
    }

    /// Sends a durable message to the server and returns its end-to-end id once it is
    /// **stored** (not when it is acknowledged): from then on it survives a crash of either
    /// side and is retried with no deadline until the server has stored it
    /// ([`Client::wait_durable_delivered`]) or it is cancelled. While the outbox is full
    /// (`DurableLimits::max_outbox`: the server does not acknowledge) it waits for room, as
    /// long as the client lives; [`Client::send_durable_with`] bounds that wait. Many tasks may
    /// await this at once: their messages share store transactions.
    ///
    /// # Errors
    /// [`DurableError::NotEnabled`] without a store in the configuration;
    /// [`DurableError::Refused`] for a message the endpoint cannot send (too large for one
    /// datagram, a bad name, multicast mode); [`DurableError::Store`] when the store could not
    /// be written (the message was not sent); [`DurableError::Closed`].
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example(client: pavillion_smol::Client) -> Result<(), pavillion_smol::DurableError> {
    /// let id = client.send_durable("meter", "kwh", b"1234.5").await?;
    /// println!("{id} is on disk and on its way");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_durable(
        &self,
        target: &str,
        name: &str,
        payload: &[u8],
    ) -> Result<DurableId, DurableError> {
        self.send_durable_with(target, name, payload, None, None)
            .await
    }

    /// As [`Client::send_durable`], storing `mark` with the message in the same transaction:
    /// after a restart, [`Client::durable_restored`] gives back the last mark stored
    /// (`send_mark`), which tells the application how far its own input got (say, a line
    /// number).
    ///
    /// # Errors
    /// As [`Client::send_durable`].
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example(client: pavillion_smol::Client, lines: Vec<String>) -> Result<(), pavillion_smol::DurableError> {
    /// let done = client.durable_restored().and_then(|r| r.send_mark).unwrap_or(0);
    /// for (n, line) in (1..).zip(&lines).skip(done as usize) {
    ///     client.send_durable_marked("log", "line", line.as_bytes(), n).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_durable_marked(
        &self,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: u64,
    ) -> Result<DurableId, DurableError> {
        self.send_durable_with(target, name, payload, Some(mark), None)
            .await
    }

    /// As [`Client::send_durable`], with an optional mark, waiting at most `wait` for room in
    /// a full outbox (`None`: no bound).
    ///
    /// # Errors
    /// As [`Client::send_durable`]; [`DurableError::QueueFull`] when `wait` passed first.
    pub async fn send_durable_with(
        &self,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
        wait: Option<Duration>,
    ) -> Result<DurableId, DurableError> {
        let to = DurablePeer::Server;
        let (cmd, pending) = DurableCommand::send(to, target, name, payload, mark, wait);
        self.durable(cmd)?;
        answer(pending).await
    }

    /// Queues a durable message at once and returns a future that resolves when it is stored
    /// (with its id, or why not): pipelining from one task. Messages queued this way are
    /// stored, sent and (with marks) restored in the order of the calls, and a task that keeps
    /// many of these futures open shares each store commit among them. The future owns what
    /// it needs; dropping it stops only the waiting, not the message.
    ///
    /// # Errors
    /// [`DurableError::Closed`]; the rest through the future, as [`Client::send_durable`].
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example(client: pavillion_smol::Client, lines: Vec<String>) -> Result<(), pavillion_smol::DurableError> {
    /// let mut stored = Vec::new();
    /// for (n, line) in (1..).zip(&lines) {
    ///     stored.push(client.queue_durable("log", "line", line.as_bytes(), Some(n))?);
    /// }
    /// for s in stored {
    ///     s.await?; // all of them share a few disk syncs
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn queue_durable(
        &self,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
    ) -> Result<impl Future<Output = Result<DurableId, DurableError>> + Send + 'static, DurableError>
    {
        let to = DurablePeer::Server;
        let (cmd, pending) = DurableCommand::send(to, target, name, payload, mark, None);
        self.durable(cmd)?;
        Ok(answer(pending))
    }

    /// Waits until the server acknowledged the durable message `id` (it is stored in the
    /// server's inbox), at most `timeout`; returns at once for a message no longer queued
    /// (acknowledged before, or cancelled). The message itself has no deadline: a timeout
    /// here only ends this wait.
    ///
    /// # Errors
    /// [`DurableError::TimedOut`] after `timeout`; [`DurableError::NotEnabled`];
    /// [`DurableError::Closed`].
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example(client: pavillion_smol::Client) -> Result<(), pavillion_smol::DurableError> {
    /// let id = client.send_durable("meter", "kwh", b"1234.5").await?;
    /// client.wait_durable_delivered(id, std::time::Duration::from_secs(30)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_durable_delivered(
        &self,
        id: DurableId,
        timeout: Duration,
    ) -> Result<(), DurableError> {
        let (cmd, pending) = DurableCommand::wait_delivered(id, Some(timeout));
        self.durable(cmd)?;
        answer(pending).await
    }

    /// Waits until none of our durable messages is queued (all acknowledged or cancelled), at
    /// most `timeout`; returns whether that happened.
    ///
    /// # Errors
    /// [`DurableError::NotEnabled`], [`DurableError::Closed`].
    pub async fn wait_durable_drained(&self, timeout: Duration) -> Result<bool, DurableError> {
        self.ask(DurableCommand::wait_drained(Some(timeout))).await
    }

    /// Stops retrying the durable message `id`. It may still have reached the server (once).
    /// `false` if it is not queued (already acknowledged, cancelled, or unknown).
    ///
    /// # Errors
    /// [`DurableError::NotEnabled`], [`DurableError::Closed`].
    pub async fn cancel_durable(&self, id: DurableId) -> Result<bool, DurableError> {
        self.ask(DurableCommand::cancel(id)).await
    }

    /// Durable messages of ours queued and not yet acknowledged or cancelled (with those
    /// waiting for room in the outbox).
    ///
    /// # Errors
    /// [`DurableError::NotEnabled`], [`DurableError::Closed`].
    pub async fn durable_queued(&self) -> Result<usize, DurableError> {
        self.ask(DurableCommand::queued()).await
    }

    /// The next durable message from the server, stored in our inbox: first those restored
    /// from the store (`redelivered`), then new ones as they arrive. Handle it, then
    /// [`Client::consume_durable`] it, or it is delivered again after a restart.
    ///
    /// # Errors
    /// [`DurableError::NotEnabled`]; [`DurableError::Closed`] once the client is closed.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example(client: pavillion_smol::Client) -> Result<(), pavillion_smol::DurableError> {
    /// loop {
    ///     let d = client.recv_durable().await?;
    ///     println!("{} {}: {:?}", d.id, d.message.name(), d.message.payload());
    ///     client.consume_durable(&d, None).await?;
    /// }
    /// # }
    /// ```
    pub async fn recv_durable(&self) -> Result<DurableDelivery, DurableError> {
        self.ask(DurableCommand::recv(None))
            .await?
            .ok_or(DurableError::Closed)
    }

    /// As [`Client::recv_durable`], giving up after `timeout` with `None` (the blocking
    /// adapter's `recv_durable(timeout)`).
    ///
    /// # Errors
    /// As [`Client::recv_durable`].
    pub async fn recv_durable_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<DurableDelivery>, DurableError> {
        self.ask(DurableCommand::recv(Some(timeout))).await
    }

    /// The application is done with `delivery`: it leaves the inbox and is not delivered
    /// again after a restart. `mark`, if given, is stored in the same transaction and read
    /// back by [`Client::durable_restored`] (`consume_mark`): how far the application's own
    /// output got (`docs/DURABLE.md` §7). `false` if it was consumed already.
    ///
    /// # Errors
    /// [`DurableError::NotEnabled`], [`DurableError::Closed`].
    pub async fn consume_durable(
        &self,
        delivery: &DurableDelivery,
        mark: Option<u64>,
    ) -> Result<bool, DurableError> {
        self.ask(DurableCommand::consume(delivery.from, delivery.id, mark))
            .await
    }
}

impl Server {
    /// Queues a durable command for the driver.
    fn durable(&self, command: DurableCommand) -> Result<(), DurableError> {
        self.handle.durable(command)
    }

    /// The shape of every durable call that only makes sense with a store: refuse without one
    /// (a receive would otherwise wait for ever), queue the command, await the driver's answer.
    async fn ask<T>(
        &self,
        (command, pending): (DurableCommand, Pending<T>),
    ) -> Result<T, DurableError> {
        enabled(self.durable_restored())?;
        self.durable(command)?;
        value(pending).await
    }

    /// As [`Client::durable_restored`].
    pub fn durable_restored(&self) -> Option<DurableRestored> {
        self.handle.durable_restored()
    }

    /// Sends a durable message to the client `peer`, by its authenticated identity, and
    /// returns its id once it is stored. It waits in the store for a session with that client,
    /// from whatever address, across our restarts, and is retried with no deadline until the
    /// client has stored it or it is cancelled.
    ///
    /// # Errors
    /// As [`Client::send_durable`].
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example(server: pavillion_smol::Server) -> Result<(), pavillion_smol::DurableError> {
    /// for (_, peer) in server.clients().await {
    ///     server.send_durable(peer, "config", "interval", b"60").await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_durable(
        &self,
        peer: PeerId,
        target: &str,
        name: &str,
        payload: &[u8],
    ) -> Result<DurableId, DurableError> {
        self.send_durable_with(peer, target, name, payload, None, None)
            .await
    }

    /// As [`Server::send_durable`], storing `mark` with it (see
    /// [`Client::send_durable_marked`]).
    ///
    /// # Errors
    /// As [`Client::send_durable`].
    pub async fn send_durable_marked(
        &self,
        peer: PeerId,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: u64,
    ) -> Result<DurableId, DurableError> {
        self.send_durable_with(peer, target, name, payload, Some(mark), None)
            .await
    }

    /// As [`Server::send_durable`], with an optional mark and a bound on the wait for room
    /// (see [`Client::send_durable_with`]).
    ///
    /// # Errors
    /// As [`Client::send_durable_with`].
    pub async fn send_durable_with(
        &self,
        peer: PeerId,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
        wait: Option<Duration>,
    ) -> Result<DurableId, DurableError> {
        let to = DurablePeer::Client(peer);
        let (cmd, pending) = DurableCommand::send(to, target, name, payload, mark, wait);
        self.durable(cmd)?;
        answer(pending).await
    }

    /// As [`Client::queue_durable`], to the client `peer`.
    ///
    /// # Errors
    /// As [`Client::queue_durable`].
    pub fn queue_durable(
        &self,
        peer: PeerId,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
    ) -> Result<impl Future<Output = Result<DurableId, DurableError>> + Send + 'static, DurableError>
    {
        let to = DurablePeer::Client(peer);
        let (cmd, pending) = DurableCommand::send(to, target, name, payload, mark, None);
        self.durable(cmd)?;
        Ok(answer(pending))
    }

    /// Forwards a received durable message to the clients `to`, durably, and consumes it
    /// (with `mark`), all in one store transaction: a broker that crashes at any point neither
    /// loses the message nor forwards it twice. Returns the forwarded copies' ids at once
    /// (they are stored with the next commit; their delivery is waited for like any other).
    ///
    /// # Errors
    /// [`DurableError::QueueFull`] when the outbox has no room for every copy (nothing was
    /// forwarded or consumed: try again later); [`DurableError::NotEnabled`];
    /// [`DurableError::Closed`].
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example(server: pavillion_smol::Server) -> Result<(), pavillion_smol::DurableError> {
    /// loop {
    ///     let d = server.recv_durable().await?;
    ///     let to: Vec<_> = server
    ///         .client_subscribers(d.message.target())
    ///         .await
    ///         .into_iter()
    ///         .map(|(_, peer)| peer)
    ///         .collect();
    ///     server.relay_durable(&d, &to, None).await?;
    /// }
    /// # }
    /// ```
    pub async fn relay_durable(
        &self,
        delivery: &DurableDelivery,
        to: &[PeerId],
        mark: Option<u64>,
    ) -> Result<Vec<DurableId>, DurableError> {
        let to = to.iter().map(|p| DurablePeer::Client(*p)).collect();
        let (cmd, pending) = DurableCommand::relay(delivery, to, mark);
        self.durable(cmd)?;
        answer(pending).await
    }

    /// As [`Client::wait_durable_delivered`].
    ///
    /// # Errors
    /// As [`Client::wait_durable_delivered`].
    pub async fn wait_durable_delivered(
        &self,
        id: DurableId,
        timeout: Duration,
    ) -> Result<(), DurableError> {
        let (cmd, pending) = DurableCommand::wait_delivered(id, Some(timeout));
        self.durable(cmd)?;
        answer(pending).await
    }

    /// As [`Client::wait_durable_drained`] (to every client).
    ///
    /// # Errors
    /// As [`Client::wait_durable_drained`].
    pub async fn wait_durable_drained(&self, timeout: Duration) -> Result<bool, DurableError> {
        self.ask(DurableCommand::wait_drained(Some(timeout))).await
    }

    /// As [`Client::cancel_durable`].
    ///
    /// # Errors
    /// As [`Client::cancel_durable`].
    pub async fn cancel_durable(&self, id: DurableId) -> Result<bool, DurableError> {
        self.ask(DurableCommand::cancel(id)).await
    }

    /// As [`Client::durable_queued`] (to every client).
    ///
    /// # Errors
    /// As [`Client::durable_queued`].
    pub async fn durable_queued(&self) -> Result<usize, DurableError> {
        self.ask(DurableCommand::queued()).await
    }

    /// The next durable message from any client (its identity in
    /// [`DurableDelivery::from`] and `message.peer`); as [`Client::recv_durable`].
    ///
    /// # Errors
    /// As [`Client::recv_durable`].
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example(server: pavillion_smol::Server) -> Result<(), pavillion_smol::DurableError> {
    /// let d = server.recv_durable().await?;
    /// println!("{} from {:?}: {:?}", d.id, d.from, d.message.payload());
    /// server.consume_durable(&d, None).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_durable(&self) -> Result<DurableDelivery, DurableError> {
        self.ask(DurableCommand::recv(None))
            .await?
            .ok_or(DurableError::Closed)
    }

    /// As [`Server::recv_durable`], giving up after `timeout` with `None`.
    ///
    /// # Errors
    /// As [`Client::recv_durable`].
    pub async fn recv_durable_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<DurableDelivery>, DurableError> {
        self.ask(DurableCommand::recv(Some(timeout))).await
    }

    /// As [`Client::consume_durable`].
    ///
    /// # Errors
    /// As [`Client::consume_durable`].
    pub async fn consume_durable(
        &self,
        delivery: &DurableDelivery,
        mark: Option<u64>,
    ) -> Result<bool, DurableError> {
        self.ask(DurableCommand::consume(delivery.from, delivery.id, mark))
            .await
    }
}
