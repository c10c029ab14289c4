//! Group commit: changes are prepared under the state lock (no I/O there), handed to one
//! committer task in index order, and written to the [`Store`] together — every change gathered
//! while the previous commit was being written goes into the next one. A request is answered
//! only once the batch holding its change (or, for a read or an `unchanged` answer, the batch
//! holding what it looked at) is durable; events are published only then, stamped with the
//! index of their change.
//!
//! A failed commit fails its batch and every batch prepared on top of it (503); memory is then
//! rebuilt from the store, so it never holds what the store does not.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::api::{ApiError, StoreStats, now_millis};
use crate::events::{Event, EventKind};
use crate::ids::InstanceKey as Key;
use crate::store::{CommitLimits, StoreOp};

pub use crate::store_failure::{StoreFailure, store_failure};

use super::Inner;

/// The most changes one store commit gathers.
const MAX_BATCH: usize = 4096;

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
    fn of(e: &crate::Error) -> Self {
        let (kind, message) = match e {
            crate::Error::OutcomeUnknown(m) => (StoreFailure::OutcomeUnknown, m.clone()),
            crate::Error::NotLeader(m) => (StoreFailure::NotLeader, m.clone()),
            crate::Error::Store(m) => (StoreFailure::Failed, m.clone()),
            other => (StoreFailure::Failed, other.to_string()),
        };
        Failure { kind, message }
    }

    fn failed(message: impl Into<String>) -> Self {
        Failure {
            kind: StoreFailure::Failed,
            message: message.into(),
        }
    }
}

/// Waits for a batch's outcome.
pub(crate) type Done = watch::Receiver<Outcome>;

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

impl Publisher {
    fn send(&mut self, inner: &Inner, e: Event) {
        lock(&inner.stats).telemetry.saw(&e);
        self.log.push(e.clone());
        let _ = inner.events.send(e);
    }
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
    fn record(&mut self, took: Duration, changes: usize, ops: usize) {
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Publishes one event now, under the publisher's lock (so ids rise in the order sent).
pub(crate) fn publish_soft(inner: &Inner, kind: EventKind) {
    let mut p = lock(&inner.publisher);
    p.seq += 1;
    let e = Event {
        index: p.index,
        seq: p.seq,
        at: now_millis(),
        kind,
    };
    p.send(inner, e);
}

/// The committer: runs until every sender is gone.
pub(crate) async fn run(inner: std::sync::Weak<Inner>, mut rx: mpsc::UnboundedReceiver<Batch>) {
    let mut generation = 0u64;
    let mut batches: Vec<Batch> = Vec::new();
    loop {
        // Batches left over from a failure's rebuild go first, without waiting for another.
        if batches.is_empty() {
            match rx.recv().await {
                Some(first) => batches.push(first),
                None => return,
            }
        }
        while batches.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(b) => batches.push(b),
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        // Batches prepared before a failure was noticed are refused: they stood on state that is
        // gone.
        batches.retain(|b| {
            let stale = b.generation < generation;
            if stale {
                let _ = b.done.send(Some(Err(Failure::failed(
                    "an earlier commit it depended on failed",
                ))));
            }
            !stale
        });
        if batches.is_empty() {
            continue;
        }
        let limits = inner.store.limits();
        let mut rest = std::mem::take(&mut batches);
        while !rest.is_empty() {
            let take = fitting(&*inner.store, limits, &rest);
            let tail = rest.split_off(take);
            let group = std::mem::replace(&mut rest, tail);
            if let Err(failure) = commit_group(&inner, group).await {
                // This group and everything after it stood on the failed state.
                for b in rest.drain(..) {
                    let _ = b.done.send(Some(Err(failure.clone())));
                }
                generation = super::rebuild(&inner, &failure.message).await;
                // Everything already queued was prepared on the failed state.
                while let Ok(b) = rx.try_recv() {
                    if b.generation < generation {
                        let _ = b.done.send(Some(Err(failure.clone())));
                    } else {
                        batches.push(b);
                    }
                }
                break;
            }
        }
    }
}

/// How many of `batches` (at least one) go into the next commit within `limits`.
fn fitting(store: &dyn crate::store::Store, limits: CommitLimits, batches: &[Batch]) -> usize {
    if limits.is_unlimited() {
        return batches.len();
    }
    let (mut ops, mut bytes) = (0usize, 0usize);
    for (i, b) in batches.iter().enumerate() {
        let o = b.ops.len();
        let n: usize = b.ops.iter().map(|op| store.op_bytes(op)).sum();
        if i > 0 && (ops + o > limits.ops || bytes + n > limits.bytes) {
            return i;
        }
        ops += o;
        bytes += n;
    }
    batches.len()
}

/// Commits `batches` as one store commit and answers them; on failure, answers them with it.
async fn commit_group(inner: &Inner, mut batches: Vec<Batch>) -> Result<(), Failure> {
    let index = batches.last().map_or(0, |b| b.index);
    let ops: Vec<StoreOp> = batches
        .iter_mut()
        .flat_map(|b| std::mem::take(&mut b.ops))
        .collect();
    let started = Instant::now();
    let op_count = ops.len();
    match inner.store.commit(index, ops).await {
        Ok(()) => {
            lock(&inner.stats).record(started.elapsed(), batches.len(), op_count);
            inner.durable.store(index, Ordering::Release);
            {
                let mut p = lock(&inner.publisher);
                let at = now_millis();
                for b in &mut batches {
                    p.index = b.index;
                    p.seq = 0;
                    for kind in std::mem::take(&mut b.events) {
                        let e = Event {
                            index: b.index,
                            seq: p.seq,
                            at,
                            kind,
                        };
                        p.send(inner, e);
                        p.seq += 1;
                    }
                }
            }
            for b in batches.drain(..) {
                let _ = b.done.send(Some(Ok(())));
            }
            Ok(())
        }
        Err(e) => {
            let failure = Failure::of(&e);
            tracing::error!(error = %e, index, "store commit failed; rebuilding memory from the store");
            {
                let mut s = lock(&inner.stats);
                s.failures += 1;
                s.telemetry.commit_failures += 1;
            }
            for b in batches.drain(..) {
                let _ = b.done.send(Some(Err(failure.clone())));
            }
            Err(failure)
        }
    }
}
