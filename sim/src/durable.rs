//! Durable hosts (issue 17): a model store per simulated host, and the store half of the
//! driver of a client or server with durable messages (`docs/PROTOCOL.md` §16).
//!
//! A host whose spec has a [`StoreSpec`] owns a store that belongs to the host, not to the
//! incarnation: its *committed* rows survive crashes and bounces, as a database file survives
//! its process. Each incarnation's driver does what the io adapters' drivers do:
//! - at start, `enable_durable` with the committed rows (the endpoint is new, with a new seed,
//!   as at every reboot), before the script's `on_start`, so that the application can read
//!   back its marks ([`Ctl::durable_restored`](crate::Ctl::durable_restored));
//! - after every pass, it drains `poll_store` and writes everything it got in one transaction
//!   (group commit). A transaction takes a seeded delay drawn from the spec's range, like an
//!   fsync; batches that arrive meanwhile wait for the next one. Only when the transaction is
//!   done are its rows committed and `stored(last)` called.
//!
//! A crash loses the transaction in flight and the batches waiting for it, never part of one:
//! they are counted in [`StoreStats::lost_batches`]. [`NetAction::CrashInCommit`] crashes a
//! host exactly while a transaction is in flight, so a scenario hits that window on purpose
//! rather than by luck.
//!
//! [`NetAction::CrashInCommit`]: crate::NetAction::CrashInCommit

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use core::fmt::Write as _;

use pavillion_proto::endpoint::{Client, Server};
use pavillion_proto::features::durable::{
    DurableBatch, DurableRecord, DurableRestoreError, DurableRestored, DurableTable,
};
use pavillion_proto::rng::Rng;
use pavillion_proto::store::{BatchId, StoreOp};
use pavillion_proto::{Duration, Instant};

use crate::host::StoreHook;
use crate::net::{derive_seed, Shared};

/// A durable host's committed rows: (table, key) → value.
pub type DurableRows = BTreeMap<(DurableTable, Vec<u8>), Vec<u8>>;

/// How a host's model store behaves.
///
/// # Examples
/// ```
/// use core::time::Duration;
/// use pavillion_sim::StoreSpec;
/// let spec = StoreSpec::new(Duration::from_millis(1), Duration::from_millis(5));
/// assert!(spec.max_delay >= spec.min_delay);
/// assert_eq!(StoreSpec::IMMEDIATE.max_delay, Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreSpec {
    /// The shortest a transaction takes (simulated; turmoil's clock ticks in milliseconds,
    /// so whole milliseconds).
    pub min_delay: Duration,
    /// The longest a transaction takes; each one draws its delay uniformly in between.
    pub max_delay: Duration,
}

impl StoreSpec {
    /// Transactions that are done at once: a crash can never interrupt one.
    pub const IMMEDIATE: StoreSpec = StoreSpec {
        min_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// Transactions taking `min..=max` (swapped if given the wrong way round).
    pub fn new(min: Duration, max: Duration) -> Self {
        StoreSpec {
            min_delay: min.min(max),
            max_delay: max.max(min),
        }
    }
}

impl Default for StoreSpec {
    /// 1 to 5 ms per transaction, an fsync of a small device.
    fn default() -> Self {
        StoreSpec::new(Duration::from_millis(1), Duration::from_millis(5))
    }
}

/// Which transaction [`NetAction::CrashInCommit`] crashes a host in: the next one holding
/// an operation of this kind.
///
/// [`NetAction::CrashInCommit`]: crate::NetAction::CrashInCommit
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InCommit {
    /// Any transaction.
    Any,
    /// One that puts a row of this table: for a client, `Outbox` or `Meta` is a send; for a
    /// server, `Inbox` is a receipt and `Meta` a consume's mark.
    Put(DurableTable),
    /// One that deletes a row of this table: for a client, `Outbox` is an acknowledgement;
    /// for a server, `Inbox` is a consume.
    Delete(DurableTable),
}

impl InCommit {
    fn matches(self, op: &StoreOp<DurableTable>) -> bool {
        match (self, op) {
            (InCommit::Any, _) => true,
            (InCommit::Put(t), StoreOp::Put { table, .. })
            | (InCommit::Delete(t), StoreOp::Delete { table, .. }) => t == *table,
            _ => false,
        }
    }
}

/// What a host's store did, over all its incarnations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions committed.
    pub commits: u64,
    /// Batches committed (a transaction holds one or more).
    pub batches: u64,
    /// Batches handed out by an endpoint and lost by a crash before their transaction was
    /// done.
    pub lost_batches: u64,
    /// Crashes that came while a transaction was in flight.
    pub crashes_in_commit: u64,
    /// Starts that restored from a store that had rows.
    pub restores: u64,
}

/// The per-host state that outlives incarnations.
#[derive(Debug, Default)]
pub(crate) struct HostStore {
    rows: DurableRows,
    stats: StoreStats,
    /// What the running incarnation's `enable_durable` restored.
    restored: Option<DurableRestored>,
    /// Batches the running incarnation took and did not commit yet: lost if it crashes.
    uncommitted: u64,
    /// Whether a transaction of the running incarnation is in flight.
    in_commit: bool,
    /// Crash the host when its next transaction that this matches starts
    /// ([`NetAction::CrashInCommit`]).
    ///
    /// [`NetAction::CrashInCommit`]: crate::NetAction::CrashInCommit
    armed: Option<InCommit>,
}

/// Every durable host's store, in the shared world.
#[derive(Debug, Default)]
pub(crate) struct Stores {
    hosts: BTreeMap<Rc<str>, HostStore>,
    /// Armed hosts whose transaction is in flight now: the simulation crashes them after
    /// this step.
    crash_now: Vec<Rc<str>>,
}

impl Stores {
    /// Arms `host`: it crashes in its next transaction that `which` matches.
    pub(crate) fn arm(&mut self, host: &str, which: InCommit) {
        self.hosts.entry(host.into()).or_default().armed = Some(which);
    }

    /// The hosts to crash now (see [`Stores::arm`]).
    pub(crate) fn take_crashes(&mut self) -> Vec<Rc<str>> {
        core::mem::take(&mut self.crash_now)
    }

    pub(crate) fn rows(&self, host: &str) -> DurableRows {
        self.hosts
            .get(host)
            .map(|h| h.rows.clone())
            .unwrap_or_default()
    }

    pub(crate) fn stats(&self, host: &str) -> StoreStats {
        self.hosts.get(host).map(|h| h.stats).unwrap_or_default()
    }

    pub(crate) fn restored(&self, host: &str) -> Option<DurableRestored> {
        self.hosts.get(host).and_then(|h| h.restored)
    }
}

/// The durable commands of the roles that have them, so that one driver serves both.
pub(crate) trait DurableRole {
    fn enable_from(
        &mut self,
        now: Instant,
        rows: &DurableRows,
    ) -> Result<DurableRestored, DurableRestoreError>;
    fn take_batch(&mut self) -> Option<DurableBatch>;
    fn confirm(&mut self, now: Instant, batch: BatchId);
}

fn records(rows: &DurableRows) -> impl Iterator<Item = DurableRecord<'_>> {
    rows.iter().map(|((table, key), value)| DurableRecord {
        table: *table,
        key,
        value,
    })
}

impl DurableRole for Client {
    fn enable_from(
        &mut self,
        now: Instant,
        rows: &DurableRows,
    ) -> Result<DurableRestored, DurableRestoreError> {
        self.enable_durable(now, records(rows))
    }
    fn take_batch(&mut self) -> Option<DurableBatch> {
        self.poll_store()
    }
    fn confirm(&mut self, now: Instant, batch: BatchId) {
        self.stored(now, batch);
    }
}

impl DurableRole for Server {
    fn enable_from(
        &mut self,
        now: Instant,
        rows: &DurableRows,
    ) -> Result<DurableRestored, DurableRestoreError> {
        self.enable_durable(now, records(rows))
    }
    fn take_batch(&mut self) -> Option<DurableBatch> {
        self.poll_store()
    }
    fn confirm(&mut self, now: Instant, batch: BatchId) {
        self.stored(now, batch);
    }
}

/// A transaction in flight.
#[derive(Debug)]
struct Commit {
    done: Instant,
    batches: Vec<DurableBatch>,
}

/// The store half of one incarnation's driver (see the module docs).
pub(crate) struct StoreDriver {
    host: Rc<str>,
    world: Shared,
    spec: StoreSpec,
    rng: Rng,
    /// Batches taken while a transaction was in flight: the next transaction's.
    waiting: Vec<DurableBatch>,
    in_flight: Option<Commit>,
}

impl StoreDriver {
    pub(crate) fn new(host: Rc<str>, incarnation: u32, world: Shared, spec: StoreSpec) -> Self {
        let seed = world.borrow().seed;
        StoreDriver {
            rng: Rng::from_seed(derive_seed(seed, &host, incarnation, "store")),
            host,
            world,
            spec,
            waiting: Vec::new(),
            in_flight: None,
        }
    }

    /// When the transaction in flight is done.
    fn done_at(&self) -> Option<Instant> {
        self.in_flight.as_ref().map(|c| c.done)
    }

    fn delay(&mut self) -> Duration {
        let (lo, hi) = (
            self.spec.min_delay.as_millis(),
            self.spec.max_delay.as_millis(),
        );
        let lo = u64::try_from(lo).unwrap_or(u64::MAX);
        let hi = u64::try_from(hi).unwrap_or(u64::MAX);
        Duration::from_millis(self.rng.range_inclusive(lo, hi))
    }

    fn note(&self, now: Instant, text: String) {
        self.world.borrow_mut().note(now, &self.host, text);
    }

    /// Starts a transaction of the waiting batches, if there are any and none is in flight.
    fn begin(&mut self, now: Instant) {
        if self.in_flight.is_some() || self.waiting.is_empty() {
            return;
        }
        let mut delay = self.delay();
        let batches = core::mem::take(&mut self.waiting);
        let mut w = self.world.borrow_mut();
        let hs = w.durable.hosts.entry(self.host.clone()).or_default();
        let hit = |which: &InCommit| {
            batches
                .iter()
                .flat_map(|b| &b.ops)
                .any(|op| which.matches(op))
        };
        if hs.armed.as_ref().is_some_and(hit) {
            // A crash needs a transaction that is still in flight after this step.
            hs.armed = None;
            delay = delay.max(Duration::from_millis(1));
            w.durable.crash_now.push(self.host.clone());
        }
        if let Some(hs) = w.durable.hosts.get_mut(&self.host) {
            hs.in_commit = true;
        }
        drop(w);
        self.in_flight = Some(Commit {
            done: now + delay,
            batches,
        });
    }

    /// Finishes the transaction in flight if it is done: its rows are committed, then the
    /// endpoint hears that its last batch is stored. Whether it finished.
    fn finish<E: DurableRole>(&mut self, ep: &mut E, now: Instant) -> bool {
        let Some(commit) = self.in_flight.take_if(|c| c.done <= now) else {
            return false;
        };
        let n = commit.batches.len() as u64;
        let last = commit.batches.last().map(|b| b.id);
        let mut text = String::from("store: commit");
        let mut w = self.world.borrow_mut();
        let hs = w.durable.hosts.entry(self.host.clone()).or_default();
        let mut ops = 0usize;
        for batch in commit.batches {
            let _ = write!(text, " {}", batch.id.0);
            for op in batch.ops {
                ops += 1;
                match op {
                    StoreOp::Put { table, key, value } => {
                        hs.rows.insert((table, key), value);
                    }
                    StoreOp::Delete { table, key } => {
                        hs.rows.remove(&(table, key));
                    }
                }
            }
        }
        hs.stats.commits += 1;
        hs.stats.batches += n;
        hs.uncommitted = hs.uncommitted.saturating_sub(n);
        hs.in_commit = false;
        let _ = write!(text, " ({ops} ops, {} rows)", hs.rows.len());
        drop(w);
        self.note(now, text);
        if let Some(id) = last {
            ep.confirm(now, id);
        }
        true
    }
}

impl<E: DurableRole> StoreHook<E> for StoreDriver {
    fn start(&mut self, ep: &mut E, now: Instant) -> Result<(), String> {
        let rows = {
            let mut w = self.world.borrow_mut();
            let hs = w.durable.hosts.entry(self.host.clone()).or_default();
            // What the last incarnation handed out and never committed died with it.
            let lost = core::mem::take(&mut hs.uncommitted);
            hs.stats.lost_batches += lost;
            if core::mem::take(&mut hs.in_commit) {
                hs.stats.crashes_in_commit += 1;
            }
            if !hs.rows.is_empty() {
                hs.stats.restores += 1;
            }
            hs.restored = None;
            let rows = hs.rows.clone();
            if lost > 0 {
                w.note(
                    now,
                    &self.host,
                    format!("store: {lost} uncommitted batches lost"),
                );
            }
            rows
        };
        match ep.enable_from(now, &rows) {
            Ok(restored) => {
                let mut w = self.world.borrow_mut();
                if let Some(hs) = w.durable.hosts.get_mut(&self.host) {
                    hs.restored = Some(restored);
                }
                w.note(now, &self.host, format!("store: restored {restored:?}"));
                Ok(())
            }
            Err(e) => Err(format!("{}: enable_durable: {e}", self.host)),
        }
    }

    fn pump(&mut self, ep: &mut E, now: Instant) -> bool {
        let mut busy = self.finish(ep, now);
        let mut taken = 0u64;
        while let Some(batch) = ep.take_batch() {
            taken += 1;
            self.waiting.push(batch);
        }
        if taken > 0 {
            let mut w = self.world.borrow_mut();
            w.durable
                .hosts
                .entry(self.host.clone())
                .or_default()
                .uncommitted += taken;
        }
        self.begin(now);
        // A transaction with no delay is done in the same pass.
        busy |= self.finish(ep, now);
        busy
    }

    fn deadline(&self) -> Option<Instant> {
        self.done_at()
    }
}

#[cfg(test)]
mod tests {
    use core::cell::RefCell;

    use pavillion_proto::features::durable::OriginId;

    use super::*;
    use crate::config::LinkFaults;
    use crate::net::World;

    /// A role that hands out the batches it is given and records what it restored and which
    /// batches were confirmed.
    #[derive(Default)]
    struct Fake {
        queue: Vec<DurableBatch>,
        next: u64,
        restored_rows: usize,
        confirmed: Vec<u64>,
    }

    impl Fake {
        fn put(&mut self, key: u8) {
            self.next += 1;
            self.queue.push(DurableBatch {
                id: BatchId(self.next),
                ops: vec![StoreOp::Put {
                    table: DurableTable::Outbox,
                    key: vec![key],
                    value: vec![key],
                }],
            });
        }
    }

    impl DurableRole for Fake {
        fn enable_from(
            &mut self,
            _: Instant,
            rows: &DurableRows,
        ) -> Result<DurableRestored, DurableRestoreError> {
            self.restored_rows = rows.len();
            Ok(DurableRestored {
                origin: OriginId(7),
                fresh: rows.is_empty(),
                queued: rows.len(),
                inbox: 0,
                send_mark: None,
                consume_mark: None,
            })
        }
        fn take_batch(&mut self) -> Option<DurableBatch> {
            (!self.queue.is_empty()).then(|| self.queue.remove(0))
        }
        fn confirm(&mut self, _: Instant, batch: BatchId) {
            self.confirmed.push(batch.0);
        }
    }

    fn world() -> Shared {
        Rc::new(RefCell::new(World::new(1, LinkFaults::clean())))
    }

    fn ms(n: u64) -> Instant {
        Instant::from_micros(n * 1000)
    }

    fn driver(world: &Shared, incarnation: u32, spec: StoreSpec) -> StoreDriver {
        StoreDriver::new("h".into(), incarnation, world.clone(), spec)
    }

    #[test]
    fn spec_orders_its_bounds() {
        let s = StoreSpec::new(Duration::from_millis(5), Duration::from_millis(1));
        assert_eq!(s.min_delay, Duration::from_millis(1));
        assert_eq!(s.max_delay, Duration::from_millis(5));
    }

    /// An immediate store commits and confirms in the same pass.
    #[test]
    fn immediate_commits_in_the_same_pass() {
        let w = world();
        let mut d = driver(&w, 0, StoreSpec::IMMEDIATE);
        let mut ep = Fake::default();
        d.start(&mut ep, ms(0)).unwrap();
        ep.put(1);
        assert!(d.pump(&mut ep, ms(0)));
        assert_eq!(ep.confirmed, vec![1]);
        assert_eq!(w.borrow().durable.rows("h").len(), 1);
        assert!(!d.pump(&mut ep, ms(0)));
    }

    /// Nothing is confirmed before its transaction is done; batches that arrive meanwhile
    /// share the next transaction (group commit), confirmed by its last batch.
    #[test]
    fn confirms_only_after_the_delay_and_groups_what_waited() {
        let w = world();
        let spec = StoreSpec::new(Duration::from_millis(3), Duration::from_millis(3));
        let mut d = driver(&w, 0, spec);
        let mut ep = Fake::default();
        d.start(&mut ep, ms(0)).unwrap();
        ep.put(1);
        d.pump(&mut ep, ms(0));
        assert_eq!(d.done_at(), Some(ms(3)));
        ep.put(2);
        ep.put(3);
        d.pump(&mut ep, ms(1));
        assert!(ep.confirmed.is_empty());
        assert!(w.borrow().durable.rows("h").is_empty());
        d.pump(&mut ep, ms(3));
        assert_eq!(ep.confirmed, vec![1]);
        assert_eq!(w.borrow().durable.rows("h").len(), 1);
        assert_eq!(d.done_at(), Some(ms(6)));
        d.pump(&mut ep, ms(6));
        assert_eq!(ep.confirmed, vec![1, 3]);
        let stats = w.borrow().durable.stats("h");
        assert_eq!((stats.commits, stats.batches), (2, 3));
    }

    /// A crash loses the transaction in flight and what waited for it; the next incarnation
    /// is restored from the committed rows only.
    #[test]
    fn a_crash_loses_what_was_not_committed() {
        let w = world();
        let spec = StoreSpec::new(Duration::from_millis(2), Duration::from_millis(2));
        let mut d = driver(&w, 0, spec);
        let mut ep = Fake::default();
        d.start(&mut ep, ms(0)).unwrap();
        ep.put(1);
        d.pump(&mut ep, ms(0));
        d.pump(&mut ep, ms(2));
        ep.put(2);
        d.pump(&mut ep, ms(3));
        ep.put(3);
        d.pump(&mut ep, ms(4));
        drop(d);
        let mut d = driver(&w, 1, spec);
        let mut ep = Fake::default();
        d.start(&mut ep, ms(10)).unwrap();
        assert_eq!(ep.restored_rows, 1);
        let stats = w.borrow().durable.stats("h");
        assert_eq!((stats.lost_batches, stats.crashes_in_commit), (2, 1));
        assert_eq!(stats.restores, 1);
        assert!(w.borrow().durable.restored("h").is_some());
    }

    /// An armed host asks to be crashed as its next transaction starts, and that
    /// transaction is still in flight after the step, even with an immediate store.
    #[test]
    fn an_armed_host_crashes_inside_its_next_transaction() {
        let w = world();
        let mut d = driver(&w, 0, StoreSpec::IMMEDIATE);
        let mut ep = Fake::default();
        d.start(&mut ep, ms(0)).unwrap();
        w.borrow_mut().durable.arm("h", InCommit::Any);
        assert!(w.borrow_mut().durable.take_crashes().is_empty());
        ep.put(1);
        d.pump(&mut ep, ms(0));
        assert!(ep.confirmed.is_empty());
        assert_eq!(d.done_at(), Some(ms(1)));
        let crashes = w.borrow_mut().durable.take_crashes();
        assert_eq!(crashes, vec![Rc::from("h")]);
        // Disarmed: the next transaction is an ordinary one.
        ep.put(2);
        d.pump(&mut ep, ms(1));
        d.pump(&mut ep, ms(1));
        assert_eq!(ep.confirmed, vec![1, 2]);
        assert!(w.borrow_mut().durable.take_crashes().is_empty());
    }

    /// Armed for the delete of a table, a host lets the transactions that do not delete a
    /// row of it pass.
    #[test]
    fn an_armed_host_waits_for_a_transaction_that_matches() {
        let w = world();
        let mut d = driver(&w, 0, StoreSpec::IMMEDIATE);
        let mut ep = Fake::default();
        d.start(&mut ep, ms(0)).unwrap();
        w.borrow_mut()
            .durable
            .arm("h", InCommit::Delete(DurableTable::Inbox));
        ep.put(1);
        d.pump(&mut ep, ms(0));
        assert_eq!(ep.confirmed, vec![1]);
        assert!(w.borrow_mut().durable.take_crashes().is_empty());
        ep.next += 1;
        ep.queue.push(DurableBatch {
            id: BatchId(ep.next),
            ops: vec![StoreOp::Delete {
                table: DurableTable::Inbox,
                key: vec![9],
            }],
        });
        d.pump(&mut ep, ms(0));
        assert_eq!(ep.confirmed, vec![1]);
        assert_eq!(w.borrow_mut().durable.take_crashes().len(), 1);
    }
}
