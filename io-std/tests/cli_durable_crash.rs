//! The crash test of durable messages on real processes (issue 17): `pav send --durable
//! --lines` streams the lines of a file to `pav serve --durable --output` on loopback, and
//! both are killed with SIGKILL at random points (seeded; the seed is printed) and started
//! again, many times. At the end the output file holds every line exactly once.
//!
//! The count is the 10,000 lines (`PAV_CRASH_LINES` changes it; a debug build on two
//! cores takes about 20 s), with 24 kills (`PAV_CRASH_KILLS`) 30-430 ms apart, each of the
//! sender or the receiver. `PAV_CRASH_SEED` replays a run (`scripts/durable-crash.sh` runs it
//! in release). Every wait is bounded.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

#[path = "support/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use process::{free_port, scratch, PAV};

const PSK: &str = "5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d5c0d";
const ID: &str = "crash-test-00001";
/// How long the whole run may take before the test fails.
const LIMIT: Duration = Duration::from_secs(240);

/// A small seeded generator (xorshift64*): the kill points depend only on the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn receiver(dir: &Path, port: u16) -> Child {
    Command::new(PAV)
        .current_dir(dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--durable", "server.redb", "--output", "out.txt"])
        .args(["--psk", PSK, "--client-id", ID])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn sender(dir: &Path, port: u16) -> Child {
    Command::new(PAV)
        .current_dir(dir)
        .args(["send", "lines", "line", "--lines", "lines.txt"])
        .args([
            "--durable",
            "client.redb",
            "-s",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--psk", PSK, "--client-id", ID])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// SIGKILL: no quit, no last write.
fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn lines_in(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|c| **c == b'\n').count())
}

#[test]
fn every_line_arrives_exactly_once_across_kill_9_of_sender_and_receiver() {
    let n = env_u64("PAV_CRASH_LINES").unwrap_or(10_000);
    let seed = env_u64("PAV_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    let kills = env_u64("PAV_CRASH_KILLS").unwrap_or(24);
    println!("crash test: {n} lines, {kills} kills, PAV_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = scratch("durable-crash");
    let text: String = (1..=n).map(|i| format!("line-{i:06}\n")).collect();
    std::fs::write(dir.join("lines.txt"), text).unwrap();
    let port = free_port();
    let started = Instant::now();

    let mut rx = Some(receiver(&dir, port));
    let mut tx = Some(sender(&dir, port));
    let mut sender_done = false;
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(30 + rng.below(400)));
        assert!(started.elapsed() < LIMIT, "the run took too long");
        if let Some(t) = &mut tx {
            if let Some(status) = t.try_wait().unwrap() {
                assert!(status.success(), "the sender failed: {status}");
                sender_done = true;
                tx = None;
            }
        }
        let victim_is_sender = rng.below(2) == 0 && !sender_done;
        let pause = Duration::from_millis(rng.below(300));
        if victim_is_sender {
            println!("kill {k}: sender after {:?}", started.elapsed());
            if let Some(mut t) = tx.take() {
                kill9(&mut t);
            }
            std::thread::sleep(pause);
            tx = Some(sender(&dir, port));
        } else {
            println!("kill {k}: receiver after {:?}", started.elapsed());
            if let Some(mut r) = rx.take() {
                kill9(&mut r);
            }
            std::thread::sleep(pause);
            rx = Some(receiver(&dir, port));
        }
    }
    // No more kills: the sender finishes once every line is acknowledged.
    if let Some(mut t) = tx.take() {
        loop {
            if let Some(status) = t.try_wait().unwrap() {
                assert!(status.success(), "the sender failed: {status}");
                break;
            }
            if started.elapsed() > LIMIT {
                kill9(&mut t);
                panic!("the sender did not finish in time");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Acknowledged means stored at the receiver; it appends right after.
    let out = dir.join("out.txt");
    while lines_in(&out) < n as usize && started.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(mut r) = rx.take() {
        kill9(&mut r);
    }
    let got = std::fs::read_to_string(&out).unwrap();
    let mut count: BTreeMap<&str, u32> = BTreeMap::new();
    for line in got.lines() {
        *count.entry(line).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(
        twice.is_empty(),
        "delivered more than once (seed {seed}): {twice:?}"
    );
    let missing: Vec<_> = (1..=n)
        .map(|i| format!("line-{i:06}"))
        .filter(|l| !count.contains_key(l.as_str()))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "lost (seed {seed}): {missing:?}");
    assert_eq!(count.len(), n as usize, "unexpected lines (seed {seed})");
    println!(
        "crash test: {n} lines exactly once in {:?} (seed {seed})",
        started.elapsed()
    );
}
