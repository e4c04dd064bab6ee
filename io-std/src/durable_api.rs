//! Durable messages on the blocking [`Client`] and [`Server`] (`docs/PROTOCOL.md` §16):
//! exactly once across outages and restarts of either side, kept in a store given with
//! [`ClientConfig::durable`](crate::ClientConfig::durable) or
//! [`ServerConfig::durable`](crate::ServerConfig::durable).
//!
//! A sender's [`Client::send_durable`] returns once the message is stored (so it survives a
//! crash of the sender from then on), not when it is acknowledged; it is then retried with no
//! deadline until the receiver has stored it ([`Client::wait_durable_delivered`]). A receiver
//! takes messages with [`Server::recv_durable`] and, when done with one,
//! [`Server::consume_durable`]s it; until then it is delivered again after a restart, marked
//! `redelivered`. The store writes are group commits: many senders on many threads share each
//! sync.
//!
//! The marks make an application's own effect exactly once too: a receiver that appends each
//! message to a file consumes it with the file's new length as the mark, and at start
//! truncates the file to the restored mark before it takes the redeliveries (see `pav serve
//! --durable --output`).

use std::time::Duration;

use pavillion_io::durable::{
    DurableCommand, DurableDelivery, DurableError, DurableId, DurablePeer, DurableRestored,
};
use pavillion_io::plumbing::reply::Pending;
use pavillion_proto::PeerId;

use crate::{Client, Server, GRACE};

/// A caller's timeout as the driver takes it: `Duration::MAX` is no bound at all (the driver
/// then arms no timer for it).
fn bound(timeout: Duration) -> Option<Duration> {
    (timeout < Duration::MAX).then_some(timeout)
}

/// How long to block for an answer the driver gives by `timeout` itself: a little longer,
/// and without overflowing for an unbounded one.
fn limit(timeout: Option<Duration>) -> Duration {
    timeout
        .and_then(|t| t.checked_add(GRACE))
        .unwrap_or(Duration::MAX)
}

impl Client {
    /// Queues a durable command and waits for the driver's answer: the shape of every durable
    /// call that answers with a plain value. `wait` is the driver's own bound for the command
    /// (`None`: none); the caller waits that long plus a grace ([`limit`]).
    fn ask<T>(
        &self,
        (command, pending): (DurableCommand, Pending<T>),
        wait: Option<Duration>,
    ) -> Result<T, DurableError> {
        self.handle.durable(command)?;
        Ok(pending.wait(limit(wait))?)
    }

    /// Sends a durable message to the server and returns its end-to-end id once it is
    /// stored. While the store's outbox is full (the server does not acknowledge), it waits
    /// for room, as long as the client lives.
    ///
    /// # Errors
    /// [`DurableError::NotEnabled`] without a store, [`DurableError::Store`] if the store
    /// cannot be written (the message is not sent), [`DurableError::Refused`] for a bad
    /// name or a message larger than one datagram, [`DurableError::Closed`],
    /// [`DurableError::InCallback`].
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use pavillion_std::keys::generate_psk;
    /// use pavillion_std::{Client, ClientConfig, Server, ServerConfig};
    /// use pavillion_proto::ClientId;
    ///
    /// let dir = std::env::temp_dir().join(format!("pav-doc-durable-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// # let _ = std::fs::remove_file(dir.join("server.redb"));
    /// # let _ = std::fs::remove_file(dir.join("client.redb"));
    /// let (id, psk) = (ClientId(*b"durable-doc-0001"), generate_psk());
    /// let server = Server::bind(
    ///     "127.0.0.1:0",
    ///     ServerConfig::new().psk_client(id, psk.clone()).durable(dir.join("server.redb")),
    /// )?;
    /// let config = ClientConfig::psk(id, psk).durable(dir.join("client.redb"));
    /// let client = Client::connect(server.local_addr(), config)?;
    ///
    /// let sent = client.send_durable("kitchen", "temp", b"21.5")?; // stored, not yet acked
    /// client.wait_durable_delivered(sent, Duration::from_secs(5))?;
    /// let got = server.recv_durable(Duration::from_secs(5))?.expect("a message");
    /// assert_eq!((got.id, got.message.payload()), (sent, &b"21.5"[..]));
    /// server.consume_durable(&got, None)?; // done: not delivered again after a restart
    /// # drop(client); drop(server); let _ = std::fs::remove_dir_all(&dir);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_durable(
        &self,
        target: &str,
        name: &str,
        payload: &[u8],
    ) -> Result<DurableId, DurableError> {
        self.send_durable_with(target, name, payload, None, None)
    }

    /// As [`Client::send_durable`], storing `mark` with the message: read back after a
    /// restart as [`DurableRestored::send_mark`] (how far the application's own input got,
    /// say a line number).
    ///
    /// # Errors
    /// As [`Client::send_durable`].
    pub fn send_durable_marked(
        &self,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: u64,
    ) -> Result<DurableId, DurableError> {
        self.send_durable_with(target, name, payload, Some(mark), None)
    }

    /// As [`Client::send_durable`], with an optional mark, and waiting at most `wait` for
    /// room in a full outbox (`None`: no bound).
    ///
    /// # Errors
    /// As [`Client::send_durable`]; [`DurableError::QueueFull`] when `wait` passed.
    pub fn send_durable_with(
        &self,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
        wait: Option<Duration>,
    ) -> Result<DurableId, DurableError> {
        let (cmd, pending) =
            DurableCommand::send(DurablePeer::Server, target, name, payload, mark, wait);
        self.handle.durable(cmd)?;
        pending.wait_outcome(Duration::MAX)
    }

    /// Queues a durable message without waiting for it to be stored: the returned wait is
    /// answered once it is (or why not). A caller that keeps many such waits open shares
    /// each store commit among all of them (pipelining from one thread, in order: marks
    /// stay in send order).
    ///
    /// # Errors
    /// [`DurableError::Closed`], [`DurableError::InCallback`]; the rest through the wait.
    pub fn queue_durable(
        &self,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
    ) -> Result<Pending<Result<DurableId, DurableError>>, DurableError> {
        let (cmd, pending) =
            DurableCommand::send(DurablePeer::Server, target, name, payload, mark, None);
        self.handle.durable(cmd)?;
        Ok(pending)
    }

    /// Stops retrying a durable message. It may have been delivered already (once). False if
    /// it is not queued (acknowledged, cancelled, or unknown).
    ///
    /// # Errors
    /// [`DurableError::Closed`], [`DurableError::InCallback`].
    pub fn cancel_durable(&self, id: DurableId) -> Result<bool, DurableError> {
        self.ask(DurableCommand::cancel(id), Some(Duration::ZERO))
    }

    /// Waits until the server has acknowledged durable message `id` (its record is stored
    /// there), at most `timeout`. Also returns at once for a message no longer queued
    /// (acknowledged before, or cancelled).
    ///
    /// # Errors
    /// [`DurableError::TimedOut`], [`DurableError::NotEnabled`], [`DurableError::Closed`],
    /// [`DurableError::InCallback`].
    pub fn wait_durable_delivered(
        &self,
        id: DurableId,
        timeout: Duration,
    ) -> Result<(), DurableError> {
        let (cmd, pending) = DurableCommand::wait_delivered(id, bound(timeout));
        self.handle.durable(cmd)?;
        pending.wait_outcome(limit(bound(timeout)))
    }

    /// Waits until none of our durable messages is queued (all acknowledged or cancelled),
    /// at most `timeout`; returns whether that happened.
    ///
    /// # Errors
    /// [`DurableError::Closed`], [`DurableError::InCallback`].
    pub fn wait_durable_drained(&self, timeout: Duration) -> Result<bool, DurableError> {
        self.ask(DurableCommand::wait_drained(bound(timeout)), bound(timeout))
    }

    /// Durable messages of ours queued and not yet acknowledged or cancelled.
    ///
    /// # Errors
    /// [`DurableError::Closed`], [`DurableError::InCallback`].
    pub fn durable_queued(&self) -> Result<usize, DurableError> {
        self.ask(DurableCommand::queued(), Some(Duration::ZERO))
    }

    /// The next durable message from the server, or `None` after `timeout`. Consume it
    /// ([`Client::consume_durable`]) when done with it.
    ///
    /// # Errors
    /// [`DurableError::Closed`], [`DurableError::InCallback`].
    pub fn recv_durable(&self, timeout: Duration) -> Result<Option<DurableDelivery>, DurableError> {
        self.ask(DurableCommand::recv(bound(timeout)), bound(timeout))
    }

    /// The application is done with `delivery`: it is not delivered again after a restart.
    /// `mark`, if given, is stored with the consume (how far the application's own output
    /// got) and read back as [`DurableRestored::consume_mark`]. False if it was consumed
    /// already.
    ///
    /// # Errors
    /// [`DurableError::Closed`], [`DurableError::InCallback`].
    pub fn consume_durable(
        &self,
        delivery: &DurableDelivery,
        mark: Option<u64>,
    ) -> Result<bool, DurableError> {
        self.ask(
            DurableCommand::consume(delivery.from, delivery.id, mark),
            Some(Duration::ZERO),
        )
    }

    /// What the durable store gave back when the client started (its origin, the messages
    /// queued again and redelivered, the marks); `None` without a store.
    pub fn durable_restored(&self) -> Option<DurableRestored> {
        self.handle.durable_restored()
    }
}

impl Server {
    /// Queues a durable command and waits for the driver's answer: the shape of every durable
    /// call that answers with a plain value. `wait` is the driver's own bound for the command
    /// (`None`: none); the caller waits that long plus a grace ([`limit`]).
    fn ask<T>(
        &self,
        (command, pending): (DurableCommand, Pending<T>),
        wait: Option<Duration>,
    ) -> Result<T, DurableError> {
        self.handle.durable(command)?;
        Ok(pending.wait(limit(wait))?)
    }

    /// Sends a durable message to the client `peer`, by identity: it waits for a session with
    /// that client (from whatever address) and is retried with no deadline across its
    /// sessions and our restarts until acknowledged. Returns once stored; waits for room in a
    /// full outbox as long as the server lives.
    ///
    /// # Errors
    /// As [`Client::send_durable`].
    pub fn send_durable(
        &self,
        peer: PeerId,
        target: &str,
        name: &str,
        payload: &[u8],
    ) -> Result<DurableId, DurableError> {
        self.send_durable_with(peer, target, name, payload, None, None)
    }

    /// As [`Server::send_durable`], with an optional mark (see
    /// [`Client::send_durable_marked`]) and a bound on the wait for room (`None`: none).
    ///
    /// # Errors
    /// As [`Client::send_durable_with`].
    pub fn send_durable_with(
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
        self.handle.durable(cmd)?;
        pending.wait_outcome(Duration::MAX)
    }

    /// As [`Client::queue_durable`], to client `peer`; also allowed from a message callback
    /// on the server's thread (which must then not block on the returned wait).
    ///
    /// # Errors
    /// [`DurableError::Closed`]; the rest through the wait.
    pub fn queue_durable(
        &self,
        peer: PeerId,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
    ) -> Result<Pending<Result<DurableId, DurableError>>, DurableError> {
        let to = DurablePeer::Client(peer);
        let (cmd, pending) = DurableCommand::send(to, target, name, payload, mark, None);
        self.handle.durable_nowait(cmd)?;
        Ok(pending)
    }

    /// Forwards a received durable message to the clients `to`, durably, and consumes it, all
    /// stored in one batch: a broker that crashes at any point neither loses the message nor
    /// forwards it twice. Returns the forwarded messages' ids at once (they are stored with
    /// the loop's next commit).
    ///
    /// # Errors
    /// [`DurableError::QueueFull`] when the outbox has no room for every copy (nothing was
    /// forwarded or consumed: try again later); [`DurableError::Closed`],
    /// [`DurableError::InCallback`].
    pub fn relay_durable(
        &self,
        delivery: &DurableDelivery,
        to: &[PeerId],
        mark: Option<u64>,
    ) -> Result<Vec<DurableId>, DurableError> {
        let to = to.iter().map(|p| DurablePeer::Client(*p)).collect();
        let (cmd, pending) = DurableCommand::relay(delivery, to, mark);
        self.handle.durable(cmd)?;
        pending.wait_outcome(limit(Some(Duration::ZERO)))
    }

    /// As [`Server::consume_durable`], without waiting (also from the server's thread).
    ///
    /// # Errors
    /// [`DurableError::Closed`].
    pub fn queue_consume_durable(
        &self,
        delivery: &DurableDelivery,
        mark: Option<u64>,
    ) -> Result<(), DurableError> {
        let (cmd, _pending) = DurableCommand::consume(delivery.from, delivery.id, mark);
        self.handle.durable_nowait(cmd)
    }

    /// As [`Client::cancel_durable`].
    ///
    /// # Errors
    /// As [`Client::cancel_durable`].
    pub fn cancel_durable(&self, id: DurableId) -> Result<bool, DurableError> {
        self.ask(DurableCommand::cancel(id), Some(Duration::ZERO))
    }

    /// As [`Client::wait_durable_delivered`].
    ///
    /// # Errors
    /// As [`Client::wait_durable_delivered`].
    pub fn wait_durable_delivered(
        &self,
        id: DurableId,
        timeout: Duration,
    ) -> Result<(), DurableError> {
        let (cmd, pending) = DurableCommand::wait_delivered(id, bound(timeout));
        self.handle.durable(cmd)?;
        pending.wait_outcome(limit(bound(timeout)))
    }

    /// As [`Client::wait_durable_drained`].
    ///
    /// # Errors
    /// As [`Client::wait_durable_drained`].
    pub fn wait_durable_drained(&self, timeout: Duration) -> Result<bool, DurableError> {
        self.ask(DurableCommand::wait_drained(bound(timeout)), bound(timeout))
    }

    /// As [`Client::durable_queued`] (to every client).
    ///
    /// # Errors
    /// As [`Client::durable_queued`].
    pub fn durable_queued(&self) -> Result<usize, DurableError> {
        self.ask(DurableCommand::queued(), Some(Duration::ZERO))
    }

    /// The next durable message from any client (`message.peer` says which), or `None` after
    /// `timeout`.
    ///
    /// # Errors
    /// As [`Client::recv_durable`].
    pub fn recv_durable(&self, timeout: Duration) -> Result<Option<DurableDelivery>, DurableError> {
        self.ask(DurableCommand::recv(bound(timeout)), bound(timeout))
    }

    /// As [`Client::consume_durable`].
    ///
    /// # Errors
    /// As [`Client::consume_durable`].
    pub fn consume_durable(
        &self,
        delivery: &DurableDelivery,
        mark: Option<u64>,
    ) -> Result<bool, DurableError> {
        self.ask(
            DurableCommand::consume(delivery.from, delivery.id, mark),
            Some(Duration::ZERO),
        )
    }

    /// As [`Client::durable_restored`].
    pub fn durable_restored(&self) -> Option<DurableRestored> {
        self.handle.durable_restored()
    }
}
