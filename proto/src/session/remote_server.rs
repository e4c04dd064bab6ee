//! What a client holds for one server it has a session with (`RemoteServer`), and the
//! read-only view of it the application gets (`ServerInfo`).
//!
//! The client's session table maps the address a server answers from to one `RemoteServer`;
//! the endpoint routes, this module says what one entry holds. Wire bytes, timers, events:
//! none here; the client's dispatch fills the entry in.

use alloc::boxed::Box;
use core::net::SocketAddr;

use crate::features::status::Status;
use crate::features::timesync::{ClockEstimate, TimeSync};
use crate::time::Instant;
use crate::wire::{Setup, StatusBytes};

use super::{Session, TxKey};

#[derive(Debug)]
pub(crate) struct RemoteServer {
    /// S>C keys (with the replaced session's, or suite 3's in rotation), our window over the
    /// server's counters, liveness.
    pub(crate) session: Session,
    pub(crate) session_id: [u8; 16],
    /// The server confirmed the session (opcode 7, 16 or any authenticated packet).
    pub(crate) confirmed: bool,
    pub(crate) status: Option<StatusBytes>,
    pub(crate) clock: TimeSync,
    /// Suite 3 multicast: our pairwise send key for this server (in unicast mode the client's
    /// `sealer`). Boxed, so that a unicast session pays one pointer for it.
    pub(crate) send: Option<Box<TxKey>>,
    /// Suites 1 and 2: our client-info (op 3 or 12) for this session, resent while the session
    /// is unconfirmed: losing one packet should not cost a whole new round.
    pub(crate) client_info: Option<Setup>,
    /// Names this session among all the client ever held, for the acknowledgement hand-off
    /// (`endpoint::client::handoff`): every handshake with the server makes a new session and
    /// a new generation; a suite 3 rekey keeps both. Zero until the hand-off numbers it.
    #[cfg(feature = "handoff")]
    pub(crate) generation: u64,
}

impl RemoteServer {
    /// The one place a server session is made, whatever the suite.
    pub(crate) fn new(
        session: Session,
        session_id: [u8; 16],
        confirmed: bool,
        send: Option<Box<TxKey>>,
        client_info: Option<Setup>,
    ) -> Self {
        RemoteServer {
            session,
            session_id,
            confirmed,
            status: None,
            // A new session may be a rebooted server with a new clock.
            clock: TimeSync::default(),
            send,
            client_info,
            #[cfg(feature = "handoff")]
            generation: 0,
        }
    }
}

/// Liveness and keys are the session's; the role's code reads them through the session.
impl core::ops::Deref for RemoteServer {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

impl core::ops::DerefMut for RemoteServer {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.session
    }
}

/// What the client knows of one server: liveness, status and clock.
#[derive(Debug, Clone, Copy)]
pub struct ServerInfo<'a> {
    addr: SocketAddr,
    server: &'a RemoteServer,
}

impl<'a> ServerInfo<'a> {
    /// Wraps the client's session with the server at `addr` for reading.
    pub(crate) fn new(addr: SocketAddr, server: &'a RemoteServer) -> Self {
        ServerInfo { addr, server }
    }

    /// The address the server answers from.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// False after the down timeout passed with nothing heard, until the next packet.
    pub fn is_up(&self) -> bool {
        self.server.up
    }

    /// Whether the server confirmed the session: a matching session id (opcode 7) or any
    /// authenticated packet. Until then, our client-info may have been lost.
    pub fn is_confirmed(&self) -> bool {
        self.server.confirmed
    }

    /// When the last authenticated packet arrived.
    pub fn last_heard(&self) -> Instant {
        self.server.last_heard
    }

    /// The last status the server reported in an ACK, if any.
    pub fn status(&self) -> Option<Status> {
        self.server.status.map(Status::from_bytes)
    }

    /// The estimate of the server's monotonic clock, once a time sync has been answered.
    pub fn clock(&self) -> Option<ClockEstimate> {
        self.server.clock.estimate()
    }

    /// The server's clock reading now (in its own time base), if estimated.
    pub fn remote_now(&self, now: Instant) -> Option<Instant> {
        self.to_remote(now)
    }

    /// Converts a local instant to the server's clock.
    pub fn to_remote(&self, local: Instant) -> Option<Instant> {
        self.clock().map(|c| c.to_remote(local))
    }

    /// Converts a reading of the server's clock to a local instant.
    pub fn to_local(&self, remote: Instant) -> Option<Instant> {
        self.clock().map(|c| c.to_local(remote))
    }
}
