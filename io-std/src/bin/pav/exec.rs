//! `pav serve --exec FN=COMMAND`: a command as the handler of function FN.
//!
//! COMMAND is split into a program and its arguments once, when pav starts, by these rules
//! (no shell is involved): words are separated by whitespace; `'...'` quotes literally;
//! `"..."` quotes with `\"` and `\\` as escapes; `\` outside quotes escapes the next character.
//! Nothing is expanded (no `$VAR`, `~`, globs, pipes or redirections). A program without a `/`
//! is looked up in `PATH` at start-up, so a missing one fails before the server runs.
//!
//! For each call, the program runs with exactly those arguments, the call's argument bytes on
//! its stdin, and its stdout as the answer (status 0). A non-zero exit answers status 1 with
//! its stderr (or the exit status) as the message. A command still running at the call's
//! deadline (`--exec-timeout`, counted from the call's arrival) is killed, with every process
//! it started in its process group, and answered status 1. A caller can choose nothing but the
//! bytes on stdin: not the program, not its arguments, not its environment.
//!
//! Commands run on a pool of `--exec-max` worker threads, never on the server's thread, so a
//! slow command does not hold up other calls or messages. A call that finds every worker busy
//! and the queue full is answered status 1 (`busy`) at once.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pavillion_std::{Responder, RpcFailure, RpcRequest, Server};

/// The default deadline of a command: the reference client's call deadline.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// The default number of commands running at once.
pub(crate) const DEFAULT_MAX: usize = 4;
/// Calls waiting for a worker, beyond which new ones are answered `busy`.
const QUEUE: usize = 16;
/// What an answer's plaintext holds besides its data (opcode, counter, status and length):
/// the data may be the server's largest message less this.
const ANSWER_OVERHEAD: usize = 11;

/// A configured command.
#[derive(Clone, Debug)]
pub(crate) struct ExecSpec {
    pub(crate) function: u16,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
}

impl ExecSpec {
    /// A command from its words; checks the function number and finds the program.
    pub(crate) fn new(function: u16, words: Vec<String>) -> Result<ExecSpec, String> {
        if function <= 1 {
            return Err(format!(
                "function {function} is answered by the protocol itself (0 echo, 1 function \
                 name); choose another number"
            ));
        }
        let mut words = words.into_iter();
        let program = words
            .next()
            .filter(|p| !p.is_empty())
            .ok_or("empty command")?;
        Ok(ExecSpec {
            function,
            program: find_program(&program)?,
            args: words.collect(),
        })
    }

    /// The command as configured, for logs and the start-up banner.
    pub(crate) fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&format!("{a:?}"));
        }
        s
    }
}

/// `--exec FN=COMMAND`.
pub(crate) fn flag(s: &str) -> Result<ExecSpec, String> {
    let (f, command) = s
        .split_once('=')
        .ok_or_else(|| format!("expected FN=COMMAND, not {s:?}"))?;
    let function = f
        .trim()
        .parse::<u16>()
        .map_err(|_| format!("function number must be 0 to 65535, not {f:?}"))?;
    ExecSpec::new(function, split(command)?)
}

/// Splits a command into words (see the module docs); no expansion of any kind.
pub(crate) fn split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed ' in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unclosed \" in {s:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed \" in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(
                    chars
                        .next()
                        .ok_or_else(|| format!("trailing \\ in {s:?}"))?,
                );
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("empty command".into());
    }
    Ok(words)
}

fn find_program(program: &str) -> Result<PathBuf, String> {
    let runnable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return if runnable(&p) {
            Ok(p)
        } else {
            Err(format!("{program}: no such executable file"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| runnable(p))
        .ok_or_else(|| format!("{program}: not found in PATH"))
}

struct Job {
    request: RpcRequest,
    responder: Responder,
    deadline: Instant,
}

/// Registers every command as a deferred handler, fed to `max` workers. An answer may be as
/// large as the server's largest message, `max_message` (sent in segments).
pub(crate) fn register(
    server: &Server,
    specs: &[ExecSpec],
    timeout: Duration,
    max: usize,
    max_message: usize,
) {
    let max_answer = max_message.saturating_sub(ANSWER_OVERHEAD);
    if specs.is_empty() {
        return;
    }
    let (tx, rx) = mpsc::sync_channel::<(Arc<ExecSpec>, Job)>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..max {
        let rx = rx.clone();
        let spawned = thread::Builder::new()
            .name(format!("pav-exec-{i}"))
            .spawn(move || loop {
                let next = rx.lock().map(|r| r.recv());
                let Ok(Ok((spec, job))) = next else { return };
                let result = run(&spec, &job, max_answer);
                job.responder.respond(result);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start an exec worker");
        }
    }
    for spec in specs {
        let spec = Arc::new(spec.clone());
        let tx: SyncSender<_> = tx.clone();
        let name = spec
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        server.register_deferred(spec.function, &name, move |request, responder| {
            let job = Job {
                request,
                responder,
                deadline: Instant::now() + timeout,
            };
            match tx.try_send((spec.clone(), job)) {
                Ok(()) => {}
                Err(TrySendError::Full((_, job)) | TrySendError::Disconnected((_, job))) => {
                    tracing::warn!(function = spec.function, "every exec worker is busy");
                    job.responder.respond::<Vec<u8>>(Err(RpcFailure::error(
                        "busy: too many commands running",
                    )));
                }
            }
        });
    }
}

/// Runs one command for one call.
fn run(spec: &ExecSpec, job: &Job, max_answer: usize) -> Result<Vec<u8>, RpcFailure> {
    if Instant::now() >= job.deadline {
        return Err(RpcFailure::error("timed out waiting for a free worker"));
    }
    let started = Instant::now();
    let mut child = Command::new(&spec.program)
        .args(&spec.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout kills whatever it started too.
        .process_group(0)
        .spawn()
        .map_err(|e| {
            tracing::warn!(program = %spec.program.display(), error = %e, "cannot run");
            RpcFailure::error(&format!("cannot run {}: {e}", spec.program.display()))
        })?;
    let pid = child.id();
    let input = job.request.args.clone();
    let stdin = child.stdin.take();
    // Writing and reading on their own threads: a command that does not read its stdin, or
    // writes much, cannot block us.
    let writer = thread::spawn(move || {
        if let Some(mut s) = stdin {
            let _ = s.write_all(&input);
        }
    });
    let reader = |r: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                // Never more than an answer can carry, plus one byte to tell it was more.
                let _ = r.take(max_answer as u64 + 1).read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let out = reader(child.stdout.take().map(|s| Box::new(s) as _));
    let err = reader(child.stderr.take().map(|s| Box::new(s) as _));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= job.deadline => break None,
            Ok(None) => thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot wait for the command");
                break None;
            }
        }
    };
    let Some(status) = status else {
        kill_group(pid);
        let _ = child.kill();
        let _ = child.wait();
        let _ = writer.join();
        tracing::warn!(function = spec.function, command = %spec.display(), "killed at its deadline");
        return Err(RpcFailure::error(&format!(
            "command timed out after {:.1} s and was killed",
            started.elapsed().as_secs_f64()
        )));
    };
    // The output ends when every process holding it has ended; a background process the
    // command left behind is killed at the deadline like a command that hangs.
    let collect = |rx: mpsc::Receiver<Vec<u8>>| {
        let wait = job.deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(wait).map_err(|_| {
            kill_group(pid);
            RpcFailure::error("the command's output stayed open past the deadline")
        })
    };
    let stdout = collect(out)?;
    let stderr = collect(err)?;
    let _ = writer.join();
    if !status.success() {
        let text = String::from_utf8_lossy(&stderr).trim().to_owned();
        let message = if text.is_empty() {
            format!("command failed: {status}")
        } else {
            text
        };
        let mut message = message.into_bytes();
        message.truncate(max_answer);
        return Err(RpcFailure::new(
            pavillion_proto::wire::RpcStatus::ERROR,
            message,
        ));
    }
    if stdout.len() > max_answer {
        return Err(RpcFailure::error(&format!(
            "the command's answer is too large: more than {max_answer} bytes (the server's \
             --max-message)"
        )));
    }
    Ok(stdout)
}

/// Kills the process group the command leads (it was started with `process_group(0)`).
fn kill_group(pid: u32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting() {
        let w = |s: &str| split(s).unwrap();
        assert_eq!(w("a b  c"), ["a", "b", "c"]);
        assert_eq!(w("tr a-z 'A-Z'"), ["tr", "a-z", "A-Z"]);
        assert_eq!(w(r#"echo "a \"b\" c" d\ e"#), ["echo", "a \"b\" c", "d e"]);
        assert_eq!(w("x ''"), ["x", ""]);
        assert_eq!(w("$HOME ~ *;|"), ["$HOME", "~", "*;|"]);
        assert!(split("'open").is_err());
        assert!(split("   ").is_err());
    }

    #[test]
    fn specs() {
        assert!(flag("500=cat").unwrap().program.ends_with("cat"));
        assert!(flag("1=cat").unwrap_err().contains("protocol itself"));
        assert!(flag("500=no-such-program-here")
            .unwrap_err()
            .contains("not found"));
        assert!(flag("cat").unwrap_err().contains("FN=COMMAND"));
    }
}
