//! `Server::handle_datagram` with 10 000 live sessions.
//!
//! The server is driven directly by datagrams that the 10 000 client endpoints produce (one
//! unreliable 64-byte message each, round robin, fresh counters), so the measurement covers
//! the session lookup among 10k, the replay window, decryption, parsing and the message event,
//! and excludes the clients: datagrams are made in chunks outside the timed section
//! (`iter_custom`). Setting up the sessions (10k handshakes) takes seconds per suite; its time
//! is printed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use pavillion_benches::{payload, Farm, Suite, PAYLOAD};

const SESSIONS: usize = 10_000;
const CHUNK: usize = 1_000;

fn handle_datagram(c: &mut Criterion) {
    let data = payload(PAYLOAD);
    let mut g = c.benchmark_group("server_handle_datagram_10k");
    g.throughput(Throughput::Elements(1));
    for suite in Suite::ALL {
        let start = Instant::now();
        let mut farm = Farm::build(suite, SESSIONS, true);
        farm.settle();
        eprintln!(
            "{}: {SESSIONS} sessions set up in {:.2?}",
            suite.name(),
            start.elapsed()
        );
        let mut next = 0usize;
        g.bench_function(suite.name(), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    let n = CHUNK.min((iters - done) as usize);
                    let batch = farm.datagrams(next, n, &data);
                    next = (next + n) % SESSIONS;
                    let now = farm.now;
                    let t = Instant::now();
                    for (from, bytes) in &batch {
                        farm.server.handle_datagram(now, *from, black_box(bytes));
                        while let Some(e) = farm.server.poll_event() {
                            black_box(e);
                        }
                    }
                    total += t.elapsed();
                    done += n as u64;
                }
                total
            })
        });
    }
    g.finish();
}

// A hand-written `main` instead of `criterion_group!`/`criterion_main!`: the macros generate an
// undocumented public function, which the workspace's `missing_docs` lint rejects.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    handle_datagram(&mut c);
    c.final_summary();
}
