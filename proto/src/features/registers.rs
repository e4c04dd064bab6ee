//! Registers and observe (opcodes 6 to 10, `docs/PROTOCOL.md` §9.8): typed values a server
//! declares and its clients read, write and observe. The state of both roles:
//!
//! - `RegisterTable` (server): the declared registers, by number and by name.
//! - `Observers` (server): who observes which register, until when, how often at most, and
//!   whether a change waits for its observer's interval to end. Bounded per client and in
//!   all; an observer's state goes with its session.
//! - `Observed` (client): what the application observes, with the time each observation
//!   ends, so that a new session (either side rebooted) renews it for what is left.
//!
//! The glue that parses the opcodes and queues what they answer is the roles':
//! `endpoint/server/registers.rs` and `endpoint/client/registers.rs`. What is handed in: a
//! parsed op 6 to 10 packet, `now`; what comes back: a [`RegisterStatus`] or the value.
//! Deadlines: `Observers::next_due` (a notification held back by an interval, or an
//! observation's end), read into the server's `ServerTimer::Registers` slot; the client's
//! exchanges have an outbox, whose timer is its `ClientTimer::Registers` slot.
//!
//! Overlap with the reference's tag messages (`core.tag`, `core.tagv`; §9.8.6): a tag is a
//! register of type `f32` known by its name; `RegisterTable::tag_write` holds the rules a
//! `core.tagv` write must pass.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;

use crate::id::Counter;
use crate::time::{Duration, Instant};
use crate::wire::register::{
    flags, ObserveRequest, RegisterInfoPacket, RegisterInfoRequest, RegisterRead,
    RegisterValuePacket, MAX_NAME_LEN, MAX_UNIT_LEN, MAX_VALUE_LEN,
};
use crate::wire::App;
use crate::wire::{RegisterId, RegisterStatus, RegisterType, RegisterValue};

/// The longest observation a client may ask for (op 8's duration).
pub const MAX_OBSERVE_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The longest interval between notifications an observation may ask for.
pub const MAX_OBSERVE_INTERVAL: Duration = Duration::from_secs(3600);
/// How far ahead of the server's clock a `core.tagv` timestamp may be.
pub const TAG_MAX_AHEAD: Duration = Duration::from_secs(60);

/// A register as the server's application declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    /// Its number, unique on the server.
    pub number: RegisterId,
    /// Its name: 1 to [`MAX_NAME_LEN`] bytes, no newline, unique on the server.
    pub name: String,
    /// Its unit (may be empty), at most [`MAX_UNIT_LEN`] bytes.
    pub unit: String,
    /// Whether clients may write it.
    pub writable: bool,
    /// Its value, whose type is the register's for good.
    pub value: RegisterValue,
}

impl Register {
    /// The register's type (its value's).
    pub fn kind(&self) -> RegisterType {
        self.value.kind()
    }
}

/// What a client learns of a register from op 10.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RegisterInfo {
    /// Its number.
    pub register: RegisterId,
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: RegisterType,
    /// Its unit (may be empty).
    pub unit: String,
    /// Whether clients may write it.
    pub writable: bool,
}

/// Why a declaration or an update of a register was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterError {
    /// Another register has this number.
    DuplicateNumber,
    /// Another register has this name.
    DuplicateName,
    /// The name is empty, longer than [`MAX_NAME_LEN`] bytes or holds a newline.
    BadName,
    /// The unit is longer than [`MAX_UNIT_LEN`] bytes.
    BadUnit,
    /// A text or bytes value longer than [`MAX_VALUE_LEN`] bytes.
    ValueTooLarge,
    /// The value is not of the register's type.
    WrongType,
    /// No register has this number.
    UnknownRegister,
    /// The server holds its bound of registers (`ServerConfig::max_registers`).
    TooMany,
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RegisterError::DuplicateNumber => "another register has this number",
            RegisterError::DuplicateName => "another register has this name",
            RegisterError::BadName => "register name empty, too long or with a newline",
            RegisterError::BadUnit => "register unit too long",
            RegisterError::ValueTooLarge => "register value too large",
            RegisterError::WrongType => "value of the wrong type for the register",
            RegisterError::UnknownRegister => "no such register",
            RegisterError::TooMany => "too many registers",
        })
    }
}

impl core::error::Error for RegisterError {}

/// Why a `core.tagv` write was refused (counted, never answered: the reference sends no
/// answer to a tag write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TagRefusal {
    /// No register has the tag's name, or it is not writable, or not a float.
    NotWritable,
    /// Its timestamp is not newer than the last accepted one.
    Stale,
    /// Its timestamp is more than [`TAG_MAX_AHEAD`] ahead of our clock.
    Future,
}

/// A server's registers.
#[derive(Debug, Default)]
pub(crate) struct RegisterTable {
    by_number: BTreeMap<RegisterId, Entry>,
    by_name: BTreeMap<String, RegisterId>,
}

#[derive(Debug)]
struct Entry {
    register: Register,
    /// The timestamp of the last accepted `core.tagv` write (server monotonic µs).
    last_tag_us: Option<i64>,
}

impl RegisterTable {
    /// Adds a register; refused if it breaks a rule of [`Register`] or the bound.
    pub(crate) fn declare(&mut self, register: Register, max: usize) -> Result<(), RegisterError> {
        let name = &register.name;
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('\n') {
            return Err(RegisterError::BadName);
        }
        if register.unit.len() > MAX_UNIT_LEN {
            return Err(RegisterError::BadUnit);
        }
        check_len(&register.value)?;
        if self.by_number.contains_key(&register.number) {
            return Err(RegisterError::DuplicateNumber);
        }
        if self.by_name.contains_key(name) {
            return Err(RegisterError::DuplicateName);
        }
        if self.by_number.len() >= max {
            return Err(RegisterError::TooMany);
        }
        self.by_name.insert(name.clone(), register.number);
        self.by_number.insert(
            register.number,
            Entry {
                register,
                last_tag_us: None,
            },
        );
        Ok(())
    }

    /// The register numbered `n`.
    pub(crate) fn get(&self, n: RegisterId) -> Option<&Register> {
        self.by_number.get(&n).map(|e| &e.register)
    }

    /// The register named `name`.
    pub(crate) fn by_name(&self, name: &str) -> Option<&Register> {
        self.by_name.get(name).and_then(|n| self.get(*n))
    }

    /// The first register numbered `from` or more (op 9).
    pub(crate) fn first_from(&self, from: RegisterId) -> Option<&Register> {
        self.by_number
            .range(from..)
            .next()
            .map(|(_, e)| &e.register)
    }

    /// Every register, by number.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Register> + '_ {
        self.by_number.values().map(|e| &e.register)
    }

    /// Sets the value of `n` (the application's update); `Ok(true)` if it changed.
    pub(crate) fn set(
        &mut self,
        n: RegisterId,
        value: RegisterValue,
    ) -> Result<bool, RegisterError> {
        let e = self
            .by_number
            .get_mut(&n)
            .ok_or(RegisterError::UnknownRegister)?;
        if e.register.kind() != value.kind() {
            return Err(RegisterError::WrongType);
        }
        check_len(&value)?;
        let changed = e.register.value != value;
        e.register.value = value;
        Ok(changed)
    }

    /// Judges a client's write of `value` to `n` without applying it: the status a write
    /// gets (a retried write is judged again, never applied twice).
    pub(crate) fn judge_write(
        &self,
        n: RegisterId,
        value: Option<&RegisterValue>,
    ) -> RegisterStatus {
        let Some(r) = self.get(n) else {
            return RegisterStatus::UNKNOWN_REGISTER;
        };
        if !r.writable {
            return RegisterStatus::READ_ONLY;
        }
        match value {
            Some(v) if v.kind() == r.kind() => RegisterStatus::OK,
            _ => RegisterStatus::WRONG_TYPE,
        }
    }

    /// A `core.tagv` write of `value` stamped `stamp_us` (server monotonic µs) to the tag
    /// named `name`, at `now`: accepted only for a writable `f32` register, a stamp newer
    /// than the last accepted one, and no more than [`TAG_MAX_AHEAD`] ahead of `now`.
    /// Returns the register written and whether its value changed.
    pub(crate) fn tag_write(
        &mut self,
        now: Instant,
        name: &str,
        value: f32,
        stamp_us: i64,
    ) -> Result<(RegisterId, bool), TagRefusal> {
        let n = *self.by_name.get(name).ok_or(TagRefusal::NotWritable)?;
        let e = self.by_number.get_mut(&n).ok_or(TagRefusal::NotWritable)?;
        if !e.register.writable || e.register.kind() != RegisterType::F32 {
            return Err(TagRefusal::NotWritable);
        }
        if e.last_tag_us.is_some_and(|last| stamp_us <= last) {
            return Err(TagRefusal::Stale);
        }
        let ahead = (now + TAG_MAX_AHEAD).as_micros();
        if u64::try_from(stamp_us).is_ok_and(|s| s > ahead) {
            return Err(TagRefusal::Future);
        }
        e.last_tag_us = Some(stamp_us);
        let value = RegisterValue::F32(value);
        let changed = e.register.value != value;
        e.register.value = value;
        Ok((n, changed))
    }
}

fn check_len(value: &RegisterValue) -> Result<(), RegisterError> {
    if value.as_ref().buffer_len() > MAX_VALUE_LEN {
        return Err(RegisterError::ValueTooLarge);
    }
    Ok(())
}

/// The bounds of a server's [`Observers`] (from `ServerConfig`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ObserverBounds {
    /// Most observations one session holds.
    pub(crate) per_client: usize,
    /// Most observations over all sessions.
    pub(crate) total: usize,
}

/// One client's observation of one register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Observer {
    /// The session it belongs to; a later session at the same address does not hold it.
    pub(crate) generation: u64,
    /// When it ends.
    pub(crate) until: Instant,
    /// The least time between two notifications.
    pub(crate) min_interval: Duration,
    /// When the last notification went out (or the observe was answered).
    pub(crate) last_sent: Instant,
    /// A change since the last notification waits for the interval to end.
    pub(crate) pending: bool,
}

impl Observer {
    /// When this observer next needs the timer: its held-back notification, or its end.
    fn due(&self) -> Instant {
        if self.pending {
            (self.last_sent + self.min_interval).min(self.until)
        } else {
            self.until
        }
    }
}

/// Checks an op 8's duration and interval: `Ok(None)` cancels, `Err` is
/// [`RegisterStatus::BAD_REQUEST`] (a zero or absurd interval or duration).
pub(crate) fn observe_terms(
    duration_ms: u32,
    interval_ms: u32,
) -> Result<Option<(Duration, Duration)>, RegisterStatus> {
    if duration_ms == 0 {
        return Ok(None);
    }
    let duration = Duration::from_millis(u64::from(duration_ms));
    let interval = Duration::from_millis(u64::from(interval_ms));
    if interval_ms == 0 || duration > MAX_OBSERVE_DURATION || interval > MAX_OBSERVE_INTERVAL {
        return Err(RegisterStatus::BAD_REQUEST);
    }
    Ok(Some((duration, interval)))
}

/// A server's observers, by client and register.
#[derive(Debug, Default)]
pub(crate) struct Observers {
    by_client: BTreeMap<(SocketAddr, RegisterId), Observer>,
    per_client: BTreeMap<SocketAddr, usize>,
}

impl Observers {
    /// The session at `addr` observes `register` from `now` (a renewal replaces the terms).
    pub(crate) fn observe(
        &mut self,
        bounds: ObserverBounds,
        addr: SocketAddr,
        register: RegisterId,
        observer: Observer,
    ) -> Result<(), RegisterStatus> {
        if let Some(o) = self.by_client.get_mut(&(addr, register)) {
            *o = observer;
            return Ok(());
        }
        let mine = self.per_client.get(&addr).copied().unwrap_or(0);
        if mine >= bounds.per_client || self.by_client.len() >= bounds.total {
            return Err(RegisterStatus::TOO_MANY_OBSERVERS);
        }
        self.by_client.insert((addr, register), observer);
        *self.per_client.entry(addr).or_default() += 1;
        Ok(())
    }

    /// Ends the observation of `register` by `addr`; false if there was none.
    pub(crate) fn cancel(&mut self, addr: SocketAddr, register: RegisterId) -> bool {
        if self.by_client.remove(&(addr, register)).is_none() {
            return false;
        }
        if let Some(n) = self.per_client.get_mut(&addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_client.remove(&addr);
            }
        }
        true
    }

    /// The session at `addr` ended: its observations go with it.
    pub(crate) fn forget(&mut self, addr: SocketAddr) {
        let mine: Vec<RegisterId> = self
            .by_client
            .range((addr, RegisterId(0))..=(addr, RegisterId(u16::MAX)))
            .map(|((_, r), _)| *r)
            .collect();
        for r in mine {
            self.cancel(addr, r);
        }
    }

    /// `register` changed at `now`: every observer of it wants a notification.
    pub(crate) fn on_change(&mut self, register: RegisterId) {
        for ((_, r), o) in self.by_client.iter_mut() {
            if *r == register {
                o.pending = true;
            }
        }
    }

    /// The observations that end by `now` are removed; the notifications due at `now`
    /// (pending, interval over) are taken, their observers marked sent at `now`.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<(SocketAddr, RegisterId, u64)> {
        let ended: Vec<(SocketAddr, RegisterId)> = self
            .by_client
            .iter()
            .filter(|(_, o)| o.until <= now)
            .map(|(k, _)| *k)
            .collect();
        for (a, r) in ended {
            self.cancel(a, r);
        }
        let mut due = Vec::new();
        for ((a, r), o) in self.by_client.iter_mut() {
            if o.pending && now >= o.last_sent + o.min_interval {
                o.pending = false;
                o.last_sent = now;
                due.push((*a, *r, o.generation));
            }
        }
        due
    }

    /// When [`Observers::take_due`] next has work.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.by_client.values().map(Observer::due).min()
    }

    /// How many observations there are.
    pub(crate) fn len(&self) -> usize {
        self.by_client.len()
    }

    /// Whether there are none (the pump skips its pass).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }
}

/// One observation the client's application asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Observation {
    /// When it ends.
    pub(crate) until: Instant,
    /// The least time between two notifications.
    pub(crate) min_interval: Duration,
}

/// What a client observes, by register: renewed on every new session for what is left.
pub(crate) type Observed = BTreeMap<RegisterId, Observation>;

/// The id of a register operation (`read_register`, `write_register`, `observe`,
/// `register_info`): its outcome event carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RegisterOpId(pub u64);

/// Why a register operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum RegisterFailure {
    /// The server answered with this status (not OK).
    Refused(RegisterStatus),
    /// No answer came by the operation's deadline.
    TimedOut,
    /// The client was closed first.
    Closed,
}

impl fmt::Display for RegisterFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterFailure::Refused(s) => write!(f, "refused: {s}"),
            RegisterFailure::TimedOut => f.write_str("timed out"),
            RegisterFailure::Closed => f.write_str("client closed"),
        }
    }
}

/// A register exchange in an outbox: a client's request (answered by op 7 or 10 quoting its
/// counter) or a server's notification (acknowledged with op 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RegisterPayload {
    /// Op 6.
    Read(RegisterId),
    /// Op 7 from a client, answer wanted.
    Write(RegisterId, RegisterValue),
    /// Op 8.
    Observe(ObserveRequest),
    /// Op 9.
    Info(RegisterId),
    /// Op 7 from a server, `answers` 0: a notification.
    Notify(RegisterId, RegisterValue, bool),
}

impl RegisterPayload {
    /// The packet it is sent as.
    pub(crate) fn as_app(&self) -> App<'_> {
        match self {
            RegisterPayload::Read(register) => App::RegisterRead(RegisterRead {
                register: *register,
            }),
            RegisterPayload::Write(register, value) => App::RegisterValue(RegisterValuePacket {
                answers: Counter(0),
                register: *register,
                status: RegisterStatus::OK,
                flags: flags::ANSWER_WANTED,
                value: Some(value.as_ref()),
            }),
            RegisterPayload::Observe(o) => App::Observe(*o),
            RegisterPayload::Info(from) => {
                App::RegisterInfoRequest(RegisterInfoRequest { from: *from })
            }
            RegisterPayload::Notify(register, value, writable) => {
                App::RegisterValue(RegisterValuePacket {
                    answers: Counter(0),
                    register: *register,
                    status: RegisterStatus::OK,
                    flags: if *writable { flags::WRITABLE } else { 0 },
                    value: Some(value.as_ref()),
                })
            }
        }
    }

    /// Whether it is answered by op 7 or 10 (a request) rather than by an ACK.
    pub(crate) fn is_request(&self) -> bool {
        !matches!(self, RegisterPayload::Notify(..))
    }
}

/// An answer a server (op 7, 10) or client (an unreliable write, op 7) sends once, unsealed
/// until it is encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RegisterReply {
    /// Op 7.
    Value {
        answers: Counter,
        register: RegisterId,
        status: RegisterStatus,
        flags: u8,
        value: Option<RegisterValue>,
    },
    /// Op 10.
    Info {
        answers: Counter,
        status: RegisterStatus,
        info: Option<RegisterInfo>,
    },
}

impl RegisterReply {
    /// The packet it is sent as.
    pub(crate) fn as_app(&self) -> App<'_> {
        match self {
            RegisterReply::Value {
                answers,
                register,
                status,
                flags,
                value,
            } => App::RegisterValue(RegisterValuePacket {
                answers: *answers,
                register: *register,
                status: *status,
                flags: *flags,
                value: value.as_ref().map(RegisterValue::as_ref),
            }),
            RegisterReply::Info {
                answers,
                status,
                info,
            } => App::RegisterInfo(RegisterInfoPacket {
                answers: *answers,
                status: *status,
                register: info.as_ref().map_or(RegisterId(0), |i| i.register),
                kind: info.as_ref().map_or(RegisterType::None, |i| i.kind),
                flags: match info {
                    Some(i) if i.writable => flags::WRITABLE,
                    _ => 0,
                },
                name: info.as_ref().map_or("", |i| i.name.as_str()),
                unit: info.as_ref().map_or("", |i| i.unit.as_str()),
            }),
        }
    }
}

impl Register {
    /// What op 10 says of it.
    pub fn info(&self) -> RegisterInfo {
        RegisterInfo {
            register: self.number,
            name: self.name.clone(),
            kind: self.kind(),
            unit: self.unit.clone(),
            writable: self.writable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    fn reg(n: u16, name: &str, value: RegisterValue) -> Register {
        Register {
            number: RegisterId(n),
            name: name.into(),
            unit: String::new(),
            writable: true,
            value,
        }
    }

    #[test]
    fn declarations_are_checked() {
        let mut t = RegisterTable::default();
        assert_eq!(t.declare(reg(1, "a", RegisterValue::I64(0)), 8), Ok(()));
        assert_eq!(
            t.declare(reg(1, "b", RegisterValue::I64(0)), 8),
            Err(RegisterError::DuplicateNumber)
        );
        assert_eq!(
            t.declare(reg(2, "a", RegisterValue::I64(0)), 8),
            Err(RegisterError::DuplicateName)
        );
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            t.declare(reg(2, &long, RegisterValue::I64(0)), 8),
            Err(RegisterError::BadName)
        );
        assert_eq!(
            t.declare(reg(2, "a\nb", RegisterValue::I64(0)), 8),
            Err(RegisterError::BadName)
        );
        let mut unit = reg(2, "u", RegisterValue::I64(0));
        unit.unit = "y".repeat(MAX_UNIT_LEN + 1);
        assert_eq!(t.declare(unit, 8), Err(RegisterError::BadUnit));
        let big = RegisterValue::Bytes(alloc::vec![0; MAX_VALUE_LEN + 1]);
        assert_eq!(
            t.declare(reg(2, "big", big), 8),
            Err(RegisterError::ValueTooLarge)
        );
        assert_eq!(
            t.declare(reg(2, "b", RegisterValue::I64(0)), 1),
            Err(RegisterError::TooMany)
        );
        assert_eq!(
            t.set(RegisterId(1), RegisterValue::U64(1)),
            Err(RegisterError::WrongType)
        );
        assert_eq!(t.set(RegisterId(1), RegisterValue::I64(1)), Ok(true));
        assert_eq!(t.set(RegisterId(1), RegisterValue::I64(1)), Ok(false));
        assert_eq!(
            t.set(RegisterId(9), RegisterValue::I64(1)),
            Err(RegisterError::UnknownRegister)
        );
    }

    #[test]
    fn tag_writes_need_a_writable_float_and_a_newer_stamp_not_too_far_ahead() {
        let mut t = RegisterTable::default();
        t.declare(reg(1, "temp", RegisterValue::F32(0.0)), 8)
            .unwrap();
        let mut ro = reg(2, "ro", RegisterValue::F32(0.0));
        ro.writable = false;
        t.declare(ro, 8).unwrap();
        t.declare(reg(3, "int", RegisterValue::I64(0)), 8).unwrap();
        let now = Instant::from_millis(100_000);
        let now_us = 100_000_000i64;
        assert_eq!(
            t.tag_write(now, "ro", 1.0, now_us),
            Err(TagRefusal::NotWritable)
        );
        assert_eq!(
            t.tag_write(now, "int", 1.0, now_us),
            Err(TagRefusal::NotWritable)
        );
        assert_eq!(
            t.tag_write(now, "none", 1.0, now_us),
            Err(TagRefusal::NotWritable)
        );
        assert_eq!(
            t.tag_write(now, "temp", 1.0, now_us),
            Ok((RegisterId(1), true))
        );
        assert_eq!(
            t.tag_write(now, "temp", 2.0, now_us),
            Err(TagRefusal::Stale)
        );
        assert_eq!(
            t.tag_write(now, "temp", 2.0, now_us - 1),
            Err(TagRefusal::Stale)
        );
        let ahead = now_us + 60_000_000;
        assert_eq!(
            t.tag_write(now, "temp", 2.0, ahead + 1),
            Err(TagRefusal::Future)
        );
        assert_eq!(
            t.tag_write(now, "temp", 2.0, ahead),
            Ok((RegisterId(1), true))
        );
        assert_eq!(t.get(RegisterId(1)).unwrap().value, RegisterValue::F32(2.0));
    }

    #[test]
    fn observe_terms_refuse_zero_and_absurd_rates() {
        assert_eq!(observe_terms(0, 0), Ok(None));
        assert_eq!(observe_terms(1000, 0), Err(RegisterStatus::BAD_REQUEST));
        assert_eq!(
            observe_terms(u32::MAX, 10),
            Err(RegisterStatus::BAD_REQUEST)
        );
        assert_eq!(
            observe_terms(1000, 3_600_001),
            Err(RegisterStatus::BAD_REQUEST)
        );
        assert!(observe_terms(1000, 10).unwrap().is_some());
    }

    fn observer(now: Instant, ms: u64) -> Observer {
        Observer {
            generation: 1,
            until: now + Duration::from_secs(10),
            min_interval: Duration::from_millis(ms),
            last_sent: now,
            pending: false,
        }
    }

    #[test]
    fn observers_are_bounded_rate_limited_and_expire() {
        let b = ObserverBounds {
            per_client: 2,
            total: 3,
        };
        let t0 = Instant::from_millis(1000);
        let mut o = Observers::default();
        let r = RegisterId;
        assert_eq!(o.observe(b, addr(1), r(1), observer(t0, 100)), Ok(()));
        assert_eq!(o.observe(b, addr(1), r(2), observer(t0, 100)), Ok(()));
        assert_eq!(
            o.observe(b, addr(1), r(3), observer(t0, 100)),
            Err(RegisterStatus::TOO_MANY_OBSERVERS)
        );
        // A renewal is not a new observer.
        assert_eq!(o.observe(b, addr(1), r(1), observer(t0, 100)), Ok(()));
        assert_eq!(o.observe(b, addr(2), r(1), observer(t0, 100)), Ok(()));
        assert_eq!(
            o.observe(b, addr(3), r(1), observer(t0, 100)),
            Err(RegisterStatus::TOO_MANY_OBSERVERS)
        );
        // A change inside the interval waits for its end, once.
        o.on_change(r(1));
        assert!(o.take_due(t0 + Duration::from_millis(50)).is_empty());
        assert_eq!(o.next_due(), Some(t0 + Duration::from_millis(100)));
        let due = o.take_due(t0 + Duration::from_millis(100));
        assert_eq!(due.len(), 2);
        assert!(o.take_due(t0 + Duration::from_millis(300)).is_empty());
        o.forget(addr(1));
        assert_eq!(o.len(), 1);
        // The end of an observation removes it.
        assert!(o.take_due(t0 + Duration::from_secs(10)).is_empty());
        assert!(o.is_empty());
    }
}
