//! How event types serialize (the `serde` feature): the conventions of structured traces.
//!
//! Event enums of every role are internally tagged with `kind` in `snake_case`
//! (`{"kind":"delivered","id":5,...}`), so `jq 'select(.event.kind=="delivered")'` works on a
//! trace; the few newtype variants whose content is not a struct (a `MemberEvent`'s
//! `RosterRejected`) are written as a struct of one field. Other enums (reasons, values) are
//! externally tagged in `snake_case`: a unit variant is a string (`"peer_closed"`), a variant
//! with content an object of one key (`{"authentication_failed":"wrong_psk"}`).
//!
//! - ids and counters are JSON numbers (newtypes are transparent);
//! - [`Instant`]s and durations are microseconds ([`micros`]);
//! - byte strings (payloads, RPC arguments, guest ids, client ids) are lower-case hex strings
//!   ([`hex`]);
//! - addresses are `ip:port` strings.
//!
//! `docs/TRACE.md` §4 specifies the result for the simulator's trace.

use core::fmt::Write as _;

use serde::ser::{SerializeStruct as _, Serializer};
use serde::Serialize;

use crate::id::ClientId;
use crate::time::{Duration, Instant};

/// Bytes as one lower-case hex string.
///
/// # Errors
/// Whatever the serializer returns.
pub fn hex<S: Serializer>(bytes: impl AsRef<[u8]>, s: S) -> Result<S::Ok, S::Error> {
    let bytes = bytes.as_ref();
    let mut out = alloc::string::String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // NOTE(unwrap): writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    s.serialize_str(&out)
}

/// A duration as whole microseconds (saturating at `u64::MAX`).
///
/// # Errors
/// Whatever the serializer returns.
pub fn micros<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// An optional duration as whole microseconds, or `null`.
///
/// # Errors
/// Whatever the serializer returns.
pub fn option_micros<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => micros(d, s),
        None => s.serialize_none(),
    }
}

/// A value as a struct of one field `reason`: the content of a newtype variant of an
/// internally tagged enum, which must be a map.
///
/// # Errors
/// Whatever the serializer returns.
pub fn as_reason<S: Serializer, T: Serialize>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    let mut st = s.serialize_struct("Reason", 1)?;
    st.serialize_field("reason", value)?;
    st.end()
}

impl Serialize for Instant {
    /// Microseconds since the driver's origin (the start of a simulation).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.as_micros())
    }
}

impl Serialize for ClientId {
    /// The 16 bytes as 32 lower-case hex digits, as `Display` writes them.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        hex(self.0, s)
    }
}
