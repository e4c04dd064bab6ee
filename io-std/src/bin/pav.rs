//! `pav`: the Pavillion command line, built on the blocking adapter.
//!
//! Settings come from flags, then `PAV_*` environment variables, then defaults. Output is text by
//! default and one JSON object per line with `--json`. Logs go to stderr through `tracing`; the
//! level is `--log` or `PAV_LOG` (default `warn`).
//!
//! Exit codes: 0 success, 1 a failed operation (timeout, remote error, refused), 2 bad input
//! (unparseable key, address, id or function number; missing credentials).
//!
//! `serve` and `listen` run until their `--duration`/`--count` or a signal: Ctrl-C (SIGINT),
//! SIGTERM or SIGHUP shut them down cleanly, so the endpoint sends quit (opcode 12) to its
//! peers, which drop the session at once instead of waiting out a keepalive timeout; the exit
//! code is then 0. The one-shot commands are bounded by `--timeout` and keep the default
//! signal behaviour.
#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::alloc_instead_of_core
)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use pavillion_std::keys::{self, ParseError};
use pavillion_std::{
    CallError, Client, ClientConfig, ReceivedMessage, Reliability, ReplySocket, RpcFailure, Server,
    ServerConfig,
};
use serde_json::json;

/// The client id used when none is given with a PSK (16 bytes).
const DEFAULT_CLIENT_ID: &str = "pavillion-client";

#[derive(Parser, Debug)]
#[command(
    name = "pav",
    version,
    about = "Pavillion over UDP: serve, call, send, listen"
)]
struct Cli {
    /// Print one JSON object per line instead of text.
    #[arg(long, global = true, env = "PAV_JSON")]
    json: bool,
    /// Log filter: error, warn, info, debug, trace, or a tracing filter directive.
    #[arg(long, global = true, env = "PAV_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make a PSK and an X25519 key pair from OS randomness.
    Keygen,
    /// Run a server with the demo RPCs; print and forward the messages it gets.
    Serve(ServeArgs),
    /// Call a function on a server and print the answer.
    Call(CallArgs),
    /// Send a message to TARGET/NAME.
    Send(SendArgs),
    /// Print the messages a server sends to TARGET (every target if omitted).
    Listen(ListenArgs),
    /// Show the server's clock and its offset from ours.
    Time(TimeArgs),
}

#[derive(Args, Debug)]
struct Credentials {
    /// Pre-shared key: 64 hex characters, or base64 of 32 bytes.
    #[arg(long, env = "PAV_PSK", value_parser = psk, hide_env_values = true)]
    psk: Option<Psk>,
    /// File holding the PSK: 32 raw bytes, or the hex or base64 text.
    #[arg(long, env = "PAV_PSK_FILE", conflicts_with = "psk")]
    psk_file: Option<PathBuf>,
    /// Client id: 16 bytes of text or 32 hex characters [default: pavillion-client].
    #[arg(long, env = "PAV_CLIENT_ID", value_parser = client_id)]
    client_id: Option<ClientId>,
    /// Our X25519 secret key (64 hex characters), for suite 2 (ECC).
    #[arg(long, env = "PAV_SECRET_KEY", value_parser = secret_key, hide_env_values = true)]
    secret_key: Option<KeyPair>,
}

#[derive(Args, Debug)]
struct ClientArgs {
    /// Server address (port 1783 if omitted); a multicast group reaches every server in it.
    #[arg(long, short, env = "PAV_SERVER", default_value = "127.0.0.1:1783", value_parser = addr)]
    server: SocketAddr,
    /// The server's X25519 public key (64 hex characters), for suite 2.
    #[arg(long, env = "PAV_SERVER_KEY", value_parser = public_key)]
    server_key: Option<PublicKey>,
    /// Seconds to wait for the server (answer, acknowledgement, connection).
    #[arg(long, short, env = "PAV_TIMEOUT", default_value = "2", value_parser = seconds)]
    timeout: Duration,
    /// Local address to bind [default: 0.0.0.0:0].
    #[arg(long, env = "PAV_BIND")]
    bind: Option<SocketAddr>,
    #[command(flatten)]
    credentials: Credentials,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on (port 1783 if omitted).
    #[arg(long, short, env = "PAV_LISTEN", default_value = "0.0.0.0:1783", value_parser = addr)]
    listen: SocketAddr,
    /// Join this multicast group (and announce the server to it).
    #[arg(long, env = "PAV_MULTICAST")]
    multicast: Option<IpAddr>,
    /// Send everything from a second, ephemeral port, as the reference server does (automatic
    /// when --listen is a multicast group address).
    #[arg(long, env = "PAV_REPLY_SOCKET")]
    reply_socket: bool,
    /// Admit suite 2 clients whose key is not configured.
    #[arg(long, env = "PAV_ALLOW_GUESTS")]
    allow_guests: bool,
    /// A suite 2 client, as ID=PUBLICKEY (repeatable).
    #[arg(long = "ecc-client", value_parser = ecc_client)]
    ecc_clients: Vec<(ClientId, PublicKey)>,
    /// Do not forward received messages to the other clients.
    #[arg(long)]
    no_forward: bool,
    /// Stop after this many seconds instead of running until killed.
    #[arg(long, value_parser = seconds)]
    duration: Option<Duration>,
    #[command(flatten)]
    credentials: Credentials,
}

#[derive(Args, Debug)]
struct CallArgs {
    /// Function number (0 to 65535); 0 is echo, 1 a function's name, 401-403 the demo's.
    #[arg(value_parser = function)]
    function: u16,
    /// Argument, as text (or hex with --hex).
    #[arg(default_value = "")]
    args: String,
    /// Read the argument as hex.
    #[arg(long)]
    hex: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Debug)]
struct SendArgs {
    /// Target (topic).
    target: String,
    /// Message name.
    name: String,
    /// Payload, as text (or hex with --hex).
    #[arg(default_value = "")]
    data: String,
    /// Send once without acknowledgement.
    #[arg(long)]
    unreliable: bool,
    /// Read the payload as hex.
    #[arg(long)]
    hex: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Debug)]
struct ListenArgs {
    /// Target to print; every target if omitted.
    target: Option<String>,
    /// Exit after this many messages.
    #[arg(long, short = 'n')]
    count: Option<usize>,
    /// Exit after this many seconds.
    #[arg(long, value_parser = seconds)]
    duration: Option<Duration>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Debug)]
struct TimeArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// A failure to report: exit code 2 for bad input, 1 for a failed operation.
#[derive(Debug)]
struct Failure {
    code: u8,
    kind: &'static str,
    message: String,
    /// Already printed as JSON on stdout.
    reported: bool,
}

impl Failure {
    fn input(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            kind: "bad_input",
            message: message.into(),
            reported: false,
        }
    }

    fn failed(kind: &'static str, message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            kind,
            message: message.into(),
            reported: false,
        }
    }
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
    let result = match cli.command {
        Command::Keygen => keygen(json),
        Command::Serve(a) => serve(json, a),
        Command::Call(a) => call(json, a),
        Command::Send(a) => send(json, a),
        Command::Listen(a) => listen(json, a),
        Command::Time(a) => time(json, a),
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

fn keygen(json: bool) -> Result<(), Failure> {
    let psk = keys::generate_psk();
    let pair = keys::generate_keypair();
    let psk_hex = hex::encode(psk.danger_as_bytes());
    let psk_b64 = keys::psk_base64(&psk);
    let secret = hex::encode(pair.secret().to_bytes());
    let public = hex::encode(pair.public().as_bytes());
    if json {
        println!(
            "{}",
            json!({"psk_hex": psk_hex, "psk_base64": psk_b64, "secret_key": secret, "public_key": public})
        );
    } else {
        println!("psk (hex):    {psk_hex}");
        println!("psk (base64): {psk_b64}");
        println!("secret key:   {secret}");
        println!("public key:   {public}");
    }
    Ok(())
}

fn serve(json: bool, a: ServeArgs) -> Result<(), Failure> {
    let mut config = ServerConfig::new().allow_guests(a.allow_guests);
    let psk = read_psk(&a.credentials)?;
    let id = a.credentials.client_id.unwrap_or(default_id());
    if let Some(psk) = psk {
        config = config.psk_client(id, psk);
    }
    let public = a.credentials.secret_key.as_ref().map(|k| *k.public());
    if let Some(keys) = a.credentials.secret_key {
        config = config.keys(keys);
    }
    for (id, key) in a.ecc_clients {
        config = config.ecc_client(id, key);
    }
    if let Some(group) = a.multicast {
        config = config.multicast(group);
    }
    if a.reply_socket {
        config = config.reply_socket(ReplySocket::Ephemeral);
    }
    let server = Server::bind(a.listen, config)
        .map_err(|e| Failure::failed("bind", format!("cannot serve on {}: {e}", a.listen)))?;
    let server = Arc::new(server);
    register_demo(&server);
    let (tx, inputs) = inputs();
    server.on_message(None, move |m| {
        let _ = tx.send(Input::Message(m.clone()));
    });
    let local = server.local_addr();
    let reply = server.reply_addr().map(|r| r.to_string());
    let public_hex = public.map(|p| hex::encode(p.as_bytes()));
    if json {
        println!(
            "{}",
            json!({"event": "listening", "addr": local.to_string(), "reply_addr": reply, "public_key": public_hex})
        );
    } else {
        println!("listening on {local}");
        if let Some(r) = &reply {
            println!("answering from {r}");
        }
        if let Some(p) = &public_hex {
            println!("public key: {p}");
        }
    }
    let deadline = a.duration.map(|d| Instant::now() + d);
    while let Some(m) = next_message(&inputs, deadline) {
        print_message(json, &m);
        if !a.no_forward {
            forward(&server, m);
        }
    }
    // Quit to every client now, even while a forwarding thread still holds the server.
    server.close();
    print_stopped(json);
    Ok(())
}

/// What the loop of a long-running command waits for.
enum Input {
    Message(ReceivedMessage),
    /// SIGINT, SIGTERM or SIGHUP.
    Stop,
}

/// A channel that message callbacks feed, and that a termination signal ends. `ctrlc` (with
/// its `termination` feature) runs the handler on its own thread, outside the signal context,
/// so the handler can simply send on the channel and let the main thread close the endpoint
/// (which sends quit) before it exits.
fn inputs() -> (mpsc::Sender<Input>, mpsc::Receiver<Input>) {
    let (tx, rx) = mpsc::channel();
    let stop = tx.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = stop.send(Input::Stop);
    }) {
        tracing::warn!(error = %e, "cannot catch signals; they will end pav without a quit");
    }
    (tx, rx)
}

/// The next message, or `None` at the deadline or on a termination signal.
fn next_message(
    inputs: &mpsc::Receiver<Input>,
    deadline: Option<Instant>,
) -> Option<ReceivedMessage> {
    loop {
        let wait = match deadline {
            Some(d) => d.checked_duration_since(Instant::now())?,
            None => Duration::from_secs(3600),
        };
        match inputs.recv_timeout(wait) {
            Ok(Input::Message(m)) => return Some(m),
            Ok(Input::Stop) => {
                tracing::info!("signal received; closing");
                return None;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

fn print_stopped(json: bool) {
    if json {
        println!("{}", json!({"event": "stopped"}));
    } else {
        println!("stopped");
    }
}

/// The demo RPCs: 401 upper-cases, 402 reverses, 403 always fails.
fn register_demo(server: &Server) {
    server.register(401, "upper", |req| {
        Ok::<_, RpcFailure>(req.args.to_ascii_uppercase())
    });
    server.register(402, "reverse", |req| {
        let mut v = req.args.to_vec();
        v.reverse();
        Ok::<_, RpcFailure>(v)
    });
    server.register(403, "fail", |_| {
        Err::<Vec<u8>, _>(RpcFailure::error("this function always fails"))
    });
}

/// Sends `m` on to every client but its sender, from its own thread so that a slow
/// acknowledgement does not hold up the next message.
fn forward(server: &Arc<Server>, m: ReceivedMessage) {
    let server = server.clone();
    std::thread::spawn(move || {
        let reliability = if m.reliable {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        };
        let from = m.from;
        let r = server.send_message(&m.target, &m.name, &m.payload, reliability, move |a, _| {
            a != from
        });
        if let Err(e) = r {
            tracing::warn!(error = %e, "forwarding failed");
        }
    });
}

fn print_message(json: bool, m: &ReceivedMessage) {
    let peer = m.peer.map(|p| p.to_string());
    if json {
        println!(
            "{}",
            json!({
                "event": "message",
                "from": m.from.to_string(),
                "peer": peer,
                "target": m.target,
                "name": m.name,
                "data": String::from_utf8_lossy(&m.payload),
                "data_hex": hex::encode(&m.payload),
                "reliable": m.reliable,
            })
        );
    } else {
        let who = peer.map_or_else(|| m.from.to_string(), |p| format!("{} ({p})", m.from));
        println!("{who} {}/{}: {}", m.target, m.name, show(&m.payload));
    }
}

fn call(json: bool, a: CallArgs) -> Result<(), Failure> {
    let args = bytes_arg(&a.args, a.hex)?;
    let timeout = a.client.timeout;
    let client = connect(&a.client)?;
    let server = client.server_addr();
    match client.call_with_timeout(a.function, &args, timeout) {
        Ok(data) => {
            if json {
                println!(
                    "{}",
                    json!({
                        "ok": true,
                        "function": a.function,
                        "status": 0,
                        "data": String::from_utf8_lossy(&data),
                        "data_hex": hex::encode(&data),
                    })
                );
            } else {
                println!("{}", show(&data));
            }
            Ok(())
        }
        Err(CallError::Remote { status, data }) => {
            if json {
                println!(
                    "{}",
                    json!({
                        "ok": false,
                        "error": "remote",
                        "function": a.function,
                        "status": status.0,
                        "data": String::from_utf8_lossy(&data),
                        "data_hex": hex::encode(&data),
                    })
                );
            }
            Err(Failure {
                code: 1,
                kind: "remote",
                message: format!("remote status {}: {}", status.0, show(&data)),
                reported: json,
            })
        }
        Err(CallError::TimedOut) => Err(Failure::failed(
            "timeout",
            format!("no answer from {server} within {timeout:?}"),
        )),
        Err(e) => Err(Failure::failed("call", e.to_string())),
    }
}

fn send(json: bool, a: SendArgs) -> Result<(), Failure> {
    let data = bytes_arg(&a.data, a.hex)?;
    let reliability = if a.unreliable {
        Reliability::Unreliable
    } else {
        Reliability::Reliable
    };
    let client = connect(&a.client)?;
    let server = client.server_addr();
    if a.unreliable {
        // An unreliable message waits for the session and is sent once; closing before the
        // session is up would drop it unsent.
        client
            .wait_connected(a.client.timeout)
            .map_err(|e| Failure::failed("timeout", format!("no session with {server}: {e}")))?;
    }
    match client.send_message(&a.target, &a.name, &data, reliability) {
        Ok(d) => {
            let acked: Vec<String> = d.acked.iter().map(|a| a.to_string()).collect();
            let missing: Vec<String> = d.missing.iter().map(|a| a.to_string()).collect();
            if json {
                println!(
                    "{}",
                    json!({"ok": true, "reliable": !a.unreliable, "acked": acked, "missing": missing})
                );
            } else if a.unreliable {
                println!("sent (unreliable)");
            } else {
                println!("delivered to {}", acked.join(", "));
                if !missing.is_empty() {
                    println!("not acknowledged by {}", missing.join(", "));
                }
            }
            Ok(())
        }
        Err(pavillion_std::SendError::TimedOut) => Err(Failure::failed(
            "timeout",
            format!(
                "no acknowledgement from {server} within {:?}",
                a.client.timeout
            ),
        )),
        Err(e) => Err(Failure::failed("send", e.to_string())),
    }
}

fn listen(json: bool, a: ListenArgs) -> Result<(), Failure> {
    let client = connect(&a.client)?;
    let server = client
        .wait_connected(a.client.timeout)
        .map_err(|e| Failure::failed("timeout", format!("no session with the server: {e}")))?;
    let (tx, inputs) = inputs();
    client.on_message(a.target.as_deref(), move |m| {
        let _ = tx.send(Input::Message(m.clone()));
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
        let Some(m) = next_message(&inputs, deadline) else {
            print_stopped(json);
            break;
        };
        print_message(json, &m);
        seen += 1;
    }
    // Quit to the server before exiting.
    client.close();
    Ok(())
}

fn time(json: bool, a: TimeArgs) -> Result<(), Failure> {
    let client = connect(&a.client)?;
    let timeout = a.client.timeout;
    let addr = client
        .wait_connected(timeout)
        .map_err(|e| Failure::failed("timeout", format!("no session with the server: {e}")))?;
    let server = client.server(addr);
    let estimate = server
        .sync_time(timeout)
        .map_err(|e| Failure::failed("timeout", format!("no time from {addr}: {e}")))?;
    let remote = server
        .remote_now()
        .map_err(|e| Failure::failed("time", e.to_string()))?;
    let rtt = estimate.round_trip.map(|d| d.as_micros() as u64);
    if json {
        println!(
            "{}",
            json!({
                "server": addr.to_string(),
                "remote_now_us": remote.as_micros(),
                "offset_us": estimate.offset_micros,
                "round_trip_us": rtt,
            })
        );
    } else {
        println!("server {addr}");
        println!("remote clock: {remote}");
        println!(
            "offset:       {} µs (remote minus local)",
            estimate.offset_micros
        );
        if let Some(r) = rtt {
            println!("round trip:   {r} µs (the offset is within half of it)");
        }
    }
    Ok(())
}

/// Opens a client with the credentials the arguments give.
fn connect(a: &ClientArgs) -> Result<Client, Failure> {
    let c = &a.credentials;
    let mut config = match (&c.secret_key, a.server_key, read_psk(c)?) {
        (Some(keys), Some(server), _) => match c.client_id {
            Some(id) => ClientConfig::ecc(id, keys.clone(), server),
            None => ClientConfig::guest(keys.clone(), server),
        },
        (Some(_), None, _) => {
            return Err(Failure::input(
                "--secret-key needs the server's public key (--server-key)",
            ))
        }
        (None, _, Some(psk)) => ClientConfig::psk(c.client_id.unwrap_or(default_id()), psk),
        (None, _, None) => {
            return Err(Failure::input(
                "no credentials: give --psk (or --psk-file), or --secret-key with --server-key",
            ))
        }
    };
    config = config.call_timeout(a.timeout).send_timeout(a.timeout);
    if let Some(b) = a.bind {
        config = config.bind(b);
    }
    Client::connect(a.server, config)
        .map_err(|e| Failure::failed("socket", format!("cannot open a client socket: {e}")))
}

fn read_psk(c: &Credentials) -> Result<Option<Psk>, Failure> {
    if let Some(p) = &c.psk {
        return Ok(Some(p.clone()));
    }
    let Some(path) = &c.psk_file else {
        return Ok(None);
    };
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))?;
    keys::psk_from_file_bytes(&bytes)
        .map(Some)
        .map_err(|e| Failure::input(format!("{}: {e}", path.display())))
}

fn default_id() -> ClientId {
    let mut id = [0; 16];
    id.copy_from_slice(DEFAULT_CLIENT_ID.as_bytes());
    ClientId(id)
}

fn bytes_arg(text: &str, is_hex: bool) -> Result<Vec<u8>, Failure> {
    if is_hex {
        hex::decode(text).map_err(|e| Failure::input(format!("bad hex {text:?}: {e}")))
    } else {
        Ok(text.as_bytes().to_vec())
    }
}

/// Text if the bytes are UTF-8, hex otherwise.
fn show(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("0x{}", hex::encode(data)),
    }
}

// Value parsers: each gives clap a clear message, and clap exits with status 2.

fn psk(s: &str) -> Result<Psk, ParseError> {
    keys::parse_psk(s)
}

fn client_id(s: &str) -> Result<ClientId, ParseError> {
    keys::parse_client_id(s)
}

fn secret_key(s: &str) -> Result<KeyPair, ParseError> {
    keys::parse_secret_key(s)
}

fn public_key(s: &str) -> Result<PublicKey, ParseError> {
    keys::parse_public_key(s)
}

fn addr(s: &str) -> Result<SocketAddr, ParseError> {
    keys::parse_addr(s)
}

fn function(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .map_err(|_| format!("function number must be 0 to 65535, not {s:?}"))
}

fn seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("expected seconds, not {s:?}"))
}

fn ecc_client(s: &str) -> Result<(ClientId, PublicKey), String> {
    let (id, key) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=PUBLICKEY, not {s:?}"))?;
    Ok((
        keys::parse_client_id(id).map_err(|e| e.to_string())?,
        keys::parse_public_key(key).map_err(|e| e.to_string())?,
    ))
}
