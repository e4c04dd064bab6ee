//! `pav serve --register`, `pav get`, `pav set` and `pav observe` as processes on 127.0.0.1
//! (`docs/PROTOCOL.md` §9.8). Every wait is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/process.rs"]
mod process;

use std::path::Path;

use process::{free_port, json_of, run_with, scratch, stderr, Running};

const PSK: [&str; 4] = ["--psk-file", "alice/psk", "--client-id", "alice-sensor-001"];

fn serve(dir: &Path) -> (Running, String) {
    let out = run_with(Some(dir), &["keygen", "--out", "alice"], &[], None);
    assert!(out.status.success(), "{out:?}");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut all = vec!["--json", "serve", "--listen", &addr, "--duration", "30"];
    all.extend([
        "--client",
        "alice-sensor-001=alice/psk",
        "--register",
        "1:temp:f32:C=20.5",
        "--register",
        "2:setpoint:i64:C:rw=21",
        "--register",
        "3:label:text=kitchen",
    ]);
    let server = Running::start_in(Some(dir), &all, &[]);
    let hello = server.next_json();
    assert_eq!(hello["event"], "listening", "{hello}");
    (server, addr)
}

fn pav(dir: &Path, addr: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    all.extend(["-s", addr]);
    all.extend(PSK);
    run_with(Some(dir), &all, &[], None)
}

#[test]
fn get_and_set_by_name_and_number_with_refusals() {
    let dir = scratch("pav-registers-get-set");
    let (server, addr) = serve(&dir);
    let out = pav(&dir, &addr, &["get", "temp"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_of(&out);
    assert_eq!(v["value"], "20.5");
    assert_eq!(v["type"], "f32");
    assert_eq!(v["unit"], "C");
    let out = pav(&dir, &addr, &["get", "3"]);
    assert_eq!(json_of(&out)["value"], "kitchen");

    let out = pav(&dir, &addr, &["set", "setpoint", "23"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_of(&out)["value"], "23");
    let written = server.next_event("register_written");
    assert_eq!(written["register"], 2);
    assert_eq!(written["value"], "23");

    let out = pav(&dir, &addr, &["set", "2", "24", "--unreliable"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.next_event("register_written")["value"], "24");

    // Read-only: refused by the server, exit code 1.
    let out = pav(&dir, &addr, &["set", "temp", "1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(json_of(&out)["error"], "refused");
    assert!(stderr(&out).contains("read_only"), "{}", stderr(&out));
    // Not a value of the register's type: bad input, exit code 2.
    let out = pav(&dir, &addr, &["set", "setpoint", "warm"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // Unknown register.
    let out = pav(&dir, &addr, &["get", "nothing"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = pav(&dir, &addr, &["get", "setpoint"]);
    assert_eq!(json_of(&out)["value"], "24");
}

#[test]
fn observe_prints_one_line_per_change() {
    let dir = scratch("pav-registers-observe");
    let (_server, addr) = serve(&dir);
    let mut args = vec![
        "--json",
        "observe",
        "setpoint",
        "-n",
        "2",
        "--interval",
        "0.01",
        "--duration",
        "20",
        "-s",
        &addr,
    ];
    args.extend(PSK);
    let observer = Running::start_in(Some(&dir), &args, &[]);
    let first = observer.next_json();
    assert_eq!(first["event"], "register", "{first}");
    assert_eq!(first["value"], "21");
    for v in ["30", "31"] {
        let out = pav(&dir, &addr, &["set", "setpoint", v]);
        assert!(out.status.success(), "{}", stderr(&out));
        let line = observer.next_event("register_changed");
        assert_eq!(line["value"], v, "{line}");
    }
    assert!(observer.wait().success());
}

#[test]
fn a_bad_register_flag_is_bad_input() {
    let dir = scratch("pav-registers-bad-flag");
    for spec in [
        "1:temp:float=1",
        "x:temp:f32=1",
        "1:temp:f32",
        "1:temp:i64=abc",
    ] {
        let out = run_with(
            Some(&dir),
            &["serve", "--allow-guests", "--register", spec],
            &[],
            None,
        );
        assert_eq!(out.status.code(), Some(2), "{spec}: {out:?}");
    }
}
