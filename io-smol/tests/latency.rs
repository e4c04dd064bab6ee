//! An answer from application code leaves in the same wake-up as the request that caused it.
//!
//! Each test compares, side by side on loopback, the median time of calls answered by
//! application code (a registered handler, a deferred answer given inside its handler, an
//! async handler's answer) with the median time of calls to function 0, which the endpoint
//! answers itself. An answer that waited for the driver's next timer or datagram would take
//! that timer's period (10 ms to 500 ms) instead of one round trip. Calls alternate between
//! the two kinds, so both see the same load on the machine; only the ratio is checked.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::future::Future;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future;
use pavillion_proto::ClientId;
use pavillion_smol::{Client, ClientConfig, RpcFailure, Server, ServerConfig};

#[path = "../../io-std/tests/support/suites.rs"]
mod suites;

use suites::Suite;

const ID: ClientId = ClientId(*b"smol-latency-001");
/// Calls of each kind.
const CALLS: usize = 1000;
/// Bounds a run on a build where answers do wait for a timer (up to 500 ms each): the
/// medians are then taken over the calls made so far, which is plenty to tell.
const BUDGET: Duration = Duration::from_secs(15);

fn configs(suite: Suite) -> (ServerConfig, ClientConfig) {
    suites::configs(ID, suite)
}

/// Runs `test` on `smol::block_on`, failing it if it takes longer than `limit`.
fn bounded<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(limit).await;
        panic!("test did not finish within {limit:?}");
    }))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// One call to `function` with 64 bytes, checked, and how long it took.
async fn timed_call(client: &Client, function: u16) -> Duration {
    let args = [0x42u8; 64];
    let t = Instant::now();
    let got = client.call(function, &args).await.unwrap();
    let took = t.elapsed();
    assert_eq!(&got[..], &args[..], "function {function}");
    took
}

fn answers_leave_at_once(suite: Suite) {
    bounded(Duration::from_secs(60), async {
        let (s, c) = configs(suite);
        let server = Server::bind("127.0.0.1:0", s).await.unwrap();
        server.register(401, "echo", |req| Ok::<_, RpcFailure>(req.args.to_vec()));
        // Answered inside the handler: a command issued from a callback on the driver task.
        server.register_deferred(402, "echo-now", |req, responder| {
            responder.respond(Ok(req.args.to_vec()));
        });
        server.register_async(403, "echo-async", |req| async move {
            Ok::<_, RpcFailure>(req.args)
        });
        let client = Client::connect(server.local_addr(), c).await.unwrap();
        client.wait_connected(Duration::from_secs(5)).await.unwrap();
        timed_call(&client, 0).await;
        for (f, what) in [
            (401, "registered handler"),
            (402, "deferred answer"),
            (403, "async handler"),
        ] {
            let (mut zero, mut handler) = (Vec::new(), Vec::new());
            let start = Instant::now();
            while zero.len() < CALLS && start.elapsed() < BUDGET {
                zero.push(timed_call(&client, 0).await);
                handler.push(timed_call(&client, f).await);
            }
            let n = zero.len();
            let (zero, handler) = (median(zero), median(handler));
            assert!(
                handler <= zero * 2,
                "{suite:?}: median call to a {what} took {handler:?}, to function 0 {zero:?} \
                 ({n} calls each)"
            );
        }
        client.close().await;
        server.close().await;
    });
}

#[test]
fn psk_handler_answers_leave_at_once() {
    answers_leave_at_once(Suite::Psk);
}

#[test]
fn ecc_handler_answers_leave_at_once() {
    answers_leave_at_once(Suite::Ecc);
}

#[test]
fn noise_handler_answers_leave_at_once() {
    answers_leave_at_once(Suite::NoiseIk);
}
