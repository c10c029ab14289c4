//! The committer: one task that takes sealed batches in index order and writes every batch
//! gathered while the previous commit was being written in one store commit (within the store's
//! limits), then publishes their events and answers their tickets. A failed commit fails its
//! batches and every batch prepared on top of them, and memory is rebuilt from the store.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use crate::events::Event;
use crate::store::{CommitLimits, StoreOp};

use super::commit::{Batch, Failure};
use super::inner::{Inner, rebuild};
use super::locks::lock;

/// The most changes one store commit gathers.
const MAX_BATCH: usize = 4096;

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
                generation = rebuild(&inner, &failure.message).await;
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
    let started = inner.clock.instant();
    let op_count = ops.len();
    match inner.store.commit(index, ops).await {
        Ok(()) => {
            let took = inner.clock.instant().duration_since(started);
            lock(&inner.stats).record(took, batches.len(), op_count);
            inner.durable.store(index, Ordering::Release);
            {
                let mut p = lock(&inner.publisher);
                let at = inner.clock.wall();
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
                        inner.send(&mut p, e);
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
