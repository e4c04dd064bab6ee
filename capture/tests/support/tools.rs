//! The programs some tests drive (tshark here; `scenarios/tests/wireshark.rs` includes this file
//! too): finding them, and running them with a time bound.
//!
//! A missing program makes a test print why and pass, unless `PAV_REQUIRE_TOOLS=1` (set by
//! `scripts/test.sh`, after `scripts/install-tools.sh`), where it fails.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The tshark program, or `None` (after saying why) when it is missing and not required.
pub(crate) fn tshark() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("tshark"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("PAV_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "tshark is required (PAV_REQUIRE_TOOLS=1) but not on PATH: run scripts/install-tools.sh"
        );
        eprintln!("skipped: tshark is not installed (scripts/install-tools.sh installs it)");
    }
    found
}

/// Runs `program` with `args` to completion and returns its stdout. Fails the test on a
/// non-zero exit, after `timeout` (the program is killed), or when its stderr shows that a Lua
/// dissector failed to load or run.
pub(crate) fn run_bounded(program: &Path, args: &[String], timeout: Duration) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // Read both pipes while waiting, so that a chatty program never blocks on a full pipe.
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("{} {args:?} ran longer than {timeout:?}", program.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "{} {args:?} failed: {status}\n{err}",
        program.display()
    );
    assert!(
        !err.contains("Lua: Error") && !err.contains("Lua: syntax error"),
        "the dissector failed:\n{err}"
    );
    out
}
