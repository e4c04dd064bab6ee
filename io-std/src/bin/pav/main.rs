//! `pav`: the Pavillion command line, built on the blocking adapter.
//!
//! Settings come from flags, then `PAV_*` environment variables, then defaults (and, for
//! `serve`, a configuration file). Output is text by default and one JSON object per line with
//! `--json`. Logs go to stderr through `tracing`; the level is `--log` or `PAV_LOG` (default
//! `warn`).
//!
//! Exit codes: 0 success, 1 a failed operation (timeout, remote error, refused), 2 bad input
//! (unparseable key, address, id or function number; missing credentials; a bad
//! configuration file).
//!
//! `serve` and `listen` run until their `--duration`/`--count` or a signal: Ctrl-C (SIGINT),
//! SIGTERM or SIGHUP shut them down cleanly, so the endpoint sends quit (opcode 12) to its
//! peers, which drop the session at once instead of waiting out a keepalive timeout; the exit
//! code is then 0. The one-shot commands are bounded by `--timeout` and keep the default
//! signal behaviour.
//!
//! One module per subcommand; `keys` holds suites, key files and client credentials,
//! `config` the server's configuration file, `exec` the command handlers of `serve`.
#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::alloc_instead_of_core
)]

mod authority;
#[cfg(feature = "bridge")]
mod bridge;
mod call;
mod common;
mod config;
mod durable;
mod exec;
mod keygen;
mod keys;
mod listen;
mod live;
mod registers;
mod relay;
mod send;
mod serve;
mod time;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "pav",
    version,
    about = "Pavillion over UDP: serve, call, send, listen, get, set, observe",
    after_help = "\
Start here:
  pav keygen --out server && pav keygen --out alice
  pav serve --secret-key-file server/secret.key --client alice/public.key
  pav call 401 hello --secret-key-file alice/secret.key --server-key-file server/public.key

`pav help COMMAND` shows each command's options and examples."
)]
struct Cli {
    /// Print one JSON object per line instead of text.
    #[arg(long, global = true, env = "PAV_JSON")]
    json: bool,
    /// Log filter: error, warn, info, debug, trace, or a tracing filter directive.
    #[arg(long, global = true, env = "PAV_LOG", default_value = "warn")]
    log: String,
    /// Write every datagram this process sends or receives to FILE, a pcapng capture with
    /// real timestamps (open it in Wireshark with wireshark/pavillion.lua; with
    /// PAVILLION_KEYLOGFILE set, the key log decrypts it).
    #[arg(long, global = true, env = "PAV_PCAP", value_name = "FILE")]
    pcap: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make a PSK, an X25519 key pair and a client id from OS randomness (as files with --out).
    #[command(after_help = keygen::AFTER_HELP)]
    Keygen(keygen::KeygenArgs),
    /// Run a server: demo functions, configured commands, and a broker of messages.
    #[command(after_help = serve::AFTER_HELP)]
    Serve(serve::ServeArgs),
    /// Call a function on a server and print the answer (or a latency summary of many calls).
    #[command(after_help = call::AFTER_HELP)]
    Call(call::CallArgs),
    /// Send a message to TARGET/NAME.
    #[command(after_help = send::AFTER_HELP)]
    Send(send::SendArgs),
    /// Subscribe to TARGET at a server and print its messages (every target if omitted).
    #[command(after_help = listen::AFTER_HELP)]
    Listen(listen::ListenArgs),
    /// Show the server's monotonic clock and its offset from ours.
    #[command(after_help = time::AFTER_HELP)]
    Time(time::TimeArgs),
    /// Read a server's register, by number or name.
    #[command(after_help = registers::GET_HELP)]
    Get(registers::GetArgs),
    /// Write a server's register, by number or name.
    #[command(after_help = registers::SET_HELP)]
    Set(registers::SetArgs),
    /// Observe a server's register: one line per change.
    #[command(after_help = registers::OBSERVE_HELP)]
    Observe(registers::ObserveArgs),
    /// Carry UDP broadcasts of some ports between network segments over the relay mesh.
    #[command(after_help = relay::AFTER_HELP)]
    Relay(relay::RelayArgs),
    /// Run a fleet's authority: admit members by policy, publish the signed roster.
    #[command(after_help = authority::AUTHORITY_HELP)]
    Authority(authority::AuthorityArgs),
    /// Join a fleet as a member, and follow its roster.
    #[command(after_help = authority::JOIN_HELP)]
    Join(authority::JoinArgs),
    /// Print a fleet's roster (as an operator or a member).
    #[command(after_help = authority::ROSTER_HELP)]
    Roster(authority::RosterArgs),
    /// Revoke a member of a fleet (as an operator).
    #[command(after_help = authority::REVOKE_HELP)]
    Revoke(authority::RevokeArgs),
    /// Bridge Pavillion devices to an MQTT broker (TOML configuration).
    #[cfg(feature = "bridge")]
    #[command(after_help = bridge::AFTER_HELP)]
    Bridge(bridge::BridgeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(&cli.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: bad log filter {:?}: {e}", cli.log);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let json = cli.json;
    if let Some(path) = &cli.pcap {
        // Before any endpoint opens: the drivers pick the capture up when they start.
        if let Err(e) = pavillion_std::tap::capture_to(path) {
            eprintln!("error: cannot write the capture {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    let result = match cli.command {
        Command::Keygen(a) => keygen::run(json, a),
        Command::Serve(a) => serve::run(json, a),
        Command::Call(a) => call::run(json, a),
        Command::Send(a) => send::run(json, a),
        Command::Listen(a) => listen::run(json, a),
        Command::Time(a) => time::run(json, a),
        Command::Get(a) => registers::get(json, a),
        Command::Set(a) => registers::set(json, a),
        Command::Observe(a) => registers::observe(json, a),
        Command::Relay(a) => relay::run(json, a),
        Command::Authority(a) => authority::authority(json, a),
        Command::Join(a) => authority::join(json, a),
        Command::Roster(a) => authority::roster(json, a),
        Command::Revoke(a) => authority::revoke(json, a),
        #[cfg(feature = "bridge")]
        Command::Bridge(a) => bridge::run(json, a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json && !f.reported {
                println!(
                    "{}",
                    json!({"ok": false, "error": f.kind, "message": f.message})
                );
            }
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
