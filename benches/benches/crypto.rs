//! Seal and open of 64, 256 and 1200-byte payloads under each suite's session cipher.
//!
//! Suites 1 and 2 share XSalsa20-Poly1305 (`SecretBoxKey`), suite 3 uses ChaCha20-Poly1305
//! (`ChaChaKey`); both are measured through the `SessionCipher` trait the sessions use, so the
//! numbers include the per-call key setup that the endpoints pay too.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use pavillion_benches::{payload, Suite};

const SIZES: [usize; 3] = [64, 256, 1200];

fn crypto(c: &mut Criterion) {
    for suite in Suite::ALL {
        let cipher = suite.cipher();
        let mut g = c.benchmark_group(format!("crypto/{}", suite.name()));
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let mut buf = payload(size);
            let mut counter = 1u64;
            g.bench_with_input(BenchmarkId::new("seal", size), &size, |b, _| {
                b.iter(|| {
                    counter += 1;
                    black_box(cipher.seal(counter, black_box(&mut buf)))
                })
            });
            let plain = payload(size);
            let mut sealed = plain.clone();
            let tag = cipher.seal(1, &mut sealed);
            // Open decrypts in place, so each iteration restores the ciphertext first; the copy
            // is a memcpy of at most 1200 bytes, small next to the cipher.
            g.bench_with_input(BenchmarkId::new("open", size), &size, |b, _| {
                b.iter(|| {
                    buf.copy_from_slice(&sealed);
                    assert!(cipher.open(1, &tag, black_box(&mut buf)));
                })
            });
        }
        g.finish();
    }
}

// A hand-written `main` instead of `criterion_group!`/`criterion_main!`: the macros generate an
// undocumented public function, which the workspace's `missing_docs` lint rejects.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    crypto(&mut c);
    c.final_summary();
}
