//! The fleet commands: `pav authority` admits members by policy and publishes the signed
//! roster; `pav join` is a member (it answers the echo function for its peers); `pav roster`
//! and `pav revoke` are the operator's (a key the policy lists under `[[operator]]`).
//!
//! Exit codes besides the usual ones: 3 when the authority refused (`pav join` refused,
//! `pav revoke`/`pav roster` by a key that is neither operator nor member).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use pavillion_io::authority::{
    self as shared, refusal_name, AuthorityOptions, MemberOptions, ResolveError,
    DEFAULT_AUTHORITY_PORT,
};
use pavillion_proto::crypto::ecc::{self, KeyPair, PublicKey};
use pavillion_proto::endpoint::{
    AuthorityConfig, AuthorityEvent, AuthorityStats, ClientCredentials, Enrolment, JoinCredential,
    MemberConfig, MemberEvent,
};
use pavillion_proto::features::authority::{MemberId, Roster, RosterEntry};
use pavillion_proto::wire::authority::{Snapshot, FETCH, REVOKE, ROSTER_TARGET};
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::FunctionId;
use pavillion_std::authority::{Authority, Member};
use pavillion_std::config::ClientConfig;
use pavillion_std::keys::{self as keys, random32};
use pavillion_std::{CallError, Client};
use serde_json::json;

use crate::common::{self, next_input, Ended, Failure, Input};
use crate::keys::KeyFile;

/// The function a `pav join` member answers for its peers: it echoes its argument, as
/// `pav serve`'s demo function 401 does.
const ECHO: FunctionId = FunctionId(401);
/// Exit code of a refusal by the authority.
const REFUSED: u8 = 3;

fn refused(kind: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        code: REFUSED,
        ..Failure::failed(kind, message)
    }
}

fn print(json: bool, text: String, value: serde_json::Value) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

fn secret_key(path: &Path) -> Result<KeyPair, Failure> {
    KeyFile::read(path, "--key")
        .and_then(|f| f.secret_key("--key"))
        .map_err(Failure::input)
}

/// A public key given as 64 hex characters or as the path of a `.pub` file.
fn public_key(text: &str, what: &str) -> Result<PublicKey, Failure> {
    if let Ok(k) = keys::parse_public_key(text) {
        return Ok(k);
    }
    let path = PathBuf::from(text);
    if !path.exists() {
        return Err(Failure::input(format!(
            "{what} {text:?}: neither 64 hex characters nor a readable key file"
        )));
    }
    KeyFile::read(&path, what)
        .and_then(|f| f.public_key(what))
        .map_err(Failure::input)
}

#[derive(Args, Debug)]
pub(crate) struct AuthorityArgs {
    /// Our X25519 secret key file (from `pav keygen --out DIR`); the roster signing key
    /// derives from it.
    #[arg(long, env = "PAV_AUTHORITY_KEY", value_name = "FILE")]
    key: PathBuf,
    /// The policy file (TOML): enrolment secrets, listed peers, operators, lockout.
    #[arg(long, env = "PAV_POLICY", value_name = "FILE")]
    policy: PathBuf,
    /// The socket's address.
    #[arg(long, env = "PAV_BIND", default_value_t = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_AUTHORITY_PORT))]
    bind: SocketAddr,
    /// The store (a redb file): members, revocations and the roster version survive a
    /// restart [default: none; a restart begins a new roster epoch].
    #[arg(long, env = "PAV_STORE", value_name = "FILE")]
    store: Option<PathBuf>,
    /// Exit 0 after SECS.
    #[arg(long, value_name = "SECS", value_parser = common::seconds)]
    duration: Option<Duration>,
    /// Print the counters (and the sessions' RTT percentiles) every SECS.
    #[arg(long, value_name = "SECS", value_parser = common::seconds)]
    stats: Option<Duration>,
    #[arg(long, value_name = "ADDR", value_parser = crate::live::metrics_addr, help = crate::live::METRICS_HELP)]
    metrics: Option<SocketAddr>,
}

pub(crate) const AUTHORITY_HELP: &str = "\
Examples:
  pav keygen --out auth && pav keygen --out gw
  pav authority --key auth/secret.key --policy policy.toml --store auth/state.redb
  pav join --key gw/secret.key --authority 192.0.2.1:1790 --authority-key auth/public.key

policy.toml:
  max_peers = 1024
  [lockout]
  threshold = 5
  base_secs = 30
  [[enrolment]]
  secret = \"a passphrase of at least 16 characters\"
  role = \"sensor\"
  [[peer]]
  key = \"gw/public.key\"
  role = \"gateway\"
  name = \"gw-1\"
  [[operator]]
  key = \"ops/public.key\"

Prints admitted, refused, locked, up, down, revoked and published lines. SIGTERM or Ctrl-C
closes the sessions and exits 0.";

pub(crate) fn authority(json: bool, a: AuthorityArgs) -> Result<(), Failure> {
    let keypair = secret_key(&a.key)?;
    let (policy, text) =
        shared::load_policy(&a.policy).map_err(|e| Failure::input(format!("--policy {e}")))?;
    if a.store.is_none() {
        eprintln!(
            "warning: no --store: admissions and revocations are lost at restart, and a \
             restart begins a new roster epoch"
        );
    }
    let id = MemberId::of(keypair.public());
    let mut options =
        AuthorityOptions::new(AuthorityConfig::new(keypair, policy, random32())).bind(a.bind);
    options.store = a.store.clone();
    options.policy_text = Some(text);
    let auth = Authority::start(options)
        .map_err(|e| Failure::failed("open", format!("cannot start the authority: {e}")))?;
    let auth = Arc::new(auth);
    let roster = auth.roster();
    print(
        json,
        format!(
            "authority {id} listening {} epoch {:016x} version {}",
            auth.local_addr(),
            roster.epoch,
            roster.version
        ),
        json!({"event": "authority", "id": id.to_string(), "addr": auth.local_addr().to_string(),
               "epoch": format!("{:016x}", roster.epoch), "version": roster.version}),
    );

    let _exporter = a
        .metrics
        .map(|addr| crate::live::start_metrics(addr, |addr| auth.serve_metrics(addr)))
        .transpose()?;
    let (tx, inputs) = common::inputs::<AuthorityEvent>();
    let forwarder = {
        let auth = Arc::clone(&auth);
        common::Forwarder::start(tx, move |wait| auth.next_event(wait))
    };
    let deadline = a.duration.map(|d| Instant::now() + d);
    let mut tick = a.stats.map(|s| Instant::now() + s);
    let mut result = Ok(());
    loop {
        if let Some(f) = auth.failure() {
            result = Err(Failure::failed("store", f));
            break;
        }
        // Wake at least every second to notice a failed store.
        let soon = Instant::now() + Duration::from_secs(1);
        let wake = Some(tick.map_or(soon, |t| t.min(soon)));
        match next_input(&inputs, deadline, wake) {
            Ok(e) => print_authority_event(json, &e),
            Err(Ended::Tick) => {
                if tick.is_some_and(|t| t <= Instant::now()) {
                    if let Some((s, sessions)) = auth.stats() {
                        print_authority_stats(json, &s, &sessions);
                    }
                    tick = tick.zip(a.stats).map(|(t, s)| t + s);
                }
            }
            Err(Ended::Deadline | Ended::Stopped) => break,
        }
    }
    auth.close();
    forwarder.stop();
    while let Some(e) = auth.next_event(Duration::ZERO) {
        print_authority_event(json, &e);
    }
    result
}

fn print_authority_event(json: bool, e: &AuthorityEvent) {
    let (text, value) = match e {
        AuthorityEvent::Admitted {
            id,
            role,
            addr,
            rejoin,
        } => (
            format!(
                "admitted {id} {role} {addr}{}",
                if *rejoin { " rejoin" } else { "" }
            ),
            json!({"event": "admitted", "id": id.to_string(), "role": role,
                   "addr": addr.to_string(), "rejoin": rejoin}),
        ),
        AuthorityEvent::Refused { id, addr, reason } => (
            format!("refused {id} {}", refusal_name(*reason)),
            json!({"event": "refused", "id": id.to_string(), "addr": addr.to_string(),
                   "reason": refusal_name(*reason)}),
        ),
        AuthorityEvent::LockedOut { id, duration } => (
            format!("locked {id} {}s", duration.as_secs()),
            json!({"event": "locked", "id": id.to_string(), "secs": duration.as_secs()}),
        ),
        AuthorityEvent::Up { id, addr } => (
            format!("up {id}"),
            json!({"event": "up", "id": id.to_string(), "addr": addr.to_string()}),
        ),
        AuthorityEvent::Down { id } => (
            format!("down {id}"),
            json!({"event": "down", "id": id.to_string()}),
        ),
        AuthorityEvent::Revoked { id } => (
            format!("revoked {id}"),
            json!({"event": "revoked", "id": id.to_string()}),
        ),
        AuthorityEvent::Published { version } => (
            format!("published version {version}"),
            json!({"event": "published", "version": version}),
        ),
        other => (
            format!("{other:?}"),
            json!({"event": "other", "detail": format!("{other:?}")}),
        ),
    };
    print(json, text, value);
}

fn print_authority_stats(json: bool, s: &AuthorityStats, sessions: &pavillion_std::Stats) {
    let refused: Vec<String> = s
        .refused
        .iter()
        .map(|(r, n)| format!("{}={n}", refusal_name(*r)))
        .collect();
    let refused_json: serde_json::Map<String, serde_json::Value> = s
        .refused
        .iter()
        .map(|(r, n)| (refusal_name(*r).to_owned(), json!(n)))
        .collect();
    print(
        json,
        format!(
            "stats joins={} admitted={} lockouts={} revoked={} published={} evicted={} refused: {}; {}",
            s.joins,
            s.admitted,
            s.lockouts,
            s.revoked,
            s.published,
            s.evicted,
            refused.join(" "),
            crate::live::rtt_text(sessions)
        ),
        json!({"event": "stats", "joins": s.joins, "admitted": s.admitted,
               "lockouts": s.lockouts, "revoked": s.revoked, "published": s.published,
               "evicted": s.evicted, "refused": refused_json,
               "rtt": crate::live::rtt_json(sessions)}),
    );
}

/// Where the authority is and who we are: what `join`, `roster` and `revoke` share.
#[derive(Args, Debug)]
pub(crate) struct AuthorityPeer {
    /// Our X25519 secret key file; our member id derives from its public half.
    #[arg(long, env = "PAV_KEY", value_name = "FILE")]
    key: PathBuf,
    /// The authority's address.
    #[arg(long, env = "PAV_AUTHORITY", value_name = "ADDR", value_parser = crate::keys::addr)]
    authority: SocketAddr,
    /// The authority's public key: 64 hex characters or its public.key file.
    #[arg(long, env = "PAV_AUTHORITY_KEY", value_name = "PUB")]
    authority_key: String,
}

#[derive(Args, Debug)]
pub(crate) struct JoinArgs {
    #[command(flatten)]
    peer: AuthorityPeer,
    /// An enrolment secret of the authority's policy (for keys the policy does not list).
    #[arg(long, env = "PAV_SECRET", conflicts_with = "secret_file")]
    secret: Option<String>,
    /// A file holding the enrolment secret (a trailing newline is not part of it).
    #[arg(long, env = "PAV_SECRET_FILE", value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// The role we ask for (a listed key gets the policy's).
    #[arg(long, default_value = "")]
    role: String,
    /// Our human label.
    #[arg(long, default_value = "")]
    name: String,
    /// Our one socket's address [default: 0.0.0.0:0].
    #[arg(long, env = "PAV_BIND")]
    bind: Option<SocketAddr>,
    /// Open a session to every member of the roster, and print `peer up`/`peer down`.
    #[arg(long)]
    connect_all: bool,
    /// Exit 0 once joined.
    #[arg(long)]
    once: bool,
    /// Exit 0 after SECS.
    #[arg(long, value_name = "SECS", value_parser = common::seconds)]
    duration: Option<Duration>,
}

pub(crate) const JOIN_HELP: &str = "\
Examples:
  pav join --key gw/secret.key --authority 192.0.2.1:1790 --authority-key auth/public.key
  pav join --key s1/secret.key --authority 192.0.2.1:1790 --authority-key auth/public.key \\
      --secret-file enrol.txt --role sensor --name s1 --connect-all

Prints `joined ID role ROLE version N`, then roster versions, peers up and down and
revocations. A refusal prints `refused REASON` and exits 3. Peers may call function 401
(echo). SIGTERM or Ctrl-C closes the sessions and exits 0.";

/// A trailing newline is not part of a secret read from a file (as in the policy file).
fn secret_bytes(a: &JoinArgs) -> Result<Option<Vec<u8>>, Failure> {
    if let Some(s) = &a.secret {
        return Ok(Some(s.as_bytes().to_vec()));
    }
    let Some(path) = &a.secret_file else {
        return Ok(None);
    };
    let mut bytes = std::fs::read(path)
        .map_err(|e| Failure::input(format!("--secret-file {}: {e}", path.display())))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(Some(bytes))
}

pub(crate) fn join(json: bool, a: JoinArgs) -> Result<(), Failure> {
    let keypair = secret_key(&a.peer.key)?;
    let authority_public = public_key(&a.peer.authority_key, "--authority-key")?;
    for (what, v) in [("--role", &a.role), ("--name", &a.name)] {
        if v.len() > pavillion_proto::wire::authority::MAX_LABEL {
            return Err(Failure::input(format!("{what}: at most 32 bytes")));
        }
    }
    let credential = match secret_bytes(&a)? {
        Some(s) => JoinCredential::Enrolment(Enrolment::key_of(&s)),
        None => JoinCredential::Listed,
    };
    let mut config = MemberConfig::new(
        keypair,
        a.peer.authority,
        authority_public,
        credential,
        random32(),
    );
    config.role = a.role.clone();
    config.name = a.name.clone();
    config.connect_all = a.connect_all;
    let bind = a
        .bind
        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
    let member = Member::start(MemberOptions::new(config).bind(bind))
        .map_err(|e| Failure::failed("open", format!("cannot start the member: {e}")))?;
    member.register(ECHO, |_, args: &[u8]| Ok(args.to_vec()));
    let member = Arc::new(member);

    let (tx, inputs) = common::inputs::<MemberEvent>();
    let forwarder = {
        let member = Arc::clone(&member);
        common::Forwarder::start(tx, move |wait| member.next_event(wait))
    };
    let deadline = a.duration.map(|d| Instant::now() + d);
    let mut result = Ok(());
    while let Ok(e) = next_input(&inputs, deadline, None) {
        match print_member_event(json, &member, &e) {
            Step::Go => {}
            Step::Joined if a.once => break,
            Step::Joined => {}
            Step::Refused(reason) => {
                let mut f = refused("refused", format!("the authority refused us: {reason}"));
                f.reported = json;
                result = Err(f);
                break;
            }
        }
    }
    member.close();
    forwarder.stop();
    result
}

/// What the loop of `pav join` does after an event.
enum Step {
    Go,
    Joined,
    Refused(&'static str),
}

fn print_member_event(json: bool, member: &Member, e: &MemberEvent) -> Step {
    let mut step = Step::Go;
    let (text, value) = match e {
        MemberEvent::Joined { id, role, version } => {
            step = Step::Joined;
            (
                format!("joined {id} role {role} version {version}"),
                json!({"event": "joined", "id": id.to_string(), "role": role,
                       "version": version}),
            )
        }
        MemberEvent::Refused { reason, .. } => {
            let name = refusal_name(*reason);
            step = Step::Refused(name);
            (
                format!("refused {name}"),
                json!({"event": "refused", "reason": name}),
            )
        }
        MemberEvent::Roster { version, .. } => {
            let members = member.roster().entries.len();
            (
                format!("roster version {version} members {members}"),
                json!({"event": "roster", "version": version, "members": members}),
            )
        }
        MemberEvent::PeerUp { id, addr } => (
            format!("peer up {id}"),
            json!({"event": "peer_up", "id": id.to_string(), "addr": addr.to_string()}),
        ),
        MemberEvent::PeerDown { id } => (
            format!("peer down {id}"),
            json!({"event": "peer_down", "id": id.to_string()}),
        ),
        MemberEvent::PeerRevoked { id } => (
            format!("revoked {id}"),
            json!({"event": "revoked", "id": id.to_string()}),
        ),
        MemberEvent::AuthorityUp => return Step::Go,
        MemberEvent::AuthorityDown => (
            "authority down".to_owned(),
            json!({"event": "authority_down"}),
        ),
        _ => return Step::Go,
    };
    print(json, text, value);
    step
}

#[derive(Args, Debug)]
pub(crate) struct RosterArgs {
    #[command(flatten)]
    peer: AuthorityPeer,
    /// Print each new version as it is published, until a signal.
    #[arg(long)]
    watch: bool,
    /// Seconds to wait for the authority.
    #[arg(long, short, env = "PAV_TIMEOUT", default_value = "2", value_parser = common::seconds)]
    timeout: Duration,
}

pub(crate) const ROSTER_HELP: &str = "\
Examples:
  pav roster --key ops/secret.key --authority 192.0.2.1:1790 --authority-key auth/public.key
  pav roster --json --watch --key ops/secret.key --authority 192.0.2.1:1790 --authority-key auth/public.key

Our key must be an operator's ([[operator]] in the policy) or a member's; anything else
exits 3.";

#[derive(Args, Debug)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    peer: AuthorityPeer,
    /// The member: 32 hex digits, or a unique prefix of at least 8.
    id: String,
    /// Seconds to wait for the authority.
    #[arg(long, short, env = "PAV_TIMEOUT", default_value = "2", value_parser = common::seconds)]
    timeout: Duration,
}

pub(crate) const REVOKE_HELP: &str = "\
Examples:
  pav revoke --key ops/secret.key --authority 192.0.2.1:1790 --authority-key auth/public.key 3f2a9c01

The member leaves the roster, its key is refused from now on, and every member drops its
sessions with it. Prints `revoked ID`; an unknown id exits 2, a key that is not an operator
exits 3.";

/// An operator's (or member's) session with the authority: a suite 3 client.
fn operator(peer: &AuthorityPeer, timeout: Duration) -> Result<Client, Failure> {
    let keys = secret_key(&peer.key)?;
    let server = public_key(&peer.authority_key, "--authority-key")?;
    let id = ecc::default_client_id(keys.public());
    let credentials = ClientCredentials::Noise {
        keys: Some(keys),
        server: Some(server),
        psk: None,
    };
    let config = ClientConfig::with_credentials(id, credentials)
        .call_timeout(timeout)
        .send_timeout(timeout);
    Client::connect(peer.authority, config)
        .map_err(|e| Failure::failed("socket", format!("cannot open a client socket: {e}")))
}

/// A call's failure as `pav` reports it: status 3, which the authority answers to keys that
/// are neither members nor operators (`docs/PROTOCOL.md` §15), is a refusal, exit 3.
fn call_failure(what: &str, e: CallError) -> Failure {
    match e {
        CallError::Remote { status, .. } if status == RpcStatus::BAD_INPUT => refused(
            "refused",
            format!(
                "{what}: the authority refused: our key is neither an operator's nor a member's"
            ),
        ),
        other => Failure::failed("call", format!("{what}: {other}")),
    }
}

fn fetch(client: &Client) -> Result<Roster, Failure> {
    let answer = client
        .call(FETCH.0, &[])
        .map_err(|e| call_failure("fetch", e))?;
    let s = Snapshot::parse(&answer).map_err(|e| {
        Failure::failed(
            "malformed",
            format!("the authority's roster does not parse: {e:?}"),
        )
    })?;
    Ok(Roster {
        epoch: s.epoch,
        version: s.version,
        entries: s.entries.into_iter().map(|e| (e.id, e)).collect(),
    })
}

pub(crate) fn roster(json: bool, a: RosterArgs) -> Result<(), Failure> {
    let client = operator(&a.peer, a.timeout)?;
    let roster = fetch(&client)?;
    print_roster(json, &roster);
    if !a.watch {
        client.close();
        return Ok(());
    }
    let (tx, inputs) = common::inputs::<()>();
    client.on_message(Some(ROSTER_TARGET), move |_| {
        let _ = tx.send(Input::Item(()));
    });
    client
        .subscribe(ROSTER_TARGET)
        .map_err(|e| Failure::failed("subscribe", format!("subscribe: {e}")))?;
    let mut last = roster.version;
    // A publication says a version exists; the snapshot FETCH returns is the whole roster,
    // so deltas need not be applied here.
    while next_input(&inputs, None, None).is_ok() {
        let roster = fetch(&client)?;
        if roster.version != last {
            last = roster.version;
            print_roster(json, &roster);
        }
    }
    client.close();
    Ok(())
}

fn entry_json(e: &RosterEntry) -> serde_json::Value {
    json!({"id": e.id.to_string(), "public": hex::encode(e.public.as_bytes()),
           "role": e.role, "name": e.name, "addr": e.addr.map(|a| a.to_string()),
           "up": e.up})
}

fn print_roster(json: bool, r: &Roster) {
    if json {
        let members: Vec<_> = r.entries.values().map(entry_json).collect();
        println!(
            "{}",
            json!({"epoch": format!("{:016x}", r.epoch), "version": r.version,
                   "members": members})
        );
        return;
    }
    println!("roster epoch {:016x} version {}", r.epoch, r.version);
    println!(
        "{:<32}  {:<12} {:<16} {:<24} UP",
        "ID", "ROLE", "NAME", "ADDRESS"
    );
    for e in r.entries.values() {
        let addr = e.addr.map_or_else(|| "-".to_owned(), |a| a.to_string());
        println!(
            "{:<32}  {:<12} {:<16} {:<24} {}",
            e.id.to_string(),
            if e.role.is_empty() { "-" } else { &e.role },
            if e.name.is_empty() { "-" } else { &e.name },
            addr,
            if e.up { "yes" } else { "no" }
        );
    }
}

pub(crate) fn revoke(json: bool, a: RevokeArgs) -> Result<(), Failure> {
    let text = a.id.trim();
    if text.len() < 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure::input(format!("{}: {}", a.id, ResolveError::BadId)));
    }
    let client = operator(&a.peer, a.timeout)?;
    let id = match MemberId::parse_hex(text) {
        Some(id) => id,
        None => {
            let roster = fetch(&client)?;
            shared::resolve_member(&roster, &a.id).map_err(|e| match e {
                ResolveError::NoMember => Failure::input(format!("no member {}", a.id)),
                other => Failure::input(format!("{}: {other}", a.id)),
            })?
        }
    };
    let answer = client
        .call(REVOKE.0, &id.0 .0)
        .map_err(|e| call_failure("revoke", e))?;
    client.close();
    match answer.first() {
        Some(0) => {
            print(
                json,
                format!("revoked {id}"),
                json!({"event": "revoked", "id": id.to_string()}),
            );
            Ok(())
        }
        Some(1) => Err(Failure::input(format!("no member {}", a.id))),
        Some(2) => Err(refused(
            "refused",
            "the authority refused: our key is not an operator's",
        )),
        _ => Err(Failure::failed(
            "malformed",
            format!("the authority's answer does not parse: {answer:?}"),
        )),
    }
}
