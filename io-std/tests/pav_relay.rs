//! `pav relay` as a process on loopback (`--interface lo`, mesh on 127.0.0.1, carried ports
//! chosen free): flags, environment variables, the configuration file, the start, peer and
//! stats lines, SIGTERM, and bad key files. Broadcasts go only to 127.255.255.255 on `lo`.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/process.rs"]
mod process;

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use process::{free_port, run_with, scratch, stderr, stdout, Running};

fn keygen(dir: &Path, name: &str) {
    let out = run_with(Some(dir), &["keygen", "--out", name], &[], None);
    assert!(out.status.success(), "{out:?}");
}

fn mesh() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The next line that starts with `prefix`, skipping others; fails after 10 s.
#[track_caller]
fn line_starting(r: &Running, prefix: &str) -> String {
    line_within(r, prefix, Duration::from_secs(10))
}

/// The next line that starts with `prefix` within `limit`, skipping others.
#[track_caller]
fn line_within(r: &Running, prefix: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match r.line_within(left) {
            Some(l) if l.starts_with(prefix) => return l,
            Some(_) => {}
            None => break,
        }
    }
    panic!("no line starting with {prefix:?} within {limit:?}");
}

/// Two relays, A with B as a flag peer and B with A from its config file.
#[test]
fn two_relays_come_up_carry_and_stop_on_sigterm() {
    let dir = scratch("relay-two");
    keygen(&dir, "a");
    keygen(&dir, "b");
    let (ma, mb) = (mesh(), mesh());
    let port = free_port().to_string();
    std::fs::write(
        dir.join("b.toml"),
        format!("[[peer]]\naddr = \"{ma}\"\nkey = \"a/public.key\"\n"),
    )
    .unwrap();
    let peer_b = format!("{mb}=b/public.key");
    let a = Running::start_in(
        Some(&dir),
        &[
            "relay",
            "--key",
            "a/secret.key",
            "--interface",
            "lo",
            "--mesh-bind",
            &ma,
            "--port",
            &port,
            "--segment",
            "site-a",
            "--peer",
            &peer_b,
            "--source",
            "relay",
            "--duration",
            "20",
        ],
        &[],
    );
    let b = Running::start_in(
        Some(&dir),
        &[
            "relay",
            "--key",
            "b/secret.key",
            "--interface",
            "lo",
            "--mesh-bind",
            &mb,
            "--port",
            &port,
            "--config",
            "b.toml",
            "--source",
            "relay",
            "--duration",
            "20",
        ],
        &[],
    );
    let start_a = a.next_line();
    let start_b = b.next_line();
    let id = |l: &str| l.split(' ').nth(1).unwrap().to_string();
    assert_eq!(
        start_a,
        format!(
            "relay {} mesh {ma} segment site-a ports {port} source relay",
            id(&start_a)
        )
    );
    // The default segment is the interface's network.
    assert!(start_b.ends_with(&format!("segment 127.0.0.0/8 ports {port} source relay")));
    let up = line_starting(&a, "peer up ");
    assert!(
        up.starts_with(&format!("peer up {} {mb} segment", id(&start_b))),
        "{up}"
    );
    let up = line_starting(&b, "peer up ");
    assert!(
        up.starts_with(&format!("peer up {} {ma}", id(&start_a))),
        "{up}"
    );

    // Both relays sit on `lo`: each captures the broadcast and carries it; each drops the
    // other's copy by content, so nothing is emitted.
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_broadcast(true).unwrap();
    s.send_to(b"search", format!("127.255.255.255:{port}"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    a.signal("TERM");
    let stats = line_starting(&a, "stats ");
    let count = |name: &str| -> u64 {
        let field = stats
            .split(' ')
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {stats}"));
        field.parse().unwrap()
    };
    assert!(stats.starts_with("stats captured="), "{stats}");
    assert!(stats.contains(" drops: echo="), "{stats}");
    // Which relay captures first is a race; either A carried its capture, or it emitted B's
    // copy (and then heard the original and its own emission as echoes).
    assert!(count("captured") >= 1, "{stats}");
    assert!(count("carried") + count("emitted") >= 1, "{stats}");
    assert_eq!(count("not_suite3"), 0, "{stats}");
    assert!(a.wait().success(), "SIGTERM exits 0");
    // B sees A leave at once (A closed its sessions), well before the 4 s down timeout.
    let down = line_within(&b, "peer down ", Duration::from_secs(2));
    assert_eq!(down, format!("peer down {}", id(&start_a)));
}

#[test]
fn settings_from_the_environment_and_json_lines() {
    let dir = scratch("relay-env");
    keygen(&dir, "a");
    let m = mesh();
    let (p1, p2) = (free_port(), free_port());
    let ports = format!("{p1},{p2}");
    let out = run_with(
        Some(&dir),
        &["--json", "relay", "--duration", "1", "--stats", "1"],
        &[
            ("PAV_RELAY_KEY", "a/secret.key"),
            ("PAV_RELAY_INTERFACE", "lo"),
            ("PAV_RELAY_MESH_BIND", &m),
            ("PAV_RELAY_PORTS", &ports),
            ("PAV_RELAY_SEGMENT", "env-seg"),
            ("PAV_RELAY_SOURCE", "relay"),
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let start = &lines[0];
    assert_eq!(start["event"], "started");
    assert_eq!(start["mesh"], m);
    assert_eq!(start["segment"], "env-seg");
    assert_eq!(start["ports"], serde_json::json!([p1, p2]));
    assert_eq!(start["source"], "relay");
    assert_eq!(start["relay"].as_str().unwrap().len(), 16);
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "stats");
    assert_eq!(last["captured"], 0);
    assert_eq!(last["drops"]["echo"], 0);
    // A flag wins over its variable.
    let out = run_with(
        Some(&dir),
        &["relay", "--duration", "0.2", "--segment", "flag-seg"],
        &[
            ("PAV_RELAY_KEY", "a/secret.key"),
            ("PAV_RELAY_INTERFACE", "lo"),
            ("PAV_RELAY_MESH_BIND", &m),
            ("PAV_RELAY_SEGMENT", "env-seg"),
            ("PAV_RELAY_SOURCE", "relay"),
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains(" segment flag-seg ports 5076 "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn bad_keys_and_settings_are_input_errors() {
    let dir = scratch("relay-bad");
    keygen(&dir, "a");
    std::fs::write(dir.join("junk.key"), "not a key\n").unwrap();
    let m = mesh();
    let base = [
        "relay",
        "--interface",
        "lo",
        "--mesh-bind",
        &m,
        "--duration",
        "1",
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        run_with(Some(&dir), &args, &[], None)
    };
    for (extra, says) in [
        (&["--key", "junk.key"][..], "--key junk.key"),
        (
            &["--key", "a/public.key"][..],
            "the file holds a public key",
        ),
        (&["--key", "missing.key"][..], "--key missing.key"),
        (
            &["--key", "a/secret.key", "--peer", "127.0.0.1:1"][..],
            "expected ADDR=PUBKEY",
        ),
        (
            &["--key", "a/secret.key", "--peer", "127.0.0.1:1=zz"][..],
            "neither 64 hex characters",
        ),
        (
            &["--key", "a/secret.key", "--trust", "junk.key"][..],
            "--trust ./junk.key: public key is not valid hex",
        ),
        (
            &[
                "--key",
                "a/secret.key",
                "--port",
                &m[m.rfind(':').unwrap() + 1..],
            ][..],
            "the mesh port cannot also be a carried port",
        ),
    ] {
        let out = with(extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {out:?}");
        assert!(stderr(&out).contains(says), "{extra:?}: {}", stderr(&out));
    }
    let out = run_with(
        Some(&dir),
        &[
            "relay",
            "--key",
            "a/secret.key",
            "--interface",
            "no-such-if0",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("no interface no-such-if0"),
        "{}",
        stderr(&out)
    );
    let out = run_with(
        Some(&dir),
        &[
            "--json",
            "relay",
            "--key",
            "junk.key",
            "--interface",
            "lo",
            "--mesh-bind",
            &m,
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["error"], "bad_input");
}
