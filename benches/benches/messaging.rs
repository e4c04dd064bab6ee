//! Reliable 64-byte messages with their ACKs, and RPC echo calls, through a client–server
//! pair in memory.
//!
//! `net` drives the pair through `pavillion_proto::testing::Network` (link model, virtual
//! clock); `direct` passes datagrams between the two endpoints by hand, which leaves only the
//! cost of the protocol core. Each iteration is one window of [`BATCH`] operations.

use criterion::{BenchmarkId, Criterion, Throughput};
use pavillion_benches::{payload, DirectPair, NetPair, Suite, BATCH, PAYLOAD};

fn reliable(c: &mut Criterion) {
    let data = payload(PAYLOAD);
    let mut g = c.benchmark_group("reliable_64");
    g.throughput(Throughput::Elements(BATCH as u64));
    for suite in Suite::ALL {
        let mut pair = NetPair::connected(suite);
        g.bench_function(BenchmarkId::new("net", suite.name()), |b| {
            b.iter(|| pair.reliable_batch(BATCH, &data))
        });
        let mut pair = DirectPair::connected(suite);
        g.bench_function(BenchmarkId::new("direct", suite.name()), |b| {
            b.iter(|| pair.reliable_batch(BATCH, &data))
        });
    }
    g.finish();
}

fn rpc(c: &mut Criterion) {
    let data = payload(PAYLOAD);
    let mut g = c.benchmark_group("rpc_echo_64");
    g.throughput(Throughput::Elements(BATCH as u64));
    for suite in Suite::ALL {
        let mut pair = NetPair::connected(suite);
        g.bench_function(BenchmarkId::new("net", suite.name()), |b| {
            b.iter(|| pair.echo_batch(BATCH, &data))
        });
        let mut pair = DirectPair::connected(suite);
        g.bench_function(BenchmarkId::new("direct", suite.name()), |b| {
            b.iter(|| pair.echo_batch(BATCH, &data))
        });
    }
    g.finish();
}

// A hand-written `main` instead of `criterion_group!`/`criterion_main!`: the macros generate an
// undocumented public function, which the workspace's `missing_docs` lint rejects.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    reliable(&mut c);
    rpc(&mut c);
    c.final_summary();
}
