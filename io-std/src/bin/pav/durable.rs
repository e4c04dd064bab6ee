//! `--durable STORE` of `pav send`, `pav serve` and `pav listen`: durable messages, exactly
//! once across outages and restarts (`docs/PROTOCOL.md` §16), kept in the `redb` file STORE.
//!
//! The marks carry exactly-once into files, across `kill -9`:
//! - `send --lines FILE` sends line *i* with mark *i* (lines done). A restart skips the
//!   lines up to the restored mark: each line is stored exactly once, however often the
//!   sender is killed and restarted.
//! - `serve`/`listen --output FILE` appends each message (and a newline) to FILE, syncs it,
//!   then consumes the message with FILE's new length as the mark. At start FILE is cut back
//!   to the restored mark, which undoes an append whose consume was not stored; the message
//!   is then delivered again and appended again. So FILE holds each message exactly once.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pavillion_std::{Client, DurableDelivery, DurableError, DurablePeer, DurableRestored};
use serde_json::json;

use crate::common::{self, Failure};

/// How many received messages one pass appends before it syncs the output and consumes them.
const RECEIVE_BATCH: usize = 512;
/// How many sends `send --lines` keeps waiting to be stored at once (they share commits).
const SEND_WINDOW: usize = 1024;

/// The store's error as a failure of the command.
pub(crate) fn failure(e: &DurableError) -> Failure {
    match e {
        DurableError::Store { .. }
        | DurableError::ForeignIdentity { .. }
        | DurableError::Restore { .. } => Failure::failed("store", e.to_string()),
        DurableError::Refused(_) => Failure::failed("refused", e.to_string()),
        DurableError::QueueFull => Failure::failed("queue_full", e.to_string()),
        _ => Failure::failed("durable", e.to_string()),
    }
}

/// What a restored store holds, as a line.
pub(crate) fn print_restored(json: bool, store: &Path, r: &DurableRestored) {
    if json {
        println!(
            "{}",
            json!({"event": "durable_store", "path": store.display().to_string(),
                   "origin": format!("{:016x}", r.origin.0), "fresh": r.fresh,
                   "queued": r.queued, "inbox": r.inbox, "send_mark": r.send_mark,
                   "consume_mark": r.consume_mark})
        );
    } else if r.fresh {
        println!("durable store {} (new)", store.display());
    } else {
        println!(
            "durable store {}: {} queued to send again, {} received to deliver again",
            store.display(),
            r.queued,
            r.inbox
        );
    }
}

/// A durable message received, as a line.
fn print_delivery(json: bool, d: &DurableDelivery) {
    let m = &d.message;
    let from = match d.from {
        DurablePeer::Server => "server".to_owned(),
        DurablePeer::Client(p) => p.to_string(),
    };
    if json {
        println!(
            "{}",
            json!({
                "event": "durable_message",
                "id": d.id.to_string(),
                "from": from,
                "target": m.target(),
                "name": m.name(),
                "data": String::from_utf8_lossy(m.payload()),
                "data_hex": hex::encode(m.payload()),
                "redelivered": d.redelivered,
            })
        );
    } else {
        let again = if d.redelivered { " (again)" } else { "" };
        println!(
            "{from} {}/{} [{}]{again}: {}",
            m.target(),
            m.name(),
            d.id,
            common::show(m.payload())
        );
    }
}

/// The file received messages are appended to, exactly once each (see the module docs).
pub(crate) struct Output {
    file: File,
    path: PathBuf,
    len: u64,
}

impl Output {
    /// Opens (creates) `path` and cuts it back to the mark `restored` holds.
    ///
    /// # Errors
    /// The file cannot be opened; it is shorter than the mark (not this store's file, or
    /// writes were lost); it holds data while the store is new (not this store's file).
    pub(crate) fn open(path: &Path, restored: &DurableRestored) -> Result<Output, Failure> {
        let shown = path.display();
        let io = |e: std::io::Error| Failure::failed("output", format!("--output {shown}: {e}"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let keep = match restored.consume_mark {
            Some(mark) if mark > len => {
                return Err(Failure::failed(
                    "output",
                    format!(
                        "--output {shown} holds {len} bytes, less than the {mark} the store \
                         recorded: it is not the output of this store, or writes to it were lost"
                    ),
                ))
            }
            Some(mark) => mark,
            None if restored.fresh && len > 0 => {
                return Err(Failure::failed(
                    "output",
                    format!(
                        "--output {shown} already holds {len} bytes and the durable store is \
                         new: give a new or empty file (it belongs to its store)"
                    ),
                ))
            }
            None => 0,
        };
        if keep < len {
            tracing::info!(path = %shown, from = len, to = keep, "output cut back to the stored mark");
        }
        file.set_len(keep).map_err(io)?;
        file.seek(SeekFrom::Start(keep)).map_err(io)?;
        Ok(Output {
            file,
            path: path.to_path_buf(),
            len: keep,
        })
    }

    /// Appends `payload` and a newline; returns the file's new length (the mark).
    fn append(&mut self, payload: &[u8]) -> std::io::Result<u64> {
        self.file.write_all(payload)?;
        self.file.write_all(b"\n")?;
        self.len += payload.len() as u64 + 1;
        Ok(self.len)
    }
}

/// What a receiving thread does with each message once printed and appended: consume it
/// (or relay it and consume it), with the output's mark.
pub(crate) type Finish =
    Box<dyn Fn(&DurableDelivery, Option<u64>) -> Result<(), DurableError> + Send>;
/// How a receiving thread waits for the next message.
pub(crate) type Next =
    Box<dyn Fn(Duration) -> Result<Option<DurableDelivery>, DurableError> + Send>;

/// A thread that receives durable messages until stopped: prints each, appends it to the
/// output, and consumes it.
pub(crate) struct Receiver {
    done: Arc<AtomicBool>,
    thread: JoinHandle<Result<(), Failure>>,
}

impl Receiver {
    /// Starts the thread; `seen` runs once for each message handled.
    pub(crate) fn start(
        json: bool,
        mut output: Option<Output>,
        next: Next,
        finish: Finish,
        seen: impl Fn() + Send + 'static,
    ) -> Receiver {
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            let mut batch = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let first = match next(Duration::from_millis(100)) {
                    Ok(Some(d)) => d,
                    Ok(None) => continue,
                    Err(DurableError::Closed) => return Ok(()),
                    Err(e) => return Err(failure(&e)),
                };
                batch.push(first);
                while batch.len() < RECEIVE_BATCH {
                    match next(Duration::ZERO) {
                        Ok(Some(d)) => batch.push(d),
                        _ => break,
                    }
                }
                let mut marks = Vec::with_capacity(batch.len());
                for d in &batch {
                    print_delivery(json, d);
                    let mark = match &mut output {
                        Some(out) => Some(out.append(d.message.payload()).map_err(|e| {
                            Failure::failed("output", format!("{}: {e}", out.path.display()))
                        })?),
                        None => None,
                    };
                    marks.push(mark);
                }
                if let Some(out) = &output {
                    // On disk before the consumes that name its length are stored.
                    out.file.sync_data().map_err(|e| {
                        Failure::failed("output", format!("{}: {e}", out.path.display()))
                    })?;
                }
                for (d, mark) in batch.drain(..).zip(marks) {
                    finish(&d, mark).map_err(|e| failure(&e))?;
                    seen();
                }
            }
            Ok(())
        });
        Receiver { done, thread }
    }

    /// Stops the thread (within one wait) and returns how it ended.
    pub(crate) fn stop(self) -> Result<(), Failure> {
        self.done.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(Failure::failed("durable", "the receiving thread panicked")))
    }
}

/// Where `send --durable` takes its messages from.
pub(crate) enum Source {
    /// These payloads, one message each.
    Payloads(Vec<Vec<u8>>),
    /// One message per line of this file (`-`: stdin), resumed after a restart.
    Lines(PathBuf),
}

/// `pav send --durable STORE`: stores each message (resuming `--lines` at the restored
/// mark), then waits until every message of the store is acknowledged, at most `wait`.
pub(crate) fn send(
    json: bool,
    client: &Client,
    store: &Path,
    target: &str,
    name: &str,
    source: Source,
    wait: Option<Duration>,
) -> Result<(), Failure> {
    let started = Instant::now();
    let restored = client
        .durable_restored()
        .ok_or_else(|| Failure::failed("store", "the durable store is not open"))?;
    if !json {
        print_restored(json, store, &restored);
    }
    let resumed = restored.send_mark.unwrap_or(0);
    let mut stored = 0u64;
    let mut waiting = std::collections::VecDeque::new();
    let mut settle = |waiting: &mut std::collections::VecDeque<_>, keep: usize| {
        while waiting.len() > keep {
            let Some(p): Option<pavillion_std::plumbing::reply::Pending<_>> = waiting.pop_front()
            else {
                break;
            };
            p.wait_outcome(Duration::MAX).map_err(|e| failure(&e))?;
            stored += 1;
        }
        Ok::<_, Failure>(())
    };
    match source {
        Source::Payloads(payloads) => {
            for p in payloads {
                client
                    .send_durable(target, name, &p)
                    .map_err(|e| failure(&e))?;
                stored += 1;
            }
        }
        Source::Lines(path) => {
            let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
                Box::new(BufReader::new(std::io::stdin()))
            } else {
                let f = File::open(&path)
                    .map_err(|e| Failure::input(format!("--lines {}: {e}", path.display())))?;
                Box::new(BufReader::new(f))
            };
            for (i, line) in reader.split(b'\n').enumerate() {
                let line =
                    line.map_err(|e| Failure::input(format!("--lines {}: {e}", path.display())))?;
                let done = i as u64 + 1;
                if done <= resumed {
                    continue;
                }
                let pending = client
                    .queue_durable(target, name, &line, Some(done))
                    .map_err(|e| failure(&e))?;
                waiting.push_back(pending);
                settle(&mut waiting, SEND_WINDOW)?;
            }
            settle(&mut waiting, 0)?;
        }
    }
    let acked = client
        .wait_durable_drained(wait.unwrap_or(Duration::MAX))
        .map_err(|e| failure(&e))?;
    let queued = if acked {
        0
    } else {
        client.durable_queued().map_err(|e| failure(&e))?
    };
    if json {
        println!(
            "{}",
            json!({"ok": acked, "durable": true, "origin": format!("{:016x}", restored.origin.0),
                   "stored": stored, "resumed_after": resumed, "restored_queued": restored.queued,
                   "acknowledged": acked, "queued": queued,
                   "micros": common::micros(started.elapsed())})
        );
    } else {
        let resumed_text = if resumed > 0 {
            format!(" (resumed after line {resumed})")
        } else {
            String::new()
        };
        println!("stored {stored} durable messages{resumed_text}");
        if acked {
            println!("all acknowledged");
        }
    }
    if acked {
        Ok(())
    } else {
        Err(Failure {
            reported: json,
            ..Failure::failed(
                "timeout",
                format!(
                    "{queued} durable messages stored but not acknowledged within --wait; the \
                     next run with this store sends them again"
                ),
            )
        })
    }
}
