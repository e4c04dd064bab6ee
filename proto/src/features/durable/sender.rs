//! The sender side: the durable outbox, by seq.

/// Durable messages sent and not yet resolved.
#[derive(Debug, Default)]
pub(super) struct Sender {}

impl Sender {
    pub(super) fn len(&self) -> usize {
        0
    }
}
