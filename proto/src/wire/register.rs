//! Registers and observe: the payloads of application opcodes 6 to 10 (`docs/PROTOCOL.md`
//! §9.8). Every multi-byte field is little-endian, as everywhere else.
//!
//! - Op 6 [`RegisterRead`]: `u16 register` (2 bytes).
//! - Op 7 [`RegisterValuePacket`]: `u64 answers`, `u16 register`, `u8 status`, `u8 type`,
//!   `u8 flags`, then the value's bytes (13 bytes, then the value).
//! - Op 8 [`ObserveRequest`]: `u16 register`, `u32 duration ms`, `u32 min interval ms`
//!   (10 bytes).
//! - Op 9 [`RegisterInfoRequest`]: `u16 from` (2 bytes).
//! - Op 10 [`RegisterInfoPacket`]: `u64 answers`, `u8 status`, `u16 register`, `u8 type`,
//!   `u8 flags`, `u8 name length`, name, `u8 unit length`, unit.
//!
//! Values are typed by one byte ([`RegisterType`]); each type fixes its length, except text
//! and bytes, which take the rest of the packet. Parsing checks the length, that a boolean
//! is 0 or 1 and that text is UTF-8, so a parsed value is always a valid one.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::codec::{Reader, Writer};
use super::Error;
use crate::id::Counter;

/// The most bytes in a register's name (UTF-8, no newline).
pub const MAX_NAME_LEN: usize = 64;
/// The most bytes in a register's unit (UTF-8).
pub const MAX_UNIT_LEN: usize = 16;
/// The most bytes of a text or bytes value: what fits one datagram with every header.
pub const MAX_VALUE_LEN: usize = 1024;

/// A register's number, chosen by the server's application (op 6 to 10's `u16 register`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RegisterId(pub u16);

impl fmt::Display for RegisterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The type byte of a value. Byte 0 ([`RegisterType::None`]) marks a packet that carries no
/// value (an error answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[repr(u8)]
pub enum RegisterType {
    /// No value (0 bytes).
    None = 0,
    /// A boolean: one byte, 0 or 1.
    Bool = 1,
    /// A signed 64-bit integer (8 bytes).
    I64 = 2,
    /// An unsigned 64-bit integer (8 bytes).
    U64 = 3,
    /// An IEEE 754 single (4 bytes); the reference's tags are of this type.
    F32 = 4,
    /// An IEEE 754 double (8 bytes).
    F64 = 5,
    /// UTF-8 text, the rest of the packet (at most [`MAX_VALUE_LEN`] bytes).
    Text = 6,
    /// Opaque bytes, the rest of the packet (at most [`MAX_VALUE_LEN`] bytes).
    Bytes = 7,
}

impl RegisterType {
    /// The type of a type byte.
    ///
    /// # Errors
    /// [`Error::BadRegisterValue`] for a byte that names no type.
    pub fn from_byte(b: u8) -> Result<Self, Error> {
        Ok(match b {
            0 => RegisterType::None,
            1 => RegisterType::Bool,
            2 => RegisterType::I64,
            3 => RegisterType::U64,
            4 => RegisterType::F32,
            5 => RegisterType::F64,
            6 => RegisterType::Text,
            7 => RegisterType::Bytes,
            _ => return Err(Error::BadRegisterValue),
        })
    }

    /// A short lower-case name (`bool`, `i64`, `u64`, `f32`, `f64`, `text`, `bytes`, `none`),
    /// as `pav` prints and parses it.
    pub const fn name(self) -> &'static str {
        match self {
            RegisterType::None => "none",
            RegisterType::Bool => "bool",
            RegisterType::I64 => "i64",
            RegisterType::U64 => "u64",
            RegisterType::F32 => "f32",
            RegisterType::F64 => "f64",
            RegisterType::Text => "text",
            RegisterType::Bytes => "bytes",
        }
    }

    /// The type named `name` (see [`RegisterType::name`]); `None` for no type.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            RegisterType::Bool,
            RegisterType::I64,
            RegisterType::U64,
            RegisterType::F32,
            RegisterType::F64,
            RegisterType::Text,
            RegisterType::Bytes,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }
}

/// A register's value, owned.
///
/// Floats compare by their bits, so that a value equals itself even when it is a NaN (and
/// so that events holding values can be compared in tests).
#[derive(Clone, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
pub enum RegisterValue {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A single-precision float.
    F32(f32),
    /// A double-precision float.
    F64(f64),
    /// UTF-8 text.
    Text(String),
    /// Opaque bytes.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::serde_util::hex"))]
    Bytes(Vec<u8>),
}

impl PartialEq for RegisterValue {
    fn eq(&self, other: &Self) -> bool {
        self.as_ref() == other.as_ref()
    }
}

impl Eq for RegisterValue {}

impl RegisterValue {
    /// The value's type.
    pub fn kind(&self) -> RegisterType {
        self.as_ref().kind()
    }

    /// The value, borrowed in its wire form.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            RegisterValue::Bool(v) => ValueRef::Bool(*v),
            RegisterValue::I64(v) => ValueRef::I64(*v),
            RegisterValue::U64(v) => ValueRef::U64(*v),
            RegisterValue::F32(v) => ValueRef::F32(v.to_bits()),
            RegisterValue::F64(v) => ValueRef::F64(v.to_bits()),
            RegisterValue::Text(v) => ValueRef::Text(v),
            RegisterValue::Bytes(v) => ValueRef::Bytes(v),
        }
    }

    /// Parses `text` as a value of type `kind` (as `pav set` and `pav serve --register`
    /// read them): `true`/`false`/`1`/`0`, decimal numbers, text as is, bytes as hex.
    /// `None` if it is not one.
    pub fn parse_as(kind: RegisterType, text: &str) -> Option<RegisterValue> {
        Some(match kind {
            RegisterType::None => return None,
            RegisterType::Bool => match text {
                "true" | "1" | "on" => RegisterValue::Bool(true),
                "false" | "0" | "off" => RegisterValue::Bool(false),
                _ => return None,
            },
            RegisterType::I64 => RegisterValue::I64(text.parse().ok()?),
            RegisterType::U64 => RegisterValue::U64(text.parse().ok()?),
            RegisterType::F32 => RegisterValue::F32(text.parse().ok()?),
            RegisterType::F64 => RegisterValue::F64(text.parse().ok()?),
            RegisterType::Text => RegisterValue::Text(text.into()),
            RegisterType::Bytes => RegisterValue::Bytes(unhex(text)?),
        })
    }
}

impl fmt::Display for RegisterValue {
    /// The value as [`RegisterValue::parse_as`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterValue::Bool(v) => write!(f, "{v}"),
            RegisterValue::I64(v) => write!(f, "{v}"),
            RegisterValue::U64(v) => write!(f, "{v}"),
            RegisterValue::F32(v) => write!(f, "{v}"),
            RegisterValue::F64(v) => write!(f, "{v}"),
            RegisterValue::Text(v) => f.write_str(v),
            RegisterValue::Bytes(v) => {
                for b in v {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// A value as it is on the wire, borrowing from the packet. Floats are held as their bits,
/// so that the value is `Eq` and `Copy` like every other parsed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef<'a> {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// The bits of a single-precision float.
    F32(u32),
    /// The bits of a double-precision float.
    F64(u64),
    /// UTF-8 text.
    Text(&'a str),
    /// Opaque bytes.
    Bytes(&'a [u8]),
}

impl<'a> ValueRef<'a> {
    /// The value's type.
    pub fn kind(&self) -> RegisterType {
        match self {
            ValueRef::Bool(_) => RegisterType::Bool,
            ValueRef::I64(_) => RegisterType::I64,
            ValueRef::U64(_) => RegisterType::U64,
            ValueRef::F32(_) => RegisterType::F32,
            ValueRef::F64(_) => RegisterType::F64,
            ValueRef::Text(_) => RegisterType::Text,
            ValueRef::Bytes(_) => RegisterType::Bytes,
        }
    }

    /// The value, owned.
    pub fn to_owned(&self) -> RegisterValue {
        match *self {
            ValueRef::Bool(v) => RegisterValue::Bool(v),
            ValueRef::I64(v) => RegisterValue::I64(v),
            ValueRef::U64(v) => RegisterValue::U64(v),
            ValueRef::F32(v) => RegisterValue::F32(f32::from_bits(v)),
            ValueRef::F64(v) => RegisterValue::F64(f64::from_bits(v)),
            ValueRef::Text(v) => RegisterValue::Text(v.into()),
            ValueRef::Bytes(v) => RegisterValue::Bytes(v.into()),
        }
    }

    /// Bytes the value takes after its type byte.
    pub fn buffer_len(&self) -> usize {
        match self {
            ValueRef::Bool(_) => 1,
            ValueRef::F32(_) => 4,
            ValueRef::I64(_) | ValueRef::U64(_) | ValueRef::F64(_) => 8,
            ValueRef::Text(s) => s.len(),
            ValueRef::Bytes(b) => b.len(),
        }
    }

    /// Reads a value of type `kind` from all of `bytes` (`None` for [`RegisterType::None`],
    /// which must have no bytes).
    fn parse(kind: RegisterType, bytes: &'a [u8]) -> Result<Option<ValueRef<'a>>, Error> {
        let fixed = match kind {
            RegisterType::None => Some(0),
            RegisterType::Bool => Some(1),
            RegisterType::F32 => Some(4),
            RegisterType::I64 | RegisterType::U64 | RegisterType::F64 => Some(8),
            RegisterType::Text | RegisterType::Bytes => None,
        };
        match fixed {
            Some(n) if bytes.len() != n => return Err(bad_length(n, bytes.len())),
            None if bytes.len() > MAX_VALUE_LEN => {
                return Err(bad_length(MAX_VALUE_LEN, bytes.len()))
            }
            _ => {}
        }
        let mut r = Reader::new(bytes);
        Ok(Some(match kind {
            RegisterType::None => return Ok(None),
            RegisterType::Bool => match r.u8()? {
                0 => ValueRef::Bool(false),
                1 => ValueRef::Bool(true),
                _ => return Err(Error::BadRegisterValue),
            },
            RegisterType::I64 => ValueRef::I64(r.i64()?),
            RegisterType::U64 => ValueRef::U64(r.u64()?),
            RegisterType::F32 => ValueRef::F32(r.u32()?),
            RegisterType::F64 => ValueRef::F64(r.u64()?),
            RegisterType::Text => ValueRef::Text(utf8(bytes)?),
            RegisterType::Bytes => ValueRef::Bytes(bytes),
        }))
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        match *self {
            ValueRef::Bool(v) => w.u8(u8::from(v)),
            ValueRef::I64(v) => w.i64(v),
            ValueRef::U64(v) | ValueRef::F64(v) => w.u64(v),
            ValueRef::F32(v) => w.u32(v),
            ValueRef::Text(s) => w.put(s.as_bytes()),
            ValueRef::Bytes(b) => w.put(b),
        }
    }
}

/// The status byte of ops 7 and 10. Any byte may appear on the wire; these are the ones we
/// send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RegisterStatus(pub u8);

impl RegisterStatus {
    /// Success: the packet carries the register's value (or info).
    pub const OK: RegisterStatus = RegisterStatus(0);
    /// No register has that number (op 10: none numbered at or above `from`).
    pub const UNKNOWN_REGISTER: RegisterStatus = RegisterStatus(1);
    /// A write to a register the server does not let clients write.
    pub const READ_ONLY: RegisterStatus = RegisterStatus(2);
    /// A write whose value is not of the register's type.
    pub const WRONG_TYPE: RegisterStatus = RegisterStatus(3);
    /// An observe with a zero or absurd interval or duration, or another malformed request.
    pub const BAD_REQUEST: RegisterStatus = RegisterStatus(4);
    /// An observe beyond the server's bound of observers (per client or in total).
    pub const TOO_MANY_OBSERVERS: RegisterStatus = RegisterStatus(5);

    /// Whether this is [`RegisterStatus::OK`].
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// A short stable name, for logs and `pav`.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "ok",
            1 => "unknown_register",
            2 => "read_only",
            3 => "wrong_type",
            4 => "bad_request",
            5 => "too_many_observers",
            _ => "unknown_status",
        }
    }
}

impl fmt::Display for RegisterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Bits of the flags byte of ops 7 and 10.
pub mod flags {
    /// Op 7 from a client (a write): the client wants an answer (a reliable write). Without
    /// it the write is never answered.
    pub const ANSWER_WANTED: u8 = 0x01;
    /// Ops 7 and 10 from a server: clients may write the register.
    pub const WRITABLE: u8 = 0x02;
}

/// Op 6: read a register. Answered by op 7 quoting this packet's counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterRead {
    /// The register to read.
    pub register: RegisterId,
}

impl RegisterRead {
    pub(super) fn parse(payload: &[u8]) -> Result<Self, Error> {
        exact(payload.len(), 2)?;
        let mut r = Reader::new(payload);
        Ok(RegisterRead {
            register: RegisterId(r.u16()?),
        })
    }

    pub(super) fn buffer_len(&self) -> usize {
        2
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u16(self.register.0)
    }
}

/// Op 7: a register's value. From a server, an answer (`answers` quotes the counter of the
/// read, write or observe it answers) or a notification to an observer (`answers` 0,
/// acknowledged with op 2). From a client, a write (`answers` 0; answered when
/// [`flags::ANSWER_WANTED`] is set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterValuePacket<'a> {
    /// The counter of the request answered, or 0.
    pub answers: Counter,
    /// The register.
    pub register: RegisterId,
    /// The outcome; a value is carried with [`RegisterStatus::OK`] (and, for a refused write
    /// of a known register, the current value may be).
    pub status: RegisterStatus,
    /// The [`flags`] byte.
    pub flags: u8,
    /// The value; `None` is type byte 0.
    pub value: Option<ValueRef<'a>>,
}

/// Op 7's bytes before the value.
const VALUE_PREFIX: usize = 13;

impl<'a> RegisterValuePacket<'a> {
    pub(super) fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(payload);
        if payload.len() < VALUE_PREFIX {
            return Err(Error::Truncated);
        }
        let answers = Counter(r.u64()?);
        let register = RegisterId(r.u16()?);
        let status = RegisterStatus(r.u8()?);
        let kind = RegisterType::from_byte(r.u8()?)?;
        let flags = r.u8()?;
        let value = ValueRef::parse(kind, r.rest())?;
        Ok(RegisterValuePacket {
            answers,
            register,
            status,
            flags,
            value,
        })
    }

    pub(super) fn buffer_len(&self) -> usize {
        VALUE_PREFIX.saturating_add(self.value.map_or(0, |v| v.buffer_len()))
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u64(self.answers.0)?;
        w.u16(self.register.0)?;
        w.u8(self.status.0)?;
        w.u8(self.value.map_or(RegisterType::None, |v| v.kind()) as u8)?;
        w.u8(self.flags)?;
        match self.value {
            Some(v) => v.emit(w),
            None => Ok(()),
        }
    }

    /// Whether the value is too long to send (text or bytes over [`MAX_VALUE_LEN`]).
    pub fn check(&self) -> Result<(), Error> {
        match self.value {
            Some(v) if v.buffer_len() > MAX_VALUE_LEN => {
                Err(bad_length(MAX_VALUE_LEN, v.buffer_len()))
            }
            _ => Ok(()),
        }
    }
}

/// Op 8: observe a register for `duration_ms` (0 cancels), notified at most once per
/// `min_interval_ms`. Answered by op 7 quoting this packet's counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObserveRequest {
    /// The register.
    pub register: RegisterId,
    /// How long the observation lasts, in milliseconds; 0 ends it.
    pub duration_ms: u32,
    /// The least time between two notifications, in milliseconds.
    pub min_interval_ms: u32,
}

impl ObserveRequest {
    pub(super) fn parse(payload: &[u8]) -> Result<Self, Error> {
        exact(payload.len(), 10)?;
        let mut r = Reader::new(payload);
        Ok(ObserveRequest {
            register: RegisterId(r.u16()?),
            duration_ms: r.u32()?,
            min_interval_ms: r.u32()?,
        })
    }

    pub(super) fn buffer_len(&self) -> usize {
        10
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u16(self.register.0)?;
        w.u32(self.duration_ms)?;
        w.u32(self.min_interval_ms)
    }
}

/// Op 9: the info of the first register numbered `from` or more (so a client enumerates by
/// asking again from the number after each answer). Answered by op 10 quoting this packet's
/// counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterInfoRequest {
    /// The least register number wanted.
    pub from: RegisterId,
}

impl RegisterInfoRequest {
    pub(super) fn parse(payload: &[u8]) -> Result<Self, Error> {
        exact(payload.len(), 2)?;
        let mut r = Reader::new(payload);
        Ok(RegisterInfoRequest {
            from: RegisterId(r.u16()?),
        })
    }

    pub(super) fn buffer_len(&self) -> usize {
        2
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u16(self.from.0)
    }
}

/// Op 10: what a register is. With [`RegisterStatus::UNKNOWN_REGISTER`] there is no register
/// numbered at or above the request's `from` (the enumeration's end); the other fields are
/// then 0 and empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterInfoPacket<'a> {
    /// The counter of the op 9 answered.
    pub answers: Counter,
    /// The outcome.
    pub status: RegisterStatus,
    /// The register.
    pub register: RegisterId,
    /// Its type.
    pub kind: RegisterType,
    /// The [`flags`] byte ([`flags::WRITABLE`]).
    pub flags: u8,
    /// Its name (at most [`MAX_NAME_LEN`] bytes).
    pub name: &'a str,
    /// Its unit (at most [`MAX_UNIT_LEN`] bytes; may be empty).
    pub unit: &'a str,
}

impl<'a> RegisterInfoPacket<'a> {
    pub(super) fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(payload);
        let answers = Counter(r.u64()?);
        let status = RegisterStatus(r.u8()?);
        let register = RegisterId(r.u16()?);
        let kind = RegisterType::from_byte(r.u8()?)?;
        let flags = r.u8()?;
        let name = text(&mut r, MAX_NAME_LEN)?;
        let unit = text(&mut r, MAX_UNIT_LEN)?;
        if r.remaining() != 0 {
            return Err(bad_length(payload.len() - r.remaining(), payload.len()));
        }
        Ok(RegisterInfoPacket {
            answers,
            status,
            register,
            kind,
            flags,
            name,
            unit,
        })
    }

    pub(super) fn buffer_len(&self) -> usize {
        15usize
            .saturating_add(self.name.len())
            .saturating_add(self.unit.len())
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        if self.name.len() > MAX_NAME_LEN || self.unit.len() > MAX_UNIT_LEN {
            return Err(Error::InvalidName);
        }
        w.u64(self.answers.0)?;
        w.u8(self.status.0)?;
        w.u16(self.register.0)?;
        w.u8(self.kind as u8)?;
        w.u8(self.flags)?;
        w.u8(self.name.len() as u8)?;
        w.put(self.name.as_bytes())?;
        w.u8(self.unit.len() as u8)?;
        w.put(self.unit.as_bytes())
    }
}

/// Hex digits to bytes; `None` for an odd length or a non-digit.
fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = core::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

/// A `u8` length, then that many bytes of UTF-8, at most `max`.
fn text<'a>(r: &mut Reader<'a>, max: usize) -> Result<&'a str, Error> {
    let len = usize::from(r.u8()?);
    if len > max {
        return Err(bad_length(max, len));
    }
    let rest = r.rest();
    let (s, tail) = rest.split_at_checked(len).ok_or(Error::Truncated)?;
    *r = Reader::new(tail);
    utf8(s)
}

fn utf8(bytes: &[u8]) -> Result<&str, Error> {
    core::str::from_utf8(bytes).map_err(|_| Error::InvalidUtf8)
}

fn exact(actual: usize, expected: usize) -> Result<(), Error> {
    if actual == expected {
        Ok(())
    } else {
        Err(bad_length(expected, actual))
    }
}

fn bad_length(expected: usize, actual: usize) -> Error {
    Error::BadLength { expected, actual }
}

#[cfg(test)]
#[path = "register_tests.rs"]
mod tests;
