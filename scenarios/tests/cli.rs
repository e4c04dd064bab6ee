//! The runner's command line: bad input is refused with the valid choices, `--list` lists,
//! and a single run can write its trace.

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
    assert!(trace.lines().all(|l| l.starts_with("{\"t\":")));
}
