//! The server's configuration file (`pav serve --config FILE`), in TOML.
//!
//! ```toml
//! listen = "0.0.0.0:1783"          # bind address (port 1783 if omitted)
//! suite = ["psk", "noise"]         # optional: the suites to serve (checked at start)
//! secret_key_file = "server/secret.key"   # or secret_key = "<64 hex>"
//! allow_guests = false
//! multicast = "239.255.28.12"      # optional
//! reply_socket = false
//! forward = true                   # broker: forward messages to subscribed clients
//! forward_all = false              # forward every message to every client (see --forward-all)
//! targets = ["kitchen"]            # targets announced to clients (see --target)
//!
//! [[client]]
//! id = "alice-sensor-001"          # 16 bytes of text, or 32 hex characters
//! psk_file = "alice/psk"           # or psk = "<64 hex>"
//!
//! [[client]]
//! id_file = "bob/client.id"        # or id = ...
//! public_key_file = "bob/public.key"      # or public_key = "<64 hex>" (suites 2 and 3)
//!
//! [[exec]]
//! function = 500
//! command = ["/usr/bin/sensors", "-j"]    # or one string, split into words (no shell)
//! ```
//!
//! Relative paths are relative to the configuration file's folder. Unknown keys are errors.
//! Every error names the file and the line.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pavillion_proto::crypto::ecc::{KeyPair, PublicKey};
use pavillion_proto::crypto::Psk;
use pavillion_proto::ClientId;
use pavillion_std::keys;
use serde::Deserialize;
use toml::Spanned;

use crate::common::{relative_to, Failure};
use crate::exec::ExecSpec;
use crate::keys::{KeyFile, Suite};

/// What the file says, decoded and checked.
#[derive(Default)]
pub(crate) struct ServerFile {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) suites: Option<Vec<Suite>>,
    pub(crate) allow_guests: Option<bool>,
    pub(crate) keys: Option<KeyPair>,
    pub(crate) multicast: Option<IpAddr>,
    pub(crate) reply_socket: Option<bool>,
    pub(crate) forward: Option<bool>,
    pub(crate) forward_all: Option<bool>,
    pub(crate) psk_clients: Vec<(ClientId, Psk)>,
    pub(crate) key_clients: Vec<(ClientId, PublicKey)>,
    pub(crate) execs: Vec<ExecSpec>,
    pub(crate) targets: Vec<String>,
    pub(crate) exec_timeout: Option<Duration>,
    pub(crate) exec_max: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<Spanned<String>>,
    suite: Option<Spanned<OneOrMany>>,
    allow_guests: Option<bool>,
    secret_key: Option<Spanned<String>>,
    secret_key_file: Option<Spanned<String>>,
    multicast: Option<Spanned<String>>,
    reply_socket: Option<bool>,
    forward: Option<bool>,
    forward_all: Option<bool>,
    #[serde(default)]
    targets: Vec<String>,
    exec_timeout: Option<Spanned<f64>>,
    exec_max: Option<Spanned<i64>>,
    #[serde(default)]
    client: Vec<Spanned<RawClient>>,
    #[serde(default)]
    exec: Vec<Spanned<RawExec>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    id: Option<Spanned<String>>,
    id_file: Option<Spanned<String>>,
    psk: Option<Spanned<String>>,
    psk_file: Option<Spanned<String>>,
    public_key: Option<Spanned<String>>,
    public_key_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExec {
    function: Spanned<i64>,
    command: Spanned<OneOrMany>,
}

/// Reads and checks `path`. Every error is bad input (exit code 2) naming the file and line.
pub(crate) fn load(path: &Path) -> Result<ServerFile, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::input(format!("--config {}: {e}", path.display())))?;
    let file = File {
        path: path.to_path_buf(),
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        text: &text,
    };
    let raw: Raw = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| file.line(s.start));
        let message = e.message().trim_end().to_owned();
        Failure::input(match line {
            Some(l) => format!("{}, line {l}: {message}", path.display()),
            None => format!("{}: {message}", path.display()),
        })
    })?;
    file.decode(raw).map_err(Failure::input)
}

/// The `[pavillion]` section of a bridge's file (`pav bridge --config FILE`): the same keys as
/// this file's, decoded by this loader, errors naming the line in the bridge's file. `None`
/// without the section. The bridge's other sections are checked by its own schema.
#[cfg(feature = "bridge")]
pub(crate) fn load_section(path: &Path, text: &str) -> Result<Option<ServerFile>, Failure> {
    #[derive(Deserialize)]
    struct Outer {
        pavillion: Option<Raw>,
    }
    let file = File {
        path: path.to_path_buf(),
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        text,
    };
    let outer: Outer = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| file.line(s.start));
        let message = e.message().trim_end().to_owned();
        Failure::input(match line {
            Some(l) => format!("{}, line {l}: [pavillion]: {message}", path.display()),
            None => format!("{}: [pavillion]: {message}", path.display()),
        })
    })?;
    outer
        .pavillion
        .map(|raw| file.decode(raw).map_err(Failure::input))
        .transpose()
}

struct File<'a> {
    path: PathBuf,
    base: PathBuf,
    text: &'a str,
}

impl File<'_> {
    fn line(&self, offset: usize) -> usize {
        pavillion_io::bridge::config::line_of(self.text, offset)
    }

    /// `"FILE, line N: message"` for the value at `span`.
    fn at<T>(&self, v: &Spanned<T>, message: impl std::fmt::Display) -> String {
        format!(
            "{}, line {}: {message}",
            self.path.display(),
            self.line(v.span().start)
        )
    }

    fn key_file(&self, v: &Spanned<String>, key: &str) -> Result<KeyFile, String> {
        let path = relative_to(&self.base, v.get_ref());
        KeyFile::read(&path, key).map_err(|e| self.at(v, e))
    }

    fn decode(&self, raw: Raw) -> Result<ServerFile, String> {
        let mut out = ServerFile {
            allow_guests: raw.allow_guests,
            reply_socket: raw.reply_socket,
            forward: raw.forward,
            forward_all: raw.forward_all,
            targets: raw.targets.clone(),
            ..ServerFile::default()
        };
        if let Some(l) = &raw.listen {
            out.listen = Some(keys::parse_addr(l.get_ref()).map_err(|e| self.at(l, e))?);
        }
        if let Some(s) = &raw.suite {
            let names = match s.get_ref() {
                OneOrMany::One(n) => vec![n.clone()],
                OneOrMany::Many(v) => v.clone(),
            };
            let mut suites = Vec::new();
            for n in names {
                suites.push(crate::keys::suite(&n).map_err(|e| self.at(s, format!("suite: {e}")))?);
            }
            out.suites = Some(suites);
        }
        match (&raw.secret_key, &raw.secret_key_file) {
            (Some(a), Some(_)) => {
                return Err(self.at(a, "give secret_key or secret_key_file, not both"))
            }
            (Some(k), None) => {
                out.keys = Some(keys::parse_secret_key(k.get_ref()).map_err(|e| {
                    self.at(k, format!("secret_key: {e} (expected 64 hex characters)"))
                })?)
            }
            (None, Some(f)) => {
                let what = "secret_key_file";
                out.keys = Some(
                    self.key_file(f, what)?
                        .secret_key(what)
                        .map_err(|e| self.at(f, e))?,
                );
            }
            (None, None) => {}
        }
        if let Some(m) = &raw.multicast {
            out.multicast = Some(m.get_ref().parse().map_err(|_| {
                self.at(
                    m,
                    format!(
                        "multicast: expected a group address such as 239.255.28.12, not {:?}",
                        m.get_ref()
                    ),
                )
            })?);
        }
        if let Some(t) = &raw.exec_timeout {
            let secs = *t.get_ref();
            out.exec_timeout = Some(
                Duration::try_from_secs_f64(secs)
                    .ok()
                    .filter(|_| secs > 0.0)
                    .ok_or_else(|| self.at(t, "exec_timeout: expected seconds above 0"))?,
            );
        }
        if let Some(n) = &raw.exec_max {
            out.exec_max = Some(
                usize::try_from(*n.get_ref())
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| self.at(n, "exec_max: expected a whole number of at least 1"))?,
            );
        }
        for c in &raw.client {
            self.client(c, &mut out)?;
        }
        for e in &raw.exec {
            let r = e.get_ref();
            let function = u16::try_from(*r.function.get_ref())
                .map_err(|_| self.at(&r.function, "function: expected 0 to 65535"))?;
            let words = match r.command.get_ref() {
                OneOrMany::One(s) => crate::exec::split(s).map_err(|m| self.at(&r.command, m))?,
                OneOrMany::Many(v) => v.clone(),
            };
            out.execs
                .push(ExecSpec::new(function, words).map_err(|m| self.at(e, m))?);
        }
        Ok(out)
    }

    fn client(&self, c: &Spanned<RawClient>, out: &mut ServerFile) -> Result<(), String> {
        let r = c.get_ref();
        let id = match (&r.id, &r.id_file) {
            (Some(id), None) => {
                keys::parse_client_id(id.get_ref()).map_err(|e| self.at(id, format!("id: {e}")))?
            }
            (None, Some(f)) => {
                let what = "id_file";
                self.key_file(f, what)?
                    .client_id(what)
                    .map_err(|e| self.at(f, e))?
            }
            (None, None) => {
                return Err(self.at(c, "[[client]] needs an id (or id_file)"));
            }
            (Some(id), Some(_)) => return Err(self.at(id, "give id or id_file, not both")),
        };
        let given = [&r.psk, &r.psk_file, &r.public_key, &r.public_key_file]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if given != 1 {
            return Err(self.at(
                c,
                "[[client]] needs exactly one of psk, psk_file, public_key, public_key_file",
            ));
        }
        if let Some(p) = &r.psk {
            let psk = keys::parse_psk(p.get_ref()).map_err(|e| self.at(p, format!("psk: {e}")))?;
            out.psk_clients.push((id, psk));
        } else if let Some(f) = &r.psk_file {
            let psk = self
                .key_file(f, "psk_file")?
                .psk("psk_file")
                .map_err(|e| self.at(f, e))?;
            out.psk_clients.push((id, psk));
        } else if let Some(k) = &r.public_key {
            let key = keys::parse_public_key(k.get_ref())
                .map_err(|e| self.at(k, format!("public_key: {e} (expected 64 hex characters)")))?;
            out.key_clients.push((id, key));
        } else if let Some(f) = &r.public_key_file {
            let what = "public_key_file";
            let key = self
                .key_file(f, what)?
                .public_key(what)
                .map_err(|e| self.at(f, e))?;
            out.key_clients.push((id, key));
        }
        Ok(())
    }
}

/// `--client [ID=]KEYFILE`: the id, if given, and the file (read later, when the suites are
/// known).
pub(crate) fn client_flag(s: &str) -> Result<(Option<ClientId>, PathBuf), String> {
    match s.split_once('=') {
        Some((id, file)) => {
            let id = keys::parse_client_id(id).map_err(|e| format!("{e}, in ID=KEYFILE"))?;
            Ok((Some(id), PathBuf::from(file)))
        }
        None if Path::new(s).exists() => Ok((None, PathBuf::from(s))),
        None => Err(format!(
            "expected ID=KEYFILE or a public key file, not {s:?}"
        )),
    }
}

/// A `--client` key: a PSK or a public key, by the file's comment line; a file without one
/// is a PSK when only suite 1 is served or the file is 32 raw bytes, and a public key when
/// suite 1 is not served.
pub(crate) enum ClientKey {
    Psk(Psk),
    Public(PublicKey),
}

pub(crate) fn client_key(
    id: Option<ClientId>,
    path: &Path,
    suites: Option<&[Suite]>,
) -> Result<ClientKey, Failure> {
    let flag = match id {
        Some(id) => format!("--client {}={}", show_id(id), path.display()),
        None => format!("--client {}", path.display()),
    };
    let file = KeyFile::read(path, "--client").map_err(Failure::input)?;
    use crate::keys::KeyKind;
    let kind = match (file.kind, suites) {
        (Some(k @ (KeyKind::Psk | KeyKind::PublicKey)), _) => k,
        (Some(k), _) => {
            return Err(Failure::input(format!(
                "{flag}: the file holds a {}, but --client expects a PSK or a public key \
                 (give the client's psk or public.key)",
                k.tag()
            )))
        }
        (None, Some(s)) if !s.contains(&Suite::Psk) => KeyKind::PublicKey,
        (None, Some(s)) if s == [Suite::Psk] => KeyKind::Psk,
        (None, _) if std::fs::metadata(path).is_ok_and(|m| m.len() == 32) => KeyKind::Psk,
        (None, _) => {
            return Err(Failure::input(format!(
                "{flag}: cannot tell whether the file holds a PSK or a public key: add a first \
                 line `# pavillion psk` or `# pavillion public-key` (pav keygen writes it), or \
                 choose the suite with --suite"
            )))
        }
    };
    match kind {
        KeyKind::Psk => file.psk(&flag).map(ClientKey::Psk),
        _ => file.public_key(&flag).map(ClientKey::Public),
    }
    .map_err(Failure::input)
}

/// A client id as text if it is printable, else hex.
pub(crate) fn show_id(id: ClientId) -> String {
    match std::str::from_utf8(&id.0) {
        Ok(s) if s.chars().all(|c| c.is_ascii_graphic()) => s.to_owned(),
        _ => hex::encode(id.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_flags() {
        assert!(client_flag("cid2cid2cid2cid2=keys/psk").is_ok());
        assert!(client_flag("nope").unwrap_err().contains("ID=KEYFILE"));
        assert!(client_flag("short=x").unwrap_err().contains("client id"));
    }
}
