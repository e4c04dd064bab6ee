//! The loop both roles share: one socket, one task, a role driven by datagrams, commands
//! and its own timer, and an authority's store batches written before the role hears they are.

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use async_channel::{Receiver, Sender, TrySendError};
use async_io::{Async, Timer};
use futures_lite::future;
use pavillion_io::authority::Store;
use pavillion_io::tap::Tap;
use pavillion_io::StdClock;
use pavillion_proto::endpoint::{BatchId, StoreBatch, Transmit};
use pavillion_proto::keylog::SessionSecret;
use pavillion_proto::wire;
use pavillion_proto::Instant;

/// What the loop needs of a role.
pub(super) trait Role: Send + 'static {
    type Command: Send + 'static;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;

    /// The next batch to write, and the store to write it to (`None`: nothing to write it
    /// to, it counts as written at once).
    fn poll_store(&mut self) -> Option<(StoreBatch, Option<Arc<Store>>)> {
        None
    }

    /// The batch is written.
    fn stored(&mut self, now: Instant, batch: BatchId) {
        let _ = (now, batch);
    }

    /// A store write failed (`why`); the loop stops next.
    fn failed(&mut self, why: String) {
        let _ = why;
    }

    /// Carries out a command; `false` to close.
    fn on_command(&mut self, now: Instant, command: Self::Command) -> bool;

    /// Reports the role's events.
    fn dispatch(&mut self, now: Instant);

    fn close(&mut self, now: Instant);

    /// Turns the role's key log on (see `pavillion_io::tap`).
    fn set_key_log(&mut self, on: bool) {
        let _ = on;
    }

    /// The role's next secret for the key log.
    fn poll_secret(&mut self) -> Option<SessionSecret> {
        None
    }
}

/// The process's tap and the socket's own address, when the key log or a capture is on.
type Tapped<'a> = Option<(&'a Tap, SocketAddr)>;

/// What woke the task.
enum Wake<C> {
    Command(Option<C>),
    Datagram(io::Result<(usize, SocketAddr)>),
    Timeout,
}

/// The task: returns when a command closes the role, every handle is gone, or a store write
/// fails (the role must not publish what was not written, so it stops).
pub(super) async fn drive<R: Role>(
    mut role: R,
    socket: Async<UdpSocket>,
    commands: Receiver<R::Command>,
) {
    let clock = StdClock::new();
    let mut rx = vec![0u8; 65_536];
    let mut tx = vec![0u8; wire::MAX_DATAGRAM];
    // The key log and capture, if this process writes them (`pavillion_io::tap`).
    let tap = Tap::for_driver();
    if tap.as_ref().is_some_and(|t| t.logs_keys()) {
        role.set_key_log(true);
    }
    let local = socket.get_ref().local_addr().ok();
    let tap = tap.as_deref().zip(local);
    // A member queues its first handshake when created.
    if !after(&mut role, &socket, &clock, &mut tx, tap).await {
        return;
    }
    loop {
        let now = clock.now();
        let deadline = role.poll_timeout();
        if deadline.is_some_and(|t| t <= now) {
            role.handle_timeout(now);
            if !after(&mut role, &socket, &clock, &mut tx, tap).await {
                return;
            }
            continue;
        }
        let timer = deadline
            .and_then(|t| clock.to_std(t))
            .map_or_else(Timer::never, Timer::at);
        let wake = future::or(
            async { Wake::Command(commands.recv().await.ok()) },
            future::or(
                async { Wake::Datagram(socket.recv_from(&mut rx).await) },
                async {
                    timer.await;
                    Wake::Timeout
                },
            ),
        )
        .await;
        let now = clock.now();
        match wake {
            Wake::Command(command) => {
                if !command.is_some_and(|c| role.on_command(now, c)) {
                    role.close(now);
                    after(&mut role, &socket, &clock, &mut tx, tap).await;
                    return;
                }
            }
            Wake::Datagram(Ok((n, from))) => {
                let datagram = rx.get(..n).unwrap_or_default();
                if let Some((tap, local)) = tap {
                    tap.datagram(local, from, true, datagram);
                }
                role.handle_datagram(now, from, datagram);
            }
            // ICMP errors of earlier sends surface here; the role's timers deal with a peer
            // that is gone.
            Wake::Datagram(Err(e)) => tracing::debug!("recv_from: {e}"),
            Wake::Timeout => role.handle_timeout(now),
        }
        if !after(&mut role, &socket, &clock, &mut tx, tap).await {
            return;
        }
    }
}

/// Sends what the role queued, writes its batches and tells it they are written (which may
/// queue publications), reports its events (handlers may queue answers), and sends again.
/// `false` if a store write failed.
async fn after<R: Role>(
    role: &mut R,
    socket: &Async<UdpSocket>,
    clock: &StdClock,
    buf: &mut [u8],
    tap: Tapped<'_>,
) -> bool {
    loop {
        flush(role, socket, clock.now(), buf, tap).await;
        let Some((batch, store)) = role.poll_store() else {
            break;
        };
        let id = batch.id;
        if let Some(store) = store {
            // On the blocking pool: a commit waits for the disk, the executor must not.
            let written = smol::unblock(move || store.apply(&batch)).await;
            if let Err(e) = written {
                tracing::error!("authority: {e}; stopping, since nothing more can be made durable");
                role.failed(e.to_string());
                role.close(clock.now());
                flush(role, socket, clock.now(), buf, tap).await;
                return false;
            }
        }
        role.stored(clock.now(), id);
    }
    role.dispatch(clock.now());
    flush(role, socket, clock.now(), buf, tap).await;
    true
}

async fn flush<R: Role>(
    role: &mut R,
    socket: &Async<UdpSocket>,
    now: Instant,
    buf: &mut [u8],
    tap: Tapped<'_>,
) {
    if let Some((tap, _)) = tap {
        while let Some(secret) = role.poll_secret() {
            tap.secret(&secret);
        }
    }
    while let Some(t) = role.poll_transmit(now, buf) {
        let datagram = buf.get(..t.len).unwrap_or_default();
        if let Err(e) = socket.send_to(datagram, t.destination).await {
            // A lost datagram is the role's business: it retransmits what matters.
            tracing::debug!("send_to {}: {e}", t.destination);
        }
        if let Some((tap, local)) = tap {
            tap.datagram(local, t.destination, false, datagram);
        }
    }
}

/// Queues an event for the handle, or drops it if nobody reads them.
pub(super) fn notify<T: fmt::Debug>(to: &Sender<T>, event: T) {
    if let Err(TrySendError::Full(e)) = to.try_send(event) {
        tracing::debug!("event dropped (nobody reads them): {e:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pavillion_proto::endpoint::{StoreOp, StoreTable};
    use std::time::Duration;

    /// A role that has one batch to store and publishes (one datagram) only once it is told
    /// the batch is written, as the authority does; it would also send a datagram while the
    /// write is under way, if the loop asked it then.
    struct Publisher {
        batch: Option<StoreBatch>,
        store: Arc<Store>,
        to: SocketAddr,
        writing: bool,
        publish: bool,
    }

    impl Role for Publisher {
        type Command = ();

        fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {}
        fn handle_timeout(&mut self, _: Instant) {}
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn poll_transmit(&mut self, _: Instant, buf: &mut [u8]) -> Option<Transmit> {
            let message: &[u8] = if std::mem::take(&mut self.writing) {
                b"early"
            } else if std::mem::take(&mut self.publish) {
                b"published"
            } else {
                return None;
            };
            buf.get_mut(..message.len())?.copy_from_slice(message);
            Some(Transmit {
                destination: self.to,
                len: message.len(),
            })
        }
        fn poll_store(&mut self) -> Option<(StoreBatch, Option<Arc<Store>>)> {
            let b = self.batch.take()?;
            self.writing = true;
            Some((b, Some(self.store.clone())))
        }
        fn stored(&mut self, _: Instant, batch: BatchId) {
            assert_eq!(batch, BatchId(9));
            self.writing = false;
            self.publish = true;
        }
        fn on_command(&mut self, _: Instant, (): ()) -> bool {
            false
        }
        fn dispatch(&mut self, _: Instant) {}
        fn close(&mut self, _: Instant) {}
    }

    #[test]
    fn a_batch_is_written_before_the_role_hears_so_and_publishes() {
        let path =
            std::env::temp_dir().join(format!("pavillion-smol-driver-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let role = Publisher {
            batch: Some(StoreBatch {
                id: BatchId(9),
                ops: vec![StoreOp::Put {
                    table: StoreTable::Members,
                    key: b"m".to_vec(),
                    value: b"entry".to_vec(),
                }],
            }),
            store: Arc::new(Store::open(&path).unwrap()),
            to: peer.local_addr().unwrap(),
            writing: false,
            publish: false,
        };
        let socket = Async::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let (commands, rx) = async_channel::unbounded::<()>();
        let task = smol::spawn(drive(role, socket, rx));
        let mut buf = [0u8; 64];
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        // Nothing is sent between poll_store and stored: the first datagram is the
        // publication that follows the write.
        assert_eq!(&buf[..n], b"published");
        drop(commands);
        smol::block_on(task);
        let records = Store::open(&path).unwrap().load().unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(records.0.len(), 1, "the batch is in the file");
    }
}
