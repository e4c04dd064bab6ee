//! The runner's `chart` subcommand, `--chart` and `--plot`, as a person runs them.

use std::path::PathBuf;
use std::process::{Command, Output};

const SMALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/chart-small.jsonl");

fn runner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pavillion-scenarios"))
        .args(args)
        .output()
        .expect("the runner starts")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pav-chart-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn chart_draws_a_trace_file_as_svg_or_html() {
    for name in ["small.svg", "small.html"] {
        let out = temp(name);
        let o = runner(&["chart", SMALL, "-o", out.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{err}");
        assert!(err.contains("14 arrows"), "{err}");
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(
            text.contains("class=\"lifeline\" data-host=\"c2\""),
            "{name}"
        );
        let _ = std::fs::remove_file(out);
    }
    let out = temp("window.svg");
    let o = runner(&[
        "chart",
        SMALL,
        "-o",
        out.to_str().unwrap(),
        "--from",
        "200",
        "--to",
        "310",
        "--hosts",
        "server,c1",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("4 arrows"), "{err}");
    assert!(
        err.contains("left out: 7 datagram copies outside the time window, 3 of other hosts"),
        "{err}"
    );
    let o = runner(&[
        "chart",
        SMALL,
        "-o",
        out.to_str().unwrap(),
        "--max-arrows",
        "2",
    ]);
    assert!(
        stderr(&o).contains("more datagram copies not drawn"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_file(out);
}

#[test]
fn chart_refuses_bad_input_with_status_2_and_says_why() {
    let v0 = temp("v0.jsonl");
    std::fs::write(
        &v0,
        "{\"t\":0,\"type\":\"note\",\"host\":\"a\",\"text\":\"x\"}\n",
    )
    .unwrap();
    let out = temp("bad.svg");
    let out = out.to_str().unwrap();
    for (args, want) in [
        (vec!["chart", v0.to_str().unwrap(), "-o", out], "line 1"),
        (
            vec!["chart", SMALL, "-o", out, "--hosts", "c9"],
            "its hosts: server, c1, nat, c2",
        ),
        (vec!["chart", SMALL, "-o", "x.png"], ".svg or .html"),
        (
            vec!["chart", "/nonexistent/trace.jsonl", "-o", out],
            "cannot read",
        ),
        (vec!["chart", SMALL, "-o", out, "--from=-5"], "milliseconds"),
        (
            vec!["--only", "clean", "chart", SMALL, "-o", out],
            "cannot be used",
        ),
        (
            vec!["--only", "clean", "--seed", "1", "--chart", out],
            "exactly one run",
        ),
        (vec!["--chart-from", "5"], "--chart"),
    ] {
        let o = runner(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let _ = std::fs::remove_file(v0);
}

#[test]
fn plot_writes_the_percentiles_of_every_row() {
    let out = temp("runs.svg");
    let o = runner(&[
        "--only",
        "clean",
        "--seeds",
        "2",
        "--plot",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("plot written to"), "{err}");
    let svg = std::fs::read_to_string(&out).unwrap();
    for row in ["clean psk", "clean ecc", "clean noise", "p50", "p99"] {
        assert!(svg.contains(row), "{row}");
    }
    // Fewer than 100 seeds: no histogram.
    assert!(!temp("runs-latency.svg").exists());
    let _ = std::fs::remove_file(out);
}
