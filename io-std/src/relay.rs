//! A relay of the mesh on its own thread: the mesh socket, the segment's capture sockets and
//! its emission, driven by one `mio` poller, with a handle that reports peers going up and
//! down, the emitter election and counters.
//!
//! Without a segment ([`RelayOptions::segment`] `None`) the relay neither captures nor emits
//! on the network: datagrams come from [`Relay::inject`] and emissions are reported as
//! [`RelayNotice::Emitted`], which is how tests run relays on loopback without broadcasting.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token, Waker};
use pavillion_io::metrics::{MetricsServer, MetricsSnapshot, MetricsSource};
use pavillion_io::plumbing::reply;
use pavillion_io::relay::Command;
use pavillion_io::relay::{self, EmitStep, NOTICES};
pub use pavillion_io::relay::{Emitted, RelayNotice, RelayOptions, SegmentOptions};
use pavillion_io::segment::{self, Emission};
use pavillion_io::tap::Tap;
use pavillion_io::{OpenError, StdClock};
use pavillion_proto::endpoint::{
    Emit, LocalDatagram, PeerStatus, Relay as Core, RelayId, RelayPeer, RelayStats, Scope, Stats,
};

const MESH: Token = Token(0);
const WAKE: Token = Token(1);
/// Capture socket `i` has token `CAPTURE + i`.
const CAPTURE: usize = 2;

/// A running relay. Dropping it closes it.
pub struct Relay {
    id: RelayId,
    mesh_addr: SocketAddr,
    commands: Sender<Command>,
    waker: Arc<Waker>,
    notices: Mutex<Receiver<RelayNotice>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("id", &self.id)
            .field("mesh_addr", &self.mesh_addr)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Binds the mesh socket (and the segment's sockets) and starts the relay's thread; the
    /// handshakes with the configured peers start at once.
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
        mesh.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let mut mesh = mio::net::UdpSocket::from_std(mesh);
        poll.registry()
            .register(&mut mesh, MESH, Interest::READABLE)?;
        let mut sockets = Vec::new();
        for (i, c) in captures.into_iter().enumerate() {
            let mut s = mio::net::UdpSocket::from_std(c.socket);
            poll.registry()
                .register(&mut s, Token(CAPTURE + i), Interest::READABLE)?;
            sockets.push((s, c.scope, c.port));
        }
        let clock = StdClock::new();
        let mut core = Core::new(options.config);
        // The key log and capture of the mesh, if this process writes them.
        let tap = Tap::for_driver();
        if let Some(tap) = &tap {
            tap.attach(&mut core);
        }
        let id = core.id();
        let (commands, command_rx) = mpsc::channel();
        let (notice_tx, notices) = mpsc::sync_channel(NOTICES);
        let driver = Driver {
            core,
            clock,
            poll,
            mesh,
            captures: sockets,
            segment: options.segment,
            commands: command_rx,
            notices: notice_tx,
            buf: vec![0; 65_536],
            emit_buf: vec![0; 65_536],
            tap,
            mesh_addr,
        };
        let thread = std::thread::Builder::new()
            .name("pavillion-relay".into())
            .spawn(move || driver.run())?;
        Ok(Relay {
            id,
            mesh_addr,
            commands,
            waker,
            notices: Mutex::new(notices),
            thread: Mutex::new(Some(thread)),
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

    fn send(&self, c: Command) -> bool {
        let ok = self.commands.send(c).is_ok();
        let _ = self.waker.wake();
        ok
    }

    fn ask<T>(&self, make: impl FnOnce(reply::Reply<T>) -> Command) -> Option<T> {
        let (tx, rx) = reply::channel();
        if !self.send(make(tx)) {
            return None;
        }
        rx.wait(crate::GRACE).ok()
    }

    /// The next notice, waiting up to `timeout`; `None` on timeout or once the relay closed.
    pub fn next_notice(&self, timeout: Duration) -> Option<RelayNotice> {
        let rx = self.notices.lock().unwrap_or_else(|p| p.into_inner());
        rx.recv_timeout(timeout).ok()
    }

    /// Hands the relay a datagram as if captured on its segment (tests, or a driver of its
    /// own for the segment side).
    pub fn inject(&self, source: SocketAddr, scope: Scope, port: u16, payload: &[u8]) {
        self.send(Command::Inject(Emitted {
            source,
            scope,
            port,
            payload: payload.to_vec(),
        }));
    }

    /// Connects to one more peer relay (trusted from now on).
    pub fn add_peer(&self, peer: RelayPeer) {
        self.send(Command::AddPeer(peer));
    }

    /// The relay's counters and the sum of its mesh endpoints' counters; `None` once closed.
    pub fn stats(&self) -> Option<(RelayStats, Stats)> {
        self.ask(Command::Stats)
    }

    /// A metrics snapshot: the mesh endpoints' summed counters and round-trip histogram,
    /// with the peers up as sessions; `None` once closed.
    pub fn metrics(&self) -> Option<MetricsSnapshot> {
        self.ask(Command::Metrics)
    }

    /// Serves the relay's metrics in the Prometheus text format at `http://ADDR/metrics`
    /// (`docs/METRICS.md`) until the returned server is dropped.
    ///
    /// # Errors
    /// The listener's error.
    pub fn serve_metrics(&self, addr: impl ToSocketAddrs) -> io::Result<MetricsServer> {
        let commands = self.commands.clone();
        let waker = self.waker.clone();
        let source = MetricsSource::one(move || {
            let (tx, rx) = reply::channel();
            commands.send(Command::Metrics(tx)).ok()?;
            let _ = waker.wake();
            rx.wait(crate::GRACE).ok()
        });
        MetricsServer::bind(crate::resolve_io(addr)?, source)
    }

    /// Every peer relay and its state; `None` once closed.
    pub fn peers(&self) -> Option<Vec<PeerStatus>> {
        self.ask(Command::Peers)
    }

    /// Whether we emit on our segment now; `None` once closed.
    pub fn is_emitter(&self) -> Option<bool> {
        self.ask(Command::Emitter)
    }

    /// Closes the mesh sessions (peers see us leave at once) and stops the thread.
    pub fn close(&self) {
        self.send(Command::Close);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.close();
    }
}

struct Driver {
    core: Core,
    clock: StdClock,
    poll: Poll,
    mesh: mio::net::UdpSocket,
    captures: Vec<(mio::net::UdpSocket, Scope, u16)>,
    segment: Option<SegmentOptions>,
    commands: Receiver<Command>,
    notices: SyncSender<RelayNotice>,
    buf: Vec<u8>,
    emit_buf: Vec<u8>,
    /// The key log and capture of the mesh traffic (not the segment's), when on.
    tap: Option<Arc<Tap>>,
    mesh_addr: SocketAddr,
}

impl Driver {
    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            self.drain();
            let now = self.clock.now();
            let timeout = self
                .core
                .poll_timeout()
                .map(|t| Duration::from_micros(t.as_micros().saturating_sub(now.as_micros())));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!("relay poll: {e}");
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    MESH => self.read_mesh(),
                    WAKE => {}
                    Token(t) => self.read_capture(t - CAPTURE),
                }
            }
            if !self.commands() {
                let now = self.clock.now();
                self.core.close(now);
                self.drain();
                return;
            }
            self.core.handle_timeout(self.clock.now());
        }
    }

    /// Carries out the handle's commands; false once it asked to close (or is gone).
    fn commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(c) => {
                    if !c.apply(&mut self.core, self.clock.now()) {
                        return false;
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    fn read_mesh(&mut self) {
        loop {
            match self.mesh.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    if let Some(tap) = &self.tap {
                        tap.datagram(self.mesh_addr, from, true, &self.buf[..n]);
                    }
                    let now = self.clock.now();
                    self.core.handle_datagram(now, from, &self.buf[..n]);
                    self.drain();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors of earlier sends (a peer down) surface here; keep reading.
                Err(e) => tracing::debug!("relay mesh recv: {e}"),
            }
        }
    }

    fn read_capture(&mut self, i: usize) {
        let Some((socket, scope, port)) = self.captures.get(i) else {
            return;
        };
        let (scope, port) = (*scope, *port);
        loop {
            match socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    let now = self.clock.now();
                    self.core.handle_local(
                        now,
                        LocalDatagram {
                            source: from,
                            scope,
                            port,
                            payload: &self.buf[..n],
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!("relay capture recv: {e}");
                    break;
                }
            }
        }
        self.drain();
    }

    /// Sends, emits and reports everything the relay has for us.
    fn drain(&mut self) {
        let now = self.clock.now();
        if let Some(tap) = &self.tap {
            tap.drain_secrets(&mut self.core);
        }
        while let Some(t) = self.core.poll_transmit(now, &mut self.buf) {
            if let Err(e) = self.mesh.send_to(&self.buf[..t.len], t.destination) {
                tracing::debug!("relay mesh send to {}: {e}", t.destination);
            }
            if let Some(tap) = &self.tap {
                tap.datagram(self.mesh_addr, t.destination, false, &self.buf[..t.len]);
            }
        }
        while let Some(e) = self.core.poll_emit(&mut self.emit_buf) {
            self.emit(&e);
        }
        while let Some(e) = self.core.poll_event() {
            self.notify(RelayNotice::Event(e));
        }
    }

    fn emit(&mut self, e: &Emit) {
        let payload = &self.emit_buf[..e.len];
        let (dest, result) = match relay::emit_step(self.segment.as_ref(), e, payload) {
            EmitStep::Report(emitted) => return self.notify(RelayNotice::Emitted(emitted)),
            EmitStep::Skipped => {
                return tracing::debug!("relay: an IPv6 group is not emitted by this driver")
            }
            EmitStep::Sent(dest, result) => (dest, result),
            EmitStep::FromMesh(dest) => (
                dest,
                self.mesh.send_to(payload, SocketAddr::V4(dest)).map(|_| ()),
            ),
        };
        if let Err(err) = result {
            tracing::warn!("relay emit to {dest}: {err}");
        }
    }

    fn notify(&self, n: RelayNotice) {
        if let Err(TrySendError::Full(n)) = self.notices.try_send(n) {
            tracing::debug!("relay notice dropped (nobody reads them): {n:?}");
        }
    }
}
