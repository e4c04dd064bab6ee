//! Progress of a large (segmented) reliable send, as the endpoint reports it
//! (`ClientEvent::Progress`, `ServerEvent::Progress`): bytes acknowledged so far, and the total.
//! The application gives a callback with the send; the router runs it on the driver for each
//! report, until the send's outcome arrives.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A client's progress callback: `(acked, total)` bytes of the message.
pub struct Progress(Box<dyn FnMut(u64, u64) + Send>);

impl Progress {
    /// Wraps `callback`. It runs on the driver (thread or task), so it must not block.
    pub fn new(callback: impl FnMut(u64, u64) + Send + 'static) -> Self {
        Progress(Box::new(callback))
    }

    /// Runs the callback. A panicking callback is logged and kept: a progress display must
    /// not take the endpoint down.
    pub fn report(&mut self, acked: u64, total: u64) {
        if catch_unwind(AssertUnwindSafe(|| (self.0)(acked, total))).is_err() {
            tracing::error!(acked, total, "progress callback panicked");
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// A server's progress callback: `(client, acked, total)`, since one send may go to many
/// clients, each acknowledging at its own pace.
pub struct FanoutProgress(Box<dyn FnMut(SocketAddr, u64, u64) + Send>);

impl FanoutProgress {
    /// Wraps `callback`. It runs on the driver (thread or task), so it must not block.
    pub fn new(callback: impl FnMut(SocketAddr, u64, u64) + Send + 'static) -> Self {
        FanoutProgress(Box::new(callback))
    }

    /// Runs the callback, as [`Progress::report`].
    pub fn report(&mut self, client: SocketAddr, acked: u64, total: u64) {
        if catch_unwind(AssertUnwindSafe(|| (self.0)(client, acked, total))).is_err() {
            tracing::error!(%client, acked, total, "progress callback panicked");
        }
    }
}

impl std::fmt::Debug for FanoutProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FanoutProgress")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_panicking_callback_is_kept_and_runs_again() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let mut p = Progress::new(move |acked, total| {
            s.lock().unwrap().push((acked, total));
            assert!(acked < total, "done");
        });
        p.report(1, 2);
        p.report(2, 2);
        p.report(2, 2);
        assert_eq!(*seen.lock().unwrap(), vec![(1, 2), (2, 2), (2, 2)]);
    }
}
