//! The plumbing every scenario shares: hosts whose applications keep the ledger, and the
//! reduction of a finished run to an [`Outcome`].

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use core::cell::RefCell;
use core::net::SocketAddr;
use core::time::Duration;

use pavillion_proto::endpoint::{
    Client, ClientConfig, ClientEvent, SendOptions, Server, ServerEvent,
};
use pavillion_proto::rng::Rng;
use pavillion_proto::{Instant, MessageId};
use pavillion_sim::{ClientSpec, HostEvent, LinkFaults, Script, ServerSpec, SimConfig, Simulation};

use crate::outcome::{Ack, Expect, Latency, Ledger, Outcome, Sent, MAX_LATENCY_SAMPLES};
use crate::Params;

/// A batch of reliable messages a client sends: `count` of them, one every `interval` from
/// `start` (each late by a seeded jitter of up to half the interval), each with `deadline`
/// to be acknowledged, to `target` ("t" unless [`Batch::ordered`] names another).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Batch {
    pub(crate) start: Duration,
    pub(crate) interval: Duration,
    pub(crate) count: usize,
    pub(crate) deadline: Duration,
    pub(crate) target: &'static str,
    /// Sent with `SendOptions::ordered()` (op 36) instead of `reliable()`.
    pub(crate) ordered: bool,
}

impl Batch {
    pub(crate) const fn new(start: Duration, interval: Duration, count: usize) -> Self {
        Batch {
            start,
            interval,
            count,
            deadline: Duration::from_secs(60),
            target: "t",
            ordered: false,
        }
    }

    /// Sends the batch as ordered messages to `target`.
    pub(crate) const fn ordered(mut self, target: &'static str) -> Self {
        self.target = target;
        self.ordered = true;
        self
    }

    pub(crate) const fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }
}

pub(crate) const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A simulation whose endpoint hosts report to a shared [`Ledger`].
pub(crate) struct Harness {
    pub(crate) sim: Simulation,
    pub(crate) params: Params,
    ledger: Rc<RefCell<Ledger>>,
    /// Draws the send schedule's jitter.
    rng: Rng,
    servers: Vec<String>,
    clients: Vec<String>,
    /// A setup error, reported as a failure instead of a panic so the runner can tabulate it.
    setup: Vec<String>,
}

impl Harness {
    /// A simulation of `duration` on `link`, whose loss `--loss` overrides.
    pub(crate) fn new(params: &Params, duration: Duration, link: LinkFaults) -> Self {
        let link = match params.loss {
            Some(loss) => link.with_loss(loss),
            None => link,
        };
        let config = SimConfig::new(params.seed)
            .with_duration(duration)
            .with_link(link)
            .with_decoded_trace(params.trace);
        // NOTE(unwrap): the link is ours and `Params::loss` is validated by its parser; an
        // invalid probability here is a bug in a scenario.
        let sim = Simulation::new(config).expect("scenario link faults are valid");
        Harness {
            sim,
            params: params.clone(),
            ledger: Rc::default(),
            rng: Rng::seed_from_u64(params.seed),
            servers: Vec::new(),
            clients: Vec::new(),
            setup: Vec::new(),
        }
    }

    /// Adds a server whose application records every message it gets.
    pub(crate) fn server(&mut self, name: &str, spec: ServerSpec) -> SocketAddr {
        self.server_with(name, spec, |s| s)
    }

    /// As [`Harness::server`], with timed commands added to its script by `extra`.
    pub(crate) fn server_with(
        &mut self,
        name: &str,
        spec: ServerSpec,
        extra: impl FnOnce(Script<Server>) -> Script<Server>,
    ) -> SocketAddr {
        let (l1, l2) = (self.ledger.clone(), self.ledger.clone());
        let host: Rc<str> = name.into();
        let h2 = host.clone();
        let script = Script::new()
            .on_start(move |_| {
                l1.borrow_mut().start(&host);
            })
            .on_event(move |ctl, event| {
                if let ServerEvent::Message { message: m, .. } = event {
                    let key = String::from_utf8_lossy(m.payload());
                    l2.borrow_mut().received(&h2, &key, ctl.now());
                }
            });
        let script = extra(script);
        self.servers.push(name.into());
        let r = self.sim.add_server_script(name, spec, script);
        self.unwrap_addr(r)
    }

    /// Adds a client that sends `batches` of reliable messages with unique payloads
    /// (`name/index`), recording each send and its outcome.
    pub(crate) fn client(
        &mut self,
        name: &str,
        config: ClientConfig,
        batches: &[Batch],
    ) -> SocketAddr {
        self.client_with(name, config, batches, |s| s)
    }

    /// As [`Harness::client`], with timed commands added to its script by `extra`.
    pub(crate) fn client_with(
        &mut self,
        name: &str,
        config: ClientConfig,
        batches: &[Batch],
        extra: impl FnOnce(Script<Client>) -> Script<Client>,
    ) -> SocketAddr {
        let script = extra(self.client_script(name, batches));
        self.clients.push(name.into());
        let r = self.sim.add_client(name, config, script);
        self.unwrap_addr(r)
    }

    /// Adds clients as [`Harness::client`] does, all on the one host `host`, each on its own
    /// port (a crowd: turmoil cannot afford a host per client).
    pub(crate) fn crowd(&mut self, host: &str, clients: Vec<(String, ClientSpec, &[Batch])>) {
        let clients = clients
            .into_iter()
            .map(|(name, spec, batches)| {
                let script = self.client_script(&name, batches);
                self.clients.push(name.clone());
                (name, spec, script)
            })
            .collect();
        if let Err(e) = self.sim.add_clients(host, clients) {
            self.setup.push(e.to_string());
        }
    }

    /// Adds a client that sends each `(at, payload, deadline)` as a reliable message, recorded
    /// in the ledger under the payload itself (so only the whole, unaltered payload counts as
    /// delivered). The sends are given to the endpoint
    /// directly, not traced: a trace line of a large payload would be as large.
    pub(crate) fn client_sending(
        &mut self,
        name: &str,
        config: ClientConfig,
        sends: Vec<(Duration, Vec<u8>, Duration)>,
    ) -> SocketAddr {
        let ids: Rc<RefCell<BTreeMap<MessageId, usize>>> = Rc::default();
        let ids2 = ids.clone();
        let mut script = Script::<Client>::new().on_start(move |_| ids2.borrow_mut().clear());
        for (at, payload, deadline) in sends {
            let (ledger, ids) = (self.ledger.clone(), ids.clone());
            let opts = SendOptions::reliable().with_timeout(deadline);
            script = script.at(at, move |ctl| {
                let now = ctl.now();
                let key = String::from_utf8_lossy(&payload).into_owned();
                match ctl.endpoint().send_message(now, "t", "n", &payload, opts) {
                    Ok(id) => {
                        let entry = ledger.borrow_mut().sent(key, now);
                        ids.borrow_mut().insert(id, entry);
                    }
                    Err(_) => ledger.borrow_mut().refused += 1,
                }
            });
        }
        let ledger = self.ledger.clone();
        let script = script.on_event(move |ctl, event| {
            let (id, ack) = match event {
                ClientEvent::Delivered { id, acked, .. } => (
                    id,
                    Ack::Delivered {
                        acked: acked.to_vec(),
                    },
                ),
                ClientEvent::TimedOut { id } | ClientEvent::Failed { id, .. } => (id, Ack::Expired),
                _ => return,
            };
            if let Some(i) = ids.borrow().get(&id) {
                ledger.borrow_mut().ack(*i, ack, ctl.now());
            }
        });
        self.clients.push(name.into());
        let r = self.sim.add_client(name, config, script);
        self.unwrap_addr(r)
    }

    fn client_script(&mut self, name: &str, batches: &[Batch]) -> Script<Client> {
        let host: Rc<str> = name.into();
        // Message ids restart with each incarnation of the endpoint, so the map from id to
        // ledger entry is cleared at every start.
        let ids: Rc<RefCell<BTreeMap<MessageId, usize>>> = Rc::default();
        let ids2 = ids.clone();
        let mut script = Script::<Client>::new().on_start(move |_| ids2.borrow_mut().clear());
        let mut first = 0;
        for b in batches {
            let opts = if b.ordered {
                SendOptions::ordered()
            } else {
                SendOptions::reliable()
            };
            let opts = opts.with_timeout(b.deadline);
            let target = b.target;
            for i in 0..b.count {
                let at = b.start + b.interval * i as u32 + self.jitter(b.interval);
                let (ledger, ids) = (self.ledger.clone(), ids.clone());
                let key = format!("{host}/{}", first + i);
                script = script.at(at, move |ctl| {
                    let now = ctl.now();
                    match ctl.send_message(target, "n", key.as_bytes(), opts) {
                        Ok(id) => {
                            let entry = ledger.borrow_mut().sent(key.clone(), now);
                            ids.borrow_mut().insert(id, entry);
                        }
                        Err(_) => ledger.borrow_mut().refused += 1,
                    }
                });
            }
            first += b.count;
        }
        let ledger = self.ledger.clone();
        script.on_event(move |ctl, event| {
            let (id, ack) = match event {
                ClientEvent::Delivered { id, acked, .. } => (
                    id,
                    Ack::Delivered {
                        acked: acked.to_vec(),
                    },
                ),
                ClientEvent::TimedOut { id } | ClientEvent::Failed { id, .. } => (id, Ack::Expired),
                _ => return,
            };
            if let Some(i) = ids.borrow().get(&id) {
                ledger.borrow_mut().ack(*i, ack, ctl.now());
            }
        })
    }

    /// Whole milliseconds in `0..=interval / 2`, drawn from the seed: applications do not
    /// send like clockwork, and a seed must change a run even on a link with no faults.
    fn jitter(&mut self, interval: Duration) -> Duration {
        let max = (interval.as_millis() / 2) as u64;
        ms(self.rng.range_inclusive(0, max))
    }

    fn unwrap_addr(&mut self, r: Result<SocketAddr, pavillion_sim::SimError>) -> SocketAddr {
        r.unwrap_or_else(|e| {
            self.setup.push(e.to_string());
            SocketAddr::from(([0, 0, 0, 0], 0))
        })
    }

    /// The ledger, for applications a scenario writes itself.
    pub(crate) fn ledger(&self) -> Rc<RefCell<Ledger>> {
        self.ledger.clone()
    }

    /// Counts `name` among the servers (`server`) or clients whose stats the outcome sums,
    /// for hosts a scenario added to the simulation itself.
    pub(crate) fn track(&mut self, name: &str, server: bool) {
        if server {
            self.servers.push(name.into());
        } else {
            self.clients.push(name.into());
        }
    }

    /// Records a setup error of the scenario itself.
    pub(crate) fn setup_error(&mut self, e: impl ToString) {
        self.setup.push(e.to_string());
    }

    /// Runs the simulation and measures it against the receivers `expect` names per message.
    /// Adds the checks every scenario shares: no duplicates, no lost acknowledged message,
    /// no message nobody sent, no refused send.
    pub(crate) fn run(&mut self, expect: impl FnMut(&Sent) -> Vec<Expect>) -> Outcome {
        self.run_with(expect, |_| {})
    }

    /// As [`Harness::run`], with `settle` filling in the ledger between the end of the
    /// simulation and the measurement (a scenario whose receptions are only final at the end,
    /// as an output log that a restart may truncate).
    pub(crate) fn run_with(
        &mut self,
        expect: impl FnMut(&Sent) -> Vec<Expect>,
        settle: impl FnOnce(&mut Ledger),
    ) -> Outcome {
        let mut out = Outcome::default();
        for e in self.setup.drain(..) {
            out.check(false, "setup", || e);
        }
        if let Err(e) = self.sim.run() {
            out.check(false, "simulation", || e.to_string());
        }
        settle(&mut self.ledger.borrow_mut());
        let ledger = self.ledger.borrow();
        let t = ledger.tally(expect);
        out.sent = t.sent;
        out.delivered = t.delivered;
        out.duplicates = t.duplicates;
        out.redelivered = t.redelivered;
        out.lost_acked = t.lost_acked;
        out.latencies_us = crate::outcome::thin(t.latencies.clone(), MAX_LATENCY_SAMPLES);
        out.latency = Latency::from_micros(t.latencies);
        for host in self.servers.iter().chain(&self.clients) {
            let stats = self.sim.stats(host);
            out.retransmissions += stats.iter().map(|s| s.retransmissions).sum::<u64>();
        }
        for host in &self.servers {
            out.handshakes += self
                .sim
                .stats(host)
                .iter()
                .map(|s| s.handshakes)
                .sum::<u64>();
        }
        out.digest = self.sim.digest();
        if self.params.trace {
            let trace = self.sim.trace();
            let header = trace.header(self.params.scenario, Some(self.params.suite.name()));
            out.trace = Some(trace.to_v1_lines(&header));
            out.capture = Some(trace.capture());
        }
        let (dup, lost, refused) = (out.duplicates, out.lost_acked, ledger.refused);
        out.check(dup == 0, "duplicates", || {
            format!("{dup} deliveries repeated within one incarnation")
        });
        out.check(lost == 0, "lost-acked", || {
            format!("{lost} acknowledged messages never reached the application")
        });
        out.check(t.unknown.is_empty(), "unknown", || {
            format!("received payloads nobody sent: {:?}", t.unknown)
        });
        out.check(refused == 0, "refused", || {
            format!("{refused} sends refused by the endpoint")
        });
        out
    }

    /// The messages sent, in order.
    pub(crate) fn sent(&self) -> Vec<Sent> {
        self.ledger.borrow().sent.clone()
    }

    /// How many times `host` received `key`.
    pub(crate) fn receptions(&self, host: &str, key: &str) -> usize {
        self.ledger.borrow().receptions(host, key)
    }

    /// The first event at or after `from` on `host` that `pick` accepts, as time since `from`.
    pub(crate) fn time_to(
        &self,
        host: &str,
        from: Duration,
        mut pick: impl FnMut(&HostEvent) -> bool,
    ) -> Option<Duration> {
        let from = Instant::ZERO + from;
        let trace = self.sim.trace();
        let found = trace
            .events(host)
            .find(|(at, e)| *at >= from && pick(e))
            .map(|(at, _)| at.saturating_duration_since(from));
        found
    }

    /// The events of `host` that `pick` maps to something, with their times.
    pub(crate) fn events<T>(
        &self,
        host: &str,
        mut pick: impl FnMut(&HostEvent) -> Option<T>,
    ) -> Vec<(Instant, T)> {
        self.sim
            .trace()
            .events(host)
            .filter_map(|(at, e)| pick(e).map(|t| (at, t)))
            .collect()
    }
}

/// Every message is expected at the single server `host`.
pub(crate) fn unicast(host: &str) -> impl FnMut(&Sent) -> Vec<Expect> + '_ {
    move |_| vec![Expect::host(host)]
}
