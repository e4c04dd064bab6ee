//! `pav send --ordered` driven as a process against `pav serve` on 127.0.0.1: several payloads
//! are sent as ordered messages and reach the server in order. Every wait is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/process.rs"]
mod process;

use process::{free_port, json_of, run, Running};

#[test]
fn send_ordered_delivers_every_payload_in_order() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let psk = "5a".repeat(32);
    let env = [("PAV_PSK", psk.as_str())];
    let server = Running::start(
        &["--json", "serve", "--listen", &addr, "--duration", "30"],
        &env,
    );
    assert_eq!(server.next_json()["event"], "listening");

    let payloads: Vec<String> = (0..8).map(|i| format!("line-{i}")).collect();
    let mut args = vec!["--json", "send", "log", "line"];
    args.extend(payloads.iter().map(String::as_str));
    args.extend(["--ordered", "-s", &addr]);
    let out = run(&args, &env);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let outcomes: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(outcomes.len(), payloads.len(), "one outcome per payload");
    for v in &outcomes {
        assert_eq!((&v["ok"], &v["ordered"]), (&true.into(), &true.into()));
        assert_eq!(v["acked"][0], addr.as_str());
    }
    for p in &payloads {
        let m = server.next_event("message");
        assert_eq!(
            (&m["target"], &m["data"]),
            (&"log".into(), &p.as_str().into())
        );
        assert_eq!(m["reliable"], true);
    }

    // One payload keeps the single-object output; --ordered and --unreliable conflict.
    let out = run(
        &[
            "--json",
            "send",
            "log",
            "line",
            "x",
            "--ordered",
            "-s",
            &addr,
        ],
        &env,
    );
    assert_eq!(json_of(&out)["ordered"], true);
    let out = run(
        &[
            "send",
            "log",
            "line",
            "x",
            "--ordered",
            "--unreliable",
            "-s",
            &addr,
        ],
        &env,
    );
    assert!(!out.status.success());
}
