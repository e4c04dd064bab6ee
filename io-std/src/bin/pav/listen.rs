//! `pav listen`: print the messages a server sends to a target.

use std::time::{Duration, Instant};

use clap::Args;
use pavillion_std::ReceivedMessage;
use serde_json::json;

use crate::common::{self, next_input, print_message, print_stopped, Ended, Failure, Input};
use crate::keys::ClientArgs;

#[derive(Args, Debug)]
pub(crate) struct ListenArgs {
    /// Target to subscribe to and print; every target if omitted.
    target: Option<String>,
    /// Exit after this many messages.
    #[arg(long, short = 'n')]
    count: Option<usize>,
    /// Exit after this many seconds.
    #[arg(long, value_parser = common::seconds)]
    duration: Option<Duration>,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) const AFTER_HELP: &str = "\
Examples:
  pav listen kitchen --psk-file alice/psk --client-id alice-sensor-001
  pav listen kitchen --secret-key-file alice/secret.key --server-key-file server/public.key
  pav --json listen alerts -s 239.255.28.12 --psk-file alice/psk -n 1   # first alert, as JSON
  pav listen kitchen --duration 60 --psk-file alice/psk";

pub(crate) fn run(json: bool, a: ListenArgs) -> Result<(), Failure> {
    let client = a.client.connect()?;
    let server = client
        .wait_connected(a.client.timeout)
        .map_err(|e| Failure::failed("timeout", format!("no session with the server: {e}")))?;
    let (tx, inputs) = common::inputs::<ReceivedMessage>();
    client.on_message(a.target.as_deref(), move |m| {
        let _ = tx.send(Input::Item(m.clone()));
    });
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
    let deadline = a.duration.map(|d| Instant::now() + d);
    let mut seen = 0;
    while a.count.is_none_or(|n| seen < n) {
        match next_input(&inputs, deadline, None) {
            Ok(m) => {
                print_message(json, &m);
                seen += 1;
            }
            Err(Ended::Tick) => {}
            Err(Ended::Deadline | Ended::Stopped) => {
                print_stopped(json);
                break;
            }
        }
    }
    // Quit to the server before exiting.
    client.close();
    Ok(())
}
