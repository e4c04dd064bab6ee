//! The shared half of the acknowledgement hand-off (`docs/PROTOCOL.md` §18), for either
//! role: a reliable message to a target handed to [`ServerHandle::on_message_handoff`] (or
//! [`ClientHandle::on_message_handoff`]) is acknowledged to its sender (the client, or the
//! server) only when the application completes its [`Handoff`] (a bridge: once the broker
//! acknowledged the publish).
//!
//! The driver marks the target in the endpoint (`set_handoff`), hands each `HeldMessage`
//! event to the target's [`HandoffSubscriber`] with a [`Handoff`] token, and carries out the
//! token's completion or refusal (a command, run directly on the caller's thread when the
//! driver is idle, like an RPC answer). A token dropped un-completed, a message nobody takes,
//! and a subscriber that panics all refuse: the sender sends the message again, never an ACK
//! for a message nobody took.
//!
//! [`ServerHandle::on_message_handoff`]: super::server::ServerHandle::on_message_handoff
//! [`ClientHandle::on_message_handoff`]: super::client::ClientHandle::on_message_handoff

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pavillion_proto::endpoint::{
    self as proto, HandoffError, HandoffId, HandoffTarget, MessageKey,
};
use pavillion_proto::Instant;

use super::client::{self, ClientCommand};
use super::link::{Gone, Link};
use super::messages::ReceivedMessage;
use super::reply::{self, Pending, Reply};
use super::server::{self, ServerCommand};

/// A held message's claim on its ACK: [`complete`](Handoff::complete_pending) it once the
/// message is safe, or [`refuse`](Handoff::refuse) it (dropping it refuses too) and the
/// sender sends it again. `Send + 'static`: move it to whatever thread learns the outcome.
#[derive(Debug)]
pub struct Handoff {
    id: HandoffId,
    key: Option<MessageKey>,
    /// `None` once completed or refused, so that the drop does nothing more.
    link: Option<HandoffLink>,
}

/// The command channel of the endpoint that holds the message: a token is the same for
/// either role.
#[derive(Debug)]
pub(super) enum HandoffLink {
    /// A server's: it holds a client's message.
    Server(Link<ServerCommand>),
    /// A client's: it holds a server's message.
    Client(Link<ClientCommand>),
}

impl HandoffLink {
    fn send(&self, cmd: HandoffCmd) -> Result<(), Gone> {
        match self {
            HandoffLink::Server(l) => l.send(server::handoff_command(cmd)),
            HandoffLink::Client(l) => l.send(client::handoff_command(cmd)),
        }
    }

    fn on_driver_thread(&self) -> bool {
        match self {
            HandoffLink::Server(l) => l.on_driver_thread(),
            HandoffLink::Client(l) => l.on_driver_thread(),
        }
    }
}

impl Handoff {
    /// The endpoint's id of this hand-off.
    pub fn id(&self) -> HandoffId {
        self.id
    }

    /// The message's sender and counter at a server: the same for every retransmission and
    /// at every server a multicast message reaches, so copies can be told apart from new
    /// messages. `None` at a client: a server's counters are its session's with this client
    /// alone (`docs/PROTOCOL.md` §18.2, rule 2).
    pub fn key(&self) -> Option<MessageKey> {
        self.key
    }

    /// Whether the caller runs on the driver's thread (inside a callback), where waiting for
    /// the completion's result would wait for ever: use [`Handoff::complete_nowait`] there.
    pub fn on_driver_thread(&self) -> bool {
        self.link
            .as_ref()
            .is_some_and(HandoffLink::on_driver_thread)
    }

    /// Queues the completion (the ACK goes to the sender) and returns what to wait on for
    /// its result. A closed endpoint answers [`HandoffError::SessionGone`]: its sessions
    /// ended with it.
    pub fn complete_pending(mut self) -> Pending<Result<(), HandoffError>> {
        let (reply, pending) = reply::channel();
        let command = HandoffCmd::Complete {
            id: self.id,
            reply: Some(reply),
        };
        if let Some(link) = self.link.take() {
            // A closed driver drops the command and its reply: the wait ends as closed.
            let _ = link.send(command);
        }
        pending
    }

    /// Queues the completion without waiting for its result (from a callback on the driver's
    /// thread); a failure is only logged.
    pub fn complete_nowait(mut self) {
        if let Some(link) = self.link.take() {
            let _ = link.send(HandoffCmd::Complete {
                id: self.id,
                reply: None,
            });
        }
    }

    /// Refuses the message: the sender sends it again (as a new held message). Never waits.
    pub fn refuse(mut self) {
        self.send_refusal();
    }

    fn send_refusal(&mut self) {
        if let Some(link) = self.link.take() {
            let _ = link.send(HandoffCmd::Refuse { id: self.id });
        }
    }
}

impl Drop for Handoff {
    /// Un-completed: refused, so that the sender sends the message again.
    fn drop(&mut self) {
        self.send_refusal();
    }
}

/// Something that takes held messages with their tokens, run on the driver.
pub trait HandoffSubscriber: Send {
    /// Hands over one held message. Returns `false` when this subscriber is gone for good
    /// (a dropped stream), so it is forgotten. It must not block the driver; dropping
    /// `handoff` refuses the message.
    fn offer(&mut self, message: &ReceivedMessage, handoff: Handoff) -> bool;
}

/// A held-message callback, run on the driver's thread.
pub struct HandoffCallback(Box<HandoffFn>);

/// What a [`HandoffCallback`] runs.
type HandoffFn = dyn FnMut(&ReceivedMessage, Handoff) + Send;

impl HandoffCallback {
    /// Wraps `callback`.
    pub fn new(callback: impl FnMut(&ReceivedMessage, Handoff) + Send + 'static) -> Self {
        HandoffCallback(Box::new(callback))
    }
}

impl std::fmt::Debug for HandoffCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandoffCallback")
    }
}

impl HandoffSubscriber for HandoffCallback {
    /// Runs the callback. A panicking callback is logged and kept; the token it held is
    /// dropped while unwinding, which refuses the message.
    fn offer(&mut self, message: &ReceivedMessage, handoff: Handoff) -> bool {
        if catch_unwind(AssertUnwindSafe(|| (self.0)(message, handoff))).is_err() {
            tracing::error!(target = %message.target(), "hand-off callback panicked");
        }
        true
    }
}

/// A hand-off command from a token or a handle to the driver.
pub(super) enum HandoffCmd {
    /// Takes the held messages of `target` (every target with `None`).
    Subscribe {
        target: Option<String>,
        sub: Box<dyn HandoffSubscriber>,
    },
    /// `complete_handoff`, answered if someone waits.
    Complete {
        id: HandoffId,
        reply: Option<Reply<Result<(), HandoffError>>>,
    },
    /// `refuse_handoff`.
    Refuse { id: HandoffId },
}

/// What the hand-off needs of an endpoint, whichever role it is.
pub(super) trait HandoffEndpoint {
    /// `set_handoff`; a server also announces that it takes an exact target, as for its
    /// other subscribers (a client subscribes at its server only when told to).
    fn mark(&mut self, now: Instant, target: HandoffTarget);
    /// `clear_handoff`.
    fn unmark(&mut self, target: &HandoffTarget);
    /// `complete_handoff`.
    fn complete(&mut self, now: Instant, id: HandoffId) -> Result<(), HandoffError>;
    /// `refuse_handoff`.
    fn refuse(&mut self, now: Instant, id: HandoffId) -> Result<(), HandoffError>;
}

impl HandoffEndpoint for proto::Server {
    fn mark(&mut self, now: Instant, target: HandoffTarget) {
        let announce = match &target {
            HandoffTarget::Exact(t) => Some(t.clone()),
            _ => None,
        };
        self.set_handoff(target);
        if let Some(t) = announce {
            self.subscribe(now, &t);
        }
    }
    fn unmark(&mut self, target: &HandoffTarget) {
        self.clear_handoff(target);
    }
    fn complete(&mut self, now: Instant, id: HandoffId) -> Result<(), HandoffError> {
        self.complete_handoff(now, id)
    }
    fn refuse(&mut self, now: Instant, id: HandoffId) -> Result<(), HandoffError> {
        self.refuse_handoff(now, id)
    }
}

impl HandoffEndpoint for proto::Client {
    fn mark(&mut self, _now: Instant, target: HandoffTarget) {
        self.set_handoff(target);
    }
    fn unmark(&mut self, target: &HandoffTarget) {
        self.clear_handoff(target);
    }
    fn complete(&mut self, now: Instant, id: HandoffId) -> Result<(), HandoffError> {
        self.complete_handoff(now, id)
    }
    fn refuse(&mut self, now: Instant, id: HandoffId) -> Result<(), HandoffError> {
        self.refuse_handoff(now, id)
    }
}

impl HandoffCmd {
    /// Whether the driver may run it on the sender's thread: it runs no application code.
    pub(super) fn is_direct(&self) -> bool {
        !matches!(self, HandoffCmd::Subscribe { .. })
    }

    /// A subscription command, for the handle.
    pub(super) fn subscribe(target: Option<&str>, sub: Box<dyn HandoffSubscriber>) -> Self {
        HandoffCmd::Subscribe {
            target: target.map(String::from),
            sub,
        }
    }
}

/// The driver's hand-off subscribers: one per target, and one for every target. A later
/// subscriber of the same target replaces the earlier one: a held message has one ACK, so
/// one subscriber decides it.
#[derive(Default)]
pub(super) struct HandoffRouter {
    targets: HashMap<String, Box<dyn HandoffSubscriber>>,
    any: Option<Box<dyn HandoffSubscriber>>,
}

impl std::fmt::Debug for HandoffRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffRouter")
            .field("targets", &self.targets.keys().collect::<Vec<_>>())
            .field("any", &self.any.is_some())
            .finish()
    }
}

impl HandoffRouter {
    /// Carries out a hand-off command on the endpoint.
    pub(super) fn on_command(
        &mut self,
        ep: &mut impl HandoffEndpoint,
        now: Instant,
        cmd: HandoffCmd,
    ) {
        match cmd {
            HandoffCmd::Subscribe { target, sub } => match target {
                Some(t) => {
                    ep.mark(now, HandoffTarget::Exact(t.clone()));
                    self.targets.insert(t, sub);
                }
                None => {
                    ep.mark(now, HandoffTarget::All);
                    self.any = Some(sub);
                }
            },
            HandoffCmd::Complete { id, reply } => {
                let result = ep.complete(now, id);
                if let Err(e) = result {
                    tracing::debug!(%id, error = %e, "hand-off not completed");
                }
                if let Some(reply) = reply {
                    reply.send(result);
                }
            }
            HandoffCmd::Refuse { id } => {
                if let Err(e) = ep.refuse(now, id) {
                    tracing::debug!(%id, error = %e, "hand-off not refused");
                }
            }
        }
    }

    /// Hands a held message to its target's subscriber (or the catch-all one) with a token
    /// on `link`. Without a subscriber, or without a link (the driver is closing), the
    /// message is refused at once.
    pub(super) fn deliver(
        &mut self,
        ep: &mut impl HandoffEndpoint,
        now: Instant,
        link: Option<HandoffLink>,
        held: Held,
    ) {
        let Held {
            message: m,
            handoff,
            key,
        } = held;
        let Some(link) = link else {
            let _ = ep.refuse(now, handoff);
            return;
        };
        let token = Handoff {
            id: handoff,
            key,
            link: Some(link),
        };
        tracing::debug!(target = %m.target(), name = %m.name(), from = %m.from, %handoff, "held message");
        let sub = match self.targets.get_mut(m.target()) {
            Some(sub) => Some((sub, Some(m.target().to_string()))),
            None => self.any.as_mut().map(|s| (s, None)),
        };
        match sub {
            Some((sub, target)) => {
                if !sub.offer(&m, token) {
                    // Gone for good: its messages are acknowledged as before.
                    match target {
                        Some(t) => {
                            self.targets.remove(&t);
                            ep.unmark(&HandoffTarget::Exact(t));
                        }
                        None => {
                            self.any = None;
                            ep.unmark(&HandoffTarget::All);
                        }
                    }
                }
            }
            // Dropped: refused through the link, after this pass.
            None => drop(token),
        }
    }
}

/// A `HeldMessage` event's fields, either role's.
pub(super) struct Held {
    pub(super) message: ReceivedMessage,
    pub(super) handoff: HandoffId,
    /// A server's only (`ServerEvent::HeldMessage::key`).
    pub(super) key: Option<MessageKey>,
}
