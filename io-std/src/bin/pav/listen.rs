//! `pav listen`: subscribe to a target at the server and print its messages, and say when
//! the server goes down and comes back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use pavillion_proto::endpoint::Limits;
use pavillion_std::{CloseReason, ConnectionEvent, ReceivedMessage};
use serde_json::json;

use crate::common::{self, next_input, print_message, print_stopped, Ended, Failure, Input};
use crate::durable;
use crate::keys::ClientArgs;

#[derive(Args, Debug)]
pub(crate) struct ListenArgs {
    /// Target to subscribe to at the server and print. Without it nothing is subscribed, and
    /// pav prints what servers send to this client of their own accord.
    target: Option<String>,
    /// Exit after this many messages.
    #[arg(long, short = 'n')]
    count: Option<usize>,
    /// Exit after this many seconds.
    #[arg(long, value_parser = common::seconds)]
    duration: Option<Duration>,
    /// Exit with code 1 when the server goes down (it quit, or stopped answering) instead of
    /// waiting for it to come back.
    #[arg(long)]
    exit_on_disconnect: bool,
    /// Seconds of silence after which the server counts as down (keepalives go out three
    /// times as often) [default: 40, with keepalives every 30].
    #[arg(long, value_name = "SECS", value_parser = common::seconds)]
    down_timeout: Option<Duration>,
    /// Receive the server's durable messages (a broker forwards durable messages of the
    /// target to it), exactly once across restarts: kept in the store file STORE (made if
    /// missing) until handled. They count for --count.
    #[arg(long, value_name = "STORE", env = "PAV_DURABLE")]
    durable: Option<PathBuf>,
    /// With --durable: append each durable message (and a newline) to FILE, exactly once
    /// across kill -9 and restarts; the file belongs to the store.
    #[arg(long, value_name = "FILE", requires = "durable")]
    output: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) const AFTER_HELP: &str = "\
Examples:
  pav listen kitchen --psk-file alice/psk --client-id alice-sensor-001
  pav listen kitchen --secret-key-file alice/secret.key --server-key-file server/public.key
  pav --json listen alerts -s 239.255.28.12 --psk-file alice/psk -n 1   # first alert, as JSON
  pav listen kitchen --duration 60 --down-timeout 5 --psk-file alice/psk
  pav listen kitchen --exit-on-disconnect --psk-file alice/psk || echo \"server lost\"
  pav --json listen ota --max-message 64M --psk-file alice/psk -n 1   # a large file, whole
  pav listen alerts --durable alice.redb --output alerts.txt --psk-file alice/psk   # exactly once

pav subscribes to TARGET at the server (at one server of a multicast group, moving to another
when it goes down), so a `pav serve` broker forwards that target's messages to it, once. When
the server quits or stops answering, pav prints a line saying so, and another when it is back
(it reconnects by itself); with --exit-on-disconnect it exits with code 1 instead.
Messages larger than a datagram arrive whole, up to --max-message (1M by default);
from 64 KiB on, text output shows their size, and --json their bytes.
With --durable STORE, the server's durable messages (a `pav serve --durable` broker forwards
those of TARGET) are stored before they are acknowledged, printed, and with --output FILE
appended to FILE, each exactly once however often pav is killed and restarted.";

/// What the loop hears.
enum Heard {
    Message(ReceivedMessage),
    Connection(ConnectionEvent),
    /// A durable message was handled (printed by the receiving thread).
    Durable,
}

pub(crate) fn run(json: bool, a: ListenArgs) -> Result<(), Failure> {
    let down = a.down_timeout;
    let store = a.durable.clone();
    let client = a.client.connect_with(|c| {
        let c = match &store {
            Some(s) => c.durable(s),
            None => c,
        };
        match down {
            Some(d) => c
                .limits(Limits {
                    down_timeout: d,
                    ..Limits::default()
                })
                .keepalive(Some(d / 3)),
            None => c,
        }
    })?;
    let client = Arc::new(client);
    let server = client
        .wait_connected(a.client.timeout)
        .map_err(|e| Failure::failed("timeout", format!("no session with the server: {e}")))?;
    let (tx, inputs) = common::inputs::<Heard>();
    let events = tx.clone();
    let durable_tx = tx.clone();
    client.on_message(a.target.as_deref(), move |m| {
        let _ = tx.send(Input::Item(Heard::Message(m.clone())));
    });
    client.on_connection(move |e| {
        let _ = events.send(Input::Item(Heard::Connection(e.clone())));
    });
    if let Some(t) = &a.target {
        if let Err(e) = client.subscribe(t) {
            return Err(Failure::failed(
                "subscribe",
                format!("cannot subscribe to {t:?}: {e}"),
            ));
        }
        // `listening` promises that messages to the target now reach us: wait until a server
        // acknowledged the subscription, within --timeout (a server that never acknowledges
        // one, such as the reference's, only delays the line; the subscription is retried).
        let until = Instant::now() + a.client.timeout;
        while client.subscribed_at(t).is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if json {
        println!(
            "{}",
            json!({"event": "listening", "server": server.to_string(), "target": a.target})
        );
    } else {
        println!(
            "listening to {} on {server}",
            a.target.as_deref().unwrap_or("every target")
        );
    }
    let receiver = match (&a.durable, client.durable_restored()) {
        (Some(store), Some(restored)) => {
            durable::print_restored(json, store, &restored);
            let output = a
                .output
                .as_deref()
                .map(|f| durable::Output::open(f, &restored))
                .transpose()?;
            let (next, finish, seen) = (client.clone(), client.clone(), durable_tx);
            Some(durable::Receiver::start(
                json,
                output,
                Box::new(move |t| next.recv_durable(t)),
                Box::new(move |d, mark| finish.consume_durable(d, mark).map(|_| ())),
                move || {
                    let _ = seen.send(Input::Item(Heard::Durable));
                },
            ))
        }
        _ => None,
    };
    // Which servers are up: a line for each change after the start.
    let mut up: HashMap<SocketAddr, bool> = HashMap::from([(server, true)]);
    let deadline = a.duration.map(|d| Instant::now() + d);
    let mut seen = 0;
    let mut lost = None;
    while a.count.is_none_or(|n| seen < n) {
        match next_input(&inputs, deadline, None) {
            Ok(Heard::Message(m)) => {
                print_message(json, &m);
                seen += 1;
            }
            Ok(Heard::Durable) => seen += 1,
            Ok(Heard::Connection(e)) => {
                if let Some(addr) = connection(json, &mut up, &e) {
                    if a.exit_on_disconnect {
                        lost = Some(addr);
                        break;
                    }
                }
            }
            Err(Ended::Tick) => {}
            Err(Ended::Deadline | Ended::Stopped) => {
                print_stopped(json);
                break;
            }
        }
    }
    let received = receiver.map(durable::Receiver::stop).transpose();
    // Quit to the server before exiting (and let the store's last writes finish).
    drop(client);
    received?;
    match lost {
        Some(addr) => Err(Failure::failed(
            "disconnected",
            format!("server {addr} went down (--exit-on-disconnect)"),
        )),
        None => Ok(()),
    }
}

/// Prints a line for a server that went down or came back; returns the server that went
/// down, if one did.
fn connection(
    json: bool,
    up: &mut HashMap<SocketAddr, bool>,
    e: &ConnectionEvent,
) -> Option<SocketAddr> {
    let (addr, now_up, why) = match e {
        ConnectionEvent::Connected { addr, .. } => (*addr, true, ""),
        ConnectionEvent::PeerUp { addr } => (*addr, true, ""),
        ConnectionEvent::Disconnected { addr, reason } => {
            let why = match reason {
                CloseReason::PeerClosed => "quit",
                CloseReason::LocallyClosed => "closed",
                CloseReason::Unconfirmed => "unconfirmed",
                _ => "ended",
            };
            (*addr, false, why)
        }
        ConnectionEvent::PeerDown { addr } => (*addr, false, "silent"),
        _ => return None,
    };
    let was = up.insert(addr, now_up);
    if was == Some(now_up) {
        return None;
    }
    if json {
        let event = if now_up { "server_up" } else { "server_down" };
        let mut v = json!({"event": event, "server": addr.to_string()});
        if !now_up {
            v["reason"] = json!(why);
        }
        println!("{v}");
    } else if now_up && was.is_none() {
        println!("server {addr} up");
    } else if now_up {
        println!("server {addr} is back");
    } else {
        let text = match why {
            "silent" => "is down: it stopped answering",
            "quit" => "is down: it quit",
            "unconfirmed" => "is down: it never confirmed the session",
            _ => "is down: the session ended",
        };
        println!("server {addr} {text}");
    }
    (!now_up).then_some(addr)
}
