//! The Wireshark dissector over simulated captures: `pavillion-scenarios --trace --pcap
//! --keylog` writes a run's decoded trace, its capture and its key log; tshark with
//! `wireshark/pavillion.lua` and that key log must decode every datagram of the capture as the
//! trace (our Rust decoder, `pavillion_proto::dissect`) does: the same name, suite, counter,
//! decryption and label, frame by frame.
//!
//! Needs `tshark` (`scripts/install-tools.sh`): without it the test prints why and passes,
//! unless `PAV_REQUIRE_TOOLS=1` (set by `scripts/test.sh`), where it fails.
// Integration tests are ordinary std programs; the core-only import rule is for the library.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "../../capture/tests/support/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one scenario run or one tshark run may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What the trace says of one datagram copy.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    name: String,
    suite: String,
    counter: String,
    decryption: String,
    label: String,
}

fn from_trace(trace: &str) -> Vec<Decoded> {
    // Text as tshark prints it: strings bare, numbers as digits, null as nothing.
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    trace
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|r| r["type"] == "datagram")
        .map(|r| {
            let packet = &r["packet"];
            assert!(packet.is_object(), "a decoded packet: {r}");
            Decoded {
                name: text(&packet["name"]),
                suite: text(&packet["suite"]),
                counter: text(&packet["counter"]),
                decryption: text(&packet["decryption"]),
                label: text(&r["label"]),
            }
        })
        .collect()
}

fn from_tshark(out: &str) -> Vec<Decoded> {
    out.lines()
        .map(|l| {
            let v: Vec<&str> = l.split('\t').collect();
            assert_eq!(v.len(), 5, "{l}");
            Decoded {
                name: v[0].to_string(),
                suite: v[1].to_string(),
                counter: v[2].to_string(),
                decryption: v[3].to_string(),
                label: v[4].to_string(),
            }
        })
        .collect()
}

/// A datagram without a Pavillion magic: the trace calls it garbage, and the dissector leaves it
/// to Wireshark's other dissectors (it claims only datagrams with a magic).
fn not_ours(trace: &Decoded, shown: &Decoded) -> bool {
    trace.name == "garbage"
        && trace.label.contains("does not start with")
        && shown.name.is_empty()
        && shown.decryption.is_empty()
}

/// Runs one scenario with `--trace --pcap --keylog`, decodes the capture with tshark, and
/// returns (trace, tshark) per datagram copy.
fn compare(tshark: &Path, scenario: &str, suite: &str) -> (Vec<Decoded>, Vec<Decoded>) {
    let dir = std::env::temp_dir().join(format!(
        "pavillion-scenario-wireshark-{}-{scenario}-{suite}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (trace, pcap, keys) = (
        dir.join("run.jsonl"),
        dir.join("run.pcapng"),
        dir.join("run.keys"),
    );
    let runner = PathBuf::from(env!("CARGO_BIN_EXE_pavillion-scenarios"));
    let args: Vec<String> = [
        "--only", scenario, "--suite", suite, "--seed", "1", "--trace",
    ]
    .map(String::from)
    .into_iter()
    .chain([trace.display().to_string()])
    .chain(["--pcap".to_string(), pcap.display().to_string()])
    .chain(["--keylog".to_string(), keys.display().to_string()])
    .collect();
    tools::run_bounded(&runner, &args, TIMEOUT);
    let decoded = from_trace(&std::fs::read_to_string(&trace).unwrap());
    let args: Vec<String> = [
        "-n".to_string(),
        "-X".to_string(),
        format!(
            "lua_script:{}",
            repo().join("wireshark/pavillion.lua").display()
        ),
        "-o".to_string(),
        format!("pavillion.keylog_file:{}", keys.display()),
        "-r".to_string(),
        pcap.display().to_string(),
        "-T".to_string(),
        "fields".to_string(),
        "-E".to_string(),
        "occurrence=f".to_string(),
    ]
    .into_iter()
    .chain(
        [
            "pavillion.dissection",
            "pavillion.suite",
            "pavillion.counter",
            "pavillion.decryption",
            "_ws.col.Info",
        ]
        .into_iter()
        .flat_map(|f| ["-e".to_string(), f.to_string()]),
    )
    .collect();
    let shown = from_tshark(&tools::run_bounded(tshark, &args, TIMEOUT));
    let _ = std::fs::remove_dir_all(&dir);
    (decoded, shown)
}

#[test]
fn tshark_decodes_simulated_runs_as_the_trace_does() {
    let Some(tshark) = tools::tshark() else {
        return;
    };
    for (scenario, suite) in [
        ("clean", "psk"),
        ("clean", "ecc"),
        ("clean", "noise"),
        ("dup-reorder", "psk"),
        ("multicast", "noise"),
        ("adversary-forgery", "ecc"),
        ("register-observe", "psk"),
        ("nat-rebind", "noise"),
        ("authority-join", "noise"),
        ("relay-mesh", "noise"),
        // Suite 3 batches (op 38) and counter ACK ranges (op 39), docs/PROTOCOL.md §17.
        ("burst-1000", "noise"),
    ] {
        let (trace, shown) = compare(&tshark, scenario, suite);
        // Batching carries burst-1000's messages in a few dozen datagrams, and delayed ACKs
        // answer several at once, so that run has fewer session packets than the others.
        let least = if scenario == "burst-1000" { 20 } else { 50 };
        assert_eq!(
            trace.len(),
            shown.len(),
            "{scenario}/{suite}: one frame per copy"
        );
        assert!(
            trace
                .iter()
                .filter(|d| d.decryption.starts_with("to_"))
                .count()
                >= least,
            "{scenario}/{suite}: the run's session packets are opened"
        );
        let mismatches: Vec<(usize, &Decoded, &Decoded)> = trace
            .iter()
            .zip(&shown)
            .enumerate()
            .filter(|(_, (t, s))| t != s && !not_ours(t, s))
            .map(|(i, (t, s))| (i + 1, t, s))
            .collect();
        assert!(
            mismatches.is_empty(),
            "{scenario}/{suite}: {} of {} frames differ; the first (frame, trace, tshark): {:#?}",
            mismatches.len(),
            trace.len(),
            &mismatches[..mismatches.len().min(8)]
        );
    }
}
