//! Heap bytes per idle session of a server, and a server holding a million of them.
//!
//! The bytes are read from a counting global allocator ([`Counting`]): a binary that wants
//! these rows installs it (`#[global_allocator] static A: Counting = Counting;`), as `compare`
//! and `tests/memory.rs` do; a library cannot, since a global allocator is one per program.
//! Without it every figure would read 0, so [`idle_sessions`] checks that it is installed.
//!
//! What an idle session is: a client that completed its handshake and then went quiet, on a
//! server that ran its housekeeping past the half-open timeout ([`Farm::settle`]), so that what
//! remains is what the server keeps for as long as the session lives. The configured client
//! table is not counted (the server holds it whether or not anyone connects); everything the
//! server grows by while clients connect is, including caches keyed by client (suite 2's box
//! keys, suite 3's static–static results).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::{Duration as WallDuration, Instant as WallInstant};

use pavillion_proto::endpoint::{Client, Server, ServerEvent};
use pavillion_proto::wire::MAX_DATAGRAM;
use pavillion_proto::Instant;

use crate::{client_addr, connect, server_addr, Farm, Suite};

/// The target of the issue: at most this many heap bytes per idle session, on every suite.
pub const BUDGET: f64 = 512.0;

/// Counts live heap bytes, so that a measurement can read the server's state as the difference
/// between two moments. Install it as the program's global allocator.
#[derive(Debug)]
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
// Allocations ever made: only grows, so other threads' frees cannot hide a probe from
// `counting_installed` as they can in `LIVE`.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// The one piece of unsafe code in the crate: a global allocator must be an `unsafe impl`.
// It forwards every call to the system allocator unchanged and only adds up sizes.
#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with the caller's arguments, which upholds the
// `GlobalAlloc` contract because `System` does; the counter has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; see the impl.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; see the impl.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; see the impl.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged; see the impl.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Live heap bytes counted by [`Counting`] (0 if it is not the global allocator).
pub fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Allocations made so far, counted by [`Counting`] (0 if it is not the global allocator).
/// The difference between two readings is what the code between them allocated (plus what
/// other threads allocated meanwhile).
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Whether [`Counting`] is the global allocator of this program.
pub fn counting_installed() -> bool {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let probe = std::hint::black_box(vec![0u8; 4096]);
    let counted = ALLOCATIONS.load(Ordering::Relaxed) > before;
    drop(probe);
    counted
}

/// What one server with `sessions` idle sessions holds.
#[derive(Clone, Debug)]
pub struct IdleSessions {
    /// The suite of every session.
    pub suite: Suite,
    /// How many sessions the server holds.
    pub sessions: usize,
    /// Heap bytes per idle session, after housekeeping.
    pub per_session: f64,
    /// Heap bytes per session before housekeeping (handshake records still held).
    pub fresh_per_session: f64,
    /// Heap bytes of all the idle sessions together.
    pub total: isize,
    /// Wall time to set the server up.
    pub setup: WallDuration,
    /// Clients, of those kept, whose message the server delivered afterwards ([`Served`]).
    pub served: Option<Served>,
}

/// The proof that a server full of idle sessions still serves: one unreliable message from
/// each of `asked` clients chosen at random, of which `delivered` came out as
/// [`ServerEvent::Message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    /// Clients that sent a message.
    pub asked: usize,
    /// Messages the server delivered.
    pub delivered: usize,
}

/// Builds a server with `n` idle sessions of `suite` and measures their heap bytes per
/// session. With `serve > 0`, that many clients (chosen at random, kept aside and connected
/// first, so that neither they nor their sessions are in the measurement) each send one
/// message afterwards, and [`IdleSessions::served`] says how many the server delivered.
///
/// Progress is printed to stderr every `progress` sessions (0: never).
///
/// # Panics
/// If [`Counting`] is not the global allocator, or a handshake fails.
pub fn idle_sessions(suite: Suite, n: usize, serve: usize, progress: usize) -> IdleSessions {
    assert!(
        counting_installed(),
        "install memory::Counting as the global allocator to measure heap bytes"
    );
    let start = WallInstant::now();
    let serve = serve.min(n);
    let kept_ids = sample(n, serve, 0x5E55_1045);
    let mut server = Server::new(suite.server_config(n));
    let mut now = Instant::from_millis(1_000);
    let mut buf = vec![0; MAX_DATAGRAM];
    let mut kept = Vec::with_capacity(serve);
    let mut is_kept = vec![false; n];
    for &i in &kept_ids {
        is_kept[i] = true;
        let mut client = Client::new(suite.client_config(i, server_addr()));
        let ok = connect(&mut server, &mut client, client_addr(i), &mut now, &mut buf);
        assert!(ok, "{} handshake {i} failed", suite.name());
        kept.push((i, client));
    }
    // Measured from here, so that the client table of the configuration (which a server
    // holds whether or not the clients are connected) and the kept clients are not counted.
    let before = live_bytes();
    for i in (0..n).filter(|&i| !is_kept[i]) {
        let mut client = Client::new(suite.client_config(i, server_addr()));
        let ok = connect(&mut server, &mut client, client_addr(i), &mut now, &mut buf);
        assert!(ok, "{} handshake {i} failed", suite.name());
        if progress > 0 && i % progress == progress - 1 {
            eprintln!(
                "  {} x {n}: {} sessions in {:.1}s",
                suite.name(),
                i + 1,
                start.elapsed().as_secs_f64()
            );
        }
    }
    let fresh = live_bytes();
    let mut farm = Farm {
        server,
        clients: Vec::new(),
        now,
        suite,
    };
    farm.settle();
    let after = live_bytes();
    assert_eq!(
        farm.server.session_count(),
        n,
        "every client holds a session"
    );
    let measured = n - serve;
    let total = after - before;
    let per_session = total as f64 / measured.max(1) as f64;
    let fresh_per_session = (fresh - before) as f64 / measured.max(1) as f64;
    let setup = start.elapsed();
    let served = (serve > 0).then(|| serve_from(&mut farm, kept));
    IdleSessions {
        suite,
        sessions: n,
        per_session,
        fresh_per_session,
        total,
        setup,
        served,
    }
}

/// One unreliable message from each of `kept` (connected clients of `farm`'s server), and how
/// many the server delivered.
fn serve_from(farm: &mut Farm, kept: Vec<(usize, Client)>) -> Served {
    let asked = kept.len();
    let mut delivered = 0;
    let data = crate::payload(crate::PAYLOAD);
    let mut buf = vec![0; MAX_DATAGRAM];
    let now = farm.now;
    for (i, mut client) in kept {
        client
            .send_message(
                now,
                crate::TARGET,
                crate::NAME,
                &data,
                pavillion_proto::endpoint::SendOptions::unreliable(),
            )
            .expect("an unreliable send on a connected client is accepted");
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            farm.server
                .handle_datagram(now, client_addr(i), &buf[..t.len]);
        }
        while let Some(e) = farm.server.poll_event() {
            if matches!(e, ServerEvent::Message { .. }) {
                delivered += 1;
            }
        }
    }
    Served { asked, delivered }
}

/// `k` distinct indices below `n`, in a random order fixed by `seed` (a xorshift; the choice
/// only has to be spread over the whole range and repeatable).
fn sample(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut x = seed | 1;
    let mut chosen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(k);
    while out.len() < k.min(n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % n as u64) as usize;
        if chosen.insert(i) {
            out.push(i);
        }
    }
    out
}

/// One row of `compare`'s table, as [`rows`] measured it.
#[derive(Clone, Debug)]
pub struct MemoryRow {
    /// What was measured.
    pub what: String,
    /// Our figure.
    pub ours: String,
    /// The budget it is held against.
    pub reference: String,
    /// Ours over the budget.
    pub ratio: f64,
    /// The target, as text.
    pub target: &'static str,
    /// Whether the target is met.
    pub ok: bool,
}

/// Which of the slow rows to measure.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Skip psk at 100k sessions.
    pub skip_100k: bool,
    /// Skip the large servers that prove serving: psk at 1M, ecc and noise at 100k (their
    /// handshakes cost 0.2 and 0.5 ms each, so a million would take minutes to set up).
    pub skip_1m: bool,
}

/// Sessions of the large servers per suite: a million for psk; 100k for ecc and noise.
pub const fn large(suite: Suite) -> usize {
    match suite {
        Suite::Psk => 1_000_000,
        Suite::Ecc | Suite::Noise => 100_000,
    }
}

/// Clients of a large server that each send a message after it is built.
pub const SERVED: usize = 1_000;

/// The memory rows: every suite at 10k sessions, psk at 100k, and the large servers (see
/// [`Options`]); each records `idle_session_bytes_SUITE_N` (bytes per session, `N` as `10k`,
/// `100k`, `1m`).
pub fn rows(options: Options) -> Vec<MemoryRow> {
    let mut runs: Vec<(Suite, usize, usize)> = Suite::ALL.iter().map(|&s| (s, 10_000, 0)).collect();
    if !options.skip_100k {
        runs.push((Suite::Psk, 100_000, 0));
    }
    if !options.skip_1m {
        runs.extend(Suite::ALL.iter().map(|&s| (s, large(s), SERVED)));
    }
    runs.into_iter()
        .map(|(suite, n, serve)| row(&idle_sessions(suite, n, serve, n / 10)))
        .collect()
}

/// `n` as `10k` or `1m`.
fn count_name(n: usize) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{}m", n / 1_000_000)
    } else {
        format!("{}k", n / 1000)
    }
}

fn row(m: &IdleSessions) -> MemoryRow {
    let name = m.suite.name();
    let count = count_name(m.sessions);
    crate::results::record(
        &format!("idle_session_bytes_{name}_{count}"),
        m.per_session,
        "B",
    );
    let mut note = format!(
        "{:.0} B before expiry; set up in {:.1}s",
        m.fresh_per_session,
        m.setup.as_secs_f64()
    );
    let mut ok = m.per_session <= BUDGET;
    if let Some(s) = m.served {
        note += &format!(
            "; {:.0} MB in all; {}/{} random clients served",
            m.total as f64 / 1e6,
            s.delivered,
            s.asked
        );
        ok &= s.delivered == s.asked;
    }
    MemoryRow {
        what: format!("memory per idle session, {name} x {count} [{note}]"),
        ours: format!("{:.0} B", m.per_session),
        reference: format!("{BUDGET:.0} B"),
        ratio: m.per_session / BUDGET,
        target: "<= 512 B",
        ok,
    }
}

/// Prints the inline size of each part of an idle session (`Server::idle_session_layout`), to
/// read beside the measured rows: what is left to shrink, and where.
pub fn print_layout() {
    println!("idle session layout (inline bytes; heap shows in the rows below):");
    for (part, bytes) in Server::idle_session_layout() {
        println!("  {part:<56} {bytes:>4}");
    }
}
