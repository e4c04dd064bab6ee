//! Full handshakes of suites 1 (PSK), 2 (ECC) and 3 (Noise IK) over the in-memory network.
//!
//! Building the endpoints (key pairs, configuration) happens outside the measurement; the
//! measured part is every datagram of the exchange, from the client's first packet until it
//! reports the session up.

use criterion::{BatchSize, Criterion};
use pavillion_benches::{NetPair, Suite};

fn handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    for suite in Suite::ALL {
        g.bench_function(suite.name(), |b| {
            b.iter_batched(
                || NetPair::new(suite),
                |mut pair| {
                    assert!(pair.handshake());
                    pair
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

// A hand-written `main` instead of `criterion_group!`/`criterion_main!`: the macros generate an
// undocumented public function, which the workspace's `missing_docs` lint rejects.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    handshake(&mut c);
    c.final_summary();
}
