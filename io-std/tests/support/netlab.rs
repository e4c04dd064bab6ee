//! A laboratory of private network namespaces for process tests that need real segments:
//! Linux bridges, veth links, and processes run inside namespaces with `ip netns exec`.
//!
//! Everything it makes is named `pavlab-<pid>-<run>-<name>`, made inside namespaces of its own
//! (`ip -n NS`, so no interface is ever created in, or moved through, the namespace the test
//! runs in), and removed again when the [`Lab`] drops, also when the test fails: processes
//! first (by the pids this lab started, then any left inside its own namespaces), then the
//! namespaces, which take their bridges and veth ends with them. Namespaces left behind by a
//! run that was killed outright (its pid is gone) are removed by the next run.
//!
//! Listeners and senders are this test binary itself, run again inside a namespace in a
//! helper role (see [`helper_role`]): no tool beyond `ip` (iproute2), `sh` and `kill` is needed.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The prefix of every namespace a lab makes.
const PREFIX: &str = "pavlab-";
/// Environment variable that puts this test binary in a helper role.
const ROLE: &str = "PAV_NETLAB_ROLE";
const BIND: &str = "PAV_NETLAB_BIND";
const TO: &str = "PAV_NETLAB_TO";
const PAYLOADS: &str = "PAV_NETLAB_PAYLOADS";
const FOR_MS: &str = "PAV_NETLAB_FOR_MS";
const REPLY: &str = "PAV_NETLAB_REPLY";
const FROM: &str = "PAV_NETLAB_FROM";
const PREFIX_ONLY: &str = "PAV_NETLAB_PREFIX";
/// Gap between two datagrams of a sender, so that no queue on the way can overflow.
const SEND_GAP: Duration = Duration::from_millis(15);

static RUNS: AtomicU32 = AtomicU32::new(0);

/// Runs `cmd`, returning its stdout, or what went wrong (status and stderr).
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(args))
}

/// Kills the processes inside namespace `ns` (all of them started by a lab) and deletes it.
fn remove_namespace(ns: &str) {
    if let Ok(pids) = ip(&["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

/// Removes the namespaces of earlier runs whose test process no longer exists.
fn remove_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !PathBuf::from(format!("/proc/{pid}")).exists() {
            remove_namespace(name);
        }
    }
}

/// A process started inside a namespace: killed when the lab drops (or by [`Lab::kill`]);
/// its stdout is kept line by line, its stderr goes to a file for the failure report.
pub struct Proc {
    /// What the lab calls it (in reports).
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stdout line so far, for the failure report.
    seen: Arc<Mutex<Vec<String>>>,
    stderr: PathBuf,
}

impl Proc {
    /// The next stdout line within `limit`.
    pub fn line_within(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// The next stdout line that `pick` accepts, skipping others, within `limit`.
    pub fn wait_for<T>(
        &self,
        limit: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            if let Some(t) = pick(&line) {
                return Some(t);
            }
        }
    }

    /// Every stdout line available now, without waiting.
    pub fn drain(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its stdout and stderr so far, for a failure report.
    pub fn report(&self) -> String {
        let out = self.seen.lock().map(|s| s.join("\n")).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(40).collect();
        let err: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "--- {} stdout:\n{out}\n--- {} stderr (last 40 lines):\n{}\n",
            self.name,
            self.name,
            err.join("\n")
        )
    }
}

/// A set of private network namespaces, the links between them and the processes run in
/// them; all removed on drop.
pub struct Lab {
    run: String,
    namespaces: Vec<String>,
    /// Processes by name; a killed one stays (dead) until the lab drops.
    procs: BTreeMap<String, Proc>,
    /// Scratch folder (key files, stderr logs).
    pub dir: PathBuf,
}

impl Lab {
    /// A new, empty lab, or why none can be made here (the caller skips its test with it):
    /// not root, no `ip`, no namespaces, no bridges or no veth links. `dir` makes its scratch
    /// folder, once the probe passed (an unprivileged user may not be able to write there).
    pub fn new(dir: impl FnOnce() -> PathBuf) -> Result<Lab, String> {
        ip(&["-V"]).map_err(|e| format!("no usable `ip` (iproute2): {e}"))?;
        remove_stale();
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let mut lab = Lab {
            run: format!("{PREFIX}{}-{n}-", std::process::id()),
            namespaces: Vec::new(),
            procs: BTreeMap::new(),
            dir: PathBuf::new(),
        };
        // Probe everything the tests need, inside a namespace of ours.
        let probe = lab
            .namespace("probe")
            .map_err(|e| format!("cannot create a network namespace (root needed): {e}"))?;
        lab.ip(&probe, &["link", "add", "br0", "type", "bridge"])
            .map_err(|e| format!("cannot create a bridge: {e}"))?;
        lab.ip(
            &probe,
            &[
                "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
            ],
        )
        .map_err(|e| format!("cannot create a veth pair: {e}"))?;
        lab.dir = dir();
        Ok(lab)
    }

    /// The full name of the lab's namespace `name`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.run)
    }

    /// Creates namespace `name` with loopback up and reverse-path filtering off (relays
    /// emit datagrams whose source is on another segment, so no namespace has a route back).
    pub fn namespace(&mut self, name: &str) -> Result<String, String> {
        let ns = self.ns(name);
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        self.ip(&ns, &["link", "set", "lo", "up"])?;
        self.sysctl(&ns, "net/ipv4/conf/all/rp_filter", "0")?;
        self.sysctl(&ns, "net/ipv4/conf/default/rp_filter", "0")?;
        Ok(ns)
    }

    /// Writes a sysctl of namespace `ns` (`/proc/sys/net` shows the reader's namespace).
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<(), String> {
        run(Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c"])
            .arg(format!("echo {value} > /proc/sys/{key}")))
        .map(drop)
    }

    /// Runs `ip -n NS args...`. Only ever with a namespace of this lab.
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String, String> {
        assert!(
            self.namespaces.iter().any(|n| n == ns),
            "{ns} is not a namespace of this lab"
        );
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Creates namespace `name` holding bridge `br0` (up), a segment that hosts attach to.
    pub fn bridge(&mut self, name: &str) -> Result<String, String> {
        let ns = self.namespace(name)?;
        self.ip(&ns, &["link", "add", "br0", "type", "bridge"])?;
        self.ip(&ns, &["link", "set", "br0", "up"])?;
        Ok(ns)
    }

    /// Links host namespace `host` to the bridge in namespace `bridge` with a veth pair:
    /// `ifname` in the host with address `cidr` (for example `10.71.1.10/24`, broadcast
    /// address derived), its other end `port` enslaved to `br0`. Names at most 15 bytes.
    pub fn attach(
        &self,
        host: &str,
        ifname: &str,
        cidr: &str,
        bridge: &str,
        port: &str,
    ) -> Result<(), String> {
        self.ip(
            host,
            &[
                "link", "add", ifname, "type", "veth", "peer", "name", port, "netns", bridge,
            ],
        )?;
        self.ip(bridge, &["link", "set", port, "master", "br0"])?;
        self.ip(bridge, &["link", "set", port, "up"])?;
        self.ip(host, &["addr", "add", cidr, "brd", "+", "dev", ifname])?;
        self.ip(host, &["link", "set", ifname, "up"])?;
        Ok(())
    }

    /// Starts `program args...` inside namespace `ns` as process `name`.
    pub fn spawn(
        &mut self,
        ns: &str,
        name: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> &mut Proc {
        assert!(self.namespaces.iter().any(|n| n == ns));
        let stderr = self.dir.join(format!("{name}.stderr"));
        // `ip netns exec` enters the namespace and execs the program: the pid is its own.
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&seen);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut k) = keep.lock() {
                    k.push(line.clone());
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let proc = Proc {
            name: name.to_owned(),
            child,
            lines,
            seen,
            stderr,
        };
        self.procs.insert(name.to_owned(), proc);
        self.procs.get_mut(name).unwrap()
    }

    /// The process called `name`.
    pub fn proc(&self, name: &str) -> &Proc {
        &self.procs[name]
    }

    /// Kills process `name` at once (SIGKILL: no goodbye to anyone) and waits for it.
    pub fn kill(&mut self, name: &str) {
        let p = self.procs.get_mut(name).unwrap();
        let _ = p.child.kill();
        let _ = p.child.wait();
    }

    /// Sends `signal` (a `kill` name: `STOP`, `CONT`, `TERM`) to process `name`, by the pid of
    /// the child this lab started.
    pub fn signal(&self, name: &str, signal: &str) {
        let pid = self.procs[name].child.id().to_string();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid)
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {name} failed");
    }

    /// Starts a listener in `ns`: it receives on `bind` for `life` and prints one line per
    /// datagram ([`Heard`]); with `reply`, it answers each datagram by unicast to its source
    /// with `reply ` and the payload, as a server answers a search. Returns once it is bound.
    pub fn listener(
        &mut self,
        ns: &str,
        name: &str,
        bind: &str,
        life: Duration,
        reply: bool,
    ) -> Result<(), String> {
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_str().unwrap().to_owned();
        let for_ms = life.as_millis().to_string();
        let reply = if reply { "1" } else { "0" };
        let p = self.spawn(
            ns,
            name,
            &exe,
            &["--exact", "helper_role", "--nocapture", "--test-threads=1"],
            &[
                (ROLE, "listen"),
                (BIND, bind),
                (FOR_MS, &for_ms),
                (REPLY, reply),
            ],
        );
        p.wait_for(Duration::from_secs(10), |l| {
            (tag(l) == Some("ready")).then_some(())
        })
        .ok_or_else(|| format!("listener {name} did not start\n{}", p.report()))
    }

    /// Sends each payload once from `bind` to `to` (broadcast allowed), one every few
    /// milliseconds, from namespace `ns`; returns when all are sent. The sender then stays
    /// for `linger`, printing what comes back to `bind` (the replies: [`Lab::heard`] of
    /// `name`).
    pub fn send(
        &mut self,
        ns: &str,
        name: &str,
        bind: &str,
        to: &str,
        payloads: &[String],
        linger: Duration,
    ) {
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_str().unwrap().to_owned();
        let list = payloads.join(",");
        let for_ms = linger.as_millis().to_string();
        let p = self.spawn(
            ns,
            name,
            &exe,
            &["--exact", "helper_role", "--nocapture", "--test-threads=1"],
            &[
                (ROLE, "send"),
                (BIND, bind),
                (TO, to),
                (PAYLOADS, &list),
                (FOR_MS, &for_ms),
                (REPLY, "0"),
            ],
        );
        let wait = Duration::from_secs(10) + SEND_GAP * payloads.len() as u32;
        let done = p.wait_for(wait, |l| {
            tag(l)
                .and_then(|t| t.strip_prefix("sent "))
                .map(str::to_owned)
        });
        let report = p.report();
        assert_eq!(
            done.as_deref(),
            Some(payloads.len().to_string().as_str()),
            "the sender {name} did not send everything\n{report}"
        );
    }

    /// Starts a rogue rebroadcaster in `ns` (what a storm looks like to a listener): it
    /// receives on `bind` and sends each datagram whose payload starts with `prefix` once
    /// more, from `from`, to `to`, until the lab drops (at most a minute); returns once it
    /// is bound.
    pub fn rebroadcaster(
        &mut self,
        ns: &str,
        name: &str,
        bind: &str,
        from: &str,
        to: &str,
        prefix: &str,
    ) -> Result<(), String> {
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_str().unwrap().to_owned();
        let for_ms = Duration::from_secs(60).as_millis().to_string();
        let p = self.spawn(
            ns,
            name,
            &exe,
            &["--exact", "helper_role", "--nocapture", "--test-threads=1"],
            &[
                (ROLE, "rebroadcast"),
                (BIND, bind),
                (FROM, from),
                (TO, to),
                (PREFIX_ONLY, prefix),
                (FOR_MS, &for_ms),
            ],
        );
        p.wait_for(Duration::from_secs(10), |l| {
            (tag(l) == Some("ready")).then_some(())
        })
        .ok_or_else(|| format!("rebroadcaster {name} did not start\n{}", p.report()))
    }

    /// What listener `name` heard since the last call.
    pub fn heard(&self, name: &str) -> Vec<Heard> {
        self.proc(name)
            .drain()
            .iter()
            .filter_map(|l| Heard::parse(l))
            .collect()
    }

    /// Every process's output, for a failure message.
    pub fn report(&self) -> String {
        self.procs.values().map(Proc::report).collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
        for p in self.procs.values_mut() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            remove_namespace(ns);
        }
    }
}

/// One datagram a listener heard: who sent it and its payload (UTF-8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heard {
    /// Source address and port.
    pub from: SocketAddr,
    /// The payload.
    pub payload: String,
}

impl Heard {
    fn parse(line: &str) -> Option<Heard> {
        let rest = tag(line)?.strip_prefix("heard ")?;
        let (from, payload) = rest.split_once(' ')?;
        Some(Heard {
            from: from.parse().ok()?,
            payload: payload.to_owned(),
        })
    }
}

/// What a helper wrote after its `netlab ` tag. The test harness may have written the start
/// of its own `test helper_role ... ` line before it on the same line.
fn tag(line: &str) -> Option<&str> {
    line.find("netlab ").map(|i| &line[i + "netlab ".len()..])
}

/// The body of the test named `helper_role` that every binary using this module declares:
/// does nothing in a normal test run; in a process started by [`Lab::listener`] or
/// [`Lab::send`], plays that role.
pub fn helper_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let sock = UdpSocket::bind(var(BIND)).unwrap();
    let life = Duration::from_millis(var(FOR_MS).parse().unwrap());
    let mut out = std::io::stdout();
    // Start on a line of our own, after the harness's `test helper_role ... `.
    writeln!(out).unwrap();
    match role.as_str() {
        "listen" => {
            writeln!(out, "netlab ready").unwrap();
            out.flush().unwrap();
            receive(&sock, &mut out, Instant::now() + life, var(REPLY) == "1");
        }
        "send" => {
            sock.set_broadcast(true).unwrap();
            let to = var(TO);
            let payloads = var(PAYLOADS);
            let mut sent = 0;
            for p in payloads.split(',') {
                sock.send_to(p.as_bytes(), &to).unwrap();
                sent += 1;
                std::thread::sleep(SEND_GAP);
            }
            writeln!(out, "netlab sent {sent}").unwrap();
            out.flush().unwrap();
            receive(&sock, &mut out, Instant::now() + life, false);
        }
        "rebroadcast" => {
            let send = UdpSocket::bind(var(FROM)).unwrap();
            send.set_broadcast(true).unwrap();
            let (to, prefix) = (var(TO), var(PREFIX_ONLY));
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            writeln!(out, "netlab ready").unwrap();
            out.flush().unwrap();
            let until = Instant::now() + life;
            let mut buf = [0u8; 65536];
            while Instant::now() < until {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    // Not our own copies coming back, and only the test's broadcasts.
                    if Some(from) != send.local_addr().ok()
                        && buf[..n].starts_with(prefix.as_bytes())
                    {
                        let _ = send.send_to(&buf[..n], &to);
                    }
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// Prints every datagram `sock` receives until `until` (and answers it, with `reply`).
fn receive(sock: &UdpSocket, out: &mut impl Write, until: Instant, reply: bool) {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 65536];
    while Instant::now() < until {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).replace('\n', " ");
            writeln!(out, "netlab heard {from} {text}").unwrap();
            out.flush().unwrap();
            if reply {
                let _ = sock.send_to(format!("reply {text}").as_bytes(), from);
            }
        }
    }
}
