//! `pav authority`, `pav join`, `pav roster` and `pav revoke` as processes on loopback: joins
//! by listed key and by enrolment secret, a wrong secret refused then locked out, the roster
//! as an operator reads it, a revocation every member sees, an authority killed with `-9`
//! and restarted from its store, and bad policy files.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/process.rs"]
mod process;

use std::path::Path;
use std::time::{Duration, Instant};

use process::{free_port, run_with, scratch, stderr, stdout, Running};

const SECRET: &str = "correct horse battery staple";

fn keygen(dir: &Path, name: &str) {
    let out = run_with(Some(dir), &["keygen", "--out", name], &[], None);
    assert!(out.status.success(), "{out:?}");
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

#[track_caller]
fn line(r: &Running, prefix: &str) -> String {
    line_within(r, prefix, Duration::from_secs(10))
}

/// A folder with keys `auth`, `gw` (listed), `s1` (enrols), `bad` (wrong secret), `ops`
/// (operator), and `policy.toml`.
fn fleet(name: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    for k in ["auth", "gw", "s1", "bad", "ops"] {
        keygen(&dir, k);
    }
    std::fs::write(
        dir.join("policy.toml"),
        format!(
            "max_peers = 16\n[lockout]\nthreshold = 2\nbase_secs = 30\n\
             [[enrolment]]\nsecret = \"{SECRET}\"\nrole = \"sensor\"\n\
             [[peer]]\nkey = \"gw/public.key\"\nrole = \"gateway\"\nname = \"gw-1\"\n\
             [[operator]]\nkey = \"ops/public.key\"\n"
        ),
    )
    .unwrap();
    dir
}

fn authority(dir: &Path, addr: &str) -> Running {
    Running::start_in(
        Some(dir),
        &[
            "authority",
            "--key",
            "auth/secret.key",
            "--policy",
            "policy.toml",
            "--bind",
            addr,
            "--store",
            "state.redb",
            "--duration",
            "60",
        ],
        &[],
    )
}

fn join(dir: &Path, key: &str, addr: &str, extra: &[&str]) -> Running {
    let mut args = vec![
        "join",
        "--key",
        key,
        "--authority",
        addr,
        "--authority-key",
        "auth/public.key",
        "--bind",
        "127.0.0.1:0",
        "--duration",
        "60",
    ];
    args.extend_from_slice(extra);
    Running::start_in(Some(dir), &args, &[])
}

fn operator(dir: &Path, addr: &str, command: &[&str]) -> std::process::Output {
    let mut args = command.to_vec();
    args.extend_from_slice(&[
        "--key",
        "ops/secret.key",
        "--authority",
        addr,
        "--authority-key",
        "auth/public.key",
    ]);
    run_with(Some(dir), &args, &[], None)
}

/// `(epoch, version)` of a start line `authority ID listening ADDR epoch HEX version N`.
fn start_line(l: &str) -> (String, u64) {
    let words: Vec<&str> = l.split_whitespace().collect();
    assert_eq!(words[0], "authority", "{l}");
    assert_eq!(words[4], "epoch", "{l}");
    (words[5].to_owned(), words[7].parse().unwrap())
}

/// The id in `joined ID role ROLE version N`.
fn joined_id(l: &str) -> String {
    l.split_whitespace().nth(1).unwrap().to_owned()
}

#[test]
fn a_fleet_joins_refuses_revokes_and_survives_kill_9() {
    let dir = fleet("fleet");
    let addr = format!("127.0.0.1:{}", free_port());
    let auth = authority(&dir, &addr);
    let (epoch, _) = start_line(&line(&auth, "authority "));

    // One member by its listed key, one by the enrolment secret.
    let gw = join(&dir, "gw/secret.key", &addr, &["--connect-all"]);
    let gw_line = line(&gw, "joined ");
    assert!(gw_line.contains("role gateway"), "{gw_line}");
    let gw_id = joined_id(&gw_line);
    let s1 = join(
        &dir,
        "s1/secret.key",
        &addr,
        &["--secret", SECRET, "--connect-all"],
    );
    let s1_line = line(&s1, "joined ");
    assert!(s1_line.contains("role sensor"), "{s1_line}");
    let s1_id = joined_id(&s1_line);
    line(&auth, &format!("admitted {s1_id} sensor"));

    // The operator sees both, up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let roster = loop {
        let out = operator(&dir, &addr, &["roster", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        let members = v["members"].as_array().unwrap().clone();
        if members.len() == 2 && members.iter().all(|m| m["up"] == true) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "roster never showed both up: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(roster["epoch"], epoch.as_str());
    let ids: Vec<&str> = roster["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&gw_id.as_str()) && ids.contains(&s1_id.as_str()));

    // A wrong secret is refused (exit 3); at the threshold (2) the key is locked out.
    for _ in 0..2 {
        let out = run_join_once(&dir, "bad/secret.key", &addr, "not the secret at all");
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("refused bad-proof"),
            "{}",
            stdout(&out)
        );
    }
    let out = run_join_once(&dir, "bad/secret.key", &addr, SECRET);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("refused locked-out"),
        "{}",
        stdout(&out)
    );
    line(&auth, "locked ");

    // The operator revokes s1 by a prefix; gw sees it.
    let out = operator(&dir, &addr, &["revoke", &s1_id[..10]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("revoked {s1_id}"));
    line(&gw, &format!("revoked {s1_id}"));
    let out = operator(&dir, &addr, &["revoke", "0123456789abcdef"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("error: no member 0123456789abcdef"));

    // Killed without a chance to write anything more, then restarted on its store.
    let before = operator(&dir, &addr, &["roster", "--json"]);
    let before: serde_json::Value = serde_json::from_str(stdout(&before).trim()).unwrap();
    let last = before["version"].as_u64().unwrap();
    auth.signal("KILL");
    let _ = auth.wait();
    let auth = authority(&dir, &addr);
    let (epoch2, version2) = start_line(&line(&auth, "authority "));
    assert_eq!(epoch2, epoch, "the epoch survives a restart");
    assert!(version2 >= last, "version {version2} < {last} seen before");
    // gw's key is still admitted: joining again is a rejoin, with the same id and role.
    let again = join(&dir, "gw/secret.key", &addr, &["--once"]);
    assert_eq!(joined_id(&line(&again, "joined ")), gw_id);
    line(&auth, &format!("admitted {gw_id} gateway"));
    // s1 stays revoked.
    let out = run_join_once(&dir, "s1/secret.key", &addr, SECRET);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("refused revoked"), "{}", stdout(&out));
    drop((gw, s1));
}

fn run_join_once(dir: &Path, key: &str, addr: &str, secret: &str) -> std::process::Output {
    run_with(
        Some(dir),
        &[
            "join",
            "--key",
            key,
            "--authority",
            addr,
            "--authority-key",
            "auth/public.key",
            "--bind",
            "127.0.0.1:0",
            "--secret",
            secret,
            "--once",
            "--duration",
            "8",
        ],
        &[],
        None,
    )
}

/// Runs `pav authority` on `policy` and returns its stderr, asserting exit code 2.
fn bad_policy(policy: &str) -> String {
    let dir = scratch("bad-policy");
    keygen(&dir, "auth");
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let out = run_with(
        Some(&dir),
        &[
            "authority",
            "--key",
            "auth/secret.key",
            "--policy",
            "policy.toml",
            "--bind",
            &addr,
            "--duration",
            "1",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    stderr(&out)
}

#[test]
fn a_bad_policy_exits_2_naming_the_line() {
    let e = bad_policy("max_peers = 4\n[lockout]\nthreshold = \"five\"\n");
    assert!(e.contains("policy.toml, line 3"), "{e}");
    let e = bad_policy("[[enrolment]]\nrole = \"s\"\nsecret = \"short\"\n");
    assert!(
        e.contains("line 3") && e.contains("at least 16 bytes"),
        "{e}"
    );
    let e = bad_policy("[[peer]]\nkey = \"nope.pub\"\n");
    assert!(e.contains("line 2") && e.contains("nope.pub"), "{e}");
    let e = bad_policy("[[operator]]\nkey = \"ab\"\ncolour = 1\n");
    assert!(e.contains("line 3") && e.contains("colour"), "{e}");
}

#[test]
fn bad_fleet_flags_exit_2_before_any_network() {
    let dir = scratch("fleet-flags");
    keygen(&dir, "auth");
    keygen(&dir, "ops");
    let addr = format!("127.0.0.1:{}", free_port());
    let out = operator(&dir, &addr, &["revoke", "12ab"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("prefix of at least 8"),
        "{}",
        stderr(&out)
    );
    let out = run_with(
        Some(&dir),
        &[
            "join",
            "--key",
            "ops/secret.key",
            "--authority",
            &addr,
            "--authority-key",
            "nope",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("--authority-key"), "{}", stderr(&out));
}
