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

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one scenario run or one tshark run may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn tshark() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("tshark"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("PAV_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "tshark is required (PAV_REQUIRE_TOOLS=1) but not on PATH: run scripts/install-tools.sh"
        );
        eprintln!("skipped: tshark is not installed (scripts/install-tools.sh installs it)");
    }
    found
}

/// Runs `program` with `args` to completion within [`TIMEOUT`]; returns its stdout.
fn run(program: &Path, args: &[String]) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("{} {args:?} ran longer than {TIMEOUT:?}", program.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "{} {args:?} failed: {status}\n{err}",
        program.display()
    );
    assert!(!err.contains("Lua: "), "the dissector failed:\n{err}");
    out
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
    run(&runner, &args);
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
    let shown = from_tshark(&run(tshark, &args));
    let _ = std::fs::remove_dir_all(&dir);
    (decoded, shown)
}

#[test]
fn tshark_decodes_simulated_runs_as_the_trace_does() {
    let Some(tshark) = tshark() else { return };
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
    ] {
        let (trace, shown) = compare(&tshark, scenario, suite);
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
                >= 50,
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
