//! The server's glue for registers and observe (opcodes 6 to 10, `docs/PROTOCOL.md` §9.8):
//! the state is [`features::registers`](crate::features::registers)'; here are the
//! application's commands, the handlers of each opcode, and the notifications to observers.
//!
//! Packets parsed: ops 6, 7 (a client's write), 8 and 9; a `core.tagv` message (the
//! reference's tag write). Sent: op 7 and op 10 answers, once, quoting the request's
//! counter (a retried request is answered again: reads are idempotent and a retried write is
//! judged, never applied twice); op 7 notifications, reliable, through the session's outbox.
//! Timer: `ServerTimer::Registers` (a notification held back by its observer's interval, the
//! end of an observation), run by `pump`. Events: `RegisterWritten`.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::features::registers::{
    observe_terms, Observer, ObserverBounds, Register, RegisterError, RegisterPayload,
    RegisterReply,
};
use crate::id::Counter;
use crate::reliability::Payload;
use crate::time::Instant;
use crate::wire::register::{
    flags, ObserveRequest, RegisterInfoRequest, RegisterRead, RegisterValuePacket,
};
use crate::wire::{Message, RegisterId, RegisterStatus, RegisterValue};

use super::super::{DropReason, Outgoing, ServerEvent};
use super::Server;

/// The reference's tag write: target `core.tagv`, name the tag, payload `f32` value and
/// `i64` timestamp (12 bytes).
const TAGV_TARGET: &str = "core.tagv";

impl Server {
    /// Declares a register clients may read, observe and (if `writable`) write.
    ///
    /// # Errors
    /// [`RegisterError::DuplicateNumber`], [`RegisterError::DuplicateName`],
    /// [`RegisterError::BadName`] (empty, over 64 bytes, a newline), [`RegisterError::BadUnit`],
    /// [`RegisterError::ValueTooLarge`], [`RegisterError::TooMany`].
    pub fn declare_register(&mut self, register: Register) -> Result<(), RegisterError> {
        let max = self.config.max_registers;
        self.registers.table.declare(register, max)
    }

    /// The application updates register `n`; observers are notified (no faster than each
    /// one's interval).
    ///
    /// # Errors
    /// [`RegisterError::UnknownRegister`], [`RegisterError::WrongType`],
    /// [`RegisterError::ValueTooLarge`].
    pub fn set_register(
        &mut self,
        now: Instant,
        n: RegisterId,
        value: RegisterValue,
    ) -> Result<(), RegisterError> {
        self.advance(now);
        if self.registers.table.set(n, value)? {
            self.registers.observers.on_change(n);
            self.pump(now);
        }
        Ok(())
    }

    /// The register numbered `n`.
    pub fn register(&self, n: RegisterId) -> Option<&Register> {
        self.registers.table.get(n)
    }

    /// The register named `name`.
    pub fn register_by_name(&self, name: &str) -> Option<&Register> {
        self.registers.table.by_name(name)
    }

    /// Every declared register, by number.
    pub fn registers(&self) -> impl Iterator<Item = &Register> + '_ {
        self.registers.table.iter()
    }

    /// How many observations clients hold.
    pub fn observer_count(&self) -> usize {
        self.registers.observers.len()
    }

    fn answer_value(
        &mut self,
        to: SocketAddr,
        answers: Counter,
        n: RegisterId,
        status: RegisterStatus,
    ) {
        let r = self.registers.table.get(n);
        let reply = RegisterReply::Value {
            answers,
            register: n,
            status,
            flags: match r {
                Some(r) if r.writable => flags::WRITABLE,
                _ => 0,
            },
            value: r.filter(|_| status.is_ok()).map(|r| r.value.clone()),
        };
        self.shared.tx.push_back(Outgoing::Register {
            to,
            reply: Box::new(reply),
        });
    }

    /// Op 6: answered with the value, or `UNKNOWN_REGISTER`.
    pub(super) fn on_register_read(&mut self, from: SocketAddr, counter: Counter, p: RegisterRead) {
        let status = if self.registers.table.get(p.register).is_some() {
            RegisterStatus::OK
        } else {
            RegisterStatus::UNKNOWN_REGISTER
        };
        self.answer_value(from, counter, p.register, status);
    }

    /// Op 7 from a client: a write. `fresh` is false for a retry, which is judged and
    /// answered but not applied again.
    pub(super) fn on_register_write(
        &mut self,
        now: Instant,
        from: SocketAddr,
        counter: Counter,
        p: RegisterValuePacket<'_>,
        fresh: bool,
    ) {
        let value = p.value.map(|v| v.to_owned());
        let status = self.registers.table.judge_write(p.register, value.as_ref());
        if status.is_ok() && fresh {
            if let Some(v) = value.clone() {
                if self.registers.table.set(p.register, v.clone()) == Ok(true) {
                    self.registers.observers.on_change(p.register);
                }
                if let Some(s) = self.sessions.get(&from) {
                    let peer = s.peer;
                    self.shared.events.push_back(ServerEvent::RegisterWritten {
                        register: p.register,
                        value: v,
                        by: from,
                        peer,
                    });
                }
            }
        }
        if p.flags & flags::ANSWER_WANTED != 0 {
            self.answer_value(from, counter, p.register, status);
        } else if !status.is_ok() {
            self.shared.stats.drop(DropReason::RegisterRefused);
        }
        if fresh {
            self.pump(now);
        }
    }

    /// Op 8: an observation starts, is renewed or (duration 0) ends; answered with the
    /// current value or a status.
    pub(super) fn on_observe(
        &mut self,
        now: Instant,
        from: SocketAddr,
        counter: Counter,
        p: ObserveRequest,
    ) {
        let status = if self.registers.table.get(p.register).is_none() {
            RegisterStatus::UNKNOWN_REGISTER
        } else {
            match observe_terms(p.duration_ms, p.min_interval_ms) {
                Err(status) => status,
                Ok(None) => {
                    self.registers.observers.cancel(from, p.register);
                    RegisterStatus::OK
                }
                Ok(Some((duration, min_interval))) => {
                    let generation = self.sessions.get(&from).map_or(0, |s| s.generation);
                    let bounds = ObserverBounds {
                        per_client: self.config.max_observers_per_client,
                        total: self.config.max_observers,
                    };
                    let observer = Observer {
                        generation,
                        until: now + duration,
                        min_interval,
                        last_sent: now,
                        pending: false,
                    };
                    match self
                        .registers
                        .observers
                        .observe(bounds, from, p.register, observer)
                    {
                        Ok(()) => RegisterStatus::OK,
                        Err(status) => status,
                    }
                }
            }
        };
        self.answer_value(from, counter, p.register, status);
    }

    /// Op 9: the info of the first register numbered `from` or more.
    pub(super) fn on_register_info(
        &mut self,
        from: SocketAddr,
        counter: Counter,
        p: RegisterInfoRequest,
    ) {
        let info = self.registers.table.first_from(p.from).map(Register::info);
        let status = if info.is_some() {
            RegisterStatus::OK
        } else {
            RegisterStatus::UNKNOWN_REGISTER
        };
        let reply = RegisterReply::Info {
            answers: counter,
            status,
            info,
        };
        self.shared.tx.push_back(Outgoing::Register {
            to: from,
            reply: Box::new(reply),
        });
    }

    /// A message to `core.tagv` from a client: the reference's tag write, accepted only by
    /// the rules of [`RegisterTable::tag_write`](crate::features::registers). Refusals are
    /// counted. The message itself is delivered as any other.
    pub(super) fn on_tag_message(&mut self, now: Instant, from: SocketAddr, m: &Message<'_>) {
        if m.target != TAGV_TARGET || self.registers.table.iter().next().is_none() {
            return;
        }
        let (Some(value), Some(stamp)) = (m.payload.get(..4), m.payload.get(4..12)) else {
            return self.shared.stats.drop(DropReason::RegisterRefused);
        };
        let (Ok(value), Ok(stamp)) = (<[u8; 4]>::try_from(value), <[u8; 8]>::try_from(stamp))
        else {
            return self.shared.stats.drop(DropReason::RegisterRefused);
        };
        if m.payload.len() != 12 {
            return self.shared.stats.drop(DropReason::RegisterRefused);
        }
        let value = f32::from_le_bytes(value);
        let stamp = i64::from_le_bytes(stamp);
        match self.registers.table.tag_write(now, m.name, value, stamp) {
            Ok((n, changed)) => {
                if changed {
                    self.registers.observers.on_change(n);
                }
                if let Some(s) = self.sessions.get(&from) {
                    let peer = s.peer;
                    self.shared.events.push_back(ServerEvent::RegisterWritten {
                        register: n,
                        value: RegisterValue::F32(value),
                        by: from,
                        peer,
                    });
                }
            }
            Err(_) => self.shared.stats.drop(DropReason::RegisterRefused),
        }
    }

    /// Queues the notifications that are due (one per observer, the latest value; an older
    /// one still unacknowledged is superseded) and drops ended observations.
    pub(super) fn pump_registers(&mut self, now: Instant) {
        if self.registers.observers.is_empty() {
            return;
        }
        let due = self.registers.observers.take_due(now);
        let mut stale: Vec<(SocketAddr, RegisterId)> = Vec::new();
        for (addr, n, generation) in due {
            let Some(r) = self.registers.table.get(n) else {
                continue;
            };
            let payload = RegisterPayload::Notify(n, r.value.clone(), r.writable);
            let deadline = now + self.config.limits.default_timeout;
            let Some(s) = self
                .sessions
                .get_mut(&addr)
                .filter(|s| s.generation == generation)
            else {
                stale.push((addr, n));
                continue;
            };
            s.outbox.remove_where(|e| {
                matches!(&e.payload, Payload::Register(p)
                    if matches!(**p, RegisterPayload::Notify(m, ..) if m == n))
            });
            let id = self.next_op_id;
            if s.outbox
                .push(id, Payload::Register(Box::new(payload)), true, deadline)
                .is_ok()
            {
                self.next_op_id += 1;
                self.busy.insert(addr);
            }
        }
        for (addr, n) in stale {
            self.registers.observers.cancel(addr, n);
        }
    }

    /// When the registers' timer is next due.
    pub(super) fn registers_due(&self) -> Option<Instant> {
        self.registers.observers.next_due()
    }

    /// A retried register request (its first answer may have been lost): answered again.
    /// Returns false for a packet that is not one.
    pub(super) fn on_register_duplicate(
        &mut self,
        now: Instant,
        from: SocketAddr,
        counter: Counter,
        app: &crate::wire::App<'_>,
    ) -> bool {
        use crate::wire::App;
        match *app {
            App::RegisterRead(p) => self.on_register_read(from, counter, p),
            App::RegisterValue(p) if p.flags & flags::ANSWER_WANTED != 0 => {
                self.on_register_write(now, from, counter, p, false)
            }
            App::Observe(p) => self.on_observe(now, from, counter, p),
            App::RegisterInfoRequest(p) => self.on_register_info(from, counter, p),
            _ => return false,
        }
        true
    }
}

/// The server's register state.
#[derive(Debug, Default)]
pub(super) struct ServerRegisters {
    pub(super) table: crate::features::registers::RegisterTable,
    pub(super) observers: crate::features::registers::Observers,
}
