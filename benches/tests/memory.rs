//! The idle-session budget, held through the measured path: heap bytes counted by the global
//! allocator while a server takes on real sessions (`pavillion_benches::memory`, the same code
//! as `compare`'s memory rows), not through `size_of` alone, which misses B-tree nodes, boxes
//! and caches keyed by client.
//!
//! Its own test binary, since it needs the counting global allocator; the tests run one after
//! another (a mutex), since the count is for the whole process.

use std::sync::Mutex;

use pavillion_benches::memory::{idle_sessions, Counting, Served, BUDGET};
use pavillion_benches::Suite;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Sessions per measurement: enough that the B-tree nodes of the tables are as full as at
/// `compare`'s 10k (about 11 entries a node, half full after splits), few enough for CI.
const SESSIONS: usize = 4_000;

fn within_budget(suite: Suite) {
    within(suite, BUDGET);
}

/// Holds `suite`'s idle session to `budget` bytes.
fn within(suite: Suite, budget: f64) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let m = idle_sessions(suite, SESSIONS, 0, 0);
    println!(
        "{}: {:.0} B per idle session ({:.0} B before expiry)",
        suite.name(),
        m.per_session,
        m.fresh_per_session
    );
    assert!(
        m.per_session <= budget,
        "{}: {:.0} B per idle session, over the {budget} B budget",
        suite.name(),
        m.per_session
    );
    // Not vacuous: a session holds at least its keys and window.
    assert!(m.per_session >= 100.0, "{:.0} B", m.per_session);
}

#[test]
fn psk_idle_session_within_budget() {
    within_budget(Suite::Psk);
}

#[test]
fn ecc_idle_session_within_budget() {
    within_budget(Suite::Ecc);
}

#[test]
fn noise_idle_session_within_budget() {
    within_budget(Suite::Noise);
}

// The large row's proof of service, at a size CI can afford: clients chosen at random among
// many idle sessions each get a message through. Fails if a kept client's session was lost or
// its message refused.
#[test]
fn a_server_full_of_idle_sessions_still_serves() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let m = idle_sessions(Suite::Psk, 20_000, 200, 0);
    assert_eq!(
        m.served,
        Some(Served {
            asked: 200,
            delivered: 200
        })
    );
    assert!(m.per_session <= BUDGET, "{:.0} B", m.per_session);
}
