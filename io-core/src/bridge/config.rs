//! The bridge's configuration file (`pav bridge --config FILE`), in TOML: every section, decoded
//! and checked at load, so that a mistake is an error naming the key and its line before any
//! connection is made. See `docs/BRIDGE.md` for the reference.
//!
//! The `[pavillion]` section (the bridge's own server) has the keys of `pav serve`'s file and is
//! decoded by that loader (in the `pav` binary), not a second one: here it is only kept, with its
//! line, as a table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::topic::{valid_filter, Template, Var};

/// A configuration error: the line (1-based) where it was found, if known, and what is wrong,
/// naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The line of the offending key or value.
    pub line: Option<usize>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The MQTT protocol version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    /// MQTT 3.1.1: no user properties (no `pav-id`), no request/response (no RPC sections).
    V311,
    /// MQTT 5 (the default).
    V5,
}

/// An MQTT quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Qos {
    /// At most once.
    AtMostOnce,
    /// At least once (PUBACK).
    AtLeastOnce,
    /// Exactly once (PUBREC/PUBREL/PUBCOMP).
    ExactlyOnce,
}

impl Qos {
    fn from_int(n: i64) -> Option<Qos> {
        match n {
            0 => Some(Qos::AtMostOnce),
            1 => Some(Qos::AtLeastOnce),
            2 => Some(Qos::ExactlyOnce),
            _ => None,
        }
    }
}

/// Whether the broker connection is plain TCP or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `mqtt://`
    Tcp,
    /// `mqtts://`
    Tls,
}

/// `[mqtt]`: the broker connection.
#[derive(Debug, Clone)]
pub struct MqttSection {
    /// TCP or TLS, from the URL's scheme.
    pub transport: Transport,
    /// The broker's host name or address.
    pub host: String,
    /// The broker's port (1883, or 8883 for TLS, when the URL names none).
    pub port: u16,
    /// The MQTT client id (`pav-{site}-{bridge_id}` by default): the broker keeps the bridge's
    /// persistent session under it.
    pub client_id: String,
    /// The protocol version.
    pub protocol: MqttVersion,
    /// The user name, if any.
    pub username: Option<String>,
    /// The password (given inline or read from `password_file`).
    pub password: Option<String>,
    /// The CA certificate file (PEM) to trust for TLS; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The client certificate (PEM) and key (PEM) for TLS client authentication.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The MQTT keep-alive.
    pub keep_alive: Duration,
    /// How long the broker keeps the bridge's session (and its QoS 1 messages) while the bridge
    /// is away: what lets a restarted bridge receive what was published meanwhile.
    pub session_expiry: Duration,
    /// `{prefix}` in templates.
    pub prefix: String,
}

/// Which Pavillion targets a `[[to_mqtt]]` maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetMatch {
    /// One target, exactly.
    Exact(String),
    /// `"*"`: every target.
    Any,
}

impl TargetMatch {
    /// Whether `target` is mapped.
    pub fn matches(&self, target: &str) -> bool {
        match self {
            TargetMatch::Exact(t) => t == target,
            TargetMatch::Any => true,
        }
    }
}

/// `[[to_mqtt]]`: device messages to the bridge's server → MQTT.
#[derive(Debug, Clone)]
pub struct ToMqtt {
    /// The targets mapped.
    pub target: TargetMatch,
    /// The topic (`{prefix}`, `{site}`, `{client}`, `{target}`, `{name}`).
    pub topic: Template,
    /// The QoS of reliable messages (1 by default; the hand-off completes on the broker's ack).
    pub qos: Qos,
    /// The QoS of unreliable messages (0 by default).
    pub unreliable_qos: Qos,
    /// Publish retained.
    pub retain: bool,
}

/// Where a `[[from_mqtt]]` delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `"clients"`: every connected client of the bridge's server.
    Clients,
    /// `"client:NAME"`: one client, by its key name or id.
    Client(String),
    /// `"upstream:NAME"`: an `[[upstream]]` server.
    Upstream(String),
}

/// `[[from_mqtt]]`: MQTT → Pavillion.
#[derive(Debug, Clone)]
pub struct FromMqtt {
    /// The subscription filter, rendered (`{prefix}`, `{site}`, `{bridge}` filled in).
    pub filter: String,
    /// The Pavillion target.
    pub target: String,
    /// The message name (`{topic}`, `{tail}`, `{prefix}`, `{site}`).
    pub name: Template,
    /// The receivers.
    pub to: Destination,
    /// Reliable: subscribe with QoS 1, send reliable messages, and acknowledge to the broker
    /// only after every receiver acknowledged.
    pub reliable: bool,
    /// How long a reliable publish that could not be delivered is tried again before it is
    /// given up (`give_up_after_ms`, default 60 s).
    pub give_up_after: Duration,
    /// Where a given-up publish goes (`dead_letter`, a topic template): it is published there
    /// with QoS 1 and acknowledged to the broker on that publish's PUBACK, so that it no longer
    /// holds one of the broker's in-flight slots for the bridge. Without it, a given-up publish
    /// stays unacknowledged until the bridge next connects.
    pub dead_letter: Option<Template>,
}

/// [`FromMqtt::give_up_after`] when the configuration names none.
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// `[presence]`.
#[derive(Debug, Clone)]
pub struct Presence {
    /// The retained `up`/`down` topic of each device (`{client}` or `{server}`).
    pub devices: Option<Template>,
    /// The bridge's own retained `online` topic, with a retained `offline` last will.
    pub bridge: Option<Template>,
}

/// A key of an `[[upstream]]`, as text; the `pav` binary decodes it as its client flags do.
#[derive(Debug, Clone, Default)]
pub struct UpstreamKeys {
    /// `id`: the bridge's client id at this server.
    pub id: Option<String>,
    /// `id_file`.
    pub id_file: Option<PathBuf>,
    /// `psk` (suite 1).
    pub psk: Option<String>,
    /// `psk_file`.
    pub psk_file: Option<PathBuf>,
    /// `secret_key_file` (suites 2 and 3).
    pub secret_key_file: Option<PathBuf>,
    /// `server_key`: the server's public key (suites 2 and 3).
    pub server_key: Option<String>,
    /// `server_key_file`.
    pub server_key_file: Option<PathBuf>,
    /// `suite`.
    pub suite: Option<String>,
}

/// `[[upstream]]`: a server the bridge connects to as a client.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `{server}` in templates; unique.
    pub name: String,
    /// The server's address, as given.
    pub address: String,
    /// The client keys.
    pub keys: UpstreamKeys,
    /// Targets whose messages from this server are published.
    pub subscribe: Vec<String>,
    /// Their topic (`{prefix}`, `{site}`, `{server}`, `{target}`, `{name}`).
    pub topic: Template,
    /// Registers observed and published retained (F).
    pub registers: Vec<u16>,
    /// Serve MQTT 5 requests as calls on this server (F).
    pub rpc: bool,
    /// `min_acks`: for a group address, the fewest servers of the group that must have
    /// acknowledged a `[[from_mqtt]]` message (over all its attempts) before the broker's
    /// publish is acknowledged; 1 (the default) for any other address. Besides it, every
    /// server the bridge's client expects (it announced the target) must have acknowledged.
    pub min_acks: usize,
    /// The line of the section, for errors found later.
    pub line: usize,
}

/// `[[rpc_to_mqtt]]`: device calls on the bridge's server → MQTT 5 request/response (F).
#[derive(Debug, Clone)]
pub struct RpcToMqtt {
    /// The function number.
    pub function: u16,
    /// The request topic (`{prefix}`, `{site}`, `{function}`).
    pub topic: Template,
    /// How long to wait for the response.
    pub timeout: Duration,
}

/// `[dedupe] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupeMode {
    /// Every bridge publishes.
    Off,
    /// The leader publishes; standbys publish only what the leader did not (F).
    Standby,
}

/// `[dedupe]` (F).
#[derive(Debug, Clone)]
pub struct Dedupe {
    /// The mode.
    pub mode: DedupeMode,
    /// How long a standby waits for the leader's publish.
    pub standby_wait: Duration,
}

/// The whole file, checked.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// `site`.
    pub site: String,
    /// `bridge_id`.
    pub bridge_id: String,
    /// `[mqtt]`.
    pub mqtt: MqttSection,
    /// `[pavillion]`, undecoded (see the module doc), with its line; `None`: no own server.
    pub pavillion: Option<(toml::Table, usize)>,
    /// `[[to_mqtt]]`.
    pub to_mqtt: Vec<ToMqtt>,
    /// `[[from_mqtt]]`.
    pub from_mqtt: Vec<FromMqtt>,
    /// `[presence]`.
    pub presence: Option<Presence>,
    /// `[[upstream]]`.
    pub upstream: Vec<Upstream>,
    /// `[[rpc_to_mqtt]]`.
    pub rpc_to_mqtt: Vec<RpcToMqtt>,
    /// `[dedupe]`.
    pub dedupe: Dedupe,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    site: Option<Spanned<String>>,
    bridge_id: Option<Spanned<String>>,
    mqtt: Option<Spanned<RawMqtt>>,
    pavillion: Option<Spanned<toml::Table>>,
    #[serde(default)]
    to_mqtt: Vec<Spanned<RawToMqtt>>,
    #[serde(default)]
    from_mqtt: Vec<Spanned<RawFromMqtt>>,
    presence: Option<Spanned<RawPresence>>,
    #[serde(default)]
    upstream: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    rpc_to_mqtt: Vec<Spanned<RawRpc>>,
    dedupe: Option<Spanned<RawDedupe>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    url: Spanned<String>,
    client_id: Option<Spanned<String>>,
    protocol: Option<Spanned<i64>>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
    keep_alive_secs: Option<Spanned<i64>>,
    session_expiry_secs: Option<Spanned<i64>>,
    prefix: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToMqtt {
    target: Spanned<String>,
    topic: Option<Spanned<String>>,
    qos: Option<Spanned<i64>>,
    unreliable_qos: Option<Spanned<i64>>,
    retain: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFromMqtt {
    filter: Spanned<String>,
    target: Spanned<String>,
    name: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    reliable: Option<bool>,
    give_up_after_ms: Option<Spanned<i64>>,
    dead_letter: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPresence {
    devices: Option<Spanned<String>>,
    bridge: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: Spanned<String>,
    address: Spanned<String>,
    id: Option<String>,
    id_file: Option<String>,
    psk: Option<String>,
    psk_file: Option<String>,
    secret_key_file: Option<String>,
    server_key: Option<String>,
    server_key_file: Option<String>,
    suite: Option<String>,
    #[serde(default)]
    subscribe: Vec<String>,
    topic: Option<Spanned<String>>,
    #[serde(default)]
    registers: Vec<Spanned<i64>>,
    rpc: Option<bool>,
    min_acks: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRpc {
    function: Spanned<i64>,
    topic: Option<Spanned<String>>,
    timeout_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDedupe {
    mode: Option<Spanned<String>>,
    standby_wait_ms: Option<Spanned<i64>>,
}

/// The largest `[[upstream]] min_acks`: the servers a client keeps sessions with by default.
pub const MAX_MIN_ACKS: usize = 128;

/// Whether a client of `ip` is a group client (it joins the group and expects every server
/// of it to answer): a multicast or the IPv4 broadcast address, as the endpoint decides.
pub fn is_group_address(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
        std::net::IpAddr::V6(v6) => v6.is_multicast(),
    }
}

/// The IP of an address given as `IP:PORT` or `IP`, without resolving a host name.
fn literal_ip(address: &str) -> Option<std::net::IpAddr> {
    address
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| address.parse::<std::net::IpAddr>())
        .ok()
}

/// The default `[[to_mqtt]] topic`.
pub const DEFAULT_TO_MQTT_TOPIC: &str = "{prefix}/{site}/{client}/{target}/{name}";
/// The default `[[upstream]] topic`.
pub const DEFAULT_UPSTREAM_TOPIC: &str = "{prefix}/{site}/{server}/{target}/{name}";
/// The default `[[rpc_to_mqtt]] topic`.
pub const DEFAULT_RPC_TOPIC: &str = "{prefix}/{site}/rpc/{function}";

/// The 1-based line of byte `offset` in `text` (a span `toml` reports), for errors that name
/// the line; `pav`'s other configuration files use it too.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

struct Doc<'a> {
    text: &'a str,
}

impl Doc<'_> {
    fn line(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }

    fn err<T>(&self, v: &Spanned<T>, message: impl std::fmt::Display) -> ConfigError {
        ConfigError {
            line: Some(self.line(v.span().start)),
            message: message.to_string(),
        }
    }

    fn template(
        &self,
        v: &Spanned<String>,
        key: &str,
        allowed: &[Var],
        publish: bool,
    ) -> Result<Template, ConfigError> {
        Template::parse(v.get_ref(), allowed, publish)
            .map_err(|e| self.err(v, format!("{key}: {e}")))
    }

    fn qos(&self, v: &Spanned<i64>, key: &str) -> Result<Qos, ConfigError> {
        Qos::from_int(*v.get_ref()).ok_or_else(|| self.err(v, format!("{key}: expected 0, 1 or 2")))
    }

    fn positive_ms(&self, v: &Spanned<i64>, key: &str) -> Result<Duration, ConfigError> {
        u64::try_from(*v.get_ref())
            .ok()
            .filter(|n| *n > 0)
            .map(Duration::from_millis)
            .ok_or_else(|| self.err(v, format!("{key}: expected a whole number above 0")))
    }
}

/// Decodes and checks a configuration's text. `base` is the folder relative paths are read
/// from (the file's folder); `host_name` is the default `bridge_id`.
pub fn parse(text: &str, base: &Path, host_name: &str) -> Result<BridgeConfig, ConfigError> {
    let doc = Doc { text };
    let raw: Raw = toml::from_str(text).map_err(|e| ConfigError {
        line: e.span().map(|s| doc.line(s.start)),
        message: e.message().trim_end().to_owned(),
    })?;
    let site = raw.site.as_ref().ok_or_else(|| ConfigError {
        line: None,
        message: "site: required (it names the site in topics)".into(),
    })?;
    let check_name = |v: &Spanned<String>, key: &str| -> Result<String, ConfigError> {
        let s = v.get_ref();
        if s.is_empty() || s.contains(['/', '+', '#', '\0']) {
            return Err(doc.err(
                v,
                format!("{key}: expected a non-empty name without /, +, # or NUL"),
            ));
        }
        Ok(s.clone())
    };
    let site_name = check_name(site, "site")?;
    let bridge_id = match &raw.bridge_id {
        Some(b) => check_name(b, "bridge_id")?,
        None => host_name.replace(['/', '+', '#', '\0'], "_"),
    };
    let mqtt_raw = raw.mqtt.as_ref().ok_or_else(|| ConfigError {
        line: None,
        message: "[mqtt]: required (url = \"mqtt://HOST:PORT\")".into(),
    })?;
    let mqtt = mqtt_section(&doc, mqtt_raw, base, &site_name, &bridge_id)?;

    let statics = [Var::Prefix, Var::Site, Var::Bridge];
    let static_value = |v: Var| match v {
        Var::Prefix => Some(mqtt.prefix.as_str()),
        Var::Site => Some(site_name.as_str()),
        Var::Bridge => Some(bridge_id.as_str()),
        _ => None,
    };

    let mut to_mqtt = Vec::new();
    for t in &raw.to_mqtt {
        let r = t.get_ref();
        let target = match r.target.get_ref().as_str() {
            "*" => TargetMatch::Any,
            "" => return Err(doc.err(&r.target, "target: expected a target or \"*\"")),
            s => TargetMatch::Exact(s.to_owned()),
        };
        let topic = match &r.topic {
            Some(v) => doc.template(
                v,
                "topic",
                &[
                    Var::Prefix,
                    Var::Site,
                    Var::Bridge,
                    Var::Client,
                    Var::Target,
                    Var::Name,
                ],
                true,
            )?,
            None => Template::parse(
                DEFAULT_TO_MQTT_TOPIC,
                &[Var::Prefix, Var::Site, Var::Client, Var::Target, Var::Name],
                true,
            )
            .map_err(|e| doc.err(t, e))?,
        };
        let qos =
            match &r.qos {
                Some(q) if *q.get_ref() == 0 => return Err(doc.err(
                    q,
                    "qos: reliable messages need 1 or 2 (the device's ACK waits for the broker's)",
                )),
                Some(q) => doc.qos(q, "qos")?,
                None => Qos::AtLeastOnce,
            };
        let unreliable_qos = match &r.unreliable_qos {
            Some(q) => doc.qos(q, "unreliable_qos")?,
            None => Qos::AtMostOnce,
        };
        to_mqtt.push(ToMqtt {
            target,
            topic,
            qos,
            unreliable_qos,
            retain: r.retain.unwrap_or(false),
        });
    }

    let mut from_mqtt = Vec::new();
    for f in &raw.from_mqtt {
        let r = f.get_ref();
        let filter_t = doc.template(&r.filter, "filter", &statics, false)?;
        let filter = filter_t
            .render_raw(static_value)
            .map_err(|e| doc.err(&r.filter, format!("filter: {e}")))?;
        if !valid_filter(&filter) {
            return Err(doc.err(
                &r.filter,
                format!("filter: {filter:?} is not a valid MQTT filter"),
            ));
        }
        if r.target.get_ref().is_empty() {
            return Err(doc.err(&r.target, "target: expected a Pavillion target"));
        }
        let name = match &r.name {
            Some(n) => doc.template(
                n,
                "name",
                &[Var::Prefix, Var::Site, Var::Bridge, Var::Topic, Var::Tail],
                false,
            )?,
            None => Template::parse("{topic}", &[Var::Topic], false).map_err(|e| doc.err(f, e))?,
        };
        let to = match &r.to {
            None => Destination::Clients,
            Some(t) => match t.get_ref().split_once(':') {
                None if t.get_ref() == "clients" => Destination::Clients,
                Some(("client", n)) if !n.is_empty() => Destination::Client(n.to_owned()),
                Some(("upstream", n)) if !n.is_empty() => Destination::Upstream(n.to_owned()),
                _ => {
                    return Err(doc.err(
                        t,
                        "to: expected \"clients\", \"client:NAME\" or \"upstream:NAME\"",
                    ))
                }
            },
        };
        let reliable = r.reliable.unwrap_or(true);
        let give_up_after = match &r.give_up_after_ms {
            Some(t) => doc.positive_ms(t, "give_up_after_ms")?,
            None => DEFAULT_GIVE_UP_AFTER,
        };
        let dead_letter = match &r.dead_letter {
            Some(d) => {
                let t = doc.template(
                    d,
                    "dead_letter",
                    &[Var::Prefix, Var::Site, Var::Bridge, Var::Topic, Var::Tail],
                    true,
                )?;
                if !reliable {
                    return Err(doc.err(
                        d,
                        "dead_letter: only reliable routes give up (reliable = false sends once)",
                    ));
                }
                Some(t)
            }
            None => None,
        };
        from_mqtt.push(FromMqtt {
            filter,
            target: r.target.get_ref().clone(),
            name,
            to,
            reliable,
            give_up_after,
            dead_letter,
        });
    }

    // A dead letter the bridge itself subscribes to would come back in and be given up again,
    // under a longer topic each time. Checked with a sample `{topic}`/`{tail}` of one level.
    for (route, raw_route) in from_mqtt.iter().zip(&raw.from_mqtt) {
        let (Some(template), Some(span)) = (&route.dead_letter, &raw_route.get_ref().dead_letter)
        else {
            continue;
        };
        let sample = template.render(|v| match v {
            Var::Topic | Var::Tail => Some("x"),
            v => static_value(v),
        });
        let Ok(sample) = sample else { continue };
        if let Some(f) = from_mqtt
            .iter()
            .find(|f| super::topic::matches(&f.filter, &sample).is_some())
        {
            return Err(doc.err(
                span,
                format!(
                    "dead_letter: {sample:?} would be received again by [[from_mqtt]] filter {:?}",
                    f.filter
                ),
            ));
        }
    }

    let presence = match &raw.presence {
        None => None,
        Some(p) => {
            let r = p.get_ref();
            Some(Presence {
                devices: r
                    .devices
                    .as_ref()
                    .map(|d| {
                        doc.template(
                            d,
                            "devices",
                            &[
                                Var::Prefix,
                                Var::Site,
                                Var::Bridge,
                                Var::Client,
                                Var::Server,
                            ],
                            true,
                        )
                    })
                    .transpose()?,
                bridge: r
                    .bridge
                    .as_ref()
                    .map(|b| doc.template(b, "bridge", &statics, true))
                    .transpose()?,
            })
        }
    };

    let mut upstream: Vec<Upstream> = Vec::new();
    for u in &raw.upstream {
        let r = u.get_ref();
        let name = check_name(&r.name, "name")?;
        if upstream.iter().any(|o| o.name == name) {
            return Err(doc.err(
                &r.name,
                format!("name: a second [[upstream]] named {name:?}"),
            ));
        }
        if r.address.get_ref().is_empty() {
            return Err(doc.err(&r.address, "address: expected HOST:PORT"));
        }
        let topic = match &r.topic {
            Some(v) => doc.template(
                v,
                "topic",
                &[
                    Var::Prefix,
                    Var::Site,
                    Var::Bridge,
                    Var::Server,
                    Var::Target,
                    Var::Name,
                ],
                true,
            )?,
            None => Template::parse(
                DEFAULT_UPSTREAM_TOPIC,
                &[Var::Prefix, Var::Site, Var::Server, Var::Target, Var::Name],
                true,
            )
            .map_err(|e| doc.err(u, e))?,
        };
        let mut registers = Vec::new();
        for n in &r.registers {
            registers.push(
                u16::try_from(*n.get_ref())
                    .map_err(|_| doc.err(n, "registers: expected numbers 0 to 65535"))?,
            );
        }
        let rpc = r.rpc.unwrap_or(false);
        if rpc && mqtt.protocol == MqttVersion::V311 {
            return Err(doc.err(
                u,
                "rpc: needs MQTT 5 (protocol = 5): 3.1.1 has no request/response",
            ));
        }
        let min_acks = match &r.min_acks {
            None => 1,
            Some(n) => {
                let n_ok = usize::try_from(*n.get_ref())
                    .ok()
                    .filter(|n| (1..=MAX_MIN_ACKS).contains(n));
                let Some(k) = n_ok else {
                    return Err(doc.err(n, format!("min_acks: expected 1 to {MAX_MIN_ACKS}")));
                };
                // A host name is resolved by the runtime, which checks it again.
                if k > 1 && literal_ip(r.address.get_ref()).is_some_and(|ip| !is_group_address(ip))
                {
                    return Err(doc.err(
                        n,
                        "min_acks: above 1 needs a group address (one server answers a unicast address)",
                    ));
                }
                k
            }
        };
        let path = |s: &Option<String>| s.as_ref().map(|p| base.join(p));
        upstream.push(Upstream {
            name,
            address: r.address.get_ref().clone(),
            keys: UpstreamKeys {
                id: r.id.clone(),
                id_file: path(&r.id_file),
                psk: r.psk.clone(),
                psk_file: path(&r.psk_file),
                secret_key_file: path(&r.secret_key_file),
                server_key: r.server_key.clone(),
                server_key_file: path(&r.server_key_file),
                suite: r.suite.clone(),
            },
            subscribe: r.subscribe.clone(),
            topic,
            registers,
            rpc,
            min_acks,
            line: doc.line(u.span().start),
        });
    }
    for f in &from_mqtt {
        if let Destination::Upstream(n) = &f.to {
            if !upstream.iter().any(|u| &u.name == n) {
                return Err(ConfigError {
                    line: None,
                    message: format!("[[from_mqtt]] to: no [[upstream]] named {n:?}"),
                });
            }
        }
    }

    let mut rpc_to_mqtt: Vec<RpcToMqtt> = Vec::new();
    for c in &raw.rpc_to_mqtt {
        let r = c.get_ref();
        if mqtt.protocol == MqttVersion::V311 {
            return Err(doc.err(
                c,
                "[[rpc_to_mqtt]]: needs MQTT 5 (protocol = 5): 3.1.1 has no request/response",
            ));
        }
        let function = u16::try_from(*r.function.get_ref())
            .map_err(|_| doc.err(&r.function, "function: expected 0 to 65535"))?;
        if rpc_to_mqtt.iter().any(|o| o.function == function) {
            return Err(doc.err(&r.function, format!("function: {function} is mapped twice")));
        }
        let topic = match &r.topic {
            Some(v) => doc.template(
                v,
                "topic",
                &[Var::Prefix, Var::Site, Var::Bridge, Var::Function],
                true,
            )?,
            None => Template::parse(
                DEFAULT_RPC_TOPIC,
                &[Var::Prefix, Var::Site, Var::Function],
                true,
            )
            .map_err(|e| doc.err(c, e))?,
        };
        let timeout = match &r.timeout_ms {
            Some(t) => doc.positive_ms(t, "timeout_ms")?,
            None => Duration::from_secs(5),
        };
        rpc_to_mqtt.push(RpcToMqtt {
            function,
            topic,
            timeout,
        });
    }

    let dedupe = match &raw.dedupe {
        None => Dedupe {
            mode: DedupeMode::Off,
            standby_wait: Duration::from_secs(1),
        },
        Some(d) => {
            let r = d.get_ref();
            let mode = match &r.mode {
                None => DedupeMode::Off,
                Some(m) => match m.get_ref().as_str() {
                    "off" => DedupeMode::Off,
                    "standby" => DedupeMode::Standby,
                    _ => return Err(doc.err(m, "mode: expected \"off\" or \"standby\"")),
                },
            };
            if mode == DedupeMode::Standby && mqtt.protocol == MqttVersion::V311 {
                return Err(doc.err(
                    d,
                    "[dedupe] mode = \"standby\": needs MQTT 5 (the pav-id user property)",
                ));
            }
            Dedupe {
                mode,
                standby_wait: match &r.standby_wait_ms {
                    Some(w) => doc.positive_ms(w, "standby_wait_ms")?,
                    None => Duration::from_secs(1),
                },
            }
        }
    };

    Ok(BridgeConfig {
        site: site_name,
        bridge_id,
        pavillion: raw
            .pavillion
            .map(|p| (doc.line(p.span().start), p.into_inner()))
            .map(|(l, t)| (t, l)),
        mqtt,
        to_mqtt,
        from_mqtt,
        presence,
        upstream,
        rpc_to_mqtt,
        dedupe,
    })
}

fn mqtt_section(
    doc: &Doc<'_>,
    m: &Spanned<RawMqtt>,
    base: &Path,
    site: &str,
    bridge_id: &str,
) -> Result<MqttSection, ConfigError> {
    let r = m.get_ref();
    let url = r.url.get_ref();
    let (transport, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
        (Transport::Tcp, rest)
    } else if let Some(rest) = url.strip_prefix("mqtts://") {
        (Transport::Tls, rest)
    } else {
        return Err(doc.err(
            &r.url,
            "url: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]",
        ));
    };
    let rest = rest.trim_end_matches('/');
    let default_port = if transport == Transport::Tls {
        8883
    } else {
        1883
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            p.parse::<u16>()
                .map_err(|_| doc.err(&r.url, format!("url: bad port {p:?}")))?,
        ),
        _ => (rest.to_owned(), default_port),
    };
    if host.is_empty() || host.contains('/') {
        return Err(doc.err(&r.url, "url: expected mqtt://HOST[:PORT]"));
    }
    let protocol = match &r.protocol {
        None => MqttVersion::V5,
        Some(p) => match p.get_ref() {
            5 => MqttVersion::V5,
            3 | 4 => MqttVersion::V311,
            _ => return Err(doc.err(p, "protocol: expected 5 or 3 (3.1.1)")),
        },
    };
    let password = match (&r.password, &r.password_file) {
        (Some(p), Some(_)) => return Err(doc.err(p, "give password or password_file, not both")),
        (Some(p), None) => Some(p.get_ref().clone()),
        (None, Some(f)) => {
            let path = base.join(f.get_ref());
            let text = std::fs::read_to_string(&path)
                .map_err(|e| doc.err(f, format!("password_file: {}: {e}", path.display())))?;
            Some(text.trim_end_matches(['\r', '\n']).to_owned())
        }
        (None, None) => None,
    };
    if password.is_some() && r.username.is_none() {
        return Err(doc.err(m, "password: needs a username"));
    }
    let file = |v: &Spanned<String>, key: &str| -> Result<PathBuf, ConfigError> {
        let path = base.join(v.get_ref());
        if !path.is_file() {
            return Err(doc.err(v, format!("{key}: {} is not a file", path.display())));
        }
        Ok(path)
    };
    let ca_file = r.ca_file.as_ref().map(|v| file(v, "ca_file")).transpose()?;
    let client_cert = match (&r.client_cert, &r.client_key) {
        (Some(c), Some(k)) => Some((file(c, "client_cert")?, file(k, "client_key")?)),
        (None, None) => None,
        (Some(c), None) => return Err(doc.err(c, "client_cert: needs client_key too")),
        (None, Some(k)) => return Err(doc.err(k, "client_key: needs client_cert too")),
    };
    if transport == Transport::Tcp && (ca_file.is_some() || client_cert.is_some()) {
        return Err(doc.err(&r.url, "url: ca_file/client_cert need mqtts://"));
    }
    let secs = |v: &Option<Spanned<i64>>, key: &str, default: u64, max: u64| match v {
        None => Ok(Duration::from_secs(default)),
        Some(s) => u64::try_from(*s.get_ref())
            .ok()
            .filter(|n| *n <= max)
            .map(Duration::from_secs)
            .ok_or_else(|| doc.err(s, format!("{key}: expected 0 to {max}"))),
    };
    let keep_alive = secs(&r.keep_alive_secs, "keep_alive_secs", 30, 65_535)?;
    if let Some(k) = &r.keep_alive_secs {
        if (1..5).contains(k.get_ref()) {
            return Err(doc.err(k, "keep_alive_secs: expected 0 (off) or at least 5"));
        }
    }
    let session_expiry = secs(
        &r.session_expiry_secs,
        "session_expiry_secs",
        3600,
        u64::from(u32::MAX),
    )?;
    let prefix = match &r.prefix {
        None => "pav".to_owned(),
        Some(p) if p.get_ref().contains(['+', '#', '\0']) => {
            return Err(doc.err(p, "prefix: cannot hold +, # or NUL"))
        }
        Some(p) => p.get_ref().clone(),
    };
    let client_id = match &r.client_id {
        Some(c) if c.get_ref().is_empty() => return Err(doc.err(c, "client_id: empty")),
        Some(c) => c.get_ref().clone(),
        None => format!("pav-{site}-{bridge_id}"),
    };
    Ok(MqttSection {
        transport,
        host,
        port,
        client_id,
        protocol,
        username: r.username.as_ref().map(|u| u.get_ref().clone()),
        password,
        ca_file,
        client_cert,
        keep_alive,
        session_expiry,
        prefix,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
