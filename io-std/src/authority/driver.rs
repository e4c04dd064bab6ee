//! The one blocking loop both fleet roles run on their thread: a `mio` poller on the role's
//! one socket and a waker for the handle's commands, sleeping until the role's
//! `poll_timeout`. The role decides everything; the loop moves bytes and reads the clock.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use mio::{Events, Poll, Token};
use pavillion_io::tap::Tap;
use pavillion_io::StdClock;
use pavillion_proto::endpoint::Transmit;
use pavillion_proto::keylog::SessionSecret;
use pavillion_proto::Instant;

pub(super) const SOCKET: Token = Token(0);
pub(super) const WAKE: Token = Token(1);

/// What one fleet role adds to the loop.
pub(super) trait Role: Send + 'static {
    /// What its handle sends.
    type Command: Send + 'static;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;
    /// Carries out one command; `false` asks the loop to close the role and stop.
    fn on_command(&mut self, now: Instant, command: Self::Command) -> bool;
    /// Drains what the role has for its driver besides datagrams (store batches, events) and
    /// hands it on; `false` if the role cannot go on (a store that fails).
    fn dispatch(&mut self, now: Instant) -> bool;
    fn close(&mut self, now: Instant);
    /// Turns the role's key log on (see `pavillion_io::tap`).
    fn set_key_log(&mut self, on: bool);
    /// The role's next secret for the key log.
    fn poll_secret(&mut self) -> Option<SessionSecret>;
}

/// The process's tap and the socket's own address, when the key log or a capture is on.
type Tapped<'a> = Option<(&'a Tap, SocketAddr)>;

/// The loop's state: the role, its socket and its poller.
pub(super) struct Driver<R: Role> {
    pub(super) role: R,
    pub(super) clock: StdClock,
    pub(super) poll: Poll,
    pub(super) socket: mio::net::UdpSocket,
    pub(super) commands: Receiver<R::Command>,
    pub(super) buf: Vec<u8>,
}

impl<R: Role> Driver<R> {
    /// Runs until the handle asks to close (or is gone), or the role cannot go on.
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(64);
        // The key log and capture, if this process writes them (`pavillion_io::tap`).
        let tap = Tap::for_driver();
        if tap.as_ref().is_some_and(|t| t.logs_keys()) {
            self.role.set_key_log(true);
        }
        let local = self.socket.local_addr().ok();
        let tap = tap.as_deref().zip(local);
        loop {
            if !self.flush(tap) {
                return self.stop(tap);
            }
            let now = self.clock.now();
            let timeout = self
                .role
                .poll_timeout()
                .map(|t| Duration::from_micros(t.as_micros().saturating_sub(now.as_micros())));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!("fleet poll: {e}");
                    return self.stop(tap);
                }
            }
            for event in events.iter() {
                if event.token() == SOCKET {
                    self.read(tap);
                }
            }
            if !self.commands(tap) {
                return self.stop(tap);
            }
            let now = self.clock.now();
            if self.role.poll_timeout().is_some_and(|t| t <= now) {
                self.role.handle_timeout(now);
            }
        }
    }

    fn stop(&mut self, tap: Tapped<'_>) {
        let now = self.clock.now();
        self.role.close(now);
        self.flush(tap);
    }

    /// Carries out the handle's commands; false once it asked to close (or is gone).
    fn commands(&mut self, tap: Tapped<'_>) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(c) => {
                    let now = self.clock.now();
                    if !self.role.on_command(now, c) {
                        return false;
                    }
                    // A command's answers and datagrams go out before the next command runs.
                    if !self.flush(tap) {
                        return false;
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    fn read(&mut self, tap: Tapped<'_>) {
        loop {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    if let Some((tap, local)) = tap {
                        tap.datagram(local, from, true, &self.buf[..n]);
                    }
                    let now = self.clock.now();
                    self.role.handle_datagram(now, from, &self.buf[..n]);
                    self.send(tap);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors of earlier sends (a peer gone) surface here; keep reading.
                Err(e) => tracing::debug!("fleet recv: {e}"),
            }
        }
    }

    fn send(&mut self, tap: Tapped<'_>) {
        let now = self.clock.now();
        if let Some((tap, _)) = tap {
            while let Some(secret) = self.role.poll_secret() {
                tap.secret(&secret);
            }
        }
        while let Some(t) = self.role.poll_transmit(now, &mut self.buf) {
            if let Err(e) = self.socket.send_to(&self.buf[..t.len], t.destination) {
                tracing::debug!("fleet send to {}: {e}", t.destination);
            }
            if let Some((tap, local)) = tap {
                tap.datagram(local, t.destination, false, &self.buf[..t.len]);
            }
        }
    }

    /// Sends, dispatches, and sends again what the dispatch queued (answers of handlers,
    /// publications a stored batch released).
    fn flush(&mut self, tap: Tapped<'_>) -> bool {
        self.send(tap);
        let ok = self.role.dispatch(self.clock.now());
        self.send(tap);
        ok
    }
}
