//! The authority's payloads (`docs/PROTOCOL.md` §15): the `JOIN` call and its answer, the
//! `REVOKE` call, and the roster publications (`snapshot`, `delta`) on [`ROSTER_TARGET`].
//!
//! Integers are little endian. Parsing checks every length before reading, so any input
//! gives a value or a typed [`AuthorityWireError`], never a panic.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::crypto::ecc::PublicKey;
use crate::features::authority::{MemberId, RosterEntry, SigningPublic};
use crate::id::FunctionId;

/// The call a joining member makes on its authority session.
pub const JOIN: FunctionId = FunctionId(0xFF00);
/// The call that answers with a roster `snapshot` (members and operators only).
pub const FETCH: FunctionId = FunctionId(0xFF01);
/// The call by which an operator revokes a member.
pub const REVOKE: FunctionId = FunctionId(0xFF02);
/// The pub/sub target of roster publications.
pub const ROSTER_TARGET: &str = "core.roster";
/// The message name of a whole roster.
pub const SNAPSHOT: &str = "snapshot";
/// The message name of a change from one version to the next.
pub const DELTA: &str = "delta";
/// The only payload version.
pub const VERSION: u8 = 1;
/// Longest role or name.
pub const MAX_LABEL: usize = 32;

/// Why an authority payload did not parse or could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorityWireError {
    /// The payload ended before a field.
    Truncated,
    /// The version byte is not [`VERSION`].
    BadVersion(u8),
    /// An unknown proof kind, outcome, refusal reason or address family.
    BadCode(u8),
    /// A role or name longer than [`MAX_LABEL`] or not UTF-8.
    BadLabel,
    /// Bytes after the last field.
    TrailingBytes,
    /// A count larger than the payload can hold.
    BadCount,
    /// The output buffer is too small.
    NoRoom,
}

/// How a joiner proves it may join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// None: its key must be listed in the policy or admitted already.
    Listed,
    /// `BLAKE2b-256(key = enrolment key, "pavillion join v1" || authority public || joiner
    /// public)`.
    Enrolment([u8; 32]),
}

/// The `JOIN` call's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest<'a> {
    /// The joiner's static key; its hash must match the session's.
    pub public: PublicKey,
    /// Its proof.
    pub proof: Proof,
    /// The role it asks for (a listed key's policy role wins).
    pub role: &'a str,
    /// Its human label.
    pub name: &'a str,
}

/// Why the authority refused a join. The codes are the wire's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum JoinRefusal {
    /// 1: no proof, and the key is neither listed nor admitted.
    NotInPolicy,
    /// 2: the proof matches no enrolment secret.
    BadProof,
    /// 3: this key failed too often; it may try again after the lock.
    LockedOut,
    /// 4: this key was revoked.
    Revoked,
    /// 5: the roster holds `max_peers` members.
    Full,
    /// 6: the request does not parse, or names another key than the session's.
    Malformed,
    /// 7: too many failed proofs lately, over all keys; try again later.
    Busy,
}

/// The `JOIN` call's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinAnswer {
    /// Admitted.
    Admitted {
        /// Our member id.
        id: MemberId,
        /// The authority's roster signing key, to pin.
        signing: SigningPublic,
        /// The roster's epoch.
        epoch: u64,
        /// The roster's version at admission.
        version: u64,
        /// The role we were given.
        role: String,
    },
    /// Refused.
    Refused {
        /// Why.
        reason: JoinRefusal,
        /// When trying again may help (`LockedOut`, `Busy`), in milliseconds; else 0.
        retry_after_ms: u32,
    },
}

/// A whole roster as published (name [`SNAPSHOT`], and the `FETCH` answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The roster's epoch.
    pub epoch: u64,
    /// Its version.
    pub version: u64,
    /// Every member, sorted by id.
    pub entries: Vec<RosterEntry>,
    /// Ed25519 over the domain string, the name byte and every byte before it.
    pub signature: [u8; 64],
}

/// A change from version `base` to `version` (name [`DELTA`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    /// The roster's epoch.
    pub epoch: u64,
    /// The version it applies to.
    pub base: u64,
    /// The version it makes.
    pub version: u64,
    /// Entries added or changed.
    pub upserts: Vec<RosterEntry>,
    /// Members removed.
    pub removals: Vec<MemberId>,
    /// The digest of the roster after applying it.
    pub digest: [u8; 32],
    /// Ed25519 over the domain string, the name byte and every byte before it.
    pub signature: [u8; 64],
}

impl JoinRefusal {
    /// Its wire code.
    pub const fn code(self) -> u8 {
        match self {
            JoinRefusal::NotInPolicy => 1,
            JoinRefusal::BadProof => 2,
            JoinRefusal::LockedOut => 3,
            JoinRefusal::Revoked => 4,
            JoinRefusal::Full => 5,
            JoinRefusal::Malformed => 6,
            JoinRefusal::Busy => 7,
        }
    }

    /// The refusal of a wire code.
    pub const fn from_code(code: u8) -> Option<JoinRefusal> {
        Some(match code {
            1 => JoinRefusal::NotInPolicy,
            2 => JoinRefusal::BadProof,
            3 => JoinRefusal::LockedOut,
            4 => JoinRefusal::Revoked,
            5 => JoinRefusal::Full,
            6 => JoinRefusal::Malformed,
            7 => JoinRefusal::Busy,
            _ => return None,
        })
    }

    /// A lowercase word for logs and `pav` output (`not-in-policy`, `bad-proof`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            JoinRefusal::NotInPolicy => "not-in-policy",
            JoinRefusal::BadProof => "bad-proof",
            JoinRefusal::LockedOut => "locked-out",
            JoinRefusal::Revoked => "revoked",
            JoinRefusal::Full => "full",
            JoinRefusal::Malformed => "malformed",
            JoinRefusal::Busy => "busy",
        }
    }
}

impl core::fmt::Display for JoinRefusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The enrolment key of a secret: `BLAKE2b-256("pavillion enrolment v1" || secret)`. Only
/// this key, never the secret, is needed to make or check proofs.
pub fn enrolment_key(secret: &[u8]) -> [u8; 32] {
    hash_parts(&[b"pavillion enrolment v1", secret])
}

/// The enrolment proof a joiner sends: `BLAKE2b-256(key = enrolment key, "pavillion join v1"
/// || authority public || joiner public)`. Binding both keys makes a proof useless for another
/// joiner key or another authority, so an eavesdropper (or a malicious authority) cannot replay it.
pub fn enrolment_proof(
    enrolment_key: &[u8; 32],
    authority: &PublicKey,
    joiner: &PublicKey,
) -> [u8; 32] {
    crate::crypto::keyed_hash(
        enrolment_key,
        &[
            b"pavillion join v1",
            authority.as_bytes(),
            joiner.as_bytes(),
        ],
    )
}

/// Unkeyed BLAKE2b-256 of the concatenation of `parts`.
pub(crate) fn hash_parts(parts: &[&[u8]]) -> [u8; 32] {
    use blake2::digest::consts::U32;
    use blake2::{Blake2b, Digest};
    let mut h = Blake2b::<U32>::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// The domain string every roster signature starts with.
pub(crate) const SIGNATURE_DOMAIN: &[u8] = b"pavillion roster v1";
/// The name byte of a `snapshot` in the signed message.
pub(crate) const SNAPSHOT_NAME_BYTE: u8 = 0;
/// The name byte of a `delta` in the signed message.
pub(crate) const DELTA_NAME_BYTE: u8 = 1;

/// The smallest encoded entry: id, public, two empty labels, no address, up.
const MIN_ENTRY: usize = 16 + 32 + 1 + 1 + 1 + 1;

/// A cursor over a payload that reports short input as [`AuthorityWireError::Truncated`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], AuthorityWireError> {
        if self.0.len() < n {
            return Err(AuthorityWireError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AuthorityWireError> {
        let mut a = [0; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, AuthorityWireError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, AuthorityWireError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, AuthorityWireError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, AuthorityWireError> {
        self.array().map(u64::from_le_bytes)
    }

    fn label(&mut self) -> Result<&'a str, AuthorityWireError> {
        let len = usize::from(self.u8()?);
        if len > MAX_LABEL {
            return Err(AuthorityWireError::BadLabel);
        }
        core::str::from_utf8(self.bytes(len)?).map_err(|_| AuthorityWireError::BadLabel)
    }

    fn entry(&mut self) -> Result<RosterEntry, AuthorityWireError> {
        let id = MemberId(crate::id::ClientId(self.array()?));
        let public = PublicKey::from(self.array::<32>()?);
        let role = String::from(self.label()?);
        let name = String::from(self.label()?);
        let addr = match self.u8()? {
            0 => None,
            4 => {
                let ip = Ipv4Addr::from(self.array::<4>()?);
                Some(SocketAddr::new(IpAddr::V4(ip), self.u16()?))
            }
            6 => {
                let ip = Ipv6Addr::from(self.array::<16>()?);
                Some(SocketAddr::new(IpAddr::V6(ip), self.u16()?))
            }
            other => return Err(AuthorityWireError::BadCode(other)),
        };
        let up = match self.u8()? {
            0 => false,
            1 => true,
            other => return Err(AuthorityWireError::BadCode(other)),
        };
        Ok(RosterEntry {
            id,
            public,
            role,
            name,
            addr,
            up,
        })
    }

    /// `count` entries, refusing a count the rest of the payload cannot hold before
    /// allocating for it (a remote peer must not make us reserve memory it did not send).
    fn entries(&mut self, count: usize) -> Result<Vec<RosterEntry>, AuthorityWireError> {
        if count > self.0.len() / MIN_ENTRY {
            return Err(AuthorityWireError::BadCount);
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(self.entry()?);
        }
        Ok(entries)
    }

    fn end(&self) -> Result<(), AuthorityWireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AuthorityWireError::TrailingBytes)
        }
    }
}

/// Writes a label, cut to [`MAX_LABEL`] bytes at a character boundary so that what we write
/// always parses (the authority checks lengths at admission; this only guards misuse).
fn put_label(out: &mut Vec<u8>, label: &str) {
    let mut end = label.len().min(MAX_LABEL);
    while !label.is_char_boundary(end) {
        end -= 1;
    }
    out.push(end as u8);
    out.extend_from_slice(&label.as_bytes()[..end]);
}

/// Appends the canonical encoding of one roster entry (`docs/PROTOCOL.md` §15): the bytes
/// digests and signatures cover.
pub(crate) fn encode_entry(entry: &RosterEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(&entry.id.0 .0);
    out.extend_from_slice(entry.public.as_bytes());
    put_label(out, &entry.role);
    put_label(out, &entry.name);
    match entry.addr {
        None => out.push(0),
        Some(SocketAddr::V4(a)) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_le_bytes());
        }
        Some(SocketAddr::V6(a)) => {
            out.push(6);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_le_bytes());
        }
    }
    out.push(u8::from(entry.up));
}

/// Parses one canonical entry from the front of `bytes` (a stored member record), returning
/// it and the bytes after it.
pub(crate) fn parse_entry(bytes: &[u8]) -> Result<(RosterEntry, &[u8]), AuthorityWireError> {
    let mut r = Reader(bytes);
    let entry = r.entry()?;
    Ok((entry, r.0))
}

/// Appends epoch, version, count and the entries: a snapshot without its signature, and what
/// the roster digest hashes after its domain string.
pub(crate) fn encode_roster_body<'e>(
    epoch: u64,
    version: u64,
    entries: impl ExactSizeIterator<Item = &'e RosterEntry>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for e in entries.take(count as usize) {
        encode_entry(e, out);
    }
}

/// The message a roster signature covers: domain, name byte, then the payload up to the
/// signature.
pub(crate) fn signed_message(name_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 1 + body.len());
    m.extend_from_slice(SIGNATURE_DOMAIN);
    m.push(name_byte);
    m.extend_from_slice(body);
    m
}

impl<'a> JoinRequest<'a> {
    /// Parses a `JOIN` payload.
    pub fn parse(payload: &'a [u8]) -> Result<Self, AuthorityWireError> {
        let mut r = Reader(payload);
        let version = r.u8()?;
        if version != VERSION {
            return Err(AuthorityWireError::BadVersion(version));
        }
        let public = PublicKey::from(r.array::<32>()?);
        let proof = match r.u8()? {
            0 => Proof::Listed,
            1 => Proof::Enrolment(r.array()?),
            other => return Err(AuthorityWireError::BadCode(other)),
        };
        let role = r.label()?;
        let name = r.label()?;
        r.end()?;
        Ok(JoinRequest {
            public,
            proof,
            role,
            name,
        })
    }

    /// Appends the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(self.public.as_bytes());
        match &self.proof {
            Proof::Listed => out.push(0),
            Proof::Enrolment(p) => {
                out.push(1);
                out.extend_from_slice(p);
            }
        }
        put_label(out, self.role);
        put_label(out, self.name);
    }
}

impl JoinAnswer {
    /// Parses a `JOIN` answer.
    pub fn parse(payload: &[u8]) -> Result<Self, AuthorityWireError> {
        let mut r = Reader(payload);
        let version = r.u8()?;
        if version != VERSION {
            return Err(AuthorityWireError::BadVersion(version));
        }
        let answer = match r.u8()? {
            0 => JoinAnswer::Admitted {
                id: MemberId(crate::id::ClientId(r.array()?)),
                signing: SigningPublic(r.array()?),
                epoch: r.u64()?,
                version: r.u64()?,
                role: String::from(r.label()?),
            },
            1 => {
                let code = r.u8()?;
                JoinAnswer::Refused {
                    reason: JoinRefusal::from_code(code)
                        .ok_or(AuthorityWireError::BadCode(code))?,
                    retry_after_ms: r.u32()?,
                }
            }
            other => return Err(AuthorityWireError::BadCode(other)),
        };
        r.end()?;
        Ok(answer)
    }

    /// Appends the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        match self {
            JoinAnswer::Admitted {
                id,
                signing,
                epoch,
                version,
                role,
            } => {
                out.push(0);
                out.extend_from_slice(&id.0 .0);
                out.extend_from_slice(&signing.0);
                out.extend_from_slice(&epoch.to_le_bytes());
                out.extend_from_slice(&version.to_le_bytes());
                put_label(out, role);
            }
            JoinAnswer::Refused {
                reason,
                retry_after_ms,
            } => {
                out.push(1);
                out.push(reason.code());
                out.extend_from_slice(&retry_after_ms.to_le_bytes());
            }
        }
    }
}

impl Snapshot {
    /// Parses a `snapshot` payload (the signature is not checked here).
    pub fn parse(payload: &[u8]) -> Result<Self, AuthorityWireError> {
        let mut r = Reader(payload);
        let epoch = r.u64()?;
        let version = r.u64()?;
        let count = r.u32()? as usize;
        let entries = r.entries(count)?;
        let signature = r.array()?;
        r.end()?;
        Ok(Snapshot {
            epoch,
            version,
            entries,
            signature,
        })
    }

    /// Appends the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_roster_body(self.epoch, self.version, self.entries.iter(), out);
        out.extend_from_slice(&self.signature);
    }

    /// The bytes the signature covers (domain, name byte, the payload before the signature).
    pub fn signed_message(&self) -> Vec<u8> {
        let mut body = Vec::new();
        encode_roster_body(self.epoch, self.version, self.entries.iter(), &mut body);
        signed_message(SNAPSHOT_NAME_BYTE, &body)
    }
}

impl Delta {
    /// Parses a `delta` payload (the signature is not checked here).
    pub fn parse(payload: &[u8]) -> Result<Self, AuthorityWireError> {
        let mut r = Reader(payload);
        let epoch = r.u64()?;
        let base = r.u64()?;
        let version = r.u64()?;
        let count = usize::from(r.u16()?);
        let upserts = r.entries(count)?;
        let removal_count = usize::from(r.u16()?);
        if removal_count > r.0.len() / 16 {
            return Err(AuthorityWireError::BadCount);
        }
        let mut removals = Vec::with_capacity(removal_count);
        for _ in 0..removal_count {
            removals.push(MemberId(crate::id::ClientId(r.array()?)));
        }
        let digest = r.array()?;
        let signature = r.array()?;
        r.end()?;
        Ok(Delta {
            epoch,
            base,
            version,
            upserts,
            removals,
            digest,
            signature,
        })
    }

    /// Appends the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_body(out);
        out.extend_from_slice(&self.signature);
    }

    /// Everything before the signature. Counts are two bytes: the authority sends a snapshot
    /// instead of a delta that would not fit, so at most `u16::MAX` of each are written.
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.base.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        let upserts = u16::try_from(self.upserts.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&upserts.to_le_bytes());
        for e in self.upserts.iter().take(usize::from(upserts)) {
            encode_entry(e, out);
        }
        let removals = u16::try_from(self.removals.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&removals.to_le_bytes());
        for id in self.removals.iter().take(usize::from(removals)) {
            out.extend_from_slice(&id.0 .0);
        }
        out.extend_from_slice(&self.digest);
    }

    /// The bytes the signature covers (domain, name byte, the payload before the signature).
    pub fn signed_message(&self) -> Vec<u8> {
        let mut body = Vec::new();
        self.encode_body(&mut body);
        signed_message(DELTA_NAME_BYTE, &body)
    }
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
