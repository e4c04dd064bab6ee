use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::*;

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind on loopback");
    s.set_nonblocking(true).expect("non-blocking");
    s
}

fn receiver() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind on loopback");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let a = s.local_addr().expect("bound");
    (s, a)
}

/// Queues `datagrams` (each its index as one byte, repeated `len` times) to `to`.
fn queue(q: &mut SendQueue, n: usize, len: usize, to: SocketAddr) {
    for i in 0..n {
        let buf = q.next_buf();
        buf[..len].fill(i as u8);
        q.push(len, to);
    }
}

#[test]
fn one_receive_takes_many_waiting_datagrams_in_order() {
    let rx = socket();
    let to = rx.local_addr().expect("bound");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let from = tx.local_addr().expect("bound");
    const N: usize = 40;
    for i in 0..N {
        tx.send_to(&[i as u8; 100], to).expect("send");
    }
    let mut batch = RecvBatch::new();
    let (mut got, mut calls) = (Vec::new(), 0);
    loop {
        match batch.recv(&rx) {
            Ok(_) => {
                calls += 1;
                for (d, src) in batch.datagrams() {
                    assert_eq!(src, from);
                    assert_eq!(d.len(), 100);
                    got.push(d[0]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("receive failed: {e}"),
        }
    }
    assert_eq!(
        got,
        (0..N as u8).collect::<Vec<_>>(),
        "every datagram, in order"
    );
    if BATCH > 1 {
        // 1 + 2 + 4 + 8 + 16 buffers, then the last 9 in one call: a read per datagram would
        // be 40 calls.
        assert!(calls <= 6, "{calls} receive calls for {N} datagrams");
        assert_eq!(batch.capacity(), BATCH);
    }
}

#[test]
fn an_oversized_datagram_reaches_the_endpoint_as_oversized() {
    let rx = socket();
    let to = rx.local_addr().expect("bound");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    tx.send_to(&[1; wire::MAX_DATAGRAM + 100], to)
        .expect("send");
    let mut batch = RecvBatch::new();
    let n = loop {
        match batch.recv(&rx) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => panic!("receive failed: {e}"),
        }
    };
    assert_eq!(n, 1);
    let (d, _) = batch.datagrams().next().expect("one datagram");
    assert!(
        d.len() > wire::MAX_DATAGRAM,
        "the endpoint must see it is too long"
    );
}

#[test]
fn a_queue_sends_to_many_destinations_in_order() {
    let tx = socket();
    let (a, a_addr) = receiver();
    let (b, b_addr) = receiver();
    let mut q = SendQueue::new();
    for i in 0..BATCH.min(20) {
        let buf = q.next_buf();
        buf[0] = i as u8;
        q.push(1, if i % 2 == 0 { a_addr } else { b_addr });
    }
    let mut reported = Vec::new();
    assert!(q.send(&tx, |d, to| reported.push((d[0], to))));
    assert!(q.is_empty());
    let n = BATCH.min(20);
    assert_eq!(reported.len(), n);
    let mut buf = [0u8; 16];
    for i in (0..n).step_by(2) {
        let (_, _) = a.recv_from(&mut buf).expect("datagram at a");
        assert_eq!(buf[0], i as u8);
    }
    for i in (1..n).step_by(2) {
        let (_, _) = b.recv_from(&mut buf).expect("datagram at b");
        assert_eq!(buf[0], i as u8);
    }
}

#[test]
fn a_refused_datagram_mid_batch_is_dropped_and_the_rest_go() {
    let tx = socket();
    let (a, a_addr) = receiver();
    let mut q = SendQueue::new();
    queue(&mut q, 2, 8, a_addr);
    // An IPv6 destination on an IPv4 socket: the kernel refuses this one datagram.
    let v6: SocketAddr = "[::1]:9".parse().expect("address");
    q.next_buf()[0] = 0xff;
    q.push(8, v6);
    let buf = q.next_buf();
    buf[..8].fill(2);
    q.push(8, a_addr);
    let mut reported = Vec::new();
    assert!(q.send(&tx, |d, _| reported.push(d[0])));
    assert_eq!(
        reported,
        [0, 1, 2],
        "the refused one is not reported as sent"
    );
    let mut buf = [0u8; 16];
    for i in 0..3 {
        a.recv_from(&mut buf).expect("datagram");
        assert_eq!(buf[0], i);
    }
}

/// A sink that takes at most `take` datagrams per call, and says `WouldBlock` on the calls
/// listed in `block` (counting from 0); it records what went.
struct Stingy {
    take: usize,
    block: Vec<usize>,
    calls: RefCell<usize>,
    went: RefCell<Vec<u8>>,
}

impl Stingy {
    fn call(&self) -> io::Result<()> {
        let mut calls = self.calls.borrow_mut();
        let this = *calls;
        *calls += 1;
        if self.block.contains(&this) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    }
}

impl Sink for Stingy {
    fn send_one(&self, datagram: &[u8], _: SocketAddr) -> io::Result<()> {
        self.call()?;
        self.went.borrow_mut().push(datagram[0]);
        Ok(())
    }

    fn send_many(&self, datagrams: &[(&[u8], SocketAddr)]) -> io::Result<usize> {
        self.call()?;
        let n = datagrams.len().min(self.take);
        self.went
            .borrow_mut()
            .extend(datagrams[..n].iter().map(|(d, _)| d[0]));
        Ok(n)
    }
}

#[test]
fn a_partial_batch_send_resumes_where_it_stopped() {
    let to: SocketAddr = "127.0.0.1:9".parse().expect("address");
    let mut q = SendQueue::new();
    queue(&mut q, 10, 4, to);
    let sink = Stingy {
        take: 3,
        block: vec![],
        calls: RefCell::new(0),
        went: RefCell::new(Vec::new()),
    };
    let mut reported = Vec::new();
    assert!(q.send(&sink, |d, _| reported.push(d[0])));
    let all: Vec<u8> = (0..10).collect();
    assert_eq!(*sink.went.borrow(), all, "each datagram once, in order");
    assert_eq!(reported, all);
    // 3 + 3 + 3, then the last alone.
    assert_eq!(*sink.calls.borrow(), 4);
}

#[test]
fn would_block_mid_batch_keeps_the_rest_for_later() {
    let to: SocketAddr = "127.0.0.1:9".parse().expect("address");
    let mut q = SendQueue::new();
    queue(&mut q, 10, 4, to);
    let sink = Stingy {
        take: 4,
        block: vec![1],
        calls: RefCell::new(0),
        went: RefCell::new(Vec::new()),
    };
    let mut reported = Vec::new();
    assert!(!q.send(&sink, |d, _| reported.push(d[0])), "blocked");
    assert_eq!(reported, [0, 1, 2, 3]);
    assert_eq!(q.len(), 6, "the rest is kept");
    assert!(!q.is_empty());
    // Writable again: the rest goes, from where it stopped, nothing twice.
    assert!(q.send(&sink, |d, _| reported.push(d[0])));
    assert_eq!(reported, (0..10).collect::<Vec<u8>>());
    assert_eq!(*sink.went.borrow(), (0..10).collect::<Vec<u8>>());
    assert!(q.is_empty());
    // The queue is reusable from its start.
    queue(&mut q, 1, 4, to);
    assert!(q.send(&sink, |d, _| reported.push(d[0])));
    assert_eq!(reported.last(), Some(&0));
}
