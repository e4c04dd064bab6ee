//! Who gets the messages an endpoint receives: callbacks (blocking adapter) or streams (async
//! adapter), per target or for every target, behind one [`Subscriber`] trait.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use pavillion_proto::endpoint as proto;
use pavillion_proto::PeerId;

/// A message an endpoint received, as the adapters hand it to the application of either role.
///
/// The core reports a client's messages and a server's separately (a server's with the
/// sender's identity); the adapters deliver both through one subscriber type, so here the
/// identity is optional.
///
/// The target, name and payload are read through methods: they share one buffer, the one
/// the core received the message into, so handing a message over copies none of them, and a
/// clone shares the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The address it came from.
    pub from: SocketAddr,
    /// The sender's authenticated identity, on a server; `None` on a client.
    pub peer: Option<PeerId>,
    /// Whether it was sent reliably (and so was acknowledged).
    pub reliable: bool,
    message: proto::ReceivedMessage,
}

impl ReceivedMessage {
    /// A message a client received from a server.
    pub fn at_client(m: proto::ReceivedMessage) -> Self {
        Self::new(None, m)
    }

    /// A message a server received from the client `peer`.
    pub fn at_server(peer: PeerId, m: proto::ReceivedMessage) -> Self {
        Self::new(Some(peer), m)
    }

    fn new(peer: Option<PeerId>, message: proto::ReceivedMessage) -> Self {
        ReceivedMessage {
            from: message.from,
            peer,
            reliable: message.reliable,
            message,
        }
    }

    /// The target (topic) it was sent to.
    pub fn target(&self) -> &str {
        self.message.target()
    }

    /// The message name.
    pub fn name(&self) -> &str {
        self.message.name()
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        self.message.payload()
    }

    /// The payload as an owned [`Bytes`], sharing the message's buffer instead of copying it.
    pub fn payload_bytes(&self) -> Bytes {
        self.message.payload_bytes()
    }
}

/// Something that takes received messages, run on the driver.
pub trait Subscriber: Send {
    /// Hands over one message. Returns `false` when this subscriber is gone for good (a
    /// dropped stream), so it is forgotten. It must not block the driver.
    fn offer(&mut self, message: &ReceivedMessage) -> bool;
}

/// A message callback, run on the driver's thread.
pub struct Callback(Box<dyn FnMut(&ReceivedMessage) + Send>);

impl Callback {
    /// Wraps `callback`.
    pub fn new(callback: impl FnMut(&ReceivedMessage) + Send + 'static) -> Self {
        Callback(Box::new(callback))
    }
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Callback")
    }
}

impl Subscriber for Callback {
    /// Runs the callback. A panicking callback is logged and kept: one bad message must not
    /// take the endpoint down.
    fn offer(&mut self, message: &ReceivedMessage) -> bool {
        if catch_unwind(AssertUnwindSafe(|| (self.0)(message))).is_err() {
            tracing::error!(target = %message.target(), "message callback panicked");
        }
        true
    }
}

/// The subscribers of one endpoint: per target, and for every message.
#[derive(Default)]
pub struct Subscribers {
    targets: HashMap<String, Vec<Box<dyn Subscriber>>>,
    any: Vec<Box<dyn Subscriber>>,
}

impl std::fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscribers")
            .field("targets", &self.targets.keys().collect::<Vec<_>>())
            .field("any", &self.any.len())
            .finish()
    }
}

impl Subscribers {
    /// Adds a subscriber to `target`, or to every message with `None`.
    pub fn add(&mut self, target: Option<String>, sub: Box<dyn Subscriber>) {
        match target {
            Some(t) => self.targets.entry(t).or_default().push(sub),
            None => self.any.push(sub),
        }
    }

    /// Hands `m` to the subscribers of its target, then to the catch-all ones, forgetting
    /// those that are gone. Returns `true` if the last subscriber of the target went away, so
    /// that a server can stop taking it.
    pub fn deliver(&mut self, m: &ReceivedMessage) -> bool {
        let mut emptied = false;
        if let Some(subs) = self.targets.get_mut(m.target()) {
            subs.retain_mut(|s| s.offer(m));
            if subs.is_empty() {
                self.targets.remove(m.target());
                emptied = true;
            }
        }
        self.any.retain_mut(|s| s.offer(m));
        emptied
    }
}
