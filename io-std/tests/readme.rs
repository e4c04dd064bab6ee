//! The README's `pav` walkthrough, run as written: the fenced block after the
//! `<!-- walkthrough: run by io-std/tests/readme.rs -->` marker goes to `bash -e` in an empty
//! folder, with this build's `pav` first in `PATH` and `PAV_LISTEN`/`PAV_SERVER` pointing
//! every command at a free loopback port. If the walkthrough breaks, this test fails.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/process.rs"]
mod process;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use process::{free_port, scratch, PAV};

const MARKER: &str = "<!-- walkthrough: run by io-std/tests/readme.rs -->";

/// The shell lines of the walkthrough block.
fn walkthrough() -> String {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    let after = text
        .split_once(MARKER)
        .expect("README.md has no walkthrough marker")
        .1;
    let block = after
        .trim_start()
        .strip_prefix("```sh\n")
        .expect("the walkthrough marker is not followed by a ```sh block");
    let end = block.find("\n```").expect("unclosed walkthrough block");
    block[..end].to_owned()
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let dir = scratch("readme");
    let script = walkthrough();
    assert!(script.contains("pav serve") && script.contains("pav call"));
    std::fs::write(dir.join("walkthrough.sh"), &script).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let bin = Path::new(PAV).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::fs::File::create(dir.join("out.txt")).unwrap();
    let err = std::fs::File::create(dir.join("err.txt")).unwrap();
    let mut child = Command::new("bash")
        .args(["-e", "walkthrough.sh"])
        .current_dir(&dir)
        .env("PATH", path)
        .env("PAV_LISTEN", &addr)
        .env("PAV_SERVER", &addr)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group, so that the server it leaves running is killed with it.
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The server (and anything else left) goes with the group.
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let killed = Instant::now();
    while child.try_wait().unwrap().is_none() && killed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stdout = std::fs::read_to_string(dir.join("out.txt")).unwrap();
    let stderr = std::fs::read_to_string(dir.join("err.txt")).unwrap();
    let report = format!("script:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let status = status.unwrap_or_else(|| panic!("the walkthrough hung\n{report}"));
    assert!(
        status.success(),
        "the walkthrough failed: {status}\n{report}"
    );
    for expect in [
        "listening on",
        "\nhello\n",
        "20 calls to function 0",
        "p99",
        "listening to kitchen",
        "kitchen/temp: 21.5",
        &format!("delivered to {addr}"),
        "server clock:",
        "monotonic",
        "offset:",
    ] {
        assert!(
            stdout.contains(expect),
            "no {expect:?} in the output\n{report}"
        );
    }
    // Printed twice: by the server that received it, and by the listener it forwarded it to.
    assert_eq!(stdout.matches("kitchen/temp: 21.5").count(), 2, "{report}");
    assert!(dir.join("server/secret.key").exists());
}
