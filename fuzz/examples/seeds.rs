//! Writes the seed corpora under `fuzz/corpus/<target>/` from real packets of every suite.
//!
//! Run from `fuzz/`: `cargo run --example seeds`. It drives a real client and server (built as
//! the targets build them) through a handshake and some traffic per suite, records every
//! datagram with its time, and writes each target's seeds in the format it reads: whole
//! datagrams for the wire targets, decrypted application plaintexts for the session targets,
//! one side's datagrams with their timing for the handshake targets, and operation sequences
//! for the network target. The output is deterministic; rerunning it rewrites the same files.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pavillion_fuzz::{
    client_config, drain_client, drain_server, op, OpsWriter, CLIENT, FUNCTION, SERVER,
};
use pavillion_proto::endpoint::{Client, SendOptions};
use pavillion_proto::features::durable::{DurableSeq, OriginId};
use pavillion_proto::testing::established::{Suite, START};
use pavillion_proto::wire::durable::DurableMessage;
use pavillion_proto::wire::noise::{KeyId, NoisePacket, SenderId, SessionIndex};
use pavillion_proto::wire::ordered::{OrderedMessage, OrderedSeq, StreamEpoch};
use pavillion_proto::wire::{App, Message, RpcStatus, Setup, StatusBytes};
use pavillion_proto::{Counter, Duration, Instant};

/// One datagram of a recorded run.
struct Sent {
    at: Instant,
    from: SocketAddr,
    bytes: Vec<u8>,
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut all: Vec<(Suite, Vec<Sent>)> = Vec::new();
    for suite in Suite::ALL {
        all.push((suite, record(suite)));
    }
    let name = |s: Suite| format!("{s:?}").to_lowercase();

    // Wire targets: every real datagram, by framing.
    for (suite, run) in &all {
        for (i, d) in run.iter().enumerate() {
            let target = match suite {
                Suite::Noise => "wire_noise",
                _ => "wire_setup",
            };
            write(&root, target, &format!("{}-{i:03}", name(*suite)), &d.bytes);
        }
    }
    for (i, s) in extra_setup().iter().enumerate() {
        let mut buf = vec![0u8; s.buffer_len()];
        s.emit(&mut buf).expect("emits");
        write(&root, "wire_setup", &format!("extra-{i}"), &buf);
    }
    for (i, p) in extra_noise().iter().enumerate() {
        let mut buf = vec![0u8; 64];
        let n = p.emit(&mut buf).expect("emits");
        write(&root, "wire_noise", &format!("extra-{i}"), &buf[..n]);
    }

    // Application plaintexts: one of each opcode.
    let plaintexts = app_plaintexts();
    for (i, p) in plaintexts.iter().enumerate() {
        write(&root, "wire_app", &format!("op-{:02}-{i}", p[0]), p);
    }

    // Session targets: each plaintext sealed on its own, then all of them in one run with a
    // replay and some waiting, per suite.
    for suite in Suite::ALL {
        for target in ["server_session", "client_session"] {
            for (i, p) in plaintexts.iter().enumerate() {
                let mut w = OpsWriter::new(suite);
                w.u8(op::SEALED).bytes(p);
                write(
                    &root,
                    target,
                    &format!("{}-op-{:02}-{i}", name(suite), p[0]),
                    &w.0,
                );
            }
            let mut w = OpsWriter::new(suite);
            w.u8(op::COMMAND).u8(0).bytes(b"payload");
            for p in &plaintexts {
                w.u8(op::SEALED).bytes(p);
            }
            w.u8(op::SEALED_AT).u16(0).bytes(&plaintexts[0]);
            w.u8(op::WAIT).u16(1500);
            w.u8(op::MOVE).u8(op::SEALED).bytes(&plaintexts[1]);
            w.u8(op::COMMAND).u8(0).bytes(b"answer");
            w.u8(op::WAIT).u16(60_000);
            write(&root, target, &format!("{}-all", name(suite)), &w.0);
        }
    }

    // Handshake targets: one side's datagrams, at the times they arrived.
    for (suite, run) in &all {
        for (target, from) in [("server_handshake", CLIENT), ("client_handshake", SERVER)] {
            let mut w = OpsWriter::new(*suite);
            let mut now = START;
            for d in run.iter().filter(|d| d.from == from) {
                let ms = (d.at - now).as_micros() / 1000;
                if ms > 0 {
                    w.u8(op::WAIT).u16(u16::try_from(ms).unwrap_or(u16::MAX));
                    now += Duration::from_millis(ms as u64);
                }
                w.u8(op::RAW).bytes(&d.bytes);
            }
            write(&root, target, &name(*suite), &w.0);
        }
    }

    // Network target: connect, message both ways, a call and its answer, a reboot.
    for suite in Suite::ALL {
        let mut w = OpsWriter::new(suite);
        w.u8(7); // network seed
        w.u8(0).bytes(b"hello");
        w.u8(2).u8(0).bytes(b"args");
        w.u8(4).u16(200);
        w.u8(9).u8(0).bytes(b"result");
        w.u8(3).bytes(b"from the server");
        w.u8(4).u16(500);
        write(&root, "network", &format!("{}-basic", name(suite)), &w.0);
        let mut w = OpsWriter::new(suite);
        w.u8(3);
        w.u8(5).u8(128).u8(40).u8(50);
        w.u8(0).bytes(b"lossy");
        w.u8(4).u16(3000);
        w.u8(8).u8(2);
        w.u8(0).bytes(b"after reboot");
        w.u8(4).u16(3000);
        w.u8(11).u8(0);
        w.u8(4).u16(1000);
        write(&root, "network", &format!("{}-faults", name(suite)), &w.0);
    }
}

/// Runs client 1 of `suite` against the targets' server: handshake, a reliable message, an
/// unreliable one, a call and its answer, a time sync, a message from the server, a quit.
fn record(suite: Suite) -> Vec<Sent> {
    let mut server = pavillion_fuzz::server(1);
    server.subscribe(START, "news");
    let mut client = Client::new(client_config(suite, 1));
    let mut calls = Vec::new();
    let mut log = Vec::new();
    let mut now = START;
    for step in 0..200u32 {
        match step {
            5 => {
                let opts = SendOptions::reliable();
                client
                    .send_message(now, "kitchen", "temp", b"21.5", opts)
                    .ok();
                let opts = SendOptions::unreliable();
                client.send_message(now, "hall", "motion", b"1", opts).ok();
                client.call(now, FUNCTION, b"args", None).ok();
                client.sync_time(now, None).ok();
            }
            10 => {
                for c in calls.drain(..) {
                    server.respond(now, c, RpcStatus::OK, b"result").ok();
                }
                let opts = SendOptions::reliable();
                server
                    .send_message(now, CLIENT, "news", "n", b"hi", opts)
                    .ok();
            }
            20 => client.close(now),
            _ => {}
        }
        for _ in 0..4 {
            let c = drain_client(&mut client, now);
            let s = drain_server(&mut server, now, &mut calls);
            if c.is_empty() && s.is_empty() {
                break;
            }
            for (_, bytes) in c {
                server.handle_datagram(now, CLIENT, &bytes);
                log.push(Sent {
                    at: now,
                    from: CLIENT,
                    bytes,
                });
            }
            for (_, bytes) in s {
                client.handle_datagram(now, SERVER, &bytes);
                log.push(Sent {
                    at: now,
                    from: SERVER,
                    bytes,
                });
            }
        }
        now += Duration::from_millis(1);
        client.handle_timeout(now);
        server.handle_timeout(now);
    }
    assert!(log.len() >= 6, "{suite:?}: only {} datagrams", log.len());
    log
}

fn extra_setup() -> Vec<Setup> {
    vec![
        Setup::UnrecognizedClient,
        Setup::NewServerJoin,
        Setup::InvalidClientId { challenge: [3; 16] },
        Setup::SessionEstablished {
            session_id: [4; 16],
        },
    ]
}

fn extra_noise() -> Vec<NoisePacket<'static>> {
    vec![
        NoisePacket::CookieReply {
            receiver: SessionIndex(9),
            cookie: [5; 16],
        },
        NoisePacket::UnknownIndex {
            receiver: SessionIndex(9),
        },
        NoisePacket::UnknownSender {
            sender: SenderId(6),
            key: KeyId(1),
        },
    ]
}

fn app_plaintexts() -> Vec<Vec<u8>> {
    let m = Message {
        target: "kitchen",
        name: "temp",
        payload: b"21.5",
    };
    let status = StatusBytes {
        battery: 80,
        network: 3,
        temperature: -4,
    };
    let key = [7u8; 32];
    let apps = [
        App::ReliableMessage(m),
        App::Ack {
            counter: Counter((1 << 63) + 2),
            status: None,
        },
        App::Ack {
            counter: Counter((1 << 63) + 2),
            status: Some(status),
        },
        App::UnreliableMessage(m),
        App::RpcCall {
            function: FUNCTION,
            args: b"args",
        },
        App::RpcCall {
            function: pavillion_proto::FunctionId(1),
            args: &401u16.to_le_bytes(),
        },
        App::RpcResponse {
            call: Counter((1 << 63) + 2),
            status: RpcStatus::OK,
            data: b"result",
        },
        App::Quit { reason: None },
        App::Quit { reason: Some(3) },
        App::Subscribe { target: "kitchen" },
        App::Unsubscribe { target: "kitchen" },
        App::ClientAccept {
            server_time_us: 1_000_000,
        },
        App::TimeSyncRequest,
        App::TimeSyncResponse {
            request: Counter((1 << 63) + 2),
            monotonic_us: 5_000_000,
            unix_us: Some(1_700_000_000_000_000),
        },
        App::GroupKey {
            sender: SenderId(6),
            key_id: KeyId(1),
            key: &key,
        },
        App::OrderedMessage(OrderedMessage {
            epoch: StreamEpoch(7),
            seq: OrderedSeq(2),
            floor: OrderedSeq(1),
            message: Message {
                target: "log",
                name: "line",
                payload: b"2",
            },
        }),
        App::DurableMessage(DurableMessage {
            origin: OriginId(0x0123_4567_89ab_cdef),
            seq: DurableSeq(3),
            floor: DurableSeq(2),
            message: Message {
                target: "log",
                name: "line",
                payload: b"3",
            },
        }),
    ];
    apps.iter()
        .map(|a| {
            let mut buf = vec![0u8; a.buffer_len()];
            a.emit(&mut buf).expect("emits");
            buf
        })
        .collect()
}

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir: PathBuf = root.join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    fs::write(dir.join(name), bytes).expect("seed written");
}
