//! `pav` as a device engineer uses it: suites, key files, the server's configuration file,
//! payloads from stdin and files, call summaries, command handlers, refusals. Each test runs
//! the binary as a process on 127.0.0.1 with free ports; every wait is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/process.rs"]
mod process;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use process::{free_port, json_of, run, run_with, scratch, stderr, stdout, Running};

fn keygen(dir: &Path, name: &str) {
    let out = run_with(Some(dir), &["keygen", "--out", name], &[], None);
    assert!(out.status.success(), "{out:?}");
}

/// Starts `pav --json serve ARGS` in `dir` on a free port; returns it with its address once
/// it listens.
fn serve(dir: &Path, args: &[&str]) -> (Running, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut all = vec!["--json", "serve", "--listen", &addr, "--duration", "30"];
    all.extend_from_slice(args);
    let server = Running::start_in(Some(dir), &all, &[]);
    let hello = server.next_json();
    assert_eq!(hello["event"], "listening", "{hello}");
    (server, addr)
}

#[test]
fn keygen_writes_key_files_with_modes_and_kinds() {
    let dir = scratch("keygen");
    let out = run_with(Some(&dir), &["--json", "keygen", "--out", "k"], &[], None);
    assert!(out.status.success(), "{out:?}");
    let v = json_of(&out);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    for (name, kind, mode) in [
        ("psk", "psk", 0o600),
        ("secret.key", "secret-key", 0o600),
        ("public.key", "public-key", 0o644),
        ("client.id", "client-id", 0o644),
    ] {
        let path = dir.join("k").join(name);
        let meta = std::fs::metadata(&path).unwrap();
        // Secret files are never readable by group or others.
        if mode == 0o600 {
            assert_eq!(meta.permissions().mode() & 0o077, 0, "{name}");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(&format!("# pavillion {kind}\n")),
            "{name}: {text:?}"
        );
        // The output says which flag reads each file.
        let f = files.iter().find(|f| f["kind"] == kind).unwrap();
        assert!(f["read_by"].as_str().unwrap().contains("--"), "{f}");
    }
    assert_eq!(v["public_key"].as_str().unwrap().len(), 64);
    let public = std::fs::read_to_string(dir.join("k/public.key")).unwrap();
    assert!(public.contains(v["public_key"].as_str().unwrap()));

    // Text output names the flags too.
    let text = run_with(Some(&dir), &["keygen", "--out", "t"], &[], None);
    let t = stdout(&text);
    for flag in [
        "--psk-file",
        "--secret-key-file",
        "--server-key-file",
        "--client-id-file",
    ] {
        assert!(t.contains(flag), "{t}");
    }

    // Existing keys are not overwritten without --force, and nothing is half-written.
    let before = std::fs::read(dir.join("k/secret.key")).unwrap();
    let again = run_with(Some(&dir), &["keygen", "--out", "k"], &[], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("--force"), "{again:?}");
    assert_eq!(std::fs::read(dir.join("k/secret.key")).unwrap(), before);
    let forced = run_with(Some(&dir), &["keygen", "--out", "k", "--force"], &[], None);
    assert!(forced.status.success());
    assert_ne!(std::fs::read(dir.join("k/secret.key")).unwrap(), before);
    let meta = std::fs::metadata(dir.join("k/psk")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o077, 0);
}

/// Every suite end to end with key files from `pav keygen`: call, send, listen, time.
#[test]
fn every_suite_with_key_files() {
    let dir = scratch("suites");
    keygen(&dir, "server");
    keygen(&dir, "alice");
    let (server, addr) = serve(
        &dir,
        &[
            "--secret-key-file",
            "server/secret.key",
            "--client",
            "alice/public.key",
            "--client",
            "alice-sensor-001=alice/psk",
        ],
    );
    let psk = ["--psk-file", "alice/psk", "--client-id", "alice-sensor-001"];
    let keys = [
        "--secret-key-file",
        "alice/secret.key",
        "--server-key-file",
        "server/public.key",
    ];
    let cases: [(&str, &[&str]); 5] = [
        ("psk", &psk),
        ("ecc", &keys),
        ("noise", &keys),
        ("noise", &psk), // NNpsk0
        ("", &keys),     // the default with keys: noise
    ];
    for (suite, creds) in cases {
        let mut args = vec!["--json", "call", "402", "abc", "-s", &addr];
        if !suite.is_empty() {
            args.extend(["--suite", suite]);
        }
        args.extend_from_slice(creds);
        let out = run_with(Some(&dir), &args, &[], None);
        assert!(out.status.success(), "suite {suite:?}: {out:?}");
        assert_eq!(json_of(&out)["data"], "cba", "suite {suite:?}");
    }

    // send, listen and time over suite 3.
    let mut listen = vec![
        "--json", "listen", "lab", "-s", &addr, "-n", "1", "--suite", "noise",
    ];
    listen.extend_from_slice(&keys);
    let listener = Running::start_in(Some(&dir), &listen, &[]);
    assert_eq!(listener.next_json()["event"], "listening");
    let mut send = vec![
        "--json", "send", "lab", "t", "7", "-s", &addr, "--suite", "noise",
    ];
    send.extend_from_slice(&psk);
    let out = run_with(Some(&dir), &send, &[], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json_of(&out)["acked"][0], addr.as_str());
    let got = listener.next_event("message");
    assert_eq!((&got["target"], &got["data"]), (&"lab".into(), &"7".into()));
    assert!(listener.wait().success());
    let mut time = vec!["--json", "time", "-s", &addr, "--suite", "noise"];
    time.extend_from_slice(&keys);
    let out = run_with(Some(&dir), &time, &[], None);
    assert!(out.status.success(), "{out:?}");
    let v = json_of(&out);
    assert_eq!(v["clock"], "server monotonic");
    assert!(v["uncertainty_us"].as_u64().is_some(), "{v}");
    let text = run_with(Some(&dir), &time[1..], &[], None);
    assert!(stdout(&text).contains("monotonic"), "{text:?}");
    drop(server);
}

/// A wrong PSK or an unknown client id is an authentication failure, said as such, not a
/// timeout.
#[test]
fn wrong_credentials_are_named_not_timed_out() {
    let psk = "5a".repeat(32);
    let addr = format!("127.0.0.1:{}", free_port());
    let server = Running::start(
        &["--json", "serve", "--listen", &addr, "--duration", "30"],
        &[("PAV_PSK", psk.as_str())],
    );
    assert_eq!(server.next_json()["event"], "listening");
    let wrong = "11".repeat(32);
    for args in [
        vec!["--psk", wrong.as_str()],
        vec!["--psk", psk.as_str(), "--client-id", "nobody-knows-me!"],
    ] {
        let mut all = vec!["--json", "call", "0", "x", "-s", &addr, "-t", "5"];
        all.extend(args);
        let out = run(&all, &[]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let v = json_of(&out);
        assert_eq!(v["error"], "authentication", "{v}");
        assert!(stderr(&out).contains("refused our credentials"), "{out:?}");
    }
}

#[test]
fn unknown_suites_and_wrong_key_files_are_named() {
    let dir = scratch("badkeys");
    keygen(&dir, "k");
    std::fs::write(dir.join("short.key"), "abcd\n").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["call", "0", "--suite", "tls", "--psk-file", "k/psk"],
            "expected psk (suite 1), ecc (suite 2) or noise (suite 3)",
        ),
        (
            &["serve", "--suite", "ssl", "--psk-file", "k/psk"],
            "expected psk (suite 1), ecc (suite 2) or noise (suite 3)",
        ),
        (
            &["call", "0", "--psk-file", "k/public.key"],
            "--psk-file k/public.key: the file holds a public key, but --psk-file expects a PSK",
        ),
        (
            &[
                "call",
                "0",
                "--secret-key-file",
                "short.key",
                "--server-key-file",
                "k/public.key",
            ],
            "--secret-key-file short.key: secret key must be 32 bytes, got 2 (expected 64 hex",
        ),
        (
            &["call", "0", "--secret-key-file", "k/secret.key"],
            "needs the server's public key",
        ),
        (
            &["call", "0", "--suite", "ecc", "--psk-file", "k/psk"],
            "--suite ecc needs our secret key",
        ),
        (
            &["serve", "--client", "k/client.id"],
            "the file holds a client-id, but --client expects a PSK or a public key",
        ),
        (
            &["serve", "--client", "cid2cid2cid2cid2=short.key"],
            "cannot tell whether the file holds a PSK or a public key",
        ),
        (
            &["serve", "--client", "k/public.key"],
            "need the server's own key pair",
        ),
        (
            &[
                "serve",
                "--suite",
                "psk",
                "--secret-key-file",
                "k/secret.key",
                "--allow-guests",
            ],
            "--suite psk needs PSK clients",
        ),
    ];
    for (args, expect) in cases {
        let out = run_with(Some(&dir), args, &[], None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err:?} lacks {expect:?}");
    }
}

#[test]
fn a_server_without_credentials_refuses_to_start_unless_guests_are_allowed() {
    let addr = format!("127.0.0.1:{}", free_port());
    let out = run(&["serve", "--listen", &addr, "--duration", "5"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    for hint in [
        "admit nobody",
        "--client",
        "--config",
        "--allow-guests",
        "pav keygen",
    ] {
        assert!(err.contains(hint), "{err:?} lacks {hint:?}");
    }

    // With guests: a key made for this run, printed, and a guest can call.
    let server = Running::start(
        &[
            "--json",
            "serve",
            "--listen",
            &addr,
            "--allow-guests",
            "--duration",
            "30",
        ],
        &[],
    );
    let hello = server.next_json();
    assert_eq!(hello["ephemeral_key"], true);
    let server_key = hello["public_key"].as_str().unwrap().to_owned();
    let me = json_of(&run(&["--json", "keygen"], &[]));
    let secret = me["secret_key"].as_str().unwrap();
    let out = run(
        &[
            "call",
            "401",
            "guest",
            "-s",
            &addr,
            "--secret-key",
            secret,
            "--server-key",
            &server_key,
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).trim(), "guest");
}

#[test]
fn a_config_file_lists_clients_keys_suites_and_commands() {
    let dir = scratch("config");
    keygen(&dir, "server");
    keygen(&dir, "alice");
    keygen(&dir, "bob");
    let port = free_port();
    let config = format!(
        r#"# a server for two devices
listen = "127.0.0.1:{port}"
suite = ["psk", "noise"]
secret_key_file = "server/secret.key"

[[client]]
id = "alice-sensor-001"
psk_file = "alice/psk"

[[client]]
id_file = "bob/client.id"
public_key_file = "bob/public.key"

[[exec]]
function = 500
command = "tr a-z A-Z"
"#
    );
    std::fs::write(dir.join("pav.toml"), config).unwrap();
    let server = Running::start_in(
        Some(&dir),
        &[
            "--json",
            "serve",
            "--config",
            "pav.toml",
            "--duration",
            "30",
        ],
        &[],
    );
    let hello = server.next_json();
    assert_eq!(hello["addr"], format!("127.0.0.1:{port}"));
    assert_eq!(hello["psk_clients"], 1);
    assert_eq!(hello["key_clients"], 1);
    assert_eq!(hello["suites"], serde_json::json!(["psk", "noise"]));
    let addr = format!("127.0.0.1:{port}");
    let alice = ["--psk-file", "alice/psk", "--client-id", "alice-sensor-001"];
    let bob = [
        "--secret-key-file",
        "bob/secret.key",
        "--server-key-file",
        "server/public.key",
    ];
    let mut a = vec!["call", "500", "from alice", "-s", &addr];
    a.extend_from_slice(&alice);
    let out = run_with(Some(&dir), &a, &[], None);
    assert_eq!(stdout(&out).trim(), "FROM ALICE", "{out:?}");
    let mut b = vec!["call", "500", "from bob", "-s", &addr];
    b.extend_from_slice(&bob);
    let out = run_with(Some(&dir), &b, &[], None);
    assert_eq!(stdout(&out).trim(), "FROM BOB", "{out:?}");
    // A client the file does not list is not admitted.
    let mut c = vec![
        "call",
        "0",
        "x",
        "-s",
        &addr,
        "-t",
        "0.5",
        "--psk-file",
        "bob/psk",
    ];
    c.extend(["--client-id", "alice-sensor-001"]);
    let out = run_with(Some(&dir), &c, &[], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn bad_config_files_name_the_file_the_line_and_what_was_expected() {
    let dir = scratch("badconfig");
    keygen(&dir, "k");
    let cases: &[(&str, &str)] = &[
        ("listen = \"127.0.0.1:1\n", "line 1: invalid basic string"),
        (
            "listen = \"127.0.0.1:1\"\n\n[[client]]\nid = \"alice-sensor-001\"\npublic_key = \"abcd\"\n",
            "line 5: public_key: public key must be 32 bytes, got 2 (expected 64 hex characters)",
        ),
        (
            "[[client]]\nid = \"alice-sensor-001\"\npsk = \"nope\"\n",
            "line 3: psk: PSK must be 32 bytes",
        ),
        ("\n\nsuite = \"tls\"\n", "line 3: suite: unknown suite \"tls\": expected psk (suite 1), ecc (suite 2) or noise (suite 3)"),
        ("lisen = \"0.0.0.0\"\n", "line 1: unknown field `lisen`"),
        (
            "[[client]]\nid = \"short\"\npsk_file = \"k/psk\"\n",
            "line 2: id: client id",
        ),
        (
            "[[client]]\nid = \"alice-sensor-001\"\npsk_file = \"k/public.key\"\n",
            "line 3: psk_file k/public.key: the file holds a public key, but psk_file expects a PSK",
        ),
        (
            "[[client]]\nid = \"alice-sensor-001\"\npsk_file = \"k/missing\"\n",
            "line 3: psk_file k/missing: No such file",
        ),
        (
            "[[client]]\nid = \"alice-sensor-001\"\n",
            "line 1: [[client]] needs exactly one of psk, psk_file, public_key, public_key_file",
        ),
        (
            "[[exec]]\nfunction = 1\ncommand = \"cat\"\n",
            "line 1: function 1 is answered by the protocol itself",
        ),
        (
            "[[exec]]\nfunction = 500\ncommand = \"no-such-program-anywhere\"\n",
            "not found in PATH",
        ),
    ];
    for (i, (text, expect)) in cases.iter().enumerate() {
        let name = format!("bad{i}.toml");
        std::fs::write(dir.join(&name), text).unwrap();
        let out = run_with(Some(&dir), &["serve", "--config", &name], &[], None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {err}");
        assert!(
            err.contains(&format!("{name}, line")) || err.contains(&format!("{name}:")),
            "{text:?}: {err:?} does not name the file"
        );
        assert!(err.contains(expect), "{text:?}: {err:?} lacks {expect:?}");
    }
    let out = run_with(Some(&dir), &["serve", "--config", "absent.toml"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--config absent.toml"));
}

#[test]
fn payloads_from_stdin_and_files() {
    let dir = scratch("payloads");
    let psk = "5a".repeat(32);
    let env = [("PAV_PSK", psk.as_str())];
    let addr = format!("127.0.0.1:{}", free_port());
    let server = Running::start(
        &["--json", "serve", "--listen", &addr, "--duration", "30"],
        &env,
    );
    assert_eq!(server.next_json()["event"], "listening");
    let out = run_with(
        None,
        &["call", "402", "-", "-s", &addr],
        &env,
        Some(b"from stdin"),
    );
    assert_eq!(stdout(&out).trim(), "nidts morf", "{out:?}");
    std::fs::write(dir.join("arg.bin"), [0u8, 1, 2, 0xff]).unwrap();
    let file = dir.join("arg.bin");
    let out = run(
        &[
            "--json",
            "call",
            "401",
            "--file",
            file.to_str().unwrap(),
            "-s",
            &addr,
        ],
        &env,
    );
    assert_eq!(json_of(&out)["data_hex"], "000102ff", "{out:?}");
    let out = run_with(
        None,
        &["call", "401", "--hex", "-", "-s", &addr],
        &env,
        Some(b"c0 ff\nee\n"),
    );
    assert_eq!(stdout(&out).trim(), "0xc0ffee", "{out:?}");

    let out = run_with(
        None,
        &["send", "t", "n", "-", "-s", &addr],
        &env,
        Some(b"piped"),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.next_event("message")["data"], "piped");
    std::fs::write(dir.join("msg.txt"), "from a file").unwrap();
    let msg = dir.join("msg.txt");
    let out = run(
        &[
            "send",
            "t",
            "n",
            "--file",
            msg.to_str().unwrap(),
            "-s",
            &addr,
        ],
        &env,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.next_event("message")["data"], "from a file");
    let out = run(
        &["send", "t", "n", "--file", "/no/such/file", "-s", &addr],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--file /no/such/file"), "{out:?}");
}

#[test]
fn count_and_interval_make_a_latency_summary() {
    let psk = "5a".repeat(32);
    let env = [("PAV_PSK", psk.as_str())];
    let addr = format!("127.0.0.1:{}", free_port());
    let server = Running::start(
        &["--json", "serve", "--listen", &addr, "--duration", "30"],
        &env,
    );
    assert_eq!(server.next_json()["event"], "listening");
    let started = Instant::now();
    let out = run(
        &[
            "--json",
            "call",
            "401",
            "x",
            "--count",
            "5",
            "--interval",
            "100ms",
            "-s",
            &addr,
        ],
        &env,
    );
    let took = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    let v = json_of(&out);
    assert_eq!(
        (v["calls"].as_u64(), v["answered"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(v["errors"], 0);
    let l = &v["latency_us"];
    let get = |k: &str| l[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(get("min") <= get("p50") && get("p50") <= get("p90"));
    assert!(get("p90") <= get("p99") && get("p99") <= get("max"));
    // Five calls 100 ms apart span at least 400 ms.
    assert!(v["elapsed_us"].as_u64().unwrap() >= 400_000, "{v}");
    assert!(took >= Duration::from_millis(400));

    let out = run(&["call", "401", "x", "-n", "20", "-s", &addr], &env);
    let text = stdout(&out);
    assert!(text.contains("20 calls to function 401"), "{text}");
    assert!(text.contains("20 answered, 0 errors"), "{text}");
    for k in ["min", "p50", "p90", "p99", "max"] {
        assert!(text.contains(k), "{text} lacks {k}");
    }

    // Errors are counted by kind, and make the exit code 1.
    let out = run(
        &["--json", "call", "403", "x", "-n", "3", "-s", &addr],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["errors"], 3);
    assert_eq!(v["error_kinds"]["status 1"], 3);
    assert!(v["latency_us"]["p50"].is_null());
}

#[test]
fn exec_handlers_answer_fail_and_are_killed_at_the_deadline() {
    let dir = scratch("exec");
    let psk = "5a".repeat(32);
    let env = [("PAV_PSK", psk.as_str())];
    // A script that records its arguments, so the test sees exactly what the command got.
    let script = dir.join("args.sh");
    std::fs::write(&script, "#!/bin/sh\nprintf '%s|' \"$@\"\ncat\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let args_cmd = format!("510={} 'one two' $HOME ;", script.display());
    let addr = format!("127.0.0.1:{}", free_port());
    let server = Running::start(
        &[
            "--json",
            "serve",
            "--listen",
            &addr,
            "--duration",
            "30",
            "--exec",
            "500=tr a-z A-Z",
            "--exec",
            "501=sh -c 'echo broken >&2; exit 3'",
            "--exec",
            "502=sleep 30",
            "--exec",
            &args_cmd,
            "--exec-timeout",
            "1",
        ],
        &env,
    );
    let hello = server.next_json();
    assert_eq!(hello["exec"].as_array().unwrap().len(), 4, "{hello}");

    let out = run(&["call", "500", "shout", "-s", &addr], &env);
    assert_eq!(stdout(&out).trim(), "SHOUT", "{out:?}");
    // The payload arrives on stdin only; the arguments are the configured ones, unexpanded.
    let out = run(&["call", "510", "; rm -rf /", "-s", &addr], &env);
    assert_eq!(stdout(&out).trim(), "one two|$HOME|;|; rm -rf /", "{out:?}");

    let out = run(&["--json", "call", "501", "x", "-s", &addr], &env);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!((&v["error"], &v["status"]), (&"remote".into(), &1.into()));
    assert_eq!(v["data"], "broken");

    // A command that hangs is killed at its deadline (1 s) and answered with an error, and
    // the server keeps answering meanwhile.
    let started = Instant::now();
    let hung = std::thread::spawn({
        let addr = addr.clone();
        let psk = psk.clone();
        move || {
            run(
                &["--json", "call", "502", "x", "-s", &addr, "-t", "5"],
                &[("PAV_PSK", &psk)],
            )
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let out = run(&["call", "401", "still here", "-s", &addr], &env);
    assert_eq!(stdout(&out).trim(), "still here");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "blocked by the hung command"
    );
    let out = hung.join().unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = json_of(&out);
    assert!(v["data"].as_str().unwrap().contains("killed"), "{v}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[test]
fn exec_flags_are_checked_at_start() {
    let psk = "5a".repeat(32);
    let env = [("PAV_PSK", psk.as_str())];
    let cases: &[(&str, &str)] = &[
        ("cat", "expected FN=COMMAND"),
        ("0=cat", "answered by the protocol itself"),
        ("500=no-such-program-anywhere", "not found in PATH"),
        ("500='unclosed", "unclosed '"),
        ("500=", "empty command"),
    ];
    for (flag, expect) in cases {
        let out = run(&["serve", "--exec", flag], &env);
        assert_eq!(out.status.code(), Some(2), "{flag}: {out:?}");
        assert!(stderr(&out).contains(expect), "{flag}: {:?}", stderr(&out));
    }
}

#[test]
fn every_subcommand_has_examples_in_its_help() {
    for cmd in [
        "keygen", "serve", "call", "send", "listen", "time", "get", "set", "observe",
    ] {
        let out = run(&[cmd, "--help"], &[]);
        assert!(out.status.success());
        let text = stdout(&out);
        assert!(text.contains("Examples:"), "{cmd}: {text}");
        assert!(text.contains(&format!("pav {cmd}")), "{cmd}: {text}");
    }
}
