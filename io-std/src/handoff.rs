//! The blocking adapter's acknowledgement hand-off token (`docs/PROTOCOL.md` §18): see
//! [`Server::on_message_handoff`](crate::Server::on_message_handoff) and
//! [`Client::on_message_handoff`](crate::Client::on_message_handoff).

use std::time::Duration;

use pavillion_io::plumbing::handoff;
use pavillion_proto::endpoint::{HandoffError, HandoffId, MessageKey};

/// How long [`Handoff::complete`] waits for the driver, which answers at once unless it is
/// gone; past it the endpoint is taken as closed.
const COMPLETE_WAIT: Duration = Duration::from_secs(10);

/// A held message's claim on its ACK, given to an `on_message_handoff` callback of a
/// [`Server`](crate::Server::on_message_handoff) or a
/// [`Client`](crate::Client::on_message_handoff).
///
/// Complete it once the message is safe elsewhere (a broker acknowledged the publish): the
/// sender (the client, or the server) hears its ACK then. Refuse it, or drop it un-completed,
/// and the sender sends the message again (a new held message). `Send + 'static`: move it to
/// whatever thread learns the outcome.
///
/// # Examples
/// ```no_run
/// # fn example(server: pavillion_std::Server) {
/// use std::sync::mpsc;
/// let (tx, rx) = mpsc::channel();
/// server.on_message_handoff(Some("sensors"), move |m, handoff| {
///     let _ = tx.send((m.payload_bytes(), handoff));
/// });
/// std::thread::spawn(move || {
///     for (payload, handoff) in rx {
///         // ... store `payload` somewhere safe, then:
///         let _ = handoff.complete();
///     }
/// });
/// # }
/// ```
#[derive(Debug)]
pub struct Handoff(handoff::Handoff);

impl Handoff {
    pub(crate) fn new(inner: handoff::Handoff) -> Self {
        Handoff(inner)
    }

    /// The endpoint's id of this hand-off.
    pub fn id(&self) -> HandoffId {
        self.0.id()
    }

    /// The message's sender and counter, at a server: the same for every retransmission,
    /// and at every server a multicast message reaches. `None` at a client, whose server's
    /// counters match nothing elsewhere (`docs/PROTOCOL.md` §18.2, rule 2).
    pub fn key(&self) -> Option<MessageKey> {
        self.0.key()
    }

    /// Sends the message's ACK now, and waits for the endpoint to say it did. From a callback
    /// on the endpoint's thread it cannot wait: the completion is queued, `Ok` means only
    /// that, and a failure is logged.
    ///
    /// # Errors
    /// [`HandoffError::Unknown`] if it expired (`Limits::handoff_timeout`) or a batch-mate's
    /// refusal released it; [`HandoffError::SessionGone`] if the message's session (or the
    /// endpoint) is gone. Either way the sender sends the message again or reports its
    /// failure.
    pub fn complete(self) -> Result<(), HandoffError> {
        if self.0.on_driver_thread() {
            self.0.complete_nowait();
            return Ok(());
        }
        self.0
            .complete_pending()
            .wait(COMPLETE_WAIT)
            .unwrap_or(Err(HandoffError::SessionGone))
    }

    /// Sends the message's ACK without waiting for the result (a failure is logged).
    pub fn complete_nowait(self) {
        self.0.complete_nowait();
    }

    /// Refuses the message: the sender sends it again. Never waits.
    pub fn refuse(self) {
        self.0.refuse();
    }
}
