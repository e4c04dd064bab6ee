//! Fresh RPC calls at the server: built-ins answered here, registered functions handed to the
//! application, the rest refused; the per-session call cache is `features::rpc`.

use bytes::Bytes;

use crate::features::rpc;
use crate::id::{Counter, FunctionId};
use crate::time::Instant;
use core::net::SocketAddr;

use super::super::config::ServerConfig;
use super::super::{CallHandle, DropReason, Outgoing, RpcRequest, ServerEvent};
use super::{duplicates, Server};

impl Server {
    /// A fresh call: built-ins are answered here, registered functions go to the application,
    /// anything else gets status 2 as the Arduino server answers it.
    pub(super) fn on_call(
        &mut self,
        now: Instant,
        from: SocketAddr,
        call: Counter,
        function: FunctionId,
        args: &[u8],
    ) {
        let route = self
            .functions
            .route(self.config.builtin_calls, function, args);
        let Some(s) = self.sessions.get_mut(&from) else {
            return;
        };
        let gap = duplicates::resend_gap(s, self.config.limits.rtt.min_rto);
        let max = self.config.max_pending_calls;
        match s
            .calls
            .admit(route, call, now, max, cache_bounds(&self.config), gap)
        {
            rpc::Admitted::Application => {
                self.shared
                    .events
                    .push_back(ServerEvent::RpcRequest(RpcRequest {
                        call: CallHandle {
                            addr: from,
                            counter: call,
                            generation: s.generation,
                        },
                        from,
                        peer: s.peer,
                        function,
                        args: Bytes::copy_from_slice(args),
                    }))
            }
            rpc::Admitted::Busy => {
                self.shared.stats.drop(DropReason::TableFull);
                self.shared
                    .tx
                    .push_back(Outgoing::RpcResponse { to: from, call });
            }
            rpc::Admitted::Answered => self
                .shared
                .tx
                .push_back(Outgoing::RpcResponse { to: from, call }),
        }
    }
}

/// The bounds of each session's answer cache.
pub(super) fn cache_bounds(config: &ServerConfig) -> rpc::CacheBounds {
    rpc::CacheBounds {
        entries: config.rpc_cache_entries,
        bytes: config.rpc_cache_bytes,
        ttl: config.rpc_cache_ttl,
    }
}
