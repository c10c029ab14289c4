//! The parts a placement algorithm is made of: a whole [`Scheduler`], or the [`Filter`]s and
//! [`Score`]s of a pipeline, and what a scheduler answers ([`Placement`]).

use std::collections::HashMap;

use super::rejection::Rejection;
use super::request::{Request, commit_to_snapshot};
use crate::api::WorkerSnapshot;
use crate::ids::WorkerId;

/// Where a job instance goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On this worker.
    Worker(WorkerId),
    /// Nowhere: every check each worker fails, grouped by the set of them (e.g. `2 workers:
    /// insufficient memory (need 1Gi, max free 416Mi), constraint zone=c; 1 worker: constraint
    /// zone=c`).
    Unschedulable(String),
}

/// A placement algorithm: sync, pure and object-safe. Implement this to replace the whole
/// algorithm; implement [`Filter`] or [`Score`] to extend a [`Pipeline`](super::Pipeline).
pub trait Scheduler: Send + Sync {
    /// The algorithm's name.
    fn name(&self) -> &str;
    /// Chooses a worker for one instance of a job.
    fn place(&self, req: &Request<'_>, workers: &[WorkerSnapshot]) -> Placement;

    /// Places a batch of instances in turn, recording each placement in `workers` (with
    /// [`commit_to_snapshot`]) before the next, so that one batch never over-commits a worker.
    /// Returns one placement per request, in order.
    ///
    /// The default calls [`Scheduler::place`] for each request. Override it to keep state across
    /// the batch: a [`Pipeline`](super::Pipeline) indexes where each job of the batch runs, so
    /// that job-spread is an array read per worker. The decisions must be those of the default.
    fn place_batch(&self, reqs: &[Request<'_>], workers: &mut [WorkerSnapshot]) -> Vec<Placement> {
        let position: HashMap<WorkerId, usize> = workers
            .iter()
            .enumerate()
            .map(|(i, w)| (w.id.clone(), i))
            .collect();
        reqs.iter()
            .map(|req| {
                let placement = self.place(req, workers);
                if let Placement::Worker(id) = &placement
                    && let Some(&i) = position.get(id)
                {
                    commit_to_snapshot(&mut workers[i], req);
                }
                placement
            })
            .collect()
    }
}

/// A filter: can this worker take the instance at all?
pub trait Filter: Send + Sync {
    /// The filter's name (for registries and explanations).
    fn name(&self) -> &str;
    /// `Ok(())` if the worker passes, or why not.
    fn check(&self, req: &Request<'_>, worker: &WorkerSnapshot) -> Result<(), Rejection>;
    /// Every reason the worker fails this filter, appended to `out` (nothing if it passes), for
    /// the explanation of a job that fits nowhere. The default appends [`Filter::check`]'s one
    /// reason; a filter that checks several things (each resource, each port) names each.
    fn check_all(&self, req: &Request<'_>, worker: &WorkerSnapshot, out: &mut Vec<Rejection>) {
        if let Err(r) = self.check(req, worker) {
            out.push(r);
        }
    }
    /// Whether the filter can reject anything for this request at all (asked once per placement,
    /// so that a scan skips filters with nothing to check). The default is `true`.
    fn relevant(&self, _req: &Request<'_>) -> bool {
        true
    }
}

/// A score: how good is this (feasible) worker for the instance, from 0 (worst) to 100 (best).
pub trait Score: Send + Sync {
    /// The score's name.
    fn name(&self) -> &str;
    /// 0..=100; larger is better. Values above 100 are clamped.
    fn score(&self, req: &Request<'_>, worker: &WorkerSnapshot) -> u32;
    /// Called once per placement decision with the chosen worker (for stateful scores such as
    /// round-robin). The default does nothing.
    fn placed(&self, _worker: &WorkerId) {}
}
