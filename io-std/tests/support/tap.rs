//! The parent half of the adapters' tap tests (`io-std/tests/keylog.rs`, `io-smol/tests/keylog.rs`):
//! the key log is read from the environment once per process, so each test runs its sessions in
//! a child (the test binary again, with the variables set) and checks here what the child left.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use pavillion_capture::{read_key_log, KEYLOG_ENV, KEYLOG_WARNING};
use pavillion_proto::dissect::{Decryption, Dissector};
use pavillion_proto::keylog::SessionSecret;

use crate::pcapng;

/// Set (to the capture's path) in the child that runs the sessions.
pub(crate) const CHILD: &str = "PAV_TAP_TEST_CAPTURE";

/// Runs the test `name` of this binary as the child, with a capture path and the key log set,
/// then checks that the warning was printed once, that the key log holds a secret per suite,
/// and that those secrets, and only they, open every suite's `rpc_call` and `rpc_response` in
/// the capture. Returns the capture's path, the secrets and the packets, for further checks.
pub(crate) fn run_child_and_check(
    name: &str,
    tag: &str,
) -> (PathBuf, Vec<SessionSecret>, Vec<pcapng::Packet>) {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tap-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keylog = dir.join("keys.log");
    let capture = dir.join("cap.pcapng");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, &capture)
        .env(KEYLOG_ENV, &keylog)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {out:?}");
    assert_eq!(
        stderr.matches(KEYLOG_WARNING).count(),
        1,
        "the warning is printed once per process: {stderr}"
    );

    let secrets = read_key_log(&keylog).unwrap();
    assert!(
        secrets.len() >= 3,
        "one secret per suite at least: {secrets:?}"
    );
    let packets = pcapng::read(&std::fs::read(&capture).unwrap());
    // Every datagram is captured twice, as sent and as received (both ends are here).
    assert!(packets.len() >= 12, "{} packets", packets.len());
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(packets
        .iter()
        .all(|p| p.at_us <= now_us && p.at_us + 600_000_000 > now_us));

    let opened = |with_keys: bool| {
        let mut d = Dissector::new();
        if with_keys {
            for s in &secrets {
                d.add_secret(s.clone());
            }
        }
        let mut names: Vec<(Option<u8>, &'static str)> = Vec::new();
        for p in &packets {
            let x = d.dissect(p.from, p.to, &p.payload);
            if matches!(x.decryption, Decryption::Opened(_)) {
                names.push((x.suite.map(|s| s.number()), x.name));
            }
        }
        names
    };
    let names = opened(true);
    for suite in [1, 2, 3] {
        for name in ["rpc_call", "rpc_response"] {
            assert!(
                names.contains(&(Some(suite), name)),
                "suite {suite} {name} not opened: {names:?}"
            );
        }
    }
    assert!(
        opened(false).is_empty(),
        "nothing opens without the key log"
    );
    (capture, secrets, packets)
}
