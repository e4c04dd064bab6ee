//! Durable messages in the adapters (`docs/PROTOCOL.md` §16): what the blocking and the async
//! adapter share. The protocol rules are `proto`'s (`features::durable`); this is the driver's
//! half: the store on disk, the group commit, and the callers waiting for outcomes.
//!
//! - **Opening** ([`open_store`]): the store's file is opened (created if missing; a corrupt
//!   or truncated one is an error naming it, left untouched), its records read, and the
//!   endpoint restored from them (`enable_durable`), which refuses a store of another
//!   identity. A `connect`/`bind` with a durable path fails with a [`DurableError`] then.
//! - **Group commit** ([`StoreWriter`]): after each pass of the loop the router drains every
//!   batch the endpoint has (`poll_store`) and hands them to a writer thread, which writes
//!   everything that queued up while its previous commit ran in **one** transaction (one
//!   sync), then tells the loop `stored(last)` or `store_failed(last)` through the command
//!   channel. The loop never waits for the disk; many senders share each sync.
//! - **Waiting** ([`DurableRouter`]): a `send_durable` is answered when the batch holding its
//!   message is stored (not when the message is acknowledged: that is
//!   `wait_durable_delivered`), and waits while the outbox is full; received messages queue
//!   for `recv_durable` (bounded by the endpoint's inbox limit: each is in the endpoint's
//!   inbox until consumed).
//!
//! The writer is a thread in both adapters: `redb` is blocking, and a thread per durable
//! endpoint keeps the async adapter's executor free of disk waits.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use pavillion_proto::endpoint::{self as proto, ClientEvent, ServerEvent};
use pavillion_proto::features::durable::{
    DurableBatch, DurableFailure, DurableRecord, DurableRestoreError, DurableSeq, DurableTable,
    StoreIdentity,
};
use pavillion_proto::store::BatchId;
use pavillion_proto::Instant;

pub use pavillion_proto::features::durable::{
    DurableId, DurableLimits, DurablePeer, DurableRestored, OriginId,
};

use crate::plumbing::link::WeakLink;
use crate::plumbing::messages::ReceivedMessage;
use crate::plumbing::reply::{self, Pending, Reply};
use crate::store::{RedbStore, StoreError, StoreErrorKind};

/// The store of durable messages: one `redb` file with the tables of [`DurableTable`].
pub type DurableStore = RedbStore<DurableTable>;

/// Why a durable operation (or opening an endpoint with a durable store) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurableError {
    /// The store could not be opened, read or written: a message is not stored (and so was
    /// never sent) when its `send_durable` says this.
    #[error("durable store {path} ({kind}): {cause}")]
    Store {
        /// The store's file.
        path: String,
        /// What kind of failure.
        kind: StoreErrorKind,
        /// What the store said.
        cause: String,
    },
    /// The store was written by another identity (another client id or key): it is refused
    /// and left as it is.
    #[error("durable store {path} belongs to another identity (client id or key); refused")]
    ForeignIdentity {
        /// The store's file.
        path: String,
    },
    /// The store's records do not make a consistent state; it is left as it is.
    #[error("durable store {path}: {reason}")]
    Restore {
        /// The store's file.
        path: String,
        /// What is wrong with it.
        reason: DurableRestoreError,
    },
    /// The endpoint refused the message at once (a bad name, too large for one datagram, a
    /// multicast client).
    #[error("durable send refused: {0}")]
    Refused(proto::SendError),
    /// The durable outbox stayed full for as long as the caller was willing to wait.
    #[error("the durable outbox is full (the receiver does not acknowledge)")]
    QueueFull,
    /// The endpoint has no durable store.
    #[error("durable messages are not enabled (no store configured)")]
    NotEnabled,
    /// The endpoint closed.
    #[error("the endpoint is closed")]
    Closed,
    /// A blocking durable call made from a callback on the endpoint's own thread, which could
    /// never see its answer (blocking adapter only).
    #[error("blocking durable call made from a callback on the endpoint thread")]
    InCallback,
    /// The wait's limit passed first.
    #[error("timed out")]
    TimedOut,
}

impl DurableError {
    /// The error for a store failure.
    pub fn store(e: &StoreError) -> Self {
        DurableError::Store {
            path: e.path.clone(),
            kind: e.kind(),
            cause: e.source.to_string(),
        }
    }

    fn restore(path: &Path, reason: DurableRestoreError) -> Self {
        let path = path.display().to_string();
        match reason {
            DurableRestoreError::ForeignIdentity => DurableError::ForeignIdentity { path },
            reason => DurableError::Restore { path, reason },
        }
    }
}

impl From<reply::WaitError> for DurableError {
    fn from(e: reply::WaitError) -> Self {
        match e {
            reply::WaitError::Closed => DurableError::Closed,
            reply::WaitError::TimedOut => DurableError::TimedOut,
        }
    }
}

/// A durable message received, for the application: handle it, then consume it (the
/// handle's `consume_durable`), or it is delivered again after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableDelivery {
    /// Its end-to-end id (the same the sender's `send_durable` returned).
    pub id: DurableId,
    /// Who sent it: the server (at a client), or a client by identity (at a server).
    pub from: DurablePeer,
    /// The message. `from` is the unspecified address for a redelivery read back from the
    /// store; `peer` is the sending client at a server; `reliable` is always set.
    pub message: ReceivedMessage,
    /// Delivered before by an earlier run, read back from the store at start: the
    /// application may have acted on it already (see the consume mark).
    pub redelivered: bool,
}

/// The durable side of an endpoint, as the router drives it: the client's and the server's
/// commands under one shape (a client's only peer is [`DurablePeer::Server`]).
pub trait DurableEndpoint {
    /// The identity its store must belong to.
    fn durable_identity(&self) -> StoreIdentity;
    /// `enable_durable`.
    ///
    /// # Errors
    /// As the endpoint's.
    fn enable_durable<'a>(
        &mut self,
        now: Instant,
        records: impl IntoIterator<Item = DurableRecord<'a>>,
    ) -> Result<DurableRestored, DurableRestoreError>;
    /// `send_durable` to `to`.
    ///
    /// # Errors
    /// As the endpoint's; [`proto::SendError::Unsupported`] for a peer this role has not.
    #[allow(clippy::too_many_arguments)]
    fn send_durable(
        &mut self,
        now: Instant,
        to: DurablePeer,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
    ) -> Result<DurableId, proto::SendError>;
    /// `cancel_durable`.
    fn cancel_durable(&mut self, now: Instant, id: DurableId) -> bool;
    /// `consume_durable` of a message from `from`.
    fn consume_durable(
        &mut self,
        now: Instant,
        from: DurablePeer,
        id: DurableId,
        mark: Option<u64>,
    ) -> bool;
    /// `durable_queued`.
    fn durable_queued(&self) -> usize;
    /// `poll_store`.
    fn poll_store(&mut self) -> Option<DurableBatch>;
    /// `stored`.
    fn stored(&mut self, now: Instant, batch: BatchId);
    /// `store_failed`.
    fn store_failed(&mut self, now: Instant, batch: BatchId);
}

/// The commands whose shape is the same for both roles, forwarded to the role's own.
macro_rules! forward_durable {
    ($role:path) => {
        fn durable_identity(&self) -> StoreIdentity {
            <$role>::durable_identity(self)
        }
        fn enable_durable<'a>(
            &mut self,
            now: Instant,
            records: impl IntoIterator<Item = DurableRecord<'a>>,
        ) -> Result<DurableRestored, DurableRestoreError> {
            <$role>::enable_durable(self, now, records)
        }
        fn cancel_durable(&mut self, now: Instant, id: DurableId) -> bool {
            <$role>::cancel_durable(self, now, id)
        }
        fn durable_queued(&self) -> usize {
            <$role>::durable_queued(self)
        }
        fn poll_store(&mut self) -> Option<DurableBatch> {
            <$role>::poll_store(self)
        }
        fn stored(&mut self, now: Instant, batch: BatchId) {
            <$role>::stored(self, now, batch);
        }
        fn store_failed(&mut self, now: Instant, batch: BatchId) {
            <$role>::store_failed(self, now, batch);
        }
    };
}

impl DurableEndpoint for proto::Client {
    forward_durable!(proto::Client);

    fn send_durable(
        &mut self,
        now: Instant,
        to: DurablePeer,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
    ) -> Result<DurableId, proto::SendError> {
        match to {
            DurablePeer::Server => {
                proto::Client::send_durable(self, now, target, name, payload, mark)
            }
            DurablePeer::Client(_) => Err(proto::SendError::Unsupported),
        }
    }
    fn consume_durable(
        &mut self,
        now: Instant,
        from: DurablePeer,
        id: DurableId,
        mark: Option<u64>,
    ) -> bool {
        from == DurablePeer::Server && proto::Client::consume_durable(self, now, id, mark)
    }
}

impl DurableEndpoint for proto::Server {
    forward_durable!(proto::Server);

    fn send_durable(
        &mut self,
        now: Instant,
        to: DurablePeer,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
    ) -> Result<DurableId, proto::SendError> {
        match to {
            DurablePeer::Client(peer) => {
                proto::Server::send_durable(self, now, peer, target, name, payload, mark)
            }
            DurablePeer::Server => Err(proto::SendError::Unsupported),
        }
    }
    fn consume_durable(
        &mut self,
        now: Instant,
        from: DurablePeer,
        id: DurableId,
        mark: Option<u64>,
    ) -> bool {
        match from {
            DurablePeer::Client(peer) => proto::Server::consume_durable(self, now, peer, id, mark),
            DurablePeer::Server => false,
        }
    }
}

/// What [`open_store`] gives back.
#[derive(Debug)]
#[non_exhaustive]
pub struct OpenedStore {
    /// The store, for the writer.
    pub store: DurableStore,
    /// What the endpoint restored.
    pub restored: DurableRestored,
    /// The seqs of our messages queued again (their outcomes may be waited for).
    pub queued: Vec<DurableSeq>,
}

/// Opens the store at `path` and restores `endpoint` from it.
///
/// # Errors
/// [`DurableError::Store`] (cannot open or read; corrupt or truncated: untouched),
/// [`DurableError::ForeignIdentity`], [`DurableError::Restore`].
pub fn open_store<E: DurableEndpoint>(
    path: &Path,
    endpoint: &mut E,
    now: Instant,
) -> Result<OpenedStore, DurableError> {
    let store = DurableStore::open(path).map_err(|e| DurableError::store(&e))?;
    let records = store.load().map_err(|e| DurableError::store(&e))?;
    let restored = endpoint
        .enable_durable(now, records.iter())
        .map_err(|r| DurableError::restore(path, r))?;
    tracing::info!(
        path = %path.display(),
        origin = %format_args!("{:016x}", restored.origin.0),
        queued = restored.queued,
        inbox = restored.inbox,
        fresh = restored.fresh,
        "durable store opened"
    );
    let queued = queued_seqs(&records);
    Ok(OpenedStore {
        store,
        restored,
        queued,
    })
}

/// The durable side of a router being opened: nothing without `path`; with it, the store
/// opened, `endpoint` restored from it, and a writer whose reports reach the loop as commands
/// on `link` (`wrap` makes one of the role's commands of a [`DurableCommand`]).
///
/// # Errors
/// As [`open_store`]; [`DurableError::Store`] if the writer thread cannot start.
pub fn start<E: DurableEndpoint, C: Send + 'static>(
    path: Option<&Path>,
    endpoint: &mut E,
    now: Instant,
    link: WeakLink<C>,
    wrap: fn(DurableCommand) -> C,
) -> Result<DurableRouter, DurableError> {
    let Some(path) = path else {
        return Ok(DurableRouter::default());
    };
    let opened = open_store(path, endpoint, now)?;
    let writer = StoreWriter::spawn(opened.store, move |done| {
        // A loop that is gone has nothing left to tell.
        if let Some(link) = link.upgrade() {
            let _ = link.send(wrap(DurableCommand::done(done)));
        }
    })
    .map_err(|e| DurableError::Store {
        path: path.display().to_string(),
        kind: StoreErrorKind::Io,
        cause: format!("cannot start the store's writer thread: {e}"),
    })?;
    Ok(DurableRouter::enabled(
        writer,
        opened.restored,
        opened.queued,
    ))
}

/// What the writer reports after each commit: the last batch of it, and how it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreDone {
    /// The last batch written (or not) in the commit; every batch before it was in it or in
    /// an earlier commit.
    pub last: BatchId,
    /// Whether the commit succeeded.
    pub result: Result<(), DurableError>,
}

/// The store's writer thread: batches in, one transaction per group of batches that queued
/// up during the previous commit, [`StoreDone`] out through a callback (the adapters send it
/// to their loop as a command).
///
/// Dropping it lets the thread write what is queued, then waits for it, so the store's file
/// is free when the endpoint's close returns.
pub struct StoreWriter {
    tx: Option<mpsc::Sender<DurableBatch>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreWriter")
    }
}

impl StoreWriter {
    /// Starts the writer of `store`; `done` runs on its thread after each commit.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn spawn(
        store: DurableStore,
        done: impl Fn(StoreDone) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<DurableBatch>();
        let thread = std::thread::Builder::new()
            .name("pavillion-store".into())
            .spawn(move || {
                let mut group = Vec::new();
                while let Ok(first) = rx.recv() {
                    group.push(first);
                    group.extend(rx.try_iter());
                    let last = group.last().map_or(BatchId(0), |b| b.id);
                    let result = store.apply_all(&group).map_err(|e| DurableError::store(&e));
                    if let Err(e) = &result {
                        tracing::warn!(error = %e, "durable store write failed");
                    }
                    tracing::trace!(batches = group.len(), last = last.0, "durable commit");
                    group.clear();
                    done(StoreDone { last, result });
                }
            })?;
        Ok(StoreWriter {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `batch` for the next commit.
    pub fn submit(&self, batch: DurableBatch) {
        if let Some(tx) = &self.tx {
            // The thread only ends when we drop `tx`.
            let _ = tx.send(batch);
        }
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// A command of the durable API, from a handle to its loop (opaque: the router reads it).
pub struct DurableCommand(pub(crate) Cmd);

impl std::fmt::Debug for DurableCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DurableCommand")
    }
}

pub(crate) enum Cmd {
    Send {
        to: DurablePeer,
        target: String,
        name: String,
        payload: Bytes,
        mark: Option<u64>,
        /// How long to wait for room in a full outbox; `None`: as long as the endpoint lives.
        wait: Option<Duration>,
        reply: Reply<Result<DurableId, DurableError>>,
    },
    Cancel {
        id: DurableId,
        reply: Reply<bool>,
    },
    Consume {
        from: DurablePeer,
        id: DurableId,
        mark: Option<u64>,
        reply: Reply<bool>,
    },
    Recv {
        timeout: Option<Duration>,
        reply: Reply<Option<DurableDelivery>>,
    },
    WaitDelivered {
        id: DurableId,
        timeout: Option<Duration>,
        reply: Reply<Result<(), DurableError>>,
    },
    WaitDrained {
        timeout: Option<Duration>,
        reply: Reply<bool>,
    },
    Queued {
        reply: Reply<usize>,
    },
    Relay {
        from: DurablePeer,
        id: DurableId,
        mark: Option<u64>,
        to: Vec<DurablePeer>,
        target: String,
        name: String,
        payload: Bytes,
        reply: Reply<Result<Vec<DurableId>, DurableError>>,
    },
    Done(StoreDone),
}

impl DurableCommand {
    /// Sends a durable message to `to`; answered once it is stored. `wait` bounds the wait
    /// for room in a full outbox (`None`: no bound).
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        to: DurablePeer,
        target: &str,
        name: &str,
        payload: &[u8],
        mark: Option<u64>,
        wait: Option<Duration>,
    ) -> (Self, Pending<Result<DurableId, DurableError>>) {
        let (reply, pending) = reply::channel();
        let cmd = Cmd::Send {
            to,
            target: target.into(),
            name: name.into(),
            payload: Bytes::copy_from_slice(payload),
            mark,
            wait,
            reply,
        };
        (DurableCommand(cmd), pending)
    }

    /// Stops retrying a durable message of ours; false if it is not queued.
    pub fn cancel(id: DurableId) -> (Self, Pending<bool>) {
        let (reply, pending) = reply::channel();
        (DurableCommand(Cmd::Cancel { id, reply }), pending)
    }

    /// The application is done with a received message (see [`DurableDelivery`]); false if
    /// it is not in the inbox.
    pub fn consume(from: DurablePeer, id: DurableId, mark: Option<u64>) -> (Self, Pending<bool>) {
        let (reply, pending) = reply::channel();
        let cmd = Cmd::Consume {
            from,
            id,
            mark,
            reply,
        };
        (DurableCommand(cmd), pending)
    }

    /// The next received message, or `None` after `timeout` (`None`: no bound).
    pub fn recv(timeout: Option<Duration>) -> (Self, Pending<Option<DurableDelivery>>) {
        let (reply, pending) = reply::channel();
        (DurableCommand(Cmd::Recv { timeout, reply }), pending)
    }

    /// Answered when message `id` of ours is acknowledged (or was cancelled: it is no longer
    /// queued either way), or [`DurableError::TimedOut`] after `timeout`.
    pub fn wait_delivered(
        id: DurableId,
        timeout: Option<Duration>,
    ) -> (Self, Pending<Result<(), DurableError>>) {
        let (reply, pending) = reply::channel();
        let cmd = Cmd::WaitDelivered { id, timeout, reply };
        (DurableCommand(cmd), pending)
    }

    /// Answered `true` once nothing of ours is queued (every durable message acknowledged or
    /// cancelled), `false` after `timeout`.
    pub fn wait_drained(timeout: Option<Duration>) -> (Self, Pending<bool>) {
        let (reply, pending) = reply::channel();
        (DurableCommand(Cmd::WaitDrained { timeout, reply }), pending)
    }

    /// How many durable messages of ours are queued.
    pub fn queued() -> (Self, Pending<usize>) {
        let (reply, pending) = reply::channel();
        (DurableCommand(Cmd::Queued { reply }), pending)
    }

    /// Forwards a received message durably to each of `to`, and consumes it (with `mark`),
    /// in **one** batch: after a crash either all of that is stored or none of it, so a relay
    /// never forwards a message twice nor loses it. Answered at once with the new ids (not
    /// when stored); [`DurableError::QueueFull`] if the outbox has no room for all of them
    /// (nothing is then sent or consumed: try again later).
    #[allow(clippy::too_many_arguments)]
    pub fn relay(
        delivery: &DurableDelivery,
        to: Vec<DurablePeer>,
        mark: Option<u64>,
    ) -> (Self, Pending<Result<Vec<DurableId>, DurableError>>) {
        let (reply, pending) = reply::channel();
        let m = &delivery.message;
        let cmd = Cmd::Relay {
            from: delivery.from,
            id: delivery.id,
            mark,
            to,
            target: m.target().to_string(),
            name: m.name().to_string(),
            payload: m.payload_bytes(),
            reply,
        };
        (DurableCommand(cmd), pending)
    }

    /// The writer's report (sent by the writer's callback).
    pub fn done(done: StoreDone) -> Self {
        DurableCommand(Cmd::Done(done))
    }
}

/// A send waiting for room in the outbox.
struct Backlogged {
    to: DurablePeer,
    target: String,
    name: String,
    payload: Bytes,
    mark: Option<u64>,
    deadline: Option<Instant>,
    reply: Reply<Result<DurableId, DurableError>>,
}

type SendReply = Reply<Result<DurableId, DurableError>>;
type DeliveredReply = Reply<Result<(), DurableError>>;

/// The durable state of a router (client or server): the writer, and who waits for what.
#[derive(Default)]
pub struct DurableRouter {
    writer: Option<StoreWriter>,
    restored: Option<DurableRestored>,
    /// Sends made since the last `poll_store`: they are in the next batch.
    unbatched: Vec<(DurableId, SendReply)>,
    /// Sends waiting for their batch to be stored.
    storing: BTreeMap<BatchId, Vec<(DurableId, SendReply)>>,
    backlog: VecDeque<Backlogged>,
    /// Our messages not yet acknowledged or cancelled that a caller may wait for.
    queued: BTreeSet<DurableSeq>,
    delivered_waiters: Vec<(DurableId, Option<Instant>, DeliveredReply)>,
    drained_waiters: Vec<(Option<Instant>, Reply<bool>)>,
    /// Received, not yet handed to a caller: bounded by the endpoint's inbox limit (each is
    /// in the endpoint's inbox until consumed) plus the redeliveries of a restore.
    inbox: VecDeque<DurableDelivery>,
    recv_waiters: VecDeque<(Option<Instant>, Reply<Option<DurableDelivery>>)>,
}

impl std::fmt::Debug for DurableRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableRouter")
            .field("enabled", &self.writer.is_some())
            .field("queued", &self.queued.len())
            .field("inbox", &self.inbox.len())
            .finish_non_exhaustive()
    }
}

fn deadline(now: Instant, timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| now + t)
}

impl DurableRouter {
    /// Durability on: `writer` writes the batches; `restored` is what the store gave back,
    /// and `queued` the seqs of the messages it holds (their outcomes may be waited for).
    pub fn enabled(
        writer: StoreWriter,
        restored: DurableRestored,
        queued: impl IntoIterator<Item = DurableSeq>,
    ) -> Self {
        DurableRouter {
            writer: Some(writer),
            restored: Some(restored),
            queued: queued.into_iter().collect(),
            ..DurableRouter::default()
        }
    }

    /// The endpoint closed: hands over what is left (`pump` first), lets the writer commit
    /// it and waits for the writer to end, so the store's file is free when the loop ends.
    /// Without this the writer could outlive the loop, and the file stay locked for a moment
    /// after the handle's close returned.
    pub fn shutdown<E: DurableEndpoint>(&mut self, ep: &mut E, now: Instant) {
        self.pump(ep, now);
        self.writer = None;
    }

    /// What the store gave back at start, if durability is on.
    pub fn restored(&self) -> Option<DurableRestored> {
        self.restored
    }

    fn origin(&self) -> Option<OriginId> {
        self.restored.map(|r| r.origin)
    }

    /// Carries out one command.
    pub fn on_command<E: DurableEndpoint>(
        &mut self,
        ep: &mut E,
        now: Instant,
        cmd: DurableCommand,
    ) {
        let enabled = self.writer.is_some();
        match cmd.0 {
            Cmd::Send {
                to,
                target,
                name,
                payload,
                mark,
                wait,
                reply,
            } => {
                if !enabled {
                    return reply.send(Err(DurableError::NotEnabled));
                }
                let b = Backlogged {
                    to,
                    target,
                    name,
                    payload,
                    mark,
                    deadline: deadline(now, wait),
                    reply,
                };
                // Behind those already waiting for room: sends keep their order.
                if self.backlog.is_empty() {
                    if let Some(b) = self.try_send(ep, now, b) {
                        self.backlog.push_back(b);
                    }
                } else {
                    self.backlog.push_back(b);
                }
            }
            Cmd::Cancel { id, reply } => {
                let done = enabled && ep.cancel_durable(now, id);
                if done && Some(id.origin) == self.origin() {
                    self.resolved(id.seq);
                }
                reply.send(done);
            }
            Cmd::Consume {
                from,
                id,
                mark,
                reply,
            } => reply.send(enabled && ep.consume_durable(now, from, id, mark)),
            Cmd::Recv { timeout, reply } => {
                if let Some(d) = self.inbox.pop_front() {
                    return reply.send(Some(d));
                }
                if timeout == Some(Duration::ZERO) {
                    return reply.send(None);
                }
                self.recv_waiters.retain(|(_, r)| !r.is_closed());
                self.recv_waiters.push_back((deadline(now, timeout), reply));
            }
            Cmd::WaitDelivered { id, timeout, reply } => {
                if !enabled {
                    return reply.send(Err(DurableError::NotEnabled));
                }
                if Some(id.origin) != self.origin() || !self.queued.contains(&id.seq) {
                    return reply.send(Ok(()));
                }
                self.delivered_waiters.retain(|(_, _, r)| !r.is_closed());
                self.delivered_waiters
                    .push((id, deadline(now, timeout), reply));
            }
            Cmd::WaitDrained { timeout, reply } => {
                if ep.durable_queued() == 0 && self.backlog.is_empty() {
                    return reply.send(true);
                }
                self.drained_waiters.retain(|(_, r)| !r.is_closed());
                self.drained_waiters.push((deadline(now, timeout), reply));
            }
            Cmd::Queued { reply } => reply.send(ep.durable_queued() + self.backlog.len()),
            Cmd::Relay {
                from,
                id,
                mark,
                to,
                target,
                name,
                payload,
                reply,
            } => {
                if !enabled {
                    return reply.send(Err(DurableError::NotEnabled));
                }
                reply.send(self.relay(ep, now, from, id, mark, &to, &target, &name, &payload));
            }
            Cmd::Done(StoreDone { last, result }) => match result {
                Ok(()) => {
                    ep.stored(now, last);
                    for (_, waiting) in self.take_storing(last) {
                        for (id, reply) in waiting {
                            reply.send(Ok(id));
                        }
                    }
                }
                Err(e) => {
                    ep.store_failed(now, last);
                    for (_, waiting) in self.take_storing(last) {
                        for (id, reply) in waiting {
                            self.queued.remove(&id.seq);
                            reply.send(Err(e.clone()));
                        }
                    }
                }
            },
        }
    }

    /// The sends and the consume of a relay, all in the batch being filled now.
    #[allow(clippy::too_many_arguments)]
    fn relay<E: DurableEndpoint>(
        &mut self,
        ep: &mut E,
        now: Instant,
        from: DurablePeer,
        id: DurableId,
        mark: Option<u64>,
        to: &[DurablePeer],
        target: &str,
        name: &str,
        payload: &[u8],
    ) -> Result<Vec<DurableId>, DurableError> {
        let mut sent = Vec::new();
        for peer in to {
            match ep.send_durable(now, *peer, target, name, payload, None) {
                Ok(new) => sent.push(new),
                Err(e) => {
                    // Undone in the same batch: as if none was made.
                    for new in sent {
                        ep.cancel_durable(now, new);
                    }
                    return Err(match e {
                        proto::SendError::QueueFull => DurableError::QueueFull,
                        proto::SendError::Closed => DurableError::Closed,
                        e => DurableError::Refused(e),
                    });
                }
            }
        }
        self.queued.extend(sent.iter().map(|i| i.seq));
        ep.consume_durable(now, from, id, mark);
        Ok(sent)
    }

    fn take_storing(&mut self, last: BatchId) -> BTreeMap<BatchId, Vec<(DurableId, SendReply)>> {
        let later = self.storing.split_off(&BatchId(last.0.saturating_add(1)));
        std::mem::replace(&mut self.storing, later)
    }

    /// Gives `b` to the endpoint; gives it back if the outbox is full.
    fn try_send<E: DurableEndpoint>(
        &mut self,
        ep: &mut E,
        now: Instant,
        b: Backlogged,
    ) -> Option<Backlogged> {
        match ep.send_durable(now, b.to, &b.target, &b.name, &b.payload, b.mark) {
            Ok(id) => {
                self.queued.insert(id.seq);
                self.unbatched.push((id, b.reply));
                None
            }
            Err(proto::SendError::QueueFull) => Some(b),
            Err(proto::SendError::NotDurable) => {
                b.reply.send(Err(DurableError::NotEnabled));
                None
            }
            Err(proto::SendError::Closed) => {
                b.reply.send(Err(DurableError::Closed));
                None
            }
            Err(e) => {
                b.reply.send(Err(DurableError::Refused(e)));
                None
            }
        }
    }

    fn resolved(&mut self, seq: DurableSeq) {
        self.queued.remove(&seq);
        let origin = self.origin();
        for (_, _, reply) in
            crate::plumbing::client::extract(&mut self.delivered_waiters, |(id, _, _)| {
                Some(id.origin) == origin && id.seq == seq
            })
        {
            reply.send(Ok(()));
        }
    }

    /// Takes the endpoint's durable events (the router passes every event through; the
    /// others come back).
    pub fn on_client_event(&mut self, event: ClientEvent) -> Option<ClientEvent> {
        match event {
            ClientEvent::DurableDelivered { id } => self.on_delivered(id),
            ClientEvent::DurableFailed { id, reason } => self.on_failed(id, reason),
            ClientEvent::DurableMessage {
                id,
                message,
                redelivered,
            } => self.on_message(DurableDelivery {
                id,
                from: DurablePeer::Server,
                message: ReceivedMessage::at_client(message),
                redelivered,
            }),
            other => return Some(other),
        }
        None
    }

    /// As [`DurableRouter::on_client_event`], for a server's events.
    pub fn on_server_event(&mut self, event: ServerEvent) -> Option<ServerEvent> {
        match event {
            ServerEvent::DurableDelivered { id, .. } => self.on_delivered(id),
            ServerEvent::DurableFailed { id, reason } => self.on_failed(id, reason),
            ServerEvent::DurableMessage {
                peer,
                id,
                message,
                redelivered,
            } => self.on_message(DurableDelivery {
                id,
                from: DurablePeer::Client(peer),
                message: ReceivedMessage::at_server(peer, message),
                redelivered,
            }),
            other => return Some(other),
        }
        None
    }

    fn on_delivered(&mut self, id: DurableId) {
        tracing::trace!(%id, "durable message acknowledged");
        self.resolved(id.seq);
    }

    fn on_failed(&mut self, id: DurableId, reason: DurableFailure) {
        tracing::debug!(%id, ?reason, "durable message failed");
        // The sender learns it from its batch's `StoreDone`; a waiter for delivery learns it
        // here (the message is gone).
        self.resolved(id.seq);
    }

    fn on_message(&mut self, d: DurableDelivery) {
        while let Some((_, reply)) = self.recv_waiters.pop_front() {
            if !reply.is_closed() {
                return reply.send(Some(d));
            }
        }
        self.inbox.push_back(d);
    }

    /// After each pass of the loop: retries the sends waiting for room, hands every batch
    /// the endpoint has to the writer, answers the waits that are over.
    pub fn pump<E: DurableEndpoint>(&mut self, ep: &mut E, now: Instant) {
        if self.writer.is_none() {
            return;
        }
        // Retried first: every operation until the next poll shares its batch, so the
        // retried sends are in the batch polled below.
        while let Some(b) = self.backlog.pop_front() {
            if let Some(b) = self.try_send(ep, now, b) {
                self.backlog.push_front(b);
                break;
            }
        }
        let mut last = None;
        if let Some(writer) = &self.writer {
            while let Some(batch) = ep.poll_store() {
                last = Some(batch.id);
                writer.submit(batch);
            }
        }
        if let Some(last) = last {
            if !self.unbatched.is_empty() {
                let sends = std::mem::take(&mut self.unbatched);
                self.storing.entry(last).or_default().extend(sends);
            }
        }
        if ep.durable_queued() == 0 && self.backlog.is_empty() {
            for (_, reply) in self.drained_waiters.drain(..) {
                reply.send(true);
            }
        }
        self.expire(now);
    }

    /// The earliest deadline of a caller waiting here.
    pub fn waiter_deadline(&self) -> Option<Instant> {
        // Asked on every pass of either driver, when almost always nothing waits: four empty
        // chained scans cost some 100 instructions a pass (issue 19).
        if self.backlog.is_empty()
            && self.recv_waiters.is_empty()
            && self.delivered_waiters.is_empty()
            && self.drained_waiters.is_empty()
        {
            return None;
        }
        let backlog = self.backlog.iter().filter_map(|b| b.deadline);
        let recv = self.recv_waiters.iter().filter_map(|(d, _)| *d);
        let delivered = self.delivered_waiters.iter().filter_map(|(_, d, _)| *d);
        let drained = self.drained_waiters.iter().filter_map(|(d, _)| *d);
        backlog.chain(recv).chain(delivered).chain(drained).min()
    }

    /// Answers the waits whose deadline has passed.
    pub fn expire(&mut self, now: Instant) {
        let due = |d: &Option<Instant>| d.is_some_and(|d| d <= now);
        if self.backlog.iter().any(|b| due(&b.deadline)) {
            let (late, kept) = std::mem::take(&mut self.backlog)
                .into_iter()
                .partition::<VecDeque<_>, _>(|b| due(&b.deadline));
            self.backlog = kept;
            for b in late {
                b.reply.send(Err(DurableError::QueueFull));
            }
        }
        if self.recv_waiters.iter().any(|(d, _)| due(d)) {
            let (late, kept) = std::mem::take(&mut self.recv_waiters)
                .into_iter()
                .partition::<VecDeque<_>, _>(|(d, _)| due(d));
            self.recv_waiters = kept;
            for (_, reply) in late {
                reply.send(None);
            }
        }
        for (_, _, reply) in
            crate::plumbing::client::extract(&mut self.delivered_waiters, |(_, d, _)| due(d))
        {
            reply.send(Err(DurableError::TimedOut));
        }
        for (_, reply) in
            crate::plumbing::client::extract(&mut self.drained_waiters, |(d, _)| due(d))
        {
            reply.send(false);
        }
    }
}

/// The seqs of the `outbox` rows of a store's records (what a restore queues again).
fn queued_seqs(records: &crate::store::Records<DurableTable>) -> Vec<DurableSeq> {
    records
        .0
        .iter()
        .filter(|(t, _, _)| *t == DurableTable::Outbox)
        .filter_map(|(_, k, _)| <[u8; 8]>::try_from(k.as_slice()).ok())
        .map(|k| DurableSeq(u64::from_be_bytes(k)))
        .collect()
}

#[cfg(test)]
#[path = "durable_tests.rs"]
mod tests;
