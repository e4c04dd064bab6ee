//! Typed errors of the adapters, shared by the blocking API here and the async one in
//! `pavillion-smol`.
//!
//! The `InCallback` variants only come from the blocking adapter: its callbacks run on the
//! endpoint's own thread, which cannot wait for itself. The async adapter never returns them.

use std::io;

use bytes::Bytes;
use pavillion_proto::endpoint::{AuthFailure, FailReason, SendError as Refusal, TransferRefusal};
use pavillion_proto::wire::RpcStatus;

use crate::plumbing::reply::WaitError;

/// Why a socket could not be opened for an endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The address resolved to nothing.
    #[error("cannot resolve address {0:?}")]
    Address(String),
    /// Resolving, binding, joining a group or starting the driver failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The durable store could not be opened or restored (`ClientConfig::durable`,
    /// `ServerConfig::durable`).
    #[error(transparent)]
    Durable(#[from] crate::durable::DurableError),
}

/// Why an RPC call returned no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The client was closed, or closed while the call was pending.
    #[error("the client is closed")]
    Closed,
    /// The server answered, but not to our credentials: a wrong pre-shared key, a wrong
    /// server key, or a client id it does not know (`docs/PROTOCOL.md` §5.5).
    #[error("authentication failed: {reason}")]
    AuthenticationFailed {
        /// What did not authenticate.
        reason: AuthFailure,
    },
    /// The call failed before its deadline.
    #[error("call failed: {0}")]
    Failed(FailReason),
    /// Called from a message callback or RPC handler, which runs on the endpoint's own thread
    /// and so cannot wait for the endpoint (blocking adapter only).
    #[error("blocking call made from a callback on the endpoint thread")]
    InCallback,
    /// The endpoint refused the call at once (larger than our `max_message`, queue full,
    /// ...).
    #[error("call refused: {0}")]
    Refused(Refusal),
    /// The server refused the call's segmented arguments: larger than it accepts, no room in
    /// its reassembly budget, ... (`FailReason::Refused`).
    #[error("the server refused the call's arguments: {reason}")]
    RefusedByReceiver {
        /// Why.
        reason: TransferRefusal,
    },
    /// The server answered with a non-zero status.
    #[error("remote error {}: {}", status.0, String::from_utf8_lossy(data))]
    Remote {
        /// The status code (docs/PROTOCOL.md §9.1).
        status: RpcStatus,
        /// The bytes returned with it, often a message.
        data: Bytes,
    },
    /// No answer arrived before the call's deadline. Nothing answered at all: the server is
    /// down or unreachable (a firewall), or, under suite 3, our initiation was sealed to a
    /// wrong server key or PSK, which a server never answers.
    #[error(
        "no answer before the deadline (server down or unreachable, a firewall, \
         or a wrong server key)"
    )]
    TimedOut,
}

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The endpoint was closed, or closed while the message was pending.
    #[error("the endpoint is closed")]
    Closed,
    /// The server answered, but not to our credentials (see
    /// [`CallError::AuthenticationFailed`]).
    #[error("authentication failed: {reason}")]
    AuthenticationFailed {
        /// What did not authenticate.
        reason: AuthFailure,
    },
    /// The message failed before its deadline.
    #[error("message failed: {0}")]
    Failed(FailReason),
    /// Waited from a callback on the endpoint's own thread (blocking adapter only).
    #[error("blocking send made from a callback on the endpoint thread")]
    InCallback,
    /// The endpoint refused the message at once (bad name, larger than our `max_message`, no
    /// such peer, ...).
    #[error("message refused: {0}")]
    Refused(Refusal),
    /// The receiver refused the segmented message: larger than its `max_message`, no room in
    /// its reassembly budget, ... (`FailReason::Refused`).
    #[error("the receiver refused the message: {reason}")]
    RefusedByReceiver {
        /// Why.
        reason: TransferRefusal,
    },
    /// Nobody acknowledged the message before its deadline.
    #[error("no acknowledgement before the deadline")]
    TimedOut,
    /// The send window is full (`ClientConfig::send_window` pipelined messages await their
    /// outcomes), and the send was asked not to wait for room.
    #[error("the send window is full")]
    WouldBlock,
}

/// Why a question about a remote server has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The client is closed.
    #[error("the client is closed")]
    Closed,
    /// Asked from a callback on the endpoint's own thread (blocking adapter only).
    #[error("blocking query made from a callback on the endpoint thread")]
    InCallback,
    /// No time sync has been answered by this server yet.
    #[error("no clock estimate for this server yet")]
    NoClock,
    /// The server has not reported its status (its ACKs carry no status bytes).
    #[error("the server reported no status")]
    NoStatus,
    /// No session with this server, or nothing heard from it for the down timeout.
    #[error("not connected to this server")]
    NotConnected,
    /// A converted time does not fit the clock.
    #[error("time out of range")]
    OutOfRange,
    /// The wait ended before the server answered.
    #[error("timed out")]
    TimedOut,
}

impl From<FailReason> for CallError {
    /// A call failed by closing our own endpoint is [`CallError::Closed`]; the rest keep the
    /// endpoint's reason.
    fn from(reason: FailReason) -> Self {
        match reason {
            FailReason::Closed => CallError::Closed,
            FailReason::AuthenticationFailed(reason) => CallError::AuthenticationFailed { reason },
            FailReason::Rejected => CallError::AuthenticationFailed {
                reason: AuthFailure::UnknownClient,
            },
            FailReason::Refused(reason) => CallError::RefusedByReceiver { reason },
            other => CallError::Failed(other),
        }
    }
}

impl From<FailReason> for SendError {
    /// As for [`CallError`].
    fn from(reason: FailReason) -> Self {
        match reason {
            FailReason::Closed => SendError::Closed,
            FailReason::AuthenticationFailed(reason) => SendError::AuthenticationFailed { reason },
            FailReason::Rejected => SendError::AuthenticationFailed {
                reason: AuthFailure::UnknownClient,
            },
            FailReason::Refused(reason) => SendError::RefusedByReceiver { reason },
            other => SendError::Failed(other),
        }
    }
}

impl From<WaitError> for CallError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Closed => CallError::Closed,
            WaitError::TimedOut => CallError::TimedOut,
        }
    }
}

impl From<WaitError> for SendError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Closed => SendError::Closed,
            WaitError::TimedOut => SendError::TimedOut,
        }
    }
}

impl From<WaitError> for ServerError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Closed => ServerError::Closed,
            WaitError::TimedOut => ServerError::TimedOut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_reasons_map_closed_to_closed() {
        assert_eq!(CallError::from(FailReason::Closed), CallError::Closed);
        assert_eq!(SendError::from(FailReason::Closed), SendError::Closed);
        assert_eq!(
            CallError::from(FailReason::Rejected),
            CallError::AuthenticationFailed {
                reason: AuthFailure::UnknownClient
            }
        );
        assert_eq!(
            ServerError::from(WaitError::TimedOut),
            ServerError::TimedOut
        );
    }

    #[test]
    fn a_refused_transfer_says_what_and_why() {
        let e = SendError::from(FailReason::Refused(TransferRefusal::TooLarge));
        assert_eq!(
            e,
            SendError::RefusedByReceiver {
                reason: TransferRefusal::TooLarge
            }
        );
        assert_eq!(
            e.to_string(),
            "the receiver refused the message: larger than the receiver accepts"
        );
        assert_eq!(
            CallError::from(FailReason::Refused(TransferRefusal::NoRoom)),
            CallError::RefusedByReceiver {
                reason: TransferRefusal::NoRoom
            }
        );
    }
}
