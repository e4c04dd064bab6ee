//! RPC across the bridge, both ways over MQTT 5 request/response (`docs/BRIDGE.md`, "RPC").
//!
//! Two halves meet here, neither of which touches a socket:
//!
//! - [`Correlations`]: the bridge's own requests to MQTT responders (a device called a
//!   bridged function) wait in a bounded table keyed by a fresh 8-byte correlation id, each
//!   with a deadline. A response is matched by its correlation data; a response nobody waits
//!   for (late, forged, from an earlier run of the bridge) is a typed [`Unmatched`], never a
//!   panic.
//! - The status convention: every answer the bridge publishes carries the user property
//!   [`PAV_STATUS`] (decimal; `0` is success) and, on failure, [`PAV_ERROR`] (a text).
//!   Statuses `1..=65535` below [`BRIDGE_STATUS_BASE`] are the Pavillion server's own
//!   (`docs/PROTOCOL.md` §9.1); the bridge's own failures ([`BridgeRpcError`]) use the
//!   statuses from [`BRIDGE_STATUS_BASE`] up, so that a requester can tell "the device
//!   said no" from "the bridge could not ask it".

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::FunctionId;

use crate::error::CallError;
use crate::plumbing::server::RpcFailure;

/// The user property that carries an answer's status, in decimal: `0` for success.
pub const PAV_STATUS: &str = "pav-status";
/// The user property that carries a failure's text (absent on success).
pub const PAV_ERROR: &str = "pav-error";
/// The first status of the bridge's own failures (`0xFF00`); the Pavillion statuses in use
/// (§9.1) are all far below.
pub const BRIDGE_STATUS_BASE: u16 = 0xFF00;
/// The longest [`PAV_ERROR`] text, in bytes: a failure's data can be a whole traceback, and a
/// user property is sent with every answer.
pub const MAX_ERROR_TEXT: usize = 256;

/// An MQTT 5 correlation id the bridge chose for one of its requests: 8 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CorrelationId(pub [u8; 8]);

impl CorrelationId {
    /// The id as correlation data.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CorrelationId({self})")
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why a request could not be entered in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{capacity} requests already wait for an answer")]
pub struct TableFull {
    /// The table's capacity.
    pub capacity: usize,
}

/// Why a response matched no request; the runtime counts it and drops the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unmatched {
    /// The response carries no correlation data.
    #[error("no correlation data")]
    Missing,
    /// The correlation data is not 8 bytes, so not one of ours.
    #[error("correlation data of {0} bytes, not 8")]
    Malformed(usize),
    /// No request waits under this id: answered already, timed out, or never sent by this
    /// run of the bridge.
    #[error("no request waits under this id")]
    Unknown,
}

/// The requests that wait for an MQTT answer, each until its deadline.
///
/// Bounded by its capacity (a device's calls are what fills it, and the MQTT side answers at
/// its own pace); ids are never reused in the table's life: the `n`th id is a bijection of
/// `seed + n`, so no two requests of one run share an id, and a random seed per run makes a
/// late answer to an earlier run's request unlikely to match (2⁻⁶⁴ per answer).
#[derive(Debug)]
pub struct Correlations<T> {
    waiting: HashMap<CorrelationId, (Instant, T)>,
    /// Every key of `waiting` once, ordered by deadline, so expiry reads only what is due.
    deadlines: BTreeSet<(Instant, CorrelationId)>,
    capacity: usize,
    seed: u64,
    issued: u64,
}

impl<T> Correlations<T> {
    /// An empty table for at most `capacity` waiting requests, issuing ids from `seed` (the
    /// runtime draws it from the OS at start).
    pub fn new(capacity: usize, seed: u64) -> Self {
        Correlations {
            waiting: HashMap::new(),
            deadlines: BTreeSet::new(),
            capacity,
            seed,
            issued: 0,
        }
    }

    /// An empty table whose seed comes from the OS, so that a late answer to a request of an
    /// earlier run of the bridge (the same response topic) matches nothing. Falls back to the
    /// clock if the OS has no randomness: ids stay unique within the run either way.
    pub fn with_random_seed(capacity: usize) -> Self {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            seed = (nanos as u64).to_le_bytes();
        }
        Self::new(capacity, u64::from_le_bytes(seed))
    }

    /// Enters a request that waits until `deadline` and returns its fresh id.
    ///
    /// # Errors
    /// [`TableFull`], with `value` back, when `capacity` requests wait: the caller fails the
    /// request at once ([`BridgeRpcError::Busy`]) rather than queue without bound.
    pub fn insert(&mut self, deadline: Instant, value: T) -> Result<CorrelationId, (TableFull, T)> {
        if self.waiting.len() >= self.capacity {
            let full = TableFull {
                capacity: self.capacity,
            };
            return Err((full, value));
        }
        let id = CorrelationId(mix(self.seed.wrapping_add(self.issued)).to_be_bytes());
        self.issued += 1;
        self.deadlines.insert((deadline, id));
        self.waiting.insert(id, (deadline, value));
        Ok(id)
    }

    /// Takes the request an answer with correlation data `data` belongs to.
    ///
    /// # Errors
    /// [`Unmatched`]: the answer is not for a waiting request.
    pub fn take(&mut self, data: Option<&[u8]>) -> Result<T, Unmatched> {
        let data = data.ok_or(Unmatched::Missing)?;
        let bytes: [u8; 8] = data
            .try_into()
            .map_err(|_| Unmatched::Malformed(data.len()))?;
        let id = CorrelationId(bytes);
        let (deadline, value) = self.waiting.remove(&id).ok_or(Unmatched::Unknown)?;
        self.deadlines.remove(&(deadline, id));
        Ok(value)
    }

    /// Removes and returns every request whose deadline is at or before `now`, earliest
    /// first; the caller fails each with [`BridgeRpcError::TimedOut`].
    pub fn expire(&mut self, now: Instant) -> Vec<(CorrelationId, T)> {
        let mut due = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some((_, value)) = self.waiting.remove(&id) {
                due.push((id, value));
            }
        }
        due
    }

    /// Removes and returns every waiting request (the bridge is closing).
    pub fn drain(&mut self) -> Vec<T> {
        self.deadlines.clear();
        self.waiting.drain().map(|(_, (_, v))| v).collect()
    }

    /// The earliest deadline, for the runtime's timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// SplitMix64's finalizer: a bijection on `u64`, so distinct inputs give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The bridge's own reasons for an RPC without an answer from the other side, each with a
/// status of its own from [`BRIDGE_STATUS_BASE`] up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeRpcError {
    /// No answer came before the deadline.
    #[error("bridge: no answer before the deadline")]
    TimedOut,
    /// The other side cannot be asked: the Pavillion server is not connected or refused our
    /// credentials, or the bridge has no broker connection.
    #[error("bridge: the other side is not reachable")]
    Unreachable,
    /// Too many requests already wait at the bridge.
    #[error("bridge: too many requests pending")]
    Busy,
    /// The call was refused before it left: too large, or the receiver refused its size.
    #[error("bridge: the request was refused before it was sent")]
    Refused,
    /// The MQTT responder's [`PAV_STATUS`] is not a status (a decimal `u16`).
    #[error("bridge: the responder's pav-status is not a status")]
    BadResponse,
}

impl BridgeRpcError {
    /// Every variant, in status order.
    pub const ALL: [BridgeRpcError; 5] = [
        BridgeRpcError::TimedOut,
        BridgeRpcError::Unreachable,
        BridgeRpcError::Busy,
        BridgeRpcError::Refused,
        BridgeRpcError::BadResponse,
    ];

    /// The status this failure is reported with, on either side.
    pub const fn status(self) -> RpcStatus {
        RpcStatus(
            BRIDGE_STATUS_BASE
                + match self {
                    BridgeRpcError::TimedOut => 1,
                    BridgeRpcError::Unreachable => 2,
                    BridgeRpcError::Busy => 3,
                    BridgeRpcError::Refused => 4,
                    BridgeRpcError::BadResponse => 5,
                },
        )
    }

    /// The bridge failure a status stands for, if it is one.
    pub fn from_status(status: RpcStatus) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.status() == status)
    }

    /// The failure as a Pavillion call's answer: its status, the text as data.
    pub fn failure(self) -> RpcFailure {
        RpcFailure::new(self.status(), Bytes::from(self.to_string()))
    }
}

/// An answer as the bridge publishes it to an MQTT requester: payload and user properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttAnswer {
    /// The [`PAV_STATUS`] value.
    pub status: RpcStatus,
    /// The [`PAV_ERROR`] value, on failure only.
    pub error: Option<String>,
    /// The payload: the result on success, the failure's data otherwise.
    pub payload: Bytes,
}

impl MqttAnswer {
    /// The user properties to publish with the answer, in order.
    pub fn properties(&self) -> Vec<(String, String)> {
        let mut props = vec![(PAV_STATUS.to_owned(), self.status.0.to_string())];
        if let Some(e) = &self.error {
            props.push((PAV_ERROR.to_owned(), e.clone()));
        }
        props
    }
}

/// The answer to an MQTT request that the bridge turned into `Client::call` on an upstream
/// server: success, the server's own failure status, or the bridge's reason
/// ([`BridgeRpcError`]) for having no answer.
pub fn answer_of_call(result: Result<Bytes, CallError>) -> MqttAnswer {
    let bridge = |e: BridgeRpcError, detail: String| MqttAnswer {
        status: e.status(),
        error: Some(clip(&detail)),
        payload: Bytes::from(detail),
    };
    match result {
        Ok(payload) => MqttAnswer {
            status: RpcStatus::OK,
            error: None,
            payload,
        },
        Err(CallError::Remote { status, data }) => MqttAnswer {
            status,
            error: Some(clip(&String::from_utf8_lossy(&data))),
            payload: data,
        },
        Err(CallError::TimedOut) => {
            bridge(BridgeRpcError::TimedOut, CallError::TimedOut.to_string())
        }
        Err(e @ (CallError::Refused(_) | CallError::RefusedByReceiver { .. })) => {
            bridge(BridgeRpcError::Refused, e.to_string())
        }
        // Closed, authentication, a failed session, a call from the wrong thread: the server
        // could not be asked.
        Err(e) => bridge(BridgeRpcError::Unreachable, e.to_string()),
    }
}

/// The answer to an MQTT request the bridge could not even start (no upstream, pool full).
pub fn answer_of_failure(error: BridgeRpcError) -> MqttAnswer {
    let text = error.to_string();
    MqttAnswer {
        status: error.status(),
        error: Some(text.clone()),
        payload: Bytes::from(text),
    }
}

/// The Pavillion answer to a device's call, from an MQTT responder's response: its
/// [`PAV_STATUS`] property (`None`: a responder that knows nothing of the convention, read
/// as success) and payload. A status that is not a decimal `u16` is
/// [`BridgeRpcError::BadResponse`], since guessing would report a failure as a success.
pub fn call_result_of_response(status: Option<&str>, payload: Bytes) -> Result<Bytes, RpcFailure> {
    let status = match status {
        None => return Ok(payload),
        Some(text) => match parse_status(text) {
            Some(s) => s,
            None => return Err(BridgeRpcError::BadResponse.failure()),
        },
    };
    if status.is_ok() {
        Ok(payload)
    } else {
        Err(RpcFailure::new(status, payload))
    }
}

/// A [`PAV_STATUS`] value: decimal digits only (no sign, no spaces), at most `u16::MAX`.
pub fn parse_status(text: &str) -> Option<RpcStatus> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().map(RpcStatus)
}

/// The function an MQTT request calls, from the last level of its topic
/// (`…/rpc/{function}`): a decimal `u16`, nothing else.
pub fn parse_function(level: &str) -> Option<FunctionId> {
    parse_status(level).map(|s| FunctionId(s.0))
}

/// `text` cut to at most [`MAX_ERROR_TEXT`] bytes on a character boundary.
fn clip(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
#[path = "rpc_tests.rs"]
mod tests;
