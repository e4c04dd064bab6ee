//! The relay mesh's two frames, carried as unreliable messages (op 3) to target
//! [`TARGET`]: `carry` (a broadcast or multicast datagram captured on a segment) and
//! `members` (a relay's view of the mesh). `docs/PROTOCOL.md` §14 is the normative layout.
//!
//! Integers are little endian. Parsing checks every length before reading, so any input
//! gives a frame or a typed [`FrameError`], never a panic.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::codec::{Reader, Writer};
use super::Error;
use crate::crypto::ecc::PublicKey;
use crate::endpoint::{RelayId, Scope};
use crate::id::ClientId;

/// The message target of relay frames.
pub const TARGET: &str = "core.relay";
/// The message name of a carried datagram.
pub const CARRY: &str = "carry";
/// The message name of a membership announcement.
pub const MEMBERS: &str = "members";
/// The only frame version.
pub const VERSION: u8 = 1;
/// Longest segment name in a `members` entry.
pub const MAX_SEGMENT_LEN: usize = 64;

/// Most bytes of a `carry` frame: what one unreliable message to [`TARGET`] named
/// [`CARRY`] can hold in one datagram.
pub const MAX_CARRY_FRAME: usize =
    super::MAX_DATAGRAM - super::SESSION_OVERHEAD - 3 - TARGET.len() - CARRY.len();

/// Most bytes of a `members` frame.
pub const MAX_MEMBERS_FRAME: usize =
    super::MAX_DATAGRAM - super::SESSION_OVERHEAD - 3 - TARGET.len() - MEMBERS.len();

/// Longest `members` entry: key, family, IPv6 address, port, up, segment length, segment.
pub const MAX_MEMBER_ENTRY: usize = 32 + 1 + 16 + 2 + 1 + 1 + MAX_SEGMENT_LEN;

/// Most entries a `members` frame may hold so it always fits one datagram.
pub const MAX_MEMBERS: usize = (MAX_MEMBERS_FRAME - 2) / MAX_MEMBER_ENTRY;

const KIND_BROADCAST: u8 = 0;
const KIND_MULTICAST_V4: u8 = 4;
const KIND_MULTICAST_V6: u8 = 6;
const FAMILY_SOURCE: u8 = 0;
const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

/// Why a relay frame did not parse or could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame ended before a field.
    Truncated,
    /// The version byte is not [`VERSION`].
    BadVersion(u8),
    /// A `carry` frame with hop count 0 (the origin sends 1).
    ZeroHops,
    /// A `carry` kind other than 0, 4 and 6.
    BadKind(u8),
    /// An address family other than those the field allows.
    BadFamily(u8),
    /// A segment name longer than [`MAX_SEGMENT_LEN`].
    SegmentTooLong,
    /// A segment name that is not UTF-8.
    InvalidUtf8,
    /// A `members` entry's up byte other than 0 or 1 (one encoding per frame).
    BadUp(u8),
    /// A `members` frame with no entry (the sender's own comes first), bytes after the last
    /// entry, or more entries than [`MAX_MEMBERS`].
    BadCount,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl From<Error> for FrameError {
    fn from(e: Error) -> Self {
        match e {
            Error::BufferTooSmall => FrameError::BufferTooSmall,
            _ => FrameError::Truncated,
        }
    }
}

/// A `carry` frame: one captured datagram on its way through the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carry<'a> {
    /// Relays passed so far (1 when sent by the origin).
    pub hops: u8,
    /// The relay that captured it.
    pub origin: RelayId,
    /// Random per origin process start, so a restarted origin's sequence is not a replay.
    pub instance: u32,
    /// Per origin instance, from 1.
    pub seq: u64,
    /// Destination port.
    pub port: u16,
    /// The original sender.
    pub source: SocketAddr,
    /// Broadcast or which group.
    pub scope: Scope,
    /// The UDP payload, whole.
    pub payload: &'a [u8],
}

impl<'a> Carry<'a> {
    /// Bytes of the frame before its payload, for this source and scope.
    pub fn header_len(source: &SocketAddr, scope: &Scope) -> usize {
        let addr = match source {
            SocketAddr::V4(_) => 4,
            SocketAddr::V6(_) => 16,
        };
        let group = match scope {
            Scope::Broadcast => 0,
            Scope::Multicast(IpAddr::V4(_)) => 4,
            Scope::Multicast(IpAddr::V6(_)) => 16,
        };
        3 + 16 + 4 + 8 + 2 + 1 + addr + 2 + group
    }

    /// Bytes of the whole frame.
    pub fn buffer_len(&self) -> usize {
        Self::header_len(&self.source, &self.scope) + self.payload.len()
    }

    /// Parses a `carry` frame.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(FrameError::BadVersion(version));
        }
        let hops = r.u8()?;
        if hops == 0 {
            return Err(FrameError::ZeroHops);
        }
        let kind = r.u8()?;
        if !matches!(kind, KIND_BROADCAST | KIND_MULTICAST_V4 | KIND_MULTICAST_V6) {
            return Err(FrameError::BadKind(kind));
        }
        let origin = RelayId(ClientId(r.array()?));
        let instance = r.u32()?;
        let seq = r.u64()?;
        let port = r.u16()?;
        let family = r.u8()?;
        let ip = read_ip(&mut r, family)?.ok_or(FrameError::BadFamily(family))?;
        let source = SocketAddr::new(ip, r.u16()?);
        let scope = match kind {
            KIND_MULTICAST_V4 => Scope::Multicast(IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))),
            KIND_MULTICAST_V6 => Scope::Multicast(IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))),
            _ => Scope::Broadcast,
        };
        Ok(Carry {
            hops,
            origin,
            instance,
            seq,
            port,
            source,
            scope,
            payload: r.rest(),
        })
    }

    /// Writes the frame into `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, FrameError> {
        if self.hops == 0 {
            return Err(FrameError::ZeroHops);
        }
        let mut w = Writer::new(buf);
        w.u8(VERSION)?;
        w.u8(self.hops)?;
        w.u8(match self.scope {
            Scope::Broadcast => KIND_BROADCAST,
            Scope::Multicast(IpAddr::V4(_)) => KIND_MULTICAST_V4,
            Scope::Multicast(IpAddr::V6(_)) => KIND_MULTICAST_V6,
        })?;
        w.put(&self.origin.0 .0)?;
        w.u32(self.instance)?;
        w.u64(self.seq)?;
        w.u16(self.port)?;
        write_ip(&mut w, self.source.ip())?;
        w.u16(self.source.port())?;
        if let Scope::Multicast(group) = self.scope {
            match group {
                IpAddr::V4(a) => w.put(&a.octets())?,
                IpAddr::V6(a) => w.put(&a.octets())?,
            }
        }
        w.put(self.payload)?;
        Ok(w.written())
    }
}

/// One relay in a `members` frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its static public key.
    pub public: PublicKey,
    /// Its mesh address; `None`: the source of the packet that carried the frame.
    pub addr: Option<SocketAddr>,
    /// Whether the sender's session to it is up (always for the sender itself).
    pub up: bool,
    /// The segment it announced (empty if unknown).
    pub segment: String,
}

/// A `members` frame: the sender first, then every relay it knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Members {
    /// At least one entry (the sender's), at most [`MAX_MEMBERS`].
    pub entries: Vec<Member>,
}

impl Members {
    /// Parses a `members` frame.
    pub fn parse(bytes: &[u8]) -> Result<Self, FrameError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(FrameError::BadVersion(version));
        }
        let count = usize::from(r.u8()?);
        if count == 0 || count > MAX_MEMBERS {
            return Err(FrameError::BadCount);
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let public = PublicKey::from(r.array::<32>()?);
            let family = r.u8()?;
            let addr = if family == FAMILY_SOURCE {
                None
            } else {
                let ip = read_ip(&mut r, family)?.ok_or(FrameError::BadFamily(family))?;
                Some(SocketAddr::new(ip, r.u16()?))
            };
            let up = match r.u8()? {
                0 => false,
                1 => true,
                other => return Err(FrameError::BadUp(other)),
            };
            let len = usize::from(r.u8()?);
            if len > MAX_SEGMENT_LEN {
                return Err(FrameError::SegmentTooLong);
            }
            let mut name = [0u8; MAX_SEGMENT_LEN];
            for b in name.iter_mut().take(len) {
                *b = r.u8()?;
            }
            let segment = core::str::from_utf8(name.get(..len).unwrap_or_default())
                .map_err(|_| FrameError::InvalidUtf8)?;
            entries.push(Member {
                public,
                addr,
                up,
                segment: String::from(segment),
            });
        }
        if r.remaining() != 0 {
            return Err(FrameError::BadCount);
        }
        Ok(Members { entries })
    }

    /// Bytes of the whole frame.
    pub fn buffer_len(&self) -> usize {
        2 + self
            .entries
            .iter()
            .map(|m| {
                let addr = match m.addr {
                    None => 0,
                    Some(SocketAddr::V4(_)) => 4 + 2,
                    Some(SocketAddr::V6(_)) => 16 + 2,
                };
                32 + 1 + addr + 1 + 1 + m.segment.len()
            })
            .sum::<usize>()
    }

    /// Writes the frame into `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, FrameError> {
        let count = u8::try_from(self.entries.len()).map_err(|_| FrameError::BadCount)?;
        if count == 0 || usize::from(count) > MAX_MEMBERS {
            return Err(FrameError::BadCount);
        }
        let mut w = Writer::new(buf);
        w.u8(VERSION)?;
        w.u8(count)?;
        for m in &self.entries {
            let len = u8::try_from(m.segment.len()).map_err(|_| FrameError::SegmentTooLong)?;
            if usize::from(len) > MAX_SEGMENT_LEN {
                return Err(FrameError::SegmentTooLong);
            }
            w.put(m.public.as_bytes())?;
            match m.addr {
                None => w.u8(FAMILY_SOURCE)?,
                Some(a) => {
                    write_ip(&mut w, a.ip())?;
                    w.u16(a.port())?;
                }
            }
            w.u8(u8::from(m.up))?;
            w.u8(len)?;
            w.put(m.segment.as_bytes())?;
        }
        Ok(w.written())
    }
}

fn read_ip(r: &mut Reader<'_>, family: u8) -> Result<Option<IpAddr>, FrameError> {
    Ok(match family {
        FAMILY_V4 => Some(IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))),
        FAMILY_V6 => Some(IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))),
        _ => None,
    })
}

fn write_ip(w: &mut Writer<'_>, ip: IpAddr) -> Result<(), FrameError> {
    match ip {
        IpAddr::V4(a) => {
            w.u8(FAMILY_V4)?;
            w.put(&a.octets())?;
        }
        IpAddr::V6(a) => {
            w.u8(FAMILY_V6)?;
            w.put(&a.octets())?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
