//! A relay of the mesh as one `smol` task: the mesh socket, the segment's capture sockets and
//! its emission, with an async handle that reports peers going up and down, the emitter
//! election and counters.
//!
//! Each capture socket has a small task of its own that hands what it reads to the relay's
//! task through a bounded channel, so the relay waits on one channel however many ports and
//! groups it carries; a full channel makes the capture tasks wait (the kernel's socket buffer
//! then absorbs or drops bursts, as it would for any slow reader).
//!
//! Without a segment ([`RelayOptions::segment`] `None`) the relay neither captures nor emits
//! on the network: datagrams come from [`Relay::inject`] and emissions are reported as
//! [`RelayNotice::Emitted`], which is how tests run relays on loopback without broadcasting.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;

use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use futures_lite::future;
use pavillion_io::metrics::{MetricsServer, MetricsSnapshot, MetricsSource};
use pavillion_io::plumbing::reply;
use pavillion_io::relay::Command;
use pavillion_io::relay::{self, EmitStep, NOTICES};
pub use pavillion_io::relay::{Emitted, RelayNotice, RelayOptions, SegmentOptions};
use pavillion_io::segment::{self, Emission};
use pavillion_io::tap::Tap;
use pavillion_io::{OpenError, StdClock};
use pavillion_proto::endpoint::{
    Emit, PeerStatus, Relay as Core, RelayId, RelayPeer, RelayStats, Scope, Stats,
};

/// Captured datagrams waiting for the relay's task.
const CAPTURED: usize = 256;

/// A running relay. Dropping the handle closes it (without waiting; [`Relay::close`] waits).
#[derive(Debug)]
pub struct Relay {
    id: RelayId,
    mesh_addr: SocketAddr,
    commands: Sender<Command>,
    notices: Receiver<RelayNotice>,
    task: Mutex<Option<smol::Task<()>>>,
}

impl Relay {
    /// Binds the mesh socket (and the segment's sockets) and starts the relay's task on
    /// smol's global executor; the handshakes with the configured peers start at once.
    pub fn open(options: RelayOptions) -> Result<Relay, OpenError> {
        let mesh = UdpSocket::bind(options.mesh_bind)?;
        let mesh_addr = mesh.local_addr()?;
        let captures = match &options.segment {
            Some(s) => {
                if matches!(s.emission, Emission::Relay) {
                    segment::prepare_mesh_emission(&mesh, &s.interface)?;
                }
                segment::capture_sockets(&s.interface, &options.config.ports, &s.groups)?
            }
            None => Vec::new(),
        };
        let mesh = Async::new(mesh)?;
        let (captured_tx, captured) = async_channel::bounded(CAPTURED);
        let mut readers = Vec::new();
        for c in captures {
            let socket = Async::new(c.socket)?;
            readers.push(smol::spawn(capture(
                socket,
                c.scope,
                c.port,
                captured_tx.clone(),
            )));
        }
        drop(captured_tx);
        let mut core = Core::new(options.config);
        // The key log and capture of the mesh, if this process writes them.
        let tap = Tap::for_driver();
        if let Some(tap) = &tap {
            tap.attach(&mut core);
        }
        let id = core.id();
        let (commands, command_rx) = async_channel::unbounded();
        let (notice_tx, notices) = async_channel::bounded(NOTICES);
        let driver = Driver {
            core,
            clock: StdClock::new(),
            mesh,
            segment: options.segment,
            notices: notice_tx,
            buf: vec![0; 65_536],
            emit_buf: vec![0; 65_536],
            tap,
            mesh_addr,
        };
        let task = smol::spawn(async move {
            driver.run(command_rx, captured).await;
            // The readers hold nothing the relay needs once it has closed.
            for r in readers {
                r.cancel().await;
            }
        });
        Ok(Relay {
            id,
            mesh_addr,
            commands,
            notices,
            task: Mutex::new(Some(task)),
        })
    }

    /// This relay's id (from its public key).
    pub fn id(&self) -> RelayId {
        self.id
    }

    /// The mesh socket's local address.
    pub fn mesh_addr(&self) -> SocketAddr {
        self.mesh_addr
    }

    /// The next notice; `None` once the relay has closed and every notice was read.
    pub async fn next_notice(&self) -> Option<RelayNotice> {
        self.notices.recv().await.ok()
    }

    /// Hands the relay a datagram as if captured on its segment (tests, or a driver of its
    /// own for the segment side).
    pub fn inject(&self, source: SocketAddr, scope: Scope, port: u16, payload: &[u8]) {
        let _ = self.commands.try_send(Command::Inject(Emitted {
            source,
            scope,
            port,
            payload: payload.to_vec(),
        }));
    }

    /// Connects to one more peer relay (trusted from now on).
    pub fn add_peer(&self, peer: RelayPeer) {
        let _ = self.commands.try_send(Command::AddPeer(peer));
    }

    async fn ask<T>(&self, make: impl FnOnce(reply::Reply<T>) -> Command) -> Option<T> {
        let (tx, rx) = reply::channel();
        self.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// The relay's counters and the sum of its mesh endpoints' counters; `None` once closed.
    pub async fn stats(&self) -> Option<(RelayStats, Stats)> {
        self.ask(Command::Stats).await
    }

    /// A metrics snapshot: the mesh endpoints' summed counters and round-trip histogram,
    /// with the peers up as sessions; `None` once closed.
    pub async fn metrics(&self) -> Option<MetricsSnapshot> {
        self.ask(Command::Metrics).await
    }

    /// Serves the relay's metrics in the Prometheus text format at `http://ADDR/metrics`
    /// (`docs/METRICS.md`) until the returned server is dropped; the exporter's thread asks
    /// the relay's task for each snapshot.
    ///
    /// # Errors
    /// The listener's error.
    pub fn serve_metrics(&self, addr: SocketAddr) -> io::Result<MetricsServer> {
        let commands = self.commands.clone();
        let source = MetricsSource::one(move || {
            let (tx, rx) = reply::channel();
            commands.send_blocking(Command::Metrics(tx)).ok()?;
            rx.wait(crate::METRICS_WAIT).ok()
        });
        MetricsServer::bind(addr, source)
    }

    /// Every peer relay and its state; `None` once closed.
    pub async fn peers(&self) -> Option<Vec<PeerStatus>> {
        self.ask(Command::Peers).await
    }

    /// Whether we emit on our segment now; `None` once closed.
    pub async fn is_emitter(&self) -> Option<bool> {
        self.ask(Command::Emitter).await
    }

    /// Closes the mesh sessions (peers see us leave at once) and waits for the task to end.
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close).await;
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            t.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The task closes the sessions when it reads this (or sees the channel closed), then
        // ends on its own; it is detached so that dropping never blocks.
        let _ = self.commands.try_send(Command::Close);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            t.detach();
        }
    }
}

/// Reads one capture socket until the relay's task is gone.
async fn capture(socket: Async<UdpSocket>, scope: Scope, port: u16, to: Sender<Emitted>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, source)) => {
                let d = Emitted {
                    source,
                    scope,
                    port,
                    payload: buf.get(..n).unwrap_or_default().to_vec(),
                };
                if to.send(d).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!("relay capture recv: {e}"),
        }
    }
}

/// What woke the relay's task.
enum Wake {
    Command(Option<Command>),
    Captured(Option<Emitted>),
    Mesh(io::Result<(usize, SocketAddr)>),
    Timeout,
}

struct Driver {
    core: Core,
    clock: StdClock,
    mesh: Async<UdpSocket>,
    segment: Option<SegmentOptions>,
    notices: Sender<RelayNotice>,
    buf: Vec<u8>,
    emit_buf: Vec<u8>,
    /// The key log and capture of the mesh traffic (not the segment's), when on.
    tap: Option<std::sync::Arc<Tap>>,
    mesh_addr: SocketAddr,
}

impl Driver {
    async fn run(mut self, commands: Receiver<Command>, captured: Receiver<Emitted>) {
        let mut rx = vec![0u8; 65_536];
        let mut captures_open = true;
        self.drain().await;
        loop {
            let now = self.clock.now();
            let deadline = self.core.poll_timeout();
            if deadline.is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
                self.drain().await;
                continue;
            }
            let timer = deadline
                .and_then(|t| self.clock.to_std(t))
                .map_or_else(Timer::never, Timer::at);
            let wake = future::or(
                async { Wake::Command(commands.recv().await.ok()) },
                future::or(
                    async {
                        if captures_open {
                            Wake::Captured(captured.recv().await.ok())
                        } else {
                            future::pending().await
                        }
                    },
                    future::or(
                        async { Wake::Mesh(self.mesh.recv_from(&mut rx).await) },
                        async {
                            timer.await;
                            Wake::Timeout
                        },
                    ),
                ),
            )
            .await;
            let now = self.clock.now();
            match wake {
                Wake::Captured(Some(d)) => self.core.handle_local(now, d.as_local()),
                Wake::Captured(None) => captures_open = false,
                Wake::Command(command) => {
                    // A closed channel (every handle dropped) closes the relay too.
                    if !command.is_some_and(|c| c.apply(&mut self.core, now)) {
                        self.core.close(now);
                        self.drain().await;
                        return;
                    }
                }
                Wake::Mesh(Ok((n, from))) => {
                    let datagram = rx.get(..n).unwrap_or_default();
                    if let Some(tap) = &self.tap {
                        tap.datagram(self.mesh_addr, from, true, datagram);
                    }
                    self.core.handle_datagram(now, from, datagram);
                }
                // ICMP errors of earlier sends (a peer down) surface here; keep reading.
                Wake::Mesh(Err(e)) => tracing::debug!("relay mesh recv: {e}"),
                Wake::Timeout => self.core.handle_timeout(now),
            }
            self.drain().await;
        }
    }

    /// Sends, emits and reports everything the relay has for us.
    async fn drain(&mut self) {
        let now = self.clock.now();
        if let Some(tap) = &self.tap {
            tap.drain_secrets(&mut self.core);
        }
        while let Some(t) = self.core.poll_transmit(now, &mut self.buf) {
            let datagram = self.buf.get(..t.len).unwrap_or_default();
            if let Err(e) = self.mesh.send_to(datagram, t.destination).await {
                tracing::debug!("relay mesh send to {}: {e}", t.destination);
            }
            if let Some(tap) = &self.tap {
                tap.datagram(self.mesh_addr, t.destination, false, datagram);
            }
        }
        while let Some(e) = self.core.poll_emit(&mut self.emit_buf) {
            self.emit(&e).await;
        }
        while let Some(e) = self.core.poll_event() {
            self.notify(RelayNotice::Event(e));
        }
    }

    async fn emit(&mut self, e: &Emit) {
        let payload = self.emit_buf.get(..e.len).unwrap_or_default();
        let (dest, result) = match relay::emit_step(self.segment.as_ref(), e, payload) {
            EmitStep::Report(emitted) => return self.notify(RelayNotice::Emitted(emitted)),
            EmitStep::Skipped => {
                return tracing::debug!("relay: an IPv6 group is not emitted by this driver")
            }
            EmitStep::Sent(dest, result) => (dest, result),
            EmitStep::FromMesh(dest) => {
                let sent = self.mesh.send_to(payload, SocketAddr::V4(dest)).await;
                (dest, sent.map(|_| ()))
            }
        };
        if let Err(err) = result {
            tracing::warn!("relay emit to {dest}: {err}");
        }
    }

    fn notify(&self, n: RelayNotice) {
        if let Err(async_channel::TrySendError::Full(n)) = self.notices.try_send(n) {
            tracing::debug!("relay notice dropped (nobody reads them): {n:?}");
        }
    }
}
