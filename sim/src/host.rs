//! Endpoint hosts: a real `proto` endpoint on a turmoil socket, driven by the scenario's script.
//!
//! Each host's task owns its endpoint and drives it only through `proto`'s `Endpoint` trait,
//! so any role runs here: feed each received datagram and each expired deadline, then drain
//! `poll_transmit` and `poll_event`, then sleep until `poll_timeout()`, the next datagram, the
//! next scripted command or the next deferred action ([`Ctl::after`]).

use alloc::rc::Rc;
use core::cell::RefCell;
use core::fmt::Debug;
use core::net::SocketAddr;

use pavillion_proto::endpoint::{
    CallHandle, CallId, Client, ClientConfig, Endpoint, HandoffError, HandoffId, HandoffTarget,
    SendError, SendOptions, Server, ServerConfig,
};
use pavillion_proto::features::durable::DurableRestored;
use pavillion_proto::wire::{self, RpcStatus};
use pavillion_proto::{Duration, FunctionId, Instant, MessageId};
use turmoil::net::UdpSocket;

use crate::durable::StoreSpec;
use crate::net::{now, Shared, Wire};
use crate::trace::{HostEvent, Record};

/// The port servers listen on unless their spec says otherwise (the reference's).
pub const SERVER_PORT: u16 = 1783;
/// The port clients bind unless their spec says otherwise. Fixed, so that a rebooted client
/// comes back at the same address, as a device with a configured port does.
pub const CLIENT_PORT: u16 = 40000;

/// What a script or application may do with its endpoint, at the current simulated time.
///
/// Commands given through the `Ctl` helpers are recorded in the trace with their results;
/// [`Ctl::endpoint`] gives the endpoint itself for anything else.
pub struct Ctl<'a, E> {
    pub(crate) now: Instant,
    pub(crate) host: &'a Rc<str>,
    pub(crate) endpoint: &'a mut E,
    pub(crate) world: &'a Shared,
    /// The running incarnation's deferred actions ([`Ctl::after`]); `None` on hosts whose
    /// driver runs none (the fleet roles).
    pub(crate) later: Option<&'a Later<E>>,
}

/// An action an application deferred ([`Ctl::after`]).
type Deferred<E> = Box<dyn FnOnce(&mut Ctl<'_, E>)>;

/// The actions one incarnation of a host deferred, soonest first (in the order given for
/// equal times). They die with the incarnation, as a process's timers do.
pub(crate) struct Later<E>(RefCell<Vec<(Instant, Deferred<E>)>>);

impl<E> Default for Later<E> {
    fn default() -> Self {
        Later(RefCell::new(Vec::new()))
    }
}

impl<E> Later<E> {
    fn push(&self, at: Instant, f: Deferred<E>) {
        let mut v = self.0.borrow_mut();
        let i = v.partition_point(|(t, _)| *t <= at);
        v.insert(i, (at, f));
    }

    /// When the soonest is due.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.0.borrow().first().map(|(t, _)| *t)
    }

    /// The soonest, if it is due by `now`.
    fn take_due(&self, now: Instant) -> Option<Deferred<E>> {
        let mut v = self.0.borrow_mut();
        if v.first().is_some_and(|(t, _)| *t <= now) {
            Some(v.remove(0).1)
        } else {
            None
        }
    }
}

/// The handle a server's application gets.
pub type ServerCtl<'a> = Ctl<'a, Server>;
/// The handle a client's script gets.
pub type ClientCtl<'a> = Ctl<'a, Client>;

impl<E> Ctl<'_, E> {
    /// The simulated time, in microseconds since the simulation started.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The host's name.
    pub fn host(&self) -> &str {
        self.host
    }

    /// The endpoint itself. Commands given this way are not traced.
    pub fn endpoint(&mut self) -> &mut E {
        self.endpoint
    }

    /// What this incarnation's `enable_durable` restored from the host's store, for a host
    /// with a [`StoreSpec`](crate::StoreSpec); `None` otherwise. Read it in `on_start` to
    /// resume the application's own input and output from the stored marks.
    pub fn durable_restored(&self) -> Option<DurableRestored> {
        self.world.borrow().durable.restored(self.host)
    }

    /// Runs `f` after `delay` of simulated time, in this incarnation of the host: an
    /// application's own timer (a bridge waiting for its broker's answer, say). A crash of the
    /// host drops every action not yet run, as it would a process's timers. Not traced itself;
    /// the commands `f` gives are. Only hosts of endpoints and relays run deferred actions: on
    /// a fleet role's host the action is dropped with a note in the trace.
    pub fn after(&mut self, delay: Duration, f: impl FnOnce(&mut Ctl<'_, E>) + 'static) {
        match self.later {
            Some(later) => later.push(self.now + delay, Box::new(f)),
            None => self.note("after: deferred actions are not run on this host; dropped"),
        }
    }

    /// Adds a note to the trace.
    pub fn note(&mut self, text: impl Into<String>) {
        self.world
            .borrow_mut()
            .note(self.now, self.host, text.into());
    }

    fn command<T: Debug>(&mut self, text: String, result: T) -> T {
        self.world.borrow_mut().trace.push(Record::Command {
            at: self.now,
            host: self.host.clone(),
            text: format!("{text} -> {result:?}"),
        });
        result
    }
}

impl Ctl<'_, Client> {
    /// Sends a message to the client's server (or group); see [`Client::send_message`].
    ///
    /// # Errors
    /// As [`Client::send_message`].
    pub fn send_message(
        &mut self,
        target: &str,
        name: &str,
        payload: &[u8],
        options: SendOptions,
    ) -> Result<MessageId, SendError> {
        let r = self
            .endpoint
            .send_message(self.now, target, name, payload, options);
        let text = format!("send {target:?} {name:?} {payload:?} {options:?}");
        self.command(text, r)
    }

    /// Calls a function on the server; see [`Client::call`].
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn call(
        &mut self,
        function: FunctionId,
        args: &[u8],
        timeout: Option<Duration>,
    ) -> Result<CallId, SendError> {
        let r = self.endpoint.call(self.now, function, args, timeout);
        self.command(format!("call {} {args:?} {timeout:?}", function.0), r)
    }

    /// Closes the client; see [`Client::close`].
    pub fn close(&mut self) {
        self.endpoint.close(self.now);
        self.command("close".into(), ());
    }
}

impl Ctl<'_, Server> {
    /// Answers an RPC request; see [`Server::respond`].
    ///
    /// # Errors
    /// As [`Server::respond`].
    pub fn respond(
        &mut self,
        call: CallHandle,
        status: RpcStatus,
        data: &[u8],
    ) -> Result<(), SendError> {
        let r = self.endpoint.respond(self.now, call, status, data);
        self.command(format!("respond {} {data:?}", status.0), r)
    }

    /// Sends a message to the client at `to`; see [`Server::send_message`]. (Named apart
    /// from the client's `send_message` so that a script's role can be inferred from it.)
    ///
    /// # Errors
    /// As [`Server::send_message`].
    pub fn send_message_to(
        &mut self,
        to: SocketAddr,
        target: &str,
        name: &str,
        payload: &[u8],
        options: SendOptions,
    ) -> Result<MessageId, SendError> {
        let r = self
            .endpoint
            .send_message(self.now, to, target, name, payload, options);
        let text = format!("send {to} {target:?} {name:?} {payload:?} {options:?}");
        self.command(text, r)
    }

    /// Ends the session with the client at `to`; see [`Server::disconnect`].
    pub fn disconnect(&mut self, to: SocketAddr) {
        self.endpoint.disconnect(self.now, to);
        self.command(format!("disconnect {to}"), ());
    }

    /// Holds the ACK of reliable messages to `target`; see [`Server::set_handoff`].
    pub fn set_handoff(&mut self, target: HandoffTarget) {
        let text = format!("set_handoff {target:?}");
        self.endpoint.set_handoff(target);
        self.command(text, ());
    }

    /// A held message is safe elsewhere: its ACK goes; see [`Server::complete_handoff`].
    ///
    /// # Errors
    /// As [`Server::complete_handoff`].
    pub fn complete_handoff(&mut self, id: HandoffId) -> Result<(), HandoffError> {
        let r = self.endpoint.complete_handoff(self.now, id);
        self.command(format!("complete_handoff {id}"), r)
    }

    /// A held message is not taken: it comes again; see [`Server::refuse_handoff`].
    ///
    /// # Errors
    /// As [`Server::refuse_handoff`].
    pub fn refuse_handoff(&mut self, id: HandoffId) -> Result<(), HandoffError> {
        let r = self.endpoint.refuse_handoff(self.now, id);
        self.command(format!("refuse_handoff {id}"), r)
    }
}

pub(crate) type Step<E> = Box<dyn FnMut(&mut Ctl<'_, E>)>;
pub(crate) type OnEvent<E, Ev> = Box<dyn FnMut(&mut Ctl<'_, E>, Ev)>;

/// What the application of a host running `E` does, whose events are `Ev`: commands at
/// chosen simulated times, a hook run at every (re)start, and a reaction to every event.
/// Named [`Script`] for clients, servers and relays, and [`RoleScript`](crate::RoleScript)
/// for authorities and members.
///
/// A script outlives reboots of its host: a command runs at most once, and commands that fall
/// due while the host is down are skipped, as an application that is not running does nothing.
pub struct HostScript<E, Ev> {
    steps: Vec<(Duration, Step<E>)>,
    on_start: Option<Step<E>>,
    on_event: Option<OnEvent<E, Ev>>,
}

/// The script of a client, server or relay host ([`HostScript`]).
///
/// # Examples
/// ```
/// use core::time::Duration;
/// use pavillion_proto::endpoint::{Client, SendOptions};
/// use pavillion_sim::Script;
///
/// let script: Script<Client> = Script::new()
///     .repeat(Duration::from_millis(100), Duration::from_millis(10), 5, |ctl, i| {
///         let _ = ctl.send_message("t", "n", &[i as u8], SendOptions::reliable());
///     })
///     .on_event(|ctl, event| ctl.note(format!("{event:?}")));
/// assert_eq!(script.len(), 5);
/// ```
pub type Script<E> = HostScript<E, <E as Endpoint>::Event>;

impl<E, Ev> Default for HostScript<E, Ev> {
    fn default() -> Self {
        HostScript {
            steps: Vec::new(),
            on_start: None,
            on_event: None,
        }
    }
}

impl<E, Ev> HostScript<E, Ev> {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` at simulated time `at` (from the start of the simulation). Commands at the
    /// same time run in the order they were added.
    pub fn at(mut self, at: Duration, f: impl FnMut(&mut Ctl<'_, E>) + 'static) -> Self {
        let i = self.steps.partition_point(|(t, _)| *t <= at);
        self.steps.insert(i, (at, Box::new(f)));
        self
    }

    /// Runs `f(ctl, i)` for `i` in `0..count`, at `start + i * interval`.
    pub fn repeat(
        mut self,
        start: Duration,
        interval: Duration,
        count: usize,
        f: impl FnMut(&mut Ctl<'_, E>, usize) + 'static,
    ) -> Self {
        let f = Rc::new(RefCell::new(f));
        for i in 0..count {
            let f = f.clone();
            let at = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
            self = self.at(at, move |ctl| (f.borrow_mut())(ctl, i));
        }
        self
    }

    /// Runs `f` each time the host's software starts, before anything else (to register RPC
    /// functions or subscriptions, which a rebooted endpoint has forgotten).
    pub fn on_start(mut self, f: impl FnMut(&mut Ctl<'_, E>) + 'static) -> Self {
        self.on_start = Some(Box::new(f));
        self
    }

    /// Runs `f` for every event of the endpoint, after it is traced.
    pub fn on_event(mut self, f: impl FnMut(&mut Ctl<'_, E>, Ev) + 'static) -> Self {
        self.on_event = Some(Box::new(f));
        self
    }

    pub(crate) fn on_start_mut(&mut self) -> Option<&mut Step<E>> {
        self.on_start.as_mut()
    }

    pub(crate) fn on_event_mut(&mut self) -> Option<&mut OnEvent<E, Ev>> {
        self.on_event.as_mut()
    }

    pub(crate) fn take_on_start(&mut self) -> Option<Step<E>> {
        self.on_start.take()
    }

    /// When the timed step `next` is due.
    pub(crate) fn step_at(&self, next: usize) -> Option<Instant> {
        next_step_at(&self.steps, next)
    }

    /// Runs, in order, the timed steps from `*next` that are due now.
    pub(crate) fn run_due(
        &mut self,
        next: &mut usize,
        ep: &mut E,
        host: &Rc<str>,
        world: &Shared,
        later: Option<&Later<E>>,
    ) {
        run_due_steps(&mut self.steps, next, ep, host, world, later);
    }

    /// Number of timed commands.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there are no timed commands.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// A server host: its endpoint configuration and what it serves.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// The endpoint's configuration. Its `seed` is replaced by one derived from the simulation
    /// seed, the host name and the restart count.
    pub config: ServerConfig,
    /// The port it listens on.
    pub port: u16,
    /// RPC functions to register at every start: number and name.
    pub functions: Vec<(FunctionId, String)>,
    /// Targets to subscribe to at every start.
    pub subscriptions: Vec<String>,
    /// A store that outlives the host's reboots, for durable messages: `None` for a server
    /// without durability.
    pub store: Option<StoreSpec>,
}

impl ServerSpec {
    /// A server on [`SERVER_PORT`] with no functions or subscriptions.
    pub fn new(config: ServerConfig) -> Self {
        ServerSpec {
            config,
            port: SERVER_PORT,
            functions: Vec::new(),
            subscriptions: Vec::new(),
            store: None,
        }
    }

    /// Gives the server a store that outlives its reboots, and turns durable messages on at
    /// every start, restored from it (see [`StoreSpec`]).
    pub fn with_store(mut self, store: StoreSpec) -> Self {
        self.store = Some(store);
        self
    }

    /// Registers an RPC function at every start; its calls reach the application.
    pub fn with_function(mut self, function: FunctionId, name: &str) -> Self {
        self.functions.push((function, name.into()));
        self
    }

    /// Subscribes to a target at every start.
    pub fn with_subscription(mut self, target: &str) -> Self {
        self.subscriptions.push(target.into());
        self
    }
}

impl From<ServerConfig> for ServerSpec {
    fn from(config: ServerConfig) -> Self {
        ServerSpec::new(config)
    }
}

/// A client host: its endpoint configuration and port.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    /// The endpoint's configuration. Its `seed` is replaced by one derived from the simulation
    /// seed, the host name and the restart count.
    pub config: ClientConfig,
    /// The port it binds.
    pub port: u16,
    /// A store that outlives the host's reboots, for durable messages: `None` for a client
    /// without durability.
    pub store: Option<StoreSpec>,
}

impl ClientSpec {
    /// Gives the client a store that outlives its reboots, and turns durable messages on at
    /// every start, restored from it (see [`StoreSpec`]).
    pub fn with_store(mut self, store: StoreSpec) -> Self {
        self.store = Some(store);
        self
    }
}

impl From<ClientConfig> for ClientSpec {
    fn from(config: ClientConfig) -> Self {
        ClientSpec {
            config,
            port: CLIENT_PORT,
            store: None,
        }
    }
}

/// What a host runs: any endpoint, driven through the one driving contract, whose events
/// the trace can record.
pub(crate) trait Hosted: Endpoint<Event: Clone + Into<HostEvent>> + 'static {}

impl<E: Endpoint<Event: Clone + Into<HostEvent>> + 'static> Hosted for E {}

/// A script with its progress, shared by the incarnations of one host.
pub(crate) struct ScriptRun<E: Endpoint> {
    pub(crate) script: Script<E>,
    /// Index of the first timed command not yet run or skipped.
    pub(crate) next: usize,
}

impl<E: Endpoint> ScriptRun<E> {
    pub(crate) fn new(script: Script<E>) -> Rc<RefCell<Self>> {
        Rc::new(RefCell::new(ScriptRun { script, next: 0 }))
    }

    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.script.step_at(self.next)
    }
}

/// When the timed step `next` of `steps` is due.
fn next_step_at<E>(steps: &[(Duration, Step<E>)], next: usize) -> Option<Instant> {
    steps.get(next).map(|(t, _)| Instant::ZERO + *t)
}

/// Runs, in order, the timed steps of `steps` from `*next` that are due now, on every kind
/// of host; `later` is where the steps may defer actions (`None` where the driver runs none).
fn run_due_steps<E>(
    steps: &mut [(Duration, Step<E>)],
    next: &mut usize,
    ep: &mut E,
    host: &Rc<str>,
    world: &Shared,
    later: Option<&Later<E>>,
) {
    loop {
        let t = now();
        if next_step_at(steps, *next).is_none_or(|at| at > t) {
            return;
        }
        let i = *next;
        *next += 1;
        if let Some((_, f)) = steps.get_mut(i) {
            f(&mut Ctl {
                now: t,
                host,
                endpoint: ep,
                world,
                later,
            });
        }
    }
}

/// The long-lived parts of a host's task.
pub(crate) struct HostCtx<E: Endpoint> {
    /// The endpoint's name: in the trace, the stats and the seeds of its RNGs.
    pub(crate) host: Rc<str>,
    /// The turmoil host it runs on; the same as `host` unless several endpoints share one.
    pub(crate) node: Rc<str>,
    pub(crate) world: Shared,
    pub(crate) script: Rc<RefCell<ScriptRun<E>>>,
    pub(crate) port: u16,
    pub(crate) incarnation: u32,
    /// This incarnation's deferred actions ([`Ctl::after`]).
    pub(crate) later: Later<E>,
}

impl<E: Endpoint> HostCtx<E> {
    /// When the application next needs to run: its script's next command or its soonest
    /// deferred action. With no deferred action this is the script's alone, so a host whose
    /// application defers nothing wakes exactly as before deferred actions existed.
    pub(crate) fn app_next_at(&self) -> Option<Instant> {
        let script = self.script.borrow().next_at();
        match (script, self.later.next_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What a host's driver does with its endpoint's stored state, if it keeps any (see
/// `durable`): restore at start, write batches after each pass, wake up when a write is done.
pub(crate) trait StoreHook<E> {
    /// At start, before the script's `on_start`. An error ends the host's software.
    fn start(&mut self, ep: &mut E, now: Instant) -> Result<(), String>;
    /// After the transmits of each pass; whether it did anything (the pass repeats then).
    fn pump(&mut self, ep: &mut E, now: Instant) -> bool;
    /// When the driver must wake up for the store.
    fn deadline(&self) -> Option<Instant>;
}

/// A store, or none: with `None` the driver is exactly what it was before durable hosts
/// existed (no extra wake-ups, nothing more in the trace), so existing digests stay.
impl<E, S: StoreHook<E>> StoreHook<E> for Option<S> {
    fn start(&mut self, ep: &mut E, now: Instant) -> Result<(), String> {
        self.as_mut().map_or(Ok(()), |s| s.start(ep, now))
    }
    fn pump(&mut self, ep: &mut E, now: Instant) -> bool {
        self.as_mut().is_some_and(|s| s.pump(ep, now))
    }
    fn deadline(&self) -> Option<Instant> {
        self.as_ref().and_then(|s| s.deadline())
    }
}

/// Runs one incarnation of an endpoint host until it is crashed, its stored state (if any)
/// handled by `store`.
pub(crate) async fn drive<E: Hosted, S: StoreHook<E>>(
    mut ep: E,
    ctx: HostCtx<E>,
    mut store: S,
) -> turmoil::Result {
    let sock = Rc::new(UdpSocket::bind((core::net::Ipv4Addr::UNSPECIFIED, ctx.port)).await?);
    let local = SocketAddr::new(turmoil::lookup(&*ctx.node), ctx.port);
    let mut wire = Wire::new(ctx.host.clone(), ctx.incarnation, ctx.world.clone());
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    // One byte more than any valid datagram, so that an oversized one reaches the endpoint
    // still oversized instead of silently truncated to a valid length.
    let mut rbuf = vec![0u8; wire::MAX_DATAGRAM + 1];

    let start = now();
    ctx.world
        .borrow_mut()
        .note(start, &ctx.host, format!("start {}", ctx.incarnation));
    if crate::tap::key_log(&ctx.world) {
        ep.set_key_log(true);
    }
    store.start(&mut ep, start)?;
    {
        let mut run = ctx.script.borrow_mut();
        while run.next_at().is_some_and(|t| t < start) {
            run.next += 1;
        }
        if let Some(f) = run.script.on_start.as_mut() {
            f(&mut Ctl {
                now: start,
                host: &ctx.host,
                endpoint: &mut ep,
                world: &ctx.world,
                later: Some(&ctx.later),
            });
        }
    }

    // Zero-length waits in a row: paused time does not advance while a task is ready, so an
    // endpoint whose deadline stays in the past would spin forever inside one tick.
    let mut spins = 0u32;
    loop {
        run_due(&mut ep, &ctx);
        pump(&mut ep, &ctx, &mut wire, &sock, local, &mut buf, &mut store);
        ctx.world
            .borrow_mut()
            .set_stats(&ctx.host, ctx.incarnation, ep.stats());

        let endpoint = match (ep.poll_timeout(), store.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let wait = next_wait([endpoint, ctx.app_next_at()], &mut spins);
        tokio::select! {
            biased;
            r = sock.recv_from(&mut rbuf) => {
                if let Ok((n, from)) = r {
                    let data = rbuf.get(..n).unwrap_or_default();
                    let spoofer = ctx.world.borrow().spoofers.contains(&from.ip());
                    match crate::spoof::unwrap(data).filter(|_| spoofer) {
                        // Forged datagrams from an adversary (see `spoof`).
                        Some(batch) => {
                            for (source, bytes) in batch {
                                deliver(&mut ep, &ctx, local, source, bytes);
                            }
                        }
                        None => deliver(&mut ep, &ctx, local, from, data),
                    }
                }
            }
            _ = sleep_for(wait) => ep.handle_timeout(now()),
        }
    }
}

/// Hands one datagram to the endpoint, recording what it did with it in a decoded trace.
fn deliver<E: Hosted>(
    ep: &mut E,
    ctx: &HostCtx<E>,
    local: SocketAddr,
    from: SocketAddr,
    bytes: &[u8],
) {
    let before = crate::tap::before(&ctx.world, || crate::tap::drops(ep.stats()));
    ep.handle_datagram(now(), from, bytes);
    let after = || crate::tap::drops(ep.stats());
    crate::tap::received(&ctx.world, &ctx.host, from, local, bytes, before, after);
}

/// How long a host sleeps: until the earliest of `deadlines` (its endpoint's, its script's),
/// or forever if none. After 64 zero-length waits in a row it sleeps 1 ms, because paused
/// time does not advance while a task is ready, so a deadline that stays in the past would
/// spin forever inside one tick; `spins` counts them across calls.
pub(crate) fn next_wait(deadlines: [Option<Instant>; 2], spins: &mut u32) -> Option<Duration> {
    let t = now();
    let mut wait = deadlines
        .into_iter()
        .flatten()
        .min()
        .map(|d| d.saturating_duration_since(t));
    if wait == Some(Duration::ZERO) {
        *spins += 1;
        if *spins > 64 {
            wait = Some(Duration::from_millis(1));
            *spins = 0;
        }
    } else {
        *spins = 0;
    }
    wait
}

/// Sleeps for `wait`, or forever for `None`.
pub(crate) async fn sleep_for(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => core::future::pending().await,
    }
}

/// Runs the script's commands that are due, then the deferred actions that are.
pub(crate) fn run_due<E: Hosted>(ep: &mut E, ctx: &HostCtx<E>) {
    {
        let mut run = ctx.script.borrow_mut();
        let run = &mut *run;
        run.script
            .run_due(&mut run.next, ep, &ctx.host, &ctx.world, Some(&ctx.later));
    }
    // One at a time: an action may defer another.
    loop {
        let t = now();
        let Some(f) = ctx.later.take_due(t) else {
            return;
        };
        f(&mut Ctl {
            now: t,
            host: &ctx.host,
            endpoint: ep,
            world: &ctx.world,
            later: Some(&ctx.later),
        });
    }
}

/// Drains transmits, store batches and events until the endpoint has nothing more to say;
/// an application reacting to an event may queue more.
fn pump<E: Hosted, S: StoreHook<E>>(
    ep: &mut E,
    ctx: &HostCtx<E>,
    wire: &mut Wire,
    sock: &Rc<UdpSocket>,
    local: SocketAddr,
    buf: &mut [u8],
    store: &mut S,
) {
    loop {
        let t = now();
        let mut busy = false;
        crate::tap::secrets(&ctx.world, || ep.poll_secret());
        while let Some(tx) = ep.poll_transmit(t, buf) {
            busy = true;
            if let Some(bytes) = buf.get(..tx.len) {
                wire.send(sock, local, t, tx.destination, bytes);
            }
        }
        busy |= store.pump(ep, t);
        while let Some(event) = ep.poll_event() {
            busy = true;
            ctx.world.borrow_mut().trace.push(Record::Event {
                at: t,
                host: ctx.host.clone(),
                event: event.clone().into(),
            });
            let mut run = ctx.script.borrow_mut();
            if let Some(f) = run.script.on_event.as_mut() {
                f(
                    &mut Ctl {
                        now: t,
                        host: &ctx.host,
                        endpoint: ep,
                        world: &ctx.world,
                        later: Some(&ctx.later),
                    },
                    event,
                );
            }
        }
        if !busy {
            return;
        }
    }
}
