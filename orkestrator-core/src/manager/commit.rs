//! Durability bookkeeping, apart from the state: a change being prepared ([`Txn`]), the sealed
//! batch on its way to the store ([`Batch`]), the [`Ticket`] a request waits on, how a failed
//! commit is told ([`StoreFailure`]), the publisher's window and the committer's statistics.
//!
//! Group commit: changes are prepared under the state lock (no I/O there), handed to one
//! committer task in index order, and written to the [`Store`](crate::store::Store) together —
//! every change gathered while the previous commit was being written goes into the next one. A
//! request is answered only once the batch holding its change (or, for a read or an `unchanged`
//! answer, the batch holding what it looked at) is durable; events are published only then,
//! stamped with the index of their change.
//!
//! A failed commit fails its batch and every batch prepared on top of it (503); memory is then
//! rebuilt from the store, so it never holds what the store does not.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::{ApiError, StoreStats};
use crate::events::EventKind;
use crate::ids::InstanceKey as Key;
use crate::store::StoreOp;

pub(crate) use crate::store_failure::{StoreFailure, store_failure};

/// A change being prepared: the store ops and events it makes, and what it touched.
#[derive(Debug, Default)]
pub(crate) struct Txn {
    /// Ops other than instance writes (jobs, specs, workers).
    pub ops: Vec<StoreOp>,
    /// Events of the change, published once it is durable.
    pub events: Vec<EventKind>,
    /// Instances changed, written as they are when the change is sealed.
    pub touched: BTreeSet<Key>,
    /// Whether new instance numbers were handed out.
    pub instance_numbers_advanced: bool,
}

impl Txn {
    pub fn touch(&mut self, key: Key) {
        self.touched.insert(key);
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.events.is_empty() && self.touched.is_empty()
    }
}

/// The outcome of a batch: `None` while in flight, then `Ok` or the store's error.
pub(crate) type Outcome = Option<Result<(), Failure>>;

/// Why a commit failed, and what the store said.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub kind: StoreFailure,
    pub message: String,
}

impl Failure {
    pub(crate) fn of(e: &crate::Error) -> Self {
        let (kind, message) = match e {
            crate::Error::OutcomeUnknown(m) => (StoreFailure::OutcomeUnknown, m.clone()),
            crate::Error::NotLeader(m) => (StoreFailure::NotLeader, m.clone()),
            crate::Error::Store(m) => (StoreFailure::Failed, m.clone()),
            other => (StoreFailure::Failed, other.to_string()),
        };
        Failure { kind, message }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Failure {
            kind: StoreFailure::Failed,
            message: message.into(),
        }
    }
}

/// Waits for a batch's outcome.
pub(crate) type Done = watch::Receiver<Outcome>;

/// The committer's bookkeeping, kept under the state lock but apart from the state.
#[derive(Debug, Default)]
pub(crate) struct Durability {
    /// Bumped when a failed commit makes memory be rebuilt from the store.
    pub generation: u64,
    /// While memory is being rebuilt from the store, nothing is prepared.
    pub rebuilding: bool,
    /// Waits for the last batch sent to the committer.
    pub last_batch: Option<Done>,
}

/// One sealed change, on its way to the store.
pub(crate) struct Batch {
    pub generation: u64,
    pub index: u64,
    pub ops: Vec<StoreOp>,
    pub events: Vec<EventKind>,
    pub done: watch::Sender<Outcome>,
}

/// What a request waits for before it answers: the batch holding its change or what it read.
#[must_use]
pub(crate) struct Ticket(pub Option<Done>);

impl Ticket {
    /// Waits until the batch is durable; a 503 if its commit failed.
    pub async fn durable(self) -> Result<(), ApiError> {
        let Some(mut rx) = self.0 else {
            return Ok(());
        };
        loop {
            match &*rx.borrow_and_update() {
                Some(Ok(())) => return Ok(()),
                Some(Err(f)) => return Err(store_failure(f.kind, &f.message)),
                None => {}
            }
            if rx.changed().await.is_err() {
                // The committer went away without an answer (shutdown).
                return match &*rx.borrow() {
                    Some(Ok(())) => Ok(()),
                    Some(Err(f)) => Err(store_failure(f.kind, &f.message)),
                    None => Err(ApiError::unavailable(
                        "store_unavailable",
                        "the manager is shutting down; the change was not committed",
                    )),
                };
            }
        }
    }
}

/// Soft events (liveness, leases) are not stored; they get ids under the last durable index:
/// `(index, seq)` with `seq` counting on after the events of that index.
#[derive(Debug)]
pub(crate) struct Publisher {
    pub index: u64,
    pub seq: u32,
    /// The window of recent events, appended in the order they are sent (under this lock), so a
    /// stream can read its backlog and subscribe without a gap or a repeat.
    pub log: crate::events::EventLog,
}

/// Recent commit latencies and counters, for the health report.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub commits: u64,
    pub changes: u64,
    pub failures: u64,
    pub batch_max: u64,
    /// The last commits' latencies in microseconds (a ring).
    pub recent: Vec<u64>,
    pub next: usize,
    /// Histograms and counters for exporters.
    pub telemetry: super::telemetry::Telemetry,
}

const RECENT: usize = 1024;

impl Stats {
    pub(crate) fn record(&mut self, took: Duration, changes: usize, ops: usize) {
        self.telemetry.commit_seconds.observe(took.as_secs_f64());
        self.telemetry.batch_changes.observe(changes as f64);
        self.telemetry.batch_ops.observe(ops as f64);
        self.commits += 1;
        self.changes += changes as u64;
        self.batch_max = self.batch_max.max(changes as u64);
        let us = took.as_micros() as u64;
        if self.recent.len() < RECENT {
            self.recent.push(us);
        } else {
            self.recent[self.next] = us;
        }
        self.next = (self.next + 1) % RECENT;
    }

    pub fn report(&self) -> StoreStats {
        let mut v = self.recent.clone();
        v.sort_unstable();
        let q = |p: f64| {
            if v.is_empty() {
                0
            } else {
                v[((v.len() - 1) as f64 * p).round() as usize]
            }
        };
        StoreStats {
            commits: self.commits,
            changes: self.changes,
            commit_p50_us: q(0.5),
            commit_p99_us: q(0.99),
            batch_max: self.batch_max,
            failures: self.failures,
        }
    }
}
