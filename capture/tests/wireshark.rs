//! The Wireshark dissector (`wireshark/pavillion.lua`) under tshark, over captures of real
//! endpoints: every suite's handshake, a reliable message both ways, its ACKs, and an RPC call
//! and answer, recorded from the in-memory network with the key log on, written by
//! [`PcapngWriter`] and [`KeyLogFile`].
//!
//! The tests need `tshark` (Debian's package, `scripts/install-tools.sh`). Without it they
//! print why and pass, unless `PAV_REQUIRE_TOOLS=1` (set by `scripts/test.sh`), where they fail.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

#[path = "support/tools.rs"]
mod tools;

use pavillion_capture::{read_key_log, CaptureTime, KeyLogFile, PcapngWriter};
use pavillion_proto::crypto::ecc::KeyPair;
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::Register;
use pavillion_proto::endpoint::{ClientConfig, SendOptions, ServerConfig, ServerEvent};
use pavillion_proto::keylog::SessionSecret;
use pavillion_proto::testing::{Link, Network};
use pavillion_proto::wire::{RegisterId, RegisterValue, RpcStatus};
use pavillion_proto::{ClientId, Duration, FunctionId};

/// How long one tshark run may take before the test fails (it takes well under a second).
const TSHARK_TIMEOUT: StdDuration = StdDuration::from_secs(120);

const ID: ClientId = ClientId(*b"test-client-0001");
const FUNCTION: u16 = 401;

fn server_addr() -> SocketAddr {
    "10.0.0.1:1783".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "10.0.0.2:40000".parse().unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn dissector() -> PathBuf {
    repo().join("wireshark/pavillion.lua")
}

/// A scratch directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("pavillion-wireshark-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suite {
    Psk,
    Ecc,
    NoiseIk,
    NoisePsk,
}

impl Suite {
    fn number(self) -> &'static str {
        match self {
            Suite::Psk => "1",
            Suite::Ecc => "2",
            Suite::NoiseIk | Suite::NoisePsk => "3",
        }
    }
}

fn psk() -> Psk {
    Psk::from_bytes([0x42; 32])
}

fn server_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x22; 32])
}

fn client_keys() -> KeyPair {
    KeyPair::from_secret_bytes([0x11; 32])
}

fn configs(suite: Suite) -> (ServerConfig, ClientConfig) {
    let server = ServerConfig::new([1; 32]);
    let server_pub = *server_keys().public();
    match suite {
        Suite::Psk => (
            server.with_psk_client(ID, psk()),
            ClientConfig::psk(ID, psk(), server_addr(), [2; 32]),
        ),
        Suite::Ecc => (
            server
                .with_keys(server_keys())
                .with_ecc_client(ID, *client_keys().public()),
            ClientConfig::ecc(ID, client_keys(), server_pub, server_addr(), [2; 32]),
        ),
        Suite::NoiseIk => (
            server
                .with_keys(server_keys())
                .with_ecc_client(ID, *client_keys().public()),
            ClientConfig::noise_ik(ID, client_keys(), server_pub, server_addr(), [2; 32]),
        ),
        Suite::NoisePsk => (
            server.with_psk_client(ID, psk()),
            ClientConfig::noise_psk(ID, psk(), server_addr(), [2; 32]),
        ),
    }
}

/// A capture and key log of one suite's run.
struct Recording {
    pcap: PathBuf,
    keylog: PathBuf,
    datagrams: usize,
    secrets: Vec<SessionSecret>,
}

/// Runs a handshake, a message each way (with their ACKs) and an RPC call with its answer,
/// then writes every datagram to `dir/run.pcapng` and both endpoints' secrets to
/// `dir/keys.log`.
fn record(suite: Suite, dir: &Path) -> Recording {
    let (s, c) = (server_addr(), client_addr());
    let (server, client) = configs(suite);
    let mut net = Network::new(7, Link::clean());
    net.add_server(s, server);
    net.add_client(c, client);
    net.capture();
    net.client(c).set_key_log(true);
    net.server(s).set_key_log(true);
    net.server(s)
        .register_function(FunctionId(FUNCTION), "the test's function");

    let now = net.now();
    net.client(c)
        .send_message(now, "sensors", "temp", b"21.5", SendOptions::reliable())
        .unwrap();
    net.run_for(Duration::from_millis(100));
    let now = net.now();
    net.server(s)
        .send_message(now, c, "cmd", "go", b"down", SendOptions::reliable())
        .unwrap();
    net.run_for(Duration::from_millis(100));
    let now = net.now();
    net.client(c)
        .call(now, FunctionId(FUNCTION), b"args", None)
        .unwrap();
    net.run_for(Duration::from_millis(100));
    let request = net
        .server_events(s)
        .into_iter()
        .find_map(|e| match e {
            ServerEvent::RpcRequest(r) => Some(r),
            _ => None,
        })
        .expect("the call reached the server");
    let now = net.now();
    net.server(s)
        .respond(now, request.call, RpcStatus::OK, b"pong")
        .unwrap();
    net.run_for(Duration::from_millis(100));

    save(&mut net, &[c], &[s], dir)
}

/// Writes every datagram of `net` to `dir/run.pcapng` and the secrets of its clients and
/// servers to `dir/keys.log`.
fn save(
    net: &mut Network,
    clients: &[SocketAddr],
    servers: &[SocketAddr],
    dir: &Path,
) -> Recording {
    let keylog = dir.join("keys.log");
    let mut log = KeyLogFile::open(&keylog).unwrap();
    let mut secrets = Vec::new();
    for &c in clients {
        while let Some(secret) = net.client(c).poll_secret() {
            secrets.push(secret);
        }
    }
    for &s in servers {
        while let Some(secret) = net.server(s).poll_secret() {
            secrets.push(secret);
        }
    }
    assert!(!secrets.is_empty(), "the key log is on");
    for secret in &secrets {
        log.write(secret).unwrap();
    }
    assert_eq!(read_key_log(&keylog).unwrap(), secrets);

    let pcap = dir.join("run.pcapng");
    let file = std::fs::File::create(&pcap).unwrap();
    let mut writer = PcapngWriter::new(std::io::BufWriter::new(file), "wireshark test").unwrap();
    for d in net.captured() {
        writer
            .write_udp(
                CaptureTime(d.at.as_micros()),
                d.from,
                d.to,
                &d.bytes,
                Some("sent"),
            )
            .unwrap();
    }
    writer.into_inner().unwrap();
    Recording {
        pcap,
        keylog,
        datagrams: net.captured().len(),
        secrets,
    }
}

/// The fields every row shows, in order.
const FIELDS: &[&str] = &[
    "frame.number",
    "udp.srcport",
    "pavillion.suite",
    "pavillion.layer",
    "pavillion.dissection",
    "pavillion.decryption",
    "pavillion.counter",
    "pavillion.app.name",
    "pavillion.target",
    "pavillion.name",
    "pavillion.payload_len",
    "pavillion.acked",
    "pavillion.function",
    "pavillion.call",
    "pavillion.status",
    "pavillion.index",
    "pavillion.setup.name",
    "pavillion.s3.name",
    "pavillion.sender",
    "pavillion.key_id",
    "pavillion.register",
    "pavillion.type",
    "pavillion.value",
    "pavillion.duration_ms",
    "pavillion.min_interval_ms",
    "pavillion.from",
    "pavillion.unit",
    "pavillion.request",
    "pavillion.transfer",
    "pavillion.total",
    "pavillion.offset",
    "pavillion.ranges",
    "pavillion.epoch",
    "pavillion.seq",
];

type Row = HashMap<&'static str, String>;

/// Decodes a capture with tshark and the dissector; one row of [`FIELDS`] per frame.
fn decode(tshark: &Path, pcap: &Path, keylog: Option<&Path>) -> Vec<Row> {
    let mut args = vec![
        "-n".to_string(),
        "-X".to_string(),
        format!("lua_script:{}", dissector().display()),
        "-r".to_string(),
        pcap.display().to_string(),
        "-T".to_string(),
        "fields".to_string(),
        "-E".to_string(),
        "occurrence=f".to_string(),
    ];
    if let Some(k) = keylog {
        args.push("-o".to_string());
        args.push(format!("pavillion.keylog_file:{}", k.display()));
    }
    for f in FIELDS {
        args.push("-e".to_string());
        args.push((*f).to_string());
    }
    let out = tools::run_bounded(tshark, &args, TSHARK_TIMEOUT);
    out.lines()
        .map(|line| {
            let values: Vec<&str> = line.split('\t').collect();
            assert_eq!(values.len(), FIELDS.len(), "{line}");
            FIELDS
                .iter()
                .zip(values)
                .map(|(f, v)| (*f, v.to_string()))
                .collect()
        })
        .collect()
}

fn rows_named<'a>(rows: &'a [Row], name: &str) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| r["pavillion.dissection"] == name)
        .collect()
}

fn one<'a>(rows: &'a [Row], name: &str, pred: impl Fn(&Row) -> bool) -> &'a Row {
    let found: Vec<&Row> = rows_named(rows, name)
        .into_iter()
        .filter(|r| pred(r))
        .collect();
    assert!(!found.is_empty(), "no {name} row matches in {rows:#?}");
    found[0]
}

fn from_client(r: &Row) -> bool {
    r["udp.srcport"] == client_addr().port().to_string()
}

fn from_server(r: &Row) -> bool {
    r["udp.srcport"] == server_addr().port().to_string()
}

/// Checks the decoded rows of one suite's run with its key log.
fn check_decrypted(suite: Suite, rows: &[Row], run: &Recording) {
    assert_eq!(rows.len(), run.datagrams, "{suite:?}: one row per datagram");
    // Suite 3: the receiver indices the key log names for each direction.
    let indices: Vec<(String, String)> = run
        .secrets
        .iter()
        .filter_map(|s| match s {
            SessionSecret::Noise {
                to_server_index,
                to_client_index,
                ..
            } => Some((
                format!("0x{to_server_index:08x}"),
                format!("0x{to_client_index:08x}"),
            )),
            _ => None,
        })
        .collect();
    // Handshake packets, in the clear.
    let handshake: &[&str] = match suite {
        Suite::Psk => &[
            "nonce_request",
            "psk_nonce",
            "psk_client_info",
            "session_established",
        ],
        Suite::Ecc => &[
            "nonce_request",
            "ecc_nonce",
            "ecc_client_info",
            "session_established",
        ],
        Suite::NoiseIk | Suite::NoisePsk => &["initiation", "response"],
    };
    for name in handshake {
        let r = one(rows, name, |_| true);
        assert_eq!(r["pavillion.decryption"], "clear", "{suite:?} {name}");
    }
    // Every session packet opened under the key of its direction, with the suite's number.
    let sessions: Vec<&Row> = rows
        .iter()
        .filter(|r| r["pavillion.layer"] == "session")
        .collect();
    assert!(sessions.len() >= 6, "{suite:?}: {rows:#?}");
    for r in &sessions {
        let want = if from_client(r) {
            "to_server"
        } else {
            "to_client"
        };
        assert_eq!(r["pavillion.decryption"], want, "{suite:?}: {r:?}");
        assert_eq!(r["pavillion.suite"], suite.number(), "{suite:?}: {r:?}");
        assert_eq!(r["pavillion.dissection"], r["pavillion.app.name"], "{r:?}");
        if suite.number() == "3" {
            let index = &r["pavillion.index"];
            assert!(
                indices.iter().any(|(to_server, to_client)| {
                    index == if from_client(r) { to_server } else { to_client }
                }),
                "{r:?} {indices:?}"
            );
        }
    }
    // The message up and its ACK.
    let up = one(rows, "reliable_message", |r| {
        from_client(r) && r["pavillion.target"] == "sensors"
    });
    assert_eq!(up["pavillion.name"], "temp");
    assert_eq!(up["pavillion.payload_len"], "4");
    one(rows, "ack", |r| {
        from_server(r) && r["pavillion.acked"] == up["pavillion.counter"]
    });
    // The message down and its ACK.
    let down = one(rows, "reliable_message", |r| {
        from_server(r) && r["pavillion.target"] == "cmd"
    });
    assert_eq!(down["pavillion.name"], "go");
    one(rows, "ack", |r| {
        from_client(r) && r["pavillion.acked"] == down["pavillion.counter"]
    });
    // The call and its answer, which quotes the call's counter.
    let call = one(rows, "rpc_call", |r| {
        from_client(r) && r["pavillion.function"] == FUNCTION.to_string()
    });
    let answer = one(rows, "rpc_response", |r| {
        from_server(r) && r["pavillion.call"] == call["pavillion.counter"]
    });
    assert_eq!(answer["pavillion.status"], "0");
}

#[test]
fn tshark_decrypts_every_suite_with_the_key_log_and_shows_only_headers_without_it() {
    let Some(tshark) = tools::tshark() else {
        return;
    };
    for suite in [Suite::Psk, Suite::Ecc, Suite::NoiseIk, Suite::NoisePsk] {
        let dir = scratch(&format!("{suite:?}"));
        let run = record(suite, &dir);
        let rows = decode(&tshark, &run.pcap, Some(&run.keylog));
        check_decrypted(suite, &rows, &run);

        // Without the key log the same session packets stay encrypted, their headers shown.
        let plain = decode(&tshark, &run.pcap, None);
        assert_eq!(plain.len(), rows.len());
        for (with, without) in rows.iter().zip(&plain) {
            if with["pavillion.layer"] == "session" {
                assert_eq!(without["pavillion.dissection"], "encrypted", "{without:?}");
                assert_eq!(without["pavillion.decryption"], "no_key");
                assert_eq!(without["pavillion.app.name"], "");
                assert_eq!(without["pavillion.counter"], with["pavillion.counter"]);
            } else {
                assert_eq!(
                    without, with,
                    "{suite:?}: packets in the clear do not change"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Every other operation a session carries, over one suite: an unreliable message, registers
/// (read, write, observe, info), subscriptions, time sync, an ordered message, a message too
/// large for one datagram (segments and ranged ACKs), and quit.
fn record_operations(suite: Suite, dir: &Path) -> Recording {
    let (s, c) = (server_addr(), client_addr());
    let (server, client) = configs(suite);
    let mut net = Network::new(5, Link::clean());
    net.add_server(s, server);
    net.add_client(c, client);
    net.capture();
    net.client(c).set_key_log(true);
    net.server(s).set_key_log(true);
    net.server(s)
        .declare_register(Register {
            number: RegisterId(7),
            name: "level".to_string(),
            unit: "mm".to_string(),
            writable: true,
            value: RegisterValue::U64(42),
        })
        .unwrap();
    let step = |net: &mut Network| net.run_for(Duration::from_millis(100));
    let now = net.now();
    net.client(c)
        .send_message(now, "a", "b", b"x", SendOptions::reliable())
        .unwrap();
    step(&mut net);
    let now = net.now();
    net.client(c)
        .send_message(now, "loose", "u", b"y", SendOptions::unreliable())
        .unwrap();
    net.client(c)
        .read_register(now, RegisterId(7), None)
        .unwrap();
    step(&mut net);
    let now = net.now();
    net.client(c)
        .write_register(
            now,
            RegisterId(7),
            RegisterValue::U64(43),
            SendOptions::reliable(),
        )
        .unwrap();
    step(&mut net);
    let now = net.now();
    net.client(c)
        .observe(
            now,
            RegisterId(7),
            Duration::from_secs(5),
            Duration::from_millis(100),
        )
        .unwrap();
    net.client(c).register_info(now, RegisterId(0)).unwrap();
    step(&mut net);
    let now = net.now();
    net.client(c).subscribe(now, "news").unwrap();
    net.client(c).sync_time(now, None).unwrap();
    step(&mut net);
    let now = net.now();
    net.client(c).unsubscribe(now, "news").unwrap();
    net.client(c)
        .send_message(now, "line", "o", b"first", SendOptions::ordered())
        .unwrap();
    step(&mut net);
    let now = net.now();
    net.client(c)
        .send_message(now, "bulk", "big", &[7u8; 10_000], SendOptions::reliable())
        .unwrap();
    net.run_for(Duration::from_secs(1));
    let now = net.now();
    net.client(c).close(now);
    step(&mut net);
    save(&mut net, &[c], &[s], dir)
}

#[test]
fn tshark_names_every_operation_a_session_carries() {
    let Some(tshark) = tools::tshark() else {
        return;
    };
    for suite in [Suite::Psk, Suite::NoiseIk] {
        let dir = scratch(&format!("ops-{suite:?}"));
        let run = record_operations(suite, &dir);
        let rows = decode(&tshark, &run.pcap, Some(&run.keylog));
        assert_eq!(rows.len(), run.datagrams);
        for r in rows.iter().filter(|r| r["pavillion.layer"] == "session") {
            assert_ne!(r["pavillion.decryption"], "no_key", "{suite:?}: {r:?}");
            assert_ne!(r["pavillion.dissection"], "unknown_op", "{suite:?}: {r:?}");
        }
        let names: std::collections::BTreeSet<&str> = rows
            .iter()
            .map(|r| r["pavillion.dissection"].as_str())
            .collect();
        for name in [
            "reliable_message",
            "ack",
            "unreliable_message",
            "register_read",
            "register_value",
            "observe",
            "register_info_request",
            "register_info",
            "subscribe",
            "unsubscribe",
            "time_sync_request",
            "time_sync_response",
            "ordered_message",
            "segment",
            "ack_ranges",
            "quit",
        ] {
            assert!(names.contains(name), "{suite:?}: no {name} in {names:?}");
        }
        one(&rows, "unreliable_message", |r| {
            r["pavillion.target"] == "loose"
        });
        one(&rows, "register_read", |r| r["pavillion.register"] == "7");
        one(&rows, "register_value", |r| {
            from_server(r) && r["pavillion.type"] == "u64" && r["pavillion.value"] == "42"
        });
        one(&rows, "register_value", |r| {
            from_client(r) && r["pavillion.value"] == "43"
        });
        one(&rows, "observe", |r| {
            r["pavillion.register"] == "7"
                && r["pavillion.duration_ms"] == "5000"
                && r["pavillion.min_interval_ms"] == "100"
        });
        one(&rows, "register_info_request", |r| {
            r["pavillion.from"] == "0"
        });
        one(&rows, "register_info", |r| {
            r["pavillion.register"] == "7"
                && r["pavillion.name"] == "level"
                && r["pavillion.unit"] == "mm"
                && r["pavillion.type"] == "u64"
        });
        one(&rows, "subscribe", |r| r["pavillion.target"] == "news");
        one(&rows, "unsubscribe", |r| r["pavillion.target"] == "news");
        let request = one(&rows, "time_sync_request", from_client);
        one(&rows, "time_sync_response", |r| {
            r["pavillion.request"] == request["pavillion.counter"]
        });
        one(&rows, "ordered_message", |r| {
            r["pavillion.target"] == "line" && r["pavillion.seq"] == "1"
        });
        let segments = rows_named(&rows, "segment");
        assert!(segments.len() >= 3, "{segments:?}");
        assert!(segments
            .iter()
            .all(|r| r["pavillion.total"] == segments[0]["pavillion.total"]));
        assert!(segments.iter().any(|r| r["pavillion.offset"] == "0"));
        let ranges = one(&rows, "ack_ranges", |_| true);
        let first = ranges["pavillion.ranges"].split(',').next().unwrap();
        let (a, b) = first.split_once('+').expect("first+count");
        assert!(
            a.parse::<u64>().is_ok() && b.parse::<u16>().is_ok(),
            "{ranges:?}"
        );
        one(&rows, "quit", from_client);

        // No datagram is malformed, and every opened plaintext parses.
        let args: Vec<String> = [
            "-n",
            "-X",
            &format!("lua_script:{}", dissector().display()),
            "-o",
            &format!("pavillion.keylog_file:{}", run.keylog.display()),
            "-r",
            &run.pcap.display().to_string(),
            "-Y",
            "pavillion.malformed || pavillion.bad_plaintext || pavillion.no_key",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            tools::run_bounded(&tshark, &args, TSHARK_TIMEOUT),
            "",
            "{suite:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn group() -> SocketAddr {
    "239.255.3.3:1783".parse().unwrap()
}

fn members() -> [SocketAddr; 2] {
    [
        "10.0.3.1:1783".parse().unwrap(),
        "10.0.3.2:1783".parse().unwrap(),
    ]
}

/// Suite 3 multicast: a client finds two servers of a group, hands each its group key (op 32,
/// inside pairwise data packets), then sends one reliable message as group data (type 6).
fn record_group(dir: &Path) -> Recording {
    let c = client_addr();
    let mut net = Network::new(11, Link::clean());
    net.capture();
    for s in members() {
        let (server, _) = configs(Suite::NoiseIk);
        net.add_server(s, server);
        net.join(s, group());
        net.server(s).set_key_log(true);
        let now = net.now();
        net.server(s).subscribe(now, "t");
    }
    net.add_client(
        c,
        ClientConfig::noise_ik(ID, client_keys(), *server_keys().public(), group(), [3; 32]),
    );
    net.client(c).set_key_log(true);
    let found = net.run_until(Duration::from_secs(10), |net| {
        let now = net.now();
        net.client(c).subscribers(now, "t").len() == 2
    });
    assert!(found, "both members found");
    net.run_for(Duration::from_millis(100));
    let now = net.now();
    net.client(c)
        .send_message(now, "t", "n", b"hello group", SendOptions::reliable())
        .unwrap();
    net.run_for(Duration::from_millis(100));
    save(&mut net, &[c], &members(), dir)
}

/// The byte dumps of `tshark -x` output (one per tab, the decrypted one included), each as
/// one lower-case hex string.
fn hex_dumps(out: &str) -> Vec<String> {
    let mut dumps = Vec::new();
    let mut current = String::new();
    for line in out.lines() {
        let is_dump = line.len() > 6
            && line[..4].chars().all(|c| c.is_ascii_hexdigit())
            && &line[4..6] == "  ";
        if is_dump {
            // Offset, two spaces, up to 16 bytes "xx " each, then the ASCII column.
            let bytes = &line[6..line.len().min(6 + 16 * 3)];
            for token in bytes.split(' ') {
                if token.len() == 2 && token.chars().all(|c| c.is_ascii_hexdigit()) {
                    current.push_str(token);
                }
            }
        } else if !current.is_empty() {
            dumps.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        dumps.push(current);
    }
    dumps
}

#[test]
fn tshark_opens_group_data_and_never_shows_a_group_key() {
    let Some(tshark) = tools::tshark() else {
        return;
    };
    let dir = scratch("group");
    let run = record_group(&dir);
    let group_keys: Vec<(u64, u32, [u8; 32])> = run
        .secrets
        .iter()
        .filter_map(|s| match s {
            SessionSecret::Group {
                sender,
                key_id,
                key,
            } => Some((*sender, *key_id, *key)),
            _ => None,
        })
        .collect();
    assert!(!group_keys.is_empty(), "the group key is logged");
    let (sender, key_id, key) = group_keys[0];
    let sender = format!("0x{sender:016x}");

    let rows = decode(&tshark, &run.pcap, Some(&run.keylog));
    assert_eq!(rows.len(), run.datagrams);
    // Each member received the key over its pairwise session: sender and key id, no key.
    let handed = rows_named(&rows, "group_key");
    assert_eq!(handed.len(), 2, "{rows:#?}");
    for r in &handed {
        assert_eq!(r["pavillion.sender"], sender);
        assert_eq!(r["pavillion.key_id"], key_id.to_string());
        assert_eq!(r["pavillion.decryption"], "to_server");
    }
    // The message went once, to the group, and opened under the group key.
    let sent = one(&rows, "reliable_message", |r| {
        r["pavillion.layer"] == "group"
    });
    assert_eq!(sent["pavillion.target"], "t");
    assert_eq!(sent["pavillion.name"], "n");
    assert_eq!(sent["pavillion.payload_len"], "11");
    assert_eq!(sent["pavillion.sender"], sender);
    assert_eq!(sent["pavillion.suite"], "3");
    assert_eq!(sent["pavillion.decryption"], "to_server");

    // The full dissection, with the hex dump of every tab (the decrypted one too), never
    // contains the key's bytes.
    let full = tools::run_bounded(
        &tshark,
        &[
            "-n".to_string(),
            "-X".to_string(),
            format!("lua_script:{}", dissector().display()),
            "-o".to_string(),
            format!("pavillion.keylog_file:{}", run.keylog.display()),
            "-r".to_string(),
            run.pcap.display().to_string(),
            "-V".to_string(),
            "-x".to_string(),
        ],
        TSHARK_TIMEOUT,
    );
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    assert!(full.contains("group_key"), "{full}");
    assert!(!full.contains(&hex), "the key leaked in a field");
    let dumps = hex_dumps(&full);
    assert!(
        dumps.iter().any(|d| d.len() == 90),
        "the decrypted op 32 is dumped: {dumps:?}"
    );
    assert!(
        dumps.iter().all(|d| !d.contains(&hex)),
        "the key leaked in a hex dump"
    );

    // A key log without the group line still opens it: the dissector learns the key from the
    // op 32 it decrypted on the way.
    let pairwise_only = dir.join("pairwise.log");
    let text = std::fs::read_to_string(&run.keylog).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("PAVILLION_S3_GROUP"))
        .collect();
    assert!(kept.len() < text.lines().count());
    std::fs::write(&pairwise_only, kept.join("\n")).unwrap();
    let learned = decode(&tshark, &run.pcap, Some(&pairwise_only));
    let sent = one(&learned, "reliable_message", |r| {
        r["pavillion.layer"] == "group"
    });
    assert_eq!(sent["pavillion.target"], "t");

    // Without the key log the group packet is encrypted, its sender and key id shown.
    let plain = decode(&tshark, &run.pcap, None);
    let hidden = one(&plain, "encrypted", |r| r["pavillion.layer"] == "group");
    assert_eq!(hidden["pavillion.sender"], sender);
    assert_eq!(hidden["pavillion.decryption"], "no_key");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_dissectors_ciphers_pass_their_known_answer_vectors() {
    let Some(tshark) = tools::tshark() else {
        return;
    };
    let dir = scratch("vectors");
    let pcap = dir.join("empty.pcapng");
    PcapngWriter::new(std::fs::File::create(&pcap).unwrap(), "vectors")
        .unwrap()
        .into_inner()
        .unwrap();
    let script = repo().join("wireshark/tests/crypto_vectors.lua");
    let out = tools::run_bounded(
        &tshark,
        &[
            "-X".to_string(),
            format!("lua_script:{}", script.display()),
            "-r".to_string(),
            pcap.display().to_string(),
        ],
        TSHARK_TIMEOUT,
    );
    let summary = out
        .lines()
        .find(|l| l.starts_with("crypto vectors:"))
        .unwrap_or_else(|| panic!("no summary in:\n{out}"));
    assert!(summary.ends_with(" 0 failed"), "{out}");
    let passed: usize = summary
        .trim_start_matches("crypto vectors: ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(passed >= 15, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tshark_reads_our_capture_with_its_comments_and_times() {
    let Some(tshark) = tools::tshark() else {
        return;
    };
    let dir = scratch("read");
    let pcap = dir.join("two.pcapng");
    let mut w = PcapngWriter::new(std::fs::File::create(&pcap).unwrap(), "unit").unwrap();
    w.write_udp(
        CaptureTime(1_500_000),
        client_addr(),
        server_addr(),
        b"hello",
        Some("lost"),
    )
    .unwrap();
    w.write_udp(
        CaptureTime(2_000_001),
        "[2001:db8::2]:40000".parse().unwrap(),
        "[2001:db8::1]:1783".parse().unwrap(),
        b"world!",
        None,
    )
    .unwrap();
    w.into_inner().unwrap();
    let out = tools::run_bounded(
        &tshark,
        &[
            "-n",
            "-r",
            &pcap.display().to_string(),
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.comment",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "udp.dstport",
            "-e",
            "udp.length",
            "-e",
            "udp.checksum.status",
            "-e",
            "ip.checksum.status",
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
        ]
        .map(String::from),
        TSHARK_TIMEOUT,
    );
    // Checksum status 1 is "good" (0 would be "bad", 2 "unverified").
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "1.500000000,lost,10.0.0.2,,1783,13,1,1",
            "2.000001000,,,2001:db8::2,1783,14,1,"
        ],
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
