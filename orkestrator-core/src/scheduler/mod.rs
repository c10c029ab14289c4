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
mod pipeline;
mod registry;
pub mod scores;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

pub(crate) use agent::is_unknown_component;
pub use agent::{SchedulerAgent, commit_to_snapshot, decide};
pub use pipeline::Pipeline;
pub use registry::{DEFAULT as DEFAULT_SCHEDULER, Registry};

use crate::api::WorkerSnapshot;
use crate::ids::WorkerId;
use crate::spec::{Job, Protocol, Resources};
use crate::units::{ByteSize, Cpu};

/// Where a job instance goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On this worker.
    Worker(WorkerId),
    /// Nowhere: the reasons, grouped (e.g. `3 workers: insufficient memory (need 2Gi, max free
    /// 1Gi); 1 worker: constraint zone=a`).
    Unschedulable(String),
}

/// A placement algorithm: sync, pure and object-safe. Implement this to replace the whole
/// algorithm; implement [`Filter`] or [`Score`] to extend a [`Pipeline`].
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
    /// the batch: a [`Pipeline`] indexes where each job of the batch runs, so that job-spread is
    /// an array read per worker. The decisions must be those of the default.
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

/// What is being placed: one instance of a job, with its needs worked out once.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The job.
    pub job: &'a Job,
    /// Which instance (0-based).
    pub index: u32,
    /// The resources one instance needs (the sum of its tasks').
    pub need: Resources,
    /// The host ports one instance binds.
    pub ports: Vec<(u16, Protocol)>,
}

impl<'a> Request<'a> {
    /// A request to place instance `index` of `job`.
    pub fn new(job: &'a Job, index: u32) -> Self {
        Request {
            job,
            index,
            need: job.resources(),
            ports: job.host_ports().collect(),
        }
    }
}

/// A filter: can this worker take the instance at all?
pub trait Filter: Send + Sync {
    /// The filter's name (for registries and explanations).
    fn name(&self) -> &str;
    /// `Ok(())` if the worker passes, or why not.
    fn check(&self, req: &Request<'_>, worker: &WorkerSnapshot) -> Result<(), Rejection>;
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

/// Why a worker was filtered out. Cheap to make: no allocation for the built-in reasons, so a full
/// scan of thousands of workers stays fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The reason, the same for every worker rejected the same way (it groups explanations).
    pub reason: Cow<'static, str>,
    /// For a resource shortfall: how much is needed and how much this worker has free.
    pub shortfall: Option<Shortfall>,
}

impl Rejection {
    /// A rejection with a fixed reason.
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Rejection {
            reason: reason.into(),
            shortfall: None,
        }
    }
}

/// A resource shortfall: need vs. free on one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// What the instance needs.
    pub need: u64,
    /// What the worker has free.
    pub free: u64,
    /// How to print the numbers.
    pub unit: Unit,
}

/// Units of a [`Shortfall`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Millicores.
    Millicores,
    /// Bytes.
    Bytes,
}

impl Unit {
    fn show(self, v: u64) -> String {
        match self {
            Unit::Millicores => Cpu::from_millis(v).to_string(),
            Unit::Bytes => ByteSize::b(v).human(),
        }
    }
}

/// Collects rejections, grouped by reason, and renders them as one line.
#[derive(Debug, Default, Clone)]
pub struct Explanation {
    groups: Vec<Group>,
}

#[derive(Debug, Clone)]
struct Group {
    reason: Cow<'static, str>,
    count: usize,
    need: u64,
    max_free: u64,
    unit: Option<Unit>,
}

impl Explanation {
    /// Adds one worker's rejection.
    pub fn add(&mut self, r: Rejection) {
        // Built-in reasons are static strings: compare their addresses before their bytes.
        let same = |a: &Cow<'static, str>, b: &Cow<'static, str>| match (a, b) {
            (Cow::Borrowed(x), Cow::Borrowed(y)) if std::ptr::eq(*x, *y) => true,
            _ => a == b,
        };
        if let Some(g) = self.groups.iter_mut().find(|g| same(&g.reason, &r.reason)) {
            g.count += 1;
            if let Some(s) = r.shortfall {
                g.need = g.need.max(s.need);
                g.max_free = g.max_free.max(s.free);
            }
            return;
        }
        let (need, max_free, unit) = match r.shortfall {
            Some(s) => (s.need, s.free, Some(s.unit)),
            None => (0, 0, None),
        };
        self.groups.push(Group {
            reason: r.reason,
            count: 1,
            need,
            max_free,
            unit,
        });
    }

    /// How many workers were rejected.
    pub fn rejected(&self) -> usize {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// Renders `N workers: reason (need X, max free Y); …`, largest group first.
    pub fn render(&self, considered: usize) -> String {
        if considered == 0 {
            return "no ready workers".to_owned();
        }
        let mut groups: Vec<&Group> = self.groups.iter().collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        let mut out = String::new();
        for g in groups {
            if !out.is_empty() {
                out.push_str("; ");
            }
            let _ = write!(
                out,
                "{} worker{}: {}",
                g.count,
                if g.count == 1 { "" } else { "s" },
                g.reason
            );
            if let Some(u) = g.unit {
                let free = if g.count == 1 { "free" } else { "max free" };
                let _ = write!(
                    out,
                    " (need {}, {free} {})",
                    u.show(g.need),
                    u.show(g.max_free)
                );
            }
        }
        out
    }
}

/// The hard rules every placement must meet (resource fit, host ports, constraints), as the
/// manager re-checks them when it commits a decision.
pub fn check_fit(req: &Request<'_>, worker: &WorkerSnapshot) -> Result<(), Rejection> {
    filters::ResourceFit.check(req, worker)?;
    filters::HostPorts.check(req, worker)?;
    filters::Constraints.check(req, worker)
}

/// Builders shared by the scheduler tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use crate::api::WorkerSnapshot;
    use crate::ids::WorkerId;
    use crate::spec::{Format, Job, Resources, parse_job};
    use crate::units::{ByteSize, Cpu};

    /// A worker with `cpu` millicores and `mem_mib` MiB, `used_mib` of it allocated, 10Gi disk.
    pub fn worker(id: &str, cpu: u64, mem_mib: u64, used_mib: u64) -> WorkerSnapshot {
        WorkerSnapshot {
            id: WorkerId::new(id),
            labels: Default::default(),
            total: Resources {
                cpu: Cpu::from_millis(cpu),
                memory: ByteSize::mib(mem_mib),
                disk: ByteSize::gib(10),
            },
            allocated: Resources {
                cpu: Cpu::ZERO,
                memory: ByteSize::mib(used_mib),
                disk: ByteSize::ZERO,
            },
            ports_in_use: Default::default(),
            instances: 0,
            jobs: Default::default(),
        }
    }

    /// A one-task job with `resources` (YAML flow mapping body) and `extra` task fields.
    pub fn job_with(resources: &str, extra: &str) -> Job {
        parse_job(&format!("name: j\ntasks:\n  - name: t\n    image: a:1\n    resources: {{ {resources} }}\n    {extra}\n"), Format::Yaml)
            .unwrap()
    }

    /// A job constrained to workers with `label=value`.
    pub fn job_constrained(label: &str, value: &str) -> Job {
        parse_job(
            &format!("name: j\nconstraints: [{{ label: {label}, equals: {value} }}]\ntasks:\n  - name: t\n    image: a:1\n"),
            Format::Yaml,
        )
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_group_and_take_the_largest_free() {
        let mut e = Explanation::default();
        let mem = |free| Rejection {
            reason: "insufficient memory".into(),
            shortfall: Some(Shortfall {
                need: 2 << 30,
                free,
                unit: Unit::Bytes,
            }),
        };
        e.add(mem(1 << 30));
        e.add(mem(512 << 20));
        e.add(Rejection::new("constraint zone=a"));
        e.add(mem(256 << 20));
        assert_eq!(e.rejected(), 4);
        assert_eq!(
            e.render(4),
            "3 workers: insufficient memory (need 2Gi, max free 1Gi); 1 worker: constraint zone=a"
        );
        assert_eq!(Explanation::default().render(0), "no ready workers");
    }

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
