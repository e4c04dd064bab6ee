//! A harness for durable messages over the in-memory network: a model store per endpoint (a
//! map of rows, applied from batches, that survives a crash) and a model application on each
//! side that sends numbered lines with send marks and writes what it receives to an output
//! log with the consume-mark trick (`docs/PROTOCOL.md` §16.6). A crash loses what was not
//! written to the store, and rebuilds the endpoint from the rows with a new seed.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use pavillion_proto::endpoint::{Client, ClientEvent, SendError, Server, ServerEvent};
use pavillion_proto::features::durable::{
    DurableBatch, DurableId, DurableRecord, DurableRestoreError, DurableRestored, DurableTable,
};
use pavillion_proto::store::{BatchId, StoreOp, StoredRecord};
use pavillion_proto::testing::{Link, Network, Node};
use pavillion_proto::{ClientId, Duration, Instant, PeerId};

use crate::common::{client_addr, client_config, server_addr, server_config, Suite};

pub(crate) const ID: ClientId = ClientId(*b"durable-client-1");

/// The client as the server's durable messages name it.
pub(crate) const PEER: PeerId = PeerId::Client(ID);

/// Rows of one endpoint's store.
pub(crate) type Rows = BTreeMap<(DurableTable, Vec<u8>), Vec<u8>>;

/// Which endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

/// A model store: rows written (they survive a crash), and batches written whose
/// confirmation the endpoint has not had yet.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) rows: Rows,
    pub(crate) unconfirmed: Option<BatchId>,
    /// Writes fail (a full disk): batches are refused, nothing is written.
    pub(crate) broken: bool,
}

impl Store {
    pub(crate) fn apply(&mut self, batch: &DurableBatch) {
        for op in &batch.ops {
            match op {
                StoreOp::Put { table, key, value } => {
                    self.rows.insert((*table, key.clone()), value.clone());
                }
                StoreOp::Delete { table, key } => {
                    self.rows.remove(&(*table, key.clone()));
                }
            }
        }
    }

    pub(crate) fn records(&self) -> Vec<DurableRecord<'_>> {
        self.rows
            .iter()
            .map(|((table, key), value)| StoredRecord {
                table: *table,
                key,
                value,
            })
            .collect()
    }
}

/// One endpoint, its store and its application.
#[derive(Debug)]
pub(crate) struct Side {
    pub(crate) role: Role,
    pub(crate) addr: SocketAddr,
    pub(crate) store: Store,
    /// The application's output log (outside the endpoint: it survives a crash, and is cut
    /// back to the stored consume mark at restore).
    pub(crate) out: Vec<String>,
    /// The next line the application sends (resumed from the stored send mark).
    pub(crate) next_line: u64,
    pub(crate) delivered: Vec<DurableId>,
    pub(crate) failed: Vec<DurableId>,
    pub(crate) redelivered: usize,
    /// Seeds used so far (each restart draws a new one).
    pub(crate) boots: u8,
    /// Consume what arrives (false: hold it unconsumed, as a slow application).
    pub(crate) consume: bool,
}

/// A client and a server with durability on, their stores and applications.
pub(crate) struct Pair {
    pub(crate) net: Network,
    pub(crate) suite: Suite,
    pub(crate) client: Side,
    pub(crate) server: Side,
}

impl Pair {
    pub(crate) fn new(suite: Suite, seed: u64, link: Link) -> Pair {
        let mut net = Network::new(seed, link);
        let s = server_addr();
        let c = client_addr();
        net.add_server(s, server_config(suite, ID, 1));
        net.add_client(c, client_config(suite, ID, s, 2));
        let side = |role, addr| Side {
            role,
            addr,
            store: Store::default(),
            out: Vec::new(),
            next_line: 0,
            delivered: Vec::new(),
            failed: Vec::new(),
            redelivered: 0,
            boots: 2,
            consume: true,
        };
        let mut pair = Pair {
            net,
            suite,
            client: side(Role::Client, c),
            server: side(Role::Server, s),
        };
        pair.enable(Role::Client).expect("empty store");
        pair.enable(Role::Server).expect("empty store");
        pair
    }

    pub(crate) fn get(&self, role: Role) -> &Side {
        match role {
            Role::Client => &self.client,
            Role::Server => &self.server,
        }
    }

    pub(crate) fn side(&mut self, role: Role) -> &mut Side {
        match role {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        }
    }

    /// Turns durability on from the side's stored rows; the application cuts its output
    /// back to the consume mark and resumes its input at the send mark.
    pub(crate) fn enable(&mut self, role: Role) -> Result<DurableRestored, DurableRestoreError> {
        let now = self.net.now();
        let (net, side) = match role {
            Role::Client => (&mut self.net, &mut self.client),
            Role::Server => (&mut self.net, &mut self.server),
        };
        let records = side.store.records();
        let restored = match role {
            Role::Client => net.client(side.addr).enable_durable(now, records),
            Role::Server => net.server(side.addr).enable_durable(now, records),
        }?;
        let mark = restored.consume_mark.unwrap_or(0);
        side.out
            .truncate(usize::try_from(mark).unwrap_or(usize::MAX));
        side.next_line = restored.send_mark.unwrap_or(0);
        Ok(restored)
    }

    /// The side's process dies: batches written but not confirmed stay written, everything
    /// else in memory is gone. It restarts with a new seed and restores from its rows.
    pub(crate) fn crash(&mut self, role: Role) {
        let suite = self.suite;
        let side = self.side(role);
        side.boots = side.boots.wrapping_add(2);
        side.store.unconfirmed = None;
        let (addr, boots) = (side.addr, side.boots);
        let node = match role {
            Role::Client => {
                Node::Client(Client::new(client_config(suite, ID, server_addr(), boots)))
            }
            Role::Server => Node::Server(Server::new(server_config(suite, ID, boots))),
        };
        self.net.replace(addr, node);
        let r = self.enable(role).expect("a store we wrote restores");
        if std::env::var("DURABLE_TRACE").is_ok() {
            eprintln!("{role:?} crashed: {r:?}");
        }
    }

    /// The application sends lines until `upto` (or until the outbox is full).
    pub(crate) fn feed(&mut self, role: Role, upto: u64) {
        let now = self.net.now();
        let (net, side) = match role {
            Role::Client => (&mut self.net, &mut self.client),
            Role::Server => (&mut self.net, &mut self.server),
        };
        while side.next_line < upto {
            let name = line(side.next_line);
            let mark = Some(side.next_line + 1);
            let sent = match role {
                Role::Client => net
                    .client(side.addr)
                    .send_durable(now, "t", &name, b"", mark),
                Role::Server => net
                    .server(side.addr)
                    .send_durable(now, PEER, "t", &name, b"", mark),
            };
            match sent {
                Ok(_) => side.next_line += 1,
                Err(SendError::QueueFull) => break,
                Err(e) => panic!("{role:?}: send_durable: {e}"),
            }
        }
    }

    /// Writes every pending batch of the side to its store (not yet confirmed).
    pub(crate) fn write(&mut self, role: Role) {
        let (net, side) = match role {
            Role::Client => (&mut self.net, &mut self.client),
            Role::Server => (&mut self.net, &mut self.server),
        };
        loop {
            let batch = match role {
                Role::Client => net.client(side.addr).poll_store(),
                Role::Server => net.server(side.addr).poll_store(),
            };
            let Some(batch) = batch else { break };
            let now = net.now();
            if side.store.broken {
                match role {
                    Role::Client => net.client(side.addr).store_failed(now, batch.id),
                    Role::Server => net.server(side.addr).store_failed(now, batch.id),
                }
                // A failed batch's rows are queued again (so a recovered store catches up):
                // one attempt per pass, as a driver makes.
                break;
            }
            side.store.apply(&batch);
            side.store.unconfirmed = Some(batch.id);
        }
    }

    /// Tells the side its written batches are stored.
    pub(crate) fn confirm(&mut self, role: Role) {
        let now = self.net.now();
        let (net, side) = match role {
            Role::Client => (&mut self.net, &mut self.client),
            Role::Server => (&mut self.net, &mut self.server),
        };
        if let Some(id) = side.store.unconfirmed.take() {
            match role {
                Role::Client => net.client(side.addr).stored(now, id),
                Role::Server => net.server(side.addr).stored(now, id),
            }
        }
    }

    /// The side's application handles its events: a durable message goes to the output log,
    /// then is consumed with the log's length as the mark.
    pub(crate) fn handle(&mut self, role: Role) {
        let now = self.net.now();
        let (net, side) = match role {
            Role::Client => (&mut self.net, &mut self.client),
            Role::Server => (&mut self.net, &mut self.server),
        };
        let mut got = Vec::new();
        match role {
            Role::Client => {
                for e in net.client_events(side.addr) {
                    match e {
                        ClientEvent::DurableMessage {
                            id,
                            message,
                            redelivered,
                        } => got.push((id, message.name().to_string(), redelivered)),
                        ClientEvent::DurableDelivered { id } => side.delivered.push(id),
                        ClientEvent::DurableFailed { id, .. } => side.failed.push(id),
                        _ => {}
                    }
                }
            }
            Role::Server => {
                for e in net.server_events(side.addr) {
                    match e {
                        ServerEvent::DurableMessage {
                            id,
                            message,
                            redelivered,
                            peer,
                        } => {
                            assert_eq!(peer, PEER);
                            got.push((id, message.name().to_string(), redelivered));
                        }
                        ServerEvent::DurableDelivered { id, peer } => {
                            assert_eq!(peer, PEER);
                            side.delivered.push(id);
                        }
                        ServerEvent::DurableFailed { id, .. } => side.failed.push(id),
                        _ => {}
                    }
                }
            }
        }
        if !side.consume {
            side.out.extend(got.into_iter().map(|(_, name, _)| name));
            return;
        }
        for (id, name, redelivered) in got {
            if std::env::var("DURABLE_TRACE").is_ok() {
                eprintln!(
                    "{role:?} got {name} {id} redelivered={redelivered} out={}",
                    side.out.len()
                );
            }
            side.redelivered += usize::from(redelivered);
            side.out.push(name);
            let mark = Some(side.out.len() as u64);
            let known = match role {
                Role::Client => net.client(side.addr).consume_durable(now, id, mark),
                Role::Server => net.server(side.addr).consume_durable(now, PEER, id, mark),
            };
            assert!(known, "{role:?}: {id} delivered but not in the inbox");
        }
    }

    /// Runs the network for `d` in 10 ms slices; after each, both applications handle their
    /// events and, with `commit`, both stores write and confirm at once.
    pub(crate) fn run(&mut self, d: Duration, commit: bool) {
        let end = self.net.now() + d;
        while self.net.now() < end {
            self.net.run_for(Duration::from_millis(10));
            for role in [Role::Client, Role::Server] {
                self.handle(role);
                if commit {
                    self.write(role);
                    self.confirm(role);
                }
            }
        }
    }

    /// Runs with every store committing until `done`, for at most `limit`.
    pub(crate) fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Pair) -> bool,
    ) -> bool {
        let end = self.net.now() + limit;
        while self.net.now() < end {
            if done(self) {
                return true;
            }
            self.run(Duration::from_millis(100), true);
        }
        done(self)
    }

    pub(crate) fn now(&self) -> Instant {
        self.net.now()
    }
}

/// The name of line `n`.
pub(crate) fn line(n: u64) -> String {
    format!("m{n}")
}

/// Whether `out` holds lines `0..n`, each exactly once (in any order).
pub(crate) fn exactly_once(out: &[String], n: u64) -> Result<(), String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for name in out {
        *counts.entry(name.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    if !twice.is_empty() {
        return Err(format!("delivered more than once: {twice:?}"));
    }
    let missing: Vec<String> = (0..n)
        .map(line)
        .filter(|l| !counts.contains_key(l.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(format!("lost: {missing:?}"));
    }
    if counts.len() as u64 != n {
        return Err(format!("unexpected lines in {out:?}"));
    }
    Ok(())
}
