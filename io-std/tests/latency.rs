//! An answer from application code leaves in the same wake-up as the request that caused it.
//!
//! Each test compares, side by side on loopback, the median time of calls answered by
//! application code (a registered handler, a deferred answer, an answer given from a message
//! callback) with the median time of calls to function 0, which the endpoint answers itself.
//! An answer that waited for the driver's next timer or datagram would take that timer's
//! period (10 ms to 500 ms) instead of one round trip. Calls alternate between the two
//! kinds, so both see the same load on the machine; only the ratio is checked.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use pavillion_proto::ClientId;
use pavillion_std::{
    Client, ClientConfig, Reliability, Responder, RpcFailure, Server, ServerConfig,
};

#[path = "support/suites.rs"]
mod suites;

use suites::Suite;

const ID: ClientId = ClientId(*b"latency-client-1");
/// Calls of each kind.
const CALLS: usize = 1000;
/// Bounds a run on a build where answers do wait for a timer (up to 500 ms each): the
/// medians are then taken over the calls made so far, which is plenty to tell.
const BUDGET: Duration = Duration::from_secs(15);
const WAIT: Duration = Duration::from_secs(5);

fn configs(suite: Suite) -> (ServerConfig, ClientConfig) {
    suites::configs(ID, suite)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Times `CALLS` pairs of calls, `reference` then `measured` each time (or fewer if the
/// budget runs out), and returns the two medians.
fn side_by_side(
    mut reference: impl FnMut(),
    mut measured: impl FnMut(),
) -> (Duration, Duration, usize) {
    let (mut a, mut b) = (Vec::with_capacity(CALLS), Vec::with_capacity(CALLS));
    let start = Instant::now();
    while a.len() < CALLS && start.elapsed() < BUDGET {
        let t = Instant::now();
        reference();
        a.push(t.elapsed());
        let t = Instant::now();
        measured();
        b.push(t.elapsed());
    }
    let n = a.len();
    (median(a), median(b), n)
}

fn connected(suite: Suite, server: &Server, client_config: ClientConfig) -> Client {
    let client = Client::connect(server.local_addr(), client_config).unwrap();
    client.wait_connected(WAIT).unwrap();
    // The handshake's own work is out of the way before timing starts.
    assert_eq!(&client.call(0, b"warm").unwrap()[..], b"warm", "{suite:?}");
    client
}

/// A registered handler's answer, and a deferred answer given inside the handler (a command
/// issued from a callback), each against function 0.
fn registered_and_deferred_answers_leave_at_once(suite: Suite) {
    let (s, c) = configs(suite);
    let server = Server::bind("127.0.0.1:0", s).unwrap();
    server.register(401, "echo", |req| Ok::<_, RpcFailure>(req.args.to_vec()));
    server.register_deferred(402, "echo-now", |req, responder| {
        responder.respond(Ok(req.args.to_vec()));
    });
    let client = connected(suite, &server, c);
    let args = [0x42u8; 64];
    let call = |f: u16| {
        let got = client.call(f, &args).unwrap();
        assert_eq!(&got[..], &args[..], "{suite:?} function {f}");
    };
    for (f, what) in [(401, "registered handler"), (402, "deferred answer")] {
        let (zero, handler, n) = side_by_side(|| call(0), || call(f));
        assert!(
            handler <= zero * 2,
            "{suite:?}: median call to a {what} took {handler:?}, to function 0 {zero:?} \
             ({n} calls each)"
        );
    }
    client.close();
}

#[test]
fn psk_handler_answers_leave_at_once() {
    registered_and_deferred_answers_leave_at_once(Suite::Psk);
}

#[test]
fn ecc_handler_answers_leave_at_once() {
    registered_and_deferred_answers_leave_at_once(Suite::Ecc);
}

#[test]
fn noise_handler_answers_leave_at_once() {
    registered_and_deferred_answers_leave_at_once(Suite::NoiseIk);
}

/// A message callback answers a call that a deferred handler parked: the answer is a command
/// issued from inside a callback, and must go out without waiting for a timer. Timed from
/// the message's send to the call's answer, against a call to function 0.
#[test]
fn a_command_from_a_message_callback_goes_out_at_once() {
    let (s, c) = configs(Suite::Psk);
    let server = Server::bind("127.0.0.1:0", s).unwrap();
    let parked: Arc<Mutex<Option<Responder>>> = Arc::default();
    let (called_tx, called) = mpsc::channel();
    let slot = parked.clone();
    server.register_deferred(403, "parked", move |_, responder| {
        *slot.lock().unwrap() = Some(responder);
        let _ = called_tx.send(());
    });
    let slot = parked.clone();
    server.on_message(Some("release"), move |m| {
        if let Some(responder) = slot.lock().unwrap().take() {
            responder.respond(Ok(m.payload().to_vec()));
        }
    });
    let client = Arc::new(connected(Suite::Psk, &server, c));
    let (answered_tx, answered) = mpsc::channel();
    let caller = {
        let client = client.clone();
        std::thread::spawn(move || {
            for _ in 0..CALLS {
                let got = client.call(403, b"").map(|b| b.to_vec());
                let done = got.is_ok();
                if answered_tx.send((Instant::now(), got)).is_err() || !done {
                    return;
                }
            }
        })
    };
    let (mut zero, mut released) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while released.len() < CALLS / 4 && start.elapsed() < BUDGET {
        let t = Instant::now();
        client.call(0, b"x").unwrap();
        zero.push(t.elapsed());
        called.recv_timeout(WAIT).expect("the deferred handler ran");
        let sent = Instant::now();
        client
            .send_message("release", "go", b"ok", Reliability::Unreliable)
            .unwrap();
        let (at, got) = answered.recv_timeout(WAIT).expect("the parked call ended");
        assert_eq!(got.unwrap(), b"ok");
        released.push(at.saturating_duration_since(sent));
    }
    // The caller thread waits on its next call: a responder dropped unanswered ends it.
    called.recv_timeout(WAIT).expect("the deferred handler ran");
    drop(parked.lock().unwrap().take());
    drop(answered);
    caller.join().unwrap();
    let n = zero.len();
    let (zero, released) = (median(zero), median(released));
    assert!(
        released <= zero * 2,
        "median answer from a message callback took {released:?}, a call to function 0 \
         {zero:?} ({n} each)"
    );
}
