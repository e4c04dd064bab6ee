//! RPC over MQTT 5 request/response, both ways (`[[rpc_to_mqtt]]`, `[[upstream]] rpc`;
//! `docs/BRIDGE.md`, "RPC"). The correlation table and the status convention are pure, in
//! [`pavillion_io::bridge::rpc`]; this drives them.
//!
//! - **MQTT → Pavillion** ([`serve_upstream`]): a request on `{prefix}/{site}/{server}/rpc/{function}`
//!   with a response topic becomes `Client::call` on that upstream server, run on a bounded
//!   pool of threads ([`Workers`]), never on the MQTT connection's thread; the answer goes to
//!   the response topic with the request's correlation data and [`PAV_STATUS`].
//! - **Pavillion → MQTT** ([`RpcToMqtt`]): a device's call to a bridged function becomes a
//!   request on the mapped topic with the response topic `{prefix}/{site}/bridges/{bridge}/responses`
//!   and a fresh 8-byte correlation id; the answer responds to the device; no answer by the
//!   deadline fails the call with [`BridgeRpcError::TimedOut`].
//!
//! A request from MQTT is acknowledged to the broker when it is taken (before the call), so a
//! bridge that dies mid-call does not run it again on restart: the function runs at most
//! once per request, and the requester's own timeout reports a lost answer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pavillion_io::bridge::config::{BridgeConfig, MqttVersion, Qos};
use pavillion_io::bridge::rpc::{
    answer_of_call, answer_of_failure, call_result_of_response, parse_function, BridgeRpcError,
    Correlations, MqttAnswer, PAV_STATUS,
};
use pavillion_io::bridge::topic::{self, Var};

use super::mqtt::{Message, Mqtt, Publish};
use super::registers::{RegisterPublisher, RegisterStats};
use super::run::Context;
use crate::{Client, Responder, Server};

/// How many device calls may wait for an MQTT answer at once; more fail at once with
/// [`BridgeRpcError::Busy`].
pub const MAX_PENDING_TO_MQTT: usize = 1024;
/// Threads that make calls to upstream servers.
pub const WORKER_THREADS: usize = 4;
/// MQTT requests queued for a worker; more are answered [`BridgeRpcError::Busy`] at once.
pub const WORKER_QUEUE: usize = 256;
/// How often the deadlines of requests to MQTT are checked: a timeout is reported at most
/// this late.
const TICK: Duration = Duration::from_millis(20);

/// Counters of both directions.
#[derive(Debug, Default)]
pub struct RpcStats {
    /// MQTT requests taken for an upstream server.
    pub requests_in: AtomicU64,
    /// MQTT requests answered (any status).
    pub answered_in: AtomicU64,
    /// MQTT requests dropped: no response topic, or a topic that names no function.
    pub dropped_in: AtomicU64,
    /// Device calls published as MQTT requests.
    pub requests_out: AtomicU64,
    /// Answers from MQTT matched to a waiting call.
    pub answered_out: AtomicU64,
    /// Answers that matched no waiting call (late, duplicate, forged).
    pub unmatched_out: AtomicU64,
    /// Device calls that got no MQTT answer before their deadline.
    pub timed_out_out: AtomicU64,
}

type Job = Box<dyn FnOnce() + Send>;

/// A bounded pool of threads for blocking calls: the MQTT connection thread hands requests
/// over and never waits for a Pavillion server.
pub struct Workers {
    queue: Mutex<Option<SyncSender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Workers {
    /// Starts `threads` threads sharing a queue of `queue` jobs.
    pub fn new(threads: usize, queue: usize) -> Arc<Workers> {
        let (tx, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..threads)
            .filter_map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("pav-bridge-rpc-{i}"))
                    .spawn(move || loop {
                        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    })
                    .ok()
            })
            .collect();
        Arc::new(Workers {
            queue: Mutex::new(Some(tx)),
            threads: Mutex::new(handles),
        })
    }

    /// Queues `job`, or gives it back if the queue is full or closed.
    fn try_run(&self, job: Job) -> Result<(), Job> {
        match &*self.queue.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(tx) => tx.try_send(job).map_err(|e| match e {
                TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
            }),
            None => Err(job),
        }
    }

    /// Stops taking jobs, lets the queued ones finish, and joins the threads.
    pub fn close(&self) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// The filter an upstream's requests arrive on: `{prefix}/{site}/{server}/rpc/+`.
pub fn upstream_filter(config: &BridgeConfig, server: &str) -> String {
    format!(
        "{}/{}/{}/rpc/+",
        topic::escape(&config.mqtt.prefix, true),
        topic::escape(&config.site, false),
        topic::escape(server, false)
    )
}

/// The topic the answers to this bridge's requests arrive on:
/// `{prefix}/{site}/bridges/{bridge}/responses`.
pub fn response_topic(config: &BridgeConfig) -> String {
    format!(
        "{}/{}/bridges/{}/responses",
        topic::escape(&config.mqtt.prefix, true),
        topic::escape(&config.site, false),
        topic::escape(&config.bridge_id, false)
    )
}

/// Answers MQTT 5 requests for upstream server `server` with calls on `client`.
pub fn serve_upstream(
    mqtt: &Mqtt,
    config: &BridgeConfig,
    server: &str,
    client: Arc<Client>,
    workers: Arc<Workers>,
    stats: Arc<RpcStats>,
) {
    let filter = upstream_filter(config, server);
    let link = mqtt.clone();
    mqtt.subscribe(&filter, Qos::AtLeastOnce, move |m: &Message, token| {
        // Taken at once: the function runs at most once per request (module doc).
        token.ack();
        let function = m.topic.rsplit('/').next().and_then(parse_function);
        let (Some(function), Some(reply_to)) = (function, m.response_topic.clone()) else {
            stats.dropped_in.fetch_add(1, Ordering::Relaxed);
            return;
        };
        stats.requests_in.fetch_add(1, Ordering::Relaxed);
        let correlation = m.correlation_data.clone();
        let args = m.payload.clone();
        let (client, link2, stats2) = (client.clone(), link.clone(), stats.clone());
        let reply_to2 = reply_to.clone();
        let correlation2 = correlation.clone();
        let job: Job = Box::new(move || {
            let answer = answer_of_call(client.call(function.0, &args));
            answer_to(&link2, reply_to2, correlation2, answer);
            stats2.answered_in.fetch_add(1, Ordering::Relaxed);
        });
        if workers.try_run(job).is_err() {
            answer_to(
                &link,
                reply_to,
                correlation,
                answer_of_failure(BridgeRpcError::Busy),
            );
            stats.answered_in.fetch_add(1, Ordering::Relaxed);
        }
    });
}

fn answer_to(mqtt: &Mqtt, topic: String, correlation: Option<Bytes>, answer: MqttAnswer) {
    let mut p = Publish::new(topic, answer.payload.clone(), Qos::AtLeastOnce, false);
    p.user_properties = answer.properties();
    p.correlation_data = correlation;
    if let Err(e) = mqtt.publish_and_forget(p) {
        tracing::debug!("RPC answer not published: {e}");
    }
}

/// Device calls to bridged functions, forwarded as MQTT 5 requests.
pub struct RpcToMqtt {
    table: Arc<Mutex<Correlations<Responder>>>,
    stop: Arc<AtomicBool>,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

impl RpcToMqtt {
    /// Registers every `[[rpc_to_mqtt]]` function on `server` and subscribes to this bridge's
    /// response topic.
    pub fn start(
        server: &Server,
        mqtt: &Mqtt,
        config: &BridgeConfig,
        stats: Arc<RpcStats>,
    ) -> RpcToMqtt {
        let table = Arc::new(Mutex::new(Correlations::<Responder>::with_random_seed(
            MAX_PENDING_TO_MQTT,
        )));
        let reply_to = response_topic(config);
        {
            let (table, stats) = (table.clone(), stats.clone());
            mqtt.subscribe(&reply_to, Qos::AtLeastOnce, move |m: &Message, token| {
                token.ack();
                let taken = table
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take(m.correlation_data.as_deref());
                match taken {
                    Ok(responder) => {
                        stats.answered_out.fetch_add(1, Ordering::Relaxed);
                        let status = m
                            .user_properties
                            .iter()
                            .find(|(k, _)| k == PAV_STATUS)
                            .map(|(_, v)| v.as_str());
                        responder.respond(call_result_of_response(status, m.payload.clone()));
                    }
                    Err(e) => {
                        stats.unmatched_out.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("RPC answer on {} dropped: {e}", m.topic);
                    }
                }
            });
        }
        for f in &config.rpc_to_mqtt {
            let function = f.function.to_string();
            let topic = f.topic.render(|v| match v {
                Var::Prefix => Some(config.mqtt.prefix.as_str()),
                Var::Site => Some(config.site.as_str()),
                Var::Bridge => Some(config.bridge_id.as_str()),
                Var::Function => Some(function.as_str()),
                _ => None,
            });
            let topic = match topic {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!("rpc_to_mqtt function {}: {e}", f.function);
                    continue;
                }
            };
            let (table, stats, mqtt, reply_to) =
                (table.clone(), stats.clone(), mqtt.clone(), reply_to.clone());
            let timeout = f.timeout;
            server.register_deferred(
                f.function,
                &format!("mqtt:{topic}"),
                move |req, responder| {
                    let deadline = Instant::now() + timeout;
                    let mut t = table.lock().unwrap_or_else(PoisonError::into_inner);
                    let id = match t.insert(deadline, responder) {
                        Ok(id) => id,
                        Err((_, responder)) => {
                            drop(t);
                            responder.respond::<Bytes>(Err(BridgeRpcError::Busy.failure()));
                            return;
                        }
                    };
                    let mut p =
                        Publish::new(topic.clone(), req.args.clone(), Qos::AtLeastOnce, false);
                    p.response_topic = Some(reply_to.clone());
                    p.correlation_data = Some(Bytes::copy_from_slice(id.as_bytes()));
                    if let Err(e) = mqtt.publish_and_forget(p) {
                        tracing::debug!("RPC request not published: {e}");
                        if let Ok(r) = t.take(Some(id.as_bytes())) {
                            drop(t);
                            r.respond::<Bytes>(Err(BridgeRpcError::Unreachable.failure()));
                        }
                        return;
                    }
                    stats.requests_out.fetch_add(1, Ordering::Relaxed);
                },
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (table, stop) = (table.clone(), stop.clone());
            std::thread::Builder::new()
                .name("pav-bridge-rpc-deadlines".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        std::thread::sleep(TICK);
                        let due = table
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .expire(Instant::now());
                        for (_, responder) in due {
                            stats.timed_out_out.fetch_add(1, Ordering::Relaxed);
                            responder.respond::<Bytes>(Err(BridgeRpcError::TimedOut.failure()));
                        }
                    }
                })
                .ok()
        };
        RpcToMqtt {
            table,
            stop,
            ticker: Mutex::new(ticker),
        }
    }

    /// How many device calls wait for an MQTT answer.
    pub fn pending(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Stops the deadline thread; every waiting call fails ([`BridgeRpcError::Unreachable`]).
    pub fn close(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self
            .ticker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = t.join();
        }
        let waiting = self
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain();
        for r in waiting {
            r.respond::<Bytes>(Err(BridgeRpcError::Unreachable.failure()));
        }
    }
}

/// What `rpc` and `registers` run for a bridge, started from its [`Context`] and closed
/// with it.
pub struct Services {
    workers: Arc<Workers>,
    to_mqtt: Option<RpcToMqtt>,
    registers: Vec<RegisterPublisher>,
    /// The RPC counters.
    pub rpc_stats: Arc<RpcStats>,
    /// The register counters.
    pub register_stats: Arc<RegisterStats>,
}

impl Services {
    /// Starts RPC both ways (MQTT 5 only: the configuration refuses the sections with 3.1.1)
    /// and the register publishers of every `[[upstream]]`.
    pub fn start(ctx: &Context) -> Services {
        let rpc_stats = Arc::new(RpcStats::default());
        let register_stats = Arc::new(RegisterStats::default());
        let workers = Workers::new(WORKER_THREADS, WORKER_QUEUE);
        let v5 = ctx.mqtt.version() == MqttVersion::V5;
        let to_mqtt = match &ctx.server {
            Some(server) if v5 && !ctx.config.rpc_to_mqtt.is_empty() => Some(RpcToMqtt::start(
                server,
                &ctx.mqtt,
                &ctx.config,
                rpc_stats.clone(),
            )),
            _ => None,
        };
        let mut registers = Vec::new();
        for link in &ctx.upstream {
            let Some(cfg) = ctx.config.upstream.iter().find(|u| u.name == link.name) else {
                continue;
            };
            if cfg.rpc && v5 {
                serve_upstream(
                    &ctx.mqtt,
                    &ctx.config,
                    &link.name,
                    link.client.clone(),
                    workers.clone(),
                    rpc_stats.clone(),
                );
            }
            if !cfg.registers.is_empty() {
                registers.push(RegisterPublisher::start(
                    &ctx.mqtt,
                    &ctx.config,
                    &link.name,
                    link.client.clone(),
                    &cfg.registers,
                    register_stats.clone(),
                ));
            }
        }
        Services {
            workers,
            to_mqtt,
            registers,
            rpc_stats,
            register_stats,
        }
    }

    /// Stops the threads; device calls still waiting fail.
    pub fn close(&self) {
        if let Some(t) = &self.to_mqtt {
            t.close();
        }
        for r in &self.registers {
            r.close();
        }
        self.workers.close();
    }
}
