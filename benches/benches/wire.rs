//! Wire encode and decode.
//!
//! Application packets are the same under every suite, so they are measured once; datagram
//! classification (`Datagram::parse`) is measured per suite on the real datagrams of a
//! handshake and one message, captured from the in-memory network, so that each suite's
//! framing (setup packets for suites 1 and 2, `PvS3` packets for suite 3) is covered.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use pavillion_benches::{payload, NetPair, Suite, NAME, PAYLOAD, TARGET};
use pavillion_proto::endpoint::SendOptions;
use pavillion_proto::wire::setup::{CipherId, EccClientInfo, NonceRequest, PskClientInfo};
use pavillion_proto::wire::{App, Datagram, Message, Setup};
use pavillion_proto::{ClientId, Counter, Duration, FunctionId};

fn app_packets(data: &[u8]) -> Vec<(&'static str, App<'_>)> {
    vec![
        (
            "reliable_64",
            App::ReliableMessage(Message {
                target: TARGET,
                name: NAME,
                payload: data,
            }),
        ),
        (
            "ack",
            App::Ack {
                counter: Counter(42),
                status: None,
            },
        ),
        (
            "rpc_call_64",
            App::RpcCall {
                function: FunctionId(0),
                args: data,
            },
        ),
    ]
}

fn setup_packets() -> Vec<(&'static str, Setup)> {
    vec![
        (
            "nonce_request",
            Setup::NonceRequest(NonceRequest {
                cipher: CipherId::try_from(1).expect("suite 1 exists"),
                client_id: ClientId([1; 16]),
                challenge: [2; 16],
                session_hint: [0; 16],
                public_key: [0; 32],
            }),
        ),
        (
            "psk_client_info",
            Setup::PskClientInfo(PskClientInfo {
                cipher: CipherId::try_from(1).expect("suite 1 exists"),
                client_id: ClientId([1; 16]),
                client_nonce: [3; 32],
                server_nonce: [4; 32],
                counter: Counter(1),
                tag: [5; 32],
            }),
        ),
        (
            "ecc_client_info",
            Setup::EccClientInfo(EccClientInfo {
                client_id: ClientId([1; 16]),
                cipher: CipherId::try_from(2).expect("suite 2 exists"),
                box_nonce: [6; 24],
                sealed: [7; 120],
            }),
        ),
    ]
}

fn app(c: &mut Criterion) {
    let data = payload(PAYLOAD);
    let mut buf = vec![0u8; 2048];
    let mut g = c.benchmark_group("wire/app");
    for (name, packet) in app_packets(&data) {
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| black_box(&packet).emit(&mut buf).expect("fits"))
        });
        let len = packet.emit(&mut buf).expect("fits");
        let bytes = buf[..len].to_vec();
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| App::parse(black_box(&bytes)).expect("valid"))
        });
    }
    g.finish();
}

fn setup(c: &mut Criterion) {
    let mut buf = vec![0u8; 2048];
    let mut g = c.benchmark_group("wire/setup");
    for (name, packet) in setup_packets() {
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| black_box(&packet).emit(&mut buf).expect("fits"))
        });
        let len = packet.emit(&mut buf).expect("fits");
        let bytes = buf[..len].to_vec();
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| Setup::parse(black_box(&bytes)).expect("valid"))
        });
    }
    g.finish();
}

/// Every datagram of a handshake and of one reliable message with its ACK, as sent.
fn captured(suite: Suite) -> Vec<Vec<u8>> {
    let mut pair = NetPair::new(suite);
    pair.net.capture();
    assert!(pair.handshake());
    let now = pair.net.now();
    pair.net
        .client(pair.client)
        .send_message(
            now,
            TARGET,
            NAME,
            &payload(PAYLOAD),
            SendOptions::reliable(),
        )
        .expect("accepted");
    pair.net.run_for(Duration::from_millis(10));
    pair.net
        .captured()
        .iter()
        .map(|d| d.bytes.clone())
        .collect()
}

fn datagrams(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire/datagram_decode");
    for suite in Suite::ALL {
        let all = captured(suite);
        g.throughput(Throughput::Elements(all.len() as u64));
        g.bench_function(suite.name(), |b| {
            b.iter(|| {
                for d in &all {
                    let _ = black_box(Datagram::parse(black_box(d)));
                }
            })
        });
    }
    g.finish();
}

// A hand-written `main` instead of `criterion_group!`/`criterion_main!`: the macros generate an
// undocumented public function, which the workspace's `missing_docs` lint rejects.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    app(&mut c);
    setup(&mut c);
    datagrams(&mut c);
    c.final_summary();
}
