//! The calls a member's handle makes to other members and the functions it serves them: one
//! table that both adapters' member loops keep, so that an answer, a failure or a revocation
//! settles the right caller the same way under a thread or a task.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use pavillion_proto::endpoint::{
    CallId, ClientEvent, FailReason, Member, MemberError, MemberEvent, RevokeError, ServerEvent,
};
use pavillion_proto::features::authority::MemberId;
use pavillion_proto::wire::RpcStatus;
use pavillion_proto::{FunctionId, Instant};

use crate::plumbing::reply::Reply;
use crate::plumbing::server::RpcFailure;

/// A function a member serves to the other members: the caller's id and the arguments in,
/// the result or a failure out. It runs on the member's loop, so it must not block for long;
/// a panic answers status 1.
pub type PeerHandler = Box<dyn FnMut(MemberId, &[u8]) -> Result<Vec<u8>, RpcFailure> + Send>;

/// Why a call to another member returned no result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerCallError {
    /// The call could not be made: unknown or revoked member, no address, too many peers, or
    /// the session refused it.
    Member(MemberError),
    /// The member answered with a non-zero status.
    Remote {
        /// The status.
        status: RpcStatus,
        /// The bytes returned with it.
        data: Bytes,
    },
    /// The call failed before its deadline.
    Failed(FailReason),
    /// No answer within the session's deadline or the caller's wait.
    TimedOut,
    /// The member we called was revoked while the call was pending.
    Revoked,
    /// Our member was closed.
    Closed,
}

impl fmt::Display for PeerCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerCallError::Member(e) => write!(f, "call not made: {e:?}"),
            PeerCallError::Remote { status, data } => write!(
                f,
                "remote error {}: {}",
                status.0,
                String::from_utf8_lossy(data)
            ),
            PeerCallError::Failed(r) => write!(f, "call failed: {r:?}"),
            PeerCallError::TimedOut => f.write_str("call timed out"),
            PeerCallError::Revoked => f.write_str("the member was revoked"),
            PeerCallError::Closed => f.write_str("the member is closed"),
        }
    }
}

impl std::error::Error for PeerCallError {}

/// Why an authority handle's revocation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeFailure {
    /// The role refused it (no member has this id).
    Refused(RevokeError),
    /// The authority is closed.
    Closed,
}

impl fmt::Display for RevokeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevokeFailure::Refused(RevokeError::UnknownMember) => f.write_str("no such member"),
            RevokeFailure::Refused(e) => write!(f, "{e:?}"),
            RevokeFailure::Closed => f.write_str("the authority is closed"),
        }
    }
}

impl std::error::Error for RevokeFailure {}

/// The outcome a waiting caller receives.
pub type CallOutcome = Result<Bytes, PeerCallError>;

/// Calls waiting for another member's answer, and the functions we serve them.
#[derive(Default)]
pub struct PeerCalls {
    /// By callee and call id: call ids are per peer session.
    calls: BTreeMap<(MemberId, CallId), Reply<CallOutcome>>,
    handlers: BTreeMap<FunctionId, PeerHandler>,
}

impl fmt::Debug for PeerCalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerCalls")
            .field("calls", &self.calls.len())
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PeerCalls {
    /// Waits for the answer of `call` to `peer` on `reply`.
    pub fn expect(&mut self, peer: MemberId, call: CallId, reply: Reply<CallOutcome>) {
        self.calls.insert((peer, call), reply);
    }

    /// Serves `function` to the other members with `handler` (replacing an earlier one).
    pub fn register(&mut self, function: FunctionId, handler: PeerHandler) {
        self.handlers.insert(function, handler);
    }

    /// Forgets the calls whose caller stopped waiting.
    pub fn forget_abandoned(&mut self) {
        self.calls.retain(|_, r| !r.is_closed());
    }

    /// Settles the callers an event concerns, and runs a served function for a call to it,
    /// answering through `member`'s server.
    pub fn route(&mut self, now: Instant, event: &MemberEvent, member: &mut Member) {
        match event {
            MemberEvent::ToPeer { id, event } => {
                let (call, outcome) = match event {
                    ClientEvent::Answered { call, data, .. } => (call, Ok(data.clone())),
                    ClientEvent::RemoteError {
                        call, status, data, ..
                    } => {
                        let e = PeerCallError::Remote {
                            status: *status,
                            data: data.clone(),
                        };
                        (call, Err(e))
                    }
                    ClientEvent::CallFailed { call, reason } => {
                        (call, Err(PeerCallError::Failed(*reason)))
                    }
                    ClientEvent::CallTimedOut { call } => (call, Err(PeerCallError::TimedOut)),
                    _ => return,
                };
                if let Some(r) = self.calls.remove(&(*id, *call)) {
                    r.send(outcome);
                }
            }
            MemberEvent::PeerRevoked { id } => {
                let gone: Vec<_> = self
                    .calls
                    .range((*id, CallId(0))..)
                    .take_while(|((p, _), _)| p == id)
                    .map(|(k, _)| *k)
                    .collect();
                for k in gone {
                    if let Some(r) = self.calls.remove(&k) {
                        r.send(Err(PeerCallError::Revoked));
                    }
                }
            }
            MemberEvent::FromPeer {
                id,
                event: ServerEvent::RpcRequest(req),
            } => {
                let (status, data) = match self.handlers.get_mut(&req.function) {
                    // A panicking handler answers status 1 rather than end the member's loop.
                    Some(h) => match catch_unwind(AssertUnwindSafe(|| h(*id, &req.args))) {
                        Ok(Ok(data)) => (RpcStatus::OK, Bytes::from(data)),
                        Ok(Err(f)) => (f.status, f.data),
                        Err(_) => (RpcStatus::ERROR, Bytes::from_static(b"handler panicked")),
                    },
                    None => (RpcStatus::NONEXISTENT_FUNCTION, Bytes::new()),
                };
                if let Err(e) = member.server_mut().respond(now, req.call, status, &data) {
                    tracing::debug!("member: answer to {id} not sent: {e:?}");
                }
            }
            _ => {}
        }
    }
}
