//! `pav send --durable`, `pav serve --durable --output` and `pav listen --durable` as
//! processes: a message stored and delivered once, a sender that resumes after the server
//! was down, a broker relaying durable messages to a durable listener, and the store's and
//! the output file's bad input. Every wait is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/process.rs"]
mod process;

use std::path::Path;
use std::time::{Duration, Instant};

use process::{free_port, json_of, run_with, scratch, stderr, Running};

const PSK: &str = "6a6b6a6b6a6b6a6b6a6b6a6b6a6b6a6b6a6b6a6b6a6b6a6b6a6b6a6b6a6b6a6b";
const SENSOR: &str = "durable-sensor01";
const PHONE: &str = "durable-phone-01";

fn creds(id: &str) -> [&str; 4] {
    ["--psk", PSK, "--client-id", id]
}

/// `pav --json serve --durable server.redb` (both clients admitted with one PSK), plus
/// `extra`; returns once it listens and has opened its store.
fn serve(dir: &Path, port: u16, extra: &[&str]) -> Running {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["--json", "serve", "--listen", &listen, "--duration", "60"];
    args.extend(["--config", "server.toml", "--durable", "server.redb"]);
    args.extend_from_slice(extra);
    let config = format!(
        "[[client]]\nid = \"{SENSOR}\"\npsk = \"{PSK}\"\n[[client]]\nid = \"{PHONE}\"\npsk = \"{PSK}\"\n"
    );
    std::fs::write(dir.join("server.toml"), config).unwrap();
    let server = Running::start_in(Some(dir), &args, &[]);
    assert_eq!(server.next_json()["event"], "listening");
    assert_eq!(server.next_event("durable_store")["path"], "server.redb");
    server
}

fn send(dir: &Path, port: u16, store: &str, extra: &[&str]) -> std::process::Output {
    let server = format!("127.0.0.1:{port}");
    let mut args = vec!["--json", "send", "kitchen", "temp", "-s", &server];
    args.extend(["--durable", store]);
    args.extend(creds(SENSOR));
    args.extend_from_slice(extra);
    run_with(Some(dir), &args, &[], None)
}

/// The next `durable_message` event within `limit`, skipping others.
fn durable_within(r: &Running, limit: Duration) -> Option<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let v: serde_json::Value = serde_json::from_str(&r.line_within(left)?).unwrap();
        if v["event"] == "durable_message" {
            return Some(v);
        }
    }
}

#[track_caller]
fn wait_for_file(path: &Path, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = std::fs::read_to_string(path).unwrap_or_default();
        if now == text {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} holds {now:?}, not {text:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_durable_message_is_stored_acknowledged_and_written_once() {
    let dir = scratch("durable-once");
    let port = free_port();
    let server = serve(&dir, port, &["--output", "out.txt"]);
    let out = send(&dir, port, "sensor.redb", &["21.5", "22.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_of(&out);
    assert_eq!(
        (v["ok"].as_bool(), v["stored"].as_u64()),
        (Some(true), Some(2))
    );
    assert_eq!(v["acknowledged"], true);
    let first = durable_within(&server, Duration::from_secs(10)).unwrap();
    assert_eq!(
        (first["data"].as_str(), first["redelivered"].as_bool()),
        (Some("21.5"), Some(false))
    );
    let id_hex: String = SENSOR.bytes().map(|b| format!("{b:02x}")).collect();
    assert_eq!(first["from"], format!("client {id_hex}"));
    wait_for_file(&dir.join("out.txt"), "21.5\n22.0\n");
}

#[test]
fn a_sender_stores_while_the_server_is_down_and_a_later_run_delivers() {
    let dir = scratch("durable-resume");
    let port = free_port();
    std::fs::write(dir.join("lines.txt"), "a\nb\nc\n").unwrap();
    // Nobody listens: stored, not acknowledged within --wait.
    let out = send(
        &dir,
        port,
        "sensor.redb",
        &["--lines", "lines.txt", "--wait", "1"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = json_of(&out);
    assert_eq!(
        (v["stored"].as_u64(), v["queued"].as_u64()),
        (Some(3), Some(3))
    );
    let server = serve(&dir, port, &["--output", "out.txt"]);
    // The same command again: the lines are not stored twice (the mark says 3 are done), and
    // the three stored ones go out.
    let out = send(
        &dir,
        port,
        "sensor.redb",
        &["--lines", "lines.txt", "--wait", "10"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_of(&out);
    assert_eq!(
        (
            v["stored"].as_u64(),
            v["resumed_after"].as_u64(),
            v["restored_queued"].as_u64()
        ),
        (Some(0), Some(3), Some(3))
    );
    wait_for_file(&dir.join("out.txt"), "a\nb\nc\n");
    drop(server);
}

#[test]
fn a_restarted_server_cuts_its_output_back_to_the_stored_mark() {
    let dir = scratch("durable-output");
    let port = free_port();
    {
        let _server = serve(&dir, port, &["--output", "out.txt"]);
        let out = send(&dir, port, "sensor.redb", &["one"]);
        assert!(out.status.success(), "{}", stderr(&out));
        wait_for_file(&dir.join("out.txt"), "one\n");
    }
    // A partial append whose consume never made it to the store (a crash in between).
    let mut text = std::fs::read(dir.join("out.txt")).unwrap();
    text.extend_from_slice(b"half a line");
    std::fs::write(dir.join("out.txt"), text).unwrap();
    let _server = serve(&dir, port, &["--output", "out.txt"]);
    wait_for_file(&dir.join("out.txt"), "one\n");
}

#[test]
fn a_broker_relays_durable_messages_to_a_durable_listener() {
    let dir = scratch("durable-relay");
    let port = free_port();
    let _server = serve(&dir, port, &[]);
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["--json", "listen", "kitchen", "-s", &addr, "-n", "1"];
    args.extend([
        "--durable",
        "phone.redb",
        "--output",
        "phone.txt",
        "-t",
        "5",
    ]);
    args.extend(creds(PHONE));
    let listener = Running::start_in(Some(&dir), &args, &[]);
    assert_eq!(listener.next_json()["event"], "listening");
    let out = send(&dir, port, "sensor.redb", &["hot"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = durable_within(&listener, Duration::from_secs(10)).unwrap();
    assert_eq!(
        (got["data"].as_str(), got["from"].as_str()),
        (Some("hot"), Some("server"))
    );
    wait_for_file(&dir.join("phone.txt"), "hot\n");
    assert!(listener.wait().success());
}

#[test]
fn a_corrupt_store_is_refused_with_its_path_and_left_as_it_is() {
    let dir = scratch("durable-corrupt");
    std::fs::write(dir.join("sensor.redb"), b"this is not a store at all").unwrap();
    let out = send(&dir, free_port(), "sensor.redb", &["x"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["error"], "store");
    assert!(
        v["message"].as_str().unwrap().contains("sensor.redb"),
        "{v}"
    );
    assert_eq!(
        std::fs::read(dir.join("sensor.redb")).unwrap(),
        b"this is not a store at all"
    );
}

#[test]
fn an_output_file_with_data_is_refused_for_a_new_store() {
    let dir = scratch("durable-foreign-output");
    std::fs::write(dir.join("out.txt"), "someone's notes\n").unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["--json", "serve", "--listen", &listen, "--duration", "5"];
    args.extend(["--durable", "server.redb", "--output", "out.txt"]);
    args.extend(creds(SENSOR));
    let out = run_with(Some(&dir), &args, &[], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("out.txt"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("out.txt")).unwrap(),
        "someone's notes\n"
    );
}
