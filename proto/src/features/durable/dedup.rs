//! The receiver side: per sender, the floor and the window of seqs seen above it; the inbox.

/// What this endpoint has received, by sender.
#[derive(Debug, Default)]
pub(super) struct Dedup {}
