//! Registers and observe (`docs/PROTOCOL.md` §9.8) for both adapters: the commands a client
//! handle queues (read, write, observe, cancel, info) and the callers waiting for their
//! outcomes; the observers of changes (callbacks or streams); and a server's declarations,
//! updates and write subscribers.
//!
//! The client and server routers hold one state each ([`ClientRegisters`],
//! [`ServerRegisters`]) and hand it their register commands and events; nothing else of the
//! routers changes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use pavillion_proto::endpoint::{
    self as proto, ClientEvent, Register, RegisterError, RegisterFailure, RegisterInfo,
    RegisterOpId, SendOptions, ServerEvent,
};
use pavillion_proto::wire::{RegisterId, RegisterStatus, RegisterValue};
use pavillion_proto::{Instant, PeerId};

use super::reply::{self, Pending, Reply, WaitError};

/// Why a register operation of a client failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterOpError {
    /// The server answered with this status (`read_only`, `unknown_register`, ...).
    #[error("refused by the server: {0}")]
    Refused(RegisterStatus),
    /// No answer came in time.
    #[error("timed out")]
    TimedOut,
    /// The client closed.
    #[error("the client closed")]
    Closed,
    /// Called from a callback on the client's own thread, which could never see the answer.
    #[error("called from a callback on the client's thread")]
    InCallback,
    /// The endpoint refused the command (queue full, value too large, no session for an
    /// unreliable write).
    #[error("refused by the endpoint: {0}")]
    Endpoint(proto::SendError),
}

impl From<WaitError> for RegisterOpError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Closed => RegisterOpError::Closed,
            WaitError::TimedOut => RegisterOpError::TimedOut,
        }
    }
}

impl From<RegisterFailure> for RegisterOpError {
    fn from(f: RegisterFailure) -> Self {
        match f {
            RegisterFailure::Refused(s) => RegisterOpError::Refused(s),
            RegisterFailure::TimedOut => RegisterOpError::TimedOut,
            _ => RegisterOpError::Closed,
        }
    }
}

/// A change of an observed register, as the adapters hand it to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterChange {
    /// The server.
    pub from: SocketAddr,
    /// The register.
    pub register: RegisterId,
    /// Its new value.
    pub value: RegisterValue,
}

/// A client's write to a register of ours, as a server's application sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterWrite {
    /// The register.
    pub register: RegisterId,
    /// The value now in place.
    pub value: RegisterValue,
    /// The client's address.
    pub by: SocketAddr,
    /// The client's identity.
    pub peer: PeerId,
}

/// Something that takes register changes (or a server's writes), run on the driver.
pub trait ChangeSubscriber<T>: Send {
    /// Hands over one change; `false` when the subscriber is gone for good (a dropped
    /// stream). It must not block the driver.
    fn offer(&mut self, change: &T) -> bool;
}

/// A callback on changes, run on the driver's thread; a panic is logged, the callback kept.
pub struct ChangeCallback<T>(Box<dyn FnMut(&T) + Send>);

impl<T> ChangeCallback<T> {
    /// Wraps `callback`.
    pub fn new(callback: impl FnMut(&T) + Send + 'static) -> Self {
        ChangeCallback(Box::new(callback))
    }
}

impl<T> ChangeSubscriber<T> for ChangeCallback<T> {
    fn offer(&mut self, change: &T) -> bool {
        if catch_unwind(AssertUnwindSafe(|| (self.0)(change))).is_err() {
            tracing::error!("register callback panicked");
        }
        true
    }
}

/// What a successful client operation answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterAnswer {
    /// A value (read, reliable write, observe, cancel); `None` for an unreliable write.
    Value(Option<RegisterValue>),
    /// An info answer; `None` past the last register.
    Info(Option<RegisterInfo>),
}

/// The reply slot of a client's register operation.
pub type OpReply = Reply<Result<RegisterAnswer, RegisterOpError>>;
/// What a caller of a register operation waits on.
pub type OpPending = Pending<Result<RegisterAnswer, RegisterOpError>>;

/// A register command from a client handle (opaque outside the plumbing).
pub struct ClientRegisterCmd(Op, OpReply);

impl std::fmt::Debug for ClientRegisterCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientRegisterCmd")
    }
}

enum Op {
    Read(RegisterId, Duration),
    Write(RegisterId, RegisterValue, SendOptions),
    Observe {
        register: RegisterId,
        duration: Duration,
        min_interval: Duration,
        sub: Option<Box<dyn ChangeSubscriber<RegisterChange>>>,
    },
    Info(RegisterId),
}

impl ClientRegisterCmd {
    /// A read with its deadline.
    pub fn read(register: RegisterId, timeout: Duration) -> (Self, OpPending) {
        Self::new(Op::Read(register, timeout))
    }

    /// A write.
    pub fn write(
        register: RegisterId,
        value: RegisterValue,
        options: SendOptions,
    ) -> (Self, OpPending) {
        Self::new(Op::Write(register, value, options))
    }

    /// An observation whose changes go to `sub` (a duration of zero cancels, and drops the
    /// register's subscribers).
    pub fn observe(
        register: RegisterId,
        duration: Duration,
        min_interval: Duration,
        sub: Option<Box<dyn ChangeSubscriber<RegisterChange>>>,
    ) -> (Self, OpPending) {
        Self::new(Op::Observe {
            register,
            duration,
            min_interval,
            sub,
        })
    }

    /// An info request.
    pub fn info(from: RegisterId) -> (Self, OpPending) {
        Self::new(Op::Info(from))
    }

    fn new(op: Op) -> (Self, OpPending) {
        let (reply, pending) = reply::channel();
        (ClientRegisterCmd(op, reply), pending)
    }
}

/// The client router's register state: the callers waiting by operation id, and the
/// observers of each register.
#[derive(Default)]
pub struct ClientRegisters {
    ops: HashMap<RegisterOpId, OpReply>,
    observers: HashMap<RegisterId, Vec<Box<dyn ChangeSubscriber<RegisterChange>>>>,
}

impl std::fmt::Debug for ClientRegisters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRegisters")
            .field("ops", &self.ops.len())
            .field("observed", &self.observers.len())
            .finish()
    }
}

impl ClientRegisters {
    /// Carries out `cmd` on the endpoint.
    pub fn on_command(&mut self, now: Instant, ep: &mut proto::Client, cmd: ClientRegisterCmd) {
        let ClientRegisterCmd(op, reply) = cmd;
        let result = match op {
            Op::Read(r, timeout) => ep.read_register(now, r, Some(timeout)),
            Op::Write(r, value, options) => {
                let unreliable = options.reliability == proto::Reliability::Unreliable;
                match ep.write_register(now, r, value, options) {
                    Ok(_) if unreliable => {
                        return reply.send(Ok(RegisterAnswer::Value(None)));
                    }
                    other => other,
                }
            }
            Op::Observe {
                register,
                duration,
                min_interval,
                sub,
            } => {
                if duration.is_zero() {
                    self.observers.remove(&register);
                    ep.cancel_observe(now, register)
                } else {
                    let op = ep.observe(now, register, duration, min_interval);
                    if let (Ok(_), Some(sub)) = (&op, sub) {
                        self.observers.entry(register).or_default().push(sub);
                    }
                    op
                }
            }
            Op::Info(from) => ep.register_info(now, from),
        };
        match result {
            Ok(id) => {
                self.ops.insert(id, reply);
            }
            Err(e) => reply.send(Err(RegisterOpError::Endpoint(e))),
        }
    }

    /// Takes a register event; hands any other back.
    pub fn on_event(&mut self, event: ClientEvent) -> Option<ClientEvent> {
        match event {
            ClientEvent::RegisterValue { op, value, .. } => {
                self.answer(op, Ok(RegisterAnswer::Value(Some(value))))
            }
            ClientEvent::RegisterInfo { op, info, .. } => {
                self.answer(op, Ok(RegisterAnswer::Info(info)))
            }
            ClientEvent::RegisterFailed { op, failure } => self.answer(op, Err(failure.into())),
            ClientEvent::RegisterNotified {
                from,
                register,
                value,
            } => {
                let change = RegisterChange {
                    from,
                    register,
                    value,
                };
                if let Some(subs) = self.observers.get_mut(&register) {
                    subs.retain_mut(|s| s.offer(&change));
                }
            }
            other => return Some(other),
        }
        None
    }

    fn answer(&mut self, op: RegisterOpId, result: Result<RegisterAnswer, RegisterOpError>) {
        if let Some(reply) = self.ops.remove(&op) {
            reply.send(result);
        }
    }
}

/// A register command from a server handle (opaque outside the plumbing).
pub struct ServerRegisterCmd(ServerOp);

impl std::fmt::Debug for ServerRegisterCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerRegisterCmd")
    }
}

enum ServerOp {
    Declare(Register, Reply<Result<(), RegisterError>>),
    Set(RegisterId, RegisterValue, Reply<Result<(), RegisterError>>),
    Get(RegisterId, Reply<Option<Register>>),
    OnWrite(Box<dyn ChangeSubscriber<RegisterWrite>>),
}

impl ServerRegisterCmd {
    /// Declares `register`.
    pub fn declare(register: Register) -> (Self, Pending<Result<(), RegisterError>>) {
        let (reply, pending) = reply::channel();
        (
            ServerRegisterCmd(ServerOp::Declare(register, reply)),
            pending,
        )
    }

    /// Sets the value of `n`.
    pub fn set(n: RegisterId, value: RegisterValue) -> (Self, Pending<Result<(), RegisterError>>) {
        let (reply, pending) = reply::channel();
        (ServerRegisterCmd(ServerOp::Set(n, value, reply)), pending)
    }

    /// Reads register `n` as the server holds it.
    pub fn get(n: RegisterId) -> (Self, Pending<Option<Register>>) {
        let (reply, pending) = reply::channel();
        (ServerRegisterCmd(ServerOp::Get(n, reply)), pending)
    }

    /// Adds a subscriber to clients' writes.
    pub fn on_write(sub: Box<dyn ChangeSubscriber<RegisterWrite>>) -> Self {
        ServerRegisterCmd(ServerOp::OnWrite(sub))
    }
}

/// The server router's register state: who hears of clients' writes.
#[derive(Default)]
pub struct ServerRegisters {
    writes: Vec<Box<dyn ChangeSubscriber<RegisterWrite>>>,
}

impl std::fmt::Debug for ServerRegisters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerRegisters")
            .field("write_subscribers", &self.writes.len())
            .finish()
    }
}

impl ServerRegisters {
    /// Carries out `cmd` on the endpoint.
    pub fn on_command(&mut self, now: Instant, ep: &mut proto::Server, cmd: ServerRegisterCmd) {
        match cmd.0 {
            ServerOp::Declare(r, reply) => reply.send(ep.declare_register(r)),
            ServerOp::Set(n, value, reply) => reply.send(ep.set_register(now, n, value)),
            ServerOp::Get(n, reply) => reply.send(ep.register(n).cloned()),
            ServerOp::OnWrite(sub) => self.writes.push(sub),
        }
    }

    /// Takes a register event; hands any other back.
    pub fn on_event(&mut self, event: ServerEvent) -> Option<ServerEvent> {
        match event {
            ServerEvent::RegisterWritten {
                register,
                value,
                by,
                peer,
            } => {
                tracing::debug!(%register, %value, %by, "register written");
                let w = RegisterWrite {
                    register,
                    value,
                    by,
                    peer,
                };
                self.writes.retain_mut(|s| s.offer(&w));
                None
            }
            other => Some(other),
        }
    }
}
