//! `pav send --count`: pipelined messages from the CLI, as a process on 127.0.0.1. Every wait
//! is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/process.rs"]
mod process;

use std::time::{Duration, Instant};

use process::{free_port, json_of, run, Running};

#[test]
fn send_count_pipelines_and_every_message_arrives_once() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let psk = "5a".repeat(32);
    let env = [("PAV_PSK", psk.as_str())];
    let server = Running::start(
        &["--json", "serve", "--listen", &addr, "--duration", "30"],
        &env,
    );
    assert_eq!(server.next_json()["event"], "listening");

    const N: usize = 3000;
    let n = N.to_string();
    let out = run(
        &[
            "--json", "send", "t", "m", "--count", &n, "--window", "64", "--size", "64", "-s",
            &addr,
        ],
        &env,
    );
    assert!(out.status.success(), "{out:?}");
    let v = json_of(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["sent"], N);
    assert_eq!(v["acknowledged"], N);
    assert_eq!(v["window"], 64);
    assert_eq!(v["bytes"], 64);
    assert!(v["rate"].as_f64().unwrap() > 0.0);

    // The server's application got each message once: N message events, then no more.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = 0;
    while seen < N && Instant::now() < deadline {
        let Some(line) = server.line_within(Duration::from_secs(5)) else {
            break;
        };
        let e: serde_json::Value = serde_json::from_str(&line).unwrap();
        if e["event"] == "message" {
            assert_eq!((&e["target"], &e["name"]), (&"t".into(), &"m".into()));
            assert_eq!(e["data"].as_str().map(str::len), Some(64));
            seen += 1;
        }
    }
    assert_eq!(seen, N);
    while let Some(line) = server.line_within(Duration::from_millis(300)) {
        assert!(!line.contains("\"message\""), "a message twice: {line}");
    }

    // The human form.
    let out = run(&["send", "t", "m", "x", "--count", "10", "-s", &addr], &env);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("sent 10, acknowledged 10, in "),
        "{text:?}"
    );
    assert!(text.trim_end().ends_with(" msg/s"), "{text:?}");
}

#[test]
fn send_count_without_a_server_fails() {
    let addr = format!("127.0.0.1:{}", free_port());
    let psk = "5a".repeat(32);
    let env = [("PAV_PSK", psk.as_str())];
    let started = Instant::now();
    let out = run(
        &[
            "--json",
            "send",
            "t",
            "m",
            "--count",
            "5",
            "--timeout",
            "1",
            "-s",
            &addr,
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(json_of(&out)["ok"], false);
    assert!(started.elapsed() < Duration::from_secs(10));
}
