//! The bounded queue of received messages between the runner and `recv_message`.
//!
//! A remote peer decides how many messages arrive, so the queue is fixed: when it is full the
//! newest message is dropped and counted ([`crate::DriverStats::inbox_dropped`]); the
//! application that reads too slowly loses messages, never memory.

use core::future::poll_fn;
use core::net::SocketAddr;
use core::task::Poll;

use embassy_sync::waitqueue::WakerRegistration;
use heapless::Deque;
use pavillion_proto::endpoint::ReceivedMessage;

use crate::{Core, Error, Message, Shared};

/// Received messages an endpoint holds for its application at once.
pub const INBOX: usize = 8;

/// The queue.
pub(crate) struct Inbox {
    queue: Deque<ReceivedMessage, INBOX>,
    waker: WakerRegistration,
    dropped: u64,
}

/// Where `recv_message` put a message in the caller's buffer.
struct Copied {
    from: SocketAddr,
    data: usize,
    target: usize,
    name: usize,
    reliable: bool,
}

impl Inbox {
    pub(crate) const fn new() -> Self {
        Inbox {
            queue: Deque::new(),
            waker: WakerRegistration::new(),
            dropped: 0,
        }
    }

    /// Queues a message for the application, or drops and counts it when the queue is full.
    pub(crate) fn push(&mut self, m: ReceivedMessage) {
        if self.queue.push_back(m).is_err() {
            self.dropped += 1;
        }
        self.waker.wake();
    }

    /// Messages dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Messages waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Copies the first message into `buf` (payload, target, name) and removes it; leaves it
    /// first when `buf` is too small.
    fn poll_copy(
        &mut self,
        buf: &mut [u8],
        waker: &core::task::Waker,
    ) -> Poll<Result<Copied, Error>> {
        let Some(m) = self.queue.front() else {
            self.waker.register(waker);
            return Poll::Pending;
        };
        let (data, target, name) = (m.payload().len(), m.target().len(), m.name().len());
        let needed = data + target + name;
        let Some(out) = buf.get_mut(..needed) else {
            return Poll::Ready(Err(Error::BufferTooSmall { needed }));
        };
        let (d, rest) = out.split_at_mut(data);
        let (t, n) = rest.split_at_mut(target);
        d.copy_from_slice(m.payload());
        t.copy_from_slice(m.target().as_bytes());
        n.copy_from_slice(m.name().as_bytes());
        let copied = Copied {
            from: m.from,
            data,
            target,
            name,
            reliable: m.reliable,
        };
        self.queue.pop_front();
        Poll::Ready(Ok(copied))
    }
}

/// Waits for the next message of the inbox `pick` finds and copies it into `buf`.
pub(crate) async fn recv<'b>(
    shared: &Shared,
    buf: &'b mut [u8],
    pick: fn(&mut Core) -> Option<&mut Inbox>,
) -> Result<Message<'b>, Error> {
    let copied = poll_fn(|cx| {
        shared.with(|core| match pick(core) {
            Some(inbox) => inbox.poll_copy(buf, cx.waker()),
            None => Poll::Pending,
        })
    })
    .await?;
    let buf: &'b [u8] = buf;
    let (data, rest) = buf.split_at(copied.data);
    let (target, rest) = rest.split_at(copied.target);
    let name = &rest[..copied.name];
    // Both were `String`s a moment ago, so they are UTF-8.
    Ok(Message {
        from: copied.from,
        target: core::str::from_utf8(target).unwrap_or_default(),
        name: core::str::from_utf8(name).unwrap_or_default(),
        data,
        reliable: copied.reliable,
    })
}

#[cfg(test)]
mod tests {
    extern crate alloc;

    use super::*;

    fn message(n: u8) -> ReceivedMessage {
        ReceivedMessage::new(
            "10.0.0.1:1783".parse().unwrap(),
            "kitchen",
            "temp",
            &[n; 3],
            true,
        )
    }

    #[test]
    fn a_full_inbox_drops_and_counts_the_newest() {
        let mut inbox = Inbox::new();
        for n in 0..INBOX as u8 + 3 {
            inbox.push(message(n));
        }
        assert_eq!(inbox.len(), INBOX);
        assert_eq!(inbox.dropped(), 3);
        let mut buf = [0u8; 64];
        let waker = core::task::Waker::noop();
        let Poll::Ready(Ok(c)) = inbox.poll_copy(&mut buf, waker) else {
            panic!("a message waits");
        };
        assert_eq!(&buf[..c.data], &[0, 0, 0], "the oldest stays first");
    }

    #[test]
    fn a_small_buffer_keeps_the_message_and_says_how_much_it_needs() {
        let mut inbox = Inbox::new();
        inbox.push(message(7));
        let waker = core::task::Waker::noop();
        let mut small = [0u8; 4];
        assert!(matches!(
            inbox.poll_copy(&mut small, waker),
            Poll::Ready(Err(Error::BufferTooSmall { needed: 14 }))
        ));
        assert_eq!(inbox.len(), 1);
        let mut buf = [0u8; 14];
        assert!(matches!(
            inbox.poll_copy(&mut buf, waker),
            Poll::Ready(Ok(_))
        ));
        assert_eq!(&buf, b"\x07\x07\x07kitchentemp");
        assert!(inbox.poll_copy(&mut buf, waker).is_pending());
    }
}
