//! `pav send --file` and `pav call --file` with payloads of a few MiB, as processes: sent in
//! segments to `pav serve` (which must be told to accept them with `--max-message`), forwarded
//! whole to a `pav listen` subscriber, and refused with a clear error by a server with a
//! smaller limit. Contents are compared byte for byte (hex in the JSON lines). Every wait is
//! bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::time::Duration;

use process::{free_port, json_of, run_with, scratch, stderr, Running};

/// A folder with keys for a server and two devices.
fn keys(name: &str) -> PathBuf {
    let dir = scratch(name);
    for who in ["server", "alice", "bob"] {
        let out = run_with(Some(&dir), &["keygen", "--out", who], &[], None);
        assert!(out.status.success(), "{out:?}");
    }
    dir
}

/// `pav --json serve` on `addr` knowing both devices, plus `extra`.
fn serve(dir: &Path, addr: &str, extra: &[&str]) -> Running {
    let mut args = vec![
        "--json",
        "serve",
        "--listen",
        addr,
        "--duration",
        "60",
        "--secret-key-file",
        "server/secret.key",
        "--client",
        "alice/public.key",
        "--client",
        "bob/public.key",
    ];
    args.extend_from_slice(extra);
    let server = Running::start_in(Some(dir), &args, &[]);
    assert_eq!(server.next_json()["event"], "listening");
    server
}

fn device(who: &str, addr: &str) -> Vec<String> {
    [
        "-s",
        addr,
        "--secret-key-file",
        &format!("{who}/secret.key"),
        "--server-key-file",
        "server/public.key",
        "-t",
        "8",
    ]
    .map(String::from)
    .to_vec()
}

/// `len` bytes that differ from any shifted or reordered copy of themselves.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The next JSON line of `r` whose `event` is `message`, within `limit`.
fn message_within(r: &Running, limit: Duration) -> Option<serde_json::Value> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        let v: serde_json::Value = serde_json::from_str(&r.line_within(left)?).unwrap();
        if v["event"] == "message" {
            return Some(v);
        }
    }
}

#[test]
fn a_file_of_a_few_mib_reaches_the_server_and_a_listener_whole() {
    let dir = keys("large-file");
    let addr = format!("127.0.0.1:{}", free_port());
    let server = serve(&dir, &addr, &["--max-message", "8M"]);
    let flags = device("bob", &addr);
    let mut args = vec!["--json", "listen", "blobs", "--max-message", "8M"];
    args.extend(flags.iter().map(String::as_str));
    let listener = Running::start_in(Some(&dir), &args, &[]);
    // `listening` comes once the server holds the subscription: no sleep needed.
    assert_eq!(listener.next_json()["event"], "listening");

    let data = pattern(3 << 20, 7);
    std::fs::write(dir.join("blob.bin"), &data).unwrap();
    let flags = device("alice", &addr);
    let mut args = vec!["--json", "send", "blobs", "firmware", "--file", "blob.bin"];
    args.extend(flags.iter().map(String::as_str));
    let out = run_with(Some(&dir), &args, &[], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_of(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["acked"][0], addr.as_str());
    assert_eq!(v["bytes"], data.len());
    assert!(v["micros"].as_u64().unwrap() > 0);
    // No bar: stderr is not a terminal.
    assert!(!stderr(&out).contains("MiB/s"), "{}", stderr(&out));

    let hex = hex::encode(&data);
    let got = message_within(&server, Duration::from_secs(10)).expect("server got nothing");
    assert_eq!(got["name"], "firmware");
    assert!(got["data_hex"] == hex.as_str(), "server: bytes differ");
    let got = message_within(&listener, Duration::from_secs(10)).expect("listener got nothing");
    assert!(got["data_hex"] == hex.as_str(), "listener: bytes differ");
}

#[test]
fn stdin_and_call_arguments_of_a_few_mib() {
    let dir = keys("large-stdin");
    let addr = format!("127.0.0.1:{}", free_port());
    let server = serve(&dir, &addr, &["--max-message", "4M"]);
    let flags = device("alice", &addr);

    let data = pattern(1_500_000, 8);
    let mut args = vec!["--json", "send", "blobs", "piped", "--file", "-"];
    args.extend(flags.iter().map(String::as_str));
    let out = run_with(Some(&dir), &args, &[], Some(&data));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_of(&out)["bytes"], data.len());
    let got = message_within(&server, Duration::from_secs(10)).expect("server got nothing");
    assert!(
        got["data_hex"] == hex::encode(&data).as_str(),
        "bytes differ"
    );

    // 402 reverses its argument: large both ways.
    std::fs::write(dir.join("args.bin"), &data).unwrap();
    let mut args = vec!["--json", "call", "402", "--file", "args.bin"];
    args.extend(flags.iter().map(String::as_str));
    let out = run_with(Some(&dir), &args, &[], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut reversed = data.clone();
    reversed.reverse();
    assert!(json_of(&out)["data_hex"] == hex::encode(&reversed).as_str());
}

#[test]
fn a_server_with_a_smaller_limit_refuses_and_pav_says_why() {
    let dir = keys("large-refused");
    let addr = format!("127.0.0.1:{}", free_port());
    // The default limit: 1 MiB.
    let server = serve(&dir, &addr, &[]);
    std::fs::write(dir.join("blob.bin"), pattern(2 << 20, 9)).unwrap();
    let flags = device("alice", &addr);
    let mut args = vec!["--json", "send", "blobs", "big", "--file", "blob.bin"];
    args.extend(flags.iter().map(String::as_str));
    let out = run_with(Some(&dir), &args, &[], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = json_of(&out);
    assert_eq!(v["error"], "refused");
    assert!(
        stderr(&out).contains("larger than the receiver accepts"),
        "{}",
        stderr(&out)
    );
    assert!(message_within(&server, Duration::from_millis(500)).is_none());
}
