//! Application features built on sessions, one module each: RPC, publish/subscribe, time sync,
//! typed device status and segmented messages.
//!
//! A feature owns its state and its rules; the endpoint (`endpoint/`) routes to it. The
//! endpoint opens and parses a datagram, finds the peer's session, and hands each feature
//! the application packets (`wire::App` values) that are its own. A feature never seals,
//! never picks a counter and never reads a clock: it is told the time, and it says what it
//! wants in return.
//!
//! # What a feature exposes
//!
//! Every feature states, as plain methods, the three things the endpoint needs from it:
//!
//! 1. **Handle an application packet.** A method per opcode it owns, taking the parsed
//!    fields and `now`, returning what happened: a decision (`rpc::Route`), an id the event
//!    names (`timesync::SyncId`), or a refusal (`pubsub::TableFull`, counted as a drop).
//! 2. **Its deadline.** A `*_due()` method that the role's timer table reads into one slot
//!    (`endpoint/timers.rs`: one `ClientTimer` or `ServerTimer` kind per feature timer), and
//!    an `on_*` method the table's walk calls when it expires. Retransmission of reliable
//!    exchanges is not a feature timer: a feature that needs it queues a `Payload` in an
//!    outbox, whose timer the table already holds.
//! 3. **What it wants sent.** A return value the endpoint turns into an `Outgoing` entry
//!    (`timesync::Retry::Send`, `rpc::Route::Answer`), or an outbox entry. The endpoint
//!    queues, seals and counts it, so the feature cannot get keys or counters wrong.
//!
//! Events are built by the endpoint from what the feature returns (or by a small
//! constructor here, like `rpc::answer_event`), so they keep one shape per role.
//!
//! # Plugging in a new feature
//!
//! Add `features/<name>.rs` with its state (per session in the session, per endpoint in the
//! role) and the three kinds of method above; add its opcodes' arms to the role's
//! `on_opened` dispatch; add one timer kind per deadline; document the wire bytes it parses,
//! the timers it sets and the events it emits in its module docs, as the modules here do.
//! The features planned next fit this shape:
//!
//! - **Ordered delivery**: per-target reorder buffers, handed messages by `on_opened`; a
//!   message in order becomes the same `Message` event as today. (Segmentation, `segment`,
//!   took this shape: reassembly handed segments by `on_opened`, a `Segments` timer kind, and a
//!   whole plaintext dispatched like a one-datagram packet.)
//! - **Registers and durable delivery records**: state keyed by target, handed the ACKs and
//!   messages of their opcodes, with a deadline for persistence or expiry; a durable record
//!   is what the feature returns for the driver to store.
//! - **A relay or an authority role**: a role is an endpoint (routing, sessions, its timer
//!   enum); it reuses these features as they are and adds its own (forwarding tables, a
//!   signing authority) in the same shape.
//! - **Several messages and ACKs in one datagram**: features only ask for things to be sent,
//!   so coalescing is the encoder's business (`poll_transmit` packing several `Outgoing`
//!   entries); `on_opened` would hand a feature each packet of a coalesced datagram in turn.
//!
//! Modules:
//! - `batch` (crate-private): suite 3 batching, runs of messages sharing a counter (§17).
//! - [`status`]: typed device status carried in ACKs (pure values).
//! - [`timesync`]: the clock estimate, and the client's time requests (`SyncId`).
//! - `rpc` (crate-private): functions, calls waiting for the application, the answer cache.
//! - `pubsub` (crate-private): subscriber tables and subscriptions.
//! - `segment` (crate-private): segmented messages, their transfers and reassembly.
//! - [`ordered`]: ordered delivery (op 36): sender stream tables, receiver reorder buffers.
//! - [`registers`]: declared registers, their observers, and a client's observations.
//! - [`relay`]: the relay role's echo cache, sequence windows, rate buckets and election.
//! - [`durable`]: durable messages (op 37): the durable outbox, per-sender de-duplication
//!   windows, the inbox, and the batches of records a driver stores.
//! - [`handoff`]: acknowledgement hand-off: a reliable message's ACK waits for the
//!   application (§18).

pub(crate) mod ack_delay;
pub mod authority;
pub(crate) mod batch;
pub mod durable;
pub(crate) mod group;
pub mod handoff;
pub mod ordered;
pub(crate) mod pubsub;
pub mod registers;
pub mod relay;
pub(crate) mod rpc;
pub(crate) mod segment;
pub mod status;
pub mod timesync;
