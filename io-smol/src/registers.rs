//! Registers and observe (`docs/PROTOCOL.md` §9.8) in the async adapter: a client reads,
//! writes, observes (as a [`RegisterStream`]) and lists a server's registers; a server
//! declares and updates them and hears of clients' writes as a stream.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_channel::{Receiver, Sender, TrySendError};
use futures_lite::Stream;
use pavillion_io::plumbing::registers::{
    ChangeSubscriber, ClientRegisterCmd, RegisterAnswer, ServerRegisterCmd,
};
pub use pavillion_io::plumbing::registers::{RegisterChange, RegisterOpError, RegisterWrite};
use pavillion_proto::endpoint::{Register, RegisterError, RegisterInfo, Reliability};
use pavillion_proto::wire::{RegisterId, RegisterValue};

use crate::{Client, Server};

/// Changes of an observed register (or a server's writes), as a [`Stream`]. Bounded like a
/// message stream: the driver never waits for a reader, and a change that arrives while the
/// buffer is full is dropped for this stream and counted in [`RegisterStream::dropped`]. It
/// ends when the endpoint closes or the observation is cancelled.
#[derive(Debug)]
pub struct RegisterStream<T> {
    rx: Pin<Box<Receiver<T>>>,
    dropped: Arc<AtomicU64>,
}

impl<T> RegisterStream<T> {
    /// How many changes were dropped because this stream's buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl<T> Stream for RegisterStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.as_mut().poll_next(cx)
    }
}

struct StreamSender<T> {
    tx: Sender<T>,
    dropped: Arc<AtomicU64>,
}

impl<T: Clone + Send> ChangeSubscriber<T> for StreamSender<T> {
    fn offer(&mut self, change: &T) -> bool {
        match self.tx.try_send(change.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

fn stream<T>(capacity: usize) -> (StreamSender<T>, RegisterStream<T>) {
    let (tx, rx) = async_channel::bounded(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    (
        StreamSender {
            tx,
            dropped: dropped.clone(),
        },
        RegisterStream {
            rx: Box::pin(rx),
            dropped,
        },
    )
}

fn value(answer: RegisterAnswer) -> Result<RegisterValue, RegisterOpError> {
    match answer {
        RegisterAnswer::Value(Some(v)) => Ok(v),
        _ => Err(RegisterOpError::Closed),
    }
}

impl Client {
    /// Reads register `register` of the server.
    ///
    /// # Errors
    /// [`RegisterOpError::Refused`] (`unknown_register`), [`RegisterOpError::TimedOut`], and
    /// the other variants.
    pub async fn read_register(
        &self,
        register: RegisterId,
    ) -> Result<RegisterValue, RegisterOpError> {
        let (cmd, pending) = ClientRegisterCmd::read(register, self.handle.call_timeout());
        self.handle.registers(cmd)?;
        value(pending.outcome().await?)
    }

    /// Writes `value` to register `register`: a reliable write resolves with the value now
    /// in place, an unreliable one with `None` once queued.
    ///
    /// # Errors
    /// [`RegisterOpError::Refused`] (`read_only`, `wrong_type`, `unknown_register`), and the
    /// other variants.
    pub async fn write_register(
        &self,
        register: RegisterId,
        value: RegisterValue,
        reliability: Reliability,
    ) -> Result<Option<RegisterValue>, RegisterOpError> {
        let options = self.handle.options(reliability);
        let (cmd, pending) = ClientRegisterCmd::write(register, value, options);
        self.handle.registers(cmd)?;
        match pending.outcome().await? {
            RegisterAnswer::Value(v) => Ok(v),
            RegisterAnswer::Info(_) => Err(RegisterOpError::Closed),
        }
    }

    /// Observes `register` for `duration`, notified at most once per `min_interval`; the
    /// observation is renewed on every new session until `duration` ends. Resolves with the
    /// value now and the stream of changes.
    ///
    /// # Errors
    /// [`RegisterOpError::Refused`] (`bad_request`, `too_many_observers`,
    /// `unknown_register`), and the other variants.
    ///
    /// # Examples
    /// ```no_run
    /// use futures_lite::StreamExt;
    /// use pavillion_smol::RegisterId;
    /// use std::time::Duration;
    /// # smol::block_on(async {
    /// # async fn example(client: pavillion_smol::Client) -> Result<(), pavillion_smol::RegisterOpError> {
    /// let (now, mut changes) = client
    ///     .observe(RegisterId(1), Duration::from_secs(600), Duration::from_millis(100))
    ///     .await?;
    /// println!("now {now}");
    /// while let Some(change) = changes.next().await {
    ///     println!("-> {}", change.value);
    /// }
    /// # Ok(())
    /// # }
    /// # });
    /// ```
    pub async fn observe(
        &self,
        register: RegisterId,
        duration: Duration,
        min_interval: Duration,
    ) -> Result<(RegisterValue, RegisterStream<RegisterChange>), RegisterOpError> {
        let (sub, changes) = stream(self.handle.message_buffer());
        let (cmd, pending) =
            ClientRegisterCmd::observe(register, duration, min_interval, Some(Box::new(sub)));
        self.handle.registers(cmd)?;
        Ok((value(pending.outcome().await?)?, changes))
    }

    /// Ends the observation of `register`; its streams end.
    ///
    /// # Errors
    /// As [`Client::read_register`].
    pub async fn cancel_observe(&self, register: RegisterId) -> Result<(), RegisterOpError> {
        let (cmd, pending) =
            ClientRegisterCmd::observe(register, Duration::ZERO, Duration::ZERO, None);
        self.handle.registers(cmd)?;
        pending.outcome().await.map(drop)
    }

    /// The first register numbered `from` or more, or `None` past the last one.
    ///
    /// # Errors
    /// As [`Client::read_register`].
    pub async fn register_info(
        &self,
        from: RegisterId,
    ) -> Result<Option<RegisterInfo>, RegisterOpError> {
        let (cmd, pending) = ClientRegisterCmd::info(from);
        self.handle.registers(cmd)?;
        match pending.outcome().await? {
            RegisterAnswer::Info(i) => Ok(i),
            RegisterAnswer::Value(_) => Err(RegisterOpError::Closed),
        }
    }

    /// Every register of the server, by number.
    ///
    /// # Errors
    /// As [`Client::read_register`].
    pub async fn list_registers(&self) -> Result<Vec<RegisterInfo>, RegisterOpError> {
        let mut all = Vec::new();
        let mut from = Some(RegisterId(0));
        while let Some(f) = from {
            let Some(info) = self.register_info(f).await? else {
                break;
            };
            from = info.register.0.checked_add(1).map(RegisterId);
            all.push(info);
        }
        Ok(all)
    }
}

impl Server {
    /// Declares a register clients may read, observe and (if writable) write.
    ///
    /// # Errors
    /// The endpoint's [`RegisterError`]; [`RegisterError::UnknownRegister`] if the server
    /// is closed.
    pub async fn declare_register(&self, register: Register) -> Result<(), RegisterError> {
        let (cmd, pending) = ServerRegisterCmd::declare(register);
        if !self.handle.registers(cmd) {
            return Err(RegisterError::UnknownRegister);
        }
        pending.await.unwrap_or(Err(RegisterError::UnknownRegister))
    }

    /// Sets the value of register `n`; observers are notified.
    ///
    /// # Errors
    /// [`RegisterError::UnknownRegister`], [`RegisterError::WrongType`],
    /// [`RegisterError::ValueTooLarge`].
    pub async fn set_register(
        &self,
        n: RegisterId,
        value: RegisterValue,
    ) -> Result<(), RegisterError> {
        let (cmd, pending) = ServerRegisterCmd::set(n, value);
        if !self.handle.registers(cmd) {
            return Err(RegisterError::UnknownRegister);
        }
        pending.await.unwrap_or(Err(RegisterError::UnknownRegister))
    }

    /// Register `n` as we hold it now (`None` if undeclared or the server is closed).
    pub async fn register_value(&self, n: RegisterId) -> Option<Register> {
        let (cmd, pending) = ServerRegisterCmd::get(n);
        if !self.handle.registers(cmd) {
            return None;
        }
        pending.await.ok().flatten()
    }

    /// The clients' writes applied to our registers, as a stream.
    pub fn register_writes(&self) -> RegisterStream<RegisterWrite> {
        let (sub, writes) = stream(pavillion_io::config::DEFAULT_MESSAGE_BUFFER);
        self.handle
            .registers(ServerRegisterCmd::on_write(Box::new(sub)));
        writes
    }
}
