//! Suites, key files, and a client's credentials from flags.
//!
//! **Key files.** `pav keygen --out DIR` writes one key per file, as hex text after a comment
//! line that names what the file holds (`# pavillion psk`, `# pavillion secret-key`,
//! `# pavillion public-key`, `# pavillion client-id`). Every `--*-file` flag reads such a file;
//! it also reads a file without the comment (hex text, base64 of a PSK, or a raw 32-byte PSK,
//! as the reference accepts), and refuses a file whose comment names another kind of key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use pavillion_proto::crypto::ecc::{self, KeyPair, PublicKey};
use pavillion_proto::crypto::Psk;
use pavillion_proto::endpoint::ClientCredentials;
use pavillion_proto::ClientId;
use pavillion_std::keys::{self, ParseError};
use pavillion_std::{Client, ClientConfig};

use crate::common::{self, Failure};

/// The client id used with a PSK when none is given (16 bytes).
pub(crate) const DEFAULT_CLIENT_ID: &str = "pavillion-client";

/// A cipher suite, by the name the flags and the configuration file use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Suite {
    /// Suite 1: pre-shared key (reference-compatible).
    Psk,
    /// Suite 2: X25519 keys (reference-compatible).
    Ecc,
    /// Suite 3: Noise (our default between our own peers).
    Noise,
}

impl Suite {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Suite::Psk => "psk",
            Suite::Ecc => "ecc",
            Suite::Noise => "noise",
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a suite name (or its number).
pub(crate) fn suite(s: &str) -> Result<Suite, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "psk" | "1" => Ok(Suite::Psk),
        "ecc" | "2" => Ok(Suite::Ecc),
        "noise" | "3" => Ok(Suite::Noise),
        _ => Err(format!(
            "unknown suite {s:?}: expected psk (suite 1), ecc (suite 2) or noise (suite 3)"
        )),
    }
}

/// What a key file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Psk,
    SecretKey,
    PublicKey,
    ClientId,
}

impl KeyKind {
    const ALL: [KeyKind; 4] = [
        KeyKind::Psk,
        KeyKind::SecretKey,
        KeyKind::PublicKey,
        KeyKind::ClientId,
    ];

    /// The word after `# pavillion ` on a key file's first line.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            KeyKind::Psk => "psk",
            KeyKind::SecretKey => "secret-key",
            KeyKind::PublicKey => "public-key",
            KeyKind::ClientId => "client-id",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            KeyKind::Psk => "a PSK",
            KeyKind::SecretKey => "a secret key",
            KeyKind::PublicKey => "a public key",
            KeyKind::ClientId => "a client id",
        }
    }

    /// What the text of such a key looks like, for error messages.
    fn expected(self) -> &'static str {
        match self {
            KeyKind::Psk => "64 hex characters, base64 of 32 bytes, or 32 raw bytes",
            KeyKind::SecretKey | KeyKind::PublicKey => "64 hex characters",
            KeyKind::ClientId => "16 bytes of text or 32 hex characters",
        }
    }
}

/// A key file read but not yet decoded.
pub(crate) struct KeyFile {
    pub(crate) path: PathBuf,
    /// The kind its comment line names, if any.
    pub(crate) kind: Option<KeyKind>,
    /// The key text (comments and blank lines removed), or `None` for a raw 32-byte file.
    text: Option<String>,
    raw: Vec<u8>,
}

impl KeyFile {
    /// Reads `path`; `what` names the flag or setting that gave it, for messages.
    pub(crate) fn read(path: &Path, what: &str) -> Result<KeyFile, String> {
        let raw = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
        let text = std::str::from_utf8(&raw).ok().filter(|t| {
            // 32 raw bytes that happen to be UTF-8 are still raw unless they read as a key.
            raw.len() != 32 || t.chars().all(|c| c.is_ascii_graphic() || c.is_whitespace())
        });
        let mut kind = None;
        let mut body = Vec::new();
        if let Some(t) = text {
            for line in t.lines().map(str::trim) {
                if let Some(comment) = line.strip_prefix('#') {
                    let tag = comment.trim().strip_prefix("pavillion ").unwrap_or("");
                    let tag = tag.split(|c: char| c.is_whitespace() || c == ':').next();
                    if let Some(k) = KeyKind::ALL.into_iter().find(|k| Some(k.tag()) == tag) {
                        kind.get_or_insert(k);
                    }
                } else if !line.is_empty() {
                    body.push(line);
                }
            }
        }
        Ok(KeyFile {
            path: path.to_path_buf(),
            kind,
            text: text.map(|_| body.join("")),
            raw,
        })
    }

    fn check(&self, want: KeyKind, what: &str) -> Result<&str, String> {
        if let Some(k) = self.kind.filter(|k| *k != want) {
            return Err(format!(
                "{what} {}: the file holds {}, but {what} expects {}",
                self.path.display(),
                k.describe(),
                want.describe()
            ));
        }
        Ok(self.text.as_deref().unwrap_or(""))
    }

    fn bad(&self, what: &str, want: KeyKind, e: ParseError) -> String {
        format!(
            "{what} {}: {e} (expected {})",
            self.path.display(),
            want.expected()
        )
    }

    pub(crate) fn psk(&self, what: &str) -> Result<Psk, String> {
        let text = self.check(KeyKind::Psk, what)?;
        if self.text.is_none() {
            return keys::psk_from_file_bytes(&self.raw)
                .map_err(|e| self.bad(what, KeyKind::Psk, e));
        }
        keys::parse_psk(text).map_err(|e| self.bad(what, KeyKind::Psk, e))
    }

    pub(crate) fn secret_key(&self, what: &str) -> Result<KeyPair, String> {
        let text = self.check(KeyKind::SecretKey, what)?;
        keys::parse_secret_key(text).map_err(|e| self.bad(what, KeyKind::SecretKey, e))
    }

    pub(crate) fn public_key(&self, what: &str) -> Result<PublicKey, String> {
        let text = self.check(KeyKind::PublicKey, what)?;
        keys::parse_public_key(text).map_err(|e| self.bad(what, KeyKind::PublicKey, e))
    }

    pub(crate) fn client_id(&self, what: &str) -> Result<ClientId, String> {
        let text = self.check(KeyKind::ClientId, what)?;
        keys::parse_client_id(text).map_err(|e| self.bad(what, KeyKind::ClientId, e))
    }
}

/// Credentials given on the command line (both roles).
#[derive(Args, Debug)]
pub(crate) struct Credentials {
    /// Pre-shared key: 64 hex characters, or base64 of 32 bytes.
    #[arg(long, env = "PAV_PSK", value_parser = psk, hide_env_values = true)]
    pub(crate) psk: Option<Psk>,
    /// File holding the PSK (`pav keygen --out DIR` writes DIR/psk).
    #[arg(long, env = "PAV_PSK_FILE", conflicts_with = "psk")]
    pub(crate) psk_file: Option<PathBuf>,
    /// Client id: 16 bytes of text or 32 hex characters [default: pavillion-client with a PSK
    /// alone, else derived from our public key].
    #[arg(long, env = "PAV_CLIENT_ID", value_parser = client_id)]
    pub(crate) client_id: Option<ClientId>,
    /// File holding the client id (`pav keygen --out DIR` writes DIR/client.id).
    #[arg(long, env = "PAV_CLIENT_ID_FILE", conflicts_with = "client_id")]
    pub(crate) client_id_file: Option<PathBuf>,
    /// Our X25519 secret key (64 hex characters), for suites 2 and 3.
    #[arg(long, env = "PAV_SECRET_KEY", value_parser = secret_key, hide_env_values = true)]
    pub(crate) secret_key: Option<KeyPair>,
    /// File holding our secret key (`pav keygen --out DIR` writes DIR/secret.key).
    #[arg(long, env = "PAV_SECRET_KEY_FILE", conflicts_with = "secret_key")]
    pub(crate) secret_key_file: Option<PathBuf>,
}

impl Credentials {
    pub(crate) fn psk(&self) -> Result<Option<Psk>, Failure> {
        if let Some(p) = &self.psk {
            return Ok(Some(p.clone()));
        }
        self.psk_file
            .as_deref()
            .map(|p| KeyFile::read(p, "--psk-file")?.psk("--psk-file"))
            .transpose()
            .map_err(Failure::input)
    }

    pub(crate) fn client_id(&self) -> Result<Option<ClientId>, Failure> {
        if let Some(id) = self.client_id {
            return Ok(Some(id));
        }
        self.client_id_file
            .as_deref()
            .map(|p| KeyFile::read(p, "--client-id-file")?.client_id("--client-id-file"))
            .transpose()
            .map_err(Failure::input)
    }

    pub(crate) fn secret_key(&self) -> Result<Option<KeyPair>, Failure> {
        if let Some(k) = &self.secret_key {
            return Ok(Some(k.clone()));
        }
        self.secret_key_file
            .as_deref()
            .map(|p| KeyFile::read(p, "--secret-key-file")?.secret_key("--secret-key-file"))
            .transpose()
            .map_err(Failure::input)
    }
}

/// How a client reaches its server.
#[derive(Args, Debug)]
pub(crate) struct ClientArgs {
    /// Server address (port 1783 if omitted); a multicast group reaches every server in it.
    #[arg(long, short, env = "PAV_SERVER", default_value = "127.0.0.1:1783", value_parser = addr)]
    pub(crate) server: std::net::SocketAddr,
    /// Cipher suite: psk (suite 1), ecc (suite 2) or noise (suite 3) [default: noise with
    /// --secret-key, psk with a PSK alone]. Noise with a PSK alone is NNpsk0, with keys and a
    /// PSK IKpsk2.
    #[arg(long, env = "PAV_SUITE", value_parser = suite)]
    pub(crate) suite: Option<Suite>,
    /// The server's X25519 public key (64 hex characters), for suites 2 and 3.
    #[arg(long, env = "PAV_SERVER_KEY", value_parser = public_key)]
    pub(crate) server_key: Option<PublicKey>,
    /// File holding the server's public key (the server's `pav keygen --out DIR` wrote
    /// DIR/public.key).
    #[arg(long, env = "PAV_SERVER_KEY_FILE", conflicts_with = "server_key")]
    pub(crate) server_key_file: Option<PathBuf>,
    /// Seconds to wait for the server (answer, acknowledgement, connection).
    #[arg(long, short, env = "PAV_TIMEOUT", default_value = "2", value_parser = common::seconds)]
    pub(crate) timeout: Duration,
    /// Local address to bind [default: 0.0.0.0:0].
    #[arg(long, env = "PAV_BIND")]
    pub(crate) bind: Option<std::net::SocketAddr>,
    /// Largest message, call argument or answer to send or accept, such as 16M (at most 64M);
    /// larger than a datagram is sent in segments [default: 1M; `send` raises it to fit its
    /// payload].
    #[arg(long, env = "PAV_MAX_MESSAGE", value_name = "SIZE", value_parser = common::size)]
    pub(crate) max_message: Option<usize>,
    #[command(flatten)]
    pub(crate) credentials: Credentials,
}

impl ClientArgs {
    fn server_key(&self) -> Result<Option<PublicKey>, Failure> {
        if let Some(k) = self.server_key {
            return Ok(Some(k));
        }
        self.server_key_file
            .as_deref()
            .map(|p| KeyFile::read(p, "--server-key-file")?.public_key("--server-key-file"))
            .transpose()
            .map_err(Failure::input)
    }

    /// The suite and endpoint configuration these flags describe.
    pub(crate) fn config(&self) -> Result<(Suite, ClientConfig), Failure> {
        let c = &self.credentials;
        let psk = c.psk()?;
        let keys = c.secret_key()?;
        let server = self.server_key()?;
        let id = c.client_id()?;
        let suite = match (self.suite, &keys, &psk) {
            (Some(s), _, _) => s,
            (None, Some(_), _) => Suite::Noise,
            (None, None, Some(_)) => Suite::Psk,
            (None, None, None) => {
                return Err(Failure::input(
                    "no credentials: give --psk or --psk-file (suite 1, or noise NNpsk0), or \
                     --secret-key(-file) with --server-key(-file) (suites 2 and 3); \
                     `pav keygen --out DIR` makes the files",
                ))
            }
        };
        let need_server_key = || {
            Failure::input(format!(
                "--suite {suite} with a secret key needs the server's public key: \
                 --server-key or --server-key-file (pav serve prints it)"
            ))
        };
        let config =
            match suite {
                Suite::Psk => {
                    let psk = psk.ok_or_else(|| {
                        Failure::input("--suite psk needs a pre-shared key: --psk or --psk-file")
                    })?;
                    if keys.is_some() {
                        tracing::warn!("--suite psk does not use --secret-key");
                    }
                    ClientConfig::psk(id.unwrap_or_else(default_id), psk)
                }
                Suite::Ecc => {
                    let keys = keys.ok_or_else(|| {
                        Failure::input(
                            "--suite ecc needs our secret key (--secret-key or --secret-key-file) \
                         and the server's public key (--server-key or --server-key-file)",
                        )
                    })?;
                    let server = server.ok_or_else(need_server_key)?;
                    if psk.is_some() {
                        tracing::warn!("--suite ecc does not use a PSK");
                    }
                    match id {
                        Some(id) => ClientConfig::ecc(id, keys, server),
                        None => ClientConfig::guest(keys, server),
                    }
                }
                Suite::Noise => match (keys, psk) {
                    (Some(keys), psk) => {
                        let server = server.ok_or_else(need_server_key)?;
                        let id = id.unwrap_or_else(|| ecc::default_client_id(keys.public()));
                        let credentials = ClientCredentials::Noise {
                            keys: Some(keys),
                            server: Some(server),
                            psk,
                        };
                        ClientConfig::with_credentials(id, credentials)
                    }
                    (None, Some(psk)) => {
                        let credentials = ClientCredentials::Noise {
                            keys: None,
                            server: None,
                            psk: Some(psk),
                        };
                        ClientConfig::with_credentials(id.unwrap_or_else(default_id), credentials)
                    }
                    (None, None) => return Err(Failure::input(
                        "--suite noise needs our secret key (--secret-key or --secret-key-file) \
                         with the server's public key (--server-key or --server-key-file), or a \
                         PSK (--psk or --psk-file)",
                    )),
                },
            };
        let mut config = config.call_timeout(self.timeout).send_timeout(self.timeout);
        if let Some(b) = self.bind {
            config = config.bind(b);
        }
        if let Some(max) = self.max_message {
            config = config.max_message(max);
        }
        Ok((suite, config))
    }

    /// Opens a client with the credentials the arguments give.
    pub(crate) fn connect(&self) -> Result<Client, Failure> {
        self.connect_with(|c| c)
    }

    /// As [`ClientArgs::connect`], with the configuration changed by `tweak` first.
    pub(crate) fn connect_with(
        &self,
        tweak: impl FnOnce(ClientConfig) -> ClientConfig,
    ) -> Result<Client, Failure> {
        let (suite, config) = self.config()?;
        let config = tweak(config);
        tracing::info!(%suite, server = %self.server, "connecting");
        Client::connect(self.server, config).map_err(|e| match e {
            pavillion_std::OpenError::Durable(e) => crate::durable::failure(&e),
            e => Failure::failed("socket", format!("cannot open a client socket: {e}")),
        })
    }
}

pub(crate) fn default_id() -> ClientId {
    let mut id = [0; 16];
    id.copy_from_slice(DEFAULT_CLIENT_ID.as_bytes());
    ClientId(id)
}

// Value parsers: each gives clap a clear message, and clap exits with status 2.

pub(crate) fn psk(s: &str) -> Result<Psk, ParseError> {
    keys::parse_psk(s)
}

pub(crate) fn client_id(s: &str) -> Result<ClientId, ParseError> {
    keys::parse_client_id(s)
}

pub(crate) fn secret_key(s: &str) -> Result<KeyPair, ParseError> {
    keys::parse_secret_key(s)
}

pub(crate) fn public_key(s: &str) -> Result<PublicKey, ParseError> {
    keys::parse_public_key(s)
}

pub(crate) fn addr(s: &str) -> Result<std::net::SocketAddr, ParseError> {
    keys::parse_addr(s)
}
