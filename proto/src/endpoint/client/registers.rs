//! The client's glue for registers and observe (opcodes 6 to 10, `docs/PROTOCOL.md` §9.8):
//! the application's commands, their reliable exchanges (their own outbox, as subscriptions
//! have), the answers and notifications that come back, and the renewal of observations on
//! every new session.
//!
//! Packets sent: ops 6, 7 (a write), 8 and 9, each retried under its first counter until op 7
//! or 10 quotes it; an unreliable write (op 7 without "answer wanted") once. Parsed: op 7
//! (an answer, or a notification, which is acknowledged) and op 10; the reference's
//! `core.tag` and `core.tagv` messages. Timer: `ClientTimer::Registers` (the exchanges'
//! retries and deadlines, run by `pump`). Events: `RegisterValue`, `RegisterNotified`,
//! `RegisterFailed`, `RegisterInfo`, `TagNotified`.
//!
//! Rule: what the application observes is remembered with the time it ends
//! ([`Observed`](crate::features::registers::Observed)); every new session with a server
//! (either side rebooted, or a re-handshake) gets each observation again for what is left
//! of it, and its answer is reported as a notification, since the value may have changed
//! meanwhile. Notifications carry no sequence of their own: one older (by its packet
//! counter) than the last one delivered for that register on that session is acknowledged
//! but not delivered, so a retransmission overtaken by a newer value never goes back in
//! time.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::features::registers::{
    observe_terms, Observation, Observed, RegisterFailure, RegisterInfo, RegisterOpId,
    RegisterPayload, RegisterReply,
};
use crate::id::Counter;
use crate::reliability::{Due, InFlight, Outbox, Payload, Reply};
use crate::time::{Duration, Instant};
use crate::wire::register::{ObserveRequest, RegisterInfoPacket, RegisterValuePacket, ValueRef};
use crate::wire::{Message, RegisterId, RegisterStatus, RegisterValue};

use super::super::{ClientEvent, DropReason, Outgoing, Reliability, SendError, SendOptions};
use super::Client;

/// A client's register state.
#[derive(Debug)]
pub(super) struct ClientRegisters {
    /// Requests in flight; an entry's id is its [`RegisterOpId`].
    exchanges: Outbox,
    /// Where each exchange went, by id (fixed at its first transmission).
    dest: BTreeMap<u64, SocketAddr>,
    /// What the application observes.
    observed: Observed,
    /// The counter of the last notification delivered, per server and register, this
    /// session.
    last_notified: BTreeMap<(SocketAddr, RegisterId), Counter>,
}

impl ClientRegisters {
    pub(super) fn new(max_queued: usize, max_in_flight: usize) -> Self {
        ClientRegisters {
            exchanges: Outbox::new(max_queued, max_in_flight),
            dest: BTreeMap::new(),
            observed: Observed::new(),
            last_notified: BTreeMap::new(),
        }
    }
}

impl Client {
    /// Reads register `register` of the server. The outcome is [`ClientEvent::RegisterValue`]
    /// or [`ClientEvent::RegisterFailed`] with the returned id; `timeout` defaults to
    /// `Limits::default_timeout`.
    ///
    /// # Errors
    /// [`SendError::QueueFull`], [`SendError::Closed`].
    pub fn read_register(
        &mut self,
        now: Instant,
        register: RegisterId,
        timeout: Option<Duration>,
    ) -> Result<RegisterOpId, SendError> {
        self.register_op(now, RegisterPayload::Read(register), timeout)
    }

    /// Writes `value` to register `register`. A reliable write is answered:
    /// [`ClientEvent::RegisterValue`] (the value now in place) or
    /// [`ClientEvent::RegisterFailed`] (`READ_ONLY`, `UNKNOWN_REGISTER`, `WRONG_TYPE`, a
    /// timeout). An unreliable write is sent once and never answered; it needs a session.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] for a value over 1024 bytes, [`SendError::UnknownPeer`] for an
    /// unreliable write without a session, [`SendError::QueueFull`], [`SendError::Closed`].
    pub fn write_register(
        &mut self,
        now: Instant,
        register: RegisterId,
        value: RegisterValue,
        options: SendOptions,
    ) -> Result<RegisterOpId, SendError> {
        if value.as_ref().buffer_len() > crate::wire::register::MAX_VALUE_LEN {
            return Err(SendError::TooLarge);
        }
        match options.reliability {
            // A write is answered with its status, so an ordered write is a reliable one.
            Reliability::Reliable | Reliability::Ordered => self.register_op(
                now,
                RegisterPayload::Write(register, value),
                options.timeout,
            ),
            Reliability::Unreliable => {
                self.advance(now);
                if self.closed {
                    return Err(SendError::Closed);
                }
                let to = self.register_server().ok_or(SendError::UnknownPeer)?;
                let reply = RegisterReply::Value {
                    answers: Counter(0),
                    register,
                    status: RegisterStatus::OK,
                    flags: 0,
                    value: Some(value),
                };
                self.shared.tx.push_back(Outgoing::Register {
                    to,
                    reply: Box::new(reply),
                });
                let id = self.next_op_id;
                self.next_op_id += 1;
                Ok(RegisterOpId(id))
            }
        }
    }

    /// Observes register `register` for `duration`, notified of each change no faster than
    /// once per `min_interval` ([`ClientEvent::RegisterNotified`]). The answer is
    /// [`ClientEvent::RegisterValue`] (the value now) or [`ClientEvent::RegisterFailed`]
    /// (`BAD_REQUEST` for a zero or absurd interval or duration, `TOO_MANY_OBSERVERS`, ...).
    /// The observation is renewed on every new session for what is left of it.
    ///
    /// # Errors
    /// As [`Client::read_register`].
    pub fn observe(
        &mut self,
        now: Instant,
        register: RegisterId,
        duration: Duration,
        min_interval: Duration,
    ) -> Result<RegisterOpId, SendError> {
        let request = ObserveRequest {
            register,
            duration_ms: millis(duration),
            min_interval_ms: millis(min_interval),
        };
        let id = self.register_op(now, RegisterPayload::Observe(request), None)?;
        if let Ok(Some((d, i))) = observe_terms(request.duration_ms, request.min_interval_ms) {
            self.registers.observed.insert(
                register,
                Observation {
                    until: now + d,
                    min_interval: i,
                },
            );
        } else {
            self.registers.observed.remove(&register);
        }
        Ok(id)
    }

    /// Ends the observation of `register` (op 8 with duration 0).
    ///
    /// # Errors
    /// As [`Client::read_register`].
    pub fn cancel_observe(
        &mut self,
        now: Instant,
        register: RegisterId,
    ) -> Result<RegisterOpId, SendError> {
        self.observe(now, register, Duration::ZERO, Duration::ZERO)
    }

    /// Asks for the info of the first register numbered `from` or more
    /// ([`ClientEvent::RegisterInfo`]); ask again from the next number to enumerate them.
    ///
    /// # Errors
    /// As [`Client::read_register`].
    pub fn register_info(
        &mut self,
        now: Instant,
        from: RegisterId,
    ) -> Result<RegisterOpId, SendError> {
        self.register_op(now, RegisterPayload::Info(from), None)
    }

    /// The registers we observe (observations not yet ended at the latest time we were
    /// told), with when each ends.
    pub fn observed(&self) -> impl Iterator<Item = (RegisterId, Instant)> + '_ {
        let now = self.shared.last_now;
        self.registers
            .observed
            .iter()
            .filter(move |(_, o)| o.until > now)
            .map(|(r, o)| (*r, o.until))
    }

    fn register_op(
        &mut self,
        now: Instant,
        payload: RegisterPayload,
        timeout: Option<Duration>,
    ) -> Result<RegisterOpId, SendError> {
        self.advance(now);
        if self.closed {
            return Err(SendError::Closed);
        }
        let id = self.next_op_id;
        let deadline = now + timeout.unwrap_or(self.config.limits.default_timeout);
        self.registers
            .exchanges
            .push(id, Payload::Register(Box::new(payload)), false, deadline)
            .map_err(|_| SendError::QueueFull)?;
        self.next_op_id += 1;
        self.after_command(now);
        Ok(RegisterOpId(id))
    }

    /// The server register requests go to: the first live one.
    fn register_server(&self) -> Option<SocketAddr> {
        if !self.is_connected() {
            return None;
        }
        self.servers
            .iter()
            .find(|(_, s)| s.up)
            .or_else(|| self.servers.iter().next())
            .map(|(a, _)| *a)
    }

    /// Moves due register requests into the transmit queue; expired ones are reported.
    pub(super) fn pump_registers(&mut self, now: Instant) {
        // Nothing to expire or send: spares every pump the session checks below.
        if self.registers.exchanges.is_empty() {
            return;
        }
        let to = self.register_server();
        let can_send = !self.closed && to.is_some() && self.session_ready();
        let mut due = Vec::new();
        self.registers
            .exchanges
            .poll_due(now, can_send, usize::MAX, &mut due);
        for d in due {
            match d {
                Due::Expired(e) => {
                    self.registers.dest.remove(&e.id);
                    if !e.internal {
                        self.shared.events.push_back(ClientEvent::RegisterFailed {
                            op: RegisterOpId(e.id),
                            failure: RegisterFailure::TimedOut,
                        });
                    }
                }
                Due::Transmit(id) => {
                    let first = self
                        .registers
                        .exchanges
                        .get(id)
                        .is_some_and(|e| e.counter.is_none());
                    let dest = if first {
                        let Some(to) = to else { continue };
                        let c = self.take_counter();
                        self.registers
                            .exchanges
                            .on_first_transmit(id, c, vec![to], now, &self.rtt);
                        self.registers.dest.insert(id, to);
                        to
                    } else {
                        let Some(&to) = self.registers.dest.get(&id) else {
                            continue;
                        };
                        self.registers.exchanges.on_retransmit(id, now, &self.rtt);
                        self.shared.stats.retransmissions += 1;
                        to
                    };
                    self.shared
                        .tx
                        .push_back(Outgoing::Reliable { to: dest, id });
                    self.last_sent = now;
                }
            }
        }
    }

    /// A register exchange in the transmit queue, by its id.
    pub(super) fn register_exchange(&self, id: u64) -> Option<&InFlight> {
        self.registers.exchanges.get(id)
    }

    /// The earliest retry or deadline among register exchanges.
    pub(super) fn registers_timeout(&self) -> Option<Instant> {
        let can_send = !self.closed && self.is_connected() && self.session_ready();
        self.registers.exchanges.next_timeout(can_send, usize::MAX)
    }

    /// The client is closing: every operation fails.
    pub(super) fn drop_registers(&mut self) {
        let all: Vec<InFlight> = self.registers.exchanges.drain().collect();
        self.registers.dest.clear();
        for e in all.into_iter().filter(|e| !e.internal) {
            self.shared.events.push_back(ClientEvent::RegisterFailed {
                op: RegisterOpId(e.id),
                failure: RegisterFailure::Closed,
            });
        }
    }

    /// A new session with `addr`: the server may have restarted and forgotten our
    /// observations, so each is asked again for what is left of it.
    pub(super) fn registers_on_session(&mut self, now: Instant, addr: SocketAddr) {
        self.registers.last_notified.retain(|(a, _), _| *a != addr);
        self.registers.observed.retain(|_, o| o.until > now);
        self.registers.exchanges.retry_all_now(now);
        for e in self.registers.exchanges.remove_where(|e| {
            e.internal && matches!(&e.payload, Payload::Register(p) if p.is_request())
        }) {
            self.registers.dest.remove(&e.id);
        }
        let waiting: Vec<RegisterId> = self
            .registers
            .exchanges
            .iter()
            .filter(|e| e.counter.is_none())
            .filter_map(|e| match &e.payload {
                Payload::Register(p) => match **p {
                    RegisterPayload::Observe(o) => Some(o.register),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let renew: Vec<(RegisterId, Observation)> = self
            .registers
            .observed
            .iter()
            .filter(|(r, _)| !waiting.contains(r))
            .map(|(r, o)| (*r, *o))
            .collect();
        for (register, o) in renew {
            let request = ObserveRequest {
                register,
                duration_ms: millis(o.until - now).max(1),
                min_interval_ms: millis(o.min_interval),
            };
            let id = self.next_op_id;
            let deadline = now + self.config.limits.default_timeout;
            let payload = Payload::Register(Box::new(RegisterPayload::Observe(request)));
            if self
                .registers
                .exchanges
                .push(id, payload, true, deadline)
                .is_ok()
            {
                self.next_op_id += 1;
            }
        }
    }

    /// Op 7 from the server at `addr` (sent from `from`), under `counter`.
    pub(super) fn on_register_value(
        &mut self,
        now: Instant,
        from: SocketAddr,
        addr: SocketAddr,
        counter: Counter,
        p: RegisterValuePacket<'_>,
    ) {
        if p.answers == Counter(0) {
            // A notification: acknowledged whatever we make of it, so it is not resent.
            self.ack(from, counter);
            return self.on_notification(addr, counter, p.register, p.value);
        }
        let Reply::Complete(e) = self.registers.exchanges.on_reply(
            p.answers,
            true,
            addr,
            now,
            &mut self.rtt,
            &mut self.shared.stats.rtt,
        ) else {
            return self.shared.stats.drop(DropReason::Unexpected);
        };
        self.registers.dest.remove(&e.id);
        let op = RegisterOpId(e.id);
        let observe = match &e.payload {
            Payload::Register(r) => match **r {
                RegisterPayload::Observe(o) => Some(o),
                _ => None,
            },
            _ => None,
        };
        match (p.status.is_ok(), p.value) {
            (true, Some(v)) if e.internal => {
                self.shared.events.push_back(ClientEvent::RegisterNotified {
                    from: addr,
                    register: p.register,
                    value: v.to_owned(),
                })
            }
            (true, Some(v)) => self.shared.events.push_back(ClientEvent::RegisterValue {
                op,
                from: addr,
                register: p.register,
                value: v.to_owned(),
            }),
            (ok, _) => {
                if !ok && observe.is_some_and(|o| o.duration_ms != 0) {
                    // The server will not hold it: do not renew it either.
                    self.registers.observed.remove(&p.register);
                }
                if !e.internal {
                    let status = if ok {
                        RegisterStatus::BAD_REQUEST
                    } else {
                        p.status
                    };
                    self.shared.events.push_back(ClientEvent::RegisterFailed {
                        op,
                        failure: RegisterFailure::Refused(status),
                    });
                }
            }
        }
    }

    fn on_notification(
        &mut self,
        addr: SocketAddr,
        counter: Counter,
        register: RegisterId,
        value: Option<ValueRef<'_>>,
    ) {
        let Some(value) = value else {
            return self.shared.stats.drop(DropReason::Unexpected);
        };
        let last = self.registers.last_notified.get(&(addr, register));
        if last.is_some_and(|l| *l >= counter) {
            // Overtaken by a newer value already delivered.
            return self.shared.stats.drop(DropReason::Duplicate);
        }
        self.registers
            .last_notified
            .insert((addr, register), counter);
        self.shared.events.push_back(ClientEvent::RegisterNotified {
            from: addr,
            register,
            value: value.to_owned(),
        });
    }

    /// Op 10 from the server at `addr`.
    pub(super) fn on_register_info_packet(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        p: RegisterInfoPacket<'_>,
    ) {
        let Reply::Complete(e) = self.registers.exchanges.on_reply(
            p.answers,
            true,
            addr,
            now,
            &mut self.rtt,
            &mut self.shared.stats.rtt,
        ) else {
            return self.shared.stats.drop(DropReason::Unexpected);
        };
        self.registers.dest.remove(&e.id);
        let op = RegisterOpId(e.id);
        let event = if p.status.is_ok() {
            ClientEvent::RegisterInfo {
                op,
                from: addr,
                info: Some(RegisterInfo {
                    register: p.register,
                    name: String::from(p.name),
                    kind: p.kind,
                    unit: String::from(p.unit),
                    writable: p.flags & crate::wire::register::flags::WRITABLE != 0,
                }),
            }
        } else if p.status == RegisterStatus::UNKNOWN_REGISTER {
            ClientEvent::RegisterInfo {
                op,
                from: addr,
                info: None,
            }
        } else {
            ClientEvent::RegisterFailed {
                op,
                failure: RegisterFailure::Refused(p.status),
            }
        };
        self.shared.events.push_back(event);
    }

    /// A message from the server at `addr`: a reference tag message (`core.tag` or
    /// `core.tagv`) is also reported as a [`ClientEvent::TagNotified`].
    pub(super) fn on_tag_message(&mut self, addr: SocketAddr, m: &Message<'_>) {
        let (value, stamp) = match (m.target, m.payload.len()) {
            ("core.tagv", 12) => (m.payload.get(..4), m.payload.get(4..12)),
            ("core.tag", 25) => (m.payload.get(..4), m.payload.get(17..25)),
            ("core.tag" | "core.tagv", _) => {
                return self.shared.stats.drop(DropReason::RegisterRefused)
            }
            _ => return,
        };
        let value = value.and_then(|v| <[u8; 4]>::try_from(v).ok());
        let stamp = stamp.and_then(|v| <[u8; 8]>::try_from(v).ok());
        if let (Some(value), Some(stamp)) = (value, stamp) {
            self.shared.events.push_back(ClientEvent::TagNotified {
                from: addr,
                name: String::from(m.name),
                value: RegisterValue::F32(f32::from_le_bytes(value)),
                timestamp_us: i64::from_le_bytes(stamp),
            });
        }
    }
}

/// A duration in whole milliseconds, saturating at `u32::MAX` (which the server refuses as
/// absurd rather than cutting short).
fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
