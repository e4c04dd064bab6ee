//! What both adapters' authority and member handles share: the operator's policy file
//! ([`load_policy`]), the authority's store on disk ([`Store`], one `redb` file), how each
//! role is opened ([`AuthorityOptions`], [`MemberOptions`]), the commands a handle sends its
//! loop ([`AuthorityCommand`], [`MemberCommand`]) and the words `pav` prints for refusals.
//! Only the loop (a `mio` thread, a `smol` task) differs between the adapters.
//!
//! The store is `redb` because it is pure Rust (no C toolchain) and commits copy-on-write:
//! a batch written with [`Store::apply`] is either wholly on disk or not at all, even after
//! `kill -9` or a power cut, which is what lets an authority promise never to publish a
//! roster version lower than one a member has seen (`docs/PROTOCOL.md` §15).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pavillion_proto::crypto::ecc::PublicKey;
use pavillion_proto::endpoint::{
    AuthorityConfig, AuthorityStats, Enrolment, ListedPeer, Member, MemberConfig, MemberError,
    Policy, RevokeError, RosterStats, SendOptions, Stats, StoreOp, StoreTable,
};
use pavillion_proto::features::authority::lockout::LockoutPolicy;
use pavillion_proto::features::authority::{MemberId, Roster};
use pavillion_proto::wire::authority::{JoinRefusal, MAX_LABEL};
use pavillion_proto::{Duration, FunctionId, Instant, MessageId};
use serde::Deserialize;
use toml::Spanned;

use crate::keys;

mod peers;
use crate::plumbing::reply::Reply;
pub use peers::{CallOutcome, PeerCallError, PeerCalls, PeerHandler, RevokeFailure};

/// Largest policy file read: a policy is a few keys and secrets, so anything bigger is a
/// mistake (the wrong file), refused before it is parsed.
pub const MAX_POLICY_BYTES: usize = 1 << 20;
/// Shortest enrolment secret: anyone who guesses it may join, and the authority's
/// failed-proof budget only slows guessing, so short secrets are refused outright.
pub const MIN_SECRET_BYTES: usize = 16;
/// `max_peers` when the policy does not say.
pub const DEFAULT_MAX_PEERS: usize = 1024;
/// The authority's default port (`pav authority --bind`).
pub const DEFAULT_AUTHORITY_PORT: u16 = 1790;
/// The `Meta` key under which an adapter keeps a copy of the policy's text, so that a
/// restart can say the policy changed.
pub const POLICY_META_KEY: &[u8] = b"policy";

/// Why a policy file was refused: the message names the file, line and column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// Reads and checks the policy file at `path`; relative key and secret paths in it are
/// relative to its folder. Returns the policy and the file's text (to store a copy).
///
/// # Errors
/// [`PolicyError`] naming the line: unreadable or oversized file, malformed TOML, unknown
/// keys, wrong types, short secrets, bad keys, labels over 32 bytes.
pub fn load_policy(path: &Path) -> Result<(Policy, String), PolicyError> {
    let shown = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| PolicyError(format!("{shown}: {e}")))?
        .len();
    if size > MAX_POLICY_BYTES as u64 {
        return Err(PolicyError(format!(
            "{shown}: {size} bytes, larger than the {MAX_POLICY_BYTES} a policy file may hold"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError(format!("{shown}: {e}")))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let policy = parse_policy(&text, &base, &shown)?;
    Ok((policy, text))
}

/// Parses policy `text`; `base` resolves relative paths, `origin` names the file in errors.
///
/// # Errors
/// As [`load_policy`].
///
/// # Examples
/// ```
/// let text = "max_peers = 10\n[[peer]]\nkey = \"".to_owned() + &"01".repeat(32) + "\"\nrole = \"gw\"\n";
/// let policy = pavillion_io::authority::parse_policy(&text, ".".as_ref(), "policy.toml").unwrap();
/// assert_eq!(policy.max_peers, 10);
/// assert_eq!(policy.peers[0].role, "gw");
/// let err = pavillion_io::authority::parse_policy("max_peers = \"x\"", ".".as_ref(), "p.toml");
/// assert!(err.unwrap_err().0.contains("line 1"));
/// ```
pub fn parse_policy(text: &str, base: &Path, origin: &str) -> Result<Policy, PolicyError> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(PolicyError(format!(
            "{origin}: {} bytes, larger than the {MAX_POLICY_BYTES} a policy file may hold",
            text.len()
        )));
    }
    let file = PolicyFile { text, base, origin };
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let message = e.message().trim_end().to_owned();
        PolicyError(match e.span() {
            Some(s) => format!("{origin}, {}: {message}", file.position(s.start)),
            None => format!("{origin}: {message}"),
        })
    })?;
    file.decode(raw)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    max_peers: Option<Spanned<i64>>,
    lockout: Option<RawLockout>,
    #[serde(default)]
    enrolment: Vec<Spanned<RawEnrolment>>,
    #[serde(default)]
    peer: Vec<Spanned<RawPeer>>,
    #[serde(default)]
    operator: Vec<Spanned<RawOperator>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLockout {
    threshold: Option<Spanned<i64>>,
    base_secs: Option<Spanned<i64>>,
    max_secs: Option<Spanned<i64>>,
    failed_proofs_per_minute: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnrolment {
    secret: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    role: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    key: Spanned<String>,
    role: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    key: Spanned<String>,
}

struct PolicyFile<'a> {
    text: &'a str,
    base: &'a Path,
    origin: &'a str,
}

impl PolicyFile<'_> {
    /// `line L, column C` of a byte offset (both from 1).
    fn position(&self, offset: usize) -> String {
        let before = &self.text.as_bytes()[..offset.min(self.text.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
        format!("line {line}, column {column}")
    }

    fn at<T>(&self, v: &Spanned<T>, message: impl fmt::Display) -> PolicyError {
        PolicyError(format!(
            "{}, {}: {message}",
            self.origin,
            self.position(v.span().start)
        ))
    }

    fn count(&self, v: &Spanned<i64>, what: &str, min: i64, max: i64) -> Result<i64, PolicyError> {
        let n = *v.get_ref();
        if n < min || n > max {
            return Err(self.at(v, format!("{what} must be between {min} and {max}")));
        }
        Ok(n)
    }

    fn label(&self, v: &Option<Spanned<String>>, what: &str) -> Result<String, PolicyError> {
        match v {
            None => Ok(String::new()),
            Some(s) if s.get_ref().len() > MAX_LABEL => {
                Err(self.at(s, format!("{what} is longer than {MAX_LABEL} bytes")))
            }
            Some(s) => Ok(s.get_ref().clone()),
        }
    }

    /// A public key: 64 hex digits, or the path of a `.pub` file (as `pav keygen` writes).
    fn key(&self, v: &Spanned<String>) -> Result<PublicKey, PolicyError> {
        let text = v.get_ref().trim();
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return keys::parse_public_key(text).map_err(|e| self.at(v, format!("key: {e}")));
        }
        let path = self.base.join(text);
        let body = std::fs::read_to_string(&path).map_err(|e| {
            self.at(
                v,
                format!(
                    "key {}: {e} (expected 64 hex digits or a .pub file)",
                    path.display()
                ),
            )
        })?;
        let hex: String = body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        keys::parse_public_key(&hex).map_err(|e| self.at(v, format!("key {}: {e}", path.display())))
    }

    fn secret(&self, e: &Spanned<RawEnrolment>) -> Result<Vec<u8>, PolicyError> {
        let raw = e.get_ref();
        let (bytes, at) = match (&raw.secret, &raw.secret_file) {
            (Some(s), None) => (s.get_ref().as_bytes().to_vec(), s.span().start),
            (None, Some(f)) => {
                let path = self.base.join(f.get_ref());
                let mut bytes = std::fs::read(&path)
                    .map_err(|err| self.at(f, format!("secret_file {}: {err}", path.display())))?;
                // A trailing newline from an editor is not part of the secret.
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                (bytes, f.span().start)
            }
            (Some(s), Some(_)) => return Err(self.at(s, "give secret or secret_file, not both")),
            (None, None) => return Err(self.at(e, "an [[enrolment]] needs secret or secret_file")),
        };
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(PolicyError(format!(
                "{}, {}: an enrolment secret must be at least {MIN_SECRET_BYTES} bytes",
                self.origin,
                self.position(at)
            )));
        }
        Ok(bytes)
    }

    fn decode(&self, raw: RawPolicy) -> Result<Policy, PolicyError> {
        let mut policy = Policy {
            max_peers: DEFAULT_MAX_PEERS,
            lockout: LockoutPolicy::default(),
            ..Policy::default()
        };
        if let Some(m) = &raw.max_peers {
            policy.max_peers = self.count(m, "max_peers", 1, 1 << 20)? as usize;
        }
        if let Some(l) = &raw.lockout {
            let p = &mut policy.lockout;
            if let Some(v) = &l.threshold {
                p.threshold = self.count(v, "threshold", 1, 1000)? as u32;
            }
            if let Some(v) = &l.base_secs {
                p.base = Duration::from_secs(self.count(v, "base_secs", 1, 86_400)? as u64);
            }
            if let Some(v) = &l.max_secs {
                p.max = Duration::from_secs(self.count(v, "max_secs", 1, 30 * 86_400)? as u64);
            }
            if let Some(v) = &l.failed_proofs_per_minute {
                p.failed_proofs_per_minute =
                    self.count(v, "failed_proofs_per_minute", 1, 1_000_000)? as u32;
            }
            if p.max < p.base {
                p.max = p.base;
            }
        }
        for e in &raw.enrolment {
            let secret = self.secret(e)?;
            let role = match &e.get_ref().role {
                Some(_) => Some(self.label(&e.get_ref().role, "role")?),
                None => None,
            };
            policy.enrolments.push(Enrolment {
                key: Enrolment::key_of(&secret),
                role,
            });
        }
        for p in &raw.peer {
            let r = p.get_ref();
            policy.peers.push(ListedPeer {
                public: self.key(&r.key)?,
                role: self.label(&r.role, "role")?,
                name: self.label(&r.name, "name")?,
            });
        }
        for o in &raw.operator {
            policy.operators.push(self.key(&o.get_ref().key)?);
        }
        Ok(policy)
    }
}

pub use crate::store::StoreError;

/// Every stored record of the authority, owned (what [`Store::load`] reads and
/// `Authority::restore` takes).
pub type Records = crate::store::Records<StoreTable>;

/// The authority's durable state: one `redb` file, a table per [`StoreTable`] (the generic
/// [`RedbStore`](crate::store::RedbStore), which durable messages use too).
pub type Store = crate::store::RedbStore<StoreTable>;

impl crate::store::RedbStore<StoreTable> {
    /// Stores the policy's text (`Meta` key [`POLICY_META_KEY`]).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn put_policy(&self, text: &str) -> Result<(), StoreError> {
        self.write(&[StoreOp::Put {
            table: StoreTable::Meta,
            key: POLICY_META_KEY.to_vec(),
            value: text.as_bytes().to_vec(),
        }])
    }
}

/// How an authority is opened.
#[derive(Debug)]
pub struct AuthorityOptions {
    /// The authority itself: keys, policy, limits (`durable` is set from `store`).
    pub config: AuthorityConfig,
    /// The socket's address.
    pub bind: SocketAddr,
    /// The store's file; `None`: nothing survives a restart (a new roster epoch each time).
    pub store: Option<PathBuf>,
    /// The policy file's text, kept in the store to notice a changed policy at restart.
    pub policy_text: Option<String>,
}

impl AuthorityOptions {
    /// An authority on `127.0.0.1`, any port, with no store.
    pub fn new(config: AuthorityConfig) -> Self {
        AuthorityOptions {
            config,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: None,
            policy_text: None,
        }
    }

    /// Binds `addr` instead.
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Keeps the authority's records in the `redb` file at `path`.
    #[must_use]
    pub fn store(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(path.into());
        self
    }
}

/// How a member is opened.
#[derive(Debug)]
pub struct MemberOptions {
    /// The member itself: keys, authority, credential, role, name, `connect_all`.
    pub config: MemberConfig,
    /// Its one socket's address (the authority and the peers see it).
    pub bind: SocketAddr,
}

impl MemberOptions {
    /// A member on `127.0.0.1`, any port.
    pub fn new(config: MemberConfig) -> Self {
        MemberOptions {
            config,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// Binds `addr` instead.
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }
}

/// What an authority handle asks of its loop.
#[derive(Debug)]
pub enum AuthorityCommand {
    /// The roster as last published.
    Roster(Reply<Roster>),
    /// Revoke a member.
    Revoke(MemberId, Reply<Result<(), RevokeError>>),
    /// Admissions and sessions' counters.
    Stats(Reply<(AuthorityStats, Stats)>),
    /// A metrics snapshot: the sessions' counters, and the members whose session is up.
    Metrics(Reply<crate::metrics::MetricsSnapshot>),
    /// Close every session and end the loop.
    Close,
}

impl AuthorityCommand {
    /// Carries out the command; `false` for [`AuthorityCommand::Close`], which the loop
    /// carries out itself (close, send what that queued, end).
    pub fn apply(
        self,
        authority: &mut pavillion_proto::endpoint::Authority,
        now: pavillion_proto::Instant,
    ) -> bool {
        match self {
            AuthorityCommand::Roster(r) => r.send(authority.roster().clone()),
            AuthorityCommand::Revoke(id, r) => r.send(authority.revoke(now, id)),
            AuthorityCommand::Stats(r) => r.send((
                authority.authority_stats().clone(),
                authority.stats().clone(),
            )),
            AuthorityCommand::Metrics(r) => {
                let up = authority.roster().entries.values().filter(|m| m.up).count();
                r.send(crate::metrics::MetricsSnapshot::new(
                    crate::metrics::MetricsRole::Authority,
                    u64::try_from(up).unwrap_or(u64::MAX),
                    authority.stats().clone(),
                ));
            }
            AuthorityCommand::Close => return false,
        }
        true
    }
}

/// Writes every batch the authority has to `store` (if any) and acknowledges it.
///
/// # Errors
/// [`StoreError`] of the first batch that could not be written; it is not acknowledged,
/// so nothing in it is published, and the loop must stop.
pub fn store_batches(
    authority: &mut pavillion_proto::endpoint::Authority,
    store: Option<&Store>,
    now: pavillion_proto::Instant,
) -> Result<(), StoreError> {
    while let Some(batch) = authority.poll_store() {
        if let Some(s) = store {
            s.apply(&batch)?;
        }
        authority.stored(now, batch.id);
    }
    Ok(())
}

/// Opens the store (if any) and the authority from it.
///
/// # Errors
/// [`OpenAuthorityError`].
pub fn open_authority(
    options: &mut AuthorityOptions,
) -> Result<(pavillion_proto::endpoint::Authority, Option<Store>), OpenAuthorityError> {
    let mut config = options.config.clone();
    config.durable = options.store.is_some();
    let Some(path) = &options.store else {
        return Ok((pavillion_proto::endpoint::Authority::new(config), None));
    };
    let store = Store::open(path)?;
    let records = store.load()?;
    if let Some(text) = &options.policy_text {
        let before = records.get(StoreTable::Meta, POLICY_META_KEY);
        if before.is_some_and(|b| b != text.as_bytes()) {
            tracing::warn!("the policy changed since the store was last written");
        }
        store.put_policy(text)?;
    }
    let core = pavillion_proto::endpoint::Authority::restore(config, records.iter())
        .map_err(|e| OpenAuthorityError::Restore(format!("{e:?}")))?;
    Ok((core, Some(store)))
}

/// Why an authority could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenAuthorityError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored records do not decode.
    #[error("store: {0}")]
    Restore(String),
    /// The socket could not be opened.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What a member handle asks of its loop (a thread in io-std, a task in io-smol).
pub enum MemberCommand {
    /// Open a session to a member now.
    Connect(MemberId, Reply<Result<(), MemberError>>),
    /// Call a function of a member; the answer settles `reply`.
    Call {
        /// Whom.
        peer: MemberId,
        /// Which function.
        function: FunctionId,
        /// Its arguments.
        args: Vec<u8>,
        /// Where the outcome goes.
        reply: Reply<CallOutcome>,
    },
    /// Send a message to a member.
    Send {
        /// Whom.
        peer: MemberId,
        /// Its target.
        target: String,
        /// Its name.
        name: String,
        /// Its payload.
        payload: Vec<u8>,
        /// Reliability and deadline.
        options: SendOptions,
        /// The message id, or why it was not sent.
        reply: Reply<Result<MessageId, MemberError>>,
    },
    /// Serve a function to the other members.
    Register(FunctionId, PeerHandler),
    /// Roster counters and sessions' counters.
    Stats(Reply<(RosterStats, Stats)>),
    /// Close every session and end the loop.
    Close,
}

impl fmt::Debug for MemberCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberCommand::Connect(..) => "Connect",
            MemberCommand::Call { .. } => "Call",
            MemberCommand::Send { .. } => "Send",
            MemberCommand::Register(..) => "Register",
            MemberCommand::Stats(_) => "Stats",
            MemberCommand::Close => "Close",
        })
    }
}

impl MemberCommand {
    /// Carries out the command on `member`, keeping calls and served functions in `peers`;
    /// `false` for [`MemberCommand::Close`], which the loop carries out itself.
    pub fn apply(self, now: Instant, member: &mut Member, peers: &mut PeerCalls) -> bool {
        match self {
            MemberCommand::Connect(peer, r) => r.send(member.connect(now, peer)),
            MemberCommand::Call {
                peer,
                function,
                args,
                reply,
            } => match member.call(now, peer, function, &args) {
                Ok(call) => peers.expect(peer, call, reply),
                Err(e) => reply.send(Err(PeerCallError::Member(e))),
            },
            MemberCommand::Send {
                peer,
                target,
                name,
                payload,
                options,
                reply,
            } => reply.send(member.send_message(now, peer, &target, &name, &payload, options)),
            MemberCommand::Register(function, handler) => {
                member
                    .server_mut()
                    .register_function(function, "member function");
                peers.register(function, handler);
            }
            MemberCommand::Stats(r) => {
                r.send((member.roster_stats().clone(), member.stats().clone()))
            }
            MemberCommand::Close => return false,
        }
        true
    }
}

/// The word `pav` prints for a refusal (`refused bad-proof`).
pub fn refusal_name(reason: JoinRefusal) -> &'static str {
    match reason {
        JoinRefusal::NotInPolicy => "not-in-policy",
        JoinRefusal::BadProof => "bad-proof",
        JoinRefusal::LockedOut => "locked-out",
        JoinRefusal::Revoked => "revoked",
        JoinRefusal::Full => "full",
        JoinRefusal::Malformed => "malformed",
        JoinRefusal::Busy => "busy",
        _ => "refused",
    }
}

/// Resolves `text` (32 hex digits, or a unique prefix of at least 8) against `roster`.
///
/// # Errors
/// [`ResolveError`].
pub fn resolve_member(roster: &Roster, text: &str) -> Result<MemberId, ResolveError> {
    let text = text.trim().to_ascii_lowercase();
    if let Some(id) = MemberId::parse_hex(&text) {
        return Ok(id);
    }
    if text.len() < 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ResolveError::BadId);
    }
    let mut found = roster
        .entries
        .keys()
        .filter(|id| id.to_string().starts_with(&text));
    match (found.next(), found.next()) {
        (Some(id), None) => Ok(*id),
        (None, _) => Err(ResolveError::NoMember),
        (Some(_), Some(_)) => Err(ResolveError::Ambiguous),
    }
}

/// Why [`resolve_member`] found no single member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Neither 32 hex digits nor a hex prefix of at least 8.
    #[error("a member id is 32 hex digits, or a unique prefix of at least 8")]
    BadId,
    /// No member's id starts so.
    #[error("no member")]
    NoMember,
    /// Several members' ids start so.
    #[error("several members match")]
    Ambiguous,
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
