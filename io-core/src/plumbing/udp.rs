//! Batched datagram I/O for the drivers of both adapters: many datagrams per system call
//! where the kernel allows it.
//!
//! The wrappers take any socket that gives its file descriptor ([`AsFd`]): `mio`'s socket
//! in `pavillion-std`, the `std` socket inside `async_io::Async` in `pavillion-smol`. Both
//! sockets are non-blocking, and every call here passes `DONTWAIT` as well, so a call never
//! waits: `WouldBlock` tells the driver to wait for readiness its own way.
//!
//! On Linux a receive takes up to [`BATCH`] waiting datagrams in one `recvmmsg(2)`, and a send
//! hands up to [`BATCH`] queued datagrams (to any mix of destinations) to one `sendmmsg(2)`.
//! Elsewhere both fall back to one datagram per call, with the same types, so the driver has
//! one code path.
//!
//! Both are our own thin wrappers, not `quinn-udp`: `quinn-udp` sets socket options on the
//! sockets it drives (`IP_MTU_DISCOVER` = probe, so that a datagram above the path MTU fails
//! with `EMSGSIZE` where ours rely on IP fragmentation up to 4 KiB; `UDP_GRO`, which changes
//! what a receive returns), and sends one `sendmsg` per destination where our server answers
//! many clients in one wake-up. The wrappers go through `rustix` (`sendmmsg`) and `nix`
//! (`recvmmsg`, which `rustix` 1.1 lacks), both already dependencies of the workspace, so that
//! no `unsafe` is ours.
//!
//! Memory grows with load, not with the batch size: a receive batch starts with one buffer
//! and doubles its buffers (up to [`BATCH`]) only when a receive filled them all; a send
//! queue holds only what the role queued in one wake-up, at most [`BATCH`] datagrams.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;

use pavillion_proto::wire;

/// Most datagrams one system call moves.
pub const BATCH: usize = if cfg!(target_os = "linux") { 32 } else { 1 };

/// How many bytes one receive buffer holds. Longer datagrams are not ours: on Linux a buffer
/// one byte longer than [`wire::MAX_DATAGRAM`] is enough for the endpoint to drop one as
/// oversized, its prefix standing for it (a truncated read keeps the first bytes). Elsewhere
/// the single buffer takes any datagram whole, as a plain `recv_from` does.
const SLOT: usize = if cfg!(target_os = "linux") {
    wire::MAX_DATAGRAM + 1
} else {
    65_536
};

/// Receive buffers, and what the last receive put in them.
#[derive(Debug)]
pub struct RecvBatch {
    bufs: Vec<Box<[u8]>>,
    /// Length and source of each datagram of the last receive, in arrival order, one per
    /// buffer used (a source that is not an IP address, which a UDP socket never reports,
    /// is `None` and its datagram is skipped).
    got: Vec<(usize, Option<SocketAddr>)>,
}

impl RecvBatch {
    /// One buffer; more come when a receive fills them all.
    pub fn new() -> Self {
        RecvBatch {
            bufs: vec![vec![0; SLOT].into_boxed_slice()],
            got: Vec::with_capacity(1),
        }
    }

    /// How many buffers the batch holds now (at most [`BATCH`]).
    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// Reads the datagrams waiting on `socket`, up to the batch's capacity, without waiting;
    /// returns how many. `WouldBlock` when none waits.
    pub fn recv(&mut self, socket: &impl AsFd) -> io::Result<usize> {
        self.got.clear();
        recv_into(socket, &mut self.bufs, &mut self.got)?;
        // A full batch says more may wait than it could take: take more next time.
        if self.got.len() == self.bufs.len() && self.bufs.len() < BATCH {
            let more = (self.bufs.len() * 2).min(BATCH) - self.bufs.len();
            self.bufs
                .extend((0..more).map(|_| vec![0; SLOT].into_boxed_slice()));
        }
        Ok(self.got.len())
    }

    /// The datagrams of the last receive, in arrival order.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.got
            .iter()
            .zip(&self.bufs)
            .filter_map(|(&(n, from), buf)| Some((buf.get(..n).unwrap_or_default(), from?)))
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_os = "linux")]
fn recv_into(
    socket: &impl AsFd,
    bufs: &mut [Box<[u8]>],
    got: &mut Vec<(usize, Option<SocketAddr>)>,
) -> io::Result<()> {
    use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;

    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(bufs.len(), None);
    let mut slices: Vec<[IoSliceMut<'_>; 1]> = bufs
        .iter_mut()
        .map(|b| [IoSliceMut::new(&mut b[..])])
        .collect();
    let results = recvmmsg(
        socket.as_fd().as_raw_fd(),
        &mut headers,
        slices.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )?;
    for msg in results {
        // A UDP socket always reports an IP source.
        let from = msg.address.and_then(|a| {
            a.as_sockaddr_in()
                .map(|a| SocketAddr::from(*a))
                .or_else(|| a.as_sockaddr_in6().map(|a| SocketAddr::from(*a)))
        });
        got.push((msg.bytes, from));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn recv_into(
    socket: &impl AsFd,
    bufs: &mut [Box<[u8]>],
    got: &mut Vec<(usize, Option<SocketAddr>)>,
) -> io::Result<()> {
    let Some(buf) = bufs.first_mut() else {
        return Err(io::ErrorKind::WouldBlock.into());
    };
    let (n, from) = recv_nowait(socket, buf)?;
    got.push((n, Some(from)));
    Ok(())
}

/// Receives one datagram without waiting (`WouldBlock` when none waits). The length is at
/// most `buf.len()` (a longer datagram is truncated). A source that is not an IP address,
/// which a UDP socket never reports, is skipped.
///
/// # Errors
/// The socket's error; `WouldBlock` when no datagram waits.
pub fn recv_nowait(socket: &impl AsFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    loop {
        let (_, n, from) =
            rustix::net::recvfrom(socket, &mut *buf, rustix::net::RecvFlags::DONTWAIT)?;
        if let Some(from) = from.and_then(|a| SocketAddr::try_from(a).ok()) {
            return Ok((n.min(buf.len()), from));
        }
    }
}

/// Sends one datagram without waiting for room; how many bytes went.
///
/// # Errors
/// The socket's error; `WouldBlock` when its buffer is full.
pub fn send_nowait(socket: &impl AsFd, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
    Ok(rustix::net::sendto(
        socket,
        datagram,
        rustix::net::SendFlags::DONTWAIT,
        &to,
    )?)
}

/// Datagrams the role queued, waiting to be sent, in order; sent by [`SendQueue::send`].
#[derive(Debug)]
pub struct SendQueue {
    /// Datagram `i` is at `buf[i * MAX_DATAGRAM..][..len]`.
    buf: Vec<u8>,
    /// Length and destination of each queued datagram.
    queued: Vec<(usize, SocketAddr)>,
    /// How many of `queued` have gone.
    sent: usize,
}

impl SendQueue {
    /// An empty queue, with room for one datagram (it grows to [`BATCH`]).
    pub fn new() -> Self {
        SendQueue {
            buf: vec![0; wire::MAX_DATAGRAM],
            queued: Vec::with_capacity(1),
            sent: 0,
        }
    }

    /// Whether every queued datagram has gone.
    pub fn is_empty(&self) -> bool {
        self.sent == self.queued.len()
    }

    /// Whether another datagram may be queued before the queue must be sent.
    pub fn has_room(&self) -> bool {
        self.queued.len() < BATCH
    }

    /// How many datagrams wait.
    pub fn len(&self) -> usize {
        self.queued.len() - self.sent
    }

    /// The buffer the next datagram is written into ([`wire::MAX_DATAGRAM`] bytes); queue it
    /// with [`SendQueue::push`]. Only while [`SendQueue::has_room`].
    pub fn next_buf(&mut self) -> &mut [u8] {
        let at = self.queued.len() * wire::MAX_DATAGRAM;
        if self.buf.len() < at + wire::MAX_DATAGRAM {
            self.buf.resize(at + wire::MAX_DATAGRAM, 0);
        }
        self.buf
            .get_mut(at..at + wire::MAX_DATAGRAM)
            .unwrap_or_default()
    }

    /// Queues the datagram written into [`SendQueue::next_buf`].
    pub fn push(&mut self, len: usize, to: SocketAddr) {
        self.queued.push((len.min(wire::MAX_DATAGRAM), to));
    }

    fn datagram(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let &(len, to) = self.queued.get(i)?;
        let at = i * wire::MAX_DATAGRAM;
        Some((self.buf.get(at..at + len)?, to))
    }

    /// Sends what waits, in order, in as few system calls as the kernel allows, and calls
    /// `sent` for each datagram that went. Returns `false` if the socket would block: the
    /// rest stays queued, from the first that did not go. A datagram the kernel refuses for
    /// another reason is dropped (a lost datagram is the endpoint's business: it retransmits
    /// what matters) and the rest go on.
    pub fn send(&mut self, sink: &impl Sink, mut sent: impl FnMut(&[u8], SocketAddr)) -> bool {
        while !self.is_empty() {
            match self.send_some(sink) {
                Ok(n) => {
                    // At least one went, or the same call would be made again.
                    let n = n.clamp(1, self.len());
                    for i in self.sent..self.sent + n {
                        if let Some((datagram, to)) = self.datagram(i) {
                            sent(datagram, to);
                        }
                    }
                    self.sent += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if let Some((_, to)) = self.datagram(self.sent) {
                        tracing::debug!(error = %e, %to, "send_to failed");
                    }
                    self.sent += 1;
                }
            }
        }
        self.queued.clear();
        self.sent = 0;
        true
    }

    /// One system call: the sink's single send for one datagram, its batch send for more.
    fn send_some(&self, sink: &impl Sink) -> io::Result<usize> {
        if self.len() > 1 {
            let waiting: Vec<(&[u8], SocketAddr)> = (self.sent..self.queued.len())
                .filter_map(|i| self.datagram(i))
                .collect();
            return sink.send_many(&waiting);
        }
        let Some((datagram, to)) = self.datagram(self.sent) else {
            return Ok(0);
        };
        sink.send_one(datagram, to).map(|()| 1)
    }
}

impl Default for SendQueue {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a [`SendQueue`] sends: any socket with a file descriptor, or in tests a socket
/// that refuses on cue.
pub trait Sink {
    /// Sends one datagram without waiting for room.
    fn send_one(&self, datagram: &[u8], to: SocketAddr) -> io::Result<()>;

    /// Sends the first of `datagrams`, and as many after it as one system call takes,
    /// without waiting for room; how many went (at least one), or the first's error.
    fn send_many(&self, datagrams: &[(&[u8], SocketAddr)]) -> io::Result<usize>;
}

impl<S: AsFd> Sink for S {
    fn send_one(&self, datagram: &[u8], to: SocketAddr) -> io::Result<()> {
        send_nowait(self, datagram, to).map(|_| ())
    }

    #[cfg(target_os = "linux")]
    fn send_many(&self, datagrams: &[(&[u8], SocketAddr)]) -> io::Result<usize> {
        use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
        use std::io::IoSlice;

        let addrs: Vec<SocketAddrAny> = datagrams.iter().map(|(_, to)| (*to).into()).collect();
        let slices: Vec<[IoSlice<'_>; 1]> =
            datagrams.iter().map(|(d, _)| [IoSlice::new(d)]).collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = datagrams
            .iter()
            .map(|_| SendAncillaryBuffer::default())
            .collect();
        let mut headers: Vec<MMsgHdr<'_>> = addrs
            .iter()
            .zip(&slices)
            .zip(controls.iter_mut())
            .map(|((addr, slice), control)| MMsgHdr::new_with_addr(addr, slice, control))
            .collect();
        Ok(rustix::net::sendmmsg(
            self,
            &mut headers,
            SendFlags::DONTWAIT,
        )?)
    }

    /// One at a time where there is no `sendmmsg`.
    #[cfg(not(target_os = "linux"))]
    fn send_many(&self, datagrams: &[(&[u8], SocketAddr)]) -> io::Result<usize> {
        let Some((datagram, to)) = datagrams.first() else {
            return Ok(0);
        };
        self.send_one(datagram, *to).map(|()| 1)
    }
}

#[cfg(test)]
#[path = "udp_tests.rs"]
mod tests;
