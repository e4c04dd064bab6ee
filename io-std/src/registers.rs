//! Registers and observe (`docs/PROTOCOL.md` §9.8) in the blocking adapter: a client reads,
//! writes, observes and lists a server's registers; a server declares and updates them and
//! hears of clients' writes.

use std::time::Duration;

use pavillion_io::plumbing::registers::{
    ChangeCallback, ClientRegisterCmd, OpPending, RegisterAnswer, ServerRegisterCmd,
};
pub use pavillion_io::plumbing::registers::{RegisterChange, RegisterOpError, RegisterWrite};
use pavillion_proto::endpoint::{Register, RegisterError, RegisterInfo, Reliability};
use pavillion_proto::wire::{RegisterId, RegisterValue};

use crate::{Client, Server, GRACE};

impl Client {
    /// Reads register `register` of the server, waiting up to the call timeout.
    ///
    /// # Errors
    /// [`RegisterOpError::Refused`] (`unknown_register`), [`RegisterOpError::TimedOut`], and
    /// the other variants.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(client: pavillion_std::Client) -> Result<(), pavillion_std::RegisterOpError> {
    /// use pavillion_std::RegisterId;
    /// let temp = client.read_register(RegisterId(1))?;
    /// println!("temperature: {temp}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_register(&self, register: RegisterId) -> Result<RegisterValue, RegisterOpError> {
        let timeout = self.handle.call_timeout();
        let (cmd, pending) = ClientRegisterCmd::read(register, timeout);
        value(self.register_wait(cmd, pending, timeout)?)
    }

    /// Writes `value` to register `register`. A reliable write waits for the server's answer
    /// and returns the value now in place; an unreliable one returns `None` once queued (it
    /// needs a session, and is never answered).
    ///
    /// # Errors
    /// [`RegisterOpError::Refused`] (`read_only`, `wrong_type`, `unknown_register`), and the
    /// other variants.
    pub fn write_register(
        &self,
        register: RegisterId,
        value: RegisterValue,
        reliability: Reliability,
    ) -> Result<Option<RegisterValue>, RegisterOpError> {
        let options = self.handle.options(reliability);
        let timeout = self.handle.send_timeout();
        let (cmd, pending) = ClientRegisterCmd::write(register, value, options);
        match self.register_wait(cmd, pending, timeout)? {
            RegisterAnswer::Value(v) => Ok(v),
            RegisterAnswer::Info(_) => Err(RegisterOpError::Closed),
        }
    }

    /// Observes `register` for `duration`, notified at most once per `min_interval`:
    /// `callback` runs on the client's thread for every change, and the observation is
    /// renewed on every new session until `duration` ends. Returns the value now.
    ///
    /// # Errors
    /// [`RegisterOpError::Refused`] (`bad_request` for a zero interval or an absurd
    /// duration, `too_many_observers`, `unknown_register`), and the other variants.
    pub fn observe(
        &self,
        register: RegisterId,
        duration: Duration,
        min_interval: Duration,
        callback: impl FnMut(&RegisterChange) + Send + 'static,
    ) -> Result<RegisterValue, RegisterOpError> {
        let sub = Box::new(ChangeCallback::new(callback));
        let (cmd, pending) =
            ClientRegisterCmd::observe(register, duration, min_interval, Some(sub));
        value(self.register_wait(cmd, pending, self.handle.send_timeout())?)
    }

    /// Ends the observation of `register`; its callbacks are dropped.
    ///
    /// # Errors
    /// As [`Client::read_register`].
    pub fn cancel_observe(&self, register: RegisterId) -> Result<(), RegisterOpError> {
        let (cmd, pending) =
            ClientRegisterCmd::observe(register, Duration::ZERO, Duration::ZERO, None);
        self.register_wait(cmd, pending, self.handle.send_timeout())
            .map(drop)
    }

    /// The first register numbered `from` or more, or `None` past the last one.
    ///
    /// # Errors
    /// As [`Client::read_register`].
    pub fn register_info(&self, from: RegisterId) -> Result<Option<RegisterInfo>, RegisterOpError> {
        let (cmd, pending) = ClientRegisterCmd::info(from);
        match self.register_wait(cmd, pending, self.handle.send_timeout())? {
            RegisterAnswer::Info(i) => Ok(i),
            RegisterAnswer::Value(_) => Err(RegisterOpError::Closed),
        }
    }

    /// Every register of the server, by number (one op 9 exchange each).
    ///
    /// # Errors
    /// As [`Client::read_register`].
    pub fn list_registers(&self) -> Result<Vec<RegisterInfo>, RegisterOpError> {
        let mut all = Vec::new();
        let mut from = Some(RegisterId(0));
        while let Some(f) = from {
            let Some(info) = self.register_info(f)? else {
                break;
            };
            from = info.register.0.checked_add(1).map(RegisterId);
            all.push(info);
        }
        Ok(all)
    }

    fn register_wait(
        &self,
        cmd: ClientRegisterCmd,
        pending: OpPending,
        timeout: Duration,
    ) -> Result<RegisterAnswer, RegisterOpError> {
        self.handle.registers(cmd)?;
        pending.wait_outcome(timeout + GRACE)
    }
}

fn value(answer: RegisterAnswer) -> Result<RegisterValue, RegisterOpError> {
    match answer {
        RegisterAnswer::Value(Some(v)) => Ok(v),
        _ => Err(RegisterOpError::Closed),
    }
}

/// The server's register methods wait for the server's thread, so they are not for its own
/// callbacks (an RPC handler, a write callback): from there they give up after a grace period
/// (declarations and updates fail with `UnknownRegister`, reads return `None`). Declare before
/// clients need the registers: right after [`Server::bind`].
impl Server {
    /// Declares a register clients may read, observe and (if writable) write.
    ///
    /// # Errors
    /// The endpoint's [`RegisterError`] (a number or name already declared, a name too long,
    /// ...); [`RegisterError::UnknownRegister`] if the server is closed.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example(server: pavillion_std::Server) -> Result<(), pavillion_std::RegisterError> {
    /// use pavillion_std::{Register, RegisterId, RegisterValue};
    /// server.declare_register(Register {
    ///     number: RegisterId(1),
    ///     name: "temp".into(),
    ///     unit: "C".into(),
    ///     writable: false,
    ///     value: RegisterValue::F32(20.5),
    /// })?;
    /// server.set_register(RegisterId(1), RegisterValue::F32(21.0))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn declare_register(&self, register: Register) -> Result<(), RegisterError> {
        let (cmd, pending) = ServerRegisterCmd::declare(register);
        self.server_register_wait(cmd, pending)
    }

    /// Sets the value of register `n`; observers are notified.
    ///
    /// # Errors
    /// [`RegisterError::UnknownRegister`], [`RegisterError::WrongType`],
    /// [`RegisterError::ValueTooLarge`].
    pub fn set_register(&self, n: RegisterId, value: RegisterValue) -> Result<(), RegisterError> {
        let (cmd, pending) = ServerRegisterCmd::set(n, value);
        self.server_register_wait(cmd, pending)
    }

    /// Register `n` as we hold it now (`None` if undeclared or the server is closed).
    pub fn register_value(&self, n: RegisterId) -> Option<Register> {
        let (cmd, pending) = ServerRegisterCmd::get(n);
        if !self.handle.registers(cmd) {
            return None;
        }
        pending.wait(GRACE).ok().flatten()
    }

    /// Runs `callback` on the server's thread for every client write applied to one of our
    /// registers.
    pub fn on_register_write(&self, callback: impl FnMut(&RegisterWrite) + Send + 'static) {
        let cmd = ServerRegisterCmd::on_write(Box::new(ChangeCallback::new(callback)));
        self.handle.registers(cmd);
    }

    fn server_register_wait(
        &self,
        cmd: ServerRegisterCmd,
        pending: pavillion_io::plumbing::reply::Pending<Result<(), RegisterError>>,
    ) -> Result<(), RegisterError> {
        if !self.handle.registers(cmd) {
            return Err(RegisterError::UnknownRegister);
        }
        pending
            .wait(GRACE)
            .unwrap_or(Err(RegisterError::UnknownRegister))
    }
}
