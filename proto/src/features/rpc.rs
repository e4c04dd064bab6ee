//! RPC: the server's registered and built-in functions, its calls waiting for the application,
//! its cache of answers for retried calls, and the client's mapping of an answer to an event.
//!
//! What the endpoint hands in and gets back:
//! - wire: a server hands a fresh opcode 4 (`RpcCall`) to [`Functions::route`] and the route to
//!   [`Calls::admit`]; a client hands
//!   an opcode 5 (`RpcResponse`) that completed one of its calls to [`answer_event`]. A retried
//!   call (a duplicate counter) is answered from [`Calls::answer`] by the server's duplicate
//!   handling, within the resend limits of [`Resends`].
//! - timers: none of its own. The server's housekeeping timer runs [`Calls::expire`]; a
//!   caller's deadline is its outbox entry's.
//! - sent: the server sends an opcode 5 for every answer it [`Calls::remember`]s (the answer
//!   is sealed from the cache, so a resend is the same bytes).
//! - events: `RpcRequest` for a call the application must answer (server); `Answered` or
//!   `RemoteError` for an answer (client). `CallTimedOut` and `CallFailed` come from the
//!   outbox, like every exchange's outcome.
//!
//! Each call runs at most once: a retry carries the same counter, the session's replay window
//! marks it a duplicate, and the server answers it from the cache instead of running it again.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;

use bytes::Bytes;

use crate::endpoint::{CallId, ClientEvent};
use crate::id::{Counter, FunctionId};
use crate::time::{Duration, Instant};
use crate::wire::RpcStatus;

/// Most times one cached answer is sent again, over its whole lifetime. A caller whose
/// answer and retries are lost with probability 1/2 each way misses all of them once in
/// about 10^5 calls.
pub(crate) const MAX_RESENDS: u8 = 16;

/// What a server does with a fresh call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Answered here: a built-in function, or a function nobody registered.
    Answer(RpcStatus, Bytes),
    /// A registered function: the application answers it.
    Application,
}

/// The functions a server takes calls for, and their names (for built-in call 1).
#[derive(Clone, Debug, Default)]
pub(crate) struct Functions {
    names: BTreeMap<FunctionId, String>,
}

impl Functions {
    /// Calls to `function` go to the application from now on.
    pub(crate) fn register(&mut self, function: FunctionId, name: &str) {
        self.names.insert(function, name.into());
    }

    /// Calls to `function` are answered "nonexistent" from now on.
    pub(crate) fn unregister(&mut self, function: FunctionId) {
        self.names.remove(&function);
    }

    /// Decides who answers a call of `function` with `args`. With `builtin`, call 0 echoes
    /// its arguments and call 1 names a function, as the Arduino server does; anything not
    /// registered gets status 2 with the Arduino server's text.
    pub(crate) fn route(&self, builtin: bool, function: FunctionId, args: &[u8]) -> Route {
        let answer = |status, data: &[u8]| Route::Answer(status, Bytes::copy_from_slice(data));
        match function {
            FunctionId::ECHO if builtin => answer(RpcStatus::OK, args),
            FunctionId::NAME if builtin => match <[u8; 2]>::try_from(args) {
                Ok(n) => {
                    let name = self.names.get(&FunctionId(u16::from_le_bytes(n)));
                    answer(RpcStatus::OK, name.map_or(&b""[..], |n| n.as_bytes()))
                }
                Err(_) => answer(RpcStatus::BAD_INPUT, b"BadInput"),
            },
            f if self.names.contains_key(&f) => Route::Application,
            _ => answer(RpcStatus::NONEXISTENT_FUNCTION, b"NonexistentFunction"),
        }
    }
}

/// The bounds of one session's answer cache (from `ServerConfig`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CacheBounds {
    /// Most answers kept (at least one: the answer about to be sent).
    pub(crate) entries: usize,
    /// Most bytes kept, counting [`ANSWER_OVERHEAD`] per answer.
    pub(crate) bytes: usize,
    /// How long an answer (and a call waiting for the application) is kept.
    pub(crate) ttl: Duration,
}

/// One session's calls: those handed to the application and not answered yet, and the
/// answers kept for retries, oldest first.
///
/// Boxed, and only while it holds something: every server session has one, and most are idle
/// (`compare`'s memory rows); housekeeping ([`Calls::expire`]) frees it once empty.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    held: Option<Box<Held>>,
}

/// What [`Calls`] holds while it holds anything.
#[derive(Debug, Default)]
struct Held {
    /// Calls handed to the application, with when they arrived. A call unanswered after the
    /// cache's TTL is forgotten: its caller gave up long ago.
    pending: Vec<(Counter, Instant)>,
    answers: VecDeque<Answer>,
    /// What `answers` costs against [`CacheBounds::bytes`].
    answer_bytes: usize,
}

/// An answer kept for retried calls.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) call: Counter,
    pub(crate) status: RpcStatus,
    pub(crate) data: Bytes,
    /// When it was made; it is forgotten a TTL later, however often it is asked for.
    at: Instant,
    /// How often, and when next, it may be sent again for a duplicate call.
    pub(crate) resends: Resends,
}

/// What one remembered answer costs against the cache's bytes, beyond its data.
pub(crate) const ANSWER_OVERHEAD: usize = core::mem::size_of::<Answer>();

impl Answer {
    /// An answer made and sent at `now`; its first resend waits one `gap`.
    pub(crate) fn new(
        call: Counter,
        status: RpcStatus,
        data: Bytes,
        now: Instant,
        gap: Duration,
    ) -> Self {
        Answer {
            call,
            status,
            data,
            at: now,
            resends: Resends::new(now, gap),
        }
    }
}

impl Calls {
    /// Calls waiting for the application.
    pub(crate) fn pending_len(&self) -> usize {
        self.held.as_ref().map_or(0, |h| h.pending.len())
    }

    /// Whether `call` waits for the application (a retry of it has no answer to resend yet).
    pub(crate) fn is_pending(&self, call: Counter) -> bool {
        self.held
            .as_ref()
            .is_some_and(|h| h.pending.iter().any(|(c, _)| *c == call))
    }

    /// `call`, arrived at `now`, waits for the application.
    pub(crate) fn hold(&mut self, call: Counter, now: Instant) {
        self.held().pending.push((call, now));
    }

    /// The application answers `call`: false if it was not waiting (answered already, or
    /// forgotten).
    pub(crate) fn take_pending(&mut self, call: Counter) -> bool {
        let Some(h) = self.held.as_deref_mut() else {
            return false;
        };
        match h.pending.iter().position(|(c, _)| *c == call) {
            Some(pos) => {
                h.pending.swap_remove(pos);
                true
            }
            None => false,
        }
    }

    /// The kept answer to `call`. Searched newest first: the answer being sent is the newest
    /// (it was kept just before), and a retried call is a recent one, so neither costs a walk
    /// through the whole cache (up to `rpc_cache_entries`, 1,024 by default) on every call.
    pub(crate) fn answer(&self, call: Counter) -> Option<&Answer> {
        let h = self.held.as_deref()?;
        h.answers.iter().rev().find(|a| a.call == call)
    }

    /// The kept answer to `call`, to record a resend (newest first, as [`Calls::answer`]).
    pub(crate) fn answer_mut(&mut self, call: Counter) -> Option<&mut Answer> {
        let h = self.held.as_deref_mut()?;
        h.answers.iter_mut().rev().find(|a| a.call == call)
    }

    /// Keeps an answer for retried calls, within the cache's count, byte and age bounds.
    ///
    /// Bytes and age are the real bounds: a call whose answer was lost is retried while its
    /// neighbours complete, so counting entries would evict exactly the answers still needed.
    pub(crate) fn remember(&mut self, bounds: CacheBounds, answer: Answer, now: Instant) {
        self.held().remember(bounds, answer, now);
    }

    /// Forgets answers older than `ttl`.
    pub(crate) fn expire_answers(&mut self, ttl: Duration, now: Instant) {
        if let Some(h) = self.held.as_deref_mut() {
            h.expire_answers(ttl, now);
        }
    }

    /// Housekeeping: forgets old answers, and calls the application left unanswered for
    /// `ttl`; frees the box once nothing is left (with the capacity its collections grew to).
    pub(crate) fn expire(&mut self, ttl: Duration, now: Instant) {
        if let Some(h) = self.held.as_deref_mut() {
            h.expire_answers(ttl, now);
            h.pending.retain(|(_, at)| now - *at < ttl);
            if h.pending.is_empty() && h.answers.is_empty() {
                self.held = None;
            }
        }
    }

    fn held(&mut self) -> &mut Held {
        self.held.get_or_insert_with(Box::default)
    }
}

impl Held {
    fn remember(&mut self, bounds: CacheBounds, answer: Answer, now: Instant) {
        self.answer_bytes += answer.data.len() + ANSWER_OVERHEAD;
        self.answers.push_back(answer);
        while self.answers.len() > bounds.entries.max(1) || self.answer_bytes > bounds.bytes {
            // The newest answer always stays: it is about to be sent from the cache.
            if self.answers.len() == 1 {
                break;
            }
            self.forget_oldest();
        }
        self.expire_answers(bounds.ttl, now);
    }

    fn expire_answers(&mut self, ttl: Duration, now: Instant) {
        while self.answers.len() > 1 && self.answers.front().is_some_and(|a| now - a.at >= ttl) {
            self.forget_oldest();
        }
        if self.answers.len() == 1 && self.answers.front().is_some_and(|a| now - a.at >= ttl) {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some(old) = self.answers.pop_front() {
            self.answer_bytes -= old.data.len() + ANSWER_OVERHEAD;
        }
    }
}

/// What a server did with a fresh call (see [`Calls::admit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admitted {
    /// Answered here, and the answer remembered: send it from the cache.
    Answered,
    /// Too many calls wait for the application already: answered "Busy" (status 1), and
    /// remembered like any answer, so a retry gets the same refusal.
    Busy,
    /// Waits for the application, which answers it through the endpoint.
    Application,
}

impl Calls {
    /// Takes a fresh call that `route` sent where it goes: answered here (remembered, with
    /// resends `gap` apart), or held for the application while fewer than `max_pending` are.
    pub(crate) fn admit(
        &mut self,
        route: Route,
        call: Counter,
        now: Instant,
        max_pending: usize,
        bounds: CacheBounds,
        gap: Duration,
    ) -> Admitted {
        let (status, data, admitted) = match route {
            Route::Answer(status, data) => (status, data, Admitted::Answered),
            Route::Application if self.pending_len() >= max_pending => {
                let busy = Bytes::from_static(b"Busy");
                (RpcStatus::ERROR, busy, Admitted::Busy)
            }
            Route::Application => {
                self.hold(call, now);
                return Admitted::Application;
            }
        };
        self.remember(bounds, Answer::new(call, status, data, now, gap), now);
        admitted
    }
}

/// When a cached answer may be sent again, and how often it was.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resends {
    count: u8,
    /// No resend before this.
    next: Instant,
}

impl Resends {
    /// An answer just sent at `now`: its first resend waits one gap of `base`.
    pub(crate) fn new(now: Instant, base: Duration) -> Self {
        Resends {
            count: 0,
            next: now + base,
        }
    }

    /// Whether a duplicate call at `now` may have the answer again.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        self.count < MAX_RESENDS && now >= self.next
    }

    /// Records a resend at `now`: the next waits twice as long as this one did, at most
    /// `ceiling`.
    pub(crate) fn record(&mut self, now: Instant, base: Duration, ceiling: Duration) {
        self.count = self.count.saturating_add(1);
        self.next = now + base.saturating_mul(1 << self.count.min(16)).min(ceiling);
    }
}

/// The client's event for an answer from `from` to its call `call`: `Answered` for status 0,
/// `RemoteError` for any other.
pub(crate) fn answer_event(
    call: CallId,
    from: SocketAddr,
    status: RpcStatus,
    data: &[u8],
) -> ClientEvent {
    let data = Bytes::copy_from_slice(data);
    if status == RpcStatus::OK {
        ClientEvent::Answered { call, from, data }
    } else {
        ClientEvent::RemoteError {
            call,
            from,
            status,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(entries: usize, bytes: usize) -> CacheBounds {
        CacheBounds {
            entries,
            bytes,
            ttl: Duration::from_secs(10),
        }
    }

    fn answer(call: u64, len: usize, at: Instant) -> Answer {
        let data = Bytes::from(alloc::vec![0u8; len]);
        Answer::new(
            Counter(call),
            RpcStatus::OK,
            data,
            at,
            Duration::from_millis(5),
        )
    }

    #[test]
    fn resends_back_off_and_stop() {
        let base = Duration::from_millis(5);
        let t0 = Instant::from_millis(1000);
        let mut r = Resends::new(t0, base);
        assert!(!r.is_due(t0), "not at once after the answer");
        let mut t = t0 + base;
        let mut n = 0;
        while n < 100 {
            if r.is_due(t) {
                r.record(t, base, Duration::from_secs(2));
                n += 1;
            } else if r.count >= MAX_RESENDS {
                break;
            }
            t += Duration::from_millis(1);
        }
        assert_eq!(n, usize::from(MAX_RESENDS));
        // Gaps 10, 20, 40, ... ms after the first, at most 2 s: the last resend is more than
        // ten seconds on.
        assert!(t - t0 > Duration::from_secs(10), "{:?}", t - t0);
    }

    #[test]
    fn the_cache_keeps_the_newest_answers_within_its_bytes() {
        let t0 = Instant::from_millis(1000);
        let mut c = Calls::default();
        let b = bounds(100, 2 * (ANSWER_OVERHEAD + 10));
        for call in 1..=3 {
            c.remember(b, answer(call, 10, t0), t0);
        }
        assert!(c.answer(Counter(1)).is_none());
        assert!(c.answer(Counter(2)).is_some() && c.answer(Counter(3)).is_some());
        // One answer larger than the whole cache is still kept: it is about to be sent.
        c.remember(b, answer(4, 1000, t0), t0);
        assert!(c.answer(Counter(4)).is_some());
        assert!(c.answer(Counter(3)).is_none());
    }

    #[test]
    fn answers_and_unanswered_calls_expire() {
        let t0 = Instant::from_millis(1000);
        let mut c = Calls::default();
        let b = bounds(8, 1 << 20);
        c.remember(b, answer(1, 1, t0), t0);
        c.hold(Counter(2), t0);
        c.expire(b.ttl, t0 + (b.ttl - Duration::from_millis(1)));
        assert!(c.answer(Counter(1)).is_some() && c.is_pending(Counter(2)));
        c.expire(b.ttl, t0 + b.ttl);
        assert!(c.answer(Counter(1)).is_none());
        assert!(!c.is_pending(Counter(2)));
        assert!(!c.take_pending(Counter(2)));
        // An idle session holds no box, nor the capacity its collections grew to.
        assert!(c.held.is_none());
    }

    #[test]
    fn a_call_beyond_the_pending_limit_is_answered_busy_and_remembered() {
        let mut calls = Calls::default();
        let (now, gap, b) = (Instant::ZERO, Duration::from_millis(10), bounds(8, 4096));
        let answer = Route::Answer(RpcStatus::OK, Bytes::from_static(b"x"));
        assert_eq!(
            calls.admit(answer, Counter(1), now, 1, b, gap),
            Admitted::Answered
        );
        assert_eq!(
            calls.answer(Counter(1)).map(|a| a.status),
            Some(RpcStatus::OK)
        );
        let app = Route::Application;
        assert_eq!(
            calls.admit(app.clone(), Counter(2), now, 1, b, gap),
            Admitted::Application
        );
        assert!(calls.is_pending(Counter(2)));
        assert_eq!(calls.admit(app, Counter(3), now, 1, b, gap), Admitted::Busy);
        assert!(!calls.is_pending(Counter(3)));
        let busy = calls.answer(Counter(3)).map(|a| (a.status, a.data.clone()));
        assert_eq!(busy, Some((RpcStatus::ERROR, Bytes::from_static(b"Busy"))));
    }

    #[test]
    fn built_ins_answer_and_registered_functions_go_to_the_application() {
        let mut f = Functions::default();
        f.register(FunctionId(7), "seven");
        assert_eq!(f.route(true, FunctionId(7), b""), Route::Application);
        assert_eq!(
            f.route(true, FunctionId::ECHO, b"hi"),
            Route::Answer(RpcStatus::OK, Bytes::from_static(b"hi"))
        );
        assert_eq!(
            f.route(true, FunctionId::NAME, &7u16.to_le_bytes()),
            Route::Answer(RpcStatus::OK, Bytes::from_static(b"seven"))
        );
        assert_eq!(
            f.route(true, FunctionId::NAME, b"x"),
            Route::Answer(RpcStatus::BAD_INPUT, Bytes::from_static(b"BadInput"))
        );
        let nonexistent = Route::Answer(
            RpcStatus::NONEXISTENT_FUNCTION,
            Bytes::from_static(b"NonexistentFunction"),
        );
        assert_eq!(f.route(false, FunctionId::ECHO, b"hi"), nonexistent);
        f.unregister(FunctionId(7));
        assert_eq!(f.route(true, FunctionId(7), b""), nonexistent);
    }
}
