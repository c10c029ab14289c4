//! Placement: where each job instance runs.
//!
//! A [`Scheduler`] is a pure function of a job and a snapshot of the workers: sync, object-safe,
//! and free of I/O, so it is tested without a cluster and benchmarked on its own. Most schedulers
//! are a [`Pipeline`] of small named parts, as in Nomad's feasibility and rank iterators and
//! kube-scheduler's filter and score plugins:
//!
//! - [`Filter`]s say whether a worker can take the job at all, and why not ([`Rejection`]);
//! - [`Score`]s rank the workers that can, from 0 to 100, combined by weight.
//!
//! The manager commits a placement only if it still fits when it arrives (an optimistic check), so a
//! slow or remote scheduler can never over-commit a worker. The [`SchedulerAgent`] runs a scheduler
//! as a component, embedded in the manager or as its own process; the [`Registry`] maps names to
//! built-in schedulers (`orkestrator server --scheduler NAME`).

mod agent;
mod batch;
pub mod filters;
mod parts;
mod pipeline;
mod registry;
mod rejection;
mod request;
pub mod scores;
#[cfg(test)]
pub(crate) mod tests_support;

pub(crate) use agent::is_unknown_component;
pub use agent::{SchedulerAgent, decide, pinned_unavailable};
pub use filters::check_fit;
pub use parts::{Filter, Placement, Scheduler, Score};
pub use pipeline::Pipeline;
pub use registry::{DEFAULT as DEFAULT_SCHEDULER, Registry};
pub use rejection::{Explanation, Rejection, Shortfall, Unit};
pub use request::{Request, commit_to_snapshot};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WorkerSnapshot;
    use crate::ids::WorkerId;
    use crate::spec::Job;

    /// A scheduler of its own (first worker that fits), through [`decide`]: the default
    /// [`Scheduler::place_batch`] records each placement before the next.
    #[test]
    fn the_default_batch_records_each_placement_before_the_next() {
        struct FirstFit;
        impl Scheduler for FirstFit {
            fn name(&self) -> &str {
                "first-fit"
            }
            fn place(&self, req: &Request<'_>, workers: &[WorkerSnapshot]) -> Placement {
                match workers.iter().find(|w| check_fit(req, w).is_ok()) {
                    Some(w) => Placement::Worker(w.id.clone()),
                    None => Placement::Unschedulable("full".into()),
                }
            }
        }
        /// The job as `PendingInstance::job` holds it (a `Job` or an `Arc<Job>`).
        fn owned<T: From<Job>>(job: &Job) -> T {
            T::from(job.clone())
        }
        let j = tests_support::job_with("cpu: 100m, memory: 600Mi", "");
        let pending: Vec<crate::api::PendingInstance> = (0..3)
            .map(|k| crate::api::PendingInstance {
                instance: crate::ids::InstanceId::new(format!("i{k}")),
                index: k,
                job: owned(&j),
                pinned: None,
            })
            .collect();
        let workers = vec![
            tests_support::worker("a", 1000, 1024, 0),
            tests_support::worker("b", 1000, 1024, 0),
        ];
        let outcomes: Vec<_> = decide(&FirstFit, &pending, workers)
            .into_iter()
            .map(|d| d.outcome)
            .collect();
        use crate::api::DecisionOutcome::{Place, Unschedulable};
        assert_eq!(
            outcomes,
            [
                Place {
                    worker: WorkerId::new("a")
                },
                Place {
                    worker: WorkerId::new("b")
                },
                Unschedulable {
                    reason: "full".into()
                },
            ]
        );
    }
}
