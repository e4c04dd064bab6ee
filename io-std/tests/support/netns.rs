//! Running a test inside a private network namespace, shared by the multicast tests of
//! io-std and io-smol (io-smol includes this file by path).
//!
//! A test calls [`inside`] first; outside, [`rerun_in_namespace`] re-runs the test binary
//! itself inside `unshare --net` (a fresh namespace holding only a loopback interface), brings
//! loopback up and routes multicast to it (with source 127.0.0.1: loopback addresses are
//! host-scoped, so without it the kernel sends from 0.0.0.0), so no datagram reaches a real
//! interface. Where namespaces are not available (no privilege, no `unshare`), it prints why
//! and the test passes without running.

use std::net::UdpSocket;
use std::process::Command;

const INSIDE: &str = "PAVILLION_TEST_IN_NETNS";

/// Whether this process runs inside the namespace made by [`rerun_in_namespace`].
pub(crate) fn inside() -> bool {
    std::env::var_os(INSIDE).is_some()
}

/// Runs the test named `name` of this binary inside a fresh network namespace and asserts
/// that it ran and passed there. Returns false (after printing why) when no namespace can be
/// made here.
pub(crate) fn rerun_in_namespace(name: &str) -> bool {
    // Unprivileged users may still map themselves to root in a new user namespace.
    let variants: [&[&str]; 2] = [&["--net"], &["--user", "--map-root-user", "--net"]];
    let Some(flags) = variants.iter().find(|flags| {
        Command::new("unshare")
            .args(**flags)
            .args(["ip", "link", "set", "lo", "up"])
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        println!(
            "skipped: cannot create a network namespace here (unshare --net failed or is missing)"
        );
        return false;
    };
    let exe = std::env::current_exe().unwrap();
    let script = "ip link set lo up && ip route add 224.0.0.0/4 dev lo src 127.0.0.1 && exec \"$0\" --exact \"$1\" --nocapture --test-threads=1";
    let out = Command::new("unshare")
        .args(*flags)
        .args(["sh", "-c", script])
        .arg(exe)
        .arg(name)
        .env(INSIDE, "1")
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the test failed inside the namespace");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the test did not run inside the namespace"
    );
    true
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}
