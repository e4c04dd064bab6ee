//! Who gets the messages an endpoint receives: callbacks (blocking adapter) or streams (async
//! adapter), per target or for every target, behind one [`Subscriber`] trait.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pavillion_proto::endpoint::ReceivedMessage;

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
            tracing::error!(target = %message.target, "message callback panicked");
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
        if let Some(subs) = self.targets.get_mut(&m.target) {
            subs.retain_mut(|s| s.offer(m));
            if subs.is_empty() {
                self.targets.remove(&m.target);
                emptied = true;
            }
        }
        self.any.retain_mut(|s| s.offer(m));
        emptied
    }
}
