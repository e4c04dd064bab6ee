//! The async adapter's acknowledgement hand-off (`docs/PROTOCOL.md` §18): the stream of held
//! messages of [`Server::on_message_handoff`](crate::Server::on_message_handoff) and
//! [`Client::on_message_handoff`](crate::Client::on_message_handoff), and their tokens.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::{Receiver, Sender, TrySendError};
use futures_lite::Stream;
use pavillion_io::plumbing::handoff::{self, HandoffSubscriber};
use pavillion_io::ReceivedMessage;
use pavillion_proto::endpoint::{HandoffError, HandoffId, MessageKey};

/// A held message's claim on its ACK, read from a [`HandoffStream`].
///
/// Complete it once the message is safe elsewhere: the sender (the client, or the server)
/// hears its ACK then. Refuse it, or drop it un-completed, and the sender sends the message
/// again (a new held message).
#[derive(Debug)]
pub struct Handoff(handoff::Handoff);

impl Handoff {
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

    /// Sends the message's ACK now, and resolves once the endpoint says it did.
    ///
    /// # Errors
    /// [`HandoffError::Unknown`] if it expired (`Limits::handoff_timeout`) or a batch-mate's
    /// refusal released it; [`HandoffError::SessionGone`] if the message's session (or the
    /// endpoint) is gone.
    pub async fn complete(self) -> Result<(), HandoffError> {
        self.0
            .complete_pending()
            .await
            .unwrap_or(Err(HandoffError::SessionGone))
    }

    /// Refuses the message: the sender sends it again. Never waits.
    pub fn refuse(self) {
        self.0.refuse();
    }
}

/// The held messages of one target (or of all targets), each with its [`Handoff`], as a
/// [`Stream`].
///
/// Bounded like a message stream (the message buffer size): a held message that arrives
/// while the buffer is full is refused at once (the sender sends it again later) and
/// counted in [`HandoffStream::refused`]. The stream ends when the endpoint closes.
///
/// # Examples
/// ```no_run
/// use futures_lite::StreamExt;
/// # smol::block_on(async {
/// # async fn example(server: pavillion_smol::Server) {
/// let mut held = server.on_message_handoff(Some("sensors"));
/// while let Some((m, handoff)) = held.next().await {
///     // ... store `m.payload()` somewhere safe, then:
///     let _ = handoff.complete().await;
/// }
/// # }
/// # });
/// ```
#[derive(Debug)]
pub struct HandoffStream {
    rx: Pin<Box<Receiver<(ReceivedMessage, Handoff)>>>,
    refused: Arc<AtomicU64>,
}

impl HandoffStream {
    /// How many held messages were refused because this stream's buffer was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Stream for HandoffStream {
    type Item = (ReceivedMessage, Handoff);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.as_mut().poll_next(cx)
    }
}

/// The driver's end of one [`HandoffStream`].
#[derive(Debug)]
pub(crate) struct HandoffStreamSubscriber {
    tx: Sender<(ReceivedMessage, Handoff)>,
    refused: Arc<AtomicU64>,
}

impl HandoffSubscriber for HandoffStreamSubscriber {
    /// Queues the message with its token; with the buffer full the token is dropped, which
    /// refuses the message. Forgets a stream that was dropped.
    fn offer(&mut self, m: &ReceivedMessage, handoff: handoff::Handoff) -> bool {
        match self.tx.try_send((m.clone(), Handoff(handoff))) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target = %m.target(), "hand-off stream full; message refused");
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// A new stream and the driver's end of it, holding up to `capacity` messages.
pub(crate) fn handoff_stream(capacity: usize) -> (HandoffStreamSubscriber, HandoffStream) {
    let (tx, rx) = async_channel::bounded(capacity.max(1));
    let refused = Arc::new(AtomicU64::new(0));
    (
        HandoffStreamSubscriber {
            tx,
            refused: refused.clone(),
        },
        HandoffStream {
            rx: Box::pin(rx),
            refused,
        },
    )
}
