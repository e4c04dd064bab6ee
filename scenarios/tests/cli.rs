//! The runner's command line: bad input is refused with the valid choices, `--list` lists,
//! and a single run can write its decoded trace, its capture and its key log.

use std::process::{Command, Output};

fn runner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pavillion-scenarios"))
        .args(args)
        .output()
        .expect("the runner starts")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unknown_scenario_lists_the_valid_names() {
    let o = runner(&["--only", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("nope"), "{err}");
    for s in pavillion_scenarios::SCENARIOS {
        assert!(err.contains(s.name), "{} missing from: {err}", s.name);
    }
}

#[test]
fn bad_values_are_refused_with_what_is_valid() {
    for (args, want) in [
        (&["--loss", "2"][..], "0..=1"),
        (&["--loss", "lots"][..], "0..=1"),
        (&["--suite", "rsa"][..], "psk"),
        (&["--seeds", "0"][..], "seeds"),
        (&["--seeds", "2", "--seed", "3"][..], "cannot be used with"),
        (&["--trace", "x.jsonl"][..], "exactly one run"),
        (
            &["--pcap", "x.pcapng"][..],
            "--pcap writes the files of exactly one run",
        ),
        (
            &["--keylog", "x.keys"][..],
            "--keylog writes the files of exactly one run",
        ),
        (
            &[
                "--only", "clean", "--seed", "1", "--pcap", "x", "--keylog", "y",
            ][..],
            "--pcap, --keylog write the files of exactly one run, but this selects 3 runs",
        ),
    ] {
        let o = runner(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `--only durable` is a group: it selects both durable scenarios (over every suite: 6
/// runs, which `--trace` refuses before running anything).
#[test]
fn a_group_name_selects_its_scenarios() {
    let o = runner(&["--only", "durable", "--seed", "1", "--trace", "x.jsonl"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("selects 6 runs"), "{err}");
}

#[test]
fn list_names_every_scenario() {
    let o = runner(&["--list"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for s in pavillion_scenarios::SCENARIOS {
        assert!(out.contains(s.name), "{}", s.name);
    }
}

#[test]
fn one_run_prints_the_table_and_writes_its_trace() {
    let path = std::env::temp_dir().join(format!("pavillion-trace-{}.jsonl", std::process::id()));
    let file = path.to_str().unwrap();
    let o = runner(&[
        "--only", "clean", "--suite", "ecc", "--seed", "4", "--trace", file,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let row = out.lines().find(|l| l.starts_with("clean")).unwrap();
    assert!(row.contains("ecc") && row.ends_with("ok"), "{out}");
    let trace = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(trace.lines().count() > 100);
    let mut lines = trace.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with(
            "{\"type\":\"header\",\"format\":\"pavillion-trace\",\"version\":1,\"scenario\":\"clean\",\
             \"suite\":\"ecc\",\"seed\":4,"
        ),
        "{header}"
    );
    assert!(lines.all(|l| l.starts_with("{\"t\":")));
}

/// `--pcap` and `--keylog` of one run: a pcapng file with one packet per datagram copy of the
/// decoded trace (each commented with its fate), and a key log whose every line parses and
/// opens the run's session packets (the trace written beside them decodes them all).
#[test]
fn one_run_writes_its_capture_and_key_log() {
    let dir = std::env::temp_dir().join(format!("pavillion-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (trace, pcap, keys) = (dir.join("t.jsonl"), dir.join("c.pcapng"), dir.join("k.log"));
    let o = runner(&[
        "--only",
        "clean",
        "--suite",
        "psk",
        "--seed",
        "2",
        "--trace",
        trace.to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
        "--keylog",
        keys.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("capture written") && err.contains("key log written"),
        "{err}"
    );
    let (trace, pcap, keys) = (
        std::fs::read_to_string(&trace).unwrap(),
        std::fs::read(&pcap).unwrap(),
        std::fs::read_to_string(&keys).unwrap(),
    );
    let _ = std::fs::remove_dir_all(&dir);

    // The key log: a comment, then suite 1 lines only, each parsing.
    let secrets: Vec<_> = keys
        .lines()
        .filter_map(|l| pavillion_proto::keylog::SessionSecret::parse_line(l).unwrap())
        .collect();
    assert!(!secrets.is_empty(), "{keys}");
    assert!(
        keys.lines().skip(1).all(|l| l.starts_with("PAVILLION_S1 ")),
        "{keys}"
    );

    // The capture: a section header block, then one enhanced packet block per datagram copy.
    assert_eq!(
        pcap.get(..4),
        Some(&[0x0a, 0x0d, 0x0d, 0x0a][..]),
        "not pcapng"
    );
    let copies = trace.matches("\"type\":\"datagram\"").count();
    let sent = trace.matches("\"fate\":\"sent\"").count();
    assert!(copies > 200, "{copies}");
    assert_eq!(blocks(&pcap, 6), copies, "one packet per datagram copy");
    // Each packet's comment is its fate (in a clean run all copies are sent).
    assert_eq!(count(&pcap, b"sent"), sent);
    assert!(!trace.contains("\"decryption\":\"no_key\""));
}

/// The number of pcapng blocks of type `kind` (6: enhanced packet), walking the block lengths.
fn blocks(file: &[u8], kind: u32) -> usize {
    let word = |at: usize| {
        let b: [u8; 4] = file.get(at..at + 4).unwrap().try_into().unwrap();
        u32::from_le_bytes(b)
    };
    let (mut at, mut n) = (0, 0);
    while at < file.len() {
        n += usize::from(word(at) == kind);
        let len = word(at + 4) as usize;
        assert!(len >= 12 && len % 4 == 0, "bad block length {len} at {at}");
        at += len;
    }
    n
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}
