//! `pav keygen`: fresh keys, printed or written as key files.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::Args;
use pavillion_proto::crypto::ecc;
use pavillion_std::keys;
use serde_json::json;

use crate::common::Failure;
use crate::keys::KeyKind;

#[derive(Args, Debug)]
pub(crate) struct KeygenArgs {
    /// Write the keys as files into this folder (created if missing): psk, secret.key
    /// (both mode 0600), public.key and client.id.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace key files that already exist in --out.
    #[arg(long, requires = "out")]
    force: bool,
}

pub(crate) const AFTER_HELP: &str = "\
Examples:
  pav keygen --out server     # the server's keys: server/secret.key, server/public.key
  pav keygen --out alice      # a client's keys: alice/secret.key, alice/public.key, ...
  pav serve --secret-key-file server/secret.key --client alice/public.key
  pav call 401 hi --secret-key-file alice/secret.key --server-key-file server/public.key
  pav keygen --json           # print fresh keys instead of writing files

Each file holds one key in hex after a comment line that names its kind (# pavillion psk,
# pavillion secret-key, # pavillion public-key, # pavillion client-id), so a --*-file flag
refuses a file of the wrong kind. Secret files (psk, secret.key) are created with mode 0600
and never overwritten without --force. client.id is the id a client with this key pair uses
by default (the reference's rule: the start of the BLAKE2b hash of the public key).";

struct Written {
    kind: KeyKind,
    path: PathBuf,
    secret: bool,
    read_by: &'static str,
}

pub(crate) fn run(json: bool, a: KeygenArgs) -> Result<(), Failure> {
    let psk = keys::generate_psk();
    let pair = keys::generate_keypair();
    let id = ecc::default_client_id(pair.public());
    let psk_hex = hex::encode(psk.danger_as_bytes());
    let psk_b64 = keys::psk_base64(&psk);
    let secret = hex::encode(pair.secret().to_bytes());
    let public = hex::encode(pair.public().as_bytes());
    let id_hex = hex::encode(id.0);
    let Some(dir) = a.out else {
        if json {
            println!(
                "{}",
                json!({"psk_hex": psk_hex, "psk_base64": psk_b64, "secret_key": secret,
                       "public_key": public, "client_id": id_hex})
            );
        } else {
            println!("psk (hex):    {psk_hex}");
            println!("psk (base64): {psk_b64}");
            println!("secret key:   {secret}");
            println!("public key:   {public}");
            println!("client id:    {id_hex}");
        }
        return Ok(());
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::failed("io", format!("cannot create {}: {e}", dir.display())))?;
    let files = [
        (KeyKind::Psk, "psk", &psk_hex, true,
         "--psk-file (client); --client ID=FILE or psk_file in --config (server)"),
        (KeyKind::SecretKey, "secret.key", &secret, true,
         "--secret-key-file (client or server); secret_key_file in --config (server)"),
        (KeyKind::PublicKey, "public.key", &public, false,
         "--server-key-file (clients of this server); --client ID=FILE or public_key_file in --config (server)"),
        (KeyKind::ClientId, "client.id", &id_hex, false,
         "--client-id-file (client); id_file in --config (server)"),
    ];
    // Refuse before writing anything, so that a refusal leaves no half-made set.
    if !a.force {
        if let Some((_, name, ..)) = files.iter().find(|f| dir.join(f.1).exists()) {
            return Err(Failure::failed(
                "exists",
                format!(
                    "{} exists; pav keygen does not overwrite keys without --force",
                    dir.join(name).display()
                ),
            ));
        }
    }
    let mut written = Vec::new();
    for (kind, name, value, secret, read_by) in files {
        let path = dir.join(name);
        write_key(&path, kind, value, secret, a.force)?;
        written.push(Written {
            kind,
            path,
            secret,
            read_by,
        });
    }
    if json {
        let files: Vec<_> = written
            .iter()
            .map(|w| {
                json!({"kind": w.kind.tag(), "path": w.path.display().to_string(),
                       "mode": if w.secret { "0600" } else { "0644" }, "read_by": w.read_by})
            })
            .collect();
        println!(
            "{}",
            json!({"files": files, "public_key": public, "client_id": id_hex})
        );
    } else {
        for w in &written {
            let mode = if w.secret { "0600" } else { "0644" };
            println!("wrote {} ({mode})", w.path.display());
            println!("    read by {}", w.read_by);
        }
        println!("public key: {public}");
        println!("client id:  {id_hex}");
    }
    Ok(())
}

/// Writes one key file. A secret one is created with mode 0600 by `open(2)` itself, so it is
/// never readable by others, not even for a moment.
fn write_key(
    path: &Path,
    kind: KeyKind,
    value: &str,
    secret: bool,
    force: bool,
) -> Result<(), Failure> {
    let io =
        |e: std::io::Error| Failure::failed("io", format!("cannot write {}: {e}", path.display()));
    if force {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(io)?;
    writeln!(file, "# pavillion {}", kind.tag())
        .and_then(|()| writeln!(file, "{value}"))
        .map_err(io)
}
