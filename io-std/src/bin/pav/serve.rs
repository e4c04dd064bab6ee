//! `pav serve`: a server with the demo functions and configured commands, and a broker of
//! the messages its clients send.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use pavillion_std::{
    keys as std_keys, CloseReason, ConnectionEvent, ReceivedMessage, Reliability, ReplySocket,
    RpcFailure, Server, ServerConfig,
};
use serde_json::json;

use crate::common::{self, next_input, print_message, print_stopped, Ended, Failure, Input};
use crate::config::{self, ClientKey};
use crate::durable;
use crate::exec::{self, ExecSpec};
use crate::keys::{self, Credentials, Suite};
use crate::live;
use crate::registers;

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Server configuration file (TOML: clients, keys, listen address, suites, commands); the
    /// flags add to it and override its settings.
    #[arg(long, short, env = "PAV_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (port 1783 if omitted) [default: 0.0.0.0:1783].
    #[arg(long, short, env = "PAV_LISTEN", value_parser = keys::addr)]
    listen: Option<SocketAddr>,
    /// The suites to serve, checked against the credentials at start (repeatable, or
    /// comma-separated: psk, ecc, noise) [default: every suite the credentials allow].
    #[arg(long, env = "PAV_SUITE", value_parser = keys::suite, value_delimiter = ',')]
    suite: Vec<Suite>,
    /// A client: ID=KEYFILE, with a PSK or public key file from `pav keygen --out`; or only
    /// the public key file, for the id the client derives from it by default (repeatable).
    #[arg(long = "client", value_parser = config::client_flag)]
    clients: Vec<(Option<ClientId>, PathBuf)>,
    /// A suite 2 or 3 client, as ID=PUBLICKEY with the key in hex (repeatable).
    #[arg(long = "ecc-client", value_parser = ecc_client)]
    ecc_clients: Vec<(ClientId, PublicKey)>,
    /// Admit clients of suites 2 and 3 whose key is not configured (guests). Without a server
    /// key, a fresh one is made for this run and printed.
    #[arg(long, env = "PAV_ALLOW_GUESTS")]
    allow_guests: bool,
    /// Join this multicast group (and announce the server to it).
    #[arg(long, env = "PAV_MULTICAST")]
    multicast: Option<IpAddr>,
    /// Send everything from a second, ephemeral port, as the reference server does (automatic
    /// when --listen is a multicast group address).
    #[arg(long, env = "PAV_REPLY_SOCKET")]
    reply_socket: bool,
    /// Announce to every client that this server takes TARGET (repeatable). A client sending
    /// to TARGET then expects this server's acknowledgement, so a send to a multicast group of
    /// brokers lists each of them. The server receives every target either way.
    #[arg(long = "target", value_name = "TARGET")]
    targets: Vec<String>,
    /// Do not forward received messages to the clients subscribed to their target.
    #[arg(long, conflicts_with = "forward_all")]
    no_forward: bool,
    /// Forward every message to every other client, subscribed or not: for clients that
    /// cannot subscribe, such as the reference implementation's. Do not use it with several
    /// brokers on one group (each would deliver every message).
    #[arg(long)]
    forward_all: bool,
    /// Run COMMAND as the handler of function FN: the call's argument on its stdin, its
    /// stdout the answer; no shell (COMMAND is split into words once, at start) (repeatable).
    #[arg(long = "exec", value_name = "FN=COMMAND", value_parser = exec::flag)]
    execs: Vec<ExecSpec>,
    /// Seconds a command may run, counted from the call's arrival; it is then killed and the
    /// call answered with an error [default: 2, the reference client's call deadline].
    #[arg(long, value_parser = common::seconds)]
    exec_timeout: Option<Duration>,
    /// Most commands running at once; more calls wait in a short queue, then get `busy`
    /// [default: 4].
    #[arg(long, value_parser = common::count)]
    exec_max: Option<usize>,
    /// Declare a register clients may read, observe and (with `:rw`) write:
    /// `NUM:NAME:TYPE[:UNIT][:rw]=VALUE`, TYPE one of bool, i64, u64, f32, f64, text, bytes
    /// (repeatable). Clients' writes are printed.
    #[arg(long = "register", value_name = "SPEC", value_parser = registers::register_flag)]
    registers: Vec<registers::RegisterSpec>,
    /// Print the server's counters (datagrams, handshakes, retransmissions, drops by reason,
    /// RTT percentiles) every SECS seconds and on exit; one JSON object per line with --json.
    #[arg(long, value_name = "SECS", value_parser = positive_seconds)]
    stats: Option<Duration>,
    #[arg(long, value_name = "ADDR", value_parser = live::metrics_addr, help = live::METRICS_HELP)]
    metrics: Option<SocketAddr>,
    /// Largest message, call argument or answer to accept or send, such as 16M (at most 64M);
    /// larger than a datagram travels in segments [default: 1M]. The reassembly budget grows to
    /// hold at least one such message.
    #[arg(long, env = "PAV_MAX_MESSAGE", value_name = "SIZE", value_parser = common::size)]
    max_message: Option<usize>,
    /// Bytes of partly received large messages all clients together may make the server
    /// hold, such as 64M [default: 16M, or --max-message if larger]; one client may hold up to
    /// --max-message (2M at least). What does not fit is refused, and the sender told why.
    #[arg(long, env = "PAV_REASSEMBLY_BUDGET", value_name = "SIZE", value_parser = common::size)]
    reassembly_budget: Option<usize>,
    /// Stop after this many seconds instead of running until killed.
    #[arg(long, value_parser = common::seconds)]
    duration: Option<Duration>,
    /// Receive durable messages (`pav send --durable`), exactly once across restarts: what
    /// is received is kept in the store file STORE (made if missing) until handled. As a
    /// broker, forward them durably to the subscribers of their target.
    #[arg(long, value_name = "STORE", env = "PAV_DURABLE")]
    durable: Option<PathBuf>,
    /// With --durable: append each durable message (and a newline) to FILE, exactly once
    /// across kill -9 and restarts; the file belongs to the store.
    #[arg(long, value_name = "FILE", requires = "durable")]
    output: Option<PathBuf>,
    #[command(flatten)]
    credentials: Credentials,
}

fn positive_seconds(s: &str) -> Result<Duration, String> {
    let d = common::seconds(s)?;
    if d.is_zero() {
        return Err(format!("expected seconds above 0, not {s:?}"));
    }
    Ok(d)
}

pub(crate) const AFTER_HELP: &str = "\
Examples:
  pav serve --psk-file alice/psk --client-id alice-sensor-001
  pav serve --secret-key-file server/secret.key --client alice/public.key --client bob/public.key
  pav serve --config pav.toml
  pav serve --allow-guests                       # anyone who knows the printed public key
  pav serve --config pav.toml --exec '500=/usr/bin/sensors -j' --exec-timeout 5
  pav --json serve --config pav.toml --stats 10   # counters every 10 s and on exit, as JSON
  pav serve --listen 239.255.28.12:1783 --target kitchen --psk-file alice/psk --client-id alice-sensor-001
  pav serve --psk-file alice/psk --max-message 64M   # files from `pav send --file`
  pav serve --psk-file alice/psk --register '1:temp:f32:C=20.5' --register '2:setpoint:f32:C:rw=21'
  pav serve --psk-file alice/psk --durable server.redb --output readings.txt   # exactly once

As a broker, the server prints every message it gets and forwards it to the clients that
subscribed to its target (`pav listen TARGET`), except its sender; --no-forward turns that off,
and --forward-all sends every message to every client (for clients that cannot subscribe, such
as the reference implementation's).
Several brokers may share a multicast group: a listener subscribes at one of them, so it gets
each message once; with --target, a send to the group lists every broker that acknowledged.

Demo functions: 401 echoes its argument (as the reference's demo does), 402 reverses it,
403 always fails, 404 upper-cases. 0 (echo) and 1 (a function's name) are the protocol's own.

A configuration file (TOML):
  listen = \"0.0.0.0:1783\"
  suite = [\"psk\", \"noise\"]
  secret_key_file = \"server/secret.key\"
  [[client]]
  id = \"alice-sensor-001\"
  psk_file = \"alice/psk\"
  [[client]]
  public_key_file = \"bob/public.key\"
  id_file = \"bob/client.id\"
  [[exec]]
  function = 500
  command = [\"/usr/bin/sensors\", \"-j\"]

Registers (--register NUM:NAME:TYPE[:UNIT][:rw]=VALUE) are read with `pav get`, written with
`pav set` (only those marked rw) and watched with `pav observe`; each client write is printed.

With --durable STORE, durable messages (`pav send --durable`) are stored before they are
acknowledged, printed, and with --output FILE appended to FILE: each exactly once, however
often either side is killed and restarted (FILE is cut back at start to what STORE recorded).
As a broker the server forwards each durable message to the subscribers of its target,
durably, in the same commit that marks it handled.

A server that would admit nobody refuses to start; add clients, or pass --allow-guests.";

/// The demo functions: 401 echoes (as the reference's demo does), 402 reverses, 403 always
/// fails, 404 upper-cases.
fn register_demo(server: &Server) {
    server.register(401, "echo", |req| Ok::<_, RpcFailure>(req.args.clone()));
    server.register(402, "reverse", |req| {
        let mut v = req.args.to_vec();
        v.reverse();
        Ok::<_, RpcFailure>(v)
    });
    server.register(403, "fail", |_| {
        Err::<Vec<u8>, _>(RpcFailure::error("this function always fails"))
    });
    server.register(404, "upper", |req| {
        Ok::<_, RpcFailure>(req.args.to_ascii_uppercase())
    });
}

/// What the server's loop hears.
enum Heard {
    Message(ReceivedMessage),
    Connection(ConnectionEvent),
    Written(pavillion_std::RegisterWrite),
}

/// A line for a client that connected, left, went silent or came back.
fn print_connection(json: bool, e: &ConnectionEvent) {
    let (event, addr, peer, detail) = match e {
        ConnectionEvent::Connected { addr, peer } => ("client_connected", addr, *peer, ""),
        ConnectionEvent::Disconnected { addr, reason } => (
            "client_disconnected",
            addr,
            None,
            match reason {
                CloseReason::PeerClosed => "quit",
                CloseReason::LocallyClosed => "closed",
                _ => "ended",
            },
        ),
        ConnectionEvent::PeerDown { addr } => ("client_down", addr, None, "silent"),
        ConnectionEvent::PeerUp { addr } => ("client_up", addr, None, ""),
        _ => return,
    };
    if json {
        let mut v = json!({"event": event, "addr": addr.to_string()});
        if let Some(p) = peer {
            v["peer"] = json!(p.to_string());
        }
        if !detail.is_empty() {
            v["reason"] = json!(detail);
        }
        println!("{v}");
    } else {
        let who = peer.map_or_else(|| addr.to_string(), |p| format!("{addr} ({p})"));
        let what = match event {
            "client_connected" => "connected".to_owned(),
            "client_disconnected" => format!("disconnected ({detail})"),
            "client_down" => "stopped answering".to_owned(),
            _ => "is back".to_owned(),
        };
        println!("client {who} {what}");
    }
}

/// Whom a received message is forwarded to (never back to its sender).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Forward {
    Nobody,
    /// The clients subscribed to its target.
    Subscribers,
    /// Every client.
    Everyone,
}

/// The credentials and settings of a server, from the file and the flags.
struct Plan {
    config: ServerConfig,
    listen: SocketAddr,
    public: Option<PublicKey>,
    /// The key was made for this run.
    ephemeral_key: bool,
    suites: Vec<Suite>,
    psk_clients: usize,
    key_clients: usize,
    guests: bool,
    forward: Forward,
    execs: Vec<ExecSpec>,
    targets: Vec<String>,
    registers: Vec<registers::RegisterSpec>,
    exec_timeout: Duration,
    exec_max: usize,
    durable: Option<PathBuf>,
    output: Option<PathBuf>,
}

fn plan(a: ServeArgs) -> Result<Plan, Failure> {
    let file = match &a.config {
        Some(path) => config::load(path)?,
        None => config::ServerFile::default(),
    };
    let asked: Option<Vec<Suite>> = if a.suite.is_empty() {
        file.suites.clone()
    } else {
        Some(a.suite.clone())
    };
    let mut psk_clients: Vec<(ClientId, Psk)> = file.psk_clients;
    let mut key_clients: Vec<(ClientId, PublicKey)> = file.key_clients;
    if let Some(psk) = a.credentials.psk()? {
        psk_clients.push((
            a.credentials.client_id()?.unwrap_or_else(keys::default_id),
            psk,
        ));
    }
    for (id, path) in &a.clients {
        match config::client_key(*id, path, asked.as_deref())? {
            ClientKey::Psk(psk) => {
                let id = id.ok_or_else(|| {
                    Failure::input(format!(
                        "--client {}: a PSK client needs an id: --client ID={}",
                        path.display(),
                        path.display()
                    ))
                })?;
                psk_clients.push((id, psk));
            }
            ClientKey::Public(key) => key_clients.push((
                id.unwrap_or_else(|| pavillion_proto::crypto::ecc::default_client_id(&key)),
                key,
            )),
        }
    }
    key_clients.extend(a.ecc_clients.iter().copied());
    let guests = a.allow_guests || file.allow_guests.unwrap_or(false);
    let mut server_keys: Option<KeyPair> = a.credentials.secret_key()?.or(file.keys);
    let mut ephemeral_key = false;

    if psk_clients.is_empty() && key_clients.is_empty() && !guests {
        return Err(Failure::input(
            "no credentials: this server would admit nobody, so it does not start. Add clients \
             with --client ID=KEYFILE (a PSK or public key file from `pav keygen --out DIR`), \
             --psk/--psk-file with --client-id, or [[client]] entries in --config FILE; or pass \
             --allow-guests to admit any client that knows the server's public key",
        ));
    }
    if !key_clients.is_empty() && server_keys.is_none() {
        return Err(Failure::input(
            "clients with public keys (suites 2 and 3) need the server's own key pair: \
             --secret-key-file FILE (from `pav keygen --out DIR`) or secret_key_file in --config",
        ));
    }
    if guests && server_keys.is_none() {
        server_keys = Some(std_keys::generate_keypair());
        ephemeral_key = true;
    }
    // What the credentials allow: suite 1 and NNpsk0 with PSK clients, suites 2 and 3 with a
    // key pair and known keys or guests.
    let keyed = server_keys.is_some() && (!key_clients.is_empty() || guests);
    let mut possible = Vec::new();
    if !psk_clients.is_empty() {
        possible.push(Suite::Psk);
    }
    if keyed {
        possible.push(Suite::Ecc);
    }
    if keyed || !psk_clients.is_empty() {
        possible.push(Suite::Noise);
    }
    let suites = match asked {
        Some(mut want) => {
            want.sort();
            want.dedup();
            if let Some(s) = want.iter().find(|s| !possible.contains(s)) {
                return Err(Failure::input(match s {
                    Suite::Psk => "--suite psk needs PSK clients: --client ID=PSKFILE, \
                                   --psk-file with --client-id, or psk/psk_file in a [[client]]"
                        .to_owned(),
                    _ => format!(
                        "--suite {s} needs the server's key pair (--secret-key-file) and clients \
                         with public keys (--client KEYFILE, public_key_file in a [[client]]) or \
                         --allow-guests"
                    ),
                }));
            }
            want
        }
        None => possible,
    };

    let mut config = ServerConfig::new().allow_guests(guests);
    for (id, psk) in &psk_clients {
        config = config.psk_client(*id, psk.clone());
    }
    for (id, key) in &key_clients {
        config = config.ecc_client(*id, *key);
    }
    let public = server_keys.as_ref().map(|k| *k.public());
    if let Some(k) = server_keys {
        config = config.keys(k);
    }
    if let Some(group) = a.multicast.or(file.multicast) {
        config = config.multicast(group);
    }
    if a.reply_socket || file.reply_socket.unwrap_or(false) {
        config = config.reply_socket(ReplySocket::Ephemeral);
    }
    if let Some(max) = a.max_message {
        config = config.max_message(max);
    }
    if let Some(total) = a.reassembly_budget {
        let per_peer = config.max_message_size().max(2 << 20).min(total);
        config = config.reassembly_budget(per_peer, total);
    }
    if let Some(store) = &a.durable {
        config = config.durable(store);
    }
    let mut execs = file.execs;
    execs.extend(a.execs);
    let mut targets = file.targets;
    targets.extend(a.targets);
    Ok(Plan {
        config,
        listen: a
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], pavillion_std::DEFAULT_PORT))),
        public,
        ephemeral_key,
        suites,
        psk_clients: psk_clients.len(),
        key_clients: key_clients.len(),
        guests,
        forward: match (
            a.no_forward,
            a.forward_all || file.forward_all.unwrap_or(false),
        ) {
            (true, _) => Forward::Nobody,
            (false, true) => Forward::Everyone,
            (false, false) if file.forward == Some(false) => Forward::Nobody,
            (false, false) => Forward::Subscribers,
        },
        execs,
        targets,
        registers: a.registers,
        exec_timeout: a
            .exec_timeout
            .or(file.exec_timeout)
            .unwrap_or(exec::DEFAULT_TIMEOUT),
        exec_max: a.exec_max.or(file.exec_max).unwrap_or(exec::DEFAULT_MAX),
        durable: a.durable,
        output: a.output,
    })
}

pub(crate) fn run(json: bool, a: ServeArgs) -> Result<(), Failure> {
    let duration = a.duration;
    let stats = a.stats;
    let metrics = a.metrics;
    let p = plan(a)?;
    let max_message = p.config.max_message_size();
    let (tx, inputs) = common::inputs::<Heard>();
    let events = tx.clone();
    let writes = tx.clone();
    // Everything is registered before the first datagram is handled, so that even a client
    // that calls at once finds every function.
    let server = Server::bind_with(p.listen, p.config, |server| {
        register_demo(server);
        exec::register(server, &p.execs, p.exec_timeout, p.exec_max, max_message);
        server.on_message(None, move |m| {
            let _ = tx.send(Input::Item(Heard::Message(m.clone())));
        });
        server.on_connection(move |e| {
            let _ = events.send(Input::Item(Heard::Connection(e.clone())));
        });
        // A callback for a named target is what announces it (op 13) to every client; the
        // one above already handles every message.
        for t in &p.targets {
            server.on_message(Some(t), |_| {});
        }
    })
    .map_err(|e| match e {
        pavillion_std::OpenError::Durable(e) => durable::failure(&e),
        e => Failure::failed("bind", format!("cannot serve on {}: {e}", p.listen)),
    })?;
    registers::declare(&server, &p.registers)?;
    server.on_register_write(move |w| {
        let _ = writes.send(Input::Item(Heard::Written(w.clone())));
    });
    let server = Arc::new(server);
    let _exporter = metrics
        .map(|addr| live::start_metrics(addr, |addr| server.serve_metrics(addr)))
        .transpose()?;
    let local = server.local_addr();
    let reply = server.reply_addr().map(|r| r.to_string());
    let public_hex = p.public.map(|k| hex::encode(k.as_bytes()));
    let suites: Vec<&str> = p.suites.iter().map(|s| s.name()).collect();
    let execs: Vec<_> = p
        .execs
        .iter()
        .map(|e| json!({"function": e.function, "command": e.display()}))
        .collect();
    if p.ephemeral_key {
        tracing::warn!("no server key configured: using a fresh one for this run only");
    }
    if json {
        println!(
            "{}",
            json!({"event": "listening", "addr": local.to_string(), "reply_addr": reply,
                   "public_key": public_hex, "ephemeral_key": p.ephemeral_key, "suites": suites,
                   "psk_clients": p.psk_clients, "key_clients": p.key_clients,
                   "guests": p.guests, "exec": execs, "targets": p.targets})
        );
    } else {
        println!("listening on {local}");
        if let Some(r) = &reply {
            println!("answering from {r}");
        }
        if let Some(k) = &public_hex {
            let note = if p.ephemeral_key {
                " (made for this run: clients need it as --server-key)"
            } else {
                ""
            };
            println!("public key: {k}{note}");
        }
        println!(
            "suites: {}; clients: {} with a PSK, {} with a public key{}",
            suites.join(", "),
            p.psk_clients,
            p.key_clients,
            if p.guests { ", guests admitted" } else { "" }
        );
        for e in &p.execs {
            println!("function {} runs {}", e.function, e.display());
        }
        if !p.targets.is_empty() {
            println!("announces targets: {}", p.targets.join(", "));
        }
    }
    let receiver = match (&p.durable, server.durable_restored()) {
        (Some(store), Some(restored)) => {
            durable::print_restored(json, store, &restored);
            let output = p
                .output
                .as_deref()
                .map(|f| durable::Output::open(f, &restored))
                .transpose()?;
            Some(durable_receiver(json, &server, output, p.forward))
        }
        _ => None,
    };
    let deadline = duration.map(|d| Instant::now() + d);
    let mut tick = stats.map(|every| Instant::now() + every);
    loop {
        match next_input(&inputs, deadline, tick) {
            Ok(Heard::Connection(e)) => print_connection(json, &e),
            Ok(Heard::Written(w)) => registers::print_write(json, &w),
            Ok(Heard::Message(m)) => {
                print_message(json, &m);
                if p.forward != Forward::Nobody {
                    forward(&server, m, p.forward == Forward::Everyone);
                }
            }
            Err(Ended::Tick) => {
                print_stats(json, &server, false);
                tick = tick.zip(stats).map(|(t, every)| t + every);
            }
            Err(Ended::Deadline | Ended::Stopped) => break,
        }
    }
    if stats.is_some() {
        print_stats(json, &server, true);
    }
    let received = receiver.map(durable::Receiver::stop).transpose();
    // Quit to every client now, even while a forwarding thread still holds the server.
    server.close();
    print_stopped(json);
    received.map(|_| ())
}

/// The thread that takes the durable messages: prints each, appends it to the output, and
/// consumes it; as a broker, forwards it durably to its target's subscribers (not back to
/// its sender) in the same commit as the consume.
fn durable_receiver(
    json: bool,
    server: &Arc<Server>,
    output: Option<durable::Output>,
    forward: Forward,
) -> durable::Receiver {
    let next = server.clone();
    let finish = server.clone();
    durable::Receiver::start(
        json,
        output,
        Box::new(move |t| next.recv_durable(t)),
        Box::new(move |d, mark| {
            let sender = match d.from {
                pavillion_std::DurablePeer::Client(p) => Some(p),
                pavillion_std::DurablePeer::Server => None,
            };
            let clients = match forward {
                Forward::Nobody => Vec::new(),
                Forward::Subscribers => finish.client_subscribers(d.message.target()),
                Forward::Everyone => finish.clients(),
            };
            let mut to: Vec<_> = clients
                .into_iter()
                .map(|(_, peer)| peer)
                .filter(|p| Some(*p) != sender)
                .collect();
            to.sort();
            to.dedup();
            if to.is_empty() {
                return finish.consume_durable(d, mark).map(|_| ());
            }
            // A full outbox (subscribers that do not acknowledge) holds the relay back
            // until there is room, rather than dropping the copy.
            loop {
                match finish.relay_durable(d, &to, mark) {
                    Err(pavillion_std::DurableError::QueueFull) => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    other => return other.map(|_| ()),
                }
            }
        }),
        || {},
    )
}

/// Sends `m` on to the clients subscribed to its target (`pav listen TARGET`), or to every
/// client with `everyone`, but not back to its sender, from its own thread so that a slow acknowledgement does not hold up the
/// next message. A client of several brokers is subscribed at one of them only, so it gets the
/// message once.
fn forward(server: &Arc<Server>, m: ReceivedMessage, everyone: bool) {
    let server = server.clone();
    std::thread::spawn(move || {
        let clients = if everyone {
            server.clients()
        } else {
            server.client_subscribers(m.target())
        };
        let to: HashSet<SocketAddr> = clients
            .into_iter()
            .map(|(addr, _)| addr)
            .filter(|a| *a != m.from)
            .collect();
        if to.is_empty() {
            return;
        }
        let reliability = if m.reliable {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        };
        let r = server.send_message(
            m.target(),
            m.name(),
            m.payload(),
            reliability,
            move |a, _| to.contains(&a),
        );
        match r {
            Ok(outcomes) => {
                for o in outcomes.iter().filter(|o| o.result.is_err()) {
                    tracing::warn!(client = %o.client, target = %m.target(), result = ?o.result, "not forwarded");
                }
            }
            Err(e) => tracing::warn!(error = %e, "forwarding failed"),
        }
    });
}

/// Prints the server's counters: datagrams, handshakes, retransmissions, and drops by reason.
fn print_stats(json: bool, server: &Server, last: bool) {
    let Some(s) = server.stats() else { return };
    let clients = server.clients().len();
    if json {
        let drops: serde_json::Map<String, serde_json::Value> = s
            .drops()
            .map(|(reason, n)| (reason.to_string(), json!(n)))
            .collect();
        println!(
            "{}",
            json!({
                "event": "stats",
                "final": last,
                "clients": clients,
                "datagrams_received": s.datagrams_received,
                "datagrams_sent": s.datagrams_sent,
                "handshakes": s.handshakes,
                "handshake_requests": s.handshake_requests,
                "messages_received": s.messages_received,
                "retransmissions": s.retransmissions,
                "send_errors": s.send_errors,
                "dropped": s.total_dropped(),
                "drops": drops,
                "rtt": live::rtt_json(&s),
            })
        );
    } else {
        let drops: Vec<String> = s
            .drops()
            .filter(|(_, n)| *n > 0)
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        println!(
            "stats{}: {clients} clients; datagrams {} in, {} out; {} handshakes ({} requests); \
             {} messages; {} retransmissions; {} send errors; dropped {}{}; {}",
            if last { " (final)" } else { "" },
            s.datagrams_received,
            s.datagrams_sent,
            s.handshakes,
            s.handshake_requests,
            s.messages_received,
            s.retransmissions,
            s.send_errors,
            s.total_dropped(),
            if drops.is_empty() {
                String::new()
            } else {
                format!(" ({})", drops.join(", "))
            },
            live::rtt_text(&s)
        );
    }
}

fn ecc_client(s: &str) -> Result<(ClientId, PublicKey), String> {
    let (id, key) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=PUBLICKEY, not {s:?}"))?;
    Ok((
        std_keys::parse_client_id(id).map_err(|e| e.to_string())?,
        std_keys::parse_public_key(key).map_err(|e| e.to_string())?,
    ))
}
