//! The exporter: `GET /metrics` over HTTP/1.x on a thread of its own.
//!
//! It is deliberately small: one connection at a time, one request per connection (the answer
//! closes it), a bounded request (at most [`MAX_REQUEST`] bytes of head, read within
//! [`IO_TIMEOUT`]), no body read, and nothing but `/metrics` served. A scraper asks every few
//! seconds; anyone else who connects can at worst hold the one slot for [`IO_TIMEOUT`]. It
//! listens only on the address it is given: bind it to loopback (or a management address),
//! as the counters tell an observer about the traffic.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::{render, MetricsSnapshot, CONTENT_TYPE};

/// The longest request head read; a longer one is answered 431 and closed.
pub const MAX_REQUEST: usize = 8192;

/// How long one connection may take to send its request, or to take the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Where an exporter gets its snapshots: asked once per scrape, on the exporter's thread.
/// An empty list (the endpoint has closed) is answered 503.
pub struct MetricsSource(Box<dyn Fn() -> Vec<MetricsSnapshot> + Send + 'static>);

impl MetricsSource {
    /// A source that calls `snapshots` for every scrape.
    pub fn new(snapshots: impl Fn() -> Vec<MetricsSnapshot> + Send + 'static) -> Self {
        MetricsSource(Box::new(snapshots))
    }

    /// A source of one endpoint's snapshot, `None` once it has closed.
    pub fn one(snapshot: impl Fn() -> Option<MetricsSnapshot> + Send + 'static) -> Self {
        MetricsSource::new(move || snapshot().into_iter().collect())
    }

    /// The snapshots of every source, one after the other (roles must differ).
    pub fn all(sources: Vec<MetricsSource>) -> Self {
        MetricsSource::new(move || sources.iter().flat_map(|s| (s.0)()).collect())
    }

    fn snapshots(&self) -> Vec<MetricsSnapshot> {
        (self.0)()
    }
}

impl std::fmt::Debug for MetricsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSource")
    }
}

/// A running exporter. Dropping it stops the thread and frees the port.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `addr` (port 0 picks a free one; see [`MetricsServer::local_addr`]) and
    /// serves `GET /metrics` from `source` until dropped.
    ///
    /// # Errors
    /// The listener's error (the port is taken, the address is not ours).
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    /// use pavillion_io::metrics::{MetricsRole, MetricsServer, MetricsSnapshot, MetricsSource};
    /// use pavillion_proto::endpoint::Stats;
    ///
    /// let source = MetricsSource::one(|| {
    ///     Some(MetricsSnapshot::new(MetricsRole::Server, 0, Stats::default()))
    /// });
    /// let server = MetricsServer::bind("127.0.0.1:0".parse()?, source)?;
    /// let mut c = std::net::TcpStream::connect(server.local_addr())?;
    /// c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
    /// let mut answer = String::new();
    /// c.read_to_string(&mut answer)?;
    /// assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
    /// assert!(answer.contains("pavillion_sessions{role=\"server\"} 0"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(addr: SocketAddr, source: MetricsSource) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::Builder::new()
            .name("pavillion-metrics".into())
            .spawn(move || serve(&listener, &source, &stopped))?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // The thread waits in `accept`: a connection of our own wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&reachable(self.addr), IO_TIMEOUT);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where to connect to reach a listener on `addr` (loopback for an unspecified address).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

fn serve(listener: &TcpListener, source: &MetricsSource, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match conn {
            Ok(stream) => {
                if let Err(e) = answer(stream, source) {
                    tracing::debug!(error = %e, "metrics request failed");
                }
            }
            // Out of descriptors and the like: nothing to do but wait for the next one.
            Err(e) => {
                tracing::debug!(error = %e, "metrics accept failed");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Request {
    /// `GET /metrics` (or `HEAD`): the exposition.
    Metrics {
        /// Without the body.
        head: bool,
    },
    /// Another path.
    NotFound,
    /// Another method.
    BadMethod,
    /// Not HTTP.
    Bad,
    /// Longer than [`MAX_REQUEST`].
    TooLarge,
}

/// Reads one request head (up to the blank line), within the limits.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(Some(head));
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_REQUEST {
            return Ok(None);
        }
    }
}

/// What the request head `head` asks for.
pub(super) fn parse(head: Option<&[u8]>) -> Request {
    let Some(head) = head else {
        return Request::TooLarge;
    };
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Request::Bad;
    };
    let mut words = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Request::Bad;
    };
    if !version.starts_with("HTTP/1.") || words.next().is_some() {
        return Request::Bad;
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Request::Metrics {
            head: method == "HEAD",
        },
        ("GET" | "HEAD", _) => Request::NotFound,
        _ => Request::BadMethod,
    }
}

fn answer(mut stream: TcpStream, source: &MetricsSource) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let (status, body, head_only) = match parse(head.as_deref()) {
        Request::Metrics { head: only } => {
            let snapshots = source.snapshots();
            if snapshots.is_empty() {
                (
                    "503 Service Unavailable",
                    "endpoint closed\n".to_owned(),
                    only,
                )
            } else {
                ("200 OK", render(&snapshots), only)
            }
        }
        Request::NotFound => ("404 Not Found", "only /metrics is here\n".to_owned(), false),
        Request::BadMethod => ("405 Method Not Allowed", "GET only\n".to_owned(), false),
        Request::Bad => ("400 Bad Request", "not HTTP/1\n".to_owned(), false),
        Request::TooLarge => (
            "431 Request Header Fields Too Large",
            "request too large\n".to_owned(),
            false,
        ),
    };
    let content_type = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out)?;
    stream.flush()?;
    // The answer ends here: the client sees the end of it at once.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}
